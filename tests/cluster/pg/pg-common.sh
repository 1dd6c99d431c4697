#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/cluster/pg/pg-common.sh - sourced by start.sh, stop.sh, restart.sh
# after RUN_DIR (absolute) and PORT are set; defines:
#   PGBIN        server binaries: $EMV_PG_BIN, else /usr/lib/postgresql/15/bin,
#                else the newest /usr/lib/postgresql/*/bin
#   PGDIR DATA LOG SOCK   RUN_DIR/pg, its data/, postgres.log, socket dir
#   SERVER_USER  who runs the server: postgres when we are root, else us
#   as_server CMD...      run CMD as SERVER_USER
#   pg_running            true if the server of DATA runs (pg_ctl status)

PGBIN=${EMV_PG_BIN:-}
if [[ -z $PGBIN ]]; then
	if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
		PGBIN=/usr/lib/postgresql/15/bin
	else
		PGBIN=$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	fi
fi
[[ -n $PGBIN && -x $PGBIN/pg_ctl && -x $PGBIN/initdb ]] ||
	cl_die "PostgreSQL server binaries not found (run tests/cluster/install.sh, or set EMV_PG_BIN)"

PGDIR=$RUN_DIR/pg
DATA=$PGDIR/data
LOG=$PGDIR/postgres.log
SOCK=$PGDIR/sock
# a unix socket path must fit in sun_path (108 bytes with its NUL)
if ((${#SOCK} + ${#PORT} + 10 > 100)); then
	SOCK=/tmp/emv-pg-$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)
fi

if ((EUID == 0)); then
	id postgres >/dev/null 2>&1 || cl_die "no 'postgres' system user (run tests/cluster/install.sh)"
	SERVER_USER=postgres
	as_server() { runuser -u postgres -- "$@"; }
else
	SERVER_USER=$(id -un)
	as_server() { "$@"; }
fi

pg_running() {
	[[ -f $DATA/PG_VERSION ]] && as_server "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}
