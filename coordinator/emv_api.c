/*
 * emv_api.c - the HTTP API: server, requests, routing, query pool, jobs
 * (see emv_api.h).
 *
 * Why libmicrohttpd (Debian 12: libmicrohttpd12, 0.9.75) and not libevent's
 * evhttp, which the rest of the coordinator uses: evhttp 2.1 hands a server
 * request to the application only once its whole body has arrived, so an
 * upload had to be held in memory whole before it could be streamed into
 * PostgreSQL, and a body far over the limit got evhttp's own HTML 413.  MHD
 * calls us with the body as it arrives, lets a connection be suspended
 * while PostgreSQL catches up (backpressure instead of buffering), parses
 * multipart/form-data incrementally, and can be driven by our own event
 * loop (its epoll descriptor is one more libevent event), so the threading
 * of the API is unchanged.  The HTTP clients (webhooks, `emailverify
 * submit`) stay on evhttp, which streams fine in that direction.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <event2/thread.h>
#include <librdkafka/rdkafka.h>
#include "emv_api_internal.h"
#include "emv_ipstate.h"
#include "emv_router.h"
#include "emv_routes.h"
#include "emv_db.h"
#include "emv_export.h"
#include "emv_kafka.h"
#include "emv_split.h"
#include "emv_stop.h"
#include "emv_util.h"
#include "emv_webhook.h"

void emv_api_params_default(emv_api_params *p)
{
	memset(p, 0, sizeof *p);
	p->listen = "127.0.0.1:8080";
	p->max_upload = 64 * 1024 * 1024;
	p->max_rows = 1000000;
	p->max_decompressed = 256 * 1024 * 1024;
	p->max_uploads = 4;
	p->max_uploads_per_tenant = 0; /* max_uploads / 2 */
	p->db_threads = 2;
	p->timeout_s = 30;
	p->request_timeout_s = 900;
	p->max_connections = 1000;
	p->max_connections_per_ip = 64;
	p->connection_memory = 128 * 1024;
	p->rate_limit = 20;
	p->rate_burst = 40;
	p->auth_fail_limit = 20;
	p->auth_fail_window_s = 60;
	p->batch_max = 500;
	p->webhook_progress = 25;
	p->webhook_attempts = 6;
	p->webhook_backoff_ms = 2000;
	p->webhook_timeout_s = 10;
	p->shutdown_ms = EMV_STOP_TIMEOUT_MS;
}

/* ---------------------------------------------------------------- requests */

void api_count_status(struct api *a, int status)
{
	int k = status / 100;
	if (k >= 1 && k <= 5)
		__atomic_add_fetch(&a->http_by_class[k], 1, __ATOMIC_RELAXED);
}

void api_mhd_kick(struct api *a)
{
	struct timeval tv = { 0, 0 };
	if (a->mhd_timer) /* none without a server (the router fuzzer) */
		evtimer_add(a->mhd_timer, &tv);
}

static const char *req_value(struct api_req *r, enum MHD_ValueKind kind, const char *key)
{
	if (!r->conn)
		return NULL;
	if (r->values)
		return r->values(r, kind, key);
	return MHD_lookup_connection_value(r->conn, kind, key);
}

const char *api_req_header(struct api_req *r, const char *name)
{
	return req_value(r, MHD_HEADER_KIND, name);
}

const char *api_req_query(struct api_req *r, const char *key)
{
	return req_value(r, MHD_GET_ARGUMENT_KIND, key);
}

struct query_walk {
	int (*fn)(void *arg, const char *key, const char *value);
	void *arg;
	int rc;
};

static enum MHD_Result query_one(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct query_walk *w = cls;
	w->rc = w->fn(w->arg, key, value ? value : "");
	return w->rc ? MHD_NO : MHD_YES;
}

int api_req_query_each(struct api_req *r, int (*fn)(void *arg, const char *key, const char *value), void *arg)
{
	struct query_walk w = { fn, arg, 0 };
	if (r->conn && !r->values)
		MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_one, &w);
	return w.rc;
}

void api_req_add_header(struct api_req *r, const char *name, const char *value)
{
	if (r->nhdr >= API_REPLY_HEADERS)
		return;
	emv_strlcpy(r->hdr[r->nhdr][0], name, sizeof r->hdr[0][0]);
	emv_strlcpy(r->hdr[r->nhdr][1], value, sizeof r->hdr[0][1]);
	r->nhdr++;
}

void api_req_ref(struct api_req *r)
{
	r->refs++;
}

void api_req_unref(struct api_req *r)
{
	if (--r->refs > 0)
		return;
	if (r->reply)
		MHD_destroy_response(r->reply);
	free(r);
}

void api_req_suspend(struct api_req *r)
{
	if (r->suspended || !r->conn)
		return;
	MHD_suspend_connection(r->conn);
	r->suspended = 1;
}

void api_req_resume(struct api_req *r)
{
	if (!r->suspended || !r->conn)
		return;
	r->suspended = 0;
	MHD_resume_connection(r->conn);
	api_mhd_kick(r->a);
}

static void auth_failed(struct api *a, const struct api_req *r);

void api_reply_response(struct api_req *r, unsigned status, struct MHD_Response *resp)
{
	if (!r->conn || r->answered || r->reply) {
		MHD_destroy_response(resp);
		return;
	}
	for (int i = 0; i < r->nhdr; i++)
		MHD_add_response_header(resp, r->hdr[i][0], r->hdr[i][1]);
	r->nhdr = 0;
	r->reply = resp;
	r->reply_status = status;
	api_count_status(r->a, (int)status);
	if (status == 401 && r->token_given)
		auth_failed(r->a, r);
	api_req_resume(r); /* the call that follows queues it */
}

/* What is sent when an answer cannot be formatted: still JSON, still an
 * answer (a NULL from jansson must never reach strlen). */
static const char reply_unformattable[] =
	"{\"error\":{\"code\":\"internal\",\"message\":\"the answer could not be formatted\"}}\n";

void api_reply_json(struct api_req *r, int status, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
	size_t n;
	struct MHD_Response *resp;
	json_decref(body);
	if (!s) {
		emv_log(EMV_LOG_ERROR, "api", "an answer (status %d) could not be formatted: 500 instead", status);
		status = 500;
		s = emv_xstrdup(reply_unformattable);
		n = strlen(s);
	} else {
		n = strlen(s);
		s = emv_xrealloc(s, n + 2);
		s[n++] = '\n';
		s[n] = '\0';
	}
	resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	api_reply_response(r, (unsigned)status, resp);
}

static json_t *error_body(const char *code, const char *message)
{
	return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
}

/* The message is made of whatever the client sent (a path, a parameter):
 * formatted, then made valid UTF-8 without control characters, so that a
 * byte that is not text, or a character cut by a precision, cannot make
 * the JSON fail. */
void api_reply_error(struct api_req *r, int status, const char *code, const char *fmt, ...)
{
	char raw[512], msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	emv_sanitize_utf8(msg, sizeof msg, raw, strlen(raw));
	if (status == 401)
		api_req_add_header(r, "WWW-Authenticate", "Bearer");
	api_reply_json(r, status, error_body(code, msg));
}

void api_task_error(struct task *t, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	t->status = status;
	emv_strlcpy(t->code, code, sizeof t->code);
	va_start(ap, fmt);
	vsnprintf(t->message, sizeof t->message, fmt, ap);
	va_end(ap);
	if (t->json) {
		json_decref(t->json);
		t->json = NULL;
	}
}

void api_task_reply(struct task *t)
{
	if (t->code[0])
		api_reply_error(t->req, t->status, t->code, "%s", t->message);
	else {
		api_reply_json(t->req, t->status ? t->status : 200, t->json ? t->json : json_object());
		t->json = NULL;
	}
}

/* --------------------------------------------------------------- the pool */

struct task *api_task_new(struct api *a, struct api_req *req)
{
	struct task *t = emv_xcalloc(1, sizeof *t);
	t->api = a;
	t->req = req;
	if (req)
		api_req_ref(req);
	return t;
}

void api_task_free(struct task *t)
{
	if (!t)
		return;
	if (t->json)
		json_decref(t->json);
	if (t->req)
		api_req_unref(t->req);
	free(t);
}

/*
 * Tenants take turns in the pool.  Before a token's first answer its
 * tenant is unknown: its lane is the token's own; after, every token of a
 * tenant shares the tenant's lane (a loop-only cache of token hash ->
 * tenant, filled from answered tasks).  The pool serves the lanes round
 * robin, one task per turn, and with more than one query thread a lane
 * holds at most db_threads - 1 of them: one tenant's slow queries can
 * never take every thread from the others.
 */
struct tenant_cache {
	unsigned char hash[32];
	char tenant[EMV_TENANT_MAX + 1];
};

#define TENANT_CACHE 1024

static struct tenant_cache *tenant_slot(struct api *a, const unsigned char hash[32])
{
	uint64_t h;
	memcpy(&h, hash, sizeof h);
	return a->tenants ? &a->tenants[h % TENANT_CACHE] : NULL;
}

static void lane_key(struct api *a, const struct task *t, char *key, size_t keylen)
{
	static const unsigned char zero[32];
	struct tenant_cache *c;
	if (memcmp(t->token_hash, zero, 32) == 0) {
		key[0] = '\0';
		return;
	}
	c = tenant_slot(a, t->token_hash);
	if (c && c->tenant[0] && memcmp(c->hash, t->token_hash, 32) == 0) {
		snprintf(key, keylen, "t:%s", c->tenant);
		return;
	}
	snprintf(key, keylen, "h:");
	for (int i = 0; i < 16; i++)
		snprintf(key + 2 + 2 * i, keylen - 2 - 2 * (size_t)i, "%02x", t->token_hash[i]);
}

