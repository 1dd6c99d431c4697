/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_http.c - the coordinator's HTTP API (docs/api.md) over real HTTP (curl)
 * against the real `emailverify-coordinator serve` with its embedded Kafka
 * (librdkafka's mock cluster), a real PostgreSQL (fixture "pg", in a
 * database of its own) and a real emailverify-worker resolving through the
 * fixture "apidns" (unbound on 127.0.0.1:5401: null-MX and NXDOMAIN
 * domains, so every verdict is final without SMTP).
 *
 * A webhook receiver runs in this process on 127.0.0.1:18100; it answers
 * 500 to the first request it gets and 200 after, and the test checks the
 * HMAC signature of every request it received.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include "cluster_harness.h"
#include "pg_harness.h"
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#define PORT 18081
#define PORT_RL 18082
#define HOOK_PORT 18100
#define HOOK6_PORT 18101 /* the receiver on ::1 */
#define TLS_GOOD 18110	 /* https receivers: a certificate of the test CA for localhost/127.0.0.1/::1 */
#define TLS_WRONG 18111	 /* the test CA's, for another name (wrong.example) */
#define TLS_OTHER 18112	 /* for 127.0.0.1, from a CA the server does not know */
#define TLS_DIR RUN "/tls"
#define PORT_AF 18083	/* a server of the auth-failure test: no --webhook-allow-private, one query thread */
#define PORT_FAIR 18084 /* the fairness test's server: --max-uploads 4, --db-threads 2 */
#define DEADLINE_S "15" /* --request-timeout of the second server */
#define SECRET "s3cr3t-for-tests"
#define RUN EMV_CLUSTER_RUN "/api-run"

static char db_url[512], db_rl_url[512], dns[64], tok_acme[128], tok_other[128], tok_revoked[128];
static char base_url[64], brokers[256], pg_admin[512];
static pid_t server_pid, server_rl_pid, worker_pid, extra_pid; /* extra: a test's own server */

/* ------------------------------------------------------------------ helpers */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * curl METHOD URL with the token (NULL: none) and extra arguments; the
 * body into *body (malloc'd, NUL-terminated), the status returned.
 */
static int http(const char *method, const char *url, const char *token, const char *const *extra, char **body)
{
	const char *argv[48];
	char out[64], auth[300];
	const char *bodyfile = RUN "/body.out";
	int n = 0, rc;

	argv[n++] = "/usr/bin/curl";
	argv[n++] = "-sS";
	argv[n++] = "-m";
	argv[n++] = "60";
	argv[n++] = "-X";
	argv[n++] = method;
	argv[n++] = "-o";
	argv[n++] = bodyfile;
	argv[n++] = "-w";
	argv[n++] = "%{http_code}";
	if (token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		argv[n++] = "-H";
		argv[n++] = auth;
	}
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n++] = url;
	argv[n] = NULL;
	unlink(bodyfile);
	rc = run_argv(out, sizeof out, argv);
	if (rc != 0 && rc != 18 /* partial file: checked by the caller */)
		fail_msg("curl %s %s: exit %d", method, url, rc);
	if (body)
		*body = access(bodyfile, F_OK) == 0 ? slurp(bodyfile, NULL) : strdup("");
	return atoi(out);
}

static int get(const char *path, const char *token, char **body)
{
	char url[1024];
	snprintf(url, sizeof url, "%s%s", base_url, path);
	return http("GET", url, token, NULL, body);
}

static json_t *parse(const char *body)
{
	json_error_t e;
	json_t *j = json_loads(body, 0, &e);
	if (!j)
		fail_msg("not JSON (%s): %.300s", e.text, body);
	return j;
}

/* The body is {"error":{"code":code,"message":...}}. */
static void assert_error(const char *body, const char *code)
{
	json_t *j = parse(body), *e = json_object_get(j, "error");
	if (!e || !json_is_string(json_object_get(e, "code")) || !json_is_string(json_object_get(e, "message")))
		fail_msg("not an error body: %s", body);
	if (strcmp(json_string_value(json_object_get(e, "code")), code) != 0)
		fail_msg("error code %s, expected %s (%s)", json_string_value(json_object_get(e, "code")), code, body);
	json_decref(j);
}

/* Upload a file (raw body) with query string q; the job id into id. */
static int upload_raw(const char *file, const char *q, const char *token, char **body)
{
	char url[1024], data[600];
	const char *extra[] = { "-H", "Content-Type: text/csv", "--data-binary", data, NULL };
	snprintf(url, sizeof url, "%s/v1/jobs%s%s", base_url, q ? "?" : "", q ? q : "");
	snprintf(data, sizeof data, "@%s", file);
	return http("POST", url, token, extra, body);
}

static void job_id_of(const char *body, char *id, size_t idlen)
{
	json_t *j = parse(body);
	assert_true(json_is_string(json_object_get(j, "id")));
	snprintf(id, idlen, "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
}

/* Poll GET /v1/jobs/ID until its state is `state`; the last body kept. */
static json_t *wait_state(const char *id, const char *state, int timeout_s)
{
	char path[256];
	uint64_t t0 = now_ms();
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	for (;;) {
		char *body;
		json_t *j;
		assert_int_equal(get(path, tok_acme, &body), 200);
		j = parse(body);
		free(body);
		if (strcmp(json_string_value(json_object_get(j, "state")), state) == 0)
			return j;
		if (now_ms() - t0 > (uint64_t)timeout_s * 1000)
			fail_msg("job %s still %s after %d s", id, json_string_value(json_object_get(j, "state")),
				 timeout_s);
		json_decref(j);
		usleep(200000);
	}
}


static void stop_child(pid_t *pid)
{
	int st;
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = 0;
			return;
		}
		usleep(100000);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, &st, 0);
	*pid = 0;
}

/* Start a server; wait for its ready file; its brokers into b (if given). */
static pid_t start_server(const char *const *argv, const char *ready, const char *log, char *b, size_t blen)
{
	pid_t pid;
	unlink(ready);
	pid = spawn_logged(argv, log);
	for (int i = 0; i < 300 && access(ready, F_OK) != 0; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			fail_msg("the server exited at start; see %s", log);
		usleep(100000);
	}
	if (access(ready, F_OK) != 0)
		fail_msg("the server did not become ready in 30 s; see %s", log);
	if (b)
		env_value(ready, "brokers", b, blen);
	return pid;
}

static void token(const char *url, const char *tenant, char *out, size_t outlen)
{
	const char *argv[] = { EMV_COORDINATOR, "token", "create", "--database", url, "--tenant", tenant, NULL };
	assert_int_equal(run_argv(out, outlen, argv), 0);
	out[strcspn(out, "\n")] = '\0';
	assert_int_equal(strncmp(out, "ev_", 3), 0);
}

/* ------------------------------------------------------- webhook receiver */

struct hook {
	char event[32], signature[160], delivery[24];
	char *body;
	int status_sent;
};

static struct hook hooks[64];
static int nhooks, hook_listen = -1;
static volatile int hook_stop;
static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t hook_th;

static void header_value(const char *head, const char *name, char *out, size_t outlen)
{
	const char *p = strcasestr(head, name);
	out[0] = '\0';
	if (!p)
		return;
	p += strlen(name);
	while (*p == ' ')
		p++;
	snprintf(out, outlen, "%.*s", (int)strcspn(p, "\r\n"), p);
}

static void *hook_main(void *arg)
{
	int lfd = *(int *)arg;
	while (!hook_stop) {
		struct pollfd pfd = { lfd, POLLIN, 0 };
		char buf[65536], cl[24];
		size_t n = 0, need;
		char *end;
		int fd, status;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((fd = accept(lfd, NULL, NULL)) < 0)
			continue;
		while (n < sizeof buf - 1) {
			ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
			if (k <= 0)
				break;
			n += (size_t)k;
			buf[n] = '\0';
			if ((end = strstr(buf, "\r\n\r\n"))) {
				header_value(buf, "\r\nContent-Length:", cl, sizeof cl);
				need = (size_t)(end + 4 - buf) + (size_t)atol(cl);
				if (n >= need)
					break;
			}
		}
		buf[n] = '\0';
		pthread_mutex_lock(&hook_mu);
		status = nhooks == 0 ? 500 : 200; /* the first delivery fails: it must be retried */
		if (nhooks < 64 && (end = strstr(buf, "\r\n\r\n"))) {
			struct hook *h = &hooks[nhooks++];
			*end = '\0';
			header_value(buf, "\r\nX-Emailverify-Event:", h->event, sizeof h->event);
			header_value(buf, "\r\nX-Emailverify-Signature:", h->signature, sizeof h->signature);
			header_value(buf, "\r\nX-Emailverify-Delivery:", h->delivery, sizeof h->delivery);
			h->body = strdup(end + 4);
			h->status_sent = status;
		}
		pthread_mutex_unlock(&hook_mu);
		snprintf(buf, sizeof buf, "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", status);
		if (write(fd, buf, strlen(buf)) < 0)
			perror("hook write");
		close(fd);
	}
	return NULL;
}

static void hook_start(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(HOOK_PORT) };
	int one = 1;
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	hook_listen = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(hook_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(hook_listen, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(hook_listen, 16) != 0)
		fail_msg("webhook receiver: cannot listen on 127.0.0.1:%d: %s", HOOK_PORT, strerror(errno));
	pthread_create(&hook_th, NULL, hook_main, &hook_listen);
}

/* A second receiver on [::1]:HOOK6_PORT (same log of hooks); 0 where the
 * machine has no IPv6 loopback. */
static int hook6_listen = -1;
static pthread_t hook6_th;

static int hook6_start(void)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6,
				   .sin6_port = htons(HOOK6_PORT),
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int one = 1;
	if (hook6_listen >= 0)
		return 1;
	hook6_listen = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (hook6_listen < 0)
		return 0;
	setsockopt(hook6_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(hook6_listen, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(hook6_listen, 16) != 0) {
		close(hook6_listen);
		hook6_listen = -1;
		return 0;
	}
	pthread_create(&hook6_th, NULL, hook_main, &hook6_listen);
	return 1;
}

/*
 * HTTPS receivers: a test CA and three certificates made with the openssl
 * CLI (like tests/world/start.sh), each served by a thread of this
 * process.  A handshake the server refuses is just a closed connection
 * here; what was received is logged in hooks[] with status 200.
 */
static void make_certs(void)
{
	const char *script =
		"set -e; mkdir -p " TLS_DIR "; cd " TLS_DIR "; exec >openssl.out 2>&1\n"
		"ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $1.key "
		"-out $1.pem -days 2 -subj /CN=$1; }\n"
		"leaf() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $1.key -out $1.csr "
		"-subj /CN=$1; printf 'subjectAltName=%s\\nbasicConstraints=CA:FALSE\\n' \"$2\" >$1.ext; "
		"openssl x509 -req -in $1.csr -CA $3.pem -CAkey $3.key -CAcreateserial -days 2 -extfile $1.ext -out $1.pem; }\n"
		"ca emv-test-ca; ca emv-other-ca\n"
		"leaf good 'DNS:localhost,IP:127.0.0.1,IP:::1' emv-test-ca\n"
		"leaf wrong 'DNS:wrong.example' emv-test-ca\n"
		"leaf other 'DNS:localhost,IP:127.0.0.1' emv-other-ca\n";
	FILE *f = fopen(RUN "/certs.sh", "w");
	assert_non_null(f);
	fputs(script, f);
	fclose(f);
	if (system("bash " RUN "/certs.sh") != 0)
		fail_msg("making the test certificates failed; see " TLS_DIR "/openssl.out");
}

struct tls_hook {
	SSL_CTX *ctx;
	int fd;
	pthread_t th;
};

static struct tls_hook tls_hooks[4];
static int ntls_hooks;

static void *tls_hook_main(void *arg)
{
	struct tls_hook *t = arg;
	while (!hook_stop) {
		struct pollfd pfd = { t->fd, POLLIN, 0 };
		char buf[65536], cl[24], *end;
		size_t n = 0, need;
		SSL *ssl;
		int fd;
		struct timeval tv = { 5, 0 };
		if (poll(&pfd, 1, 100) <= 0 || (fd = accept(t->fd, NULL, NULL)) < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		ssl = SSL_new(t->ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1) {
			while (n < sizeof buf - 1) {
				int k = SSL_read(ssl, buf + n, (int)(sizeof buf - 1 - n));
				if (k <= 0)
					break;
				n += (size_t)k;
				buf[n] = '\0';
				if ((end = strstr(buf, "\r\n\r\n"))) {
					header_value(buf, "\r\nContent-Length:", cl, sizeof cl);
					need = (size_t)(end + 4 - buf) + (size_t)atol(cl);
					if (n >= need)
						break;
				}
			}
			buf[n] = '\0';
			pthread_mutex_lock(&hook_mu);
			if (nhooks < 64 && (end = strstr(buf, "\r\n\r\n"))) {
				struct hook *h = &hooks[nhooks++];
				*end = '\0';
				header_value(buf, "\r\nX-Emailverify-Event:", h->event, sizeof h->event);
				header_value(buf, "\r\nX-Emailverify-Signature:", h->signature, sizeof h->signature);
				header_value(buf, "\r\nX-Emailverify-Delivery:", h->delivery, sizeof h->delivery);
				h->body = strdup(end + 4);
				h->status_sent = 200;
			}
			pthread_mutex_unlock(&hook_mu);
			snprintf(buf, sizeof buf,
				 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
			SSL_write(ssl, buf, (int)strlen(buf));
			SSL_shutdown(ssl);
		}
		SSL_free(ssl);
		close(fd);
	}
	return NULL;
}

/* A receiver on addr:port with certificate `name` (TLS_DIR/name.pem); 0
 * when that address cannot be bound (no IPv6 loopback). */
static int tls_hook_start(int family, int port, const char *name)
{
	struct tls_hook *t = &tls_hooks[ntls_hooks];
	struct sockaddr_storage ss;
	socklen_t sl;
	char cert[256], key[256];
	int one = 1;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET6) {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
		sa->sin6_family = AF_INET6;
		sa->sin6_port = htons((uint16_t)port);
		sa->sin6_addr = in6addr_loopback;
		sl = sizeof *sa;
	} else {
		struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
		sa->sin_family = AF_INET;
		sa->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, "127.0.0.1", &sa->sin_addr);
		sl = sizeof *sa;
	}
	t->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t->fd < 0)
		return 0;
	setsockopt(t->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(t->fd, (struct sockaddr *)&ss, sl) != 0 || listen(t->fd, 16) != 0) {
		close(t->fd);
		if (family == AF_INET6)
			return 0;
		fail_msg("TLS receiver: cannot listen on port %d: %s", port, strerror(errno));
	}
	snprintf(cert, sizeof cert, TLS_DIR "/%s.pem", name);
	snprintf(key, sizeof key, TLS_DIR "/%s.key", name);
	t->ctx = SSL_CTX_new(TLS_server_method());
	if (SSL_CTX_use_certificate_file(t->ctx, cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1)
		fail_msg("TLS receiver: cannot load %s", cert);
	pthread_create(&t->th, NULL, tls_hook_main, t);
	ntls_hooks++;
	return 1;
}

/* The signature header is t=<unix>,v1=<hex HMAC-SHA256(secret, t "." body)>. */
static void assert_signature(const struct hook *h, const char *secret)
{
	unsigned char mac[32];
	unsigned int len = 32;
	char t[24], hex[65], *msg;
	const char *v1;
	long long ts;
	assert_int_equal(strncmp(h->signature, "t=", 2), 0);
	ts = atoll(h->signature + 2);
	assert_true(llabs(ts - (long long)time(NULL)) < 120);
	v1 = strstr(h->signature, ",v1=");
	assert_non_null(v1);
	snprintf(t, sizeof t, "%lld", ts);
	msg = malloc(strlen(t) + 1 + strlen(h->body) + 1);
	sprintf(msg, "%s.%s", t, h->body);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, strlen(msg), mac, &len);
	free(msg);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	if (strcmp(v1 + 4, hex) != 0)
		fail_msg("webhook signature %s does not match the body (expected v1=%s)", h->signature, hex);
}

