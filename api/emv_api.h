/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_api.h - the coordinator's HTTP API (docs/api.md, docs/design.md §1 and §6):
 * `emailverify-coordinator serve`.
 *
 *   POST   /v1/jobs                   upload a list (CSV/plain, raw body or
 *                                     multipart/form-data) -> 201 job
 *   GET    /v1/jobs                   the tenant's jobs, newest first, paged
 *   GET    /v1/jobs/{id}              state, counts by status and reason,
 *                                     percent done, rate, ETA
 *   DELETE /v1/jobs/{id}              cancel the job and delete its rows
 *   GET    /v1/jobs/{id}/results      streamed export (csv|jsonl, status filter)
 *   POST   /v1/check                  one address, answered within a bounded wait
 *                                     (200 with the result, or 202 with a job id)
 *   GET    /metrics /healthz /readyz  operators (no token)
 *
 * One libevent loop runs the HTTP server (libmicrohttpd, driven from the
 * loop); it never waits for PostgreSQL: queries run in a small pool of
 * threads with a connection each, an upload is streamed as it arrives
 * through a pipe into an ingest thread (COPY) that reads it at its own pace
 * (the connection is suspended while the pipe is full), every export has a
 * thread and a connection of its own that formats at most one chunk ahead
 * of the one the socket is taking, and splitting jobs into Kafka
 * batches, storing results (the sink) and delivering webhooks have threads
 * of their own.  Tokens are checked against api_tokens (hashes only); a
 * tenant sees only its jobs (another tenant's job is 404).  Every error is
 * {"error":{"code":...,"message":...}}.
 *
 * Limits are named settings (emv_api_params_default()): an upload holds at
 * most a small staging buffer in memory whatever its size; one over
 * max_upload is refused (413) as soon as its Content-Length or its byte
 * count says so; see docs/api.md.
 */
#ifndef EMV_API_H
#define EMV_API_H

#include <stdint.h>

typedef struct {
	const char *listen;	    /* HOST:PORT (port 0: any free port) */
	const char *database;	    /* libpq conninfo; NULL: $DATABASE_URL */
	const char *brokers;	    /* Kafka bootstrap servers; NULL with embedded_kafka */
	int embedded_kafka;	    /* start librdkafka's mock cluster in this process */
	const char *data_dir;	    /* lists (role, disposable, ...); NULL: default */
	const char *ready_file;	    /* written once serving: listen=..., brokers=... */
	int64_t max_upload;	    /* bytes of one upload body (64 MiB) */
	int64_t max_rows;	    /* rows of one list (1,000,000); as many empty or blank lines again */
	int64_t max_decompressed;   /* bytes of one list once decompressed (256 MiB) */
	int max_uploads;	    /* uploads being ingested at once (4) */
	int max_uploads_per_tenant; /* of those, one tenant's at most (2; 0: max_uploads / 2, at least 1) */
	int db_threads;		    /* query threads (2) */
	int timeout_s;		    /* idle timeout per connection: nothing read or written (30) */
	int request_timeout_s;	    /* deadline of one request, first byte to the end of its answer (900; 0: none) */
	int max_connections;	    /* connections at once (1000) */
	int max_connections_per_ip; /* connections at once from one address (64; 0: no limit) */
	int64_t connection_memory;  /* bytes per connection for headers and buffers (128 KiB) */
	int rate_limit;		    /* requests per second per token (20; 0: none) */
	int rate_burst;		    /* bucket size (40) */
	int auth_fail_limit;	    /* failed authentications per address per window before 429 (20; 0: none) */
	int auth_fail_window_s;	    /* that window, seconds (60) */
	int batch_max;		    /* addresses per Kafka batch (500) */
	int webhook_progress;	    /* progress webhook every N percent (25; 0: only completion) */
	int webhook_attempts;	    /* attempts per delivery (6) */
	int webhook_backoff_ms;	    /* first retry delay, doubled each time (2000) */
	int webhook_timeout_s;	    /* per attempt (10) */
	int webhook_allow_private;  /* allow callbacks to loopback/private addresses (tests) */
	int webhook_allow_http;	    /* allow plain http:// callbacks (else https:// only) */
	const char *webhook_ca;	    /* CA certificates (PEM) for https:// callbacks; NULL: the system's store */
	int no_sink;		    /* do not run the results sink (nor the region router) in this process */
	const struct emv_routes *routes; /* domain -> region topic for the split (emv_routes.h); NULL: shared */
	const struct emv_vcache_cfg *cache; /* the verdict cache (emv_vcache.h); NULL: none */
	int shutdown_ms;		 /* SIGINT/SIGTERM: stopped within this (EMV_STOP_TIMEOUT_MS; emv_stop.h) */
} emv_api_params;

void emv_api_params_default(emv_api_params *p);

/* Serve until SIGINT/SIGTERM.  Returns EMV_OK, or EMV_ERR with the reason
 * when the server could not start. */
int emv_api_serve(const emv_api_params *p, char *err, size_t errlen);

#endif
