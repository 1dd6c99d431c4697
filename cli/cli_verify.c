/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_verify.c - `emailverify verify LIST -o OUT`: verify a whole list on
 * this machine (the embedded mode of the engine the workers run).
 *
 * Pass 1 streams the list: every row is parsed, de-duplicated and queued
 * on the engine by domain.  The engine runs; each final verdict is appended
 * to a journal next to the output (OUT.journal, JSON Lines) as soon as it
 * is known, so an interrupted run resumes (--resume) without probing again.
 * Pass 2 streams the list again and writes one output row per input row, in
 * input order, taking verdicts from the journal by offset.  Memory holds
 * one small entry per unique address, never the list or the results.
 *
 * With --threads N, N event loops (one per thread, each with its own DNS
 * channel, TLS context and engine) share the work by domain: a domain is
 * always probed from the same loop, so per-domain and per-MX politeness
 * holds.  Verdicts from all loops meet in the journal under one mutex.
 *
 * With --cache FILE (cli_cache.h, docs/cache.md), pass 1 looks every new
 * unique address up in the cache file (in batches, one read transaction
 * each): an entry that may answer (lib/emv_cache's rule, --cache-ages,
 * --max-age, --fresh) goes into the journal marked cached, with its
 * verified_at, and is never queued on the engine.  Verdicts the engine
 * makes are stored back once a second in one write transaction (unknown
 * is not stored).  Without --cache nothing here changes.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "cli_cache.h"
#include "emv_defaults.h"
#include "emv_engine.h"
#include "emv_format.h"
#include "emv_ingest.h"
#include "emv_report.h"
#include "emv_util.h"

#define JOURNAL_LINE_MAX (256 * 1024)

struct uentry {		      /* one unique address */
	uint64_t journal_off; /* offset of its journal line + 1; 0 = no verdict yet */
	uint64_t first_row;
};

struct verify;

/* One event loop and its engine. */
struct vworker {
	struct verify *v;
	int idx;
	emv_setup e;
	emv_engine *eng;
	struct event *tick;
	pthread_t tid;
	int thread_started;
};

struct verify {
	struct vworker *w; /* w[0] runs on the main thread */
	int nw;
	pthread_mutex_t mu; /* journal, unique table, counters */
	const char *input, *output;
	int jsonl, transcript, resume, progress_mode; /* 0 none, 1 lines, 2 bar */
	int keep_formulas;			      /* --no-escape-formulas */
	emv_buf outbuf;				      /* one output row at a time */
	emv_dedup *dedup;
	struct uentry *u;
	uint64_t nu, capu;
	char **uaddr; /* unique id -> address, only while queued */
	FILE *journal;
	char journal_path[4200];
	uint64_t journal_size;
	uint64_t rows, row_errors, invalid, duplicates, queued, resumed;
	uint64_t by_status[EMV_STATUS__COUNT];
	uint64_t by_reason[EMV_REASON__COUNT];
	uint64_t rows_status[EMV_STATUS__COUNT]; /* per output row, for the summary */
	uint64_t rows_reason[EMV_REASON__COUNT];
	uint64_t rows_safe;	  /* safe_to_send under the policy */
	const emv_policy *policy; /* --policy NAME|FILE (docs/policy.md) */
	uint64_t done;
	uint64_t start_ms, last_flush_ms;
	uint64_t probe_start_ms, probe_end_ms, read_ms; /* phases, for the summary */
	struct event *sigint, *sigterm;
	volatile int interrupted;
	int port25;
	/* --cache FILE: the verdict cache file, its rules and what waits to
	 * be stored (verdicts made since the last store; under mu) */
	cli_cache *cache;
	const char *cache_path;
	emv_cache_ages cache_ages;
	int64_t max_age_s; /* -1: none; 0: --fresh */
	struct cache_put {
		char *address, *result;
		emv_status st;
		emv_reason r;
		int64_t at;
	} *pend;
	size_t npend, cappend;
	uint64_t cache_hits, cache_stored, rows_cached, last_store_ms;
	int cache_warned;
};

static void grow_unique(struct verify *v)
{
	if (v->nu < v->capu)
		return;
	v->capu = v->capu ? v->capu * 2 : 4096;
	v->u = emv_xrealloc(v->u, v->capu * sizeof *v->u);
	v->uaddr = emv_xrealloc(v->uaddr, v->capu * sizeof *v->uaddr);
	memset(v->uaddr + v->nu, 0, (v->capu - v->nu) * sizeof *v->uaddr);
}

/* ---- journal ---- */

