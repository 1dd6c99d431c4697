/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_dns.c - MX resolution with c-ares on a libevent loop (see emv_dns.h).
 *
 * Flow for one domain: MX query -> (NODATA: implicit MX, A+AAAA of the domain)
 * -> A and AAAA of every MX host, all in parallel -> callback.  c-ares owns
 * the sockets; we mirror its interest set with libevent events and keep one
 * timer armed to ares_timeout().
 */
#include <arpa/inet.h>
#include <ares.h>
#include <event2/event.h>
#include <netdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "emv_defaults.h"
#include "emv_dns.h"
#include "emv_util.h"

#ifndef T_MX
#define T_MX 15
#define T_A 1
#define T_AAAA 28
#define C_IN 1
#endif

struct fdwatch {
	ares_socket_t fd;
	struct event *ev;
	struct fdwatch *next;
};

struct cache_entry {
	char *domain;
	uint64_t expires_ms;
	struct cache_entry *next;
	emv_mx_result *res; /* compact copy (emv_mx_result_dup) */
};

#define CACHE_BUCKETS 4096u

struct emv_dns {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct fdwatch *watches;
	emv_dns_params p;
	int pending;
	struct cache_entry *cache[CACHE_BUCKETS];
	size_t cache_size;
};

/* One MX resolution in progress. */
struct mxq {
	emv_dns *d;
	char domain[EMV_HOST_MAX];
	emv_dns_mx_cb cb;
	void *arg;
	emv_mx_result res;
	int outstanding; /* address queries not yet answered */
	uint32_t min_ttl;
};

/* One address query (A or AAAA) of one host of an mxq. */
struct addrq {
	struct mxq *q;
	int host;
	int family;
};

static void arm_timer(emv_dns *d);

size_t emv_mx_result_size(const emv_mx_result *r)
{
	int n = r->nhosts < 0 ? 0 : r->nhosts > EMV_MX_MAX ? EMV_MX_MAX : r->nhosts;
	return offsetof(emv_mx_result, hosts) + (size_t)n * sizeof(emv_mx_host);
}

emv_mx_result *emv_mx_result_dup(const emv_mx_result *r)
{
	size_t n = emv_mx_result_size(r);
	emv_mx_result *c = emv_xmalloc(n);
	memcpy(c, r, n);
	return c;
}

