/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker_main.c - `emailverify-worker`: the cluster's probe worker daemon
 * (the work itself is emv_worker.c).
 *
 * SIGTERM/SIGINT: stop within --shutdown-timeout (emv_worker.h says what is
 * delivered, committed and left for the next owner), exit 0; a second
 * signal, or the timeout passed by more than 2 s, exits at once with 130.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "emv_defaults.h"
#include "emv_kafka.h"
#include "emv_util.h"
#include "emv_worker.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: emailverify-worker --brokers HOST:PORT[,...] [options]\n\n"
		"  --group G              consumer group (" EMV_GROUP_WORKERS ")\n"
		"  --batches-topic T      (" EMV_TOPIC_BATCHES ")\n"
		"  --results-topic T      (" EMV_TOPIC_RESULTS ")\n"
		"  --retry-topic T        (" EMV_TOPIC_RETRY ")\n"
		"  --name NAME            worker name in results (host name)\n"
		"  --region NAME          region in results (the pool's region with --pool); a worker with a\n"
		"                         region also consumes <batches-topic>.NAME and <retry-topic>.NAME\n"
		"  --reroute-topic T      addresses no pool address may ask (all quarantined for their\n"
		"                         provider) go here, for the coordinator's router (" EMV_TOPIC_REROUTE ")\n"
		"  --ip-state-topic T     the pool's reputation, compacted (" EMV_TOPIC_IP_STATE "; \"\" = none)\n"
		"  --ip-state-interval S  publish it at least every S seconds, and on every change (30)\n"
		"  --domain-state-topic T what workers learn per MX host and domain, compacted: read at start,\n"
		"                         followed, own findings published (" EMV_TOPIC_DOMAIN_STATE "; \"\" = none)\n"
		"  --domain-state-load S  at start, read that topic for at most S seconds (" EMV_DEF_STR(
			EMV_DEF_DOMSTATE_LOAD_MS) " ms)\n"
		"  --max-inflight N       batches being verified at once (64)\n"
		"  --retry-attempts N     tries per address through the retry topic, the first included (" EMV_DEF_STR(
			EMV_DEF_TOPIC_ATTEMPTS) ")\n"
						"  --retry-delay MS[,MS,MS]  waits before the 2nd, 3rd, 4th+ try (" EMV_DEF_STR(EMV_DEF_TOPIC_DELAY1_MS) "," EMV_DEF_STR(EMV_DEF_TOPIC_DELAY2_MS) "," EMV_DEF_STR(
							EMV_DEF_TOPIC_DELAY3_MS) ")\n"
										 "  --until-idle MS        exit after MS without work (tests)\n"
										 "  --session-timeout MS   consumer group session timeout (10000)\n"
										 "  --kafka KEY=VALUE      a librdkafka setting (TLS, SASL...; repeatable)\n"
										 "  --kafka-config FILE    librdkafka settings, one KEY=VALUE per line\n"
										 "  --shutdown-timeout S   on SIGTERM/SIGINT: stop within S seconds (10): sessions in flight\n"
										 "                         end or are abandoned, verdicts known are sent and committed, the\n"
										 "                         rest (held retry batches included) is left to the next worker.\n"
										 "                         Exit 0; a second signal exits at once with 130\n" EMV_SETUP_HELP);
}

