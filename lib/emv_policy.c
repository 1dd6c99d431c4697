/* SPDX-License-Identifier: Apache-2.0 */
/* emv_policy.c - the verdict policy (see emv_policy.h and docs/policy.md). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_policy.h"
#include "emv_util.h"

#define ANY (-10) /* not -1: that is "no such name" */
#define KEEP (-20)

struct rule {
	int reason;    /* emv_reason or ANY */
	unsigned flag; /* one EMV_FLAG_* bit, or 0 = any */
	int status;    /* emv_status or ANY */
	int to_status; /* emv_status or KEEP */
	int to_reason; /* emv_reason or KEEP */
	int safe;
};

struct emv_policy {
	char name[EMV_POLICY_NAME_MAX];
	int preset;
	size_t n;
	struct rule rules[EMV_POLICY_RULES_MAX];
};

/* The presets, in the format of a policy file: one code path for both. */
static const char marketing_text[] = "# marketing: what is safe to send a campaign to\n"
				     "# reason        flag  status       ->  status       reason  safe\n"
				     "accepted        role  deliverable      risky        role    no\n"
				     "catch_all       *     *                risky        =       no\n"
				     "disposable      *     *                risky        =       no\n"
				     "mailbox_full    *     *                risky        =       no\n"
				     "*               *     deliverable      deliverable  =       yes\n"
				     "*               *     *                =            =       no\n";

static const char transactional_text[] = "# transactional: sign-ups and receipts; role addresses are real customers\n"
					 "# reason        flag  status       ->  status       reason  safe\n"
					 "accepted        role  deliverable      deliverable  =       yes\n"
					 "catch_all       *     *                risky        =       no\n"
					 "disposable      *     *                risky        =       no\n"
					 "mailbox_full    *     *                risky        =       no\n"
					 "*               *     deliverable      deliverable  =       yes\n"
					 "*               *     *                =            =       no\n";

static const char *const preset_names[] = { "marketing", "transactional", NULL };
static const char *const preset_texts[] = { marketing_text, transactional_text };
static emv_policy presets[2];
static pthread_once_t presets_once = PTHREAD_ONCE_INIT;

static unsigned flag_from_name(const char *name)
{
	for (unsigned bit = 1; bit; bit <<= 1) {
		const char *n;
		if (emv_flag_names(bit, &n, 1) == 1 && strcmp(n, name) == 0)
			return bit;
	}
	return 0;
}

static int parse_into(emv_policy *p, const char *name, const char *text, char *err, size_t errlen)
{
	const char *s = text;
	int lineno = 0;

	memset(p, 0, sizeof *p);
	emv_strlcpy(p->name, name, sizeof p->name);
	if (strlen(text) > EMV_POLICY_TEXT_MAX) {
		emv_set_err(err, errlen, "policy %s: longer than %d bytes", name, EMV_POLICY_TEXT_MAX);
		return -1;
	}
	while (*s) {
		char line[512], *f[8], *save = NULL, *tok;
		size_t len = strcspn(s, "\n"), nf = 0;
		struct rule r;

		lineno++;
		if (len >= sizeof line) {
			emv_set_err(err, errlen, "policy %s line %d: longer than %zu bytes", name, lineno,
				    sizeof line - 1);
			return -1;
		}
		memcpy(line, s, len);
		line[len] = '\0';
		s += len + (s[len] == '\n');
		if ((tok = strchr(line, '#')))
			*tok = '\0';
		for (tok = strtok_r(line, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save)) {
			if (nf == 8)
				break;
			f[nf++] = tok;
		}
		if (nf == 0)
			continue;
		/* "->" between the match and the result is allowed, for reading */
		if (nf == 7 && strcmp(f[3], "->") == 0) {
			memmove(&f[3], &f[4], 3 * sizeof f[0]);
			nf = 6;
		}
		if (nf != 6) {
			emv_set_err(err, errlen,
				    "policy %s line %d: %zu columns, want 6: reason flag status -> status reason safe",
				    name, lineno, nf);
			return -1;
		}
		r.reason = strcmp(f[0], "*") == 0 ? ANY : emv_reason_from_name(f[0]);
		if (r.reason == -1) {
			emv_set_err(err, errlen,
				    "policy %s line %d: reason '%.40s' is not a reason (docs/result-json.md)", name,
				    lineno, f[0]);
			return -1;
		}
		r.flag = strcmp(f[1], "*") == 0 ? 0 : flag_from_name(f[1]);
		if (strcmp(f[1], "*") && !r.flag) {
			emv_set_err(err, errlen, "policy %s line %d: flag '%.40s' is not a flag", name, lineno, f[1]);
			return -1;
		}
		r.status = strcmp(f[2], "*") == 0 ? ANY : emv_status_from_name(f[2]);
		if (r.status == -1) {
			emv_set_err(err, errlen, "policy %s line %d: status '%.40s' is not a status", name, lineno,
				    f[2]);
			return -1;
		}
		r.to_status = strcmp(f[3], "=") == 0 ? KEEP : emv_status_from_name(f[3]);
		if (r.to_status == -1) {
			emv_set_err(err, errlen, "policy %s line %d: status '%.40s' is not a status (or = to keep it)",
				    name, lineno, f[3]);
			return -1;
		}
		r.to_reason = strcmp(f[4], "=") == 0 ? KEEP : emv_reason_from_name(f[4]);
		if (r.to_reason == -1) {
			emv_set_err(err, errlen, "policy %s line %d: reason '%.40s' is not a reason (or = to keep it)",
				    name, lineno, f[4]);
			return -1;
		}
		if (strcmp(f[5], "yes") && strcmp(f[5], "no")) {
			emv_set_err(err, errlen, "policy %s line %d: safe must be yes or no, not '%.40s'", name, lineno,
				    f[5]);
			return -1;
		}
		r.safe = strcmp(f[5], "yes") == 0;
		if (r.safe && r.to_status != EMV_STATUS_DELIVERABLE &&
		    !(r.to_status == KEEP && r.status == EMV_STATUS_DELIVERABLE)) {
			/* "safe to send" to an address we do not call deliverable would
			 * contradict the status beside it */
			emv_set_err(err, errlen, "policy %s line %d: only a deliverable status can be safe to send",
				    name, lineno);
			return -1;
		}
		if (p->n == EMV_POLICY_RULES_MAX) {
			emv_set_err(err, errlen, "policy %s: more than %d rules", name, EMV_POLICY_RULES_MAX);
			return -1;
		}
		p->rules[p->n++] = r;
	}
	if (p->n == 0) {
		emv_set_err(err, errlen, "policy %s: no rules", name);
		return -1;
	}
	return 0;
}

