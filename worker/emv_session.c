/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_session.c - the SMTP probe session state machine (see emv_session.h).
 *
 * Shape: one enum of states with a name table; send_*() enters a state by
 * sending its command; on_reply() reads the reply at the head of the queue of
 * commands awaiting replies and picks the next state.  With PIPELINING the
 * queue holds MAIL and several RCPTs at once; without, one command.  Every
 * transition is traced at TRACE level.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include "emv_classify.h"
#include "emv_defaults.h"
#include "emv_session.h"
#include "emv_util.h"

enum state {
	S_CONNECTING,
	S_BANNER,
	S_EHLO,
	S_HELO,
	S_STARTTLS,
	S_TLS_HANDSHAKE,
	S_EHLO_TLS,
	S_TXN, /* MAIL/RCPT/RSET replies pending */
	S_QUIT,
	S_DONE,
	S_IDLE, /* every recipient answered, the connection kept (keep_open) */
};

static const char *const state_names[] = {
	"CONNECTING", "BANNER", "EHLO", "HELO", "STARTTLS", "TLS_HANDSHAKE", "EHLO_TLS", "TXN", "QUIT", "DONE", "IDLE",
};

enum cmd { C_MAIL, C_RCPT, C_RSET };

struct pend {
	enum cmd kind;
	size_t idx; /* recipient, for C_RCPT */
};

enum rcpt_state { R_UNSENT = 0, R_SENT, R_DONE };

struct emv_session {
	struct event_base *base;
	struct bufferevent *bev;
	struct event *timer;
	emv_session_params p;
	emv_session_cb cb;
	void *arg;
	enum state state;
	char mx_host[256];
	char peer[64];

	char **rcpts;
	unsigned char *utf8;
	unsigned char *rstate;
	size_t nrcpt;
	size_t cursor; /* no unsent recipient before this index */
	size_t unsent;

	struct pend *pend; /* FIFO of commands awaiting replies */
	size_t pend_cap, pend_head, pend_tail;

	emv_reply_parser parser;
	int ehlo_ok, starttls_offered, pipelining, smtputf8, tls_active, tls_tried;
	int mail_failed;     /* MAIL was refused: absorb pipelined RCPT replies */
	int txn_overflow;    /* a 452 too-many-recipients in this transaction */
	size_t txn_answered; /* recipients answered in this transaction */
	int rcpt_limit;	     /* current recipients per transaction */
	unsigned errors;     /* rejected commands so far */
	int budget;	     /* errors this session may spend (0: no limit) */
	uint64_t last_ms;    /* when we last wrote a command or read a reply */
	uint64_t rtt_ms;     /* the EHLO round trip: what a normal reply costs */
	unsigned slow_after; /* the last RCPT reply came late after this many errors (0: it did not) */

	emv_session_outcome out;
	int saved;		/* out holds a failure to report after QUIT */
	struct evbuffer *stage; /* commands of one pipelined group, written at once */
	uint64_t started_ms;
	/* kept open (S_IDLE, or its QUIT): whom to tell when it is gone */
	int kept;
	void (*on_closed)(void *arg);
	void *closed_arg;
	unsigned carried; /* recipients of the connection before the current ones */
};

static int ssl_bev_dirty_ok = 1;

void emv_session_params_default(emv_session_params *p)
{
	memset(p, 0, sizeof *p);
	p->port = EMV_DEF_SMTP_PORT;
	p->helo_name = "localhost";
	p->mail_from = "";
	p->starttls = 1;
	p->pipelining = EMV_DEF_PIPELINING;
	/* the same numbers as a provider policy's [default] (the engine puts
	 * the matching policy's over these; check asks without one) */
	p->rcpt_per_txn = EMV_DEF_RCPT_PER_TXN;
	p->max_errors = EMV_DEF_ERRORS_PER_SESSION;
	p->timeout_connect = EMV_DEF_CONNECT_TIMEOUT_MS;
	p->timeout_banner = EMV_DEF_REPLY_TIMEOUT_MS;
	p->timeout_ehlo = EMV_DEF_REPLY_TIMEOUT_MS;
	p->timeout_starttls = EMV_DEF_STARTTLS_TIMEOUT_MS;
	p->timeout_mail = EMV_DEF_REPLY_TIMEOUT_MS;
	p->timeout_rcpt = EMV_DEF_REPLY_TIMEOUT_MS;
	p->timeout_quit = EMV_DEF_QUIT_TIMEOUT_MS;
	p->line_max = EMV_DEF_LINE_MAX;
	p->reply_max = EMV_DEF_REPLY_MAX;
	p->reply_lines_max = EMV_DEF_REPLY_LINES_MAX;
}

const char *emv_session_failure_name(emv_session_failure f)
{
	static const char *const n[] = { "ok", "connect", "timeout", "tls", "protocol", "reply", "local" };
	return (unsigned)f < sizeof n / sizeof n[0] ? n[f] : "?";
}

SSL_CTX *emv_session_ssl_ctx_new(char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, errlen, "SSL_CTX_new: %s", ERR_error_string(ERR_get_error(), NULL));
		return NULL;
	}
	/* Opportunistic TLS: any encryption beats plain text, so accept old
	 * protocol versions and ciphers, and do not verify certificates
	 * (RFC 3207 §4.1; MX certificates are routinely self-signed). */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
	SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

/* ---- helpers ---- */

