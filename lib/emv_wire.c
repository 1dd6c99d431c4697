/* SPDX-License-Identifier: Apache-2.0 */
/* emv_wire.c - VerifyBatch / VerifyResults codec (see emv_wire.h). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emailverify.pb-c.h"
#include "emv_classify.h"
#include "emv_reply.h"
#include "emv_utf8.h"
#include "emv_util.h"
#include "emv_wire.h"

#define SCAN_DEPTH_MAX 8 /* our messages nest three deep */

static const char *const status_names[EMV_WIRE__COUNT] = {
	"ok", "too_big", "malformed", "schema_unsupported", "invalid",
};

const char *emv_wire_status_name(emv_wire_status s)
{
	return (unsigned)s < EMV_WIRE__COUNT ? status_names[s] : "?";
}

/* ---- errors ---- */

typedef struct {
	char *buf;
	size_t len;
} errout;

static int bad(errout *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write the message; returns EMV_ERR so that checks read "return bad(...)". */
static int bad(errout *e, const char *fmt, ...)
{
	va_list ap;

	if (!e->buf || e->len == 0)
		return EMV_ERR;
	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
	return EMV_ERR;
}

static void err_clear(char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
}

/* A byte as shown in a message: 'x' when visible ASCII, else 0xNN. */
static const char *show(char buf[8], unsigned char c)
{
	if (c > 0x20 && c < 0x7f)
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", c);
	return buf;
}

/* ---- strings ---- */

typedef enum {
	CS_VISIBLE, /* 0x21..0x7e: ids, names, host names */
	CS_PRINT,   /* 0x20..0x7e: one reply line */
	CS_LINES,   /* CS_PRINT and '\n': a reply of several lines */
	CS_UTF8,    /* UTF-8 without control characters: a command */
	CS_LOCAL,   /* CS_UTF8 without '<' '>': a local part (it goes inside RCPT TO:<>) */
} charset;

static const char *const charset_what[] = {
	"visible ASCII",
	"printable ASCII",
	"printable ASCII or a line feed",
};

/*
 * s (NULL reads as "") is min..max bytes of charset cs.  At most max + 1
 * bytes of s are read, so s may be a field of max + 1 bytes that lacks its
 * NUL (a caller's bug, reported as too long).
 */
static int check_str(errout *e, const char *pre, const char *name, const char *s, size_t min, size_t max, charset cs)
{
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t n = strnlen((const char *)u, max + 1);
	char b[8];

	if (n < min)
		return bad(e, "%s%s: missing or empty", pre, name);
	if (n > max)
		return bad(e, "%s%s: more than %zu bytes", pre, name, max);
	for (size_t i = 0; i < n;) {
		if (cs == CS_UTF8 || cs == CS_LOCAL) {
			uint32_t cp;
			size_t k = emv_utf8_decode(u + i, n - i, &cp);

			if (k == 0)
				return bad(e, "%s%s: invalid UTF-8 at offset %zu", pre, name, i);
			if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
				return bad(e, "%s%s: control character U+%04" PRIX32 " at offset %zu", pre, name, cp,
					   i);
			if (cs == CS_LOCAL && (cp == '<' || cp == '>'))
				return bad(e, "%s%s: '%c' at offset %zu is not allowed", pre, name, (char)cp, i);
			i += k;
			continue;
		}
		if (!((u[i] > 0x20 && u[i] < 0x7f) || (u[i] == ' ' && cs != CS_VISIBLE) ||
		      (u[i] == '\n' && cs == CS_LINES)))
			return bad(e, "%s%s: byte %s at offset %zu is not %s", pre, name, show(b, u[i]), i,
				   charset_what[cs]);
		i++;
	}
	return EMV_OK;
}

/* Lower-case LDH labels of 1..63 bytes, no hyphen at either end, dot-separated. */
static int check_domain(errout *e, const char *pre, const char *name, const char *s)
{
	size_t n = strnlen(s, EMV_HOST_NAME_MAX + 1), start = 0;
	char b[8];

	if (n == 0)
		return bad(e, "%s%s: missing or empty", pre, name);
	if (n > EMV_HOST_NAME_MAX)
		return bad(e, "%s%s: more than %d bytes", pre, name, EMV_HOST_NAME_MAX);
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)s[i] : '.';

		if (c == '.') {
			size_t ll = i - start;

			if (ll == 0)
				return bad(e, "%s%s: empty label at offset %zu", pre, name, start);
			if (ll > EMV_WIRE_LABEL_MAX)
				return bad(e, "%s%s: label at offset %zu is %zu bytes, the limit is %d", pre, name,
					   start, ll, EMV_WIRE_LABEL_MAX);
			if (s[start] == '-' || s[i - 1] == '-')
				return bad(e, "%s%s: label at offset %zu %s with a hyphen", pre, name, start,
					   s[start] == '-' ? "starts" : "ends");
			start = i + 1;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
			return bad(e, "%s%s: byte %s at offset %zu is not a lower-case letter, digit, hyphen or dot",
				   pre, name, show(b, c), i);
		}
	}
	return EMV_OK;
}

/* "" or exactly an RFC 3463 code as emv_enhanced_parse() writes it. */
static int check_enhanced(errout *e, const char *pre, const char *name, const char *s)
{
	char out[16], shown[EMV_WIRE_ENHANCED_MAX + 1];
	size_t n = strnlen(s, EMV_WIRE_ENHANCED_MAX + 1);

	if (n == 0)
		return EMV_OK;
	if (n > EMV_WIRE_ENHANCED_MAX)
		return bad(e, "%s%s: more than %d bytes", pre, name, EMV_WIRE_ENHANCED_MAX);
	if (emv_enhanced_parse(s, n, out, sizeof out) == 0 || strcmp(out, s) != 0) {
		emv_sanitize(shown, sizeof shown, s, n);
		return bad(e, "%s%s: '%s' is not an RFC 3463 code", pre, name, shown);
	}
	return EMV_OK;
}

static int check_code(errout *e, const char *pre, const char *name, unsigned code)
{
	if (code != 0 && (code < 200 || code > 599))
		return bad(e, "%s%s: %u is not 0 or 200..599", pre, name, code);
	return EMV_OK;
}

static int check_bool(errout *e, const char *pre, const char *name, int v)
{
	if (v != 0 && v != 1)
		return bad(e, "%s%s: %d is not 0 or 1", pre, name, v);
	return EMV_OK;
}

