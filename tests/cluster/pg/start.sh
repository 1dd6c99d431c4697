#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/cluster/pg/start.sh RUN_DIR [--fresh]
#
# Bring up a throwaway PostgreSQL (Debian's postgresql-15 server binaries,
# not Debian's "main" cluster) for the cluster tests.
#
#   RUN_DIR   where it lives (created):
#               pg/data/          the data directory (initdb on first start)
#               pg/sock/          the unix socket directory (see below)
#               pg/postgres.log   the server log
#               pg.env            written when ready (shell syntax, see below)
#   --fresh   throw away the data of an earlier run first
#
# Listens on 127.0.0.1:15432 only (EMV_PG_PORT moves it) and on a unix socket
# in RUN_DIR/pg/sock (or /tmp/emv-pg-HASH when that path would be too long
# for a socket address).  Authentication: trust, for the local superuser
# "postgres" and the role "emailverify", which owns the database
# "emailverify".  FOR TESTS ONLY: fsync and full_page_writes are off, so a
# crash of the *machine* may corrupt the cluster; a crash of PostgreSQL
# (restart.sh's immediate stop) loses nothing.  synchronous_commit is ON by
# default, on purpose: with it off (EMV_PG_SYNC_COMMIT=off, for benchmarks),
# an immediate stop silently loses transactions whose COMMIT was already
# acknowledged (seen here: a 100k-row commit gone after restart.sh), which
# would break the "nothing lost across a PostgreSQL restart" fault tests.
# With fsync off, a synchronous commit costs a write() and no disk flush.
#
# Idempotent: a server of RUN_DIR that already runs is reused; the data of
# an earlier run is kept (restart.sh relies on it) unless --fresh.  As root
# the server runs as the "postgres" system user (initdb refuses root): RUN_DIR
# is made traversable (o+x) and RUN_DIR/pg is given to postgres.
#
# Prints the connection string and writes RUN_DIR/pg.env:
#   EMV_PG_URL=postgresql://emailverify@127.0.0.1:15432/emailverify
#   EMV_PG_ADMIN_URL=postgresql://postgres@127.0.0.1:15432/postgres
#   EMV_PG_HOST, EMV_PG_PORT, EMV_PG_SOCKET_DIR, EMV_PG_DATA, EMV_PG_LOG, EMV_PG_BIN
#
# Environment: EMV_PG_PORT (15432), EMV_PG_BIN (/usr/lib/postgresql/15/bin),
#   EMV_PG_START_TIMEOUT (60 s), EMV_PG_SYNC_COMMIT (on).
# Stop with stop.sh RUN_DIR; restart.sh RUN_DIR simulates a crash.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
source "$HERE/../common.sh"
CL_NAME="pg start"

usage() { cl_die "usage: start.sh RUN_DIR [--fresh]"; }
RUN_DIR="" FRESH=0
while (($#)); do
	case $1 in
	--fresh) FRESH=1; shift ;;
	-*) usage ;;
	*) [[ -z $RUN_DIR ]] || usage; RUN_DIR=$1; shift ;;
	esac
done
[[ -n $RUN_DIR ]] || usage

PORT=${EMV_PG_PORT:-15432}
TIMEOUT=${EMV_PG_START_TIMEOUT:-60}
SYNC_COMMIT=${EMV_PG_SYNC_COMMIT:-on}
[[ $SYNC_COMMIT == on || $SYNC_COMMIT == off ]] || cl_die "EMV_PG_SYNC_COMMIT must be on or off"
DB=emailverify
ROLE=emailverify

mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
# shellcheck source=pg-common.sh
source "$HERE/pg-common.sh" # PGBIN, PGDIR, DATA, LOG, SOCK, as_server, pg_running
T0=$(cl_now_ms)

# --- 1. a directory the server user owns ---------------------------------
mkdir -p "$PGDIR"
if ((EUID == 0)); then
	if ! runuser -u postgres -- test -x "$RUN_DIR"; then
		chmod o+x "$RUN_DIR"
		runuser -u postgres -- test -x "$RUN_DIR" ||
			cl_die "user postgres cannot reach $RUN_DIR (a parent directory is not o+x): use another RUN_DIR"
	fi
	chown postgres: "$PGDIR"
	chmod 0755 "$PGDIR"
fi
if [[ $SOCK == "$PGDIR/sock" ]]; then
	as_server mkdir -p "$SOCK"
else
	# the short fallback under /tmp: ours only if it is a directory of the
	# server user (never follow a link someone else planted)
	if [[ -L $SOCK || (-e $SOCK && ! -d $SOCK) ]]; then
		cl_die "$SOCK exists and is not a directory"
	fi
	as_server mkdir -p -m 0700 "$SOCK"
	[[ $(stat -c %U "$SOCK") == "$SERVER_USER" ]] || cl_die "$SOCK belongs to $(stat -c %U "$SOCK"), not $SERVER_USER"
