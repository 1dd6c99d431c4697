/* SPDX-License-Identifier: Apache-2.0 */
/* emv_deadline.c - a job's deadline and straggler wait (see emv_deadline.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_db.h"
#include "emv_deadline.h"
#include "emv_result.h"
#include "emv_util.h"

int emv_deadline_set(PGconn *c, const char *job_id, int64_t deadline_s, int64_t straggler_s, char *err, size_t errlen)
{
	char d[24], s[24];
	const char *v[3] = { job_id, d, s };
	snprintf(d, sizeof d, "%" PRId64, deadline_s);
	snprintf(s, sizeof s, "%" PRId64, straggler_s);
	return emv_db_run(c,
			  "UPDATE jobs SET deadline_at = CASE WHEN $2::bigint < 0 THEN deadline_at"
			  "  WHEN $2::bigint > 0 THEN clock_timestamp() + $2::bigint * interval '1 second' END,"
			  " straggler_wait_s = CASE WHEN $3::integer < 0 THEN straggler_wait_s ELSE $3::integer END"
			  " WHERE id = $1",
			  3, v, err, errlen, "setting the time limits of job %s", job_id);
}

int emv_deadline_get(PGconn *c, const char *job_id, int64_t *unix_ms, char *err, size_t errlen)
{
	const char *v[1] = { job_id };
	PGresult *r = emv_db_exec(c,
				  "SELECT coalesce(floor(extract(epoch FROM deadline_at) * 1000)::bigint, 0)"
				  " FROM jobs WHERE id = $1",
				  1, v, PGRES_TUPLES_OK, err, errlen, "reading the deadline of job %s", job_id);
	if (!r)
		return EMV_ERR;
	*unix_ms = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	return EMV_OK;
}

/*
 * One job, one statement (its own transaction): the rows with a temporary
 * result become final with it (status unknown, the reason, reply and codes
 * kept: the last evidence), the rows without any result (never answered,
 * or not split yet) get unknown / timeout, and the job's counters move by
 * exactly the rows made final here.  A sink storing results of the job at
 * the same time is serialised by the rows' locks: a row it made final
 * first is left alone (and counted by it), a temporary row it inserted
 * after this statement's snapshot is caught by ON CONFLICT.  Run twice,
 * the second finds nothing to do and the job no longer running.
 */
static const char expire_sql[] =
	"WITH upd AS ("
	"  UPDATE results r SET final = true, status = 'unknown',"
	"    detail = coalesce(nullif(r.detail, ''), r.reason) || '" EMV_EXPIRED_AGAIN "' || $2,"
	"    retry_at = NULL, updated_at = now()"
	"  WHERE r.job_id = $1 AND NOT r.final RETURNING 1),"
	" ins AS ("
	"  INSERT INTO results AS r (job_id, address_id, status, reason, final, flags, detail)"
	"  SELECT a.job_id, a.id, 'unknown', $3, true, 0, '" EMV_EXPIRED_UNASKED "' || $2 FROM addresses a"
	"  WHERE a.job_id = $1 AND a.error_reason IS NULL AND a.duplicate_of IS NULL"
	"   AND NOT EXISTS (SELECT 1 FROM results x WHERE x.job_id = a.job_id AND x.address_id = a.id)"
	"  ON CONFLICT (job_id, address_id) DO UPDATE SET final = true, status = 'unknown',"
	"    detail = coalesce(nullif(r.detail, ''), r.reason) || '" EMV_EXPIRED_AGAIN "' || $2,"
	"    retry_at = NULL, updated_at = now()"
	"  WHERE NOT r.final RETURNING 1),"
	" n AS (SELECT (SELECT count(*) FROM upd) + (SELECT count(*) FROM ins) AS n)"
	" UPDATE jobs SET n_final = n_final + n.n, n_unknown = n_unknown + n.n, state = 'done',"
	"  finished_at = coalesce(finished_at, now())"
	" FROM n WHERE id = $1 AND state IN ('splitting', 'running') RETURNING n.n";

int emv_deadline_expire(PGconn *c, int *jobs, long long *rows, char *err, size_t errlen)
{
	PGresult *r;
	int nj = 0;
	long long nr = 0;

	if (jobs)
		*jobs = 0;
	if (rows)
		*rows = 0;
	/* the partial index jobs_limits holds what the first two lines ask */
	r = emv_db_exec(c,
			"SELECT id, deadline_at IS NOT NULL AND deadline_at <= now() FROM jobs"
			" WHERE state IN ('splitting', 'running') AND (deadline_at IS NOT NULL OR straggler_wait_s > 0)"
			"  AND (deadline_at <= now() OR (straggler_wait_s > 0"
			"   AND answered_at + straggler_wait_s * interval '1 second' <= now()))"
			" ORDER BY id LIMIT 100",
			0, NULL, PGRES_TUPLES_OK, err, errlen, "finding jobs past their time limits");
	if (!r)
		return EMV_ERR;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *id = PQgetvalue(r, i, 0);
		int deadline = PQgetvalue(r, i, 1)[0] == 't';
		const char *v[3] = { id, deadline ? EMV_EXPIRED_DEADLINE : EMV_EXPIRED_STRAGGLERS,
				     emv_reason_name(EMV_REASON_TIMEOUT) };
		PGresult *x = emv_db_exec(c, expire_sql, 3, v, PGRES_TUPLES_OK, err, errlen,
					  "making job %s final at its %s", id,
					  deadline ? "deadline" : "straggler wait");
		if (!x) {
			PQclear(r);
			return EMV_ERR;
		}
		if (PQntuples(x) == 1) {
			long long n = strtoll(PQgetvalue(x, 0, 0), NULL, 10);
			emv_log(EMV_LOG_INFO, "deadline",
				"job %s: %s; %lld address(es) without a final verdict are final now", id,
				deadline ? "its deadline has come" : "the wait for stragglers is over", n);
			nj++;
			nr += n;
		}
		PQclear(x);
	}
	PQclear(r);
	if (jobs)
		*jobs = nj;
	if (rows)
		*rows = nr;
	return EMV_OK;
}

/* The ETA (seconds, -1 unknown) of a job not finished: the addresses
 * without a verdict at the rate so far, those waiting for a retry not
 * before the last retry is due (retry_s, -1 none), and never after the
 * job's time limit (limit_s, -1 none): then everything is final. */
double emv_deadline_eta(double left, double waiting, double rate, double retry_s, double limit_s)
{
	double eta = left - waiting <= 0 ? 0 : rate > 0 ? (left - waiting) / rate : -1;
	if (waiting > 0 && retry_s >= 0 && eta >= 0 && retry_s > eta)
		eta = retry_s;
	if (waiting > 0 && retry_s < 0 && eta >= 0 && rate > 0 && left / rate > eta)
		eta = left / rate; /* their times unknown: at the rate so far */
	if (limit_s >= 0 && (eta < 0 || eta > limit_s))
		eta = limit_s;
	return eta;
}
