/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_http.c - the HTTP plumbing of the API: a request's headers, query and
 * reply (JSON bodies, errors built from sanitised text), and libmicrohttpd
 * driven from the libevent loop (connections, deadlines, suspend/resume).
 * Why libmicrohttpd and not evhttp: see emv_api.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "emv_api_internal.h"
#include "emv_utf8.h"
#include "emv_util.h"
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

void api_auth_failed(struct api *a, const struct api_req *r);

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
		api_auth_failed(r->a, r);
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
	struct api_req *cur; /* the request in progress, if MHD has called us */
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
				 const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct api *a = cls;
	struct api_req *r = *con_cls;

	if (!r) {
		r = emv_xcalloc(1, sizeof *r);
		r->a = a;
		r->conn = conn;
		r->refs = 1; /* MHD's, until on_completed */
		r->method = api_method_of(method);
		r->drop_max = API_BODY_DROP_MAX;
		*con_cls = r;
		{
			const union MHD_ConnectionInfo *ci =
				MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
			if (ci && ci->socket_context) {
				r->cn = ci->socket_context;
				r->cn->cur = r; /* the connection's deadline is the request's */
			}
		}
		{
			const union MHD_ConnectionInfo *ci =
				MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
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

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode why)
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
int api_listen_on(const char *spec, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	size_t hl;
	int fd = -1, one = 1, rc;
	long long port;

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof host ||
	    emv_parse_ll(colon + 1, 0, 65535, &port) != EMV_OK) {
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

int api_mhd_start(struct api *a, int lfd, char *err, size_t errlen)
{
	const union MHD_DaemonInfo *di;
	/* external epoll mode: no threads of MHD's own; suspend/resume for
	 * every wait of ours */
	a->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				  on_access, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a, MHD_OPTION_LISTEN_SOCKET, lfd,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_NOTIFY_CONNECTION,
				  on_connection, a, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)a->p.timeout_s,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->p.max_connections,
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
