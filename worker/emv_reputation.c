/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_reputation.c - the (source IP, provider) reputation state machine
 * (see emv_reputation.h for the states and what moves them).
 *
 * Time-driven steps (a throttled pair regaining rate, strikes being
 * forgotten) happen lazily: settle() brings an entry up to `now` before any
 * question is answered, so nothing needs a timer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_defaults.h"
#include "emv_reputation.h"
#include "emv_util.h"

#define PROVIDERS_MAX 1024 /* names beyond this share the last slot: bounded memory */

struct ent {
	emv_rep_state state;  /* healthy, throttled or quarantined (held is per IP) */
	int halvings;	      /* throttled: rate = 1/2^halvings */
	uint64_t step_at;     /* throttled: when the rate doubles next */
	uint64_t until;	      /* quarantined: end of the cool-down */
	uint64_t lease_until; /* quarantined: a re-probe is out until then */
	uint64_t last_block;  /* for forgetting strikes */
	uint32_t strikes;
	int fed; /* 1 once an outcome was reported: shown in snapshots */
	uint64_t updated;
	uint64_t since;			  /* the current state began */
	uint64_t rcpts, blocks, sessions; /* counters for operators */
	char last_reply[EMV_REP_REPLY_MAX];
};

struct ipent {
	int held;
	uint64_t held_at;
	char why[EMV_REP_REPLY_MAX];
	struct ent *ents; /* [cap_prov] */
};

struct prov {
	char name[EMV_REP_KEY_MAX];
	int rr; /* next pool index to start the round-robin scan at */
};

struct emv_rep {
	emv_rep_params p;
	int nips;
	struct ipent *ips;
	struct prov *provs;
	int nprov, cap_prov;
	int reuse;	  /* where the search for a quiet slot to reuse starts */
	uint64_t changes; /* state changes so far (emv_rep_changes) */
};

static const char *const state_names[] = { "healthy", "throttled", "quarantined", "held" };
static const char *const outcome_names[] = { "ok", "neutral", "rate_limited", "blocked", "conn_failed" };

const char *emv_rep_state_name(emv_rep_state s)
{
	return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "?";
}

const char *emv_rep_outcome_name(emv_rep_outcome o)
{
	return (unsigned)o < sizeof outcome_names / sizeof outcome_names[0] ? outcome_names[o] : "?";
}

void emv_rep_params_default(emv_rep_params *p)
{
	p->quiet_ms = EMV_DEF_REP_QUIET_MS;
	p->max_halvings = EMV_DEF_REP_MAX_HALVINGS;
	p->cooldown_base_ms = EMV_DEF_REP_COOLDOWN_BASE_MS;
	p->cooldown_max_ms = EMV_DEF_REP_COOLDOWN_MAX_MS;
	p->reprobe_rcpts = EMV_DEF_REP_REPROBE_RCPTS;
	p->reprobe_lease_ms = EMV_DEF_REP_REPROBE_LEASE_MS;
	p->strike_forget_ms = EMV_DEF_REP_STRIKE_FORGET_MS;
}

emv_rep *emv_rep_new(const emv_rep_params *p, int nips)
{
	emv_rep *r = emv_xcalloc(1, sizeof *r);

	if (p)
		r->p = *p;
	else
		emv_rep_params_default(&r->p);
	if (r->p.max_halvings < 1)
		r->p.max_halvings = 1;
	if (r->p.max_halvings > 30)
		r->p.max_halvings = 30;
	r->nips = nips > 0 ? nips : 0;
	r->ips = emv_xcalloc((size_t)r->nips + 1, sizeof *r->ips);
	return r;
}

void emv_rep_free(emv_rep *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nips; i++)
		free(r->ips[i].ents);
	free(r->ips);
	free(r->provs);
	free(r);
}

/* Index of a provider, added on first use. */
/* A slot all of whose entries say nothing worth keeping (healthy, no
 * strikes, never throttled now): its counters are lost with it. */
static int quiet(const emv_rep *r, int pi)
{
	for (int ip = 0; ip < r->nips; ip++) {
		const struct ent *e = &r->ips[ip].ents[pi];
		if (e->state != EMV_REP_HEALTHY || e->strikes || e->halvings)
			return 0;
	}
	return 1;
}

/* The key a provider's state is kept under: its name when it fits, else
 * the name's first bytes, '~' and a 64-bit FNV-1a hash of the whole name
 * in hex, so that two long MX host names sharing a prefix (mx:a...a1 and
 * mx:a...a2) never share one state. */
