/* SPDX-License-Identifier: Apache-2.0 */
/*
 * run_embedded.c - `emailverify run`: the whole cluster in one process
 * (ingest into PostgreSQL, split onto the embedded Kafka, worker threads
 * probing the test world, the results sink, the export), against the
 * private PostgreSQL the quick start makes (deploy/local-pg.sh, unix
 * socket only).  Fixture "world".
 */
#include <signal.h>
#include <time.h>
#include <jansson.h>
#include "cluster_harness.h"
#include "emv_format.h"
#include "pg_harness.h"

static char url[1024];
static const char *pg_dir = EMV_BUILD_DIR "/run-pg";

static int setup(void **state)
{
	char cmd[2048];
	FILE *p;
	snprintf(cmd, sizeof cmd, "bash %s/deploy/local-pg.sh start %s", EMV_SOURCE_DIR, pg_dir);
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
	snprintf(cmd, sizeof cmd, "bash %s/deploy/local-pg.sh stop %s", EMV_SOURCE_DIR, pg_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	assert_non_null(f);
	assert_true(fread(buf, 1, 65535, f) > 0);
	fclose(f);
	return buf;
}

/* Every row in input order with the world's verdict; the greylisted one
 * resolved through the retry topic; SQL-looking input kept verbatim. */
static void do_test_run_list(void **state)
{
	const char *list = EMV_BUILD_DIR "/run-list.csv", *out = EMV_BUILD_DIR "/run-out.csv";
	char log[16384], *csv, *line, *save;
	FILE *f = fopen(list, "w");
	const char *expect[] = {
		"alice@accept.test,deliverable,accepted,",
		"nobody@accept.test,undeliverable,mailbox_not_found,",
		"x@catchall.test,risky,catch_all,",
		"x@nullmx.test,undeliverable,null_mx,",
		"runner@greylist.test,undeliverable,mailbox_not_found,",
		"'; DROP TABLE results; --@accept.test,undeliverable,invalid_syntax,",
		"alice@accept.test,deliverable,accepted,",
		"nobody@nxdomain.test,undeliverable,no_domain,",
		"typo@gmial.com,undeliverable,no_domain,",
	};
	const char *argv[] = { EMV_BIN, "run",		 list,	    "-o",
			       out,	"--database",	 url,	    "--workers",
			       "2",	"--retry-delay", "2500",    "--max-retry-time",
			       "1",	WORLD_OPTS,	 "--fresh", NULL }; /* the engine's path, not the cache's */
	int n = 0;

	fputs("email,name\nalice@accept.test,A\nnobody@accept.test,N\nx@catchall.test,C\nx@nullmx.test,X\n"
	      "runner@greylist.test,G\n\"'; DROP TABLE results; --@accept.test\",S\nalice@accept.test,dup\n"
	      "nobody@nxdomain.test,D\ntypo@gmial.com,T\n",
	      f);
	fclose(f);
	if (run_capture(log, sizeof log, argv, 1) != 0)
		fail_msg("emailverify run failed:\n%s", log);
	if (!strstr(log, "9 rows (7 unique addresses, 1 duplicates, 1 invalid, 0 row errors)"))
		fail_msg("ingest counts:\n%s", log);
	assert_non_null(strstr(log, "summary for"));
	assert_non_null(strstr(log, "deliverable     accepted                      2"));
	csv = slurp(out);
	line = strtok_r(csv, "\n", &save);
	assert_int_equal(strncmp(line, "email,status,reason,", 20), 0);
	while ((line = strtok_r(NULL, "\n", &save))) {
		assert_true(n < 9);
		if (strncmp(line, expect[n], strlen(expect[n])) != 0)
			fail_msg("line %d: expected '%s...', got '%s'", n + 1, expect[n], line);
		n++;
	}
	assert_int_equal(n, 9);
	free(csv);
	csv = slurp(out);
	/* the greylisted address was asked twice: once greylisted, once after
	 * the retry topic brought it back */
	assert_non_null(strstr(csv, "runner@greylist.test,undeliverable,mailbox_not_found"));
	line = strstr(csv, "runner@greylist.test");
	assert_non_null(strstr(line, ",2,"));
	/* the original row (as CSV with ','), quoted for this CSV, at the end of its line */
	assert_non_null(strstr(csv, ",6,\"'; DROP TABLE results; --@accept.test,S\"\n"));
	assert_non_null(strstr(csv, ",1,7,\"alice@accept.test,dup\"\n"));
	/* the typo suggestion, worked out once per domain at export */
	line = strstr(csv, "typo@gmial.com,");
	assert_non_null(line);
	assert_non_null(strstr(line, ",typo@gmail.com,"));
	free(csv);
}

/* The verdict policy of run's jobs (docs/policy.md): the default
 * (marketing), a tenant's default set with the coordinator, and --policy,
 * which wins; the export names the policy and counts follow it. */
static void do_test_run_policy(void **state)
{
	static char log[1 << 17];
	char *csv;
	const char *list = EMV_BUILD_DIR "/run-policy.csv", *out = EMV_BUILD_DIR "/run-policy.out.csv";
	FILE *f = fopen(list, "w");
	fputs("email\npostmaster@accept.test\nalice@accept.test\n", f);
	fclose(f);
	{
		/* no default of its own (the database outlives a run of this test) */
		const char *argv[] = { EMV_COORD, "tenant", "policy", "policyco", "default", "--database", url, NULL };
		if (run_capture(log, sizeof log, argv, 1) != 0)
			fail_msg("tenant policy default: %s", log);
	}
	{
		const char *argv[] = { EMV_BIN, "run",	    list,	"-o",	    out, "--database",
				       url,	"--tenant", "policyco", WORLD_OPTS, NULL };
		if (run_capture(log, sizeof log, argv, 1) != 0)
			fail_msg("run: %s", log);
		csv = slurp(out);
		assert_non_null(strstr(csv, "\npostmaster@accept.test,risky,role,false,role,"));
		assert_non_null(strstr(csv, "\nalice@accept.test,deliverable,accepted,true,"));
		assert_non_null(strstr(csv, ",marketing,"));
		free(csv);
	}
	{
		const char *argv[] = { EMV_COORD,	"tenant",     "policy", "policyco",
				       "transactional", "--database", url,	NULL };
		if (run_capture(log, sizeof log, argv, 1) != 0)
			fail_msg("tenant policy: %s", log);
	}
	{
		const char *argv[] = { EMV_BIN,	   "run",      list,	   "-o",    out,	"--database", url,
				       "--tenant", "policyco", "--format", "jsonl", WORLD_OPTS, NULL };
		if (run_capture(log, sizeof log, argv, 1) != 0)
			fail_msg("run: %s", log);
		csv = slurp(out);
		assert_non_null(strstr(csv, "\"email\":\"postmaster@accept.test\",\"status\":\"deliverable\","
					    "\"reason\":\"accepted\",\"safe_to_send\":true,"));
		assert_non_null(strstr(csv, "\"policy\":\"transactional\""));
		free(csv);
	}
	{
		/* --policy wins over the tenant's default; --status filters what it says */
		const char *argv[] = { EMV_BIN,	   "run",      list,	   "-o",	out,	    "--database", url,
				       "--tenant", "policyco", "--policy", "marketing", WORLD_OPTS, NULL };
		if (run_capture(log, sizeof log, argv, 1) != 0)
			fail_msg("run: %s", log);
		csv = slurp(out);
		assert_non_null(strstr(csv, "\npostmaster@accept.test,risky,role,false,"));
		free(csv);
	}
	{
		const char *argv[] = { EMV_COORD, "tenant", "policy", "policyco", "lenient", "--database", url, NULL };
		assert_int_equal(run_capture(log, sizeof log, argv, 1), 2);
		assert_non_null(strstr(log, "no policy 'lenient'"));
	}
}

static void do_test_run_usage_errors(void **state)
{
	char log[4096];
	const char *no_out[] = { EMV_BIN, "run", "x.csv", NULL };
	const char *bad_db[] = { EMV_BIN,
				 "run",
				 "x.csv",
				 "-o",
				 EMV_BUILD_DIR "/x.out",
				 "--database",
				 "postgresql://nobody@127.0.0.1:1/none",
				 WORLD_OPTS,
				 NULL };
	const char *bad_list[] = {
		EMV_BIN,    "run", EMV_BUILD_DIR "/no-such-list.csv", "-o", EMV_BUILD_DIR "/x.out", "--database", url,
		WORLD_OPTS, NULL
	};
	assert_int_equal(run_capture(log, sizeof log, no_out, 1), 2);
	assert_non_null(strstr(log, "-o OUTPUT is required"));
	assert_int_equal(run_capture(log, sizeof log, bad_db, 1), 1);
	assert_non_null(strstr(log, "connecting to PostgreSQL"));
	assert_int_equal(run_capture(log, sizeof log, bad_list, 1), 1);
	assert_non_null(strstr(log, "no-such-list.csv"));
}

/* How many RCPT TO:<addr> the test world's servers have seen so far. */
static int rcpts_seen(const char *addr)
{
	char pat[320], *log, *p;
	int n = 0;
	FILE *f = fopen(EMV_WORLD_DIR "/smtpd.log", "r");
	assert_non_null(f);
	log = calloc(1, 16 << 20);
	fread(log, 1, (16 << 20) - 1, f);
	fclose(f);
	snprintf(pat, sizeof pat, " RCPT %s ", addr);
	for (p = log; (p = strstr(p, pat)); p++)
		n++;
	free(log);
	return n;
}

/* The interrupted run's list: two quick rows, then RESUME_ROWS - 2 on
 * slow.test, whose every reply comes 300 ms late. */
#define RESUME_ROWS 24

static const char *resume_addr(int row)
{
	static char a[64];
	if (row <= 2)
		snprintf(a, sizeof a, "rz%d@accept.test", row);
	else
		snprintf(a, sizeof a, "rz%d@slow.test", row);
	return a;
}

/* Interrupted (SIGINT) part-way, then continued with --job: every row ends
 * final, the continued run asks exactly the addresses without a final
 * verdict, and none that had one (the world's own log counts the RCPTs;
 * these recipients are asked by no other test).  The sessions in flight at
 * the stop may finish (README.md "Stopping"), so the list is made to be still mostly
 * unasked then: a provider policy of one session per MX and two
 * recipients per session makes slow.test take about 2 s per two
 * addresses, and the stop comes once the two quick rows are final. */
static void do_test_run_interrupted_then_continued(void **state)
{
	const char *list = EMV_BUILD_DIR "/run-resume.csv", *out = EMV_BUILD_DIR "/run-resume.out",
		   *prov = EMV_BUILD_DIR "/run-resume-providers.conf";
	char log[16384], job[64] = "", *p;
	FILE *f = fopen(list, "w");
	int pfd[2], status, n = 0, seen[RESUME_ROWS + 1] = { 0 }, was_final[RESUME_ROWS + 1] = { 0 }, unasked = 0;
	long before_final;
	pid_t pid;
	size_t got = 0;

	fputs("email\n", f);
	for (int row = 1; row <= RESUME_ROWS; row++)
		fprintf(f, "%s\n", resume_addr(row));
	fclose(f);
	f = fopen(prov, "w");
	assert_non_null(f);
	fputs("[default]\nrcpt_per_minute = 0\nrcpt_per_hour = 0\nrcpt_per_day = 0\nsessions_per_mx = 1\n"
	      "sessions_per_ip = 1\nrcpt_per_session = 2\nrcpt_per_txn = 2\n",
	      f);
	fclose(f);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	if (pid == 0) {
		const char *argv[] = { EMV_BIN,	      "run", list,	 "-o",		out,  "--database", url,
				       "--batch-max", "2",   WORLD_OPTS, "--providers", prov, "--fresh",    NULL };
		dup2(pfd[1], 2);
		close(pfd[0]);
		execv(EMV_BIN, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	/* the job id from its first line, then wait for the two quick verdicts */
	while (!job[0] && got + 1 < sizeof log) {
		ssize_t k = read(pfd[0], log + got, sizeof log - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
		log[got] = '\0';
		if ((p = strstr(log, "job ")) && strchr(p, ':'))
			snprintf(job, sizeof job, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
	}
	assert_true(job[0]);
	for (int i = 0; i < 1000 && pg_long(url, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job) < 2;
	     i++)
		usleep(20000);
	kill(pid, SIGINT);
	while (got + 1 < sizeof log) {
		ssize_t k = read(pfd[0], log + got, sizeof log - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	log[got] = '\0';
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (!strstr(log, "continue with --job"))
		fail_msg("interrupted run:\n%s", log);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 130)
		fail_msg("interrupted run: status %d, wanted exit 130:\n%s", status, log);
	if (strstr(log, "|rdkafka#") || strstr(log, "COMMITFAIL"))
		fail_msg("interrupted run printed librdkafka's log:\n%s", log);
	before_final = pg_long(url, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job);
	for (int row = 1; row <= RESUME_ROWS; row++) {
		was_final[row] =
			pg_long(url, "SELECT count(*) FROM results WHERE job_id = '%s' AND address_id = %d AND final",
				job, row) == 1;
		seen[row] = rcpts_seen(resume_addr(row));
		unasked += seen[row] == 0;
		if (seen[row] == 0 && was_final[row])
			fail_msg("%s has a final verdict but was never asked", resume_addr(row));
	}
	/* the stop came with work still to do: some addresses never asked */
	if (before_final < 2 || unasked < 1)
		fail_msg("interrupted run: %ld of %d final, %d never asked (wanted some of each):\n%s", before_final,
			 RESUME_ROWS, unasked, log);
	{
		const char *argv[] = { EMV_BIN,	     "run", "--job",	   job, "-o",	    out,
				       "--database", url,   "--batch-max", "2", WORLD_OPTS, NULL };
		if (run_capture(log, sizeof log, argv, 1) != 0)
			fail_msg("continued run:\n%s", log);
	}
	assert_int_equal(pg_long(url, "SELECT count(*) FROM results WHERE job_id = '%s' AND final", job), RESUME_ROWS);
	assert_int_equal(pg_long(url, "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'done'", job), 1);
	for (int row = 1; row <= RESUME_ROWS; row++) {
		int now = rcpts_seen(resume_addr(row));
		if (was_final[row] && now != seen[row])
			fail_msg("%s had its verdict but was asked again (%d -> %d RCPTs)", resume_addr(row), seen[row],
				 now);
		if (!was_final[row] && now <= seen[row])
			fail_msg("%s was still open but not asked in the continued run", resume_addr(row));
	}
	{
		char *csv = slurp(out), *line, *save;
		for (line = strtok_r(csv, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			if (strstr(line, ",undeliverable,mailbox_not_found,"))
				n++;
		assert_int_equal(n, RESUME_ROWS);
		free(csv);
	}
	print_message("interrupted with %ld of %d final, %d never asked; continued to %d, only those without a verdict "
		      "asked again\n",
		      before_final, RESUME_ROWS, unasked, RESUME_ROWS);
}

/* The cells of one CSV line (RFC 4180; no line breaks inside cells here). */
static int csv_cells(const char *line, char cells[][512], int max)
{
	int n = 0;
	const char *p = line;
	for (;;) {
		size_t k = 0;
		assert_true(n < max);
		if (*p == '"') {
			for (p++; *p && !(*p == '"' && p[1] != '"'); p++) {
				if (*p == '"')
					p++;
				if (k < 511)
					cells[n][k++] = *p;
			}
			if (*p == '"')
				p++;
		} else {
			for (; *p && *p != ','; p++)
				if (k < 511)
					cells[n][k++] = *p;
		}
		cells[n++][k] = '\0';
		if (*p != ',')
			return n;
		p++;
	}
}

static char diffs[8192];

static void note_diff(const char *fmt, ...)
{
	size_t n = strlen(diffs);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(diffs + n, sizeof diffs - n, fmt, ap);
	va_end(ap);
}

/* Evidence that depends on the run, not on the verdict: compared by presence only. */
static int run_dependent(const char *key)
{
	return strcmp(key, "duration_ms") == 0 || strcmp(key, "region") == 0 || strcmp(key, "verified_at") == 0;
}

/* `emailverify verify` and `emailverify run` on the same list write the same
 * file (one formatter, lib/emv_format.h): the same CSV columns with the same
 * cells, the same JSON Lines keys in the same order with the same values,
 * except the time taken, when it was verified and the region (verify has
 * none; run asks --fresh, so no row comes from the verdict cache).  One value
 * differs by design of the wire, not of the formatter: VerifyResults carries
 * catch_all as true/false, so a verdict that reached no mail server says
 * false after the cluster and "not known" (null, empty) in verify. */
static void do_test_verify_and_run_agree(void **state)
{
	const char *list = EMV_BUILD_DIR "/agree-list.csv";
	const char *out[2][2] = { { EMV_BUILD_DIR "/agree-verify.csv", EMV_BUILD_DIR "/agree-run.csv" },
				  { EMV_BUILD_DIR "/agree-verify.jsonl", EMV_BUILD_DIR "/agree-run.jsonl" } };
	static const char *const fmt[2] = { "csv", "jsonl" };
	static char log[16384];
	FILE *f = fopen(list, "w");

	assert_non_null(f);
	fputs("email,name\nalice@accept.test,A\nnobody@accept.test,N\nx@catchall.test,C\nx@nullmx.test,X\n"
	      "not an address,I\n\"=HYPERLINK(\"\"x\"\")@accept.test\",F\nalice@accept.test,\"dup, again\"\n"
	      "nobody@nxdomain.test,D\ntypo@gmial.com,T\n",
	      f);
	fclose(f);
	for (int k = 0; k < 2; k++) {
		const char *verify[] = { EMV_BIN,
					 "verify",
					 list,
					 "-o",
					 out[k][0],
					 "--format",
					 fmt[k],
					 "--progress",
					 "none",
					 "--skip-preflight",
					 "--dns",
					 "127.0.0.1:5300",
					 "--smtp-port",
					 "2525",
					 "--allow-private-mx",
					 "--mail-from",
					 "probe@verifier.test",
					 "--helo",
					 "probe.verifier.test",
					 "--providers",
					 EMV_TEST_DATA "/providers-test.conf",
					 "--timeout",
					 "5",
					 NULL };
		/* --fresh: the engine's verdicts, not the earlier tests' from the verdict cache */
		const char *run[] = { EMV_BIN,	    "run", list,	"-o", out[k][1], "--format", fmt[k],
				      "--database", url,   "--workers", "2",  "--fresh", WORLD_OPTS, NULL };
		if (run_capture(log, sizeof log, verify, 1) != 0)
			fail_msg("emailverify verify failed:\n%s", log);
		if (run_capture(log, sizeof log, run, 1) != 0)
			fail_msg("emailverify run failed:\n%s", log);
	}

	/* CSV: the same header, the same cells */
	{
		char *a = slurp(out[0][0]), *b = slurp(out[0][1]), *sa, *sb, *la, *lb;
		static char ca[32][512], cb[32][512], head[32][512];
		int nh = 0, rows = 0;
		for (la = strtok_r(a, "\n", &sa), lb = strtok_r(b, "\n", &sb); la || lb;
		     la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
			int na, nb;
			if (!la || !lb)
				fail_msg("verify wrote %s lines than run", la ? "more" : "fewer");
			na = csv_cells(la, ca, 32);
			nb = csv_cells(lb, cb, 32);
			if (na != nb)
				fail_msg("verify '%s' has %d cells, run '%s' %d", la, na, lb, nb);
			if (!nh) {
				nh = na;
				memcpy(head, ca, sizeof head);
			}
			for (int c = 0; c < na; c++)
				if (strcmp(ca[c], cb[c]) != 0 && (rows == 0 || !run_dependent(head[c])) &&
				    !(rows > 0 && strcmp(head[c], "catch_all") == 0 && !ca[c][0] &&
				      strcmp(cb[c], "false") == 0))
					note_diff("row %d, column %s: verify '%s', run '%s'\n", rows, head[c], ca[c],
						  cb[c]);
			rows++;
		}
		assert_int_equal(rows, 10);
		assert_int_equal(nh, EMV_FORMAT_NCOLUMNS);
		if (diffs[0])
			fail_msg("CSV of verify and run differ:\n%s", diffs);
		free(a);
		free(b);
		/* what the formatter did is there: a formula neutralised, the input row quoted */
		a = slurp(out[0][0]);
		b = slurp(out[0][1]);
		assert_non_null(strstr(b, "\n\"'=HYPERLINK(\"\"x\"\")@accept.test\",")); /* the first column */
		assert_non_null(strstr(a, ",1,7,\"alice@accept.test,\"\"dup, again\"\"\"\n"));
		free(a);
		free(b);
	}

	/* JSON Lines: the same keys in the same order, the same values */
	{
		char *a = slurp(out[1][0]), *b = slurp(out[1][1]), *sa, *sb, *la, *lb;
		int rows = 0;
		for (la = strtok_r(a, "\n", &sa), lb = strtok_r(b, "\n", &sb); la || lb;
		     la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
			json_t *ja, *jb, *va, *vb;
			void *ia, *ib;
			if (!la || !lb)
				fail_msg("verify wrote %s lines than run", la ? "more" : "fewer");
			ja = json_loads(la, JSON_PRESERVE_ORDER, NULL);
			jb = json_loads(lb, JSON_PRESERVE_ORDER, NULL);
			assert_non_null(ja);
			assert_non_null(jb);
			for (ia = json_object_iter(ja), ib = json_object_iter(jb); ia || ib;
			     ia = json_object_iter_next(ja, ia), ib = json_object_iter_next(jb, ib)) {
				const char *ka, *kb;
				if (!ia || !ib)
					fail_msg("row %d: verify '%s' and run '%s' differ in keys", rows + 1, la, lb);
				ka = json_object_iter_key(ia);
				kb = json_object_iter_key(ib);
				if (strcmp(ka, kb) != 0)
					fail_msg("row %d: key '%s' in verify where run has '%s'", rows + 1, ka, kb);
				va = json_object_iter_value(ia);
				vb = json_object_iter_value(ib);
				if (!run_dependent(ka) && !json_equal(va, vb) &&
				    !(strcmp(ka, "catch_all") == 0 && json_is_null(va) && json_is_false(vb))) {
					char *da = json_dumps(va, JSON_ENCODE_ANY),
					     *db = json_dumps(vb, JSON_ENCODE_ANY);
					note_diff("row %d, key %s: verify %s, run %s\n", rows + 1, ka, da, db);
					free(da);
					free(db);
				}
			}
			json_decref(ja);
			json_decref(jb);
			rows++;
		}
		assert_int_equal(rows, 9);
		free(a);
		free(b);
		a = slurp(out[1][0]);
		assert_non_null(strstr(a, "\"input\":\"alice@accept.test,\\\"dup, again\\\"\""));
		assert_null(strstr(a, "input_row"));
		free(a);
	}
}

/* A large DNS-only list: verdicts come faster than the sink can store them.
 * The embedded Kafka keeps at most 5 MiB a partition and drops the rest,
 * read or not; before the workers waited for the sink (emv_results_gate),
 * this run lost results ("Offset out of range") and never finished. */
static void do_test_run_faster_than_the_sink(void **state)
{
	const char *list = EMV_BUILD_DIR "/run-big.csv", *out = EMV_BUILD_DIR "/run-big.out";
	static char log[1 << 16];
	const char *argv[] = { "/usr/bin/timeout", "180", EMV_BIN,     "run", list,	  "-o",	     out,
			       "--database",	   url,	  "--workers", "2",   WORLD_OPTS, "--fresh", NULL };
	FILE *f = fopen(list, "w");
	size_t lines = 0;
	assert_non_null(f);
	fputs("email\n", f);
	for (int i = 0; i < 150000; i++)
		fprintf(f, "big%d@%s\n", i, i % 2 ? "nullmx.test" : "nxdomain.test");
	fclose(f);
	if (run_capture(log, sizeof log, argv, 1) != 0)
		fail_msg("emailverify run failed or hung:\n%.4000s", log);
	assert_null(strstr(log, "lost"));
	assert_null(strstr(log, "Offset out of range"));
	assert_non_null(strstr(log, "undeliverable   null_mx                   75000"));
	assert_non_null(strstr(log, "undeliverable   no_domain                 75000"));
	f = fopen(out, "r");
	assert_non_null(f);
	for (int ch; (ch = fgetc(f)) != EOF;)
		lines += ch == '\n';
	fclose(f);
	assert_int_equal(lines, 150001);
}


/* The CSV line of addr in file out (a static copy), failing when missing. */
static const char *line_of(const char *out, const char *addr)
{
	static char line[4096];
	char *csv = slurp(out), *p = strstr(csv, addr);
	if (!p)
		fail_msg("%s is not in %s:\n%s", addr, out, csv);
	snprintf(line, sizeof line, "%.*s", (int)strcspn(p, "\n"), p);
	free(csv);
	return line;
}

/*
 * run --deadline (coordinator/emv_deadline.h): the job is done at its
 * deadline, not when its slowest address is: tarpit.test never sends its
 * banner (30 s timeout here), so that address has no answer at the
 * deadline and is final unknown / timeout, "not asked: the deadline has
 * come" (the coordinator's side); greylist.test answers 451 and its retry
 * (60 s) would come after the deadline, so it is final at once, unknown /
 * greylisted with the server's reply as its evidence (the worker's side).
 * Without the deadline the run takes the tarpit's 30 s at least.
 */
static void do_test_run_deadline(void **state)
{
	const char *list = EMV_BUILD_DIR "/run-deadline.csv", *out = EMV_BUILD_DIR "/run-deadline.out";
	static char log[1 << 16];
	char job[64] = "", *p;
	const char *argv[] = { EMV_BIN,	     "run",
			       list,	     "-o",
			       out,	     "--database",
			       url,	     "--retry-delay",
			       "60000",	     "--max-retry-time",
			       "1",	     WORLD_OPTS,
			       "--timeout",  "30",
			       "--deadline", "6s",
			       NULL };
	FILE *f = fopen(list, "w");
	struct timespec t0, t1;
	double took;
	char grey[64], tar[64];
	const char *line;

	snprintf(grey, sizeof grey, "dl%d@greylist.test", (int)getpid()); /* greylisted: never seen before */
	snprintf(tar, sizeof tar, "dl%d@tarpit.test", (int)getpid());
	assert_non_null(f);
	fprintf(f, "email\nalice@accept.test\n%s\n%s\n", grey, tar);
	fclose(f);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (run_capture(log, sizeof log, argv, 1) != 0)
		fail_msg("emailverify run --deadline failed:\n%s", log);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("run --deadline 6s: finished in %.1f s\n", took);
	if (took < 5.5 || took > 15)
		fail_msg("run --deadline 6s took %.1f s (wanted about 6 s: done at the deadline):\n%s", took, log);
	if ((p = strstr(log, "job ")) && strchr(p, ':'))
		snprintf(job, sizeof job, "%.*s", (int)strcspn(p + 4, ":"), p + 4);
	assert_true(job[0]);
	assert_int_equal(pg_long(url,
				 "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'done' AND deadline_at IS NOT NULL"
				 " AND n_final = rows_total AND n_unknown = 2",
				 job),
			 1);
	assert_non_null(strstr(line_of(out, "alice@accept.test"), "alice@accept.test,deliverable,accepted,"));
	line = line_of(out, tar);
	if (!strstr(line, ",unknown,timeout,") || !strstr(line, "not asked: the deadline has come"))
		fail_msg("the tarpit's address at the deadline: %s", line);
	line = line_of(out, grey);
	if (!strstr(line, ",unknown,greylisted,") || !strstr(line, ",451,") ||
	    !strstr(line, "not asked again: the deadline comes first"))
		fail_msg("the greylisted address, whose retry comes after the deadline: %s", line);
}

/* Bad time limits are refused before anything runs, naming the option and its bounds. */
static void do_test_run_deadline_bad(void **state)
{
	static const char *const bad[][2] = { { "--deadline", "0" },
					      { "--deadline", "31d" },
					      { "--deadline", "soon" },
					      { "--straggler-wait", "-1" },
					      { "--straggler-wait", "5x" } };
	char log[4096];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *argv[] = {
			EMV_BIN, "run", "x.csv", "-o", EMV_BUILD_DIR "/x.out", bad[i][0], bad[i][1], NULL
		};
		char want[128];
		assert_int_equal(run_capture(log, sizeof log, argv, 1), 2);
		snprintf(want, sizeof want, "%s takes a duration from %s to 30d", bad[i][0],
			 strcmp(bad[i][0], "--deadline") == 0 ? "1s" : "0");
		if (!strstr(log, want))
			fail_msg("run %s %s: wanted '%s', got:\n%s", bad[i][0], bad[i][1], want, log);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_run_list),
		cmocka_unit_test(do_test_verify_and_run_agree),
		cmocka_unit_test(do_test_run_policy),
		cmocka_unit_test(do_test_run_usage_errors),
		cmocka_unit_test(do_test_run_deadline_bad),
		cmocka_unit_test(do_test_run_deadline),
		cmocka_unit_test(do_test_run_interrupted_then_continued),
		cmocka_unit_test(do_test_run_faster_than_the_sink),
	};
	return cmocka_run_group_tests_name("run_embedded", tests, setup, teardown);
}
