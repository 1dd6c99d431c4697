/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_pool.c - parse a worker's identity and source-IP pool (see emv_pool.h).
 *
 * One pass over the buffer, line by line, into a heap emv_pool; the first
 * problem stops the parse and is reported with the line and field.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_pool.h"
#include "emv_util.h"

#define FILE_MAX (1u << 20)

struct parser {
	emv_pool *p;
	const char *name;
	int line;
	int seen_region, seen_mail_from, seen_audit, seen_interval;
	char *err;
	size_t errlen;
};

static int perr(struct parser *ps, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int perr(struct parser *ps, const char *field, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	emv_set_err(ps->err, ps->errlen, "%s:%d: %s: %s", ps->name, ps->line, field, what);
	return EMV_ERR;
}

/* A value as it may be shown in an error: printable and short. */
static const char *shown(const char *v, char *buf, size_t buflen)
{
	emv_sanitize(buf, buflen, v, strlen(v));
	return buf;
}

/*
 * Host-name syntax: 2+ labels of [a-z0-9-] (plus '_' when allow_us, for
 * DNSBL zones), 1..63 each, no '-' at either end of a label, <= 253 total.
 * Lower-cases in place and drops one trailing dot.  NULL or a reason.
 */
static const char *check_host(char *s, int allow_us)
{
	size_t n = strlen(s), lab = 0;
	int labels = 1;

	if (n > 0 && s[n - 1] == '.')
		s[--n] = '\0';
	if (n == 0)
		return "empty host name";
	if (n > EMV_HOST_NAME_MAX)
		return "host name longer than 253 characters";
	emv_ascii_lower(s);
	for (size_t i = 0; i <= n; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (lab == 0)
				return "empty label";
			if (lab > 63)
				return "label longer than 63 characters";
			if (s[i - 1] == '-' || s[i - lab] == '-')
				return "label starts or ends with '-'";
			if (c == '.')
				labels++;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (allow_us && c == '_')))
			return "character not allowed in a host name";
		lab++;
	}
	return labels < 2 ? "not a fully-qualified name (needs a dot)" : NULL;
}

/* RFC 5322 atext plus dots, as a dot-atom: no quoted local parts. */
static int check_local(const char *s, size_t n)
{
	if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
		return EMV_ERR;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.' && s[i + 1] == '.')
			return EMV_ERR;
		if (c <= 0x20 || c >= 0x7f || strchr("()<>[]:;@\\,\"", c))
			return EMV_ERR;
	}
	return EMV_OK;
}

