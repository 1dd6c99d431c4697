/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_classify.c - the reply classifier against real-world replies
 * (tests/data/replies.tsv, run end to end through the reply parser) plus the
 * rules-file loader, the guard rails and the flags the session relies on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "emv_classify.h"
#include "emv_policy.h"
#include "emv_reply.h"

#define RULES EMV_SOURCE_DATA_DIR "/classify.rules"
#define GOLDEN EMV_TEST_DATA "/replies.tsv"

static emv_classifier *load_default(void)
{
	char err[512] = "";
	emv_classifier *c = emv_classifier_load_default(err, sizeof err);
	if (!c)
		fail_msg("default rules did not load: %s", err);
	return c;
}

/* Undo the TSV escapes: \n -> newline, \\ -> backslash. */
static void unescape(char *s)
{
	char *w = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] == 'n') {
			*w++ = '\n';
			s++;
		} else if (s[0] == '\\' && s[1] == '\\') {
			*w++ = '\\';
			s++;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* Feed "code-text" / "code text" lines to a parser as the session would. */
static int feed_reply(emv_reply_parser *p, int code, char *text, char *err, size_t errlen)
{
	char line[2048];
	char *cur = text;
	emv_reply_status st = EMV_REPLY_ERROR;

	for (;;) {
		char *nl = strchr(cur, '\n');
		int n;
		if (nl)
			*nl = '\0';
		n = snprintf(line, sizeof line, "%d%c%s", code, nl ? '-' : ' ', cur);
		if (n < 0 || (size_t)n >= sizeof line)
			return EMV_REPLY_ERROR;
		st = emv_reply_parser_feed(p, line, (size_t)n, err, errlen);
		if (nl)
			*nl = '\n';
		if (!nl || st != EMV_REPLY_MORE)
			break;
		cur = nl + 1;
	}
	return st;
}

/*
 * Accuracy per group: the source column (a provider or MTA, maybe with a
 * note or a citation) normalised to the groups the corpus must cover.  The
 * first group with a matching key wins, so "Exchange Online" is counted as
 * Microsoft 365 before the on-premises key "Exchange" is tried.
 */
static const struct group {
	const char *name;
	const char *keys[4];
} groups[] = {
	{ "Gmail", { "gmail", "google" } },
	{ "Microsoft 365", { "microsoft 365", "exchange online", "office 365" } },
	{ "Outlook consumer", { "outlook.com", "hotmail", "outlook consumer" } },
	{ "Yahoo", { "yahoo", "aol" } },
	{ "iCloud", { "icloud" } },
	{ "Proofpoint", { "proofpoint" } },
	{ "Mimecast", { "mimecast" } },
	{ "Barracuda", { "barracuda" } },
	{ "Exchange on-premises", { "exchange" } },
	{ "Postfix", { "postfix", "postscreen", "postgrey" } },
	{ "Exim", { "exim" } },
	{ "Sendmail", { "sendmail" } },
	{ "qmail", { "qmail" } },
	{ "Zimbra", { "zimbra" } },
	{ "other", { "" } },
};
#define NGROUPS (sizeof groups / sizeof *groups)
#define GROUP_MIN_ROWS 5 /* each named group: at least this many real texts */

static size_t group_of(const char *source)
{
	for (size_t g = 0; g < NGROUPS; g++)
		for (size_t k = 0; k < 4 && groups[g].keys[k]; k++)
			if (strcasestr(source, groups[g].keys[k]))
				return g;
	return NGROUPS - 1;
}

static void do_test_golden_replies(void **state)
{
	emv_classifier *c = load_default();
	FILE *fp = fopen(GOLDEN, "r");
	char *buf = NULL;
	size_t cap = 0;
	int lineno = 0, checked = 0, failed = 0;
	int rows[NGROUPS] = { 0 }, hits[NGROUPS] = { 0 }, thin = 0, preset_hits[2] = { 0 };

	(void)state;
	assert_non_null(fp);
	while (getline(&buf, &cap, fp) != -1) {
		char *f[7], *save = NULL, *tok, textcopy[EMV_REPLY_TEXT_MAX];
		char err[256] = "";
		int nf = 0, phase, code;
		const char *want_enh;
		emv_reply_parser p;
		emv_verdict v;

		lineno++;
		buf[strcspn(buf, "\r\n")] = '\0';
		if (buf[0] == '#' || buf[0] == '\0')
			continue;
		for (tok = strtok_r(buf, "\t", &save); tok && nf < 7; tok = strtok_r(NULL, "\t", &save))
			f[nf++] = tok;
		if (nf != 7) {
			print_error("replies.tsv:%d: %d fields, want 7\n", lineno, nf);
			failed++;
			continue;
		}
		size_t g = group_of(f[6]);
		rows[g]++;
		phase = emv_phase_from_name(f[0]);
		code = atoi(f[1]);
		want_enh = strcmp(f[2], "-") == 0 ? "" : f[2];
		unescape(f[3]);
		snprintf(textcopy, sizeof textcopy, "%s", f[3]);
		if (phase < 0 || code < 200 || code > 599) {
			print_error("replies.tsv:%d: bad phase or code\n", lineno);
			failed++;
			continue;
		}

		emv_reply_parser_init(&p, 0, 0);
		if (feed_reply(&p, code, f[3], err, sizeof err) != EMV_REPLY_DONE) {
			print_error("replies.tsv:%d: parser did not finish the reply: %s\n", lineno, err);
			failed++;
			continue;
		}
		checked++;
		if (p.r.code != code || strcmp(p.r.enhanced, want_enh) != 0 || strcmp(p.r.text, textcopy) != 0) {
			print_error("replies.tsv:%d: parsed code %d enhanced \"%s\" (want %d \"%s\")%s\n", lineno,
				    p.r.code, p.r.enhanced, code, want_enh,
				    strcmp(p.r.text, textcopy) ? ", text differs" : "");
			failed++;
			continue;
		}
		emv_classify(c, phase, p.r.code, p.r.enhanced, p.r.text, &v);
		if (strcmp(emv_status_name(v.status), f[4]) != 0 || strcmp(emv_reason_name(v.reason), f[5]) != 0) {
			print_error("replies.tsv:%d: [%s] %s %d %s: got %s/%s by rule %s, want %s/%s\n", lineno, f[6],
				    f[0], code, want_enh, emv_status_name(v.status), emv_reason_name(v.reason),
				    v.rule_id, f[4], f[5]);
			failed++;
			continue;
		}
		hits[g]++;
		/* what each preset writes for this reply (docs/policy.md's
		 * table), for a plain address and for a role address */
		for (int pi = 0; pi < 2; pi++)
			for (int role = 0; role < 2; role++) {
				const emv_policy *pol = emv_policy_preset(pi ? "transactional" : "marketing");
				emv_status ms = v.status;
				emv_reason mr = v.reason;
				int safe = emv_policy_apply(pol, &ms, &mr, role ? EMV_FLAG_ROLE : 0);
				int demote = !pi && role && strcmp(f[4], "deliverable") == 0;
				const char *ws = demote ? "risky" : f[4], *wr = demote ? "role" : f[5];
				int wsafe = !demote && strcmp(f[4], "deliverable") == 0;
				if (strcmp(emv_status_name(ms), ws) || strcmp(emv_reason_name(mr), wr) ||
				    safe != wsafe) {
					print_error("replies.tsv:%d: under %s%s: %s/%s safe=%d, want %s/%s safe=%d\n",
						    lineno, emv_policy_name(pol), role ? " (role address)" : "",
						    emv_status_name(ms), emv_reason_name(mr), safe, ws, wr, wsafe);
					failed++;
				} else {
					preset_hits[pi]++;
				}
			}
	}
	free(buf);
	fclose(fp);
	emv_classifier_free(c);
	print_message("golden replies: %d checked, %d failed\n", checked, failed);
	print_message("under the presets (plain and role addresses): marketing %d/%d, transactional %d/%d\n",
		      preset_hits[0], 2 * checked, preset_hits[1], 2 * checked);
	print_message("classifier hit rate per group (status and reason as expected):\n");
	for (size_t g = 0; g < NGROUPS; g++) {
		print_message("  %-22s %4d/%-4d %5.1f%%\n", groups[g].name, hits[g], rows[g],
			      rows[g] ? 100.0 * hits[g] / rows[g] : 0.0);
		if (g + 1 < NGROUPS && rows[g] < GROUP_MIN_ROWS) {
			print_error("replies.tsv: group %s has %d rows, want at least %d\n", groups[g].name, rows[g],
				    GROUP_MIN_ROWS);
			thin++;
		}
	}
	assert_int_equal(failed, 0);
	assert_int_equal(thin, 0);
	assert_true(checked >= 400);
}

/* Classify one reply through the parser, like the session does. */
static void classify_text(const emv_classifier *c, int phase, const char *raw_lines, emv_verdict *v)
{
	emv_reply_parser p;
	char copy[4096], err[256];
	const char *line = copy;
	emv_reply_status st = EMV_REPLY_MORE;

	snprintf(copy, sizeof copy, "%s", raw_lines);
	emv_reply_parser_init(&p, 0, 0);
	for (char *nl; st == EMV_REPLY_MORE; line = nl + 1) {
		nl = strchr(line, '\n');
		st = emv_reply_parser_feed(&p, line, nl ? (size_t)(nl - line) : strlen(line), err, sizeof err);
		if (!nl)
			break;
	}
	assert_int_equal(st, EMV_REPLY_DONE);
	emv_classify(c, phase, p.r.code, p.r.enhanced, p.r.text, v);
}

static void do_test_session_flags(void **state)
{
	emv_classifier *c = load_default();
	emv_verdict v;

	(void)state;
	/* The session shrinks its batch on this exact rule id. */
	classify_text(c, EMV_PHASE_RCPT, "452 4.5.3 Error: too many recipients", &v);
	assert_string_equal(v.rule_id, "too_many_recipients");
	assert_int_equal(v.temporary, 1);
	assert_int_equal(v.about_us, 1);

	/* Our IP listed: about us, retry elsewhere. */
	classify_text(c, EMV_PHASE_RCPT,
		      "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", &v);
	assert_int_equal(v.reason, EMV_REASON_BLOCKED);
	assert_int_equal(v.about_us, 1);
	assert_int_equal(v.temporary, 1);

	/* The recipient being flooded is not about us. */
	classify_text(c, EMV_PHASE_RCPT, "450 4.2.1 The user you are trying to contact is receiving mail too quickly.",
		      &v);
	assert_int_equal(v.reason, EMV_REASON_RATE_LIMITED);
	assert_int_equal(v.about_us, 0);
	assert_int_equal(v.temporary, 1);

	/* A hard "user unknown" is final and about the mailbox. */
	classify_text(c, EMV_PHASE_RCPT, "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown", &v);
	assert_int_equal(v.status, EMV_STATUS_UNDELIVERABLE);
	assert_int_equal(v.temporary, 0);
	assert_int_equal(v.about_us, 0);

	/* The same words in a 4xx: unknown, temporary, reason kept. */
	classify_text(c, EMV_PHASE_RCPT, "450 4.1.1 <a@example.com>: Recipient address rejected: User unknown", &v);
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);
	assert_int_equal(v.reason, EMV_REASON_MAILBOX_NOT_FOUND);
	assert_int_equal(v.temporary, 1);

	/* Mailbox full in 4xx stays risky but temporary. */
	classify_text(c, EMV_PHASE_RCPT, "452 4.2.2 The email account that you tried to reach is over quota.", &v);
	assert_int_equal(v.status, EMV_STATUS_RISKY);
	assert_int_equal(v.temporary, 1);

	/* A bare 550 is not enough evidence. */
	classify_text(c, EMV_PHASE_RCPT, "550 Requested action not taken", &v);
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);
	assert_string_equal(v.rule_id, "rcpt_unexplained");
	classify_text(c, EMV_PHASE_RCPT, "550", &v);
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);

	/* Nothing said before RCPT is about the mailbox. */
	classify_text(c, EMV_PHASE_MAIL, "550 5.1.1 User unknown", &v);
	assert_int_not_equal(v.status, EMV_STATUS_UNDELIVERABLE);
	assert_int_equal(v.about_us, 1);
	classify_text(c, EMV_PHASE_EHLO, "550 5.1.1 User unknown", &v);
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);
	classify_text(c, EMV_PHASE_BANNER, "554 No SMTP service here", &v);
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);
	assert_int_equal(v.reason, EMV_REASON_POLICY_REJECTED);
	assert_int_equal(v.about_us, 1);

	/* 250 anywhere but RCPT says nothing about the mailbox. */
	classify_text(c, EMV_PHASE_MAIL, "250 2.1.0 Ok", &v);
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);
	classify_text(c, EMV_PHASE_RCPT, "250 2.1.5 Ok", &v);
	assert_int_equal(v.status, EMV_STATUS_DELIVERABLE);
	classify_text(c, EMV_PHASE_RCPT, "252 2.1.5 Cannot VRFY user", &v);
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);

	/* Anything 421 sheds us. */
	classify_text(c, EMV_PHASE_RSET, "421 closing", &v);
	assert_int_equal(v.reason, EMV_REASON_RATE_LIMITED);
	assert_int_equal(v.temporary, 1);
	emv_classifier_free(c);
}

