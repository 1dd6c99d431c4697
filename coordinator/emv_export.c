/* SPDX-License-Identifier: Apache-2.0 */
/* emv_export.c - a job's results out of PostgreSQL (see emv_export.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "emv_db.h"
#include "emv_defaults.h"
#include "emv_export.h"
#include "emv_map.h"
#include "emv_format.h"
#include "emv_result.h"
#include "emv_util.h"

/* "Did you mean" per domain: a list has few domains and many rows, and the
 * suggestion (an edit-distance search) was most of an export's CPU. */
#define DYM_MAX 16384u /* domains remembered; beyond that, computed each time */

struct emv_export {
	PGconn *c;
	emv_map *dym; /* domain -> its suggestion ("" when none) */
	emv_export_params p;
	const emv_policy *policy; /* the job's (docs/policy.md) */
	int header_done, done, in_tx;
	int pending; /* a FETCH is sent, its rows not read yet */
	uint64_t rows;
	emv_buf out; /* the rows of one emv_export_next() */
	char fetch[64];
};

/* The cursor's columns, in this order. */
enum {
	C_ID,
	C_INPUT,
	C_ADDRESS,
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
	C_CACHED,
	C_VERIFIED,
};

/* A duplicate row shows the verdict of the row it repeats. */
static const char declare_sql[] =
	"DECLARE emv_export NO SCROLL CURSOR FOR"
	" SELECT a.id, a.input, a.address, a.flags, a.duplicate_of, a.error, r.status, r.reason, r.final,"
	"  r.flags, r.mx_host, r.mx_ip, r.source_ip, r.region, r.tls, r.catch_all, r.smtp_code,"
	"  r.enhanced_code, r.reply, r.attempts, r.duration_ms, r.detail, r.cached," EMV_EXPORT_VERIFIED_AT
		EMV_EXPORT_ROWS_FROM " WHERE a.job_id = $1"
	" ORDER BY a.id";

const char *emv_export_pending_detail(int temporary)
{
	return temporary ? "not final yet: the server asked us to try again later" : "not verified yet";
}

void emv_export_params_default(emv_export_params *p)
{
	memset(p, 0, sizeof *p);
	p->format = EMV_EXPORT_CSV;
	p->fetch_rows = EMV_DEF_EXPORT_FETCH_ROWS;
}

