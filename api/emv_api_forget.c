/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_api_forget.c - POST /v1/forget {"email": "..."}: a privacy request.
 * The address, normalised as ingest normalises it, is forgotten for the
 * token's tenant (coordinator/emv_privacy.h): its verdict cache entries
 * (the tenant's scope and the global one) are deleted and the tenant's job
 * rows with it redacted.  Another tenant's scope is never touched.  The
 * address travels in the body, not the path, so that it stays out of
 * access logs.  docs/api.md.
 */
#include <stdlib.h>
#include <string.h>
#include "emv_address.h"
#include "emv_api_internal.h"
#include "emv_privacy.h"
#include "emv_util.h"

#define FORGET_BODY_MAX 4096

struct forget {
	char body[FORGET_BODY_MAX + 1];
	size_t body_len;
	unsigned char hash[32];
	char address[EMV_ADDRESS_MAX + 1]; /* normalised */
};

static void work_forget(struct task *t, PGconn *c)
{
	struct forget *f = t->ctx;
	long long nc = 0, nr = 0;
	char err[1024];
	if (!api_authenticate(t, c))
		return;
	if (emv_privacy_forget(c, t->tenant, f->address, &nc, &nr, err, sizeof err) != EMV_OK) {
		api_db_fail(t, err, "forgetting the address");
		return;
	}
	emv_log(EMV_LOG_INFO, "api", "tenant %s: an address forgotten (%lld cache entries, %lld job rows)", t->tenant,
		nc, nr);
	t->json = json_pack("{s:s,s:b,s:I,s:I}", "email", f->address, "forgotten", 1, "cache_entries", (json_int_t)nc,
			    "job_rows", (json_int_t)nr);
	t->status = 200;
}

static void done_forget(struct task *t)
{
	free(t->ctx);
	t->ctx = NULL;
	api_task_done_reply(t);
}

static int forget_body(struct api_req *r, const char *data, size_t *size)
{
	struct forget *f = r->ctx;
	if (f->body_len + *size > FORGET_BODY_MAX) {
		api_reply_error(r, 413, "too_large", "a forget body is at most %d bytes", FORGET_BODY_MAX);
		return 0;
	}
	memcpy(f->body + f->body_len, data, *size);
	f->body_len += *size;
	*size = 0;
	return 0;
}

static void forget_body_free(struct api_req *r)
{
	free(r->ctx);
	r->ctx = NULL;
}

static void forget_final(struct api_req *r)
{
	struct forget *f = r->ctx;
	json_error_t e;
	json_t *j = json_loadb(f->body, f->body_len, JSON_REJECT_DUPLICATES, &e), *email;
	emv_address a;
	struct task *t;

	if (!j || !json_is_object(j)) {
		json_decref(j);
		api_reply_error(r, 400, "bad_request", "the body must be a JSON object {\"email\": \"...\"}");
		return;
	}
	email = json_object_get(j, "email");
	if (!json_is_string(email) || json_string_length(email) == 0 || json_string_length(email) > 1024) {
		json_decref(j);
		api_reply_error(r, 400, "bad_request", "\"email\" must be one address of at most 1024 bytes");
		return;
	}
	if (emv_address_parse(json_string_value(email), json_string_length(email), &a) != EMV_OK) {
		json_decref(j);
		api_reply_error(r, 400, "bad_request", "\"email\" is not an email address: %s", a.detail);
		return;
	}
	json_decref(j);
	emv_strlcpy(f->address, a.address, sizeof f->address);
	/* the task owns f from here */
	r->ctx = NULL;
	r->gone = NULL;
	r->body = NULL;
	t = api_task_new(r->a, r);
	memcpy(t->token_hash, f->hash, 32);
	t->ctx = f;
	t->work = work_forget;
	t->done = done_forget;
	api_task_submit(t);
}

void api_h_forget(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	const char *clen = api_req_header(r, "Content-Length");
	struct forget *f;
	(void)id;
	if (clen && strtoull(clen, NULL, 10) > FORGET_BODY_MAX) {
		api_reply_error(r, 413, "too_large", "a forget body is at most %d bytes", FORGET_BODY_MAX);
		return;
	}
	f = emv_xcalloc(1, sizeof *f);
	memcpy(f->hash, hash, 32);
	r->ctx = f;
	r->body = forget_body;
	r->final = forget_final;
	r->gone = forget_body_free;
}
