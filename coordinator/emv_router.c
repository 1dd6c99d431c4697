/* SPDX-License-Identifier: Apache-2.0 */
/* emv_router.c - ip-state into PostgreSQL, rerouted batches to another
 * region (see emv_router.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include "emv_defaults.h"
#include "emv_domstate.h"
#include "emv_kafka.h"
#include "emv_router.h"
#include "emv_util.h"
#include "emv_wire.h"

void emv_router_params_default(emv_router_params *p)
{
	memset(p, 0, sizeof *p);
	p->group = EMV_GROUP_ROUTER;
	p->reroute_topic = EMV_TOPIC_REROUTE;
	p->ipstate_topic = EMV_TOPIC_IP_STATE;
	p->domstate_topic = EMV_TOPIC_DOMAIN_STATE;
	p->batches_topic = EMV_TOPIC_BATCHES;
	p->retry_topic = EMV_TOPIC_RETRY;
	p->live_ms = EMV_DEF_ROUTER_LIVE_MS;
	p->wait_ms = EMV_DEF_ROUTER_WAIT_MS;
}

struct router {
	const emv_router_params *p;
	PGconn *c;
	rd_kafka_t *consumer, *producer;
	emv_router_stats *st;
	int delivered;		/* delivery report of the last produce: 1 ok, -1 failed, 0 pending */
	emv_kafka_known topics; /* region topics known to exist */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct router *r = opaque;
	if (m->err)
		emv_log(EMV_LOG_WARN, "router", "batch to %s not delivered: %s", rd_kafka_topic_name(m->rkt),
			rd_kafka_err2str(m->err));
	r->delivered = m->err ? -1 : 1;
}

/* ---- ip-state ---- */

static int store_ipstate(struct router *r, const rd_kafka_message_t *m, char *err, size_t errlen)
{
	emv_wire_ipstate x;
	char werr[EMV_WIRE_ERR_MAX], until[24], since[24], updated[24], strikes[16], rate[16], rcpts[24], blocks[24],
		sessions[24];
	PGresult *res;

	if (!m->payload || m->len == 0) { /* a tombstone: the key "ip|provider" is gone */
		char key[EMV_WIRE_IP_MAX + EMV_WIRE_PROVIDER_MAX + 4], *bar;
		const char *v[2];
		if (!m->key || m->key_len >= sizeof key)
			return EMV_OK;
		memcpy(key, m->key, m->key_len);
		key[m->key_len] = '\0';
		if (!(bar = strchr(key, '|')))
			return EMV_OK;
		*bar = '\0';
		v[0] = key;
		v[1] = bar + 1;
		res = PQexecParams(r->c, "DELETE FROM ip_state WHERE ip = $1 AND provider = $2", 2, NULL, v, NULL, NULL,
				   0);
	} else {
		if (emv_wire_ipstate_decode(m->payload, m->len, &x, werr, sizeof werr) != EMV_WIRE_OK) {
			emv_log(EMV_LOG_WARN, "router", "skipping %s [%d] offset %" PRId64 ": %s",
				rd_kafka_topic_name(m->rkt), (int)m->partition, m->offset, werr);
			r->st->skipped++;
			return EMV_OK;
		}
		snprintf(until, sizeof until, "%" PRId64, x.until_ms);
		snprintf(since, sizeof since, "%" PRId64, x.since_ms);
		snprintf(updated, sizeof updated, "%" PRId64, x.updated_ms);
		snprintf(strikes, sizeof strikes, "%u", x.strikes);
		snprintf(rate, sizeof rate, "%u", x.rate_permille);
		snprintf(rcpts, sizeof rcpts, "%" PRIu64, x.rcpts);
		snprintf(blocks, sizeof blocks, "%" PRIu64, x.blocks);
		snprintf(sessions, sizeof sessions, "%" PRIu64, x.sessions);
		{
			const char *v[14] = { x.ip,    x.provider, x.region, x.state, until,  strikes, x.last_reply,
					      updated, x.worker,   since,    rcpts,   blocks, rate,    sessions };
			/* times travel as unix ms; 0 is "none" */
			res = PQexecParams(
				r->c,
				"INSERT INTO ip_state AS s (ip, provider, region, state, until, strikes, last_reply,"
				"  updated_at, worker, since, rcpts, blocks, rate_permille, sessions)"
				" VALUES ($1, $2, $3, $4, CASE WHEN $5::bigint > 0 THEN to_timestamp($5::bigint / 1000.0) END,"
				"  $6::int, $7, to_timestamp($8::bigint / 1000.0), $9,"
				"  CASE WHEN $10::bigint > 0 THEN to_timestamp($10::bigint / 1000.0) END,"
				"  $11::bigint, $12::bigint, $13::int, $14::bigint)"
				" ON CONFLICT (ip, provider) DO UPDATE SET region = excluded.region, state = excluded.state,"
				"  until = excluded.until, strikes = excluded.strikes, last_reply = excluded.last_reply,"
				"  updated_at = excluded.updated_at, worker = excluded.worker, since = excluded.since,"
				"  rcpts = excluded.rcpts, blocks = excluded.blocks, rate_permille = excluded.rate_permille,"
				"  sessions = excluded.sessions"
				" WHERE s.updated_at <= excluded.updated_at",
				14, NULL, v, NULL, NULL, 0);
		}
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		emv_set_err(err, errlen, "ip_state: %s", PQerrorMessage(r->c));
		PQclear(res);
		return EMV_ERR;
	}
	PQclear(res);
	r->st->ip_states++;
	return EMV_OK;
}