static int set_region(struct parser *ps, char *v)
{
	char b[64];
	size_t n = strlen(v);

	if (ps->seen_region++)
		return perr(ps, "region", "given twice");
	if (n == 0 || n >= EMV_POOL_REGION_MAX)
		return perr(ps, "region", "'%s': expected 1..%d characters", shown(v, b, sizeof b),
			    EMV_POOL_REGION_MAX - 1);
	emv_ascii_lower(v);
	if (strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_-") != n)
		return perr(ps, "region", "'%s': only a-z 0-9 _ - allowed", shown(v, b, sizeof b));
	memcpy(ps->p->region, v, n + 1);
	return EMV_OK;
}

static int set_mail_from(struct parser *ps, char *v)
{
	char b[80];
	char *at = strrchr(v, '@');
	const char *why;

	if (ps->seen_mail_from++)
		return perr(ps, "mail_from", "given twice");
	if (!at || check_local(v, (size_t)(at - v)) != EMV_OK)
		return perr(ps, "mail_from", "'%s': expected local@domain with a plain local part",
			    shown(v, b, sizeof b));
	if ((why = check_host(at + 1, 0)))
		return perr(ps, "mail_from", "domain of '%s': %s", shown(v, b, sizeof b), why);
	snprintf(ps->p->mail_from, sizeof ps->p->mail_from, "%s", v);
	emv_strlcpy(ps->p->mail_from_domain, at + 1, sizeof ps->p->mail_from_domain);
	return EMV_OK;
}

/* Parse an address literal into s->addr and its canonical text. */
static int parse_ip(const char *v, emv_pool_source *s)
{
	memset(&s->addr, 0, sizeof s->addr);
	if (inet_pton(AF_INET, v, &s->addr.in.sin_addr) == 1) {
		s->addr.in.sin_family = AF_INET;
		inet_ntop(AF_INET, &s->addr.in.sin_addr, s->ip, sizeof s->ip);
		return EMV_OK;
	}
	if (inet_pton(AF_INET6, v, &s->addr.in6.sin6_addr) == 1) {
		s->addr.in6.sin6_family = AF_INET6;
		inet_ntop(AF_INET6, &s->addr.in6.sin6_addr, s->ip, sizeof s->ip);
		return EMV_OK;
	}
	return EMV_ERR;
}

static int add_source(struct parser *ps, char *v)
{
	char b[80];
	char *helo = v + strcspn(v, " \t");
	emv_pool_source s;
	const char *why;

	if (*helo)
		*helo++ = '\0';
	helo += strspn(helo, " \t");
	if (*v == '\0' || *helo == '\0' || helo[strcspn(helo, " \t")] != '\0')
		return perr(ps, "source", "expected 'ADDRESS HELO-NAME'");
	memset(&s, 0, sizeof s);
	if (parse_ip(v, &s) != EMV_OK)
		return perr(ps, "source", "'%s' is not an IPv4 or IPv6 address", shown(v, b, sizeof b));
	if (strlen(helo) >= sizeof s.helo || (why = check_host(helo, 0)))
		return perr(ps, "source", "HELO name '%s': %s", shown(helo, b, sizeof b),
			    strlen(helo) >= sizeof s.helo ? "too long" : why);
	emv_strlcpy(s.helo, helo, sizeof s.helo);
	if (emv_pool_find(ps->p, s.ip) >= 0)
		return perr(ps, "source", "address %s listed twice", s.ip);
	if (ps->p->nsources >= EMV_POOL_SOURCES_MAX)
		return perr(ps, "source", "more than %d source addresses", EMV_POOL_SOURCES_MAX);
	ps->p->sources[ps->p->nsources++] = s;
	return EMV_OK;
}

static int add_dnsbl(struct parser *ps, char *v)
{
	char b[80];
	const char *why;

	if (strlen(v) >= EMV_HOST_MAX || (why = check_host(v, 1)))
		return perr(ps, "dnsbl", "zone '%s': %s", shown(v, b, sizeof b),
			    strlen(v) >= EMV_HOST_MAX ? "too long" : why);
	for (int i = 0; i < ps->p->ndnsbl; i++)
		if (strcmp(ps->p->dnsbl[i], v) == 0)
			return perr(ps, "dnsbl", "zone %s listed twice", v);
	if (ps->p->ndnsbl >= EMV_POOL_DNSBL_MAX)
		return perr(ps, "dnsbl", "more than %d zones", EMV_POOL_DNSBL_MAX);
	emv_strlcpy(ps->p->dnsbl[ps->p->ndnsbl++], v, EMV_HOST_MAX);
	return EMV_OK;
}

static int set_audit(struct parser *ps, char *v)
{
	char b[64];

	if (ps->seen_audit++)
		return perr(ps, "audit_failures", "given twice");
	if (strcmp(v, "hold") == 0)
		ps->p->audit_failures = EMV_POOL_AUDIT_HOLD;
	else if (strcmp(v, "run") == 0)
		ps->p->audit_failures = EMV_POOL_AUDIT_RUN;
	else
		return perr(ps, "audit_failures", "'%s': expected hold or run", shown(v, b, sizeof b));
	return EMV_OK;
}

static int set_interval(struct parser *ps, char *v)
{
	char b[64];

	if (ps->seen_interval++)
		return perr(ps, "audit_interval", "given twice");
	if (emv_parse_duration_ms(v, &ps->p->audit_interval_ms) < 0)
		return perr(ps, "audit_interval", "'%s': expected a duration such as 90, 10m or 1h (0 = only at start)",
			    shown(v, b, sizeof b));
	return EMV_OK;
}

/* '#' starts a comment at the start of the line or after a blank. */
static void strip_comment(char *s)
{
	for (char *c = s; *c; c++)
		if (*c == '#' && (c == s || c[-1] == ' ' || c[-1] == '\t')) {
			*c = '\0';
			return;
		}
}

static int parse_line(struct parser *ps, char *s)
{
	char b[64];
	char *eq, *key, *v;

	strip_comment(s);
	s = emv_trim(s);
	if (*s == '\0')
		return EMV_OK;
	if (!(eq = strchr(s, '=')))
		return perr(ps, "line", "expected 'key = value', got '%s'", shown(s, b, sizeof b));
	*eq = '\0';
	key = emv_trim(s);
	v = emv_trim(eq + 1);
	if (*v == '\0')
		return perr(ps, *key ? key : "line", "empty value");
	if (strcmp(key, "region") == 0)
		return set_region(ps, v);
	if (strcmp(key, "mail_from") == 0)
		return set_mail_from(ps, v);
	if (strcmp(key, "source") == 0)
		return add_source(ps, v);
	if (strcmp(key, "dnsbl") == 0)
		return add_dnsbl(ps, v);
	if (strcmp(key, "audit_failures") == 0)
		return set_audit(ps, v);
	if (strcmp(key, "audit_interval") == 0)
		return set_interval(ps, v);
	return perr(ps, "line", "unknown key '%s'", shown(key, b, sizeof b));
}

static int check_required(struct parser *ps)
{
	const char *missing = !ps->seen_region	     ? "region"
			      : !ps->seen_mail_from  ? "mail_from"
			      : ps->p->nsources == 0 ? "source"
						     : NULL;
	if (!missing)
		return EMV_OK;
	emv_set_err(ps->err, ps->errlen, "%s: %s: missing (required)", ps->name, missing);
	return EMV_ERR;
}

emv_pool *emv_pool_parse(const char *buf, size_t len, const char *name, char *err, size_t errlen)
{
	struct parser ps = { .name = name ? name : "(buffer)", .err = err, .errlen = errlen };
	char line[EMV_POOL_LINE_MAX];
	size_t pos = 0;

	ps.p = emv_xcalloc(1, sizeof *ps.p);
	ps.p->audit_failures = EMV_POOL_AUDIT_HOLD;
	ps.p->audit_interval_ms = EMV_POOL_AUDIT_INTERVAL_MS;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = (nl ? (size_t)(nl - buf) : len) - pos;

		ps.line++;
		if (n > 0 && buf[pos + n - 1] == '\r')
			n--;
		if (n >= sizeof line) {
			perr(&ps, "line", "longer than %d characters", EMV_POOL_LINE_MAX - 1);
			goto fail;
		}
		if (memchr(buf + pos, '\0', n)) {
			perr(&ps, "line", "contains a NUL byte");
			goto fail;
		}
		memcpy(line, buf + pos, n);
		line[n] = '\0';
		if (parse_line(&ps, line) != EMV_OK)
			goto fail;
		if (!nl)
			break;
		pos = (size_t)(nl - buf) + 1;
	}
	if (check_required(&ps) == EMV_OK)
		return ps.p;
fail:
	free(ps.p);
	return NULL;
}

emv_pool *emv_pool_load(const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	size_t n;
	emv_pool *p;

	if (!fp) {
		emv_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = emv_xmalloc(FILE_MAX + 1);
	n = fread(buf, 1, FILE_MAX + 1, fp);
	if (ferror(fp) || n > FILE_MAX) {
		emv_set_err(err, errlen, "%s: %s", path, ferror(fp) ? strerror(errno) : "larger than 1 MiB");
		fclose(fp);
		free(buf);
		return NULL;
	}
	fclose(fp);
	p = emv_pool_parse(buf, n, path, err, errlen);
	free(buf);
	return p;
}

void emv_pool_free(emv_pool *p)
{
	free(p);
}

int emv_pool_find(const emv_pool *p, const char *ip)
{
	emv_pool_source s;

	if (!p || !ip || parse_ip(ip, &s) != EMV_OK)
		return -1;
	for (int i = 0; i < p->nsources; i++)
		if (strcmp(p->sources[i].ip, s.ip) == 0)
			return i;
	return -1;
}
