/* SPDX-License-Identifier: Apache-2.0 */
/*
 * db_migrate.c - the coordinator's schema migrations against a real
 * PostgreSQL (ctest fixture "pg": tests/cluster/pg/start.sh).
 *
 * Runs the real `emailverify-coordinator migrate` binary: on an empty
 * database, again (a no-op), twice at once (each migration applied once),
 * against a database newer than the binary (refused), and checks that the
 * schema's constraints hold (one result per address, valid statuses).
 * Then `ingest`: a list becomes a job (rows, duplicates, final results for
 * unusable rows, counters), input stored verbatim, a bad file leaves no job.
 */
#include "cluster_harness.h"
#include <libpq-fe.h>
#include <time.h>
#include "emv_db.h"
#include "emv_deadline.h"
#include "emv_util.h"

static uint64_t emv_test_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char url[512];


static void quiet(void *arg, const char *msg)
{
}

static PGconn *db(void)
{
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", url, PQerrorMessage(c));
	PQsetNoticeProcessor(c, quiet, NULL); /* DROP SCHEMA ... CASCADE notices */
	return c;
}

static void sql_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

static int sql_fails(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	PQclear(r);
	return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK;
}

static long sql_long(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	long v;
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	v = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static void reset_schema(void)
{
	PGconn *c = db();
	sql_ok(c, "DROP SCHEMA public CASCADE");
	sql_ok(c, "CREATE SCHEMA public");
	PQfinish(c);
}

/* Run the coordinator (migrate, or ingest FILE); returns its exit code,
 * stdout and stderr in out. */
static int coordinator(const char *cmd, const char *database, const char *file, char *out, size_t outlen)
{
	const char *argv[] = { EMV_COORDINATOR, cmd, "--database", database, file, NULL };
	return run_capture(out, outlen, argv, 1);
}

static int migrate(const char *database, char *out, size_t outlen)
{
	return coordinator("migrate", database, NULL, out, outlen);
}

static void do_test_fresh_then_again(void **state)
{
	char out[2048];
	PGconn *c;
	reset_schema();
	assert_int_equal(migrate(url, out, sizeof out), 0);
	assert_non_null(strstr(out, "schema version 11"));
	assert_int_equal(migrate(url, out, sizeof out), 0);
	c = db();
	assert_int_equal(sql_long(c, "SELECT count(*) FROM schema_migrations"), 11);
	assert_int_equal(sql_long(c,
				  "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
				  "AND table_name IN ('jobs','addresses','results','domains','ip_state','api_tokens')"),
			 6);
	/* migration 9: the verdict cache keeps known verdicts only, one per
	 * (scope, address) */
	assert_int_equal(sql_long(c, "SELECT count(*) FROM verdict_cache"), 0);
	assert_true(sql_fails(c, "INSERT INTO verdict_cache (scope, address, status, reason, verified_at, tenant) "
				 "VALUES ('t', 'a@b.test', 'unknown', 'timeout', now(), 't')"));
	sql_ok(c, "INSERT INTO verdict_cache (scope, address, status, reason, verified_at, tenant) "
		  "VALUES ('t', 'a@b.test', 'deliverable', 'accepted', now(), 't')");
	assert_true(sql_fails(c, "INSERT INTO verdict_cache (scope, address, status, reason, verified_at, tenant) "
				 "VALUES ('t', 'a@b.test', 'risky', 'catch_all', now(), 't')"));
	assert_int_equal(sql_long(c, "SELECT count(*) FROM jobs WHERE max_age_s IS NOT NULL OR n_cached <> 0"), 0);
	PQfinish(c);
}

static void do_test_concurrent_coordinators(void **state)
{
	pid_t p[4];
	int ok = 0;
	PGconn *c;
	reset_schema();
	for (int i = 0; i < 4; i++) {
		p[i] = fork();
		if (p[i] == 0) {
			char out[2048];
			_exit(migrate(url, out, sizeof out));
		}
	}
	for (int i = 0; i < 4; i++) {
		int st;
		waitpid(p[i], &st, 0);
		ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	assert_int_equal(ok, 4);
	c = db();
	assert_int_equal(sql_long(c, "SELECT count(*) FROM schema_migrations"), 11);
	PQfinish(c);
}

static void do_test_newer_database_refused(void **state)
{
	char out[2048];
	PGconn *c;
	reset_schema();
	assert_int_equal(migrate(url, out, sizeof out), 0);
	c = db();
	sql_ok(c, "INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')");
	PQfinish(c);
	assert_int_equal(migrate(url, out, sizeof out), 1);
	assert_non_null(strstr(out, "upgrade the coordinator"));
}

static void do_test_bad_database_url(void **state)
{
	char out[2048];
	assert_int_equal(migrate("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", out, sizeof out), 1);
	assert_non_null(strstr(out, "connecting to PostgreSQL"));
}

static void do_test_constraints(void **state)
{
	char out[2048];
	PGconn *c;
	reset_schema();
	assert_int_equal(migrate(url, out, sizeof out), 0);
	c = db();
	sql_ok(c, "INSERT INTO jobs (id, tenant) VALUES ('j1', 't1')");
	sql_ok(c, "INSERT INTO addresses (job_id, id, input, address, domain) "
		  "VALUES ('j1', 1, 'a@b.test', 'a@b.test', 'b.test')");
	sql_ok(c, "INSERT INTO results (job_id, address_id, status, reason, final) "
		  "VALUES ('j1', 1, 'deliverable', 'accepted', true)");
	/* one result per address; only the four statuses (orphans are kept out
	 * by the sink's join, not by a per-row foreign key: migration 3) */
	assert_true(sql_fails(c, "INSERT INTO results (job_id, address_id, status, reason, final) "
				 "VALUES ('j1', 1, 'unknown', 'timeout', false)"));
	assert_true(sql_fails(c, "INSERT INTO results (job_id, address_id, status, reason, final) "
				 "VALUES ('j1', 1, 'maybe', 'accepted', true)"));
	assert_true(sql_fails(c, "UPDATE jobs SET state = 'sleeping'"));
	/* domain_state (migration 10): one row per (kind, name); no limit below 1 */
	sql_ok(c, "INSERT INTO domain_state (kind, name, rcpt_per_txn, rcpt_per_txn_at, updated_at) "
		  "VALUES ('host', 'mx.b.test', 1, now(), now())");
	assert_true(
		sql_fails(c, "INSERT INTO domain_state (kind, name, updated_at) VALUES ('host', 'mx.b.test', now())"));
	assert_true(sql_fails(c, "INSERT INTO domain_state (kind, name, updated_at) VALUES ('mx', 'x.test', now())"));
	assert_true(sql_fails(c, "INSERT INTO domain_state (kind, name, errors_per_session, updated_at) "
				 "VALUES ('host', 'y.test', -1, now())"));
	/* deleting a job removes its rows */
	assert_int_equal(coordinator("delete", url, "j1", out, sizeof out), 0);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM addresses"), 0);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM results"), 0);
	PQfinish(c);
}