static int phase_of_state(const emv_session *s)
{
	switch (s->state) {
	case S_CONNECTING: return EMV_PHASE_CONNECT;
	case S_BANNER: return EMV_PHASE_BANNER;
	case S_EHLO:
	case S_EHLO_TLS: return EMV_PHASE_EHLO;
	case S_HELO: return EMV_PHASE_HELO;
	case S_STARTTLS:
	case S_TLS_HANDSHAKE: return EMV_PHASE_STARTTLS;
	case S_QUIT: return EMV_PHASE_QUIT;
	default:
		if (s->pend_head < s->pend_tail) {
			switch (s->pend[s->pend_head].kind) {
			case C_MAIL: return EMV_PHASE_MAIL;
			case C_RCPT: return EMV_PHASE_RCPT;
			case C_RSET: return EMV_PHASE_RSET;
			}
		}
		return EMV_PHASE_RCPT;
	}
}

static const char *phase_label(int phase)
{
	switch (phase) {
	case EMV_PHASE_CONNECT: return "connect";
	case EMV_PHASE_BANNER: return "banner";
	case EMV_PHASE_EHLO: return "EHLO";
	case EMV_PHASE_HELO: return "HELO";
	case EMV_PHASE_STARTTLS: return "STARTTLS";
	case EMV_PHASE_MAIL: return "MAIL FROM";
	case EMV_PHASE_RCPT: return "RCPT TO";
	case EMV_PHASE_RSET: return "RSET";
	case EMV_PHASE_QUIT: return "QUIT";
	default: return "?";
	}
}

static int timeout_of_phase(const emv_session *s, int phase)
{
	switch (phase) {
	case EMV_PHASE_CONNECT: return s->p.timeout_connect;
	case EMV_PHASE_BANNER: return s->p.timeout_banner;
	case EMV_PHASE_EHLO:
	case EMV_PHASE_HELO: return s->p.timeout_ehlo;
	case EMV_PHASE_STARTTLS: return s->p.timeout_starttls;
	case EMV_PHASE_MAIL:
	case EMV_PHASE_RSET: return s->p.timeout_mail;
	case EMV_PHASE_QUIT: return s->p.timeout_quit;
	default: return s->p.timeout_rcpt;
	}
}

static void arm_ms(emv_session *s, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(s->timer, &tv);
}

static void arm(emv_session *s)
{
	arm_ms(s, timeout_of_phase(s, phase_of_state(s)));
}

static void set_state(emv_session *s, enum state st)
{
	if (emv_log_enabled(EMV_LOG_TRACE))
		emv_log(EMV_LOG_TRACE, "session", "%s %s -> %s", s->peer, state_names[s->state], state_names[st]);
	s->state = st;
}

