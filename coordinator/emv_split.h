/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_split.h - a job's addresses become VerifyBatch messages on Kafka
 * (docs/design.md §2 step 2).
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
 *
 * First the verdict cache answers what it may (emv_vcache_answer: cached
 * results, counted in the job, in one statement); only the rest is read
 * and batched.
 *
 * A re-split (skip_final: the job's batches were lost, e.g. with the
 * embedded Kafka of a stopped `run`) leaves out what is final; an address
 * whose stored result is temporary (greylisted, rate limited, ...) was
 * waiting for its retry, so it is not asked before that result's time plus
 * retry_delay_ms: such addresses go in batches of their own, with the
 * latest not_before of their addresses (none is asked early), on the retry
 * topic (a worker holds a batch that is not due by pausing its partition:
 * on the batches topic that would hold up the new batches behind it).
 */
#ifndef EMV_SPLIT_H
#define EMV_SPLIT_H

#include <stdint.h>
#include <libpq-fe.h>

typedef struct {
	const char *brokers;		 /* bootstrap.servers */
	const char *topic;		 /* EMV_TOPIC_BATCHES */
	const char *retry_topic;	 /* EMV_TOPIC_RETRY: a re-split's batches that wait for their retry */
	const char *results_topic;	 /* EMV_TOPIC_RESULTS: made here too, so that workers can deliver before
	                             the sink has ever run */
	int partitions;			 /* when a topic must be created (EMV_TOPIC_PARTITIONS) */
	int batch_max;			 /* addresses per batch (EMV_DEF_BATCH_MAX) */
	int max_shards;			 /* batches of one domain spread over at most this many keys (4) */
	int chunk;			 /* rows fetched at a time; progress is recorded per chunk (100000) */
	int flush_timeout_ms;		 /* bound on waiting for deliveries (30000) */
	int skip_final;			 /* leave out addresses that already have a final result (a re-split) */
	int retry_delay_ms;		 /* a re-split: an address whose stored result is temporary is due this
	                             long after that result (the retry policy's topic_delay_ms[0], the
	                             workers' first retry delay: emv_retry.h) */
	const char *const *kafka_conf;	 /* extra librdkafka "key=value" settings (TLS, SASL), NULL-terminated */
	const struct emv_routes *routes; /* domain -> region topic (emv_routes.h); NULL: all shared */
	const struct emv_vcache_cfg *cache; /* the verdict cache (emv_vcache.h); NULL: none */
} emv_split_params;

void emv_split_params_default(emv_split_params *p);

typedef struct {
	uint64_t addresses, batches;
	uint64_t delayed; /* of the addresses, those sent waiting for their retry's time */
	uint64_t cached;  /* answered from the verdict cache, never batched */
	double cache_seconds; /* of seconds, the cache's answer */
	double seconds;
} emv_split_stats;

int emv_split_job(PGconn *c, const char *job_id, const emv_split_params *p, emv_split_stats *st, char *err,
		  size_t errlen);

#endif
