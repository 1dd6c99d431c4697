/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_rows.c - GET /v1/jobs/{id}/rows: one page of a job's rows as JSON,
 * with their evidence, filtered by status, reason, domain and a piece of
 * the address (the web console's results table; docs/api.md).
 *
 * Paged by keyset on the input row number: a page reads the addresses'
 * primary key (job_id, id) from `after` on and looks each row's result up
 * by the results' primary key (job_id, address_id), so page 1000 costs
 * what page 1 does.  No index serves the filters, so one request reads at
 * most the row numbers after+1 .. after+ROWS_SCAN_MAX: a filter that
 * matches little answers a short (even empty) page whose `next` says where
 * to go on, instead of a scan of a million rows.  The job is the tenant's
 * or 404.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_api_internal.h"
#include "emv_result.h"
#include "emv_db.h"
#include "emv_export.h"
#include "emv_format.h"
#include "emv_utf8.h"
#include "emv_util.h"

#define ROWS_LIMIT_DEFAULT 50
#define ROWS_LIMIT_MAX 500
#define ROWS_SCAN_MAX 20000 /* rows of the job read by one request, at most */
#define ROWS_TEXT_MAX 95    /* bytes of domain= and q= (t->arg) */

/* The columns of the page query, in this order. */
enum {
	C_ID,
	C_INPUT,
	C_ADDRESS,
	C_DOMAIN,
	C_AFLAGS,
	C_DUP,
	C_ERROR,
	C_STATUS,
	C_REASON,
	C_FINAL,
	C_RFLAGS,
	C_MX_HOST,
	C_MX_IP,
	C_SOURCE_IP,
	C_REGION,
	C_TLS,
	C_CATCH_ALL,
	C_SMTP_CODE,
	C_ENHANCED,
	C_REPLY,
	C_ATTEMPTS,
	C_DURATION,
	C_DETAIL,
	C_UPDATED,
	C_CACHED,
	C_VERIFIED,
};

/* A duplicate row shows the verdict of the row it repeats; a row without a
 * final verdict is "unknown"/"pending", as in the export (emv_export.c). */
static const char page_sql[] =
	"SELECT a.id, a.input, a.address, a.domain, a.flags, a.duplicate_of, a.error, r.status, r.reason, r.final,"
	" r.flags, r.mx_host, r.mx_ip, r.source_ip, r.region, r.tls, r.catch_all, r.smtp_code, r.enhanced_code,"
	" r.reply, r.attempts, r.duration_ms, r.detail,"
	" to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), r.cached," EMV_EXPORT_VERIFIED_AT
	EMV_EXPORT_ROWS_FROM
	" WHERE a.job_id = $1 AND a.id > $2::bigint AND a.id <= $3::bigint"
	"  AND ($4::text[] IS NULL OR (CASE WHEN r.final THEN r.status ELSE 'unknown' END) = ANY($4::text[]))"
	"  AND ($5::text[] IS NULL OR (CASE WHEN r.final THEN r.reason ELSE 'pending' END) = ANY($5::text[]))"
	"  AND ($6::text IS NULL OR a.domain = $6)"
	"  AND ($7::text IS NULL OR strpos(lower(a.address), lower($7)) > 0)"
	" ORDER BY a.id LIMIT $8::int";

static const char *col(PGresult *r, int i, int c)
{
	return PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_int_t num(PGresult *r, int i, int c)
{
	return col(r, i, c) ? (json_int_t)strtoll(PQgetvalue(r, i, c), NULL, 10) : 0;
}

/* One row with its evidence; the fields of a JSON Lines export row, plus
 * domain, final and updated_at. */
static json_t *row_json(PGresult *r, int i, const emv_policy *policy, const char *want_status, const char *want_reason)
{
	const char *names[16];
	unsigned flags = (unsigned)strtoul(PQgetvalue(r, i, C_AFLAGS), NULL, 10);
	int final = col(r, i, C_FINAL) && PQgetvalue(r, i, C_FINAL)[0] == 't';
	const char *status, *reason, *detail;
	json_t *j, *fl = json_array();
	size_t n;
	int safe;

	if (col(r, i, C_RFLAGS))
		flags |= (unsigned)strtoul(PQgetvalue(r, i, C_RFLAGS), NULL, 10);
	n = emv_flag_names(flags, names, 16);
	for (size_t k = 0; k < n; k++)
		json_array_append_new(fl, json_string(names[k]));
	if (final) {
		status = PQgetvalue(r, i, C_STATUS);
		reason = PQgetvalue(r, i, C_REASON);
		detail = col(r, i, C_DETAIL) ? col(r, i, C_DETAIL) : col(r, i, C_ERROR);
		if (!detail || !*detail) {
			int rs = emv_reason_from_name(reason);
			detail = rs >= 0 ? emv_reason_detail((emv_reason)rs) : "";
		}
	} else {
		status = "unknown";
		reason = "pending";
		detail = emv_export_pending_detail(col(r, i, C_STATUS) != NULL);
	}
	/* what the job's policy writes (docs/policy.md), as its export does;
	 * the filters match that */
	{
		emv_format_row w;
		memset(&w, 0, sizeof w);
		w.status = status;
		w.reason = reason;
		w.flags = flags;
		w.policy = policy;
		safe = emv_format_verdict(&w, &status, &reason);
	}
	if ((want_status && strcmp(status, want_status) != 0) || (want_reason && strcmp(reason, want_reason) != 0)) {
		json_decref(fl);
		return NULL;
	}
	/* jansson refuses text that is not UTF-8: such a value (a list's input
	 * row can be anything) becomes null rather than losing the page */
	j = json_object();
	json_object_set_new(j, "row", json_integer(num(r, i, C_ID)));
	json_object_set_new(j, "email", str_or_null(col(r, i, C_ADDRESS)));
	json_object_set_new(j, "domain", str_or_null(col(r, i, C_DOMAIN)));
	json_object_set_new(j, "status", json_string(status));
	json_object_set_new(j, "reason", json_string(reason));
	json_object_set_new(j, "safe_to_send", json_boolean(safe));
	json_object_set_new(j, "policy", json_string(emv_policy_name(policy)));
	json_object_set_new(j, "final", json_boolean(final));
	json_object_set_new(j, "flags", fl);
	json_object_set_new(j, "detail", str_or_null(detail));
	json_object_set_new(j, "mx_host", str_or_null(col(r, i, C_MX_HOST)));
	json_object_set_new(j, "mx_ip", str_or_null(col(r, i, C_MX_IP)));
	json_object_set_new(j, "source_ip", str_or_null(col(r, i, C_SOURCE_IP)));
	json_object_set_new(j, "region", str_or_null(col(r, i, C_REGION)));
	json_object_set_new(j, "tls", str_or_null(col(r, i, C_TLS)));
	json_object_set_new(j, "catch_all",
			    !col(r, i, C_CATCH_ALL) ? json_null()
						    : json_boolean(PQgetvalue(r, i, C_CATCH_ALL)[0] == 't'));
	if (col(r, i, C_SMTP_CODE))
		json_object_set_new(j, "smtp",
				    json_pack("{s:I,s:o,s:o}", "code", num(r, i, C_SMTP_CODE), "enhanced",
					      str_or_null(col(r, i, C_ENHANCED)), "reply",
					      str_or_null(col(r, i, C_REPLY))));
	else
		json_object_set_new(j, "smtp", json_null());
	json_object_set_new(j, "attempts", json_integer(num(r, i, C_ATTEMPTS)));
	json_object_set_new(j, "duration_ms", json_integer(num(r, i, C_DURATION)));
	json_object_set_new(j, "duplicate_of_row", col(r, i, C_DUP) ? json_integer(num(r, i, C_DUP)) : json_null());
	json_object_set_new(j, "input", str_or_null(PQgetvalue(r, i, C_INPUT)));
	json_object_set_new(j, "updated_at", str_or_null(col(r, i, C_UPDATED)));
	/* as in the export: whether the verdict came from the verdict cache,
	 * and when it was made (null while not final) */
	json_object_set_new(j, "cached", json_boolean(final && PQgetvalue(r, i, C_CACHED)[0] == 't'));
	if (final && col(r, i, C_VERIFIED)) {
		char at[32];
		emv_format_time(at, sizeof at, (int64_t)num(r, i, C_VERIFIED));
		json_object_set_new(j, "verified_at", json_string(at));
	} else
		json_object_set_new(j, "verified_at", json_null());
	return j;
}

/*
 * The engine's statuses (want_status) or reasons (else) that the policy can
 * write as want, as a PostgreSQL array literal: the query's filter, which
 * row_json then narrows to what the policy writes for each row.  A row
 * without a final verdict is unknown/pending under any policy.
 */
static void raw_set(const emv_policy *p, const char *want, int want_status, char *out, size_t len)
{
	size_t off = (size_t)snprintf(out, len, "{");
	int n = want_status ? EMV_STATUS__COUNT : EMV_REASON__COUNT;
	for (int x = 0; x < n; x++) {
		int hit = 0;
		/* x is the fixed one; the other of status and reason, and the
		 * flags, take every value */
		for (int o = 0; o < (want_status ? EMV_REASON__COUNT : EMV_STATUS__COUNT) && !hit; o++)
			for (unsigned f = 0; f < 0x80 && !hit; f++) {
				emv_status ms = (emv_status)(want_status ? x : o);
				emv_reason mr = (emv_reason)(want_status ? o : x);
				emv_policy_apply(p, &ms, &mr, f);
				hit = strcmp(want_status ? emv_status_name(ms) : emv_reason_name(mr), want) == 0;
			}
		if (hit && off < len)
			off += (size_t)snprintf(out + off, len - off, "%s%s", off > 1 ? "," : "",
						want_status ? emv_status_name((emv_status)x)
							    : emv_reason_name((emv_reason)x));
	}
	if (strcmp(want, want_status ? "unknown" : "pending") == 0 && off < len)
		off += (size_t)snprintf(out + off, len - off, "%s%s", off > 1 ? "," : "", want);
	if (off < len)
		snprintf(out + off, len - off, "}");
}

/* t->arg[0] = "LIMIT AFTER STATUS REASON" ("-" for none), [1] domain, [2] q. */
static void work_rows(struct task *t, PGconn *c)
{
	char status[32], reason[48], lim[16], after[24], upto[24], sset[256], rset[1024];
	const char *v[8];
	const emv_policy *policy;
	long limit;
	long long first, last, end;
	PGresult *r;
	json_t *rows;
	int n;

	if (!api_authenticate(t, c))
		return;
	if (sscanf(t->arg[0], "%ld %23s %31s %47s", &limit, after, status, reason) != 4) {
		api_task_error(t, 500, "internal", "bad task");
		return;
	}
	v[0] = t->id;
	v[1] = t->tenant;
	/* the job's last row: a backward step on the primary key */
	r = PQexecParams(c,
			 "SELECT (SELECT max(id) FROM addresses WHERE job_id = $1), policy, policy_text FROM jobs "
			 "WHERE id = $1 AND tenant = $2",
			 2, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		api_db_fail(t, PQresultErrorMessage(r), "reading the job");
		PQclear(r);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		api_task_error(t, 404, "not_found", "no job '%s'", t->id);
		return;
	}
	last = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	policy = emv_db_job_policy(r, 0, 1, 2);
	PQclear(r);
	/* the window this request may read: row numbers after+1 ..
	 * after+ROWS_SCAN_MAX, a range of the primary key, so even a plan
	 * that reads the range whole and sorts it (as PostgreSQL picks for a
	 * job written since its last ANALYZE) touches at most that many rows */
	first = strtoll(after, NULL, 10);
	end = first >= last || last - first <= ROWS_SCAN_MAX ? last : first + ROWS_SCAN_MAX;
	snprintf(upto, sizeof upto, "%lld", end);

	snprintf(lim, sizeof lim, "%ld", limit + 1);
	v[0] = t->id;
	v[1] = after;
	v[2] = upto;
	/* the engine's statuses and reasons the policy may write as asked;
	 * row_json keeps the rows it does */
	if (strcmp(status, "-"))
		raw_set(policy, status, 1, sset, sizeof sset);
	if (strcmp(reason, "-"))
		raw_set(policy, reason, 0, rset, sizeof rset);
	v[3] = strcmp(status, "-") ? sset : NULL;
	v[4] = strcmp(reason, "-") ? rset : NULL;
	v[5] = t->arg[1][0] ? t->arg[1] : NULL;
	v[6] = t->arg[2][0] ? t->arg[2] : NULL;
	v[7] = lim;
	r = PQexecParams(c, page_sql, 8, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		api_db_fail(t, PQresultErrorMessage(r), "reading the job's rows");
		PQclear(r);
		emv_policy_free(policy);
		return;
	}
	n = PQntuples(r);
	rows = json_array();
	for (int i = 0; i < n && i < limit; i++) {
		json_t *row = row_json(r, i, policy, strcmp(status, "-") ? status : NULL,
				       strcmp(reason, "-") ? reason : NULL);
		if (row)
			json_array_append_new(rows, row);
	}
	emv_policy_free(policy);
	t->json = json_pack("{s:o}", "rows", rows);
	/* more: a full page (its last row), or a window cut short by the scan
	 * bound (its end, even when nothing in it matched) */
	if (n > limit)
		json_object_set_new(t->json, "next",
				    json_integer((json_int_t)strtoll(PQgetvalue(r, limit - 1, C_ID), NULL, 10)));
	else if (end < last)
		json_object_set_new(t->json, "next", json_integer((json_int_t)end));
	else
		json_object_set_new(t->json, "next", json_null());
	json_object_set_new(t->json, "scanned_to", json_integer((json_int_t)(end > 0 ? end : 0)));
	PQclear(r);
	t->status = 200;
}

static int word_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
			return 0;
	return 1;
}

/* 1..ROWS_TEXT_MAX bytes of well-formed UTF-8 without control characters
 * (PostgreSQL would refuse the rest as a parameter). */
static int text_ok(const char *s)
{
	size_t n = strlen(s), k;
	if (n == 0 || n > ROWS_TEXT_MAX)
		return 0;
	for (size_t i = 0; i < n; i += k) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
		if (!(k = emv_utf8_len((const unsigned char *)s + i, n - i)))
			return 0;
	}
	return 1;
}