static void destroy(emv_session *s)
{
	if (s->bev)
		bufferevent_free(s->bev);
	if (s->timer)
		event_free(s->timer);
	for (size_t i = 0; i < s->nrcpt; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	free(s->utf8);
	free(s->rstate);
	free(s->pend);
	free(s);
}

/* The outcome to report now: what was recorded on the way, and the
 * session's own counters. */
static emv_session_outcome outcome_now(const emv_session *s)
{
	emv_session_outcome o = s->out;
	o.errors = s->errors;
	o.duration_ms = (unsigned long)(emv_now_ms() - s->started_ms);
	o.rtt_ms = (unsigned)s->rtt_ms;
	o.starttls_offered = s->starttls_offered;
	o.smtputf8 = s->smtputf8;
	return o;
}

/* End the session now: report and free.  Recipients still in flight are
 * returned to "unsent" so the caller sees them unanswered. */
static void finish(emv_session *s)
{
	emv_session_outcome o;
	emv_session_cb cb = s->cb;
	void *arg = s->arg;

	if (s->kept) { /* an idle connection's end: its recipients were reported */
		void (*fn)(void *) = s->on_closed;
		void *a = s->closed_arg;
		destroy(s);
		if (fn)
			fn(a);
		return;
	}
	o = outcome_now(s);
	set_state(s, S_DONE);
	destroy(s);
	cb.on_done(arg, &o);
}

static void fail(emv_session *s, emv_session_failure f, const emv_reply *r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record a failure.  When the connection is still in good order (the server
 * answered with a refusal) we say QUIT first; otherwise we just close. */
static void fail(emv_session *s, emv_session_failure f, const emv_reply *r, const char *fmt, ...)
{
	va_list ap;
	int phase = phase_of_state(s);

	s->out.failure = f;
	s->out.phase = phase;
	if (r) {
		s->out.have_reply = 1;
		s->out.reply = *r;
	}
	va_start(ap, fmt);
	vsnprintf(s->out.detail, sizeof s->out.detail, fmt, ap);
	va_end(ap);
	emv_log(EMV_LOG_DEBUG, "session", "%s (%s) %s: %s", s->peer, s->mx_host, phase_label(phase), s->out.detail);
	if (f == EMV_SESS_REPLY && r && r->code != 421 && s->bev) {
		s->saved = 1;
		evbuffer_add_printf(bufferevent_get_output(s->bev), "QUIT\r\n");
		set_state(s, S_QUIT);
		s->pend_head = s->pend_tail = 0;
		arm(s);
		return;
	}
	finish(s);
}

static void send_quit(emv_session *s);
static int next_unsent(emv_session *s, size_t *idx);
static void send_rcpt(emv_session *s, size_t i);
static void send_line(emv_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_line(emv_session *s, const char *fmt, ...)
{
	va_list ap;
	struct evbuffer *out = s->stage ? s->stage : bufferevent_get_output(s->bev);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	s->last_ms = emv_now_ms();
}

static int is_too_many(const emv_reply *r)
{
	return r->code == 452 && (strcmp(r->enhanced, "4.5.3") == 0 || strcasestr(r->text, "too many recipients"));
}

/* Rejections this session may still risk: RCPTs in flight at most. */
static int errors_left(const emv_session *s)
{
	int left;
	if (s->budget <= 0)
		return 1 << 30;
	left = s->budget > (int)s->errors ? s->budget - (int)s->errors : 0;
	return s->slow_after && left > 1 ? 1 : left; /* a tarpit suspected: one at a time */
}

/* Out of budget with recipients left: they stay unanswered for the
 * caller's next session. */
static void quit_cut(emv_session *s)
{
	s->out.cut = 1;
	emv_log(EMV_LOG_DEBUG, "session",
		"%s (%s): %u errors, error budget spent: QUIT, %zu recipient(s) left for "
		"another session",
		s->peer, s->mx_host, s->errors, s->unsent);
	send_quit(s);
}

/* Pipelined RCPTs for the open transaction: as many as it takes and the
 * error budget allows. */
static int send_flight(emv_session *s)
{
	int room = s->rcpt_limit - (int)s->txn_answered, left = errors_left(s), n = 0;
	size_t i;
	if (left < room)
		room = left;
	while (n < room && next_unsent(s, &i)) {
		send_rcpt(s, i);
		n++;
	}
	return n;
}

static void push(emv_session *s, enum cmd kind, size_t idx)
{
	if (s->pend_tail == s->pend_cap) { /* compact: the queue drains between flights */
		memmove(s->pend, s->pend + s->pend_head, (s->pend_tail - s->pend_head) * sizeof *s->pend);
		s->pend_tail -= s->pend_head;
		s->pend_head = 0;
	}
	if (s->pend_tail == s->pend_cap) { /* a flight of several transactions */
		s->pend_cap *= 2;
		s->pend = emv_xrealloc(s->pend, s->pend_cap * sizeof *s->pend);
	}
	s->pend[s->pend_tail].kind = kind;
	s->pend[s->pend_tail].idx = idx;
	s->pend_tail++;
}

static int next_unsent(emv_session *s, size_t *idx)
{
	while (s->cursor < s->nrcpt && s->rstate[s->cursor] != R_UNSENT)
		s->cursor++;
	if (s->cursor >= s->nrcpt)
		return 0;
	*idx = s->cursor;
	return 1;
}

static void send_rcpt(emv_session *s, size_t i)
{
	send_line(s, "RCPT TO:<%s>", s->rcpts[i]);
	s->out.rcpt_sent++;
	s->rstate[i] = R_SENT;
	s->unsent--;
	push(s, C_RCPT, i);
}

static void send_quit(emv_session *s)
{
	send_line(s, "QUIT");
	set_state(s, S_QUIT);
	arm(s);
}

static void exchange(emv_session *s, int phase, long rcpt, const char *cmd, const emv_reply *r)
{
	if (s->cb.on_exchange)
		s->cb.on_exchange(s->arg, phase, rcpt, cmd, r);
}

/* Recipients we cannot send are answered locally with a note. */
static void skip_unsendable(emv_session *s)
{
	for (size_t i = 0; i < s->nrcpt; i++) {
		if (s->rstate[i] == R_UNSENT && s->utf8 && s->utf8[i] && !s->smtputf8) {
			s->rstate[i] = R_DONE;
			s->unsent--;
			s->out.answered++;
			s->cb.on_rcpt(s->arg, i, NULL,
				      "the server does not support SMTPUTF8, needed for this local part");
		}
	}
}

/* An unsent recipient needs SMTPUTF8 on MAIL FROM. */
static int unsent_needs_utf8(const emv_session *s)
{
	for (size_t i = 0; s->utf8 && i < s->nrcpt; i++)
		if (s->rstate[i] == R_UNSENT && s->utf8[i])
			return 1;
	return 0;
}

/*
 * Whole transactions (RSET, MAIL, its RCPTs) added to the staged flight,
 * `inflight` RCPTs being in it already.  RFC 2920 lets RSET and MAIL
 * appear anywhere in a pipelined group, so moving on to the next
 * transaction costs no round trip of its own; a server that takes few
 * recipients per transaction (smtpd_recipient_limit = 1, the Microsoft
 * shape) gets several of them in one flight.  Never more RCPTs in flight
 * than errors left, as in every flight: the server sees the same commands,
 * in fewer round trips.
 */
static void stage_txns(emv_session *s, int inflight)
{
	int left = errors_left(s);
	size_t i;
	while (inflight < left && next_unsent(s, &i)) {
		int k = 0;
		send_line(s, "RSET");
		push(s, C_RSET, 1); /* 1: pipelined, its transaction follows */
		send_line(s, "MAIL FROM:<%s>%s", s->p.mail_from, unsent_needs_utf8(s) ? " SMTPUTF8" : "");
		push(s, C_MAIL, 0);
		while (k < s->rcpt_limit && inflight < left && next_unsent(s, &i)) {
			send_rcpt(s, i);
			k++;
			inflight++;
		}
	}
}

static void start_txn(emv_session *s)
{
	int need_utf8 = 0;

	skip_unsendable(s);
	if (s->unsent == 0) {
		send_quit(s);
		return;
	}
	if (errors_left(s) <= 0) {
		quit_cut(s);
		return;
	}
	need_utf8 = unsent_needs_utf8(s);
	s->mail_failed = 0;
	s->txn_overflow = 0;
	s->txn_answered = 0;
	s->out.transactions++;
	set_state(s, S_TXN);
	/* RFC 2920: MAIL and RCPTs may go in one write; staging them makes
	 * it one write (and one TLS record) instead of one per command */
	s->stage = evbuffer_new();
	send_line(s, "MAIL FROM:<%s>%s", s->p.mail_from, need_utf8 ? " SMTPUTF8" : "");
	push(s, C_MAIL, 0);
	if (s->pipelining) {
		int sent = send_flight(s);
		/* the transaction is full with room left in the flight: the
		 * next transactions ride along */
		if (sent >= s->rcpt_limit)
			stage_txns(s, sent);
		s->out.pipelining_used = 1;
	}
	bufferevent_write_buffer(s->bev, s->stage);
	evbuffer_free(s->stage);
	s->stage = NULL;
	arm(s);
}


/* ---- TLS ---- */

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

static void start_tls(emv_session *s)
{
	SSL *ssl = SSL_new(s->p.ssl_ctx);
	struct bufferevent *tls;
	struct in6_addr dummy;

	if (!ssl) {
		fail(s, EMV_SESS_LOCAL, NULL, "SSL_new failed");
		return;
	}
	/* SNI only for names, never for address literals (RFC 6066 §3) */
	if (inet_pton(AF_INET, s->mx_host, &dummy) != 1 && inet_pton(AF_INET6, s->mx_host, &dummy) != 1 &&
	    s->mx_host[0])
		SSL_set_tlsext_host_name(ssl, s->mx_host);
	tls = bufferevent_openssl_filter_new(s->base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		SSL_free(ssl);
		fail(s, EMV_SESS_LOCAL, NULL, "cannot set up TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tls, ssl_bev_dirty_ok);
	s->bev = tls; /* the plain bufferevent is now owned by the filter */
	s->tls_tried = 1;
	bufferevent_setcb(tls, read_cb, NULL, event_cb, s);
	bufferevent_setwatermark(tls, EV_READ, 0, s->p.line_max + 512);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	set_state(s, S_TLS_HANDSHAKE);
	arm(s);
}

static void tls_ready(emv_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
	s->tls_active = 1;
	emv_strlcpy(s->out.tls_version, ssl ? SSL_get_version(ssl) : "TLS", sizeof s->out.tls_version);
	/* RFC 3207 §4.2: forget everything learned before TLS and greet again */
	s->ehlo_ok = s->pipelining = s->smtputf8 = 0;
	send_line(s, "EHLO %s", s->p.helo_name);
	set_state(s, S_EHLO_TLS);
	arm(s);
}

/* ---- replies ---- */

static void after_ehlo(emv_session *s, const emv_reply *r)
{
	s->ehlo_ok = 1;
	s->pipelining = s->p.pipelining && emv_reply_has_keyword(r, "PIPELINING");
	s->smtputf8 = emv_reply_has_keyword(r, "SMTPUTF8");
	if (!s->tls_active) {
		s->starttls_offered = emv_reply_has_keyword(r, "STARTTLS");
		if (s->starttls_offered && s->p.starttls && s->p.ssl_ctx) {
			send_line(s, "STARTTLS");
			set_state(s, S_STARTTLS);
			arm(s);
			return;
		}
	}
	start_txn(s);
}

/* Every recipient answered: worth keeping for other recipients of this
 * server?  Not when the budget is (nearly) spent or the server showed
 * signs of defending itself. */
static int can_keep(const emv_session *s)
{
	return s->p.keep_open && s->out.failure == EMV_SESS_OK && !s->slow_after && !s->out.error_limit &&
	       !s->txn_overflow && errors_left(s) >= 2;
}

/* Hand the open connection over in the outcome (keep_open). */
static void go_idle(emv_session *s)
{
	emv_session_outcome o = outcome_now(s);
	emv_session_cb cb = s->cb;
	void *arg = s->arg;

	set_state(s, S_IDLE);
	evtimer_del(s->timer);
	o.open = s;
	s->carried += (unsigned)s->nrcpt;
	memset(&s->cb, 0, sizeof s->cb);
	s->arg = NULL;
	s->kept = 1;
	s->on_closed = NULL;
	s->closed_arg = NULL;
	cb.on_done(arg, &o); /* whoever gets it resumes, keeps or closes it */
}

/* Returns 1 when the session is gone or reading must stop. */
static int on_reply(emv_session *s, const emv_reply *r)
{
	int cls = r->code / 100;
	char cmd[600];
	uint64_t now = emv_now_ms(), gap = now - s->last_ms;
	unsigned before = s->errors;

	evtimer_del(s->timer);
	s->last_ms = now;
	if (s->state == S_EHLO || s->state == S_EHLO_TLS || s->state == S_HELO) {
		if (!s->rtt_ms || gap < s->rtt_ms)
			s->rtt_ms = gap ? gap : 1;
	} else if (s->state == S_TXN && before > 0 && !s->out.error_limit && s->rtt_ms && s->pend_head < s->pend_tail &&
		   s->pend[s->pend_head].kind == C_RCPT) {
		/* (RCPT replies only: a MAIL reply may be slow for a sender check) */
		if (gap <= 2 * s->rtt_ms + 700) {
			s->slow_after = 0; /* an earlier slow reply was a one-off */
		} else if (!s->slow_after) {
			/* One slow reply may have a reason of its own (Postfix
			 * creating a queue file for the first recipient it
			 * accepts in a transaction, on a busy disk); a tarpit
			 * slows down every reply.  The next one tells: until
			 * then one RCPT at a time (errors_left). */
			s->slow_after = before;
			emv_log(EMV_LOG_DEBUG, "session", "%s (%s): one reply %llu ms late after %u errors", s->peer,
				s->mx_host, (unsigned long long)(gap - s->rtt_ms), before);
		} else {
			/* replies slowed down after errors: a tarpit (Postfix's
			 * soft error limit).  Spend nothing more here;
			 * remember the limit. */
			s->out.error_limit = s->slow_after > 1 ? (int)s->slow_after - 1 : 1;
			s->budget = (int)before;
			emv_log(EMV_LOG_INFO, "session",
				"%s (%s): replies slowed down by %llu ms after %u errors: "
				"the server tarpits; at most %d errors per session from now on",
				s->peer, s->mx_host, (unsigned long long)(gap - s->rtt_ms), s->slow_after,
				s->out.error_limit);
		}
	}
	/* a 452 "too many recipients" is no error to Postfix (up to its
	 * smtpd_recipient_overshoot_limit of 1000): the transaction is full */
	if (r->code >= 400 && !is_too_many(r) &&
	    (s->state == S_EHLO || s->state == S_HELO || s->state == S_TXN || s->state == S_STARTTLS))
		s->errors++;
	switch (s->state) {
	case S_BANNER:
		exchange(s, EMV_PHASE_BANNER, -1, NULL, r);
		if (cls != 2) {
			fail(s, EMV_SESS_REPLY, r, "server refused the session at its greeting");
			return 1;
		}
		send_line(s, "EHLO %s", s->p.helo_name);
		set_state(s, S_EHLO);
		arm(s);
		return 0;
	case S_EHLO:
	case S_EHLO_TLS:
		snprintf(cmd, sizeof cmd, "EHLO %s", s->p.helo_name);
		exchange(s, EMV_PHASE_EHLO, -1, cmd, r);
		if (cls == 2) {
			after_ehlo(s, r);
			return 0;
		}
		if (r->code == 421 || s->state == S_EHLO_TLS) {
			fail(s, EMV_SESS_REPLY, r, "server refused EHLO");
			return 1;
		}
		send_line(s, "HELO %s", s->p.helo_name); /* RFC 5321 §3.2 fallback */
		set_state(s, S_HELO);
		arm(s);
		return 0;
	case S_HELO:
		snprintf(cmd, sizeof cmd, "HELO %s", s->p.helo_name);
		exchange(s, EMV_PHASE_HELO, -1, cmd, r);
		if (cls != 2) {
			fail(s, EMV_SESS_REPLY, r, "server refused HELO");
			return 1;
		}
		start_txn(s);
		return 0;
	case S_STARTTLS:
		exchange(s, EMV_PHASE_STARTTLS, -1, "STARTTLS", r);
		if (r->code == 220) {
			/* Anything already buffered was sent before the handshake:
			 * a STARTTLS injection attempt (CVE-2011-0411 class). */
			if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
				fail(s, EMV_SESS_PROTOCOL, r, "server sent data after its STARTTLS reply");
				return 1;
			}
			start_tls(s);
			return 1;
		}
		if (r->code == 421) {
			fail(s, EMV_SESS_REPLY, r, "server closed the session at STARTTLS");
			return 1;
		}
		start_txn(s); /* refused: carry on in plain text */
		return 0;
	case S_QUIT:
		exchange(s, EMV_PHASE_QUIT, -1, "QUIT", r);
		finish(s);
		return 1;
	case S_TXN: break;
	default: fail(s, EMV_SESS_PROTOCOL, r, "unexpected reply in state %s", state_names[s->state]); return 1;
	}

	if (s->pend_head == s->pend_tail) {
		fail(s, EMV_SESS_PROTOCOL, r, "reply received with no command outstanding");
		return 1;
	}
	struct pend pd = s->pend[s->pend_head++];
	switch (pd.kind) {
	case C_MAIL:
		snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>", s->p.mail_from);
		exchange(s, EMV_PHASE_MAIL, -1, cmd, r);
		if (cls != 2) {
			s->mail_failed = 1;
			s->out.failure = EMV_SESS_REPLY;
			s->out.phase = EMV_PHASE_MAIL;
			s->out.have_reply = 1;
			s->out.reply = *r;
			snprintf(s->out.detail, sizeof s->out.detail, "server refused our MAIL FROM");
		} else if (!s->pipelining) {
			size_t i;
			if (next_unsent(s, &i))
				send_rcpt(s, i);
		}
		break;
	case C_RCPT:
		snprintf(cmd, sizeof cmd, "RCPT TO:<%s>", s->rcpts[pd.idx]);
		exchange(s, EMV_PHASE_RCPT, (long)pd.idx, cmd, r);
		if (s->mail_failed) {
			s->rstate[pd.idx] = R_UNSENT; /* never really judged */
			s->unsent++;
			break;
		}
		if (r->code == 421) {
			s->rstate[pd.idx] = R_UNSENT;
			s->unsent++;
			/* the recipients still in flight were never judged either */
			for (size_t k = s->pend_head; k < s->pend_tail; k++)
				if (s->pend[k].kind == C_RCPT && s->rstate[s->pend[k].idx] == R_SENT) {
					s->rstate[s->pend[k].idx] = R_UNSENT;
					s->unsent++;
				}
			s->pend_head = s->pend_tail = 0;
			if (before > 0 && !s->out.error_limit) {
				/* hung up after errors: its hard limit; its soft one is
				 * lower (Postfix: 20 and 10) */
				s->out.error_limit = before > 1 ? (int)before / 2 : 1;
				fail(s, EMV_SESS_REPLY, r, "server closed the session during RCPT after %u errors",
				     before);
			} else {
				fail(s, EMV_SESS_REPLY, r, "server closed the session during RCPT");
			}
			return 1;
		}
		if (is_too_many(r) && s->txn_answered > 0) {
			s->rstate[pd.idx] = R_UNSENT;
			s->unsent++;
			if (pd.idx < s->cursor)
				s->cursor = pd.idx;
			if (!s->txn_overflow) {
				s->txn_overflow = 1;
				s->out.learned_rcpt_limit = (int)s->txn_answered;
				s->rcpt_limit = (int)s->txn_answered;
			}
			break;
		}
		s->rstate[pd.idx] = R_DONE;
		s->out.answered++;
		s->txn_answered++;
		s->cb.on_rcpt(s->arg, pd.idx, r, NULL);
		if (!s->pipelining && !s->txn_overflow && (int)s->txn_answered < s->rcpt_limit && errors_left(s) > 0) {
			size_t i;
			if (next_unsent(s, &i))
				send_rcpt(s, i);
		}
		break;
	case C_RSET:
		exchange(s, EMV_PHASE_RSET, -1, "RSET", r);
		if (cls != 2) {
			fail(s, EMV_SESS_REPLY, r, "server refused RSET");
			return 1;
		}
		if (!pd.idx) {
			start_txn(s);
			return 0;
		}
		/* pipelined: its transaction's replies follow.  A refused MAIL
		 * before it still ends the session when the flight is answered */
		if (!s->mail_failed) {
			s->txn_overflow = 0;
			s->txn_answered = 0;
		}
		s->out.transactions++;
		break;
	}

	if (s->pend_head < s->pend_tail) {
		arm(s);
		return 0;
	}
	/* transaction complete */
	s->pend_head = s->pend_tail = 0;
	if (s->mail_failed) {
		emv_reply saved = s->out.reply;
		fail(s, EMV_SESS_REPLY, &saved, "server refused our MAIL FROM");
		return 1;
	}
	skip_unsendable(s);
	if (s->unsent > 0 && errors_left(s) <= 0) {
		quit_cut(s);
		return 0;
	}
	if (s->unsent > 0 && s->pipelining && !s->txn_overflow && (int)s->txn_answered < s->rcpt_limit) {
		/* the transaction has room: the next flight, sized by the budget */
		int sent;
		s->stage = evbuffer_new();
		sent = send_flight(s);
		if (sent > 0 && (int)s->txn_answered + sent >= s->rcpt_limit)
			stage_txns(s, sent);
		bufferevent_write_buffer(s->bev, s->stage);
		evbuffer_free(s->stage);
		s->stage = NULL;
		if (sent > 0) {
			arm(s);
			return 0;
		}
	}
	if (s->unsent > 0 && s->pipelining) {
		/* the next transaction(s) in one flight with their RSET */
		s->stage = evbuffer_new();
		stage_txns(s, 0);
		bufferevent_write_buffer(s->bev, s->stage);
		evbuffer_free(s->stage);
		s->stage = NULL;
		arm(s);
		return 0;
	}
	if (s->unsent > 0) {
		send_line(s, "RSET");
		push(s, C_RSET, 0);
		arm(s);
		return 0;
	}
	if (can_keep(s)) {
		go_idle(s);
		return 1;
	}
	send_quit(s);
	return 0;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	emv_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char err[160];

	for (;;) {
		size_t eol_len = 0;
		struct evbuffer_ptr ptr = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		size_t len;
		const char *line;
		emv_reply_status st;

		if (ptr.pos < 0) {
			if (evbuffer_get_length(in) > s->p.line_max) {
				fail(s, EMV_SESS_PROTOCOL, NULL, "reply line longer than %zu bytes during %s",
				     s->p.line_max, phase_label(phase_of_state(s)));
			}
			return;
		}
		len = (size_t)ptr.pos;
		if (len > s->p.line_max) {
			fail(s, EMV_SESS_PROTOCOL, NULL, "reply line longer than %zu bytes during %s", s->p.line_max,
			     phase_label(phase_of_state(s)));
			return;
		}
		if (s->state == S_CONNECTING || s->state == S_TLS_HANDSHAKE || s->state == S_IDLE ||
		    (s->state == S_TXN && s->pend_head == s->pend_tail)) {
			fail(s, EMV_SESS_PROTOCOL, NULL, "unexpected data from the server in state %s",
			     state_names[s->state]);
			return;
		}
		line = (const char *)evbuffer_pullup(in, (ssize_t)(len + eol_len));
		st = emv_reply_parser_feed(&s->parser, line, len, err, sizeof err);
		evbuffer_drain(in, len + eol_len);
		if (st == EMV_REPLY_ERROR) {
			fail(s, EMV_SESS_PROTOCOL, NULL, "bad reply during %s: %s", phase_label(phase_of_state(s)),
			     err);
			return;
		}
		if (st == EMV_REPLY_DONE) {
			emv_reply r = s->parser.r;
			if (on_reply(s, &r))
				return;
		}
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	emv_session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == S_CONNECTING) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof ss;
			evtimer_del(s->timer);
			if (getsockname(bufferevent_getfd(bev), (struct sockaddr *)&ss, &sl) == 0) {
				if (ss.ss_family == AF_INET)
					inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, s->out.local_ip,
						  sizeof s->out.local_ip);
				else if (ss.ss_family == AF_INET6)
					inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, s->out.local_ip,
						  sizeof s->out.local_ip);
			}
			set_state(s, S_BANNER);
			arm(s);
		} else if (s->state == S_TLS_HANDSHAKE) {
			evtimer_del(s->timer);
			tls_ready(s);
		}
		return;
	}
	if (s->state == S_QUIT) { /* the server closed after our QUIT: fine */
		finish(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();
		unsigned long ssl_err = bufferevent_get_openssl_error(bev);
		if (s->state == S_CONNECTING) {
			fail(s, EMV_SESS_CONNECT, NULL, "connect to %s failed: %s", s->peer, strerror(e));
		} else if (s->state == S_TLS_HANDSHAKE || ssl_err) {
			char buf[160] = "handshake failed";
			if (ssl_err)
				ERR_error_string_n(ssl_err, buf, sizeof buf);
			if (s->state == S_TLS_HANDSHAKE)
				fail(s, EMV_SESS_TLS, NULL, "TLS handshake with %s failed: %s", s->peer, buf);
			else
				fail(s, EMV_SESS_PROTOCOL, NULL, "TLS error during %s: %s",
				     phase_label(phase_of_state(s)), buf);
		} else {
			fail(s, EMV_SESS_PROTOCOL, NULL, "connection error during %s: %s",
			     phase_label(phase_of_state(s)), strerror(e));
		}
		return;
	}
	if (what & BEV_EVENT_EOF) {
		if (s->state == S_TLS_HANDSHAKE)
			fail(s, EMV_SESS_TLS, NULL, "server closed the connection during the TLS handshake");
		else
			fail(s, EMV_SESS_PROTOCOL, NULL, "server closed the connection during %s%s",
			     phase_label(phase_of_state(s)), s->parser.in_progress ? " (mid-reply)" : "");
	}
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	emv_session *s = arg;
	int phase = phase_of_state(s);

	if (s->state == S_QUIT) {
		finish(s);
		return;
	}
	if (s->state == S_IDLE) { /* kept long enough: goodbye */
		send_quit(s);
		return;
	}
	fail(s, s->state == S_TLS_HANDSHAKE ? EMV_SESS_TLS : EMV_SESS_TIMEOUT, NULL, "no %s from %s within %d ms",
	     s->state == S_CONNECTING	   ? "connection"
	     : s->state == S_TLS_HANDSHAKE ? "TLS handshake"
					   : "reply",
	     s->peer, timeout_of_phase(s, phase));
}

/* ---- start ---- */

static int rcpt_is_safe(const char *a)
{
	for (; *a; a++)
		if ((unsigned char)*a < 0x20 || *a == 0x7f || *a == '<' || *a == '>')
			return 0;
	return 1;
}

/* The recipients to ask (copied), in place of any before, all unsent. */
static void set_rcpts(emv_session *s, const char *const *rcpts, const unsigned char *needs_utf8, size_t nrcpt)
{
	for (size_t i = 0; i < s->nrcpt; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	free(s->rstate);
	free(s->utf8);
	s->utf8 = NULL;
	s->nrcpt = nrcpt;
	s->unsent = nrcpt;
	s->cursor = 0;
	s->rcpts = emv_xcalloc(nrcpt ? nrcpt : 1, sizeof *s->rcpts);
	s->rstate = emv_xcalloc(nrcpt ? nrcpt : 1, 1);
	for (size_t i = 0; i < nrcpt; i++)
		s->rcpts[i] = emv_xstrdup(rcpts[i]);
	if (needs_utf8) {
		s->utf8 = emv_xmalloc(nrcpt ? nrcpt : 1);
		memcpy(s->utf8, needs_utf8, nrcpt);
	}
}

/* Check the caller's strings and build a session in no state yet (no
 * socket); NULL with err on a bad argument. */
static emv_session *session_new(struct event_base *base, const emv_session_params *p, const char *mx_host,
				const char *peer, const char *const *rcpts, const unsigned char *needs_utf8,
				size_t nrcpt, const emv_session_cb *cb, void *arg, char *err, size_t errlen)
{
	emv_session *s;

	if (!rcpt_is_safe(p->mail_from) || !p->helo_name || !rcpt_is_safe(p->helo_name)) {
		snprintf(err, errlen, "MAIL FROM or HELO name contains control characters");
		return NULL;
	}
	for (size_t i = 0; i < nrcpt; i++) {
		if (!rcpt_is_safe(rcpts[i])) {
			snprintf(err, errlen, "recipient %zu contains control characters or angle brackets", i);
			return NULL;
		}
	}
	s = emv_xcalloc(1, sizeof *s);
	s->base = base;
	s->p = *p;
	if (s->p.rcpt_per_txn < 1)
		s->p.rcpt_per_txn = 1;
	s->rcpt_limit = s->p.rcpt_per_txn;
	s->budget = s->p.max_errors;
	s->cb = *cb;
	s->arg = arg;
	s->started_ms = emv_now_ms();
	emv_strlcpy(s->mx_host, mx_host ? mx_host : "", sizeof s->mx_host);
	emv_strlcpy(s->peer, peer, sizeof s->peer);
	set_rcpts(s, rcpts, needs_utf8, nrcpt);
	s->pend_cap = (size_t)s->p.rcpt_per_txn + 4;
	s->pend = emv_xcalloc(s->pend_cap, sizeof *s->pend);
	emv_reply_parser_init(&s->parser, s->p.reply_max, s->p.reply_lines_max);
	s->timer = evtimer_new(base, on_timeout, s);
	return s;
}

static void watch(emv_session *s, evutil_socket_t fd)
{
	s->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, read_cb, NULL, event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, s->p.line_max + 512);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

emv_session *emv_session_start(struct event_base *base, const emv_session_params *p, const struct sockaddr *mx,
			       socklen_t mxlen, const char *mx_host, const char *const *rcpts,
			       const unsigned char *needs_utf8, size_t nrcpt, const emv_session_cb *cb, void *arg,
			       char *err, size_t errlen)
{
	emv_session *s;
	evutil_socket_t fd;
	char host[INET6_ADDRSTRLEN] = "?", peer[64];
	int port = p->port > 0 ? p->port : 25;

	if (mx->sa_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)mx;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
	} else if (mx->sa_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)mx;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
	} else {
		snprintf(err, errlen, "unsupported address family %d", mx->sa_family);
		return NULL;
	}
	snprintf(peer, sizeof peer, mx->sa_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
	s = session_new(base, p, mx_host, peer, rcpts, needs_utf8, nrcpt, cb, arg, err, errlen);
	if (!s)
		return NULL;

	fd = socket(mx->sa_family, SOCK_STREAM, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		destroy(s);
		return NULL;
	}
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	if (p->source && p->source->sa_family == mx->sa_family) {
		if (bind(fd, p->source, p->source_len) < 0) {
			snprintf(err, errlen, "cannot bind to the source address: %s", strerror(errno));
			close(fd);
			destroy(s);
			return NULL;
		}
	}
	watch(s, fd);
	struct sockaddr_storage ss;
	memcpy(&ss, mx, mxlen < sizeof ss ? mxlen : sizeof ss);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
	s->state = S_CONNECTING;
	arm(s);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss, (int)mxlen) < 0) {
		/* immediate failure (e.g. no route): the caller treats NULL
		 * like a failed connection */
		snprintf(err, errlen, "connect to %s failed: %s", s->peer, strerror(errno));
		destroy(s);
		return NULL;
	}
	return s;
}

