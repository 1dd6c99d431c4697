/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_probe.c - one domain's verification job (see emv_probe.h).
 *
 * Recipient states: PENDING (not yet answered), WAIT (greylisted, to be asked
 * again after a delay), DONE (has its verdict).  The job moves through its
 * list of targets (MX addresses in preference order); a session that fails
 * before answering everyone passes the rest to the next target.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include "emv_classify.h"
#include "emv_defaults.h"
#include "emv_netsafe.h"
#include "emv_probe.h"
#include "emv_util.h"

#define EX_TEXT_MAX 512
#define PROBE_IDX (-2)

enum rstate { R_PENDING = 0, R_WAIT, R_DONE };

struct target {
	emv_sockaddr addr;
	socklen_t len;
	int host; /* index into mx.hosts */
	char ip[48];
};

struct emv_probe_job {
	emv_probe_config cfg;
	char domain[EMV_HOST_MAX];
	char **addrs;
	unsigned char *utf8;
	size_t n;
	emv_probe_result *res;
	unsigned char *state;
	emv_mx_result *mx; /* compact copy (emv_mx_result_dup) */

	struct target targets[EMV_PROBE_TARGETS_MAX];
	int ntargets, cur;
	int tls_off;	/* retrying the current target without STARTTLS */
	char *tls_note; /* why TLS was given up, for evidence */

	char *probe_addr;
	int probe_state; /* enum rstate */
	int catch_all;	 /* 1, 0, -1 */

	/* per-recipient policy refusals, judged in finish() with the whole
	 * job's evidence: pol_sess[i] = session in which recipient i got a
	 * permanent RCPT policy refusal (0: none); acc[s] = recipients of the
	 * batch (not the probe) accepted in session s; probe_acc_sess = the
	 * session in which the random probe was accepted (0: none) */
	unsigned *pol_sess;
	unsigned *acc;
	size_t cap_acc;
	unsigned probe_acc_sess;

	emv_exchange *ex;
	size_t nex, capex;
	unsigned sessions;

	emv_session *sess;
	unsigned resumed; /* sessions that were another job's open connection */
	long *smap;	  /* session recipient index -> job index (or PROBE_IDX) */
	size_t snr;
	int retry_round;
	uint64_t waited_ms;
	int retry_wait_ms;

	emv_session_outcome *last_fail; /* the last session failure (NULL: none) */
	unsigned connected;		/* sessions that reached the banner */
	unsigned reply_ms;		/* the slowest EHLO round trip of its sessions */
	unsigned rcpt_sent;		/* RCPT commands over all sessions */
	int learned_limit;
	int learned_errors;    /* >0: errors per session a server taught us (tarpit, 421) */
	unsigned cut_sessions; /* sessions ended by the error budget */
	int backoff;
	int private_refused;
	char *refused_note;

	struct event *timer;
	int delivering;
	uint64_t start_ms;
	emv_probe_done_cb cb;
	void *arg;
};

void emv_probe_config_default(emv_probe_config *c)
{
	memset(c, 0, sizeof *c);
	emv_session_params_default(&c->session);
	c->catch_all_probe = 1;
	c->max_targets = EMV_DEF_MAX_TARGETS;
	emv_retry_policy_default(&c->retry);
	c->known_catch_all = -1;
}

static void next_session(emv_probe_job *j);
static void finish(emv_probe_job *j);

/* ---- evidence ---- */

static void add_exchange(emv_probe_job *j, int rcpt, int phase, const char *ip, const char *cmd, int code,
			 const char *enhanced, const char *text)
{
	emv_exchange *e;
	if (j->nex == j->capex) {
		j->capex = j->capex ? j->capex * 2 : 16;
		j->ex = emv_xrealloc(j->ex, j->capex * sizeof *j->ex);
	}
	e = &j->ex[j->nex++];
	memset(e, 0, sizeof *e);
	e->session = j->sessions;
	e->rcpt = rcpt;
	e->phase = phase;
	emv_strlcpy(e->mx_ip, ip ? ip : "", sizeof e->mx_ip);
	e->command = cmd ? emv_xstrdup(cmd) : NULL;
	e->code = code;
	emv_strlcpy(e->enhanced, enhanced ? enhanced : "", sizeof e->enhanced);
	if (text) {
		char buf[EX_TEXT_MAX];
		size_t len = strlen(text), n;
		/* lines of a multi-line reply are joined with '|' */
		n = emv_sanitize(buf, sizeof buf, text, len);
		for (size_t i = 0; i < n; i++)
			if (buf[i] == '?' && text[i] == '\n')
				buf[i] = '|';
		e->text = emv_xstrndup(buf, n);
	}
}

