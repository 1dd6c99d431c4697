/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_ingest.c - streaming list reader (see emv_ingest.h for the rules):
 * opening, the order of the parts, closing.  The parts are listed in
 * emv_ingest_internal.h; the de-duplication set is emv_dedup.c.
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

#include "emv_ingest_internal.h"
#include "emv_util.h"

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
	const size_t v[] = { l->max_field,   l->max_fields,   l->max_row,   l->max_row_lines,
			     l->detect_rows, l->detect_bytes, l->read_chunk };
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (v[i] == 0 || v[i] > LIMIT_MAX)
			return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Open, read, close                                                   */
/* ------------------------------------------------------------------ */

static emv_ingest *ingest_new(const char *name, const emv_ingest_limits *l, char *err, size_t errlen)
{
	emv_ingest_limits def;
	emv_ingest *in;

	if (!l) {
		emv_ingest_limits_default(&def);
		l = &def;
	}
	if (!limits_valid(l)) {
		emv_set_err(err, errlen, "%s: invalid ingest limits (each must be 1 to %zu)", name ? name : "input",
			    LIMIT_MAX);
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
	if (ingest_src_init(in) < 0 || ingest_sniff_fill(in) < 0) {
		emv_set_err(err, errlen, "%s", in->err);
		goto fail;
	}
	if (ingest_sniff_check(in, err, errlen) < 0 || ingest_detect(in, err, errlen) < 0)
		goto fail;
	in->err[0] = '\0';
	ingest_describe(in);
	ingest_tok_init(&in->tok, &in->lim, in->delim ? in->delim : -1);
	in->p = in->sniff + in->bom;
	in->end = in->sniff + in->sniff_len;
	in->in_sniff = 1;
	return in;
fail:
	emv_ingest_close(in);
	return NULL;
}

emv_ingest *emv_ingest_open_fd(int fd, const char *name, const emv_ingest_limits *l, char *err, size_t errlen)
{
	emv_ingest *in = ingest_new(name, l, err, errlen);
	struct stat st;

	if (!in)
		return NULL;
	in->fd = fd;
	if (fstat(fd, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			emv_set_err(err, errlen, "%s: is a directory", in->name);
			emv_ingest_close(in);
			return NULL;
		}
		if (S_ISREG(st.st_mode))
			in->size = (uint64_t)st.st_size;
	}
	return ingest_start(in, err, errlen);
}

emv_ingest *emv_ingest_open(const char *path, const emv_ingest_limits *l, char *err, size_t errlen)
{
	emv_ingest *in;
	int fd;

	if (!path || !*path) {
		emv_set_err(err, errlen, "no input file given");
		return NULL;
	}
	if (strcmp(path, "-") == 0)
		return emv_ingest_open_fd(STDIN_FILENO, "stdin", l, err, errlen);
	if (l && !limits_valid(l))
		return ingest_new(path, l, err, errlen); /* reports the error */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char safe[256];
		int e = errno;
		emv_sanitize(safe, sizeof(safe), path, strlen(path));
		emv_set_err(err, errlen, "%s: %s", safe, strerror(e));
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

emv_ingest *emv_ingest_open_mem(const void *buf, size_t len, const char *name, const emv_ingest_limits *l, char *err,
				size_t errlen)
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
	st->lines = ingest_tok_lines(&in->tok);
	st->bytes = in->bytes;
}

size_t emv_ingest_memory(const emv_ingest *in)
{
	if (!in)
		return 0;
	return sizeof(*in) + in->zin_cap + in->zmem + in->sniff_cap + in->chunk_cap + ingest_tok_memory(&in->tok) +
	       in->raw_cap + (in->header ? strlen(in->header) + 1 : 0);
}

void emv_ingest_close(emv_ingest *in)
{
	if (!in)
		return;
	if (in->gz_live)
		inflateEnd(&in->zs);
	if (in->own_fd && in->fd >= 0)
		close(in->fd);
	ingest_tok_free(&in->tok);
	free(in->zin);
	free(in->sniff);
	free(in->chunk);
	free(in->header);
	free(in->raw);
	free(in);
}
