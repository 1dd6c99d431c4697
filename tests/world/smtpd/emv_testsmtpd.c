/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_testsmtpd.c - the SMTP test server of the test world: main, event
 * loop and SMTP sessions.
 *
 * One libevent loop serves every configured server (see world.conf).  A
 * session is a small state machine (enum conn_state + names, every
 * transition traced with -v).  Replies go out through one function,
 * conn_emit(), which applies the server's latency (a libevent timer per
 * connection: while a reply is held back no further command is read from
 * the input buffer) and then the "after" action of the reply (close,
 * switch to TLS, stream a fault, ...).
 *
 * Robustness: command lines are bounded (line-max, over it: 500 + close),
 * too many bad commands close the session (max-errors), idle and write
 * timeouts bound every session, the number of sessions is bounded
 * (max-connections, over it: 421 at accept), accept(2) running out of
 * descriptors pauses the listener instead of spinning, and large fault
 * streams are produced chunk by chunk as the client reads them.
 *
 * Every event a test may want to assert is appended to the --log file as
 * one line: "<unix_ms> <server_ip> <client_ip> EVENT [args...]".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "emv_util.h"
#include "emv_testsmtpd.h"

#define STREAM_CHUNK 65536    /* bytes of a fault stream queued at a time */
#define FILLER_LINE_LEN 100   /* bytes per line of a huge reply, CRLF included */
#define READ_HIGH_WATER 65536 /* input buffered before reading pauses */
#define REPLY_TEXT_MAX 1024
#define REPLY_LINES_MAX 16
#define ACCEPT_RETRY_MS 100

enum conn_state {
	CS_GREETING,	  /* connected, banner not sent yet (banner-delay, tarpit) */
	CS_COMMAND,	  /* reading commands */
	CS_REFUSED,	  /* refused at banner: everything but QUIT gets 503 */
	CS_TLS_SWITCH,	  /* 220 for STARTTLS queued; switch once it is written */
	CS_TLS_HANDSHAKE, /* OpenSSL accepting */
	CS_TLS_BROKEN,	  /* fake STARTTLS: waiting for the ClientHello to spoil */
	CS_STREAM,	  /* writing a huge/endless fault stream */
	CS_HOLD,	  /* endless stream finished: silent until the client leaves */
	CS_CLOSING	  /* flushing the last bytes, then close */
};

static const char *const conn_state_names[] = {
	"GREETING", "COMMAND", "REFUSED", "TLS_SWITCH", "TLS_HANDSHAKE", "TLS_BROKEN", "STREAM", "HOLD", "CLOSING",
};

/* What to do once a reply has been handed to the output buffer. */
enum after {
	AFTER_NONE,
	AFTER_CLOSE,	  /* flush, then close (QUIT, 421, drop, abuse) */
	AFTER_REFUSED,	  /* enter CS_REFUSED */
	AFTER_STARTTLS,	  /* stop reading; switch to TLS once flushed */
	AFTER_TLS_BROKEN, /* enter CS_TLS_BROKEN */
	AFTER_STREAM	  /* start streaming c->stream */
};

struct stream {
	int endless; /* raw bytes without CRLF, then CS_HOLD */
	int code;    /* code of the filler lines of a huge reply */
	size_t left; /* bytes (endless) or lines (huge) still to write */
	size_t seq;  /* filler line number */
	char *tail;  /* written after the filler (rest of the real reply) */
};

struct conn {
	struct conn *prev, *next;
	struct tsd_server *srv;
	const struct tsd_listen *lst;
	struct bufferevent *bev;
	evutil_socket_t fd;
	int tls;	     /* bev is an OpenSSL bufferevent that owns fd */
	struct event *timer; /* banner delay and reply latency */
	enum conn_state state;
	enum after after;	  /* action of the held-back reply */
	struct evbuffer *pending; /* reply held back by latency */
	int delayed;		  /* a reply is held back: do not read commands */
	int eof;		  /* the client has shut down its side */
	char client_ip[64];
	int helo; /* 0 none, 1 HELO, 2 EHLO */
	int in_mail;
	char sender[TSD_ADDR_MAX + 1];
	unsigned rcpts; /* RCPTs counted against max-rcpt in this transaction */
	unsigned errors;
	unsigned rejections; /* 4xx/5xx replies so far (error-limits) */
	int tarpit;	     /* the held reply is an error-limits delay: read nothing meanwhile */
	int hiccuped;	     /* the one late reply of `hiccup` was sent */
	struct stream stream;
	const char *close_reason;
};

struct listener_ctx {
	struct tsd_server *srv;
	const struct tsd_listen *lst;
	struct evconnlistener *evl;
};

struct blackhole {
	evutil_socket_t fd;
	struct event *ev;
	char ip[64];
};

static struct {
	struct tsd_config *cf;
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	const char *log_path;
	int log_fd;
	char *line; /* line-max + 1 bytes: the command being handled */
	struct conn *conns;
	unsigned nconns;
	unsigned long long served;
	struct listener_ctx *listeners;
	size_t nlisteners;
	struct blackhole blackhole;
	struct event *sig_term, *sig_int, *sig_hup;
} g = { .log_fd = -1, .blackhole = { .fd = -1 } };

static void conn_process(struct conn *c);
static void conn_free(struct conn *c, const char *reason);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* ------------------------------------------------------------------ */
/* event log */

static uint64_t unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void evlog_raw(const char *server_ip, const char *client_ip, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void evlog_raw(const char *server_ip, const char *client_ip, const char *fmt, ...)
{
	if (g.log_fd < 0)
		return;
	char buf[2048];
	int n = snprintf(buf, sizeof buf, "%llu %s %s ", (unsigned long long)unix_ms(), server_ip, client_ip);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof buf - 2)
		len = sizeof buf - 2;
	buf[len++] = '\n';
	/* one write(2) per line on an O_APPEND descriptor: lines never interleave */
	if (write(g.log_fd, buf, len) < 0)
		emv_log(EMV_LOG_WARN, "testsmtpd", "event log write: %s", strerror(errno));
}

#define evlog(c, ...) evlog_raw((c)->lst->ip, (c)->client_ip, __VA_ARGS__)

