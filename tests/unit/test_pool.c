/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_pool.c - the worker pool config: a good file parses to what it says,
 * every kind of bad input fails with file, line and field named, and
 * arbitrary bytes never crash the parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "emv_pool.h"

#define EXAMPLE EMV_SOURCE_DATA_DIR "/../deploy/worker.conf.example"

static emv_pool *parse(const char *text, char *err, size_t errlen)
{
	return emv_pool_parse(text, strlen(text), "t.conf", err, errlen);
}

static void do_test_good_config(void **state)
{
	char err[256] = "";
	emv_pool *p = parse("# a comment\r\n"
			    "region = EU-West\r\n"
			    "mail_from=probe@Verifier.Example.NET.\n"
			    "\n"
			    "  source = 127.0.0.61   Mail-A.example.test.  # trailing comment\n"
			    "source = 2001:DB8:0:0::10 mail-a6.example.test\n"
			    "dnsbl = zen.spamhaus.org\n"
			    "dnsbl = _bl.example.test\n"
			    "audit_failures = run",
			    err, sizeof err);
	if (!p)
		fail_msg("good config rejected: %s", err);
	assert_string_equal(p->region, "eu-west");
	assert_string_equal(p->mail_from_domain, "verifier.example.net");
	assert_string_equal(p->mail_from, "probe@verifier.example.net");
	assert_int_equal(p->audit_failures, EMV_POOL_AUDIT_RUN);
	assert_int_equal(p->nsources, 2);
	assert_string_equal(p->sources[0].ip, "127.0.0.61");
	assert_string_equal(p->sources[0].helo, "mail-a.example.test");
	assert_int_equal(p->sources[0].addr.sa.sa_family, AF_INET);
	assert_string_equal(p->sources[1].ip, "2001:db8::10"); /* canonical form */
	assert_int_equal(p->sources[1].addr.sa.sa_family, AF_INET6);
	assert_int_equal(p->ndnsbl, 2);
	assert_string_equal(p->dnsbl[1], "_bl.example.test");
	assert_int_equal(emv_pool_find(p, "2001:db8::0:10"), 1);
	assert_int_equal(emv_pool_find(p, "127.0.0.62"), -1);
	assert_int_equal(emv_pool_find(p, "garbage"), -1);
	emv_pool_free(p);
}

static void do_test_defaults(void **state)
{
	char err[256] = "";
	emv_pool *p = parse("region=r\nmail_from=a@b.test\nsource=::1 h.test\n", err, sizeof err);
	if (!p)
		fail_msg("minimal config rejected: %s", err);
	assert_int_equal(p->audit_failures, EMV_POOL_AUDIT_HOLD);
	assert_int_equal(p->ndnsbl, 0);
	emv_pool_free(p);
}

static void do_test_example_file_loads(void **state)
{
	char err[256] = "";
	emv_pool *p = emv_pool_load(EXAMPLE, err, sizeof err);
	if (!p)
		fail_msg("deploy/worker.conf.example does not load: %s", err);
	assert_int_equal(p->nsources, 3);
	assert_int_equal(p->ndnsbl, 2);
	emv_pool_free(p);
}

/* Each bad input and a piece of the error it must give. */
static const struct {
	const char *text, *want;
} bad[] = {
	{ "region=r\nmail_from=a@b.test\nsource=1.2.3.4 h.test\nfoo=1\n", "t.conf:4: line: unknown key 'foo'" },
	{ "region=r\nregion=s\n", "t.conf:2: region: given twice" },
	{ "region=has space\n", "t.conf:1: region: 'has space'" },
	{ "region=\n", "t.conf:1: region: empty value" },
	{ "region=abcdefghijabcdefghijabcdefghijab\n", "t.conf:1: region" },
	{ "no equals sign\n", "t.conf:1: line: expected 'key = value'" },
	{ "mail_from=nobody\n", "t.conf:1: mail_from: 'nobody'" },
	{ "mail_from=a..b@x.test\n", "t.conf:1: mail_from" },
	{ "mail_from=\"q\"@x.test\n", "t.conf:1: mail_from" },
	{ "mail_from=a@localhost\n", "t.conf:1: mail_from: domain of 'a@localhost': not a fully-qualified" },
	{ "mail_from=a@x_y.test\n", "t.conf:1: mail_from: domain" },
	{ "\n\nsource=1.2.3.4\n", "t.conf:3: source: expected 'ADDRESS HELO-NAME'" },
	{ "source=1.2.3.4 a.test extra\n", "t.conf:1: source: expected" },
	{ "source=1.2.3.256 a.test\n", "t.conf:1: source: '1.2.3.256' is not an IPv4 or IPv6 address" },
	{ "source=fe80::1%eth0 a.test\n", "t.conf:1: source: 'fe80::1%eth0'" },
	{ "source=1.2.3.4 -bad.test\n", "t.conf:1: source: HELO name '-bad.test': label starts or ends" },
	{ "source=1.2.3.4 a..test\n", "t.conf:1: source: HELO name 'a..test': empty label" },
	{ "source=1.2.3.4 a.test\nsource=1.2.3.4 b.test\n", "t.conf:2: source: address 1.2.3.4 listed twice" },
	{ "source=::1 a.test\nsource=0:0::1 b.test\n", "t.conf:2: source: address ::1 listed twice" },
	{ "dnsbl=zen\n", "t.conf:1: dnsbl: zone 'zen': not a fully-qualified" },
	{ "dnsbl=a.test\ndnsbl=A.test.\n", "t.conf:2: dnsbl: zone a.test listed twice" },
	{ "audit_failures=maybe\n", "t.conf:1: audit_failures: 'maybe': expected hold or run" },
	{ "audit_failures=hold\naudit_failures=run\n", "t.conf:2: audit_failures: given twice" },
	{ "mail_from=a@b.test\nsource=1.2.3.4 a.test\n", "t.conf: region: missing" },
	{ "region=r\nsource=1.2.3.4 a.test\n", "t.conf: mail_from: missing" },
	{ "region=r\nmail_from=a@b.test\n", "t.conf: source: missing" },
	{ "", "t.conf: region: missing" },
};

