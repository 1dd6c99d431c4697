/* SPDX-License-Identifier: Apache-2.0 */
/*
 * regions.c - two regions as two worker groups (docs/regions.md): region "east"
 * probes from 127.0.0.3, which blocked.test refuses (554 5.7.1 ... blocked
 * using zen.spamhaus.org), region "west" from 127.0.0.4.  A routing rule
 * sends blocked.test to east; east's only address is quarantined within
 * one session, the batch goes back through the reroute topic, the
 * coordinator's router sends it to west, and west finishes it: the results
 * record region west and source 127.0.0.4, and the test server's own log
 * shows every address asked once from .4.  Then, with west's address
 * quarantined too (as its ip_state row says), a batch that east gives back
 * waits on the retry topic instead of being pushed through anywhere.
 *
 * Fixtures: world (DNS, SMTP servers, smtpd.log), pg, kafka.  Topics and
 * consumer groups are the test's own ("regions<pid>.*").
 */
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include "cluster_harness.h"
#include "pg_harness.h"

#define RUN EMV_CLUSTER_RUN "/regions"

static char pg_url[512], brokers[256];
/* topics and groups of this run only: the Kafka fixture keeps its data
 * from one run of the suite to the next */
static struct run_names nm;

/* Lines of smtpd.log after `from` holding every one of a, b. */
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

