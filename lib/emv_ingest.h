/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_ingest.h - streaming reader for uploaded address lists, and the
 * per-job de-duplication set.
 *
 * Job: turn an uploaded file (CSV with or without a header, or one address
 * per line; plain or gzip; a path, stdin, a file descriptor or a memory
 * buffer) into a sequence of rows, each holding the raw email field, a
 * bounded re-serialisation of the whole row and, when the row is broken, a
 * precise error.  Used by `emailverify verify` and by the coordinator's
 * upload ingest.  It never loads the input whole: memory is bounded by the
 * limits below, whatever the input (emv_ingest_memory() reports it).  It
 * does not check address syntax: that is emv_address_parse()'s job.
 *
 * Input rules (decided once, at open, from the first bytes):
 *  - gzip: by its magic bytes (1f 8b); concatenated members are read in
 *    turn; other compressors, ZIP/XLSX, OLE (.xls), PDF, UTF-16/32 and any
 *    input with a NUL byte or mostly control bytes in its first 64 KiB are
 *    refused with a file-level error saying what the file looks like.
 *  - A UTF-8 byte-order mark is skipped.  Lines end in LF, CRLF or CR.
 *    Other bytes are passed through unchanged (invalid UTF-8 included).
 *  - Delimiter: the most frequent of , ; TAB | outside double quotes in the
 *    first non-blank line (ties in that order).  None: one column.
 *  - CSV (a delimiter was found): RFC 4180 quoting ("" inside quotes is a
 *    quote; quoted fields may hold delimiters and line breaks), read
 *    leniently: white space before an opening quote and between a closing
 *    quote and the delimiter is dropped; a quote inside an unquoted field
 *    is an ordinary byte; text right after a closing quote turns the whole
 *    field back into the literal bytes it came from ("a b"@x.org stays
 *    "a b"@x.org).  A quoted field still open when the row reaches
 *    max_row bytes or max_row_lines lines, or at the end of the input after
 *    a line break, is a runaway quote: the row is reported as an error
 *    that ends at the line where that field began, and reading resumes on
 *    the next line, so one stray quote costs one row, not the rest of the
 *    file.
 *  - One column (no delimiter): each line is one field, taken verbatim
 *    (so "a b"@x.org keeps its quotes); a line wholly enclosed in double
 *    quotes with only doubled quotes inside is unquoted CSV-style.
 *  - Rows whose fields are all empty or white space (blank lines, ",,,")
 *    are skipped and counted; they get no row number.
 *  - Email column, from the first row and up to detect_rows rows after it:
 *    1. a header field named like email ("Email", "E-mail Address",
 *       "courriel", "correo electrónico"... compared lower-cased without
 *       spaces and punctuation) wins, leftmost first, whatever the data;
 *    2. else, when a field of the first row contains '@', there is no
 *       header and the first row is data;
 *    3. else the first row is a header, and the column chosen is a weakly
 *       named one ("Work email", "mail", "address", "contact"...) or any
 *       column, provided at least half of the sampled data rows have '@'
 *       in it (most '@' wins, then leftmost).  Nothing qualifies: error.
 *    In one-column input the first line is a header only if it has an
 *    email name, or has no '@' and no '.' and looks like a word; input
 *    with no header is "one address per line" (email column -1).
 *
 * Errors: file-level problems (cannot open or read, empty, binary, no email
 * column) make emv_ingest_open*() return NULL with one printable sentence
 * in the caller's buffer.  Row-level problems (a field, row or field count
 * over its limit, a runaway quote, a row too short to reach the email
 * column) come back as rows with email == NULL and an error such as
 * "line 12: field 3 is 104857 bytes; the limit is 4096"; reading goes on.
 * A read or decompression failure in mid-stream makes emv_ingest_next()
 * return -1 (message from emv_ingest_error()), and again on every later
 * call.  Out of memory aborts (emv_xmalloc).  A handle is used by one
 * thread at a time; separate handles are independent.
 */
#ifndef EMV_INGEST_H
#define EMV_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include "emv_dedup.h" /* the de-duplication set, its own file */

/* Limits; every one a named setting.  Defaults in emv_ingest_limits_default(). */
typedef struct {
	size_t max_field;     /* bytes in one field (unquoted)            4096 */
	size_t max_fields;    /* fields in one row                          512 */
	size_t max_row;	      /* bytes in one row, quotes and delimiters 65536 */
	size_t max_row_lines; /* physical lines one row may span            100 */
	size_t detect_rows;   /* data rows sampled to find the column       100 */
	size_t detect_bytes;  /* most input buffered for detection      1048576 */
	size_t read_chunk;    /* bytes per read() / inflate() call        65536 */
	/* What one input may cost, for input nobody vouches for (an HTTP
	 * upload: a small gzip can decode to gigabytes); 0 = no limit, the
	 * default.  Going over one ends the input with an error (-1 from
	 * emv_ingest_next, emv_ingest_over_limit() says which). */
	uint64_t max_rows;	  /* data rows handed out                       0 */
	uint64_t max_bytes;	  /* decompressed bytes read                    0 */
	uint64_t max_blank_lines; /* physical lines that gave no row (empty or
	                             blank lines, the header)                   0 */
} emv_ingest_limits;

