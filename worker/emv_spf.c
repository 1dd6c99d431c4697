/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_spf.c - RFC 7208 check_host() over a cache of DNS answers (see
 * emv_spf.h for the replay design and what is supported).
 *
 * Internal return values: check_host() returns an emv_spf_result or NEED;
 * a mechanism returns MATCH / NOMATCH or one of NEED, TEMP, PERM.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "emv_spf.h"
#include "emv_util.h"

#define NEED (-1)
#define TEMP (-2)
#define PERM (-3)
#define NOMATCH 0
#define MATCH 1
#define DEPTH_MAX 12
#define SYNC_QUERIES_MAX 256 /* more than the limits can ever need */

struct answer {
	emv_spf_qtype t;
	emv_spf_ans st;
	char *name;
	int n, total;
	char **items;
	struct answer *next;
};

struct emv_spf_cache {
	struct answer *head;
};

enum { M_ALL, M_INCLUDE, M_A, M_MX, M_PTR, M_IP4, M_IP6, M_EXISTS };
static const char *const mech_names[] = { "all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists" };

struct term {
	char qual; /* + - ~ ? */
	int mech;
	const char *arg; /* domain-spec or address text, NULL if none */
	int cidr4, cidr6;
	const char *text; /* points to shown */
	char shown[80];	  /* the term as written (sanitised), for details */
};

struct ev {
	emv_spf_cache *c;
	const emv_spf_query *q;
	int fam; /* AF_INET / AF_INET6 of the client */
	unsigned char ip[16];
	emv_spf_eval *out;
};

const char *emv_spf_result_name(emv_spf_result r)
{
	static const char *const n[] = { "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" };
	return (unsigned)r < sizeof n / sizeof n[0] ? n[r] : "?";
}

const char *emv_spf_qtype_name(emv_spf_qtype t)
{
	static const char *const n[] = { "TXT", "A", "AAAA", "MX" };
	return (unsigned)t < sizeof n / sizeof n[0] ? n[t] : "?";
}

/* ---- cache ---- */

emv_spf_cache *emv_spf_cache_new(void)
{
	return emv_xcalloc(1, sizeof(emv_spf_cache));
}

void emv_spf_cache_free(emv_spf_cache *c)
{
	while (c && c->head) {
		struct answer *a = c->head;
		c->head = a->next;
		for (int i = 0; i < a->n; i++)
			free(a->items[i]);
		free(a->items);
		free(a->name);
		free(a);
	}
	free(c);
}

static const struct answer *cache_get(const emv_spf_cache *c, emv_spf_qtype t, const char *name)
{
	for (const struct answer *a = c->head; a; a = a->next)
		if (a->t == t && strcasecmp(a->name, name) == 0)
			return a;
	return NULL;
}

void emv_spf_cache_put(emv_spf_cache *c, emv_spf_qtype t, const char *name, emv_spf_ans st, const char *const *items,
		       int n)
{
	struct answer *a;

	if (!c || !name || cache_get(c, t, name))
		return;
	a = emv_xcalloc(1, sizeof *a);
	a->t = t;
	a->st = st;
	a->name = emv_xstrdup(name);
	a->total = n > 0 && st == EMV_SPF_ANS_OK ? n : 0;
	a->n = a->total < EMV_SPF_ITEMS_MAX ? a->total : EMV_SPF_ITEMS_MAX;
	a->items = emv_xcalloc((size_t)a->n + 1, sizeof *a->items);
	for (int i = 0; i < a->n; i++) {
		const char *it = items[i] ? items[i] : "";
		a->items[i] = emv_xstrndup(it, strnlen(it, EMV_SPF_RECORD_MAX));
	}
	a->next = c->head;
	c->head = a;
}

/* ---- errors and lookups ---- */

static int say(struct ev *ev, int ret, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int say(struct ev *ev, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ev->out->detail, sizeof ev->out->detail, fmt, ap);
	va_end(ap);
	return ret;
}

static int lookup(struct ev *ev, emv_spf_qtype t, const char *name, const struct answer **a)
{
	if ((*a = cache_get(ev->c, t, name)))
		return 0;
	ev->out->need_type = t;
	emv_strlcpy(ev->out->need_name, name, sizeof ev->out->need_name);
	return NEED;
}

/* A term that queries DNS: counts against the 10-lookup limit. */
static int count_lookup(struct ev *ev, const struct term *t)
{
	if (++ev->out->lookups > EMV_SPF_LOOKUP_LIMIT)
		return say(ev, PERM, "more than %d DNS lookups (at '%s')", EMV_SPF_LOOKUP_LIMIT, t->text);
	return 0;
}

