/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_reaudit.c - the periodic pool audit's rules without a network
 * (emv_reaudit_apply on a real emv_rep) and the pool's audit_interval
 * setting.  The same module against real DNS, with a listing flipped while
 * it runs: tests/audit/test_reaudit_dns.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "emv_pool.h"
#include "emv_reaudit.h"

/* An audit result as emv_audit gives it: ok, or listed in one zone, or
 * only without answers (PTR and SPF lookups failed temporarily). */
enum kind { OK, LISTED, PTR_MISMATCH, NO_ANSWERS, LISTED_RUN };

static emv_audit_result result(int source, enum kind k)
{
	emv_audit_result r;

	memset(&r, 0, sizeof r);
	r.source = source;
	snprintf(r.ip, sizeof r.ip, "127.0.0.%d", 61 + source);
	snprintf(r.helo, sizeof r.helo, "mail-%d.audit.test", source);
	r.fcrdns = EMV_AUDIT_PASS;
	r.spf = EMV_SPF_PASS;
	r.ndnsbl = 1;
	strcpy(r.dnsbl[0].zone, "bl.audit.test");
	r.dnsbl[0].status = EMV_AUDIT_PASS;
	switch (k) {
	case OK: r.ok = 1; break;
	case LISTED:
	case LISTED_RUN:
		r.dnsbl[0].status = EMV_AUDIT_FAIL;
		strcpy(r.dnsbl[0].answer, "127.0.0.2");
		snprintf(r.problems, sizeof r.problems, "%s is listed in bl.audit.test (127.0.0.2)", r.ip);
		r.held = k == LISTED;
		break;
	case PTR_MISMATCH:
		r.fcrdns = EMV_AUDIT_FAIL;
		strcpy(r.problems, "PTR -> other.audit.test, but HELO is mail");
		r.held = 1;
		break;
	case NO_ANSWERS:
		r.fcrdns = EMV_AUDIT_UNKNOWN;
		r.spf = EMV_SPF_TEMPERROR;
		r.dnsbl[0].status = EMV_AUDIT_UNKNOWN;
		strcpy(r.problems, "PTR lookup failed temporarily; SPF temperror");
		r.held = 1;
		break;
	}
	return r;
}

/* Which of the pool's addresses emv_rep_pick hands out, as a bit set. */
static unsigned picked(emv_rep *rep, int nips)
{
	unsigned seen = 0;
	for (int k = 0; k < 4 * nips; k++) {
		int ip = emv_rep_pick(rep, "gmail", 1000, NULL);
		if (ip >= 0)
			seen |= 1u << ip;
	}
	return seen;
}

static emv_rep *new_rep(int n)
{
	emv_rep_params p;
	emv_rep_params_default(&p);
	return emv_rep_new(&p, n);
}

static void do_test_listed_is_held_then_released(void **state)
{
	emv_rep *rep = new_rep(2);
	emv_reaudit_stats st = { 0 };
	emv_audit_result res[2];

	(void)state;
	assert_int_equal(picked(rep, 2), 3u);
	/* .62 newly listed: held, no longer handed out; .61 untouched */
	res[0] = result(0, OK);
	res[1] = result(1, LISTED);
	assert_int_equal(emv_reaudit_apply(rep, res, 2, 1000, &st), 1);
	if (!emv_rep_is_held(rep, 1))
		fail_msg("a newly listed address was not held");
	assert_false(emv_rep_is_held(rep, 0));
	assert_int_equal(picked(rep, 2), 1u);
	assert_int_equal(st.held, 1);
	/* still listed: no second hold, nothing counted */
	assert_int_equal(emv_reaudit_apply(rep, res, 2, 2000, &st), 0);
	assert_int_equal(st.held, 1);
	/* the listing is gone: back in rotation */
	res[1] = result(1, OK);
	assert_int_equal(emv_reaudit_apply(rep, res, 2, 3000, &st), 1);
	if (emv_rep_is_held(rep, 1))
		fail_msg("an address that passed its re-audit stayed held");
	assert_int_equal(picked(rep, 2), 3u);
	assert_int_equal(st.released, 1);
	assert_int_equal(st.held, 1);
	/* an address held at start for its PTR comes back the same way */
	res[0] = result(0, PTR_MISMATCH);
	emv_reaudit_apply(rep, res, 1, 4000, &st);
	assert_true(emv_rep_is_held(rep, 0));
	res[0] = result(0, OK);
	emv_reaudit_apply(rep, res, 1, 5000, &st);
	assert_false(emv_rep_is_held(rep, 0));
	assert_int_equal(st.held, 2);
	assert_int_equal(st.released, 2);
	emv_rep_free(rep);
}

