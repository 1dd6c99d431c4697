/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_classify.c - rule-table classifier of SMTP replies (see emv_classify.h
 * and the header of data/classify.rules for the file format).
 */
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "emv_classify.h"
#include "emv_reply.h"
#include "emv_util.h"

#define MAX_PATS 16 /* alternatives in one code or enhanced field */
#define MAX_ID_LEN 64

static const char *const phase_names[EMV_PHASE__COUNT] = {
	"connect", "banner", "ehlo", "helo", "starttls", "mail", "rcpt", "rset", "quit",
};

const char *emv_phase_name(int phase)
{
	return phase >= 0 && phase < EMV_PHASE__COUNT ? phase_names[phase] : "?";
}

int emv_phase_from_name(const char *name)
{
	for (int i = 0; name && i < EMV_PHASE__COUNT; i++)
		if (strcasecmp(phase_names[i], name) == 0)
			return i;
	return -1;
}

/* A basic code pattern: three characters, each a digit or 'x' (any digit). */
typedef struct {
	char d[3];
} code_pat;

/* An enhanced code pattern: up to three numbers, -1 = '*'; n < 3 means the
 * last given component was '*' and matches whatever follows. */
typedef struct {
	int v[3];
	int n;
} enh_pat;

enum { ENH_ANY = 0, ENH_NONE, ENH_LIST };
#define AUTO -1

struct rule {
	char *id;
	int line;
	unsigned phases; /* bit per emv_phase */
	int ncodes;	 /* 0 = any code */
	code_pat codes[MAX_PATS];
	int enh_mode;
	int nenh;
	enh_pat enh[MAX_PATS];
	int has_re;
	regex_t re;
	emv_reason reason;
	int status;    /* emv_status or AUTO */
	int temporary; /* 0, 1 or AUTO */
	int about_us;
};

struct emv_classifier {
	struct rule *rules;
	size_t n, cap;
};


/* ---- field parsers: each returns 0 or -1 with a message in msg ---------- */

static int parse_phases(const char *f, unsigned *out, char *msg, size_t msglen)
{
	char buf[256];
	char *save = NULL, *tok;

	if (strcmp(f, "*") == 0) {
		*out = (1u << EMV_PHASE__COUNT) - 1;
		return 0;
	}
	if (strlen(f) >= sizeof buf) {
		emv_set_err(msg, msglen, "phase list too long");
		return -1;
	}
	strcpy(buf, f);
	*out = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int ph = emv_phase_from_name(tok);
		if (ph < 0) {
			emv_set_err(msg, msglen, "unknown phase \"%s\"", tok);
			return -1;
		}
		*out |= 1u << ph;
	}
	if (!*out) {
		emv_set_err(msg, msglen, "empty phase list");
		return -1;
	}
	return 0;
}

static int parse_codes(const char *f, struct rule *r, char *msg, size_t msglen)
{
	const char *p = f;

	r->ncodes = 0;
	if (strcmp(f, "*") == 0)
		return 0;
	while (*p) {
		size_t len = strcspn(p, ",");
		code_pat c;
		if (len != 3 || r->ncodes == MAX_PATS) {
			emv_set_err(msg, msglen, "bad code pattern \"%.*s\" (want 550, 55x, 5xx or *)", (int)len, p);
			return -1;
		}
		for (int i = 0; i < 3; i++) {
			char ch = p[i];
			if (ch == 'X')
				ch = 'x';
			if (!(ch == 'x' || (ch >= '0' && ch <= '9')) ||
			    (i == 0 && ch != 'x' && (ch < '2' || ch > '5'))) {
				emv_set_err(msg, msglen, "bad code pattern \"%.3s\"", p);
				return -1;
			}
			c.d[i] = ch;
		}
		r->codes[r->ncodes++] = c;
		p += len;
		if (*p == ',')
			p++;
	}
	if (!r->ncodes) {
		emv_set_err(msg, msglen, "empty code pattern");
		return -1;
	}
	return 0;
}

static int parse_enh_one(const char *p, size_t len, enh_pat *e)
{
	size_t i = 0;

	e->n = 0;
	while (i < len && e->n < 3) {
		if (p[i] == '*') {
			e->v[e->n++] = -1;
			i++;
			if (i < len)
				return -1; /* '*' must end the pattern */
			/* "5.*" == "5.*.*": remaining components are wildcards */
			while (e->n < 3)
				e->v[e->n++] = -1;
			return 0;
		}
		int v = 0, digits = 0;
		while (i < len && p[i] >= '0' && p[i] <= '9' && digits < 4) {
			v = v * 10 + (p[i++] - '0');
			digits++;
		}
		if (digits == 0 || digits > 3)
			return -1;
		if (e->n == 0 && v != 2 && v != 4 && v != 5)
			return -1;
		e->v[e->n++] = v;
		if (i < len) {
			if (p[i] != '.' || e->n == 3)
				return -1;
			i++;
			if (i == len)
				return -1; /* trailing dot */
		}
	}
	return e->n == 3 && i == len ? 0 : -1;
}

