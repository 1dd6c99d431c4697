#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# stop.sh RUN_DIR - stop the unbound started by start.sh RUN_DIR.  Only the
# pid in RUN_DIR/unbound.pid, and only if its command line names RUN_DIR,
# so a reused pid or another test's unbound is never touched.  Idempotent.
set -uo pipefail
RUN_DIR=${1:?usage: stop.sh RUN_DIR}
[[ -f $RUN_DIR/unbound.pid ]] || exit 0
RUN_DIR=$(cd "$RUN_DIR" && pwd)
pid=$(head -n 1 "$RUN_DIR/unbound.pid" | tr -dc 0-9)
ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$RUN_DIR/"; }
if [[ -n $pid ]] && ours "$pid"; then
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		ours "$pid" || break
		sleep 0.1
	done
	ours "$pid" && kill -KILL "$pid" 2>/dev/null
fi
rm -f "$RUN_DIR/unbound.pid"
exit 0
