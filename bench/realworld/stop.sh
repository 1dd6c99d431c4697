#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/realworld/stop.sh RUN_DIR — stop everything start.sh RUN_DIR started.
# Idempotent.  Signals only the pids in RUN_DIR's pidfiles, and only
# processes whose command line names RUN_DIR; the Postfix instances go
# through tests/world/postfix/stop.sh (by MAIL_CONFIG=RUN_DIR/rwI/etc).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ "$#" -eq 1 ] || { echo "usage: $0 RUN_DIR" >&2; exit 2; }
[ -d "$1" ] || exit 0
RUN_DIR=$(cd "$1" && pwd -P)
PATH=$PATH:/usr/sbin:/sbin

stop_pidfile() { # pidfile
	local f=$1 pid
	[ -s "$f" ] || return 0
	pid=$(head -n1 "$f" | tr -dc 0-9)
	[ -n "$pid" ] || return 0
	if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$RUN_DIR"; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	fi
	rm -f "$f"
}

rc=0
stop_pidfile "$RUN_DIR/relay.pid"
for i in 1 2 3 4; do
	[ -d "$RUN_DIR/rw$i/etc" ] || continue
	"$root/tests/world/postfix/stop.sh" "$RUN_DIR/rw$i" 2>/dev/null || rc=1
done
stop_pidfile "$RUN_DIR/postgrey/postgrey.pid"
stop_pidfile "$RUN_DIR/unbound.pid"
exit $rc
