/* SPDX-License-Identifier: Apache-2.0 */
/*
 * coordinator_main.c - `emailverify-coordinator`: the cluster's coordinator.
 *
 *   migrate [--database URL]                 apply the schema migrations
 *   ingest  [--database URL] [--tenant T] [--name N] [--data-dir DIR]
 *           [--policy NAME|FILE] [--max-age D|--fresh] [--deadline D] [--straggler-wait D] LIST
 *                                            a list becomes a job (docs/design.md §2, step 1)
 *   split   [--database URL] --brokers HOSTS [--topic T] [--batch-max N] JOB
 *                                            a job's addresses become batches on Kafka (step 2)
 *   sink    [--database URL] --brokers HOSTS [--group G] [--until-idle MS]
 *                                            results from Kafka into PostgreSQL (step 4)
 *   delete  [--database URL] JOB           a job and all its rows
 *   forget  [--database URL] --tenant T ADDRESS
 *                                            a privacy request (emv_privacy.h)
 *   export  [--database URL] [-o FILE] [--format csv|jsonl] [--status LIST] JOB
 *                                            a job's results in input order (step 5)
 *   serve   --listen HOST:PORT [--database URL] (--brokers HOSTS | --embedded-kafka) ...
 *                                            the HTTP API (docs/api.md; emv_api.h)
 *   token   create --tenant T [--name N] | revoke ID | list   [--database URL]
 *                                            API tokens (only their hashes are stored)
 *
 * URL defaults to $DATABASE_URL.  Every command that opens the database
 * applies pending migrations first.  One function per command, found in
 * the command table at the end (main).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <getopt.h>
#include <inttypes.h>
#include "emv_api.h"
#include "emv_stop.h"
#include "emv_db.h"
#include "emv_deadline.h"
#include "emv_defaults.h"
#include "emv_tokens.h"
#include "emv_export.h"
#include "emv_ingest_job.h"
#include "emv_kafka.h"
#include "emv_lists.h"
#include "emv_sink.h"
#include "emv_split.h"
#include "emv_router.h"
#include "emv_ipstate.h"
#include "emv_privacy.h"
#include "emv_address.h"
#include "emv_routes.h"
#include "emv_vcache.h"
#include <signal.h>
#include "emv_util.h"

static volatile sig_atomic_t stop_flag;
static emv_vcache_cfg cache; /* the verdict cache's settings (split, sink, serve) */
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
	fprintf(f,
		"usage: emailverify-coordinator migrate [--database URL]\n"
		"       emailverify-coordinator ingest [--database URL] [--tenant T] [--name N] [--data-dir DIR]\n"
		"                                      [--policy NAME|FILE] [--max-age D | --fresh]\n"
		"                                      [--deadline D] [--straggler-wait D] LIST\n"
		"         --max-age D: answer from the verdict cache only verdicts younger than D (30d, 12h);\n"
		"         --fresh: none, ask every address again (docs/cache.md)\n"
		"         --deadline D: the job's deadline, D (90s, 10m, 2h) from now: then every address still\n"
		"         waiting is final unknown with its last reason and evidence; --straggler-wait D: at most\n"
		"         D more for retries once every address had its first answer (default 5m; 0 = no limit)\n"
		"       emailverify-coordinator split [--database URL] --brokers HOST:PORT[,...] [--topic T]\n"
		"                                     [--results-topic T] [--batch-max N] [--routes FILE] JOB_ID\n"
		"         --routes: domain -> region rules (docs/regions.md); default: the shared topic\n"
		"       emailverify-coordinator router [--database URL] --brokers HOST:PORT[,...] [--group G]\n"
		"                                      [--live S] [--wait S] [--until-idle MS] [--batches-topic T]\n"
		"                                      [--retry-topic T] [--reroute-topic T] [--ip-state-topic T]\n"
		"                                      [--domain-state-topic T]\n"
		"         stores the workers' ip-state and domain-state (tables ip_state, domain_state) and sends\n"
		"         batches a region gave back to another region\n"
		"       emailverify-coordinator ips [--database URL] [--region R] [--state S] [--format json|prometheus]\n"
		"         the source addresses' reputation per provider, as the workers last reported it\n"
		"       emailverify-coordinator sink [--database URL] --brokers HOST:PORT[,...] [--group G] [--topic T]\n"
		"                                    [--until-idle MS]\n"
		"         split, sink and router also take --kafka KEY=VALUE (repeatable) and --kafka-config FILE\n"
		"         split, sink and serve take the verdict cache's settings (docs/cache.md):\n"
		"           --cache-ages LIST, --cache-scope tenant|global, --no-cache\n"
		"           (or $EMV_CACHE_AGES, $EMV_CACHE_SCOPE = tenant|global|off)\n"
		"       emailverify-coordinator delete [--database URL] JOB_ID\n"
		"         (also the verdict cache entries the job made)\n"
		"       emailverify-coordinator forget --tenant T [--database URL] ADDRESS\n"
		"         a privacy request: the address's cache entries (T's and the global one) are\n"
		"         deleted and T's job rows redacted; files already exported are not (docs/cache.md)\n"
		"       emailverify-coordinator export [--database URL] [-o FILE] [--format csv|jsonl]\n"
		"                                      [--status deliverable,...] [--no-escape-formulas] JOB_ID\n"
		"         (CSV cells starting with = + - @ TAB CR are quoted with a ' in front unless\n"
		"         --no-escape-formulas)\n"
		"       emailverify-coordinator serve --listen HOST:PORT [--database URL]\n"
		"                                     (--brokers HOST:PORT[,...] | --embedded-kafka) [options]\n"
		"       emailverify-coordinator token create --tenant NAME [--name N] [--database URL]\n"
		"       emailverify-coordinator token revoke ID [--database URL]\n"
		"       emailverify-coordinator token list [--database URL]\n"
		"       emailverify-coordinator tenant policy TENANT NAME|FILE|default [--database URL]\n"
		"         the verdict policy of the tenant's new jobs that name none (docs/policy.md)\n"
		"       emailverify-coordinator tenant delete TENANT [--database URL]\n"
		"         all of a tenant's data: jobs, verdict cache entries, settings, tokens\n"
		"  URL defaults to $DATABASE_URL (postgresql://user@host:port/db)\n");
}

