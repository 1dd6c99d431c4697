/* SPDX-License-Identifier: Apache-2.0 */
/* emv_webhook.c - job webhooks (see emv_webhook.h). */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "emv_db.h"
#include "emv_defaults.h"
#include "emv_netsafe.h"
#include "emv_util.h"
#include "emv_webhook.h"

#define WEBHOOK_BATCH 50 /* deliveries started per poll */
#define WEBHOOK_MAX_HEADERS (16 * 1024)
#define WEBHOOK_MAX_BODY (64 * 1024)

void emv_webhook_params_default(emv_webhook_params *p)
{
	memset(p, 0, sizeof *p);
	p->progress_step = EMV_DEF_WEBHOOK_PROGRESS;
	p->max_attempts = EMV_DEF_WEBHOOK_ATTEMPTS;
	p->backoff_ms = EMV_DEF_WEBHOOK_BACKOFF_MS;
	p->timeout_s = EMV_DEF_WEBHOOK_TIMEOUT_S;
	p->poll_ms = EMV_DEF_WEBHOOK_POLL_MS;
}

struct attempt {
	struct emv_webhooks *w;
	long long delivery;
	int attempt;
	uint64_t t0;
	char error[128];
	struct evhttp_connection *evcon;
	SSL *ssl; /* https://: owned by evcon's bufferevent */
	struct attempt *next;
};

struct emv_webhooks {
	emv_webhook_params p;
	char database[1024];
	pthread_t th;
	struct event_base *base;
	struct event *timer;
	PGconn *c;
	struct attempt *inflight;
	SSL_CTX *tls; /* https:// callbacks */
	volatile int stop;
};

void emv_webhook_sign(const char *secret, long long t, const char *body, size_t len, char *out, size_t outlen)
{
	unsigned char mac[32];
	unsigned int maclen = sizeof mac;
	char ts[24], hex[65];
	size_t tl;
	char *msg;

	tl = (size_t)snprintf(ts, sizeof ts, "%lld", t);
	msg = emv_xmalloc(tl + 1 + len);
	memcpy(msg, ts, tl);
	msg[tl] = '.';
	memcpy(msg + tl + 1, body, len);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, tl + 1 + len, mac, &maclen);
	free(msg);
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	snprintf(out, outlen, "t=%s,v1=%s", ts, hex);
}

int emv_webhook_url_parse(const char *url, int *tls, char *host, size_t hostlen, int *port, char *err, size_t errlen)
{
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	const char *scheme, *h;
	size_t n;
	if (!uri || !(scheme = evhttp_uri_get_scheme(uri)) || !(h = evhttp_uri_get_host(uri)) || !*h ||
	    (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
		if (uri)
			evhttp_uri_free(uri);
		emv_set_err(err, errlen, "callback_url must be an http:// or https:// URL with a host");
		return -1;
	}
	*tls = strcasecmp(scheme, "https") == 0;
	n = strlen(h);
	/* evhttp keeps an IPv6 literal's brackets; getaddrinfo wants none */
	if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n == 0 || n >= hostlen) {
		evhttp_uri_free(uri);
		emv_set_err(err, errlen, "callback_url: the host name is empty or too long");
		return -1;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	*port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : *tls ? 443 : 80;
	evhttp_uri_free(uri);
	return 0;
}

int emv_webhook_url_scheme_ok(const char *url, int allow_http, char *err, size_t errlen)
{
	char host[256];
	int tls, port;
	if (emv_webhook_url_parse(url, &tls, host, sizeof host, &port, err, errlen) != 0)
		return -1;
	if (!tls && !allow_http) {
		emv_set_err(err, errlen,
			    "callback_url must be https:// (http:// only where the server allows it: "
			    "--webhook-allow-http)");
		return -1;
	}
	return 0;
}

int emv_webhook_url_check(const char *url, int allow_private, char *err, size_t errlen)
{
	char host[256], portstr[8];
	struct addrinfo hints, *ai = NULL;
	int tls, port, rc;
	if (emv_webhook_url_parse(url, &tls, host, sizeof host, &port, err, errlen) != 0)
		return -1;
	if (allow_private)
		return 0;
	snprintf(portstr, sizeof portstr, "%d", port);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc == EAI_AGAIN)
		return 0; /* the resolver is down now: delivery checks again */
	if (rc != 0 || !ai) {
		emv_set_err(err, errlen, "callback_url: the host %.64s does not resolve", host);
		return -1;
	}
	for (struct addrinfo *p = ai; p; p = p->ai_next) {
		const char *range = emv_netsafe_class(p->ai_addr);
		if (range) {
			emv_set_err(err, errlen, "callback_url: %.64s is a %s address; webhooks go to public addresses",
				    host, range);
			freeaddrinfo(ai);
			return -1;
		}
	}
	freeaddrinfo(ai);
	return 0;
}

