/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_db.h - the coordinator's PostgreSQL schema (docs/design.md §6) and its
 * versioned migrations.
 *
 * The schema is owned here: every migration is one SQL script with a
 * version number, applied in order inside one transaction each, recorded in
 * schema_migrations.  emv_db_migrate() takes a transaction-scoped advisory
 * lock first, so coordinators starting together apply each migration once.
 * A database newer than this binary (a version we do not know) is refused.
 *
 * Errors: functions return EMV_OK / EMV_ERR and write libpq's message, with
 * the step that failed, into the caller's buffer.
 */
#ifndef EMV_DB_H
#define EMV_DB_H

#include <stddef.h>
#include <libpq-fe.h>
#include "emv_policy.h"

/* Connect (blocking; for start-up and admin commands).  conninfo is a
 * libpq connection string or URI; NULL means $DATABASE_URL. */
PGconn *emv_db_connect(const char *conninfo, char *err, size_t errlen);

/* Apply pending migrations; *version gets the schema version afterwards. */
int emv_db_migrate(PGconn *c, int *version, char *err, size_t errlen);

/* emv_db_exec()'s want for "either PGRES_COMMAND_OK or PGRES_TUPLES_OK"
 * (nobody wants PGRES_EMPTY_QUERY). */
#define EMV_DB_OK_ANY PGRES_EMPTY_QUERY

/*
 * Exec and check, the one copy: run sql with nparams text parameters
 * (params NULL: PQexec, so sql may be a script of several statements),
 * check that the result's status is want (PGRES_COMMAND_OK, PGRES_TUPLES_OK
 * or EMV_DB_OK_ANY), and return the result for the caller to PQclear.  On
 * failure the result is cleared, NULL returned and err (may be NULL) says
 * "WHAT: libpq's message (SQLSTATE xxxxx)" on one line (the message's
 * DETAIL or CONTEXT lines joined with ';'), WHAT formatted from fmt.
 */
PGresult *emv_db_exec(PGconn *c, const char *sql, int nparams, const char *const *params, ExecStatusType want,
		      char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 8, 9)));

/* emv_db_exec() with binary parameters (lengths and formats as PQexecParams). */
PGresult *emv_db_exec_bin(PGconn *c, const char *sql, int nparams, const char *const *params, const int *lengths,
			  const int *formats, ExecStatusType want, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 10, 11)));

/* emv_db_exec() for a statement whose result is not needed: EMV_OK or EMV_ERR. */
int emv_db_run(PGconn *c, const char *sql, int nparams, const char *const *params, char *err, size_t errlen,
	       const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* The newest schema version this binary knows. */
int emv_db_schema_version(void);

/* The verdict policy (docs/policy.md) of a jobs row whose columns name_col
 * and text_col are jobs.policy and jobs.policy_text: the preset, or the
 * stored file parsed (free with emv_policy_free); a broken one is logged
 * and read as the default.  Never NULL. */
const emv_policy *emv_db_job_policy(PGresult *r, int row, int name_col, int text_col);

/* A new job's policy: p, or (NULL) the tenant's default, else the
 * built-in default.  A tenant's default: p, or NULL to remove it. */
int emv_db_job_policy_set(PGconn *c, const char *job_id, const emv_policy *p, char *err, size_t errlen);
int emv_db_tenant_policy_set(PGconn *c, const char *tenant, const emv_policy *p, char *err, size_t errlen);

/* Delete a job and all its rows (addresses, results, the verdict cache
 * entries it made) in one transaction;
 * with tenant non-NULL only that tenant's job.  *found says whether it
 * existed; *rows (may be NULL) gets its row count.  (The schema has no cascading keys: see migration 3.) */
/* Rows deleted per transaction by emv_db_delete_job_step (a large job is
 * deleted in the background, batch after batch, never in one long
 * transaction that holds locks and WAL for everyone). */
#define EMV_DB_DELETE_BATCH 10000

/* One batch of a job's deletion (at most EMV_DB_DELETE_BATCH rows, its own
 * transaction); *finished once the job row itself is gone.  Safe to
 * repeat, also after a restart. */
int emv_db_delete_job_step(PGconn *c, const char *job_id, int *finished, char *err, size_t errlen);

int emv_db_delete_job(PGconn *c, const char *job_id, const char *tenant, int *found, long long *rows, char *err,
		      size_t errlen);

/* A second connection with the same parameters as c (for a cursor that must
 * outlive the transactions of c); NULL with err when it fails. */
PGconn *emv_db_clone(PGconn *c, char *err, size_t errlen);

#endif
