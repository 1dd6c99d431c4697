/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_address.c - syntax check and normalisation of one email address.
 *
 * The input is copied once into a bounded buffer and then read through
 * pointers into that copy, so every offset quoted in a detail string is an
 * offset into the caller's input.  The passes, in order:
 *
 *   1. bounds and bytes: length, NUL, UTF-8, controls, Unicode white space
 *      and invisible characters (all before any structure is looked at, so
 *      later passes see only valid, visible UTF-8);
 *   2. framing: trimming, "<...>", display names, source routes;
 *   3. the quoted local part, if any, then a scan of everything outside it
 *      for comments, stray quotes, white space and the one "@";
 *   4. the local part (dot-atom rules, length);
 *   5. the domain, label by label: ASCII labels are checked here, labels
 *      holding Unicode or starting "xn--" go through libidn2 and its output
 *      is checked again with the same host-name rules;
 *   6. the whole-address limit.
 *
 * The first failure found ends the parse; within a pass, problems are
 * reported in a fixed order (see scan_outside()) so the same input always
 * gets the same code.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <idn2.h>
#include "emv_address.h"
#include "emv_result.h"
#include "emv_utf8.h"
#include "emv_util.h"

static const char *const error_names[EMV_ADDR__COUNT] = {
	[EMV_ADDR_OK] = "ok",
	[EMV_ADDR_EMPTY] = "empty",
	[EMV_ADDR_TOO_LONG_INPUT] = "input_too_long",
	[EMV_ADDR_NO_AT] = "no_at",
	[EMV_ADDR_NUL_BYTE] = "nul_byte",
	[EMV_ADDR_INVALID_UTF8] = "invalid_utf8",
	[EMV_ADDR_CONTROL_CHAR] = "control_char",
	[EMV_ADDR_INVISIBLE_CHAR] = "invisible_char",
	[EMV_ADDR_WHITESPACE] = "whitespace",
	[EMV_ADDR_DISPLAY_NAME] = "display_name",
	[EMV_ADDR_ANGLE_BRACKET] = "angle_bracket",
	[EMV_ADDR_SOURCE_ROUTE] = "source_route",
	[EMV_ADDR_COMMENT] = "comment",
	[EMV_ADDR_MULTIPLE_AT] = "multiple_at",
	[EMV_ADDR_LOCAL_EMPTY] = "local_empty",
	[EMV_ADDR_LOCAL_TOO_LONG] = "local_too_long",
	[EMV_ADDR_LOCAL_LEADING_DOT] = "local_leading_dot",
	[EMV_ADDR_LOCAL_TRAILING_DOT] = "local_trailing_dot",
	[EMV_ADDR_LOCAL_CONSECUTIVE_DOTS] = "local_consecutive_dots",
	[EMV_ADDR_LOCAL_INVALID_CHAR] = "local_invalid_char",
	[EMV_ADDR_QUOTE_UNTERMINATED] = "quote_unterminated",
	[EMV_ADDR_QUOTE_MISPLACED] = "quote_misplaced",
	[EMV_ADDR_QUOTED_PAIR_INVALID] = "quoted_pair_invalid",
	[EMV_ADDR_DOMAIN_EMPTY] = "domain_empty",
	[EMV_ADDR_DOMAIN_LITERAL] = "domain_literal",
	[EMV_ADDR_DOMAIN_TOO_LONG] = "domain_too_long",
	[EMV_ADDR_DOMAIN_LEADING_DOT] = "domain_leading_dot",
	[EMV_ADDR_DOMAIN_CONSECUTIVE_DOTS] = "domain_consecutive_dots",
	[EMV_ADDR_DOMAIN_INVALID_CHAR] = "domain_invalid_char",
	[EMV_ADDR_LABEL_TOO_LONG] = "label_too_long",
	[EMV_ADDR_LABEL_HYPHEN] = "label_hyphen",
	[EMV_ADDR_DOMAIN_DOTLESS] = "domain_dotless",
	[EMV_ADDR_TLD_NUMERIC] = "tld_numeric",
	[EMV_ADDR_IDNA_INVALID] = "idna_invalid",
	[EMV_ADDR_ADDRESS_TOO_LONG] = "address_too_long",
};

