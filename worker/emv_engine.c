/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_engine.c - batching scheduler over probe jobs (see emv_engine.h).
 *
 * Domains move NEW -> RESOLVING -> READY.  A READY domain with pending
 * addresses sits in the ready queue; pump() takes domains round-robin and
 * starts one batch each while the global and per-MX limits allow.  A domain
 * whose MX host is at its limit parks on that host's wait list until one of
 * the host's sessions ends.  Retries sit in a list ordered by due time,
 * served by one timer.  Domains of a mail server (first MX address) that
 * greylists go to the front of the ready queue: their addresses' wait
 * starts at their first answer, so asking them first brings the last
 * verdict forward without asking anything more.  So do domains coming back
 * from a finished batch or their host's wait list: a domain begun is
 * finished first.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "emv_aimd.h"
#include "emv_defaults.h"
#include "emv_engine.h"
#include "emv_map.h"
#include "emv_util.h"

struct item {
	uint64_t id;
	char *address;
	uint32_t domain;
	uint8_t utf8;
	uint8_t attempts;	/* sessions this address took part in */
	uint8_t tries;		/* probe jobs it went through */
	uint8_t conn_timeout;	/* its last try timed out at connect */
	uint64_t first_ms;	/* first try started */
	uint64_t due_ms;	/* retry due */
	emv_probe_result *last; /* while waiting for a retry: its last result (for a deadline) */
	uint32_t next;		/* link in pending / retry lists (UINT32_MAX = end) */
};

#define NIL UINT32_MAX

enum dstate { D_NEW, D_RESOLVING, D_READY };

struct mxkey;

/* A mail server as an address (the first MX host's first address): what
 * the engine learns about it holds for every domain it serves, whatever
 * the MX host is called. */
struct server {
	int greylists; /* it answered greylisted: its domains go first */
};

struct domain {
	char *name;
	enum dstate state;
	uint32_t head, tail; /* pending items (singly linked through item.next) */
	uint32_t npending;
	int queued;    /* in the ready queue or on a key's wait list */
	int catch_all; /* -1 unknown */
	int probing;   /* a job with the catch-all probe is running */
	int no_smtp;   /* DNS says no server will be asked (NXDOMAIN, null MX, no address):
	                          no RCPT is sent, so no budget is spent and batches are whole */
	struct mxkey *key;
	struct server *srv; /* NULL until DNS gave an address */
	const emv_provider *prov;
	uint32_t next_ready; /* link in ready queue / wait list */
};

struct mxkey {
	char *host;
	int active;
	emv_aimd aimd;		/* sessions at once: the provider's cap, and what we allow ourselves now */
	int rcpt_per_txn;	/* learned from 452s, 0 = provider default */
	int errors_per_session; /* learned from tarpits and 421s after errors, 0 = provider default */
	uint64_t backoff_until;
	unsigned backoff_ms;
	uint32_t wait_head, wait_tail; /* parked domains */
	int nidle;		       /* open connections kept for its next domains */
	int timeout_seen;	       /* a connect timed out here */
	unsigned ca_yes, ca_no;	       /* its domains' catch-all probes: accepted, refused */
};

/* An open connection between jobs (emv_session keep_open), or one saying
 * QUIT: the engine owns it until it is gone. */
struct conn {
	emv_engine *e;
	emv_session *s;
	struct mxkey *k;
	char ip[48];
	int src;      /* pool source it is bound to (-1: none) */
	int max_rcpt; /* the provider's recipients per session (0: no limit) */
	int closing;  /* QUIT said */
	struct conn *prev, *next;
};

struct emv_engine {
	emv_probe_config cfg;
	emv_engine_params p;
	emv_engine_result_cb cb;
	void *arg;
	emv_provider defprov;

	struct item *items;
	uint32_t nitems, capitems;
	uint32_t free_head; /* finished items, reused by emv_engine_add (linked by next) */
	uint64_t added;
	struct domain *domains;
	uint32_t ndomains, capdomains;
	emv_map *dmap; /* domain name -> its index in domains[] + 1 */
	emv_map *kmap; /* MX host -> struct mxkey */
	emv_map *smap; /* MX address -> struct server */
	uint32_t nkeys;

	uint32_t ready_head, ready_tail;
	uint32_t begun_tail;	       /* the last of the begun domains at the queue's front (NIL: none) */
	uint32_t dnsq_head, dnsq_tail; /* NEW domains waiting for a DNS slot */
	uint32_t retry_head;	       /* sorted by due_ms */
	unsigned nretry;
	struct event *retry_timer;
	struct event *backoff_timer;

	int active, peak_active;
	struct run *runs; /* in flight */
	int resolving;
	int pumping;
	int draining; /* stopping: no session, lookup or retry starts any more */
	uint64_t finished, retries, sessions, jobs, handed_back, cut_sessions, expired;
	uint64_t unasked;  /* added, not yet in any job: the straggler limit starts at 0 */
	uint64_t limit_ms; /* deadline or straggler limit in force (0 none) */
	struct event *deadline_timer;
	int past_deadline;
	char budget_wait[200]; /* the RCPT budget work last waited for */
	uint64_t budget_wait_at;
	uint64_t retries_by_reason[EMV_REASON__COUNT];
	unsigned timeout_keys, connected_sessions;
	int port25;
	struct conn *conns; /* open between jobs, or closing */
	int nconns;
	uint64_t resumed;
};

struct run {
	emv_engine *e;
	uint32_t domain;
	uint32_t *items;
	size_t n;
	struct mxkey *key;
	int with_probe;
	emv_probe_job *job;
	int granted; /* RCPTs taken from the budget for this run */
	char budget_key[300];
	char pool_key[300];	 /* the pool-wide budget too ("" when the provider sets none) */
	int src;		 /* pool index of the source address, -1 without a pool */
	struct run *prev, *next; /* runs in flight, so freeing the engine can cancel them */
};

void emv_engine_params_default(emv_engine_params *p)
{
	memset(p, 0, sizeof *p);
	p->concurrency = EMV_DEF_CONCURRENCY;
	p->dns_concurrency = EMV_DEF_DNS_CONCURRENCY;
	emv_retry_policy_default(&p->retry);
	p->port25_threshold = EMV_DEF_PORT25_THRESHOLD;
	p->session_idle_ms = EMV_DEF_SESSION_IDLE_MS;
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg);
static void on_backoff_timer(evutil_socket_t fd, short what, void *arg);
static void on_deadline(evutil_socket_t fd, short what, void *arg);
static void conns_close_all(emv_engine *e);

/* A time limit comes into force (the earlier of two wins). */
static void set_limit(emv_engine *e, uint64_t at)
{
	uint64_t now = emv_now_ms(), ms;
	struct timeval tv;
	if (e->limit_ms && e->limit_ms <= at)
		return;
	e->limit_ms = at;
	ms = at > now ? at - now : 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(e->deadline_timer, &tv);
}

/* An item is done with: back to the free list. */
static void item_release(emv_engine *e, uint32_t ii)
{
	struct item *it = &e->items[ii];
	free(it->address);
	it->address = NULL;
	free(it->last);
	it->last = NULL;
	it->next = e->free_head;
	e->free_head = ii;
}

/* Final now, without asking (again): the last result made final, or
 * "not asked" when there was none. */
