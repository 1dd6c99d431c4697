/* SPDX-License-Identifier: Apache-2.0 */
/* emv_worker.c - the cluster worker (see emv_worker.h). */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include "emv_defaults.h"
#include "emv_domstate.h"
#include "emv_kafka.h"
#include "emv_reaudit.h"
#include "emv_report.h"
#include "emv_util.h"
#include "emv_wire.h"
#include "emv_worker.h"

/* The shared topics, and this worker's region's own (batches routed to it
 * by the coordinator, and their retries). */
enum { T_BATCHES = 0, T_RETRY = 1, T_RBATCHES = 2, T_RRETRY = 3, T__COUNT };

struct part;

struct wbatch {
	emv_wire_batch *b; /* NULL when the message was skipped */
	struct part *part; /* NULL once released (partition revoked) */
	int64_t offset;
	char key[EMV_WIRE_KEY_MAX];
	int topic;				  /* T_* it came from */
	uint8_t *handed;			  /* per address: handed back by the engine (all sources quarantined) */
	uint8_t *left;				  /* per address: no verdict when the batch was cut at shutdown */
	int64_t *left_due;			  /* per address: cut while the engine held it for a retry due then
	                               (wall ms; 0 = not held), NULL when none was */
	char provider[EMV_WIRE_PROVIDER_MAX + 1]; /* of the handed-back addresses */
	uint64_t due_ms;			  /* retry batches: not before */
	int started;				  /* fed to the engine */
	size_t done;
	emv_wire_result *res;
	int acks_pending;    /* produced messages not acknowledged yet */
	int complete;	     /* every result in and everything produced */
	int failed;	     /* a message was not delivered: never commit */
	struct wbatch *next; /* in its partition's offset order, or on the orphan list */
};

struct part {
	int topic; /* T_BATCHES or T_RETRY */
	int32_t partition;
	struct wbatch *head, *tail;
	struct wbatch *held; /* a retry batch not due yet: the partition is paused */
	struct part *next;
};

struct slot {
	struct wbatch *wb;
	uint32_t idx;
	uint32_t next_free;
};

#define NO_SLOT UINT32_MAX

struct worker;
static void publish_ip_state(struct worker *w);
static void domstate_follow(struct worker *w);
static int kafka_conf(rd_kafka_conf_t *c, const char *key, const char *val, char *err, size_t errlen);
static void domstate_publish(struct worker *w, int all);

struct worker {
	emv_retry_policy topic_retry; /* the retry topic's: its attempts and steps, the engine's rules */
	emv_worker_opts o;
	emv_setup e;
	emv_engine *eng;
	emv_engine_params ep;
	rd_kafka_t *consumer, *producer;
	rd_kafka_t *state_producer; /* ip-state only: best effort, never idempotent, so no trouble
	                                of it can stop the results' producer */
	const char *topics[T__COUNT];
	int ntopics;
	char region_topics[2][EMV_WIRE_REGION_MAX + 64];
	emv_domstate *ds;		       /* what is known of MX hosts and domains (NULL: no topic) */
	rd_kafka_t *ds_consumer, *ds_producer; /* the domain-state topic: read (no group), written */
	uint64_t ds_scan_at;		       /* last look for own findings to publish (monotonic ms) */
	uint64_t rep_published;	   /* emv_rep_changes() at the last IpState snapshot */
	uint64_t rep_published_at; /* and when (monotonic ms) */
	struct part *parts;
	struct wbatch *orphans;
	struct slot *slots;
	uint32_t nslots, capslots, free_slot;
	int inflight, stopping;
	int cut;	  /* stopping: the batches in flight were cut (cut_inflight) */
	size_t held_cut;  /* of their addresses, those the engine held for a retry */
	uint64_t stop_at; /* when the stop was seen (monotonic ms) */
	int handback;	  /* the engine hands back addresses for another region */
	volatile sig_atomic_t *stop;
	uint64_t last_activity;
	emv_worker_stats st;
	struct event *timer;
};

void emv_worker_opts_default(emv_worker_opts *o)
{
	memset(o, 0, sizeof *o);
	o->group = EMV_GROUP_WORKERS;
	o->batches_topic = EMV_TOPIC_BATCHES;
	o->results_topic = EMV_TOPIC_RESULTS;
	o->retry_topic = EMV_TOPIC_RETRY;
	o->name = "worker";
	o->region = "";
	o->max_inflight = EMV_DEF_WORKER_MAX_INFLIGHT;
	o->session_timeout_ms = EMV_DEF_KAFKA_SESSION_TIMEOUT_MS;
	o->reroute_topic = EMV_TOPIC_REROUTE;
	o->ipstate_topic = EMV_TOPIC_IP_STATE;
	o->ipstate_interval_ms = EMV_DEF_IPSTATE_INTERVAL_MS;
	o->domstate_topic = EMV_TOPIC_DOMAIN_STATE;
	o->domstate_load_ms = EMV_DEF_DOMSTATE_LOAD_MS;
	o->domstate_publish_ms = EMV_DEF_DOMSTATE_PUBLISH_MS;
	o->region_topics = 1;
	o->shutdown_ms = EMV_STOP_TIMEOUT_MS;
}

/* ---- partitions and batches ---- */

static struct part *part_of(struct worker *w, int topic, int32_t p)
{
	struct part *x;
	for (x = w->parts; x; x = x->next)
		if (x->topic == topic && x->partition == p)
			return x;
	x = emv_xcalloc(1, sizeof *x);
	x->topic = topic;
	x->partition = p;
	x->next = w->parts;
	w->parts = x;
	return x;
}

static int topic_index(struct worker *w, const char *name)
{
	for (int i = 0; i < w->ntopics; i++)
		if (strcmp(name, w->topics[i]) == 0)
			return i;
	return T_BATCHES;
}

static void wbatch_free(struct wbatch *b)
{
	if (b->b)
		emv_wire_batch_free(b->b);
	free(b->res);
	free(b->handed);
	free(b->left);
	free(b->left_due);
	free(b);
}

/* Ready to commit: skipped, or complete with everything acknowledged. */
static int committable(const struct wbatch *b)
{
	return !b->b || (b->complete && b->acks_pending == 0 && !b->failed);
}

/* A released batch is freed once nothing refers to it any more: the engine
 * is done with it and every delivery report is in. */
static void reap_orphans(struct worker *w)
{
	for (struct wbatch **pp = &w->orphans; *pp;) {
		struct wbatch *b = *pp;
		if ((!b->started || b->complete) && b->acks_pending == 0) {
			*pp = b->next;
			wbatch_free(b);
		} else {
			pp = &b->next;
		}
	}
}

/* Commit what is contiguous: committable batches from each head on. */
static void commit_ready(struct worker *w, int sync)
{
	for (struct part *p = w->parts; p; p = p->next) {
		int64_t upto = -1;
		while (p->head && committable(p->head)) {
			struct wbatch *b = p->head;
			p->head = b->next;
			if (!p->head)
				p->tail = NULL;
			upto = b->offset;
			wbatch_free(b);
		}
		if (upto >= 0) {
			rd_kafka_topic_partition_list_t *o = rd_kafka_topic_partition_list_new(1);
			rd_kafka_topic_partition_list_add(o, w->topics[p->topic], p->partition)->offset = upto + 1;
			rd_kafka_offsets_store(w->consumer, o);
			rd_kafka_topic_partition_list_destroy(o);
			rd_kafka_commit(w->consumer, NULL, !sync);
		}
	}
}

