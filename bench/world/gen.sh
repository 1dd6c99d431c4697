#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# gen.sh RUN_DIR [options] - generate a scalable "bench world" for benchmarks.
#
#   --domains N             domains d1.bench .. dN.bench (default 1000)
#   --users U               mailboxes u1 .. uU on every domain (default 20)
#   --latency MS            every SMTP reply (banner included) MS late (default 0)
#   --latency-mode M        network (default: pipelined commands answered together,
#                           one round trip later) or serial (each reply MS after the last)
#   --tls yes|no            servers offer STARTTLS (default no)
#   --servers K             SMTP servers on 127.0.1.1 .. 127.0.1.K :2525 (default 10)
#   --catchall-fraction F   this fraction of the domains is served by catch-all
#                           servers (default 0); they listen on 127.0.1.K+1 ..
#   --unknown-fraction F    extra rows with unknown mailboxes, as a fraction of
#                           the known ones (default 0.02)
#   --seed S                shuffle seed (default 1; same seed, same list.csv)
#   --idle-timeout S        server idle timeout (default 60)
#   --max-connections N     server session limit (default 30000)
#   --dns-port P            unbound port on 127.0.0.1 (default 5310)
#
# Writes into RUN_DIR (created):
#   unbound.conf   unbound on 127.0.0.1:P, static "." zone (nothing is ever
#                  resolved off the machine), the zones "bench." and the
#                  reverse zones of 127.0.1.x / 127.0.2.x as local-data
#   smtpd.conf     emv-testsmtpd config: K servers accepting any domain,
#                  users u1..uU (250), everything else 550 5.1.1
#   list.csv       "email,name": every uI@dN.bench plus the unknown ones
#                  (xN@dN.bench), shuffled with a fixed seed
#   expected.csv   "email,expected": deliverable | undeliverable | catch_all
#   bench.params   the parameters above, shell syntax, read by start.sh
#
# DNS: dN.bench MX 10 mx.dN.bench, mx.dN.bench A 127.0.1.((N-1)%K+1), so
# every domain has its own exchanger name while the servers are shared.
# Catch-all domains point at the catch-all servers instead.  Every server
# address has a PTR srvI.bench with a matching A record; the probe source
# addresses 127.0.2.1-254 have PTR probeI.verifier.bench (forward-confirmed),
# and verifier.bench has an SPF TXT record for the probe's sender.
#
# Only loopback addresses are ever written.  Start with start.sh RUN_DIR.
set -euo pipefail

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
	exit 2
}
die() {
	echo "bench gen: $*" >&2
	exit 1
}

[[ $# -ge 1 && $1 != -* ]] || usage
RUN_DIR=$1
shift
DOMAINS=1000 USERS=20 LATENCY=0 LATENCY_MODE=network TLS=no SERVERS=10 CATCHALL=0 UNKNOWN=0.02 SEED=1
IDLE=60 MAXCONN=30000 DNS_PORT=5310

while [[ $# -gt 0 ]]; do
	opt=$1 val=
	case $opt in
	--*=*) val=${opt#*=} opt=${opt%%=*} ;;
	--*) [[ $# -ge 2 ]] || die "$opt needs a value"; val=$2; shift ;;
	*) usage ;;
	esac
	shift
	case $opt in
	--domains) DOMAINS=$val ;;
	--users) USERS=$val ;;
	--latency) LATENCY=$val ;;
	--latency-mode) LATENCY_MODE=$val ;;
	--tls) TLS=$val ;;
	--servers) SERVERS=$val ;;
	--catchall-fraction) CATCHALL=$val ;;
	--unknown-fraction) UNKNOWN=$val ;;
	--seed) SEED=$val ;;
	--idle-timeout) IDLE=$val ;;
	--max-connections) MAXCONN=$val ;;
	--dns-port) DNS_PORT=$val ;;
	*) die "unknown option $opt" ;;
	esac
