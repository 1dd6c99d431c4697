/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wire.c - the VerifyBatch / VerifyResults codec: round trips, every
 * validation rule with its exact message, hostile bytes (truncated, random,
 * NUL inside strings, a future schema version, unknown fields, wrong
 * message type) and the size and memory bounds.
 *
 * Invalid messages are built two ways: with protobuf-c directly (what a
 * buggy or hostile producer could send, bypassing our encoder's checks) and
 * byte by byte, for what protobuf-c itself cannot express (a NUL inside a
 * string, unknown fields, non-canonical order).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "emailverify.pb-c.h"
#include "emv_classify.h"
#include "emv_wire.h"

static char ERR[EMV_WIRE_ERR_MAX];

/* ---- building bytes by hand ---- */

typedef struct {
	uint8_t *p;
	size_t n, cap;
} bytes;

static void b_put(bytes *b, const void *src, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	if (n)
		memcpy(b->p + b->n, src, n);
	b->n += n;
}

static void b_varint(bytes *b, uint64_t v)
{
	do {
		uint8_t c = (uint8_t)(v & 0x7f);

		v >>= 7;
		if (v)
			c |= 0x80;
		b_put(b, &c, 1);
	} while (v);
}

static void b_key(bytes *b, unsigned field, unsigned wire_type)
{
	b_varint(b, (uint64_t)field << 3 | wire_type);
}

static void b_uint(bytes *b, unsigned field, uint64_t v)
{
	b_key(b, field, 0);
	b_varint(b, v);
}

static void b_len(bytes *b, unsigned field, const void *s, size_t n)
{
	b_key(b, field, 2);
	b_varint(b, n);
	b_put(b, s, n);
}

static void b_str(bytes *b, unsigned field, const char *s)
{
	b_len(b, field, s, strlen(s));
}

/* ---- samples ---- */

static void sample_batch(emv_wire_batch *b, emv_wire_address *a)
{
	memset(b, 0, sizeof *b);
	memset(a, 0, 3 * sizeof *a);
	strcpy(b->job_id, "job-2024-0001");
	strcpy(b->batch_id, "job-2024-0001/b17");
	strcpy(b->domain, "example.com");
	a[0].id = 101;
	strcpy(a[0].local, "alice");
	a[1].id = 102;
	strcpy(a[1].local, "bob.smith+tag");
	a[1].flags = EMV_FLAG_ROLE | EMV_FLAG_FREE;
	a[2].id = UINT64_MAX;
	strcpy(a[2].local, "\"john doe\"");
	a[2].flags = EMV_FLAG_QUOTED | 0x80000000u; /* an unknown bit travels too */
	b->addresses = a;
	b->n_addresses = 3;
	b->attempt = 2;
	b->not_before_ms = INT64_C(1767225600000);
	strcpy(b->region_hint, "eu-west");
}

static void sample_results(emv_wire_results *r, emv_wire_result *res, emv_wire_exchange *x)
{
	memset(r, 0, sizeof *r);
	memset(res, 0, 2 * sizeof *res);
	memset(x, 0, 3 * sizeof *x);
	strcpy(r->job_id, "job-2024-0001");
	strcpy(r->batch_id, "job-2024-0001/b17");
	strcpy(r->worker, "worker-3.fra");
	strcpy(r->region, "eu-central");
	strcpy(r->source_ip, "2001:db8::25");
	strcpy(r->mx, "mx1.example.com");
	strcpy(r->tls, "TLSv1.3");

	x[0].phase = EMV_PHASE_BANNER;
	x[0].code = 220;
	x[0].text = "mx1.example.com ESMTP ready";
	x[1].phase = EMV_PHASE_EHLO;
	x[1].command = "EHLO probe.example.net";
	x[1].code = 250;
	x[1].text = "mx1.example.com\nPIPELINING\nSTARTTLS";
	x[2].phase = EMV_PHASE_RCPT;
	x[2].command = "RCPT TO:<j\xc3\xb6rg@example.com>";
	x[2].code = 550;
	strcpy(x[2].enhanced, "5.1.1");
	x[2].text = "5.1.1 no such user";

	res[0].id = 101;
	res[0].status = EMV_STATUS_UNDELIVERABLE;
	res[0].reason = EMV_REASON_MAILBOX_NOT_FOUND;
	res[0].smtp_code = 550;
	strcpy(res[0].enhanced_code, "5.1.1");
	res[0].reply = "5.1.1 no such user";
	res[0].attempts = 1;
	res[0].duration_ms = 812;
	res[0].flags = EMV_FLAG_SMTPUTF8;
	res[0].transcript = x;
	res[0].n_transcript = 3;

	res[1].id = 102;
	res[1].status = EMV_STATUS_RISKY;
	res[1].reason = EMV_REASON_CATCH_ALL;
	res[1].smtp_code = 250;
	strcpy(res[1].enhanced_code, "2.1.5");
	res[1].reply = "2.1.5 Ok";
	res[1].catch_all = 1;
	res[1].temporary = 1;
	res[1].attempts = 3;
	res[1].duration_ms = 4000000000u;
	res[1].flags = EMV_FLAG_CATCH_ALL | EMV_FLAG_ROLE;

	r->results = res;
	r->n_results = 2;
}

/* protobuf-c messages for what our encoder refuses to write. */
struct pb_batch {
	Emailverify__VerifyBatch m;
	Emailverify__Address a[3];
	Emailverify__Address *ap[3];
};

static void pb_batch_init(struct pb_batch *p)
{
	emailverify__verify_batch__init(&p->m);
	p->m.schema_version = EMV_WIRE_SCHEMA;
	p->m.job_id = "j1";
	p->m.batch_id = "b1";
	p->m.domain = "example.com";
	for (int i = 0; i < 3; i++) {
		emailverify__address__init(&p->a[i]);
		p->a[i].id = (uint64_t)(i + 1);
		p->a[i].local = i == 0 ? "a" : i == 1 ? "b" : "c";
		p->ap[i] = &p->a[i];
	}
	p->m.n_addresses = 3;
	p->m.addresses = p->ap;
}

struct pb_results {
	Emailverify__VerifyResults m;
	Emailverify__Result r[2];
	Emailverify__Result *rp[2];
	Emailverify__SmtpReply x[2];
	Emailverify__SmtpReply *xp[2];
};

static void pb_results_init(struct pb_results *p)
{
	emailverify__verify_results__init(&p->m);
	p->m.schema_version = EMV_WIRE_SCHEMA;
	p->m.job_id = "j1";
	p->m.batch_id = "b1";
	p->m.worker = "w1";
	for (int i = 0; i < 2; i++) {
		emailverify__result__init(&p->r[i]);
		p->r[i].id = (uint64_t)(i + 1);
		p->r[i].status = "deliverable";
		p->r[i].reason = "accepted";
		p->rp[i] = &p->r[i];
		emailverify__smtp_reply__init(&p->x[i]);
		p->x[i].phase = i == 0 ? "banner" : "rcpt";
		p->x[i].code = i == 0 ? 220 : 250;
		p->xp[i] = &p->x[i];
	}
	p->r[0].n_transcript = 2;
	p->r[0].transcript = p->xp;
	p->m.n_results = 2;
	p->m.results = p->rp;
}

static uint8_t *pb_pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(m, buf), *len);
	return buf;
}

/* ---- expectations ---- */

static void expect_batch_bytes(const void *buf, size_t len, emv_wire_status st, const char *msg, int line)
{
	emv_wire_batch *b = (emv_wire_batch *)1;
	emv_wire_status got = emv_wire_batch_decode(buf, len, &b, ERR, sizeof ERR);

	if (got != st)
		fail_msg("line %d: status %s, expected %s (error \"%s\")", line, emv_wire_status_name(got),
			 emv_wire_status_name(st), ERR);
	if (st == EMV_WIRE_OK) {
		assert_non_null(b);
		emv_wire_batch_free(b);
		return;
	}
	if (b)
		fail_msg("line %d: a batch came back with an error", line);
	if (msg && strcmp(ERR, msg) != 0)
		fail_msg("line %d: error \"%s\", expected \"%s\"", line, ERR, msg);
	if (!ERR[0])
		fail_msg("line %d: no error message", line);
}

static void expect_results_bytes(const void *buf, size_t len, emv_wire_status st, const char *msg, int line)
{
	emv_wire_results *r = (emv_wire_results *)1;
	emv_wire_status got = emv_wire_results_decode(buf, len, &r, ERR, sizeof ERR);

	if (got != st)
		fail_msg("line %d: status %s, expected %s (error \"%s\")", line, emv_wire_status_name(got),
			 emv_wire_status_name(st), ERR);
	if (st == EMV_WIRE_OK) {
		assert_non_null(r);
		emv_wire_results_free(r);
		return;
	}
	if (r)
		fail_msg("line %d: results came back with an error", line);
	if (msg && strcmp(ERR, msg) != 0)
		fail_msg("line %d: error \"%s\", expected \"%s\"", line, ERR, msg);
	if (!ERR[0])
		fail_msg("line %d: no error message", line);
}

