/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_wire.c - libFuzzer target for the Kafka message codec (emv_wire).
 *
 * Every input is decoded as a VerifyBatch, a VerifyResults, an IpState and a
 * DomainState (which is then merged into shared domain knowledge).  A
 * failure must come with a status of the enum, no output and a non-empty
 * message.  A success must hold the invariants the consumers rely on, and
 * survive the round trip: what was decoded encodes (the encoder applies the
 * same rules), the encoding decodes to equal data, and encoding that again
 * gives the same bytes (our encoding is canonical).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_defaults.h"
#include "emv_domstate.h"
#include "emv_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *err)
{
	fprintf(stderr, "fuzz_wire: %s (%s)\n", what, err);
	abort();
}

static void check_failure(emv_wire_status st, const void *out, const char *err, size_t errlen)
{
	if ((unsigned)st >= EMV_WIRE__COUNT || out || !err[0] || strlen(err) >= errlen)
		die("a failure without its status, message or with output", err);
}

/* A fixed-size string field is terminated inside its array. */
#define TERMINATED(f) (memchr((f), '\0', sizeof(f)) != NULL)

static void batch_invariants(const emv_wire_batch *b)
{
	char key[EMV_WIRE_KEY_MAX];

	if (!TERMINATED(b->job_id) || !TERMINATED(b->batch_id) || !TERMINATED(b->domain) ||
	    !TERMINATED(b->region_hint) || !b->job_id[0] || !b->batch_id[0] || !b->domain[0])
		die("batch strings", b->job_id);
	if (b->n_addresses < 1 || b->n_addresses > EMV_WIRE_ADDRESSES_MAX || !b->addresses ||
	    b->attempt > EMV_WIRE_ATTEMPT_MAX || b->not_before_ms < 0)
		die("batch counts", b->job_id);
	for (size_t i = 0; i < b->n_addresses; i++) {
		const emv_wire_address *a = &b->addresses[i];

		if (!a->id || !TERMINATED(a->local) || !a->local[0] || strpbrk(a->local, "\r\n<>"))
			die("batch address", a->local);
	}
	if (emv_wire_batch_key(b->domain, 7, key, sizeof key) != EMV_OK)
		die("no key for a decoded domain", b->domain);
}

static void results_invariants(const emv_wire_results *r)
{
	if (!TERMINATED(r->job_id) || !TERMINATED(r->batch_id) || !TERMINATED(r->worker) || !TERMINATED(r->region) ||
	    !TERMINATED(r->source_ip) || !TERMINATED(r->mx) || !TERMINATED(r->tls) || !r->job_id[0] ||
	    !r->batch_id[0] || !r->worker[0])
		die("results strings", r->job_id);
	if (r->n_results < 1 || r->n_results > EMV_WIRE_RESULTS_MAX || !r->results)
		die("results count", r->job_id);
	for (size_t i = 0; i < r->n_results; i++) {
		const emv_wire_result *x = &r->results[i];

		if (!x->id || (unsigned)x->status >= EMV_STATUS__COUNT || (unsigned)x->reason >= EMV_REASON__COUNT ||
		    !x->reply || strlen(x->reply) > EMV_WIRE_REPLY_MAX || (x->catch_all & ~1) || (x->temporary & ~1) ||
		    (x->smtp_code && (x->smtp_code < 200 || x->smtp_code > 599)) ||
		    x->n_transcript > EMV_WIRE_TRANSCRIPT_MAX || (x->n_transcript && !x->transcript))
			die("result", x->reply ? x->reply : "(null)");
		for (size_t j = 0; j < x->n_transcript; j++) {
			const emv_wire_exchange *e = &x->transcript[j];

			if (!e->command || !e->text || strlen(e->text) > EMV_WIRE_REPLY_MAX ||
			    strlen(e->command) > EMV_WIRE_COMMAND_MAX || strpbrk(e->command, "\r\n") ||
			    strchr(e->text, '\r') || !TERMINATED(e->enhanced))
				die("exchange", e->text ? e->text : "(null)");
		}
	}
}

static void fuzz_batch(const uint8_t *data, size_t size)
{
	char err[EMV_WIRE_ERR_MAX] = "";
	emv_wire_batch *b, *b2;
	uint8_t *buf, *buf2;
	size_t len, len2;
	emv_wire_status st = emv_wire_batch_decode(data, size, &b, err, sizeof err);

	if (st != EMV_WIRE_OK) {
		check_failure(st, b, err, sizeof err);
		return;
	}
	if (!b || err[0])
		die("batch: success without output or with a message", err);
	batch_invariants(b);
	if (emv_wire_batch_encode(b, &buf, &len, err, sizeof err) != EMV_WIRE_OK)
		die("batch: decoded but does not encode", err);
	if (emv_wire_batch_decode(buf, len, &b2, err, sizeof err) != EMV_WIRE_OK)
		die("batch: encoded but does not decode", err);
	if (!emv_wire_batch_equal(b, b2))
		die("batch: round trip changed the data", b->job_id);
	if (emv_wire_batch_encode(b2, &buf2, &len2, err, sizeof err) != EMV_WIRE_OK || len2 != len ||
	    memcmp(buf, buf2, len) != 0)
		die("batch: encoding is not canonical", err);
	free(buf);
	free(buf2);
	emv_wire_batch_free(b);
	emv_wire_batch_free(b2);
}