static void serve_usage(FILE *f)
{
	emv_api_params d;
	emv_api_params_default(&d);
	fprintf(f,
		"usage: emailverify-coordinator serve --listen HOST:PORT [options]\n"
		"  --database URL          PostgreSQL (default $DATABASE_URL)\n"
		"  --brokers HOSTS         Kafka bootstrap servers\n"
		"  --embedded-kafka        run librdkafka's mock cluster in this process instead\n"
		"  --ready-file PATH       write listen=, brokers=, pid= there once serving\n"
		"  --max-upload BYTES      largest upload, as sent (compressed or not) (default %lld)\n"
		"  --max-rows N            rows of one list; as many empty or blank lines again\n"
		"                          (default %lld)\n"
		"  --max-decompressed BYTES  bytes of one list once decompressed (default %lld)\n"
		"  --max-uploads N         uploads ingested at once (default %d)\n"
		"  --max-uploads-per-tenant N  of those, one tenant's at most (default: half, at least 1)\n"
		"  --db-threads N          query threads (default %d)\n"
		"  --timeout S             idle connection timeout: nothing read or written (default %d)\n"
		"  --request-timeout S     deadline of one request, from its first byte (headers too)\n"
		"                          to the end of its answer, 0 = none (default %d)\n"
		"  --max-connections N     connections at once (default %d)\n"
		"  --max-connections-per-ip N  from one address, 0 = no limit (default %d)\n"
		"  --connection-memory B   bytes per connection for headers and buffers (default %lld)\n"
		"  --rate-limit N          requests per second per token, 0 = none (default %d)\n"
		"  --rate-burst N          bucket size (default %d)\n"
		"  --auth-fail-limit N     failed authentications (a token presented and refused) per\n"
		"                          client address per window; past it 429, 0 = none (default %d)\n"
		"  --auth-fail-window S    that window in seconds (default %d)\n"
		"  --batch-max N           addresses per Kafka batch (default %d)\n"
		"  --webhook-progress PCT  progress webhook every PCT percent, 0 = none (default %d)\n"
		"  --webhook-attempts N    attempts per webhook (default %d)\n"
		"  --webhook-backoff MS    first retry delay, doubled each time (default %d)\n"
		"  --webhook-timeout S     per attempt (default %d)\n"
		"  --webhook-allow-private allow callbacks to loopback/private addresses\n"
		"  --webhook-allow-http    allow plain http:// callbacks (default: https:// only)\n"
		"  --webhook-ca FILE       CA certificates (PEM) that https:// callbacks are verified\n"
		"                          against (default: the system's store)\n"
		"  --no-sink               do not store results (nor route between regions) in this process\n"
		"  --cache-ages LIST       verdict cache: maximum ages by status or reason\n"
		"                          (deliverable=30d,undeliverable=90d,risky=7d,mailbox_full=1d; \"off\":\n"
		"                          never served; docs/cache.md; default $EMV_CACHE_AGES)\n"
		"  --cache-scope S         tenant (each tenant its own cache, the default) or global (one for\n"
		"                          every tenant); default $EMV_CACHE_SCOPE (tenant|global|off)\n"
		"  --no-cache              neither answer from the verdict cache nor fill it\n"
		"  --routes FILE           domain -> region rules for the split (docs/regions.md)\n"
		"  --data-dir DIR          lists (default: $EMAILVERIFY_DATA, else share/emailverify\n"
		"                          beside the binary's folder)\n"
		"  --shutdown-timeout S    on SIGTERM/SIGINT: stop within S seconds (default 10), then exit 0;\n"
		"                          a second signal exits at once with 130\n"
		"  -v, --verbose           log more (repeat for more)\n",
		(long long)d.max_upload, (long long)d.max_rows, (long long)d.max_decompressed, d.max_uploads,
		d.db_threads, d.timeout_s, d.request_timeout_s, d.max_connections, d.max_connections_per_ip,
		(long long)d.connection_memory, d.rate_limit, d.rate_burst, d.auth_fail_limit, d.auth_fail_window_s,
		d.batch_max, d.webhook_progress, d.webhook_attempts, d.webhook_backoff_ms, d.webhook_timeout_s);
}

