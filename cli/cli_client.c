/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_client.c - `emailverify submit|status|export|jobs`: the client of the
 * coordinator's HTTP API (emv_api.h), over libevent's evhttp client.
 *
 *   submit LIST [--name N] [--callback-url URL --callback-secret S] [--max-age D | --fresh] [--wait]
 *   status ID [--json]
 *   export ID -o FILE [--format csv|jsonl] [--status deliverable,...]
 *   jobs [--limit N] [--json]
 *   forget ADDRESS [--cache FILE]
 *
 * forget asks the coordinator to forget an address (POST /v1/forget: its
 * cache entries and the tenant's stored job rows); with --cache FILE it
 * removes the address from verify's local cache file instead, and needs no
 * server.
 * Every command takes --server URL and --token T, or EMAILVERIFY_SERVER
 * and EMAILVERIFY_TOKEN.  The list is sent from the file (evbuffer_add_file:
 * never read into memory whole); an export is written to FILE.part as it
 * arrives and renamed to FILE only when the server has sent all of it.
 * Answers other than an export are read with a bound (16 MiB).  Exit 0 on
 * success, 1 on an error from the server or the network, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include "cli.h"
#include "cli_cache.h"
#include "emv_address.h"
#include "emv_cache.h"
#include "emv_util.h"

#define CLIENT_MAX_BODY (16 * 1024 * 1024)
#define CLIENT_TIMEOUT_S 600

struct client {
	const char *server, *token;
	char host[256];
	int port;
	char prefix[256];
	const char *content_type; /* of a request body: NULL text/csv */
};

struct call {
	struct event_base *base;
	int status;
	struct evbuffer *body; /* the answer (bounded), unless streamed to sink */
	FILE *sink;	       /* a 200 answer's body goes here */
	int failed, too_long, write_failed;
	char error[128];
};

static int client_init(struct client *c, const char *server, const char *token)
{
	struct evhttp_uri *u;
	const char *path;
	memset(c, 0, sizeof *c);
	c->server = server ? server : getenv("EMAILVERIFY_SERVER");
	c->token = token ? token : getenv("EMAILVERIFY_TOKEN");
	if (!c->server || !*c->server) {
		fprintf(stderr, "emailverify: no server: give --server URL or set EMAILVERIFY_SERVER\n");
		return -1;
	}
	if (!c->token || !*c->token) {
		fprintf(stderr, "emailverify: no token: give --token T or set EMAILVERIFY_TOKEN\n");
		return -1;
	}
	u = evhttp_uri_parse(c->server);
	if (!u || !evhttp_uri_get_scheme(u) || strcasecmp(evhttp_uri_get_scheme(u), "http") != 0 ||
	    !evhttp_uri_get_host(u)) {
		fprintf(stderr, "emailverify: --server %s: give http://HOST[:PORT]\n", c->server);
		if (u)
			evhttp_uri_free(u);
		return -1;
	}
	emv_strlcpy(c->host, evhttp_uri_get_host(u), sizeof c->host);
	c->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
	path = evhttp_uri_get_path(u);
	emv_strlcpy(c->prefix, path ? path : "", sizeof c->prefix);
	if (c->prefix[0] && c->prefix[strlen(c->prefix) - 1] == '/')
		c->prefix[strlen(c->prefix) - 1] = '\0';
	evhttp_uri_free(u);
	return 0;
}

static void on_chunk(struct evhttp_request *req, void *arg)
{
	struct call *k = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	if (k->sink && evhttp_request_get_response_code(req) == 200) {
		while (evbuffer_get_length(in)) {
			char buf[65536];
			int n = evbuffer_remove(in, buf, sizeof buf);
			if (n <= 0 || fwrite(buf, 1, (size_t)n, k->sink) != (size_t)n) {
				k->write_failed = 1;
				evbuffer_drain(in, evbuffer_get_length(in));
			}
		}
		return;
	}
	if (evbuffer_get_length(k->body) + evbuffer_get_length(in) > CLIENT_MAX_BODY) {
		k->too_long = 1;
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	evbuffer_add_buffer(k->body, in);
}

static void on_error(enum evhttp_request_error e, void *arg)
{
	struct call *k = arg;
	k->failed = 1;
	snprintf(k->error, sizeof k->error, "%s",
		 e == EVREQ_HTTP_TIMEOUT	  ? "timed out"
		 : e == EVREQ_HTTP_EOF		  ? "the connection closed early"
		 : e == EVREQ_HTTP_INVALID_HEADER ? "invalid answer"
		 : e == EVREQ_HTTP_DATA_TOO_LONG  ? "answer too long"
						  : "connection error");
}

static void on_done(struct evhttp_request *req, void *arg)
{
	struct call *k = arg;
	if (!req || evhttp_request_get_response_code(req) == 0) {
		k->failed = 1;
		if (!k->error[0])
			snprintf(k->error, sizeof k->error, "no answer");
	} else {
		k->status = evhttp_request_get_response_code(req);
		on_chunk(req, k); /* anything left */
	}
	event_base_loopexit(k->base, NULL);
}

/*
 * One request; the answer's status and body in k (body streamed to sink
 * when the status is 200 and sink is given).  0 when an answer came.
 */
static int call(struct client *c, const char *method, const char *path, int body_fd, FILE *sink, struct call *k)
{
	struct evhttp_connection *evcon;
	struct evhttp_request *req;
	struct evkeyvalq *h;
	char auth[512], target[2300], hosthdr[300];
	enum evhttp_cmd_type m = strcmp(method, "POST") == 0	 ? EVHTTP_REQ_POST
				 : strcmp(method, "DELETE") == 0 ? EVHTTP_REQ_DELETE
								 : EVHTTP_REQ_GET;

	memset(k, 0, sizeof *k);
	k->base = event_base_new();
	k->body = evbuffer_new();
	k->sink = sink;
	evcon = evhttp_connection_base_new(k->base, NULL, c->host, (unsigned short)c->port);
	evhttp_connection_set_timeout(evcon, CLIENT_TIMEOUT_S);
	evhttp_connection_set_retries(evcon, 0);
	evhttp_connection_set_max_headers_size(evcon, 64 * 1024);
	req = evhttp_request_new(on_done, k);
	evhttp_request_set_chunked_cb(req, on_chunk);
	evhttp_request_set_error_cb(req, on_error);
	h = evhttp_request_get_output_headers(req);
	snprintf(hosthdr, sizeof hosthdr, "%s:%d", c->host, c->port);
	snprintf(auth, sizeof auth, "Bearer %s", c->token);
	evhttp_add_header(h, "Host", hosthdr);
	evhttp_add_header(h, "Authorization", auth);
	evhttp_add_header(h, "User-Agent", "emailverify/" EMV_VERSION);
	evhttp_add_header(h, "Connection", "close");
	if (body_fd >= 0) {
		struct stat st;
		char len[24];
		fstat(body_fd, &st);
		/* the file's pages go to the socket without a copy here */
		evbuffer_add_file(evhttp_request_get_output_buffer(req), body_fd, 0, st.st_size);
		snprintf(len, sizeof len, "%lld", (long long)st.st_size);
		evhttp_add_header(h, "Content-Type", c->content_type ? c->content_type : "text/csv");
		evhttp_add_header(h, "Content-Length", len);
	}
	snprintf(target, sizeof target, "%s%s", c->prefix, path);
	if (evhttp_make_request(evcon, req, m, target) != 0) {
		snprintf(k->error, sizeof k->error, "the request could not be made");
		k->failed = 1;
	} else {
		event_base_dispatch(k->base);
	}
	evhttp_connection_free(evcon);
	event_base_free(k->base);
	k->base = NULL;
	if (k->failed) {
		fprintf(stderr, "emailverify: %s %s%s: %s\n", method, c->server, path, k->error);
		return -1;
	}
	if (k->too_long) {
		fprintf(stderr, "emailverify: %s %s%s: the answer is over %d bytes\n", method, c->server, path,
			CLIENT_MAX_BODY);
		return -1;
	}
	return 0;
}

static void call_free(struct call *k)
{
	if (k->body)
		evbuffer_free(k->body);
	k->body = NULL;
}

/* The answer as JSON, or NULL (printed) when it is not. */
static json_t *answer_json(struct call *k)
{
	json_error_t e;
	size_t n = evbuffer_get_length(k->body);
	json_t *j = json_loadb((const char *)evbuffer_pullup(k->body, -1), n, 0, &e);
	if (!j)
		fprintf(stderr, "emailverify: the server's answer (HTTP %d) is not JSON: %s\n", k->status, e.text);
	return j;
}

/* Say what the server refused, from its {"error":{...}}. */
static void print_error(struct call *k)
{
	json_t *j = answer_json(k), *e = j ? json_object_get(j, "error") : NULL;
	if (e && json_is_string(json_object_get(e, "message"))) {
		char msg[512];
		const char *m = json_string_value(json_object_get(e, "message"));
		emv_sanitize(msg, sizeof msg, m, strlen(m));
		fprintf(stderr, "emailverify: HTTP %d %s: %s\n", k->status,
			json_is_string(json_object_get(e, "code")) ? json_string_value(json_object_get(e, "code")) : "",
			msg);
	} else if (j) {
		fprintf(stderr, "emailverify: HTTP %d\n", k->status);
	}
	json_decref(j);
}

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static void print_job(FILE *f, json_t *j)
{
	json_t *counts = json_object_get(j, "counts"), *reasons = json_object_get(j, "reasons");
	const char *status;
	json_t *by;
	fprintf(f, "job       %s\n", jstr(j, "id"));
	if (*jstr(j, "name"))
		fprintf(f, "name      %s\n", jstr(j, "name"));
	fprintf(f, "state     %s\n", jstr(j, "state"));
	fprintf(f, "progress  %lld of %lld (%.1f %%)", (long long)jint(j, "done"), (long long)jint(j, "total"),
		json_real_value(json_object_get(j, "percent")));
	if (json_is_integer(json_object_get(j, "eta_s")) && jint(j, "eta_s") > 0)
		fprintf(f, ", %.1f/s, about %llds left", json_real_value(json_object_get(j, "rate_per_s")),
			(long long)jint(j, "eta_s"));
	fprintf(f, "\nrows      %lld (%lld addresses, %lld duplicates, %lld unusable)\n", (long long)jint(j, "rows"),
		(long long)jint(j, "addresses"), (long long)jint(j, "duplicates"), (long long)jint(j, "unusable"));
	fprintf(f, "cached    %lld addresses answered from the verdict cache\n", (long long)jint(j, "cached"));
	fprintf(f, "\n%-15s %10s\n", "status", "count");
	json_object_foreach (counts, status, by)
		fprintf(f, "%-15s %10lld\n", status, (long long)json_integer_value(by));
	if (json_object_size(reasons)) {
		fprintf(f, "\n%-15s %-20s %10s\n", "status", "reason", "count");
		json_object_foreach (reasons, status, by) {
			const char *reason;
			json_t *n;
			json_object_foreach (by, reason, n)
				fprintf(f, "%-15s %-20s %10lld\n", status, reason, (long long)json_integer_value(n));
		}
	}
}

static int finished(const char *state)
{
	return strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0;
}

/* A request whose answer is JSON with status want; NULL (said why) on an
 * error, a refusal or another status. */
static json_t *call_json(struct client *c, const char *method, const char *path, int body_fd, int want)
{
	struct call k;
	json_t *j = NULL;
	if (call(c, method, path, body_fd, NULL, &k) == 0) {
		if (k.status == want)
			j = answer_json(&k);
		else
			print_error(&k);
	}
	call_free(&k);
	return j;
}

/* GET /v1/jobs/ID as JSON; NULL (said why) on an error. */
static json_t *get_job(struct client *c, const char *id)
{
	char path[200];
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	return call_json(c, "GET", path, -1, 200);
}

static void progress_line(json_t *j, int tty)
{
	double pct = json_real_value(json_object_get(j, "percent"));
	int filled = (int)(pct / 100 * 30);
	char bar[31];
	for (int i = 0; i < 30; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[30] = '\0';
	fprintf(stderr, "%s[%s] %5.1f %%  %lld/%lld (%lld cached)  %s", tty ? "\r" : "", bar, pct,
		(long long)jint(j, "done"), (long long)jint(j, "total"), (long long)jint(j, "cached"), jstr(j, "state"));
	if (json_is_integer(json_object_get(j, "eta_s")) && jint(j, "eta_s") > 0)
		fprintf(stderr, "  %.1f/s  ETA %llds", json_real_value(json_object_get(j, "rate_per_s")),
			(long long)jint(j, "eta_s"));
	fprintf(stderr, tty ? "   " : "\n");
}

/* Poll until the job is finished; the summary to stdout. */
static int wait_job(struct client *c, const char *id)
{
	int tty = isatty(2);
	uint64_t last_line = 0;
	for (;;) {
		json_t *j = get_job(c, id);
		int fin, ok;
		if (!j)
			return 1;
		fin = finished(jstr(j, "state"));
		if (tty || fin || emv_now_ms() - last_line >= 10000) {
			progress_line(j, tty);
			last_line = emv_now_ms();
		}
		if (fin) {
			if (tty)
				fputc('\n', stderr);
			print_job(stdout, j);
			ok = strcmp(jstr(j, "state"), "done") == 0;
			json_decref(j);
			return ok ? 0 : 1;
		}
		json_decref(j);
		sleep(1);
	}
}

static const struct option common_opts[] = {
	{ "server", required_argument, NULL, 's' },
	{ "token", required_argument, NULL, 't' },
	{ "name", required_argument, NULL, 'n' },
	{ "callback-url", required_argument, NULL, 'c' },
	{ "callback-secret", required_argument, NULL, 'S' },
	{ "wait", no_argument, NULL, 'w' },
	{ "deadline", required_argument, NULL, 'D' },
	{ "straggler-wait", required_argument, NULL, 'W' },
	{ "json", no_argument, NULL, 'j' },
	{ "format", required_argument, NULL, 'f' },
	{ "status", required_argument, NULL, 'x' },
	{ "limit", required_argument, NULL, 'l' },
	{ "no-escape-formulas", no_argument, NULL, 'F' },
	{ "cache", required_argument, NULL, 'C' },
	{ "max-age", required_argument, NULL, 'm' },
	{ "fresh", no_argument, NULL, 'R' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void client_usage(FILE *f)
{
	fprintf(f, "usage: emailverify submit LIST [--name N] [--callback-url URL --callback-secret S]\n"
		   "                         [--max-age D | --fresh] [--deadline D] [--straggler-wait D] [--wait]\n"
		   "         --max-age D: verdicts from the verdict cache only when younger than D (30d, 12h, 90s);\n"
		   "         --fresh: none, every address is asked again (docs/cache.md)\n"
		   "         --deadline D: the job's deadline, D (90s, 10m, 2h) after it is created: then every\n"
		   "         address still waiting is final (unknown, with its reason and last evidence);\n"
		   "         --straggler-wait D: at most D more for retries once every address had its first\n"
		   "         answer (default 5m; 0 = as long as they take)\n"
		   "       emailverify status ID [--json]\n"
		   "       emailverify export ID -o FILE [--format csv|jsonl] [--status deliverable,...]\n"
		   "                             [--no-escape-formulas]  (CSV: = + - @ TAB CR cells as they are)\n"
		   "       emailverify jobs [--limit N] [--json]\n"
		   "       emailverify forget ADDRESS         (a privacy request: its cache entries, and its rows in\n"
		   "                                          your jobs are redacted; exports already made are not)\n"
		   "       emailverify forget --cache FILE ADDRESS   (from verify's cache file; no server)\n"
		   "  every command: --server URL (or EMAILVERIFY_SERVER), --token T (or EMAILVERIFY_TOKEN)\n");
}

/* Query-string escaping for the few parameters we send. */
static void add_param(char *q, size_t qlen, const char *key, const char *val)
{
	char *enc;
	if (!val)
		return;
	enc = evhttp_uriencode(val, -1, 0);
	snprintf(q + strlen(q), qlen - strlen(q), "%s%s=%s", q[0] ? "&" : "?", key, enc);
	free(enc);
}

/* forget ADDRESS: from the cache file, or (no --cache) on the coordinator.
 * The address is normalised as ingest does, so "Alice@Example.COM" forgets
 * the entry of "Alice@example.com". */
static int forget(const char *server, const char *token, const char *cache, const char *addr)
{
	emv_address a;
	char err[600];
	if (emv_address_parse(addr, strlen(addr), &a) != EMV_OK) {
		char shown[300];
		emv_sanitize(shown, sizeof shown, addr, strlen(addr));
		fprintf(stderr, "emailverify forget: '%s' is not an email address (%s)\n", shown, a.detail);
		return 2;
	}
	if (cache) {
		cli_cache *cc = cli_cache_open(cache, err, sizeof err);
		int rc;
		if (!cc) {
			fprintf(stderr, "emailverify forget: %s\n", err);
			return 2;
		}
		rc = cli_cache_forget(cc, a.address, err, sizeof err);
		cli_cache_close(cc);
		if (rc < 0) {
			fprintf(stderr, "emailverify forget: %s\n", err);
			return 1;
		}
		printf("%s: %s\n", a.address,
		       rc ? "forgotten (its entry is deleted from the cache file)" : "not in the cache file");
		return 0;
	}
	{
		struct client c;
		json_t *body, *j;
		char *text;
		FILE *f;
		if (client_init(&c, server, token) != 0)
			return 2;
		body = json_pack("{s:s}", "email", addr);
		text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (!(f = tmpfile()) || fputs(text, f) < 0 || fflush(f) != 0) {
			fprintf(stderr, "emailverify forget: no temporary file: %s\n", strerror(errno));
			free(text);
			if (f)
				fclose(f);
			return 1;
		}
		free(text);
		c.content_type = "application/json";
		j = call_json(&c, "POST", "/v1/forget", fileno(f), 200);
		fclose(f);
		if (!j)
			return 1;
		printf("%s: forgotten (%lld cache entries deleted, %lld job rows redacted)\n", jstr(j, "email"),
		       (long long)jint(j, "cache_entries"), (long long)jint(j, "job_rows"));
		json_decref(j);
		return 0;
	}
}

int cli_client(int argc, char **argv)
{
	const char *cmd = argv[0], *server = NULL, *token = NULL, *name = NULL, *cb_url = NULL, *cb_secret = NULL;
	const char *format = NULL, *status = NULL, *out = NULL, *limit = NULL, *arg = NULL, *cache = NULL;
	const char *max_age = NULL;
	int fresh = 0;
	char deadline[24] = "", straggler[24] = "", err[256];
	int64_t secs;
	int wait = 0, json = 0, keep_formulas = 0, o;
	struct client c;
	struct call k;
	char path[4096];

	optind = 1;
	while ((o = getopt_long(argc, argv, "o:h", common_opts, NULL)) != -1) {
		switch (o) {
		case 's': server = optarg; break;
		case 't': token = optarg; break;
		case 'n': name = optarg; break;
		case 'c': cb_url = optarg; break;
		case 'S': cb_secret = optarg; break;
		case 'w': wait = 1; break;
		case 'D':
		case 'W':
			if (emv_parse_limit_s(o == 'D' ? "--deadline" : "--straggler-wait", optarg, o == 'W', &secs,
					      err, sizeof err) != 0) {
				fprintf(stderr, "emailverify %s: %s\n", cmd, err);
				return 2;
			}
			snprintf(o == 'D' ? deadline : straggler, sizeof deadline, "%lld", (long long)secs);
			break;
		case 'j': json = 1; break;
		case 'f': format = optarg; break;
		case 'x': status = optarg; break;
		case 'F': keep_formulas = 1; break;
		case 'l': limit = optarg; break;
		case 'o': out = optarg; break;
		case 'C': cache = optarg; break;
		case 'm': {
			int64_t s;
			if (emv_cache_parse_max_age("--max-age", optarg, &s, err, sizeof err) != EMV_OK) {
				fprintf(stderr, "emailverify: %s\n", err);
				return 2;
			}
			max_age = optarg;
			break;
		}
		case 'R': fresh = 1; break;
		case 'h': client_usage(stdout); return 0;
		default: client_usage(stderr); return 2;
		}
	}
	if (optind < argc)
		arg = argv[optind++];
	if (optind < argc || (strcmp(cmd, "jobs") != 0 && !arg) || (strcmp(cmd, "jobs") == 0 && arg)) {
		client_usage(stderr);
		return 2;
	}
	if (cache && strcmp(cmd, "forget") != 0) {
		fprintf(stderr, "emailverify %s: --cache is an option of forget (and verify)\n", cmd);
		return 2;
	}
	if (strcmp(cmd, "forget") == 0)
		return forget(server, token, cache, arg);
	if (strcmp(cmd, "export") == 0 && !out) {
		fprintf(stderr, "emailverify export: -o FILE is required\n");
		return 2;
	}
	if (client_init(&c, server, token) != 0)
		return 2;

	if (strcmp(cmd, "submit") == 0) {
		int fd = open(arg, O_RDONLY | O_CLOEXEC);
		json_t *j;
		char id[80];
		if (fd < 0) {
			fprintf(stderr, "emailverify: %s: %s\n", arg, strerror(errno));
			return 1;
		}
		path[0] = '\0';
		add_param(path, sizeof path, "name", name);
		add_param(path, sizeof path, "callback_url", cb_url);
		add_param(path, sizeof path, "callback_secret", cb_secret);
		add_param(path, sizeof path, "max_age", max_age);
		add_param(path, sizeof path, "fresh", fresh ? "true" : NULL);
		add_param(path, sizeof path, "deadline_s", deadline[0] ? deadline : NULL);
		add_param(path, sizeof path, "straggler_wait_s", straggler[0] ? straggler : NULL);
		{
			char p2[4200];
			snprintf(p2, sizeof p2, "/v1/jobs%s", path);
			j = call_json(&c, "POST", p2, fd, 201);
		}
		close(fd);
		if (!j)
			return 1;
		emv_strlcpy(id, jstr(j, "id"), sizeof id);
		printf("%s\n", id);
		fprintf(stderr,
			"job %s: %lld rows, %lld addresses to verify, %lld duplicates, %lld invalid, %lld row errors\n",
			id, (long long)jint(j, "rows"), (long long)jint(j, "addresses"),
			(long long)jint(j, "duplicates"), (long long)jint(j, "invalid"),
			(long long)jint(j, "row_errors"));
		json_decref(j);
		fflush(stdout);
		return wait ? wait_job(&c, id) : 0;
	}
	if (strcmp(cmd, "status") == 0) {
		json_t *j = get_job(&c, arg);
		if (!j)
			return 1;
		if (json) {
			char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
			printf("%s\n", s);
			free(s);
		} else {
			print_job(stdout, j);
		}
		json_decref(j);
		return 0;
	}
	if (strcmp(cmd, "export") == 0) {
		char part[4096];
		FILE *f;
		path[0] = '\0';
		add_param(path, sizeof path, "format", format);
		add_param(path, sizeof path, "status", status);
		add_param(path, sizeof path, "escape_formulas", keep_formulas ? "false" : NULL);
		snprintf(part, sizeof part, "%s.part", out);
		if (!(f = fopen(part, "w"))) {
			fprintf(stderr, "emailverify: %s: %s\n", part, strerror(errno));
			return 1;
		}
		{
			char p2[4300];
			snprintf(p2, sizeof p2, "/v1/jobs/%s/results%s", arg, path);
			o = call(&c, "GET", p2, -1, f, &k);
		}
		if (fclose(f) != 0)
			k.write_failed = 1;
		if (o != 0 || k.status != 200 || k.write_failed) {
			if (o == 0 && k.status != 200)
				print_error(&k);
			else if (k.write_failed)
				fprintf(stderr, "emailverify: %s: %s\n", part, strerror(errno));
			unlink(part);
			call_free(&k);
			return 1;
		}
		call_free(&k);
		if (rename(part, out) != 0) {
			fprintf(stderr, "emailverify: %s: %s\n", out, strerror(errno));
			return 1;
		}
		fprintf(stderr, "job %s: results in %s\n", arg, out);
		return 0;
	}
	/* jobs */
	{
		json_t *j, *job;
		size_t i;
		path[0] = '\0';
		add_param(path, sizeof path, "limit", limit);
		{
			char p2[4200];
			snprintf(p2, sizeof p2, "/v1/jobs%s", path);
			j = call_json(&c, "GET", p2, -1, 200);
		}
		if (!j)
			return 1;
		if (json) {
			char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
			printf("%s\n", s);
			free(s);
		} else {
			printf("%-36s  %-10s %7s %10s  %-20s  %s\n", "ID", "STATE", "DONE%", "ROWS", "CREATED", "NAME");
			json_array_foreach (json_object_get(j, "jobs"), i, job) {
				char nm[64];
				emv_sanitize(nm, sizeof nm, jstr(job, "name"), strlen(jstr(job, "name")));
				printf("%-36s  %-10s %7.1f %10lld  %-20s  %s\n", jstr(job, "id"), jstr(job, "state"),
				       json_real_value(json_object_get(job, "percent")), (long long)jint(job, "rows"),
				       jstr(job, "created_at"), nm);
			}
		}
		json_decref(j);
		return 0;
	}
}
