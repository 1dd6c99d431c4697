/* SPDX-License-Identifier: Apache-2.0 */
/*
 * verify_world.c - `emailverify verify` against the test world: list
 * formats, input order, duplicates, bad rows and files, batching measured
 * from the SMTP test server's own log, 452 adaptation, greylisting retries,
 * resume after an interruption, the cache file (--cache), and the
 * port-25-blocked diagnosis.
 *
 * Needs the world fixture; EMV_WORLD_DIR holds its smtpd.log.  Each test
 * uses its own source address (127.0.0.x) so log lines can be attributed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>
#include "harness.h"

#define TMP EMV_WORLD_DIR "/verify-tmp"

static uint64_t emv_test_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Count smtpd.log lines after byte `from` that contain all of a, b, c. */
static int log_count(long from, const char *a, const char *b, const char *c)
{
	char *log = test_read_file(EMV_WORLD_DIR "/smtpd.log");
	int n = 0;
	assert_non_null(log);
	for (char *line = log + from, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		if (strstr(line, a) && (!b || strstr(line, b)) && (!c || strstr(line, c)))
			n++;
	}
	free(log);
	return n;
}

/* Sweep CONNECT/CLOSE lines after `from` between one server and one client:
 * the most connections open at once, and how many there were. */
static int log_concurrency(long from, const char *server, const char *client, int *total)
{
	char *log = test_read_file(EMV_WORLD_DIR "/smtpd.log");
	char pair[64];
	int open_now = 0, peak = 0;
	snprintf(pair, sizeof pair, " %s %s ", server, client);
	*total = 0;
	for (char *line = log + from, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		if (!strstr(line, pair))
			continue;
		if (strstr(line, " CONNECT ")) {
			(*total)++;
			if (++open_now > peak)
				peak = open_now;
		} else if (strstr(line, " CLOSE ")) {
			open_now--;
		}
	}
	free(log);
	return peak;
}

/* Times (unix ms) of the first two CONNECTs between server and client after `from`. */
static void log_connect_times(long from, const char *server, const char *client, long long t[2])
{
	char *log = test_read_file(EMV_WORLD_DIR "/smtpd.log");
	char pair[64];
	int n = 0;
	snprintf(pair, sizeof pair, " %s %s CONNECT", server, client);
	t[0] = t[1] = 0;
	for (char *line = log + from, *nl; *line && n < 2; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		if (strstr(line, pair))
			t[n++] = atoll(line);
	}
	free(log);
}

static json_t *find(struct run *r, const char *email)
{
	for (int i = 0; i < r->n; i++)
		if (strcmp(sget(r->results[i], "email"), email) == 0)
			return r->results[i];
	fail_msg("no result for %s", email);
	return NULL;
}

static int group_setup(void **state)
{
	mkdir(TMP, 0755);
	return 0;
}

/* ---- tests ---- */