/* A whole decimal number in [lo, hi], or -1 with a message. */
static int num_arg(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
	char err[256];
	if (emv_parse_number(opt, s, lo, hi, out, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return -1;
	}
	return 0;
}

static int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "database", required_argument, NULL, 'd' },
		{ "brokers", required_argument, NULL, 'b' },
		{ "embedded-kafka", no_argument, NULL, 'e' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "max-upload", required_argument, NULL, 1 },
		{ "max-uploads", required_argument, NULL, 2 },
		{ "db-threads", required_argument, NULL, 3 },
		{ "timeout", required_argument, NULL, 4 },
		{ "rate-limit", required_argument, NULL, 5 },
		{ "rate-burst", required_argument, NULL, 6 },
		{ "batch-max", required_argument, NULL, 7 },
		{ "webhook-progress", required_argument, NULL, 8 },
		{ "webhook-attempts", required_argument, NULL, 9 },
		{ "webhook-backoff", required_argument, NULL, 10 },
		{ "webhook-timeout", required_argument, NULL, 11 },
		{ "webhook-allow-private", no_argument, NULL, 12 },
		{ "no-sink", no_argument, NULL, 13 },
		{ "data-dir", required_argument, NULL, 14 },
		{ "request-timeout", required_argument, NULL, 15 },
		{ "max-connections", required_argument, NULL, 16 },
		{ "max-connections-per-ip", required_argument, NULL, 17 },
		{ "connection-memory", required_argument, NULL, 18 },
		{ "routes", required_argument, NULL, 19 },
		{ "shutdown-timeout", required_argument, NULL, 22 },
		{ "max-rows", required_argument, NULL, 20 },
		{ "max-decompressed", required_argument, NULL, 21 },
		{ "auth-fail-limit", required_argument, NULL, 23 },
		{ "webhook-allow-http", no_argument, NULL, 25 },
		{ "max-uploads-per-tenant", required_argument, NULL, 27 },
		{ "webhook-ca", required_argument, NULL, 26 },
		{ "auth-fail-window", required_argument, NULL, 24 },
		{ "cache-ages", required_argument, NULL, 28 },
		{ "cache-scope", required_argument, NULL, 29 },
		{ "no-cache", no_argument, NULL, 30 },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	emv_api_params p;
	char err[1024];
	long long v;
	int o, listen_given = 0;
	static emv_routes *routes; /* lives as long as the server */

	emv_api_params_default(&p);
	while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (o) {
		case 'l':
			p.listen = optarg;
			listen_given = 1;
			break;
		case 'd': p.database = optarg; break;
		case 'b': p.brokers = optarg; break;
		case 'e': p.embedded_kafka = 1; break;
		case 'r': p.ready_file = optarg; break;
		case 1:
			if (num_arg("--max-upload", optarg, 1, (long long)1 << 40, &v))
				return 2;
			p.max_upload = v;
			break;
		case 2:
			if (num_arg("--max-uploads", optarg, 1, 1000, &v))
				return 2;
			p.max_uploads = (int)v;
			break;
		case 3:
			if (num_arg("--db-threads", optarg, 1, 64, &v))
				return 2;
			p.db_threads = (int)v;
			break;
		case 4:
			if (num_arg("--timeout", optarg, 1, 3600, &v))
				return 2;
			p.timeout_s = (int)v;
			break;
		case 5:
			if (num_arg("--rate-limit", optarg, 0, 1000000, &v))
				return 2;
			p.rate_limit = (int)v;
			break;
		case 6:
			if (num_arg("--rate-burst", optarg, 1, 1000000, &v))
				return 2;
			p.rate_burst = (int)v;
			break;
		case 7:
			if (num_arg("--batch-max", optarg, 1, 10000, &v))
				return 2;
			p.batch_max = (int)v;
			break;
		case 8:
			if (num_arg("--webhook-progress", optarg, 0, 100, &v))
				return 2;
			p.webhook_progress = (int)v;
			break;
		case 9:
			if (num_arg("--webhook-attempts", optarg, 1, 100, &v))
				return 2;
			p.webhook_attempts = (int)v;
			break;
		case 10:
			if (num_arg("--webhook-backoff", optarg, 1, 86400000, &v))
				return 2;
			p.webhook_backoff_ms = (int)v;
			break;
		case 11:
			if (num_arg("--webhook-timeout", optarg, 1, 3600, &v))
				return 2;
			p.webhook_timeout_s = (int)v;
			break;
		case 12: p.webhook_allow_private = 1; break;
		case 13: p.no_sink = 1; break;
		case 14: p.data_dir = optarg; break;
		case 15:
			if (num_arg("--request-timeout", optarg, 0, 86400, &v))
				return 2;
			p.request_timeout_s = (int)v;
			break;
		case 16:
			if (num_arg("--max-connections", optarg, 1, 100000, &v))
				return 2;
			p.max_connections = (int)v;
			break;
		case 17:
			if (num_arg("--max-connections-per-ip", optarg, 0, 100000, &v))
				return 2;
			p.max_connections_per_ip = (int)v;
			break;
		case 18:
			if (num_arg("--connection-memory", optarg, 16384, 16 * 1024 * 1024, &v))
				return 2;
			p.connection_memory = v;
			break;
		case 19:
			emv_routes_free(routes);
			if (!(routes = emv_routes_load(optarg, err, sizeof err))) {
				fprintf(stderr, "emailverify-coordinator: --routes %s\n", err);
				return 2;
			}
			p.routes = routes;
			break;
		case 20:
			if (num_arg("--max-rows", optarg, 1, (long long)1 << 40, &v))
				return 2;
			p.max_rows = v;
			break;
		case 21:
			if (num_arg("--max-decompressed", optarg, 1, (long long)1 << 42, &v))
				return 2;
			p.max_decompressed = v;
			break;
		case 25: p.webhook_allow_http = 1; break;
		case 27:
			if (num_arg("--max-uploads-per-tenant", optarg, 1, 1000, &v))
				return 2;
			p.max_uploads_per_tenant = (int)v;
			break;
		case 26:
			if (access(optarg, R_OK) != 0) {
				fprintf(stderr, "emailverify-coordinator serve: --webhook-ca %s: %s\n", optarg,
					strerror(errno));
				return 2;
			}
			p.webhook_ca = optarg;
			break;
		case 23:
			if (num_arg("--auth-fail-limit", optarg, 0, 1000000, &v))
				return 2;
			p.auth_fail_limit = (int)v;
			break;
		case 24:
			if (num_arg("--auth-fail-window", optarg, 1, 86400, &v))
				return 2;
			p.auth_fail_window_s = (int)v;
			break;
		case 28:
		case 29:
		case 30:
			if (emv_vcache_set(&cache,
					   o == 28   ? "--cache-ages"
					   : o == 29 ? "--cache-scope"
						     : "--no-cache",
					   optarg, err, sizeof err) != EMV_OK) {
				fprintf(stderr, "emailverify-coordinator serve: %s\n", err);
				return 2;
			}
			break;
		case 'v':
			if (emv_log_threshold < EMV_LOG_TRACE)
				emv_log_threshold++;
			break;
		case 22:
			if ((p.shutdown_ms = emv_stop_parse_timeout(optarg)) < 0) {
				fprintf(stderr,
					"emailverify-coordinator serve: --shutdown-timeout must be 0.1..3600 seconds\n");
				return 2;
			}
			break;
		case 'h': serve_usage(stdout); return 0;
		default: serve_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "emailverify-coordinator serve: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!listen_given) {
		fprintf(stderr, "emailverify-coordinator serve: --listen HOST:PORT is required\n");
		return 2;
	}
	if (!!p.brokers == !!p.embedded_kafka) {
		fprintf(stderr, "emailverify-coordinator serve: give one of --brokers HOSTS or --embedded-kafka\n");
		return 2;
	}
	if (p.rate_burst < 1)
		p.rate_burst = 1;
	p.cache = &cache;
	if (emv_api_serve(&p, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 1;
	}
	return 0;
}

