/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_ingest_csv.c - the CSV tokenizer: stores at most the limits and only
 * counts the rest, numbers lines across quoted line breaks, and recovers
 * from a runaway quote by replaying the bytes after its first line break.
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

void ingest_tok_init(struct tok *t, const emv_ingest_limits *lim, int delim)
{
	memset(t, 0, sizeof(*t));
	t->lim = *lim;
	t->delim = delim;
	t->state = T_ROW_START;
	t->line = 1;
	t->fbuf_max = lim->max_row + lim->max_fields + 2;
	t->stop_u['\r'] = t->stop_u['\n'] = 1;
	t->stop_q['\r'] = t->stop_q['\n'] = t->stop_q['"'] = 1;
	if (delim >= 0) {
		t->stop_u[(unsigned char)delim] = 1;
		t->stop_u['"'] = 1;
	}
}

void ingest_tok_free(struct tok *t)
{
	free(t->fbuf);
	free(t->fields);
	free(t->rec);
	free(t->replay);
	free(t->tmp);
	memset(t, 0, sizeof(*t));
}

size_t ingest_tok_memory(const struct tok *t)
{
	return t->fbuf_cap + t->fields_cap * sizeof(struct tok_field) + t->rec_cap + t->replay_cap + t->tmp_cap;
}

/* Grow *buf to hold need bytes (doubling, at least 256). */
void ingest_grow(char **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 256;

	if (need <= *cap)
		return;
	while (n < need)
		n *= 2;
	*buf = emv_xrealloc(*buf, n);
	*cap = n;
}

/* Same, but doubling stops at max when need fits in it. */
void ingest_grow_max(char **buf, size_t *cap, size_t need, size_t max)
{
	size_t n = *cap ? *cap : 256;

	if (need <= *cap)
		return;
	while (n < need)
		n *= 2;
	if (n > max && need <= max)
		n = max;
	*buf = emv_xrealloc(*buf, n);
	*cap = n;
}

static void fbuf_reserve(struct tok *t, size_t n)
{
	ingest_grow_max(&t->fbuf, &t->fbuf_cap, t->fbuf_len + n, t->fbuf_max);
}

/* Append n bytes to the current field: counted always, stored up to the limits. */
static void field_add(struct tok *t, const void *s, size_t n)
{
	size_t have, room;

	t->flen += n;
	if (t->nfields >= t->lim.max_fields)
		return;
	have = t->fbuf_len - t->fstart;
	if (have >= t->lim.max_field)
		return;
	room = t->lim.max_field - have;
	if (n > room)
		n = room;
	/* keep one byte for the field's NUL */
	room = t->fbuf_len + 1 < t->fbuf_max ? t->fbuf_max - t->fbuf_len - 1 : 0;
	if (n > room)
		n = room;
	if (!n)
		return;
	fbuf_reserve(t, n + 1);
	memcpy(t->fbuf + t->fbuf_len, s, n);
	t->fbuf_len += n;
}

static void field_store(struct tok *t)
{
	if (t->nfields < t->lim.max_fields) {
		if (t->nfields == t->fields_cap) {
			size_t n = t->fields_cap ? t->fields_cap * 2 : 16;
			if (n > t->lim.max_fields)
				n = t->lim.max_fields;
			t->fields = emv_xrealloc(t->fields, n * sizeof(*t->fields));
			t->fields_cap = n;
		}
		t->fields[t->nfields].off = t->fstart;
		t->fields[t->nfields].len = t->fbuf_len - t->fstart;
		if (t->fbuf_len < t->fbuf_max) {
			fbuf_reserve(t, 1);
			t->fbuf[t->fbuf_len++] = '\0';
		}
	}
	t->nfields++;
	t->fstart = t->fbuf_len;
	t->flen = 0;
	t->fesc = 0;
	t->after_ws = 0;
}

static void field_end(struct tok *t)
{
	if (t->flen > t->lim.max_field && !t->err) {
		t->err = TE_FIELD;
		t->err_field = t->nfields + 1;
		t->err_size = t->flen;
	}
	field_store(t);
}

/*
 * Text after a closing quote: the field becomes the literal bytes it was
 * read from.  Inside quotes a '"' can only come from '""', so doubling the
 * stored quotes gives the original back; white space after the closing
 * quote is restored as spaces.
 */
