/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_audit.c - the start-up self-audit of each pool address (see
 * emv_audit.h).
 *
 * Each address runs three kinds of task at once: FCrDNS (PTR, then A/AAAA
 * of every name), SPF (emv_spf_step: each missing answer becomes one query,
 * answers go to a cache shared by all addresses) and one task per DNSBL
 * zone (A, then TXT when listed).  Every query carries a small context; the
 * audit counts queries in flight so that freeing it while answers are still
 * due is safe: the last answer frees it.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_audit.h"
#include "emv_util.h"

#define T_A 1
#define T_PTR 12
#define T_MX 15
#define T_TXT 16
#define T_AAAA 28

enum { K_PTR, K_FWD, K_SPF, K_BL_A, K_BL_TXT };

struct src {
	emv_audit_result *res;
	const emv_pool_source *ps;
	int tasks; /* unfinished tasks: fcrdns + spf + zones */
	int nptr, fwd_pending, fwd_tempfail;
	char ptr[EMV_AUDIT_PTR_MAX][EMV_HOST_MAX];
	int confirmed[EMV_AUDIT_PTR_MAX];
	emv_dns_status ptr_status;
	emv_spf_query q;
	emv_spf_eval spf;
};

struct emv_audit {
	emv_dns *dns;
	struct event *kick;
	emv_pool pool;
	emv_audit_cb cb;
	void *arg;
	int inflight; /* queries not yet answered */
	int srcs_left;
	int freed, dead, done;
	int busy; /* inside one of our event callbacks: free later */
	emv_spf_cache *spf_cache;
	struct src *srcs;
	emv_audit_result *res;
};

struct aq {
	emv_audit *a;
	int src, kind, idx;
	emv_spf_qtype spf_type;
	char name[EMV_HOST_MAX];
};

const char *emv_audit_check_name(emv_audit_check c)
{
	static const char *const n[] = { "pass", "fail", "unknown" };
	return (unsigned)c < sizeof n / sizeof n[0] ? n[c] : "?";
}

