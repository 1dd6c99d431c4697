/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv-delay-relay — a delaying TCP relay for benchmarks (bench/realworld/).
 *
 *   emv-delay-relay [--delay MS] [--max-connections N] [--buffer BYTES]
 *                   [--pidfile FILE] [-v] LISTEN=TARGET ...
 *
 * LISTEN and TARGET are IPv4 loopback IP:PORT (127.0.0.0/8 only).  For each
 * connection accepted on LISTEN it opens one to TARGET and forwards every
 * chunk it reads, in both directions, MS milliseconds after it arrived
 * (order kept): MS one way, 2*MS round trip, as a network path would add.
 * The connection to TARGET itself starts MS late, so that a banner reaches
 * the client one round trip after its connect, as over a real path.  An end
 * of stream (or error) is forwarded the same way: MS later the other side is
 * closed, after what was queued before it has been written.
 *
 * Bounded: at most --buffer bytes (default 256 KiB) queued per direction
 * (reading pauses above it), at most --max-connections pairs (default 10000;
 * more are accepted and closed at once).  SIGTERM/SIGINT stop it (pidfile
 * removed).  Several LISTEN=TARGET pairs share one process and one loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAIRS 64
#define MAX_RECS 4096 /* queued chunks per direction */

struct rec {
	uint64_t due_us;
	size_t len; /* 0 with eof: end of stream */
	int eof;
};

struct conn;

struct dir {
	struct conn *c;
	struct bufferevent *src, *dst;
	struct evbuffer *pending;  /* read, not yet due */
	struct rec recs[MAX_RECS]; /* ring */
	unsigned head, n;
	struct event *timer;
	int src_eof; /* end of stream read (queued as a record) */
	int closing; /* the eof record is due: close once dst has written */
	int paused;
};

struct conn {
	struct bufferevent *cli, *srv;
	struct dir up, down; /* up: client -> target, down: target -> client */
	struct event *connect_timer;
	struct sockaddr_in target;
	int connected;
	int dead;
};

struct pair {
	struct sockaddr_in listen, target;
	struct evconnlistener *l;
};

static struct event_base *base;
static struct pair pairs[MAX_PAIRS];
static int npairs;
static uint64_t delay_us = 25000;
static size_t buf_cap = 256 * 1024;
static long max_conns = 10000, nconns;
static int verbose;
static const char *pidfile;
static unsigned long long total_conns, refused_conns, failed_connects;

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void conn_free(struct conn *c)
{
	struct dir *d[2] = { &c->up, &c->down };
	for (int i = 0; i < 2; i++) {
		if (d[i]->timer)
			event_free(d[i]->timer);
		if (d[i]->pending)
			evbuffer_free(d[i]->pending);
	}
	if (c->connect_timer)
		event_free(c->connect_timer);
	if (c->cli)
		bufferevent_free(c->cli);
	if (c->srv)
		bufferevent_free(c->srv);
	free(c);
	nconns--;
}

static void arm(struct dir *d)
{
	if (!d->n || evtimer_pending(d->timer, NULL))
		return;
	uint64_t now = now_us(), due = d->recs[d->head].due_us;
	uint64_t wait = due > now ? due - now : 0;
	struct timeval tv = { (time_t)(wait / 1000000u), (suseconds_t)(wait % 1000000u) };
	evtimer_add(d->timer, &tv);
}

/* Reading from src resumes when this direction has room again. */
static void maybe_resume(struct dir *d)
{
	if (!d->paused || d->src_eof)
		return;
	size_t out = d->dst ? evbuffer_get_length(bufferevent_get_output(d->dst)) : 0;
	if (evbuffer_get_length(d->pending) + out < buf_cap / 2 && d->n < MAX_RECS / 2) {
		d->paused = 0;
		bufferevent_enable(d->src, EV_READ);
	}
}

static void check_close(struct dir *d)
{
	struct conn *c = d->c;
	if (!d->closing)
		return;
	if (d->dst && c->connected && evbuffer_get_length(bufferevent_get_output(d->dst)) > 0)
		return; /* still writing what came before the end */
	c->dead = 1;
}

