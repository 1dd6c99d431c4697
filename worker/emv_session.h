/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_session.h - one SMTP probe session to one mail server address.
 *
 * connect (bound to a source address) -> banner -> EHLO (HELO fallback) ->
 * STARTTLS when offered (opportunistic) -> EHLO -> MAIL FROM -> RCPT TO for
 * each recipient (pipelined when the server advertises PIPELINING and the
 * caller allows it) -> RSET + MAIL for the next transaction -> QUIT.
 * Never DATA.
 *
 * The session knows nothing about verdicts: it reports every exchange, each
 * recipient's reply and, once, how the session ended, through callbacks.
 * A server that answers "452 4.5.3 too many recipients" is handled here:
 * the recipients it did not take are sent again in a new transaction after
 * RSET, with the per-transaction limit lowered to what the server took.
 *
 * Error budget: servers count the commands they reject (an unknown user is
 * one) and defend themselves against address harvesting: Postfix delays
 * every reply by a second after smtpd_soft_error_limit (10) errors and hangs
 * up with 421 after smtpd_hard_error_limit (20).  A session spends at most
 * max_errors rejections: it never has more RCPTs in flight than errors
 * left, and when the budget is spent it says QUIT and leaves the remaining
 * recipients unanswered (outcome.cut) for the caller's next session.  When
 * replies slow down sharply after errors (a tarpit: two RCPT replies in a
 * row; one late reply alone may have its own reason, and the session then
 * sends one RCPT at a time until the next reply tells), or a 421 comes after
 * errors, the outcome says how many errors this server takes
 * (outcome.error_limit) and the session stops spending.
 *
 * With PIPELINING, moving on to the next transaction costs no round trip:
 * RSET, MAIL and the next RCPTs go in one flight (RFC 2920), and a server
 * that takes few recipients per transaction gets several transactions per
 * flight, never more RCPTs in flight than errors left.
 *
 * A session may outlive its recipients (params.keep_open): when every one is
 * answered with the error budget not nearly spent, it does not say QUIT but
 * hands its open connection to the caller in the outcome (outcome.open),
 * who asks the same server about other recipients in it (another domain
 * with the same mail server: emv_session_resume, RSET first), keeps it
 * idle for a while (emv_session_keep) or closes it (emv_session_close).  The
 * errors it spent stay counted: the server counts per connection.
 *
 * Every read is bounded (line length, reply size, lines per reply) and every
 * wait has a per-phase timeout; over a bound is a protocol failure.  The
 * callbacks must not free the session; after on_done the session frees
 * itself.
 */
#ifndef EMV_SESSION_H
#define EMV_SESSION_H

#include <stddef.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include "emv_reply.h"

struct event_base;

typedef struct {
	int port;		       /* SMTP port (25) */
	const char *helo_name;	       /* our EHLO/HELO name */
	const char *mail_from;	       /* reverse path, "" for the null sender <> */
	const struct sockaddr *source; /* bind to this address (may be NULL) */
	socklen_t source_len;
	int starttls;	  /* 1: use STARTTLS when offered */
	SSL_CTX *ssl_ctx; /* required when starttls */
	int pipelining;	  /* 1: pipeline MAIL+RCPTs when advertised */
	int rcpt_per_txn; /* recipients per transaction (>=1) */
	int max_errors;	  /* rejected commands per session, then QUIT (0: no limit) */
	int keep_open;	  /* 1: every recipient answered, hand the connection over (outcome.open) */
	/* timeouts in milliseconds */
	int timeout_connect, timeout_banner, timeout_ehlo, timeout_starttls, timeout_mail, timeout_rcpt, timeout_quit;
	size_t line_max;	/* longest reply line accepted (2048) */
	size_t reply_max;	/* largest multi-line reply accepted (65536) */
	size_t reply_lines_max; /* most lines in one reply (512) */
} emv_session_params;

void emv_session_params_default(emv_session_params *p);

/* How a session ended. */
typedef enum {
	EMV_SESS_OK = 0,   /* every recipient answered, QUIT sent */
	EMV_SESS_CONNECT,  /* could not connect (refused, unreachable) */
	EMV_SESS_TIMEOUT,  /* a phase timed out */
	EMV_SESS_TLS,	   /* the TLS handshake failed */
	EMV_SESS_PROTOCOL, /* the server broke the protocol (bad/oversized reply, early close) */
	EMV_SESS_REPLY,	   /* a reply ended the session (banner 554, MAIL rejected, 421...) */
	EMV_SESS_LOCAL,	   /* a local error (socket, bind) */
} emv_session_failure;

