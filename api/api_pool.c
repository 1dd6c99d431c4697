/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_pool.c - the API's query pool: database work runs in pool threads,
 * tenants take turns (one lane per tenant), answers come back to the loop;
 * the upload slots per tenant; the job queues of the split and delete
 * threads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "emv_api_internal.h"
#include "emv_db.h"
#include "emv_util.h"
/* --------------------------------------------------------------- the pool */

struct task *api_task_new(struct api *a, struct api_req *req)
{
	struct task *t = emv_xcalloc(1, sizeof *t);
	t->api = a;
	t->req = req;
	if (req)
		api_req_ref(req);
	return t;
}

void api_task_free(struct task *t)
{
	if (!t)
		return;
	if (t->json)
		json_decref(t->json);
	if (t->req)
		api_req_unref(t->req);
	free(t);
}

/*
 * Tenants take turns in the pool.  Before a token's first answer its
 * tenant is unknown: its lane is the token's own; after, every token of a
 * tenant shares the tenant's lane (a loop-only cache of token hash ->
 * tenant, filled from answered tasks).  The pool serves the lanes round
 * robin, one task per turn, and with more than one query thread a lane
 * holds at most db_threads - 1 of them: one tenant's slow queries can
 * never take every thread from the others.
 */
struct tenant_cache {
	unsigned char hash[32];
	char tenant[EMV_TENANT_MAX + 1];
};

#define TENANT_CACHE 1024

static struct tenant_cache *tenant_slot(struct api *a, const unsigned char hash[32])
{
	uint64_t h;
	memcpy(&h, hash, sizeof h);
	return a->tenants ? &a->tenants[h % TENANT_CACHE] : NULL;
}

static void lane_key(struct api *a, const struct task *t, char *key, size_t keylen)
{
	static const unsigned char zero[32];
	struct tenant_cache *c;
	if (memcmp(t->token_hash, zero, 32) == 0) {
		key[0] = '\0';
		return;
	}
	c = tenant_slot(a, t->token_hash);
	if (c && c->tenant[0] && memcmp(c->hash, t->token_hash, 32) == 0) {
		snprintf(key, keylen, "t:%s", c->tenant);
		return;
	}
	snprintf(key, keylen, "h:");
	for (int i = 0; i < 16; i++)
		snprintf(key + 2 + 2 * i, keylen - 2 - 2 * (size_t)i, "%02x", t->token_hash[i]);
}

void api_task_submit(struct task *t)
{
	struct api *a = t->api;
	struct lane *l, **lp;
	char key[80];
	lane_key(a, t, key, sizeof key);
	if (t->req) {
		t->req->busy++;
		t->pooled = 1;
	}
	pthread_mutex_lock(&a->mu);
	for (lp = &a->lanes; *lp && strcmp((*lp)->key, key) != 0; lp = &(*lp)->next)
		;
	if (!(l = *lp)) {
		l = emv_xcalloc(1, sizeof *l);
		emv_strlcpy(l->key, key, sizeof l->key);
		*lp = l; /* a new lane at the end of the turn */
	}
	t->next = NULL;
	t->lane = l;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

struct task *api_queue_pop(struct api *a)
{
	int cap = a->npool > 1 ? a->npool - 1 : 1;
	struct lane **lp, *l;
	struct task *t;
	for (lp = &a->lanes; *lp; lp = &(*lp)->next)
		if ((*lp)->head && (*lp)->running < cap)
			break;
	if (!(l = *lp))
		return NULL;
	t = l->head;
	l->head = t->next;
	if (!l->head)
		l->tail = NULL;
	t->next = NULL;
	l->running++;
	/* its turn is over: to the end of the line */
	*lp = l->next;
	l->next = NULL;
	for (lp = &a->lanes; *lp; lp = &(*lp)->next)
		;
	*lp = l;
	return t;
}

void api_queue_finished(struct api *a, struct task *t)
{
	struct lane *l = t->lane, **lp;
	t->lane = NULL;
	if (!l)
		return;
	l->running--;
	if (l->running > 0 || l->head)
		return;
	for (lp = &a->lanes; *lp; lp = &(*lp)->next)
		if (*lp == l) {
			*lp = l->next;
			break;
		}
	free(l);
}

PGconn *api_db_connect(struct api *a, char *err, size_t errlen)
{
	PGconn *c = emv_db_connect(a->database, err, errlen);
	PGresult *r;
	if (!c)
		return NULL;
	/* a query that hangs must not hold a pool thread for ever */
	r = PQexec(c, "SET statement_timeout = '60s'");
	PQclear(r);
	return c;
}

void *api_pool_main(void *arg)
{
	struct api *a = arg;
	PGconn *c = NULL;
	char err[512];

	for (;;) {
		struct task *t = NULL;
		pthread_mutex_lock(&a->mu);
		while (!a->stopping && !(t = api_queue_pop(a)))
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->stopping) {
			pthread_mutex_unlock(&a->mu);
			break;
		}
		pthread_mutex_unlock(&a->mu);

		if (c && PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			c = NULL;
		}
		if (!c && !(c = api_db_connect(a, err, sizeof err))) {
			emv_log(EMV_LOG_WARN, "api", "%s", err);
			api_task_error(t, 503, "database_unavailable", "the database is not reachable");
		} else {
			t->work(t, c);
			/* A connection that broke under the task (PostgreSQL restarted,
			 * the backend terminated) is not the request's fault: once,
			 * on a fresh connection, the task runs again.  What failed
			 * on a broken connection was not committed. */
			if (t->code[0] && PQstatus(c) != CONNECTION_OK) {
				PQfinish(c);
				c = NULL;
				emv_log(EMV_LOG_INFO, "api",
					"the database connection broke; reconnecting and trying again");
				if ((c = api_db_connect(a, err, sizeof err))) {
					t->status = 0;
					t->code[0] = t->message[0] = '\0';
					if (t->json) {
						json_decref(t->json);
						t->json = NULL;
					}
					t->work(t, c);
				} else {
					emv_log(EMV_LOG_WARN, "api", "%s", err);
				}
			}
		}
		pthread_mutex_lock(&a->mu);
		api_queue_finished(a, t);
		/* a lane at its cap may run again: wake a thread for it */
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
		api_task_post(t);
	}
	PQfinish(c);
	return NULL;
}