/* "" or an IPv4 / IPv6 address in text form. */
static int check_ip(errout *e, const char *pre, const char *name, const char *s)
{
	unsigned char addr[16];

	if (check_str(e, pre, name, s, 0, EMV_WIRE_IP_MAX, CS_VISIBLE) != EMV_OK)
		return EMV_ERR;
	if (s[0] && inet_pton(AF_INET, s, addr) != 1 && inet_pton(AF_INET6, s, addr) != 1)
		return bad(e, "%s%s: '%s' is not an IPv4 or IPv6 address", pre, name, s);
	return EMV_OK;
}

/* ---- ids: >= 1 and unique within one message ---- */

struct id_at {
	uint64_t id;
	size_t at;
};

static int id_at_cmp(const void *a, const void *b)
{
	const struct id_at *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->at < y->at ? -1 : x->at > y->at;
}

/* v holds n ids with their index; sorted here. */
static int check_unique(errout *e, const char *what, struct id_at *v, size_t n)
{
	qsort(v, n, sizeof *v, id_at_cmp);
	for (size_t i = 1; i < n; i++)
		if (v[i].id == v[i - 1].id)
			return bad(e, "%s[%zu].id: %" PRIu64 " repeats %s[%zu].id", what, v[i].at, v[i].id, what,
				   v[i - 1].at);
	return EMV_OK;
}

/* ---- the rules, on our structs (shared by encode and decode) ---- */

static int check_batch(const emv_wire_batch *b, errout *e)
{
	struct id_at *ids;
	char pre[32];
	int rc;

	if (check_str(e, "", "job_id", b->job_id, 1, EMV_WIRE_ID_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "batch_id", b->batch_id, 1, EMV_WIRE_ID_MAX, CS_VISIBLE) != EMV_OK ||
	    check_domain(e, "", "domain", b->domain) != EMV_OK)
		return EMV_ERR;
	if (b->n_addresses == 0)
		return bad(e, "addresses: none, at least 1 expected");
	if (b->n_addresses > EMV_WIRE_ADDRESSES_MAX)
		return bad(e, "addresses: %zu entries, the limit is %d", b->n_addresses, EMV_WIRE_ADDRESSES_MAX);
	if (!b->addresses)
		return bad(e, "addresses: NULL with n_addresses %zu", b->n_addresses);
	for (size_t i = 0; i < b->n_addresses; i++) {
		const emv_wire_address *a = &b->addresses[i];

		snprintf(pre, sizeof pre, "addresses[%zu].", i);
		if (a->id == 0)
			return bad(e, "%sid: missing (0)", pre);
		if (check_str(e, pre, "local", a->local, 1, EMV_WIRE_LOCAL_MAX, CS_LOCAL) != EMV_OK)
			return EMV_ERR;
	}
	if (b->attempt > EMV_WIRE_ATTEMPT_MAX)
		return bad(e, "attempt: %u, the limit is %d", b->attempt, EMV_WIRE_ATTEMPT_MAX);
	if (b->not_before_ms < 0 || b->not_before_ms > EMV_WIRE_TIME_MAX)
		return bad(e, "not_before: %" PRId64 " is not 0..%" PRId64 " unix ms", b->not_before_ms,
			   EMV_WIRE_TIME_MAX);
	if (b->deadline_ms < 0 || b->deadline_ms > EMV_WIRE_TIME_MAX)
		return bad(e, "deadline: %" PRId64 " is not 0..%" PRId64 " unix ms", b->deadline_ms, EMV_WIRE_TIME_MAX);
	if (check_str(e, "", "region_hint", b->region_hint, 0, EMV_WIRE_REGION_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "avoid_regions", b->avoid_regions, 0, EMV_WIRE_AVOID_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "provider", b->provider, 0, EMV_WIRE_PROVIDER_MAX, CS_VISIBLE) != EMV_OK)
		return EMV_ERR;

	ids = emv_xmalloc(b->n_addresses * sizeof *ids);
	for (size_t i = 0; i < b->n_addresses; i++)
		ids[i] = (struct id_at){ b->addresses[i].id, i };
	rc = check_unique(e, "addresses", ids, b->n_addresses);
	free(ids);
	return rc;
}

static int check_exchange(const emv_wire_exchange *x, const char *pre, errout *e)
{
	if (x->phase < 0 || x->phase >= EMV_PHASE__COUNT)
		return bad(e, "%sphase: %d is not a phase", pre, x->phase);
	if (check_str(e, pre, "command", x->command, 0, EMV_WIRE_COMMAND_MAX, CS_UTF8) != EMV_OK ||
	    check_code(e, pre, "code", x->code) != EMV_OK ||
	    check_enhanced(e, pre, "enhanced", x->enhanced) != EMV_OK ||
	    check_str(e, pre, "text", x->text, 0, EMV_WIRE_REPLY_MAX, CS_LINES) != EMV_OK)
		return EMV_ERR;
	return EMV_OK;
}

static int check_result(const emv_wire_result *r, const char *pre, errout *e)
{
	char xpre[64];

	if (r->id == 0)
		return bad(e, "%sid: missing (0)", pre);
	if ((unsigned)r->status >= EMV_STATUS__COUNT)
		return bad(e, "%sstatus: %d is not a status", pre, (int)r->status);
	if ((unsigned)r->reason >= EMV_REASON__COUNT)
		return bad(e, "%sreason: %d is not a reason", pre, (int)r->reason);
	if (check_code(e, pre, "smtp_code", r->smtp_code) != EMV_OK ||
	    check_enhanced(e, pre, "enhanced_code", r->enhanced_code) != EMV_OK ||
	    check_str(e, pre, "reply", r->reply, 0, EMV_WIRE_REPLY_MAX, CS_PRINT) != EMV_OK ||
	    check_bool(e, pre, "catch_all", r->catch_all) != EMV_OK ||
	    check_bool(e, pre, "temporary", r->temporary) != EMV_OK ||
	    check_str(e, pre, "mx_host", r->mx_host, 0, EMV_WIRE_MX_MAX, CS_VISIBLE) != EMV_OK ||
	    check_ip(e, pre, "mx_ip", r->mx_ip) != EMV_OK || check_ip(e, pre, "source_ip", r->source_ip) != EMV_OK ||
	    check_str(e, pre, "tls", r->tls, 0, EMV_WIRE_TLS_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, pre, "detail", r->detail, 0, EMV_WIRE_DETAIL_MAX, CS_PRINT) != EMV_OK)
		return EMV_ERR;
	if (r->attempts > EMV_WIRE_ATTEMPT_MAX)
		return bad(e, "%sattempts: %u, the limit is %d", pre, r->attempts, EMV_WIRE_ATTEMPT_MAX);
	if (r->retry_at_ms < 0 || r->retry_at_ms > EMV_WIRE_TIME_MAX)
		return bad(e, "%sretry_at: %" PRId64 " is not 0..%" PRId64 " unix ms", pre, r->retry_at_ms,
			   EMV_WIRE_TIME_MAX);
	if (r->n_transcript > EMV_WIRE_TRANSCRIPT_MAX)
		return bad(e, "%stranscript: %zu entries, the limit is %d", pre, r->n_transcript,
			   EMV_WIRE_TRANSCRIPT_MAX);
	if (r->n_transcript && !r->transcript)
		return bad(e, "%stranscript: NULL with n_transcript %zu", pre, r->n_transcript);
	for (size_t i = 0; i < r->n_transcript; i++) {
		snprintf(xpre, sizeof xpre, "%stranscript[%zu].", pre, i);
		if (check_exchange(&r->transcript[i], xpre, e) != EMV_OK)
			return EMV_ERR;
	}
	return EMV_OK;
}

