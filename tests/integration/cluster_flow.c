/* SPDX-License-Identifier: Apache-2.0 */
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
#include "pg_harness.h"

static char pg_url[512], brokers[256], brokers3[256];


/* ingest LIST and split it into batches of 2: the job id into job; the
 * split's output stays in out */
static void start_job(const char *list, char *job, size_t joblen, char *out, size_t outlen)
{
	/* --fresh: these tests reuse addresses and test the workers' path, not
	 * the verdict cache's (integration.cache_run) */
	const char *ingest[] = { EMV_COORDINATOR, "ingest", "--database", pg_url, "--fresh", list, NULL };
	const char *p;
	assert_int_equal(run_argv(out, outlen, ingest), 0);
	p = strstr(out, "job ");
	assert_non_null(p);
	snprintf(job, joblen, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
	{
		const char *split[] = { EMV_COORDINATOR, "split",	"--database", pg_url, "--brokers",
					brokers,	 "--batch-max", "2",	      job,    NULL };
		assert_int_equal(run_argv(out, outlen, split), 0);
	}
}

static void run_sink(char *out, size_t outlen)
{
	const char *argv[] = { EMV_COORDINATOR, "sink",		"--database", pg_url, "--brokers",
			       brokers,		"--until-idle", "3000",	      NULL };
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

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	assert_non_null(f);
	fread(buf, 1, 65535, f);
	fclose(f);
	return buf;
}

/* The export (design step 5): input order, one line per input row, the
 * duplicate with its first row's verdict, the evidence of each result. */
static void check_export(const char *job)
{
	char out[4096], *csv, *jl, *line, *save;
	const char *path = EMV_CLUSTER_RUN "/flow-export.csv", *jpath = EMV_CLUSTER_RUN "/flow-export.jsonl";
	const char *x1[] = { EMV_COORDINATOR, "export", "--database", pg_url, "-o", path, job, NULL };
	const char *x2[] = { EMV_COORDINATOR, "export", "--database", pg_url,	       "-o", jpath,
			     "--format",      "jsonl",	"--status",   "undeliverable", job,  NULL };
	const char *bad[] = { EMV_COORDINATOR, "export", "--database", pg_url, "nosuchjob", NULL };
	const char *expect[] = {
		"alice@accept.test,deliverable,accepted,",   "nobody@accept.test,undeliverable,mailbox_not_found,",
		"x@catchall.test,risky,catch_all,",	     "x@nullmx.test,undeliverable,null_mx,",
		"bad address,undeliverable,invalid_syntax,", "bob@accept.test,deliverable,accepted,",
		"u1@toomany.test,deliverable,accepted,",     "u2@toomany.test,deliverable,accepted,",
		"u3@toomany.test,deliverable,accepted,",     "u4@toomany.test,deliverable,accepted,",
		"alice@accept.test,deliverable,accepted,",
	};
	int n = 0;

	assert_int_equal(run_capture(out, sizeof out, x1, 1), 0);
	assert_non_null(strstr(out, "11 rows exported"));
	csv = slurp(path);
	line = strtok_r(csv, "\n", &save);
	assert_non_null(line);
	assert_int_equal(strncmp(line, "email,status,reason,safe_to_send,flags,did_you_mean,detail,mx_host", 66), 0);
	while ((line = strtok_r(NULL, "\n", &save))) {
		assert_true(n < 11);
		if (strncmp(line, expect[n], strlen(expect[n])) != 0)
			fail_msg("export line %d: expected '%s...', got '%s'", n + 1, expect[n], line);
		if (n == 0) /* the evidence of the verdict: MX, its address, the reply */
			assert_non_null(strstr(line, ",mx1.accept.test,127.0.0.10,"));
		if (n == 10) /* the duplicate names its first row and keeps its own input */
			assert_non_null(strstr(line, ",1,11,alice@ACCEPT.test"));
		n++;
	}
	assert_int_equal(n, 11);
	free(csv);

	assert_int_equal(run_capture(out, sizeof out, x2, 1), 0);
	assert_non_null(strstr(out, "3 rows exported"));
	jl = slurp(jpath);
	assert_non_null(strstr(jl, "\"email\":\"bad address\""));
	n = 0;
	for (line = strtok_r(jl, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++)
		assert_non_null(strstr(line, "\"status\":\"undeliverable\""));
	assert_int_equal(n, 3);
	free(jl);

	assert_int_not_equal(run_capture(out, sizeof out, bad, 1), 0);
	assert_non_null(strstr(out, "no job 'nosuchjob'"));
}

static void do_test_end_to_end(void **state)
{
	char out[8192], job[64];
	const char *list = EMV_CLUSTER_RUN "/flow.csv";
	FILE *f = fopen(list, "w");
	fputs("email\nalice@accept.test\nnobody@accept.test\nx@catchall.test\nx@nullmx.test\nbad address\n"
	      "bob@accept.test\nu1@toomany.test\nu2@toomany.test\nu3@toomany.test\nu4@toomany.test\n"
	      "alice@ACCEPT.test\n",
	      f);
	fclose(f);
	start_job(list, job, sizeof job, out, sizeof out);
	assert_non_null(strstr(out, "9 addresses in"));
	{
		const char *argv[] = { EMV_WORKER,     "--brokers", brokers,	"--name", "w1",
				       "--until-idle", "4000",	    WORLD_OPTS, NULL };
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
	check_export(job);
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
		fprintf(f, "k%d@slow.test\n", i); /* 300 ms per reply: slow batches */
	fputs("alice@slow.test\nalice@accept.test\nbob@accept.test\nnobody@accept.test\n", f);
	fclose(f);
	start_job(list, job, sizeof job, out, sizeof out);
	{
		const char *w1[] = { EMV_WORKER,	  "--brokers", brokers,	   "--name", "doomed",
				     "--session-timeout", "6000",      WORLD_OPTS, NULL };
		pid_t pid = spawn(w1);
		usleep(2500000); /* joined the group, mid-way through the slow batches */
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		assert_true(WIFSIGNALED(status));
	}
	{
		/* idle long enough to outlast the dead worker's 6 s session and the rebalance */
		const char *w2[] = { EMV_WORKER, "--brokers",	      brokers, "--name",   "w2", "--until-idle",
				     "15000",	 "--session-timeout", "6000",  WORLD_OPTS, NULL };
		assert_int_equal(run_argv(out, sizeof out, w2), 0);
	}
	run_sink(out, sizeof out);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job);
	assert_int_equal(pg_long(pg_url, "%s", sql), 10);
	for (long r = 1; r <= 6; r++)
		verdict(job, r, "undeliverable", "mailbox_not_found");
	verdict(job, 7, "deliverable", "accepted");
	verdict(job, 8, "deliverable", "accepted");
	snprintf(sql, sizeof sql, "SELECT n_final FROM jobs WHERE id = '%s' AND state = 'done'", job);
	assert_int_equal(pg_long(pg_url, "%s", sql), 10); /* counted once each, whatever was replayed */
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
		const char *w[] = { EMV_WORKER, "--brokers",	     brokers, "--name",	  "w3", "--until-idle",
				    "20000",	"--session-timeout", "30000", WORLD_OPTS, NULL };
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
	assert_int_equal(pg_long(pg_url, "%s", sql), 6);
	verdict(job, 5, "deliverable", "accepted");
	verdict(job, 6, "deliverable", "accepted");
	snprintf(sql, sizeof sql, "SELECT n_final FROM jobs WHERE id = '%s' AND state = 'done'", job);
	assert_int_equal(pg_long(pg_url, "%s", sql), 6);
}

/* The retry topic: greylisted addresses leave the batch (whose offset is
 * committed) and come back as a new batch after --retry-delay; the second
 * attempt gets past the greylisting.  With one attempt only, the temporary
 * verdict is final: unknown / greylisted, with the server's reply. */
static void do_test_retry_topic(void **state)
{
	char out[8192], job[64], sql[512];
	const char *list = EMV_CLUSTER_RUN "/retry.csv";
	FILE *f = fopen(list, "w");
	/* recipients no other test asks: greylisting remembers triplets */
	fputs("email\ncf-retry1@greylist.test\ncf-retry2@greylist.test\nbob@accept.test\n", f);
	fclose(f);
	start_job(list, job, sizeof job, out, sizeof out);
	{
		/* greylisting asks for 2 s; the engine may wait 1 s at most, so
		 * the retry topic has to do it */
		const char *w[] = { EMV_WORKER, "--brokers",	 brokers, "--name",
				    "wr",	"--until-idle",	 "6000",  "--max-retry-time",
				    "1",	"--retry-delay", "3000",  "--retry-attempts",
				    "2",	WORLD_OPTS,	 NULL };
		assert_int_equal(run_capture(out, sizeof out, w, 1), 0);
		if (!strstr(out, "2 retried in 1 retry batches"))
			fail_msg("worker: %s", out);
	}
	run_sink(out, sizeof out);
	verdict(job, 1, "undeliverable", "mailbox_not_found"); /* the world's answer after the wait */
	verdict(job, 2, "undeliverable", "mailbox_not_found");
	verdict(job, 3, "deliverable", "accepted");
	snprintf(sql, sizeof sql, "SELECT attempts FROM results WHERE job_id = '%s' AND address_id = 1", job);
	assert_true(pg_long(pg_url, "%s", sql) >= 2); /* asked in both attempts */
	snprintf(sql, sizeof sql, "SELECT n_final FROM jobs WHERE id = '%s' AND state = 'done'", job);
	assert_int_equal(pg_long(pg_url, "%s", sql), 3);

	f = fopen(list, "w");
	fputs("email\ncf-retry3@greylist.test\n", f);
	fclose(f);
	start_job(list, job, sizeof job, out, sizeof out);
	{
		const char *w[] = { EMV_WORKER, "--brokers",	    brokers, "--name",		 "wr1", "--until-idle",
				    "3000",	"--max-retry-time", "1",     "--retry-attempts", "1",	WORLD_OPTS,
				    NULL };
		assert_int_equal(run_capture(out, sizeof out, w, 1), 0);
		if (!strstr(out, "0 retried in 0 retry batches"))
			fail_msg("worker: %s", out);
	}
	run_sink(out, sizeof out);
	verdict(job, 1, "unknown", "greylisted");
	snprintf(sql, sizeof sql, "SELECT count(*) FROM results WHERE job_id = '%s' AND smtp_code = 451", job);
	assert_int_equal(pg_long(pg_url, "%s", sql), 1);

	/* the retry topic follows the policy by reason: a source address that
	 * is blocked, with no other to ask from, is final at once, attempts
	 * left or not (it used to go round the topic until they ran out) */
	f = fopen(list, "w");
	fputs("email\nalice@blocked.test\n", f);
	fclose(f);
	start_job(list, job, sizeof job, out, sizeof out);
	{
		const char *w[] = { EMV_WORKER, "--brokers",	    brokers,	 "--name",
				    "wr2",	"--until-idle",	    "3000",	 "--max-retry-time",
				    "1",	"--retry-attempts", "3",	 "--retry-delay",
				    "1000",	"--source-ip",	    "127.0.0.3", WORLD_OPTS,
				    NULL };
		assert_int_equal(run_capture(out, sizeof out, w, 1), 0);
		if (!strstr(out, "0 retried in 0 retry batches"))
			fail_msg("worker: %s", out);
	}
	run_sink(out, sizeof out);
	verdict(job, 1, "unknown", "blocked");
}

/* A broker of a three-node cluster (replication 3, min.insync 2) is
 * killed -9 in the middle of a job: partition leaders and the group
 * coordinator move, the worker and the sink carry on, nothing is lost. */
static void do_test_broker_killed_in_3_node_cluster(void **state)
{
	char out[8192], job[64], sql[512], saved[256], cmd[1024];
	const char *list = EMV_CLUSTER_RUN "/kill3.csv";
	FILE *f = fopen(list, "w");
	int status;
	pid_t pid;

	snprintf(saved, sizeof saved, "%s", brokers);
	snprintf(brokers, sizeof brokers, "%s", brokers3);
	fputs("email\n", f);
	for (int i = 1; i <= 8; i++)
		fprintf(f, "b%d@slow.test\n", i);
	fputs("alice@slow.test\nalice@accept.test\nbob@accept.test\nnobody@accept.test\n", f);
	fclose(f);
	start_job(list, job, sizeof job, out, sizeof out);
	{
		const char *w[] = { EMV_WORKER, "--brokers",	     brokers, "--name",	  "w3n", "--until-idle",
				    "15000",	"--session-timeout", "10000", WORLD_OPTS, NULL };
		pid = spawn(w);
	}
	sleep(2); /* probing the slow server, results on their way */
	snprintf(cmd, sizeof cmd,
		 "EMV_KAFKA_PORT=19292 bash %s/tests/cluster/kafka/stop.sh %s/kafka3-run --node 1 --kill >/dev/null 2>&1",
		 EMV_SOURCE_DIR, EMV_CLUSTER_RUN);
	assert_int_equal(system(cmd), 0);
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* results are spread over the partitions (keyed by domain shard); a
	 * partition whose leader was on the killed node is readable again
	 * only after the election, which may outlast one sink's 3 s idle
	 * exit: run it again (from its committed offsets) until all are in */
	snprintf(sql, sizeof sql, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job);
	for (int i = 0; i < 10 && pg_long(pg_url, "%s", sql) < 12; i++)
		run_sink(out, sizeof out);
	assert_int_equal(pg_long(pg_url, "%s", sql), 12);
	for (long r = 1; r <= 8; r++)
		verdict(job, r, "undeliverable", "mailbox_not_found");
	verdict(job, 9, "deliverable", "accepted");
	verdict(job, 10, "deliverable", "accepted");
	snprintf(sql, sizeof sql, "SELECT n_final FROM jobs WHERE id = '%s' AND state = 'done'", job);
	assert_int_equal(pg_long(pg_url, "%s", sql), 12);
	/* the node comes back for whoever runs next */
	snprintf(cmd, sizeof cmd,
		 "EMV_KAFKA_PORT=19292 bash %s/tests/cluster/kafka/start.sh %s/kafka3-run --nodes 3 >/dev/null 2>&1",
		 EMV_SOURCE_DIR, EMV_CLUSTER_RUN);
	assert_int_equal(system(cmd), 0);
	snprintf(brokers, sizeof brokers, "%s", saved);
}


/* 1 when the file holds needle. */
static int file_has(const char *path, const char *needle)
{
	char *t;
	if (access(path, R_OK) != 0)
		return 0; /* not made yet */
	t = slurp(path);
	int has = strstr(t, needle) != NULL;
	free(t);
	return has;
}

/* Fail with the file's text (its first 64 KiB). */
#define fail_with_file(path, what)             \
	do {                                   \
		char *t_ = slurp(path);        \
		fail_msg("%s:\n%s", what, t_); \
	} while (0)

/* ingest LIST with a deadline (coordinator ingest --deadline D) and split
 * it into batches of 2: the job id into job */
static void start_job_deadline(const char *list, const char *deadline, char *job, size_t joblen)
{
	char out[4096];
	const char *ingest[] = { EMV_COORDINATOR, "ingest", "--database", pg_url, "--deadline", deadline, list, NULL };
	const char *p;
	assert_int_equal(run_argv(out, sizeof out, ingest), 0);
	p = strstr(out, "job ");
	assert_non_null(p);
	snprintf(job, joblen, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
	{
		const char *split[] = { EMV_COORDINATOR, "split",	"--database", pg_url, "--brokers",
					brokers,	 "--batch-max", "2",	      job,    NULL };
		assert_int_equal(run_argv(out, sizeof out, split), 0);
	}
}

/* One row's "status|reason|final|smtp_code|mx_host|detail". */
static const char *row_text(const char *job, long row)
{
	static char buf[1024];
	PGconn *c = PQconnectdb(pg_url);
	char sql[512];
	PGresult *r;
	snprintf(sql, sizeof sql,
		 "SELECT concat_ws('|', status, reason, final, coalesce(smtp_code, 0), coalesce(mx_host, ''), detail)"
		 " FROM results WHERE job_id = '%s' AND address_id = %ld",
		 job, row);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("row %ld: no result (%s)", row, PQresultErrorMessage(r));
	snprintf(buf, sizeof buf, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return buf;
}

/*
 * A job's deadline with a real broker, workers and sink as daemons
 * (coordinator/emv_deadline.h): tarpit.test answers nothing before the
 * deadline (14 s; its banner timeout is 20 s), greylist.test and the
 * unreachable down1.test answer something temporary whose retry (60 s)
 * would come after it.  The job is done at its deadline: the greylisted
 * address unknown / greylisted with the 451 as evidence, the unreachable
 * one unknown / connection_failed with the refused connect, both "not asked again: the deadline comes
 * first" (the worker's side), the tarpit's "not asked: the deadline has
 * come" (the sink's side); the tarpit's answer that comes after the
 * deadline changes nothing.  (14 s leaves a worker on a loaded machine time
 * to start, read the domain-state topic and join its group: with 8 s it took
 * the batches after the deadline under a parallel ctest.)
 */
static void do_test_deadline(void **state)
{
	char out[8192], job[64], grey[64], tar[64], slog[256];
	const char *list = EMV_CLUSTER_RUN "/deadline.csv";
	FILE *f = fopen(list, "w");
	pid_t sink;
	int st;

	snprintf(grey, sizeof grey, "cf-dl%d@greylist.test", (int)getpid());
	snprintf(tar, sizeof tar, "cf-dl%d@tarpit.test", (int)getpid());
	snprintf(slog, sizeof slog, "%s/deadline-sink.log", EMV_CLUSTER_RUN);
	fprintf(f, "email\nalice@accept.test\n%s\nx@down1.test\n%s\n", grey, tar);
	fclose(f);
	start_job_deadline(list, "14s", job, sizeof job);
	{
		const char *argv[] = { EMV_COORDINATOR, "sink",		"--database", pg_url, "--brokers",
				       brokers,		"--until-idle", "18000",      NULL };
		sink = spawn_logged(argv, slog);
	}
	{
		const char *w[] = { EMV_WORKER,	 "--brokers",
				    brokers,	 "--name",
				    "wdl",	 "--until-idle",
				    "4000",	 "--max-retry-time",
				    "1",	 "--retry-delay",
				    "60000",	 WORLD_OPTS,
				    "--timeout", "20",
				    NULL };
		assert_int_equal(run_capture(out, sizeof out, w, 1), 0);
		print_message("worker: %s",
			      strstr(out, "emailverify-worker wdl:") ? strstr(out, "emailverify-worker wdl:") : out);
	}
	waitpid(sink, &st, 0);
	run_sink(out, sizeof out); /* whatever came late */
	assert_int_equal(pg_long(pg_url,
				 "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'done' AND n_final = 4 AND n_unknown = 3"
				 " AND finished_at < created_at + interval '17 s'",
				 job),
			 1);
	verdict(job, 1, "deliverable", "accepted");
	if (!strstr(row_text(job, 2), "unknown|greylisted|t|451|mx.greylist.test|") ||
	    !strstr(row_text(job, 2), "not asked again: the deadline comes first"))
		fail_msg("the greylisted address: %s", row_text(job, 2));
	if (strncmp(row_text(job, 3), "unknown|connection_failed|t|", 28) != 0 ||
	    !strstr(row_text(job, 3), "Connection refused") ||
	    !strstr(row_text(job, 3), "not asked again: the deadline comes first"))
		fail_msg("the unreachable address: %s", row_text(job, 3));
	assert_string_equal(row_text(job, 4), "unknown|timeout|t|0||not asked: the deadline has come");
}

/* A retry batch waiting on the retry topic for a job past its deadline is
 * dropped by the worker that takes it, not asked: the address keeps the
 * evidence of its last answer and the job is done. */
static void do_test_deadline_drops_retry(void **state)
{
	char out[8192], job[64], grey[64], wlog[256];
	const char *list = EMV_CLUSTER_RUN "/deadline-drop.csv";
	FILE *f = fopen(list, "w");
	int st;
	pid_t w1, sink;

	snprintf(grey, sizeof grey, "cf-dr%d@greylist.test", (int)getpid());
	snprintf(wlog, sizeof wlog, "%s/deadline-w1.log", EMV_CLUSTER_RUN);
	fprintf(f, "email\n%s\n", grey);
	fclose(f);
	start_job_deadline(list, "15s", job, sizeof job);
	{
		const char *argv[] = { EMV_COORDINATOR, "sink", "--database", pg_url, "--brokers", brokers, NULL };
		/* as in production: stores, and makes the job done at its deadline */
		sink = spawn_logged(argv, EMV_CLUSTER_RUN "/deadline-drop-sink.log");
	}
	{
		/* the retry is due 2 s after the 451, before the deadline: the
		 * batch goes to the retry topic (it would be final at once if its
		 * retry came after the deadline) */
		const char *w[] = { EMV_WORKER, "--brokers",	 brokers, "--name", "wdr1",	"--max-retry-time",
				    "1",	"--retry-delay", "2000",  "-v",	    WORLD_OPTS, NULL };
		unlink(wlog); /* an earlier run's must not be read */
		w1 = spawn_logged(w, wlog);
	}
	/* the 451, then its retry batch on the retry topic, held (due in 3 s) */
	for (int i = 0; i < 300 && !file_has(wlog, "held: due in"); i++)
		usleep(100000);
	if (!file_has(wlog, "held: due in")) {
		kill(w1, SIGKILL);
		waitpid(w1, &st, 0);
		kill(sink, SIGKILL);
		waitpid(sink, &st, 0);
		fail_with_file(wlog, "no retry batch held");
	}
	kill(w1, SIGTERM); /* it stays on the topic */
	waitpid(w1, &st, 0);
	/* its 451 stored, temporary, before the deadline */
	for (int i = 0;
	     i < 100 && pg_long(pg_url, "SELECT count(*) FROM results WHERE job_id = '%s' AND NOT final", job) == 0;
	     i++)
		usleep(100000);
	if (pg_long(pg_url, "SELECT count(*) FROM results WHERE job_id = '%s' AND NOT final", job) != 1) {
		kill(sink, SIGTERM);
		waitpid(sink, &st, 0);
		fail_with_file(EMV_CLUSTER_RUN "/deadline-drop-sink.log", "the 451 was not stored within 10 s");
	}
	/* past the deadline */
	for (int i = 0;
	     i < 300 && pg_long(pg_url, "SELECT count(*) FROM jobs WHERE id = '%s' AND deadline_at < now()", job) == 0;
	     i++)
		usleep(100000);
	{
		/* the world's log is written in blocks: the worker says what it asked */
		const char *w[] = { EMV_WORKER,	    "--brokers", brokers,    "--name", "wdr2",
				    "--until-idle", "4000",	 WORLD_OPTS, NULL };
		assert_int_equal(run_capture(out, sizeof out, w, 1), 0);
		if (!strstr(out, "wdr2: 0 batches, 0 results,") ||
		    !strstr(out, " 1 batches dropped after their job's deadline"))
			fail_msg("the second worker asked the retry of a job past its deadline: %s", out);
	}
	for (int i = 0;
	     i < 50 && pg_long(pg_url, "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'done'", job) == 0; i++)
		usleep(100000);
	kill(sink, SIGTERM);
	waitpid(sink, &st, 0);
	assert_int_equal(pg_long(pg_url, "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'done'", job), 1);
	if (!strstr(row_text(job, 1), "unknown|greylisted|t|451|mx.greylist.test|") ||
	    !strstr(row_text(job, 1), "not asked again: the deadline has come"))
		fail_msg("the greylisted address: %s", row_text(job, 1));
}

/*
 * librdkafka keeps a paused partition paused across a rebalance: a worker
 * holding a retry batch (its partition paused until the batch is due) that
 * loses the partition when a second worker joins and gets it back when that
 * one leaves must read the batch again and ask it when due.  Before, the
 * partition stayed paused for ever and the job never ended (the shutdown
 * test's continued `run --job` that hung 300 s).
 */
static void do_test_held_retry_survives_rebalance(void **state)
{
	char job[64], grey[64], alog[256], out[8192];
	const char *list = EMV_CLUSTER_RUN "/rebalance.csv";
	FILE *f = fopen(list, "w");
	pid_t a, b;
	int st;

	snprintf(grey, sizeof grey, "cf-rb%d@greylist.test", (int)getpid());
	snprintf(alog, sizeof alog, "%s/rebalance-a.log", EMV_CLUSTER_RUN);
	fprintf(f, "email\n%s\n", grey);
	fclose(f);
	start_job(list, job, sizeof job, out, sizeof out);
	{
		const char *w[] = { EMV_WORKER, "--brokers",
				    brokers,	"--name",
				    "wra",	"--until-idle",
				    "15000",	"--max-retry-time",
				    "1",	"--retry-delay",
				    "8000",	"--retry-attempts",
				    "2",	"--session-timeout",
				    "6000",	"-v",
				    WORLD_OPTS, NULL };
		unlink(alog);
		a = spawn_logged(w, alog);
	}
	for (int i = 0; i < 300 && !file_has(alog, "held: due in"); i++)
		usleep(100000);
	if (!file_has(alog, "held: due in")) {
		kill(a, SIGKILL);
		waitpid(a, &st, 0);
		fail_with_file(alog, "no retry batch held");
	}
	{
		const char *w[] = { EMV_WORKER,		 "--brokers", brokers,	  "--name", "wrb",
				    "--session-timeout", "6000",      WORLD_OPTS, NULL };
		b = spawn(w);
	}
	sleep(3); /* joined: the partitions are shared out */
	kill(b, SIGTERM);
	waitpid(b, &st, 0);
	waitpid(a, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	run_sink(out, sizeof out);
	/* asked again when due: past the greylisting */
	if (pg_long(pg_url, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job) != 1)
		fail_with_file(alog, "the held retry batch was never asked after the rebalance");
	verdict(job, 1, "undeliverable", "mailbox_not_found");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_end_to_end),
		cmocka_unit_test(do_test_worker_killed_mid_job),
		cmocka_unit_test(do_test_broker_down_for_10s),
		cmocka_unit_test(do_test_retry_topic),
		cmocka_unit_test(do_test_broker_killed_in_3_node_cluster),
		cmocka_unit_test(do_test_deadline),
		cmocka_unit_test(do_test_deadline_drops_retry),
		cmocka_unit_test(do_test_held_retry_survives_rebalance),
	};
	env_value(EMV_CLUSTER_RUN "/pg-run/pg.env", "EMV_PG_URL", pg_url, sizeof pg_url);
	env_value(EMV_CLUSTER_RUN "/kafka-run/kafka.env", "EMV_KAFKA_BROKERS", brokers, sizeof brokers);
	env_value(EMV_CLUSTER_RUN "/kafka3-run/kafka.env", "EMV_KAFKA_BROKERS", brokers3, sizeof brokers3);
	return cmocka_run_group_tests_name("cluster_flow", tests, NULL, NULL);
}
