/* SPDX-License-Identifier: Apache-2.0 */
/* emv_db.c - schema migrations (see emv_db.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_db.h"
#include "emv_util.h"

/* Lock id for pg_advisory_xact_lock: "emv" + 1. */
#define MIGRATION_LOCK 0x656d7601LL

struct migration {
	int version;
	const char *name;
	const char *sql;
};

/*
 * Version 1: docs/design.md §6.  Results are unique per (job, address); "final"
 * separates verdicts that a later attempt must never overwrite from
 * temporary ones it replaces.  Counters live on jobs and move in the same
 * transaction as the results they count.
 */
static const struct migration migrations[] = {
	{ 1, "initial schema",
	  "CREATE TABLE api_tokens ("
	  "  id bigserial PRIMARY KEY,"
	  "  tenant text NOT NULL,"
	  "  name text NOT NULL DEFAULT '',"
	  "  token_sha256 bytea NOT NULL UNIQUE,"
	  "  created_at timestamptz NOT NULL DEFAULT now(),"
	  "  revoked_at timestamptz);"
	  "CREATE TABLE jobs ("
	  "  id text PRIMARY KEY,"
	  "  tenant text NOT NULL,"
	  "  name text NOT NULL DEFAULT '',"
	  "  state text NOT NULL DEFAULT 'ingesting' CHECK (state IN"
	  "    ('ingesting', 'splitting', 'running', 'done', 'cancelled', 'failed')),"
	  "  rows_total bigint NOT NULL DEFAULT 0,"
	  "  addresses_total bigint NOT NULL DEFAULT 0,"
	  "  n_final bigint NOT NULL DEFAULT 0,"
	  "  n_unusable bigint NOT NULL DEFAULT 0," /* rows final at ingest (syntax, row errors) */
	  "  n_deliverable bigint NOT NULL DEFAULT 0,"
	  "  n_undeliverable bigint NOT NULL DEFAULT 0,"
	  "  n_risky bigint NOT NULL DEFAULT 0,"
	  "  n_unknown bigint NOT NULL DEFAULT 0,"
	  "  split_done bigint NOT NULL DEFAULT 0," /* addresses batched so far */
	  "  split_after_domain text,"		    /* keyset cursor of the split: a restart */
	  "  split_after_id bigint,"		    /* resumes after (domain, id) */
	  "  callback_url text,"
	  "  callback_secret text,"
	  "  created_at timestamptz NOT NULL DEFAULT now(),"
	  "  finished_at timestamptz);"
	  "CREATE INDEX jobs_tenant ON jobs (tenant, created_at DESC);"
	  "CREATE TABLE addresses ("
	  "  job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
	  "  id bigint NOT NULL,"  /* the input row number */
	  "  input text NOT NULL," /* the original row, verbatim */
	  "  address text,"	   /* normalised; as given (sanitised) when invalid */
	  "  domain text,"
	  "  flags integer NOT NULL DEFAULT 0,"
	  "  duplicate_of bigint," /* first row with the same address */
	  "  error_reason text,"   /* invalid_syntax / input_error; NULL when usable */
	  "  error text,"	   /* why the row could not be used */
	  "  PRIMARY KEY (job_id, id));"
	  "CREATE INDEX addresses_domain ON addresses (job_id, domain);"
	  "CREATE TABLE results ("
	  "  job_id text NOT NULL,"
	  "  address_id bigint NOT NULL,"
	  "  status text NOT NULL CHECK (status IN ('deliverable', 'undeliverable', 'risky', 'unknown')),"
	  "  reason text NOT NULL,"
	  "  final boolean NOT NULL,"
	  "  flags integer NOT NULL DEFAULT 0,"
	  "  mx_host text, mx_ip text, source_ip text, region text, tls text,"
	  "  catch_all boolean,"
	  "  smtp_code integer, enhanced_code text, reply text,"
	  "  attempts integer NOT NULL DEFAULT 0,"
	  "  duration_ms integer NOT NULL DEFAULT 0,"
	  "  updated_at timestamptz NOT NULL DEFAULT now(),"
	  "  PRIMARY KEY (job_id, address_id),"
	  "  FOREIGN KEY (job_id, address_id) REFERENCES addresses (job_id, id) ON DELETE CASCADE);"
	  "CREATE TABLE domains ("
	  "  domain text PRIMARY KEY,"
	  "  mx text[],"
	  "  provider text,"
	  "  catch_all boolean,"
	  "  catch_all_expires timestamptz,"
	  "  updated_at timestamptz NOT NULL DEFAULT now());"
	  "CREATE TABLE ip_state ("
	  "  ip text NOT NULL,"
	  "  provider text NOT NULL,"
	  "  region text NOT NULL DEFAULT '',"
	  "  state text NOT NULL CHECK (state IN ('healthy', 'throttled', 'quarantined', 'held')),"
	  "  until timestamptz,"
	  "  strikes integer NOT NULL DEFAULT 0,"
	  "  last_reply text,"
	  "  updated_at timestamptz NOT NULL DEFAULT now(),"
	  "  PRIMARY KEY (ip, provider));" },
	/* Version 2: the verdict's explanation travels with it (per-result
	 * evidence on the wire), and exports read it back. */
	{ 2, "results.detail", "ALTER TABLE results ADD COLUMN detail text;" },
	/* Version 3: webhooks (docs/api.md).  A delivery is one event of one job
	 * (completion, or progress past a percentage), its body fixed when it
	 * is queued so every retry signs the same bytes; each try is an
	 * attempt row.  Both go with their job. */
	{ 3, "webhook deliveries",
	  "CREATE TABLE webhook_deliveries ("
	  "  id bigserial PRIMARY KEY,"
	  "  job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
	  "  event text NOT NULL CHECK (event IN ('job.progress', 'job.completed')),"
	  "  percent integer NOT NULL,"
	  "  payload text NOT NULL,"
	  "  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),"
	  "  attempts integer NOT NULL DEFAULT 0,"
	  "  next_attempt_at timestamptz NOT NULL DEFAULT now(),"
	  "  created_at timestamptz NOT NULL DEFAULT now(),"
	  "  delivered_at timestamptz,"
	  "  UNIQUE (job_id, event, percent));"
	  "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';"
	  "CREATE TABLE webhook_attempts ("
	  "  delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,"
	  "  attempt integer NOT NULL,"
	  "  at timestamptz NOT NULL DEFAULT now(),"
	  "  http_status integer," /* NULL: no HTTP answer */
	  "  error text,"
	  "  duration_ms integer NOT NULL DEFAULT 0,"
	  "  PRIMARY KEY (delivery_id, attempt));"
	  /* the highest percentage announced: finding jobs owing a webhook
	   * reads this index, not every job */
	  "ALTER TABLE jobs ADD COLUMN notified_percent integer NOT NULL DEFAULT 0;"
	  "CREATE INDEX jobs_webhook_owed ON jobs (id) WHERE callback_url IS NOT NULL AND notified_percent < 100;" },
	/* Version 4: bulk paths without per-row triggers.  A foreign key check
	 * is one query per row: on a 1,000,000-row ingest and its results they
	 * cost about as much as the rows themselves.  Rows only ever enter
	 * through ingest (inside the job's own transaction) and the sink (which
	 * joins addresses), and emv_db_delete_job removes a job's rows in one
	 * transaction, so the keys guarded nothing those paths do not.  The
	 * split reads a job in one sorted pass; (job_id, domain) served only
	 * its old chunked queries. */
	{ 4, "bulk paths: no per-row foreign keys, no domain index",
	  "ALTER TABLE results DROP CONSTRAINT IF EXISTS results_job_id_address_id_fkey;"
	  "ALTER TABLE addresses DROP CONSTRAINT IF EXISTS addresses_job_id_fkey;"
	  "DROP INDEX IF EXISTS addresses_domain;" },
	/* Version 5: the pool's reputation as workers publish it (docs/regions.md):
	 * who owns the address, counters and when the state began.  Rows with
	 * provider '' are the IP as a whole: its region learns its addresses
	 * from them. */
	{ 5, "ip_state: worker, counters, since",
	  "ALTER TABLE ip_state ADD COLUMN worker text NOT NULL DEFAULT '',"
	  "  ADD COLUMN since timestamptz,"
	  "  ADD COLUMN rcpts bigint NOT NULL DEFAULT 0,"
	  "  ADD COLUMN blocks bigint NOT NULL DEFAULT 0,"
	  "  ADD COLUMN sessions bigint NOT NULL DEFAULT 0,"
	  "  ADD COLUMN rate_permille integer NOT NULL DEFAULT 1000;"
	  "CREATE INDEX ip_state_region ON ip_state (region, provider);" },
	/* Version 6: POST /v1/jobs with an Idempotency-Key header: a retry of
	 * an upload whose answer was lost gets the first job, not a second
	 * one.  A key is the tenant's; it is reused after 24 hours. */
	{ 6, "jobs: idempotency keys",
	  "ALTER TABLE jobs ADD COLUMN idempotency_key text;"
	  "CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;" },
	/* Version 7: a large job is deleted in the background, in bounded
	 * batches (docs/api.md "DELETE"): meanwhile it is 'deleting'. */
	{ 7, "jobs: state deleting",
	  "ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_state_check;"
	  "ALTER TABLE jobs ADD CONSTRAINT jobs_state_check CHECK (state IN"
	  "  ('ingesting', 'splitting', 'running', 'done', 'cancelled', 'failed', 'deleting'));" },
	/* Version 8: the verdict policy (docs/policy.md).  A job keeps the
	 * policy it was created with (a preset's name, or a policy file's name
	 * and text), so its export reads the same whenever it is made; a
	 * tenant may have a default of its own. */
	{ 8, "verdict policies",
	  "ALTER TABLE jobs ADD COLUMN policy text NOT NULL DEFAULT 'marketing',"
	  "  ADD COLUMN policy_text text;"
	  "CREATE TABLE tenant_settings ("
	  "  tenant text PRIMARY KEY,"
	  "  policy text,"
	  "  policy_text text,"
	  "  updated_at timestamptz NOT NULL DEFAULT now());" },
	/* Version 9: the verdict cache (docs/cache.md, lib/emv_cache.h).  The
	 * last final verdict of each normalised address with its evidence,
	 * per tenant (scope = the tenant) or shared by every tenant
	 * (cache_scope = global: scope = '*'); tenant and job_id say where it
	 * came from, so that deleting a tenant's or a job's data deletes what
	 * it put there.  A job may shorten the ages (max_age_s; 0: fresh, asks
	 * everything again); its rows answered from the cache are counted in
	 * n_cached and marked in results (cached, verified_at: when the cached
	 * verdict was made; a row the job asked itself was made at updated_at). */
	{ 9, "verdict cache",
	  "CREATE TABLE verdict_cache ("
	  "  scope text NOT NULL,"
	  "  address text NOT NULL,"
	  "  status text NOT NULL CHECK (status IN ('deliverable', 'undeliverable', 'risky')),"
	  "  reason text NOT NULL,"
	  "  flags integer NOT NULL DEFAULT 0,"
	  "  detail text,"
	  "  mx_host text, mx_ip text, source_ip text, region text, tls text,"
	  "  catch_all boolean,"
	  "  smtp_code integer, enhanced_code text, reply text,"
	  "  attempts integer NOT NULL DEFAULT 0,"
	  "  duration_ms integer NOT NULL DEFAULT 0,"
	  "  verified_at timestamptz NOT NULL,"
	  "  tenant text NOT NULL,"
	  "  job_id text,"
	  "  PRIMARY KEY (scope, address));"
	  "CREATE INDEX verdict_cache_tenant ON verdict_cache (tenant);"
	  "CREATE INDEX verdict_cache_job ON verdict_cache (job_id);"
	  "ALTER TABLE jobs ADD COLUMN max_age_s bigint,"
	  "  ADD COLUMN n_cached bigint NOT NULL DEFAULT 0;"
	  "ALTER TABLE results ADD COLUMN cached boolean NOT NULL DEFAULT false,"
	  "  ADD COLUMN verified_at timestamptz;" },
	/* Version 10: what workers learnt per MX host and domain, as published on
	 * the compacted topic emailverify.domain-state (lib/emv_domstate.h), for
	 * operators: the router keeps the newest message of each (kind, name).
	 * Each value has the time it was observed; NULL: not known.  The
	 * checks refuse what no worker may publish. */
	{ 10, "domain_state",
	  "CREATE TABLE domain_state ("
	  "  kind text NOT NULL CHECK (kind IN ('host', 'domain')),"
	  "  name text NOT NULL,"
	  "  worker text NOT NULL DEFAULT '',"
	  "  rcpt_per_txn integer CHECK (rcpt_per_txn >= 1),"
	  "  rcpt_per_txn_at timestamptz,"
	  "  errors_per_session integer CHECK (errors_per_session >= 1),"
	  "  errors_per_session_at timestamptz,"
	  "  sessions_ok integer CHECK (sessions_ok >= 1),"
	  "  sessions_ok_at timestamptz,"
	  "  backoff_until timestamptz,"
	  "  backoff_ms integer CHECK (backoff_ms >= 0),"
	  "  accepts_all boolean,"
	  "  accepts_all_at timestamptz,"
	  "  catch_all boolean,"
	  "  catch_all_at timestamptz,"
	  "  updated_at timestamptz NOT NULL,"
	  "  PRIMARY KEY (kind, name));" },
	/* Version 11: a job's time limits (coordinator/emv_deadline.h).  At
	 * deadline_at, or straggler_wait_s after answered_at (when every
	 * address had its first answer: n_answered reached addresses_total),
	 * every row without a final verdict becomes final unknown and the job
	 * is done.  A result's retry_at says when its retry is due, for the
	 * progress's ETA.  Jobs from before have no limits (NULL, 0). */
	{ 11, "jobs: deadline and straggler wait",
	  "ALTER TABLE jobs ADD COLUMN deadline_at timestamptz,"
	  "  ADD COLUMN straggler_wait_s integer NOT NULL DEFAULT 0 CHECK (straggler_wait_s >= 0),"
	  "  ADD COLUMN n_answered bigint NOT NULL DEFAULT 0,"
	  "  ADD COLUMN answered_at timestamptz;"
	  "CREATE INDEX jobs_limits ON jobs (id) WHERE state IN ('splitting', 'running')"
	  "  AND (deadline_at IS NOT NULL OR straggler_wait_s > 0);"
	  "ALTER TABLE results ADD COLUMN retry_at timestamptz;" },
};

