/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_providers.c - provider policy file parser and MX-suffix matcher.
 *
 * Loading happens in two steps.  Parsing fills one raw policy per section
 * and remembers which keys each section set (a bit per setting); the mx
 * suffixes go straight into the suffix table, which rejects duplicates.
 * Resolution then builds the effective policies: built-in defaults, over
 * them what [default] set, over that what each provider set.  Sections may
 * come in any order: [default] may follow the providers that inherit it.
 *
 * Suffix table: open addressing with linear probing, load factor <= 1/2.
 * Its hash walks a name from the RIGHT (FNV-1a over the reversed bytes), so
 * that one right-to-left pass over an MX host yields the hash of each of its
 * label-aligned suffixes in turn; matching is then one probe per label,
 * longest suffix first.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include "emv_defaults.h"
#include "emv_providers.h"
#include "emv_util.h"


#define HOST_MAX EMV_HOST_NAME_MAX
#define LABEL_MAX 63
#define LABELS_MAX 127	  /* 253 characters hold at most 127 labels */
#define TABLE_MIN_BITS 6  /* 64 slots */
#define TABLE_MAX_BITS 24 /* 16M slots: far beyond any sane file */

static const emv_provider builtin_default = {
	.name = "default",
	.pipelining = EMV_DEF_PIPELINING,
	.rcpt_per_txn = EMV_DEF_RCPT_PER_TXN,
	.rcpt_per_session = EMV_DEF_RCPT_PER_SESSION,
	.errors_per_session = EMV_DEF_ERRORS_PER_SESSION,
	.sessions_per_mx = EMV_DEF_SESSIONS_PER_MX,
	.sessions_per_ip = EMV_DEF_SESSIONS_PER_IP,
	.rcpt_per_minute = EMV_DEF_RCPT_PER_MINUTE,
	.rcpt_per_hour = EMV_DEF_RCPT_PER_HOUR,
	.rcpt_per_day = EMV_DEF_RCPT_PER_DAY,
	.catch_all_probe = EMV_DEF_CATCH_ALL_PROBE,
	.accepts_all = EMV_DEF_ACCEPTS_ALL,
	.connect_timeout_ms = EMV_DEF_CONNECT_TIMEOUT_MS,
	.reply_timeout_ms = EMV_DEF_REPLY_TIMEOUT_MS,
	.greylist_wait_ms = EMV_DEF_POLICY_GREYLIST_WAIT_MS,
	.tls = EMV_PROVIDER_TLS_OPPORTUNISTIC,
	.budget_scope = EMV_PROVIDER_SCOPE_MX,
	.notes = "",
	.verdict_note = "",
};

/* ------------------------------------------------------------------ */
/* The settings: one table drives parsing, inheritance and messages.   */

enum kind { K_BOOL, K_INT, K_TIME, K_TLS, K_SCOPE, K_NOTES, K_MX };

struct setting {
	const char *key;
	enum kind kind;
	size_t off;	  /* into emv_provider; unused for K_MX */
	long min, max;	  /* K_INT: the value; K_TIME: milliseconds */
	const char *what; /* unit / meaning, quoted in error messages */
};

#define OFF(f) offsetof(emv_provider, f)

