#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deploy/quickstart.sh COMMAND [ARGS...] — install what emailverify needs
# (Debian 12 packages), build it in build/release, and run
# `emailverify COMMAND ARGS...`, e.g.:
#   deploy/quickstart.sh run list.csv -o results.csv
#   deploy/quickstart.sh check alice@example.com
# For `run` it also creates and starts a private PostgreSQL under var/pg
# (deploy/local-pg.sh) unless DATABASE_URL is set; it keeps running after
# the command (stop it with `deploy/local-pg.sh stop`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = run ]; then
    bash deploy/install-deps.sh --run
else
    bash deploy/install-deps.sh
fi
if [ ! -x build/release/cli/emailverify ] || [ -n "$(find lib worker coordinator api cli proto data CMakeLists.txt -newer build/release/cli/emailverify -print -quit 2>/dev/null)" ]; then
    # the programs only: running emailverify needs no test library (cmocka) or clang
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DEMV_TESTS=OFF >/dev/null
    cmake --build build/release -j"$(nproc)" --target emailverify >/dev/null
fi
if [ "${1:-}" = run ] && [ -z "${DATABASE_URL:-}" ]; then
    DATABASE_URL=$(bash deploy/local-pg.sh start)
    export DATABASE_URL
fi
exec build/release/cli/emailverify "$@"
