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
 */
#ifndef EMV_RETRY_H
#define EMV_RETRY_H

#include "emv_result.h"

typedef struct {
	int max_attempts;        /* per address, the first try included (4) */
	int schedule_ms[3];      /* greylisting and back-off: after the 1st, 2nd, 3rd+ temporary
	                            answer (60 s, 5 min, 15 min); a server's hint longer than the
	                            step and at most [2] wins */
	int connect_attempts;    /* tries when no server answered, the retry after schedule_ms[0] (2) */
	int dns_retry_ms[2];     /* DNS temporary failure: the two quick retries (5 s, 20 s) */
} emv_retry_policy;

void emv_retry_policy_default(emv_retry_policy *p);

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
