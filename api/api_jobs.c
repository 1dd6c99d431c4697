/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_jobs.c - the job endpoints answered from the pool: a job's status,
 * the job list, deletes (large ones in the background, in bounded
 * batches) and the operators' view of the source addresses (/v1/ips).
 * Uploads, exports and checks have their own files (emv_api_*.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "emv_api_internal.h"
#include "emv_db.h"
#include "emv_deadline.h"
#include "emv_ipstate.h"
#include "emv_routes.h"
#include "emv_util.h"
/* ------------------------------------------------------------------- jobs */

const char api_job_columns[] =
	"id, name, state, rows_total, addresses_total, n_final, n_unusable, n_deliverable, n_undeliverable, "
	"n_risky, n_unknown, split_done, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"extract(epoch FROM coalesce(finished_at, now()) - created_at), callback_url IS NOT NULL, policy, policy_text, "
	"n_cached, "
	"to_char(deadline_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), straggler_wait_s, "
	/* when the first of its time limits ends the job (emv_deadline.h) */
	EMV_DEADLINE_LIMIT_SQL;

static json_int_t ll(PGresult *r, int i, int c)
{
	return (json_int_t)strtoll(PQgetvalue(r, i, c), NULL, 10);
}

/* A jobs row (api_job_columns) as JSON. */
json_t *api_job_json(PGresult *r, int i)
{
	json_int_t rows = ll(r, i, 3), uniq = ll(r, i, 4), fin = ll(r, i, 5), unusable = ll(r, i, 6);
	json_int_t cached = ll(r, i, 18);
	/* the rate is of addresses asked: cached ones took no time */
	json_int_t total = uniq + unusable, verified = fin - unusable - cached;
	double secs = strtod(PQgetvalue(r, i, 14), NULL);
	double pct = total > 0 ? 100.0 * (double)fin / (double)total : 100.0;
	double rate = secs > 0 && verified > 0 ? (double)verified / secs : 0;
	const char *state = PQgetvalue(r, i, 2);
	int finished = strcmp(state, "done") == 0 || strcmp(state, "cancelled") == 0 || strcmp(state, "failed") == 0;
	json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I},s:I,s:I,s:f,s:f,s:s,s:b}", "id",
			      PQgetvalue(r, i, 0), "name", PQgetvalue(r, i, 1), "state", state, "rows", rows,
			      "addresses", uniq, "duplicates", rows - uniq - unusable, "unusable", unusable, "done",
			      fin, "counts", "deliverable", ll(r, i, 7), "undeliverable", ll(r, i, 8), "risky",
			      ll(r, i, 9), "unknown", ll(r, i, 10), "total", total, "batched", ll(r, i, 11), "percent",
			      floor(pct * 10) / 10, "rate_per_s", floor(rate * 10) / 10, "created_at",
			      PQgetvalue(r, i, 12), "callback", PQgetvalue(r, i, 15)[0] == 't');
	json_object_set_new(j, "finished_at", PQgetisnull(r, i, 13) ? json_null() : json_string(PQgetvalue(r, i, 13)));
	json_object_set_new(j, "policy", json_string(PQgetvalue(r, i, 16)));
	json_object_set_new(j, "cached", json_integer(cached));
	json_object_set_new(j, "deadline_at", PQgetisnull(r, i, 19) ? json_null() : json_string(PQgetvalue(r, i, 19)));
	json_object_set_new(j, "straggler_wait_s", json_integer(ll(r, i, 20)));
	json_object_set_new(j, "deadline_in_s",
			    finished || PQgetisnull(r, i, 21)
				    ? json_null()
				    : json_integer((json_int_t)ceil(strtod(PQgetvalue(r, i, 21), NULL))));
	if (finished) {
		json_object_set_new(j, "eta_s", json_integer(0));
	} else {
		double limit = PQgetisnull(r, i, 21) ? -1 : strtod(PQgetvalue(r, i, 21), NULL);
		double eta = emv_deadline_eta((double)(total - fin), 0, rate, -1, limit);
		json_object_set_new(j, "eta_s", eta < 0 ? json_null() : json_integer((json_int_t)ceil(eta)));
	}
	return j;
}

void api_db_fail(struct task *t, const char *err, const char *what)
{
	emv_log(EMV_LOG_WARN, "api", "%s", err);
	api_task_error(t, 503, "database_error", "%s failed; try again", what);
}

