/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_dedup.h - the ingest de-duplication set (emv_ingest.h includes it).
 */
#ifndef EMV_DEDUP_H
#define EMV_DEDUP_H

#include <stddef.h>
#include <stdint.h>

/*
 * emv_dedup: the set of normalised addresses seen in one job, each mapped
 * to the row where it first appeared.  Keys are compared byte for byte (the
 * caller normalises; local parts are case-sensitive).  Open addressing with
 * linear probing over 32-bit entry indexes (load factor at most 3/4),
 * entries in fixed blocks of 65536 and key bytes in an arena, so nothing
 * moves once added and memory per entry is 29 to 35 bytes (24 for the
 * entry, 5 to 11 for the table as it fills) plus the key
 * (emv_dedup_memory()).  At most 2^31 entries (more aborts).
 */
typedef struct emv_dedup emv_dedup;

/* expected: entries to size the table for (0: grow from small). */
emv_dedup *emv_dedup_new(size_t expected);
void emv_dedup_free(emv_dedup *d);
/* Returns 1 when addr is new (recorded with row), 0 when already present:
 * then *first_row (if not NULL) gets the row it was first added with. */
int emv_dedup_add(emv_dedup *d, const char *addr, size_t len, uint64_t row, uint64_t *first_row);
/* 1 and *first_row when present, else 0. */
int emv_dedup_find(const emv_dedup *d, const char *addr, size_t len, uint64_t *first_row);
size_t emv_dedup_count(const emv_dedup *d);
size_t emv_dedup_memory(const emv_dedup *d);

#endif
