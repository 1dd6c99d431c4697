/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_audit_dns.c - the start-up self-audit against real DNS: unbound on
 * 127.0.0.1:5400 (argv[1]) serving tests/audit/unbound.conf.in.  A good
 * address passes; a wrong PTR, an unconfirmed PTR, no PTR, an address
 * outside SPF and a DNSBL-listed address are held with the reason named;
 * a DNSBL that cannot be asked is a note, not a hold; the SPF lookup limit
 * gives permerror; cancelling mid-flight is safe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>
#include "emv_audit.h"

static const char *dns_server = "127.0.0.1:5400";

static const char pool_text[] = "region = test\n"
				"mail_from = probe@audit.test\n"
				"source = 127.0.0.61 mail-a.audit.test\n" /* 0 good (SPF via include -> redirect) */
				"source = 127.0.0.62 mail-a.audit.test\n" /* 1 PTR is mail-b */
				"source = 127.0.0.63 mail-c.audit.test\n" /* 2 listed in bl.audit.test */
				"source = 127.0.0.64 mail-d.audit.test\n" /* 3 not in SPF */
				"source = 127.0.0.65 mx.audit.test\n"  /* 4 good (SPF mx); the list refuses the query */
				"source = 127.0.0.66 out.audit.test\n" /* 5 good (SPF a:out) */
				"source = 127.0.0.67 mail-g.audit.test\n"    /* 6 PTR name without an address */
				"source = 127.0.0.68 mail-h.audit.test\n"    /* 7 no PTR */
				"source = 2001:db8::61 mail-v6.audit.test\n" /* 8 good, IPv6 */
				"dnsbl = bl.audit.test\n"
				"dnsbl = deadbl.test\n";

struct run {
	struct event_base *base; /* set: stop the loop when the audit is done */
	int calls, n;
	emv_audit_result res[16];
};

static void on_done(const emv_audit_result *res, int n, void *arg)
{
	struct run *r = arg;
	r->calls++;
	r->n = n;
	memcpy(r->res, res, (size_t)(n < 16 ? n : 16) * sizeof *res);
	if (r->base)
		event_base_loopbreak(r->base);
}

static emv_dns *new_dns(struct event_base *base)
{
	emv_dns_params p;
	char err[256];
	emv_dns *d;

	emv_dns_params_default(&p);
	p.servers = dns_server;
	p.timeout_ms = 1000;
	p.tries = 2;
	d = emv_dns_new(base, &p, err, sizeof err);
	if (!d)
		fail_msg("emv_dns_new: %s", err);
	return d;
}

static emv_pool *pool_of(const char *text)
{
	char err[256];
	emv_pool *p = emv_pool_parse(text, strlen(text), "test", err, sizeof err);
	if (!p)
		fail_msg("test pool: %s", err);
	return p;
}

/* Run an audit of `text` to the end (at most 20 s). */
static void run_audit(const char *text, struct run *r)
{
	struct event_base *base = event_base_new();
	emv_dns *d = new_dns(base);
	emv_pool *p = pool_of(text);
	struct timeval limit = { 20, 0 };
	emv_audit *a;

	memset(r, 0, sizeof *r);
	r->base = base;
	a = emv_audit_start(base, d, p, on_done, r);
	emv_pool_free(p);	       /* the audit keeps its own copy */
	assert_int_equal(r->calls, 0); /* never before start returns */
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	emv_audit_free(a);
	emv_dns_free(d);
	event_base_free(base);
	if (r->calls != 1)
		fail_msg("audit callback ran %d times (DNS server %s up?)", r->calls, dns_server);
}

static void expect(const emv_audit_result *r, int ok, const char *problem)
{
	if (r->ok != ok || (problem && !strstr(r->problems, problem)) || (!problem && r->problems[0]))
		fail_msg("%s (HELO %s): ok=%d problems '%s' notes '%s'; want ok=%d with '%s'", r->ip, r->helo, r->ok,
			 r->problems, r->notes, ok, problem ? problem : "");
	assert_int_equal(r->held, !ok); /* audit_failures defaults to hold */
}

static void do_test_pool_audit(void **state)
{
	struct run r;
	run_audit(pool_text, &r);
	assert_int_equal(r.n, 9);

	expect(&r.res[0], 1, NULL);
	assert_int_equal(r.res[0].fcrdns, EMV_AUDIT_PASS);
	assert_int_equal(r.res[0].spf, EMV_SPF_PASS);
	assert_string_equal(r.res[0].ptr, "mail-a.audit.test");
	assert_int_equal(r.res[0].dnsbl[0].status, EMV_AUDIT_PASS);

	expect(&r.res[1], 0, "PTR 127.0.0.62 -> mail-b.audit.test, but HELO is mail-a.audit.test");
	assert_int_equal(r.res[1].fcrdns, EMV_AUDIT_FAIL);
	assert_int_equal(r.res[1].spf, EMV_SPF_PASS); /* only the PTR is wrong */

	expect(&r.res[2], 0,
	       "127.0.0.63 is listed in bl.audit.test (127.0.0.2: Listed for testing: "
	       "https://bl.audit.test/q/127.0.0.63)");
	assert_int_equal(r.res[2].dnsbl[0].status, EMV_AUDIT_FAIL);
	assert_int_equal(r.res[2].fcrdns, EMV_AUDIT_PASS);

	expect(&r.res[3], 0, "SPF of audit.test for 127.0.0.64: fail (matched -all in audit.test)");
	assert_int_equal(r.res[3].fcrdns, EMV_AUDIT_PASS);

	/* the list answered 127.255.255.254 ("refused"): unknown, a note, not held */
	expect(&r.res[4], 1, NULL);
	assert_int_equal(r.res[4].dnsbl[0].status, EMV_AUDIT_UNKNOWN);
	assert_non_null(strstr(r.res[4].notes, "DNSBL bl.audit.test: no answer for 127.0.0.65 (127.255.255.254)"));

	expect(&r.res[5], 1, NULL);
	expect(&r.res[6], 0, "PTR 127.0.0.67 -> mail-g.audit.test, but mail-g.audit.test does not resolve back");
	expect(&r.res[7], 0, "127.0.0.68 has no PTR record");
	assert_int_equal(r.res[7].fcrdns, EMV_AUDIT_FAIL);
	expect(&r.res[8], 1, NULL);
	assert_string_equal(r.res[8].ptr, "mail-v6.audit.test");

	/* a DNSBL that cannot be asked (SERVFAIL): unknown for everyone, never listed */
	for (int i = 0; i < r.n; i++) {
		assert_int_equal(r.res[i].dnsbl[1].status, EMV_AUDIT_UNKNOWN);
		assert_non_null(strstr(r.res[i].notes, "DNSBL deadbl.test: no answer"));
	}
}

