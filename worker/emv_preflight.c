/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_preflight.c - the environment checks of `emailverify doctor` and the
 * start-up preflight (see emv_preflight.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "emv_audit.h"
#include "emv_defaults.h"
#include "emv_netsafe.h"
#include "emv_preflight.h"
#include "emv_util.h"

struct dom {
	char name[EMV_HOST_MAX];
	emv_mx_result *mx;     /* heap copy of the answer */
	emv_dns_status canary; /* the random name under it */
};

struct conn {
	struct pf *pf;
	int fd;
	struct event *ev;
	emv_sockaddr addr;
	char host[EMV_HOST_MAX];
	char ip[EMV_POOL_IP_MAX];
	int done, ok;
	char result[96];
	uint64_t start;
};

struct pf {
	const emv_pf_params *p;
	emv_pf_report *r;
	int pending;
	int ndom;
	struct dom dom[EMV_PF_DOMAINS_MAX];
	int nconn;
	struct conn conn[EMV_PF_CONNECTS_MAX];
	emv_sockaddr first_mx; /* for finding our own source address */
	int have_first_mx;
	int audit_done;
	emv_audit_result audit;
};

const char *emv_pf_level_name(emv_pf_level l)
{
	return l == EMV_PF_PASS ? "PASS" : l == EMV_PF_WARN ? "WARN" : "FAIL";
}

void emv_pf_params_default(emv_pf_params *p)
{
	memset(p, 0, sizeof *p);
	p->smtp_port = EMV_DEF_SMTP_PORT;
	p->connect_timeout_ms = EMV_DEF_PREFLIGHT_CONNECT_TIMEOUT_MS;
}

static void add(emv_pf_report *r, const char *name, emv_pf_level lvl, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void add(emv_pf_report *r, const char *name, emv_pf_level lvl, const char *fix, const char *fmt, ...)
{
	char raw[sizeof r->checks[0].what];
	emv_pf_check *c;
	va_list ap;

	if (r->n >= EMV_PF_CHECKS_MAX)
		return;
	c = &r->checks[r->n++];
	emv_strlcpy(c->name, name, sizeof c->name);
	c->level = lvl;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	/* names and texts from DNS answers are remote data */
	emv_sanitize(c->what, sizeof c->what, raw, strlen(raw));
	emv_strlcpy(c->fix, lvl == EMV_PF_PASS || !fix ? "" : fix, sizeof c->fix);
	if (lvl > r->worst)
		r->worst = lvl;
}

static void cat(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;
	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

static void wait_pending(struct pf *pf)
{
	while (pf->pending > 0 && event_base_loop(pf->p->base, EVLOOP_ONCE) == 0)
		;
}

int emv_pf_helo_fqdn(const char *name)
{
	struct in6_addr a6;
	struct in_addr a4;
	size_t len = name ? strlen(name) : 0;
	int labels = 0, alpha_tld = 0;

	if (len == 0 || len > EMV_HOST_NAME_MAX || inet_pton(AF_INET, name, &a4) == 1 ||
	    inet_pton(AF_INET6, name, &a6) == 1 || name[0] == '[')
		return 0;
	for (const char *p = name; *p;) {
		const char *e = strchr(p, '.');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == 0 || l > 63 || p[0] == '-' || p[l - 1] == '-')
			return 0; /* (a trailing dot ends the loop before an empty label) */
		alpha_tld = 0;
		for (size_t i = 0; i < l; i++) {
			if (!isalnum((unsigned char)p[i]) && p[i] != '-')
				return 0;
			alpha_tld |= isalpha((unsigned char)p[i]) != 0;
		}
		labels++;
		if (!e)
			break;
		p = e + 1;
	}
	if (labels < 2 || !alpha_tld)
		return 0;
	if (strcasecmp(name, "localhost.localdomain") == 0 || strncasecmp(name, "localhost.", 10) == 0)
		return 0;
	return 1;
}

/* ---- dns ---- */

struct dq {
	struct pf *pf;
	int idx;
	int canary;
};

static void on_mx(const emv_mx_result *res, void *arg)
{
	struct dq *q = arg;
	struct dom *d = &q->pf->dom[q->idx];

	if (q->canary)
		d->canary = res->status;
	else
		d->mx = emv_mx_result_dup(res);
	q->pf->pending--;
	free(q);
}

static void check_dns(struct pf *pf)
{
	const emv_pf_params *p = pf->p;
	emv_pf_report *r = pf->r;
	const char *resolver = p->resolver && *p->resolver ? p->resolver : "(/etc/resolv.conf)";
	const char *list = p->domains && *p->domains ? p->domains : EMV_PF_DOMAINS_DEFAULT;
	char found[512] = "", failed[512] = "", names[300] = "";
	int ok = 0, nx = 0, temp = 0, canary_ok = 0, canary_asked = 0;
	unsigned rnd;

	/* the domains */
	for (const char *s = list; *s && pf->ndom < EMV_PF_DOMAINS_MAX;) {
		const char *e = strchr(s, ',');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l > 0 && l < EMV_HOST_MAX) {
			memcpy(pf->dom[pf->ndom].name, s, l);
			pf->dom[pf->ndom].name[l] = '\0';
			emv_ascii_lower(pf->dom[pf->ndom].name);
			pf->ndom++;
		}
		if (!e)
			break;
		s = e + 1;
	}
	rnd = (unsigned)(emv_wall_ms() ^ ((uint64_t)getpid() << 16));
	for (int i = 0; i < pf->ndom; i++) {
		char canary[EMV_HOST_MAX + 32];
		struct dq *q = emv_xcalloc(1, sizeof *q), *qc = emv_xcalloc(1, sizeof *qc);
		q->pf = qc->pf = pf;
		q->idx = qc->idx = i;
		qc->canary = 1;
		pf->pending += 2;
		emv_dns_resolve_mx(p->dns, pf->dom[i].name, on_mx, q);
		snprintf(canary, sizeof canary, "emv-preflight-%08x.%s", rnd + (unsigned)i, pf->dom[i].name);
		if (strlen(canary) < EMV_HOST_MAX)
			emv_dns_resolve_mx(p->dns, canary, on_mx, qc);
		else
			on_mx(&(emv_mx_result){ .status = EMV_DNS_NXDOMAIN }, qc);
		cat(names, sizeof names, "%s%s", i ? ", " : "", pf->dom[i].name);
	}
	wait_pending(pf);

	for (int i = 0; i < pf->ndom; i++) {
		struct dom *d = &pf->dom[i];
		emv_dns_status st = d->mx ? d->mx->status : EMV_DNS_TEMPFAIL;
		if (st == EMV_DNS_OK || st == EMV_DNS_NULL_MX || st == EMV_DNS_NODATA || st == EMV_DNS_NO_ADDRESS) {
			/* an answer about the domain's mail: the resolver works */
			ok++;
			cat(found, sizeof found, "%s%s -> %s", *found ? ", " : "", d->name,
			    st == EMV_DNS_OK ? d->mx->hosts[0].host : emv_dns_status_name(st));
			canary_asked++;
			canary_ok += d->canary == EMV_DNS_OK;
			if (st == EMV_DNS_OK && !pf->have_first_mx && d->mx->hosts[0].naddrs > 0) {
				pf->first_mx = d->mx->hosts[0].addrs[0];
				pf->have_first_mx = 1;
			}
		} else {
			nx += st == EMV_DNS_NXDOMAIN;
			temp += st == EMV_DNS_TEMPFAIL;
			if (d->mx && d->mx->detail[0] && strstr(d->mx->detail, d->name))
				cat(failed, sizeof failed, "%s%s", *failed ? "; " : "", d->mx->detail);
			else
				cat(failed, sizeof failed, "%s%s: %s", *failed ? "; " : "", d->name,
				    d->mx && d->mx->detail[0] ? d->mx->detail : emv_dns_status_name(st));
		}
	}
	if (pf->ndom == 0) {
		add(r, "dns", EMV_PF_WARN, "name one or more mail domains with --preflight-domains",
		    "no domain to check the resolver with");
	} else if (ok == 0 && temp == pf->ndom) {
		r->dns_broken = 1;
		add(r, "dns", EMV_PF_FAIL,
		    "check /etc/resolv.conf (or --dns): the resolver must answer MX queries; "
		    "nothing can be verified without it",
		    "resolver %s gave no usable answer for %s (%s)", resolver, names, failed);
	} else if (ok == 0) {
		r->dns_broken = 1;
		add(r, "dns", EMV_PF_FAIL,
		    "use a resolver that answers for the whole Internet (check /etc/resolv.conf or --dns); "
		    "this one would make good addresses look undeliverable",
		    "resolver %s finds no mail server for %s, domains that certainly receive mail (%s)%s", resolver,
		    names, failed, nx == pf->ndom ? ": it answers NXDOMAIN for all of them" : "");
	} else if (canary_asked > 0 && canary_ok == canary_asked) {
		r->dns_broken = 1;
		add(r, "dns", EMV_PF_FAIL,
		    "use a resolver that does not rewrite NXDOMAIN answers (check /etc/resolv.conf or --dns)",
		    "resolver %s answers for names that do not exist (emv-preflight-%08x.%s has a mail server): "
		    "dead domains would look alive",
		    resolver, rnd, pf->dom[0].name);
	} else if (ok < pf->ndom) {
		add(r, "dns", EMV_PF_WARN, "check the resolver (/etc/resolv.conf or --dns) and --preflight-domains",
		    "resolver %s: %s; but %s", resolver, found, failed);
	} else {
		add(r, "dns", canary_ok ? EMV_PF_WARN : EMV_PF_PASS,
		    "a domain of --preflight-domains has wildcard records; name others", "resolver %s: %s%s", resolver,
		    found, canary_ok ? "; a random name under one of them resolves too (wildcard records?)" : "");
	}
}

/* ---- port 25 ---- */

static void conn_finish(struct conn *c, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void conn_finish(struct conn *c, int ok, const char *fmt, ...)
{
	va_list ap;
	if (c->done)
		return;
	c->done = 1;
	c->ok = ok;
	va_start(ap, fmt);
	vsnprintf(c->result, sizeof c->result, fmt, ap);
	va_end(ap);
	if (c->ev) {
		event_free(c->ev);
		c->ev = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->pf->pending--;
}

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int err = 0;
	socklen_t len = sizeof err;

	if (what & EV_TIMEOUT) {
		conn_finish(c, 0, "timed out after %d ms", c->pf->p->connect_timeout_ms);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		conn_finish(c, 0, "%s", strerror(err));
	else
		conn_finish(c, 1, "connected in %llu ms", (unsigned long long)(emv_now_ms() - c->start));
}

static int bind_source(int fd, int family, const char *ip)
{
	emv_sockaddr s;
	memset(&s, 0, sizeof s);
	if (family == AF_INET && inet_pton(AF_INET, ip, &s.in.sin_addr) == 1) {
		s.in.sin_family = AF_INET;
		return bind(fd, &s.sa, sizeof s.in);
	}
	if (family == AF_INET6 && inet_pton(AF_INET6, ip, &s.in6.sin6_addr) == 1) {
		s.in6.sin6_family = AF_INET6;
		return bind(fd, &s.sa, sizeof s.in6);
	}
	errno = EAFNOSUPPORT;
	return -1;
}

static void conn_start(struct pf *pf, const emv_sockaddr *a, const char *host)
{
	const emv_pf_params *p = pf->p;
	struct conn *c = &pf->conn[pf->nconn++];
	socklen_t alen = a->sa.sa_family == AF_INET ? sizeof a->in : sizeof a->in6;
	struct timeval tv = { p->connect_timeout_ms / 1000, (p->connect_timeout_ms % 1000) * 1000 };

	memset(c, 0, sizeof *c);
	c->pf = pf;
	c->addr = *a;
	emv_strlcpy(c->host, host, sizeof c->host);
	inet_ntop(a->sa.sa_family, a->sa.sa_family == AF_INET ? (void *)&a->in.sin_addr : (void *)&a->in6.sin6_addr,
		  c->ip, sizeof c->ip);
	if (a->sa.sa_family == AF_INET)
		c->addr.in.sin_port = htons((uint16_t)p->smtp_port);
	else
		c->addr.in6.sin6_port = htons((uint16_t)p->smtp_port);
	c->start = emv_now_ms();
	pf->pending++;
	c->fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_finish(c, 0, "socket: %s", strerror(errno));
		return;
	}
	if (p->source_ip && bind_source(c->fd, a->sa.sa_family, p->source_ip) < 0) {
		conn_finish(c, 0, "cannot bind to %s: %s", p->source_ip, strerror(errno));
		return;
	}
	if (connect(c->fd, &c->addr.sa, alen) == 0) {
		conn_finish(c, 1, "connected at once");
		return;
	}
	if (errno != EINPROGRESS) {
		conn_finish(c, 0, "%s", strerror(errno));
		return;
	}
	c->ev = event_new(p->base, c->fd, EV_WRITE, on_connect, c);
	event_add(c->ev, &tv);
}

static void check_port25(struct pf *pf)
{
	const emv_pf_params *p = pf->p;
	char tried[640] = "";
	int skipped = 0;

	for (int i = 0; i < pf->ndom && pf->nconn < EMV_PF_CONNECTS_MAX; i++) {
		emv_mx_result *mx = pf->dom[i].mx;
		if (!mx || mx->status != EMV_DNS_OK)
			continue;
		/* one address of each of the first two hosts of each domain */
		for (int h = 0; h < mx->nhosts && h < 2 && pf->nconn < EMV_PF_CONNECTS_MAX; h++) {
			if (mx->hosts[h].naddrs == 0)
				continue;
			if (!p->allow_private && emv_netsafe_class(&mx->hosts[h].addrs[0].sa)) {
				skipped++;
				continue;
			}
			conn_start(pf, &mx->hosts[h].addrs[0], mx->hosts[h].host);
		}
	}
	wait_pending(pf);
	if (pf->nconn == 0) {
		add(pf->r, "port25", EMV_PF_WARN, "fix DNS first (see the dns line), or name other --preflight-domains",
		    "no mail server address to try%s",
		    skipped ? " (only private addresses: --allow-private-mx allows them)" : "");
		return;
	}
	for (int i = 0; i < pf->nconn; i++) {
		struct conn *c = &pf->conn[i];
		if (c->ok) {
			add(pf->r, "port25", EMV_PF_PASS, NULL, "TCP port %d of %s [%s] from %s: %s", p->smtp_port,
			    c->host, c->ip, p->source_ip ? p->source_ip : "this host", c->result);
			return;
		}
		cat(tried, sizeof tried, "%s%s [%s]: %s", *tried ? "; " : "", c->host, c->ip, c->result);
	}
	add(pf->r, "port25", EMV_PF_FAIL,
	    "outbound port 25 is blocked on many cloud and home networks: ask the provider to open it, "
	    "or run the workers where it is open",
	    "no TCP connection to port %d of any of %d mail servers (%s)", p->smtp_port, pf->nconn, tried);
}

/* ---- identity ---- */

static void on_audit(const emv_audit_result *res, int n, void *arg)
{
	struct pf *pf = arg;
	if (n > 0)
		pf->audit = res[0];
	pf->audit_done = 1;
	pf->pending--;
}

/* The address this host would send from to reach the first MX. */
static int own_source(struct pf *pf, char *out, size_t len)
{
	emv_sockaddr a = pf->first_mx, me;
	socklen_t alen = a.sa.sa_family == AF_INET ? sizeof a.in : sizeof a.in6, mlen = sizeof me;
	int fd, rc = -1;

	if (!pf->have_first_mx)
		return -1;
	if (a.sa.sa_family == AF_INET)
		a.in.sin_port = htons(25);
	else
		a.in6.sin6_port = htons(25);
	if ((fd = socket(a.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, &a.sa, alen) == 0 && getsockname(fd, &me.sa, &mlen) == 0 &&
	    inet_ntop(me.sa.sa_family, me.sa.sa_family == AF_INET ? (void *)&me.in.sin_addr : (void *)&me.in6.sin6_addr,
		      out, (socklen_t)len))
		rc = 0;
	close(fd);
	return rc;
}

/* The audit's problems are "; "-separated, one per failed check: the one
 * that starts with `prefix` (or contains `infix`), copied to out. */
static void problem_of(const char *problems, const char *prefix, const char *infix, char *out, size_t len)
{
	const char *s = problems;
	out[0] = '\0';
	while (*s) {
		const char *e = strstr(s, "; ");
		size_t l = e ? (size_t)(e - s) : strlen(s);
		char piece[EMV_AUDIT_PROBLEMS_MAX];
		memcpy(piece, s, l);
		piece[l] = '\0';
		if ((prefix && strncmp(piece, prefix, strlen(prefix)) == 0) || (infix && strstr(piece, infix))) {
			if (*out)
				cat(out, len, "; ");
			cat(out, len, "%s", piece);
		}
		if (!e)
			break;
		s = e + 2;
	}
}

static void check_identity(struct pf *pf)
{
	const emv_pf_params *p = pf->p;
	emv_pf_report *r = pf->r;
	const char *helo = p->helo ? p->helo : "";
	const char *at = p->mail_from ? strrchr(p->mail_from, '@') : NULL;
	emv_pool *pool;
	emv_audit *a;
	char ip[EMV_POOL_IP_MAX], text[EMV_AUDIT_PROBLEMS_MAX];
	int fqdn = emv_pf_helo_fqdn(helo);

	if (fqdn)
		add(r, "helo", EMV_PF_PASS, NULL, "HELO name %s is a fully qualified domain name", helo);
	else
		add(r, "helo", EMV_PF_FAIL,
		    "set --helo to this host's public name (its A record and PTR should match the source address)",
		    "HELO name '%s' is not a fully qualified domain name: many servers refuse it "
		    "(504 5.5.2 need fully-qualified hostname)",
		    helo);

	if (p->source_ip) {
		emv_strlcpy(ip, p->source_ip, sizeof ip);
	} else if (own_source(pf, ip, sizeof ip) < 0) {
		add(r, "fcrdns", EMV_PF_WARN, "fix DNS first, or name the address with --source-ip",
		    "could not tell which source address this host uses (no mail server address to route to)");
		return;
	}
	emv_strlcpy(r->source_ip, ip, sizeof r->source_ip);
	if (!fqdn || !at || !at[1]) {
		add(r, "fcrdns", EMV_PF_WARN, "set --helo and --mail-from", "reverse DNS and SPF of %s not checked: %s",
		    ip, !fqdn ? "no usable HELO name" : "no probe sender domain");
		return;
	}

	pool = emv_xcalloc(1, sizeof *pool);
	emv_strlcpy(pool->region, "doctor", sizeof pool->region);
	emv_strlcpy(pool->mail_from, p->mail_from, sizeof pool->mail_from);
	emv_strlcpy(pool->mail_from_domain, at + 1, sizeof pool->mail_from_domain);
	emv_ascii_lower(pool->mail_from_domain);
	pool->audit_failures = EMV_POOL_AUDIT_RUN;
	pool->nsources = 1;
	emv_strlcpy(pool->sources[0].ip, ip, sizeof pool->sources[0].ip);
	emv_strlcpy(pool->sources[0].helo, helo, sizeof pool->sources[0].helo);
	emv_ascii_lower(pool->sources[0].helo);
	{
		size_t hl = strlen(pool->sources[0].helo);
		if (hl && pool->sources[0].helo[hl - 1] == '.')
			pool->sources[0].helo[hl - 1] = '\0';
	}
	if (inet_pton(AF_INET, ip, &pool->sources[0].addr.in.sin_addr) == 1) {
		pool->sources[0].addr.in.sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, ip, &pool->sources[0].addr.in6.sin6_addr) == 1) {
		pool->sources[0].addr.in6.sin6_family = AF_INET6;
	} else {
		add(r, "fcrdns", EMV_PF_FAIL, "give --source-ip as an IPv4 or IPv6 address", "'%s' is not an address",
		    ip);
		free(pool);
		return;
	}
	for (const char *s = p->dnsbl; s && *s && pool->ndnsbl < EMV_POOL_DNSBL_MAX;) {
		const char *e = strchr(s, ',');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l > 0 && l < EMV_HOST_MAX) {
			memcpy(pool->dnsbl[pool->ndnsbl], s, l);
			pool->dnsbl[pool->ndnsbl++][l] = '\0';
		}
		if (!e)
			break;
		s = e + 1;
	}
	pf->pending++;
	a = emv_audit_start(p->base, p->dns, pool, on_audit, pf);
	wait_pending(pf);
	emv_audit_free(a);

	if (!pf->audit_done) {
		add(r, "fcrdns", EMV_PF_WARN, "run again", "the identity checks did not finish");
	} else {
		const emv_audit_result *x = &pf->audit;
		problem_of(x->problems, NULL, "PTR", text, sizeof text);
		if (!*text)
			problem_of(x->problems, NULL, "has no PTR", text, sizeof text);
		if (x->fcrdns == EMV_AUDIT_PASS)
			add(r, "fcrdns", EMV_PF_PASS, NULL, "PTR %s -> %s -> %s", ip, pool->sources[0].helo, ip);
		else
			add(r, "fcrdns", EMV_PF_WARN,
			    "make the PTR of the source address name the HELO name, and that name's A/AAAA the address "
			    "(many receivers distrust or refuse a client without forward-confirmed reverse DNS)",
			    "%s", *text ? text : "reverse DNS could not be confirmed");
		if (x->spf == EMV_SPF_PASS)
			add(r, "spf", EMV_PF_PASS, NULL, "SPF of %s passes %s", pool->mail_from_domain, ip);
		else
			add(r, "spf", EMV_PF_WARN,
			    "allow the source address in the SPF record of the probe sender's domain, or choose a "
			    "--mail-from whose domain allows it",
			    "SPF of %s for %s: %s (%s)", pool->mail_from_domain, ip, emv_spf_result_name(x->spf),
			    x->spf_detail);
		if (x->ndnsbl > 0) {
			char listed[EMV_AUDIT_PROBLEMS_MAX] = "", unknown[512] = "", clean[512] = "";
			for (int i = 0; i < x->ndnsbl; i++) {
				const emv_audit_dnsbl *z = &x->dnsbl[i];
				if (z->status == EMV_AUDIT_FAIL)
					cat(listed, sizeof listed, "%s%s (%s%s%s)", *listed ? "; " : "", z->zone,
					    z->answer, *z->reason ? ": " : "", z->reason);
				else if (z->status == EMV_AUDIT_UNKNOWN)
					cat(unknown, sizeof unknown, "%s%s (%s)", *unknown ? ", " : "", z->zone,
					    *z->answer ? z->answer : "no answer");
				else
					cat(clean, sizeof clean, "%s%s", *clean ? ", " : "", z->zone);
			}
			if (*listed)
				add(r, "dnsbl", EMV_PF_FAIL,
				    "ask for delisting (the zone's reason names how), or send from another address; "
				    "listed addresses are refused by most servers",
				    "%s is listed in %s", ip, listed);
			if (*unknown)
				add(r, "dnsbl", EMV_PF_WARN,
				    "some blocklists refuse queries from public resolvers: use a resolver of your own",
				    "no usable answer from %s for %s", unknown, ip);
			if (!*listed && !*unknown)
				add(r, "dnsbl", EMV_PF_PASS, NULL, "%s is not listed in %s", ip, clean);
		}
	}
	free(pool);
}

void emv_pf_run(const emv_pf_params *p, emv_pf_report *r)
{
	struct pf *pf = emv_xcalloc(1, sizeof *pf);

	memset(r, 0, sizeof *r);
	pf->p = p;
	pf->r = r;
	check_dns(pf);
	if (p->port25)
		check_port25(pf);
	if (p->identity)
		check_identity(pf);
	for (int i = 0; i < pf->ndom; i++)
		free(pf->dom[i].mx);
	free(pf);
}