#define EMV_INGEST_MAX_FIELD 4096
#define EMV_INGEST_MAX_FIELDS 512
#define EMV_INGEST_MAX_ROW 65536
#define EMV_INGEST_MAX_ROW_LINES 100
#define EMV_INGEST_DETECT_ROWS 100
#define EMV_INGEST_DETECT_BYTES (1024 * 1024)
#define EMV_INGEST_READ_CHUNK 65536
#define EMV_INGEST_BINARY_WINDOW 65536 /* bytes examined for binary content */

void emv_ingest_limits_default(emv_ingest_limits *l);

typedef struct emv_ingest emv_ingest;

/*
 * Open a list.  path "-" is stdin.  l == NULL means the defaults; a zero
 * limit is an error.  On failure returns NULL and writes one sentence to
 * err ("list.csv: No such file or directory", "list.csv: empty file",
 * "list.csv: binary data (NUL byte at offset 17), not a CSV or text list",
 * "list.csv: no email column; header fields: \"name\", \"phone\"").
 * Reads up to detect_bytes of input before returning.
 */
emv_ingest *emv_ingest_open(const char *path, const emv_ingest_limits *l, char *err, size_t errlen);
/* Same on an open descriptor, which is read but never closed; name is for
 * messages. */
emv_ingest *emv_ingest_open_fd(int fd, const char *name, const emv_ingest_limits *l, char *err, size_t errlen);
/* Same on a buffer (plain or gzip), which must outlive the handle. */
emv_ingest *emv_ingest_open_mem(const void *buf, size_t len, const char *name, const emv_ingest_limits *l, char *err,
				size_t errlen);

typedef struct {
	uint64_t row;	   /* 1-based data row number (header and blank rows excluded) */
	uint64_t line;	   /* physical line (1-based) where the row starts */
	const char *email; /* email field, ASCII white space trimmed, NUL-terminated
	                        (may hold other NULs: use email_len); NULL on a row error */
	size_t email_len;
	const char *raw; /* the row re-serialised as CSV with ',' (fields quoted when
	                        they hold , " CR or LF); at most 2 * max_row + 4 * max_fields
	                        + 16 bytes, whole fields left out on error rows when it
	                        would be longer; NUL-terminated (may hold other NULs) */
	size_t raw_len;
	const char *error; /* NULL, or "line 12: field 3 is 104857 bytes; the limit is 4096" */
} emv_ingest_row;

/*
 * Next row: 1 = *row filled (pointers valid until the next call or close),
 * 0 = end of input, -1 = read/decompression error (emv_ingest_error()).
 */
int emv_ingest_next(emv_ingest *in, emv_ingest_row *row);

/* The header row re-serialised like emv_ingest_row.raw; "" when there is none. */
const char *emv_ingest_header(const emv_ingest *in);
/* 0-based email column; -1 for one address per line (one column, no header). */
int emv_ingest_email_column(const emv_ingest *in);
/* The email column's header text, sanitised; "" when there is no header. */
const char *emv_ingest_email_column_name(const emv_ingest *in);
/* The delimiter, or 0 for one-column input. */
int emv_ingest_delimiter(const emv_ingest *in);
/* One line for logs: "gzip, CSV delimited by ';', header, email column 3
 * \"E-Mail\" (by name)". */
const char *emv_ingest_describe(const emv_ingest *in);
/* Last mid-stream error, "" if none. */
const char *emv_ingest_error(const emv_ingest *in);
/* 1 when the input ended because it went over max_rows, max_bytes or
 * max_blank_lines (the error says which), else 0. */
int emv_ingest_over_limit(const emv_ingest *in);

/* Input bytes consumed so far (compressed bytes for gzip), and the input
 * size when known (regular file or buffer), else 0: a progress fraction. */
uint64_t emv_ingest_bytes_read(const emv_ingest *in);
uint64_t emv_ingest_input_size(const emv_ingest *in);

typedef struct {
	uint64_t rows;	     /* rows returned (valid + error) */
	uint64_t error_rows; /* rows returned with an error */
	uint64_t blank_rows; /* rows skipped because every field was empty or white
	                         space (",,", "  "); empty lines are not counted */
	uint64_t lines;	     /* physical lines consumed */
	uint64_t bytes;	     /* decompressed bytes consumed */
} emv_ingest_stats;
void emv_ingest_get_stats(const emv_ingest *in, emv_ingest_stats *st);

/* Bytes currently allocated by the handle (buffers and zlib state). */
size_t emv_ingest_memory(const emv_ingest *in);

void emv_ingest_close(emv_ingest *in);

#endif
