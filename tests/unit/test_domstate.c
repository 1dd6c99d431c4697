/* SPDX-License-Identifier: Apache-2.0 */
/* test_domstate.c - the merge rules of shared domain knowledge (lib/emv_domstate.h)
 * and its wire message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "emv_defaults.h"
#include "emv_domstate.h"
#include "emv_wire.h"

#define NOW INT64_C(1800000000000) /* a wall-clock time, unix ms */
#define H "mx.example.test"

static char why[256];

static emv_wire_domstate host(int rcpt, int64_t rcpt_at, int errs, int64_t errs_at)
{
	emv_wire_domstate x;
	memset(&x, 0, sizeof x);
	x.kind = EMV_WIRE_DS_HOST;
	snprintf(x.name, sizeof x.name, "%s", H);
	snprintf(x.worker, sizeof x.worker, "other");
	x.updated_ms = NOW;
	x.rcpt_per_txn = rcpt;
	x.rcpt_per_txn_at = rcpt_at;
	x.errors_per_session = errs;
	x.errors_per_session_at = errs_at;
	return x;
}

static emv_domstate_view view(const emv_domstate *s, int kind, const char *name, int64_t now)
{
	emv_domstate_view v;
	emv_domstate_get(s, kind, name, now, &v);
	return v;
}

static void merge_ok(emv_domstate *s, const emv_wire_domstate *x, int64_t now, int want_changed)
{
	int changed = -1;
	if (emv_domstate_merge(s, x, now, &changed, why, sizeof why) != EMV_OK)
		fail_msg("merge refused: %s", why);
	if (changed != want_changed)
		fail_msg("merge changed = %d, want %d", changed, want_changed);
}

/* A worker's own fresh observation wins over an older shared one; a newer
 * shared one wins over an older own one; a tie keeps what is held. */
static void do_test_newer_observation_wins(void **state)
{
	emv_domstate *s = emv_domstate_new(NULL);
	emv_wire_domstate old = host(1, NOW - 60000, 0, 0), newer = host(3, NOW - 1000, 0, 0);

	emv_domstate_observe(s, H, EMV_DS_RCPT_PER_TXN, 2, NOW - 10000); /* own, 10 s ago */
	merge_ok(s, &old, NOW, 0);					 /* shared, a minute ago: loses */
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW).rcpt_per_txn, 2);
	merge_ok(s, &newer, NOW, 1); /* shared, a second ago: wins */
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW).rcpt_per_txn, 3);
	emv_domstate_observe(s, H, EMV_DS_RCPT_PER_TXN, 1, NOW); /* own, now: wins again */
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW).rcpt_per_txn, 1);
	{ /* same time, another value: what is held stays (our echo changes nothing) */
		emv_wire_domstate tie = host(5, NOW, 0, 0);
		merge_ok(s, &tie, NOW, 0);
		assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW).rcpt_per_txn, 1);
	}
	/* value by value: an entry newer for one value only moves that one */
	{
		emv_wire_domstate mixed = host(9, NOW - 3600000, 4, NOW);
		merge_ok(s, &mixed, NOW, 1);
		assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW).rcpt_per_txn, 1);
		assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW).errors_per_session, 4);
	}
	emv_domstate_free(s);
}

/* Values age out by kind: limits after a day, sessions after an hour, a
 * catch-all answer after a day; an aged entry off the topic is not taken. */
