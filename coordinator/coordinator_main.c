/*
 * coordinator_main.c - `emailverify-coordinator`: the cluster's coordinator.
 *
 *   migrate [--database URL]                 apply the schema migrations
 *   ingest  [--database URL] [--tenant T] [--name N] [--data-dir DIR] LIST
 *                                            a list becomes a job (design §2, step 1)
 *   split   [--database URL] --brokers HOSTS [--topic T] [--batch-max N] JOB
 *                                            a job's addresses become batches on Kafka (step 2)
 *   sink    [--database URL] --brokers HOSTS [--group G] [--until-idle MS]
 *                                            results from Kafka into PostgreSQL (step 4)
 *   delete  [--database URL] JOB           a job and all its rows
 *   export  [--database URL] [-o FILE] [--format csv|jsonl] [--status LIST] JOB
 *                                            a job's results in input order (step 5)
 *
 * URL defaults to $DATABASE_URL.  Both apply pending migrations first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_db.h"
#include "emv_export.h"
#include "emv_ingest_job.h"
#include "emv_kafka.h"
#include "emv_lists.h"
#include "emv_sink.h"
#include "emv_split.h"
#include <signal.h>
#include "emv_util.h"

static volatile sig_atomic_t stop_flag;
static char **kconf; /* --kafka / --kafka-config settings, NULL-terminated */
static size_t nkconf;

static void free_kconf(void)
{
	for (size_t i = 0; i < nkconf; i++)
		free(kconf[i]);
	free(kconf);
}
static volatile int stop_now;

static void on_signal(int sig)
{
	stop_flag = sig;
	stop_now = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: emailverify-coordinator migrate [--database URL]\n"
		   "       emailverify-coordinator ingest [--database URL] [--tenant T] [--name N] [--data-dir DIR] LIST\n"
		   "       emailverify-coordinator split [--database URL] --brokers HOST:PORT[,...] [--topic T]\n"
		   "                                     [--batch-max N] JOB_ID\n"
		   "       emailverify-coordinator sink [--database URL] --brokers HOST:PORT[,...] [--group G] [--topic T]\n"
		   "                                    [--until-idle MS]\n"
		   "         split and sink also take --kafka KEY=VALUE (repeatable) and --kafka-config FILE\n"
		   "       emailverify-coordinator delete [--database URL] JOB_ID\n"
		   "       emailverify-coordinator export [--database URL] [-o FILE] [--format csv|jsonl]\n"
		   "                                      [--status deliverable,...] JOB_ID\n"
		   "  URL defaults to $DATABASE_URL (postgresql://user@host:port/db)\n");
}

/* A job's results to a file (or stdout); did_you_mean from the lists. */
static int run_export(PGconn *c, const char *job, emv_export_params *ep, const char *out, const char *datadir)
{
	char err[1024];
	uint64_t rows = 0;
	FILE *f = out ? fopen(out, "w") : stdout;
	emv_lists *lists = emv_lists_load(datadir ? datadir : getenv("EMAILVERIFY_DATA"), err, sizeof err);
	int rc;

	if (!f) {
		fprintf(stderr, "emailverify-coordinator: %s: %s\n", out, strerror(errno));
		emv_lists_free(lists);
		PQfinish(c);
		return 1;
	}
	ep->lists = lists; /* without the lists, did_you_mean stays empty */
	rc = emv_export_to_file(c, job, ep, f, &rows, err, sizeof err);
	if (out && fclose(f) != 0 && rc == EMV_OK) {
		emv_set_err(err, sizeof err, "%s: %s", out, strerror(errno));
		rc = EMV_ERR;
	}
	emv_lists_free(lists);
	PQfinish(c);
	if (rc != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 1;
	}
	fprintf(stderr, "job %s: %llu rows exported\n", job, (unsigned long long)rows);
	return 0;
}

