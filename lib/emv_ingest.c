/*
 * emv_ingest.c - streaming list reader and de-duplication set (see
 * emv_ingest.h for the rules).
 *
 * Layers, bottom up: the source (read(2) or a buffer; gzip through zlib's
 * inflate), the sniffer (the first bytes: format magic, binary content,
 * byte-order mark), a CSV tokenizer that stores at most the limits and only
 * counts the rest, the column detection (a tokenizer pass over the sniffed
 * bytes, which are then replayed to the reading tokenizer, so row and line
 * numbers are those of one straight pass) and the row builder.
 *
 * The tokenizer is ours rather than libcsv's: libcsv keeps a whole field in
 * a buffer that grows without bound (an unclosed quote in a 2 GB upload
 * costs 2 GB of memory) and reports no positions, so it cannot number
 * lines across quoted line breaks or resynchronise after a stray quote.
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
#define ZLIB_CONST
#include <zlib.h>

#include "emv_ingest.h"
#include "emv_utf8.h"
#include "emv_util.h"

#define LIMIT_MAX ((size_t)1 << 30)

void emv_ingest_limits_default(emv_ingest_limits *l)
{
	l->max_field = EMV_INGEST_MAX_FIELD;
	l->max_fields = EMV_INGEST_MAX_FIELDS;
	l->max_row = EMV_INGEST_MAX_ROW;
	l->max_row_lines = EMV_INGEST_MAX_ROW_LINES;
	l->detect_rows = EMV_INGEST_DETECT_ROWS;
	l->detect_bytes = EMV_INGEST_DETECT_BYTES;
	l->read_chunk = EMV_INGEST_READ_CHUNK;
	l->max_rows = l->max_bytes = l->max_blank_lines = 0;
}

static int limits_valid(const emv_ingest_limits *l)
{
	const size_t v[] = { l->max_field, l->max_fields, l->max_row, l->max_row_lines,
	                     l->detect_rows, l->detect_bytes, l->read_chunk };
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (v[i] == 0 || v[i] > LIMIT_MAX)
			return 0;
	return 1;
}

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trim ASCII white space from both ends of s[0..*len). */
static const char *trim_span(const char *s, size_t *len)
{
	size_t n = *len;

	while (n && is_ws((unsigned char)*s))
		s++, n--;
	while (n && is_ws((unsigned char)s[n - 1]))
		n--;
	*len = n;
	return s;
}

/* An '@' that is neither the first nor the last byte, after trimming. */
static int has_at(const char *s, size_t len)
{
	s = trim_span(s, &len);
	return len >= 3 && memchr(s + 1, '@', len - 2) != NULL;
}

/* ------------------------------------------------------------------ */
/* Tokenizer                                                           */
/* ------------------------------------------------------------------ */

enum tok_state { T_ROW_START, T_FIELD_START, T_UNQUOTED, T_QUOTED, T_QUOTE_SEEN, T_AFTER_QUOTE };

/* Row errors, most specific first when several apply. */
enum tok_err {
	TE_NONE = 0,
	TE_FIELD,          /* a field over max_field */
	TE_FIELDS,         /* more than max_fields fields */
	TE_ROW,            /* more than max_row bytes */
	TE_RUNAWAY_BYTES,  /* quoted field still open at max_row bytes */
	TE_RUNAWAY_LINES,  /* ... at max_row_lines lines */
	TE_RUNAWAY_EOF     /* ... at the end of the input */
};

struct tok_field {
	size_t off, len;   /* stored bytes in fbuf (NUL follows when there was room) */
};

struct tok {
	emv_ingest_limits lim;
	int delim;                   /* -1: one column, no quoting */
	unsigned char stop_u[256];   /* bytes that end a run in an unquoted field */
	unsigned char stop_q[256];   /* ... in a quoted field */

	int state;
	uint64_t line;               /* line of the next byte */
	int prev_cr;                 /* last byte was a CR line break */
	int line_open;               /* bytes consumed since the last line break */
	uint64_t blank_rows;
	uint64_t empty_lines;        /* lines with nothing on them between rows */

	/* the current row */
	uint64_t row_line;
	uint64_t row_bytes;          /* bytes consumed, without the ending line break */
	uint64_t row_breaks;         /* line breaks inside quotes */
	size_t nfields;              /* completed fields (stored: min(nfields, max_fields)) */
	uint64_t flen;               /* true length of the current field's value */
	size_t fstart;               /* the current field's offset in fbuf */
	uint64_t fesc;               /* "" pairs in the current quoted field */
	uint64_t after_ws;           /* white space after its closing quote */
	char *fbuf;
	size_t fbuf_len, fbuf_cap, fbuf_max;
	struct tok_field *fields;
	size_t fields_cap;
	int err;
	size_t err_field;            /* 1-based */
	uint64_t err_size;
	uint64_t err_last_line;      /* runaway: last line of the error row */

	/*
	 * Runaway quote recovery.  From the first line break inside the
	 * current quoted field, the bytes consumed are copied to rec; when
	 * the field runs away, the row ends at that line break and rec is
	 * read again (replay) from the next line.  rec never exceeds about
	 * max_row bytes because the field runs away when the row does.
	 */
	int recording;
	int recovered;
	uint64_t resume_line;
	int resume_cr;
	size_t brk_nfields, brk_fbuf_len;
	uint64_t brk_line;
	char *rec;
	size_t rec_len, rec_cap;
	char *replay;
	size_t replay_len, replay_pos, replay_cap;

	char *tmp;
	size_t tmp_cap;
};

static void tok_init(struct tok *t, const emv_ingest_limits *lim, int delim)
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

static void tok_free(struct tok *t)
{
	free(t->fbuf);
	free(t->fields);
	free(t->rec);
	free(t->replay);
	free(t->tmp);
	memset(t, 0, sizeof(*t));
}

static size_t tok_memory(const struct tok *t)
{
	return t->fbuf_cap + t->fields_cap * sizeof(struct tok_field) + t->rec_cap +
	       t->replay_cap + t->tmp_cap;
}

