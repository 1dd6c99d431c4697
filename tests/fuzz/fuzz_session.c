/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_session.c - libFuzzer target for the SMTP probe session state
 * machine (worker/emv_session.c): the real session, started with
 * emv_session_start_fd() on one end of a socketpair, reads arbitrary server
 * bytes written to the other end - banner, multi-line replies, EHLO
 * capability lists, STARTTLS answers (a 220 starts a real TLS handshake
 * that then reads the rest as TLS records), replies to pipelined MAIL/RCPT/
 * RSET, over-long lines - cut into reads at points the input chooses.
 *
 * Input: byte 0 and 1 pick the session's parameters, the rest is what the
 * server sends.
 *   byte 0: bit 0 STARTTLS allowed, bit 1 pipelining allowed, bit 2 the
 *           second recipient needs SMTPUTF8, bits 3-4 line_max (2048, 64,
 *           512, 128), bits 5-7 max_errors (0 = no limit .. 7)
 *   byte 1: bits 0-2 recipients - 1 (1..8), bits 3-4 rcpt_per_txn - 1
 *           (1..4), bits 5-7 the read size (0: all at once; else chunks of
 *           1, 2, 3, 7, 13, 61, 509 bytes, the loop run between chunks)
 * After the last byte the server side shuts down its write side: the
 * session must end (on_done exactly once) promptly.
 *
 * Checked: callbacks only before on_done, on_done exactly once; recipient
 * indexes in range, each recipient answered at most once, every reply
 * well formed (code 200..599, printable text); the outcome's counts agree
 * with the callbacks; a session that ends OK and not cut answered every
 * recipient; nothing leaks (LeakSanitizer).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include "emv_classify.h"
#include "emv_session.h"
#include "emv_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RCPT_MAX 8

static struct event_base *base;
static SSL_CTX *ssl;

struct run {
	size_t nrcpt;
	int done;
	unsigned answered_cb; /* on_rcpt calls with a reply */
	unsigned noted_cb;    /* on_rcpt calls without (not sent, with a note) */
	unsigned char answered[RCPT_MAX];
	emv_session_outcome out;
};

static void check_reply(const emv_reply *r)
{
	if (!r || r->code < 200 || r->code > 599 || r->nlines < 1 || r->text_len >= EMV_REPLY_TEXT_MAX ||
	    strlen(r->text) != r->text_len)
		abort();
	for (size_t i = 0; i < r->text_len; i++) {
		unsigned char c = (unsigned char)r->text[i];
		if (c != '\n' && (c < 0x20 || c > 0x7e))
			abort();
	}
}

static void on_rcpt(void *arg, size_t idx, const emv_reply *r, const char *note)
{
	struct run *run = arg;

	if (run->done || idx >= run->nrcpt || run->answered[idx])
		abort(); /* after the end, out of range, or answered twice */
	run->answered[idx] = 1;
	if (r) {
		check_reply(r);
		run->answered_cb++;
	} else {
		if (!note || !*note)
			abort();
		run->noted_cb++;
	}
}

static void on_exchange(void *arg, int phase, long rcpt, const char *command, const emv_reply *r)
{
	struct run *run = arg;

	if (run->done || phase < 0 || phase >= EMV_PHASE__COUNT || rcpt < -1 || rcpt >= (long)run->nrcpt)
		abort();
	if ((phase == EMV_PHASE_RCPT) != (rcpt >= 0) || (phase != EMV_PHASE_BANNER && !command))
		abort();
	check_reply(r);
}

static void on_done(void *arg, const emv_session_outcome *o)
{
	struct run *run = arg;

	if (run->done++)
		abort(); /* twice */
	run->out = *o;
	if ((unsigned)o->failure > EMV_SESS_LOCAL || o->answered != run->answered_cb + run->noted_cb ||
	    o->answered > run->nrcpt || o->rcpt_sent < run->answered_cb)
		abort();
	if (o->have_reply)
		check_reply(&o->reply);
	/* "OK" means every recipient was answered, unless the error budget cut it */
	if (o->failure == EMV_SESS_OK && !o->cut && o->answered != run->nrcpt)
		abort();
	if (strlen(o->detail) >= sizeof o->detail)
		abort();
}

static void drain(int fd)
{
	char buf[4096];
	while (read(fd, buf, sizeof buf) > 0)
		;
}

/* Write all of buf (the socket buffer may be full: let the session read). */
static void send_all(int fd, const uint8_t *buf, size_t len, struct run *run)
{
	while (len > 0 && !run->done) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return; /* the session closed its end */
			event_base_loop(base, EVLOOP_NONBLOCK);
			drain(fd);
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t line_max[] = { 2048, 64, 512, 128 };
	static const size_t chunks[] = { 0, 1, 2, 3, 7, 13, 61, 509 };
	static const char *const rcpts[RCPT_MAX] = {
		"a@example.test", "b@example.test", "c@example.test", "d@example.test",
		"e@example.test", "f@example.test", "g@example.test", "h@example.test",
	};
	unsigned char utf8[RCPT_MAX] = { 0 };
	emv_session_params p;
	emv_session_cb cb = { on_rcpt, on_exchange, on_done };
	struct run run;
	emv_session *s;
	char err[256];
	int sv[2];
	size_t chunk;
	uint64_t t0;

	if (!base) {
		emv_log_threshold = EMV_LOG_ERROR;
		base = event_base_new();
		if (!(ssl = emv_session_ssl_ctx_new(err, sizeof err)))
			abort();
	}
	if (size < 2)
		return 0;
	memset(&run, 0, sizeof run);
	emv_session_params_default(&p);
	p.helo_name = "probe.example.test";
	p.mail_from = "probe@example.test";
	p.starttls = data[0] & 1;
	p.ssl_ctx = ssl;
	p.pipelining = (data[0] >> 1) & 1;
	utf8[1] = (data[0] >> 2) & 1;
	p.line_max = line_max[(data[0] >> 3) & 3];
	p.max_errors = data[0] >> 5;
	p.reply_max = 4096;
	p.reply_lines_max = 16;
	run.nrcpt = 1 + (data[1] & 7);
	p.rcpt_per_txn = 1 + ((data[1] >> 3) & 3);
	chunk = chunks[data[1] >> 5];
	/* a session stalled waiting must end soon, not in 30 s */
	p.timeout_connect = p.timeout_banner = p.timeout_ehlo = p.timeout_starttls = 300;
	p.timeout_mail = p.timeout_rcpt = p.timeout_quit = 300;
	data += 2;
	size -= 2;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	evutil_make_socket_nonblocking(sv[1]);
	s = emv_session_start_fd(base, &p, sv[0], "mx.example.test", rcpts, utf8, run.nrcpt, &cb, &run, err,
				 sizeof err);
	if (!s)
		abort();
	for (size_t off = 0; off < size && !run.done;) {
		size_t n = chunk && size - off > chunk ? chunk : size - off;
		send_all(sv[1], data + off, n, &run);
		off += n;
		/* let the session read this much (and answer) before the next */
		event_base_loop(base, EVLOOP_NONBLOCK);
		event_base_loop(base, EVLOOP_NONBLOCK);
		drain(sv[1]);
	}
	shutdown(sv[1], SHUT_WR);
	t0 = emv_now_ms();
	while (!run.done) {
		event_base_loop(base, EVLOOP_ONCE);
		drain(sv[1]);
		if (emv_now_ms() - t0 > 5000)
			abort(); /* the session never ended */
	}
	close(sv[1]);
	return 0;
}
