#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/static/cppcheck.sh [SOURCE_DIR] - the static analyser of the test command (ctest
# static.cppcheck, label static): cppcheck over all our C sources (the programs, the library,
# the tests, the test world, the benches), failing on any finding not justified, one line each,
# in tests/static/cppcheck.supp.
#
# Why cppcheck and not clang's scan-build: it reads the sources as they are (no second build),
# takes about 25 s on two cores for the whole tree, needs only the Debian package cppcheck, and
# its suppressions list is one reviewable file.  scan-build re-runs the whole build under the
# analyser (several minutes on two cores) and adds clang-tools to the test packages.
#
# It first checks tests/static/known_bad.c and fails unless that file's bug is found: an
# analyser that silently finds nothing (wrong folders, a suppression too wide, changed
# options) must not look like a clean tree.
#
# Exit: 0 clean, 1 findings (printed as FILE:LINE: severity:id: message), 2 set-up problem.
set -uo pipefail
src="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$src" || exit 2

if ! command -v cppcheck >/dev/null; then
	echo "cppcheck is not installed: deploy/install-deps.sh --test installs it (tests/packages-test.txt)" >&2
	exit 2
fi

opts=(--enable=warning,style,performance,portability --std=c11 --inline-suppr
      --library=posix --library=gnu --library=openssl --library=zlib
      --library=tests/static/emailverify.cfg
      -D__GNUC__ -Ilib -Iworker -Icoordinator -Iapi -Icli
      --error-exitcode=1 -q --template='{file}:{line}: {severity}:{id}: {message}')

# 1. the self-check: a use after free that must be reported
if cppcheck "${opts[@]}" tests/static/known_bad.c >/dev/null 2>&1; then
	echo "cppcheck found nothing in tests/static/known_bad.c: the check is broken" >&2
	exit 2
fi

# 2. our sources (the generated protobuf code under build/ is not ours)
dirs=()
for d in lib worker coordinator api cli proto tests/unit tests/integration tests/world tests/audit \
	 tests/fuzz tests/cluster bench tools; do
	[ -d "$d" ] && dirs+=("$d")
done
echo "cppcheck $(cppcheck --version | awk '{print $2}') over: ${dirs[*]}"
if ! cppcheck "${opts[@]}" -j"${EMV_CPPCHECK_JOBS:-2}" --suppressions-list=tests/static/cppcheck.supp "${dirs[@]}"; then
	echo "cppcheck: findings above. Fix them, or add one line with its reason to tests/static/cppcheck.supp" >&2
	exit 1
fi
echo "cppcheck: no findings"
