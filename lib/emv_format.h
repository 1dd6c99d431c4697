/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_format.h - the one formatter of a list's results: the CSV columns and
 * JSON Lines keys of one output row, CSV quoting and JSON string escaping.
 *
 * `emailverify verify` (from its journal), `emailverify run`, the
 * coordinator's `export` and GET /v1/jobs/{id}/results (from PostgreSQL)
 * fill an emv_format_row each and call the same functions, so the same
 * verdict gives the same file whichever path made it (docs/result-json.md,
 * "Lists").  emv_report's JSON of one address (`check --json`) uses the
 * same string escaping.
 *
 * Output goes into a caller's emv_buf (appended); nothing here fails except
 * by running out of memory, which aborts (emv_buf_add).
 */
#ifndef EMV_FORMAT_H
#define EMV_FORMAT_H

#include <stdint.h>
#include "emv_policy.h"
#include "emv_util.h"

/*
 * One output row.  Strings may be NULL; optional ones (did_you_mean and the
 * evidence strings) that are NULL or "" are null in JSON and empty in CSV.
 */
typedef struct {
	const char *email; /* the normalised address; as given when invalid; "" for a bad row */
	const char *status, *reason;
	unsigned flags; /* EMV_FLAG_* */
	const char *did_you_mean;
	const char *detail;
	const char *mx_host, *mx_ip, *source_ip, *region, *tls;
	int catch_all; /* -1 not known, 0, 1 */
	int have_smtp; /* the deciding reply: */
	int smtp_code;
	const char *enhanced, *reply;
	long long attempts, duration_ms;
	int cached;	     /* 1: answered from the verdict cache (emv_cache.h), not asked by this job */
	int64_t verified_at; /* when the verdict was made, Unix seconds; 0: not known */
	uint64_t duplicate_of_row; /* 0: not a duplicate */
	uint64_t row;		   /* the input row number (1 = the first data row) */
	const char *input;	   /* the input row as read */
	const emv_policy *policy;  /* maps status and reason, gives safe_to_send (NULL: the default,
				     * docs/policy.md); the engine's verdict above is never changed */
} emv_format_row;

/* The CSV columns, in order (EMV_FORMAT_NCOLUMNS of them); JSON Lines
 * has the same keys in the same order, plus region before tls and with
 * smtp_code, enhanced_code and smtp_reply as one "smtp" object. */
#define EMV_FORMAT_NCOLUMNS 23
extern const char *const emv_format_columns[EMV_FORMAT_NCOLUMNS];

/* verified_at as written: "2026-12-07T16:00:00Z" (UTC), "" for 0. */
void emv_format_time(char *out, size_t outlen, int64_t unix_s);

/* The status, reason and safe_to_send a row is written with: its policy's
 * mapping of the engine's verdict.  A reason that is no verdict's (an
 * export's "pending") keeps its status and is not safe to send. */
int emv_format_verdict(const emv_format_row *r, const char **status, const char **reason);

/* The header line, then one line per row.  keep_formulas 0: a cell a
 * spreadsheet would run as a formula (emv_csv_is_formula) is quoted with a
 * ' in front (OWASP); 1: written as it is. */
void emv_format_csv_header(emv_buf *b);
void emv_format_csv_row(emv_buf *b, const emv_format_row *r, int keep_formulas);

/* One JSON object and its newline.  extra: NULL, or members already in
 * JSON text ("\"transcript\":[...]") added last. */
void emv_format_jsonl_row(emv_buf *b, const emv_format_row *r, const char *extra);

/* One CSV cell (RFC 4180: quoted when it holds a comma, quote or line
 * break) and its ',' or, when last, its '\n'. */
void emv_format_csv_cell(emv_buf *b, const char *s, int last, int keep_formulas);

/* A JSON string (RFC 8259 escapes); bytes that are not UTF-8 become '?'
 * (inputs are untrusted).  NULL, or "" with null_if_empty: null. */
void emv_format_json_str(emv_buf *b, const char *s, int null_if_empty);

#endif