static void expect_pb(const ProtobufCMessage *m, int results, emv_wire_status st, const char *msg, int line)
{
	size_t len;
	uint8_t *buf = pb_pack(m, &len);

	if (results)
		expect_results_bytes(buf, len, st, msg, line);
	else
		expect_batch_bytes(buf, len, st, msg, line);
	free(buf);
}

/* Mutate a valid protobuf-c batch (m, a) with stmt, then decode it. */
#define BATCH_CASE(stmt, st, msg)                            \
	do {                                                 \
		struct pb_batch p_;                          \
		pb_batch_init(&p_);                          \
		{                                            \
			Emailverify__VerifyBatch *m = &p_.m; \
			Emailverify__Address *a = p_.a;      \
			(void)m;                             \
			(void)a;                             \
			stmt;                                \
		}                                            \
		expect_pb(&p_.m.base, 0, st, msg, __LINE__); \
	} while (0)

/* Mutate a valid protobuf-c results message (m, r, x) with stmt, then decode it. */
#define RESULTS_CASE(stmt, st, msg)                            \
	do {                                                   \
		struct pb_results p_;                          \
		pb_results_init(&p_);                          \
		{                                              \
			Emailverify__VerifyResults *m = &p_.m; \
			Emailverify__Result *r = p_.r;         \
			Emailverify__SmtpReply *x = p_.x;      \
			(void)m;                               \
			(void)r;                               \
			(void)x;                               \
			stmt;                                  \
		}                                              \
		expect_pb(&p_.m.base, 1, st, msg, __LINE__);   \
	} while (0)