/* Hint appended where a backslash was probably meant as an escape. */
#define BACKSLASH_HINT " (a backslash escapes only inside quotes, RFC 3696 errata 246)"

/* State of one parse. */
struct parse {
	emv_address *a;
	const char *buf; /* copy of the input; offsets count from here */
	unsigned flags;	 /* flags found so far, stored in a only on success */
};

/* The domain as it is being built, label by label. */
struct domain {
	char out[EMV_HOST_NAME_MAX + 1]; /* A-label form, filled while it fits */
	size_t len;			 /* full length, even past the capacity */
	size_t labels;
	int tld_numeric; /* last label appended is all digits */
	int idn;	 /* some label is an A-label */
};

#define OFF(ps, p) ((size_t)((p) - (ps)->buf))

static int fail(struct parse *ps, emv_addr_error e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Record error e and its detail; no other output survives a failure. */
static int fail(struct parse *ps, emv_addr_error e, const char *fmt, ...)
{
	emv_address *a = ps->a;
	va_list ap;

	a->local[0] = a->domain[0] = a->domain_unicode[0] = a->address[0] = '\0';
	a->flags = 0;
	a->error = e;
	va_start(ap, fmt);
	vsnprintf(a->detail, sizeof a->detail, fmt, ap);
	va_end(ap);
	return EMV_ERR;
}

static void idn2_oom(void)
{
	emv_log(EMV_LOG_ERROR, "address", "libidn2: out of memory");
	abort();
}

/* Printable name of a character for a detail string: 'x', 0x09 or U+00A0. */
static const char *char_name(char *dst, size_t dstlen, uint32_t cp)
{
	if (cp > 0x20 && cp < 0x7f)
		snprintf(dst, dstlen, "'%c'", (char)cp);
	else if (cp < 0x80)
		snprintf(dst, dstlen, "0x%02x", (unsigned)cp);
	else
		snprintf(dst, dstlen, "U+%04X", (unsigned)cp);
	return dst;
}

/* Printable, bounded excerpt of untrusted text for a detail string. */
static const char *excerpt(char *dst, size_t dstlen, const char *p, size_t n)
{
	size_t w = emv_sanitize(dst, dstlen, p, n);
	if (w < n && dstlen > 4)
		memcpy(dst + dstlen - 4, "...", 4);
	return dst;
}

/* White space other than ASCII: no-break and typographic spaces and the
 * line/paragraph separators (Unicode White_Space property). */
static int is_unicode_space(uint32_t c)
{
	return c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
	       c == 0x205f || c == 0x3000;
}

/* Characters that render as nothing: soft hyphen, zero-width space, BOM,
 * bidi marks, embeddings and isolates, word joiner and the invisible
 * operators.  ZWNJ/ZWJ (U+200C/D) are left alone: some scripts need them
 * and IDNA2008 has context rules for them. */
static int is_invisible(uint32_t c)
{
	return c == 0xad || c == 0x61c || c == 0x180e || c == 0x200b || c == 0x200e || c == 0x200f ||
	       (c >= 0x202a && c <= 0x202e) || (c >= 0x2060 && c <= 0x2064) || (c >= 0x2066 && c <= 0x2069) ||
	       c == 0xfeff;
}

/* Pass 1 over the trimmed input: valid UTF-8, nothing invisible, no
 * controls other than tab (tab is white space, judged by position later). */
static int check_chars(struct parse *ps, const char *s, size_t n)
{
	char name[16];
	uint32_t cp;
	size_t i, k;

	for (i = 0; i < n; i += k) {
		k = emv_utf8_decode((const unsigned char *)s + i, n - i, &cp);
		if (k == 0)
			return fail(ps, EMV_ADDR_INVALID_UTF8, "invalid UTF-8 at offset %zu (octet 0x%02x)",
				    OFF(ps, s + i), (unsigned char)s[i]);
		if ((cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp <= 0x9f))
			return fail(ps, EMV_ADDR_CONTROL_CHAR, "control character %s at offset %zu",
				    char_name(name, sizeof name, cp), OFF(ps, s + i));
		if (is_unicode_space(cp))
			return fail(ps, EMV_ADDR_WHITESPACE, "Unicode white space %s at offset %zu",
				    char_name(name, sizeof name, cp), OFF(ps, s + i));
		if (is_invisible(cp))
			return fail(ps, EMV_ADDR_INVISIBLE_CHAR, "invisible character %s at offset %zu",
				    char_name(name, sizeof name, cp), OFF(ps, s + i));
	}
	return EMV_OK;
}

/*
 * Pass 2: "<addr>" is unwrapped; "Name <addr>" and stray brackets at the
 * ends are refused.  Brackets elsewhere are found by scan_outside().
 */
static int unwrap_angle(struct parse *ps, const char **sp, size_t *np)
{
	const char *s = *sp;
	size_t n = *np, i;

	if (s[n - 1] == '>' && s[0] != '<') {
		for (i = n - 1; i > 0; i--)
			if (s[i - 1] == '<')
				return fail(ps, EMV_ADDR_DISPLAY_NAME,
					    "text before '<' at offset %zu looks like a display name; "
					    "give the bare address",
					    OFF(ps, s + i - 1));
		return fail(ps, EMV_ADDR_ANGLE_BRACKET, "'>' at offset %zu closes no '<'", OFF(ps, s + n - 1));
	}
	if (s[0] != '<')
		return EMV_OK;
	if (n < 2 || s[n - 1] != '>')
		return fail(ps, EMV_ADDR_ANGLE_BRACKET, "'<' at offset %zu is not closed by '>' at the end",
			    OFF(ps, s));
	if (n == 2)
		return fail(ps, EMV_ADDR_EMPTY,
			    "\"<>\" is the null reverse-path (RFC 5321 4.5.5), "
			    "not a mailbox");
	*sp = s + 1;
	*np = n - 2;
	return EMV_OK;
}

/* "@relay,@relay:user@domain": a route before the mailbox, so a ':' comes
 * before the last '@' ("@example.com:25" is an empty local part instead). */
static int is_source_route(const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n), *p;

	if (s[0] != '@' || colon == NULL)
		return 0;
	for (p = colon + 1; p < s + n; p++)
		if (*p == '@')
			return 1;
	return 0;
}