/* `ips`: the pool addresses' reputation as the router stored it. */
static int cmd_ips(int argc, char **argv)
{
	const char *url = NULL, *region = NULL, *state = NULL;
	int prom = 0, version;
	char err[1024];
	PGconn *c;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "--region") == 0 && i + 1 < argc)
			region = argv[++i];
		else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
			state = argv[++i];
		else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc &&
			 (strcmp(argv[i + 1], "json") == 0 || strcmp(argv[i + 1], "prometheus") == 0))
			prom = strcmp(argv[++i], "prometheus") == 0;
		else {
			fprintf(stderr, "emailverify-coordinator ips: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!(c = emv_db_connect(url, err, sizeof err)) || emv_db_migrate(c, &version, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		PQfinish(c);
		return 1;
	}
	if (prom) {
		int rc = emv_ipstate_prometheus(c, stdout, err, sizeof err);
		PQfinish(c);
		if (rc != EMV_OK)
			fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return rc == EMV_OK ? 0 : 1;
	} else {
		json_t *j = emv_ipstate_json(c, region, state, err, sizeof err);
		PQfinish(c);
		if (!j) {
			fprintf(stderr, "emailverify-coordinator: %s\n", err);
			return 1;
		}
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
		return 0;
	}
}

static int cmd_token(int argc, char **argv)
{
	const char *url = NULL, *tenant = NULL, *name = "", *id = NULL, *sub = argc > 1 ? argv[1] : "";
	char err[1024];
	int version, rc;
	long long tid_revoke = 0;
	PGconn *c;

	if (strcmp(sub, "create") && strcmp(sub, "revoke") && strcmp(sub, "list")) {
		usage(stderr);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (sub[0] == 'c' && strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
			tenant = argv[++i];
		else if (sub[0] == 'c' && strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else if (sub[0] == 'r' && !id && argv[i][0] != '-')
			id = argv[i];
		else {
			fprintf(stderr, "emailverify-coordinator token %s: unexpected argument '%s'\n", sub, argv[i]);
			return 2;
		}
	}
	if (sub[0] == 'c' && !tenant) {
		fprintf(stderr, "emailverify-coordinator token create: --tenant NAME is required\n");
		return 2;
	}
	if (sub[0] == 'r' && (!id || emv_parse_ll(id, 1, LLONG_MAX, &tid_revoke) != EMV_OK)) {
		fprintf(stderr, "emailverify-coordinator token revoke: give the token's id (see token list)\n");
		return 2;
	}
	if (!(c = emv_db_connect(url, err, sizeof err)) || emv_db_migrate(c, &version, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		PQfinish(c);
		return 1;
	}
	if (sub[0] == 'c') {
		char token[EMV_TOKEN_LEN + 1];
		int64_t tid;
		rc = emv_token_create(c, tenant, name, token, sizeof token, &tid, err, sizeof err);
		if (rc == EMV_OK) {
			printf("%s\n", token);
			fprintf(stderr, "token %" PRId64 " for tenant %s created; it is shown only this once\n", tid,
				tenant);
		}
	} else if (sub[0] == 'r') {
		rc = emv_token_revoke(c, tid_revoke, err, sizeof err);
		if (rc == EMV_OK)
			fprintf(stderr, "token %s revoked\n", id);
	} else {
		rc = emv_token_list(c, stdout, err, sizeof err);
	}
	PQfinish(c);
	if (rc != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 1;
	}
	return 0;
}

/* A job's results to a file (or stdout); did_you_mean from the lists. */
static int run_export(PGconn *c, const char *job, emv_export_params *ep, const char *out, const char *datadir)
{
	char err[1024];
	uint64_t rows = 0;
	FILE *f = out ? fopen(out, "w") : stdout;
	emv_lists *lists = emv_lists_load(datadir, err, sizeof err);
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

/* The database, its schema brought up to date; NULL (said) on failure. */
static PGconn *open_db(const char *url, int *version)
{
	char err[1024];
	int v = 0;
	PGconn *c = emv_db_connect(url, err, sizeof err);
	if (!c) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return NULL;
	}
	if (emv_db_migrate(c, &v, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		PQfinish(c);
		return NULL;
	}
	if (version)
		*version = v;
	return c;
}

static int unexpected(const char *arg)
{
	fprintf(stderr, "emailverify-coordinator: unexpected argument '%s'\n", arg);
	usage(stderr);
	return 2;
}

/* --kafka KEY=VALUE and --kafka-config FILE (split, sink, router): 1 when
 * argv[*i] was one (consumed), 0 when not, -1 (said) when bad. */
static int kafka_opt(int argc, char **argv, int *i)
{
	char err[1024];
	if (strcmp(argv[*i], "--kafka") == 0 && *i + 1 < argc) {
		kconf = emv_xrealloc(kconf, (nkconf + 2) * sizeof *kconf);
		kconf[nkconf++] = emv_xstrdup(argv[++*i]);
		kconf[nkconf] = NULL;
		return 1;
	}
	if (strcmp(argv[*i], "--kafka-config") == 0 && *i + 1 < argc) {
		if (emv_kafka_conf_read(argv[++*i], &kconf, &nkconf, err, sizeof err) != EMV_OK) {
			fprintf(stderr, "emailverify-coordinator: %s\n", err);
			return -1;
		}
		return 1;
	}
	return 0;
}

static int need(const char *cmd, const char *what, const void *have)
{
	if (have)
		return 0;
	fprintf(stderr, "emailverify-coordinator %s: %s\n", cmd, what);
	return 2;
}

static int cmd_migrate(int argc, char **argv)
{
	const char *url = NULL;
	int version = 0;
	PGconn *c;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else
			return unexpected(argv[i]);
	}
	if (!(c = open_db(url, &version)))
		return 1;
	printf("schema version %d\n", version);
	PQfinish(c);
	return 0;
}

static int cmd_ingest(int argc, char **argv)
{
	const char *url = NULL, *tenant = "default", *name = "", *datadir = NULL, *list = NULL;
	char err[1024];
	emv_ingest_job_stats st;
	emv_lists *lists;
	const emv_policy *policy = NULL;
	int64_t max_age = -1; /* --max-age / --fresh (0) */
	PGconn *c;
	int rc;
	int64_t deadline_s = 0, straggler_s = EMV_DEF_LINGER_MS / 1000;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "--fresh") == 0)
			max_age = 0;
		else if (strcmp(argv[i], "--max-age") == 0 && i + 1 < argc) {
			if (emv_cache_parse_max_age("--max-age", argv[++i], &max_age, err, sizeof err) != EMV_OK) {
				fprintf(stderr, "emailverify-coordinator: %s\n", err);
				emv_policy_free(policy);
				return 2;
			}
		} else if ((strcmp(argv[i], "--deadline") == 0 || strcmp(argv[i], "--straggler-wait") == 0) &&
			 i + 1 < argc) {
			int dl = strcmp(argv[i], "--deadline") == 0;
			if (emv_parse_limit_s(argv[i], argv[i + 1], !dl, dl ? &deadline_s : &straggler_s, err,
					      sizeof err) != 0) {
				fprintf(stderr, "emailverify-coordinator: %s\n", err);
				emv_policy_free(policy);
				return 2;
			}
			i++;
		} else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
			tenant = argv[++i];
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
			datadir = argv[++i];
		else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
			emv_policy_free(policy);
			if (!(policy = emv_policy_get(argv[++i], err, sizeof err))) {
				fprintf(stderr, "emailverify-coordinator: --policy: %s\n", err);
				return 2;
			}
		} else if (!list && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
			list = argv[i];
		else
			return unexpected(argv[i]);
	}
	if (need("ingest", "no list given", list) || !(c = open_db(url, NULL))) {
		emv_policy_free(policy);
		return list ? 1 : 2;
	}
	if (!(lists = emv_lists_load(datadir, err, sizeof err))) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		PQfinish(c);
		emv_policy_free(policy);
		return 1;
	}
	rc = emv_ingest_job(c, lists, tenant, name, list, &st, err, sizeof err);
	if (rc == EMV_OK)
		rc = emv_db_job_policy_set(c, st.job_id, policy, err, sizeof err); /* NULL: the tenant's default */
	if (rc == EMV_OK && max_age >= 0)
		rc = emv_vcache_job_set(c, st.job_id, max_age, err, sizeof err);
	if (rc == EMV_OK)
		rc = emv_deadline_set(c, st.job_id, deadline_s, straggler_s, err, sizeof err);
	emv_lists_free(lists);
	emv_policy_free(policy);
	PQfinish(c);
	if (rc != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 1;
	}
	printf("job %s: %llu rows (%llu unique addresses, %llu duplicates, %llu invalid, %llu row errors) "
	       "in %.2f s, %.0f rows/s\n",
	       st.job_id, (unsigned long long)st.rows, (unsigned long long)st.unique, (unsigned long long)st.duplicates,
	       (unsigned long long)st.invalid, (unsigned long long)st.row_errors, st.seconds,
	       st.seconds > 0 ? (double)st.rows / st.seconds : 0);
	return 0;
}

