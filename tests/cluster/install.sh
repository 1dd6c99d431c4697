#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/cluster/install.sh - install the Debian 12 packages that the cluster
# test servers (tests/cluster/kafka, tests/cluster/pg) need, and nothing else:
#
#   postgresql   the PostgreSQL 15 server binaries (/usr/lib/postgresql/15/bin)
#   kcat         librdkafka's command-line client: Kafka readiness check and
#                produce/consume by hand
#   openjdk-17-jre-headless   only if no java >= 17 is on PATH
#   maven        only if mvn is not on PATH (fetches the Kafka jars)
#
# Idempotent: installs only what is missing; `apt-get update` runs only when
# apt knows no candidate for a missing package.  Needs root when anything is
# missing.
#
# No system service is started: a temporary /usr/sbin/policy-rc.d (exit 101)
# keeps invoke-rc.d from starting PostgreSQL during the installation (an
# existing policy-rc.d is left as it is).  The package's postinst still
# creates Debian's default cluster "15 main" (port 5432); when this script
# installed the server, that cluster's start.conf is set to "manual", so no
# init system ever starts it (`pg_ctlcluster 15 main start` still works, and
# the package is otherwise untouched; the test server never uses it).  At the
# end it warns if anything listens on 5432, and never stops it.
set -euo pipefail

log() { printf 'cluster/install: %s\n' "$*" >&2; }

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]; }

java_ok() { # a java on PATH whose major version is >= 17
	local v
	command -v java >/dev/null || return 1
	v=$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n 1)
	[[ -n $v ]] && ((v >= 17))
}

need=()
installed postgresql || need+=(postgresql)
installed kcat || need+=(kcat)
java_ok || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
server_was_installed=0
installed postgresql-15 && server_was_installed=1

if ((${#need[@]})); then
	((EUID == 0)) || { log "need root to install: ${need[*]}"; exit 1; }
	export DEBIAN_FRONTEND=noninteractive
	for p in "${need[@]}"; do
		cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
		if [[ -z $cand || $cand == "(none)" ]]; then
			log "apt knows no candidate for $p: apt-get update"
			apt-get update -q >/dev/null
			break
		fi
	done
	policy=/usr/sbin/policy-rc.d
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# temporary, from tests/cluster/install.sh: start no service\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	log "installing: ${need[*]}"
	apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${need[@]}" >/dev/null
fi

# Debian's default cluster, if this run created it: never started by init
if ((!server_was_installed)) && installed postgresql-15; then
	for conf in /etc/postgresql/15/*/start.conf; do
		[[ -f $conf ]] || continue
		if grep -qx 'auto' "$conf"; then
			sed -i 's/^auto$/manual/' "$conf"
			log "set $conf to manual (Debian's default cluster is not used by the tests)"
		fi
	done
fi

# checks
[[ -x /usr/lib/postgresql/15/bin/pg_ctl ]] || { log "no /usr/lib/postgresql/15/bin/pg_ctl"; exit 1; }
command -v kcat >/dev/null || { log "no kcat"; exit 1; }
java_ok || { log "no java >= 17"; exit 1; }
command -v mvn >/dev/null || { log "no mvn"; exit 1; }
if command -v ss >/dev/null && [[ -n $(ss -Hltn 'sport = :5432' 2>/dev/null) ]]; then
	log "WARNING: something listens on port 5432 (Debian's own cluster?); the tests do not need it and leave it alone"
fi
log "ok: postgresql $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}')," \
	"kcat $(dpkg-query -W -f='${Version}' kcat), java $(java -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n 1)," \
	"maven $(mvn -v 2>/dev/null | sed -e 's/\x1b\[[0-9;]*m//g' | sed -n 's/^Apache Maven \([^ ]*\).*/\1/p')"
