/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_api_upload.c - POST /v1/jobs: a list becomes a job.
 *
 * The body is either the list itself (text/csv, text/plain, gzip, ...) or
 * multipart/form-data with the list in the part named "file" (or the first
 * part with a filename) and optional parts name, callback_url,
 * callback_secret, policy, max_age, fresh, deadline_s and straggler_wait_s
 * (also accepted as query parameters; parts may come before or after the
 * list).
 *
 * The body is streamed: the token is checked before any of it is read,
 * then the list's bytes (the body, or the file part as MHD's post processor
 * cuts it out) go through a small staging buffer into a pipe that an ingest
 * thread reads (emv_ingest_job_stream: the same streaming reader and COPY
 * as `emailverify-coordinator ingest`).  When the pipe is full the
 * connection is suspended, so a fast client is slowed to the speed of
 * PostgreSQL instead of filling memory: an upload holds at most
 * UPLOAD_STAGE bytes here whatever its size.  The ingest thread (one of at
 * most max_uploads) is started once UPLOAD_PREFIX bytes of the list have
 * come, or the whole list if it is smaller, so a client trickling its
 * first bytes holds no database connection.
 *
 * The job is committed only when the body ended well: a body cut short
 * (client gone, over the limit, a malformed multipart end, the request's
 * deadline) rolls it back, whatever the ingest had read by then.  The
 * answer comes when the job is committed: 201 with its counts, or 400
 * naming what is wrong with the file, or 413 for a list over max_upload:
 * before the body is read when Content-Length says so, else (counted) once
 * the body has ended, its rest read and dropped up to max_upload + 64 KiB
 * and the connection closed past that (see on_access in emv_api.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/http.h>
#include "emv_api_internal.h"
#include "emv_cache.h"
#include "emv_db.h"
#include "emv_deadline.h"
#include "emv_defaults.h"
#include "emv_vcache.h"
#include "emv_policy.h"
#include "emv_ingest_job.h"
#include "emv_utf8.h"
#include "emv_util.h"
#include "emv_webhook.h"

#define UPLOAD_NAME_MAX 200	     /* bytes of a job name */
#define UPLOAD_URL_MAX 2000	     /* bytes of a callback URL */
#define UPLOAD_SECRET_MAX 256	     /* bytes of a callback secret */
#define UPLOAD_STAGE (256 * 1024)    /* list bytes held here at most */
#define UPLOAD_PREFIX (64 * 1024)    /* list bytes before an ingest is started */
#define UPLOAD_PP_BUFFER (16 * 1024) /* MHD's multipart parser: part headers and boundary look-ahead */
#define UPLOAD_FRAMING (64 * 1024)   /* multipart framing allowed beside max_upload */
#define UPLOAD_PIPE (1024 * 1024)    /* the pipe to the ingest thread */
#define UPLOAD_SLICE_MIN 4096	     /* less room than this: flush first */
#define UPLOAD_PARTS_MAX 32	     /* multipart parts of one upload */
#define UPLOAD_IDEM_MAX 90	     /* bytes of an Idempotency-Key */

struct upload {
	struct task *t; /* owns u; holds the request */
	struct api_req *r;
	struct MHD_PostProcessor *pp; /* multipart only */
	/* the list on its way: stage[off..len) not yet in the pipe; the extra
	 * room is for what the multipart parser held back from earlier calls */
	char *stage;
	size_t off, len;
	int wfd, rfd;
	struct event *wev; /* the pipe has room again */
	pthread_t th;
	int started;	 /* an ingest thread was started (once) */
	int running;	 /* it runs (counted in a->uploads) */
	int slot;	 /* its ingest slot (api_upload_slot_take) */
	int wait_pipe;	 /* the connection is suspended for the pipe */
	int reader_gone; /* the ingest stopped reading: the rest is dropped */
	int req_over;	 /* MHD is finished with the request */
	uint64_t bytes;	 /* list bytes received */
	/* multipart parts */
	int in_file, have_file, part_open, part_bytes_seen, parts;
	char part_key[64];
	char field[UPLOAD_URL_MAX + 1];
	size_t field_len;
	int field_over;
	char failed[512]; /* a multipart error the parser's caller reports */
	/* read by the ingest thread before its commit */
	pthread_mutex_t mu;
	int complete, aborted;
	char name[UPLOAD_NAME_MAX + 1];
	char policy[EMV_POLICY_NAME_MAX]; /* a preset's name (docs/policy.md); "" the tenant's default */
	char url[UPLOAD_URL_MAX + 1];
	char secret[UPLOAD_SECRET_MAX + 1];
	char idem[UPLOAD_IDEM_MAX + 1]; /* Idempotency-Key, "" when none */
	int have_max_age, fresh;	/* max_age and fresh (docs/cache.md) */
	int64_t max_age_s;
	int64_t deadline_s;		/* deadline_s: seconds after the job is created, 0 none */
	int64_t straggler_s;		/* straggler_wait_s, -1: not given (EMV_DEF_LINGER_MS) */
	int idem_conflict;		/* another upload took the key first */
	int callback_refused;		/* its callback_url points at a private address (cb_err) */
	char cb_err[256];
	/* the ingest thread's answer */
	int rc;
	emv_ingest_job_stats st;
	char err[1024];
};

/* ------------------------------------------------------------ validation */

/* Valid UTF-8 without control characters other than tab. */
static int utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t n = emv_utf8_len(p, 4); /* stops at the NUL */
		if (!n)
			return 0;
		if (*p < 0x20 && *p != '\t')
			return 0;
		p += n;
	}
	return 1;
}

