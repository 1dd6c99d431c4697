/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_lists.c - role / disposable / free flags, typo suggestions, list
 * loading (errors, bad lines) and the string hash set, against the real
 * data directory (EMV_SOURCE_DATA_DIR) and throw-away directories under /tmp.
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

#include "emv_lists.h"
#include "emv_result.h"
#include "emv_util.h"

static emv_lists *lists; /* the real data directory, loaded once */

static int group_setup(void **state)
{
	char err[512];

	lists = emv_lists_load(EMV_SOURCE_DATA_DIR, err, sizeof(err));
	if (!lists) {
		fprintf(stderr, "loading %s failed: %s\n", EMV_SOURCE_DATA_DIR, err);
		return -1;
	}
	printf("lists from %s: role=%zu disposable=%zu free=%zu typo=%zu skipped=%zu\n", EMV_SOURCE_DATA_DIR,
	       emv_lists_count(lists, "role"), emv_lists_count(lists, "disposable"), emv_lists_count(lists, "free"),
	       emv_lists_count(lists, "typo"), emv_lists_count(lists, "skipped"));
	return 0;
}

static int group_teardown(void **state)
{
	emv_lists_free(lists);
	lists = NULL;
	return 0;
}

static void expect_flag(const char *local, const char *domain, unsigned flag, int want)
{
	unsigned got = emv_lists_flags(lists, local, domain);

	if (!!(got & flag) != !!want)
		fail_msg("flags(%s, %s) = 0x%x: flag 0x%x should be %s", local ? local : "(null)",
			 domain ? domain : "(null)", got, flag, want ? "set" : "clear");
}

static void do_test_counts(void **state)
{
	assert_true(emv_lists_count(lists, "role") >= 500);
	assert_true(emv_lists_count(lists, "disposable") >= 5000);
	assert_true(emv_lists_count(lists, "free") >= 3000);
	assert_true(emv_lists_count(lists, "typo") >= 40);
	assert_int_equal(emv_lists_count(lists, "skipped"), 0);
	assert_int_equal(emv_lists_count(lists, "nonsense"), 0);
	assert_int_equal(emv_lists_count(NULL, "role"), 0);
}

static void do_test_role(void **state)
{
	static const char *const yes[] = {
		"admin",      "info",  "postmaster",	  "noreply",	   "no-reply",	   "sales+tag",
		"Sales+Tag",  "ADMIN", "Info+newsletter", "support",	   "abuse",	   "webmaster",
		"hostmaster", "hr",    "billing",	  "mailer-daemon", "do-not-reply",
	};
	static const char *const no[] = {
		"john",	 "j.smith", "jane.doe+admin", "",      "+admin", "adminx", "xadmin",
		"alexa", "md",	    "sydney",	      "info.", "admin@",
	};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		expect_flag(yes[i], "example.com", EMV_FLAG_ROLE, 1);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		expect_flag(no[i], "example.com", EMV_FLAG_ROLE, 0);
	expect_flag(NULL, "example.com", EMV_FLAG_ROLE, 0);
}

static void do_test_disposable(void **state)
{
	static const char *const yes[] = {
		"mailinator.com",    "x.mailinator.com", "a.b.c.mailinator.com", "MAILINATOR.COM",  "mailinator.com.",
		"guerrillamail.com", "10minutemail.com", "yopmail.com",		 "sharklasers.com", "temp-mail.org",
	};
	static const char *const no[] = {
		"gmail.com",
		"outlook.com",
		"hotmail.com",
		"yahoo.com",
		"icloud.com",
		"gmx.de",
		"protonmail.com",
		"example.com",
		"mailinator.com.evil.org",
		"com",
		"mailinator",
		"",
		".",
	};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		expect_flag("joe", yes[i], EMV_FLAG_DISPOSABLE, 1);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		expect_flag("joe", no[i], EMV_FLAG_DISPOSABLE, 0);
	/* a disposable domain is never also flagged free */
	expect_flag("joe", "mailinator.com", EMV_FLAG_FREE, 0);
	expect_flag("joe", NULL, EMV_FLAG_DISPOSABLE, 0);
}

static void do_test_free(void **state)
{
	static const char *const yes[] = {
		"gmail.com", "yahoo.com", "outlook.com", "gmx.de",  "hotmail.com", "Hotmail.co.uk", "icloud.com",
		"web.de",    "mail.ru",	  "yandex.ru",	 "aol.com", "proton.me",   "qq.com",
	};
	static const char *const no[] = {
		"example.com",	      "acme-corp.com", "microsoft.com",	  "ibm.com",   "sub.gmail.com",
		"gmail.com.evil.org", "facebook.com",  "docs.google.com", "gmial.com",
	};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		expect_flag("joe", yes[i], EMV_FLAG_FREE, 1);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		expect_flag("joe", no[i], EMV_FLAG_FREE, 0);
	assert_int_equal(emv_lists_flags(lists, "admin", "gmail.com"), EMV_FLAG_ROLE | EMV_FLAG_FREE);
	assert_int_equal(emv_lists_flags(lists, "admin+x", "x.mailinator.com"), EMV_FLAG_ROLE | EMV_FLAG_DISPOSABLE);
	assert_int_equal(emv_lists_flags(lists, "jane", "acme-corp.com"), 0);
	assert_int_equal(emv_lists_flags(NULL, "admin", "gmail.com"), 0);
}

