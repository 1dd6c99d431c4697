#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/console/run.sh RUN_DIR NPM_PREFIX COORDINATOR WORKER BUILD_DIR
#
# The web console in a real browser (issue 14): a fresh database on the
# "pg" fixture's PostgreSQL, `emailverify-coordinator serve` with its
# embedded Kafka, a worker probing the test world ("world" fixture), two
# tenants' tokens and a revoked one; then console.mjs drives Debian's
# Chromium through playwright-core.  Screenshots: RUN_DIR/screenshots/.
set -euo pipefail
run=${1:?}; npm_prefix=${2:?}; coordinator=${3:?}; worker=${4:?}; build=${5:?}
here=$(cd "$(dirname "$0")" && pwd)
port=${EMV_CONSOLE_PORT:-18140}
rm -rf "$run"; mkdir -p "$run/screenshots"
# shellcheck disable=SC1091
. "$build/pg-run/pg.env"
# shellcheck disable=SC1091
. "$build/world/world.env"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

db=emv_console
psql -q "$EMV_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db OWNER emailverify"
url="${EMV_PG_URL%/*}/$db"
"$coordinator" migrate --database "$url" >/dev/null 2>&1 || true
acme=$("$coordinator" token create --database "$url" --tenant acme --name console 2>/dev/null)
other=$("$coordinator" token create --database "$url" --tenant other --name console 2>/dev/null)
revoked=$("$coordinator" token create --database "$url" --tenant acme --name old 2>/dev/null)
"$coordinator" token revoke --database "$url" 3 2>/dev/null

# the fleet's reputation as the router stores it from the workers' ip-state
# (a pool of real source addresses needs more than loopback): one address
# quarantined by a provider, one held
psql -q "$url" -c "INSERT INTO ip_state (ip, provider, region, state, worker, rcpts, blocks, sessions,
    strikes, rate_permille, until, since, last_reply) VALUES
    ('192.0.2.7', '', 'eu-west', 'healthy', 'w1', 50, 1, 5, 0, 1000, NULL, now(), ''),
    ('192.0.2.7', 'outlook', 'eu-west', 'quarantined', 'w1', 50, 1, 5, 2, 0, now() + interval '30 min', now(),
     '550 5.7.606 Access denied, banned sending IP'),
    ('2001:db8::9', '', 'us-east', 'held', 'w2', 0, 0, 0, 0, 0, NULL, now(), 'PTR 2001:db8::9 -> nothing')"

"$coordinator" serve --listen "127.0.0.1:$port" --database "$url" --embedded-kafka \
    --ready-file "$run/ready" --rate-limit 1000 --rate-burst 1000 >"$run/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [[ -e $run/ready ]] && break; sleep 0.1; done
[[ -e $run/ready ]] || { echo "the server did not become ready; see $run/server.log" >&2; tail -20 "$run/server.log" >&2; exit 1; }
brokers=$(sed -n 's/^brokers=//p' "$run/ready")
"$worker" --brokers "$brokers" --name console-test --dns "$EMV_WORLD_DNS" --smtp-port "$EMV_WORLD_SMTP_PORT" \
    --allow-private-mx --mail-from probe@verifier.test --helo probe.verifier.test \
    --providers "$here/../data/providers-test.conf" --timeout 5 --preflight-domains accept.test,catchall.test \
    >"$run/worker.log" 2>&1 &
pids+=($!)

EMV_URL="http://127.0.0.1:$port" EMV_TOKEN="$acme" EMV_TOKEN_OTHER="$other" EMV_TOKEN_REVOKED="$revoked" \
EMV_RUN="$run" NODE_PATH="$npm_prefix/node_modules" \
    node "$here/console.mjs" || {
	echo "the server's and the worker's warnings and errors:" >&2
	grep -hE 'WARN|ERROR|FATAL' "$run/server.log" "$run/worker.log" | tail -n 30 >&2
	exit 1
}
