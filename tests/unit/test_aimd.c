/* SPDX-License-Identifier: Apache-2.0 */
/* test_aimd.c - sessions per MX host: additive increase while replies stay
 * fast, multiplicative decrease on pressure or sharply rising latency. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "emv_aimd.h"

/* One session at first; good jobs add about one session per window's
 * worth of them, up to the provider's cap and never past it. */
static void do_test_grows_to_the_cap(void **state)
{
	emv_aimd a;
	emv_aimd_init(&a, 4);
	assert_int_equal(emv_aimd_sessions(&a), 1);
	assert_int_equal(emv_aimd_update(&a, 0, 1, 50), 0);
	assert_int_equal(emv_aimd_sessions(&a), 2);
	for (int i = 0; i < 20; i++)
		emv_aimd_update(&a, 0, 1, 50);
	assert_int_equal(emv_aimd_sessions(&a), 4);
	/* a job that never reached a server teaches nothing */
	emv_aimd_init(&a, 4);
	emv_aimd_update(&a, 0, 0, 0);
	assert_int_equal(emv_aimd_sessions(&a), 1);
	/* a cap of 0 or less is one session */
	emv_aimd_init(&a, 0);
	emv_aimd_update(&a, 0, 1, 50);
	assert_int_equal(emv_aimd_sessions(&a), 1);
}

/* What the server says (a 421, a rate limit, a tarpit) halves the window. */
static void do_test_pressure_halves(void **state)
{
	emv_aimd a;
	emv_aimd_init(&a, 8);
	for (int i = 0; i < 40; i++)
		emv_aimd_update(&a, 0, 1, 50);
	assert_int_equal(emv_aimd_sessions(&a), 8);
	assert_int_equal(emv_aimd_update(&a, 1, 1, 50), 0); /* pressure, not latency */
	assert_int_equal(emv_aimd_sessions(&a), 4);
	emv_aimd_update(&a, 1, 1, 50);
	emv_aimd_update(&a, 1, 1, 50);
	emv_aimd_update(&a, 1, 1, 50);
	assert_int_equal(emv_aimd_sessions(&a), 1); /* never below one */
}

/* What the server shows: replies rising sharply over the lowest seen at
 * this host halve the window too; the usual jitter does not. */
static void do_test_latency_rise_halves(void **state)
{
	emv_aimd a;
	emv_aimd_init(&a, 8);
	for (int i = 0; i < 40; i++)
		emv_aimd_update(&a, 0, 1, 50 + (unsigned)(i % 3) * 20); /* 50..90 ms */
	assert_int_equal(emv_aimd_sessions(&a), 8);
	assert_int_equal(a.base_ms, 50);
	/* 3x the base but within 200 ms of it: a fast server's jitter */
	assert_int_equal(emv_aimd_update(&a, 0, 1, 240), 0);
	assert_int_equal(emv_aimd_sessions(&a), 8);
	/* 400 ms where 50 is usual: the server is getting busy */
	assert_int_equal(emv_aimd_update(&a, 0, 1, 400), 1);
	assert_int_equal(emv_aimd_sessions(&a), 4);
	assert_int_equal(emv_aimd_update(&a, 0, 1, 500), 1);
	assert_int_equal(emv_aimd_sessions(&a), 2);
	/* fast again: it grows back */
	emv_aimd_update(&a, 0, 1, 60); /* 2.5 */
	emv_aimd_update(&a, 0, 1, 60); /* 2.9 */
	emv_aimd_update(&a, 0, 1, 60); /* 3.24 */
	assert_int_equal(emv_aimd_sessions(&a), 3);
	/* a slow server is judged by its own base: 900 ms where 800 is usual */
	emv_aimd_init(&a, 8);
	emv_aimd_update(&a, 0, 1, 800);
	assert_int_equal(emv_aimd_update(&a, 0, 1, 900), 0);
	assert_int_equal(emv_aimd_sessions(&a), 2);
	/* no latency known: no signal */
	assert_int_equal(emv_aimd_update(&a, 0, 1, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_grows_to_the_cap),
		cmocka_unit_test(do_test_pressure_halves),
		cmocka_unit_test(do_test_latency_rise_halves),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