static void set_paused(struct worker *w, struct part *p, int pause)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, w->topics[p->topic], p->partition);
	if (pause)
		rd_kafka_pause_partitions(w->consumer, l);
	else
		rd_kafka_resume_partitions(w->consumer, l);
	rd_kafka_topic_partition_list_destroy(l);
}

/* The partition is no longer ours: nothing of it will be committed here.
 * Batches in the engine finish as orphans; a held retry batch is dropped
 * (its new owner reads it again). */
static void release_part(struct worker *w, int topic, int32_t partition)
{
	for (struct part **pp = &w->parts; *pp; pp = &(*pp)->next) {
		struct part *p = *pp;
		if (p->topic != topic || p->partition != partition)
			continue;
		for (struct wbatch *b = p->head, *n; b; b = n) {
			n = b->next;
			b->part = NULL;
			if (b->started && !b->complete)
				w->st.released++;
			b->next = w->orphans;
			w->orphans = b;
		}
		*pp = p->next;
		free(p);
		break;
	}
	reap_orphans(w);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct worker *w = opaque;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		emv_log(EMV_LOG_INFO, "worker", "%s: %d partition(s) assigned", w->o.name, parts->cnt);
		rd_kafka_assign(rk, parts);
		/* librdkafka keeps a partition paused across a rebalance: one
		 * paused here for a held retry batch, revoked (the batch dropped)
		 * and assigned back would never be read again, and that retry
		 * batch never asked (a continued `run --job` that never ended) */
		rd_kafka_resume_partitions(rk, parts);
		/* --until-idle counts time without work from when there is
		 * work to be had: a group join after a restart (or the
		 * domain-state read before it) is no idleness */
		w->last_activity = emv_now_ms();
		return;
	}
	/* revoked (or lost): no commit in here, only letting go */
	emv_log(EMV_LOG_INFO, "worker", "%s: %d partition(s) revoked", w->o.name, parts->cnt);
	for (int i = 0; i < parts->cnt; i++)
		release_part(w, topic_index(w, parts->elems[i].topic), parts->elems[i].partition);
	rd_kafka_assign(rk, NULL);
}

/* ---- producing ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct worker *w = opaque;
	struct wbatch *b = m->_private;

	if (!b) { /* IpState: best effort, the next snapshot repeats it */
		if (m->err)
			emv_log(EMV_LOG_WARN, "worker", "ip-state not delivered: %s", rd_kafka_err2str(m->err));
		return;
	}
	b->acks_pending--;
	if (m->err) {
		/* not acknowledged: the offset stays, the batch comes back to
		 * this or another worker after a restart or rebalance */
		emv_log(EMV_LOG_ERROR, "worker", "batch %s: message to %s not delivered: %s", b->b->batch_id,
			rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
		b->failed = 1;
	}
	if (!b->part)
		reap_orphans(w);
}

static int produce(struct worker *w, struct wbatch *b, const char *topic, const char *key, uint8_t *buf, size_t len)
{
	rd_kafka_resp_err_t e;
	for (;;) {
		e = rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
				      RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
				      RD_KAFKA_V_OPAQUE(b), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(w->producer, 100);
	}
	if (e) {
		emv_log(EMV_LOG_ERROR, "worker", "batch %s: %s: %s", b->b->batch_id, topic, rd_kafka_err2str(e));
		free(buf);
		b->failed = 1;
		return -1;
	}
	b->acks_pending++;
	return 0;
}

enum { RETRY_TEMPORARY, RETRY_HANDED, RETRY_CUT, RETRY_CUT_HELD };

/* Address i of the batch goes into a retry of this kind. */
static int retry_wants(const struct wbatch *b, size_t i, int kind)
{
	int held = b->left_due && b->left_due[i] > 0;
	if (kind == RETRY_CUT || kind == RETRY_CUT_HELD)
		return b->left && b->left[i] && held == (kind == RETRY_CUT_HELD);
	return b->res[i].temporary && (b->handed && b->handed[i]) == (kind == RETRY_HANDED);
}

/* When a retry of batch b (its next attempt) would be due: unix ms. */
static int64_t retry_due(const struct worker *w, const struct wbatch *b)
{
	unsigned attempt = b->b->attempt + 1;
	int delay = w->topic_retry.schedule_ms[attempt - 1 < 3 ? attempt - 1 : 2];
	return delay ? (int64_t)emv_wall_ms() + delay : 0;
}

/*
 * The job's deadline (coordinator/emv_deadline.h) comes before the retry:
 * the temporary results of b are final now, as the engine makes them
 * (worker/emv_engine.h): unknown, with their reason and evidence, the
 * detail saying why they are not asked again.  Else each temporary result
 * says when its retry is due (the job's ETA counts it).
 */
static void limit_retries(struct worker *w, struct wbatch *b)
{
	int64_t due = retry_due(w, b);
	int past = b->b->deadline_ms > 0 && (due ? due : (int64_t)emv_wall_ms()) >= b->b->deadline_ms;

	for (size_t i = 0; i < b->b->n_addresses; i++) {
		emv_wire_result *x = &b->res[i];
		char d[EMV_WIRE_DETAIL_MAX + 1];
		if (!x->temporary || (b->handed && b->handed[i]))
			continue;
		if (!past) {
			x->retry_at_ms = due ? due : (int64_t)emv_wall_ms();
			continue;
		}
		snprintf(d, sizeof d, "%s" EMV_EXPIRED_AGAIN "the deadline comes first",
			 x->detail && x->detail[0] ? x->detail : emv_reason_detail(x->reason));
		free(x->detail);
		x->detail = emv_xmalloc(EMV_WIRE_DETAIL_MAX + 1);
		emv_sanitize(x->detail, EMV_WIRE_DETAIL_MAX + 1, d, strlen(d));
		x->temporary = 0;
		w->st.expired++;
	}
}

/* The addresses still temporary go to the retry topic as a new batch
 * (RETRY_TEMPORARY), or, when every source address of this region was
 * quarantined for their provider, to the reroute topic for the
 * coordinator to send to another region (RETRY_HANDED).  At shutdown, the
 * addresses of a cut batch that have no verdict yet (RETRY_CUT) go to the
 * retry topic with the same attempt, due at once: they were not answered,
 * and the next owner asks them, and only them.  Those of them the engine
 * was holding for a retry (greylisting: RETRY_CUT_HELD) go as a batch of
 * their own, due when the engine would have asked them (the latest of
 * their times: none is asked early). */