static void due_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dir *d = arg;
	struct conn *c = d->c;
	uint64_t now = now_us();
	while (d->n && d->recs[d->head].due_us <= now + 500) {
		struct rec *r = &d->recs[d->head];
		if (r->eof) {
			d->closing = 1;
			d->n = 0;
			break;
		}
		if (d->dst)
			evbuffer_remove_buffer(d->pending, bufferevent_get_output(d->dst), r->len);
		else /* the target never answered: nowhere to write */
			evbuffer_drain(d->pending, r->len);
		d->head = (d->head + 1) % MAX_RECS;
		d->n--;
	}
	check_close(d);
	if (c->dead) {
		conn_free(c);
		return;
	}
	maybe_resume(d);
	arm(d);
}

static void queue(struct dir *d, size_t len, int eof)
{
	struct rec *r = &d->recs[(d->head + d->n) % MAX_RECS];
	r->due_us = now_us() + delay_us;
	r->len = len;
	r->eof = eof;
	d->n++;
	arm(d);
}

static struct dir *dir_of_src(struct conn *c, struct bufferevent *bev)
{
	return bev == c->cli ? &c->up : &c->down;
}

static struct dir *dir_of_dst(struct conn *c, struct bufferevent *bev)
{
	return bev == c->cli ? &c->down : &c->up;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct dir *d = dir_of_src(c, bev);
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	if (!len || d->src_eof)
		return;
	if (d->n >= MAX_RECS - 1) { /* keep one slot for the end of stream */
		bufferevent_disable(bev, EV_READ);
		d->paused = 1;
		return;
	}
	evbuffer_remove_buffer(in, d->pending, len);
	queue(d, len, 0);
	size_t out = d->dst ? evbuffer_get_length(bufferevent_get_output(d->dst)) : 0;
	if (evbuffer_get_length(d->pending) + out >= buf_cap || d->n >= MAX_RECS - 1) {
		bufferevent_disable(bev, EV_READ);
		d->paused = 1;
	}
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct dir *d = dir_of_dst(c, bev);
	check_close(d);
	if (c->dead) {
		conn_free(c);
		return;
	}
	maybe_resume(d);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if (!bev || (bev != c->cli && bev != c->srv))
		return;
	if (what & BEV_EVENT_CONNECTED) {
		c->connected = 1;
		int one = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		return;
	}
	if (bev == c->srv && !c->connected) {
		failed_connects++;
		if (verbose)
			fprintf(stderr, "emv-delay-relay: connect to %s:%u failed: %s\n", inet_ntoa(c->target.sin_addr),
				ntohs(c->target.sin_port), strerror(EVUTIL_SOCKET_ERROR()));
		/* the client sees the end of stream one way later, as a refusal would */
		c->connected = 1; /* nothing more to wait for on that side */
		bufferevent_free(c->srv);
		c->srv = NULL;
		c->up.dst = NULL;
		c->down.src = NULL;
		c->down.src_eof = 1;
		c->up.src_eof = 1;
		bufferevent_disable(c->cli, EV_READ);
		queue(&c->down, 0, 1);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		struct dir *d = dir_of_src(c, bev);
		if (d->src_eof)
			return;
		/* whatever is still in the input buffer goes first */
		if (evbuffer_get_length(bufferevent_get_input(bev)) && d->n < MAX_RECS - 1)
			read_cb(bev, c);
		d->src_eof = 1;
		bufferevent_disable(bev, EV_READ);
		queue(d, 0, 1);
	}
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (bufferevent_socket_connect(c->srv, (struct sockaddr *)&c->target, sizeof c->target) < 0 && c->srv &&
	    !c->connected) {
		/* reported through event_cb with BEV_EVENT_ERROR on most failures;
		 * an immediate failure lands here */
		event_cb(c->srv, BEV_EVENT_ERROR, c);
	}
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct pair *p = arg;
	total_conns++;
	if (nconns >= max_conns) {
		refused_conns++;
		evutil_closesocket(fd);
		return;
	}
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	nconns++;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->target = p->target;
	c->cli = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->srv = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	c->up = (struct dir){ .c = c, .src = c->cli, .dst = c->srv };
	c->down = (struct dir){ .c = c, .src = c->srv, .dst = c->cli };
	c->up.pending = evbuffer_new();
	c->down.pending = evbuffer_new();
	c->up.timer = evtimer_new(base, due_cb, &c->up);
	c->down.timer = evtimer_new(base, due_cb, &c->down);
	c->connect_timer = evtimer_new(base, connect_cb, c);
	if (!c->cli || !c->srv || !c->up.pending || !c->down.pending || !c->up.timer || !c->down.timer ||
	    !c->connect_timer) {
		if (!c->cli)
			evutil_closesocket(fd);
		conn_free(c);
		return;
	}
	bufferevent_setcb(c->cli, read_cb, write_cb, event_cb, c);
	bufferevent_setcb(c->srv, read_cb, write_cb, event_cb, c);
	bufferevent_enable(c->cli, EV_READ | EV_WRITE);
	struct timeval tv = { (time_t)(delay_us / 1000000u), (suseconds_t)(delay_us % 1000000u) };
	evtimer_add(c->connect_timer, &tv);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(base, NULL);
}

