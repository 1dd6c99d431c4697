/*
 * emv_api_upload.c - POST /v1/jobs: a list becomes a job.
 *
 * The body is either the list itself (text/csv, text/plain, gzip, ...) or
 * multipart/form-data with the list in the part named "file" (or the first
 * part with a filename) and optional parts name, callback_url and
 * callback_secret (also accepted as query parameters).  evhttp has the
 * whole body by the time we see the request (at most max_upload bytes plus
 * the multipart framing); the list's bytes are then written into a pipe
 * from the loop as fast as an ingest thread reads them (emv_ingest_job_fd:
 * the same streaming reader and COPY as `emailverify-coordinator ingest`),
 * freeing memory as they go.  The answer comes when the job is committed:
 * 201 with its counts, or 400 naming what is wrong with the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include "emv_api_internal.h"
#include "emv_ingest_job.h"
#include "emv_util.h"

#define UPLOAD_NAME_MAX      200   /* bytes of a job name */
#define UPLOAD_URL_MAX       2000  /* bytes of a callback URL */
#define UPLOAD_SECRET_MAX    256   /* bytes of a callback secret */
#define MULTIPART_HEADER_MAX 8192  /* bytes of one part's headers */
#define FEED_CHUNK           (1024 * 1024)

struct upload {
	struct evbuffer *body;          /* the list's bytes not yet in the pipe */
	int wfd, rfd;
	struct event *wev;
	pthread_t th;
	int started;
	char name[UPLOAD_NAME_MAX + 1];
	char url[UPLOAD_URL_MAX + 1];
	char secret[UPLOAD_SECRET_MAX + 1];
	uint64_t bytes;
	/* the ingest thread's answer */
	int rc;
	emv_ingest_job_stats st;
	char err[1024];
};

static void upload_free(struct api *a, struct task *t)
{
	struct upload *u = t->ctx;
	if (u) {
		if (u->wev)
			event_free(u->wev);
		if (u->wfd >= 0)
			close(u->wfd);
		if (u->body)
			evbuffer_free(u->body);
		free(u);
	}
	a->uploads--;
	api_task_free(t);
}

/* ------------------------------------------------------------ validation */

