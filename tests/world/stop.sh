#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# stop.sh RUN_DIR - stop the test world started by start.sh RUN_DIR.
#
# Idempotent: nothing running is not an error.  Only processes whose pid is
# in RUN_DIR's pidfiles and whose command line names RUN_DIR are signalled
# (SIGTERM, then SIGKILL after 5 s), so a reused pid or another world is
# never touched.  Exits non-zero only if a process refuses to die.
set -uo pipefail

RUN_DIR=${1:?usage: stop.sh RUN_DIR}
[[ -d $RUN_DIR ]] || exit 0
RUN_DIR=$(cd "$RUN_DIR" && pwd)
rc=0

alive() { # pid: running and not a zombie
	local state
	[[ -r /proc/$1/stat ]] || return 1
	state=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[[ -n $state && $state != Z && $state != X ]]
}

ours() { # pid: its command line mentions RUN_DIR
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$RUN_DIR/"
}

stop_one() { # name pidfile
	local name=$1 pidfile=$2 pid
	[[ -f $pidfile ]] || return 0
	pid=$(head -n 1 "$pidfile" 2>/dev/null | tr -dc 0-9)
	if [[ -n $pid ]] && alive "$pid" && ours "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			echo "world stop: $name (pid $pid) ignored SIGTERM, sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
			if alive "$pid"; then
				echo "world stop: $name (pid $pid) is still running" >&2
				rc=1
				return
			fi
		fi
		echo "world stop: $name (pid $pid) stopped"
	fi
	rm -f "$pidfile"
}

stop_one emv-testsmtpd "$RUN_DIR/smtpd.pid"
stop_one unbound "$RUN_DIR/unbound.pid"
rm -f "$RUN_DIR/world.env"
exit $rc
