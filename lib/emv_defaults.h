/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_defaults.h - every tunable default, named once (as Postfix's DEF_*
 * parameters in mail_params.h).  Each *_default() / *_params_default()
 * function takes its numbers from here; a default written twice drifts
 * (the SMTP session once said 50 recipients a transaction where the
 * provider file said 20, and 10 s to connect where it said 15).
 *
 * One line per setting: name, value (the unit is in the name: _MS
 * milliseconds, _S seconds, otherwise a count), what it means, and what
 * overrides it.  docs/defaults.md is the same table for operators.
 * Values are plain literals so that help texts can quote them
 * (EMV_DEF_STR).  Header only, no code: anything may include it.
 */
#ifndef EMV_DEFAULTS_H
#define EMV_DEFAULTS_H

#define EMV_DEF_STR_(x) #x
#define EMV_DEF_STR(x) EMV_DEF_STR_(x) /* "60" from EMV_DEF_..._S 60, for help texts */

/* ---- Probing policy of a mail server: the [default] section of
 * data/providers.conf (keys in brackets; tests/unit/test_providers.c
 * checks that the file says the same).  A provider section overrides each. */
#define EMV_DEF_PIPELINING 1 /* [pipelining] pipeline RCPTs when advertised */
#define EMV_DEF_RCPT_PER_TXN \
	20			    /* [rcpt_per_txn] recipients per MAIL transaction; also the SMTP
                                           session's own default (check asks without a policy) */
#define EMV_DEF_RCPT_PER_SESSION 50 /* [rcpt_per_session] recipients per connection */
#define EMV_DEF_ERRORS_PER_SESSION \
	8			   /* [errors_per_session] rejected commands per connection, under
                                           Postfix's smtpd_soft_error_limit (10); the session's too */
#define EMV_DEF_SESSIONS_PER_MX 2  /* [sessions_per_mx] concurrent sessions per MX host */
#define EMV_DEF_SESSIONS_PER_IP 1  /* [sessions_per_ip] concurrent sessions per source IP */
#define EMV_DEF_RCPT_PER_MINUTE 20 /* [rcpt_per_minute] per source IP and budget scope */
#define EMV_DEF_RCPT_PER_HOUR 300  /* [rcpt_per_hour] */
#define EMV_DEF_RCPT_PER_DAY 2000  /* [rcpt_per_day] */
#define EMV_DEF_CATCH_ALL_PROBE 1  /* [catch_all_probe]; --no-catch-all turns it off everywhere */
#define EMV_DEF_ACCEPTS_ALL 0	   /* [accepts_all] */
#define EMV_DEF_CONNECT_TIMEOUT_MS \
	15000 /* [connect_timeout] TCP connect to an MX host; the session's
                                            default, and the most --timeout gives the connect */
#define EMV_DEF_REPLY_TIMEOUT_MS \
	60000 /* [reply_timeout] each reply (banner, EHLO, MAIL, RCPT); the
                                           session's default; --timeout S overrides */
#define EMV_DEF_POLICY_GREYLIST_WAIT_MS \
	300000 /* [greylist_wait] parsed and kept; retry timing comes
                                                  from the retry policy below */

/* ---- One SMTP session (worker/emv_session.h) */
#define EMV_DEF_SMTP_PORT 25		  /* --smtp-port (session, preflight) */
#define EMV_DEF_STARTTLS_TIMEOUT_MS 20000 /* the TLS handshake after STARTTLS; --timeout S */
#define EMV_DEF_QUIT_TIMEOUT_MS 5000	  /* QUIT's reply; also the most --timeout gives it */
#define EMV_DEF_LINE_MAX 2048		  /* one reply line, bytes (Postfix's line_length_limit) */
#define EMV_DEF_REPLY_MAX 65536		  /* one multi-line reply, bytes */
#define EMV_DEF_REPLY_LINES_MAX 512	  /* lines of one reply */

/* ---- One probe job: a domain's addresses (worker/emv_probe.h) */
#define EMV_DEF_MAX_TARGETS 5 /* MX hosts tried per domain */

/* ---- Retry policy (lib/emv_retry.h, emv_retry_policy_default()) */
#define EMV_DEF_RETRY_MAX_ATTEMPTS 4	 /* engine: tries per address, the first included; --max-attempts */
#define EMV_DEF_RETRY_STEP1_MS 60000	 /* engine: wait after the 1st temporary answer; --retry-schedule A,B,C */
#define EMV_DEF_RETRY_STEP2_MS 300000	 /* ... after the 2nd */
#define EMV_DEF_RETRY_STEP3_MS 900000	 /* ... after the 3rd and later (also the longest server hint taken) */
#define EMV_DEF_RETRY_CONNECT_ATTEMPTS 2 /* engine: tries when no server answered */
#define EMV_DEF_RETRY_DNS1_MS 5000	 /* engine: DNS temporary failure, first quick retry */
#define EMV_DEF_RETRY_DNS2_MS 20000	 /* ... second */
#define EMV_DEF_RETRY_WINDOW_MS \
	1800000				    /* verify/run: no retry later than this after the first try;
                                           --max-retry-time S */