const char *emv_dns_status_name(emv_dns_status s)
{
	static const char *const n[] = { "ok", "nxdomain", "nodata", "null_mx", "no_address", "tempfail", "cancelled" };
	return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

void emv_dns_params_default(emv_dns_params *p)
{
	memset(p, 0, sizeof *p);
	p->timeout_ms = EMV_DEF_DNS_TIMEOUT_MS;
	p->tries = EMV_DEF_DNS_TRIES;
	p->cache_min_ttl = EMV_DEF_DNS_CACHE_MIN_TTL_S;
	p->cache_max_ttl = EMV_DEF_DNS_CACHE_MAX_TTL_S;
	p->negative_ttl = EMV_DEF_DNS_NEGATIVE_TTL_S;
	p->cache_max = EMV_DEF_DNS_CACHE_MAX;
}

/* ---- libevent <-> c-ares plumbing ---- */

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
	emv_dns *d = arg;
	ares_process_fd(d->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD, (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	arm_timer(d);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	emv_dns *d = arg;
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(d);
}

static void arm_timer(emv_dns *d)
{
	struct timeval tv, *t;
	if (d->pending == 0) {
		evtimer_del(d->timer);
		return;
	}
	t = ares_timeout(d->channel, NULL, &tv);
	if (t)
		evtimer_add(d->timer, t);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	emv_dns *d = data;
	struct fdwatch **pp, *w;

	for (pp = &d->watches; *pp; pp = &(*pp)->next)
		if ((*pp)->fd == fd)
			break;
	w = *pp;
	if (!readable && !writable) {
		if (w) {
			*pp = w->next;
			event_free(w->ev);
			free(w);
		}
		return;
	}
	if (!w) {
		w = emv_xcalloc(1, sizeof *w);
		w->fd = fd;
		w->next = d->watches;
		d->watches = w;
	} else {
		event_free(w->ev);
	}
	w->ev = event_new(d->base, fd, (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) | EV_PERSIST),
			  on_fd, d);
	event_add(w->ev, NULL);
}

emv_dns *emv_dns_new(struct event_base *base, const emv_dns_params *p, char *err, size_t errlen)
{
	struct ares_options o;
	int rc, mask;
	emv_dns *d;
	static int lib_init;

	if (!lib_init) {
		if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
			snprintf(err, errlen, "c-ares init: %s", ares_strerror(rc));
			return NULL;
		}
		lib_init = 1;
	}
	d = emv_xcalloc(1, sizeof *d);
	d->base = base;
	d->p = *p;
	memset(&o, 0, sizeof o);
	o.sock_state_cb = sock_state_cb;
	o.sock_state_cb_data = d;
	o.timeout = p->timeout_ms > 0 ? p->timeout_ms : 2000;
	o.tries = p->tries > 0 ? p->tries : 2;
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_EDNS;
	o.ednspsz = 1232;
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ;
	if ((rc = ares_init_options(&d->channel, &o, mask)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares init: %s", ares_strerror(rc));
		free(d);
		return NULL;
	}
	if (p->servers && *p->servers) {
		if ((rc = ares_set_servers_ports_csv(d->channel, p->servers)) != ARES_SUCCESS) {
			snprintf(err, errlen, "bad DNS server list '%s': %s", p->servers, ares_strerror(rc));
			ares_destroy(d->channel);
			free(d);
			return NULL;
		}
	}
	d->timer = evtimer_new(base, on_timer, d);
	return d;
}

static void cache_clear(emv_dns *d)
{
	for (unsigned i = 0; i < CACHE_BUCKETS; i++) {
		struct cache_entry *e = d->cache[i], *n;
		for (; e; e = n) {
			n = e->next;
			free(e->domain);
			free(e->res);
			free(e);
		}
		d->cache[i] = NULL;
	}
	d->cache_size = 0;
}

void emv_dns_free(emv_dns *d)
{
	if (!d)
		return;
	/* ares_destroy runs pending callbacks with ARES_EDESTRUCTION; they
	 * only free their own state. */
	ares_destroy(d->channel);
	while (d->watches) {
		struct fdwatch *w = d->watches;
		d->watches = w->next;
		event_free(w->ev);
		free(w);
	}
	event_free(d->timer);
	cache_clear(d);
	free(d);
}

int emv_dns_pending(const emv_dns *d)
{
	return d->pending;
}

/* ---- cache ---- */

static unsigned hash_str(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static const struct cache_entry *cache_get(emv_dns *d, const char *domain)
{
	unsigned b = hash_str(domain) % CACHE_BUCKETS;
	uint64_t now = emv_now_ms();
	struct cache_entry **pp = &d->cache[b], *e;

	while ((e = *pp)) {
		if (e->expires_ms <= now) { /* drop expired entries as we pass */
			*pp = e->next;
			free(e->domain);
			free(e->res);
			free(e);
			d->cache_size--;
			continue;
		}
		if (strcmp(e->domain, domain) == 0)
			return e;
		pp = &e->next;
	}
	return NULL;
}

static void cache_put(emv_dns *d, const char *domain, const emv_mx_result *r)
{
	uint32_t ttl;
	struct cache_entry *e;
	unsigned b;

	if (r->status == EMV_DNS_TEMPFAIL || d->p.cache_max == 0)
		return;
	if (d->cache_size >= d->p.cache_max)
		return; /* full: serve uncached rather than grow without bound */
	ttl = r->status == EMV_DNS_OK ? r->ttl : d->p.negative_ttl;
	if (ttl < d->p.cache_min_ttl)
		ttl = d->p.cache_min_ttl;
	if (ttl > d->p.cache_max_ttl)
		ttl = d->p.cache_max_ttl;
	b = hash_str(domain) % CACHE_BUCKETS;
	e = emv_xcalloc(1, sizeof *e);
	e->domain = emv_xstrdup(domain);
	e->expires_ms = emv_now_ms() + (uint64_t)ttl * 1000u;
	e->res = emv_mx_result_dup(r);
	e->next = d->cache[b];
	d->cache[b] = e;
	d->cache_size++;
}

/* ---- wire helpers ---- */

/*
 * c-ares 1.18's parsers drop the TTL of MX answers, so read it ourselves:
 * the smallest TTL among the answer records, via a bounds-checked walk.
 * Returns 0 when the message is malformed (callers clamp to the minimum).
 */
static int skip_name(const unsigned char *b, int len, int *pos)
{
	int p = *pos, hops = 0;
	while (p < len) {
		unsigned c = b[p];
		if (c == 0) {
			*pos = p + 1;
			return 0;
		}
		if ((c & 0xc0) == 0xc0) { /* compression pointer ends the name here */
			if (p + 1 >= len)
				return -1;
			*pos = p + 2;
			return 0;
		}
		if (c & 0xc0)
			return -1;
		p += 1 + (int)c;
		if (++hops > 128)
			return -1;
	}
	return -1;
}

static uint32_t answer_min_ttl(const unsigned char *b, int len)
{
	int pos = 12, qd, an;
	uint32_t min = UINT32_MAX;

	if (len < 12)
		return 0;
	qd = b[4] << 8 | b[5];
	an = b[6] << 8 | b[7];
	for (int i = 0; i < qd; i++) {
		if (skip_name(b, len, &pos) < 0 || pos + 4 > len)
			return 0;
		pos += 4;
	}
	for (int i = 0; i < an; i++) {
		uint32_t ttl;
		int rdlen;
		if (skip_name(b, len, &pos) < 0 || pos + 10 > len)
			return 0;
		ttl = (uint32_t)b[pos + 4] << 24 | (uint32_t)b[pos + 5] << 16 | (uint32_t)b[pos + 6] << 8 | b[pos + 7];
		rdlen = b[pos + 8] << 8 | b[pos + 9];
		pos += 10 + rdlen;
		if (pos > len)
			return 0;
		if (ttl < min)
			min = ttl;
	}
	return min == UINT32_MAX ? 0 : min;
}

static emv_dns_status status_of(int ares_status)
{
	switch (ares_status) {
	case ARES_SUCCESS: return EMV_DNS_OK;
	case ARES_ENOTFOUND: return EMV_DNS_NXDOMAIN;
	case ARES_ENODATA: return EMV_DNS_NODATA;
	default: /* ESERVFAIL, EREFUSED, ETIMEOUT, ECONNREFUSED, EBADRESP, ... */ return EMV_DNS_TEMPFAIL;
	}
}

/* ---- MX flow ---- */

static void finish(struct mxq *q)
{
	emv_mx_result *r = &q->res;

	if (r->status == EMV_DNS_OK) {
		int with_addr = 0, tempfail = 0;
		for (int i = 0; i < r->nhosts; i++) {
			if (r->hosts[i].naddrs > 0)
				with_addr++;
			else if (r->hosts[i].addr_status == EMV_DNS_TEMPFAIL)
				tempfail++;
		}
		if (with_addr == 0) {
			if (r->implicit) {
				r->status = tempfail ? EMV_DNS_TEMPFAIL : EMV_DNS_NODATA;
				snprintf(r->detail, sizeof r->detail,
					 tempfail ? "no MX record, and the address lookup of %s failed temporarily"
						  : "%s has no MX, A or AAAA record",
					 q->domain);
			} else {
				r->status = tempfail ? EMV_DNS_TEMPFAIL : EMV_DNS_NO_ADDRESS;
				if (tempfail)
					snprintf(r->detail, sizeof r->detail,
						 "address lookups of the MX hosts of %s failed temporarily", q->domain);
				else
					snprintf(r->detail, sizeof r->detail,
						 "none of the %d MX hosts of %s has an address", r->nhosts, q->domain);
			}
		}
		r->ttl = q->min_ttl == UINT32_MAX ? 0 : q->min_ttl;
	}
	cache_put(q->d, q->domain, r);
	q->cb(r, q->arg);
	free(q);
}

static void on_addr(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct addrq *aq = arg;
	struct mxq *q = aq->q;
	emv_mx_host *h = &q->res.hosts[aq->host];

	q->d->pending--;
	if (status == ARES_EDESTRUCTION) {
		if (--q->outstanding == 0)
			free(q);
		free(aq);
		return;
	}
	if (status == ARES_SUCCESS) {
		struct hostent *he = NULL;
		int rc, n;
		uint32_t ttl = answer_min_ttl(abuf, alen);
		if (aq->family == AF_INET) {
			struct ares_addrttl t[EMV_MX_ADDR_MAX];
			n = EMV_MX_ADDR_MAX;
			rc = ares_parse_a_reply(abuf, alen, &he, t, &n);
			for (int i = 0; rc == ARES_SUCCESS && i < n && h->naddrs < EMV_MX_ADDR_MAX; i++) {
				struct sockaddr_in *s = (struct sockaddr_in *)&h->addrs[h->naddrs++];
				s->sin_family = AF_INET;
				s->sin_addr = t[i].ipaddr;
			}
		} else {
			struct ares_addr6ttl t[EMV_MX_ADDR_MAX];
			n = EMV_MX_ADDR_MAX;
			rc = ares_parse_aaaa_reply(abuf, alen, &he, t, &n);
			for (int i = 0; rc == ARES_SUCCESS && i < n && h->naddrs < EMV_MX_ADDR_MAX; i++) {
				struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->addrs[h->naddrs++];
				s->sin6_family = AF_INET6;
				memcpy(&s->sin6_addr, &t[i].ip6addr, sizeof s->sin6_addr);
			}
		}
		if (he)
			ares_free_hostent(he);
		if (rc == ARES_SUCCESS) {
			h->addr_status = EMV_DNS_OK;
			if (ttl && ttl < q->min_ttl)
				q->min_ttl = ttl;
		} else if (h->naddrs == 0 && h->addr_status != EMV_DNS_OK) {
			h->addr_status = status_of(rc);
		}
	} else if (h->addr_status != EMV_DNS_OK && h->addr_status != EMV_DNS_TEMPFAIL) {
		/* keep "temporary" over "no data": one family failing for a
		 * transient reason means the host may have addresses */
		h->addr_status = status_of(status);
	}
	free(aq);
	if (--q->outstanding == 0)
		finish(q);
}

static void query_addrs(struct mxq *q)
{
	int n = q->res.nhosts;
	q->outstanding = 2 * n;
	for (int i = 0; i < n; i++) {
		q->res.hosts[i].addr_status = EMV_DNS_NODATA;
		for (int f = 0; f < 2; f++) {
			struct addrq *aq = emv_xcalloc(1, sizeof *aq);
			aq->q = q;
			aq->host = i;
			aq->family = f == 0 ? AF_INET : AF_INET6;
			q->d->pending++;
			ares_query(q->d->channel, q->res.hosts[i].host, C_IN, f == 0 ? T_A : T_AAAA, on_addr, aq);
		}
	}
	arm_timer(q->d);
}

static int cmp_pref(const void *a, const void *b)
{
	const emv_mx_host *x = a, *y = b;
	return x->preference - y->preference;
}

static void on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mxq *q = arg;
	emv_mx_result *r = &q->res;
	struct ares_mx_reply *mx = NULL, *m;
	int rc, total = 0;

	q->d->pending--;
	if (status == ARES_EDESTRUCTION) {
		free(q);
		return;
	}
	if (status == ARES_ENODATA) {
		/* RFC 5321 §5.1: no MX -> the domain itself is the implicit MX */
		r->implicit = 1;
		r->nhosts = 1;
		emv_strlcpy(r->hosts[0].host, q->domain, sizeof r->hosts[0].host);
		query_addrs(q);
		return;
	}
	if (status != ARES_SUCCESS) {
		r->status = status_of(status);
		if (r->status == EMV_DNS_NXDOMAIN)
			snprintf(r->detail, sizeof r->detail, "%s does not exist (NXDOMAIN)", q->domain);
		else
			snprintf(r->detail, sizeof r->detail, "MX lookup of %s failed: %s%s", q->domain,
				 ares_strerror(status), timeouts ? " (timed out)" : "");
		finish(q);
		return;
	}
	rc = ares_parse_mx_reply(abuf, alen, &mx);
	if (rc != ARES_SUCCESS) {
		r->status = rc == ARES_ENODATA ? EMV_DNS_NODATA : EMV_DNS_TEMPFAIL;
		if (rc == ARES_ENODATA) { /* only CNAMEs or other types in the answer */
			r->implicit = 1;
			r->nhosts = 1;
			emv_strlcpy(r->hosts[0].host, q->domain, sizeof r->hosts[0].host);
			r->status = EMV_DNS_OK;
			query_addrs(q);
			return;
		}
		snprintf(r->detail, sizeof r->detail, "malformed MX answer for %s: %s", q->domain, ares_strerror(rc));
		finish(q);
		return;
	}
	q->min_ttl = answer_min_ttl(abuf, alen);
	if (q->min_ttl == 0)
		q->min_ttl = UINT32_MAX;
	for (m = mx; m; m = m->next) {
		total++;
		/* RFC 7505: a single "0 ." record means no mail is accepted */
		if (m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
			if (m->priority == 0 && total == 1 && m->next == NULL) {
				r->status = EMV_DNS_NULL_MX;
				snprintf(r->detail, sizeof r->detail,
					 "%s publishes a null MX (RFC 7505): it accepts no mail", q->domain);
				ares_free_data(mx);
				finish(q);
				return;
			}
			continue; /* a "." among real hosts is a misconfiguration: skip it */
		}
		if (r->nhosts < EMV_MX_MAX) {
			emv_mx_host *h = &r->hosts[r->nhosts++];
			emv_strlcpy(h->host, m->host, sizeof h->host);
			emv_ascii_lower(h->host);
			h->preference = m->priority;
		}
	}
	ares_free_data(mx);
	if (r->nhosts == 0) {
		r->status = EMV_DNS_NO_ADDRESS;
		snprintf(r->detail, sizeof r->detail, "%s has MX records but no usable host", q->domain);
		finish(q);
		return;
	}
	/* stable order: equal preferences keep DNS order (RFC 5321 says
	 * randomise; callers may shuffle equal-preference hosts) */
	qsort(r->hosts, (size_t)r->nhosts, sizeof r->hosts[0], cmp_pref);
	query_addrs(q);
}

void emv_dns_resolve_mx(emv_dns *d, const char *domain, emv_dns_mx_cb cb, void *arg)
{
	const struct cache_entry *e = cache_get(d, domain);
	struct mxq *q;

	if (e) {
		emv_mx_result r;
		memcpy(&r, e->res, emv_mx_result_size(e->res));
		r.from_cache = 1;
		cb(&r, arg);
		return;
	}
	q = emv_xcalloc(1, sizeof *q);
	q->d = d;
	emv_strlcpy(q->domain, domain, sizeof q->domain);
	q->cb = cb;
	q->arg = arg;
	q->min_ttl = UINT32_MAX;
	q->res.status = EMV_DNS_OK;
	d->pending++;
	ares_query(d->channel, domain, C_IN, T_MX, on_mx, q);
	arm_timer(d);
}

/* ---- raw queries ---- */

struct rawq {
	emv_dns *d;
	emv_dns_raw_cb cb;
	void *arg;
};

static void on_raw(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct rawq *q = arg;

	q->d->pending--;
	if (status == ARES_EDESTRUCTION)
		q->cb(EMV_DNS_CANCELLED, NULL, 0, q->arg);
	else
		q->cb(status_of(status), abuf, abuf ? alen : 0, q->arg);
	free(q);
}

void emv_dns_query(emv_dns *d, const char *name, int type, emv_dns_raw_cb cb, void *arg)
{
	struct rawq *q = emv_xcalloc(1, sizeof *q);

	q->d = d;
	q->cb = cb;
	q->arg = arg;
	d->pending++;
	ares_query(d->channel, name, C_IN, type, on_raw, q);
	arm_timer(d);
}