int main(int argc, char **argv)
{
	const char *url = NULL, *tenant = "default", *name = "", *datadir = NULL, *list = NULL;
	char err[1024];
	int version = 0, ingest, split, sink, export, del;
	const char *out = NULL;
	emv_export_params ep;
	emv_split_params sp;
	emv_sink_params kp;
	PGconn *c;

	emv_split_params_default(&sp);
	emv_sink_params_default(&kp);
	emv_export_params_default(&ep);
	atexit(free_kconf);
	if (argc < 2 || (strcmp(argv[1], "migrate") && strcmp(argv[1], "ingest") && strcmp(argv[1], "split") &&
			 strcmp(argv[1], "sink") && strcmp(argv[1], "export") && strcmp(argv[1], "delete"))) {
		int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
		usage(help ? stdout : stderr);
		return help ? 0 : 2;
	}
	ingest = strcmp(argv[1], "ingest") == 0;
	split = strcmp(argv[1], "split") == 0;
	sink = strcmp(argv[1], "sink") == 0;
	export = strcmp(argv[1], "export") == 0;
	del = strcmp(argv[1], "delete") == 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (sink && strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
			kp.brokers = argv[++i];
		else if (sink && strcmp(argv[i], "--group") == 0 && i + 1 < argc)
			kp.group = argv[++i];
		else if (sink && strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
			kp.topic = argv[++i];
		else if (sink && strcmp(argv[i], "--until-idle") == 0 && i + 1 < argc)
			kp.idle_exit_ms = atoi(argv[++i]);
		else if (split && strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
			sp.brokers = argv[++i];
		else if ((split || sink) && strcmp(argv[i], "--kafka") == 0 && i + 1 < argc) {
			kconf = emv_xrealloc(kconf, (nkconf + 2) * sizeof *kconf);
			kconf[nkconf++] = emv_xstrdup(argv[++i]);
			kconf[nkconf] = NULL;
		} else if ((split || sink) && strcmp(argv[i], "--kafka-config") == 0 && i + 1 < argc) {
			if (emv_kafka_conf_read(argv[++i], &kconf, &nkconf, err, sizeof err) != EMV_OK) {
				fprintf(stderr, "emailverify-coordinator: %s\n", err);
				return 2;
			}
		} else if (split && strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
			sp.topic = argv[++i];
		else if (split && strcmp(argv[i], "--batch-max") == 0 && i + 1 < argc) {
			sp.batch_max = atoi(argv[++i]);
			if (sp.batch_max < 1 || sp.batch_max > 10000) {
				fprintf(stderr, "emailverify-coordinator: --batch-max must be 1..10000\n");
				return 2;
			}
		} else if ((split || export || del) && !list && argv[i][0] != '-')
			list = argv[i]; /* the job id */
		else if (export && strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			out = argv[++i];
		else if (export && strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
			const char *f = argv[++i];
			if (strcmp(f, "csv") && strcmp(f, "jsonl")) {
				fprintf(stderr, "emailverify-coordinator: --format must be csv or jsonl\n");
				return 2;
			}
			ep.format = strcmp(f, "csv") == 0 ? EMV_EXPORT_CSV : EMV_EXPORT_JSONL;
		} else if (export && strcmp(argv[i], "--status") == 0 && i + 1 < argc) {
			if (emv_export_parse_statuses(argv[++i], &ep.status_mask, err, sizeof err) != 0) {
				fprintf(stderr, "emailverify-coordinator: --status: %s\n", err);
				return 2;
			}
		}
		else if (ingest && strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
			tenant = argv[++i];
		else if (ingest && strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else if ((ingest || export) && strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
			datadir = argv[++i];
		else if (ingest && !list && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
			list = argv[i];
		else {
			fprintf(stderr, "emailverify-coordinator: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if ((ingest || split || export || del) && !list) {
		fprintf(stderr, "emailverify-coordinator %s: no %s given\n", argv[1], ingest ? "list" : "job id");
		return 2;
	}
	sp.kafka_conf = kp.kafka_conf = (const char *const *)kconf;
	if (sink && !kp.brokers) {
		fprintf(stderr, "emailverify-coordinator sink: --brokers is required\n");
		return 2;
	}
	if (split && !sp.brokers) {
		fprintf(stderr, "emailverify-coordinator split: --brokers is required\n");
		return 2;
	}
	if (!(c = emv_db_connect(url, err, sizeof err))) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 1;
	}
	if (emv_db_migrate(c, &version, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		PQfinish(c);
		return 1;
	}
	if (sink) {
		emv_sink_stats st;
		int rc;
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		rc = emv_sink_run(c, &kp, &stop_now, &st, err, sizeof err);
		PQfinish(c);
		if (rc != EMV_OK) {
			fprintf(stderr, "emailverify-coordinator: %s\n", err);
			return 1;
		}
		printf("sink: %llu messages, %llu results, %llu stored, %llu skipped, %llu transactions, %llu retries\n",
		       (unsigned long long)st.messages, (unsigned long long)st.results, (unsigned long long)st.stored,
		       (unsigned long long)st.skipped, (unsigned long long)st.transactions,
		       (unsigned long long)st.db_retries);
		return 0;
	}
	if (split) {
		emv_split_stats st;
		int rc = emv_split_job(c, list, &sp, &st, err, sizeof err);
		PQfinish(c);
		if (rc != EMV_OK) {
			fprintf(stderr, "emailverify-coordinator: %s\n", err);
			return 1;
		}
		printf("job %s: %llu addresses in %llu batches on %s in %.2f s\n", list, (unsigned long long)st.addresses,
		       (unsigned long long)st.batches, sp.topic, st.seconds);
		return 0;
	}
	if (export)
		return run_export(c, list, &ep, out, datadir);
	if (del) {
		int found = 0, rc = emv_db_delete_job(c, list, NULL, &found, err, sizeof err);
		PQfinish(c);
		if (rc != EMV_OK || !found) {
			fprintf(stderr, "emailverify-coordinator: %s\n", rc != EMV_OK ? err : "no such job");
			return 1;
		}
		printf("job %s deleted\n", list);
		return 0;
	}
	if (!ingest) {
		printf("schema version %d\n", version);
		PQfinish(c);
		return 0;
	}
	{
		emv_lists *lists = emv_lists_load(datadir ? datadir : getenv("EMAILVERIFY_DATA"), err, sizeof err);
		emv_ingest_job_stats st;
		int rc;
		if (!lists) {
			fprintf(stderr, "emailverify-coordinator: %s\n", err);
			PQfinish(c);
			return 1;
		}
		rc = emv_ingest_job(c, lists, tenant, name, list, &st, err, sizeof err);
		emv_lists_free(lists);
		PQfinish(c);
		if (rc != EMV_OK) {
			fprintf(stderr, "emailverify-coordinator: %s\n", err);
			return 1;
		}
		printf("job %s: %llu rows (%llu unique addresses, %llu duplicates, %llu invalid, %llu row errors) "
		       "in %.2f s, %.0f rows/s\n",
		       st.job_id, (unsigned long long)st.rows, (unsigned long long)st.unique,
		       (unsigned long long)st.duplicates, (unsigned long long)st.invalid,
		       (unsigned long long)st.row_errors, st.seconds, st.seconds > 0 ? (double)st.rows / st.seconds : 0);
	}
	return 0;
}