static void do_test_order_duplicates_and_bad_rows(void **state)
{
	struct run r;
	test_write_file(TMP "/mixed.csv", "name,E-Mail,company\n"
					  "Alice,alice@accept.test,A\n"
					  "\"Smith, Bob\",bob@accept.test,\"B, Inc\"\n"
					  "Nobody,nobody@accept.test,C\n"
					  "Again,alice@accept.test,D\n"
					  "Broken,not an address,E\n"
					  "Null,x@nullmx.test,F\n"
					  "Gone,x@doesnotexist.test,G\n"
					  "Carol,carol@accept.test,H\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", TMP "/mixed.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 8); /* one result per input row, in input order */
	static const char *const want[][3] = {
		{ "alice@accept.test", "deliverable", "accepted" },
		{ "bob@accept.test", "deliverable", "accepted" },
		{ "nobody@accept.test", "undeliverable", "mailbox_not_found" },
		{ "alice@accept.test", "deliverable", "accepted" },
		{ "not an address", "undeliverable", "invalid_syntax" },
		{ "x@nullmx.test", "undeliverable", "null_mx" },
		{ "x@doesnotexist.test", "undeliverable", "no_domain" },
		{ "carol@accept.test", "deliverable", "accepted" },
	};
	for (int i = 0; i < 8; i++) {
		assert_string_equal(sget(r.results[i], "email"), want[i][0]);
		assert_verdict(r.results[i], want[i][1], want[i][2]);
		assert_int_equal(json_integer_value(json_object_get(r.results[i], "row")), i + 1);
	}
	/* the duplicate points at its first row; the original input row is kept */
	assert_int_equal(json_integer_value(json_object_get(r.results[3], "duplicate_of_row")), 1);
	assert_true(json_is_null(json_object_get(r.results[0], "duplicate_of_row")));
	/* "input" as in the export of `run` (it was "input_row" here) */
	assert_string_equal(sget(r.results[1], "input"), "\"Smith, Bob\",bob@accept.test,\"B, Inc\"");
	assert_null(json_object_get(r.results[1], "input_row"));
	run_free(&r);
}

/* The verdict policy (docs/policy.md): the same verdicts of the engine,
 * mapped by the default (marketing), by transactional and by a file; the
 * summary counts what the output says. */
static void do_test_verdict_policy(void **state)
{
	struct run r;
	char *out;
	test_write_file(TMP "/roles.txt", "alice@accept.test\npostmaster@accept.test\nnobody@accept.test\n");
	test_write_file(TMP "/strict.policy", "# nothing is safe\n* * * = = no\n");

	unlink(TMP "/roles.m.csv");
	run_verify(&r, 1, "--progress", "none", "-o", TMP "/roles.m.csv", TMP "/roles.txt", NULL);
	assert_exit(&r, 0);
	out = test_read_file(TMP "/roles.m.csv");
	assert_non_null(strstr(out, "\nalice@accept.test,deliverable,accepted,true,"));
	assert_non_null(strstr(out, "\npostmaster@accept.test,risky,role,false,role,"));
	assert_non_null(strstr(out, "\nnobody@accept.test,undeliverable,mailbox_not_found,false,"));
	assert_non_null(strstr(out, ",marketing,"));
	assert_non_null(strstr(r.err, "safe to send                  1   (policy marketing)"));
	free(out);
	run_free(&r);

	run_verify(&r, 1, "--progress", "none", "--format", "jsonl", "--policy", "transactional", TMP "/roles.txt",
		   NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 3);
	assert_verdict(r.results[1], "deliverable", "accepted");
	assert_true(json_is_true(json_object_get(r.results[1], "safe_to_send")));
	assert_string_equal(sget(r.results[1], "policy"), "transactional");
	assert_verdict(r.results[2], "undeliverable", "mailbox_not_found");
	assert_non_null(strstr(r.err, "safe to send                  2   (policy transactional)"));
	run_free(&r);

	run_verify(&r, 1, "--progress", "none", "--format", "jsonl", "--policy", TMP "/strict.policy", TMP "/roles.txt",
		   NULL);
	assert_exit(&r, 0);
	assert_verdict(r.results[0], "deliverable", "accepted");
	assert_true(json_is_false(json_object_get(r.results[0], "safe_to_send")));
	assert_string_equal(sget(r.results[0], "policy"), "strict");
	run_free(&r);

	/* a policy that is none: said, nothing verified */
	run_verify(&r, 1, "--progress", "none", "--policy", "lenient", TMP "/roles.txt", NULL);
	assert_exit(&r, 2);
	assert_non_null(strstr(r.err, "--policy: no policy 'lenient'"));
	run_free(&r);
}

static void do_test_csv_output_file(void **state)
{
	struct run r;
	char *out;
	test_write_file(TMP "/plain.txt", "alice@accept.test\nnobody@accept.test\n");
	unlink(TMP "/plain.out.csv");
	run_verify(&r, 1, "--progress", "none", "-o", TMP "/plain.out.csv", TMP "/plain.txt", NULL);
	assert_exit(&r, 0);
	out = test_read_file(TMP "/plain.out.csv");
	assert_non_null(out);
	assert_true(strncmp(out, "email,status,reason,safe_to_send,flags,", 39) == 0);
	assert_non_null(strstr(out, "\nalice@accept.test,deliverable,accepted,true,"));
	assert_non_null(strstr(out, "\nnobody@accept.test,undeliverable,mailbox_not_found,"));
	assert_true(strstr(out, "alice@") < strstr(out, "nobody@"));
	/* the journal is gone once the output is complete */
	assert_int_equal(test_file_size(TMP "/plain.out.csv.journal"), 0);
	assert_non_null(strstr(r.err, "summary"));
	free(out);
	run_free(&r);
}

static void do_test_gzip_and_stdin(void **state)
{
	struct run r;
	gzFile gz = gzopen(TMP "/list.csv.gz", "wb");
	assert_non_null(gz);
	assert_true(gzputs(gz, "email\nbob@accept.test\ncarol@accept.test\n") > 0);
	gzclose(gz);
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", TMP "/list.csv.gz", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 2);
	assert_verdict(r.results[1], "deliverable", "accepted");
	run_free(&r);

	harness_stdin = TMP "/list.csv.gz";
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "-", NULL);
	harness_stdin = NULL;
	assert_exit(&r, 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(sget(r.results[0], "email"), "bob@accept.test");
	run_free(&r);
}

static void do_test_bad_files(void **state)
{
	struct run r;
	static const struct {
		const char *name, *content;
		size_t len;
		const char *msg;
	} cases[] = {
		{ "empty.csv", "", 0, "empty" },
		{ "nocolumn.csv", "a,b\n1,2\n3,4\n", 12, "no email column" },
		{ "binary.csv",
		  "\x7f"
		  "ELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",
		  16, "binary" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char path[512];
		snprintf(path, sizeof path, TMP "/%s", cases[i].name);
		FILE *f = fopen(path, "w");
		fwrite(cases[i].content, 1, cases[i].len, f);
		fclose(f);
		run_verify(&r, 1, "--progress", "none", path, NULL);
		if (r.exit_code == 0 || !strstr(r.err, cases[i].msg))
			fail_msg("%s: exit %d, stderr: %s", cases[i].name, r.exit_code, r.err);
		run_free(&r);
	}
	run_verify(&r, 1, TMP "/does-not-exist.csv", NULL);
	assert_int_not_equal(r.exit_code, 0);
	assert_non_null(strstr(r.err, "No such file"));
	run_free(&r);
}

static void do_test_long_line_and_bad_utf8_kept_apart(void **state)
{
	struct run r;
	FILE *f = fopen(TMP "/long.csv", "w");
	fputs("email\nalice@accept.test\n", f);
	for (int i = 0; i < 100000; i++)
		fputc('x', f);
	fputs("\nbad\xff\xfe@accept.test\nbob@accept.test\n", f);
	fclose(f);
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", TMP "/long.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 4);
	assert_verdict(r.results[0], "deliverable", "accepted");
	assert_verdict(r.results[1], "unknown", "input_error");
	assert_non_null(strstr(sget(r.results[1], "detail"), "line 3"));
	assert_verdict(r.results[2], "undeliverable", "invalid_syntax");
	assert_verdict(r.results[3], "deliverable", "accepted");
	assert_non_null(strstr(r.err, "line 3"));
	run_free(&r);
}

static void do_test_one_session_per_domain(void **state)
{
	struct run r;
	char list[4096] = "email\n";
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	for (int i = 1; i <= 20; i++) {
		char line[64];
		snprintf(line, sizeof line, "u%d@toomany.test\n", i);
		strcat(list, line);
	}
	strcat(list, "alice@accept.test\nbob@accept.test\nnobody@accept.test\nzed@accept.test\n");
	test_write_file(TMP "/batch.csv", list);
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.6", TMP "/batch.csv",
		   NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 24);
	for (int i = 0; i < 20; i++)
		assert_verdict(r.results[i], "deliverable", "accepted");
	assert_verdict(find(&r, "zed@accept.test"), "undeliverable", "mailbox_not_found");
	/* toomany.test takes 3 recipients per transaction: 21 RCPTs (with the
	 * catch-all probe) still fit one connection, in several transactions */
	assert_int_equal(log_count(mark, "127.0.0.13 127.0.0.6 CONNECT", NULL, NULL), 1);
	assert_true(log_count(mark, "127.0.0.13 127.0.0.6 RCPT", "too-many", NULL) >= 1);
	assert_int_equal(log_count(mark, "127.0.0.10 127.0.0.6 CONNECT", NULL, NULL), 1);
	run_free(&r);
}

static void do_test_sessions_per_mx_limit(void **state)
{
	struct run r;
	char *list = malloc(8192);
	int total, peak;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	strcpy(list, "email\n");
	for (int i = 1; i <= 150; i++) {
		char line[64];
		snprintf(line, sizeof line, i <= 50 ? "u%d@toomany.test\n" : "v%d@toomany.test\n", i);
		strcat(list, line);
	}
	test_write_file(TMP "/permx.csv", list);
	free(list);
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.5", TMP "/permx.csv",
		   NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 150);
	assert_verdict(r.results[0], "deliverable", "accepted");
	assert_verdict(r.results[149], "undeliverable", "mailbox_not_found");
	/* 150 recipients, 50 per batch (default policy), never more than 2
	 * sessions at once on one MX host (sessions_per_mx).  u1..u50 exist:
	 * one session; v51..v150 do not: 100 errors, 8 per session (the error
	 * budget; the 452s of the 3-recipient transactions are no errors), 7
	 * sessions per batch of 50.  One or two more if a loaded machine made
	 * a reply look like a tarpit. */
	peak = log_concurrency(mark, "127.0.0.13", "127.0.0.5", &total);
	print_message("toomany.test: %d sessions, at most %d at once\n", total, peak);
	assert_true(total >= 15 && total <= 17);
	assert_true(peak >= 1 && peak <= 2);
	run_free(&r);
}

