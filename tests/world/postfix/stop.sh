#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/world/postfix/stop.sh RUN_DIR — stop the test Postfix that
# start.sh RUN_DIR started, and make sure none of its processes remain.
#
# Idempotent: a missing RUN_DIR or an instance that is not running is fine.
#  1. `postfix -c RUN_DIR/etc stop` (graceful; Postfix itself escalates to
#     SIGKILL of the master's process group after ~5 s).
#  2. Waits for the master PID from RUN_DIR/queue/pid/master.pid to vanish.
#  3. Sweeps leftovers: processes whose environment has
#     MAIL_CONFIG=RUN_DIR/etc (master and every daemon of this instance carry
#     it; a system Postfix or another RUN_DIR does not): TERM, then KILL.
# RUN_DIR itself (config, log, queue) is left in place for inspection.
# Run as root.
set -euo pipefail

log() { printf 'postfix/stop: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$#" -eq 1 ] || die "usage: $0 RUN_DIR"
[ "$(id -u)" -eq 0 ] || die "must run as root"
command -v postfix >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"

if [ ! -d "$1" ]; then
    log "$1 does not exist: nothing to stop"
    exit 0
fi
RUN_DIR="$(cd "$1" && pwd -P)"
CONF="$RUN_DIR/etc"
PIDFILE="$RUN_DIR/queue/pid/master.pid"

# PIDs of processes belonging to this instance (by MAIL_CONFIG).
instance_pids() {
    local f pid env
    for f in /proc/[0-9]*/environ; do
        pid="${f#/proc/}"; pid="${pid%/environ}"
        [ "$pid" != "$$" ] || continue
        # (kernel threads, PID 1 and vanished processes are unreadable)
        env="$(tr '\0' '\n' 2>/dev/null < "$f")" || continue
        case $'\n'"$env"$'\n' in
            *$'\n'"MAIL_CONFIG=$CONF"$'\n'*) echo "$pid" ;;
        esac
    done
}

# A process counts as alive unless it is gone or a zombie: the daemonized
# master is reparented to PID 1, which may take a while to reap it.
alive() {
    local st
    st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$st" ] && [ "${st%% *}" != Z ]
}

# Wait up to $1 tenths of a second for all given PIDs to exit.
wait_gone() {
    local n="$1" p any; shift
    while [ "$n" -gt 0 ]; do
        any=0
        for p in "$@"; do
            if alive "$p"; then any=1; break; fi
        done
        [ "$any" -eq 1 ] || return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

master_pid=""
if [ -s "$PIDFILE" ]; then
    master_pid="$(awk '{ print $1; exit }' "$PIDFILE")"
fi

if [ -f "$CONF/main.cf" ] && postfix -c "$CONF" status >/dev/null 2>&1; then
    log "stopping instance $CONF (master pid ${master_pid:-?})"
    postfix -c "$CONF" stop >/dev/null 2>&1 || log "postfix stop reported an error; sweeping"
else
    log "instance $CONF is not running"
fi

if [ -n "$master_pid" ] && ! wait_gone 100 "$master_pid"; then
    log "master $master_pid still alive after 10s: killing it"
    kill -KILL "$master_pid" 2>/dev/null || true
fi

mapfile -t left < <(instance_pids)
if [ "${#left[@]}" -gt 0 ]; then
    log "terminating leftover processes of this instance: ${left[*]}"
    kill -TERM "${left[@]}" 2>/dev/null || true
    if ! wait_gone 50 "${left[@]}"; then
        kill -KILL "${left[@]}" 2>/dev/null || true
        wait_gone 20 "${left[@]}" || true
    fi
fi

mapfile -t left < <(instance_pids)
if [ "${#left[@]}" -gt 0 ]; then
    die "processes of $CONF survive: ${left[*]}"
fi
log "stopped"