static int db_ok(struct emv_webhooks *w)
{
	char err[512];
	if (w->c && PQstatus(w->c) == CONNECTION_OK)
		return 1;
	PQfinish(w->c);
	w->c = emv_db_connect(w->database[0] ? w->database : NULL, err, sizeof err);
	if (!w->c)
		emv_log(EMV_LOG_WARN, "webhook", "%s", err);
	return w->c != NULL;
}

/*
 * Queue what jobs owe: completion for finished jobs, progress for running
 * ones past the next step (only the highest step crossed since the last
 * look).  notified_percent moves in the same statement, so each is queued
 * once, whatever the number of coordinators.
 */
static const char enqueue_sql[] =
	"WITH j AS ("
	"  SELECT id, name, state, rows_total, addresses_total, n_final, n_unusable, n_deliverable, n_undeliverable,"
	"    n_risky, n_unknown, n_cached, finished_at, notified_percent,"
	"    CASE WHEN state IN ('done', 'failed', 'cancelled') THEN 100"
	"         WHEN $1::int > 0 THEN (floor(100.0 * n_final / greatest(n_unusable + addresses_total, 1) / $1::int)"
	"              * $1::int)::int"
	"         ELSE 0 END AS pct"
	"  FROM jobs WHERE callback_url IS NOT NULL AND notified_percent < 100 AND state NOT IN ('ingesting', 'deleting')"
	"  FOR UPDATE SKIP LOCKED),"
	" due AS ("
	"  SELECT *, CASE WHEN state IN ('done', 'failed', 'cancelled') THEN 'job.completed' ELSE 'job.progress' END AS ev"
	"  FROM j WHERE pct > notified_percent AND (state IN ('done', 'failed', 'cancelled') OR pct < 100)),"
	" ins AS ("
	"  INSERT INTO webhook_deliveries (job_id, event, percent, payload)"
	"  SELECT id, ev, pct, json_build_object('event', ev, 'job', json_build_object("
	"    'id', id, 'name', name, 'state', state, 'percent', pct, 'rows', rows_total,"
	"    'addresses', addresses_total, 'done', n_final, 'total', n_unusable + addresses_total,"
	"    'cached', n_cached,"
	"    'counts', json_build_object('deliverable', n_deliverable, 'undeliverable', n_undeliverable,"
	"      'risky', n_risky, 'unknown', n_unknown),"
	"    'finished_at', to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	"    'results_url', '/v1/jobs/' || id || '/results'))::text"
	"  FROM due ON CONFLICT (job_id, event, percent) DO NOTHING)"
	" UPDATE jobs SET notified_percent = due.pct FROM due WHERE jobs.id = due.id";

static int in_flight(struct emv_webhooks *w, long long id)
{
	for (struct attempt *a = w->inflight; a; a = a->next)
		if (a->delivery == id)
			return 1;
	return 0;
}

static void free_conn(evutil_socket_t fd, short what, void *arg)
{
	evhttp_connection_free(arg);
}

static const char *error_name(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT: return "timeout";
	case EVREQ_HTTP_EOF: return "connection closed";
	case EVREQ_HTTP_INVALID_HEADER: return "invalid reply header";
	case EVREQ_HTTP_BUFFER_ERROR: return "connection error";
	case EVREQ_HTTP_REQUEST_CANCEL: return "cancelled";
	case EVREQ_HTTP_DATA_TOO_LONG: return "reply too long";
	default: return "error";
	}
}

static void on_error(enum evhttp_request_error e, void *arg)
{
	struct attempt *a = arg;
	emv_strlcpy(a->error, error_name(e), sizeof a->error);
}

