/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_preflight.h - can this machine verify at all?  The checks behind
 * `emailverify doctor` and the start-up preflight of verify, run and the
 * worker.  A broken environment must stop a run with a clear message; it
 * must never turn into verdicts (a resolver that says NXDOMAIN for every
 * name would call every address undeliverable).
 *
 * Checks, each a PASS/WARN/FAIL line with what was found and what to do:
 *   dns     the resolver answers MX queries for well-known mail domains
 *           (FAIL when none resolves: every one NXDOMAIN, or no answer at
 *           all), and answers NXDOMAIN for a random name under them (a
 *           resolver that invents answers hides dead domains);
 *   port25  a TCP connection to port 25 of some of their MX hosts opens
 *           (connect and close, no SMTP is spoken): outbound port 25 is
 *           blocked on many networks;
 *   helo    the HELO name is a fully qualified domain name;
 *   fcrdns, spf, dnsbl  through emv_audit: the source address's PTR names
 *           the HELO name and that name resolves back, the probe sender's
 *           SPF passes the source address, no DNSBL zone lists it.
 * The source address is --source-ip, or the one this host would use to
 * reach the first MX address found (a UDP connect, nothing is sent).
 *
 * emv_pf_run() drives p->base until every check is done; each DNS query is
 * bounded by the emv_dns timeout and tries, each connect by
 * connect_timeout_ms.  It is meant for start-up, before the loop has other
 * work.
 */
#ifndef EMV_PREFLIGHT_H
#define EMV_PREFLIGHT_H

#include "emv_dns.h"
#include "emv_pool.h"

struct event_base;

#define EMV_PF_DOMAINS_DEFAULT "gmail.com,outlook.com,yahoo.com"
#define EMV_PF_DNSBL_DEFAULT "zen.spamhaus.org,bl.spamcop.net,b.barracudacentral.org"
#define EMV_PF_DOMAINS_MAX 8
#define EMV_PF_CONNECTS_MAX 4 /* MX addresses tried for port 25 */
#define EMV_PF_CHECKS_MAX 16

typedef enum { EMV_PF_PASS = 0, EMV_PF_WARN, EMV_PF_FAIL } emv_pf_level;

typedef struct {
	char name[16]; /* "dns", "port25", "helo", "fcrdns", "spf", "dnsbl" */
	emv_pf_level level;
	char what[640]; /* what was found (sanitised) */
	char fix[320];	/* what to do about it; "" on PASS */
} emv_pf_check;

typedef struct {
	int n;
	emv_pf_check checks[EMV_PF_CHECKS_MAX];
	emv_pf_level worst;
	int dns_broken;			 /* verdicts from this resolver would be wrong: do not run */
	char source_ip[EMV_POOL_IP_MAX]; /* the address the identity checks were about, or "" */
} emv_pf_report;

typedef struct {
	struct event_base *base;
	emv_dns *dns;		/* on base */
	const char *resolver;	/* for messages: "127.0.0.1:53" or NULL (= /etc/resolv.conf) */
	const char *domains;	/* comma-separated; NULL = EMV_PF_DOMAINS_DEFAULT */
	int port25;		/* 1: try TCP connections to their MX hosts */
	int smtp_port;		/* 25 */
	int connect_timeout_ms; /* per connection (default 5000) */
	int allow_private;	/* MX addresses in private ranges may be tried */
	const char *source_ip;	/* NULL: the address the system would use */
	int identity;		/* 1: helo, fcrdns, spf (and dnsbl when zones are given) */
	const char *helo;
	const char *mail_from;
	const char *dnsbl; /* comma-separated zones, or NULL/"" for none */
} emv_pf_params;

void emv_pf_params_default(emv_pf_params *p);
/* Run every check; r is filled (never fails as a call: problems are checks). */
void emv_pf_run(const emv_pf_params *p, emv_pf_report *r);
const char *emv_pf_level_name(emv_pf_level l); /* "PASS", "WARN", "FAIL" */
/* 1 when name is a fully qualified host name fit for HELO (two or more
 * labels, letters/digits/'-', not an address literal, not localhost). */
int emv_pf_helo_fqdn(const char *name);

#endif
