/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_api.c - the HTTP API's server (see emv_api.h): its settings, the
 * threads beside the loop (split, sink, router) and emv_api_serve, which
 * starts and stops everything.  The rest of the API: api_http.c (requests,
 * replies, libmicrohttpd on the loop), api_routes.c (the route table),
 * api_auth.c (tokens and limits), api_pool.c (the query pool, fair per
 * tenant), api_jobs.c, api_metrics.c and emv_api_{upload,export,check}.c
 * (the endpoints).
 *
 * Why libmicrohttpd (Debian 12: libmicrohttpd12, 0.9.75) and not libevent's
 * evhttp, which the rest of the coordinator uses: evhttp 2.1 hands a server
 * request to the application only once its whole body has arrived, so an
 * upload had to be held in memory whole before it could be streamed into
 * PostgreSQL, and a body far over the limit got evhttp's own HTML 413.  MHD
 * calls us with the body as it arrives, lets a connection be suspended
 * while PostgreSQL catches up (backpressure instead of buffering), parses
 * multipart/form-data incrementally, and can be driven by our own event
 * loop (its epoll descriptor is one more libevent event), so the threading
 * of the API is unchanged.  The HTTP clients (webhooks, `emailverify
 * submit`) stay on evhttp, which streams fine in that direction.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <event2/thread.h>
#include <librdkafka/rdkafka.h>
#include "emv_api_internal.h"
#include "emv_defaults.h"
#include "emv_ipstate.h"
#include "emv_router.h"
#include "emv_routes.h"
#include "emv_db.h"
#include "emv_export.h"
#include "emv_kafka.h"
#include "emv_split.h"
#include "emv_stop.h"
#include "emv_util.h"
#include "emv_webhook.h"

void emv_api_params_default(emv_api_params *p)
{
	memset(p, 0, sizeof *p);
	p->listen = EMV_DEF_API_LISTEN;
	p->max_upload = EMV_DEF_API_MAX_UPLOAD;
	p->max_rows = EMV_DEF_API_MAX_ROWS;
	p->max_decompressed = EMV_DEF_API_MAX_DECOMPRESSED;
	p->max_uploads = EMV_DEF_API_MAX_UPLOADS;
	p->max_uploads_per_tenant = 0; /* max_uploads / 2 */
	p->db_threads = EMV_DEF_API_DB_THREADS;
	p->timeout_s = EMV_DEF_API_TIMEOUT_S;
	p->request_timeout_s = EMV_DEF_API_REQUEST_TIMEOUT_S;
	p->max_connections = EMV_DEF_API_MAX_CONNECTIONS;
	p->max_connections_per_ip = EMV_DEF_API_MAX_CONNECTIONS_PER_IP;
	p->connection_memory = EMV_DEF_API_CONNECTION_MEMORY;
	p->rate_limit = EMV_DEF_API_RATE_LIMIT;
	p->rate_burst = EMV_DEF_API_RATE_BURST;
	p->auth_fail_limit = EMV_DEF_API_AUTH_FAIL_LIMIT;
	p->auth_fail_window_s = EMV_DEF_API_AUTH_FAIL_WINDOW_S;
	p->batch_max = EMV_DEF_BATCH_MAX;
	p->webhook_progress = EMV_DEF_WEBHOOK_PROGRESS;
	p->webhook_attempts = EMV_DEF_WEBHOOK_ATTEMPTS;
	p->webhook_backoff_ms = EMV_DEF_WEBHOOK_BACKOFF_MS;
	p->webhook_timeout_s = EMV_DEF_WEBHOOK_TIMEOUT_S;
	p->shutdown_ms = EMV_STOP_TIMEOUT_MS;
}

/* -------------------------------------------------------- split and sink */

void api_split_enqueue(struct api *a, const char *job)
{
	api_jobq_push(&a->split_mu, &a->split_cv, &a->shead, &a->stail, job);
}

/* Jobs are split one at a time, in upload order; a failed split is retried
 * (it resumes from its cursor) and the job marked failed after 5 tries.
 * A job whose every row is final once split (all unusable, or the results
 * raced the split's last commit) is done now: the sink only finishes jobs
 * it sees results for in state running. */
