/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_setup.c - engine options shared by check/verify/run, and building the
 * engine (event loop, DNS, classifier, lists, TLS context) from them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "emv_setup.h"
#include "emv_audit.h"
#include "emv_defaults.h"
#include "emv_reaudit.h"
#include "emv_util.h"

void emv_setup_opts_default(emv_setup_opts *o)
{
	memset(o, 0, sizeof *o);
	o->port = EMV_DEF_SMTP_PORT;
	emv_retry_policy_default(&o->retry);
}

static int parse_int(const char *what, const char *arg, int min, int max, int *out)
{
	char err[256];
	if (emv_parse_int(what, arg, min, max, out, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify: %s\n", err);
		return -1;
	}
	return 1;
}

int emv_setup_opt(emv_setup_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case 1001: o->dns = arg; return 1;
	case 1002: o->helo = arg; return 1;
	case 1003: o->mail_from = arg; return 1;
	case 1004: o->data_dir = arg; return 1;
	case 1005:
		if (o->nsource >= (int)(sizeof o->source_ips / sizeof o->source_ips[0])) {
			fprintf(stderr, "emailverify: too many --source-ip (at most 16)\n");
			return -1;
		}
		o->source_ips[o->nsource++] = arg;
		return 1;
	case 1006: return parse_int("--smtp-port", arg, 1, 65535, &o->port);
	case 1007: return parse_int("--timeout", arg, 1, 3600, &o->timeout_s);
	case 1008: o->allow_private = 1; return 1;
	case 1009: o->no_tls = 1; return 1;
	case 1010: o->no_catch_all = 1; return 1;
	case 1011: {
		int s, rc = parse_int("--greylist-wait", arg, 0, 3600, &s);
		if (rc == 1)
			o->retry.greylist_wait_ms = s * 1000;
		return rc;
	}
	case 1012: {
		int s, rc = parse_int("--max-retry-time", arg, 0, 86400, &s);
		if (rc == 1)
			emv_retry_policy_set_window(&o->retry, s);
		return rc;
	}
	case 1013: o->providers = arg; return 1;
	case 1014: o->pool = arg; return 1;
	case 1015: o->preflight_domains = arg; return 1;
	case 1016: o->skip_preflight = 1; return 1;
	case 'v': o->verbose++; return 1;
	default: return 0;
	}
}

static int parse_source(emv_setup *e, const char *ip)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	memset(&s4, 0, sizeof s4);
	memset(&s6, 0, sizeof s6);
	if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		memcpy(&e->probe.source4, &s4, sizeof s4);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		memcpy(&e->probe.source6, &s6, sizeof s6);
		return 0;
	}
	fprintf(stderr, "emailverify: --source-ip '%s' is not an IPv4 or IPv6 address\n", ip);
	return -1;
}

struct audit_wait {
	struct event_base *base;
	emv_rep *rep;
	int done, usable;
};

static void on_audit(const emv_audit_result *res, int n, void *arg)
{
	struct audit_wait *aw = arg;
	for (int i = 0; i < n; i++) {
		const emv_audit_result *x = &res[i];
		if (x->ok) {
			emv_log(EMV_LOG_INFO, "audit", "source %s (%s): passed", x->ip, x->helo);
		} else {
			emv_log(EMV_LOG_WARN, "audit", "source %s (%s): %s: %s", x->ip, x->helo,
				x->held ? "held out of rotation" : "failed, used anyway (audit_failures = run)",
				x->problems);
			if (x->held)
				emv_rep_hold(aw->rep, x->source, x->problems, emv_now_ms());
		}
		if (x->notes[0])
			emv_log(EMV_LOG_INFO, "audit", "source %s: %s", x->ip, x->notes);
		aw->usable += !x->held;
	}
	aw->done = 1;
	event_base_loopbreak(aw->base);
}

/*
 * Before a pool address sends a probe: forward-confirmed reverse DNS, SPF
 * for the probe sender, DNSBL listings (emv_audit).  A failing address is
 * held out of rotation (or only reported, with audit_failures = run);
 * -1 when none is left.
 */
static int audit_pool(emv_setup *e)
{
	struct audit_wait aw = { e->base, e->rep, 0, 0 };
	emv_audit *a = emv_audit_start(e->base, e->dns, e->pool, on_audit, &aw);
	while (!aw.done && event_base_dispatch(e->base) == 0)
		; /* the audit's DNS queries are bounded by their timeouts and tries */
	emv_audit_free(a);
	if (aw.usable == 0) {
		fprintf(stderr, "emailverify: every source address of the pool failed its start-up audit (see above); "
				"fix DNS, or set audit_failures = run to use them anyway\n");
		return -1;
	}
	return 0;
}

