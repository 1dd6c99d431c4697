/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shutdown.c - README.md "Stopping": SIGTERM/SIGINT stop `emailverify run`,
 * `emailverify-worker` and `emailverify-coordinator serve` within their
 * shutdown timeout (10 s by default) whatever is waiting, with nothing
 * lost and nothing asked again that had its verdict; a second signal exits
 * at once.  Each stop happens while a retry batch is held (greylist.test
 * answered 451 and the retry delay is long) and a session hangs on
 * tarpit.test (no banner, longer timeout than the shutdown's).
 *
 * PostgreSQL is the quick start's private one (deploy/local-pg.sh, unix
 * socket only); Kafka is `serve --embedded-kafka`.  Fixture "world".
 */
#include <signal.h>
#include <time.h>
#include "cluster_harness.h"
#include "pg_harness.h"

static char url[1024];
static const char *pg_dir = EMV_BUILD_DIR "/shutdown-pg";
#define RUN EMV_BUILD_DIR "/shutdown-run"

/* Children still running when a test fails: killed in teardown. */
static pid_t kids[16];
static int nkids;

static int setup(void **state)
{
	char cmd[2048];
	FILE *p;
	snprintf(cmd, sizeof cmd, "mkdir -p %s && bash %s/deploy/local-pg.sh start %s", RUN, EMV_SOURCE_DIR, pg_dir);
	p = popen(cmd, "r");
	if (!p || !fgets(url, sizeof url, p)) {
		fprintf(stderr, "local-pg.sh did not start\n");
		return -1;
	}
	url[strcspn(url, "\n")] = '\0';
	return pclose(p) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[2048];
	for (int i = 0; i < nkids; i++)
		if (kill(kids[i], SIGKILL) == 0)
			waitpid(kids[i], NULL, 0);
	snprintf(cmd, sizeof cmd, "bash %s/deploy/local-pg.sh stop %s", EMV_SOURCE_DIR, pg_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait up to secs for pid; its exit code (or 128 + signal), -1 if still running. */
static int wait_exit(pid_t pid, double secs)
{
	double until = now_s() + secs;
	int status;
	do {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	} while (now_s() < until);
	return -1;
}

/* Sessions tarpit.test has accepted so far (it never sends a banner). */
static int count_in_world_log(const char *pat);

static int tarpit_sessions(void)
{
	return count_in_world_log(" 127.0.0.16 127.0.0.1 TARPIT ");
}

/* Wait up to 30 s for a session to tarpit.test beyond the `before` seen. */
static void wait_tarpit(int before)
{
	for (int i = 0; i < 300 && tarpit_sessions() <= before; i++)
		usleep(100000);
	assert_true(tarpit_sessions() > before);
}

/* How many RCPT TO:<addr> the test world's servers have seen so far. */
static int rcpts_seen(const char *addr)
{
	char pat[320];
	snprintf(pat, sizeof pat, " RCPT %s ", addr);
	return count_in_world_log(pat);
}

/* The times (unix ms, the world's clock) of the RCPT TO:<addr> the test
 * world's servers have seen, in order; how many (at most max). */
static int rcpt_times(const char *addr, long long *t, int max)
{
	char pat[320], line[1024];
	int n = 0;
	FILE *f = fopen(EMV_WORLD_DIR "/smtpd.log", "r");
	assert_non_null(f);
	snprintf(pat, sizeof pat, " RCPT %s ", addr);
	while (fgets(line, sizeof line, f))
		if (strstr(line, pat) && n < max)
			t[n++] = atoll(line);
	fclose(f);
	return n;
}

static int count_in_world_log(const char *pat)
{
	char *log, *p;
	int n = 0;
	FILE *f = fopen(EMV_WORLD_DIR "/smtpd.log", "r");
	assert_non_null(f);
	log = calloc(1, 16 << 20);
	assert_non_null(log);
	(void)!fread(log, 1, (16 << 20) - 1, f);
	fclose(f);
	for (p = log; (p = strstr(p, pat)); p++)
		n++;
	free(log);
	return n;
}

static long final_of(const char *job, const char *addr)
{
	return pg_long(url,
		       "SELECT count(*) FROM results r JOIN addresses a ON a.job_id = r.job_id AND a.id = r.address_id"
		       " WHERE r.job_id = '%s' AND a.address = '%s' AND r.final",
		       job, addr);
}

#define Q_FINAL "SELECT count(*) FROM results WHERE job_id = '%s' AND final"
#define Q_TEMP "SELECT count(*) FROM results WHERE job_id = '%s' AND NOT final"
enum { FINAL, TEMP };

static long count_of(int which, const char *job)
{
	return which == FINAL ? pg_long(url, Q_FINAL, job) : pg_long(url, Q_TEMP, job);
}

/* Wait up to secs until the count of final (or temporary) results reaches want. */
static void wait_count(const char *what, long want, double secs, int which, const char *job)
{
	double until = now_s() + secs;
	long n = 0;
	while (now_s() < until && (n = count_of(which, job)) < want)
		usleep(100000);
	if (n < want)
		fail_msg("%s: %ld, wanted %ld within %.0f s", what, n, want, secs);
}

static const char *file_text(const char *path)
{
	static char buf[1 << 16];
	FILE *f = fopen(path, "r");
	size_t n = 0;
	buf[0] = '\0';
	if (f) {
		n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}


static pid_t spawn(const char *const *argv, const char *log)
{
	pid_t pid = spawn_logged(argv, log);
	if (nkids < 16)
		kids[nkids++] = pid;
	return pid;
}

/* A local part nobody asked before (the greylisting server remembers who
 * passed): tag + this process id. */
static const char *fresh(const char *tag, const char *domain)
{
	static char buf[8][96];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 96, "%s-%d@%s", tag, (int)getpid(), domain);
	return b;
}

static void write_list(const char *path, const char *const *addrs)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("email\n", f);
	for (; *addrs; addrs++)
		fprintf(f, "%s\n", *addrs);
	fclose(f);
}

/* The job id from the first "job ID:" line of a log file. */
static void job_of_log(const char *log, char *job, size_t len, double secs)
{
	double until = now_s() + secs;
	const char *p;
	job[0] = '\0';
	while (now_s() < until) {
		p = strstr(file_text(log), "job ");
		if (p && strchr(p, ':')) {
			snprintf(job, len, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
			return;
		}
		usleep(50000);
	}
	fail_msg("no job id in %s:\n%s", log, file_text(log));
}

/* `run` stopped by SIGTERM while greylist.test's retry batch is held (10
 * minutes) and a session waits for tarpit.test's banner (30 s): exit 130
 * within the default 10 s, the verdicts known are in PostgreSQL, and
 * `run --job` finishes the job without asking an address with a verdict,
 * nor the greylisted one before its retry is due (its temporary result's
 * time + the continued run's --retry-delay: the retry batch died with the
 * first run's embedded Kafka). */
static void do_test_run_sigterm_then_continue(void **state)
{
	const char *list = RUN "/run.csv", *out = RUN "/run.out", *log = RUN "/run.log";
	const char *addrs[] = { fresh("sdr1", "accept.test"), fresh("sdr2", "accept.test"),
				fresh("sdr3", "greylist.test"), fresh("sdr4", "tarpit.test"), NULL };
	const char *argv[] = { EMV_BIN,	    "run",
			       list,	    "-o",
			       out,	    "--database",
			       url,	    "--retry-delay",
			       "600000",    "--max-retry-time",
			       "1",	    WORLD_OPTS,
			       "--timeout", "30",
			       NULL };
	char job[64];
	int seen[4], code, n;
	double t0, took;
	pid_t pid;
	long long greylisted_at, t[16];
	const int delay_ms = 12000; /* the continued run's --retry-delay */

	int tarpit = tarpit_sessions();

	write_list(list, addrs);
	unlink(log); /* job_of_log must not read an earlier run's */
	pid = spawn(argv, log);
	job_of_log(log, job, sizeof job, 30);
	wait_tarpit(tarpit);
	wait_count("final verdicts (accept.test)", 2, 60, FINAL, job);
	wait_count("temporary verdicts (greylist.test)", 1, 60, TEMP, job);
	usleep(500000); /* the retry batch is read and held */
	for (int i = 0; i < 4; i++)
		seen[i] = rcpts_seen(addrs[i]);
	assert_int_equal(rcpt_times(addrs[2], t, 16), 1);
	greylisted_at = t[0];
	t0 = now_s();
	kill(pid, SIGTERM);
	code = wait_exit(pid, 30);
	took = now_s() - t0;
	print_message("run: exit %d %.2f s after SIGTERM\n", code, took);
	if (code != 130 || took > 10.0)
		fail_msg("run after SIGTERM: exit %d after %.2f s (wanted 130 within 10 s):\n%s", code, took,
			 file_text(log));
	assert_non_null(strstr(file_text(log), "continue with --job"));
	/* librdkafka's own lines (COMMITFAIL ... rebalance in progress, as the
	 * worker threads leave the group) only with -v */
	if (strstr(file_text(log), "|rdkafka#") || strstr(file_text(log), "COMMITFAIL"))
		fail_msg("run printed librdkafka's log at the stop:\n%s", file_text(log));
	assert_int_equal(pg_long(url, Q_FINAL, job), 2);
	assert_int_equal(final_of(job, addrs[2]), 0);
	assert_int_equal(final_of(job, addrs[3]), 0);
	{
		char clog[16384];
		char delay[16];
		const char *cont[] = { EMV_BIN,
				       "run",
				       "--job",
				       job,
				       "-o",
				       out,
				       "--database",
				       url,
				       "--retry-delay",
				       delay,
				       "--retry-attempts",
				       "1",
				       "--max-retry-time",
				       "1",
				       WORLD_OPTS,
				       "--timeout",
				       "2",
				       NULL };
		snprintf(delay, sizeof delay, "%d", delay_ms);
		if (run_capture(clog, sizeof clog, cont, 1) != 0)
			fail_msg("continued run:\n%s", clog);
		if (!strstr(clog, "(1 of them wait for their retry)"))
			fail_msg("continued run: the greylisted address was not sent waiting for its retry:\n%s", clog);
	}
	/* the greylisted address: asked again, never before its retry's time */
	n = rcpt_times(addrs[2], t, 16);
	assert_true(n > 1);
	for (int i = 1; i < n; i++) {
		print_message("greylisted address asked again %.1f s after its 451 (retry delay %.1f s)\n",
			      (double)(t[i] - greylisted_at) / 1000.0, delay_ms / 1000.0);
		if (t[i] < greylisted_at + delay_ms)
			fail_msg("%s asked again %lld ms after its 451, before its retry delay of %d ms", addrs[2],
				 t[i] - greylisted_at, delay_ms);
	}
	assert_int_equal(pg_long(url, Q_FINAL, job), 4);
	assert_int_equal(final_of(job, addrs[2]), 1);
	/* had their verdict: not asked again; the others were */
	assert_int_equal(rcpts_seen(addrs[0]), seen[0]);
	assert_int_equal(rcpts_seen(addrs[1]), seen[1]);
	assert_true(rcpts_seen(addrs[2]) > seen[2]);
	{
		char want[160];
		snprintf(want, sizeof want, "%s,undeliverable,mailbox_not_found", addrs[2]);
		assert_true(strstr(file_text(out), want) != NULL);
	}
}

/* A second signal while the first stop waits for a session: at once, 130. */
static void do_test_run_second_signal(void **state)
{
	const char *list = RUN "/run2.csv", *out = RUN "/run2.out", *log = RUN "/run2.log";
	const char *addrs[] = { fresh("sdr5", "tarpit.test"), NULL };
	const char *argv[] = { EMV_BIN, "run", list, "-o", out, "--database", url, WORLD_OPTS, "--timeout", "30", NULL };
	char job[64];
	int code;
	double t0, took;
	pid_t pid;

	int tarpit = tarpit_sessions();

	write_list(list, addrs);
	unlink(log); /* job_of_log must not read an earlier run's */
	pid = spawn(argv, log);
	job_of_log(log, job, sizeof job, 30);
	wait_tarpit(tarpit); /* the session to tarpit.test waits for its banner */
	kill(pid, SIGINT);
	/* the first stop waits for the session (up to 60% of 70% of 10 s) */
	code = wait_exit(pid, 1.0);
	if (code != -1)
		fail_msg("run stopped at once (%d) although a session was in flight:\n%s", code, file_text(log));
	t0 = now_s();
	kill(pid, SIGINT);
	code = wait_exit(pid, 10);
	took = now_s() - t0;
	print_message("run: exit %d %.2f s after the second SIGINT\n", code, took);
	if (code != 130 || took > 1.0)
		fail_msg("run after a second SIGINT: exit %d after %.2f s (wanted 130 at once):\n%s", code, took,
			 file_text(log));
	assert_non_null(strstr(file_text(log), "second signal"));
}

/* An earlier test's unfinished job would be split again by `serve
 * --embedded-kafka` and give the workers of a later one work of its own. */
static void cancel_open_jobs(void)
{
	pg_long(url, "WITH u AS (UPDATE jobs SET state = 'cancelled' WHERE state IN ('running', 'splitting')"
		     " RETURNING 1) SELECT count(*) FROM u");
}

/* The worker daemon and serve: a job split by `serve --embedded-kafka`;
 * worker 1 stops on SIGTERM while holding greylist.test's retry batch and
 * talking to tarpit.test: exit 0 within 10 s.  Worker 2 takes over and
 * gets a second signal mid-session: exit 130 at once.  Worker 3 finishes
 * the job: every address final, the ones final before the first stop
 * never asked again.  Then serve stops on SIGTERM within 10 s, exit 0. */
static void do_test_worker_and_serve(void **state)
{
	const char *list = RUN "/w.csv";
	const char *addrs[] = { fresh("sdw1", "accept.test"), fresh("sdw2", "accept.test"),
				fresh("sdw3", "greylist.test"), fresh("sdw4", "tarpit.test"), NULL };
	char brokers[256] = "", job[64] = "", out[4096];
	int seen[4], code;
	double t0, took;
	pid_t serve, w1, w2, w3;
	int tarpit;

	cancel_open_jobs();
	write_list(list, addrs);
	{
		const char *ing[] = { EMV_COORDINATOR, "ingest", "--database", url, "--name", "shutdown-w", list, NULL };
		if (run_capture(out, sizeof out, ing, 1) != 0)
			fail_msg("ingest:\n%s", out);
		{
			PGconn *c = PQconnectdb(url);
			PGresult *r =
				PQexec(c,
				       "SELECT id FROM jobs WHERE name = 'shutdown-w' ORDER BY created_at DESC LIMIT 1");
			assert_int_equal(PQntuples(r), 1);
			snprintf(job, sizeof job, "%s", PQgetvalue(r, 0, 0));
			PQclear(r);
			PQfinish(c);
		}
	}
	{
		const char *argv[] = { EMV_COORDINATOR, "serve", "--listen",	     "127.0.0.1:0",
				       "--database",	url,	 "--embedded-kafka", "--ready-file",
				       RUN "/ready",	NULL };
		unlink(RUN "/ready");
		serve = spawn(argv, RUN "/serve.log");
		for (int i = 0; i < 300 && access(RUN "/ready", F_OK) != 0; i++)
			usleep(100000);
		if (access(RUN "/ready", F_OK) != 0)
			fail_msg("serve did not become ready:\n%s", file_text(RUN "/serve.log"));
		env_value(RUN "/ready", "brokers", brokers, sizeof brokers);
	}
	{
		const char *argv[] = { EMV_WORKER,  "--brokers",
				       brokers,	    "--name",
				       "w1",	    "--retry-delay",
				       "6000",	    "--max-retry-time",
				       "1",	    "--session-timeout",
				       "6000",	    WORLD_OPTS,
				       "--timeout", "30",
				       NULL };
		w1 = spawn(argv, RUN "/w1.log");
	}
	wait_count("final verdicts (accept.test)", 2, 60, FINAL, job);
	wait_count("temporary verdicts (greylist.test)", 1, 60, TEMP, job);
	usleep(1000000); /* the retry batch is read and held */
	for (int i = 0; i < 4; i++)
		seen[i] = rcpts_seen(addrs[i]);
	t0 = now_s();
	kill(w1, SIGTERM);
	code = wait_exit(w1, 30);
	took = now_s() - t0;
	print_message("worker: exit %d %.2f s after SIGTERM\n", code, took);
	if (code != 0 || took > 10.0)
		fail_msg("worker after SIGTERM: exit %d after %.2f s (wanted 0 within 10 s):\n%s", code, took,
			 file_text(RUN "/w1.log"));
	if (!strstr(file_text(RUN "/w1.log"), " 1 held retry batch(es) left for later") ||
	    !strstr(file_text(RUN "/w1.log"), "session(s) still running abandoned") ||
	    !strstr(file_text(RUN "/w1.log"), " cut batches"))
		fail_msg("worker 1 did not stop with a held retry batch and a cut one:\n%s", file_text(RUN "/w1.log"));
	assert_int_equal(pg_long(url, Q_FINAL, job), 2);

	/* worker 2: the retry batch is due; tarpit.test's session hangs */
	tarpit = tarpit_sessions();
	{
		const char *argv[] = { EMV_WORKER,  "--brokers",
				       brokers,	    "--name",
				       "w2",	    "--retry-delay",
				       "2000",	    "--max-retry-time",
				       "1",	    "--session-timeout",
				       "6000",	    WORLD_OPTS,
				       "--timeout", "30",
				       NULL };
		w2 = spawn(argv, RUN "/w2.log");
	}
	wait_count("final verdicts (greylist.test)", 3, 60, FINAL, job);
	wait_tarpit(tarpit);
	kill(w2, SIGTERM);
	assert_int_equal(wait_exit(w2, 0.5), -1); /* waits for the session */
	t0 = now_s();
	kill(w2, SIGTERM);
	code = wait_exit(w2, 10);
	took = now_s() - t0;
	print_message("worker: exit %d %.2f s after the second SIGTERM\n", code, took);
	if (code != 130 || took > 1.0)
		fail_msg("worker after a second SIGTERM: exit %d after %.2f s (wanted 130 at once):\n%s", code, took,
			 file_text(RUN "/w2.log"));

	/* worker 3 finishes */
	{
		const char *argv[] = { EMV_WORKER,  "--brokers",
				       brokers,	    "--name",
				       "w3",	    "--retry-delay",
				       "1000",	    "--retry-attempts",
				       "2",	    "--max-retry-time",
				       "1",	    WORLD_OPTS,
				       "--timeout", "2",
				       NULL };
		w3 = spawn(argv, RUN "/w3.log");
	}
	wait_count("final verdicts (all)", 4, 90, FINAL, job);
	kill(w3, SIGTERM);
	code = wait_exit(w3, 12);
	if (code != 0)
		fail_msg("worker 3 after SIGTERM: exit %d:\n%s", code, file_text(RUN "/w3.log"));
	assert_int_equal(final_of(job, addrs[2]), 1);
	assert_int_equal(rcpts_seen(addrs[0]), seen[0]);
	assert_int_equal(rcpts_seen(addrs[1]), seen[1]);
	assert_int_equal(pg_long(url,
				 "SELECT count(*) FROM results r JOIN addresses a ON a.job_id = r.job_id AND "
				 "a.id = r.address_id WHERE r.job_id = '%s' AND a.address = '%s' AND "
				 "r.reason = 'mailbox_not_found'",
				 job, addrs[2]),
			 1);

	t0 = now_s();
	kill(serve, SIGTERM);
	code = wait_exit(serve, 30);
	took = now_s() - t0;
	print_message("serve: exit %d %.2f s after SIGTERM\n", code, took);
	if (code != 0 || took > 10.0)
		fail_msg("serve after SIGTERM: exit %d after %.2f s (wanted 0 within 10 s):\n%s", code, took,
			 file_text(RUN "/serve.log"));
}

/* The engine holds greylist.test's address for its own retry (60 s after
 * the 451; the worker's default --max-retry-time lets it wait in the
 * engine) when worker 1 stops: the cut batch hands the address on due
 * when the engine would have asked it, not at once.  Worker 2 holds that
 * batch instead of asking: 4 s after it has its partitions, no second
 * RCPT, and it stops with the batch held. */
static void do_test_worker_cut_keeps_retry_time(void **state)
{
	const char *list = RUN "/h.csv";
	const char *addrs[] = { fresh("sdh1", "greylist.test"), NULL };
	char brokers[256] = "", out[4096];
	long long t[16], greylisted_at;
	int code;
	double t0, took;
	pid_t serve, w1, w2;

	cancel_open_jobs();
	write_list(list, addrs);
	{
		const char *ing[] = { EMV_COORDINATOR, "ingest", "--database", url, "--name", "shutdown-h", list, NULL };
		if (run_capture(out, sizeof out, ing, 1) != 0)
			fail_msg("ingest:\n%s", out);
	}
	{
		const char *argv[] = { EMV_COORDINATOR, "serve", "--listen",	     "127.0.0.1:0",
				       "--database",	url,	 "--embedded-kafka", "--ready-file",
				       RUN "/ready-h",	NULL };
		unlink(RUN "/ready-h");
		serve = spawn(argv, RUN "/serve-h.log");
		for (int i = 0; i < 300 && access(RUN "/ready-h", F_OK) != 0; i++)
			usleep(100000);
		if (access(RUN "/ready-h", F_OK) != 0)
			fail_msg("serve did not become ready:\n%s", file_text(RUN "/serve-h.log"));
		env_value(RUN "/ready-h", "brokers", brokers, sizeof brokers);
	}
	{
		const char *argv[] = { EMV_WORKER,	    "--brokers", brokers,    "--name", "h1",
				       "--session-timeout", "6000",	 WORLD_OPTS, NULL };
		w1 = spawn(argv, RUN "/h1.log");
	}
	for (int i = 0; i < 600 && rcpts_seen(addrs[0]) < 1; i++)
		usleep(100000);
	assert_int_equal(rcpt_times(addrs[0], t, 16), 1); /* greylisted; the engine holds it */
	greylisted_at = t[0];
	usleep(300000);
	t0 = now_s();
	kill(w1, SIGTERM);
	code = wait_exit(w1, 30);
	took = now_s() - t0;
	print_message("worker: exit %d %.2f s after SIGTERM (engine holding a greylist retry)\n", code, took);
	if (code != 0 || took > 10.0)
		fail_msg("worker h1 after SIGTERM: exit %d after %.2f s (wanted 0 within 10 s):\n%s", code, took,
			 file_text(RUN "/h1.log"));
	if (!strstr(file_text(RUN "/h1.log"), "(1 of them kept their retry time)"))
		fail_msg("worker h1 did not hand the held address on with its retry time:\n%s",
			 file_text(RUN "/h1.log"));
	{
		/* -v: its "partition(s) assigned" line says when it reads */
		const char *argv[] = { EMV_WORKER,	    "-v",   "--brokers",	brokers, "--name",   "h2",
				       "--session-timeout", "6000", "--max-retry-time", "1",	 WORLD_OPTS, NULL };
		w2 = spawn(argv, RUN "/h2.log");
	}
	for (int i = 0; i < 600 && !strstr(file_text(RUN "/h2.log"), "partition(s) assigned"); i++)
		usleep(100000);
	if (!strstr(file_text(RUN "/h2.log"), "partition(s) assigned"))
		fail_msg("worker h2 was assigned no partition within 60 s:\n%s", file_text(RUN "/h2.log"));
	/* it reads the cut batch: asks it at once (wrong), or holds it; a
	 * loaded machine may take a while to hand it the partition's data */
	for (int i = 0; i < 300 && !strstr(file_text(RUN "/h2.log"), " held: due in ") && rcpts_seen(addrs[0]) == 1;
	     i++)
		usleep(100000);
	usleep(1000000); /* had it asked at once, the RCPT would be in the log by now */
	if (rcpts_seen(addrs[0]) != 1)
		fail_msg("%s asked again %lld ms after its 451, before the engine's retry time (60 s):\n%s", addrs[0],
			 (rcpt_times(addrs[0], t, 16) > 1 ? t[1] : 0) - greylisted_at, file_text(RUN "/h2.log"));
	kill(w2, SIGTERM);
	code = wait_exit(w2, 12);
	if (code != 0 || !strstr(file_text(RUN "/h2.log"), " 1 held retry batch(es) left for later"))
		fail_msg("worker h2 after SIGTERM: exit %d (wanted 0, holding the cut batch):\n%s", code,
			 file_text(RUN "/h2.log"));
	t0 = now_s();
	kill(serve, SIGTERM);
	code = wait_exit(serve, 30);
	took = now_s() - t0;
	print_message("serve: exit %d %.2f s after SIGTERM\n", code, took);
	if (code != 0 || took > 10.0)
		fail_msg("serve after SIGTERM: exit %d after %.2f s (wanted 0 within 10 s):\n%s", code, took,
			 file_text(RUN "/serve-h.log"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_run_sigterm_then_continue),
		cmocka_unit_test(do_test_run_second_signal),
		cmocka_unit_test(do_test_worker_and_serve),
		cmocka_unit_test(do_test_worker_cut_keeps_retry_time),
	};
	return cmocka_run_group_tests_name("shutdown", tests, setup, teardown);
}
