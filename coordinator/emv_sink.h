/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_sink.h - the results sink (docs/design.md §2 step 4): VerifyResults from
 * Kafka into PostgreSQL, exactly once.
 *
 * Messages are read in groups; each group is one transaction: COPY into a
 * staging table, one upsert into results keyed by (job, address) that never
 * replaces a final result (a replayed or late temporary one changes
 * nothing), the jobs' counters moved by what became final, jobs marked done
 * when every row is final, and the verdict cache's entries of the final
 * verdicts (emv_vcache.h).  Offsets are committed only after the
 * transaction commits (at-least-once delivery + idempotent upsert = each
 * result stored once).  A malformed message is logged with its
 * topic/partition/offset, counted and skipped; results for unknown
 * addresses are dropped.  A database error keeps the group and retries it
 * after reconnecting; a data error (SQLSTATE class 22 or 23: a value the
 * schema refuses) is no reason to retry: the group is stored message by
 * message and the message refused for its data is logged with its offset,
 * counted as skipped and passed over, like a malformed one.
 *
 * The sink also counts each address's first answer (jobs.n_answered,
 * answered_at) and, every expire_every_ms, makes the jobs past their
 * deadline or straggler wait done (emv_deadline.h).
 */
#ifndef EMV_SINK_H
#define EMV_SINK_H

#include <stdint.h>
#include <libpq-fe.h>

typedef struct {
	const char *brokers;
	const char *topic;	       /* EMV_TOPIC_RESULTS */
	const char *group;	       /* consumer group (EMV_GROUP_SINK) */
	int group_max;		       /* messages per transaction (500) */
	int idle_exit_ms;	       /* stop after this long without messages (0: never) */
	const char *const *kafka_conf; /* extra librdkafka "key=value" settings (TLS, SASL), NULL-terminated */
	uint64_t *stored_bytes;	       /* embedded: add the bytes of every message stored (emv_results_gate) */
	const struct emv_vcache_cfg *cache; /* the verdict cache (emv_vcache.h) written with the results;
	                                  NULL or off: not written */
	uint64_t *reply_classes;       /* [6]: results stored by the class of their deciding SMTP reply
	                             (0: none, 2..5: 2xx..5xx); atomics, for metrics (NULL: none) */
	int expire_every_ms;	       /* jobs' time limits checked this often (EMV_DEF_SINK_EXPIRE_MS; 0: never) */
} emv_sink_params;

void emv_sink_params_default(emv_sink_params *p);

typedef struct {
	uint64_t messages, results, stored, skipped, transactions, db_retries;
	uint64_t expired_jobs, expired; /* jobs made done by a time limit, and their rows made final then */
} emv_sink_stats;

/* Run until *stop becomes non-zero or idle_exit_ms passes without input. */
int emv_sink_run(PGconn *c, const emv_sink_params *p, volatile int *stop, emv_sink_stats *st, char *err, size_t errlen);

#endif
