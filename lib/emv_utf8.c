/* SPDX-License-Identifier: Apache-2.0 */
/* emv_utf8.c - the one UTF-8 decoder (see emv_utf8.h). */
#include "emv_utf8.h"

#include <string.h>

int emv_utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
	uint32_t c, lo = 0x80, hi = 0xbf;
	int k;

	if (n == 0)
		return 0;
	c = p[0];
	if (c < 0x80) {
		if (cp)
			*cp = c;
		return 1;
	}
	/* The second byte's range excludes overlong forms (E0, F0),
	 * surrogates (ED) and values past U+10FFFF (F4). */
	if (c >= 0xc2 && c <= 0xdf)
		k = 2, c &= 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		k = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf, c &= 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		k = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf, c &= 0x07;
	else
		return 0; /* a continuation byte, a C0/C1 overlong lead, or F5..FF */
	for (int i = 1; i < k; i++) {
		if ((size_t)i >= n)
			return EMV_UTF8_SHORT;
		if (p[i] < lo || p[i] > hi)
			return 0;
		c = c << 6 | (p[i] & 0x3fu);
		lo = 0x80, hi = 0xbf;
	}
	if (cp)
		*cp = c;
	return k;
}

size_t emv_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
	int k = emv_utf8_next(p, n, cp);
	return k > 0 ? (size_t)k : 0;
}

size_t emv_utf8_len(const unsigned char *p, size_t n)
{
	return emv_utf8_decode(p, n, NULL);
}

int emv_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t k = emv_utf8_len(p + i, n - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

size_t emv_sanitize_utf8(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, n = 0;
	if (dstlen == 0)
		return 0;
	while (i < srclen) {
		uint32_t cp = 0;
		size_t k = emv_utf8_decode(s + i, srclen - i, &cp);
		if (k == 0 || emv_utf8_is_control(cp)) {
			if (n + 1 >= dstlen)
				break;
			dst[n++] = '?';
			i += k ? k : 1;
			continue;
		}
		if (n + k >= dstlen)
			break; /* never half a character */
		memcpy(dst + n, s + i, k);
		n += k;
		i += k;
	}
	dst[n] = '\0';
	return n;
}