static int cmd_split(int argc, char **argv)
{
	const char *url = NULL, *job = NULL;
	char err[1024];
	emv_routes *routes = NULL;
	emv_split_params sp;
	emv_split_stats st;
	long long v;
	PGconn *c;
	int rc;

	emv_split_params_default(&sp);
	for (int i = 1; i < argc; i++) {
		int k = kafka_opt(argc, argv, &i);
		if (k < 0) {
			emv_routes_free(routes);
			return 2;
		}
		if (k)
			continue;
		if ((k = emv_vcache_opt(&cache, argc, argv, &i, err, sizeof err)) != 0) {
			if (k > 0)
				continue;
			fprintf(stderr, "emailverify-coordinator split: %s\n", err);
			emv_routes_free(routes);
			return 2;
		}
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
			sp.brokers = argv[++i];
		else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
			sp.topic = argv[++i];
		else if (strcmp(argv[i], "--results-topic") == 0 && i + 1 < argc)
			sp.results_topic = argv[++i];
		else if (strcmp(argv[i], "--batch-max") == 0 && i + 1 < argc) {
			if (num_arg("--batch-max", argv[++i], 1, 10000, &v) < 0) {
				emv_routes_free(routes);
				return 2;
			}
			sp.batch_max = (int)v;
		} else if (strcmp(argv[i], "--routes") == 0 && i + 1 < argc) {
			emv_routes_free(routes);
			if (!(routes = emv_routes_load(argv[++i], err, sizeof err))) {
				fprintf(stderr, "emailverify-coordinator: --routes %s\n", err);
				return 2;
			}
			sp.routes = routes;
		} else if (!job && argv[i][0] != '-')
			job = argv[i];
		else {
			emv_routes_free(routes);
			return unexpected(argv[i]);
		}
	}
	sp.kafka_conf = (const char *const *)kconf;
	sp.cache = &cache;
	if (need("split", "no job id given", job) || need("split", "--brokers is required", sp.brokers) ||
	    !(c = open_db(url, NULL))) {
		emv_routes_free(routes);
		return job && sp.brokers ? 1 : 2;
	}
	rc = emv_split_job(c, job, &sp, &st, err, sizeof err);
	PQfinish(c);
	emv_routes_free(routes);
	if (rc != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 1;
	}
	printf("job %s: %llu addresses in %llu batches on %s in %.2f s (%llu from the verdict cache in %.2f s)\n", job,
	       (unsigned long long)st.addresses, (unsigned long long)st.batches, sp.topic, st.seconds,
	       (unsigned long long)st.cached, st.cache_seconds);
	return 0;
}