static int check_results(const emv_wire_results *r, errout *e)
{
	struct id_at *ids;
	char pre[32];
	int rc;

	if (check_str(e, "", "job_id", r->job_id, 1, EMV_WIRE_ID_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "batch_id", r->batch_id, 1, EMV_WIRE_ID_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "worker", r->worker, 1, EMV_WIRE_WORKER_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "region", r->region, 0, EMV_WIRE_REGION_MAX, CS_VISIBLE) != EMV_OK ||
	    check_ip(e, "", "source_ip", r->source_ip) != EMV_OK ||
	    check_str(e, "", "mx", r->mx, 0, EMV_WIRE_MX_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "tls", r->tls, 0, EMV_WIRE_TLS_MAX, CS_VISIBLE) != EMV_OK)
		return EMV_ERR;
	if (r->n_results == 0)
		return bad(e, "results: none, at least 1 expected");
	if (r->n_results > EMV_WIRE_RESULTS_MAX)
		return bad(e, "results: %zu entries, the limit is %d", r->n_results, EMV_WIRE_RESULTS_MAX);
	if (!r->results)
		return bad(e, "results: NULL with n_results %zu", r->n_results);
	for (size_t i = 0; i < r->n_results; i++) {
		snprintf(pre, sizeof pre, "results[%zu].", i);
		if (check_result(&r->results[i], pre, e) != EMV_OK)
			return EMV_ERR;
	}

	ids = emv_xmalloc(r->n_results * sizeof *ids);
	for (size_t i = 0; i < r->n_results; i++)
		ids[i] = (struct id_at){ r->results[i].id, i };
	rc = check_unique(e, "results", ids, r->n_results);
	free(ids);
	return rc;
}

/* ---- unpacking untrusted bytes ---- */

/* protobuf-c allocations of one decode, counted against a bound. */
struct unpacked {
	size_t used;
	int over;
	ProtobufCAllocator alloc;
	ProtobufCMessage *msg;
};

static void *budget_alloc(void *data, size_t size)
{
	struct unpacked *u = data;

	if (size > EMV_WIRE_DECODE_MEM_MAX - u->used) {
		u->over = 1;
		return NULL; /* protobuf-c fails the unpack and frees what it had */
	}
	u->used += size;
	return emv_xmalloc(size);
}

static void budget_free(void *data, void *p)
{
	free(p);
}

static emv_wire_status unpack(struct unpacked *u, const ProtobufCMessageDescriptor *d, const void *data, size_t len,
			      errout *e)
{
	u->used = 0;
	u->over = 0;
	u->alloc = (ProtobufCAllocator){ budget_alloc, budget_free, u };
	u->msg = NULL;
	if (len > EMV_WIRE_MAX_MESSAGE) {
		bad(e, "%s: %zu bytes, the limit is %u", d->short_name, len, EMV_WIRE_MAX_MESSAGE);
		return EMV_WIRE_TOO_BIG;
	}
	u->msg = protobuf_c_message_unpack(d, &u->alloc, len, len ? data : (const void *)"");
	if (u->msg)
		return EMV_WIRE_OK;
	if (u->over) {
		bad(e, "%s: decoding %zu bytes needs more than %u MiB", d->short_name, len,
		    EMV_WIRE_DECODE_MEM_MAX >> 20);
		return EMV_WIRE_TOO_BIG;
	}
	bad(e, "%s: not a valid protobuf encoding (%zu bytes)", d->short_name, len);
	return EMV_WIRE_MALFORMED;
}

static void unpacked_free(struct unpacked *u)
{
	if (u->msg)
		protobuf_c_message_free_unpacked(u->msg, &u->alloc);
	u->msg = NULL;
}

static int get_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t c;

		if (*i >= n)
			return 0;
		c = p[(*i)++];
		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			return 1;
		}
	}
	return 0;
}

/*
 * protobuf-c copies a string field up to its length and NUL-terminates it,
 * so "ab\0cd" would reach us as "ab".  Walk the wire form (already accepted
 * by protobuf-c, still read through a bounded cursor) and reject a NUL byte
 * in any string field of a known message.  pre names where we are.
 */
static emv_wire_status scan_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, const char *pre,
				unsigned depth, errout *e)
{
	size_t seen[32] = { 0 }, i = 0;

	if (depth > SCAN_DEPTH_MAX)
		return EMV_WIRE_OK; /* nothing of ours nests this deep */
	while (i < n) {
		const ProtobufCFieldDescriptor *f;
		uint64_t key, v;
		const uint8_t *nul;
		char path[128];
		size_t at = 0;

		if (!get_varint(p, n, &i, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
			goto malformed;
		switch (key & 7) {
		case 0: /* varint */
			if (!get_varint(p, n, &i, &v))
				goto malformed;
			continue;
		case 1: /* 64-bit */
			if (n - i < 8)
				goto malformed;
			i += 8;
			continue;
		case 5: /* 32-bit */
			if (n - i < 4)
				goto malformed;
			i += 4;
			continue;
		case 2: /* length-delimited */
			if (!get_varint(p, n, &i, &v) || v > n - i)
				goto malformed;
			break;
		default: /* groups: protobuf-c does not accept them either */ goto malformed;
		}
		f = protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3));
		if (f) {
			size_t fi = (size_t)(f - d->fields);

			if (fi < sizeof seen / sizeof seen[0])
				at = seen[fi]++;
			if (f->label == PROTOBUF_C_LABEL_REPEATED)
				snprintf(path, sizeof path, "%s%s[%zu]", pre, f->name, at);
			else
				snprintf(path, sizeof path, "%s%s", pre, f->name);
			if (f->type == PROTOBUF_C_TYPE_STRING && (nul = memchr(p + i, '\0', (size_t)v))) {
				bad(e, "%s: NUL byte at offset %zu", path, (size_t)(nul - (p + i)));
				return EMV_WIRE_INVALID;
			}
			if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
				emv_wire_status st;

				strncat(path, ".", sizeof path - strlen(path) - 1);
				st = scan_nul(f->descriptor, p + i, (size_t)v, path, depth + 1, e);
				if (st != EMV_WIRE_OK)
					return st;
			}
		}
		i += (size_t)v;
	}
	return EMV_WIRE_OK;
