/* SPDX-License-Identifier: Apache-2.0 */
/* emv_vcache.c - the cluster's verdict cache (see emv_vcache.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "emv_db.h"
#include "emv_util.h"
#include "emv_vcache.h"

static int set_scope(emv_vcache_cfg *cfg, const char *what, const char *v, int off_ok, char *err, size_t errlen)
{
	if (strcmp(v, "tenant") == 0)
		cfg->global = 0, cfg->off = 0;
	else if (strcmp(v, "global") == 0)
		cfg->global = 1, cfg->off = 0;
	else if (off_ok && strcmp(v, "off") == 0)
		cfg->off = 1;
	else {
		emv_set_err(err, errlen, "%s: \"%s\" is not tenant or global%s", what, v, off_ok ? " or off" : "");
		return EMV_ERR;
	}
	return EMV_OK;
}

int emv_vcache_cfg_init(emv_vcache_cfg *cfg, char *err, size_t errlen)
{
	const char *v;
	char e[512];

	memset(cfg, 0, sizeof *cfg);
	emv_cache_ages_default(&cfg->ages);
	if ((v = getenv("EMV_CACHE_SCOPE")) && *v && set_scope(cfg, "EMV_CACHE_SCOPE", v, 1, err, errlen) != EMV_OK)
		return EMV_ERR;
	if ((v = getenv("EMV_CACHE_AGES")) && *v && emv_cache_ages_parse(&cfg->ages, v, e, sizeof e) != EMV_OK) {
		emv_set_err(err, errlen, "EMV_CACHE_AGES: %s", e);
		return EMV_ERR;
	}
	return EMV_OK;
}

int emv_vcache_set(emv_vcache_cfg *cfg, const char *opt, const char *val, char *err, size_t errlen)
{
	char e[512];

	if (strcmp(opt, "--no-cache") == 0) {
		cfg->off = 1;
		return EMV_OK;
	}
	if (strcmp(opt, "--cache-scope") == 0)
		return set_scope(cfg, "--cache-scope", val, 0, err, errlen);
	if (emv_cache_ages_parse(&cfg->ages, val, e, sizeof e) != EMV_OK) {
		emv_set_err(err, errlen, "--%s", e);
		return EMV_ERR;
	}
	return EMV_OK;
}

int emv_vcache_opt(emv_vcache_cfg *cfg, int argc, char **argv, int *i, char *err, size_t errlen)
{
	const char *o = argv[*i];

	if (strcmp(o, "--no-cache") == 0)
		return emv_vcache_set(cfg, o, NULL, err, errlen) == EMV_OK ? 1 : -1;
	if (strcmp(o, "--cache-scope") != 0 && strcmp(o, "--cache-ages") != 0)
		return 0;
	if (*i + 1 >= argc) {
		emv_set_err(err, errlen, "%s needs a value", o);
		return -1;
	}
	(*i)++;
	return emv_vcache_set(cfg, o, argv[*i], err, errlen) == EMV_OK ? 1 : -1;
}

int emv_vcache_job_set(PGconn *c, const char *job_id, int64_t max_age_s, char *err, size_t errlen)
{
	char s[24];
	const char *v[2] = { job_id, max_age_s < 0 ? NULL : s };
	snprintf(s, sizeof s, "%" PRId64, max_age_s);
	return emv_db_run(c, "UPDATE jobs SET max_age_s = $2::bigint WHERE id = $1", 2, v, err, errlen,
			  "storing job %s's max_age", job_id);
}

int emv_vcache_parse_bool(const char *field, const char *text, char *err, size_t errlen)
{
	if (!strcasecmp(text, "true") || !strcmp(text, "1") || !strcasecmp(text, "yes"))
		return 1;
	if (!strcasecmp(text, "false") || !strcmp(text, "0") || !strcasecmp(text, "no"))
		return 0;
	emv_set_err(err, errlen, "%s: \"%.40s\" is not true or false", field, text);
	return -1;
}

/*
 * The rules as a table: one (status, reason, max seconds) row for every
 * pair whose verdict may be served (emv_cache_max_age_s >= 0), the job's
 * max_age folded in.  A reason this binary does not know (a newer one's)
 * has no row: not served.  The join on it is a hash of about a hundred
 * rows, so the cache is read in one pass whatever its size.
 */
