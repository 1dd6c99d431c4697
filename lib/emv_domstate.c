/* SPDX-License-Identifier: Apache-2.0 */
/* emv_domstate.c - shared domain knowledge and its merge rules (see emv_domstate.h). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_defaults.h"
#include "emv_domstate.h"
#include "emv_map.h"
#include "emv_util.h"

struct entry {
	emv_wire_domstate w;
	int changed;	      /* an own observation not published yet */
	int64_t published_at; /* wall ms, 0 = never */
};

struct emv_domstate {
	emv_domstate_params p;
	emv_map *m; /* "host:NAME" / "domain:NAME" -> struct entry */
};

void emv_domstate_params_default(emv_domstate_params *p)
{
	p->limit_age_ms = EMV_DEF_DOMSTATE_LIMIT_AGE_MS;
	p->sessions_age_ms = EMV_DEF_DOMSTATE_SESSIONS_AGE_MS;
	p->catch_all_age_ms = EMV_DEF_DOMSTATE_CATCH_ALL_AGE_MS;
	p->backoff_max_ms = EMV_DEF_DOMSTATE_BACKOFF_MAX_MS;
	p->skew_ms = EMV_DEF_DOMSTATE_SKEW_MS;
	p->max_entries = EMV_DEF_DOMSTATE_MAX_ENTRIES;
}

emv_domstate *emv_domstate_new(const emv_domstate_params *p)
{
	emv_domstate *s = emv_xcalloc(1, sizeof *s);
	if (p)
		s->p = *p;
	else
		emv_domstate_params_default(&s->p);
	s->m = emv_map_new(0);
	return s;
}

void emv_domstate_free(emv_domstate *s)
{
	if (!s)
		return;
	emv_map_free(s->m, free);
	free(s);
}

size_t emv_domstate_count(const emv_domstate *s)
{
	return emv_map_count(s->m);
}

static void key_of(int kind, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s:%s", kind == EMV_WIRE_DS_HOST ? "host" : "domain", name);
}

/* The entry of (kind, name), made when absent unless the table is full. */
static struct entry *entry_get(emv_domstate *s, int kind, const char *name, int make)
{
	char key[EMV_HOST_NAME_MAX + 16];
	struct entry *x;

	key_of(kind, name, key, sizeof key);
	if ((x = emv_map_get(s->m, key)) || !make)
		return x;
	if (emv_map_count(s->m) >= s->p.max_entries || strlen(name) > EMV_HOST_NAME_MAX || !name[0])
		return NULL;
	x = emv_xcalloc(1, sizeof *x);
	x->w.kind = kind;
	emv_strlcpy(x->w.name, name, sizeof x->w.name);
	emv_map_set(s->m, key, x);
	return x;
}

static int fresh(int64_t at, int64_t age, int64_t now)
{
	return at > 0 && at + age > now;
}

/* One value: the newer observation wins, a tie keeps what is held. */
static int take_int(int32_t *v, int64_t *at, int32_t nv, int64_t nat, int64_t age, int64_t now)
{
	if (!fresh(nat, age, now) || nat <= *at)
		return 0;
	if (*v == nv && fresh(*at, age, now)) {
		*at = nat; /* the same value seen again: only younger */
		return 0;
	}
	*v = nv;
	*at = nat;
	return 1;
}

static int take_bool(int *v, int64_t *at, int nv, int64_t nat, int64_t age, int64_t now)
{
	int32_t x = *v;
	int r = take_int(&x, at, nv, nat, age, now);
	*v = x;
	return r;
}

/* A back-off: the later end wins, never past now + the maximum. */
static int take_backoff(emv_wire_domstate *w, int64_t until, int step, int64_t at, int64_t now, int64_t max)
{
	if (until <= now || until <= w->backoff_until_ms)
		return 0;
	if (until > now + max)
		until = now + max;
	w->backoff_until_ms = until;
	w->backoff_ms = step > 0 && step <= max ? step : (int32_t)(until - now);
	w->backoff_at = at;
	return 1;
}