fi

# --- 2. running already? ----------------------------------------------------
if ((FRESH)) && pg_running; then
	bash "$HERE/stop.sh" "$RUN_DIR" >&2
fi
if pg_running; then
	what="already running"
else
	if cl_port_open 127.0.0.1 "$PORT"; then
		cl_die "port 127.0.0.1:$PORT is already in use by $(cl_port_owner "$PORT" || true); set EMV_PG_PORT?"
	fi
	# --- 3. initdb (first start, or --fresh) ---------------------------------
	if ((FRESH)) || [[ ! -f $DATA/PG_VERSION ]]; then
		rm -rf "$DATA"
		t=$(cl_now_ms)
		as_server "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C \
			--no-sync --no-instructions >"$PGDIR/initdb.log" 2>&1 ||
			{ cat "$PGDIR/initdb.log" >&2; cl_die "initdb failed"; }
		echo "include_if_exists = 'emailverify-test.conf'" | as_server tee -a "$DATA/postgresql.conf" >/dev/null
		cl_log "initdb $DATA in $(($(cl_now_ms) - t)) ms"
	fi
	# rewritten on every start, so a changed EMV_PG_PORT or socket dir applies
	as_server tee "$DATA/emailverify-test.conf" >/dev/null <<EOF
# written by tests/cluster/pg/start.sh on every start: a throwaway TEST server
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
ssl = off
max_connections = 100
shared_buffers = 64MB
# TESTS ONLY: no fsync, so a crash of the machine may corrupt this cluster;
# a crash of PostgreSQL (restart.sh) loses nothing: the WAL is in the page
# cache.  synchronous_commit stays on unless EMV_PG_SYNC_COMMIT=off: with it
# off, an immediate stop loses commits that were already acknowledged.
fsync = off
full_page_writes = off
synchronous_commit = $SYNC_COMMIT
max_wal_size = 1GB
checkpoint_timeout = 30min
jit = off
timezone = 'UTC'
lc_messages = 'C'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
	# --- 4. start ---------------------------------------------------------------
	# setsid: own session, so a Ctrl-C or a ctest timeout on the caller does
	# not reach the postmaster; stop.sh is what stops it.
	t=$(cl_now_ms)
	if ! as_server setsid -w "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$TIMEOUT" -s start >"$PGDIR/pg_ctl.out" 2>&1; then
		{
			cat "$PGDIR/pg_ctl.out"
			echo "--- $LOG (tail)"
			tail -n 20 "$LOG" 2>/dev/null
		} >&2
		cl_die "pg_ctl start failed"
	fi
	what="started in $(($(cl_now_ms) - t)) ms"
fi

# --- 5. role and database (idempotent), then a real query as that role ------
SETUP_SQL="SELECT 'CREATE ROLE $ROLE LOGIN CREATEDB'
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') \\gexec
SELECT 'CREATE DATABASE $DB OWNER $ROLE'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB') \\gexec"
out=$("$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 "postgresql://postgres@127.0.0.1:$PORT/postgres" \
	<<<"$SETUP_SQL" 2>&1) || cl_die "could not create role/database $ROLE/$DB: $out"
URL="postgresql://$ROLE@127.0.0.1:$PORT/$DB"
got=$("$PGBIN/psql" -X -At -F ' ' "$URL" -c 'SELECT current_user, current_database()' 2>&1) ||
	cl_die "cannot query $URL: $got"
[[ $got == "$ROLE $DB" ]] || cl_die "unexpected answer from $URL: $got"

cat >"$RUN_DIR/pg.env" <<EOF
# written by tests/cluster/pg/start.sh; source it from a test
EMV_PG_URL=$URL
EMV_PG_ADMIN_URL=postgresql://postgres@127.0.0.1:$PORT/postgres
EMV_PG_HOST=127.0.0.1
EMV_PG_PORT=$PORT
EMV_PG_SOCKET_DIR=$SOCK
EMV_PG_DATA=$DATA
EMV_PG_LOG=$LOG
EMV_PG_BIN=$PGBIN
EOF
pid=$(head -n 1 "$DATA/postmaster.pid")
cl_log "postgresql $("$PGBIN/postgres" --version | awk '{print $3}') up in $RUN_DIR/pg ($what," \
	"total $(($(cl_now_ms) - T0)) ms; postmaster pid $pid, rss $(($(cl_rss_kb "$pid") / 1024)) MiB); env $RUN_DIR/pg.env"
echo "$URL"
