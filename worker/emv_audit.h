/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_audit.h - start-up self-audit of a worker's source addresses (docs/design.md
 * §3 "IP pool and reputation", docs/regions.md): before an address sends a single
 * probe, check that receivers will not reject it for who it is.
 *
 * Per source address of an emv_pool, in parallel, on the caller's libevent
 * loop through an emv_dns (so tests point it at their own DNS server):
 *   - forward-confirmed reverse DNS: the PTR names of the address, the
 *     A/AAAA of each name, and the configured HELO name must be one of the
 *     PTR names that resolve back to the address;
 *   - SPF (emv_spf.h) of the probe MAIL FROM domain must give pass;
 *   - every DNSBL zone of the pool: reversed octets (IPv4) or nibbles
 *     (IPv6) + zone; an A answer in 127.0.0.0/8 means listed (its TXT is
 *     fetched as the reason), NXDOMAIN/NODATA means not listed.  Answers in
 *     127.255.255.0/24 (Spamhaus's "query refused" codes), other answers,
 *     SERVFAIL and timeouts are "unknown": reported as a note, never as
 *     listed, and they do not fail the audit.
 * An address is ok when FCrDNS and SPF pass and no zone lists it; otherwise
 * `problems` says what failed, in words an operator can act on, e.g.
 * "PTR 127.0.0.62 -> mail-b.audit.test, but HELO is mail-a.audit.test".
 * A temporary DNS failure of the PTR or SPF checks fails the address too
 * (it could not be confirmed); run the audit again later.
 *
 * The callback runs once, when every check of every address is done (each
 * DNS query is bounded by the emv_dns timeout and tries; the number of
 * queries by the SPF limits, 8 PTR names and the zones).  It never runs
 * before emv_audit_start() returns.  emv_audit_free() may be called any
 * time (also from the callback) and cancels: no callback afterwards.  If
 * the emv_dns is freed while the audit runs, the callback does not run;
 * free the audit anyway.
 */
#ifndef EMV_AUDIT_H
#define EMV_AUDIT_H

#include "emv_pool.h"
#include "emv_spf.h"

#define EMV_AUDIT_PTR_MAX 8 /* PTR names looked at per address */
#define EMV_AUDIT_PROBLEMS_MAX 1024

typedef enum {
	EMV_AUDIT_PASS = 0,
	EMV_AUDIT_FAIL,
	EMV_AUDIT_UNKNOWN, /* no usable answer (timeout, SERVFAIL, odd data) */
} emv_audit_check;

typedef struct {
	char zone[EMV_HOST_MAX];
	emv_audit_check status;	      /* PASS not listed, FAIL listed, UNKNOWN */
	char answer[EMV_POOL_IP_MAX]; /* the A answer when one came */
	char reason[256];	      /* the TXT reason when listed (sanitised), or "" */
} emv_audit_dnsbl;

typedef struct {
	int source; /* index in the pool */
	char ip[EMV_POOL_IP_MAX];
	char helo[EMV_HOST_MAX];
	int ok;	  /* 1 = every check passed */
	int held; /* !ok and the pool says audit_failures = hold */
	emv_audit_check fcrdns;
	char ptr[EMV_HOST_MAX]; /* the PTR names, space-separated (may be cut short) */
	emv_spf_result spf;
	char spf_detail[256];
	int ndnsbl;
	emv_audit_dnsbl dnsbl[EMV_POOL_DNSBL_MAX];
	char problems[EMV_AUDIT_PROBLEMS_MAX]; /* "; "-separated; "" when ok */
	char notes[512];		       /* what could not be checked but does not fail ("; "-separated) */
} emv_audit_result;

typedef struct emv_audit emv_audit;
typedef void (*emv_audit_cb)(const emv_audit_result *res, int n, void *arg);

/* Start auditing every source of pool (copied: pool may be freed after).
 * res[i] is the result of pool->sources[i]. */
emv_audit *emv_audit_start(struct event_base *base, emv_dns *dns, const emv_pool *pool, emv_audit_cb cb, void *arg);
void emv_audit_free(emv_audit *a);

const char *emv_audit_check_name(emv_audit_check c); /* "pass", "fail", "unknown" */

#endif