/* Grow *buf to hold need bytes (doubling, at least 256). */
static void grow(char **buf, size_t *cap, size_t need)
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
static void grow_max(char **buf, size_t *cap, size_t need, size_t max)
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
	grow_max(&t->fbuf, &t->fbuf_cap, t->fbuf_len + n, t->fbuf_max);
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
	const char *s = have ? t->fbuf + t->fstart : "";   /* fbuf may not exist yet */

	ws = t->after_ws < t->lim.max_field ? (size_t)t->after_ws : t->lim.max_field;
	grow(&t->tmp, &t->tmp_cap, 2 * have + 2 + ws);
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
	grow_max(&t->rec, &t->rec_cap, t->rec_len + n, t->lim.max_row + 2);
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
				t->fbuf_len = t->fstart;   /* white space before the quote */
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
				uint64_t room = t->row_bytes <= t->lim.max_row ?
				                t->lim.max_row + 1 - t->row_bytes : 1;
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

		default:
			abort();   /* unknown state: a bug */
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
	case T_ROW_START:
		return 0;
	case T_QUOTED:
		if (t->recording) {
			tok_runaway(t, TE_RUNAWAY_EOF);
			return 1;
		}
		/* still open on its first line: taken as it is */
		break;
	default:
		break;
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
		grow_max(&t->rec, &t->rec_cap, t->rec_len + rem, t->lim.max_row + 2);
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
static int tok_next(struct tok *t, const char **pp, const char *end, int eof)
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

static uint64_t tok_lines(const struct tok *t)
{
	return t->line - 1 + (t->line_open ? 1 : 0);
}

/* Stored field i, trimmed (and in one-column mode unquoted in place). */
static const char *tok_value(struct tok *t, size_t i, size_t *len)
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

/* ------------------------------------------------------------------ */
/* Header names                                                        */
/* ------------------------------------------------------------------ */

/* Compared lower-cased (ASCII) with ASCII punctuation and spaces removed. */
static const char *const email_names[] = {
	"email", "emails", "emailaddress", "emailaddresses", "emailaddr", "emailid",
	"mailaddress", "electronicmail", "electronicmailaddress", "eaddress",
	"emailadresse", "emailadres", "emailadress", "emailadresa", "emailcím", "emailcim",
	"epost", "epostadresse", "epostadress", "eposta", "epostaadresi",
	"courriel", "adressecourriel", "adresseemail", "adressemail",
	"adresseélectronique", "adresseelectronique", "mél",
	"correo", "correoelectronico", "correoelectrónico", "direcciondecorreo",
	"direccióndecorreo", "direcciondecorreoelectronico", "direccióndecorreoelectrónico",
	"enderecodeemail", "endereçodeemail", "indirizzoemail", "postaelettronica",
	"sähköposti", "sähköpostiosoite", "sahkoposti", "adresemail",
	"электроннаяпочта", "メールアドレス", "電子メール", "电子邮件", "电子邮箱",
	"邮箱", "邮件地址", "電子郵件", "이메일", "이메일주소",
};

/* Weak names: chosen only when the data agrees. */
static const char *const weak_names[] = {
	"address", "addresses", "contact", "contacts", "login", "username", "user", "userid",
	"recipient", "recipients", "to", "adresse", "direccion", "dirección", "indirizzo",
	"endereco", "endereço",
};

/* 1: an email name; 2: mentions mail; 3: a weak name; 4: anything else. */
static int name_tier(const char *s, size_t len)
{
	char n[65];
	size_t i, k = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
			if (k == sizeof(n) - 1)
				return 4;
			n[k++] = (char)c;
		}
	}
	n[k] = '\0';
	if (!k)
		return 4;
	for (i = 0; i < sizeof(email_names) / sizeof(email_names[0]); i++)
		if (strcmp(n, email_names[i]) == 0)
			return 1;
	if (strstr(n, "mail") || strstr(n, "courriel") || strstr(n, "correo") ||
	    strstr(n, "メール") || strstr(n, "邮"))
		return 2;
	for (i = 0; i < sizeof(weak_names) / sizeof(weak_names[0]); i++)
		if (strcmp(n, weak_names[i]) == 0)
			return 3;
	return 4;
}

/* A one-column header: a word, not a mangled address. */
static int wordlike(const char *s, size_t len)
{
	size_t i, letters = 0;

	if (len == 0 || len > 64)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '@' || c == '.' || c < 0x20 || c == 0x7f)
			return 0;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80)
			letters++;
	}
	return letters > 0;
}

/* ------------------------------------------------------------------ */
/* The handle and its source                                           */
/* ------------------------------------------------------------------ */

struct emv_ingest {
	emv_ingest_limits lim;
	char name[256];

	/* raw source */
	int fd, own_fd, is_mem;
	const unsigned char *mem;
	size_t mem_len, mem_pos;
	int raw_eof;
	uint64_t raw_read, size;
	unsigned char *zin;          /* raw read buffer (fd) */
	size_t zin_cap, pend_pos, pend_len;
	int gz, gz_live, gz_done, gz_failed;
	unsigned gz_members;
	z_stream zs;
	size_t zmem;                 /* bytes allocated by zlib */

	/* decoded stream */
	char *sniff;
	size_t sniff_len, sniff_cap;
	int in_sniff;
	char *chunk;
	size_t chunk_cap;
	const char *p, *end;
	int eof;
	uint64_t bytes;

	struct tok tok;

	/* format */
	int delim;                   /* 0: one column */
	int col;                     /* -1: one address per line */
	int has_header, skip_header, bom;
	const char *by;
	char *header;
	char col_name[128];
	char desc[320];

	/* progress */
	uint64_t rows, err_rows;
	int failed;
	int over_limit;              /* failed past max_rows/max_bytes/max_blank_lines */
	char err[512];

	char *raw;
	size_t raw_cap;
	char rowerr[320];
};

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
	emv_ingest *in = opaque;
	size_t n = (size_t)items * size;
	size_t *p = emv_xmalloc(n + 16);

	p[0] = n;
	in->zmem += n;
	return (char *)p + 16;
}

static void z_free(voidpf opaque, voidpf ptr)
{
	emv_ingest *in = opaque;
	size_t *p;

	if (!ptr)
		return;
	p = (size_t *)(void *)((char *)ptr - 16);
	in->zmem -= p[0];
	free(p);
}

static ssize_t raw_read(emv_ingest *in, void *buf, size_t cap)
{
	if (in->is_mem) {
		size_t n = in->mem_len - in->mem_pos;
		if (n > cap)
			n = cap;
		if (n)
			memcpy(buf, in->mem + in->mem_pos, n);
		in->mem_pos += n;
		in->raw_read += n;
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t n = read(in->fd, buf, cap);
		if (n >= 0) {
			in->raw_read += (uint64_t)n;
			return n;
		}
		if (errno == EINTR)
			continue;
		fmt_err(in->err, sizeof(in->err), "%s: read error: %s", in->name, strerror(errno));
		return -1;
	}
}