static void expire_item(emv_engine *e, uint32_t ii, const emv_probe_result *last, const char *why)
{
	struct item *it = &e->items[ii];
	emv_probe_result r;
	if (last) {
		char d[sizeof r.detail];
		r = *last;
		emv_strlcpy(d, r.detail[0] ? r.detail : emv_reason_detail(r.reason), sizeof d);
		snprintf(r.detail, sizeof r.detail, "%s" EMV_EXPIRED_AGAIN "%s", d, why);
	} else {
		memset(&r, 0, sizeof r);
		r.status = EMV_STATUS_UNKNOWN;
		r.reason = EMV_REASON_TIMEOUT;
		r.catch_all = -1;
		snprintf(r.detail, sizeof r.detail, EMV_EXPIRED_UNASKED "%s", why);
	}
	r.temporary = 0;
	e->finished++;
	e->expired++;
	e->p.expired(e->arg, it->id, &r, it->attempts);
	item_release(e, ii);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	emv_engine *e = arg;
	const char *why = e->p.deadline_ms && e->limit_ms == e->p.deadline_ms ? EMV_EXPIRED_DEADLINE
									      : EMV_EXPIRED_STRAGGLERS;
	uint32_t ii;
	e->past_deadline = 1;
	e->draining = 1; /* nothing new starts; sessions in flight end as usual */
	emv_log(EMV_LOG_INFO, "engine", "%s: %u waiting for a retry and %llu not yet asked are final now", why,
		e->nretry, (unsigned long long)(e->added - e->finished - e->nretry));
	while ((ii = e->retry_head) != NIL) {
		e->retry_head = e->items[ii].next;
		e->nretry--;
		expire_item(e, ii, e->items[ii].last, why);
	}
	for (uint32_t di = 0; di < e->ndomains; di++) {
		struct domain *d = &e->domains[di];
		while ((ii = d->head) != NIL) {
			d->head = e->items[ii].next;
			d->npending--;
			expire_item(e, ii, NULL, why);
		}
		d->tail = NIL;
	}
	e->ready_head = e->ready_tail = e->begun_tail = NIL;
	e->dnsq_head = e->dnsq_tail = NIL;
	evtimer_del(e->retry_timer);
	conns_close_all(e); /* nothing more will be asked */
}

emv_engine *emv_engine_new(const emv_probe_config *cfg, const emv_engine_params *p, emv_engine_result_cb cb, void *arg)
{
	emv_engine *e = emv_xcalloc(1, sizeof *e);
	e->dmap = emv_map_new(1024);
	e->kmap = emv_map_new(1024);
	e->smap = emv_map_new(1024);
	e->cfg = *cfg;
	e->p = *p;
	if (e->p.concurrency < 1)
		e->p.concurrency = 1;
	if (e->p.retry.max_attempts < 1)
		e->p.retry.max_attempts = 1;
	e->cb = cb;
	e->arg = arg;
	e->ready_head = e->ready_tail = e->begun_tail = NIL;
	e->dnsq_head = e->dnsq_tail = NIL;
	if (e->p.dns_concurrency < 1)
		e->p.dns_concurrency = 64;
	e->retry_head = NIL;
	e->free_head = NIL;
	e->retry_timer = evtimer_new(cfg->base, on_retry_timer, e);
	e->backoff_timer = evtimer_new(cfg->base, on_backoff_timer, e);
	e->deadline_timer = evtimer_new(cfg->base, on_deadline, e);
	if (e->p.deadline_ms && e->p.expired)
		set_limit(e, e->p.deadline_ms);
	/* built-in policy when no provider file is given */
	emv_provider_defaults(&e->defprov);
	return e;
}

static void run_unlink(emv_engine *e, struct run *run)
{
	if (run->prev)
		run->prev->next = run->next;
	else
		e->runs = run->next;
	if (run->next)
		run->next->prev = run->prev;
}

static void key_free(void *p)
{
	struct mxkey *k = p;
	free(k->host);
	free(k);
}

void emv_engine_free(emv_engine *e)
{
	if (!e)
		return;
	/* interrupted: cancel what is in flight (no callbacks) */
	while (e->runs) {
		struct run *run = e->runs;
		run_unlink(e, run);
		emv_probe_free(run->job);
		free(run->items);
		free(run);
	}
	while (e->conns) { /* the loop has stopped: no QUIT can go out any more */
		struct conn *c = e->conns;
		e->conns = c->next;
		emv_session_abort(c->s);
		free(c);
	}
	for (uint32_t i = 0; i < e->nitems; i++) {
		free(e->items[i].address);
		free(e->items[i].last);
	}
	for (uint32_t i = 0; i < e->ndomains; i++)
		free(e->domains[i].name);
	emv_map_free(e->dmap, NULL);
	emv_map_free(e->kmap, key_free);
	emv_map_free(e->smap, free);
	free(e->items);
	free(e->domains);
	event_free(e->retry_timer);
	event_free(e->backoff_timer);
	event_free(e->deadline_timer);
	free(e);
}

static uint32_t domain_get(emv_engine *e, const char *name)
{
	int added;
	void **v = emv_map_slot(e->dmap, name, &added);
	if (!added)
		return (uint32_t)((uintptr_t)*v - 1);
	*v = (void *)(uintptr_t)(e->ndomains + 1);
	if (e->ndomains == e->capdomains) {
		e->capdomains = e->capdomains ? e->capdomains * 2 : 1024;
		e->domains = emv_xrealloc(e->domains, e->capdomains * sizeof *e->domains);
	}
	struct domain *d = &e->domains[e->ndomains];
	memset(d, 0, sizeof *d);
	d->name = emv_xstrdup(name);
	d->head = d->tail = NIL;
	d->next_ready = NIL;
	d->catch_all = -1;
	return e->ndomains++;
}

/* Sessions a host may have at once now: its window, within the provider's cap. */
static int key_limit(const struct mxkey *k)
{
	return emv_aimd_sessions(&k->aimd);
}

/*
 * Adaptive concurrency per MX host (emv_aimd.h): a job whose sessions went
 * well (answers, no 421, no rate limit, no timeout, no tarpit, replies as
 * fast as this host's usual) widens the host's window; any sign of pressure
 * halves it.  The provider's sessions_per_mx stays the ceiling.
 */
static void key_adapt(struct mxkey *k, const emv_probe_job *job, size_t n)
{
	int pressure = emv_probe_backoff(job) || emv_probe_learned_error_limit(job) > 0;
	for (size_t i = 0; i < n && !pressure; i++) {
		const emv_probe_result *r = emv_probe_get(job, i);
		pressure = r->reason == EMV_REASON_RATE_LIMITED || r->reason == EMV_REASON_TIMEOUT ||
			   r->connect_timeout;
	}
	if (emv_aimd_update(&k->aimd, pressure, emv_probe_connected(job) > 0, emv_probe_reply_ms(job)))
		emv_log(EMV_LOG_DEBUG, "engine", "%s: replies %u ms late (usually %u ms): %d session(s) at once",
			k->host, emv_probe_reply_ms(job), k->aimd.base_ms, key_limit(k));
}

