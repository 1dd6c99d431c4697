/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cache_run.c - the cluster's verdict cache (docs/cache.md) through
 * `emailverify run`: the same list twice, and the second run opens no SMTP
 * session for what is fresh in the cache (counted in the test SMTP
 * server's log); stale entries, unknown verdicts, --max-age and --fresh
 * are asked again; the global scope serves one tenant from another's
 * verdicts, the tenant scope does not; the export marks cached rows and
 * their verified_at, and the job counts them.  A private PostgreSQL of
 * its own (deploy/local-pg.sh); fixture "world".
 */
#include <sys/stat.h>
#include "cluster_harness.h"
#include "pg_harness.h"

static char url[1024];
static const char *pg_dir = EMV_BUILD_DIR "/cache-pg";
static const char *list = EMV_BUILD_DIR "/cache-list.csv";
static const char *out = EMV_BUILD_DIR "/cache-out.csv";

static int setup(void **state)
{
	char cmd[2048];
	FILE *p, *f;
	(void)state;
	snprintf(cmd, sizeof cmd, "bash %s/deploy/local-pg.sh start %s", EMV_SOURCE_DIR, pg_dir);
	p = popen(cmd, "r");
	if (!p || !fgets(url, sizeof url, p)) {
		fprintf(stderr, "local-pg.sh did not start\n");
		return -1;
	}
	url[strcspn(url, "\n")] = '\0';
	if (pclose(p) != 0)
		return -1;
	/* every test starts from an empty cache and no jobs */
	snprintf(cmd, sizeof cmd, "%s migrate --database '%s' >/dev/null", EMV_COORD, url);
	if (system(cmd) != 0)
		return -1;
	/* deliverable, undeliverable, risky (mailbox_full: a day), risky
	 * (catch_all: a week), unknown (never cached), and a duplicate */
	f = fopen(list, "w");
	if (!f)
		return -1;
	fputs("email\nalice@accept.test\nnobody@accept.test\nfull@accept.test\nx@catchall.test\n"
	      "x@senderreject.test\nalice@accept.test\n",
	      f);
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	char cmd[2048];
	(void)state;
	snprintf(cmd, sizeof cmd, "bash %s/deploy/local-pg.sh stop %s", EMV_SOURCE_DIR, pg_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void db_do(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void db_do(const char *fmt, ...)
{
	char q[2048];
	va_list ap;
	PGconn *c = PQconnectdb(url);
	PGresult *r;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	r = PQexec(c, q);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", q, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

static int reset(void **state)
{
	(void)state;
	db_do("TRUNCATE verdict_cache, results, addresses, jobs CASCADE");
	return 0;
}

/* This test's own source address: the world's log is shared with the tests
 * ctest runs beside it (they ask alice@accept.test too), so only lines from
 * this address are counted. */
#define SRC "127.0.0.240"

/* smtpd.log lines after byte `from` from SRC that contain a and b (b may be
 * NULL). */
static int log_count(long from, const char *a, const char *b)
{
	char *log = test_read_file(EMV_WORLD_DIR "/smtpd.log");
	assert_non_null(log);
	int n = 0;
	for (char *line = log + from, *nl; *line; line = nl + 1) {
		if (!(nl = strchr(line, '\n')))
			break;
		*nl = '\0';
		if (strstr(line, " " SRC " ") && strstr(line, a) && (!b || strstr(line, b)))
			n++;
	}
	free(log);
	return n;
}

/* Sessions opened with accept.test's (127.0.0.10) and catchall.test's
 * (127.0.0.11) servers since `from`. */
#define SESSIONS(from, ip) log_count(from, " " ip " ", "CONNECT")

struct run {
	char job[64];
	long mark; /* smtpd.log size before the run */
	char log[1 << 16];
};

/* `emailverify run` of the list for tenant with extra options (NULL-ended,
 * at most 4); the job id from its log. */
static void run_list(struct run *r, const char *tenant, const char *o1, const char *o2, const char *o3)
{
	const char *argv[] = { EMV_BIN, "run",	    list,   "-o",	 out, "--database",
			       url,	"--tenant", tenant, "--workers", "1", "--source-ip",
			       SRC,	WORLD_OPTS, o1,	    o2,		 o3,  NULL };
	char *p;
	r->mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	if (run_capture(r->log, sizeof r->log, argv, 1) != 0)
		fail_msg("emailverify run failed:\n%s", r->log);
	p = strstr(r->log, "job ");
	assert_non_null(p);
	sscanf(p, "job %63[^:]", r->job);
}

static long job_num(const struct run *r, const char *col)
{
	return pg_long(url, "SELECT %s FROM jobs WHERE id = '%s'", col, r->job);
}

/* The output row of addr (its first), or fail. */
static char *row_of(char *csv, const char *addr, char *buf, size_t len)
{
	char key[256];
	char *p, *nl;
	snprintf(key, sizeof key, "\n%s,", addr);
	if (!(p = strstr(csv, key)))
		fail_msg("no row for %s in\n%s", addr, csv);
	p++;
	nl = strchr(p, '\n');
	snprintf(buf, len, "%.*s", (int)(nl ? nl - p : (long)strlen(p)), p);
	return buf;
}

/* The cached and verified_at columns of the output: which header
 * columns they are, and their values in row. */
static void cached_cols(const char *csv, const char *row, char *cached, char *verified)
{
	char head[1024], r[2048];
	int ci = -1, vi = -1, k = 0;
	sscanf(csv, "%1023[^\n]", head);
	for (char *s = head, *t; (t = strsep(&s, ",")); k++) {
		if (strcmp(t, "cached") == 0)
			ci = k;
		if (strcmp(t, "verified_at") == 0)
			vi = k;
	}
	assert_true(ci >= 0 && vi >= 0);
	snprintf(r, sizeof r, "%s", row);
	k = 0;
	cached[0] = verified[0] = '\0';
	/* the columns before them hold no commas in these rows */
	for (char *s = r, *t; (t = strsep(&s, ",")); k++) {
		if (k == ci)
			snprintf(cached, 16, "%s", t);
		if (k == vi)
			snprintf(verified, 32, "%s", t);
	}
}

/* The second run of a list: fresh verdicts come from the cache, no SMTP
 * session for them; the unknown one is asked again; the export and the
 * counts say which rows were cached. */
static void test_second_run_from_cache(void **state)
{
	static struct run a, b;
	char *csv, row[2048], cached[16], verified[32];
	(void)state;

	run_list(&a, "acme", NULL, NULL, NULL);
	assert_int_equal(job_num(&a, "n_cached"), 0);
	assert_true(SESSIONS(a.mark, "127.0.0.10") >= 1);
	/* four known verdicts cached; the unknown one is not */
	assert_int_equal(pg_long(url, "SELECT count(*) FROM verdict_cache WHERE scope = 'acme'"), 4);
	assert_int_equal(pg_long(url, "SELECT count(*) FROM verdict_cache WHERE address = 'x@senderreject.test'"), 0);
	csv = test_read_file(out);
	assert_non_null(csv);
	cached_cols(csv, row_of(csv, "alice@accept.test", row, sizeof row), cached, verified);
	assert_string_equal(cached, "false");
	assert_true(strlen(verified) == 20); /* 2026-12-07T16:00:00Z: when it became final */
	free(csv);

	run_list(&b, "acme", NULL, NULL, NULL);
	/* nothing asked of accept.test and catchall.test again */
	if (SESSIONS(b.mark, "127.0.0.10") != 0 || SESSIONS(b.mark, "127.0.0.11") != 0)
		fail_msg("the second run opened %d sessions with accept.test, %d with catchall.test; want none",
			 SESSIONS(b.mark, "127.0.0.10"), SESSIONS(b.mark, "127.0.0.11"));
	/* the unknown verdict is asked again */
	assert_true(SESSIONS(b.mark, "127.0.0.28") >= 1);
	assert_int_equal(job_num(&b, "n_cached"), 4);
	assert_int_equal(job_num(&b, "n_final"), 5);
	assert_int_equal(job_num(&b, "n_deliverable"), 1);
	assert_int_equal(job_num(&b, "n_undeliverable"), 1);
	assert_int_equal(job_num(&b, "n_risky"), 2);
	assert_int_equal(job_num(&b, "n_unknown"), 1);
	assert_int_equal(pg_long(url, "SELECT count(*) FROM results WHERE job_id = '%s' AND cached", b.job), 4);
	if (!strstr(b.log, "4 addresses answered from the verdict cache"))
		fail_msg("run's summary does not count the cached rows:\n%s", b.log);
	csv = test_read_file(out);
	assert_non_null(csv);
	cached_cols(csv, row_of(csv, "alice@accept.test", row, sizeof row), cached, verified);
	assert_string_equal(cached, "true");
	assert_true(strlen(verified) == 20);
	/* the verdict and evidence of the first run */
	assert_non_null(strstr(row, "alice@accept.test,deliverable,accepted,"));
	assert_non_null(strstr(row, "mx1.accept.test"));
	/* the duplicate follows its first row */
	{
		char *last = strstr(strstr(csv, "\nalice@accept.test,") + 1, "\nalice@accept.test,");
		assert_non_null(last);
		snprintf(row, sizeof row, "%.*s", (int)strcspn(last + 1, "\n"), last + 1);
		cached_cols(csv, row, cached, verified);
		assert_string_equal(cached, "true");
	}
	cached_cols(csv, row_of(csv, "x@senderreject.test", row, sizeof row), cached, verified);
	assert_string_equal(cached, "false");
	free(csv);
}

/* Entries older than their status's age, or than the job's --max-age,
 * are asked again; --fresh asks everything. */
static void test_stale_max_age_fresh(void **state)
{
	static struct run a, b, c, d;
	(void)state;

	run_list(&a, "acme", NULL, NULL, NULL);
	/* alice's deliverable verdict is 31 days old: past deliverable's 30 */
	db_do("UPDATE verdict_cache SET verified_at = now() - interval '31 days' WHERE address = 'alice@accept.test'");
	/* full's mailbox_full verdict is 2 days old: past its reason's day,
	 * though its status (risky) would allow 7 */
	db_do("UPDATE verdict_cache SET verified_at = now() - interval '2 days' WHERE address = 'full@accept.test'");
	run_list(&b, "acme", NULL, NULL, NULL);
	assert_int_equal(job_num(&b, "n_cached"), 2);
	assert_int_equal(log_count(b.mark, "RCPT alice@accept.test ", NULL), 1);
	assert_int_equal(log_count(b.mark, "RCPT full@accept.test ", NULL), 1);
	assert_int_equal(log_count(b.mark, "RCPT nobody@accept.test ", NULL), 0);
	assert_int_equal(SESSIONS(b.mark, "127.0.0.11"), 0);
	/* asked again: the cache holds the new verdict */
	assert_int_equal(pg_long(url, "SELECT count(*) FROM verdict_cache WHERE address = 'alice@accept.test' AND "
				      "verified_at > now() - interval '1 hour'"),
			 1);

	/* --max-age 1h: nobody's 2-hour-old verdict is too old for this job */
	db_do("UPDATE verdict_cache SET verified_at = now() - interval '2 hours' WHERE address = 'nobody@accept.test'");
	run_list(&c, "acme", "--max-age", "1h", NULL);
	assert_int_equal(job_num(&c, "max_age_s"), 3600);
	assert_int_equal(job_num(&c, "n_cached"), 3);
	assert_int_equal(log_count(c.mark, "RCPT nobody@accept.test ", NULL), 1);
	assert_int_equal(log_count(c.mark, "RCPT alice@accept.test ", NULL), 0);

	/* --fresh: every address asked, nothing cached */
	run_list(&d, "acme", "--fresh", NULL, NULL);
	assert_int_equal(job_num(&d, "n_cached"), 0);
	assert_int_equal(job_num(&d, "max_age_s"), 0);
	assert_int_equal(log_count(d.mark, "RCPT alice@accept.test ", NULL), 1);
	assert_int_equal(log_count(d.mark, "RCPT nobody@accept.test ", NULL), 1);
	assert_true(SESSIONS(d.mark, "127.0.0.11") >= 1);
}

/* Scope: tenant (default) keeps tenants apart; global serves every tenant
 * from one cache.  --no-cache neither reads nor writes it. */
static void test_scope(void **state)
{
	static struct run a, b, g1, g2, n;
	(void)state;

	run_list(&a, "tenant-a", NULL, NULL, NULL);
	run_list(&b, "tenant-b", NULL, NULL, NULL);
	assert_int_equal(job_num(&b, "n_cached"), 0); /* not from tenant-a's verdicts */
	assert_true(SESSIONS(b.mark, "127.0.0.10") >= 1);

	run_list(&g1, "tenant-a", "--cache-scope", "global", NULL);
	assert_int_equal(job_num(&g1, "n_cached"), 0); /* the shared cache was empty */
	assert_int_equal(pg_long(url, "SELECT count(*) FROM verdict_cache WHERE scope = '*' AND tenant = 'tenant-a'"),
			 4);
	run_list(&g2, "tenant-c", "--cache-scope", "global", NULL);
	assert_int_equal(job_num(&g2, "n_cached"), 4); /* from tenant-a's */
	assert_int_equal(SESSIONS(g2.mark, "127.0.0.10"), 0);

	run_list(&n, "tenant-a", "--no-cache", NULL, NULL);
	assert_int_equal(job_num(&n, "n_cached"), 0);
	assert_true(SESSIONS(n.mark, "127.0.0.10") >= 1);
	assert_int_equal(pg_long(url, "SELECT count(*) FROM verdict_cache WHERE job_id = '%s'", n.job), 0);
}

/* Bad values are refused before anything runs, naming the option. */
static void test_bad_values(void **state)
{
	char log[4096];
	(void)state;
	{
		const char *argv[] = { EMV_BIN, "run", list, "-o", out, "--database", url, "--max-age", "400d", NULL };
		assert_int_equal(run_capture(log, sizeof log, argv, 1), 2);
		if (!strstr(log, "--max-age") || !strstr(log, "365d"))
			fail_msg("--max-age 400d: %s", log);
	}
	{
		const char *argv[] = { EMV_BIN,	     "run", list,	    "-o",	  out,
				       "--database", url,   "--cache-ages", "unknown=1d", NULL };
		assert_int_equal(run_capture(log, sizeof log, argv, 1), 2);
		if (!strstr(log, "unknown is never served"))
			fail_msg("--cache-ages unknown=1d: %s", log);
	}
	{
		const char *argv[] = {
			EMV_BIN, "run", list, "-o", out, "--database", url, "--cache-scope", "all", NULL
		};
		assert_int_equal(run_capture(log, sizeof log, argv, 1), 2);
		if (!strstr(log, "--cache-scope"))
			fail_msg("--cache-scope all: %s", log);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_second_run_from_cache, reset),
		cmocka_unit_test_setup(test_stale_max_age_fresh, reset),
		cmocka_unit_test_setup(test_scope, reset),
		cmocka_unit_test(test_bad_values),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
