/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_reply.c - the bounded SMTP reply parser: validation of hostile input,
 * limits, sanitising, enhanced status codes, EHLO keyword lookup.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "emv_reply.h"

static emv_reply_parser P;
static char ERR[256];

static int setup(void **state)
{
	(void)state;
	emv_reply_parser_init(&P, 0, 0);
	ERR[0] = '\0';
	return 0;
}

static emv_reply_status feed(const char *line)
{
	return emv_reply_parser_feed(&P, line, strlen(line), ERR, sizeof ERR);
}

/* Feed all lines; every one but the last must say MORE. */
static emv_reply_status feed_all(const char *const *lines, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		emv_reply_status st = feed(lines[i]);
		if (st != EMV_REPLY_MORE)
			return st;
	}
	return feed(lines[n - 1]);
}

static void expect_error(const char *line, const char *what)
{
	assert_int_equal(feed(line), EMV_REPLY_ERROR);
	if (!strstr(ERR, what))
		fail_msg("error \"%s\" lacks \"%s\"", ERR, what);
}

static void do_test_single_line(void **state)
{
	(void)state;
	assert_int_equal(feed("250 2.1.5 Ok"), EMV_REPLY_DONE);
	assert_int_equal(P.r.code, 250);
	assert_string_equal(P.r.enhanced, "2.1.5");
	assert_string_equal(P.r.text, "2.1.5 Ok"); /* enhanced code stays in the text */
	assert_int_equal(P.r.text_len, 8);
	assert_int_equal(P.r.nlines, 1);
	assert_int_equal(P.r.truncated, 0);
	assert_int_equal(P.r.total_bytes, 12);
	assert_int_equal(P.in_progress, 0);
}

static void do_test_multi_line(void **state)
{
	static const char *const lines[] = {
		"550-5.1.1 The email account that you tried to reach does not exist. Please try",
		"550-5.1.1 double-checking the recipient's email address for typos or",
		"550 5.1.1 unnecessary spaces. - gsmtp",
	};
	(void)state;
	assert_int_equal(feed_all(lines, 3), EMV_REPLY_DONE);
	assert_int_equal(P.r.code, 550);
	assert_string_equal(P.r.enhanced, "5.1.1");
	assert_int_equal(P.r.nlines, 3);
	assert_string_equal(P.r.text, "5.1.1 The email account that you tried to reach does not exist. Please try\n"
				      "5.1.1 double-checking the recipient's email address for typos or\n"
				      "5.1.1 unnecessary spaces. - gsmtp");
	assert_int_equal(P.r.text_len, strlen(P.r.text));
}

static void do_test_in_progress(void **state)
{
	(void)state;
	assert_int_equal(feed("250-first"), EMV_REPLY_MORE);
	assert_int_equal(P.in_progress, 1);
	assert_int_equal(feed("250 last"), EMV_REPLY_DONE);
	assert_int_equal(P.in_progress, 0);
}

static void do_test_bare_code_last_line(void **state)
{
	(void)state;
	assert_int_equal(feed("250"), EMV_REPLY_DONE);
	assert_int_equal(P.r.code, 250);
	assert_string_equal(P.r.text, "");
	assert_string_equal(P.r.enhanced, "");
	/* ... also ending a multi-line reply */
	assert_int_equal(feed("250-mx.example.com"), EMV_REPLY_MORE);
	assert_int_equal(feed("250"), EMV_REPLY_DONE);
	assert_string_equal(P.r.text, "mx.example.com\n");
	assert_int_equal(P.r.nlines, 2);
}

static void do_test_empty_text_after_space(void **state)
{
	(void)state;
	assert_int_equal(feed("354 "), EMV_REPLY_DONE);
	assert_int_equal(P.r.code, 354);
	assert_string_equal(P.r.text, "");
}

static void do_test_next_feed_starts_new_reply(void **state)
{
	(void)state;
	assert_int_equal(feed("550 5.1.1 no"), EMV_REPLY_DONE);
	assert_int_equal(feed("250 Ok"), EMV_REPLY_DONE);
	assert_int_equal(P.r.code, 250);
	assert_string_equal(P.r.enhanced, "");
	assert_string_equal(P.r.text, "Ok");
	assert_int_equal(P.r.nlines, 1);
	assert_int_equal(P.r.total_bytes, 6);
}

