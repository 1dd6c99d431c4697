/*
 * worker_main.c - `emailverify-worker`: the cluster's probe worker.
 *
 * One consumer group over the batches topic.  Each VerifyBatch is fed into
 * the batching engine (the same engine `verify` runs); when every address
 * of a batch has its verdict, one VerifyResults goes to the results topic,
 * and the batch's offset is committed only once those results are
 * acknowledged and every earlier batch of the partition is done too
 * (at-least-once; the sink makes it exactly-once).  Kafka is polled from a
 * short timer on the engine's own loop: nothing blocks it.
 *
 * Temporary verdicts are retried inside the engine (its retry schedule);
 * what is still temporary at the end goes out marked temporary, so the
 * sink keeps it replaceable.  SIGTERM/SIGINT: stop consuming, finish the
 * batches in flight, flush, commit, exit.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include "cli.h"
#include "emv_engine.h"
#include "emv_kafka.h"
#include "emv_report.h"
#include "emv_util.h"
#include "emv_wire.h"

struct wbatch {
	emv_wire_batch *b;
	int32_t partition;
	int64_t offset;
	size_t done;
	emv_wire_result *res;
	int produced, acked;
	struct wbatch *next;       /* in its partition's offset order */
};

struct part {
	int32_t partition;
	struct wbatch *head, *tail;
	struct part *next;
};

struct slot {
	struct wbatch *wb;
	uint32_t idx;
};

struct worker {
	cli_engine e;
	emv_engine *eng;
	rd_kafka_t *consumer, *producer;
	const char *batches_topic, *results_topic, *name, *region;
	struct part *parts;
	struct slot *slots;
	uint64_t nslots, capslots;
	int inflight, max_inflight;
	int stopping, idle_exit_ms;
	uint64_t last_activity;
	uint64_t batches, results, skipped;
	struct event *timer, *sigint, *sigterm;
};

static struct part *part_of(struct worker *w, int32_t p)
{
	struct part *x;
	for (x = w->parts; x; x = x->next)
		if (x->partition == p)
			return x;
	x = emv_xcalloc(1, sizeof *x);
	x->partition = p;
	x->next = w->parts;
	w->parts = x;
	return x;
}

/* Commit what is contiguous: batches acknowledged from the head on. */
static void commit_ready(struct worker *w)
{
	for (struct part *p = w->parts; p; p = p->next) {
		int64_t upto = -1;
		while (p->head && p->head->acked) {
			struct wbatch *b = p->head;
			p->head = b->next;
			if (!p->head)
				p->tail = NULL;
			upto = b->offset;
			if (b->b)
				emv_wire_batch_free(b->b);
			free(b->res);
			free(b);
		}
		if (upto >= 0) {
			rd_kafka_topic_partition_list_t *o = rd_kafka_topic_partition_list_new(1);
			rd_kafka_topic_partition_list_add(o, w->batches_topic, p->partition)->offset = upto + 1;
			rd_kafka_offsets_store(w->consumer, o);
			rd_kafka_topic_partition_list_destroy(o);
			rd_kafka_commit(w->consumer, NULL, 1);
		}
	}
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct wbatch *b = m->_private;
	if (m->err) {
		/* not acknowledged: the offset stays, the batch comes back to
		 * this or another worker after a restart or rebalance */
		emv_log(EMV_LOG_ERROR, "worker", "results of batch %s not delivered: %s", b->b->batch_id,
			rd_kafka_err2str(m->err));
		return;
	}
	b->acked = 1;
}

