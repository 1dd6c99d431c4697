#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
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
#    (before the main suite, whose ctest summary line closes the output),
# 5. first of all the checks, the set-up check (tests/fresh-machine.sh): both
#    README commands in a fresh Debian 12 root: the quick start on a small
#    list, and this very script inside it (every install and build step, the
#    fuzzers briefly, and the ctest label "setup": each package and server
#    exercised; the behaviours are this host's run of every test),
# 6. after the set-up check, the compose stack (deploy/test-compose.sh):
#    images built, the stack started with podman-compose, a list verified
#    through the API, a worker container killed mid-job
#    (EMV_COMPOSE=0 skips it).
#
# Environment: EMV_TEST_JOBS (parallel ctest jobs, default 2),
#              EMV_FUZZ_SECONDS (per fuzz target, default 15: 8 targets, the whole command under 40 minutes),
#              EMV_FRESH_ROOT=0 skips the set-up check (it is skipped anyway
#              inside the fresh root itself, and when not run as root),
#              EMV_FRESH_SUITE (setup|full|build|none: see tests/fresh-machine.sh),
#              EMV_TEST_LABEL runs only the ctest tests with that label,
#              EMV_COMPOSE=0 skips the compose stage (deploy/test-compose.sh:
#              container images, the compose stack end to end; needs root).
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
      -DEMV_FUZZ_SECONDS="${EMV_FUZZ_SECONDS:-15}" >/dev/null
cmake --build build/fuzz -j"$jobs" --target fuzz_address fuzz_reply fuzz_ingest fuzz_wire fuzz_pool fuzz_routes fuzz_api_route fuzz_session

# Sanitizer settings: leaks are errors; UBSan stops at the first report.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

status=0
if [ -n "${EMV_FRESH_INNER:-}" ]; then
    echo "== set-up check: skipped (this is the run inside the fresh root)"
elif [ "${EMV_FRESH_ROOT:-1}" = 0 ]; then
    echo "== set-up check: skipped (EMV_FRESH_ROOT=0)"
elif [ "$(id -u)" -ne 0 ]; then
    echo "== set-up check: skipped (needs root: debootstrap, chroot)"
else
    echo "== set-up check (a fresh Debian 12 root: tests/fresh-machine.sh)"
    bash tests/fresh-machine.sh "$root/build/test/tests/world/emv-testsmtpd" || status=1
fi
# the compose stack, built and run with podman (deploy/test-compose.sh);
# bounded: 25 minutes at most (about 5 with its images cached, 8 without)
if [ -n "${EMV_FRESH_INNER:-}" ]; then
    echo "== compose: skipped (the run inside the fresh root: no podman in a chroot)"
elif [ "${EMV_COMPOSE:-1}" = 0 ]; then
    echo "== compose: skipped (EMV_COMPOSE=0)"
elif [ "$(id -u)" -ne 0 ]; then
    echo "== compose: skipped (needs root: podman, chroot, unshare)"
else
    echo "== compose (deploy/test-compose.sh: images, the stack, the API end to end, a worker killed)"
    timeout 1500 bash deploy/test-compose.sh "$root/build/test/tests/world/emv-testsmtpd" || status=1
fi
echo "== fuzz"
(cd build/fuzz && ctest --output-on-failure -L fuzz) || status=1
# the main suite runs last so that its ctest summary closes the output
echo "== tests"
# EMV_TEST_LABEL narrows it to one ctest label (the fresh root's "setup")
(cd build/test && ctest --output-on-failure -j"$jobs" ${EMV_TEST_LABEL:+-L "$EMV_TEST_LABEL"}) || status=1
exit $status
