/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_domstate.h - what the probe engine learnt about MX hosts and domains,
 * kept per process and shared between workers through the compacted topic
 * emailverify.domain-state (docs/design.md §4).
 *
 * An entry is a host ("host:NAME": recipients per transaction, errors per
 * session before a tarpit, sessions it answered well, a 421 back-off,
 * accepts-all) or a domain ("domain:NAME": its catch-all answer).  Every
 * value carries the wall-clock time it was observed.
 *
 * Merge rules (emv_domstate_merge for entries read off the topic,
 * emv_domstate_observe for this engine's own findings):
 *  - value by value, the newer observation wins; on a tie the one already
 *    held stays (so the worker's own fresh observation beats an older
 *    shared one, and its own echo off the topic changes nothing);
 *  - a value older than its age limit is gone (ageing, EMV_DEF_DOMSTATE_*_AGE_MS);
 *  - the 421 back-off is the exception: the later end wins, whoever saw
 *    it, so shared knowledge can only lengthen a back-off, never cut one
 *    short, and never past now + backoff_max_ms.
 *
 * Hostile input: an entry with a value that cannot be true (a limit < 1 or
 * > EMV_DOMSTATE_VALUE_MAX, an observation from the future beyond the skew,
 * a back-off longer than the maximum) is refused whole with the reason in
 * *why; nothing of it is kept.  What is kept is still only a hint: the
 * engine takes a learned limit as min(learned, provider policy), so shared
 * knowledge can make it more careful than its policy, or bring it back to
 * the policy, never beyond.  At most max_entries names are held; an entry
 * for a new name past that is refused.
 *
 * Publishing: an own observation that changes a value marks its entry;
 * emv_domstate_take_changed hands out marked entries, each at most once per
 * interval.  Not thread safe: one per worker event loop.
 */
#ifndef EMV_DOMSTATE_H
#define EMV_DOMSTATE_H

#include <stddef.h>
#include <stdint.h>
#include "emv_wire.h"

#define EMV_DOMSTATE_VALUE_MAX 10000 /* no server takes more recipients or errors than this */

typedef struct {
	int64_t limit_age_ms;	  /* rcpt_per_txn, errors_per_session (EMV_DEF_DOMSTATE_LIMIT_AGE_MS) */
	int64_t sessions_age_ms;  /* sessions_ok */
	int64_t catch_all_age_ms; /* catch_all, accepts_all */
	int64_t backoff_max_ms;	  /* longest back-off taken */
	int64_t skew_ms;	  /* how far in the future an observation may be */
	size_t max_entries;
} emv_domstate_params;

void emv_domstate_params_default(emv_domstate_params *p);

typedef struct emv_domstate emv_domstate;

emv_domstate *emv_domstate_new(const emv_domstate_params *p);
void emv_domstate_free(emv_domstate *s);

/* Whether an entry could be true (the rules above; p NULL: the defaults):
 * EMV_OK, or EMV_ERR with *why.  What merge checks first; the coordinator
 * checks the same before storing. */
int emv_domstate_check(const emv_domstate_params *p, const emv_wire_domstate *in, int64_t now_ms, char *why,
		       size_t whylen);

/* A shared entry: EMV_OK when taken (some values may be older than what is
 * held, or aged out, and change nothing); EMV_ERR when refused whole, *why
 * saying why.  *changed (may be NULL) is set when a value changed. */
int emv_domstate_merge(emv_domstate *s, const emv_wire_domstate *in, int64_t now_ms, int *changed, char *why,
		       size_t whylen);

/* Own observations, at now_ms (wall clock).  Values out of range are ignored. */
typedef enum {
	EMV_DS_RCPT_PER_TXN,
	EMV_DS_ERRORS_PER_SESSION,
	EMV_DS_SESSIONS_OK,
	EMV_DS_ACCEPTS_ALL, /* host: 0/1 */
	EMV_DS_CATCH_ALL    /* domain: 0/1 */
} emv_ds_field;

void emv_domstate_observe(emv_domstate *s, const char *name, emv_ds_field f, int value, int64_t now_ms);
/* A 421 from host: no new session before until_ms; step_ms is the back-off step. */
void emv_domstate_observe_backoff(emv_domstate *s, const char *host, int64_t until_ms, int step_ms, int64_t now_ms);

/* What is known now, aged: 0 (limits, back-off) or -1 (catch_all,
 * accepts_all) when nothing is. */
typedef struct {
	int rcpt_per_txn, errors_per_session, sessions_ok;
	int64_t backoff_until_ms;
	int backoff_ms;
	int accepts_all; /* host */
	int catch_all;	 /* domain */
} emv_domstate_view;

/* The view of a host (kind EMV_WIRE_DS_HOST) or a domain; 1 when an
 * entry exists (it may still know nothing fresh). */
int emv_domstate_get(const emv_domstate *s, int kind, const char *name, int64_t now_ms, emv_domstate_view *v);

/* The limit to use: a learned one (0: none) only below the policy's. */
static inline int emv_domstate_limit(int learned, int policy)
{
	return learned > 0 && learned < policy ? learned : policy;
}

/* The sessions to start a host's window with: what it answered well (0:
 * none), within 1..cap. */
static inline int emv_domstate_window(int sessions_ok, int cap)
{
	return sessions_ok < 1 ? 1 : sessions_ok < cap ? sessions_ok : cap;
}

/* Entries with own changes not yet published whose last publishing is at
 * least interval_ms ago (interval_ms 0: all of them, e.g. when stopping):
 * up to cap copied into out (worker left empty, updated_ms = now_ms) and
 * unmarked.  Returns how many. */
size_t emv_domstate_take_changed(emv_domstate *s, int64_t now_ms, int64_t interval_ms, emv_wire_domstate *out,
				 size_t cap);

size_t emv_domstate_count(const emv_domstate *s);

#endif