/* Wait for a webhook of job `id` with event `event`; its index. */
static int wait_hook(const char *id, const char *event, int status, int timeout_s)
{
	uint64_t t0 = now_ms();
	for (;;) {
		pthread_mutex_lock(&hook_mu);
		for (int i = 0; i < nhooks; i++)
			if (strcmp(hooks[i].event, event) == 0 && hooks[i].status_sent == status &&
			    strstr(hooks[i].body, id)) {
				pthread_mutex_unlock(&hook_mu);
				return i;
			}
		pthread_mutex_unlock(&hook_mu);
		if (now_ms() - t0 > (uint64_t)timeout_s * 1000)
			fail_msg("no %s webhook answered %d for job %s in %d s", event, status, id, timeout_s);
		usleep(100000);
	}
}

/* --------------------------------------------------------------- fixtures */

static void fresh_db(const char *admin, const char *name, const char *pg_url, char *url, size_t urllen)
{
	PGconn *c = PQconnectdb(admin);
	char sql[256];
	PGresult *r;
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("%s: %s", admin, PQerrorMessage(c));
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
	PQclear(PQexec(c, sql));
	snprintf(sql, sizeof sql, "CREATE DATABASE %s OWNER emailverify", name);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	/* same server and role, the other database */
	snprintf(url, urllen, "%.*s/%s", (int)(strrchr(pg_url, '/') - pg_url), pg_url, name);
}

static int setup(void **state)
{
	char admin[512], pg_url[512], out[256], listen[32], listen_rl[32];
	mkdir(RUN, 0755);
	env_value(EMV_CLUSTER_RUN "/pg-run/pg.env", "EMV_PG_URL", pg_url, sizeof pg_url);
	env_value(EMV_CLUSTER_RUN "/pg-run/pg.env", "EMV_PG_ADMIN_URL", admin, sizeof admin);
	snprintf(pg_admin, sizeof pg_admin, "%s", admin);
	env_value(EMV_CLUSTER_RUN "/apidns-run/apidns.env", "EMV_APIDNS", dns, sizeof dns);
	fresh_db(admin, "emv_api", pg_url, db_url, sizeof db_url);
	fresh_db(admin, "emv_api_rl", pg_url, db_rl_url, sizeof db_rl_url);
	token(db_url, "acme", tok_acme, sizeof tok_acme);
	token(db_url, "other", tok_other, sizeof tok_other);
	token(db_url, "acme", tok_revoked, sizeof tok_revoked);
	{
		const char *argv[] = { EMV_COORDINATOR, "token", "revoke", "--database", db_url, "3", NULL };
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
	}
	hook_start();
	make_certs();
	snprintf(listen, sizeof listen, "127.0.0.1:%d", PORT);
	snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", PORT);
	{
		const char *argv[] = { EMV_COORDINATOR,
				       "serve",
				       "--listen",
				       listen,
				       "--database",
				       db_url,
				       "--embedded-kafka",
				       "--ready-file",
				       RUN "/ready",
				       "--max-upload",
				       "200000",
				       "--max-rows",
				       "20000",
				       "--max-decompressed",
				       "2000000",
				       "--webhook-allow-private",
				       "--webhook-allow-http",
				       "--webhook-ca",
				       TLS_DIR "/emv-test-ca.pem",
				       "--webhook-progress",
				       "50",
				       "--webhook-backoff",
				       "300",
				       "--webhook-attempts",
				       "4",
				       "--batch-max",
				       "3",
				       "--rate-limit",
				       "1000",
				       "--rate-burst",
				       "1000",
				       NULL };
		server_pid = start_server(argv, RUN "/ready", RUN "/server.log", brokers, sizeof brokers);
	}
	snprintf(listen_rl, sizeof listen_rl, "127.0.0.1:%d", PORT_RL);
	{
		const char *argv[] = { EMV_COORDINATOR,
				       "serve",
				       "--listen",
				       listen_rl,
				       "--database",
				       db_rl_url,
				       "--embedded-kafka",
				       "--ready-file",
				       RUN "/ready-rl",
				       "--rate-limit",
				       "2",
				       "--rate-burst",
				       "4",
				       "--no-sink",
				       "--request-timeout",
				       DEADLINE_S,
				       NULL };
		server_rl_pid = start_server(argv, RUN "/ready-rl", RUN "/server-rl.log", NULL, 0);
	}
	return 0;
}

static int teardown(void **state)
{
	stop_child(&worker_pid);
	stop_child(&extra_pid); /* a test that failed left it */
	stop_child(&server_pid);
	stop_child(&server_rl_pid);
	hook_stop = 1;
	if (hook_listen >= 0) {
		pthread_join(hook_th, NULL);
		close(hook_listen);
	}
	if (hook6_listen >= 0) {
		pthread_join(hook6_th, NULL);
		close(hook6_listen);
	}
	for (int i = 0; i < ntls_hooks; i++) {
		pthread_join(tls_hooks[i].th, NULL);
		close(tls_hooks[i].fd);
		SSL_CTX_free(tls_hooks[i].ctx);
	}
	return 0;
}

static void start_worker(void)
{
	const char *argv[] = { EMV_WORKER,
			       "--brokers",
			       brokers,
			       "--name",
			       "api-test",
			       "--dns",
			       dns,
			       "--preflight-domains",
			       "nullmx.api.test",
			       "--allow-private-mx",
			       "--timeout",
			       "5",
			       "--session-timeout",
			       "6000",
			       NULL };
	if (!worker_pid)
		worker_pid = spawn_logged(argv, RUN "/worker.log");
}

/* ------------------------------------------------------------------ tests */

/* No token, a malformed header, an unknown token, a revoked one: 401 with
 * a JSON error, on every endpoint that needs a token; health needs none. */
static void do_test_auth(void **state)
{
	char *body, url[256];
	const char *bad_scheme[] = { "-H", "Authorization: Basic dXNlcjpwYXNz", NULL };
	const char *const paths[] = { "/v1/jobs", "/v1/jobs/0b5d3c1e-0000-4000-8000-000000000000",
				      "/v1/jobs/0b5d3c1e-0000-4000-8000-000000000000/results" };

	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		assert_int_equal(get(paths[i], NULL, &body), 401);
		assert_error(body, "unauthorized");
		free(body);
		assert_int_equal(get(paths[i], "ev_not-a-real-token", &body), 401);
		assert_error(body, "unauthorized");
		free(body);
		assert_int_equal(get(paths[i], tok_revoked, &body), 401);
		assert_error(body, "unauthorized");
		free(body);
	}
	snprintf(url, sizeof url, "%s/v1/jobs", base_url);
	assert_int_equal(http("GET", url, NULL, bad_scheme, &body), 401);
	assert_error(body, "unauthorized");
	free(body);
	assert_int_equal(http("POST", url, "ev_wrong", NULL, &body), 401);
	assert_error(body, "unauthorized");
	free(body);
	assert_int_equal(get("/v1/jobs", tok_acme, &body), 200);
	free(body);
	assert_int_equal(get("/healthz", NULL, &body), 200);
	free(body);
	assert_int_equal(get("/nope", tok_acme, &body), 404);
	assert_error(body, "not_found");
	free(body);
	assert_int_equal(http("PUT", url, tok_acme, NULL, &body), 405);
	assert_error(body, "method_not_allowed");
	free(body);
}

/*
 * Upload (multipart, with a name and a callback) -> progress -> done ->
 * export, with SQL-looking text stored and exported verbatim, and the
 * webhooks: a progress one at 50 % (the unusable half is final at once;
 * the worker is not running yet), refused once by the receiver and
 * retried, then the completion one; every attempt signed and recorded.
 */
static void do_test_round_trip(void **state)
{
	const char *list = RUN "/round.csv";
	char *body, id[64], url[512], path[256], f1[600], f2[300], f3[300], f4[300];
	json_t *j, *counts, *reasons;
	int h;

	test_write_file(list, "email,note\n"
			      "a1@nullmx.api.test,first\n"
			      "o'brien@nullmx.api.test,\"'; DROP TABLE results; --\"\n"
			      "bad address,x\n"
			      "x@nothere.api.test,\"Robert'); DROP TABLE jobs;--\"\n"
			      "\"'; DELETE FROM addresses; --\"@nullmx.api.test,quoted local part\n"
			      "also bad,y\n"
			      "a1@NULLMX.api.test,dup of row 1 (domain case)\n"
			      "still bad,z\n"
			      "no at sign,w\n"
			      "again bad,v\n");
	snprintf(url, sizeof url, "%s/v1/jobs", base_url);
	snprintf(f1, sizeof f1, "file=@%s;type=text/csv", list);
	snprintf(f2, sizeof f2, "name='; DROP TABLE jobs; --");
	snprintf(f3, sizeof f3, "callback_url=http://127.0.0.1:%d/hooks/emv?x=1", HOOK_PORT);
	snprintf(f4, sizeof f4, "callback_secret=%s", SECRET);
	{
		/* --form-string: curl reads ';' in -F values as its own syntax */
		const char *extra[] = { "-F", f1, "--form-string", f2, "--form-string", f3, "--form-string", f4, NULL };
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 201);
	}
	j = parse(body);
	free(body);
	snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
	assert_string_equal(json_string_value(json_object_get(j, "name")), "'; DROP TABLE jobs; --");
	assert_int_equal(json_integer_value(json_object_get(j, "rows")), 10);
	assert_int_equal(json_integer_value(json_object_get(j, "addresses")), 4);
	assert_int_equal(json_integer_value(json_object_get(j, "duplicates")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "invalid")), 5);
	assert_true(json_is_true(json_object_get(j, "callback")));
	json_decref(j);

	/* split (no worker yet): 5 of 9 rows final = 55 % -> the 50 % webhook,
	 * refused once (500) and delivered on the retry */
	j = wait_state(id, "running", 30);
	assert_int_equal(json_integer_value(json_object_get(j, "done")), 5);
	assert_int_equal(json_integer_value(json_object_get(j, "total")), 9);
	assert_true(json_real_value(json_object_get(j, "percent")) > 55 &&
		    json_real_value(json_object_get(j, "percent")) < 56);
	json_decref(j);
	wait_hook(id, "job.progress", 500, 15);
	h = wait_hook(id, "job.progress", 200, 15);
	assert_signature(&hooks[h], SECRET);
	j = parse(hooks[h].body);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "job"), "percent")), 50);
	json_decref(j);

	/* a retry waits (a temporary verdict, stored as a worker's sink stores
	 * it) while a provider throttles our source addresses: the status says
	 * both; the cached counts are refreshed after 2 s */
	{
		PGconn *c = PQconnectdb(db_url);
		const char *v[1] = { id };
		PGresult *r = PQexecParams(c,
					   "INSERT INTO results (job_id, address_id, status, reason, final) "
					   "SELECT job_id, id, 'unknown', 'greylisted', false FROM addresses a "
					   "WHERE job_id = $1 AND NOT EXISTS (SELECT 1 FROM results r WHERE "
					   "r.job_id = a.job_id AND r.address_id = a.id) ORDER BY id LIMIT 1",
					   1, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(r), "1") != 0)
			fail_msg("a waiting result: %s", PQresultErrorMessage(r));
		PQclear(r);
		r = PQexec(c, "INSERT INTO ip_state (ip, provider, region, state, until, since) VALUES "
			      "('192.0.2.99', 'yahoo', 'eu-west', 'throttled', now() + interval '10 min', now())");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			fail_msg("ip_state: %s", PQresultErrorMessage(r));
		PQclear(r);
		sleep(3);
		j = wait_state(id, "running", 10);
		assert_int_equal(json_integer_value(json_object_get(j, "retries_waiting")), 1);
		assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "waiting"), "greylisted")), 1);
		assert_string_equal(json_string_value(json_object_get(json_object_get(j, "bottleneck"), "provider")),
				    "yahoo");
		/* a temporary verdict is no final count */
		assert_null(json_object_get(json_object_get(j, "reasons"), "unknown"));
		json_decref(j);
		PQclear(PQexecParams(c, "DELETE FROM results WHERE job_id = $1 AND NOT final", 1, NULL, v, NULL, NULL,
				     0));
		PQclear(PQexec(c, "DELETE FROM ip_state WHERE ip = '192.0.2.99'"));
		PQfinish(c);
	}

	/* the worker verifies the rest: null MX and NXDOMAIN, final at once */
	start_worker();
	j = wait_state(id, "done", 90);
	assert_int_equal(json_integer_value(json_object_get(j, "done")), 9);
	assert_true(json_real_value(json_object_get(j, "percent")) == 100.0);
	assert_int_equal(json_integer_value(json_object_get(j, "eta_s")), 0);
	assert_true(json_is_string(json_object_get(j, "finished_at")));
	counts = json_object_get(j, "counts");
	assert_int_equal(json_integer_value(json_object_get(counts, "undeliverable")), 9);
	assert_int_equal(json_integer_value(json_object_get(counts, "deliverable")), 0);
	reasons = json_object_get(json_object_get(j, "reasons"), "undeliverable");
	assert_int_equal(json_integer_value(json_object_get(reasons, "invalid_syntax")), 5);
	assert_int_equal(json_integer_value(json_object_get(reasons, "null_mx")), 3);
	assert_int_equal(json_integer_value(json_object_get(reasons, "no_domain")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "retries_waiting")), 0);
	assert_null(json_object_get(j, "bottleneck"));
	json_decref(j);

	h = wait_hook(id, "job.completed", 200, 15);
	assert_signature(&hooks[h], SECRET);
	j = parse(hooks[h].body);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "job"), "state")), "done");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "job"), "name")),
			    "'; DROP TABLE jobs; --");
	json_decref(j);
	{
		char sql[512];
		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM webhook_deliveries WHERE job_id = '%s' AND state = "
			 "'delivered'",
			 id);
		assert_int_equal(pg_long(db_url, "%s", sql), 2);
		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON "
			 "d.id = a.delivery_id WHERE d.job_id = '%s' AND d.event = 'job.progress'",
			 id);
		assert_int_equal(pg_long(db_url, "%s", sql), 2);
		snprintf(sql, sizeof sql,
			 "SELECT http_status FROM webhook_attempts a JOIN webhook_deliveries d ON "
			 "d.id = a.delivery_id WHERE d.job_id = '%s' AND d.event = 'job.progress' "
			 "AND a.attempt = 1",
			 id);
		assert_int_equal(pg_long(db_url, "%s", sql), 500);
	}

	/* the export, in input order, the SQL-looking text verbatim */
	snprintf(path, sizeof path, "/v1/jobs/%s/results", id);
	assert_int_equal(get(path, tok_acme, &body), 200);
	{
		const char *expect[] = {
			"a1@nullmx.api.test,undeliverable,null_mx,",
			"o'brien@nullmx.api.test,undeliverable,null_mx,",
			"bad address,undeliverable,invalid_syntax,",
			"x@nothere.api.test,undeliverable,no_domain,",
			"\"\"\"'; DELETE FROM addresses; --\"\"@nullmx.api.test\",undeliverable,null_mx,",
			"also bad,undeliverable,invalid_syntax,",
			"a1@nullmx.api.test,undeliverable,null_mx,",
		};
		char *save, *line = strtok_r(body, "\n", &save);
		assert_int_equal(strncmp(line, "email,status,reason,", 20), 0);
		for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
			line = strtok_r(NULL, "\n", &save);
			assert_non_null(line);
			if (strncmp(line, expect[i], strlen(expect[i])) != 0)
				fail_msg("export row %zu: expected '%s...', got '%s'", i + 1, expect[i], line);
			if (i == 1)
				assert_non_null(strstr(line, "\"o'brien@nullmx.api.test,'; DROP TABLE results; --\""));
			if (i == 3)
				assert_non_null(strstr(line, "\"x@nothere.api.test,Robert'); DROP TABLE jobs;--\""));
		}
		free(body);
	}
	snprintf(path, sizeof path, "/v1/jobs/%s/results?format=jsonl&status=undeliverable", id);
	assert_int_equal(get(path, tok_acme, &body), 200);
	{
		int n = 0;
		char *save;
		for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
			json_t *r = parse(line);
			assert_string_equal(json_string_value(json_object_get(r, "status")), "undeliverable");
			if (n == 4)
				assert_string_equal(json_string_value(json_object_get(r, "email")),
						    "\"'; DELETE FROM addresses; --\"@nullmx.api.test");
			json_decref(r);
		}
		assert_int_equal(n, 10);
		free(body);
	}
	snprintf(path, sizeof path, "/v1/jobs/%s/results?status=deliverable", id);
	assert_int_equal(get(path, tok_acme, &body), 200);
	assert_int_equal((int)strlen(body), (int)strcspn(body, "\n") + 1); /* only the header */
	free(body);
	snprintf(path, sizeof path, "/v1/jobs/%s/results?format=xml", id);
	assert_int_equal(get(path, tok_acme, &body), 400);
	assert_error(body, "bad_query");
	free(body);
	snprintf(path, sizeof path, "/v1/jobs/%s/results?status=great", id);
	assert_int_equal(get(path, tok_acme, &body), 400);
	assert_error(body, "bad_query");
	free(body);
	/* the tables the input talked about are all still there */
	assert_int_equal(pg_long(db_url, "%s",
				 "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
				 "'public' AND table_name IN ('jobs', 'addresses', 'results')"),
			 3);
}