static void do_test_no_answers_change_nothing(void **state)
{
	emv_rep *rep = new_rep(2);
	emv_reaudit_stats st = { 0 };
	emv_audit_result res[2];

	(void)state;
	/* a resolver hiccup must not empty the pool ... */
	res[0] = result(0, NO_ANSWERS);
	res[1] = result(1, NO_ANSWERS);
	assert_int_equal(emv_reaudit_apply(rep, res, 2, 1000, &st), 0);
	if (emv_rep_is_held(rep, 0) || emv_rep_is_held(rep, 1))
		fail_msg("an address was held because the audit got no answers");
	assert_int_equal(st.inconclusive, 2);
	/* ... nor release a listed address */
	res[1] = result(1, LISTED);
	emv_reaudit_apply(rep, res, 2, 2000, &st);
	assert_true(emv_rep_is_held(rep, 1));
	res[1] = result(1, NO_ANSWERS);
	assert_int_equal(emv_reaudit_apply(rep, res, 2, 3000, &st), 0);
	if (!emv_rep_is_held(rep, 1))
		fail_msg("a held address was released by an audit without answers");
	emv_rep_free(rep);
}

static void do_test_audit_failures_run_never_holds(void **state)
{
	emv_rep *rep = new_rep(1);
	emv_reaudit_stats st = { 0 };
	emv_audit_result r = result(0, LISTED_RUN);

	(void)state;
	assert_int_equal(emv_reaudit_apply(rep, &r, 1, 1000, &st), 0);
	assert_false(emv_rep_is_held(rep, 0));
	assert_int_equal(st.held, 0);
	emv_rep_free(rep);
}

static void do_test_interval_setting(void **state)
{
	static const char base[] = "region = r\nmail_from = p@audit.test\nsource = 127.0.0.61 mail-a.audit.test\n";
	char text[512], err[256];
	emv_pool *p;

	(void)state;
	p = emv_pool_parse(base, strlen(base), "t.conf", err, sizeof err);
	assert_non_null(p);
	assert_int_equal(p->audit_interval_ms, 3600000u); /* default: 1 h */
	emv_pool_free(p);
	{
		static const struct {
			const char *v;
			uint64_t ms;
		} ok[] = {
			{ "90", 90000 }, { "10m", 600000 }, { "2s", 2000 }, { "1h", 3600000 }, { "0", 0 },
		};
		for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
			snprintf(text, sizeof text, "%saudit_interval = %s\n", base, ok[i].v);
			p = emv_pool_parse(text, strlen(text), "t.conf", err, sizeof err);
			if (!p)
				fail_msg("audit_interval = %s rejected: %s", ok[i].v, err);
			assert_int_equal(p->audit_interval_ms, ok[i].ms);
			emv_pool_free(p);
		}
	}
	snprintf(text, sizeof text, "%saudit_interval = soon\n", base);
	assert_null(emv_pool_parse(text, strlen(text), "t.conf", err, sizeof err));
	assert_non_null(strstr(err, "t.conf:4: audit_interval"));
	snprintf(text, sizeof text, "%saudit_interval = 1h\naudit_interval = 2h\n", base);
	assert_null(emv_pool_parse(text, strlen(text), "t.conf", err, sizeof err));
	assert_non_null(strstr(err, "given twice"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_listed_is_held_then_released),
		cmocka_unit_test(do_test_no_answers_change_nothing),
		cmocka_unit_test(do_test_audit_failures_run_never_holds),
		cmocka_unit_test(do_test_interval_setting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