static struct mxkey *key_get(emv_engine *e, const char *host, const emv_provider *prov)
{
	int added;
	void **v = emv_map_slot(e->kmap, host, &added);
	struct mxkey *k;
	int limit;
	if (!added)
		return *v;
	*v = k = emv_xcalloc(1, sizeof *k);
	k->host = emv_xstrdup(host);
	limit = prov->sessions_per_mx > 0 ? prov->sessions_per_mx : 2;
	/* one source address per engine: its per-IP session cap applies too */
	if (prov->sessions_per_ip > 0 && prov->sessions_per_ip < limit)
		limit = prov->sessions_per_ip;
	emv_aimd_init(&k->aimd, limit); /* start low: a host earns more sessions by answering well */
	if (e->p.domstate) {
		/* ... or as many as it answered well lately (anyone's finding),
		 * never more than the provider's cap */
		emv_domstate_view dv;
		emv_domstate_get(e->p.domstate, EMV_WIRE_DS_HOST, host, (int64_t)emv_wall_ms(), &dv);
		k->aimd.window = emv_domstate_window(dv.sessions_ok, k->aimd.limit);
	}
	k->wait_head = k->wait_tail = NIL;
	e->nkeys++;
	return k;
}

/* Domain FIFOs (ready queue, DNS wait queue, an MX host's wait list) are
 * linked through next_ready; a domain is in at most one (queued). */
static void fifo_push(emv_engine *e, uint32_t *head, uint32_t *tail, uint32_t di)
{
	e->domains[di].queued = 1;
	e->domains[di].next_ready = NIL;
	if (*tail == NIL)
		*head = di;
	else
		e->domains[*tail].next_ready = di;
	*tail = di;
}

static uint32_t fifo_pop(emv_engine *e, uint32_t *head, uint32_t *tail)
{
	uint32_t di = *head;
	if (di == NIL)
		return NIL;
	*head = e->domains[di].next_ready;
	if (*head == NIL)
		*tail = NIL;
	e->domains[di].queued = 0;
	return di;
}

/* A domain begun goes before every domain not begun yet, after the begun
 * ones already waiting (first come, first served among them: pushed at
 * the very front instead, the longest domains sank under the short ones
 * that kept coming back, and were the last verdicts of the run). */
static void ready_push_front(emv_engine *e, uint32_t di)
{
	struct domain *d = &e->domains[di];
	if (d->queued)
		return;
	d->queued = 1;
	if (e->begun_tail == NIL) {
		d->next_ready = e->ready_head;
		e->ready_head = di;
	} else {
		d->next_ready = e->domains[e->begun_tail].next_ready;
		e->domains[e->begun_tail].next_ready = di;
	}
	if (d->next_ready == NIL)
		e->ready_tail = di;
	e->begun_tail = di;
}

/* A domain of a greylisting server goes to the front (emv_engine.c's
 * head comment), every other to the back. */
static void ready_push(emv_engine *e, uint32_t di)
{
	struct domain *d = &e->domains[di];
	if (d->queued)
		return;
	if (d->srv && d->srv->greylists) {
		d->queued = 1;
		d->next_ready = e->ready_head;
		e->ready_head = di;
		if (e->ready_tail == NIL)
			e->ready_tail = di;
		return;
	}
	fifo_push(e, &e->ready_head, &e->ready_tail, di);
}

/* A server was just found greylisting: its domains already in the ready
 * queue move to the front, in their order (one pass, once per server). */
static void ready_promote(emv_engine *e, const struct server *srv)
{
	uint32_t fh = NIL, ft = NIL, rh = NIL, rt = NIL, di;
	for (di = e->ready_head; di != NIL;) {
		uint32_t next = e->domains[di].next_ready;
		uint32_t *h = e->domains[di].srv == srv ? &fh : &rh, *t = e->domains[di].srv == srv ? &ft : &rt;
		e->domains[di].next_ready = NIL;
		if (*t == NIL)
			*h = di;
		else
			e->domains[*t].next_ready = di;
		*t = di;
		di = next;
	}
	if (ft != NIL) {
		e->domains[ft].next_ready = rh;
		e->ready_head = fh;
		e->ready_tail = rt != NIL ? rt : ft;
	} else {
		e->ready_head = rh;
		e->ready_tail = rt;
	}
	/* the greylisting server's domains are the begun ones now: the
	 * domains begun before follow them (in the same order) */
	if (ft != NIL)
		e->begun_tail = ft;
}

static uint32_t ready_pop(emv_engine *e)
{
	uint32_t di = fifo_pop(e, &e->ready_head, &e->ready_tail);
	if (di == e->begun_tail)
		e->begun_tail = NIL;
	return di;
}

static void pending_push(emv_engine *e, uint32_t di, uint32_t ii)
{
	struct domain *d = &e->domains[di];
	e->items[ii].next = NIL;
	if (d->tail == NIL)
		d->head = ii;
	else
		e->items[d->tail].next = ii;
	d->tail = ii;
	d->npending++;
}

void emv_engine_add(emv_engine *e, uint64_t id, const char *address, const char *domain, int utf8)
{
	uint32_t di = domain_get(e, domain), ii;
	struct item *it;
	/* a long-running worker reuses finished items: memory follows the work
	 * in flight, not the work ever done */
	if (e->free_head != NIL) {
		ii = e->free_head;
		e->free_head = e->items[ii].next;
	} else {
		if (e->nitems == e->capitems) {
			e->capitems = e->capitems ? e->capitems * 2 : 4096;
			e->items = emv_xrealloc(e->items, e->capitems * sizeof *e->items);
		}
		ii = e->nitems++;
	}
	e->added++;
	e->unasked++;
	it = &e->items[ii];
	memset(it, 0, sizeof *it);
	it->id = id;
	it->address = emv_xstrdup(address);
	it->domain = di;
	it->utf8 = (uint8_t)(utf8 != 0);
	pending_push(e, di, ii);
	ready_push(e, di);
}

/* ---- results ---- */

/* The delay before this address is asked again, or -1: its result is
 * final now (emv_retry.h). */
static int retry_delay(emv_engine *e, struct item *it, const emv_probe_result *r)
{
	/* our source was blocked: another pool address may ask now (the
	 * blocked one is quarantined for this provider and will not be
	 * picked), or, with none left, the address is handed back for another
	 * region (or waits in budget_batch) */
	int other = e->p.pool && (e->p.pool->nsources > 1 || e->p.handback);
	if (r->connect_timeout && e->port25)
		return -1; /* nothing will connect from here: do not wait for it */
	return emv_retry_delay(&e->p.retry, r->reason, r->temporary, it->tries, r->retry_after_ms, other);
}

static void retry_insert(emv_engine *e, uint32_t ii)
{
	uint32_t *pp = &e->retry_head;
	while (*pp != NIL && e->items[*pp].due_ms <= e->items[ii].due_ms)
		pp = &e->items[*pp].next;
	e->items[ii].next = *pp;
	*pp = ii;
	e->nretry++;
}

