/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_address.c - emv_address_parse() against the golden cases in
 * tests/data/addresses.tsv (format in that file's header), plus direct
 * tests of the details, names and edge behaviour of the API.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_address.h"
#include "emv_result.h"
#include "emv_util.h"

#define TSV_PATH EMV_TEST_DATA "/addresses.tsv"
#define FIELD_MAX 4096

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Undo the file's escapes; returns the length, or -1 on a bad escape. */
static long unescape(const char *s, char *out, size_t outcap)
{
	size_t n = 0;

	for (; *s; s++) {
		char c = *s;
		if (n + 1 >= outcap)
			return -1;
		if (c == '\\') {
			switch (*++s) {
			case '\\': c = '\\'; break;
			case 't': c = '\t'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 'x':
				if (hexval(s[1]) < 0 || hexval(s[2]) < 0)
					return -1;
				c = (char)(hexval(s[1]) << 4 | hexval(s[2]));
				s += 2;
				break;
			default: return -1;
			}
		}
		out[n++] = c;
	}
	out[n] = '\0';
	return (long)n;
}

static int flags_from_names(const char *s, unsigned *flags)
{
	char buf[64], *tok, *save = NULL;

	*flags = 0;
	if (strcmp(s, "-") == 0)
		return 0;
	if (emv_strlcpy(buf, s, sizeof buf) != strlen(s))
		return -1;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "smtputf8") == 0)
			*flags |= EMV_FLAG_SMTPUTF8;
		else if (strcmp(tok, "idn") == 0)
			*flags |= EMV_FLAG_IDN;
		else if (strcmp(tok, "quoted") == 0)
			*flags |= EMV_FLAG_QUOTED;
		else
			return -1;
	}
	return 0;
}

/* Does some label of the domain start with "xn--"? */
static int has_alabel(const char *domain)
{
	return strncmp(domain, "xn--", 4) == 0 || strstr(domain, ".xn--") != NULL;
}