/* ---- verdicts ---- */

static void set_reply(emv_probe_result *r, const emv_reply *rep)
{
	r->have_smtp = 1;
	r->smtp_code = rep->code;
	emv_strlcpy(r->enhanced, rep->enhanced, sizeof r->enhanced);
	emv_sanitize(r->reply, sizeof r->reply, rep->text, rep->text_len);
	for (char *p = r->reply; *p; p++)
		if (*p == '?' && rep->text[p - r->reply] == '\n')
			*p = '|';
}

static void verdict_from_reply(emv_probe_job *j, emv_probe_result *r, int phase, const emv_reply *rep)
{
	emv_verdict v;
	emv_classify(j->cfg.classifier, phase, rep->code, rep->enhanced, rep->text, &v);
	r->status = v.status;
	r->reason = v.reason;
	r->temporary = v.temporary;
	r->rule = v.rule_id;
	r->retry_after_ms = v.temporary ? emv_probe_retry_hint_ms(rep->text) : 0;
	set_reply(r, rep);
}

static void verdict_from_failure(emv_probe_job *j, emv_probe_result *r)
{
	const emv_session_outcome *o = j->last_fail;

	r->status = EMV_STATUS_UNKNOWN;
	r->temporary = 1;
	if (!o) {
		if (j->private_refused) {
			r->reason = EMV_REASON_PRIVATE_MX;
			r->temporary = 0;
			emv_strlcpy(r->detail, j->refused_note, sizeof r->detail);
		} else {
			r->reason = EMV_REASON_CONNECTION_FAILED;
			emv_strlcpy(r->detail, "no mail server could be reached", sizeof r->detail);
		}
		return;
	}
	switch (o->failure) {
	case EMV_SESS_TIMEOUT:
		r->reason = EMV_REASON_TIMEOUT;
		r->connect_timeout = o->phase == EMV_PHASE_CONNECT;
		break;
	case EMV_SESS_TLS: r->reason = EMV_REASON_TLS_FAILED; break;
	case EMV_SESS_PROTOCOL: r->reason = EMV_REASON_PROTOCOL_ERROR; break;
	case EMV_SESS_REPLY:
		if (o->have_reply) {
			verdict_from_reply(j, r, o->phase, &o->reply);
			/* a reply that ends the session is never about the mailbox */
			r->status = EMV_STATUS_UNKNOWN;
		} else {
			r->reason = EMV_REASON_PROTOCOL_ERROR;
		}
		break;
	default: r->reason = EMV_REASON_CONNECTION_FAILED; break;
	}
	emv_strlcpy(r->detail, o->detail, sizeof r->detail);
}

static void dns_verdict(emv_probe_job *j, emv_probe_result *r)
{
	r->temporary = 0;
	emv_strlcpy(r->detail, j->mx->detail, sizeof r->detail);
	switch (j->mx->status) {
	case EMV_DNS_NXDOMAIN:
		r->status = EMV_STATUS_UNDELIVERABLE;
		r->reason = EMV_REASON_NO_DOMAIN;
		break;
	case EMV_DNS_NULL_MX:
		r->status = EMV_STATUS_UNDELIVERABLE;
		r->reason = EMV_REASON_NULL_MX;
		break;
	case EMV_DNS_NODATA:
	case EMV_DNS_NO_ADDRESS:
		r->status = EMV_STATUS_UNDELIVERABLE;
		r->reason = EMV_REASON_NO_MAIL_SERVER;
		break;
	default:
		r->status = EMV_STATUS_UNKNOWN;
		r->reason = EMV_REASON_DNS_FAILED;
		r->temporary = 1;
		break;
	}
}

/* ---- session callbacks ---- */

static struct target *cur_target(emv_probe_job *j)
{
	return &j->targets[j->cur];
}

static void on_exchange(void *arg, int phase, long rcpt, const char *cmd, const emv_reply *r)
{
	emv_probe_job *j = arg;
	int who = -1;
	if (rcpt >= 0 && (size_t)rcpt < j->snr)
		who = (int)j->smap[rcpt];
	add_exchange(j, who, phase, cur_target(j)->ip, cmd, r->code, r->enhanced, r->text);
}

