/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_reaudit_dns.c - the periodic pool audit (worker/emv_reaudit.c) on a
 * real event loop against real DNS: unbound on 127.0.0.1:5400 (argv[1])
 * serving tests/audit/unbound.conf.in, whose control socket (argv[2]: its
 * unbound.conf for unbound-control -c) lets the test list and unlist
 * 127.0.0.61 in the DNSBL flip.audit.test while the audit runs.
 *
 * With audit_interval = 1s: listed -> the address is held (emv_rep_pick
 * no longer hands it out, the other one still is); unlisted -> back in
 * rotation; each within a few intervals.  Then freeing the reaudit while an
 * audit waits on a DNS server that never answers (a UDP socket of the test
 * that reads nothing) cancels it cleanly: no change afterwards, and ASan
 * watches the query timeouts and cancellations that come after.
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
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include "emv_reaudit.h"
#include "emv_util.h"

static const char *dns_server = "127.0.0.1:5400";
static const char *unbound_conf;

#define LISTING "61.0.0.127.flip.audit.test."

static const char pool_text[] = "region = audit\n"
				"mail_from = probe@audit.test\n"
				"source = 127.0.0.61 mail-a.audit.test\n"
				"source = 127.0.0.66 out.audit.test\n"
				"dnsbl = flip.audit.test\n"
				"audit_interval = 1s\n";

struct t {
	struct event_base *base;
	emv_dns *dns;
	emv_pool *pool;
	emv_rep *rep;
	emv_reaudit *ra;
	struct event *poll;
	int (*until)(struct t *);
};

static void control(const char *args)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "PATH=$PATH:/usr/sbin:/sbin unbound-control -c '%s' %s >/dev/null", unbound_conf,
		 args);
	if (system(cmd) != 0)
		fail_msg("unbound-control %s failed (control socket of the audit DNS up?)", args);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct t *t = arg;
	(void)fd;
	(void)what;
	if (t->until(t))
		event_base_loopbreak(t->base);
}

/* Run the loop until t->until() holds or limit_ms passes; the time taken
 * (ms), or -1 at the limit. */
static long run_until(struct t *t, int (*until)(struct t *), int limit_ms)
{
	struct timeval tick = { 0, 20000 }, limit = { limit_ms / 1000, (limit_ms % 1000) * 1000 };
	uint64_t t0 = emv_now_ms();

	t->until = until;
	t->poll = event_new(t->base, -1, EV_PERSIST, on_poll, t);
	event_add(t->poll, &tick);
	event_base_loopexit(t->base, &limit);
	event_base_dispatch(t->base);
	event_free(t->poll);
	t->poll = NULL;
	return until(t) ? (long)(emv_now_ms() - t0) : -1;
}

static int held(struct t *t)
{
	return emv_rep_is_held(t->rep, 0);
}
static int released(struct t *t)
{
	return !emv_rep_is_held(t->rep, 0);
}
static int audited_twice(struct t *t)
{
	emv_reaudit_stats st;
	emv_reaudit_stats_get(t->ra, &st);
	return st.audits >= 2;
}
static int running(struct t *t)
{
	return emv_reaudit_running(t->ra);
}
static int never(struct t *t)
{
	(void)t;
	return 0;
}

/* Which addresses emv_rep_pick hands out now, as a bit set. */
static unsigned picked(struct t *t)
{
	unsigned seen = 0;
	for (int k = 0; k < 8; k++) {
		int ip = emv_rep_pick(t->rep, "mx:mx.example.test", emv_now_ms(), NULL);
		if (ip >= 0)
			seen |= 1u << ip;
	}
	return seen;
}

static void setup(struct t *t, const char *text, const char *server)
{
	emv_dns_params p;
	emv_rep_params rp;
	char err[256];

	memset(t, 0, sizeof *t);
	t->base = event_base_new();
	emv_dns_params_default(&p);
	p.servers = server;
	p.timeout_ms = 1000;
	p.tries = 2;
	if (!(t->dns = emv_dns_new(t->base, &p, err, sizeof err)))
		fail_msg("emv_dns_new: %s", err);
	if (!(t->pool = emv_pool_parse(text, strlen(text), "test", err, sizeof err)))
		fail_msg("test pool: %s", err);
	emv_rep_params_default(&rp);
	t->rep = emv_rep_new(&rp, t->pool->nsources);
	t->ra = emv_reaudit_new(t->base, t->dns, t->pool, t->rep, t->pool->audit_interval_ms);
	assert_non_null(t->ra);
}

static void teardown(struct t *t)
{
	emv_reaudit_free(t->ra);
	emv_dns_free(t->dns);
	emv_rep_free(t->rep);
	emv_pool_free(t->pool);
	event_base_free(t->base);
}

static void do_test_listing_flips_hold(void **state)
{
	struct t t;
	emv_reaudit_stats st;
	long ms_held, ms_back;

	(void)state;
	control("local_data_remove " LISTING); /* a previous run that failed half-way */
	setup(&t, pool_text, dns_server);
	assert_int_equal(t.pool->audit_interval_ms, 1000);

	/* not listed: audits run, nothing changes */
	if (run_until(&t, audited_twice, 5000) < 0)
		fail_msg("no two re-audits within 5 s at audit_interval = 1s");
	assert_false(emv_rep_is_held(t.rep, 0));
	assert_int_equal(picked(&t), 3u);

	/* listed while running: held, the other address still used */
	control("local_data '" LISTING " 60 IN A 127.0.0.2'");
	ms_held = run_until(&t, held, 5000);
	control("local_data_remove " LISTING);
	if (ms_held < 0)
		fail_msg("127.0.0.61 was listed in flip.audit.test but not held within 5 s");
	if (picked(&t) != 2u)
		fail_msg("a held address was still handed out (picked set %#x)", picked(&t));

	/* unlisted: back in rotation */
	ms_back = run_until(&t, released, 5000);
	if (ms_back < 0)
		fail_msg("127.0.0.61 was unlisted but not back in rotation within 5 s");
	assert_int_equal(picked(&t), 3u);

	emv_reaudit_stats_get(t.ra, &st);
	assert_int_equal(st.held, 1);
	assert_int_equal(st.released, 1);
	assert_int_equal(st.inconclusive, 0);
	printf("audit_interval 1 s: held %ld ms after the listing appeared, back in rotation %ld ms after it went; "
	       "%llu audits\n",
	       ms_held, ms_back, (unsigned long long)st.audits);
	teardown(&t);
}

static void do_test_free_cancels_audit_in_flight(void **state)
{
	struct t t;
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	char server[64];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	(void)state;
	/* a DNS server that never answers: every audit query waits 2 x 1 s */
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(server, sizeof server, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	setup(&t, pool_text, server);
	if (run_until(&t, running, 3000) < 0)
		fail_msg("no re-audit started within 3 s");
	emv_rep_hold(t.rep, 1, "held by the test", emv_now_ms());
	emv_reaudit_free(t.ra); /* cancels: no callback, no change, whatever comes later */
	t.ra = NULL;
	run_until(&t, never, 2500);
	if (!emv_rep_is_held(t.rep, 1) || emv_rep_is_held(t.rep, 0))
		fail_msg("the pool changed after the reaudit was freed");
	teardown(&t);
	close(fd);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_listing_flips_hold),
		cmocka_unit_test(do_test_free_cancels_audit_in_flight),
	};
	if (argc < 3) {
		fprintf(stderr, "usage: test_reaudit_dns DNS_HOST:PORT UNBOUND_CONF\n");
		return 2;
	}
	dns_server = argv[1];
	unbound_conf = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
