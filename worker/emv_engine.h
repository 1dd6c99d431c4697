/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_engine.h - the batching scheduler: many addresses, few connections.
 *
 * Addresses are added with their domain; the engine groups them by domain,
 * resolves each domain's MX once, and runs probe jobs (one SMTP session per
 * batch of up to rcpt_per_session recipients) under three limits: sessions
 * in flight overall (concurrency), sessions per MX host (the provider's
 * sessions_per_mx), and a provider's back-off after it asked us to slow
 * down (421), and the provider's RCPT budget per minute/hour/day (work
 * waits for budget, it is never dropped).  Temporary results (greylisting, rate limits, timeouts) are
 * queued again after the server's hint or the retry schedule while the
 * address's retry budget lasts; every other result is final and handed to
 * the result callback once.
 *
 * When connections to several unrelated MX hosts all time out at connect and
 * none succeeds, outbound port 25 is most likely blocked here: the engine
 * says so (emv_engine_port25_suspected) and stops retrying such failures.
 */
#ifndef EMV_ENGINE_H
#define EMV_ENGINE_H

#include <stdint.h>
#include "emv_probe.h"
#include "emv_budget.h"
#include "emv_domstate.h"
#include "emv_providers.h"
#include "emv_pool.h"
#include "emv_reputation.h"
#include "emv_retry.h"

typedef struct {
	int concurrency;		/* probe sessions in flight (default 500) */
	int dns_concurrency;		/* domains being resolved at once (default 64): a burst of
	                             thousands of queries overflows UDP buffers and fails */
	int no_batching;		/* one address per session (benchmark baseline) */
	emv_retry_policy retry;		/* when to ask again, by reason, and no retry later than
	                             retry.window_ms after the address's first try (emv_retry.h) */
	int port25_threshold;		/* distinct MX hosts timing out at connect, none reachable (5) */
	const emv_providers *providers; /* NULL: built-in defaults */
	int user_timeouts;		/* the user set timeouts: provider timeouts do not override them */
	emv_budget *budget;		/* RCPT budgets, shared by every engine of the process (NULL: none) */
	const emv_pool *pool;		/* source addresses to rotate (NULL: the probe config's own source) */
	emv_rep *rep;			/* their reputation per provider (required with pool; one per engine) */
	/* With a pool: when every source address is quarantined (or held) for a
	 * domain's provider, its pending addresses are handed back through this
	 * (called with the engine's arg, the address id, the provider's name and
	 * the sessions it took part in) instead of waiting for a cool-down:
	 * the cluster worker sends them to another region.  NULL: wait. */
	void (*handback)(void *arg, uint64_t id, const char *provider, unsigned attempts);
	/* Time limits (monotonic ms, 0 = none): at deadline_ms nothing more is
	 * asked, and every address still waiting (for a retry, a budget, a
	 * session) is final at once through expired(); once every address has
	 * had its first answer, the stragglers (retries) get at most linger_ms
	 * more.  A retry that would come after the limit is not scheduled: the
	 * result is final now.  expired() gets the address's last result
	 * (made final, its detail saying why), or an unknown / timeout result
	 * saying it was not asked; without expired() neither limit applies. */
	uint64_t deadline_ms;
	uint64_t linger_ms;
	void (*expired)(void *arg, uint64_t id, const emv_probe_result *last, unsigned attempts);
	/* What is known of MX hosts and domains beyond this engine (the
	 * cluster worker's copy of emailverify.domain-state, lib/emv_domstate.h),
	 * NULL: the engine learns for itself only.  The engine reads it (a
	 * host's recipients per transaction and errors per session, never more
	 * than the provider policy allows; its 421 back-off; the sessions it
	 * answered well as the start of its window, within the policy's cap; a
	 * domain's catch-all answer) and writes its own findings into it. */
	emv_domstate *domstate;
	/* Connections whose recipients are all answered stay open this long
	 * for the next domain of the same mail server (ms; 0: every job its
	 * own connection).  Default EMV_DEF_SESSION_IDLE_MS. */
	int session_idle_ms;
	/* Called (with the result callback's arg) when the last open or
	 * closing connection is gone and the engine is idle: a caller that
	 * stopped at its last result may stop its loop now (NULL: none). */
	void (*quiet)(void *arg);
} emv_engine_params;

void emv_engine_params_default(emv_engine_params *p);

typedef struct emv_engine emv_engine;

/* A final result: job/idx are valid during the call only.  attempts counts
 * every session the address took part in, across retries. */
typedef void (*emv_engine_result_cb)(void *arg, uint64_t id, const emv_probe_job *job, size_t idx, unsigned attempts,
				     int port25_blocked);

emv_engine *emv_engine_new(const emv_probe_config *cfg, const emv_engine_params *p, emv_engine_result_cb cb, void *arg);
void emv_engine_free(emv_engine *e);

/* Queue one address (normalised, its A-label domain). */
void emv_engine_add(emv_engine *e, uint64_t id, const char *address, const char *domain, int utf8);

/* Start or continue scheduling (call after adding; safe to call often). */
void emv_engine_pump(emv_engine *e);

/* Stopping: start nothing more (no session, DNS lookup or retry); the
 * sessions in flight run to their end (QUIT) and report as usual, the rest
 * stays queued, never reported.  Not undone. */
void emv_engine_drain(emv_engine *e);

/* Every address waiting for a retry (greylisting, a rate limit, a
 * timeout): fn gets its id and when it is due (monotonic ms, emv_now_ms).
 * A caller that stops can hand such addresses on with that time, so that
 * their next owner does not ask them early.  fn must not call the engine. */
void emv_engine_waiting(const emv_engine *e, void (*fn)(void *arg, uint64_t id, uint64_t due_ms), void *arg);

/* Probe sessions (jobs) in flight. */
int emv_engine_sessions(const emv_engine *e);

/* 1 when nothing is queued, running or waiting for a retry, and no
 * connection is open. */
int emv_engine_idle(const emv_engine *e);

/* Connections kept open between jobs, or saying QUIT (params.session_idle_ms). */
int emv_engine_open_connections(const emv_engine *e);

typedef struct {
	uint64_t added, finished, retries;
	uint64_t retries_by_reason[EMV_REASON__COUNT];
	uint64_t sessions;	/* SMTP sessions opened */
	uint64_t resumed;	/* jobs asked in an open connection of an earlier job instead */
	uint64_t cut_sessions;	/* of them, ended by our error budget (the rest asked in another) */
	uint64_t handed_back;	/* addresses given back (params.handback) */
	uint64_t expired;	/* made final by the deadline or the straggler limit */
	uint64_t next_retry_ms; /* monotonic time of the next retry due, 0 = none */
	uint64_t deadline_ms;	/* the limit in force (deadline or straggler limit), 0 = none */
	char budget_wait[200];	/* "" or the RCPT budget work waited for in the last 5 s */
	uint64_t jobs;
	unsigned active, waiting_retry, domains;
	unsigned peak_active; /* most probe jobs (each one SMTP session at a time) at once */
	int port25_suspected;
} emv_engine_stats;

void emv_engine_stats_get(const emv_engine *e, emv_engine_stats *s);

#endif
