#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/audit/verify_reaudit.sh EMAILVERIFY DNS UNBOUND_CONF WORKDIR - the
# periodic pool audit inside a running engine (`emailverify verify --pool`,
# the same emv_setup set-up as the worker): while a session sits on a mail
# server that never greets (a silent listener of this script), 127.0.0.61 is
# listed in flip.audit.test through the audit DNS's control socket and must
# be held by a re-audit, then unlisted and be back in rotation, with
# audit_interval = 1s.  The run still ends with its verdict.
set -euo pipefail
bin=$1 dns=$2 conf=$3 dir=$4
mkdir -p "$dir"
ctl() { PATH=$PATH:/usr/sbin:/sbin unbound-control -c "$conf" "$@" >/dev/null; }
fail() { echo "FAILED: $*" >&2; [[ -f $dir/err ]] && cat "$dir/err" >&2; exit 1; }

listener_pid= verify_pid=
cleanup() {
	[[ -n $verify_pid ]] && kill "$verify_pid" 2>/dev/null
	[[ -n $listener_pid ]] && kill "$listener_pid" 2>/dev/null
	ctl local_data_remove 61.0.0.127.flip.audit.test. || true
	ctl local_data_remove slow.audit.test. || true
	ctl local_data_remove tarpit.audit.test. || true
}
trap cleanup EXIT

# a mail server that accepts and never says a word (for 40 s at most);
# perl-base is on every Debian machine (python3 is not in a fresh root)
rm -f "$dir/port"
perl -MIO::Socket::INET -e '
	my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 16, ReuseAddr => 1) or die "listen: $!";
	open(my $f, ">", "$ARGV[0].tmp") or die; print $f $s->sockport; close $f; rename("$ARGV[0].tmp", $ARGV[0]);
	my @conns; my $end = time + 40; $s->timeout(1);
	while (time < $end) { my $c = $s->accept; push @conns, $c if $c; }
' "$dir/port" &
listener_pid=$!
for _ in $(seq 1 50); do [[ -s $dir/port ]] && break; sleep 0.1; done
port=$(cat "$dir/port") || fail "no listener"

ctl local_data_remove 61.0.0.127.flip.audit.test. || true
ctl local_data "slow.audit.test. 60 IN MX 10 tarpit.audit.test."
ctl local_data "tarpit.audit.test. 60 IN A 127.0.0.1"
cat >"$dir/pool.conf" <<'CONF'
region = audit
mail_from = probe@audit.test
source = 127.0.0.61 mail-a.audit.test
source = 127.0.0.66 out.audit.test
dnsbl = flip.audit.test
audit_interval = 1s
CONF
printf 'email\nsomeone@slow.audit.test\n' >"$dir/list.csv"

"$bin" verify --dns "$dns" --preflight-domains audit.test --format jsonl --progress none --threads 1 \
	--pool "$dir/pool.conf" --allow-private-mx --smtp-port "$port" --timeout 12 --no-catch-all-probe \
	--max-retry-time 0 --deadline 20s "$dir/list.csv" >"$dir/out" 2>"$dir/err" &
verify_pid=$!

wait_for() { # PATTERN SECONDS
	for _ in $(seq 1 $(($2 * 10))); do
		grep -q "$1" "$dir/err" && return 0
		kill -0 "$verify_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
sleep 2
kill -0 "$verify_pid" 2>/dev/null || fail "verify ended before the listing was flipped"
t0=$(date +%s%N)
ctl local_data "61.0.0.127.flip.audit.test. 60 IN A 127.0.0.2"
wait_for 'source 127.0.0.61 (mail-a.audit.test): failed its re-audit: held out of rotation .*listed in flip.audit.test' 6 ||
	fail "127.0.0.61 was listed but not held"
t1=$(date +%s%N)
ctl local_data_remove 61.0.0.127.flip.audit.test.
wait_for 'source 127.0.0.61 (mail-a.audit.test): passed its re-audit: back in rotation' 6 ||
	fail "127.0.0.61 was unlisted but not back in rotation"
t2=$(date +%s%N)
kill -0 "$verify_pid" 2>/dev/null || fail "verify ended before the address came back (the session should still be open)"
wait "$verify_pid" || fail "verify exited $?"
verify_pid=
grep -q '"email":"someone@slow.audit.test"' "$dir/out" || fail "no verdict: $(cat "$dir/out")"
grep -q 'source 127.0.0.66' "$dir/err" && fail ".66 changed state"
echo "re-audit in a running engine: held $(((t1 - t0) / 1000000)) ms after the listing, back $(((t2 - t1) / 1000000)) ms after it went — ok"