/*
 * Counts by reason come from a GROUP BY over the job's results: cheap for
 * small jobs, a scan of a million rows for big ones.  So they are cached
 * per job: for REASONS_TTL_MS while the job runs (one request in that time
 * pays for the query; the others get the last answer, also while it is
 * being recomputed), for good once the job is finished (final verdicts
 * never change).  A deleted job is 404 before its entry is looked at.
 */
#define REASONS_CACHE 64
#define REASONS_TTL_MS 2000

static struct reasons_entry {
	char job[80];
	uint64_t at_ms;
	int finished, refreshing;
	char *json;
} reasons_cache[REASONS_CACHE];
static pthread_mutex_t reasons_mu = PTHREAD_MUTEX_INITIALIZER;

/* 1 with a copy of a usable cached answer in *out; 0 when the caller must
 * compute it (and then call reasons_store). */
static int reasons_lookup(const char *job, int finished, char **out)
{
	struct reasons_entry *e = NULL;
	int hit = 0;
	pthread_mutex_lock(&reasons_mu);
	for (int i = 0; i < REASONS_CACHE; i++)
		if (strcmp(reasons_cache[i].job, job) == 0)
			e = &reasons_cache[i];
	/* a job finished since the entry was made gets its final counts now */
	if (e && e->json &&
	    (e->finished || (!finished && (emv_now_ms() - e->at_ms < REASONS_TTL_MS || e->refreshing)))) {
		*out = emv_xstrdup(e->json);
		hit = 1;
	} else if (e) {
		e->refreshing = 1;
	}
	pthread_mutex_unlock(&reasons_mu);
	return hit;
}

static void reasons_store(const char *job, const char *json, int finished)
{
	struct reasons_entry *e = NULL;
	pthread_mutex_lock(&reasons_mu);
	for (int i = 0; i < REASONS_CACHE && !e; i++)
		if (strcmp(reasons_cache[i].job, job) == 0)
			e = &reasons_cache[i];
	if (!e)
		for (int i = 0; i < REASONS_CACHE; i++)
			if (!e || reasons_cache[i].at_ms < e->at_ms)
				e = &reasons_cache[i]; /* the oldest goes */
	if (strcmp(e->job, job) != 0) {
		emv_strlcpy(e->job, job, sizeof e->job);
		free(e->json);
		e->json = NULL;
	}
	free(e->json);
	e->json = emv_xstrdup(json);
	e->at_ms = emv_now_ms();
	e->finished = finished;
	e->refreshing = 0;
	pthread_mutex_unlock(&reasons_mu);
}

/* A job's status knows its waiting retries: its ETA counts them. */
static void status_eta(json_t *j)
{
	json_t *due = json_object_get(j, "retries_due_in_s"), *lim = json_object_get(j, "deadline_in_s");
	double total = (double)json_integer_value(json_object_get(j, "total")),
	       done = (double)json_integer_value(json_object_get(j, "done")), eta;
	const char *state = json_string_value(json_object_get(j, "state"));
	if (!state || strcmp(state, "done") == 0 || strcmp(state, "cancelled") == 0 || strcmp(state, "failed") == 0)
		return; /* finished: 0 */
	eta = emv_deadline_eta(total - done, (double)json_integer_value(json_object_get(j, "retries_waiting")),
			       json_real_value(json_object_get(j, "rate_per_s")),
			       json_is_integer(due) ? (double)json_integer_value(due) : -1,
			       json_is_integer(lim) ? (double)json_integer_value(lim) : -1);
	json_object_set_new(j, "eta_s", eta < 0 ? json_null() : json_integer((json_int_t)ceil(eta)));
}

