/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_retry.c - the retry policy by reason (see emv_retry.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "emv_defaults.h"
#include "emv_retry.h"
#include "emv_util.h"

void emv_retry_policy_default(emv_retry_policy *p)
{
	p->max_attempts = EMV_DEF_RETRY_MAX_ATTEMPTS;
	p->schedule_ms[0] = EMV_DEF_RETRY_STEP1_MS;
	p->schedule_ms[1] = EMV_DEF_RETRY_STEP2_MS;
	p->schedule_ms[2] = EMV_DEF_RETRY_STEP3_MS;
	p->connect_attempts = EMV_DEF_RETRY_CONNECT_ATTEMPTS;
	p->dns_retry_ms[0] = EMV_DEF_RETRY_DNS1_MS;
	p->dns_retry_ms[1] = EMV_DEF_RETRY_DNS2_MS;
	p->window_ms = EMV_DEF_RETRY_WINDOW_MS;
	p->greylist_rounds = EMV_DEF_GREYLIST_ROUNDS;
	p->greylist_wait_ms = EMV_DEF_GREYLIST_WAIT_MS;
	p->greylist_max_wait_ms = EMV_DEF_GREYLIST_MAX_WAIT_MS;
	p->greylist_window_ms = EMV_DEF_GREYLIST_WINDOW_MS;
	p->topic_attempts = EMV_DEF_TOPIC_ATTEMPTS;
	p->topic_delay_ms[0] = EMV_DEF_TOPIC_DELAY1_MS;
	p->topic_delay_ms[1] = EMV_DEF_TOPIC_DELAY2_MS;
	p->topic_delay_ms[2] = EMV_DEF_TOPIC_DELAY3_MS;
	p->worker_window_ms = EMV_DEF_WORKER_RETRY_WINDOW_MS;
}

void emv_retry_policy_set_window(emv_retry_policy *p, int seconds)
{
	p->window_ms = p->greylist_window_ms = p->worker_window_ms = seconds * 1000;
}

int emv_retry_delay(const emv_retry_policy *p, emv_reason reason, int temporary, int tries, int retry_after_ms,
		    int other_source)
{
	int k = tries - 1, d;

	if (!temporary || tries >= p->max_attempts)
		return -1;
	if (k < 0)
		k = 0;
	switch (emv_reason_retry(reason)) {    /* the reason's row in EMV_REASON_LIST */
	case EMV_RETRY_CLASS_NEVER: return -1; /* the mailbox exists; asking again proves nothing more */
	case EMV_RETRY_CLASS_OTHER_SOURCE: return other_source ? 0 : -1;
	case EMV_RETRY_CLASS_DNS: return k < 2 ? p->dns_retry_ms[k] : -1;
	case EMV_RETRY_CLASS_CONNECT: return tries < p->connect_attempts ? p->schedule_ms[0] : -1;
	case EMV_RETRY_CLASS_SCHEDULE:
	default: /* greylisted, rate_limited, a 421, other temporary answers */
		d = p->schedule_ms[k > 2 ? 2 : k];
		if (retry_after_ms > d && retry_after_ms <= p->schedule_ms[2])
			d = retry_after_ms;
		return d;
	}
}

int emv_retry_parse_schedule(emv_retry_policy *p, const char *text, char *err, size_t errlen)
{
	long v[3];
	const char *s = text;
	for (int i = 0; i < 3; i++) {
		char *end;
		errno = 0;
		v[i] = strtol(s, &end, 10);
		if (errno || end == s || v[i] < 0 || v[i] > 86400 || (i < 2 ? *end != ',' : *end != '\0')) {
			emv_set_err(err, errlen,
				    "the retry schedule must be three delays in seconds, A,B,C, each 0..86400 "
				    "(got '%s')",
				    text);
			return -1;
		}
		s = end + 1;
	}
	for (int i = 0; i < 3; i++)
		p->schedule_ms[i] = (int)v[i] * 1000;
	return 0;
}