static void do_test_spf_lookup_limit(void **state)
{
	struct run r;
	run_audit("region=t\nmail_from=probe@loop.audit.test\nsource=127.0.0.61 mail-a.audit.test\n"
		  "audit_failures = run\n",
		  &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.res[0].spf, EMV_SPF_PERMERROR);
	assert_non_null(strstr(r.res[0].problems,
			       "SPF of loop.audit.test for 127.0.0.61: permerror (more than 10 DNS lookups"));
	assert_int_equal(r.res[0].ok, 0);
	assert_int_equal(r.res[0].held, 0); /* audit_failures = run */
	assert_int_equal(r.res[0].fcrdns, EMV_AUDIT_PASS);
}

/* A UDP socket nobody reads: queries to it stay in flight until they time
 * out, so cancelling "mid-flight" does not depend on timing. */
static int blackhole(char *server, size_t len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof sin;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) != 0)
		fail_msg("blackhole socket failed");
	snprintf(server, len, "127.0.0.1:%u", ntohs(sin.sin_port));
	return fd;
}

/* Free before the first query, with queries in flight, and after the DNS
 * channel is gone: no callback, no leak, no use after free (ASan). */
static void do_test_cancel(void **state)
{
	struct event_base *base = event_base_new();
	char server[64], err[256];
	int fd = blackhole(server, sizeof server);
	emv_dns_params dp;
	emv_dns *d;
	emv_pool *p = pool_of(pool_text);
	struct run r = { 0 };
	struct timeval short_wait = { 0, 50000 };
	emv_audit *a;

	emv_dns_params_default(&dp);
	dp.servers = server;
	dp.timeout_ms = 200;
	dp.tries = 1;
	assert_non_null(d = emv_dns_new(base, &dp, err, sizeof err));
	a = emv_audit_start(base, d, p, on_done, &r);
	emv_audit_free(a);
	event_base_dispatch(base); /* nothing left to do */

	a = emv_audit_start(base, d, p, on_done, &r);
	event_base_loopexit(base, &short_wait);
	event_base_dispatch(base);
	assert_true(emv_dns_pending(d) > 0);
	emv_audit_free(a);
	event_base_dispatch(base); /* the timeouts land on a freed audit */
	assert_int_equal(emv_dns_pending(d), 0);

	a = emv_audit_start(base, d, p, on_done, &r);
	event_base_loopexit(base, &short_wait);
	event_base_dispatch(base);
	assert_true(emv_dns_pending(d) > 0);
	emv_dns_free(d); /* answers come back "cancelled" */
	emv_audit_free(a);
	assert_int_equal(r.calls, 0);
	emv_pool_free(p);
	event_base_free(base);
	close(fd);
}

/* A DNS server that never answers: every check is unknown or failed, the
 * audit still ends (bounded by the query timeout), nothing is "listed". */
static void do_test_no_answers(void **state)
{
	struct event_base *base = event_base_new();
	char server[64], err[256];
	int fd = blackhole(server, sizeof server);
	emv_dns_params dp;
	emv_dns *d;
	emv_pool *p = pool_of(pool_text);
	struct run r = { 0 };
	emv_audit *a;

	emv_dns_params_default(&dp);
	dp.servers = server;
	dp.timeout_ms = 200;
	dp.tries = 1;
	assert_non_null(d = emv_dns_new(base, &dp, err, sizeof err));
	a = emv_audit_start(base, d, p, on_done, &r);
	event_base_dispatch(base);
	assert_int_equal(r.calls, 1);
	for (int i = 0; i < r.n; i++) {
		assert_int_equal(r.res[i].ok, 0);
		assert_int_equal(r.res[i].fcrdns, EMV_AUDIT_UNKNOWN);
		assert_int_equal(r.res[i].spf, EMV_SPF_TEMPERROR);
		assert_int_equal(r.res[i].dnsbl[0].status, EMV_AUDIT_UNKNOWN); /* a timeout is not a listing */
		assert_null(strstr(r.res[i].problems, "listed"));
		assert_non_null(strstr(r.res[i].problems, "failed temporarily"));
	}
	emv_audit_free(a);
	emv_dns_free(d);
	emv_pool_free(p);
	event_base_free(base);
	close(fd);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_pool_audit),
		cmocka_unit_test(do_test_spf_lookup_limit),
		cmocka_unit_test(do_test_cancel),
		cmocka_unit_test(do_test_no_answers),
	};
	if (argc > 1)
		dns_server = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