/* Set-up touches process-wide library state (c-ares, OpenSSL): engines
 * of several threads are built one at a time. */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

static int engine_init(emv_setup *e, const emv_setup_opts *o);

int emv_setup_init(emv_setup *e, const emv_setup_opts *o)
{
	int rc;
	pthread_mutex_lock(&init_lock);
	rc = engine_init(e, o);
	pthread_mutex_unlock(&init_lock);
	return rc;
}

static int engine_init(emv_setup *e, const emv_setup_opts *o)
{
	char err[512], path[1024];
	const char *dir = emv_data_dir(o->data_dir);
	emv_dns_params dp;

	memset(e, 0, sizeof *e);
	emv_log_threshold = (emv_log_level)(EMV_LOG_WARN + (o->verbose > 3 ? 3 : o->verbose));

	snprintf(path, sizeof path, "%s/classify.rules", dir);
	if (!(e->classifier = emv_classifier_load(path, err, sizeof err))) {
		fprintf(stderr, "emailverify: %s\n", err);
		return -1;
	}
	if (!(e->lists = emv_lists_load(dir, err, sizeof err))) {
		fprintf(stderr, "emailverify: %s\n", err);
		return -1;
	}
	if (o->providers)
		emv_strlcpy(path, o->providers, sizeof path);
	else
		snprintf(path, sizeof path, "%s/providers.conf", dir);
	if (!(e->providers = emv_providers_load(path, err, sizeof err))) {
		fprintf(stderr, "emailverify: %s\n", err);
		return -1;
	}
	if (!(e->ssl = emv_session_ssl_ctx_new(err, sizeof err))) {
		fprintf(stderr, "emailverify: %s\n", err);
		return -1;
	}
	e->base = event_base_new();
	emv_dns_params_default(&dp);
	dp.servers = o->dns;
	if (!(e->dns = emv_dns_new(e->base, &dp, err, sizeof err))) {
		fprintf(stderr, "emailverify: %s\n", err);
		return -1;
	}

	if (o->pool) {
		emv_rep_params rp;
		if (!(e->pool = emv_pool_load(o->pool, err, sizeof err))) {
			fprintf(stderr, "emailverify: %s\n", err);
			return -1;
		}
		if (e->pool->nsources < 1) {
			fprintf(stderr, "emailverify: %s: no source address\n", o->pool);
			return -1;
		}
		emv_rep_params_default(&rp);
		e->rep = emv_rep_new(&rp, e->pool->nsources);
	}
	emv_setup_identity(o, e->pool, e->helo, sizeof e->helo, e->mail_from, sizeof e->mail_from);

	emv_probe_config_default(&e->probe);
	for (int i = 0; i < o->nsource; i++)
		if (parse_source(e, o->source_ips[i]) < 0)
			return -1;
	e->probe.base = e->base;
	e->probe.dns = e->dns;
	e->probe.classifier = e->classifier;
	e->probe.allow_private = o->allow_private;
	e->probe.catch_all_probe = !o->no_catch_all;
	e->probe.retry = o->retry;
	e->probe.session.port = o->port;
	e->probe.session.helo_name = e->helo;
	e->probe.session.mail_from = e->mail_from;
	if (e->pool && audit_pool(e) < 0)
		return -1;
	if (e->pool && e->pool->audit_interval_ms > 0) /* and again while running */
		e->reaudit = emv_reaudit_new(e->base, e->dns, e->pool, e->rep, e->pool->audit_interval_ms);
	e->probe.session.ssl_ctx = e->ssl;
	e->probe.session.starttls = !o->no_tls;
	if (o->timeout_s > 0) {
		emv_session_params *s = &e->probe.session;
		int ms = o->timeout_s * 1000;
		s->timeout_banner = s->timeout_ehlo = s->timeout_starttls = s->timeout_mail = s->timeout_rcpt = ms;
		s->timeout_connect = ms < EMV_DEF_CONNECT_TIMEOUT_MS ? ms : EMV_DEF_CONNECT_TIMEOUT_MS;
		s->timeout_quit = ms < EMV_DEF_QUIT_TIMEOUT_MS ? ms : EMV_DEF_QUIT_TIMEOUT_MS;
	}
	return 0;
}

