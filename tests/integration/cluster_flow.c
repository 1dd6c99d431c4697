/*
 * cluster_flow.c - the cluster end to end on one machine: coordinator
 * ingest -> split -> Kafka -> emailverify-worker (probing the test world)
 * -> Kafka -> sink -> PostgreSQL, with a real broker, a real PostgreSQL and
 * the test world (fixtures "world", "pg", "kafka").  Every address ends
 * with exactly one final result with the verdict the world dictates, and
 * the job is done.
 */
#include <signal.h>
#include <fcntl.h>
#include "cluster_harness.h"
#include <libpq-fe.h>

static char pg_url[512], brokers[256];



/* ingest LIST and split it into batches of 2: the job id into job; the
 * split's output stays in out */
static void start_job(const char *list, char *job, size_t joblen, char *out, size_t outlen)
{
	const char *ingest[] = { EMV_COORDINATOR, "ingest", "--database", pg_url, list, NULL };
	const char *p;
	assert_int_equal(run_argv(out, outlen, ingest), 0);
	p = strstr(out, "job ");
	assert_non_null(p);
	snprintf(job, joblen, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
	{
		const char *split[] = { EMV_COORDINATOR, "split", "--database", pg_url, "--brokers", brokers,
					"--batch-max", "2", job, NULL };
		assert_int_equal(run_argv(out, outlen, split), 0);
	}
}

static void run_sink(char *out, size_t outlen)
{
	const char *argv[] = { EMV_COORDINATOR, "sink", "--database", pg_url, "--brokers", brokers,
			       "--until-idle", "3000", NULL };
	assert_int_equal(run_argv(out, outlen, argv), 0);
}

static void verdict(const char *job, long row, const char *status, const char *reason)
{
	PGconn *c = PQconnectdb(pg_url);
	char sql[512];
	PGresult *r;
	snprintf(sql, sizeof sql, "SELECT status, reason, final FROM results WHERE job_id = '%s' AND address_id = %ld",
		 job, row);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("row %ld: no result (%s)", row, PQresultErrorMessage(r));
	if (strcmp(PQgetvalue(r, 0, 0), status) || strcmp(PQgetvalue(r, 0, 1), reason) ||
	    strcmp(PQgetvalue(r, 0, 2), "t"))
		fail_msg("row %ld: expected %s/%s final, got %s/%s final=%s", row, status, reason, PQgetvalue(r, 0, 0),
			 PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
	PQclear(r);
	PQfinish(c);
}

static void do_test_end_to_end(void **state)
{
	char out[8192], job[64];
	const char *list = EMV_CLUSTER_RUN "/flow.csv";
	FILE *f = fopen(list, "w");
	fputs("email\nalice@accept.test\nnobody@accept.test\nx@catchall.test\nx@nullmx.test\nbad address\n"
	      "bob@accept.test\nu1@toomany.test\nu2@toomany.test\nu3@toomany.test\nu4@toomany.test\n", f);
	fclose(f);
	start_job(list, job, sizeof job, out, sizeof out);
	assert_non_null(strstr(out, "9 addresses in"));
	{
		const char *argv[] = { EMV_WORKER, "--brokers", brokers, "--name", "w1", "--until-idle", "4000",
				       "--dns", "127.0.0.1:5300", "--smtp-port", "2525", "--allow-private-mx",
				       "--mail-from", "probe@verifier.test", "--helo", "probe.verifier.test",
				       "--providers", EMV_TEST_DATA "/providers-test.conf", "--timeout", "5", NULL };
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
	}
	run_sink(out, sizeof out);
	assert_non_null(strstr(out, "0 skipped"));
	verdict(job, 1, "deliverable", "accepted");
	verdict(job, 2, "undeliverable", "mailbox_not_found");
	verdict(job, 3, "risky", "catch_all");
	verdict(job, 4, "undeliverable", "null_mx");
	verdict(job, 5, "undeliverable", "invalid_syntax");
	verdict(job, 6, "deliverable", "accepted");
	for (long r = 7; r <= 10; r++)
		verdict(job, r, "deliverable", "accepted");
	{
		PGconn *c = PQconnectdb(pg_url);
		char sql[256];
		PGresult *r;
		snprintf(sql, sizeof sql, "SELECT state, n_final, n_deliverable FROM jobs WHERE id = '%s'", job);
		r = PQexec(c, sql);
		assert_string_equal(PQgetvalue(r, 0, 0), "done");
		assert_string_equal(PQgetvalue(r, 0, 1), "10");
		assert_string_equal(PQgetvalue(r, 0, 2), "6");
		PQclear(r);
		PQfinish(c);
	}
}

static pid_t spawn(const char *const *argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static long count(const char *sql)
{
	PGconn *c = PQconnectdb(pg_url);
	PGresult *r = PQexec(c, sql);
	long v;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	v = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

/* kill -9 a worker in the middle of a job: its uncommitted batches go to the
 * next worker, and every address still ends with exactly one final result */
static void do_test_worker_killed_mid_job(void **state)
{
	char out[8192], job[64], sql[512];
	const char *list = EMV_CLUSTER_RUN "/kill.csv";
	FILE *f = fopen(list, "w");
	int status;
	fputs("email\n", f);
	for (int i = 1; i <= 6; i++)
		fprintf(f, "k%d@slow.test\n", i);    /* 300 ms per reply: slow batches */
	fputs("alice@slow.test\nalice@accept.test\nbob@accept.test\nnobody@accept.test\n", f);
	fclose(f);
	start_job(list, job, sizeof job, out, sizeof out);
	{
		const char *w1[] = { EMV_WORKER, "--brokers", brokers, "--name", "doomed", "--session-timeout", "6000",
				     "--dns", "127.0.0.1:5300", "--smtp-port", "2525", "--allow-private-mx",
				     "--mail-from", "probe@verifier.test", "--helo", "probe.verifier.test",
				     "--providers", EMV_TEST_DATA "/providers-test.conf", "--timeout", "5", NULL };
		pid_t pid = spawn(w1);
		usleep(2500000); /* joined the group, mid-way through the slow batches */
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		assert_true(WIFSIGNALED(status));
	}
	{
		/* idle long enough to outlast the dead worker's 6 s session and the rebalance */
		const char *w2[] = { EMV_WORKER, "--brokers", brokers, "--name", "w2", "--until-idle", "15000",
				     "--session-timeout", "6000", "--dns", "127.0.0.1:5300", "--smtp-port", "2525",
				     "--allow-private-mx", "--mail-from", "probe@verifier.test", "--helo",
				     "probe.verifier.test", "--providers", EMV_TEST_DATA "/providers-test.conf", "--timeout",
				     "5", NULL };
		assert_int_equal(run_argv(out, sizeof out, w2), 0);
	}
	run_sink(out, sizeof out);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job);
	assert_int_equal(count(sql), 10);
	for (long r = 1; r <= 6; r++)
		verdict(job, r, "undeliverable", "mailbox_not_found");
	verdict(job, 7, "deliverable", "accepted");
	verdict(job, 8, "deliverable", "accepted");
	snprintf(sql, sizeof sql, "SELECT n_final FROM jobs WHERE id = '%s' AND state = 'done'", job);
	assert_int_equal(count(sql), 10); /* counted once each, whatever was replayed */
}

static int kafka_sh(const char *script, const char *arg)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "bash %s/tests/cluster/kafka/%s %s/kafka-run %s >/dev/null 2>&1", EMV_SOURCE_DIR,
		 script, EMV_CLUSTER_RUN, arg ? arg : "");
	return system(cmd);
}

/* The broker is down for 10 s in the middle of a job: the worker keeps its
 * results until it is back, and the job completes with nothing lost. */
static void do_test_broker_down_for_10s(void **state)
{
	char out[8192], job[64], sql[512];
	const char *list = EMV_CLUSTER_RUN "/down.csv";
	FILE *f = fopen(list, "w");
	int status;
	pid_t pid;
	fputs("email\n", f);
	for (int i = 1; i <= 4; i++)
		fprintf(f, "d%d@slow.test\n", i);
	fputs("alice@slow.test\nalice@accept.test\n", f);
	fclose(f);
	start_job(list, job, sizeof job, out, sizeof out);
	{
		const char *w[] = { EMV_WORKER, "--brokers", brokers, "--name", "w3", "--until-idle", "20000",
				    "--session-timeout", "30000", "--dns", "127.0.0.1:5300", "--smtp-port", "2525",
				    "--allow-private-mx", "--mail-from", "probe@verifier.test", "--helo", "probe.verifier.test",
				    "--providers", EMV_TEST_DATA "/providers-test.conf", "--timeout", "5", NULL };
		pid = spawn(w);
	}
	sleep(2); /* it has the batches and is probing the slow server */
	assert_int_equal(kafka_sh("stop.sh", NULL), 0);
	sleep(10);
	assert_int_equal(kafka_sh("start.sh", NULL), 0);
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	run_sink(out, sizeof out);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job);
	assert_int_equal(count(sql), 6);
	verdict(job, 5, "deliverable", "accepted");
	verdict(job, 6, "deliverable", "accepted");
	snprintf(sql, sizeof sql, "SELECT n_final FROM jobs WHERE id = '%s' AND state = 'done'", job);
	assert_int_equal(count(sql), 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_end_to_end),
		cmocka_unit_test(do_test_worker_killed_mid_job),
		cmocka_unit_test(do_test_broker_down_for_10s),
	};
	env_value(EMV_CLUSTER_RUN "/pg-run/pg.env", "EMV_PG_URL", pg_url, sizeof pg_url);
	env_value(EMV_CLUSTER_RUN "/kafka-run/kafka.env", "EMV_KAFKA_BROKERS", brokers, sizeof brokers);
	return cmocka_run_group_tests_name("cluster_flow", tests, NULL, NULL);
}