/* Another tenant's job does not exist for them: 404 on every endpoint, not
 * in their list; its owner still has it. */
static void do_test_tenant_isolation(void **state)
{
	const char *list = RUN "/tenant.csv";
	char *body, id[64], path[256], url[256];
	test_write_file(list, "email\nt1@nullmx.api.test\n");
	assert_int_equal(upload_raw(list, "name=mine", tok_acme, &body), 201);
	job_id_of(body, id, sizeof id);
	free(body);
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	assert_int_equal(get(path, tok_other, &body), 404);
	assert_error(body, "not_found");
	free(body);
	snprintf(path, sizeof path, "/v1/jobs/%s/results", id);
	assert_int_equal(get(path, tok_other, &body), 404);
	assert_error(body, "not_found");
	free(body);
	snprintf(path, sizeof path, "/v1/jobs/%s/rows", id);
	assert_int_equal(get(path, tok_other, &body), 404);
	assert_error(body, "not_found");
	free(body);
	snprintf(url, sizeof url, "%s/v1/jobs/%s", base_url, id);
	assert_int_equal(http("DELETE", url, tok_other, NULL, &body), 404);
	assert_error(body, "not_found");
	free(body);
	assert_int_equal(get("/v1/jobs", tok_other, &body), 200);
	assert_null(strstr(body, id));
	free(body);
	assert_int_equal(get("/v1/jobs?limit=1000", tok_acme, &body), 200);
	assert_non_null(strstr(body, id));
	free(body);
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	assert_int_equal(get(path, tok_acme, &body), 200);
	free(body);
}

/* Paging: newest first, `next` leads to the rest, no job twice. */
static void do_test_list_paging(void **state)
{
	const char *list = RUN "/page.csv";
	char *body, path[256], seen[8][64];
	int n = 0;
	test_write_file(list, "p@nothere.api.test\n");
	for (int i = 0; i < 3; i++) {
		assert_int_equal(upload_raw(list, NULL, tok_other, &body), 201);
		free(body);
	}
	snprintf(path, sizeof path, "/v1/jobs?limit=2");
	for (int page = 0; page < 4; page++) {
		json_t *j, *next;
		size_t i;
		json_t *job;
		assert_int_equal(get(path, tok_other, &body), 200);
		j = parse(body);
		free(body);
		json_array_foreach (json_object_get(j, "jobs"), i, job) {
			for (int k = 0; k < n; k++)
				assert_string_not_equal(seen[k], json_string_value(json_object_get(job, "id")));
			snprintf(seen[n++], sizeof seen[0], "%s", json_string_value(json_object_get(job, "id")));
		}
		next = json_object_get(j, "next");
		if (json_is_null(next)) {
			json_decref(j);
			break;
		}
		snprintf(path, sizeof path, "/v1/jobs?limit=2&after=%s", json_string_value(next));
		json_decref(j);
	}
	assert_int_equal(n, 3);
	assert_int_equal(get("/v1/jobs?limit=0", tok_other, &body), 400);
	assert_error(body, "bad_query");
	free(body);
}

/* Unusable uploads: 400 saying why; a list over the limit: 413; the
 * server goes on serving. */
static void do_test_bad_uploads(void **state)
{
	char *body, url[256], data[256];
	const char *bin = RUN "/bin.dat", *noemail = RUN "/noemail.csv", *empty = RUN "/empty.csv";
	const char *over = RUN "/over.csv", *huge = RUN "/huge.csv";
	snprintf(url, sizeof url, "%s/v1/jobs", base_url);

	{
		FILE *f = fopen(bin, "wb");
		for (int i = 0; i < 4096; i++)
			fputc(i % 7 == 0 ? 0 : 'a' + i % 26, f);
		fclose(f);
	}
	assert_int_equal(upload_raw(bin, NULL, tok_acme, &body), 400);
	assert_error(body, "unusable_file");
	assert_non_null(strstr(body, "binary"));
	free(body);
	test_write_file(noemail, "name,phone\nbob,123\nalice,456\n");
	assert_int_equal(upload_raw(noemail, NULL, tok_acme, &body), 400);
	assert_error(body, "unusable_file");
	assert_non_null(strstr(body, "no email column"));
	free(body);
	test_write_file(empty, "");
	assert_int_equal(upload_raw(empty, NULL, tok_acme, &body), 400);
	assert_error(body, "unusable_file");
	free(body);

	/* malformed multipart: no closing boundary, no list part, no boundary */
	{
		const char *extra[] = {
			"-H", "Content-Type: multipart/form-data; boundary=XyZ", "--data-binary",
			"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\n"
			"email\na@nullmx.api.test\n",
			NULL
		};
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 400);
		assert_error(body, "bad_multipart");
		free(body);
	}
	{
		const char *extra[] = {
			"-H", "Content-Type: multipart/form-data; boundary=XyZ", "--data-binary",
			"--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--XyZ--\r\n", NULL
		};
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 400);
		assert_error(body, "bad_multipart");
		assert_non_null(strstr(body, "file"));
		free(body);
	}
	{
		const char *extra[] = { "-H", "Content-Type: multipart/form-data", "--data-binary", "email\n", NULL };
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 400);
		assert_error(body, "bad_multipart");
		free(body);
	}
	{
		const char *extra[] = { "-H", "Content-Type: multipart/form-data; boundary=XyZ", "--data-binary",
					"--XyZ\r\nno blank line after the headers", NULL };
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 400);
		assert_error(body, "bad_multipart");
		free(body);
	}
	/* a callback without a secret, and one that is not http:// */
	{
		char q[256];
		test_write_file(RUN "/ok.csv", "email\nq@nullmx.api.test\n");
		snprintf(q, sizeof q, "callback_url=http://127.0.0.1:%d/", HOOK_PORT);
		assert_int_equal(upload_raw(RUN "/ok.csv", q, tok_acme, &body), 400);
		assert_error(body, "bad_parameter");
		free(body);
		assert_int_equal(upload_raw(RUN "/ok.csv", "callback_url=ftp://x/&callback_secret=s", tok_acme, &body),
				 400);
		assert_error(body, "bad_parameter");
		free(body);
	}
	{
		/* the verdict policy: a preset by name (docs/policy.md), kept by the job */
		char id[64];
		json_t *j;
		test_write_file(RUN "/ok.csv", "email\nq@nullmx.api.test\n");
		assert_int_equal(upload_raw(RUN "/ok.csv", "policy=lenient", tok_acme, &body), 400);
		assert_error(body, "bad_parameter");
		assert_non_null(strstr(body, "marketing or transactional"));
		free(body);
		assert_int_equal(upload_raw(RUN "/ok.csv", "policy=transactional", tok_acme, &body), 201);
		job_id_of(body, id, sizeof id);
		free(body);
		j = wait_state(id, "done", 60);
		assert_string_equal(json_string_value(json_object_get(j, "policy")), "transactional");
		assert_int_equal(json_integer_value(json_object_get(j, "safe_to_send")), 0);
		json_decref(j);
	}
	/* a CSV with a broken row is usable: the row is kept with its error */
	test_write_file(RUN "/rowerr.csv", "email,n\nr1@nullmx.api.test,1\n\"r2@nullmx.api.test,2\n");
	assert_int_equal(upload_raw(RUN "/rowerr.csv", NULL, tok_acme, &body), 201);
	{
		json_t *j = parse(body);
		assert_int_equal(json_integer_value(json_object_get(j, "row_errors")), 1);
		json_decref(j);
	}
	free(body);

	/* over the 200000-byte limit by a little (our JSON 413) and by a lot
	 * (evhttp's own 413 before the body is read) */
	{
		FILE *f = fopen(over, "w");
		fputs("email\n", f);
		for (int i = 0; ftell(f) < 200100; i++)
			fprintf(f, "user%06d@nullmx.api.test\n", i);
		fclose(f);
		f = fopen(huge, "w");
		fputs("email\n", f);
		for (int i = 0; ftell(f) < 2000000; i++)
			fprintf(f, "user%07d@nullmx.api.test\n", i);
		fclose(f);
	}
	assert_int_equal(upload_raw(over, NULL, tok_acme, &body), 413);
	assert_error(body, "too_large");
	free(body);
	snprintf(data, sizeof data, "@%s", huge);
	{
		const char *extra[] = { "--data-binary", data, NULL };
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 413);
		free(body);
	}
	assert_int_equal(get("/v1/jobs", tok_acme, &body), 200);
	free(body);
}

static int slow_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		fail_msg("connect: %s", strerror(errno));
	return fd;
}

/* Twenty clients trickling an upload (and one trickling its headers) do
 * not hold up anyone else: a status request and a whole upload complete
 * at once meanwhile. */
static void do_test_slowloris(void **state)
{
	int fds[21];
	char head[512], *body;
	uint64_t t0;
	snprintf(head, sizeof head,
		 "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\n"
		 "Content-Length: 100000\r\n\r\nemail\n",
		 tok_acme);
	for (int i = 0; i < 20; i++) {
		fds[i] = slow_connect();
		assert_true(write(fds[i], head, strlen(head)) > 0);
	}
	fds[20] = slow_connect();
	assert_true(write(fds[20], "GET /v1/jobs HTTP/1.1\r\nHo", 25) == 25);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 20; i++)
			assert_true(write(fds[i], "a@nullmx.api.test\n", 18) == 18);
		t0 = now_ms();
		assert_int_equal(get("/v1/jobs?limit=5", tok_acme, &body), 200);
		free(body);
		if (now_ms() - t0 > 2000)
			fail_msg("a status request took %llu ms beside 21 slow clients",
				 (unsigned long long)(now_ms() - t0));
	}
	test_write_file(RUN "/beside.csv", "email\nbeside@nullmx.api.test\n");
	t0 = now_ms();
	assert_int_equal(upload_raw(RUN "/beside.csv", NULL, tok_acme, &body), 201);
	free(body);
	assert_true(now_ms() - t0 < 5000);
	for (int i = 0; i < 21; i++)
		close(fds[i]);
	assert_int_equal(get("/healthz", NULL, &body), 200);
	free(body);
}

/* DELETE cancels the job and removes every row it had. */
static void do_test_delete(void **state)
{
	const char *list = RUN "/delete.csv";
	char *body, id[64], url[256], sql[512];
	json_t *j;
	test_write_file(list, "email\nd1@nullmx.api.test\nd2@nothere.api.test\nbad one\n");
	{
		char q[256];
		snprintf(q, sizeof q, "name=doomed&callback_url=http://127.0.0.1:%d/d&callback_secret=x", HOOK_PORT);
		assert_int_equal(upload_raw(list, q, tok_acme, &body), 201);
	}
	job_id_of(body, id, sizeof id);
	free(body);
	start_worker();
	j = wait_state(id, "done", 90);
	json_decref(j);
	snprintf(sql, sizeof sql,
		 "SELECT (SELECT count(*) FROM addresses WHERE job_id = '%s') + "
		 "(SELECT count(*) FROM results WHERE job_id = '%s')",
		 id, id);
	assert_int_equal(pg_long(db_url, "%s", sql), 6);
	snprintf(url, sizeof url, "%s/v1/jobs/%s", base_url, id);
	assert_int_equal(http("DELETE", url, tok_acme, NULL, &body), 200);
	j = parse(body);
	assert_true(json_is_true(json_object_get(j, "deleted")));
	json_decref(j);
	free(body);
	snprintf(sql, sizeof sql,
		 "SELECT (SELECT count(*) FROM jobs WHERE id = '%s') + "
		 "(SELECT count(*) FROM addresses WHERE job_id = '%s') + "
		 "(SELECT count(*) FROM results WHERE job_id = '%s') + "
		 "(SELECT count(*) FROM webhook_deliveries WHERE job_id = '%s')",
		 id, id, id, id);
	assert_int_equal(pg_long(db_url, "%s", sql), 0);
	assert_int_equal(http("GET", url, tok_acme, NULL, &body), 404);
	assert_error(body, "not_found");
	free(body);
	assert_int_equal(http("DELETE", url, tok_acme, NULL, &body), 404);
	assert_error(body, "not_found");
	free(body);
}

/* ---------------------------------------------------------------- forget */

static void pg_exec(const char *url, const char *sql);

/* A verdict cache row as the sink would store it, with known values: the
 * sink may have stored this address's entry already (the job's verdicts),
 * so this one replaces it. */
static void cache_row(const char *scope, const char *address, const char *tenant, const char *job)
{
	char sql[1280];
	snprintf(sql, sizeof sql,
		 "INSERT INTO verdict_cache (scope, address, status, reason, reply, verified_at, tenant, job_id) "
		 "VALUES ('%s', '%s', 'undeliverable', 'null_mx', '550 <%s> no', now(), '%s', %s%s%s) "
		 "ON CONFLICT (scope, address) DO UPDATE SET status = excluded.status, reason = excluded.reason, "
		 "reply = excluded.reply, verified_at = excluded.verified_at, tenant = excluded.tenant, "
		 "job_id = excluded.job_id",
		 scope, address, address, tenant, job ? "'" : "", job ? job : "NULL", job ? "'" : "");
	pg_exec(db_url, sql);
}

static long cache_rows(const char *scope, const char *address)
{
	return pg_long(db_url, "SELECT count(*) FROM verdict_cache WHERE scope = '%s' AND address = '%s'", scope,
		       address);
}

static int forget_http(const char *token, const char *json, char **body)
{
	char url[256];
	const char *extra[] = { "-H", "Content-Type: application/json", "--data-binary", json, NULL };
	snprintf(url, sizeof url, "%s/v1/forget", base_url);
	return http("POST", url, token, extra, body);
}

/*
 * POST /v1/forget: the tenant's cache entry and the global one go, the
 * tenant's job rows are redacted (counts stay), another tenant's entry
 * stays and another tenant cannot reach it; a bad address is 400 naming
 * the field; `emailverify forget` is its client.  DELETE of a job takes
 * the cache entries it made.
 */