static void do_test_rcpt_budget_waits(void **state)
{
	struct run r;
	char *list = malloc(4096), *log;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	long long t[64];
	int n = 0;
	strcpy(list, "email\n");
	for (int i = 1; i <= 13; i++) {
		char line[64];
		snprintf(line, sizeof line, "user%d@accept.test\n", i);
		strcat(list, line);
	}
	test_write_file(TMP "/budget.csv", list);
	free(list);
	/* 10 RCPTs a minute per host: 14 RCPTs (with the probe) cannot all go
	 * at once; the rest waits for the minute to pass instead of being dropped */
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.3", "--providers",
		   EMV_TEST_DATA "/providers-budget.conf", TMP "/budget.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 13);
	for (int i = 0; i < 13; i++) /* accept.test knows none of them */
		assert_verdict(r.results[i], "undeliverable", "mailbox_not_found");
	/* the server's own log: no 60-second window holds more than 10 RCPTs.
	 * The budget is taken when a session starts and the server logs the
	 * RCPT after the session's greeting and TLS, so allow 1 s of jitter. */
	log = test_read_file(EMV_WORLD_DIR "/smtpd.log");
	for (char *line = log + mark, *nl; *line && n < 64; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		if (strstr(line, " 127.0.0.10 127.0.0.3 RCPT "))
			t[n++] = atoll(line);
	}
	free(log);
	assert_int_equal(n, 14);
	for (int i = 10; i < n; i++)
		if (t[i] - t[i - 10] < 59000)
			fail_msg("RCPT %d came %lld ms after RCPT %d: more than 10 in a minute", i, t[i] - t[i - 10],
				 i - 10);
	print_message("budget: %d RCPTs over %lld ms\n", n, t[n - 1] - t[0]);
	run_free(&r);
}

/* Budgets count RCPTs sent: addresses whose verdict comes from DNS alone
 * (NXDOMAIN, null MX) send none and must not wait for budget.  With 10
 * RCPTs a minute, 60 such addresses took minutes before; now one job each. */
static void do_test_dns_verdicts_spend_no_budget(void **state)
{
	struct run r;
	char *list = malloc(8192);
	uint64_t t0;
	strcpy(list, "email\n");
	for (int i = 1; i <= 30; i++) {
		char line[96];
		snprintf(line, sizeof line, "user%d@no-such-domain-budget.test\nuser%d@nullmx.test\n", i, i);
		strcat(list, line);
	}
	test_write_file(TMP "/dnsonly.csv", list);
	free(list);
	t0 = emv_test_now_ms();
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--providers",
		   EMV_TEST_DATA "/providers-budget.conf", TMP "/dnsonly.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 60);
	for (int i = 0; i < 60; i += 2) {
		assert_verdict(r.results[i], "undeliverable", "no_domain");
		assert_verdict(r.results[i + 1], "undeliverable", "null_mx");
	}
	print_message("60 DNS-only verdicts in %llu ms\n", (unsigned long long)(emv_test_now_ms() - t0));
	assert_true(emv_test_now_ms() - t0 < 30000); /* a budget wait is a whole minute */
	run_free(&r);
}

/* A source pool: blocked.test refuses client 127.0.0.3 ("blocked using
 * zen.spamhaus.org").  One session from .3 hits the block, .3 is
 * quarantined for that provider at once, and every address is asked again
 * from .4 with .4's own HELO name; .3 is not used again.  The recipients
 * are this test's own, so the server log counts only its RCPTs. */