void api_task_submit(struct task *t)
{
	struct api *a = t->api;
	struct lane *l, **lp;
	char key[80];
	lane_key(a, t, key, sizeof key);
	if (t->req) {
		t->req->busy++;
		t->pooled = 1;
	}
	pthread_mutex_lock(&a->mu);
	for (lp = &a->lanes; *lp && strcmp((*lp)->key, key) != 0; lp = &(*lp)->next)
		;
	if (!(l = *lp)) {
		l = emv_xcalloc(1, sizeof *l);
		emv_strlcpy(l->key, key, sizeof l->key);
		*lp = l; /* a new lane at the end of the turn */
	}
	t->next = NULL;
	t->lane = l;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

struct task *api_queue_pop(struct api *a)
{
	int cap = a->npool > 1 ? a->npool - 1 : 1;
	struct lane **lp, *l;
	struct task *t;
	for (lp = &a->lanes; *lp; lp = &(*lp)->next)
		if ((*lp)->head && (*lp)->running < cap)
			break;
	if (!(l = *lp))
		return NULL;
	t = l->head;
	l->head = t->next;
	if (!l->head)
		l->tail = NULL;
	t->next = NULL;
	l->running++;
	/* its turn is over: to the end of the line */
	*lp = l->next;
	l->next = NULL;
	for (lp = &a->lanes; *lp; lp = &(*lp)->next)
		;
	*lp = l;
	return t;
}

void api_queue_finished(struct api *a, struct task *t)
{
	struct lane *l = t->lane, **lp;
	t->lane = NULL;
	if (!l)
		return;
	l->running--;
	if (l->running > 0 || l->head)
		return;
	for (lp = &a->lanes; *lp; lp = &(*lp)->next)
		if (*lp == l) {
			*lp = l->next;
			break;
		}
	free(l);
}

PGconn *api_db_connect(struct api *a, char *err, size_t errlen)
{
	PGconn *c = emv_db_connect(a->database, err, errlen);
	PGresult *r;
	if (!c)
		return NULL;
	/* a query that hangs must not hold a pool thread for ever */
	r = PQexec(c, "SET statement_timeout = '60s'");
	PQclear(r);
	return c;
}

static void *pool_main(void *arg)
{
	struct api *a = arg;
	PGconn *c = NULL;
	char err[512];

	for (;;) {
		struct task *t = NULL;
		pthread_mutex_lock(&a->mu);
		while (!a->stopping && !(t = api_queue_pop(a)))
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->stopping) {
			pthread_mutex_unlock(&a->mu);
			break;
		}
		pthread_mutex_unlock(&a->mu);

		if (c && PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			c = NULL;
		}
		if (!c && !(c = api_db_connect(a, err, sizeof err))) {
			emv_log(EMV_LOG_WARN, "api", "%s", err);
			api_task_error(t, 503, "database_unavailable", "the database is not reachable");
		} else {
			t->work(t, c);
			/* A connection that broke under the task (PostgreSQL restarted,
			 * the backend terminated) is not the request's fault: once,
			 * on a fresh connection, the task runs again.  What failed
			 * on a broken connection was not committed. */
			if (t->code[0] && PQstatus(c) != CONNECTION_OK) {
				PQfinish(c);
				c = NULL;
				emv_log(EMV_LOG_INFO, "api", "the database connection broke; reconnecting and trying again");
				if ((c = api_db_connect(a, err, sizeof err))) {
					t->status = 0;
					t->code[0] = t->message[0] = '\0';
					if (t->json) {
						json_decref(t->json);
						t->json = NULL;
					}
					t->work(t, c);
				} else {
					emv_log(EMV_LOG_WARN, "api", "%s", err);
				}
			}
		}
		pthread_mutex_lock(&a->mu);
		api_queue_finished(a, t);
		/* a lane at its cap may run again: wake a thread for it */
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
		api_task_post(t);
	}
	PQfinish(c);
	return NULL;
}

void api_task_post(struct task *t)
{
	struct api *a = t->api;
	pthread_mutex_lock(&a->done_mu);
	t->next = NULL;
	if (a->dtail)
		a->dtail->next = t;
	else
		a->dhead = t;
	a->dtail = t;
	pthread_mutex_unlock(&a->done_mu);
	event_active(a->done_ev, EV_READ, 0);
}

static void on_tasks_done(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;
	struct task *t;
	pthread_mutex_lock(&a->done_mu);
	t = a->dhead;
	a->dhead = a->dtail = NULL;
	pthread_mutex_unlock(&a->done_mu);
	while (t) {
		struct task *next = t->next;
		if (t->pooled) {
			t->pooled = 0;
			t->req->busy--;
		}
		if (t->tenant[0]) {
			struct tenant_cache *c = tenant_slot(a, t->token_hash);
			if (c) {
				memcpy(c->hash, t->token_hash, 32);
				emv_strlcpy(c->tenant, t->tenant, sizeof c->tenant);
			}
		}
		t->done(t); /* frees t or hands it on */
		t = next;
	}
}

/* The usual done(): answer and free. */
static void task_done_reply(struct task *t)
{
	api_task_reply(t);
	api_task_free(t);
}

int api_authenticate(struct task *t, PGconn *c)
{
	char err[512];
	int f = emv_token_lookup(c, t->token_hash, t->tenant, sizeof t->tenant, err, sizeof err);
	if (f < 0) {
		emv_log(EMV_LOG_WARN, "api", "%s", err);
		api_task_error(t, 503, "database_unavailable", "the database is not reachable");
		return 0;
	}
	if (f == 0) {
		api_task_error(t, 401, "unauthorized", "the token is not valid or has been revoked");
		return 0;
	}
	return 1;
}

/* ------------------------------------------------------------- rate limits */

/* One token bucket per presented token (keyed by its hash), in a fixed
 * table: a full probe window evicts its least recently used entry. */
struct rate_bucket {
	unsigned char key[32];
	double tokens;
	uint64_t last_us;
	int used;
};

#define RATE_TABLE 4096
#define RATE_PROBE 16

/* 0 when allowed, else the seconds to wait. */
static int rate_check(struct api *a, const unsigned char key[32])
{
	uint64_t now = emv_now_us(), h;
	struct rate_bucket *b = NULL, *oldest = NULL;
	if (a->p.rate_limit <= 0)
		return 0;
	memcpy(&h, key, sizeof h);
	for (int i = 0; i < RATE_PROBE; i++) {
		struct rate_bucket *x = &a->buckets[(h + (uint64_t)i) % RATE_TABLE];
		if (x->used && memcmp(x->key, key, 32) == 0) {
			b = x;
			break;
		}
		if (!x->used) {
			oldest = x;
			break;
		}
		if (!oldest || x->last_us < oldest->last_us)
			oldest = x;
	}
	if (!b) {
		b = oldest;
		memcpy(b->key, key, 32);
		b->used = 1;
		b->tokens = a->p.rate_burst;
		b->last_us = now;
	}
	b->tokens += (double)(now - b->last_us) / 1e6 * a->p.rate_limit;
	if (b->tokens > a->p.rate_burst)
		b->tokens = a->p.rate_burst;
	b->last_us = now;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return 0;
	}
	return (int)ceil((1 - b->tokens) / a->p.rate_limit);
}

/*
 * Failed authentications per client address: every refused token costs a
 * database lookup, so an address that presents more than auth_fail_limit
 * refused tokens within auth_fail_window_s gets 429 for any token (good
 * ones too: the lookup is what is being spared) until its window ends.
 * A fixed window per address in a fixed table (the least recently started
 * window in a full probe run is evicted); loop only.
 */
struct auth_fail {
	unsigned char addr[16];
	int len;
	int count;
	uint64_t start_ms;
};

#define AUTH_TABLE 4096
#define AUTH_PROBE 16

static struct auth_fail *auth_slot(struct api *a, const struct api_req *r, int add)
{
	uint64_t h = 1469598103934665603ull;
	struct auth_fail *oldest = NULL;
	if (a->p.auth_fail_limit <= 0 || r->peer_len == 0 || !a->auth_fails)
		return NULL;
	for (int i = 0; i < r->peer_len; i++)
		h = (h ^ r->peer[i]) * 1099511628211ull;
	for (int i = 0; i < AUTH_PROBE; i++) {
		struct auth_fail *x = &a->auth_fails[(h + (uint64_t)i) % AUTH_TABLE];
		if (x->len == r->peer_len && memcmp(x->addr, r->peer, (size_t)x->len) == 0)
			return x;
		if (!x->len) {
			oldest = x;
			break;
		}
		if (!oldest || x->start_ms < oldest->start_ms)
			oldest = x;
	}
	if (!add)
		return NULL;
	memset(oldest, 0, sizeof *oldest);
	memcpy(oldest->addr, r->peer, (size_t)r->peer_len);
	oldest->len = r->peer_len;
	oldest->start_ms = emv_now_ms();
	return oldest;
}

static void auth_failed(struct api *a, const struct api_req *r)
{
	struct auth_fail *f = auth_slot(a, r, 1);
	uint64_t now = emv_now_ms();
	if (!f)
		return;
	if (now - f->start_ms >= (uint64_t)a->p.auth_fail_window_s * 1000) {
		f->start_ms = now;
		f->count = 0;
	}
	f->count++;
}