/* ---- domain-state ---- */

/* A unix-ms time as a query parameter: "" (NULL) when 0. */
static const char *ms_param(char *buf, size_t len, int64_t ms)
{
	if (ms <= 0)
		return NULL;
	snprintf(buf, len, "%" PRId64, ms);
	return buf;
}

static int store_domstate(struct router *r, const rd_kafka_message_t *m, char *err, size_t errlen)
{
	emv_wire_domstate x;
	char why[EMV_WIRE_ERR_MAX], n[6][16], t[8][24];
	const char *v[16];
	PGresult *res;

	if (!m->payload || m->len == 0)
		return EMV_OK; /* a tombstone: the row ages like any other */
	if (emv_wire_domstate_decode(m->payload, m->len, &x, why, sizeof why) != EMV_WIRE_OK ||
	    emv_domstate_check(NULL, &x, (int64_t)emv_wall_ms(), why, sizeof why) != EMV_OK) {
		emv_log(EMV_LOG_WARN, "router", "skipping %s [%d] offset %" PRId64 ": %s", rd_kafka_topic_name(m->rkt),
			(int)m->partition, m->offset, why);
		r->st->skipped++;
		return EMV_OK;
	}
	v[0] = x.kind == EMV_WIRE_DS_HOST ? "host" : "domain";
	v[1] = x.name;
	v[2] = x.worker;
	v[3] = ms_param(t[0], sizeof t[0], x.updated_ms ? x.updated_ms : (int64_t)emv_wall_ms());
	snprintf(n[0], sizeof n[0], "%" PRId32, x.rcpt_per_txn);
	v[4] = x.rcpt_per_txn_at ? n[0] : NULL;
	v[5] = ms_param(t[1], sizeof t[1], x.rcpt_per_txn_at);
	snprintf(n[1], sizeof n[1], "%" PRId32, x.errors_per_session);
	v[6] = x.errors_per_session_at ? n[1] : NULL;
	v[7] = ms_param(t[2], sizeof t[2], x.errors_per_session_at);
	snprintf(n[2], sizeof n[2], "%" PRId32, x.sessions_ok);
	v[8] = x.sessions_ok_at ? n[2] : NULL;
	v[9] = ms_param(t[3], sizeof t[3], x.sessions_ok_at);
	v[10] = x.backoff_at ? ms_param(t[4], sizeof t[4], x.backoff_until_ms) : NULL;
	snprintf(n[3], sizeof n[3], "%" PRId32, x.backoff_ms);
	v[11] = x.backoff_at ? n[3] : NULL;
	v[12] = x.accepts_all_at ? (x.accepts_all ? "t" : "f") : NULL;
	v[13] = ms_param(t[5], sizeof t[5], x.accepts_all_at);
	v[14] = x.catch_all_at ? (x.catch_all ? "t" : "f") : NULL;
	v[15] = ms_param(t[6], sizeof t[6], x.catch_all_at);
	res = PQexecParams(r->c,
			   "INSERT INTO domain_state AS s (kind, name, worker, updated_at, rcpt_per_txn, rcpt_per_txn_at,"
			   "  errors_per_session, errors_per_session_at, sessions_ok, sessions_ok_at, backoff_until,"
			   "  backoff_ms, accepts_all, accepts_all_at, catch_all, catch_all_at)"
			   " VALUES ($1, $2, $3, to_timestamp($4::bigint / 1000.0), $5::int,"
			   "  to_timestamp($6::bigint / 1000.0), $7::int, to_timestamp($8::bigint / 1000.0), $9::int,"
			   "  to_timestamp($10::bigint / 1000.0), to_timestamp($11::bigint / 1000.0), $12::int,"
			   "  $13::boolean, to_timestamp($14::bigint / 1000.0), $15::boolean,"
			   "  to_timestamp($16::bigint / 1000.0))"
			   " ON CONFLICT (kind, name) DO UPDATE SET worker = excluded.worker,"
			   "  updated_at = excluded.updated_at, rcpt_per_txn = excluded.rcpt_per_txn,"
			   "  rcpt_per_txn_at = excluded.rcpt_per_txn_at, errors_per_session = excluded.errors_per_session,"
			   "  errors_per_session_at = excluded.errors_per_session_at, sessions_ok = excluded.sessions_ok,"
			   "  sessions_ok_at = excluded.sessions_ok_at, backoff_until = excluded.backoff_until,"
			   "  backoff_ms = excluded.backoff_ms, accepts_all = excluded.accepts_all,"
			   "  accepts_all_at = excluded.accepts_all_at, catch_all = excluded.catch_all,"
			   "  catch_all_at = excluded.catch_all_at"
			   " WHERE s.updated_at <= excluded.updated_at",
			   16, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		emv_set_err(err, errlen, "domain_state: %s", PQerrorMessage(r->c));
		PQclear(res);
		return EMV_ERR;
	}
	PQclear(res);
	r->st->domain_states++;
	return EMV_OK;
}