/* The options the consumers (sink, router) share: --database, --brokers,
 * --group, --until-idle and the Kafka settings.  1 when argv[*i] was one
 * (consumed), 0 when not, -1 (said) when bad. */
static int consumer_opt(int argc, char **argv, int *i, const char **url, const char **brokers, const char **group,
			int *idle_ms)
{
	long long v;
	int k = kafka_opt(argc, argv, i);
	if (k)
		return k;
	if (*i + 1 >= argc)
		return 0;
	if (strcmp(argv[*i], "--database") == 0)
		*url = argv[++*i];
	else if (strcmp(argv[*i], "--brokers") == 0)
		*brokers = argv[++*i];
	else if (strcmp(argv[*i], "--group") == 0)
		*group = argv[++*i];
	else if (strcmp(argv[*i], "--until-idle") == 0) {
		if (num_arg("--until-idle", argv[++*i], 0, 86400000, &v) < 0)
			return -1;
		*idle_ms = (int)v;
	} else
		return 0;
	return 1;
}

/* A consumer's database, and SIGINT/SIGTERM to stop it; NULL (said). */
static PGconn *consumer_start(const char *cmd, const char *url, const char *brokers)
{
	PGconn *c;
	if (need(cmd, "--brokers is required", brokers) || !(c = open_db(url, NULL)))
		return NULL;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	return c;
}