/*
 * s[0] is '"': find the closing quote and set *len to the length of the
 * quoted string including both quotes.  RFC 5321 qtextSMTP and
 * quoted-pairSMTP allow printable ASCII and space; RFC 6531 adds UTF-8 to
 * qtext only, so a backslash before a non-ASCII character is an error.
 */
static int parse_quoted(struct parse *ps, const char *s, size_t n, size_t *len)
{
	char name[16];
	uint32_t cp;
	size_t i;

	for (i = 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"') {
			*len = i + 1;
			return EMV_OK;
		}
		if (c == '\\') {
			if (i + 1 >= n)
				break;
			c = (unsigned char)s[i + 1];
			if (c < 0x20 || c > 0x7e) {
				if (emv_utf8_decode((const unsigned char *)s + i + 1, n - i - 1, &cp) == 0)
					cp = c; /* cannot happen after check_chars() */
				return fail(ps, EMV_ADDR_QUOTED_PAIR_INVALID,
					    "backslash at offset %zu escapes %s; only printable ASCII "
					    "may be escaped",
					    OFF(ps, s + i), char_name(name, sizeof name, cp));
			}
			i++;
			continue;
		}
		if (c == '\t')
			return fail(ps, EMV_ADDR_WHITESPACE,
				    "tab at offset %zu inside quotes; a quoted "
				    "local part may hold spaces but not tabs (RFC 5321 4.1.2)",
				    OFF(ps, s + i));
		if (c >= 0x80)
			ps->flags |= EMV_FLAG_SMTPUTF8;
	}
	return fail(ps, EMV_ADDR_QUOTE_UNTERMINATED, "quote at offset %zu is never closed", OFF(ps, s));
}

/*
 * Pass 3: look at everything outside the quoted local part (the whole input
 * when the local part is not quoted) and return the one '@' there.  All
 * problems are collected first and reported in a fixed order, the most
 * telling first, so "a b(c)@x" is a comment, not white space.
 */