static void count_accepted(emv_probe_job *j)
{
	if (j->sessions >= j->cap_acc) {
		size_t cap = j->cap_acc ? j->cap_acc * 2 : 8;
		while (cap <= j->sessions)
			cap *= 2;
		j->acc = emv_xrealloc(j->acc, cap * sizeof *j->acc);
		memset(j->acc + j->cap_acc, 0, (cap - j->cap_acc) * sizeof *j->acc);
		j->cap_acc = cap;
	}
	j->acc[j->sessions]++;
}

/*
 * A permanent RCPT refusal that may be about this recipient rather than
 * about us: a 5xx policy_rejected.  Refusals of the whole domain (relay
 * denied, domain not here, bad destination, routing trouble) and a receiver
 * whose own DNSBL lookups are broken are not about one recipient, whatever
 * else the session shows.
 */
static int recipient_policy_refusal(const emv_probe_result *r, const emv_reply *rep)
{
	static const char *const domain_wide[] = { "relay_denied", "domain_not_here", "code_bad_destination",
						   "code_routing", "dnsbl_receiver_broken" };
	if (rep->code / 100 != 5 || r->temporary || r->status != EMV_STATUS_UNKNOWN ||
	    r->reason != EMV_REASON_POLICY_REJECTED)
		return 0;
	for (size_t k = 0; k < sizeof domain_wide / sizeof *domain_wide; k++)
		if (r->rule && strcmp(r->rule, domain_wide[k]) == 0)
			return 0;
	return 1;
}

/*
 * Decide the policy refusals with the job's whole evidence (pipelined RCPTs
 * may be refused before others are accepted): another recipient of the
 * domain accepted in the same session - same connection, so same source
 * address and sender - shows the server takes mail from us, so the refusal
 * is about that recipient (a closed list, an internal-only mailbox).
 *
 * Only an acceptance that is a mailbox's answer counts.  The random
 * catch-all probe does not, and neither does any acceptance on a domain
 * that accepts every recipient (catch-all, or a provider with accepts_all):
 * a server may route unknown addresses to a catch-all before the per-user
 * policy that real mailboxes apply to us, and then every real recipient
 * would be refused while invented ones pass - counting those acceptances
 * would turn "refused everywhere, maybe about us" into undeliverable for
 * all, and undeliverable removes an address.
 */
static void judge_policy_refusals(emv_probe_job *j)
{
	int accepts_any = j->catch_all == 1 || j->cfg.accepts_all;

	for (size_t i = 0; i < j->n; i++) {
		emv_probe_result *r = &j->res[i];
		unsigned s = j->pol_sess[i], acc;
		if (!s || r->status != EMV_STATUS_UNKNOWN || r->reason != EMV_REASON_POLICY_REJECTED)
			continue;
		acc = s < j->cap_acc ? j->acc[s] : 0;
		if (accepts_any && (acc > 0 || j->probe_acc_sess == s)) {
			emv_strlcpy(r->detail,
				    "rejected by policy; the domain accepts any recipient, so the acceptances in the "
				    "same session do not show that its real mailboxes accept us",
				    sizeof r->detail);
		} else if (acc > 0) {
			r->status = EMV_STATUS_UNDELIVERABLE;
			r->temporary = 0;
			r->retry_after_ms = 0;
			snprintf(r->detail, sizeof r->detail,
				 "rejected by policy while %u other recipient%s of the domain w%s accepted in the same "
				 "session (from %s): the refusal is about this recipient",
				 acc, acc == 1 ? "" : "s", acc == 1 ? "as" : "ere",
				 r->source_ip[0] ? r->source_ip : "one source");
		} else {
			emv_strlcpy(r->detail,
				    "rejected by policy and no recipient was accepted in the same session: the refusal "
				    "may be about us",
				    sizeof r->detail);
		}
	}
}

