#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# stop.sh RUN_DIR - stop the unbound that start.sh RUN_DIR started: only the
# pid in RUN_DIR/unbound.pid, and only if its command line names RUN_DIR.
set -uo pipefail
RUN_DIR=${1:?usage: stop.sh RUN_DIR}
[[ -d $RUN_DIR ]] || exit 0
RUN_DIR=$(cd "$RUN_DIR" && pwd)
pidfile=$RUN_DIR/unbound.pid
[[ -f $pidfile ]] || exit 0
pid=$(head -n 1 "$pidfile" | tr -dc 0-9)
if [[ -n $pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$RUN_DIR/"; then
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		[[ -d /proc/$pid ]] || break
		sleep 0.1
	done
	[[ -d /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null
fi
rm -f "$pidfile"
exit 0
