/* SPDX-License-Identifier: Apache-2.0 */
/* test_utf8.c - the one UTF-8 decoder: RFC 3629's edges, cut-off input,
 * sanitising for logs and JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "emv_utf8.h"

#define U(s) ((const unsigned char *)(s))

static void do_test_well_formed(void **state)
{
	static const struct {
		const char *s;
		int len;
		uint32_t cp;
	} ok[] = {
		{ "A", 1, 0x41 },
		{ "\x7f", 1, 0x7f },
		{ "\xc2\x80", 2, 0x80 },
		{ "\xdf\xbf", 2, 0x7ff },
		{ "\xe0\xa0\x80", 3, 0x800 },
		{ "\xed\x9f\xbf", 3, 0xd7ff },
		{ "\xee\x80\x80", 3, 0xe000 },
		{ "\xef\xbf\xbf", 3, 0xffff },
		{ "\xf0\x90\x80\x80", 4, 0x10000 },
		{ "\xf4\x8f\xbf\xbf", 4, 0x10ffff },
		{ "\xc3\xa9x", 2, 0xe9 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		uint32_t cp = 0;
		int k = emv_utf8_next(U(ok[i].s), strlen(ok[i].s), &cp);
		if (k != ok[i].len || cp != ok[i].cp)
			fail_msg("case %zu: length %d code point U+%04X, want %d U+%04X", i, k, (unsigned)cp, ok[i].len,
				 (unsigned)ok[i].cp);
		assert_int_equal(emv_utf8_len(U(ok[i].s), strlen(ok[i].s)), (size_t)ok[i].len);
	}
}

static void do_test_malformed(void **state)
{
	static const char *const bad[] = {
		"\x80", /* a lone continuation byte */
		"\xbf",
		"\xc0\xaf", /* overlong '/' */
		"\xc1\xbf",
		"\xe0\x9f\xbf",	    /* overlong 3-byte form */
		"\xed\xa0\x80",	    /* surrogate U+D800 */
		"\xed\xbf\xbf",	    /* surrogate U+DFFF */
		"\xf0\x8f\xbf\xbf", /* overlong 4-byte form */
		"\xf4\x90\x80\x80", /* U+110000 */
		"\xf5\x80\x80\x80",
		"\xff",
		"\xc3\x41", /* a lead byte and no continuation */
		"\xe2\x82\x41",
		"\xe2\x82", /* NUL-terminated: the NUL is no continuation */
	};
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		/* n = 4 for every case: reading stops at the first misfit byte,
		 * so the NUL of the shorter ones is never passed */
		if (emv_utf8_next(U(bad[i]), 4, NULL) != 0)
			fail_msg("case %zu is malformed but decoded", i);
		assert_int_equal(emv_utf8_len(U(bad[i]), 4), 0);
	}
	assert_int_equal(emv_utf8_next(U("A"), 0, NULL), 0);
}

static void do_test_cut_off(void **state)
{
	(void)state;
	/* a well-formed beginning cut by n is "short", not malformed */
	assert_int_equal(emv_utf8_next(U("\xc3\xa9"), 1, NULL), EMV_UTF8_SHORT);
	assert_int_equal(emv_utf8_next(U("\xe2\x82\xac"), 2, NULL), EMV_UTF8_SHORT);
	assert_int_equal(emv_utf8_next(U("\xf0\x9f\x98\x80"), 3, NULL), EMV_UTF8_SHORT);
	/* ... unless what is there is already wrong */
	assert_int_equal(emv_utf8_next(U("\xe0\x80"), 2, NULL), 0);
	assert_int_equal(emv_utf8_next(U("\xed\xa0"), 2, NULL), 0);
	/* the size_t forms treat short as none */
	assert_int_equal(emv_utf8_len(U("\xc3\xa9"), 1), 0);
	assert_int_equal(emv_utf8_decode(U("\xe2\x82\xac"), 2, NULL), 0);
}

static void do_test_valid_buffer(void **state)
{
	(void)state;
	assert_true(emv_utf8_valid("", 0));
	assert_true(emv_utf8_valid("caf\xc3\xa9 \xe2\x82\xac", 9));
	assert_false(emv_utf8_valid("caf\xc3\xa9", 4)); /* cut inside é */
	assert_false(emv_utf8_valid("a\xed\xa0\x80", 4));
	assert_true(emv_utf8_valid("a\0b", 3)); /* NUL is a character here */
}

static void do_test_sanitize(void **state)
{
	char out[16];
	(void)state;
	/* controls (C0, DEL, C1) and malformed bytes become '?' */
	static const char mixed[] = "a\tb\x7f"
				    "c\xc2\x85"
				    "d\xff"
				    "e";
	assert_int_equal(emv_sanitize_utf8(out, sizeof out, mixed, sizeof mixed - 1), 9);
	assert_string_equal(out, "a?b?c?d?e");
	/* well-formed text is kept */
	emv_sanitize_utf8(out, sizeof out, "caf\xc3\xa9", 5);
	assert_string_equal(out, "caf\xc3\xa9");
	/* never half a character: a 3-byte sequence that does not fit is left out */
	assert_int_equal(emv_sanitize_utf8(out, 5, "ab\xe2\x82\xac", 5), 2);
	assert_string_equal(out, "ab");
	/* a source cut inside a character */
	assert_int_equal(emv_sanitize_utf8(out, sizeof out, "ab\xe2\x82", 4), 4);
	assert_string_equal(out, "ab??");
	assert_int_equal(emv_sanitize_utf8(out, 0, "x", 1), 0);
	assert_int_equal(emv_sanitize_utf8(out, 1, "x", 1), 0);
	assert_string_equal(out, "");
}

/* The decoder agrees with a plain reference over every 1- and 2-byte input
 * and every 3-byte input with a lead byte in E0..EF. */
static int reference_len(const unsigned char *p, size_t n)
{
	uint32_t v;
	int len;
	if (p[0] < 0x80)
		return 1;
	len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
	if (!len || p[0] > 0xf4 || (size_t)len > n)
		return 0;
	v = p[0] & (0x7f >> len);
	for (int i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3f);
	}
	if ((len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000) || v > 0x10ffff ||
	    (v >= 0xd800 && v <= 0xdfff))
		return 0;
	return len;
}

static void do_test_agrees_with_reference(void **state)
{
	unsigned char b[3];
	(void)state;
	for (unsigned x = 0; x < 256; x++)
		for (unsigned y = 0; y < 256; y++) {
			b[0] = (unsigned char)x, b[1] = (unsigned char)y;
			if (emv_utf8_len(b, 2) != (size_t)reference_len(b, 2))
				fail_msg("%02x %02x: %zu, want %d", x, y, emv_utf8_len(b, 2), reference_len(b, 2));
			if (x < 0xe0 || x > 0xef)
				continue;
			for (unsigned z = 0; z < 256; z++) {
				b[2] = (unsigned char)z;
				if (emv_utf8_len(b, 3) != (size_t)reference_len(b, 3))
					fail_msg("%02x %02x %02x: %zu, want %d", x, y, z, emv_utf8_len(b, 3),
						 reference_len(b, 3));
			}
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_well_formed), cmocka_unit_test(do_test_malformed),
		cmocka_unit_test(do_test_cut_off),     cmocka_unit_test(do_test_valid_buffer),
		cmocka_unit_test(do_test_sanitize),    cmocka_unit_test(do_test_agrees_with_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