#define EMV_DEF_GREYLIST_ROUNDS 2	    /* check: a probe job asks greylisted recipients again this often */
#define EMV_DEF_GREYLIST_WAIT_MS 60000	    /* check: wait without a server hint; --greylist-wait S */
#define EMV_DEF_GREYLIST_MAX_WAIT_MS 300000 /* check: a longer server hint is capped to this */
#define EMV_DEF_GREYLIST_WINDOW_MS \
	120000 /* check: time spent waiting on greylisting per domain;
                                             --max-retry-time S */
#define EMV_DEF_TOPIC_ATTEMPTS \
	3 /* cluster: tries per address through the retry topic;
                                           --retry-attempts (worker, run) */
#define EMV_DEF_TOPIC_DELAY1_MS \
	600000				/* cluster: wait before the 2nd try; --retry-delay; also how long a
                                           re-split holds a temporary result (split) */
#define EMV_DEF_TOPIC_DELAY2_MS 1800000 /* ... before the 3rd (worker daemon; run waits DELAY1 each time) */
#define EMV_DEF_TOPIC_DELAY3_MS 3600000 /* ... before the 4th and later */
#define EMV_DEF_WORKER_RETRY_WINDOW_MS \
	300000 /* cluster worker: the engine's own retry window, longer
                                                 waits go to the retry topic; --max-retry-time S */

/* ---- Probe engine (worker/emv_engine.h) */
#define EMV_DEF_CONCURRENCY 500	   /* SMTP sessions at once; verify --concurrency */
#define EMV_DEF_DNS_CONCURRENCY 64 /* DNS lookups at once */
#define EMV_DEF_PORT25_THRESHOLD 5 /* MX hosts timing out at connect, none reachable: port 25 blocked */
#define EMV_DEF_LINGER_MS 300000   /* verify, run, API: the most stragglers wait after the rest; --straggler-wait */

/* an MX host's EHLO round trip over RISE x the lowest seen there and
 * RISE_MIN_MS over it halves its sessions at once (worker/emv_aimd.h) */
#define EMV_DEF_AIMD_RISE 3
#define EMV_DEF_AIMD_RISE_MIN_MS 200
/* an open SMTP connection whose recipients are all answered waits this long
 * for another domain of the same mail server (worker/emv_engine.c); one
 * connection asks about many domains, and Postfix's own smtpd_timeout is
 * 300 s */
#define EMV_DEF_SESSION_IDLE_MS 2000

/* ---- DNS (worker/emv_dns.h) */
#define EMV_DEF_DNS_TIMEOUT_MS 2000
#define EMV_DEF_DNS_TRIES 2
#define EMV_DEF_DNS_CACHE_MIN_TTL_S 30
#define EMV_DEF_DNS_CACHE_MAX_TTL_S 3600
#define EMV_DEF_DNS_NEGATIVE_TTL_S 300
#define EMV_DEF_DNS_CACHE_MAX 50000 /* cached answers */

/* ---- Preflight (worker/emv_preflight.h) */
#define EMV_DEF_PREFLIGHT_CONNECT_TIMEOUT_MS \
	5000 /* the port 25 test; --timeout S, at most
                                                     EMV_DEF_PREFLIGHT_CONNECT_MAX_MS */
#define EMV_DEF_PREFLIGHT_CONNECT_MAX_MS 10000

/* ---- Source address reputation (worker/emv_reputation.h) */
#define EMV_DEF_REP_QUIET_MS 600000 /* throttled: this long without a rate limit doubles the rate */
#define EMV_DEF_REP_MAX_HALVINGS 4
#define EMV_DEF_REP_COOLDOWN_BASE_MS 900000 /* first quarantine */
#define EMV_DEF_REP_COOLDOWN_MAX_MS 86400000
#define EMV_DEF_REP_REPROBE_RCPTS 2
#define EMV_DEF_REP_REPROBE_LEASE_MS 600000
#define EMV_DEF_REP_STRIKE_FORGET_MS 604800000 /* 7 days */

/* ---- Cluster worker (worker/emv_worker.h) */
#define EMV_DEF_WORKER_MAX_INFLIGHT 64	       /* batches at once; --max-inflight */
#define EMV_DEF_KAFKA_SESSION_TIMEOUT_MS 10000 /* Kafka consumer session.timeout.ms; --session-timeout */
#define EMV_DEF_IPSTATE_INTERVAL_MS 30000      /* ip-state reports; --ip-state-interval S */