/* 0 when this address may try a token, else the seconds to wait. */
static int auth_wait(struct api *a, const struct api_req *r)
{
	struct auth_fail *f = auth_slot(a, r, 0);
	uint64_t now = emv_now_ms(), end;
	if (!f || f->count < a->p.auth_fail_limit)
		return 0;
	end = f->start_ms + (uint64_t)a->p.auth_fail_window_s * 1000;
	if (now >= end)
		return 0;
	return (int)((end - now + 999) / 1000);
}

/* ------------------------------------------------------------------- jobs */

const char api_job_columns[] =
	"id, name, state, rows_total, addresses_total, n_final, n_unusable, n_deliverable, n_undeliverable, "
	"n_risky, n_unknown, split_done, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"extract(epoch FROM coalesce(finished_at, now()) - created_at), callback_url IS NOT NULL";

static json_int_t ll(PGresult *r, int i, int c)
{
	return (json_int_t)strtoll(PQgetvalue(r, i, c), NULL, 10);
}

/* A jobs row (api_job_columns) as JSON. */
json_t *api_job_json(PGresult *r, int i)
{
	json_int_t rows = ll(r, i, 3), uniq = ll(r, i, 4), fin = ll(r, i, 5), unusable = ll(r, i, 6);
	json_int_t total = uniq + unusable, verified = fin - unusable;
	double secs = strtod(PQgetvalue(r, i, 14), NULL);
	double pct = total > 0 ? 100.0 * (double)fin / (double)total : 100.0;
	double rate = secs > 0 && verified > 0 ? (double)verified / secs : 0;
	const char *state = PQgetvalue(r, i, 2);
	int finished = strcmp(state, "done") == 0 || strcmp(state, "cancelled") == 0 || strcmp(state, "failed") == 0;
	json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I},s:I,s:I,s:f,s:f,s:s,s:b}",
			      "id", PQgetvalue(r, i, 0), "name", PQgetvalue(r, i, 1), "state", state,
			      "rows", rows, "addresses", uniq, "duplicates", rows - uniq - unusable,
			      "unusable", unusable, "done", fin,
			      "counts", "deliverable", ll(r, i, 7), "undeliverable", ll(r, i, 8), "risky", ll(r, i, 9),
			      "unknown", ll(r, i, 10),
			      "total", total, "batched", ll(r, i, 11),
			      "percent", floor(pct * 10) / 10, "rate_per_s", floor(rate * 10) / 10,
			      "created_at", PQgetvalue(r, i, 12), "callback", PQgetvalue(r, i, 15)[0] == 't');
	json_object_set_new(j, "finished_at", PQgetisnull(r, i, 13) ? json_null() : json_string(PQgetvalue(r, i, 13)));
	if (!finished && rate > 0)
		json_object_set_new(j, "eta_s", json_integer((json_int_t)ceil((double)(total - fin) / rate)));
	else
		json_object_set_new(j, "eta_s", finished ? json_integer(0) : json_null());
	return j;
}

static void db_fail(struct task *t, PGresult *r, const char *what)
{
	char msg[512];
	emv_strlcpy(msg, PQresultErrorMessage(r), sizeof msg);
	emv_log(EMV_LOG_WARN, "api", "%s: %s", what, emv_trim(msg));
	api_task_error(t, 503, "database_error", "%s failed; try again", what);
}

/*
 * Counts by reason come from a GROUP BY over the job's results: cheap for
 * small jobs, a scan of a million rows for big ones.  So they are cached
 * per job: for REASONS_TTL_MS while the job runs (one request in that time
 * pays for the query; the others get the last answer, also while it is
 * being recomputed), for good once the job is finished (final verdicts
 * never change).  A deleted job is 404 before its entry is looked at.
 */
#define REASONS_CACHE   64
#define REASONS_TTL_MS  2000

static struct reasons_entry {
	char job[80];
	uint64_t at_ms;
	int finished, refreshing;
	char *json;
} reasons_cache[REASONS_CACHE];
static pthread_mutex_t reasons_mu = PTHREAD_MUTEX_INITIALIZER;

/* 1 with a copy of a usable cached answer in *out; 0 when the caller must
 * compute it (and then call reasons_store). */
static int reasons_lookup(const char *job, int finished, char **out)
{
	struct reasons_entry *e = NULL;
	int hit = 0;
	pthread_mutex_lock(&reasons_mu);
	for (int i = 0; i < REASONS_CACHE; i++)
		if (strcmp(reasons_cache[i].job, job) == 0)
			e = &reasons_cache[i];
	/* a job finished since the entry was made gets its final counts now */
	if (e && e->json &&
	    (e->finished || (!finished && (emv_now_ms() - e->at_ms < REASONS_TTL_MS || e->refreshing)))) {
		*out = emv_xstrdup(e->json);
		hit = 1;
	} else if (e) {
		e->refreshing = 1;
	}
	pthread_mutex_unlock(&reasons_mu);
	return hit;
}

static void reasons_store(const char *job, const char *json, int finished)
{
	struct reasons_entry *e = NULL;
	pthread_mutex_lock(&reasons_mu);
	for (int i = 0; i < REASONS_CACHE && !e; i++)
		if (strcmp(reasons_cache[i].job, job) == 0)
			e = &reasons_cache[i];
	for (int i = 0; i < REASONS_CACHE && !e; i++)
		if (!e || reasons_cache[i].at_ms < e->at_ms)
			e = &reasons_cache[i]; /* the oldest goes */
	if (strcmp(e->job, job) != 0) {
		emv_strlcpy(e->job, job, sizeof e->job);
		free(e->json);
		e->json = NULL;
	}
	free(e->json);
	e->json = emv_xstrdup(json);
	e->at_ms = emv_now_ms();
	e->finished = finished;
	e->refreshing = 0;
	pthread_mutex_unlock(&reasons_mu);
}

static void work_job_status(struct task *t, PGconn *c)
{
	char sql[1024];
	const char *v[2] = { t->id, t->tenant };
	PGresult *r;
	json_t *reasons;
	char *cached;
	int finished;

	if (!api_authenticate(t, c))
		return;
	snprintf(sql, sizeof sql, "SELECT %s FROM jobs WHERE id = $1 AND tenant = $2", api_job_columns);
	r = PQexecParams(c, sql, 2, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		db_fail(t, r, "reading the job");
		PQclear(r);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		api_task_error(t, 404, "not_found", "no job '%s'", t->id);
		return;
	}
	t->json = api_job_json(r, 0);
	finished = strcmp(PQgetvalue(r, 0, 2), "done") == 0 || strcmp(PQgetvalue(r, 0, 2), "failed") == 0;
	PQclear(r);
	if (reasons_lookup(t->id, finished, &cached)) {
		json_object_set_new(t->json, "reasons", json_loads(cached, 0, NULL));
		free(cached);
		t->status = 200;
		return;
	}
	/* final verdicts by status and reason (the unique addresses and the
	 * unusable rows; duplicates share their first row's verdict) */
	r = PQexecParams(c, "SELECT status, reason, count(*) FROM results WHERE job_id = $1 AND final "
			    "GROUP BY status, reason ORDER BY status, reason", 1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		db_fail(t, r, "counting the job's results");
		PQclear(r);
		return;
	}
	reasons = json_object();
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *s = json_object_get(reasons, PQgetvalue(r, i, 0));
		if (!s) {
			s = json_object();
			json_object_set_new(reasons, PQgetvalue(r, i, 0), s);
		}
		json_object_set_new(s, PQgetvalue(r, i, 1), json_integer(ll(r, i, 2)));
	}
	PQclear(r);
	cached = json_dumps(reasons, JSON_COMPACT);
	reasons_store(t->id, cached, finished);
	free(cached);
	json_object_set_new(t->json, "reasons", reasons);
	t->status = 200;
}

static void work_job_list(struct task *t, PGconn *c)
{
	char sql[1536], lim[16];
	const char *v[3] = { t->tenant, t->arg[1][0] ? t->arg[1] : NULL, lim };
	int limit = atoi(t->arg[0]), n;
	PGresult *r;
	json_t *jobs;

	if (!api_authenticate(t, c))
		return;
	snprintf(lim, sizeof lim, "%d", limit + 1);
	snprintf(sql, sizeof sql,
		 "SELECT %s FROM jobs WHERE tenant = $1 AND ($2::text IS NULL OR (created_at, id) < "
		 "(SELECT created_at, id FROM jobs WHERE id = $2 AND tenant = $1)) "
		 "ORDER BY created_at DESC, id DESC LIMIT $3::int",
		 api_job_columns);
	r = PQexecParams(c, sql, 3, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		db_fail(t, r, "listing jobs");
		PQclear(r);
		return;
	}
	n = PQntuples(r);
	jobs = json_array();
	for (int i = 0; i < n && i < limit; i++)
		json_array_append_new(jobs, api_job_json(r, i));
	t->json = json_pack("{s:o}", "jobs", jobs);
	json_object_set_new(t->json, "next", n > limit ? json_string(PQgetvalue(r, limit - 1, 0)) : json_null());
	PQclear(r);
	t->status = 200;
}

/* ------------------------------------------------------ uploads per tenant */

static int per_tenant_uploads(const struct api *a)
{
	if (a->p.max_uploads_per_tenant > 0)
		return a->p.max_uploads_per_tenant;
	return a->p.max_uploads / 2 > 0 ? a->p.max_uploads / 2 : 1;
}