static void do_test_continuation_mismatch(void **state)
{
	(void)state;
	assert_int_equal(feed("250-mx.example.com"), EMV_REPLY_MORE);
	expect_error("251 PIPELINING", "continuation line code 251 differs from first line code 250");
	/* the parser is reset: a fresh reply parses */
	assert_int_equal(feed("220 ready"), EMV_REPLY_DONE);
	assert_int_equal(P.r.nlines, 1);
}

static void do_test_mismatch_on_last_line(void **state)
{
	(void)state;
	assert_int_equal(feed("550-5.1.1 first"), EMV_REPLY_MORE);
	expect_error("450 4.1.1 last", "differs");
}

static void do_test_bad_code_letters(void **state)
{
	(void)state;
	expect_error("abc hello", "no 3-digit code");
	assert_non_null(strstr(ERR, "\"abc hello\""));
}

static void do_test_too_short(void **state)
{
	(void)state;
	expect_error("25", "no 3-digit code");
	expect_error("", "no 3-digit code");
}

static void do_test_first_digit_range(void **state)
{
	(void)state;
	expect_error("150 preliminary", "first digit must be 2-5");
	expect_error("650 nope", "first digit must be 2-5");
	expect_error("050 nope", "first digit must be 2-5");
	assert_int_equal(feed("571 odd second digit"), EMV_REPLY_DONE); /* accepted on purpose */
	assert_int_equal(P.r.code, 571);
}

static void do_test_bad_separator(void **state)
{
	(void)state;
	expect_error("250_ok", "byte 0x5f after code 250");
	expect_error("2500 ok", "byte 0x30 after code 250");
	expect_error("250\tok", "byte 0x09");
}

static void do_test_leading_space_rejected(void **state)
{
	(void)state;
	expect_error(" 250 ok", "no 3-digit code");
}

static void do_test_trailing_cr_ignored(void **state)
{
	(void)state;
	assert_int_equal(feed("250 ok\r"), EMV_REPLY_DONE);
	assert_string_equal(P.r.text, "ok");
	assert_int_equal(P.r.total_bytes, 7); /* raw bytes still counted */
	assert_int_equal(feed("250\r"), EMV_REPLY_DONE);
	assert_string_equal(P.r.text, "");
}

static void do_test_nul_and_controls_sanitised(void **state)
{
	static const char raw[] = "550 bad\0byte\x1b[31m\x7f\xff\ttab";
	(void)state;
	assert_int_equal(emv_reply_parser_feed(&P, raw, sizeof raw - 1, ERR, sizeof ERR), EMV_REPLY_DONE);
	assert_string_equal(P.r.text, "bad?byte?[31m???tab");
	assert_int_equal(P.r.text_len, strlen(P.r.text));
	for (size_t i = 0; i < P.r.text_len; i++)
		assert_true(P.r.text[i] >= 0x20 && P.r.text[i] <= 0x7e);
}

static void do_test_error_excerpt_sanitised(void **state)
{
	(void)state;
	expect_error("\x01\x02zz", "no 3-digit code");
	for (const char *e = ERR; *e; e++)
		assert_true(*e >= 0x20 && *e <= 0x7e);
}

