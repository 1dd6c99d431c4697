/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_vcache.h - the cluster's verdict cache in PostgreSQL (docs/cache.md;
 * the rules are lib/emv_cache.h, the table is migration 9's verdict_cache).
 *
 * Two writers and one reader, all set-based:
 *   - the results sink upserts the entry of every final verdict that is
 *     not `unknown`, in the transaction that stores the result
 *     (emv_sink.c: its scope expression is emv_vcache_scope_sql);
 *   - the split answers, before it batches anything, every address whose
 *     entry is servable under the job's rules with one INSERT ... SELECT
 *     into results (cached = true), and moves the job's counters
 *     (emv_vcache_answer): those addresses never reach Kafka.
 *
 * Scope: the job's tenant (default), or '*' for every tenant when the
 * operator chose cache_scope = global.  Settings come from the options
 * --cache-ages, --cache-scope and --no-cache, or from the environment
 * (EMV_CACHE_AGES, EMV_CACHE_SCOPE = tenant|global|off) where the option
 * is not given.
 *
 * Errors: EMV_OK / EMV_ERR with the reason in err.
 */
#ifndef EMV_VCACHE_H
#define EMV_VCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "emv_cache.h"

typedef struct emv_vcache_cfg {
	int off;	     /* --no-cache: neither read nor written */
	int global;	     /* cache_scope = global: one cache ('*') shared by every tenant */
	emv_cache_ages ages; /* by status and reason (emv_cache.h) */
} emv_vcache_cfg;

/* The defaults, then EMV_CACHE_SCOPE and EMV_CACHE_AGES from the
 * environment; EMV_ERR with err naming the variable when one is bad. */
int emv_vcache_cfg_init(emv_vcache_cfg *cfg, char *err, size_t errlen);

/* The cache options every command that runs the pipeline takes:
 * --cache-ages LIST, --cache-scope tenant|global, --no-cache.  1 when
 * argv[*i] was one (consumed, with its value), 0 when not, -1 with err
 * when its value is bad. */
int emv_vcache_opt(emv_vcache_cfg *cfg, int argc, char **argv, int *i, char *err, size_t errlen);

/* The same for one option by name ("--cache-ages", "--cache-scope",
 * "--no-cache": val unused) and its value (getopt_long's callers). */
int emv_vcache_set(emv_vcache_cfg *cfg, const char *opt, const char *val, char *err, size_t errlen);

/* The options' --help lines. */
#define EMV_VCACHE_HELP                                                                            \
	"  --cache-ages LIST      verdict cache: maximum ages by status or reason, e.g.\n"         \
	"                         deliverable=30d,undeliverable=90d,risky=7d,mailbox_full=1d\n"    \
	"                         (\"off\": never served; docs/cache.md; $EMV_CACHE_AGES)\n"       \
	"  --cache-scope S        tenant (default: each tenant its own cache) or global (one\n"    \
	"                         cache for every tenant); $EMV_CACHE_SCOPE (tenant|global|off)\n" \
	"  --no-cache             neither answer from the verdict cache nor fill it\n"

/* A job's own max_age: -1 none (the settings' ages), 0 fresh (asks every
 * address again), else seconds.  In the caller's transaction if any. */
int emv_vcache_job_set(PGconn *c, const char *job_id, int64_t max_age_s, char *err, size_t errlen);

/* Parse a job's "fresh" field ("true"/"false", "1"/"0", "yes"/"no"): 0/1,
 * or -1 with err naming the field. */
int emv_vcache_parse_bool(const char *field, const char *text, char *err, size_t errlen);

/*
 * Answer job_id's addresses from the cache: one transaction on c that
 * inserts a cached result for every usable first row (not a duplicate: a
 * duplicate follows its first row) that has no result yet and whose entry
 * is servable (emv_cache_max_age_s with the job's max_age, as a table of
 * (status, reason, max seconds) parameters), and counts them in the job
 * (n_final, n_<status>, n_cached).  *answered (may be NULL) gets how many.
 * Nothing happens when cfg is NULL or off, or the job asks fresh.
 */
int emv_vcache_answer(PGconn *c, const char *job_id, const emv_vcache_cfg *cfg, uint64_t *answered, char *err,
		      size_t errlen);

#endif