static void do_test_pool_rotates_away_from_blocked_ip(void **state)
{
	struct run r;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	/* the world's DNS has no PTR records: the start-up audit fails them,
	 * and audit_failures = run uses them anyway (the audit has its own test) */
	test_write_file(TMP "/pool.conf",
			"region = test\nmail_from = probe@verifier.test\naudit_failures = run\n"
			"source = 127.0.0.3 poola.verifier.test\nsource = 127.0.0.4 poolb.verifier.test\n");
	test_write_file(TMP "/pool.csv", "email\npoolz1@blocked.test\npoolz2@blocked.test\npoolz3@blocked.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--no-batching", "--pool", TMP "/pool.conf",
		   TMP "/pool.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 3);
	for (int i = 0; i < 3; i++) {
		assert_verdict(r.results[i], "undeliverable", "mailbox_not_found"); /* .4's answer */
		assert_string_equal(sget(r.results[i], "source_ip"), "127.0.0.4");
	}
	/* .3 was tried (round-robin starts there) and blocked once, then never again */
	assert_int_equal(log_count(mark, "127.0.0.14 127.0.0.3 RCPT poolz", NULL, NULL), 1);
	assert_int_equal(log_count(mark, "127.0.0.14 127.0.0.3 RCPT poolz", "554", NULL), 1);
	for (int i = 1; i <= 3; i++) {
		char a[64];
		snprintf(a, sizeof a, "127.0.0.14 127.0.0.4 RCPT poolz%d@blocked.test", i);
		assert_int_equal(log_count(mark, a, NULL, NULL), 1);
	}
	assert_true(log_count(mark, "127.0.0.14 127.0.0.4 EHLO", "poolb.verifier.test", NULL) >= 1);
	assert_int_equal(log_count(mark, "127.0.0.14 127.0.0.4 EHLO", "poola.verifier.test", NULL), 0);
	run_free(&r);
}

/* Budgets per (source address, provider): ratelimit.test answers 450 after
 * 5 RCPTs a minute from one client; with a budget of 5 a minute per source
 * and two sources, 8 addresses are all asked within the minute, no source
 * over its 5 (the server's own log), and no 450.  With one budget for the
 * provider the last 3 would wait a minute. */
static void do_test_pool_budgets_per_source(void **state)
{
	struct run r;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	uint64_t t0 = emv_test_now_ms();
	int a, b;
	test_write_file(TMP "/pool2.conf",
			"region = test\nmail_from = probe@verifier.test\naudit_failures = run\n"
			"source = 127.0.0.51 poolc.verifier.test\nsource = 127.0.0.52 poold.verifier.test\n");
	test_write_file(TMP "/pool2.csv",
			"email\nu11@ratelimit.test\nu12@ratelimit.test\nu13@ratelimit.test\n"
			"u14@ratelimit.test\nu15@ratelimit.test\nu16@ratelimit.test\nu17@ratelimit.test\n"
			"u18@ratelimit.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--no-catch-all-probe", "--pool",
		   TMP "/pool2.conf", "--providers", EMV_TEST_DATA "/providers-pool.conf", TMP "/pool2.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 8);
	for (int i = 0; i < 8; i++)
		assert_verdict(r.results[i], "deliverable", "accepted");
	a = log_count(mark, "127.0.0.29 127.0.0.51 RCPT", NULL, NULL);
	b = log_count(mark, "127.0.0.29 127.0.0.52 RCPT", NULL, NULL);
	print_message("RCPTs per source: %d and %d, in %llu ms\n", a, b, (unsigned long long)(emv_test_now_ms() - t0));
	assert_int_equal(a + b, 8);
	assert_true(a <= 5 && b <= 5);
	assert_int_equal(log_count(mark, "127.0.0.29 127.0.0.5", "rate-limited", NULL), 0);
	assert_true(emv_test_now_ms() - t0 < 45000);
	run_free(&r);
}

/* RCPTs in smtpd.log after `from` from client ip to server, sent within
 * ms of the first of them. */
static int rcpts_within(long from, const char *server, const char *ip_prefix, uint64_t ms)
{
	char *log = test_read_file(EMV_WORLD_DIR "/smtpd.log");
	char pair[64];
	uint64_t first = 0;
	int n = 0;
	snprintf(pair, sizeof pair, " %s %s", server, ip_prefix);
	assert_non_null(log);
	for (char *line = log + from, *nl; *line; line = nl + 1) {
		uint64_t t;
		if (!(nl = strchr(line, '\n')))
			break;
		*nl = '\0';
		if (!strstr(line, pair) || !strstr(line, " RCPT "))
			continue;
		t = strtoull(line, NULL, 10);
		if (!first)
			first = t;
		if (t - first < ms)
			n++;
	}
	free(log);
	return n;
}

/* Flights of RCPTs in smtpd.log after `from` between server and client: RCPT
 * lines more than 50 ms after the one before start a new flight (the
 * server reads a pipelined flight at once). */
static int rcpt_flights(long from, const char *server, const char *client, int *rcpts)
{
	char *log = test_read_file(EMV_WORLD_DIR "/smtpd.log");
	char pair[64];
	uint64_t last = 0;
	int flights = 0;
	snprintf(pair, sizeof pair, " %s %s RCPT ", server, client);
	assert_non_null(log);
	*rcpts = 0;
	for (char *line = log + from, *nl; *line; line = nl + 1) {
		uint64_t t;
		if (!(nl = strchr(line, '\n')))
			break;
		*nl = '\0';
		if (!strstr(line, pair))
			continue;
		t = strtoull(line, NULL, 10);
		if (!last || t - last > 50)
			flights++;
		last = t;
		(*rcpts)++;
	}
	free(log);
	return flights;
}

/* A server that takes one recipient per transaction (onercpt.test: 452
 * 4.5.3 for the second, every flight answered 100 ms later) gets several
 * transactions per flight: RSET, MAIL and RCPT pipelined, never more RCPTs
 * in flight than errors left.  One transaction per round trip (RSET alone,
 * then MAIL+RCPT) made it a flight per recipient. */
static void do_test_one_recipient_server_pipelined(void **state)
{
	struct run r;
	char list[1024] = "email\n";
	int flights, rcpts;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	for (int i = 1; i <= 16; i++) {
		char line[64];
		snprintf(line, sizeof line, i <= 12 ? "u%d@onercpt.test\n" : "x%d@onercpt.test\n", i);
		strcat(list, line);
	}
	test_write_file(TMP "/onercpt.csv", list);
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.8", TMP "/onercpt.csv",
		   NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 16);
	for (int i = 0; i < 16; i++)
		assert_verdict(r.results[i], i < 12 ? "deliverable" : "undeliverable",
			       i < 12 ? "accepted" : "mailbox_not_found");
	flights = rcpt_flights(mark, "127.0.0.57", "127.0.0.8", &rcpts);
	print_message("onercpt.test: %d RCPTs in %d flights\n", rcpts, flights);
	assert_true(rcpts >= 17); /* 16 and the catch-all probe, 452s re-sent */
	assert_true(flights <= 8);
	assert_int_equal(log_count(mark, "127.0.0.57 127.0.0.8 CONNECT", NULL, NULL), 1);
	run_free(&r);
}

/* Both budgets at once: 5 RCPTs a minute per source and 6 a minute for the
 * pool together (pool_rcpt_per_minute).  Of 8 addresses, 6 are asked at
 * once, no source over its 5, and the last 2 wait for the minute to pass -
 * the server's own log says when each RCPT came. */
static void do_test_pool_wide_budget(void **state)
{
	struct run r;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	int a, b;
	test_write_file(TMP "/pool3.conf",
			"region = test\nmail_from = probe@verifier.test\naudit_failures = run\n"
			"source = 127.0.0.53 poole.verifier.test\nsource = 127.0.0.54 poolf.verifier.test\n");
	test_write_file(TMP "/pool3.csv",
			"email\nu21@ratelimit.test\nu22@ratelimit.test\nu23@ratelimit.test\n"
			"u24@ratelimit.test\nu25@ratelimit.test\nu26@ratelimit.test\nu27@ratelimit.test\n"
			"u28@ratelimit.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--no-catch-all-probe", "--pool",
		   TMP "/pool3.conf", "--providers", EMV_TEST_DATA "/providers-poolwide.conf", TMP "/pool3.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 8);
	for (int i = 0; i < 8; i++)
		assert_verdict(r.results[i], "deliverable", "accepted");
	a = log_count(mark, "127.0.0.29 127.0.0.53 RCPT", NULL, NULL);
	b = log_count(mark, "127.0.0.29 127.0.0.54 RCPT", NULL, NULL);
	print_message("RCPTs per source: %d and %d; in the first 50 s: %d\n", a, b,
		      rcpts_within(mark, "127.0.0.29", "127.0.0.5", 50000));
	assert_int_equal(a + b, 8);
	assert_int_equal(rcpts_within(mark, "127.0.0.29", "127.0.0.5", 50000), 6);
	assert_int_equal(log_count(mark, "127.0.0.29 127.0.0.5", "rate-limited", NULL), 0);
	run_free(&r);
}

static void do_test_provider_policy_applies(void **state)
{
	struct run r;
	int total, peak;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	test_write_file(TMP "/policy.csv", "email\nalice@accept.test\nbob@accept.test\ncarol@accept.test\n"
					   "nobody@accept.test\npostmaster@accept.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.7", "--providers",
		   EMV_TEST_DATA "/providers-policy.conf", TMP "/policy.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 5);
	/* accepts_all: a 250 proves nothing; a 550 still does */
	assert_verdict(r.results[0], "risky", "catch_all");
	assert_verdict(r.results[3], "undeliverable", "mailbox_not_found");
	/* 2 recipients per session, one session at a time, no catch-all probe */
	peak = log_concurrency(mark, "127.0.0.10", "127.0.0.7", &total);
	assert_int_equal(total, 3);
	assert_int_equal(peak, 1);
	assert_int_equal(log_count(mark, "127.0.0.10 127.0.0.7 RCPT", NULL, NULL), 5);
	run_free(&r);
}

static void do_test_421_backs_off(void **state)
{
	struct run r;
	long long t[2];
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	test_write_file(TMP "/busy.csv", "email\nalice@busy.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.4", "--retry-schedule",
		   "1,1,1", "--max-attempts", "2", TMP "/busy.csv", NULL);
	assert_exit(&r, 0);
	assert_string_equal(sget(r.results[0], "status"), "unknown");
	assert_int_equal(smtp_code(r.results[0]), 421);
	/* the retry was due after 1 s, but the host said 421: it waits out
	 * the host's back-off (5 s) first */
	log_connect_times(mark, "127.0.0.27", "127.0.0.4", t);
	assert_true(t[0] > 0 && t[1] > 0);
	print_message("421 back-off: second connection %lld ms after the first\n", t[1] - t[0]);
	assert_true(t[1] - t[0] >= 4500);
	run_free(&r);
}

/* Sessions of one server (by its and the client's address), in log order
 * (the run uses --concurrency 1, so they do not overlap): how many there
 * were, and a bit per session (1..31) that saw the server slow down or
 * hang up for errors (TARPIT / ABUSE lines). */
static int log_sessions_tarpitted(long from, const char *server, const char *client, unsigned *mask)
{
	char *log = test_read_file(EMV_WORLD_DIR "/smtpd.log"), pre[64];
	int n = 0;
	assert_non_null(log);
	snprintf(pre, sizeof pre, " %s %s ", server, client);
	*mask = 0;
	for (char *line = log + from, *nl; *line; line = nl + 1) {
		char *p;
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		if (!(p = strstr(line, pre)))
			continue;
		p += strlen(pre);
		if (strncmp(p, "CONNECT", 7) == 0)
			n++;
		else if ((strncmp(p, "TARPIT", 6) == 0 || strncmp(p, "ABUSE", 5) == 0) && n > 0 && n < 32)
			*mask |= 1u << (n - 1);
	}
	free(log);
	return n;
}

static void write_harvest_list(const char *path, const char *domain, int unknown)
{
	char *list = malloc(8192), line[96];
	strcpy(list, "email\n");
	for (int i = 1; i <= unknown; i++) {
		snprintf(line, sizeof line, "nobody%d@%s\n", i, domain);
		strcat(list, line);
		if (i == 5 || i == 10 || i == 15) { /* the known users among them */
			snprintf(line, sizeof line, "%s@%s\n", i == 5 ? "alice" : i == 10 ? "bob" : "carol", domain);
			strcat(list, line);
		}
	}
	test_write_file(path, list);
	free(list);
}

static void assert_harvest_verdicts(struct run *r, int n)
{
	assert_int_equal(r->n, n);
	for (int i = 0; i < r->n; i++) {
		const char *email = sget(r->results[i], "email");
		if (strncmp(email, "nobody", 6) == 0)
			assert_verdict(r->results[i], "undeliverable", "mailbox_not_found");
		else
			assert_verdict(r->results[i], "deliverable", "accepted");
	}
}

/* Postfix's default limits (10 errors: every reply 1 s late; 20: 421): 27
 * unknown users and the catch-all probe are 28 errors; the default budget
 * of 8 per session spreads them over 4 sessions, none of them slowed down. */
static void do_test_error_budget_under_postfix_limits(void **state)
{
	struct run r;
	unsigned mask;
	int sessions;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	write_harvest_list(TMP "/harvest.csv", "harvest.test", 27);
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.7", "--concurrency", "1",
		   TMP "/harvest.csv", NULL);
	assert_exit(&r, 0);
	assert_harvest_verdicts(&r, 30);
	sessions = log_sessions_tarpitted(mark, "127.0.0.32", "127.0.0.7", &mask);
	print_message("harvest.test: %d sessions for 30 addresses, tarpitted mask %#x\n", sessions, mask);
	assert_int_equal(mask, 0);
	/* 8 + 8 + 8 + 4 errors; one more if a loaded machine made a reply look
	 * like a tarpit (the budget then shrinks: more sessions, never worse) */
	assert_true(sessions >= 4 && sessions <= 5);
	assert_non_null(strstr(r.err, "ended by the error budget"));
	assert_null(strstr(r.err, " 0 ended by the error budget"));
	run_free(&r);
}

/* One reply late after errors is no tarpit (hiccup.test: once per session,
 * the reply after the 2nd rejection comes 1.5 s late, the rest at once;
 * Postfix does that when it is busy).  Taken for one, it taught the host
 * "at most 1 error per session" and 28 errors took 28 sessions; now the next
 * reply tells, and the budget of 8 stays. */
static void do_test_one_late_reply_is_no_tarpit(void **state)
{
	struct run r;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	int sessions;
	write_harvest_list(TMP "/hiccup.csv", "hiccup.test", 27);
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.7", "--concurrency", "1",
		   "-vv", TMP "/hiccup.csv", NULL);
	assert_exit(&r, 0);
	assert_harvest_verdicts(&r, 30);
	sessions = log_count(mark, "127.0.0.58 127.0.0.7 CONNECT", NULL, NULL);
	print_message("hiccup.test: %d sessions for 30 addresses\n", sessions);
	assert_true(log_count(mark, "127.0.0.58 127.0.0.7 HICCUP", NULL, NULL) >= 1);
	assert_non_null(strstr(r.err, "late after 2 errors"));
	assert_null(strstr(r.err, "the server tarpits"));
	assert_true(sessions >= 4 && sessions <= 6);
	run_free(&r);
}

/* Four domains, one mail server (shared1..4.test, all on mx.shared.test):
 * the connection that answered one domain's recipients asks the next
 * domain's (RSET, MAIL, RCPT) instead of a new connection per domain, ends
 * with QUIT, and its errors (the catch-all probes, an unknown user) count
 * across the domains it served. */
static void do_test_one_connection_for_domains_of_one_server(void **state)
{
	struct run r;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	int conns, quits, rsets;
	test_write_file(TMP "/shared.csv", "email\nalice@shared1.test\nbob@shared1.test\nalice@shared2.test\n"
					    "zed@shared2.test\nalice@shared3.test\nbob@shared3.test\n"
					    "alice@shared4.test\nbob@shared4.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.7", "--concurrency", "1",
		   "-v", TMP "/shared.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 8);
	for (int i = 0; i < r.n; i++) {
		if (strncmp(sget(r.results[i], "email"), "zed@", 4) == 0)
			assert_verdict(r.results[i], "undeliverable", "mailbox_not_found");
		else
			assert_verdict(r.results[i], "deliverable", "accepted");
	}
	conns = log_count(mark, "127.0.0.59 127.0.0.7 CONNECT", NULL, NULL);
	quits = log_count(mark, "127.0.0.59 127.0.0.7 QUIT", NULL, NULL);
	rsets = log_count(mark, "127.0.0.59 127.0.0.7 RSET", NULL, NULL);
	print_message("shared*.test: %d connection(s), %d RSET, %d QUIT for 4 domains\n", conns, rsets, quits);
	assert_int_equal(conns, 1);
	assert_int_equal(quits, 1);
	assert_true(rsets >= 3); /* the next domain begins with RSET */
	assert_non_null(strstr(r.err, "SMTP sessions 1 "));
	run_free(&r);
}

/* A stricter server (3 errors: replies 1 s late; 6: 421): the first session
 * finds the tarpit, the engine remembers the host's limit, and no later
 * session is slowed down or cut off; no verdict is lost on the way. */
static void do_test_error_budget_learns_tarpit(void **state)
{
	struct run r;
	unsigned mask;
	int sessions;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	write_harvest_list(TMP "/strict.csv", "strict.test", 17);
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.7", "--concurrency", "1",
		   "-v", TMP "/strict.csv", NULL);
	assert_exit(&r, 0);
	assert_harvest_verdicts(&r, 20);
	sessions = log_sessions_tarpitted(mark, "127.0.0.33", "127.0.0.7", &mask);
	print_message("strict.test: %d sessions for 20 addresses, tarpitted mask %#x\n", sessions, mask);
	assert_int_equal(mask, 1); /* the first session only */
	assert_true(sessions >= 2);
	assert_non_null(strstr(r.err, "at most 2 errors per session"));
	run_free(&r);
}

/* What points verify at the world, and nothing else: the retry settings stay
 * the defaults (world_args shortens them). */
#define WORLD_ONLY                                                                                                    \
	"--dns", "127.0.0.1:5300", "--smtp-port", "2525", "--allow-private-mx", "--mail-from", "probe@verifier.test", \
		"--helo", "probe.verifier.test", "--preflight-domains", "accept.test", "--providers",                 \
		EMV_TEST_DATA "/providers-test.conf"

/* With the default retry settings, a list with something of every slow kind
 * is done in minutes and every verdict is right: greylisting passes at the
 * retry, a blocked source and full mailboxes are final at once, unreachable
 * hosts get one retry, and nothing sits out a 15-minute schedule. */
static void do_test_stragglers_finish_in_minutes(void **state)
{
	struct run r;
	test_write_file(TMP "/slowkinds.csv", "email\nalice@accept.test\nfull@accept.test\nquota@accept.test\n"
					      "alice@greylist.test\nalice@blocked.test\nx@down1.test\nx@down2.test\n");
	/* only what points at the world: the retry settings are the defaults */
	run_verify(&r, 0, WORLD_ONLY, "--source-ip", "127.0.0.3", "--format", "jsonl", "--progress", "lines",
		   TMP "/slowkinds.csv", NULL);
	assert_exit(&r, 0);
	print_message("every slow kind: %.1f s\n", r.seconds);
	assert_true(r.seconds < 180);
	assert_int_equal(r.n, 7);
	assert_verdict(find(&r, "alice@accept.test"), "deliverable", "accepted");
	assert_verdict(find(&r, "full@accept.test"), "risky", "mailbox_full");
	assert_verdict(find(&r, "quota@accept.test"), "risky", "mailbox_full");
	assert_verdict(find(&r, "alice@greylist.test"), "deliverable", "accepted");
	assert_verdict(find(&r, "alice@blocked.test"), "unknown", "blocked");
	assert_verdict(find(&r, "x@down1.test"), "unknown", "connection_failed");
	assert_verdict(find(&r, "x@down2.test"), "unknown", "connection_failed");
	/* asked once: the blocked source and the full mailbox */
	assert_int_equal(json_integer_value(json_object_get(find(&r, "alice@blocked.test"), "attempts")), 1);
	assert_int_equal(json_integer_value(json_object_get(find(&r, "quota@accept.test"), "attempts")), 1);
	/* the unreachable hosts: one retry */
	assert_int_equal(json_integer_value(json_object_get(find(&r, "x@down1.test"), "attempts")), 2);
	run_free(&r);
}

/* --deadline: what still waits is final at the deadline, with its last
 * answer as evidence. */
static void do_test_deadline(void **state)
{
	struct run r;
	json_t *g;
	char list[128], grey[64];
	/* a recipient the greylisting server has never seen: 451 first */
	snprintf(grey, sizeof grey, "dl%d@greylist.test", (int)getpid());
	snprintf(list, sizeof list, "email\nbob@accept.test\n%s\n", grey);
	test_write_file(TMP "/deadline.csv", list);
	run_verify(&r, 0, WORLD_ONLY, "--source-ip", "127.0.0.8", "--format", "jsonl", "--progress", "none",
		   "--deadline", "4s", TMP "/deadline.csv", NULL);
	assert_exit(&r, 0);
	print_message("deadline 4 s: done in %.1f s\n", r.seconds);
	assert_true(r.seconds < 15);
	assert_int_equal(r.n, 2);
	assert_verdict(find(&r, "bob@accept.test"), "deliverable", "accepted");
	g = find(&r, grey);
	assert_verdict(g, "unknown", "greylisted");
	assert_non_null(strstr(sget(g, "detail"), "deadline"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(g, "smtp"), "code")), 451);
	assert_non_null(strstr(r.err, "made final by the time limit"));
	run_free(&r);
}