static const struct setting settings[] = {
	{ "mx", K_MX, 0, 0, 0, "MX host suffixes" },
	{ "pipelining", K_BOOL, OFF(pipelining), 0, 1, "yes or no" },
	{ "rcpt_per_txn", K_INT, OFF(rcpt_per_txn), 1, 1000, "recipients per transaction" },
	{ "rcpt_per_session", K_INT, OFF(rcpt_per_session), 1, 100000, "recipients per session" },
	{ "errors_per_session", K_INT, OFF(errors_per_session), 1, 1000,
	  "rejected commands per session before it ends (a new one asks the rest)" },
	{ "sessions_per_mx", K_INT, OFF(sessions_per_mx), 1, 1000, "concurrent sessions per MX host" },
	{ "sessions_per_ip", K_INT, OFF(sessions_per_ip), 1, 1000, "concurrent sessions per source IP" },
	{ "rcpt_per_minute", K_INT, OFF(rcpt_per_minute), 0, 1000000, "RCPTs per minute per source IP, 0 = unlimited" },
	{ "rcpt_per_hour", K_INT, OFF(rcpt_per_hour), 0, 100000000, "RCPTs per hour per source IP, 0 = unlimited" },
	{ "rcpt_per_day", K_INT, OFF(rcpt_per_day), 0, 1000000000, "RCPTs per day per source IP, 0 = unlimited" },
	{ "pool_rcpt_per_minute", K_INT, OFF(pool_rcpt_per_minute), 0, 1000000000,
	  "RCPTs per minute from all source IPs together, 0 = no such limit" },
	{ "pool_rcpt_per_hour", K_INT, OFF(pool_rcpt_per_hour), 0, 1000000000,
	  "RCPTs per hour from all source IPs together, 0 = no such limit" },
	{ "pool_rcpt_per_day", K_INT, OFF(pool_rcpt_per_day), 0, 1000000000,
	  "RCPTs per day from all source IPs together, 0 = no such limit" },
	{ "catch_all_probe", K_BOOL, OFF(catch_all_probe), 0, 1, "yes or no" },
	{ "accepts_all", K_BOOL, OFF(accepts_all), 0, 1, "yes or no" },
	{ "connect_timeout", K_TIME, OFF(connect_timeout_ms), 1000, 600000, "seconds, 1..600" },
	{ "reply_timeout", K_TIME, OFF(reply_timeout_ms), 1000, 600000, "seconds, 1..600" },
	{ "greylist_wait", K_TIME, OFF(greylist_wait_ms), 1000, 86400000, "seconds, 1..86400" },
	{ "tls", K_TLS, OFF(tls), 0, 0, "opportunistic or never" },
	{ "budget_scope", K_SCOPE, OFF(budget_scope), 0, 0, "provider or mx" },
	{ "notes", K_NOTES, OFF(notes), 0, 0, "free text" },
	{ "verdict_note", K_NOTES, OFF(verdict_note), 0, 0, "free text" },
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static void copy_setting(emv_provider *dst, const emv_provider *src, const struct setting *s)
{
	if (s->kind == K_MX)
		return;
	if (s->kind == K_NOTES)
		memcpy((char *)dst + s->off, (const char *)src + s->off, EMV_PROVIDER_NOTES_MAX);
	else
		memcpy((char *)dst + s->off, (const char *)src + s->off, sizeof(int));
}

/* ------------------------------------------------------------------ */
/* Suffix table.                                                       */

struct slot {
	char *suffix; /* NULL: empty; lower case, no leading/trailing dot */
	uint32_t len;
	uint32_t hash;
	int provider; /* index into providers[] */
	int line;     /* where it was listed, for duplicate messages */
};

struct emv_providers {
	emv_provider *list; /* [0] is the default, then file order */
	size_t n;	    /* entries in list, default included */
	struct slot *slots;
	unsigned bits;
	size_t nsuffix;
};

static uint64_t hash_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * 0x100000001b3ull; /* FNV-1a, 64 bit */
}

static uint32_t hash_fold(uint64_t h)
{
	return (uint32_t)(h ^ (h >> 32));
}

#define HASH_INIT 0xcbf29ce484222325ull

/* Hash of s[0..len) read right to left, as the matcher computes it. */
static uint32_t suffix_hash(const char *s, size_t len)
{
	uint64_t h = HASH_INIT;

	while (len-- > 0)
		h = hash_step(h, (unsigned char)s[len]);
	return hash_fold(h);
}

static size_t table_home(uint32_t hash, unsigned bits)
{
	return (size_t)((uint32_t)(hash * 0x9e3779b9u) >> (32 - bits));
}

