/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_reputation.h - reputation state of each (source IP, provider) of a
 * worker's pool (docs/design.md §3 "IP pool and reputation", docs/regions.md).  Pure logic:
 * no I/O, no clock of its own - every call takes `now`, monotonic
 * milliseconds (emv_now_ms() in production, anything in tests).
 *
 * States, per (IP, provider), with the outcomes that move them:
 *
 *   healthy ---rate limit---> throttled: allowed rate halves per rate-limit
 *      ^                        reply (down to 1/2^max_halvings); every quiet
 *      |                        period without one doubles it back; at full
 *      |                        rate the pair is healthy again
 *      |
 *      +--- re-probe answered normally <--- quarantined: a reply saying our
 *                                             IP is blocked/listed.  Not used
 *           cool-down = base * 2^(strikes-1), for this provider at all until
 *           capped (15 min, 30, 1 h ... 24 h)   the cool-down ends; then ONE
 *                                             re-probe session with few RCPTs
 *                                             is allowed (emv_rep_pick hands
 *                                             it out once); blocked again ->
 *                                             quarantined with strikes+1
 *   held: the IP failed its start-up self-audit (emv_audit); it is not used
 *         for any provider until emv_rep_release().  Set per IP.
 *
 * Strikes are forgotten after strike_forget_ms of staying unblocked, so an
 * IP blocked once a month does not creep towards the 24 h cap.
 *
 * What counts as "our IP is blocked": emv_rep_outcome_of() maps a classifier
 * verdict (lib/emv_classify.h, data/classify.rules) to an outcome - reason
 * blocked + about_us is a block (Spamhaus/Barracuda/SpamCop listings,
 * Microsoft S3150 / 5.7.606 / 5.7.511, Yahoo TSS/BL, Proofpoint, Gmail
 * unsolicited-rate, ...); rate_limited + about_us is a rate limit, except
 * the too_many_recipients rule (a batch-size signal, not reputation).
 *
 * IPs are the pool's source addresses by index (0..nips-1); providers are
 * names (emv_provider.name), added on first use.  Not thread-safe: one per
 * worker thread, or the caller locks.  Bad arguments (unknown index, NULL
 * name) are ignored / answered "no", never a crash.
 */
#ifndef EMV_REPUTATION_H
#define EMV_REPUTATION_H

#include <stddef.h>
#include <stdint.h>
#include "emv_classify.h"
#include "emv_dns.h" /* EMV_HOST_MAX */

typedef enum {
	EMV_REP_HEALTHY = 0,
	EMV_REP_THROTTLED,
	EMV_REP_QUARANTINED,
	EMV_REP_HELD,
} emv_rep_state;

/* What one session (or one reply) from an IP to a provider showed. */
typedef enum {
	EMV_REP_OK = 0,	      /* the server answered normally (accepted, user unknown, ...) */
	EMV_REP_NEUTRAL,      /* says nothing about our IP (greylisting, batch size, sender policy) */
	EMV_REP_RATE_LIMITED, /* a 4xx/421 telling us to slow down */
	EMV_REP_BLOCKED,      /* our IP is blocked or listed */
	EMV_REP_CONN_FAILED,  /* refused / timed out / reset before any reply */
} emv_rep_outcome;

/* Settings, with defaults from emv_rep_params_default(). */
typedef struct {
	uint64_t quiet_ms;	   /* throttled: this long without a rate limit doubles the rate (10 min) */
	int max_halvings;	   /* the rate never falls below 1/2^this (4 = 1/16) */
	uint64_t cooldown_base_ms; /* first quarantine (15 min) */
	uint64_t cooldown_max_ms;  /* cap (24 h) */
	int reprobe_rcpts;	   /* RCPTs allowed in the re-probe session (2) */
	uint64_t reprobe_lease_ms; /* a re-probe not reported by then may be handed out again (10 min) */
	uint64_t strike_forget_ms; /* unblocked this long: strikes reset to 0 (7 days) */
} emv_rep_params;

void emv_rep_params_default(emv_rep_params *p);

/* Permission to use an IP for a provider. */
typedef struct {
	int ip;		    /* pool index */
	double rate_factor; /* multiply the provider's rate budgets by this (1, 0.5, 0.25 ...) */
	int max_rcpts;	    /* 0 = the provider's policy; > 0 = a re-probe: at most this many */
	int reprobe;	    /* 1 = this is the one re-probe session of a quarantined IP */
} emv_rep_grant;

