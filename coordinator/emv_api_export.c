/*
 * emv_api_export.c - GET /v1/jobs/{id}/results?format=csv|jsonl&status=...
 *
 * A thread per export with a PostgreSQL connection of its own runs
 * emv_export (a cursor in input order) one FETCH at a time.  The loop sends
 * each formatted chunk with evhttp_send_reply_chunk_with_cb() and asks the
 * thread for the next one only when that chunk has left for the socket:
 * at most one chunk is held per export, whatever the job's size, and a
 * slow reader slows the cursor instead of filling memory.  A client gone
 * mid-way (the connection's close callback) stops the thread; a database
 * error mid-way closes the connection without the final empty chunk, so
 * the client sees a truncated transfer, never a short file that looks
 * whole.
 */
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include "emv_api_internal.h"
#include "emv_export.h"
#include "emv_util.h"

struct xport {
	struct api *a;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	char job[80];
	emv_export_params ep;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct event *ev;         /* the thread -> the loop */
	struct evbuffer *ready;   /* a chunk for the loop */
	int want;                 /* the loop wants the next chunk */
	int eof, failed, gone, exited, started;
	uint64_t rows;
	char err[512];
};

static int to_evbuffer(void *arg, const char *data, size_t len)
{
	return evbuffer_add(arg, data, len);
}

static void *export_main(void *arg)
{
	struct xport *x = arg;
	char err[512] = "";
	PGconn *c = api_db_connect(x->a, err, sizeof err);
	emv_export *e = c ? emv_export_open(c, x->job, &x->ep, err, sizeof err) : NULL;
	int end = !e;

	if (!e) {
		pthread_mutex_lock(&x->mu);
		x->failed = 1;
		emv_strlcpy(x->err, err, sizeof x->err);
		pthread_mutex_unlock(&x->mu);
	}
	while (!end) {
		struct evbuffer *b;
		long n;
		pthread_mutex_lock(&x->mu);
		while (!x->want && !x->gone)
			pthread_cond_wait(&x->cv, &x->mu);
		x->want = 0;
		end = x->gone;
		pthread_mutex_unlock(&x->mu);
		if (end)
			break;
		b = evbuffer_new();
		n = emv_export_next(e, to_evbuffer, b, err, sizeof err);
		pthread_mutex_lock(&x->mu);
		x->ready = b;
		x->rows = emv_export_rows(e);
		if (n < 0) {
			x->failed = 1;
			emv_strlcpy(x->err, err, sizeof x->err);
		} else if (n == 0) {
			x->eof = 1;
		}
		end = n <= 0;
		pthread_mutex_unlock(&x->mu);
		event_active(x->ev, EV_READ, 0);
	}
	emv_export_close(e);
	PQfinish(c);
	pthread_mutex_lock(&x->mu);
	x->exited = 1;
	pthread_mutex_unlock(&x->mu);
	event_active(x->ev, EV_READ, 0);
	return NULL;
}

