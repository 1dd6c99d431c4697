#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/cluster/pg/stop.sh RUN_DIR [--immediate]
#
# Stop the PostgreSQL that start.sh RUN_DIR started: pg_ctl stop -m fast
# (open sessions are disconnected, a clean shutdown checkpoint is written),
# or -m immediate with --immediate (like a crash: recovery at next start).
# pg_ctl finds the server through RUN_DIR/pg/data/postmaster.pid, so only
# this RUN_DIR's server is ever signalled.  If it does not stop within
# EMV_PG_STOP_TIMEOUT (30 s), an immediate stop follows.
#
# Idempotent: no data directory or no server running is not an error.  The
# data is kept (start.sh --fresh wipes it); RUN_DIR/pg.env is removed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
source "$HERE/../common.sh"
CL_NAME="pg stop"

usage() { cl_die "usage: stop.sh RUN_DIR [--immediate]"; }
RUN_DIR="" MODE=fast
while (($#)); do
	case $1 in
	--immediate) MODE=immediate; shift ;;
	-*) usage ;;
	*) [[ -z $RUN_DIR ]] || usage; RUN_DIR=$1; shift ;;
	esac
done
[[ -n $RUN_DIR ]] || usage
[[ -d $RUN_DIR/pg/data ]] || { rm -f "$RUN_DIR/pg.env"; exit 0; }
RUN_DIR=$(cd "$RUN_DIR" && pwd)
PORT=${EMV_PG_PORT:-15432}
TIMEOUT=${EMV_PG_STOP_TIMEOUT:-30}
# shellcheck source=pg-common.sh
source "$HERE/pg-common.sh"

# the short socket directory under /tmp (see pg-common.sh), once empty
drop_sock_dir() { if [[ $SOCK != "$PGDIR/sock" ]]; then as_server rmdir "$SOCK" 2>/dev/null || true; fi; }

rm -f "$RUN_DIR/pg.env"
pg_running || { drop_sock_dir; exit 0; }
t=$(cl_now_ms)
if ! as_server "$PGBIN/pg_ctl" -D "$DATA" -m "$MODE" -w -t "$TIMEOUT" -s stop; then
	cl_log "pg_ctl stop -m $MODE did not finish in $TIMEOUT s: stopping -m immediate"
	as_server "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w -t "$TIMEOUT" -s stop ||
		cl_die "the server of $DATA does not stop (log: $LOG)"
fi
drop_sock_dir
echo "postgresql of $RUN_DIR stopped (-m $MODE) in $(($(cl_now_ms) - t)) ms"