static void do_test_bad_inputs_name_line_and_field(void **state)
{
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[256] = "";
		emv_pool *p = parse(bad[i].text, err, sizeof err);
		if (p)
			fail_msg("case %zu accepted: %s", i, bad[i].text);
		if (!strstr(err, bad[i].want))
			fail_msg("case %zu: error '%s' does not contain '%s'", i, err, bad[i].want);
	}
}

static void do_test_limits(void **state)
{
	char err[256] = "", *buf = malloc(64 * 1024);
	size_t n = (size_t)snprintf(buf, 64 * 1024, "region=r\nmail_from=a@b.test\n");
	emv_pool *p;

	for (int i = 0; i <= EMV_POOL_SOURCES_MAX; i++)
		n += (size_t)snprintf(buf + n, 64 * 1024 - n, "source=10.0.%d.%d h%d.test\n", i / 256, i % 256, i);
	p = emv_pool_parse(buf, n, "t.conf", err, sizeof err);
	assert_null(p);
	assert_non_null(strstr(err, "t.conf:67: source: more than 64"));

	/* a line one over the limit, and a NUL in a line */
	memset(buf, 'x', EMV_POOL_LINE_MAX);
	p = emv_pool_parse(buf, EMV_POOL_LINE_MAX, "t.conf", err, sizeof err);
	assert_null(p);
	assert_non_null(strstr(err, "t.conf:1: line: longer than 1023"));
	p = emv_pool_parse("region=a\0b\n", 11, "t.conf", err, sizeof err);
	assert_null(p);
	assert_non_null(strstr(err, "t.conf:1: line: contains a NUL byte"));
	free(buf);
}

static void do_test_missing_file(void **state)
{
	char err[256] = "";
	assert_null(emv_pool_load("/nonexistent/worker.conf", err, sizeof err));
	assert_non_null(strstr(err, "/nonexistent/worker.conf: No such file"));
}

/* Random bytes and mutations of a good file: no crash, no leak (ASan). */
static void do_test_random_input_never_crashes(void **state)
{
	static const char good[] = "region=r\nmail_from=a@b.test\nsource=1.2.3.4 a.test\ndnsbl=z.test\n";
	char buf[256], err[128];
	uint32_t x = 12345;
	int accepted = 0;

	for (int round = 0; round < 20000; round++) {
		size_t n = sizeof good - 1;
		memcpy(buf, good, n);
		for (int k = 0; k < 1 + round % 4; k++) {
			x = x * 1103515245u + 12345u;
			buf[(x >> 8) % n] = (char)(x >> 16);
		}
		emv_pool *p = emv_pool_parse(buf, n, "f", err, sizeof err);
		accepted += p != NULL;
		emv_pool_free(p);
	}
	/* mutations mostly break it, but not always (e.g. inside a comment-free
	 * region name letter to letter) */
	assert_true(accepted > 0 && accepted < 20000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_good_config),
		cmocka_unit_test(do_test_defaults),
		cmocka_unit_test(do_test_example_file_loads),
		cmocka_unit_test(do_test_bad_inputs_name_line_and_field),
		cmocka_unit_test(do_test_limits),
		cmocka_unit_test(do_test_missing_file),
		cmocka_unit_test(do_test_random_input_never_crashes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