/* One row of the published state (proto IpState).  Times are in the
 * caller's clock (monotonic ms): add (unix_now - now) before publishing. */
#define EMV_REP_REPLY_MAX 256
/* A reputation key: a provider's name, or "mx:" and an MX host for servers
 * of no shared platform (longer names are cut). */
#define EMV_REP_KEY_MAX 128
/* a name as the engine builds it ("mx:" + a host name of up to EMV_HOST_MAX) */
#define EMV_REP_NAME_MAX (sizeof "mx:" + EMV_HOST_MAX)

/* The key (at most outlen - 1 bytes) under which the state of `name` is
 * kept: the name when it fits, else a prefix and a hash of the whole. */
void emv_rep_key(char *out, size_t outlen, const char *name);
typedef struct {
	int ip;
	char provider[EMV_REP_KEY_MAX]; /* "" for an IP-wide row (held) */
	emv_rep_state state;
	uint64_t until; /* quarantined: end of cool-down; throttled: next rate step; else 0 */
	uint32_t strikes;
	double rate_factor;
	char last_reply[EMV_REP_REPLY_MAX]; /* sanitised; the reply (or audit problem) that set the state */
	uint64_t updated;
	uint64_t since;		/* the current state began (0: never changed since the pair was seen) */
	uint64_t rcpts, blocks; /* RCPTs sent (emv_rep_count) and block replies seen */
	uint64_t sessions;	/* SMTP sessions (emv_rep_count) */
} emv_rep_row;

typedef struct emv_rep emv_rep;

emv_rep *emv_rep_new(const emv_rep_params *p, int nips);
void emv_rep_free(emv_rep *r);

/* Report what a session from `ip` to `provider` got; reply (may be NULL) is
 * the server's text, kept sanitised for operators. */
void emv_rep_feed(emv_rep *r, int ip, const char *provider, emv_rep_outcome o, const char *reply, uint64_t now);

/* May `ip` be used for `provider` now?  1 and *g filled, or 0.  A query
 * only: a due re-probe is reported (g->reprobe) but not reserved. */
int emv_rep_may_use(emv_rep *r, int ip, const char *provider, uint64_t now, emv_rep_grant *g);

/* Choose an IP for `provider`: a due re-probe first (one small session, and
 * it is reserved so no one else gets it), then healthy IPs, then throttled
 * ones (highest rate first), round-robin among equals; never quarantined or
 * held.  Returns the pool index (and fills *g) or -1. */
int emv_rep_pick(emv_rep *r, const char *provider, uint64_t now, emv_rep_grant *g);

/* 1 when no IP of the pool is healthy or throttled for `provider` (all
 * quarantined or held): time to send the batch to another region. */
int emv_rep_all_blocked(emv_rep *r, const char *provider, uint64_t now);

/* Count sessions opened and RCPTs sent from ip to provider (shown in snapshots). */
void emv_rep_count(emv_rep *r, int ip, const char *provider, unsigned sessions, unsigned rcpts, uint64_t now);

/* 1 when the IP is held (failed its self-audit). */
int emv_rep_is_held(const emv_rep *r, int ip);

/* A counter that moves on every state change, hold and release: publish
 * the snapshot again when it moved. */
uint64_t emv_rep_changes(const emv_rep *r);

/* The self-audit verdict: hold (why is shown to operators) or release. */
void emv_rep_hold(emv_rep *r, int ip, const char *why, uint64_t now);
void emv_rep_release(emv_rep *r, int ip, uint64_t now);

/* Fill up to max rows (one per known (IP, provider), plus one IP-wide row
 * per held IP); returns how many rows there are in all. */
size_t emv_rep_snapshot(emv_rep *r, uint64_t now, emv_rep_row *rows, size_t max);

/* Map a classified reply to an outcome (see the header comment). */
emv_rep_outcome emv_rep_outcome_of(const emv_verdict *v);
/* Fold the replies of one session into the one outcome to feed:
 * blocked > rate_limited > ok > neutral > conn_failed.  Feed once per
 * session (a 220 banner followed by a Spamhaus 554 at RCPT is a block). */
emv_rep_outcome emv_rep_outcome_worse(emv_rep_outcome a, emv_rep_outcome b);

const char *emv_rep_state_name(emv_rep_state s); /* "healthy" ... as in proto IpState.state */
const char *emv_rep_outcome_name(emv_rep_outcome o);

#endif
