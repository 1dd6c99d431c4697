/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_reputation.c - the (source IP, provider) reputation state machine:
 * every transition, the cool-down doubling and its cap, re-probe leases,
 * held IPs, the pick/rotation order, snapshots, and which real replies
 * count as "our IP is blocked" (through the real classifier and rules).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "emv_reputation.h"

#define T0 5000000000ull /* not 0: times near 0 would hide "unset" bugs */
#define MIN (60 * 1000ull)
#define HOUR (60 * MIN)

static emv_rep *new_rep(int nips)
{
	emv_rep_params p;
	emv_rep_params_default(&p);
	return emv_rep_new(&p, nips);
}

static double factor(emv_rep *r, int ip, const char *prov, uint64_t now)
{
	emv_rep_grant g;
	if (!emv_rep_may_use(r, ip, prov, now, &g))
		return 0;
	return g.rate_factor;
}

/* The state shown in a snapshot for (ip, provider). */
static emv_rep_row row_of(emv_rep *r, int ip, const char *prov, uint64_t now)
{
	emv_rep_row rows[64];
	size_t n = emv_rep_snapshot(r, now, rows, 64);
	for (size_t i = 0; i < n && i < 64; i++)
		if (rows[i].ip == ip && strcmp(rows[i].provider, prov) == 0)
			return rows[i];
	fail_msg("no snapshot row for ip %d provider '%s'", ip, prov);
	return rows[0];
}

/* What operators see: RCPTs and blocks per (IP, provider), when the state
 * began, and a change counter that tells the worker to publish again. */
static void do_test_counters_and_changes(void **state)
{
	emv_rep *r = new_rep(2);
	emv_rep_row row;
	uint64_t c0 = emv_rep_changes(r);

	emv_rep_count(r, 0, "google", 1, 40, T0);
	emv_rep_feed(r, 0, "google", EMV_REP_OK, NULL, T0);
	assert_int_equal(emv_rep_changes(r), c0); /* nothing changed state */
	row = row_of(r, 0, "google", T0);
	assert_int_equal(row.rcpts, 40);
	assert_int_equal(row.blocks, 0);
	assert_int_equal(row.state, EMV_REP_HEALTHY);
	emv_rep_count(r, 0, "google", 1, 2, T0 + MIN);
	emv_rep_feed(r, 0, "google", EMV_REP_BLOCKED, "554 5.7.1 blocked using zen.spamhaus.org", T0 + MIN);
	assert_true(emv_rep_changes(r) > c0);
	row = row_of(r, 0, "google", T0 + MIN);
	assert_int_equal(row.rcpts, 42);
	assert_int_equal(row.sessions, 2);
	assert_int_equal(row.blocks, 1);
	assert_int_equal(row.state, EMV_REP_QUARANTINED);
	assert_true(row.since == T0 + MIN);
	/* another provider's counters are its own */
	emv_rep_count(r, 0, "yahoo", 1, 7, T0 + MIN);
	assert_int_equal(row_of(r, 0, "yahoo", T0 + MIN).rcpts, 7);
	assert_int_equal(row_of(r, 0, "yahoo", T0 + MIN).blocks, 0);
	/* held: per IP, counted as a change */
	c0 = emv_rep_changes(r);
	assert_int_equal(emv_rep_is_held(r, 1), 0);
	emv_rep_hold(r, 1, "PTR mismatch", T0);
	assert_int_equal(emv_rep_is_held(r, 1), 1);
	assert_true(emv_rep_changes(r) > c0);
	emv_rep_release(r, 1, T0);
	assert_int_equal(emv_rep_is_held(r, 1), 0);
	assert_int_equal(emv_rep_is_held(r, 7), 0); /* out of range: no */
	emv_rep_count(r, 9, "google", 1, 1, T0);    /* ignored, no crash */
	emv_rep_free(r);
}

/* Small servers are keyed by MX host, so there may be thousands of keys:
 * past the table's size a quiet slot (healthy, no strikes) is reused, so a
 * late block still lands on its own key, and a key with a block is never
 * evicted. */
