/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_export.h - a job's results out of PostgreSQL (docs/design.md §2 step 5).
 *
 * One row per input row, in input order, streamed from a server-side
 * cursor: memory stays bounded whatever the job's size, and the first rows
 * are out before the last are read.  Duplicates carry the verdict of the
 * row they repeat; rows not final yet say so (status unknown, reason
 * "pending").  The rows are written by lib/emv_format.h, as `emailverify
 * verify` writes them: the same CSV columns and JSON Lines keys.
 *
 * The cursor lives in a read-only transaction on the caller's connection:
 * use that connection for nothing else until emv_export_close().
 */
#ifndef EMV_EXPORT_H
#define EMV_EXPORT_H

#include <stdint.h>
#include <stdio.h>
#include <libpq-fe.h>
#include "emv_lists.h"

typedef enum { EMV_EXPORT_CSV = 0, EMV_EXPORT_JSONL } emv_export_format;

typedef struct {
	emv_export_format format;
	unsigned status_mask;	/* 1u << EMV_STATUS_*: only rows with these statuses; 0 = all */
	const emv_lists *lists; /* for did_you_mean; NULL leaves the column empty */
	int fetch_rows;		/* rows per FETCH (default 5000) */
	int keep_formulas;	/* CSV: write cells that start with = + - @ TAB CR as they are
	                            (default 0: quoted, with a ' in front; emv_csv_is_formula) */
} emv_export_params;

typedef struct emv_export emv_export;

/* Called with formatted bytes (whole rows); return 0 to go on, -1 to stop. */
typedef int (*emv_export_write_fn)(void *arg, const char *data, size_t len);

void emv_export_params_default(emv_export_params *p);

/* Parse "deliverable,risky" into a status mask; -1 with err naming the bad word. */
int emv_export_parse_statuses(const char *list, unsigned *mask, char *err, size_t errlen);

/* Start exporting job_id; NULL with err when the job does not exist or the
 * query fails. */
emv_export *emv_export_open(PGconn *c, const char *job_id, const emv_export_params *p, char *err, size_t errlen);

/* Format the next rows (the CSV header comes with the first call) and hand
 * them to fn in one piece.  Returns the number of rows (> 0), 0 at the end,
 * -1 on a database error or when fn asked to stop (err says which). */
long emv_export_next(emv_export *x, emv_export_write_fn fn, void *arg, char *err, size_t errlen);

/* Rows formatted so far. */
uint64_t emv_export_rows(const emv_export *x);

/* End the transaction and free x (NULL is fine). */
void emv_export_close(emv_export *x);

/* The whole export into out; *rows gets the row count. */
int emv_export_to_file(PGconn *c, const char *job_id, const emv_export_params *p, FILE *out, uint64_t *rows, char *err,
		       size_t errlen);

/*
 * A job's rows with the verdict each shows, for a query's FROM: addresses
 * a, each with the result r it shows (a duplicate: its first row's).  One
 * primary-key lookup of the result per row, whatever the statistics say:
 * the results of a job written since the last ANALYZE look like "about one
 * row" to the planner, and a plain join then became a nested loop over a
 * materialised scan of them, O(n^2) (a 200,000-row export ran for over 20
 * minutes).  OFFSET 0 keeps the subquery from being flattened into it.
 */
#define EMV_EXPORT_ROWS_FROM                                           \
	" FROM addresses a LEFT JOIN LATERAL (SELECT * FROM results r" \
	"  WHERE r.job_id = a.job_id AND r.address_id = coalesce(a.duplicate_of, a.id) OFFSET 0) r ON true"

/* A final row's verified_at as Unix seconds, for a SELECT list: when the
 * cached verdict was made (results.verified_at), else when the job's own
 * became final (a final result is never updated again). */
#define EMV_EXPORT_VERIFIED_AT " floor(extract(epoch FROM coalesce(r.verified_at, r.updated_at)))::bigint"

/* The detail of a row whose verdict is not final yet (reason "pending"):
 * temporary, a temporary verdict is stored (its retry waits). */
const char *emv_export_pending_detail(int temporary);

#endif
