#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/realworld/gen.sh RUN_DIR [options] — generate the real-server bench
# world: the DNS, the tables of four real Postfix instances, and the list.
#
#   --addresses N        rows in list.csv (default 5000)
#   --domains D          domains d1.real .. dD.real (default 250; at most N)
#   --unknown-fraction F share of unknown users in the list (default 0.28)
#   --zipf S             domain sizes follow rank^-S (default 1: a few big
#                        domains, a long tail; 0: all the same size)
#   --delay MS           one-way delay of the relays (default 25: 50 ms RTT)
#   --greylist-delay S   postgrey --delay (default 5)
#   --dns-port P         unbound's port on 127.0.2.53 (default 5320)
#   --seed S             shuffle seed (default 1; same options, same files)
#
# The world (everything on 127.0.0.0/8):
#
#   instance  postfix on        relay (MX address)  shape
#   rw1       127.0.2.1:2525    127.0.3.1:2525      Debian defaults
#   rw2       127.0.2.2:2525    127.0.3.2:2525      Debian defaults
#   rw3       127.0.2.3:2525    127.0.3.3:2525      smtpd_recipient_limit = 1 (the Microsoft shape)
#   rw4       127.0.2.4:2525    127.0.3.4:2525      greylisting: postgrey on 127.0.2.100:10023
#
# Domain of rank n (1 = largest) goes to instance rw1 when (n-1) % 10 is
# 0-3, rw2 for 4-7, rw3 for 8, rw4 for 9: 40/40/10/10 % of the domains.
# dN.real MX 10 mx.dN.real, mx.dN.real A 127.0.3.I (the relay in front of
# rwI).  Unknown users get 550 5.1.1 (virtual mailbox table).
#
# Writes into RUN_DIR:
#   unbound.conf, realworld.params
#   rwI/domains, rwI/mailboxes   texthash tables for tests/world/postfix/start.sh
#   rwI/extra.cf                 the main.cf lines of that instance's shape
#   list.csv       "email,name", shuffled
#   expected.csv   "email,expected,category,instance": expected is the
#                  status emailverify should give (deliverable | undeliverable);
#                  category is deliverable | undeliverable |
#                  greylisted-then-deliverable | greylisted-then-undeliverable |
#                  rcpt-limit-deliverable | rcpt-limit-undeliverable
set -euo pipefail

die() { echo "realworld gen: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }

[[ $# -ge 1 && $1 != -* ]] || usage
RUN_DIR=$1; shift
ADDRS=5000 DOMAINS=250 UNKNOWN=0.28 ZIPF=1 DELAY=25 GREY=5 DNS_PORT=5320 SEED=1
while [[ $# -gt 0 ]]; do
	opt=$1 val=
	case $opt in
	--*=*) val=${opt#*=} opt=${opt%%=*} ;;
	--*) [[ $# -ge 2 ]] || die "$opt needs a value"; val=$2; shift ;;
	*) usage ;;
	esac
	shift
	case $opt in
	--addresses) ADDRS=$val ;;
	--domains) DOMAINS=$val ;;
	--unknown-fraction) UNKNOWN=$val ;;
	--zipf) ZIPF=$val ;;
	--delay) DELAY=$val ;;
	--greylist-delay) GREY=$val ;;
	--dns-port) DNS_PORT=$val ;;
	--seed) SEED=$val ;;
	*) die "unknown option $opt" ;;
	esac