static void do_test_quiet_slots_are_reused(void **state)
{
	emv_rep *r = new_rep(2);
	char name[64];

	emv_rep_feed(r, 0, "mx:bad.example", EMV_REP_BLOCKED, "554 5.7.1 blocked", T0);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof name, "mx:h%d.example", i);
		emv_rep_count(r, 0, name, 1, 1, T0);
		emv_rep_feed(r, 0, name, EMV_REP_OK, NULL, T0);
	}
	emv_rep_feed(r, 0, "mx:h2999.example", EMV_REP_BLOCKED, "554 5.7.1 blocked", T0 + 1);
	assert_int_equal(emv_rep_may_use(r, 0, "mx:h2999.example", T0 + 2, NULL), 0);
	assert_int_equal(emv_rep_may_use(r, 0, "mx:h2998.example", T0 + 2, NULL), 1); /* not dragged along */
	assert_int_equal(emv_rep_may_use(r, 0, "mx:h5.example", T0 + 2, NULL), 1);
	assert_int_equal(emv_rep_may_use(r, 0, "mx:bad.example", T0 + 2, NULL), 0);   /* kept */
	assert_int_equal(emv_rep_may_use(r, 1, "mx:h2999.example", T0 + 2, NULL), 1); /* the other IP */
	emv_rep_free(r);
}

static void do_test_healthy_by_default(void **state)
{
	emv_rep *r = new_rep(2);
	emv_rep_grant g;
	assert_int_equal(emv_rep_may_use(r, 0, "google", T0, &g), 1);
	assert_true(g.rate_factor == 1.0);
	assert_int_equal(g.max_rcpts, 0);
	assert_int_equal(g.reprobe, 0);
	assert_int_equal(emv_rep_all_blocked(r, "google", T0), 0);
	/* nothing reported yet: nothing to publish */
	assert_int_equal(emv_rep_snapshot(r, T0, NULL, 0), 0);
	emv_rep_free(r);
}

static void do_test_throttle_halves_and_recovers_after_quiet(void **state)
{
	emv_rep *r = new_rep(1);
	uint64_t t = T0;

	emv_rep_feed(r, 0, "yahoo", EMV_REP_RATE_LIMITED, "421 4.7.0 [TSS01] slow down", t);
	assert_true(factor(r, 0, "yahoo", t) == 0.5);
	assert_int_equal(row_of(r, 0, "yahoo", t).state, EMV_REP_THROTTLED);
	emv_rep_feed(r, 0, "yahoo", EMV_REP_RATE_LIMITED, NULL, t += MIN);
	assert_true(factor(r, 0, "yahoo", t) == 0.25);
	/* a rate limit restarts the quiet period: 9 min later still 1/4 */
	assert_true(factor(r, 0, "yahoo", t + 10 * MIN - 1) == 0.25);
	assert_true(factor(r, 0, "yahoo", t + 10 * MIN) == 0.5);
	assert_int_equal(row_of(r, 0, "yahoo", t + 10 * MIN).state, EMV_REP_THROTTLED);
	assert_true(factor(r, 0, "yahoo", t + 20 * MIN) == 1.0);
	assert_int_equal(row_of(r, 0, "yahoo", t + 20 * MIN).state, EMV_REP_HEALTHY);
	/* the reply that throttled it is kept for operators */
	assert_string_equal(row_of(r, 0, "yahoo", t + 20 * MIN).last_reply, "421 4.7.0 [TSS01] slow down");
	emv_rep_free(r);
}

static void do_test_throttle_floor_and_long_gap(void **state)
{
	emv_rep *r = new_rep(1);
	for (int i = 0; i < 10; i++)
		emv_rep_feed(r, 0, "p", EMV_REP_RATE_LIMITED, NULL, T0 + (uint64_t)i);
	assert_true(factor(r, 0, "p", T0 + 10) == 1.0 / 16); /* max_halvings = 4 */
	/* after a long silence it is fully healthy, in one step */
	assert_true(factor(r, 0, "p", T0 + 30 * 24 * HOUR) == 1.0);
	/* ok/neutral/conn_failed outcomes do not throttle */
	emv_rep_feed(r, 0, "q", EMV_REP_OK, NULL, T0);
	emv_rep_feed(r, 0, "q", EMV_REP_NEUTRAL, NULL, T0);
	emv_rep_feed(r, 0, "q", EMV_REP_CONN_FAILED, NULL, T0);
	assert_true(factor(r, 0, "q", T0) == 1.0);
	emv_rep_free(r);
}

