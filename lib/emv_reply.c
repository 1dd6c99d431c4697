/* SPDX-License-Identifier: Apache-2.0 */
/* emv_reply.c - bounded, validating SMTP reply accumulator (see emv_reply.h). */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "emv_reply.h"
#include "emv_util.h"

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}


void emv_reply_parser_init(emv_reply_parser *p, size_t max_total_bytes, size_t max_lines)
{
	memset(p, 0, sizeof *p);
	p->max_total = max_total_bytes ? max_total_bytes : EMV_REPLY_DEFAULT_MAX_TOTAL;
	p->max_lines = max_lines ? max_lines : EMV_REPLY_DEFAULT_MAX_LINES;
	if (p->max_lines > INT_MAX) /* nlines is an int */
		p->max_lines = INT_MAX;
}

static void reply_reset(emv_reply *r)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	r->text[0] = '\0';
	r->text_len = 0;
	r->nlines = 0;
	r->truncated = 0;
	r->total_bytes = 0;
}

/* Append one line's text, sanitised; what does not fit is dropped and flagged. */
static void text_append(emv_reply *r, const char *s, size_t n, int newline)
{
	size_t room = EMV_REPLY_TEXT_MAX - 1 - r->text_len;

	if (newline) {
		if (room == 0) {
			r->truncated = 1;
			return;
		}
		r->text[r->text_len++] = '\n';
		r->text[r->text_len] = '\0';
		room--;
	}
	if (n > room) {
		r->truncated = 1;
		n = room;
	}
	r->text_len += emv_sanitize(r->text + r->text_len, room + 1, s, n);
}

int emv_enhanced_parse(const char *s, size_t len, char *out, size_t outlen)
{
	size_t i = 0, start;
	int cls;

	if (out && outlen)
		out[0] = '\0';
	if (!s)
		return 0;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	start = i;
	if (i >= len || (s[i] != '2' && s[i] != '4' && s[i] != '5'))
		return 0;
	cls = s[i++] - '0';
	for (int part = 0; part < 2; part++) {
		size_t digits = 0;
		if (i >= len || s[i] != '.')
			return 0;
		i++;
		while (i < len && is_digit(s[i]) && digits < 4) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			return 0;
	}
	/* "5.1.1.2" or "5.1.10x"-like run-ons are not an enhanced code. */
	if (i < len && (s[i] == '.' || is_digit(s[i])))
		return 0;
	if (!out || i - start >= outlen)
		return 0;
	memcpy(out, s + start, i - start);
	out[i - start] = '\0';
	return cls;
}

/* Sanitised excerpt of a bad line for error messages. */
static const char *excerpt(char *buf, size_t buflen, const char *line, size_t len)
{
	emv_sanitize(buf, buflen, line ? line : "", line ? len : 0);
	return buf;
}

emv_reply_status emv_reply_parser_feed(emv_reply_parser *p, const char *line, size_t len, char *err, size_t errlen)
{
	emv_reply *r;
	char ex[40];
	size_t n, start;
	int code, last;

	if (!p) {
		emv_set_err(err, errlen, "no reply parser");
		return EMV_REPLY_ERROR;
	}
	r = &p->r;
	if (!p->in_progress) {
		reply_reset(r);
		p->in_progress = 1;
	}
	if (!line && len) {
		emv_set_err(err, errlen, "reply line is NULL");
		goto fail;
	}

	/* Bounds first: they hold whatever the line contains. */
	if (len > p->max_total - r->total_bytes) {
		if (r->nlines)
			emv_set_err(err, errlen, "multi-line reply exceeds %zu bytes", p->max_total);
		else
			emv_set_err(err, errlen, "reply line of %zu bytes exceeds %zu bytes", len, p->max_total);
		goto fail;
	}
	if ((size_t)r->nlines >= p->max_lines) {
		emv_set_err(err, errlen, "multi-line reply exceeds %zu lines", p->max_lines);
		goto fail;
	}
	r->total_bytes += len;

	/* The session strips CRLF; a lone CR left by a bare-LF splitter is noise. */
	n = len;
	if (n && line[n - 1] == '\r')
		n--;

	if (n < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2])) {
		emv_set_err(err, errlen, "malformed reply line (no 3-digit code): \"%s\"",
			    excerpt(ex, sizeof ex, line, n));
		goto fail;
	}
	/*
	 * RFC 5321 §4.2: the first digit is 2..5 (no SMTP command has a 1yz
	 * reply).  The ABNF also limits the second digit to 0..5, but nothing
	 * here depends on it and refusing "571" would turn an odd but clear
	 * refusal into a protocol error, so any second and third digit passes.
	 */
	if (line[0] < '2' || line[0] > '5') {
		emv_set_err(err, errlen, "invalid reply code %.3s: first digit must be 2-5", line);
		goto fail;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (n == 3 || line[3] == ' ') {
		last = 1;
	} else if (line[3] == '-') {
		last = 0;
	} else {
		emv_set_err(err, errlen,
			    "malformed reply line: byte 0x%02x after code %d, expected ' ', '-' or end of line",
			    (unsigned char)line[3], code);
		goto fail;
	}
	if (r->nlines && code != r->code) {
		emv_set_err(err, errlen, "continuation line code %d differs from first line code %d", code, r->code);
		goto fail;
	}

	start = n > 3 ? 4 : 3;
	if (r->nlines == 0) {
		char enh[sizeof r->enhanced];
		r->code = code;
		/* A class that contradicts the basic code is a server bug: drop it. */
		if (emv_enhanced_parse(line + start, n - start, enh, sizeof enh) == code / 100)
			memcpy(r->enhanced, enh, sizeof enh);
	}
	text_append(r, line + start, n - start, r->nlines > 0);
	r->nlines++;
	if (last) {
		p->in_progress = 0;
		return EMV_REPLY_DONE;
	}
	return EMV_REPLY_MORE;

fail:
	p->in_progress = 0;
	return EMV_REPLY_ERROR;
}

/*
 * Find kw as the first word of an extension line (every line after the
 * greeting).  Returns a pointer just past the word, or NULL.
 */
static const char *find_keyword(const emv_reply *r, const char *kw)
{
	size_t kwlen;
	const char *p;

	if (!r || !kw || !*kw)
		return NULL;
	kwlen = strlen(kw);
	for (p = strchr(r->text, '\n'); p; p = strchr(p, '\n')) {
		const char *w = ++p;
		size_t wl = strcspn(w, " =\n");
		if (wl == kwlen && strncasecmp(w, kw, kwlen) == 0)
			return w + wl;
	}
	return NULL;
}

int emv_reply_has_keyword(const emv_reply *r, const char *kw)
{
	return find_keyword(r, kw) != NULL;
}

long emv_reply_keyword_param(const emv_reply *r, const char *kw)
{
	const char *p = find_keyword(r, kw);
	long v = 0;

	if (!p)
		return -1;
	while (*p == ' ' || *p == '=')
		p++;
	for (; is_digit(*p); p++) {
		int d = *p - '0';
		if (v > (LONG_MAX - d) / 10)
			return LONG_MAX; /* a hostile "SIZE 9999999999999999999999" */
		v = v * 10 + d;
	}
	return v;
}