/* Slot holding s, or the empty slot where it would go. */
static size_t table_find(const struct slot *slots, unsigned bits, const char *s, uint32_t len, uint32_t hash)
{
	size_t mask = ((size_t)1 << bits) - 1;
	size_t i = table_home(hash, bits);

	for (;;) {
		const struct slot *sl = &slots[i];
		if (!sl->suffix || (sl->hash == hash && sl->len == len && memcmp(sl->suffix, s, len) == 0))
			return i;
		i = (i + 1) & mask;
	}
}

static void table_grow(emv_providers *p)
{
	struct slot *old = p->slots;
	size_t i, oldcap = (size_t)1 << p->bits;

	p->bits++;
	p->slots = emv_xcalloc((size_t)1 << p->bits, sizeof(*p->slots));
	for (i = 0; i < oldcap; i++)
		if (old[i].suffix)
			p->slots[table_find(p->slots, p->bits, old[i].suffix, old[i].len, old[i].hash)] = old[i];
	free(old);
}

/* ------------------------------------------------------------------ */
/* Parser state and errors.                                            */

struct section {
	emv_provider raw;   /* the values this section set */
	int set[NSETTINGS]; /* line where each setting was set, 0 = unset */
	int line;	    /* of the [header]; 0 for an absent [default] */
	int nmx;	    /* suffixes listed */
};

struct parser {
	const char *path;
	int line;
	char *err;
	size_t errlen;
	emv_providers *p;
	struct section *sec; /* parallel to p->list */
	size_t cap;
	long cur; /* current section index, -1 before any */
};

static int perr(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int perr(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!ps->err || ps->errlen == 0)
		return EMV_ERR;
	n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->path, ps->line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return EMV_ERR;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return EMV_ERR;
}

/* Values are quoted in messages; keep them short and printable. */
static const char *shown(const char *v, char *buf, size_t buflen)
{
	emv_sanitize(buf, buflen, v, strlen(v));
	return buf;
}

/* ------------------------------------------------------------------ */
/* Value parsers.                                                      */

static int parse_bool(const char *v, int *out)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on")) {
		*out = 1;
		return EMV_OK;
	}
	if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off")) {
		*out = 0;
		return EMV_OK;
	}
	return EMV_ERR;
}

/* One of two words (case-insensitive), each standing for a value. */
static int parse_word(const char *v, const char *w1, int v1, const char *w2, int v2, int *out)
{
	if (!strcasecmp(v, w1)) {
		*out = v1;
		return EMV_OK;
	}
	if (!strcasecmp(v, w2)) {
		*out = v2;
		return EMV_OK;
	}
	return EMV_ERR;
}

/* Decimal digits only (no sign, no spaces); *end gets the first non-digit. */
static int parse_digits(const char *v, long long *out, const char **end)
{
	long long n = 0;
	const char *s = v;

	if (*s < '0' || *s > '9')
		return EMV_ERR;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (LLONG_MAX - 9) / 10)
			return EMV_ERR;
		n = n * 10 + (*s - '0');
	}
	*out = n;
	*end = s;
	return EMV_OK;
}

static int parse_int(const char *v, long min, long max, int *out)
{
	long long n;

	if (emv_parse_ll(v, min, max, &n) != EMV_OK)
		return EMV_ERR;
	*out = (int)n;
	return EMV_OK;
}

/* "30" (seconds), "30s", "1500ms", "5m", "1h" -> milliseconds. */
static int parse_time(const char *v, long min_ms, long max_ms, int *out)
{
	long long n, mult;
	const char *end;

	if (parse_digits(v, &n, &end) != EMV_OK)
		return EMV_ERR;
	if (*end == '\0' || !strcmp(end, "s"))
		mult = 1000;
	else if (!strcmp(end, "ms"))
		mult = 1;
	else if (!strcmp(end, "m"))
		mult = 60000;
	else if (!strcmp(end, "h"))
		mult = 3600000;
	else
		return EMV_ERR;
	if (n > LLONG_MAX / mult)
		return EMV_ERR;
	n *= mult;
	if (n < min_ms || n > max_ms)
		return EMV_ERR;
	*out = (int)n;
	return EMV_OK;
}

