#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/cache.sh — the verdict cache's fast path (docs/cache.md, bench/README.md):
# a 1,000,000-row job whose addresses are 90 % fresh in the cache.  Prints
# figures, passes or fails nothing.
#
#   1. a first job of the list is ingested and the cache filled from its
#      addresses, set-based (90 % of them: deliverable, a day old), as a
#      previous run of the same list would have left it
#   2. the same list again: ingest, split (the cache answers 900,000 rows
#      with one INSERT ... SELECT; the other 100,000 go to Kafka in
#      batches), export of all rows (CSV, the coordinator's CLI)
#   3. rows/s of the cached part: ingest + the split's cache answer + export
#
# The same throwaway PostgreSQL (tests/cluster/pg, port 15442) and Kafka
# (port 19192) as bench/cluster.sh, under $EMV_BENCH_DIR (default
# /tmp/emailverify-bench-cache).  EMV_BENCH_EXPLAIN=1 prints EXPLAIN ANALYZE
# of the cache's answer (on a copy of the job, rolled back).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run=${EMV_BENCH_DIR:-/tmp/emailverify-bench-cache}
n=${EMV_BENCH_ROWS:-1000000}
domains=${EMV_BENCH_DOMAINS:-10000}
coord=$root/build/release/coordinator/emailverify-coordinator

# shellcheck source=lib.sh
source "$root/bench/lib.sh"
bench_start "$run" emailverify-coordinator
unset EMV_CACHE_SCOPE EMV_CACHE_AGES

list=$run/list.csv
bench_list "$list" "$n" "$domains"

echo "emailverify cache bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $n rows, $domains domains, load $(cut -d' ' -f1 /proc/loadavg)"
"$coord" migrate >/dev/null
sql() { psql "$DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }

# 1. the first job, and the cache it would have left (90 %, a day old)
out=$("$coord" ingest "$list")
first=$(sed -n 's/^job \([^:]*\):.*/\1/p' <<<"$out")
sql "INSERT INTO verdict_cache (scope, address, status, reason, mx_host, smtp_code, enhanced_code, reply,
       attempts, verified_at, tenant, job_id)
     SELECT 'default', address, 'deliverable', 'accepted', 'mx.' || domain, 250, '2.1.5', '2.1.5 Ok', 1,
       now() - interval '1 day', 'default', job_id
     FROM addresses WHERE job_id = '$first' AND id % 10 <> 0"
sql "VACUUM ANALYZE verdict_cache"
echo "cache: $(sql "SELECT count(*) FROM verdict_cache") entries"

# 2. the same list again
out=$( { t "$coord" ingest "$list"; } 2>&1 )
job=$(sed -n 's/^job \([^:]*\):.*/\1/p' <<<"$out")
read -r _ iw iu is irss < <(grep '^TIME' <<<"$out")
out=$( { t "$coord" split --brokers "$EMV_KAFKA_BROKERS" "$job"; } 2>&1 )
read -r _ sw su ss srss < <(grep '^TIME' <<<"$out")
cw=$(sed -n 's/.* from the verdict cache in \([0-9.]*\) s.*/\1/p' <<<"$out")
cached=$(sql "SELECT n_cached FROM jobs WHERE id = '$job'")
batched=$(sql "SELECT split_done FROM jobs WHERE id = '$job'")
out=$( { t "$coord" export -o /dev/null "$job"; } 2>&1 )
read -r _ xw xu xs xrss < <(grep '^TIME' <<<"$out")

printf '%-24s %8.2f s %9.0f rows/s   client cpu %6.2f s  %7d KiB RSS\n' ingest "$iw" "$(awk -v n="$n" -v w="$iw" 'BEGIN{print n/w}')" "$(awk -v a="$iu" -v b="$is" 'BEGIN{print a+b}')" "$irss"
printf '%-24s %8.2f s %9.0f addr/s   (%s answered, %s batched; whole split %.2f s)\n' "split: cache answer" "$cw" "$(awk -v n="$cached" -v w="$cw" 'BEGIN{print (w > 0 ? n/w : 0)}')" "$cached" "$batched" "$sw"
printf '%-24s %8.2f s %9.0f rows/s   client cpu %6.2f s  %7d KiB RSS\n' export "$xw" "$(awk -v n="$n" -v w="$xw" 'BEGIN{print n/w}')" "$(awk -v a="$xu" -v b="$xs" 'BEGIN{print a+b}')" "$xrss"
tot=$(awk -v a="$iw" -v b="$cw" -v c="$xw" 'BEGIN{print a+b+c}')
printf '%-24s %8.2f s %9.0f rows/s   (%.0f cached rows/s)   (target: >= 100,000 rows/s)\n' "cached part end to end" "$tot" "$(awk -v n="$n" -v w="$tot" 'BEGIN{print n/w}')" "$(awk -v n="$cached" -v w="$tot" 'BEGIN{print n/w}')"

if [[ ${EMV_BENCH_EXPLAIN:-0} = 1 ]]; then
	# the answer again, on a fresh copy of its results, rolled back
	psql "$DATABASE_URL" -qX -v ON_ERROR_STOP=1 <<SQL
BEGIN;
DELETE FROM results WHERE job_id = '$job' AND cached;
SET LOCAL work_mem = '128MB'; SET LOCAL jit = off;
EXPLAIN (ANALYZE, BUFFERS)
INSERT INTO results (job_id, address_id, status, reason, final, flags, mx_host, mx_ip, source_ip, region, tls,
  catch_all, smtp_code, enhanced_code, reply, attempts, duration_ms, detail, updated_at, cached, verified_at)
SELECT a.job_id, a.id, v.status, v.reason, true, v.flags, v.mx_host, v.mx_ip, v.source_ip, v.region, v.tls,
  v.catch_all, v.smtp_code, v.enhanced_code, v.reply, v.attempts, v.duration_ms, v.detail, now(), true, v.verified_at
FROM addresses a JOIN verdict_cache v ON v.scope = 'default' AND v.address = a.address
WHERE a.job_id = '$job' AND a.error_reason IS NULL AND a.duplicate_of IS NULL
  AND v.verified_at >= now() - interval '30 days'
ON CONFLICT (job_id, address_id) DO NOTHING;
ROLLBACK;
SQL
fi
