/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_router.h - the coordinator's region router (docs/design.md §3, docs/regions.md).
 *
 * Three inputs, one consumer group (EMV_GROUP_ROUTER, emv_kafka.h):
 *
 *  - emailverify.ip-state (compacted): every worker's reputation rows,
 *    upserted into PostgreSQL's ip_state (an older row never replaces a
 *    newer one; a tombstone deletes).  Rows with provider '' are the pool
 *    addresses themselves; a region is "live" while some of its addresses
 *    reported within live_ms.
 *
 *  - emailverify.domain-state (compacted): what workers learnt per MX host
 *    and domain (lib/emv_domstate.h), upserted into domain_state (an older
 *    message never replaces a newer one; an entry emv_domstate_check
 *    refuses is logged, counted as skipped and not stored).
 *
 *  - emailverify.reroute: batches a worker gave back because every source
 *    address of its region is quarantined (or held) for the batch's
 *    provider.  Each goes to the live region, not on its avoid list, with
 *    the most addresses not quarantined for that provider, on that region's
 *    own topic ("<batches>.<region>", region_hint set).  When there is no
 *    such region it waits instead: back on the shared retry topic, due when
 *    the first of those quarantines ends (or after wait_ms when none is
 *    known), with its avoid list cleared - never hammered through.
 *
 * A reroute's offset is stored only after its batch is acknowledged by
 * Kafka (at-least-once; the sink absorbs a repeat).  A malformed message is
 * logged with its offset, counted and skipped.  A database error is retried
 * after reconnecting.
 */
#ifndef EMV_ROUTER_H
#define EMV_ROUTER_H

#include <stdint.h>
#include <libpq-fe.h>

typedef struct {
	const char *brokers;
	const char *group;	   /* EMV_GROUP_ROUTER */
	const char *reroute_topic; /* EMV_TOPIC_REROUTE */
	const char *ipstate_topic; /* EMV_TOPIC_IP_STATE */
	const char *domstate_topic; /* EMV_TOPIC_DOMAIN_STATE; NULL or "": not read */
	const char *batches_topic; /* EMV_TOPIC_BATCHES: region topics are "<this>.<region>" */
	const char *retry_topic;   /* EMV_TOPIC_RETRY */
	int live_ms;		   /* a region is live while an address reported this recently (120000) */
	int wait_ms;		   /* no region and no known cool-down end: wait this long (900000) */
	int idle_exit_ms;	   /* stop after this long without messages (0: never) */
	const char *const *kafka_conf;
} emv_router_params;

void emv_router_params_default(emv_router_params *p);

typedef struct {
	uint64_t ip_states, reroutes, routed, waited, skipped, db_retries;
	uint64_t domain_states;
} emv_router_stats;

/* Run until *stop or idle_exit_ms; EMV_OK, or EMV_ERR with err. */
int emv_router_run(PGconn *c, const emv_router_params *p, volatile int *stop, emv_router_stats *st, char *err,
		   size_t errlen);

#endif