static int parse_delays(const char *s, int out[3])
{
	int n = 0;
	char *end;
	while (*s && n < 3) {
		long v = strtol(s, &end, 10);
		if (end == s || v < 0 || v > 86400000L)
			return -1;
		out[n++] = (int)v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	for (; n > 0 && n < 3; n++)
		out[n] = out[n - 1];
	return n ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, 3001 },
		{ "group", required_argument, NULL, 3002 },
		{ "batches-topic", required_argument, NULL, 3003 },
		{ "results-topic", required_argument, NULL, 3004 },
		{ "name", required_argument, NULL, 3005 },
		{ "region", required_argument, NULL, 3006 },
		{ "max-inflight", required_argument, NULL, 3007 },
		{ "until-idle", required_argument, NULL, 3008 },
		{ "session-timeout", required_argument, NULL, 3009 },
		{ "retry-topic", required_argument, NULL, 3010 },
		{ "retry-attempts", required_argument, NULL, 3011 },
		{ "retry-delay", required_argument, NULL, 3012 },
		{ "kafka", required_argument, NULL, 3013 },
		{ "kafka-config", required_argument, NULL, 3014 },
		{ "reroute-topic", required_argument, NULL, 3015 },
		{ "ip-state-topic", required_argument, NULL, 3016 },
		{ "ip-state-interval", required_argument, NULL, 3017 },
		{ "shutdown-timeout", required_argument, NULL, 3018 },
		{ "domain-state-topic", required_argument, NULL, 3019 },
		{ "domain-state-load", required_argument, NULL, 3020 },
		{ "help", no_argument, NULL, 'h' },
		EMV_SETUP_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	emv_worker_opts wo;
	emv_worker_stats st;
	emv_setup_opts eo;
	char host[64] = "worker", err[512];
	char **kconf = NULL;
	size_t nkconf = 0;
	int opt, rc;

	emv_worker_opts_default(&wo);
	emv_setup_opts_default(&eo);
	gethostname(host, sizeof host - 1);
	wo.name = host;
	while ((opt = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
		switch (opt) {
		case 3001: wo.brokers = optarg; continue;
		case 3002: wo.group = optarg; continue;
		case 3003: wo.batches_topic = optarg; continue;
		case 3004: wo.results_topic = optarg; continue;
		case 3005: wo.name = optarg; continue;
		case 3006: wo.region = optarg; continue;
		case 3007:
			if (emv_parse_int("--max-inflight", optarg, 1, 100000, &wo.max_inflight, err, sizeof err))
				goto bad_number;
			continue;
		case 3008:
			if (emv_parse_int("--until-idle", optarg, 0, 86400000, &wo.idle_exit_ms, err, sizeof err))
				goto bad_number;
			continue;
		case 3009:
			if (emv_parse_int("--session-timeout", optarg, 1, 3600000, &wo.session_timeout_ms, err,
					  sizeof err))
				goto bad_number;
			continue;
		case 3010: wo.retry_topic = optarg; continue;
		case 3011:
			if (emv_parse_int("--retry-attempts", optarg, 1, 100, &eo.retry.topic_attempts, err,
					  sizeof err))
				goto bad_number;
			continue;
		case 3012:
			if (parse_delays(optarg, eo.retry.topic_delay_ms) < 0) {
				fprintf(stderr, "emailverify-worker: --retry-delay wants MS[,MS,MS] (0..86400000)\n");
				return 2;
			}
			continue;
		case 3013:
			kconf = emv_xrealloc(kconf, (nkconf + 2) * sizeof *kconf);
			kconf[nkconf++] = emv_xstrdup(optarg);
			kconf[nkconf] = NULL;
			continue;
		case 3014:
			if (emv_kafka_conf_read(optarg, &kconf, &nkconf, err, sizeof err) != EMV_OK) {
				fprintf(stderr, "emailverify-worker: %s\n", err);
				return 2;
			}
			continue;
		case 3015: wo.reroute_topic = optarg; continue;
		case 3016: wo.ipstate_topic = optarg; continue;
		case 3017:
			if (emv_parse_int("--ip-state-interval (seconds)", optarg, 1, 3600, &wo.ipstate_interval_ms,
					  err, sizeof err))
				goto bad_number;
			wo.ipstate_interval_ms *= 1000;
			continue;
		case 3018:
			if ((wo.shutdown_ms = emv_stop_parse_timeout(optarg)) < 0) {
				fprintf(stderr, "emailverify-worker: --shutdown-timeout must be 0.1..3600 seconds\n");
				return 2;
			}
			continue;
		case 3019: wo.domstate_topic = optarg; continue;
		case 3020:
			if (emv_parse_int("--domain-state-load (seconds)", optarg, 0, 600, &wo.domstate_load_ms, err,
					  sizeof err))
				goto bad_number;
			wo.domstate_load_ms *= 1000;
			continue;
		case 'h': usage(stdout); return 0;
		default:
			rc = emv_setup_opt(&eo, opt, optarg);
			if (rc == 1)
				continue;
			if (rc == 0)
				usage(stderr);
			return 2;
		}
	}
	if (!wo.brokers) {
		fprintf(stderr, "emailverify-worker: --brokers is required\n");
		return 2;
	}
	wo.kafka_conf = (const char *const *)kconf;
	emv_stop_install("emailverify-worker", wo.shutdown_ms);
	signal(SIGPIPE, SIG_IGN);
	if (cli_preflight(&eo, "emailverify-worker") < 0) {
		rc = EMV_ERR;
		snprintf(err, sizeof err, "not started");
	} else {
		rc = emv_worker_run(&wo, &eo, &emv_stop_signal, &st, err, sizeof err);
	}
	for (size_t i = 0; i < nkconf; i++)
		free(kconf[i]);
	free(kconf);
	if (rc != EMV_OK) {
		fprintf(stderr, "emailverify-worker: %s\n", err);
		return 1;
	}
	fprintf(stderr,
		"emailverify-worker %s: %" PRIu64 " batches, %" PRIu64 " results, %" PRIu64 " skipped, %" PRIu64
		" retried in %" PRIu64 " retry batches, %" PRIu64 " released, %" PRIu64 " rerouted in %" PRIu64
		" batches, %" PRIu64 " handed on unanswered in %" PRIu64 " cut batches (%" PRIu64
		" of them kept their retry time), %" PRIu64 " pool re-audits (%" PRIu64 " addresses held, %" PRIu64
		" back in rotation), %" PRIu64 " batches dropped after their job's deadline, %" PRIu64
		" temporary results final at it, domain-state: %" PRIu64 " taken at start, %" PRIu64 " while running, %" PRIu64
		" ignored, %" PRIu64 " published\n",
		wo.name, st.batches, st.results, st.skipped, st.retried, st.retry_batches, st.released, st.rerouted,
		st.rerouted_batches, st.cut, st.cut_batches, st.cut_held, st.audits, st.audit_held, st.audit_released,
		st.expired_batches, st.expired, st.domstate_loaded, st.domstate_taken, st.domstate_ignored,
		st.domstate_published);
	return 0;
bad_number:
	fprintf(stderr, "emailverify-worker: %s\n", err);
	return 2;
}