int api_upload_slot_take(struct api *a, const char *tenant, int *why)
{
	int mine = 0, free_slot = -1;
	if (!a->upload_tenant)
		a->upload_tenant = emv_xcalloc((size_t)a->p.max_uploads, sizeof *a->upload_tenant);
	for (int i = 0; i < a->p.max_uploads; i++) {
		if (!a->upload_tenant[i][0]) {
			if (free_slot < 0)
				free_slot = i;
		} else if (strcmp(a->upload_tenant[i], tenant) == 0) {
			mine++;
		}
	}
	if (free_slot < 0 || mine >= per_tenant_uploads(a)) {
		*why = free_slot < 0 ? 0 : 1;
		return -1;
	}
	emv_strlcpy(a->upload_tenant[free_slot], tenant[0] ? tenant : "?", sizeof a->upload_tenant[0]);
	a->uploads++;
	return free_slot;
}

int api_upload_slots_full(struct api *a, const char *tenant)
{
	int mine = 0;
	if (a->uploads >= a->p.max_uploads)
		return 1;
	for (int i = 0; a->upload_tenant && i < a->p.max_uploads; i++)
		mine += a->upload_tenant[i][0] && strcmp(a->upload_tenant[i], tenant) == 0;
	return mine >= per_tenant_uploads(a) ? 2 : 0;
}

void api_upload_slot_give(struct api *a, int slot)
{
	if (slot < 0 || !a->upload_tenant || slot >= a->p.max_uploads)
		return;
	a->upload_tenant[slot][0] = '\0';
	a->uploads--;
}

/* ----------------------------------------------------- background deletes */

/* The job queues of the split and the delete threads: a FIFO of job ids
 * under its lock; a push wakes the queue's one thread, a pop waits for an
 * item and gives NULL when the server stops. */
static void jobq_push(pthread_mutex_t *mu, pthread_cond_t *cv, struct split_item **head, struct split_item **tail,
		      const char *job)
{
	struct split_item *it = emv_xcalloc(1, sizeof *it);
	emv_strlcpy(it->job, job, sizeof it->job);
	pthread_mutex_lock(mu);
	if (*tail)
		(*tail)->next = it;
	else
		*head = it;
	*tail = it;
	pthread_cond_signal(cv);
	pthread_mutex_unlock(mu);
}

static struct split_item *jobq_pop(struct api *a, pthread_mutex_t *mu, pthread_cond_t *cv, struct split_item **head,
				   struct split_item **tail)
{
	struct split_item *it = NULL;
	pthread_mutex_lock(mu);
	while (!*head && !a->stopping)
		pthread_cond_wait(cv, mu);
	if (!a->stopping) {
		it = *head;
		*head = it->next;
		if (!*head)
			*tail = NULL;
	}
	pthread_mutex_unlock(mu);
	return it;
}

static void delete_enqueue(struct api *a, const char *job)
{
	jobq_push(&a->del_mu, &a->del_cv, &a->delhead, &a->deltail, job);
}

/* Large jobs marked 'deleting' go here, one at a time, one batch of
 * EMV_DB_DELETE_BATCH rows per transaction: nobody waits on one long
 * transaction (locks, WAL, a query thread) for a million rows.  A stop
 * leaves the rest to the next start (resume_deletes). */
static void *delete_main(void *arg)
{
	struct api *a = arg;
	PGconn *c = NULL;
	char err[512];
	for (;;) {
		struct split_item *it;
		int finished = 0, batches = 0;
		uint64_t t0;
		if (!(it = jobq_pop(a, &a->del_mu, &a->del_cv, &a->delhead, &a->deltail)))
			break;
		t0 = emv_now_ms();
		while (!finished && !a->stopping) {
			if (c && PQstatus(c) != CONNECTION_OK) {
				PQfinish(c);
				c = NULL;
			}
			if (!c && !(c = api_db_connect(a, err, sizeof err))) {
				emv_log(EMV_LOG_WARN, "delete", "%s", err);
				sleep(2);
				continue;
			}
			if (emv_db_delete_job_step(c, it->job, &finished, err, sizeof err) != EMV_OK) {
				emv_log(EMV_LOG_WARN, "delete", "%s (tried again)", err);
				sleep(1);
				continue;
			}
			batches++;
		}
		if (finished)
			emv_log(EMV_LOG_INFO, "delete", "job %s deleted in %d transactions in %.1f s", it->job, batches,
				(double)(emv_now_ms() - t0) / 1000);
		free(it);
	}
	PQfinish(c);
	return NULL;
}

/* Cancel and delete.  A small job's rows go (addresses, results; webhook
 * deliveries cascade) in one transaction: 200.  A job of more than
 * EMV_DB_DELETE_BATCH rows is marked 'deleting' and answered 202 at once;
 * the delete thread removes it batch by batch.  Either way a split in
 * progress finds nothing more to read, and results still on their way are
 * dropped by the sink (no address). */
static void work_job_delete(struct task *t, PGconn *c)
{
	char err[512];
	long long rows = 0;
	int found = 0;
	if (!api_authenticate(t, c))
		return;
	{
		const char *v[3] = { t->id, t->tenant, NULL };
		char lim[16];
		PGresult *r;
		snprintf(lim, sizeof lim, "%d", EMV_DB_DELETE_BATCH);
		v[2] = lim;
		r = PQexecParams(c, "UPDATE jobs SET state = 'deleting' WHERE id = $1 AND tenant = $2 "
				    "AND (state = 'deleting' OR rows_total > $3::bigint) RETURNING rows_total",
				 3, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			db_fail(t, r, "deleting the job");
			PQclear(r);
			return;
		}
		if (PQntuples(r) == 1) {
			t->json = json_pack("{s:s,s:s,s:I}", "id", t->id, "state", "deleting", "rows",
					    (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10));
			t->status = 202;
			t->ctx = t; /* done(): to the delete thread */
			PQclear(r);
			return;
		}
		PQclear(r);
	}
	if (emv_db_delete_job(c, t->id, t->tenant, &found, &rows, err, sizeof err) != EMV_OK) {
		/* PostgreSQL's words (SQL, context) are for the log, not the client */
		emv_log(EMV_LOG_WARN, "api", "deleting job %s: %s", t->id, err);
		api_task_error(t, 503, "database_error", "deleting the job failed; try again");
		return;
	}
	if (!found) {
		api_task_error(t, 404, "not_found", "no job '%s'", t->id);
		return;
	}
	t->json = json_pack("{s:s,s:b,s:I}", "id", t->id, "deleted", 1, "rows", (json_int_t)rows);
	t->status = 200;
}

static void done_job_delete(struct task *t)
{
	if (t->status == 202 && t->ctx == t)
		delete_enqueue(t->api, t->id);
	t->ctx = NULL;
	task_done_reply(t);
}

/* ------------------------------------------------- health, readiness, metrics */

