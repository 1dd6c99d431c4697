/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_result.c - the result model (lib/emv_result.h): every status and
 * reason row has a name that survives the trip name -> enum -> name, a
 * valid default status and retry class, and is documented in
 * docs/result-json.md; flags round-trip too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "emv_result.h"

static void assert_wire_name(const char *name)
{
	assert_non_null(name);
	assert_true(name[0] != '\0');
	/* the names go into exports, the wire and data files as they are */
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			fail_msg("name '%s' has a character outside [a-z0-9_]", name);
}

static void test_every_status_round_trips(void **state)
{
	(void)state;
	for (int s = 0; s < EMV_STATUS__COUNT; s++) {
		const char *n = emv_status_name((emv_status)s);
		assert_wire_name(n);
		if (emv_status_from_name(n) != s)
			fail_msg("status %d: '%s' reads back as %d", s, n, emv_status_from_name(n));
	}
	assert_string_equal(emv_status_name(EMV_STATUS__COUNT), "?");
	assert_int_equal(emv_status_from_name("maybe"), -1);
}

static void test_every_reason_round_trips(void **state)
{
	(void)state;
	for (int r = 0; r < EMV_REASON__COUNT; r++) {
		const char *n = emv_reason_name((emv_reason)r);
		emv_status st = emv_reason_default_status((emv_reason)r);
		emv_retry_class rc = emv_reason_retry((emv_reason)r);
		assert_wire_name(n);
		if (emv_reason_from_name(n) != r)
			fail_msg("reason %d: '%s' reads back as %d (a duplicate name?)", r, n, emv_reason_from_name(n));
		if ((unsigned)st >= EMV_STATUS__COUNT)
			fail_msg("reason '%s': default status %d is not a status", n, (int)st);
		if ((unsigned)rc > EMV_RETRY_CLASS_CONNECT)
			fail_msg("reason '%s': retry class %d is not a class", n, (int)rc);
		assert_non_null(emv_reason_detail((emv_reason)r));
	}
	assert_string_equal(emv_reason_name(EMV_REASON__COUNT), "?");
	assert_string_equal(emv_reason_detail(EMV_REASON__COUNT), "");
	assert_int_equal(emv_reason_from_name("pending"), -1); /* the export's, not a reason */
	assert_int_equal(emv_reason_from_name(""), -1);
}

/* The rows say what the classifier's and the retry policy's switches said
 * before they were one list. */
static void test_reason_rows_keep_their_meaning(void **state)
{
	(void)state;
	assert_int_equal(emv_reason_default_status(EMV_REASON_ACCEPTED), EMV_STATUS_DELIVERABLE);
	assert_int_equal(emv_reason_default_status(EMV_REASON_MAILBOX_NOT_FOUND), EMV_STATUS_UNDELIVERABLE);
	assert_int_equal(emv_reason_default_status(EMV_REASON_NO_MAIL_SERVER), EMV_STATUS_UNDELIVERABLE);
	assert_int_equal(emv_reason_default_status(EMV_REASON_MAILBOX_FULL), EMV_STATUS_RISKY);
	assert_int_equal(emv_reason_default_status(EMV_REASON_ROLE), EMV_STATUS_RISKY);
	assert_int_equal(emv_reason_default_status(EMV_REASON_GREYLISTED), EMV_STATUS_UNKNOWN);
	assert_int_equal(emv_reason_default_status(EMV_REASON_INPUT_ERROR), EMV_STATUS_UNKNOWN);
	assert_int_equal(emv_reason_retry(EMV_REASON_MAILBOX_FULL), EMV_RETRY_CLASS_NEVER);
	assert_int_equal(emv_reason_retry(EMV_REASON_BLOCKED), EMV_RETRY_CLASS_OTHER_SOURCE);
	assert_int_equal(emv_reason_retry(EMV_REASON_DNS_FAILED), EMV_RETRY_CLASS_DNS);
	assert_int_equal(emv_reason_retry(EMV_REASON_PORT25_BLOCKED), EMV_RETRY_CLASS_CONNECT);
	assert_int_equal(emv_reason_retry(EMV_REASON_GREYLISTED), EMV_RETRY_CLASS_SCHEDULE);
	assert_string_equal(emv_reason_detail(EMV_REASON_MAILBOX_FULL), "the mailbox exists but is full");
	assert_string_equal(emv_reason_detail(EMV_REASON_NO_DOMAIN), "");
}

static void test_flags_round_trip(void **state)
{
	const char *names[32];
	size_t n = emv_flag_names(~0u, names, 32);
	unsigned all = 0;
	(void)state;
	assert_true(n >= 7);
	for (size_t i = 0; i < n; i++) {
		unsigned bit = emv_flag_from_name(names[i]);
		assert_wire_name(names[i]);
		if (bit == 0 || (bit & all))
			fail_msg("flag '%s' reads back as %#x", names[i], bit);
		all |= bit;
	}
	assert_int_equal(emv_flag_from_name("nonsense"), 0);
}

/* docs/result-json.md has a row "| `name` | status | ..." per reason. */
static void test_every_reason_is_documented(void **state)
{
	FILE *f = fopen(EMV_TEST_DATA "/../../docs/result-json.md", "r");
	char *doc;
	long len;
	(void)state;
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	doc = calloc(1, (size_t)len + 1);
	assert_int_equal(fread(doc, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	for (int r = 0; r < EMV_REASON__COUNT; r++) {
		char row[128];
		snprintf(row, sizeof row, "| `%s` | %s |", emv_reason_name((emv_reason)r),
			 emv_status_name(emv_reason_default_status((emv_reason)r)));
		if (!strstr(doc, row))
			fail_msg("docs/result-json.md has no row '%s ...'", row);
	}
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_status_round_trips),       cmocka_unit_test(test_every_reason_round_trips),
		cmocka_unit_test(test_reason_rows_keep_their_meaning), cmocka_unit_test(test_flags_round_trip),
		cmocka_unit_test(test_every_reason_is_documented),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