static void do_test_forget(void **state)
{
	const char *list = RUN "/forget.csv", *me = "forget.me@nullmx.api.test";
	char *body, id[64], url[256], out[4096];
	json_t *j;
	long rows_before;

	test_write_file(list, "email\nforget.me@nullmx.api.test\nkeep@nullmx.api.test\nforget.me@NullMX.api.test\n");
	assert_int_equal(upload_raw(list, "name=forget", tok_acme, &body), 201);
	job_id_of(body, id, sizeof id);
	free(body);
	start_worker();
	json_decref(wait_state(id, "done", 90));
	rows_before = pg_long(db_url, "SELECT n_final FROM jobs WHERE id = '%s'", id);
	cache_row("acme", me, "acme", id);
	cache_row("*", me, "acme", id);
	cache_row("other", me, "other", NULL);
	cache_row("acme", "keep@nullmx.api.test", "acme", id);

	/* bad requests: a bad address names the field; no token is 401 */
	assert_int_equal(forget_http(tok_acme, "{\"email\": \"not an address\"}", &body), 400);
	assert_error(body, "bad_request");
	assert_non_null(strstr(body, "\\\"email\\\""));
	free(body);
	assert_int_equal(forget_http(tok_acme, "{\"mail\": \"x@y.test\"}", &body), 400);
	assert_non_null(strstr(body, "email"));
	free(body);
	assert_int_equal(forget_http(NULL, "{\"email\": \"forget.me@nullmx.api.test\"}", &body), 401);
	free(body);
	assert_int_equal(cache_rows("acme", me) + cache_rows("*", me) + cache_rows("other", me), 3);

	/* another tenant forgets its own and the global entry, never acme's
	 * entry or acme's jobs */
	assert_int_equal(forget_http(tok_other, "{\"email\": \"forget.me@NULLMX.api.test\"}", &body), 200);
	free(body);
	assert_int_equal(cache_rows("other", me), 0);
	assert_int_equal(cache_rows("*", me), 0);
	assert_int_equal(cache_rows("acme", me), 1);
	assert_int_equal(pg_long(db_url, "SELECT count(*) FROM addresses WHERE job_id = '%s' AND address = '%s'", id,
				 me),
			 2);

	/* acme forgets: its entry goes, its rows are redacted, counts stay */
	assert_int_equal(forget_http(tok_acme, "{\"email\": \"forget.me@nullmx.api.test\"}", &body), 200);
	j = parse(body);
	free(body);
	assert_string_equal(json_string_value(json_object_get(j, "email")), me);
	assert_int_equal(json_integer_value(json_object_get(j, "cache_entries")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "job_rows")), 2);
	json_decref(j);
	assert_int_equal(cache_rows("acme", me), 0);
	assert_int_equal(cache_rows("acme", "keep@nullmx.api.test"), 1);
	assert_int_equal(pg_long(db_url,
				 "SELECT count(*) FROM addresses WHERE job_id = '%s' AND (address = '%s' "
				 "OR input ILIKE '%%forget.me%%')",
				 id, me),
			 0);
	assert_int_equal(pg_long(db_url, "SELECT count(*) FROM addresses WHERE job_id = '%s'", id), 3);
	assert_int_equal(pg_long(db_url, "SELECT n_final FROM jobs WHERE id = '%s'", id), rows_before);
	{
		char path[256];
		snprintf(path, sizeof path, "/v1/jobs/%s/results?format=jsonl", id);
		assert_int_equal(get(path, tok_acme, &body), 200);
		assert_null(strstr(body, "forget.me"));
		assert_non_null(strstr(body, "keep@nullmx.api.test"));
		free(body);
	}

	/* the command-line client */
	{
		const char *argv[] = {
			EMV_CLI, "forget", "--server", base_url, "--token", tok_acme, "keep@NULLMX.api.test", NULL
		};
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
		assert_non_null(strstr(out, "keep@nullmx.api.test: forgotten (1 cache entries deleted, 1 job rows"));
		assert_int_equal(cache_rows("acme", "keep@nullmx.api.test"), 0);
	}
	{
		const char *argv[] = { EMV_CLI, "forget", "--server", base_url, "--token", tok_acme, "nope", NULL };
		assert_int_equal(run_capture(out, sizeof out, argv, 1), 2);
		assert_non_null(strstr(out, "not an email address"));
	}
	/* and the coordinator's command */
	cache_row("acme", "cmd@nullmx.api.test", "acme", NULL);
	{
		const char *argv[] = { EMV_COORDINATOR, "forget", "--database",		 db_url,
				       "--tenant",	"acme",	  "cmd@NullMX.api.test", NULL };
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
		assert_int_equal(cache_rows("acme", "cmd@nullmx.api.test"), 0);
	}

	/* DELETE of the job takes the cache entries it made, not those a
	 * later job made */
	cache_row("acme", "mine@nullmx.api.test", "acme", id);
	cache_row("*", "mine2@nullmx.api.test", "acme", id);
	cache_row("acme", "later@nullmx.api.test", "acme", "a-later-job");
	snprintf(url, sizeof url, "%s/v1/jobs/%s", base_url, id);
	assert_int_equal(http("DELETE", url, tok_acme, NULL, &body), 200);
	free(body);
	assert_int_equal(pg_long(db_url, "SELECT count(*) FROM verdict_cache WHERE job_id = '%s'", id), 0);
	assert_int_equal(cache_rows("acme", "later@nullmx.api.test"), 1);

	/* tenant delete: its jobs, every cache entry it made (its scope's and
	 * the global ones), its settings and tokens; nobody else's */
	{
		char tok_gone[128], gid[64];
		token(db_url, "gone", tok_gone, sizeof tok_gone);
		assert_int_equal(upload_raw(list, "name=gone", tok_gone, &body), 201);
		job_id_of(body, gid, sizeof gid);
		free(body);
		cache_row("gone", me, "gone", gid);
		cache_row("*", "g2@nullmx.api.test", "gone", NULL);
		cache_row("acme", "g2@nullmx.api.test", "acme", NULL);
		pg_exec(db_url, "INSERT INTO tenant_settings (tenant, policy) VALUES ('gone', 'transactional')");
		{
			const char *argv[] = { EMV_COORDINATOR, "tenant", "delete", "gone", "--database", db_url, NULL };
			assert_int_equal(run_argv(out, sizeof out, argv), 0);
			assert_non_null(strstr(out, "tenant gone deleted"));
		}
		assert_int_equal(pg_long(db_url, "SELECT count(*) FROM verdict_cache WHERE tenant = 'gone'"), 0);
		assert_int_equal(pg_long(db_url,
					 "SELECT (SELECT count(*) FROM jobs WHERE tenant = 'gone') + (SELECT count(*) FROM "
					 "addresses WHERE job_id = '%s') + (SELECT count(*) FROM tenant_settings WHERE "
					 "tenant = 'gone') + (SELECT count(*) FROM api_tokens WHERE tenant = 'gone')",
					 gid),
				 0);
		assert_int_equal(cache_rows("acme", "g2@nullmx.api.test"), 1);
		assert_int_equal(cache_rows("acme", "later@nullmx.api.test"), 1);
		assert_int_equal(get("/v1/jobs", tok_gone, &body), 401);
		free(body);
	}
	(void)state;
}

/* Past its rate a token gets 429 (JSON, Retry-After); another token and a
 * second later the same token are served again.  The ten requests go out
 * at once (one curl, --parallel), so that a slow, loaded machine cannot
 * refill the bucket between them: 2 a second, a burst of 4. */
static void do_test_rate_limit(void **state)
{
	char url[256], *body, auth[300], codes[256];
	int ok = 0, limited = 0, n = 0;
	char tok_rl[128], tok_rl2[128];
	const char *argv[64];
	token(db_rl_url, "rl", tok_rl, sizeof tok_rl);
	token(db_rl_url, "rl", tok_rl2, sizeof tok_rl2);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs", PORT_RL);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok_rl);
	argv[n++] = "/usr/bin/curl";
	argv[n++] = "-sS";
	argv[n++] = "-m";
	argv[n++] = "60";
	argv[n++] = "--parallel";
	argv[n++] = "--parallel-immediate";
	argv[n++] = "--parallel-max";
	argv[n++] = "10";
	argv[n++] = "-H";
	argv[n++] = auth;
	argv[n++] = "-w";
	argv[n++] = "%{http_code}\n";
	for (int i = 0; i < 10; i++) {
		argv[n++] = "-o";
		argv[n++] = "/dev/null";
		argv[n++] = url;
	}
	argv[n] = NULL;
	assert_int_equal(run_argv(codes, sizeof codes, argv), 0);
	for (char *save = NULL, *line = strtok_r(codes, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strcmp(line, "200") == 0)
			ok++;
		else if (strcmp(line, "429") == 0)
			limited++;
		else
			fail_msg("status %s", line);
	}
	if (ok + limited != 10 || ok < 4 || ok > 6 || limited < 4) /* the burst of 4, plus what refilled meanwhile */
		fail_msg("10 requests at once: %d served, %d limited", ok, limited);
	assert_int_equal(http("GET", url, tok_rl2, NULL, &body), 200);
	free(body);
	{
		const char *extra[] = { "-D", RUN "/rl.headers", NULL };
		assert_int_equal(http("GET", url, tok_rl, extra, &body), 429);
		assert_error(body, "rate_limited");
		free(body);
		body = slurp(RUN "/rl.headers", NULL);
		assert_non_null(strcasestr(body, "Retry-After:"));
		free(body);
	}
	sleep(2);
	assert_int_equal(http("GET", url, tok_rl, NULL, &body), 200);
	free(body);
}

/* Operators: liveness, readiness (PostgreSQL and Kafka), Prometheus text. */
static void do_test_health_metrics(void **state)
{
	char *body;
	json_t *j;
	assert_int_equal(get("/healthz", NULL, &body), 200);
	free(body);
	assert_int_equal(get("/readyz", NULL, &body), 200);
	j = parse(body);
	assert_string_equal(json_string_value(json_object_get(j, "postgres")), "ok");
	assert_string_equal(json_string_value(json_object_get(j, "kafka")), "ok");
	json_decref(j);
	free(body);
	assert_int_equal(get("/metrics", NULL, &body), 200);
	assert_non_null(strstr(body, "\nemailverify_jobs{state=\"done\"} "));
	assert_non_null(strstr(body, "\nemailverify_addresses{status=\"undeliverable\"} "));
	assert_non_null(strstr(body, "\nemailverify_batches_in_flight "));
	assert_non_null(strstr(body, "\nemailverify_sink_consumer_lag "));
	{ /* the round trip's verdicts came from DNS alone (null MX, NXDOMAIN): no SMTP reply decided them */
		const char *p = strstr(body, "\nemailverify_smtp_replies_total{class=\"none\"} ");
		assert_non_null(p);
		assert_true(atol(p + strlen("\nemailverify_smtp_replies_total{class=\"none\"} ")) > 0);
		assert_non_null(strstr(body, "\nemailverify_smtp_replies_total{class=\"5xx\"} 0\n"));
	}
	assert_non_null(strstr(body, "\nemailverify_http_responses_total{class=\"4xx\"} "));
	assert_null(strstr(body, "{\"error\""));
	free(body);
}

/* GET /v1/ips and the ip metrics: what the router stored from the workers'
 * ip-state (rows put in directly here; the regions test makes them the
 * real way). */
static void do_test_ips(void **state)
{
	char *body;
	json_t *j, *ips, *a;
	PGconn *c = PQconnectdb(db_url);
	PGresult *r = PQexec(c, "INSERT INTO ip_state (ip, provider, region, state, worker, rcpts, blocks, sessions,"
				"  strikes, rate_permille, until, since, last_reply) VALUES"
				" ('192.0.2.7', '', 'eu-west', 'healthy', 'w1', 50, 1, 5, 0, 1000, NULL, now(), ''),"
				" ('192.0.2.7', 'outlook', 'eu-west', 'quarantined', 'w1', 50, 1, 5, 2, 0,"
				"  now() + interval '30 min', now(), '550 5.7.606 Access denied, banned sending IP'),"
				" ('2001:db8::9', '', 'us-east', 'held', 'w2', 0, 0, 0, 0, 0, NULL, now(),"
				"  'PTR 2001:db8::9 -> nothing')");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);

	assert_int_equal(get("/v1/ips", NULL, &body), 401);
	free(body);
	assert_int_equal(get("/v1/ips", tok_acme, &body), 200);
	j = parse(body);
	ips = json_object_get(j, "ips");
	assert_int_equal(json_array_size(ips), 2);
	a = json_array_get(ips, 0); /* eu-west before us-east */
	assert_string_equal(json_string_value(json_object_get(a, "ip")), "192.0.2.7");
	assert_int_equal(json_integer_value(json_object_get(a, "sessions")), 5);
	assert_true(json_is_false(json_object_get(a, "stale")));
	a = json_array_get(json_object_get(a, "providers"), 0);
	assert_string_equal(json_string_value(json_object_get(a, "provider")), "outlook");
	assert_string_equal(json_string_value(json_object_get(a, "state")), "quarantined");
	assert_int_equal(json_integer_value(json_object_get(a, "strikes")), 2);
	assert_non_null(json_string_value(json_object_get(a, "until")));
	assert_non_null(strstr(json_string_value(json_object_get(a, "last_reply")), "5.7.606"));
	assert_string_equal(json_string_value(json_object_get(json_array_get(ips, 1), "state")), "held");
	json_decref(j);
	free(body);
	assert_int_equal(get("/v1/ips?state=held", tok_acme, &body), 200);
	j = parse(body);
	assert_int_equal(json_array_size(json_object_get(j, "ips")), 1);
	json_decref(j);
	free(body);
	assert_int_equal(get("/v1/ips?region=eu-west&state=quarantined", tok_acme, &body), 200);
	j = parse(body);
	assert_int_equal(json_array_size(json_object_get(j, "ips")), 1);
	json_decref(j);
	free(body);
	assert_int_equal(get("/v1/ips?region=EU%20west", tok_acme, &body), 400);
	assert_non_null(strstr(body, "\"bad_query\""));
	free(body);
	assert_int_equal(get("/v1/ips?state=burned", tok_acme, &body), 400);
	free(body);
	assert_int_equal(get("/metrics", NULL, &body), 200);
	assert_non_null(strstr(body, "\nemailverify_ip_state{ip=\"192.0.2.7\",provider=\"outlook\",region=\"eu-west\","
				     "state=\"quarantined\"} 1\n"));
	assert_non_null(strstr(body, "\nemailverify_ip_state{ip=\"2001:db8::9\",provider=\"\",region=\"us-east\","
				     "state=\"held\"} 1\n"));
	assert_non_null(strstr(body, "\nemailverify_ip_blocks_total{ip=\"192.0.2.7\",provider=\"outlook\","
				     "region=\"eu-west\"} 1\n"));
	free(body);
}

/* POST /v1/check: a final verdict within the wait (200, the fields of an
 * export row), 202 with a job id when the wait runs out first, 400 for a
 * body that is not {"email": ...}. */
static void do_test_check(void **state)
{
	char url[256], *body;
	json_t *j;
	snprintf(url, sizeof url, "%s/v1/check", base_url);
	start_worker();
	{
		const char *extra[] = { "-H", "Content-Type: application/json", "--data-binary",
					"{\"email\": \"check1@nullmx.api.test\", \"wait_s\": 20}", NULL };
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 200);
	}
	j = parse(body);
	free(body);
	assert_string_equal(json_string_value(json_object_get(j, "email")), "check1@nullmx.api.test");
	assert_string_equal(json_string_value(json_object_get(j, "status")), "undeliverable");
	assert_string_equal(json_string_value(json_object_get(j, "reason")), "null_mx");
	assert_true(json_is_string(json_object_get(j, "job_id")));
	json_decref(j);
	{
		/* unusable at once: no wait needed even with wait_s 0 */
		const char *extra[] = { "--data-binary", "{\"email\": \"'; DROP TABLE jobs; --\", \"wait_s\": 0}",
					NULL };
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 200);
		j = parse(body);
		assert_string_equal(json_string_value(json_object_get(j, "reason")), "invalid_syntax");
		assert_string_equal(json_string_value(json_object_get(j, "input")), "'; DROP TABLE jobs; --");
		json_decref(j);
		free(body);
	}
	{
		const char *extra[] = { "--data-binary", "{\"email\": \"later@nothere.api.test\", \"wait_s\": 0}",
					NULL };
		char path[200];
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 202);
		j = parse(body);
		assert_string_equal(json_string_value(json_object_get(j, "state")), "pending");
		snprintf(path, sizeof path, "/v1/jobs/%s", json_string_value(json_object_get(j, "id")));
		json_decref(j);
		free(body);
		assert_int_equal(get(path, tok_acme, &body), 200);
		free(body);
		assert_int_equal(get(path, tok_other, &body), 404);
		free(body);
	}
	{
		const char *bodies[] = { "not json", "{\"mail\": \"x@y.z\"}", "{\"email\": 5}",
					 "{\"email\": \"a@b.c\", \"wait_s\": 99}", "[]" };
		for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
			const char *extra[] = { "--data-binary", bodies[i], NULL };
			assert_int_equal(http("POST", url, tok_acme, extra, &body), 400);
			assert_error(body, "bad_request");
			free(body);
		}
	}
	assert_int_equal(http("POST", url, NULL, NULL, &body), 401);
	free(body);
}

