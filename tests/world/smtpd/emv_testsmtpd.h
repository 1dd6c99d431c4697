/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_testsmtpd.h - the scriptable SMTP test server of the test world.
 *
 * One process serves every simulated mail server of the world: each
 * "server" section of the config names its listen addresses (loopback
 * only) and its behaviours (users, greylisting, limits, faults).  The
 * same binary has two client modes used by the world scripts: an SMTP
 * probe (--probe) and a one-shot DNS query (--dns-query).
 *
 * Files: emv_testsmtpd.c (main, event loop, sessions),
 * emv_testsmtpd_conf.c (config parser), emv_testsmtpd_map.c (bounded
 * string-keyed tables for greylisting and rate limits),
 * emv_testsmtpd_client.c (the two client modes).
 *
 * Errors: the config parser fills an error buffer ("file:line: why");
 * everything else logs to stderr.  This is test code, but it is run
 * against hostile-by-design clients (our own fuzzed probe), so every
 * read is bounded.
 */
#ifndef EMV_TESTSMTPD_H
#define EMV_TESTSMTPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

/* Defaults for the global settings (see world.conf for their meaning). */
#define TSD_DEFAULT_IDLE_TIMEOUT_S 120
#define TSD_DEFAULT_WRITE_TIMEOUT_S 60
#define TSD_DEFAULT_MAX_CONNECTIONS 20000
#define TSD_DEFAULT_LINE_MAX 1000 /* RFC 5321 4.5.3.1.4 command line */
#define TSD_LINE_MAX_CAP 65536
#define TSD_DEFAULT_MAX_ERRORS 20
#define TSD_DEFAULT_TABLE_MAX 200000 /* entries per greylist/rate table */
#define TSD_ADDR_MAX 320	     /* longest address kept from MAIL/RCPT */

enum tsd_tls {
	TSD_TLS_NONE = 0,	/* not advertised, STARTTLS -> 502 */
	TSD_TLS_OFFERED,	/* advertised, works */
	TSD_TLS_REQUIRED,	/* advertised, MAIL/RCPT before TLS -> 530 5.7.0 */
	TSD_TLS_BROKEN_GARBAGE, /* 220, then garbage instead of a ServerHello */
	TSD_TLS_BROKEN_ABORT	/* 220, then the connection is closed mid-handshake */
};

/* The points of a session where a fault can be injected. */
enum tsd_phase { TSD_PHASE_NONE = 0, TSD_PHASE_BANNER, TSD_PHASE_EHLO, TSD_PHASE_MAIL, TSD_PHASE_RCPT };

/* A configured reply: code 0 means "not set".  text may hold %a (the
 * address of the command), %i (client IP), %h (server host name). */
struct tsd_reply {
	int code;
	char *text;
};

struct tsd_user {
	char *local; /* compared case-insensitively */
	struct tsd_reply reply;
};

struct tsd_block {
	char ip[64];	      /* exact client address, as printed by inet_ntop */
	enum tsd_phase phase; /* TSD_PHASE_BANNER or TSD_PHASE_RCPT */
};

struct tsd_listen {
	struct sockaddr_storage ss;
	socklen_t sslen;
	char ip[64];  /* printable address, used in the event log */
	int optional; /* failing to bind is a warning, not an error */
	int fd;	      /* -1 until bound */
};

struct tsd_map;

struct tsd_server {
	char *name;
	char *hostname;
	char *banner_text;
	struct tsd_reply banner_reply; /* replaces the 220 banner */
	long banner_delay_ms;	       /* 0 none, -1 never */
	int ehlo;
	int pipelining;
	int smtputf8;
	enum tsd_tls starttls;
	char **domains;
	size_t ndomains;
	struct tsd_user *users;
	size_t nusers;
	struct tsd_reply unknown_reply;
	struct tsd_reply mail_reply;		   /* code 0: 250 2.1.0 Ok */
	unsigned greylist_s;			   /* 0: off */
	unsigned max_rcpt;			   /* 0: unlimited */
	unsigned err_soft, err_sleep_ms, err_hard; /* error-limits (Postfix's anti-harvest): 0 = off */
	unsigned hiccup_after, hiccup_ms;	   /* hiccup: one reply per session late (0 = off) */
	unsigned rate_count;			   /* 0: off */
	unsigned rate_window_s;
	struct tsd_block *blocks;
	size_t nblocks;
	struct tsd_reply block_reply;
	unsigned latency_ms;
	int latency_network; /* 1: a flight of pipelined commands is answered MS later,
	                                    together (network round trip); 0: each reply MS after
	                                    the previous one (a slow server) */
	int multiline;
	enum tsd_phase drop_phase;
	enum tsd_phase endless_phase;
	size_t endless_bytes;
	enum tsd_phase huge_phase;
	size_t huge_bytes;
	struct tsd_listen *listens;
	size_t nlistens;

	/* run-time state, owned by the server module */
	struct tsd_map *greylist;
	struct tsd_map *rates;
};

struct tsd_config {
	unsigned idle_timeout_s;
	unsigned write_timeout_s;
	unsigned max_connections;
	size_t line_max;
	unsigned max_errors;
	size_t table_max;
	struct tsd_server *servers;
	size_t nservers;
};

/* emv_testsmtpd_conf.c */
struct tsd_config *tsd_config_load(const char *path, char *err, size_t errlen);
void tsd_config_free(struct tsd_config *cf);
const char *tsd_phase_name(enum tsd_phase p);
const char *tsd_tls_name(enum tsd_tls t);
/* Parse "127.0.0.10:2525" or "[::1]:2525"; only loopback is accepted. */
int tsd_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen);
/* Parse a bare IP (no port); only loopback is accepted. */
int tsd_parse_ip(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen);
int tsd_sockaddr_is_loopback(const struct sockaddr *sa);

/* emv_testsmtpd_map.c - a bounded hash table keyed by strings.  When it
 * holds max entries, adding one more empties it first (test servers may
 * forget; they must not grow without bound). */
struct tsd_map_entry {
	struct tsd_map_entry *next;
	uint64_t t0; /* first seen / window start, monotonic ms */
	uint32_t count;
	char key[];
};
struct tsd_map *tsd_map_new(size_t max);
void tsd_map_free(struct tsd_map *m);
void tsd_map_clear(struct tsd_map *m);
/* Find key (case-insensitive); add it with t0 = now, count = 0 if absent
 * and set *created. */
struct tsd_map_entry *tsd_map_get(struct tsd_map *m, const char *key, uint64_t now, int *created);
size_t tsd_map_size(const struct tsd_map *m);

/* emv_testsmtpd_client.c */
int tsd_probe_main(int argc, char **argv);
int tsd_dnsq_main(int argc, char **argv);

#endif
