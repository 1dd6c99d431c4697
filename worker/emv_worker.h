/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_worker.h - the cluster worker: Kafka batches in, probes, results out
 * (docs/design.md §2 step 3).  `emailverify-worker` runs one in its main thread;
 * `emailverify run` runs several in threads of one process.
 *
 * One consumer group over the batches and retry topics.  Each VerifyBatch
 * feeds the batching engine; when every address of a batch has its verdict,
 * one VerifyResults goes to the results topic, and the addresses whose
 * verdict is still temporary (greylisting, rate limits, timeouts) go to the
 * retry topic as a new VerifyBatch with attempt + 1 and a `not_before`
 * time.  The batch's offset is committed only once both are acknowledged and
 * every earlier batch of its partition is done (at-least-once; the sink
 * makes it exactly-once).  A retry batch that is not due yet pauses its
 * partition until it is, so a long wait never holds a probe session or an
 * engine slot.  On the last attempt a temporary verdict becomes final
 * (unknown, with the reason and the server's reply).
 *
 * Rebalances: partitions are assigned and revoked explicitly, nothing is
 * committed inside a revoke; batches of a revoked partition still in the
 * engine are released: their results are still sent (the sink absorbs the
 * repeat), their retries are left to the partition's new owner, and their
 * offsets are never committed by this worker.
 *
 * Stopping (*stop set, e.g. by SIGTERM), bounded by shutdown_ms: consume
 * nothing more and start no session; held retry batches are not waited for
 * (not started, their offsets stay uncommitted: the next owner holds them
 * until their not_before).  Sessions in flight may end politely (QUIT) until
 * 60% of shutdown_ms, then are abandoned; each batch still in flight is
 * cut: its verdicts go to the results topic, its addresses without one to
 * the retry topic (same attempt, due at once; or, for those the engine held
 * for a retry, due when the engine would have asked), so that its offset can
 * be committed and nothing with a verdict is asked again.  Acknowledgements
 * are awaited until 85%, then flush, commit synchronously, return.
 * *stop == EMV_WORKER_STOP_NOW: the same at once, nothing in flight waited
 * for (`run` once its job is done: what is in flight can change nothing).
 */
#ifndef EMV_WORKER_H
#define EMV_WORKER_H

#include <signal.h>
#include <stdint.h>
#include "emv_setup.h"
#include "emv_kafka.h"
#include "emv_stop.h"

typedef struct {
	const char *brokers; /* bootstrap.servers (required) */
	const char *group;   /* consumer group (EMV_GROUP_WORKERS) */
	/* Retries through the retry topic follow the engine options' retry
	 * policy (emv_setup_opts.retry): topic_attempts, topic_delay_ms, and the
	 * engine's own window worker_window_ms. */
	const char *batches_topic, *results_topic, *retry_topic;
	const char *name;	       /* worker name in results */
	const char *region;	       /* region in results ("") */
	int max_inflight;	       /* batches in the engine at once (64) */
	int idle_exit_ms;	       /* return after this long without work (counted from the start and
					  from each assignment of partitions); 0 = never */
	int session_timeout_ms;	       /* consumer group session timeout (10000) */
	const char *const *kafka_conf; /* extra librdkafka "key=value" settings (TLS, SASL...), NULL-terminated */
	int embedded;		       /* a thread of `emailverify run`: stopping is routine, not news */
	int region_topics;	       /* with a region: also consume <batches>.<region> and <retry>.<region> (1) */
	const char *reroute_topic;     /* addresses no pool address may ask go here (emailverify.reroute) */
	const char *ipstate_topic;     /* the pool's reputation, compacted (emailverify.ip-state); NULL: none */
	int ipstate_interval_ms;       /* publish it at least this often (30000), and on every change */
	/* What the engine learns per MX host and domain (lib/emv_domstate.h), compacted: read from its
	 * beginning at start (at most domstate_load_ms) before the first batch, followed while
	 * running, and this worker's own findings published on change (each host or domain at most
	 * once per domstate_publish_ms).  NULL or "": the worker learns alone. */
	const char *domstate_topic;    /* emailverify.domain-state */
	int domstate_load_ms;	       /* EMV_DEF_DOMSTATE_LOAD_MS */
	int domstate_publish_ms;       /* EMV_DEF_DOMSTATE_PUBLISH_MS */
	emv_results_gate *gate;	       /* embedded: wait for the sink before taking more batches (NULL) */
	int shutdown_ms;	       /* from *stop to return, at most (EMV_STOP_TIMEOUT_MS) */
} emv_worker_opts;

typedef struct {
	uint64_t batches, results, skipped;
	uint64_t expired_batches; /* dropped: taken after their job's deadline (the coordinator made them final) */
	uint64_t expired;	  /* temporary results made final: their retry would come after the deadline */
	uint64_t retry_batches, retried;     /* batches and addresses sent to the retry topic */
	uint64_t released;		     /* batches whose partition was revoked while in flight */
	uint64_t rerouted_batches, rerouted; /* batches and addresses handed to the coordinator for another region */
	uint64_t cut_batches, cut;	     /* at shutdown: batches cut, addresses without a verdict handed on */
	uint64_t cut_held; /* of those, held for a retry by the engine: handed on due when they were */
	uint64_t audits;   /* periodic re-audits of the pool completed (emv_reaudit.h) */
	uint64_t audit_held, audit_released; /* addresses they held, and held ones they put back */
	uint64_t domstate_loaded;	     /* domain-state entries taken at start */
	uint64_t domstate_taken;	     /* ... and while running */
	uint64_t domstate_ignored;	     /* malformed or absurd entries left out */
	uint64_t domstate_published;	     /* own findings published */
} emv_worker_stats;

void emv_worker_opts_default(emv_worker_opts *o);

#define EMV_WORKER_STOP_NOW 2

/* Run until *stop (checked every 20 ms) or idle_exit_ms; EMV_OK or EMV_ERR
 * (set-up failed: err says why). */
int emv_worker_run(const emv_worker_opts *o, const emv_setup_opts *eo, volatile sig_atomic_t *stop,
		   emv_worker_stats *st, char *err, size_t errlen);

#endif