static void field_literal(struct tok *t)
{
	size_t have = t->fbuf_len - t->fstart, i, n = 0, ws;
	uint64_t flen = t->flen + t->fesc + 2 + t->after_ws;
	const char *s = have ? t->fbuf + t->fstart : ""; /* fbuf may not exist yet */

	ws = t->after_ws < t->lim.max_field ? (size_t)t->after_ws : t->lim.max_field;
	ingest_grow(&t->tmp, &t->tmp_cap, 2 * have + 2 + ws);
	t->tmp[n++] = '"';
	for (i = 0; i < have; i++) {
		if (s[i] == '"')
			t->tmp[n++] = '"';
		t->tmp[n++] = s[i];
	}
	t->tmp[n++] = '"';
	memset(t->tmp + n, ' ', ws);
	n += ws;
	t->fbuf_len = t->fstart;
	field_add(t, t->tmp, n);
	t->flen = flen;
	t->fesc = 0;
	t->after_ws = 0;
}

static void row_begin(struct tok *t)
{
	t->row_line = t->line;
	t->row_bytes = 0;
	t->row_breaks = 0;
	t->nfields = 0;
	t->flen = 0;
	t->fstart = 0;
	t->fesc = 0;
	t->after_ws = 0;
	t->fbuf_len = 0;
	t->err = TE_NONE;
	t->err_field = 0;
	t->err_size = 0;
	t->recording = 0;
	t->rec_len = 0;
}

static int row_blank(const struct tok *t)
{
	size_t i, j;

	if (t->err)
		return 0;
	for (i = 0; i < t->nfields; i++) {
		const char *s = t->fbuf + t->fields[i].off;
		for (j = 0; j < t->fields[i].len; j++)
			if (!is_ws((unsigned char)s[j]))
				return 0;
	}
	return 1;
}

/* The row is complete: 1 when it is to be handed out, 0 when blank. */
static int row_end(struct tok *t)
{
	if (t->nfields > t->lim.max_fields && !t->err)
		t->err = TE_FIELDS;
	if (t->row_bytes > t->lim.max_row && !t->err)
		t->err = TE_ROW;
	t->state = T_ROW_START;
	t->recording = 0;
	if (row_blank(t)) {
		t->blank_rows++;
		return 0;
	}
	return 1;
}

static void tok_break(struct tok *t, unsigned c)
{
	if (c == '\n' && t->prev_cr) {
		t->prev_cr = 0;
	} else {
		t->line++;
		t->prev_cr = c == '\r';
	}
	t->line_open = 0;
}

/* One byte of the row that is not a line break. */
static void tok_byte(struct tok *t)
{
	t->row_bytes++;
	t->prev_cr = 0;
	t->line_open = 1;
}

static void rec_append(struct tok *t, const unsigned char *s, size_t n)
{
	if (!n)
		return;
	ingest_grow_max(&t->rec, &t->rec_cap, t->rec_len + n, t->lim.max_row + 2);
	memcpy(t->rec + t->rec_len, s, n);
	t->rec_len += n;
}

/* The current quoted field ran away: end the row at its first line break. */
static void tok_runaway(struct tok *t, int kind)
{
	t->fbuf_len = t->brk_fbuf_len;
	t->nfields = t->brk_nfields;
	t->flen = 0;
	field_store(t);
	t->err = kind;
	t->err_field = t->brk_nfields + 1;
	t->err_size = 0;
	t->err_last_line = t->brk_line;
	t->line = t->resume_line;
	t->prev_cr = t->resume_cr;
	t->line_open = 0;
	t->recording = 0;
	t->state = T_ROW_START;
	t->recovered = 1;
}

/*
 * Consume bytes from *pp up to end until a row is complete (returns 1,
 * *pp after its line break) or the bytes run out (returns 0).
 */
