/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_auth.c - who is asking: the api_bearer token, its lookup, the rate limit
 * per token and the limit on failed authentications per client address.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "emv_api_internal.h"
#include "emv_util.h"
int api_authenticate(struct task *t, PGconn *c)
{
	char err[512];
	int f = emv_token_lookup(c, t->token_hash, t->tenant, sizeof t->tenant, err, sizeof err);
	if (f < 0) {
		emv_log(EMV_LOG_WARN, "api", "%s", err);
		api_task_error(t, 503, "database_unavailable", "the database is not reachable");
		return 0;
	}
	if (f == 0) {
		api_task_error(t, 401, "unauthorized", "the token is not valid or has been revoked");
		return 0;
	}
	return 1;
}

/* ------------------------------------------------------------- rate limits */

/* One token bucket per presented token (keyed by its hash), in a fixed
 * table: a full probe window evicts its least recently used entry. */
struct rate_bucket {
	unsigned char key[32];
	double tokens;
	uint64_t last_us;
	int used;
};

#define RATE_TABLE 4096
#define RATE_PROBE 16

/* 0 when allowed, else the seconds to wait. */
int api_rate_check(struct api *a, const unsigned char key[32])
{
	uint64_t now = emv_now_us(), h;
	struct rate_bucket *b = NULL, *oldest = NULL;
	if (a->p.rate_limit <= 0)
		return 0;
	memcpy(&h, key, sizeof h);
	for (int i = 0; i < RATE_PROBE; i++) {
		struct rate_bucket *x = &a->buckets[(h + (uint64_t)i) % RATE_TABLE];
		if (x->used && memcmp(x->key, key, 32) == 0) {
			b = x;
			break;
		}
		if (!x->used) {
			oldest = x;
			break;
		}
		if (!oldest || x->last_us < oldest->last_us)
			oldest = x;
	}
	if (!b) {
		b = oldest;
		memcpy(b->key, key, 32);
		b->used = 1;
		b->tokens = a->p.rate_burst;
		b->last_us = now;
	}
	b->tokens += (double)(now - b->last_us) / 1e6 * a->p.rate_limit;
	if (b->tokens > a->p.rate_burst)
		b->tokens = a->p.rate_burst;
	b->last_us = now;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return 0;
	}
	return (int)ceil((1 - b->tokens) / a->p.rate_limit);
}

/*
 * Failed authentications per client address: every refused token costs a
 * database lookup, so an address that presents more than auth_fail_limit
 * refused tokens within auth_fail_window_s gets 429 for any token (good
 * ones too: the lookup is what is being spared) until its window ends.
 * A fixed window per address in a fixed table (the least recently started
 * window in a full probe run is evicted); loop only.
 */
struct auth_fail {
	unsigned char addr[16];
	int len;
	int count;
	uint64_t start_ms;
};

#define AUTH_TABLE 4096
#define AUTH_PROBE 16

static struct auth_fail *auth_slot(struct api *a, const struct api_req *r, int add)
{
	uint64_t h = 1469598103934665603ull;
	struct auth_fail *oldest = NULL;
	if (a->p.auth_fail_limit <= 0 || r->peer_len == 0 || !a->auth_fails)
		return NULL;
	for (int i = 0; i < r->peer_len; i++)
		h = (h ^ r->peer[i]) * 1099511628211ull;
	for (int i = 0; i < AUTH_PROBE; i++) {
		struct auth_fail *x = &a->auth_fails[(h + (uint64_t)i) % AUTH_TABLE];
		if (x->len == r->peer_len && memcmp(x->addr, r->peer, (size_t)x->len) == 0)
			return x;
		if (!x->len) {
			oldest = x;
			break;
		}
		if (!oldest || x->start_ms < oldest->start_ms)
			oldest = x;
	}
	if (!add)
		return NULL;
	memset(oldest, 0, sizeof *oldest);
	memcpy(oldest->addr, r->peer, (size_t)r->peer_len);
	oldest->len = r->peer_len;
	oldest->start_ms = emv_now_ms();
	return oldest;
}

void api_auth_failed(struct api *a, const struct api_req *r)
{
	struct auth_fail *f = auth_slot(a, r, 1);
	uint64_t now = emv_now_ms();
	if (!f)
		return;
	if (now - f->start_ms >= (uint64_t)a->p.auth_fail_window_s * 1000) {
		f->start_ms = now;
		f->count = 0;
	}
	f->count++;
}

/* 0 when this address may try a token, else the seconds to wait. */
int api_auth_wait(struct api *a, const struct api_req *r)
{
	struct auth_fail *f = auth_slot(a, r, 0);
	uint64_t now = emv_now_ms(), end;
	if (!f || f->count < a->p.auth_fail_limit)
		return 0;
	end = f->start_ms + (uint64_t)a->p.auth_fail_window_s * 1000;
	if (now >= end)
		return 0;
	return (int)((end - now + 999) / 1000);
}

/* The api_bearer token's hash; 0 when there is none usable (then answered). */
int api_bearer(struct api_req *r, unsigned char hash[32])
{
	const char *h = api_req_header(r, "Authorization");
	size_t n;
	if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
		api_reply_error(r, 401, "unauthorized", "an Authorization: Bearer token is required");
		return 0;
	}
	h += 7;
	while (*h == ' ')
		h++;
	r->token_given = 1;
	n = strlen(h);
	while (n && h[n - 1] == ' ')
		n--;
	if (n == 0 || n > EMV_TOKEN_MAX) {
		api_reply_error(r, 401, "unauthorized", "the token is not valid or has been revoked");
		return 0;
	}
	emv_token_hash(h, n, hash);
	return 1;
}

void api_auth_tables(struct api *a)
{
	a->buckets = emv_xcalloc(RATE_TABLE, sizeof *a->buckets);
	a->nbuckets = RATE_TABLE;
	a->auth_fails = emv_xcalloc(AUTH_TABLE, sizeof *a->auth_fails);
}
