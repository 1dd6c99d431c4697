#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deploy/local-pg.sh start|stop|url [DIR]
#
# A private PostgreSQL for the single-machine mode (`emailverify run`, the
# quick start): Debian's postgresql-15 server binaries, a data directory in
# DIR (default: the project's var/pg), reachable ONLY through a unix socket
# in DIR/sock (no TCP port: nothing to collide with, nothing exposed), the
# socket directory mode 0700 so only its owner (and root) can connect.  Data
# is durable (fsync on).  As root the server runs as the "postgres" system
# user, which initdb requires.
#
#   start   initdb on first use, start (reused when it runs), print the URL
#   stop    stop it (fast shutdown; data kept)
#   url     print the connection URL for DATABASE_URL
#
# Environment: EMV_PG_BIN (server binaries; default the newest installed).
set -euo pipefail

cmd=${1:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${2:-$ROOT/var/pg}
die() { echo "local-pg: $*" >&2; exit 1; }
[[ $cmd == start || $cmd == stop || $cmd == url ]] || die "usage: local-pg.sh start|stop|url [DIR]"

PGBIN=${EMV_PG_BIN:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
[[ -x $PGBIN/pg_ctl ]] || die "PostgreSQL server binaries not found (apt-get install postgresql-15)"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
DATA=$DIR/data
SOCK=$DIR/sock
# a socket path must fit in sun_path (108 bytes)
if ((${#SOCK} + 20 > 100)); then
	SOCK=/tmp/emv-local-pg-$(printf '%s' "$DIR" | sha256sum | cut -c1-12)
fi
if ((EUID == 0)); then
	id postgres >/dev/null 2>&1 || die "no 'postgres' system user (apt-get install postgresql-15)"
	as_server() { runuser -u postgres -- "$@"; }
	OWNER=postgres
else
	as_server() { "$@"; }
	OWNER=$(id -un)
fi
URL="postgresql:///emailverify?host=$SOCK&user=emailverify"

running() { [[ -f $DATA/PG_VERSION ]] && as_server "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

case $cmd in
url) echo "$URL"; exit 0 ;;
stop)
	if running; then
		as_server "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
	fi
	exit 0 ;;
esac

if ((EUID == 0)); then
	chown postgres: "$DIR"
	runuser -u postgres -- test -x "$DIR" || die "user postgres cannot reach $DIR (a parent directory is not o+x)"
fi
if [[ -L $SOCK || (-e $SOCK && ! -d $SOCK) ]]; then
	die "$SOCK exists and is not a directory"
fi
as_server mkdir -p -m 0700 "$SOCK"
[[ $(stat -c %U "$SOCK") == "$OWNER" ]] || die "$SOCK belongs to $(stat -c %U "$SOCK"), not $OWNER"

if ! running; then
	if [[ ! -f $DATA/PG_VERSION ]]; then
		as_server "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C \
			--no-instructions >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
		echo "include_if_exists = 'emailverify.conf'" | as_server tee -a "$DATA/postgresql.conf" >/dev/null
	fi
	as_server tee "$DATA/emailverify.conf" >/dev/null <<EOF
# written by deploy/local-pg.sh on every start
listen_addresses = ''
unix_socket_directories = '$SOCK'
unix_socket_permissions = 0700
max_connections = 50
shared_buffers = 128MB
max_wal_size = 2GB
timezone = 'UTC'
lc_messages = 'C'
EOF
	# setsid: a Ctrl-C on the caller does not stop the database
	as_server setsid "$PGBIN/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 start >/dev/null ||
		{ tail -n 20 "$DIR/postgres.log" >&2; die "the server did not start"; }
fi
as_server "$PGBIN/psql" -h "$SOCK" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1 >/dev/null <<'EOF'
SELECT 'CREATE ROLE emailverify LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'emailverify')
\gexec
SELECT 'CREATE DATABASE emailverify OWNER emailverify' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'emailverify')
\gexec
EOF
echo "$URL"
