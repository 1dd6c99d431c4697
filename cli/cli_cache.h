/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_cache.h - verify's local verdict cache file (`emailverify verify
 * --cache FILE`, docs/cache.md "The cache file"): the last final verdict of
 * each normalised address, with its evidence and the time it was made, in
 * an SQLite database.  Which entry may answer is lib/emv_cache's rule, the
 * same as the cluster's.
 *
 * Why SQLite: one file, transactions that survive a crash (WAL), several
 * processes on one file (readers never wait, writers wait up to a busy
 * timeout), an integrity check, a format that stays readable for decades,
 * and libsqlite3 in every Debian.  LMDB would be as crash-safe but needs a
 * map size chosen in advance and a lock file beside the data.
 *
 * Assumes one connection is used by one thread at a time (verify holds its
 * mutex).  Errors: functions return EMV_OK / EMV_ERR and write a message
 * naming the file into the caller's buffer; a busy file (another process
 * holds the write lock past the busy timeout) is CLI_CACHE_BUSY.
 */
#ifndef CLI_CACHE_H
#define CLI_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "emv_cache.h"
#include "emv_result.h"

#define CLI_CACHE_BUSY (-2) /* another process holds the file's write lock */

typedef struct cli_cache cli_cache;

/* Open or create the file.  A file that is not an SQLite database, or one
 * that is but is not ours, or damaged, is refused (NULL, err names the
 * file and says what is wrong). */
cli_cache *cli_cache_open(const char *path, char *err, size_t errlen);
void cli_cache_close(cli_cache *c);

/* Reads and writes are grouped in transactions (one commit per batch, not
 * per address).  begin(write 1) takes the write lock at once, so a second
 * writer waits here, never half way. */
int cli_cache_begin(cli_cache *c, int write, char *err, size_t errlen);
int cli_cache_commit(cli_cache *c, char *err, size_t errlen);
void cli_cache_rollback(cli_cache *c);

/*
 * The entry of address if it may answer now (emv_cache_servable with the
 * ages and the job's max_age, -1: none, 0: fresh): 1 and *result (the
 * stored JSON text, malloc'd, caller frees) and *verified_at; 0 when there
 * is none or it may not answer; EMV_ERR on a database error.
 */
int cli_cache_get(cli_cache *c, const char *address, const emv_cache_ages *ages, int64_t max_age_s, int64_t now,
		  char **result, int64_t *verified_at, char *err, size_t errlen);

/* Store a final verdict.  unknown is not stored, and never replaces a
 * known verdict; an older verdict never replaces a newer one.  1 stored,
 * 0 not, EMV_ERR. */
int cli_cache_put(cli_cache *c, const char *address, emv_status st, emv_reason r, int64_t verified_at,
		  const char *result, char *err, size_t errlen);

/* Remove an address's entry (emailverify forget --cache FILE): 1 if there
 * was one, 0 if not, EMV_ERR. */
int cli_cache_forget(cli_cache *c, const char *address, char *err, size_t errlen);

/* Entries in the file (for messages and tests), or -1. */
long long cli_cache_count(cli_cache *c);

#endif