static void do_test_ageing(void **state)
{
	emv_domstate *s = emv_domstate_new(NULL);
	emv_wire_domstate stale = host(1, NOW - EMV_DEF_DOMSTATE_LIMIT_AGE_MS - 1, 2, NOW - 1000);
	emv_domstate_view v;

	merge_ok(s, &stale, NOW, 1);
	v = view(s, EMV_WIRE_DS_HOST, H, NOW);
	assert_int_equal(v.rcpt_per_txn, 0); /* too old when it came */
	assert_int_equal(v.errors_per_session, 2);
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW + EMV_DEF_DOMSTATE_LIMIT_AGE_MS).errors_per_session, 0);

	emv_domstate_observe(s, H, EMV_DS_SESSIONS_OK, 3, NOW);
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW + EMV_DEF_DOMSTATE_SESSIONS_AGE_MS - 1).sessions_ok, 3);
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW + EMV_DEF_DOMSTATE_SESSIONS_AGE_MS).sessions_ok, 0);

	emv_domstate_observe(s, "example.test", EMV_DS_CATCH_ALL, 1, NOW);
	assert_int_equal(view(s, EMV_WIRE_DS_DOMAIN, "example.test", NOW).catch_all, 1);
	assert_int_equal(view(s, EMV_WIRE_DS_DOMAIN, "example.test", NOW + EMV_DEF_DOMSTATE_CATCH_ALL_AGE_MS).catch_all,
			 -1);
	/* once aged, an older shared value is no better than none, a new one is taken */
	{
		emv_wire_domstate d;
		int64_t later = NOW + EMV_DEF_DOMSTATE_CATCH_ALL_AGE_MS + 1000;
		memset(&d, 0, sizeof d);
		d.kind = EMV_WIRE_DS_DOMAIN;
		snprintf(d.name, sizeof d.name, "example.test");
		d.catch_all = 0;
		d.catch_all_at = later - 500;
		merge_ok(s, &d, later, 1);
		assert_int_equal(view(s, EMV_WIRE_DS_DOMAIN, "example.test", later).catch_all, 0);
	}
	emv_domstate_free(s);
}

static void refused(emv_domstate *s, const emv_wire_domstate *x, const char *want)
{
	why[0] = '\0';
	if (emv_domstate_merge(s, x, NOW, NULL, why, sizeof why) != EMV_ERR)
		fail_msg("merge took an entry it should refuse (%s)", want);
	if (!strstr(why, want) || !strstr(why, x->name))
		fail_msg("why = [%s], want [%s] and the name", why, want);
}

/* Absurd entries are refused whole, nothing of them kept; sound values above
 * the policy are only ever used down to the policy. */
static void do_test_hostile_values(void **state)
{
	emv_domstate *s = emv_domstate_new(NULL);
	emv_wire_domstate x;

	emv_domstate_observe(s, H, EMV_DS_RCPT_PER_TXN, 1, NOW - 5000);
	emv_domstate_observe(s, H, EMV_DS_ERRORS_PER_SESSION, 2, NOW - 5000);

	x = host(-5, NOW, 0, 0);
	refused(s, &x, "rcpt_per_txn -5 is not 1..");
	x = host(0, NOW, 0, 0);
	refused(s, &x, "rcpt_per_txn 0 is not 1..");
	x = host(1, NOW, 2000000000, NOW); /* huge, beside a sound value: all of it refused */
	refused(s, &x, "errors_per_session 2000000000 is not 1..");
	x = host(50, NOW + 86400000, 0, 0); /* from tomorrow: it would win every comparison */
	refused(s, &x, "in the future");
	x = host(0, 0, 0, 0);
	x.sessions_ok = -1;
	x.sessions_ok_at = NOW;
	refused(s, &x, "sessions_ok -1");
	x = host(0, 0, 0, 0);
	x.backoff_at = NOW;
	x.backoff_until_ms = NOW + 7 * 86400000LL; /* a week's back-off */
	x.backoff_ms = 5000;
	refused(s, &x, "back-off of");
	/* nothing of those was kept */
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW).rcpt_per_txn, 1);
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW).errors_per_session, 2);
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW).sessions_ok, 0);
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW).backoff_until_ms, 0);

	/* a sound but loose value (newer) is taken, and used only down to the policy */
	x = host(500, NOW, 0, 0);
	merge_ok(s, &x, NOW, 1);
	assert_int_equal(emv_domstate_limit(view(s, EMV_WIRE_DS_HOST, H, NOW).rcpt_per_txn, 20), 20);
	assert_int_equal(emv_domstate_limit(1, 20), 1);
	assert_int_equal(emv_domstate_limit(0, 8), 8);
	assert_int_equal(emv_domstate_window(10000, 2), 2);
	assert_int_equal(emv_domstate_window(0, 2), 1);
	assert_int_equal(emv_domstate_window(-3, 2), 1);
	/* own observations out of range change nothing */
	emv_domstate_observe(s, H, EMV_DS_ERRORS_PER_SESSION, -1, NOW + 1);
	emv_domstate_observe(s, H, EMV_DS_ERRORS_PER_SESSION, EMV_DOMSTATE_VALUE_MAX + 1, NOW + 1);
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW + 1).errors_per_session, 2);
	emv_domstate_free(s);
}

