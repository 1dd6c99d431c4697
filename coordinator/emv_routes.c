/* SPDX-License-Identifier: Apache-2.0 */
/* emv_routes.c - domain -> region routing rules (see emv_routes.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_routes.h"
#include "emv_util.h"

struct rule {
	char *suffix;
	char region[EMV_ROUTES_REGION_MAX];
};

struct emv_routes {
	struct rule *rules; /* sorted by suffix, for bsearch */
	size_t n;
	char def[EMV_ROUTES_REGION_MAX]; /* "" = shared topic */
};

int emv_routes_region_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n >= EMV_ROUTES_REGION_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int suffix_valid(const char *s)
{
	size_t n = strlen(s), label = 0;
	if (n < 1 || n > EMV_HOST_NAME_MAX || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

static int cmp_rule(const void *a, const void *b)
{
	return strcmp(((const struct rule *)a)->suffix, ((const struct rule *)b)->suffix);
}

void emv_routes_free(emv_routes *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->rules[i].suffix);
	free(r->rules);
	free(r);
}

/* Split line into at most 4 words (NUL-terminating them in place). */
static int words(char *line, char *w[4])
{
	int n = 0;
	char *p = line;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (n == 4)
			return 5;
		w[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

emv_routes *emv_routes_parse(const char *buf, size_t len, const char *name, char *err, size_t errlen)
{
	emv_routes *r = emv_xcalloc(1, sizeof *r);
	size_t cap = 0, lineno = 0, pos = 0;
	char line[EMV_ROUTES_LINE_MAX];

	while (pos < len) {
		size_t end = pos, n;
		char *w[4], *hash;
		int nw;

		while (end < len && buf[end] != '\n')
			end++;
		lineno++;
		n = end - pos;
		if (n && buf[pos + n - 1] == '\r')
			n--;
		if (n >= sizeof line) {
			emv_set_err(err, errlen, "%s:%zu: line longer than %d characters", name, lineno,
				    EMV_ROUTES_LINE_MAX - 1);
			goto bad;
		}
		if (memchr(buf + pos, '\0', n)) {
			emv_set_err(err, errlen, "%s:%zu: NUL byte", name, lineno);
			goto bad;
		}
		memcpy(line, buf + pos, n);
		line[n] = '\0';
		pos = end + 1;
		if ((hash = strchr(line, '#')))
			*hash = '\0';
		for (char *p = line; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		nw = words(line, w);
		if (nw == 0)
			continue;
		if (strcmp(w[0], "default") == 0 && nw == 2) {
			if (strcmp(w[1], "*") != 0 && !emv_routes_region_valid(w[1])) {
				emv_set_err(err, errlen, "%s:%zu: region '%.40s' is not 1..31 of a-z 0-9 _ -", name,
					    lineno, w[1]);
				goto bad;
			}
			emv_strlcpy(r->def, strcmp(w[1], "*") == 0 ? "" : w[1], sizeof r->def);
			continue;
		}
		if (strcmp(w[0], "domain") != 0 || nw != 3) {
			emv_set_err(err, errlen, "%s:%zu: expected 'domain SUFFIX REGION' or 'default REGION'", name,
				    lineno);
			goto bad;
		}
		if (w[1][0] && w[1][strlen(w[1]) - 1] == '.')
			w[1][strlen(w[1]) - 1] = '\0';
		if (!suffix_valid(w[1])) {
			emv_set_err(err, errlen, "%s:%zu: '%.80s' is not a domain name (A-label form)", name, lineno,
				    w[1]);
			goto bad;
		}
		if (!emv_routes_region_valid(w[2])) {
			emv_set_err(err, errlen, "%s:%zu: region '%.40s' is not 1..31 of a-z 0-9 _ -", name, lineno,
				    w[2]);
			goto bad;
		}
		if (r->n == EMV_ROUTES_MAX) {
			emv_set_err(err, errlen, "%s:%zu: more than %d rules", name, lineno, EMV_ROUTES_MAX);
			goto bad;
		}
		if (r->n == cap) {
			cap = cap ? cap * 2 : 16;
			r->rules = emv_xrealloc(r->rules, cap * sizeof *r->rules);
		}
		r->rules[r->n].suffix = emv_xstrdup(w[1]);
		emv_strlcpy(r->rules[r->n].region, w[2], sizeof r->rules[r->n].region);
		r->n++;
	}
	if (r->n)
		qsort(r->rules, r->n, sizeof *r->rules, cmp_rule);
	for (size_t i = 1; i < r->n; i++)
		if (strcmp(r->rules[i].suffix, r->rules[i - 1].suffix) == 0 &&
		    strcmp(r->rules[i].region, r->rules[i - 1].region) != 0) {
			emv_set_err(err, errlen, "%s: domain %s is routed to both %s and %s", name, r->rules[i].suffix,
				    r->rules[i - 1].region, r->rules[i].region);
			goto bad;
		}
	return r;
bad:
	emv_routes_free(r);
	return NULL;
}

emv_routes *emv_routes_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	emv_routes *r;

	if (!f) {
		emv_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	do {
		if (len + 65536 > cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > (64u << 20)) {
				emv_set_err(err, errlen, "%s: larger than 64 MiB", path);
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = emv_xrealloc(buf, cap);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		emv_set_err(err, errlen, "%s: read error", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	r = emv_routes_parse(buf, len, path, err, errlen);
	free(buf);
	return r;
}

const char *emv_routes_region(const emv_routes *r, const char *domain)
{
	/* try the domain, then each parent: the first hit is the longest */
	for (const char *p = domain; r && p && *p;) {
		struct rule key = { .suffix = (char *)p }, *hit;
		hit = r->n ? bsearch(&key, r->rules, r->n, sizeof *r->rules, cmp_rule) : NULL;
		if (hit)
			return hit->region;
		p = strchr(p, '.');
		if (p)
			p++;
	}
	return r && r->def[0] ? r->def : NULL;
}
