/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_ingest_internal.h - what the parts of the list reader share (not a
 * public API: emv_ingest.h is).  The handle, the tokenizer's state, and the
 * functions each part offers the others:
 *
 *   emv_ingest.c         open, close, accessors; the order of the parts
 *   emv_ingest_source.c  the source (read(2) or a buffer; gzip through zlib)
 *                        and the sniffer (magic, binary content, BOM)
 *   emv_ingest_csv.c     the CSV tokenizer
 *   emv_ingest_detect.c  delimiter and email column detection
 *   emv_ingest_row.c     rows: the raw text, row errors, the limits
 *   emv_dedup.c          the de-duplication set (its own API in emv_dedup.h)
 */
#ifndef EMV_INGEST_INTERNAL_H
#define EMV_INGEST_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#define ZLIB_CONST
#include <zlib.h>

#include "emv_ingest.h"

#define LIMIT_MAX ((size_t)1 << 30)

static inline int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trim ASCII white space from both ends of s[0..*len). */
static inline const char *trim_span(const char *s, size_t *len)
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
static inline int has_at(const char *s, size_t len)
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
	TE_FIELD,	  /* a field over max_field */
	TE_FIELDS,	  /* more than max_fields fields */
	TE_ROW,		  /* more than max_row bytes */
	TE_RUNAWAY_BYTES, /* quoted field still open at max_row bytes */
	TE_RUNAWAY_LINES, /* ... at max_row_lines lines */
	TE_RUNAWAY_EOF	  /* ... at the end of the input */
};

struct tok_field {
	size_t off, len; /* stored bytes in fbuf (NUL follows when there was room) */
};

struct tok {
	emv_ingest_limits lim;
	int delim;		   /* -1: one column, no quoting */
	unsigned char stop_u[256]; /* bytes that end a run in an unquoted field */
	unsigned char stop_q[256]; /* ... in a quoted field */

	int state;
	uint64_t line; /* line of the next byte */
	int prev_cr;   /* last byte was a CR line break */
	int line_open; /* bytes consumed since the last line break */
	uint64_t blank_rows;
	uint64_t empty_lines; /* lines with nothing on them between rows */

	/* the current row */
	uint64_t row_line;
	uint64_t row_bytes;  /* bytes consumed, without the ending line break */
	uint64_t row_breaks; /* line breaks inside quotes */
	size_t nfields;	     /* completed fields (stored: min(nfields, max_fields)) */
	uint64_t flen;	     /* true length of the current field's value */
	size_t fstart;	     /* the current field's offset in fbuf */
	uint64_t fesc;	     /* "" pairs in the current quoted field */
	uint64_t after_ws;   /* white space after its closing quote */
	char *fbuf;
	size_t fbuf_len, fbuf_cap, fbuf_max;
	struct tok_field *fields;
	size_t fields_cap;
	int err;
	size_t err_field; /* 1-based */
	uint64_t err_size;
	uint64_t err_last_line; /* runaway: last line of the error row */

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


void ingest_tok_init(struct tok *t, const emv_ingest_limits *lim, int delim);
void ingest_tok_free(struct tok *t);
/* Bytes held by the tokenizer's buffers. */
size_t ingest_tok_memory(const struct tok *t);
/* The next row from *pp..end (eof: no more input after end): 1 with a row,
 * 0 when more input is needed or at the end. */
int ingest_tok_next(struct tok *t, const char **pp, const char *end, int eof);
uint64_t ingest_tok_lines(const struct tok *t);
/* Field i of the current row (NUL-terminated, trimmed as the rules say). */
const char *ingest_tok_value(struct tok *t, size_t i, size_t *len);
/* Grow *buf to hold need bytes (aborts on OOM); _max: never past max. */
void ingest_grow(char **buf, size_t *cap, size_t need);
void ingest_grow_max(char **buf, size_t *cap, size_t need, size_t max);

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
	unsigned char *zin; /* raw read buffer (fd) */
	size_t zin_cap, pend_pos, pend_len;
	int gz, gz_live, gz_done, gz_failed;
	unsigned gz_members;
	z_stream zs;
	size_t zmem; /* bytes allocated by zlib */

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
	int delim; /* 0: one column */
	int col;   /* -1: one address per line */
	int has_header, skip_header, bom;
	const char *by;
	char *header;
	char col_name[128];
	char desc[320];

	/* progress */
	uint64_t rows, err_rows;
	int failed;
	int over_limit; /* failed past max_rows/max_bytes/max_blank_lines */
	char err[512];

	char *raw;
	size_t raw_cap;
	char rowerr[320];
};


/* emv_ingest_source.c */
int ingest_src_init(emv_ingest *in);
ssize_t ingest_src_read(emv_ingest *in, char *dst, size_t cap);
int ingest_sniff_fill(emv_ingest *in);
int ingest_sniff_check(emv_ingest *in, char *err, size_t errlen);

/* emv_ingest_detect.c */
int ingest_sniff_delim(const char *s, size_t n, size_t max, size_t max_lines);
int ingest_detect(emv_ingest *in, char *err, size_t errlen);
void ingest_describe(emv_ingest *in);

/* emv_ingest_row.c */
size_t ingest_serialise(const struct tok *t, size_t n, char *out, size_t cap);
size_t ingest_serialised_size(const struct tok *t, size_t n);
size_t ingest_raw_cap_max(const emv_ingest_limits *l);
void ingest_row_error(emv_ingest *in, const struct tok *t);

#endif
