/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sink_kafka.c - `emailverify-coordinator sink` against a real Kafka broker
 * and PostgreSQL (ctest fixtures "pg", "kafka").
 *
 * The test plays the workers: it produces VerifyResults messages (with
 * emv_wire) for a job the coordinator ingested, then runs the sink until it
 * is idle and checks the rows: a final result is never replaced by a later
 * temporary one, a temporary one is replaced by a final one, a replayed
 * message changes nothing, results for unknown addresses and malformed
 * messages are skipped, the job's counters move once per address, and the
 * job is done when every row is final.  Finally the whole topic is read
 * again by a fresh consumer group: nothing changes.
 */
#include "cluster_harness.h"
#include "pg_harness.h"
#include <librdkafka/rdkafka.h>
#include "emv_wire.h"

/* its own topic: other cluster tests produce to emailverify.results */
#define TOPIC "test.sink.results"

static char pg_url[512], brokers[256], job[64];


static void sink(const char *group, char *out, size_t outlen)
{
	const char *argv[] = { EMV_COORDINATOR, "sink", "--database",	pg_url, "--brokers", brokers, "--group", group,
			       "--topic",	TOPIC,	"--until-idle", "3000", NULL };
	assert_int_equal(run_argv(out, outlen, argv), 0);
}


struct res {
	uint64_t id;
	emv_status st;
	emv_reason rs;
	int temporary;
	unsigned code;
};

/* Every result of the message with that duration. */
static void produce_d(rd_kafka_t *rk, const char *batch_id, const struct res *rr, size_t n, unsigned duration_ms)
{
	emv_wire_results w;
	emv_wire_result x[8];
	uint8_t *buf;
	size_t len;
	char err[EMV_WIRE_ERR_MAX];
	memset(&w, 0, sizeof w);
	memset(x, 0, sizeof x);
	snprintf(w.job_id, sizeof w.job_id, "%s", job);
	snprintf(w.batch_id, sizeof w.batch_id, "%s", batch_id);
	snprintf(w.worker, sizeof w.worker, "test-worker");
	snprintf(w.source_ip, sizeof w.source_ip, "127.0.0.2");
	snprintf(w.mx, sizeof w.mx, "mx1.accept.test");
	for (size_t i = 0; i < n; i++) {
		x[i].id = rr[i].id;
		x[i].status = rr[i].st;
		x[i].reason = rr[i].rs;
		x[i].temporary = rr[i].temporary;
		x[i].smtp_code = rr[i].code;
		x[i].attempts = 1;
		x[i].duration_ms = duration_ms;
	}
	w.results = x;
	w.n_results = n;
	if (emv_wire_results_encode(&w, &buf, &len, err, sizeof err) != EMV_WIRE_OK)
		fail_msg("encode: %s", err);
	assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(job, strlen(job)),
					   RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
					   RD_KAFKA_V_END),
			 0);
}

static void produce(rd_kafka_t *rk, const char *batch_id, const struct res *rr, size_t n)
{
	produce_d(rk, batch_id, rr, n, 0);
}

