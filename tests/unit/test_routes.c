/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_routes.c - domain -> region routing rules of the coordinator's
 * split: longest suffix on label boundaries, the default, and errors that
 * name the line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "emv_routes.h"

static char ERR[512];

static emv_routes *parse(const char *text)
{
	return emv_routes_parse(text, strlen(text), "routes.conf", ERR, sizeof ERR);
}

static void do_test_longest_suffix_on_label_boundaries(void **state)
{
	emv_routes *r = parse("# regions\r\n"
			      "domain example.com  eu-west   # the company\n"
			      "\n"
			      "domain mail.example.com us-east\n"
			      "DOMAIN DE eu-central\n"
			      "domain xn--bcher-kva.example eu-west\n");
	(void)state;
	assert_non_null(r);
	assert_string_equal(emv_routes_region(r, "example.com"), "eu-west");
	assert_string_equal(emv_routes_region(r, "a.b.example.com"), "eu-west");
	assert_string_equal(emv_routes_region(r, "mail.example.com"), "us-east");
	assert_string_equal(emv_routes_region(r, "x.mail.example.com"), "us-east");
	assert_null(emv_routes_region(r, "badexample.com"));   /* not on a label boundary */
	assert_null(emv_routes_region(r, "example.com.evil")); /* a suffix, not a prefix */
	assert_string_equal(emv_routes_region(r, "web.de"), "eu-central");
	assert_string_equal(emv_routes_region(r, "xn--bcher-kva.example"), "eu-west");
	assert_null(emv_routes_region(r, "gmail.com")); /* shared topic */
	emv_routes_free(r);
}

static void do_test_default(void **state)
{
	emv_routes *r = parse("default us-east\ndomain example.com eu-west\n");
	(void)state;
	assert_non_null(r);
	assert_string_equal(emv_routes_region(r, "gmail.com"), "us-east");
	assert_string_equal(emv_routes_region(r, "example.com"), "eu-west");
	emv_routes_free(r);
	r = parse("default us-east\ndefault *\n"); /* the last one counts; * = shared */
	assert_non_null(r);
	assert_null(emv_routes_region(r, "gmail.com"));
	emv_routes_free(r);
	r = parse("");
	assert_non_null(r);
	assert_null(emv_routes_region(r, "gmail.com"));
	emv_routes_free(r);
	assert_null(emv_routes_region(NULL, "gmail.com"));
}

static void expect_error(const char *text, const char *msg)
{
	emv_routes *r = parse(text);
	if (r)
		fail_msg("accepted: %s", text);
	if (!strstr(ERR, msg))
		fail_msg("for %s: expected '%s' in '%s'", text, msg, ERR);
}

static void do_test_errors_name_the_line(void **state)
{
	static char big[600];
	(void)state;
	expect_error("domain example.com\n", "routes.conf:1: expected");
	expect_error("\n\nroute example.com eu\n", "routes.conf:3: expected");
	expect_error("domain example.com eu west\n", "routes.conf:1: expected");
	expect_error("domain exa_mple..com eu\n", "routes.conf:1: 'exa_mple..com' is not a domain");
	expect_error("domain -\xc3\xa9.com eu\n", "is not a domain");
	expect_error("domain example.com EU!\n", "routes.conf:1: region 'eu!'");
	expect_error("default a-region-name-far-longer-than-31\n", "region");
	expect_error("domain a.com eu\ndomain a.com us\n", "a.com is routed to both");
	assert_null(emv_routes_parse("domain a.com eu\0\n", 17, "routes.conf", ERR, sizeof ERR));
	assert_non_null(strstr(ERR, "routes.conf:1: NUL byte"));
	memset(big, 'a', sizeof big - 1);
	expect_error(big, "routes.conf:1: line longer than 511");
	/* the same rule twice is harmless */
	emv_routes_free(parse("domain a.com eu\ndomain a.com eu\n"));
}

static void do_test_region_names(void **state)
{
	(void)state;
	assert_int_equal(emv_routes_region_valid("eu-west_2"), 1);
	assert_int_equal(emv_routes_region_valid(""), 0);
	assert_int_equal(emv_routes_region_valid("EU"), 0);
	assert_int_equal(emv_routes_region_valid("a,b"), 0); /* commas separate avoid lists */
	assert_int_equal(emv_routes_region_valid("0123456789012345678901234567890"), 1);
	assert_int_equal(emv_routes_region_valid("01234567890123456789012345678901"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_longest_suffix_on_label_boundaries),
		cmocka_unit_test(do_test_default),
		cmocka_unit_test(do_test_errors_name_the_line),
		cmocka_unit_test(do_test_region_names),
	};
	return cmocka_run_group_tests_name("routes", tests, NULL, NULL);
}
