/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_privacy.c - forgetting an address (emv_privacy.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include "emv_db.h"
#include "emv_privacy.h"
#include "emv_util.h"

/* Run one statement of the transaction: its row count, or -1. */
static long long count(PGconn *c, const char *sql, const char *const *v, char *err, size_t errlen, const char *what)
{
	PGresult *r = emv_db_exec(c, sql, 2, v, PGRES_COMMAND_OK, err, errlen, "forgetting an address: %s", what);
	long long n;
	if (!r)
		return -1;
	n = atoll(PQcmdTuples(r));
	PQclear(r);
	return n;
}

int emv_privacy_forget(PGconn *c, const char *tenant, const char *address, long long *cache_rows, long long *job_rows,
		       char *err, size_t errlen)
{
	const char *v[2] = { tenant, address };
	long long nc, nr = 0, na;

	if (emv_db_run(c, "BEGIN", 0, NULL, err, errlen, "forgetting an address") != EMV_OK)
		return EMV_ERR;
	nc = count(c, "DELETE FROM verdict_cache WHERE address = $2 AND scope IN ($1, '*')", v, err, errlen,
		   "the cache entries");
	/* the results first: they are found through the address (a job's
	 * duplicates carry their first row's result) */
	if (nc >= 0)
		nr = count(c,
			   "UPDATE results r SET reply = NULL, detail = NULL FROM addresses a, jobs j "
			   "WHERE j.tenant = $1 AND a.job_id = j.id AND a.address = $2 "
			   "AND r.job_id = a.job_id AND r.address_id = a.id",
			   v, err, errlen, "the results");
	na = nr < 0 ? -1
		    : count(c,
			    "UPDATE addresses a SET address = '', input = '' FROM jobs j "
			    "WHERE j.tenant = $1 AND a.job_id = j.id AND a.address = $2",
			    v, err, errlen, "the job rows");
	if (nc < 0 || nr < 0 || na < 0 ||
	    emv_db_run(c, "COMMIT", 0, NULL, err, errlen, "forgetting an address") != EMV_OK) {
		PQclear(PQexec(c, "ROLLBACK"));
		return EMV_ERR;
	}
	*cache_rows = nc;
	*job_rows = na;
	return EMV_OK;
}

/* One statement with $1 = tenant, $2 = the batch size: its row count, or -1. */
static long long tenant_count(PGconn *c, const char *sql, const char *tenant, char *err, size_t errlen)
{
	char lim[16];
	const char *v[2] = { tenant, lim };
	snprintf(lim, sizeof lim, "%d", EMV_DB_DELETE_BATCH);
	return count(c, sql, v, err, errlen, "deleting the tenant's data");
}

int emv_privacy_delete_tenant_step(PGconn *c, const char *tenant, int *finished, char *err, size_t errlen)
{
	PGresult *r;
	long long n;
	*finished = 0;
	/* first no new work: its tokens stop working */
	if (tenant_count(c,
			 "UPDATE api_tokens SET revoked_at = now() WHERE tenant = $1 AND revoked_at IS NULL "
			 "AND $2::int > 0",
			 tenant, err, errlen) < 0)
		return EMV_ERR;
	/* its jobs, one batch of one job at a time (emv_db_delete_job_step:
	 * with the cache entries each made) */
	{
		const char *v[1] = { tenant };
		r = emv_db_exec(c, "SELECT id FROM jobs WHERE tenant = $1 LIMIT 1", 1, v, PGRES_TUPLES_OK, err, errlen,
				"deleting the tenant's jobs");
	}
	if (!r)
		return EMV_ERR;
	if (PQntuples(r) == 1) {
		char job[80];
		int job_done = 0, rc;
		emv_strlcpy(job, PQgetvalue(r, 0, 0), sizeof job);
		PQclear(r);
		rc = emv_db_delete_job_step(c, job, &job_done, err, errlen);
		return rc;
	}
	PQclear(r);
	/* every cache entry it made, in its scope or the global one */
	n = tenant_count(c,
			 "DELETE FROM verdict_cache WHERE tenant = $1 AND (scope, address) IN "
			 "(SELECT scope, address FROM verdict_cache WHERE tenant = $1 LIMIT $2::int)",
			 tenant, err, errlen);
	if (n != 0)
		return n < 0 ? EMV_ERR : EMV_OK;
	if (tenant_count(c, "DELETE FROM tenant_settings WHERE tenant = $1 AND $2::int > 0", tenant, err, errlen) < 0 ||
	    tenant_count(c, "DELETE FROM api_tokens WHERE tenant = $1 AND $2::int > 0", tenant, err, errlen) < 0)
		return EMV_ERR;
	*finished = 1;
	return EMV_OK;
}
