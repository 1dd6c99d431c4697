/* SPDX-License-Identifier: Apache-2.0 */
/* test_netsafe.c - which MX addresses a probe may connect to, and retry hints. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "emv_netsafe.h"
#include "emv_probe.h"

static const char *cls(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		fail_msg("bad test address %s", ip);
	return emv_netsafe_class((struct sockaddr *)&ss);
}

static void do_test_refused_ranges(void **state)
{
	static const struct {
		const char *ip, *want;
	} cases[] = {
		{ "127.0.0.1", "loopback" },
		{ "127.255.255.254", "loopback" },
		{ "10.1.2.3", "private" },
		{ "172.16.0.1", "private" },
		{ "172.31.255.255", "private" },
		{ "192.168.1.1", "private" },
		{ "169.254.169.254", "link-local" }, /* cloud metadata service */
		{ "100.64.0.1", "cgnat" },
		{ "0.0.0.0", "this-network" },
		{ "224.0.0.1", "multicast" },
		{ "255.255.255.255", "reserved" },
		{ "240.0.0.1", "reserved" },
		{ "192.0.2.10", "documentation" },
		{ "198.18.0.1", "benchmarking" },
		{ "203.0.113.5", "documentation" },
		{ "::1", "loopback" },
		{ "::", "unspecified" },
		{ "fe80::1", "link-local" },
		{ "fd00::1", "private" },
		{ "ff02::1", "multicast" },
		{ "2001:db8::1", "documentation" },
		{ "::ffff:127.0.0.1", "loopback" },
		{ "::ffff:10.0.0.1", "private" },
		{ "64:ff9b::a00:1", "private" }, /* NAT64 of 10.0.0.1 */
		{ "::127.0.0.1", "reserved" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *got = cls(cases[i].ip);
		if (!got || strcmp(got, cases[i].want) != 0)
			fail_msg("%s: expected %s, got %s", cases[i].ip, cases[i].want, got ? got : "public");
	}
}

static void do_test_public_allowed(void **state)
{
	static const char *const ok[] = {
		"8.8.8.8",     "142.250.1.27", "172.15.255.255",     "172.32.0.1",   "100.63.255.255",
		"100.128.0.1", "192.0.3.1",    "2a00:1450:4001::1a", "2607:f8b0::1", "::ffff:8.8.8.8",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (cls(ok[i]))
			fail_msg("%s should be public, got %s", ok[i], cls(ok[i]));
}

static void do_test_retry_hints(void **state)
{
	assert_int_equal(emv_probe_retry_hint_ms("4.7.1 Greylisted, please try again in 300 seconds"), 300000);
	assert_int_equal(emv_probe_retry_hint_ms("Greylisting in action, please come back in 00:05:00"), 0);
	assert_int_equal(emv_probe_retry_hint_ms("try again in 5 minutes"), 300000);
	assert_int_equal(emv_probe_retry_hint_ms("retry after 60s"), 60000);
	assert_int_equal(emv_probe_retry_hint_ms("Temporary failure 4.7.1"), 0);
	assert_int_equal(emv_probe_retry_hint_ms("451 try again later"), 0);
	assert_int_equal(emv_probe_retry_hint_ms("wait 99999999 seconds"), 0); /* absurd: ignored */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_refused_ranges),
		cmocka_unit_test(do_test_public_allowed),
		cmocka_unit_test(do_test_retry_hints),
	};
	return cmocka_run_group_tests_name("netsafe", tests, NULL, NULL);
}