static void append(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n && n + 2 < len) {
		memcpy(buf + n, "; ", 3);
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

static void on_answer(emv_dns_status st, const unsigned char *abuf, int alen, void *arg);

static void release(emv_audit *a)
{
	if (a->inflight > 0 || !a->freed || a->busy)
		return;
	event_free(a->kick);
	emv_spf_cache_free(a->spf_cache);
	free(a->srcs);
	free(a->res);
	free(a);
}

static void query(emv_audit *a, int src, int kind, int idx, int type, const char *name)
{
	struct aq *q = emv_xcalloc(1, sizeof *q);
	q->a = a;
	q->src = src;
	q->kind = kind;
	q->idx = idx;
	emv_strlcpy(q->name, name, sizeof q->name);
	a->inflight++;
	emv_dns_query(a->dns, name, type, on_answer, q);
}

/* ---- names ---- */

static void norm_name(char *s)
{
	size_t n = strlen(s);
	if (n && s[n - 1] == '.')
		s[n - 1] = '\0';
	emv_ascii_lower(s);
}

/* "d.c.b.a" (IPv4) or 32 reversed nibbles (IPv6), without a suffix. */
static void reverse_name(const emv_sockaddr *sa, char *out, size_t len)
{
	out[0] = '\0';
	if (sa->sa.sa_family == AF_INET) {
		const unsigned char *b = (const unsigned char *)&sa->in.sin_addr;
		snprintf(out, len, "%u.%u.%u.%u", b[3], b[2], b[1], b[0]);
		return;
	}
	for (int i = 15; i >= 0; i--) {
		unsigned char c = sa->in6.sin6_addr.s6_addr[i];
		snprintf(out + strlen(out), len - strlen(out), "%x.%x%s", c & 15, c >> 4, i ? "." : "");
	}
}

/* ---- finishing ---- */

static void finish_src(emv_audit *a, struct src *s);

static void task_done(emv_audit *a, struct src *s)
{
	if (--s->tasks == 0)
		finish_src(a, s);
}

static void fcrdns_verdict(struct src *s)
{
	emv_audit_result *r = s->res;
	int named = -1, any_confirmed = 0;

	for (int i = 0; i < s->nptr; i++) {
		if (strcmp(s->ptr[i], r->helo) == 0)
			named = i;
		any_confirmed |= s->confirmed[i];
	}
	if (s->ptr_status == EMV_DNS_TEMPFAIL || s->ptr_status == EMV_DNS_CANCELLED) {
		r->fcrdns = EMV_AUDIT_UNKNOWN;
		append(r->problems, sizeof r->problems, "PTR lookup of %s failed temporarily", r->ip);
	} else if (s->nptr == 0) {
		r->fcrdns = EMV_AUDIT_FAIL;
		append(r->problems, sizeof r->problems, "%s has no PTR record (HELO is %s)", r->ip, r->helo);
	} else if (named >= 0 && s->confirmed[named]) {
		r->fcrdns = EMV_AUDIT_PASS;
	} else if (named >= 0) {
		r->fcrdns = s->fwd_tempfail ? EMV_AUDIT_UNKNOWN : EMV_AUDIT_FAIL;
		append(r->problems, sizeof r->problems, "PTR %s -> %s, but %s does not resolve back to %s%s", r->ip,
		       r->helo, r->helo, r->ip, s->fwd_tempfail ? " (lookup failed temporarily)" : "");
	} else {
		r->fcrdns = EMV_AUDIT_FAIL;
		append(r->problems, sizeof r->problems, "PTR %s -> %s, but HELO is %s%s", r->ip, r->ptr, r->helo,
		       any_confirmed ? "" : " (and no PTR name resolves back to it)");
	}
}

static void finish_src(emv_audit *a, struct src *s)
{
	emv_audit_result *r = s->res;

	fcrdns_verdict(s);
	r->spf = s->spf.result;
	emv_strlcpy(r->spf_detail, s->spf.detail, sizeof r->spf_detail);
	if (r->spf != EMV_SPF_PASS)
		append(r->problems, sizeof r->problems, "SPF of %s for %s: %s (%s)", a->pool.mail_from_domain, r->ip,
		       emv_spf_result_name(r->spf), r->spf_detail);
	for (int i = 0; i < r->ndnsbl; i++) {
		emv_audit_dnsbl *z = &r->dnsbl[i];
		if (z->status == EMV_AUDIT_FAIL)
			append(r->problems, sizeof r->problems, "%s is listed in %s (%s%s%s)", r->ip, z->zone,
			       z->answer, *z->reason ? ": " : "", z->reason);
		else if (z->status == EMV_AUDIT_UNKNOWN)
			append(r->notes, sizeof r->notes, "DNSBL %s: no answer for %s (%s)", z->zone, r->ip,
			       *z->answer ? z->answer : "lookup failed");
	}
	r->ok = r->problems[0] == '\0';
	r->held = !r->ok && a->pool.audit_failures == EMV_POOL_AUDIT_HOLD;
	if (--a->srcs_left == 0 && !a->freed && !a->dead) {
		a->done = 1;
		a->cb(a->res, a->pool.nsources, a->arg);
	}
}

/* ---- answers ---- */

static int parse_addrs(int family, const unsigned char *abuf, int alen, char out[][EMV_POOL_IP_MAX], int max)
{
	struct hostent *he = NULL;
	int n = 0;

	if (family == AF_INET) {
		struct ares_addrttl t[EMV_SPF_ITEMS_MAX];
		int nt = EMV_SPF_ITEMS_MAX;
		if (ares_parse_a_reply(abuf, alen, &he, t, &nt) == ARES_SUCCESS)
			for (int i = 0; i < nt && n < max; i++)
				inet_ntop(AF_INET, &t[i].ipaddr, out[n++], EMV_POOL_IP_MAX);
	} else {
		struct ares_addr6ttl t[EMV_SPF_ITEMS_MAX];
		int nt = EMV_SPF_ITEMS_MAX;
		if (ares_parse_aaaa_reply(abuf, alen, &he, t, &nt) == ARES_SUCCESS)
			for (int i = 0; i < nt && n < max; i++)
				inet_ntop(AF_INET6, &t[i].ip6addr, out[n++], EMV_POOL_IP_MAX);
	}
	if (he)
		ares_free_hostent(he);
	return n;
}

static void add_ptr(struct src *s, const char *name)
{
	char n[EMV_HOST_MAX];

	emv_strlcpy(n, name, sizeof n);
	norm_name(n);
	for (int i = 0; i < s->nptr; i++)
		if (strcmp(s->ptr[i], n) == 0)
			return;
	if (s->nptr < EMV_AUDIT_PTR_MAX)
		memcpy(s->ptr[s->nptr++], n, sizeof n);
}

static void on_ptr(emv_audit *a, struct src *s, int src, emv_dns_status st, const unsigned char *abuf, int alen)
{
	struct hostent *he = NULL;
	emv_audit_result *r = s->res;
	int fam = s->ps->addr.sa.sa_family;
	const void *addr = fam == AF_INET ? (const void *)&s->ps->addr.in.sin_addr
					  : (const void *)&s->ps->addr.in6.sin6_addr;

	s->ptr_status = st;
	if (st == EMV_DNS_OK &&
	    ares_parse_ptr_reply(abuf, alen, addr, fam == AF_INET ? 4 : 16, fam, &he) == ARES_SUCCESS) {
		if (he->h_name)
			add_ptr(s, he->h_name);
		for (char **al = he->h_aliases; al && *al; al++)
			add_ptr(s, *al);
	}
	if (he)
		ares_free_hostent(he);
	for (int i = 0; i < s->nptr; i++)
		snprintf(r->ptr + strlen(r->ptr), sizeof r->ptr - strlen(r->ptr), "%s%s", i ? " " : "", s->ptr[i]);
	if (s->nptr == 0 || a->dead) {
		task_done(a, s);
		return;
	}
	s->fwd_pending = s->nptr;
	for (int i = 0; i < s->nptr; i++)
		query(a, src, K_FWD, i, s->ps->addr.sa.sa_family == AF_INET ? T_A : T_AAAA, s->ptr[i]);
}

static void on_fwd(emv_audit *a, struct src *s, int idx, emv_dns_status st, const unsigned char *abuf, int alen)
{
	char addrs[EMV_SPF_ITEMS_MAX][EMV_POOL_IP_MAX];
	int n = st == EMV_DNS_OK ? parse_addrs(s->ps->addr.sa.sa_family, abuf, alen, addrs, EMV_SPF_ITEMS_MAX) : 0;

	if (st == EMV_DNS_TEMPFAIL)
		s->fwd_tempfail = 1;
	for (int i = 0; i < n; i++)
		if (strcmp(addrs[i], s->ps->ip) == 0)
			s->confirmed[idx] = 1;
	if (--s->fwd_pending == 0)
		task_done(a, s);
}

/* Turn an answer into SPF cache items. */
static void spf_store(emv_audit *a, emv_spf_qtype t, const char *name, emv_dns_status st, const unsigned char *abuf,
		      int alen)
{
	char addrs[EMV_SPF_ITEMS_MAX][EMV_POOL_IP_MAX];
	char *items[EMV_SPF_ITEMS_MAX];
	int n = 0;
	emv_spf_ans ans = st == EMV_DNS_OK	   ? EMV_SPF_ANS_OK
			  : st == EMV_DNS_NXDOMAIN ? EMV_SPF_ANS_NXDOMAIN
			  : st == EMV_DNS_NODATA   ? EMV_SPF_ANS_NODATA
						   : EMV_SPF_ANS_TEMPFAIL;

	if (st == EMV_DNS_OK && t == EMV_SPF_Q_TXT) {
		struct ares_txt_ext *txt = NULL;
		if (ares_parse_txt_reply_ext(abuf, alen, &txt) == ARES_SUCCESS) {
			/* one record may come as several strings: join them (RFC 7208 §3.3) */
			for (struct ares_txt_ext *x = txt; x; x = x->next) {
				if (x->record_start || n == 0) {
					if (n == EMV_SPF_ITEMS_MAX)
						break;
					items[n++] = emv_xcalloc(1, EMV_SPF_RECORD_MAX);
				}
				size_t have = strlen(items[n - 1]), add = x->length;
				if (have + add >= EMV_SPF_RECORD_MAX)
					add = EMV_SPF_RECORD_MAX - 1 - have;
				emv_sanitize(items[n - 1] + have, add + 1, (const char *)x->txt, add);
			}
			ares_free_data(txt);
		}
	} else if (st == EMV_DNS_OK && t == EMV_SPF_Q_MX) {
		struct ares_mx_reply *mx = NULL;
		if (ares_parse_mx_reply(abuf, alen, &mx) == ARES_SUCCESS)
			for (struct ares_mx_reply *m = mx; m; m = m->next) {
				if (n == EMV_SPF_ITEMS_MAX) {
					n++; /* the count matters (more than 10 MX is an error) */
					continue;
				}
				items[n++] = emv_xstrdup(m->host);
			}
		if (mx)
			ares_free_data(mx);
	} else if (st == EMV_DNS_OK) {
		int k = parse_addrs(t == EMV_SPF_Q_A ? AF_INET : AF_INET6, abuf, alen, addrs, EMV_SPF_ITEMS_MAX);
		for (; n < k; n++)
			items[n] = emv_xstrdup(addrs[n]);
	}
	if (st == EMV_DNS_OK && n == 0)
		ans = EMV_SPF_ANS_NODATA;
	emv_spf_cache_put(a->spf_cache, t, name, ans, (const char *const *)items, n);
	for (int i = 0; i < n && i < EMV_SPF_ITEMS_MAX; i++)
		free(items[i]);
}

static void spf_run(emv_audit *a, int src)
{
	static const int types[] = {
		[EMV_SPF_Q_TXT] = T_TXT, [EMV_SPF_Q_A] = T_A, [EMV_SPF_Q_AAAA] = T_AAAA, [EMV_SPF_Q_MX] = T_MX
	};
	struct src *s = &a->srcs[src];

	if (emv_spf_step(a->spf_cache, &s->q, &s->spf)) {
		task_done(a, s);
		return;
	}
	struct aq *q = emv_xcalloc(1, sizeof *q);
	q->a = a;
	q->src = src;
	q->kind = K_SPF;
	q->spf_type = s->spf.need_type;
	emv_strlcpy(q->name, s->spf.need_name, sizeof q->name);
	a->inflight++;
	emv_dns_query(a->dns, q->name, types[q->spf_type], on_answer, q);
}

static void on_bl_a(emv_audit *a, struct src *s, struct aq *q, emv_dns_status st, const unsigned char *abuf, int alen)
{
	emv_audit_dnsbl *z = &s->res->dnsbl[q->idx];
	char addrs[EMV_SPF_ITEMS_MAX][EMV_POOL_IP_MAX];
	int n;

	if (st == EMV_DNS_NXDOMAIN || st == EMV_DNS_NODATA) {
		z->status = EMV_AUDIT_PASS;
		task_done(a, s);
		return;
	}
	n = st == EMV_DNS_OK ? parse_addrs(AF_INET, abuf, alen, addrs, EMV_SPF_ITEMS_MAX) : 0;
	z->status = EMV_AUDIT_UNKNOWN;
	for (int i = 0; i < n; i++) {
		emv_strlcpy(z->answer, addrs[i], sizeof z->answer);
		/* 127.255.255.x: the list refused to answer (e.g. via a public resolver) */
		if (strncmp(addrs[i], "127.", 4) == 0 && strncmp(addrs[i], "127.255.255.", 12) != 0) {
			z->status = EMV_AUDIT_FAIL;
			break;
		}
	}
	if (z->status == EMV_AUDIT_FAIL && !a->dead) {
		query(a, q->src, K_BL_TXT, q->idx, T_TXT, q->name);
		return;
	}
	task_done(a, s);
}

static void on_bl_txt(emv_audit *a, struct src *s, int idx, emv_dns_status st, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext *txt = NULL;
	emv_audit_dnsbl *z = &s->res->dnsbl[idx];

	if (st == EMV_DNS_OK && ares_parse_txt_reply_ext(abuf, alen, &txt) == ARES_SUCCESS && txt)
		emv_sanitize(z->reason, sizeof z->reason, (const char *)txt->txt, txt->length);
	if (txt)
		ares_free_data(txt);
	task_done(a, s);
}

static void on_answer(emv_dns_status st, const unsigned char *abuf, int alen, void *arg)
{
	struct aq *q = arg;
	emv_audit *a = q->a;
	struct src *s = &a->srcs[q->src];

	a->inflight--;
	a->busy++;
	if (st == EMV_DNS_CANCELLED)
		a->dead = 1;
	if (!a->freed && !a->dead) {
		switch (q->kind) {
		case K_PTR: on_ptr(a, s, q->src, st, abuf, alen); break;
		case K_FWD: on_fwd(a, s, q->idx, st, abuf, alen); break;
		case K_SPF:
			spf_store(a, q->spf_type, q->name, st, abuf, alen);
			spf_run(a, q->src);
			break;
		case K_BL_A: on_bl_a(a, s, q, st, abuf, alen); break;
		default: on_bl_txt(a, s, q->idx, st, abuf, alen); break;
		}
	}
	free(q);
	a->busy--;
	release(a);
}

/* ---- start ---- */

static void start_src(emv_audit *a, int i)
{
	struct src *s = &a->srcs[i];
	char rev[80], name[EMV_HOST_MAX + 80];

	reverse_name(&s->ps->addr, rev, sizeof rev);
	snprintf(name, sizeof name, "%s.%s", rev, s->ps->addr.sa.sa_family == AF_INET ? "in-addr.arpa" : "ip6.arpa");
	query(a, i, K_PTR, 0, T_PTR, name);
	for (int z = 0; z < a->pool.ndnsbl; z++) {
		snprintf(name, sizeof name, "%s.%s", rev, a->pool.dnsbl[z]);
		query(a, i, K_BL_A, z, T_A, name);
	}
	spf_run(a, i);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	emv_audit *a = arg;

	a->inflight--; /* the kick itself counted as one, so nothing finishes early */
	a->busy++;
	for (int i = 0; i < a->pool.nsources && !a->freed; i++)
		start_src(a, i);
	if (a->pool.nsources == 0 && !a->freed)
		a->cb(a->res, 0, a->arg);
	a->busy--;
	release(a);
}

emv_audit *emv_audit_start(struct event_base *base, emv_dns *dns, const emv_pool *pool, emv_audit_cb cb, void *arg)
{
	static const struct timeval now = { 0, 0 };
	emv_audit *a = emv_xcalloc(1, sizeof *a);

	a->dns = dns;
	a->pool = *pool;
	a->cb = cb;
	a->arg = arg;
	a->spf_cache = emv_spf_cache_new();
	a->srcs = emv_xcalloc((size_t)pool->nsources + 1, sizeof *a->srcs);
	a->res = emv_xcalloc((size_t)pool->nsources + 1, sizeof *a->res);
	a->srcs_left = pool->nsources;
	for (int i = 0; i < pool->nsources; i++) {
		struct src *s = &a->srcs[i];
		emv_audit_result *r = &a->res[i];
		s->res = r;
		s->ps = &a->pool.sources[i];
		s->tasks = 2 + a->pool.ndnsbl;
		s->q.ip = &s->ps->addr;
		s->q.sender = a->pool.mail_from;
		s->q.domain = a->pool.mail_from_domain;
		s->q.helo = s->ps->helo;
		r->source = i;
		emv_strlcpy(r->ip, s->ps->ip, sizeof r->ip);
		emv_strlcpy(r->helo, s->ps->helo, sizeof r->helo);
		r->ndnsbl = a->pool.ndnsbl;
		for (int z = 0; z < a->pool.ndnsbl; z++)
			emv_strlcpy(r->dnsbl[z].zone, a->pool.dnsbl[z], sizeof r->dnsbl[z].zone);
	}
	a->inflight = 1;
	a->kick = evtimer_new(base, on_kick, a);
	evtimer_add(a->kick, &now);
	return a;
}

void emv_audit_free(emv_audit *a)
{
	if (!a)
		return;
	a->freed = 1;
	if (event_pending(a->kick, EV_TIMEOUT, NULL)) {
		evtimer_del(a->kick);
		a->inflight--;
	}
	release(a);
}
