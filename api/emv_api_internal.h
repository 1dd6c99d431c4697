/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_api_internal.h - what the parts of the HTTP API share (emv_api.c:
 * server, requests, routing, query pool, jobs; emv_api_upload.c;
 * emv_api_export.c; emv_api_check.c).  Not a public interface.
 *
 * Threading: libmicrohttpd runs inside the libevent loop (its epoll
 * descriptor is one event of the loop, MHD_run is called from there), so
 * everything taking a struct api_req, every MHD callback and everything
 * named *_loop runs on the loop thread; a task's work() runs in a pool
 * thread with that thread's PGconn and touches nothing of libevent or MHD;
 * its done() runs back on the loop.
 *
 * A request (struct api_req) lives from its headers until MHD says it is
 * finished with it (answered, or the client gone) and nobody else holds a
 * reference: a task, an ingest or an export thread each hold one, so a
 * client that goes away never leaves them pointing at freed memory.  While
 * the request waits for something other than its client (a pool task, the
 * ingest pipe, the next export chunk) its connection is suspended: MHD
 * neither reads from it nor calls us for it, and the socket's own buffer
 * pushes back on the client.
 */
#ifndef EMV_API_INTERNAL_H
#define EMV_API_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include "emv_api.h"
#include "emv_lists.h"
#include "emv_sink.h"
#include "emv_split.h"
#include "emv_tokens.h"

struct api;
struct api_conn;

enum api_method { API_GET, API_HEAD, API_POST, API_DELETE, API_OTHER };

#define API_REPLY_HEADERS 4
#define API_BODY_DROP_MAX (1024 * 1024) /* body bytes nobody reads, dropped before the connection is closed */

/* One HTTP request, from its headers to MHD's completion notice. */
struct api_req {
	struct api *a;
	struct MHD_Connection *conn; /* NULL once MHD is done with it */
	enum api_method method;
	int refs;	/* MHD's, tasks', threads' */
	int busy;	/* pool tasks in flight for it */
	int suspended;	/* by us: MHD does not read or call */
	int expired;	/* past its deadline: being cut off */
	int has_body;	/* Content-Length > 0 or Transfer-Encoding */
	int first_wait; /* suspended in the headers' call */
	int final_called;
	unsigned char peer[16]; /* the client's address (4 or 16 bytes; 0: unknown) */
	int peer_len;
	int token_given;	    /* a bearer token was presented: a 401 is a failed guess */
	uint64_t body_bytes;	    /* of the body, read so far */
	uint64_t drop_max;	    /* body bytes read at most once answered */
	int answered;		    /* a response was queued */
	struct MHD_Response *reply; /* waiting to be queued on the next call */
	unsigned reply_status;
	int nhdr; /* headers for the next reply */
	char hdr[API_REPLY_HEADERS][2][160];
	struct api_conn *cn; /* its connection (and deadline) while MHD has it */
	/* the handler's, while the body arrives: body() consumes some of
	 * *size (leaving the rest for its next call) and returns 0, or -1 to
	 * close the connection; final() is called once the body is whole;
	 * gone() once MHD is finished with the request (answered or not) */
	int (*body)(struct api_req *r, const char *data, size_t *size);
	void (*final)(struct api_req *r);
	void (*gone)(struct api_req *r);
	void *ctx;
	/* where headers and query parameters come from when not from MHD's
	 * connection (the router fuzzer); NULL: MHD */
	const char *(*values)(struct api_req *r, enum MHD_ValueKind kind, const char *key);
};

struct task {
	struct api *api;
	struct api_req *req;			 /* referenced while the task lives */
	void (*work)(struct task *t, PGconn *c); /* pool thread */
	void (*done)(struct task *t);		 /* loop */
	unsigned char token_hash[32];
	char tenant[EMV_TENANT_MAX + 1];
	char id[80];		     /* job id from the path */
	char arg[4][96];	     /* handler's parsed query parameters */
	int status;		     /* HTTP status of the answer */
	json_t *json;		     /* its body (owned) */
	char code[40], message[512]; /* or an error */
	void *ctx;		     /* handler's own */
	int pooled;		     /* in the pool's hands (req->busy counts it) */
	struct lane *lane;	     /* its fairness lane while queued or running */
	struct task *next;
};

/* The pool's queue: one lane per tenant (or, before its tenant is known,
 * per token), served in turn, so that a tenant's queued requests wait for
 * each other and not another tenant's. */