static int cmd_sink(int argc, char **argv)
{
	const char *url = NULL;
	char err[1024];
	emv_sink_params kp;
	emv_sink_stats st;
	PGconn *c;
	int rc;

	emv_sink_params_default(&kp);
	for (int i = 1; i < argc; i++) {
		int k = consumer_opt(argc, argv, &i, &url, &kp.brokers, &kp.group, &kp.idle_exit_ms);
		if (k < 0)
			return 2;
		if (k)
			continue;
		if ((k = emv_vcache_opt(&cache, argc, argv, &i, err, sizeof err)) != 0) {
			if (k > 0)
				continue;
			fprintf(stderr, "emailverify-coordinator sink: %s\n", err);
			return 2;
		}
		if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
			kp.topic = argv[++i];
		else
			return unexpected(argv[i]);
	}
	kp.kafka_conf = (const char *const *)kconf;
	kp.cache = &cache;
	if (!(c = consumer_start("sink", url, kp.brokers)))
		return kp.brokers ? 1 : 2;
	rc = emv_sink_run(c, &kp, &stop_now, &st, err, sizeof err);
	PQfinish(c);
	if (rc != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 1;
	}
	printf("sink: %llu messages, %llu results, %llu stored, %llu skipped, %llu transactions, %llu retries\n",
	       (unsigned long long)st.messages, (unsigned long long)st.results, (unsigned long long)st.stored,
	       (unsigned long long)st.skipped, (unsigned long long)st.transactions, (unsigned long long)st.db_retries);
	return 0;
}

static int cmd_router(int argc, char **argv)
{
	const char *url = NULL;
	char err[1024];
	emv_router_params rp;
	emv_router_stats st;
	long long v;
	PGconn *c;
	int rc;

	emv_router_params_default(&rp);
	for (int i = 1; i < argc; i++) {
		int k = consumer_opt(argc, argv, &i, &url, &rp.brokers, &rp.group, &rp.idle_exit_ms);
		if (k < 0)
			return 2;
		if (k)
			continue;
		if (strcmp(argv[i], "--batches-topic") == 0 && i + 1 < argc)
			rp.batches_topic = argv[++i];
		else if (strcmp(argv[i], "--retry-topic") == 0 && i + 1 < argc)
			rp.retry_topic = argv[++i];
		else if (strcmp(argv[i], "--reroute-topic") == 0 && i + 1 < argc)
			rp.reroute_topic = argv[++i];
		else if (strcmp(argv[i], "--ip-state-topic") == 0 && i + 1 < argc)
			rp.ipstate_topic = argv[++i];
		else if (strcmp(argv[i], "--domain-state-topic") == 0 && i + 1 < argc)
			rp.domstate_topic = argv[++i];
		else if ((strcmp(argv[i], "--live") == 0 || strcmp(argv[i], "--wait") == 0) && i + 1 < argc) {
			int live = strcmp(argv[i], "--live") == 0;
			if (num_arg(argv[i], argv[i + 1], 1, 86400, &v) < 0)
				return 2;
			i++;
			*(live ? &rp.live_ms : &rp.wait_ms) = (int)v * 1000;
		} else
			return unexpected(argv[i]);
	}
	rp.kafka_conf = (const char *const *)kconf;
	if (!(c = consumer_start("router", url, rp.brokers)))
		return rp.brokers ? 1 : 2;
	rc = emv_router_run(c, &rp, &stop_now, &st, err, sizeof err);
	PQfinish(c);
	if (rc != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 1;
	}
	printf("router: %llu ip-state rows, %llu reroutes (%llu to another region, %llu waiting), %llu skipped, "
	       "%llu retries, %llu domain-state rows\n",
	       (unsigned long long)st.ip_states, (unsigned long long)st.reroutes, (unsigned long long)st.routed,
	       (unsigned long long)st.waited, (unsigned long long)st.skipped, (unsigned long long)st.db_retries,
	       (unsigned long long)st.domain_states);
	return 0;
}

static int cmd_export(int argc, char **argv)
{
	const char *url = NULL, *job = NULL, *out = NULL, *datadir = NULL;
	char err[1024];
	emv_export_params ep;
	PGconn *c;

	emv_export_params_default(&ep);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			out = argv[++i];
		else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
			const char *f = argv[++i];
			if (strcmp(f, "csv") && strcmp(f, "jsonl")) {
				fprintf(stderr, "emailverify-coordinator: --format must be csv or jsonl\n");
				return 2;
			}
			ep.format = strcmp(f, "csv") == 0 ? EMV_EXPORT_CSV : EMV_EXPORT_JSONL;
		} else if (strcmp(argv[i], "--no-escape-formulas") == 0) {
			ep.keep_formulas = 1;
		} else if (strcmp(argv[i], "--status") == 0 && i + 1 < argc) {
			if (emv_export_parse_statuses(argv[++i], &ep.status_mask, err, sizeof err) != 0) {
				fprintf(stderr, "emailverify-coordinator: --status: %s\n", err);
				return 2;
			}
		} else if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
			datadir = argv[++i];
		else if (!job && argv[i][0] != '-')
			job = argv[i];
		else
			return unexpected(argv[i]);
	}
	if (need("export", "no job id given", job))
		return 2;
	if (!(c = open_db(url, NULL)))
		return 1;
	return run_export(c, job, &ep, out, datadir);
}