/* Every popular target must itself be a free, non-disposable domain. */
static void do_test_typo_targets_consistent(void **state)
{
	char path[1024], line[256];
	FILE *f;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/typo_domains.txt", EMV_SOURCE_DATA_DIR);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *s = emv_trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		if (emv_lists_flags(lists, NULL, s) != EMV_FLAG_FREE)
			fail_msg("typo target %s: flags 0x%x, want free only", s, emv_lists_flags(lists, NULL, s));
		n++;
	}
	fclose(f);
	assert_int_equal(n, emv_lists_count(lists, "typo"));
}

struct typo_case {
	const char *domain;
	const char *want; /* NULL: no suggestion */
};

static const struct typo_case typo_cases[] = {
	/* misspelt names */
	{ "gmial.com", "gmail.com" },
	{ "gamil.com", "gmail.com" },
	{ "gmal.com", "gmail.com" },
	{ "gmai.com", "gmail.com" },
	{ "gmaill.com", "gmail.com" },
	{ "gnail.com", "gmail.com" },
	{ "gmsil.com", "gmail.com" },
	{ "GMIAL.COM", "gmail.com" },
	{ "hmail.com", "gmail.com" }, /* as near ymail.com: the earlier line wins */
	{ "hotmial.com", "hotmail.com" },
	{ "hotmal.com", "hotmail.com" },
	{ "hotamil.com", "hotmail.com" },
	{ "hotmaill.com", "hotmail.com" },
	{ "hitmail.com", "hotmail.com" },
	{ "yaho.com", "yahoo.com" },
	{ "yahooo.com", "yahoo.com" },
	{ "yhaoo.com", "yahoo.com" },
	{ "yahho.com", "yahoo.com" },
	{ "outlok.com", "outlook.com" },
	{ "outllok.com", "outlook.com" },
	{ "otulook.com", "outlook.com" },
	{ "iclod.com", "icloud.com" },
	{ "icluod.com", "icloud.com" },
	{ "protonmial.com", "protonmail.com" },
	{ "protonmai.com", "protonmail.com" },
	{ "googlemial.com", "googlemail.com" },
	{ "hotmial.co.uk", "hotmail.co.uk" },
	{ "lvie.com", "live.com" },
	{ "comcats.net", "comcast.net" },
	{ "sbcgloabl.net", "sbcglobal.net" },
	/* misspelt suffixes */
	{ "gmail.con", "gmail.com" },
	{ "gmail.co", "gmail.com" },
	{ "gmail.cm", "gmail.com" },
	{ "gmail.om", "gmail.com" },
	{ "gmail.comm", "gmail.com" },
	{ "gmail.cpm", "gmail.com" },
	{ "yahoo.cmo", "yahoo.com" },
	{ "yahoo.ocm", "yahoo.com" },
	{ "hotmail.vom", "hotmail.com" },
	{ "aol.con", "aol.com" },
	{ "gmx.ne", "gmx.net" },
	{ "me.con", "me.com" },
	{ "hotmail.couk", "hotmail.co.uk" },
	{ "hotmail.co.uj", "hotmail.co.uk" },
	{ "comcast.ner", "comcast.net" },
	{ "gmailcom", "gmail.com" },
	/* both */
	{ "gmial.con", "gmail.com" },
	{ "hotmial.cmo", "hotmail.com" },
	/* real domains and non-typos: no suggestion */
	{ "gmail.com", NULL },
	{ "gmx.com", NULL },
	{ "gmx.de", NULL },
	{ "mail.com", NULL },
	{ "ymail.com", NULL },
	{ "hotmail.co.uk", NULL },
	{ "live.com", NULL },
	{ "me.com", NULL },
	{ "mac.com", NULL },
	{ "email.com", NULL },
	{ "example.com", NULL },
	{ "example.co", NULL },
	{ "acme.io", NULL },
	{ "google.com", NULL },
	{ "cloud.com", NULL },
	{ "love.com", NULL },
	{ "nail.com", NULL },
	{ "never.com", NULL },
	{ "gmailer.com", NULL },
	{ "gmails.com", NULL },
	{ "yahoo.de", NULL },
	{ "yahoo.ca", NULL },
	{ "yahoo.co.in", NULL },
	{ "hotmail.co.us", NULL },
	{ "gmx.ch", NULL },
	{ "gmail.de", NULL },
	{ "orange.com", NULL },
	{ "t-online.com", NULL },
	{ "web.com", NULL },
	{ "163.net", NULL },
	{ "outlook.com.au", NULL },
	{ "mailinator.com", NULL },
	{ "x.mailinator.com", NULL },
	{ "mail.gmail.com", NULL },
	{ "gmail.com.br", NULL },
	{ "wbe.de", NULL },
	{ "y7mail.com", NULL }, /* real free providers near popular names */
	{ "fastmail.fm", NULL },
	{ "earthling.net", NULL },
	{ "flashmail.com", NULL },
	{ "prontomail.com", NULL },
	{ "hockeymail.com", NULL },
	{ "hotmail.se", NULL }, /* another country of the same provider */
	{ "outlook.cl", NULL },
	{ "gmz.com", NULL },
	{ "", NULL },
	{ "gmail", NULL },
};