static void on_rcpt(void *arg, size_t idx, const emv_reply *rep, const char *note)
{
	emv_probe_job *j = arg;
	long who = idx < j->snr ? j->smap[idx] : -1;
	struct target *t = cur_target(j);

	if (who == PROBE_IDX) {
		emv_verdict v;
		if (!rep) {
			j->probe_state = R_DONE;
			return;
		}
		emv_classify(j->cfg.classifier, EMV_PHASE_RCPT, rep->code, rep->enhanced, rep->text, &v);
		if (rep->code / 100 == 2) {
			j->catch_all = 1;
			j->probe_state = R_DONE;
			j->probe_acc_sess = j->sessions;
		} else if (v.reason == EMV_REASON_MAILBOX_NOT_FOUND || v.reason == EMV_REASON_MAILBOX_DISABLED) {
			j->catch_all = 0;
			j->probe_state = R_DONE;
		} else {
			j->probe_state = v.temporary && v.reason == EMV_REASON_GREYLISTED ? R_WAIT : R_DONE;
		}
		return;
	}
	if (who < 0 || (size_t)who >= j->n)
		return;
	emv_probe_result *r = &j->res[who];
	emv_strlcpy(r->mx_host, j->mx->hosts[t->host].host, sizeof r->mx_host);
	emv_strlcpy(r->mx_ip, t->ip, sizeof r->mx_ip);
	if (!rep) {
		r->status = EMV_STATUS_UNKNOWN;
		r->reason = EMV_REASON_POLICY_REJECTED;
		r->temporary = 0;
		emv_strlcpy(r->detail, note ? note : "not asked", sizeof r->detail);
		j->state[who] = R_DONE;
		return;
	}
	verdict_from_reply(j, r, EMV_PHASE_RCPT, rep);
	r->detail[0] = '\0';
	if (rep->code / 100 == 2)
		count_accepted(j);
	else if (recipient_policy_refusal(r, rep))
		j->pol_sess[who] = j->sessions;
	if (r->temporary && r->reason == EMV_REASON_GREYLISTED) {
		int hint = emv_probe_retry_hint_ms(rep->text);
		if (hint > j->retry_wait_ms)
			j->retry_wait_ms = hint;
		j->state[who] = R_WAIT;
	} else {
		j->state[who] = R_DONE;
	}
}

static void record_session(emv_probe_job *j, const emv_session_outcome *o)
{
	for (size_t k = 0; k < j->snr; k++) {
		long who = j->smap[k];
		if (who >= 0 && (size_t)who < j->n) {
			emv_probe_result *r = &j->res[who];
			emv_strlcpy(r->source_ip, o->local_ip, sizeof r->source_ip);
			emv_strlcpy(r->tls, o->tls_version, sizeof r->tls);
		}
	}
}

static void retry_due(evutil_socket_t fd, short what, void *arg)
{
	emv_probe_job *j = arg;
	if (j->delivering) {
		j->delivering = 0;
		j->cb(j, j->arg); /* may free the job: touch nothing after */
		return;
	}
	for (size_t i = 0; i < j->n; i++)
		if (j->state[i] == R_WAIT)
			j->state[i] = R_PENDING;
	if (j->probe_state == R_WAIT)
		j->probe_state = R_PENDING;
	next_session(j);
}