static void produce_results(struct worker *w, struct wbatch *b)
{
	emv_wire_results r;
	uint8_t *buf;
	size_t len;
	char err[EMV_WIRE_ERR_MAX];
	rd_kafka_resp_err_t e;

	memset(&r, 0, sizeof r);
	emv_strlcpy(r.job_id, b->b->job_id, sizeof r.job_id);
	emv_strlcpy(r.batch_id, b->b->batch_id, sizeof r.batch_id);
	emv_strlcpy(r.worker, w->name, sizeof r.worker);
	emv_strlcpy(r.region, w->region, sizeof r.region);
	r.results = b->res;
	r.n_results = b->b->n_addresses;
	if (emv_wire_results_encode(&r, &buf, &len, err, sizeof err) != EMV_WIRE_OK) {
		emv_log(EMV_LOG_ERROR, "worker", "batch %s: cannot encode results: %s", b->b->batch_id, err);
		b->acked = 1; /* nothing we can send would be valid: do not block the partition */
		return;
	}
	for (;;) {
		e = rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(w->results_topic),
				      RD_KAFKA_V_KEY(b->b->job_id, strlen(b->b->job_id)), RD_KAFKA_V_VALUE(buf, len),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_OPAQUE(b), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(w->producer, 100);
	}
	if (e) {
		emv_log(EMV_LOG_ERROR, "worker", "batch %s: %s", b->b->batch_id, rd_kafka_err2str(e));
		free(buf);
		return;
	}
	b->produced = 1;
	w->results += r.n_results;
}

static void on_result(void *arg, uint64_t id, const emv_probe_job *job, size_t idx, unsigned attempts, int port25)
{
	struct worker *w = arg;
	struct slot *s = &w->slots[id];
	struct wbatch *b = s->wb;
	emv_wire_result *x = &b->res[s->idx];
	const emv_probe_result *r = emv_probe_get(job, idx);
	emv_report_in in;
	emv_report_verdict v;
	emv_address a;
	char addr[EMV_ADDRESS_MAX + 1];

	snprintf(addr, sizeof addr, "%s@%s", b->b->addresses[s->idx].local, b->b->domain);
	emv_address_parse(addr, strlen(addr), &a);
	memset(&in, 0, sizeof in);
	in.input = addr;
	in.addr = &a;
	in.list_flags = b->b->addresses[s->idx].flags;
	in.job = job;
	in.index = idx;
	emv_report_verdict_of(&in, &v);
	x->id = b->b->addresses[s->idx].id;
	x->status = v.status;
	x->reason = port25 ? EMV_REASON_PORT25_BLOCKED : v.reason;
	x->smtp_code = r->have_smtp ? (unsigned)r->smtp_code : 0;
	emv_strlcpy(x->enhanced_code, r->have_smtp ? r->enhanced : "", sizeof x->enhanced_code);
	x->reply = r->have_smtp ? emv_xstrdup(r->reply) : NULL;
	x->catch_all = r->catch_all == 1;
	x->attempts = attempts;
	x->duration_ms = r->duration_ms;
	x->flags = v.flags;
	x->temporary = r->temporary && v.status == EMV_STATUS_UNKNOWN;
	emv_strlcpy(x->mx_host, r->mx_host, sizeof x->mx_host);
	emv_strlcpy(x->mx_ip, r->mx_ip, sizeof x->mx_ip);
	emv_strlcpy(x->source_ip, r->source_ip, sizeof x->source_ip);
	emv_strlcpy(x->tls, r->tls, sizeof x->tls);
	if (v.detail[0]) { /* the wire takes printable ASCII only */
		x->detail = emv_xmalloc(EMV_WIRE_DETAIL_MAX + 1);
		emv_sanitize(x->detail, EMV_WIRE_DETAIL_MAX + 1, v.detail, strlen(v.detail));
	}
	w->last_activity = emv_now_ms();
	if (++b->done == b->b->n_addresses) {
		w->inflight--;
		produce_results(w, b);
		for (size_t i = 0; i < b->b->n_addresses; i++) {
			free(b->res[i].reply);
			free(b->res[i].detail);
			b->res[i].reply = NULL;
			b->res[i].detail = NULL;
		}
	}
}

