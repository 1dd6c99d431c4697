/* emv_budget.c - token buckets per budget key (see emv_budget.h). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "emv_budget.h"
#include "emv_util.h"

#define BUCKETS 4096u

struct window {
	double tokens;
	double cap;        /* the limit; 0 = unlimited */
	double per_ms;     /* refill rate */
};

struct entry {
	char *key;
	struct window w[3];
	uint64_t last_ms;
	struct entry *next;
};

struct emv_budget {
	pthread_mutex_t mu;
	struct entry *table[BUCKETS];
};

static const double window_ms[3] = { 60e3, 3600e3, 86400e3 };

emv_budget *emv_budget_new(void)
{
	emv_budget *b = emv_xcalloc(1, sizeof *b);
	pthread_mutex_init(&b->mu, NULL);
	return b;
}

void emv_budget_free(emv_budget *b)
{
	if (!b)
		return;
	for (unsigned i = 0; i < BUCKETS; i++) {
		struct entry *e = b->table[i], *n;
		for (; e; e = n) {
			n = e->next;
			free(e->key);
			free(e);
		}
	}
	pthread_mutex_destroy(&b->mu);
	free(b);
}

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct entry *lookup(emv_budget *b, const char *key, const int limits[3], uint64_t now)
{
	unsigned i = hash(key) % BUCKETS;
	struct entry *e;
	for (e = b->table[i]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			break;
	if (!e) {
		e = emv_xcalloc(1, sizeof *e);
		e->key = emv_xstrdup(key);
		e->last_ms = now;
		for (int k = 0; k < 3; k++)
			e->w[k].tokens = limits[k];  /* a new key starts with a full window */
		e->next = b->table[i];
		b->table[i] = e;
	}
	/* limits may differ per call (policy reloaded): follow the caller's */
	for (int k = 0; k < 3; k++) {
		e->w[k].cap = limits[k] > 0 ? limits[k] : 0;
		e->w[k].per_ms = limits[k] > 0 ? limits[k] / window_ms[k] : 0;
	}
	return e;
}

void emv_budget_charge(emv_budget *b, const char *key, int n)
{
	unsigned i = hash(key) % BUCKETS;
	struct entry *e;
	if (n <= 0)
		return;
	pthread_mutex_lock(&b->mu);
	for (e = b->table[i]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			break;
	if (e)
		for (int k = 0; k < 3; k++)
			if (e->w[k].cap > 0)
				e->w[k].tokens -= n;
	pthread_mutex_unlock(&b->mu);
}

int emv_budget_take(emv_budget *b, const char *key, int per_minute, int per_hour, int per_day, int want, int min,
		    uint64_t now_ms, int *wait_ms)
{
	const int limits[3] = { per_minute, per_hour, per_day };
	struct entry *e;
	double avail = want, wait = 0;
	int grant;

	*wait_ms = 0;
	if (want <= 0)
		return 0;
	if (min < 1)
		min = 1;
	if (per_minute <= 0 && per_hour <= 0 && per_day <= 0)
		return want;
	pthread_mutex_lock(&b->mu);
	e = lookup(b, key, limits, now_ms);
	for (int k = 0; k < 3; k++) {
		struct window *w = &e->w[k];
		if (w->cap <= 0)
			continue;
		w->tokens += (double)(now_ms - e->last_ms) * w->per_ms;
		if (w->tokens > w->cap)
			w->tokens = w->cap;
		if (w->tokens < avail)
			avail = w->tokens;
	}
	e->last_ms = now_ms;
	grant = (int)floor(avail + 1e-9);
	if (grant > want)
		grant = want;
	if (grant < min) {
		for (int k = 0; k < 3; k++) {
			struct window *w = &e->w[k];
			if (w->cap > 0 && w->tokens < min) {
				double t = (min - w->tokens) / w->per_ms;
				if (t > wait)
					wait = t;
			}
		}
		pthread_mutex_unlock(&b->mu);
		*wait_ms = (int)ceil(wait) + 1;
		return 0;
	}
	for (int k = 0; k < 3; k++)
		if (e->w[k].cap > 0)
			e->w[k].tokens -= grant;
	pthread_mutex_unlock(&b->mu);
	return grant;
}
