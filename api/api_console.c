/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_console.c - the web console (issue 14): GET / is its page,
 * GET /console/NAME its scripts and style, all from the binary
 * (api_console.h), so the console is always the one the server was built
 * with and asks nothing of any other host.
 *
 * Every answer carries a Content-Security-Policy that allows scripts,
 * styles, images and requests from this origin only and no inline script
 * or style (a list's text shown by the console can never run), plus
 * X-Content-Type-Options: nosniff, no framing and no referrer.  The
 * console signs in with an API token kept in the tab's sessionStorage
 * and sent as the bearer header of its /v1 requests; these pages
 * themselves need no token (they hold no data).
 */
#include <string.h>
#include "api_console.h"
#include "emv_api_internal.h"

static const char console_csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static void serve(struct api_req *r, const char *name)
{
	const struct api_console_asset *f = NULL;
	const char *inm;
	struct MHD_Response *resp;
	unsigned status = 200;

	for (const struct api_console_asset *p = api_console_assets; p->name && !f; p++)
		if (strcmp(p->name, name) == 0)
			f = p;
	if (!f) {
		api_reply_error(r, 404, "not_found", "no such endpoint");
		return;
	}
	inm = api_req_header(r, "If-None-Match");
	if (inm && strcmp(inm, f->etag) == 0) {
		status = 304;
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(resp, "Content-Type", f->type);
	}
	MHD_add_response_header(resp, "ETag", f->etag);
	/* revalidated each time: a new binary's files are seen at once */
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "Content-Security-Policy", console_csp);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	api_reply_response(r, status, resp);
}

/* GET / */
void api_h_console_index(struct api *a, struct api_req *r, const unsigned char *hash, const char *id)
{
	serve(r, "index.html");
}

/* GET /console/{name}: the route's {id} segment is the file's name. */
void api_h_console_file(struct api *a, struct api_req *r, const unsigned char *hash, const char *name)
{
	serve(r, name ? name : "");
}
