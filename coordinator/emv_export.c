/* emv_export.c - a job's results out of PostgreSQL (see emv_export.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "emv_defaults.h"
#include "emv_export.h"
#include "emv_map.h"
#include "emv_result.h"
#include "emv_util.h"

/* "Did you mean" per domain: a list has few domains and many rows, and the
 * suggestion (an edit-distance search) was most of an export's CPU. */
#define DYM_MAX 16384u /* domains remembered; beyond that, computed each time */

struct emv_export {
	PGconn *c;
	emv_map *dym;       /* domain -> its suggestion ("" when none) */
	emv_export_params p;
	int header_done, done, in_tx;
	uint64_t rows;
	emv_buf out;        /* the rows of one emv_export_next() */
	char fetch[64];
};

/* The cursor's columns, in this order. */
enum {
	C_ID, C_INPUT, C_ADDRESS, C_AFLAGS, C_DUP, C_ERROR, C_STATUS, C_REASON, C_FINAL, C_RFLAGS, C_MX_HOST,
	C_MX_IP, C_SOURCE_IP, C_REGION, C_TLS, C_CATCH_ALL, C_SMTP_CODE, C_ENHANCED, C_REPLY, C_ATTEMPTS,
	C_DURATION, C_DETAIL,
};

/* A duplicate row shows the verdict of the row it repeats. */
static const char declare_sql[] =
	"DECLARE emv_export NO SCROLL CURSOR FOR"
	" SELECT a.id, a.input, a.address, a.flags, a.duplicate_of, a.error, r.status, r.reason, r.final,"
	"  r.flags, r.mx_host, r.mx_ip, r.source_ip, r.region, r.tls, r.catch_all, r.smtp_code,"
	"  r.enhanced_code, r.reply, r.attempts, r.duration_ms, r.detail"
	/* one primary-key lookup of the result per row, whatever the
	 * statistics say: the results of a job written since the last
	 * ANALYZE look like "about one row" to the planner, and a plain join
	 * then became a nested loop over a materialised scan of them, O(n^2)
	 * (a 200,000-row export ran for over 20 minutes).  OFFSET 0 keeps the
	 * subquery from being flattened into that join. */
	" FROM addresses a LEFT JOIN LATERAL (SELECT * FROM results r"
	"  WHERE r.job_id = a.job_id AND r.address_id = coalesce(a.duplicate_of, a.id) OFFSET 0) r ON true"
	" WHERE a.job_id = $1"
	"  AND ($2::text[] IS NULL OR (CASE WHEN r.final THEN r.status ELSE 'unknown' END) = ANY($2::text[]))"
	" ORDER BY a.id";

static const char *const csv_columns[] = {
	"email", "status", "reason", "flags", "did_you_mean", "detail", "mx_host", "mx_ip", "source_ip", "tls",
	"catch_all", "smtp_code", "enhanced_code", "smtp_reply", "attempts", "duration_ms", "duplicate_of_row",
	"row", "input",
};

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
			emv_set_err(err, errlen,
				    "status '%s' is not one of deliverable, undeliverable, risky, unknown", word);
			return -1;
		}
		*mask |= 1u << s;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* ---- output buffer ---- */

static void put(emv_export *x, const char *s, size_t n)
{
	emv_buf_add(&x->out, s, n);
}

static void puts_(emv_export *x, const char *s)
{
	put(x, s, strlen(s));
}

/* RFC 4180: quote a field holding a comma, quote or line break; and one
 * a spreadsheet would run as a formula, with a ' in front (OWASP). */
static void csv(emv_export *x, const char *s, int last)
{
	int formula;
	if (!s)
		s = "";
	formula = !x->p.keep_formulas && emv_csv_is_formula(s);
	if (formula || s[strcspn(s, ",\"\r\n")]) {
		put(x, formula ? "\"'" : "\"", formula ? 2 : 1);
		for (const char *q; (q = strchr(s, '"')); s = q + 1) {
			put(x, s, (size_t)(q - s) + 1);
			put(x, "\"", 1);
		}
		puts_(x, s);
		put(x, "\"", 1);
	} else {
		puts_(x, s);
	}
	put(x, last ? "\n" : ",", 1);
}

/* A JSON string; the database hands out valid UTF-8, so only the JSON
 * specials and control characters need escaping. */
static void json_str(emv_export *x, const char *s)
{
	put(x, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		size_t run = 0;
		while (p[run] >= 0x20 && p[run] != '"' && p[run] != '\\')
			run++;
		if (run) {
			put(x, (const char *)p, run);
			p += run - 1;
			continue;
		}
		if (*p == '"')
			put(x, "\\\"", 2);
		else if (*p == '\\')
			put(x, "\\\\", 2);
		else if (*p == '\n')
			put(x, "\\n", 2);
		else if (*p == '\t')
			put(x, "\\t", 2);
		else if (*p == '\r')
			put(x, "\\r", 2);
		else {
			char e[8];
			snprintf(e, sizeof e, "\\u%04x", *p);
			put(x, e, 6);
		}
	}
	put(x, "\"", 1);
}