done

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_frac() { [[ $1 =~ ^(0(\.[0-9]+)?|1(\.0*)?|\.[0-9]+)$ ]]; }
for v in DOMAINS USERS LATENCY SERVERS SEED IDLE MAXCONN DNS_PORT; do
	is_uint "${!v}" || die "$v must be a non-negative integer, not '${!v}'"
done
is_frac "$CATCHALL" || die "--catchall-fraction must be in [0,1], not '$CATCHALL'"
is_frac "$UNKNOWN" || die "--unknown-fraction must be in [0,1], not '$UNKNOWN'"
[[ $TLS == yes || $TLS == no ]] || die "--tls yes|no, not '$TLS'"
((DOMAINS >= 1 && USERS >= 1)) || die "--domains and --users must be at least 1"
((DOMAINS <= 10000000)) || die "--domains is capped at 10000000"
[[ $LATENCY_MODE == network || $LATENCY_MODE == serial ]] || die "--latency-mode is network or serial"
((LATENCY <= 600000)) || die "--latency is capped at 600000 ms (emv-testsmtpd's limit)"
((SEED >= 1 && SEED < 2147483647)) || die "--seed must be in 1..2147483646"
((DNS_PORT >= 1 && DNS_PORT <= 65535)) || die "--dns-port out of range"
((MAXCONN >= 1 && MAXCONN <= 1000000)) || die "--max-connections must be in 1..1000000"

# catch-all domains: round(F * DOMAINS), spread evenly over 1..DOMAINS;
# catch-all servers: round(F * K), at least one when there is such a domain
read -r NCATCH KC < <(awk -v f="$CATCHALL" -v d="$DOMAINS" -v k="$SERVERS" 'BEGIN {
	n = int(f * d + 0.5); c = int(f * k + 0.5); if (n > 0 && c < 1) c = 1; if (n == 0) c = 0
	print n, c }')
((SERVERS >= 1)) || die "--servers must be at least 1"
((SERVERS + KC <= 250)) || die "at most 250 servers (127.0.1.1-250), asked for $SERVERS + $KC catch-all"

mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
[[ $RUN_DIR != *[[:space:]\"]* ]] || die "RUN_DIR must not contain blanks or quotes"

# ---------------------------------------------------------------- unbound.conf
{
	cat <<EOF
# unbound.conf - DNS of the bench world, written by bench/world/gen.sh
# ($DOMAINS domains, $SERVERS servers, $KC catch-all servers).
# "." is a static zone: nothing is ever resolved off the machine, names
# outside the world are NXDOMAIN.  All data is local-data (no cache use).
server:
	interface: 127.0.0.1
	port: $DNS_PORT
	do-ip4: yes
	do-ip6: no
	do-udp: yes
	do-tcp: yes
	# works as root and as a normal user: no privilege drop, no chroot
	username: ""
	chroot: ""
	directory: "$RUN_DIR"
	pidfile: "$RUN_DIR/unbound.pid"
	do-daemonize: yes
	use-syslog: no
	logfile: "$RUN_DIR/unbound.log"
	verbosity: 1
	# two threads, one socket each: a benchmark client sends thousands of
	# queries at once
	num-threads: 2
	so-reuseport: yes
	num-queries-per-thread: 4096
	incoming-num-tcp: 256
	# bigger socket buffers against drops under bursts (a warning, not an
	# error, where the kernel refuses)
	so-rcvbuf: 4m
	so-sndbuf: 4m
	msg-cache-size: 64m
	rrset-cache-size: 128m
	access-control: 127.0.0.0/8 allow
	# never query anything: there is nothing to forward to
	module-config: "iterator"
	do-not-query-localhost: yes
	hide-identity: yes
	hide-version: yes
	minimal-responses: yes
	# no rate limits: the benchmark is the only client
	ratelimit: 0
	ip-ratelimit: 0

	local-zone: "." static

	local-zone: "bench." static
	local-data: "bench. 3600 IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 60"
	local-data: "bench. 3600 IN NS ns.bench."
	local-data: "ns.bench. 3600 IN A 127.0.0.1"
	# the probe's sender domain and its source addresses (forward-confirmed)
	local-data: 'verifier.bench. 3600 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"'

	local-zone: "1.0.127.in-addr.arpa." static
	local-data: "1.0.127.in-addr.arpa. 3600 IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 60"
	local-zone: "2.0.127.in-addr.arpa." static
	local-data: "2.0.127.in-addr.arpa. 3600 IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 60"
EOF
	awk -v k="$SERVERS" -v kc="$KC" 'BEGIN {
		for (i = 1; i <= k + kc; i++) {
			printf "\tlocal-data: \"srv%d.bench. 3600 IN A 127.0.1.%d\"\n", i, i
			printf "\tlocal-data: \"%d.1.0.127.in-addr.arpa. 3600 IN PTR srv%d.bench.\"\n", i, i
		}
		for (i = 1; i <= 254; i++) {
			printf "\tlocal-data: \"probe%d.verifier.bench. 3600 IN A 127.0.2.%d\"\n", i, i
			printf "\tlocal-data: \"%d.2.0.127.in-addr.arpa. 3600 IN PTR probe%d.verifier.bench.\"\n", i, i
		}
	}'
	echo
	echo "	# the domains: MX 10 mx.dN.bench, its A on the shared servers"
	awk -v d="$DOMAINS" -v k="$SERVERS" -v kc="$KC" -v nc="$NCATCH" 'BEGIN {
		j = 0
		for (n = 1; n <= d; n++) {
			# catch-all when floor(n*nc/d) steps: nc domains, evenly spread
			if (nc > 0 && int(n * nc / d) != int((n - 1) * nc / d)) {
				ip = k + 1 + (j % kc); j++
			} else {
				ip = (n - 1) % k + 1
			}
			printf "\tlocal-data: \"d%d.bench. 3600 IN MX 10 mx.d%d.bench.\"\n", n, n
			printf "\tlocal-data: \"mx.d%d.bench. 3600 IN A 127.0.1.%d\"\n", n, ip
		}
	}'
	cat <<EOF

remote-control:
	control-enable: no
EOF
} >"$RUN_DIR/unbound.conf.tmp"
mv "$RUN_DIR/unbound.conf.tmp" "$RUN_DIR/unbound.conf"

# ---------------------------------------------------------------- smtpd.conf
{
	cat <<EOF
# smtpd.conf - emv-testsmtpd config of the bench world, written by
# bench/world/gen.sh.  Servers accept any recipient domain; users u1..u$USERS
# get 250, other local parts 550 5.1.1 (catch-all servers: 250 to anyone).
idle-timeout $IDLE
write-timeout 30
max-connections $MAXCONN
EOF
	awk -v k="$SERVERS" -v kc="$KC" -v u="$USERS" -v lat="$LATENCY" -v latmode="$LATENCY_MODE" -v tls="$TLS" 'BEGIN {
		for (i = 1; i <= k + kc; i++) {
			catchall = i > k
			printf "\nserver %s%d\n", catchall ? "catchall" : "bench", i
			printf "\tlisten 127.0.1.%d:2525\n", i
			printf "\thostname srv%d.bench\n", i
			printf "\tpipelining yes\n"
			if (tls == "yes")
				printf "\tstarttls offered\n"
			if (lat > 0)
				printf "\tlatency %d\n\tlatency-mode %s\n", lat, latmode
			if (catchall) {
				printf "\tunknown accept\n"
			} else {
				for (n = 1; n <= u; n++)
					printf "\tuser u%d accept\n", n
				printf "\tunknown reject\n"
			}
		}
	}'
} >"$RUN_DIR/smtpd.conf.tmp"
mv "$RUN_DIR/smtpd.conf.tmp" "$RUN_DIR/smtpd.conf"

