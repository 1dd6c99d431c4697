/* SPDX-License-Identifier: Apache-2.0 */
/*
 * domain_state.c - shared domain knowledge (docs/design.md §4, topic
 * emailverify.domain-state) across workers, against a real Kafka, a real
 * PostgreSQL and the test world's learn.test: one recipient per
 * transaction (452 4.5.3 from the second on) and Postfix-like error limits
 * (3 rejections: replies 1 s late; 6: 421).
 *
 *  1. Worker 1 (source 127.0.0.7) verifies a job on learn.test: it runs
 *     into the 452s and the tarpit and learns both; it publishes what it
 *     learnt, and the coordinator's router stores it in domain_state.
 *  2. An absurd entry for the same host (negative limits, from the future)
 *     is put on the topic: it must be ignored, with a log line.
 *  3. Worker 2 (127.0.0.8), started later, loads the topic before its
 *     first batch: the test server's own log shows no 452, no tarpit and no
 *     421 for 127.0.0.8, and every address asked.
 *  4. Control: worker 3 (127.0.0.6) with the topic turned off (--domain-state-topic
 *     "") runs into the 452s and the tarpit again, as worker 1 did - what
 *     step 3 shows is the shared knowledge, not luck.
 *
 * Fixtures: world, pg, kafka.  Topics and groups are the test's own.
 */
#include <signal.h>
#include <sys/stat.h>
#include <librdkafka/rdkafka.h>
#include "cluster_harness.h"
#include "pg_harness.h"
#include "emv_wire.h"
#include "emv_util.h"

#define RUN EMV_CLUSTER_RUN "/domain-state"
#define HOST "mx.learn.test"

static char pg_url[512], brokers[256];
static struct run_names nm;

/* Lines of smtpd.log after `from` holding a and (unless NULL) b. */
static int log_count(long from, const char *a, const char *b)
{
	FILE *f = fopen(EMV_WORLD_DIR "/smtpd.log", "r");
	char line[4096];
	int n = 0;
	assert_non_null(f);
	fseek(f, from, SEEK_SET);
	while (fgets(line, sizeof line, f))
		if (strstr(line, a) && (!b || strstr(line, b)))
			n++;
	fclose(f);
	return n;
}

static int wait_exit(pid_t pid)
{
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 262144);
	assert_non_null(f);
	assert_true(fread(buf, 1, 262143, f) < 262143);
	fclose(f);
	return buf;
}

static void start_job(const char *list)
{
	char out[4096], job[64];
	const char *ingest[] = { EMV_COORDINATOR, "ingest", "--database", pg_url, list, NULL };
	const char *p;
	assert_int_equal(run_argv(out, sizeof out, ingest), 0);
	p = strstr(out, "job ");
	assert_non_null(p);
	snprintf(job, sizeof job, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
	{
		const char *split[] = { EMV_COORDINATOR, "split",   "--database", pg_url, "--brokers",
					brokers,	 "--topic", nm.batches,	  job,	  NULL };
		assert_int_equal(run_capture(out, sizeof out, split, 1), 0);
	}
}

/* A worker from source address src, with the test's topics (domain-state
 * topic ds: "" turns it off); it leaves once idle for 4 s. */
static void run_worker(const char *name, const char *src, const char *ds, const char *log)
{
	const char *w[] = { EMV_WORKER, "--brokers",
			    brokers,	"--name",
			    name,	"--group",
			    nm.workers, "--batches-topic",
			    nm.batches, "--retry-topic",
			    nm.retry,	"--results-topic",
			    nm.results, "--domain-state-topic",
			    ds,		"--until-idle",
			    "4000",	"--session-timeout",
			    "6000",	"--source-ip",
			    src,	"-v",
			    WORLD_OPTS, NULL };
	assert_int_equal(wait_exit(spawn_logged(w, log)), 0);
}

/* Poll until the query's number is want (at most timeout_s seconds). */
static void wait_for(long want, int timeout_s, const char *sql)
{
	long got = -1;
	for (int i = 0; i < timeout_s * 5; i++) {
		if ((got = pg_long(pg_url, "%s", sql)) == want)
			return;
		usleep(200000);
	}
	fail_msg("waited %d s for %ld from: %s (last %ld)", timeout_s, want, sql, got);
}

/* An entry on the topic as a hostile or broken publisher would write it. */
static void produce_entry(const emv_wire_domstate *x)
{
	char errstr[512], key[300];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	uint8_t *buf;
	size_t len;

	assert_int_equal(emv_wire_domstate_encode(x, &buf, &len, errstr, sizeof errstr), EMV_WIRE_OK);
	emv_wire_domstate_key(x, key, sizeof key);
	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	assert_non_null(rk);
	assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(nm.domstate), RD_KAFKA_V_KEY(key, strlen(key)),
					   RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
					   RD_KAFKA_V_END),
			 0);
	assert_int_equal(rd_kafka_flush(rk, 10000), 0);
	rd_kafka_destroy(rk);
}