static const char *scan_outside(struct parse *ps, const char *s, size_t n)
{
	const char *angle = NULL, *paren = NULL, *quote = NULL, *ws = NULL;
	const char *at = NULL, *at2 = NULL, *p;
	size_t ats = 0;
	int escaped_at = 0;

	for (p = s; p < s + n; p++) {
		switch (*p) {
		case '<':
		case '>':
			if (!angle)
				angle = p;
			break;
		case '(':
		case ')':
			if (!paren)
				paren = p;
			break;
		case '"':
			if (!quote && !at) /* a quote in the domain is just a bad character */
				quote = p;
			break;
		case ' ':
		case '\t':
			if (!ws)
				ws = p;
			break;
		case '@':
			if (ats++ == 0)
				at = p;
			else if (!at2)
				at2 = p;
			if (p > ps->buf && p[-1] == '\\')
				escaped_at = 1;
			break;
		}
	}
	if (angle) {
		fail(ps, EMV_ADDR_ANGLE_BRACKET,
		     "stray '%c' at offset %zu; only the whole address "
		     "may be enclosed in <>",
		     *angle, OFF(ps, angle));
		return NULL;
	}
	if (paren) {
		fail(ps, EMV_ADDR_COMMENT,
		     "comment at offset %zu; comments (RFC 5322 CFWS) are "
		     "obsolete in addresses and not accepted",
		     OFF(ps, paren));
		return NULL;
	}
	if (quote) {
		fail(ps, EMV_ADDR_QUOTE_MISPLACED,
		     "quote at offset %zu; a quoted string must be the "
		     "whole local part",
		     OFF(ps, quote));
		return NULL;
	}
	if (ws) {
		fail(ps, EMV_ADDR_WHITESPACE, "%s at offset %zu outside quotes%s", *ws == '\t' ? "tab" : "space",
		     OFF(ps, ws), ws > ps->buf && ws[-1] == '\\' ? BACKSLASH_HINT : "");
		return NULL;
	}
	if (ats == 0) {
		fail(ps, EMV_ADDR_NO_AT, "no '@' outside quotes");
		return NULL;
	}
	if (ats > 1) {
		fail(ps, EMV_ADDR_MULTIPLE_AT,
		     "%zu '@' outside quotes, the second at offset %zu; "
		     "exactly one is allowed%s",
		     ats, OFF(ps, at2), escaped_at ? BACKSLASH_HINT : "");
		return NULL;
	}
	return at;
}

/* RFC 5322 atext, ASCII part. */
static int is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Pass 4, unquoted local part: RFC 5321 Dot-string with RFC 6531 UTF-8. */
static int check_dot_string(struct parse *ps, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (i == 0)
				return fail(ps, EMV_ADDR_LOCAL_LEADING_DOT, "local part starts with '.' at offset %zu",
					    OFF(ps, s));
			if (s[i - 1] == '.')
				return fail(ps, EMV_ADDR_LOCAL_CONSECUTIVE_DOTS,
					    "two dots in a row at offset %zu in the local part; only a "
					    "quoted local part may have them",
					    OFF(ps, s + i - 1));
			if (i == n - 1)
				return fail(ps, EMV_ADDR_LOCAL_TRAILING_DOT, "local part ends with '.' at offset %zu",
					    OFF(ps, s + i));
		} else if (c >= 0x80) {
			ps->flags |= EMV_FLAG_SMTPUTF8;
		} else if (!is_atext(c)) {
			/* only printable ASCII is left after check_chars()/scan_outside() */
			return fail(ps, EMV_ADDR_LOCAL_INVALID_CHAR,
				    "'%c' at offset %zu is not allowed "
				    "in an unquoted local part%s",
				    c, OFF(ps, s + i), c == '\\' ? BACKSLASH_HINT : "");
		}
	}
	return EMV_OK;
}

/* Length of the label separator at p: '.' or one of the dots UTS #46 maps
 * to it (U+3002, U+FF0E, U+FF61); 0 if there is none. */
static size_t dot_len(const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;

	if (n >= 1 && u[0] == '.')
		return 1;
	if (n >= 3 &&
	    ((u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x82) || (u[0] == 0xef && u[1] == 0xbc && u[2] == 0x8e) ||
	     (u[0] == 0xef && u[1] == 0xbd && u[2] == 0xa1)))
		return 3;
	return 0;
}

static int is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/*
 * Host-name rules for one label (RFC 1123 2.1: letters, digits, hyphen, no
 * hyphen at either end, 1..63 octets).  When the label is still Unicode,
 * octets >= 0x80 are left to libidn2 and the length to the A-label check.
 * mapped: lab is libidn2's output for the label given at offset off, so the
 * detail names the input label, not a position in the output.
 */