/* The CLI client: server and token from the environment, submit --wait
 * (the summary once done), status, export to a file (only whole), jobs;
 * errors from the server said and exit 1. */
static void do_test_cli(void **state)
{
	char out[16384], id[64], *csv;
	const char *list = RUN "/cli.csv", *dest = RUN "/cli-export.csv";
	setenv("EMAILVERIFY_SERVER", base_url, 1);
	setenv("EMAILVERIFY_TOKEN", tok_acme, 1);
	test_write_file(list, "email\ncli1@nullmx.api.test\ncli2@nothere.api.test\nnot an address\n");
	start_worker();
	{
		const char *argv[] = { EMV_CLI, "submit", list, "--name", "from the cli", "--wait", NULL };
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
	}
	snprintf(id, sizeof id, "%.*s", (int)strcspn(out, "\n"), out);
	assert_int_equal(strlen(id), 36);
	assert_non_null(strstr(out, "state     done"));
	assert_non_null(strstr(out, "progress  3 of 3 (100.0 %)"));
	assert_non_null(strstr(out, "undeliverable   null_mx                       1"));
	{
		const char *argv[] = { EMV_CLI, "status", id, NULL };
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
		assert_non_null(strstr(out, "name      from the cli"));
	}
	{
		const char *argv[] = { EMV_CLI, "export", id, "-o", dest, "--status", "undeliverable", NULL };
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
		csv = slurp(dest, NULL);
		assert_non_null(strstr(csv, "\ncli1@nullmx.api.test,undeliverable,null_mx,"));
		assert_non_null(strstr(csv, "\ncli2@nothere.api.test,undeliverable,no_domain,"));
		assert_non_null(strstr(csv, "\nnot an address,undeliverable,invalid_syntax,"));
		free(csv);
		assert_true(access(RUN "/cli-export.csv.part", F_OK) != 0);
	}
	{
		const char *argv[] = { EMV_CLI, "jobs", NULL };
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
		assert_non_null(strstr(out, id));
	}
	{
		const char *argv[] = { EMV_CLI, "export",	 "0b5d3c1e-0000-4000-8000-000000000000",
				       "-o",	RUN "/none.csv", NULL };
		assert_int_equal(run_capture(out, sizeof out, argv, 1), 1);
		assert_non_null(strstr(out, "HTTP 404 not_found"));
		assert_true(access(RUN "/none.csv", F_OK) != 0 && access(RUN "/none.csv.part", F_OK) != 0);
	}
	{
		const char *argv[] = { EMV_CLI, "jobs", "--token", "ev_nope", NULL };
		assert_int_equal(run_capture(out, sizeof out, argv, 1), 1);
		assert_non_null(strstr(out, "HTTP 401 unauthorized"));
	}
	unsetenv("EMAILVERIFY_SERVER");
	{
		const char *argv[] = { EMV_CLI, "jobs", NULL };
		assert_int_equal(run_capture(out, sizeof out, argv, 1), 2);
		assert_non_null(strstr(out, "EMAILVERIFY_SERVER"));
	}
	unsetenv("EMAILVERIFY_TOKEN");
}

/* ------------------------------------------------- streaming and deadlines */

static long proc_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':')
			v = atol(line + strlen(field) + 1);
	fclose(f);
	return v;
}

static int connect_port(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		fail_msg("connect 127.0.0.1:%d: %s", port, strerror(errno));
	return fd;
}

/* Read what the server sends until it closes or `ms` pass; NUL-terminated. */
static size_t read_until_close(int fd, char *buf, size_t len, int ms)
{
	size_t n = 0;
	uint64_t end = now_ms() + (uint64_t)ms;
	while (n < len - 1 && now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t k;
		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((k = read(fd, buf + n, len - 1 - n)) <= 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	return n;
}

struct feeder {
	int fd;
	size_t total, sent;
	int failed;
};

/* The upload's body, made as it is sent: 24 MB of rows that repeat 2000
 * addresses (so the job's de-duplication stays small and what the server
 * holds is what it buffers of the body), written in 64 KiB pieces. */
#define FEED_HEADER "email,pad\n"
#define FEED_ROW "s%04ld@nullmx.api.test,padding-padding-padding-padding-padding-padding-padding-pad\n"

/* Bytes of a body of about `want` bytes made of whole rows. */
static size_t feed_size(size_t want)
{
	char row[200];
	size_t l = (size_t)snprintf(row, sizeof row, FEED_ROW, 0L);
	return strlen(FEED_HEADER) + (want - strlen(FEED_HEADER)) / l * l;
}

static void *feed_main(void *arg)
{
	struct feeder *fd = arg;
	char buf[65536];
	size_t used = 0;
	long row = 0;
	used = (size_t)snprintf(buf, sizeof buf, FEED_HEADER);
	while (fd->sent < fd->total) {
		while (used < sizeof buf - 200) {
			used += (size_t)snprintf(buf + used, sizeof buf - used, FEED_ROW, row % 2000);
			row++;
		}
		if (used > fd->total - fd->sent)
			used = fd->total - fd->sent;
		for (size_t off = 0; off < used;) {
			ssize_t k = write(fd->fd, buf + off, used - off);
			if (k <= 0) {
				fd->failed = 1;
				return NULL;
			}
			off += (size_t)k;
		}
		fd->sent += used;
		used = 0;
	}
	return NULL;
}

/*
 * A 24 MB upload is streamed: the server's resident memory while it
 * receives and ingests the body grows by far less than the body (it holds
 * a staging buffer and a pipe's worth, not the list), and the job has every
 * row.  (The second server: its --max-upload is the default 64 MiB.)
 */
static void do_test_upload_streamed(void **state)
{
	char tok[128], head[512], resp[8192];
	struct feeder fd = { .total = feed_size(24 * 1000 * 1000) };
	pthread_t th;
	long rss0, peak = 0, hwm0;
	json_t *j;
	char *body;

	token(db_rl_url, "stream", tok, sizeof tok);
	rss0 = proc_status_kb(server_rl_pid, "VmRSS");
	hwm0 = proc_status_kb(server_rl_pid, "VmHWM");
	assert_true(rss0 > 0);
	fd.fd = connect_port(PORT_RL);
	snprintf(head, sizeof head,
		 "POST /v1/jobs?name=streamed HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
		 "Content-Type: text/csv\r\nContent-Length: %zu\r\n\r\n",
		 tok, fd.total);
	assert_true(write(fd.fd, head, strlen(head)) == (ssize_t)strlen(head));
	pthread_create(&th, NULL, feed_main, &fd);
	/* sample the server's memory while the body goes in */
	while (!fd.failed && fd.sent < fd.total) {
		long rss = proc_status_kb(server_rl_pid, "VmRSS");
		if (rss > peak)
			peak = rss;
		usleep(20000);
	}
	pthread_join(th, NULL);
	assert_false(fd.failed);
	read_until_close(fd.fd, resp, sizeof resp, 60000);
	close(fd.fd);
	{
		long rss = proc_status_kb(server_rl_pid, "VmRSS");
		if (rss > peak)
			peak = rss;
	}
	if (strncmp(resp, "HTTP/1.1 201", 12) != 0)
		fail_msg("the streamed upload was answered: %.300s", resp);
	body = strstr(resp, "\r\n\r\n");
	assert_non_null(body);
	j = parse(body + 4);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "streamed");
	assert_int_equal(json_integer_value(json_object_get(j, "bytes")), (json_int_t)fd.total);
	assert_int_equal(json_integer_value(json_object_get(j, "addresses")), 2000);
	json_decref(j);
	/* 24 MB went through; the server grew by a fraction of it */
	print_message("upload_streamed: %zu bytes; server RSS %ld kB before, peak %ld kB while receiving (+%ld kB); "
		      "VmHWM %ld -> %ld kB\n",
		      fd.total, rss0, peak, peak - rss0, hwm0, proc_status_kb(server_rl_pid, "VmHWM"));
	if ((peak - rss0) * 1024 > (long)fd.total / 3)
		fail_msg("the server's RSS grew by %ld kB while receiving a %zu-byte body: it is not streaming",
			 peak - rss0, fd.total);
	(void)body;
}

/*
 * Text from the request that is not valid UTF-8 (a path segment, a cut
 * character, a query parameter) never reaches an answer as it is: each of
 * these once killed the server (json_dumps gave NULL).  Every answer is
 * JSON with a message that is valid UTF-8, and the server lives on.
 */
static void do_test_bad_text(void **state)
{
	char url[512], *body;
	const char *seg63 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	struct {
		const char *method, *path;
		int token, status;
		const char *code;
	} cases[] = {
		{ "PUT", "/v1/jobs/%ff", 0, 405, "method_not_allowed" },
		{ "GET", "/v1/jobs/%ff", 1, 404, "not_found" },
		{ "GET", NULL /* 63 bytes and a 2-byte character cut by %.64s */, 1, 404, "not_found" },
		{ "GET", "/v1/jobs/0b5d3c1e-0000-4000-8000-000000000000/results?status=%ff", 1, 400, "bad_query" },
		{ "GET", "/v1/jobs/0b5d3c1e-0000-4000-8000-000000000000/results?status=%e2%82", 0, 401,
		  "unauthorized" },
		{ "GET", "/v1/ips?region=%fe%ff", 1, 400, "bad_query" },
		{ "GET", "/%ff%fe", 0, 404, "not_found" },
		{ "DELETE", "/v1/%c0%af", 0, 404, "not_found" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j;
		const char *msg;
		if (cases[i].path)
			snprintf(url, sizeof url, "%s%s", base_url, cases[i].path);
		else
			snprintf(url, sizeof url, "%s/v1/jobs/%s%%c3%%a9", base_url, seg63);
		if (http(cases[i].method, url, cases[i].token ? tok_acme : NULL, NULL, &body) != cases[i].status)
			fail_msg("%s %s: not %d: %s", cases[i].method, url, cases[i].status, body);
		assert_error(body, cases[i].code);
		j = parse(body);
		msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
		assert_non_null(msg);
		for (const unsigned char *m = (const unsigned char *)msg; *m; m++)
			if (*m < 0x20)
				fail_msg("a control character in %s", body);
		json_decref(j);
		free(body);
	}
	assert_int_equal(get("/healthz", NULL, &body), 200);
	free(body);
}

/* The cells of a CSV text (RFC 4180), each malloc'd, into cells[]; their count. */
static int csv_cells(const char *s, char **cells, int max)
{
	int n = 0;
	while (*s && n < max) {
		char *c = malloc(strlen(s) + 1);
		size_t k = 0;
		if (*s == '"') {
			for (s++; *s; s++) {
				if (*s == '"' && s[1] == '"')
					c[k++] = *s++;
				else if (*s == '"') {
					s++;
					break;
				} else
					c[k++] = *s;
			}
		} else {
			while (*s && *s != ',' && *s != '\n')
				c[k++] = *s++;
		}
		c[k] = '\0';
		cells[n++] = c;
		if (*s == ',' || *s == '\n')
			s++;
	}
	return n;
}

static int has_cell(char **cells, int n, const char *want)
{
	for (int i = 0; i < n; i++)
		if (strcmp(cells[i], want) == 0)
			return 1;
	return 0;
}

/*
 * Spreadsheet formula injection: a CSV export has no cell that a
 * spreadsheet would run (= + - @ TAB CR first): such cells from the list
 * come quoted with a ' in front; escape_formulas=false gives them as they
 * are; JSON Lines is never changed.
 */
static void do_test_csv_formulas(void **state)
{
	char *body, id[64], path[256], *cells[400];
	int n;
	test_write_file(RUN "/formulas.csv", "name,email\n=1+2,f1@nullmx.api.test\n+1,=f2@nullmx.api.test\n"
					     "-2,-f3@nullmx.api.test\n@SUM(1),@bad\n\tx,f5@nullmx.api.test\n");
	assert_int_equal(upload_raw(RUN "/formulas.csv", NULL, tok_acme, &body), 201);
	job_id_of(body, id, sizeof id);
	free(body);

	snprintf(path, sizeof path, "/v1/jobs/%s/results", id);
	assert_int_equal(get(path, tok_acme, &body), 200);
	n = csv_cells(body, cells, 400);
	assert_true(n >= 6 * 19);
	for (int i = 0; i < n; i++)
		if (cells[i][0] && strchr("=+-@\t\r", cells[i][0]))
			fail_msg("cell %d of the CSV export is a formula: %s", i, cells[i]);
	assert_true(has_cell(cells, n, "'=1+2,f1@nullmx.api.test"));
	assert_true(has_cell(cells, n, "'=f2@nullmx.api.test"));
	assert_true(has_cell(cells, n, "'-f3@nullmx.api.test"));
	assert_true(has_cell(cells, n, "'@bad"));
	assert_true(has_cell(cells, n, "'\tx,f5@nullmx.api.test"));
	for (int i = 0; i < n; i++)
		free(cells[i]);
	free(body);

	snprintf(path, sizeof path, "/v1/jobs/%s/results?escape_formulas=false", id);
	assert_int_equal(get(path, tok_acme, &body), 200);
	n = csv_cells(body, cells, 400);
	assert_true(has_cell(cells, n, "=1+2,f1@nullmx.api.test"));
	assert_true(has_cell(cells, n, "=f2@nullmx.api.test"));
	assert_false(has_cell(cells, n, "'=f2@nullmx.api.test"));
	for (int i = 0; i < n; i++)
		free(cells[i]);
	free(body);

	snprintf(path, sizeof path, "/v1/jobs/%s/results?format=jsonl", id);
	assert_int_equal(get(path, tok_acme, &body), 200);
	assert_non_null(strstr(body, "\"email\":\"=f2@nullmx.api.test\""));
	assert_non_null(strstr(body, "\"input\":\"=1+2,f1@nullmx.api.test\""));
	assert_null(strstr(body, "'="));
	free(body);

	/* emailverify verify writes the input row too (rows of bad syntax:
	 * final without DNS) */
	{
		char out[8192];
		/* no resolver: these rows need none (and the preflight would say so) */
		const char *argv[] = { EMV_CLI, "verify",      RUN "/formulas-cli.csv", "--progress", "none",
				       "--dns", "127.0.0.1:1", "--skip-preflight",	NULL,	      NULL };
		test_write_file(RUN "/formulas-cli.csv", "name,email\n=1+2,@bad\n-x,=also bad\n");
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
		n = csv_cells(out, cells, 400);
		assert_true(n >= 3 * 19);
		for (int i = 0; i < n; i++)
			if (cells[i][0] && strchr("=+-@\t\r", cells[i][0]))
				fail_msg("cell %d of verify's CSV is a formula: %s", i, cells[i]);
		assert_true(has_cell(cells, n, "'=1+2,@bad"));
		assert_true(has_cell(cells, n, "'=also bad"));
		for (int i = 0; i < n; i++)
			free(cells[i]);
		argv[8] = "--no-escape-formulas";
		assert_int_equal(run_argv(out, sizeof out, argv), 0);
		n = csv_cells(out, cells, 400);
		assert_true(has_cell(cells, n, "=1+2,@bad"));
		assert_true(has_cell(cells, n, "-x,=also bad"));
		for (int i = 0; i < n; i++)
			free(cells[i]);
	}

	snprintf(path, sizeof path, "/v1/jobs/%s/results?escape_formulas=maybe", id);
	assert_int_equal(get(path, tok_acme, &body), 400);
	assert_error(body, "bad_query");
	free(body);
}

/* path <- gzip -9 of `lines` copies of `line`, as `members` gzip members
 * in a row (the ingest reads concatenated members: a small file that
 * decodes to a large one is cheap to make). */
static void make_gzip(const char *path, const char *head, const char *line, long lines, int members)
{
	char plain[512], cmd[1200];
	FILE *f;
	snprintf(plain, sizeof plain, "%s.plain", path);
	f = fopen(plain, "w");
	assert_non_null(f);
	for (long i = 0; i < lines; i++)
		fputs(line, f);
	fclose(f);
	snprintf(cmd, sizeof cmd,
		 "printf '%%s' '%s' | gzip -9 > %s && for i in $(seq %d); do gzip -9 -c %s >> %s; done", head, path,
		 members, plain, path);
	assert_int_equal(system(cmd), 0);
	unlink(plain);
}

/* One bomb: answered 413 too_large naming the limit, within `max_ms`, and
 * no job is left of it. */
static void assert_bomb(const char *url_base, const char *db, const char *tok, const char *gz, const char *what,
			uint64_t max_ms)
{
	char url[256], data[300], *body;
	const char *extra[] = { "-H", "Content-Type: text/csv", "--data-binary", data, NULL };
	long jobs0 = pg_long(db, "SELECT count(*) FROM jobs"), addrs0 = pg_long(db, "SELECT count(*) FROM addresses");
	struct stat sb;
	uint64_t t0;
	assert_int_equal(stat(gz, &sb), 0);
	snprintf(url, sizeof url, "%s/v1/jobs", url_base);
	snprintf(data, sizeof data, "@%s", gz);
	t0 = now_ms();
	if (http("POST", url, tok, extra, &body) != 413) {
		fprintf(stderr, "a %s bomb of %lld bytes was answered: %s\n", what, (long long)sb.st_size, body);
		free(body);
		fail();
	}
	t0 = now_ms() - t0;
	assert_error(body, "too_large");
	if (!strstr(body, what))
		fail_msg("the 413 does not say which limit (%s): %s", what, body);
	print_message("bomb (%s): %lld bytes of gzip refused with 413 in %llu ms: %s", what, (long long)sb.st_size,
		      (unsigned long long)t0, body);
	free(body);
	assert_int_equal(pg_long(db, "SELECT count(*) FROM jobs"), jobs0);
	assert_int_equal(pg_long(db, "SELECT count(*) FROM addresses"), addrs0);
	if (t0 > max_ms)
		fail_msg("the %s bomb took %llu ms to refuse", what, (unsigned long long)t0);
}

/*
 * --max-upload counts bytes as sent; a small gzip must not become millions
 * of rows, gigabytes of text or seconds of CPU on empty lines.  Over
 * --max-rows, --max-decompressed or as many empty lines as --max-rows: 413,
 * and nothing of the job is kept.  (The main server: --max-rows 20000,
 * --max-decompressed 2000000; the second: the defaults.)
 */
static void do_test_decompression_bomb(void **state)
{
	char rl_base[64], tok[128], *body;
	const char *gz = RUN "/bomb.csv.gz";
	make_gzip(gz, "email\n", "b@nullmx.api.test\n", 30000, 1);
	assert_bomb(base_url, db_url, tok_acme, gz, "rows", 10000);
	make_gzip(gz, "email,pad\n",
		  "x@nullmx.api.test,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		  15000, 1);
	assert_bomb(base_url, db_url, tok_acme, gz, "decompressed", 10000);
	make_gzip(gz, "email\na@nullmx.api.test\n", "\n", 30000, 1);
	assert_bomb(base_url, db_url, tok_acme, gz, "blank", 10000);
	/* the reported one: about 1 MB of gzip that is 1 GB of empty lines,
	 * against the default limits */
	token(db_rl_url, "bomb", tok, sizeof tok);
	make_gzip(gz, "email\na@nullmx.api.test\n", "\n", 10 * 1000 * 1000, 100);
	snprintf(rl_base, sizeof rl_base, "http://127.0.0.1:%d", PORT_RL);
	assert_bomb(rl_base, db_rl_url, tok, gz, "blank", 5000);
	unlink(gz);
	/* below every limit, a gzip list is still welcome */
	make_gzip(gz, "email\n", "ok@nullmx.api.test\n", 100, 1);
	{
		char url[256], data[300];
		const char *extra[] = { "-H", "Content-Type: text/csv", "--data-binary", data, NULL };
		snprintf(url, sizeof url, "%s/v1/jobs", base_url);
		snprintf(data, sizeof data, "@%s", gz);
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 201);
		free(body);
	}
}

/* A body far over the limit is refused with our JSON 413 as soon as its
 * headers are in, before any of it is read; the server goes on serving. */
static void do_test_far_over_limit(void **state)
{
	char head[512], resp[8192], *body;
	int fd = connect_port(PORT);
	json_t *j, *e;
	snprintf(head, sizeof head,
		 "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\n"
		 "Content-Length: 5000000000\r\n\r\n",
		 tok_acme);
	assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
	/* no byte of the body is sent: the answer must come anyway */
	read_until_close(fd, resp, sizeof resp, 10000);
	close(fd);
	if (strncmp(resp, "HTTP/1.1 413", 12) != 0)
		fail_msg("a 5 GB Content-Length was answered: %.300s", resp);
	assert_non_null(strcasestr(resp, "\r\nContent-Type: application/json"));
	body = strstr(resp, "\r\n\r\n");
	assert_non_null(body);
	j = parse(body + 4);
	e = json_object_get(j, "error");
	assert_string_equal(json_string_value(json_object_get(e, "code")), "too_large");
	assert_true(json_is_string(json_object_get(e, "message")));
	json_decref(j);
	assert_int_equal(get("/healthz", NULL, &body), 200);
	free(body);
}

/*
 * A client that sends its headers and then trickles the body for ever is
 * cut off at the request deadline (the second server's --request-timeout),
 * though it is never idle long enough for the idle timeout; other clients
 * are served meanwhile.
 */
static void do_test_request_deadline(void **state)
{
	char tok[128], head[512], buf[4096], *body;
	int fd, served = 0, deadline = atoi(DEADLINE_S);
	uint64_t t0, cut = 0;

	token(db_rl_url, "trickle", tok, sizeof tok);
	fd = connect_port(PORT_RL);
	snprintf(head, sizeof head,
		 "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\n"
		 "Content-Length: 10000000\r\n\r\nemail\n",
		 tok);
	assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
	t0 = now_ms();
	while (now_ms() - t0 < (uint64_t)(deadline + 10) * 1000) {
		struct pollfd p = { fd, POLLIN, 0 };
		char url[128];
		if (write(fd, "t@nullmx.api.test\n", 18) != 18) {
			cut = now_ms() - t0;
			break;
		}
		if (poll(&p, 1, 250) > 0 && read(fd, buf, sizeof buf) <= 0) {
			cut = now_ms() - t0;
			break;
		}
		snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", PORT_RL);
		if (http("GET", url, NULL, NULL, &body) == 200)
			served++;
		free(body);
	}
	close(fd);
	if (!cut)
		fail_msg("a trickling upload was not cut off within %d s", deadline + 10);
	print_message("request_deadline: cut off after %llu ms (deadline %d s), %d other requests served meanwhile\n",
		      (unsigned long long)cut, deadline, served);
	assert_true(cut >= (uint64_t)(deadline - 1) * 1000);
	assert_true(served >= deadline);
	{
		char url[128];
		snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs", PORT_RL);
		assert_int_equal(http("GET", url, tok, NULL, &body), 200);
		free(body);
	}
}

/*
 * Slow headers: a client that sends one header line every 2 s is never
 * idle for --timeout, and its request never reaches the handler; the
 * request deadline (the second server's --request-timeout) counts from
 * its first byte, so it is cut off all the same.
 */
static void do_test_slow_headers(void **state)
{
	char buf[4096];
	int fd, deadline = atoi(DEADLINE_S);
	uint64_t t0, cut = 0;

	fd = connect_port(PORT_RL);
	t0 = now_ms();
	assert_true(write(fd, "GET /v1/jobs HTTP/1.1\r\nHost: x\r\n", 32) == 32);
	while (now_ms() - t0 < (uint64_t)(deadline + 10) * 1000) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 2000) > 0) {
			if (read(fd, buf, sizeof buf) <= 0) {
				cut = now_ms() - t0;
				break;
			}
		}
		if (write(fd, "X-Slow: a\r\n", 11) != 11) {
			cut = now_ms() - t0;
			break;
		}
	}
	close(fd);
	if (!cut)
		fail_msg("a client sending a header line every 2 s was not cut off within %d s", deadline + 10);
	print_message("slow_headers: cut off after %llu ms (deadline %d s)\n", (unsigned long long)cut, deadline);
	assert_true(cut >= (uint64_t)(deadline - 1) * 1000);
	assert_true(cut <= (uint64_t)(deadline + 3) * 1000);
}