static int gz_fill(emv_ingest *in)
{
	ssize_t n;

	if (in->is_mem) {
		size_t m = in->mem_len - in->mem_pos;
		if (m > in->lim.read_chunk)
			m = in->lim.read_chunk;
		if (!m) {
			in->raw_eof = 1;
			return 0;
		}
		in->zs.next_in = in->mem + in->mem_pos;
		in->zs.avail_in = (uInt)m;
		in->mem_pos += m;
		in->raw_read += m;
		return 0;
	}
	n = raw_read(in, in->zin, in->zin_cap);
	if (n < 0)
		return -1;
	if (n == 0)
		in->raw_eof = 1;
	in->zs.next_in = in->zin;
	in->zs.avail_in = (uInt)n;
	return 0;
}

static ssize_t gz_read(emv_ingest *in, char *dst, size_t cap)
{
	if (in->gz_failed)
		return -1;
	if (in->gz_done)
		return 0;
	in->zs.next_out = (Bytef *)dst;
	in->zs.avail_out = (uInt)cap;
	for (;;) {
		size_t produced;
		int rc;

		if (in->zs.avail_in == 0 && !in->raw_eof && gz_fill(in) < 0)
			return -1;
		rc = inflate(&in->zs, Z_NO_FLUSH);
		produced = cap - in->zs.avail_out;
		if (rc == Z_STREAM_END) {
			if (in->zs.avail_in == 0 && !in->raw_eof && gz_fill(in) < 0)
				return -1;
			if (in->zs.avail_in == 0) {
				in->gz_done = 1;
				return (ssize_t)produced;
			}
			inflateReset(&in->zs);   /* the next member */
			in->gz_members++;
			if (produced)
				return (ssize_t)produced;
			continue;
		}
		if (rc == Z_OK || rc == Z_BUF_ERROR) {
			if (produced)
				return (ssize_t)produced;
			if (in->zs.avail_in || !in->raw_eof)
				continue;
		}
		/* After a complete member, bytes that do not start another one are
		 * trailing garbage, ignored as gzip(1) does. */
		if (in->gz_members && in->zs.total_in < 10) {
			in->gz_done = 1;
			return (ssize_t)produced;
		}
		if (rc == Z_OK || rc == Z_BUF_ERROR)
			fmt_err(in->err, sizeof(in->err), "%s: truncated gzip data", in->name);
		else
			fmt_err(in->err, sizeof(in->err), "%s: corrupt gzip data (%s)", in->name,
			        in->zs.msg ? in->zs.msg : "inflate failed");
		/* hand out what was decoded before the damage; fail next time */
		in->gz_failed = 1;
		return produced ? (ssize_t)produced : -1;
	}
}

/* Decoded bytes: n > 0, 0 at the end, -1 on error (in->err). */
static ssize_t src_read(emv_ingest *in, char *dst, size_t cap)
{
	ssize_t n;

	if (in->gz)
		n = gz_read(in, dst, cap);
	else if (in->pend_pos < in->pend_len) {
		size_t m = in->pend_len - in->pend_pos;
		if (m > cap)
			m = cap;
		memcpy(dst, in->zin + in->pend_pos, m);
		in->pend_pos += m;
		n = (ssize_t)m;
		if (in->pend_pos == in->pend_len) {
			/* plain input: the pre-read buffer is no longer needed */
			free(in->zin);
			in->zin = NULL;
			in->zin_cap = in->pend_pos = in->pend_len = 0;
		}
	} else if (in->raw_eof) {
		n = 0;
	} else {
		n = raw_read(in, dst, cap);
		if (n == 0)
			in->raw_eof = 1;
	}
	if (n > 0)
		in->bytes += (uint64_t)n;
	return n;
}

