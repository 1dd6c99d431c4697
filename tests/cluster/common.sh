#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/cluster/common.sh - helpers shared by the cluster test scripts
# (kafka/*.sh, pg/*.sh).  Sourced, never run; defines functions only.
#
#   cl_die MSG...            print "<CL_NAME>: FAILED: MSG" and exit 1
#   cl_log MSG...            print "<CL_NAME>: MSG" on stderr
#   cl_alive PID             true if PID runs and is not a zombie
#   cl_cmdline_has PID STR   true if PID's command line contains STR
#   cl_port_open HOST PORT   true if a TCP connect succeeds (bash /dev/tcp, 1 s)
#   cl_port_owner PORT       "pid/comm" of what listens on PORT (ss), or ""
#   cl_now_ms                wall clock in milliseconds
#   cl_rss_kb PID            resident set size of PID in KiB (0 if gone)
#   cl_pss_kb PID            proportional set size of PID in KiB (0 if gone)
#   cl_wait_or_kill PID SECONDS NAME
#                            wait up to SECONDS for PID to end, then SIGKILL;
#                            returns 1 if PID still runs after all that
#   cl_signal_and_wait PID SECONDS NAME
#                            SIGTERM, then cl_wait_or_kill
#
# Callers set CL_NAME first (used as the message prefix).

cl_log() { printf '%s: %s\n' "${CL_NAME:-cluster}" "$*" >&2; }

cl_die() {
	printf '%s: FAILED: %s\n' "${CL_NAME:-cluster}" "$*" >&2
	exit 1
}

cl_alive() {
	local state
	[[ -n ${1:-} && -r /proc/$1/stat ]] || return 1
	state=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[[ -n $state && $state != Z && $state != X ]]
}

cl_cmdline_has() {
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

cl_port_open() {
	timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

cl_port_owner() {
	command -v ss >/dev/null || return 0
	ss -Hltnp "sport = :$1" 2>/dev/null |
		sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\2\/\1/p' | head -n 1
}

cl_now_ms() { date +%s%3N; }

cl_rss_kb() {
	local v
	v=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true)
	echo "${v:-0}"
}

cl_pss_kb() {
	local v
	v=$(awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || true)
	echo "${v:-0}"
}

cl_signal_and_wait() {
	kill -TERM "$1" 2>/dev/null || true
	cl_wait_or_kill "$@"
}

cl_wait_or_kill() {
	local pid=$1 secs=$2 name=$3 i
	for ((i = 0; i < secs * 10; i++)); do
		cl_alive "$pid" || return 0
		sleep 0.1
	done
	cl_log "$name (pid $pid) still running after ${secs} s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		cl_alive "$pid" || return 0
		sleep 0.1
	done
	return 1
}