static int kafka_reachable(struct api *a)
{
	const struct rd_kafka_metadata *md;
	if (!a->kafka_probe)
		return 0;
	if (rd_kafka_metadata(a->kafka_probe, 0, NULL, &md, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	rd_kafka_metadata_destroy(md);
	return 1;
}

static void work_ready(struct task *t, PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT 1");
	int pg = PQresultStatus(r) == PGRES_TUPLES_OK, kafka = kafka_reachable(t->api);
	PQclear(r);
	t->status = pg && kafka ? 200 : 503;
	t->json = json_pack("{s:s,s:s,s:s}", "status", pg && kafka ? "ready" : "not_ready", "postgres",
			    pg ? "ok" : "unreachable", "kafka", kafka ? "ok" : "unreachable");
}

/* Consumer lag of `group` on `topic`: the sum over partitions of the high
 * watermark minus the committed offset; -1 when unknown. */
static int64_t group_lag(struct api *a, const char *group, const char *topic)
{
	char errstr[256];
	rd_kafka_conf_t *conf = emv_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *l;
	int64_t lag = 0;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", a->brokers, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    !(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr))) {
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	l = rd_kafka_topic_partition_list_new(EMV_TOPIC_PARTITIONS);
	for (int p = 0; p < EMV_TOPIC_PARTITIONS; p++)
		rd_kafka_topic_partition_list_add(l, topic, p);
	if (rd_kafka_committed(rk, l, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lag = -1;
	} else {
		for (int i = 0; i < l->cnt && lag >= 0; i++) {
			int64_t lo, hi;
			if (rd_kafka_query_watermark_offsets(rk, topic, l->elems[i].partition, &lo, &hi, 2000) !=
			    RD_KAFKA_RESP_ERR_NO_ERROR) {
				lag = -1;
				break;
			}
			/* nothing committed yet: everything since the start is behind */
			lag += hi - (l->elems[i].offset >= 0 ? l->elems[i].offset : lo);
		}
	}
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy(rk);
	return lag;
}

/* Prometheus text exposition; the body goes out as text, not JSON. */
static void work_metrics(struct task *t, PGconn *c)
{
	struct api *a = t->api;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	PGresult *r;
	static const char *const states[] = { "ingesting", "splitting", "running", "done", "cancelled", "failed" };
	int64_t lag;

	fprintf(f, "# HELP emailverify_jobs Jobs by state.\n# TYPE emailverify_jobs gauge\n");
	r = PQexec(c, "SELECT state, count(*) FROM jobs GROUP BY state");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		/* zeros would read as "no jobs": no answer is better than a wrong one */
		db_fail(t, r, "reading the metrics");
		PQclear(r);
		fclose(f);
		free(buf);
		return;
	}
	for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
		long n = 0;
		for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
			if (strcmp(PQgetvalue(r, i, 0), states[s]) == 0)
				n = atol(PQgetvalue(r, i, 1));
		fprintf(f, "emailverify_jobs{state=\"%s\"} %ld\n", states[s], n);
	}
	PQclear(r);
	r = PQexec(c, "SELECT coalesce(sum(n_deliverable),0), coalesce(sum(n_undeliverable),0), "
		      "coalesce(sum(n_risky),0), coalesce(sum(n_unknown),0), "
		      "coalesce(sum(addresses_total + n_unusable - n_final),0), "
		      "coalesce(sum(split_done - (n_final - n_unusable)) FILTER (WHERE state = 'running' OR "
		      "state = 'splitting'),0) FROM jobs");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		db_fail(t, r, "reading the metrics");
		PQclear(r);
		fclose(f);
		free(buf);
		return;
	} else {
		fprintf(f, "# HELP emailverify_addresses Addresses of existing jobs by final status (pending: not final yet).\n"
			   "# TYPE emailverify_addresses gauge\n");
		fprintf(f, "emailverify_addresses{status=\"deliverable\"} %s\n", PQgetvalue(r, 0, 0));
		fprintf(f, "emailverify_addresses{status=\"undeliverable\"} %s\n", PQgetvalue(r, 0, 1));
		fprintf(f, "emailverify_addresses{status=\"risky\"} %s\n", PQgetvalue(r, 0, 2));
		fprintf(f, "emailverify_addresses{status=\"unknown\"} %s\n", PQgetvalue(r, 0, 3));
		fprintf(f, "emailverify_addresses{status=\"pending\"} %s\n", PQgetvalue(r, 0, 4));
		fprintf(f, "# HELP emailverify_addresses_in_flight Addresses sent to Kafka in batches without a final result.\n"
			   "# TYPE emailverify_addresses_in_flight gauge\nemailverify_addresses_in_flight %s\n",
			PQgetvalue(r, 0, 5));
	}
	PQclear(r);
	if ((lag = group_lag(a, "emailverify-workers", EMV_TOPIC_BATCHES)) >= 0)
		fprintf(f, "# HELP emailverify_batches_in_flight Batches on Kafka not yet committed by the workers.\n"
			   "# TYPE emailverify_batches_in_flight gauge\nemailverify_batches_in_flight %" PRId64 "\n", lag);
	if ((lag = group_lag(a, "emailverify-sink", EMV_TOPIC_RESULTS)) >= 0)
		fprintf(f, "# HELP emailverify_sink_consumer_lag Results messages not yet stored by the sink.\n"
			   "# TYPE emailverify_sink_consumer_lag gauge\nemailverify_sink_consumer_lag %" PRId64 "\n", lag);
	{
		char err[256];
		if (emv_ipstate_prometheus(c, f, err, sizeof err) != EMV_OK)
			emv_log(EMV_LOG_WARN, "api", "metrics: %s", err);
	}
	fprintf(f, "# HELP emailverify_http_responses_total HTTP answers by status class.\n"
		   "# TYPE emailverify_http_responses_total counter\n");
	for (int k = 1; k <= 5; k++)
		fprintf(f, "emailverify_http_responses_total{class=\"%dxx\"} %" PRIu64 "\n", k,
			__atomic_load_n(&a->http_by_class[k], __ATOMIC_RELAXED));
	fprintf(f, "# HELP emailverify_smtp_replies_total Results stored by this coordinator, by the class of the SMTP "
		   "reply that decided them (none: decided without one).\n# TYPE emailverify_smtp_replies_total counter\n");
	for (int k = 0; k <= 5; k++)
		if (k == 0 || k >= 2)
			fprintf(f, "emailverify_smtp_replies_total{class=\"%s\"} %" PRIu64 "\n",
				k == 0 ? "none" : k == 2 ? "2xx" : k == 3 ? "3xx" : k == 4 ? "4xx" : "5xx",
				__atomic_load_n(&a->reply_classes[k], __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_uploads_total counter\nemailverify_uploads_total %" PRIu64 "\n",
		__atomic_load_n(&a->uploads_total, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_upload_rows_total counter\nemailverify_upload_rows_total %" PRIu64 "\n",
		__atomic_load_n(&a->upload_rows, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_upload_bytes_total counter\nemailverify_upload_bytes_total %" PRIu64 "\n",
		__atomic_load_n(&a->upload_bytes, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_exports_total counter\nemailverify_exports_total %" PRIu64 "\n",
		__atomic_load_n(&a->exports_total, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_export_rows_total counter\nemailverify_export_rows_total %" PRIu64 "\n",
		__atomic_load_n(&a->export_rows, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_split_batches_total counter\nemailverify_split_batches_total %" PRIu64 "\n",
		__atomic_load_n(&a->split_batches, __ATOMIC_RELAXED));
	fprintf(f, "# TYPE emailverify_split_addresses_total counter\nemailverify_split_addresses_total %" PRIu64 "\n",
		__atomic_load_n(&a->split_addresses, __ATOMIC_RELAXED));
	fclose(f);
	t->ctx = buf;
	t->status = 200;
	(void)len;
}

static void done_metrics(struct task *t)
{
	struct MHD_Response *resp;
	if (t->code[0]) {
		free(t->ctx);
		task_done_reply(t);
		return;
	}
	resp = MHD_create_response_from_buffer(strlen(t->ctx), t->ctx, MHD_RESPMEM_MUST_FREE);
	t->ctx = NULL;
	MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
	api_reply_response(t->req, 200, resp);
	api_task_free(t);
}

/* ------------------------------------------------------------------ routing */

/* A job id as the ingest makes them (a UUID); anything else cannot exist. */
static int job_id_valid(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == '-'))
			return 0;
	return 1;
}

/* The bearer token's hash; 0 when there is none usable (then answered). */
static int bearer(struct api_req *r, unsigned char hash[32])
{
	const char *h = api_req_header(r, "Authorization");
	size_t n;
	if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
		api_reply_error(r, 401, "unauthorized", "an Authorization: Bearer token is required");
		return 0;
	}
	h += 7;
	while (*h == ' ')
		h++;
	r->token_given = 1;
	n = strlen(h);
	while (n && h[n - 1] == ' ')
		n--;
	if (n == 0 || n > EMV_TOKEN_MAX) {
		api_reply_error(r, 401, "unauthorized", "the token is not valid or has been revoked");
		return 0;
	}
	emv_token_hash(h, n, hash);
	return 1;
}

static void submit(struct api *a, struct api_req *r, const unsigned char *hash, const char *id,
		   void (*work)(struct task *, PGconn *))
{
	struct task *t = api_task_new(a, r);
	if (hash)
		memcpy(t->token_hash, hash, 32);
	if (id)
		emv_strlcpy(t->id, id, sizeof t->id);
	t->work = work;
	t->done = work == work_job_delete ? done_job_delete : task_done_reply;
	api_task_submit(t);
}

/* GET /v1/ips: the source addresses' reputation (docs/regions.md), for
 * any valid token: it is the operator's view of the fleet, no tenant's
 * data. */
static void work_ips(struct task *t, PGconn *c)
{
	char err[512];
	if (!api_authenticate(t, c))
		return;
	t->json = emv_ipstate_json(c, t->arg[0][0] ? t->arg[0] : NULL, t->arg[1][0] ? t->arg[1] : NULL, err,
				   sizeof err);
	if (!t->json) {
		emv_log(EMV_LOG_WARN, "api", "%s", err);
		api_task_error(t, 503, "unavailable", "the database did not answer");
		return;
	}
	t->status = 200;
}

static void handle_ips(struct api *a, struct api_req *r, const unsigned char *hash)
{
	const char *region = api_req_query(r, "region"), *state = api_req_query(r, "state");
	struct task *t;

	if (region && (strlen(region) >= sizeof t->arg[0] || !emv_routes_region_valid(region))) {
		api_reply_error(r, 400, "bad_query", "region must be 1..31 of a-z 0-9 _ -");
		return;
	}
	if (state && strcmp(state, "healthy") && strcmp(state, "throttled") && strcmp(state, "quarantined") &&
	    strcmp(state, "held")) {
		api_reply_error(r, 400, "bad_query", "state must be healthy, throttled, quarantined or held");
		return;
	}
	t = api_task_new(a, r);
	memcpy(t->token_hash, hash, 32);
	emv_strlcpy(t->arg[0], region ? region : "", sizeof t->arg[0]);
	emv_strlcpy(t->arg[1], state ? state : "", sizeof t->arg[1]);
	t->work = work_ips;
	t->done = task_done_reply;
	api_task_submit(t);
}

static void handle_list(struct api *a, struct api_req *r, const unsigned char *hash)
{
	const char *limit = api_req_query(r, "limit"), *after = api_req_query(r, "after");
	struct task *t;
	long n = 50;

	if (limit) {
		char *end;
		n = strtol(limit, &end, 10);
		if (end == limit || *end || n < 1 || n > 1000) {
			api_reply_error(r, 400, "bad_query", "limit must be 1..1000");
			return;
		}
	}
	if (after && !job_id_valid(after, strlen(after))) {
		api_reply_error(r, 400, "bad_query", "after must be a job id from an earlier page's \"next\"");
		return;
	}
	t = api_task_new(a, r);
	memcpy(t->token_hash, hash, 32);
	snprintf(t->arg[0], sizeof t->arg[0], "%ld", n);
	if (after)
		emv_strlcpy(t->arg[1], after, sizeof t->arg[1]);
	t->work = work_job_list;
	t->done = task_done_reply;
	api_task_submit(t);
}

static enum api_method method_of(const char *m)
{
	if (strcmp(m, "GET") == 0)
		return API_GET;
	if (strcmp(m, "HEAD") == 0)
		return API_HEAD;
	if (strcmp(m, "POST") == 0)
		return API_POST;
	if (strcmp(m, "DELETE") == 0)
		return API_DELETE;
	return API_OTHER;
}

/* The headers are in: answer, or start what answers later. */
void api_route(struct api *a, struct api_req *r, const char *path)
{
	enum api_method m = r->method;
	unsigned char hash[32];
	char id[80];
	size_t idlen = 0;
	int results = 0, check = 0, ips = 0;

	if (strcmp(path, "/healthz") == 0) {
		if (m != API_GET && m != API_HEAD)
			goto bad_method;
		api_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	if (strcmp(path, "/readyz") == 0 || strcmp(path, "/metrics") == 0) {
		struct task *t;
		if (m != API_GET)
			goto bad_method;
		t = api_task_new(a, r);
		t->work = path[1] == 'r' ? work_ready : work_metrics;
		t->done = path[1] == 'r' ? task_done_reply : done_metrics;
		api_task_submit(t);
		return;
	}
	if (strncmp(path, "/v1/", 4) != 0) {
		api_reply_error(r, 404, "not_found", "no such endpoint");
		return;
	}
	if (strcmp(path, "/v1/jobs") == 0) {
		if (m != API_GET && m != API_POST)
			goto bad_method;
	} else if (strcmp(path, "/v1/check") == 0) {
		if (m != API_POST)
			goto bad_method;
		check = 1;
	} else if (strcmp(path, "/v1/ips") == 0) {
		if (m != API_GET)
			goto bad_method;
		ips = 1;
	} else if (strncmp(path, "/v1/jobs/", 9) == 0) {
		const char *p = path + 9;
		idlen = strcspn(p, "/");
		if (strcmp(p + idlen, "/results") == 0)
			results = 1;
		else if (p[idlen]) {
			api_reply_error(r, 404, "not_found", "no such endpoint");
			return;
		}
		if (results ? m != API_GET : (m != API_GET && m != API_DELETE))
			goto bad_method;
		if (!job_id_valid(p, idlen)) {
			if (!bearer(r, hash))
				return;
			api_reply_error(r, 404, "not_found", "no job '%.64s'", p);
			return;
		}
		memcpy(id, p, idlen);
		id[idlen] = '\0';
	} else {
		api_reply_error(r, 404, "not_found", "no such endpoint");
		return;
	}
	if (!bearer(r, hash))
		return;
	{
		int wait = auth_wait(a, r);
		if (wait > 0) {
			char s[16];
			snprintf(s, sizeof s, "%d", wait);
			api_req_add_header(r, "Retry-After", s);
			r->token_given = 0; /* not a guess of its own: does not extend the window */
			api_reply_error(r, 429, "rate_limited",
					"more than %d failed authentications from this address in %d s; try again later",
					a->p.auth_fail_limit, a->p.auth_fail_window_s);
			return;
		}
	}
	{
		int wait = rate_check(a, hash);
		if (wait > 0) {
			char s[16];
			snprintf(s, sizeof s, "%d", wait);
			api_req_add_header(r, "Retry-After", s);
			api_reply_error(r, 429, "rate_limited", "more than %d requests per second with this token",
					a->p.rate_limit);
			return;
		}
	}
	if (ips) {
		handle_ips(a, r, hash);
	} else if (check) {
		api_check_start(a, r, hash);
	} else if (idlen == 0) {
		if (m == API_POST)
			api_upload_start(a, r, hash);
		else
			handle_list(a, r, hash);
	} else if (results) {
		api_export_start(a, r, hash, id);
	} else {
		submit(a, r, hash, id, m == API_GET ? work_job_status : work_job_delete);
	}
	return;
bad_method:
	api_reply_error(r, 405, "method_not_allowed", "%s does not take this method", path);
}

/* -------------------------------------------------------- MHD in the loop */

/*
 * The request deadline starts at the connection's first byte, not after the
 * headers: a client sending one header line every few seconds is never
 * idle long enough for --timeout, and MHD calls us only once the headers
 * are whole.  So every connection has a timer from its start (MHD's
 * connection notice, as it is accepted); a request on it inherits that
 * deadline, and the next request on a kept-alive connection gets a fresh
 * one from the moment the last one ended.
 */
struct api_conn {
	struct api *a;
	struct MHD_Connection *conn;
	struct event *deadline;
	struct api_req *cur;                     /* the request in progress, if MHD has called us */
};

static void conn_arm(struct api_conn *c)
{
	struct timeval tv = { c->a->p.request_timeout_s, 0 };
	if (c->a->p.request_timeout_s > 0)
		evtimer_add(c->deadline, &tv);
}

/* Close the connection under MHD's feet: the socket is shut down so that
 * MHD sees the end at once. */
static void conn_shutdown(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		shutdown(ci->connect_fd, SHUT_RDWR);
}

/* The deadline of a request we know: a request waiting for a pool task
 * is let go when the task is back (tasks are short), any other wait of
 * ours is resumed so that MHD's next call for it can say no. */
static void req_expire(struct api_req *r)
{
	if (!r->conn)
		return;
	r->expired = 1;
	emv_log(EMV_LOG_INFO, "api", "a request ran past its %d s deadline: closing its connection",
		r->a->p.request_timeout_s);
	conn_shutdown(r->conn);
	if (!r->busy)
		api_req_resume(r);
	api_mhd_kick(r->a);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct api_conn *c = arg;
	if (c->cur) {
		req_expire(c->cur);
		return;
	}
	/* still in its request line or headers (or idle between requests) */
	emv_log(EMV_LOG_INFO, "api", "a connection sent no whole request within its %d s deadline: closing it",
		c->a->p.request_timeout_s);
	conn_shutdown(c->conn);
	api_mhd_kick(c->a);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct api *a = cls;
	struct api_conn *c = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		c = emv_xcalloc(1, sizeof *c);
		c->a = a;
		c->conn = conn;
		c->deadline = evtimer_new(a->base, on_deadline, c);
		conn_arm(c);
		*socket_context = c;
	} else if (c) {
		if (c->cur)
			c->cur->cn = NULL;
		event_free(c->deadline);
		free(c);
		*socket_context = NULL;
	}
}

/*
 * An answer made before the body is read: queue it now (MHD then closes the
 * connection unread) when the client waits for "100 Continue" before
 * sending the body, or says the body is more than we would read to drop it;
 * else read and drop the body (up to drop_max) and answer after it, so the
 * client is not reset in the middle of sending and hears the answer.
 */
static int refuse_now(struct api_req *r)
{
	const char *expect = api_req_header(r, "Expect"), *cl = api_req_header(r, "Content-Length");
	if (expect && strcasecmp(expect, "100-continue") == 0)
		return 1;
	return cl && strtoull(cl, NULL, 10) > r->drop_max;
}

static enum MHD_Result queue_reply(struct api_req *r)
{
	enum MHD_Result ret;
	if (!r->reply)
		return MHD_YES;
	ret = MHD_queue_response(r->conn, r->reply_status, r->reply);
	MHD_destroy_response(r->reply);
	r->reply = NULL;
	r->answered = 1;
	return ret;
}

/*
 * MHD (0.9.75) calls this for every request first with its headers, then
 * with parts of the body as they arrive (consumed as far as
 * *upload_data_size says), then with no data once the body is whole
 * ("final"), and again after every resume until a response is queued.  A
 * response can be queued only in the first call or once the body is whole,
 * and one queued in the first call closes the connection after it (no
 * keep-alive).  So a request without a body is answered in its final call,
 * where it also waits for its tasks.  A request with a body that starts a
 * task in its first call (authentication) waits for it suspended in that
 * state: MHD calls the first call again after the resume, so an error can
 * refuse the body before a byte of it is read or a "100 Continue" is sent
 * (refuse_now).  An answer decided while the body arrives (too large,
 * malformed) waits for the body's end while the rest is read and dropped,
 * up to r->drop_max bytes of body in all; past that the connection is
 * closed.
 */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				 const char *version, const char *upload_data, size_t *upload_data_size,
				 void **con_cls)
{
	struct api *a = cls;
	struct api_req *r = *con_cls;

	if (!r) {
		r = emv_xcalloc(1, sizeof *r);
		r->a = a;
		r->conn = conn;
		r->refs = 1; /* MHD's, until on_completed */
		r->method = method_of(method);
		r->drop_max = API_BODY_DROP_MAX;
		*con_cls = r;
		{
			const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
			if (ci && ci->socket_context) {
				r->cn = ci->socket_context;
				r->cn->cur = r; /* the connection's deadline is the request's */
			}
		}
		{
			const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
			const struct sockaddr *sa = ci ? ci->client_addr : NULL;
			if (sa && sa->sa_family == AF_INET) {
				memcpy(r->peer, &((const struct sockaddr_in *)sa)->sin_addr, 4);
				r->peer_len = 4;
			} else if (sa && sa->sa_family == AF_INET6) {
				memcpy(r->peer, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
				r->peer_len = 16;
			}
		}
		{
			const char *cl = api_req_header(r, "Content-Length");
			r->has_body = (cl && strtoull(cl, NULL, 10) > 0) || api_req_header(r, "Transfer-Encoding");
		}
		api_route(a, r, url);
		if (!r->has_body)
			return MHD_YES; /* answered in the final call: now would close the connection */
		if (r->reply)
			return refuse_now(r) ? queue_reply(r) : MHD_YES;
		if (r->busy) {
			r->first_wait = 1;
			api_req_suspend(r);
		}
		return MHD_YES;
	}
	if (r->expired && !r->reply)
		return MHD_NO;
	if (r->first_wait && *upload_data_size == 0) {
		/* the first call again, after our wait */
		if (r->reply) {
			r->first_wait = 0;
			return refuse_now(r) ? queue_reply(r) : MHD_YES;
		}
		if (r->busy) {
			api_req_suspend(r);
			return MHD_YES;
		}
		r->first_wait = 0;
		return MHD_YES; /* on to the body */
	}
	if (r->busy && !r->reply) {
		/* a task is out: nothing is taken, nothing called, before it is back */
		api_req_suspend(r);
		return MHD_YES;
	}
	if (*upload_data_size) {
		r->body_bytes += *upload_data_size;
		if (r->reply || !r->body) {
			/* answered already, or a body nobody reads: dropped, up to a bound */
			*upload_data_size = 0;
			return r->body_bytes > r->drop_max ? MHD_NO : MHD_YES;
		}
		return r->body(r, upload_data, upload_data_size) == 0 ? MHD_YES : MHD_NO;
	}
	if (!r->reply && !r->final_called) {
		r->final_called = 1;
		if (r->final)
			r->final(r);
	}
	if (r->reply)
		return queue_reply(r);
	/* waiting for something of ours: MHD must not call meanwhile */
	api_req_suspend(r);
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode why)
{
	struct api_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	r->conn = NULL;
	r->suspended = 0;
	if (r->cn) {
		/* a next request on this connection: a deadline of its own */
		r->cn->cur = NULL;
		conn_arm(r->cn);
		r->cn = NULL;
	}
	if (r->gone)
		r->gone(r);
	api_req_unref(r);
}

static void mhd_run(struct api *a)
{
	MHD_UNSIGNED_LONG_LONG ms;
	MHD_run(a->mhd);
	if (MHD_get_timeout(a->mhd, &ms) == MHD_YES) {
		struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
		evtimer_add(a->mhd_timer, &tv);
	} else {
		evtimer_del(a->mhd_timer);
	}
}

static void on_mhd_event(evutil_socket_t fd, short what, void *arg)
{
	mhd_run(arg);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	emv_log(EMV_LOG_DEBUG, "http", "%s", emv_trim(msg));
}

/* A listening socket for HOST:PORT (HOST an address or a name; [v6] too). */
static int listen_on(const char *spec, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	size_t hl;
	int fd = -1, one = 1, rc;

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof host || atoi(colon + 1) < 0 ||
	    atoi(colon + 1) > 65535) {
		emv_set_err(err, errlen, "--listen %s: give HOST:PORT", spec);
		return -1;
	}
	hl = (size_t)(colon - spec);
	if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
		memcpy(host, spec + 1, hl - 2);
		host[hl - 2] = '\0';
	} else {
		memcpy(host, spec, hl);
		host[hl] = '\0';
	}
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		emv_set_err(err, errlen, "--listen %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 511) != 0) {
		emv_set_err(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int mhd_start(struct api *a, int lfd, char *err, size_t errlen)
{
	const union MHD_DaemonInfo *di;
	/* external epoll mode: no threads of MHD's own; suspend/resume for
	 * every wait of ours */
	a->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				  on_access, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a, MHD_OPTION_LISTEN_SOCKET, lfd,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_NOTIFY_CONNECTION,
				  on_connection, a, MHD_OPTION_CONNECTION_TIMEOUT,
				  (unsigned)a->p.timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->p.max_connections,
				  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)a->p.max_connections_per_ip,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)a->p.connection_memory, MHD_OPTION_END);
	if (!a->mhd) {
		emv_set_err(err, errlen, "the HTTP server (libmicrohttpd) did not start");
		return EMV_ERR;
	}
	if (!(di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD))) {
		emv_set_err(err, errlen, "libmicrohttpd has no epoll descriptor");
		return EMV_ERR;
	}
	a->mhd_ev = event_new(a->base, di->epoll_fd, EV_READ | EV_PERSIST, on_mhd_event, a);
	a->mhd_timer = evtimer_new(a->base, on_mhd_event, a);
	event_add(a->mhd_ev, NULL);
	mhd_run(a);
	return EMV_OK;
}

