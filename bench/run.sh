#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/run.sh — the engine benchmarks of bench/README.md.  Prints figures,
# passes or fails nothing.  Builds a Release tree in build/release, brings up
# generated bench worlds on loopback (bench/world/, DNS 127.0.0.1:5310, SMTP
# 127.0.1.x:2525) one after another, and runs `emailverify verify` on them:
#
#   1. throughput: 1,000 domains x 20 addresses, STARTTLS, 50 ms round trip,
#      batched vs --no-batching in the same run (3 runs each, medians compared);
#      SMTP connections per address
#   2. memory: 10,000 concurrent plain sessions (replies 2 s late keep them open)
#   3. memory: 2,000 concurrent STARTTLS sessions
#
# Needs the packages of deploy/install-deps.sh --test (unbound, openssl).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run=${EMV_BENCH_DIR:-/tmp/emailverify-bench}
bin=$root/build/release/cli/emailverify
smtpd=$root/build/release/tests/world/emv-testsmtpd

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DEMV_TESTS=ON >/dev/null
cmake --build build/release -j"$(nproc)" --target emailverify emv-testsmtpd >/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

common=(--dns 127.0.0.1:5310 --preflight-domains d1.bench --smtp-port 2525 --allow-private-mx --mail-from probe@verifier.bench
        --helo probe1.verifier.bench --progress none --providers "$root/bench/providers-bench.conf")

world() { # name, gen.sh options...
	local dir=$run/$1; shift
	bench/world/stop.sh "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
	bench/world/gen.sh "$dir" "$@" >/dev/null
	bench/world/start.sh "$dir" "$smtpd" >/dev/null
	echo "$dir"
}

measure() { # label, dir, extra verify options...
	local label=$1 dir=$2; shift 2
	local t0 t1 sum
	sum=$( { /usr/bin/time -f "TIME %e %U %S %M" "$bin" verify "${common[@]}" "$@" -o "$dir/out.csv" \
		"$dir/list.csv"; } 2>&1 ) || { echo "$sum" >&2; return 1; }
	local addrs rate sessions per peak wall user sys rss
	addrs=$(sed -n 's/.*unique addresses verified \([0-9]*\).*/\1/p' <<<"$sum")
	rate=$(sed -n 's/.*probing [0-9.]* s (\([0-9]*\)\/s).*/\1/p' <<<"$sum")
	sessions=$(sed -n 's/.*SMTP sessions \([0-9]*\) (.*/\1/p' <<<"$sum")
	per=$(sed -n 's/.*SMTP sessions [0-9]* (\([0-9.]*\) per address.*/\1/p' <<<"$sum")
	peak=$(sed -n 's/.*at most \([0-9]*\) at once.*/\1/p' <<<"$sum")
	read -r _ wall user sys rss < <(grep '^TIME' <<<"$sum")
	printf '%-34s %7s addr %8s addr/s %7s sessions %6s conn/addr %6s peak  %6.2f s wall %6.2f s cpu  %7d KiB RSS\n' \
		"$label" "$addrs" "$rate" "$sessions" "$per" "$peak" "$wall" "$(awk -v a="$user" -v b="$sys" 'BEGIN { print a + b }')" "$rss"
	echo "$rate" >"$dir/rate"
	echo "$rss $peak" >"$dir/rss"
}

echo "emailverify bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)"
echo

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

d=$(world tput --domains 1000 --users 20 --latency 50 --latency-mode network --tls yes)
: >"$d/rates.b"; : >"$d/rates.n"
for i in 1 2 3; do
	measure "1000x20 TLS 50ms, batched #$i" "$d" --concurrency 2000
	cat "$d/rate" >>"$d/rates.b"
done
for i in 1 2 3; do
	measure "1000x20 TLS 50ms, --no-batching #$i" "$d" --concurrency 2000 --no-batching
	cat "$d/rate" >>"$d/rates.n"
done
b=$(median <"$d/rates.b")
n=$(median <"$d/rates.n")
echo "median $b vs $n addresses/s: batching wins by $(awk -v b="$b" -v n="$n" 'BEGIN { printf "%.1f", b / n }')x"
bench/world/stop.sh "$d" >/dev/null
echo

d=$(world plain10k --domains 10000 --users 1 --unknown-fraction 0 --latency 2000 --tls no)
measure "10000 plain sessions held open" "$d" --concurrency 10000
read -r rss peak <"$d/rss"
echo "peak RSS $((rss / 1024)) MiB with $peak sessions at once: $((rss / peak)) KiB per session (process included)"
bench/world/stop.sh "$d" >/dev/null
echo

d=$(world tls2k --domains 2000 --users 1 --unknown-fraction 0 --latency 2000 --tls yes)
measure "2000 TLS sessions held open" "$d" --concurrency 2000
read -r rss peak <"$d/rss"
echo "peak RSS $((rss / 1024)) MiB with $peak TLS sessions at once: $((rss / peak)) KiB per session (process included)"
bench/world/stop.sh "$d" >/dev/null