/* The attempt's outcome into the database; the delivery done, failed, or
 * due again after its back-off. */
static void record(struct attempt *a, int status)
{
	struct emv_webhooks *w = a->w;
	char id[24], n[16], st[16], ms[24], backoff[24], maxa[16];
	const char *v[7] = { id, n, status ? st : NULL, a->error[0] ? a->error : NULL, ms, backoff, maxa };
	PGresult *r;
	long long delay = (long long)w->p.backoff_ms << (a->attempt - 1 < 20 ? a->attempt - 1 : 20);

	snprintf(id, sizeof id, "%lld", a->delivery);
	snprintf(n, sizeof n, "%d", a->attempt);
	snprintf(st, sizeof st, "%d", status);
	snprintf(ms, sizeof ms, "%llu", (unsigned long long)(emv_now_ms() - a->t0));
	snprintf(backoff, sizeof backoff, "%lld", delay);
	snprintf(maxa, sizeof maxa, "%d", w->p.max_attempts);
	if (!db_ok(w))
		return; /* the delivery stays pending: tried again later */
	r = PQexecParams(w->c,
			 "WITH a AS (INSERT INTO webhook_attempts (delivery_id, attempt, http_status, error, duration_ms)"
			 "  VALUES ($1, $2, $3::int, $4, $5) ON CONFLICT DO NOTHING)"
			 " UPDATE webhook_deliveries SET attempts = $2,"
			 "  state = CASE WHEN $3::int BETWEEN 200 AND 299 THEN 'delivered'"
			 "    WHEN $2::int >= $7::int THEN 'failed' ELSE 'pending' END,"
			 "  delivered_at = CASE WHEN $3::int BETWEEN 200 AND 299 THEN now() END,"
			 "  next_attempt_at = now() + $6::bigint * interval '1 millisecond'"
			 " WHERE id = $1",
			 7, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		emv_log(EMV_LOG_WARN, "webhook", "recording delivery %lld: %s", a->delivery, PQresultErrorMessage(r));
	PQclear(r);
}

static void on_response(struct evhttp_request *req, void *arg)
{
	struct attempt *a = arg;
	struct emv_webhooks *w = a->w;
	struct timeval now = { 0, 0 };
	int status = req ? evhttp_request_get_response_code(req) : 0;

	if (!status && a->ssl) {
		/* say why TLS failed: the certificate, else OpenSSL's first error */
		long v = SSL_get_verify_result(a->ssl);
		unsigned long e = bufferevent_get_openssl_error(evhttp_connection_get_bufferevent(a->evcon));
		if (v != X509_V_OK)
			snprintf(a->error, sizeof a->error, "TLS: certificate not accepted: %s",
				 X509_verify_cert_error_string(v));
		else if (e)
			snprintf(a->error, sizeof a->error, "TLS: %s",
				 ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "handshake failed");
	}
	if (status && (status < 200 || status > 299) && !a->error[0])
		snprintf(a->error, sizeof a->error, "HTTP %d", status);
	else if (!status && !a->error[0])
		emv_strlcpy(a->error, "connection failed or no HTTP answer", sizeof a->error);
	emv_log(status >= 200 && status <= 299 ? EMV_LOG_INFO : EMV_LOG_WARN, "webhook", "delivery %lld attempt %d: %s",
		a->delivery, a->attempt, status >= 200 && status <= 299 ? "delivered" : a->error);
	record(a, status);
	for (struct attempt **p = &w->inflight; *p; p = &(*p)->next)
		if (*p == a) {
			*p = a->next;
			break;
		}
	/* not from inside its own callback */
	event_base_once(w->base, -1, EV_TIMEOUT, free_conn, a->evcon, &now);
	free(a);
}

/* Start one attempt; on a failure before any request, record it at once. */
static void send_one(struct emv_webhooks *w, long long delivery, int attempt, const char *event, const char *url,
		     const char *secret, const char *payload)
{
	struct attempt *a = emv_xcalloc(1, sizeof *a);
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	struct addrinfo hints, *ai = NULL;
	struct evhttp_request *req;
	struct evkeyvalq *h;
	char ip[INET6_ADDRSTRLEN], portstr[8], hosthdr[300], sig[128], did[24], path[2300];
	char host[256];
	const char *q, *range;
	int port = 0, tls = 0;

	a->w = w;
	a->delivery = delivery;
	a->attempt = attempt;
	a->t0 = emv_now_ms();
	if (!uri || emv_webhook_url_parse(url, &tls, host, sizeof host, &port, a->error, sizeof a->error) != 0) {
		if (!a->error[0])
			emv_strlcpy(a->error, "callback_url cannot be parsed", sizeof a->error);
		goto fail;
	}
	snprintf(portstr, sizeof portstr, "%d", port);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, portstr, &hints, &ai) != 0 || !ai) {
		snprintf(a->error, sizeof a->error, "cannot resolve %.64s", host);
		goto fail;
	}
	if (!w->p.allow_private && (range = emv_netsafe_class(ai->ai_addr))) {
		snprintf(a->error, sizeof a->error, "refused: %.64s is a %s address", host, range);
		goto fail;
	}
	if (ai->ai_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, ip, sizeof ip);
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, ip, sizeof ip);
	if (!tls && !w->p.allow_http) {
		emv_strlcpy(a->error, "refused: http:// callbacks need --webhook-allow-http", sizeof a->error);
		goto fail;
	}
	if (tls) {
		struct bufferevent *bev;
		struct in6_addr any;
		int literal = inet_pton(AF_INET, host, &any) == 1 || inet_pton(AF_INET6, host, &any) == 1;
		X509_VERIFY_PARAM *vp;
		if (!w->tls || !(a->ssl = SSL_new(w->tls))) {
			emv_strlcpy(a->error, "TLS: no context", sizeof a->error);
			goto fail;
		}
		vp = SSL_get0_param(a->ssl);
		if (literal) {
			X509_VERIFY_PARAM_set1_ip_asc(vp, host);
		} else {
			SSL_set_tlsext_host_name(a->ssl, host);
			X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			X509_VERIFY_PARAM_set1_host(vp, host, 0);
		}
		SSL_set_verify(a->ssl, SSL_VERIFY_PEER, NULL);
		bev = bufferevent_openssl_socket_new(w->base, -1, a->ssl, BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (!bev) {
			SSL_free(a->ssl);
			a->ssl = NULL;
			emv_strlcpy(a->error, "TLS: no connection", sizeof a->error);
			goto fail;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
		a->evcon = evhttp_connection_base_bufferevent_new(w->base, NULL, bev, ip, (unsigned short)port);
	} else {
		a->evcon = evhttp_connection_base_new(w->base, NULL, ip, (unsigned short)port);
	}
	evhttp_connection_set_timeout(a->evcon, w->p.timeout_s);
	evhttp_connection_set_retries(a->evcon, 0);
	evhttp_connection_set_max_headers_size(a->evcon, WEBHOOK_MAX_HEADERS);
	evhttp_connection_set_max_body_size(a->evcon, WEBHOOK_MAX_BODY);
	req = evhttp_request_new(on_response, a);
	evhttp_request_set_error_cb(req, on_error);
	h = evhttp_request_get_output_headers(req);
	/* Host: an IPv6 literal in its brackets again (RFC 7230 5.4) */
	snprintf(hosthdr, sizeof hosthdr, "%s%s%s", strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "");
	if (port != (tls ? 443 : 80))
		snprintf(hosthdr + strlen(hosthdr), sizeof hosthdr - strlen(hosthdr), ":%d", port);
	emv_webhook_sign(secret, (long long)time(NULL), payload, strlen(payload), sig, sizeof sig);
	snprintf(did, sizeof did, "%lld", delivery);
	evhttp_add_header(h, "Host", hosthdr);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "User-Agent", "emailverify/" EMV_VERSION);
	evhttp_add_header(h, "X-Emailverify-Event", event);
	evhttp_add_header(h, "X-Emailverify-Delivery", did);
	evhttp_add_header(h, "X-Emailverify-Signature", sig);
	evhttp_add_header(h, "Connection", "close");
	evbuffer_add(evhttp_request_get_output_buffer(req), payload, strlen(payload));
	q = evhttp_uri_get_query(uri);
	snprintf(path, sizeof path, "%s%s%s",
		 evhttp_uri_get_path(uri) && *evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "/", q ? "?" : "",
		 q ? q : "");
	freeaddrinfo(ai);
	evhttp_uri_free(uri);
	a->next = w->inflight;
	w->inflight = a;
	if (evhttp_make_request(a->evcon, req, EVHTTP_REQ_POST, path) != 0) {
		/* req is freed by evhttp on failure */
		w->inflight = a->next;
		emv_strlcpy(a->error, "the request could not be made", sizeof a->error);
		record(a, 0);
		evhttp_connection_free(a->evcon);
		free(a);
	}
	return;
fail:
	emv_log(EMV_LOG_WARN, "webhook", "delivery %lld attempt %d: %s", delivery, attempt, a->error);
	record(a, 0);
	if (ai)
		freeaddrinfo(ai);
	if (uri)
		evhttp_uri_free(uri);
	free(a);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	struct emv_webhooks *w = arg;
	char step[16];
	const char *v[1] = { step };
	PGresult *r;

	if (w->stop) {
		event_base_loopexit(w->base, NULL);
		return;
	}
	if (!db_ok(w))
		return;
	snprintf(step, sizeof step, "%d", w->p.progress_step);
	r = PQexecParams(w->c, enqueue_sql, 1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		emv_log(EMV_LOG_WARN, "webhook", "queueing deliveries: %s", PQresultErrorMessage(r));
	PQclear(r);
	r = PQexec(w->c, "SELECT d.id, d.attempts, d.event, j.callback_url, j.callback_secret, d.payload"
			 " FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id"
			 " WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND j.callback_url IS NOT NULL"
			 " ORDER BY d.id LIMIT 50");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		emv_log(EMV_LOG_WARN, "webhook", "reading deliveries: %s", PQresultErrorMessage(r));
		PQclear(r);
		return;
	}
	for (int i = 0; i < PQntuples(r) && i < WEBHOOK_BATCH; i++) {
		long long id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		if (in_flight(w, id))
			continue;
		send_one(w, id, atoi(PQgetvalue(r, i, 1)) + 1, PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
			 PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
	}
	PQclear(r);
}

static void *webhook_main(void *arg)
{
	struct emv_webhooks *w = arg;
	event_base_dispatch(w->base);
	return NULL;
}

emv_webhooks *emv_webhooks_start(const emv_webhook_params *p)
{
	struct emv_webhooks *w = emv_xcalloc(1, sizeof *w);
	struct timeval tv;
	w->p = *p;
	if (p->database)
		emv_strlcpy(w->database, p->database, sizeof w->database);
	if (w->p.poll_ms <= 0)
		w->p.poll_ms = 500;
	if (w->p.max_attempts < 1)
		w->p.max_attempts = 1;
	w->tls = SSL_CTX_new(TLS_client_method());
	if (w->tls) {
		SSL_CTX_set_min_proto_version(w->tls, TLS1_2_VERSION);
		SSL_CTX_set_verify(w->tls, SSL_VERIFY_PEER, NULL);
		if (p->ca_file ? SSL_CTX_load_verify_locations(w->tls, p->ca_file, NULL) != 1
			       : SSL_CTX_set_default_verify_paths(w->tls) != 1)
			emv_log(EMV_LOG_WARN, "webhook",
				"%s: cannot load CA certificates; https:// callbacks will fail",
				p->ca_file ? p->ca_file : "the system's store");
	}
	w->base = event_base_new();
	w->timer = event_new(w->base, -1, EV_PERSIST, tick, w);
	tv.tv_sec = w->p.poll_ms / 1000;
	tv.tv_usec = (w->p.poll_ms % 1000) * 1000;
	event_add(w->timer, &tv);
	if (pthread_create(&w->th, NULL, webhook_main, w) != 0) {
		event_free(w->timer);
		event_base_free(w->base);
		free(w);
		return NULL;
	}
	return w;
}

void emv_webhooks_stop(emv_webhooks *w)
{
	if (!w)
		return;
	w->stop = 1; /* the next tick leaves the loop */
	pthread_join(w->th, NULL);
	/* attempts still in flight are left to the process exit (the caller
	 * exits next): freeing their connections would call back into them;
	 * they are tried again, as still pending, by the next coordinator */
	if (!w->inflight) {
		event_free(w->timer);
		event_base_free(w->base);
		PQfinish(w->c);
		free(w);
	}
}