/* -------------------------------------------------------- split and sink */

void api_split_enqueue(struct api *a, const char *job)
{
	jobq_push(&a->split_mu, &a->split_cv, &a->shead, &a->stail, job);
}

/* Jobs are split one at a time, in upload order; a failed split is retried
 * (it resumes from its cursor) and the job marked failed after 5 tries.
 * A job whose every row is final once split (all unusable, or the results
 * raced the split's last commit) is done now: the sink only finishes jobs
 * it sees results for in state running. */
static void *split_main(void *arg)
{
	struct api *a = arg;
	PGconn *c = NULL;
	emv_split_params sp;
	char err[1024];

	emv_split_params_default(&sp);
	sp.brokers = a->brokers;
	/* with the embedded Kafka a job may be split again from the start
	 * (resume_splits): addresses with a verdict are not asked twice */
	sp.skip_final = a->p.embedded_kafka;
	sp.batch_max = a->p.batch_max;
	sp.routes = a->p.routes;
	for (;;) {
		struct split_item *it;
		emv_split_stats st;
		int tries = 0, rc = EMV_ERR;
		if (!(it = jobq_pop(a, &a->split_mu, &a->split_cv, &a->shead, &a->stail)))
			break;

		while (rc != EMV_OK && tries++ < 5 && !a->stopping) {
			if (c && PQstatus(c) != CONNECTION_OK) {
				PQfinish(c);
				c = NULL;
			}
			if (!c && !(c = api_db_connect(a, err, sizeof err))) {
				emv_log(EMV_LOG_WARN, "split", "%s", err);
				sleep(2);
				continue;
			}
			rc = emv_split_job(c, it->job, &sp, &st, err, sizeof err);
			__atomic_add_fetch(&a->split_batches, st.batches, __ATOMIC_RELAXED);
			__atomic_add_fetch(&a->split_addresses, st.addresses, __ATOMIC_RELAXED);
			if (rc != EMV_OK) {
				emv_log(EMV_LOG_WARN, "split", "job %s: %s (try %d)", it->job, err, tries);
				if (strstr(err, "not found"))
					break; /* deleted meanwhile */
				sleep(2);
			} else {
				emv_log(EMV_LOG_INFO, "split", "job %s: %llu addresses in %llu batches in %.2f s", it->job,
					(unsigned long long)st.addresses, (unsigned long long)st.batches, st.seconds);
			}
		}
		if (c) {
			const char *v[1] = { it->job };
			PGresult *r = PQexecParams(
				c,
				rc == EMV_OK ?
				"UPDATE jobs SET state = 'done', finished_at = coalesce(finished_at, now()) "
				"WHERE id = $1 AND state = 'running' AND n_final >= n_unusable + addresses_total" :
				"UPDATE jobs SET state = 'failed', finished_at = now() WHERE id = $1 "
				"AND state IN ('splitting', 'ingesting')",
				1, NULL, v, NULL, NULL, 0);
			PQclear(r);
		}
		free(it);
	}
	PQfinish(c);
	return NULL;
}