static int utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 && *p >= 0xc2 ? 2 : (*p & 0xf0) == 0xe0 ? 3 :
			   (*p & 0xf8) == 0xf0 && *p <= 0xf4 ? 4 : 0;
		if (!n)
			return 0;
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return 0;
		if ((n == 3 && ((*p == 0xe0 && p[1] < 0xa0) || (*p == 0xed && p[1] > 0x9f))) ||
		    (n == 4 && ((*p == 0xf0 && p[1] < 0x90) || (*p == 0xf4 && p[1] > 0x8f))))
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
	else
		return 0; /* unknown parameters are ignored */
	if (len > max || memchr(val, '\0', len)) {
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
	struct evhttp_uri *uri;
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
	uri = evhttp_uri_parse(u->url);
	if (!uri || !evhttp_uri_get_scheme(uri) || strcasecmp(evhttp_uri_get_scheme(uri), "http") != 0 ||
	    !evhttp_uri_get_host(uri) || !*evhttp_uri_get_host(uri)) {
		if (uri)
			evhttp_uri_free(uri);
		emv_set_err(msg, msglen, "callback_url must be an http:// URL with a host");
		return -1;
	}
	evhttp_uri_free(uri);
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

/* The value of parameter `key` in a Content-Disposition header ("" if absent). */
static void disposition_param(const char *h, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	out[0] = '\0';
	for (const char *p = h; (p = strcasestr(p, key)); p += kl) {
		const char *v;
		size_t n;
		if (p > h && p[-1] != ';' && p[-1] != ' ' && p[-1] != '\t')
			continue;
		if (p[kl] != '=')
			continue;
		v = p + kl + 1;
		if (*v == '"') {
			v++;
			n = strcspn(v, "\"");
		} else {
			n = strcspn(v, "; \t\r\n");
		}
		if (n >= outlen)
			n = outlen - 1;
		memcpy(out, v, n);
		out[n] = '\0';
		return;
	}
}

static int ptr_at(struct evbuffer *b, struct evbuffer_ptr *p, size_t pos)
{
	return evbuffer_ptr_set(b, p, pos, EVBUFFER_PTR_SET);
}

/*
 * Find the list in a multipart body (RFC 7578), read the small fields into
 * u, then leave exactly the list's bytes in `in`.  0, or -1 with the reason.
 */
static int multipart_extract(struct evbuffer *in, const char *delim, struct upload *u, char *msg, size_t msglen)
{
	size_t dl = strlen(delim), total = evbuffer_get_length(in);
	size_t file_at = 0, file_len = 0;
	int have_file = 0, parts = 0;
	struct evbuffer_ptr pos;
	char cdelim[80];

	snprintf(cdelim, sizeof cdelim, "\r\n%s", delim);
	pos = evbuffer_search(in, delim, dl, NULL);
	if (pos.pos < 0) {
		emv_set_err(msg, msglen, "multipart body without its boundary");
		return -1;
	}
	for (;;) {
		size_t after = (size_t)pos.pos + dl, hstart, cstart;
		char two[2], hdr[MULTIPART_HEADER_MAX + 1], name[64], filename[256];
		struct evbuffer_ptr s, e, h, next;

		if (after + 2 > total || ptr_at(in, &s, after) != 0 ||
		    evbuffer_copyout_from(in, &s, two, 2) != 2) {
			emv_set_err(msg, msglen, "multipart body ends without its closing boundary");
			return -1;
		}
		if (two[0] == '-' && two[1] == '-')
			break; /* the close delimiter: the epilogue is ignored */
		if (two[0] != '\r' || two[1] != '\n') {
			emv_set_err(msg, msglen, "multipart boundary not followed by a line break");
			return -1;
		}
		if (++parts > 32) {
			emv_set_err(msg, msglen, "more than 32 multipart parts");
			return -1;
		}
		hstart = after + 2;
		ptr_at(in, &s, hstart);
		ptr_at(in, &e, hstart + MULTIPART_HEADER_MAX < total ? hstart + MULTIPART_HEADER_MAX : total);
		h = evbuffer_search_range(in, "\r\n\r\n", 4, &s, &e);
		if (h.pos < 0) {
			/* a part without headers starts with the blank line itself */
			char crlf[2];
			if (evbuffer_copyout_from(in, &s, crlf, 2) == 2 && crlf[0] == '\r' && crlf[1] == '\n') {
				hdr[0] = '\0';
				cstart = hstart + 2;
			} else {
				emv_set_err(msg, msglen, "multipart part %d: headers missing or over %d bytes", parts,
					    MULTIPART_HEADER_MAX);
				return -1;
			}
		} else {
			size_t hl = (size_t)h.pos - hstart;
			evbuffer_copyout_from(in, &s, hdr, hl);
			hdr[hl] = '\0';
			cstart = (size_t)h.pos + 4;
		}
		ptr_at(in, &s, cstart);
		next = evbuffer_search(in, cdelim, strlen(cdelim), &s);
		if (next.pos < 0) {
			emv_set_err(msg, msglen, "multipart part %d is not terminated by the boundary", parts);
			return -1;
		}
		{
			size_t clen = (size_t)next.pos - cstart;
			const char *cd = strcasestr(hdr, "content-disposition:");
			if (!cd) {
				emv_set_err(msg, msglen, "multipart part %d has no Content-Disposition", parts);
				return -1;
			}
			disposition_param(cd, "name", name, sizeof name);
			disposition_param(cd, "filename", filename, sizeof filename);
			if (!have_file && (strcmp(name, "file") == 0 || filename[0])) {
				have_file = 1;
				file_at = cstart;
				file_len = clen;
			} else if (clen <= UPLOAD_URL_MAX) {
				char val[UPLOAD_URL_MAX + 1];
				ptr_at(in, &s, cstart);
				evbuffer_copyout_from(in, &s, val, clen);
				if (set_field(u, name, val, clen, msg, msglen) != 0)
					return -1;
			} else if (strcmp(name, "name") == 0 || strcmp(name, "callback_url") == 0 ||
				   strcmp(name, "callback_secret") == 0) {
				emv_set_err(msg, msglen, "multipart field %s is too long", name);
				return -1;
			}
		}
		pos = next;
		pos.pos += 2; /* onto the delimiter after its CRLF */
		ptr_at(in, &pos, (size_t)pos.pos);
	}
	if (!have_file) {
		emv_set_err(msg, msglen, "multipart body without a \"file\" part holding the list");
		return -1;
	}
	evbuffer_drain(in, file_at);
	{
		struct evbuffer *keep = evbuffer_new();
		evbuffer_remove_buffer(in, keep, file_len);
		evbuffer_drain(in, evbuffer_get_length(in));
		evbuffer_add_buffer(in, keep);
		evbuffer_free(keep);
	}
	return 0;
}

/* ------------------------------------------------------------- the ingest */

static void *ingest_main(void *arg)
{
	struct task *t = arg;
	struct upload *u = t->ctx;
	struct api *a = t->api;
	PGconn *c = api_db_connect(a, u->err, sizeof u->err);

	u->rc = EMV_ERR;
	if (c) {
		u->rc = emv_ingest_job_fd(c, a->lists, t->tenant, u->name, u->rfd, "upload", &u->st, u->err,
					  sizeof u->err);
		if (u->rc == EMV_OK && u->url[0]) {
			const char *v[3] = { u->st.job_id, u->url, u->secret };
			PGresult *r = PQexecParams(c, "UPDATE jobs SET callback_url = $2, callback_secret = $3 WHERE id = $1",
						   3, NULL, v, NULL, NULL, 0);
			if (PQresultStatus(r) != PGRES_COMMAND_OK)
				emv_log(EMV_LOG_WARN, "upload", "job %s: storing the callback: %s", u->st.job_id,
					PQresultErrorMessage(r));
			PQclear(r);
		}
		PQfinish(c);
	}
	close(u->rfd); /* a feeder still writing gets EPIPE */
	u->rfd = -1;
	api_task_post(t);
	return NULL;
}

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
	if (u->body) {
		evbuffer_free(u->body);
		u->body = NULL;
	}
}