/* Store a parameter: 0, or -1 with the reason. */
static int set_field(struct upload *u, const char *key, const char *val, size_t len, char *msg, size_t msglen)
{
	char *dst;
	size_t max;
	if (strcmp(key, "name") == 0)
		dst = u->name, max = UPLOAD_NAME_MAX;
	else if (strcmp(key, "callback_url") == 0)
		dst = u->url, max = UPLOAD_URL_MAX;
	else if (strcmp(key, "callback_secret") == 0)
		dst = u->secret, max = UPLOAD_SECRET_MAX;
	else if (strcmp(key, "max_age") == 0 || strcmp(key, "fresh") == 0) {
		/* the verdict cache's rules for this job (docs/cache.md) */
		char text[64];
		int b;
		if (len >= sizeof text || memchr(val, '\0', len)) {
			emv_set_err(msg, msglen, "%s: too long", key);
			return -1;
		}
		memcpy(text, val, len);
		text[len] = '\0';
		if (key[0] == 'm') {
			if (emv_cache_parse_max_age("max_age", text, &u->max_age_s, msg, msglen) != EMV_OK)
				return -1;
			u->have_max_age = 1;
		} else {
			if ((b = emv_vcache_parse_bool("fresh", text, msg, msglen)) < 0)
				return -1;
			u->fresh = b;
		}
		return 0;
	} else if (strcmp(key, "deadline_s") == 0 || strcmp(key, "straggler_wait_s") == 0) {
		/* whole seconds: a job's time limits (coordinator/emv_deadline.h) */
		int deadline = key[0] == 'd';
		long long lo = deadline ? EMV_DEADLINE_MIN_S : 0, v = 0;
		size_t i;
		for (i = 0; i < len && val[i] >= '0' && val[i] <= '9' && v <= EMV_DEADLINE_MAX_S; i++)
			v = v * 10 + (val[i] - '0');
		if (len == 0 || i < len || v < lo || v > EMV_DEADLINE_MAX_S) {
			emv_set_err(msg, msglen, "%s: must be a whole number of seconds from %lld to %d (30 days)", key,
				    lo, EMV_DEADLINE_MAX_S);
			return -1;
		}
		if (deadline)
			u->deadline_s = v;
		else
			u->straggler_s = v;
		return 0;
	} else if (strcmp(key, "policy") == 0) {
		/* a preset by name: a policy file is the operator's, set as a
		 * tenant's default (emailverify-coordinator tenant policy) */
		char name[EMV_POLICY_NAME_MAX];
		if (len >= sizeof name || memchr(val, '\0', len))
			len = 0;
		memcpy(name, val, len);
		name[len] = '\0';
		if (!emv_policy_preset(name)) {
			emv_set_err(msg, msglen, "policy: must be marketing or transactional (docs/policy.md)");
			return -1;
		}
		memcpy(u->policy, name, len + 1);
		return 0;
	} else
		return 0; /* unknown parameters are ignored */
	if (memchr(val, '\0', len)) {
		emv_set_err(msg, msglen, "%s: holds a NUL byte; text only", key);
		return -1;
	}
	if (len > max) {
		emv_set_err(msg, msglen, "%s: at most %zu bytes of text", key, max);
		return -1;
	}
	memcpy(dst, val, len);
	dst[len] = '\0';
	if (!utf8_valid(dst)) {
		emv_set_err(msg, msglen, "%s: not UTF-8 text", key);
		return -1;
	}
	return 0;
}

