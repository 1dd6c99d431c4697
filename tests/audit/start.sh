#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# start.sh RUN_DIR [PORT] - run unbound with the self-audit test zones on
# 127.0.0.1:PORT (default 5400) in the background; writes RUN_DIR/unbound.pid.
# Fails with the log if it does not accept connections within 10 s.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=${1:?usage: start.sh RUN_DIR [PORT]}
PORT=${2:-5400}
UNBOUND=$(PATH=$PATH:/usr/sbin:/sbin command -v unbound || true)
CHECKCONF=$(PATH=$PATH:/usr/sbin:/sbin command -v unbound-checkconf || true)
[[ -n $UNBOUND ]] || { echo "audit dns: unbound not found" >&2; exit 1; }

mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
bash "$HERE/stop.sh" "$RUN_DIR"
sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@DNS_PORT@|$PORT|g" "$HERE/unbound.conf.in" >"$RUN_DIR/unbound.conf"
if [[ -n $CHECKCONF ]]; then
	"$CHECKCONF" "$RUN_DIR/unbound.conf" >"$RUN_DIR/checkconf.out" 2>&1 ||
		{ cat "$RUN_DIR/checkconf.out" >&2; exit 1; }
fi
rm -f "$RUN_DIR/unbound.pid" "$RUN_DIR/unbound.log"
"$UNBOUND" -c "$RUN_DIR/unbound.conf" </dev/null >"$RUN_DIR/unbound.stderr" 2>&1 ||
	{ cat "$RUN_DIR/unbound.stderr" "$RUN_DIR/unbound.log" >&2 2>/dev/null; exit 1; }
for _ in $(seq 1 100); do
	# unbound serves TCP too: a connect is a cheap readiness check
	if [[ -s $RUN_DIR/unbound.pid ]] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
		echo "audit dns up on 127.0.0.1:$PORT (pid $(cat "$RUN_DIR/unbound.pid"))"
		exit 0
	fi
	sleep 0.1
done
echo "audit dns: no answer on 127.0.0.1:$PORT within 10 s (port in use?)" >&2
tail -n 20 "$RUN_DIR/unbound.log" "$RUN_DIR/unbound.stderr" >&2 2>/dev/null || true
bash "$HERE/stop.sh" "$RUN_DIR"
exit 1