static void do_test_block_quarantines_then_reprobe_heals(void **state)
{
	emv_rep *r = new_rep(2);
	emv_rep_grant g;
	emv_rep_row row;

	emv_rep_feed(r, 0, "microsoft", EMV_REP_BLOCKED, "550 5.7.606 Access denied, banned sending IP\r\n[1]", T0);
	row = row_of(r, 0, "microsoft", T0);
	assert_int_equal(row.state, EMV_REP_QUARANTINED);
	assert_int_equal(row.strikes, 1);
	assert_true(row.until == T0 + 15 * MIN);
	assert_true(row.rate_factor == 0);
	assert_string_equal(row.last_reply, "550 5.7.606 Access denied, banned sending IP??[1]");
	/* not usable for that provider during the cool-down, usable for others */
	assert_int_equal(emv_rep_may_use(r, 0, "microsoft", T0 + 15 * MIN - 1, &g), 0);
	assert_int_equal(emv_rep_may_use(r, 0, "google", T0, &g), 1);
	assert_int_equal(emv_rep_pick(r, "microsoft", T0 + MIN, &g), 1);
	/* reports from sessions begun before the block change nothing */
	emv_rep_feed(r, 0, "microsoft", EMV_REP_BLOCKED, NULL, T0 + MIN);
	emv_rep_feed(r, 0, "microsoft", EMV_REP_OK, NULL, T0 + MIN);
	row = row_of(r, 0, "microsoft", T0 + MIN);
	assert_int_equal(row.state, EMV_REP_QUARANTINED);
	assert_int_equal(row.strikes, 1);
	/* cool-down over: one gentle re-probe */
	assert_int_equal(emv_rep_may_use(r, 0, "microsoft", T0 + 15 * MIN, &g), 1);
	assert_int_equal(g.reprobe, 1);
	assert_int_equal(g.max_rcpts, 2);
	assert_true(g.rate_factor < 1.0);
	emv_rep_feed(r, 0, "microsoft", EMV_REP_OK, "250 2.1.5 Recipient OK", T0 + 16 * MIN);
	row = row_of(r, 0, "microsoft", T0 + 16 * MIN);
	assert_int_equal(row.state, EMV_REP_HEALTHY);
	assert_int_equal(row.strikes, 1); /* remembered, so a relapse waits longer */
	assert_int_equal(emv_rep_may_use(r, 0, "microsoft", T0 + 16 * MIN, &g), 1);
	assert_int_equal(g.reprobe, 0);
	assert_true(g.rate_factor == 1.0);
	emv_rep_free(r);
}

static void do_test_cooldown_doubles_and_caps(void **state)
{
	/* 15 min x 2^(strikes-1): 15, 30, 60, 120, 240, 480, 960, then 24 h */
	static const uint64_t want_min[] = { 15, 30, 60, 120, 240, 480, 960, 1440, 1440, 1440 };
	emv_rep *r = new_rep(1);
	uint64_t t = T0;

	emv_rep_feed(r, 0, "p", EMV_REP_BLOCKED, NULL, t);
	for (size_t i = 0; i < sizeof want_min / sizeof want_min[0]; i++) {
		emv_rep_row row = row_of(r, 0, "p", t);
		assert_int_equal(row.strikes, i + 1);
		if (row.until - t != want_min[i] * MIN)
			fail_msg("strike %zu: cool-down %llu min, want %llu", i + 1,
				 (unsigned long long)((row.until - t) / MIN), (unsigned long long)want_min[i]);
		t = row.until;
		assert_int_equal(emv_rep_pick(r, "p", t, NULL), 0);	   /* the re-probe */
		emv_rep_feed(r, 0, "p", EMV_REP_BLOCKED, NULL, t += 1000); /* blocked again */
	}
	emv_rep_free(r);
}

