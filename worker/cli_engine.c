/*
 * cli_engine.c - engine options shared by check/verify/run, and building the
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
#include "cli_engine.h"
#include "emv_audit.h"
#include "emv_reaudit.h"
#include "emv_util.h"

void cli_engine_opts_default(cli_engine_opts *o)
{
	memset(o, 0, sizeof *o);
	o->port = 25;
	o->greylist_wait_s = 60;
	o->max_retry_s = 120;
}

static int parse_int(const char *what, const char *arg, int min, int max, int *out)
{
	char *end;
	long v;
	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *end || end == arg || v < min || v > max) {
		fprintf(stderr, "emailverify: %s must be a whole number from %d to %d (got '%s')\n", what, min, max,
			arg);
		return -1;
	}
	*out = (int)v;
	return 1;
}

int cli_engine_opt(cli_engine_opts *o, int opt, const char *arg)
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
	case 1011: return parse_int("--greylist-wait", arg, 0, 3600, &o->greylist_wait_s);
	case 1012: return parse_int("--max-retry-time", arg, 0, 86400, &o->max_retry_s);
	case 1013: o->providers = arg; return 1;
	case 1014: o->pool = arg; return 1;
	case 1015: o->preflight_domains = arg; return 1;
	case 1016: o->skip_preflight = 1; return 1;
	case 'v': o->verbose++; return 1;
	default: return 0;
	}
}

static int parse_source(cli_engine *e, const char *ip)
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
static int audit_pool(cli_engine *e)
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

static int engine_init(cli_engine *e, const cli_engine_opts *o);

int cli_engine_init(cli_engine *e, const cli_engine_opts *o)
{
	int rc;
	pthread_mutex_lock(&init_lock);
	rc = engine_init(e, o);
	pthread_mutex_unlock(&init_lock);
	return rc;
}

static int engine_init(cli_engine *e, const cli_engine_opts *o)
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
	cli_engine_identity(o, e->pool, e->helo, sizeof e->helo, e->mail_from, sizeof e->mail_from);

	emv_probe_config_default(&e->probe);
	for (int i = 0; i < o->nsource; i++)
		if (parse_source(e, o->source_ips[i]) < 0)
			return -1;
	e->probe.base = e->base;
	e->probe.dns = e->dns;
	e->probe.classifier = e->classifier;
	e->probe.allow_private = o->allow_private;
	e->probe.catch_all_probe = !o->no_catch_all;
	e->probe.greylist_wait_ms = o->greylist_wait_s * 1000;
	e->probe.max_retry_ms = o->max_retry_s * 1000;
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
		s->timeout_connect = ms < 10000 ? ms : 10000;
		s->timeout_quit = ms < 5000 ? ms : 5000;
	}
	return 0;
}

void cli_engine_identity(const cli_engine_opts *o, const emv_pool *pool, char *helo, size_t hlen, char *mail_from,
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

int cli_engine_checks(const cli_engine_opts *o, const emv_pool *pool, const cli_check_opts *co, emv_pf_report *r,
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
	cli_engine_identity(o, pool, helo, sizeof helo, mail_from, sizeof mail_from);
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
		pp.connect_timeout_ms = (o->timeout_s < 10 ? o->timeout_s : 10) * 1000;
	emv_pf_run(&pp, r);
	emv_dns_free(dns);
	event_base_free(base);
	return 0;
}

int cli_preflight(const cli_engine_opts *o, const char *prog)
{
	char err[512];
	cli_check_opts co = { .identity = !o->pool }; /* a pool's addresses have their own audit */
	emv_pf_report r;

	if (o->skip_preflight)
		return 0;
	if (cli_engine_checks(o, NULL, &co, &r, err, sizeof err) < 0) {
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
		fprintf(stderr, "%s: stopped before verifying anything: DNS cannot be trusted (see above). "
				"'emailverify doctor' checks the whole machine; --skip-preflight starts anyway.\n", prog);
		return -1;
	}
	return 0;
}

void cli_engine_params_apply(const cli_engine_opts *o, emv_engine_params *ep)
{
	ep->max_retry_ms = o->max_retry_s * 1000;
	if (o->max_retry_s == 120) /* the check default is short; lists wait longer */
		ep->max_retry_ms = 1800000;
	ep->user_timeouts = o->timeout_s > 0;
}

void cli_engine_params_engine(cli_engine *e, emv_engine_params *ep)
{
	ep->providers = e->providers;
	ep->pool = e->pool;
	ep->rep = e->rep;
}

void cli_engine_free(cli_engine *e)
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
