/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_ingest_job.h - a list becomes a job in PostgreSQL (docs/design.md §2 step 1).
 *
 * The list is streamed (lib/emv_ingest.c), every row normalised and checked
 * with the same rules as the CLI (emv_address, emv_lists), de-duplicated
 * within the job, and sent to PostgreSQL with COPY.  Rows that cannot be
 * verified (bad syntax, unusable row) get their final result in the same
 * transaction, so a job is either fully ingested or not there at all.
 * Job counters are set at the end; the job moves to state "splitting".
 */
#ifndef EMV_INGEST_JOB_H
#define EMV_INGEST_JOB_H

#include <stdint.h>
#include <libpq-fe.h>
#include "emv_ingest.h"
#include "emv_lists.h"

typedef struct {
	char job_id[40];
	uint64_t rows, unique, duplicates, invalid, row_errors;
	double seconds;
	int input_error; /* on EMV_ERR: 1 when the input was unusable, 0 for a database error */
	int over_limit;	 /* on EMV_ERR: 1 when the input went over one of the limits given */
} emv_ingest_job_stats;

/* Ingest `path` ("-" = stdin) as a new job of `tenant`.  Returns EMV_OK or
 * EMV_ERR with the reason (file-level input error, or database error). */
int emv_ingest_job(PGconn *c, const emv_lists *lists, const char *tenant, const char *name, const char *path,
		   emv_ingest_job_stats *st, char *err, size_t errlen);

/* The same from an open descriptor (a pipe: the HTTP upload), read to its
 * end but never closed; `path` names it in messages. */
int emv_ingest_job_fd(PGconn *c, const emv_lists *lists, const char *tenant, const char *name, int fd, const char *path,
		      emv_ingest_job_stats *st, char *err, size_t errlen);

/* The same, with limits of its own (lim: NULL for the defaults; max_rows,
 * max_bytes and max_blank_lines bound what an untrusted input may cost:
 * over one, nothing is kept and st->over_limit says so), and with a say
 * before the job is committed: before_commit (when not NULL) runs in the job's transaction once the input has ended, and
 * returns EMV_OK to commit or EMV_ERR (with err) to roll the job back.  The
 * HTTP upload uses it to refuse a body that was cut short (the pipe's end
 * looks the same either way) and to store fields that followed the list. */
int emv_ingest_job_stream(PGconn *c, const emv_lists *lists, const char *tenant, const char *name, int fd,
			  const char *path, const emv_ingest_limits *lim,
			  int (*before_commit)(PGconn *c, const char *job_id, void *arg, char *err, size_t errlen),
			  void *arg, emv_ingest_job_stats *st, char *err, size_t errlen);

#endif