static void do_test_reprobe_outcomes(void **state)
{
	emv_rep *r = new_rep(1);
	uint64_t due = T0 + 15 * MIN;

	/* no answer at all: try again one base cool-down later, no strike */
	emv_rep_feed(r, 0, "a", EMV_REP_BLOCKED, NULL, T0);
	emv_rep_feed(r, 0, "a", EMV_REP_CONN_FAILED, NULL, due);
	assert_int_equal(row_of(r, 0, "a", due).strikes, 1);
	assert_true(row_of(r, 0, "a", due).until == due + 15 * MIN);
	assert_int_equal(emv_rep_may_use(r, 0, "a", due + 1, NULL), 0);
	/* rate-limited re-probe: not blocked any more, but slow down */
	emv_rep_feed(r, 0, "b", EMV_REP_BLOCKED, NULL, T0);
	emv_rep_feed(r, 0, "b", EMV_REP_RATE_LIMITED, NULL, due);
	assert_int_equal(row_of(r, 0, "b", due).state, EMV_REP_THROTTLED);
	assert_true(factor(r, 0, "b", due) == 0.5);
	/* neutral (e.g. greylisted) re-probe: answered, not blocked */
	emv_rep_feed(r, 0, "c", EMV_REP_BLOCKED, NULL, T0);
	emv_rep_feed(r, 0, "c", EMV_REP_NEUTRAL, NULL, due);
	assert_int_equal(row_of(r, 0, "c", due).state, EMV_REP_HEALTHY);
	emv_rep_free(r);
}

static void do_test_reprobe_is_handed_out_once_per_lease(void **state)
{
	emv_rep *r = new_rep(1);
	uint64_t due = T0 + 15 * MIN;
	emv_rep_grant g;

	emv_rep_feed(r, 0, "p", EMV_REP_BLOCKED, NULL, T0);
	assert_int_equal(emv_rep_pick(r, "p", due, &g), 0);
	assert_int_equal(g.reprobe, 1);
	assert_int_equal(emv_rep_pick(r, "p", due + 1, &g), -1); /* reserved */
	assert_int_equal(emv_rep_may_use(r, 0, "p", due + 1, &g), 0);
	/* the re-probe never reported (session lost): handed out again */
	assert_int_equal(emv_rep_pick(r, "p", due + 10 * MIN, &g), 0);
	assert_int_equal(g.reprobe, 1);
	emv_rep_free(r);
}

static void do_test_strikes_are_forgotten(void **state)
{
	emv_rep *r = new_rep(1);
	uint64_t due = T0 + 15 * MIN;

	emv_rep_feed(r, 0, "p", EMV_REP_BLOCKED, NULL, T0);
	emv_rep_feed(r, 0, "p", EMV_REP_OK, NULL, due);
	assert_int_equal(row_of(r, 0, "p", T0 + 7 * 24 * HOUR - 1).strikes, 1);
	assert_int_equal(row_of(r, 0, "p", T0 + 7 * 24 * HOUR).strikes, 0);
	/* so the next block starts at the base cool-down again */
	emv_rep_feed(r, 0, "p", EMV_REP_BLOCKED, NULL, T0 + 8 * 24 * HOUR);
	assert_true(row_of(r, 0, "p", T0 + 8 * 24 * HOUR).until == T0 + 8 * 24 * HOUR + 15 * MIN);
	emv_rep_free(r);
}

static void do_test_held_ip(void **state)
{
	emv_rep *r = new_rep(2);
	emv_rep_row rows[8];
	size_t n;

	emv_rep_hold(r, 1, "PTR 127.0.0.61 -> mail-b.example.test, but HELO is mail-a.example.test", T0);
	assert_int_equal(emv_rep_may_use(r, 1, "google", T0, NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(emv_rep_pick(r, "google", T0, NULL), 0);
	/* outcomes for a held IP are ignored (late sessions) */
	emv_rep_feed(r, 1, "google", EMV_REP_BLOCKED, NULL, T0);
	n = emv_rep_snapshot(r, T0, rows, 8);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].ip, 1);
	assert_string_equal(rows[0].provider, "");
	assert_int_equal(rows[0].state, EMV_REP_HELD);
	assert_string_equal(rows[0].last_reply,
			    "PTR 127.0.0.61 -> mail-b.example.test, but HELO is mail-a.example.test");
	emv_rep_hold(r, 0, "SPF fail", T0);
	assert_int_equal(emv_rep_pick(r, "google", T0, NULL), -1);
	assert_int_equal(emv_rep_all_blocked(r, "google", T0), 1);
	emv_rep_release(r, 1, T0 + 1);
	assert_int_equal(emv_rep_pick(r, "google", T0 + 1, NULL), 1);
	assert_int_equal(emv_rep_all_blocked(r, "google", T0), 0);
	assert_int_equal(emv_rep_snapshot(r, T0, rows, 8), 1); /* only ip 0 is held now */
	emv_rep_free(r);
}