void api_h_job_rows(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	const char *limit = api_req_query(r, "limit"), *after = api_req_query(r, "after");
	const char *status = api_req_query(r, "status"), *reason = api_req_query(r, "reason");
	const char *domain = api_req_query(r, "domain"), *q = api_req_query(r, "q");
	long n = ROWS_LIMIT_DEFAULT;
	long long aft = 0;
	struct task *t;

	if (limit) {
		long long v = 0;
		int bad = emv_parse_ll(limit, 1, ROWS_LIMIT_MAX, &v) != EMV_OK;
		n = (long)v;
		if (bad) {
			api_reply_error(r, 400, "bad_query", "limit must be 1..%d", ROWS_LIMIT_MAX);
			return;
		}
	}
	if (after) {
		if (!isdigit((unsigned char)after[0]) || emv_parse_ll(after, 0, INT64_MAX, &aft) != EMV_OK) {
			api_reply_error(r, 400, "bad_query",
					"after must be a row number from an earlier page's \"next\"");
			return;
		}
	}
	if (status && strcmp(status, "deliverable") && strcmp(status, "undeliverable") && strcmp(status, "risky") &&
	    strcmp(status, "unknown")) {
		api_reply_error(r, 400, "bad_query", "status must be deliverable, undeliverable, risky or unknown");
		return;
	}
	if (reason && !word_ok(reason, 40)) {
		api_reply_error(r, 400, "bad_query", "reason must be a reason's name (a-z and _)");
		return;
	}
	if (domain && !text_ok(domain)) {
		api_reply_error(r, 400, "bad_query", "domain must be 1..%d bytes of text", ROWS_TEXT_MAX);
		return;
	}
	if (q && !text_ok(q)) {
		api_reply_error(r, 400, "bad_query", "q must be 1..%d bytes of text", ROWS_TEXT_MAX);
		return;
	}
	t = api_task_new(a, r);
	memcpy(t->token_hash, hash, 32);
	emv_strlcpy(t->id, id, sizeof t->id);
	snprintf(t->arg[0], sizeof t->arg[0], "%ld %lld %s %s", n, aft, status ? status : "-", reason ? reason : "-");
	if (domain) {
		/* domains are stored lower-case (their A-label) */
		emv_strlcpy(t->arg[1], domain, sizeof t->arg[1]);
		for (char *p = t->arg[1]; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	if (q)
		emv_strlcpy(t->arg[2], q, sizeof t->arg[2]);
	t->work = work_rows;
	t->done = api_task_done_reply;
	api_task_submit(t);
}
