/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_policy.c - the verdict policy (lib/emv_policy.h): the presets' table,
 * policy files and their errors, safe_to_send.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "emv_policy.h"

static void map(const emv_policy *p, emv_status s, emv_reason r, unsigned flags, emv_status want_s, emv_reason want_r,
		int want_safe)
{
	int safe = emv_policy_apply(p, &s, &r, flags);
	if (s != want_s || r != want_r || safe != want_safe)
		fail_msg("%s: got %s/%s safe=%d, want %s/%s safe=%d", emv_policy_name(p), emv_status_name(s),
			 emv_reason_name(r), safe, emv_status_name(want_s), emv_reason_name(want_r), want_safe);
}

static void test_marketing(void **state)
{
	const emv_policy *p = emv_policy_preset("marketing");
	assert_non_null(p);
	assert_string_equal(emv_policy_name(p), "marketing");
	assert_ptr_equal(emv_policy_get(NULL, NULL, 0), p); /* the default */
	map(p, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 1);
	map(p, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, EMV_FLAG_FREE, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED,
	    1);
	/* role: out of the safe pile, with the reason saying why */
	map(p, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, EMV_FLAG_ROLE | EMV_FLAG_FREE, EMV_STATUS_RISKY,
	    EMV_REASON_ROLE, 0);
	/* a role address the server rejected stays rejected */
	map(p, EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND, EMV_FLAG_ROLE, EMV_STATUS_UNDELIVERABLE,
	    EMV_REASON_MAILBOX_NOT_FOUND, 0);
	map(p, EMV_STATUS_RISKY, EMV_REASON_CATCH_ALL, EMV_FLAG_CATCH_ALL, EMV_STATUS_RISKY, EMV_REASON_CATCH_ALL, 0);
	map(p, EMV_STATUS_RISKY, EMV_REASON_DISPOSABLE, EMV_FLAG_DISPOSABLE, EMV_STATUS_RISKY, EMV_REASON_DISPOSABLE,
	    0);
	map(p, EMV_STATUS_RISKY, EMV_REASON_MAILBOX_FULL, 0, EMV_STATUS_RISKY, EMV_REASON_MAILBOX_FULL, 0);
	map(p, EMV_STATUS_UNKNOWN, EMV_REASON_GREYLISTED, 0, EMV_STATUS_UNKNOWN, EMV_REASON_GREYLISTED, 0);
	map(p, EMV_STATUS_UNKNOWN, EMV_REASON_POLICY_REJECTED, 0, EMV_STATUS_UNKNOWN, EMV_REASON_POLICY_REJECTED, 0);
}

static void test_transactional(void **state)
{
	const emv_policy *p = emv_policy_get("transactional", NULL, 0);
	assert_non_null(p);
	map(p, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, EMV_FLAG_ROLE, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED,
	    1);
	/* a role address at a catch-all proves nothing: still risky */
	map(p, EMV_STATUS_RISKY, EMV_REASON_CATCH_ALL, EMV_FLAG_ROLE | EMV_FLAG_CATCH_ALL, EMV_STATUS_RISKY,
	    EMV_REASON_CATCH_ALL, 0);
	map(p, EMV_STATUS_RISKY, EMV_REASON_DISPOSABLE, EMV_FLAG_DISPOSABLE, EMV_STATUS_RISKY, EMV_REASON_DISPOSABLE,
	    0);
	map(p, EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND, 0, EMV_STATUS_UNDELIVERABLE,
	    EMV_REASON_MAILBOX_NOT_FOUND, 0);
}

/* Every verdict the engine can give maps to a valid status under every
 * preset, and only deliverable is ever safe. */
static void test_presets_total(void **state)
{
	for (const char *const *n = emv_policy_preset_names(); *n; n++) {
		const emv_policy *p = emv_policy_preset(*n);
		assert_non_null(p);
		for (int s = 0; s < EMV_STATUS__COUNT; s++)
			for (int r = 0; r < EMV_REASON__COUNT; r++)
				for (unsigned f = 0; f < 0x80; f++) {
					emv_status ss = (emv_status)s;
					emv_reason rr = (emv_reason)r;
					int safe = emv_policy_apply(p, &ss, &rr, f);
					assert_true((unsigned)ss < EMV_STATUS__COUNT);
					assert_true((unsigned)rr < EMV_REASON__COUNT);
					if (safe)
						assert_int_equal(ss, EMV_STATUS_DELIVERABLE);
					/* never deliverable from a verdict the engine did not call so */
					if (ss == EMV_STATUS_DELIVERABLE)
						assert_int_equal(s, EMV_STATUS_DELIVERABLE);
				}
	}
}

static void test_file(void **state)
{
	char err[256], path[] = "/tmp/emv-test-policy-XXXXXX", text[2048];
	int fd = mkstemp(path);
	const emv_policy *p;
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	/* stricter than marketing: free-mail addresses are risky too */
	fputs("# strict\naccepted free deliverable -> risky = no\n"
	      "*  *  deliverable  deliverable  =  yes   # the rest as usual\n",
	      f);
	fclose(f);
	p = emv_policy_get(path, err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(emv_policy_name(p), strrchr(path, '/') + 1);
	map(p, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, EMV_FLAG_FREE, EMV_STATUS_RISKY, EMV_REASON_ACCEPTED, 0);
	map(p, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 1);
	/* no row matches: the engine's status, safe only if deliverable */
	map(p, EMV_STATUS_UNKNOWN, EMV_REASON_TIMEOUT, 0, EMV_STATUS_UNKNOWN, EMV_REASON_TIMEOUT, 0);
	emv_policy_text(p, text, sizeof text);
	assert_non_null(strstr(text, "accepted free deliverable -> risky = no"));
	emv_policy_free(p);
	unlink(path);
	/* the presets' text parses back to the same table */
	emv_policy_text(emv_policy_preset("marketing"), text, sizeof text);
	p = emv_policy_parse("again", text, err, sizeof err);
	assert_non_null(p);
	map(p, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, EMV_FLAG_ROLE, EMV_STATUS_RISKY, EMV_REASON_ROLE, 0);
	emv_policy_free(p);
}

static void bad(const char *text, const char *want)
{
	char err[256] = "";
	emv_policy *p = emv_policy_parse("t", text, err, sizeof err);
	if (p)
		fail_msg("parsed: %s", text);
	if (!strstr(err, want))
		fail_msg("error '%s' does not say '%s'", err, want);
}

static void test_errors(void **state)
{
	char err[256];
	bad("", "no rules");
	bad("# only a comment\n", "no rules");
	bad("accepted role deliverable risky\n", "line 1: 4 columns, want 6");
	bad("*  *  *  =  =  no\nnosuch * * risky = no\n", "line 2: reason 'nosuch' is not a reason");
	bad("accepted vip * risky = no\n", "flag 'vip' is not a flag");
	bad("accepted * great risky = no\n", "status 'great' is not a status");
	bad("accepted * * fine = no\n", "status 'fine' is not a status (or = to keep it)");
	bad("accepted * * risky x no\n", "reason 'x' is not a reason");
	bad("accepted * * risky = maybe\n", "safe must be yes or no");
	bad("* * unknown risky = yes\n", "line 1: only a deliverable status can be safe to send");
	assert_null(emv_policy_get("lenient", err, sizeof err));
	assert_non_null(strstr(err, "presets are marketing and transactional"));
	assert_null(emv_policy_get("/nonexistent/x.policy", err, sizeof err));
	assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_marketing),     cmocka_unit_test(test_transactional),
		cmocka_unit_test(test_presets_total), cmocka_unit_test(test_file),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
