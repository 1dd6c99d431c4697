/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_budget.h - RCPT budgets: how many recipients we may still ask a mail
 * provider (or one MX host) per minute, hour and day from one source.
 *
 * Each budget key holds three sliding windows (minute, hour, day) counting
 * the RCPTs granted.  A request is granted only what every window can give,
 * so no window of that length ever holds more than its limit; what is not
 * granted waits until old grants leave the window.  One
 * emv_budget is shared by every event loop of a process (a mutex inside),
 * so threads do not multiply a provider's budget.
 */
#ifndef EMV_BUDGET_H
#define EMV_BUDGET_H

#include <stdint.h>

typedef struct emv_budget emv_budget;

emv_budget *emv_budget_new(void);
void emv_budget_free(emv_budget *b);

/*
 * Take up to `want` RCPTs from `key` with the given limits (0 = unlimited).
 * Returns how many were granted (0..want).  When fewer than `min` can be
 * granted, nothing is taken, 0 is returned and *wait_ms says when `min`
 * will be available.
 */
int emv_budget_take(emv_budget *b, const char *key, int per_minute, int per_hour, int per_day, int want, int min,
		    uint64_t now_ms, int *wait_ms);

/* Charge n RCPTs already sent beyond what was granted (re-sends after a
 * 452): the windows may go over their limit and later requests wait longer. */
void emv_budget_charge(emv_budget *b, const char *key, int n);
/* Give back n RCPTs taken under key at now_ms and not used (n <= 0: nothing). */
void emv_budget_refund(emv_budget *b, const char *key, int n, uint64_t now_ms);

#endif