static int check_callback(struct upload *u, char *msg, size_t msglen)
{
	if (!u->url[0]) {
		if (u->secret[0]) {
			emv_set_err(msg, msglen, "callback_secret without callback_url");
			return -1;
		}
		return 0;
	}
	if (!u->secret[0]) {
		emv_set_err(msg, msglen, "callback_url needs a callback_secret to sign the webhooks with");
		return -1;
	}
	if (emv_webhook_url_scheme_ok(u->url, u->t->api->p.webhook_allow_http, msg, msglen) != 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------- multipart */

/* The boundary parameter of a multipart Content-Type (RFC 2046: 1..70). */
static int boundary_of(const char *ctype, char *out, size_t outlen)
{
	const char *p = strcasestr(ctype, "boundary=");
	size_t n;
	if (!p)
		return -1;
	p += 9;
	if (*p == '"') {
		p++;
		n = strcspn(p, "\"");
		if (p[n] != '"')
			return -1;
	} else {
		n = strcspn(p, "; \t");
	}
	if (n == 0 || n > 70 || n + 3 > outlen)
		return -1;
	memcpy(out, "--", 2);
	memcpy(out + 2, p, n);
	out[n + 2] = '\0';
	return 0;
}

/* ----------------------------------------------------------- the lifetime */

static void upload_free(struct upload *u)
{
	if (u->pp)
		MHD_destroy_post_processor(u->pp);
	if (u->wev)
		event_free(u->wev);
	if (u->wfd >= 0)
		close(u->wfd);
	pthread_mutex_destroy(&u->mu);
	free(u->stage);
	u->t->ctx = NULL;
	api_task_free(u->t); /* and with it the request */
	free(u);
}

/* No more list for the ingest: the pipe's end (EOF) once the stage is
 * empty, or now when the upload is abandoned. */
static void stop_feeding(struct upload *u)
{
	if (u->wev) {
		event_free(u->wev);
		u->wev = NULL;
	}
	if (u->wfd >= 0) {
		close(u->wfd);
		u->wfd = -1;
	}
	u->off = u->len = 0;
}

/* The upload will not become a job (answered with an error, or the client
 * is gone): an ingest still reading rolls back. */
static void upload_abort(struct upload *u)
{
	pthread_mutex_lock(&u->mu);
	u->aborted = 1;
	pthread_mutex_unlock(&u->mu);
	stop_feeding(u);
	u->r->body = NULL;
	u->r->final = NULL;
}

static void upload_fail(struct upload *u, int status, const char *code, const char *msg)
{
	upload_abort(u);
	if (status == 503)
		api_req_add_header(u->r, "Retry-After", "5");
	api_reply_error(u->r, status, code, "%s", msg);
}

/* MHD is finished with the request. */
static void upload_gone(struct api_req *r)
{
	struct upload *u = r->ctx;
	r->ctx = NULL;
	u->req_over = 1;
	pthread_mutex_lock(&u->mu);
	/* a client that never heard of its job (gone, or cut off at the
	 * deadline, even once its body was whole) gets no job: it will
	 * retry, and a committed job would be a duplicate */
	if (!u->complete || !r->answered)
		u->aborted = 1;
	pthread_mutex_unlock(&u->mu);
	if (!u->running)
		upload_free(u);
	else if (u->aborted)
		stop_feeding(u);
	/* else the ingest finishes the list it has whole: upload_done frees */
}

/* ------------------------------------------------------------- the ingest */

static int before_commit(PGconn *c, const char *job_id, void *arg, char *err, size_t errlen)
{
	struct upload *u = arg;
	char name[UPLOAD_NAME_MAX + 1], url[UPLOAD_URL_MAX + 1], secret[UPLOAD_SECRET_MAX + 1];
	char policy[EMV_POLICY_NAME_MAX];
	const char *v[5] = { job_id, name, url, secret, u->idem };
	int64_t deadline_s, straggler_s;
	PGresult *r;
	int64_t max_age;
	int ok;

	pthread_mutex_lock(&u->mu);
	ok = u->complete && !u->aborted;
	memcpy(name, u->name, sizeof name);
	memcpy(url, u->url, sizeof url);
	memcpy(secret, u->secret, sizeof secret);
	memcpy(policy, u->policy, sizeof policy);
	max_age = u->fresh ? 0 : u->have_max_age ? u->max_age_s : -1;
	deadline_s = u->deadline_s;
	straggler_s = u->straggler_s < 0 ? EMV_DEF_LINGER_MS / 1000 : u->straggler_s;
	pthread_mutex_unlock(&u->mu);
	if (!ok) {
		emv_set_err(err, errlen, "the upload was cut short");
		return EMV_ERR;
	}
	/* a callback that delivery would refuse is refused now, where the
	 * client hears of it (this thread may wait for the resolver) */
	if (url[0] &&
	    emv_webhook_url_check(url, u->t->api->p.webhook_allow_private, u->cb_err, sizeof u->cb_err) != 0) {
		u->callback_refused = 1; /* read by upload_done after the thread is joined */
		emv_set_err(err, errlen, "%s", u->cb_err);
		return EMV_ERR;
	}
	if (u->idem[0]) {
		/* a key older than 24 hours is free again */
		const char *kv[2] = { u->t->tenant, u->idem };
		r = PQexecParams(c,
				 "UPDATE jobs SET idempotency_key = NULL WHERE tenant = $1 AND idempotency_key = $2 "
				 "AND created_at <= now() - interval '24 hours'",
				 2, NULL, kv, NULL, NULL, 0);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok)
			emv_set_err(err, errlen, "freeing an old idempotency key: %s", PQresultErrorMessage(r));
		PQclear(r);
		if (!ok)
			return EMV_ERR;
	}
	r = PQexecParams(c,
			 "UPDATE jobs SET name = $2, callback_url = nullif($3, ''), callback_secret = nullif($4, ''), "
			 "idempotency_key = nullif($5, '') WHERE id = $1",
			 5, NULL, v, NULL, NULL, 0);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state && strcmp(state, "23505") == 0) {
			u->idem_conflict = 1; /* read by upload_done after the thread is joined */
			emv_set_err(err, errlen, "another upload took this Idempotency-Key first");
		} else {
			emv_set_err(err, errlen, "storing the job's name and callback: %s", PQresultErrorMessage(r));
		}
	}
	PQclear(r);
	/* the policy asked for, else the tenant's default (docs/policy.md) */
	if (ok && emv_db_job_policy_set(c, job_id, policy[0] ? emv_policy_preset(policy) : NULL, err, errlen) != EMV_OK)
		ok = 0;
	if (ok && max_age >= 0 && emv_vcache_job_set(c, job_id, max_age, err, errlen) != EMV_OK)
		ok = 0;
	/* its time limits: the deadline counts from now, when the list is in */
	if (ok && emv_deadline_set(c, job_id, deadline_s, straggler_s, err, errlen) != EMV_OK)
		ok = 0;
	return ok ? EMV_OK : EMV_ERR;
}