static int journal_open(struct verify *v)
{
	struct stat st;
	snprintf(v->journal_path, sizeof v->journal_path, "%s.journal", v->output);
	if (v->resume && stat(v->journal_path, &st) == 0) {
		v->journal = fopen(v->journal_path, "r+");
	} else {
		v->journal = fopen(v->journal_path, "w+");
	}
	if (!v->journal) {
		fprintf(stderr, "emailverify: cannot open journal %s: %s\n", v->journal_path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Read back a journal: every complete line gives a verdict for its address.
 * A torn last line (killed mid-write) is cut off. */
static int journal_load(struct verify *v)
{
	char *line = emv_xmalloc(JOURNAL_LINE_MAX);
	uint64_t off = 0, good = 0, loaded = 0;

	rewind(v->journal);
	while (fgets(line, JOURNAL_LINE_MAX, v->journal)) {
		size_t len = strlen(line);
		json_error_t je;
		json_t *o;
		if (len == 0 || line[len - 1] != '\n')
			break; /* torn */
		o = json_loads(line, 0, &je);
		if (o) {
			const char *k = json_string_value(json_object_get(o, "k"));
			if (k) {
				uint64_t id = v->nu;
				if (emv_dedup_add(v->dedup, k, strlen(k), id, &id) == 1) {
					grow_unique(v);
					v->u[v->nu].first_row = 0;
					v->nu++;
				}
				v->u[id].journal_off = off + 1;
				loaded++;
			}
			json_decref(o);
		} else {
			break;
		}
		off += len;
		good = off;
	}
	free(line);
	if (ftruncate(fileno(v->journal), (off_t)good) < 0) {
		fprintf(stderr, "emailverify: cannot truncate %s: %s\n", v->journal_path, strerror(errno));
		return -1;
	}
	fseeko(v->journal, (off_t)good, SEEK_SET);
	v->journal_size = good;
	v->resumed = loaded;
	return 0;
}

static void journal_flush(struct verify *v, int force)
{
	uint64_t now = emv_now_ms();
	if (force || now - v->last_flush_ms >= 1000) {
		fflush(v->journal);
		v->last_flush_ms = now;
	}
}

/* ---- the cache file ---- */

/* Store the verdicts made since the last time in one write transaction
 * (called with mu held).  A busy file (another run writing) keeps them for
 * the next time; force: the last chance, a failure is said. */
static void cache_store(struct verify *v, int force)
{
	char err[600];
	size_t i;
	uint64_t stored = 0;
	int rc;
	if (!v->cache || v->npend == 0)
		return;
	if (!force && v->npend < EMV_DEF_CACHE_FILE_BATCH && emv_now_ms() - v->last_store_ms < 1000)
		return;
	v->last_store_ms = emv_now_ms();
	rc = cli_cache_begin(v->cache, 1, err, sizeof err);
	for (i = 0; rc == EMV_OK && i < v->npend; i++) {
		struct cache_put *p = &v->pend[i];
		int n = cli_cache_put(v->cache, p->address, p->st, p->r, p->at, p->result, err, sizeof err);
		if (n < 0)
			rc = n;
		else
			stored += (uint64_t)n;
	}
	if (rc == EMV_OK)
		rc = cli_cache_commit(v->cache, err, sizeof err);
	if (rc == EMV_OK)
		v->cache_stored += stored;
	else {
		cli_cache_rollback(v->cache);
		if (force || !v->cache_warned) {
			fprintf(stderr, "emailverify: %s%s\n", err,
				force ? "; these verdicts are not in the cache file (they are in the output)"
				      : "; trying again");
			v->cache_warned = 1;
		}
		if (!force)
			return;
	}
	for (i = 0; i < v->npend; i++) {
		free(v->pend[i].address);
		free(v->pend[i].result);
	}
	v->npend = 0;
}

/* Pass 1: may the cache file answer unique address id?  Then its verdict
 * goes into the journal, marked cached.  1 answered, 0 not, -1 error. */
static int cache_answer(struct verify *v, uint64_t id, const char *address, int64_t now)
{
	char err[600], *res = NULL;
	int64_t at = 0;
	int rc = cli_cache_get(v->cache, address, &v->cache_ages, v->max_age_s, now, &res, &at, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "emailverify: %s\n", err);
		return -1;
	}
	if (rc == 0)
		return 0;
	{
		size_t len = strlen(res);
		int n = fprintf(v->journal, "{\"cached\":true,\"verified_at\":%lld,", (long long)at);
		v->u[id].journal_off = v->journal_size + 1;
		fwrite(res + 1, 1, len - 1, v->journal);
		fputc('\n', v->journal);
		v->journal_size += (uint64_t)(n > 0 ? n : 0) + len;
	}
	free(res);
	v->cache_hits++;
	return 1;
}

/* ---- progress ---- */

static void stats_all(const struct verify *v, emv_engine_stats *all)
{
	memset(all, 0, sizeof *all);
	for (int i = 0; i < v->nw; i++) {
		emv_engine_stats st;
		if (!v->w[i].eng)
			continue;
		emv_engine_stats_get(v->w[i].eng, &st);
		all->added += st.added;
		all->finished += st.finished;
		all->retries += st.retries;
		for (int r = 0; r < EMV_REASON__COUNT; r++)
			all->retries_by_reason[r] += st.retries_by_reason[r];
		all->sessions += st.sessions;
		all->resumed += st.resumed;
		all->cut_sessions += st.cut_sessions;
		all->jobs += st.jobs;
		all->active += st.active;
		all->waiting_retry += st.waiting_retry;
		all->domains += st.domains;
		all->peak_active += st.peak_active;
		all->port25_suspected |= st.port25_suspected;
		all->expired += st.expired;
		if (st.next_retry_ms && (!all->next_retry_ms || st.next_retry_ms < all->next_retry_ms))
			all->next_retry_ms = st.next_retry_ms;
		if (st.deadline_ms && (!all->deadline_ms || st.deadline_ms < all->deadline_ms))
			all->deadline_ms = st.deadline_ms;
		if (st.budget_wait[0] && !all->budget_wait[0])
			emv_strlcpy(all->budget_wait, st.budget_wait, sizeof all->budget_wait);
	}
}

static void fmt_duration(char *b, size_t n, double s)
{
	if (s < 0 || s > 1e7)
		snprintf(b, n, "?");
	else if (s < 60)
		snprintf(b, n, "%.0fs", s);
	else if (s < 3600)
		snprintf(b, n, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(b, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void progress(struct verify *v, int final)
{
	uint64_t total = v->queued, done = v->done;
	double el = (double)(emv_now_ms() - v->start_ms) / 1000.0;
	double rate = el > 0 ? (double)done / el : 0;
	char eta[32], why[300] = "";
	emv_engine_stats st;
	uint64_t now = emv_now_ms();
	double eta_s;

	if (v->progress_mode == 0)
		return;
	stats_all(v, &st);
	/* the addresses not yet answered at the rate so far; those waiting for
	 * a retry not before their retry is due, and none after the limit */
	{
		uint64_t left = total - done, waiting = st.waiting_retry < left ? st.waiting_retry : left;
		eta_s = rate > 0 ? (double)(left - waiting) / rate : -1;
	}
	if (st.waiting_retry && st.next_retry_ms) {
		double retry_s = st.next_retry_ms > now ? (double)(st.next_retry_ms - now) / 1000.0 : 0;
		if (eta_s < retry_s)
			eta_s = retry_s;
	}
	if (st.deadline_ms) {
		double lim = st.deadline_ms > now ? (double)(st.deadline_ms - now) / 1000.0 : 0;
		if (eta_s < 0 || eta_s > lim)
			eta_s = lim;
	}
	fmt_duration(eta, sizeof eta, total == done ? 0 : eta_s);
	if (st.budget_wait[0])
		snprintf(why, sizeof why, "%swaiting for %s", v->progress_mode == 2 ? " | " : "; ", st.budget_wait);
	if (v->progress_mode == 2) {
		int width = 24, fill = total ? (int)((double)done * width / (double)total) : width;
		char bar[32];
		for (int i = 0; i < width; i++)
			bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
		bar[width] = '\0';
		fprintf(stderr,
			"\r[%s] %" PRIu64 "/%" PRIu64 " %5.1f%% %.0f/s ETA %s | ok %" PRIu64 " bad %" PRIu64
			" risky %" PRIu64 " unknown %" PRIu64 " | retrying %u%s%s\033[K",
			bar, done, total, total ? 100.0 * (double)done / (double)total : 100.0, rate, eta,
			v->by_status[EMV_STATUS_DELIVERABLE], v->by_status[EMV_STATUS_UNDELIVERABLE],
			v->by_status[EMV_STATUS_RISKY], v->by_status[EMV_STATUS_UNKNOWN], st.waiting_retry,
			st.port25_suspected ? " | PORT 25 BLOCKED?" : "", why);
		if (final)
			fputc('\n', stderr);
	} else {
		fprintf(stderr,
			"progress: %" PRIu64 "/%" PRIu64 " done (%.1f%%), %.0f/s, ETA %s, deliverable %" PRIu64
			", undeliverable %" PRIu64 ", risky %" PRIu64 ", unknown %" PRIu64
			", waiting to retry %u%s%s\n",
			done, total, total ? 100.0 * (double)done / (double)total : 100.0, rate, eta,
			v->by_status[EMV_STATUS_DELIVERABLE], v->by_status[EMV_STATUS_UNDELIVERABLE],
			v->by_status[EMV_STATUS_RISKY], v->by_status[EMV_STATUS_UNKNOWN], st.waiting_retry,
			st.port25_suspected ? "; outbound port 25 looks blocked from this host" : "", why);
	}
	fflush(stderr);
}

/* Loop 0 runs until every address is done; the others until their own
 * engine is idle.  Both wait for their connections' QUITs (the engine
 * keeps connections open between domains).  Called with v->mu held. */
static void maybe_stop(struct vworker *w)
{
	struct verify *v = w->v;
	if (w->idx == 0 ? v->done >= v->queued && emv_engine_open_connections(w->eng) == 0 : emv_engine_idle(w->eng))
		event_base_loopbreak(w->e.base);
}

/* emv_engine_params.quiet: the last connection is gone */
static void on_quiet(void *arg)
{
	struct vworker *w = arg;
	pthread_mutex_lock(&w->v->mu);
	maybe_stop(w);
	pthread_mutex_unlock(&w->v->mu);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct vworker *w = arg;
	struct verify *v = w->v;
	static uint64_t last_line;
	uint64_t now = emv_now_ms();

	pthread_mutex_lock(&v->mu);
	if (w->idx == 0) {
		journal_flush(v, 0);
		cache_store(v, 0);
		if (v->progress_mode == 2 || now - last_line >= 5000) {
			progress(v, 0);
			last_line = now;
		}
	}
	maybe_stop(w);
	pthread_mutex_unlock(&v->mu);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct verify *v = arg;
	v->interrupted = (int)sig;
	for (int i = 0; i < v->nw; i++)
		event_base_loopbreak(v->w[i].e.base);
}

/* ---- results ---- */

/* A final verdict of unique address id: from a probe job (job, idx), or a
 * result the engine kept (a deadline made it final). */
static void record(struct vworker *w, uint64_t id, const emv_probe_job *job, size_t idx, const emv_probe_result *kept,
		   unsigned attempts, int port25)
{
	struct verify *v = w->v;
	emv_address a;
	char sugg[EMV_ADDRESS_MAX + 1] = "";
	const char *addr = v->uaddr[id];
	emv_report_in in;
	emv_report_verdict vd;
	char *s;
	size_t len;

	emv_address_parse(addr, strlen(addr), &a);
	emv_lists_suggest(w->e.lists, a.local, a.domain, sugg, sizeof sugg);
	memset(&in, 0, sizeof in);
	in.input = addr;
	in.addr = &a;
	in.list_flags = emv_lists_flags(w->e.lists, a.local, a.domain);
	in.did_you_mean = sugg;
	in.job = job;
	in.index = idx;
	in.result = kept;
	in.no_transcript = !v->transcript;
	in.attempts = attempts;
	in.key = addr;
	emv_report_verdict_of(&in, &vd);
	s = emv_report_json_text(&in);
	len = strlen(s);
	pthread_mutex_lock(&v->mu);
	if (port25)
		v->port25 = 1;
	v->u[id].journal_off = v->journal_size + 1;
	if (v->cache) {
		/* with a cache file every verdict says when it was made */
		int64_t now = (int64_t)time(NULL);
		int n = fprintf(v->journal, "{\"verified_at\":%lld,", (long long)now);
		fwrite(s + 1, 1, len - 1, v->journal);
		v->journal_size += (uint64_t)(n > 0 ? n : 0) - 1;
		if (vd.status != EMV_STATUS_UNKNOWN) {
			if (v->npend == v->cappend) {
				v->cappend = v->cappend ? v->cappend * 2 : 256;
				v->pend = emv_xrealloc(v->pend, v->cappend * sizeof *v->pend);
			}
			v->pend[v->npend].address = emv_xstrdup(addr);
			v->pend[v->npend].result = s; /* now owned by pend */
			v->pend[v->npend].st = vd.status;
			v->pend[v->npend].r = vd.reason;
			v->pend[v->npend].at = now;
			v->npend++;
			s = NULL;
		}
	} else {
		fwrite(s, 1, len, v->journal);
	}
	fputc('\n', v->journal);
	v->journal_size += len + 1;
	v->by_status[vd.status]++;
	v->by_reason[vd.reason]++;
	free(v->uaddr[id]);
	v->uaddr[id] = NULL;
	v->done++;
	if (w->idx == 0)
		journal_flush(v, 0);
	maybe_stop(w);
	pthread_mutex_unlock(&v->mu);
	free(s);
}

static void on_result(void *arg, uint64_t id, const emv_probe_job *job, size_t idx, unsigned attempts, int port25)
{
	record(arg, id, job, idx, NULL, attempts, port25);
}

/* --deadline / --straggler-wait: final without asking (again) */
static void on_expired(void *arg, uint64_t id, const emv_probe_result *last, unsigned attempts)
{
	emv_probe_result none;
	if (!last) {
		memset(&none, 0, sizeof none);
		none.status = EMV_STATUS_UNKNOWN;
		none.reason = EMV_REASON_TIMEOUT;
		none.catch_all = -1;
		emv_strlcpy(none.detail, "not asked before the deadline", sizeof none.detail);
		last = &none;
	}
	record(arg, id, NULL, 0, last, attempts, 0);
}

/* ---- output ---- */

static void write_record(struct verify *v, FILE *out, json_t *o, uint64_t row, uint64_t dup_of, const char *raw)
{
	/* What the whole run learnt refines single verdicts: a connect timeout
	 * on a host where no mail server at all could be reached is port 25
	 * being blocked here, not that server being down. */
	if (v->port25 && json_is_true(json_object_get(o, "connect_timeout"))) {
		json_object_set_new(o, "reason", json_string(emv_reason_name(EMV_REASON_PORT25_BLOCKED)));
		json_object_set_new(o, "detail",
				    json_string("connections to many unrelated mail servers time out "
						"and none succeeds: outbound port 25 looks blocked from this host"));
	}
	{
		/* the summary counts what the output says: the policy's mapping */
		int st = emv_status_from_name(json_string_value(json_object_get(o, "status")));
		int rs = emv_reason_from_name(json_string_value(json_object_get(o, "reason")));
		unsigned flags = 0;
		json_t *f;
		size_t i;
		json_array_foreach (json_object_get(o, "flags"), i, f)
			flags |= emv_flag_from_name(json_string_value(f) ? json_string_value(f) : "");
		if (st >= 0 && rs >= 0) {
			emv_status ms = (emv_status)st;
			emv_reason mr = (emv_reason)rs;
			v->rows_safe += (uint64_t)emv_policy_apply(v->policy, &ms, &mr, flags);
			v->rows_status[ms]++;
			v->rows_reason[mr]++;
		}
	}
	/* the journal's object (emv_report's JSON) as an output row: the same
	 * columns and keys as the export of `run` (lib/emv_format.h) */
	{
		emv_format_row w;
		emv_buf *b = &v->outbuf;
		json_t *f, *smtp = json_object_get(o, "smtp"), *ca = json_object_get(o, "catch_all");
		json_t *tr = v->transcript ? json_object_get(o, "transcript") : NULL;
		char *extra = NULL;
		size_t i;

		memset(&w, 0, sizeof w);
		w.email = json_string_value(json_object_get(o, "email"));
		w.status = json_string_value(json_object_get(o, "status"));
		w.reason = json_string_value(json_object_get(o, "reason"));
		json_array_foreach (json_object_get(o, "flags"), i, f)
			w.flags |= emv_flag_from_name(json_string_value(f) ? json_string_value(f) : "");
		w.did_you_mean = json_string_value(json_object_get(o, "did_you_mean"));
		w.detail = json_string_value(json_object_get(o, "detail"));
		w.mx_host = json_string_value(json_object_get(o, "mx_host"));
		w.mx_ip = json_string_value(json_object_get(o, "mx_ip"));
		w.source_ip = json_string_value(json_object_get(o, "source_ip"));
		w.region = NULL; /* one machine: no region */
		w.tls = json_string_value(json_object_get(o, "tls"));
		w.catch_all = json_is_true(ca) ? 1 : json_is_false(ca) ? 0 : -1;
		if (json_is_object(smtp)) {
			w.have_smtp = 1;
			w.smtp_code = (int)json_integer_value(json_object_get(smtp, "code"));
			w.enhanced = json_string_value(json_object_get(smtp, "enhanced"));
			w.reply = json_string_value(json_object_get(smtp, "reply"));
		}
		w.attempts = (long long)json_integer_value(json_object_get(o, "attempts"));
		w.duration_ms = (long long)json_integer_value(json_object_get(o, "duration_ms"));
		w.cached = json_is_true(json_object_get(o, "cached"));
		w.verified_at = (int64_t)json_integer_value(json_object_get(o, "verified_at"));
		if (w.cached)
			v->rows_cached++;
		w.duplicate_of_row = dup_of;
		w.row = row;
		w.input = raw ? raw : "";
		w.policy = v->policy;
		if (v->jsonl) {
			if (tr) { /* --transcript: the one key only verify has */
				char *t = json_dumps(tr, JSON_COMPACT | JSON_PRESERVE_ORDER);
				size_t n = strlen(t) + sizeof "\"transcript\":";
				extra = emv_xmalloc(n);
				snprintf(extra, n, "\"transcript\":%s", t);
				free(t);
			}
			emv_format_jsonl_row(b, &w, extra);
		} else {
			emv_format_csv_row(b, &w, v->keep_formulas);
		}
		fwrite(b->p, 1, b->len, out);
		b->len = 0;
		free(extra);
	}
}

static json_t *row_error_json(const char *raw, const char *err, const emv_address *a)
{
	emv_report_in in;
	json_t *o;
	memset(&in, 0, sizeof in);
	in.input = raw ? raw : "";
	in.addr = a;
	o = emv_report_json(&in);
	if (!a) {
		json_object_set_new(o, "email", json_string(""));
		json_object_set_new(o, "status", json_string("unknown"));
		json_object_set_new(o, "reason", json_string(emv_reason_name(EMV_REASON_INPUT_ERROR)));
		json_object_set_new(o, "detail", json_string(err));
	}
	return o;
}

static int write_output(struct verify *v, FILE *out, const emv_ingest_limits *lim)
{
	char err[512];
	emv_ingest *in = emv_ingest_open(v->input, lim, err, sizeof err);
	emv_ingest_row row;
	char *line = emv_xmalloc(JOURNAL_LINE_MAX);
	int rc;

	if (!in) {
		fprintf(stderr, "emailverify: %s\n", err);
		free(line);
		return -1;
	}
	if (!v->jsonl) {
		emv_buf h = { NULL, 0, 0 };
		emv_format_csv_header(&h);
		fwrite(h.p, 1, h.len, out);
		free(h.p);
	}
	fflush(v->journal);
	while ((rc = emv_ingest_next(in, &row)) == 1) {
		emv_address a;
		json_t *o = NULL;
		uint64_t dup = 0;
		if (row.error) {
			o = row_error_json(row.raw, row.error, NULL);
		} else if (emv_address_parse(row.email, row.email_len, &a) != EMV_OK) {
			char field[1100];
			emv_sanitize(field, sizeof field, row.email, row.email_len);
			o = row_error_json(field, NULL, &a);
		} else {
			uint64_t id = 0;
			struct uentry *u;
			u = emv_dedup_find(v->dedup, a.address, strlen(a.address), &id) && id < v->nu ? &v->u[id]
												      : NULL;
			if (u && u->first_row && u->first_row != row.row)
				dup = u->first_row;
			if (u && u->journal_off) {
				fseeko(v->journal, (off_t)(u->journal_off - 1), SEEK_SET);
				if (fgets(line, JOURNAL_LINE_MAX, v->journal))
					o = json_loads(line, 0, NULL);
			}
			if (!o) { /* never verified (interrupted run) */
				o = row_error_json(row.raw, "not verified: the run was interrupted", NULL);
				json_object_set_new(o, "email", json_string(a.address));
				json_object_set_new(o, "reason",
						    json_string(emv_reason_name(EMV_REASON_CONNECTION_FAILED)));
			}
		}
		write_record(v, out, o, row.row, dup, row.raw);
		json_decref(o);
	}
	if (rc < 0)
		fprintf(stderr, "emailverify: reading %s again: %s\n", v->input, emv_ingest_error(in));
	emv_ingest_close(in);
	free(line);
	free(v->outbuf.p);
	memset(&v->outbuf, 0, sizeof v->outbuf);
	fseeko(v->journal, 0, SEEK_END);
	return rc < 0 ? -1 : 0;
}

static void summary(struct verify *v)
{
	emv_engine_stats st;
	double el = (double)(emv_now_ms() - v->start_ms) / 1000.0;
	double probe = (double)(v->probe_end_ms - v->probe_start_ms) / 1000.0;
	stats_all(v, &st);
	fprintf(stderr, "\nsummary for %s\n", v->input);
	fprintf(stderr,
		"  rows %" PRIu64 " (row errors %" PRIu64 ", invalid syntax %" PRIu64 ", duplicates %" PRIu64 ")\n",
		v->rows, v->row_errors, v->invalid, v->duplicates);
	fprintf(stderr,
		"  unique addresses verified %" PRIu64 "%s in %.2f s (%.0f/s); reading %.2f s, probing %.2f s "
		"(%.0f/s), writing %.2f s\n",
		v->done, v->resumed ? " (plus resumed from the journal)" : "", el, el > 0 ? (double)v->done / el : 0,
		(double)v->read_ms / 1000.0, probe, probe > 0 ? (double)v->done / probe : 0,
		(double)(emv_now_ms() - v->probe_end_ms) / 1000.0);
	fprintf(stderr,
		"  SMTP sessions %" PRIu64 " (%.3f per address, at most %u at once, %" PRIu64
		" ended by the error budget, %" PRIu64 " domain batches asked in a session kept open), retries %" PRIu64,
		st.sessions, v->done ? (double)st.sessions / (double)v->done : 0.0, st.peak_active, st.cut_sessions,
		st.resumed, st.retries);
	for (int r = 0, first = 1; r < EMV_REASON__COUNT; r++)
		if (st.retries_by_reason[r]) {
			fprintf(stderr, "%s%s %" PRIu64, first ? " (" : ", ", emv_reason_name((emv_reason)r),
				st.retries_by_reason[r]);
			first = 0;
		}
	fprintf(stderr, "%s\n", st.retries ? ")" : "");
	if (v->cache)
		fprintf(stderr,
			"  cached rows %" PRIu64 " (%" PRIu64 " unique addresses answered from %s without DNS or "
			"SMTP; %" PRIu64 " verdicts stored in it)\n",
			v->rows_cached, v->cache_hits, v->cache_path, v->cache_stored);
	if (st.expired)
		fprintf(stderr,
			"  %" PRIu64 " address(es) made final by the time limit (--deadline, --straggler-wait) "
			"while waiting to be asked (again)\n",
			st.expired);
	fprintf(stderr, "  %-20s %10s\n", "status", "rows");
	for (int s = 0; s < EMV_STATUS__COUNT; s++)
		fprintf(stderr, "  %-20s %10" PRIu64 "\n", emv_status_name((emv_status)s), v->rows_status[s]);
	fprintf(stderr, "  %-20s %10" PRIu64 "   (policy %s)\n", "safe to send", v->rows_safe,
		emv_policy_name(v->policy));
	fprintf(stderr, "  %-20s %10s\n", "reason", "rows");
	for (int r = 0; r < EMV_REASON__COUNT; r++)
		if (v->rows_reason[r])
			fprintf(stderr, "  %-20s %10" PRIu64 "\n", emv_reason_name((emv_reason)r), v->rows_reason[r]);
	if (v->port25 || st.port25_suspected)
		fprintf(stderr,
			"  WARNING: outbound connections to port %d time out everywhere: this host's network "
			"most likely blocks port 25 (common on cloud and home networks); results say port25_blocked\n",
			v->w[0].e.probe.session.port);
}

static void verify_usage(FILE *f)
{
	fprintf(f, "usage: emailverify verify [options] LIST [-o OUTPUT]\n\n"
		   "Verify every address of LIST (CSV with a header, or one address per line; gzip\n"
		   "accepted; '-' for stdin) and write one result row per input row, in input order.\n\n"
		   "options:\n"
		   "  -o, --output FILE      results file (default: stdout; a journal FILE.journal keeps progress)\n"
		   "  --format csv|jsonl     output format (default csv)\n"
		   "  --no-escape-formulas   CSV: write cells starting with = + - @ TAB CR as they are\n"
		   "  --policy NAME|FILE     the verdict policy: marketing (default: role, catch-all,\n"
		   "                         disposable, full mailboxes are risky) or transactional (role\n"
		   "                         addresses a server accepted are deliverable), or a policy\n"
		   "                         file (docs/policy.md)\n"
		   "                         (default: quoted, with a ' in front, so that a spreadsheet\n"
		   "                         does not run them as formulas)\n"
		   "  --concurrency N        SMTP sessions at once, per thread (default 500)\n"
		   "  --threads N            event loops (one per core); domains are shared out among them\n"
		   "  --resume               continue an interrupted run from FILE.journal\n"
		   "  --no-batching          one SMTP session per address (for comparison only: impolite)\n"
		   "  --max-attempts N       tries per address for temporary failures (default 4)\n"
		   "  --retry-schedule A,B,C seconds to wait before the 1st, 2nd, 3rd retry of greylisting and\n"
		   "                         rate limits (default 60,300,900); A also times the one retry of an\n"
		   "                         unreachable host. A full mailbox or a blocked source is final at once\n"
		   "  --deadline D           at D (90s, 10m, 2h) after the start, every address still waiting is\n"
		   "                         final: unknown, with its reason and last evidence\n"
		   "  --straggler-wait D     once every address has had its first answer, wait at most D more\n"
		   "                         for retries (default 5m; 0 = as long as the retries take)\n"
		   "  --transcript           keep every SMTP exchange in the results (JSON Lines)\n"
		   "  --progress auto|bar|lines|none\n"
		   "  --cache FILE           a local verdict cache (SQLite; created if missing): addresses with a\n"
		   "                         verdict young enough are answered from it without DNS or SMTP\n"
		   "                         (marked cached, with verified_at), the others are asked and their\n"
		   "                         verdicts stored (unknown never is); docs/cache.md\n"
		   "  --cache-ages LIST      with --cache: how old a verdict may be, NAME=AGE,... by status or\n"
		   "                         reason (default deliverable=30d,undeliverable=90d,risky=7d,\n"
		   "                         mailbox_full=1d; off: never served)\n"
		   "  --max-age D            with --cache: answer only from verdicts younger than D (12h, 7d)\n"
		   "  --fresh                with --cache: ask every address again (and store the verdicts)\n"
		   "                         (emailverify forget --cache FILE ADDRESS removes an address)\n" EMV_SETUP_HELP);
}

static unsigned domain_hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Threads 1..N-1: drive their own loop until their engine is idle. */
static void *worker_main(void *arg)
{
	struct vworker *w = arg;
	emv_engine_pump(w->eng);
	if (!emv_engine_idle(w->eng))
		event_base_dispatch(w->e.base);
	return NULL;
}

static int spool_stdin(char *path, size_t pathlen)
{
	const char *dir = getenv("TMPDIR");
	char buf[65536];
	ssize_t n;
	int fd;

	snprintf(path, pathlen, "%s/emailverify-stdin-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "emailverify: cannot create a spool file for stdin (%s): %s\n", path, strerror(errno));
		path[0] = '\0';
		return -1;
	}
	while ((n = read(0, buf, sizeof buf)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "emailverify: reading stdin: %s\n", strerror(errno));
			break;
		}
		if (write(fd, buf, (size_t)n) != n) {
			fprintf(stderr, "emailverify: writing %s: %s\n", path, strerror(errno));
			n = -1;
			break;
		}
	}
	close(fd);
	if (n < 0) {
		unlink(path);
		path[0] = '\0';
		return -1;
	}
	return 0;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int cli_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 2001 },
		{ "concurrency", required_argument, NULL, 2002 },
		{ "resume", no_argument, NULL, 2003 },
		{ "no-batching", no_argument, NULL, 2004 },
		{ "max-attempts", required_argument, NULL, 2005 },
		{ "retry-schedule", required_argument, NULL, 2006 },
		{ "transcript", no_argument, NULL, 2007 },
		{ "progress", required_argument, NULL, 2008 },
		{ "threads", required_argument, NULL, 2009 },
		{ "no-escape-formulas", no_argument, NULL, 2010 },
		{ "policy", required_argument, NULL, 2013 },
		{ "deadline", required_argument, NULL, 2011 },
		{ "straggler-wait", required_argument, NULL, 2012 },
		{ "cache", required_argument, NULL, 2014 },
		{ "cache-ages", required_argument, NULL, 2015 },
		{ "max-age", required_argument, NULL, 2016 },
		{ "fresh", no_argument, NULL, 2017 },
		{ "help", no_argument, NULL, 'h' },
		EMV_SETUP_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct verify v;
	emv_setup_opts eo;
	emv_engine_params ep;
	emv_ingest_limits lim;
	emv_ingest *in;
	emv_ingest_row row;
	FILE *out = stdout;
	char err[512], outbuf_path[4200] = "", spool_path[4200] = "";
	int opt, rc, ret = 0;
	const char *progress_opt = "auto", *cache_opt = NULL;
	uint64_t deadline_ms = 0;

	memset(&v, 0, sizeof v);
	v.nw = 1;
	v.max_age_s = -1;
	emv_cache_ages_default(&v.cache_ages);
	emv_setup_opts_default(&eo);
	emv_engine_params_default(&ep);
	ep.linger_ms = EMV_DEF_LINGER_MS; /* a list does not wait long for its stragglers unless asked to */
	optind = 1;
	while ((opt = getopt_long(argc, argv, "o:hv", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o': v.output = optarg; continue;
		case 'h': verify_usage(stdout); return 0;
		case 2001:
			if (strcmp(optarg, "csv") && strcmp(optarg, "jsonl")) {
				fprintf(stderr, "emailverify: --format must be csv or jsonl\n");
				return 2;
			}
			v.jsonl = strcmp(optarg, "jsonl") == 0;
			continue;
		case 2002:
			if (emv_parse_int("--concurrency", optarg, 1, 100000, &ep.concurrency, err, sizeof err)) {
				fprintf(stderr, "emailverify: %s\n", err);
				return 2;
			}
			continue;
		case 2003: v.resume = 1; continue;
		case 2010: v.keep_formulas = 1; continue;
		case 2013:
			emv_policy_free(v.policy);
			if (!(v.policy = emv_policy_get(optarg, err, sizeof err))) {
				fprintf(stderr, "emailverify verify: --policy: %s\n", err);
				return 2;
			}
			continue;
		case 2011:
		case 2012: {
			uint64_t ms;
			if (emv_parse_duration_ms(optarg, &ms) < 0 || (opt == 2011 && ms == 0)) {
				fprintf(stderr,
					"emailverify: --%s takes a duration such as 90s, 10m or 2h (got '%s')\n",
					opt == 2011 ? "deadline" : "straggler-wait", optarg);
				return 2;
			}
			if (opt == 2011)
				deadline_ms = ms;
			else
				ep.linger_ms = ms;
			continue;
		}
		case 2004: ep.no_batching = 1; continue;
		case 2014: v.cache_path = optarg; continue;
		case 2015:
			if (emv_cache_ages_parse(&v.cache_ages, optarg, err, sizeof err) != EMV_OK) {
				fprintf(stderr, "emailverify verify: --cache-ages: %s\n", err);
				return 2;
			}
			cache_opt = "--cache-ages";
			continue;
		case 2016:
			if (emv_cache_parse_max_age("--max-age", optarg, &v.max_age_s, err, sizeof err) != EMV_OK) {
				fprintf(stderr, "emailverify verify: %s\n", err);
				return 2;
			}
			cache_opt = "--max-age";
			continue;
		case 2017:
			v.max_age_s = 0;
			cache_opt = "--fresh";
			continue;
		case 2005:
			if (emv_parse_int("--max-attempts", optarg, 1, 20, &eo.retry.max_attempts, err, sizeof err)) {
				fprintf(stderr, "emailverify: %s\n", err);
				return 2;
			}
			continue;
		case 2006:
			if (emv_retry_parse_schedule(&eo.retry, optarg, err, sizeof err) < 0) {
				fprintf(stderr, "emailverify: --retry-schedule: %s\n", err);
				return 2;
			}
			continue;
		case 2007: v.transcript = 1; continue;
		case 2008: progress_opt = optarg; continue;
		case 2009:
			if (emv_parse_int("--threads", optarg, 1, 64, &v.nw, err, sizeof err)) {
				fprintf(stderr, "emailverify: %s\n", err);
				return 2;
			}
			continue;
		default:
			rc = emv_setup_opt(&eo, opt, optarg);
			if (rc == 1)
				continue;
			if (rc == 0)
				verify_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "emailverify verify: give exactly one list (or '-' for stdin)\n");
		verify_usage(stderr);
		return 2;
	}
	v.input = argv[optind];
	if (cache_opt && !v.cache_path) {
		fprintf(stderr, "emailverify verify: %s needs --cache FILE\n", cache_opt);
		return 2;
	}
	if (v.resume && !v.output) {
		fprintf(stderr, "emailverify verify: --resume needs -o OUTPUT (the journal lives next to it)\n");
		return 2;
	}
	if (strcmp(progress_opt, "auto") == 0)
		v.progress_mode = isatty(2) ? 2 : 1;
	else if (strcmp(progress_opt, "bar") == 0)
		v.progress_mode = 2;
	else if (strcmp(progress_opt, "lines") == 0)
		v.progress_mode = 1;
	else if (strcmp(progress_opt, "none") == 0)
		v.progress_mode = 0;
	else {
		fprintf(stderr, "emailverify: --progress must be auto, bar, lines or none\n");
		return 2;
	}
	emv_setup_params_apply(&eo, &ep);
	/* libevent must be told about threads before any base exists */
	if (v.nw > 1 && evthread_use_pthreads() != 0) {
		fprintf(stderr, "emailverify: libevent without thread support; use --threads 1\n");
		return 1;
	}
	if (v.cache_path && !(v.cache = cli_cache_open(v.cache_path, err, sizeof err))) {
		/* a file we cannot use is the user's to fix: nothing is verified */
		fprintf(stderr, "emailverify verify: %s\n", err);
		return 2;
	}
	/* a machine that cannot verify stops here, before the list is read */
	if (cli_preflight(&eo, "emailverify verify") < 0) {
		cli_cache_close(v.cache);
		return 1;
	}

	emv_ingest_limits_default(&lim);
	if (strcmp(v.input, "-") == 0) {
		/* stdin cannot be read twice: spool it (streaming) and read the copy */
		if (spool_stdin(spool_path, sizeof spool_path) < 0) {
			cli_cache_close(v.cache);
			return 1;
		}
		v.input = spool_path;
	}
	in = emv_ingest_open(v.input, &lim, err, sizeof err);
	if (!in) {
		fprintf(stderr, "emailverify: %s\n", err);
		if (spool_path[0])
			unlink(spool_path);
		cli_cache_close(v.cache);
		return 1;
	}
	pthread_mutex_init(&v.mu, NULL);
	ep.budget = emv_budget_new(); /* one for all loops: threads must not multiply a budget */
	v.w = emv_xcalloc((size_t)v.nw, sizeof *v.w);
	for (int i = 0; i < v.nw; i++) {
		v.w[i].v = &v;
		v.w[i].idx = i;
		if (emv_setup_init(&v.w[i].e, &eo) < 0) {
			emv_ingest_close(in);
			in = NULL;
			ret = 1;
			goto out;
		}
	}
	raise_fd_limit();
	if (!v.output) {
		snprintf(outbuf_path, sizeof outbuf_path, "/tmp/emailverify-%d", (int)getpid());
		v.output = outbuf_path;
	}
	v.dedup = emv_dedup_new(0);
	if (journal_open(&v) < 0 || (v.resume && journal_load(&v) < 0)) {
		ret = 1;
		goto out;
	}
	ep.expired = on_expired;
	ep.quiet = on_quiet;
	if (deadline_ms)
		ep.deadline_ms = emv_now_ms() + deadline_ms;
	for (int i = 0; i < v.nw; i++) {
		struct vworker *w = &v.w[i];
		struct timeval tv = { 1, 0 };
		w->e.probe.retry.greylist_rounds = 0; /* the engine retries */
		emv_setup_params_engine(&w->e, &ep);
		w->eng = emv_engine_new(&w->e.probe, &ep, on_result, w);
		w->tick = event_new(w->e.base, -1, EV_PERSIST, on_tick, w);
		event_add(w->tick, &tv);
	}
	v.start_ms = emv_now_ms();
	if (v.cache && cli_cache_begin(v.cache, 0, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify verify: %s\n", err);
		ret = 2;
		goto out;
	}

	/* pass 1: read, de-duplicate, answer from the cache file or queue */
	while ((rc = emv_ingest_next(in, &row)) == 1) {
		emv_address a;
		uint64_t id;
		v.rows++;
		if (row.error) {
			/* the first few are shown; every one is in the output */
			if (++v.row_errors <= 20)
				fprintf(stderr, "emailverify: %s\n", row.error);
			else if (v.row_errors == 21)
				fprintf(stderr,
					"emailverify: more row errors follow; each is in the output as input_error\n");
			continue;
		}
		if (emv_address_parse(row.email, row.email_len, &a) != EMV_OK) {
			v.invalid++;
			continue;
		}
		id = v.nu;
		if (emv_dedup_add(v.dedup, a.address, strlen(a.address), id, &id) == 0) {
			if (v.u[id].first_row == 0)
				v.u[id].first_row = row.row; /* known from the journal */
			else
				v.duplicates++;
			continue;
		}
		grow_unique(&v);
		v.u[id].journal_off = 0;
		v.u[id].first_row = row.row;
		v.nu++;
		if (v.cache) {
			int hit = cache_answer(&v, id, a.address, (int64_t)time(NULL));
			if (hit < 0) {
				ret = 2;
				goto out;
			}
			/* a read transaction per batch: not one per lookup, not one
			 * that pins the file's old pages for the whole run */
			if ((v.cache_hits + v.queued + 1) % EMV_DEF_CACHE_FILE_BATCH == 0 &&
			    (cli_cache_commit(v.cache, err, sizeof err) != EMV_OK ||
			     cli_cache_begin(v.cache, 0, err, sizeof err) != EMV_OK)) {
				fprintf(stderr, "emailverify verify: %s\n", err);
				ret = 2;
				goto out;
			}
			if (hit)
				continue;
		}
		v.uaddr[id] = emv_xstrdup(a.address);
		emv_engine_add(v.w[domain_hash(a.domain) % (unsigned)v.nw].eng, id, a.address, a.domain,
			       (a.flags & EMV_FLAG_SMTPUTF8) != 0);
		v.queued++;
	}
	if (rc < 0) {
		fprintf(stderr, "emailverify: reading %s: %s\n", v.input, emv_ingest_error(in));
		ret = 1;
		goto out;
	}
	emv_ingest_close(in);
	in = NULL;
	if (v.cache && cli_cache_commit(v.cache, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify verify: %s\n", err);
		ret = 2;
		goto out;
	}

	v.sigint = evsignal_new(v.w[0].e.base, SIGINT, on_signal, &v);
	v.sigterm = evsignal_new(v.w[0].e.base, SIGTERM, on_signal, &v);
	event_add(v.sigint, NULL);
	event_add(v.sigterm, NULL);
	signal(SIGPIPE, SIG_IGN);

	v.read_ms = emv_now_ms() - v.start_ms;
	v.probe_start_ms = emv_now_ms();
	if (v.queued > 0) {
		for (int i = 1; i < v.nw; i++)
			if (pthread_create(&v.w[i].tid, NULL, worker_main, &v.w[i]) == 0)
				v.w[i].thread_started = 1;
		emv_engine_pump(v.w[0].eng);
		event_base_dispatch(v.w[0].e.base);
		for (int i = 1; i < v.nw; i++)
			if (v.w[i].thread_started) {
				pthread_join(v.w[i].tid, NULL);
				v.w[i].thread_started = 0;
			}
	}
	v.probe_end_ms = emv_now_ms();
	journal_flush(&v, 1);
	fsync(fileno(v.journal));
	cache_store(&v, 1);
	{
		emv_engine_stats st;
		stats_all(&v, &st);
		if (st.port25_suspected)
			v.port25 = 1;
	}
	progress(&v, 1);
	if (v.interrupted) {
		fprintf(stderr,
			"emailverify: interrupted after %" PRIu64 " of %" PRIu64 " addresses; run again with "
			"--resume to continue (%s)\n",
			v.done, v.queued, v.journal_path);
		ret = 130;
		goto out;
	}

	/* pass 2: one output row per input row, in input order */
	if (outbuf_path[0] == '\0') {
		char tmp[4300];
		snprintf(tmp, sizeof tmp, "%s.tmp", v.output);
		out = fopen(tmp, "w");
		if (!out) {
			fprintf(stderr, "emailverify: cannot write %s: %s\n", tmp, strerror(errno));
			ret = 1;
			goto out;
		}
		if (write_output(&v, out, &lim) < 0 || fclose(out) != 0 || rename(tmp, v.output) != 0) {
			fprintf(stderr, "emailverify: writing %s failed\n", v.output);
			ret = 1;
			goto out;
		}
	} else if (write_output(&v, stdout, &lim) < 0) {
		ret = 1;
		goto out;
	}
	summary(&v);
	/* the output is complete: the journal has served its purpose */
	fclose(v.journal);
	v.journal = NULL;
	unlink(v.journal_path);

out:
	if (in)
		emv_ingest_close(in);
	if (v.journal)
		fclose(v.journal);
	if (outbuf_path[0] && v.journal_path[0])
		unlink(v.journal_path);
	if (spool_path[0])
		unlink(spool_path);
	if (v.sigint)
		event_free(v.sigint);
	if (v.sigterm)
		event_free(v.sigterm);
	for (int i = 0; v.w && i < v.nw; i++) {
		emv_engine_free(v.w[i].eng);
		if (v.w[i].tick)
			event_free(v.w[i].tick);
		emv_setup_free(&v.w[i].e);
	}
	free(v.w);
	for (uint64_t i = 0; v.uaddr && i < v.nu; i++)
		free(v.uaddr[i]);
	free(v.uaddr);
	free(v.u);
	if (v.dedup)
		emv_dedup_free(v.dedup);
	if (v.nw > 0)
		pthread_mutex_destroy(&v.mu);
	emv_budget_free(ep.budget);
	emv_policy_free(v.policy);
	for (size_t i = 0; i < v.npend; i++) {
		free(v.pend[i].address);
		free(v.pend[i].result);
	}
	free(v.pend);
	cli_cache_close(v.cache);
	return ret;
}
