/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_pool.h - a worker's identity and source-IP pool (docs/design.md §3 "IP pool
 * and reputation", docs/regions.md): its region, the probe sender it uses there, the
 * source addresses it may bind to (each with the HELO name that should match
 * its PTR), the DNSBL zones its self-audit checks, and what to do when the
 * audit fails.
 *
 * FILE FORMAT (deploy/worker.conf.example is a commented example)
 *   key = value        one setting a line; blanks around '=' are optional
 *   # comment          '#' at the start of a line or after a blank, to the end
 *   Blank lines are ignored; lines may end in CRLF; at most
 *   EMV_POOL_LINE_MAX - 1 characters a line; no NUL bytes.
 *
 *   region = NAME            required, once; 1..31 of a-z 0-9 _ - (lower-cased)
 *   mail_from = LOCAL@DOMAIN required, once; the probe's MAIL FROM in this
 *                            region; DOMAIN is a host name (its SPF is audited)
 *   source = ADDRESS HELO    required, repeatable (1..EMV_POOL_SOURCES_MAX);
 *                            an IPv4 or IPv6 literal and the host name to say
 *                            in EHLO from it; an address appears once only
 *   dnsbl = ZONE             optional, repeatable (0..EMV_POOL_DNSBL_MAX);
 *                            a DNS blocklist zone, e.g. zen.spamhaus.org
 *   audit_failures = hold|run optional, once (default hold): hold = an address
 *                            that fails its self-audit is not used; run = it
 *                            is used anyway (the failures are still reported)
 *   audit_interval = DURATION optional, once (default 1h): audit the sources
 *                            again this often while running (emv_reaudit.h),
 *                            so a held address whose listing is gone comes
 *                            back and a newly listed one is held; a whole
 *                            number with an optional unit s, m, h, d
 *                            ("90", "10m", "1h"); 0 = only at start
 *
 * Host names: 2+ labels of letters, digits and '-' (DNSBL zones may also
 * use '_'), no label longer than 63, at most 253 characters, an optional
 * trailing dot dropped; stored lower-cased.
 *
 * Errors: parsing is strict - an unknown key, a repeated singleton, a bad or
 * missing value fails the whole load with "NAME:LINE: FIELD: what" in the
 * caller's buffer (missing required keys are reported as "NAME: FIELD: ...").
 * A pool is a safety control: a typo must not send mail from the wrong
 * address.  emv_pool_parse() reads from a buffer (any bytes, any length), so
 * it is safe to fuzz; a loaded pool is read-only.
 */
#ifndef EMV_POOL_H
#define EMV_POOL_H

#include <stddef.h>
#include <stdint.h>
#include "emv_dns.h"

#define EMV_POOL_REGION_MAX 32 /* incl. NUL */
#define EMV_POOL_SOURCES_MAX 64
#define EMV_POOL_DNSBL_MAX 8
#define EMV_POOL_IP_MAX 46 /* INET6_ADDRSTRLEN */
#define EMV_POOL_LINE_MAX 1024
#define EMV_POOL_MAILFROM_MAX (64 + 1 + EMV_HOST_NAME_MAX + 2) /* incl. NUL: local @ domain + slack (320) */

#define EMV_POOL_AUDIT_HOLD 0			   /* a failed address is held (not used) */
#define EMV_POOL_AUDIT_RUN 1			   /* a failed address is used anyway */
#define EMV_POOL_AUDIT_INTERVAL_MS (3600u * 1000u) /* default audit_interval: 1 h */

typedef struct {
	emv_sockaddr addr;	  /* port 0 */
	char ip[EMV_POOL_IP_MAX]; /* canonical text form (inet_ntop) */
	char helo[EMV_HOST_MAX];  /* lower-case, no trailing dot */
} emv_pool_source;

typedef struct {
	char region[EMV_POOL_REGION_MAX];
	char mail_from[EMV_POOL_MAILFROM_MAX];
	char mail_from_domain[EMV_HOST_MAX]; /* the part after the '@', lower-case */
	int audit_failures;		     /* EMV_POOL_AUDIT_* */
	uint64_t audit_interval_ms;	     /* re-audit period; 0 = at start only */
	int nsources;
	emv_pool_source sources[EMV_POOL_SOURCES_MAX];
	int ndnsbl;
	char dnsbl[EMV_POOL_DNSBL_MAX][EMV_HOST_MAX];
} emv_pool;

/* Parse len bytes of buf (need not be NUL-terminated); name is used in
 * errors.  NULL on error with "name:line: field: what" in err. */
emv_pool *emv_pool_parse(const char *buf, size_t len, const char *name, char *err, size_t errlen);
/* Read and parse a file (at most 1 MiB). */
emv_pool *emv_pool_load(const char *path, char *err, size_t errlen);
void emv_pool_free(emv_pool *p);

/* Index of the source with this address text (any spelling inet_pton
 * accepts), or -1. */
int emv_pool_find(const emv_pool *p, const char *ip);

#endif
