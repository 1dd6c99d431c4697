/* SPDX-License-Identifier: Apache-2.0 */
/* emv_dedup.c - the de-duplication set of one job (see emv_dedup.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emv_dedup.h"
#include "emv_util.h"

/* ------------------------------------------------------------------ */
/* De-duplication set                                                  */
/* ------------------------------------------------------------------ */

#define DEDUP_BLOCK_SHIFT 16 /* 65536 entries per block */
#define DEDUP_BLOCK (1u << DEDUP_BLOCK_SHIFT)
#define DEDUP_ARENA 1048576 /* key bytes per arena block */
#define DEDUP_MAX ((size_t)1 << 31)

struct dedup_entry {
	const char *key;
	uint64_t row;
	uint32_t len;
	uint32_t hash;
};

struct dedup_arena {
	struct dedup_arena *next;
	size_t used, size;
	char data[];
};

struct emv_dedup {
	uint32_t *slots; /* entry index + 1; 0 = empty */
	unsigned bits;
	size_t count;
	struct dedup_entry **blocks;
	size_t nblocks, blocks_cap;
	struct dedup_arena *arena;
	size_t arena_bytes;
};

/* FNV-1a, then a multiply-xorshift finaliser so the top bits are well mixed. */
static uint32_t dedup_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return (uint32_t)(h >> 32);
}

static struct dedup_entry *dedup_entry(const emv_dedup *d, uint32_t i)
{
	return &d->blocks[i >> DEDUP_BLOCK_SHIFT][i & (DEDUP_BLOCK - 1)];
}

static size_t dedup_slot(const emv_dedup *d, const char *s, size_t len, uint32_t h)
{
	size_t mask = ((size_t)1 << d->bits) - 1, i = (size_t)(h >> (32 - d->bits));

	for (;; i = (i + 1) & mask) {
		uint32_t v = d->slots[i];
		const struct dedup_entry *e;
		if (!v)
			return i;
		e = dedup_entry(d, v - 1);
		if (e->hash == h && e->len == len && memcmp(e->key, s, len) == 0)
			return i;
	}
}

static void dedup_resize(emv_dedup *d, unsigned bits)
{
	size_t i, mask = ((size_t)1 << bits) - 1;

	free(d->slots);
	d->bits = bits;
	d->slots = emv_xcalloc((size_t)1 << bits, sizeof(*d->slots));
	for (i = 0; i < d->count; i++) {
		const struct dedup_entry *e = dedup_entry(d, (uint32_t)i);
		size_t j = (size_t)(e->hash >> (32 - bits));
		while (d->slots[j])
			j = (j + 1) & mask;
		d->slots[j] = (uint32_t)i + 1;
	}
}

emv_dedup *emv_dedup_new(size_t expected)
{
	emv_dedup *d = emv_xcalloc(1, sizeof(*d));
	unsigned bits = 10;

	if (expected > DEDUP_MAX)
		expected = DEDUP_MAX;
	while (((size_t)1 << bits) * 3 / 4 < expected)
		bits++;
	dedup_resize(d, bits);
	return d;
}

void emv_dedup_free(emv_dedup *d)
{
	size_t i;

	if (!d)
		return;
	while (d->arena) {
		struct dedup_arena *next = d->arena->next;
		free(d->arena);
		d->arena = next;
	}
	for (i = 0; i < d->nblocks; i++)
		free(d->blocks[i]);
	free(d->blocks);
	free(d->slots);
	free(d);
}

static const char *dedup_copy(emv_dedup *d, const char *s, size_t len)
{
	struct dedup_arena *a = d->arena;
	char *p;

	if (!a || a->size - a->used < len) {
		size_t size = len > DEDUP_ARENA / 4 ? len : DEDUP_ARENA;
		a = emv_xmalloc(sizeof(*a) + size);
		a->size = size;
		a->used = 0;
		if (len > DEDUP_ARENA / 4 && d->arena) {
			/* a big key gets its own block behind the current one */
			a->next = d->arena->next;
			d->arena->next = a;
		} else {
			a->next = d->arena;
			d->arena = a;
		}
		d->arena_bytes += sizeof(*a) + size;
	}
	p = a->data + a->used;
	if (len)
		memcpy(p, s, len);
	a->used += len;
	return p;
}

int emv_dedup_add(emv_dedup *d, const char *addr, size_t len, uint64_t row, uint64_t *first_row)
{
	uint32_t h, idx;
	size_t i;
	struct dedup_entry *e;

	if (len > UINT32_MAX) {
		fprintf(stderr, "emv_dedup: key of %zu bytes\n", len);
		abort();
	}
	h = dedup_hash(addr, len);
	i = dedup_slot(d, addr, len, h);
	if (d->slots[i]) {
		if (first_row)
			*first_row = dedup_entry(d, d->slots[i] - 1)->row;
		return 0;
	}
	if (d->count >= DEDUP_MAX) {
		fprintf(stderr, "emv_dedup: more than %zu entries\n", DEDUP_MAX);
		abort();
	}
	idx = (uint32_t)d->count;
	if ((idx >> DEDUP_BLOCK_SHIFT) >= d->nblocks) {
		if (d->nblocks == d->blocks_cap) {
			d->blocks_cap = d->blocks_cap ? d->blocks_cap * 2 : 16;
			d->blocks = emv_xrealloc(d->blocks, d->blocks_cap * sizeof(*d->blocks));
		}
		d->blocks[d->nblocks++] = emv_xmalloc(DEDUP_BLOCK * sizeof(struct dedup_entry));
	}
	e = dedup_entry(d, idx);
	e->key = dedup_copy(d, addr, len);
	e->len = (uint32_t)len;
	e->hash = h;
	e->row = row;
	d->slots[i] = idx + 1;
	d->count++;
	if (d->count > ((size_t)1 << d->bits) * 3 / 4)
		dedup_resize(d, d->bits + 1);
	if (first_row)
		*first_row = row;
	return 1;
}

int emv_dedup_find(const emv_dedup *d, const char *addr, size_t len, uint64_t *first_row)
{
	size_t i;

	if (!d || len > UINT32_MAX)
		return 0;
	i = dedup_slot(d, addr, len, dedup_hash(addr, len));
	if (!d->slots[i])
		return 0;
	if (first_row)
		*first_row = dedup_entry(d, d->slots[i] - 1)->row;
	return 1;
}

size_t emv_dedup_count(const emv_dedup *d)
{
	return d ? d->count : 0;
}

size_t emv_dedup_memory(const emv_dedup *d)
{
	if (!d)
		return 0;
	return sizeof(*d) + ((size_t)1 << d->bits) * sizeof(*d->slots) +
	       d->nblocks * DEDUP_BLOCK * sizeof(struct dedup_entry) + d->blocks_cap * sizeof(*d->blocks) +
	       d->arena_bytes;
}
