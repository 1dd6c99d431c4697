/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_ingest_row.c - building rows: the raw text of each row (CSV
 * re-serialised), the row errors, the input limits, emv_ingest_next().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "emv_ingest_internal.h"
#include "emv_util.h"

/* ------------------------------------------------------------------ */
/* Column detection                                                    */
/* ------------------------------------------------------------------ */

/* CSV re-serialisation of n stored fields with ','; at most cap - 1 bytes
 * (fields that do not fit are left out). */
size_t ingest_serialise(const struct tok *t, size_t n, char *out, size_t cap)
{
	size_t o = 0, i, j;

	for (i = 0; i < n; i++) {
		const char *s = t->fbuf + t->fields[i].off;
		size_t len = t->fields[i].len, quotes = 0, need;
		int q = 0;

		for (j = 0; j < len; j++) {
			if (s[j] == '"')
				quotes++, q = 1;
			else if (s[j] == ',' || s[j] == '\r' || s[j] == '\n')
				q = 1;
		}
		need = (i ? 1 : 0) + len + (q ? quotes + 2 : 0);
		if (o + need + 1 > cap)
			break;
		if (i)
			out[o++] = ',';
		if (!q) {
			memcpy(out + o, s, len);
			o += len;
			continue;
		}
		out[o++] = '"';
		for (j = 0; j < len; j++) {
			if (s[j] == '"')
				out[o++] = '"';
			out[o++] = s[j];
		}
		out[o++] = '"';
	}
	if (cap)
		out[o] = '\0';
	return o;
}

size_t ingest_serialised_size(const struct tok *t, size_t n)
{
	size_t i, j, total = 1;

	for (i = 0; i < n; i++) {
		const char *s = t->fbuf + t->fields[i].off;
		size_t len = t->fields[i].len;
		total += len + 3;
		for (j = 0; j < len; j++)
			if (s[j] == '"')
				total++;
	}
	return total;
}

size_t ingest_raw_cap_max(const emv_ingest_limits *l)
{
	return 2 * l->max_row + 4 * l->max_fields + 16;
}


void ingest_row_error(emv_ingest *in, const struct tok *t)
{
	unsigned long long line = (unsigned long long)t->row_line;
	const char *why = "";
	char span[64];

	switch (t->err) {
	case TE_FIELD:
		if (t->delim < 0)
			snprintf(in->rowerr, sizeof(in->rowerr),
				 "line %llu: line is %llu bytes; the "
				 "limit is %zu",
				 line, (unsigned long long)t->err_size, t->lim.max_field);
		else
			snprintf(in->rowerr, sizeof(in->rowerr),
				 "line %llu: field %zu is %llu bytes; "
				 "the limit is %zu",
				 line, t->err_field, (unsigned long long)t->err_size, t->lim.max_field);
		return;
	case TE_FIELDS:
		snprintf(in->rowerr, sizeof(in->rowerr), "line %llu: %zu fields; the limit is %zu", line, t->nfields,
			 t->lim.max_fields);
		return;
	case TE_ROW:
		snprintf(in->rowerr, sizeof(in->rowerr),
			 "line %llu: row is %llu bytes; the limit "
			 "is %zu",
			 line, (unsigned long long)t->row_bytes, t->lim.max_row);
		return;
	case TE_RUNAWAY_BYTES: why = "is still open after the row limit of"; break;
	case TE_RUNAWAY_LINES: why = "is still open after the line limit of"; break;
	default: why = "is not closed by the end of the input"; break;
	}
	if (t->err_last_line > t->row_line)
		snprintf(span, sizeof(span), "lines %llu-%llu", line, (unsigned long long)t->err_last_line);
	else
		snprintf(span, sizeof(span), "line %llu", line);
	if (t->err == TE_RUNAWAY_EOF)
		snprintf(in->rowerr, sizeof(in->rowerr),
			 "line %llu: quoted field %zu %s; %s "
			 "rejected, reading resumes at line %llu",
			 line, t->err_field, why, span, (unsigned long long)t->err_last_line + 1);
	else
		snprintf(in->rowerr, sizeof(in->rowerr),
			 "line %llu: quoted field %zu %s %zu %s; "
			 "%s rejected, reading resumes at line %llu",
			 line, t->err_field, why, t->err == TE_RUNAWAY_BYTES ? t->lim.max_row : t->lim.max_row_lines,
			 t->err == TE_RUNAWAY_BYTES ? "bytes" : "lines", span,
			 (unsigned long long)t->err_last_line + 1);
}