/*
 * Normalise one mx suffix in place: optional leading "*." or ".", optional
 * trailing dot, lower case; then LDH labels of 1..63, at least two labels,
 * at most 253 characters.  Returns NULL and a reason on failure.
 */
static char *normalise_suffix(char *s, const char **why)
{
	size_t len, i, label = 0, labels = 1;

	if (s[0] == '*' && s[1] == '.')
		s += 2;
	else if (s[0] == '.')
		s++;
	len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		s[--len] = '\0';
	emv_ascii_lower(s);
	if (len == 0) {
		*why = "empty name";
		return NULL;
	}
	if (len > HOST_MAX) {
		*why = "longer than 253 characters";
		return NULL;
	}
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-') {
				*why = "empty label or label ending in '-'";
				return NULL;
			}
			labels++;
			label = 0;
			continue;
		}
		if (c == '*') {
			*why = "wildcards are only allowed as a leading '*.'";
			return NULL;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
			*why = "a host name holds only letters, digits, '-' and '.'";
			return NULL;
		}
		if (c == '-' && label == 0) {
			*why = "label starting with '-'";
			return NULL;
		}
		if (++label > LABEL_MAX) {
			*why = "label longer than 63 characters";
			return NULL;
		}
	}
	if (s[len - 1] == '-') {
		*why = "label ending in '-'";
		return NULL;
	}
	if (labels < 2) {
		*why = "a single label would match a whole top-level domain";
		return NULL;
	}
	return s;
}

/* ------------------------------------------------------------------ */
/* Sections and lines.                                                 */

static long section_add(struct parser *ps, const char *name)
{
	emv_providers *p = ps->p;

	if (p->n == ps->cap) {
		ps->cap *= 2;
		p->list = emv_xrealloc(p->list, ps->cap * sizeof(*p->list));
		ps->sec = emv_xrealloc(ps->sec, ps->cap * sizeof(*ps->sec));
	}
	memset(&p->list[p->n], 0, sizeof(p->list[p->n]));
	memset(&ps->sec[p->n], 0, sizeof(ps->sec[p->n]));
	emv_strlcpy(ps->sec[p->n].raw.name, name, sizeof(ps->sec[p->n].raw.name));
	ps->sec[p->n].line = ps->line;
	return (long)p->n++;
}

static int parse_header(struct parser *ps, char *s)
{
	size_t len = strlen(s), i;
	char *name;
	char buf[64];

	if (len < 2 || s[len - 1] != ']')
		return perr(ps, "malformed section header '%s': expected [name]", shown(s, buf, sizeof(buf)));
	s[len - 1] = '\0';
	name = emv_trim(s + 1);
	emv_ascii_lower(name);
	len = strlen(name);
	if (len == 0 || len >= EMV_PROVIDER_NAME_MAX)
		return perr(ps, "section name must be 1..%d characters", EMV_PROVIDER_NAME_MAX - 1);
	for (i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return perr(ps, "section name '%s' may hold only letters, digits, '_' and '-'",
				    shown(name, buf, sizeof(buf)));
	}
	if (!strcmp(name, "default")) {
		if (ps->sec[0].line)
			return perr(ps, "duplicate section [default] (first at line %d)", ps->sec[0].line);
		ps->sec[0].line = ps->line;
		ps->cur = 0;
		return EMV_OK;
	}
	for (i = 1; i < ps->p->n; i++)
		if (!strcmp(ps->sec[i].raw.name, name))
			return perr(ps, "duplicate section [%s] (first at line %d)", name, ps->sec[i].line);
	ps->cur = section_add(ps, name);
	return EMV_OK;
}