static void stats_cb(evutil_socket_t sig, short what, void *arg)
{
	fprintf(stderr,
		"emv-delay-relay: %llu connections, %ld open, %llu refused (over --max-connections), "
		"%llu target connects failed\n",
		total_conns, nconns, refused_conns, failed_connects);
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	if (!colon || (size_t)(colon - s) >= sizeof host)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return -1;
	if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127)
		return -2;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: emv-delay-relay [--delay MS] [--max-connections N] [--buffer BYTES] [--pidfile FILE] [-v]\n"
		"                       LISTEN_IP:PORT=TARGET_IP:PORT ...   (127.0.0.0/8 only)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int i;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-v")) {
			verbose = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		char *end;
		long v = strtol(argv[i + 1], &end, 10);
		if (*end && strcmp(a, "--pidfile"))
			usage();
		if (!strcmp(a, "--delay") && v >= 0 && v <= 60000)
			delay_us = (uint64_t)v * 1000u;
		else if (!strcmp(a, "--max-connections") && v >= 1 && v <= 1000000)
			max_conns = v;
		else if (!strcmp(a, "--buffer") && v >= 4096 && v <= 64L * 1024 * 1024)
			buf_cap = (size_t)v;
		else if (!strcmp(a, "--pidfile"))
			pidfile = argv[i + 1];
		else
			usage();
		i++;
	}
	for (; i < argc; i++) {
		char spec[200];
		char *eq;
		if (npairs >= MAX_PAIRS || strlen(argv[i]) >= sizeof spec)
			usage();
		strcpy(spec, argv[i]);
		if (!(eq = strchr(spec, '=')))
			usage();
		*eq = '\0';
		int r1 = parse_addr(spec, &pairs[npairs].listen), r2 = parse_addr(eq + 1, &pairs[npairs].target);
		if (r1 == -2 || r2 == -2) {
			fprintf(stderr, "emv-delay-relay: %s: loopback (127.0.0.0/8) addresses only\n", argv[i]);
			return 2;
		}
		if (r1 || r2)
			usage();
		npairs++;
	}
	if (!npairs)
		usage();

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (!base)
		return 1;
	for (i = 0; i < npairs; i++) {
		pairs[i].l = evconnlistener_new_bind(base, accept_cb, &pairs[i],
						     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
						     (struct sockaddr *)&pairs[i].listen, sizeof pairs[i].listen);
		if (!pairs[i].l) {
			fprintf(stderr, "emv-delay-relay: cannot listen on %s:%u: %s\n",
				inet_ntoa(pairs[i].listen.sin_addr), ntohs(pairs[i].listen.sin_port), strerror(errno));
			return 1;
		}
	}
	struct event *s1 = evsignal_new(base, SIGTERM, stop_cb, NULL);
	struct event *s2 = evsignal_new(base, SIGINT, stop_cb, NULL);
	struct event *s3 = evsignal_new(base, SIGUSR1, stats_cb, NULL);
	evsignal_add(s1, NULL);
	evsignal_add(s2, NULL);
	evsignal_add(s3, NULL);
	if (pidfile) {
		char tmp[4200];
		snprintf(tmp, sizeof tmp, "%s.tmp", pidfile);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 || rename(tmp, pidfile) != 0) {
			fprintf(stderr, "emv-delay-relay: cannot write %s: %s\n", pidfile, strerror(errno));
			return 1;
		}
	}
	if (verbose)
		fprintf(stderr, "emv-delay-relay: %d pair(s), %llu ms each way\n", npairs,
			(unsigned long long)(delay_us / 1000u));
	event_base_dispatch(base);
	stats_cb(0, 0, NULL);
	if (pidfile)
		unlink(pidfile);
	for (i = 0; i < npairs; i++)
		evconnlistener_free(pairs[i].l);
	event_free(s1);
	event_free(s2);
	event_free(s3);
	event_base_free(base);
	return 0;
}