static void on_done(void *arg, const emv_session_outcome *o)
{
	emv_probe_job *j = arg;
	struct target *t = cur_target(j);
	int waiting = 0;

	j->sess = NULL;
	if (o->open) { /* every recipient answered, the connection open: for the next job */
		if (j->cfg.park)
			j->cfg.park(j->cfg.park_arg, o->open, t->ip, 0);
		else
			emv_session_close(o->open);
	}
	record_session(j, o);
	j->rcpt_sent += (unsigned)o->rcpt_sent;
	if (o->local_ip[0] && !(o->failure != EMV_SESS_OK && o->phase == EMV_PHASE_CONNECT))
		j->connected++;
	if (o->rtt_ms > j->reply_ms)
		j->reply_ms = o->rtt_ms;
	if (o->learned_rcpt_limit > 0 && (j->learned_limit == 0 || o->learned_rcpt_limit < j->learned_limit))
		j->learned_limit = o->learned_rcpt_limit;
	if (o->error_limit > 0) {
		/* this server takes fewer errors than we spent: the next sessions
		 * (of this job and, through the engine, of this host) spend fewer */
		if (j->learned_errors == 0 || o->error_limit < j->learned_errors)
			j->learned_errors = o->error_limit;
		j->cfg.session.max_errors = j->learned_errors;
	}
	j->cut_sessions += o->cut != 0;
	/* a 421 that follows our errors is about them, not about load */
	if (o->have_reply && o->reply.code == 421 && o->error_limit == 0)
		j->backoff = 1;
	if (o->failure != EMV_SESS_OK && !o->have_reply)
		add_exchange(j, -1, o->phase, t->ip, NULL, 0, "", o->detail);
	free(j->smap);
	j->smap = NULL;
	j->snr = 0;

	if (o->failure == EMV_SESS_TLS && !j->tls_off) {
		/* opportunistic TLS failed: try the same host once in plain text */
		j->tls_off = 1;
		free(j->tls_note);
		j->tls_note = emv_xstrdup(o->detail);
		next_session(j);
		return;
	}
	if (o->failure != EMV_SESS_OK && o->error_limit > 0 && o->answered > 0 && o->phase == EMV_PHASE_RCPT) {
		/* hung up on us for our errors after answering some: ask the rest
		 * of this host in a new session with the smaller budget, never as a
		 * failure of the host */
		next_session(j);
		return;
	}
	if (o->failure != EMV_SESS_OK) {
		if (!j->last_fail)
			j->last_fail = emv_xmalloc(sizeof *j->last_fail);
		*j->last_fail = *o;
		if (o->failure == EMV_SESS_REPLY && o->phase == EMV_PHASE_MAIL && o->have_reply &&
		    o->reply.code / 100 == 5) {
			/* our sender was refused for good: another MX of the same
			 * domain would be asked the same thing; stop politely */
			for (size_t i = 0; i < j->n; i++)
				if (j->state[i] != R_DONE) {
					verdict_from_failure(j, &j->res[i]);
					j->state[i] = R_DONE;
				}
			finish(j);
			return;
		}
		j->cur++;
		j->tls_off = 0;
		next_session(j);
		return;
	}
	/* session completed */
	for (size_t i = 0; i < j->n; i++)
		if (j->state[i] == R_WAIT)
			waiting++;
	if (waiting) {
		int wait = j->retry_wait_ms > 0 ? j->retry_wait_ms : j->cfg.retry.greylist_wait_ms;
		if (wait > j->cfg.retry.greylist_max_wait_ms)
			wait = j->cfg.retry.greylist_max_wait_ms;
		if (j->retry_round < j->cfg.retry.greylist_rounds &&
		    j->waited_ms + (uint64_t)wait <= (uint64_t)j->cfg.retry.greylist_window_ms) {
			struct timeval tv = { wait / 1000, (wait % 1000) * 1000 };
			j->retry_round++;
			j->waited_ms += (uint64_t)wait;
			j->retry_wait_ms = 0;
			emv_log(EMV_LOG_INFO, "probe", "%s: %d recipient(s) greylisted, asking again in %d ms",
				j->domain, waiting, wait);
			evtimer_add(j->timer, &tv);
			return;
		}
		for (size_t i = 0; i < j->n; i++)
			if (j->state[i] == R_WAIT) {
				j->state[i] = R_DONE;
				snprintf(j->res[i].detail, sizeof j->res[i].detail,
					 "still greylisted after %d retr%s (%llu ms waited)", j->retry_round,
					 j->retry_round == 1 ? "y" : "ies", (unsigned long long)j->waited_ms);
			}
	}
	next_session(j);
}

/* ---- job flow ---- */

static void random_local(char *out, size_t outlen)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char b[14];
	size_t i;
	if (RAND_bytes(b, sizeof b) != 1)
		for (i = 0; i < sizeof b; i++)
			b[i] = (unsigned char)rand();
	for (i = 0; i < sizeof b && i + 1 < outlen; i++)
		out[i] = alphabet[b[i] % (sizeof alphabet - 1)];
	out[i] = '\0';
}