static void presets_init(void)
{
	char err[256];
	for (size_t i = 0; preset_names[i]; i++) {
		if (parse_into(&presets[i], preset_names[i], preset_texts[i], err, sizeof err) != 0) {
			fprintf(stderr, "emailverify: built-in %s\n", err); /* a bug: the unit test parses them */
			abort();
		}
		presets[i].preset = 1;
	}
}

const emv_policy *emv_policy_preset(const char *name)
{
	pthread_once(&presets_once, presets_init);
	for (size_t i = 0; preset_names[i]; i++)
		if (strcmp(name, preset_names[i]) == 0)
			return &presets[i];
	return NULL;
}

const char *const *emv_policy_preset_names(void)
{
	return preset_names;
}

emv_policy *emv_policy_parse(const char *name, const char *text, char *err, size_t errlen)
{
	emv_policy *p = emv_xcalloc(1, sizeof *p);
	if (parse_into(p, name, text, err, errlen) != 0) {
		free(p);
		return NULL;
	}
	return p;
}

const emv_policy *emv_policy_get(const char *spec, char *err, size_t errlen)
{
	const emv_policy *pre;
	char text[EMV_POLICY_TEXT_MAX + 2], name[EMV_POLICY_NAME_MAX];
	const char *base;
	size_t n;
	FILE *f;

	if (!spec || !*spec)
		spec = EMV_POLICY_DEFAULT;
	if ((pre = emv_policy_preset(spec)))
		return pre;
	if (!strchr(spec, '/') && !strchr(spec, '.')) {
		emv_set_err(err, errlen,
			    "no policy '%.64s': the presets are marketing and transactional, "
			    "or give a file's path",
			    spec);
		return NULL;
	}
	if (!(f = fopen(spec, "r"))) {
		emv_set_err(err, errlen, "policy %.200s: %s", spec, strerror(errno));
		return NULL;
	}
	n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	if (memchr(text, '\0', n)) {
		emv_set_err(err, errlen, "policy %.200s: a NUL byte: not a text file", spec);
		return NULL;
	}
	base = strrchr(spec, '/') ? strrchr(spec, '/') + 1 : spec;
	emv_strlcpy(name, base, sizeof name);
	if ((n = strlen(name)) > 7 && strcmp(name + n - 7, ".policy") == 0)
		name[n - 7] = '\0';
	else if (n > 5 && strcmp(name + n - 5, ".conf") == 0)
		name[n - 5] = '\0';
	return emv_policy_parse(name, text, err, errlen);
}

void emv_policy_free(const emv_policy *p)
{
	if (p && !p->preset)
		free((emv_policy *)p);
}

const char *emv_policy_name(const emv_policy *p)
{
	return p ? p->name : EMV_POLICY_DEFAULT;
}

static const char *name_or(int v, int is_reason, const char *other)
{
	if (v < 0)
		return other;
	return is_reason ? emv_reason_name((emv_reason)v) : emv_status_name((emv_status)v);
}

size_t emv_policy_text(const emv_policy *p, char *buf, size_t len)
{
	size_t off = 0;
	if (!p)
		p = emv_policy_preset(EMV_POLICY_DEFAULT);
	off += (size_t)snprintf(buf, len, "# policy %s\n# reason flag status -> status reason safe\n", p->name);
	for (size_t i = 0; i < p->n && off < len; i++) {
		const struct rule *r = &p->rules[i];
		const char *flag = "*";
		if (r->flag)
			emv_flag_names(r->flag, &flag, 1);
		off += (size_t)snprintf(buf + off, len - off, "%s %s %s -> %s %s %s\n", name_or(r->reason, 1, "*"),
					flag, name_or(r->status, 0, "*"), name_or(r->to_status, 0, "="),
					name_or(r->to_reason, 1, "="), r->safe ? "yes" : "no");
	}
	return off < len ? off : len;
}

int emv_policy_apply(const emv_policy *p, emv_status *status, emv_reason *reason, unsigned flags)
{
	if (!p)
		p = emv_policy_preset(EMV_POLICY_DEFAULT);
	for (size_t i = 0; i < p->n; i++) {
		const struct rule *r = &p->rules[i];
		if (r->reason != ANY && r->reason != (int)*reason)
			continue;
		if (r->flag && !(flags & r->flag))
			continue;
		if (r->status != ANY && r->status != (int)*status)
			continue;
		if (r->to_status != KEEP)
			*status = (emv_status)r->to_status;
		if (r->to_reason != KEEP)
			*reason = (emv_reason)r->to_reason;
		return r->safe && *status == EMV_STATUS_DELIVERABLE;
	}
	return *status == EMV_STATUS_DELIVERABLE;
}