int emv_export_parse_statuses(const char *list, unsigned *mask, char *err, size_t errlen)
{
	char word[32];
	const char *p = list;

	*mask = 0;
	while (*p) {
		size_t n = strcspn(p, ",");
		int s;
		if (n >= sizeof word) {
			emv_set_err(err, errlen, "status '%.*s...' is not a status", 20, p);
			return -1;
		}
		memcpy(word, p, n);
		word[n] = '\0';
		emv_trim(word);
		if ((s = emv_status_from_name(word)) < 0) {
			emv_set_err(err, errlen, "status '%s' is not one of deliverable, undeliverable, risky, unknown",
				    word);
			return -1;
		}
		*mask |= 1u << s;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* The suggested domain for domain ("" when none), computed once. */
static const char *suggest_domain(emv_export *x, const char *domain, char *buf, size_t buflen)
{
	const char *known;

	if (!x->dym)
		x->dym = emv_map_new(0);
	if ((known = emv_map_get(x->dym, domain)))
		return known;
	emv_lists_suggest(x->p.lists, NULL, domain, buf, buflen);
	if (emv_map_count(x->dym) < DYM_MAX)
		emv_map_set(x->dym, domain, emv_xstrdup(buf));
	return buf;
}

/* ---- one row ---- */

static const char *col(PGresult *r, int i, int c)
{
	return PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
}

static long long num_col(PGresult *r, int i, int c)
{
	return col(r, i, c) ? strtoll(PQgetvalue(r, i, c), NULL, 10) : 0;
}

/* Row i of the cursor as an output row; dym holds its did_you_mean. */
static void row_of(emv_export *x, PGresult *r, int i, emv_format_row *w, char *dym, size_t dymlen)
{
	int final = col(r, i, C_FINAL) && PQgetvalue(r, i, C_FINAL)[0] == 't';

	memset(w, 0, sizeof *w);
	w->flags = (unsigned)strtoul(PQgetvalue(r, i, C_AFLAGS), NULL, 10);
	if (col(r, i, C_RFLAGS))
		w->flags |= (unsigned)strtoul(PQgetvalue(r, i, C_RFLAGS), NULL, 10);
	w->email = col(r, i, C_ADDRESS);
	dym[0] = '\0';
	if (x->p.lists && w->email && !col(r, i, C_ERROR)) {
		const char *at = strrchr(w->email, '@'), *sug;
		char buf[256];
		if (at && (sug = suggest_domain(x, at + 1, buf, sizeof buf))[0])
			snprintf(dym, dymlen, "%.*s@%s", (int)(at - w->email), w->email, sug);
	}
	w->did_you_mean = dym;
	if (final) {
		w->status = PQgetvalue(r, i, C_STATUS);
		w->reason = PQgetvalue(r, i, C_REASON);
		w->detail = col(r, i, C_DETAIL) ? col(r, i, C_DETAIL) : col(r, i, C_ERROR);
		if (!w->detail || !*w->detail) {
			int rs = emv_reason_from_name(w->reason);
			w->detail = rs >= 0 ? emv_reason_detail((emv_reason)rs) : "";
		}
		w->cached = col(r, i, C_CACHED) && PQgetvalue(r, i, C_CACHED)[0] == 't';
		w->verified_at = num_col(r, i, C_VERIFIED);
	} else {
		/* not final yet: a temporary verdict says why it is still open */
		w->status = "unknown";
		w->reason = "pending";
		w->detail = emv_export_pending_detail(col(r, i, C_STATUS) != NULL);
	}
	w->mx_host = col(r, i, C_MX_HOST);
	w->mx_ip = col(r, i, C_MX_IP);
	w->source_ip = col(r, i, C_SOURCE_IP);
	w->region = col(r, i, C_REGION);
	w->tls = col(r, i, C_TLS);
	w->catch_all = !col(r, i, C_CATCH_ALL) ? -1 : PQgetvalue(r, i, C_CATCH_ALL)[0] == 't';
	w->have_smtp = col(r, i, C_SMTP_CODE) != NULL;
	w->smtp_code = (int)num_col(r, i, C_SMTP_CODE);
	w->enhanced = col(r, i, C_ENHANCED);
	w->reply = col(r, i, C_REPLY);
	w->attempts = num_col(r, i, C_ATTEMPTS);
	w->duration_ms = num_col(r, i, C_DURATION);
	w->duplicate_of_row = (uint64_t)num_col(r, i, C_DUP);
	w->row = (uint64_t)num_col(r, i, C_ID);
	w->input = PQgetvalue(r, i, C_INPUT);
	w->policy = x->policy;
}

/* ---- the cursor ---- */

static int cmd(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		emv_set_err(err, errlen, "%s: %s", sql, emv_trim(PQresultErrorMessage(r)));
	PQclear(r);
	return ok;
}

emv_export *emv_export_open(PGconn *c, const char *job_id, const emv_export_params *p, char *err, size_t errlen)
{
	emv_export *x = emv_xcalloc(1, sizeof *x);
	const char *params[2];
	PGresult *r;

	x->c = c;
	x->p = *p;
	if (x->p.fetch_rows <= 0)
		x->p.fetch_rows = 5000;
	snprintf(x->fetch, sizeof x->fetch, "FETCH %d FROM emv_export", x->p.fetch_rows);
	if (!cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen)) {
		free(x);
		return NULL;
	}
	x->in_tx = 1;
	/* the per-row lookups below look expensive to the planner, which then
	 * JIT-compiles the query: a quarter of a second before the first row,
	 * and nothing gained on a scan this simple */
	if (!cmd(c, "SET LOCAL jit = off", err, errlen)) {
		emv_export_close(x);
		return NULL;
	}
	params[0] = job_id;
	r = PQexecParams(c, "SELECT policy, policy_text FROM jobs WHERE id = $1", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			emv_set_err(err, errlen, "%s", emv_trim(PQresultErrorMessage(r)));
		else
			emv_set_err(err, errlen, "no job '%s'", job_id);
		PQclear(r);
		emv_export_close(x);
		return NULL;
	}
	x->policy = emv_db_job_policy(r, 0, 0, 1);
	PQclear(r);
	r = PQexecParams(c, declare_sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		emv_set_err(err, errlen, "export of job %s: %s", job_id, emv_trim(PQresultErrorMessage(r)));
		PQclear(r);
		emv_export_close(x);
		return NULL;
	}
	PQclear(r);
	return x;
}

/* The next FETCH, sent without waiting for its rows. */
static int fetch_send(emv_export *x, char *err, size_t errlen)
{
	if (!PQsendQuery(x->c, x->fetch)) {
		emv_set_err(err, errlen, "export: %s", emv_trim(PQerrorMessage(x->c)));
		return 0;
	}
	x->pending = 1;
	return 1;
}

/* The sent FETCH's result (never NULL: PQmakeEmptyPGresult on a lost
 * connection), the connection ready for the next command. */
static PGresult *fetch_take(emv_export *x)
{
	PGresult *r = PQgetResult(x->c), *more;
	x->pending = 0;
	while ((more = PQgetResult(x->c)))
		PQclear(more);
	return r ? r : PQmakeEmptyPGresult(x->c, PGRES_FATAL_ERROR);
}

long emv_export_next(emv_export *x, emv_export_write_fn fn, void *arg, char *err, size_t errlen)
{
	PGresult *r;
	int n;

	if (x->done)
		return 0;
	x->out.len = 0;
	if (!x->header_done && x->p.format == EMV_EXPORT_CSV)
		emv_format_csv_header(&x->out);
	x->header_done = 1;
	if (!x->pending && !fetch_send(x, err, errlen))
		return -1;
	r = fetch_take(x);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		emv_set_err(err, errlen, "export: %s", emv_trim(PQresultErrorMessage(r)));
		PQclear(r);
		return -1;
	}
	n = PQntuples(r);
	/* the server reads the next rows while these are written out: on two
	 * cores that overlaps the two halves of the export's work */
	if (n == x->p.fetch_rows && !fetch_send(x, err, errlen)) {
		PQclear(r);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		emv_format_row w;
		char dym[320];
		const char *status, *reason;
		int st;
		row_of(x, r, i, &w, dym, sizeof dym);
		/* --status filters what the policy says, as written */
		emv_format_verdict(&w, &status, &reason);
		st = status ? emv_status_from_name(status) : -1;
		if (x->p.status_mask && (st < 0 || !(x->p.status_mask & (1u << st))))
			continue;
		x->rows++;
		if (x->p.format == EMV_EXPORT_CSV)
			emv_format_csv_row(&x->out, &w, x->p.keep_formulas);
		else
			emv_format_jsonl_row(&x->out, &w, NULL);
	}
	PQclear(r);
	if (n < x->p.fetch_rows)
		x->done = 1;
	if (x->out.len && fn(arg, x->out.p, x->out.len) != 0) {
		emv_set_err(err, errlen, "export: the output refused the data");
		return -1;
	}
	return n ? n : 0;
}

