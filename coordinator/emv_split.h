/*
 * emv_split.h - a job's addresses become VerifyBatch messages on Kafka
 * (design §2 step 2).
 *
 * Pending addresses (usable, not duplicates) are read in (domain, id)
 * order with keyset pagination, cut into batches of at most batch_max per
 * domain and produced to the batches topic with key "domain" — or
 * "domain#k" for the k-th batch of a hot domain, k < max_shards — so one
 * huge domain spreads over a bounded number of partitions.  The producer is
 * idempotent; every delivery report is checked; after each chunk the
 * producer is flushed and the split cursor committed, so a restarted
 * coordinator resumes after the last delivered batch (a batch produced but
 * not yet recorded may be produced again: the results sink is idempotent).
 */
#ifndef EMV_SPLIT_H
#define EMV_SPLIT_H

#include <stdint.h>
#include <libpq-fe.h>

typedef struct {
	const char *brokers;      /* bootstrap.servers */
	const char *topic;        /* "emailverify.batches" */
	int partitions;           /* when the topic must be created (16) */
	int batch_max;            /* addresses per batch (500) */
	int max_shards;           /* batches of one domain spread over at most this many keys (4) */
	int chunk;                /* rows fetched at a time; progress is recorded per chunk (100000) */
	int flush_timeout_ms;     /* bound on waiting for deliveries (30000) */
	int skip_final;           /* leave out addresses that already have a final result (a re-split) */
	const char *const *kafka_conf; /* extra librdkafka "key=value" settings (TLS, SASL), NULL-terminated */
	const struct emv_routes *routes; /* domain -> region topic (emv_routes.h); NULL: all shared */
} emv_split_params;

void emv_split_params_default(emv_split_params *p);

typedef struct {
	uint64_t addresses, batches;
	double seconds;
} emv_split_stats;

int emv_split_job(PGconn *c, const char *job_id, const emv_split_params *p, emv_split_stats *st, char *err,
		  size_t errlen);

#endif