malformed:
	bad(e, "%s: not a valid protobuf encoding", d->short_name);
	return EMV_WIRE_MALFORMED;
}

static emv_wire_status check_schema(uint32_t v, errout *e)
{
	if (v == 0 || v > EMV_WIRE_SCHEMA) {
		bad(e, "schema version %" PRIu32 " not supported", v);
		return EMV_WIRE_SCHEMA_UNSUPPORTED;
	}
	return EMV_WIRE_OK;
}

/* Copy a decoded string into a field of dstsize bytes, or say how long it is. */
static int take(char *dst, size_t dstsize, const char *src, const char *pre, const char *name, errout *e)
{
	size_t n = src ? strlen(src) : 0;

	dst[0] = '\0';
	if (n >= dstsize)
		return bad(e, "%s%s: %zu bytes, the limit is %zu", pre, name, n, dstsize - 1);
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
	return EMV_OK;
}

static int take_dup(char **dst, const char *src, size_t max, const char *pre, const char *name, errout *e)
{
	size_t n = src ? strlen(src) : 0;

	if (n > max)
		return bad(e, "%s%s: %zu bytes, the limit is %zu", pre, name, n, max);
	*dst = emv_xstrndup(src ? src : "", n);
	return EMV_OK;
}

/* A status, reason or phase name through its lookup function. */
static int take_name(int *dst, const char *src, int (*lookup)(const char *), const char *what, const char *pre,
		     const char *name, errout *e)
{
	char buf[EMV_WIRE_NAME_MAX + 1], shown[EMV_WIRE_NAME_MAX + 1];

	if (take(buf, sizeof buf, src, pre, name, e) != EMV_OK)
		return EMV_ERR;
	if (!buf[0])
		return bad(e, "%s%s: missing or empty", pre, name);
	if ((*dst = lookup(buf)) < 0) {
		emv_sanitize(shown, sizeof shown, buf, strlen(buf));
		return bad(e, "%s%s: '%s' is not a %s name", pre, name, shown, what);
	}
	return EMV_OK;
}

/* ---- VerifyBatch ---- */

emv_wire_status emv_wire_batch_encode(const emv_wire_batch *b, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	Emailverify__VerifyBatch m = EMAILVERIFY__VERIFY_BATCH__INIT;
	Emailverify__Address *as, **ap;
	errout e = { err, errlen };
	size_t size;

	*buf = NULL;
	*len = 0;
	err_clear(err, errlen);
	if (check_batch(b, &e) != EMV_OK)
		return EMV_WIRE_INVALID;

	/* protobuf-c's fields are char *; pack only reads them */
	m.schema_version = EMV_WIRE_SCHEMA;
	m.job_id = (char *)b->job_id;
	m.batch_id = (char *)b->batch_id;
	m.domain = (char *)b->domain;
	m.attempt = b->attempt;
	m.not_before = b->not_before_ms;
	m.deadline = b->deadline_ms;
	m.region_hint = (char *)b->region_hint;
	m.avoid_regions = (char *)b->avoid_regions;
	m.provider = (char *)b->provider;
	as = emv_xcalloc(b->n_addresses, sizeof *as);
	ap = emv_xcalloc(b->n_addresses, sizeof *ap);
	for (size_t i = 0; i < b->n_addresses; i++) {
		emailverify__address__init(&as[i]);
		as[i].id = b->addresses[i].id;
		as[i].local = (char *)b->addresses[i].local;
		as[i].flags = b->addresses[i].flags;
		ap[i] = &as[i];
	}
	m.n_addresses = b->n_addresses;
	m.addresses = ap;

	size = emailverify__verify_batch__get_packed_size(&m);
	if (size > EMV_WIRE_MAX_MESSAGE) {
		bad(&e, "VerifyBatch: %zu bytes encoded, the limit is %u", size, EMV_WIRE_MAX_MESSAGE);
	} else {
		*buf = emv_xmalloc(size);
		if (emailverify__verify_batch__pack(&m, *buf) != size)
			abort(); /* protobuf-c disagrees with itself */
		*len = size;
	}
	free(as);
	free(ap);
	return *buf ? EMV_WIRE_OK : EMV_WIRE_TOO_BIG;
}

static int batch_from_pb(const Emailverify__VerifyBatch *m, emv_wire_batch *b, errout *e)
{
	char pre[32];

	if (take(b->job_id, sizeof b->job_id, m->job_id, "", "job_id", e) != EMV_OK ||
	    take(b->batch_id, sizeof b->batch_id, m->batch_id, "", "batch_id", e) != EMV_OK ||
	    take(b->domain, sizeof b->domain, m->domain, "", "domain", e) != EMV_OK ||
	    take(b->region_hint, sizeof b->region_hint, m->region_hint, "", "region_hint", e) != EMV_OK ||
	    take(b->avoid_regions, sizeof b->avoid_regions, m->avoid_regions, "", "avoid_regions", e) != EMV_OK ||
	    take(b->provider, sizeof b->provider, m->provider, "", "provider", e) != EMV_OK)
		return EMV_ERR;
	b->attempt = m->attempt;
	b->not_before_ms = m->not_before;
	b->deadline_ms = m->deadline;
	if (m->n_addresses > EMV_WIRE_ADDRESSES_MAX) /* before allocating for them */
		return bad(e, "addresses: %zu entries, the limit is %d", m->n_addresses, EMV_WIRE_ADDRESSES_MAX);
	b->addresses = emv_xcalloc(m->n_addresses ? m->n_addresses : 1, sizeof *b->addresses);
	b->n_addresses = m->n_addresses;
	for (size_t i = 0; i < m->n_addresses; i++) {
		const Emailverify__Address *a = m->addresses[i];

		snprintf(pre, sizeof pre, "addresses[%zu].", i);
		b->addresses[i].id = a->id;
		b->addresses[i].flags = a->flags;
		if (take(b->addresses[i].local, sizeof b->addresses[i].local, a->local, pre, "local", e) != EMV_OK)
			return EMV_ERR;
	}
	return EMV_OK;
}

