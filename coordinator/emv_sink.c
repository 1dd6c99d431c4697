/* SPDX-License-Identifier: Apache-2.0 */
/* emv_sink.c - VerifyResults -> PostgreSQL (see emv_sink.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include "emv_deadline.h"
#include "emv_defaults.h"
#include "emv_kafka.h"
#include "emv_sink.h"
#include "emv_util.h"
#include "emv_vcache.h"
#include "emv_wire.h"

void emv_sink_params_default(emv_sink_params *p)
{
	memset(p, 0, sizeof *p);
	p->topic = EMV_TOPIC_RESULTS;
	p->group = EMV_GROUP_SINK;
	p->group_max = EMV_DEF_SINK_GROUP_MAX;
	p->expire_every_ms = EMV_DEF_SINK_EXPIRE_MS;
}

/* Jobs past their deadline or straggler wait are made done (emv_deadline.h);
 * a failure is logged and tried again next time. */
static void expire_due(PGconn *c, const emv_sink_params *p, uint64_t *last, emv_sink_stats *st)
{
	char err[512];
	int jobs;
	long long rows;
	if (p->expire_every_ms <= 0 || emv_now_ms() - *last < (uint64_t)p->expire_every_ms)
		return;
	*last = emv_now_ms();
	if (emv_deadline_expire(c, &jobs, &rows, err, sizeof err) != EMV_OK) {
		emv_log(EMV_LOG_WARN, "sink", "%s", err);
		if (PQstatus(c) != CONNECTION_OK)
			PQreset(c);
		return;
	}
	st->expired_jobs += (uint64_t)jobs;
	st->expired += (uint64_t)rows;
}

#define SINK_GROUP_BYTES (8u << 20)

/* The staging table lives in the session: created once per connection. */
static const char staging_sql[] =
	"CREATE TEMP TABLE IF NOT EXISTS results_in ("
	"  job_id text, address_id bigint, status text, reason text, final boolean, flags integer,"
	"  mx_host text, mx_ip text, source_ip text, region text, tls text, catch_all boolean,"
	"  smtp_code integer, enhanced_code text, reply text, attempts integer, duration_ms integer,"
	"  detail text, retry_at bigint);"
	/* the addresses a group refers to are recent and in memory: look
	 * each up by its key rather than hash the job's whole table */
	"SET random_page_cost = 1.1";

/*
 * One statement does the storing: the group arrives de-duplicated (one row
 * per address: see pick_rows), rows of addresses the job does not have, or
 * that were final at ingest, are dropped, an upsert leaves final results
 * alone, and the counters move by the rows that became final now (a row
 * can only become final once: final rows are never updated).
 */