static void start_job(const char *list, char *job, size_t joblen)
{
	char out[4096];
	const char *ingest[] = { EMV_COORDINATOR, "ingest", "--database", pg_url, list, NULL };
	const char *p;
	assert_int_equal(run_argv(out, sizeof out, ingest), 0);
	p = strstr(out, "job ");
	assert_non_null(p);
	snprintf(job, joblen, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
	{
		const char *split[] = {
			EMV_COORDINATOR, "split",    "--database",	 pg_url, "--brokers", brokers, "--topic",
			nm.batches,	 "--routes", RUN "/routes.conf", job,	 NULL
		};
		assert_int_equal(run_capture(out, sizeof out, split, 1), 0);
	}
}

#define WORKER(name, pool, idle)                                                                                       \
	{                                                                                                              \
		EMV_WORKER, "--brokers", brokers, "--name", name, "--group", nm.workers, "--batches-topic",            \
			nm.batches, "--retry-topic", nm.retry, "--results-topic", nm.results, "--reroute-topic",       \
			nm.reroute, "--ip-state-topic", nm.ipstate, "--until-idle", idle, "--session-timeout", "6000", \
			"--pool", pool, WORLD_OPTS, NULL                                                               \
	}

#define ROUTER(idle)                                                                                             \
	{                                                                                                        \
		EMV_COORDINATOR, "router", "--database", pg_url, "--brokers", brokers, "--group", nm.router,     \
			"--batches-topic", nm.batches, "--retry-topic", nm.retry, "--reroute-topic", nm.reroute, \
			"--ip-state-topic", nm.ipstate, "--until-idle", idle, NULL                               \
	}

static void str_of(const char *sql, char *out, size_t outlen)
{
	PGconn *c = PQconnectdb(pg_url);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s (%d rows)", sql, PQresultErrorMessage(r), PQntuples(r));
	snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
}

static void exec_sql(const char *sql)
{
	PGconn *c = PQconnectdb(pg_url);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
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

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	assert_int_equal(wait_exit(pid), 0);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	assert_non_null(f);
	fread(buf, 1, 65535, f);
	fclose(f);
	return buf;
}

#define SINK                                                                                                           \
	{                                                                                                              \
		EMV_COORDINATOR, "sink", "--database", pg_url, "--brokers", brokers, "--topic", nm.results, "--group", \
			nm.sink, NULL                                                                                  \
	}

static void do_test_blocked_region_hands_over(void **state)
{
	char job[64], v[512];
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	pid_t router, east, west, sink;

	mkdir(RUN, 0755);
	/* no state left from an earlier run of the suite */
	{
		char out[1024];
		const char *migrate[] = { EMV_COORDINATOR, "migrate", "--database", pg_url, NULL };
		assert_int_equal(run_capture(out, sizeof out, migrate, 1), 0);
	}
	exec_sql("DELETE FROM ip_state WHERE ip IN ('127.0.0.3', '127.0.0.4')");
	/* the world's DNS has no PTR records: the audit would hold both
	 * addresses, so they run anyway (the audit has its own test) */
	test_write_file(RUN "/east.conf", "region = east\nmail_from = probe@verifier.test\naudit_failures = run\n"
					  "source = 127.0.0.3 poola.verifier.test\n");
	test_write_file(RUN "/west.conf", "region = west\nmail_from = probe@verifier.test\naudit_failures = run\n"
					  "source = 127.0.0.4 poolb.verifier.test\n");
	test_write_file(RUN "/routes.conf", "# blocked.test is asked from east first\ndomain blocked.test east\n");
	test_write_file(RUN "/list.csv", "email\nregr1@blocked.test\nregr2@blocked.test\nalice@blocked.test\n"
					 "regr3@accept.test\n");
	start_job(RUN "/list.csv", job, sizeof job);
	{
		const char *r[] = ROUTER("0");
		const char *w1[] = WORKER("west1", RUN "/west.conf", "0");
		const char *w2[] = WORKER("east1", RUN "/east.conf", "0");
		const char *k[] = SINK;
		char sql[256];
		router = spawn_logged(r, RUN "/router.log");
		sink = spawn_logged(k, RUN "/sink.log");
		west = spawn_logged(w1, RUN "/west.log");
		/* east joins once west is in the group and known to the router:
		 * fewer rebalances in the middle of east's batch */
		wait_for(1, 60,
			 "SELECT count(*) FROM ip_state WHERE ip = '127.0.0.4' AND provider = ''"
			 " AND updated_at > now() - interval '1 min'");
		sleep(2);
		east = spawn_logged(w2, RUN "/east.log");
		snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'done'", job);
		wait_for(1, 120, sql);
		stop(east);
		stop(west);
		stop(router);
		stop(sink);
	}

	/* every address final, blocked.test's from west, as .4 hears it */
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job), 4);
	assert_int_equal(pg_long(pg_url,
				 "SELECT count(*) FROM results r JOIN addresses a ON a.job_id = r.job_id AND a.id = "
				 "r.address_id WHERE r.job_id = '%s' AND a.domain = 'blocked.test' AND r.region = 'west'"
				 " AND r.source_ip = '127.0.0.4'",
				 job),
			 3);
	assert_int_equal(pg_long(pg_url,
				 "SELECT count(*) FROM results r JOIN addresses a ON a.job_id = r.job_id AND a.id = "
				 "r.address_id WHERE r.job_id = '%s' AND a.address = 'alice@blocked.test'"
				 " AND r.status = 'deliverable' AND r.reason = 'accepted'",
				 job),
			 1);
	assert_int_equal(pg_long(pg_url,
				 "SELECT count(*) FROM results r JOIN addresses a ON a.job_id = r.job_id AND a.id = "
				 "r.address_id WHERE r.job_id = '%s' AND a.address LIKE 'regr_@blocked.test'"
				 " AND r.status = 'undeliverable' AND r.reason = 'mailbox_not_found'",
				 job),
			 2);
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'done'", job), 1);

	/* the server's log: .3 was refused in one session and never came
	 * back; .4 asked each address exactly once */
	assert_int_equal(log_count(mark, "127.0.0.14 127.0.0.3 CONNECT", NULL), 1);
	assert_true(log_count(mark, "127.0.0.14 127.0.0.3 RCPT", "554") >= 1);
	assert_int_equal(log_count(mark, "127.0.0.14 127.0.0.4 RCPT regr1@blocked.test", NULL), 1);
	assert_int_equal(log_count(mark, "127.0.0.14 127.0.0.4 RCPT regr2@blocked.test", NULL), 1);
	assert_int_equal(log_count(mark, "127.0.0.14 127.0.0.4 RCPT alice@blocked.test", NULL), 1);

	/* ip_state: east's address quarantined for blocked.test's provider,
	 * with the reply that did it; both addresses known as a whole */
	str_of("SELECT state || ' ' || region || ' ' || blocks || ' ' || (until > now() + interval '10 min') || ' ' ||"
	       " last_reply FROM ip_state WHERE ip = '127.0.0.3' AND provider <> ''",
	       v, sizeof v);
	print_message("ip_state 127.0.0.3: %s\n", v);
	assert_int_equal(strncmp(v, "quarantined east 1 true ", 24), 0);
	assert_non_null(strstr(v, "blocked using zen.spamhaus.org"));
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM ip_state WHERE provider = '' AND ip IN ('127.0.0.3', "
					 "'127.0.0.4') AND state = 'healthy'"),
			 2);
	/* what operators see: `ips` as JSON (GET /v1/ips has the same) and as
	 * Prometheus metrics */
	{
		static char out[65536];
		const char *js[] = { EMV_COORDINATOR, "ips", "--database", pg_url, "--region", "east", NULL };
		const char *pm[] = { EMV_COORDINATOR, "ips", "--database", pg_url, "--format", "prometheus", NULL };
		assert_int_equal(run_argv(out, sizeof out, js), 0);
		assert_non_null(strstr(out, "\"ip\": \"127.0.0.3\""));
		assert_null(strstr(out, "127.0.0.4")); /* west is filtered out */
		assert_non_null(strstr(out, "\"state\": \"quarantined\""));
		assert_non_null(strstr(out, "\"blocks\": 1"));
		assert_non_null(strstr(out, "blocked using zen.spamhaus.org"));
		assert_int_equal(run_argv(out, sizeof out, pm), 0);
		assert_non_null(
			strstr(out,
			       "emailverify_ip_state{ip=\"127.0.0.3\",provider=\"mx:mx.blocked.test\",region=\"east\","
			       "state=\"quarantined\"} 1\n"));
		assert_non_null(strstr(out,
				       "emailverify_ip_blocks_total{ip=\"127.0.0.3\",provider=\"mx:mx.blocked.test\","
				       "region=\"east\"} 1\n"));
		assert_non_null(strstr(out,
				       "emailverify_ip_sessions_total{ip=\"127.0.0.4\",provider=\"mx:mx.blocked.test\","
				       "region=\"west\"} ")); /* blocked.test, maybe accept.test */
		assert_non_null(strstr(out,
				       "emailverify_ip_rate_ratio{ip=\"127.0.0.3\",provider=\"mx:mx.blocked.test\","
				       "region=\"east\"} 0.000\n"));
	}
	/* three addresses (and maybe the catch-all probe) asked from .4 */
	assert_true(pg_long(pg_url, "SELECT rcpts FROM ip_state WHERE ip = '127.0.0.4' AND provider = "
				    "(SELECT provider FROM ip_state WHERE ip = '127.0.0.3' AND provider <> '')") >= 3);
}