static int add_suffixes(struct parser *ps, char *v)
{
	emv_providers *p = ps->p;
	struct section *sec = &ps->sec[ps->cur];
	char *tok, *save = NULL;
	char buf[80];

	if (ps->cur == 0)
		return perr(ps, "[default] takes no mx suffixes: it is what unmatched hosts get");
	for (tok = strtok_r(v, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		const char *why = NULL;
		char *s;
		uint32_t len, hash;
		size_t i;

		shown(tok, buf, sizeof(buf));
		s = normalise_suffix(tok, &why);
		if (!s)
			return perr(ps, "bad mx suffix '%s' in [%s]: %s", buf, sec->raw.name, why);
		len = (uint32_t)strlen(s);
		hash = suffix_hash(s, len);
		i = table_find(p->slots, p->bits, s, len, hash);
		if (p->slots[i].suffix) {
			const struct slot *o = &p->slots[i];
			return perr(ps, "mx suffix '%s' in [%s] is already listed in [%s] at line %d", s, sec->raw.name,
				    ps->sec[o->provider].raw.name, o->line);
		}
		if ((p->nsuffix + 1) * 2 > ((size_t)1 << p->bits)) {
			if (p->bits >= TABLE_MAX_BITS)
				return perr(ps, "too many mx suffixes");
			table_grow(p);
			i = table_find(p->slots, p->bits, s, len, hash);
		}
		p->slots[i].suffix = emv_xstrndup(s, len);
		p->slots[i].len = len;
		p->slots[i].hash = hash;
		p->slots[i].provider = (int)ps->cur;
		p->slots[i].line = ps->line;
		p->nsuffix++;
		sec->nmx++;
	}
	if (sec->nmx == 0)
		return perr(ps, "mx with no suffixes in [%s]", sec->raw.name);
	return EMV_OK;
}

static int parse_setting(struct parser *ps, const struct setting *st, char *v)
{
	struct section *sec = &ps->sec[ps->cur];
	int *ip = (int *)((char *)&sec->raw + st->off);
	char buf[80];
	int r = EMV_ERR;

	switch (st->kind) {
	case K_MX: return add_suffixes(ps, v);
	case K_BOOL: r = parse_bool(v, ip); break;
	case K_INT:
		r = parse_int(v, st->min, st->max, ip);
		if (r != EMV_OK)
			return perr(ps, "bad value '%s' for %s (%s): expected a whole number %ld..%ld",
				    shown(v, buf, sizeof(buf)), st->key, st->what, st->min, st->max);
		break;
	case K_TIME: r = parse_time(v, st->min, st->max, ip); break;
	case K_TLS:
		r = parse_word(v, "opportunistic", EMV_PROVIDER_TLS_OPPORTUNISTIC, "never", EMV_PROVIDER_TLS_NEVER, ip);
		break;
	case K_SCOPE:
		r = parse_word(v, "provider", EMV_PROVIDER_SCOPE_PROVIDER, "mx", EMV_PROVIDER_SCOPE_MX, ip);
		break;
	case K_NOTES:
		if (strlen(v) >= EMV_PROVIDER_NOTES_MAX)
			return perr(ps, "%s longer than %d characters", st->key, EMV_PROVIDER_NOTES_MAX - 1);
		emv_sanitize((char *)&sec->raw + st->off, EMV_PROVIDER_NOTES_MAX, v, strlen(v));
		r = EMV_OK;
		break;
	}
	if (r != EMV_OK)
		return perr(ps, "bad value '%s' for %s: expected %s", shown(v, buf, sizeof(buf)), st->key, st->what);
	return EMV_OK;
}

/* '#' at the start of a line or after a blank starts a comment. */
static void strip_comment(char *s)
{
	char *c;

	for (c = s; *c; c++)
		if (*c == '#' && (c == s || c[-1] == ' ' || c[-1] == '\t')) {
			*c = '\0';
			return;
		}
}

static int parse_line(struct parser *ps, char *s)
{
	char *eq, *key, *val;
	size_t i;
	char buf[64];

	strip_comment(s);
	s = emv_trim(s);
	if (*s == '\0')
		return EMV_OK;
	if (*s == '[')
		return parse_header(ps, s);
	eq = strchr(s, '=');
	if (!eq)
		return perr(ps, "expected 'key = value' or [section], got '%s'", shown(s, buf, sizeof(buf)));
	*eq = '\0';
	key = emv_trim(s);
	val = emv_trim(eq + 1);
	emv_ascii_lower(key);
	if (ps->cur < 0)
		return perr(ps, "'%s' outside any section: start with [default] or [provider]",
			    shown(key, buf, sizeof(buf)));
	for (i = 0; i < NSETTINGS; i++)
		if (!strcmp(settings[i].key, key))
			break;
	if (i == NSETTINGS)
		return perr(ps, "unknown key '%s' in [%s]", shown(key, buf, sizeof(buf)), ps->sec[ps->cur].raw.name);
	if (*val == '\0' && settings[i].kind != K_NOTES)
		return perr(ps, "empty value for %s in [%s]", key, ps->sec[ps->cur].raw.name);
	/* mx may be repeated to spread a long list over several lines */
	if (settings[i].kind != K_MX && ps->sec[ps->cur].set[i])
		return perr(ps, "%s given twice in [%s] (first at line %d)", key, ps->sec[ps->cur].raw.name,
			    ps->sec[ps->cur].set[i]);
	if (parse_setting(ps, &settings[i], val) != EMV_OK)
		return EMV_ERR;
	ps->sec[ps->cur].set[i] = ps->line;
	return EMV_OK;
}

/* ------------------------------------------------------------------ */
/* Resolution: built-in defaults <- [default] <- each provider.        */

static int resolve(struct parser *ps)
{
	emv_providers *p = ps->p;
	emv_provider def = builtin_default;
	size_t i, k;

	for (k = 0; k < NSETTINGS; k++)
		if (ps->sec[0].set[k])
			copy_setting(&def, &ps->sec[0].raw, &settings[k]);
	for (i = 0; i < p->n; i++) {
		emv_provider *out = &p->list[i];
		const struct section *sec = &ps->sec[i];

		*out = def;
		if (i > 0) {
			/* notes describe one section; they are not inherited */
			out->notes[0] = '\0';
			out->verdict_note[0] = '\0';
			for (k = 0; k < NSETTINGS; k++)
				if (sec->set[k])
					copy_setting(out, &sec->raw, &settings[k]);
		}
		emv_strlcpy(out->name, sec->raw.name, sizeof(out->name));
		if (out->accepts_all)
			out->catch_all_probe = 0;
		ps->line = sec->line;
		if (i > 0 && sec->nmx == 0)
			return perr(ps, "[%s] lists no mx suffixes, so no host could ever match it", out->name);
		if (out->rcpt_per_txn > out->rcpt_per_session)
			return perr(ps, "in [%s], rcpt_per_txn (%d) exceeds rcpt_per_session (%d)", out->name,
				    out->rcpt_per_txn, out->rcpt_per_session);
	}
	return EMV_OK;
}

/* ------------------------------------------------------------------ */
/* Public API.                                                         */

static void errf(char *err, size_t errlen, const char *path, const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path, what);
}