#define NMIGRATIONS (sizeof migrations / sizeof migrations[0])

int emv_db_schema_version(void)
{
	return migrations[NMIGRATIONS - 1].version;
}

/* Server NOTICEs ("relation already exists, skipping") go to the debug log,
 * not to stderr. */
static void notice(void *arg, const char *msg)
{
	char buf[512];
	emv_strlcpy(buf, msg, sizeof buf);
	emv_log(EMV_LOG_DEBUG, "db", "%s", emv_trim(buf));
}

PGconn *emv_db_connect(const char *conninfo, char *err, size_t errlen)
{
	PGconn *c;
	if (!conninfo)
		conninfo = getenv("DATABASE_URL");
	if (!conninfo || !*conninfo) {
		emv_set_err(err, errlen, "no database: give a connection string or set DATABASE_URL");
		return NULL;
	}
	c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		/* libpq messages end in a newline */
		char msg[512];
		emv_strlcpy(msg, PQerrorMessage(c), sizeof msg);
		emv_trim(msg);
		emv_set_err(err, errlen, "connecting to PostgreSQL: %s", msg);
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, notice, NULL);
	return c;
}

int emv_db_delete_job(PGconn *c, const char *job_id, const char *tenant, int *found, long long *rows, char *err,
		      size_t errlen)
{
	const char *v[2] = { job_id, tenant };
	PGresult *r;
	int ok;

	*found = 0;
	r = PQexec(c, "BEGIN");
	PQclear(r);
	/* the job row first: it locks the job against a concurrent sink */
	r = emv_db_exec(c,
			tenant ? "DELETE FROM jobs WHERE id = $1 AND tenant = $2 RETURNING rows_total"
			       : "DELETE FROM jobs WHERE id = $1 RETURNING rows_total",
			tenant ? 2 : 1, v, PGRES_TUPLES_OK, err, errlen, "deleting job %s", job_id);
	ok = r != NULL;
	*found = ok && PQntuples(r) == 1;
	if (*found && rows)
		*rows = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	/* and the verdict cache entries the job put there (an entry a later
	 * job verified again names that job) */
	for (int i = 0; ok && *found && i < 3; i++)
		ok = emv_db_run(c,
				i == 0	 ? "DELETE FROM results WHERE job_id = $1"
				: i == 1 ? "DELETE FROM addresses WHERE job_id = $1"
					 : "DELETE FROM verdict_cache WHERE job_id = $1",
				1, v, err, errlen, "deleting job %s", job_id) == EMV_OK;
	if (ok)
		ok = emv_db_run(c, "COMMIT", 0, NULL, err, errlen, "deleting job %s", job_id) == EMV_OK;
	else
		PQclear(PQexec(c, "ROLLBACK"));
	return ok ? EMV_OK : EMV_ERR;
}