void api_task_post(struct task *t)
{
	struct api *a = t->api;
	pthread_mutex_lock(&a->done_mu);
	t->next = NULL;
	if (a->dtail)
		a->dtail->next = t;
	else
		a->dhead = t;
	a->dtail = t;
	pthread_mutex_unlock(&a->done_mu);
	event_active(a->done_ev, EV_READ, 0);
}

void api_on_tasks_done(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;
	struct task *t;
	pthread_mutex_lock(&a->done_mu);
	t = a->dhead;
	a->dhead = a->dtail = NULL;
	pthread_mutex_unlock(&a->done_mu);
	while (t) {
		struct task *next = t->next;
		if (t->pooled) {
			t->pooled = 0;
			t->req->busy--;
		}
		if (t->tenant[0]) {
			struct tenant_cache *c = tenant_slot(a, t->token_hash);
			if (c) {
				memcpy(c->hash, t->token_hash, 32);
				emv_strlcpy(c->tenant, t->tenant, sizeof c->tenant);
			}
		}
		t->done(t); /* frees t or hands it on */
		t = next;
	}
}

/* The usual done(): answer and free. */
void api_task_done_reply(struct task *t)
{
	api_task_reply(t);
	api_task_free(t);
}

/* ------------------------------------------------------ uploads per tenant */

static int per_tenant_uploads(const struct api *a)
{
	if (a->p.max_uploads_per_tenant > 0)
		return a->p.max_uploads_per_tenant;
	return a->p.max_uploads / 2 > 0 ? a->p.max_uploads / 2 : 1;
}

int api_upload_slot_take(struct api *a, const char *tenant, int *why)
{
	int mine = 0, free_slot = -1;
	if (!a->upload_tenant)
		a->upload_tenant = emv_xcalloc((size_t)a->p.max_uploads, sizeof *a->upload_tenant);
	for (int i = 0; i < a->p.max_uploads; i++) {
		if (!a->upload_tenant[i][0]) {
			if (free_slot < 0)
				free_slot = i;
		} else if (strcmp(a->upload_tenant[i], tenant) == 0) {
			mine++;
		}
	}
	if (free_slot < 0 || mine >= per_tenant_uploads(a)) {
		*why = free_slot < 0 ? 0 : 1;
		return -1;
	}
	emv_strlcpy(a->upload_tenant[free_slot], tenant[0] ? tenant : "?", sizeof a->upload_tenant[0]);
	a->uploads++;
	return free_slot;
}

int api_upload_slots_full(struct api *a, const char *tenant)
{
	int mine = 0;
	if (a->uploads >= a->p.max_uploads)
		return 1;
	for (int i = 0; a->upload_tenant && i < a->p.max_uploads; i++)
		mine += a->upload_tenant[i][0] && strcmp(a->upload_tenant[i], tenant) == 0;
	return mine >= per_tenant_uploads(a) ? 2 : 0;
}

void api_upload_slot_give(struct api *a, int slot)
{
	if (slot < 0 || !a->upload_tenant || slot >= a->p.max_uploads)
		return;
	a->upload_tenant[slot][0] = '\0';
	a->uploads--;
}

/* ----------------------------------------------------- background deletes */

/* The job queues of the split and the delete threads: a FIFO of job ids
 * under its lock; a push wakes the queue's one thread, a pop waits for an
 * item and gives NULL when the server stops. */
void api_jobq_push(pthread_mutex_t *mu, pthread_cond_t *cv, struct split_item **head, struct split_item **tail,
		   const char *job)
{
	struct split_item *it = emv_xcalloc(1, sizeof *it);
	emv_strlcpy(it->job, job, sizeof it->job);
	pthread_mutex_lock(mu);
	if (*tail)
		(*tail)->next = it;
	else
		*head = it;
	*tail = it;
	pthread_cond_signal(cv);
	pthread_mutex_unlock(mu);
}

struct split_item *api_jobq_pop(struct api *a, pthread_mutex_t *mu, pthread_cond_t *cv, struct split_item **head,
				struct split_item **tail)
{
	struct split_item *it = NULL;
	pthread_mutex_lock(mu);
	while (!*head && !a->stopping)
		pthread_cond_wait(cv, mu);
	if (!a->stopping) {
		it = *head;
		*head = it->next;
		if (!*head)
			*tail = NULL;
	}
	pthread_mutex_unlock(mu);
	return it;
}

void api_pool_tables(struct api *a)
{
	a->tenants = emv_xcalloc(TENANT_CACHE, sizeof *a->tenants);
}
