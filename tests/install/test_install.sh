#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/install/test_install.sh BUILD_DIR WORK_DIR — the installed layout:
# `cmake --install` puts the three programs under bin/ and the data under
# share/emailverify/, and an installed binary finds its data there, not in
# the source tree it was built from (the tree may not exist on the machine
# it is copied to).  The install is then moved elsewhere: it must still work
# (the data directory is found relative to the binary).
set -euo pipefail
build=$1 work=$2
fail() { echo "FAILED: $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" || fail "cmake --install: $(cat "$work/install.log")"
for p in emailverify emailverify-coordinator emailverify-worker; do
	[[ -x $work/prefix/bin/$p ]] || fail "bin/$p not installed"
done
for f in classify.rules providers.conf role.txt disposable.txt free.txt typo_domains.txt; do
	[[ -s $work/prefix/share/emailverify/$f ]] || fail "share/emailverify/$f not installed"
done
# moved after installing, as a package or a container image would be
mv "$work/prefix" "$work/moved"
v=$("$work/moved/bin/emailverify" version)
[[ $v == *"(data: $work/moved/bin/../share/emailverify)" ]] || fail "installed binary uses other data: $v"
# a list whose rows are decided without the network: the lists and rules
# are loaded from the installed data (typo suggestion from typo_domains.txt)
printf 'email\nnot an address\nalice@@example.com\n' >"$work/list.csv"
"$work/moved/bin/emailverify" verify --skip-preflight -v --format jsonl --progress none "$work/list.csv" \
	>"$work/out.jsonl" 2>"$work/err.log" || fail "verify: $(cat "$work/err.log")"
grep -q "loaded from $work/moved/bin/../share/emailverify" "$work/err.log" ||
	fail "lists not loaded from the installed data: $(cat "$work/err.log")"
[[ $(grep -c '"reason":"invalid_syntax"' "$work/out.jsonl") == 2 ]] || fail "verdicts: $(cat "$work/out.jsonl")"
# $EMAILVERIFY_DATA still wins over the installed copy
v=$(EMAILVERIFY_DATA=/nonexistent "$work/moved/bin/emailverify" version)
[[ $v == *"(data: /nonexistent)" ]] || fail "EMAILVERIFY_DATA ignored: $v"
rm -rf "$work"
echo "installed layout: bin/, share/emailverify/, relocatable — ok"