static void json_kv(emv_export *x, const char *key, const char *v, int first)
{
	if (!first)
		put(x, ",", 1);
	json_str(x, key);
	put(x, ":", 1);
	if (v)
		json_str(x, v);
	else
		put(x, "null", 4);
}

static void json_num(emv_export *x, const char *key, const char *v)
{
	put(x, ",", 1);
	json_str(x, key);
	put(x, ":", 1);
	puts_(x, v && *v ? v : "null");
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

struct row {
	const char *email, *status, *reason, *detail, *catch_all;
	char flags[128], dym[320];
};

static const char *col(PGresult *r, int i, int c)
{
	return PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
}

static void row_of(emv_export *x, PGresult *r, int i, struct row *w)
{
	const char *names[16];
	unsigned flags = (unsigned)strtoul(PQgetvalue(r, i, C_AFLAGS), NULL, 10);
	int final = col(r, i, C_FINAL) && PQgetvalue(r, i, C_FINAL)[0] == 't';
	size_t n;

	if (col(r, i, C_RFLAGS))
		flags |= (unsigned)strtoul(PQgetvalue(r, i, C_RFLAGS), NULL, 10);
	w->flags[0] = '\0';
	n = emv_flag_names(flags, names, 16);
	for (size_t k = 0; k < n; k++) {
		if (k)
			strncat(w->flags, ";", sizeof w->flags - strlen(w->flags) - 1);
		strncat(w->flags, names[k], sizeof w->flags - strlen(w->flags) - 1);
	}
	w->email = col(r, i, C_ADDRESS);
	w->dym[0] = '\0';
	if (x->p.lists && w->email && !col(r, i, C_ERROR)) {
		const char *at = strrchr(w->email, '@'), *sug;
		char buf[256];
		if (at && (sug = suggest_domain(x, at + 1, buf, sizeof buf))[0])
			snprintf(w->dym, sizeof w->dym, "%.*s@%s", (int)(at - w->email), w->email, sug);
	}
	if (final) {
		w->status = PQgetvalue(r, i, C_STATUS);
		w->reason = PQgetvalue(r, i, C_REASON);
		w->detail = col(r, i, C_DETAIL) ? col(r, i, C_DETAIL) : col(r, i, C_ERROR);
		if (!w->detail || !*w->detail) {
			int rs = emv_reason_from_name(w->reason);
			w->detail = rs >= 0 ? emv_reason_detail((emv_reason)rs) : "";
		}
	} else {
		/* not final yet: a temporary verdict says why it is still open */
		w->status = "unknown";
		w->reason = "pending";
		w->detail = col(r, i, C_STATUS) ? "not final yet: the server asked us to try again later"
						: "not verified yet";
	}
	w->catch_all = !col(r, i, C_CATCH_ALL) ? "" : PQgetvalue(r, i, C_CATCH_ALL)[0] == 't' ? "true" : "false";
}

static void csv_row(emv_export *x, PGresult *r, int i)
{
	struct row w;
	row_of(x, r, i, &w);
	csv(x, w.email, 0);
	csv(x, w.status, 0);
	csv(x, w.reason, 0);
	csv(x, w.flags, 0);
	csv(x, w.dym, 0);
	csv(x, w.detail, 0);
	csv(x, col(r, i, C_MX_HOST), 0);
	csv(x, col(r, i, C_MX_IP), 0);
	csv(x, col(r, i, C_SOURCE_IP), 0);
	csv(x, col(r, i, C_TLS), 0);
	csv(x, w.catch_all, 0);
	csv(x, col(r, i, C_SMTP_CODE), 0);
	csv(x, col(r, i, C_ENHANCED), 0);
	csv(x, col(r, i, C_REPLY), 0);
	csv(x, col(r, i, C_ATTEMPTS) ? col(r, i, C_ATTEMPTS) : "0", 0);
	csv(x, col(r, i, C_DURATION) ? col(r, i, C_DURATION) : "0", 0);
	csv(x, col(r, i, C_DUP), 0);
	csv(x, PQgetvalue(r, i, C_ID), 0);
	csv(x, PQgetvalue(r, i, C_INPUT), 1);
}

static void jsonl_row(emv_export *x, PGresult *r, int i)
{
	struct row w;
	char *save, *tok;

	row_of(x, r, i, &w);
	put(x, "{", 1);
	json_kv(x, "email", w.email ? w.email : "", 1);
	json_kv(x, "status", w.status, 0);
	json_kv(x, "reason", w.reason, 0);
	puts_(x, ",\"flags\":[");
	for (tok = strtok_r(w.flags, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		if (tok != w.flags)
			put(x, ",", 1);
		json_str(x, tok);
	}
	put(x, "]", 1);
	json_kv(x, "did_you_mean", w.dym[0] ? w.dym : NULL, 0);
	json_kv(x, "detail", w.detail, 0);
	json_kv(x, "mx_host", col(r, i, C_MX_HOST), 0);
	json_kv(x, "mx_ip", col(r, i, C_MX_IP), 0);
	json_kv(x, "source_ip", col(r, i, C_SOURCE_IP), 0);
	json_kv(x, "region", col(r, i, C_REGION), 0);
	json_kv(x, "tls", col(r, i, C_TLS), 0);
	json_num(x, "catch_all", w.catch_all);
	if (col(r, i, C_SMTP_CODE)) {
		puts_(x, ",\"smtp\":{\"code\":");
		puts_(x, PQgetvalue(r, i, C_SMTP_CODE));
		json_kv(x, "enhanced", col(r, i, C_ENHANCED), 0);
		json_kv(x, "reply", col(r, i, C_REPLY), 0);
		put(x, "}", 1);
	} else {
		puts_(x, ",\"smtp\":null");
	}
	json_num(x, "attempts", col(r, i, C_ATTEMPTS) ? col(r, i, C_ATTEMPTS) : "0");
	json_num(x, "duration_ms", col(r, i, C_DURATION) ? col(r, i, C_DURATION) : "0");
	json_num(x, "duplicate_of_row", col(r, i, C_DUP));
	json_num(x, "row", PQgetvalue(r, i, C_ID));
	json_kv(x, "input", PQgetvalue(r, i, C_INPUT), 0);
	puts_(x, "}\n");
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

emv_export *emv_export_open(PGconn *c, const char *job_id, const emv_export_params *p, char *err,
			    size_t errlen)
{
	emv_export *x = emv_xcalloc(1, sizeof *x);
	char statuses[128] = "";
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
	r = PQexecParams(c, "SELECT 1 FROM jobs WHERE id = $1", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			emv_set_err(err, errlen, "%s", emv_trim(PQresultErrorMessage(r)));
		else
			emv_set_err(err, errlen, "no job '%s'", job_id);
		PQclear(r);
		emv_export_close(x);
		return NULL;
	}
	PQclear(r);
	if (p->status_mask) {
		strcat(statuses, "{");
		for (int s = 0; s < EMV_STATUS__COUNT; s++)
			if (p->status_mask & (1u << s)) {
				if (statuses[1])
					strcat(statuses, ",");
				strcat(statuses, emv_status_name((emv_status)s));
			}
		strcat(statuses, "}");
	}
	params[1] = p->status_mask ? statuses : NULL;
	r = PQexecParams(c, declare_sql, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		emv_set_err(err, errlen, "export of job %s: %s", job_id, emv_trim(PQresultErrorMessage(r)));
		PQclear(r);
		emv_export_close(x);
		return NULL;
	}
	PQclear(r);
	return x;
}

long emv_export_next(emv_export *x, emv_export_write_fn fn, void *arg, char *err, size_t errlen)
{
	PGresult *r;
	int n;

	if (x->done)
		return 0;
	x->out.len = 0;
	if (!x->header_done && x->p.format == EMV_EXPORT_CSV)
		for (size_t i = 0; i < sizeof csv_columns / sizeof csv_columns[0]; i++)
			csv(x, csv_columns[i], i + 1 == sizeof csv_columns / sizeof csv_columns[0]);
	x->header_done = 1;
	r = PQexec(x->c, x->fetch);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		emv_set_err(err, errlen, "export: %s", emv_trim(PQresultErrorMessage(r)));
		PQclear(r);
		return -1;
	}
	n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		if (x->p.format == EMV_EXPORT_CSV)
			csv_row(x, r, i);
		else
			jsonl_row(x, r, i);
	}
	PQclear(r);
	x->rows += (uint64_t)n;
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
	if (x->in_tx)
		PQclear(PQexec(x->c, "ROLLBACK")); /* read only: nothing to keep */
	emv_map_free(x->dym, free);
	free(x->out.p);
	free(x);
}

static int to_file(void *arg, const char *data, size_t len)
{
	return fwrite(data, 1, len, arg) == len ? 0 : -1;
}

int emv_export_to_file(PGconn *c, const char *job_id, const emv_export_params *p, FILE *out, uint64_t *rows,
		       char *err, size_t errlen)
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
