/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_spf.c - the SPF evaluator (RFC 7208) without DNS: a table of zone
 * data answered by an injected resolver, and a table of (address, domain,
 * expected result) cases covering record selection, every mechanism,
 * CIDR lengths, qualifiers, include/redirect, macros, the lookup and void
 * limits and syntax errors.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>
#include "emv_spf.h"

#define TEMPFAIL "<tempfail>" /* as the only item: the query fails temporarily */

static const struct rr {
	emv_spf_qtype t;
	const char *name, *data;
} zone[] = {
	{ EMV_SPF_Q_TXT, "ip4.test", "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 -all" },
	{ EMV_SPF_Q_TXT, "ip4.test", "google-site-verification=abc" },
	{ EMV_SPF_Q_TXT, "ip6.test", "v=spf1 ip6:2001:db8::/32 ~all" },
	{ EMV_SPF_Q_TXT, "a.test", "v=spf1 a -all" },
	{ EMV_SPF_Q_A, "a.test", "192.0.2.10" },
	{ EMV_SPF_Q_AAAA, "a.test", "2001:db8::a" },
	{ EMV_SPF_Q_TXT, "acidr.test", "v=spf1 a:host.acidr.test/24 a//64 -all" },
	{ EMV_SPF_Q_A, "host.acidr.test", "203.0.113.5" },
	{ EMV_SPF_Q_AAAA, "acidr.test", "2001:db8:1::1" },
	{ EMV_SPF_Q_TXT, "mx.test", "v=spf1 mx -all" },
	{ EMV_SPF_Q_MX, "mx.test", "mx1.mx.test" },
	{ EMV_SPF_Q_MX, "mx.test", "mx2.mx.test" },
	{ EMV_SPF_Q_A, "mx1.mx.test", "192.0.2.20" },
	{ EMV_SPF_Q_A, "mx2.mx.test", "192.0.2.21" },
	{ EMV_SPF_Q_TXT, "mxdom.test", "v=spf1 mx:mx.test/30 -all" },
	{ EMV_SPF_Q_TXT, "inc.test", "v=spf1 include:ip4.test ?all" },
	{ EMV_SPF_Q_TXT, "incfail.test", "v=spf1 include:ip6.test -all" },
	{ EMV_SPF_Q_TXT, "incnone.test", "v=spf1 include:nothing.test -all" },
	{ EMV_SPF_Q_TXT, "redir.test", "v=spf1 redirect=ip4.test" },
	{ EMV_SPF_Q_TXT, "redirnone.test", "v=spf1 redirect=nothing.test" },
	{ EMV_SPF_Q_TXT, "redirlast.test", "v=spf1 ip4:203.0.113.9 redirect=ip4.test" },
	{ EMV_SPF_Q_TXT, "multi.test", "v=spf1 +all" },
	{ EMV_SPF_Q_TXT, "multi.test", "v=spf1 -all" },
	{ EMV_SPF_Q_TXT, "nospf.test", "just some text" },
	{ EMV_SPF_Q_TXT, "spf10.test", "v=spf10 +all" },
	{ EMV_SPF_Q_TXT, "loop.test", "v=spf1 include:loop.test -all" },
	{ EMV_SPF_Q_TXT, "many.test",
	  "v=spf1 a:h1.many.test a:h2.many.test a:h3.many.test a:h4.many.test "
	  "a:h5.many.test a:h6.many.test a:h7.many.test a:h8.many.test "
	  "a:h9.many.test a:h10.many.test a:h11.many.test +all" },
	{ EMV_SPF_Q_TXT, "ten.test",
	  "v=spf1 a:h1.many.test a:h2.many.test a:h3.many.test a:h4.many.test "
	  "a:h5.many.test a:h6.many.test a:h7.many.test a:h8.many.test "
	  "a:h9.many.test a:h10.many.test ip4:192.0.2.1 -all" },
	{ EMV_SPF_Q_TXT, "void.test", "v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test +all" },
	{ EMV_SPF_Q_TXT, "void2.test", "v=spf1 a:n1.void.test mx:n2.void.test -all" },
	{ EMV_SPF_Q_TXT, "exists.test", "v=spf1 exists:%{i}.allow.test -all" },
	{ EMV_SPF_Q_A, "192.0.2.55.allow.test", "127.0.0.2" },
	{ EMV_SPF_Q_TXT, "macro.test", "v=spf1 exists:%{ir}.%{v}._spf.%{d} -all" },
	{ EMV_SPF_Q_A, "55.2.0.192.in-addr._spf.macro.test", "127.0.0.2" },
	{ EMV_SPF_Q_TXT, "macro2.test", "v=spf1 exists:%{l1r-}.%{d2}.users.test -all" },
	{ EMV_SPF_Q_A, "probe.macro2.test.users.test", "127.0.0.2" },
	{ EMV_SPF_Q_TXT, "macrobad.test", "v=spf1 exists:%{x}.test -all" },
	{ EMV_SPF_Q_TXT, "temp.test", TEMPFAIL },
	{ EMV_SPF_Q_TXT, "tempa.test", "v=spf1 a:broken.test -all" },
	{ EMV_SPF_Q_A, "broken.test", TEMPFAIL },
	{ EMV_SPF_Q_TXT, "badcidr.test", "v=spf1 ip4:192.0.2.1/33 -all" },
	{ EMV_SPF_Q_TXT, "badmech.test", "v=spf1 foo -all" },
	{ EMV_SPF_Q_TXT, "badip.test", "v=spf1 ip4:192.0.2 -all" },
	{ EMV_SPF_Q_TXT, "tworedir.test", "v=spf1 redirect=a.test redirect=ip4.test" },
	{ EMV_SPF_Q_TXT, "latesyntax.test", "v=spf1 ip4:192.0.2.1 include" },
	{ EMV_SPF_Q_TXT, "allarg.test", "v=spf1 all:x.test" },
	{ EMV_SPF_Q_TXT, "unknownmod.test", "v=spf1 foo=bar ip4:192.0.2.1 exp=explain.test -all" },
	{ EMV_SPF_Q_TXT, "case.test", "V=SPF1 IP4:192.0.2.1 -ALL" },
	{ EMV_SPF_Q_TXT, "neutral.test", "v=spf1 ip4:10.0.0.1" },
	{ EMV_SPF_Q_TXT, "plus.test", "v=spf1 +all" },
	{ EMV_SPF_Q_TXT, "tilde.test", "v=spf1 ~all" },
	{ EMV_SPF_Q_TXT, "quest.test", "v=spf1 ?all" },
	{ EMV_SPF_Q_TXT, "ptr.test", "v=spf1 ptr -all" },
	{ EMV_SPF_Q_TXT, "mx11.test", "v=spf1 mx -all" },
	{ EMV_SPF_Q_TXT, "nullmx.test", "v=spf1 mx ip4:192.0.2.1 -all" },
	{ EMV_SPF_Q_MX, "nullmx.test", "." },
	{ EMV_SPF_Q_TXT, "ip6mix.test", "v=spf1 mx ip4:192.0.2.0/24 -all" },
	{ EMV_SPF_Q_MX, "ip6mix.test", "mx1.mx.test" },
	{ EMV_SPF_Q_TXT, "deep1.test", "v=spf1 include:deep2.test -all" },
	{ EMV_SPF_Q_TXT, "deep2.test", "v=spf1 include:deep3.test -all" },
	{ EMV_SPF_Q_TXT, "deep3.test", "v=spf1 ip4:192.0.2.77 -all" },
};

