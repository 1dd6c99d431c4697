/*
 * emv_api_internal.h - what the parts of the HTTP API share (emv_api.c:
 * server, routing, query pool, jobs; emv_api_upload.c; emv_api_export.c).
 * Not a public interface.
 *
 * Threading: everything named *_loop or taking a struct evhttp_request runs
 * on the event loop thread; a task's work() runs in a pool thread with that
 * thread's PGconn and touches nothing of libevent; its done() runs back on
 * the loop.
 */
#ifndef EMV_API_INTERNAL_H
#define EMV_API_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <libpq-fe.h>
#include "emv_api.h"
#include "emv_lists.h"
#include "emv_sink.h"
#include "emv_tokens.h"

struct api;

struct task {
	struct api *api;
	struct evhttp_request *req;
	void (*work)(struct task *t, PGconn *c); /* pool thread */
	void (*done)(struct task *t);            /* loop */
	unsigned char token_hash[32];
	char tenant[EMV_TENANT_MAX + 1];
	char id[80];                             /* job id from the path */
	char arg[4][96];                         /* handler's parsed query parameters */
	int status;                              /* HTTP status of the answer */
	json_t *json;                            /* its body (owned) */
	char code[40], message[512];             /* or an error */
	void *ctx;                               /* handler's own */
	struct task *next;
};

struct split_item {
	char job[40];
	struct split_item *next;
};

struct api {
	emv_api_params p;
	char database[1024];
	char brokers[512];
	struct event_base *base;
	struct evhttp *http;
	emv_lists *lists;
	void *kafka_probe;                       /* rd_kafka_t for /readyz and lag */

	pthread_mutex_t mu;                      /* pool queue */
	pthread_cond_t cv;
	struct task *qhead, *qtail;
	int stopping;
	pthread_t *pool;
	int npool;

	pthread_mutex_t done_mu;                 /* finished tasks, for the loop */
	struct task *dhead, *dtail;
	struct event *done_ev;

	int uploads;                             /* loop only */

	pthread_mutex_t split_mu;
	pthread_cond_t split_cv;
	struct split_item *shead, *stail;
	pthread_t split_th;

	pthread_t sink_th;
	volatile int sink_stop;
	int sink_running;

	void *webhooks;                          /* emv_webhooks */

	struct rate_bucket *buckets;             /* loop only */
	size_t nbuckets;

	/* counters for /metrics (atomics: written by several threads) */
	uint64_t http_by_class[6];
	uint64_t uploads_total, upload_rows, upload_bytes, exports_total, export_rows;
	uint64_t split_batches, split_addresses;
};

/* ---- emv_api.c ---- */
void api_reply_json(struct evhttp_request *req, int status, json_t *body); /* takes body */
void api_reply_error(struct evhttp_request *req, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void api_task_error(struct task *t, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Answer a task: its error, or its json with its status. */
void api_task_reply(struct task *t);
struct task *api_task_new(struct api *a, struct evhttp_request *req);
void api_task_free(struct task *t);
void api_task_submit(struct task *t);
/* Hand a task finished by some other thread to the loop (its done()). */
void api_task_post(struct task *t);
/* In work(): the token's tenant into t->tenant, or an error (401/503) and 0. */
int api_authenticate(struct task *t, PGconn *c);
/* A connection with the server's settings (statement timeout); NULL + err. */
PGconn *api_db_connect(struct api *a, char *err, size_t errlen);
void api_split_enqueue(struct api *a, const char *job);
void api_count_status(struct api *a, int status);

/* ---- emv_api_upload.c ---- */
void api_upload_start(struct api *a, struct evhttp_request *req, const unsigned char token_hash[32]);

/* ---- emv_api_check.c ---- */
void api_check_start(struct api *a, struct evhttp_request *req, const unsigned char token_hash[32]);

/* ---- emv_api_export.c ---- */
void api_export_start(struct api *a, struct evhttp_request *req, const unsigned char token_hash[32],
		      const char *job);

#endif
