#!/usr/bin/env bash
# deploy/quickstart.sh COMMAND [ARGS...] — install what emailverify needs
# (Debian 12 packages), build it in build/release, and run
# `emailverify COMMAND ARGS...`, e.g.:
#   deploy/quickstart.sh check alice@example.com
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
if [ ! -x build/release/coordinator/emailverify ] || [ -n "$(find lib worker coordinator proto data CMakeLists.txt -newer build/release/coordinator/emailverify -print -quit 2>/dev/null)" ]; then
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build/release -j"$(nproc)" --target emailverify >/dev/null
fi
exec build/release/coordinator/emailverify "$@"
