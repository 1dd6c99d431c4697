/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_routes.c - the route table: which handler answers which method and
 * path, and what every route checks first (405, 404, the token, limits).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "emv_api_internal.h"
#include "emv_util.h"
/* ------------------------------------------------------------------ routing */

/* A job id as the ingest makes them (a UUID); anything else cannot exist. */
int api_job_id_valid(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == '-'))
			return 0;
	return 1;
}

enum api_method api_method_of(const char *m)
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

static void h_healthz(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	api_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_upload(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	api_upload_start(a, r, hash);
}

static void h_check(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	api_check_start(a, r, hash);
}

static void h_results(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	api_export_start(a, r, hash, id);
}

#define M(x) (1u << (x))

/*
 * The routes.  A path is matched segment by segment; "{id}" matches one
 * segment (a job id: anything else answers 404 once the token is checked,
 * so that a guess learns nothing without one).  A path that matches with
 * another method answers 405; a path that matches nothing, 404 — both
 * before the token is asked for.
 */
static const struct api_route_def {
	const char *path;
	unsigned methods;
	int auth; /* bearer token, then the rate limits */
	api_handler *fn;
} routes[] = {
	{ "/healthz", M(API_GET) | M(API_HEAD), 0, h_healthz },
	{ "/readyz", M(API_GET), 0, api_h_readyz },
	{ "/metrics", M(API_GET), 0, api_h_metrics },
	{ "/v1/jobs", M(API_GET), 1, api_h_job_list },
	{ "/v1/jobs", M(API_POST), 1, h_upload },
	{ "/v1/check", M(API_POST), 1, h_check },
	{ "/v1/ips", M(API_GET), 1, api_h_ips },
	{ "/v1/forget", M(API_POST), 1, api_h_forget },
	{ "/v1/jobs/{id}", M(API_GET), 1, api_h_job_status },
	{ "/v1/jobs/{id}", M(API_DELETE), 1, api_h_job_delete },
	{ "/v1/jobs/{id}/results", M(API_GET), 1, h_results },
	{ "/v1/jobs/{id}/rows", M(API_GET), 1, api_h_job_rows },
	/* the web console (api_console.c): its files need no token, {id} is a file name */
	{ "/", M(API_GET) | M(API_HEAD), 0, api_h_console_index },
	{ "/console/{id}", M(API_GET) | M(API_HEAD), 0, api_h_console_file },
};

/* Does path have the route's shape?  Then *id and *idlen are its {id} segment
 * (possibly empty), or NULL/0 when the route has none. */
static int path_match(const char *pat, const char *path, const char **id, size_t *idlen)
{
	*id = NULL;
	*idlen = 0;
	while (*pat) {
		if (strncmp(pat, "{id}", 4) == 0) {
			size_t n = strcspn(path, "/");
			*id = path;
			*idlen = n;
			path += n;
			pat += 4;
			continue;
		}
		if (*pat++ != *path++)
			return 0;
	}
	return *path == '\0';
}

/* The answer of a limit that asks to wait (429 with Retry-After). */
static void limited(struct api_req *r, int wait, const char *message)
{
	char s[16];
	snprintf(s, sizeof s, "%d", wait);
	api_req_add_header(r, "Retry-After", s);
	api_reply_error(r, 429, "rate_limited", "%s", message);
}

/* The headers are in: answer, or start what answers later. */
void api_route(struct api *a, struct api_req *r, const char *path)
{
	const struct api_route_def *hit = NULL;
	unsigned char hash[32];
	char id[80] = "";
	const char *idp = NULL;
	size_t idlen = 0;
	int shape = 0, wait;
	char msg[160];

	for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !hit; i++) {
		const char *p;
		size_t n;
		if (!path_match(routes[i].path, path, &p, &n))
			continue;
		shape = 1;
		if (routes[i].methods & M(r->method)) {
			hit = &routes[i];
			idp = p;
			idlen = n;
		}
	}
	if (!hit) {
		if (shape)
			api_reply_error(r, 405, "method_not_allowed", "%s does not take this method", path);
		else
			api_reply_error(r, 404, "not_found", "no such endpoint");
		return;
	}
	if (!hit->auth) {
		if (idp)
			snprintf(id, sizeof id, "%.*s", (int)idlen, idp);
		hit->fn(a, r, NULL, idp ? id : NULL);
		return;
	}
	if (idp && !api_job_id_valid(idp, idlen)) {
		if (api_bearer(r, hash))
			api_reply_error(r, 404, "not_found", "no job '%.64s'", idp);
		return;
	}
	if (idp) {
		memcpy(id, idp, idlen);
		id[idlen] = '\0';
	}
	if (!api_bearer(r, hash))
		return;
	if ((wait = api_auth_wait(a, r)) > 0) {
		r->token_given = 0; /* not a guess of its own: does not extend the window */
		snprintf(msg, sizeof msg,
			 "more than %d failed authentications from this address in %d s; try again later",
			 a->p.auth_fail_limit, a->p.auth_fail_window_s);
		limited(r, wait, msg);
		return;
	}
	if ((wait = api_rate_check(a, hash)) > 0) {
		snprintf(msg, sizeof msg, "more than %d requests per second with this token", a->p.rate_limit);
		limited(r, wait, msg);
		return;
	}
	hit->fn(a, r, hash, idp ? id : NULL);
}
