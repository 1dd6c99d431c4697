/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_run.c - `emailverify run LIST -o OUT`: the whole cluster on one
 * machine (docs/design.md §2, single-machine modes).
 *
 * The same path as the cluster, in one process: the list is ingested into
 * PostgreSQL as a job, split into batches on an embedded Kafka (librdkafka's
 * mock cluster, on loopback ports of this process), verified by worker
 * threads (emv_worker, one event loop each), stored by the results sink
 * (a thread of its own), and exported from PostgreSQL in input order once
 * every address is final.  The verdict cache (emv_vcache.h, docs/cache.md)
 * answers at split time what it may; --max-age and --fresh are the job's
 * own rules.  PostgreSQL comes from --database or DATABASE_URL
 * (deploy/quickstart.sh creates and starts a local one under var/).
 *
 * SIGINT/SIGTERM (emv_stop.h): stop within --shutdown-timeout T.  The
 * worker threads get 70% of T (emv_worker.h: sessions end or are
 * abandoned, verdicts known are sent, the rest is left); the sink then
 * stores what they sent until 90% of T.  What is not stored is asked again
 * by `run --job ID`, which splits the job again without the addresses that
 * have their final verdict, and with those whose verdict is temporary due
 * --retry-delay after it (emv_split.h).  Exit 130; a second signal exits at once.
 */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "emv_db.h"
#include "emv_deadline.h"
#include "emv_defaults.h"
#include "emv_export.h"
#include "emv_ingest_job.h"
#include "emv_kafka.h"
#include "emv_sink.h"
#include "emv_split.h"
#include "emv_stop.h"
#include "emv_util.h"
#include "emv_vcache.h"
#include "emv_worker.h"

#define RUN_MAX_WORKERS 16

static volatile sig_atomic_t workers_stop;
static volatile int sink_stop;

struct wthread {
	pthread_t t;
	emv_worker_opts o;
	const emv_setup_opts *eo;
	emv_worker_stats st;
	char name[32], err[512];
	int rc;
};

static void *worker_thread(void *arg)
{
	struct wthread *w = arg;
	w->rc = emv_worker_run(&w->o, w->eo, &workers_stop, &w->st, w->err, sizeof w->err);
	if (w->rc != EMV_OK)
		fprintf(stderr, "emailverify run: worker %s: %s\n", w->name, w->err);
	return NULL;
}

struct sthread {
	pthread_t t;
	PGconn *c;
	emv_sink_params p;
	emv_sink_stats st;
	char err[512];
	int rc;
};

static void *sink_thread(void *arg)
{
	struct sthread *s = arg;
	s->rc = emv_sink_run(s->c, &s->p, &sink_stop, &s->st, s->err, sizeof s->err);
	if (s->rc != EMV_OK)
		fprintf(stderr, "emailverify run: results sink: %s\n", s->err);
	return NULL;
}

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: emailverify run [options] LIST -o OUTPUT\n\n"
		"Verify LIST through the whole cluster on this machine: a job in PostgreSQL,\n"
		"batches on an embedded Kafka, worker threads, the results sink, then the\n"
		"export in input order and a summary.\n\n"
		"options:\n"
		"  -o, --output FILE      results file (required)\n"
		"  --format csv|jsonl     output format (default csv)\n"
		"  --database URL         PostgreSQL (default: $DATABASE_URL)\n"
		"  --workers N            worker threads, one event loop each (default 2, at most 16)\n"
		"  --batch-max N          addresses per batch (default 500)\n"
		"  --tenant T, --name N   the job's tenant and name\n"
		"  --retry-attempts N     tries per address through the retry topic (default " EMV_DEF_STR(
			EMV_DEF_TOPIC_ATTEMPTS) ")\n"
						"  --retry-delay MS       wait before a retry batch (default " EMV_DEF_STR(
							EMV_DEF_TOPIC_DELAY1_MS) ")\n"
										 "  --job ID               continue an interrupted run of this job (LIST is not read again;\n"
										 "                         addresses with a verdict are not asked again)\n"
										 "  --deadline D           the job's deadline, D (90s, 10m, 2h) from now: then every address\n"
										 "                         still waiting is final (unknown, with its reason and last\n"
										 "                         evidence) and the job is done; with --job: from now again\n"
										 "  --straggler-wait D     once every address has had its first answer, wait at most D more\n"
										 "                         for retries (default 5m; 0 = as long as the retries take)\n"
										 "  --policy NAME|FILE     the verdict policy of the job's output: marketing (default:\n"
										 "                         role, catch-all, disposable, full mailboxes are risky),\n"
										 "                         transactional, or a policy file (docs/policy.md)\n"
										 "  --max-age D            answer from the verdict cache only verdicts younger than D\n"
										 "                         (30d, 12h, 90s; docs/cache.md)\n"
										 "  --fresh                ask every address again: nothing from the verdict cache\n" EMV_VCACHE_HELP
										 "  --shutdown-timeout S   on Ctrl-C/SIGTERM: stop within S seconds (default 10), keeping every\n"
										 "                         verdict known; exit 130 (continue with --job ID). A second\n"
										 "                         Ctrl-C exits at once\n" EMV_SETUP_HELP);
}

