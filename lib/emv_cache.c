/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_cache.c - the verdict cache's ages (see emv_cache.h).
 */
#include <stdio.h>
#include <string.h>
#include "emv_cache.h"
#include "emv_defaults.h"
#include "emv_util.h"

void emv_cache_ages_default(emv_cache_ages *a)
{
	for (int i = 0; i < EMV_REASON__COUNT; i++)
		a->reason_s[i] = -1;
	a->status_s[EMV_STATUS_DELIVERABLE] = EMV_DEF_CACHE_DELIVERABLE_S;
	a->status_s[EMV_STATUS_UNDELIVERABLE] = EMV_DEF_CACHE_UNDELIVERABLE_S;
	a->status_s[EMV_STATUS_RISKY] = EMV_DEF_CACHE_RISKY_S;
	a->status_s[EMV_STATUS_UNKNOWN] = -1;
	a->reason_s[EMV_REASON_MAILBOX_FULL] = EMV_DEF_CACHE_MAILBOX_FULL_S;
}

static int parse_age(const char *text, int64_t *out)
{
	uint64_t ms;
	if (strcmp(text, "off") == 0) {
		*out = -1;
		return EMV_OK;
	}
	if (emv_parse_duration_max_ms(text, (uint64_t)EMV_CACHE_AGE_LIMIT_S * 1000, &ms) < 0)
		return EMV_ERR;
	*out = (int64_t)(ms / 1000);
	return EMV_OK;
}

int emv_cache_ages_parse(emv_cache_ages *a, const char *text, char *err, size_t errlen)
{
	emv_cache_ages n = *a;
	char buf[1024], *save = NULL;

	if (emv_strlcpy(buf, text, sizeof buf) >= sizeof buf) {
		snprintf(err, errlen, "cache ages: longer than %zu bytes", sizeof buf - 1);
		return EMV_ERR;
	}
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		int64_t age;
		int st, r;
		if (!eq) {
			snprintf(err, errlen, "cache ages: \"%s\" is not NAME=AGE", item);
			return EMV_ERR;
		}
		*eq = '\0';
		if (parse_age(eq + 1, &age) != EMV_OK) {
			snprintf(err, errlen,
				 "cache ages: %s: \"%s\" is not an age (90s, 12h, 30d, at most 365d) or off", item,
				 eq + 1);
			return EMV_ERR;
		}
		if ((st = emv_status_from_name(item)) >= 0) {
			if (st == EMV_STATUS_UNKNOWN && age >= 0) {
				snprintf(err, errlen, "cache ages: unknown is never served from the cache");
				return EMV_ERR;
			}
			n.status_s[st] = age;
		} else if ((r = emv_reason_from_name(item)) >= 0) {
			n.reason_s[r] = age < 0 ? -2 : age;
		} else {
			snprintf(err, errlen, "cache ages: \"%s\" is neither a status nor a reason", item);
			return EMV_ERR;
		}
	}
	*a = n;
	return EMV_OK;
}

static size_t put_age(char *buf, size_t len, size_t at, const char *name, int64_t s)
{
	int n;
	if (at >= len)
		return at;
	if (s < 0)
		n = snprintf(buf + at, len - at, "%s%s=off", at ? "," : "", name);
	else if (s % 86400 == 0)
		n = snprintf(buf + at, len - at, "%s%s=%lldd", at ? "," : "", name, (long long)(s / 86400));
	else if (s % 3600 == 0)
		n = snprintf(buf + at, len - at, "%s%s=%lldh", at ? "," : "", name, (long long)(s / 3600));
	else
		n = snprintf(buf + at, len - at, "%s%s=%llds", at ? "," : "", name, (long long)s);
	return n < 0 ? at : at + (size_t)n;
}

void emv_cache_ages_format(const emv_cache_ages *a, char *buf, size_t len)
{
	size_t at = 0;
	if (len)
		buf[0] = '\0';
	for (int i = 0; i < EMV_STATUS__COUNT; i++)
		if (i != EMV_STATUS_UNKNOWN)
			at = put_age(buf, len, at, emv_status_name((emv_status)i), a->status_s[i]);
	for (int i = 0; i < EMV_REASON__COUNT; i++)
		if (a->reason_s[i] != -1)
			at = put_age(buf, len, at, emv_reason_name((emv_reason)i),
				     a->reason_s[i] == -2 ? -1 : a->reason_s[i]);
}

int64_t emv_cache_max_age_s(const emv_cache_ages *a, emv_status st, emv_reason r, int64_t job_max_age_s)
{
	int64_t age;
	if ((int)st < 0 || st >= EMV_STATUS__COUNT || st == EMV_STATUS_UNKNOWN)
		return -1;
	age = a->status_s[st];
	if ((int)r >= 0 && r < EMV_REASON__COUNT && a->reason_s[r] != -1)
		age = a->reason_s[r] == -2 ? -1 : a->reason_s[r];
	if (age < 0 || job_max_age_s == 0)
		return -1;
	if (job_max_age_s > 0 && job_max_age_s < age)
		age = job_max_age_s;
	return age;
}

int emv_cache_servable(const emv_cache_ages *a, emv_status st, emv_reason r, int64_t age_s, int64_t job_max_age_s)
{
	int64_t max = emv_cache_max_age_s(a, st, r, job_max_age_s);
	return max >= 0 && age_s >= 0 && age_s <= max;
}

int emv_cache_parse_max_age(const char *field, const char *text, int64_t *out, char *err, size_t errlen)
{
	int64_t v;
	if (parse_age(text, &v) != EMV_OK || v < 0) {
		snprintf(err, errlen,
			 "%s: \"%s\" is not an age: a whole number with s, m, h or d (0 asks everything "
			 "again), at most 365d",
			 field, text);
		return EMV_ERR;
	}
	*out = v;
	return EMV_OK;
}