static void do_test_pick_order_and_rotation(void **state)
{
	emv_rep *r = new_rep(4);
	int seen[4] = { 0 };
	emv_rep_grant g;

	/* all healthy: strict rotation */
	for (int i = 0; i < 8; i++)
		seen[emv_rep_pick(r, "p", T0, NULL)]++;
	for (int i = 0; i < 4; i++)
		assert_int_equal(seen[i], 2);
	/* 0 throttled twice, 1 throttled once, 2 quarantined, 3 healthy */
	emv_rep_feed(r, 0, "p", EMV_REP_RATE_LIMITED, NULL, T0);
	emv_rep_feed(r, 0, "p", EMV_REP_RATE_LIMITED, NULL, T0);
	emv_rep_feed(r, 1, "p", EMV_REP_RATE_LIMITED, NULL, T0);
	emv_rep_feed(r, 2, "p", EMV_REP_BLOCKED, NULL, T0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(emv_rep_pick(r, "p", T0 + 1, &g), 3);
	assert_true(g.rate_factor == 1.0);
	emv_rep_feed(r, 3, "p", EMV_REP_BLOCKED, NULL, T0 + 1);
	/* no healthy one left: the least throttled */
	assert_int_equal(emv_rep_pick(r, "p", T0 + 2, &g), 1);
	assert_true(g.rate_factor == 0.5);
	assert_int_equal(emv_rep_all_blocked(r, "p", T0 + 2), 0);
	/* the other provider is unaffected and rotates over all four */
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < 4; i++)
		seen[emv_rep_pick(r, "other", T0 + 2, NULL)]++;
	for (int i = 0; i < 4; i++)
		assert_int_equal(seen[i], 1);
	/* a due re-probe goes first, once */
	assert_int_equal(emv_rep_pick(r, "p", T0 + 15 * MIN, &g), 2);
	assert_int_equal(g.reprobe, 1);
	assert_int_equal(emv_rep_pick(r, "p", T0 + 15 * MIN + 1, &g), 3); /* 3's re-probe */
	assert_int_equal(emv_rep_pick(r, "p", T0 + 15 * MIN + 2, &g), 1);
	emv_rep_free(r);
}

static void do_test_all_blocked(void **state)
{
	emv_rep *r = new_rep(2);
	emv_rep_feed(r, 0, "p", EMV_REP_BLOCKED, NULL, T0);
	assert_int_equal(emv_rep_all_blocked(r, "p", T0), 0);
	emv_rep_feed(r, 1, "p", EMV_REP_BLOCKED, NULL, T0);
	assert_int_equal(emv_rep_all_blocked(r, "p", T0), 1);
	assert_int_equal(emv_rep_pick(r, "p", T0 + 1, NULL), -1);
	/* re-probes due: still "all blocked" (reroute the batch) though one
	 * small re-probe may be picked */
	assert_int_equal(emv_rep_all_blocked(r, "p", T0 + 15 * MIN), 1);
	assert_int_equal(emv_rep_all_blocked(r, "q", T0), 0);
	emv_rep_free(r);
}

static void do_test_bad_arguments(void **state)
{
	emv_rep *r = new_rep(1);
	emv_rep_grant g;
	emv_rep *none = emv_rep_new(NULL, 0);

	emv_rep_feed(r, -1, "p", EMV_REP_BLOCKED, NULL, T0);
	emv_rep_feed(r, 1, "p", EMV_REP_BLOCKED, NULL, T0);
	emv_rep_feed(r, 0, NULL, EMV_REP_BLOCKED, NULL, T0);
	emv_rep_feed(NULL, 0, "p", EMV_REP_BLOCKED, NULL, T0);
	assert_int_equal(emv_rep_may_use(r, 5, "p", T0, &g), 0);
	assert_int_equal(emv_rep_may_use(r, 0, NULL, T0, &g), 0);
	assert_int_equal(emv_rep_pick(r, NULL, T0, &g), -1);
	assert_int_equal(emv_rep_pick(none, "p", T0, &g), -1);
	assert_int_equal(emv_rep_all_blocked(none, "p", T0), 1);
	emv_rep_hold(r, 7, "x", T0);
	emv_rep_release(r, -3, T0);
	assert_int_equal(emv_rep_snapshot(r, T0, NULL, 0), 0);
	/* many provider names: the table grows, memory stays bounded */
	for (int i = 0; i < 3000; i++) {
		char name[32];
		snprintf(name, sizeof name, "prov%d", i);
		emv_rep_feed(r, 0, name, EMV_REP_RATE_LIMITED, NULL, T0);
	}
	assert_int_equal(emv_rep_snapshot(r, T0, NULL, 0), 1024);
	assert_string_equal(emv_rep_state_name(EMV_REP_QUARANTINED), "quarantined");
	assert_string_equal(emv_rep_state_name((emv_rep_state)42), "?");
	emv_rep_free(r);
	emv_rep_free(none);
	emv_rep_free(NULL);
}