/* emv_db_exec(): the result when the status is the one wanted; else NULL,
 * and err names the step, the server's message and the SQLSTATE. */
static void do_test_exec_and_check(void **state)
{
	char err[512];
	const char *v[1] = { "41" };
	PGconn *c = db();
	PGresult *r = emv_db_exec(c, "SELECT $1::int + 1", 1, v, PGRES_TUPLES_OK, err, sizeof err, "adding");
	assert_non_null(r);
	assert_string_equal(PQgetvalue(r, 0, 0), "42");
	PQclear(r);
	/* the wrong kind of success is a failure too */
	assert_null(emv_db_exec(c, "SELECT 1", 0, NULL, PGRES_COMMAND_OK, err, sizeof err, "step %d", 3));
	assert_string_equal(err, "step 3: unexpected PGRES_TUPLES_OK");
	/* the server's error, its SQLSTATE, on one line (a CONTEXT line joined) */
	v[0] = "x";
	assert_null(emv_db_exec(c, "SELECT $1::int", 1, v, PGRES_TUPLES_OK, err, sizeof err, "casting"));
	if (strncmp(err, "casting: ERROR:", 15) != 0 || !strstr(err, "(SQLSTATE 22P02)") || strchr(err, '\n'))
		fail_msg("unexpected error text: %s", err);
	assert_int_equal(emv_db_run(c, "SELEC 1", 0, NULL, err, sizeof err, "typo"), -1);
	assert_non_null(strstr(err, "(SQLSTATE 42601)"));
	/* no parameters: PQexec, so a script of several statements runs */
	assert_int_equal(emv_db_run(c, "SELECT 1; SELECT 2", 0, NULL, NULL, 0, "script"), 0);
	PQfinish(c);
}