/* One statement in its own transaction (autocommit): its row count, or -1. */
static long long exec_count(PGconn *c, const char *sql, const char *job_id, char *err, size_t errlen)
{
	const char *v[2] = { job_id, NULL };
	char lim[16];
	PGresult *r;
	long long n;
	snprintf(lim, sizeof lim, "%d", EMV_DB_DELETE_BATCH);
	v[1] = lim;
	if (!(r = emv_db_exec(c, sql, 2, v, PGRES_COMMAND_OK, err, errlen, "deleting job %s", job_id)))
		return -1;
	n = atoll(PQcmdTuples(r));
	PQclear(r);
	return n;
}

int emv_db_delete_job_step(PGconn *c, const char *job_id, int *finished, char *err, size_t errlen)
{
	/* addresses first: the sink stores a result only for an address that
	 * exists, so once they are gone no new result can come; then the
	 * results; then the job (its webhook deliveries cascade) */
	static const char *const steps[] = {
		"DELETE FROM addresses WHERE job_id = $1 AND id IN "
		"(SELECT id FROM addresses WHERE job_id = $1 LIMIT $2::int)",
		"DELETE FROM results WHERE job_id = $1 AND address_id IN "
		"(SELECT address_id FROM results WHERE job_id = $1 LIMIT $2::int)",
		/* the verdict cache entries it put there, last: a result the
		 * sink stores meanwhile may still add one */
		"DELETE FROM verdict_cache WHERE job_id = $1 AND (scope, address) IN "
		"(SELECT scope, address FROM verdict_cache WHERE job_id = $1 LIMIT $2::int)",
	};
	const char *v[1] = { job_id };
	*finished = 0;
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		long long n = exec_count(c, steps[i], job_id, err, errlen);
		if (n < 0)
			return EMV_ERR;
		if (n > 0)
			return EMV_OK; /* one batch per call */
	}
	if (emv_db_run(c, "DELETE FROM jobs WHERE id = $1", 1, v, err, errlen, "deleting job %s", job_id) != EMV_OK)
		return EMV_ERR;
	*finished = 1;
	return EMV_OK;
}