/* Hosts h1..h11.many.test exist (A 10.0.0.x); n*.void.test do not. */
static int synthesize(emv_spf_qtype t, const char *name, char **items, int *n)
{
	int k;
	if (t == EMV_SPF_Q_A && sscanf(name, "h%d.many.test", &k) == 1) {
		char buf[32];
		snprintf(buf, sizeof buf, "10.0.0.%d", k);
		items[(*n)++] = strdup(buf);
		return 1;
	}
	if (t == EMV_SPF_Q_MX && strcmp(name, "mx11.test") == 0) {
		for (k = 0; k < 11; k++) {
			char buf[32];
			snprintf(buf, sizeof buf, "mx%d.mx11.test", k);
			items[(*n)++] = strdup(buf);
		}
		return 1;
	}
	return 0;
}

struct zctx {
	int queries;
};

static emv_spf_ans zone_resolve(void *ctx, emv_spf_qtype t, const char *name, char **items, int max, int *n)
{
	struct zctx *z = ctx;
	int exists = 0;

	z->queries++;
	*n = 0;
	if (synthesize(t, name, items, n))
		return EMV_SPF_ANS_OK;
	for (size_t i = 0; i < sizeof zone / sizeof zone[0]; i++) {
		if (strcasecmp(zone[i].name, name) != 0)
			continue;
		exists = 1;
		if (zone[i].t != t)
			continue;
		if (strcmp(zone[i].data, TEMPFAIL) == 0)
			return EMV_SPF_ANS_TEMPFAIL;
		if (*n < max)
			items[(*n)++] = strdup(zone[i].data);
	}
	return *n ? EMV_SPF_ANS_OK : exists ? EMV_SPF_ANS_NODATA : EMV_SPF_ANS_NXDOMAIN;
}

