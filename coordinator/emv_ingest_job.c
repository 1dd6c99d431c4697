/* SPDX-License-Identifier: Apache-2.0 */
/* emv_ingest_job.c - list -> job rows with COPY (see emv_ingest_job.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_address.h"
#include "emv_ingest.h"
#include "emv_ingest_job.h"
#include "emv_result.h"
#include "emv_utf8.h"
#include "emv_util.h"

#define COPY_CHUNK (256 * 1024)

struct out {
	PGconn *c;
	char *buf;
	size_t len;
	int failed;
};

static void flush_out(struct out *o)
{
	if (o->len && !o->failed && PQputCopyData(o->c, o->buf, (int)o->len) != 1)
		o->failed = 1;
	o->len = 0;
}

static void add(struct out *o, const char *s, size_t n)
{
	if (o->len + n > COPY_CHUNK)
		flush_out(o);
	while (n > COPY_CHUNK) { /* cannot happen with bounded rows; stay safe */
		if (!o->failed && PQputCopyData(o->c, s, COPY_CHUNK) != 1)
			o->failed = 1;
		s += COPY_CHUNK;
		n -= COPY_CHUNK;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

/* A field in COPY text format: backslash escapes, \N for NULL.  Bytes that
 * are not valid in the server encoding would abort the COPY, so the text
 * is made printable ASCII where it is not UTF-8 (the original is input
 * data we keep as well as we can, never a reason to lose the row). */
static void field(struct out *o, const char *s, size_t n, int last)
{
	char tmp[8];
	if (!s) {
		add(o, "\\N", 2);
	} else {
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)s[i];
			switch (ch) {
			case '\\': add(o, "\\\\", 2); break;
			case '\t': add(o, "\\t", 2); break;
			case '\n': add(o, "\\n", 2); break;
			case '\r': add(o, "\\r", 2); break;
			default:
				if (ch == 0 || ch == 0x7f || ch < 0x20) {
					add(o, "?", 1);
				} else if (ch >= 0x80) {
					/* copy a valid UTF-8 sequence whole, else '?' */
					size_t len = emv_utf8_len((const unsigned char *)s + i, n - i);
					if (len) {
						add(o, s + i, len);
						i += len - 1;
					} else {
						add(o, "?", 1);
					}
				} else {
					tmp[0] = (char)ch;
					add(o, tmp, 1);
				}
			}
		}
	}
	add(o, last ? "\n" : "\t", 1);
}

static void field_u64(struct out *o, uint64_t v, int last)
{
	char n[24];
	int k = snprintf(n, sizeof n, "%llu", (unsigned long long)v);
	field(o, n, (size_t)k, last);
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok) {
		char msg[512];
		emv_strlcpy(msg, PQresultErrorMessage(r), sizeof msg);
		emv_set_err(err, errlen, "%s", emv_trim(msg));
	}
	PQclear(r);
	return ok ? EMV_OK : EMV_ERR;
}

static int params_ok(PGconn *c, const char *sql, int n, const char *const *v, char *out, size_t outlen, char *err,
		     size_t errlen)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok) {
		char msg[512];
		emv_strlcpy(msg, PQresultErrorMessage(r), sizeof msg);
		emv_set_err(err, errlen, "%s", emv_trim(msg));
	} else if (out && PQntuples(r) > 0) {
		emv_strlcpy(out, PQgetvalue(r, 0, 0), outlen);
	}
	PQclear(r);
	return ok ? EMV_OK : EMV_ERR;
}

int emv_ingest_job(PGconn *c, const emv_lists *lists, const char *tenant, const char *name, const char *path,
		   emv_ingest_job_stats *st, char *err, size_t errlen)
{
	return emv_ingest_job_fd(c, lists, tenant, name, -1, path, st, err, errlen);
}

int emv_ingest_job_fd(PGconn *c, const emv_lists *lists, const char *tenant, const char *name, int fd, const char *path,
		      emv_ingest_job_stats *st, char *err, size_t errlen)
{
	return emv_ingest_job_stream(c, lists, tenant, name, fd, path, NULL, NULL, NULL, st, err, errlen);
}