static int cmd_delete(int argc, char **argv)
{
	const char *url = NULL, *job = NULL;
	char err[1024];
	int found = 0, rc;
	PGconn *c;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (!job && argv[i][0] != '-')
			job = argv[i];
		else
			return unexpected(argv[i]);
	}
	if (need("delete", "no job id given", job))
		return 2;
	if (!(c = open_db(url, NULL)))
		return 1;
	rc = emv_db_delete_job(c, job, NULL, &found, NULL, err, sizeof err);
	PQfinish(c);
	if (rc != EMV_OK || !found) {
		fprintf(stderr, "emailverify-coordinator: %s\n", rc != EMV_OK ? err : "no such job");
		return 1;
	}
	printf("job %s deleted\n", job);
	return 0;
}

/* forget --tenant T ADDRESS: a privacy request (emv_privacy.h), the
 * address normalised as ingest normalises it. */
static int cmd_forget(int argc, char **argv)
{
	const char *url = NULL, *tenant = NULL, *addr = NULL;
	long long nc = 0, nr = 0;
	char err[1024];
	emv_address a;
	PGconn *c;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
			tenant = argv[++i];
		else if (!addr && argv[i][0] != '-')
			addr = argv[i];
		else
			return unexpected(argv[i]);
	}
	if (need("forget", "--tenant T and an address are needed", tenant && addr ? addr : NULL))
		return 2;
	if (emv_address_parse(addr, strlen(addr), &a) != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator forget: not an email address: %s\n", a.detail);
		return 2;
	}
	if (!(c = open_db(url, NULL)))
		return 1;
	rc = emv_privacy_forget(c, tenant, a.address, &nc, &nr, err, sizeof err);
	PQfinish(c);
	if (rc != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 1;
	}
	printf("%s forgotten for tenant %s: %lld cache entries deleted, %lld job rows redacted\n", a.address, tenant,
	       nc, nr);
	return 0;
}

/* tenant delete TENANT: all of a tenant's data (emv_privacy.h), batch by
 * batch; an interrupted deletion is finished by running it again. */
static int tenant_delete(int argc, char **argv)
{
	const char *url = NULL, *tenant = NULL;
	char err[1024];
	int finished = 0;
	long batches = 0;
	PGconn *c;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (!tenant && argv[i][0] != '-')
			tenant = argv[i];
		else
			return unexpected(argv[i]);
	}
	if (need("tenant delete", "no tenant given", tenant))
		return 2;
	if (!(c = open_db(url, NULL)))
		return 1;
	while (!finished) {
		if (emv_privacy_delete_tenant_step(c, tenant, &finished, err, sizeof err) != EMV_OK) {
			fprintf(stderr, "emailverify-coordinator: %s (run it again to finish)\n", err);
			PQfinish(c);
			return 1;
		}
		batches++;
	}
	PQfinish(c);
	printf("tenant %s deleted: its jobs, verdict cache entries, settings and tokens (%ld transactions)\n", tenant,
	       batches);
	return 0;
}

/* tenant policy TENANT NAME|FILE|default: a tenant's default verdict
 * policy for the jobs it uploads without one (docs/policy.md). */
static int cmd_tenant(int argc, char **argv)
{
	const char *url = NULL, *tenant = NULL, *spec = NULL;
	const emv_policy *p = NULL;
	char err[1024];
	PGconn *c;
	int rc;

	if (argc >= 2 && strcmp(argv[1], "delete") == 0)
		return tenant_delete(argc - 1, argv + 1);
	if (argc < 2 || strcmp(argv[1], "policy") != 0) {
		fprintf(stderr,
			"usage: emailverify-coordinator tenant policy TENANT NAME|FILE|default [--database URL]\n"
			"       emailverify-coordinator tenant delete TENANT [--database URL]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (!tenant && argv[i][0] != '-')
			tenant = argv[i];
		else if (!spec && argv[i][0] != '-')
			spec = argv[i];
		else
			return unexpected(argv[i]);
	}
	if (need("tenant policy", "a tenant and a policy (a preset, a file, or default) are needed",
		 tenant && spec ? tenant : NULL))
		return 2;
	if (strcmp(spec, "default") != 0 && !(p = emv_policy_get(spec, err, sizeof err))) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 2;
	}
	if (!(c = open_db(url, NULL))) {
		emv_policy_free(p);
		return 1;
	}
	rc = emv_db_tenant_policy_set(c, tenant, p, err, sizeof err);
	PQfinish(c);
	if (rc != EMV_OK)
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
	else
		printf("tenant %s: new jobs use policy %s unless they name one\n", tenant,
		       p ? emv_policy_name(p) : EMV_POLICY_DEFAULT " (the built-in default)");
	emv_policy_free(p);
	return rc == EMV_OK ? 0 : 1;
}

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "migrate", cmd_migrate }, { "ingest", cmd_ingest }, { "split", cmd_split },	{ "sink", cmd_sink },
	{ "router", cmd_router },   { "ips", cmd_ips },	      { "delete", cmd_delete }, { "export", cmd_export },
	{ "serve", cmd_serve },	    { "token", cmd_token },   { "tenant", cmd_tenant }, { "forget", cmd_forget },
};

int main(int argc, char **argv)
{
	char err[512];

	atexit(free_kconf);
	if (emv_vcache_cfg_init(&cache, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 2;
	}
	if (argc >= 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; argc >= 2 && i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	usage(stderr);
	return 2;
}