static void arm_retry_timer(emv_engine *e)
{
	uint64_t now = emv_now_ms(), due;
	struct timeval tv;
	if (e->retry_head == NIL) {
		evtimer_del(e->retry_timer);
		return;
	}
	due = e->items[e->retry_head].due_ms;
	due = due > now ? due - now : 0;
	tv.tv_sec = (time_t)(due / 1000);
	tv.tv_usec = (suseconds_t)((due % 1000) * 1000);
	evtimer_add(e->retry_timer, &tv);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
	emv_engine *e = arg;
	uint64_t now = emv_now_ms();
	while (e->retry_head != NIL && e->items[e->retry_head].due_ms <= now) {
		uint32_t ii = e->retry_head;
		e->retry_head = e->items[ii].next;
		e->nretry--;
		pending_push(e, e->items[ii].domain, ii);
		ready_push(e, e->items[ii].domain);
	}
	arm_retry_timer(e);
	emv_engine_pump(e);
}

static void on_backoff_timer(evutil_socket_t fd, short what, void *arg)
{
	emv_engine_pump(arg);
}

/* Port 25 was just found blocked: addresses waiting to retry a connect
 * timeout would only wait to fail the same way; ask them once more now, and
 * they end as port25_blocked instead of sitting out the retry schedule. */
static void expedite_connect_timeouts(emv_engine *e, uint64_t now)
{
	uint32_t *pp = &e->retry_head, moved = NIL, ii;
	while ((ii = *pp) != NIL) {
		if (e->items[ii].conn_timeout) {
			*pp = e->items[ii].next;
			e->nretry--;
			e->items[ii].next = moved;
			moved = ii;
		} else {
			pp = &e->items[ii].next;
		}
	}
	while ((ii = moved) != NIL) {
		moved = e->items[ii].next;
		e->items[ii].due_ms = now;
		retry_insert(e, ii);
	}
}


/* What a domain's budgets and reputation are kept by: its provider, for
 * the big shared platforms (one opinion of us across all their MX hosts),
 * else its MX host - one small server blocking us says nothing of the
 * others. */
static int by_provider(const struct domain *d)
{
	return d->prov->budget_scope == EMV_PROVIDER_SCOPE_PROVIDER && strcmp(d->prov->name, "default") != 0;
}

/* The domain's reputation key: the provider's name, or "mx:" and the host. */
static const char *rep_key(const struct domain *d, char *buf, size_t len)
{
	if (by_provider(d))
		return d->prov->name;
	snprintf(buf, len, "mx:%s", d->key ? d->key->host : d->name);
	return buf;
}

/* What one job (its sessions from one source) says about that source for
 * this provider: the worst of its answers, reported once, so that a 220
 * banner never counts as a good re-probe before a block at RCPT. */
static void feed_reputation(emv_engine *e, struct run *run, const emv_probe_job *job, const char *key)
{
	emv_rep_outcome o = EMV_REP_OK;
	const char *reply = NULL;
	int answered = 0;

	for (size_t i = 0; i < run->n; i++) {
		const emv_probe_result *r = emv_probe_get(job, i);
		emv_rep_outcome x = EMV_REP_NEUTRAL;
		if (r->reason == EMV_REASON_BLOCKED)
			x = EMV_REP_BLOCKED;
		else if (r->reason == EMV_REASON_RATE_LIMITED)
			x = EMV_REP_RATE_LIMITED;
		else if (r->have_smtp && !r->temporary)
			x = EMV_REP_OK;
		else if (r->reason == EMV_REASON_CONNECTION_FAILED || r->reason == EMV_REASON_TIMEOUT)
			x = EMV_REP_CONN_FAILED;
		answered |= r->have_smtp;
		if (emv_rep_outcome_worse(o, x) != o || (!reply && r->have_smtp)) {
			o = emv_rep_outcome_worse(o, x);
			if (r->have_smtp)
				reply = r->reply;
		}
	}
	if (!answered && o == EMV_REP_OK)
		o = EMV_REP_NEUTRAL;
	emv_rep_feed(e->p.rep, run->src, key, o, reply, emv_now_ms());
}

/* A domain's catch-all answer, for every worker; and its host's tally: a
 * host that accepted the random recipient of several domains and refused
 * none accepts all. */
static void learn_catch_all(emv_engine *e, const struct domain *d, struct mxkey *k)
{
	int64_t wall = (int64_t)emv_wall_ms();
	if (!e->p.domstate)
		return;
	emv_domstate_observe(e->p.domstate, d->name, EMV_DS_CATCH_ALL, d->catch_all, wall);
	if (!k || strcmp(k->host, d->name) == 0)
		return; /* no MX of its own: nothing to say about a shared host */
	if (d->catch_all)
		k->ca_yes++;
	else
		k->ca_no++;
	if (k->ca_no == 0 && k->ca_yes == EMV_DEF_DOMSTATE_ACCEPTS_ALL_DOMAINS)
		emv_domstate_observe(e->p.domstate, k->host, EMV_DS_ACCEPTS_ALL, 1, wall);
	else if (k->ca_no == 1 && !d->catch_all)
		emv_domstate_observe(e->p.domstate, k->host, EMV_DS_ACCEPTS_ALL, 0, wall);
}

/* A host's 421 back-off known beyond this engine holds here too. */
static void shared_backoff(emv_engine *e, struct mxkey *k, uint64_t now)
{
	emv_domstate_view v;
	int64_t wall = (int64_t)emv_wall_ms();
	uint64_t until;

	emv_domstate_get(e->p.domstate, EMV_WIRE_DS_HOST, k->host, wall, &v);
	if (v.backoff_until_ms <= wall)
		return;
	until = now + (uint64_t)(v.backoff_until_ms - wall);
	if (until > k->backoff_until)
		k->backoff_until = until;
	if ((unsigned)v.backoff_ms > k->backoff_ms)
		k->backoff_ms = (unsigned)v.backoff_ms;
}

/* ---- connections kept between jobs ----
 *
 * A job whose recipients are all answered leaves its connection open for
 * the next domain of the same mail server (the brief's "one SMTP session
 * per MX"): a host serving hundreds of small domains answers them in a
 * few connections instead of one each, with the same error budget per
 * connection (its errors stay counted) and the same cap on sessions per
 * host: a kept connection counts towards it, and a job that cannot use it
 * closes it before opening its own. */

static void conn_unlink(emv_engine *e, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		e->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	e->nconns--;
	if (!c->closing && c->k)
		c->k->nidle--;
}

static int no_work(const emv_engine *e)
{
	return e->active == 0 && e->resolving == 0 && e->nretry == 0 && e->ready_head == NIL && e->dnsq_head == NIL;
}

/* the connection is gone (QUIT answered, closed by the server, idle too long) */
static void conn_gone(void *arg)
{
	struct conn *c = arg;
	emv_engine *e = c->e;
	conn_unlink(e, c);
	free(c);
	if (e->nconns == 0 && no_work(e) && e->p.quiet)
		e->p.quiet(e->arg);
}

static void conn_close(struct conn *c)
{
	if (!c->closing && c->k)
		c->k->nidle--;
	c->closing = 1;
	emv_session_keep(c->s, 0, conn_gone, c);
}

/* Nothing left to ask: every kept connection says QUIT. */
static void conns_close_all(emv_engine *e)
{
	for (struct conn *c = e->conns; c; c = c->next)
		if (!c->closing)
			conn_close(c);
}

/* emv_probe_config.take: a kept connection to the mail server address ip
 * from this run's source address (whatever MX host name it was opened
 * for: many domains name their own MX host for one shared server), with
 * room for the batch under rcpt_per_session, which holds per connection */