static void do_test_enhanced_matching(void **state)
{
	emv_classifier *c = load_default();
	emv_verdict v;

	(void)state;
	/* Leading zeros compare numerically. */
	emv_classify(c, EMV_PHASE_RCPT, 550, "5.01.001", "whatever", &v);
	assert_string_equal(v.rule_id, "code_not_found");
	/* Junk in the enhanced argument counts as none. */
	emv_classify(c, EMV_PHASE_RCPT, 550, "5.1", "whatever", &v);
	assert_string_equal(v.rule_id, "rcpt_unexplained");
	emv_classify(c, EMV_PHASE_RCPT, 550, NULL, NULL, &v);
	assert_string_equal(v.rule_id, "rcpt_unexplained");
	/* Out-of-range phase still gets a verdict, never a mailbox one. */
	emv_classify(c, 99, 550, "5.1.1", "user unknown", &v);
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);
	emv_classify(c, -1, 250, "", "", &v);
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);
	emv_classifier_free(c);
}

static void do_test_null_classifier(void **state)
{
	emv_verdict v;

	(void)state;
	emv_classify(NULL, EMV_PHASE_RCPT, 250, "", "ok", &v);
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);
	assert_string_equal(v.rule_id, "no_rule");
	emv_classify(NULL, EMV_PHASE_RCPT, 451, "", "later", &v);
	assert_int_equal(v.temporary, 1);
	emv_classifier_free(NULL);
}

