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
	assert_non_null(strstr(out, "schema version 10"));
	assert_int_equal(migrate(url, out, sizeof out), 0);
	c = db();
	assert_int_equal(sql_long(c, "SELECT count(*) FROM schema_migrations"), 9);
	assert_int_equal(sql_long(c,
				  "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
				  "AND table_name IN ('jobs','addresses','results','domains','ip_state','api_tokens')"),
			 6);
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
	assert_int_equal(sql_long(c, "SELECT count(*) FROM schema_migrations"), 9);
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
	};
	env_value(EMV_PG_ENV, "EMV_PG_URL", url, sizeof url);
	return cmocka_run_group_tests_name("db_migrate", tests, NULL, NULL);
}