static void *split_main(void *arg)
{
	struct api *a = arg;
	PGconn *c = NULL;
	emv_split_params sp;
	char err[1024];

	sp = a->split;
	/* with the embedded Kafka a job may be split again from the start
	 * (resume_splits): addresses with a verdict are not asked twice */
	sp.skip_final = a->p.embedded_kafka;
	sp.batch_max = a->p.batch_max;
	sp.routes = a->p.routes;
	for (;;) {
		struct split_item *it;
		emv_split_stats st;
		int tries = 0, rc = EMV_ERR;
		if (!(it = api_jobq_pop(a, &a->split_mu, &a->split_cv, &a->shead, &a->stail)))
			break;

		while (rc != EMV_OK && tries++ < 5 && !a->stopping) {
			if (c && PQstatus(c) != CONNECTION_OK) {
				PQfinish(c);
				c = NULL;
			}
			if (!c && !(c = api_db_connect(a, err, sizeof err))) {
				emv_log(EMV_LOG_WARN, "split", "%s", err);
				sleep(2);
				continue;
			}
			rc = emv_split_job(c, it->job, &sp, &st, err, sizeof err);
			__atomic_add_fetch(&a->split_batches, st.batches, __ATOMIC_RELAXED);
			__atomic_add_fetch(&a->split_addresses, st.addresses, __ATOMIC_RELAXED);
			if (rc != EMV_OK) {
				emv_log(EMV_LOG_WARN, "split", "job %s: %s (try %d)", it->job, err, tries);
				if (strstr(err, "not found"))
					break; /* deleted meanwhile */
				sleep(2);
			} else {
				emv_log(EMV_LOG_INFO, "split",
					"job %s: %llu addresses from the verdict cache, %llu in %llu batches in %.2f s",
					it->job, (unsigned long long)st.cached, (unsigned long long)st.addresses,
					(unsigned long long)st.batches, st.seconds);
			}
		}
		if (c) {
			const char *v[1] = { it->job };
			PGresult *r = PQexecParams(
				c,
				rc == EMV_OK
					? "UPDATE jobs SET state = 'done', finished_at = coalesce(finished_at, now()) "
					  "WHERE id = $1 AND state = 'running' AND n_final >= n_unusable + addresses_total"
					: "UPDATE jobs SET state = 'failed', finished_at = now() WHERE id = $1 "
					  "AND state IN ('splitting', 'ingesting')",
				1, NULL, v, NULL, NULL, 0);
			PQclear(r);
		}
		free(it);
	}
	PQfinish(c);
	return NULL;
}

/* A Kafka consumer of this process (the sink, the region router): run on a
 * connection of its own until the server stops, reconnecting after any
 * error.  run() is emv_sink_run or emv_router_run with its parameters. */
static void keep_running(struct api *a, const char *name,
			 int (*run)(PGconn *c, const void *params, volatile int *stop, char *err, size_t errlen),
			 const void *params)
{
	char err[1024];

	while (!a->sink_stop) {
		PGconn *c = api_db_connect(a, err, sizeof err);
		if (c) {
			if (run(c, params, &a->sink_stop, err, sizeof err) != EMV_OK)
				emv_log(EMV_LOG_WARN, name, "%s", err);
			PQfinish(c);
		} else {
			emv_log(EMV_LOG_WARN, name, "%s", err);
		}
		for (int i = 0; i < 20 && !a->sink_stop; i++)
			usleep(100000);
	}
}

static int run_sink(PGconn *c, const void *params, volatile int *stop, char *err, size_t errlen)
{
	emv_sink_stats st;
	return emv_sink_run(c, params, stop, &st, err, errlen);
}

static void *sink_main(void *arg)
{
	struct api *a = arg;
	emv_sink_params kp;

	kp = a->sink;
	kp.reply_classes = a->reply_classes;
	keep_running(a, "sink", run_sink, &kp);
	return NULL;
}

static int run_router(PGconn *c, const void *params, volatile int *stop, char *err, size_t errlen)
{
	emv_router_stats st;
	return emv_router_run(c, params, stop, &st, err, errlen);
}

/* The region router (docs/regions.md): the workers' ip-state into
 * PostgreSQL, batches a region gave back to another region. */
static void *router_main(void *arg)
{
	struct api *a = arg;
	emv_router_params rp;

	emv_router_params_default(&rp);
	rp.brokers = a->brokers;
	keep_running(a, "router", run_router, &rp);
	return NULL;
}

/* Jobs left in "splitting" by an earlier coordinator are split again (from
 * their cursor). */
static void resume_splits(struct api *a, PGconn *c)
{
	PGresult *r;
	/* The embedded Kafka starts empty: batches of jobs still running when
	 * the last coordinator stopped went with it.  Split those jobs again
	 * from the start; the split leaves out addresses that already have a
	 * final result (skip_final), so no server is asked twice. */
	if (a->p.embedded_kafka)
		PQclear(PQexec(c, "UPDATE jobs SET state = 'splitting', split_done = 0, split_after_domain = NULL, "
				  "split_after_id = NULL WHERE state = 'running'"));
	r = PQexec(c, "SELECT id FROM jobs WHERE state = 'splitting' ORDER BY created_at");
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
		emv_log(EMV_LOG_INFO, "split", "resuming job %s", PQgetvalue(r, i, 0));
		api_split_enqueue(a, PQgetvalue(r, i, 0));
	}
	PQclear(r);
	/* and deletions an earlier coordinator did not finish */
	r = PQexec(c, "SELECT id FROM jobs WHERE state = 'deleting' ORDER BY created_at");
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
		emv_log(EMV_LOG_INFO, "delete", "resuming the deletion of job %s", PQgetvalue(r, i, 0));
		api_delete_enqueue(a, PQgetvalue(r, i, 0));
	}
	PQclear(r);
}