static void do_test_phase_names(void **state)
{
	(void)state;
	for (int i = 0; i < EMV_PHASE__COUNT; i++)
		assert_int_equal(emv_phase_from_name(emv_phase_name(i)), i);
	assert_int_equal(emv_phase_from_name("data"), -1);
	assert_int_equal(emv_phase_from_name(NULL), -1);
	assert_string_equal(emv_phase_name(EMV_PHASE_RCPT), "rcpt");
	assert_string_equal(emv_phase_name(42), "?");
}

/* ---- loader ------------------------------------------------------------ */

static char tmp_path[64];

static const char *write_rules(const char *content)
{
	int fd;
	FILE *fp;

	snprintf(tmp_path, sizeof tmp_path, "/tmp/emv_rules_XXXXXX");
	fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	fputs(content, fp);
	fclose(fp);
	return tmp_path;
}

/* Load content; expect failure whose message names path:line and contains what. */
static void expect_load_error(const char *content, int line, const char *what)
{
	char err[512] = "", want[128];
	const char *path = write_rules(content);
	emv_classifier *c = emv_classifier_load(path, err, sizeof err);

	if (c)
		fail_msg("rules loaded, expected an error about '%s'", what);
	snprintf(want, sizeof want, "%s:%d: ", path, line);
	if (!strstr(err, want) || !strstr(err, what))
		fail_msg("error \"%s\" does not name \"%s\" with \"%s\"", err, want, what);
	unlink(path);
}

