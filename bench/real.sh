#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/real.sh — the real-server bench (bench/realworld/README.md).
# Prints figures, passes or fails nothing.
#
#   bench/real.sh [--addresses N] [--domains D] [--runs batched,no-batching]
#                 [--delay MS] [--keep]
#
# Installs what it needs (bench/realworld/install.sh: postfix, postgrey,
# unbound), builds build/release (-DEMV_TESTS=ON; targets emailverify and
# emv-delay-relay), generates the world (bench/realworld/gen.sh: 5,000
# addresses over 250 domains, 28 % unknown users, four real Postfix
# instances with Debian's anti-harvest defaults behind 25 ms-each-way
# relays), and runs `emailverify verify --concurrency 10` on the list, once
# batched (default settings) and once with --no-batching, on a fresh world
# each (postgrey forgets, logs start empty).  For each it prints one line:
# addresses/s and wall time, SMTP sessions per address as the servers
# logged them ("connect from"), sessions that passed Postfix's soft error
# limit (more than 10 rejected commands in the "disconnect from ...
# commands=OK/TOTAL" statistics: every later reply came a second late),
# sessions that got "421 4.7.0 Error: too many errors" (hard limit), and
# verdict accuracy against expected.csv, followed by the wrong verdicts
# counted by category.
#
#   --addresses N   list size (default 5000); --domains defaults to N/20
#                   within 10..250
#   --runs LIST     which of batched,no-batching to run (default both)
#   --delay MS      one-way relay delay (default 25: 50 ms round trip)
#   --keep          leave the last world running (stop it with
#                   bench/realworld/stop.sh $EMV_REAL_DIR/world)
# Environment:
#   EMV_REAL_OPTS     more options for emailverify verify, after the bench's
#                     own (so they override them), e.g. "--retry-schedule 10,30,60"
#                     or "--providers data/providers.conf"
#   EMV_REAL_BIN      an emailverify binary to measure instead of build/release's
#                     (another engine version)
#   EMV_REAL_RELAY    an emv-delay-relay binary; with both set nothing is built
#   EMV_REAL_DIR      work directory (default /tmp/emailverify-realbench)
#   EMV_REAL_TIMEOUT  seconds a verify run may take (default 1800)
# Everything listens on 127.0.2.x / 127.0.3.x (DNS 127.0.2.53:5320); all of
# it is stopped on exit, pass or fail.  Run as root (Postfix).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${EMV_REAL_DIR:-/tmp/emailverify-realbench}
world=$work/world
ADDRS=5000 DOMAINS= RUNS=batched,no-batching DELAY=25 KEEP=0
die() { echo "real.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
	case $1 in
	--addresses) ADDRS=${2:?}; shift 2 ;;
	--domains) DOMAINS=${2:?}; shift 2 ;;
	--runs) RUNS=${2:?}; shift 2 ;;
	--delay) DELAY=${2:?}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
[[ $ADDRS =~ ^[0-9]+$ ]] && ((ADDRS >= 10)) || die "--addresses must be at least 10"
[ -n "$DOMAINS" ] || DOMAINS=$((ADDRS / 20 < 10 ? 10 : ADDRS / 20 > 250 ? 250 : ADDRS / 20))
[ "$(id -u)" -eq 0 ] || die "must run as root (Postfix's master needs it)"

bench/realworld/install.sh >/dev/null 2>"$work.install.log" || { cat "$work.install.log" >&2; die "install failed"; }
bin=${EMV_REAL_BIN:-$root/build/release/cli/emailverify}
relay=${EMV_REAL_RELAY:-$root/build/release/bench/emv-delay-relay}
if [ -z "${EMV_REAL_BIN:-}" ] || [ -z "${EMV_REAL_RELAY:-}" ]; then
	cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DEMV_TESTS=ON >/dev/null
	cmake --build build/release -j"$(nproc)" --target emailverify emv-delay-relay >/dev/null
