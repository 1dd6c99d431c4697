/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_testsmtpd_conf.c - parse the declarative world config (world.conf).
 *
 * Line oriented: "keyword args..."; blank lines and lines whose first
 * non-blank character is '#' are ignored.  Global settings come before the
 * first "server NAME" line; every later line belongs to the last server.
 * The format is documented at the top of tests/world/world.conf.
 * Errors are reported as "file:line: message" in the caller's buffer.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "emv_util.h"
#include "emv_testsmtpd.h"

#define CONF_LINE_MAX 4096
#define CONF_MAX_ARGS 8

struct parse {
	const char *path;
	unsigned lineno;
	char *err;
	size_t errlen;
};

static int perr(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parse *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "%s:%u: %s", p->path, p->lineno, msg);
	return EMV_ERR;
}

const char *tsd_phase_name(enum tsd_phase ph)
{
	switch (ph) {
	case TSD_PHASE_NONE: return "none";
	case TSD_PHASE_BANNER: return "banner";
	case TSD_PHASE_EHLO: return "ehlo";
	case TSD_PHASE_MAIL: return "mail";
	case TSD_PHASE_RCPT: return "rcpt";
	}
	return "?";
}

const char *tsd_tls_name(enum tsd_tls t)
{
	switch (t) {
	case TSD_TLS_NONE: return "none";
	case TSD_TLS_OFFERED: return "offered";
	case TSD_TLS_REQUIRED: return "required";
	case TSD_TLS_BROKEN_GARBAGE: return "broken-garbage";
	case TSD_TLS_BROKEN_ABORT: return "broken-abort";
	}
	return "?";
}

int tsd_sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
	}
	return 0;
}

static int parse_ip_port(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len, char *err,
			 size_t errlen)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof *s4;
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof *s6;
	} else {
		snprintf(err, errlen, "not an IP address: '%s'", host);
		return EMV_ERR;
	}
	/* The network rule of the test world: loopback and nothing else. */
	if (!tsd_sockaddr_is_loopback((struct sockaddr *)ss)) {
		snprintf(err, errlen, "%s is not a loopback address (127.0.0.0/8 or ::1 only)", host);
		return EMV_ERR;
	}
	return EMV_OK;
}

int tsd_parse_ip(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen)
{
	return parse_ip_port(s, 0, ss, len, err, errlen);
}

int tsd_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen)
{
	char host[128];
	const char *colon;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host) {
			snprintf(err, errlen, "bad address '%s' (want [IPv6]:PORT)", s);
			return EMV_ERR;
		}
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof host) {
			snprintf(err, errlen, "bad address '%s' (want IPv4:PORT)", s);
			return EMV_ERR;
		}
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 1 || port > 65535) {
		snprintf(err, errlen, "bad port in '%s'", s);
		return EMV_ERR;
	}
	return parse_ip_port(host, (int)port, ss, len, err, errlen);
}

static int parse_uint(struct parse *p, const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)s[0]))
		return perr(p, "'%s' is not a number", s);
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return perr(p, "'%s' is not a number in 0..%lu", s, max);
	*out = v;
	return EMV_OK;
}

static int parse_bool(struct parse *p, const char *s, int *out)
{
	if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "on") == 0 || strcmp(s, "1") == 0)
		*out = 1;
	else if (strcasecmp(s, "no") == 0 || strcasecmp(s, "off") == 0 || strcmp(s, "0") == 0)
		*out = 0;
	else
		return perr(p, "'%s' is not yes/no", s);
	return EMV_OK;
}

static int parse_phase(struct parse *p, const char *s, enum tsd_phase *out)
{
	static const enum tsd_phase all[] = { TSD_PHASE_BANNER, TSD_PHASE_EHLO, TSD_PHASE_MAIL, TSD_PHASE_RCPT };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (strcasecmp(s, tsd_phase_name(all[i])) == 0) {
			*out = all[i];
			return EMV_OK;
		}
	}
	return perr(p, "'%s' is not a phase (banner, ehlo, mail, rcpt)", s);
}