PGconn *emv_db_clone(PGconn *c, char *err, size_t errlen)
{
	PQconninfoOption *opts = PQconninfo(c), *o;
	const char *keys[64], *vals[64];
	int n = 0;
	PGconn *d;

	for (o = opts; o && o->keyword && n < 63; o++)
		if (o->val && *o->val) {
			keys[n] = o->keyword;
			vals[n++] = o->val;
		}
	keys[n] = vals[n] = NULL;
	d = PQconnectdbParams(keys, vals, 0);
	PQconninfoFree(opts);
	if (PQstatus(d) != CONNECTION_OK) {
		char msg[512];
		emv_strlcpy(msg, PQerrorMessage(d), sizeof msg);
		emv_set_err(err, errlen, "connecting to PostgreSQL: %s", emv_trim(msg));
		PQfinish(d);
		return NULL;
	}
	PQsetNoticeProcessor(d, notice, NULL);
	return d;
}

static PGresult *vexec(PGconn *c, const char *sql, int nparams, const char *const *params, const int *lengths,
		       const int *formats, ExecStatusType want, char *err, size_t errlen, const char *fmt, va_list ap)
	__attribute__((format(printf, 10, 0)));

static PGresult *vexec(PGconn *c, const char *sql, int nparams, const char *const *params, const int *lengths,
		       const int *formats, ExecStatusType want, char *err, size_t errlen, const char *fmt, va_list ap)
{
	PGresult *r = params ? PQexecParams(c, sql, nparams, NULL, params, lengths, formats, 0) : PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	char what[256], msg[512];
	const char *state, *p;
	size_t n = 0;

	if (want == EMV_DB_OK_ANY ? st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK : st == want)
		return r;
	if (err && errlen) {
		vsnprintf(what, sizeof what, fmt, ap);
		/* one line: DETAIL, CONTEXT... joined with "; " */
		for (p = r ? PQresultErrorMessage(r) : PQerrorMessage(c); *p && n + 3 < sizeof msg; p++) {
			if (*p != '\n')
				msg[n++] = *p;
			else if (p[1])
				msg[n++] = ';', msg[n++] = ' ';
		}
		msg[n] = '\0';
		emv_trim(msg);
		if (!*msg)
			snprintf(msg, sizeof msg, "unexpected %s", PQresStatus(st));
		state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		if (state && *state)
			emv_set_err(err, errlen, "%s: %s (SQLSTATE %s)", what, msg, state);
		else
			emv_set_err(err, errlen, "%s: %s", what, msg);
	}
	PQclear(r);
	return NULL;
}

