/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_preflight.c - the HELO name rule of the preflight (emv_pf_helo_fqdn):
 * what receivers accept as a fully qualified name in EHLO.  The checks that
 * need DNS and sockets are tested against real servers in
 * tests/audit/test_doctor.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "emv_preflight.h"

static void test_fqdn_accepted(void **state)
{
	(void)state;
	assert_true(emv_pf_helo_fqdn("probe.example.com"));
	assert_true(emv_pf_helo_fqdn("mail-a.audit.test"));
	assert_true(emv_pf_helo_fqdn("x1.example.com.")); /* trailing dot */
	assert_true(emv_pf_helo_fqdn("a.b"));
	assert_true(emv_pf_helo_fqdn("123.example.com")); /* digits in a label are fine */
}

static void test_not_fqdn(void **state)
{
	(void)state;
	assert_false(emv_pf_helo_fqdn(NULL));
	assert_false(emv_pf_helo_fqdn(""));
	assert_false(emv_pf_helo_fqdn("vm")); /* the bare host name */
	assert_false(emv_pf_helo_fqdn("localhost"));
	assert_false(emv_pf_helo_fqdn("localhost.localdomain"));
	assert_false(emv_pf_helo_fqdn("192.0.2.1")); /* an address is no name */
	assert_false(emv_pf_helo_fqdn("2001:db8::1"));
	assert_false(emv_pf_helo_fqdn("[192.0.2.1]"));
	assert_false(emv_pf_helo_fqdn("host.123")); /* numeric top-level label */
	assert_false(emv_pf_helo_fqdn("a..b"));
	assert_false(emv_pf_helo_fqdn(".example.com"));
	assert_false(emv_pf_helo_fqdn("-a.example.com"));
	assert_false(emv_pf_helo_fqdn("a-.example.com"));
	assert_false(emv_pf_helo_fqdn("under_score.example.com"));
	assert_false(emv_pf_helo_fqdn("sp ace.example.com"));
	assert_false(emv_pf_helo_fqdn("a.example.com.."));
	/* a label of 64 characters */
	assert_false(emv_pf_helo_fqdn("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"));
	assert_true(emv_pf_helo_fqdn("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fqdn_accepted),
		cmocka_unit_test(test_not_fqdn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
