/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_util.h - small utilities every part of emailverify uses: allocation
 * that aborts on OOM, a monotonic clock, sanitising untrusted text, logging.
 *
 * Nothing here knows about mail.  Logging goes to stderr as one line per
 * event ("ts level component: message"), with a global level.
 */
#ifndef EMV_UTIL_H
#define EMV_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#define EMV_OK 0
#define EMV_ERR -1

/* The one host-name length limit: a host or domain name in text form (IDNA
 * A-labels), without the root dot, is at most 253 octets (RFC 1035 2.3.4:
 * 255 octets on the wire).  Every other name limit is derived from it. */
#define EMV_HOST_NAME_MAX 253

void *emv_xmalloc(size_t n);
void *emv_xcalloc(size_t n, size_t size);
void *emv_xrealloc(void *p, size_t n);
char *emv_xstrdup(const char *s);
char *emv_xstrndup(const char *s, size_t n);

/* Monotonic time in milliseconds / microseconds (CLOCK_MONOTONIC). */
uint64_t emv_now_ms(void);
/* Wall clock: unix time in ms (for times that travel between machines). */
uint64_t emv_wall_ms(void);
uint64_t emv_now_us(void);

/*
 * Copy untrusted bytes to dst as printable ASCII: bytes outside 0x20..0x7e
 * become '?', the result is NUL-terminated and at most dstlen-1 bytes.
 * Returns the number of bytes written (excluding NUL).
 */
size_t emv_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen);

/* A growable byte buffer, kept NUL-terminated (p is NULL until the first
 * byte): formatting rows, COPY data and JSON text.  free(b.p) when done. */
typedef struct {
	char *p;
	size_t len, cap;
} emv_buf;

void emv_buf_add(emv_buf *b, const void *s, size_t n);

/* Bounded string copy that always NUL-terminates; returns strlen(dst). */
size_t emv_strlcpy(char *dst, const char *src, size_t dstlen);

/* Format a message into a caller's error buffer (err may be NULL). */
void emv_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Lower-case ASCII in place. */
void emv_ascii_lower(char *s);

/* Trim ASCII white space at both ends in place; returns s. */
char *emv_trim(char *s);

typedef enum { EMV_LOG_ERROR = 0, EMV_LOG_WARN, EMV_LOG_INFO, EMV_LOG_DEBUG, EMV_LOG_TRACE } emv_log_level;
extern emv_log_level emv_log_threshold;
void emv_log(emv_log_level lvl, const char *component, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define emv_log_enabled(lvl) ((lvl) <= emv_log_threshold)

/*
 * The data directory (lists, classification rules, provider policies):
 * `given` when not NULL (--data-dir), else $EMAILVERIFY_DATA, else the first
 * of these that holds classify.rules: ../share/emailverify beside the running
 * binary (an installed or relocated tree), the source tree's data/ the build
 * was made from (EMV_SOURCE_DATA_DIR, for binaries run from the build tree),
 * the install prefix's share/emailverify (EMV_INSTALL_DATA_DIR).  When none
 * does, the install prefix's path, so that the error names where it looked.
 * Never NULL; the default is worked out once per process.
 */
const char *emv_data_dir(const char *given);

/*
 * 1 when a spreadsheet would take a CSV cell for a formula: it starts with
 * '=', '+', '-', '@', a tab or a CR (OWASP, "CSV injection").  Writers of
 * CSV that holds text from outside (the input row, an address, a server's
 * reply) then write the cell quoted and prefixed with a single quote,
 * unless told not to (--no-escape-formulas, escape_formulas=false).
 */
int emv_csv_is_formula(const char *s);

/* A duration: a whole number with an optional unit, s (the default), m, h
 * or d ("90", "90s", "10m", "2h").  -1 unless all of s is one, at most
 * 30 days. */
int emv_parse_duration_ms(const char *s, uint64_t *ms);
/* The same with another upper bound (max_ms, at most a few centuries). */
int emv_parse_duration_max_ms(const char *s, uint64_t max_ms, uint64_t *ms);

/* A time limit given as such a duration (--deadline, --straggler-wait):
 * whole seconds, rounded up, into *s; 0 only when zero_ok.  0, or -1 with
 * "OPT takes a duration from 1s (0) to 30d, ..." in err. */
int emv_parse_limit_s(const char *opt, const char *arg, int zero_ok, int64_t *s, char *err, size_t errlen);

/*
 * The one checked number parser for options, query parameters and settings:
 * a whole decimal number in [min, max] — an optional '-', then digits and
 * nothing else (no '+', no spaces, no suffix: "10x" and "" are refused, not
 * read as 10 and 0).  EMV_OK and *out, or EMV_ERR and *out untouched.
 */
int emv_parse_ll(const char *s, long long min, long long max, long long *out);

/* emv_parse_ll() for a named setting: on failure err says what was wrong,
 * naming the setting and its limits ("--threads must be a whole number
 * from 1 to 64 (got '10x')"). */
int emv_parse_number(const char *name, const char *s, long long min, long long max, long long *out, char *err,
		     size_t errlen);

/* emv_parse_number() into an int. */
int emv_parse_int(const char *name, const char *s, int min, int max, int *out, char *err, size_t errlen);

/* 1 when name is one of the comma-separated items of csv (exact match). */
int emv_csv_has(const char *csv, const char *name);

#endif