/* ---- rerouting ---- */

/* The region to send b to ("" = none: wait until *due_ms). */
static int choose(struct router *r, const emv_wire_batch *b, char *region, size_t regionlen, int64_t *due_ms, char *err,
		  size_t errlen)
{
	char live[24];
	const char *v[3] = { b->avoid_regions, b->provider, live };
	PGresult *res;

	region[0] = '\0';
	*due_ms = 0;
	snprintf(live, sizeof live, "%d", r->p->live_ms);
	/* live regions, not avoided, with addresses not quarantined (nor
	 * held) for the provider: the one with the most */
	res = PQexecParams(r->c,
			   "SELECT w.region FROM ip_state w"
			   " WHERE w.provider = '' AND w.state <> 'held' AND w.region <> ''"
			   "  AND w.updated_at > now() - $3::int * interval '1 millisecond'"
			   "  AND NOT (w.region = ANY (string_to_array($1, ',')))"
			   "  AND NOT EXISTS (SELECT 1 FROM ip_state q WHERE q.ip = w.ip AND q.provider = $2"
			   "                  AND q.state = 'quarantined' AND q.until > now())"
			   " GROUP BY w.region ORDER BY count(*) DESC, w.region LIMIT 1",
			   3, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		emv_set_err(err, errlen, "choosing a region: %s", PQerrorMessage(r->c));
		PQclear(res);
		return EMV_ERR;
	}
	if (PQntuples(res) == 1) {
		emv_strlcpy(region, PQgetvalue(res, 0, 0), regionlen);
		PQclear(res);
		return EMV_OK;
	}
	PQclear(res);
	/* none: wait for the first quarantine of this provider to end */
	res = PQexecParams(r->c,
			   "SELECT coalesce((extract(epoch FROM min(until)) * 1000)::bigint, 0) FROM ip_state"
			   " WHERE provider = $1 AND state = 'quarantined' AND until > now()"
			   "  AND updated_at > now() - $2::int * interval '1 millisecond'",
			   2, NULL, v + 1, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		emv_set_err(err, errlen, "choosing a region: %s", PQerrorMessage(r->c));
		PQclear(res);
		return EMV_ERR;
	}
	*due_ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (*due_ms <= 0)
		*due_ms = (int64_t)emv_wall_ms() + r->p->wait_ms;
	return EMV_OK;
}