static int tok_run(struct tok *t, const char **pp, const char *end)
{
	const unsigned char *p = (const unsigned char *)*pp;
	const unsigned char *e = (const unsigned char *)end;
	const unsigned char *rec_from = p;
	int done = 0, runaway = TE_NONE;

	while (p < e && !done) {
		unsigned c = *p;

		switch (t->state) {
		case T_ROW_START:
			if (c == '\r' || c == '\n') {
				p++;
				if (!(c == '\n' && t->prev_cr))
					t->empty_lines++;
				tok_break(t, c);
				break;
			}
			row_begin(t);
			t->state = T_FIELD_START;
			break;

		case T_FIELD_START:
			if ((int)c == t->delim) {
				p++;
				tok_byte(t);
				field_end(t);
			} else if (c == '\r' || c == '\n') {
				p++;
				field_end(t);
				tok_break(t, c);
				done = row_end(t);
			} else if (c == '"' && t->delim >= 0) {
				p++;
				tok_byte(t);
				t->fbuf_len = t->fstart; /* white space before the quote */
				t->flen = 0;
				t->state = T_QUOTED;
			} else if (c == ' ' || c == '\t') {
				field_add(t, p, 1);
				p++;
				tok_byte(t);
			} else {
				t->state = T_UNQUOTED;
			}
			break;

		case T_UNQUOTED: {
			const unsigned char *q = p;

			while (q < e && !t->stop_u[*q])
				q++;
			if (q > p) {
				field_add(t, p, (size_t)(q - p));
				t->row_bytes += (uint64_t)(q - p);
				t->prev_cr = 0;
				t->line_open = 1;
				p = q;
				break;
			}
			p++;
			if ((int)c == t->delim) {
				tok_byte(t);
				field_end(t);
				t->state = T_FIELD_START;
			} else if (c == '"') {
				tok_byte(t);
				field_add(t, p - 1, 1);
			} else {
				field_end(t);
				tok_break(t, c);
				done = row_end(t);
			}
			break;
		}

		case T_QUOTED: {
			const unsigned char *q = p, *lim = e;

			if (t->recording) {
				uint64_t room = t->row_bytes <= t->lim.max_row ? t->lim.max_row + 1 - t->row_bytes : 1;
				if ((uint64_t)(e - p) > room)
					lim = p + room;
			}
			while (q < lim && !t->stop_q[*q])
				q++;
			if (q > p) {
				field_add(t, p, (size_t)(q - p));
				t->row_bytes += (uint64_t)(q - p);
				t->prev_cr = 0;
				t->line_open = 1;
				p = q;
				if (t->recording && t->row_bytes > t->lim.max_row)
					runaway = TE_RUNAWAY_BYTES;
				break;
			}
			p++;
			if (c == '"') {
				tok_byte(t);
				t->state = T_QUOTE_SEEN;
				break;
			}
			/* a line break inside quotes belongs to the value */
			{
				size_t before = t->fbuf_len;

				field_add(t, p - 1, 1);
				t->row_bytes++;
				if (c == '\n' && t->prev_cr) {
					t->prev_cr = 0;
				} else {
					t->line++;
					t->prev_cr = c == '\r';
					t->line_open = 0;
					t->row_breaks++;
					if (!t->recording) {
						t->recording = 1;
						t->rec_len = 0;
						rec_from = p;
						t->resume_line = t->line;
						t->resume_cr = t->prev_cr;
						t->brk_line = t->line - 1;
						t->brk_nfields = t->nfields;
						t->brk_fbuf_len = before;
					}
					if (t->row_breaks >= t->lim.max_row_lines)
						runaway = TE_RUNAWAY_LINES;
				}
				if (t->row_bytes > t->lim.max_row)
					runaway = TE_RUNAWAY_BYTES;
			}
			break;
		}

		case T_QUOTE_SEEN:
			if (c == '"') {
				p++;
				tok_byte(t);
				field_add(t, p - 1, 1);
				t->fesc++;
				t->state = T_QUOTED;
				if (t->recording && t->row_bytes > t->lim.max_row)
					runaway = TE_RUNAWAY_BYTES;
				break;
			}
			/* the quote closed the field */
			t->recording = 0;
			t->rec_len = 0;
			if ((int)c == t->delim) {
				p++;
				tok_byte(t);
				field_end(t);
				t->state = T_FIELD_START;
			} else if (c == '\r' || c == '\n') {
				p++;
				field_end(t);
				tok_break(t, c);
				done = row_end(t);
			} else if (c == ' ' || c == '\t') {
				p++;
				tok_byte(t);
				t->after_ws = 1;
				t->state = T_AFTER_QUOTE;
			} else {
				field_literal(t);
				t->state = T_UNQUOTED;
			}
			break;

		case T_AFTER_QUOTE:
			if ((int)c == t->delim) {
				p++;
				tok_byte(t);
				field_end(t);
				t->state = T_FIELD_START;
			} else if (c == '\r' || c == '\n') {
				p++;
				field_end(t);
				tok_break(t, c);
				done = row_end(t);
			} else if (c == ' ' || c == '\t') {
				p++;
				tok_byte(t);
				t->after_ws++;
			} else {
				field_literal(t);
				t->state = T_UNQUOTED;
			}
			break;

		default: abort(); /* unknown state: a bug */
		}

		if (runaway != TE_NONE && t->recording) {
			rec_append(t, rec_from, (size_t)(p - rec_from));
			tok_runaway(t, runaway);
			done = 1;
		}
		runaway = TE_NONE;
	}
	if (t->recording)
		rec_append(t, rec_from, (size_t)(p - rec_from));
	*pp = (const char *)p;
	return done;
}