static void produce_retry(struct worker *w, struct wbatch *b, int kind)
{
	const emv_wire_batch *src = b->b;
	emv_wire_batch r;
	int handed = kind == RETRY_HANDED, cut = kind == RETRY_CUT || kind == RETRY_CUT_HELD;
	unsigned attempt = cut ? src->attempt : src->attempt + 1;
	int64_t due = 0, at = cut ? 0 : retry_due(w, b);
	char err[EMV_WIRE_ERR_MAX], suffix[16];
	const char *topic;
	uint8_t *buf;
	size_t len, n = 0, keep;

	for (size_t i = 0; i < src->n_addresses; i++)
		n += retry_wants(b, i, kind);
	if (!n)
		return;
	memset(&r, 0, sizeof r);
	emv_strlcpy(r.job_id, src->job_id, sizeof r.job_id);
	snprintf(suffix, sizeof suffix,
		 handed			  ? ".x%u"
		 : kind == RETRY_CUT	  ? ".s%u"
		 : kind == RETRY_CUT_HELD ? ".h%u"
					  : ".r%u",
		 attempt);
	keep = strlen(src->batch_id);
	if (keep + strlen(suffix) > EMV_WIRE_ID_MAX)
		keep = EMV_WIRE_ID_MAX - strlen(suffix);
	snprintf(r.batch_id, sizeof r.batch_id, "%.*s%s", (int)keep, src->batch_id, suffix);
	emv_strlcpy(r.domain, src->domain, sizeof r.domain);
	emv_strlcpy(r.region_hint, src->region_hint, sizeof r.region_hint);
	r.attempt = attempt;
	r.deadline_ms = src->deadline_ms; /* the job's: its retries end with it */
	if (handed) {
		/* not here again: this region joins the batch's avoid list */
		if (!src->avoid_regions[0])
			emv_strlcpy(r.avoid_regions, w->o.region, sizeof r.avoid_regions);
		else if (!emv_csv_has(src->avoid_regions, w->o.region))
			snprintf(r.avoid_regions, sizeof r.avoid_regions, "%s,%s", src->avoid_regions, w->o.region);
		else
			emv_strlcpy(r.avoid_regions, src->avoid_regions, sizeof r.avoid_regions);
		emv_strlcpy(r.provider, b->provider, sizeof r.provider);
		topic = w->o.reroute_topic;
	} else {
		/* wall clock: the batch may come back to another machine */
		r.not_before_ms = at;
		if (kind == RETRY_CUT_HELD)
			for (size_t i = 0; i < src->n_addresses; i++)
				if (retry_wants(b, i, kind) && b->left_due[i] > due)
					due = b->left_due[i];
		if (due > r.not_before_ms)
			r.not_before_ms = due > EMV_WIRE_TIME_MAX ? EMV_WIRE_TIME_MAX : due;
		emv_strlcpy(r.avoid_regions, src->avoid_regions, sizeof r.avoid_regions);
		emv_strlcpy(r.provider, src->provider, sizeof r.provider);
		/* a batch routed to this region retries here */
		topic = b->topic == T_RBATCHES || b->topic == T_RRETRY ? w->topics[T_RRETRY] : w->o.retry_topic;
	}
	r.addresses = emv_xcalloc(n, sizeof *r.addresses);
	for (size_t i = 0; i < src->n_addresses; i++)
		if (retry_wants(b, i, kind))
			r.addresses[r.n_addresses++] = src->addresses[i];
	if (emv_wire_batch_encode(&r, &buf, &len, err, sizeof err) != EMV_WIRE_OK) {
		emv_log(EMV_LOG_ERROR, "worker", "batch %s: cannot encode its retry: %s", src->batch_id, err);
		b->failed = 1;
	} else if (produce(w, b, topic, b->key, buf, len) == 0) {
		if (handed) {
			w->st.rerouted_batches++;
			w->st.rerouted += n;
		} else if (cut) {
			w->st.cut_batches++;
			w->st.cut += n;
			if (kind == RETRY_CUT_HELD)
				w->st.cut_held += n;
		} else {
			w->st.retry_batches++;
			w->st.retried += n;
		}
	}
	free(r.addresses);
}

static void finish_batch(struct worker *w, struct wbatch *b)
{
	emv_wire_results r;
	uint8_t *buf;
	size_t len;
	char err[EMV_WIRE_ERR_MAX];
	emv_wire_result *got = NULL;
	/* another try later only from a partition we still own, and only while
	 * attempts last; the last attempt's temporary verdicts are final */
	int last = b->b->attempt + 1 >= (unsigned)w->topic_retry.max_attempts;

	w->inflight--;
	if (last) {
		for (size_t i = 0; i < b->b->n_addresses; i++)
			b->res[i].temporary = 0;
	} else if (b->part) {
		limit_retries(w, b);
		produce_retry(w, b, RETRY_TEMPORARY);
		if (b->handed)
			produce_retry(w, b, RETRY_HANDED);
	}
	/* cut at shutdown: what has no verdict yet is asked by the next owner */
	if (b->left && b->part) {
		produce_retry(w, b, RETRY_CUT);
		produce_retry(w, b, RETRY_CUT_HELD);
	}
	/* else released: the partition's new owner does the batch again, so
	 * its temporary verdicts stay temporary (a final one could not be
	 * replaced by the new owner's) */
	memset(&r, 0, sizeof r);
	emv_strlcpy(r.job_id, b->b->job_id, sizeof r.job_id);
	emv_strlcpy(r.batch_id, b->b->batch_id, sizeof r.batch_id);
	emv_strlcpy(r.worker, w->o.name, sizeof r.worker);
	emv_strlcpy(r.region, w->o.region, sizeof r.region);
	r.results = b->res;
	r.n_results = b->b->n_addresses;
	if (b->left) { /* only the verdicts there are (shallow copies: b->res owns their strings) */
		got = emv_xcalloc(b->b->n_addresses, sizeof *got);
		r.n_results = 0;
		for (size_t i = 0; i < b->b->n_addresses; i++)
			if (!b->left[i])
				got[r.n_results++] = b->res[i];
		r.results = got;
	}
	if (r.n_results == 0) {
		/* nothing answered: nothing to send */
	} else if (emv_wire_results_encode(&r, &buf, &len, err, sizeof err) != EMV_WIRE_OK) {
		emv_log(EMV_LOG_ERROR, "worker", "batch %s: cannot encode results: %s", b->b->batch_id, err);
		b->failed = 1;
	} else {
		/* keyed like the batch (its domain shard): one job's results
		 * spread over the partitions (and the sink's consumers) instead
		 * of piling onto one, while an address's temporary result and
		 * its retry's final one stay in order on the same partition */
		if (produce(w, b, w->o.results_topic, b->key, buf, len) == 0) {
			w->st.results += r.n_results;
			if (w->o.gate)
				emv_results_gate_add(&w->o.gate->produced, len);
		}
	}
	free(got);
	for (size_t i = 0; i < b->b->n_addresses; i++) {
		free(b->res[i].reply);
		free(b->res[i].detail);
		b->res[i].reply = NULL;
		b->res[i].detail = NULL;
	}
	b->complete = 1;
	if (!b->part)
		reap_orphans(w);
}

/* ---- the engine ---- */

/* The address of slot id has its verdict (in its batch's res): the slot is
 * free again, and the batch is finished with its last address. */
static void address_done(struct worker *w, uint64_t id)
{
	struct slot *s = &w->slots[id];
	struct wbatch *b = s->wb;

	s->wb = NULL;
	s->next_free = w->free_slot;
	w->free_slot = (uint32_t)id;
	w->last_activity = emv_now_ms();
	if (++b->done == b->b->n_addresses)
		finish_batch(w, b);
}

