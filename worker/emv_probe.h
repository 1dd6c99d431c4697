/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_probe.h - verify the recipients of one domain: DNS, SMTP sessions,
 * verdicts.  This is the engine `check`, `verify` and the worker share.
 *
 * A probe job takes a domain and its local parts, resolves where its mail
 * goes, refuses private/reserved targets unless allowed, and walks the MX
 * hosts in preference order: one session carries the catch-all probe (a
 * random local part, once per job) and every recipient; connection-level
 * failures move on to the next address/host; a TLS failure retries the same
 * host once without STARTTLS; greylisted recipients are asked again from the
 * same source after the server's hint (or the default wait) while the retry
 * budget lasts.  Every result carries the replies that decided it.
 *
 * Results are delivered once, together, through the done callback, always
 * from the event loop (never from inside emv_probe_start).  The owner frees
 * the job with emv_probe_free(), in the callback or any time later.
 */
#ifndef EMV_PROBE_H
#define EMV_PROBE_H

#include <stdint.h>
#include <sys/socket.h>
#include "emv_dns.h"
#include "emv_result.h"
#include "emv_retry.h"
#include "emv_session.h"

struct event_base;
struct emv_classifier;

#define EMV_PROBE_TARGETS_MAX 8

typedef struct {
	struct event_base *base;
	emv_dns *dns;
	const struct emv_classifier *classifier;
	emv_session_params session;		  /* port, HELO, MAIL FROM, timeouts, limits, ssl_ctx */
	struct sockaddr_storage source4, source6; /* family 0 = unset (kernel picks) */
	int allow_private;			  /* connect to loopback/private MX addresses */
	int catch_all_probe;			  /* send one random recipient per job (1) */
	int max_targets;	  /* MX addresses tried per job (default 5, at most EMV_PROBE_TARGETS_MAX) */
	emv_retry_policy retry;	  /* greylist_rounds, greylist_wait_ms, greylist_max_wait_ms and
	                                 greylist_window_ms: the job's own greylist rounds (emv_retry.h) */
	int known_catch_all;	  /* -1: unknown (probe when catch_all_probe); 0/1: already known */
	int accepts_all;	  /* the provider accepts every RCPT: acceptance proves nothing */
	const char *verdict_note; /* the provider's note for unknown/risky details (NULL: none);
	                                 must outlive the job */
	/* Open connections shared between jobs (emv_session.h, keep_open),
	 * NULL: each job opens and closes its own.  take() gives an idle
	 * connection to the mail server address ip (NULL: none); park() takes
	 * one whose recipients are all answered (close: say QUIT now: it could
	 * not serve the job it was taken for). */
	struct emv_session *(*take)(void *arg, const char *ip);
	void (*park)(void *arg, struct emv_session *s, const char *ip, int close);
	void *park_arg;
} emv_probe_config;

void emv_probe_config_default(emv_probe_config *c);

/* One transcript line. */
typedef struct {
	unsigned session; /* 1-based session number within the job */
	int rcpt;	  /* -1 session-level, -2 catch-all probe, else recipient index */
	int phase;	  /* EMV_PHASE_* */
	char mx_ip[48];
	char *command; /* NULL for the banner or a local event */
	int code;      /* 0 for a local event (connect failure, TLS failure...) */
	char enhanced[16];
	char *text; /* sanitised, capped */
} emv_exchange;

typedef struct {
	emv_status status;
	emv_reason reason;
	unsigned flags; /* EMV_FLAG_CATCH_ALL is set here; caller ORs list flags */
	int temporary;	/* the verdict may change if asked later */
	char detail[256];
	char mx_host[256];
	char mx_ip[48];
	char source_ip[48];
	char tls[16];
	int catch_all; /* 1 yes, 0 no, -1 not known */
	int have_smtp;
	int smtp_code;
	char enhanced[16];
	char reply[512];
	const char *rule;	/* classifier rule id */
	unsigned attempts;	/* sessions in which this recipient was asked */
	uint64_t sessions_mask; /* which sessions (1..64) it took part in */
	unsigned duration_ms;
	int retry_after_ms;  /* the server's own retry hint, 0 if none */
	int connect_timeout; /* the verdict comes from connections timing out at connect */
} emv_probe_result;

typedef struct emv_probe_job emv_probe_job;

typedef void (*emv_probe_done_cb)(emv_probe_job *job, void *arg);

/*
 * Start verifying `n` recipients of `domain` (A-label).  addresses are full
 * normalised addresses; utf8 marks those needing SMTPUTF8 (may be NULL).
 */
emv_probe_job *emv_probe_start(const emv_probe_config *cfg, const char *domain, const char *const *addresses,
			       const unsigned char *utf8, size_t n, emv_probe_done_cb cb, void *arg);

/* Accessors, valid after the done callback until emv_probe_free(). */
size_t emv_probe_count(const emv_probe_job *job);
const emv_probe_result *emv_probe_get(const emv_probe_job *job, size_t i);
const emv_mx_result *emv_probe_mx(const emv_probe_job *job);
size_t emv_probe_exchange_count(const emv_probe_job *job);
const emv_exchange *emv_probe_exchange(const emv_probe_job *job, size_t k);
/* 1 when exchange k is evidence for result i (its sessions, its RCPT and the probe) */
int emv_probe_exchange_relevant(const emv_probe_job *job, size_t i, size_t k);
/* SMTP connections the job opened; and the ones it asked in another job's
 * open connection instead (emv_probe_config.take) */
unsigned emv_probe_sessions(const emv_probe_job *job);
unsigned emv_probe_resumed(const emv_probe_job *job);
const char *emv_probe_domain(const emv_probe_job *job);
int emv_probe_catch_all(const emv_probe_job *job);	     /* 1, 0, -1 unknown */
unsigned emv_probe_connected(const emv_probe_job *job);	     /* sessions that got a banner */
unsigned emv_probe_rcpt_sent(const emv_probe_job *job);	     /* RCPT commands sent, re-sends included */
unsigned emv_probe_reply_ms(const emv_probe_job *job);	     /* slowest EHLO round trip of its sessions, 0 none */
int emv_probe_learned_rcpt_limit(const emv_probe_job *job);  /* >0: a 452 taught a smaller limit */
int emv_probe_learned_error_limit(const emv_probe_job *job); /* >0: a tarpit or 421 taught errors per session */
unsigned emv_probe_cut_sessions(const emv_probe_job *job);   /* sessions ended by the error budget */
int emv_probe_backoff(const emv_probe_job *job);	     /* 1: a server told us to go away for now (421) */

/* Free the job; a job still running is cancelled without calling back. */
void emv_probe_free(emv_probe_job *job);

/* Parse a retry hint ("try again in 300 seconds", "in 5 minutes") in ms; 0 if none. */
int emv_probe_retry_hint_ms(const char *text);

#endif
