/* SPDX-License-Identifier: Apache-2.0 */
/* emv_testsmtpd_map.c - bounded string-keyed table (greylist triplets,
 * per-client rate windows).  Keys are compared case-insensitively. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "emv_util.h"
#include "emv_testsmtpd.h"

#define MAP_BUCKETS 4096

struct tsd_map {
	struct tsd_map_entry *bucket[MAP_BUCKETS];
	size_t n;
	size_t max;
};

static uint32_t map_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a over lower-cased bytes */
	for (; *s; s++) {
		h ^= (uint8_t)tolower((unsigned char)*s);
		h *= 16777619u;
	}
	return h;
}

struct tsd_map *tsd_map_new(size_t max)
{
	struct tsd_map *m = emv_xcalloc(1, sizeof *m);
	m->max = max ? max : 1;
	return m;
}

void tsd_map_clear(struct tsd_map *m)
{
	for (size_t i = 0; i < MAP_BUCKETS; i++) {
		struct tsd_map_entry *e = m->bucket[i];
		while (e) {
			struct tsd_map_entry *next = e->next;
			free(e);
			e = next;
		}
		m->bucket[i] = NULL;
	}
	m->n = 0;
}

void tsd_map_free(struct tsd_map *m)
{
	if (!m)
		return;
	tsd_map_clear(m);
	free(m);
}

size_t tsd_map_size(const struct tsd_map *m)
{
	return m->n;
}

struct tsd_map_entry *tsd_map_get(struct tsd_map *m, const char *key, uint64_t now, int *created)
{
	uint32_t b = map_hash(key) % MAP_BUCKETS;
	for (struct tsd_map_entry *e = m->bucket[b]; e; e = e->next) {
		if (strcasecmp(e->key, key) == 0) {
			*created = 0;
			return e;
		}
	}
	if (m->n >= m->max)
		tsd_map_clear(m);
	size_t klen = strlen(key);
	struct tsd_map_entry *e = emv_xmalloc(sizeof *e + klen + 1);
	memcpy(e->key, key, klen + 1);
	e->t0 = now;
	e->count = 0;
	e->next = m->bucket[b];
	m->bucket[b] = e;
	m->n++;
	*created = 1;
	return e;
}