static void on_result(void *arg, uint64_t id, const emv_probe_job *job, size_t idx, unsigned attempts, int port25)
{
	struct worker *w = arg;
	struct slot *s = &w->slots[id];
	struct wbatch *b = s->wb;
	emv_wire_result *x;
	const emv_probe_result *r = emv_probe_get(job, idx);
	emv_report_in in;
	emv_report_verdict v;
	emv_address a;
	char addr[EMV_ADDRESS_MAX + 1];

	if (!b)
		return; /* its batch was cut at shutdown: the next owner asks it */
	x = &b->res[s->idx];
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
	x->attempts = attempts > EMV_WIRE_ATTEMPT_MAX ? EMV_WIRE_ATTEMPT_MAX : attempts;
	x->duration_ms = r->duration_ms;
	x->flags = v.flags;
	/* the retry topic follows the engine's policy by reason (emv_retry.h):
	 * what the policy makes final here (a blocked source with nowhere else
	 * to ask from, a host still unreachable, DNS after its quick retries) is
	 * not sent round the topic again */
	x->temporary = r->temporary && v.status == EMV_STATUS_UNKNOWN && !port25 &&
		       emv_retry_delay(&w->topic_retry, x->reason, 1, (int)b->b->attempt + 1, 0, w->handback) >= 0;
	emv_strlcpy(x->mx_host, r->mx_host, sizeof x->mx_host);
	emv_strlcpy(x->mx_ip, r->mx_ip, sizeof x->mx_ip);
	emv_strlcpy(x->source_ip, r->source_ip, sizeof x->source_ip);
	emv_strlcpy(x->tls, r->tls, sizeof x->tls);
	if (v.detail[0]) { /* the wire takes printable ASCII only */
		x->detail = emv_xmalloc(EMV_WIRE_DETAIL_MAX + 1);
		emv_sanitize(x->detail, EMV_WIRE_DETAIL_MAX + 1, v.detail, strlen(v.detail));
	}
	address_done(w, id);
}

/* The engine gives an address back: every source address of this worker
 * is quarantined (or held) for its provider.  Its verdict is unknown/blocked
 * for now; finish_batch sends it to the reroute topic. */
static void on_handback(void *arg, uint64_t id, const char *provider, unsigned attempts)
{
	struct worker *w = arg;
	struct slot *s = &w->slots[id];
	struct wbatch *b = s->wb;
	emv_wire_result *x;
	char detail[EMV_WIRE_DETAIL_MAX + 1];

	if (!b)
		return; /* its batch was cut at shutdown */
	x = &b->res[s->idx];
	if (!b->handed)
		b->handed = emv_xcalloc(b->b->n_addresses, 1);
	b->handed[s->idx] = 1;
	emv_strlcpy(b->provider, provider, sizeof b->provider);
	memset(x, 0, sizeof *x);
	x->id = b->b->addresses[s->idx].id;
	x->status = EMV_STATUS_UNKNOWN;
	x->reason = EMV_REASON_BLOCKED;
	x->attempts = attempts > EMV_WIRE_ATTEMPT_MAX ? EMV_WIRE_ATTEMPT_MAX : attempts;
	x->flags = b->b->addresses[s->idx].flags;
	x->temporary = 1;
	snprintf(detail, sizeof detail,
		 "every source address of region %s is quarantined for provider %s; handed back for another region",
		 w->o.region[0] ? w->o.region : "(none)", provider);
	x->detail = emv_xmalloc(EMV_WIRE_DETAIL_MAX + 1);
	emv_sanitize(x->detail, EMV_WIRE_DETAIL_MAX + 1, detail, strlen(detail));
	address_done(w, id);
}

static uint32_t slot_new(struct worker *w, struct wbatch *b, uint32_t idx)
{
	uint32_t id;
	if (w->free_slot != NO_SLOT) {
		id = w->free_slot;
		w->free_slot = w->slots[id].next_free;
	} else {
		if (w->nslots == w->capslots) {
			w->capslots = w->capslots ? w->capslots * 2 : 4096;
			w->slots = emv_xrealloc(w->slots, w->capslots * sizeof *w->slots);
		}
		id = w->nslots++;
	}
	w->slots[id].wb = b;
	w->slots[id].idx = idx;
	return id;
}

static void start_batch(struct worker *w, struct wbatch *b)
{
	b->started = 1;
	b->res = emv_xcalloc(b->b->n_addresses, sizeof *b->res);
	w->inflight++;
	w->st.batches++;
	for (size_t i = 0; i < b->b->n_addresses; i++) {
		char addr[EMV_ADDRESS_MAX + 1];
		emv_address a;
		uint32_t id = slot_new(w, b, (uint32_t)i);
		snprintf(addr, sizeof addr, "%s@%s", b->b->addresses[i].local, b->b->domain);
		emv_address_parse(addr, strlen(addr), &a);
		emv_engine_add(w->eng, id, a.error == EMV_ADDR_OK ? a.address : addr, b->b->domain,
			       (a.flags & EMV_FLAG_SMTPUTF8) != 0);
	}
}

/* A batch of a job whose deadline comes before `at` (unix ms, when the
 * batch would be asked) is dropped, not asked: the coordinator makes its
 * addresses final at the deadline with their last evidence
 * (coordinator/emv_deadline.h), and an answer after it would change
 * nothing.  Its offset is committed like a skipped message's.  1 when
 * dropped. */
static int past_deadline(struct worker *w, struct wbatch *b, int64_t at)
{
	if (!b->b || b->b->deadline_ms <= 0 || at < b->b->deadline_ms)
		return 0;
	emv_log(EMV_LOG_INFO, "worker",
		"%s: batch %s of job %s dropped: the job's deadline comes first (%zu addresses)", w->o.name,
		b->b->batch_id, b->b->job_id, b->b->n_addresses);
	w->st.expired_batches++;
	emv_wire_batch_free(b->b);
	b->b = NULL;
	return 1;
}

static void take_message(struct worker *w, rd_kafka_message_t *m)
{
	char err[EMV_WIRE_ERR_MAX];
	int topic = topic_index(w, rd_kafka_topic_name(m->rkt));
	struct wbatch *b = emv_xcalloc(1, sizeof *b);
	struct part *p = part_of(w, topic, m->partition);
	emv_wire_status st = emv_wire_batch_decode(m->payload, m->len, &b->b, err, sizeof err);

	b->part = p;
	b->topic = topic;
	b->offset = m->offset;
	if (m->key && m->key_len < sizeof b->key) {
		memcpy(b->key, m->key, m->key_len);
		b->key[m->key_len] = '\0';
	}
	if (p->tail)
		p->tail->next = b;
	else
		p->head = b;
	p->tail = b;
	if (st != EMV_WIRE_OK) {
		emv_log(EMV_LOG_WARN, "worker", "skipping %s [%d] offset %" PRId64 ": %s (%s)", w->topics[topic],
			(int)m->partition, m->offset, emv_wire_status_name(st), err);
		w->st.skipped++;
		b->b = NULL; /* counted and skipped, never retried forever */
		return;
	}
	if (!b->key[0])
		emv_wire_batch_key(b->b->domain, 0, b->key, sizeof b->key);
	/* asked when due, or now if that is past */
	if (past_deadline(w, b,
			  b->b->not_before_ms > (int64_t)emv_wall_ms() ? b->b->not_before_ms : (int64_t)emv_wall_ms()))
		return;
	if (b->b->not_before_ms > 0 && (uint64_t)b->b->not_before_ms > emv_wall_ms()) {
		/* not due: hold it, and read nothing more of this partition
		 * until it is (later retries are due later still) */
		b->due_ms = emv_now_ms() + ((uint64_t)b->b->not_before_ms - emv_wall_ms());
		emv_log(EMV_LOG_INFO, "worker", "%s: batch %s held: due in %llu ms", w->o.name, b->b->batch_id,
			(unsigned long long)(b->due_ms - emv_now_ms()));
		p->held = b;
		set_paused(w, p, 1);
		return;
	}
	start_batch(w, b);
}

/* The engine holds address `id` for a retry due at due_ms (monotonic):
 * remembered in its batch, in wall time (the next owner's clock). */
