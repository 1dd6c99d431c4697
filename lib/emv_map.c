/* SPDX-License-Identifier: Apache-2.0 */
/* emv_map.c - the string-keyed hash map (see emv_map.h). */
#include "emv_map.h"

#include <stdlib.h>
#include <string.h>

#include "emv_util.h"

struct slot {
	char *key; /* NULL: empty */
	uint32_t hash;
	void *value;
};

struct emv_map {
	struct slot *s;
	size_t cap; /* a power of two */
	size_t n;
};

uint32_t emv_map_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

emv_map *emv_map_new(size_t expected)
{
	emv_map *m = emv_xcalloc(1, sizeof *m);
	m->cap = 16;
	while (m->cap / 4 * 3 < expected)
		m->cap *= 2;
	m->s = emv_xcalloc(m->cap, sizeof *m->s);
	return m;
}

void emv_map_free(emv_map *m, void (*free_value)(void *))
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->s[i].key)
			continue;
		free(m->s[i].key);
		if (free_value)
			free_value(m->s[i].value);
	}
	free(m->s);
	free(m);
}

/* The slot holding key, or the empty one where it would go. */
static size_t find(const emv_map *m, const char *key, uint32_t h)
{
	size_t mask = m->cap - 1, i = h & mask;
	while (m->s[i].key && (m->s[i].hash != h || strcmp(m->s[i].key, key) != 0))
		i = (i + 1) & mask;
	return i;
}

static void grow(emv_map *m)
{
	struct slot *old = m->s;
	size_t oldcap = m->cap;
	m->cap *= 2;
	m->s = emv_xcalloc(m->cap, sizeof *m->s);
	for (size_t i = 0; i < oldcap; i++) {
		size_t mask = m->cap - 1, j;
		if (!old[i].key)
			continue;
		for (j = old[i].hash & mask; m->s[j].key; j = (j + 1) & mask)
			;
		m->s[j] = old[i];
	}
	free(old);
}

void *emv_map_get(const emv_map *m, const char *key)
{
	size_t i = find(m, key, emv_map_hash(key, strlen(key)));
	return m->s[i].key ? m->s[i].value : NULL;
}

int emv_map_has(const emv_map *m, const char *key)
{
	return m->s[find(m, key, emv_map_hash(key, strlen(key)))].key != NULL;
}

void **emv_map_slot(emv_map *m, const char *key, int *added)
{
	uint32_t h = emv_map_hash(key, strlen(key));
	size_t i = find(m, key, h);
	if (m->s[i].key) {
		if (added)
			*added = 0;
		return &m->s[i].value;
	}
	if ((m->n + 1) * 4 > m->cap * 3) {
		grow(m);
		i = find(m, key, h);
	}
	m->s[i].key = emv_xstrdup(key);
	m->s[i].hash = h;
	m->s[i].value = NULL;
	m->n++;
	if (added)
		*added = 1;
	return &m->s[i].value;
}

void *emv_map_set(emv_map *m, const char *key, void *value)
{
	void **v = emv_map_slot(m, key, NULL), *old = *v;
	*v = value;
	return old;
}

void *emv_map_remove(emv_map *m, const char *key)
{
	size_t mask = m->cap - 1, i = find(m, key, emv_map_hash(key, strlen(key))), j;
	void *value;
	if (!m->s[i].key)
		return NULL;
	value = m->s[i].value;
	free(m->s[i].key);
	m->s[i].key = NULL;
	m->n--;
	/* backward shift: move up every later entry of the run that the hole
	 * now separates from its home slot */
	for (j = (i + 1) & mask; m->s[j].key; j = (j + 1) & mask) {
		size_t home = m->s[j].hash & mask;
		/* j's home lies cyclically in (i, j]: it stays */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		m->s[i] = m->s[j];
		m->s[j].key = NULL;
		i = j;
	}
	return value;
}

size_t emv_map_count(const emv_map *m)
{
	return m ? m->n : 0;
}

int emv_map_next(const emv_map *m, size_t *it, const char **key, void **value)
{
	for (; *it < m->cap; (*it)++) {
		if (m->s[*it].key) {
			if (key)
				*key = m->s[*it].key;
			if (value)
				*value = m->s[*it].value;
			(*it)++;
			return 1;
		}
	}
	return 0;
}