emv_wire_status emv_wire_batch_decode(const void *data, size_t len, emv_wire_batch **out, char *err, size_t errlen)
{
	const Emailverify__VerifyBatch *m;
	struct unpacked u;
	errout e = { err, errlen };
	emv_wire_batch *b = NULL;
	emv_wire_status st;

	*out = NULL;
	err_clear(err, errlen);
	st = unpack(&u, &emailverify__verify_batch__descriptor, data, len, &e);
	if (st != EMV_WIRE_OK)
		return st;
	m = (const Emailverify__VerifyBatch *)u.msg;
	st = check_schema(m->schema_version, &e);
	if (st == EMV_WIRE_OK)
		st = scan_nul(u.msg->descriptor, data, len, "", 0, &e);
	if (st == EMV_WIRE_OK) {
		b = emv_xcalloc(1, sizeof *b);
		if (batch_from_pb(m, b, &e) != EMV_OK || check_batch(b, &e) != EMV_OK) {
			emv_wire_batch_free(b);
			b = NULL;
			st = EMV_WIRE_INVALID;
		}
	}
	unpacked_free(&u);
	*out = b;
	return st;
}

void emv_wire_batch_free(emv_wire_batch *b)
{
	if (!b)
		return;
	free(b->addresses);
	free(b);
}

int emv_wire_batch_equal(const emv_wire_batch *a, const emv_wire_batch *b)
{
	if (strcmp(a->job_id, b->job_id) != 0 || strcmp(a->batch_id, b->batch_id) != 0 ||
	    strcmp(a->domain, b->domain) != 0 || a->n_addresses != b->n_addresses || a->attempt != b->attempt ||
	    a->not_before_ms != b->not_before_ms || a->deadline_ms != b->deadline_ms ||
	    strcmp(a->region_hint, b->region_hint) != 0 || strcmp(a->avoid_regions, b->avoid_regions) != 0 ||
	    strcmp(a->provider, b->provider) != 0)
		return 0;
	for (size_t i = 0; i < a->n_addresses; i++) {
		const emv_wire_address *x = &a->addresses[i], *y = &b->addresses[i];

		if (x->id != y->id || x->flags != y->flags || strcmp(x->local, y->local) != 0)
			return 0;
	}
	return 1;
}

int emv_wire_batch_key(const char *domain, unsigned shard, char *out, size_t outlen)
{
	errout e = { NULL, 0 };
	int n;

	if (!out || outlen == 0)
		return EMV_ERR;
	out[0] = '\0';
	if (!domain || check_domain(&e, "", "domain", domain) != EMV_OK)
		return EMV_ERR;
	n = shard ? snprintf(out, outlen, "%s#%u", domain, shard) : snprintf(out, outlen, "%s", domain);
	if (n < 0 || (size_t)n >= outlen) {
		out[0] = '\0';
		return EMV_ERR;
	}
	return EMV_OK;
}

/* ---- VerifyResults ---- */

static const char *nz(const char *s)
{
	return s ? s : "";
}

emv_wire_status emv_wire_results_encode(const emv_wire_results *r, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	Emailverify__VerifyResults m = EMAILVERIFY__VERIFY_RESULTS__INIT;
	Emailverify__Result *rs, **rp;
	Emailverify__SmtpReply *xs, **xp;
	errout e = { err, errlen };
	size_t size, nx = 0, k = 0;

	*buf = NULL;
	*len = 0;
	err_clear(err, errlen);
	if (check_results(r, &e) != EMV_OK)
		return EMV_WIRE_INVALID;

	m.schema_version = EMV_WIRE_SCHEMA;
	m.job_id = (char *)r->job_id;
	m.batch_id = (char *)r->batch_id;
	m.worker = (char *)r->worker;
	m.region = (char *)r->region;
	m.source_ip = (char *)r->source_ip;
	m.mx = (char *)r->mx;
	m.tls = (char *)r->tls;
	for (size_t i = 0; i < r->n_results; i++)
		nx += r->results[i].n_transcript;
	rs = emv_xcalloc(r->n_results, sizeof *rs);
	rp = emv_xcalloc(r->n_results, sizeof *rp);
	xs = emv_xcalloc(nx, sizeof *xs);
	xp = emv_xcalloc(nx, sizeof *xp);
	for (size_t i = 0; i < r->n_results; i++) {
		const emv_wire_result *in = &r->results[i];
		Emailverify__Result *o = &rs[i];

		emailverify__result__init(o);
		o->id = in->id;
		o->status = (char *)emv_status_name(in->status);
		o->reason = (char *)emv_reason_name(in->reason);
		o->smtp_code = in->smtp_code;
		o->enhanced_code = (char *)in->enhanced_code;
		o->reply = (char *)nz(in->reply);
		o->catch_all = in->catch_all;
		o->attempts = in->attempts;
		o->duration_ms = in->duration_ms;
		o->flags = in->flags;
		o->temporary = in->temporary;
		o->mx_host = (char *)in->mx_host;
		o->mx_ip = (char *)in->mx_ip;
		o->source_ip = (char *)in->source_ip;
		o->tls = (char *)in->tls;
		o->detail = (char *)nz(in->detail);
		o->retry_at = in->retry_at_ms;
		o->n_transcript = in->n_transcript;
		o->transcript = in->n_transcript ? &xp[k] : NULL;
		for (size_t j = 0; j < in->n_transcript; j++, k++) {
			const emv_wire_exchange *x = &in->transcript[j];

			emailverify__smtp_reply__init(&xs[k]);
			xs[k].phase = (char *)emv_phase_name(x->phase);
			xs[k].command = (char *)nz(x->command);
			xs[k].code = x->code;
			xs[k].enhanced = (char *)x->enhanced;
			xs[k].text = (char *)nz(x->text);
			xp[k] = &xs[k];
		}
		rp[i] = o;
	}
	m.n_results = r->n_results;
	m.results = rp;

	size = emailverify__verify_results__get_packed_size(&m);
	if (size > EMV_WIRE_MAX_MESSAGE) {
		bad(&e, "VerifyResults: %zu bytes encoded, the limit is %u", size, EMV_WIRE_MAX_MESSAGE);
	} else {
		*buf = emv_xmalloc(size);
		if (emailverify__verify_results__pack(&m, *buf) != size)
			abort();
		*len = size;
	}
	free(rs);
	free(rp);
	free(xs);
	free(xp);
	return *buf ? EMV_WIRE_OK : EMV_WIRE_TOO_BIG;
}