static void rules_arrays(const emv_cache_ages *ages, int64_t job_max_s, emv_buf *st, emv_buf *rs, emv_buf *mx)
{
	char n[32];
	emv_buf_add(st, "{", 1);
	emv_buf_add(rs, "{", 1);
	emv_buf_add(mx, "{", 1);
	for (int s = 0; s < EMV_STATUS__COUNT; s++)
		for (int r = 0; r < EMV_REASON__COUNT; r++) {
			int64_t max = emv_cache_max_age_s(ages, (emv_status)s, (emv_reason)r, job_max_s);
			int first = mx->len == 1;
			const char *sn = emv_status_name((emv_status)s), *rn = emv_reason_name((emv_reason)r);
			if (max < 0)
				continue;
			if (!first) {
				emv_buf_add(st, ",", 1);
				emv_buf_add(rs, ",", 1);
				emv_buf_add(mx, ",", 1);
			}
			/* names are [a-z_]: no quoting needed in an array literal */
			emv_buf_add(st, sn, strlen(sn));
			emv_buf_add(rs, rn, strlen(rn));
			snprintf(n, sizeof n, "%" PRId64, max);
			emv_buf_add(mx, n, strlen(n));
		}
	emv_buf_add(st, "}", 2); /* with the NUL */
	emv_buf_add(rs, "}", 2);
	emv_buf_add(mx, "}", 2);
}

/* Cached results for the job's first rows that have none, and the job's
 * counters, in one statement (its own transaction).  The rows a resumed
 * split answered already are left out by NOT EXISTS, which costs far less
 * than ON CONFLICT's check of every row (a 900,000-row answer: 9-10 s
 * against 14-17 s, bench/README.md); ON CONFLICT is the second try's, when
 * a sink stored one of these rows meanwhile.  No ORDER BY: with the sort
 * gone the insert is faster, though the key fills at random leaves.  A
 * cached row is an answer: the straggler wait (emv_deadline.h) starts when
 * every address has had one, asked or cached. */
#define ANSWER_HEAD                                                                                            \
	"WITH m AS (SELECT * FROM unnest($3::text[], $4::text[], $5::bigint[]) AS m (status, reason, max_s))," \
	" ins AS ("                                                                                            \
	"  INSERT INTO results (job_id, address_id, status, reason, final, flags, mx_host, mx_ip,"             \
	"    source_ip, region, tls, catch_all, smtp_code, enhanced_code, reply, attempts, duration_ms,"       \
	"    detail, updated_at, cached, verified_at)"                                                         \
	"  SELECT a.job_id, a.id, v.status, v.reason, true, v.flags, v.mx_host, v.mx_ip, v.source_ip,"         \
	"    v.region, v.tls, v.catch_all, v.smtp_code, v.enhanced_code, v.reply, v.attempts,"                 \
	"    v.duration_ms, v.detail, now(), true, v.verified_at"                                              \
	"  FROM addresses a JOIN verdict_cache v ON v.scope = $2 AND v.address = a.address"                    \
	"   JOIN m ON m.status = v.status AND m.reason = v.reason"                                             \
	"  WHERE a.job_id = $1 AND a.error_reason IS NULL AND a.duplicate_of IS NULL"                          \
	"   AND v.verified_at <= now() AND v.verified_at >= now() - m.max_s * interval '1 second'"             \
	"   AND NOT EXISTS (SELECT 1 FROM results r WHERE r.job_id = a.job_id AND r.address_id = a.id)"
#define ANSWER_TAIL                                                                             \
	"  RETURNING status),"                                                                  \
	" d AS (SELECT count(*) AS n, count(*) FILTER (WHERE status = 'deliverable') AS nd,"    \
	"   count(*) FILTER (WHERE status = 'undeliverable') AS nu,"                            \
	"   count(*) FILTER (WHERE status = 'risky') AS nr FROM ins)"                           \
	" UPDATE jobs SET n_final = n_final + d.n, n_cached = n_cached + d.n,"                  \
	"  n_deliverable = n_deliverable + d.nd, n_undeliverable = n_undeliverable + d.nu,"     \
	"  n_risky = n_risky + d.nr, n_answered = n_answered + d.n,"                            \
	"  answered_at = CASE WHEN answered_at IS NULL AND n_answered + d.n >= addresses_total" \
	"                THEN now() ELSE answered_at END"                                       \
	" FROM d WHERE jobs.id = $1 RETURNING d.n"