#define LIST_TAIL "x1@learn.test\nx2@learn.test\nx3@learn.test\nx4@learn.test\nx5@learn.test\nx6@learn.test\n"

static void do_test_second_worker_never_repeats(void **state)
{
	long mark1, mark2, mark3;
	pid_t router;
	char *log;

	mkdir(RUN, 0755);
	{
		char out[1024];
		const char *migrate[] = { EMV_COORDINATOR, "migrate", "--database", pg_url, NULL };
		assert_int_equal(run_capture(out, sizeof out, migrate, 1), 0);
	}
	{
		PGconn *c = PQconnectdb(pg_url);
		PQclear(PQexec(c, "DELETE FROM domain_state WHERE name IN ('" HOST "', 'learn.test')"));
		PQfinish(c);
	}
	{
		const char *r[] = { EMV_COORDINATOR,
				    "router",
				    "--database",
				    pg_url,
				    "--brokers",
				    brokers,
				    "--group",
				    nm.router,
				    "--batches-topic",
				    nm.batches,
				    "--retry-topic",
				    nm.retry,
				    "--domain-state-topic",
				    nm.domstate,
				    "--ip-state-topic",
				    nm.ipstate,
				    "--reroute-topic",
				    nm.reroute,
				    NULL };
		router = spawn_logged(r, RUN "/router.log");
	}

	/* 1. the first worker learns the hard way */
	test_write_file(RUN "/list1.csv", "email\nalice@learn.test\nbob@learn.test\ncarol@learn.test\n" LIST_TAIL);
	start_job(RUN "/list1.csv");
	mark1 = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	run_worker("worker1", "127.0.0.7", nm.domstate, RUN "/worker1.log");
	print_message("worker 1 (127.0.0.7): %d x 452, %d tarpit replies, %d x 421 error limit\n",
		      log_count(mark1, "127.0.0.39 127.0.0.7 ", "452 too-many"),
		      log_count(mark1, "127.0.0.39 127.0.0.7 ", "TARPIT"),
		      log_count(mark1, "127.0.0.39 127.0.0.7 ", "ABUSE error-limit"));
	assert_true(log_count(mark1, "127.0.0.39 127.0.0.7 ", "452 too-many") > 0);
	assert_true(log_count(mark1, "127.0.0.39 127.0.0.7 ", "TARPIT") > 0);
	log = slurp(RUN "/worker1.log");
	assert_non_null(strstr(log, "published host:" HOST));
	free(log);
	/* the coordinator keeps it in PostgreSQL */
	wait_for(1, 60,
		 "SELECT count(*) FROM domain_state WHERE kind = 'host' AND name = '" HOST "'"
		 " AND rcpt_per_txn = 1 AND errors_per_session >= 1 AND errors_per_session < 3"
		 " AND rcpt_per_txn_at > now() - interval '10 min' AND worker = 'worker1'");
	wait_for(1, 60,
		 "SELECT count(*) FROM domain_state WHERE kind = 'domain' AND name = 'learn.test'"
		 " AND catch_all = false");

	/* 2. absurd entries, newer than worker 1's: each ignored, with a log line */
	for (int i = 0; i < 3; i++) {
		emv_wire_domstate x;
		int64_t now = (int64_t)emv_wall_ms();
		memset(&x, 0, sizeof x);
		x.kind = EMV_WIRE_DS_HOST;
		snprintf(x.name, sizeof x.name, "%s", HOST);
		snprintf(x.worker, sizeof x.worker, "mallory");
		x.updated_ms = now;
		if (i == 0) { /* a negative limit */
			x.rcpt_per_txn = -5;
			x.rcpt_per_txn_at = now;
		} else if (i == 1) { /* a huge one */
			x.errors_per_session = 1000000;
			x.errors_per_session_at = now;
		} else { /* one from tomorrow, that would win every comparison */
			x.rcpt_per_txn = 50;
			x.rcpt_per_txn_at = now + 86400000;
		}
		produce_entry(&x);
	}

	/* 3. the second worker, later, never repeats the first one's mistakes */
	test_write_file(RUN "/list2.csv", "email\nalice@learn.test\nbob@learn.test\ncarol@learn.test\n"
					  "y1@learn.test\ny2@learn.test\ny3@learn.test\ny4@learn.test\n"
					  "y5@learn.test\ny6@learn.test\n");
	start_job(RUN "/list2.csv");
	mark2 = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	run_worker("worker2", "127.0.0.8", nm.domstate, RUN "/worker2.log");
	print_message("worker 2 (127.0.0.8): %d RCPTs, %d x 452, %d tarpit replies, %d x 421 error limit\n",
		      log_count(mark2, "127.0.0.39 127.0.0.8 RCPT", NULL),
		      log_count(mark2, "127.0.0.39 127.0.0.8 ", "452 too-many"),
		      log_count(mark2, "127.0.0.39 127.0.0.8 ", "TARPIT"),
		      log_count(mark2, "127.0.0.39 127.0.0.8 ", "ABUSE"));
	assert_int_equal(log_count(mark2, "127.0.0.39 127.0.0.8 ", "452 too-many"), 0);
	assert_int_equal(log_count(mark2, "127.0.0.39 127.0.0.8 ", "TARPIT"), 0);
	assert_int_equal(log_count(mark2, "127.0.0.39 127.0.0.8 ", "ABUSE"), 0);
	/* and it did the work: each address asked once, answered */
	assert_int_equal(log_count(mark2, "127.0.0.39 127.0.0.8 RCPT alice@learn.test 250", NULL), 1);
	assert_int_equal(log_count(mark2, "127.0.0.39 127.0.0.8 RCPT y6@learn.test 550", NULL), 1);
	assert_int_equal(log_count(mark2, "127.0.0.39 127.0.0.8 RCPT", NULL), 9);
	/* the absurd entry was seen and left out, the sound ones taken */
	log = slurp(RUN "/worker2.log");
	assert_non_null(strstr(log, "ignored: host " HOST ": "));
	{
		const char *p = strstr(log, "emailverify-worker worker2:");
		unsigned long taken = 0, running = 0, ignored = 0;
		assert_non_null(p);
		p = strstr(p, "domain-state: ");
		assert_non_null(p);
		assert_int_equal(sscanf(p, "domain-state: %lu taken at start, %lu while running, %lu ignored", &taken,
					&running, &ignored),
				 3);
		print_message("worker 2: %lu domain-state entries taken at start, %lu ignored\n", taken, ignored);
		assert_true(taken >= 2); /* the host and the domain */
		assert_int_equal(ignored, 3);
	}
	free(log);

	/* 4. control: the same without the topic runs into both again */
	test_write_file(RUN "/list3.csv", "email\nalice@learn.test\nbob@learn.test\ncarol@learn.test\n"
					  "z1@learn.test\nz2@learn.test\nz3@learn.test\nz4@learn.test\n"
					  "z5@learn.test\nz6@learn.test\n");
	start_job(RUN "/list3.csv");
	mark3 = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	run_worker("worker3", "127.0.0.6", "", RUN "/worker3.log");
	print_message("worker 3 (127.0.0.6, no domain-state): %d x 452, %d tarpit replies\n",
		      log_count(mark3, "127.0.0.39 127.0.0.6 ", "452 too-many"),
		      log_count(mark3, "127.0.0.39 127.0.0.6 ", "TARPIT"));
	assert_true(log_count(mark3, "127.0.0.39 127.0.0.6 ", "452 too-many") > 0);
	assert_true(log_count(mark3, "127.0.0.39 127.0.0.6 ", "TARPIT") > 0);

	/* the router stored what was sound and skipped the absurd entry */
	kill(router, SIGTERM);
	assert_int_equal(wait_exit(router), 0);
	log = slurp(RUN "/router.log");
	assert_non_null(strstr(log, "host " HOST ": "));
	free(log);
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM domain_state WHERE worker = 'mallory'"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_second_worker_never_repeats),
	};
	run_names_init(&nm, "domstate");
	env_value(EMV_CLUSTER_RUN "/pg-run/pg.env", "EMV_PG_URL", pg_url, sizeof pg_url);
	env_value(EMV_CLUSTER_RUN "/kafka-run/kafka.env", "EMV_KAFKA_BROKERS", brokers, sizeof brokers);
	return cmocka_run_group_tests_name("domain_state", tests, NULL, NULL);
}