static int check_label(struct parse *ps, const char *lab, size_t n, size_t off, int mapped)
{
	char name[16], ex[40];
	int ascii = 1;
	size_t i;

	if (n == 0) /* only from libidn2: an input label of ignorable characters */
		return fail(ps, EMV_ADDR_IDNA_INVALID,
			    "the label at offset %zu maps to nothing "
			    "under UTS #46",
			    off);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)lab[i];
		if (c >= 0x80 && !mapped) {
			ascii = 0;
			continue;
		}
		if (is_ldh(c))
			continue;
		if (mapped)
			return fail(ps, EMV_ADDR_DOMAIN_INVALID_CHAR,
				    "the label at offset %zu maps under "
				    "UTS #46 to '%s', which holds %s; a domain has letters, digits "
				    "and hyphens only",
				    off, excerpt(ex, sizeof ex, lab, n), char_name(name, sizeof name, c));
		return fail(ps, EMV_ADDR_DOMAIN_INVALID_CHAR,
			    "%s at offset %zu is not allowed in a "
			    "domain (letters, digits and hyphens only)",
			    char_name(name, sizeof name, c), off + i);
	}
	if (lab[0] == '-' || lab[n - 1] == '-')
		return fail(ps, EMV_ADDR_LABEL_HYPHEN, "label '%s' at offset %zu %s with a hyphen",
			    excerpt(ex, sizeof ex, lab, n), off, lab[0] == '-' ? "starts" : "ends");
	if (ascii && n > EMV_LABEL_MAX)
		return fail(ps, EMV_ADDR_LABEL_TOO_LONG,
			    "label at offset %zu is %zu octets%s; the "
			    "limit is %d",
			    off, n, mapped ? " as an A-label" : "", EMV_LABEL_MAX);
	return EMV_OK;
}

/* Append a checked ASCII label; the length keeps counting past capacity so
 * that the detail can state the real length. */
static void domain_append(struct domain *dm, const char *lab, size_t n)
{
	size_t sep = dm->len ? 1 : 0, i;

	if (dm->len + sep + n <= EMV_HOST_NAME_MAX) {
		if (sep)
			dm->out[dm->len] = '.';
		memcpy(dm->out + dm->len + sep, lab, n);
		dm->out[dm->len + sep + n] = '\0';
	}
	dm->len += sep + n;
	dm->labels++;
	dm->tld_numeric = 1;
	for (i = 0; i < n; i++)
		if (lab[i] < '0' || lab[i] > '9')
			dm->tld_numeric = 0;
	if (n >= 4 && memcmp(lab, "xn--", 4) == 0)
		dm->idn = 1;
}

/*
 * One label through libidn2: a Unicode label becomes its A-label, an
 * "xn--" label is decoded and checked (it must be a valid IDNA2008 A-label,
 * not just something that looks like one).  UTS #46 mapping may turn a
 * label into something that is not a host-name label at all (U+FF3F maps
 * to '_'), so the output gets the host-name checks once more.
 */
static int domain_idna_label(struct parse *ps, struct domain *dm, const char *lab, size_t off)
{
	uint8_t *alabel = NULL;
	int rc;

	rc = idn2_lookup_u8((const uint8_t *)lab, &alabel, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc == IDN2_MALLOC)
		idn2_oom();
	if (rc == IDN2_TOO_BIG_LABEL || rc == IDN2_PUNYCODE_BIG_OUTPUT)
		return fail(ps, EMV_ADDR_LABEL_TOO_LONG,
			    "label at offset %zu is over %d octets as "
			    "an A-label",
			    off, EMV_LABEL_MAX);
	if (rc != IDN2_OK)
		return fail(ps, EMV_ADDR_IDNA_INVALID, "IDNA2008 rejects the label at offset %zu: %s", off,
			    idn2_strerror(rc));
	rc = check_label(ps, (const char *)alabel, strlen((const char *)alabel), off, 1);
	if (rc == EMV_OK)
		domain_append(dm, (const char *)alabel, strlen((const char *)alabel));
	idn2_free(alabel);
	return rc;
}