static void next_session(emv_probe_job *j)
{
	for (;;) {
		size_t npend = 0, k = 0;
		int with_probe;
		const char **list;
		unsigned char *u8;
		char err[256];
		emv_session_params sp;
		emv_session_cb cb = { on_rcpt, on_exchange, on_done };
		struct target *t;

		for (size_t i = 0; i < j->n; i++)
			if (j->state[i] == R_PENDING)
				npend++;
		if (npend == 0) {
			finish(j);
			return;
		}
		if (j->cur >= j->ntargets) {
			for (size_t i = 0; i < j->n; i++)
				if (j->state[i] == R_PENDING) {
					verdict_from_failure(j, &j->res[i]);
					j->state[i] = R_DONE;
				}
			finish(j);
			return;
		}
		t = cur_target(j);
		with_probe = j->cfg.catch_all_probe && j->probe_state == R_PENDING;
		j->snr = npend + (size_t)with_probe;
		j->smap = emv_xcalloc(j->snr, sizeof *j->smap);
		list = emv_xcalloc(j->snr, sizeof *list);
		u8 = emv_xcalloc(j->snr, 1);
		if (with_probe) {
			j->smap[k] = PROBE_IDX;
			list[k++] = j->probe_addr;
		}
		j->sessions++;
		for (size_t i = 0; i < j->n; i++) {
			if (j->state[i] != R_PENDING)
				continue;
			j->smap[k] = (long)i;
			u8[k] = j->utf8 ? j->utf8[i] : 0;
			list[k++] = j->addrs[i];
			j->res[i].attempts++;
			if (j->sessions <= 64)
				j->res[i].sessions_mask |= 1ull << (j->sessions - 1);
		}
		sp = j->cfg.session;
		if (t->addr.sa.sa_family == AF_INET && j->cfg.source4.ss_family == AF_INET) {
			sp.source = (struct sockaddr *)&j->cfg.source4;
			sp.source_len = sizeof(struct sockaddr_in);
		} else if (t->addr.sa.sa_family == AF_INET6 && j->cfg.source6.ss_family == AF_INET6) {
			sp.source = (struct sockaddr *)&j->cfg.source6;
			sp.source_len = sizeof(struct sockaddr_in6);
		} else {
			sp.source = NULL;
		}
		if (j->tls_off)
			sp.starttls = 0;
		sp.keep_open = j->cfg.park != NULL;
		if (j->cfg.take && !j->tls_off) {
			/* another job's connection to this server, if one is idle */
			emv_session *open = j->cfg.take(j->cfg.park_arg, t->ip);
			if (open &&
			    emv_session_resume(open, &sp, j->mx->hosts[t->host].host, list, u8, j->snr, &cb, j) == 0) {
				j->resumed++;
				j->sess = open;
				free(list);
				free(u8);
				return;
			}
			if (open)
				j->cfg.park(j->cfg.park_arg, open, t->ip, 1);
		}
		j->sess = emv_session_start(j->cfg.base, &sp, &t->addr.sa, t->len, j->mx->hosts[t->host].host, list, u8,
					    j->snr, &cb, j, err, sizeof err);
		free(list);
		free(u8);
		if (j->sess)
			return;
		/* could not even start: count it as a connection failure */
		add_exchange(j, -1, EMV_PHASE_CONNECT, t->ip, NULL, 0, "", err);
		if (!j->last_fail)
			j->last_fail = emv_xmalloc(sizeof *j->last_fail);
		memset(j->last_fail, 0, sizeof *j->last_fail);
		j->last_fail->failure = EMV_SESS_CONNECT;
		j->last_fail->phase = EMV_PHASE_CONNECT;
		emv_strlcpy(j->last_fail->detail, err, sizeof j->last_fail->detail);
		free(j->smap);
		j->smap = NULL;
		j->snr = 0;
		j->cur++;
		j->tls_off = 0;
	}
}

static void finish(emv_probe_job *j)
{
	uint64_t now = emv_now_ms();
	struct timeval tv = { 0, 0 };

	judge_policy_refusals(j);
	for (size_t i = 0; i < j->n; i++) {
		emv_probe_result *r = &j->res[i];
		r->duration_ms = (unsigned)(now - j->start_ms);
		if (r->have_smtp)
			r->catch_all = j->catch_all;
		if (j->catch_all == 1 || (j->cfg.accepts_all && r->status == EMV_STATUS_DELIVERABLE)) {
			r->flags |= EMV_FLAG_CATCH_ALL;
			if (r->status == EMV_STATUS_DELIVERABLE) {
				/* the server accepts anything: acceptance proves nothing */
				r->status = EMV_STATUS_RISKY;
				r->reason = EMV_REASON_CATCH_ALL;
				emv_strlcpy(r->detail,
					    j->catch_all == 1
						    ? "the server accepts any recipient of this domain (catch-all)"
						    : "this provider accepts every recipient at RCPT time, so acceptance proves nothing",
					    sizeof r->detail);
			}
		}
		if (j->tls_note && r->detail[0] == '\0')
			snprintf(r->detail, sizeof r->detail, "STARTTLS failed, verified without TLS: %s", j->tls_note);
		if (j->cfg.verdict_note && r->have_smtp &&
		    (r->status == EMV_STATUS_UNKNOWN || r->status == EMV_STATUS_RISKY)) {
			/* what SMTP can prove at this provider (data/providers.conf) */
			char d[sizeof r->detail];
			emv_strlcpy(d, r->detail[0] ? r->detail : emv_reason_detail(r->reason), sizeof d);
			snprintf(r->detail, sizeof r->detail, "%s%s%s", d, d[0] ? "; " : "", j->cfg.verdict_note);
		}
	}
	/* deliver from the loop, never from inside the caller's own call */
	j->delivering = 1;
	evtimer_add(j->timer, &tv);
}