typedef struct {
	emv_session_failure failure;
	int phase; /* EMV_PHASE_* where it ended */
	int have_reply;
	emv_reply reply;      /* the reply that ended it (have_reply) */
	char detail[256];     /* human readable */
	char tls_version[16]; /* "" when plain */
	char local_ip[48];    /* our address on this connection ("" if never connected) */
	int starttls_offered;
	int pipelining_used;
	int smtputf8;		/* server advertised SMTPUTF8 */
	size_t answered;	/* recipients that got a reply */
	size_t rcpt_sent;	/* RCPT commands written (452 re-sends included) */
	int learned_rcpt_limit; /* >0 when a 452 taught us a per-transaction limit */
	unsigned errors;	/* replies >= 400 to our commands (EHLO, MAIL, RCPT, RSET) */
	int error_limit;	/* >0: errors this server takes before it slows down or
	                             hangs up (a tarpit or a 421 after errors was seen) */
	int cut;		/* ended by the error budget with recipients left unanswered */
	unsigned transactions;
	unsigned long duration_ms;
	unsigned rtt_ms; /* the EHLO round trip: the server's plain reply latency (0: none) */
	/* not NULL: every recipient answered and the connection open, in no
	 * transaction's way (keep_open): the receiver of on_done owns it and
	 * must resume, keep or close it */
	struct emv_session *open;
} emv_session_outcome;

typedef struct {
	/* a recipient's RCPT reply; r == NULL means it was not sent, with note saying why */
	void (*on_rcpt)(void *arg, size_t idx, const emv_reply *r, const char *note);
	/* every command/reply pair, for the evidence; command NULL for the banner;
	 * rcpt is the recipient index for RCPT exchanges, else -1 */
	void (*on_exchange)(void *arg, int phase, long rcpt, const char *command, const emv_reply *r);
	/* exactly once, last */
	void (*on_done)(void *arg, const emv_session_outcome *o);
} emv_session_cb;

typedef struct emv_session emv_session;

/*
 * Start a session to `mx` (port taken from params).  rcpts are full
 * addresses; needs_utf8 (may be NULL) marks those that need SMTPUTF8.
 * Returns NULL (and calls nothing) only on local setup failure; err says why.
 */
emv_session *emv_session_start(struct event_base *base, const emv_session_params *p, const struct sockaddr *mx,
			       socklen_t mxlen, const char *mx_host, const char *const *rcpts,
			       const unsigned char *needs_utf8, size_t nrcpt, const emv_session_cb *cb, void *arg,
			       char *err, size_t errlen);

/*
 * The same over a stream socket that is already connected (one end of a
 * socketpair in tests and the fuzzer, fuzz_session.c): no connect, no bind,
 * the server's greeting is awaited at once.  The session owns fd (closes it
 * when it ends); on NULL the caller still does.
 */
emv_session *emv_session_start_fd(struct event_base *base, const emv_session_params *p, int fd, const char *mx_host,
				  const char *const *rcpts, const unsigned char *needs_utf8, size_t nrcpt,
				  const emv_session_cb *cb, void *arg, char *err, size_t errlen);

/*
 * An open connection (outcome.open) asked about other recipients: RSET,
 * then MAIL and RCPTs as in a new session, with the callbacks, timeouts,
 * recipients per transaction and error budget of p; the errors spent before
 * count against it.  Returns 0, or -1 when this connection cannot serve
 * them (another HELO name or sender, a recipient needing SMTPUTF8 it does
 * not offer, the budget spent): nothing was sent, and the caller still owns
 * it.  mx_host names the server in logs.
 */
int emv_session_resume(emv_session *s, const emv_session_params *p, const char *mx_host, const char *const *rcpts,
		       const unsigned char *needs_utf8, size_t nrcpt, const emv_session_cb *cb, void *arg);

/* Keep an open connection idle: after idle_ms (0: now) it says QUIT and
 * frees itself; on_closed(arg) is called once when it is gone, for whatever
 * reason (the server closed it, sent something unasked, the QUIT), unless
 * it was resumed first. */
void emv_session_keep(emv_session *s, int idle_ms, void (*on_closed)(void *arg), void *arg);

/* Recipients asked over the connection so far, the current ones included. */
unsigned emv_session_recipients(const emv_session *s);

/* Say QUIT on an open connection and free it (emv_session_keep with 0 and
 * nobody to tell). */
void emv_session_close(emv_session *s);

/* Abort without calling back (owner shutting down). */
void emv_session_abort(emv_session *s);

const char *emv_session_failure_name(emv_session_failure f);

/* Shared opportunistic-TLS client context (no certificate verification:
 * STARTTLS to MX hosts is opportunistic, RFC 3207 §4.1). */
SSL_CTX *emv_session_ssl_ctx_new(char *err, size_t errlen);

#endif