emv_providers *emv_providers_load(const char *path, char *err, size_t errlen)
{
	struct parser ps;
	FILE *f;
	char *line = NULL;
	size_t linecap = 0;
	ssize_t n;
	int rc = EMV_OK;

	if (err && errlen)
		err[0] = '\0';
	if (!path) {
		errf(err, errlen, "(null)", "no policy file given");
		return NULL;
	}
	f = fopen(path, "r");
	if (!f) {
		errf(err, errlen, path, strerror(errno));
		return NULL;
	}

	memset(&ps, 0, sizeof(ps));
	ps.path = path;
	ps.err = err;
	ps.errlen = errlen;
	ps.cur = -1;
	ps.cap = 16;
	ps.p = emv_xcalloc(1, sizeof(*ps.p));
	ps.p->list = emv_xcalloc(ps.cap, sizeof(*ps.p->list));
	ps.sec = emv_xcalloc(ps.cap, sizeof(*ps.sec));
	ps.p->bits = TABLE_MIN_BITS;
	ps.p->slots = emv_xcalloc((size_t)1 << ps.p->bits, sizeof(*ps.p->slots));
	ps.p->n = 1; /* [0] is the default, present or not */
	emv_strlcpy(ps.sec[0].raw.name, "default", sizeof(ps.sec[0].raw.name));

	while ((n = getline(&line, &linecap, f)) >= 0) {
		size_t len = (size_t)n;

		ps.line++;
		if (memchr(line, '\0', len)) {
			rc = perr(&ps, "NUL byte in line");
			break;
		}
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len > EMV_PROVIDERS_LINE_MAX) {
			rc = perr(&ps, "line longer than %d characters", EMV_PROVIDERS_LINE_MAX);
			break;
		}
		rc = parse_line(&ps, line);
		if (rc != EMV_OK)
			break;
	}
	if (rc == EMV_OK && ferror(f)) {
		errf(err, errlen, path, strerror(errno ? errno : EIO));
		rc = EMV_ERR;
	}
	free(line);
	fclose(f);
	if (rc == EMV_OK)
		rc = resolve(&ps);
	free(ps.sec);
	if (rc != EMV_OK) {
		emv_providers_free(ps.p);
		return NULL;
	}
	return ps.p;
}

