#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/cluster/pg/restart.sh RUN_DIR
#
# Fault injection for the cluster tests: stop the PostgreSQL of RUN_DIR the
# hard way (pg_ctl stop -m immediate: every backend is killed, no shutdown
# checkpoint, like a crash of PostgreSQL) and start it again with start.sh,
# which runs crash recovery and keeps the data.  Clients see their
# connections drop and must reconnect.  Prints what start.sh prints
# (the connection string) and how long the server was away.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
source "$HERE/../common.sh"
CL_NAME="pg restart"

RUN_DIR=${1:?usage: restart.sh RUN_DIR}
(($# == 1)) || cl_die "usage: restart.sh RUN_DIR"
[[ -f $RUN_DIR/pg/data/PG_VERSION ]] || cl_die "no data directory in $RUN_DIR/pg: start.sh it first"
t=$(cl_now_ms)
bash "$HERE/stop.sh" "$RUN_DIR" --immediate >&2
bash "$HERE/start.sh" "$RUN_DIR"
cl_log "down and up again in $(($(cl_now_ms) - t)) ms"
