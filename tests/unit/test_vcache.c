/* SPDX-License-Identifier: Apache-2.0 */
/* test_vcache.c - the cluster verdict cache's settings (coordinator/emv_vcache.h):
 * the environment, the options and their errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "emv_defaults.h"
#include "emv_util.h"
#include "emv_vcache.h"

static void test_defaults_and_env(void **state)
{
	emv_vcache_cfg c;
	char err[256];
	(void)state;
	unsetenv("EMV_CACHE_SCOPE");
	unsetenv("EMV_CACHE_AGES");
	assert_int_equal(emv_vcache_cfg_init(&c, err, sizeof err), EMV_OK);
	assert_int_equal(c.off, 0);
	assert_int_equal(c.global, 0);
	assert_int_equal(c.ages.status_s[EMV_STATUS_DELIVERABLE], EMV_DEF_CACHE_DELIVERABLE_S);

	setenv("EMV_CACHE_SCOPE", "global", 1);
	setenv("EMV_CACHE_AGES", "deliverable=14d,risky=off", 1);
	assert_int_equal(emv_vcache_cfg_init(&c, err, sizeof err), EMV_OK);
	assert_int_equal(c.global, 1);
	assert_int_equal(c.ages.status_s[EMV_STATUS_DELIVERABLE], 14 * 86400);
	assert_int_equal(c.ages.status_s[EMV_STATUS_RISKY], -1);

	setenv("EMV_CACHE_SCOPE", "off", 1);
	assert_int_equal(emv_vcache_cfg_init(&c, err, sizeof err), EMV_OK);
	assert_int_equal(c.off, 1);

	setenv("EMV_CACHE_SCOPE", "everyone", 1);
	assert_int_equal(emv_vcache_cfg_init(&c, err, sizeof err), EMV_ERR);
	if (!strstr(err, "EMV_CACHE_SCOPE") || !strstr(err, "everyone"))
		fail_msg("err = [%s], want it to name EMV_CACHE_SCOPE and the value", err);
	setenv("EMV_CACHE_SCOPE", "tenant", 1);
	setenv("EMV_CACHE_AGES", "unknown=1d", 1);
	assert_int_equal(emv_vcache_cfg_init(&c, err, sizeof err), EMV_ERR);
	if (!strstr(err, "EMV_CACHE_AGES"))
		fail_msg("err = [%s], want it to name EMV_CACHE_AGES", err);
	unsetenv("EMV_CACHE_SCOPE");
	unsetenv("EMV_CACHE_AGES");
}

static void test_options(void **state)
{
	emv_vcache_cfg c;
	char err[256];
	char *argv[] = { "x",	    "--cache-scope", "global", "--cache-ages", "undeliverable=30d", "--no-cache",
			 "--other", "--cache-ages",  NULL };
	int argc = 8, i;
	(void)state;
	unsetenv("EMV_CACHE_SCOPE");
	unsetenv("EMV_CACHE_AGES");
	emv_vcache_cfg_init(&c, err, sizeof err);
	i = 1;
	assert_int_equal(emv_vcache_opt(&c, argc, argv, &i, err, sizeof err), 1);
	assert_int_equal(i, 2);
	assert_int_equal(c.global, 1);
	i = 3;
	assert_int_equal(emv_vcache_opt(&c, argc, argv, &i, err, sizeof err), 1);
	assert_int_equal(c.ages.status_s[EMV_STATUS_UNDELIVERABLE], 30 * 86400);
	i = 5;
	assert_int_equal(emv_vcache_opt(&c, argc, argv, &i, err, sizeof err), 1);
	assert_int_equal(c.off, 1);
	i = 6;
	assert_int_equal(emv_vcache_opt(&c, argc, argv, &i, err, sizeof err), 0);
	i = 7; /* no value */
	assert_int_equal(emv_vcache_opt(&c, argc, argv, &i, err, sizeof err), -1);
	assert_non_null(strstr(err, "--cache-ages"));
	/* --cache-scope takes no "off": that is --no-cache */
	assert_int_equal(emv_vcache_set(&c, "--cache-scope", "off", err, sizeof err), EMV_ERR);
	assert_non_null(strstr(err, "--cache-scope"));
	assert_int_equal(emv_vcache_set(&c, "--cache-ages", "deliverable=2y", err, sizeof err), EMV_ERR);
	assert_non_null(strstr(err, "deliverable"));
}

static void test_parse_bool(void **state)
{
	char err[128];
	(void)state;
	assert_int_equal(emv_vcache_parse_bool("fresh", "true", err, sizeof err), 1);
	assert_int_equal(emv_vcache_parse_bool("fresh", "1", err, sizeof err), 1);
	assert_int_equal(emv_vcache_parse_bool("fresh", "No", err, sizeof err), 0);
	assert_int_equal(emv_vcache_parse_bool("fresh", "maybe", err, sizeof err), -1);
	if (!strstr(err, "fresh") || !strstr(err, "maybe"))
		fail_msg("err = [%s], want the field and the value", err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_env),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_parse_bool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
