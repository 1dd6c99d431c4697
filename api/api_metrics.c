/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_metrics.c - /readyz and /metrics (Prometheus text): the database,
 * Kafka, consumer lag and the API's own counters.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include "emv_api_internal.h"
#include "emv_db.h"
#include "emv_ipstate.h"
#include "emv_kafka.h"
#include "emv_sink.h"
#include "emv_split.h"
#include "emv_router.h"
#include "emv_util.h"
/* ------------------------------------------------- health, readiness, metrics */

static int kafka_reachable(struct api *a)
{
	const struct rd_kafka_metadata *md;
	if (!a->kafka_probe)
		return 0;
	if (rd_kafka_metadata(a->kafka_probe, 0, NULL, &md, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	rd_kafka_metadata_destroy(md);
	return 1;
}

static void work_ready(struct task *t, PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT 1");
	int pg = PQresultStatus(r) == PGRES_TUPLES_OK, kafka = kafka_reachable(t->api);
	PQclear(r);
	t->status = pg && kafka ? 200 : 503;
	t->json = json_pack("{s:s,s:s,s:s}", "status", pg && kafka ? "ready" : "not_ready", "postgres",
			    pg ? "ok" : "unreachable", "kafka", kafka ? "ok" : "unreachable");
}

/* The partitions `topic` has, from the cluster's metadata; -1 when unknown
 * (no answer, or no such topic). */
static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
	int n = -1;
	if (!t)
		return -1;
	if (rd_kafka_metadata(rk, 0, t, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
			n = md->topics[0].partition_cnt;
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_topic_destroy(t);
	return n;
}

/* Consumer lag of `group` on `topic`: the sum over all its partitions of the
 * high watermark minus the committed offset; -1 when unknown. */
static int64_t group_lag(struct api *a, const char *group, const char *topic)
{
	char errstr[256];
	rd_kafka_conf_t *conf = emv_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *l;
	int64_t lag = 0;
	int nparts;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", a->brokers, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    !(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr))) {
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	if ((nparts = topic_partitions(rk, topic)) < 1) {
		rd_kafka_destroy(rk);
		return -1;
	}
	l = rd_kafka_topic_partition_list_new(nparts);
	for (int p = 0; p < nparts; p++)
		rd_kafka_topic_partition_list_add(l, topic, p);
	if (rd_kafka_committed(rk, l, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lag = -1;
	} else {
		for (int i = 0; i < l->cnt && lag >= 0; i++) {
			int64_t lo, hi;
			if (rd_kafka_query_watermark_offsets(rk, topic, l->elems[i].partition, &lo, &hi, 2000) !=
			    RD_KAFKA_RESP_ERR_NO_ERROR) {
				lag = -1;
				break;
			}
			/* nothing committed yet: everything since the start is behind */
			lag += hi - (l->elems[i].offset >= 0 ? l->elems[i].offset : lo);
		}
	}
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy(rk);
	return lag;
}

/* Prometheus text exposition; the body goes out as text, not JSON. */
static void work_metrics(struct task *t, PGconn *c)
{
	struct api *a = t->api;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	PGresult *r;
	static const char *const states[] = { "ingesting", "splitting", "running", "done", "cancelled", "failed" };
	int64_t lag;
	char dberr[512];

	fprintf(f, "# HELP emailverify_jobs Jobs by state.\n# TYPE emailverify_jobs gauge\n");
	r = emv_db_exec(c, "SELECT state, count(*) FROM jobs GROUP BY state", 0, NULL, PGRES_TUPLES_OK, dberr,
			sizeof dberr, "reading the metrics");
	if (!r) {
		/* zeros would read as "no jobs": no answer is better than a wrong one */
		api_db_fail(t, dberr, "reading the metrics");
		fclose(f);
		free(buf);
		return;
	}
	for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
		long n = 0;
		for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
			if (strcmp(PQgetvalue(r, i, 0), states[s]) == 0)
				n = atol(PQgetvalue(r, i, 1));
		fprintf(f, "emailverify_jobs{state=\"%s\"} %ld\n", states[s], n);
	}
	PQclear(r);
	r = emv_db_exec(c,
			"SELECT coalesce(sum(n_deliverable),0), coalesce(sum(n_undeliverable),0), "
			"coalesce(sum(n_risky),0), coalesce(sum(n_unknown),0), "
			"coalesce(sum(addresses_total + n_unusable - n_final),0), "
			/* cached rows were never batched (docs/cache.md) */
			"coalesce(sum(split_done - (n_final - n_unusable - n_cached)) FILTER (WHERE state = 'running' OR "
			"state = 'splitting'),0), coalesce(sum(n_cached),0) FROM jobs",
			0, NULL, PGRES_TUPLES_OK, dberr, sizeof dberr, "reading the metrics");
	if (!r) {
		api_db_fail(t, dberr, "reading the metrics");
		fclose(f);
		free(buf);
		return;
	} else {
		fprintf(f,
			"# HELP emailverify_addresses Addresses of existing jobs by final status (pending: not final yet).\n"
			"# TYPE emailverify_addresses gauge\n");
		fprintf(f, "emailverify_addresses{status=\"deliverable\"} %s\n", PQgetvalue(r, 0, 0));
		fprintf(f, "emailverify_addresses{status=\"undeliverable\"} %s\n", PQgetvalue(r, 0, 1));
		fprintf(f, "emailverify_addresses{status=\"risky\"} %s\n", PQgetvalue(r, 0, 2));
		fprintf(f, "emailverify_addresses{status=\"unknown\"} %s\n", PQgetvalue(r, 0, 3));
		fprintf(f, "emailverify_addresses{status=\"pending\"} %s\n", PQgetvalue(r, 0, 4));
		fprintf(f,
			"# HELP emailverify_addresses_in_flight Addresses sent to Kafka in batches without a final result.\n"
			"# TYPE emailverify_addresses_in_flight gauge\nemailverify_addresses_in_flight %s\n",
			PQgetvalue(r, 0, 5));
		fprintf(f,
			"# HELP emailverify_addresses_cached Addresses of existing jobs answered from the verdict cache "
			"(also counted by their status above).\n"
			"# TYPE emailverify_addresses_cached gauge\nemailverify_addresses_cached %s\n",
			PQgetvalue(r, 0, 6));
	}
	PQclear(r);
	/* the workers' group is theirs to set (--group); ours are the split's topic and the sink's */
	if ((lag = group_lag(a, EMV_GROUP_WORKERS, a->split.topic)) >= 0)
		fprintf(f,
			"# HELP emailverify_batches_in_flight Batches on Kafka not yet committed by the workers.\n"
			"# TYPE emailverify_batches_in_flight gauge\nemailverify_batches_in_flight %" PRId64 "\n",
			lag);
	if ((lag = group_lag(a, a->sink.group, a->sink.topic)) >= 0)
		fprintf(f,
			"# HELP emailverify_sink_consumer_lag Results messages not yet stored by the sink.\n"
			"# TYPE emailverify_sink_consumer_lag gauge\nemailverify_sink_consumer_lag %" PRId64 "\n",
			lag);
	{
		char err[256];
		if (emv_ipstate_prometheus(c, f, err, sizeof err) != EMV_OK)
			emv_log(EMV_LOG_WARN, "api", "metrics: %s", err);
	}
	fprintf(f, "# HELP emailverify_http_responses_total HTTP answers by status class.\n"
		   "# TYPE emailverify_http_responses_total counter\n");
	for (int k = 1; k <= 5; k++)
		fprintf(f, "emailverify_http_responses_total{class=\"%dxx\"} %" PRIu64 "\n", k,
			__atomic_load_n(&a->http_by_class[k], __ATOMIC_RELAXED));
	fprintf(f,
		"# HELP emailverify_smtp_replies_total Results stored by this coordinator, by the class of the SMTP "
		"reply that decided them (none: decided without one).\n# TYPE emailverify_smtp_replies_total counter\n");
	for (int k = 0; k <= 5; k++)
		if (k == 0 || k >= 2)
			fprintf(f, "emailverify_smtp_replies_total{class=\"%s\"} %" PRIu64 "\n",
				k == 0	 ? "none"
				: k == 2 ? "2xx"
				: k == 3 ? "3xx"
				: k == 4 ? "4xx"
					 : "5xx",
				__atomic_load_n(&a->reply_classes[k], __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_uploads_total counter\nemailverify_uploads_total %" PRIu64 "\n",
		__atomic_load_n(&a->uploads_total, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_upload_rows_total counter\nemailverify_upload_rows_total %" PRIu64 "\n",
		__atomic_load_n(&a->upload_rows, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_upload_bytes_total counter\nemailverify_upload_bytes_total %" PRIu64 "\n",
		__atomic_load_n(&a->upload_bytes, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_exports_total counter\nemailverify_exports_total %" PRIu64 "\n",
		__atomic_load_n(&a->exports_total, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_export_rows_total counter\nemailverify_export_rows_total %" PRIu64 "\n",
		__atomic_load_n(&a->export_rows, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_split_batches_total counter\nemailverify_split_batches_total %" PRIu64 "\n",
		__atomic_load_n(&a->split_batches, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_split_addresses_total counter\nemailverify_split_addresses_total %" PRIu64 "\n",
		__atomic_load_n(&a->split_addresses, __ATOMIC_RELAXED));
	fclose(f);
	t->ctx = buf;
	t->status = 200;
	(void)len;
}

static void done_metrics(struct task *t)
{
	struct MHD_Response *resp;
	if (t->code[0]) {
		free(t->ctx);
		api_task_done_reply(t);
		return;
	}
	resp = MHD_create_response_from_buffer(strlen(t->ctx), t->ctx, MHD_RESPMEM_MUST_FREE);
	t->ctx = NULL;
	MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
	api_reply_response(t->req, 200, resp);
	api_task_free(t);
}

static void submit(struct api *a, struct api_req *r, void (*work)(struct task *, PGconn *), void (*done)(struct task *))
{
	struct task *t = api_task_new(a, r);
	t->work = work;
	t->done = done;
	api_task_submit(t);
}

void api_h_readyz(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	submit(a, r, work_ready, api_task_done_reply);
}

void api_h_metrics(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	submit(a, r, work_metrics, done_metrics);
}