/* state, counters of the job */
struct progress {
	char state[16];
	long long total, final, unusable, cached;
};

static int job_progress(PGconn *c, const char *job, struct progress *p)
{
	const char *v[1] = { job };
	PGresult *r = PQexecParams(c, "SELECT state, rows_total, n_final, n_unusable, n_cached FROM jobs WHERE id = $1",
				   1, NULL, v, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	if (ok) {
		emv_strlcpy(p->state, PQgetvalue(r, 0, 0), sizeof p->state);
		p->total = atoll(PQgetvalue(r, 0, 1));
		p->final = atoll(PQgetvalue(r, 0, 2));
		p->unusable = atoll(PQgetvalue(r, 0, 3));
		p->cached = atoll(PQgetvalue(r, 0, 4));
	}
	PQclear(r);
	return ok ? 0 : -1;
}

/* The progress line's ETA (emv_deadline_eta): the addresses waiting for a
 * retry and when the last is due, the job's time limit; into eta (a
 * duration, or "?") and waiting.  Read only when a line is printed. */
static void job_eta(PGconn *c, const char *job, const struct progress *p, long long todo, double secs, char *eta,
		    size_t etalen, long long *waiting)
{
	const char *v[1] = { job };
	PGresult *r = PQexecParams(c,
				   "SELECT count(*), extract(epoch FROM max(retry_at) - now()),"
				   " (SELECT " EMV_DEADLINE_LIMIT_SQL " FROM jobs WHERE id = $1)"
				   " FROM results WHERE job_id = $1 AND NOT final",
				   1, NULL, v, NULL, NULL, 0);
	double e = -1;
	*waiting = 0;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		double due = PQgetisnull(r, 0, 1) ? -1 : strtod(PQgetvalue(r, 0, 1), NULL);
		if (!PQgetisnull(r, 0, 1) && due < 0)
			due = 0; /* due already: being asked */
		double lim = PQgetisnull(r, 0, 2) ? -1 : strtod(PQgetvalue(r, 0, 2), NULL);
		*waiting = atoll(PQgetvalue(r, 0, 0));
		e = emv_deadline_eta((double)(todo - p->final), (double)*waiting,
				     secs > 0 ? (double)(p->final - p->unusable) / secs : 0, due, lim);
	}
	PQclear(r);
	if (e < 0)
		snprintf(eta, etalen, "?");
	else if (e < 60)
		snprintf(eta, etalen, "%.0fs", e);
	else if (e < 3600)
		snprintf(eta, etalen, "%dm%02ds", (int)e / 60, (int)e % 60);
	else
		snprintf(eta, etalen, "%dh%02dm", (int)e / 3600, ((int)e % 3600) / 60);
}

/* Rows by status and by reason, duplicates included (they carry their
 * first row's verdict), as in the export. */