static void make_addr(const char *text, emv_sockaddr *a)
{
	memset(a, 0, sizeof *a);
	if (inet_pton(AF_INET, text, &a->in.sin_addr) == 1)
		a->in.sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &a->in6.sin6_addr) == 1)
		a->in6.sin6_family = AF_INET6;
	else
		fail_msg("bad test address %s", text);
}

static const struct {
	const char *ip, *domain;
	emv_spf_result want;
	const char *detail; /* substring of the detail, or NULL */
} cases[] = {
	/* ip4 / ip6 with CIDR; record selection among other TXT */
	{ "192.0.2.99", "ip4.test", EMV_SPF_PASS, "matched ip4:192.0.2.0/24 in ip4.test" },
	{ "198.51.100.7", "ip4.test", EMV_SPF_PASS, NULL },
	{ "198.51.100.8", "ip4.test", EMV_SPF_FAIL, "matched -all" },
	{ "::ffff:192.0.2.1", "ip4.test", EMV_SPF_PASS, NULL }, /* mapped = IPv4 */
	{ "2001:db8:ffff::1", "ip6.test", EMV_SPF_PASS, NULL },
	{ "2001:db9::1", "ip6.test", EMV_SPF_SOFTFAIL, NULL },
	{ "192.0.2.1", "ip6.test", EMV_SPF_SOFTFAIL, NULL }, /* ip6 never matches v4 */
	/* a, with domain and dual CIDR */
	{ "192.0.2.10", "a.test", EMV_SPF_PASS, NULL },
	{ "192.0.2.11", "a.test", EMV_SPF_FAIL, NULL },
	{ "2001:db8::a", "a.test", EMV_SPF_PASS, NULL },
	{ "203.0.113.200", "acidr.test", EMV_SPF_PASS, NULL },
	{ "203.0.114.5", "acidr.test", EMV_SPF_FAIL, NULL },
	{ "2001:db8:1::ffff", "acidr.test", EMV_SPF_PASS, NULL },
	{ "2001:db8:1:1::1", "acidr.test", EMV_SPF_FAIL, NULL },
	/* mx, with domain and CIDR; null MX skipped; v6 client vs A-only MX */
	{ "192.0.2.21", "mx.test", EMV_SPF_PASS, NULL },
	{ "192.0.2.22", "mx.test", EMV_SPF_FAIL, NULL },
	{ "192.0.2.23", "mxdom.test", EMV_SPF_PASS, NULL },
	{ "192.0.2.24", "mxdom.test", EMV_SPF_FAIL, NULL },
	{ "192.0.2.1", "nullmx.test", EMV_SPF_PASS, NULL },
	{ "2001:db8::1", "ip6mix.test", EMV_SPF_FAIL, NULL },
	{ "192.0.2.1", "mx11.test", EMV_SPF_PERMERROR, "more than 10" },
	/* include / redirect */
	{ "192.0.2.5", "inc.test", EMV_SPF_PASS, NULL },
	{ "203.0.113.1", "inc.test", EMV_SPF_NEUTRAL, NULL },
	{ "192.0.2.5", "incfail.test", EMV_SPF_FAIL, NULL },
	{ "192.0.2.5", "incnone.test", EMV_SPF_PERMERROR, "nothing.test has no SPF record" },
	{ "192.0.2.5", "redir.test", EMV_SPF_PASS, NULL },
	{ "203.0.113.1", "redir.test", EMV_SPF_FAIL, NULL },
	{ "192.0.2.5", "redirnone.test", EMV_SPF_PERMERROR, "no SPF record there" },
	{ "203.0.113.9", "redirlast.test", EMV_SPF_PASS, "ip4:203.0.113.9" },
	{ "192.0.2.77", "deep1.test", EMV_SPF_PASS, NULL },
	/* qualifiers, no match */
	{ "192.0.2.1", "plus.test", EMV_SPF_PASS, NULL },
	{ "192.0.2.1", "tilde.test", EMV_SPF_SOFTFAIL, NULL },
	{ "192.0.2.1", "quest.test", EMV_SPF_NEUTRAL, NULL },
	{ "192.0.2.1", "neutral.test", EMV_SPF_NEUTRAL, "nothing matched" },
	{ "192.0.2.1", "case.test", EMV_SPF_PASS, NULL },
	{ "192.0.2.1", "unknownmod.test", EMV_SPF_PASS, NULL },
	{ "192.0.2.1", "ptr.test", EMV_SPF_FAIL, NULL },
	/* no record */
	{ "192.0.2.1", "nospf.test", EMV_SPF_NONE, NULL },
	{ "192.0.2.1", "spf10.test", EMV_SPF_NONE, NULL },
	{ "192.0.2.1", "missing.test", EMV_SPF_NONE, NULL },
	{ "192.0.2.1", "not a domain", EMV_SPF_NONE, "not a valid domain" },
	{ "192.0.2.1", "multi.test", EMV_SPF_PERMERROR, "2 SPF records" },
	/* limits */
	{ "192.0.2.1", "loop.test", EMV_SPF_PERMERROR, "more than 10 DNS lookups" },
	{ "192.0.2.1", "many.test", EMV_SPF_PERMERROR, "more than 10 DNS lookups (at 'a:h11.many.test')" },
	{ "192.0.2.1", "ten.test", EMV_SPF_PASS, NULL }, /* exactly 10 is fine */
	{ "192.0.2.1", "void.test", EMV_SPF_PERMERROR, "more than 2 void DNS lookups" },
	{ "192.0.2.1", "void2.test", EMV_SPF_FAIL, NULL }, /* exactly 2 is fine */
	/* exists and macros */
	{ "192.0.2.55", "exists.test", EMV_SPF_PASS, NULL },
	{ "192.0.2.56", "exists.test", EMV_SPF_FAIL, NULL },
	{ "192.0.2.55", "macro.test", EMV_SPF_PASS, NULL },
	{ "192.0.2.56", "macro.test", EMV_SPF_FAIL, NULL },
	{ "192.0.2.1", "macro2.test", EMV_SPF_PASS, NULL }, /* sender probe-x@macro2.test */
	{ "192.0.2.1", "macrobad.test", EMV_SPF_PERMERROR, "unknown macro letter" },
	/* DNS trouble */
	{ "192.0.2.1", "temp.test", EMV_SPF_TEMPERROR, NULL },
	{ "192.0.2.1", "tempa.test", EMV_SPF_TEMPERROR, "broken.test" },
	/* syntax errors anywhere in the record */
	{ "192.0.2.1", "badcidr.test", EMV_SPF_PERMERROR, "bad CIDR length" },
	{ "192.0.2.1", "badmech.test", EMV_SPF_PERMERROR, "unknown mechanism in 'foo'" },
	{ "192.0.2.1", "badip.test", EMV_SPF_PERMERROR, "bad IPv4 address" },
	{ "192.0.2.1", "tworedir.test", EMV_SPF_PERMERROR, "given twice" },
	{ "192.0.2.1", "latesyntax.test", EMV_SPF_PERMERROR, "missing argument" },
	{ "192.0.2.1", "allarg.test", EMV_SPF_PERMERROR, NULL },
};