fi
[ -x "$relay" ] || die "no emv-delay-relay at $relay"
[ -x "$bin" ] || die "no emailverify at $bin"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$work"
cleanup() { [ "$KEEP" = 1 ] || bench/realworld/stop.sh "$world" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

fresh_world() {
	bench/realworld/stop.sh "$world" >/dev/null 2>&1 || true
	rm -rf "$world"
	bench/realworld/gen.sh "$world" --addresses "$ADDRS" --domains "$DOMAINS" --delay "$DELAY" 2>/dev/null
	bench/realworld/start.sh "$world" "$relay" 2>"$work/start.log" || { cat "$work/start.log" >&2; die "the world did not start"; }
	# the logs so far hold start.sh's own health checks: measure after them
	for i in 1 2 3 4; do stat -c %s "$world/rw$i/maillog" >"$world/rw$i/maillog.mark"; done
}

# the servers' view of the run: every log line after the mark
server_log() { for i in 1 2 3 4; do tail -c +$(($(cat "$world/rw$i/maillog.mark") + 1)) "$world/rw$i/maillog"; done; }

common=(--dns 127.0.2.53:5320 --preflight-domains d1.real --smtp-port 2525 --allow-private-mx
	--mail-from probe@verifier.real --helo probe1.verifier.real --progress none
	--providers "$root/bench/providers-bench.conf" --concurrency 10)
# shellcheck disable=SC2206 # word splitting is the point
extra=(${EMV_REAL_OPTS:-})

measure() { # label, verify options...
	local label=$1; shift
	local out=$work/$label.csv sum rc=0
	sum=$( { timeout "${EMV_REAL_TIMEOUT:-1800}" /usr/bin/time -f "TIME %e %U %S %M" "$bin" verify "${common[@]}" "$@" \
		"${extra[@]}" -o "$out" "$world/list.csv"; } 2>&1 ) || rc=$?
	echo "$sum" >"$work/$label.summary"
	local addrs rate wall engine_sessions
	addrs=$(sed -n 's/.*unique addresses verified \([0-9]*\).*/\1/p' <<<"$sum")
	rate=$(sed -n 's/.*unique addresses verified [0-9]* in [0-9.]* s (\([0-9]*\)\/s).*/\1/p' <<<"$sum")
	engine_sessions=$(sed -n 's/.*SMTP sessions \([0-9]*\) (.*/\1/p' <<<"$sum")
	read -r _ wall _ < <(grep '^TIME' <<<"$sum" || echo "TIME ? ?")
	server_log >"$work/$label.maillog"
	# sessions; soft limit (> 10 rejected commands); 421 too many errors
	read -r sessions soft hard < <(awk '
		/ connect from / { s++ }
		/ disconnect from / {
			for (i = 1; i <= NF; i++) if ($i ~ /^commands=/) {
				split(substr($i, 10), a, "/"); err = (2 in a) ? a[2] - a[1] : 0
				if (err > 10) soft++
			}
		}
		/too many errors after / { h++ }
		END { print s + 0, soft + 0, h + 0 }' "$work/$label.maillog")
	# verdicts: out.csv (email,status,reason,...) against expected.csv
	awk -F, -v wrongf="$work/$label.wrong" '
		NR == FNR { if (FNR > 1) { exp_[$1] = $2; cat[$1] = $3; total++ } next }
		FNR == 1 { next }
		($1 in exp_) && !($1 in seen) {
			seen[$1] = 1; n++
			if ($2 == exp_[$1]) ok++
			else w[cat[$1] ": " $2 "/" $3]++
		}
		END {
			for (e in exp_) if (!(e in seen)) w[cat[e] ": no result"]++
			for (k in w) printf "    wrong  %-60s %6d\n", k, w[k] > wrongf
			printf "%d %d\n", ok + 0, total
		}' "$world/expected.csv" "$out" 2>/dev/null >"$work/$label.acc" || echo "0 $ADDRS" >"$work/$label.acc"
	local ok total
	read -r ok total <"$work/$label.acc"
	printf '%-12s %5s addr %6s addr/s %8s s wall  %5d sessions %6.3f sess/addr (engine %s)  %4d soft-limit  %4d 421  accuracy %6.2f %% (%d wrong)%s\n' \
		"$label" "${addrs:-?}" "${rate:-?}" "$wall" "$sessions" "$(awk -v s="$sessions" -v a="$ADDRS" 'BEGIN { print s / a }')" \
		"${engine_sessions:-?}" "$soft" "$hard" "$(awk -v o="$ok" -v t="$total" 'BEGIN { print t ? 100 * o / t : 0 }')" \
		$((total - ok)) "$( ((rc == 0)) || echo "  [emailverify exit $rc, see $work/$label.summary]")"
	[ ! -s "$work/$label.wrong" ] || sort "$work/$label.wrong"
}

echo "emailverify real-server bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), postfix $(postconf -d -h mail_version 2>/dev/null)"
echo "$ADDRS addresses over $DOMAINS domains, 28 % unknown, 4 Postfix (Debian defaults; one with recipient limit 1; one with postgrey, 5 s) behind $((2 * DELAY)) ms RTT, --concurrency 10${EMV_REAL_OPTS:+, EMV_REAL_OPTS: $EMV_REAL_OPTS}"
echo
IFS=, read -ra runs <<<"$RUNS"
for r in "${runs[@]}"; do
	case $r in
	batched) fresh_world; measure batched ;;
	no-batching) fresh_world; measure no-batching --no-batching ;;
	*) die "unknown run '$r' (batched, no-batching)" ;;
	esac
done
echo
echo "files: $work/{batched,no-batching}.{csv,summary,maillog,wrong}"