/* End of input: finish a pending row (1 when it is to be handed out). */
static int tok_eof(struct tok *t)
{
	switch (t->state) {
	case T_ROW_START: return 0;
	case T_QUOTED:
		if (t->recording) {
			tok_runaway(t, TE_RUNAWAY_EOF);
			return 1;
		}
		/* still open on its first line: taken as it is */
		break;
	default: break;
	}
	t->recording = 0;
	t->rec_len = 0;
	field_end(t);
	return row_end(t);
}

/* After a runaway: what was recorded is read again, before anything else. */
static void tok_requeue(struct tok *t, int from_replay)
{
	size_t rem = from_replay ? t->replay_len - t->replay_pos : 0;
	char *b;
	size_t cap;

	if (rem) {
		ingest_grow_max(&t->rec, &t->rec_cap, t->rec_len + rem, t->lim.max_row + 2);
		memcpy(t->rec + t->rec_len, t->replay + t->replay_pos, rem);
		t->rec_len += rem;
	}
	b = t->replay, cap = t->replay_cap;
	t->replay = t->rec, t->replay_cap = t->rec_cap;
	t->rec = b, t->rec_cap = cap;
	t->replay_len = t->rec_len;
	t->replay_pos = 0;
	t->rec_len = 0;
	t->recovered = 0;
}

/*
 * Next row from the replayed bytes, then *pp..end, then (eof) the end of
 * input.  1 = a row is ready in t, 0 = more input needed, -1 = no more rows.
 */
int ingest_tok_next(struct tok *t, const char **pp, const char *end, int eof)
{
	for (;;) {
		int done;

		if (t->replay_pos < t->replay_len) {
			const char *rp = t->replay + t->replay_pos;
			done = tok_run(t, &rp, t->replay + t->replay_len);
			t->replay_pos = (size_t)(rp - t->replay);
			if (t->recovered)
				tok_requeue(t, 1);
			if (done)
				return 1;
			continue;
		}
		if (*pp < end) {
			done = tok_run(t, pp, end);
			if (t->recovered)
				tok_requeue(t, 0);
			if (done)
				return 1;
			continue;
		}
		if (!eof)
			return 0;
		done = tok_eof(t);
		if (t->recovered)
			tok_requeue(t, 0);
		if (done)
			return 1;
		if (t->replay_pos >= t->replay_len)
			return -1;
	}
}

uint64_t ingest_tok_lines(const struct tok *t)
{
	return t->line - 1 + (t->line_open ? 1 : 0);
}

/* Stored field i, trimmed (and in one-column mode unquoted in place). */
const char *ingest_tok_value(struct tok *t, size_t i, size_t *len)
{
	char *s = t->fbuf + t->fields[i].off;
	size_t n = t->fields[i].len;
	const char *v = trim_span(s, &n);

	if (t->delim < 0 && n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		/* a line wholly in quotes with only doubled quotes inside */
		size_t j, k = 0;
		char *w = s;
		for (j = 1; j + 1 < n; j++) {
			if (v[j] == '"') {
				if (j + 2 < n && v[j + 1] == '"')
					j++;
				else
					break;
			}
		}
		if (j + 1 >= n) {
			for (j = 1; j + 1 < n; j++) {
				w[k++] = v[j];
				if (v[j] == '"')
					j++;
			}
			n = k;
			v = trim_span(w, &n);
		}
	}
	*len = n;
	return v;
}
