/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_spf.h - SPF (RFC 7208) check_host() for the worker's self-audit: does
 * the probe sender's domain authorise this source address?
 *
 * The evaluator does no I/O.  It reads DNS answers from an emv_spf_cache;
 * when one it needs is missing, emv_spf_step() returns 0 naming the query
 * (type and name); the caller fetches it (asynchronously: emv_audit.c uses
 * c-ares on the libevent loop; synchronously: emv_spf_check() with an
 * injected resolver function, as the unit tests do), stores it with
 * emv_spf_cache_put() and steps again.  Each step re-runs the evaluation
 * from the top against the cache - deterministic, so the lookup counts come
 * out the same - which costs nothing next to a DNS round trip and keeps the
 * evaluator a plain recursive function.
 *
 * Supported: v=spf1 record selection (several records -> permerror),
 * mechanisms all, include, a, mx, ip4, ip6, exists, ptr (counted, never
 * matches: RFC 7208 §5.5 says not to use it), CIDR lengths (a/24, mx//64,
 * ip4:x/n, ip6:x/n), qualifiers + - ~ ?, redirect=, unknown modifiers
 * ignored, exp= ignored (we do not need the explanation), macros (RFC 7208
 * §7: s l o d i p v h, transformers, delimiters, upper-case = URL-escaped;
 * %{p} expands to "unknown" since we do not validate PTRs for it),
 * the 10-term DNS lookup limit and the 2 void-lookup limit (-> permerror),
 * at most 10 MX names per mx mechanism (-> permerror), any syntax error
 * anywhere in a record -> permerror.  Void lookups are counted for the
 * queries of a, mx (the MX query) and exists; the address lookups of the
 * MX hosts are not (a host with only an A record must not turn an IPv6
 * check into a permerror).
 *
 * Bounds: a TXT record is used up to EMV_SPF_RECORD_MAX bytes, an answer
 * up to EMV_SPF_ITEMS_MAX items (the count beyond is still known, for the MX
 * limit), recursion to 12 levels (the lookup limit stops it first).
 */
#ifndef EMV_SPF_H
#define EMV_SPF_H

#include <stddef.h>
#include "emv_dns.h"

#define EMV_SPF_RECORD_MAX 4096
#define EMV_SPF_ITEMS_MAX 32
#define EMV_SPF_LOOKUP_LIMIT 10
#define EMV_SPF_VOID_LIMIT 2

typedef enum {
	EMV_SPF_NONE = 0,
	EMV_SPF_NEUTRAL,
	EMV_SPF_PASS,
	EMV_SPF_FAIL,
	EMV_SPF_SOFTFAIL,
	EMV_SPF_TEMPERROR,
	EMV_SPF_PERMERROR,
} emv_spf_result;

typedef enum { EMV_SPF_Q_TXT = 0, EMV_SPF_Q_A, EMV_SPF_Q_AAAA, EMV_SPF_Q_MX } emv_spf_qtype;

/* How a query was answered (NODATA: the name exists, not that type). */
typedef enum { EMV_SPF_ANS_OK = 0, EMV_SPF_ANS_NXDOMAIN, EMV_SPF_ANS_NODATA, EMV_SPF_ANS_TEMPFAIL } emv_spf_ans;

typedef struct emv_spf_cache emv_spf_cache;

emv_spf_cache *emv_spf_cache_new(void);
void emv_spf_cache_free(emv_spf_cache *c);
/* Store an answer: TXT items are whole records (strings joined), A/AAAA
 * items address literals, MX items host names.  Only the first
 * EMV_SPF_ITEMS_MAX items are kept; n is remembered.  A name already
 * stored is left as it is. */
void emv_spf_cache_put(emv_spf_cache *c, emv_spf_qtype t, const char *name, emv_spf_ans st, const char *const *items,
		       int n);

typedef struct {
	const emv_sockaddr *ip; /* the address being checked */
	const char *sender;	/* MAIL FROM, local@domain */
	const char *domain;	/* the domain to check (the sender's) */
	const char *helo;	/* for %{h}; may be NULL (then the domain) */
} emv_spf_query;

typedef struct {
	emv_spf_result result;
	char detail[256];	 /* what decided it: "matched -all in x.test", "11 DNS lookups" */
	int lookups, voids;	 /* counted against the limits */
	emv_spf_qtype need_type; /* step returned 0: the query to answer next */
	char need_name[EMV_HOST_MAX];
} emv_spf_eval;

/* 1 = finished (out->result), 0 = needs out->need_type/need_name answered. */
int emv_spf_step(emv_spf_cache *c, const emv_spf_query *q, emv_spf_eval *out);

/* Synchronous driver: resolver answers one query into items (up to max,
 * each a heap string the driver frees) and returns its status. */
typedef emv_spf_ans (*emv_spf_resolver)(void *ctx, emv_spf_qtype t, const char *name, char **items, int max, int *n);
emv_spf_result emv_spf_check(const emv_spf_query *q, emv_spf_resolver fn, void *ctx, emv_spf_eval *out);

const char *emv_spf_result_name(emv_spf_result r); /* "pass", "permerror", ... */
const char *emv_spf_qtype_name(emv_spf_qtype t);   /* "TXT", "A", ... */

#endif
