/* SPDX-License-Identifier: Apache-2.0 */
/* test_budget.c - RCPT budgets: sliding windows never exceeded, waits right. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include "emv_budget.h"

/* Start well past 0 so slot arithmetic is not trivially aligned. */
#define T0 1000000123ull

static void do_test_grants_up_to_the_limit(void **state)
{
	emv_budget *b = emv_budget_new();
	int wait;
	assert_int_equal(emv_budget_take(b, "h:x", 10, 0, 0, 6, 1, T0, &wait), 6);
	assert_int_equal(emv_budget_take(b, "h:x", 10, 0, 0, 6, 1, T0 + 10, &wait), 4); /* partial */
	assert_int_equal(emv_budget_take(b, "h:x", 10, 0, 0, 1, 1, T0 + 20, &wait), 0);
	assert_true(wait > 59000 && wait <= 61000);
	/* keys are independent; unlimited needs no bookkeeping */
	assert_int_equal(emv_budget_take(b, "h:y", 10, 0, 0, 10, 1, T0, &wait), 10);
	assert_int_equal(emv_budget_take(b, "h:z", 0, 0, 0, 5000, 1, T0, &wait), 5000);
	emv_budget_free(b);
}

/* What was taken and not used goes back (a pool-wide budget granted less
 * than the address's own); never below zero; unknown keys are ignored. */
static void do_test_refund(void **state)
{
	emv_budget *b = emv_budget_new();
	int wait;
	assert_int_equal(emv_budget_take(b, "p:x@a", 10, 0, 0, 8, 1, T0, &wait), 8);
	emv_budget_refund(b, "p:x@a", 5, T0 + 5);
	assert_int_equal(emv_budget_take(b, "p:x@a", 10, 0, 0, 10, 1, T0 + 10, &wait), 7);
	emv_budget_refund(b, "p:x@a", 100, T0 + 20); /* more than the newest slot holds: to zero */
	emv_budget_refund(b, "p:x@a", 0, T0 + 20);
	emv_budget_refund(b, "nosuchkey", 3, T0 + 20);
	assert_int_equal(emv_budget_take(b, "p:x@a", 10, 0, 0, 10, 1, T0 + 30, &wait), 10);
	emv_budget_free(b);
}

static void do_test_min_is_all_or_nothing(void **state)
{
	emv_budget *b = emv_budget_new();
	int wait;
	assert_int_equal(emv_budget_take(b, "k", 10, 0, 0, 8, 1, T0, &wait), 8);
	/* 2 left: a request that needs at least 3 gets nothing and waits */
	assert_int_equal(emv_budget_take(b, "k", 10, 0, 0, 5, 3, T0, &wait), 0);
	assert_true(wait > 0);
	assert_int_equal(emv_budget_take(b, "k", 10, 0, 0, 5, 2, T0, &wait), 2);
	emv_budget_free(b);
}

static void do_test_wait_is_when_it_frees(void **state)
{
	emv_budget *b = emv_budget_new();
	int wait;
	assert_int_equal(emv_budget_take(b, "k", 5, 0, 0, 5, 1, T0, &wait), 5);
	assert_int_equal(emv_budget_take(b, "k", 5, 0, 0, 1, 1, T0 + 1000, &wait), 0);
	/* asking again after the announced wait succeeds, one ms before fails */
	uint64_t at = T0 + 1000 + (uint64_t)wait;
	assert_int_equal(emv_budget_take(b, "k", 5, 0, 0, 1, 1, at - 2, &wait), 0);
	assert_int_equal(emv_budget_take(b, "k", 5, 0, 0, 1, 1, at, &wait), 1);
	emv_budget_free(b);
}

static void do_test_hour_and_day_windows(void **state)
{
	emv_budget *b = emv_budget_new();
	int wait;
	uint64_t t = T0;
	int got = 0;
	/* 20/min, 30/hour: after 30 in two minutes the hour is the limit */
	for (int i = 0; i < 10; i++, t += 61000)
		got += emv_budget_take(b, "k", 20, 30, 0, 20, 1, t, &wait);
	assert_int_equal(got, 30);
	assert_int_equal(emv_budget_take(b, "k", 20, 30, 0, 1, 1, t, &wait), 0);
	assert_true(wait > 60000); /* minutes, not seconds */
	emv_budget_free(b);
}

static void do_test_charge_delays(void **state)
{
	emv_budget *b = emv_budget_new();
	int wait;
	/* charges use the monotonic clock: work in "now" */
	emv_budget_take(b, "k", 1000000, 0, 0, 1, 1, 0, &wait);
	emv_budget_charge(b, "k", 5);
	emv_budget_charge(b, "unknown-key", 5); /* nothing to charge: ignored */
	emv_budget_free(b);
}

/* Random requests over simulated time: no 60-second window may ever hold
 * more than the limit, and the budget is not left unused for long. */
static void do_test_no_window_exceeded(void **state)
{
	enum { N = 20000 };
	uint64_t *grants = malloc(N * 8 * sizeof *grants);
	size_t ng = 0;
	emv_budget *b = emv_budget_new();
	uint64_t t = T0;
	unsigned seed = 7;
	int wait;
	for (int i = 0; i < N; i++) {
		int want = 1 + (int)(rand_r(&seed) % 7);
		int got = emv_budget_take(b, "k", 50, 0, 0, want, 1, t, &wait);
		for (int k = 0; k < got; k++)
			grants[ng++] = t;
		t += got ? (uint64_t)(1 + rand_r(&seed) % 900) : (uint64_t)wait;
	}
	for (size_t i = 50; i < ng; i++)
		if (grants[i] - grants[i - 50] < 60000)
			fail_msg("grant %zu at %llu is within 60 s of grant %zu", i,
				 (unsigned long long)(grants[i] - T0), i - 50);
	/* sustained rate close to 50 a minute (slots make it a little lower) */
	double per_min = (double)ng / ((double)(t - T0) / 60000.0);
	print_message("%zu grants, %.1f per minute (limit 50)\n", ng, per_min);
	assert_true(per_min > 45.0 && per_min <= 50.0);
	free(grants);
	emv_budget_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_grants_up_to_the_limit), cmocka_unit_test(do_test_refund),
		cmocka_unit_test(do_test_min_is_all_or_nothing),  cmocka_unit_test(do_test_wait_is_when_it_frees),
		cmocka_unit_test(do_test_hour_and_day_windows),	  cmocka_unit_test(do_test_charge_delays),
		cmocka_unit_test(do_test_no_window_exceeded),
	};
	return cmocka_run_group_tests_name("budget", tests, NULL, NULL);
}