static void build_row(emv_ingest *in, emv_ingest_row *row)
{
	struct tok *t = &in->tok;
	size_t n = t->nfields < in->lim.max_fields ? t->nfields : in->lim.max_fields;
	size_t need = ingest_serialised_size(t, n), col = in->col < 0 ? 0 : (size_t)in->col;

	if (need > ingest_raw_cap_max(&in->lim))
		need = ingest_raw_cap_max(&in->lim);
	ingest_grow_max(&in->raw, &in->raw_cap, need, ingest_raw_cap_max(&in->lim));
	memset(row, 0, sizeof(*row));
	row->row = ++in->rows;
	row->line = t->row_line;
	row->raw = in->raw;
	row->raw_len = ingest_serialise(t, n, in->raw, need);

	if (t->err) {
		ingest_row_error(in, t);
	} else if (col >= t->nfields) {
		snprintf(in->rowerr, sizeof(in->rowerr),
			 "line %llu: %zu field%s; the email "
			 "column is field %zu%s%s%s",
			 (unsigned long long)t->row_line, t->nfields, t->nfields == 1 ? "" : "s", col + 1,
			 in->col_name[0] ? " (\"" : "", in->col_name, in->col_name[0] ? "\")" : "");
	} else {
		size_t len;
		const char *v = ingest_tok_value(t, col, &len);
		((char *)v)[len] = '\0'; /* inside fbuf, which we own */
		row->email = v;
		row->email_len = len;
		return;
	}
	row->error = in->rowerr;
	in->err_rows++;
}

/* Past max_bytes or max_blank_lines: 1, with the input failed. */
static int over_limit(emv_ingest *in)
{
	if (in->lim.max_bytes && in->bytes > in->lim.max_bytes) {
		emv_set_err(in->err, sizeof(in->err), "%s: over the limit of %llu bytes once decompressed", in->name,
			    (unsigned long long)in->lim.max_bytes);
		in->over_limit = in->failed = 1;
		return 1;
	}
	if (in->lim.max_blank_lines && in->tok.blank_rows + in->tok.empty_lines > in->lim.max_blank_lines) {
		emv_set_err(in->err, sizeof(in->err), "%s: over the limit of %llu empty or blank lines", in->name,
			    (unsigned long long)in->lim.max_blank_lines);
		in->over_limit = in->failed = 1;
		return 1;
	}
	return 0;
}

int emv_ingest_next(emv_ingest *in, emv_ingest_row *row)
{
	if (!in || !row)
		return -1;
	if (in->failed)
		return -1;
	for (;;) {
		int r = ingest_tok_next(&in->tok, &in->p, in->end, in->eof);
		ssize_t n;

		if (r == 1) {
			if (in->skip_header) {
				in->skip_header = 0;
				continue;
			}
			if (in->lim.max_rows && in->rows >= in->lim.max_rows) {
				emv_set_err(in->err, sizeof(in->err), "%s: over the limit of %llu rows", in->name,
					    (unsigned long long)in->lim.max_rows);
				in->over_limit = in->failed = 1;
				return -1;
			}
			if (over_limit(in))
				return -1;
			build_row(in, row);
			return 1;
		}
		if (r < 0)
			return over_limit(in) ? -1 : 0;
		if (in->in_sniff) {
			/* the detection bytes are read: from now on, chunks */
			free(in->sniff);
			in->sniff = NULL;
			in->sniff_cap = in->sniff_len = 0;
			in->in_sniff = 0;
			in->p = in->end = NULL;
		}
		if (!in->chunk) {
			in->chunk_cap = in->lim.read_chunk;
			in->chunk = emv_xmalloc(in->chunk_cap);
		}
		/* checked once per chunk (and at every row and the end): a
		 * bomb of blank lines never makes a row */
		if (over_limit(in))
			return -1;
		n = ingest_src_read(in, in->chunk, in->chunk_cap);
		if (n < 0) {
			in->failed = 1;
			return -1;
		}
		if (n == 0) {
			in->eof = 1;
			continue;
		}
		in->p = in->chunk;
		in->end = in->chunk + n;
	}
}