static void work_job_status(struct task *t, PGconn *c)
{
	char sql[1024], err[512];
	const char *v[2] = { t->id, t->tenant };
	PGresult *r;
	json_t *reasons, *waiting, *counts;
	char *cached;
	int finished;
	long long nwaiting = 0;
	double retry_s = -1; /* the last waiting retry is due in this many seconds */
	json_int_t by_status[EMV_STATUS__COUNT] = { 0 }, nsafe = 0;
	const emv_policy *policy;

	if (!api_authenticate(t, c))
		return;
	snprintf(sql, sizeof sql, "SELECT %s FROM jobs WHERE id = $1 AND tenant = $2", api_job_columns);
	r = emv_db_exec(c, sql, 2, v, PGRES_TUPLES_OK, err, sizeof err, "reading the job");
	if (!r) {
		api_db_fail(t, err, "reading the job");
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		api_task_error(t, 404, "not_found", "no job '%s'", t->id);
		return;
	}
	t->json = api_job_json(r, 0);
	finished = strcmp(PQgetvalue(r, 0, 2), "done") == 0 || strcmp(PQgetvalue(r, 0, 2), "failed") == 0;
	policy = emv_db_job_policy(r, 0, 16, 17);
	PQclear(r);
	if (reasons_lookup(t->id, finished, &cached)) {
		emv_policy_free(policy);
		json_t *hit = json_loads(cached, 0, NULL);
		free(cached);
		if (hit)
			json_object_update(t->json, hit);
		json_decref(hit);
		status_eta(t->json);
		t->status = 200;
		return;
	}
	/* verdicts by status and reason: the final ones (the unique addresses
	 * and the unusable rows; duplicates share their first row's verdict)
	 * as the job's policy writes them (docs/policy.md: it needs the
	 * address's flags), and the temporary ones, whose retry is waiting */
	r = emv_db_exec(c,
			"SELECT r.status, r.reason, r.final, r.flags | a.flags, count(*),"
			" extract(epoch FROM max(r.retry_at) - now()) FROM results r "
			"JOIN addresses a ON a.job_id = r.job_id AND a.id = r.address_id WHERE r.job_id = $1 "
			"GROUP BY 1, 2, 3, 4",
			1, v, PGRES_TUPLES_OK, err, sizeof err, "counting the job's results");
	if (!r) {
		emv_policy_free(policy);
		api_db_fail(t, err, "counting the job's results");
		return;
	}
	reasons = json_object();
	waiting = json_object();
	for (int i = 0; i < PQntuples(r); i++) {
		json_int_t n = ll(r, i, 4);
		if (PQgetvalue(r, i, 2)[0] == 't') {
			int st = emv_status_from_name(PQgetvalue(r, i, 0)),
			    rs = emv_reason_from_name(PQgetvalue(r, i, 1));
			const char *sname = PQgetvalue(r, i, 0), *rname = PQgetvalue(r, i, 1);
			json_t *s, *x;
			if (st >= 0 && rs >= 0) {
				emv_status ms = (emv_status)st;
				emv_reason mr = (emv_reason)rs;
				if (emv_policy_apply(policy, &ms, &mr, (unsigned)ll(r, i, 3)))
					nsafe += n;
				sname = emv_status_name(ms);
				rname = emv_reason_name(mr);
				by_status[ms] += n;
			}
			if (!(s = json_object_get(reasons, sname))) {
				s = json_object();
				json_object_set_new(reasons, sname, s);
			}
			x = json_object_get(s, rname);
			json_object_set_new(s, rname, json_integer(n + (x ? json_integer_value(x) : 0)));
		} else {
			json_t *w = json_object_get(waiting, PQgetvalue(r, i, 1));
			json_object_set_new(waiting, PQgetvalue(r, i, 1),
					    json_integer(n + (w ? json_integer_value(w) : 0)));
			nwaiting += n;
			if (!PQgetisnull(r, i, 5)) {
				double due = strtod(PQgetvalue(r, i, 5), NULL);
				if (due < 0)
					due = 0; /* due already: being asked */
				if (due > retry_s)
					retry_s = due;
			}
		}
	}
	PQclear(r);
	emv_policy_free(policy);
	counts = json_pack("{s:o, s:o, s:I, s:{s:I, s:I, s:I, s:I}, s:I}", "reasons", reasons, "waiting", waiting,
			   "retries_waiting", (json_int_t)nwaiting, "counts", "deliverable", by_status[0],
			   "undeliverable", by_status[1], "risky", by_status[2], "unknown", by_status[3],
			   "safe_to_send", nsafe);
	json_object_set_new(counts, "retries_due_in_s",
			    nwaiting > 0 && retry_s >= 0 ? json_integer((json_int_t)ceil(retry_s)) : json_null());
	/* while retries wait, the provider that throttles our source addresses
	 * the most (the workers' ip-state, docs/regions.md) is the likely
	 * bottleneck: budgets are the workers', this is what they report */
	if (nwaiting > 0) {
		r = PQexec(c, "SELECT provider, count(*) FROM ip_state WHERE state IN ('throttled', 'quarantined') "
			      "AND (until IS NULL OR until > now()) GROUP BY provider ORDER BY 2 DESC, 1 LIMIT 1");
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
			json_object_set_new(counts, "bottleneck",
					    json_pack("{s:s, s:I}", "provider", PQgetvalue(r, 0, 0), "throttled_ips",
						      (json_int_t)ll(r, 0, 1)));
		PQclear(r);
	}
	cached = json_dumps(counts, JSON_COMPACT);
	reasons_store(t->id, cached, finished);
	free(cached);
	json_object_update(t->json, counts);
	json_decref(counts);
	status_eta(t->json);
	t->status = 200;
}