void emv_rep_key(char *out, size_t outlen, const char *name)
{
	size_t n = strlen(name), keep;
	uint64_t h = 1469598103934665603ull;
	if (n < outlen) {
		memcpy(out, name, n + 1);
		return;
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
	keep = outlen - 1 - 17; /* room for "~" and 16 hex digits */
	memcpy(out, name, keep);
	snprintf(out + keep, outlen - keep, "~%016llx", (unsigned long long)h);
}

static int prov_index(emv_rep *r, const char *name)
{
	char key[EMV_REP_KEY_MAX];

	emv_rep_key(key, sizeof key, name);
	for (int i = 0; i < r->nprov; i++)
		if (strcmp(r->provs[i].name, key) == 0)
			return i;
	if (r->nprov == PROVIDERS_MAX) {
		/* full: reuse a quiet slot (keys are MX hosts for small servers,
		 * there may be many); only when none is quiet do names share the
		 * last slot, which errs on the cautious side */
		for (int k = 0; k < PROVIDERS_MAX - 1; k++) {
			int i = (r->reuse + k) % (PROVIDERS_MAX - 1);
			if (!quiet(r, i))
				continue;
			r->reuse = (i + 1) % (PROVIDERS_MAX - 1);
			for (int ip = 0; ip < r->nips; ip++)
				memset(&r->ips[ip].ents[i], 0, sizeof r->ips[ip].ents[i]);
			memset(&r->provs[i], 0, sizeof r->provs[i]);
			memcpy(r->provs[i].name, key, sizeof key);
			return i;
		}
		return PROVIDERS_MAX - 1;
	}
	if (r->nprov == r->cap_prov) {
		int cap = r->cap_prov ? r->cap_prov * 2 : 8;
		r->provs = emv_xrealloc(r->provs, (size_t)cap * sizeof *r->provs);
		for (int i = 0; i < r->nips; i++) {
			r->ips[i].ents = emv_xrealloc(r->ips[i].ents, (size_t)cap * sizeof *r->ips[i].ents);
			memset(r->ips[i].ents + r->cap_prov, 0, (size_t)(cap - r->cap_prov) * sizeof *r->ips[i].ents);
		}
		r->cap_prov = cap;
	}
	memset(&r->provs[r->nprov], 0, sizeof r->provs[0]);
	memcpy(r->provs[r->nprov].name, key, sizeof key);
	return r->nprov++;
}

static uint64_t cooldown(const emv_rep_params *p, uint32_t strikes)
{
	uint64_t d = p->cooldown_base_ms;
	for (uint32_t i = 1; i < strikes && d < p->cooldown_max_ms; i++)
		d *= 2;
	return d < p->cooldown_max_ms ? d : p->cooldown_max_ms;
}

/* Apply what time alone changes: regained rate, forgotten strikes. */
static void settle(const emv_rep_params *p, struct ent *e, uint64_t now)
{
	while (e->state == EMV_REP_THROTTLED && now >= e->step_at) {
		e->updated = e->step_at;
		if (--e->halvings == 0) {
			e->state = EMV_REP_HEALTHY;
			e->since = e->step_at;
			e->step_at = 0;
		} else {
			e->step_at += p->quiet_ms;
		}
	}
	if (e->strikes && e->state != EMV_REP_QUARANTINED && now >= e->last_block &&
	    now - e->last_block >= p->strike_forget_ms)
		e->strikes = 0;
}

static struct ent *entry(emv_rep *r, int ip, const char *provider, uint64_t now)
{
	struct ent *e;
	int pi;

	if (!r || ip < 0 || ip >= r->nips || !provider)
		return NULL;
	pi = prov_index(r, provider); /* first: it may move the entry arrays */
	e = &r->ips[ip].ents[pi];
	settle(&r->p, e, now);
	return e;
}

static void set_reply(struct ent *e, const char *reply)
{
	if (reply)
		emv_sanitize(e->last_reply, sizeof e->last_reply, reply, strlen(reply));
}

static void throttle(const emv_rep_params *p, struct ent *e, uint64_t now)
{
	if (e->state != EMV_REP_THROTTLED)
		e->halvings = 0;
	e->state = EMV_REP_THROTTLED;
	if (e->halvings < p->max_halvings)
		e->halvings++;
	e->step_at = now + p->quiet_ms;
}

static void quarantine(const emv_rep_params *p, struct ent *e, uint64_t now)
{
	e->state = EMV_REP_QUARANTINED;
	e->strikes++;
	e->until = now + cooldown(p, e->strikes);
	e->lease_until = 0;
	e->halvings = 0;
	e->last_block = now;
}

/* A quarantined pair answers only through its re-probe: anything reported
 * before the cool-down ends comes from sessions begun before the block. */
static void feed_quarantined(const emv_rep_params *p, struct ent *e, emv_rep_outcome o, uint64_t now)
{
	if (now < e->until)
		return;
	switch (o) {
	case EMV_REP_OK:
	case EMV_REP_NEUTRAL: /* answered, and not "you are blocked" */
		e->state = EMV_REP_HEALTHY;
		e->lease_until = 0;
		break;
	case EMV_REP_RATE_LIMITED:
		e->state = EMV_REP_HEALTHY;
		throttle(p, e, now);
		break;
	case EMV_REP_BLOCKED: quarantine(p, e, now); break;
	case EMV_REP_CONN_FAILED: /* no answer either way: probe again later, no strike */
		e->until = now + p->cooldown_base_ms;
		e->lease_until = 0;
		break;
	}
}

void emv_rep_feed(emv_rep *r, int ip, const char *provider, emv_rep_outcome o, const char *reply, uint64_t now)
{
	struct ent *e = entry(r, ip, provider, now);
	emv_rep_state before;

	if (!e || r->ips[ip].held)
		return;
	before = e->state;
	if (e->state == EMV_REP_QUARANTINED)
		feed_quarantined(&r->p, e, o, now);
	else if (o == EMV_REP_RATE_LIMITED)
		throttle(&r->p, e, now);
	else if (o == EMV_REP_BLOCKED)
		quarantine(&r->p, e, now);
	if (o == EMV_REP_BLOCKED)
		e->blocks++;
	if (e->state != before)
		e->since = now;
	if (e->state != before || o == EMV_REP_BLOCKED)
		r->changes++;
	e->fed = 1;
	if (o == EMV_REP_RATE_LIMITED || o == EMV_REP_BLOCKED || e->state != before) {
		set_reply(e, reply);
		e->updated = now;
	}
}

static int grant_of(const emv_rep *r, const struct ent *e, int ip, uint64_t now, emv_rep_grant *g)
{
	emv_rep_grant x = { .ip = ip, .rate_factor = 1.0 };

	if (e->state == EMV_REP_QUARANTINED) {
		if (now < e->until || now < e->lease_until)
			return 0;
		x.reprobe = 1;
		x.max_rcpts = r->p.reprobe_rcpts;
		x.rate_factor = 1.0 / (double)(1u << r->p.max_halvings);
	} else if (e->state == EMV_REP_THROTTLED) {
		x.rate_factor = 1.0 / (double)(1u << e->halvings);
	}
	if (g)
		*g = x;
	return 1;
}

int emv_rep_may_use(emv_rep *r, int ip, const char *provider, uint64_t now, emv_rep_grant *g)
{
	struct ent *e = entry(r, ip, provider, now);

	if (!e || r->ips[ip].held)
		return 0;
	return grant_of(r, e, ip, now, g);
}

/* Lower is better: a due re-probe, healthy, then throttled by rate. */
static int rank(const struct ent *e, const emv_rep_grant *g)
{
	if (g->reprobe)
		return 0;
	return e->state == EMV_REP_HEALTHY ? 1 : 2 + e->halvings;
}

int emv_rep_pick(emv_rep *r, const char *provider, uint64_t now, emv_rep_grant *g)
{
	int best = -1, best_rank = 0, pi;
	emv_rep_grant best_g = { 0 };

	if (!r || !provider || r->nips == 0)
		return -1;
	pi = prov_index(r, provider);
	for (int k = 0; k < r->nips; k++) {
		int ip = (r->provs[pi].rr + k) % r->nips;
		struct ent *e = &r->ips[ip].ents[pi];
		emv_rep_grant x;
		settle(&r->p, e, now);
		if (r->ips[ip].held || !grant_of(r, e, ip, now, &x))
			continue;
		if (best < 0 || rank(e, &x) < best_rank) {
			best = ip;
			best_rank = rank(e, &x);
			best_g = x;
		}
	}
	if (best < 0)
		return -1;
	r->provs[pi].rr = (best + 1) % r->nips;
	if (best_g.reprobe)
		r->ips[best].ents[pi].lease_until = now + r->p.reprobe_lease_ms;
	if (g)
		*g = best_g;
	return best;
}

int emv_rep_all_blocked(emv_rep *r, const char *provider, uint64_t now)
{
	for (int ip = 0; r && ip < r->nips; ip++) {
		struct ent *e = entry(r, ip, provider, now);
		if (e && !r->ips[ip].held && e->state != EMV_REP_QUARANTINED)
			return 0;
	}
	return 1;
}

void emv_rep_count(emv_rep *r, int ip, const char *provider, unsigned sessions, unsigned rcpts, uint64_t now)
{
	struct ent *e = entry(r, ip, provider, now);

	if (!e)
		return;
	if (!e->fed && !e->since)
		e->since = now;
	e->fed = 1;
	e->rcpts += rcpts;
	e->sessions += sessions;
}

int emv_rep_is_held(const emv_rep *r, int ip)
{
	return r && ip >= 0 && ip < r->nips && r->ips[ip].held;
}

uint64_t emv_rep_changes(const emv_rep *r)
{
	return r ? r->changes : 0;
}

void emv_rep_hold(emv_rep *r, int ip, const char *why, uint64_t now)
{
	if (!r || ip < 0 || ip >= r->nips)
		return;
	r->ips[ip].held = 1;
	r->ips[ip].held_at = now;
	r->changes++;
	why = why ? why : "";
	emv_sanitize(r->ips[ip].why, sizeof r->ips[ip].why, why, strlen(why));
}

void emv_rep_release(emv_rep *r, int ip, uint64_t now)
{
	if (!r || ip < 0 || ip >= r->nips || !r->ips[ip].held)
		return;
	r->ips[ip].held = 0;
	r->ips[ip].held_at = now;
	r->changes++;
	r->ips[ip].why[0] = '\0';
}

static void put_row(emv_rep_row *rows, size_t max, size_t n, const emv_rep_row *row)
{
	if (n < max)
		rows[n] = *row;
}

size_t emv_rep_snapshot(emv_rep *r, uint64_t now, emv_rep_row *rows, size_t max)
{
	size_t n = 0;

	for (int ip = 0; r && ip < r->nips; ip++) {
		if (r->ips[ip].held) {
			emv_rep_row row = { .ip = ip,
					    .state = EMV_REP_HELD,
					    .updated = r->ips[ip].held_at,
					    .since = r->ips[ip].held_at };
			memcpy(row.last_reply, r->ips[ip].why, sizeof row.last_reply);
			put_row(rows, max, n++, &row);
		}
		for (int pi = 0; pi < r->nprov; pi++) {
			struct ent *e = &r->ips[ip].ents[pi];
			emv_rep_row row = { .ip = ip,
					    .state = e->state,
					    .strikes = e->strikes,
					    .updated = e->updated,
					    .rate_factor = 1.0 };
			if (!e->fed)
				continue;
			settle(&r->p, e, now);
			row.state = e->state;
			row.strikes = e->strikes;
			row.updated = e->updated;
			row.since = e->since;
			row.rcpts = e->rcpts;
			row.blocks = e->blocks;
			row.sessions = e->sessions;
			row.until = e->state == EMV_REP_QUARANTINED ? e->until
				    : e->state == EMV_REP_THROTTLED ? e->step_at
								    : 0;
			if (e->state == EMV_REP_THROTTLED)
				row.rate_factor = 1.0 / (double)(1u << e->halvings);
			else if (e->state == EMV_REP_QUARANTINED)
				row.rate_factor = 0;
			memcpy(row.provider, r->provs[pi].name, sizeof row.provider);
			memcpy(row.last_reply, e->last_reply, sizeof row.last_reply);
			put_row(rows, max, n++, &row);
		}
	}
	return n;
}

emv_rep_outcome emv_rep_outcome_of(const emv_verdict *v)
{
	if (!v)
		return EMV_REP_NEUTRAL;
	if (v->reason == EMV_REASON_BLOCKED && v->about_us)
		return EMV_REP_BLOCKED;
	if (v->reason == EMV_REASON_RATE_LIMITED && v->about_us)
		return v->rule_id && strcmp(v->rule_id, "too_many_recipients") == 0 ? EMV_REP_NEUTRAL
										    : EMV_REP_RATE_LIMITED;
	if (v->reason == EMV_REASON_CONNECTION_FAILED)
		return EMV_REP_CONN_FAILED;
	if (v->status == EMV_STATUS_DELIVERABLE || v->status == EMV_STATUS_UNDELIVERABLE ||
	    v->status == EMV_STATUS_RISKY)
		return EMV_REP_OK;
	return EMV_REP_NEUTRAL;
}

emv_rep_outcome emv_rep_outcome_worse(emv_rep_outcome a, emv_rep_outcome b)
{
	/* what a session says about our IP, most telling first */
	static const int weight[] = { [EMV_REP_BLOCKED] = 4,
				      [EMV_REP_RATE_LIMITED] = 3,
				      [EMV_REP_OK] = 2,
				      [EMV_REP_NEUTRAL] = 1,
				      [EMV_REP_CONN_FAILED] = 0 };
	if ((unsigned)a > EMV_REP_CONN_FAILED)
		return b;
	if ((unsigned)b > EMV_REP_CONN_FAILED)
		return a;
	return weight[a] >= weight[b] ? a : b;
}