static void fuzz_results(const uint8_t *data, size_t size)
{
	char err[EMV_WIRE_ERR_MAX] = "";
	emv_wire_results *r, *r2;
	uint8_t *buf, *buf2;
	size_t len, len2;
	emv_wire_status st = emv_wire_results_decode(data, size, &r, err, sizeof err);

	if (st != EMV_WIRE_OK) {
		check_failure(st, r, err, sizeof err);
		return;
	}
	if (!r || err[0])
		die("results: success without output or with a message", err);
	results_invariants(r);
	if (emv_wire_results_encode(r, &buf, &len, err, sizeof err) != EMV_WIRE_OK)
		die("results: decoded but does not encode", err);
	if (emv_wire_results_decode(buf, len, &r2, err, sizeof err) != EMV_WIRE_OK)
		die("results: encoded but does not decode", err);
	if (!emv_wire_results_equal(r, r2))
		die("results: round trip changed the data", r->job_id);
	if (emv_wire_results_encode(r2, &buf2, &len2, err, sizeof err) != EMV_WIRE_OK || len2 != len ||
	    memcmp(buf, buf2, len) != 0)
		die("results: encoding is not canonical", err);
	free(buf);
	free(buf2);
	emv_wire_results_free(r);
	emv_wire_results_free(r2);
}

/* IpState: decoded or not, the output is whole; a decoded one re-encodes
 * to bytes that decode to the same state. */
static void fuzz_ipstate(const uint8_t *data, size_t size)
{
	char err[EMV_WIRE_ERR_MAX] = "";
	emv_wire_ipstate x, y;
	uint8_t *buf;
	size_t len;
	emv_wire_status st = emv_wire_ipstate_decode(data, size, &x, err, sizeof err);

	if (st != EMV_WIRE_OK) {
		if ((unsigned)st >= EMV_WIRE__COUNT || !err[0] || x.ip[0])
			die("ipstate failure without status or message, or with output", err);
		return;
	}
	if (!TERMINATED(x.ip) || !x.ip[0] || !TERMINATED(x.state) || !TERMINATED(x.last_reply) ||
	    strpbrk(x.last_reply, "\r\n") || x.rate_permille > 1000)
		die("ipstate invariants", x.ip);
	if (emv_wire_ipstate_encode(&x, &buf, &len, err, sizeof err) != EMV_WIRE_OK)
		die("decoded ipstate does not encode", err);
	if (emv_wire_ipstate_decode(buf, len, &y, err, sizeof err) != EMV_WIRE_OK || memcmp(&x, &y, sizeof x) != 0)
		die("ipstate round trip", err);
	free(buf);
}

/* DomainState: as IpState; a decoded one is judged and merged (lib/emv_domstate.h):
 * taken or refused with a reason, never a limit outside 1..EMV_DOMSTATE_VALUE_MAX. */
static void fuzz_domstate(const uint8_t *data, size_t size)
{
	char err[EMV_WIRE_ERR_MAX] = "";
	emv_wire_domstate x, y;
	uint8_t *buf;
	size_t len;
	emv_wire_status st = emv_wire_domstate_decode(data, size, &x, err, sizeof err);

	if (st != EMV_WIRE_OK) {
		if ((unsigned)st >= EMV_WIRE__COUNT || !err[0] || x.name[0])
			die("domstate failure without status or message, or with output", err);
		return;
	}
	if (!TERMINATED(x.name) || !x.name[0] || !TERMINATED(x.worker))
		die("domstate invariants", x.name);
	if (emv_wire_domstate_encode(&x, &buf, &len, err, sizeof err) != EMV_WIRE_OK)
		die("decoded domstate does not encode", err);
	if (emv_wire_domstate_decode(buf, len, &y, err, sizeof err) != EMV_WIRE_OK || memcmp(&x, &y, sizeof x) != 0)
		die("domstate round trip", err);
	free(buf);
	{
		emv_domstate *s = emv_domstate_new(NULL);
		emv_domstate_view v;
		int64_t now = INT64_C(1800000000000);
		if (emv_domstate_merge(s, &x, now, NULL, err, sizeof err) != EMV_OK && !err[0])
			die("domstate refused without a reason", x.name);
		emv_domstate_get(s, x.kind, x.name, now, &v);
		if (v.rcpt_per_txn < 0 || v.rcpt_per_txn > EMV_DOMSTATE_VALUE_MAX || v.errors_per_session < 0 ||
		    v.errors_per_session > EMV_DOMSTATE_VALUE_MAX || v.sessions_ok < 0 ||
		    v.sessions_ok > EMV_DOMSTATE_VALUE_MAX ||
		    v.backoff_until_ms > now + EMV_DEF_DOMSTATE_BACKOFF_MAX_MS)
			die("domstate took an absurd value", x.name);
		emv_domstate_free(s);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_domstate(data, size);
	fuzz_batch(data, size);
	fuzz_results(data, size);
	fuzz_ipstate(data, size);
	return 0;
}