static int exchange_from_pb(const Emailverify__SmtpReply *m, emv_wire_exchange *x, const char *pre, errout *e)
{
	if (take_name(&x->phase, m->phase, emv_phase_from_name, "phase", pre, "phase", e) != EMV_OK ||
	    take_dup(&x->command, m->command, EMV_WIRE_COMMAND_MAX, pre, "command", e) != EMV_OK ||
	    take(x->enhanced, sizeof x->enhanced, m->enhanced, pre, "enhanced", e) != EMV_OK ||
	    take_dup(&x->text, m->text, EMV_WIRE_REPLY_MAX, pre, "text", e) != EMV_OK)
		return EMV_ERR;
	x->code = m->code;
	return EMV_OK;
}

static int result_from_pb(const Emailverify__Result *m, emv_wire_result *r, const char *pre, errout *e)
{
	char xpre[64];
	int v;

	r->id = m->id;
	if (take_name(&v, m->status, emv_status_from_name, "status", pre, "status", e) != EMV_OK)
		return EMV_ERR;
	r->status = (emv_status)v;
	if (take_name(&v, m->reason, emv_reason_from_name, "reason", pre, "reason", e) != EMV_OK)
		return EMV_ERR;
	r->reason = (emv_reason)v;
	r->smtp_code = m->smtp_code;
	if (take(r->enhanced_code, sizeof r->enhanced_code, m->enhanced_code, pre, "enhanced_code", e) != EMV_OK ||
	    take_dup(&r->reply, m->reply, EMV_WIRE_REPLY_MAX, pre, "reply", e) != EMV_OK ||
	    take(r->mx_host, sizeof r->mx_host, m->mx_host, pre, "mx_host", e) != EMV_OK ||
	    take(r->mx_ip, sizeof r->mx_ip, m->mx_ip, pre, "mx_ip", e) != EMV_OK ||
	    take(r->source_ip, sizeof r->source_ip, m->source_ip, pre, "source_ip", e) != EMV_OK ||
	    take(r->tls, sizeof r->tls, m->tls, pre, "tls", e) != EMV_OK ||
	    take_dup(&r->detail, m->detail, EMV_WIRE_DETAIL_MAX, pre, "detail", e) != EMV_OK)
		return EMV_ERR;
	r->catch_all = m->catch_all ? 1 : 0;
	r->attempts = m->attempts;
	r->duration_ms = m->duration_ms;
	r->flags = m->flags;
	r->temporary = m->temporary ? 1 : 0;
	r->retry_at_ms = m->retry_at;
	if (m->n_transcript > EMV_WIRE_TRANSCRIPT_MAX)
		return bad(e, "%stranscript: %zu entries, the limit is %d", pre, m->n_transcript,
			   EMV_WIRE_TRANSCRIPT_MAX);
	if (m->n_transcript) {
		r->transcript = emv_xcalloc(m->n_transcript, sizeof *r->transcript);
		r->n_transcript = m->n_transcript;
	}
	for (size_t i = 0; i < m->n_transcript; i++) {
		snprintf(xpre, sizeof xpre, "%stranscript[%zu].", pre, i);
		if (exchange_from_pb(m->transcript[i], &r->transcript[i], xpre, e) != EMV_OK)
			return EMV_ERR;
	}
	return EMV_OK;
}

static int results_from_pb(const Emailverify__VerifyResults *m, emv_wire_results *r, errout *e)
{
	char pre[32];

	if (take(r->job_id, sizeof r->job_id, m->job_id, "", "job_id", e) != EMV_OK ||
	    take(r->batch_id, sizeof r->batch_id, m->batch_id, "", "batch_id", e) != EMV_OK ||
	    take(r->worker, sizeof r->worker, m->worker, "", "worker", e) != EMV_OK ||
	    take(r->region, sizeof r->region, m->region, "", "region", e) != EMV_OK ||
	    take(r->source_ip, sizeof r->source_ip, m->source_ip, "", "source_ip", e) != EMV_OK ||
	    take(r->mx, sizeof r->mx, m->mx, "", "mx", e) != EMV_OK ||
	    take(r->tls, sizeof r->tls, m->tls, "", "tls", e) != EMV_OK)
		return EMV_ERR;
	if (m->n_results > EMV_WIRE_RESULTS_MAX)
		return bad(e, "results: %zu entries, the limit is %d", m->n_results, EMV_WIRE_RESULTS_MAX);
	r->results = emv_xcalloc(m->n_results ? m->n_results : 1, sizeof *r->results);
	r->n_results = m->n_results;
	for (size_t i = 0; i < m->n_results; i++) {
		snprintf(pre, sizeof pre, "results[%zu].", i);
		if (result_from_pb(m->results[i], &r->results[i], pre, e) != EMV_OK)
			return EMV_ERR;
	}
	return EMV_OK;
}

emv_wire_status emv_wire_results_decode(const void *data, size_t len, emv_wire_results **out, char *err, size_t errlen)
{
	const Emailverify__VerifyResults *m;
	struct unpacked u;
	errout e = { err, errlen };
	emv_wire_results *r = NULL;
	emv_wire_status st;

	*out = NULL;
	err_clear(err, errlen);
	st = unpack(&u, &emailverify__verify_results__descriptor, data, len, &e);
	if (st != EMV_WIRE_OK)
		return st;
	m = (const Emailverify__VerifyResults *)u.msg;
	st = check_schema(m->schema_version, &e);
	if (st == EMV_WIRE_OK)
		st = scan_nul(u.msg->descriptor, data, len, "", 0, &e);
	if (st == EMV_WIRE_OK) {
		r = emv_xcalloc(1, sizeof *r);
		if (results_from_pb(m, r, &e) != EMV_OK || check_results(r, &e) != EMV_OK) {
			emv_wire_results_free(r);
			r = NULL;
			st = EMV_WIRE_INVALID;
		}
	}
	unpacked_free(&u);
	*out = r;
	return st;
}

void emv_wire_results_free(emv_wire_results *r)
{
	if (!r)
		return;
	for (size_t i = 0; r->results && i < r->n_results; i++) {
		emv_wire_result *x = &r->results[i];

		for (size_t j = 0; x->transcript && j < x->n_transcript; j++) {
			free(x->transcript[j].command);
			free(x->transcript[j].text);
		}
		free(x->transcript);
		free(x->reply);
		free(x->detail);
	}
	free(r->results);
	free(r);
}