int emv_ingest_job_stream(PGconn *c, const emv_lists *lists, const char *tenant, const char *name, int fd,
			  const char *path, const emv_ingest_limits *limits,
			  int (*before_commit)(PGconn *c, const char *job_id, void *arg, char *err, size_t errlen),
			  void *arg, emv_ingest_job_stats *st, char *err, size_t errlen)
{
	emv_ingest_limits lim;
	emv_ingest *in;
	emv_ingest_row row;
	emv_dedup *dd = NULL;
	struct out o = { c, NULL, 0, 0 };
	char ierr[512];
	uint64_t t0 = emv_now_ms();
	int rc;

	memset(st, 0, sizeof *st);
	if (limits)
		lim = *limits;
	else
		emv_ingest_limits_default(&lim);
	in = fd >= 0 ? emv_ingest_open_fd(fd, path, &lim, ierr, sizeof ierr)
		     : emv_ingest_open(path, &lim, ierr, sizeof ierr);
	if (!in) {
		st->input_error = 1;
		emv_set_err(err, errlen, "%s", ierr);
		return EMV_ERR;
	}
	if (exec_ok(c, "BEGIN", err, errlen) != EMV_OK)
		goto fail_noabort;
	{
		const char *v[2] = { tenant, name ? name : "" };
		if (params_ok(c,
			      "INSERT INTO jobs (id, tenant, name) VALUES (gen_random_uuid()::text, $1, $2) RETURNING id",
			      2, v, st->job_id, sizeof st->job_id, err, errlen) != EMV_OK)
			goto fail;
	}
	{
		PGresult *r = PQexec(c, "COPY addresses (job_id, id, input, address, domain, flags, duplicate_of, "
					"error_reason, error) FROM STDIN");
		if (PQresultStatus(r) != PGRES_COPY_IN) {
			emv_set_err(err, errlen, "COPY addresses: %s", PQresultErrorMessage(r));
			PQclear(r);
			goto fail;
		}
		PQclear(r);
	}
	o.buf = emv_xmalloc(COPY_CHUNK);
	dd = emv_dedup_new(0);
	while ((rc = emv_ingest_next(in, &row)) == 1 && !o.failed) {
		emv_address a;
		uint64_t first = 0;
		st->rows++;
		field(&o, st->job_id, strlen(st->job_id), 0);
		field_u64(&o, row.row, 0);
		field(&o, row.raw, row.raw_len, 0);
		if (row.error) {
			st->row_errors++;
			field(&o, NULL, 0, 0);
			field(&o, NULL, 0, 0);
			field(&o, "0", 1, 0);
			field(&o, NULL, 0, 0);
			field(&o, emv_reason_name(EMV_REASON_INPUT_ERROR),
			      strlen(emv_reason_name(EMV_REASON_INPUT_ERROR)), 0);
			field(&o, row.error, strlen(row.error), 1);
			continue;
		}
		if (emv_address_parse(row.email, row.email_len, &a) != EMV_OK) {
			char why[256], given[1100];
			int n = snprintf(why, sizeof why, "%s: %s", emv_address_error_name(a.error), a.detail);
			/* the address as given (sanitised), so exports can show it */
			size_t gl = emv_sanitize(given, sizeof given, row.email, row.email_len);
			st->invalid++;
			field(&o, given, gl, 0);
			field(&o, NULL, 0, 0);
			field(&o, "0", 1, 0);
			field(&o, NULL, 0, 0);
			field(&o, emv_reason_name(EMV_REASON_INVALID_SYNTAX),
			      strlen(emv_reason_name(EMV_REASON_INVALID_SYNTAX)), 0);
			field(&o, why, (size_t)n, 1);
			continue;
		}
		field(&o, a.address, strlen(a.address), 0);
		field(&o, a.domain, strlen(a.domain), 0);
		field_u64(&o, a.flags | emv_lists_flags(lists, a.local, a.domain), 0);
		if (emv_dedup_add(dd, a.address, strlen(a.address), row.row, &first) == 0) {
			st->duplicates++;
			field_u64(&o, first, 0);
		} else {
			st->unique++;
			field(&o, NULL, 0, 0);
		}
		field(&o, NULL, 0, 0);
		field(&o, NULL, 0, 1);
	}
	flush_out(&o);
	if (rc < 0 || o.failed) {
		if (rc < 0) {
			st->input_error = 1;
			st->over_limit = emv_ingest_over_limit(in);
			if (st->over_limit)
				emv_set_err(err, errlen, "%s", emv_ingest_error(in));
			else
				emv_set_err(err, errlen, "reading %s: %s", path, emv_ingest_error(in));
		} else
			emv_set_err(err, errlen, "COPY addresses: %s", PQerrorMessage(c));
		PQputCopyEnd(c, "aborted");
		PQclear(PQgetResult(c));
		goto fail;
	}
	if (PQputCopyEnd(c, NULL) != 1) {
		emv_set_err(err, errlen, "COPY addresses: %s", PQerrorMessage(c));
		goto fail;
	}
	{
		PGresult *r = PQgetResult(c);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok)
			emv_set_err(err, errlen, "COPY addresses: %s", PQresultErrorMessage(r));
		PQclear(r);
		while ((r = PQgetResult(c)))
			PQclear(r);
		if (!ok)
			goto fail;
	}
	{
		/* rows that cannot be verified are final now; counters follow */
		char rows[24], uniq[24], bad[24];
		const char *v[4] = { st->job_id, rows, uniq, bad };
		snprintf(rows, sizeof rows, "%llu", (unsigned long long)st->rows);
		snprintf(uniq, sizeof uniq, "%llu", (unsigned long long)st->unique);
		snprintf(bad, sizeof bad, "%llu", (unsigned long long)(st->invalid + st->row_errors));
		if (params_ok(c,
			      "INSERT INTO results (job_id, address_id, status, reason, final) "
			      "SELECT job_id, id, CASE error_reason WHEN 'invalid_syntax' THEN 'undeliverable' "
			      "ELSE 'unknown' END, error_reason, true FROM addresses "
			      "WHERE job_id = $1 AND error_reason IS NOT NULL",
			      1, v, NULL, 0, err, errlen) != EMV_OK)
			goto fail;
		if (params_ok(c,
			      "UPDATE jobs SET rows_total = $2, addresses_total = $3, n_final = $4, n_unusable = $4, "
			      "n_undeliverable = (SELECT count(*) FROM results WHERE job_id = $1 "
			      "  AND status = 'undeliverable'), "
			      "n_unknown = (SELECT count(*) FROM results WHERE job_id = $1 AND status = 'unknown'), "
			      "state = 'splitting' WHERE id = $1",
			      4, v, NULL, 0, err, errlen) != EMV_OK)
			goto fail;
	}
	if (before_commit && before_commit(c, st->job_id, arg, err, errlen) != EMV_OK)
		goto fail;
	if (exec_ok(c, "COMMIT", err, errlen) != EMV_OK)
		goto fail_noabort;
	/* a big job changes the table's shape at once: fresh statistics, so the
	 * sink's lookups use the key rather than a scan planned for an empty
	 * table (autovacuum would come later; failure here costs only speed) */
	exec_ok(c, "ANALYZE addresses", NULL, 0);
	st->seconds = (double)(emv_now_ms() - t0) / 1000.0;
	free(o.buf);
	emv_dedup_free(dd);
	emv_ingest_close(in);
	return EMV_OK;

fail:
	exec_ok(c, "ROLLBACK", NULL, 0);
fail_noabort:
	free(o.buf);
	if (dd)
		emv_dedup_free(dd);
	emv_ingest_close(in);
	st->job_id[0] = '\0';
	return EMV_ERR;
}