static void note_waiting(void *arg, uint64_t id, uint64_t due_ms)
{
	struct worker *w = arg;
	struct wbatch *b = id < w->nslots ? w->slots[id].wb : NULL;
	uint64_t now = emv_now_ms();

	if (!b)
		return;
	if (!b->left_due)
		b->left_due = emv_xcalloc(b->b->n_addresses, sizeof *b->left_due);
	b->left_due[w->slots[id].idx] = (int64_t)emv_wall_ms() + (int64_t)(due_ms > now ? due_ms - now : 0);
	w->held_cut++;
}

/* Stopping, once no session runs any more or at the drain deadline: every
 * batch still in the engine is cut where it is.  Its verdicts go out as
 * usual; its addresses without one go back to the retry topic as a batch
 * of their own (RETRY_CUT; those the engine held for a retry, RETRY_CUT_HELD,
 * due when it would have asked them), so that its offset can be committed
 * and the next owner asks only what was not answered here.  Sessions still running
 * are abandoned: what they learn now is ignored (their slots are let go),
 * and they are cancelled with the engine. */
static void cut_inflight(struct worker *w)
{
	size_t left = 0, batches = 0;

	emv_engine_waiting(w->eng, note_waiting, w);

	for (uint32_t id = 0; id < w->nslots; id++) {
		struct slot *s = &w->slots[id];
		struct wbatch *b = s->wb;
		if (!b)
			continue;
		if (!b->left)
			b->left = emv_xcalloc(b->b->n_addresses, 1);
		b->left[s->idx] = 1;
		s->wb = NULL; /* not on the free list: nothing is started any more */
		left++;
	}
	for (struct part *p = w->parts; p; p = p->next)
		for (struct wbatch *b = p->head; b; b = b->next)
			if (b->left && !b->complete) {
				finish_batch(w, b);
				batches++;
			}
	for (;;) { /* finish_batch may reap orphans: look again each time */
		struct wbatch *b = w->orphans;
		while (b && !(b->left && !b->complete))
			b = b->next;
		if (!b)
			break;
		finish_batch(w, b);
		batches++;
	}
	w->cut = 1;
	if (batches)
		emv_log(EMV_LOG_INFO, "worker",
			"%s: stopping: %zu batch(es) cut, %zu address(es) without a verdict "
			"handed to the next owner (%zu of them held for a retry: due when it was)",
			w->o.name, batches, left, w->held_cut);
}

static void start_due(struct worker *w)
{
	uint64_t now = emv_now_ms();
	for (struct part *p = w->parts; p; p = p->next)
		if (p->held && p->held->due_ms <= now &&
		    (w->inflight < w->o.max_inflight || past_deadline(w, p->held, (int64_t)emv_wall_ms()))) {
			if (p->held->b)
				start_batch(w, p->held);
			p->held = NULL;
			set_paused(w, p, 0);
		}
}

static int pending_acks(struct worker *w)
{
	for (struct part *p = w->parts; p; p = p->next)
		for (struct wbatch *b = p->head; b; b = b->next)
			if (b->started && (!b->complete || b->acks_pending))
				return 1;
	return w->orphans != NULL;
}

static int held_batches(struct worker *w)
{
	int n = 0;
	for (struct part *p = w->parts; p; p = p->next)
		n += p->held != NULL;
	return n;
}

/* The periodic pool audit ends when the worker stops taking work (no DNS
 * queries during the drain); its counts go to the worker's stats. */
static void reaudit_stop(struct worker *w)
{
	emv_reaudit_stats rs;

	if (!w->e.reaudit)
		return;
	emv_reaudit_stats_get(w->e.reaudit, &rs);
	w->st.audits = rs.audits;
	w->st.audit_held = rs.held;
	w->st.audit_released = rs.released;
	emv_reaudit_free(w->e.reaudit); /* cancels an audit in flight */
	w->e.reaudit = NULL;
}

/* The shutdown's time line, from the stop (o.shutdown_ms = T): sessions in
 * flight may end (QUIT) until 60% of T; then every batch is cut; the
 * messages that makes are acknowledged until 85%; flush and the
 * synchronous commit take the rest. */
static uint64_t stop_phase_ms(const struct worker *w, int percent)
{
	if (*w->stop == EMV_WORKER_STOP_NOW)
		return 0;
	return (uint64_t)w->o.shutdown_ms * (uint64_t)percent / 100u;
}

static void stopping_tick(struct worker *w)
{
	uint64_t since = emv_now_ms() - w->stop_at;

	if (!w->cut && (emv_engine_sessions(w->eng) == 0 || since >= stop_phase_ms(w, 60))) {
		if (emv_engine_sessions(w->eng) > 0)
			emv_log(*w->stop == EMV_WORKER_STOP_NOW ? EMV_LOG_INFO : EMV_LOG_WARN, "worker",
				"%s: stopping: %d session(s) still running abandoned", w->o.name,
				emv_engine_sessions(w->eng));
		cut_inflight(w);
	}
	commit_ready(w, 0);
	if (w->cut && ((rd_kafka_outq_len(w->producer) == 0 && !pending_acks(w)) || since >= stop_phase_ms(w, 85)))
		event_base_loopbreak(w->e.base);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	if (*w->stop && !w->stopping) {
		/* held retry batches are not waited for: not started, their
		 * offsets stay uncommitted, their next owner holds them again */
		emv_log(w->o.embedded ? EMV_LOG_INFO : EMV_LOG_WARN, "worker",
			"%s: stopping within %d ms: %d batch(es) in flight, %d held retry batch(es) left for later",
			w->o.name, w->o.shutdown_ms, w->inflight, held_batches(w));
		w->stopping = 1;
		w->stop_at = emv_now_ms();
		reaudit_stop(w);
		emv_engine_drain(w->eng);
	}
	if (w->stopping) {
		rd_kafka_poll(w->producer, 0); /* delivery reports */
		if (w->state_producer)
			rd_kafka_poll(w->state_producer, 0);
		stopping_tick(w);
		return;
	}
	rd_kafka_poll(w->producer, 0); /* delivery reports */
	if (w->state_producer)
		rd_kafka_poll(w->state_producer, 0);
	commit_ready(w, 0);
	start_due(w);
	while (w->inflight < w->o.max_inflight && emv_results_gate_open(w->o.gate)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 0);
		if (!m)
			break;
		if (!m->err) {
			take_message(w, m);
			w->last_activity = emv_now_ms();
		} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			emv_log(EMV_LOG_WARN, "worker", "consumer: %s", rd_kafka_message_errstr(m));
		}
		rd_kafka_message_destroy(m);
	}
	if (w->ds && w->ds_consumer) {
		domstate_follow(w);
		if (emv_now_ms() - w->ds_scan_at >= 1000)
			domstate_publish(w, 0);
	}
	emv_engine_pump(w->eng);
	if (w->ep.rep && (emv_rep_changes(w->ep.rep) != w->rep_published ||
			  emv_now_ms() - w->rep_published_at >= (uint64_t)w->o.ipstate_interval_ms))
		publish_ip_state(w);
	if (w->inflight == 0 && rd_kafka_outq_len(w->producer) == 0 && !pending_acks(w) && !held_batches(w) &&
	    w->o.idle_exit_ms > 0 && emv_now_ms() - w->last_activity >= (uint64_t)w->o.idle_exit_ms)
		event_base_loopbreak(w->e.base);
}

/* ---- ip-state ---- */