static void do_test_threads_same_verdicts(void **state)
{
	struct run r1, r2;
	test_write_file(TMP "/threads.csv", "email\nalice@accept.test\nnobody@accept.test\nx@catchall.test\n"
					    "x@nullmx.test\nu1@toomany.test\nalice@multiline.test\nalice@nomx.test\n");
	run_verify(&r1, 1, "--format", "jsonl", "--progress", "none", TMP "/threads.csv", NULL);
	run_verify(&r2, 1, "--format", "jsonl", "--progress", "none", "--threads", "3", TMP "/threads.csv", NULL);
	assert_exit(&r1, 0);
	assert_exit(&r2, 0);
	assert_int_equal(r1.n, 7);
	assert_int_equal(r2.n, 7);
	for (int i = 0; i < 7; i++) {
		assert_string_equal(sget(r1.results[i], "email"), sget(r2.results[i], "email"));
		assert_string_equal(sget(r1.results[i], "status"), sget(r2.results[i], "status"));
		assert_string_equal(sget(r1.results[i], "reason"), sget(r2.results[i], "reason"));
	}
	assert_verdict(r2.results[2], "risky", "catch_all");
	run_free(&r1);
	run_free(&r2);
}

static void do_test_no_batching_baseline(void **state)
{
	struct run r;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	test_write_file(TMP "/nobatch.csv", "email\nalice@accept.test\nbob@accept.test\ncarol@accept.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--no-batching", "--source-ip", "127.0.0.7",
		   TMP "/nobatch.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(log_count(mark, "127.0.0.10 127.0.0.7 CONNECT", NULL, NULL), 3);
	run_free(&r);
}

static void do_test_greylisting_retried_on_schedule(void **state)
{
	struct run r;
	test_write_file(TMP "/grey.csv", "email\nbob@greylist.test\nnobody@greylist.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.8", "--retry-schedule",
		   "3,3,3", TMP "/grey.csv", NULL);
	assert_exit(&r, 0);
	assert_verdict(r.results[0], "deliverable", "accepted");
	assert_true(json_integer_value(json_object_get(r.results[0], "attempts")) >= 2);
	assert_verdict(r.results[1], "undeliverable", "mailbox_not_found");
	run_free(&r);
	/* out of retries: unknown/greylisted with the server's reply */
	test_write_file(TMP "/grey2.csv", "email\ncarol@greylist.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.8", "--max-attempts", "1",
		   TMP "/grey2.csv", NULL);
	assert_verdict(r.results[0], "unknown", "greylisted");
	run_free(&r);
}

static void do_test_resume_after_interrupt(void **state)
{
	const char *out = TMP "/resume.out.csv", *journal = TMP "/resume.out.csv.journal";
	struct run r;
	pid_t pid;
	int status, waited = 0;
	long mark;
	char *text;

	test_write_file(TMP "/resume.csv", "email\nalice@accept.test\nbob@accept.test\ncarol@accept.test\n"
					   "postmaster@accept.test\nalice@tarpit.test\n");
	unlink(out);
	unlink(journal);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 2);
		execl(EMV_BIN, EMV_BIN, "verify", "--dns", "127.0.0.1:5300", "--smtp-port", "2525",
		      "--allow-private-mx", "--mail-from", "probe@verifier.test", "--helo", "probe.verifier.test",
		      "--source-ip", "127.0.0.2", "--timeout", "60", "--progress", "none", "--preflight-domains",
		      "accept.test", "-o", out, TMP "/resume.csv", (char *)NULL);
		_exit(127);
	}
	/* wait until the four accept.test verdicts are in the journal; the
	 * tarpit keeps the run going */
	for (;;) {
		char *j = test_read_file(journal);
		int lines = 0;
		for (char *p = j; p && *p; p++)
			lines += *p == '\n';
		free(j);
		if (lines >= 4)
			break;
		assert_true(++waited < 200);
		usleep(50000);
	}
	usleep(1200000); /* the journal is flushed at least every second */
	kill(pid, SIGINT);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 130);
	assert_true(test_file_size(journal) > 0);
	assert_int_equal(test_file_size(out), 0);

	mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	run_verify(&r, 1, "--resume", "--timeout", "1", "--max-attempts", "1", "--progress", "none", "--source-ip",
		   "127.0.0.2", "-o", out, TMP "/resume.csv", NULL);
	assert_exit(&r, 0);
	/* nothing finished before the interruption is asked again */
	assert_int_equal(log_count(mark, "127.0.0.10 127.0.0.2 CONNECT", NULL, NULL), 0);
	text = test_read_file(out);
	assert_non_null(strstr(text, "\nalice@accept.test,deliverable,accepted,"));
	/* a role address: risky under the default policy (docs/policy.md) */
	assert_non_null(strstr(text, "\npostmaster@accept.test,risky,role,false,"));
	assert_non_null(strstr(text, "\nalice@tarpit.test,unknown,timeout,"));
	free(text);
	run_free(&r);
}