static void *ingest_main(void *arg)
{
	struct upload *u = arg;
	struct task *t = u->t;
	struct api *a = t->api;
	PGconn *c = api_db_connect(a, u->err, sizeof u->err);

	u->rc = EMV_ERR;
	if (c) {
		/* what a list may cost, whatever it was compressed to: a small
		 * gzip of rows or of empty lines must not become hours of COPY
		 * or CPU */
		emv_ingest_limits lim;
		emv_ingest_limits_default(&lim);
		lim.max_rows = (uint64_t)a->p.max_rows;
		lim.max_bytes = (uint64_t)a->p.max_decompressed;
		lim.max_blank_lines = (uint64_t)a->p.max_rows;
		u->rc = emv_ingest_job_stream(c, a->lists, t->tenant, "", u->rfd, "upload", &lim, before_commit, u,
					      &u->st, u->err, sizeof u->err);
		PQfinish(c);
	}
	close(u->rfd); /* a feeder still writing gets EPIPE */
	u->rfd = -1;
	api_task_post(t);
	return NULL;
}

/* Loop: the ingest thread has ended. */
static void upload_done(struct task *t)
{
	struct upload *u = t->ctx;
	struct api *a = t->api;
	const emv_ingest_job_stats *st = &u->st;
	int cut;

	pthread_join(u->th, NULL);
	u->running = 0;
	u->reader_gone = 1;
	api_upload_slot_give(a, u->slot);
	stop_feeding(u);
	pthread_mutex_lock(&u->mu);
	cut = u->aborted || !u->complete;
	u->aborted = 1; /* nothing more goes to this ingest */
	pthread_mutex_unlock(&u->mu);
	if (u->rc == EMV_OK) {
		char loc[96];
		json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "id", st->job_id, "name", u->name,
				      "state", "splitting", "rows", (json_int_t)st->rows, "addresses",
				      (json_int_t)st->unique, "duplicates", (json_int_t)st->duplicates, "invalid",
				      (json_int_t)st->invalid, "row_errors", (json_int_t)st->row_errors, "bytes",
				      (json_int_t)u->bytes, "seconds", st->seconds);
		json_object_set_new(j, "callback", json_boolean(u->url[0] != '\0'));
		__atomic_add_fetch(&a->upload_rows, st->rows, __ATOMIC_RELAXED);
		__atomic_add_fetch(&a->uploads_total, 1, __ATOMIC_RELAXED);
		emv_log(EMV_LOG_INFO, "upload", "job %s (tenant %s): %llu rows, %llu bytes in %.2f s", st->job_id,
			t->tenant, (unsigned long long)st->rows, (unsigned long long)u->bytes, st->seconds);
		/* committed: it is split even if its client is gone meanwhile */
		api_split_enqueue(a, st->job_id);
		snprintf(loc, sizeof loc, "/v1/jobs/%s", st->job_id);
		if (!u->req_over)
			api_req_add_header(u->r, "Location", loc);
		api_reply_json(u->r, 201, j); /* dropped if the client is gone */
	} else if (!u->req_over && u->callback_refused) {
		api_reply_error(u->r, 400, "bad_parameter", "%s", u->cb_err);
	} else if (!u->req_over && u->idem_conflict) {
		api_reply_error(u->r, 409, "conflict",
				"another upload with this Idempotency-Key was stored first; "
				"send it again to get that job");
	} else if (!u->req_over && st->over_limit) {
		/* rolled back: nothing of the job is kept; maybe before the
		 * body's end, like the next one */
		emv_log(EMV_LOG_WARN, "upload", "tenant %s: refused: %s", t->tenant, u->err);
		api_reply_error(u->r, 413, "too_large", "%s", u->err);
	} else if (!u->req_over && st->input_error) {
		/* maybe before the body's end: the answer goes now, the rest is not read */
		api_reply_error(u->r, 400, "unusable_file", "%s", u->err);
	} else if (!u->req_over && !cut) {
		emv_log(EMV_LOG_WARN, "upload", "tenant %s: %s", t->tenant, u->err);
		api_req_add_header(u->r, "Retry-After", "5");
		api_reply_error(u->r, 503, "database_error", "the list could not be stored; try again");
	} else if (!u->req_over) {
		/* the ingest gave up before the body ended (it cannot say why
		 * better than this): the client hears now */
		emv_log(EMV_LOG_WARN, "upload", "tenant %s: %s", t->tenant, u->err);
		api_reply_error(u->r, 503, "database_error", "the list could not be stored; try again");
	}
	if (u->req_over) {
		upload_free(u);
	} else {
		u->r->body = NULL; /* whatever is still on its way is read and dropped */
		u->r->final = NULL;
	}
}