static void on_pipe_writable(evutil_socket_t fd, short what, void *arg)
{
	struct upload *u = arg;
	int n = evbuffer_write_atmost(u->body, u->wfd, FEED_CHUNK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0 || evbuffer_get_length(u->body) == 0)
		stop_feeding(u); /* all written (EOF for the reader), or the reader gave up */
}

static void upload_done(struct task *t)
{
	struct upload *u = t->ctx;
	struct api *a = t->api;
	const emv_ingest_job_stats *st = &u->st;

	stop_feeding(u);
	pthread_join(u->th, NULL);
	if (u->rc == EMV_OK) {
		char loc[96];
		json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "id", st->job_id, "name", u->name,
				      "state", "splitting", "rows", (json_int_t)st->rows, "addresses",
				      (json_int_t)st->unique, "duplicates", (json_int_t)st->duplicates, "invalid",
				      (json_int_t)st->invalid, "row_errors", (json_int_t)st->row_errors, "bytes",
				      (json_int_t)u->bytes, "seconds", st->seconds);
		json_object_set_new(j, "callback", json_boolean(u->url[0] != '\0'));
		snprintf(loc, sizeof loc, "/v1/jobs/%s", st->job_id);
		evhttp_add_header(evhttp_request_get_output_headers(t->req), "Location", loc);
		__atomic_add_fetch(&a->upload_rows, st->rows, __ATOMIC_RELAXED);
		__atomic_add_fetch(&a->uploads_total, 1, __ATOMIC_RELAXED);
		emv_log(EMV_LOG_INFO, "upload", "job %s (tenant %s): %llu rows, %llu bytes in %.2f s", st->job_id,
			t->tenant, (unsigned long long)st->rows, (unsigned long long)u->bytes, st->seconds);
		api_split_enqueue(a, st->job_id);
		api_reply_json(t->req, 201, j);
	} else if (st->input_error) {
		api_reply_error(t->req, 400, "unusable_file", "%s", u->err);
	} else {
		emv_log(EMV_LOG_WARN, "upload", "tenant %s: %s", t->tenant, u->err);
		api_reply_error(t->req, 503, "database_error", "the list could not be stored; try again");
	}
	upload_free(a, t);
}