/* A Kafka consumer of this process (the sink, the region router): run on a
 * connection of its own until the server stops, reconnecting after any
 * error.  run() is emv_sink_run or emv_router_run with its parameters. */
static void keep_running(struct api *a, const char *name,
			 int (*run)(PGconn *c, const void *params, volatile int *stop, char *err, size_t errlen),
			 const void *params)
{
	char err[1024];

	while (!a->sink_stop) {
		PGconn *c = api_db_connect(a, err, sizeof err);
		if (c) {
			if (run(c, params, &a->sink_stop, err, sizeof err) != EMV_OK)
				emv_log(EMV_LOG_WARN, name, "%s", err);
			PQfinish(c);
		} else {
			emv_log(EMV_LOG_WARN, name, "%s", err);
		}
		for (int i = 0; i < 20 && !a->sink_stop; i++)
			usleep(100000);
	}
}

static int run_sink(PGconn *c, const void *params, volatile int *stop, char *err, size_t errlen)
{
	emv_sink_stats st;
	return emv_sink_run(c, params, stop, &st, err, errlen);
}

static void *sink_main(void *arg)
{
	struct api *a = arg;
	emv_sink_params kp;

	emv_sink_params_default(&kp);
	kp.brokers = a->brokers;
	kp.reply_classes = a->reply_classes;
	keep_running(a, "sink", run_sink, &kp);
	return NULL;
}

static int run_router(PGconn *c, const void *params, volatile int *stop, char *err, size_t errlen)
{
	emv_router_stats st;
	return emv_router_run(c, params, stop, &st, err, errlen);
}

/* The region router (docs/regions.md): the workers' ip-state into
 * PostgreSQL, batches a region gave back to another region. */
static void *router_main(void *arg)
{
	struct api *a = arg;
	emv_router_params rp;

	emv_router_params_default(&rp);
	rp.brokers = a->brokers;
	keep_running(a, "router", run_router, &rp);
	return NULL;
}

/* Jobs left in "splitting" by an earlier coordinator are split again (from
 * their cursor). */