static const char upsert_sql[] =
	"WITH s AS ("
	"  SELECT i.*, a.address FROM results_in i JOIN addresses a"
	"   ON a.job_id = i.job_id AND a.id = i.address_id AND a.error_reason IS NULL),"
	" up AS ("
	"  INSERT INTO results AS r (job_id, address_id, status, reason, final, flags, mx_host, mx_ip, source_ip,"
	"    region, tls, catch_all, smtp_code, enhanced_code, reply, attempts, duration_ms, detail, retry_at,"
	"    updated_at)"
	"  SELECT job_id, address_id, status, reason, final, flags, mx_host, mx_ip, source_ip, region, tls,"
	"    catch_all, smtp_code, enhanced_code, reply, attempts, duration_ms, detail,"
	"    CASE WHEN retry_at > 0 THEN to_timestamp(retry_at / 1000.0) END, now() FROM s"
	"  ON CONFLICT (job_id, address_id) DO UPDATE SET status = excluded.status, reason = excluded.reason,"
	"    final = excluded.final, flags = excluded.flags, mx_host = excluded.mx_host, mx_ip = excluded.mx_ip,"
	"    source_ip = excluded.source_ip, region = excluded.region, tls = excluded.tls,"
	"    catch_all = excluded.catch_all, smtp_code = excluded.smtp_code,"
	"    enhanced_code = excluded.enhanced_code, reply = excluded.reply, detail = excluded.detail,"
	"    attempts = r.attempts + excluded.attempts, duration_ms = excluded.duration_ms,"
	"    retry_at = excluded.retry_at, updated_at = now()"
	"  WHERE NOT r.final"
	/* xmax = 0: the row was inserted, not updated: the address's first answer */
	"  RETURNING r.*, r.xmax = 0 AS answered),"
	/* the verdict cache (emv_vcache.h): every verdict that became final
	 * now and is not unknown (which says nothing new about the mailbox:
	 * it leaves a known verdict alone) is its scope's entry; one row per
	 * entry, as two jobs of a group may share an address */
	" c AS ("
	"  INSERT INTO verdict_cache AS v (scope, address, status, reason, flags, detail, mx_host, mx_ip, source_ip,"
	"    region, tls, catch_all, smtp_code, enhanced_code, reply, attempts, duration_ms, verified_at, tenant,"
	"    job_id)"
	"  SELECT DISTINCT ON (1, 2) CASE WHEN $2 THEN '*' ELSE jb.tenant END, s.address, u.status, u.reason,"
	"    u.flags, u.detail, u.mx_host, u.mx_ip, u.source_ip, u.region, u.tls, u.catch_all, u.smtp_code,"
	"    u.enhanced_code, u.reply, u.attempts, u.duration_ms, now(), jb.tenant, u.job_id"
	"  FROM up u JOIN s ON s.job_id = u.job_id AND s.address_id = u.address_id JOIN jobs jb ON jb.id = u.job_id"
	"  WHERE $1 AND u.final AND u.status <> 'unknown'"
	"  ORDER BY 1, 2"
	"  ON CONFLICT (scope, address) DO UPDATE SET status = excluded.status, reason = excluded.reason,"
	"    flags = excluded.flags, detail = excluded.detail, mx_host = excluded.mx_host, mx_ip = excluded.mx_ip,"
	"    source_ip = excluded.source_ip, region = excluded.region, tls = excluded.tls,"
	"    catch_all = excluded.catch_all, smtp_code = excluded.smtp_code, enhanced_code = excluded.enhanced_code,"
	"    reply = excluded.reply, attempts = excluded.attempts, duration_ms = excluded.duration_ms,"
	"    verified_at = excluded.verified_at, tenant = excluded.tenant, job_id = excluded.job_id),"
	" d AS ("
	"  SELECT job_id, count(*) FILTER (WHERE final) AS n,"
	"    count(*) FILTER (WHERE final AND status = 'deliverable') AS nd,"
	"    count(*) FILTER (WHERE final AND status = 'undeliverable') AS nu,"
	"    count(*) FILTER (WHERE final AND status = 'risky') AS nr,"
	"    count(*) FILTER (WHERE final AND status = 'unknown') AS nk,"
	"    count(*) FILTER (WHERE answered) AS na, count(*) AS stored"
	"  FROM up GROUP BY job_id),"
	" j AS ("
	"  UPDATE jobs SET n_final = n_final + d.n, n_deliverable = n_deliverable + d.nd,"
	"    n_undeliverable = n_undeliverable + d.nu, n_risky = n_risky + d.nr, n_unknown = n_unknown + d.nk,"
	"    state = CASE WHEN n_final + d.n >= n_unusable + addresses_total AND state = 'running'"
	"                 THEN 'done' ELSE state END,"
	"    finished_at = CASE WHEN n_final + d.n >= n_unusable + addresses_total AND finished_at IS NULL"
	"                 THEN now() ELSE finished_at END,"
	/* every address has had its first answer: the straggler wait starts */
	"    n_answered = n_answered + d.na,"
	"    answered_at = CASE WHEN answered_at IS NULL AND n_answered + d.na >= addresses_total"
	"                 THEN now() ELSE answered_at END"
	"  FROM d WHERE jobs.id = d.job_id RETURNING d.stored)"
	" SELECT coalesce(sum(stored), 0) FROM j";

/* One result of the group, where it came from. */
struct pick {
	const emv_wire_results *w;
	const emv_wire_result *x;
	size_t seq;	   /* arrival order within the group */
	unsigned attempts; /* of every row of this address in the group */
};

/* by address, then final before temporary, then the later one first */
static int pick_cmp(const void *pa, const void *pb)
{
	const struct pick *a = pa, *b = pb;
	int c = strcmp(a->w->job_id, b->w->job_id);
	if (c)
		return c;
	if (a->x->id != b->x->id)
		return a->x->id < b->x->id ? -1 : 1;
	if (a->x->temporary != b->x->temporary)
		return a->x->temporary ? 1 : -1;
	return a->seq < b->seq ? 1 : a->seq > b->seq ? -1 : 0;
}

/*
 * One row per address of the group: the final one if any, else the latest;
 * its attempts are those of every row of the address in the group (the
 * retry topic brings the same address back).  Sorting here keeps the sort
 * out of the database's transaction.  Returns how many of picks[] to store;
 * they are moved to the front.
 */