static int log_open(void)
{
	if (!g.log_path)
		return EMV_OK;
	int fd = open(g.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "emv-testsmtpd: cannot open log %s: %s\n", g.log_path, strerror(errno));
		return EMV_ERR;
	}
	if (g.log_fd >= 0)
		close(g.log_fd);
	g.log_fd = fd;
	return EMV_OK;
}

/* Untrusted text as one log token: printable ASCII, no spaces. */
static void safe_token(char *dst, size_t dstlen, const char *src)
{
	emv_sanitize(dst, dstlen, src, strlen(src));
	for (char *p = dst; *p; p++) {
		if (*p == ' ')
			*p = '?';
	}
	if (!*dst)
		emv_strlcpy(dst, "<>", dstlen);
}

/* ------------------------------------------------------------------ */
/* state machine plumbing */

static void set_state(struct conn *c, enum conn_state s)
{
	if (c->state != s && emv_log_enabled(EMV_LOG_DEBUG))
		emv_log(EMV_LOG_DEBUG, "testsmtpd", "%s %s->%s: %s -> %s", c->srv->name, c->client_ip, c->lst->ip,
			conn_state_names[c->state], conn_state_names[s]);
	c->state = s;
}

static void on_timer(evutil_socket_t fd, short what, void *arg);

/* One timer per connection: the banner delay, then reply latency. */
static void timer_start(struct conn *c, unsigned long ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	if (!c->timer)
		c->timer = evtimer_new(g.base, on_timer, c);
	evtimer_add(c->timer, &tv);
}

static void bev_setup(struct conn *c)
{
	struct timeval rt = { (time_t)g.cf->idle_timeout_s, 0 };
	struct timeval wt = { (time_t)g.cf->write_timeout_s, 0 };
	size_t high = READ_HIGH_WATER > g.cf->line_max * 2 ? READ_HIGH_WATER : g.cf->line_max * 2;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, high);
	bufferevent_set_timeouts(c->bev, g.cf->idle_timeout_s ? &rt : NULL, g.cf->write_timeout_s ? &wt : NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static int stream_fill(struct conn *c);

static void apply_after(struct conn *c, enum after a)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	switch (a) {
	case AFTER_NONE: break;
	case AFTER_CLOSE:
		set_state(c, CS_CLOSING);
		bufferevent_disable(c->bev, EV_READ);
		break;
	case AFTER_REFUSED: set_state(c, CS_REFUSED); break;
	case AFTER_STARTTLS:
		/* Stop reading now: what arrives after the 220 is the ClientHello
		 * and must stay in the kernel for OpenSSL. */
		bufferevent_disable(c->bev, EV_READ);
		set_state(c, CS_TLS_SWITCH);
		break;
	case AFTER_TLS_BROKEN:
		evbuffer_drain(in, evbuffer_get_length(in));
		set_state(c, CS_TLS_BROKEN);
		break;
	case AFTER_STREAM:
		set_state(c, CS_STREAM);
		stream_fill(c);
		break;
	}
}

/* Hand a formatted reply (or raw fault bytes) to the client; takes data. */
static void conn_emit(struct conn *c, struct evbuffer *data, enum after a)
{
	if (c->srv->latency_ms) {
		int joining = c->delayed; /* network mode: part of the flight already held */
		evbuffer_add_buffer(c->pending, data);
		c->after = a;
		c->delayed = 1;
		if (!joining)
			timer_start(c, c->srv->latency_ms);
	} else {
		bufferevent_write_buffer(c->bev, data);
		apply_after(c, a);
	}
	evbuffer_free(data);
}

static void format_reply(struct evbuffer *out, int code, const char *const *lines, size_t n, int multiline)
{
	const char *tmp[3];
	if (multiline && n < 3) {
		/* the meaning stays on the first and the last line */
		tmp[0] = lines[0];
		tmp[1] = "this server always answers in several lines";
		tmp[2] = lines[n - 1];
		lines = tmp;
		n = 3;
	}
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "%03d%c%s\r\n", code, i + 1 < n ? '-' : ' ', lines[i]);
}

static void reply_lines(struct conn *c, int code, enum after a, const char *const *lines, size_t n)
{
	struct evbuffer *out = evbuffer_new();
	const struct tsd_server *s = c->srv;
	format_reply(out, code, lines, n, c->srv->multiline);
	if (s->hiccup_ms && !c->hiccuped && c->rejections >= s->hiccup_after && code != 221 && !c->delayed &&
	    !(s->err_soft && c->rejections >= s->err_soft)) {
		/* one reply late, once per session (a busy disk, a slow lookup):
		 * no tarpit, the next replies come at once */
		evbuffer_add_buffer(c->pending, out);
		evbuffer_free(out);
		c->after = a;
		c->delayed = 1;
		c->tarpit = 1;
		c->hiccuped = 1;
		evlog(c, "HICCUP %u errors", c->rejections);
		timer_start(c, s->hiccup_ms + s->latency_ms);
	} else if (s->err_soft && c->rejections >= s->err_soft && code != 221 && !c->delayed) {
		/* Postfix past smtpd_soft_error_limit: every reply sleeps first,
		 * one command at a time */
		evbuffer_add_buffer(c->pending, out);
		evbuffer_free(out);
		c->after = a;
		c->delayed = 1;
		c->tarpit = 1;
		evlog(c, "TARPIT %u errors", c->rejections);
		timer_start(c, s->err_sleep_ms + s->latency_ms);
	} else {
		conn_emit(c, out, a);
	}
	if (code >= 400 && code != 421)
		c->rejections++;
}