/* ------------------------------------------------------------------ serve */

/* The signal handlers are emv_stop's (a second signal must exit even while
 * this loop is no longer running): the loop looks at the flag. */
static void on_stop_check(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;
	if (!emv_stop_signal)
		return;
	emv_log(EMV_LOG_INFO, "api", "signal %d: stopping within %d ms", (int)emv_stop_signal, a->p.shutdown_ms);
	event_base_loopexit(a->base, NULL);
}

/* Join t unless the shutdown deadline (CLOCK_REALTIME) passes first:
 * a thread still busy then (an upload being ingested, an export being
 * streamed) is left to the process exit; its transaction rolls back. */
static void join_until(pthread_t t, const struct timespec *deadline, const char *what)
{
	if (pthread_timedjoin_np(t, NULL, deadline) != 0)
		emv_log(EMV_LOG_WARN, "api", "stopping: %s still busy at the shutdown deadline; left", what);
}

static int write_ready_file(const char *path, const char *listen, const char *brokers, char *err, size_t errlen)
{
	char tmp[4096];
	FILE *f;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if (!(f = fopen(tmp, "w"))) {
		emv_set_err(err, errlen, "%s: %s", tmp, strerror(errno));
		return EMV_ERR;
	}
	fprintf(f, "listen=%s\nbrokers=%s\npid=%d\n", listen, brokers, (int)getpid());
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		emv_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return EMV_ERR;
	}
	return EMV_OK;
}

static rd_kafka_t *probe_handle(const char *brokers)
{
	char errstr[256];
	rd_kafka_conf_t *conf = emv_kafka_conf_new();
	rd_kafka_t *rk;
	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr)))
		rd_kafka_conf_destroy(conf);
	return rk;
}

