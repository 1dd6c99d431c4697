/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_cache.c - the verdict cache's ages (lib/emv_cache.h): what may answer
 * a job, for how long, and the settings' parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "emv_cache.h"
#include "emv_defaults.h"
#include "emv_util.h"

#define DAY 86400LL

static void test_defaults(void **state)
{
	emv_cache_ages a;
	(void)state;
	emv_cache_ages_default(&a);
	assert_true(emv_cache_servable(&a, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 30 * DAY, -1));
	assert_false(emv_cache_servable(&a, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 30 * DAY + 1, -1));
	assert_true(emv_cache_servable(&a, EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND, 90 * DAY, -1));
	assert_false(emv_cache_servable(&a, EMV_STATUS_RISKY, EMV_REASON_CATCH_ALL, 7 * DAY + 1, -1));
	/* a reason's own age wins over its status's */
	assert_int_equal(emv_cache_max_age_s(&a, EMV_STATUS_RISKY, EMV_REASON_MAILBOX_FULL, -1), DAY);
	/* unknown is never served, however young */
	assert_false(emv_cache_servable(&a, EMV_STATUS_UNKNOWN, EMV_REASON_TIMEOUT, 0, -1));
	assert_int_equal(emv_cache_max_age_s(&a, EMV_STATUS_UNKNOWN, EMV_REASON_TIMEOUT, -1), -1);
	/* a verdict from the future (a clock stepped back) is not served */
	assert_false(emv_cache_servable(&a, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, -5, -1));
}

static void test_job_max_age(void **state)
{
	emv_cache_ages a;
	(void)state;
	emv_cache_ages_default(&a);
	/* the job's max_age can shorten, never lengthen */
	assert_int_equal(emv_cache_max_age_s(&a, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, DAY), DAY);
	assert_int_equal(emv_cache_max_age_s(&a, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 300 * DAY), 30 * DAY);
	/* fresh: nothing is served */
	assert_false(emv_cache_servable(&a, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, 0));
	assert_int_equal(emv_cache_max_age_s(&a, EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND, 0), -1);
}

static void test_parse(void **state)
{
	emv_cache_ages a, before;
	char err[256], buf[512];
	(void)state;
	emv_cache_ages_default(&a);
	assert_int_equal(emv_cache_ages_parse(&a, "deliverable=14d,risky=off,catch_all=12h", err, sizeof err), EMV_OK);
	assert_int_equal(a.status_s[EMV_STATUS_DELIVERABLE], 14 * DAY);
	assert_int_equal(emv_cache_max_age_s(&a, EMV_STATUS_RISKY, EMV_REASON_ROLE, -1), -1);
	assert_int_equal(emv_cache_max_age_s(&a, EMV_STATUS_RISKY, EMV_REASON_CATCH_ALL, -1), 12 * 3600);
	assert_int_equal(emv_cache_max_age_s(&a, EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND, -1), 90 * DAY);

	/* formatted, then parsed again from the defaults: the same ages */
	emv_cache_ages_format(&a, buf, sizeof buf);
	assert_string_equal(buf, "deliverable=14d,undeliverable=90d,risky=off,mailbox_full=1d,catch_all=12h");
	emv_cache_ages_default(&before);
	assert_int_equal(emv_cache_ages_parse(&before, buf, err, sizeof err), EMV_OK);
	assert_memory_equal(&before, &a, sizeof a);

	/* errors name the item and leave the ages untouched */
	before = a;
	assert_int_equal(emv_cache_ages_parse(&a, "deliverable=7d,unknown=1d", err, sizeof err), EMV_ERR);
	assert_non_null(strstr(err, "unknown is never served"));
	assert_int_equal(emv_cache_ages_parse(&a, "deliverable=400d", err, sizeof err), EMV_ERR);
	assert_non_null(strstr(err, "deliverable"));
	assert_int_equal(emv_cache_ages_parse(&a, "banana=1d", err, sizeof err), EMV_ERR);
	assert_non_null(strstr(err, "banana"));
	assert_int_equal(emv_cache_ages_parse(&a, "deliverable", err, sizeof err), EMV_ERR);
	assert_int_equal(emv_cache_ages_parse(&a, "deliverable=10x", err, sizeof err), EMV_ERR);
	assert_memory_equal(&before, &a, sizeof a);
	/* unknown=off says what is already true */
	assert_int_equal(emv_cache_ages_parse(&a, "unknown=off", err, sizeof err), EMV_OK);
}

static void test_parse_max_age(void **state)
{
	int64_t v = 7;
	char err[256];
	(void)state;
	assert_int_equal(emv_cache_parse_max_age("max_age", "0", &v, err, sizeof err), EMV_OK);
	assert_int_equal(v, 0);
	assert_int_equal(emv_cache_parse_max_age("max_age", "2d", &v, err, sizeof err), EMV_OK);
	assert_int_equal(v, 2 * DAY);
	assert_int_equal(emv_cache_parse_max_age("max_age", "366d", &v, err, sizeof err), EMV_ERR);
	assert_non_null(strstr(err, "max_age"));
	assert_int_equal(emv_cache_parse_max_age("--max-age", "-1", &v, err, sizeof err), EMV_ERR);
	assert_int_equal(emv_cache_parse_max_age("--max-age", "off", &v, err, sizeof err), EMV_ERR);
	assert_int_equal(v, 2 * DAY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_job_max_age),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_max_age),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
