/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_reaudit.h - the periodic self-audit of a pool's source addresses
 * (issue 18): the start-up audit (emv_audit.h) again every
 * pool->audit_interval_ms while an engine runs, so that a held address
 * whose listing is gone comes back into rotation and a newly listed one is
 * held.  Holding goes through emv_rep_hold(): emv_rep_pick() hands the
 * address to no new session; sessions already open on it finish.
 *
 * On the caller's libevent loop, through its emv_dns.  One audit at a time:
 * the next one is timed from the end of the last (each is bounded by the
 * emv_dns timeouts and tries), so audits never overlap.
 *
 * The verdict of one address (emv_reaudit_apply), against its current hold:
 *   - every check passed, held          -> released ("back in rotation")
 *   - a definite failure (no PTR, PTR/HELO mismatch, SPF fail/softfail/
 *     neutral/none/permerror, a DNSBL listing) with audit_failures = hold,
 *     not held                         -> held, with the problems as reason
 *   - failed only for want of answers (PTR or SPF lookups failed
 *     temporarily)                      -> unchanged ("inconclusive"): a
 *     resolver hiccup must neither empty the pool nor release a listed
 *     address
 *   - anything else                     -> unchanged
 * Every change is logged (component "audit", WARN) and counted.
 *
 * emv_reaudit_free() cancels an audit in flight (no callback, no change
 * afterwards) and may be called any time, e.g. when a worker starts
 * draining.  The pool and rep are borrowed: they must outlive the reaudit.
 */
#ifndef EMV_REAUDIT_H
#define EMV_REAUDIT_H

#include <stdint.h>
#include "emv_audit.h"
#include "emv_pool.h"
#include "emv_reputation.h"

typedef struct {
	uint64_t audits;       /* periodic audits completed */
	uint64_t held;	       /* addresses newly held by one */
	uint64_t released;     /* held addresses back in rotation */
	uint64_t inconclusive; /* verdicts ignored: the checks got no answer */
} emv_reaudit_stats;

typedef struct emv_reaudit emv_reaudit;

/* Audit pool every interval_ms (> 0; the first one interval_ms from now). */
emv_reaudit *emv_reaudit_new(struct event_base *base, emv_dns *dns, const emv_pool *pool, emv_rep *rep,
			     uint64_t interval_ms);
void emv_reaudit_free(emv_reaudit *ra);

/* 1 while an audit is in flight. */
int emv_reaudit_running(const emv_reaudit *ra);
void emv_reaudit_stats_get(const emv_reaudit *ra, emv_reaudit_stats *st);

/* Apply the results of one audit to rep (the rules above); adds to *st
 * (may be NULL); returns the number of holds and releases made. */
int emv_reaudit_apply(emv_rep *rep, const emv_audit_result *res, int n, uint64_t now, emv_reaudit_stats *st);

#endif
