/* SPDX-License-Identifier: Apache-2.0 */
/* emv_split.c - job -> VerifyBatch messages on Kafka (see emv_split.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include "emv_db.h"
#include "emv_defaults.h"
#include "emv_kafka.h"
#include "emv_retry.h"
#include "emv_split.h"
#include "emv_routes.h"
#include "emv_util.h"
#include "emv_vcache.h"
#include "emv_wire.h"

void emv_split_params_default(emv_split_params *p)
{
	emv_retry_policy rp;

	emv_retry_policy_default(&rp);
	memset(p, 0, sizeof *p);
	p->topic = EMV_TOPIC_BATCHES;
	p->retry_topic = EMV_TOPIC_RETRY;
	p->results_topic = EMV_TOPIC_RESULTS;
	p->partitions = EMV_TOPIC_PARTITIONS;
	p->batch_max = EMV_DEF_BATCH_MAX;
	p->max_shards = EMV_DEF_SPLIT_MAX_SHARDS;
	p->chunk = EMV_DEF_SPLIT_CHUNK;
	p->flush_timeout_ms = EMV_DEF_KAFKA_FLUSH_TIMEOUT_MS;
	p->retry_delay_ms = rp.topic_delay_ms[0]; /* the workers' first wait */
}

struct delivery {
	uint64_t failed;
	char first_error[256];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct delivery *d = opaque;
	if (m->err) {
		if (!d->failed)
			snprintf(d->first_error, sizeof d->first_error, "%s", rd_kafka_err2str(m->err));
		d->failed++;
	}
}

struct batcher {
	rd_kafka_t *rk;
	const emv_split_params *p;
	const char *job_id;
	char domain[EMV_HOST_NAME_MAX + 1];
	unsigned domain_batches; /* batches of this domain so far */
	emv_wire_address *a;
	size_t n;
	int delayed;	    /* the batch holds addresses waiting for a retry */
	int64_t not_before; /* and this is the latest of their times (wall ms) */
	int64_t deadline;   /* the job's (unix ms, 0 none): every batch carries it */
	uint64_t seq;
	emv_split_stats *st;
	char last_domain[EMV_HOST_NAME_MAX + 1]; /* cursor: last address of the last produced batch */
	int64_t last_id;
	emv_kafka_known topics; /* region topics known to exist */
};

/* The topic of a batch of domain: the shared one, or its region's own
 * (made when first used); the region in *region ("" = shared).  A batch
 * waiting for its retry's time goes to the retry topic (shared or the
 * region's), where a worker holds it without holding up new batches. */
static const char *topic_for(struct batcher *b, const char *domain, char *topic, size_t topiclen, char *region,
			     size_t regionlen, char *err, size_t errlen)
{
	const char *rg = emv_routes_region(b->p->routes, domain);
	const char *base = b->delayed ? b->p->retry_topic : b->p->topic;

	region[0] = '\0';
	if (!rg) {
		if (b->delayed &&
		    emv_kafka_ensure_topic_once(b->rk, &b->topics, base, b->p->partitions, err, errlen) != EMV_OK)
			return NULL;
		return base;
	}
	emv_strlcpy(region, rg, regionlen);
	emv_kafka_region_topic(topic, topiclen, base, rg);
	if (emv_kafka_ensure_topic_once(b->rk, &b->topics, topic, b->p->partitions, err, errlen) != EMV_OK)
		return NULL;
	return topic;
}