void emv_setup_identity(const emv_setup_opts *o, const emv_pool *pool, char *helo, size_t hlen, char *mail_from,
			size_t mlen)
{
	if (o->helo) {
		emv_strlcpy(helo, o->helo, hlen);
	} else if (pool) { /* each session greets with its own source's name; this is the fallback */
		emv_strlcpy(helo, pool->sources[0].helo, hlen);
	} else {
		struct addrinfo hints, *ai = NULL;
		char host[256] = "localhost";
		gethostname(host, sizeof host - 1);
		memset(&hints, 0, sizeof hints);
		hints.ai_flags = AI_CANONNAME;
		/* the canonical name is only a default; never wait long for it */
		if (!strchr(host, '.') && getaddrinfo(host, NULL, &hints, &ai) == 0 && ai && ai->ai_canonname)
			emv_strlcpy(host, ai->ai_canonname, sizeof host);
		if (ai)
			freeaddrinfo(ai);
		emv_strlcpy(helo, host, hlen);
	}
	if (o->mail_from)
		emv_strlcpy(mail_from, o->mail_from, mlen);
	else if (pool && pool->mail_from[0])
		emv_strlcpy(mail_from, pool->mail_from, mlen);
	else
		snprintf(mail_from, mlen, "verify@%s", helo);
}

int emv_setup_checks(const emv_setup_opts *o, const emv_pool *pool, const cli_check_opts *co, emv_pf_report *r,
		     char *err, size_t errlen)
{
	char helo[256], mail_from[300];
	emv_dns_params dp;
	emv_pf_params pp;
	struct event_base *base;
	emv_dns *dns;

	if (!(base = event_base_new())) {
		emv_set_err(err, errlen, "no event loop");
		return -1;
	}
	emv_dns_params_default(&dp);
	dp.servers = o->dns;
	if (!(dns = emv_dns_new(base, &dp, err, errlen))) {
		event_base_free(base);
		return -1;
	}
	emv_setup_identity(o, pool, helo, sizeof helo, mail_from, sizeof mail_from);
	emv_pf_params_default(&pp);
	pp.base = base;
	pp.dns = dns;
	pp.resolver = o->dns;
	pp.domains = o->preflight_domains;
	pp.allow_private = o->allow_private;
	pp.source_ip = o->nsource > 0 ? o->source_ips[0] : pool ? pool->sources[0].ip : NULL;
	pp.helo = helo;
	pp.mail_from = mail_from;
	pp.identity = co->identity;
	pp.port25 = co->port25;
	pp.dnsbl = co->dnsbl;
	pp.smtp_port = o->port;
	if (o->timeout_s > 0)
		pp.connect_timeout_ms = o->timeout_s * 1000 < EMV_DEF_PREFLIGHT_CONNECT_MAX_MS
						? o->timeout_s * 1000
						: EMV_DEF_PREFLIGHT_CONNECT_MAX_MS;
	emv_pf_run(&pp, r);
	emv_dns_free(dns);
	event_base_free(base);
	return 0;
}

int cli_preflight(const emv_setup_opts *o, const char *prog)
{
	char err[512];
	cli_check_opts co = { .identity = !o->pool }; /* a pool's addresses have their own audit */
	emv_pf_report r;

	if (o->skip_preflight)
		return 0;
	if (emv_setup_checks(o, NULL, &co, &r, err, sizeof err) < 0) {
		fprintf(stderr, "%s: preflight: %s\n", prog, err);
		return -1;
	}
	for (int i = 0; i < r.n; i++) {
		const emv_pf_check *c = &r.checks[i];
		if (c->level == EMV_PF_PASS)
			continue;
		fprintf(stderr, "%s: preflight: %s %s: %s\n", prog, emv_pf_level_name(c->level), c->name, c->what);
		if (c->fix[0])
			fprintf(stderr, "%s: preflight:      fix: %s\n", prog, c->fix);
	}
	if (r.dns_broken) {
		fprintf(stderr,
			"%s: stopped before verifying anything: DNS cannot be trusted (see above). "
			"'emailverify doctor' checks the whole machine; --skip-preflight starts anyway.\n",
			prog);
		return -1;
	}
	return 0;
}

void emv_setup_params_apply(const emv_setup_opts *o, emv_engine_params *ep)
{
	ep->retry = o->retry;
	ep->user_timeouts = o->timeout_s > 0;
}

void emv_setup_params_engine(emv_setup *e, emv_engine_params *ep)
{
	ep->providers = e->providers;
	ep->pool = e->pool;
	ep->rep = e->rep;
}

void emv_setup_free(emv_setup *e)
{
	emv_reaudit_free(e->reaudit); /* before the loop, DNS, pool and rep it uses */
	e->reaudit = NULL;
	if (e->rep)
		emv_rep_free(e->rep);
	if (e->pool)
		emv_pool_free(e->pool);
	if (e->dns)
		emv_dns_free(e->dns);
	if (e->base)
		event_base_free(e->base);
	if (e->ssl)
		SSL_CTX_free(e->ssl);
	if (e->classifier)
		emv_classifier_free(e->classifier);
	if (e->lists)
		emv_lists_free(e->lists);
	if (e->providers)
		emv_providers_free(e->providers);
}