static int src_init(emv_ingest *in)
{
	int magic;

	if (in->is_mem) {
		magic = in->mem_len >= 2 && in->mem[0] == 0x1f && in->mem[1] == 0x8b;
	} else {
		in->zin_cap = in->lim.read_chunk < 16 ? 16 : in->lim.read_chunk;
		in->zin = emv_xmalloc(in->zin_cap);
		while (in->pend_len < 2) {
			ssize_t n = raw_read(in, in->zin + in->pend_len, in->zin_cap - in->pend_len);
			if (n < 0)
				return -1;
			if (n == 0) {
				in->raw_eof = 1;
				break;
			}
			in->pend_len += (size_t)n;
		}
		magic = in->pend_len >= 2 && in->zin[0] == 0x1f && in->zin[1] == 0x8b;
	}
	if (!magic)
		return 0;
	in->gz = 1;
	in->zs.zalloc = z_alloc;
	in->zs.zfree = z_free;
	in->zs.opaque = in;
	if (inflateInit2(&in->zs, 15 + 16) != Z_OK) {
		fmt_err(in->err, sizeof(in->err), "%s: cannot start gzip decompression", in->name);
		return -1;
	}
	in->gz_live = 1;
	if (!in->is_mem) {
		in->zs.next_in = in->zin;
		in->zs.avail_in = (uInt)in->pend_len;
		in->pend_len = 0;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Sniffing                                                            */
/* ------------------------------------------------------------------ */

/* Read the first bytes: all of a small input, else detect_bytes or enough
 * lines for detection (and the whole binary window). */
static int sniff_fill(emv_ingest *in)
{
	size_t breaks = 0, window = EMV_INGEST_BINARY_WINDOW;

	if (window > in->lim.detect_bytes)
		window = in->lim.detect_bytes;
	while (in->sniff_len < in->lim.detect_bytes) {
		size_t want = in->lim.detect_bytes - in->sniff_len, i;
		ssize_t n;

		if (in->sniff_len >= window && breaks >= in->lim.detect_rows + 2)
			break;
		if (want > in->lim.read_chunk)
			want = in->lim.read_chunk;
		grow(&in->sniff, &in->sniff_cap, in->sniff_len + want);
		n = src_read(in, in->sniff + in->sniff_len, want);
		if (n < 0)
			return -1;
		if (n == 0) {
			in->eof = 1;
			break;
		}
		for (i = in->sniff_len; i < in->sniff_len + (size_t)n; i++)
			if (in->sniff[i] == '\n' ||
			    (in->sniff[i] == '\r' && (i + 1 >= in->sniff_len + (size_t)n || in->sniff[i + 1] != '\n')))
				breaks++;
		in->sniff_len += (size_t)n;
	}
	return 0;
}

static const struct {
	const char *magic;
	size_t len;
	const char *what;
} magics[] = {
	{ "PK\x03\x04", 4, "a ZIP archive (an .xlsx workbook?); export the sheet as CSV, or unzip it first" },
	{ "PK\x05\x06", 4, "an empty ZIP archive" },
	{ "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8, "a Microsoft Office document (.xls?); export the sheet as CSV" },
	{ "%PDF-", 5, "a PDF document, not a CSV or text list" },
	{ "\xfd" "7zXZ", 5, "xz-compressed; only gzip is supported, decompress it first" },
	{ "\x28\xb5\x2f\xfd", 4, "zstd-compressed; only gzip is supported, decompress it first" },
	{ "7z\xbc\xaf\x27\x1c", 6, "a 7-Zip archive; extract it first" },
	{ "Rar!\x1a\x07", 6, "a RAR archive; extract it first" },
	{ "\x1f\x8b", 2, "gzip-compressed twice; decompress it once first" },
	{ "\x89PNG", 4, "a PNG image, not a CSV or text list" },
	{ "\xff\xd8\xff", 3, "a JPEG image, not a CSV or text list" },
	{ "\x00\x00\xfe\xff", 4, "UTF-32 text; save it as UTF-8" },
	{ "\xff\xfe\x00\x00", 4, "UTF-32 text; save it as UTF-8" },
	{ "\xff\xfe", 2, "UTF-16 text (byte-order mark FF FE); save it as UTF-8" },
	{ "\xfe\xff", 2, "UTF-16 text (byte-order mark FE FF); save it as UTF-8" },
};

static int sniff_check(emv_ingest *in, char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)in->sniff;
	size_t n = in->sniff_len, i, ctrl = 0, bad = 0, w;

	if (n == 0) {
		fmt_err(err, errlen, "%s: empty file", in->name);
		return -1;
	}
	for (i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
		if (n >= magics[i].len && memcmp(s, magics[i].magic, magics[i].len) == 0) {
			fmt_err(err, errlen, "%s: looks like %s", in->name, magics[i].what);
			return -1;
		}
	}
	if (n >= 10 && memcmp(s, "BZh", 3) == 0 && s[3] >= '1' && s[3] <= '9' &&
	    memcmp(s + 4, "\x31\x41\x59\x26\x53\x59", 6) == 0) {
		fmt_err(err, errlen, "%s: looks like bzip2-compressed data; only gzip is supported, "
		        "decompress it first", in->name);
		return -1;
	}
	if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		in->bom = 3;

	w = n < EMV_INGEST_BINARY_WINDOW ? n : EMV_INGEST_BINARY_WINDOW;
	for (i = in->bom; i < w; i++) {
		unsigned c = s[i];
		if (c == 0) {
			if (w >= 4 && ((s[0] && !s[1] && s[2] && !s[3]) || (!s[0] && s[1] && !s[2] && s[3])))
				fmt_err(err, errlen, "%s: looks like UTF-16 text without a byte-order mark; "
				        "save it as UTF-8", in->name);
			else
				fmt_err(err, errlen, "%s: binary data (NUL byte at offset %zu), not a CSV "
				        "or text list", in->name, i);
			return -1;
		}
		if ((c < 0x20 && !is_ws((unsigned char)c) && c != 0x1b) || c == 0x7f) {
			ctrl++;
		} else if (c >= 0x80) {
			int k = emv_utf8_next(s + i, w - i, NULL);
			if (k == EMV_UTF8_SHORT)
				break;
			if (k == 0)
				bad++;
			else
				i += (size_t)k - 1;
		}
	}
	w -= in->bom;
	if (w && ctrl * 10 > w) {
		fmt_err(err, errlen, "%s: binary data (%zu of the first %zu bytes are control "
		        "characters), not a CSV or text list", in->name, ctrl, w);
		return -1;
	}
	if (w && (ctrl + bad) * 10 > w * 3) {
		fmt_err(err, errlen, "%s: binary data (%zu of the first %zu bytes are neither text "
		        "nor UTF-8), not a CSV or text list", in->name, ctrl + bad, w);
		return -1;
	}
	if (w == 0 && in->eof) {
		fmt_err(err, errlen, "%s: empty file", in->name);
		return -1;
	}
	return 0;
}

/*
 * The most frequent candidate outside quotes in the first non-blank record
 * (ties: , ; TAB |).  When a quote opened there is not closed within
 * max_lines lines, max bytes or the sniffed bytes, it is a stray quote:
 * count on the first physical line, quotes ignored.
 */
static int sniff_delim(const char *s, size_t n, size_t max, size_t max_lines)
{
	static const char cand[] = { ',', ';', '\t', '|' };
	size_t count[4] = { 0, 0, 0, 0 }, i, k, best = 0, lines = 1, first_end;
	int inq = 0, closed = 0;

	while (n && (*s == '\r' || *s == '\n' || *s == ' '))
		s++, n--;
	if (n > max)
		n = max;
	first_end = n;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (c == '"') {
			inq = !inq;
		} else if (c == '\r' || c == '\n') {
			if (first_end == n)
				first_end = i;
			if (!inq) {
				closed = 1;
				break;
			}
			if (c == '\n' || i + 1 >= n || s[i + 1] != '\n')
				if (++lines > max_lines)
					break;
		} else if (!inq) {
			for (k = 0; k < 4; k++)
				if (c == cand[k])
					count[k]++;
		}
	}
	if (!closed && inq) {
		memset(count, 0, sizeof(count));
		for (i = 0; i < first_end; i++)
			for (k = 0; k < 4; k++)
				if (s[i] == cand[k])
					count[k]++;
	}
	for (k = 1; k < 4; k++)
		if (count[k] > count[best])
			best = k;
	return count[best] ? cand[best] : 0;
}

/* ------------------------------------------------------------------ */
/* Column detection                                                    */
/* ------------------------------------------------------------------ */

/* CSV re-serialisation of n stored fields with ','; at most cap - 1 bytes
 * (fields that do not fit are left out). */
static size_t serialise(const struct tok *t, size_t n, char *out, size_t cap)
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

static size_t serialised_size(const struct tok *t, size_t n)
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

static size_t raw_cap_max(const emv_ingest_limits *l)
{
	return 2 * l->max_row + 4 * l->max_fields + 16;
}

struct detect {
	uint64_t nrec;             /* non-blank rows seen */
	uint64_t r1_line;
	int r1_err;
	size_t r1_n;               /* stored fields of row 1 */
	unsigned char *r1_tier, *r1_at;
	char (*r1_name)[48];       /* sanitised, for messages */
	char *header;
	char r1_msg[320];          /* row 1's error */
	size_t *at;                /* per column: later valid rows with '@' */
	uint64_t sampled;          /* later valid rows */
};

static void detect_free(struct detect *d)
{
	free(d->r1_tier);
	free(d->r1_at);
	free(d->r1_name);
	free(d->header);
	free(d->at);
}

static void row_error(emv_ingest *in, const struct tok *t);

static void detect_row1(emv_ingest *in, struct detect *d, struct tok *t)
{
	size_t n = t->nfields < in->lim.max_fields ? t->nfields : in->lim.max_fields, i, cap;

	d->r1_line = t->row_line;
	d->r1_err = t->err;
	d->r1_n = n;
	if (t->err) {
		row_error(in, t);
		emv_strlcpy(d->r1_msg, in->rowerr, sizeof(d->r1_msg));
	}
	d->r1_tier = emv_xcalloc(n ? n : 1, 1);
	d->r1_at = emv_xcalloc(n ? n : 1, 1);
	d->r1_name = emv_xcalloc(n ? n : 1, sizeof(*d->r1_name));
	cap = serialised_size(t, n);
	if (cap > raw_cap_max(&in->lim))
		cap = raw_cap_max(&in->lim);
	d->header = emv_xmalloc(cap);
	serialise(t, n, d->header, cap);
	for (i = 0; i < n; i++) {
		size_t len;
		const char *v = tok_value(t, i, &len);
		d->r1_tier[i] = (unsigned char)name_tier(v, len);
		d->r1_at[i] = (unsigned char)has_at(v, len);
		if (t->delim < 0 && d->r1_tier[i] > 1 && !wordlike(v, len))
			d->r1_tier[i] = 5;   /* one column: not a header */
		emv_sanitize(d->r1_name[i], sizeof(d->r1_name[i]), v, len);
	}
}

/* The header fields, quoted, for the no-email-column message. */
static void list_fields(const struct detect *d, char *out, size_t outlen)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < d->r1_n && i < 16 && o + 1 < outlen; i++) {
		int k = snprintf(out + o, outlen - o, "%s\"%s\"", i ? ", " : "", d->r1_name[i]);
		if (k < 0)
			break;
		o += (size_t)k;
	}
	if (i < d->r1_n && o + 1 < outlen)
		snprintf(out + o, outlen - o, ", ... (%zu fields)", d->r1_n);
}