/* A full table takes no new names (a flood of unknown hosts), but still
 * updates the ones it has. */
static void do_test_bounded(void **state)
{
	emv_domstate_params p;
	emv_domstate *s;
	emv_wire_domstate x;

	emv_domstate_params_default(&p);
	p.max_entries = 2;
	s = emv_domstate_new(&p);
	x = host(3, NOW, 0, 0);
	snprintf(x.name, sizeof x.name, "a.test");
	merge_ok(s, &x, NOW, 1);
	snprintf(x.name, sizeof x.name, "b.test");
	merge_ok(s, &x, NOW, 1);
	snprintf(x.name, sizeof x.name, "c.test");
	refused(s, &x, "names held already");
	assert_int_equal(emv_domstate_count(s), 2);
	x = host(2, NOW + 1, 0, 0);
	snprintf(x.name, sizeof x.name, "a.test");
	merge_ok(s, &x, NOW + 1, 1);
	emv_domstate_free(s);
}

/* A back-off: the later end wins, whoever saw it; shared knowledge never
 * cuts one short, and none lasts past the maximum. */
static void do_test_backoff(void **state)
{
	emv_domstate *s = emv_domstate_new(NULL);
	emv_wire_domstate x = host(0, 0, 0, 0);
	emv_domstate_view v;

	emv_domstate_observe_backoff(s, H, NOW + 20000, 20000, NOW);
	x.backoff_at = NOW + 1000;
	x.backoff_until_ms = NOW + 5000; /* newer, but shorter */
	x.backoff_ms = 5000;
	merge_ok(s, &x, NOW + 1000, 0);
	v = view(s, EMV_WIRE_DS_HOST, H, NOW + 1000);
	assert_int_equal(v.backoff_until_ms, NOW + 20000);
	x.backoff_until_ms = NOW + 1000 + EMV_DEF_DOMSTATE_BACKOFF_MAX_MS; /* longer: taken */
	x.backoff_ms = 40000;
	merge_ok(s, &x, NOW + 1000, 1);
	v = view(s, EMV_WIRE_DS_HOST, H, NOW + 1000);
	assert_int_equal(v.backoff_until_ms, NOW + 1000 + EMV_DEF_DOMSTATE_BACKOFF_MAX_MS);
	assert_int_equal(v.backoff_ms, 40000);
	/* an own one far too long is cut to the maximum */
	emv_domstate_observe_backoff(s, "other.test", NOW + 86400000, 86400000, NOW);
	assert_true(view(s, EMV_WIRE_DS_HOST, "other.test", NOW).backoff_until_ms <=
		    NOW + EMV_DEF_DOMSTATE_BACKOFF_MAX_MS);
	/* over: gone */
	assert_int_equal(view(s, EMV_WIRE_DS_HOST, H, NOW + 2000 + EMV_DEF_DOMSTATE_BACKOFF_MAX_MS).backoff_until_ms,
			 0);
	emv_domstate_free(s);
}

/* Only own changes are published, each name at most once per interval;
 * shared entries and unchanged observations publish nothing. */
