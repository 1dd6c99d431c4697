#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/cluster.sh — the coordinator's throughput (bench/README.md): prints figures,
# passes or fails nothing.
#
#   1. ingest of 1,000,000 addresses over 10,000 domains into PostgreSQL
#   2. split of that job into VerifyBatch messages on a real Kafka broker
#   3. results sink: 1,000,000 results (500 per message) from Kafka into
#      PostgreSQL, final verdicts and job counters included
#   4. export of the job (CSV, from a cursor) to /dev/null
#
# A throwaway PostgreSQL (tests/cluster/pg, fsync off, port 15442) and a
# single-node Kafka (tests/cluster/kafka, port 19192) run under
# $EMV_BENCH_DIR (default /tmp/emailverify-bench-cluster); both on this
# machine, sharing its cores with the coordinator.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run=${EMV_BENCH_DIR:-/tmp/emailverify-bench-cluster}
n=${EMV_BENCH_ROWS:-1000000}
domains=${EMV_BENCH_DOMAINS:-10000}
coord=$root/build/release/coordinator/emailverify-coordinator
gen=$root/build/release/bench/emv-bench-results

# shellcheck source=lib.sh
source "$root/bench/lib.sh"
bench_start "$run" emailverify-coordinator emv-bench-results

list=$run/list.csv
bench_list "$list" "$n" "$domains"

echo "emailverify cluster bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $n rows, $domains domains"
"$coord" migrate >/dev/null
out=$( { t "$coord" ingest "$list"; } 2>&1 )
job=$(sed -n 's/^job \([^:]*\):.*/\1/p' <<<"$out")
read -r _ iw iu is irss < <(grep '^TIME' <<<"$out")
out=$( { t "$coord" split --brokers "$EMV_KAFKA_BROKERS" "$job"; } 2>&1 )
read -r _ sw su ss srss < <(grep '^TIME' <<<"$out")
printf '%-22s %8.2f s %9.0f rows/s   client cpu %6.2f s  %7d KiB RSS\n' ingest "$iw" "$(awk -v n="$n" -v w="$iw" 'BEGIN{print n/w}')" "$(awk -v a="$iu" -v b="$is" 'BEGIN{print a+b}')" "$irss"
printf '%-22s %8.2f s %9.0f addr/s   client cpu %6.2f s  %7d KiB RSS\n' split "$sw" "$(awk -v n="$n" -v w="$sw" 'BEGIN{print n/w}')" "$(awk -v a="$su" -v b="$ss" 'BEGIN{print a+b}')" "$srss"
printf '%-22s %8.2f s %9.0f addr/s\n' "ingest + split" "$(awk -v a="$iw" -v b="$sw" 'BEGIN{print a+b}')" "$(awk -v n="$n" -v a="$iw" -v b="$sw" 'BEGIN{print n/(a+b)}')"

"$gen" "$EMV_KAFKA_BROKERS" "$job" "$n" 500 2>/dev/null
out=$( { t "$coord" sink --brokers "$EMV_KAFKA_BROKERS" --until-idle 3000; } 2>&1 )
read -r _ kw ku ks krss < <(grep '^TIME' <<<"$out")
stored=$(sed -n 's/.* results, \([0-9]*\) stored.*/\1/p' <<<"$out")
kw2=$(awk -v w="$kw" 'BEGIN{print w - 3.0}') # the idle wait at the end is not work
printf '%-22s %8.2f s %9.0f results/s (%s stored)  client cpu %6.2f s  %7d KiB RSS\n' sink "$kw2" "$(awk -v n="$n" -v w="$kw2" 'BEGIN{print n/w}')" "$stored" "$(awk -v a="$ku" -v b="$ks" 'BEGIN{print a+b}')" "$krss"
state=$(psql "$DATABASE_URL" -qAtX -c "SELECT state || ' ' || n_final FROM jobs WHERE id = '$job'")
echo "job after the sink: $state"
out=$( { t "$coord" export -o /dev/null "$job"; } 2>&1 )
read -r _ xw xu xs xrss < <(grep '^TIME' <<<"$out")
printf '%-22s %8.2f s %9.0f rows/s   client cpu %6.2f s  %7d KiB RSS\n' export "$xw" "$(awk -v n="$n" -v w="$xw" 'BEGIN{print n/w}')" "$(awk -v a="$xu" -v b="$xs" 'BEGIN{print a+b}')" "$xrss"
