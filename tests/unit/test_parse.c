/* SPDX-License-Identifier: Apache-2.0 */
/* test_parse.c - the one checked number parser: "10x" is not 10, "" is not
 * 0, overflow and bounds are refused, and the error names option and limits. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "emv_util.h"

static void do_test_whole_numbers(void **state)
{
	long long v = -1;
	(void)state;
	assert_int_equal(emv_parse_ll("10", 0, 100, &v), EMV_OK);
	assert_int_equal(v, 10);
	assert_int_equal(emv_parse_ll("0", 0, 100, &v), EMV_OK);
	assert_int_equal(v, 0);
	assert_int_equal(emv_parse_ll("-5", -10, 10, &v), EMV_OK);
	assert_int_equal(v, -5);
	assert_int_equal(emv_parse_ll("007", 0, 10, &v), EMV_OK);
	assert_int_equal(v, 7);
	assert_int_equal(emv_parse_ll("9223372036854775807", 0, LLONG_MAX, &v), EMV_OK);
	assert_true(v == LLONG_MAX);
	assert_int_equal(emv_parse_ll("-9223372036854775808", LLONG_MIN, 0, &v), EMV_OK);
	assert_true(v == LLONG_MIN);
}

static void do_test_refused(void **state)
{
	static const char *const bad[] = {
		"10x",
		"x10",
		"",
		" 10",
		"+7",
		"10 ",
		"1 0",
		"-",
		"+",
		"--1",
		"1e3",
		"0x10",
		"10.0",
		"1,000",
		"9223372036854775808",
		"-9223372036854775809",
		"99999999999999999999999",
	};
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		long long v = 42;
		if (emv_parse_ll(bad[i], LLONG_MIN, LLONG_MAX, &v) != EMV_ERR)
			fail_msg("'%s' was accepted as %lld", bad[i], v);
		if (v != 42)
			fail_msg("'%s' changed *out on failure", bad[i]);
	}
	assert_int_equal(emv_parse_ll(NULL, 0, 1, NULL), EMV_ERR);
}

static void do_test_bounds(void **state)
{
	long long v;
	(void)state;
	assert_int_equal(emv_parse_ll("1", 1, 64, &v), EMV_OK);
	assert_int_equal(emv_parse_ll("64", 1, 64, &v), EMV_OK);
	assert_int_equal(emv_parse_ll("0", 1, 64, &v), EMV_ERR);
	assert_int_equal(emv_parse_ll("65", 1, 64, &v), EMV_ERR);
	assert_int_equal(emv_parse_ll("-1", 0, 64, &v), EMV_ERR); /* negative where none is allowed */
}

static void do_test_messages(void **state)
{
	char err[160];
	int n = 5;
	(void)state;
	assert_int_equal(emv_parse_int("--threads", "10x", 1, 64, &n, err, sizeof err), EMV_ERR);
	assert_string_equal(err, "--threads must be a whole number from 1 to 64 (got '10x')");
	assert_int_equal(n, 5);
	assert_int_equal(emv_parse_int("--threads", "", 1, 64, &n, err, sizeof err), EMV_ERR);
	assert_string_equal(err, "--threads must be a whole number from 1 to 64 (got '')");
	/* what is shown of the input is printable and bounded */
	assert_int_equal(emv_parse_int("--x", "1\n2", 0, 9, &n, err, sizeof err), EMV_ERR);
	assert_string_equal(err, "--x must be a whole number from 0 to 9 (got '1?2')");
	/* an int never takes a value it cannot hold */
	assert_int_equal(emv_parse_int("--x", "2147483648", INT_MIN, INT_MAX, &n, err, sizeof err), EMV_ERR);
	assert_int_equal(emv_parse_int("--x", "64", 1, 64, &n, err, sizeof err), EMV_OK);
	assert_int_equal(n, 64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_whole_numbers),
		cmocka_unit_test(do_test_refused),
		cmocka_unit_test(do_test_bounds),
		cmocka_unit_test(do_test_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