/* NXDOMAIN or no answer: counts against the void-lookup limit. */
static int check_void(struct ev *ev, const struct answer *a)
{
	if (a->st == EMV_SPF_ANS_TEMPFAIL)
		return say(ev, TEMP, "DNS %s lookup of %s failed temporarily", emv_spf_qtype_name(a->t), a->name);
	if ((a->st == EMV_SPF_ANS_OK && a->n > 0) || ++ev->out->voids <= EMV_SPF_VOID_LIMIT)
		return 0;
	return say(ev, PERM, "more than %d void DNS lookups (at %s %s)", EMV_SPF_VOID_LIMIT, emv_spf_qtype_name(a->t),
		   a->name);
}

/* ---- macros (RFC 7208 §7) ---- */

static void macro_ip(const struct ev *ev, char *out, size_t len)
{
	if (ev->fam == AF_INET) {
		inet_ntop(AF_INET, ev->ip, out, (socklen_t)len);
		return;
	}
	out[0] = '\0';
	for (int i = 0; i < 16 && len > 64; i++)
		snprintf(out + strlen(out), len - strlen(out), "%x.%x%s", ev->ip[i] >> 4, ev->ip[i] & 15,
			 i < 15 ? "." : "");
}

/* The value of one macro letter, before transformers. */
static int macro_value(const struct ev *ev, char letter, const char *domain, char *v, size_t len)
{
	const char *s = ev->q->sender ? ev->q->sender : "";
	const char *at = strrchr(s, '@');

	switch (tolower((unsigned char)letter)) {
	case 's': snprintf(v, len, "%s", s); break;
	case 'l': /* §4.3: no local part means "postmaster" */
		if (at && at > s)
			snprintf(v, len, "%.*s", (int)(at - s), s);
		else
			snprintf(v, len, "postmaster");
		break;
	case 'o': snprintf(v, len, "%s", at ? at + 1 : s); break;
	case 'd': snprintf(v, len, "%s", domain); break;
	case 'i': macro_ip(ev, v, len); break;
	case 'p': snprintf(v, len, "unknown"); break;
	case 'v': snprintf(v, len, "%s", ev->fam == AF_INET ? "in-addr" : "ip6"); break;
	case 'h': snprintf(v, len, "%s", ev->q->helo ? ev->q->helo : domain); break;
	default: return PERM;
	}
	return 0;
}

/* §7.3: split on the delimiters, reverse if asked, keep the rightmost
 * `keep` parts, join with '.'; then URL-escape for an upper-case letter. */
static void macro_transform(char *v, size_t len, long keep, int rev, const char *delims, int escape)
{
	char *parts[128], tmp[1024], out[1024] = "";
	int n = 0, from;

	emv_strlcpy(tmp, v, sizeof tmp);
	for (char *p = tmp, *tok; n < 128 && (tok = strsep(&p, delims));)
		parts[n++] = tok;
	for (int k = 0; rev && k < n / 2; k++) {
		char *x = parts[k];
		parts[k] = parts[n - 1 - k];
		parts[n - 1 - k] = x;
	}
	from = keep > 0 && keep < n ? n - (int)keep : 0;
	for (int k = from; k < n; k++)
		snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", k > from ? "." : "", parts[k]);
	if (!escape) {
		emv_strlcpy(v, out, len);
		return;
	}
	v[0] = '\0';
	for (const char *p = out; *p && strlen(v) + 4 < len; p++) {
		if (isalnum((unsigned char)*p) || strchr("-._~", *p))
			snprintf(v + strlen(v), len - strlen(v), "%c", *p);
		else
			snprintf(v + strlen(v), len - strlen(v), "%%%02X", (unsigned char)*p);
	}
}

static int expand_one(struct ev *ev, const char **pp, const char *domain, char *out, size_t len)
{
	const char *p = *pp + 2; /* after "%{" */
	char v[1024], delims[16] = "";
	char letter = *p++;
	long keep = 0;
	int rev = 0;

	if (macro_value(ev, letter, domain, v, sizeof v) != 0)
		return say(ev, PERM, "unknown macro letter '%c'", letter);
	while (isdigit((unsigned char)*p) && keep < 1000)
		keep = keep * 10 + (*p++ - '0');
	if (p > *pp + 3 && keep == 0)
		return say(ev, PERM, "macro with 0 parts");
	if (*p == 'r' || *p == 'R')
		rev = 1, p++;
	while (*p && strchr(".-+,/_=", *p) && strlen(delims) < sizeof delims - 1)
		strncat(delims, p++, 1);
	if (*p != '}')
		return say(ev, PERM, "malformed macro");
	macro_transform(v, sizeof v, keep, rev, *delims ? delims : ".", isupper((unsigned char)letter));
	if (strlen(out) + strlen(v) >= len)
		return say(ev, PERM, "macro expansion too long");
	strcat(out, v);
	*pp = p + 1;
	return 0;
}

