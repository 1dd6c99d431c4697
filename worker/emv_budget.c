/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_budget.c - RCPT budgets as sliding windows (see emv_budget.h).
 *
 * Each window (minute, hour, day) is cut into SLOTS time slots counting the
 * RCPTs granted in them, and the ring keeps SLOTS + 1 of them: any real
 * window of that length [t - W, t] lies inside the slots kept, so a grant
 * allowed only while they hold fewer than the limit never lets a real
 * window exceed it.  (A token bucket would allow twice the limit in a
 * window: a full bucket, then its refill.)
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "emv_budget.h"
#include "emv_map.h"
#include "emv_util.h"

#define EXPECTED_KEYS 4096u /* the map is sized for this many keys and grows past it */
#define SLOTS 60
#define RING (SLOTS + 1)

struct window {
	uint32_t count[RING];
	uint64_t slot; /* absolute index (now / slot_ms) of the newest slot */
	uint64_t sum;  /* of count[] */
};

struct entry {
	struct window w[3];
};

struct emv_budget {
	pthread_mutex_t mu;
	emv_map *table; /* key -> struct entry */
};

static const uint64_t slot_ms[3] = { 60000 / SLOTS, 3600000 / SLOTS, 86400000 / SLOTS };

emv_budget *emv_budget_new(void)
{
	emv_budget *b = emv_xcalloc(1, sizeof *b);
	pthread_mutex_init(&b->mu, NULL);
	b->table = emv_map_new(EXPECTED_KEYS);
	return b;
}

void emv_budget_free(emv_budget *b)
{
	if (!b)
		return;
	emv_map_free(b->table, free);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

static struct entry *lookup(emv_budget *b, const char *key, int create)
{
	void **v;
	if (!create)
		return emv_map_get(b->table, key);
	v = emv_map_slot(b->table, key, NULL);
	if (!*v)
		*v = emv_xcalloc(1, sizeof(struct entry));
	return *v;
}

/* Move window k forward to now: slots that left the window are emptied. */
static void advance(struct window *w, int k, uint64_t now)
{
	uint64_t cur = now / slot_ms[k];
	if (cur <= w->slot)
		return;
	if (cur - w->slot >= RING) {
		memset(w->count, 0, sizeof w->count);
		w->sum = 0;
	} else {
		/* an entering slot takes the ring place of one that left */
		for (uint64_t s = w->slot + 1; s <= cur; s++) {
			w->sum -= w->count[s % RING];
			w->count[s % RING] = 0;
		}
	}
	w->slot = cur;
}

/* Milliseconds until window k can take `need` more within `limit`. */
static uint64_t wait_for(const struct window *w, int k, int limit, uint64_t need, uint64_t now)
{
	uint64_t used = w->sum, freed = 0;
	/* the j-th oldest slot kept, cur - SLOTS + j (ring place (cur + 1 + j)
	 * mod RING), leaves when slot cur + 1 + j begins */
	for (int j = 0; j < RING; j++) {
		uint64_t s = w->slot + 1 + (uint64_t)j;
		freed += w->count[s % RING];
		if (used - freed + need <= (uint64_t)limit) {
			uint64_t leave = (w->slot + 1 + (uint64_t)j) * slot_ms[k];
			return leave > now ? leave - now : 1;
		}
	}
	return (uint64_t)RING * slot_ms[k];
}

void emv_budget_charge(emv_budget *b, const char *key, int n)
{
	struct entry *e;
	if (n <= 0)
		return;
	pthread_mutex_lock(&b->mu);
	if ((e = lookup(b, key, 0)))
		for (int k = 0; k < 3; k++) {
			advance(&e->w[k], k, emv_now_ms());
			e->w[k].count[e->w[k].slot % RING] += (uint32_t)n;
			e->w[k].sum += (uint64_t)n;
		}
	pthread_mutex_unlock(&b->mu);
}

void emv_budget_refund(emv_budget *b, const char *key, int n, uint64_t now_ms)
{
	struct entry *e;
	if (n <= 0)
		return;
	pthread_mutex_lock(&b->mu);
	if ((e = lookup(b, key, 0)))
		for (int k = 0; k < 3; k++) {
			struct window *w = &e->w[k];
			uint32_t *c;
			advance(w, k, now_ms);
			c = &w->count[w->slot % RING];
			/* from the newest slot, where the take went (never below 0) */
			uint32_t back = *c < (uint32_t)n ? *c : (uint32_t)n;
			*c -= back;
			w->sum -= back;
		}
	pthread_mutex_unlock(&b->mu);
}

int emv_budget_take(emv_budget *b, const char *key, int per_minute, int per_hour, int per_day, int want, int min,
		    uint64_t now_ms, int *wait_ms)
{
	const int limits[3] = { per_minute, per_hour, per_day };
	struct entry *e;
	int64_t avail = want;
	uint64_t wait = 0;

	*wait_ms = 0;
	if (want <= 0)
		return 0;
	if (min < 1)
		min = 1;
	if (per_minute <= 0 && per_hour <= 0 && per_day <= 0)
		return want;
	pthread_mutex_lock(&b->mu);
	e = lookup(b, key, 1);
	for (int k = 0; k < 3; k++) {
		advance(&e->w[k], k, now_ms);
		if (limits[k] > 0) {
			int64_t left = (int64_t)limits[k] - (int64_t)e->w[k].sum;
			if (left < avail)
				avail = left;
		}
	}
	if (avail < min) {
		for (int k = 0; k < 3; k++)
			if (limits[k] > 0 && (int64_t)limits[k] - (int64_t)e->w[k].sum < min) {
				uint64_t t = wait_for(&e->w[k], k, limits[k], (uint64_t)min, now_ms);
				if (t > wait)
					wait = t;
			}
		pthread_mutex_unlock(&b->mu);
		*wait_ms = (int)(wait > INT32_MAX ? INT32_MAX : wait);
		return 0;
	}
	for (int k = 0; k < 3; k++) {
		e->w[k].count[e->w[k].slot % RING] += (uint32_t)avail;
		e->w[k].sum += (uint64_t)avail;
	}
	pthread_mutex_unlock(&b->mu);
	return (int)avail;
}