static void do_test_suggest(void **state)
{
	char out[300];
	size_t i, pos = 0, neg = 0;

	for (i = 0; i < sizeof(typo_cases) / sizeof(typo_cases[0]); i++) {
		const struct typo_case *c = &typo_cases[i];
		char want[300];
		int r = emv_lists_suggest(lists, "jo.ann+x", c->domain, out, sizeof(out));

		if (c->want) {
			snprintf(want, sizeof(want), "jo.ann+x@%s", c->want);
			if (r != 1 || strcmp(out, want) != 0)
				fail_msg("suggest(%s) = %d \"%s\", want \"%s\"", c->domain, r, out, want);
			pos++;
		} else {
			if (r != 0 || out[0] != '\0')
				fail_msg("suggest(%s) = %d \"%s\", want no suggestion", c->domain, r, out);
			neg++;
		}
	}
	printf("typo cases: %zu suggested, %zu left alone\n", pos, neg);
	assert_true(pos + neg >= 40);
}

static void do_test_suggest_edges(void **state)
{
	char out[32];

	/* a disposable typo-squat is flagged and still gets its suggestion */
	assert_int_equal(emv_lists_flags(lists, "bob", "gmial.com"), EMV_FLAG_DISPOSABLE);
	assert_int_equal(emv_lists_suggest(lists, "bob", "gmial.com", out, sizeof(out)), 1);
	assert_string_equal(out, "bob@gmail.com");

	/* without a local part: the domain alone */
	assert_int_equal(emv_lists_suggest(lists, NULL, "gmial.com", out, sizeof(out)), 1);
	assert_string_equal(out, "gmail.com");
	/* output too small: no partial address */
	assert_int_equal(emv_lists_suggest(lists, "someone", "gmial.com", out, 12), 0);
	assert_string_equal(out, "");
	assert_int_equal(emv_lists_suggest(lists, "a", "gmial.com", out, 0), 0);
	assert_int_equal(emv_lists_suggest(lists, "a", NULL, out, sizeof(out)), 0);
	assert_int_equal(emv_lists_suggest(NULL, "a", "gmial.com", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	/* a domain longer than DNS allows is not looked at */
	{
		char big[400];
		memset(big, 'g', sizeof(big) - 5);
		strcpy(big + sizeof(big) - 5, ".com");
		assert_int_equal(emv_lists_suggest(lists, "a", big, out, sizeof(out)), 0);
		assert_int_equal(emv_lists_flags(lists, "a", big), 0);
	}
}

/* ---- loading from throw-away directories ---- */

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static void remove_dir(const char *dir)
{
	static const char *const names[] = { "role.txt", "disposable.txt", "free.txt", "typo_domains.txt" };
	char path[1024];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void do_test_load_missing_dir(void **state)
{
	char err[512];

	assert_null(emv_lists_load("/nonexistent/emv-lists", err, sizeof(err)));
	if (!strstr(err, "/nonexistent/emv-lists/role.txt"))
		fail_msg("error should name the file: \"%s\"", err);
	/* a tiny error buffer is still terminated */
	assert_null(emv_lists_load("/nonexistent/emv-lists", err, 8));
	assert_int_equal(strlen(err), 7);
	assert_null(emv_lists_load("/nonexistent/emv-lists", NULL, 0));
}

static void do_test_load_missing_file(void **state)
{
	char dir[] = "/tmp/emv-lists-XXXXXX", err[512];

	assert_non_null(mkdtemp(dir));
	write_file(dir, "role.txt", "admin\n");
	write_file(dir, "disposable.txt", "mailinator.com\n");
	/* free.txt missing */
	write_file(dir, "typo_domains.txt", "gmail.com\n");
	assert_null(emv_lists_load(dir, err, sizeof(err)));
	if (!strstr(err, "free.txt") || !strstr(err, dir))
		fail_msg("error should name free.txt: \"%s\"", err);
	remove_dir(dir);
}

static void do_test_load_bad_lines(void **state)
{
	char dir[] = "/tmp/emv-lists-XXXXXX", err[512], out[64], longline[EMV_LISTS_LINE_MAX + 100];
	char *text;
	emv_lists *l;

	assert_non_null(mkdtemp(dir));
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	text = emv_xmalloc(strlen(longline) + 200);
	snprintf(text, strlen(longline) + 200,
		 "# roles\nAdmin\n\n  sales  # trailing comment\n"
		 "bad local\n%s\ninfo\r\nlast-without-newline",
		 longline);
	write_file(dir, "role.txt", text);
	free(text);
	write_file(dir, "disposable.txt",
		   "# disposable\nMailinator.COM\nbad_dot..com\n-bad.com\nnodot\nexa mple.com\n"
		   "ok-domain.net\nmailinator.com\n");
	write_file(dir, "free.txt", "gmail.com\nyahoo.com\n\xc3\xa9t\xc3\xa9.fr\n");
	write_file(dir, "typo_domains.txt", "# targets\ngmail.com\nyahoo.com\n");

	l = emv_lists_load(dir, err, sizeof(err));
	if (!l)
		fail_msg("load with bad lines should succeed: %s", err);
	assert_int_equal(emv_lists_count(l, "role"), 4);       /* admin sales info last-without-newline */
	assert_int_equal(emv_lists_count(l, "disposable"), 2); /* duplicate counted once */
	assert_int_equal(emv_lists_count(l, "free"), 2);
	assert_int_equal(emv_lists_count(l, "typo"), 2);
	assert_int_equal(emv_lists_count(l, "skipped"), 2 + 4 + 1);
	assert_int_equal(emv_lists_flags(l, "ADMIN+x", "x.mailinator.com"), EMV_FLAG_ROLE | EMV_FLAG_DISPOSABLE);
	assert_int_equal(emv_lists_flags(l, "info", "gmail.com"), EMV_FLAG_ROLE | EMV_FLAG_FREE);
	assert_int_equal(emv_lists_flags(l, "last-without-newline", NULL), EMV_FLAG_ROLE);
	assert_int_equal(emv_lists_suggest(l, "a", "yahho.com", out, sizeof(out)), 1);
	assert_string_equal(out, "a@yahoo.com");
	emv_lists_free(l);
	remove_dir(dir);
}

/* ---- the hash set on its own ---- */

static void do_test_strset_stress(void **state)
{
	enum { N = 100000 };
	emv_strset *s = emv_strset_new();
	char key[64];
	size_t i;

	for (i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "k%zu.example-%zu.com", i, i * 7919u % 1000u);
		if (emv_strset_add(s, key, (size_t)n) != 1)
			fail_msg("insert %s: should be new", key);
	}
	assert_int_equal(emv_strset_count(s), N);
	for (i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "k%zu.example-%zu.com", i, i * 7919u % 1000u);
		if (!emv_strset_has(s, key, (size_t)n))
			fail_msg("%s inserted but not found", key);
		if (emv_strset_add(s, key, (size_t)n) != 0)
			fail_msg("%s added twice", key);
	}
	for (i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "k%zu.example-%zu.com", i + N, i * 7919u % 1000u);
		if (emv_strset_has(s, key, (size_t)n))
			fail_msg("%s never inserted but found", key);
		n = snprintf(key, sizeof(key), "k%zu.example-%zu.co", i, i * 7919u % 1000u);
		if (emv_strset_has(s, key, (size_t)n))
			fail_msg("%s never inserted but found", key);
	}
	assert_int_equal(emv_strset_count(s), N);
	/* prefixes and the empty string are distinct keys */
	assert_false(emv_strset_has(s, "k1", 2));
	assert_false(emv_strset_has(s, "", 0));
	assert_int_equal(emv_strset_add(s, "", 0), 1);
	assert_true(emv_strset_has(s, "", 0));
	assert_true(emv_strset_has(s, "k1.example-919.comXYZ", 18));
	emv_strset_free(s);
	emv_strset_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_counts),
		cmocka_unit_test(do_test_role),
		cmocka_unit_test(do_test_disposable),
		cmocka_unit_test(do_test_free),
		cmocka_unit_test(do_test_typo_targets_consistent),
		cmocka_unit_test(do_test_suggest),
		cmocka_unit_test(do_test_suggest_edges),
		cmocka_unit_test(do_test_load_missing_dir),
		cmocka_unit_test(do_test_load_missing_file),
		cmocka_unit_test(do_test_load_bad_lines),
		cmocka_unit_test(do_test_strset_stress),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