static void resume_splits(struct api *a, PGconn *c)
{
	PGresult *r;
	/* The embedded Kafka starts empty: batches of jobs still running when
	 * the last coordinator stopped went with it.  Split those jobs again
	 * from the start; the split leaves out addresses that already have a
	 * final result (skip_final), so no server is asked twice. */
	if (a->p.embedded_kafka)
		PQclear(PQexec(c, "UPDATE jobs SET state = 'splitting', split_done = 0, split_after_domain = NULL, "
				  "split_after_id = NULL WHERE state = 'running'"));
	r = PQexec(c, "SELECT id FROM jobs WHERE state = 'splitting' ORDER BY created_at");
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
		emv_log(EMV_LOG_INFO, "split", "resuming job %s", PQgetvalue(r, i, 0));
		api_split_enqueue(a, PQgetvalue(r, i, 0));
	}
	PQclear(r);
	/* and deletions an earlier coordinator did not finish */
	r = PQexec(c, "SELECT id FROM jobs WHERE state = 'deleting' ORDER BY created_at");
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
		emv_log(EMV_LOG_INFO, "delete", "resuming the deletion of job %s", PQgetvalue(r, i, 0));
		delete_enqueue(a, PQgetvalue(r, i, 0));
	}
	PQclear(r);
}

/* ------------------------------------------------------------------ serve */

/* The signal handlers are emv_stop's (a second signal must exit even while
 * this loop is no longer running): the loop looks at the flag. */
static void on_stop_check(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;
	if (!emv_stop_signal)
		return;
	emv_log(EMV_LOG_INFO, "api", "signal %d: stopping within %d ms", (int)emv_stop_signal, a->p.shutdown_ms);
	event_base_loopexit(a->base, NULL);
}

/* Join t unless the shutdown deadline (CLOCK_REALTIME) passes first:
 * a thread still busy then (an upload being ingested, an export being
 * streamed) is left to the process exit; its transaction rolls back. */
static void join_until(pthread_t t, const struct timespec *deadline, const char *what)
{
	if (pthread_timedjoin_np(t, NULL, deadline) != 0)
		emv_log(EMV_LOG_WARN, "api", "stopping: %s still busy at the shutdown deadline; left", what);
}

static int write_ready_file(const char *path, const char *listen, const char *brokers, char *err, size_t errlen)
{
	char tmp[4096];
	FILE *f;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if (!(f = fopen(tmp, "w"))) {
		emv_set_err(err, errlen, "%s: %s", tmp, strerror(errno));
		return EMV_ERR;
	}
	fprintf(f, "listen=%s\nbrokers=%s\npid=%d\n", listen, brokers, (int)getpid());
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		emv_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return EMV_ERR;
	}
	return EMV_OK;
}

static rd_kafka_t *probe_handle(const char *brokers)
{
	char errstr[256];
	rd_kafka_conf_t *conf = emv_kafka_conf_new();
	rd_kafka_t *rk;
	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr)))
		rd_kafka_conf_destroy(conf);
	return rk;
}

int emv_api_serve(const emv_api_params *p, char *err, size_t errlen)
{
	struct api *a = emv_xcalloc(1, sizeof *a);
	emv_kafka_mock *mock = NULL;
	struct event *stop_check = NULL;
	struct timespec deadline;
	char listen_addr[300];
	int lfd = -1, version, rc = EMV_ERR;
	PGconn *c;

	a->p = *p;
	if (p->database)
		emv_strlcpy(a->database, p->database, sizeof a->database);
	else if (getenv("DATABASE_URL"))
		emv_strlcpy(a->database, getenv("DATABASE_URL"), sizeof a->database);
	if ((lfd = listen_on(p->listen, err, errlen)) < 0) {
		free(a);
		return EMV_ERR;
	}

	/* the schema first: the server answers nothing before it is current */
	if (!(c = emv_db_connect(a->database[0] ? a->database : NULL, err, errlen))) {
		close(lfd);
		free(a);
		return EMV_ERR;
	}
	if (emv_db_migrate(c, &version, err, errlen) != EMV_OK)
		goto out_early;
	if (!(a->lists = emv_lists_load(p->data_dir, err, errlen)))
		goto out_early;
	if (p->embedded_kafka) {
		if (!(mock = emv_kafka_mock_new(1, err, errlen)))
			goto out_early;
		emv_strlcpy(a->brokers, emv_kafka_mock_bootstraps(mock), sizeof a->brokers);
	} else if (p->brokers) {
		emv_strlcpy(a->brokers, p->brokers, sizeof a->brokers);
	} else {
		emv_set_err(err, errlen, "give --brokers HOSTS or --embedded-kafka");
		goto out_early;
	}
	a->kafka_probe = probe_handle(a->brokers);

	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error return, not a death */
	a->base = event_base_new();
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		char ip[INET6_ADDRSTRLEN] = "?";
		getsockname(lfd, (struct sockaddr *)&ss, &sl);
		if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
			snprintf(listen_addr, sizeof listen_addr, "[%s]:%d", ip,
				 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
		} else {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
			snprintf(listen_addr, sizeof listen_addr, "%s:%d", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
		}
	}
	if (mhd_start(a, lfd, err, errlen) != EMV_OK) {
		rd_kafka_destroy(a->kafka_probe);
		goto out_early;
	}
	lfd = -1; /* now MHD's */

	a->buckets = emv_xcalloc(RATE_TABLE, sizeof *a->buckets);
	a->nbuckets = RATE_TABLE;
	a->auth_fails = emv_xcalloc(AUTH_TABLE, sizeof *a->auth_fails);
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	pthread_mutex_init(&a->done_mu, NULL);
	pthread_mutex_init(&a->split_mu, NULL);
	pthread_cond_init(&a->split_cv, NULL);
	pthread_mutex_init(&a->del_mu, NULL);
	pthread_cond_init(&a->del_cv, NULL);
	a->tenants = emv_xcalloc(TENANT_CACHE, sizeof *a->tenants);
	a->upload_tenant = emv_xcalloc((size_t)a->p.max_uploads, sizeof *a->upload_tenant);
	a->done_ev = event_new(a->base, -1, EV_PERSIST, on_tasks_done, a);
	a->npool = p->db_threads > 0 ? p->db_threads : 1;
	a->pool = emv_xcalloc((size_t)a->npool, sizeof *a->pool);
	for (int i = 0; i < a->npool; i++)
		pthread_create(&a->pool[i], NULL, pool_main, a);
	pthread_create(&a->split_th, NULL, split_main, a);
	pthread_create(&a->del_th, NULL, delete_main, a);
	resume_splits(a, c);
	PQfinish(c);
	c = NULL;
	if (!p->no_sink) {
		pthread_create(&a->sink_th, NULL, sink_main, a);
		pthread_create(&a->router_th, NULL, router_main, a);
		a->sink_running = 1;
	}
	{
		emv_webhook_params wp;
		emv_webhook_params_default(&wp);
		wp.database = a->database;
		wp.progress_step = p->webhook_progress;
		wp.max_attempts = p->webhook_attempts;
		wp.backoff_ms = p->webhook_backoff_ms;
		wp.timeout_s = p->webhook_timeout_s;
		wp.allow_private = p->webhook_allow_private;
		wp.allow_http = p->webhook_allow_http;
		wp.ca_file = p->webhook_ca;
		a->webhooks = emv_webhooks_start(&wp);
	}
	emv_stop_install("emailverify-coordinator serve", p->shutdown_ms);
	stop_check = event_new(a->base, -1, EV_PERSIST, on_stop_check, a);
	{
		struct timeval tv = { 0, 100000 };
		event_add(stop_check, &tv);
	}

	if (p->ready_file && write_ready_file(p->ready_file, listen_addr, a->brokers, err, errlen) != EMV_OK)
		goto stop;
	emv_log(EMV_LOG_INFO, "api", "serving on http://%s (schema %d, Kafka %s%s)", listen_addr, version, a->brokers,
		mock ? ", embedded" : "");
	fprintf(stderr, "emailverify-coordinator: serving on http://%s, brokers %s\n", listen_addr, a->brokers);
	event_base_dispatch(a->base);
	rc = EMV_OK;

stop:
	/* Stop the threads, each within the shutdown timeout (a stored group
	 * of results is committed, a group not stored yet is read again by the
	 * next sink).  Uploads still being ingested and exports still streaming
	 * are abandoned with the process: their transactions roll back when the
	 * connections drop. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += p->shutdown_ms * 9 / 10 / 1000;
	deadline.tv_nsec += (long)(p->shutdown_ms * 9 / 10 % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	emv_webhooks_stop(a->webhooks);
	a->sink_stop = 1;
	if (a->sink_running) {
		join_until(a->sink_th, &deadline, "the results sink");
		join_until(a->router_th, &deadline, "the region router");
	}
	if (a->pool) {
		pthread_mutex_lock(&a->mu);
		a->stopping = 1;
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_mutex_lock(&a->split_mu);
		pthread_cond_broadcast(&a->split_cv);
		pthread_mutex_unlock(&a->split_mu);
		pthread_mutex_lock(&a->del_mu);
		pthread_cond_broadcast(&a->del_cv);
		pthread_mutex_unlock(&a->del_mu);
		/* a deletion in progress is not waited for: its batches are
		 * committed, the rest resumes at the next start */
		for (int i = 0; i < a->npool; i++)
			join_until(a->pool[i], &deadline, "a query thread");
		/* a split in progress is not waited for: it resumes from its
		 * cursor at the next start (resume_splits) */
	}
	if (stop_check)
		event_free(stop_check);
	if (p->ready_file)
		unlink(p->ready_file);
	fflush(stdout);
	/* Requests still in a thread's hands would be answered into a freed
	 * server (and MHD must not be stopped with suspended connections), and
	 * the embedded Kafka must outlive every client of this process: leave
	 * MHD, the base and the mock to the process exit. */
	if (rc != EMV_OK)
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
	_exit(rc == EMV_OK ? 0 : 1);
out_early:
	if (lfd >= 0)
		close(lfd);
	PQfinish(c);
	emv_lists_free(a->lists);
	emv_kafka_mock_free(mock);
	free(a);
	return EMV_ERR;
}