/* "CODE TEXT..." where rest is everything after the keyword. */
static int parse_reply(struct parse *p, const char *rest, struct tsd_reply *r)
{
	char *end;
	long code = strtol(rest, &end, 10);
	if (end == rest || code < 200 || code > 599 || (*end && !isspace((unsigned char)*end)))
		return perr(p, "reply must be 'CODE TEXT' with CODE in 200..599");
	while (isspace((unsigned char)*end))
		end++;
	free(r->text);
	r->code = (int)code;
	r->text = emv_xstrdup(*end ? end : "Ok");
	return EMV_OK;
}

static void reply_set(struct tsd_reply *r, int code, const char *text)
{
	free(r->text);
	r->code = code;
	r->text = emv_xstrdup(text);
}

static struct tsd_server *server_add(struct tsd_config *cf, const char *name)
{
	cf->servers = emv_xrealloc(cf->servers, (cf->nservers + 1) * sizeof *cf->servers);
	struct tsd_server *s = &cf->servers[cf->nservers++];
	memset(s, 0, sizeof *s);
	s->name = emv_xstrdup(name);
	s->hostname = emv_xstrdup(name);
	s->banner_text = emv_xstrdup("ESMTP emv-testsmtpd");
	s->ehlo = 1;
	s->pipelining = 1;
	s->starttls = TSD_TLS_NONE;
	reply_set(&s->unknown_reply, 550,
		  "5.1.1 <%a>: Recipient address rejected: User unknown in virtual mailbox table");
	reply_set(&s->block_reply, 554, "5.7.1 Service unavailable; Client host [%i] blocked using zen.spamhaus.org");
	s->rate_window_s = 60;
	return s;
}