static void do_test_sink(void **state)
{
	char out[4096], *p;
	const char *list = EMV_CLUSTER_RUN "/sink.csv";
	FILE *f = fopen(list, "w");
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;

	fputs("email\na1@accept.test\na2@accept.test\na3@accept.test\na4@accept.test\na5@accept.test\nbad address\n",
	      f);
	fclose(f);
	{
		const char *argv[] = { EMV_COORDINATOR, "ingest", "--database", pg_url, list, NULL };
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
	}
	p = strstr(out, "job ");
	assert_non_null(p);
	snprintf(job, sizeof job, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
	/* as if split: the job runs */
	{
		PGconn *c = PQconnectdb(pg_url);
		char sql[256];
		snprintf(sql, sizeof sql, "UPDATE jobs SET state = 'running' WHERE id = '%s'", job);
		PQclear(PQexec(c, sql));
		PQfinish(c);
	}
	sink("sink-a", out, sizeof out); /* creates the topic, finds nothing */

	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	assert_non_null(rk);
	{
		const struct res a[] = {
			{ 1, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, 250 },
			{ 2, EMV_STATUS_UNKNOWN, EMV_REASON_GREYLISTED, 1, 451 },
			{ 3, EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND, 0, 550 },
		};
		const struct res b[] = {
			{ 2, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, 250 },  /* temporary -> final */
			{ 3, EMV_STATUS_UNKNOWN, EMV_REASON_TIMEOUT, 1, 0 },	     /* late temporary: ignored */
			{ 99, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, 250 }, /* no such address: dropped */
		};
		produce(rk, "1", a, 3);
		produce(rk, "1", a, 3); /* a replay */
		produce(rk, "2", b, 3);
		rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_VALUE("garbage!", 8),
				  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		assert_int_equal(rd_kafka_flush(rk, 10000), 0);
	}
	sink("sink-a", out, sizeof out);
	assert_non_null(strstr(out, "sink: 4 messages"));
	assert_non_null(strstr(out, "1 skipped"));
	assert_int_equal(pg_long(pg_url,
				 "SELECT count(*) FROM results WHERE job_id = '%s' AND address_id = 1 AND final "
				 "AND status = 'deliverable'",
				 job),
			 1);
	assert_int_equal(pg_long(pg_url,
				 "SELECT count(*) FROM results WHERE job_id = '%s' AND address_id = 2 AND final "
				 "AND status = 'deliverable'",
				 job),
			 1);
	assert_int_equal(pg_long(pg_url,
				 "SELECT count(*) FROM results WHERE job_id = '%s' AND address_id = 3 AND final "
				 "AND status = 'undeliverable' AND smtp_code = 550",
				 job),
			 1);
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM results WHERE job_id = '%s'", job),
			 4); /* 3 + the bad row */
	/* counters: the bad row (final at ingest) + 3 */
	assert_int_equal(pg_long(pg_url, "SELECT n_final FROM jobs WHERE id = '%s'", job), 4);
	assert_int_equal(pg_long(pg_url, "SELECT n_deliverable FROM jobs WHERE id = '%s'", job), 2);
	assert_int_equal(pg_long(pg_url, "SELECT n_undeliverable FROM jobs WHERE id = '%s'", job), 2);
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'running'", job), 1);

	{
		const struct res c[] = {
			{ 4, EMV_STATUS_RISKY, EMV_REASON_CATCH_ALL, 0, 250 },
			{ 5, EMV_STATUS_UNKNOWN, EMV_REASON_BLOCKED, 0, 554 },
		};
		produce(rk, "3", c, 2);
		assert_int_equal(rd_kafka_flush(rk, 10000), 0);
	}
	sink("sink-a", out, sizeof out);
	assert_non_null(strstr(out, "sink: 1 messages"));
	assert_int_equal(pg_long(pg_url, "SELECT n_final FROM jobs WHERE id = '%s'", job), 6);
	assert_int_equal(pg_long(pg_url,
				 "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'done' AND finished_at IS NOT NULL",
				 job),
			 1);

	/* everything again, through a new consumer group: nothing moves */
	sink("sink-replay", out, sizeof out);
	assert_non_null(strstr(out, "sink: 5 messages"));
	assert_int_equal(pg_long(pg_url, "SELECT n_final FROM jobs WHERE id = '%s'", job), 6);
	assert_int_equal(pg_long(pg_url, "SELECT n_deliverable FROM jobs WHERE id = '%s'", job), 2);
	assert_int_equal(
		pg_long(pg_url,
			"SELECT count(*) FROM results WHERE job_id = '%s' AND address_id = 3 AND status = 'undeliverable'",
			job),
		1);
	rd_kafka_destroy(rk);
}

static int sh(const char *script, const char *arg)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "bash %s/tests/cluster/pg/%s %s/pg-run %s >/dev/null 2>&1", EMV_SOURCE_DIR, script,
		 EMV_CLUSTER_RUN, arg ? arg : "");
	return system(cmd);
}

/* PostgreSQL goes away while the sink holds messages: it keeps them,
 * reconnects when the server is back, and stores each result once. */