static int parse_enhanced(const char *f, struct rule *r, char *msg, size_t msglen)
{
	const char *p = f;

	r->nenh = 0;
	if (strcmp(f, "*") == 0) {
		r->enh_mode = ENH_ANY;
		return 0;
	}
	if (strcmp(f, "-") == 0) {
		r->enh_mode = ENH_NONE;
		return 0;
	}
	r->enh_mode = ENH_LIST;
	while (*p) {
		size_t len = strcspn(p, ",");
		if (r->nenh == MAX_PATS || parse_enh_one(p, len, &r->enh[r->nenh]) < 0) {
			emv_set_err(msg, msglen, "bad enhanced code pattern \"%.*s\" (want 5.1.1, 5.1.*, 4.*, - or *)",
				    (int)len, p);
			return -1;
		}
		r->nenh++;
		p += len;
		if (*p == ',')
			p++;
	}
	if (!r->nenh) {
		emv_set_err(msg, msglen, "empty enhanced code pattern");
		return -1;
	}
	return 0;
}

static int parse_flag(const char *f, int allow_auto, int *out)
{
	if (strcmp(f, "0") == 0)
		*out = 0;
	else if (strcmp(f, "1") == 0)
		*out = 1;
	else if (allow_auto && strcmp(f, "auto") == 0)
		*out = AUTO;
	else
		return -1;
	return 0;
}

static int valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MAX_ID_LEN)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      *s == '-' || *s == '.'))
			return 0;
	return 1;
}

static void rule_free(struct rule *r)
{
	free(r->id);
	if (r->has_re)
		regfree(&r->re);
}

/* Next whitespace-separated field of *pp, NUL-terminated in place. */
static char *next_field(char **pp)
{
	char *p = *pp, *start;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return NULL;
	start = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	*pp = p;
	return start;
}

/*
 * Parse one logical rule line:
 *   id phases code enhanced reason status temporary about_us phrase...
 * The phrase is the rest of the line (it may contain blanks), "-" for none.
 */
static int parse_rule(emv_classifier *c, char *line, int lineno, char *msg, size_t msglen)
{
	static const char *const names[] = { "id",     "phases", "code",      "enhanced",
					     "reason", "status", "temporary", "about_us" };
	char *f[8], *p = line, *phrase;
	struct rule r;
	int v;

	for (int i = 0; i < 8; i++) {
		f[i] = next_field(&p);
		if (!f[i]) {
			emv_set_err(msg, msglen,
				    "missing field '%s' (want: id phases code enhanced reason status "
				    "temporary about_us phrase)",
				    names[i]);
			return -1;
		}
	}
	phrase = emv_trim(p);
	if (!*phrase) {
		emv_set_err(msg, msglen, "missing field 'phrase' (a POSIX ERE, or - for none)");
		return -1;
	}

	memset(&r, 0, sizeof r);
	r.line = lineno;
	if (!valid_id(f[0])) {
		emv_set_err(msg, msglen, "bad rule id \"%.80s\" (letters, digits, _ - . ; max %d)", f[0], MAX_ID_LEN);
		return -1;
	}
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->rules[i].id, f[0]) == 0) {
			emv_set_err(msg, msglen, "duplicate rule id \"%s\" (first at line %d)", f[0], c->rules[i].line);
			return -1;
		}
	if (parse_phases(f[1], &r.phases, msg, msglen) < 0 || parse_codes(f[2], &r, msg, msglen) < 0 ||
	    parse_enhanced(f[3], &r, msg, msglen) < 0)
		return -1;
	if ((v = emv_reason_from_name(f[4])) < 0) {
		emv_set_err(msg, msglen, "unknown reason \"%.80s\"", f[4]);
		return -1;
	}
	r.reason = (emv_reason)v;
	if (strcmp(f[5], "auto") == 0) {
		r.status = AUTO;
	} else if ((r.status = emv_status_from_name(f[5])) < 0) {
		emv_set_err(msg, msglen, "unknown status \"%.80s\" (or auto)", f[5]);
		return -1;
	}
	if (parse_flag(f[6], 1, &r.temporary) < 0) {
		emv_set_err(msg, msglen, "temporary must be 0, 1 or auto, not \"%.80s\"", f[6]);
		return -1;
	}
	if (parse_flag(f[7], 0, &r.about_us) < 0) {
		emv_set_err(msg, msglen, "about_us must be 0 or 1, not \"%.80s\"", f[7]);
		return -1;
	}
	if (strcmp(phrase, "-") != 0) {
		int rc = regcomp(&r.re, phrase, REG_EXTENDED | REG_ICASE | REG_NOSUB);
		if (rc != 0) {
			char rerr[160];
			regerror(rc, &r.re, rerr, sizeof rerr);
			emv_set_err(msg, msglen, "bad phrase regex: %s", rerr);
			return -1;
		}
		r.has_re = 1;
	}
	r.id = emv_xstrdup(f[0]);
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->rules = emv_xrealloc(c->rules, c->cap * sizeof *c->rules);
	}
	c->rules[c->n++] = r;
	return 0;
}