static int refuse(char *why, size_t whylen, const emv_wire_domstate *in, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int refuse(char *why, size_t whylen, const emv_wire_domstate *in, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	emv_set_err(why, whylen, "%s %s: %s", in->kind == EMV_WIRE_DS_HOST ? "host" : "domain", in->name, buf);
	return EMV_ERR;
}

static int check_limit(const char *what, int32_t v, int64_t at, const emv_wire_domstate *in, char *why, size_t whylen)
{
	if (at > 0 && (v < 1 || v > EMV_DOMSTATE_VALUE_MAX))
		return refuse(why, whylen, in, "%s %" PRId32 " is not 1..%d", what, v, EMV_DOMSTATE_VALUE_MAX);
	return EMV_OK;
}

int emv_domstate_check(const emv_domstate_params *p, const emv_wire_domstate *in, int64_t now_ms, char *why,
		       size_t whylen)
{
	const int64_t t[] = { in->updated_ms, in->rcpt_per_txn_at, in->errors_per_session_at, in->sessions_ok_at,
			      in->backoff_at, in->accepts_all_at,  in->catch_all_at };
	emv_domstate_params d;

	if (!p) {
		emv_domstate_params_default(&d);
		p = &d;
	}
	if (why && whylen)
		why[0] = '\0';
	if ((in->kind != EMV_WIRE_DS_HOST && in->kind != EMV_WIRE_DS_DOMAIN) || !in->name[0])
		return refuse(why, whylen, in, "no kind or name");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i] < 0)
			return refuse(why, whylen, in, "a negative time");
		else if (t[i] > now_ms + p->skew_ms)
			return refuse(why, whylen, in, "observed %" PRId64 " ms in the future", t[i] - now_ms);
	if (check_limit("rcpt_per_txn", in->rcpt_per_txn, in->rcpt_per_txn_at, in, why, whylen) != EMV_OK ||
	    check_limit("errors_per_session", in->errors_per_session, in->errors_per_session_at, in, why, whylen) !=
		    EMV_OK ||
	    check_limit("sessions_ok", in->sessions_ok, in->sessions_ok_at, in, why, whylen) != EMV_OK)
		return EMV_ERR;
	if (in->backoff_at > 0 && in->backoff_until_ms > in->backoff_at + p->backoff_max_ms + p->skew_ms)
		return refuse(why, whylen, in, "a back-off of %" PRId64 " ms, the most is %" PRId64,
			      in->backoff_until_ms - in->backoff_at, p->backoff_max_ms);
	if (in->backoff_at > 0 && (in->backoff_ms < 0 || in->backoff_ms > p->backoff_max_ms))
		return refuse(why, whylen, in, "a back-off step of %" PRId32 " ms", in->backoff_ms);
	return EMV_OK;
}

int emv_domstate_merge(emv_domstate *s, const emv_wire_domstate *in, int64_t now_ms, int *changed, char *why,
		       size_t whylen)
{
	struct entry *x;
	emv_wire_domstate *w;
	int ch = 0;

	if (changed)
		*changed = 0;
	if (emv_domstate_check(&s->p, in, now_ms, why, whylen) != EMV_OK)
		return EMV_ERR;
	if (!(x = entry_get(s, in->kind, in->name, 1)))
		return refuse(why, whylen, in, "%zu names held already", emv_map_count(s->m));
	w = &x->w;
	if (in->kind == EMV_WIRE_DS_HOST) {
		ch |= take_int(&w->rcpt_per_txn, &w->rcpt_per_txn_at, in->rcpt_per_txn, in->rcpt_per_txn_at,
			       s->p.limit_age_ms, now_ms);
		ch |= take_int(&w->errors_per_session, &w->errors_per_session_at, in->errors_per_session,
			       in->errors_per_session_at, s->p.limit_age_ms, now_ms);
		ch |= take_int(&w->sessions_ok, &w->sessions_ok_at, in->sessions_ok, in->sessions_ok_at,
			       s->p.sessions_age_ms, now_ms);
		ch |= take_bool(&w->accepts_all, &w->accepts_all_at, in->accepts_all != 0, in->accepts_all_at,
				s->p.catch_all_age_ms, now_ms);
		if (in->backoff_at > 0)
			ch |= take_backoff(w, in->backoff_until_ms, in->backoff_ms, in->backoff_at, now_ms,
					   s->p.backoff_max_ms);
	} else {
		ch |= take_bool(&w->catch_all, &w->catch_all_at, in->catch_all != 0, in->catch_all_at,
				s->p.catch_all_age_ms, now_ms);
	}
	if (changed)
		*changed = ch;
	return EMV_OK;
}