static int server_line(struct parse *p, struct tsd_server *s, char **av, int ac, const char *rest)
{
	const char *kw = av[0];
	unsigned long v;
	char e[256];

#define NEED(n)                                                               \
	do {                                                                  \
		if (ac < (n) + 1)                                             \
			return perr(p, "'%s' needs %d argument(s)", kw, (n)); \
	} while (0)
	if (strcmp(kw, "listen") == 0) {
		NEED(1);
		s->listens = emv_xrealloc(s->listens, (s->nlistens + 1) * sizeof *s->listens);
		struct tsd_listen *l = &s->listens[s->nlistens];
		memset(l, 0, sizeof *l);
		l->fd = -1;
		if (tsd_parse_hostport(av[1], &l->ss, &l->sslen, e, sizeof e) != EMV_OK)
			return perr(p, "%s", e);
		if (l->ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&l->ss)->sin_addr, l->ip, sizeof l->ip);
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&l->ss)->sin6_addr, l->ip, sizeof l->ip);
		if (ac > 2) {
			if (strcmp(av[2], "optional") != 0)
				return perr(p, "listen: unknown flag '%s'", av[2]);
			l->optional = 1;
		}
		s->nlistens++;
	} else if (strcmp(kw, "hostname") == 0) {
		NEED(1);
		free(s->hostname);
		s->hostname = emv_xstrdup(av[1]);
	} else if (strcmp(kw, "banner") == 0) {
		NEED(1);
		free(s->banner_text);
		s->banner_text = emv_xstrdup(rest);
	} else if (strcmp(kw, "banner-reply") == 0) {
		NEED(2);
		return parse_reply(p, rest, &s->banner_reply);
	} else if (strcmp(kw, "banner-delay") == 0) {
		NEED(1);
		if (strcmp(av[1], "never") == 0) {
			s->banner_delay_ms = -1;
		} else {
			if (parse_uint(p, av[1], 86400000ul, &v) != EMV_OK)
				return EMV_ERR;
			s->banner_delay_ms = (long)v;
		}
	} else if (strcmp(kw, "ehlo") == 0) {
		NEED(1);
		return parse_bool(p, av[1], &s->ehlo);
	} else if (strcmp(kw, "pipelining") == 0) {
		NEED(1);
		return parse_bool(p, av[1], &s->pipelining);
	} else if (strcmp(kw, "smtputf8") == 0) {
		NEED(1);
		return parse_bool(p, av[1], &s->smtputf8);
	} else if (strcmp(kw, "multiline") == 0) {
		NEED(1);
		return parse_bool(p, av[1], &s->multiline);
	} else if (strcmp(kw, "starttls") == 0) {
		NEED(1);
		static const enum tsd_tls modes[] = { TSD_TLS_NONE, TSD_TLS_OFFERED, TSD_TLS_REQUIRED,
						      TSD_TLS_BROKEN_GARBAGE, TSD_TLS_BROKEN_ABORT };
		for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
			if (strcasecmp(av[1], tsd_tls_name(modes[i])) == 0) {
				s->starttls = modes[i];
				return EMV_OK;
			}
		}
		return perr(p, "starttls: want none|offered|required|broken-garbage|broken-abort");
	} else if (strcmp(kw, "domain") == 0) {
		NEED(1);
		s->domains = emv_xrealloc(s->domains, (s->ndomains + 1) * sizeof *s->domains);
		s->domains[s->ndomains++] = emv_xstrdup(av[1]);
	} else if (strcmp(kw, "user") == 0) {
		NEED(2);
		s->users = emv_xrealloc(s->users, (s->nusers + 1) * sizeof *s->users);
		struct tsd_user *u = &s->users[s->nusers];
		memset(u, 0, sizeof *u);
		if (strcasecmp(av[2], "accept") == 0) {
			reply_set(&u->reply, 250, "2.1.5 Ok");
		} else {
			const char *r = rest + strlen(av[1]);
			while (isspace((unsigned char)*r))
				r++;
			if (parse_reply(p, r, &u->reply) != EMV_OK)
				return EMV_ERR;
		}
		u->local = emv_xstrdup(av[1]);
		s->nusers++;
	} else if (strcmp(kw, "unknown") == 0) {
		NEED(1);
		if (strcasecmp(av[1], "accept") == 0)
			reply_set(&s->unknown_reply, 250, "2.1.5 Ok");
		else if (strcasecmp(av[1], "reject") == 0)
			reply_set(&s->unknown_reply, 550,
				  "5.1.1 <%a>: Recipient address rejected: User unknown in virtual mailbox table");
		else
			return parse_reply(p, rest, &s->unknown_reply);
	} else if (strcmp(kw, "mail-reply") == 0) {
		NEED(2);
		return parse_reply(p, rest, &s->mail_reply);
	} else if (strcmp(kw, "greylist") == 0) {
		NEED(1);
		if (parse_uint(p, av[1], 86400, &v) != EMV_OK)
			return EMV_ERR;
		s->greylist_s = (unsigned)v;
	} else if (strcmp(kw, "error-limits") == 0) {
		NEED(3);
		if (parse_uint(p, av[1], 1000, &v) != EMV_OK)
			return EMV_ERR;
		s->err_soft = (unsigned)v;
		if (parse_uint(p, av[2], 60000, &v) != EMV_OK)
			return EMV_ERR;
		s->err_sleep_ms = (unsigned)v;
		if (parse_uint(p, av[3], 1000, &v) != EMV_OK)
			return EMV_ERR;
		s->err_hard = (unsigned)v;
	} else if (strcmp(kw, "hiccup") == 0) {
		NEED(2);
		if (parse_uint(p, av[1], 1000, &v) != EMV_OK)
			return EMV_ERR;
		s->hiccup_after = (unsigned)v;
		if (parse_uint(p, av[2], 60000, &v) != EMV_OK)
			return EMV_ERR;
		s->hiccup_ms = (unsigned)v;
	} else if (strcmp(kw, "max-rcpt") == 0) {
		NEED(1);
		if (parse_uint(p, av[1], 1000000, &v) != EMV_OK)
			return EMV_ERR;
		s->max_rcpt = (unsigned)v;
	} else if (strcmp(kw, "rate-limit") == 0) {
		NEED(1);
		if (parse_uint(p, av[1], 1000000, &v) != EMV_OK)
			return EMV_ERR;
		s->rate_count = (unsigned)v;
		if (ac > 2) {
			if (parse_uint(p, av[2], 86400, &v) != EMV_OK)
				return EMV_ERR;
			if (v == 0)
				return perr(p, "rate-limit window must be > 0");
			s->rate_window_s = (unsigned)v;
		}
	} else if (strcmp(kw, "block") == 0) {
		NEED(2);
		struct sockaddr_storage ss;
		socklen_t sl;
		enum tsd_phase ph;
		if (tsd_parse_ip(av[1], &ss, &sl, e, sizeof e) != EMV_OK)
			return perr(p, "%s", e);
		if (parse_phase(p, av[2], &ph) != EMV_OK)
			return EMV_ERR;
		if (ph != TSD_PHASE_BANNER && ph != TSD_PHASE_RCPT)
			return perr(p, "block: phase must be banner or rcpt");
		s->blocks = emv_xrealloc(s->blocks, (s->nblocks + 1) * sizeof *s->blocks);
		struct tsd_block *b = &s->blocks[s->nblocks++];
		/* normalise through inet_ntop so it compares with the peer's text */
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, b->ip, sizeof b->ip);
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, b->ip, sizeof b->ip);
		b->phase = ph;
	} else if (strcmp(kw, "block-reply") == 0) {
		NEED(2);
		return parse_reply(p, rest, &s->block_reply);
	} else if (strcmp(kw, "latency") == 0) {
		NEED(1);
		if (parse_uint(p, av[1], 600000, &v) != EMV_OK)
			return EMV_ERR;
		s->latency_ms = (unsigned)v;
	} else if (strcmp(kw, "latency-mode") == 0) {
		NEED(1);
		if (strcmp(av[1], "serial") == 0)
			s->latency_network = 0;
		else if (strcmp(av[1], "network") == 0)
			s->latency_network = 1;
		else
			return perr(p, "latency-mode must be serial or network");
	} else if (strcmp(kw, "drop") == 0) {
		NEED(1);
		return parse_phase(p, av[1], &s->drop_phase);
	} else if (strcmp(kw, "endless") == 0 || strcmp(kw, "huge") == 0) {
		NEED(2);
		enum tsd_phase ph;
		if (parse_phase(p, av[1], &ph) != EMV_OK)
			return EMV_ERR;
		if (parse_uint(p, av[2], 1ul << 30, &v) != EMV_OK)
			return EMV_ERR;
		if (kw[0] == 'e') {
			s->endless_phase = ph;
			s->endless_bytes = v;
		} else {
			s->huge_phase = ph;
			s->huge_bytes = v;
		}
	} else {
		return perr(p, "unknown server setting '%s'", kw);
	}
	return EMV_OK;