/* What every successful parse must satisfy; NULL or the broken promise. */
static const char *ok_invariant(const emv_address *a)
{
	static char why[EMV_ADDRESS_MAX + 64];
	size_t ll = strlen(a->local), dl = strlen(a->domain);
	emv_address again;
	const char *p;

	if (a->error != EMV_ADDR_OK || a->detail[0] != '\0')
		return "error/detail set on success";
	if (ll == 0 || ll > EMV_LOCAL_MAX || dl == 0 || dl > EMV_HOST_NAME_MAX || strlen(a->address) > EMV_ADDRESS_MAX)
		return "a length limit is broken";
	if (strncmp(a->address, a->local, ll) != 0 || a->address[ll] != '@' ||
	    strcmp(a->address + ll + 1, a->domain) != 0)
		return "address is not local@domain";
	for (p = a->domain; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return "domain is not lower-case LDH";
	if (((a->flags & EMV_FLAG_IDN) != 0) != has_alabel(a->domain))
		return "IDN flag disagrees with the domain";
	if (!(a->flags & EMV_FLAG_IDN) && strcmp(a->domain, a->domain_unicode) != 0)
		return "domain_unicode differs for a non-IDN domain";
	if (((a->flags & EMV_FLAG_QUOTED) != 0) != (a->local[0] == '"'))
		return "QUOTED flag disagrees with the local part";
	if (emv_address_parse(a->address, strlen(a->address), &again) != EMV_OK)
		return "the normalised address does not parse again";
	if (strcmp(again.address, a->address) != 0 || again.flags != a->flags) {
		snprintf(why, sizeof why, "normalising is not idempotent (%s)", again.address);
		return why;
	}
	return NULL;
}

static const char *err_invariant(const emv_address *a)
{
	const char *p;

	if (a->detail[0] == '\0')
		return "empty detail";
	if (strlen(a->detail) >= sizeof a->detail - 1)
		return "detail was truncated";
	for (p = a->detail; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return "detail is not printable ASCII";
	if (a->local[0] || a->domain[0] || a->domain_unicode[0] || a->address[0] || a->flags)
		return "outputs left set on error";
	return NULL;
}

/* One golden line; returns 1 if it failed (and says why on stderr). */
static int check_line(int lineno, char *line, int *cases)
{
	static char input[FIELD_MAX], want[FIELD_MAX];
	char *field[5] = { 0 }, printable[96];
	int nf = 0;
	long inlen;
	unsigned want_flags;
	const char *why = NULL;
	emv_address a;
	int rc;

	/* strtok would merge the empty input field into the next one */
	field[nf++] = line;
	for (char *t = line; nf < 5 && (t = strchr(t, '\t')) != NULL; t++) {
		*t = '\0';
		field[nf++] = t + 1;
	}
	if (nf < 3 || (inlen = unescape(field[0], input, sizeof input)) < 0) {
		fprintf(stderr, "addresses.tsv:%d: malformed line\n", lineno);
		return 1;
	}
	(*cases)++;
	rc = emv_address_parse(input, (size_t)inlen, &a);
	emv_sanitize(printable, sizeof printable, input, (size_t)inlen);

	if (strcmp(field[1], "ok") == 0) {
		if (nf != 4 || unescape(field[2], want, sizeof want) < 0 ||
		    flags_from_names(field[3], &want_flags) < 0) {
			fprintf(stderr, "addresses.tsv:%d: malformed ok line\n", lineno);
			return 1;
		}
		if (rc != EMV_OK) {
			fprintf(stderr, "addresses.tsv:%d: [%s]: want ok %s, got %s: %s\n", lineno, printable, field[2],
				emv_address_error_name(a.error), a.detail);
			return 1;
		}
		if (strcmp(a.address, want) != 0 || a.flags != want_flags) {
			fprintf(stderr, "addresses.tsv:%d: [%s]: want %s flags %s (%#x), got %s flags %#x\n", lineno,
				printable, field[2], field[3], want_flags, a.address, a.flags);
			return 1;
		}
		why = ok_invariant(&a);
	} else if (strcmp(field[1], "error") == 0) {
		if (nf != 3 || emv_address_error_from_name(field[2]) < 0) {
			fprintf(stderr, "addresses.tsv:%d: malformed error line or unknown name\n", lineno);
			return 1;
		}
		if (rc == EMV_OK) {
			fprintf(stderr, "addresses.tsv:%d: [%s]: want error %s, got ok %s\n", lineno, printable,
				field[2], a.address);
			return 1;
		}
		if (strcmp(emv_address_error_name(a.error), field[2]) != 0) {
			fprintf(stderr, "addresses.tsv:%d: [%s]: want error %s, got %s: %s\n", lineno, printable,
				field[2], emv_address_error_name(a.error), a.detail);
			return 1;
		}
		why = err_invariant(&a);
	} else {
		fprintf(stderr, "addresses.tsv:%d: expected 'ok' or 'error'\n", lineno);
		return 1;
	}
	if (why) {
		fprintf(stderr, "addresses.tsv:%d: [%s]: %s\n", lineno, printable, why);
		return 1;
	}
	return 0;
}

static void do_test_golden_file(void **state)
{
	FILE *f = fopen(TSV_PATH, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, cases = 0, failures = 0;

	(void)state;
	if (f == NULL)
		fail_msg("cannot open %s", TSV_PATH);
	while ((n = getline(&line, &cap, f)) != -1) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		failures += check_line(lineno, line, &cases);
	}
	free(line);
	fclose(f);
	print_message("addresses.tsv: %d cases checked, %d failed\n", cases, failures);
	assert_true(cases >= 170);
	assert_int_equal(failures, 0);
}

/* Parse a C string and expect error e with every needle in the detail. */
static void expect_detail(const char *input, size_t len, emv_addr_error e, const char *n1, const char *n2)
{
	emv_address a;

	assert_int_equal(emv_address_parse(input, len, &a), EMV_ERR);
	if (a.error != e)
		fail_msg("%.40s...: want %s, got %s (%s)", input, emv_address_error_name(e),
			 emv_address_error_name(a.error), a.detail);
	if (strstr(a.detail, n1) == NULL || (n2 && strstr(a.detail, n2) == NULL))
		fail_msg("detail \"%s\" should mention \"%s\" and \"%s\"", a.detail, n1, n2 ? n2 : "");
}

static void do_test_details_state_limits(void **state)
{
	char buf[1100];

	(void)state;
	memset(buf, 'a', 65);
	strcpy(buf + 65, "@example.com");
	expect_detail(buf, strlen(buf), EMV_ADDR_LOCAL_TOO_LONG, "65 octets", "limit is 64");

	strcpy(buf, "a@");
	memset(buf + 2, 'b', 64);
	strcpy(buf + 66, ".com");
	expect_detail(buf, strlen(buf), EMV_ADDR_LABEL_TOO_LONG, "64 octets", "limit is 63");

	/* 64 + 1 + 190 = 255 */
	memset(buf, 'a', 64);
	buf[64] = '@';
	memset(buf + 65, 'b', 63);
	buf[128] = '.';
	memset(buf + 129, 'c', 63);
	buf[192] = '.';
	memset(buf + 193, 'd', 58);
	strcpy(buf + 251, ".com");
	expect_detail(buf, strlen(buf), EMV_ADDR_ADDRESS_TOO_LONG, "255 octets", "limit is 254");

	strcpy(buf, "a@");
	for (int i = 0; i < 4; i++) {
		memset(buf + 2 + i * 64, 'x', 63);
		buf[2 + i * 64 + 63] = '.';
	}
	strcpy(buf + 2 + 4 * 64, "com"); /* 4 * 64 + 3 = 259 */
	expect_detail(buf, strlen(buf), EMV_ADDR_DOMAIN_TOO_LONG, "259 octets", "limit is 253");

	memset(buf, ' ', 1025);
	expect_detail(buf, 1025, EMV_ADDR_TOO_LONG_INPUT, "1025 octets", "limit is 1024");
}

static void do_test_details_name_the_offset(void **state)
{
	(void)state;
	/* offsets count from the caller's input, before trimming */
	expect_detail("   a b@example.com", 18, EMV_ADDR_WHITESPACE, "offset 4", NULL);
	expect_detail("<a@exa_mple.com>", 16, EMV_ADDR_DOMAIN_INVALID_CHAR, "'_' at offset 6", NULL);
	expect_detail("a\0b@example.com", 15, EMV_ADDR_NUL_BYTE, "offset 1", NULL);
	expect_detail("a\xc3(@example.com", 15, EMV_ADDR_INVALID_UTF8, "offset 1", "0xc3");
	expect_detail("a@ex..com", 9, EMV_ADDR_DOMAIN_CONSECUTIVE_DOTS, "offset 4", NULL);
	expect_detail("\xef\xbb\xbf"
		      "a@example.com",
		      16, EMV_ADDR_INVISIBLE_CHAR, "U+FEFF", NULL);
	expect_detail("Fred\\ Bloggs@example.com", 24, EMV_ADDR_WHITESPACE, "backslash", NULL);
	expect_detail("a@localhost", 11, EMV_ADDR_DOMAIN_DOTLESS, "localhost", "single label");
	expect_detail("a@[192.0.2.1]", 13, EMV_ADDR_DOMAIN_LITERAL, "not verifiable", NULL);
	expect_detail("a@\xf0\x9f\x92\xa9.la", 9, EMV_ADDR_IDNA_INVALID, "disallowed", NULL);
	expect_detail("John <a@example.com>", 20, EMV_ADDR_DISPLAY_NAME, "display name", NULL);
	expect_detail("a(x)@example.com", 16, EMV_ADDR_COMMENT, "obsolete", NULL);
}

static void do_test_input_not_nul_terminated(void **state)
{
	static const char raw[] = { 'a', '@', 'e', 'x', '.', 'o', 'r', 'g', 'X', 'Y' };
	emv_address a;

	(void)state;
	assert_int_equal(emv_address_parse(raw, 8, &a), EMV_OK);
	assert_string_equal(a.address, "a@ex.org");
}

static void do_test_null_arguments(void **state)
{
	emv_address a;

	(void)state;
	assert_int_equal(emv_address_parse("a@b.c", 5, NULL), EMV_ERR);
	assert_int_equal(emv_address_parse(NULL, 10, &a), EMV_ERR);
	assert_int_equal(a.error, EMV_ADDR_EMPTY);
	assert_int_equal(emv_address_parse("", 0, &a), EMV_ERR);
	assert_int_equal(a.error, EMV_ADDR_EMPTY);
}

static void do_test_error_clears_previous_result(void **state)
{
	emv_address a;

	(void)state;
	assert_int_equal(emv_address_parse("a@example.com", 13, &a), EMV_OK);
	assert_int_equal(emv_address_parse("a@", 2, &a), EMV_ERR);
	assert_string_equal(a.address, "");
	assert_string_equal(a.local, "");
	assert_string_equal(a.domain, "");
	assert_int_equal(a.flags, 0);
	assert_int_equal(emv_address_parse("b@example.org", 13, &a), EMV_OK);
	assert_string_equal(a.detail, "");
	assert_int_equal(a.error, EMV_ADDR_OK);
}

static void do_test_fields_of_an_idn_address(void **state)
{
	const char *in = "J\xc3\xb6rg@M\xc3\x9cNCHEN.de.";
	emv_address a;

	(void)state;
	assert_int_equal(emv_address_parse(in, strlen(in), &a), EMV_OK);
	assert_string_equal(a.local, "J\xc3\xb6rg");
	assert_string_equal(a.domain, "xn--mnchen-3ya.de");
	assert_string_equal(a.domain_unicode, "m\xc3\xbcnchen.de");
	assert_string_equal(a.address, "J\xc3\xb6rg@xn--mnchen-3ya.de");
	assert_int_equal(a.flags, EMV_FLAG_SMTPUTF8 | EMV_FLAG_IDN);

	assert_int_equal(emv_address_parse("x@Example.COM", 13, &a), EMV_OK);
	assert_string_equal(a.domain_unicode, "example.com");
	assert_int_equal(a.flags, 0);
}

/*
 * The root dot and single-label domains (issue 15; docs/result-json.md):
 * "user@example.org." names the same DNS name as "user@example.org", so it
 * is normalised to it (same address, same duplicate key, limits counted
 * without the dot); a domain of one label is rejected, with or without the
 * root dot, and so is anything but exactly one root dot.
 */
static void do_test_root_dot_and_dotless(void **state)
{
	emv_address a, b;
	char buf[300];

	(void)state;
	assert_int_equal(emv_address_parse("user@example.org.", 17, &a), EMV_OK);
	assert_int_equal(emv_address_parse("user@example.org", 16, &b), EMV_OK);
	assert_string_equal(a.domain, "example.org");
	assert_string_equal(a.address, b.address);
	assert_int_equal(a.flags, b.flags);
	/* UTS #46 dots count as the root dot too (U+3002 IDEOGRAPHIC FULL STOP) */
	assert_int_equal(emv_address_parse("user@example.org\xe3\x80\x82", 19, &a), EMV_OK);
	assert_string_equal(a.address, "user@example.org");

	/* 64 + 1 + 189 = 254 octets, then the root dot: still within the limit */
	memset(buf, 'a', 64);
	buf[64] = '@';
	memset(buf + 65, 'b', 63);
	buf[128] = '.';
	memset(buf + 129, 'c', 63);
	buf[192] = '.';
	memset(buf + 193, 'd', 57);
	strcpy(buf + 250, ".com.");
	assert_int_equal(strlen(buf), 255);
	assert_int_equal(emv_address_parse(buf, strlen(buf), &a), EMV_OK);
	assert_int_equal(strlen(a.address), 254);

	expect_detail("user@example.org..", 18, EMV_ADDR_DOMAIN_CONSECUTIVE_DOTS, "two dots", NULL);
	expect_detail("user@.", 6, EMV_ADDR_DOMAIN_EMPTY, "only a dot", NULL);
	expect_detail("user@localhost", 14, EMV_ADDR_DOMAIN_DOTLESS, "single label", "localhost");
	expect_detail("user@localhost.", 15, EMV_ADDR_DOMAIN_DOTLESS, "single label", "localhost");
	expect_detail("user@com", 8, EMV_ADDR_DOMAIN_DOTLESS, "single label", "RFC 7085");
	expect_detail("user@com.", 9, EMV_ADDR_DOMAIN_DOTLESS, "single label", NULL);
}

static void do_test_error_names(void **state)
{
	(void)state;
	for (int i = 0; i < EMV_ADDR__COUNT; i++) {
		const char *name = emv_address_error_name((emv_addr_error)i);
		assert_non_null(name);
		assert_true(name[0] >= 'a' && name[0] <= 'z');
		for (const char *p = name; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
				fail_msg("error name \"%s\" is not snake_case", name);
		assert_int_equal(emv_address_error_from_name(name), i); /* also: names unique */
	}
	assert_string_equal(emv_address_error_name(EMV_ADDR_LOCAL_TOO_LONG), "local_too_long");
	assert_string_equal(emv_address_error_name(EMV_ADDR__COUNT), "?");
	assert_string_equal(emv_address_error_name((emv_addr_error)-1), "?");
	assert_int_equal(emv_address_error_from_name("no_such_error"), -1);
	assert_int_equal(emv_address_error_from_name(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_golden_file),
		cmocka_unit_test(do_test_details_state_limits),
		cmocka_unit_test(do_test_details_name_the_offset),
		cmocka_unit_test(do_test_input_not_nul_terminated),
		cmocka_unit_test(do_test_null_arguments),
		cmocka_unit_test(do_test_error_clears_previous_result),
		cmocka_unit_test(do_test_fields_of_an_idn_address),
		cmocka_unit_test(do_test_error_names),
		cmocka_unit_test(do_test_root_dot_and_dotless),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