static void produce_ipstate(struct worker *w, const emv_wire_ipstate *x)
{
	char key[EMV_WIRE_IP_MAX + EMV_WIRE_PROVIDER_MAX + 4], err[EMV_WIRE_ERR_MAX];
	uint8_t *buf;
	size_t len;
	rd_kafka_resp_err_t e;

	if (emv_wire_ipstate_encode(x, &buf, &len, err, sizeof err) != EMV_WIRE_OK) {
		emv_log(EMV_LOG_WARN, "worker", "ip-state %s: %s", x->ip, err);
		return;
	}
	emv_wire_ipstate_key(x, key, sizeof key);
	e = rd_kafka_producev(w->state_producer, RD_KAFKA_V_TOPIC(w->o.ipstate_topic), RD_KAFKA_V_KEY(key, strlen(key)),
			      RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
			      RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
	if (e) {
		emv_log(EMV_LOG_WARN, "worker", "ip-state %s: %s", x->ip, rd_kafka_err2str(e));
		free(buf);
	}
}

static int64_t wall_of(uint64_t mono, uint64_t now_mono, uint64_t now_wall)
{
	if (!mono)
		return 0;
	return (int64_t)(mono + now_wall - now_mono);
}

/* Publish the reputation of every pool address (compacted topic, key
 * "ip|provider"): one IP-wide row each (held or healthy: the coordinator
 * learns the region's addresses from these) and one per provider seen. */
static void publish_ip_state(struct worker *w)
{
	emv_rep *rep = w->ep.rep;
	const emv_pool *pool = w->ep.pool;
	uint64_t now = emv_now_ms(), wall = emv_wall_ms();
	size_t cap = 64, n;
	emv_rep_row *rows;

	if (!rep || !pool || !w->state_producer)
		return;
	w->rep_published = emv_rep_changes(rep);
	w->rep_published_at = now;
	for (;;) {
		rows = emv_xcalloc(cap, sizeof *rows);
		n = emv_rep_snapshot(rep, now, rows, cap);
		if (n <= cap)
			break;
		free(rows);
		cap = n;
	}
	for (int ip = 0; ip < pool->nsources; ip++) {
		emv_wire_ipstate x;
		memset(&x, 0, sizeof x);
		emv_strlcpy(x.ip, pool->sources[ip].ip, sizeof x.ip);
		emv_strlcpy(x.region, w->o.region, sizeof x.region);
		emv_strlcpy(x.worker, w->o.name, sizeof x.worker);
		emv_strlcpy(x.state, emv_rep_is_held(rep, ip) ? "held" : "healthy", sizeof x.state);
		x.rate_permille = emv_rep_is_held(rep, ip) ? 0 : 1000;
		x.updated_ms = (int64_t)wall;
		for (size_t i = 0; i < n; i++) {
			const emv_rep_row *r = &rows[i];
			if (r->ip != ip)
				continue;
			if (!r->provider[0]) { /* the held row */
				emv_strlcpy(x.last_reply, r->last_reply, sizeof x.last_reply);
				x.since_ms = wall_of(r->since, now, wall);
				continue;
			}
			x.rcpts += r->rcpts;
			x.blocks += r->blocks;
			x.sessions += r->sessions;
		}
		produce_ipstate(w, &x);
		for (size_t i = 0; i < n; i++) {
			const emv_rep_row *r = &rows[i];
			emv_wire_ipstate y;
			if (r->ip != ip || !r->provider[0])
				continue;
			y = x;
			emv_strlcpy(y.provider, r->provider, sizeof y.provider);
			emv_strlcpy(y.state, emv_rep_state_name(r->state), sizeof y.state);
			y.until_ms = wall_of(r->until, now, wall);
			y.since_ms = wall_of(r->since, now, wall);
			y.strikes = r->strikes;
			y.rate_permille = (unsigned)(r->rate_factor * 1000.0 + 0.5);
			y.rcpts = r->rcpts;
			y.blocks = r->blocks;
			y.sessions = r->sessions;
			emv_strlcpy(y.last_reply, r->last_reply, sizeof y.last_reply);
			produce_ipstate(w, &y);
		}
	}
	free(rows);
}

/* ---- domain-state ---- */

/* One entry off the topic into the worker's copy; a malformed or absurd one
 * is logged and left out (lib/emv_domstate.h says what is absurd). */
static void domstate_take(struct worker *w, const rd_kafka_message_t *m, int loading)
{
	emv_wire_domstate x;
	char why[EMV_WIRE_ERR_MAX];
	int changed = 0;

	if (!m->payload || m->len == 0)
		return; /* a tombstone: what it deleted ages out here on its own */
	if (emv_wire_domstate_decode(m->payload, m->len, &x, why, sizeof why) != EMV_WIRE_OK ||
	    emv_domstate_merge(w->ds, &x, (int64_t)emv_wall_ms(), &changed, why, sizeof why) != EMV_OK) {
		emv_log(EMV_LOG_WARN, "worker", "%s: %s [%d] offset %" PRId64 " ignored: %s", w->o.name,
			w->o.domstate_topic, (int)m->partition, m->offset, why);
		w->st.domstate_ignored++;
		return;
	}
	if (loading)
		w->st.domstate_loaded++;
	else if (changed)
		w->st.domstate_taken++;
}

/* While running: whatever other workers publish (a bounded number per tick). */
static void domstate_follow(struct worker *w)
{
	for (int i = 0; i < 1000; i++) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(w->ds_consumer, 0);
		if (!m)
			break;
		if (!m->err)
			domstate_take(w, m, 0);
		else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			emv_log(EMV_LOG_WARN, "worker", "%s: %s", w->o.domstate_topic, rd_kafka_message_errstr(m));
		rd_kafka_message_destroy(m);
	}
}

static void on_ds_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	if (m->err) /* best effort: the finding stays this worker's own */
		emv_log(EMV_LOG_WARN, "worker", "domain-state not delivered: %s", rd_kafka_err2str(m->err));
}

/* This worker's own findings that changed something, each host or domain
 * at most once per domstate_publish_ms (all: every change now, when
 * stopping).  Never per recipient: only a changed value marks an entry. */
