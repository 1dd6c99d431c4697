/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_providers.h - per-provider probing policies, recognised by the MX
 * host name (docs/design.md §3 "Providers", "Limits", "IP pool and reputation").
 *
 * A provider (Google, Microsoft, Yahoo, Proofpoint, ...) is a policy plus a
 * list of MX host suffixes.  emv_providers_match() maps an MX host such as
 * "alt1.aspmx.l.google.com" to the policy of the longest suffix it ends in,
 * aligned on labels ("evilgoogle.com" is not under "google.com"); a host
 * under no listed suffix gets the [default] policy, never NULL.  The worker
 * applies the policy to its sessions (pipelining, recipients per
 * transaction and session, timeouts, TLS), to its concurrency limits and
 * token buckets (sessions per MX / per source IP, RCPTs per minute, hour,
 * day) and to its verdicts (accepts_all, catch_all_probe).
 *
 * File: data/providers.conf (format documented at the top of that file):
 * INI-style [sections], "key = value" lines, '#' comments.  [default]
 * applies to unknown providers and supplies every key a provider leaves
 * unset; without a [default] section the built-in defaults below apply.
 *
 * Errors: the load fails on anything it does not understand (unknown key,
 * bad or out-of-range value, duplicate section, key or suffix, malformed
 * line), with "FILE:LINE: what, key and value" in the caller's buffer.  A
 * policy file is a safety control: a typo must not silently turn a limit
 * into its default.  I/O errors name the file and errno's text.
 *
 * Matching cost: the host is lower-cased and walked once from its right end
 * computing a hash of every label-aligned suffix; each suffix is then one
 * probe in an open-addressing table, longest first: O(length) hashing plus
 * O(labels) probes, no allocation.  After loading, the handle is read-only,
 * so any number of threads may match against it.
 */
#ifndef EMV_PROVIDERS_H
#define EMV_PROVIDERS_H

#include <stddef.h>

#define EMV_PROVIDER_NAME_MAX 32    /* incl. NUL: names are 1..31 of [a-z0-9_-] */
#define EMV_PROVIDER_NOTES_MAX 256  /* incl. NUL */
#define EMV_PROVIDERS_LINE_MAX 4096 /* longest line accepted in the file */

/* tls */
#define EMV_PROVIDER_TLS_NEVER 0	 /* never send STARTTLS */
#define EMV_PROVIDER_TLS_OPPORTUNISTIC 1 /* STARTTLS when offered (RFC 3207) */

/* budget_scope: what sessions_per_ip and the rcpt_per_* budgets count per */
#define EMV_PROVIDER_SCOPE_PROVIDER 0 /* (source IP, provider): all its MX hosts share one budget */
#define EMV_PROVIDER_SCOPE_MX 1	      /* (source IP, MX host): each host has its own budget */

/*
 * One policy.  Counts are per worker process; 0 in a rcpt_per_* budget
 * means unlimited.  Times are milliseconds (the file says seconds).
 */
typedef struct {
	char name[EMV_PROVIDER_NAME_MAX]; /* section name: "google", "default" */
	int pipelining;			  /* 1: pipeline RCPTs when the server advertises PIPELINING */
	int rcpt_per_txn;		  /* recipients per MAIL transaction (RSET between) */
	int rcpt_per_session;		  /* recipients per SMTP connection, all transactions */
	int errors_per_session;		  /* rejected commands per session before we end it (server error limits) */
	int sessions_per_mx;		  /* concurrent sessions to one MX host, all source IPs */
	int sessions_per_ip;		  /* concurrent sessions from one source IP, per budget_scope */
	int rcpt_per_minute, rcpt_per_hour, rcpt_per_day;		 /* RCPTs per source IP, per budget_scope */
	int pool_rcpt_per_minute, pool_rcpt_per_hour, pool_rcpt_per_day; /* all source IPs of a worker
	                                                together, per budget_scope; 0 = no such limit */
	int catch_all_probe;			  /* 1: a random-recipient probe tells us something here */
	int accepts_all;			  /* 1: the server says 250 to every RCPT: "accepted" means unknown */
	int connect_timeout_ms, reply_timeout_ms; /* TCP connect; each reply (banner .. QUIT) */
	int greylist_wait_ms;			  /* wait before retrying a greylisted recipient */
	int tls;				  /* EMV_PROVIDER_TLS_* */
	/* additions beyond the original brief: */
	int budget_scope;			   /* EMV_PROVIDER_SCOPE_* */
	char notes[EMV_PROVIDER_NOTES_MAX];	   /* free text for logs and operators */
	char verdict_note[EMV_PROVIDER_NOTES_MAX]; /* shown to users in the detail of an
	                                unknown or risky verdict from this provider; not inherited */
} emv_provider;

typedef struct emv_providers emv_providers;

/*
 * Load a policy file.  Returns NULL and fills err (errlen may be 0) on any
 * error: "data/providers.conf:42: bad value 'lots' for rcpt_per_txn
 * (recipients per transaction): expected a whole number 1..1000".
 *
 * Rules checked besides syntax: every key known and given at most once per
 * section; section names unique; every provider lists at least one mx
 * suffix and [default] none; a suffix belongs to one provider only;
 * rcpt_per_txn <= rcpt_per_session after inheritance.  accepts_all = yes
 * forces catch_all_probe off (a probe against a server that accepts
 * everything proves nothing).
 */
emv_providers *emv_providers_load(const char *path, char *err, size_t errlen);

/* emv_providers_load() of providers.conf in emv_data_dir(NULL) */
emv_providers *emv_providers_load_default(char *err, size_t errlen);

void emv_providers_free(emv_providers *p);

/*
 * The policy for an MX host name: the provider whose suffix is the longest
 * label-aligned suffix of mx_host ("a.b.google.com" is under "google.com",
 * and so is "google.com" itself).  Case-insensitive; one trailing dot
 * (the DNS root) is ignored.  NULL, empty, over-long (> 253) or malformed
 * names (empty labels) get the default policy.  Never returns NULL: with
 * p == NULL the built-in default policy is returned.
 */
const emv_provider *emv_providers_match(const emv_providers *p, const char *mx_host);

/* The policy named name (case-insensitive), "default" included; NULL if none. */
const emv_provider *emv_providers_get(const emv_providers *p, const char *name);

/* Named providers loaded, [default] not counted. */
size_t emv_providers_count(const emv_providers *p);

/* The i-th named provider in file order (0 <= i < count), else NULL. */
const emv_provider *emv_providers_at(const emv_providers *p, size_t i);

/* The built-in defaults (what [default] starts from), named "default". */
void emv_provider_defaults(emv_provider *out);

#endif