static void on_chunk_sent(struct evhttp_connection *evcon, void *arg)
{
	struct xport *x = arg;
	pthread_mutex_lock(&x->mu);
	x->want = 1;
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

/* The connection is being freed (client gone, timeout, error). */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct xport *x = arg;
	pthread_mutex_lock(&x->mu);
	x->gone = 1;
	x->req = NULL;
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

static void xport_free(struct xport *x)
{
	pthread_join(x->th, NULL);
	if (x->ready)
		evbuffer_free(x->ready);
	event_free(x->ev);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	free(x);
}

static void on_thread(evutil_socket_t fd, short what, void *arg)
{
	struct xport *x = arg;
	struct evbuffer *b;
	int eof, failed, gone, exited;

	pthread_mutex_lock(&x->mu);
	b = x->ready;
	x->ready = NULL;
	eof = x->eof;
	failed = x->failed;
	gone = x->gone;
	exited = x->exited;
	pthread_mutex_unlock(&x->mu);

	if (gone || !x->req) {
		if (b)
			evbuffer_free(b);
		if (exited)
			xport_free(x);
		return;
	}
	if (failed && !x->started) {
		/* nothing sent yet: a proper error */
		if (b)
			evbuffer_free(b);
		emv_log(EMV_LOG_WARN, "export", "job %s: %s", x->job, x->err);
		evhttp_connection_set_closecb(x->evcon, NULL, NULL);
		api_reply_error(x->req, 503, "database_error", "the export could not be read; try again");
		x->req = NULL;
		if (exited)
			xport_free(x);
		else
			x->gone = 1; /* freed when the thread says it has exited */
		return;
	}
	if (!x->started && (b || eof)) {
		struct evkeyvalq *h = evhttp_request_get_output_headers(x->req);
		char cd[160];
		int csv = x->ep.format == EMV_EXPORT_CSV;
		evhttp_add_header(h, "Content-Type", csv ? "text/csv; charset=utf-8" : "application/x-ndjson");
		snprintf(cd, sizeof cd, "attachment; filename=\"%s.%s\"", x->job, csv ? "csv" : "jsonl");
		evhttp_add_header(h, "Content-Disposition", cd);
		evhttp_add_header(h, "Cache-Control", "no-store");
		api_count_status(x->a, 200);
		evhttp_send_reply_start(x->req, 200, "OK");
		x->started = 1;
	}
	if (failed) {
		/* mid-way: no final chunk; the client must not take this as whole */
		struct evhttp_connection *evcon = x->evcon;
		emv_log(EMV_LOG_WARN, "export", "job %s: %s after %llu rows; closing", x->job, x->err,
			(unsigned long long)x->rows);
		if (b)
			evbuffer_free(b);
		evhttp_connection_set_closecb(evcon, NULL, NULL);
		x->req = NULL;
		x->gone = 1;
		evhttp_connection_free(evcon);
		if (exited)
			xport_free(x);
		return;
	}
	if (b && evbuffer_get_length(b) > 0) {
		/* evhttp copies the chunk into the connection's output buffer */
		evhttp_send_reply_chunk_with_cb(x->req, b, eof ? NULL : on_chunk_sent, x);
	} else if (!eof) {
		on_chunk_sent(NULL, x); /* nothing to send: straight on */
	}
	if (b)
		evbuffer_free(b);
	if (eof) {
		__atomic_add_fetch(&x->a->export_rows, x->rows, __ATOMIC_RELAXED);
		__atomic_add_fetch(&x->a->exports_total, 1, __ATOMIC_RELAXED);
		evhttp_connection_set_closecb(x->evcon, NULL, NULL);
		evhttp_send_reply_end(x->req);
		x->req = NULL;
		x->gone = 1;
		if (exited)
			xport_free(x);
	} else if (exited) {
		xport_free(x);
	}
}

/* Authenticated and the job is the tenant's: start streaming. */
static void export_checked(struct task *t)
{
	struct xport *x = t->ctx;
	if (t->code[0]) {
		api_task_reply(t);
		free(x);
		api_task_free(t);
		return;
	}
	x->req = t->req;
	x->evcon = evhttp_request_get_connection(t->req);
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	x->ev = event_new(x->a->base, -1, 0, on_thread, x);
	x->want = 1;
	evhttp_connection_set_closecb(x->evcon, on_close, x);
	api_task_free(t);
	if (pthread_create(&x->th, NULL, export_main, x) != 0) {
		evhttp_connection_set_closecb(x->evcon, NULL, NULL);
		api_reply_error(x->req, 503, "busy", "no thread for the export");
		event_free(x->ev);
		free(x);
	}
}

static void work_check_job(struct task *t, PGconn *c)
{
	const char *v[2] = { t->id, t->tenant };
	PGresult *r;
	if (!api_authenticate(t, c))
		return;
	r = PQexecParams(c, "SELECT 1 FROM jobs WHERE id = $1 AND tenant = $2", 2, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		api_task_error(t, 503, "database_error", "reading the job failed; try again");
	else if (PQntuples(r) != 1)
		api_task_error(t, 404, "not_found", "no job '%s'", t->id);
	PQclear(r);
}

void api_export_start(struct api *a, struct evhttp_request *req, const unsigned char token_hash[32],
		      const char *job)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct xport *x = emv_xcalloc(1, sizeof *x);
	struct task *t;

	x->a = a;
	emv_strlcpy(x->job, job, sizeof x->job);
	emv_export_params_default(&x->ep);
	x->ep.lists = a->lists; /* read-only: shared by every thread */
	if (query) {
		struct evkeyvalq q;
		const char *f, *s;
		char err[256];
		TAILQ_INIT(&q);
		if (evhttp_parse_query_str(query, &q) != 0) {
			free(x);
			api_reply_error(req, 400, "bad_query", "the query string is malformed");
			return;
		}
		f = evhttp_find_header(&q, "format");
		s = evhttp_find_header(&q, "status");
		if (f && strcmp(f, "csv") != 0 && strcmp(f, "jsonl") != 0) {
			evhttp_clear_headers(&q);
			free(x);
			api_reply_error(req, 400, "bad_query", "format must be csv or jsonl");
			return;
		}
		if (f && strcmp(f, "jsonl") == 0)
			x->ep.format = EMV_EXPORT_JSONL;
		if (s && emv_export_parse_statuses(s, &x->ep.status_mask, err, sizeof err) != 0) {
			evhttp_clear_headers(&q);
			free(x);
			api_reply_error(req, 400, "bad_query", "status: %s", err);
			return;
		}
		evhttp_clear_headers(&q);
	}
	t = api_task_new(a, req);
	memcpy(t->token_hash, token_hash, 32);
	emv_strlcpy(t->id, job, sizeof t->id);
	t->ctx = x;
	t->work = work_check_job;
	t->done = export_checked;
	api_task_submit(t);
}