static void do_test_over_total_bytes(void **state)
{
	char line[120];
	(void)state;
	emv_reply_parser_init(&P, 300, 0);
	memset(line, 'a', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	memcpy(line, "250-", 4);
	assert_int_equal(feed(line), EMV_REPLY_MORE); /* 119 */
	assert_int_equal(feed(line), EMV_REPLY_MORE); /* 238 */
	expect_error(line, "multi-line reply exceeds 300 bytes");
}

static void do_test_default_total_limit_message(void **state)
{
	char line[1100];
	(void)state;
	memset(line, 'x', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	memcpy(line, "250-", 4);
	for (int i = 0; i < 59; i++)
		assert_int_equal(feed(line), EMV_REPLY_MORE); /* 59 * 1099 = 64841 */
	expect_error(line, "multi-line reply exceeds 65536 bytes");
}

static void do_test_single_line_over_limit(void **state)
{
	char line[64];
	(void)state;
	emv_reply_parser_init(&P, 32, 0);
	memset(line, 'b', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	memcpy(line, "250 ", 4);
	expect_error(line, "reply line of 63 bytes exceeds 32 bytes");
}

static void do_test_exact_limit_ok(void **state)
{
	(void)state;
	emv_reply_parser_init(&P, 12, 0);
	assert_int_equal(feed("250 2.1.5 Ok"), EMV_REPLY_DONE); /* exactly 12 */
}

static void do_test_over_max_lines(void **state)
{
	(void)state;
	emv_reply_parser_init(&P, 0, 3);
	assert_int_equal(feed("250-a"), EMV_REPLY_MORE);
	assert_int_equal(feed("250-b"), EMV_REPLY_MORE);
	assert_int_equal(feed("250-c"), EMV_REPLY_MORE);
	expect_error("250 d", "multi-line reply exceeds 3 lines");
}

static void do_test_default_max_lines(void **state)
{
	(void)state;
	for (int i = 0; i < 512; i++)
		assert_int_equal(feed("250-x"), EMV_REPLY_MORE);
	expect_error("250 x", "exceeds 512 lines");
}

static void do_test_truncation(void **state)
{
	char line[1024];
	int i;
	(void)state;
	memset(line, 'y', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	memcpy(line, "250-", 4);
	for (i = 0; i < 6; i++)
		assert_int_equal(feed(line), EMV_REPLY_MORE);
	assert_int_equal(feed("250 end"), EMV_REPLY_DONE);
	assert_int_equal(P.r.truncated, 1);
	assert_int_equal(P.r.text_len, EMV_REPLY_TEXT_MAX - 1);
	assert_int_equal(strlen(P.r.text), EMV_REPLY_TEXT_MAX - 1);
	assert_int_equal(P.r.nlines, 7);
	assert_int_equal(P.r.total_bytes, 6 * 1023 + 7);
}

static void do_test_truncation_exact_fit(void **state)
{
	char line[EMV_REPLY_TEXT_MAX + 4];
	(void)state;
	memset(line, 'z', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	memcpy(line, "250 ", 4); /* text of exactly TEXT_MAX - 1 bytes */
	assert_int_equal(feed(line), EMV_REPLY_DONE);
	assert_int_equal(P.r.truncated, 0);
	assert_int_equal(P.r.text_len, EMV_REPLY_TEXT_MAX - 1);
}

static void do_test_enhanced_class_mismatch_dropped(void **state)
{
	(void)state;
	assert_int_equal(feed("550 4.2.2 mailbox full"), EMV_REPLY_DONE);
	assert_string_equal(P.r.enhanced, "");
	assert_string_equal(P.r.text, "4.2.2 mailbox full");
	assert_int_equal(feed("250 5.0.0 ok"), EMV_REPLY_DONE);
	assert_string_equal(P.r.enhanced, "");
}

static void do_test_enhanced_only_first_line(void **state)
{
	(void)state;
	assert_int_equal(feed("550-Callout verification failed:"), EMV_REPLY_MORE);
	assert_int_equal(feed("550 5.1.1 User unknown"), EMV_REPLY_DONE);
	assert_string_equal(P.r.enhanced, "");
}

static void do_test_enhanced_edge_cases(void **state)
{
	static const struct {
		const char *line, *want;
	} cases[] = {
		{ "550 5.1.10 RESOLVER.ADR.RecipientNotFound", "5.1.10" },
		{ "550 5.7.606 Access denied", "5.7.606" },
		{ "550 5.999.999 max", "5.999.999" },
		{ "550 5.0.0", "5.0.0" },
		{ "550  5.1.1 two spaces", "5.1.1" },
		{ "550 5.1.1: colon after", "5.1.1" },
		{ "550 5.1.1;x", "5.1.1" },
		{ "550 5.1.1000 too long detail", "" },
		{ "550 5.1000.1 too long subject", "" },
		{ "550 5.1.1.2 four parts", "" },
		{ "550 5.1. missing detail", "" },
		{ "550 5..1 empty subject", "" },
		{ "550 3.1.1 bad class", "" },
		{ "550 51.1.1 two-digit class", "" },
		{ "550 5.1.1x glued letters", "5.1.1" },
		{ "550 #5.1.1 hash", "" },
		{ "550 cuda_nsu 5.1.1 not first", "" },
		{ "550 5-1-1 dashes", "" },
		{ "451 4.7.1 Try again later", "4.7.1" },
		{ "250 2.1.5", "2.1.5" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(feed(cases[i].line), EMV_REPLY_DONE);
		if (strcmp(P.r.enhanced, cases[i].want) != 0)
			fail_msg("\"%s\": enhanced \"%s\", want \"%s\"", cases[i].line, P.r.enhanced, cases[i].want);
	}
}

static void do_test_enhanced_parse_direct(void **state)
{
	char out[16];
	(void)state;
	assert_int_equal(emv_enhanced_parse("4.2.2", 5, out, sizeof out), 4);
	assert_string_equal(out, "4.2.2");
	/* bounded by len, not by NUL */
	assert_int_equal(emv_enhanced_parse("5.1.15", 5, out, sizeof out), 5);
	assert_string_equal(out, "5.1.1");
	assert_int_equal(emv_enhanced_parse("5.1.1", 5, out, 5), 0); /* no room for NUL */
	assert_string_equal(out, "");
	assert_int_equal(emv_enhanced_parse(NULL, 0, out, sizeof out), 0);
	assert_int_equal(emv_enhanced_parse("", 0, out, sizeof out), 0);
}

static const char *const EHLO[] = {
	"250-mx.example.com Hello client.example.net [192.0.2.1]",
	"250-SIZE 35882577",
	"250-8BITMIME",
	"250-pipelining",
	"250-AUTH=LOGIN PLAIN",
	"250-STARTTLS",
	"250-ENHANCEDSTATUSCODES",
	"250 SMTPUTF8",
};

static void do_test_ehlo_keywords(void **state)
{
	(void)state;
	assert_int_equal(feed_all(EHLO, 8), EMV_REPLY_DONE);
	assert_true(emv_reply_has_keyword(&P.r, "STARTTLS"));
	assert_true(emv_reply_has_keyword(&P.r, "starttls"));
	assert_true(emv_reply_has_keyword(&P.r, "PIPELINING"));
	assert_true(emv_reply_has_keyword(&P.r, "SMTPUTF8"));
	assert_true(emv_reply_has_keyword(&P.r, "AUTH"));
	assert_true(emv_reply_has_keyword(&P.r, "SIZE"));
	assert_false(emv_reply_has_keyword(&P.r, "CHUNKING"));
	assert_false(emv_reply_has_keyword(&P.r, "START")); /* whole word only */
	assert_false(emv_reply_has_keyword(&P.r, "8BIT"));
	assert_false(emv_reply_has_keyword(&P.r, "mx.example.com")); /* greeting line */
	assert_false(emv_reply_has_keyword(&P.r, "PLAIN"));	     /* not a first word */
	assert_false(emv_reply_has_keyword(&P.r, ""));
	assert_false(emv_reply_has_keyword(&P.r, NULL));
	assert_false(emv_reply_has_keyword(NULL, "SIZE"));
}

static void do_test_ehlo_keyword_param(void **state)
{
	static const char *const big[] = { "250-mx", "250 SIZE 99999999999999999999999999" };
	static const char *const bare[] = { "250-mx", "250-SIZE", "250 SIZE2 7" };
	static const char *const eq[] = { "250-mx", "250 SIZE=1000" };
	(void)state;
	assert_int_equal(feed_all(EHLO, 8), EMV_REPLY_DONE);
	assert_int_equal(emv_reply_keyword_param(&P.r, "SIZE"), 35882577);
	assert_int_equal(emv_reply_keyword_param(&P.r, "size"), 35882577);
	assert_int_equal(emv_reply_keyword_param(&P.r, "STARTTLS"), 0);
	assert_int_equal(emv_reply_keyword_param(&P.r, "AUTH"), 0); /* LOGIN is not a number */
	assert_int_equal(emv_reply_keyword_param(&P.r, "CHUNKING"), -1);
	assert_int_equal(emv_reply_keyword_param(NULL, "SIZE"), -1);

	assert_int_equal(feed_all(big, 2), EMV_REPLY_DONE);
	assert_int_equal(emv_reply_keyword_param(&P.r, "SIZE"), LONG_MAX);
	assert_int_equal(feed_all(bare, 3), EMV_REPLY_DONE);
	assert_int_equal(emv_reply_keyword_param(&P.r, "SIZE"), 0);
	assert_int_equal(emv_reply_keyword_param(&P.r, "SIZE2"), 7);
	assert_int_equal(feed_all(eq, 2), EMV_REPLY_DONE);
	assert_int_equal(emv_reply_keyword_param(&P.r, "SIZE"), 1000);
}

static void do_test_single_line_ehlo_has_no_keywords(void **state)
{
	(void)state;
	assert_int_equal(feed("250 STARTTLS"), EMV_REPLY_DONE);
	assert_false(emv_reply_has_keyword(&P.r, "STARTTLS"));
}

static void do_test_null_line(void **state)
{
	(void)state;
	assert_int_equal(emv_reply_parser_feed(&P, NULL, 5, ERR, sizeof ERR), EMV_REPLY_ERROR);
	assert_non_null(strstr(ERR, "NULL"));
	assert_int_equal(emv_reply_parser_feed(&P, NULL, 0, ERR, sizeof ERR), EMV_REPLY_ERROR);
	assert_int_equal(emv_reply_parser_feed(NULL, "250 ok", 6, ERR, sizeof ERR), EMV_REPLY_ERROR);
}

static void do_test_null_or_tiny_err_buffer(void **state)
{
	char tiny[4] = "zzz";
	(void)state;
	assert_int_equal(emv_reply_parser_feed(&P, "xyz", 3, NULL, 0), EMV_REPLY_ERROR);
	assert_int_equal(emv_reply_parser_feed(&P, "xyz", 3, tiny, sizeof tiny), EMV_REPLY_ERROR);
	assert_int_equal(strlen(tiny), 3);
	assert_int_equal(emv_reply_parser_feed(&P, "xyz", 3, tiny, 0), EMV_REPLY_ERROR);
}

static void do_test_length_not_nul(void **state)
{
	(void)state;
	/* Only len bytes count: the rest of the buffer is not part of the line. */
	assert_int_equal(emv_reply_parser_feed(&P, "250 okGARBAGE", 6, ERR, sizeof ERR), EMV_REPLY_DONE);
	assert_string_equal(P.r.text, "ok");
}

static void do_test_error_midway_keeps_bounds(void **state)
{
	(void)state;
	assert_int_equal(feed("220-banner"), EMV_REPLY_MORE);
	expect_error("22O typo", "no 3-digit code");
	assert_int_equal(P.in_progress, 0);
	assert_true(P.r.text_len < EMV_REPLY_TEXT_MAX);
}

static void do_test_init_defaults(void **state)
{
	emv_reply_parser q;
	(void)state;
	emv_reply_parser_init(&q, 0, 0);
	assert_int_equal(q.max_total, EMV_REPLY_DEFAULT_MAX_TOTAL);
	assert_int_equal(q.max_lines, EMV_REPLY_DEFAULT_MAX_LINES);
	assert_int_equal(q.in_progress, 0);
	emv_reply_parser_init(&q, 100, (size_t)INT_MAX + 10u);
	assert_int_equal(q.max_total, 100);
	assert_int_equal(q.max_lines, INT_MAX);
}

#define T(f) cmocka_unit_test_setup(f, setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(do_test_single_line),
		T(do_test_multi_line),
		T(do_test_in_progress),
		T(do_test_bare_code_last_line),
		T(do_test_empty_text_after_space),
		T(do_test_next_feed_starts_new_reply),
		T(do_test_continuation_mismatch),
		T(do_test_mismatch_on_last_line),
		T(do_test_bad_code_letters),
		T(do_test_too_short),
		T(do_test_first_digit_range),
		T(do_test_bad_separator),
		T(do_test_leading_space_rejected),
		T(do_test_trailing_cr_ignored),
		T(do_test_nul_and_controls_sanitised),
		T(do_test_error_excerpt_sanitised),
		T(do_test_over_total_bytes),
		T(do_test_default_total_limit_message),
		T(do_test_single_line_over_limit),
		T(do_test_exact_limit_ok),
		T(do_test_over_max_lines),
		T(do_test_default_max_lines),
		T(do_test_truncation),
		T(do_test_truncation_exact_fit),
		T(do_test_enhanced_class_mismatch_dropped),
		T(do_test_enhanced_only_first_line),
		T(do_test_enhanced_edge_cases),
		T(do_test_enhanced_parse_direct),
		T(do_test_ehlo_keywords),
		T(do_test_ehlo_keyword_param),
		T(do_test_single_line_ehlo_has_no_keywords),
		T(do_test_null_line),
		T(do_test_null_or_tiny_err_buffer),
		T(do_test_length_not_nul),
		T(do_test_error_midway_keeps_bounds),
		T(do_test_init_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
