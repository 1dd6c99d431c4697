/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_retry.h - when to ask an address again: one retry policy, by reason,
 * for every path that retries (the engine behind check, verify and run's
 * worker threads, and the cluster worker's retry topic).
 *
 * One schedule for everything made a list wait for its slowest address: a
 * full mailbox, a blocked source address or a dead host sat out 60 s / 5 min
 * / 15 min for answers that would not change.  By reason:
 *   greylisted          the server's hint or the schedule (it will let us in)
 *   rate_limited, 421,
 *   other temporary     the schedule (the server asked us to slow down)
 *   blocked (our IP)    never again from the same address: at once from
 *                       another source address if there is one, else final
 *   connection_failed,
 *   timeout, tls, protocol
 *                       one retry after the schedule's first step, then final
 *   mailbox_full        final at the first answer: the mailbox exists
 *   dns_failed          two quick retries, then final
 * A result that is not temporary is final.  Attempts count the first try.
 *
 * The same structure carries every other retry timing, so that each path
 * reads one policy and the options change that one policy: check's own
 * greylist rounds inside a probe job, the engine's retry window, and the
 * cluster's retry topic (a worker's attempts and waits, a re-split's hold).
 * Defaults: lib/emv_defaults.h (EMV_DEF_RETRY_*, _GREYLIST_*, _TOPIC_*).
 */
#ifndef EMV_RETRY_H
#define EMV_RETRY_H

#include "emv_result.h"

typedef struct {
	int max_attempts;     /* per address, the first try included (4) */
	int schedule_ms[3];   /* greylisting and back-off: after the 1st, 2nd, 3rd+ temporary
	                            answer (60 s, 5 min, 15 min); a server's hint longer than the
	                            step and at most [2] wins */
	int connect_attempts; /* tries when no server answered, the retry after schedule_ms[0] (2) */
	int dns_retry_ms[2];  /* DNS temporary failure: the two quick retries (5 s, 20 s) */
	int window_ms;	      /* verify/run: no retry later than this after the address's first try
	                            (30 min); --max-retry-time */

	/* check: a probe job asks its greylisted recipients again itself */
	int greylist_rounds;	  /* retry rounds (2) */
	int greylist_wait_ms;	  /* wait when the server gives no hint (60 s); --greylist-wait */
	int greylist_max_wait_ms; /* a longer hint is capped to this (5 min) */
	int greylist_window_ms;	  /* total time waiting on greylisting per domain (2 min); --max-retry-time */

	/* the cluster: retries through the retry topic (emv_worker.h) */
	int topic_attempts;    /* per address, the first try included (3); --retry-attempts */
	int topic_delay_ms[3]; /* wait before the 2nd, 3rd, 4th+ try (10, 30, 60 min); --retry-delay.
	                            A re-split holds a temporary result [0] after it (emv_split.h) */
	int worker_window_ms;  /* a cluster worker's engine retries within this, longer waits go to
	                            the retry topic (5 min); --max-retry-time */
} emv_retry_policy;

void emv_retry_policy_default(emv_retry_policy *p);

/* --max-retry-time S: the most any path waits on retries of an address:
 * check's greylist rounds, the engine's window and a cluster worker's. */
void emv_retry_policy_set_window(emv_retry_policy *p, int seconds);

/*
 * The delay before the next try of an address whose latest result has this
 * reason, or -1 when that result is final now.  tries: tries so far (1 after
 * the first); retry_after_ms: the server's own hint (0: none);
 * other_source: another source address may ask now (a pool with addresses
 * not blocked for this provider, or a region to hand the work to).
 */
int emv_retry_delay(const emv_retry_policy *p, emv_reason reason, int temporary, int tries, int retry_after_ms,
		    int other_source);

/* Parse "A,B,C" (seconds) into schedule_ms; -1 with a message in err. */
int emv_retry_parse_schedule(emv_retry_policy *p, const char *text, char *err, size_t errlen);

#endif