/* ---- Shared domain knowledge (lib/emv_domstate.h, topic emailverify.domain-state) */
#define EMV_DEF_DOMSTATE_LIMIT_AGE_MS \
	86400000 /* a learned recipients-per-transaction or errors-per-session limit is
                                           trusted this long (24 h): server settings change rarely, and
                                           re-learning costs one 452 or tarpit per host a day */
#define EMV_DEF_DOMSTATE_SESSIONS_AGE_MS \
	3600000 /* sessions a host answered well: 1 h (it follows the host's load) */
#define EMV_DEF_DOMSTATE_CATCH_ALL_AGE_MS \
	86400000 /* a domain's catch-all answer, a host's accepts-all: 24 h */
#define EMV_DEF_DOMSTATE_BACKOFF_MAX_MS 300000 /* a 421 back-off, own or shared, is at most 5 min */
#define EMV_DEF_DOMSTATE_SKEW_MS 60000	       /* an observation further in the future is refused */
#define EMV_DEF_DOMSTATE_MAX_ENTRIES 200000    /* hosts and domains remembered; more are not taken */
#define EMV_DEF_DOMSTATE_PUBLISH_MS 5000       /* one message per host or domain at most this often */
#define EMV_DEF_DOMSTATE_LOAD_MS 10000 /* worker start: reading the topic up to its end, at most; --domain-state-load S */
#define EMV_DEF_DOMSTATE_ACCEPTS_ALL_DOMAINS \
	3 /* a host accepted the random recipient of this many domains and refused none: accepts all */

/* ---- Coordinator pipeline (coordinator/) */
#define EMV_DEF_BATCH_MAX 500	   /* addresses per VerifyBatch (split, API); --batch-max */
#define EMV_DEF_SPLIT_MAX_SHARDS 4 /* keys one domain's batches spread over */
#define EMV_DEF_SPLIT_CHUNK 100000 /* rows fetched at a time */
#define EMV_DEF_KAFKA_FLUSH_TIMEOUT_MS 30000
#define EMV_DEF_SINK_GROUP_MAX 500    /* results stored per transaction */
#define EMV_DEF_SINK_EXPIRE_MS 1000   /* the sink looks for jobs past their time limits this often */
#define EMV_DEF_ROUTER_LIVE_MS 120000 /* a region is live while it reported this recently; --live S */
#define EMV_DEF_ROUTER_WAIT_MS 900000 /* a batch waits this long for a live region; --wait S */
#define EMV_DEF_EXPORT_FETCH_ROWS 5000

/* ---- the verdict cache (lib/emv_cache.h: why these ages) */
#define EMV_DEF_CACHE_DELIVERABLE_S (30LL * 86400)
#define EMV_DEF_CACHE_UNDELIVERABLE_S (90LL * 86400)
#define EMV_DEF_CACHE_RISKY_S (7LL * 86400)
#define EMV_DEF_CACHE_MAILBOX_FULL_S (1LL * 86400) /* a reason's own age: wins over risky's */
#define EMV_DEF_CACHE_FILE_BUSY_MS 5000 /* verify --cache: how long to wait for another run's write lock */
#define EMV_DEF_CACHE_FILE_BATCH 10000 /* verify --cache: lookups and stores per transaction */

/* ---- HTTP API (api/emv_api.h) and its webhooks (api/emv_webhook.h) */
#define EMV_DEF_API_LISTEN "127.0.0.1:8080"
#define EMV_DEF_API_MAX_UPLOAD 67108864 /* bytes (64 MiB) */
#define EMV_DEF_API_MAX_ROWS 1000000
#define EMV_DEF_API_MAX_DECOMPRESSED 268435456 /* bytes (256 MiB) */
#define EMV_DEF_API_MAX_UPLOADS 4
#define EMV_DEF_API_DB_THREADS 2
#define EMV_DEF_API_TIMEOUT_S 30
#define EMV_DEF_API_REQUEST_TIMEOUT_S 900
#define EMV_DEF_API_MAX_CONNECTIONS 1000
#define EMV_DEF_API_MAX_CONNECTIONS_PER_IP 64
#define EMV_DEF_API_CONNECTION_MEMORY 131072 /* bytes */
#define EMV_DEF_API_RATE_LIMIT 20	     /* requests a second per token */
#define EMV_DEF_API_RATE_BURST 40
#define EMV_DEF_API_AUTH_FAIL_LIMIT 20
#define EMV_DEF_API_AUTH_FAIL_WINDOW_S 60
#define EMV_DEF_WEBHOOK_PROGRESS 25 /* percent between progress calls */
#define EMV_DEF_WEBHOOK_ATTEMPTS 6
#define EMV_DEF_WEBHOOK_BACKOFF_MS 2000
#define EMV_DEF_WEBHOOK_TIMEOUT_S 10
#define EMV_DEF_WEBHOOK_POLL_MS 500

#endif