/* Expand a domain-spec and check the result is a usable name. */
static int expand_domain(struct ev *ev, const char *spec, const char *domain, char *out, size_t len)
{
	char buf[1024] = "";
	const char *p = spec, *s;

	while (*p) {
		if (*p != '%') {
			if (strlen(buf) + 1 >= sizeof buf)
				return say(ev, PERM, "domain-spec too long");
			strncat(buf, p++, 1);
		} else if (p[1] == '%' || p[1] == '_' || p[1] == '-') {
			const char *lit = p[1] == '%' ? "%" : p[1] == '_' ? " " : "%20";
			if (strlen(buf) + strlen(lit) >= sizeof buf)
				return say(ev, PERM, "domain-spec too long");
			strcat(buf, lit);
			p += 2;
		} else if (p[1] == '{') {
			if (expand_one(ev, &p, domain, buf, sizeof buf) != 0)
				return PERM;
		} else {
			return say(ev, PERM, "bad '%%' in '%.64s'", spec);
		}
	}
	s = buf;
	if (*s && s[strlen(s) - 1] == '.')
		buf[strlen(buf) - 1] = '\0';
	while (strlen(s) > EMV_HOST_NAME_MAX && strchr(s, '.')) /* §7.3: drop labels from the left */
		s = strchr(s, '.') + 1;
	if (strlen(s) > EMV_HOST_NAME_MAX || *s == '\0' || *s == '.' || strstr(s, "..") || !strchr(s, '.'))
		return say(ev, PERM, "'%.64s' is not a usable domain", s);
	for (const char *l = s; *l; l += strcspn(l, ".") + (l[strcspn(l, ".")] ? 1 : 0))
		if (strcspn(l, ".") > 63)
			return say(ev, PERM, "label longer than 63 in '%.64s'", s);
	if (strlen(s) >= len)
		return say(ev, PERM, "domain too long");
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

/* ---- term syntax ---- */

static int parse_cidr(const char *s, int max, int *out)
{
	char *end;
	long v;
	if (!isdigit((unsigned char)*s) || (s[0] == '0' && s[1]))
		return -1;
	v = strtol(s, &end, 10);
	if (*end || v < 0 || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* "/n", "//m" or "/n//m" at the end of an a/mx argument (cut off in place). */
static const char *parse_dual_cidr(char *arg, struct term *t)
{
	char *slash = strchr(arg, '/'), *dbl;
	if (!slash)
		return NULL;
	dbl = strstr(slash, "//");
	if (dbl) {
		if (parse_cidr(dbl + 2, 128, &t->cidr6) != 0)
			return "bad IPv6 CIDR length";
		*dbl = '\0';
	}
	if (slash != dbl && parse_cidr(slash + 1, 32, &t->cidr4) != 0)
		return "bad IPv4 CIDR length";
	*slash = '\0';
	return NULL;
}

static const char *parse_ip_arg(char *arg, struct term *t)
{
	unsigned char b[16];
	char *slash = strchr(arg, '/');
	int v4 = t->mech == M_IP4;

	if (slash) {
		*slash = '\0';
		if (parse_cidr(slash + 1, v4 ? 32 : 128, v4 ? &t->cidr4 : &t->cidr6) != 0)
			return "bad CIDR length";
	}
	if (inet_pton(v4 ? AF_INET : AF_INET6, arg, b) != 1)
		return v4 ? "bad IPv4 address" : "bad IPv6 address";
	return NULL;
}

/* Parse one mechanism term (modifiers are handled by the caller). */
static const char *parse_mech(char *tok, struct term *t)
{
	char *arg;
	size_t nl;
	int needs_arg, no_arg;

	t->qual = '+';
	if (strchr("+-~?", *tok))
		t->qual = *tok++;
	nl = strcspn(tok, ":/");
	t->mech = -1;
	for (int i = 0; i < (int)(sizeof mech_names / sizeof mech_names[0]); i++)
		if (strlen(mech_names[i]) == nl && strncasecmp(tok, mech_names[i], nl) == 0)
			t->mech = i;
	if (t->mech < 0)
		return "unknown mechanism";
	arg = tok + nl;
	t->cidr4 = 32;
	t->cidr6 = 128;
	needs_arg = t->mech == M_INCLUDE || t->mech == M_EXISTS || t->mech == M_IP4 || t->mech == M_IP6;
	no_arg = t->mech == M_ALL;
	if (*arg == ':') {
		*arg++ = '\0';
		if (no_arg || *arg == '\0' || *arg == '/')
			return "unexpected or empty argument";
		t->arg = arg;
	} else if (needs_arg) {
		return "missing argument";
	} else if (*arg == '/' && (t->mech == M_A || t->mech == M_MX)) {
		t->arg = NULL;
		return parse_dual_cidr(arg, t);
	} else if (*arg) {
		return "unexpected text after mechanism";
	}
	if (t->mech == M_IP4 || t->mech == M_IP6)
		return parse_ip_arg(arg, t);
	if (t->mech == M_A || t->mech == M_MX)
		return parse_dual_cidr(arg, t);
	return NULL;
}

/* ---- matching ---- */

static int prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	return rest == 0 || ((a[whole] ^ b[whole]) & (0xff << (8 - rest))) == 0;
}

static int addr_match(const struct ev *ev, const char *text, int cidr4, int cidr6)
{
	unsigned char b[16];
	if (ev->fam == AF_INET)
		return inet_pton(AF_INET, text, b) == 1 && prefix_match(ev->ip, b, cidr4);
	return inet_pton(AF_INET6, text, b) == 1 && prefix_match(ev->ip, b, cidr6);
}

static emv_spf_qtype addr_qtype(const struct ev *ev)
{
	return ev->fam == AF_INET ? EMV_SPF_Q_A : EMV_SPF_Q_AAAA;
}

/* Do any of `host`'s addresses match?  For a, and each host of mx. */
static int match_host(struct ev *ev, const char *host, const struct term *t, int count_void)
{
	const struct answer *a;
	int rc;

	if ((rc = lookup(ev, addr_qtype(ev), host, &a)) != 0)
		return rc;
	if (count_void && (rc = check_void(ev, a)) != 0)
		return rc;
	if (a->st == EMV_SPF_ANS_TEMPFAIL)
		return say(ev, TEMP, "DNS %s lookup of %s failed temporarily", emv_spf_qtype_name(a->t), host);
	for (int i = 0; i < a->n; i++)
		if (addr_match(ev, a->items[i], t->cidr4, t->cidr6))
			return MATCH;
	return NOMATCH;
}

static int check_host(struct ev *ev, const char *domain, int depth);

static int mech_mx(struct ev *ev, const struct term *t, const char *target)
{
	const struct answer *a;
	int rc;

	if ((rc = lookup(ev, EMV_SPF_Q_MX, target, &a)) != 0 || (rc = check_void(ev, a)) != 0)
		return rc;
	if (a->total > 10)
		return say(ev, PERM, "%s has %d MX records (more than 10) at '%s'", target, a->total, t->text);
	for (int i = 0; i < a->n; i++) {
		if (strcmp(a->items[i], "") == 0 || strcmp(a->items[i], ".") == 0)
			continue; /* null MX */
		if ((rc = match_host(ev, a->items[i], t, 0)) != NOMATCH)
			return rc;
	}
	return NOMATCH;
}

static int mech_include(struct ev *ev, const struct term *t, const char *target, int depth)
{
	int r = check_host(ev, target, depth + 1);
	switch (r) {
	case NEED: return NEED;
	case EMV_SPF_PASS: return MATCH;
	case EMV_SPF_FAIL:
	case EMV_SPF_SOFTFAIL:
	case EMV_SPF_NEUTRAL: return NOMATCH;
	case EMV_SPF_TEMPERROR: return TEMP;
	case EMV_SPF_NONE: return say(ev, PERM, "'%s': %s has no SPF record", t->text, target);
	default: return PERM;
	}
}

static int eval_mech(struct ev *ev, const struct term *t, const char *domain, int depth)
{
	char target[EMV_HOST_MAX];
	const struct answer *a;
	int rc;

	if (t->mech == M_ALL)
		return MATCH;
	if (t->mech == M_IP4)
		return ev->fam == AF_INET && addr_match(ev, t->arg, t->cidr4, 0) ? MATCH : NOMATCH;
	if (t->mech == M_IP6)
		return ev->fam == AF_INET6 && addr_match(ev, t->arg, 0, t->cidr6) ? MATCH : NOMATCH;
	if ((rc = count_lookup(ev, t)) != 0)
		return rc;
	if ((rc = expand_domain(ev, t->arg ? t->arg : domain, domain, target, sizeof target)) != 0)
		return rc;
	switch (t->mech) {
	case M_A: return match_host(ev, target, t, 1);
	case M_MX: return mech_mx(ev, t, target);
	case M_INCLUDE: return mech_include(ev, t, target, depth);
	case M_EXISTS:
		if ((rc = lookup(ev, EMV_SPF_Q_A, target, &a)) != 0 || (rc = check_void(ev, a)) != 0)
			return rc;
		return a->n > 0 ? MATCH : NOMATCH;
	default: /* M_PTR: counted, never matches (emv_spf.h) */ return NOMATCH;
	}
}

static emv_spf_result qual_result(char q)
{
	return q == '-' ? EMV_SPF_FAIL : q == '~' ? EMV_SPF_SOFTFAIL : q == '?' ? EMV_SPF_NEUTRAL : EMV_SPF_PASS;
}

/* ---- records ---- */

/* The one v=spf1 record of a TXT answer: 1 found, 0 none, PERM several. */
static int select_record(struct ev *ev, const struct answer *a, const char *domain, const char **rec)
{
	int found = 0;
	for (int i = 0; i < a->n; i++) {
		const char *s = a->items[i];
		if (strncasecmp(s, "v=spf1", 6) == 0 && (s[6] == '\0' || s[6] == ' ')) {
			*rec = s;
			found++;
		}
	}
	if (found > 1)
		return say(ev, PERM, "%s has %d SPF records", domain, found);
	return found;
}

/* Split and check every term; the redirect= target goes to *redirect. */
static int parse_record(struct ev *ev, char *rec, const char *domain, struct term *terms, int *nterms,
			const char **redirect)
{
	int n = 0, seen_exp = 0;
	char *p = rec + 6, *tok;

	*redirect = NULL;
	while ((tok = strsep(&p, " "))) {
		size_t nl = strcspn(tok, "=:/");
		const char *why;
		char copy[80];
		if (*tok == '\0')
			continue;
		emv_sanitize(copy, sizeof copy, tok, strlen(tok));
		if (tok[nl] == '=' && nl > 0 && isalpha((unsigned char)tok[0])) {
			int is_redirect = nl == 8 && strncasecmp(tok, "redirect", 8) == 0;
			int is_exp = nl == 3 && strncasecmp(tok, "exp", 3) == 0;
			if ((is_redirect && *redirect) || (is_exp && seen_exp++))
				return say(ev, PERM, "%s: '%s' given twice", domain, copy);
			if ((is_redirect || is_exp) && tok[nl + 1] == '\0')
				return say(ev, PERM, "%s: empty '%s'", domain, copy);
			if (is_redirect)
				*redirect = tok + nl + 1;
			continue; /* other modifiers are ignored (§6) */
		}
		memset(&terms[n], 0, sizeof terms[n]);
		memcpy(terms[n].shown, copy, sizeof copy);
		terms[n].text = terms[n].shown;
		if ((why = parse_mech(tok, &terms[n])))
			return say(ev, PERM, "%s: %s in '%s'", domain, why, copy);
		n++;
	}
	*nterms = n;
	return 0;
}

static int eval_record(struct ev *ev, char *rec, const char *domain, int depth)
{
	struct term *terms = emv_xcalloc(strlen(rec) / 2 + 1, sizeof *terms);
	const char *redirect;
	char target[EMV_HOST_MAX];
	int n, rc, r = EMV_SPF_NEUTRAL;

	if ((rc = parse_record(ev, rec, domain, terms, &n, &redirect)) != 0)
		goto out;
	for (int i = 0; i < n; i++) {
		rc = eval_mech(ev, &terms[i], domain, depth);
		if (rc == MATCH) {
			r = qual_result(terms[i].qual);
			say(ev, 0, "matched %s in %s", terms[i].text, domain);
			goto out;
		}
		if (rc != NOMATCH)
			goto out;
	}
	if (redirect) {
		struct term rt = { .text = "redirect" };
		if ((rc = count_lookup(ev, &rt)) != 0 ||
		    (rc = expand_domain(ev, redirect, domain, target, sizeof target)) != 0)
			goto out;
		r = check_host(ev, target, depth + 1);
		if (r == EMV_SPF_NONE)
			r = say(ev, EMV_SPF_PERMERROR, "redirect from %s to %s: no SPF record there", domain, target);
	} else {
		say(ev, 0, "nothing matched in %s", domain);
	}
	rc = 0;
out:
	free(terms);
	if (rc == NEED)
		return NEED;
	if (rc == TEMP)
		return EMV_SPF_TEMPERROR;
	if (rc == PERM)
		return EMV_SPF_PERMERROR;
	return r;
}

static int check_host(struct ev *ev, const char *domain, int depth)
{
	const struct answer *a;
	const char *rec = NULL;
	char *copy;
	int rc;

	if (depth > DEPTH_MAX)
		return say(ev, EMV_SPF_PERMERROR, "includes nested deeper than %d", DEPTH_MAX);
	if ((rc = lookup(ev, EMV_SPF_Q_TXT, domain, &a)) != 0)
		return rc;
	if (a->st == EMV_SPF_ANS_TEMPFAIL)
		return say(ev, EMV_SPF_TEMPERROR, "TXT lookup of %s failed temporarily", domain);
	if ((rc = select_record(ev, a, domain, &rec)) < 0)
		return EMV_SPF_PERMERROR;
	if (rc == 0)
		return say(ev, EMV_SPF_NONE, "%s has no SPF record", domain);
	copy = emv_xstrdup(rec);
	rc = eval_record(ev, copy, domain, depth);
	free(copy);
	return rc;
}

/* ---- drivers ---- */

static int init_ev(struct ev *ev, emv_spf_cache *c, const emv_spf_query *q, emv_spf_eval *out)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(out, 0, sizeof *out);
	memset(ev, 0, sizeof *ev);
	ev->c = c;
	ev->q = q;
	ev->out = out;
	if (!q || !q->ip || !q->domain)
		return EMV_ERR;
	if (q->ip->sa.sa_family == AF_INET) {
		ev->fam = AF_INET;
		memcpy(ev->ip, &q->ip->in.sin_addr, 4);
	} else if (q->ip->sa.sa_family == AF_INET6) {
		const unsigned char *b = q->ip->in6.sin6_addr.s6_addr;
		/* an IPv4-mapped address is checked as the IPv4 address it is */
		ev->fam = memcmp(b, mapped, 12) == 0 ? AF_INET : AF_INET6;
		memcpy(ev->ip, ev->fam == AF_INET ? b + 12 : b, ev->fam == AF_INET ? 4 : 16);
	} else {
		return EMV_ERR;
	}
	return EMV_OK;
}

int emv_spf_step(emv_spf_cache *c, const emv_spf_query *q, emv_spf_eval *out)
{
	struct ev ev;
	char domain[EMV_HOST_MAX];
	int r;

	if (init_ev(&ev, c, q, out) != EMV_OK) {
		out->result = EMV_SPF_PERMERROR;
		emv_strlcpy(out->detail, "bad query (no address or domain)", sizeof out->detail);
		return 1;
	}
	/* §4.3: a malformed domain gives none, not an error */
	if (expand_domain(&ev, q->domain, q->domain, domain, sizeof domain) != 0 || strchr(q->domain, '%')) {
		out->result = EMV_SPF_NONE;
		snprintf(out->detail, sizeof out->detail, "'%.64s' is not a valid domain", q->domain);
		return 1;
	}
	r = check_host(&ev, domain, 0);
	if (r == NEED)
		return 0;
	out->result = (emv_spf_result)r;
	return 1;
}

emv_spf_result emv_spf_check(const emv_spf_query *q, emv_spf_resolver fn, void *ctx, emv_spf_eval *out)
{
	emv_spf_cache *c = emv_spf_cache_new();
	int done = 0;

	for (int i = 0; i < SYNC_QUERIES_MAX && !(done = emv_spf_step(c, q, out)); i++) {
		char *items[EMV_SPF_ITEMS_MAX];
		int n = 0;
		emv_spf_ans st = fn(ctx, out->need_type, out->need_name, items, EMV_SPF_ITEMS_MAX, &n);
		if (n < 0 || n > EMV_SPF_ITEMS_MAX)
			n = 0;
		emv_spf_cache_put(c, out->need_type, out->need_name, st, (const char *const *)items, n);
		for (int k = 0; k < n; k++)
			free(items[k]);
	}
	if (!done) {
		out->result = EMV_SPF_TEMPERROR;
		snprintf(out->detail, sizeof out->detail, "more than %d DNS queries", SYNC_QUERIES_MAX);
	}
	emv_spf_cache_free(c);
	return out->result;
}