static void reply(struct conn *c, int code, enum after a, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void reply(struct conn *c, int code, enum after a, const char *fmt, ...)
{
	char text[REPLY_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	const char *lines[1] = { text };
	reply_lines(c, code, a, lines, 1);
}

/* Expand %a (address), %i (client IP), %h (host name) in a configured text. */
static void expand(char *dst, size_t dstlen, const char *t, const struct conn *c, const char *addr)
{
	size_t o = 0;
	for (; *t && o + 1 < dstlen; t++) {
		const char *sub = NULL;
		if (t[0] == '%') {
			switch (t[1]) {
			case 'a': sub = addr ? addr : ""; break;
			case 'i': sub = c->client_ip; break;
			case 'h': sub = c->srv->hostname; break;
			case '%': sub = "%"; break;
			default: break;
			}
		}
		if (sub) {
			size_t n = strlen(sub);
			if (n > dstlen - 1 - o)
				n = dstlen - 1 - o;
			memcpy(dst + o, sub, n);
			o += n;
			t++;
			continue;
		}
		dst[o++] = *t;
	}
	dst[o] = '\0';
}

static void reply_conf(struct conn *c, const struct tsd_reply *r, enum after a, const char *addr)
{
	char text[REPLY_TEXT_MAX];
	expand(text, sizeof text, r->text, c, addr);
	reply(c, r->code, a, "%s", text);
}

/* A bad command: counts towards max-errors, which ends the session. */
static void bad(struct conn *c, int code, const char *text)
{
	if (++c->errors > g.cf->max_errors) {
		evlog(c, "ABUSE too-many-errors");
		c->close_reason = "too-many-errors";
		reply(c, 421, AFTER_CLOSE, "4.7.0 %s Error: too many errors", c->srv->hostname);
		return;
	}
	reply(c, code, AFTER_NONE, "%s", text);
}

/* ------------------------------------------------------------------ */
/* fault streams: huge multi-line replies, endless lines */

static int stream_fill(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct stream *s = &c->stream;
	if (s->left == 0) {
		if (!s->tail)
			return 0;
		evbuffer_add(out, s->tail, strlen(s->tail));
		free(s->tail);
		s->tail = NULL;
		return 1;
	}
	if (s->endless) {
		static char xs[STREAM_CHUNK];
		if (!xs[0])
			memset(xs, 'x', sizeof xs);
		size_t n = s->left < sizeof xs ? s->left : sizeof xs;
		evbuffer_add(out, xs, n);
		s->left -= n;
		return 1;
	}
	char line[FILLER_LINE_LEN + 1];
	for (size_t i = 0; i < STREAM_CHUNK / FILLER_LINE_LEN && s->left > 0; i++, s->left--) {
		int n = snprintf(line, sizeof line, "%03d-X-FILLER-%08zu ", s->code, ++s->seq);
		memset(line + n, 'x', FILLER_LINE_LEN - 2 - (size_t)n);
		line[FILLER_LINE_LEN - 2] = '\r';
		line[FILLER_LINE_LEN - 1] = '\n';
		evbuffer_add(out, line, FILLER_LINE_LEN);
	}
	return 1;
}

/* The stream has been written completely. */
static void stream_done(struct conn *c)
{
	if (c->stream.endless) {
		evlog(c, "STREAM-END endless");
		set_state(c, CS_HOLD);
	} else {
		evlog(c, "STREAM-END huge");
		set_state(c, CS_COMMAND);
	}
}

/*
 * Fault injection at a phase (banner, EHLO/HELO, MAIL, RCPT): drop the
 * connection mid-reply, stream an endless line, or pad the normal reply
 * (code + lines) to a huge multi-line one.  Returns 1 if it answered.
 */
static int fault(struct conn *c, enum tsd_phase ph, int code, const char *const *lines, size_t n)
{
	const struct tsd_server *s = c->srv;
	struct evbuffer *out;
	if (s->drop_phase == ph) {
		evlog(c, "DROP %s", tsd_phase_name(ph));
		out = evbuffer_new();
		evbuffer_add_printf(out, "%03d-%s first line of a reply that never ends\r\n", code, s->hostname);
		c->close_reason = "drop";
		conn_emit(c, out, AFTER_CLOSE);
		return 1;
	}
	if (s->endless_phase == ph) {
		evlog(c, "ENDLESS %s %zu", tsd_phase_name(ph), s->endless_bytes);
		memset(&c->stream, 0, sizeof c->stream);
		c->stream.endless = 1;
		c->stream.left = s->endless_bytes;
		out = evbuffer_new();
		evbuffer_add_printf(out, "%03d %s ", code, s->hostname);
		conn_emit(c, out, AFTER_STREAM);
		return 1;
	}
	if (s->huge_phase == ph) {
		evlog(c, "HUGE %s %zu", tsd_phase_name(ph), s->huge_bytes);
		memset(&c->stream, 0, sizeof c->stream);
		c->stream.code = code;
		c->stream.left = (s->huge_bytes + FILLER_LINE_LEN - 1) / FILLER_LINE_LEN;
		struct evbuffer *tail = evbuffer_new();
		if (n > 1)
			format_reply(tail, code, lines + 1, n - 1, 0);
		else
			format_reply(tail, code, lines, 1, 0);
		size_t tl = evbuffer_get_length(tail);
		c->stream.tail = emv_xmalloc(tl + 1);
		evbuffer_remove(tail, c->stream.tail, tl);
		c->stream.tail[tl] = '\0';
		evbuffer_free(tail);
		out = evbuffer_new();
		evbuffer_add_printf(out, "%03d-%s\r\n", code, lines[0]);
		conn_emit(c, out, AFTER_STREAM);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* SMTP commands */

static void txn_reset(struct conn *c)
{
	c->in_mail = 0;
	c->sender[0] = '\0';
	c->rcpts = 0;
}

static const struct tsd_block *blocked(const struct conn *c, enum tsd_phase ph)
{
	for (size_t i = 0; i < c->srv->nblocks; i++) {
		if (c->srv->blocks[i].phase == ph && strcmp(c->srv->blocks[i].ip, c->client_ip) == 0)
			return &c->srv->blocks[i];
	}
	return NULL;
}

static void send_banner(struct conn *c)
{
	const struct tsd_server *s = c->srv;
	set_state(c, CS_COMMAND);
	if (blocked(c, TSD_PHASE_BANNER)) {
		evlog(c, "BANNER %d blocked", s->block_reply.code);
		reply_conf(c, &s->block_reply, AFTER_REFUSED, NULL);
		return;
	}
	if (s->banner_reply.code) {
		enum after a = AFTER_NONE;
		if (s->banner_reply.code == 421) {
			a = AFTER_CLOSE;
			c->close_reason = "banner-421";
		} else if (s->banner_reply.code >= 400) {
			a = AFTER_REFUSED;
		}
		evlog(c, "BANNER %d", s->banner_reply.code);
		reply_conf(c, &s->banner_reply, a, NULL);
		return;
	}
	char text[REPLY_TEXT_MAX];
	snprintf(text, sizeof text, "%s %s", s->hostname, s->banner_text);
	const char *lines[1] = { text };
	if (fault(c, TSD_PHASE_BANNER, 220, lines, 1))
		return;
	evlog(c, "BANNER 220");
	reply_lines(c, 220, AFTER_NONE, lines, 1);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (c->delayed) {
		/* a reply held back by latency is due */
		c->delayed = 0;
		c->tarpit = 0;
		bufferevent_write_buffer(c->bev, c->pending);
		apply_after(c, c->after);
	} else if (c->state == CS_GREETING) {
		send_banner(c);
	}
	conn_process(c);
}

static void cmd_ehlo(struct conn *c, char *arg, int extended)
{
	const struct tsd_server *s = c->srv;
	char name[256];
	if (extended && !s->ehlo) {
		bad(c, 502, "5.5.1 Error: command not implemented");
		return;
	}
	if (!*arg) {
		bad(c, 501, extended ? "5.5.4 Syntax: EHLO hostname" : "5.5.4 Syntax: HELO hostname");
		return;
	}
	safe_token(name, sizeof name, arg);
	evlog(c, "%s %s", extended ? "EHLO" : "HELO", name);
	txn_reset(c);
	c->helo = extended ? 2 : 1;

	const char *lines[REPLY_LINES_MAX];
	size_t n = 0;
	char first[REPLY_TEXT_MAX];
	snprintf(first, sizeof first, "%s", s->hostname);
	lines[n++] = first;
	if (extended) {
		if (s->pipelining)
			lines[n++] = "PIPELINING";
		lines[n++] = "SIZE 10240000";
		lines[n++] = "VRFY";
		if (s->starttls != TSD_TLS_NONE && !c->tls)
			lines[n++] = "STARTTLS";
		lines[n++] = "ENHANCEDSTATUSCODES";
		lines[n++] = "8BITMIME";
		if (s->smtputf8)
			lines[n++] = "SMTPUTF8";
		lines[n++] = "DSN";
	}
	if (fault(c, TSD_PHASE_EHLO, 250, lines, n))
		return;
	reply_lines(c, 250, AFTER_NONE, lines, n);
}

/* "FROM:<addr> [params]" -> addr.  0 on success. */
static int parse_path(const char *arg, const char *prefix, char *out, size_t outlen)
{
	size_t pl = strlen(prefix);
	if (strncasecmp(arg, prefix, pl) != 0)
		return -1;
	arg += pl;
	while (*arg == ' ')
		arg++;
	if (*arg != '<')
		return -1;
	const char *end = strchr(arg, '>');
	if (!end)
		return -1;
	arg++;
	/* obsolete source route "@a,@b:user@domain" */
	if (*arg == '@') {
		const char *colon = memchr(arg, ':', (size_t)(end - arg));
		if (!colon)
			return -1;
		arg = colon + 1;
	}
	size_t n = (size_t)(end - arg);
	if (n >= outlen)
		return -1;
	memcpy(out, arg, n);
	out[n] = '\0';
	return 0;
}

static void cmd_starttls(struct conn *c, const char *arg)
{
	const struct tsd_server *s = c->srv;
	if (s->starttls == TSD_TLS_NONE) {
		bad(c, 502, "5.5.1 Error: command not implemented");
		return;
	}
	if (c->tls) {
		bad(c, 554, "5.5.1 Error: TLS already active");
		return;
	}
	if (*arg) {
		bad(c, 501, "5.5.4 Syntax: STARTTLS");
		return;
	}
	evlog(c, "STARTTLS");
	txn_reset(c);
	c->helo = 0;
	if (s->starttls == TSD_TLS_BROKEN_GARBAGE || s->starttls == TSD_TLS_BROKEN_ABORT)
		reply(c, 220, AFTER_TLS_BROKEN, "2.0.0 Ready to start TLS");
	else
		reply(c, 220, AFTER_STARTTLS, "2.0.0 Ready to start TLS");
}

static void cmd_mail(struct conn *c, const char *arg)
{
	const struct tsd_server *s = c->srv;
	char addr[TSD_ADDR_MAX + 1], tok[TSD_ADDR_MAX + 1];
	if (s->starttls == TSD_TLS_REQUIRED && !c->tls) {
		evlog(c, "MAIL - 530");
		reply(c, 530, AFTER_NONE, "5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (!c->helo) {
		bad(c, 503, "5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (c->in_mail) {
		bad(c, 503, "5.5.1 Error: nested MAIL command");
		return;
	}
	if (parse_path(arg, "FROM:", addr, sizeof addr) != 0) {
		bad(c, 501, "5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	safe_token(tok, sizeof tok, addr);
	const char *lines[1] = { "2.1.0 Ok" };
	if (fault(c, TSD_PHASE_MAIL, 250, lines, 1)) {
		evlog(c, "MAIL %s fault", tok);
		return;
	}
	if (s->mail_reply.code) {
		evlog(c, "MAIL %s %d", tok, s->mail_reply.code);
		if (s->mail_reply.code < 300) {
			c->in_mail = 1;
			emv_strlcpy(c->sender, addr, sizeof c->sender);
			c->rcpts = 0;
		}
		reply_conf(c, &s->mail_reply, AFTER_NONE, tok);
		return;
	}
	evlog(c, "MAIL %s 250", tok);
	c->in_mail = 1;
	emv_strlcpy(c->sender, addr, sizeof c->sender);
	c->rcpts = 0;
	reply_lines(c, 250, AFTER_NONE, lines, 1);
}

static int domain_served(const struct tsd_server *s, const char *domain)
{
	if (s->ndomains == 0)
		return 1;
	for (size_t i = 0; i < s->ndomains; i++) {
		if (strcasecmp(s->domains[i], domain) == 0)
			return 1;
	}
	return 0;
}

static void cmd_rcpt(struct conn *c, const char *arg)
{
	const struct tsd_server *s = c->srv;
	char addr[TSD_ADDR_MAX + 1], tok[TSD_ADDR_MAX + 1];
	uint64_t now = emv_now_ms();
	int created;

	if (s->starttls == TSD_TLS_REQUIRED && !c->tls) {
		evlog(c, "RCPT - 530");
		reply(c, 530, AFTER_NONE, "5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (!c->in_mail) {
		bad(c, 503, "5.5.1 Error: need MAIL command");
		return;
	}
	if (parse_path(arg, "TO:", addr, sizeof addr) != 0 || addr[0] == '\0') {
		bad(c, 501, "5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	safe_token(tok, sizeof tok, addr);
	char *at = strrchr(addr, '@');
	const char *domain = at ? at + 1 : "";
	if (at)
		*at = '\0';
	const char *local = addr;
	if ((!at && strcasecmp(local, "postmaster") != 0) || !*local || (at && !*domain)) {
		evlog(c, "RCPT %s 501", tok);
		bad(c, 501, "5.1.3 Bad recipient address syntax");
		return;
	}

	const char *lines[1] = { "2.1.5 Ok" };
	if (fault(c, TSD_PHASE_RCPT, 250, lines, 1)) {
		evlog(c, "RCPT %s fault", tok);
		return;
	}
	if (blocked(c, TSD_PHASE_RCPT)) {
		evlog(c, "RCPT %s %d blocked", tok, s->block_reply.code);
		reply_conf(c, &s->block_reply, AFTER_NONE, tok);
		return;
	}
	if (s->rate_count) {
		struct tsd_map_entry *e = tsd_map_get(s->rates, c->client_ip, now, &created);
		if (now - e->t0 >= (uint64_t)s->rate_window_s * 1000u) {
			e->t0 = now;
			e->count = 0;
		}
		if (++e->count > s->rate_count) {
			evlog(c, "RCPT %s 450 rate-limited", tok);
			reply(c, 450, AFTER_NONE,
			      "4.7.1 Error: too many recipients from [%s], rate limited; try again later",
			      c->client_ip);
			return;
		}
	}
	if (s->max_rcpt && ++c->rcpts > s->max_rcpt) {
		evlog(c, "RCPT %s 452 too-many", tok);
		reply(c, 452, AFTER_NONE, "4.5.3 Error: too many recipients");
		return;
	}
	if (at && !domain_served(s, domain)) {
		evlog(c, "RCPT %s 554 relay", tok);
		reply(c, 554, AFTER_NONE, "5.7.1 <%s>: Relay access denied", tok);
		return;
	}
	if (s->greylist_s) {
		char key[3 * TSD_ADDR_MAX + 80];
		snprintf(key, sizeof key, "%s|%s|%s", c->client_ip, c->sender, tok);
		struct tsd_map_entry *e = tsd_map_get(s->greylist, key, now, &created);
		if (created || now - e->t0 < (uint64_t)s->greylist_s * 1000u) {
			evlog(c, "RCPT %s 451 greylisted", tok);
			reply(c, 451, AFTER_NONE, "4.7.1 Greylisted, please try again in %u seconds", s->greylist_s);
			return;
		}
	}
	const struct tsd_reply *r = &s->unknown_reply;
	for (size_t i = 0; i < s->nusers; i++) {
		if (strcasecmp(s->users[i].local, local) == 0) {
			r = &s->users[i].reply;
			break;
		}
	}
	evlog(c, "RCPT %s %d", tok, r->code);
	reply_conf(c, r, AFTER_NONE, tok);
}

static void handle_line(struct conn *c, char *line, size_t len)
{
	if (memchr(line, '\0', len)) {
		bad(c, 500, "5.5.2 Error: NUL byte in command");
		return;
	}
	char *arg = line;
	while (*arg && *arg != ' ')
		arg++;
	if (*arg)
		*arg++ = '\0';
	while (*arg == ' ')
		arg++;
	const char *verb = line;

	if (c->srv->err_hard && c->rejections >= c->srv->err_hard && strcasecmp(verb, "QUIT") != 0) {
		/* Postfix at smtpd_hard_error_limit */
		evlog(c, "ABUSE error-limit %u", c->rejections);
		c->close_reason = "too-many-errors";
		reply(c, 421, AFTER_CLOSE, "4.7.0 %s Error: too many errors", c->srv->hostname);
		return;
	}
	if (strcasecmp(verb, "QUIT") == 0) {
		evlog(c, "QUIT");
		c->close_reason = "quit";
		reply(c, 221, AFTER_CLOSE, "2.0.0 Bye");
		return;
	}
	if (c->state == CS_REFUSED) {
		bad(c, 503, "5.5.1 Error: service refused, send QUIT");
		return;
	}
	if (strcasecmp(verb, "EHLO") == 0) {
		cmd_ehlo(c, arg, 1);
	} else if (strcasecmp(verb, "HELO") == 0) {
		cmd_ehlo(c, arg, 0);
	} else if (strcasecmp(verb, "STARTTLS") == 0) {
		cmd_starttls(c, arg);
	} else if (strcasecmp(verb, "MAIL") == 0) {
		cmd_mail(c, arg);
	} else if (strcasecmp(verb, "RCPT") == 0) {
		cmd_rcpt(c, arg);
	} else if (strcasecmp(verb, "RSET") == 0) {
		evlog(c, "RSET");
		txn_reset(c);
		reply(c, 250, AFTER_NONE, "2.0.0 Ok");
	} else if (strcasecmp(verb, "NOOP") == 0) {
		reply(c, 250, AFTER_NONE, "2.0.0 Ok");
	} else if (strcasecmp(verb, "VRFY") == 0) {
		evlog(c, "VRFY");
		reply(c, 252, AFTER_NONE, "2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
	} else if (strcasecmp(verb, "DATA") == 0) {
		if (!c->in_mail) {
			evlog(c, "DATA 503");
			bad(c, 503, "5.5.1 Error: need RCPT command");
		} else {
			evlog(c, "DATA 554");
			reply(c, 554, AFTER_NONE, "5.7.0 Error: DATA is not accepted by this test server");
		}
	} else if (strcasecmp(verb, "HELP") == 0) {
		reply(c, 214, AFTER_NONE, "2.0.0 See RFC 5321");
	} else {
		char tok[64];
		safe_token(tok, sizeof tok, verb);
		evlog(c, "UNKNOWN %s", tok);
		bad(c, 500, "5.5.2 Error: command not recognized");
	}
}

static void line_too_long(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	evlog(c, "ABUSE line-too-long");
	c->close_reason = "line-too-long";
	reply(c, 500, AFTER_CLOSE, "5.5.2 Error: line too long");
}

/* Handle the complete lines in the input buffer, one reply at a time. */
static void conn_process(struct conn *c)
{
	/* In network latency mode commands already received keep being read
	 * while replies are held, as long as no reply changes the session
	 * (close, TLS): their replies leave together, one round trip later. */
	while ((c->state == CS_COMMAND || c->state == CS_REFUSED) &&
	       (!c->delayed || (c->srv->latency_network && !c->tarpit && c->after == AFTER_NONE))) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		size_t eol_len = 0;
		struct evbuffer_ptr pos = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (pos.pos < 0) {
			if (evbuffer_get_length(in) > g.cf->line_max)
				line_too_long(c);
			return;
		}
		size_t len = (size_t)pos.pos;
		if (len > g.cf->line_max) {
			line_too_long(c);
			return;
		}
		evbuffer_remove(in, g.line, len);
		g.line[len] = '\0';
		evbuffer_drain(in, eol_len);
		handle_line(c, g.line, len);
	}
}

/* ------------------------------------------------------------------ */
/* TLS */

static void tls_switch(struct conn *c)
{
	/* Anything the client sent after STARTTLS and before our 220 is a
	 * plaintext injection attempt (RFC 3207 section 5): discard it. */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_free(c->bev); /* plain bufferevent: does not own fd */
	SSL *ssl = SSL_new(g.ssl_ctx);
	if (!ssl) {
		c->bev = NULL;
		conn_free(c, "tls-ssl-new");
		return;
	}
	c->bev = bufferevent_openssl_socket_new(g.base, c->fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		SSL_free(ssl);
		conn_free(c, "tls-bufferevent");
		return;
	}
	c->tls = 1; /* ssl and fd now owned by c->bev */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bev_setup(c);
	set_state(c, CS_TLS_HANDSHAKE);
}

static void tls_ready(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	evlog(c, "TLS %s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	txn_reset(c);
	c->helo = 0; /* RFC 3207: forget everything learnt before TLS */
	set_state(c, CS_COMMAND);
}

static void tls_broken_react(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (c->srv->starttls == TSD_TLS_BROKEN_ABORT) {
		evlog(c, "TLSBROKEN abort");
		conn_free(c, "tls-abort");
		return;
	}
	evlog(c, "TLSBROKEN garbage");
	static const char garbage[] = "this is not a TLS ServerHello but garbage from emv-testsmtpd\r\n"
				      "\x01\x02\x03\xfe\xff garbage garbage garbage\r\n";
	bufferevent_write(c->bev, garbage, sizeof garbage - 1);
	c->close_reason = "tls-garbage";
	apply_after(c, AFTER_CLOSE);
}

/* ------------------------------------------------------------------ */
/* bufferevent callbacks */

/* After a callback: a client that has half-closed gets the replies to what
 * it sent, then the session ends; a closing session with nothing left to
 * write goes. */
static void conn_settle(struct conn *c)
{
	if (c->eof && !c->delayed && (c->state == CS_COMMAND || c->state == CS_REFUSED || c->state == CS_HOLD)) {
		c->close_reason = "client-closed";
		set_state(c, CS_CLOSING);
	}
	if (c->state == CS_CLOSING && !c->delayed && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_free(c, c->close_reason ? c->close_reason : "closed");
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	switch (c->state) {
	case CS_COMMAND:
	case CS_REFUSED: conn_process(c); break;
	case CS_TLS_BROKEN: tls_broken_react(c); return; /* may have freed c */
	case CS_HOLD: evbuffer_drain(in, evbuffer_get_length(in)); break;
	default: break; /* keep it buffered for later */
	}
	conn_settle(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	switch (c->state) {
	case CS_STREAM:
		if (!stream_fill(c)) {
			stream_done(c);
			conn_process(c);
		}
		break;
	case CS_TLS_SWITCH: tls_switch(c); return; /* may have freed c */
	default: break;
	}
	conn_settle(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		tls_ready(c);
		conn_process(c);
		conn_settle(c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    (c->state == CS_COMMAND || c->state == CS_REFUSED || c->state == CS_STREAM || c->state == CS_CLOSING)) {
		/* answer what is buffered; conn_settle() closes when done */
		c->eof = 1;
		bufferevent_disable(bev, EV_READ);
		conn_process(c);
		conn_settle(c);
		return;
	}
	const char *reason = "error";
	if (what & BEV_EVENT_EOF)
		reason = "client-closed";
	else if (what & BEV_EVENT_TIMEOUT)
		reason = (what & BEV_EVENT_READING) ? "idle-timeout" : "write-timeout";
	if (c->state == CS_TLS_HANDSHAKE) {
		char err[256] = "";
		unsigned long e;
		while ((e = bufferevent_get_openssl_error(bev)) != 0)
			ERR_error_string_n(e, err, sizeof err);
		char tok[256];
		safe_token(tok, sizeof tok, err[0] ? err : reason);
		evlog(c, "TLSFAIL %s", tok);
		reason = "tls-failed";
	}
	conn_free(c, reason);
}

/* ------------------------------------------------------------------ */
/* connections */

static void conn_free(struct conn *c, const char *reason)
{
	evlog(c, "CLOSE %s", reason);
	if (c->prev)
		c->prev->next = c->next;
	else
		g.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g.nconns--;
	if (c->timer)
		event_free(c->timer);
	if (c->pending)
		evbuffer_free(c->pending);
	free(c->stream.tail);
	if (c->bev)
		bufferevent_free(c->bev);
	if (!c->tls)
		evutil_closesocket(c->fd); /* a plain bufferevent never owns fd */
	free(c);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct listener_ctx *lc = arg;
	char cip[64] = "?";
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, cip, sizeof cip);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, cip, sizeof cip);

	if (g.nconns >= g.cf->max_connections) {
		static const char msg[] = "421 4.7.0 Error: too many connections, try again later\r\n";
		evlog_raw(lc->lst->ip, cip, "REFUSE too-many-connections");
		if (write(fd, msg, sizeof msg - 1) < 0) {
			/* best effort */
		}
		evutil_closesocket(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	struct conn *c = emv_xcalloc(1, sizeof *c);
	c->srv = lc->srv;
	c->lst = lc->lst;
	c->fd = fd;
	emv_strlcpy(c->client_ip, cip, sizeof c->client_ip);
	c->pending = evbuffer_new();
	c->bev = bufferevent_socket_new(g.base, fd, 0);
	if (!c->bev) {
		evbuffer_free(c->pending);
		free(c);
		evutil_closesocket(fd);
		return;
	}
	c->next = g.conns;
	if (g.conns)
		g.conns->prev = c;
	g.conns = c;
	g.nconns++;
	g.served++;
	bev_setup(c);
	c->state = CS_GREETING;
	evlog(c, "CONNECT %s", c->srv->name);

	if (c->srv->banner_delay_ms < 0)
		evlog(c, "TARPIT never");
	else if (c->srv->banner_delay_ms > 0)
		timer_start(c, (unsigned long)c->srv->banner_delay_ms);
	else
		send_banner(c);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	evconnlistener_enable(arg);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	emv_log(EMV_LOG_WARN, "testsmtpd", "accept: %s", evutil_socket_error_to_string(err));
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		/* out of descriptors: pause instead of spinning on the listener */
		struct timeval tv = { 0, ACCEPT_RETRY_MS * 1000 };
		evconnlistener_disable(evl);
		event_base_once(g.base, -1, EV_TIMEOUT, on_accept_retry, evl, &tv);
	}
}

/* ------------------------------------------------------------------ */
/* UDP blackhole: reads DNS queries and never answers */

static void on_blackhole(evutil_socket_t fd, short what, void *arg)
{
	char buf[4096];
	struct sockaddr_storage from;
	for (int i = 0; i < 64; i++) {
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
		if (n < 0)
			return;
		char cip[64] = "?";
		if (from.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&from)->sin_addr, cip, sizeof cip);
		else if (from.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&from)->sin6_addr, cip, sizeof cip);
		evlog_raw(g.blackhole.ip, cip, "DNSDROP %zd", n);
	}
}

/* ------------------------------------------------------------------ */
/* startup */

static int bind_socket(const struct sockaddr_storage *ss, socklen_t len, int type, char *err, size_t errlen)
{
	int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)ss, len) < 0) {
		snprintf(err, errlen, "bind: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int open_listeners(void)
{
	char err[256];
	for (size_t i = 0; i < g.cf->nservers; i++) {
		struct tsd_server *s = &g.cf->servers[i];
		for (size_t j = 0; j < s->nlistens; j++) {
			struct tsd_listen *l = &s->listens[j];
			l->fd = bind_socket(&l->ss, l->sslen, SOCK_STREAM, err, sizeof err);
			if (l->fd < 0) {
				int port = ntohs(l->ss.ss_family == AF_INET
							 ? ((struct sockaddr_in *)&l->ss)->sin_port
							 : ((struct sockaddr_in6 *)&l->ss)->sin6_port);
				fprintf(stderr, "emv-testsmtpd: server %s: cannot listen on %s port %d: %s%s\n",
					s->name, l->ip, port, err, l->optional ? " (optional, skipped)" : "");
				if (!l->optional)
					return EMV_ERR;
			}
		}
	}
	return EMV_OK;
}

static int tls_init(const char *cert, const char *key)
{
	int need = 0;
	for (size_t i = 0; i < g.cf->nservers; i++) {
		enum tsd_tls t = g.cf->servers[i].starttls;
		if (t == TSD_TLS_OFFERED || t == TSD_TLS_REQUIRED)
			need = 1;
	}
	if (!need)
		return EMV_OK;
	if (!cert || !key) {
		fprintf(stderr, "emv-testsmtpd: a server offers STARTTLS: --tls-cert and --tls-key are required\n");
		return EMV_ERR;
	}
	g.ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (!g.ssl_ctx || SSL_CTX_set_min_proto_version(g.ssl_ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(g.ssl_ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(g.ssl_ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(g.ssl_ctx) != 1) {
		char err[256];
		ERR_error_string_n(ERR_get_error(), err, sizeof err);
		fprintf(stderr, "emv-testsmtpd: TLS setup (%s, %s): %s\n", cert, key, err);
		return EMV_ERR;
	}
	SSL_CTX_set_options(g.ssl_ctx, SSL_OP_NO_RENEGOTIATION);
	return EMV_OK;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "emv-testsmtpd: cannot write pidfile %s: %s\n", path, strerror(errno));
		return EMV_ERR;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	return EMV_OK;
}

/* Fork into the background.  The parent returns only once the child is
 * ready (or has failed), so "emv-testsmtpd && connect" never races. */
static int daemonize(int *ready_fd)
{
	int p[2];
	if (pipe(p) < 0) {
		perror("emv-testsmtpd: pipe");
		return EMV_ERR;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("emv-testsmtpd: fork");
		return EMV_ERR;
	}
	if (pid > 0) {
		char b = 0;
		close(p[1]);
		ssize_t n;
		do {
			n = read(p[0], &b, 1);
		} while (n < 0 && errno == EINTR);
		_exit(n == 1 && b == 'k' ? 0 : 1);
	}
	close(p[0]);
	setsid();
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		/* stderr is kept: start.sh points it at a file (sanitizer reports) */
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	*ready_fd = p[1];
	return EMV_OK;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	if (sig == SIGHUP) {
		/* forget greylist and rate state, reopen the log (tests reset with kill -HUP) */
		for (size_t i = 0; i < g.cf->nservers; i++) {
			if (g.cf->servers[i].greylist)
				tsd_map_clear(g.cf->servers[i].greylist);
			if (g.cf->servers[i].rates)
				tsd_map_clear(g.cf->servers[i].rates);
		}
		log_open();
		evlog_raw("-", "-", "RESET");
		return;
	}
	emv_log(EMV_LOG_INFO, "testsmtpd", "signal %d: shutting down (%u connections open, %llu served)", (int)sig,
		g.nconns, g.served);
	event_base_loopexit(g.base, NULL);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: emv-testsmtpd --config FILE [--log FILE] [--pidfile FILE]\n"
		   "                     [--tls-cert PEM --tls-key PEM] [--udp-blackhole IP:PORT]\n"
		   "                     [-f|--foreground] [-v|--verbose] [--check]\n"
		   "       emv-testsmtpd --probe IP:PORT [--source IP] [--timeout MS] [--print N] [CMD...]\n"
		   "       emv-testsmtpd --dns-query IP:PORT NAME TYPE [--timeout MS] [--tcp]\n"
		   "Only loopback addresses (127.0.0.0/8, ::1) are accepted anywhere.\n");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--probe") == 0)
		return tsd_probe_main(argc, argv);
	if (argc > 1 && strcmp(argv[1], "--dns-query") == 0)
		return tsd_dnsq_main(argc, argv);

	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "log", required_argument, NULL, 'l' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "udp-blackhole", required_argument, NULL, 'u' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "check", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *pidfile = NULL, *cert = NULL, *key = NULL, *blackhole = NULL;
	int foreground = 0, check = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:l:p:fvh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'l': g.log_path = optarg; break;
		case 'p': pidfile = optarg; break;
		case 'C': cert = optarg; break;
		case 'K': key = optarg; break;
		case 'u': blackhole = optarg; break;
		case 'f': foreground = 1; break;
		case 'v': emv_log_threshold = emv_log_threshold < EMV_LOG_INFO ? EMV_LOG_INFO : EMV_LOG_DEBUG; break;
		case 'k': check = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!config || optind != argc) {
		usage(stderr);
		return 2;
	}
	char err[512];
	g.cf = tsd_config_load(config, err, sizeof err);
	if (!g.cf) {
		fprintf(stderr, "emv-testsmtpd: %s\n", err);
		return 2;
	}
	if (check) {
		printf("%s: %zu servers ok\n", config, g.cf->nservers);
		tsd_config_free(g.cf);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	int rc = 1, ready_fd = -1;
	if (log_open() != EMV_OK || tls_init(cert, key) != EMV_OK || open_listeners() != EMV_OK)
		goto out;
	if (blackhole) {
		struct sockaddr_storage ss;
		socklen_t sl;
		if (tsd_parse_hostport(blackhole, &ss, &sl, err, sizeof err) != EMV_OK) {
			fprintf(stderr, "emv-testsmtpd: --udp-blackhole: %s\n", err);
			goto out;
		}
		g.blackhole.fd = bind_socket(&ss, sl, SOCK_DGRAM, err, sizeof err);
		if (g.blackhole.fd < 0) {
			fprintf(stderr, "emv-testsmtpd: --udp-blackhole %s: %s\n", blackhole, err);
			goto out;
		}
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, g.blackhole.ip,
				  sizeof g.blackhole.ip);
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, g.blackhole.ip,
				  sizeof g.blackhole.ip);
	}
	if (!foreground && daemonize(&ready_fd) != EMV_OK)
		goto out;
	if (pidfile && write_pidfile(pidfile) != EMV_OK)
		goto out;

	g.base = event_base_new();
	if (!g.base) {
		fprintf(stderr, "emv-testsmtpd: event_base_new failed\n");
		goto out;
	}
	g.line = emv_xmalloc(g.cf->line_max + 1);
	size_t nl = 0;
	for (size_t i = 0; i < g.cf->nservers; i++)
		nl += g.cf->servers[i].nlistens;
	g.listeners = emv_xcalloc(nl, sizeof *g.listeners);
	for (size_t i = 0; i < g.cf->nservers; i++) {
		struct tsd_server *s = &g.cf->servers[i];
		if (s->greylist_s)
			s->greylist = tsd_map_new(g.cf->table_max);
		if (s->rate_count)
			s->rates = tsd_map_new(g.cf->table_max);
		for (size_t j = 0; j < s->nlistens; j++) {
			if (s->listens[j].fd < 0)
				continue;
			struct listener_ctx *lc = &g.listeners[g.nlisteners];
			lc->srv = s;
			lc->lst = &s->listens[j];
			/* backlog 0: the socket is already listening */
			lc->evl = evconnlistener_new(g.base, on_accept, lc, LEV_OPT_CLOSE_ON_FREE, 0, s->listens[j].fd);
			if (!lc->evl) {
				fprintf(stderr, "emv-testsmtpd: evconnlistener_new failed\n");
				goto out;
			}
			s->listens[j].fd = -1; /* now owned by lc->evl */
			evconnlistener_set_error_cb(lc->evl, on_accept_error);
			g.nlisteners++;
		}
	}
	if (g.blackhole.fd >= 0) {
		g.blackhole.ev = event_new(g.base, g.blackhole.fd, EV_READ | EV_PERSIST, on_blackhole, NULL);
		event_add(g.blackhole.ev, NULL);
	}
	g.sig_term = evsignal_new(g.base, SIGTERM, on_signal, NULL);
	g.sig_int = evsignal_new(g.base, SIGINT, on_signal, NULL);
	g.sig_hup = evsignal_new(g.base, SIGHUP, on_signal, NULL);
	event_add(g.sig_term, NULL);
	event_add(g.sig_int, NULL);
	event_add(g.sig_hup, NULL);

	evlog_raw("-", "-", "START %zu servers %zu listeners pid %ld", g.cf->nservers, g.nlisteners, (long)getpid());
	if (ready_fd >= 0) {
		if (write(ready_fd, "k", 1) != 1) {
			/* parent gone: keep serving anyway */
		}
		close(ready_fd);
		ready_fd = -1;
	}
	event_base_dispatch(g.base);
	evlog_raw("-", "-", "STOP");
	rc = 0;
out:
	if (ready_fd >= 0)
		close(ready_fd); /* parent exits 1 */
	while (g.conns)
		conn_free(g.conns, "shutdown");
	for (size_t i = 0; i < g.nlisteners; i++)
		evconnlistener_free(g.listeners[i].evl);
	free(g.listeners);
	for (size_t i = 0; i < g.cf->nservers; i++) {
		for (size_t j = 0; j < g.cf->servers[i].nlistens; j++) {
			if (g.cf->servers[i].listens[j].fd >= 0)
				close(g.cf->servers[i].listens[j].fd);
		}
	}
	if (g.blackhole.ev)
		event_free(g.blackhole.ev);
	if (g.blackhole.fd >= 0)
		close(g.blackhole.fd);
	if (g.sig_term)
		event_free(g.sig_term);
	if (g.sig_int)
		event_free(g.sig_int);
	if (g.sig_hup)
		event_free(g.sig_hup);
	if (g.base)
		event_base_free(g.base);
	if (g.ssl_ctx)
		SSL_CTX_free(g.ssl_ctx);
	if (pidfile && rc == 0)
		unlink(pidfile);
	if (g.log_fd >= 0)
		close(g.log_fd);
	free(g.line);
	tsd_config_free(g.cf);
	return rc;
}
