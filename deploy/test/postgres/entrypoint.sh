#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The stand-in's entrypoint (deploy/test/postgres/Containerfile): the
# official postgres image's first-start initialisation, then the server as
# `postgres` in the foreground.
set -euo pipefail
if [[ ${1:-} != postgres ]]; then exec "$@"; fi
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required (compose: env_file)}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [[ $(id -u) == 0 ]]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA"
else
	as_pg() { "$@"; }
fi
if [[ ! -s $PGDATA/PG_VERSION ]]; then
	pw=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
	chown postgres "$pw" 2>/dev/null || true
	as_pg initdb -D "$PGDATA" --username="$user" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 \
		--encoding=UTF8 --locale=C.UTF-8 >/dev/null
	rm -f "$pw"
	printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	# the database, with the server on its unix socket only
	as_pg pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p ${PGPORT:-5432}" start >/dev/null
	if [[ $db != postgres ]]; then
		as_pg psql -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "${PGPORT:-5432}" -U "$user" -d postgres \
			-c "CREATE DATABASE \"$db\" OWNER \"$user\""
	fi
	as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo "entrypoint: initialised $PGDATA (user $user, database $db)"
fi
if [[ $(id -u) == 0 ]]; then
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