/* Issue 15: a 5.7.1 at RCPT for one recipient while others of the domain
 * were accepted in the same session is about that recipient.  closed@ is
 * first in the list, so with pipelining its refusal arrives before the
 * acceptances: the verdict must wait for the whole session. */
static void do_test_policy_refusal_per_recipient(void **state)
{
	struct run r;
	json_t *o;
	test_write_file(TMP "/policyone.csv",
			"email\nclosed@policyone.test\nalice@policyone.test\nbob@policyone.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", TMP "/policyone.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 3);
	o = find(&r, "closed@policyone.test");
	assert_verdict(o, "undeliverable", "policy_rejected");
	assert_string_equal(sget(json_object_get(o, "smtp"), "enhanced"), "5.7.1");
	assert_non_null(
		strstr(sget(o, "detail"), "2 other recipients of the domain were accepted in the same session"));
	assert_verdict(find(&r, "alice@policyone.test"), "deliverable", "accepted");
	run_free(&r);

	/* asked alone, nothing in its session shows the server accepts us */
	run_check(&r, 1, "closed@policyone.test", NULL);
	o = one(&r);
	assert_verdict(o, "unknown", "policy_rejected");
	run_free(&r);
}

/* Everyone (the random probe too) refused with 5.7.1: it may be about us. */
static void do_test_policy_refusal_of_everyone_stays_unknown(void **state)
{
	struct run r;
	test_write_file(TMP "/policyall.csv",
			"email\nalice@policyall.test\nbob@policyall.test\ncarol@policyall.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", TMP "/policyall.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 3);
	for (int i = 0; i < 3; i++) {
		assert_verdict(r.results[i], "unknown", "policy_rejected");
		assert_non_null(strstr(sget(r.results[i], "detail"), "no recipient was accepted"));
	}
	run_free(&r);
}

/* On a domain that accepts any recipient, neither the random probe nor
 * another accepted address shows that real mailboxes accept us. */
static void do_test_policy_refusal_probe_alone_is_no_evidence(void **state)
{
	struct run r;
	json_t *o;
	run_check(&r, 1, "closed@policycatch.test", NULL);
	o = one(&r);
	assert_verdict(o, "unknown", "policy_rejected");
	assert_non_null(strstr(sget(o, "detail"), "the domain accepts any recipient"));
	run_free(&r);
	test_write_file(TMP "/policycatch.csv", "email\nclosed@policycatch.test\nanyone@policycatch.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", TMP "/policycatch.csv", NULL);
	assert_exit(&r, 0);
	o = find(&r, "closed@policycatch.test");
	assert_verdict(o, "unknown", "policy_rejected");
	assert_non_null(strstr(sget(o, "detail"), "the domain accepts any recipient"));
	assert_verdict(find(&r, "anyone@policycatch.test"), "risky", "catch_all");
	run_free(&r);
}

/* Issue 15: a provider with catch_all_probe = no gets no random RCPT; the
 * same list without that policy does (so the count can tell). */
static void do_test_catch_all_probe_skipped_by_provider(void **state)
{
	struct run r;
	json_t *o;
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	test_write_file(TMP "/noprobe.csv", "email\nalice@noprobe.test\nbob@noprobe.test\nnobody@noprobe.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--providers",
		   EMV_TEST_DATA "/providers-noprobe.conf", TMP "/noprobe.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 3);
	assert_verdict(r.results[0], "deliverable", "accepted");
	assert_verdict(r.results[2], "undeliverable", "mailbox_not_found");
	assert_int_equal(log_count(mark, " 127.0.0.37 ", " RCPT ", NULL), 3);
	assert_int_equal(log_count(mark, " 127.0.0.37 ", " RCPT ", "nobody@"), 1);
	run_free(&r);

	mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", TMP "/noprobe.csv", NULL);
	assert_exit(&r, 0);
	assert_int_equal(log_count(mark, " 127.0.0.37 ", " RCPT ", NULL), 4); /* 3 + the probe */
	run_free(&r);

	/* the provider's verdict_note explains an unknown to the user (verify:
	 * `check` does not apply provider policies) */
	test_write_file(TMP "/held.csv", "email\nheld@noprobe.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--providers",
		   EMV_TEST_DATA "/providers-noprobe.conf", TMP "/held.csv", NULL);
	o = one(&r);
	assert_verdict(o, "unknown", "policy_rejected");
	assert_non_null(strstr(sget(o, "detail"), "no recipient was accepted"));
	assert_non_null(strstr(sget(o, "detail"), "test platform: 451 4.4.4 for real and invented addresses alike"));
	run_free(&r);
	/* and only for that provider's hosts */
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", TMP "/held.csv", NULL);
	o = one(&r);
	assert_null(strstr(sget(o, "detail"), "test platform"));
	run_free(&r);
}

/* Issue 16: verify --cache FILE.  The second run opens no SMTP session for
 * the verdicts it has (the test server's log says so), asks again what is
 * unknown or too old, --fresh asks everything, a forgotten address is asked
 * again, and a file that is not a cache stops the run before any probe. */
static int rcpts_for(long from, const char *pair, const char *who)
{
	return log_count(from, pair, " RCPT ", who);
}

static void do_test_cache_file(void **state)
{
	const char *cache = TMP "/verdicts.db", *pair = "127.0.0.10 127.0.0.8 ";
	const char *list = TMP "/cache.csv";
	struct run r;
	long mark;
	char out[4096];
	(void)state;

	unlink(cache);
	test_write_file(list, "email\nalice@accept.test\nbob@accept.test\nnobody@accept.test\nalice@greylist.test\n"
			      "alice@ACCEPT.test\n");
#define VERIFY(...)                                                                                                \
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.8", "--max-attempts", \
		   "1", "--cache", cache, __VA_ARGS__, list, NULL)

	/* first run: everything is asked; three verdicts are stored (the
	 * greylisted one is unknown: never stored) */
	mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	VERIFY("--threads", "1");
	assert_exit(&r, 0);
	assert_int_equal(r.n, 5);
	assert_verdict(r.results[0], "deliverable", "accepted");
	assert_verdict(r.results[3], "unknown", "greylisted");
	assert_true(json_is_false(json_object_get(r.results[0], "cached")));
	assert_true(json_is_string(json_object_get(r.results[0], "verified_at")));
	assert_true(rcpts_for(mark, pair, "alice@accept.test") >= 1);
	assert_non_null(strstr(r.err, "cached rows 0 (0 unique addresses answered from"));
	assert_non_null(strstr(r.err, "3 verdicts stored in it"));
	run_free(&r);

	/* second run: the fresh verdicts come from the file, no session to
	 * accept.test at all; the unknown one is asked again */
	mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	VERIFY("--threads", "1");
	assert_exit(&r, 0);
	assert_int_equal(r.n, 5);
	assert_int_equal(log_count(mark, "127.0.0.10 127.0.0.8 CONNECT", NULL, NULL), 0);
	assert_int_equal(log_count(mark, "127.0.0.12 127.0.0.8 CONNECT", NULL, NULL), 1);
	assert_verdict(r.results[0], "deliverable", "accepted");
	assert_verdict(r.results[2], "undeliverable", "mailbox_not_found");
	for (int i = 0; i < 5; i++)
		assert_int_equal(json_is_true(json_object_get(r.results[i], "cached")), i != 3);
	assert_true(json_is_string(json_object_get(r.results[1], "verified_at")));
	assert_int_equal(json_integer_value(json_object_get(r.results[4], "duplicate_of_row")), 1);
	assert_non_null(strstr(r.err, "cached rows 4 (3 unique addresses answered from"));
	run_free(&r);

	/* stale: undeliverable may be 1 s old; after 2 s only nobody@ is asked */
	sleep(2);
	mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	VERIFY("--cache-ages", "undeliverable=1s");
	assert_exit(&r, 0);
	assert_int_equal(rcpts_for(mark, pair, "nobody@accept.test"), 1);
	assert_int_equal(rcpts_for(mark, pair, "alice@accept.test"), 0);
	assert_int_equal(rcpts_for(mark, pair, "bob@accept.test"), 0);
	assert_true(json_is_false(json_object_get(r.results[2], "cached")));
	assert_true(json_is_true(json_object_get(r.results[0], "cached")));
	run_free(&r);

	/* --max-age shorter than the verdicts' age asks again; so does --fresh */
	sleep(1);
	mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	VERIFY("--fresh");
	assert_exit(&r, 0);
	assert_int_equal(rcpts_for(mark, pair, "alice@accept.test"), 1);
	assert_int_equal(rcpts_for(mark, pair, "bob@accept.test"), 1);
	for (int i = 0; i < 5; i++)
		assert_true(json_is_false(json_object_get(r.results[i], "cached")));
	run_free(&r);

	/* forgotten: asked again, the others not */
	{
		char *said;
		snprintf(out, sizeof out, "%s forget --cache %s alice@ACCEPT.test >%s/forget.out 2>&1", EMV_BIN, cache,
			 TMP);
		assert_int_equal(system(out), 0);
		said = test_read_file(TMP "/forget.out");
		assert_non_null(strstr(said, "alice@accept.test: forgotten"));
		free(said);
	}
	mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	VERIFY("--threads", "1");
	assert_exit(&r, 0);
	assert_int_equal(rcpts_for(mark, pair, "alice@accept.test"), 1);
	assert_int_equal(rcpts_for(mark, pair, "bob@accept.test"), 0);
	assert_true(json_is_false(json_object_get(r.results[0], "cached")));
	assert_true(json_is_true(json_object_get(r.results[1], "cached")));
	run_free(&r);

	/* not a cache file: exit 2 naming the file, nothing asked */
	test_write_file(TMP "/not-a-cache.db", "email\nalice@accept.test\n");
	mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "none", "--source-ip", "127.0.0.8", "--cache",
		   TMP "/not-a-cache.db", list, NULL);
	assert_exit(&r, 2);
	assert_non_null(strstr(r.err, TMP "/not-a-cache.db"));
	assert_int_equal(r.n, 0);
	assert_int_equal(log_count(mark, "127.0.0.8 CONNECT", NULL, NULL), 0);
	run_free(&r);
	/* the cache's options without a cache */
	run_verify(&r, 1, "--progress", "none", "--fresh", list, NULL);
	assert_exit(&r, 2);
	assert_non_null(strstr(r.err, "--fresh needs --cache FILE"));
	run_free(&r);
#undef VERIFY
}


static void do_test_port25_blocked_diagnosis(void **state)
{
	int lfd[5], cfd[5];
	struct run r;
	/* five "mail servers" whose accept queue is full: further SYNs are
	 * dropped, so connecting to them times out, as behind a port-25 block */
	for (int i = 0; i < 5; i++) {
		struct sockaddr_in a;
		int one = 1;
		memset(&a, 0, sizeof a);
		a.sin_family = AF_INET;
		a.sin_port = htons(2525);
		a.sin_addr.s_addr = htonl(0x7f000028u + (unsigned)i); /* 127.0.0.40 + i */
		lfd[i] = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(lfd[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		assert_int_equal(bind(lfd[i], (struct sockaddr *)&a, sizeof a), 0);
		assert_int_equal(listen(lfd[i], 0), 0);
		cfd[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(connect(cfd[i], (struct sockaddr *)&a, sizeof a), 0);
	}
	test_write_file(TMP "/p25.csv", "email\nx@p25a.test\nx@p25b.test\nx@p25c.test\nx@p25d.test\nx@p25e.test\n");
	run_verify(&r, 1, "--format", "jsonl", "--progress", "lines", "--timeout", "2", "--retry-schedule", "30,30,30",
		   TMP "/p25.csv", NULL);
	for (int i = 0; i < 5; i++) {
		close(cfd[i]);
		close(lfd[i]);
	}
	assert_exit(&r, 0);
	assert_int_equal(r.n, 5);
	for (int i = 0; i < 5; i++)
		assert_verdict(r.results[i], "unknown", "port25_blocked");
	assert_non_null(strstr(r.err, "port 25"));
	assert_true(r.seconds < 20.0); /* not sitting out the 30 s retry schedule */
	run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_order_duplicates_and_bad_rows),
		cmocka_unit_test(do_test_csv_output_file),
		cmocka_unit_test(do_test_verdict_policy),
		cmocka_unit_test(do_test_gzip_and_stdin),
		cmocka_unit_test(do_test_bad_files),
		cmocka_unit_test(do_test_long_line_and_bad_utf8_kept_apart),
		cmocka_unit_test(do_test_one_session_per_domain),
		cmocka_unit_test(do_test_sessions_per_mx_limit),
		cmocka_unit_test(do_test_one_recipient_server_pipelined),
		cmocka_unit_test(do_test_rcpt_budget_waits),
		cmocka_unit_test(do_test_dns_verdicts_spend_no_budget),
		cmocka_unit_test(do_test_pool_rotates_away_from_blocked_ip),
		cmocka_unit_test(do_test_pool_budgets_per_source),
		cmocka_unit_test(do_test_pool_wide_budget),
		cmocka_unit_test(do_test_provider_policy_applies),
		cmocka_unit_test(do_test_421_backs_off),
		cmocka_unit_test(do_test_error_budget_under_postfix_limits),
		cmocka_unit_test(do_test_error_budget_learns_tarpit),
		cmocka_unit_test(do_test_one_late_reply_is_no_tarpit),
		cmocka_unit_test(do_test_one_connection_for_domains_of_one_server),
		cmocka_unit_test(do_test_stragglers_finish_in_minutes),
		cmocka_unit_test(do_test_deadline),
		cmocka_unit_test(do_test_cache_file),
		cmocka_unit_test(do_test_threads_same_verdicts),
		cmocka_unit_test(do_test_no_batching_baseline),
		cmocka_unit_test(do_test_greylisting_retried_on_schedule),
		cmocka_unit_test(do_test_resume_after_interrupt),
		cmocka_unit_test(do_test_port25_blocked_diagnosis),
		cmocka_unit_test(do_test_policy_refusal_per_recipient),
		cmocka_unit_test(do_test_policy_refusal_of_everyone_stays_unknown),
		cmocka_unit_test(do_test_policy_refusal_probe_alone_is_no_evidence),
		cmocka_unit_test(do_test_catch_all_probe_skipped_by_provider),
	};
	return cmocka_run_group_tests_name("verify_world", tests, group_setup, NULL);
}
