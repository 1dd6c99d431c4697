#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# stop.sh RUN_DIR - stop the bench world started by start.sh RUN_DIR.
#
# Idempotent: nothing running is not an error.  Signals only the pids in
# RUN_DIR/smtpd.pid and RUN_DIR/unbound.pid, and only if that process's
# command line names RUN_DIR (a reused pid, or another world, is never
# touched): SIGTERM, then SIGKILL after 5 s.  Exits non-zero only if a
# process refuses to die.
set -euo pipefail

RUN_DIR=${1:?usage: stop.sh RUN_DIR}
[[ -d $RUN_DIR ]] || exit 0
RUN_DIR=$(cd "$RUN_DIR" && pwd)
rc=0

running() { # pid: exists and is not a zombie
	local st
	[[ -r /proc/$1/stat ]] || return 1
	st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ -n $st && $st != Z && $st != X ]]
}

mine() { # pid: its command line mentions RUN_DIR/
	local cmd
	cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *"$RUN_DIR/"* ]]
}

stop_pidfile() { # name pidfile
	local name=$1 pidfile=$2 pid
	[[ -f $pidfile ]] || return 0
	pid=$(head -n 1 "$pidfile" 2>/dev/null | tr -dc 0-9) || true
	if [[ -n $pid ]] && running "$pid" && mine "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			running "$pid" || break
			sleep 0.1
		done
		if running "$pid"; then
			echo "bench stop: $name (pid $pid) ignored SIGTERM, sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
			if running "$pid"; then
				echo "bench stop: $name (pid $pid) is still running" >&2
				rc=1
				return 0
			fi
		fi
		echo "bench stop: $name (pid $pid) stopped"
	fi
	rm -f "$pidfile"
}

stop_pidfile emv-testsmtpd "$RUN_DIR/smtpd.pid"
stop_pidfile unbound "$RUN_DIR/unbound.pid"
rm -f "$RUN_DIR/bench.env"
exit $rc
