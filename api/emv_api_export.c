/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_api_export.c - GET /v1/jobs/{id}/results?format=csv|jsonl&status=...
 *
 * A thread per export with a PostgreSQL connection of its own runs
 * emv_export (a cursor in input order) one FETCH at a time.  MHD pulls the
 * response through a content reader (chunked transfer encoding) as fast as
 * the socket takes it; the reader copies from the chunk being sent and,
 * as it starts on a chunk, asks the thread for the next one, so at most two
 * chunks are held per export (the one going out and the one ready), and a
 * slow reader slows the cursor instead of filling memory.  When the next
 * chunk is not ready yet the connection is suspended (no busy polling) and
 * resumed when the thread has it.  The status line waits for the first
 * chunk, so an export that cannot start is a proper JSON error; a database
 * error mid-way ends the connection without the final empty chunk, so the
 * client sees a truncated transfer, never a short file that looks whole.
 * A client gone mid-way (MHD frees the response) stops the thread.
 */
#include <stdlib.h>
#include <string.h>
#include "emv_api_internal.h"
#include "emv_export.h"
#include "emv_util.h"

#define EXPORT_BLOCK (64 * 1024) /* MHD's buffer for the reader */

struct xport {
	struct api *a;
	struct api_req *r; /* referenced until the response is freed */
	char job[80];
	emv_export_params ep;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct event *ev; /* the thread -> the loop */
	emv_buf ready;	  /* the next chunk (thread -> loop) */
	int have_ready;
	int want; /* the loop wants the next chunk */
	int eof, failed, gone, exited;
	uint64_t rows;
	char err[512];
	/* loop only */
	emv_buf cur; /* the chunk going out */
	size_t cur_off;
	int started;	/* the response was made */
	int waiting;	/* the reader suspended the connection */
	int resp_freed; /* MHD is done with the response */
};

static int to_buf(void *arg, const char *data, size_t len)
{
	emv_buf_add(arg, data, len);
	return 0;
}

static void *export_main(void *arg)
{
	struct xport *x = arg;
	char err[512] = "";
	PGconn *c = api_db_connect(x->a, err, sizeof err);
	emv_export *e = c ? emv_export_open(c, x->job, &x->ep, err, sizeof err) : NULL;
	emv_buf b = { 0 };
	int end = !e;

	if (!e) {
		pthread_mutex_lock(&x->mu);
		x->failed = 1;
		emv_strlcpy(x->err, err, sizeof x->err);
		pthread_mutex_unlock(&x->mu);
	}
	while (!end) {
		long n;
		pthread_mutex_lock(&x->mu);
		while ((!x->want || x->have_ready) && !x->gone)
			pthread_cond_wait(&x->cv, &x->mu);
		x->want = 0;
		end = x->gone;
		pthread_mutex_unlock(&x->mu);
		if (end)
			break;
		b.len = 0;
		n = emv_export_next(e, to_buf, &b, err, sizeof err);
		pthread_mutex_lock(&x->mu);
		/* hand the chunk over by swapping buffers: no copy */
		{
			emv_buf t = x->ready;
			x->ready = b;
			b = t;
		}
		x->have_ready = x->ready.len > 0;
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
	free(b.p);
	emv_export_close(e);
	PQfinish(c);
	pthread_mutex_lock(&x->mu);
	x->exited = 1;
	pthread_mutex_unlock(&x->mu);
	event_active(x->ev, EV_READ, 0);
	return NULL;
}

static void xport_free(struct xport *x)
{
	pthread_join(x->th, NULL);
	free(x->ready.p);
	free(x->cur.p);
	event_free(x->ev);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	api_req_unref(x->r);
	free(x);
}

/* Tell the thread to stop; free x once both it and MHD are done with it. */
static void xport_release(struct xport *x)
{
	int exited;
	pthread_mutex_lock(&x->mu);
	x->gone = 1;
	pthread_cond_signal(&x->cv);
	exited = x->exited;
	pthread_mutex_unlock(&x->mu);
	if (exited && (x->resp_freed || !x->started))
		xport_free(x);
}

/* MHD asks for more of the body. */
static ssize_t on_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct xport *x = cls;
	size_t n;
	if (x->r->expired)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (x->cur_off == x->cur.len) {
		int eof, failed;
		pthread_mutex_lock(&x->mu);
		eof = x->eof;
		failed = x->failed;
		if (x->have_ready) {
			emv_buf t = x->cur;
			x->cur = x->ready;
			x->ready = t;
			x->ready.len = 0;
			x->have_ready = 0;
			x->cur_off = 0;
			if (!eof && !failed) {
				x->want = 1; /* the next one while this one goes out */
				pthread_cond_signal(&x->cv);
			}
		}
		pthread_mutex_unlock(&x->mu);
		if (x->cur_off == x->cur.len) {
			if (failed) {
				emv_log(EMV_LOG_WARN, "export", "job %s: %s after %llu rows; closing", x->job, x->err,
					(unsigned long long)x->rows);
				return MHD_CONTENT_READER_END_WITH_ERROR;
			}
			if (eof) {
				__atomic_add_fetch(&x->a->export_rows, x->rows, __ATOMIC_RELAXED);
				__atomic_add_fetch(&x->a->exports_total, 1, __ATOMIC_RELAXED);
				return MHD_CONTENT_READER_END_OF_STREAM;
			}
			/* nothing ready: wait without spinning */
			x->waiting = 1;
			api_req_suspend(x->r);
			return 0;
		}
	}
	n = x->cur.len - x->cur_off;
	if (n > max)
		n = max;
	memcpy(buf, x->cur.p + x->cur_off, n);
	x->cur_off += n;
	return (ssize_t)n;
}