static int start_ingest(struct upload *u)
{
	struct api *a = u->t->api;
	int fds[2];
	int why;
	if ((u->slot = api_upload_slot_take(a, u->t->tenant, &why)) < 0) {
		char msg[160];
		if (why == 0)
			snprintf(msg, sizeof msg, "%d uploads are being ingested; try again shortly", a->uploads);
		else
			snprintf(msg, sizeof msg,
				 "this tenant's share of the ingest slots (--max-uploads-per-tenant) is "
				 "taken by its other uploads; try again shortly");
		upload_fail(u, 503, "busy", msg);
		return -1;
	}
	if (pipe2(fds, O_CLOEXEC) != 0) {
		api_upload_slot_give(a, u->slot);
		upload_fail(u, 503, "busy", "no pipe for the upload");
		return -1;
	}
	u->rfd = fds[0];
	u->wfd = fds[1];
	fcntl(u->wfd, F_SETPIPE_SZ, UPLOAD_PIPE); /* fewer wake-ups; the default 64 KiB is fine too */
	fcntl(u->wfd, F_SETFL, fcntl(u->wfd, F_GETFL) | O_NONBLOCK);
	u->t->done = upload_done;
	if (pthread_create(&u->th, NULL, ingest_main, u) != 0) {
		close(u->rfd);
		u->rfd = -1;
		api_upload_slot_give(a, u->slot);
		upload_fail(u, 503, "busy", "no thread for the upload");
		return -1;
	}
	u->started = u->running = 1;
	return 0;
}

static void on_pipe_writable(evutil_socket_t fd, short what, void *arg);

/* Move staged bytes into the pipe (starting the ingest when enough have
 * come); at the list's end, close the pipe once the stage is empty.
 * 0, or -1 when the upload was answered with an error. */