static size_t pick_rows(struct pick *picks, size_t n)
{
	size_t out = 0;
	qsort(picks, n, sizeof *picks, pick_cmp);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		unsigned att = 0;
		while (j < n && picks[j].x->id == picks[i].x->id && strcmp(picks[j].w->job_id, picks[i].w->job_id) == 0)
			att += picks[j++].x->attempts;
		picks[out] = picks[i];
		picks[out++].attempts = att;
		i = j;
	}
	return out;
}

/* COPY text field: wire data is validated printable ASCII / UTF-8 already;
 * escape the COPY specials anyway. */
static void cb_field(emv_buf *b, const char *s, int last)
{
	if (!s || !*s) {
		emv_buf_add(b, "\\N", 2);
	} else {
		for (; *s; s++) {
			if (*s == '\\')
				emv_buf_add(b, "\\\\", 2);
			else if (*s == '\t')
				emv_buf_add(b, "\\t", 2);
			else if (*s == '\n')
				emv_buf_add(b, "\\n", 2);
			else if (*s == '\r')
				emv_buf_add(b, "\\r", 2);
			else
				emv_buf_add(b, s, 1);
		}
	}
	emv_buf_add(b, last ? "\n" : "\t", 1);
}

static void cb_num(emv_buf *b, long long v, int last)
{
	char n[24];
	snprintf(n, sizeof n, "%lld", v);
	cb_field(b, n, last);
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok) {
		/* with the connection gone there is no result to read the error from */
		const char *m = PQresultErrorMessage(r);
		emv_set_err(err, errlen, "%s", m && *m ? m : PQerrorMessage(c));
	}
	PQclear(r);
	return ok;
}

/* A failed result's SQLSTATE into state ("" when there is none: the
 * connection is gone). */
static void note_state(PGresult *r, char state[6])
{
	const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	emv_strlcpy(state, s ? s : "", 6);
}

/* SQLSTATE classes 22 (data exception: a value out of range, bad text)
 * and 23 (integrity constraint violation): what a message holds, not the
 * database's state; storing it again fails again. */
static int poison_state(const char *state)
{
	return state[0] == '2' && (state[1] == '2' || state[1] == '3');
}

/* Store one group of decoded messages in one transaction; on failure the
 * SQLSTATE in state. */
static int store(PGconn *c, const emv_sink_params *p, emv_wire_results **msgs, size_t n, uint64_t *stored,
		 char state[6], char *err, size_t errlen)
{
	emv_buf b = { NULL, 0, 0 };
	PGresult *r;
	struct pick *picks;
	size_t total = 0, k = 0, npicks;
	int ok = 0;

	state[0] = '\0';
	for (size_t m = 0; m < n; m++)
		total += msgs[m]->n_results;
	picks = emv_xcalloc(total ? total : 1, sizeof *picks);
	for (size_t m = 0; m < n; m++)
		for (size_t i = 0; i < msgs[m]->n_results; i++, k++) {
			picks[k].w = msgs[m];
			picks[k].x = &msgs[m]->results[i];
			picks[k].seq = k;
		}
	npicks = pick_rows(picks, total);
	for (size_t k2 = 0; k2 < npicks; k2++) {
		const emv_wire_results *w = picks[k2].w;
		const emv_wire_result *x = picks[k2].x;
		cb_field(&b, w->job_id, 0);
		cb_num(&b, (long long)x->id, 0);
		cb_field(&b, emv_status_name(x->status), 0);
		cb_field(&b, emv_reason_name(x->reason), 0);
		cb_field(&b, x->temporary ? "f" : "t", 0);
		cb_num(&b, x->flags, 0);
		/* the result's own evidence; the message's as the fallback */
		cb_field(&b, x->mx_host[0] ? x->mx_host : w->mx, 0);
		cb_field(&b, x->mx_ip, 0);
		cb_field(&b, x->source_ip[0] ? x->source_ip : w->source_ip, 0);
		cb_field(&b, w->region, 0);
		cb_field(&b, x->tls[0] ? x->tls : w->tls, 0);
		cb_field(&b, x->catch_all ? "t" : "f", 0);
		if (x->smtp_code)
			cb_num(&b, x->smtp_code, 0);
		else
			cb_field(&b, NULL, 0);
		cb_field(&b, x->enhanced_code, 0);
		cb_field(&b, x->reply, 0);
		cb_num(&b, picks[k2].attempts, 0);
		cb_num(&b, x->duration_ms, 0);
		cb_field(&b, x->detail, 0);
		cb_num(&b, x->temporary ? x->retry_at_ms : 0, 1);
	}
	free(picks);
	if (!exec_ok(c, staging_sql, err, errlen) || !exec_ok(c, "BEGIN", err, errlen))
		goto out;
	r = PQexec(c, "COPY results_in FROM STDIN");
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		emv_set_err(err, errlen, "%s", PQresultErrorMessage(r));
		PQclear(r);
		goto rollback;
	}
	PQclear(r);
	if ((b.len && PQputCopyData(c, b.p, (int)b.len) != 1) || PQputCopyEnd(c, NULL) != 1) {
		emv_set_err(err, errlen, "%s", PQerrorMessage(c));
		goto rollback;
	}
	r = PQgetResult(c);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		emv_set_err(err, errlen, "%s", PQresultErrorMessage(r));
		note_state(r, state);
		PQclear(r);
		goto rollback;
	}
	PQclear(r);
	while ((r = PQgetResult(c)))
		PQclear(r);
	{
		const emv_vcache_cfg *vc = p->cache;
		const char *v[2] = { vc && !vc->off ? "t" : "f", vc && vc->global ? "t" : "f" };
		r = PQexecParams(c, upsert_sql, 2, NULL, v, NULL, NULL, 0);
	}
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		emv_set_err(err, errlen, "%s", PQresultErrorMessage(r));
		note_state(r, state);
		PQclear(r);
		goto rollback;
	}
	*stored += strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (!exec_ok(c, "TRUNCATE results_in", err, errlen) || !exec_ok(c, "COMMIT", err, errlen))
		goto rollback;
	ok = 1;
	goto out;