/* Best column among those allowed by tier (<= max_tier) and confirmed by
 * the data when weaker than tier 1; -1 when none. */
static int pick_column(const struct detect *d, const size_t *at, uint64_t sampled, int r1_counts)
{
	int best = -1, tier, best_tier = 99;
	size_t i, best_at = 0;

	for (i = 0; i < d->r1_n; i++) {
		size_t a = at[i] + (r1_counts ? d->r1_at[i] : 0);
		tier = r1_counts ? 4 : d->r1_tier[i];
		if (a == 0 || (uint64_t)a * 2 < sampled)
			continue;
		if (tier < best_tier || (tier == best_tier && a > best_at)) {
			best = (int)i;
			best_tier = tier;
			best_at = a;
		}
	}
	return best;
}

static int detect(emv_ingest *in, char *err, size_t errlen)
{
	struct detect d;
	struct tok t;
	const char *p = in->sniff + in->bom, *end = in->sniff + in->sniff_len;
	int r, rc = -1;
	size_t i, ncols = in->lim.max_fields;
	char fields[640];

	memset(&d, 0, sizeof(d));
	d.at = emv_xcalloc(ncols, sizeof(*d.at));
	in->delim = sniff_delim(p, (size_t)(end - p), in->lim.max_row, in->lim.max_row_lines);
	tok_init(&t, &in->lim, in->delim ? in->delim : -1);
	while (d.nrec <= in->lim.detect_rows && (r = tok_next(&t, &p, end, in->eof)) == 1) {
		if (d.nrec == 0) {
			detect_row1(in, &d, &t);
		} else if (!t.err) {
			d.sampled++;
			for (i = 0; i < t.nfields && i < ncols; i++) {
				size_t len;
				const char *v = tok_value(&t, i, &len);
				if (has_at(v, len))
					d.at[i]++;
			}
		}
		d.nrec++;
	}

	if (d.nrec == 0) {
		if (in->eof)
			fmt_err(err, errlen, "%s: empty file (only blank lines)", in->name);
		else
			fmt_err(err, errlen, "%s: no complete row in the first %zu bytes", in->name,
			        in->sniff_len);
		goto out;
	}

	in->col = -1;
	in->has_header = 0;
	in->by = "content";
	/* 1. a header field with an email name */
	if (!d.r1_err) {
		for (i = 0; i < d.r1_n; i++) {
			if (d.r1_tier[i] == 1) {
				in->col = (int)i;
				in->has_header = 1;
				in->by = "name";
				break;
			}
		}
	}
	if (!in->has_header) {
		int r1_data = 0;
		for (i = 0; i < d.r1_n; i++)
			if (d.r1_at[i])
				r1_data = 1;
		/* one column: a broken or not header-like first line is data */
		if (!in->delim && (d.r1_err || (d.r1_n && d.r1_tier[0] > 4)))
			r1_data = 1;
		if (r1_data) {
			/* 2. no header: the first row is data */
			uint64_t sampled = d.sampled + (d.r1_err ? 0 : 1);
			int c = pick_column(&d, d.at, sampled, 1);
			if (c < 0) {
				if (in->delim)
					fmt_err(err, errlen, "%s: no email column; the first row is not a "
					        "header and no column has '@' in at least half of the "
					        "%llu rows sampled", in->name, (unsigned long long)sampled);
				else
					fmt_err(err, errlen, "%s: no email addresses; fewer than half of "
					        "the %llu lines sampled contain '@'", in->name,
					        (unsigned long long)sampled);
				goto out;
			}
			in->col = in->delim ? c : -1;
		} else if (d.r1_err) {
			fmt_err(err, errlen, "%s: cannot read the header row: %s", in->name,
			        d.r1_msg);
			goto out;
		} else {
			/* 3. a header without an email name: the data decides */
			int c = pick_column(&d, d.at, d.sampled, 0);
			if (c < 0 && !in->delim) {
				fmt_err(err, errlen, "%s: no email addresses; fewer than half of the "
				        "%llu lines sampled after the first (\"%s\") contain '@'",
				        in->name, (unsigned long long)d.sampled, d.r1_name[0]);
				goto out;
			}
			if (c < 0) {
				list_fields(&d, fields, sizeof(fields));
				if (d.sampled)
					fmt_err(err, errlen, "%s: no email column; header fields: %s; none "
					        "is named like email and none has '@' in at least half of "
					        "the %llu rows sampled", in->name, fields,
					        (unsigned long long)d.sampled);
				else
					fmt_err(err, errlen, "%s: no email column; header fields: %s; none "
					        "is named like email and there are no data rows", in->name,
					        fields);
				goto out;
			}
			in->col = c;
			in->has_header = 1;
		}
	}
	if (in->has_header) {
		in->header = d.header;
		d.header = NULL;
		emv_strlcpy(in->col_name, d.r1_name[in->col], sizeof(in->col_name));
	} else {
		in->header = emv_xstrdup("");
	}
	in->skip_header = in->has_header;
	rc = 0;
out:
	tok_free(&t);
	detect_free(&d);
	return rc;
}