/* One label as given, [lab, lab + n), n >= 1. */
static int domain_label(struct parse *ps, struct domain *dm, const char *lab, size_t n)
{
	char tmp[EMV_INPUT_MAX + 1];
	size_t i;
	int ascii = 1;

	if (check_label(ps, lab, n, OFF(ps, lab), 0) != EMV_OK)
		return EMV_ERR;
	for (i = 0; i < n; i++) {
		tmp[i] = lab[i];
		if ((unsigned char)lab[i] >= 0x80)
			ascii = 0;
	}
	tmp[n] = '\0';
	if (ascii) {
		emv_ascii_lower(tmp);
		/* "ab--cd" is a valid host name; only "xn--" claims to be IDNA */
		if (n < 4 || memcmp(tmp, "xn--", 4) != 0) {
			domain_append(dm, tmp, n);
			return EMV_OK;
		}
	}
	return domain_idna_label(ps, dm, tmp, OFF(ps, lab));
}

/* Pass 5: the domain as given, [d, d + n). */
static int parse_domain(struct parse *ps, const char *d, size_t n, struct domain *dm)
{
	const char *end = d + n, *lab, *p, *sep = NULL;
	char ex[40];
	size_t k = 0;

	if (n == 0)
		return fail(ps, EMV_ADDR_DOMAIN_EMPTY, "nothing after '@'");
	if (d[0] == '[')
		return fail(ps, EMV_ADDR_DOMAIN_LITERAL,
			    "%sdomain literal at offset %zu; addresses at "
			    "IP literals are not verifiable, give a domain name",
			    n >= 6 && strncasecmp(d + 1, "IPv6:", 5) == 0 ? "IPv6 " : "", OFF(ps, d));

	/* One trailing dot (the DNS root) is allowed and dropped. */
	if (end[-1] == '.')
		end--;
	else if (n >= 3 && dot_len(end - 3, 3) == 3)
		end -= 3;
	if (end == d)
		return fail(ps, EMV_ADDR_DOMAIN_EMPTY, "the domain at offset %zu is only a dot", OFF(ps, d));

	for (lab = p = d;; sep = p, p += k, lab = p) {
		while (p < end && (k = dot_len(p, (size_t)(end - p))) == 0)
			p++;
		if (p == lab) {
			if (sep == NULL)
				return fail(ps, EMV_ADDR_DOMAIN_LEADING_DOT, "domain starts with a dot at offset %zu",
					    OFF(ps, d));
			return fail(ps, EMV_ADDR_DOMAIN_CONSECUTIVE_DOTS,
				    "two dots in a row at offset %zu in the domain", OFF(ps, sep));
		}
		if (domain_label(ps, dm, lab, (size_t)(p - lab)) != EMV_OK)
			return EMV_ERR;
		if (p == end)
			break;
	}

	if (dm->labels < 2)
		return fail(ps, EMV_ADDR_DOMAIN_DOTLESS,
			    "domain '%s' has a single label; mail "
			    "domains need a dot (dotless domains are not used for mail, RFC 7085)",
			    excerpt(ex, sizeof ex, dm->out, strlen(dm->out)));
	if (dm->tld_numeric)
		return fail(ps, EMV_ADDR_TLD_NUMERIC,
			    "the top-level label is all digits; no such "
			    "top-level domain exists (IP addresses are not verifiable)");
	if (dm->len > EMV_HOST_NAME_MAX)
		return fail(ps, EMV_ADDR_DOMAIN_TOO_LONG,
			    "domain is %zu octets as A-labels; the "
			    "limit is %d",
			    dm->len, EMV_HOST_NAME_MAX);
	return EMV_OK;
}

/* U-label form for display: decode A-labels; the A-label form if that fails. */
static void domain_to_unicode(const char *alabels, char *dst, size_t dstlen)
{
	char *u = NULL;
	int rc = idn2_to_unicode_8z8z(alabels, &u, 0);

	if (rc == IDN2_MALLOC)
		idn2_oom();
	if (rc == IDN2_OK && strlen(u) < dstlen)
		emv_strlcpy(dst, u, dstlen);
	else
		emv_strlcpy(dst, alabels, dstlen);
	idn2_free(u);
}