/* Upload list with an Idempotency-Key (NULL: none) as token; the status,
 * the job id into id (if any), the headers into *headers. */
static int upload_idem(const char *list, const char *key, const char *tok, char *id, size_t idlen, char **headers)
{
	char url[256], data[300], hk[200], *body;
	const char *extra[] = { "-H", "Content-Type: text/csv", "--data-binary",   data,
				"-D", RUN "/idem.headers",	key ? "-H" : NULL, hk,
				NULL };
	int st;
	snprintf(url, sizeof url, "%s/v1/jobs", base_url);
	snprintf(data, sizeof data, "@%s", list);
	snprintf(hk, sizeof hk, "Idempotency-Key: %s", key ? key : "");
	st = http("POST", url, tok, extra, &body);
	id[0] = '\0';
	if (st == 200 || st == 201)
		job_id_of(body, id, idlen);
	free(body);
	*headers = slurp(RUN "/idem.headers", NULL);
	return st;
}

/*
 * Idempotency-Key on POST /v1/jobs: the same key and tenant within 24
 * hours give the first job (200, Idempotent-Replayed) instead of a new
 * one; another tenant's or another key's upload is a job of its own.
 */
static void do_test_idempotency(void **state)
{
	char id1[64], id2[64], id3[64], id4[64], *h;
	const char *list = RUN "/idem.csv";
	test_write_file(list, "email\nidem@nullmx.api.test\n");
	assert_int_equal(upload_idem(list, "order-4711", tok_acme, id1, sizeof id1, &h), 201);
	assert_null(strcasestr(h, "Idempotent-Replayed"));
	free(h);
	assert_int_equal(upload_idem(list, "order-4711", tok_acme, id2, sizeof id2, &h), 200);
	assert_string_equal(id1, id2);
	assert_non_null(strcasestr(h, "Idempotent-Replayed: true"));
	assert_non_null(strstr(h, id1)); /* Location */
	free(h);
	assert_int_equal(upload_idem(list, "order-4711", tok_other, id3, sizeof id3, &h), 201);
	assert_string_not_equal(id1, id3);
	free(h);
	assert_int_equal(upload_idem(list, "order-4712", tok_acme, id4, sizeof id4, &h), 201);
	assert_string_not_equal(id1, id4);
	free(h);
	assert_int_equal(pg_long(db_url, "SELECT count(*) FROM jobs WHERE idempotency_key = 'order-4711'"), 2);
	assert_int_equal(upload_idem(list, "bad key", tok_acme, id4, sizeof id4, &h), 400);
	free(h);
}

/*
 * A deadline that fires after the body is whole, while the job is still
 * being stored (held here by a lock on jobs), rolls the job back: the
 * client, cut off without an answer, will retry, and must not make a
 * duplicate.  (The second server: --request-timeout 15.)
 */
static void do_test_deadline_rollback(void **state)
{
	char tok[128], head[512], resp[4096];
	const char *rows = "email\nlate@nullmx.api.test\n";
	PGconn *c = PQconnectdb(db_rl_url);
	PGresult *r;
	uint64_t t0;
	int fd;
	size_t n;

	token(db_rl_url, "late", tok, sizeof tok);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	r = PQexec(c, "BEGIN; LOCK TABLE jobs IN EXCLUSIVE MODE");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	fd = connect_port(PORT_RL);
	snprintf(head, sizeof head,
		 "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\n"
		 "Idempotency-Key: late-1\r\nContent-Length: %zu\r\n\r\n%s",
		 tok, strlen(rows), rows);
	t0 = now_ms();
	assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
	n = read_until_close(fd, resp, sizeof resp, (atoi(DEADLINE_S) + 10) * 1000);
	close(fd);
	print_message("deadline_rollback: connection closed after %llu ms with %zu bytes of answer\n",
		      (unsigned long long)(now_ms() - t0), n);
	assert_int_equal(n, 0); /* cut off: no answer */
	r = PQexec(c, "COMMIT");
	PQclear(r);
	/* the ingest goes on once the lock is gone, and must roll back */
	for (int i = 0; i < 30; i++) {
		usleep(200000);
		if (pg_long(db_rl_url, "SELECT count(*) FROM jobs WHERE tenant = 'late'") != 0)
			break;
	}
	assert_int_equal(pg_long(db_rl_url, "SELECT count(*) FROM jobs WHERE tenant = 'late'"), 0);
	assert_int_equal(pg_long(db_rl_url, "SELECT count(*) FROM addresses a WHERE input = 'late@nullmx.api.test'"),
			 0);
	PQfinish(c);
	/* the client's retry makes the job, once */
	fd = connect_port(PORT_RL);
	assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
	read_until_close(fd, resp, sizeof resp, 10000);
	close(fd);
	if (strncmp(resp, "HTTP/1.1 201", 12) != 0)
		fail_msg("the retry was answered: %.300s", resp);
	assert_int_equal(pg_long(db_rl_url, "SELECT count(*) FROM jobs WHERE tenant = 'late'"), 1);
}

static void pg_exec(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

/*
 * The smaller ones: a failing DELETE is 503 database_error without
 * PostgreSQL's text; /metrics whose queries fail is 503, not zeros; a
 * NUL in a check body and a second file part are named for what they
 * are.
 */
/* The verdict cache (docs/cache.md) through the API: max_age and fresh
 * are checked and kept by the job; a second upload of an address is
 * answered from the cache and counted as cached; fresh asks again. */
static void do_test_cache(void **state)
{
	char *body, id[64];
	json_t *j;
	(void)state;
	test_write_file(RUN "/cache.csv", "email\ncache1@nullmx.api.test\ncache2@nullmx.api.test\n");
	assert_int_equal(upload_raw(RUN "/cache.csv", "max_age=400d", tok_acme, &body), 400);
	assert_error(body, "bad_parameter");
	if (!strstr(body, "max_age") || !strstr(body, "365d"))
		fail_msg("max_age=400d: %s", body);
	free(body);
	assert_int_equal(upload_raw(RUN "/cache.csv", "fresh=maybe", tok_acme, &body), 400);
	assert_error(body, "bad_parameter");
	assert_non_null(strstr(body, "fresh"));
	free(body);

	/* asked: nothing in the cache yet */
	assert_int_equal(upload_raw(RUN "/cache.csv", "max_age=2h", tok_acme, &body), 201);
	job_id_of(body, id, sizeof id);
	free(body);
	assert_int_equal(pg_long(db_url, "SELECT max_age_s FROM jobs WHERE id = '%s'", id), 7200);
	j = wait_state(id, "done", 60);
	assert_int_equal(json_integer_value(json_object_get(j, "cached")), 0);
	json_decref(j);
	/* again: both from the cache, none batched */
	assert_int_equal(upload_raw(RUN "/cache.csv", NULL, tok_acme, &body), 201);
	job_id_of(body, id, sizeof id);
	free(body);
	j = wait_state(id, "done", 60);
	assert_int_equal(json_integer_value(json_object_get(j, "cached")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "done")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "counts"), "undeliverable")), 2);
	json_decref(j);
	assert_int_equal(pg_long(db_url, "SELECT split_done FROM jobs WHERE id = '%s'", id), 0);
	/* another tenant: its own cache (the default scope) */
	assert_int_equal(upload_raw(RUN "/cache.csv", NULL, tok_other, &body), 201);
	job_id_of(body, id, sizeof id);
	free(body);
	for (int i = 0;
	     i < 600 && pg_long(db_url, "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'done'", id) == 0; i++)
		usleep(100000);
	assert_int_equal(pg_long(db_url, "SELECT n_cached FROM jobs WHERE id = '%s' AND state = 'done'", id), 0);
	/* fresh: asked again */
	assert_int_equal(upload_raw(RUN "/cache.csv", "fresh=true", tok_acme, &body), 201);
	job_id_of(body, id, sizeof id);
	free(body);
	j = wait_state(id, "done", 60);
	assert_int_equal(json_integer_value(json_object_get(j, "cached")), 0);
	json_decref(j);
	assert_int_equal(pg_long(db_url, "SELECT split_done FROM jobs WHERE id = '%s'", id), 2);
}