static int exchange_equal(const emv_wire_exchange *a, const emv_wire_exchange *b)
{
	return a->phase == b->phase && a->code == b->code && strcmp(a->enhanced, b->enhanced) == 0 &&
	       strcmp(nz(a->command), nz(b->command)) == 0 && strcmp(nz(a->text), nz(b->text)) == 0;
}

static int result_equal(const emv_wire_result *a, const emv_wire_result *b)
{
	if (a->id != b->id || a->status != b->status || a->reason != b->reason || a->smtp_code != b->smtp_code ||
	    strcmp(a->enhanced_code, b->enhanced_code) != 0 || strcmp(nz(a->reply), nz(b->reply)) != 0 ||
	    a->catch_all != b->catch_all || a->attempts != b->attempts || a->duration_ms != b->duration_ms ||
	    a->flags != b->flags || a->temporary != b->temporary || a->n_transcript != b->n_transcript ||
	    strcmp(a->mx_host, b->mx_host) != 0 || strcmp(a->mx_ip, b->mx_ip) != 0 ||
	    strcmp(a->source_ip, b->source_ip) != 0 || strcmp(a->tls, b->tls) != 0 ||
	    strcmp(nz(a->detail), nz(b->detail)) != 0 || a->retry_at_ms != b->retry_at_ms)
		return 0;
	for (size_t i = 0; i < a->n_transcript; i++)
		if (!exchange_equal(&a->transcript[i], &b->transcript[i]))
			return 0;
	return 1;
}

int emv_wire_results_equal(const emv_wire_results *a, const emv_wire_results *b)
{
	if (strcmp(a->job_id, b->job_id) != 0 || strcmp(a->batch_id, b->batch_id) != 0 ||
	    strcmp(a->worker, b->worker) != 0 || strcmp(a->region, b->region) != 0 ||
	    strcmp(a->source_ip, b->source_ip) != 0 || strcmp(a->mx, b->mx) != 0 || strcmp(a->tls, b->tls) != 0 ||
	    a->n_results != b->n_results)
		return 0;
	for (size_t i = 0; i < a->n_results; i++)
		if (!result_equal(&a->results[i], &b->results[i]))
			return 0;
	return 1;
}

/* ---- IpState ---- */

static const char *const ip_states[] = { "healthy", "throttled", "quarantined", "held" };

static int check_ipstate(const emv_wire_ipstate *s, errout *e)
{
	int known = 0;
	unsigned char a[sizeof(struct in6_addr)];

	if (check_str(e, "", "ip", s->ip, 1, EMV_WIRE_IP_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "provider", s->provider, 0, EMV_WIRE_PROVIDER_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "region", s->region, 0, EMV_WIRE_REGION_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "worker", s->worker, 0, EMV_WIRE_WORKER_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "state", s->state, 1, EMV_WIRE_NAME_MAX, CS_VISIBLE) != EMV_OK ||
	    check_str(e, "", "last_reply", s->last_reply, 0, EMV_WIRE_REPLY_MAX, CS_PRINT) != EMV_OK)
		return EMV_ERR;
	if (inet_pton(AF_INET, s->ip, a) != 1 && inet_pton(AF_INET6, s->ip, a) != 1)
		return bad(e, "ip: not an IPv4 or IPv6 address");
	for (size_t i = 0; i < sizeof ip_states / sizeof ip_states[0]; i++)
		known |= strcmp(s->state, ip_states[i]) == 0;
	if (!known)
		return bad(e, "state: not healthy, throttled, quarantined or held");
	if (s->until_ms < 0 || s->until_ms > EMV_WIRE_TIME_MAX || s->since_ms < 0 || s->since_ms > EMV_WIRE_TIME_MAX ||
	    s->updated_ms < 0 || s->updated_ms > EMV_WIRE_TIME_MAX)
		return bad(e, "until/since/updated: not 0..%" PRId64 " unix ms", EMV_WIRE_TIME_MAX);
	if (s->rate_permille > 1000)
		return bad(e, "rate_permille: %u, the limit is 1000", s->rate_permille);
	return EMV_OK;
}

emv_wire_status emv_wire_ipstate_encode(const emv_wire_ipstate *s, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	Emailverify__IpState m = EMAILVERIFY__IP_STATE__INIT;
	errout e = { err, errlen };
	size_t size;

	*buf = NULL;
	*len = 0;
	err_clear(err, errlen);
	if (check_ipstate(s, &e) != EMV_OK)
		return EMV_WIRE_INVALID;
	m.schema_version = EMV_WIRE_SCHEMA;
	m.ip = (char *)s->ip;
	m.provider = (char *)s->provider;
	m.region = (char *)s->region;
	m.worker = (char *)s->worker;
	m.state = (char *)s->state;
	m.until = s->until_ms;
	m.since = s->since_ms;
	m.updated = s->updated_ms;
	m.strikes = s->strikes;
	m.rate_permille = s->rate_permille;
	m.rcpts = s->rcpts;
	m.blocks = s->blocks;
	m.sessions = s->sessions;
	m.last_reply = (char *)s->last_reply;
	size = emailverify__ip_state__get_packed_size(&m);
	*buf = emv_xmalloc(size ? size : 1);
	if (emailverify__ip_state__pack(&m, *buf) != size)
		abort();
	*len = size;
	return EMV_WIRE_OK;
}