void emv_domstate_observe(emv_domstate *s, const char *name, emv_ds_field f, int value, int64_t now_ms)
{
	int kind = f == EMV_DS_CATCH_ALL ? EMV_WIRE_DS_DOMAIN : EMV_WIRE_DS_HOST;
	struct entry *x;
	emv_wire_domstate *w;
	int ch = 0;

	if (f == EMV_DS_ACCEPTS_ALL || f == EMV_DS_CATCH_ALL) {
		if (value != 0 && value != 1)
			return;
	} else if (value < 1 || value > EMV_DOMSTATE_VALUE_MAX) {
		return;
	}
	if (!(x = entry_get(s, kind, name, 1)))
		return;
	w = &x->w;
	switch (f) {
	case EMV_DS_RCPT_PER_TXN:
		ch = take_int(&w->rcpt_per_txn, &w->rcpt_per_txn_at, value, now_ms, s->p.limit_age_ms, now_ms);
		break;
	case EMV_DS_ERRORS_PER_SESSION:
		ch = take_int(&w->errors_per_session, &w->errors_per_session_at, value, now_ms, s->p.limit_age_ms,
			      now_ms);
		break;
	case EMV_DS_SESSIONS_OK:
		ch = take_int(&w->sessions_ok, &w->sessions_ok_at, value, now_ms, s->p.sessions_age_ms, now_ms);
		break;
	case EMV_DS_ACCEPTS_ALL:
		ch = take_bool(&w->accepts_all, &w->accepts_all_at, value, now_ms, s->p.catch_all_age_ms, now_ms);
		break;
	case EMV_DS_CATCH_ALL:
		ch = take_bool(&w->catch_all, &w->catch_all_at, value, now_ms, s->p.catch_all_age_ms, now_ms);
		break;
	}
	x->changed |= ch;
}

void emv_domstate_observe_backoff(emv_domstate *s, const char *host, int64_t until_ms, int step_ms, int64_t now_ms)
{
	struct entry *x = entry_get(s, EMV_WIRE_DS_HOST, host, 1);
	if (x && take_backoff(&x->w, until_ms, step_ms, now_ms, now_ms, s->p.backoff_max_ms))
		x->changed = 1;
}

int emv_domstate_get(const emv_domstate *s, int kind, const char *name, int64_t now_ms, emv_domstate_view *v)
{
	char key[EMV_HOST_NAME_MAX + 16];
	const struct entry *x;
	const emv_wire_domstate *w;

	memset(v, 0, sizeof *v);
	v->accepts_all = v->catch_all = -1;
	if (!s)
		return 0;
	key_of(kind, name, key, sizeof key);
	if (!(x = emv_map_get(s->m, key)))
		return 0;
	w = &x->w;
	if (fresh(w->rcpt_per_txn_at, s->p.limit_age_ms, now_ms))
		v->rcpt_per_txn = w->rcpt_per_txn;
	if (fresh(w->errors_per_session_at, s->p.limit_age_ms, now_ms))
		v->errors_per_session = w->errors_per_session;
	if (fresh(w->sessions_ok_at, s->p.sessions_age_ms, now_ms))
		v->sessions_ok = w->sessions_ok;
	if (w->backoff_until_ms > now_ms) {
		v->backoff_until_ms = w->backoff_until_ms;
		v->backoff_ms = w->backoff_ms;
	}
	if (fresh(w->accepts_all_at, s->p.catch_all_age_ms, now_ms))
		v->accepts_all = w->accepts_all;
	if (fresh(w->catch_all_at, s->p.catch_all_age_ms, now_ms))
		v->catch_all = w->catch_all;
	return 1;
}

size_t emv_domstate_take_changed(emv_domstate *s, int64_t now_ms, int64_t interval_ms, emv_wire_domstate *out,
				 size_t cap)
{
	size_t it = 0, n = 0;
	const char *key;
	void *val;

	while (n < cap && emv_map_next(s->m, &it, &key, &val)) {
		struct entry *x = val;
		if (!x->changed || (interval_ms > 0 && x->published_at && now_ms - x->published_at < interval_ms))
			continue;
		out[n] = x->w;
		out[n].worker[0] = '\0';
		out[n].updated_ms = now_ms;
		x->changed = 0;
		x->published_at = now_ms;
		n++;
	}
	return n;
}