static void on_mx(const emv_mx_result *mx, void *arg)
{
	emv_probe_job *j = arg;

	j->mx = emv_mx_result_dup(mx);
	if (mx->status != EMV_DNS_OK) {
		for (size_t i = 0; i < j->n; i++) {
			dns_verdict(j, &j->res[i]);
			j->state[i] = R_DONE;
		}
		finish(j);
		return;
	}
	for (int h = 0; h < mx->nhosts && j->ntargets < j->cfg.max_targets; h++) {
		/* IPv4 first: source pools and reputation are mostly IPv4 */
		for (int pass = 0; pass < 2; pass++) {
			for (int a = 0; a < mx->hosts[h].naddrs && j->ntargets < j->cfg.max_targets; a++) {
				const emv_sockaddr *ss = &mx->hosts[h].addrs[a];
				struct target *t;
				const char *cls;
				char ip[48] = "";
				if ((pass == 0) != (ss->sa.sa_family == AF_INET))
					continue;
				if (ss->sa.sa_family == AF_INET)
					inet_ntop(AF_INET, &ss->in.sin_addr, ip, sizeof ip);
				else
					inet_ntop(AF_INET6, &ss->in6.sin6_addr, ip, sizeof ip);
				cls = emv_netsafe_class(&ss->sa);
				if (cls && !j->cfg.allow_private) {
					char note[200];
					snprintf(note, sizeof note,
						 "refused to connect to %s (%s, %s address); use --allow-private-mx to permit",
						 mx->hosts[h].host, ip, cls);
					add_exchange(j, -1, EMV_PHASE_CONNECT, ip, NULL, 0, "", note);
					if (!j->private_refused)
						j->refused_note = emv_xstrdup(note);
					j->private_refused++;
					continue;
				}
				t = &j->targets[j->ntargets++];
				t->addr = *ss;
				t->len = ss->sa.sa_family == AF_INET ? sizeof(struct sockaddr_in)
								     : sizeof(struct sockaddr_in6);
				t->host = h;
				emv_strlcpy(t->ip, ip, sizeof t->ip);
			}
		}
	}
	next_session(j);
}

emv_probe_job *emv_probe_start(const emv_probe_config *cfg, const char *domain, const char *const *addresses,
			       const unsigned char *utf8, size_t n, emv_probe_done_cb cb, void *arg)
{
	emv_probe_job *j = emv_xcalloc(1, sizeof *j);
	char local[32];

	j->cfg = *cfg;
	if (j->cfg.max_targets < 1 || j->cfg.max_targets > EMV_PROBE_TARGETS_MAX)
		j->cfg.max_targets = EMV_PROBE_TARGETS_MAX;
	emv_strlcpy(j->domain, domain, sizeof j->domain);
	j->n = n;
	j->addrs = emv_xcalloc(n ? n : 1, sizeof *j->addrs);
	j->res = emv_xcalloc(n ? n : 1, sizeof *j->res);
	j->state = emv_xcalloc(n ? n : 1, 1);
	j->pol_sess = emv_xcalloc(n ? n : 1, sizeof *j->pol_sess);
	for (size_t i = 0; i < n; i++) {
		j->addrs[i] = emv_xstrdup(addresses[i]);
		j->res[i].catch_all = -1;
		j->res[i].status = EMV_STATUS_UNKNOWN;
		j->res[i].reason = EMV_REASON_CONNECTION_FAILED;
	}
	if (utf8) {
		j->utf8 = emv_xmalloc(n ? n : 1);
		memcpy(j->utf8, utf8, n);
	}
	j->catch_all = cfg->known_catch_all;
	random_local(local, sizeof local);
	{
		size_t len = strlen(local) + strlen(domain) + 2;
		j->probe_addr = emv_xmalloc(len);
		snprintf(j->probe_addr, len, "%s@%s", local, domain);
	}
	if (!cfg->catch_all_probe || cfg->known_catch_all >= 0)
		j->probe_state = R_DONE;
	j->cb = cb;
	j->arg = arg;
	j->start_ms = emv_now_ms();
	j->timer = evtimer_new(cfg->base, retry_due, j);
	emv_dns_resolve_mx(cfg->dns, domain, on_mx, j);
	return j;
}