PGresult *emv_db_exec(PGconn *c, const char *sql, int nparams, const char *const *params, ExecStatusType want,
		      char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	PGresult *r;
	va_start(ap, fmt);
	r = vexec(c, sql, nparams, params, NULL, NULL, want, err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

PGresult *emv_db_exec_bin(PGconn *c, const char *sql, int nparams, const char *const *params, const int *lengths,
			  const int *formats, ExecStatusType want, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	PGresult *r;
	va_start(ap, fmt);
	r = vexec(c, sql, nparams, params, lengths, formats, want, err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

int emv_db_run(PGconn *c, const char *sql, int nparams, const char *const *params, char *err, size_t errlen,
	       const char *fmt, ...)
{
	va_list ap;
	PGresult *r;
	va_start(ap, fmt);
	r = vexec(c, sql, nparams, params, NULL, NULL, EMV_DB_OK_ANY, err, errlen, fmt, ap);
	va_end(ap);
	PQclear(r);
	return r ? EMV_OK : EMV_ERR;
}

/* Run one statement (or script); on failure fill err with what and why. */
static int exec(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
	return emv_db_run(c, sql, 0, NULL, err, errlen, "%s", what);
}

static int current_version(PGconn *c, int *version, char *err, size_t errlen)
{
	PGresult *r = emv_db_exec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL,
				  PGRES_TUPLES_OK, err, errlen, "reading the schema version");
	if (!r)
		return EMV_ERR;
	*version = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return EMV_OK;
}

int emv_db_migrate(PGconn *c, int *version, char *err, size_t errlen)
{
	char what[128], sql[256];
	int v = 0;

	for (size_t i = 0; i < NMIGRATIONS; i++) {
		const struct migration *m = &migrations[i];
		/* one transaction per migration, serialised between coordinators;
		 * even creating the version table happens under the lock: two
		 * concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog */
		if (exec(c, "BEGIN", "BEGIN", err, errlen) != EMV_OK)
			return EMV_ERR;
		snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)", MIGRATION_LOCK);
		if (exec(c, sql, "taking the migration lock", err, errlen) != EMV_OK ||
		    exec(c,
			 "CREATE TABLE IF NOT EXISTS schema_migrations ("
			 "  version integer PRIMARY KEY,"
			 "  name text NOT NULL,"
			 "  applied_at timestamptz NOT NULL DEFAULT now())",
			 "creating schema_migrations", err, errlen) != EMV_OK ||
		    current_version(c, &v, err, errlen) != EMV_OK) {
			exec(c, "ROLLBACK", "ROLLBACK", NULL, 0);
			return EMV_ERR;
		}
		if (v >= m->version) {
			exec(c, "ROLLBACK", "ROLLBACK", NULL, 0);
			continue;
		}
		snprintf(what, sizeof what, "migration %d (%s)", m->version, m->name);
		if (exec(c, m->sql, what, err, errlen) != EMV_OK) {
			exec(c, "ROLLBACK", "ROLLBACK", NULL, 0);
			return EMV_ERR;
		}
		{
			char vbuf[16];
			const char *params[2] = { vbuf, m->name };
			snprintf(vbuf, sizeof vbuf, "%d", m->version);
			if (emv_db_run(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, params,
				       err, errlen, "recording %s", what) != EMV_OK) {
				exec(c, "ROLLBACK", "ROLLBACK", NULL, 0);
				return EMV_ERR;
			}
		}
		if (exec(c, "COMMIT", what, err, errlen) != EMV_OK)
			return EMV_ERR;
		emv_log(EMV_LOG_INFO, "db", "applied %s", what);
	}
	if (current_version(c, &v, err, errlen) != EMV_OK)
		return EMV_ERR;
	if (v > emv_db_schema_version()) {
		emv_set_err(err, errlen,
			    "the database has schema version %d; this coordinator knows up to %d: "
			    "upgrade the coordinator",
			    v, emv_db_schema_version());
		return EMV_ERR;
	}
	*version = v;
	return EMV_OK;
}

const emv_policy *emv_db_job_policy(PGresult *r, int row, int name_col, int text_col)
{
	char err[256];
	const char *name = PQgetvalue(r, row, name_col);
	const emv_policy *p = NULL;
	if (!PQgetisnull(r, row, text_col)) {
		p = emv_policy_parse(name, PQgetvalue(r, row, text_col), err, sizeof err);
		if (!p)
			emv_log(EMV_LOG_WARN, "db", "a stored policy does not parse (%s); using %s", err,
				EMV_POLICY_DEFAULT);
	} else if (!(p = emv_policy_preset(name))) {
		emv_log(EMV_LOG_WARN, "db", "no preset '%s'; using %s", name, EMV_POLICY_DEFAULT);
	}
	return p ? p : emv_policy_preset(EMV_POLICY_DEFAULT);
}

/* The text a policy is stored with: NULL for a preset (its name says it). */
static int policy_text(const emv_policy *p, char *buf, size_t len)
{
	if (!p || emv_policy_preset(emv_policy_name(p)) == p)
		return 0;
	emv_policy_text(p, buf, len);
	return 1;
}

/* Run sql with $1 = key, $2 = p's name (NULL: none), $3 = its text (NULL
 * for a preset). */
static int policy_store(PGconn *c, const char *sql, const char *key, const emv_policy *p, const char *what, char *err,
			size_t errlen)
{
	char text[EMV_POLICY_TEXT_MAX * 2];
	const char *v[3] = { key, p ? emv_policy_name(p) : NULL, NULL };
	if (p && policy_text(p, text, sizeof text))
		v[2] = text;
	return emv_db_run(c, sql, 3, v, err, errlen, "%s", what);
}

int emv_db_job_policy_set(PGconn *c, const char *job_id, const emv_policy *p, char *err, size_t errlen)
{
	/* none given: the tenant's default, else the built-in default */
	return policy_store(c,
			    "UPDATE jobs j SET policy = coalesce($2, (SELECT t.policy FROM tenant_settings t WHERE "
			    "  t.tenant = j.tenant AND t.policy IS NOT NULL), 'marketing'),"
			    " policy_text = CASE WHEN $2 IS NOT NULL THEN $3 ELSE (SELECT t.policy_text FROM "
			    "  tenant_settings t WHERE t.tenant = j.tenant AND t.policy IS NOT NULL) END "
			    "WHERE j.id = $1",
			    job_id, p, "setting the job's policy", err, errlen);
}

int emv_db_tenant_policy_set(PGconn *c, const char *tenant, const emv_policy *p, char *err, size_t errlen)
{
	return policy_store(c,
			    "INSERT INTO tenant_settings (tenant, policy, policy_text) VALUES ($1, $2, $3) "
			    "ON CONFLICT (tenant) DO UPDATE SET policy = excluded.policy, "
			    "policy_text = excluded.policy_text, updated_at = now()",
			    tenant, p, "setting the tenant's policy", err, errlen);
}
