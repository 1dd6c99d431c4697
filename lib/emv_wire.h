/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_wire.h - codec between our own structs and the Kafka messages of
 * docs/design.md §4 (proto/emailverify.proto): VerifyBatch (emailverify.batches and
 * emailverify.retry) and VerifyResults (emailverify.results).  Callers never
 * see a protobuf-c type.
 *
 * Encoding checks the struct against the very rules a reader applies, so a
 * producer cannot emit a message its consumers would skip; it stamps
 * schema_version EMV_WIRE_SCHEMA and returns a malloc'd buffer.
 *
 * Decoding treats its bytes as hostile: at most EMV_WIRE_MAX_MESSAGE bytes,
 * unpacked by protobuf-c with an allocator capped at EMV_WIRE_DECODE_MEM_MAX
 * (a small message of many empty repeated entries unpacks into far more
 * memory than its size), then checked field by field: schema_version 1..
 * EMV_WIRE_SCHEMA, required fields present, every string bounded and of its
 * character class, names known, counts bounded.  Unknown fields are ignored
 * (forward compatibility within a schema version).  A string holding a NUL
 * byte is rejected: protobuf-c would silently cut it there.
 *
 * Errors: every function returns an emv_wire_status, one of a few classes a
 * consumer counts separately, and writes one printable sentence naming the
 * field ("addresses[12].local: byte 0x0a at offset 3 is a control
 * character") into the caller's buffer (EMV_WIRE_ERR_MAX bytes is enough).
 * Bytes of the message never reach the error text unsanitised.  OOM aborts.
 * No globals: every function is thread-safe.
 */
#ifndef EMV_WIRE_H
#define EMV_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "emv_result.h"
#include "emv_util.h" /* EMV_OK, EMV_ERR */

#define EMV_WIRE_SCHEMA 1 /* the schema_version we write and the newest we read */

/* Limits (bytes unless said otherwise). */
#define EMV_WIRE_MAX_MESSAGE \
	(4u << 20)			    /* one encoded message; the topics' max.message.bytes
                                                must be at least this (Kafka's default is ~1 MB) */
#define EMV_WIRE_DECODE_MEM_MAX (64u << 20) /* protobuf-c allocations while decoding one message */
#define EMV_WIRE_ID_MAX 64		    /* job_id, batch_id: 1..64 visible ASCII */
					    /* domain: EMV_HOST_NAME_MAX, lower-case LDH labels of 1..63 */
#define EMV_WIRE_LABEL_MAX 63
#define EMV_WIRE_LOCAL_MAX 64			   /* local part: 1..64 bytes of UTF-8 */
#define EMV_WIRE_ADDRESSES_MAX 10000		   /* addresses per batch (at least 1) */
#define EMV_WIRE_RESULTS_MAX 10000		   /* results per message (at least 1) */
#define EMV_WIRE_TRANSCRIPT_MAX 64		   /* exchanges kept per result */
#define EMV_WIRE_ATTEMPT_MAX 1000		   /* batch attempt, result attempts */
#define EMV_WIRE_TIME_MAX INT64_C(253402300799999) /* not_before: 9999-12-31, unix ms */
#define EMV_WIRE_REGION_MAX 64			   /* region, region_hint: visible ASCII, may be empty */
#define EMV_WIRE_WORKER_MAX 64			   /* worker name: 1..64 visible ASCII */
#define EMV_WIRE_IP_MAX 45			   /* source_ip: "" or an IPv4/IPv6 address */
#define EMV_WIRE_MX_MAX 255			   /* mx host: visible ASCII, may be empty */
#define EMV_WIRE_TLS_MAX 31			   /* "TLSv1.3", "" when none */
#define EMV_WIRE_NAME_MAX 31			   /* status, reason, phase names */
#define EMV_WIRE_ENHANCED_MAX 15		   /* RFC 3463 code "5.1.1", or "" */
#define EMV_WIRE_REPLY_MAX 1024			   /* reply, transcript text */
#define EMV_WIRE_DETAIL_MAX 512			   /* result detail: printable ASCII */
#define EMV_WIRE_COMMAND_MAX 512		   /* transcript command (RFC 5321 line) */
#define EMV_WIRE_AVOID_MAX 255			   /* avoid_regions: comma-separated region names */
#define EMV_WIRE_PROVIDER_MAX 127		   /* reputation key: a provider or "mx:" + host; may be empty */
#define EMV_WIRE_KEY_MAX (EMV_HOST_NAME_MAX + 12)  /* "domain#4294967295" + NUL */
#define EMV_WIRE_ERR_MAX 256			   /* an error buffer that holds every message */

typedef enum {
	EMV_WIRE_OK = 0,
	EMV_WIRE_TOO_BIG,	     /* over EMV_WIRE_MAX_MESSAGE, or over the decode memory bound */
	EMV_WIRE_MALFORMED,	     /* not a protobuf encoding of the message type */
	EMV_WIRE_SCHEMA_UNSUPPORTED, /* schema_version 0 (absent) or newer than EMV_WIRE_SCHEMA */
	EMV_WIRE_INVALID,	     /* well-formed, but a field breaks a rule above */
	EMV_WIRE__COUNT
} emv_wire_status;

/* "ok", "too_big", "malformed", "schema_unsupported", "invalid" (for counters). */
const char *emv_wire_status_name(emv_wire_status s);

/* ---- VerifyBatch ---- */

typedef struct {
	uint64_t id;			    /* address id within the job: >= 1, unique in the batch */
	char local[EMV_WIRE_LOCAL_MAX + 1]; /* as given: UTF-8, no control character, no '<' '>' */
	uint32_t flags;			    /* EMV_FLAG_*; unknown bits are carried through */
} emv_wire_address;

typedef struct {
	char job_id[EMV_WIRE_ID_MAX + 1];
	char batch_id[EMV_WIRE_ID_MAX + 1];
	char domain[EMV_HOST_NAME_MAX + 1];	    /* IDNA A-label form, lower case, no trailing dot */
	emv_wire_address *addresses;		    /* one block: free(addresses) frees them all */
	size_t n_addresses;			    /* 1..EMV_WIRE_ADDRESSES_MAX */
	unsigned attempt;			    /* 0 for the first try */
	int64_t not_before_ms;			    /* unix ms, 0 = now; 0..EMV_WIRE_TIME_MAX */
	char region_hint[EMV_WIRE_REGION_MAX + 1];  /* "" = any region */
	char avoid_regions[EMV_WIRE_AVOID_MAX + 1]; /* "a,b": regions quarantined for provider */
	char provider[EMV_WIRE_PROVIDER_MAX + 1];   /* set with avoid_regions */
	int64_t deadline_ms;			    /* unix ms, 0 = none: the job's deadline; 0..EMV_WIRE_TIME_MAX */
} emv_wire_batch;

/*
 * Encode b into *buf (malloc'd, free() it) of *len bytes.  EMV_WIRE_INVALID
 * when b breaks a rule, EMV_WIRE_TOO_BIG when the result would exceed
 * EMV_WIRE_MAX_MESSAGE; *buf is NULL then.
 */
emv_wire_status emv_wire_batch_encode(const emv_wire_batch *b, uint8_t **buf, size_t *len, char *err, size_t errlen);

/* Decode len bytes (data may be NULL when len is 0); on EMV_WIRE_OK *out is
 * set (emv_wire_batch_free() it), else NULL and err says why. */
emv_wire_status emv_wire_batch_decode(const void *data, size_t len, emv_wire_batch **out, char *err, size_t errlen);

/* Free a decoded batch (NULL is fine).  Only for what _decode returned. */
void emv_wire_batch_free(emv_wire_batch *b);

/* 1 when both carry the same data. */
int emv_wire_batch_equal(const emv_wire_batch *a, const emv_wire_batch *b);

/*
 * The Kafka key of a batch (emailverify.batches and .retry): the domain for
 * shard 0, "domain#k" for shard k > 0 (a big domain spread over partitions).
 * EMV_ERR when the domain breaks the batch rules or outlen is too small
 * (EMV_WIRE_KEY_MAX is always enough); out is "" then.
 */
int emv_wire_batch_key(const char *domain, unsigned shard, char *out, size_t outlen);

/* ---- VerifyResults ---- */

/* One SMTP exchange of a result's transcript. */
typedef struct {
	int phase;				  /* EMV_PHASE_* (lib/emv_classify.h) */
	char *command;				  /* as sent, UTF-8, no controls; NULL or "" when none */
	unsigned code;				  /* 0 (local event) or 200..599 */
	char enhanced[EMV_WIRE_ENHANCED_MAX + 1]; /* RFC 3463 "5.1.1" or "" */
	char *text;				  /* printable ASCII and '\n'; NULL or "" */
} emv_wire_exchange;

typedef struct {
	uint64_t id; /* address id from the batch: >= 1, unique in the message */
	emv_status status;
	emv_reason reason;
	unsigned smtp_code; /* 0 (no SMTP reply) or 200..599 */
	char enhanced_code[EMV_WIRE_ENHANCED_MAX + 1];
	char *reply;	   /* deciding reply, printable ASCII; NULL or "" when none */
	int catch_all;	   /* 0 or 1 */
	unsigned attempts; /* sessions the address took part in, 0..EMV_WIRE_ATTEMPT_MAX */
	unsigned duration_ms;
	unsigned flags;		       /* EMV_FLAG_*; unknown bits are carried through */
	int temporary;		       /* 0 or 1: worth retrying later */
	emv_wire_exchange *transcript; /* 0..EMV_WIRE_TRANSCRIPT_MAX entries */
	size_t n_transcript;
	/* evidence of this result; "" = unknown (the message-level value applies) */
	char mx_host[EMV_WIRE_MX_MAX + 1];
	char mx_ip[EMV_WIRE_IP_MAX + 1];
	char source_ip[EMV_WIRE_IP_MAX + 1];
	char tls[EMV_WIRE_TLS_MAX + 1];
	char *detail;	     /* printable ASCII, NULL or "" when none */
	int64_t retry_at_ms; /* temporary: unix ms when its retry is due, 0 = not known; 0..EMV_WIRE_TIME_MAX */
} emv_wire_result;

typedef struct {
	char job_id[EMV_WIRE_ID_MAX + 1];
	char batch_id[EMV_WIRE_ID_MAX + 1];
	char worker[EMV_WIRE_WORKER_MAX + 1]; /* required */
	char region[EMV_WIRE_REGION_MAX + 1];
	char source_ip[EMV_WIRE_IP_MAX + 1];
	char mx[EMV_WIRE_MX_MAX + 1];
	char tls[EMV_WIRE_TLS_MAX + 1];
	emv_wire_result *results; /* 1..EMV_WIRE_RESULTS_MAX */
	size_t n_results;
} emv_wire_results;

/* As emv_wire_batch_encode / _decode. */
emv_wire_status emv_wire_results_encode(const emv_wire_results *r, uint8_t **buf, size_t *len, char *err,
					size_t errlen);
emv_wire_status emv_wire_results_decode(const void *data, size_t len, emv_wire_results **out, char *err, size_t errlen);

/* Free a decoded message: the n_results results, their n_transcript
 * exchanges and every string in them (NULL is fine). */
void emv_wire_results_free(emv_wire_results *r);

/* 1 when both carry the same data (a NULL string equals ""). */
int emv_wire_results_equal(const emv_wire_results *a, const emv_wire_results *b);

/* ---- IpState (emailverify.ip-state, compacted, key "ip|provider") ---- */

typedef struct {
	char ip[EMV_WIRE_IP_MAX + 1];		  /* required */
	char provider[EMV_WIRE_PROVIDER_MAX + 1]; /* "" = the IP as a whole (audit hold, liveness) */
	char region[EMV_WIRE_REGION_MAX + 1];
	char worker[EMV_WIRE_WORKER_MAX + 1];
	char state[EMV_WIRE_NAME_MAX + 1];	/* healthy | throttled | quarantined | held */
	int64_t until_ms, since_ms, updated_ms; /* unix ms, 0..EMV_WIRE_TIME_MAX */
	unsigned strikes;
	unsigned rate_permille; /* 0..1000 */
	uint64_t rcpts, blocks, sessions;
	char last_reply[EMV_WIRE_REPLY_MAX + 1]; /* printable ASCII */
} emv_wire_ipstate;

/* As emv_wire_batch_encode / _decode; decode fills *out (no allocation). */
emv_wire_status emv_wire_ipstate_encode(const emv_wire_ipstate *s, uint8_t **buf, size_t *len, char *err,
					size_t errlen);
emv_wire_status emv_wire_ipstate_decode(const void *data, size_t len, emv_wire_ipstate *out, char *err, size_t errlen);
/* Its Kafka key: "ip|provider". */
void emv_wire_ipstate_key(const emv_wire_ipstate *s, char *out, size_t outlen);

/* ---- DomainState (emailverify.domain-state, compacted, key "host:NAME" or
 * "domain:NAME") ---- */

#define EMV_WIRE_DS_HOST 0
#define EMV_WIRE_DS_DOMAIN 1

/* Structure only: the name is a lower-case LDH host name, strings are
 * bounded, times are 0..EMV_WIRE_TIME_MAX.  The values themselves
 * (negative, huge, from the future) are judged by lib/emv_domstate.h. */
typedef struct {
	int kind;			  /* EMV_WIRE_DS_HOST or EMV_WIRE_DS_DOMAIN */
	char name[EMV_HOST_NAME_MAX + 1]; /* required */
	char worker[EMV_WIRE_WORKER_MAX + 1];
	int64_t updated_ms;
	int32_t rcpt_per_txn;
	int64_t rcpt_per_txn_at;
	int32_t errors_per_session;
	int64_t errors_per_session_at;
	int32_t sessions_ok;
	int64_t sessions_ok_at;
	int64_t backoff_until_ms;
	int32_t backoff_ms;
	int64_t backoff_at;
	int accepts_all;
	int64_t accepts_all_at;
	int catch_all;
	int64_t catch_all_at;
} emv_wire_domstate;

emv_wire_status emv_wire_domstate_encode(const emv_wire_domstate *s, uint8_t **buf, size_t *len, char *err,
					 size_t errlen);
emv_wire_status emv_wire_domstate_decode(const void *data, size_t len, emv_wire_domstate *out, char *err,
					 size_t errlen);
/* Its Kafka key: "host:NAME" or "domain:NAME". */
void emv_wire_domstate_key(const emv_wire_domstate *s, char *out, size_t outlen);

#endif
