#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/lib.sh — sourced by the PostgreSQL + Kafka benches (cluster.sh,
# cache.sh): the Release build, a throwaway PostgreSQL (tests/cluster/pg,
# port 15442) and Kafka (port 19192) under RUN, stopped on exit, and the
# generated list.  Expects $root (the source tree) and set -euo pipefail.

# bench_start RUN TARGET...: build TARGETs, start both servers fresh under
# RUN, export DATABASE_URL and EMV_KAFKA_BROKERS.
bench_start() {
	local run=$1
	shift
	export EMV_PG_PORT=15442 EMV_KAFKA_PORT=19192
	cmake -S "$root" -B "$root/build/release" -DCMAKE_BUILD_TYPE=Release -DEMV_TESTS=ON >/dev/null
	cmake --build "$root/build/release" -j"$(nproc)" --target "$@" >/dev/null
	mkdir -p "$run"
	bash "$root/tests/cluster/pg/start.sh" "$run" --fresh >/dev/null 2>&1
	bash "$root/tests/cluster/kafka/start.sh" "$run/kafka-run" --fresh >/dev/null 2>&1
	# shellcheck disable=SC2064 # the run directory as it is now
	trap "bash '$root/tests/cluster/kafka/stop.sh' '$run/kafka-run' >/dev/null 2>&1; bash '$root/tests/cluster/pg/stop.sh' '$run' >/dev/null 2>&1" EXIT
	# shellcheck disable=SC1091
	source "$run/pg.env"
	# shellcheck disable=SC1091
	source "$run/kafka-run/kafka.env"
	export DATABASE_URL=$EMV_PG_URL
}

# bench_list FILE ROWS DOMAINS: the list, "userN@dK.bench" (the same seed,
# so the same list every time); kept when it is already there.
bench_list() {
	local list=$1 n=$2 domains=$3
	if [[ ! -s $list || $(wc -l <"$list") -ne $((n + 1)) ]]; then
		awk -v n="$n" -v d="$domains" 'BEGIN { srand(7); print "email,name";
			for (i = 1; i <= n; i++) printf "user%d@d%d.bench,Name %d\n", i, int(rand() * d) + 1, i }' >"$list"
	fi
}

# t CMD...: CMD with "TIME wall user sys maxrss" on stderr.
t() { /usr/bin/time -f "TIME %e %U %S %M" "$@"; }