static int flush_stage(struct upload *u)
{
	int complete;
	pthread_mutex_lock(&u->mu);
	complete = u->complete;
	pthread_mutex_unlock(&u->mu);
	if (!u->started) {
		if (u->len - u->off < UPLOAD_PREFIX && !complete)
			return 0;
		if (start_ingest(u) != 0)
			return -1;
	}
	while (u->off < u->len && u->wfd >= 0) {
		ssize_t n = write(u->wfd, u->stage + u->off, u->len - u->off);
		if (n > 0) {
			u->off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			if (!u->wev)
				u->wev = event_new(u->t->api->base, u->wfd, EV_WRITE, on_pipe_writable, u);
			event_add(u->wev, NULL);
			break;
		} else {
			/* the ingest stopped reading (its answer is on its way) */
			u->reader_gone = 1;
			stop_feeding(u);
		}
	}
	if (u->off == u->len)
		u->off = u->len = 0;
	if (complete && u->len == 0 && u->wfd >= 0)
		stop_feeding(u); /* EOF: the ingest commits (before_commit agrees) */
	if (u->reader_gone)
		u->off = u->len = 0;
	return 0;
}

static void on_pipe_writable(evutil_socket_t fd, short what, void *arg)
{
	struct upload *u = arg;
	if (flush_stage(u) != 0)
		return;
	if (u->wait_pipe && u->len - u->off < UPLOAD_STAGE / 2) {
		u->wait_pipe = 0;
		api_req_resume(u->r);
	}
}

/* Room for n more bytes in the stage (moving what is left to its start). */
static size_t stage_room(struct upload *u)
{
	if (u->off > 0) {
		memmove(u->stage, u->stage + u->off, u->len - u->off);
		u->len -= u->off;
		u->off = 0;
	}
	return u->len < UPLOAD_STAGE ? UPLOAD_STAGE - u->len : 0;
}

/* List bytes: counted against the limit, then staged (the caller made room). */
static int take_list(struct upload *u, const char *data, size_t n)
{
	u->bytes += n;
	if (u->bytes > (uint64_t)u->t->api->p.max_upload) {
		char msg[160];
		snprintf(msg, sizeof msg, "the list is over the limit of %lld bytes",
			 (long long)u->t->api->p.max_upload);
		upload_fail(u, 413, "too_large", msg);
		return -1;
	}
	if (u->reader_gone)
		return 0;
	memcpy(u->stage + u->len, data, n);
	u->len += n;
	return 0;
}

/* ------------------------------------------------------------- multipart */

static int finish_part(struct upload *u)
{
	if (!u->part_open || u->in_file)
		return 0;
	u->part_open = 0;
	if (strcmp(u->part_key, "name") == 0 || strcmp(u->part_key, "callback_url") == 0 ||
	    strcmp(u->part_key, "callback_secret") == 0 || strcmp(u->part_key, "policy") == 0 ||
	    strcmp(u->part_key, "max_age") == 0 || strcmp(u->part_key, "fresh") == 0 ||
	    strcmp(u->part_key, "deadline_s") == 0 || strcmp(u->part_key, "straggler_wait_s") == 0) {
		char msg[512];
		int rc;
		if (u->field_over) {
			snprintf(u->failed, sizeof u->failed, "multipart field %s is too long", u->part_key);
			return -1;
		}
		pthread_mutex_lock(&u->mu);
		rc = set_field(u, u->part_key, u->field, u->field_len, msg, sizeof msg);
		pthread_mutex_unlock(&u->mu);
		if (rc != 0) {
			emv_strlcpy(u->failed, msg, sizeof u->failed);
			return -1;
		}
	}
	return 0;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
			       const char *content_type, const char *transfer_encoding, const char *data, uint64_t off,
			       size_t size)
{
	struct upload *u = cls;
	if (!key)
		key = "";
	/* a part's first call has off 0; so may its second, when the first
	 * only said that the part exists */
	if (off == 0 && !(u->part_open && !u->part_bytes_seen && strcmp(key, u->part_key) == 0)) {
		if (finish_part(u) != 0)
			return MHD_NO;
		if (++u->parts > UPLOAD_PARTS_MAX) {
			snprintf(u->failed, sizeof u->failed, "more than %d multipart parts", UPLOAD_PARTS_MAX);
			return MHD_NO;
		}
		u->part_open = 1;
		u->part_bytes_seen = 0;
		emv_strlcpy(u->part_key, key, sizeof u->part_key);
		u->in_file = 0;
		if (u->have_file && (strcmp(key, "file") == 0 || (filename && filename[0]))) {
			/* which one is the list? say so rather than pick one */
			snprintf(u->failed, sizeof u->failed, "more than one file part: send one list per upload");
			return MHD_NO;
		}
		if (!u->have_file && (strcmp(key, "file") == 0 || (filename && filename[0]))) {
			u->have_file = 1;
			u->in_file = 1;
		}
		u->field_len = 0;
		u->field_over = 0;
	} else if (!u->part_open) {
		return MHD_YES;
	}
	if (size == 0)
		return MHD_YES;
	u->part_bytes_seen = 1;
	if (u->in_file) {
		if (u->len + size > UPLOAD_STAGE + UPLOAD_PP_BUFFER + 1024) {
			snprintf(u->failed, sizeof u->failed, "multipart parser overran its buffer");
			return MHD_NO;
		}
		return take_list(u, data, size) == 0 ? MHD_YES : MHD_NO;
	}
	if (u->field_len + size > UPLOAD_URL_MAX) {
		u->field_over = 1;
		return MHD_YES;
	}
	memcpy(u->field + u->field_len, data, size);
	u->field_len += size;
	return MHD_YES;
}