static void describe(emv_ingest *in)
{
	char dl[16];
	size_t o;

	if (in->delim == '\t')
		emv_strlcpy(dl, "TAB", sizeof(dl));
	else
		snprintf(dl, sizeof(dl), "'%c'", in->delim);
	o = (size_t)snprintf(in->desc, sizeof(in->desc), "%s%s", in->gz ? "gzip, " : "",
	                     in->bom ? "UTF-8 BOM, " : "");
	if (!in->delim && !in->has_header)
		snprintf(in->desc + o, sizeof(in->desc) - o, "one address per line, no header");
	else if (!in->delim)
		snprintf(in->desc + o, sizeof(in->desc) - o, "one column, header \"%s\" (by %s)",
		         in->col_name, in->by);
	else
		snprintf(in->desc + o, sizeof(in->desc) - o,
		         "CSV delimited by %s, %s, email column %d%s%s%s (by %s)", dl,
		         in->has_header ? "header" : "no header", in->col + 1,
		         in->has_header ? " \"" : "", in->has_header ? in->col_name : "",
		         in->has_header ? "\"" : "", in->by);
}

/* ------------------------------------------------------------------ */
/* Open, read, close                                                   */
/* ------------------------------------------------------------------ */

static emv_ingest *ingest_new(const char *name, const emv_ingest_limits *l, char *err,
                              size_t errlen)
{
	emv_ingest_limits def;
	emv_ingest *in;

	if (!l) {
		emv_ingest_limits_default(&def);
		l = &def;
	}
	if (!limits_valid(l)) {
		fmt_err(err, errlen, "%s: invalid ingest limits (each must be 1 to %zu)",
		        name ? name : "input", LIMIT_MAX);
		return NULL;
	}
	in = emv_xcalloc(1, sizeof(*in));
	in->lim = *l;
	in->fd = -1;
	emv_sanitize(in->name, sizeof(in->name), name ? name : "input", strlen(name ? name : "input"));
	return in;
}

/* Source ready: sniff, detect, prepare reading.  Frees in on failure. */
static emv_ingest *ingest_start(emv_ingest *in, char *err, size_t errlen)
{
	if (src_init(in) < 0 || sniff_fill(in) < 0) {
		fmt_err(err, errlen, "%s", in->err);
		goto fail;
	}
	if (sniff_check(in, err, errlen) < 0 || detect(in, err, errlen) < 0)
		goto fail;
	in->err[0] = '\0';
	describe(in);
	tok_init(&in->tok, &in->lim, in->delim ? in->delim : -1);
	in->p = in->sniff + in->bom;
	in->end = in->sniff + in->sniff_len;
	in->in_sniff = 1;
	return in;
fail:
	emv_ingest_close(in);
	return NULL;
}

emv_ingest *emv_ingest_open_fd(int fd, const char *name, const emv_ingest_limits *l,
                               char *err, size_t errlen)
{
	emv_ingest *in = ingest_new(name, l, err, errlen);
	struct stat st;

	if (!in)
		return NULL;
	in->fd = fd;
	if (fstat(fd, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			fmt_err(err, errlen, "%s: is a directory", in->name);
			emv_ingest_close(in);
			return NULL;
		}
		if (S_ISREG(st.st_mode))
			in->size = (uint64_t)st.st_size;
	}
	return ingest_start(in, err, errlen);
}

emv_ingest *emv_ingest_open(const char *path, const emv_ingest_limits *l, char *err,
                            size_t errlen)
{
	emv_ingest *in;
	int fd;

	if (!path || !*path) {
		fmt_err(err, errlen, "no input file given");
		return NULL;
	}
	if (strcmp(path, "-") == 0)
		return emv_ingest_open_fd(STDIN_FILENO, "stdin", l, err, errlen);
	if (l && !limits_valid(l))
		return ingest_new(path, l, err, errlen);   /* reports the error */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char safe[256];
		int e = errno;
		emv_sanitize(safe, sizeof(safe), path, strlen(path));
		fmt_err(err, errlen, "%s: %s", safe, strerror(e));
		return NULL;
	}
	in = emv_ingest_open_fd(fd, path, l, err, errlen);
	if (!in) {
		close(fd);
		return NULL;
	}
	in->own_fd = 1;
	return in;
}

emv_ingest *emv_ingest_open_mem(const void *buf, size_t len, const char *name,
                                const emv_ingest_limits *l, char *err, size_t errlen)
{
	emv_ingest *in = ingest_new(name ? name : "buffer", l, err, errlen);

	if (!in)
		return NULL;
	in->is_mem = 1;
	in->mem = buf;
	in->mem_len = buf ? len : 0;
	in->size = in->mem_len;
	return ingest_start(in, err, errlen);
}

