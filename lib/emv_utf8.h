/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_utf8.h - the one UTF-8 decoder: strict RFC 3629 (no overlong forms, no
 * surrogates, nothing past U+10FFFF).  Every reader of untrusted text (the
 * address parser, the wire checks, ingest's sniffing, JSON and COPY writers,
 * form fields) decodes through it.  Bytes are read one at a time and reading
 * stops at the first one that does not fit, so a NUL-terminated string may be
 * given with any n >= 4 without reading past its NUL.
 */
#ifndef EMV_UTF8_H
#define EMV_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* emv_utf8_next()'s answer for a well-formed sequence cut off by n. */
#define EMV_UTF8_SHORT (-1)

/*
 * The sequence at p (at most n bytes are read): its length 1..4 and its code
 * point in *cp (cp may be NULL); 0 if it is malformed (or n is 0);
 * EMV_UTF8_SHORT if the n bytes are a well-formed beginning of a longer one.
 */
int emv_utf8_next(const unsigned char *p, size_t n, uint32_t *cp);

/* The length (1..4) of the well-formed sequence at p and its code point in
 * *cp (cp may be NULL), 0 when there is none within n bytes (malformed or
 * cut off). */
size_t emv_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);

/* emv_utf8_decode() without the code point. */
size_t emv_utf8_len(const unsigned char *p, size_t n);

/* Whether p[0..n) is all well-formed UTF-8. */
int emv_utf8_valid(const char *p, size_t n);

/* A control character: C0, DEL or C1. */
static inline int emv_utf8_is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/*
 * Copy untrusted bytes to dst as UTF-8 text fit for JSON and logs: every
 * well-formed sequence that is not a control character (C0, DEL, C1) is
 * kept, every other byte becomes '?', and a sequence that does not fit
 * whole is left out, so the result is always valid UTF-8 (whatever cut
 * the source).  NUL-terminated, at most dstlen-1 bytes; returns its length.
 */
size_t emv_sanitize_utf8(char *dst, size_t dstlen, const char *src, size_t srclen);

#endif