static void work_job_list(struct task *t, PGconn *c)
{
	char sql[1536], lim[16], err[512];
	const char *v[3] = { t->tenant, t->arg[1][0] ? t->arg[1] : NULL, lim };
	int limit = atoi(t->arg[0]), n;
	PGresult *r;
	json_t *jobs;

	if (!api_authenticate(t, c))
		return;
	snprintf(lim, sizeof lim, "%d", limit + 1);
	snprintf(sql, sizeof sql,
		 "SELECT %s FROM jobs WHERE tenant = $1 AND ($2::text IS NULL OR (created_at, id) < "
		 "(SELECT created_at, id FROM jobs WHERE id = $2 AND tenant = $1)) "
		 "ORDER BY created_at DESC, id DESC LIMIT $3::int",
		 api_job_columns);
	r = emv_db_exec(c, sql, 3, v, PGRES_TUPLES_OK, err, sizeof err, "listing jobs");
	if (!r) {
		api_db_fail(t, err, "listing jobs");
		return;
	}
	n = PQntuples(r);
	jobs = json_array();
	for (int i = 0; i < n && i < limit; i++)
		json_array_append_new(jobs, api_job_json(r, i));
	t->json = json_pack("{s:o}", "jobs", jobs);
	json_object_set_new(t->json, "next", n > limit ? json_string(PQgetvalue(r, limit - 1, 0)) : json_null());
	PQclear(r);
	t->status = 200;
}

void api_delete_enqueue(struct api *a, const char *job)
{
	api_jobq_push(&a->del_mu, &a->del_cv, &a->delhead, &a->deltail, job);
}

/* Large jobs marked 'deleting' go here, one at a time, one batch of
 * EMV_DB_DELETE_BATCH rows per transaction: nobody waits on one long
 * transaction (locks, WAL, a query thread) for a million rows.  A stop
 * leaves the rest to the next start (resume_deletes). */
void *api_delete_main(void *arg)
{
	struct api *a = arg;
	PGconn *c = NULL;
	char err[512];
	for (;;) {
		struct split_item *it;
		int finished = 0, batches = 0;
		uint64_t t0;
		if (!(it = api_jobq_pop(a, &a->del_mu, &a->del_cv, &a->delhead, &a->deltail)))
			break;
		t0 = emv_now_ms();
		while (!finished && !a->stopping) {
			if (c && PQstatus(c) != CONNECTION_OK) {
				PQfinish(c);
				c = NULL;
			}
			if (!c && !(c = api_db_connect(a, err, sizeof err))) {
				emv_log(EMV_LOG_WARN, "delete", "%s", err);
				sleep(2);
				continue;
			}
			if (emv_db_delete_job_step(c, it->job, &finished, err, sizeof err) != EMV_OK) {
				emv_log(EMV_LOG_WARN, "delete", "%s (tried again)", err);
				sleep(1);
				continue;
			}
			batches++;
		}
		if (finished)
			emv_log(EMV_LOG_INFO, "delete", "job %s deleted in %d transactions in %.1f s", it->job, batches,
				(double)(emv_now_ms() - t0) / 1000);
		free(it);
	}
	PQfinish(c);
	return NULL;
}

/* Cancel and delete.  A small job's rows go (addresses, results; webhook
 * deliveries cascade) in one transaction: 200.  A job of more than
 * EMV_DB_DELETE_BATCH rows is marked 'deleting' and answered 202 at once;
 * the delete thread removes it batch by batch.  Either way a split in
 * progress finds nothing more to read, and results still on their way are
 * dropped by the sink (no address). */
