/* SPDX-License-Identifier: Apache-2.0 */
/* emv_reaudit.c - the periodic self-audit of a pool (see emv_reaudit.h). */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include "emv_reaudit.h"
#include "emv_util.h"

struct emv_reaudit {
	struct event_base *base;
	emv_dns *dns;
	const emv_pool *pool;
	emv_rep *rep;
	uint64_t interval_ms;
	struct event *timer;
	emv_audit *audit; /* the one in flight, or NULL */
	emv_reaudit_stats st;
};

/* A failure that an answer proved, as opposed to one for want of answers. */
static int definite_failure(const emv_audit_result *r)
{
	if (r->fcrdns == EMV_AUDIT_FAIL)
		return 1;
	if (r->spf != EMV_SPF_PASS && r->spf != EMV_SPF_TEMPERROR)
		return 1;
	for (int i = 0; i < r->ndnsbl && i < EMV_POOL_DNSBL_MAX; i++)
		if (r->dnsbl[i].status == EMV_AUDIT_FAIL)
			return 1;
	return 0;
}

int emv_reaudit_apply(emv_rep *rep, const emv_audit_result *res, int n, uint64_t now, emv_reaudit_stats *st)
{
	int changes = 0;

	for (int i = 0; i < n; i++) {
		const emv_audit_result *x = &res[i];
		int held = emv_rep_is_held(rep, x->source);

		if (x->ok) {
			if (held) {
				emv_rep_release(rep, x->source, now);
				emv_log(EMV_LOG_WARN, "audit", "source %s (%s): passed its re-audit: back in rotation",
					x->ip, x->helo);
				changes++;
				if (st)
					st->released++;
			}
		} else if (!definite_failure(x)) {
			emv_log(EMV_LOG_INFO, "audit", "source %s (%s): re-audit inconclusive, left %s: %s", x->ip,
				x->helo, held ? "held" : "in rotation", x->problems);
			if (st)
				st->inconclusive++;
		} else if (x->held && !held) {
			emv_rep_hold(rep, x->source, x->problems, now);
			emv_log(EMV_LOG_WARN, "audit",
				"source %s (%s): failed its re-audit: held out of rotation "
				"(open sessions finish): %s",
				x->ip, x->helo, x->problems);
			changes++;
			if (st)
				st->held++;
		}
	}
	return changes;
}

static void arm(emv_reaudit *ra)
{
	struct timeval tv = { (time_t)(ra->interval_ms / 1000), (suseconds_t)(ra->interval_ms % 1000) * 1000 };
	evtimer_add(ra->timer, &tv);
}

static void on_audit(const emv_audit_result *res, int n, void *arg)
{
	emv_reaudit *ra = arg;

	emv_reaudit_apply(ra->rep, res, n, emv_now_ms(), &ra->st);
	ra->st.audits++;
	emv_audit_free(ra->audit); /* allowed from its own callback */
	ra->audit = NULL;
	arm(ra); /* timed from the end of this one: never two at once */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	emv_reaudit *ra = arg;

	(void)fd;
	(void)what;
	if (ra->audit)
		return; /* cannot happen (the timer is re-armed only after an audit), but never overlap */
	emv_log(EMV_LOG_DEBUG, "audit", "re-auditing %d source address(es)", ra->pool->nsources);
	ra->audit = emv_audit_start(ra->base, ra->dns, ra->pool, on_audit, ra);
}

emv_reaudit *emv_reaudit_new(struct event_base *base, emv_dns *dns, const emv_pool *pool, emv_rep *rep,
			     uint64_t interval_ms)
{
	emv_reaudit *ra;

	if (!base || !dns || !pool || !rep || interval_ms == 0)
		return NULL;
	ra = emv_xcalloc(1, sizeof *ra);
	ra->base = base;
	ra->dns = dns;
	ra->pool = pool;
	ra->rep = rep;
	ra->interval_ms = interval_ms;
	ra->timer = evtimer_new(base, on_timer, ra);
	arm(ra);
	return ra;
}

void emv_reaudit_free(emv_reaudit *ra)
{
	if (!ra)
		return;
	event_free(ra->timer);
	emv_audit_free(ra->audit); /* cancels: its callback never runs */
	free(ra);
}

int emv_reaudit_running(const emv_reaudit *ra)
{
	return ra && ra->audit != NULL;
}

void emv_reaudit_stats_get(const emv_reaudit *ra, emv_reaudit_stats *st)
{
	if (ra)
		*st = ra->st;
	else
		memset(st, 0, sizeof *st);
}
