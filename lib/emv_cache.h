/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_cache.h - when a verdict from an earlier job may answer a new one:
 * the verdict cache's ages, shared by the cluster's cache in PostgreSQL
 * (coordinator/) and verify's local cache file (cli/).  docs/cache.md.
 *
 * A cached verdict is the last final verdict of a normalised address with
 * its evidence and the time it was verified.  It may answer a job while it
 * is younger than the maximum age of its status, or of its reason where the
 * reason has one of its own, and younger than the job's own max_age.
 * `unknown` is never served: it says we could not tell, and asking again is
 * the only way to learn more.
 *
 * Defaults (lib/emv_defaults.h, EMV_DEF_CACHE_*) and why:
 *   deliverable    30 days  mailboxes close at a few percent a month (people
 *                           leave, accounts lapse): a month-old "deliverable"
 *                           is wrong for about 2 % of a list, the bounce rate
 *                           senders are told to stay under
 *   undeliverable  90 days  a rejected mailbox seldom comes back; providers
 *                           that recycle addresses wait a year or more
 *   risky           7 days  catch-all domains and role accounts change with
 *                           the domain's configuration, which is cheap to ask
 *   mailbox_full    1 day   a full mailbox is emptied by its owner, or not
 *   unknown        never
 */
#ifndef EMV_CACHE_H
#define EMV_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "emv_result.h"

/* The longest age a setting or a job may give: one year. */
#define EMV_CACHE_AGE_LIMIT_S (365LL * 86400)

typedef struct {
	int64_t status_s[EMV_STATUS__COUNT]; /* seconds; -1: never served */
	int64_t reason_s[EMV_REASON__COUNT]; /* seconds; -1: the status's age, -2: never served */
} emv_cache_ages;

void emv_cache_ages_default(emv_cache_ages *a);

/*
 * Change ages from "NAME=AGE,NAME=AGE": NAME is a status or a reason, AGE a
 * duration (90s, 12h, 30d, at most a year) or "off" (never served).
 * `unknown` cannot be given an age.  On an error a is untouched and err
 * names the item.  EMV_OK or EMV_ERR.
 */
int emv_cache_ages_parse(emv_cache_ages *a, const char *text, char *err, size_t errlen);

/* The ages as "deliverable=30d,undeliverable=90d,...", parseable again. */
void emv_cache_ages_format(const emv_cache_ages *a, char *buf, size_t len);

/*
 * The oldest a verdict of this status and reason may be to answer a job
 * whose own max_age is job_max_age_s (-1: the job sets none; 0: fresh, the
 * job asks everything again), in seconds; -1 when it is never served.
 */
int64_t emv_cache_max_age_s(const emv_cache_ages *a, emv_status st, emv_reason r, int64_t job_max_age_s);

/* Whether a verdict verified age_s seconds ago answers such a job. */
int emv_cache_servable(const emv_cache_ages *a, emv_status st, emv_reason r, int64_t age_s, int64_t job_max_age_s);

/* A job's max_age ("30d", "12h", "0" for fresh): seconds, or EMV_ERR with err
 * naming the field and its bounds. */
int emv_cache_parse_max_age(const char *field, const char *text, int64_t *out, char *err, size_t errlen);

#endif