static void summary(PGconn *c, const char *job, const char *list, double secs, uint64_t rows, long long cached)
{
	const char *v[1] = { job };
	PGresult *r = PQexecParams(c,
				   "SELECT coalesce(CASE WHEN r.final THEN r.status END, 'unknown'),"
				   " coalesce(CASE WHEN r.final THEN r.reason END, 'pending'), count(*)"
				   " FROM addresses a LEFT JOIN results r"
				   "  ON r.job_id = a.job_id AND r.address_id = coalesce(a.duplicate_of, a.id)"
				   " WHERE a.job_id = $1 GROUP BY 1, 2 ORDER BY 1, 3 DESC",
				   1, NULL, v, NULL, NULL, 0);

	fprintf(stderr, "\nsummary for %s (job %s)\n", list, job);
	fprintf(stderr, "  %" PRIu64 " rows in %.2f s (%.0f rows/s)\n", rows, secs, secs > 0 ? (double)rows / secs : 0);
	fprintf(stderr, "  %lld addresses answered from the verdict cache (docs/cache.md)\n", cached);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "  (no counts: %s)\n", PQresultErrorMessage(r));
		PQclear(r);
		return;
	}
	fprintf(stderr, "  %-15s %-20s %10s\n", "status", "reason", "rows");
	for (int i = 0; i < PQntuples(r); i++)
		fprintf(stderr, "  %-15s %-20s %10s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
	PQclear(r);
}

/* An interrupted run's job: its counts, and its split cursor reset so the
 * split starts over (skipping what is final). */