emv_classifier *emv_classifier_load(const char *path, char *err, size_t errlen)
{
	emv_classifier *c;
	FILE *fp;
	char *buf = NULL, *logical = NULL, msg[256];
	size_t bufcap = 0, llen = 0, lcap = 0;
	ssize_t got;
	int lineno = 0, first = 0, ok = 1;

	if (!path) {
		emv_set_err(err, errlen, "no rules file given");
		return NULL;
	}
	fp = fopen(path, "r");
	if (!fp) {
		emv_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	c = emv_xcalloc(1, sizeof *c);
	while (ok && (got = getline(&buf, &bufcap, fp)) != -1) {
		char *s;
		size_t n;
		int cont;

		lineno++;
		s = buf;
		if (llen == 0) {
			/* Comments and blank lines only between rules; a '#' inside a
			 * phrase (qmail's "(#5.1.1)") is ordinary text. */
			char *t = s;
			while (*t == ' ' || *t == '\t')
				t++;
			if (*t == '#' || *t == '\n' || *t == '\r' || *t == '\0')
				continue;
			first = lineno;
		} else {
			while (*s == ' ' || *s == '\t')
				s++; /* continuation: leading blanks are indentation */
		}
		n = strlen(s);
		if (n != (size_t)got - (size_t)(s - buf)) {
			snprintf(msg, sizeof msg, "NUL byte in line");
			emv_set_err(err, errlen, "%s:%d: %s", path, lineno, msg);
			ok = 0;
			break;
		}
		while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		cont = n && s[n - 1] == '\\';
		if (cont)
			n--;
		if (llen + n + 1 > lcap) {
			lcap = (llen + n + 1) * 2;
			logical = emv_xrealloc(logical, lcap);
		}
		memcpy(logical + llen, s, n);
		llen += n;
		logical[llen] = '\0';
		if (cont)
			continue;
		if (parse_rule(c, logical, first, msg, sizeof msg) < 0) {
			emv_set_err(err, errlen, "%s:%d: %s", path, first, msg);
			ok = 0;
		}
		llen = 0;
	}
	if (ok && ferror(fp)) {
		emv_set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
		ok = 0;
	}
	if (ok && llen) {
		emv_set_err(err, errlen, "%s:%d: file ends inside a continued line", path, first);
		ok = 0;
	}
	if (ok && c->n == 0) {
		emv_set_err(err, errlen, "%s: no rules", path);
		ok = 0;
	}
	free(buf);
	free(logical);
	fclose(fp);
	if (!ok) {
		emv_classifier_free(c);
		return NULL;
	}
	return c;
}

emv_classifier *emv_classifier_load_default(char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/classify.rules", emv_data_dir(NULL));
	return emv_classifier_load(path, err, errlen);
}

void emv_classifier_free(emv_classifier *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		rule_free(&c->rules[i]);
	free(c->rules);
	free(c);
}

size_t emv_classifier_rule_count(const emv_classifier *c)
{
	return c ? c->n : 0;
}

/* ---- matching ---------------------------------------------------------- */

static int code_matches(const struct rule *r, int code)
{
	char s[4];

	if (r->ncodes == 0)
		return 1;
	if (code < 100 || code > 999)
		return 0;
	snprintf(s, sizeof s, "%03d", code);
	for (int i = 0; i < r->ncodes; i++) {
		const code_pat *c = &r->codes[i];
		int j;
		for (j = 0; j < 3; j++)
			if (c->d[j] != 'x' && c->d[j] != s[j])
				break;
		if (j == 3)
			return 1;
	}
	return 0;
}

static int enh_matches(const struct rule *r, int have, const int v[3])
{
	if (r->enh_mode == ENH_ANY)
		return 1;
	if (r->enh_mode == ENH_NONE)
		return !have;
	if (!have)
		return 0;
	for (int i = 0; i < r->nenh; i++) {
		const enh_pat *e = &r->enh[i];
		int j;
		for (j = 0; j < 3; j++)
			if (e->v[j] != -1 && e->v[j] != v[j])
				break;
		if (j == 3)
			return 1;
	}
	return 0;
}

/* Split a validated enhanced code into numbers; 0 when absent or invalid. */
static int enh_split(const char *enhanced, int v[3])
{
	char buf[16], *p;

	if (!enhanced || !*enhanced)
		return 0;
	if (!emv_enhanced_parse(enhanced, strlen(enhanced), buf, sizeof buf))
		return 0;
	p = buf;
	for (int i = 0; i < 3; i++) {
		v[i] = (int)strtol(p, &p, 10); /* at most 3 digits each: no overflow */
		if (*p == '.')
			p++;
	}
	return 1;
}

/*
 * The text phrases are matched against: lines joined by one space, and the
 * enhanced code that servers repeat at the start of every continuation line
 * dropped.  Gmail wraps one sentence over several "550-5.7.1 ..." lines;
 * without this a phrase could never span a line break.  out has room for
 * strlen(text) + 1 bytes (the result is never longer).
 */
static void flatten(const char *text, char *out)
{
	const char *p = text;
	char *w = out;

	while (*p) {
		if (*p != '\n') {
			*w++ = *p++;
			continue;
		}
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		{
			char enh[16];
			size_t len = strcspn(p, "\n");
			if (emv_enhanced_parse(p, len, enh, sizeof enh)) {
				p += strlen(enh);
				while (*p == ' ')
					p++;
			}
		}
		if (w > out && w[-1] != ' ')
			*w++ = ' ';
	}
	*w = '\0';
}

void emv_classify(const emv_classifier *c, int phase, int code, const char *enhanced, const char *text,
		  emv_verdict *out)
{
	unsigned bit = phase >= 0 && phase < EMV_PHASE__COUNT ? 1u << phase : 0;
	int cls = code / 100, have_enh, v[3] = { 0, 0, 0 };
	const struct rule *hit = NULL;
	char stackbuf[EMV_REPLY_TEXT_MAX], *flat = stackbuf;
	size_t tlen;

	if (!text)
		text = "";
	tlen = strlen(text);
	if (tlen >= sizeof stackbuf) /* only callers not using emv_reply */
		flat = emv_xmalloc(tlen + 1);
	flatten(text, flat);

	have_enh = enh_split(enhanced, v);
	for (size_t i = 0; c && i < c->n && !hit; i++) {
		const struct rule *r = &c->rules[i];
		if (!(r->phases & bit) || !code_matches(r, code) || !enh_matches(r, have_enh, v))
			continue;
		if (r->has_re && regexec(&r->re, flat, 0, NULL, 0) != 0)
			continue;
		hit = r;
	}
	if (flat != stackbuf)
		free(flat);
	if (!hit) {
		out->status = EMV_STATUS_UNKNOWN;
		out->reason = EMV_REASON_PROTOCOL_ERROR;
		out->temporary = cls == 4;
		out->about_us = 0;
		out->rule_id = "no_rule";
		return;
	}
	out->reason = hit->reason;
	out->status = hit->status == AUTO ? emv_reason_default_status(hit->reason) : (emv_status)hit->status;
	out->temporary = hit->temporary == AUTO ? cls == 4 : hit->temporary;
	out->about_us = hit->about_us;
	out->rule_id = hit->id;

	/* Guard rails (see emv_classify.h): the data file cannot break these. */
	if (out->status != EMV_STATUS_UNKNOWN && (phase != EMV_PHASE_RCPT || out->about_us))
		out->status = EMV_STATUS_UNKNOWN;
	if (out->status == EMV_STATUS_DELIVERABLE && cls != 2)
		out->status = EMV_STATUS_UNKNOWN;
	if (out->status == EMV_STATUS_UNDELIVERABLE && cls != 5)
		out->status = EMV_STATUS_UNKNOWN;
	if (out->status == EMV_STATUS_RISKY && cls != 4 && cls != 5)
		out->status = EMV_STATUS_UNKNOWN;
	if (cls == 4)
		out->temporary = 1;
}
