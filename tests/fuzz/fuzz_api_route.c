/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_api_route.c - libFuzzer target for the HTTP API's router
 * (api_route in api/emv_api.c) and what it starts: any method,
 * path, query parameters, headers and (for the handlers that read one
 * before a task) body, as libmicrohttpd would hand them over (path and
 * parameters already percent-decoded: any bytes but NUL).
 *
 * No socket and no database: the request's headers and parameters come
 * from the input (api_req.values), and every task the router starts is
 * finished as if the token were unknown (401), which every handler must
 * answer.  What must hold, whatever the bytes: no crash (ASan/UBSan), every
 * request answered, and never the 500 that says an answer could not be
 * formatted (text from the request that is not valid UTF-8 reaching JSON).
 *
 * Input: line 1 the method, line 2 the path, line 3 the query string
 * (key=value&...; not decoded), then "Name: value" header lines up to an
 * empty line, then the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_api_internal.h"
#include "emv_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXV 32

struct fake {
	char *hk[MAXV], *hv[MAXV], *qk[MAXV], *qv[MAXV];
	int nh, nq;
};

static struct fake *cur;

static const char *fake_values(struct api_req *r, enum MHD_ValueKind kind, const char *key)
{
	(void)r;
	if (kind == MHD_HEADER_KIND) {
		for (int i = 0; i < cur->nh; i++)
			if (strcasecmp(cur->hk[i], key) == 0)
				return cur->hv[i];
	} else if (kind == MHD_GET_ARGUMENT_KIND) {
		for (int i = 0; i < cur->nq; i++)
			if (strcmp(cur->qk[i], key) == 0)
				return cur->qv[i]; /* MHD: NULL for "key" without '=' */
	}
	return NULL;
}

static struct api *api_once(void)
{
	static struct api *a;
	if (a)
		return a;
	a = emv_xcalloc(1, sizeof *a);
	emv_api_params_default(&a->p);
	a->p.rate_limit = 0; /* no token table: every input is a first request */
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	pthread_mutex_init(&a->done_mu, NULL);
	emv_log_threshold = EMV_LOG_ERROR;
	return a;
}

/* Finish every task the request started as an unknown token would. */
static void drain(struct api *a)
{
	struct task *t;
	while ((t = api_queue_pop(a))) {
		api_queue_finished(a, t);
		if (t->pooled) {
			t->pooled = 0;
			t->req->busy--;
		}
		api_task_error(t, 401, "unauthorized", "the token is not valid or has been revoked");
		t->done(t);
	}
}

/* The next line of the input (without its '\n'), NUL-free; NULL at the end. */
static char *next_line(const char **p, const char *end)
{
	const char *nl;
	char *s;
	size_t n;
	if (*p >= end)
		return NULL;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
	s = emv_xstrndup(*p, n); /* stops at a NUL, as a C string from MHD would */
	*p += n + (nl ? 1 : 0);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api *a = api_once();
	const char *p = (const char *)data, *end = p + size;
	struct fake f = { 0 };
	char *method, *path, *query, *line;
	struct api_req *r;
	int conn_token;

	if (!(method = next_line(&p, end)))
		return 0;
	path = next_line(&p, end);
	if (!path)
		path = emv_xstrdup("/");
	query = next_line(&p, end);
	if (query) {
		char *save = NULL;
		for (char *kv = strtok_r(query, "&", &save); kv && f.nq < MAXV; kv = strtok_r(NULL, "&", &save)) {
			char *eq = strchr(kv, '=');
			if (eq)
				*eq = '\0';
			f.qk[f.nq] = emv_xstrdup(kv);
			f.qv[f.nq] = eq ? emv_xstrdup(eq + 1) : NULL;
			f.nq++;
		}
	}
	while ((line = next_line(&p, end)) && line[0]) {
		char *colon = strchr(line, ':');
		if (colon && f.nh < MAXV) {
			*colon = '\0';
			f.hk[f.nh] = emv_xstrdup(line);
			colon++;
			while (*colon == ' ')
				colon++;
			f.hv[f.nh] = emv_xstrdup(colon);
			f.nh++;
		}
		free(line);
	}
	free(line);
	cur = &f;

	r = emv_xcalloc(1, sizeof *r);
	r->a = a;
	r->conn = (struct MHD_Connection *)&conn_token; /* never handed to MHD: r->values answers */
	r->values = fake_values;
	r->refs = 1;
	r->method = strcmp(method, "GET") == 0	    ? API_GET
		    : strcmp(method, "HEAD") == 0   ? API_HEAD
		    : strcmp(method, "POST") == 0   ? API_POST
		    : strcmp(method, "DELETE") == 0 ? API_DELETE
						    : API_OTHER;
	r->drop_max = API_BODY_DROP_MAX;

	api_route(a, r, path);
	drain(a);
	/* a handler that reads a body before its task (POST /v1/check) */
	if (!r->reply && r->body) {
		size_t n = (size_t)(end - p);
		while (n && !r->reply && r->body) {
			size_t k = n, before = n;
			if (r->body(r, p, &k) != 0)
				break;
			p += before - k;
			n = k;
			if (k == before)
				break;
		}
		if (!r->reply && r->final)
			r->final(r);
		drain(a);
	}
	if (!r->reply) {
		fprintf(stderr, "fuzz_api_route: %s %s was not answered\n", method, path);
		abort();
	}
	if (r->reply_status == 500) {
		fprintf(stderr, "fuzz_api_route: %s %s: an answer could not be formatted\n", method, path);
		abort();
	}
	if (r->reply_status < 200 || r->reply_status > 503)
		abort();
	/* as MHD's completion notice would */
	r->conn = NULL;
	if (r->gone)
		r->gone(r);
	api_req_unref(r);

	for (int i = 0; i < f.nh; i++) {
		free(f.hk[i]);
		free(f.hv[i]);
	}
	for (int i = 0; i < f.nq; i++) {
		free(f.qk[i]);
		free(f.qv[i]);
	}
	free(query);
	free(path);
	free(method);
	return 0;
}