/* Authenticated: read the parameters, find the list, start the ingest. */
static void upload_authed(struct task *t)
{
	struct api *a = t->api;
	struct evhttp_request *req = t->req;
	struct upload *u;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ctype = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	const char *clen = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Length");
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	char msg[512];
	int fds[2];

	if (t->code[0]) {
		api_task_reply(t);
		upload_free(a, t);
		return;
	}
	u = emv_xcalloc(1, sizeof *u);
	u->wfd = u->rfd = -1;
	t->ctx = u;
	/* evhttp cut a body over its own limit short: never ingest a part of a list */
	if (clen && strtoull(clen, NULL, 10) != evbuffer_get_length(in)) {
		api_reply_error(req, 413, "too_large", "the upload is over the limit of %lld bytes",
				(long long)a->p.max_upload);
		upload_free(a, t);
		return;
	}
	if (query) {
		struct evkeyvalq q;
		struct evkeyval *kv;
		TAILQ_INIT(&q);
		if (evhttp_parse_query_str(query, &q) != 0) {
			api_reply_error(req, 400, "bad_query", "the query string is malformed");
			upload_free(a, t);
			return;
		}
		TAILQ_FOREACH(kv, &q, next) {
			if (set_field(u, kv->key, kv->value, strlen(kv->value), msg, sizeof msg) != 0) {
				evhttp_clear_headers(&q);
				api_reply_error(req, 400, "bad_parameter", "%s", msg);
				upload_free(a, t);
				return;
			}
		}
		evhttp_clear_headers(&q);
	}
	if (ctype && strncasecmp(ctype, "multipart/", 10) == 0) {
		char delim[80];
		if (strncasecmp(ctype, "multipart/form-data", 19) != 0 || boundary_of(ctype, delim, sizeof delim) != 0) {
			api_reply_error(req, 400, "bad_multipart", "multipart uploads must be multipart/form-data with a "
								    "boundary of 1..70 characters");
			upload_free(a, t);
			return;
		}
		if (multipart_extract(in, delim, u, msg, sizeof msg) != 0) {
			api_reply_error(req, 400, "bad_multipart", "%s", msg);
			upload_free(a, t);
			return;
		}
	}
	if (check_callback(u, msg, sizeof msg) != 0) {
		api_reply_error(req, 400, "bad_parameter", "%s", msg);
		upload_free(a, t);
		return;
	}
	u->bytes = evbuffer_get_length(in);
	if (u->bytes == 0) {
		api_reply_error(req, 400, "unusable_file", "the upload is empty: send the list as the body, or as the "
							    "multipart part \"file\"");
		upload_free(a, t);
		return;
	}
	if (u->bytes > (uint64_t)a->p.max_upload) {
		api_reply_error(req, 413, "too_large", "the list is %llu bytes; the limit is %lld",
				(unsigned long long)u->bytes, (long long)a->p.max_upload);
		upload_free(a, t);
		return;
	}
	__atomic_add_fetch(&a->upload_bytes, u->bytes, __ATOMIC_RELAXED);
	u->body = evbuffer_new();
	evbuffer_add_buffer(u->body, in); /* moves the chains, no copy */
	if (pipe2(fds, O_CLOEXEC) != 0) {
		api_reply_error(req, 503, "busy", "no pipe for the upload: %s", strerror(errno));
		upload_free(a, t);
		return;
	}
	u->rfd = fds[0];
	u->wfd = fds[1];
	fcntl(u->wfd, F_SETPIPE_SZ, FEED_CHUNK); /* fewer wake-ups; the default 64 KiB is fine too */
	evutil_make_socket_nonblocking(u->wfd);
	u->wev = event_new(a->base, u->wfd, EV_WRITE | EV_PERSIST, on_pipe_writable, u);
	event_add(u->wev, NULL);
	t->done = upload_done;
	if (pthread_create(&u->th, NULL, ingest_main, t) != 0) {
		close(u->rfd);
		api_reply_error(req, 503, "busy", "no thread for the upload");
		upload_free(a, t);
		return;
	}
}

static void work_auth(struct task *t, PGconn *c)
{
	api_authenticate(t, c);
}

void api_upload_start(struct api *a, struct evhttp_request *req, const unsigned char token_hash[32])
{
	struct task *t;
	if (a->uploads >= a->p.max_uploads) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
		api_reply_error(req, 503, "busy", "%d uploads are being ingested; try again shortly", a->uploads);
		return;
	}
	a->uploads++;
	t = api_task_new(a, req);
	memcpy(t->token_hash, token_hash, 32);
	t->work = work_auth;
	t->done = upload_authed;
	api_task_submit(t);
}