static void take_batch(struct worker *w, rd_kafka_message_t *m)
{
	char err[EMV_WIRE_ERR_MAX];
	struct wbatch *b = emv_xcalloc(1, sizeof *b);
	struct part *p = part_of(w, m->partition);
	emv_wire_status st = emv_wire_batch_decode(m->payload, m->len, &b->b, err, sizeof err);

	b->partition = m->partition;
	b->offset = m->offset;
	if (p->tail)
		p->tail->next = b;
	else
		p->head = b;
	p->tail = b;
	if (st != EMV_WIRE_OK) {
		emv_log(EMV_LOG_WARN, "worker", "skipping %s [%d] offset %" PRId64 ": %s (%s)", w->batches_topic,
			(int)m->partition, m->offset, emv_wire_status_name(st), err);
		w->skipped++;
		b->acked = 1; /* counted and skipped, never retried forever */
		return;
	}
	b->res = emv_xcalloc(b->b->n_addresses, sizeof *b->res);
	w->inflight++;
	w->batches++;
	for (size_t i = 0; i < b->b->n_addresses; i++) {
		char addr[EMV_ADDRESS_MAX + 1];
		emv_address a;
		if (w->nslots == w->capslots) {
			w->capslots = w->capslots ? w->capslots * 2 : 4096;
			w->slots = emv_xrealloc(w->slots, w->capslots * sizeof *w->slots);
		}
		w->slots[w->nslots].wb = b;
		w->slots[w->nslots].idx = (uint32_t)i;
		snprintf(addr, sizeof addr, "%s@%s", b->b->addresses[i].local, b->b->domain);
		emv_address_parse(addr, strlen(addr), &a);
		emv_engine_add(w->eng, w->nslots, a.error == EMV_ADDR_OK ? a.address : addr, b->b->domain,
			       (a.flags & EMV_FLAG_SMTPUTF8) != 0);
		w->nslots++;
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	rd_kafka_poll(w->producer, 0); /* delivery reports */
	commit_ready(w);
	while (!w->stopping && w->inflight < w->max_inflight) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 0);
		if (!m)
			break;
		if (!m->err) {
			take_batch(w, m);
			w->last_activity = emv_now_ms();
		} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			emv_log(EMV_LOG_WARN, "worker", "consumer: %s", rd_kafka_message_errstr(m));
		}
		rd_kafka_message_destroy(m);
	}
	emv_engine_pump(w->eng);
	if (w->inflight == 0 && rd_kafka_outq_len(w->producer) == 0) {
		int idle = w->idle_exit_ms > 0 && emv_now_ms() - w->last_activity >= (uint64_t)w->idle_exit_ms;
		if (w->stopping || idle) {
			commit_ready(w);
			event_base_loopbreak(w->e.base);
		}
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;
	emv_log(EMV_LOG_WARN, "worker", "signal %d: finishing %d batch(es) in flight", (int)sig, w->inflight);
	w->stopping = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: emailverify-worker --brokers HOST:PORT[,...] [options]\n\n"
		   "  --group G              consumer group (emailverify-workers)\n"
		   "  --batches-topic T      (emailverify.batches)\n"
		   "  --results-topic T      (emailverify.results)\n"
		   "  --name NAME            worker name in results (host name)\n"
		   "  --region NAME          region in results\n"
		   "  --max-inflight N       batches being verified at once (64)\n"
		   "  --until-idle MS        exit after MS without work (tests)\n"
		   "  --session-timeout MS   consumer group session timeout (10000)\n" CLI_ENGINE_HELP);
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
		{ "help", no_argument, NULL, 'h' },
		CLI_ENGINE_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct worker w;
	cli_engine_opts eo;
	emv_engine_params ep;
	const char *brokers = NULL, *group = "emailverify-workers", *session_timeout = "10000";
	char host[64] = "worker", errstr[512];
	rd_kafka_conf_t *cc, *pc;
	rd_kafka_topic_partition_list_t *topics;
	struct timeval tv = { 0, 20000 };
	int opt, rc;

	memset(&w, 0, sizeof w);
	cli_engine_opts_default(&eo);
	emv_engine_params_default(&ep);
	gethostname(host, sizeof host - 1);
	w.batches_topic = "emailverify.batches";
	w.results_topic = "emailverify.results";
	w.name = host;
	w.region = "";
	w.max_inflight = 64;
	while ((opt = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
		switch (opt) {
		case 3001: brokers = optarg; continue;
		case 3002: group = optarg; continue;
		case 3003: w.batches_topic = optarg; continue;
		case 3004: w.results_topic = optarg; continue;
		case 3005: w.name = optarg; continue;
		case 3006: w.region = optarg; continue;
		case 3007: w.max_inflight = atoi(optarg) > 0 ? atoi(optarg) : 1; continue;
		case 3008: w.idle_exit_ms = atoi(optarg); continue;
		case 3009: session_timeout = optarg; continue;
		case 'h': usage(stdout); return 0;
		default:
			rc = cli_engine_opt(&eo, opt, optarg);
			if (rc == 1)
				continue;
			if (rc == 0)
				usage(stderr);
			return 2;
		}
	}
	if (!brokers) {
		fprintf(stderr, "emailverify-worker: --brokers is required\n");
		return 2;
	}
	if (cli_engine_init(&w.e, &eo) < 0) {
		cli_engine_free(&w.e);
		return 1;
	}
	ep.providers = w.e.providers;
	ep.budget = emv_budget_new();
	cli_engine_params_apply(&eo, &ep);
	w.e.probe.greylist_retries = 0;
	w.eng = emv_engine_new(&w.e.probe, &ep, on_result, &w);

	cc = rd_kafka_conf_new();
	pc = rd_kafka_conf_new();
	if (rd_kafka_conf_set(cc, "bootstrap.servers", brokers, errstr, sizeof errstr) ||
	    rd_kafka_conf_set(cc, "group.id", group, errstr, sizeof errstr) ||
	    rd_kafka_conf_set(cc, "enable.auto.commit", "false", errstr, sizeof errstr) ||
	    rd_kafka_conf_set(cc, "enable.auto.offset.store", "false", errstr, sizeof errstr) ||
	    rd_kafka_conf_set(cc, "auto.offset.reset", "earliest", errstr, sizeof errstr) ||
	    /* a worker that dies loses its partitions to the others this fast */
	    rd_kafka_conf_set(cc, "session.timeout.ms", session_timeout, errstr, sizeof errstr) ||
	    rd_kafka_conf_set(pc, "bootstrap.servers", brokers, errstr, sizeof errstr) ||
	    rd_kafka_conf_set(pc, "enable.idempotence", "true", errstr, sizeof errstr) ||
	    rd_kafka_conf_set(pc, "message.max.bytes", "4194304", errstr, sizeof errstr)) {
		fprintf(stderr, "emailverify-worker: Kafka configuration: %s\n", errstr);
		return 1;
	}
	rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
	w.consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof errstr);
	w.producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof errstr);
	if (!w.consumer || !w.producer) {
		fprintf(stderr, "emailverify-worker: Kafka: %s\n", errstr);
		return 1;
	}
	if (emv_kafka_ensure_topic(w.producer, w.results_topic, 16, errstr, sizeof errstr) != EMV_OK) {
		fprintf(stderr, "emailverify-worker: %s\n", errstr);
		return 1;
	}
	rd_kafka_poll_set_consumer(w.consumer);
	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, w.batches_topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(w.consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);

	w.last_activity = emv_now_ms();
	w.timer = event_new(w.e.base, -1, EV_PERSIST, on_timer, &w);
	event_add(w.timer, &tv);
	w.sigint = evsignal_new(w.e.base, SIGINT, on_signal, &w);
	w.sigterm = evsignal_new(w.e.base, SIGTERM, on_signal, &w);
	event_add(w.sigint, NULL);
	event_add(w.sigterm, NULL);
	signal(SIGPIPE, SIG_IGN);
	event_base_dispatch(w.e.base);

	rd_kafka_flush(w.producer, 10000);
	rd_kafka_poll(w.producer, 0);
	commit_ready(&w);
	rd_kafka_commit(w.consumer, NULL, 0); /* synchronous: nothing acknowledged is left uncommitted */
	fprintf(stderr, "emailverify-worker %s: %" PRIu64 " batches, %" PRIu64 " results, %" PRIu64 " skipped\n", w.name,
		w.batches, w.results, w.skipped);
	rd_kafka_consumer_close(w.consumer);
	rd_kafka_destroy(w.consumer);
	rd_kafka_destroy(w.producer);
	event_free(w.timer);
	event_free(w.sigint);
	event_free(w.sigterm);
	emv_engine_free(w.eng);
	emv_budget_free(ep.budget);
	for (struct part *p = w.parts, *n; p; p = n) {
		n = p->next;
		for (struct wbatch *b = p->head, *bn; b; b = bn) {
			bn = b->next;
			if (b->b)
				emv_wire_batch_free(b->b);
			free(b->res);
			free(b);
		}
		free(p);
	}
	free(w.slots);
	cli_engine_free(&w.e);
	return 0;
}
