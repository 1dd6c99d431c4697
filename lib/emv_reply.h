/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_reply.h - bounded accumulator for SMTP replies (RFC 5321 §4.2).
 *
 * The session code cuts lines out of its socket buffer (it enforces the
 * per-line bound) and feeds each line, without its CRLF, to
 * emv_reply_parser_feed().  The parser validates every line as if the server
 * were hostile: a reply code of three digits whose first digit is 2..5, then
 * ' ' (last line), '-' (more lines follow) or nothing at all (a bare "250"
 * is a valid last line); continuation lines must repeat the first line's
 * code; the whole reply is bounded in bytes and in lines.  Anything else is
 * a protocol error with a precise message in the caller's buffer.
 *
 * What is kept (emv_reply):
 *   - text: the text of every line after the code and separator, made
 *     printable (bytes outside 0x20..0x7e become '?'), lines joined with
 *     '\n', capped at EMV_REPLY_TEXT_MAX - 1 bytes.  Text beyond the cap is
 *     dropped and `truncated` set; that is not an error.  The enhanced code,
 *     when present, stays in the text: the text is the server's own words,
 *     as shown in evidence and matched by the classifier's phrase rules.
 *   - enhanced: the RFC 3463 code "class.subject.detail" found at the start
 *     of the FIRST line's text, only when its class agrees with the basic
 *     code's first digit (a "550 4.2.2" is contradictory; RFC 5321 says the
 *     basic code rules, so the enhanced code is dropped, "" is stored).
 *
 * Nothing here allocates; a parser is a plain struct the caller owns.
 */
#ifndef EMV_REPLY_H
#define EMV_REPLY_H

#include <stddef.h>

#define EMV_REPLY_TEXT_MAX \
	1024				  /* sanitised text kept per reply: every session holds a
                                              few replies, so this is per-session memory */
#define EMV_REPLY_DEFAULT_MAX_TOTAL 65536 /* raw bytes of one reply */
#define EMV_REPLY_DEFAULT_MAX_LINES 512	  /* lines of one reply */

typedef struct {
	int code;		       /* 200..599 */
	char enhanced[16];	       /* "5.1.1", or "" when absent / invalid */
	char text[EMV_REPLY_TEXT_MAX]; /* sanitised; lines joined with '\n' */
	size_t text_len;	       /* strlen(text) */
	int nlines;		       /* lines of this reply */
	int truncated;		       /* 1 when text was cut at the cap */
	size_t total_bytes;	       /* raw line bytes seen, terminators excluded */
} emv_reply;

typedef struct {
	emv_reply r;	  /* the reply being built; complete after DONE */
	int in_progress;  /* 1 between the first line and the last line */
	size_t max_total; /* bound on r.total_bytes */
	size_t max_lines; /* bound on r.nlines */
} emv_reply_parser;

typedef enum {
	EMV_REPLY_MORE = 0,  /* line accepted, reply continues */
	EMV_REPLY_DONE = 1,  /* last line accepted, p->r holds the reply */
	EMV_REPLY_ERROR = -1 /* protocol error, message in err; parser reset */
} emv_reply_status;

/* A bound of 0 means the default above. */
void emv_reply_parser_init(emv_reply_parser *p, size_t max_total_bytes, size_t max_lines);

/*
 * Feed one line (without CRLF; a stray trailing CR is ignored).  After DONE
 * or ERROR the next feed starts a new reply.  err may be NULL.
 */
emv_reply_status emv_reply_parser_feed(emv_reply_parser *p, const char *line, size_t len, char *err, size_t errlen);

/*
 * EHLO helpers.  Extensions are the first word of every line after the
 * greeting line, compared case-insensitively ("AUTH=LOGIN" counts as AUTH).
 */
int emv_reply_has_keyword(const emv_reply *r, const char *kw);

/*
 * The keyword's first parameter as a non-negative number ("SIZE 35882577"
 * gives 35882577, clamped to LONG_MAX).  0 when the keyword is present with
 * no numeric parameter (RFC 1870: a bare SIZE declares no limit); -1 when
 * the keyword is absent.
 */
long emv_reply_keyword_param(const emv_reply *r, const char *kw);

/*
 * Parse an RFC 3463 enhanced status code at the start of s (leading blanks
 * skipped): class 2/4/5, subject and detail 0..999 (1-3 digits), followed by
 * end of string or a character that is neither a digit nor '.'.  On success
 * writes the code into out (>= 12 bytes), returns its class digit (2, 4, 5);
 * else returns 0 and out is "".  Exposed for the classifier and the tests.
 */
int emv_enhanced_parse(const char *s, size_t len, char *out, size_t outlen);

#endif
