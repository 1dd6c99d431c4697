#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/install/test_single_machine.sh SOURCE_DIR WORK_DIR — the single-machine
# build (-DEMV_CLUSTER=OFF): `emailverify` with check, verify and doctor,
# built without the coordinator, the HTTP API and PostgreSQL.  The binary
# must not link libpq or libmicrohttpd, must verify a list, and must say
# that `run` is not in this build (exit 2), not crash or pretend.
set -euo pipefail
src=$1 work=$2
fail() { echo "FAILED: $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DEMV_CLUSTER=OFF >"$work/configure.log" 2>&1 ||
	fail "configure: $(tail -n 20 "$work/configure.log")"
cmake --build "$work/build" -j2 --target emailverify >"$work/build.log" 2>&1 || fail "build: $(tail -n 30 "$work/build.log")"
bin=$work/build/cli/emailverify
[[ -x $bin ]] || fail "no cli/emailverify"
libs=$(ldd "$bin")
if grep -Eq 'libpq|libmicrohttpd' <<<"$libs"; then
	fail "the single-machine emailverify links $(grep -Eo 'lib(pq|microhttpd)[^ ]*' <<<"$libs" | tr '\n' ' ')"
fi
[[ ! -e $work/build/coordinator ]] || fail "the coordinator was configured in a single-machine build"
set +e
out=$("$bin" run /dev/null -o /dev/null 2>&1)
rc=$?
set -e
[[ $rc == 2 && $out == *"no 'run'"* ]] || fail "run in a single-machine build: rc=$rc, $out"
# verify works (offline: syntax-invalid rows only, no DNS needed)
printf 'email\nnot-an-address\n' >"$work/list.csv"
"$bin" verify --skip-preflight --format jsonl --progress none "$work/list.csv" -o "$work/out.jsonl" >"$work/verify.log" 2>&1 ||
	fail "verify: $(cat "$work/verify.log")"
grep -q '"invalid"\|"undeliverable"' "$work/out.jsonl" || fail "verify wrote no verdict: $(cat "$work/out.jsonl")"
echo "single-machine build: $(du -k "$bin" | cut -f1) KB, no libpq, no libmicrohttpd, verify works"