static void do_test_sink_survives_postgres_restart(void **state)
{
	char out[4096], errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	int pfd[2], status;
	pid_t pid;
	size_t n = 0;
	const char *argv[] = {
		EMV_COORDINATOR, "sink",    "--database", pg_url,	  "--brokers", brokers, "--group",
		"sink-restart",	 "--topic", TOPIC,	  "--until-idle", "6000",      NULL
	};

	/* a fresh job of five addresses, all pending */
	{
		const char *list = EMV_CLUSTER_RUN "/sink2.csv";
		const char *ing[] = { EMV_COORDINATOR, "ingest", "--database", pg_url, list, NULL };
		FILE *f = fopen(list, "w");
		char *p;
		fputs("email\nb1@accept.test\nb2@accept.test\nb3@accept.test\nb4@accept.test\nb5@accept.test\n", f);
		fclose(f);
		assert_int_equal(run_argv(out, sizeof out, ing), 0);
		p = strstr(out, "job ");
		snprintf(job, sizeof job, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
	}
	/* the sink connects while PostgreSQL is up */
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	sleep(2);
	assert_int_equal(sh("stop.sh", "--immediate"), 0);
	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	{
		const struct res a[] = {
			{ 1, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, 250 },
			{ 2, EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND, 0, 550 },
			{ 3, EMV_STATUS_UNKNOWN, EMV_REASON_GREYLISTED, 1, 451 },
		};
		const struct res b[] = {
			{ 3, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, 250 },
			{ 4, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, 250 },
			{ 5, EMV_STATUS_RISKY, EMV_REASON_MAILBOX_FULL, 0, 552 },
		};
		produce(rk, "r1", a, 3);
		produce(rk, "r2", b, 3);
		assert_int_equal(rd_kafka_flush(rk, 10000), 0);
	}
	rd_kafka_destroy(rk);
	sleep(3); /* the sink fails to store, keeps the group, retries */
	assert_int_equal(sh("start.sh", NULL), 0);
	for (ssize_t k; n + 1 < sizeof out && (k = read(pfd[0], out + n, sizeof out - 1 - n)) > 0;)
		n += (size_t)k;
	out[n] = '\0';
	close(pfd[0]);
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	print_message("%s", out);
	/* a new group reads the topic from its start: the first test's
	 * messages come again and change nothing (checked below) */
	assert_null(strstr(out, " 0 retries")); /* it did have to retry */
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job), 5);
	assert_int_equal(pg_long(pg_url, "SELECT n_final FROM jobs WHERE id = '%s'", job), 5);
	assert_int_equal(pg_long(pg_url, "SELECT n_deliverable FROM jobs WHERE id = '%s'", job), 3);
}

/*
 * A poison message: it decodes, but PostgreSQL refuses its data (a
 * duration of 3,000,000,000 ms does not fit the integer column: SQLSTATE
 * 22003).  The sink must not retry its group for ever (it would block the
 * partition): the message is skipped and counted, the others of its group
 * are stored, the offsets move on.  Bounded by timeout(1): before the fix
 * the sink never became idle.
 */
static void do_test_sink_poison(void **state)
{
	char out[4096], errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	const char *argv[] = { "/usr/bin/timeout",
			       "90",
			       EMV_COORDINATOR,
			       "sink",
			       "--database",
			       pg_url,
			       "--brokers",
			       brokers,
			       "--group",
			       "sink-poison",
			       "--topic",
			       TOPIC,
			       "--until-idle",
			       "3000",
			       NULL };
	{
		const char *list = EMV_CLUSTER_RUN "/sink3.csv";
		const char *ing[] = { EMV_COORDINATOR, "ingest", "--database", pg_url, list, NULL };
		FILE *f = fopen(list, "w");
		char *p;
		fputs("email\nc1@accept.test\nc2@accept.test\nc3@accept.test\n", f);
		fclose(f);
		assert_int_equal(run_argv(out, sizeof out, ing), 0);
		p = strstr(out, "job ");
		snprintf(job, sizeof job, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
	}
	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	{
		const struct res a[] = { { 1, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, 250 } };
		const struct res poison[] = { { 2, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, 0, 250 } };
		const struct res c[] = { { 3, EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND, 0, 550 } };
		produce(rk, "p1", a, 1);
		produce_d(rk, "p2", poison, 1, 3000000000u);
		produce(rk, "p3", c, 1);
		assert_int_equal(rd_kafka_flush(rk, 10000), 0);
	}
	rd_kafka_destroy(rk);
	{
		int rc = run_argv(out, sizeof out, argv);
		print_message("%s", out);
		if (rc != 0)
			fail_msg("the sink did not get past the poison message (exit %d): %s", rc, out);
	}
	/* the whole topic from its start: the first test's garbage message and
	 * the poison one are the skipped ones */
	assert_non_null(strstr(out, " 2 skipped"));
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job), 2);
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM results WHERE job_id = '%s' AND address_id = 2", job),
			 0);
	assert_int_equal(pg_long(pg_url, "SELECT n_final FROM jobs WHERE id = '%s'", job), 2);
	/* committed past it: the same group reads nothing again */
	assert_int_equal(run_argv(out, sizeof out, argv), 0);
	assert_non_null(strstr(out, "sink: 0 messages"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_sink),
		cmocka_unit_test(do_test_sink_survives_postgres_restart),
		cmocka_unit_test(do_test_sink_poison),
	};
	env_value(EMV_CLUSTER_RUN "/pg-run/pg.env", "EMV_PG_URL", pg_url, sizeof pg_url);
	env_value(EMV_CLUSTER_RUN "/kafka-run/kafka.env", "EMV_KAFKA_BROKERS", brokers, sizeof brokers);
	return cmocka_run_group_tests_name("sink_kafka", tests, NULL, NULL);
}