#undef NEED
}

static int global_line(struct parse *p, struct tsd_config *cf, char **av, int ac)
{
	unsigned long v;
	if (ac < 2)
		return perr(p, "'%s' needs an argument", av[0]);
	if (strcmp(av[0], "idle-timeout") == 0) {
		if (parse_uint(p, av[1], 86400, &v) != EMV_OK)
			return EMV_ERR;
		cf->idle_timeout_s = (unsigned)v;
	} else if (strcmp(av[0], "write-timeout") == 0) {
		if (parse_uint(p, av[1], 86400, &v) != EMV_OK)
			return EMV_ERR;
		cf->write_timeout_s = (unsigned)v;
	} else if (strcmp(av[0], "max-connections") == 0) {
		if (parse_uint(p, av[1], 1000000, &v) != EMV_OK)
			return EMV_ERR;
		cf->max_connections = (unsigned)v;
	} else if (strcmp(av[0], "line-max") == 0) {
		if (parse_uint(p, av[1], TSD_LINE_MAX_CAP, &v) != EMV_OK)
			return EMV_ERR;
		if (v < 64)
			return perr(p, "line-max must be at least 64");
		cf->line_max = v;
	} else if (strcmp(av[0], "max-errors") == 0) {
		if (parse_uint(p, av[1], 1000000, &v) != EMV_OK)
			return EMV_ERR;
		cf->max_errors = (unsigned)v;
	} else if (strcmp(av[0], "table-max") == 0) {
		if (parse_uint(p, av[1], 100000000, &v) != EMV_OK)
			return EMV_ERR;
		cf->table_max = v;
	} else {
		return perr(p, "unknown global setting '%s' (server settings go after a 'server NAME' line)", av[0]);
	}
	return EMV_OK;
}

static int server_check(struct parse *p, const struct tsd_server *s)
{
	if (s->nlistens == 0)
		return perr(p, "server %s has no listen address", s->name);
	return EMV_OK;
}

struct tsd_config *tsd_config_load(const char *path, char *err, size_t errlen)
{
	struct parse p = { path, 0, err, errlen };
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	struct tsd_config *cf = emv_xcalloc(1, sizeof *cf);
	cf->idle_timeout_s = TSD_DEFAULT_IDLE_TIMEOUT_S;
	cf->write_timeout_s = TSD_DEFAULT_WRITE_TIMEOUT_S;
	cf->max_connections = TSD_DEFAULT_MAX_CONNECTIONS;
	cf->line_max = TSD_DEFAULT_LINE_MAX;
	cf->max_errors = TSD_DEFAULT_MAX_ERRORS;
	cf->table_max = TSD_DEFAULT_TABLE_MAX;

