/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_webhook.h - job webhooks (docs/api.md): a POST of JSON to the job's
 * callback_url when the job finishes, and when its progress passes each
 * step of progress_step percent.
 *
 * Deliveries are queued in PostgreSQL (webhook_deliveries, one per job,
 * event and percentage, its body fixed when queued) and sent by a thread
 * with an event loop and an evhttp client of its own.  Every attempt is a
 * webhook_attempts row; a delivery that gets no 2xx is retried after
 * backoff_ms, doubled each time, up to max_attempts, then marked failed.
 * Each attempt is signed:
 *
 *   X-Emailverify-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t "." body)>
 *
 * The callback host is resolved here and connected to by address (no
 * second lookup); loopback, private and reserved addresses are refused
 * unless allow_private.  https:// callbacks go over TLS (OpenSSL through
 * libevent's bufferevent_openssl under the evhttp client): the chain is
 * verified against ca_file or the system's store, and the certificate must
 * name the URL's host (X509_VERIFY_PARAM_set1_host, or _set1_ip_asc for an
 * address literal); a failure is an attempt that failed ("TLS: hostname
 * mismatch"), retried like any other.  http:// is refused unless
 * allow_http.  Replies are read with bounds (16 KiB of headers,
 * 64 KiB of body) and a timeout.
 */
#ifndef EMV_WEBHOOK_H
#define EMV_WEBHOOK_H

#include <stddef.h>

typedef struct {
	const char *database; /* libpq conninfo */
	int progress_step;    /* percent (25); 0: completion only */
	int max_attempts;     /* (6) */
	int backoff_ms;	      /* first retry after (2000) */
	int timeout_s;	      /* per attempt (10) */
	int allow_private;    /* callbacks to loopback/private addresses (tests) */
	int allow_http;	      /* plain http:// callbacks (private deployments); else https:// only */
	const char *ca_file;  /* PEM CA certificates that https:// callbacks are verified against;
	                             NULL: the system's store */
	int poll_ms;	      /* how often the queue is looked at (500) */
} emv_webhook_params;

void emv_webhook_params_default(emv_webhook_params *p);

typedef struct emv_webhooks emv_webhooks;

emv_webhooks *emv_webhooks_start(const emv_webhook_params *p);
void emv_webhooks_stop(emv_webhooks *w);

/* A callback URL's scheme, host (an IPv6 literal without its brackets)
 * and port (the scheme's default when not given): 0, or -1 with the reason
 * in err. */
int emv_webhook_url_parse(const char *url, int *tls, char *host, size_t hostlen, int *port, char *err, size_t errlen);

/* At upload: would a delivery to url be allowed?  Its host is resolved
 * (this blocks: call it from a thread that may wait) and refused when any
 * address it has is loopback, private, link-local or reserved, unless
 * allow_private.  0, or -1 with a message for the client in err. */
int emv_webhook_url_check(const char *url, int allow_private, char *err, size_t errlen);

/* Without DNS (the loop may call it): is the URL's scheme allowed?  0, or
 * -1 with the reason. */
int emv_webhook_url_scheme_ok(const char *url, int allow_http, char *err, size_t errlen);

/* The signature header value for body at unix time t (for tests and docs). */
void emv_webhook_sign(const char *secret, long long t, const char *body, size_t len, char *out, size_t outlen);

#endif
