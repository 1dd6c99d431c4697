/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_api_check.c - POST /v1/check {"email": "...", "wait_s": N}: one
 * address verified by the cluster while the client waits.
 *
 * The address becomes a one-row job (the same ingest, split and workers as
 * a list, so it gets the same normalisation, flags and evidence) and the
 * loop looks for its final result every CHECK_POLL_MS.  Found within wait_s
 * (default 10, at most 30): 200 with the result as one export object (the
 * fields of a JSON Lines export row).  Not yet: 202 with the job id, whose
 * status and results are then at /v1/jobs/{id} like any job's.  The wait
 * is a timer on the loop; no thread is held while waiting.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "emv_api_internal.h"
#include "emv_export.h"
#include "emv_ingest_job.h"
#include "emv_util.h"

#define CHECK_BODY_MAX 4096 /* bytes of the request body */
#define CHECK_WAIT_S 10	    /* default wait */
#define CHECK_WAIT_MAX_S 30
#define CHECK_POLL_MS 200

struct check {
	char email[1100];
	int wait_s;
	uint64_t deadline;
	char job[40];
	char *result; /* the export row, when final */
	struct event *timer;
	struct task *t;		/* its task, between polls */
	unsigned char hash[32]; /* the token's, until the body is in */
	char body[CHECK_BODY_MAX + 1];
	size_t body_len;
};

static void check_free(struct task *t)
{
	struct check *k = t->ctx;
	if (k) {
		if (k->timer)
			event_free(k->timer);
		free(k->result);
		free(k);
	}
	api_task_free(t);
}

/* Pool: authenticate, then the address becomes a job. */
static void work_create(struct task *t, PGconn *c)
{
	struct check *k = t->ctx;
	emv_ingest_job_stats st;
	char err[1024], line[2300];
	int fds[2];
	size_t n;

	if (!api_authenticate(t, c))
		return;
	if (pipe2(fds, O_CLOEXEC) != 0) {
		api_task_error(t, 503, "busy", "no pipe: %s", strerror(errno));
		return;
	}
	/* "email" header, then the address: one column (the header has no
	 * delimiter), so the line is taken verbatim; both fit in a pipe's
	 * buffer */
	n = (size_t)snprintf(line, sizeof line, "%s\n", k->email);
	if (write(fds[1], "email\n", 6) != 6 || write(fds[1], line, n) != (ssize_t)n) {
		close(fds[0]);
		close(fds[1]);
		api_task_error(t, 503, "busy", "the pipe refused the address");
		return;
	}
	close(fds[1]);
	if (emv_ingest_job_fd(c, t->api->lists, t->tenant, "check", fds[0], "check", &st, err, sizeof err) != EMV_OK) {
		if (st.input_error)
			api_task_error(t, 400, "bad_request", "%s", err);
		else
			api_task_error(t, 503, "database_error", "the address could not be stored; try again");
	} else {
		emv_strlcpy(k->job, st.job_id, sizeof k->job);
	}
	close(fds[0]);
}

static int to_string(void *arg, const char *data, size_t len)
{
	char **s = arg;
	size_t have = *s ? strlen(*s) : 0;
	*s = emv_xrealloc(*s, have + len + 1);
	memcpy(*s + have, data, len);
	(*s)[have + len] = '\0';
	return 0;
}

/* Pool: is the row final?  Then format it like an export row. */
static void work_poll(struct task *t, PGconn *c)
{
	struct check *k = t->ctx;
	const char *v[1] = { k->job };
	PGresult *r = PQexecParams(c,
				   "SELECT 1 FROM results r JOIN addresses a ON a.job_id = r.job_id "
				   "AND r.address_id = coalesce(a.duplicate_of, a.id) "
				   "WHERE a.job_id = $1 AND a.id = 1 AND r.final",
				   1, NULL, v, NULL, NULL, 0);
	int final = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	PQclear(r);
	if (final) {
		emv_export_params ep;
		emv_export *x;
		char err[512];
		emv_export_params_default(&ep);
		ep.format = EMV_EXPORT_JSONL;
		ep.lists = t->api->lists;
		if ((x = emv_export_open(c, k->job, &ep, err, sizeof err))) {
			if (emv_export_next(x, to_string, &k->result, err, sizeof err) < 0) {
				free(k->result);
				k->result = NULL;
			}
			emv_export_close(x);
		}
	}
}

static void poll_done(struct task *t);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct task *t = arg;
	struct check *k = t->ctx;
	k->t = NULL; /* in the pool's hands again */
	t->work = work_poll;
	t->done = poll_done;
	api_task_submit(t);
}

static void reply_pending(struct task *t)
{
	struct check *k = t->ctx;
	char loc[96];
	snprintf(loc, sizeof loc, "/v1/jobs/%s", k->job);
	api_req_add_header(t->req, "Location", loc);
	api_reply_json(t->req, 202,
		       json_pack("{s:s,s:s,s:s,s:s}", "id", k->job, "state", "pending", "status_url", loc, "message",
				 "not final yet: ask the job's status and results later"));
}