void emv_probe_free(emv_probe_job *j)
{
	if (!j)
		return;
	if (j->sess)
		emv_session_abort(j->sess);
	for (size_t i = 0; i < j->n; i++)
		free(j->addrs[i]);
	for (size_t k = 0; k < j->nex; k++) {
		free(j->ex[k].command);
		free(j->ex[k].text);
	}
	free(j->ex);
	free(j->addrs);
	free(j->res);
	free(j->state);
	free(j->pol_sess);
	free(j->acc);
	free(j->utf8);
	free(j->smap);
	free(j->mx);
	free(j->last_fail);
	free(j->tls_note);
	free(j->probe_addr);
	free(j->refused_note);
	event_free(j->timer);
	free(j);
}

size_t emv_probe_count(const emv_probe_job *j)
{
	return j->n;
}
const emv_probe_result *emv_probe_get(const emv_probe_job *j, size_t i)
{
	return &j->res[i];
}
const emv_mx_result *emv_probe_mx(const emv_probe_job *j)
{
	return j->mx;
}
size_t emv_probe_exchange_count(const emv_probe_job *j)
{
	return j->nex;
}
const emv_exchange *emv_probe_exchange(const emv_probe_job *j, size_t k)
{
	return &j->ex[k];
}
unsigned emv_probe_sessions(const emv_probe_job *j)
{
	return j->sessions - j->resumed;
}

unsigned emv_probe_resumed(const emv_probe_job *j)
{
	return j->resumed;
}
const char *emv_probe_domain(const emv_probe_job *j)
{
	return j->domain;
}
int emv_probe_catch_all(const emv_probe_job *j)
{
	return j->catch_all;
}
unsigned emv_probe_connected(const emv_probe_job *j)
{
	return j->connected;
}
unsigned emv_probe_reply_ms(const emv_probe_job *j)
{
	return j->reply_ms;
}
unsigned emv_probe_rcpt_sent(const emv_probe_job *j)
{
	return j->rcpt_sent;
}
int emv_probe_learned_rcpt_limit(const emv_probe_job *j)
{
	return j->learned_limit;
}
int emv_probe_learned_error_limit(const emv_probe_job *j)
{
	return j->learned_errors;
}
unsigned emv_probe_cut_sessions(const emv_probe_job *j)
{
	return j->cut_sessions;
}
int emv_probe_backoff(const emv_probe_job *j)
{
	return j->backoff;
}

int emv_probe_exchange_relevant(const emv_probe_job *j, size_t i, size_t k)
{
	const emv_exchange *e = &j->ex[k];
	if (e->session == 0)
		return 1; /* before any session: DNS/safety notes */
	if (e->session <= 64 && !(j->res[i].sessions_mask & (1ull << (e->session - 1))))
		return 0;
	return e->rcpt == -1 || e->rcpt == PROBE_IDX || e->rcpt == (int)i;
}

int emv_probe_retry_hint_ms(const char *text)
{
	/* look for "<number> second(s)/sec/s" or "<number> minute(s)/min" */
	for (const char *p = text; *p; p++) {
		if (!isdigit((unsigned char)*p) || (p > text && isdigit((unsigned char)p[-1])))
			continue;
		char *end;
		long v = strtol(p, &end, 10);
		if (v <= 0 || v > 86400)
			continue;
		while (*end == ' ')
			end++;
		if (strncasecmp(end, "sec", 3) == 0 || (end[0] == 's' && !isalpha((unsigned char)end[1])))
			return (int)(v * 1000);
		if (strncasecmp(end, "min", 3) == 0)
			return (int)(v * 60000);
	}
	return 0;
}