static void do_test_smaller(void **state)
{
	char *body, id[64], url[256];
	/* DELETE refused by the database (a trigger stands in for any error) */
	test_write_file(RUN "/undeletable.csv", "email\nu@nullmx.api.test\n");
	assert_int_equal(upload_raw(RUN "/undeletable.csv", "name=undeletable", tok_acme, &body), 201);
	job_id_of(body, id, sizeof id);
	free(body);
	pg_exec(db_url, "CREATE FUNCTION emv_test_nodelete() RETURNS trigger LANGUAGE plpgsql AS "
			"$$BEGIN IF OLD.name = 'undeletable' THEN RAISE EXCEPTION 'secret-internal-text'; END IF; "
			"RETURN OLD; END$$");
	pg_exec(db_url, "CREATE TRIGGER emv_test_nodelete BEFORE DELETE ON jobs FOR EACH ROW "
			"EXECUTE FUNCTION emv_test_nodelete()");
	snprintf(url, sizeof url, "%s/v1/jobs/%s", base_url, id);
	assert_int_equal(http("DELETE", url, tok_acme, NULL, &body), 503);
	assert_error(body, "database_error");
	assert_null(strstr(body, "secret-internal-text"));
	free(body);
	pg_exec(db_url, "DROP TRIGGER emv_test_nodelete ON jobs");
	pg_exec(db_url, "DROP FUNCTION emv_test_nodelete()");
	assert_int_equal(http("DELETE", url, tok_acme, NULL, &body), 200);
	free(body);

	/* /metrics with its table gone: 503, not a page of zeros */
	{
		char murl[128];
		snprintf(murl, sizeof murl, "http://127.0.0.1:%d/metrics", PORT_RL);
		pg_exec(db_rl_url, "ALTER TABLE jobs RENAME TO jobs_away");
		assert_int_equal(http("GET", murl, NULL, NULL, &body), 503);
		assert_error(body, "database_error");
		free(body);
		pg_exec(db_rl_url, "ALTER TABLE jobs_away RENAME TO jobs");
		assert_int_equal(http("GET", murl, NULL, NULL, &body), 200);
		assert_non_null(strstr(body, "emailverify_jobs{state=\"done\"}"));
		free(body);
	}

	/* a NUL in a check body: said plainly */
	snprintf(url, sizeof url, "%s/v1/check", base_url);
	{
		const char *extra[] = { "--data", "{\"email\":\"a\\u0000b@nullmx.api.test\"}", NULL };
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 400);
		assert_error(body, "bad_request");
		assert_null(strstr(body, "JSON_"));
		assert_non_null(strstr(body, "NUL"));
		free(body);
	}
	/* two file parts: which is the list? refused */
	snprintf(url, sizeof url, "%s/v1/jobs", base_url);
	test_write_file(RUN "/part1.csv", "email\np1@nullmx.api.test\n");
	{
		const char *extra[] = { "-F", "file=@" RUN "/part1.csv", "-F", "file=@" RUN "/part1.csv", NULL };
		assert_int_equal(http("POST", url, tok_acme, extra, &body), 400);
		assert_error(body, "bad_multipart");
		assert_non_null(strstr(body, "more than one file"));
		free(body);
	}
}

/*
 * Failed authentications are limited per client address (this server:
 * --auth-fail-limit 5 --auth-fail-window 4): five refused tokens are 401,
 * the sixth and even a good token from that address 429 with Retry-After
 * (no database lookup); another address is served; once the window is
 * over the good token works again.
 */
static pid_t start_af_server(void)
{
	char listen[32];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", PORT_AF);
	{
		const char *argv[] = { EMV_COORDINATOR,
				       "serve",
				       "--listen",
				       listen,
				       "--database",
				       db_rl_url,
				       "--embedded-kafka",
				       "--ready-file",
				       RUN "/ready-af",
				       "--no-sink",
				       "--rate-limit",
				       "0",
				       "--auth-fail-limit",
				       "5",
				       "--auth-fail-window",
				       "4",
				       "--db-threads",
				       "1",
				       NULL };
		return extra_pid = start_server(argv, RUN "/ready-af", RUN "/server-af.log", NULL, 0);
	}
}

static void do_test_auth_failures(void **state)
{
	char url[128], tok[128], bad[64], *body, *h;
	const char *hdr[] = { "-D", RUN "/af.headers", NULL };
	const char *from2[] = { "--interface", "127.0.0.2", NULL };
	uint64_t t0, t429;
	int retry;

	token(db_rl_url, "af", tok, sizeof tok);
	start_af_server();
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs", PORT_AF);
	assert_int_equal(http("GET", url, tok, NULL, &body), 200);
	free(body);
	t0 = now_ms();
	for (int i = 0; i < 5; i++) {
		snprintf(bad, sizeof bad, "ev_guess%d", i);
		assert_int_equal(http("GET", url, bad, NULL, &body), 401);
		assert_error(body, "unauthorized");
		free(body);
	}
	assert_int_equal(http("GET", url, "ev_guess5", hdr, &body), 429);
	t429 = now_ms();
	assert_error(body, "rate_limited");
	assert_non_null(strstr(body, "failed authentications"));
	free(body);
	body = slurp(RUN "/af.headers", NULL);
	h = strcasestr(body, "\r\nRetry-After:");
	assert_non_null(h);
	retry = atoi(h + 14);
	assert_true(retry >= 1 && retry <= 4);
	free(body);
	/* the good token from the same address waits too: no lookup is made */
	assert_int_equal(http("GET", url, tok, NULL, &body), 429);
	free(body);
	/* another address is not affected */
	assert_int_equal(http("GET", url, tok, from2, &body), 200);
	free(body);
	/* the window ends: served again */
	while (now_ms() - t0 < 4200)
		usleep(100000);
	assert_int_equal(http("GET", url, tok, NULL, &body), 200);
	free(body);
	print_message("auth failures: 5 refused tokens in %llu ms were 401, the 6th 429 (Retry-After %d s); "
		      "the good token was served again %llu ms after the first refusal\n",
		      (unsigned long long)(t429 - t0), retry, (unsigned long long)(now_ms() - t0));
	stop_child(&extra_pid);
}

/*
 * Callback URLs that delivery would refuse are refused at upload, where
 * the client hears of it (400 bad_parameter, no job kept): loopback,
 * private, link-local, a name that resolves to loopback.  A public
 * address is taken (this server has no --webhook-allow-private).
 */
static void do_test_callback_private(void **state)
{
	static const struct {
		const char *url, *word;
	} refused[] = {
		{ "https://127.0.0.1:18100/h", "loopback" },
		{ "https://10.1.2.3/h", "private" },
		{ "https://169.254.169.254/latest/meta-data", "link-local" },
		{ "https://localhost:18100/h", "loopback" },
		{ "https://[::1]:18101/h", "loopback" },
	};
	char tok[128], url[600], *body, id[64];
	const char *list = RUN "/cb.csv";
	long jobs0;

	test_write_file(list, "email\ncb1@nullmx.api.test\n");
	token(db_rl_url, "cb", tok, sizeof tok);
	start_af_server();
	jobs0 = pg_long(db_rl_url, "SELECT count(*) FROM jobs WHERE tenant = 'cb'");
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		char data[300], full[900], enc[700];
		const char *ex[] = { "-H", "Content-Type: text/csv", "--data-binary", data, NULL };
		size_t k = 0;
		snprintf(data, sizeof data, "@%s", list);
		for (const char *c = refused[i].url; *c && k + 4 < sizeof enc; c++) {
			if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-')
				enc[k++] = *c;
			else
				k += (size_t)snprintf(enc + k, sizeof enc - k, "%%%02X", (unsigned char)*c);
		}
		enc[k] = '\0';
		snprintf(full, sizeof full, "http://127.0.0.1:%d/v1/jobs?callback_secret=x&callback_url=%s", PORT_AF,
			 enc);
		if (http("POST", full, tok, ex, &body) != 400)
			fail_msg("callback_url %s was accepted: %s", refused[i].url, body);
		assert_error(body, "bad_parameter");
		if (!strstr(body, refused[i].word))
			fail_msg("callback_url %s: the 400 does not say %s: %s", refused[i].url, refused[i].word, body);
		free(body);
	}
	assert_int_equal(pg_long(db_rl_url, "SELECT count(*) FROM jobs WHERE tenant = 'cb'"), jobs0);
	/* a public address is fine (nothing is sent: no row is final yet) */
	snprintf(url, sizeof url, "http://127.0.0.1:%d", PORT_AF);
	{
		char full[300], data[300];
		const char *ex[] = { "-H", "Content-Type: text/csv", "--data-binary", data, NULL };
		snprintf(data, sizeof data, "@%s", list);
		snprintf(full, sizeof full, "%s/v1/jobs?callback_secret=x&callback_url=https%%3A%%2F%%2F8.8.8.8%%2Fh",
			 url);
		assert_int_equal(http("POST", full, tok, ex, &body), 201);
		job_id_of(body, id, sizeof id);
		free(body);
		snprintf(full, sizeof full, "%s/v1/jobs/%s", url, id);
		assert_int_equal(http("DELETE", full, tok, NULL, &body), 200);
		free(body);
	}
	stop_child(&extra_pid);
}

/* A callback to an IPv6 literal ([::1]) is delivered (the brackets are
 * not part of the name to resolve).  Skipped without an IPv6 loopback. */
static void do_test_callback_ipv6(void **state)
{
	const char *list = RUN "/v6.csv";
	char q[256], *body, id[64];
	int h;
	if (!hook6_start())
		skip();
	test_write_file(list, "email\nnot an address\n");
	snprintf(q, sizeof q, "name=v6&callback_secret=%s&callback_url=http://%%5B::1%%5D:%d/v6hook", SECRET,
		 HOOK6_PORT);
	assert_int_equal(upload_raw(list, q, tok_acme, &body), 201);
	job_id_of(body, id, sizeof id);
	free(body);
	h = wait_hook(id, "job.completed", 200, 30);
	assert_signature(&hooks[h], SECRET);
}

/*
 * A query thread whose PostgreSQL connection was cut (a server restart;
 * here pg_terminate_backend) reconnects and runs the request again: no
 * spurious 503.  The server has one query thread, so its connection is
 * the one cut.
 */
static void do_test_stale_connection(void **state)
{
	char url[128], tok[128], sql[256], *body;
	long killed;
	token(db_rl_url, "stale", tok, sizeof tok);
	start_af_server();
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs", PORT_AF);
	assert_int_equal(http("GET", url, tok, NULL, &body), 200);
	free(body);
	snprintf(sql, sizeof sql,
		 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
		 "WHERE datname = 'emv_api_rl' AND pid <> pg_backend_pid()");
	killed = pg_long(pg_admin, "%s", sql);
	assert_true(killed >= 1);
	usleep(300000);
	for (int i = 0; i < 3; i++) {
		int st = http("GET", url, tok, NULL, &body);
		if (st != 200)
			fail_msg("request %d after the backends (%ld) were terminated: %d %s", i + 1, killed, st, body);
		free(body);
	}
	print_message("stale connection: %ld backends terminated, the next 3 requests all 200\n", killed);
	stop_child(&extra_pid);
}

/*
 * Webhooks over HTTPS (the main server: --webhook-ca the test CA,
 * --webhook-attempts 4, --webhook-backoff 300): a certificate of that CA
 * for the URL's host is delivered to; one for another name, or from a CA
 * the server does not know, fails every attempt ("TLS: certificate not
 * accepted: ...") and the delivery ends failed after 4 tries.  A plain
 * http:// callback is refused at upload by a server without
 * --webhook-allow-http.
 */
static long delivery_state_wait(const char *id, const char *state, int timeout_s)
{
	uint64_t t0 = now_ms();
	for (;;) {
		if (pg_long(db_url, "SELECT count(*) FROM webhook_deliveries WHERE job_id = '%s' AND state = '%s'", id,
			    state) > 0)
			return (long)(now_ms() - t0);
		if (now_ms() - t0 > (uint64_t)timeout_s * 1000)
			fail_msg("job %s: no webhook delivery %s after %d s", id, state, timeout_s);
		usleep(200000);
	}
}

static void tls_upload(const char *url, char *id, size_t idlen)
{
	const char *list = RUN "/tls.csv";
	char q[400], *body;
	test_write_file(list, "email\nnot an address\n");
	snprintf(q, sizeof q, "callback_secret=%s&callback_url=%s", SECRET, url);
	assert_int_equal(upload_raw(list, q, tok_acme, &body), 201);
	job_id_of(body, id, idlen);
	free(body);
}

static void do_test_webhook_https(void **state)
{
	char id[64], url[200], *body, tok[128];
	long ms;
	int h;
	tls_hook_start(AF_INET, TLS_GOOD, "good");
	tls_hook_start(AF_INET6, TLS_GOOD, "good"); /* localhost may be ::1 first */
	tls_hook_start(AF_INET, TLS_WRONG, "wrong");
	tls_hook_start(AF_INET, TLS_OTHER, "other");

	/* good: by name (SNI, set1_host) and by address */
	snprintf(url, sizeof url, "https://localhost:%d/tls-good", TLS_GOOD);
	tls_upload(url, id, sizeof id);
	h = wait_hook(id, "job.completed", 200, 30);
	assert_signature(&hooks[h], SECRET);
	assert_int_equal(pg_long(db_url,
				 "SELECT count(*) FROM webhook_deliveries WHERE job_id = '%s' AND state = "
				 "'delivered' AND attempts = 1",
				 id),
			 1);
	snprintf(url, sizeof url, "https://127.0.0.1:%d/tls-good-ip", TLS_GOOD);
	tls_upload(url, id, sizeof id);
	wait_hook(id, "job.completed", 200, 30);

	/* a certificate for another name (wrong.example) than the URL's host */
	snprintf(url, sizeof url, "https://127.0.0.1:%d/tls-wrong", TLS_WRONG);
	tls_upload(url, id, sizeof id);
	ms = delivery_state_wait(id, "failed", 60);
	assert_int_equal(pg_long(db_url,
				 "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON "
				 "d.id = a.delivery_id WHERE d.job_id = '%s' AND a.http_status IS NULL AND a.error LIKE "
				 "'TLS: certificate not accepted: %%mismatch%%'",
				 id),
			 4);
	print_message("https: wrong host name refused 4 times, delivery failed after %ld ms\n", ms);

	/* a certificate from an unknown CA */
	snprintf(url, sizeof url, "https://127.0.0.1:%d/tls-other", TLS_OTHER);
	tls_upload(url, id, sizeof id);
	ms = delivery_state_wait(id, "failed", 60);
	assert_int_equal(pg_long(db_url,
				 "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON "
				 "d.id = a.delivery_id WHERE d.job_id = '%s' AND a.error LIKE "
				 "'TLS: certificate not accepted: %%'",
				 id),
			 4);
	print_message("https: unknown CA refused 4 times, delivery failed after %ld ms\n", ms);
	pthread_mutex_lock(&hook_mu);
	for (int i = 0; i < nhooks; i++)
		if (strstr(hooks[i].body, id))
			fail_msg("the receiver with the unknown CA's certificate got a delivery");
	pthread_mutex_unlock(&hook_mu);

	/* http:// needs --webhook-allow-http */
	{
		start_af_server();
		char full[300], data[300];
		const char *ex[] = { "-H", "Content-Type: text/csv", "--data-binary", data, NULL };
		token(db_rl_url, "plain", tok, sizeof tok);
		snprintf(data, sizeof data, "@%s", RUN "/tls.csv");
		snprintf(full, sizeof full,
			 "http://127.0.0.1:%d/v1/jobs?callback_secret=x&callback_url=http%%3A%%2F%%2F"
			 "8.8.8.8%%2Fh",
			 PORT_AF);
		assert_int_equal(http("POST", full, tok, ex, &body), 400);
		assert_error(body, "bad_parameter");
		assert_non_null(strstr(body, "https://"));
		free(body);
		stop_child(&extra_pid);
	}
}

/*
 * Fairness between tenants (server: --max-uploads 4 --db-threads 2, so 2
 * ingest slots and 1 query thread at most per tenant).  "flood" holds two
 * uploads open (each past 64 KiB: a slot each) and its third is 503 busy,
 * while "calm" still uploads; flood's DELETEs wait on a locked row (the
 * test holds it for 6 s, as a long delete would) while calm's GET
 * /v1/jobs stays fast; a job of 12,000 rows is deleted in the background
 * (202 deleting, then gone) in batches.
 */