emv_providers *emv_providers_load_default(char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/providers.conf", emv_data_dir(NULL));
	return emv_providers_load(path, err, errlen);
}

void emv_providers_free(emv_providers *p)
{
	size_t i;

	if (!p)
		return;
	if (p->slots)
		for (i = 0; i < ((size_t)1 << p->bits); i++)
			free(p->slots[i].suffix);
	free(p->slots);
	free(p->list);
	free(p);
}

const emv_provider *emv_providers_match(const emv_providers *p, const char *mx_host)
{
	char host[HOST_MAX + 1];
	size_t at[LABELS_MAX + 1];
	uint32_t hashes[LABELS_MAX + 1];
	size_t len, i, nb = 0;
	uint64_t h = HASH_INIT;

	if (!p)
		return &builtin_default;
	if (!mx_host)
		return &p->list[0];
	len = strnlen(mx_host, HOST_MAX + 2);
	if (len > 0 && len <= HOST_MAX + 1 && mx_host[len - 1] == '.')
		len--; /* the root */
	if (len == 0 || len > HOST_MAX)
		return &p->list[0];
	for (i = 0; i < len; i++) {
		char c = mx_host[i];
		host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}

	/* Right to left: after hashing host[i] where a label starts, h covers
	 * exactly the suffix host[i..len). */
	for (i = len; i-- > 0;) {
		unsigned char c = (unsigned char)host[i];

		if (c == '.' && (i == 0 || i == len - 1 || host[i - 1] == '.'))
			return &p->list[0]; /* empty label: not a host name */
		h = hash_step(h, c);
		if (i == 0 || host[i - 1] == '.') {
			if (nb > LABELS_MAX)
				return &p->list[0];
			at[nb] = i;
			hashes[nb] = hash_fold(h);
			nb++;
		}
	}
	/* longest suffix (the whole host) was recorded last */
	while (nb-- > 0) {
		const struct slot *sl;
		size_t off = at[nb];

		sl = &p->slots[table_find(p->slots, p->bits, host + off, (uint32_t)(len - off), hashes[nb])];
		if (sl->suffix)
			return &p->list[sl->provider];
	}
	return &p->list[0];
}

const emv_provider *emv_providers_get(const emv_providers *p, const char *name)
{
	size_t i;

	if (!p || !name)
		return NULL;
	for (i = 0; i < p->n; i++)
		if (!strcasecmp(p->list[i].name, name))
			return &p->list[i];
	return NULL;
}

size_t emv_providers_count(const emv_providers *p)
{
	return p ? p->n - 1 : 0;
}

const emv_provider *emv_providers_at(const emv_providers *p, size_t i)
{
	if (!p || i >= p->n - 1)
		return NULL;
	return &p->list[i + 1];
}

void emv_provider_defaults(emv_provider *out)
{
	*out = builtin_default;
}