static int resume(PGconn *c, const char *job, emv_ingest_job_stats *st, char *err, size_t errlen)
{
	const char *v[1] = { job };
	PGresult *r = PQexecParams(c,
				   "UPDATE jobs SET split_after_domain = NULL, split_after_id = NULL, split_done = 0,"
				   " state = CASE WHEN state = 'done' THEN state ELSE 'splitting' END"
				   " WHERE id = $1 AND state <> 'cancelled'"
				   " RETURNING rows_total, addresses_total",
				   1, NULL, v, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;

	memset(st, 0, sizeof *st);
	if (ok) {
		emv_strlcpy(st->job_id, job, sizeof st->job_id);
		st->rows = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		st->unique = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
	} else {
		emv_set_err(err, errlen, "job %s: %s", job,
			    PQresultStatus(r) == PGRES_TUPLES_OK ? "no such job" : PQresultErrorMessage(r));
	}
	PQclear(r);
	return ok ? EMV_OK : EMV_ERR;
}

int cli_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 4001 },
		{ "database", required_argument, NULL, 4002 },
		{ "workers", required_argument, NULL, 4003 },
		{ "batch-max", required_argument, NULL, 4004 },
		{ "tenant", required_argument, NULL, 4005 },
		{ "name", required_argument, NULL, 4006 },
		{ "retry-attempts", required_argument, NULL, 4007 },
		{ "retry-delay", required_argument, NULL, 4008 },
		{ "job", required_argument, NULL, 4009 },
		{ "shutdown-timeout", required_argument, NULL, 4010 },
		{ "policy", required_argument, NULL, 4011 },
		{ "max-age", required_argument, NULL, 4012 },
		{ "fresh", no_argument, NULL, 4013 },
		{ "cache-ages", required_argument, NULL, 4014 },
		{ "cache-scope", required_argument, NULL, 4015 },
		{ "no-cache", no_argument, NULL, 4016 },
		{ "deadline", required_argument, NULL, 4017 },
		{ "straggler-wait", required_argument, NULL, 4018 },
		{ "help", no_argument, NULL, 'h' },
		EMV_SETUP_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	emv_setup_opts eo;
	const emv_policy *policy = NULL; /* --policy; NULL: the tenant's default (docs/policy.md) */
	emv_export_params xp;
	emv_split_params sp;
	emv_split_stats sst;
	emv_ingest_job_stats ist;
	struct wthread wt[RUN_MAX_WORKERS];
	struct sthread snk;
	static emv_results_gate gate; /* shared by the worker threads and the sink */
	struct progress pr;
	const char *out = NULL, *url = NULL, *tenant = "local", *name = "", *list, *resume_job = NULL;
	int nworkers = 2, opt, rc = 1, version;
	int64_t deadline_s = -1, straggler_s = -1; /* -1: not given (a new job: none, EMV_DEF_LINGER_MS) */
	int shutdown_ms = EMV_STOP_TIMEOUT_MS;
	uint64_t stop_at = 0;
	char err[1024];
	emv_kafka_mock *mock = NULL;
	emv_lists *lists = NULL;
	PGconn *c = NULL;
	FILE *f = NULL;
	uint64_t start = emv_now_ms(), rows = 0, last_print = 0;
	int nstarted = 0, sink_started = 0;
	emv_vcache_cfg cache;
	int64_t max_age = -1; /* --max-age, --fresh (0); -1: the cache's ages */
	long long last_final = -1;

	memset(&ist, 0, sizeof ist);
	emv_setup_opts_default(&eo);
	/* run waits the same before every retry batch (--retry-delay) */
	eo.retry.topic_delay_ms[1] = eo.retry.topic_delay_ms[2] = eo.retry.topic_delay_ms[0];
	emv_export_params_default(&xp);
	emv_split_params_default(&sp);
	if (emv_vcache_cfg_init(&cache, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify run: %s\n", err);
		return 2;
	}
	while ((opt = getopt_long(argc, argv, "o:hv", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o': out = optarg; continue;
		case 4001:
			if (strcmp(optarg, "csv") && strcmp(optarg, "jsonl")) {
				fprintf(stderr, "emailverify run: --format must be csv or jsonl\n");
				return 2;
			}
			xp.format = strcmp(optarg, "csv") == 0 ? EMV_EXPORT_CSV : EMV_EXPORT_JSONL;
			continue;
		case 4002: url = optarg; continue;
		case 4003:
			if (emv_parse_int("--workers", optarg, 1, RUN_MAX_WORKERS, &nworkers, err, sizeof err))
				goto bad_number;
			continue;
		case 4004:
			if (emv_parse_int("--batch-max", optarg, 1, 10000, &sp.batch_max, err, sizeof err))
				goto bad_number;
			continue;
		case 4005: tenant = optarg; continue;
		case 4006: name = optarg; continue;
		case 4007:
			if (emv_parse_int("--retry-attempts", optarg, 1, 100, &eo.retry.topic_attempts, err,
					  sizeof err))
				goto bad_number;
			continue;
		case 4008:
			if (emv_parse_int("--retry-delay", optarg, 0, INT_MAX, &eo.retry.topic_delay_ms[0], err,
					  sizeof err))
				goto bad_number;
			eo.retry.topic_delay_ms[1] = eo.retry.topic_delay_ms[2] = eo.retry.topic_delay_ms[0];
			continue;
		case 4009: resume_job = optarg; continue;
		case 4011:
			emv_policy_free(policy);
			if (!(policy = emv_policy_get(optarg, err, sizeof err))) {
				fprintf(stderr, "emailverify run: --policy: %s\n", err);
				return 2;
			}
			continue;
		case 4012:
			if (emv_cache_parse_max_age("--max-age", optarg, &max_age, err, sizeof err) != EMV_OK)
				goto bad_number;
			continue;
		case 4013: max_age = 0; continue;
		case 4014:
		case 4015:
		case 4016:
			if (emv_vcache_set(&cache,
					   opt == 4014	 ? "--cache-ages"
					   : opt == 4015 ? "--cache-scope"
							 : "--no-cache",
					   optarg, err, sizeof err) != EMV_OK)
				goto bad_number;
			continue;
		case 4010:
			if ((shutdown_ms = emv_stop_parse_timeout(optarg)) < 0) {
				fprintf(stderr, "emailverify run: --shutdown-timeout must be 0.1..3600 seconds\n");
				return 2;
			}
			continue;
		case 4017:
		case 4018:
			if (emv_parse_limit_s(opt == 4017 ? "--deadline" : "--straggler-wait", optarg, opt == 4018,
					      opt == 4017 ? &deadline_s : &straggler_s, err, sizeof err) != 0)
				goto bad_number;
			continue;
		case 'h': run_usage(stdout); return 0;
		default: {
			int r = emv_setup_opt(&eo, opt, optarg);
			if (r == 1)
				continue;
			if (r == 0)
				run_usage(stderr);
			return 2;
		}
		}
	}
	if (!out || (resume_job ? optind + 1 < argc : optind + 1 != argc)) {
		fprintf(stderr, "emailverify run: %s\n",
			!out		 ? "-o OUTPUT is required"
			: optind >= argc ? "no list given"
					 : "one list at a time");
		run_usage(stderr);
		return 2;
	}
	list = optind < argc ? argv[optind] : resume_job;
	/* a machine that cannot verify stops here, before the list is read */
	if (cli_preflight(&eo, "emailverify run") < 0)
		return 1;
	emv_stop_install("emailverify run", shutdown_ms);
	signal(SIGPIPE, SIG_IGN);

	if (!(c = emv_db_connect(url, err, sizeof err)) || emv_db_migrate(c, &version, err, sizeof err) != EMV_OK ||
	    !(lists = emv_lists_load(eo.data_dir, err, sizeof err)) ||
	    !(mock = emv_kafka_mock_new(1, err, sizeof err))) {
		fprintf(stderr, "emailverify run: %s\n", err);
		goto out;
	}
	/* the output must be writable before hours of work go into it */
	if (!(f = fopen(out, "w"))) {
		fprintf(stderr, "emailverify run: %s: cannot write\n", out);
		goto out;
	}
	if (resume_job) {
		if (resume(c, resume_job, &ist, err, sizeof err) != EMV_OK) {
			fprintf(stderr, "emailverify run: %s\n", err);
			goto out;
		}
		/* the limits given again count from now; the wait for stragglers
		 * starts again (the retries were lost with the last run's Kafka) */
		if (emv_deadline_set(c, ist.job_id, deadline_s, straggler_s, err, sizeof err) != EMV_OK ||
		    emv_db_run(c, "UPDATE jobs SET answered_at = now() WHERE id = $1 AND answered_at IS NOT NULL", 1,
			       (const char *const[]){ ist.job_id }, err, sizeof err, "continuing job %s",
			       ist.job_id) != EMV_OK) {
			fprintf(stderr, "emailverify run: %s\n", err);
			goto out;
		}
		sp.skip_final = 1; /* its batches went with the last run's embedded Kafka */
		sp.retry_delay_ms = eo.retry.topic_delay_ms[0]; /* and its retries: due when they would have been */
		fprintf(stderr, "job %s: continuing (%" PRIu64 " rows, %" PRIu64 " unique addresses)\n", ist.job_id,
			ist.rows, ist.unique);
	} else if (emv_ingest_job(c, lists, tenant, name, list, &ist, err, sizeof err) != EMV_OK ||
		   emv_db_job_policy_set(c, ist.job_id, policy, err, sizeof err) != EMV_OK ||
		   (max_age >= 0 && emv_vcache_job_set(c, ist.job_id, max_age, err, sizeof err) != EMV_OK) ||
		   emv_deadline_set(c, ist.job_id, deadline_s < 0 ? 0 : deadline_s,
				    straggler_s < 0 ? EMV_DEF_LINGER_MS / 1000 : straggler_s, err,
				    sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify run: %s\n", err);
		goto out;
	} else {
		fprintf(stderr,
			"job %s: %" PRIu64 " rows (%" PRIu64 " unique addresses, %" PRIu64 " duplicates, %" PRIu64
			" invalid, %" PRIu64 " row errors)\n",
			ist.job_id, ist.rows, ist.unique, ist.duplicates, ist.invalid, ist.row_errors);
	}
	rows = ist.rows;

	/* the sink on a connection of its own */
	memset(&snk, 0, sizeof snk);
	emv_sink_params_default(&snk.p);
	snk.p.brokers = emv_kafka_mock_bootstraps(mock);
	/* the embedded Kafka drops what is over 5 MiB a partition, read or
	 * not: workers wait while the sink is 8 MiB behind (results are keyed
	 * by domain shard: even a one-domain list spreads over 4 keys, 2 MiB
	 * each at most) */
	gate.limit = 8u << 20;
	snk.p.stored_bytes = &gate.stored;
	snk.p.cache = &cache;
	if (!(snk.c = emv_db_connect(url, err, sizeof err))) {
		fprintf(stderr, "emailverify run: %s\n", err);
		goto out;
	}
	if (pthread_create(&snk.t, NULL, sink_thread, &snk) != 0) {
		PQfinish(snk.c);
		goto out;
	}
	sink_started = 1;
	for (int i = 0; i < nworkers; i++) {
		struct wthread *w = &wt[i];
		memset(w, 0, sizeof *w);
		emv_worker_opts_default(&w->o);
		snprintf(w->name, sizeof w->name, "run-%d", i + 1);
		w->o.name = w->name;
		w->o.brokers = emv_kafka_mock_bootstraps(mock);
		w->o.embedded = 1;
		w->o.gate = &gate;
		w->o.shutdown_ms = shutdown_ms * 70 / 100;
		w->eo = &eo;
		if (pthread_create(&w->t, NULL, worker_thread, w) != 0)
			break;
		nstarted++;
	}
	sp.brokers = emv_kafka_mock_bootstraps(mock);
	sp.cache = &cache;
	if (emv_split_job(c, ist.job_id, &sp, &sst, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify run: %s\n", err);
		goto out;
	}
	if (sst.cached)
		fprintf(stderr, "job %s: %" PRIu64 " addresses answered from the verdict cache\n", ist.job_id,
			sst.cached);
	if (sst.delayed)
		fprintf(stderr,
			"job %s: %" PRIu64 " addresses in %" PRIu64 " batches (%" PRIu64 " of them wait for "
			"their retry)\n",
			ist.job_id, sst.addresses, sst.batches, sst.delayed);
	else
		fprintf(stderr, "job %s: %" PRIu64 " addresses in %" PRIu64 " batches\n", ist.job_id, sst.addresses,
			sst.batches);

	for (;;) {
		if (job_progress(c, ist.job_id, &pr) < 0) {
			fprintf(stderr, "emailverify run: the job's progress cannot be read: %s\n", PQerrorMessage(c));
			goto out;
		}
		if (strcmp(pr.state, "done") == 0)
			break;
		if (emv_stop_signal) {
			stop_at = emv_now_ms();
			fprintf(stderr,
				"\nemailverify run: interrupted; stopping within %.1f s (Ctrl-C again: at once)\n",
				(double)shutdown_ms / 1000.0);
			goto out;
		}
		/* a line when something moved (at most every 2 s), else every 30 s */
		if (emv_now_ms() - last_print >= (pr.final != last_final ? 2000u : 30000u)) {
			last_final = pr.final;
			long long todo = pr.unusable + (long long)ist.unique, waiting;
			double secs = (double)(emv_now_ms() - start) / 1000.0;
			char eta[32];
			job_eta(c, ist.job_id, &pr, todo, secs, eta, sizeof eta, &waiting);
			fprintf(stderr, "  %lld / %lld final (%.0f%%, %lld from the verdict cache), %.0f s, %lld waiting for a retry, "
				"ETA %s\n",
				pr.final, todo, todo ? 100.0 * (double)pr.final / (double)todo : 100.0, pr.cached, secs,
				waiting, eta);
			last_print = emv_now_ms();
		}
		usleep(200000);
	}
	xp.lists = lists;
	if (emv_export_to_file(c, ist.job_id, &xp, f, NULL, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify run: %s\n", err);
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		fprintf(stderr, "emailverify run: %s: writing failed\n", out);
		goto out;
	}
	f = NULL;
	summary(c, ist.job_id, list, (double)(emv_now_ms() - start) / 1000.0, rows, pr.cached);
	fprintf(stderr, "  results in %s\n", out);
	rc = 0;
out:
	if (emv_stop_signal && !stop_at && rc != 0)
		stop_at = emv_now_ms(); /* interrupted before the job ran (ingest, split) */
	/* the job done (at its deadline, say), a session still hanging on a
	 * server can change no verdict: not waited for */
	workers_stop = rc == 0 ? EMV_WORKER_STOP_NOW : 1;
	for (int i = 0; i < nstarted; i++) {
		pthread_join(wt[i].t, NULL);
		if (wt[i].rc != EMV_OK)
			rc = 1;
	}
	if (sink_started) {
		/* interrupted: the verdicts the workers sent are stored before
		 * the sink stops, within the shutdown timeout */
		while (stop_at && emv_now_ms() - stop_at < (uint64_t)shutdown_ms * 90 / 100 &&
		       __atomic_load_n(&gate.stored, __ATOMIC_RELAXED) <
			       __atomic_load_n(&gate.produced, __ATOMIC_RELAXED))
			usleep(20000);
		sink_stop = 1;
		pthread_join(snk.t, NULL);
		PQfinish(snk.c);
	}
	if (stop_at) {
		if (c && ist.job_id[0] && job_progress(c, ist.job_id, &pr) == 0)
			fprintf(stderr,
				"emailverify run: stopped in %.1f s; job %s stays in the database (%lld of %lld rows "
				"final): continue with --job %s\n",
				(double)(emv_now_ms() - stop_at) / 1000.0, ist.job_id, pr.final, pr.total, ist.job_id);
		rc = EMV_STOP_EXIT_INTERRUPTED;
	}
	if (f)
		fclose(f);
	emv_kafka_mock_free(mock);
	emv_lists_free(lists);
	emv_policy_free(policy);
	if (c)
		PQfinish(c);
	return rc;
bad_number:
	fprintf(stderr, "emailverify run: %s\n", err);
	return 2;
}