/* ------------------------------------------------------------- the body */

static int upload_body(struct api_req *r, const char *data, size_t *size)
{
	struct upload *u = r->ctx;
	while (*size > 0 && !r->reply) {
		size_t room = stage_room(u), n;
		if (room < UPLOAD_SLICE_MIN) {
			if (flush_stage(u) != 0)
				break;
			room = stage_room(u);
		}
		if (room < UPLOAD_SLICE_MIN && !u->reader_gone) {
			/* the pipe is full: read no more until it has room */
			u->wait_pipe = 1;
			api_req_suspend(r);
			return 0;
		}
		n = *size < room ? *size : room;
		if (u->pp) {
			if (MHD_post_process(u->pp, data, n) != MHD_YES) {
				if (!r->reply)
					upload_fail(u, 400, "bad_multipart",
						    u->failed[0] ? u->failed : "the multipart body is malformed");
				break;
			}
		} else if (take_list(u, data, n) != 0) {
			break;
		}
		data += n;
		*size -= n;
		if (!r->reply && flush_stage(u) != 0)
			break;
	}
	if (r->reply)
		*size = 0;
	return 0;
}

/* The body is whole: check what came with the list, then let the ingest
 * read to the end and commit. */
static void upload_final(struct api_req *r)
{
	struct upload *u = r->ctx;
	char msg[512];
	if (u->pp) {
		int ok = MHD_destroy_post_processor(u->pp) == MHD_YES;
		u->pp = NULL;
		if (ok && finish_part(u) != 0)
			ok = 0;
		if (!ok) {
			upload_fail(u, 400, "bad_multipart",
				    u->failed[0] ? u->failed
						 : "the multipart body is malformed or ends without its "
						   "closing boundary");
			return;
		}
		if (!u->have_file) {
			upload_fail(u, 400, "bad_multipart", "multipart body without a \"file\" part holding the list");
			return;
		}
	}
	pthread_mutex_lock(&u->mu);
	if (check_callback(u, msg, sizeof msg) != 0) {
		pthread_mutex_unlock(&u->mu);
		upload_fail(u, 400, "bad_parameter", msg);
		return;
	}
	pthread_mutex_unlock(&u->mu);
	if (u->bytes == 0) {
		upload_fail(u, 400, "unusable_file",
			    "the upload is empty: send the list as the body, or as the "
			    "multipart part \"file\"");
		return;
	}
	__atomic_add_fetch(&u->t->api->upload_bytes, u->bytes, __ATOMIC_RELAXED);
	pthread_mutex_lock(&u->mu);
	u->complete = 1;
	pthread_mutex_unlock(&u->mu);
	flush_stage(u); /* the pipe closes once the stage is empty; the answer comes from upload_done */
}

/* ------------------------------------------------------------- the start */

static int query_field(void *arg, const char *key, const char *value)
{
	struct upload *u = arg;
	char msg[512];
	if (set_field(u, key, value, strlen(value), msg, sizeof msg) != 0) {
		api_reply_error(u->r, 400, "bad_parameter", "%s", msg);
		return -1;
	}
	return 0;
}