static emv_session *conn_take(void *arg, const char *ip)
{
	struct run *run = arg;
	emv_engine *e = run->e;
	struct mxkey *k = run->key;
	struct conn *c, *other = NULL;
	int mine = e->domains[run->domain].prov->rcpt_per_session;

	for (c = e->conns; c; c = c->next) {
		unsigned need;
		if (c->closing)
			continue;
		need = emv_session_recipients(c->s) + (unsigned)run->n + (unsigned)run->with_probe;
		if (c->src == run->src && strcmp(c->ip, ip) == 0 &&
		    (c->max_rcpt <= 0 || need <= (unsigned)c->max_rcpt) && (mine <= 0 || need <= (unsigned)mine)) {
			emv_session *s = c->s;
			conn_unlink(e, c);
			free(c);
			e->resumed++;
			return s;
		}
		if (c->k == k)
			other = c;
	}
	/* this job opens its own: one of the host's kept ones goes, so that
	 * the host never has more connections than its cap */
	if (other && k && k->active + k->nidle > key_limit(k))
		conn_close(other);
	return NULL;
}

/* emv_probe_config.park */
static void conn_park(void *arg, emv_session *s, const char *ip, int close)
{
	struct run *run = arg;
	emv_engine *e = run->e;
	struct conn *c = emv_xcalloc(1, sizeof *c);

	c->e = e;
	c->s = s;
	c->k = run->key;
	c->src = run->src;
	c->max_rcpt = e->domains[run->domain].prov->rcpt_per_session;
	emv_strlcpy(c->ip, ip, sizeof c->ip);
	c->next = e->conns;
	if (e->conns)
		e->conns->prev = c;
	e->conns = c;
	e->nconns++;
	if (close || !c->k || e->draining || c->k->nidle >= key_limit(c->k) ||
	    (c->max_rcpt > 0 && emv_session_recipients(s) >= (unsigned)c->max_rcpt)) {
		c->closing = 1; /* never counted as kept */
		conn_close(c);
		return;
	}
	c->k->nidle++;
	emv_session_keep(s, e->p.session_idle_ms, conn_gone, c);
}

static void on_job_done(emv_probe_job *job, void *arg)
{
	struct run *run = arg;
	emv_engine *e = run->e;
	struct domain *d = &e->domains[run->domain];
	struct mxkey *k = run->key;
	uint32_t di_done = run->domain;
	uint64_t now = emv_now_ms();
	int any_connect_timeout = 0;

	e->active--;
	if (k)
		k->active--;
	e->sessions += emv_probe_sessions(job);
	e->cut_sessions += emv_probe_cut_sessions(job);
	if (run->src >= 0 && e->p.rep) {
		char rk[EMV_REP_NAME_MAX];
		const char *key = rep_key(d, rk, sizeof rk);
		emv_rep_count(e->p.rep, run->src, key, (unsigned)emv_probe_sessions(job),
			      (unsigned)emv_probe_rcpt_sent(job), now);
		feed_reputation(e, run, job, key);
	}
	if (e->p.budget && run->budget_key[0]) /* 452 re-sends cost RCPTs too */
		emv_budget_charge(e->p.budget, run->budget_key, (int)emv_probe_rcpt_sent(job) - run->granted);
	if (e->p.budget && run->pool_key[0])
		emv_budget_charge(e->p.budget, run->pool_key, (int)emv_probe_rcpt_sent(job) - run->granted);
	e->connected_sessions += emv_probe_connected(job);
	if (run->with_probe) {
		d->probing = 0;
		if (d->catch_all < 0)
			d->catch_all = emv_probe_catch_all(job);
		if (d->catch_all >= 0)
			learn_catch_all(e, d, k);
	}
	if (k) {
		int learned = emv_probe_learned_rcpt_limit(job), before = key_limit(k);
		key_adapt(k, job, run->n);
		/* a wider window lets a parked domain of this host go too */
		for (int more = key_limit(k) - before; more > 0 && k->wait_head != NIL; more--)
			ready_push(e, fifo_pop(e, &k->wait_head, &k->wait_tail));
		int lerr = emv_probe_learned_error_limit(job);
		if (learned > 0 && (k->rcpt_per_txn == 0 || learned < k->rcpt_per_txn))
			k->rcpt_per_txn = learned;
		if (lerr > 0 && (k->errors_per_session == 0 || lerr < k->errors_per_session)) {
			k->errors_per_session = lerr;
			emv_log(EMV_LOG_INFO, "engine", "%s: at most %d errors per session from now on", k->host, lerr);
		}
		if (e->p.domstate) { /* what this engine found, for every worker */
			int64_t wall = (int64_t)emv_wall_ms();
			if (learned > 0)
				emv_domstate_observe(e->p.domstate, k->host, EMV_DS_RCPT_PER_TXN, learned, wall);
			if (lerr > 0)
				emv_domstate_observe(e->p.domstate, k->host, EMV_DS_ERRORS_PER_SESSION, lerr, wall);
			if (key_limit(k) != before)
				emv_domstate_observe(e->p.domstate, k->host, EMV_DS_SESSIONS_OK, key_limit(k), wall);
		}
		if (emv_probe_backoff(job)) {
			/* 421: the server wants fewer of us; wait before the next session */
			k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : 5000;
			if (k->backoff_ms > EMV_DEF_DOMSTATE_BACKOFF_MAX_MS)
				k->backoff_ms = EMV_DEF_DOMSTATE_BACKOFF_MAX_MS;
			k->backoff_until = now + k->backoff_ms;
			if (e->p.domstate)
				emv_domstate_observe_backoff(e->p.domstate, k->host,
							     (int64_t)(emv_wall_ms() + k->backoff_ms),
							     (int)k->backoff_ms, (int64_t)emv_wall_ms());
		} else if (emv_probe_connected(job)) {
			k->backoff_ms = 0;
		}
	}

	for (size_t i = 0; i < run->n; i++) {
		const emv_probe_result *r = emv_probe_get(job, i);
		if (r->connect_timeout)
			any_connect_timeout = 1;
		if (r->reason == EMV_REASON_GREYLISTED && d->srv && !d->srv->greylists) {
			d->srv->greylists = 1;
			ready_promote(e, d->srv);
			emv_log(EMV_LOG_DEBUG, "engine", "%s greylists: its domains are asked first", r->mx_ip);
		}
	}
	if (any_connect_timeout && k && !k->timeout_seen) {
		k->timeout_seen = 1;
		e->timeout_keys++;
	}
	if (!e->port25 && e->connected_sessions == 0 && e->timeout_keys >= (unsigned)e->p.port25_threshold) {
		e->port25 = 1;
		expedite_connect_timeouts(e, now);
		emv_log(EMV_LOG_WARN, "engine",
			"connections to %u different mail servers all timed out and none succeeded: "
			"outbound port %d looks blocked from this host",
			e->timeout_keys, e->cfg.session.port);
	}

	for (size_t i = 0; i < run->n; i++) {
		uint32_t ii = run->items[i];
		struct item *it = &e->items[ii];
		const emv_probe_result *r = emv_probe_get(job, i);
		it->attempts = (uint8_t)(it->attempts + r->attempts > 255 ? 255 : it->attempts + r->attempts);
		it->conn_timeout = (uint8_t)r->connect_timeout;
		int delay = retry_delay(e, it, r);
		if (delay >= 0 && e->limit_ms && now + (uint64_t)delay >= e->limit_ms) {
			/* the retry would come after the time limit: final now */
			expire_item(e, ii, r,
				    e->p.deadline_ms && e->limit_ms == e->p.deadline_ms
					    ? "the run's deadline comes first"
					    : "the wait for stragglers would be over");
			continue;
		}
		if (delay >= 0) {
			if (now + (uint64_t)delay <= it->first_ms + (uint64_t)e->p.retry.window_ms) {
				it->due_ms = now + (uint64_t)delay;
				if (emv_log_enabled(EMV_LOG_DEBUG))
					emv_log(EMV_LOG_DEBUG, "engine", "%s: %s/%s, asking again in %d ms (try %u)",
						it->address, emv_status_name(r->status), emv_reason_name(r->reason),
						delay, it->tries);
				if (e->p.expired) { /* kept for a deadline that may come first */
					if (!it->last)
						it->last = emv_xmalloc(sizeof *it->last);
					*it->last = *r;
				}
				retry_insert(e, ii);
				e->retries++;
				if ((unsigned)r->reason < EMV_REASON__COUNT)
					e->retries_by_reason[r->reason]++;
				continue;
			}
		}
		e->finished++;
		e->cb(e->arg, it->id, job, i, it->attempts, r->connect_timeout && e->port25);
		item_release(e, ii);
	}
	arm_retry_timer(e);
	emv_probe_free(job);
	run_unlink(e, run);
	free(run->items);
	free(run);
	/* a parked domain of this host may go now, and this one goes on: a
	 * domain begun is finished before new ones take the free sessions
	 * (the largest domains are the longest chains of sessions: started
	 * late or served in turn with hundreds of others, they would be the
	 * last verdicts) */
	if (k && k->wait_head != NIL)
		ready_push_front(e, fifo_pop(e, &k->wait_head, &k->wait_tail));
	if (d->npending > 0)
		ready_push_front(e, di_done);
	emv_engine_pump(e);
	if (e->nconns && no_work(e))
		conns_close_all(e); /* nothing left for them: QUIT now, not at the idle time's end */
}