int emv_address_parse(const char *input, size_t len, emv_address *a)
{
	char buf[EMV_INPUT_MAX + 1];
	struct parse ps = { a, buf, 0 };
	struct domain dm;
	const char *s, *rest, *at;
	size_t n, local_len = 0, total;

	if (a == NULL)
		return EMV_ERR;
	memset(a, 0, sizeof *a);
	if (input == NULL)
		len = 0;
	if (len > EMV_INPUT_MAX)
		return fail(&ps, EMV_ADDR_TOO_LONG_INPUT, "input is %zu octets; the limit is %d", len, EMV_INPUT_MAX);
	if (len > 0 && (s = memchr(input, '\0', len)) != NULL)
		return fail(&ps, EMV_ADDR_NUL_BYTE, "NUL byte at offset %zu", (size_t)(s - input));
	if (len > 0)
		memcpy(buf, input, len);
	buf[len] = '\0';
	s = emv_trim(buf); /* no NUL inside, so the C-string trim sees it all */
	n = strlen(s);
	if (n == 0)
		return fail(&ps, EMV_ADDR_EMPTY, len ? "input is only white space" : "input is empty");

	if (check_chars(&ps, s, n) != EMV_OK || unwrap_angle(&ps, &s, &n) != EMV_OK)
		return EMV_ERR;
	if (is_source_route(s, n))
		return fail(&ps, EMV_ADDR_SOURCE_ROUTE,
			    "source route at offset %zu (obsolete, "
			    "RFC 5321 4.1.2); give the final address only",
			    OFF(&ps, s));

	if (s[0] == '"') {
		if (parse_quoted(&ps, s, n, &local_len) != EMV_OK)
			return EMV_ERR;
		ps.flags |= EMV_FLAG_QUOTED;
	}
	rest = s + local_len;
	if ((at = scan_outside(&ps, rest, n - local_len)) == NULL)
		return EMV_ERR;
	if (local_len == 0) {
		local_len = (size_t)(at - s);
		if (local_len == 0)
			return fail(&ps, EMV_ADDR_LOCAL_EMPTY, "nothing before '@'");
		if (check_dot_string(&ps, s, local_len) != EMV_OK)
			return EMV_ERR;
	} else if (at != rest) {
		return fail(&ps, EMV_ADDR_QUOTE_MISPLACED,
			    "text after the closing quote at offset "
			    "%zu; a quoted string must be the whole local part",
			    OFF(&ps, rest));
	} else if (local_len == 2) {
		return fail(&ps, EMV_ADDR_LOCAL_EMPTY, "the quoted local part \"\" is empty");
	}
	if (local_len > EMV_LOCAL_MAX)
		return fail(&ps, EMV_ADDR_LOCAL_TOO_LONG, "local part is %zu octets; the limit is %d", local_len,
			    EMV_LOCAL_MAX);

	memset(&dm, 0, sizeof dm);
	if (parse_domain(&ps, at + 1, (size_t)(s + n - at - 1), &dm) != EMV_OK)
		return EMV_ERR;

	total = local_len + 1 + dm.len;
	if (total > EMV_ADDRESS_MAX)
		return fail(&ps, EMV_ADDR_ADDRESS_TOO_LONG, "address is %zu octets; the limit is %d", total,
			    EMV_ADDRESS_MAX);

	memcpy(a->local, s, local_len);
	a->local[local_len] = '\0';
	memcpy(a->domain, dm.out, dm.len + 1);
	memcpy(a->address, s, local_len);
	a->address[local_len] = '@';
	memcpy(a->address + local_len + 1, dm.out, dm.len + 1);
	if (dm.idn) {
		ps.flags |= EMV_FLAG_IDN;
		domain_to_unicode(a->domain, a->domain_unicode, sizeof a->domain_unicode);
	} else {
		memcpy(a->domain_unicode, dm.out, dm.len + 1);
	}
	a->flags = ps.flags;
	a->error = EMV_ADDR_OK;
	return EMV_OK;
}

const char *emv_address_error_name(emv_addr_error e)
{
	return (unsigned)e < EMV_ADDR__COUNT ? error_names[e] : "?";
}

int emv_address_error_from_name(const char *name)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < EMV_ADDR__COUNT; i++)
		if (strcmp(error_names[i], name) == 0)
			return i;
	return -1;
}