static void domstate_publish(struct worker *w, int all)
{
	emv_wire_domstate out[64];
	size_t n;
	int64_t now = (int64_t)emv_wall_ms();

	w->ds_scan_at = emv_now_ms();
	do {
		n = emv_domstate_take_changed(w->ds, now, all ? 0 : w->o.domstate_publish_ms, out,
					      sizeof out / sizeof out[0]);
		for (size_t i = 0; i < n; i++) {
			char key[EMV_HOST_NAME_MAX + 16], err[EMV_WIRE_ERR_MAX];
			uint8_t *buf;
			size_t len;
			rd_kafka_resp_err_t e;
			emv_strlcpy(out[i].worker, w->o.name, sizeof out[i].worker);
			if (emv_wire_domstate_encode(&out[i], &buf, &len, err, sizeof err) != EMV_WIRE_OK) {
				emv_log(EMV_LOG_WARN, "worker", "domain-state %s: %s", out[i].name, err);
				continue;
			}
			emv_wire_domstate_key(&out[i], key, sizeof key);
			e = rd_kafka_producev(w->ds_producer, RD_KAFKA_V_TOPIC(w->o.domstate_topic),
					      RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
					      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
			if (e) {
				emv_log(EMV_LOG_WARN, "worker", "domain-state %s: %s", key, rd_kafka_err2str(e));
				free(buf);
				continue;
			}
			emv_log(EMV_LOG_INFO, "worker", "%s: published %s", w->o.name, key);
			w->st.domstate_published++;
		}
	} while (n == sizeof out / sizeof out[0]);
	rd_kafka_poll(w->ds_producer, 0);
}

/*
 * At start, before any batch: the domain-state topic from its beginning up
 * to its end (each partition's end-of-partition event), at most
 * domstate_load_ms; then its consumer stays assigned and is followed.  No
 * consumer group: every worker reads all of it.
 */
static int domstate_start(struct worker *w, char *err, size_t errlen)
{
	rd_kafka_conf_t *cc = emv_kafka_conf_new(), *pc = emv_kafka_conf_new();
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_topic_t *rkt;
	char errstr[512];
	uint64_t t0 = emv_now_ms();
	int nparts = 0, eofs = 0;

	if (emv_kafka_conf_apply(cc, w->o.kafka_conf, err, errlen) != EMV_OK ||
	    emv_kafka_conf_apply(pc, w->o.kafka_conf, err, errlen) != EMV_OK ||
	    kafka_conf(cc, "bootstrap.servers", w->o.brokers, err, errlen) ||
	    kafka_conf(cc, "group.id", "emailverify-domain-state-reader", err, errlen) ||
	    kafka_conf(cc, "enable.auto.commit", "false", err, errlen) ||
	    kafka_conf(cc, "enable.partition.eof", "true", err, errlen) ||
	    kafka_conf(pc, "bootstrap.servers", w->o.brokers, err, errlen) ||
	    kafka_conf(pc, "enable.idempotence", "false", err, errlen) ||
	    kafka_conf(pc, "message.timeout.ms", "60000", err, errlen)) {
		rd_kafka_conf_destroy(cc);
		rd_kafka_conf_destroy(pc);
		return -1;
	}
	rd_kafka_conf_set_dr_msg_cb(pc, on_ds_delivery);
	if (!(w->ds_producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof errstr))) {
		rd_kafka_conf_destroy(cc);
		emv_set_err(err, errlen, "Kafka producer: %s", errstr);
		return -1;
	}
	if (!(w->ds_consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof errstr))) {
		emv_set_err(err, errlen, "Kafka consumer: %s", errstr);
		return -1;
	}
	if (emv_kafka_ensure_compacted_topic(w->ds_producer, w->o.domstate_topic, err, errlen) != EMV_OK)
		return -1;
	rd_kafka_poll_set_consumer(w->ds_consumer);
	rkt = rd_kafka_topic_new(w->ds_consumer, w->o.domstate_topic, NULL);
	if (rd_kafka_metadata(w->ds_consumer, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1)
		nparts = md->topics[0].partition_cnt;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	if (nparts <= 0) {
		emv_set_err(err, errlen, "%s: no partitions in the cluster's metadata", w->o.domstate_topic);
		return -1;
	}
	parts = rd_kafka_topic_partition_list_new(nparts);
	for (int i = 0; i < nparts; i++)
		rd_kafka_topic_partition_list_add(parts, w->o.domstate_topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(w->ds_consumer, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	while (eofs < nparts && emv_now_ms() - t0 < (uint64_t)w->o.domstate_load_ms && !*w->stop) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(w->ds_consumer, 100);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			eofs++; /* each partition's first end: what was there at start is in */
		else if (m->err)
			emv_log(EMV_LOG_WARN, "worker", "%s: %s", w->o.domstate_topic, rd_kafka_message_errstr(m));
		else
			domstate_take(w, m, 1);
		rd_kafka_message_destroy(m);
	}
	emv_log(eofs < nparts && !w->o.embedded ? EMV_LOG_WARN : EMV_LOG_INFO, "worker",
		"%s: %s: %" PRIu64 " entries taken (%" PRIu64 " ignored) in %llu ms%s", w->o.name, w->o.domstate_topic,
		w->st.domstate_loaded, w->st.domstate_ignored, (unsigned long long)(emv_now_ms() - t0),
		eofs < nparts ? ", not read to its end: the rest is followed while running" : "");
	return 0;
}

/* ---- set-up ---- */

static int kafka_conf(rd_kafka_conf_t *c, const char *key, const char *val, char *err, size_t errlen)
{
	char errstr[256];
	if (rd_kafka_conf_set(c, key, val, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
		emv_set_err(err, errlen, "Kafka setting %s: %s", key, errstr);
		return -1;
	}
	return 0;
}

static int make_clients(struct worker *w, char *err, size_t errlen)
{
	rd_kafka_conf_t *cc = emv_kafka_conf_new(), *pc = emv_kafka_conf_new();
	char st[16], errstr[512];
	rd_kafka_topic_partition_list_t *topics;

	snprintf(st, sizeof st, "%d", w->o.session_timeout_ms);
	if (emv_kafka_conf_apply(cc, w->o.kafka_conf, err, errlen) != EMV_OK ||
	    emv_kafka_conf_apply(pc, w->o.kafka_conf, err, errlen) != EMV_OK ||
	    kafka_conf(cc, "bootstrap.servers", w->o.brokers, err, errlen) ||
	    kafka_conf(cc, "group.id", w->o.group, err, errlen) ||
	    kafka_conf(cc, "enable.auto.commit", "false", err, errlen) ||
	    kafka_conf(cc, "enable.auto.offset.store", "false", err, errlen) ||
	    kafka_conf(cc, "auto.offset.reset", "earliest", err, errlen) ||
	    /* a worker that dies loses its partitions to the others this fast */
	    kafka_conf(cc, "session.timeout.ms", st, err, errlen) ||
	    kafka_conf(pc, "bootstrap.servers", w->o.brokers, err, errlen) ||
	    kafka_conf(pc, "enable.idempotence", "true", err, errlen) ||
	    kafka_conf(pc, "message.max.bytes", "4194304", err, errlen)) {
		rd_kafka_conf_destroy(cc);
		rd_kafka_conf_destroy(pc);
		return -1;
	}
	rd_kafka_conf_set_opaque(cc, w);
	rd_kafka_conf_set_opaque(pc, w);
	rd_kafka_conf_set_rebalance_cb(cc, on_rebalance);
	rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
	if (!(w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof errstr))) {
		rd_kafka_conf_destroy(pc);
		emv_set_err(err, errlen, "Kafka consumer: %s", errstr);
		return -1;
	}
	if (!(w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof errstr))) {
		emv_set_err(err, errlen, "Kafka producer: %s", errstr);
		return -1;
	}
	if (w->ep.rep && w->o.ipstate_topic && w->o.ipstate_topic[0]) {
		rd_kafka_conf_t *sc = emv_kafka_conf_new();
		if (emv_kafka_conf_apply(sc, w->o.kafka_conf, err, errlen) != EMV_OK ||
		    kafka_conf(sc, "bootstrap.servers", w->o.brokers, err, errlen) ||
		    kafka_conf(sc, "enable.idempotence", "false", err, errlen) ||
		    kafka_conf(sc, "message.timeout.ms", "60000", err, errlen)) {
			rd_kafka_conf_destroy(sc);
			return -1;
		}
		rd_kafka_conf_set_opaque(sc, w);
		rd_kafka_conf_set_dr_msg_cb(sc, on_delivery);
		if (!(w->state_producer = rd_kafka_new(RD_KAFKA_PRODUCER, sc, errstr, sizeof errstr))) {
			emv_set_err(err, errlen, "Kafka producer: %s", errstr);
			return -1;
		}
	}
	if (emv_kafka_ensure_topic(w->producer, w->o.results_topic, EMV_TOPIC_PARTITIONS, err, errlen) != EMV_OK ||
	    emv_kafka_ensure_topic(w->producer, w->o.retry_topic, EMV_TOPIC_PARTITIONS, err, errlen) != EMV_OK)
		return -1;
	for (int i = T_RBATCHES; i < w->ntopics; i++)
		if (emv_kafka_ensure_topic(w->producer, w->topics[i], EMV_TOPIC_PARTITIONS, err, errlen) != EMV_OK)
			return -1;
	if (w->handback &&
	    emv_kafka_ensure_topic(w->producer, w->o.reroute_topic, EMV_TOPIC_PARTITIONS, err, errlen) != EMV_OK)
		return -1;
	if (w->state_producer &&
	    emv_kafka_ensure_compacted_topic(w->state_producer, w->o.ipstate_topic, err, errlen) != EMV_OK)
		return -1;
	rd_kafka_poll_set_consumer(w->consumer);
	topics = rd_kafka_topic_partition_list_new(w->ntopics);
	for (int i = 0; i < w->ntopics; i++)
		rd_kafka_topic_partition_list_add(topics, w->topics[i], RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(w->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	return 0;
}

static void teardown(struct worker *w)
{
	if (w->consumer) {
		rd_kafka_consumer_close(w->consumer);
		rd_kafka_destroy(w->consumer);
	}
	if (w->producer)
		rd_kafka_destroy(w->producer);
	if (w->state_producer)
		rd_kafka_destroy(w->state_producer);
	if (w->ds_consumer) {
		rd_kafka_consumer_close(w->ds_consumer);
		rd_kafka_destroy(w->ds_consumer);
	}
	if (w->ds_producer)
		rd_kafka_destroy(w->ds_producer);
	emv_domstate_free(w->ds);
	if (w->timer)
		event_free(w->timer);
	if (w->eng)
		emv_engine_free(w->eng);
	emv_budget_free(w->ep.budget);
	for (struct part *p = w->parts, *n; p; p = n) {
		n = p->next;
		for (struct wbatch *b = p->head, *bn; b; b = bn) {
			bn = b->next;
			wbatch_free(b);
		}
		free(p);
	}
	for (struct wbatch *b = w->orphans, *n; b; b = n) {
		n = b->next;
		wbatch_free(b);
	}
	free(w->slots);
	emv_setup_free(&w->e);
}

int emv_worker_run(const emv_worker_opts *o, const emv_setup_opts *eo, volatile sig_atomic_t *stop,
		   emv_worker_stats *st, char *err, size_t errlen)
{
	struct worker w;
	struct timeval tv = { 0, 20000 };
	int rc = EMV_OK;

	memset(&w, 0, sizeof w);
	w.o = *o;
	w.stop = stop;
	w.free_slot = NO_SLOT;
	w.topics[T_BATCHES] = o->batches_topic;
	w.topics[T_RETRY] = o->retry_topic;
	w.ntopics = 2;
	/* the engine's rules by reason, with the topic's attempts and steps */
	w.topic_retry = eo->retry;
	w.topic_retry.max_attempts = eo->retry.topic_attempts < 1 ? 1 : eo->retry.topic_attempts;
	memcpy(w.topic_retry.schedule_ms, eo->retry.topic_delay_ms, sizeof w.topic_retry.schedule_ms);
	if (emv_setup_init(&w.e, eo) < 0) {
		emv_set_err(err, errlen, "the probe engine could not be set up (see above)");
		emv_setup_free(&w.e);
		return EMV_ERR;
	}
	emv_engine_params_default(&w.ep);
	emv_setup_params_engine(&w.e, &w.ep);
	if (w.e.pool && !w.o.region[0])
		w.o.region = w.e.pool->region;
	if (w.o.region[0] && w.o.region_topics) { /* batches routed to this region, and their retries */
		emv_kafka_region_topic(w.region_topics[0], sizeof w.region_topics[0], o->batches_topic, w.o.region);
		emv_kafka_region_topic(w.region_topics[1], sizeof w.region_topics[1], o->retry_topic, w.o.region);
		w.topics[T_RBATCHES] = w.region_topics[0];
		w.topics[T_RRETRY] = w.region_topics[1];
		w.ntopics = 4;
	} else {
		w.topics[T_RRETRY] = o->retry_topic;
	}
	/* with a region and somewhere to send them, addresses no source here
	 * may ask go to another region instead of waiting out a cool-down */
	w.handback = w.e.pool && w.o.region[0] && w.o.reroute_topic && w.o.reroute_topic[0] && !w.o.embedded;
	w.ep.budget = emv_budget_new();
	emv_setup_params_apply(eo, &w.ep);
	w.ep.retry.window_ms = eo->retry.worker_window_ms; /* longer waits go to the retry topic */
	w.e.probe.retry.greylist_rounds = 0;		   /* the engine's retry schedule does it */
	if (w.handback)
		w.ep.handback = on_handback;
	if (w.o.domstate_topic && w.o.domstate_topic[0])
		w.ep.domstate = w.ds = emv_domstate_new(NULL);
	w.eng = emv_engine_new(&w.e.probe, &w.ep, on_result, &w);
	/* what other workers learnt is in before the first batch is taken;
	 * without the topic (a broker down, the topic unreadable) the worker
	 * works alone: shared knowledge saves mistakes, it is not needed to
	 * verify */
	if (w.ds && domstate_start(&w, err, errlen) < 0) {
		emv_log(EMV_LOG_WARN, "worker", "%s: %s: %s; working without other workers' findings, not sharing its own",
			w.o.name, w.o.domstate_topic, err);
		if (w.ds_consumer) {
			rd_kafka_consumer_close(w.ds_consumer);
			rd_kafka_destroy(w.ds_consumer);
			w.ds_consumer = NULL;
		}
		if (w.ds_producer) {
			rd_kafka_destroy(w.ds_producer);
			w.ds_producer = NULL;
		}
	}
	if (make_clients(&w, err, errlen) < 0) {
		teardown(&w);
		return EMV_ERR;
	}
	w.last_activity = emv_now_ms();
	w.timer = event_new(w.e.base, -1, EV_PERSIST, on_timer, &w);
	event_add(w.timer, &tv);
	event_base_dispatch(w.e.base);

	{
		/* stopped: what is left of the shutdown timeout; else (idle
		 * exit) the usual bounds */
		int left = 10000;
		if (w.stopping) {
			uint64_t end = w.stop_at + stop_phase_ms(&w, 95), now = emv_now_ms();
			left = end > now ? (int)(end - now) : 0;
		}
		publish_ip_state(&w);
		if (w.state_producer)
			rd_kafka_flush(w.state_producer, left < 5000 ? left / 2 : 5000);
		if (w.ds && w.ds_producer) { /* every finding not published yet goes out now */
			domstate_publish(&w, 1);
			rd_kafka_flush(w.ds_producer, left < 5000 ? left / 2 : 5000);
		}
		if (w.stopping) {
			uint64_t end = w.stop_at + stop_phase_ms(&w, 95), now = emv_now_ms();
			left = end > now ? (int)(end - now) : 0;
		}
		rd_kafka_flush(w.producer, left);
	}
	rd_kafka_poll(w.producer, 0);
	commit_ready(&w, 1); /* synchronous: nothing acknowledged is left uncommitted */
	reaudit_stop(&w);
	if (st)
		*st = w.st;
	teardown(&w);
	return rc;
}
