#!/usr/bin/env bash
# tests/run-all.sh — the whole test suite, from a fresh Debian 12 machine.
#
# 1. installs the Debian packages it needs (deploy/install-deps.sh --test,
#    plus Postfix for the interoperability test and PostgreSQL/kcat for the
#    cluster tests: tests/cluster/install.sh),
# 2. builds emailverify with AddressSanitizer + UndefinedBehaviorSanitizer,
# 3. runs ctest: the test world (unbound DNS, the SMTP test server, a real
#    Postfix) and a throwaway PostgreSQL are started and stopped by ctest
#    fixtures, so nothing is left running, pass or fail,
# 4. builds the libFuzzer targets with clang and runs each one briefly
#    (before the main suite, whose ctest summary line closes the output).
#
# Environment: EMV_TEST_JOBS (parallel ctest jobs, default 2),
#              EMV_FUZZ_SECONDS (per fuzz target, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
jobs="${EMV_TEST_JOBS:-2}"

bash deploy/install-deps.sh --test
bash tests/world/postfix/install.sh
bash tests/cluster/install.sh

echo "== build (ASan+UBSan)"
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DEMV_SANITIZE=ON >/dev/null
cmake --build build/test -j"$jobs"

echo "== build (libFuzzer, clang)"
cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMV_FUZZ=ON \
      -DEMV_FUZZ_SECONDS="${EMV_FUZZ_SECONDS:-20}" >/dev/null
cmake --build build/fuzz -j"$jobs" --target fuzz_address fuzz_reply fuzz_ingest fuzz_wire fuzz_pool fuzz_routes fuzz_api_route

# Sanitizer settings: leaks are errors; UBSan stops at the first report.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

status=0
echo "== fuzz"
(cd build/fuzz && ctest --output-on-failure -L fuzz) || status=1
# the main suite runs last so that its ctest summary closes the output
echo "== tests"
(cd build/test && ctest --output-on-failure -j"$jobs") || status=1
exit $status