	char line[CONF_LINE_MAX];
	struct tsd_server *cur = NULL;
	int rc = EMV_OK;
	while (rc == EMV_OK && fgets(line, sizeof line, f)) {
		p.lineno++;
		size_t n = strlen(line);
		if (n == sizeof line - 1 && line[n - 1] != '\n') {
			rc = perr(&p, "line too long");
			break;
		}
		char *s = emv_trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		/* rest: the text after the keyword, for free-text settings */
		char copy[CONF_LINE_MAX];
		emv_strlcpy(copy, s, sizeof copy);
		char *rest = copy;
		while (*rest && !isspace((unsigned char)*rest))
			rest++;
		while (isspace((unsigned char)*rest))
			rest++;

		char *av[CONF_MAX_ARGS] = { NULL };
		int ac = 0;
		for (char *tok = strtok(s, " \t"); tok && ac < CONF_MAX_ARGS; tok = strtok(NULL, " \t"))
			av[ac++] = tok;

		if (strcmp(av[0], "server") == 0) {
			if (ac != 2) {
				rc = perr(&p, "'server' needs exactly one name");
				break;
			}
			if (cur && (rc = server_check(&p, cur)) != EMV_OK)
				break;
			for (size_t i = 0; i < cf->nservers; i++) {
				if (strcmp(cf->servers[i].name, av[1]) == 0)
					rc = perr(&p, "server %s defined twice", av[1]);
			}
			if (rc == EMV_OK)
				cur = server_add(cf, av[1]);
		} else if (cur) {
			rc = server_line(&p, cur, av, ac, rest);
		} else {
			rc = global_line(&p, cf, av, ac);
		}
	}
	if (rc == EMV_OK && ferror(f))
		rc = perr(&p, "read error: %s", strerror(errno));
	fclose(f);
	if (rc == EMV_OK && cur)
		rc = server_check(&p, cur);
	if (rc == EMV_OK && cf->nservers == 0) {
		snprintf(err, errlen, "%s: no servers defined", path);
		rc = EMV_ERR;
	}
	/* Each listen address belongs to exactly one server. */
	for (size_t i = 0; rc == EMV_OK && i < cf->nservers; i++) {
		for (size_t j = 0; rc == EMV_OK && j < cf->servers[i].nlistens; j++) {
			const struct tsd_listen *a = &cf->servers[i].listens[j];
			for (size_t k = i; rc == EMV_OK && k < cf->nservers; k++) {
				for (size_t m = (k == i ? j + 1 : 0); m < cf->servers[k].nlistens; m++) {
					const struct tsd_listen *b = &cf->servers[k].listens[m];
					if (a->sslen == b->sslen && memcmp(&a->ss, &b->ss, a->sslen) == 0) {
						snprintf(err, errlen, "%s: address %s used by both %s and %s", path,
							 a->ip, cf->servers[i].name, cf->servers[k].name);
						rc = EMV_ERR;
						break;
					}
				}
			}
		}
	}
	if (rc != EMV_OK) {
		tsd_config_free(cf);
		return NULL;
	}
	return cf;
}

void tsd_config_free(struct tsd_config *cf)
{
	if (!cf)
		return;
	for (size_t i = 0; i < cf->nservers; i++) {
		struct tsd_server *s = &cf->servers[i];
		free(s->name);
		free(s->hostname);
		free(s->banner_text);
		free(s->banner_reply.text);
		free(s->unknown_reply.text);
		free(s->mail_reply.text);
		free(s->block_reply.text);
		for (size_t j = 0; j < s->ndomains; j++)
			free(s->domains[j]);
		free(s->domains);
		for (size_t j = 0; j < s->nusers; j++) {
			free(s->users[j].local);
			free(s->users[j].reply.text);
		}
		free(s->users);
		free(s->blocks);
		free(s->listens);
		tsd_map_free(s->greylist);
		tsd_map_free(s->rates);
	}
	free(cf->servers);
	free(cf);
}
