/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_map.h - the one string-keyed hash map: key (a NUL-terminated string,
 * copied) -> void *.  Open addressing with linear probing, FNV-1a hashes,
 * grows at 3/4 load, removal by backward shift (no tombstones).  Not thread
 * safe: callers lock.  Bounds are the caller's: emv_map_count() says how
 * full it is.  OOM aborts, as everywhere (emv_xmalloc).
 *
 * Tables that are deliberately different keep their own code: the ingest
 * de-duplication set (emv_dedup: arena keys, 32-bit entry indexes, billions
 * of rows), the read-only data-file sets of emv_lists/emv_providers (built
 * once, compact, suffix lookups), fixed-size caches that evict (the API's
 * tenant cache keyed by a 32-byte hash, the peer-address rate limiter).
 */
#ifndef EMV_MAP_H
#define EMV_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct emv_map emv_map;

/* FNV-1a (32 bit) of s[0..len): the hash the map uses, for callers that
 * shard by key the same way. */
uint32_t emv_map_hash(const char *s, size_t len);

/* expected: entries to size for (0: start small). */
emv_map *emv_map_new(size_t expected);
/* Frees the map and its key copies; free_value (may be NULL) is called on
 * every value. */
void emv_map_free(emv_map *m, void (*free_value)(void *));

/* The value stored under key, NULL when absent (or stored as NULL). */
void *emv_map_get(const emv_map *m, const char *key);
/* Whether key is present. */
int emv_map_has(const emv_map *m, const char *key);
/* The place of key's value, added (holding NULL) when absent, *added (may
 * be NULL) saying which.  Valid until the next insertion or removal. */
void **emv_map_slot(emv_map *m, const char *key, int *added);
/* Store value under key; the previous value, or NULL. */
void *emv_map_set(emv_map *m, const char *key, void *value);
/* Remove key; its value, or NULL. */
void *emv_map_remove(emv_map *m, const char *key);
size_t emv_map_count(const emv_map *m);

/* Every entry, in no order: size_t it = 0; while (emv_map_next(m, &it,
 * &key, &value)) ...  (no insertion or removal meanwhile). */
int emv_map_next(const emv_map *m, size_t *it, const char **key, void **value);

#endif