static void write_rows(const char *path, const char *prefix, int n)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("email\n", f);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%06d@nullmx.api.test\n", prefix, i);
	fclose(f);
}

static int post_list(int port, const char *tok, const char *file, char **body)
{
	char url[128], data[300];
	const char *ex[] = { "-H", "Content-Type: text/csv", "--data-binary", data, NULL };
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs", port);
	snprintf(data, sizeof data, "@%s", file);
	return http("POST", url, tok, ex, body);
}

static void do_test_fairness(void **state)
{
	char listen[32], flood[128], calm[128], url[200], *body, id[64], big[64];
	const char *flist = RUN "/flood.csv", *clist = RUN "/calm.csv";
	int held[2];
	pid_t dels[4];
	uint64_t worst = 0, sum = 0;
	PGconn *lock;
	PGresult *r;

	token(db_rl_url, "flood", flood, sizeof flood);
	token(db_rl_url, "calm", calm, sizeof calm);
	snprintf(listen, sizeof listen, "127.0.0.1:%d", PORT_FAIR);
	{
		const char *argv[] = { EMV_COORDINATOR,
				       "serve",
				       "--listen",
				       listen,
				       "--database",
				       db_rl_url,
				       "--embedded-kafka",
				       "--ready-file",
				       RUN "/ready-fair",
				       "--no-sink",
				       "--rate-limit",
				       "0",
				       "--max-uploads",
				       "4",
				       "--db-threads",
				       "2",
				       "-v",
				       NULL };
		extra_pid = start_server(argv, RUN "/ready-fair", RUN "/server-fair.log", NULL, 0);
	}
	write_rows(flist, "f", 12000); /* ~280 KB: past the 64 KiB that takes a slot */
	write_rows(clist, "c", 12000);

	/* 1. ingest slots: flood's two open uploads take its share */
	for (int i = 0; i < 2; i++) {
		char head[512], *list;
		size_t len;
		held[i] = connect_port(PORT_FAIR);
		snprintf(head, sizeof head,
			 "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
			 "Content-Type: text/csv\r\nContent-Length: 10000000\r\n\r\n",
			 flood);
		assert_true(write(held[i], head, strlen(head)) == (ssize_t)strlen(head));
		list = slurp(flist, &len);
		assert_true(write(held[i], list, 100000) == 100000); /* and then nothing more */
		free(list);
	}
	sleep(2);
	assert_int_equal(post_list(PORT_FAIR, flood, flist, &body), 503);
	assert_error(body, "busy");
	assert_non_null(strstr(body, "per-tenant"));
	free(body);
	assert_int_equal(post_list(PORT_FAIR, calm, clist, &body), 201);
	free(body);
	for (int i = 0; i < 2; i++)
		close(held[i]); /* rolled back; their slots come back once the ingests end */

	/* 2. query threads: flood's DELETEs block on a row lock */
	test_write_file(RUN "/flood-small.csv", "email\nsmall@nullmx.api.test\n");
	for (int i = 0;; i++) {
		int st = post_list(PORT_FAIR, flood, RUN "/flood-small.csv", &body);
		if (st == 201)
			break;
		if (st != 503 || i == 50)
			fail_msg("flood's small upload: %d %s", st, body);
		free(body);
		usleep(200000);
	}
	job_id_of(body, id, sizeof id);
	free(body);
	lock = PQconnectdb(db_rl_url);
	PQclear(PQexec(lock, "BEGIN"));
	{
		const char *v[1] = { id };
		r = PQexecParams(lock, "SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", 1, NULL, v, NULL, NULL, 0);
		assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
		PQclear(r);
	}
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs/%s", PORT_FAIR, id);
	for (int i = 0; i < 4; i++) {
		char auth[200];
		const char *argv[] = { "/usr/bin/curl", "-sS", "-m", "60", "-o", "/dev/null", "-X",
				       "DELETE",	"-H",  auth, url,  NULL };
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", flood);
		dels[i] = spawn_logged(argv, RUN "/flood-delete.log");
	}
	usleep(700000); /* flood's DELETEs are queued or waiting on the lock */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs", PORT_FAIR);
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = now_ms(), dt;
		assert_int_equal(http("GET", url, calm, NULL, &body), 200);
		free(body);
		dt = now_ms() - t0;
		sum += dt;
		if (dt > worst)
			worst = dt;
	}
	sleep(3);
	PQclear(PQexec(lock, "COMMIT"));
	PQfinish(lock);
	for (int i = 0; i < 4; i++) {
		int st;
		waitpid(dels[i], &st, 0);
	}
	print_message("fairness: while flood's 4 DELETEs waited on a row lock for ~4 s, calm's GET /v1/jobs took "
		      "%llu ms on average, %llu ms at worst\n",
		      (unsigned long long)(sum / 5), (unsigned long long)worst);
	if (worst > 1500)
		fail_msg("another tenant's GET /v1/jobs took %llu ms while one tenant's DELETEs were stuck",
			 (unsigned long long)worst);
	assert_int_equal(pg_long(db_rl_url, "SELECT count(*) FROM jobs WHERE id = '%s'", id), 0);

	/* 3. a large job is deleted in the background, in batches */
	assert_int_equal(post_list(PORT_FAIR, flood, flist, &body), 201);
	job_id_of(body, big, sizeof big);
	free(body);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs/%s", PORT_FAIR, big);
	{
		uint64_t t0 = now_ms();
		json_t *j;
		assert_int_equal(http("DELETE", url, flood, NULL, &body), 202);
		j = parse(body);
		assert_string_equal(json_string_value(json_object_get(j, "state")), "deleting");
		assert_int_equal(json_integer_value(json_object_get(j, "rows")), 12000);
		json_decref(j);
		free(body);
		for (;;) {
			int st = http("GET", url, flood, NULL, &body);
			if (st == 404) {
				free(body);
				break;
			}
			assert_int_equal(st, 200);
			j = parse(body);
			assert_string_equal(json_string_value(json_object_get(j, "state")), "deleting");
			json_decref(j);
			free(body);
			if (now_ms() - t0 > 60000)
				fail_msg("the large job is still there after 60 s");
			usleep(100000);
		}
		print_message("fairness: a job of 12,000 rows: DELETE 202 at once, gone after %llu ms\n",
			      (unsigned long long)(now_ms() - t0));
	}
	assert_int_equal(pg_long(db_rl_url, "SELECT count(*) FROM addresses WHERE job_id = '%s'", big), 0);
	assert_int_equal(pg_long(db_rl_url, "SELECT count(*) FROM results WHERE job_id = '%s'", big), 0);
	stop_child(&extra_pid);
	body = slurp(RUN "/server-fair.log", NULL);
	{
		char want[128];
		snprintf(want, sizeof want, "job %s deleted in 3 transactions", big);
		if (!strstr(body, want))
			fail_msg("the server log does not say '%s'", want);
	}
	free(body);
}

/* --listen takes an IPv6 address ([::1]:0: any free port, said in the
 * ready file); the server answers there and stops with exit 0 on SIGTERM.
 * Skipped where the machine has no IPv6 loopback. */
static void do_test_listen_ipv6(void **state)
{
	char listen[128], url[200], *body;
	int st, fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	pid_t pid;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		if (fd >= 0)
			close(fd);
		skip();
	}
	close(fd);
	{
		const char *argv[] = {
			EMV_COORDINATOR,    "serve",	    "--listen",	     "[::1]:0",	  "--database", db_rl_url,
			"--embedded-kafka", "--ready-file", RUN "/ready-v6", "--no-sink", NULL
		};
		pid = start_server(argv, RUN "/ready-v6", RUN "/server-v6.log", NULL, 0);
	}
	env_value(RUN "/ready-v6", "listen", listen, sizeof listen);
	assert_int_equal(strncmp(listen, "[::1]:", 6), 0);
	snprintf(url, sizeof url, "http://%s/healthz", listen);
	{
		const char *extra[] = { "-g", NULL };
		assert_int_equal(http("GET", url, NULL, extra, &body), 200);
	}
	free(body);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the IPv6 server ended with status 0x%x; see " RUN "/server-v6.log", st);
}

/* After all that, the server is still up, and stops cleanly on SIGTERM
 * (the sanitizers would have made it exit otherwise). */

/*
 * deadline_s and straggler_wait_s (docs/api.md): bad values are 400 naming
 * the field and its bounds; a job with deadline_s is done at its deadline
 * with every address still waiting final unknown ("not asked: the deadline
 * has come": a server with a sink and no worker answers nothing), its ETA
 * never later than the deadline, and its completion webhook queued as for
 * any finished job.
 */
#define PORT_DL 18085
static void do_test_job_deadline(void **state)
{
	static const char *const bad[] = { "deadline_s=0",	   "deadline_s=2592001",
					   "deadline_s=soon",	   "deadline_s=-5",
					   "deadline_s=",	   "straggler_wait_s=-1",
					   "straggler_wait_s=1.5", NULL };
	char pg_url[512], dl_url[512], tok[128], listen[32], url[256], id[64], *body;
	const char *list = RUN "/deadline.csv";
	json_t *j = NULL;
	uint64_t t0;

	test_write_file(list, "email\nd1@nullmx.api.test\nd2@nullmx.api.test\nbroken address\n");
	for (int i = 0; bad[i]; i++) {
		char q[300], want[100];
		snprintf(q, sizeof q, "%s&name=x", bad[i]);
		assert_int_equal(upload_raw(list, q, tok_acme, &body), 400);
		assert_error(body, "bad_parameter");
		snprintf(want, sizeof want, "%.*s: must be a whole number of seconds from %s to 2592000 (30 days)",
			 (int)strcspn(bad[i], "="), bad[i], bad[i][0] == 'd' ? "1" : "0");
		if (!strstr(body, want))
			fail_msg("%s: wanted '%s' in %s", bad[i], want, body);
		free(body);
	}

	env_value(EMV_CLUSTER_RUN "/pg-run/pg.env", "EMV_PG_URL", pg_url, sizeof pg_url);
	fresh_db(pg_admin, "emv_api_dl", pg_url, dl_url, sizeof dl_url);
	token(dl_url, "dl", tok, sizeof tok);
	snprintf(listen, sizeof listen, "127.0.0.1:%d", PORT_DL);
	{
		const char *argv[] = { EMV_COORDINATOR,
				       "serve",
				       "--listen",
				       listen,
				       "--database",
				       dl_url,
				       "--embedded-kafka",
				       "--ready-file",
				       RUN "/ready-dl",
				       "--webhook-allow-private",
				       "--webhook-allow-http",
				       NULL };
		extra_pid = start_server(argv, RUN "/ready-dl", RUN "/server-dl.log", NULL, 0);
	}
	{
		char data[600];
		const char *extra[] = { "-H", "Content-Type: text/csv", "--data-binary", data, NULL };
		snprintf(data, sizeof data, "@%s", list);
		snprintf(url, sizeof url,
			 "http://127.0.0.1:%d/v1/jobs?deadline_s=3&straggler_wait_s=60&callback_url=http://127.0.0.1:18199/"
			 "none&callback_secret=x",
			 PORT_DL);
		t0 = now_ms();
		assert_int_equal(http("POST", url, tok, extra, &body), 201);
		job_id_of(body, id, sizeof id);
		free(body);
	}
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs/%s", PORT_DL, id);
	assert_int_equal(http("GET", url, tok, NULL, &body), 200);
	j = parse(body);
	free(body);
	if (!json_is_string(json_object_get(j, "deadline_at")) ||
	    json_integer_value(json_object_get(j, "straggler_wait_s")) != 60 ||
	    !json_is_integer(json_object_get(j, "deadline_in_s")) ||
	    json_integer_value(json_object_get(j, "deadline_in_s")) > 3 ||
	    !json_is_integer(json_object_get(j, "eta_s")) || json_integer_value(json_object_get(j, "eta_s")) > 3)
		fail_msg("a job with deadline_s=3 right after its upload: %s", json_dumps(j, 0));
	json_decref(j);
	for (;;) {
		assert_int_equal(http("GET", url, tok, NULL, &body), 200);
		j = parse(body);
		free(body);
		if (strcmp(json_string_value(json_object_get(j, "state")), "done") == 0)
			break;
		if (now_ms() - t0 > 15000)
			fail_msg("the job is not done 15 s after its upload with deadline_s=3: %s", json_dumps(j, 0));
		json_decref(j);
		usleep(200000);
	}
	print_message("job with deadline_s=3: done %.1f s after its upload\n", (double)(now_ms() - t0) / 1000.0);
	assert_true(now_ms() - t0 >= 2500);
	if (json_integer_value(json_object_get(j, "done")) != 3 ||
	    json_integer_value(json_object_get(json_object_get(j, "counts"), "unknown")) != 2 ||
	    json_integer_value(json_object_get(j, "eta_s")) != 0)
		fail_msg("the job at its deadline: %s", json_dumps(j, 0));
	json_decref(j);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs/%s/results?format=jsonl", PORT_DL, id);
	assert_int_equal(http("GET", url, tok, NULL, &body), 200);
	if (!strstr(body, "\"email\":\"d1@nullmx.api.test\",\"status\":\"unknown\",\"reason\":\"timeout\"") ||
	    !strstr(body, "not asked: the deadline has come"))
		fail_msg("the rows at the deadline: %s", body);
	free(body);
	/* the completion webhook, as for any finished job */
	for (int i = 0; i < 50 && pg_long(dl_url,
					  "SELECT count(*) FROM webhook_deliveries WHERE job_id = '%s'"
					  " AND event = 'job.completed'",
					  id) == 0;
	     i++)
		usleep(100000);
	assert_int_equal(pg_long(dl_url,
				 "SELECT count(*) FROM webhook_deliveries WHERE job_id = '%s' AND event = 'job.completed'",
				 id),
			 1);
	stop_child(&extra_pid);
}

static void do_test_server_survived(void **state)
{
	int st;
	assert_int_equal(waitpid(server_pid, &st, WNOHANG), 0);
	kill(server_pid, SIGTERM);
	assert_int_equal(waitpid(server_pid, &st, 0), server_pid);
	server_pid = 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the server ended with status 0x%x; see " RUN "/server.log", st);
	assert_true(access(RUN "/ready", F_OK) != 0); /* the ready file goes with it */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_auth),
		cmocka_unit_test(do_test_bad_text),
		cmocka_unit_test(do_test_round_trip),
		cmocka_unit_test(do_test_tenant_isolation),
		cmocka_unit_test(do_test_list_paging),
		cmocka_unit_test(do_test_bad_uploads),
		cmocka_unit_test(do_test_slowloris),
		cmocka_unit_test(do_test_delete),
		cmocka_unit_test(do_test_rate_limit),
		cmocka_unit_test(do_test_health_metrics),
		cmocka_unit_test(do_test_ips),
		cmocka_unit_test(do_test_check),
		cmocka_unit_test(do_test_cli),
		cmocka_unit_test(do_test_forget),
		cmocka_unit_test(do_test_upload_streamed),
		cmocka_unit_test(do_test_far_over_limit),
		cmocka_unit_test(do_test_decompression_bomb),
		cmocka_unit_test(do_test_csv_formulas),
		cmocka_unit_test(do_test_request_deadline),
		cmocka_unit_test(do_test_slow_headers),
		cmocka_unit_test(do_test_idempotency),
		cmocka_unit_test(do_test_deadline_rollback),
		cmocka_unit_test(do_test_smaller),
		cmocka_unit_test(do_test_cache),
		cmocka_unit_test(do_test_auth_failures),
		cmocka_unit_test(do_test_callback_private),
		cmocka_unit_test(do_test_callback_ipv6),
		cmocka_unit_test(do_test_stale_connection),
		cmocka_unit_test(do_test_webhook_https),
		cmocka_unit_test(do_test_fairness),
		cmocka_unit_test(do_test_listen_ipv6),
		cmocka_unit_test(do_test_job_deadline),
		cmocka_unit_test(do_test_server_survived),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("api_http", tests, setup, teardown);
}