static void work_job_delete(struct task *t, PGconn *c)
{
	char err[512];
	long long rows = 0;
	int found = 0;
	if (!api_authenticate(t, c))
		return;
	{
		const char *v[3] = { t->id, t->tenant, NULL };
		char lim[16];
		PGresult *r;
		snprintf(lim, sizeof lim, "%d", EMV_DB_DELETE_BATCH);
		v[2] = lim;
		r = emv_db_exec(c,
				"UPDATE jobs SET state = 'deleting' WHERE id = $1 AND tenant = $2 "
				"AND (state = 'deleting' OR rows_total > $3::bigint) RETURNING rows_total",
				3, v, PGRES_TUPLES_OK, err, sizeof err, "deleting the job");
		if (!r) {
			api_db_fail(t, err, "deleting the job");
			return;
		}
		if (PQntuples(r) == 1) {
			t->json = json_pack("{s:s,s:s,s:I}", "id", t->id, "state", "deleting", "rows",
					    (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10));
			t->status = 202;
			t->ctx = t; /* done(): to the delete thread */
			PQclear(r);
			return;
		}
		PQclear(r);
	}
	if (emv_db_delete_job(c, t->id, t->tenant, &found, &rows, err, sizeof err) != EMV_OK) {
		/* PostgreSQL's words (SQL, context) are for the log, not the client */
		emv_log(EMV_LOG_WARN, "api", "deleting job %s: %s", t->id, err);
		api_task_error(t, 503, "database_error", "deleting the job failed; try again");
		return;
	}
	if (!found) {
		api_task_error(t, 404, "not_found", "no job '%s'", t->id);
		return;
	}
	t->json = json_pack("{s:s,s:b,s:I}", "id", t->id, "deleted", 1, "rows", (json_int_t)rows);
	t->status = 200;
}

static void done_job_delete(struct task *t)
{
	if (t->status == 202 && t->ctx == t)
		api_delete_enqueue(t->api, t->id);
	t->ctx = NULL;
	api_task_done_reply(t);
}

static void submit(struct api *a, struct api_req *r, const unsigned char *hash, const char *id,
		   void (*work)(struct task *, PGconn *))
{
	struct task *t = api_task_new(a, r);
	if (hash)
		memcpy(t->token_hash, hash, 32);
	if (id)
		emv_strlcpy(t->id, id, sizeof t->id);
	t->work = work;
	t->done = work == work_job_delete ? done_job_delete : api_task_done_reply;
	api_task_submit(t);
}

/* GET /v1/ips: the source addresses' reputation (docs/regions.md), for
 * any valid token: it is the operator's view of the fleet, no tenant's
 * data. */
static void work_ips(struct task *t, PGconn *c)
{
	char err[512];
	if (!api_authenticate(t, c))
		return;
	t->json = emv_ipstate_json(c, t->arg[0][0] ? t->arg[0] : NULL, t->arg[1][0] ? t->arg[1] : NULL, err,
				   sizeof err);
	if (!t->json) {
		emv_log(EMV_LOG_WARN, "api", "%s", err);
		api_task_error(t, 503, "unavailable", "the database did not answer");
		return;
	}
	t->status = 200;
}

void api_h_ips(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	const char *region = api_req_query(r, "region"), *state = api_req_query(r, "state");
	struct task *t;

	if (region && (strlen(region) >= sizeof t->arg[0] || !emv_routes_region_valid(region))) {
		api_reply_error(r, 400, "bad_query", "region must be 1..31 of a-z 0-9 _ -");
		return;
	}
	if (state && strcmp(state, "healthy") && strcmp(state, "throttled") && strcmp(state, "quarantined") &&
	    strcmp(state, "held")) {
		api_reply_error(r, 400, "bad_query", "state must be healthy, throttled, quarantined or held");
		return;
	}
	t = api_task_new(a, r);
	memcpy(t->token_hash, hash, 32);
	emv_strlcpy(t->arg[0], region ? region : "", sizeof t->arg[0]);
	emv_strlcpy(t->arg[1], state ? state : "", sizeof t->arg[1]);
	t->work = work_ips;
	t->done = api_task_done_reply;
	api_task_submit(t);
}

void api_h_job_list(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	const char *limit = api_req_query(r, "limit"), *after = api_req_query(r, "after");
	struct task *t;
	long long n = 50;

	if (limit) {
		if (emv_parse_ll(limit, 1, 1000, &n) != EMV_OK) {
			api_reply_error(r, 400, "bad_query", "limit must be 1..1000");
			return;
		}
	}
	if (after && !api_job_id_valid(after, strlen(after))) {
		api_reply_error(r, 400, "bad_query", "after must be a job id from an earlier page's \"next\"");
		return;
	}
	t = api_task_new(a, r);
	memcpy(t->token_hash, hash, 32);
	snprintf(t->arg[0], sizeof t->arg[0], "%lld", n);
	if (after)
		emv_strlcpy(t->arg[1], after, sizeof t->arg[1]);
	t->work = work_job_list;
	t->done = api_task_done_reply;
	api_task_submit(t);
}

void api_h_job_status(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	submit(a, r, hash, id, work_job_status);
}

void api_h_job_delete(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	submit(a, r, hash, id, work_job_delete);
}