static void batch_round_trip(const emv_wire_batch *b)
{
	uint8_t *buf, *buf2;
	size_t len, len2;
	emv_wire_batch *d;

	assert_int_equal(emv_wire_batch_encode(b, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_string_equal(ERR, "");
	assert_int_equal(emv_wire_batch_decode(buf, len, &d, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_string_equal(ERR, "");
	if (!emv_wire_batch_equal(b, d))
		fail_msg("decoded batch differs from the encoded one");
	/* the encoding is canonical: the decoded copy encodes to the same bytes */
	assert_int_equal(emv_wire_batch_encode(d, &buf2, &len2, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);
	emv_wire_batch_free(d);
	free(buf);
	free(buf2);
}

static void results_round_trip(const emv_wire_results *r)
{
	uint8_t *buf, *buf2;
	size_t len, len2;
	emv_wire_results *d;

	assert_int_equal(emv_wire_results_encode(r, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_string_equal(ERR, "");
	assert_int_equal(emv_wire_results_decode(buf, len, &d, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_string_equal(ERR, "");
	if (!emv_wire_results_equal(r, d))
		fail_msg("decoded results differ from the encoded ones");
	assert_int_equal(emv_wire_results_encode(d, &buf2, &len2, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);
	emv_wire_results_free(d);
	free(buf);
	free(buf2);
}

/* ---- round trips ---- */

/* A batch given back for another region carries its avoid list and
 * provider; an old reader ignores them, a new one checks them. */
static void do_test_batch_reroute_fields(void **state)
{
	emv_wire_batch b, *d;
	emv_wire_address a[3];
	uint8_t *buf;
	size_t len;

	(void)state;
	sample_batch(&b, a);
	strcpy(b.avoid_regions, "eu-west,us-east");
	strcpy(b.provider, "google");
	batch_round_trip(&b);
	assert_int_equal(emv_wire_batch_encode(&b, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_int_equal(emv_wire_batch_decode(buf, len, &d, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_string_equal(d->avoid_regions, "eu-west,us-east");
	assert_string_equal(d->provider, "google");
	emv_wire_batch_free(d);
	free(buf);
	strcpy(b.avoid_regions, "eu west"); /* visible ASCII only */
	assert_int_equal(emv_wire_batch_encode(&b, &buf, &len, ERR, sizeof ERR), EMV_WIRE_INVALID);
	assert_non_null(strstr(ERR, "avoid_regions"));
}

static void sample_ipstate(emv_wire_ipstate *x)
{
	memset(x, 0, sizeof *x);
	strcpy(x->ip, "2001:db8::25");
	strcpy(x->provider, "outlook");
	strcpy(x->region, "eu-west");
	strcpy(x->worker, "w-17");
	strcpy(x->state, "quarantined");
	x->until_ms = INT64_C(1767225600000);
	x->since_ms = INT64_C(1767224700000);
	x->updated_ms = INT64_C(1767224700001);
	x->strikes = 3;
	x->rate_permille = 0;
	x->rcpts = 123456789012ull;
	x->blocks = 4;
	x->sessions = 77;
	strcpy(x->last_reply, "550 5.7.606 Access denied, banned sending IP [192.0.2.1]");
}

static void do_test_ipstate_round_trip(void **state)
{
	emv_wire_ipstate x, y;
	uint8_t *buf;
	size_t len;
	char key[128];
	Emailverify__IpState *m;

	(void)state;
	sample_ipstate(&x);
	assert_int_equal(emv_wire_ipstate_encode(&x, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	m = emailverify__ip_state__unpack(NULL, len, buf);
	assert_non_null(m);
	assert_int_equal(m->schema_version, EMV_WIRE_SCHEMA);
	assert_string_equal(m->state, "quarantined");
	emailverify__ip_state__free_unpacked(m, NULL);
	assert_int_equal(emv_wire_ipstate_decode(buf, len, &y, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_memory_equal(&x, &y, sizeof x);
	free(buf);
	emv_wire_ipstate_key(&x, key, sizeof key);
	assert_string_equal(key, "2001:db8::25|outlook");
	/* the IP-wide row: no provider */
	x.provider[0] = '\0';
	strcpy(x.state, "held");
	assert_int_equal(emv_wire_ipstate_encode(&x, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_int_equal(emv_wire_ipstate_decode(buf, len, &y, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_string_equal(y.provider, "");
	free(buf);
}

static void do_test_ipstate_rejects(void **state)
{
	emv_wire_ipstate x, y;
	uint8_t *buf;
	size_t len;
	static const uint8_t junk[] = { 0x0a, 0xff, 0xff, 0xff, 0x0f };

	(void)state;
	sample_ipstate(&x);
	strcpy(x.ip, "mx.example.com");
	assert_int_equal(emv_wire_ipstate_encode(&x, &buf, &len, ERR, sizeof ERR), EMV_WIRE_INVALID);
	assert_non_null(strstr(ERR, "ip"));
	sample_ipstate(&x);
	strcpy(x.state, "burned");
	assert_int_equal(emv_wire_ipstate_encode(&x, &buf, &len, ERR, sizeof ERR), EMV_WIRE_INVALID);
	assert_non_null(strstr(ERR, "state"));
	sample_ipstate(&x);
	x.rate_permille = 1001;
	assert_int_equal(emv_wire_ipstate_encode(&x, &buf, &len, ERR, sizeof ERR), EMV_WIRE_INVALID);
	sample_ipstate(&x);
	x.until_ms = -1;
	assert_int_equal(emv_wire_ipstate_encode(&x, &buf, &len, ERR, sizeof ERR), EMV_WIRE_INVALID);
	sample_ipstate(&x);
	x.last_reply[0] = '\n';
	assert_int_equal(emv_wire_ipstate_encode(&x, &buf, &len, ERR, sizeof ERR), EMV_WIRE_INVALID);
	/* hostile bytes: an error, a zeroed output, never a crash */
	assert_int_not_equal(emv_wire_ipstate_decode(junk, sizeof junk, &y, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_string_equal(y.ip, "");
	assert_int_not_equal(emv_wire_ipstate_decode(NULL, 0, &y, ERR, sizeof ERR), EMV_WIRE_OK);
}

static void do_test_batch_round_trip(void **state)
{
	emv_wire_batch b, *d;
	emv_wire_address a[3];
	uint8_t *buf;
	size_t len;
	Emailverify__VerifyBatch *m;

	(void)state;
	sample_batch(&b, a);
	batch_round_trip(&b);

	/* what is on the wire is what the schema says, schema_version included */
	assert_int_equal(emv_wire_batch_encode(&b, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	m = emailverify__verify_batch__unpack(NULL, len, buf);
	assert_non_null(m);
	assert_int_equal(m->schema_version, EMV_WIRE_SCHEMA);
	assert_string_equal(m->domain, "example.com");
	assert_int_equal(m->n_addresses, 3);
	assert_string_equal(m->addresses[2]->local, "\"john doe\"");
	assert_true(m->addresses[2]->id == UINT64_MAX);
	assert_int_equal(m->not_before, INT64_C(1767225600000));
	emailverify__verify_batch__free_unpacked(m, NULL);

	assert_int_equal(emv_wire_batch_decode(buf, len, &d, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_string_equal(d->job_id, "job-2024-0001");
	assert_string_equal(d->batch_id, "job-2024-0001/b17");
	assert_string_equal(d->region_hint, "eu-west");
	assert_int_equal(d->attempt, 2);
	assert_int_equal(d->addresses[1].flags, EMV_FLAG_ROLE | EMV_FLAG_FREE);
	assert_int_equal(d->addresses[2].flags, EMV_FLAG_QUOTED | 0x80000000u);
	emv_wire_batch_free(d);
	free(buf);
}

static void do_test_batch_empty_optionals(void **state)
{
	emv_wire_batch b;
	emv_wire_address a[3];

	(void)state;
	sample_batch(&b, a);
	b.n_addresses = 1;
	a[0].flags = 0;
	b.attempt = 0;
	b.not_before_ms = 0;
	b.region_hint[0] = '\0';
	batch_round_trip(&b);

	/* the limits themselves are accepted */
	b.attempt = EMV_WIRE_ATTEMPT_MAX;
	b.not_before_ms = EMV_WIRE_TIME_MAX;
	memset(b.region_hint, 'r', EMV_WIRE_REGION_MAX);
	memset(b.job_id, 'j', EMV_WIRE_ID_MAX);
	memset(b.batch_id, '~', EMV_WIRE_ID_MAX);
	memset(a[0].local, 'l', EMV_WIRE_LOCAL_MAX);
	batch_round_trip(&b);
}

static void do_test_batch_10000_addresses(void **state)
{
	emv_wire_batch b;
	emv_wire_address a[3], *many = calloc(EMV_WIRE_ADDRESSES_MAX + 1, sizeof *many);
	uint8_t *buf;
	size_t len;

	(void)state;
	assert_non_null(many);
	sample_batch(&b, a);
	for (size_t i = 0; i <= EMV_WIRE_ADDRESSES_MAX; i++) {
		many[i].id = 1000000 + i;
		snprintf(many[i].local, sizeof many[i].local, "user.%zu-%s", i, i % 7 ? "x" : "\xc3\xa9t\xc3\xa9");
		many[i].flags = (uint32_t)(i & 0x7f);
	}
	b.addresses = many;
	b.n_addresses = EMV_WIRE_ADDRESSES_MAX;
	batch_round_trip(&b);

	b.n_addresses = EMV_WIRE_ADDRESSES_MAX + 1;
	assert_int_equal(emv_wire_batch_encode(&b, &buf, &len, ERR, sizeof ERR), EMV_WIRE_INVALID);
	assert_null(buf);
	assert_string_equal(ERR, "addresses: 10001 entries, the limit is 10000");

	/* the same from a producer that does not check */
	{
		struct pb_batch p;
		Emailverify__Address *pa = calloc(EMV_WIRE_ADDRESSES_MAX + 1, sizeof *pa);
		Emailverify__Address **pp = calloc(EMV_WIRE_ADDRESSES_MAX + 1, sizeof *pp);

		assert_non_null(pa);
		assert_non_null(pp);
		pb_batch_init(&p);
		for (size_t i = 0; i <= EMV_WIRE_ADDRESSES_MAX; i++) {
			emailverify__address__init(&pa[i]);
			pa[i].id = i + 1;
			pa[i].local = "u";
			pp[i] = &pa[i];
		}
		p.m.addresses = pp;
		p.m.n_addresses = EMV_WIRE_ADDRESSES_MAX + 1;
		expect_pb(&p.m.base, 0, EMV_WIRE_INVALID, "addresses: 10001 entries, the limit is 10000", __LINE__);
		p.m.n_addresses = EMV_WIRE_ADDRESSES_MAX;
		expect_pb(&p.m.base, 0, EMV_WIRE_OK, NULL, __LINE__);
		free(pa);
		free(pp);
	}
	free(many);
}

static void do_test_batch_utf8_local(void **state)
{
	static const char *const locals[] = {
		"j\xc3\xb6rg",		    /* jörg */
		"\xe7\x94\xa8\xe6\x88\xb7", /* 用户 */
		"\xce\xa9mega",		    /* Ωmega */
		"\xf0\x9f\x98\x80x",	    /* U+1F600 */
		"\xef\xbf\xbd",		    /* U+FFFD itself is a character */
		"\"a b\"",		    /* quoted, with a space */
	};
	emv_wire_batch b;
	emv_wire_address ad[3];

	(void)state;
	sample_batch(&b, ad);
	b.n_addresses = 1;
	for (size_t i = 0; i < sizeof locals / sizeof locals[0]; i++) {
		strcpy(ad[0].local, locals[i]);
		batch_round_trip(&b);
	}
	/* 64 bytes of two-byte characters fit; 65 bytes do not */
	for (int i = 0; i < 32; i++)
		memcpy(ad[0].local + 2 * i, "\xc3\xa9", 2);
	ad[0].local[64] = '\0';
	batch_round_trip(&b);
	{
		char longer[70];

		memcpy(longer, ad[0].local, 64);
		strcpy(longer + 64, "x");
		BATCH_CASE(a[0].local = longer, EMV_WIRE_INVALID, "addresses[0].local: 65 bytes, the limit is 64");
	}
}

static void do_test_batch_invalid_utf8(void **state)
{
	(void)state;
	BATCH_CASE(a[1].local = "ab\xc3\x28", EMV_WIRE_INVALID, "addresses[1].local: invalid UTF-8 at offset 2");
	BATCH_CASE(a[1].local = "\xc0\xaf", EMV_WIRE_INVALID, "addresses[1].local: invalid UTF-8 at offset 0");
	BATCH_CASE(a[1].local = "x\xed\xa0\x80", EMV_WIRE_INVALID, "addresses[1].local: invalid UTF-8 at offset 1");
	BATCH_CASE(a[1].local = "\xf4\x90\x80\x80", EMV_WIRE_INVALID, "addresses[1].local: invalid UTF-8 at offset 0");
	BATCH_CASE(a[1].local = "abc\xe2\x82", EMV_WIRE_INVALID, "addresses[1].local: invalid UTF-8 at offset 3");
	BATCH_CASE(a[1].local = "\xff", EMV_WIRE_INVALID, "addresses[1].local: invalid UTF-8 at offset 0");
	BATCH_CASE(a[1].local = "a\xc2\x85", EMV_WIRE_INVALID,
		   "addresses[1].local: control character U+0085 at offset 1");
}

/* ---- VerifyBatch rules ---- */

static void do_test_batch_field_errors(void **state)
{
	static char id65[66];

	(void)state;
	memset(id65, 'x', 65);
	BATCH_CASE((void)0, EMV_WIRE_OK, NULL);
	BATCH_CASE(m->job_id = "", EMV_WIRE_INVALID, "job_id: missing or empty");
	BATCH_CASE(m->job_id = id65, EMV_WIRE_INVALID, "job_id: 65 bytes, the limit is 64");
	BATCH_CASE(m->job_id = "a b", EMV_WIRE_INVALID, "job_id: byte 0x20 at offset 1 is not visible ASCII");
	BATCH_CASE(m->job_id = "caf\xc3\xa9", EMV_WIRE_INVALID, "job_id: byte 0xc3 at offset 3 is not visible ASCII");
	BATCH_CASE(m->batch_id = "", EMV_WIRE_INVALID, "batch_id: missing or empty");
	BATCH_CASE(m->batch_id = id65, EMV_WIRE_INVALID, "batch_id: 65 bytes, the limit is 64");
	BATCH_CASE(m->batch_id = "b\x7f", EMV_WIRE_INVALID, "batch_id: byte 0x7f at offset 1 is not visible ASCII");
	BATCH_CASE(m->n_addresses = 0, EMV_WIRE_INVALID, "addresses: none, at least 1 expected");
	BATCH_CASE(a[2].id = 0, EMV_WIRE_INVALID, "addresses[2].id: missing (0)");
	BATCH_CASE(m->attempt = 1000, EMV_WIRE_OK, NULL);
	BATCH_CASE(m->attempt = 1001, EMV_WIRE_INVALID, "attempt: 1001, the limit is 1000");
	BATCH_CASE(m->not_before = -1, EMV_WIRE_INVALID, "not_before: -1 is not 0..253402300799999 unix ms");
	BATCH_CASE(m->not_before = EMV_WIRE_TIME_MAX + 1, EMV_WIRE_INVALID,
		   "not_before: 253402300800000 is not 0..253402300799999 unix ms");
	BATCH_CASE(m->region_hint = id65, EMV_WIRE_INVALID, "region_hint: 65 bytes, the limit is 64");
	BATCH_CASE(m->region_hint = "eu west", EMV_WIRE_INVALID,
		   "region_hint: byte 0x20 at offset 2 is not visible ASCII");
}

static void do_test_batch_domain_errors(void **state)
{
	static char label64[80], long254[260], ok253[260];

	(void)state;
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".com");
	/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
	memset(ok253, 'b', 253);
	ok253[63] = ok253[127] = ok253[191] = '.';
	ok253[253] = '\0';
	memcpy(long254, ok253, 253);
	strcpy(long254 + 253, "c");

	BATCH_CASE(m->domain = "xn--bcher-kva.example", EMV_WIRE_OK, NULL);
	BATCH_CASE(m->domain = "r3--sn-x.1e100.net", EMV_WIRE_OK, NULL);
	BATCH_CASE(m->domain = "localhost", EMV_WIRE_OK, NULL);
	BATCH_CASE(m->domain = ok253, EMV_WIRE_OK, NULL);
	BATCH_CASE(m->domain = "", EMV_WIRE_INVALID, "domain: missing or empty");
	BATCH_CASE(m->domain = long254, EMV_WIRE_INVALID, "domain: 254 bytes, the limit is 253");
	BATCH_CASE(m->domain = "Example.com", EMV_WIRE_INVALID,
		   "domain: byte 'E' at offset 0 is not a lower-case letter, digit, hyphen or dot");
	BATCH_CASE(m->domain = "a_b.com", EMV_WIRE_INVALID,
		   "domain: byte '_' at offset 1 is not a lower-case letter, digit, hyphen or dot");
	BATCH_CASE(m->domain = "b\xc3\xbc"
			       "cher.example",
		   EMV_WIRE_INVALID, "domain: byte 0xc3 at offset 1 is not a lower-case letter, digit, hyphen or dot");
	BATCH_CASE(m->domain = "a..b", EMV_WIRE_INVALID, "domain: empty label at offset 2");
	BATCH_CASE(m->domain = ".a", EMV_WIRE_INVALID, "domain: empty label at offset 0");
	BATCH_CASE(m->domain = "example.com.", EMV_WIRE_INVALID, "domain: empty label at offset 12");
	BATCH_CASE(m->domain = "-a.com", EMV_WIRE_INVALID, "domain: label at offset 0 starts with a hyphen");
	BATCH_CASE(m->domain = "x.a-.com", EMV_WIRE_INVALID, "domain: label at offset 2 ends with a hyphen");
	BATCH_CASE(m->domain = label64, EMV_WIRE_INVALID, "domain: label at offset 0 is 64 bytes, the limit is 63");
	BATCH_CASE(m->domain = "[1.2.3.4]", EMV_WIRE_INVALID,
		   "domain: byte '[' at offset 0 is not a lower-case letter, digit, hyphen or dot");
}

static void do_test_batch_local_errors(void **state)
{
	(void)state;
	BATCH_CASE(a[0].local = "", EMV_WIRE_INVALID, "addresses[0].local: missing or empty");
	BATCH_CASE(a[1].local = "a\rb", EMV_WIRE_INVALID, "addresses[1].local: control character U+000D at offset 1");
	BATCH_CASE(a[1].local = "ab\n", EMV_WIRE_INVALID, "addresses[1].local: control character U+000A at offset 2");
	BATCH_CASE(a[1].local = "\ta", EMV_WIRE_INVALID, "addresses[1].local: control character U+0009 at offset 0");
	BATCH_CASE(a[1].local = "a\x7f", EMV_WIRE_INVALID, "addresses[1].local: control character U+007F at offset 1");
	BATCH_CASE(a[2].local = "a>b", EMV_WIRE_INVALID, "addresses[2].local: '>' at offset 1 is not allowed");
	BATCH_CASE(a[2].local = "<ab", EMV_WIRE_INVALID, "addresses[2].local: '<' at offset 0 is not allowed");
	/* a rule broken in the middle of a big batch names its index */
	BATCH_CASE(a[1].local = "\"x\r\nRSET\"", EMV_WIRE_INVALID,
		   "addresses[1].local: control character U+000D at offset 2");
}

static void do_test_batch_duplicate_ids(void **state)
{
	emv_wire_batch b;
	emv_wire_address ad[3];
	uint8_t *buf;
	size_t len;

	(void)state;
	BATCH_CASE(a[2].id = 1, EMV_WIRE_INVALID, "addresses[2].id: 1 repeats addresses[0].id");
	BATCH_CASE((a[0].id = 9, a[1].id = 9, a[2].id = 9), EMV_WIRE_INVALID,
		   "addresses[1].id: 9 repeats addresses[0].id");
	sample_batch(&b, ad);
	ad[1].id = ad[2].id;
	assert_int_equal(emv_wire_batch_encode(&b, &buf, &len, ERR, sizeof ERR), EMV_WIRE_INVALID);
	assert_string_equal(ERR, "addresses[2].id: 18446744073709551615 repeats addresses[1].id");
}

/* ---- VerifyResults ---- */

static void do_test_results_round_trip(void **state)
{
	emv_wire_results r, *d;
	emv_wire_result res[2];
	emv_wire_exchange x[3];
	uint8_t *buf;
	size_t len;

	(void)state;
	sample_results(&r, res, x);
	results_round_trip(&r);

	assert_int_equal(emv_wire_results_encode(&r, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	{
		Emailverify__VerifyResults *m = emailverify__verify_results__unpack(NULL, len, buf);

		assert_non_null(m);
		assert_int_equal(m->schema_version, EMV_WIRE_SCHEMA);
		assert_string_equal(m->results[0]->status, "undeliverable");
		assert_string_equal(m->results[0]->reason, "mailbox_not_found");
		assert_string_equal(m->results[1]->reason, "catch_all");
		assert_string_equal(m->results[0]->transcript[2]->phase, "rcpt");
		assert_true(m->results[1]->catch_all);
		emailverify__verify_results__free_unpacked(m, NULL);
	}
	assert_int_equal(emv_wire_results_decode(buf, len, &d, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_int_equal(d->results[0].status, EMV_STATUS_UNDELIVERABLE);
	assert_int_equal(d->results[1].reason, EMV_REASON_CATCH_ALL);
	assert_int_equal(d->results[0].transcript[1].phase, EMV_PHASE_EHLO);
	assert_string_equal(d->results[0].transcript[1].text, "mx1.example.com\nPIPELINING\nSTARTTLS");
	assert_string_equal(d->results[0].transcript[0].command, ""); /* decoded strings are never NULL */
	assert_null(d->results[1].transcript);
	assert_int_equal(d->results[1].n_transcript, 0);
	assert_int_equal(d->results[1].duration_ms, 4000000000u);
	emv_wire_results_free(d);
	free(buf);

	/* every status, reason and phase survives the trip through its name */
	for (int s = 0; s < EMV_STATUS__COUNT; s++) {
		res[0].status = (emv_status)s;
		results_round_trip(&r);
	}
	for (int k = 0; k < EMV_REASON__COUNT; k++) {
		res[1].reason = (emv_reason)k;
		results_round_trip(&r);
	}
	for (int p = 0; p < EMV_PHASE__COUNT; p++) {
		x[1].phase = p;
		results_round_trip(&r);
	}
}

static void do_test_results_empty_optionals(void **state)
{
	emv_wire_results r;
	emv_wire_result res[2];
	emv_wire_exchange x[3];

	(void)state;
	sample_results(&r, res, x);
	r.region[0] = r.source_ip[0] = r.mx[0] = r.tls[0] = '\0';
	r.n_results = 1;
	res[0].smtp_code = 0;
	res[0].enhanced_code[0] = '\0';
	res[0].reply = NULL; /* NULL is "" */
	res[0].attempts = res[0].duration_ms = res[0].flags = 0;
	res[0].n_transcript = 1;
	x[0].code = 0;
	x[0].command = NULL;
	x[0].text = NULL;
	results_round_trip(&r);
	res[0].reply = "";
	res[0].n_transcript = 0;
	res[0].transcript = NULL;
	results_round_trip(&r);
	strcpy(r.source_ip, "192.0.2.1");
	results_round_trip(&r);
	strcpy(r.source_ip, "::1");
	results_round_trip(&r);
}

static void do_test_results_field_errors(void **state)
{
	static char id65[66], tls32[33], mx256[257];

	(void)state;
	memset(id65, 'x', 65);
	memset(tls32, 't', 32);
	memset(mx256, 'm', 256);
	RESULTS_CASE((void)0, EMV_WIRE_OK, NULL);
	RESULTS_CASE(m->job_id = "", EMV_WIRE_INVALID, "job_id: missing or empty");
	RESULTS_CASE(m->batch_id = id65, EMV_WIRE_INVALID, "batch_id: 65 bytes, the limit is 64");
	RESULTS_CASE(m->worker = "", EMV_WIRE_INVALID, "worker: missing or empty");
	RESULTS_CASE(m->worker = id65, EMV_WIRE_INVALID, "worker: 65 bytes, the limit is 64");
	RESULTS_CASE(m->region = "eu\n", EMV_WIRE_INVALID, "region: byte 0x0a at offset 2 is not visible ASCII");
	RESULTS_CASE(m->source_ip = "1.2.3", EMV_WIRE_INVALID, "source_ip: '1.2.3' is not an IPv4 or IPv6 address");
	RESULTS_CASE(m->source_ip = "fe80::1%eth0", EMV_WIRE_INVALID,
		     "source_ip: 'fe80::1%eth0' is not an IPv4 or IPv6 address");
	RESULTS_CASE(m->source_ip = "2001:db8::1", EMV_WIRE_OK, NULL);
	RESULTS_CASE(m->mx = mx256, EMV_WIRE_INVALID, "mx: 256 bytes, the limit is 255");
	RESULTS_CASE(m->mx = "mx .example", EMV_WIRE_INVALID, "mx: byte 0x20 at offset 2 is not visible ASCII");
	RESULTS_CASE(m->tls = tls32, EMV_WIRE_INVALID, "tls: 32 bytes, the limit is 31");
	RESULTS_CASE(m->n_results = 0, EMV_WIRE_INVALID, "results: none, at least 1 expected");
	RESULTS_CASE(r[1].id = 0, EMV_WIRE_INVALID, "results[1].id: missing (0)");
	RESULTS_CASE(r[1].id = 1, EMV_WIRE_INVALID, "results[1].id: 1 repeats results[0].id");
	RESULTS_CASE(r[0].attempts = 1001, EMV_WIRE_INVALID, "results[0].attempts: 1001, the limit is 1000");
}

static void do_test_results_name_errors(void **state)
{
	(void)state;
	RESULTS_CASE(r[0].status = "", EMV_WIRE_INVALID, "results[0].status: missing or empty");
	RESULTS_CASE(r[0].status = "bogus", EMV_WIRE_INVALID, "results[0].status: 'bogus' is not a status name");
	RESULTS_CASE(r[0].status = "Deliverable", EMV_WIRE_INVALID,
		     "results[0].status: 'Deliverable' is not a status name");
	RESULTS_CASE(r[0].status = "deliverable-and-then-some-more-words", EMV_WIRE_INVALID,
		     "results[0].status: 36 bytes, the limit is 31");
	RESULTS_CASE(r[0].status = "x\x01y", EMV_WIRE_INVALID, "results[0].status: 'x?y' is not a status name");
	RESULTS_CASE(r[1].reason = "", EMV_WIRE_INVALID, "results[1].reason: missing or empty");
	RESULTS_CASE(r[1].reason = "no_such_reason", EMV_WIRE_INVALID,
		     "results[1].reason: 'no_such_reason' is not a reason name");
	RESULTS_CASE(x[1].phase = "", EMV_WIRE_INVALID, "results[0].transcript[1].phase: missing or empty");
	RESULTS_CASE(x[1].phase = "data", EMV_WIRE_INVALID,
		     "results[0].transcript[1].phase: 'data' is not a phase name");
	RESULTS_CASE(x[1].phase = "RCPT", EMV_WIRE_OK, NULL); /* phase names are case-insensitive */
}

static void do_test_results_code_errors(void **state)
{
	(void)state;
	RESULTS_CASE(r[0].smtp_code = 0, EMV_WIRE_OK, NULL);
	RESULTS_CASE(r[0].smtp_code = 200, EMV_WIRE_OK, NULL);
	RESULTS_CASE(r[0].smtp_code = 599, EMV_WIRE_OK, NULL);
	RESULTS_CASE(r[0].smtp_code = 199, EMV_WIRE_INVALID, "results[0].smtp_code: 199 is not 0 or 200..599");
	RESULTS_CASE(r[0].smtp_code = 600, EMV_WIRE_INVALID, "results[0].smtp_code: 600 is not 0 or 200..599");
	RESULTS_CASE(r[0].smtp_code = 4294967295u, EMV_WIRE_INVALID,
		     "results[0].smtp_code: 4294967295 is not 0 or 200..599");
	RESULTS_CASE(x[0].code = 99, EMV_WIRE_INVALID, "results[0].transcript[0].code: 99 is not 0 or 200..599");
	RESULTS_CASE(r[0].enhanced_code = "4.7.0", EMV_WIRE_OK, NULL);
	RESULTS_CASE(r[0].enhanced_code = "5.999.999", EMV_WIRE_OK, NULL);
	RESULTS_CASE(r[0].enhanced_code = "5.1", EMV_WIRE_INVALID,
		     "results[0].enhanced_code: '5.1' is not an RFC 3463 code");
	RESULTS_CASE(r[0].enhanced_code = "3.1.1", EMV_WIRE_INVALID,
		     "results[0].enhanced_code: '3.1.1' is not an RFC 3463 code");
	RESULTS_CASE(r[0].enhanced_code = "5.1.1 ", EMV_WIRE_INVALID,
		     "results[0].enhanced_code: '5.1.1 ' is not an RFC 3463 code");
	RESULTS_CASE(r[0].enhanced_code = "5.1.1.1.1.1.1.1", EMV_WIRE_INVALID,
		     "results[0].enhanced_code: '5.1.1.1.1.1.1.1' is not an RFC 3463 code");
	RESULTS_CASE(r[0].enhanced_code = "5.1.1.1.1.1.1.1.", EMV_WIRE_INVALID,
		     "results[0].enhanced_code: 16 bytes, the limit is 15");
	RESULTS_CASE(x[1].enhanced = "2.1.5\n", EMV_WIRE_INVALID,
		     "results[0].transcript[1].enhanced: '2.1.5?' is not an RFC 3463 code");
}

static void do_test_results_text_errors(void **state)
{
	static char r1024[1025], r1025[1026], c513[514];

	(void)state;
	memset(r1024, 'r', 1024);
	memset(r1025, 'r', 1025);
	memset(c513, 'c', 513);
	RESULTS_CASE(r[0].reply = r1024, EMV_WIRE_OK, NULL);
	RESULTS_CASE(r[0].reply = r1025, EMV_WIRE_INVALID, "results[0].reply: 1025 bytes, the limit is 1024");
	RESULTS_CASE(r[0].reply = "ok\nmore", EMV_WIRE_INVALID,
		     "results[0].reply: byte 0x0a at offset 2 is not printable ASCII");
	RESULTS_CASE(r[0].reply = "caf\xc3\xa9", EMV_WIRE_INVALID,
		     "results[0].reply: byte 0xc3 at offset 3 is not printable ASCII");
	RESULTS_CASE(x[0].text = r1024, EMV_WIRE_OK, NULL);
	RESULTS_CASE(x[0].text = "a\nb\n", EMV_WIRE_OK, NULL);
	RESULTS_CASE(x[0].text = r1025, EMV_WIRE_INVALID,
		     "results[0].transcript[0].text: 1025 bytes, the limit is 1024");
	RESULTS_CASE(x[0].text = "a\r\nb", EMV_WIRE_INVALID,
		     "results[0].transcript[0].text: byte 0x0d at offset 1 is not printable ASCII or a line feed");
	RESULTS_CASE(x[1].command = "RCPT TO:<\xc3\xa9@example.com>", EMV_WIRE_OK, NULL);
	RESULTS_CASE(x[1].command = c513, EMV_WIRE_INVALID,
		     "results[0].transcript[1].command: 513 bytes, the limit is 512");
	RESULTS_CASE(x[1].command = "RSET\r\n", EMV_WIRE_INVALID,
		     "results[0].transcript[1].command: control character U+000D at offset 4");
	RESULTS_CASE(x[1].command = "MAIL \xfe", EMV_WIRE_INVALID,
		     "results[0].transcript[1].command: invalid UTF-8 at offset 5");
}

static void do_test_results_transcript_limit(void **state)
{
	Emailverify__SmtpReply xs[EMV_WIRE_TRANSCRIPT_MAX + 1], *xp[EMV_WIRE_TRANSCRIPT_MAX + 1];

	(void)state;
	for (int i = 0; i <= EMV_WIRE_TRANSCRIPT_MAX; i++) {
		emailverify__smtp_reply__init(&xs[i]);
		xs[i].phase = "rcpt";
		xs[i].code = 250;
		xp[i] = &xs[i];
	}
	RESULTS_CASE((r[1].transcript = xp, r[1].n_transcript = EMV_WIRE_TRANSCRIPT_MAX), EMV_WIRE_OK, NULL);
	RESULTS_CASE((r[1].transcript = xp, r[1].n_transcript = EMV_WIRE_TRANSCRIPT_MAX + 1), EMV_WIRE_INVALID,
		     "results[1].transcript: 65 entries, the limit is 64");
}

/* Rules our encoder applies to a caller's struct: a producer's bugs are
 * caught where they are made, not by every consumer. */
static void do_test_encode_rejects(void **state)
{
	emv_wire_batch b;
	emv_wire_address a[3];
	emv_wire_results r;
	emv_wire_result res[2];
	emv_wire_exchange x[3];
	uint8_t *buf = (uint8_t *)1;
	size_t len = 7;

#define ENC_BATCH(stmt, msg)                                                                                \
	do {                                                                                                \
		sample_batch(&b, a);                                                                        \
		stmt;                                                                                       \
		assert_int_equal(emv_wire_batch_encode(&b, &buf, &len, ERR, sizeof ERR), EMV_WIRE_INVALID); \
		assert_null(buf);                                                                           \
		assert_int_equal(len, 0);                                                                   \
		assert_string_equal(ERR, msg);                                                              \
	} while (0)
#define ENC_RESULTS(stmt, msg)                                                                                \
	do {                                                                                                  \
		sample_results(&r, res, x);                                                                   \
		stmt;                                                                                         \
		assert_int_equal(emv_wire_results_encode(&r, &buf, &len, ERR, sizeof ERR), EMV_WIRE_INVALID); \
		assert_null(buf);                                                                             \
		assert_string_equal(ERR, msg);                                                                \
	} while (0)

	(void)state;
	ENC_BATCH(memset(a[0].local, 'a', sizeof a[0].local), "addresses[0].local: more than 64 bytes");
	ENC_BATCH(memset(b.job_id, 'a', sizeof b.job_id), "job_id: more than 64 bytes");
	ENC_BATCH(strcpy(b.domain, "Example.COM"),
		  "domain: byte 'E' at offset 0 is not a lower-case letter, digit, hyphen or dot");
	ENC_BATCH(b.addresses = NULL, "addresses: NULL with n_addresses 3");
	ENC_BATCH(b.not_before_ms = INT64_MIN, "not_before: -9223372036854775808 is not 0..253402300799999 unix ms");
	ENC_RESULTS(res[1].catch_all = -1, "results[1].catch_all: -1 is not 0 or 1"); /* probe's "not known" */
	ENC_RESULTS(res[1].temporary = 2, "results[1].temporary: 2 is not 0 or 1");
	ENC_RESULTS(res[0].status = EMV_STATUS__COUNT, "results[0].status: 4 is not a status");
	ENC_RESULTS(res[0].status = (emv_status)-1, "results[0].status: -1 is not a status");
	ENC_RESULTS(res[1].reason = EMV_REASON__COUNT, "results[1].reason: 23 is not a reason");
	ENC_RESULTS(x[2].phase = EMV_PHASE__COUNT, "results[0].transcript[2].phase: 9 is not a phase");
	ENC_RESULTS(res[0].transcript = NULL, "results[0].transcript: NULL with n_transcript 3");
	ENC_RESULTS(res[0].n_transcript = 65, "results[0].transcript: 65 entries, the limit is 64");
	ENC_RESULTS(strcpy(r.source_ip, "localhost"), "source_ip: 'localhost' is not an IPv4 or IPv6 address");
	ENC_RESULTS(r.n_results = EMV_WIRE_RESULTS_MAX + 1, "results: 10001 entries, the limit is 10000");
#undef ENC_BATCH
#undef ENC_RESULTS
}

/* ---- hostile bytes ---- */

static void do_test_schema_versions(void **state)
{
	(void)state;
	BATCH_CASE(m->schema_version = 0, EMV_WIRE_SCHEMA_UNSUPPORTED, "schema version 0 not supported");
	BATCH_CASE(m->schema_version = 2, EMV_WIRE_SCHEMA_UNSUPPORTED, "schema version 2 not supported");
	BATCH_CASE(m->schema_version = 4294967295u, EMV_WIRE_SCHEMA_UNSUPPORTED,
		   "schema version 4294967295 not supported");
	RESULTS_CASE(m->schema_version = 0, EMV_WIRE_SCHEMA_UNSUPPORTED, "schema version 0 not supported");
	RESULTS_CASE(m->schema_version = 7, EMV_WIRE_SCHEMA_UNSUPPORTED, "schema version 7 not supported");
	/* an empty message is a valid protobuf of version 0 */
	expect_batch_bytes("", 0, EMV_WIRE_SCHEMA_UNSUPPORTED, "schema version 0 not supported", __LINE__);
	expect_results_bytes(NULL, 0, EMV_WIRE_SCHEMA_UNSUPPORTED, "schema version 0 not supported", __LINE__);

	/* a future producer: version 2, fields we do not know, and fields we do
	 * know used in a way version 1 forbids.  The version is what we report. */
	{
		bytes b = { 0 };

		b_uint(&b, 1, 2);
		b_str(&b, 2, "job 7 with spaces");
		b_str(&b, 4, "UPPER.example");
		b_str(&b, 19, "priority=high");
		b_uint(&b, 20, 12345);
		expect_batch_bytes(b.p, b.n, EMV_WIRE_SCHEMA_UNSUPPORTED, "schema version 2 not supported", __LINE__);
		expect_results_bytes(b.p, b.n, EMV_WIRE_SCHEMA_UNSUPPORTED, "schema version 2 not supported", __LINE__);
		free(b.p);
	}
}

/* The minimal valid batch, byte by byte, with one address whose local part is given. */
static void raw_batch(bytes *b, const char *local, size_t local_len)
{
	bytes a = { 0 };

	b_uint(&a, 1, 42);
	b_len(&a, 2, local, local_len);
	b_uint(b, 1, 1);
	b_str(b, 2, "j1");
	b_str(b, 3, "b1");
	b_str(b, 4, "example.com");
	b_len(b, 5, a.p, a.n);
	free(a.p);
}

static void do_test_nul_in_string(void **state)
{
	bytes b = { 0 };

	(void)state;
	raw_batch(&b, "ab", 2);
	expect_batch_bytes(b.p, b.n, EMV_WIRE_OK, NULL, __LINE__);
	free(b.p);

	/* protobuf-c alone would hand us "ab" */
	memset(&b, 0, sizeof b);
	raw_batch(&b, "ab\0cd", 5);
	expect_batch_bytes(b.p, b.n, EMV_WIRE_INVALID, "addresses[0].local: NUL byte at offset 2", __LINE__);
	free(b.p);
	/* the index counts repeated entries */
	{
		bytes a = { 0 };

		b_uint(&a, 1, 43);
		b_len(&a, 2, "\0", 1);
		memset(&b, 0, sizeof b);
		raw_batch(&b, "ok", 2);
		b_len(&b, 5, a.p, a.n);
		expect_batch_bytes(b.p, b.n, EMV_WIRE_INVALID, "addresses[1].local: NUL byte at offset 0", __LINE__);
		free(a.p);
		free(b.p);
	}
	memset(&b, 0, sizeof b);
	b_uint(&b, 1, 1);
	b_len(&b, 2, "j\0", 2);
	expect_batch_bytes(b.p, b.n, EMV_WIRE_INVALID, "job_id: NUL byte at offset 1", __LINE__);
	expect_results_bytes(b.p, b.n, EMV_WIRE_INVALID, "job_id: NUL byte at offset 1", __LINE__);
	free(b.p);

	/* three levels down: results[0].transcript[1].text */
	{
		bytes x0 = { 0 }, x1 = { 0 }, r0 = { 0 };

		b_str(&x0, 1, "banner");
		b_uint(&x0, 3, 220);
		b_str(&x1, 1, "rcpt");
		b_len(&x1, 5, "ok\0hidden", 9);
		b_uint(&r0, 1, 1);
		b_str(&r0, 2, "unknown");
		b_str(&r0, 3, "timeout");
		b_len(&r0, 12, x0.p, x0.n);
		b_len(&r0, 12, x1.p, x1.n);
		memset(&b, 0, sizeof b);
		b_uint(&b, 1, 1);
		b_str(&b, 2, "j1");
		b_str(&b, 3, "b1");
		b_str(&b, 4, "w1");
		b_len(&b, 9, r0.p, r0.n);
		expect_results_bytes(b.p, b.n, EMV_WIRE_INVALID, "results[0].transcript[1].text: NUL byte at offset 2",
				     __LINE__);
		free(x0.p);
		free(x1.p);
		free(r0.p);
		free(b.p);
	}
}

static void do_test_unknown_fields(void **state)
{
	emv_wire_batch b, *d;
	emv_wire_address a[3];
	bytes w = { 0 }, extra = { 0 };
	uint8_t *buf;
	size_t len;
	static const uint8_t f32[4] = { 1, 2, 3, 4 }, f64[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	(void)state;
	sample_batch(&b, a);
	assert_int_equal(emv_wire_batch_encode(&b, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	/* field numbers beyond ours, of every wire type, before and after ours */
	b_uint(&w, 99, 300);
	b_str(&w, 100, "a string of the future");
	b_key(&w, 101, 5);
	b_put(&w, f32, 4);
	b_key(&w, 536870911, 1); /* the largest field number */
	b_put(&w, f64, 8);
	b_put(&w, buf, len);
	b_uint(&w, 20, 1);
	/* a fourth address with unknown fields of its own */
	b_uint(&extra, 4, 77);
	b_uint(&extra, 1, 104);
	b_str(&extra, 9, "nested future field");
	b_str(&extra, 2, "dave");
	b_uint(&extra, 3, EMV_FLAG_FREE);
	b_len(&w, 5, extra.p, extra.n);

	assert_int_equal(emv_wire_batch_decode(w.p, w.n, &d, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_int_equal(d->n_addresses, 4);
	assert_int_equal(d->addresses[3].id, 104);
	assert_string_equal(d->addresses[3].local, "dave");
	assert_int_equal(d->addresses[3].flags, EMV_FLAG_FREE);
	d->n_addresses = 3;
	assert_true(emv_wire_batch_equal(&b, d));
	emv_wire_batch_free(d);
	free(buf);
	free(w.p);
	free(extra.p);

	/* in results and transcripts too (here through protobuf-c's own field list) */
	{
		ProtobufCMessageUnknownField uf[2] = {
			{ 15, PROTOBUF_C_WIRE_TYPE_VARINT, 1, (uint8_t *)"\x05" },
			/* protobuf-c keeps the length prefix in the data */
			{ 16, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, 4,
			  (uint8_t *)"\x03"
				     "abc" },
		};
		RESULTS_CASE((x[1].base.n_unknown_fields = 2, x[1].base.unknown_fields = uf,
			      r[1].base.n_unknown_fields = 1, r[1].base.unknown_fields = uf + 1,
			      m->base.n_unknown_fields = 2, m->base.unknown_fields = uf),
			     EMV_WIRE_OK, NULL);
	}
}

/* Valid protobuf that no protobuf-c writer produces: any field order, a
 * scalar given twice (the last wins), zero values written out. */
static void do_test_non_canonical(void **state)
{
	bytes w = { 0 }, a = { 0 };
	emv_wire_batch *d;

	(void)state;
	b_str(&a, 2, "zed");
	b_uint(&a, 3, 0);
	b_uint(&a, 1, 5);
	b_str(&w, 8, "");
	b_len(&w, 5, a.p, a.n);
	b_str(&w, 4, "wrong.example");
	b_str(&w, 4, "right.example");
	b_uint(&w, 6, 0);
	b_str(&w, 3, "b1");
	b_str(&w, 2, "j1");
	b_uint(&w, 1, 9);
	b_uint(&w, 1, 1);
	/* a varint padded to ten bytes */
	b_key(&w, 6, 0);
	b_put(&w, "\x83\x80\x80\x80\x80\x80\x80\x80\x80\x00", 10);
	assert_int_equal(emv_wire_batch_decode(w.p, w.n, &d, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_string_equal(d->domain, "right.example");
	assert_int_equal(d->attempt, 3);
	assert_int_equal(d->n_addresses, 1);
	assert_int_equal(d->addresses[0].id, 5);
	assert_string_equal(d->addresses[0].local, "zed");
	batch_round_trip(d);
	emv_wire_batch_free(d);
	free(w.p);
	free(a.p);
}

static void do_test_truncated(void **state)
{
	emv_wire_batch b;
	emv_wire_address a[3];
	emv_wire_results r;
	emv_wire_result res[2];
	emv_wire_exchange x[3];
	uint8_t *buf;
	size_t len, failed = 0;

	(void)state;
	sample_batch(&b, a);
	assert_int_equal(emv_wire_batch_encode(&b, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	for (size_t cut = 0; cut < len; cut++) {
		/* a private copy, so ASan sees any read past the cut */
		uint8_t *p = malloc(cut ? cut : 1);
		emv_wire_batch *d;
		emv_wire_status st;

		memcpy(p, buf, cut);
		st = emv_wire_batch_decode(p, cut, &d, ERR, sizeof ERR);
		if (st == EMV_WIRE_OK) {
			/* a cut between fields is a shorter valid message, never the same one */
			assert_false(emv_wire_batch_equal(&b, d));
			emv_wire_batch_free(d);
		} else {
			assert_null(d);
			assert_true(ERR[0] != '\0');
			failed++;
		}
		free(p);
	}
	assert_true(failed > len / 2);
	/* one byte short is inside the last field */
	expect_batch_bytes(buf, len - 1, EMV_WIRE_MALFORMED, "VerifyBatch: not a valid protobuf encoding (129 bytes)",
			   __LINE__);
	free(buf);

	failed = 0;
	sample_results(&r, res, x);
	assert_int_equal(emv_wire_results_encode(&r, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *p = malloc(cut ? cut : 1);
		emv_wire_results *d;

		memcpy(p, buf, cut);
		if (emv_wire_results_decode(p, cut, &d, ERR, sizeof ERR) == EMV_WIRE_OK) {
			assert_false(emv_wire_results_equal(&r, d));
			emv_wire_results_free(d);
		} else {
			assert_true(ERR[0] != '\0');
			failed++;
		}
		free(p);
	}
	assert_true(failed > len / 2);
	free(buf);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void do_test_garbage(void **state)
{
	uint8_t buf[512];
	emv_wire_batch b;
	emv_wire_address a[3];
	uint8_t *good;
	size_t good_len;
	unsigned ok = 0;

	(void)state;
	/* random bytes */
	for (int i = 0; i < 20000; i++) {
		size_t n = (size_t)(rng() % sizeof buf);
		emv_wire_batch *d;
		emv_wire_results *r;

		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)rng();
		if (emv_wire_batch_decode(buf, n, &d, ERR, sizeof ERR) == EMV_WIRE_OK) {
			ok++;
			emv_wire_batch_free(d);
		} else {
			assert_true(ERR[0] != '\0');
		}
		if (emv_wire_results_decode(buf, n, &r, ERR, sizeof ERR) == EMV_WIRE_OK) {
			ok++;
			emv_wire_results_free(r);
		} else {
			assert_true(ERR[0] != '\0');
		}
	}
	assert_int_equal(ok, 0);

	/* a valid message with random bytes flipped: anything may come back, but
	 * what comes back obeys the rules (it encodes again) */
	sample_batch(&b, a);
	assert_int_equal(emv_wire_batch_encode(&b, &good, &good_len, ERR, sizeof ERR), EMV_WIRE_OK);
	for (int i = 0; i < 20000; i++) {
		emv_wire_batch *d;

		memcpy(buf, good, good_len);
		for (int k = 0; k < 3; k++)
			buf[rng() % good_len] = (uint8_t)rng();
		if (emv_wire_batch_decode(buf, good_len, &d, ERR, sizeof ERR) == EMV_WIRE_OK) {
			uint8_t *again;
			size_t again_len;

			assert_int_equal(emv_wire_batch_encode(d, &again, &again_len, ERR, sizeof ERR), EMV_WIRE_OK);
			free(again);
			emv_wire_batch_free(d);
		} else {
			assert_true(ERR[0] != '\0');
		}
	}
	free(good);
}

static void do_test_wrong_type(void **state)
{
	emv_wire_batch b, *db;
	emv_wire_address a[3];
	emv_wire_results r, *dr;
	emv_wire_result res[2];
	emv_wire_exchange x[3];
	uint8_t *buf;
	size_t len;

	(void)state;
	sample_batch(&b, a);
	assert_int_equal(emv_wire_batch_encode(&b, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_int_not_equal(emv_wire_results_decode(buf, len, &dr, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_null(dr);
	free(buf);
	sample_results(&r, res, x);
	assert_int_equal(emv_wire_results_encode(&r, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_int_not_equal(emv_wire_batch_decode(buf, len, &db, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_null(db);
	free(buf);
}

/* ---- bounds ---- */

static void do_test_size_limits(void **state)
{
	uint8_t *big = calloc(1, EMV_WIRE_MAX_MESSAGE + 1), *buf;
	size_t len;
	emv_wire_results r;
	emv_wire_result *res = calloc(EMV_WIRE_RESULTS_MAX, sizeof *res);
	emv_wire_result one[2];
	emv_wire_exchange x[3];
	static char reply[EMV_WIRE_REPLY_MAX + 1];

	(void)state;
	assert_non_null(big);
	assert_non_null(res);
	/* decoding refuses before parsing */
	expect_batch_bytes(big, EMV_WIRE_MAX_MESSAGE + 1, EMV_WIRE_TOO_BIG,
			   "VerifyBatch: 4194305 bytes, the limit is 4194304", __LINE__);
	expect_results_bytes(big, EMV_WIRE_MAX_MESSAGE + 1, EMV_WIRE_TOO_BIG,
			     "VerifyResults: 4194305 bytes, the limit is 4194304", __LINE__);
	/* exactly the limit is parsed (and here fails on content: all zero bytes) */
	expect_batch_bytes(big, EMV_WIRE_MAX_MESSAGE, EMV_WIRE_MALFORMED, NULL, __LINE__);

	/* encoding refuses what every field allows but the sum does not */
	memset(reply, 'r', EMV_WIRE_REPLY_MAX);
	sample_results(&r, one, x);
	for (size_t i = 0; i < EMV_WIRE_RESULTS_MAX; i++) {
		res[i] = one[1];
		res[i].id = i + 1;
		res[i].reply = reply;
	}
	r.results = res;
	r.n_results = EMV_WIRE_RESULTS_MAX;
	buf = (uint8_t *)1;
	assert_int_equal(emv_wire_results_encode(&r, &buf, &len, ERR, sizeof ERR), EMV_WIRE_TOO_BIG);
	assert_null(buf);
	assert_int_equal(len, 0);
	if (strncmp(ERR, "VerifyResults: ", 15) != 0 || !strstr(ERR, " bytes encoded, the limit is 4194304"))
		fail_msg("error \"%s\"", ERR);

	/* just under the limit goes through both ways */
	reply[350] = '\0';
	results_round_trip(&r);
	assert_int_equal(emv_wire_results_encode(&r, &buf, &len, ERR, sizeof ERR), EMV_WIRE_OK);
	assert_true(len > EMV_WIRE_MAX_MESSAGE - 300000 && len <= EMV_WIRE_MAX_MESSAGE);
	free(buf);
	free(res);
	free(big);
}

/* A small message of many empty entries unpacks into far more memory than
 * its size: protobuf-c allocates under our bound and gives up past it. */
static void do_test_decode_memory_bound(void **state)
{
	bytes w = { 0 }, inner = { 0 };
	size_t n = (EMV_WIRE_MAX_MESSAGE - 64) / 2;

	(void)state;
	b_uint(&w, 1, 1);
	for (size_t i = 0; i < n; i++)
		b_put(&w, "\x4a\x00", 2); /* an empty Result, field 9 */
	expect_results_bytes(w.p, w.n, EMV_WIRE_TOO_BIG, NULL, __LINE__);
	assert_non_null(strstr(ERR, "needs more than 64 MiB"));
	free(w.p);

	/* empty transcript entries inside one result */
	memset(&w, 0, sizeof w);
	for (size_t i = 0; i < n - 8; i++)
		b_put(&inner, "\x62\x00", 2); /* an empty SmtpReply, field 12 */
	b_uint(&w, 1, 1);
	b_len(&w, 9, inner.p, inner.n);
	assert_true(w.n <= EMV_WIRE_MAX_MESSAGE);
	expect_results_bytes(w.p, w.n, EMV_WIRE_TOO_BIG, NULL, __LINE__);
	free(w.p);
	free(inner.p);

	/* and a few thousand of them are merely invalid */
	memset(&w, 0, sizeof w);
	b_uint(&w, 1, 1);
	b_str(&w, 2, "j");
	b_str(&w, 3, "b");
	b_str(&w, 4, "w");
	for (size_t i = 0; i < 5000; i++)
		b_put(&w, "\x4a\x00", 2);
	expect_results_bytes(w.p, w.n, EMV_WIRE_INVALID, "results[0].status: missing or empty", __LINE__);
	free(w.p);
}

/* ---- helpers ---- */

static void do_test_batch_key(void **state)
{
	char out[EMV_WIRE_KEY_MAX], small[12];
	static char long253[254];

	(void)state;
	assert_int_equal(emv_wire_batch_key("example.com", 0, out, sizeof out), EMV_OK);
	assert_string_equal(out, "example.com");
	assert_int_equal(emv_wire_batch_key("gmail.com", 3, out, sizeof out), EMV_OK);
	assert_string_equal(out, "gmail.com#3");
	assert_int_equal(emv_wire_batch_key("xn--bcher-kva.example", 4294967295u, out, sizeof out), EMV_OK);
	assert_string_equal(out, "xn--bcher-kva.example#4294967295");
	memset(long253, 'a', 253);
	long253[63] = long253[127] = long253[191] = '.';
	assert_int_equal(emv_wire_batch_key(long253, 4294967295u, out, sizeof out), EMV_OK);
	assert_int_equal(strlen(out), 253 + 11);

	assert_int_equal(emv_wire_batch_key("example.com", 0, small, sizeof small), EMV_OK);
	assert_int_equal(emv_wire_batch_key("example.com", 1, small, sizeof small), EMV_ERR);
	assert_string_equal(small, "");
	assert_int_equal(emv_wire_batch_key("Example.com", 0, out, sizeof out), EMV_ERR);
	assert_string_equal(out, "");
	assert_int_equal(emv_wire_batch_key("a#1.com", 0, out, sizeof out), EMV_ERR);
	assert_int_equal(emv_wire_batch_key("", 0, out, sizeof out), EMV_ERR);
	assert_int_equal(emv_wire_batch_key(NULL, 0, out, sizeof out), EMV_ERR);
	assert_int_equal(emv_wire_batch_key("example.com", 0, out, 0), EMV_ERR);
}

static void do_test_status_names(void **state)
{
	(void)state;
	assert_string_equal(emv_wire_status_name(EMV_WIRE_OK), "ok");
	assert_string_equal(emv_wire_status_name(EMV_WIRE_TOO_BIG), "too_big");
	assert_string_equal(emv_wire_status_name(EMV_WIRE_MALFORMED), "malformed");
	assert_string_equal(emv_wire_status_name(EMV_WIRE_SCHEMA_UNSUPPORTED), "schema_unsupported");
	assert_string_equal(emv_wire_status_name(EMV_WIRE_INVALID), "invalid");
	assert_string_equal(emv_wire_status_name(EMV_WIRE__COUNT), "?");
	assert_string_equal(emv_wire_status_name((emv_wire_status)-1), "?");
}

/* The error buffer may be small or absent; nothing overflows. */
static void do_test_error_buffer(void **state)
{
	char tiny[8];
	emv_wire_batch *d;

	(void)state;
	BATCH_CASE(m->domain = "", EMV_WIRE_INVALID, "domain: missing or empty");
	assert_int_equal(emv_wire_batch_decode("\x08\x02", 2, &d, tiny, sizeof tiny), EMV_WIRE_SCHEMA_UNSUPPORTED);
	assert_string_equal(tiny, "schema ");
	assert_int_equal(emv_wire_batch_decode("\x08\x02", 2, &d, NULL, 0), EMV_WIRE_SCHEMA_UNSUPPORTED);
	assert_int_equal(emv_wire_batch_decode("\x08", 1, &d, tiny, 1), EMV_WIRE_MALFORMED);
	assert_string_equal(tiny, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_batch_round_trip),
		cmocka_unit_test(do_test_batch_reroute_fields),
		cmocka_unit_test(do_test_ipstate_round_trip),
		cmocka_unit_test(do_test_ipstate_rejects),
		cmocka_unit_test(do_test_batch_empty_optionals),
		cmocka_unit_test(do_test_batch_10000_addresses),
		cmocka_unit_test(do_test_batch_utf8_local),
		cmocka_unit_test(do_test_batch_invalid_utf8),
		cmocka_unit_test(do_test_batch_field_errors),
		cmocka_unit_test(do_test_batch_domain_errors),
		cmocka_unit_test(do_test_batch_local_errors),
		cmocka_unit_test(do_test_batch_duplicate_ids),
		cmocka_unit_test(do_test_results_round_trip),
		cmocka_unit_test(do_test_results_empty_optionals),
		cmocka_unit_test(do_test_results_field_errors),
		cmocka_unit_test(do_test_results_name_errors),
		cmocka_unit_test(do_test_results_code_errors),
		cmocka_unit_test(do_test_results_text_errors),
		cmocka_unit_test(do_test_results_transcript_limit),
		cmocka_unit_test(do_test_encode_rejects),
		cmocka_unit_test(do_test_schema_versions),
		cmocka_unit_test(do_test_nul_in_string),
		cmocka_unit_test(do_test_unknown_fields),
		cmocka_unit_test(do_test_non_canonical),
		cmocka_unit_test(do_test_truncated),
		cmocka_unit_test(do_test_garbage),
		cmocka_unit_test(do_test_wrong_type),
		cmocka_unit_test(do_test_size_limits),
		cmocka_unit_test(do_test_decode_memory_bound),
		cmocka_unit_test(do_test_batch_key),
		cmocka_unit_test(do_test_status_names),
		cmocka_unit_test(do_test_error_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