uint64_t emv_export_rows(const emv_export *x)
{
	return x->rows;
}

void emv_export_close(emv_export *x)
{
	if (!x)
		return;
	if (x->pending)
		PQclear(fetch_take(x)); /* a FETCH read ahead of a caller that stopped */
	if (x->in_tx)
		PQclear(PQexec(x->c, "ROLLBACK")); /* read only: nothing to keep */
	emv_map_free(x->dym, free);
	emv_policy_free(x->policy);
	free(x->out.p);
	free(x);
}

static int to_file(void *arg, const char *data, size_t len)
{
	return fwrite(data, 1, len, arg) == len ? 0 : -1;
}

int emv_export_to_file(PGconn *c, const char *job_id, const emv_export_params *p, FILE *out, uint64_t *rows, char *err,
		       size_t errlen)
{
	emv_export *x = emv_export_open(c, job_id, p, err, errlen);
	long n;

	if (!x)
		return EMV_ERR;
	while ((n = emv_export_next(x, to_file, out, err, errlen)) > 0)
		;
	if (rows)
		*rows = emv_export_rows(x);
	emv_export_close(x);
	if (n == 0 && fflush(out) != 0) {
		emv_set_err(err, errlen, "export: writing the output failed");
		return EMV_ERR;
	}
	return n == 0 ? EMV_OK : EMV_ERR;
}