/* ---- scheduling ---- */

static void on_mx(const emv_mx_result *mx, void *arg)
{
	struct run *run = arg; /* a tiny carrier: only e and domain are used */
	emv_engine *e = run->e;
	struct domain *d = &e->domains[run->domain];
	const char *host = d->name;

	run_unlink(e, run);
	free(run);
	e->resolving--;
	d->state = D_READY;

	if (mx->status == EMV_DNS_OK && mx->nhosts > 0)
		host = mx->hosts[0].host;
	if (mx->status == EMV_DNS_OK && mx->nhosts > 0 && mx->hosts[0].naddrs > 0) {
		char ip[INET6_ADDRSTRLEN] = "";
		const emv_sockaddr *a = &mx->hosts[0].addrs[0];
		int added;
		void **v;
		if (a->sa.sa_family == AF_INET)
			inet_ntop(AF_INET, &a->in.sin_addr, ip, sizeof ip);
		else if (a->sa.sa_family == AF_INET6)
			inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof ip);
		if (ip[0]) {
			v = emv_map_slot(e->smap, ip, &added);
			if (added)
				*v = emv_xcalloc(1, sizeof(struct server));
			d->srv = *v;
		}
	}
	/* only definite answers: after a TEMPFAIL a retry may reach a server */
	d->no_smtp = mx->status == EMV_DNS_NXDOMAIN || mx->status == EMV_DNS_NODATA || mx->status == EMV_DNS_NULL_MX ||
		     mx->status == EMV_DNS_NO_ADDRESS;
	d->prov = e->p.providers ? emv_providers_match(e->p.providers, host) : &e->defprov;
	/* sessions are limited per MX host only when it is a real MX: a
	 * domain that fails DNS still gets its own key (no sharing) */
	d->key = key_get(e, host, d->prov);
	if (e->p.domstate && d->catch_all < 0) { /* another engine's fresh probe answer */
		emv_domstate_view v;
		emv_domstate_get(e->p.domstate, EMV_WIRE_DS_DOMAIN, d->name, (int64_t)emv_wall_ms(), &v);
		d->catch_all = v.catch_all;
	}
	ready_push(e, (uint32_t)(d - e->domains));
	emv_engine_pump(e);
}

static void start_resolve(emv_engine *e, uint32_t di)
{
	struct domain *d = &e->domains[di];
	struct run *carrier = emv_xcalloc(1, sizeof *carrier);
	carrier->e = e;
	carrier->domain = di;
	/* listed like a run (without a job) so that freeing the engine
	 * mid-lookup frees it too: c-ares drops its callbacks on destruction */
	carrier->next = e->runs;
	if (e->runs)
		e->runs->prev = carrier;
	e->runs = carrier;
	d->state = D_RESOLVING;
	e->resolving++;
	emv_dns_resolve_mx(e->cfg.dns, d->name, on_mx, carrier);
}

static size_t batch_max(const emv_engine *e, const struct domain *d)
{
	const emv_provider *pv = d->prov;
	size_t max = e->p.no_batching ? 1 : (size_t)(pv->rcpt_per_session > 0 ? pv->rcpt_per_session : 100);
	if (d->no_smtp) /* the verdict comes from DNS alone: one job for all */
		return d->npending;
	return max < d->npending ? max : d->npending;
}

static int wants_probe(const emv_engine *e, const struct domain *d)
{
	return e->cfg.catch_all_probe && d->prov->catch_all_probe && d->catch_all < 0 && !d->probing;
}

/*
 * How many recipients the next batch of d may ask, within the RCPT budget
 * of its provider (or MX host): 0 means wait *wait_ms.  The catch-all probe
 * is a recipient too and is counted.
 */
/* A rate budget under a throttle factor; 0 (no limit) stays 0, and a
 * limit never falls below 1. */
static int scaled(int limit, double factor)
{
	int v;
	if (limit <= 0 || factor >= 1.0)
		return limit;
	v = (int)(limit * factor);
	return v < 1 ? 1 : v;
}