static void do_test_session_outcome_folding(void **state)
{
	assert_int_equal(emv_rep_outcome_worse(EMV_REP_OK, EMV_REP_BLOCKED), EMV_REP_BLOCKED);
	assert_int_equal(emv_rep_outcome_worse(EMV_REP_RATE_LIMITED, EMV_REP_OK), EMV_REP_RATE_LIMITED);
	assert_int_equal(emv_rep_outcome_worse(EMV_REP_NEUTRAL, EMV_REP_OK), EMV_REP_OK);
	assert_int_equal(emv_rep_outcome_worse(EMV_REP_CONN_FAILED, EMV_REP_NEUTRAL), EMV_REP_NEUTRAL);
	assert_int_equal(emv_rep_outcome_worse(EMV_REP_BLOCKED, EMV_REP_RATE_LIMITED), EMV_REP_BLOCKED);
	assert_int_equal(emv_rep_outcome_worse((emv_rep_outcome)99, EMV_REP_OK), EMV_REP_OK);
}

/* Real replies (tests/data/replies.tsv has their sources) through the real
 * rules: which ones quarantine, throttle, or say nothing about our IP. */
static const struct {
	int phase, code;
	const char *enh, *text;
	emv_rep_outcome want;
} replies[] = {
	{ EMV_PHASE_RCPT, 554, "5.7.1",
	  "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1",
	  EMV_REP_BLOCKED },
	{ EMV_PHASE_MAIL, 550, "5.7.1",
	  "5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.",
	  EMV_REP_BLOCKED },
	{ EMV_PHASE_RCPT, 550, "5.7.606",
	  "5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal from this list please visit https://sender.office.com/ and follow the directions.",
	  EMV_REP_BLOCKED },
	{ EMV_PHASE_BANNER, 421, "4.7.0",
	  "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
	  EMV_REP_BLOCKED },
	{ EMV_PHASE_RCPT, 550, "5.7.1",
	  "5.7.1 Service unavailable; client [192.0.2.1] blocked using prs.proofpoint.com", EMV_REP_BLOCKED },
	{ EMV_PHASE_RCPT, 554, "5.7.0",
	  "5.7.0 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=192.0.2.1", EMV_REP_BLOCKED },
	{ EMV_PHASE_RCPT, 554, "-",
	  "Service unavailable; Client host [mail.example.net] blocked using Barracuda Reputation; http://bbl.barracudacentral.com/q.cgi?ip=192.0.2.1",
	  EMV_REP_BLOCKED },
	{ EMV_PHASE_RCPT, 421, "4.7.28",
	  "4.7.28 [192.0.2.1      15] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. - gsmtp",
	  EMV_REP_BLOCKED },
	{ EMV_PHASE_BANNER, 421, "4.7.0",
	  "4.7.0 Too many concurrent SMTP connections from this IP address; please try again later.",
	  EMV_REP_RATE_LIMITED },
	{ EMV_PHASE_RCPT, 451, "4.7.1", "4.7.1 Received too many messages from a new or untrusted IP (G28)",
	  EMV_REP_RATE_LIMITED },
	{ EMV_PHASE_BANNER, 421, "4.7.0", "4.7.0 mx.example.com Error: too many connections from 192.0.2.1",
	  EMV_REP_RATE_LIMITED },
	{ EMV_PHASE_RCPT, 450, "4.2.1", "4.2.1 The recipient has exceeded message rate limit. Try again later.",
	  EMV_REP_NEUTRAL },
	{ EMV_PHASE_RCPT, 452, "4.5.3", "4.5.3 Too many recipients", EMV_REP_NEUTRAL },
	{ EMV_PHASE_RCPT, 450, "4.2.1",
	  "4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. - gsmtp",
	  EMV_REP_NEUTRAL },
	{ EMV_PHASE_RCPT, 451, "4.7.1",
	  "4.7.1 <user@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.com.html",
	  EMV_REP_NEUTRAL },
	{ EMV_PHASE_RCPT, 550, "5.1.1",
	  "5.1.1 <user@example.com>: Recipient address rejected: User unknown in virtual mailbox table", EMV_REP_OK },
	{ EMV_PHASE_RCPT, 250, "2.1.5", "2.1.5 Ok", EMV_REP_OK },
};