static void row_error(emv_ingest *in, const struct tok *t)
{
	unsigned long long line = (unsigned long long)t->row_line;
	const char *why = "";
	char span[64];

	switch (t->err) {
	case TE_FIELD:
		if (t->delim < 0)
			snprintf(in->rowerr, sizeof(in->rowerr), "line %llu: line is %llu bytes; the "
			         "limit is %zu", line, (unsigned long long)t->err_size, t->lim.max_field);
		else
			snprintf(in->rowerr, sizeof(in->rowerr), "line %llu: field %zu is %llu bytes; "
			         "the limit is %zu", line, t->err_field,
			         (unsigned long long)t->err_size, t->lim.max_field);
		return;
	case TE_FIELDS:
		snprintf(in->rowerr, sizeof(in->rowerr), "line %llu: %zu fields; the limit is %zu",
		         line, t->nfields, t->lim.max_fields);
		return;
	case TE_ROW:
		snprintf(in->rowerr, sizeof(in->rowerr), "line %llu: row is %llu bytes; the limit "
		         "is %zu", line, (unsigned long long)t->row_bytes, t->lim.max_row);
		return;
	case TE_RUNAWAY_BYTES:
		why = "is still open after the row limit of";
		break;
	case TE_RUNAWAY_LINES:
		why = "is still open after the line limit of";
		break;
	default:
		why = "is not closed by the end of the input";
		break;
	}
	if (t->err_last_line > t->row_line)
		snprintf(span, sizeof(span), "lines %llu-%llu", line,
		         (unsigned long long)t->err_last_line);
	else
		snprintf(span, sizeof(span), "line %llu", line);
	if (t->err == TE_RUNAWAY_EOF)
		snprintf(in->rowerr, sizeof(in->rowerr), "line %llu: quoted field %zu %s; %s "
		         "rejected, reading resumes at line %llu", line, t->err_field, why, span,
		         (unsigned long long)t->err_last_line + 1);
	else
		snprintf(in->rowerr, sizeof(in->rowerr), "line %llu: quoted field %zu %s %zu %s; "
		         "%s rejected, reading resumes at line %llu", line, t->err_field, why,
		         t->err == TE_RUNAWAY_BYTES ? t->lim.max_row : t->lim.max_row_lines,
		         t->err == TE_RUNAWAY_BYTES ? "bytes" : "lines", span,
		         (unsigned long long)t->err_last_line + 1);
}