static void do_test_spf_table(void **state)
{
	int failed = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		emv_sockaddr ip;
		struct zctx z = { 0 };
		emv_spf_eval ev;
		const char *sender = strcmp(cases[i].domain, "macro2.test") == 0 ? "probe-x@macro2.test" : "p@x.test";
		emv_spf_query q = { .ip = &ip, .sender = sender, .domain = cases[i].domain };
		make_addr(cases[i].ip, &ip);
		emv_spf_result r = emv_spf_check(&q, zone_resolve, &z, &ev);
		if (r != cases[i].want || (cases[i].detail && !strstr(ev.detail, cases[i].detail))) {
			print_error("case %zu: %s for %s: got %s (%s), want %s%s%s\n", i, cases[i].domain, cases[i].ip,
				    emv_spf_result_name(r), ev.detail, emv_spf_result_name(cases[i].want),
				    cases[i].detail ? " with " : "", cases[i].detail ? cases[i].detail : "");
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* The lookup counter is exact and answers are asked once each. */
static void do_test_counts_and_queries(void **state)
{
	emv_sockaddr ip;
	struct zctx z = { 0 };
	emv_spf_eval ev;
	emv_spf_query q = { .ip = &ip, .sender = "p@x.test", .domain = "ten.test" };

	make_addr("192.0.2.1", &ip);
	assert_int_equal(emv_spf_check(&q, zone_resolve, &z, &ev), EMV_SPF_PASS);
	assert_int_equal(ev.lookups, 10);
	assert_int_equal(ev.voids, 0);
	assert_int_equal(z.queries, 11); /* one TXT + ten A, no repeats */
	q.domain = "void2.test";
	assert_int_equal(emv_spf_check(&q, zone_resolve, &z, &ev), EMV_SPF_FAIL);
	assert_int_equal(ev.voids, 2);
}

/* The step API the audit uses: one missing answer at a time. */
static void do_test_step_api(void **state)
{
	emv_sockaddr ip;
	emv_spf_eval ev;
	emv_spf_query q = { .ip = &ip, .sender = "p@x.test", .domain = "mx.test" };
	emv_spf_cache *c = emv_spf_cache_new();
	const char *mx[] = { "mx1.mx.test" }, *a[] = { "192.0.2.20" };

	make_addr("192.0.2.20", &ip);
	assert_int_equal(emv_spf_step(c, &q, &ev), 0);
	assert_int_equal(ev.need_type, EMV_SPF_Q_TXT);
	assert_string_equal(ev.need_name, "mx.test");
	emv_spf_cache_put(c, EMV_SPF_Q_TXT, "mx.test", EMV_SPF_ANS_OK, (const char *[]){ "v=spf1 mx -all" }, 1);
	assert_int_equal(emv_spf_step(c, &q, &ev), 0);
	assert_int_equal(ev.need_type, EMV_SPF_Q_MX);
	emv_spf_cache_put(c, EMV_SPF_Q_MX, "mx.test", EMV_SPF_ANS_OK, mx, 1);
	assert_int_equal(emv_spf_step(c, &q, &ev), 0);
	assert_int_equal(ev.need_type, EMV_SPF_Q_A);
	assert_string_equal(ev.need_name, "mx1.mx.test");
	emv_spf_cache_put(c, EMV_SPF_Q_A, "MX1.mx.test", EMV_SPF_ANS_OK, a, 1); /* names are case-blind */
	assert_int_equal(emv_spf_step(c, &q, &ev), 1);
	assert_int_equal(ev.result, EMV_SPF_PASS);
	/* a second put of the same name changes nothing */
	emv_spf_cache_put(c, EMV_SPF_Q_A, "mx1.mx.test", EMV_SPF_ANS_NXDOMAIN, NULL, 0);
	assert_int_equal(emv_spf_step(c, &q, &ev), 1);
	assert_int_equal(ev.result, EMV_SPF_PASS);
	emv_spf_cache_free(c);
}

/* Random records must not crash the parser (ASan checks the bounds). */
static emv_spf_ans random_resolve(void *ctx, emv_spf_qtype t, const char *name, char **items, int max, int *n)
{
	uint32_t *x = ctx;
	static const char alpha[] = "v=spf1 :/%{}.-+~?aimxpl4603ertsdhoinclude:exists:redirect=all1.2.3";
	char buf[96];
	*x = *x * 1103515245u + 12345u;
	*n = 0;
	if ((*x >> 16) % 5 == 0)
		return EMV_SPF_ANS_NXDOMAIN;
	memcpy(buf, "v=spf1 ", 7);
	for (int i = 7; i < (int)sizeof buf - 1; i++) {
		*x = *x * 1103515245u + 12345u;
		buf[i] = alpha[(*x >> 16) % (sizeof alpha - 1)];
	}
	buf[sizeof buf - 1] = '\0';
	items[(*n)++] = strdup(t == EMV_SPF_Q_TXT ? buf : t == EMV_SPF_Q_MX ? "mx.r.test" : "192.0.2.1");
	return EMV_SPF_ANS_OK;
}

static void do_test_random_records_never_crash(void **state)
{
	emv_sockaddr ip;
	emv_spf_eval ev;
	uint32_t x = 7;
	emv_spf_query q = { .ip = &ip, .sender = "p@r.test", .domain = "r.test", .helo = "h.r.test" };
	int seen[EMV_SPF_PERMERROR + 1] = { 0 };

	make_addr("2001:db8::1", &ip);
	for (int i = 0; i < 3000; i++) {
		emv_spf_result r = emv_spf_check(&q, random_resolve, &x, &ev);
		assert_true(r >= EMV_SPF_NONE && r <= EMV_SPF_PERMERROR);
		seen[r]++;
	}
	assert_true(seen[EMV_SPF_PERMERROR] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_spf_table),
		cmocka_unit_test(do_test_counts_and_queries),
		cmocka_unit_test(do_test_step_api),
		cmocka_unit_test(do_test_random_records_never_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