/* The client went away (or its deadline passed) while we waited. */
static void check_gone(struct api_req *r)
{
	struct check *k = r->ctx;
	r->ctx = NULL;
	if (k->t) {
		/* between polls: nothing else holds the task */
		struct task *t = k->t;
		k->t = NULL;
		check_free(t);
	}
}

static void poll_done(struct task *t)
{
	struct check *k = t->ctx;
	if (!t->req->conn) {
		check_free(t);
		return;
	}
	if (k->result) {
		json_error_t e;
		json_t *j = json_loads(k->result, 0, &e);
		if (j) {
			json_object_set_new(j, "job_id", json_string(k->job));
			api_reply_json(t->req, 200, j);
		} else {
			api_reply_error(t->req, 500, "internal", "the result could not be formatted");
		}
		t->req->gone = NULL;
		check_free(t);
		return;
	}
	if (emv_now_ms() >= k->deadline) {
		reply_pending(t);
		t->req->gone = NULL;
		check_free(t);
		return;
	}
	{
		struct timeval tv = { 0, CHECK_POLL_MS * 1000 };
		if (!k->timer)
			k->timer = evtimer_new(t->api->base, on_timer, t);
		k->t = t; /* the request's gone() frees it while it waits */
		t->req->ctx = k;
		t->req->gone = check_gone;
		evtimer_add(k->timer, &tv);
	}
}

static void create_done(struct task *t)
{
	struct check *k = t->ctx;
	if (t->code[0]) {
		api_task_reply(t);
		check_free(t);
		return;
	}
	api_split_enqueue(t->api, k->job);
	on_timer(-1, 0, t); /* one look at once: unusable addresses are final already */
}

static int check_body(struct api_req *r, const char *data, size_t *size)
{
	struct check *k = r->ctx;
	if (k->body_len + *size > CHECK_BODY_MAX) {
		api_reply_error(r, 413, "too_large", "a check body is at most %d bytes", CHECK_BODY_MAX);
		return 0;
	}
	memcpy(k->body + k->body_len, data, *size);
	k->body_len += *size;
	*size = 0;
	return 0;
}

static void check_body_free(struct api_req *r)
{
	free(r->ctx);
	r->ctx = NULL;
}

/* The body is in: is it {"email": ..., "wait_s": N}? */
static void check_final(struct api_req *r)
{
	struct check *k = r->ctx;
	json_error_t e;
	json_t *j, *email, *wait;
	struct task *t;

	j = json_loadb(k->body, k->body_len, JSON_REJECT_DUPLICATES, &e);
	if (!j || !json_is_object(j)) {
		/* say what is wrong in the client's terms, not jansson's (its
		 * texts name flags such as JSON_ALLOW_NUL) */
		if (!j && strstr(e.text, "NUL"))
			api_reply_error(r, 400, "bad_request",
					"the body holds a NUL character (\\u0000 or a zero byte)");
		else if (!j && e.line > 0)
			api_reply_error(r, 400, "bad_request",
					"the body is not JSON (line %d, column %d); send "
					"{\"email\": \"...\"}",
					e.line, e.column);
		else
			api_reply_error(r, 400, "bad_request", "the body must be a JSON object {\"email\": \"...\"}");
		json_decref(j);
		return;
	}
	email = json_object_get(j, "email");
	wait = json_object_get(j, "wait_s");
	if (!json_is_string(email) || json_string_length(email) == 0 || json_string_length(email) > 1024 ||
	    strchr(json_string_value(email), '\n') || strchr(json_string_value(email), '\r')) {
		json_decref(j);
		api_reply_error(r, 400, "bad_request", "\"email\" must be one address of at most 1024 bytes");
		return;
	}
	if (wait &&
	    (!json_is_integer(wait) || json_integer_value(wait) < 0 || json_integer_value(wait) > CHECK_WAIT_MAX_S)) {
		json_decref(j);
		api_reply_error(r, 400, "bad_request", "\"wait_s\" must be 0..%d", CHECK_WAIT_MAX_S);
		return;
	}
	emv_strlcpy(k->email, json_string_value(email), sizeof k->email);
	k->wait_s = wait ? (int)json_integer_value(wait) : CHECK_WAIT_S;
	k->deadline = emv_now_ms() + (uint64_t)k->wait_s * 1000;
	json_decref(j);
	/* the task owns k from here */
	r->ctx = NULL;
	r->gone = NULL;
	r->body = NULL;
	t = api_task_new(r->a, r);
	memcpy(t->token_hash, k->hash, 32);
	t->ctx = k;
	t->work = work_create;
	t->done = create_done;
	api_task_submit(t);
}

void api_check_start(struct api *a, struct api_req *r, const unsigned char token_hash[32])
{
	const char *clen = api_req_header(r, "Content-Length");
	struct check *k;
	if (clen && strtoull(clen, NULL, 10) > CHECK_BODY_MAX) {
		api_reply_error(r, 413, "too_large", "a check body is at most %d bytes", CHECK_BODY_MAX);
		return;
	}
	k = emv_xcalloc(1, sizeof *k);
	memcpy(k->hash, token_hash, 32);
	r->ctx = k;
	r->body = check_body;
	r->final = check_final;
	r->gone = check_body_free;
}
