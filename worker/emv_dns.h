/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_dns.h - mail routing lookups (RFC 5321 §5.1) with c-ares driven by a
 * libevent loop.  Nothing here blocks: c-ares tells us which sockets to watch
 * (socket-state callback) and when its next timeout is; the loop tells c-ares
 * what became readable/writable.
 *
 * emv_dns_resolve_mx() answers one question: where does mail for this domain
 * go?  MX records sorted by preference, each with its A/AAAA addresses; an
 * implicit MX (the domain's own A/AAAA) when there is no MX; a null MX
 * (RFC 7505); and the failure kinds kept apart: NXDOMAIN (no such domain),
 * NODATA (domain exists, no mail server), temporary (SERVFAIL, REFUSED,
 * timeout) so callers never mistake a broken resolver for a dead domain.
 *
 * Answers are cached per emv_dns by their TTL (clamped to settings).
 */
#ifndef EMV_DNS_H
#define EMV_DNS_H

#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "emv_util.h" /* EMV_HOST_NAME_MAX */

struct event_base;

#define EMV_MX_MAX 8	  /* MX hosts kept per domain (lowest preference first) */
#define EMV_MX_ADDR_MAX 4 /* addresses kept per MX host */

/* An IPv4 or IPv6 socket address in 28 bytes (sockaddr_storage is 128:
 * results are cached per domain and copied per job, so size matters). */
typedef union {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
} emv_sockaddr;
#define EMV_HOST_MAX (EMV_HOST_NAME_MAX + 3) /* a buffer: a name, its root dot, NUL (256) */

typedef enum {
	EMV_DNS_OK = 0,	    /* hosts[] has at least one host with addresses */
	EMV_DNS_NXDOMAIN,   /* the domain does not exist */
	EMV_DNS_NODATA,	    /* the domain exists but has no MX, A or AAAA */
	EMV_DNS_NULL_MX,    /* "MX 0 ." - the domain accepts no mail */
	EMV_DNS_NO_ADDRESS, /* MX hosts exist but none has an address */
	EMV_DNS_TEMPFAIL,   /* SERVFAIL / REFUSED / timeout: try again later */
	EMV_DNS_CANCELLED,  /* emv_dns_query only: the emv_dns was freed first */
} emv_dns_status;

typedef struct {
	char host[EMV_HOST_MAX];
	int preference;
	int naddrs;
	emv_sockaddr addrs[EMV_MX_ADDR_MAX];
	int addr_status; /* emv_dns_status of the address lookups of this host */
} emv_mx_host;

typedef struct {
	emv_dns_status status;
	int implicit; /* no MX: hosts[0] is the domain itself */
	int nhosts;
	uint32_t ttl; /* seconds this answer may be cached */
	int from_cache;
	char detail[200];	       /* human explanation, e.g. "MX lookup: SERVFAIL" */
	emv_mx_host hosts[EMV_MX_MAX]; /* last: stored copies keep only nhosts of them */
} emv_mx_result;

typedef struct {
	const char *servers;	/* "host:port[,host:port]" or NULL for /etc/resolv.conf */
	int timeout_ms;		/* per try (default 2000) */
	int tries;		/* default 2 */
	uint32_t cache_min_ttl; /* clamp (default 30 s) */
	uint32_t cache_max_ttl; /* clamp (default 3600 s) */
	uint32_t negative_ttl;	/* NXDOMAIN/NODATA cache time (default 300 s); TEMPFAIL is never cached */
	size_t cache_max;	/* entries (default 50000, ~3 KiB each) */
} emv_dns_params;

void emv_dns_params_default(emv_dns_params *p);

/* Bytes of r that hold data: the header and its nhosts hosts.  Stored
 * copies (cache, jobs) keep only this much; such a copy must never be
 * copied by value, only with memcpy of this size into a full struct. */
size_t emv_mx_result_size(const emv_mx_result *r);
/* A heap copy of exactly emv_mx_result_size(r) bytes (free() it). */
emv_mx_result *emv_mx_result_dup(const emv_mx_result *r);

typedef struct emv_dns emv_dns;
typedef void (*emv_dns_mx_cb)(const emv_mx_result *res, void *arg);

emv_dns *emv_dns_new(struct event_base *base, const emv_dns_params *p, char *err, size_t errlen);
void emv_dns_free(emv_dns *d);

/* Resolve where mail for `domain` (an A-label) goes; the callback runs
 * exactly once, possibly before this call returns (cache hit). */
void emv_dns_resolve_mx(emv_dns *d, const char *domain, emv_dns_mx_cb cb, void *arg);

/*
 * One query of any type on the same channel and loop, for callers that
 * parse their own answers (emv_audit: PTR, TXT, A, AAAA, MX).  Not cached.
 * The callback runs exactly once: EMV_DNS_OK with the answer (abuf/alen,
 * valid during the callback only; c-ares bounds it: UDP/EDNS 1232 bytes,
 * TCP 64 KiB), EMV_DNS_NXDOMAIN or EMV_DNS_NODATA (abuf may be set),
 * EMV_DNS_TEMPFAIL (SERVFAIL, REFUSED, timeout after the configured tries),
 * or EMV_DNS_CANCELLED with abuf NULL when emv_dns_free() runs first - then
 * free your own state and start nothing new.  type is a DNS RR type number
 * (1 A, 12 PTR, 15 MX, 16 TXT, 28 AAAA).
 */
typedef void (*emv_dns_raw_cb)(emv_dns_status st, const unsigned char *abuf, int alen, void *arg);
void emv_dns_query(emv_dns *d, const char *name, int type, emv_dns_raw_cb cb, void *arg);

/* Queries in flight (for draining). */
int emv_dns_pending(const emv_dns *d);

const char *emv_dns_status_name(emv_dns_status s);

#endif