rollback:
	exec_ok(c, "ROLLBACK", NULL, 0);
out:
	free(b.p);
	return ok ? EMV_OK : EMV_ERR;
}

int emv_sink_run(PGconn *c, const emv_sink_params *p, volatile int *stop, emv_sink_stats *st, char *err, size_t errlen)
{
	char errstr[512];
	rd_kafka_conf_t *conf = emv_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_message_t **held = emv_xcalloc((size_t)p->group_max, sizeof *held);
	emv_wire_results **msgs = emv_xcalloc((size_t)p->group_max, sizeof *msgs);
	size_t *from = emv_xcalloc((size_t)p->group_max, sizeof *from); /* msgs[i] came from held[from[i]] */
	char state[6];
	uint64_t last_input = emv_now_ms(), last_expire = 0;
	int rc = EMV_ERR;

	memset(st, 0, sizeof *st);
	if (emv_kafka_conf_apply(conf, p->kafka_conf, err, errlen) != EMV_OK) {
		rd_kafka_conf_destroy(conf);
		free(held);
		free(msgs);
		return EMV_ERR;
	}
	if (rd_kafka_conf_set(conf, "bootstrap.servers", p->brokers, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "group.id", p->group, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
		emv_set_err(err, errlen, "Kafka configuration: %s", errstr);
		rd_kafka_conf_destroy(conf);
		free(held);
		free(msgs);
		return EMV_ERR;
	}
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
	if (!rk) {
		emv_set_err(err, errlen, "Kafka consumer: %s", errstr);
		rd_kafka_conf_destroy(conf);
		free(held);
		free(msgs);
		return EMV_ERR;
	}
	if (emv_kafka_ensure_topic(rk, p->topic, 16, err, errlen) != EMV_OK) {
		rd_kafka_destroy(rk);
		free(held);
		free(msgs);
		return EMV_ERR;
	}
	rd_kafka_poll_set_consumer(rk);
	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, p->topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);

	while (!*stop) {
		size_t nheld = 0, nmsgs = 0, bytes = 0;
		expire_due(c, p, &last_expire, st);
		/* gather a group: wait up to 200 ms for the first, then take what
		 * is there, up to group_max messages or 8 MiB (about 50,000
		 * results: a transaction that sorts in memory) */
		while (nheld < (size_t)p->group_max && bytes < SINK_GROUP_BYTES) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, nheld ? 0 : 200);
			if (!m)
				break;
			if (m->err) {
				if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)
					/* the broker no longer has what we were to read
					 * next: retention deleted results never stored */
					emv_log(EMV_LOG_ERROR, "sink",
						"results lost before they were stored (%s): the topic's retention "
						"deleted them; the affected jobs need their addresses split again",
						rd_kafka_message_errstr(m));
				else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					emv_log(EMV_LOG_WARN, "sink", "consumer: %s", rd_kafka_message_errstr(m));
				rd_kafka_message_destroy(m);
				continue;
			}
			bytes += m->len;
			held[nheld++] = m;
		}
		if (nheld == 0) {
			if (p->idle_exit_ms > 0 && emv_now_ms() - last_input >= (uint64_t)p->idle_exit_ms)
				break;
			continue;
		}
		last_input = emv_now_ms();
		for (size_t i = 0; i < nheld; i++) {
			char werr[EMV_WIRE_ERR_MAX];
			emv_wire_results *w = NULL;
			emv_wire_status ws = emv_wire_results_decode(held[i]->payload, held[i]->len, &w, werr,
								     sizeof werr);
			st->messages++;
			if (ws != EMV_WIRE_OK) {
				emv_log(EMV_LOG_WARN, "sink", "skipping %s [%d] offset %" PRId64 ": %s (%s)",
					rd_kafka_topic_name(held[i]->rkt), (int)held[i]->partition, held[i]->offset,
					emv_wire_status_name(ws), werr);
				st->skipped++;
				continue;
			}
			st->results += w->n_results;
			from[nmsgs] = i;
			msgs[nmsgs++] = w;
		}
		/* the group is stored, or retried after reconnecting; never half */
		while (!*stop && store(c, p, msgs, nmsgs, &st->stored, state, err, errlen) != EMV_OK) {
			if (poison_state(state))
				break;
			st->db_retries++;
			emv_log(EMV_LOG_WARN, "sink", "storing %zu messages failed (%s); reconnecting", nmsgs, err);
			sleep(1);
			if (PQstatus(c) != CONNECTION_OK)
				PQreset(c);
		}
		if (!*stop && poison_state(state)) {
			/* A message holds data PostgreSQL refuses: retrying the group
			 * would block its partitions for ever.  Each message alone;
			 * the one refused for its data is skipped and counted like a
			 * malformed one, the others are stored. */
			emv_log(EMV_LOG_WARN, "sink",
				"a group of %zu messages holds data the database refuses (SQLSTATE %s); "
				"storing them one at a time",
				nmsgs, state);
			for (size_t i = 0; i < nmsgs && !*stop; i++) {
				while (!*stop && store(c, p, &msgs[i], 1, &st->stored, state, err, errlen) != EMV_OK) {
					if (poison_state(state)) {
						rd_kafka_message_t *m = held[from[i]];
						emv_log(EMV_LOG_WARN, "sink",
							"skipping %s [%d] offset %" PRId64
							": the database refuses its data (SQLSTATE %s): %s",
							rd_kafka_topic_name(m->rkt), (int)m->partition, m->offset,
							state, emv_trim(err));
						st->skipped++;
						break;
					}
					st->db_retries++;
					emv_log(EMV_LOG_WARN, "sink", "storing a message failed (%s); reconnecting",
						err);
					sleep(1);
					if (PQstatus(c) != CONNECTION_OK)
						PQreset(c);
				}
			}
		}
		for (size_t i = 0; i < nmsgs && p->reply_classes && !*stop; i++)
			for (size_t k = 0; k < msgs[i]->n_results; k++) {
				unsigned cls = msgs[i]->results[k].smtp_code / 100;
				__atomic_add_fetch(&p->reply_classes[cls >= 2 && cls <= 5 ? cls : 0], 1,
						   __ATOMIC_RELAXED);
			}
		for (size_t i = 0; i < nmsgs; i++)
			emv_wire_results_free(msgs[i]);
		if (*stop) {
			for (size_t i = 0; i < nheld; i++)
				rd_kafka_message_destroy(held[i]);
			break;
		}
		st->transactions++;
		/* only now: the offsets after every message of the group */
		for (size_t i = 0; i < nheld; i++) {
			rd_kafka_topic_partition_list_t *o = rd_kafka_topic_partition_list_new(1);
			rd_kafka_topic_partition_list_add(o, rd_kafka_topic_name(held[i]->rkt), held[i]->partition)
				->offset = held[i]->offset + 1;
			rd_kafka_offsets_store(rk, o);
			rd_kafka_topic_partition_list_destroy(o);
			if (p->stored_bytes)
				__atomic_add_fetch(p->stored_bytes, held[i]->len, __ATOMIC_RELAXED);
			rd_kafka_message_destroy(held[i]);
		}
		rd_kafka_commit(rk, NULL, 0);
	}
	rc = EMV_OK;
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	free(held);
	free(msgs);
	free(from);
	return rc;
}