emv_session *emv_session_start_fd(struct event_base *base, const emv_session_params *p, int fd, const char *mx_host,
				  const char *const *rcpts, const unsigned char *needs_utf8, size_t nrcpt,
				  const emv_session_cb *cb, void *arg, char *err, size_t errlen)
{
	emv_session *s = session_new(base, p, mx_host, "fd", rcpts, needs_utf8, nrcpt, cb, arg, err, errlen);

	if (!s)
		return NULL;
	snprintf(s->peer, sizeof s->peer, "fd %d", fd);
	evutil_make_socket_nonblocking(fd);
	watch(s, fd);
	s->state = S_BANNER; /* connected already: the greeting is next */
	arm(s);
	return s;
}

int emv_session_resume(emv_session *s, const emv_session_params *p, const char *mx_host, const char *const *rcpts,
		       const unsigned char *needs_utf8, size_t nrcpt, const emv_session_cb *cb, void *arg)
{
	emv_session_outcome o;

	if (s->state != S_IDLE || nrcpt == 0 || !p->helo_name || strcmp(p->helo_name, s->p.helo_name) != 0 ||
	    strcmp(p->mail_from, s->p.mail_from) != 0)
		return -1;
	if (p->max_errors > 0 && p->max_errors - (int)s->errors < 1)
		return -1; /* this connection has spent what the new budget allows */
	for (size_t i = 0; i < nrcpt; i++)
		if (!rcpt_is_safe(rcpts[i]) || (needs_utf8 && needs_utf8[i] && !s->smtputf8))
			return -1;
	evtimer_del(s->timer);
	set_rcpts(s, rcpts, needs_utf8, nrcpt);
	/* this batch's limits and timeouts; the greeting, TLS and extensions
	 * are the connection's */
	s->p.rcpt_per_txn = p->rcpt_per_txn < 1 ? 1 : p->rcpt_per_txn;
	s->p.max_errors = p->max_errors;
	s->p.keep_open = p->keep_open;
	s->p.timeout_mail = p->timeout_mail;
	s->p.timeout_rcpt = p->timeout_rcpt;
	s->p.timeout_quit = p->timeout_quit;
	s->rcpt_limit = s->p.rcpt_per_txn;
	s->budget = p->max_errors;
	s->cb = *cb;
	s->arg = arg;
	s->kept = 0;
	s->on_closed = NULL;
	s->closed_arg = NULL;
	emv_strlcpy(s->mx_host, mx_host ? mx_host : "", sizeof s->mx_host);
	memset(&o, 0, sizeof o);
	memcpy(o.tls_version, s->out.tls_version, sizeof o.tls_version);
	memcpy(o.local_ip, s->out.local_ip, sizeof o.local_ip);
	o.pipelining_used = s->out.pipelining_used;
	s->out = o;
	s->started_ms = emv_now_ms();
	s->pend_head = s->pend_tail = 0;
	s->mail_failed = 0;
	s->txn_overflow = 0;
	s->txn_answered = 0;
	set_state(s, S_TXN);
	if (s->pipelining) { /* RSET, MAIL and the first RCPTs in one flight */
		s->stage = evbuffer_new();
		stage_txns(s, 0);
		bufferevent_write_buffer(s->bev, s->stage);
		evbuffer_free(s->stage);
		s->stage = NULL;
	} else {
		send_line(s, "RSET");
		push(s, C_RSET, 0);
	}
	arm(s);
	return 0;
}

void emv_session_keep(emv_session *s, int idle_ms, void (*on_closed)(void *arg), void *arg)
{
	s->on_closed = on_closed;
	s->closed_arg = arg;
	if (idle_ms <= 0) {
		send_quit(s);
	} else {
		arm_ms(s, idle_ms);
	}
}

unsigned emv_session_recipients(const emv_session *s)
{
	return s->state == S_IDLE ? s->carried : s->carried + (unsigned)s->nrcpt;
}

void emv_session_close(emv_session *s)
{
	emv_session_keep(s, 0, NULL, NULL);
}

void emv_session_abort(emv_session *s)
{
	if (s)
		destroy(s);
}