/* Authenticated: read the parameters and get ready for the body. */
static void upload_authed(struct task *t)
{
	struct api_req *r = t->req;
	struct upload *u;
	const char *ctype;

	if (!r->conn) {
		api_task_free(t);
		return;
	}
	if (t->code[0]) {
		api_task_reply(t);
		api_task_free(t);
		return;
	}
	if (t->json) {
		/* the same Idempotency-Key within 24 hours: the first job, whose
		 * answer the client may have missed; the body is read and dropped */
		char loc[128];
		snprintf(loc, sizeof loc, "/v1/jobs/%s", json_string_value(json_object_get(t->json, "id")));
		api_req_add_header(r, "Location", loc);
		api_req_add_header(r, "Idempotent-Replayed", "true");
		r->drop_max = (uint64_t)t->api->p.max_upload + UPLOAD_FRAMING;
		api_task_reply(t);
		api_task_free(t);
		return;
	}
	{
		/* no ingest slot now for a list that will need one: say so before
		 * the client sends it (an upload of at most UPLOAD_PREFIX bytes
		 * may still find one free at its end) */
		const char *clen = api_req_header(r, "Content-Length");
		struct api *a = t->api;
		int full = api_upload_slots_full(a, t->tenant);
		if (full && (!clen || strtoull(clen, NULL, 10) > UPLOAD_PREFIX)) {
			api_req_add_header(r, "Retry-After", "5");
			if (full == 1)
				api_reply_error(r, 503, "busy", "%d uploads are being ingested; try again shortly",
						a->uploads);
			else
				api_reply_error(r, 503, "busy",
						"this tenant's share of the ingest slots "
						"(--max-uploads-per-tenant) is taken by its other uploads; "
						"try again shortly");
			api_task_free(t);
			return;
		}
	}
	u = emv_xcalloc(1, sizeof *u);
	u->t = t;
	u->r = r;
	emv_strlcpy(u->idem, t->arg[0], sizeof u->idem);
	u->wfd = u->rfd = -1;
	u->straggler_s = -1;
	pthread_mutex_init(&u->mu, NULL);
	t->ctx = u;
	r->ctx = u;
	r->gone = upload_gone;
	if (api_req_query_each(r, query_field, u) != 0)
		return; /* answered; upload_gone frees */
	ctype = api_req_header(r, "Content-Type");
	if (ctype && strncasecmp(ctype, "multipart/", 10) == 0) {
		char delim[80];
		if (strncasecmp(ctype, "multipart/form-data", 19) != 0 ||
		    boundary_of(ctype, delim, sizeof delim) != 0 ||
		    !(u->pp = MHD_create_post_processor(r->conn, UPLOAD_PP_BUFFER, on_part, u))) {
			api_reply_error(r, 400, "bad_multipart",
					"multipart uploads must be multipart/form-data with a "
					"boundary of 1..70 characters");
			return;
		}
	}
	u->stage = emv_xmalloc(UPLOAD_STAGE + UPLOAD_PP_BUFFER + 1024);
	r->body = upload_body;
	r->final = upload_final;
	/* an answer decided mid-way is given at the body's end, but no body
	 * over the limit is read to its end */
	r->drop_max = (uint64_t)t->api->p.max_upload + UPLOAD_FRAMING;
	api_req_resume(r);
}

/* The token; and with an Idempotency-Key (t->arg[0]), the tenant's job of
 * the last 24 hours made with it, if any (then t->json). */
static void work_auth(struct task *t, PGconn *c)
{
	char sql[1024];
	const char *v[2] = { t->tenant, t->arg[0] };
	PGresult *r;
	if (!api_authenticate(t, c) || !t->arg[0][0])
		return;
	snprintf(sql, sizeof sql,
		 "SELECT %s FROM jobs WHERE tenant = $1 AND idempotency_key = $2 "
		 "AND created_at > now() - interval '24 hours'",
		 api_job_columns);
	r = PQexecParams(c, sql, 2, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		emv_log(EMV_LOG_WARN, "upload", "idempotency key: %s", PQresultErrorMessage(r));
		api_task_error(t, 503, "database_error", "looking up the Idempotency-Key failed; try again");
	} else if (PQntuples(r) == 1) {
		t->json = api_job_json(r, 0);
		t->status = 200;
	}
	PQclear(r);
}

/* An Idempotency-Key: 1..UPLOAD_IDEM_MAX visible ASCII characters. */
static int idem_valid(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n > UPLOAD_IDEM_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (k[i] < 0x21 || k[i] > 0x7e)
			return 0;
	return 1;
}

void api_upload_start(struct api *a, struct api_req *r, const unsigned char token_hash[32])
{
	const char *clen = api_req_header(r, "Content-Length");
	struct task *t;
	/* far over the limit: said before a byte of the body is read */
	if (clen && strtoull(clen, NULL, 10) > (unsigned long long)a->p.max_upload + UPLOAD_FRAMING) {
		api_reply_error(r, 413, "too_large", "the upload is %s bytes; the limit is %lld", clen,
				(long long)a->p.max_upload);
		return;
	}
	{
		const char *key = api_req_header(r, "Idempotency-Key");
		if (key && !idem_valid(key)) {
			api_reply_error(r, 400, "bad_request", "Idempotency-Key must be 1..%d visible ASCII characters",
					UPLOAD_IDEM_MAX);
			return;
		}
		t = api_task_new(a, r);
		if (key)
			emv_strlcpy(t->arg[0], key, sizeof t->arg[0]);
	}
	memcpy(t->token_hash, token_hash, 32);
	t->work = work_auth;
	t->done = upload_authed;
	api_task_submit(t);
}