# ---------------------------------------------------------------- list.csv
# The rows are built and shuffled in awk with its own Park-Miller generator
# (x = 16807 x mod 2^31-1, exact in doubles), so the same seed gives the
# same list with any awk.  Unknown rows: round(F * D * U), given to domains
# spread evenly (x<N>, then x<N>.2, x<N>.3 ... if a domain gets several).
awk -v d="$DOMAINS" -v u="$USERS" -v nc="$NCATCH" -v uf="$UNKNOWN" -v seed="$SEED" \
	-v list="$RUN_DIR/list.csv.tmp" -v expf="$RUN_DIR/expected.csv.tmp" '
function rnd(n) { x = (x * 16807) % 2147483647; return x % n }
BEGIN {
	x = seed
	split("Anna Ben Carla David Eva Felix Greta Hugo Ines Jonas Klara Lukas Mia Noah Olga Paul Rosa Sven Tina Umar Vera Yusuf Zoe Emil", fn, " ")
	split("Adler Becker Castro Dietz Engel Fischer Gruber Hansen Ito Jansen Keller Lang Moreau Novak Olsen Petrov Quinn Richter Silva Tanaka Ulrich Vogel Weber Young", ln, " ")
	nfn = 24; nln = 24
	nk = d * u
	nu = int(uf * nk + 0.5)
	m = 0
	for (n = 1; n <= d; n++) {
		ca = nc > 0 && int(n * nc / d) != int((n - 1) * nc / d)
		for (i = 1; i <= u; i++) {
			m++; row[m] = "u" i "@d" n ".bench"; st[m] = ca ? "catch_all" : "deliverable"
		}
	}
	for (j = 0; j < nu; j++) {
		# domain of the j-th unknown: evenly spread, wrapping around
		if (nu <= d) { n = int(j * d / nu) + 1; rep = 0 }
		else { n = j % d + 1; rep = int(j / d) }
		m++; row[m] = "x" n (rep ? "." (rep + 1) : "") "@d" n ".bench"
		ca = nc > 0 && int(n * nc / d) != int((n - 1) * nc / d)
		st[m] = ca ? "catch_all" : "undeliverable"
	}
	for (i = m; i > 1; i--) {
		j = rnd(i) + 1
		t = row[i]; row[i] = row[j]; row[j] = t
		t = st[i]; st[i] = st[j]; st[j] = t
	}
	print "email,name" > list
	print "email,expected" > expf
	for (i = 1; i <= m; i++) {
		print row[i] "," fn[rnd(nfn) + 1] " " ln[rnd(nln) + 1] > list
		print row[i] "," st[i] > expf
	}
}'
mv "$RUN_DIR/list.csv.tmp" "$RUN_DIR/list.csv"
mv "$RUN_DIR/expected.csv.tmp" "$RUN_DIR/expected.csv"

cat >"$RUN_DIR/bench.params" <<EOF
# written by bench/world/gen.sh; read by start.sh
BENCH_DOMAINS=$DOMAINS
BENCH_USERS=$USERS
BENCH_LATENCY=$LATENCY
BENCH_TLS=$TLS
BENCH_SERVERS=$SERVERS
BENCH_CATCHALL_SERVERS=$KC
BENCH_CATCHALL_DOMAINS=$NCATCH
BENCH_SEED=$SEED
BENCH_DNS_PORT=$DNS_PORT
BENCH_MAX_CONNECTIONS=$MAXCONN
EOF

rows=$(($(wc -l <"$RUN_DIR/list.csv") - 1))
echo "bench world generated in $RUN_DIR: $DOMAINS domains x $USERS users, $rows addresses in list.csv," \
	"$SERVERS servers 127.0.1.1-$SERVERS:2525$( ((KC > 0)) && echo " + $KC catch-all up to 127.0.1.$((SERVERS + KC)) ($NCATCH domains)")," \
	"latency ${LATENCY} ms, tls $TLS, dns 127.0.0.1:$DNS_PORT"