done
for v in ADDRS DOMAINS DELAY GREY DNS_PORT SEED; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, not '${!v}'"
done
[[ $UNKNOWN =~ ^(0(\.[0-9]+)?|\.[0-9]+)$ ]] || die "--unknown-fraction must be in [0,1)"
[[ $ZIPF =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--zipf must be a number >= 0"
((DOMAINS >= 1 && ADDRS >= DOMAINS)) || die "need 1 <= --domains <= --addresses"
((SEED >= 1 && SEED < 2147483647)) || die "--seed must be in 1..2147483646"
((DNS_PORT >= 1 && DNS_PORT <= 65535)) || die "--dns-port out of range"

mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
[[ $RUN_DIR != *[[:space:],\"\$]* ]] || die "RUN_DIR must not contain blanks, commas, quotes or '\$'"
for i in 1 2 3 4; do mkdir -p "$RUN_DIR/rw$i"; done

# ---------------------------------------------------------------- the list
# Park-Miller in awk (exact in doubles): the same seed gives the same files
# with any awk.  Sizes: N * rank^-S / sum, at least 1 per domain, rounding
# remainders to the largest domains.  Unknown rows: exactly round(F * N),
# chosen by a shuffled permutation, so their share varies per domain as on
# a real list.
awk -v N="$ADDRS" -v D="$DOMAINS" -v F="$UNKNOWN" -v S="$ZIPF" -v seed="$SEED" -v dir="$RUN_DIR" '
function rnd(n) { x = (x * 16807) % 2147483647; return x % n }
function inst(n,  r) { r = (n - 1) % 10; return r < 4 ? 1 : r < 8 ? 2 : r == 8 ? 3 : 4 }
BEGIN {
	x = seed
	split("anna ben carla david eva felix greta hugo ines jonas klara lukas mia noah olga paul rosa sven tina umar vera yusuf zoe emil", fn, " ")
	split("adler becker castro dietz engel fischer gruber hansen ito jansen keller lang moreau novak olsen petrov quinn richter silva tanaka ulrich vogel weber young", ln, " ")
	nfn = 24; nln = 24
	W = 0
	for (n = 1; n <= D; n++) { w[n] = 1 / (n ^ S); W += w[n] }
	left = N - D
	for (n = 1; n <= D; n++) { size[n] = 1 + int(left * w[n] / W); got += size[n] }
	for (n = 1; got < N; n = n % D + 1) { size[n]++; got++ }
	m = 0
	for (n = 1; n <= D; n++)
		for (k = 1; k <= size[n]; k++) { m++; dom[m] = n; idx[m] = k }
	# which rows are unknown users: the first round(F*N) of a permutation
	nu = int(F * N + 0.5)
	for (i = 1; i <= m; i++) perm[i] = i
	for (i = m; i > 1; i--) { j = rnd(i) + 1; t = perm[i]; perm[i] = perm[j]; perm[j] = t }
	for (i = 1; i <= nu; i++) unk[perm[i]] = 1
	# local parts: first.last, then first.last2, ... on the same domain
	for (i = 1; i <= m; i++) {
		n = dom[i]
		base = fn[(idx[i] - 1) % nfn + 1] "." ln[int((idx[i] - 1) / nfn) % nln + 1]
		rep = int((idx[i] - 1) / (nfn * nln))
		local = base (rep ? rep + 1 : "")
		if (unk[i]) local = "x" local   # never in the mailbox table
		row[i] = local "@d" n ".real"
		I = inst(n)
		if (!unk[i]) print row[i] "  d" n ".real/" local "/" > (dir "/rw" I "/mailboxes")
		st[i] = unk[i] ? "undeliverable" : "deliverable"
		cat[i] = (I == 4 ? "greylisted-then-" : I == 3 ? "rcpt-limit-" : "") st[i]
		ins[i] = "rw" I
	}
	for (n = 1; n <= D; n++) print "d" n ".real  OK" > (dir "/rw" inst(n) "/domains")
	# shuffle the rows
	for (i = m; i > 1; i--) {
		j = rnd(i) + 1
		t = row[i]; row[i] = row[j]; row[j] = t
		t = st[i]; st[i] = st[j]; st[j] = t
		t = cat[i]; cat[i] = cat[j]; cat[j] = t
		t = ins[i]; ins[i] = ins[j]; ins[j] = t
	}
	print "email,name" > (dir "/list.csv")
	print "email,expected,category,instance" > (dir "/expected.csv")
	for (i = 1; i <= m; i++) {
		print row[i] "," toupper(substr(row[i], 1, 1)) "." > (dir "/list.csv")
		print row[i] "," st[i] "," cat[i] "," ins[i] > (dir "/expected.csv")
	}
}'
for i in 1 2 3 4; do touch "$RUN_DIR/rw$i/mailboxes" "$RUN_DIR/rw$i/domains"; done

# ---------------------------------------------------------------- instance shapes
# Debian's anti-harvest defaults are NOT set here: smtpd_soft_error_limit 10,
# smtpd_error_sleep_time 1s, smtpd_hard_error_limit 20, smtpd_junk_command_limit
# 100 stay the package's built-in values (real.sh checks with postconf).
: >"$RUN_DIR/rw1/extra.cf"
: >"$RUN_DIR/rw2/extra.cf"
cat >"$RUN_DIR/rw3/extra.cf" <<'EOF'
# the Microsoft shape: one recipient per transaction (452 4.5.3 for more)
smtpd_recipient_limit = 1
EOF
cat >"$RUN_DIR/rw4/extra.cf" <<'EOF'
# greylisting: Debian's postgrey as a policy service on loopback
smtpd_recipient_restrictions = check_recipient_access texthash:${config_directory}/recipient_access, check_policy_service inet:127.0.2.100:10023
EOF

# ---------------------------------------------------------------- unbound.conf
{
	cat <<EOF
# unbound.conf - DNS of the real-server bench world (bench/realworld/gen.sh).
# "." is static: nothing is ever resolved off the machine.
server:
	interface: 127.0.2.53
	port: $DNS_PORT
	do-ip4: yes
	do-ip6: no
	do-udp: yes
	do-tcp: yes
	username: ""
	chroot: ""
	directory: "$RUN_DIR"
	pidfile: "$RUN_DIR/unbound.pid"
	do-daemonize: yes
	use-syslog: no
	logfile: "$RUN_DIR/unbound.log"
	verbosity: 1
	num-threads: 1
	access-control: 127.0.0.0/8 allow
	module-config: "iterator"
	do-not-query-localhost: yes
	hide-identity: yes
	hide-version: yes
	minimal-responses: yes
	ratelimit: 0
	ip-ratelimit: 0

	local-zone: "." static
	local-zone: "real." static
	local-data: "real. 3600 IN SOA ns.real. hostmaster.real. 1 3600 600 86400 60"
	local-data: "real. 3600 IN NS ns.real."
	local-data: "ns.real. 3600 IN A 127.0.2.53"
	local-data: 'verifier.real. 3600 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"'
	local-zone: "3.0.127.in-addr.arpa." static
	local-data: "3.0.127.in-addr.arpa. 3600 IN SOA ns.real. hostmaster.real. 1 3600 600 86400 60"
EOF
	for i in 1 2 3 4; do
		printf '\tlocal-data: "rw%d.real. 3600 IN A 127.0.3.%d"\n' "$i" "$i"
		printf '\tlocal-data: "%d.3.0.127.in-addr.arpa. 3600 IN PTR rw%d.real."\n' "$i" "$i"
	done
	awk -v d="$DOMAINS" 'function inst(n,  r) { r = (n - 1) % 10; return r < 4 ? 1 : r < 8 ? 2 : r == 8 ? 3 : 4 }
	BEGIN {
		for (n = 1; n <= d; n++) {
			printf "\tlocal-data: \"d%d.real. 3600 IN MX 10 mx.d%d.real.\"\n", n, n
			printf "\tlocal-data: \"mx.d%d.real. 3600 IN A 127.0.3.%d\"\n", n, inst(n)
		}
	}'
	printf '\nremote-control:\n\tcontrol-enable: no\n'
} >"$RUN_DIR/unbound.conf"

cat >"$RUN_DIR/realworld.params" <<EOF
# written by bench/realworld/gen.sh; read by start.sh and real.sh
RW_ADDRESSES=$ADDRS
RW_DOMAINS=$DOMAINS
RW_UNKNOWN=$UNKNOWN
RW_ZIPF=$ZIPF
RW_DELAY=$DELAY
RW_GREYLIST_DELAY=$GREY
RW_DNS=127.0.2.53:$DNS_PORT
RW_SEED=$SEED
EOF

awk -F, 'NR > 1 { n++; c[$3]++ } END {
	printf "realworld: %d addresses over '"$DOMAINS"' domains:", n
	for (k in c) printf " %s %d,", k, c[k]
	printf "\n" }' "$RUN_DIR/expected.csv" >&2
