/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_providers.c - provider policy file: parsing (comments, values, units,
 * every error naming FILE:LINE), inheritance from [default] and from the
 * built-in defaults, MX suffix matching (label alignment, case, trailing
 * dot, longest suffix), and the shipped data/providers.conf against real
 * MX host names.  Throw-away files go to /tmp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emv_providers.h"
#include "emv_util.h"

static char conf_path[64]; /* path of the last file written by load_text() */

/* Write text to a fresh temporary file, load it, remove the file. */
static emv_providers *load_text(const char *text, char *err, size_t errlen)
{
	emv_providers *p;
	FILE *f;
	int fd;

	strcpy(conf_path, "/tmp/emv-providers-XXXXXX");
	fd = mkstemp(conf_path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	p = emv_providers_load(conf_path, err, errlen);
	unlink(conf_path);
	return p;
}

static emv_providers *load_ok(const char *text)
{
	char err[512];
	emv_providers *p = load_text(text, err, sizeof(err));

	if (!p)
		fail_msg("load failed: %s\n--- file ---\n%s", err, text);
	return p;
}

/*
 * Loading text must fail at `line` with a message that starts with
 * "PATH:LINE: " and contains every string of the NULL-terminated list.
 */
static void expect_error(const char *text, int line, ...)
{
	char err[512], prefix[96];
	const char *want;
	emv_providers *p;
	va_list ap;

	err[0] = '\0';
	p = load_text(text, err, sizeof(err));
	if (p) {
		emv_providers_free(p);
		fail_msg("load succeeded, want an error at line %d\n--- file ---\n%s", line, text);
	}
	snprintf(prefix, sizeof(prefix), "%s:%d: ", conf_path, line);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", err, prefix);
	va_start(ap, line);
	while ((want = va_arg(ap, const char *)) != NULL)
		if (!strstr(err, want))
			fail_msg("error \"%s\" does not mention \"%s\"", err, want);
	va_end(ap);
}

static void expect_match(const emv_providers *p, const char *host, const char *want)
{
	const emv_provider *got = emv_providers_match(p, host);

	if (!got)
		fail_msg("match(%s) returned NULL", host ? host : "(null)");
	if (strcmp(got->name, want) != 0)
		fail_msg("match(%s) = [%s], want [%s]", host ? host : "(null)", got->name, want);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

static void do_test_parse_comments_whitespace(void **state)
{
	emv_providers *p = load_ok("# a comment line\n"
				   "   # an indented comment\n"
				   "\n"
				   "\t\n"
				   "[Default]   # header with a comment\r\n"
				   "  Rcpt_Per_Txn=7\r\n"
				   "rcpt_per_session   =    70   # trailing comment\n"
				   "pipelining = NO\n"
				   "tls = never\n"
				   "\n"
				   "[acme]\n"
				   "mx = .Mail.ACME.example.   mx.acme-cdn.example , *.acme.example # three suffixes\n"
				   "catch_all_probe = off\n"
				   "notes = see ticket#42 # the comment starts at the blank\n");
	const emv_provider *d = emv_providers_get(p, "default");
	const emv_provider *a = emv_providers_get(p, "acme");

	assert_non_null(d);
	assert_non_null(a);
	assert_int_equal(d->rcpt_per_txn, 7);
	assert_int_equal(d->rcpt_per_session, 70);
	assert_int_equal(d->pipelining, 0);
	assert_int_equal(d->tls, EMV_PROVIDER_TLS_NEVER);
	assert_int_equal(a->catch_all_probe, 0);
	assert_string_equal(a->notes, "see ticket#42");
	assert_int_equal(emv_providers_count(p), 1);
	expect_match(p, "in.mail.acme.example", "acme");
	expect_match(p, "mx.acme-cdn.example", "acme");
	expect_match(p, "x.acme.example", "acme");
	emv_providers_free(p);
}

static void do_test_parse_all_keys(void **state)
{
	emv_providers *p = load_ok("[big]\n"
				   "mx = big.example\n"
				   "pipelining = yes\n"
				   "rcpt_per_txn = 30\n"
				   "rcpt_per_session = 300\n"
				   "sessions_per_mx = 4\n"
				   "sessions_per_ip = 6\n"
				   "rcpt_per_minute = 0\n"
				   "rcpt_per_hour = 5000\n"
				   "rcpt_per_day = 1000000000\n"
				   "catch_all_probe = true\n"
				   "accepts_all = false\n"
				   "connect_timeout = 12\n"
				   "reply_timeout = 45s\n"
				   "greylist_wait = 2m\n"
				   "tls = Opportunistic\n"
				   "budget_scope = provider\n"
				   "notes = hello\n");
	const emv_provider *b = emv_providers_get(p, "BIG");

	assert_non_null(b);
	assert_string_equal(b->name, "big");
	assert_int_equal(b->pipelining, 1);
	assert_int_equal(b->rcpt_per_txn, 30);
	assert_int_equal(b->rcpt_per_session, 300);
	assert_int_equal(b->sessions_per_mx, 4);
	assert_int_equal(b->sessions_per_ip, 6);
	assert_int_equal(b->rcpt_per_minute, 0);
	assert_int_equal(b->rcpt_per_hour, 5000);
	assert_int_equal(b->rcpt_per_day, 1000000000);
	assert_int_equal(b->catch_all_probe, 1);
	assert_int_equal(b->accepts_all, 0);
	assert_int_equal(b->connect_timeout_ms, 12000);
	assert_int_equal(b->reply_timeout_ms, 45000);
	assert_int_equal(b->greylist_wait_ms, 120000);
	assert_int_equal(b->tls, EMV_PROVIDER_TLS_OPPORTUNISTIC);
	assert_int_equal(b->budget_scope, EMV_PROVIDER_SCOPE_PROVIDER);
	assert_string_equal(b->notes, "hello");
	emv_providers_free(p);
}

static void do_test_time_units(void **state)
{
	emv_providers *p = load_ok("[default]\nconnect_timeout = 1500ms\nreply_timeout = 600\n"
				   "greylist_wait = 1h\n");
	const emv_provider *d = emv_providers_get(p, "default");

	assert_int_equal(d->connect_timeout_ms, 1500);
	assert_int_equal(d->reply_timeout_ms, 600000);
	assert_int_equal(d->greylist_wait_ms, 3600000);
	emv_providers_free(p);

	expect_error("[default]\nconnect_timeout = 999ms\n", 2, "connect_timeout", "999ms", NULL);
	expect_error("[default]\nreply_timeout = 601\n", 2, "reply_timeout", NULL);
	expect_error("[default]\nreply_timeout = 10 s\n", 2, "reply_timeout", NULL);
	expect_error("[default]\ngreylist_wait = 2d\n", 2, "greylist_wait", "'2d'", NULL);
	expect_error("[default]\ngreylist_wait = 25h\n", 2, "greylist_wait", NULL);
	expect_error("[default]\nconnect_timeout = 99999999999999999999\n", 2, "connect_timeout", NULL);
}

static void do_test_unknown_key(void **state)
{
	expect_error("# header\n[default]\nrcpt_per_txn = 5\nrcpt_per_tnx = 5\n", 4, "unknown key 'rcpt_per_tnx'",
		     "[default]", NULL);
	expect_error("[acme]\nmx = acme.example\nmax_sessions = 2\n", 3, "unknown key 'max_sessions'", "[acme]", NULL);
}

static void do_test_bad_values(void **state)
{
	static const struct {
		const char *line;
		const char *key;
		const char *value;
	} cases[] = {
		{ "rcpt_per_txn = lots", "rcpt_per_txn", "'lots'" },
		{ "rcpt_per_txn = 0", "rcpt_per_txn", "'0'" },
		{ "rcpt_per_txn = 1001", "rcpt_per_txn", "'1001'" },
		{ "rcpt_per_txn = -5", "rcpt_per_txn", "'-5'" },
		{ "rcpt_per_txn = +5", "rcpt_per_txn", "'+5'" },
		{ "rcpt_per_txn = 5.0", "rcpt_per_txn", "'5.0'" },
		{ "rcpt_per_txn = 0x10", "rcpt_per_txn", "'0x10'" },
		{ "rcpt_per_txn = 1 2", "rcpt_per_txn", "'1 2'" },
		{ "sessions_per_mx = 0", "sessions_per_mx", "'0'" },
		{ "rcpt_per_day = 99999999999999999999999", "rcpt_per_day", "99999" },
		{ "rcpt_per_minute = -1", "rcpt_per_minute", "'-1'" },
		{ "pipelining = maybe", "pipelining", "'maybe'" },
		{ "accepts_all = 1", "accepts_all", "'1'" },
		{ "tls = required", "tls", "'required'" },
		{ "budget_scope = ip", "budget_scope", "'ip'" },
		{ "rcpt_per_hour =", "rcpt_per_hour", "empty value" },
	};
	char text[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[default]\n# comment\n%s\n", cases[i].line);
		expect_error(text, 3, cases[i].key, cases[i].value, NULL);
	}
	/* the message says what was expected */
	expect_error("[default]\nrcpt_per_txn = lots\n", 2, "recipients per transaction", "1..1000", NULL);
}

static void do_test_duplicate_section(void **state)
{
	expect_error("[a]\nmx = a.example\n[b]\nmx = b.example\n\n[a]\nmx = c.example\n", 6, "duplicate section [a]",
		     "first at line 1", NULL);
	expect_error("[default]\nrcpt_per_txn = 5\n[A]\nmx = a.example\n[DEFAULT]\n", 5, "duplicate section [default]",
		     "first at line 1", NULL);
	/* section names are case-insensitive */
	expect_error("[Acme]\nmx = a.example\n[acme]\n", 3, "duplicate section [acme]", NULL);
}

static void do_test_duplicate_key(void **state)
{
	expect_error("[default]\nrcpt_per_txn = 5\nrcpt_per_session = 50\nrcpt_per_txn = 6\n", 4,
		     "rcpt_per_txn given twice", "first at line 2", NULL);
	/* ...but the same key in different sections is fine, and mx may repeat */
	emv_providers *p = load_ok("[default]\nrcpt_per_txn = 5\n[a]\nrcpt_per_txn = 6\n"
				   "mx = a.example\nmx = b.example c.example\n");
	expect_match(p, "mx.c.example", "a");
	expect_match(p, "a.example", "a");
	emv_providers_free(p);
}

static void do_test_structure_errors(void **state)
{
	char longline[EMV_PROVIDERS_LINE_MAX + 32];

	expect_error("# no section yet\nrcpt_per_txn = 5\n", 2, "outside any section", NULL);
	expect_error("[default\n", 1, "malformed section header", NULL);
	expect_error("[default]\n[]\n", 2, "section name", NULL);
	expect_error("[goo gle]\n", 1, "section name 'goo gle'", NULL);
	expect_error("[name-that-is-far-too-long-for-the-buffer]\n", 1, "section name", NULL);
	expect_error("[default]\njust some words\n", 2, "expected 'key = value'", NULL);

	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "[default]\nnotes = ", 18);
	longline[sizeof(longline) - 2] = '\n';
	longline[sizeof(longline) - 1] = '\0';
	expect_error(longline, 2, "line longer than", NULL);
}

static void do_test_missing_default_is_builtin(void **state)
{
	emv_providers *p = load_ok("[acme]\nmx = acme.example\nrcpt_per_txn = 3\n");
	const emv_provider *d = emv_providers_get(p, "default");
	const emv_provider *a = emv_providers_get(p, "acme");
	emv_provider want;

	emv_provider_defaults(&want);
	assert_string_equal(want.name, "default");
	assert_non_null(d);
	assert_memory_equal(d, &want, sizeof(want));
	/* unset keys come from the built-ins */
	assert_int_equal(a->rcpt_per_txn, 3);
	assert_int_equal(a->rcpt_per_session, want.rcpt_per_session);
	assert_int_equal(a->reply_timeout_ms, want.reply_timeout_ms);
	assert_int_equal(a->budget_scope, want.budget_scope);
	/* an unknown host gets the built-in default */
	assert_ptr_equal(emv_providers_match(p, "mx.unknown.example"), d);

	/* an empty file is valid: nothing but the default */
	emv_providers_free(p);
	p = load_ok("# nothing here\n\n");
	assert_int_equal(emv_providers_count(p), 0);
	assert_memory_equal(emv_providers_match(p, "aspmx.l.google.com"), &want, sizeof(want));
	emv_providers_free(p);
}

static void do_test_inheritance(void **state)
{
	/* [default] comes after the provider that inherits it */
	emv_providers *p = load_ok("[acme]\n"
				   "mx = acme.example\n"
				   "rcpt_per_minute = 99\n"
				   "notes = acme only\n"
				   "[default]\n"
				   "rcpt_per_minute = 7\n"
				   "rcpt_per_hour = 70\n"
				   "pipelining = no\n"
				   "notes = default only\n"
				   "[other]\n"
				   "mx = other.example\n");
	const emv_provider *a = emv_providers_get(p, "acme");
	const emv_provider *o = emv_providers_get(p, "other");
	const emv_provider *d = emv_providers_get(p, "default");
	emv_provider builtin;

	emv_provider_defaults(&builtin);
	assert_int_equal(a->rcpt_per_minute, 99);		 /* own */
	assert_int_equal(a->rcpt_per_hour, 70);			 /* from [default] */
	assert_int_equal(a->pipelining, 0);			 /* from [default] */
	assert_int_equal(a->rcpt_per_day, builtin.rcpt_per_day); /* from the built-ins */
	assert_string_equal(a->notes, "acme only");
	assert_int_equal(o->rcpt_per_minute, 7);
	assert_string_equal(o->notes, ""); /* notes are not inherited */
	assert_string_equal(d->notes, "default only");
	assert_string_equal(d->name, "default");
	emv_providers_free(p);
}

static void do_test_mx_rules(void **state)
{
	expect_error("[default]\nmx = example.com\n", 2, "[default] takes no mx", NULL);
	expect_error("[a]\nrcpt_per_txn = 5\n\n[b]\nmx = b.example\n", 1, "[a] lists no mx", NULL);
	expect_error("[a]\nmx = ,, ,\n", 2, "mx with no suffixes", NULL);
	expect_error("[a]\nmx = shared.example\n[b]\nmx = x.example .Shared.Example.\n", 4, "'shared.example'", "[b]",
		     "already listed in [a] at line 2", NULL);
	expect_error("[a]\nmx = a.example a.example\n", 2, "already listed in [a]", NULL);
}

static void do_test_bad_suffixes(void **state)
{
	static const char *const bad[] = {
		"com",	      ".com",	      "*.google.*", "goo_gle.com", "a..b.com",	 "-a.example",
		"a-.example", "a.-b.example", "*",	    ".",	   "g*ogle.com", "xn--bcher-kva.ch/x",
	};
	char text[512];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[a]\nmx = ok.example %s\n", bad[i]);
		expect_error(text, 2, "bad mx suffix", "[a]", NULL);
	}
	/* a 64-character label, and a name over 253 characters */
	snprintf(text, sizeof(text), "[a]\nmx = %s.example\n",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	expect_error(text, 2, "longer than 63", NULL);
	strcpy(text, "[a]\nmx = ");
	for (i = 0; i < 26; i++)
		strcat(text, "abcdefghi.");
	strcat(text, "example\n");
	expect_error(text, 2, "longer than 253", NULL);
	/* punycode labels are fine */
	emv_providers_free(load_ok("[a]\nmx = mx.xn--bcher-kva.ch\n"));
}

static void do_test_accepts_all_forces_probe_off(void **state)
{
	emv_providers *p = load_ok("[a]\nmx = a.example\naccepts_all = yes\ncatch_all_probe = yes\n"
				   "[b]\nmx = b.example\naccepts_all = yes\n");

	assert_int_equal(emv_providers_get(p, "a")->accepts_all, 1);
	assert_int_equal(emv_providers_get(p, "a")->catch_all_probe, 0);
	assert_int_equal(emv_providers_get(p, "b")->catch_all_probe, 0);
	assert_int_equal(emv_providers_get(p, "default")->catch_all_probe, 1);
	emv_providers_free(p);
}

static void do_test_txn_exceeds_session(void **state)
{
	/* checked after inheritance, reported at the section header */
	expect_error("[default]\nrcpt_per_session = 10\nrcpt_per_txn = 5\n\n[a]\nmx = a.example\n"
		     "rcpt_per_txn = 11\n",
		     5, "[a]", "rcpt_per_txn (11) exceeds rcpt_per_session (10)", NULL);
	expect_error("[default]\nrcpt_per_txn = 60\n", 1, "[default]", "exceeds", NULL);
}

static void do_test_notes(void **state)
{
	char text[400];
	emv_providers *p = load_ok("[a]\nmx = a.example\nnotes = tabs\tand \x01 ctrl\n");

	assert_string_equal(emv_providers_get(p, "a")->notes, "tabs?and ? ctrl");
	emv_providers_free(p);

	snprintf(text, sizeof(text), "[default]\nnotes = %0300d\n", 0);
	expect_error(text, 2, "notes longer than 255", NULL);
}

/* verdict_note: free text like notes, sanitised, not inherited (issue 15). */
static void do_test_verdict_note(void **state)
{
	char text[400];
	emv_providers *p = load_ok("[default]\nverdict_note = everyone\n"
				   "[a]\nmx = a.example\nverdict_note = RCPT proves little here\n"
				   "[b]\nmx = b.example\n");

	assert_string_equal(emv_providers_get(p, "a")->verdict_note, "RCPT proves little here");
	assert_string_equal(emv_providers_get(p, "b")->verdict_note, "");
	assert_string_equal(emv_providers_get(p, "default")->verdict_note, "everyone");
	assert_string_equal(emv_providers_get(p, "a")->notes, "");
	emv_providers_free(p);

	snprintf(text, sizeof(text), "[default]\nverdict_note = %0300d\n", 0);
	expect_error(text, 2, "verdict_note longer than 255", NULL);
}

static void do_test_load_io_errors(void **state)
{
	char err[256];

	assert_null(emv_providers_load("/nonexistent/dir/providers.conf", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/dir/providers.conf: No such file or directory");
	/* no error buffer, or a zero-sized one: still just NULL */
	assert_null(emv_providers_load("/nonexistent/dir/providers.conf", NULL, 0));
	err[0] = 'x';
	assert_null(emv_providers_load("/nonexistent/dir/providers.conf", err, 0));
	assert_int_equal(err[0], 'x');
	assert_null(emv_providers_load(NULL, err, sizeof(err)));
	/* an error message is truncated to the buffer, not overrun */
	char small[12];
	assert_null(load_text("[default]\nbogus = 1\n", small, sizeof(small)));
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

/* ------------------------------------------------------------------ */
/* Matching                                                            */

static const char *const match_conf = "[google]\nmx = .google.com .googlemail.com\n"
				      "[m365]\nmx = .protection.outlook.com\n"
				      "[consumer]\nmx = .olc.protection.outlook.com\n"
				      "[ses]\nmx = inbound-smtp.us-east-1.amazonaws.com\n";

static void do_test_match_label_alignment(void **state)
{
	emv_providers *p = load_ok(match_conf);

	expect_match(p, "aspmx.l.google.com", "google");
	expect_match(p, "google.com", "google"); /* the suffix itself */
	expect_match(p, "a.b.c.d.e.google.com", "google");
	expect_match(p, "evilgoogle.com", "default"); /* not on a label boundary */
	expect_match(p, "evil-google.com", "default");
	expect_match(p, "google.com.evil.example", "default"); /* suffix, not substring */
	expect_match(p, "google.co", "default");
	expect_match(p, "oogle.com", "default");
	expect_match(p, "com", "default");
	expect_match(p, "aspmx2.googlemail.com", "google");
	expect_match(p, "notgooglemail.com", "default");
	/* exact-host suffixes claim that host and names under it only */
	expect_match(p, "inbound-smtp.us-east-1.amazonaws.com", "ses");
	expect_match(p, "ec2-1-2-3-4.compute-1.amazonaws.com", "default");
	expect_match(p, "us-east-1.amazonaws.com", "default");
	emv_providers_free(p);
}

static void do_test_match_case_and_dots(void **state)
{
	emv_providers *p = load_ok(match_conf);
	char host[300];
	size_t i;

	expect_match(p, "ASPMX.L.Google.COM", "google");
	expect_match(p, "aspmx.l.google.com.", "google"); /* the root dot */
	expect_match(p, "GOOGLE.COM.", "google");
	expect_match(p, "aspmx.l.google.com..", "default"); /* an empty label */
	expect_match(p, "aspmx..google.com", "default");
	expect_match(p, ".google.com", "default");
	expect_match(p, ".", "default");
	expect_match(p, "", "default");
	expect_match(p, NULL, "default");
	expect_match(p, "aspmx.l.google.com\n", "default"); /* junk is simply not a match */

	/* 253 characters is the longest name; one more is refused */
	host[0] = '\0';
	for (i = 0; i < 24; i++)
		strcat(host, "abcdefghi."); /* 240 */
	strcat(host, "a.google.com");	    /* + 12 = 252 */
	assert_int_equal(strlen(host), 252);
	expect_match(p, host, "google");
	memmove(host + 1, host, strlen(host) + 1);
	host[0] = 'x'; /* 253 */
	expect_match(p, host, "google");
	strcat(host, "."); /* 253 + root dot */
	expect_match(p, host, "google");
	memmove(host + 1, host, strlen(host) + 1);
	host[0] = 'y'; /* 254 + root dot */
	expect_match(p, host, "default");
	emv_providers_free(p);
}

static void do_test_match_longest_suffix(void **state)
{
	emv_providers *p = load_ok(match_conf);

	expect_match(p, "hotmail-com.olc.protection.outlook.com", "consumer");
	expect_match(p, "olc.protection.outlook.com", "consumer");
	expect_match(p, "example-com.mail.protection.outlook.com", "m365");
	expect_match(p, "protection.outlook.com", "m365");
	expect_match(p, "xolc.protection.outlook.com", "m365");
	expect_match(p, "outlook.com", "default");
	emv_providers_free(p);

	/* the order of the sections does not matter */
	p = load_ok("[consumer]\nmx = olc.protection.outlook.com\n"
		    "[m365]\nmx = protection.outlook.com\n"
		    "[deep]\nmx = a.b.olc.protection.outlook.com\n");
	expect_match(p, "x.olc.protection.outlook.com", "consumer");
	expect_match(p, "x.protection.outlook.com", "m365");
	expect_match(p, "x.a.b.olc.protection.outlook.com", "deep");
	expect_match(p, "b.olc.protection.outlook.com", "consumer");
	emv_providers_free(p);
}

static void do_test_get_count_at(void **state)
{
	emv_providers *p = load_ok(match_conf);
	const emv_provider *d = emv_providers_get(p, "default");

	assert_int_equal(emv_providers_count(p), 4);
	assert_string_equal(emv_providers_at(p, 0)->name, "google");
	assert_string_equal(emv_providers_at(p, 1)->name, "m365");
	assert_string_equal(emv_providers_at(p, 3)->name, "ses");
	assert_null(emv_providers_at(p, 4));
	assert_ptr_equal(emv_providers_get(p, "GOOGLE"), emv_providers_at(p, 0));
	assert_null(emv_providers_get(p, "yahoo"));
	assert_null(emv_providers_get(p, NULL));
	assert_non_null(d);
	assert_ptr_equal(emv_providers_match(p, "unknown.example"), d);
	emv_providers_free(p);
}

static void do_test_null_handle(void **state)
{
	emv_provider want;
	const emv_provider *got = emv_providers_match(NULL, "aspmx.l.google.com");

	emv_provider_defaults(&want);
	assert_non_null(got);
	assert_memory_equal(got, &want, sizeof(want));
	assert_null(emv_providers_get(NULL, "default"));
	assert_int_equal(emv_providers_count(NULL), 0);
	assert_null(emv_providers_at(NULL, 0));
	emv_providers_free(NULL);
}

static void do_test_many_suffixes(void **state)
{
	size_t cap = 400000, len = 0, i;
	char *text = malloc(cap);
	char host[64], name[32];
	emv_providers *p;
	uint64_t t0;

	assert_non_null(text);
	/* 200 providers x 50 suffixes: the table grows many times */
	for (i = 0; i < 10000; i++) {
		if (i % 50 == 0)
			len += (size_t)snprintf(text + len, cap - len, "[p%zu]\n", i / 50);
		len += (size_t)snprintf(text + len, cap - len, "mx = s%zu.example.net\n", i);
		assert_true(len < cap);
	}
	p = load_ok(text);
	free(text);
	assert_int_equal(emv_providers_count(p), 200);
	t0 = emv_now_us();
	for (i = 0; i < 10000; i++) {
		snprintf(host, sizeof(host), "mx1.eu.S%zu.example.net.", i);
		snprintf(name, sizeof(name), "p%zu", i / 50);
		expect_match(p, host, name);
		snprintf(host, sizeof(host), "mx1.eu.t%zu.example.net", i);
		expect_match(p, host, "default");
	}
	printf("20000 matches against 10000 suffixes: %llu us\n", (unsigned long long)(emv_now_us() - t0));
	emv_providers_free(p);
}

/* ------------------------------------------------------------------ */
/* The shipped data/providers.conf                                     */

static emv_providers *shipped;

static int group_setup(void **state)
{
	char err[512];

	shipped = emv_providers_load_default(err, sizeof(err));
	if (!shipped) {
		fprintf(stderr, "loading %s/providers.conf failed: %s\n", EMV_SOURCE_DATA_DIR, err);
		return -1;
	}
	printf("providers.conf: %zu providers\n", emv_providers_count(shipped));
	return 0;
}

static int group_teardown(void **state)
{
	emv_providers_free(shipped);
	shipped = NULL;
	return 0;
}

static void do_test_shipped_default_is_builtin(void **state)
{
	emv_provider want;

	emv_provider_defaults(&want);
	/* the file says its [default] repeats the built-ins: keep them in step */
	assert_memory_equal(emv_providers_get(shipped, "default"), &want, sizeof(want));
	assert_true(emv_providers_count(shipped) >= 20);
}

/* Issue 15: what SMTP proves at the big consumer platforms.  The catch-all
 * probe is off where the answer is known (Yahoo/AOL accept everything,
 * Outlook.com has no catch-all) and stays on for Microsoft 365 tenants,
 * some of which accept every recipient; each says so in its verdict note. */
static void do_test_shipped_smtp_proves_little(void **state)
{
	const emv_provider *olc = emv_providers_match(shipped, "hotmail-com.olc.protection.outlook.com");
	const emv_provider *m365 = emv_providers_match(shipped, "contoso-com.mail.protection.outlook.com");
	const emv_provider *yahoo = emv_providers_match(shipped, "mta6.am0.yahoodns.net");

	assert_string_equal(olc->name, "outlook");
	assert_int_equal(olc->catch_all_probe, 0);
	assert_non_null(strstr(olc->verdict_note, "4.4.4"));
	assert_non_null(strstr(olc->verdict_note, "4.5.3"));
	assert_string_equal(m365->name, "microsoft365");
	assert_int_equal(m365->catch_all_probe, 1);
	assert_int_equal(m365->accepts_all, 0);
	assert_non_null(strstr(m365->verdict_note, "catch-all probe"));
	assert_string_equal(yahoo->name, "yahoo");
	assert_int_equal(yahoo->accepts_all, 1);
	assert_int_equal(yahoo->catch_all_probe, 0);
	assert_non_null(strstr(yahoo->verdict_note, "after DATA"));
}

static void do_test_shipped_real_mx(void **state)
{
	static const struct {
		const char *host, *provider;
	} cases[] = {
		{ "aspmx.l.google.com", "google" },
		{ "alt1.aspmx.l.google.com", "google" },
		{ "ALT4.ASPMX.L.GOOGLE.COM.", "google" },
		{ "smtp.google.com", "google" },
		{ "gmail-smtp-in.l.google.com", "google" },
		{ "aspmx2.googlemail.com", "google" },
		{ "example-com.mail.protection.outlook.com", "microsoft365" },
		{ "contoso-com.mail.eo.outlook.com", "microsoft365" },
		{ "hotmail-com.olc.protection.outlook.com", "outlook" },
		{ "outlook-com.olc.protection.outlook.com", "outlook" },
		{ "mta6.am0.yahoodns.net", "yahoo" },
		{ "mta5.am0.yahoodns.net", "yahoo" },
		{ "mx-aol.mail.gm0.yahoodns.net", "yahoo" },
		{ "mx01.mail.icloud.com", "icloud" },
		{ "mx02.mail.icloud.com.", "icloud" },
		{ "mx0a-001b2d01.pphosted.com", "proofpoint" },
		{ "mx1-us1.ppe-hosted.com", "proofpoint" },
		{ "eu-smtp-inbound-1.mimecast.com", "mimecast" },
		{ "za-smtp-inbound-1.mimecast.co.za", "mimecast" },
		{ "d123456a.ess.barracudanetworks.com", "barracuda" },
		{ "mx1.hc1234-56.iphmx.com", "cisco" },
		{ "mx.zoho.com", "zoho" },
		{ "mx2.zoho.eu", "zoho" },
		{ "mx.yandex.net", "yandex" },
		{ "mxs.mail.ru", "mailru" },
		{ "mx00.gmx.net", "gmx_webde" },
		{ "mx-ha03.web.de", "gmx_webde" },
		{ "mx00.ionos.de", "ionos" },
		{ "mx01.kundenserver.de", "ionos" },
		{ "in1-smtp.messagingengine.com", "fastmail" },
		{ "mail.protonmail.ch", "proton" },
		{ "mailsec.protonmail.ch", "proton" },
		{ "mx1.comcast.net", "comcast" },
		{ "mx1.mail.ovh.net", "ovh" },
		{ "spool.mail.gandi.net", "gandi" },
		{ "mx1.privateemail.com", "privateemail" },
		{ "mx1.emailsrvr.com", "rackspace" },
		{ "smtp.secureserver.net", "godaddy" },
		{ "inbound-smtp.us-east-1.amazonaws.com", "amazon_ses" },
		{ "mail.tutanota.de", "tutanota" },
		/* not mailbox hosts, or not a provider at all */
		{ "mxa.mailgun.org", "default" },
		{ "mx.sendgrid.net", "default" },
		{ "evil-google.com", "default" },
		{ "aspmx.l.google.com.evil.example", "default" },
		{ "ec2-3-4-5-6.compute-1.amazonaws.com", "default" },
		{ "vps-1234.vps.ovh.net", "default" },
		{ "hotmail.com.example", "default" },
		{ "mail.example.org", "default" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_match(shipped, cases[i].host, cases[i].provider);
}

static void do_test_shipped_policies(void **state)
{
	const emv_provider *y = emv_providers_get(shipped, "yahoo");
	const emv_provider *o = emv_providers_get(shipped, "outlook");
	const emv_provider *g = emv_providers_get(shipped, "google");
	const emv_provider *c = emv_providers_get(shipped, "cisco");
	const emv_provider *m = emv_providers_get(shipped, "mimecast");
	size_t i, j, n = emv_providers_count(shipped);

	assert_non_null(y);
	assert_non_null(o);
	assert_non_null(g);
	assert_non_null(c);
	assert_non_null(m);
	/* Yahoo says 250 to everything: accepted means unknown, no probe */
	assert_int_equal(y->accepts_all, 1);
	assert_int_equal(y->catch_all_probe, 0);
	/* consumer-only platforms get no catch-all probe; Workspace needs one */
	assert_int_equal(o->catch_all_probe, 0);
	assert_int_equal(g->catch_all_probe, 1);
	assert_int_equal(g->accepts_all, 0);
	assert_int_equal(g->budget_scope, EMV_PROVIDER_SCOPE_PROVIDER);
	assert_true(g->rcpt_per_day <= 5000);
	/* under Cisco's default harvest threshold (25 invalid recipients an hour) */
	assert_true(c->rcpt_per_hour > 0 && c->rcpt_per_hour < 25);
	assert_int_equal(c->budget_scope, EMV_PROVIDER_SCOPE_MX);
	/* wait out Mimecast's ~60 s greylisting */
	assert_true(m->greylist_wait_ms > 60000);

	for (i = 0; i < n; i++) {
		const emv_provider *p = emv_providers_at(shipped, i);

		assert_non_null(p);
		if (p->rcpt_per_txn < 1 || p->rcpt_per_txn > p->rcpt_per_session)
			fail_msg("[%s] rcpt_per_txn %d, rcpt_per_session %d", p->name, p->rcpt_per_txn,
				 p->rcpt_per_session);
		/* every shipped budget is finite, and they nest */
		if (p->rcpt_per_minute <= 0 || p->rcpt_per_hour <= 0 || p->rcpt_per_day <= 0)
			fail_msg("[%s] has an unlimited RCPT budget", p->name);
		if (p->rcpt_per_minute > p->rcpt_per_hour || p->rcpt_per_hour > p->rcpt_per_day)
			fail_msg("[%s] budgets do not nest: %d/min %d/h %d/day", p->name, p->rcpt_per_minute,
				 p->rcpt_per_hour, p->rcpt_per_day);
		if (p->reply_timeout_ms < 10000 || p->connect_timeout_ms < 5000)
			fail_msg("[%s] timeouts too short", p->name);
		if (p->tls != EMV_PROVIDER_TLS_OPPORTUNISTIC)
			fail_msg("[%s] should use opportunistic TLS", p->name);
		if (p->accepts_all && p->catch_all_probe)
			fail_msg("[%s] accepts_all with a catch-all probe", p->name);
		for (j = 0; j < i; j++)
			assert_string_not_equal(p->name, emv_providers_at(shipped, j)->name);
	}
}

int main(void)
{
	const struct CMUnitTest parsing[] = {
		cmocka_unit_test(do_test_parse_comments_whitespace),
		cmocka_unit_test(do_test_parse_all_keys),
		cmocka_unit_test(do_test_time_units),
		cmocka_unit_test(do_test_unknown_key),
		cmocka_unit_test(do_test_bad_values),
		cmocka_unit_test(do_test_duplicate_section),
		cmocka_unit_test(do_test_duplicate_key),
		cmocka_unit_test(do_test_structure_errors),
		cmocka_unit_test(do_test_missing_default_is_builtin),
		cmocka_unit_test(do_test_inheritance),
		cmocka_unit_test(do_test_mx_rules),
		cmocka_unit_test(do_test_bad_suffixes),
		cmocka_unit_test(do_test_accepts_all_forces_probe_off),
		cmocka_unit_test(do_test_txn_exceeds_session),
		cmocka_unit_test(do_test_notes),
		cmocka_unit_test(do_test_verdict_note),
		cmocka_unit_test(do_test_load_io_errors),
		cmocka_unit_test(do_test_match_label_alignment),
		cmocka_unit_test(do_test_match_case_and_dots),
		cmocka_unit_test(do_test_match_longest_suffix),
		cmocka_unit_test(do_test_get_count_at),
		cmocka_unit_test(do_test_null_handle),
		cmocka_unit_test(do_test_many_suffixes),
	};
	const struct CMUnitTest shipped_file[] = {
		cmocka_unit_test(do_test_shipped_default_is_builtin),
		cmocka_unit_test(do_test_shipped_real_mx),
		cmocka_unit_test(do_test_shipped_smtp_proves_little),
		cmocka_unit_test(do_test_shipped_policies),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("providers: parsing and matching", parsing, NULL, NULL);
	failed += cmocka_run_group_tests_name("providers: shipped file", shipped_file, group_setup, group_teardown);
	return failed;
}