/* Route one reroute message; EMV_ERR keeps it (retried). */
static int reroute(struct router *r, const rd_kafka_message_t *m, char *err, size_t errlen)
{
	emv_wire_batch *b = NULL;
	char werr[EMV_WIRE_ERR_MAX], region[EMV_WIRE_REGION_MAX + 1], topic[300], key[EMV_WIRE_KEY_MAX];
	int64_t due_ms;
	uint8_t *buf;
	size_t len;
	rd_kafka_resp_err_t e;
	emv_wire_status ws = emv_wire_batch_decode(m->payload, m->len, &b, werr, sizeof werr);

	if (ws != EMV_WIRE_OK) {
		emv_log(EMV_LOG_WARN, "router", "skipping %s [%d] offset %" PRId64 ": %s (%s)",
			rd_kafka_topic_name(m->rkt), (int)m->partition, m->offset, emv_wire_status_name(ws), werr);
		r->st->skipped++;
		return EMV_OK;
	}
	r->st->reroutes++;
	if (choose(r, b, region, sizeof region, &due_ms, err, errlen) != EMV_OK) {
		emv_wire_batch_free(b);
		return EMV_ERR;
	}
	if (region[0]) {
		emv_kafka_region_topic(topic, sizeof topic, r->p->batches_topic, region);
		if (emv_kafka_ensure_topic_once(r->producer, &r->topics, topic, EMV_TOPIC_PARTITIONS, err, errlen) !=
		    EMV_OK) {
			emv_wire_batch_free(b);
			return EMV_ERR;
		}
		emv_strlcpy(b->region_hint, region, sizeof b->region_hint);
		b->not_before_ms = 0;
		emv_log(EMV_LOG_INFO, "router", "batch %s of %s (%zu addresses, provider %s): %s -> region %s",
			b->batch_id, b->domain, b->n_addresses, b->provider[0] ? b->provider : "?", b->avoid_regions,
			region);
	} else {
		/* nowhere to go: wait on the shared retry topic, and let every
		 * region try again once a cool-down has ended */
		emv_strlcpy(topic, r->p->retry_topic, sizeof topic);
		emv_log(EMV_LOG_INFO, "router",
			"batch %s of %s (provider %s): every live region is quarantined for it; waiting %" PRId64 " s",
			b->batch_id, b->domain, b->provider[0] ? b->provider : "?",
			(due_ms - (int64_t)emv_wall_ms()) / 1000);
		b->region_hint[0] = '\0';
		b->avoid_regions[0] = '\0';
		b->not_before_ms = due_ms;
	}
	if (emv_wire_batch_encode(b, &buf, &len, werr, sizeof werr) != EMV_WIRE_OK) {
		emv_log(EMV_LOG_WARN, "router", "batch %s: cannot encode: %s; skipped", b->batch_id, werr);
		r->st->skipped++;
		emv_wire_batch_free(b);
		return EMV_OK;
	}
	if (m->key && m->key_len < sizeof key) {
		memcpy(key, m->key, m->key_len);
		key[m->key_len] = '\0';
	} else {
		emv_wire_batch_key(b->domain, 0, key, sizeof key);
	}
	r->delivered = 0;
	e = rd_kafka_producev(r->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
			      RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
	if (e) {
		free(buf);
		emv_set_err(err, errlen, "producing to %s: %s", topic, rd_kafka_err2str(e));
		emv_wire_batch_free(b);
		return EMV_ERR;
	}
	rd_kafka_flush(r->producer, 30000);
	if (r->delivered != 1) {
		emv_set_err(err, errlen, "batch %s to %s: not acknowledged", b->batch_id, topic);
		emv_wire_batch_free(b);
		return EMV_ERR;
	}
	if (region[0])
		r->st->routed++;
	else
		r->st->waited++;
	emv_wire_batch_free(b);
	return EMV_OK;
}

/* ---- the loop ---- */

static rd_kafka_t *client(struct router *r, rd_kafka_type_t type, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = emv_kafka_conf_new();
	char errstr[256];
	rd_kafka_t *rk;

	if (emv_kafka_conf_apply(conf, r->p->kafka_conf, err, errlen) != EMV_OK) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	if (rd_kafka_conf_set(conf, "bootstrap.servers", r->p->brokers, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    (type == RD_KAFKA_CONSUMER &&
	     (rd_kafka_conf_set(conf, "group.id", r->p->group, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	      rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	      rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	      rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof errstr) != RD_KAFKA_CONF_OK)) ||
	    (type == RD_KAFKA_PRODUCER &&
	     (rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	      rd_kafka_conf_set(conf, "message.max.bytes", "4194304", errstr, sizeof errstr) != RD_KAFKA_CONF_OK))) {
		emv_set_err(err, errlen, "Kafka configuration: %s", errstr);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	if (type == RD_KAFKA_PRODUCER) {
		rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
		rd_kafka_conf_set_opaque(conf, r);
	}
	if (!(rk = rd_kafka_new(type, conf, errstr, sizeof errstr))) {
		emv_set_err(err, errlen, "Kafka %s: %s", type == RD_KAFKA_CONSUMER ? "consumer" : "producer", errstr);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

int emv_router_run(PGconn *c, const emv_router_params *p, volatile int *stop, emv_router_stats *st, char *err,
		   size_t errlen)
{
	struct router r;
	rd_kafka_topic_partition_list_t *topics;
	uint64_t last_input = emv_now_ms(), last_commit = 0;
	int rc = EMV_ERR, uncommitted = 0;

	memset(&r, 0, sizeof r);
	memset(st, 0, sizeof *st);
	r.p = p;
	r.c = c;
	r.st = st;
	if (!(r.consumer = client(&r, RD_KAFKA_CONSUMER, err, errlen)) ||
	    !(r.producer = client(&r, RD_KAFKA_PRODUCER, err, errlen)))
		goto out;
	if (emv_kafka_ensure_topic(r.producer, p->reroute_topic, EMV_TOPIC_PARTITIONS, err, errlen) != EMV_OK ||
	    emv_kafka_ensure_topic(r.producer, p->retry_topic, EMV_TOPIC_PARTITIONS, err, errlen) != EMV_OK ||
	    emv_kafka_ensure_compacted_topic(r.producer, p->ipstate_topic, err, errlen) != EMV_OK ||
	    (p->domstate_topic && p->domstate_topic[0] &&
	     emv_kafka_ensure_compacted_topic(r.producer, p->domstate_topic, err, errlen) != EMV_OK))
		goto out;
	rd_kafka_poll_set_consumer(r.consumer);
	topics = rd_kafka_topic_partition_list_new(3);
	rd_kafka_topic_partition_list_add(topics, p->reroute_topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_topic_partition_list_add(topics, p->ipstate_topic, RD_KAFKA_PARTITION_UA);
	if (p->domstate_topic && p->domstate_topic[0])
		rd_kafka_topic_partition_list_add(topics, p->domstate_topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(r.consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);

	while (!*stop) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(r.consumer, 200);
		if (uncommitted && (!m || emv_now_ms() - last_commit >= 1000)) {
			rd_kafka_commit(r.consumer, NULL, 1);
			uncommitted = 0;
			last_commit = emv_now_ms();
		}
		if (!m) {
			if (p->idle_exit_ms > 0 && emv_now_ms() - last_input >= (uint64_t)p->idle_exit_ms)
				break;
			continue;
		}
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				emv_log(EMV_LOG_WARN, "router", "consumer: %s", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			continue;
		}
		last_input = emv_now_ms();
		for (;;) {
			const char *tn = rd_kafka_topic_name(m->rkt);
			int x = strcmp(tn, p->ipstate_topic) == 0 ? store_ipstate(&r, m, err, errlen)
				: p->domstate_topic && strcmp(tn, p->domstate_topic) == 0
					? store_domstate(&r, m, err, errlen)
					: reroute(&r, m, err, errlen);
			if (x == EMV_OK || *stop)
				break;
			/* kept and tried again: nothing is lost, nothing skipped */
			st->db_retries++;
			emv_log(EMV_LOG_WARN, "router", "%s; trying again", err);
			sleep(1);
			if (PQstatus(c) != CONNECTION_OK)
				PQreset(c);
		}
		if (!*stop) {
			rd_kafka_topic_partition_list_t *o = rd_kafka_topic_partition_list_new(1);
			rd_kafka_topic_partition_list_add(o, rd_kafka_topic_name(m->rkt), m->partition)->offset =
				m->offset + 1;
			rd_kafka_offsets_store(r.consumer, o);
			rd_kafka_topic_partition_list_destroy(o);
			uncommitted = 1;
		}
		rd_kafka_message_destroy(m);
	}
	if (uncommitted)
		rd_kafka_commit(r.consumer, NULL, 0);
	rc = EMV_OK;
out:
	if (r.consumer) {
		rd_kafka_consumer_close(r.consumer);
		rd_kafka_destroy(r.consumer);
	}
	if (r.producer)
		rd_kafka_destroy(r.producer);
	emv_kafka_known_free(&r.topics);
	return rc;
}