emv_wire_status emv_wire_ipstate_decode(const void *data, size_t len, emv_wire_ipstate *out, char *err, size_t errlen)
{
	const Emailverify__IpState *m;
	struct unpacked u;
	errout e = { err, errlen };
	emv_wire_status st;

	memset(out, 0, sizeof *out);
	err_clear(err, errlen);
	st = unpack(&u, &emailverify__ip_state__descriptor, data, len, &e);
	if (st != EMV_WIRE_OK)
		return st;
	m = (const Emailverify__IpState *)u.msg;
	st = check_schema(m->schema_version, &e);
	if (st == EMV_WIRE_OK)
		st = scan_nul(u.msg->descriptor, data, len, "", 0, &e);
	if (st == EMV_WIRE_OK) {
		if (take(out->ip, sizeof out->ip, m->ip, "", "ip", &e) != EMV_OK ||
		    take(out->provider, sizeof out->provider, m->provider, "", "provider", &e) != EMV_OK ||
		    take(out->region, sizeof out->region, m->region, "", "region", &e) != EMV_OK ||
		    take(out->worker, sizeof out->worker, m->worker, "", "worker", &e) != EMV_OK ||
		    take(out->state, sizeof out->state, m->state, "", "state", &e) != EMV_OK ||
		    take(out->last_reply, sizeof out->last_reply, m->last_reply, "", "last_reply", &e) != EMV_OK) {
			st = EMV_WIRE_INVALID;
		} else {
			out->until_ms = m->until;
			out->since_ms = m->since;
			out->updated_ms = m->updated;
			out->strikes = m->strikes;
			out->rate_permille = m->rate_permille;
			out->rcpts = m->rcpts;
			out->blocks = m->blocks;
			out->sessions = m->sessions;
			if (check_ipstate(out, &e) != EMV_OK)
				st = EMV_WIRE_INVALID;
		}
	}
	unpacked_free(&u);
	if (st != EMV_WIRE_OK)
		memset(out, 0, sizeof *out);
	return st;
}

void emv_wire_ipstate_key(const emv_wire_ipstate *s, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s|%s", s->ip, s->provider);
}

/* ---- DomainState ---- */

static int check_domstate(const emv_wire_domstate *s, errout *e)
{
	const int64_t t[] = { s->updated_ms,	   s->rcpt_per_txn_at, s->errors_per_session_at, s->sessions_ok_at,
			      s->backoff_until_ms, s->backoff_at,      s->accepts_all_at,	 s->catch_all_at };

	if (s->kind != EMV_WIRE_DS_HOST && s->kind != EMV_WIRE_DS_DOMAIN)
		return bad(e, "kind: not host or domain");
	if (check_domain(e, "", "name", s->name) != EMV_OK ||
	    check_str(e, "", "worker", s->worker, 0, EMV_WIRE_WORKER_MAX, CS_VISIBLE) != EMV_OK ||
	    check_bool(e, "", "accepts_all", s->accepts_all) != EMV_OK ||
	    check_bool(e, "", "catch_all", s->catch_all) != EMV_OK)
		return EMV_ERR;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i] < 0 || t[i] > EMV_WIRE_TIME_MAX)
			return bad(e, "times: %" PRId64 " is not 0..%" PRId64 " unix ms", t[i], EMV_WIRE_TIME_MAX);
	return EMV_OK;
}

emv_wire_status emv_wire_domstate_encode(const emv_wire_domstate *s, uint8_t **buf, size_t *len, char *err,
					 size_t errlen)
{
	Emailverify__DomainState m = EMAILVERIFY__DOMAIN_STATE__INIT;
	errout e = { err, errlen };
	size_t size;

	*buf = NULL;
	*len = 0;
	err_clear(err, errlen);
	if (check_domstate(s, &e) != EMV_OK)
		return EMV_WIRE_INVALID;
	m.schema_version = EMV_WIRE_SCHEMA;
	m.kind = (char *)(s->kind == EMV_WIRE_DS_HOST ? "host" : "domain");
	m.name = (char *)s->name;
	m.worker = (char *)s->worker;
	m.updated = s->updated_ms;
	m.rcpt_per_txn = s->rcpt_per_txn;
	m.rcpt_per_txn_at = s->rcpt_per_txn_at;
	m.errors_per_session = s->errors_per_session;
	m.errors_per_session_at = s->errors_per_session_at;
	m.sessions_ok = s->sessions_ok;
	m.sessions_ok_at = s->sessions_ok_at;
	m.backoff_until = s->backoff_until_ms;
	m.backoff_ms = s->backoff_ms;
	m.backoff_at = s->backoff_at;
	m.accepts_all = s->accepts_all != 0;
	m.accepts_all_at = s->accepts_all_at;
	m.catch_all = s->catch_all != 0;
	m.catch_all_at = s->catch_all_at;
	size = emailverify__domain_state__get_packed_size(&m);
	*buf = emv_xmalloc(size ? size : 1);
	if (emailverify__domain_state__pack(&m, *buf) != size)
		abort();
	*len = size;
	return EMV_WIRE_OK;
}

emv_wire_status emv_wire_domstate_decode(const void *data, size_t len, emv_wire_domstate *out, char *err, size_t errlen)
{
	const Emailverify__DomainState *m;
	struct unpacked u;
	errout e = { err, errlen };
	emv_wire_status st;

	memset(out, 0, sizeof *out);
	err_clear(err, errlen);
	st = unpack(&u, &emailverify__domain_state__descriptor, data, len, &e);
	if (st != EMV_WIRE_OK)
		return st;
	m = (const Emailverify__DomainState *)u.msg;
	st = check_schema(m->schema_version, &e);
	if (st == EMV_WIRE_OK)
		st = scan_nul(u.msg->descriptor, data, len, "", 0, &e);
	if (st == EMV_WIRE_OK) {
		out->kind = m->kind && strcmp(m->kind, "host") == 0	? EMV_WIRE_DS_HOST
			    : m->kind && strcmp(m->kind, "domain") == 0 ? EMV_WIRE_DS_DOMAIN
									: -1;
		if (take(out->name, sizeof out->name, m->name, "", "name", &e) != EMV_OK ||
		    take(out->worker, sizeof out->worker, m->worker, "", "worker", &e) != EMV_OK) {
			st = EMV_WIRE_INVALID;
		} else {
			out->updated_ms = m->updated;
			out->rcpt_per_txn = m->rcpt_per_txn;
			out->rcpt_per_txn_at = m->rcpt_per_txn_at;
			out->errors_per_session = m->errors_per_session;
			out->errors_per_session_at = m->errors_per_session_at;
			out->sessions_ok = m->sessions_ok;
			out->sessions_ok_at = m->sessions_ok_at;
			out->backoff_until_ms = m->backoff_until;
			out->backoff_ms = m->backoff_ms;
			out->backoff_at = m->backoff_at;
			out->accepts_all = m->accepts_all != 0;
			out->accepts_all_at = m->accepts_all_at;
			out->catch_all = m->catch_all != 0;
			out->catch_all_at = m->catch_all_at;
			if (check_domstate(out, &e) != EMV_OK)
				st = EMV_WIRE_INVALID;
		}
	}
	unpacked_free(&u);
	if (st != EMV_WIRE_OK)
		memset(out, 0, sizeof *out);
	return st;
}

void emv_wire_domstate_key(const emv_wire_domstate *s, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s:%s", s->kind == EMV_WIRE_DS_HOST ? "host" : "domain", s->name);
}