struct lane {
	char key[80]; /* "t:" tenant, "h:" token hash, "" no token */
	struct task *head, *tail;
	int running; /* its tasks in pool threads now */
	struct lane *next;
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
	struct MHD_Daemon *mhd;
	struct event *mhd_ev;	 /* MHD's epoll descriptor is readable */
	struct event *mhd_timer; /* MHD's next timeout, or "run now" */
	emv_lists *lists;
	void *kafka_probe; /* rd_kafka_t for /readyz and lag */
	/* What the split and sink threads run with (their topics and groups:
	 * /metrics reads the lag of the same ones); brokers set at start. */
	emv_split_params split;
	emv_sink_params sink;

	pthread_mutex_t mu; /* pool queue */
	pthread_cond_t cv;
	struct lane *lanes; /* under mu: lanes with queued or running tasks, in turn */
	int stopping;
	pthread_t *pool;
	int npool;

	pthread_mutex_t done_mu; /* finished tasks, for the loop */
	struct task *dhead, *dtail;
	struct event *done_ev;

	int uploads;				   /* loop only: ingests running */
	char (*upload_tenant)[EMV_TENANT_MAX + 1]; /* loop only: each ingest slot's tenant ("" free) */
	struct tenant_cache *tenants;		   /* loop only: token hash -> tenant, for the lanes */

	pthread_mutex_t del_mu; /* large jobs deleted in the background */
	pthread_cond_t del_cv;
	struct split_item *delhead, *deltail;
	pthread_t del_th;

	pthread_mutex_t split_mu;
	pthread_cond_t split_cv;
	struct split_item *shead, *stail;
	pthread_t split_th;

	pthread_t sink_th;
	volatile int sink_stop;
	int sink_running;
	pthread_t router_th; /* ip-state in, rerouted batches out (emv_router.h) */

	void *webhooks; /* emv_webhooks */

	struct rate_bucket *buckets; /* loop only */
	size_t nbuckets;
	struct auth_fail *auth_fails; /* loop only: failed authentications per client address */

	/* counters for /metrics (atomics: written by several threads) */
	uint64_t http_by_class[6];
	uint64_t uploads_total, upload_rows, upload_bytes, exports_total, export_rows;
	uint64_t split_batches, split_addresses;
	uint64_t reply_classes[6]; /* the sink's results by deciding reply class */
};

/* ---- api_routes.c: the route table ---- */
/* A route's handler: hash is the token's (NULL on routes without one), id
 * the path's {id} (NULL on routes without one). */
typedef void api_handler(struct api *a, struct api_req *r, const unsigned char *hash, const char *id);
int api_job_id_valid(const char *s, size_t n);
enum api_method api_method_of(const char *m);
api_handler api_h_readyz, api_h_metrics;				   /* api_metrics.c */
api_handler api_h_job_list, api_h_job_status, api_h_job_delete, api_h_ips; /* api_jobs.c */
api_handler api_h_forget;						   /* emv_api_forget.c: POST /v1/forget */
api_handler api_h_job_rows;						   /* api_rows.c */
api_handler api_h_console_index, api_h_console_file;			   /* api_console.c */

/* ---- api_auth.c ---- */
/* The bearer token's hash; 0 when there is none usable (then answered 401). */
int api_bearer(struct api_req *r, unsigned char hash[32]);
/* Seconds to wait before this token may ask again (0: go on). */
int api_rate_check(struct api *a, const unsigned char key[32]);
/* A failed authentication from r's client address; seconds that address
 * must wait before it may try again (0: go on). */
void api_auth_failed(struct api *a, const struct api_req *r);
int api_auth_wait(struct api *a, const struct api_req *r);
void api_auth_tables(struct api *a); /* the rate-limit and failed-authentication tables (kept until the process exits) */

/* ---- api_http.c: the listening socket and libmicrohttpd on the loop ---- */
int api_listen_on(const char *spec, char *err, size_t errlen);
int api_mhd_start(struct api *a, int lfd, char *err, size_t errlen);

/* ---- api_pool.c: the job queues of the split and delete threads ---- */
void api_jobq_push(pthread_mutex_t *mu, pthread_cond_t *cv, struct split_item **head, struct split_item **tail,
		   const char *job);
struct split_item *api_jobq_pop(struct api *a, pthread_mutex_t *mu, pthread_cond_t *cv, struct split_item **head,
				struct split_item **tail);