/* Every live region quarantined for the provider: the batch waits on the
 * retry topic (due when the first quarantine ends) instead of being sent
 * anywhere; its addresses show unknown/blocked, not final, meanwhile. */
static void do_test_all_regions_blocked_waits(void **state)
{
	char job[64], v[512];
	long mark = test_file_size(EMV_WORLD_DIR "/smtpd.log");
	pid_t east;

	/* west's address quarantined for the provider, as its worker would
	 * say (a newer row than the worker's own, so it stands) */
	exec_sql("UPDATE ip_state SET state = 'quarantined', until = now() + interval '10 min',"
		 " updated_at = now() + interval '1 min' WHERE ip = '127.0.0.4' AND provider = "
		 "(SELECT provider FROM ip_state WHERE ip = '127.0.0.3' AND provider <> '')");
	exec_sql("UPDATE ip_state SET updated_at = now() WHERE provider = ''");
	test_write_file(RUN "/list2.csv", "email\nregw1@blocked.test\n");
	start_job(RUN "/list2.csv", job, sizeof job);
	{
		const char *w[] = WORKER("east2", RUN "/east.conf", "0");
		const char *r[] = ROUTER("0");
		const char *k[] = SINK;
		char sql[256], *out;
		pid_t router = spawn_logged(r, RUN "/router2.log"), sink = spawn_logged(k, RUN "/sink2.log");
		east = spawn_logged(w, RUN "/east2.log");
		/* the temporary verdict arrives; the batch waits (not due for 10 min) */
		snprintf(sql, sizeof sql, "SELECT count(*) FROM results WHERE job_id = '%s' AND reason = 'blocked'",
			 job);
		wait_for(1, 120, sql);
		sleep(2);
		stop(east);
		stop(router);
		stop(sink);
		out = slurp(RUN "/router2.log");
		print_message("%s", strstr(out, "router:") ? strstr(out, "router:") : out);
		assert_non_null(strstr(out, "1 reroutes (0 to another region, 1 waiting)"));
		free(out);
	}
	str_of("SELECT r.status || ' ' || r.reason || ' ' || r.final || ' ' || r.region || ' ' || r.detail"
	       " FROM results r WHERE r.job_id = (SELECT id FROM jobs ORDER BY created_at DESC LIMIT 1)",
	       v, sizeof v);
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'done'", job), 0);
	print_message("result: %s\n", v);
	assert_int_equal(strncmp(v, "unknown blocked false east every source address of region east is quarantined",
				 77),
			 0);
	/* nobody asked blocked.test from .4 */
	assert_int_equal(log_count(mark, "127.0.0.14 127.0.0.4 RCPT", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_blocked_region_hands_over),
		cmocka_unit_test(do_test_all_regions_blocked_waits),
	};
	run_names_init(&nm, "regions");
	env_value(EMV_CLUSTER_RUN "/pg-run/pg.env", "EMV_PG_URL", pg_url, sizeof pg_url);
	env_value(EMV_CLUSTER_RUN "/kafka-run/kafka.env", "EMV_KAFKA_BROKERS", brokers, sizeof brokers);
	return cmocka_run_group_tests_name("regions", tests, NULL, NULL);
}
