/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_setup.h - engine options shared by the `emailverify` commands (check,
 * verify, run) and the worker daemon, and building the engine from them
 * (event loop, DNS, classifier, lists, provider policies, TLS context).
 */
#ifndef EMV_SETUP_H
#define EMV_SETUP_H

#include "emv_classify.h"
#include "emv_engine.h"
#include "emv_lists.h"
#include "emv_probe.h"
#include "emv_providers.h"
#include "emv_pool.h"
#include "emv_preflight.h"
#include "emv_reputation.h"

/* Engine settings common to check/verify/run. */
typedef struct {
	const char *dns;       /* --dns HOST:PORT */
	const char *helo;      /* --helo NAME */
	const char *mail_from; /* --mail-from ADDR */
	const char *data_dir;  /* --data-dir DIR */
	const char *providers; /* --providers FILE (default DATA_DIR/providers.conf) */
	const char *pool;      /* --pool FILE: region, probe sender, source addresses with HELO names */
	const char *source_ips[16];
	int nsource;
	int port;      /* --smtp-port */
	int timeout_s; /* --timeout S: every SMTP phase */
	int allow_private;
	int no_tls;
	int no_catch_all;
	emv_retry_policy retry;	       /* every retry timing (emv_retry.h); --greylist-wait S, --max-retry-time S,
	                             and the commands' own retry options change it */
	const char *preflight_domains; /* --preflight-domains LIST (default EMV_PF_DOMAINS_DEFAULT) */
	int skip_preflight;	       /* --skip-preflight */
	int verbose;
} emv_setup_opts;

/* Engine state built from the options. */
typedef struct {
	struct event_base *base;
	emv_dns *dns;
	emv_classifier *classifier;
	emv_lists *lists;
	emv_providers *providers;
	SSL_CTX *ssl;
	struct emv_reaudit *reaudit; /* --pool: audited again every audit_interval (NULL: never) */
	emv_probe_config probe;
	char helo[256];
	char mail_from[300];
	emv_pool *pool; /* --pool: sessions rotate over its addresses */
	emv_rep *rep;	/* their reputation per provider (this engine's own) */
} emv_setup;

void emv_setup_opts_default(emv_setup_opts *o);
/* Handles one engine option; returns 1 if `opt` was an engine option,
 * 0 if not, -1 on a bad value (message printed). */
int emv_setup_opt(emv_setup_opts *o, int opt, const char *arg);
int emv_setup_init(emv_setup *e, const emv_setup_opts *o);
/* Batching-engine settings from the options, for list work (verify, the
 * worker): the retry policy (retries may wait up to its window_ms, 30 min
 * unless --max-retry-time says), and whether the user set timeouts. */
void emv_setup_params_apply(const emv_setup_opts *o, emv_engine_params *ep);
void emv_setup_free(emv_setup *e);
/* The HELO name and probe sender the engine would use (--helo/--mail-from,
 * else the pool's, else this host's name and verify@ it). */
void emv_setup_identity(const emv_setup_opts *o, const emv_pool *pool, char *helo, size_t hlen, char *mail_from,
			size_t mlen);
/*
 * The start-up preflight of verify, run and the worker (emv_preflight.h):
 * DNS sanity and, without --pool (whose own audit covers it), the identity
 * checks.  Problems are printed to stderr as "preflight: WARN|FAIL ...";
 * returns -1 when the run must not start (the resolver cannot be trusted),
 * after saying so.  --skip-preflight: returns 0 at once.
 */
int cli_preflight(const emv_setup_opts *o, const char *prog);

/* What to check besides DNS (emv_preflight.h). */
typedef struct {
	int identity;	   /* HELO, FCrDNS, SPF (and DNSBLs when dnsbl names zones) */
	int port25;	   /* TCP connections to mail servers */
	const char *dnsbl; /* comma-separated zones, or NULL */
} cli_check_opts;

/* The checks with the engine options' resolver, identity and source
 * address (else the pool's first, else the one the system picks), on a
 * loop of their own; -1 only when they cannot run at all (err). */
int emv_setup_checks(const emv_setup_opts *o, const emv_pool *pool, const cli_check_opts *co, emv_pf_report *r,
		     char *err, size_t errlen);
/* The engine settings that come from the built engine: provider policies
 * and, with --pool, the source addresses and their reputation. */
void emv_setup_params_engine(emv_setup *e, emv_engine_params *ep);

/* Long options shared by the commands (terminated by the caller's list). */
#define EMV_SETUP_LONGOPTS                                                                                           \
	{ "dns", required_argument, NULL, 1001 }, { "helo", required_argument, NULL, 1002 },                         \
		{ "mail-from", required_argument, NULL, 1003 }, { "data-dir", required_argument, NULL, 1004 },       \
		{ "source-ip", required_argument, NULL, 1005 }, { "smtp-port", required_argument, NULL, 1006 },      \
		{ "timeout", required_argument, NULL, 1007 }, { "allow-private-mx", no_argument, NULL, 1008 },       \
		{ "no-tls", no_argument, NULL, 1009 }, { "no-catch-all-probe", no_argument, NULL, 1010 },            \
		{ "greylist-wait", required_argument, NULL, 1011 },                                                  \
		{ "max-retry-time", required_argument, NULL, 1012 }, { "providers", required_argument, NULL, 1013 }, \
		{ "pool", required_argument, NULL, 1014 }, { "preflight-domains", required_argument, NULL, 1015 },   \
		{ "skip-preflight", no_argument, NULL, 1016 },                                                       \
	{                                                                                                            \
		"verbose", no_argument, NULL, 'v'                                                                    \
	}

#define EMV_SETUP_HELP                                                                                         \
	"  --dns HOST:PORT        DNS server to ask (default: /etc/resolv.conf)\n"                             \
	"  --source-ip IP         connect from this address (repeatable: one per family)\n"                    \
	"  --helo NAME            our EHLO name (default: this host's name)\n"                                 \
	"  --mail-from ADDR       probe sender (default: verify@<helo name>)\n"                                \
	"  --timeout S            timeout of every SMTP phase in seconds (default: the provider policy's,\n"   \
	"                         60; connect 15 at most)\n"                                                   \
	"  --smtp-port N          SMTP port of mail servers (default 25)\n"                                    \
	"  --allow-private-mx     allow MX addresses in loopback/private/reserved ranges\n"                    \
	"  --no-tls               never use STARTTLS\n"                                                        \
	"  --no-catch-all-probe   do not test whether the domain accepts any address\n"                        \
	"  --greylist-wait S      wait before asking a greylisting server again (default 60)\n"                \
	"  --max-retry-time S     most time spent waiting on retries: per domain for check (default 120),\n"   \
	"                         per address for verify and run (1800) and a worker's engine (300)\n"         \
	"  --data-dir DIR         lists and rules (default: $EMAILVERIFY_DATA, else\n"                         \
	"                         share/emailverify beside the binary's folder)\n"                             \
	"  --providers FILE       provider policies and budgets (default: DATA_DIR/providers.conf)\n"          \
	"  --pool FILE            source addresses to rotate, each with its HELO name, and the probe sender\n" \
	"                         (deploy/worker.conf.example); budgets become per (address, provider)\n"      \
	"  --preflight-domains L  mail domains that must resolve before a run starts\n"                        \
	"                         (comma-separated; default " EMV_PF_DOMAINS_DEFAULT ")\n"                     \
	"  --skip-preflight       start without checking DNS and our identity first\n"                         \
	"  -v, --verbose          log what happens (repeat for more)\n"

#endif