static void do_test_publish_on_change(void **state)
{
	emv_domstate *s = emv_domstate_new(NULL);
	emv_wire_domstate out[8], x = host(2, NOW - 1000, 0, 0);

	merge_ok(s, &x, NOW, 1);
	assert_int_equal(emv_domstate_take_changed(s, NOW, 5000, out, 8), 0);
	emv_domstate_observe(s, H, EMV_DS_RCPT_PER_TXN, 1, NOW);
	emv_domstate_observe(s, "example.test", EMV_DS_CATCH_ALL, 0, NOW);
	assert_int_equal(emv_domstate_take_changed(s, NOW, 5000, out, 8), 2);
	/* the host entry carries what it holds, the shared values included */
	for (int i = 0; i < 2; i++)
		if (out[i].kind == EMV_WIRE_DS_HOST) {
			assert_string_equal(out[i].name, H);
			assert_int_equal(out[i].rcpt_per_txn, 1);
			assert_true(out[i].rcpt_per_txn_at == NOW);
		}
	/* the same value again: nothing to say */
	emv_domstate_observe(s, H, EMV_DS_RCPT_PER_TXN, 1, NOW + 100);
	assert_int_equal(emv_domstate_take_changed(s, NOW + 100, 5000, out, 8), 0);
	/* a change within the interval waits for it (or for the final flush) */
	emv_domstate_observe(s, H, EMV_DS_ERRORS_PER_SESSION, 3, NOW + 200);
	assert_int_equal(emv_domstate_take_changed(s, NOW + 200, 5000, out, 8), 0);
	assert_int_equal(emv_domstate_take_changed(s, NOW + 5000, 5000, out, 8), 1);
	assert_int_equal(out[0].errors_per_session, 3);
	emv_domstate_observe(s, H, EMV_DS_ERRORS_PER_SESSION, 2, NOW + 5100);
	assert_int_equal(emv_domstate_take_changed(s, NOW + 5100, 0, out, 8), 1);
	emv_domstate_free(s);
}

static void do_test_wire(void **state)
{
	emv_wire_domstate x = host(1, NOW, 2, NOW), y;
	uint8_t *buf;
	size_t len;
	char key[300];

	x.backoff_until_ms = NOW + 5000;
	x.backoff_ms = 5000;
	x.backoff_at = NOW;
	x.accepts_all = 1;
	x.accepts_all_at = NOW;
	x.rcpt_per_txn = -7; /* structure only: values are judged by emv_domstate */
	assert_int_equal(emv_wire_domstate_encode(&x, &buf, &len, why, sizeof why), EMV_WIRE_OK);
	assert_int_equal(emv_wire_domstate_decode(buf, len, &y, why, sizeof why), EMV_WIRE_OK);
	free(buf);
	assert_memory_equal(&x, &y, sizeof x);
	emv_wire_domstate_key(&x, key, sizeof key);
	assert_string_equal(key, "host:" H);
	x.kind = EMV_WIRE_DS_DOMAIN;
	emv_wire_domstate_key(&x, key, sizeof key);
	assert_string_equal(key, "domain:" H);

	/* not a host name, no kind, a negative time: refused */
	snprintf(x.name, sizeof x.name, "Not a Host!");
	assert_int_equal(emv_wire_domstate_encode(&x, &buf, &len, why, sizeof why), EMV_WIRE_INVALID);
	assert_non_null(strstr(why, "name"));
	x = host(1, NOW, 0, 0);
	x.kind = 7;
	assert_int_equal(emv_wire_domstate_encode(&x, &buf, &len, why, sizeof why), EMV_WIRE_INVALID);
	x = host(1, -1, 0, 0);
	assert_int_equal(emv_wire_domstate_encode(&x, &buf, &len, why, sizeof why), EMV_WIRE_INVALID);
	{
		static const uint8_t junk[] = { 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 'x' };
		assert_int_not_equal(emv_wire_domstate_decode(junk, sizeof junk, &y, why, sizeof why), EMV_WIRE_OK);
		assert_int_not_equal(emv_wire_domstate_decode(NULL, 0, &y, why, sizeof why), EMV_WIRE_OK);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_newer_observation_wins),
		cmocka_unit_test(do_test_ageing),
		cmocka_unit_test(do_test_hostile_values),
		cmocka_unit_test(do_test_bounded),
		cmocka_unit_test(do_test_backoff),
		cmocka_unit_test(do_test_publish_on_change),
		cmocka_unit_test(do_test_wire),
	};
	return cmocka_run_group_tests_name("domstate", tests, NULL, NULL);
}