static size_t budget_batch(emv_engine *e, struct domain *d, uint64_t now, int *wait_ms, char *key, size_t keylen,
			   int *granted, int *src, char *pool_key)
{
	const emv_provider *pv = d->prov;
	size_t want = batch_max(e, d);
	int probe = wants_probe(e, d), got;

	double factor = 1.0;
	size_t kl;

	*wait_ms = 0;
	*granted = 0;
	*src = -1;
	key[0] = '\0';
	pool_key[0] = '\0';
	if (d->no_smtp) /* budgets count RCPTs sent, and none will be */
		return want;
	if (e->p.pool) {
		/* the best source for this provider: never a quarantined or
		 * held one; none usable means wait, never push through */
		emv_rep_grant g;
		char rk[EMV_REP_NAME_MAX];
		const char *rkey = rep_key(d, rk, sizeof rk);
		if ((*src = emv_rep_pick(e->p.rep, rkey, now, &g)) < 0) {
			/* every source quarantined or held for this provider:
			 * another region may take the work (hand-back) */
			*wait_ms = e->p.handback && emv_rep_all_blocked(e->p.rep, rkey, now) ? -1 : 60000;
			return 0;
		}
		factor = g.rate_factor > 0 ? g.rate_factor : 1.0;
		if (g.max_rcpts > 0 && want > (size_t)g.max_rcpts)
			want = (size_t)g.max_rcpts; /* a re-probe asks little */
	}
	if (!e->p.budget)
		return want;
	/* the key is the provider (or host, by budget_scope), and with a pool
	 * the source address too: budgets are per (source IP, provider) */
	if (by_provider(d))
		snprintf(key, keylen, "p:%s", pv->name);
	else
		snprintf(key, keylen, "h:%s", d->key->host);
	kl = strlen(key);
	if (*src >= 0 && (pv->pool_rcpt_per_minute > 0 || pv->pool_rcpt_per_hour > 0 || pv->pool_rcpt_per_day > 0))
		snprintf(pool_key, keylen, "%s@pool", key); /* all source addresses together */
	if (*src >= 0)
		snprintf(key + kl, keylen - kl, "@%s", e->p.pool->sources[*src].ip);
	got = emv_budget_take(e->p.budget, key, scaled(pv->rcpt_per_minute, factor), scaled(pv->rcpt_per_hour, factor),
			      scaled(pv->rcpt_per_day, factor), (int)want + probe, 1 + probe, now, wait_ms);
	if (got > 0 && pool_key[0]) {
		/* both budgets hold: what the pool's leaves of this address's
		 * grant is used, the rest given back */
		int pool_wait = 0,
		    pgot = emv_budget_take(e->p.budget, pool_key, pv->pool_rcpt_per_minute, pv->pool_rcpt_per_hour,
					   pv->pool_rcpt_per_day, got, 1 + probe, now, &pool_wait);
		emv_budget_refund(e->p.budget, key, got - pgot, now);
		if (pgot == 0)
			*wait_ms = pool_wait;
		got = pgot;
	}
	if (got == 0) {
		/* say what the list waits for (progress lines) */
		if (pool_key[0] && pv->pool_rcpt_per_minute > 0 && *wait_ms > 0)
			snprintf(e->budget_wait, sizeof e->budget_wait,
				 "%s's budget for all source addresses: "
				 "%d RCPT/min",
				 by_provider(d) ? pv->name : d->key->host, pv->pool_rcpt_per_minute);
		else
			snprintf(e->budget_wait, sizeof e->budget_wait, "%s's budget: %d RCPT/min%s",
				 by_provider(d) ? pv->name : d->key->host, scaled(pv->rcpt_per_minute, factor),
				 *src >= 0 ? " per source address" : "");
		e->budget_wait_at = now;
		pool_key[0] = '\0';
	}
	*granted = got;
	return got > 0 ? (size_t)(got - probe) : 0;
}

static void start_batch(emv_engine *e, uint32_t di, size_t max, const char *budget_key, int granted, int src,
			const char *pool_key)
{
	struct domain *d = &e->domains[di];
	const emv_provider *pv = d->prov;
	struct mxkey *k = d->key;
	struct run *run = emv_xcalloc(1, sizeof *run);
	const char **addrs;
	unsigned char *u8;
	emv_probe_config cfg = e->cfg;
	uint64_t now = emv_now_ms();

	if (max > d->npending)
		max = d->npending;
	if (max < 1)
		max = 1;
	run->e = e;
	run->domain = di;
	run->key = k;
	run->granted = granted;
	emv_strlcpy(run->budget_key, budget_key, sizeof run->budget_key);
	emv_strlcpy(run->pool_key, pool_key, sizeof run->pool_key);
	run->items = emv_xcalloc(max, sizeof *run->items);
	addrs = emv_xcalloc(max, sizeof *addrs);
	u8 = emv_xcalloc(max, 1);
	while (run->n < max && d->head != NIL) {
		uint32_t ii = d->head;
		struct item *it = &e->items[ii];
		d->head = it->next;
		if (d->head == NIL)
			d->tail = NIL;
		d->npending--;
		if (it->tries == 0) {
			it->first_ms = now;
			/* every address asked once: the stragglers get linger_ms more */
			if (--e->unasked == 0 && e->p.linger_ms && e->p.expired)
				set_limit(e, now + e->p.linger_ms);
		}
		it->tries++;
		run->items[run->n] = ii;
		addrs[run->n] = it->address;
		u8[run->n] = it->utf8;
		run->n++;
	}
	/* one catch-all probe per domain: later batches reuse its answer */
	cfg.known_catch_all = d->catch_all;
	cfg.catch_all_probe = wants_probe(e, d);
	if (cfg.catch_all_probe) {
		d->probing = 1;
		run->with_probe = 1;
	} else if (d->catch_all < 0) {
		cfg.catch_all_probe = 0;
	}
	cfg.accepts_all = pv->accepts_all;
	cfg.verdict_note = pv->verdict_note[0] ? pv->verdict_note : NULL;
	cfg.retry.greylist_rounds = 0; /* the engine retries, without holding a session slot */
	cfg.session.pipelining = cfg.session.pipelining && pv->pipelining;
	cfg.session.rcpt_per_txn = k && k->rcpt_per_txn > 0
					   ? k->rcpt_per_txn
					   : (pv->rcpt_per_txn > 0 ? pv->rcpt_per_txn : cfg.session.rcpt_per_txn);
	cfg.session.max_errors = k && k->errors_per_session > 0 ? k->errors_per_session
								: (pv->errors_per_session > 0 ? pv->errors_per_session
											      : cfg.session.max_errors);
	if (k && e->p.domstate) {
		/* the newest finding of any worker (this one's included), taken
		 * only below the policy: shared knowledge makes us more careful
		 * or brings us back to the policy, never past it */
		emv_domstate_view v;
		int pol_rcpt = pv->rcpt_per_txn > 0 ? pv->rcpt_per_txn : e->cfg.session.rcpt_per_txn,
		    pol_err = pv->errors_per_session > 0 ? pv->errors_per_session : e->cfg.session.max_errors;
		emv_domstate_get(e->p.domstate, EMV_WIRE_DS_HOST, k->host, (int64_t)emv_wall_ms(), &v);
		/* (a table too full to take this host keeps the engine's own) */
		cfg.session.rcpt_per_txn = emv_domstate_limit(v.rcpt_per_txn > 0 ? v.rcpt_per_txn : k->rcpt_per_txn,
							      pol_rcpt);
		cfg.session.max_errors = emv_domstate_limit(v.errors_per_session > 0 ? v.errors_per_session
										     : k->errors_per_session,
							    pol_err);
		if (v.accepts_all == 1)
			cfg.accepts_all = 1; /* acceptance proves nothing here: more careful verdicts */
	}
	if (e->p.session_idle_ms > 0 && !e->p.no_batching) { /* --no-batching: a connection per address */
		cfg.take = conn_take;
		cfg.park = conn_park;
		cfg.park_arg = run;
	}
	if (pv->connect_timeout_ms > 0 && !e->p.user_timeouts)
		cfg.session.timeout_connect = pv->connect_timeout_ms;
	if (pv->reply_timeout_ms > 0 && !e->p.user_timeouts)
		cfg.session.timeout_banner = cfg.session.timeout_ehlo = cfg.session.timeout_mail =
			cfg.session.timeout_rcpt = pv->reply_timeout_ms;
	if (pv->tls == 0 && pv->name[0] && strcmp(pv->name, "default") != 0)
		cfg.session.starttls = cfg.session.starttls && pv->tls != 0;
	e->active++;
	if (e->active > e->peak_active)
		e->peak_active = e->active;
	e->jobs++;
	if (k)
		k->active++;
	if (emv_log_enabled(EMV_LOG_DEBUG))
		emv_log(EMV_LOG_DEBUG, "engine", "%s: %zu recipient(s), %d session(s) on %s, %d of %d at once, %u left",
			d->name, run->n, k ? k->active : 0, k ? k->host : "-", e->active, e->p.concurrency,
			d->npending);
	run->next = e->runs;
	if (e->runs)
		e->runs->prev = run;
	e->runs = run;
	run->src = src;
	if (src >= 0) { /* bound to the picked pool address, greeting with its own name */
		const emv_pool_source *ps = &e->p.pool->sources[src];
		struct sockaddr_in *s4 = (struct sockaddr_in *)&cfg.source4;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&cfg.source6;
		memset(&cfg.source4, 0, sizeof cfg.source4);
		memset(&cfg.source6, 0, sizeof cfg.source6);
		if (inet_pton(AF_INET, ps->ip, &s4->sin_addr) == 1)
			s4->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, ps->ip, &s6->sin6_addr) == 1)
			s6->sin6_family = AF_INET6;
		cfg.session.helo_name = ps->helo;
	}
	run->job = emv_probe_start(&cfg, d->name, addrs, u8, run->n, on_job_done, run);
	free(addrs);
	free(u8);
}

