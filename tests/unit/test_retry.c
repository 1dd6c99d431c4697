/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_retry.c - the retry policy by reason (lib/emv_retry.h): what waits,
 * for how long, and what is final at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "emv_retry.h"

static emv_retry_policy pol(void)
{
	emv_retry_policy p;
	emv_retry_policy_default(&p);
	return p;
}

static void test_final_answers(void **state)
{
	emv_retry_policy p = pol();
	(void)state;
	/* not temporary: final whatever the reason */
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_MAILBOX_NOT_FOUND, 0, 1, 0, 0), -1);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_GREYLISTED, 0, 1, 0, 0), -1);
	/* a full mailbox exists: final at the first answer, even a 452 */
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_MAILBOX_FULL, 1, 1, 0, 0), -1);
}

static void test_greylisting_follows_schedule_and_hint(void **state)
{
	emv_retry_policy p = pol();
	(void)state;
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_GREYLISTED, 1, 1, 0, 0), 60000);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_GREYLISTED, 1, 2, 0, 0), 300000);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_GREYLISTED, 1, 3, 0, 0), 900000);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_GREYLISTED, 1, 4, 0, 0), -1); /* 4 attempts */
	/* a longer hint wins, up to the last step */
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_GREYLISTED, 1, 1, 120000, 0), 120000);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_GREYLISTED, 1, 1, 3600000, 0), 60000);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_RATE_LIMITED, 1, 2, 0, 0), 300000);
	p.max_attempts = 1;
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_GREYLISTED, 1, 1, 0, 0), -1);
}

static void test_blocked_never_from_the_same_address(void **state)
{
	emv_retry_policy p = pol();
	(void)state;
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_BLOCKED, 1, 1, 0, 0), -1);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_BLOCKED, 1, 1, 0, 1), 0);
}

static void test_unreachable_once_more_then_final(void **state)
{
	emv_retry_policy p = pol();
	(void)state;
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_CONNECTION_FAILED, 1, 1, 0, 0), 60000);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_CONNECTION_FAILED, 1, 2, 0, 0), -1);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_TIMEOUT, 1, 1, 0, 0), 60000);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_TIMEOUT, 1, 2, 0, 0), -1);
	/* the schedule's first step times it */
	p.schedule_ms[0] = 2000;
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_CONNECTION_FAILED, 1, 1, 0, 0), 2000);
}

static void test_dns_two_quick_retries(void **state)
{
	emv_retry_policy p = pol();
	(void)state;
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_DNS_FAILED, 1, 1, 0, 0), 5000);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_DNS_FAILED, 1, 2, 0, 0), 20000);
	assert_int_equal(emv_retry_delay(&p, EMV_REASON_DNS_FAILED, 1, 3, 0, 0), -1);
}

static void test_parse_schedule(void **state)
{
	emv_retry_policy p = pol();
	char err[200];
	(void)state;
	assert_int_equal(emv_retry_parse_schedule(&p, "1,2,3", err, sizeof err), 0);
	assert_int_equal(p.schedule_ms[0], 1000);
	assert_int_equal(p.schedule_ms[2], 3000);
	assert_int_equal(emv_retry_parse_schedule(&p, "1,2", err, sizeof err), -1);
	assert_int_equal(emv_retry_parse_schedule(&p, "1,2,3x", err, sizeof err), -1);
	assert_int_equal(emv_retry_parse_schedule(&p, "1,-2,3", err, sizeof err), -1);
	assert_int_equal(emv_retry_parse_schedule(&p, "1,2,99999999", err, sizeof err), -1);
	assert_int_equal(p.schedule_ms[0], 1000); /* unchanged by a refusal */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_final_answers),
		cmocka_unit_test(test_greylisting_follows_schedule_and_hint),
		cmocka_unit_test(test_blocked_never_from_the_same_address),
		cmocka_unit_test(test_unreachable_once_more_then_final),
		cmocka_unit_test(test_dns_two_quick_retries),
		cmocka_unit_test(test_parse_schedule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