static const char *const answer_sql[2] = {
	ANSWER_HEAD ANSWER_TAIL,
	ANSWER_HEAD " ON CONFLICT (job_id, address_id) DO NOTHING" ANSWER_TAIL,
};

/* One try of the answer in its own transaction; *unique when it failed on
 * a row stored meanwhile (unique_violation). */
static int answer_once(PGconn *c, const char *sql, const char *const v[5], uint64_t *answered, int *unique, char *err,
		       size_t errlen)
{
	PGresult *r;
	const char *state;

	*unique = 0;
	/* a hash join of the job against its scope of the cache wants memory
	 * (a million addresses: 110 MB of hash); the JIT costs more than it
	 * saves on a plan this simple */
	if (emv_db_run(c, "BEGIN", 0, NULL, err, errlen, "BEGIN") != EMV_OK)
		return EMV_ERR;
	if (emv_db_run(c, "SET LOCAL work_mem = '256MB'; SET LOCAL jit = off", 0, NULL, err, errlen,
		       "cache settings") != EMV_OK) {
		PQclear(PQexec(c, "ROLLBACK"));
		return EMV_ERR;
	}
	r = PQexecParams(c, sql, 5, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		*unique = state && strcmp(state, "23505") == 0;
		emv_set_err(err, errlen, "%s", emv_trim(PQresultErrorMessage(r)));
		PQclear(r);
		PQclear(PQexec(c, "ROLLBACK"));
		return EMV_ERR;
	}
	if (answered && PQntuples(r) == 1)
		*answered = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return emv_db_run(c, "COMMIT", 0, NULL, err, errlen, "committing the cached results");
}

int emv_vcache_answer(PGconn *c, const char *job_id, const emv_vcache_cfg *cfg, uint64_t *answered, char *err,
		      size_t errlen)
{
	emv_buf st = { NULL, 0, 0 }, rs = { NULL, 0, 0 }, mx = { NULL, 0, 0 };
	char scope[512];
	int64_t job_max = -1;
	PGresult *r;
	int rc = EMV_ERR;

	if (answered)
		*answered = 0;
	if (!cfg || cfg->off)
		return EMV_OK;
	{
		const char *v[1] = { job_id };
		r = emv_db_exec(c, "SELECT tenant, max_age_s FROM jobs WHERE id = $1", 1, v, PGRES_TUPLES_OK, err,
				errlen, "reading job %s", job_id);
		if (!r)
			return EMV_ERR;
		if (PQntuples(r) != 1) {
			emv_set_err(err, errlen, "job %s not found", job_id);
			PQclear(r);
			return EMV_ERR;
		}
		emv_strlcpy(scope, cfg->global ? "*" : PQgetvalue(r, 0, 0), sizeof scope);
		if (!PQgetisnull(r, 0, 1))
			job_max = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		PQclear(r);
	}
	if (job_max == 0)
		return EMV_OK; /* fresh: every address is asked again */
	rules_arrays(&cfg->ages, job_max, &st, &rs, &mx);
	{
		const char *v[5] = { job_id, scope, st.p, rs.p, mx.p };
		int unique = 0;
		rc = answer_once(c, answer_sql[0], v, answered, &unique, err, errlen);
		if (rc != EMV_OK && unique) /* a sink stored one of the rows first */
			rc = answer_once(c, answer_sql[1], v, answered, &unique, err, errlen);
		if (rc != EMV_OK) {
			char e[512];
			emv_strlcpy(e, err, sizeof e);
			emv_set_err(err, errlen, "answering job %s from the verdict cache: %s", job_id, e);
		}
	}
	free(st.p);
	free(rs.p);
	free(mx.p);
	return rc;
}
