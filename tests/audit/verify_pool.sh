#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/audit/verify_pool.sh EMAILVERIFY DNS WORKDIR - the start-up self-audit
# as `emailverify verify --pool` runs it, against the audit zone (fixture
# audit.unbound): a source whose PTR names another host is held out of
# rotation with the reason named, the good one carries on; a pool whose
# every source fails refuses to start; audit_failures = run only reports.
set -euo pipefail
bin=$1 dns=$2 dir=$3
mkdir -p "$dir"
fail() { echo "FAILED: $*" >&2; exit 1; }
printf 'email\nsomeone@nosuch.audit.test\n' >"$dir/list.csv"
common=(--dns "$dns" --preflight-domains audit.test --format jsonl --progress none)

# .61 is mail-a.audit.test in PTR, A and SPF; .62's PTR is mail-b, not mail-a
cat >"$dir/pool.conf" <<'CONF'
region = audit
mail_from = probe@audit.test
source = 127.0.0.61 mail-a.audit.test
source = 127.0.0.62 mail-a.audit.test
CONF
out=$("$bin" verify "${common[@]}" --pool "$dir/pool.conf" "$dir/list.csv" 2>"$dir/err1") || fail "good+bad pool: exit $? $(cat "$dir/err1")"
grep -q 'source 127.0.0.62 (mail-a.audit.test): held out of rotation: .*PTR 127.0.0.62 -> mail-b.audit.test, but HELO is mail-a.audit.test' "$dir/err1" ||
	fail "no held line for .62: $(cat "$dir/err1")"
! grep -q 'source 127.0.0.61' "$dir/err1" || fail ".61 should pass quietly: $(cat "$dir/err1")"
grep -q '"reason":"no_domain"' <<<"$out" || fail "no verdict: $out"

# only the bad one: nothing to send from
sed -i '/127.0.0.61/d' "$dir/pool.conf"
if "$bin" verify "${common[@]}" --pool "$dir/pool.conf" "$dir/list.csv" >/dev/null 2>"$dir/err2"; then
	fail "a pool with no usable source started"
fi
grep -q 'failed its start-up audit' "$dir/err2" || fail "no refusal message: $(cat "$dir/err2")"

# audit_failures = run: reported, used anyway
echo 'audit_failures = run' >>"$dir/pool.conf"
"$bin" verify "${common[@]}" --pool "$dir/pool.conf" "$dir/list.csv" >/dev/null 2>"$dir/err3" || fail "run mode refused: $(cat "$dir/err3")"
grep -q 'failed, used anyway (audit_failures = run)' "$dir/err3" || fail "run mode not reported: $(cat "$dir/err3")"
echo "audit at start-up: held, refused, reported — ok"