/* Give every pending address of d back to the caller (e->p.handback): no
 * source address here may ask its provider.  They are finished here. */
static void hand_back(emv_engine *e, struct domain *d)
{
	char rk[EMV_REP_NAME_MAX];
	while (d->head != NIL) {
		uint32_t ii = d->head;
		struct item *it = &e->items[ii];
		d->head = it->next;
		d->npending--;
		e->finished++;
		e->handed_back++;
		e->p.handback(e->arg, it->id, rep_key(d, rk, sizeof rk), it->attempts);
		item_release(e, ii);
	}
	d->tail = NIL;
}

void emv_engine_pump(emv_engine *e)
{
	uint64_t now = emv_now_ms(), next_backoff = 0;
	uint32_t rotations = 0, limit;

	if (e->pumping || e->draining)
		return; /* re-entered from a callback: the outer pump continues */
	e->pumping = 1;
	/* domains waiting for a DNS slot go first: answers may come at once
	 * (cache) and feed the ready queue below */
	while (e->dnsq_head != NIL && e->resolving < e->p.dns_concurrency)
		start_resolve(e, fifo_pop(e, &e->dnsq_head, &e->dnsq_tail));
	limit = e->ndomains + 1;
	while (e->active < e->p.concurrency && e->ready_head != NIL) {
		uint32_t di = ready_pop(e);
		struct domain *d = &e->domains[di];
		if (d->npending == 0)
			continue;
		if (d->state == D_NEW) {
			if (e->resolving < e->p.dns_concurrency) {
				start_resolve(e, di);
			} else { /* wait for a DNS slot: the next pump hands it over */
				fifo_push(e, &e->dnsq_head, &e->dnsq_tail, di);
			}
			continue;
		}
		if (d->state == D_RESOLVING)
			continue; /* on_mx queues it again */
		struct mxkey *k = d->key;
		if (e->p.domstate)
			shared_backoff(e, k, now);
		if (k->backoff_until > now) {
			/* keep it ready but look at others; wake when the back-off ends */
			if (!next_backoff || k->backoff_until < next_backoff)
				next_backoff = k->backoff_until;
			ready_push(e, di);
			if (++rotations > limit)
				break;
			continue;
		}
		if (k->active >= key_limit(k)) { /* parked until one of the host's sessions ends */
			fifo_push(e, &k->wait_head, &k->wait_tail, di);
			continue;
		}
		{
			int wait_ms, granted;
			char bkey[300], pkey[300];
			int src;
			size_t n = budget_batch(e, d, now, &wait_ms, bkey, sizeof bkey, &granted, &src, pkey);
			if (n == 0 && wait_ms < 0) {
				hand_back(e, d);
				continue;
			}
			if (n == 0) {
				/* out of RCPT budget: the host waits, others go on */
				k->backoff_until = now + (uint64_t)wait_ms;
				if (!next_backoff || k->backoff_until < next_backoff)
					next_backoff = k->backoff_until;
				ready_push(e, di);
				if (++rotations > limit)
					break;
				continue;
			}
			start_batch(e, di, n, bkey, granted, src, pkey);
		}
		/* more to ask: to the back, and to the front of the begun ones
		 * when its batch ends (on_job_done).  Parking it on its host's
		 * wait list here instead (its next batch as soon as the host has
		 * room) lost results in cluster_flow's broker kill (35413f6) */
		if (d->npending > 0)
			ready_push(e, di);
	}
	if (next_backoff) {
		uint64_t ms = next_backoff > now ? next_backoff - now : 1;
		struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
		evtimer_add(e->backoff_timer, &tv);
	}
	e->pumping = 0;
}

void emv_engine_drain(emv_engine *e)
{
	e->draining = 1;
	conns_close_all(e);
}

void emv_engine_waiting(const emv_engine *e, void (*fn)(void *arg, uint64_t id, uint64_t due_ms), void *arg)
{
	for (uint32_t ii = e->retry_head; ii != NIL; ii = e->items[ii].next)
		fn(arg, e->items[ii].id, e->items[ii].due_ms);
}

int emv_engine_sessions(const emv_engine *e)
{
	return e->active;
}

int emv_engine_idle(const emv_engine *e)
{
	return no_work(e) && e->finished >= e->added && e->nconns == 0;
}

int emv_engine_open_connections(const emv_engine *e)
{
	return e->nconns;
}

void emv_engine_stats_get(const emv_engine *e, emv_engine_stats *s)
{
	memset(s, 0, sizeof *s);
	s->added = e->added;
	s->finished = e->finished;
	s->retries = e->retries;
	memcpy(s->retries_by_reason, e->retries_by_reason, sizeof s->retries_by_reason);
	s->sessions = e->sessions;
	s->resumed = e->resumed;
	s->cut_sessions = e->cut_sessions;
	s->handed_back = e->handed_back;
	s->expired = e->expired;
	s->next_retry_ms = e->retry_head != NIL ? e->items[e->retry_head].due_ms : 0;
	s->deadline_ms = e->limit_ms;
	if (e->budget_wait_at && emv_now_ms() - e->budget_wait_at < 5000)
		emv_strlcpy(s->budget_wait, e->budget_wait, sizeof s->budget_wait);
	s->jobs = e->jobs;
	s->active = (unsigned)e->active;
	s->peak_active = (unsigned)e->peak_active;
	s->waiting_retry = e->nretry;
	s->domains = e->ndomains;
	s->port25_suspected = e->port25;
}