static void do_test_ingest_list(void **state)
{
	char out[2048], sql[512], job[64];
	const char *path = EMV_PG_RUN "/ingest.csv";
	FILE *f;
	PGconn *c;
	char *id;

	reset_schema();
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("name,email\n"
	      "A,alice@accept.test\n"
	      "B,\"not an address\"\n"
	      "C,ALICE@Accept.TEST\n"
	      "D,alice@accept.test\n"
	      "\"'; DROP TABLE jobs; --\",bob@accept.test\n",
	      f);
	fclose(f);
	assert_int_equal(coordinator("ingest", url, path, out, sizeof out), 0);
	assert_non_null(strstr(out, "5 rows (3 unique addresses, 1 duplicates, 1 invalid, 0 row errors)"));
	id = strstr(out, "job ");
	assert_non_null(id);
	id += 4;
	id[strcspn(id, ":")] = '\0';
	c = db();
	snprintf(sql, sizeof sql, "SELECT count(*) FROM addresses WHERE job_id = '%s'", id);
	assert_int_equal(sql_long(c, sql), 5);
	/* the duplicate points at its first row; local parts keep their case */
	snprintf(sql, sizeof sql, "SELECT duplicate_of FROM addresses WHERE job_id = '%s' AND id = 4", id);
	assert_int_equal(sql_long(c, sql), 1);
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM addresses WHERE job_id = '%s' AND address = 'ALICE@accept.test'", id);
	assert_int_equal(sql_long(c, sql), 1);
	/* the unusable row is final at once; SQL-looking input is just data */
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM results WHERE job_id = '%s' AND address_id = 2 "
		 "AND status = 'undeliverable' AND reason = 'invalid_syntax' AND final",
		 id);
	assert_int_equal(sql_long(c, sql), 1);
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM addresses WHERE job_id = '%s' "
		 "AND input = '''; DROP TABLE jobs; --,bob@accept.test'",
		 id); /* the row, re-serialised as CSV */
	assert_int_equal(sql_long(c, sql), 1);
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'splitting' AND rows_total = 5 "
		 "AND addresses_total = 3 AND n_final = 1 AND n_undeliverable = 1",
		 id);
	assert_int_equal(sql_long(c, sql), 1);

	/* delete: every row of the job goes, other jobs stay; again: no such job */
	snprintf(job, sizeof job, "%s", id);
	id = job; /* out is about to be reused */
	if (coordinator("ingest", url, path, out, sizeof out) != 0)
		fail_msg("second ingest: %s", out);
	if (coordinator("delete", url, id, out, sizeof out) != 0)
		fail_msg("delete: %s", out);
	snprintf(sql, sizeof sql,
		 "SELECT (SELECT count(*) FROM jobs WHERE id = '%s') + "
		 "(SELECT count(*) FROM addresses WHERE job_id = '%s') + "
		 "(SELECT count(*) FROM results WHERE job_id = '%s')",
		 id, id, id);
	assert_int_equal(sql_long(c, sql), 0);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM addresses"), 5); /* the second job's */
	assert_int_equal(coordinator("delete", url, id, out, sizeof out), 1);
	assert_non_null(strstr(out, "no such job"));
	PQfinish(c);
}

static void do_test_bad_list_leaves_no_job(void **state)
{
	char out[2048];
	const char *path = EMV_PG_RUN "/binary.csv";
	FILE *f = fopen(path, "w");
	PGconn *c;
	long before;
	fwrite("\x7f"
	       "ELF\0\0\0\0\1\2",
	       1, 10, f);
	fclose(f);
	assert_int_equal(migrate(url, out, sizeof out), 0);
	c = db();
	before = sql_long(c, "SELECT count(*) FROM jobs");
	assert_int_equal(coordinator("ingest", url, path, out, sizeof out), 1);
	assert_non_null(strstr(out, "binary"));
	assert_int_equal(coordinator("ingest", url, EMV_PG_RUN "/does-not-exist.csv", out, sizeof out), 1);
	assert_non_null(strstr(out, "No such file"));
	assert_int_equal(sql_long(c, "SELECT count(*) FROM jobs"), before);
	PQfinish(c);
}

/* The export of a job whose results were all written after the last
 * ANALYZE: the planner believes there is about one result for it.  With a
 * plain join that chose a nested loop over a materialised scan of the
 * job's results, O(n^2): a 200,000-row export ran for over 20 minutes.
 * Each row's result is now one primary-key lookup whatever the statistics
 * say; 30,000 rows take well under a second (minutes before). */