static int produce_batch(struct batcher *b, char *err, size_t errlen)
{
	emv_wire_batch wb;
	uint8_t *buf = NULL;
	size_t len = 0;
	char key[EMV_WIRE_KEY_MAX];
	unsigned shard;
	char werr[EMV_WIRE_ERR_MAX], tbuf[300], region[EMV_ROUTES_REGION_MAX];
	const char *topic;
	rd_kafka_resp_err_t e;

	if (b->n == 0)
		return EMV_OK;
	if (!(topic = topic_for(b, b->domain, tbuf, sizeof tbuf, region, sizeof region, err, errlen)))
		return EMV_ERR;
	memset(&wb, 0, sizeof wb);
	emv_strlcpy(wb.region_hint, region, sizeof wb.region_hint);
	emv_strlcpy(wb.job_id, b->job_id, sizeof wb.job_id);
	snprintf(wb.batch_id, sizeof wb.batch_id, "%" PRIu64, ++b->seq);
	emv_strlcpy(wb.domain, b->domain, sizeof wb.domain);
	wb.addresses = b->a;
	wb.n_addresses = b->n;
	wb.not_before_ms = b->not_before > EMV_WIRE_TIME_MAX ? EMV_WIRE_TIME_MAX : b->not_before;
	wb.deadline_ms = b->deadline > EMV_WIRE_TIME_MAX ? EMV_WIRE_TIME_MAX : b->deadline;
	if (emv_wire_batch_encode(&wb, &buf, &len, werr, sizeof werr) != EMV_WIRE_OK) {
		emv_set_err(err, errlen, "batch of %s: %s", b->domain, werr);
		return EMV_ERR;
	}
	shard = b->p->max_shards > 1 ? b->domain_batches % (unsigned)b->p->max_shards : 0;
	emv_wire_batch_key(b->domain, shard, key, sizeof key);
	for (;;) {
		e = rd_kafka_producev(b->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
				      RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
				      RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(b->rk, 100); /* the local queue drains as deliveries complete */
	}
	if (e) {
		free(buf);
		emv_set_err(err, errlen, "producing a batch of %s: %s", b->domain, rd_kafka_err2str(e));
		return EMV_ERR;
	}
	rd_kafka_poll(b->rk, 0);
	b->domain_batches++;
	b->st->batches++;
	b->st->addresses += b->n;
	if (b->delayed)
		b->st->delayed += b->n;
	emv_strlcpy(b->last_domain, b->domain, sizeof b->last_domain);
	b->last_id = (int64_t)b->a[b->n - 1].id;
	b->n = 0;
	b->not_before = 0;
	return EMV_OK;
}

static int commit_progress(PGconn *c, struct batcher *b, int done, char *err, size_t errlen)
{
	char ndone[24], lid[24];
	const char *v[5] = { b->job_id, ndone, b->last_domain[0] ? b->last_domain : NULL, lid, done ? "1" : "0" };
	snprintf(ndone, sizeof ndone, "%" PRIu64, b->st->addresses);
	snprintf(lid, sizeof lid, "%" PRId64, b->last_id);
	if (!b->last_domain[0])
		v[3] = NULL;
	if (emv_db_run(c,
		       "UPDATE jobs SET split_done = split_done + $2::bigint, "
		       "split_after_domain = coalesce($3, split_after_domain), "
		       "split_after_id = coalesce($4::bigint, split_after_id), "
		       /* every result may be in already (or none was needed):
			     * the sink only finishes running jobs, so finish it here */
		       "state = CASE WHEN $5 <> '1' OR state = 'deleting' THEN state"
		       "  WHEN n_final >= n_unusable + addresses_total THEN 'done' ELSE 'running' END, "
		       "finished_at = CASE WHEN $5 = '1' AND n_final >= n_unusable + addresses_total"
		       "  THEN coalesce(finished_at, now()) ELSE finished_at END WHERE id = $1",
		       5, v, err, errlen, "recording split progress") != EMV_OK)
		return EMV_ERR;
	b->st->addresses = 0; /* counted into split_done */
	return EMV_OK;
}

/* A first split's addresses when the verdict cache answered some: those
 * have their result (emv_vcache_answer) and are left out. */
static const char cursor_uncached_sql[] =
	"DECLARE split_cur NO SCROLL CURSOR FOR"
	" SELECT a.domain, a.id, a.address, a.flags, 0 FROM addresses a WHERE a.job_id = $1"
	" AND a.error_reason IS NULL AND a.duplicate_of IS NULL AND (a.domain, a.id) > ($2, $3::bigint)"
	" AND NOT EXISTS (SELECT 1 FROM results r WHERE r.job_id = a.job_id AND r.address_id = a.id)"
	" ORDER BY a.domain, a.id";

static int exec_cmd(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = emv_db_exec(c, sql, 0, NULL, PGRES_COMMAND_OK, err, errlen, "%s", sql);
	PQclear(r);
	return r != NULL;
}

int emv_split_job(PGconn *c, const char *job_id, const emv_split_params *p, emv_split_stats *st, char *err,
		  size_t errlen)
{
	char errstr[512], after_domain[EMV_HOST_NAME_MAX + 1] = "", after_id[24] = "0";
	rd_kafka_conf_t *conf = emv_kafka_conf_new();
	struct delivery dl = { 0, "" };
	struct batcher b;
	emv_split_stats chunk_st;
	uint64_t t0 = emv_now_ms(), total = 0, total_batches = 0, total_delayed = 0;
	int rc = EMV_ERR;
	PGresult *r;
	PGconn *rd = NULL;
	char fetch[64];
	uint64_t cached = 0, cache_ms = 0;
	int any_cached = 0;

	memset(st, 0, sizeof *st);
	memset(&b, 0, sizeof b);
	if (emv_kafka_conf_apply(conf, p->kafka_conf, err, errlen) != EMV_OK) {
		rd_kafka_conf_destroy(conf);
		return EMV_ERR;
	}
	if (rd_kafka_conf_set(conf, "bootstrap.servers", p->brokers, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "message.max.bytes", "4194304", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
		emv_set_err(err, errlen, "Kafka configuration: %s", errstr);
		rd_kafka_conf_destroy(conf);
		return EMV_ERR;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, &dl);
	b.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!b.rk) {
		emv_set_err(err, errlen, "Kafka producer: %s", errstr);
		rd_kafka_conf_destroy(conf);
		return EMV_ERR;
	}
	conf = NULL; /* now owned by rk */
	/* the coordinator owns the topics: the results topic too, so workers
	 * can deliver before the sink has ever run */
	if (emv_kafka_ensure_topic(b.rk, p->topic, p->partitions, err, errlen) != EMV_OK ||
	    emv_kafka_ensure_topic(b.rk, p->results_topic, p->partitions, err, errlen) != EMV_OK)
		goto out;

	/* what the verdict cache may answer never goes to Kafka: answered
	 * here, before anything is read for batches (again after a restart:
	 * an address answered already has its result and is left alone) */
	cache_ms = emv_now_ms();
	if (emv_vcache_answer(c, job_id, p->cache, &cached, err, errlen) != EMV_OK)
		goto out;
	cache_ms = emv_now_ms() - cache_ms;
	/* where an earlier split stopped */
	{
		const char *v[1] = { job_id };
		r = emv_db_exec(c,
				"SELECT coalesce(split_after_domain, ''), coalesce(split_after_id, 0), state, n_cached, "
				"coalesce(floor(extract(epoch FROM deadline_at) * 1000)::bigint, 0) "
				"FROM jobs WHERE id = $1",
				1, v, PGRES_TUPLES_OK, err, errlen, "reading job %s", job_id);
		if (!r)
			goto out;
		if (PQntuples(r) != 1) {
			emv_set_err(err, errlen, "job %s not found", job_id);
			PQclear(r);
			goto out;
		}
		emv_strlcpy(after_domain, PQgetvalue(r, 0, 0), sizeof after_domain);
		emv_strlcpy(after_id, PQgetvalue(r, 0, 1), sizeof after_id);
		any_cached = strtoll(PQgetvalue(r, 0, 3), NULL, 10) > 0;
		b.deadline = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
		PQclear(r);
	}
	b.p = p;
	b.job_id = job_id;
	b.st = &chunk_st;
	b.a = emv_xcalloc((size_t)p->batch_max, sizeof *b.a);
	memset(&chunk_st, 0, sizeof chunk_st);

	/* One pass over the job in (domain, id) order, from a cursor on a
	 * connection of its own: the progress commits on c do not end it, and
	 * the rows are sorted once (keyset queries re-scanned the rest of the
	 * job for every chunk: quadratic). */
	if (!(rd = emv_db_clone(c, err, errlen)))
		goto out;
	{
		char delay[24];
		const char *v[4] = { job_id, after_domain, after_id, delay };
		snprintf(delay, sizeof delay, "%d", p->retry_delay_ms > 0 ? p->retry_delay_ms : 0);
		if (!exec_cmd(rd, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen) ||
		    !exec_cmd(rd, "SET LOCAL work_mem = '128MB'", err, errlen))
			goto out;
		/* skip_final: a job split again (its batches were lost) asks
		 * no server twice about an address it has a verdict for, and
		 * none whose temporary result waits for its retry before its
		 * time (the result's + retry_delay_ms, unix ms; 0: at once) */
		r = emv_db_exec(rd,
				p->skip_final
					? "DECLARE split_cur NO SCROLL CURSOR FOR"
					  " SELECT a.domain, a.id, a.address, a.flags,"
					  "  CASE WHEN r.address_id IS NULL THEN 0"
					  "  ELSE floor(extract(epoch FROM r.updated_at) * 1000)::bigint + $4::bigint END"
					  " FROM addresses a LEFT JOIN results r ON r.job_id = a.job_id AND r.address_id = a.id"
					  " WHERE a.job_id = $1 AND a.error_reason IS NULL AND a.duplicate_of IS NULL"
					  " AND (a.domain, a.id) > ($2, $3::bigint) AND r.final IS NOT TRUE"
					  " ORDER BY a.domain, a.id"
				: any_cached ? cursor_uncached_sql
					     : "DECLARE split_cur NO SCROLL CURSOR FOR"
					       " SELECT domain, id, address, flags, 0 FROM addresses WHERE job_id = $1"
					       " AND error_reason IS NULL AND duplicate_of IS NULL"
					       " AND (domain, id) > ($2, $3::bigint) ORDER BY domain, id",
				p->skip_final ? 4 : 3, v, PGRES_COMMAND_OK, err, errlen, "reading addresses");
		if (!r)
			goto out;
		PQclear(r);
	}
	snprintf(fetch, sizeof fetch, "FETCH %d FROM split_cur", p->chunk);
	for (;;) {
		int n;
		r = emv_db_exec(rd, fetch, 0, NULL, PGRES_TUPLES_OK, err, errlen, "reading addresses");
		if (!r)
			goto out;
		n = PQntuples(r);
		for (int i = 0; i < n; i++) {
			const char *dom = PQgetvalue(r, i, 0), *addr = PQgetvalue(r, i, 2), *at = strrchr(addr, '@');
			int64_t due = strtoll(PQgetvalue(r, i, 4), NULL, 10);
			int delayed;
			emv_wire_address *a;
			if (due <= (int64_t)emv_wall_ms())
				due = 0; /* its retry is due already */
			delayed = due > 0;
			/* a batch is due at once or waits: addresses that may be
			 * asked now never wait for another's retry */
			if (strcmp(dom, b.domain) != 0 || b.n == (size_t)p->batch_max ||
			    (b.n > 0 && delayed != b.delayed)) {
				if (produce_batch(&b, err, errlen) != EMV_OK) {
					PQclear(r);
					goto out;
				}
				if (strcmp(dom, b.domain) != 0) {
					emv_strlcpy(b.domain, dom, sizeof b.domain);
					b.domain_batches = 0;
				}
			}
			if (b.n == 0)
				b.delayed = delayed;
			if (due > b.not_before)
				b.not_before = due;
			a = &b.a[b.n++];
			a->id = strtoull(PQgetvalue(r, i, 1), NULL, 10);
			emv_strlcpy(a->local, addr,
				    at && (size_t)(at - addr) < sizeof a->local ? (size_t)(at - addr) + 1
										: sizeof a->local);
			a->flags = (uint32_t)strtoul(PQgetvalue(r, i, 3), NULL, 10);
		}
		PQclear(r);
		if (n < p->chunk && produce_batch(&b, err, errlen) != EMV_OK) /* the last one */
			goto out;
		/* deliveries confirmed, then the cursor moves: a crash in
		 * between re-produces at most this chunk's batches */
		if (rd_kafka_flush(b.rk, p->flush_timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR || dl.failed) {
			emv_set_err(err, errlen, "Kafka deliveries: %s",
				    dl.failed ? dl.first_error : "not all delivered within the flush timeout");
			goto out;
		}
		total += chunk_st.addresses;
		total_batches += chunk_st.batches;
		total_delayed += chunk_st.delayed;
		chunk_st.delayed = 0;
		if (commit_progress(c, &b, n < p->chunk, err, errlen) != EMV_OK)
			goto out;
		chunk_st.batches = 0;
		if (n < p->chunk)
			break;
		/* the partial batch at the chunk's end continues in the next chunk */
	}
	rc = EMV_OK;
out:
	st->addresses = total;
	st->batches = total_batches;
	st->delayed = total_delayed;
	st->cached = cached;
	st->cache_seconds = (double)cache_ms / 1000.0;
	st->seconds = (double)(emv_now_ms() - t0) / 1000.0;
	rd_kafka_flush(b.rk, 1000);
	rd_kafka_destroy(b.rk);
	free(b.a);
	emv_kafka_known_free(&b.topics);
	if (rd)
		PQfinish(rd); /* ends the read-only transaction */
	return rc;
}