/* MHD is done with the response (sent, or the client is gone). */
static void on_response_freed(void *cls)
{
	struct xport *x = cls;
	x->resp_freed = 1;
	xport_release(x);
}

/* Loop: the thread has a chunk, an end, or has exited. */
static void on_thread(evutil_socket_t fd, short what, void *arg)
{
	struct xport *x = arg;
	int have, eof, failed, gone, exited;

	pthread_mutex_lock(&x->mu);
	have = x->have_ready;
	eof = x->eof;
	failed = x->failed;
	gone = x->gone;
	exited = x->exited;
	pthread_mutex_unlock(&x->mu);

	if (gone) {
		if (exited && (x->resp_freed || !x->started))
			xport_free(x);
		return;
	}
	if (!x->r->conn) {
		/* the client left before the answer began */
		xport_release(x);
		return;
	}
	if (!x->started && failed) {
		emv_log(EMV_LOG_WARN, "export", "job %s: %s", x->job, x->err);
		api_reply_error(x->r, 503, "database_error", "the export could not be read; try again");
		xport_release(x);
		return;
	}
	if (!x->started && (have || eof)) {
		struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, EXPORT_BLOCK, on_read,
									      x, on_response_freed);
		char cd[160];
		int csv = x->ep.format == EMV_EXPORT_CSV;
		MHD_add_response_header(resp, "Content-Type", csv ? "text/csv; charset=utf-8" : "application/x-ndjson");
		snprintf(cd, sizeof cd, "attachment; filename=\"%s.%s\"", x->job, csv ? "csv" : "jsonl");
		MHD_add_response_header(resp, "Content-Disposition", cd);
		MHD_add_response_header(resp, "Cache-Control", "no-store");
		x->started = 1;
		api_reply_response(x->r, 200, resp);
		return;
	}
	if (x->waiting && (have || eof || failed)) {
		x->waiting = 0;
		api_req_resume(x->r);
	}
}

/* The request ended before the response was made (client gone, deadline). */
static void export_gone(struct api_req *r)
{
	struct xport *x = r->ctx;
	r->ctx = NULL;
	if (!x->started)
		xport_release(x);
	/* else the response's free callback does it */
}

/* Authenticated and the job is the tenant's: start the thread; the answer
 * starts with its first chunk. */
static void export_checked(struct task *t)
{
	struct xport *x = t->ctx;
	struct api_req *r = t->req;
	if (t->code[0] || !r->conn) {
		api_task_reply(t);
		free(x);
		api_task_free(t);
		return;
	}
	x->r = r;
	api_req_ref(r);
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	x->ev = event_new(x->a->base, -1, 0, on_thread, x);
	x->want = 1;
	api_task_free(t);
	if (pthread_create(&x->th, NULL, export_main, x) != 0) {
		api_reply_error(r, 503, "busy", "no thread for the export");
		event_free(x->ev);
		api_req_unref(r);
		free(x);
		return;
	}
	r->ctx = x;
	r->gone = export_gone;
	/* the request waits (suspended in its final call) for the first chunk,
	 * which says 200 or 503 */
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

void api_export_start(struct api *a, struct api_req *r, const unsigned char token_hash[32], const char *job)
{
	const char *f = api_req_query(r, "format"), *s = api_req_query(r, "status");
	const char *ef = api_req_query(r, "escape_formulas");
	struct xport *x;
	struct task *t;
	char err[256];

	if (f && strcmp(f, "csv") != 0 && strcmp(f, "jsonl") != 0) {
		api_reply_error(r, 400, "bad_query", "format must be csv or jsonl");
		return;
	}
	if (ef && strcmp(ef, "true") != 0 && strcmp(ef, "false") != 0) {
		api_reply_error(r, 400, "bad_query", "escape_formulas must be true or false");
		return;
	}
	x = emv_xcalloc(1, sizeof *x);
	x->a = a;
	emv_strlcpy(x->job, job, sizeof x->job);
	emv_export_params_default(&x->ep);
	x->ep.lists = a->lists; /* read-only: shared by every thread */
	if (f && strcmp(f, "jsonl") == 0)
		x->ep.format = EMV_EXPORT_JSONL;
	/* CSV cells a spreadsheet would run (= + - @ TAB CR) get a ' in front
	 * unless the client asks for the text as it is */
	x->ep.keep_formulas = ef && strcmp(ef, "false") == 0;
	if (s && emv_export_parse_statuses(s, &x->ep.status_mask, err, sizeof err) != 0) {
		free(x);
		api_reply_error(r, 400, "bad_query", "status: %s", err);
		return;
	}
	t = api_task_new(a, r);
	memcpy(t->token_hash, token_hash, 32);
	emv_strlcpy(t->id, job, sizeof t->id);
	t->ctx = x;
	t->work = work_check_job;
	t->done = export_checked;
	api_task_submit(t);
}
