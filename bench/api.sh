#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/api.sh [BUILD_DIR] - the HTTP API's figures (docs/api.md), printed, not judged:
#   upload   a 1,000,000-row CSV accepted (POST /v1/jobs until 201): rows/s
#   export   the same job's results streamed (GET .../results): rows/s, and
#            the server's peak RSS before and after
#   status   GET /v1/jobs/{id} latency (keep-alive, sequential) while a worker
#            and the sink are busy with that job: p50 / p99 / max
#
# Runs its own PostgreSQL (tests/cluster/pg, port $EMV_PG_PORT, default 15433),
# unbound (tests/integration/apidns, port $EMV_APIDNS_PORT, default 5401: every
# address here is NXDOMAIN, so the worker needs no SMTP) and
# `emailverify-coordinator serve --embedded-kafka` on 127.0.0.1:$PORT (18090),
# all in BUILD_DIR/bench-api (default build/release, cmake -DCMAKE_BUILD_TYPE=Release).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build/release}" && pwd)
RUN=$BUILD/bench-api
PORT=${PORT:-18090}
ROWS=${ROWS:-1000000}
export EMV_PG_PORT=${EMV_PG_PORT:-15433}
COORD=$BUILD/coordinator/emailverify-coordinator
WORKER=$BUILD/worker/emailverify-worker
mkdir -p "$RUN"
server=0 worker=0
cleanup() {
	((worker)) && kill "$worker" 2>/dev/null
	((server)) && kill "$server" 2>/dev/null
	wait 2>/dev/null
	bash "$ROOT/tests/integration/apidns/stop.sh" "$RUN/dns" >/dev/null 2>&1 || true
	bash "$ROOT/tests/cluster/pg/stop.sh" "$RUN/pg-run" >/dev/null 2>&1 || true
}
trap cleanup EXIT

EMV_PG_SYNC_COMMIT=off bash "$ROOT/tests/cluster/pg/start.sh" "$RUN/pg-run" --fresh >/dev/null 2>&1
bash "$ROOT/tests/integration/apidns/start.sh" "$RUN/dns" >/dev/null
DB=$(. "$RUN/pg-run/pg.env"; echo "$EMV_PG_URL")
TOKEN=$("$COORD" token create --database "$DB" --tenant bench 2>/dev/null)
rm -f "$RUN/ready"
"$COORD" serve --listen "127.0.0.1:$PORT" --database "$DB" --embedded-kafka --ready-file "$RUN/ready" \
	--max-upload 200000000 --rate-limit 0 >"$RUN/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do [[ -f $RUN/ready ]] && break; sleep 0.1; done
BROKERS=$(sed -n 's/^brokers=//p' "$RUN/ready")

awk -v n="$ROWS" 'BEGIN { print "email,first_name,company"; for (i = 1; i <= n; i++)
	printf "user%d@d%d.api.test,Name%d,Company %d\n", i, i % 5000, i, i % 977 }' >"$RUN/list.csv"
size=$(stat -c %s "$RUN/list.csv")

t0=$(date +%s.%N)
curl -sS -o "$RUN/upload.json" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/csv' \
	--data-binary @"$RUN/list.csv" "http://127.0.0.1:$PORT/v1/jobs"
t1=$(date +%s.%N)
JOB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$RUN/upload.json")
hwm_upload=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
printf 'upload   %d rows, %.1f MB: accepted in %.2f s = %.0f rows/s (peak RSS %d MiB)\n' "$ROWS" \
	"$(echo "$size / 1000000" | bc -l)" "$(echo "$t1 - $t0" | bc -l)" "$(echo "$ROWS / ($t1 - $t0)" | bc -l)" \
	$((hwm_upload / 1024))

# the split runs now; a worker and the sink verify while we ask for the status
sleep 1
"$WORKER" --brokers "$BROKERS" --dns "127.0.0.1:${EMV_APIDNS_PORT:-5401}" --preflight-domains nullmx.api.test --max-inflight 64 >"$RUN/worker.log" 2>&1 &
worker=$!
sleep 5
python3 - "$PORT" "$TOKEN" "$JOB" <<'EOF'
import http.client, sys, time, json
port, token, job = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port)
lat = []
for i in range(2000):
    t = time.perf_counter()
    c.request("GET", "/v1/jobs/" + job, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    body = r.read()
    lat.append((time.perf_counter() - t) * 1000)
    assert r.status == 200, body
j = json.loads(body)
lat.sort()
print("status   GET /v1/jobs/{id} x %d while the job runs (%s, %.1f %% done, %.0f results/s): "
      "p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (len(lat), j["state"], j["percent"], j["rate_per_s"],
      lat[len(lat) // 2], lat[int(len(lat) * 0.99)], lat[-1]))
EOF
kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null || true
worker=0

hwm0=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
t0=$(date +%s.%N)
curl -sS -o "$RUN/export.csv" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/jobs/$JOB/results"
t1=$(date +%s.%N)
lines=$(($(wc -l <"$RUN/export.csv") - 1))
hwm1=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
printf 'export   %d rows (%.1f MB CSV) streamed in %.2f s = %.0f rows/s (server peak RSS %d MiB before, %d MiB after)\n' \
	"$lines" "$(echo "$(stat -c %s "$RUN/export.csv") / 1000000" | bc -l)" "$(echo "$t1 - $t0" | bc -l)" \
	"$(echo "$lines / ($t1 - $t0)" | bc -l)" $((hwm0 / 1024)) $((hwm1 / 1024))
rm -f "$RUN/list.csv" "$RUN/export.csv"