static void do_test_export_with_stale_statistics(void **state)
{
	char out[2048];
	const char *path = EMV_PG_RUN "/stale.csv";
	uint64_t t0;
	PGconn *c;
	reset_schema();
	assert_int_equal(migrate(url, out, sizeof out), 0);
	c = db();
	sql_ok(c, "INSERT INTO jobs (id, tenant) VALUES ('old', 't'), ('new', 't')");
	sql_ok(c, "INSERT INTO addresses (job_id, id, input, address, domain) SELECT 'old', g, 'u' || g || '@o.test',"
		  " 'u' || g || '@o.test', 'o.test' FROM generate_series(1, 30000) g");
	sql_ok(c, "INSERT INTO results (job_id, address_id, status, reason, final) SELECT 'old', g, 'deliverable',"
		  " 'accepted', true FROM generate_series(1, 30000) g");
	sql_ok(c, "ANALYZE addresses");
	sql_ok(c, "ANALYZE results"); /* the statistics know job 'old' only */
	sql_ok(c, "INSERT INTO addresses (job_id, id, input, address, domain) SELECT 'new', g, 'u' || g || '@n.test',"
		  " 'u' || g || '@n.test', 'n.test' FROM generate_series(1, 30000) g");
	sql_ok(c, "ANALYZE addresses"); /* as the ingest does after its commit */
	sql_ok(c, "INSERT INTO results (job_id, address_id, status, reason, final) SELECT 'new', g, 'undeliverable',"
		  " 'mailbox_not_found', true FROM generate_series(1, 30000) g");
	PQfinish(c);
	t0 = emv_test_now_ms();
	{
		const char *argv[] = { EMV_COORDINATOR, "export", "--database", url, "-o", path, "new", NULL };
		assert_int_equal(run_capture(out, sizeof out, argv, 1), 0);
	}
	print_message("30000-row export with stale statistics: %llu ms\n",
		      (unsigned long long)(emv_test_now_ms() - t0));
	assert_non_null(strstr(out, "30000 rows exported"));
	assert_true(emv_test_now_ms() - t0 < 20000);
}