static void do_test_load_errors(void **state)
{
	static const char ok[] = "ok rcpt 250 * accepted auto 0 0 -\n";
	char err[512] = "";

	(void)state;
	expect_load_error("# comment\n\nbad rcpt 250\n", 3, "missing field 'enhanced'");
	expect_load_error("a rcpt 250 * accepted auto 0 0\n", 1, "missing field 'phrase'");
	expect_load_error("a data 250 * accepted auto 0 0 -\n", 1, "unknown phase \"data\"");
	expect_load_error("a rcpt 650 * accepted auto 0 0 -\n", 1, "bad code pattern");
	expect_load_error("a rcpt 25 * accepted auto 0 0 -\n", 1, "bad code pattern");
	expect_load_error("a rcpt 5xx 5.1 accepted auto 0 0 -\n", 1, "bad enhanced code pattern");
	expect_load_error("a rcpt 5xx 3.1.1 accepted auto 0 0 -\n", 1, "bad enhanced code pattern");
	expect_load_error("a rcpt 5xx 5.*.1 accepted auto 0 0 -\n", 1, "bad enhanced code pattern");
	expect_load_error("a rcpt 5xx 5.1.1000 accepted auto 0 0 -\n", 1, "bad enhanced code pattern");
	expect_load_error("a rcpt 5xx * nonsense auto 0 0 -\n", 1, "unknown reason \"nonsense\"");
	expect_load_error("a rcpt 5xx * blocked maybe 0 0 -\n", 1, "unknown status \"maybe\"");
	expect_load_error("a rcpt 5xx * blocked auto 2 0 -\n", 1, "temporary must be");
	expect_load_error("a rcpt 5xx * blocked auto 0 auto -\n", 1, "about_us must be");
	expect_load_error("a rcpt 5xx * blocked auto 0 0 (unclosed\n", 1, "bad phrase regex");
	expect_load_error("a/b rcpt 5xx * blocked auto 0 0 -\n", 1, "bad rule id");
	expect_load_error("x rcpt 250 * accepted auto 0 0 -\n\nx rcpt 251 * accepted auto 0 0 -\n", 3,
			  "duplicate rule id \"x\" (first at line 1)");
	/* A continued rule is reported at its first line. */
	expect_load_error("ok rcpt 250 * accepted auto 0 0 -\nb rcpt \\\n   5xx * blocked auto 0 0 (\n", 2,
			  "bad phrase regex");
	expect_load_error("a rcpt 5xx * blocked auto 0 0 x\\\n", 1, "ends inside a continued line");

	/* Whole-file errors. */
	assert_null(emv_classifier_load("/nonexistent/classify.rules", err, sizeof err));
	assert_non_null(strstr(err, "/nonexistent/classify.rules: "));
	assert_null(emv_classifier_load(write_rules("# nothing\n"), err, sizeof err));
	assert_non_null(strstr(err, "no rules"));
	unlink(tmp_path);
	assert_null(emv_classifier_load(NULL, err, sizeof err));

	/* And a good one, with an error buffer that is NULL. */
	{
		emv_classifier *c = emv_classifier_load(write_rules(ok), NULL, 0);
		assert_non_null(c);
		assert_int_equal(emv_classifier_rule_count(c), 1);
		emv_classifier_free(c);
		unlink(tmp_path);
	}
}