void api_on_tasks_done(evutil_socket_t fd, short what, void *arg); /* the loop's event: answers from the pool */
void api_task_done_reply(struct task *t);			   /* the usual done(): answer and free */
void api_pool_tables(struct api *a); /* the token -> tenant cache of the lanes (kept until the process exits) */
void *api_pool_main(void *arg);	     /* a query thread */

/* ---- api_jobs.c: deletes ---- */
/* A query failed (err: emv_db_exec()'s text, naming what): log it, answer
 * 503 database_error. */
void api_db_fail(struct task *t, const char *err, const char *what);
void api_delete_enqueue(struct api *a, const char *job);
void *api_delete_main(void *arg);

/* ---- api_http.c: requests ---- */
/* A header of the request ("" never: NULL when absent). */
const char *api_req_header(struct api_req *r, const char *name);
/* A query parameter (NULL when absent or without a value). */
const char *api_req_query(struct api_req *r, const char *key);
/* Call fn for every query parameter until it returns non-zero; that value. */
int api_req_query_each(struct api_req *r, int (*fn)(void *arg, const char *key, const char *value), void *arg);
/* A header for the reply about to be made. */
void api_req_add_header(struct api_req *r, const char *name, const char *value);
/* Only from within an MHD callback for this request (handler, body(),
 * final(), a content reader). */
void api_req_suspend(struct api_req *r);
/* From anywhere on the loop; MHD runs again soon. */
void api_req_resume(struct api_req *r);
void api_req_ref(struct api_req *r);
void api_req_unref(struct api_req *r);
/* The answer: queued at once from within a callback, else on the call
 * that resuming the request brings.  A request whose client is gone
 * drops it. */
void api_reply_response(struct api_req *r, unsigned status, struct MHD_Response *resp); /* takes resp */
void api_reply_json(struct api_req *r, int status, json_t *body);			/* takes body */
void api_reply_error(struct api_req *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The headers are in: answer, or start what answers later (a task, a
 * body handler).  Needs no socket: what it reads of the request goes
 * through api_req_header/api_req_query, so tests/fuzz/fuzz_api_route.c
 * calls it with headers of its own (r->values). */
void api_route(struct api *a, struct api_req *r, const char *path);
/* Let MHD look at its sockets and resumed connections again soon. */
void api_mhd_kick(struct api *a);

/* ---- api_jobs.c ---- */
/* The columns of a jobs row that api_job_json formats (GET /v1/jobs/ID). */
extern const char api_job_columns[];
json_t *api_job_json(PGresult *r, int i);

/* ---- api_pool.c: tasks ---- */
void api_task_error(struct task *t, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Answer a task: its error, or its json with its status. */
void api_task_reply(struct task *t);
struct task *api_task_new(struct api *a, struct api_req *req);
void api_task_free(struct task *t);
/* To the pool; the request (if any) waits, suspended in its next MHD call,
 * until done() answers or resumes it. */
void api_task_submit(struct task *t);
/* Under a->mu: the next task by the lanes' turn (NULL: none may run now);
 * api_queue_finished once it has run. */
struct task *api_queue_pop(struct api *a);
void api_queue_finished(struct api *a, struct task *t);
/* Hand a task finished by some other thread to the loop (its done()). */
void api_task_post(struct task *t);
/* In work(): the token's tenant into t->tenant, or an error (401/503) and 0. */
int api_authenticate(struct task *t, PGconn *c);
/* A connection with the server's settings (statement timeout); NULL + err. */
PGconn *api_db_connect(struct api *a, char *err, size_t errlen);
void api_split_enqueue(struct api *a, const char *job);
void api_count_status(struct api *a, int status);

/* ---- api_pool.c: uploads per tenant ---- */
/* An ingest slot for this tenant: its index, or -1 (all busy: *why says
 * whose: 0 every slot, 1 the tenant's share). */
int api_upload_slot_take(struct api *a, const char *tenant, int *why);
void api_upload_slot_give(struct api *a, int slot);
/* Would api_upload_slot_take refuse now?  0 no, 1 every slot is taken,
 * 2 the tenant's share is. */
int api_upload_slots_full(struct api *a, const char *tenant);

/* ---- emv_api_upload.c ---- */
void api_upload_start(struct api *a, struct api_req *r, const unsigned char token_hash[32]);

/* ---- emv_api_check.c ---- */
void api_check_start(struct api *a, struct api_req *r, const unsigned char token_hash[32]);

/* ---- emv_api_export.c ---- */
void api_export_start(struct api *a, struct api_req *r, const unsigned char token_hash[32], const char *job);

#endif
