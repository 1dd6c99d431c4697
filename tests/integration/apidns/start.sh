#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# start.sh RUN_DIR - unbound for the API tests on 127.0.0.1:$EMV_APIDNS_PORT
# (default 5401), serving unbound.conf.in.  Writes RUN_DIR/apidns.env
# (EMV_APIDNS=127.0.0.1:PORT) once it answers.  stop.sh RUN_DIR stops it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=${1:?usage: start.sh RUN_DIR}
PORT=${EMV_APIDNS_PORT:-5401}
die() { echo "apidns start: FAILED: $*" >&2; exit 1; }
UNBOUND=$(PATH=$PATH:/usr/sbin:/sbin command -v unbound || true)
CHECKCONF=$(PATH=$PATH:/usr/sbin:/sbin command -v unbound-checkconf || true)
[[ -n $UNBOUND ]] || die "unbound not found (apt-get install unbound)"
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
bash "$HERE/stop.sh" "$RUN_DIR" >/dev/null
sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@DNS_PORT@|$PORT|g" "$HERE/unbound.conf.in" >"$RUN_DIR/unbound.conf"
if [[ -n $CHECKCONF ]]; then
	"$CHECKCONF" "$RUN_DIR/unbound.conf" >"$RUN_DIR/checkconf.out" 2>&1 ||
		{ cat "$RUN_DIR/checkconf.out" >&2; die "unbound-checkconf rejected $RUN_DIR/unbound.conf"; }
fi
rm -f "$RUN_DIR/unbound.pid" "$RUN_DIR/apidns.env"
"$UNBOUND" -c "$RUN_DIR/unbound.conf" </dev/null >"$RUN_DIR/unbound.stderr" 2>&1 ||
	{ cat "$RUN_DIR/unbound.stderr" >&2; die "unbound exited with $?"; }
for _ in $(seq 1 100); do
	if [[ -s $RUN_DIR/unbound.pid ]] && (exec 3<>"/dev/udp/127.0.0.1/$PORT") 2>/dev/null &&
		ss -Hlnu "sport = :$PORT" 2>/dev/null | grep -q "127.0.0.1:$PORT"; then
		echo "EMV_APIDNS=127.0.0.1:$PORT" >"$RUN_DIR/apidns.env"
		echo "apidns up: 127.0.0.1:$PORT (unbound pid $(cat "$RUN_DIR/unbound.pid"))"
		exit 0
	fi
	sleep 0.1
done
tail -n 20 "$RUN_DIR/unbound.log" >&2 2>/dev/null || true
bash "$HERE/stop.sh" "$RUN_DIR" >/dev/null 2>&1 || true
die "unbound is not listening on 127.0.0.1:$PORT after 10 s"