/* The text of one value (a static copy). */
static const char *sql_text(PGconn *c, const char *sql)
{
	static char buf[1024];
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	snprintf(buf, sizeof buf, "%s", PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return buf;
}

/*
 * A job's time limits (coordinator/emv_deadline.h), migration 11: a job
 * past its deadline is done with every row final: the temporary one keeps
 * its reason and evidence (reply, code, MX) and says why it was not asked
 * again, the one never answered is unknown / timeout "not asked", the
 * final one is left alone, and the counters move by exactly those rows; a
 * job whose deadline is still to come is untouched; one whose straggler
 * wait is over (every address answered long enough ago) is done too.
 * Again: nothing to do.  A bad limit is refused by the schema.
 */
static void do_test_deadline_expire(void **state)
{
	char err[512];
	int jobs = -1;
	long long rows = -1;
	PGconn *c;
	reset_schema();
	c = db();
	assert_int_equal(emv_db_migrate(c, &(int){ 0 }, err, sizeof err), EMV_OK);
	sql_ok(c, "INSERT INTO jobs (id, tenant, state, rows_total, addresses_total, n_final, n_unusable,"
		  " n_deliverable, deadline_at) VALUES ('past', 't', 'running', 5, 3, 2, 1, 1, now() - interval '1 s'),"
		  " ('future', 't', 'running', 1, 1, 0, 0, 0, now() + interval '1 hour')");
	sql_ok(c, "INSERT INTO jobs (id, tenant, state, rows_total, addresses_total, n_final, n_unusable,"
		  " straggler_wait_s, n_answered, answered_at) VALUES"
		  " ('straggler', 't', 'running', 1, 1, 0, 0, 1, 1, now() - interval '2 s'),"
		  " ('waiting', 't', 'running', 1, 1, 0, 0, 300, 1, now() - interval '2 s')");
	sql_ok(c, "INSERT INTO addresses (job_id, id, input, address, domain, error_reason, duplicate_of) VALUES"
		  " ('past', 1, 'bad', 'bad', NULL, 'invalid_syntax', NULL),"
		  " ('past', 2, 'a@x.test', 'a@x.test', 'x.test', NULL, NULL),"
		  " ('past', 3, 'g@x.test', 'g@x.test', 'x.test', NULL, NULL),"
		  " ('past', 4, 'n@x.test', 'n@x.test', 'x.test', NULL, NULL),"
		  " ('past', 5, 'n@x.test', 'n@x.test', 'x.test', NULL, 4),"
		  " ('future', 1, 'f@x.test', 'f@x.test', 'x.test', NULL, NULL),"
		  " ('straggler', 1, 's@x.test', 's@x.test', 'x.test', NULL, NULL),"
		  " ('waiting', 1, 'w@x.test', 'w@x.test', 'x.test', NULL, NULL)");
	sql_ok(c, "INSERT INTO results (job_id, address_id, status, reason, final, smtp_code, enhanced_code, reply,"
		  " mx_host, detail, attempts, retry_at) VALUES"
		  " ('past', 2, 'deliverable', 'accepted', true, 250, '2.1.5', '2.1.5 Ok', 'mx.x.test', 'ok', 1, NULL),"
		  " ('past', 3, 'unknown', 'greylisted', false, 451, '4.7.1', '4.7.1 Greylisted', 'mx.x.test',"
		  "  'greylisted by the server', 1, now() + interval '10 min'),"
		  " ('straggler', 1, 'unknown', 'rate_limited', false, 450, '4.7.1', '4.7.1 slow down', 'mx.x.test',"
		  "  NULL, 2, NULL),"
		  " ('waiting', 1, 'unknown', 'rate_limited', false, 450, '4.7.1', '4.7.1 slow down', 'mx.x.test',"
		  "  NULL, 2, NULL)");
	assert_int_equal(emv_deadline_expire(c, &jobs, &rows, err, sizeof err), EMV_OK);
	assert_int_equal(jobs, 2);
	assert_int_equal(rows, 3);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM jobs WHERE id = 'past' AND state = 'done' AND n_final = 4"
				     " AND n_unknown = 2 AND n_deliverable = 1 AND finished_at IS NOT NULL"),
			 1);
	assert_string_equal(sql_text(c,
				     "SELECT concat_ws('|', status, reason, final, smtp_code, reply, mx_host, detail,"
				     " retry_at IS NULL) FROM results WHERE job_id = 'past' AND address_id = 3"),
			    "unknown|greylisted|t|451|4.7.1 Greylisted|mx.x.test|greylisted by the server; not asked "
			    "again: the deadline has come|t");
	assert_string_equal(sql_text(c, "SELECT concat_ws('|', status, reason, final, detail) FROM results"
					" WHERE job_id = 'past' AND address_id = 4"),
			    "unknown|timeout|t|not asked: the deadline has come");
	assert_string_equal(sql_text(c, "SELECT concat_ws('|', status, reason, final, detail) FROM results"
					" WHERE job_id = 'past' AND address_id = 2"),
			    "deliverable|accepted|t|ok");
	/* the invalid row and the duplicate have no result of their own */
	assert_int_equal(sql_long(c, "SELECT count(*) FROM results WHERE job_id = 'past'"), 3);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM jobs WHERE id = 'future' AND state = 'running'"), 1);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM results WHERE job_id = 'future'"), 0);
	assert_string_equal(sql_text(c,
				     "SELECT concat_ws('|', j.state, j.n_final, r.final, r.reason, r.reply, r.detail)"
				     " FROM jobs j JOIN results r ON r.job_id = j.id WHERE j.id = 'straggler'"),
			    "done|1|t|rate_limited|4.7.1 slow down|rate_limited; not asked again: the wait for "
			    "stragglers is over");
	assert_int_equal(sql_long(c, "SELECT count(*) FROM jobs WHERE id = 'waiting' AND state = 'running'"), 1);
	/* again: nothing left to do */
	assert_int_equal(emv_deadline_expire(c, &jobs, &rows, err, sizeof err), EMV_OK);
	assert_int_equal(jobs, 0);
	assert_int_equal(rows, 0);
	/* the limits a job may have */
	assert_int_equal(emv_deadline_set(c, "future", 5, 0, err, sizeof err), EMV_OK);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM jobs WHERE id = 'future' AND straggler_wait_s = 0"
				     " AND deadline_at BETWEEN now() + interval '4 s' AND now() + interval '6 s'"),
			 1);
	assert_int_equal(emv_deadline_set(c, "future", -1, 7, err, sizeof err), EMV_OK); /* the deadline kept */
	assert_int_equal(sql_long(c, "SELECT count(*) FROM jobs WHERE id = 'future' AND straggler_wait_s = 7"
				     " AND deadline_at IS NOT NULL"),
			 1);
	assert_true(sql_fails(c, "UPDATE jobs SET straggler_wait_s = -1 WHERE id = 'future'"));
	PQfinish(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_fresh_then_again),
		cmocka_unit_test(do_test_concurrent_coordinators),
		cmocka_unit_test(do_test_newer_database_refused),
		cmocka_unit_test(do_test_bad_database_url),
		cmocka_unit_test(do_test_constraints),
		cmocka_unit_test(do_test_exec_and_check),
		cmocka_unit_test(do_test_ingest_list),
		cmocka_unit_test(do_test_bad_list_leaves_no_job),
		cmocka_unit_test(do_test_export_with_stale_statistics),
		cmocka_unit_test(do_test_deadline_expire),
	};
	env_value(EMV_PG_ENV, "EMV_PG_URL", url, sizeof url);
	return cmocka_run_group_tests_name("db_migrate", tests, NULL, NULL);
}
