/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_kafka.h - Kafka helpers of the coordinator, which owns the topics:
 * they are created through librdkafka's Admin API with their partition
 * counts and a message size limit that fits our largest messages.
 */
#ifndef EMV_KAFKA_H
#define EMV_KAFKA_H

#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>

/* A region's own topic of a shared one: "<base>.<region>" (the split and
 * the router produce to it, the region's workers consume it). */
void emv_kafka_region_topic(char *out, size_t outlen, const char *base, const char *region);

/* The topics a client has made sure of, so each is asked about once. */
typedef struct {
	char **names;
	size_t n;
} emv_kafka_known;

/* emv_kafka_ensure_topic, unless this topic is already in *known (added
 * once it exists). */
int emv_kafka_ensure_topic_once(rd_kafka_t *rk, emv_kafka_known *known, const char *topic, int partitions, char *err,
				size_t errlen);
void emv_kafka_known_free(emv_kafka_known *known);

/* Create `topic` unless it exists (any handle: producer or consumer).  An
 * existing topic is found from the cluster's metadata first, so brokers
 * without the CreateTopics API (librdkafka's mock cluster) work as long as
 * the topic was made some other way. */
int emv_kafka_ensure_topic(rd_kafka_t *rk, const char *topic, int partitions, char *err, size_t errlen);
/* The same for a compacted topic (cleanup.policy=compact, 4 partitions). */
int emv_kafka_ensure_compacted_topic(rd_kafka_t *rk, const char *topic, char *err, size_t errlen);

/*
 * Production settings passed through to librdkafka (TLS, SASL, timeouts):
 * "key=value" strings, NULL-terminated (list may be NULL).  A bad key or
 * value fails with err naming it.  Also quiets librdkafka's own log to
 * its errors unless -v (emv_log at info or more).
 */
/* rd_kafka_conf_new() whose client logs through emv_log ("kafka"): at
 * info level (shown with -v) for librdkafka's errors, warnings and notices
 * (a COMMITFAIL, a broker gone), at debug for the rest; never straight to
 * the user's terminal. */
rd_kafka_conf_t *emv_kafka_conf_new(void);

int emv_kafka_conf_apply(rd_kafka_conf_t *conf, const char *const *list, char *err, size_t errlen);

/*
 * Read a librdkafka properties file: one "key=value" per line, blank lines
 * and '#' comments ignored, at most 256 settings of 4 KiB each.  Appends to
 * *list (NULL-terminated, malloc'd; *n counts entries); err names the line.
 */
int emv_kafka_conf_read(const char *path, char ***list, size_t *n, char *err, size_t errlen);

/*
 * Back-pressure between the workers and the sink of one process (the
 * embedded mode): librdkafka's mock cluster keeps at most 5 MiB per
 * partition and drops the oldest messages past that, read or not, so
 * results the sink has not stored yet must never pile up that far.  The
 * workers add what they produce, the sink what it stored; a worker takes
 * no new batch while produced - stored exceeds limit.  Atomics only.
 */
typedef struct {
	uint64_t produced, stored; /* bytes of VerifyResults messages */
	uint64_t limit;
} emv_results_gate;

static inline void emv_results_gate_add(uint64_t *counter, uint64_t n)
{
	__atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

static inline int emv_results_gate_open(const emv_results_gate *g)
{
	uint64_t p, s;
	if (!g)
		return 1;
	p = __atomic_load_n(&g->produced, __ATOMIC_RELAXED);
	s = __atomic_load_n(&g->stored, __ATOMIC_RELAXED);
	return p < s || p - s <= g->limit;
}

/* The topics of docs/design.md §4 and their partition counts. */
#define EMV_TOPIC_BATCHES "emailverify.batches"
#define EMV_TOPIC_RESULTS "emailverify.results"
#define EMV_TOPIC_RETRY "emailverify.retry"
#define EMV_TOPIC_IP_STATE "emailverify.ip-state"
#define EMV_TOPIC_REROUTE "emailverify.reroute" /* batches for another region (docs/design.md §3) */
#define EMV_TOPIC_DOMAIN_STATE "emailverify.domain-state" /* what workers learnt per MX host and domain, compacted */
/* Per-region topics are "<batches>.<region>" and "<retry>.<region>". */
#define EMV_TOPIC_PARTITIONS 16 /* when a topic must be created; an existing topic keeps its own count */

/* The consumer groups (each overridable with --group where its program has it). */
#define EMV_GROUP_WORKERS "emailverify-workers" /* the workers, on the batches and retry topics */
#define EMV_GROUP_SINK "emailverify-sink"	/* the coordinator's sink, on the results topic */
#define EMV_GROUP_ROUTER "emailverify-router"	/* the region router, on reroute, ip-state and domain-state */

/*
 * The embedded Kafka of the single-machine mode: librdkafka's mock cluster
 * (rdkafka_mock.h), listening on loopback ports of this process, with the
 * four topics of docs/design.md §4 already made (the mock has no CreateTopics).
 * Any client in any process reaches it through emv_kafka_mock_bootstraps()
 * as long as this process lives.  Nothing is kept on disk.
 */
typedef struct emv_kafka_mock emv_kafka_mock;

emv_kafka_mock *emv_kafka_mock_new(int brokers, char *err, size_t errlen);
const char *emv_kafka_mock_bootstraps(const emv_kafka_mock *m);
/* Another topic (partitions >= 1). */
int emv_kafka_mock_topic(emv_kafka_mock *m, const char *topic, int partitions, char *err, size_t errlen);
void emv_kafka_mock_free(emv_kafka_mock *m);

#endif