int emv_api_serve(const emv_api_params *p, char *err, size_t errlen)
{
	struct api *a = emv_xcalloc(1, sizeof *a);
	emv_kafka_mock *mock = NULL;
	struct event *stop_check = NULL;
	struct timespec deadline;
	char listen_addr[300];
	int lfd = -1, version, rc = EMV_ERR;
	PGconn *c;

	a->p = *p;
	if (p->database)
		emv_strlcpy(a->database, p->database, sizeof a->database);
	else if (getenv("DATABASE_URL"))
		emv_strlcpy(a->database, getenv("DATABASE_URL"), sizeof a->database);
	if ((lfd = api_listen_on(p->listen, err, errlen)) < 0) {
		free(a);
		return EMV_ERR;
	}

	/* the schema first: the server answers nothing before it is current */
	if (!(c = emv_db_connect(a->database[0] ? a->database : NULL, err, errlen))) {
		close(lfd);
		free(a);
		return EMV_ERR;
	}
	if (emv_db_migrate(c, &version, err, errlen) != EMV_OK)
		goto out_early;
	if (!(a->lists = emv_lists_load(p->data_dir, err, errlen)))
		goto out_early;
	if (p->embedded_kafka) {
		if (!(mock = emv_kafka_mock_new(1, err, errlen)))
			goto out_early;
		emv_strlcpy(a->brokers, emv_kafka_mock_bootstraps(mock), sizeof a->brokers);
	} else if (p->brokers) {
		emv_strlcpy(a->brokers, p->brokers, sizeof a->brokers);
	} else {
		emv_set_err(err, errlen, "give --brokers HOSTS or --embedded-kafka");
		goto out_early;
	}
	a->kafka_probe = probe_handle(a->brokers);
	emv_split_params_default(&a->split);
	a->split.brokers = a->brokers;
	a->split.cache = p->cache;
	emv_sink_params_default(&a->sink);
	a->sink.brokers = a->brokers;
	a->sink.cache = p->cache;

	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error return, not a death */
	a->base = event_base_new();
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		char ip[INET6_ADDRSTRLEN] = "?";
		getsockname(lfd, (struct sockaddr *)&ss, &sl);
		if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
			snprintf(listen_addr, sizeof listen_addr, "[%s]:%d", ip,
				 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
		} else {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
			snprintf(listen_addr, sizeof listen_addr, "%s:%d", ip,
				 ntohs(((struct sockaddr_in *)&ss)->sin_port));
		}
	}
	if (api_mhd_start(a, lfd, err, errlen) != EMV_OK) {
		rd_kafka_destroy(a->kafka_probe);
		goto out_early;
	}
	lfd = -1; /* now MHD's */

	api_auth_tables(a);
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	pthread_mutex_init(&a->done_mu, NULL);
	pthread_mutex_init(&a->split_mu, NULL);
	pthread_cond_init(&a->split_cv, NULL);
	pthread_mutex_init(&a->del_mu, NULL);
	pthread_cond_init(&a->del_cv, NULL);
	api_pool_tables(a);
	a->upload_tenant = emv_xcalloc((size_t)a->p.max_uploads, sizeof *a->upload_tenant);
	a->done_ev = event_new(a->base, -1, EV_PERSIST, api_on_tasks_done, a);
	a->npool = p->db_threads > 0 ? p->db_threads : 1;
	a->pool = emv_xcalloc((size_t)a->npool, sizeof *a->pool);
	for (int i = 0; i < a->npool; i++)
		pthread_create(&a->pool[i], NULL, api_pool_main, a);
	pthread_create(&a->split_th, NULL, split_main, a);
	pthread_create(&a->del_th, NULL, api_delete_main, a);
	resume_splits(a, c);
	PQfinish(c);
	c = NULL;
	if (!p->no_sink) {
		pthread_create(&a->sink_th, NULL, sink_main, a);
		pthread_create(&a->router_th, NULL, router_main, a);
		a->sink_running = 1;
	}
	{
		emv_webhook_params wp;
		emv_webhook_params_default(&wp);
		wp.database = a->database;
		wp.progress_step = p->webhook_progress;
		wp.max_attempts = p->webhook_attempts;
		wp.backoff_ms = p->webhook_backoff_ms;
		wp.timeout_s = p->webhook_timeout_s;
		wp.allow_private = p->webhook_allow_private;
		wp.allow_http = p->webhook_allow_http;
		wp.ca_file = p->webhook_ca;
		a->webhooks = emv_webhooks_start(&wp);
	}
	emv_stop_install("emailverify-coordinator serve", p->shutdown_ms);
	stop_check = event_new(a->base, -1, EV_PERSIST, on_stop_check, a);
	{
		struct timeval tv = { 0, 100000 };
		event_add(stop_check, &tv);
	}

	if (p->ready_file && write_ready_file(p->ready_file, listen_addr, a->brokers, err, errlen) != EMV_OK)
		goto stop;
	emv_log(EMV_LOG_INFO, "api", "serving on http://%s (schema %d, Kafka %s%s)", listen_addr, version, a->brokers,
		mock ? ", embedded" : "");
	fprintf(stderr, "emailverify-coordinator: serving on http://%s, brokers %s\n", listen_addr, a->brokers);
	event_base_dispatch(a->base);
	rc = EMV_OK;

stop:
	/* Stop the threads, each within the shutdown timeout (a stored group
	 * of results is committed, a group not stored yet is read again by the
	 * next sink).  Uploads still being ingested and exports still streaming
	 * are abandoned with the process: their transactions roll back when the
	 * connections drop. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += p->shutdown_ms * 9 / 10 / 1000;
	deadline.tv_nsec += (long)(p->shutdown_ms * 9 / 10 % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	emv_webhooks_stop(a->webhooks);
	a->sink_stop = 1;
	if (a->sink_running) {
		join_until(a->sink_th, &deadline, "the results sink");
		join_until(a->router_th, &deadline, "the region router");
	}
	if (a->pool) {
		pthread_mutex_lock(&a->mu);
		a->stopping = 1;
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_mutex_lock(&a->split_mu);
		pthread_cond_broadcast(&a->split_cv);
		pthread_mutex_unlock(&a->split_mu);
		pthread_mutex_lock(&a->del_mu);
		pthread_cond_broadcast(&a->del_cv);
		pthread_mutex_unlock(&a->del_mu);
		/* a deletion in progress is not waited for: its batches are
		 * committed, the rest resumes at the next start */
		for (int i = 0; i < a->npool; i++)
			join_until(a->pool[i], &deadline, "a query thread");
		/* a split in progress is not waited for: it resumes from its
		 * cursor at the next start (resume_splits) */
	}
	if (stop_check)
		event_free(stop_check);
	if (p->ready_file)
		unlink(p->ready_file);
	fflush(stdout);
	/* Requests still in a thread's hands would be answered into a freed
	 * server (and MHD must not be stopped with suspended connections), and
	 * the embedded Kafka must outlive every client of this process: leave
	 * MHD, the base and the mock to the process exit. */
	if (rc != EMV_OK)
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
	_exit(rc == EMV_OK ? 0 : 1);
out_early:
	if (lfd >= 0)
		close(lfd);
	PQfinish(c);
	emv_lists_free(a->lists);
	emv_kafka_mock_free(mock);
	free(a);
	return EMV_ERR;
}