static void do_test_which_replies_block_our_ip(void **state)
{
	char err[256] = "";
	emv_classifier *c = emv_classifier_load_default(err, sizeof err);
	if (!c)
		fail_msg("rules did not load: %s", err);
	for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
		emv_verdict v;
		const char *enh = strcmp(replies[i].enh, "-") == 0 ? NULL : replies[i].enh;
		emv_classify(c, replies[i].phase, replies[i].code, enh, replies[i].text, &v);
		emv_rep_outcome o = emv_rep_outcome_of(&v);
		if (o != replies[i].want)
			fail_msg("reply %zu (%d %s...): outcome %s (rule %s), want %s", i, replies[i].code,
				 replies[i].enh, emv_rep_outcome_name(o), v.rule_id,
				 emv_rep_outcome_name(replies[i].want));
	}
	emv_classifier_free(c);
	assert_int_equal(emv_rep_outcome_of(NULL), EMV_REP_NEUTRAL);
}

/* Two MX hosts whose "mx:" names share their first 127 characters (and
 * more) are two providers: a block from one does not hold the other, and
 * each keeps its own row. */
static void do_test_long_names_do_not_share_a_key(void **state)
{
	char a[260], b[260], ka[EMV_REP_KEY_MAX], kb[EMV_REP_KEY_MAX];
	emv_rep *r = new_rep(1);
	emv_rep_grant g;
	memset(a, 'x', sizeof a);
	memcpy(a, "mx:", 3);
	a[200] = '\0';
	memcpy(b, a, sizeof b);
	a[199] = '1';
	b[199] = '2';
	emv_rep_key(ka, sizeof ka, a);
	emv_rep_key(kb, sizeof kb, b);
	assert_true(strlen(ka) < EMV_REP_KEY_MAX);
	assert_string_not_equal(ka, kb);
	assert_int_equal(strncmp(ka, a, 100), 0); /* still readable in the ip-state */
	emv_rep_key(ka, sizeof ka, "mx:mx1.example.com");
	assert_string_equal(ka, "mx:mx1.example.com"); /* a short name is its own key */

	emv_rep_feed(r, 0, a, EMV_REP_BLOCKED, "554 5.7.1 Service unavailable; Client host blocked", T0);
	assert_int_equal(emv_rep_may_use(r, 0, a, T0 + MIN, &g), 0);
	if (!emv_rep_may_use(r, 0, b, T0 + MIN, &g))
		fail_msg("a block by one long MX name held another that shares its first 199 characters");
	assert_true(g.rate_factor == 1.0);
	emv_rep_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_healthy_by_default),
		cmocka_unit_test(do_test_counters_and_changes),
		cmocka_unit_test(do_test_quiet_slots_are_reused),
		cmocka_unit_test(do_test_throttle_halves_and_recovers_after_quiet),
		cmocka_unit_test(do_test_throttle_floor_and_long_gap),
		cmocka_unit_test(do_test_block_quarantines_then_reprobe_heals),
		cmocka_unit_test(do_test_cooldown_doubles_and_caps),
		cmocka_unit_test(do_test_reprobe_outcomes),
		cmocka_unit_test(do_test_reprobe_is_handed_out_once_per_lease),
		cmocka_unit_test(do_test_strikes_are_forgotten),
		cmocka_unit_test(do_test_held_ip),
		cmocka_unit_test(do_test_pick_order_and_rotation),
		cmocka_unit_test(do_test_all_blocked),
		cmocka_unit_test(do_test_bad_arguments),
		cmocka_unit_test(do_test_session_outcome_folding),
		cmocka_unit_test(do_test_which_replies_block_our_ip),
		cmocka_unit_test(do_test_long_names_do_not_share_a_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