static void build_row(emv_ingest *in, emv_ingest_row *row)
{
	struct tok *t = &in->tok;
	size_t n = t->nfields < in->lim.max_fields ? t->nfields : in->lim.max_fields;
	size_t need = serialised_size(t, n), col = in->col < 0 ? 0 : (size_t)in->col;

	if (need > raw_cap_max(&in->lim))
		need = raw_cap_max(&in->lim);
	grow_max(&in->raw, &in->raw_cap, need, raw_cap_max(&in->lim));
	memset(row, 0, sizeof(*row));
	row->row = ++in->rows;
	row->line = t->row_line;
	row->raw = in->raw;
	row->raw_len = serialise(t, n, in->raw, need);

	if (t->err) {
		row_error(in, t);
	} else if (col >= t->nfields) {
		snprintf(in->rowerr, sizeof(in->rowerr), "line %llu: %zu field%s; the email "
		         "column is field %zu%s%s%s", (unsigned long long)t->row_line, t->nfields,
		         t->nfields == 1 ? "" : "s", col + 1, in->col_name[0] ? " (\"" : "",
		         in->col_name, in->col_name[0] ? "\")" : "");
	} else {
		size_t len;
		const char *v = tok_value(t, col, &len);
		((char *)v)[len] = '\0';   /* inside fbuf, which we own */
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
		fmt_err(in->err, sizeof(in->err), "%s: over the limit of %llu bytes once decompressed", in->name,
		        (unsigned long long)in->lim.max_bytes);
		in->over_limit = in->failed = 1;
		return 1;
	}
	if (in->lim.max_blank_lines && in->tok.blank_rows + in->tok.empty_lines > in->lim.max_blank_lines) {
		fmt_err(in->err, sizeof(in->err), "%s: over the limit of %llu empty or blank lines", in->name,
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
		int r = tok_next(&in->tok, &in->p, in->end, in->eof);
		ssize_t n;

		if (r == 1) {
			if (in->skip_header) {
				in->skip_header = 0;
				continue;
			}
			if (in->lim.max_rows && in->rows >= in->lim.max_rows) {
				fmt_err(in->err, sizeof(in->err), "%s: over the limit of %llu rows",
				        in->name, (unsigned long long)in->lim.max_rows);
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
		n = src_read(in, in->chunk, in->chunk_cap);
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

int emv_ingest_over_limit(const emv_ingest *in)
{
	return in ? in->over_limit : 0;
}

const char *emv_ingest_header(const emv_ingest *in)
{
	return in && in->header ? in->header : "";
}

int emv_ingest_email_column(const emv_ingest *in)
{
	return in ? in->col : -1;
}

const char *emv_ingest_email_column_name(const emv_ingest *in)
{
	return in ? in->col_name : "";
}

int emv_ingest_delimiter(const emv_ingest *in)
{
	return in ? in->delim : 0;
}

const char *emv_ingest_describe(const emv_ingest *in)
{
	return in ? in->desc : "";
}

const char *emv_ingest_error(const emv_ingest *in)
{
	return in ? in->err : "";
}

uint64_t emv_ingest_bytes_read(const emv_ingest *in)
{
	return in ? in->raw_read : 0;
}

uint64_t emv_ingest_input_size(const emv_ingest *in)
{
	return in ? in->size : 0;
}

void emv_ingest_get_stats(const emv_ingest *in, emv_ingest_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!in)
		return;
	st->rows = in->rows;
	st->error_rows = in->err_rows;
	st->blank_rows = in->tok.blank_rows;
	st->lines = tok_lines(&in->tok);
	st->bytes = in->bytes;
}

size_t emv_ingest_memory(const emv_ingest *in)
{
	if (!in)
		return 0;
	return sizeof(*in) + in->zin_cap + in->zmem + in->sniff_cap + in->chunk_cap +
	       tok_memory(&in->tok) + in->raw_cap + (in->header ? strlen(in->header) + 1 : 0);
}

void emv_ingest_close(emv_ingest *in)
{
	if (!in)
		return;
	if (in->gz_live)
		inflateEnd(&in->zs);
	if (in->own_fd && in->fd >= 0)
		close(in->fd);
	tok_free(&in->tok);
	free(in->zin);
	free(in->sniff);
	free(in->chunk);
	free(in->header);
	free(in->raw);
	free(in);
}

/* ------------------------------------------------------------------ */
/* De-duplication set                                                  */
/* ------------------------------------------------------------------ */

#define DEDUP_BLOCK_SHIFT 16                 /* 65536 entries per block */
#define DEDUP_BLOCK (1u << DEDUP_BLOCK_SHIFT)
#define DEDUP_ARENA 1048576                  /* key bytes per arena block */
#define DEDUP_MAX ((size_t)1 << 31)

struct dedup_entry {
	const char *key;
	uint64_t row;
	uint32_t len;
	uint32_t hash;
};

struct dedup_arena {
	struct dedup_arena *next;
	size_t used, size;
	char data[];
};

struct emv_dedup {
	uint32_t *slots;        /* entry index + 1; 0 = empty */
	unsigned bits;
	size_t count;
	struct dedup_entry **blocks;
	size_t nblocks, blocks_cap;
	struct dedup_arena *arena;
	size_t arena_bytes;
};

/* FNV-1a, then a multiply-xorshift finaliser so the top bits are well mixed. */
static uint32_t dedup_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return (uint32_t)(h >> 32);
}

static struct dedup_entry *dedup_entry(const emv_dedup *d, uint32_t i)
{
	return &d->blocks[i >> DEDUP_BLOCK_SHIFT][i & (DEDUP_BLOCK - 1)];
}

static size_t dedup_slot(const emv_dedup *d, const char *s, size_t len, uint32_t h)
{
	size_t mask = ((size_t)1 << d->bits) - 1, i = (size_t)(h >> (32 - d->bits));

	for (;; i = (i + 1) & mask) {
		uint32_t v = d->slots[i];
		const struct dedup_entry *e;
		if (!v)
			return i;
		e = dedup_entry(d, v - 1);
		if (e->hash == h && e->len == len && memcmp(e->key, s, len) == 0)
			return i;
	}
}

static void dedup_resize(emv_dedup *d, unsigned bits)
{
	size_t i, mask = ((size_t)1 << bits) - 1;

	free(d->slots);
	d->bits = bits;
	d->slots = emv_xcalloc((size_t)1 << bits, sizeof(*d->slots));
	for (i = 0; i < d->count; i++) {
		const struct dedup_entry *e = dedup_entry(d, (uint32_t)i);
		size_t j = (size_t)(e->hash >> (32 - bits));
		while (d->slots[j])
			j = (j + 1) & mask;
		d->slots[j] = (uint32_t)i + 1;
	}
}

emv_dedup *emv_dedup_new(size_t expected)
{
	emv_dedup *d = emv_xcalloc(1, sizeof(*d));
	unsigned bits = 10;

	if (expected > DEDUP_MAX)
		expected = DEDUP_MAX;
	while (((size_t)1 << bits) * 3 / 4 < expected)
		bits++;
	dedup_resize(d, bits);
	return d;
}

void emv_dedup_free(emv_dedup *d)
{
	size_t i;

	if (!d)
		return;
	while (d->arena) {
		struct dedup_arena *next = d->arena->next;
		free(d->arena);
		d->arena = next;
	}
	for (i = 0; i < d->nblocks; i++)
		free(d->blocks[i]);
	free(d->blocks);
	free(d->slots);
	free(d);
}

static const char *dedup_copy(emv_dedup *d, const char *s, size_t len)
{
	struct dedup_arena *a = d->arena;
	char *p;

	if (!a || a->size - a->used < len) {
		size_t size = len > DEDUP_ARENA / 4 ? len : DEDUP_ARENA;
		a = emv_xmalloc(sizeof(*a) + size);
		a->size = size;
		a->used = 0;
		if (len > DEDUP_ARENA / 4 && d->arena) {
			/* a big key gets its own block behind the current one */
			a->next = d->arena->next;
			d->arena->next = a;
		} else {
			a->next = d->arena;
			d->arena = a;
		}
		d->arena_bytes += sizeof(*a) + size;
	}
	p = a->data + a->used;
	if (len)
		memcpy(p, s, len);
	a->used += len;
	return p;
}

int emv_dedup_add(emv_dedup *d, const char *addr, size_t len, uint64_t row,
                  uint64_t *first_row)
{
	uint32_t h, idx;
	size_t i;
	struct dedup_entry *e;

	if (len > UINT32_MAX) {
		fprintf(stderr, "emv_dedup: key of %zu bytes\n", len);
		abort();
	}
	h = dedup_hash(addr, len);
	i = dedup_slot(d, addr, len, h);
	if (d->slots[i]) {
		if (first_row)
			*first_row = dedup_entry(d, d->slots[i] - 1)->row;
		return 0;
	}
	if (d->count >= DEDUP_MAX) {
		fprintf(stderr, "emv_dedup: more than %zu entries\n", DEDUP_MAX);
		abort();
	}
	idx = (uint32_t)d->count;
	if ((idx >> DEDUP_BLOCK_SHIFT) >= d->nblocks) {
		if (d->nblocks == d->blocks_cap) {
			d->blocks_cap = d->blocks_cap ? d->blocks_cap * 2 : 16;
			d->blocks = emv_xrealloc(d->blocks, d->blocks_cap * sizeof(*d->blocks));
		}
		d->blocks[d->nblocks++] = emv_xmalloc(DEDUP_BLOCK * sizeof(struct dedup_entry));
	}
	e = dedup_entry(d, idx);
	e->key = dedup_copy(d, addr, len);
	e->len = (uint32_t)len;
	e->hash = h;
	e->row = row;
	d->slots[i] = idx + 1;
	d->count++;
	if (d->count > ((size_t)1 << d->bits) * 3 / 4)
		dedup_resize(d, d->bits + 1);
	if (first_row)
		*first_row = row;
	return 1;
}

int emv_dedup_find(const emv_dedup *d, const char *addr, size_t len, uint64_t *first_row)
{
	size_t i;

	if (!d || len > UINT32_MAX)
		return 0;
	i = dedup_slot(d, addr, len, dedup_hash(addr, len));
	if (!d->slots[i])
		return 0;
	if (first_row)
		*first_row = dedup_entry(d, d->slots[i] - 1)->row;
	return 1;
}

size_t emv_dedup_count(const emv_dedup *d)
{
	return d ? d->count : 0;
}

size_t emv_dedup_memory(const emv_dedup *d)
{
	if (!d)
		return 0;
	return sizeof(*d) + ((size_t)1 << d->bits) * sizeof(*d->slots) +
	       d->nblocks * DEDUP_BLOCK * sizeof(struct dedup_entry) +
	       d->blocks_cap * sizeof(*d->blocks) + d->arena_bytes;
}