static void do_test_rule_syntax(void **state)
{
	/* Continuations, lists, x-patterns, '-' enhanced and '#' inside a phrase. */
	static const char rules[] =
		"# header\n"
		"none_only   rcpt     55x        -           mailbox_not_found auto 0 0 \\\n"
		"      no mailbox \\(#5\\.1\\.1\\)|\\\n"
		"      nobody here\n"
		"listed      rcpt,mail 451,45x   4.7.1,4.2.* greylisted unknown 1 0 -\n"
		"any5        *        5xx        5.*         policy_rejected unknown 0 1 -\n"
		"risky_bad   rcpt     2xx        *           mailbox_full risky 0 0 -\n"
		"undeliv_4xx rcpt     4xx        *           mailbox_not_found undeliverable auto 0 -\n"
		"bad_about   rcpt     5xx        -           mailbox_not_found undeliverable 0 1 about\n"
		"deliv_5xx   rcpt     5xx        -           accepted deliverable 0 0 -\n";
	char err[512] = "";
	emv_classifier *c = emv_classifier_load(write_rules(rules), err, sizeof err);
	emv_verdict v;

	(void)state;
	if (!c)
		fail_msg("%s", err);
	unlink(tmp_path);
	assert_int_equal(emv_classifier_rule_count(c), 7);

	emv_classify(c, EMV_PHASE_RCPT, 550, "", "sorry, no mailbox (#5.1.1)", &v);
	assert_string_equal(v.rule_id, "none_only");
	assert_int_equal(v.status, EMV_STATUS_UNDELIVERABLE);
	emv_classify(c, EMV_PHASE_RCPT, 553, NULL, "NOBODY HERE", &v); /* case-insensitive */
	assert_string_equal(v.rule_id, "none_only");
	emv_classify(c, EMV_PHASE_RCPT, 550, "5.1.1", "no mailbox (#5.1.1)", &v);
	assert_string_equal(v.rule_id, "any5"); /* '-' requires no enhanced code */
	emv_classify(c, EMV_PHASE_MAIL, 451, "4.2.9", "", &v);
	assert_string_equal(v.rule_id, "listed");
	emv_classify(c, EMV_PHASE_MAIL, 452, "4.7.1", "", &v);
	assert_string_equal(v.rule_id, "listed");
	emv_classify(c, EMV_PHASE_MAIL, 452, "4.5.1", "", &v);
	assert_string_equal(v.rule_id, "no_rule");
	emv_classify(c, EMV_PHASE_BANNER, 554, "5.7.1", "", &v);
	assert_string_equal(v.rule_id, "any5");
	assert_int_equal(v.about_us, 1);

	/* Guard rails hold against a rules file that says otherwise. */
	emv_classify(c, EMV_PHASE_RCPT, 250, "", "", &v);
	assert_string_equal(v.rule_id, "risky_bad");
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN); /* risky needs 4xx/5xx */
	emv_classify(c, EMV_PHASE_RCPT, 450, "", "", &v);
	assert_string_equal(v.rule_id, "undeliv_4xx");
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN);
	assert_int_equal(v.reason, EMV_REASON_MAILBOX_NOT_FOUND);
	assert_int_equal(v.temporary, 1);
	emv_classify(c, EMV_PHASE_RCPT, 554, "", "about", &v);
	assert_string_equal(v.rule_id, "bad_about");
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN); /* about us is never a mailbox verdict */
	emv_classify(c, EMV_PHASE_RCPT, 554, "", "x", &v);
	assert_string_equal(v.rule_id, "deliv_5xx");
	assert_int_equal(v.status, EMV_STATUS_UNKNOWN); /* never deliverable on a rejection */
	emv_classifier_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_golden_replies),    cmocka_unit_test(do_test_session_flags),
		cmocka_unit_test(do_test_enhanced_matching), cmocka_unit_test(do_test_null_classifier),
		cmocka_unit_test(do_test_phase_names),	     cmocka_unit_test(do_test_load_errors),
		cmocka_unit_test(do_test_rule_syntax),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
