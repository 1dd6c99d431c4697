/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_testsmtpd_client.c - the two client modes of emv-testsmtpd, used by
 * the world scripts to check that the world is up and behaves:
 *
 *   --probe IP:PORT [--source IP] [--timeout MS] [--print N] [CMD...]
 *       Connect, read the banner, then send each CMD and read its reply.
 *       CMD "STARTTLS" switches to TLS after a 2xx reply (no certificate
 *       check); "!sleep MS" pauses; "!pipe A|B|C" sends A, B and C in one
 *       write and reads three replies.  Lines are printed as "<<< " (from
 *       the server), ">>> " (sent) and "*** " (events); a reply longer than
 *       N lines is summarised.
 *       Exit: 0 every reply read, 2 connect failed, 3 timeout, 4 closed by
 *       the server, 5 line or reply over the limit, 6 TLS failed,
 *       7 malformed reply, 1 usage.
 *
 *   --dns-query IP:PORT NAME TYPE [--timeout MS] [--tcp]
 *       One query (RD set) to that server; prints "rcode R answers N
 *       authority M time_ms T" and then every answer record, one a line
 *       with white space collapsed.  Exit: 0 answered (any rcode),
 *       3 timeout, 2 other failure, 1 usage.
 *
 * Blocking sockets with timeouts: these are one-shot command-line tools,
 * not part of any event loop.  Targets must be loopback addresses.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "emv_util.h"
#include "emv_testsmtpd.h"

#define PROBE_LINE_MAX 65536		    /* one reply line */
#define PROBE_REPLY_MAX (64u * 1024 * 1024) /* all lines of one reply */
#define PROBE_PRINT_COLS 200

enum {
	PX_OK = 0,
	PX_USAGE = 1,
	PX_CONNECT = 2,
	PX_TIMEOUT = 3,
	PX_CLOSED = 4,
	PX_TOO_LONG = 5,
	PX_TLS = 6,
	PX_MALFORMED = 7
};

struct reader {
	int fd;
	SSL *ssl;
	char buf[16384];
	size_t off, len;
};

static int rd_fill(struct reader *r)
{
	ssize_t n;
	if (r->ssl) {
		int k = SSL_read(r->ssl, r->buf, (int)sizeof r->buf);
		if (k <= 0) {
			int e = SSL_get_error(r->ssl, k);
			if (e == SSL_ERROR_ZERO_RETURN)
				return PX_CLOSED;
			if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
				return PX_TIMEOUT;
			if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
				return PX_CLOSED;
			return PX_TLS;
		}
		n = k;
	} else {
		do {
			n = recv(r->fd, r->buf, sizeof r->buf, 0);
		} while (n < 0 && errno == EINTR);
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? PX_TIMEOUT : PX_CLOSED;
		if (n == 0)
			return PX_CLOSED;
	}
	r->off = 0;
	r->len = (size_t)n;
	return PX_OK;
}

/* One line without its CRLF into line[PROBE_LINE_MAX + 1]. */
static int rd_line(struct reader *r, char *line, size_t *outlen)
{
	size_t n = 0;
	for (;;) {
		if (r->off == r->len) {
			int rc = rd_fill(r);
			if (rc != PX_OK)
				return rc;
		}
		char ch = r->buf[r->off++];
		if (ch == '\n') {
			if (n > 0 && line[n - 1] == '\r')
				n--;
			line[n] = '\0';
			*outlen = n;
			return PX_OK;
		}
		if (n >= PROBE_LINE_MAX)
			return PX_TOO_LONG;
		line[n++] = ch;
	}
}

static void print_line(const char *prefix, const char *line, size_t len)
{
	char clean[PROBE_PRINT_COLS + 1];
	emv_sanitize(clean, sizeof clean, line, len);
	if (len > PROBE_PRINT_COLS)
		printf("%s%s... (%zu bytes)\n", prefix, clean, len);
	else
		printf("%s%s\n", prefix, clean);
}

static const char *px_name(int rc)
{
	switch (rc) {
	case PX_TIMEOUT: return "timeout waiting for the server";
	case PX_CLOSED: return "connection closed by the server";
	case PX_TOO_LONG: return "line or reply over the limit";
	case PX_TLS: return "TLS error";
	case PX_MALFORMED: return "malformed reply line";
	default: return "error";
	}
}

/* Read one (possibly multi-line) reply; *code gets its code. */
static int read_reply(struct reader *r, unsigned print_max, int *code)
{
	static char line[PROBE_LINE_MAX + 1];
	size_t len, total = 0, nlines = 0;
	for (;;) {
		int rc = rd_line(r, line, &len);
		if (rc != PX_OK) {
			if (nlines > print_max)
				printf("*** ... %zu lines, %zu bytes so far\n", nlines, total);
			printf("!!! %s\n", px_name(rc));
			return rc;
		}
		nlines++;
		total += len + 2;
		if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) || (len > 3 && line[3] != ' ' && line[3] != '-')) {
			print_line("<<< ", line, len);
			printf("!!! %s\n", px_name(PX_MALFORMED));
			return PX_MALFORMED;
		}
		int last = len == 3 || line[3] == ' ';
		if (nlines <= print_max || last) {
			if (last && nlines > print_max + 1)
				printf("<<< ... (%zu lines not shown)\n", nlines - print_max - 1);
			print_line("<<< ", line, len);
		}
		if (total > PROBE_REPLY_MAX) {
			printf("!!! %s (%zu lines, %zu bytes)\n", px_name(PX_TOO_LONG), nlines, total);
			return PX_TOO_LONG;
		}
		if (last) {
			*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
			if (nlines > 1)
				printf("*** reply %d: %zu lines, %zu bytes\n", *code, nlines, total);
			return PX_OK;
		}
	}
}

static int send_all(struct reader *r, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n;
		if (r->ssl) {
			int k = SSL_write(r->ssl, data, (int)len);
			if (k <= 0)
				return PX_TLS;
			n = k;
		} else {
			n = send(r->fd, data, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return (errno == EAGAIN || errno == EWOULDBLOCK) ? PX_TIMEOUT : PX_CLOSED;
		}
		data += n;
		len -= (size_t)n;
	}
	return PX_OK;
}

static int send_cmd(struct reader *r, const char *cmd)
{
	char buf[2048];
	int n = snprintf(buf, sizeof buf, "%s\r\n", cmd);
	if (n < 0 || (size_t)n >= sizeof buf)
		return PX_USAGE;
	print_line(">>> ", cmd, strlen(cmd));
	int rc = send_all(r, buf, (size_t)n);
	if (rc != PX_OK)
		printf("!!! send: %s\n", px_name(rc));
	return rc;
}

static int connect_timeout(const struct sockaddr_storage *dst, socklen_t dl, const char *source, unsigned timeout_ms,
			   char *err, size_t errlen)
{
	int fd = socket(dst->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (source) {
		struct sockaddr_storage src;
		socklen_t sl;
		if (tsd_parse_ip(source, &src, &sl, err, errlen) != EMV_OK || src.ss_family != dst->ss_family) {
			if (src.ss_family != dst->ss_family)
				snprintf(err, errlen, "--source %s: wrong address family", source);
			close(fd);
			return -1;
		}
		if (bind(fd, (struct sockaddr *)&src, sl) < 0) {
			snprintf(err, errlen, "bind %s: %s", source, strerror(errno));
			close(fd);
			return -1;
		}
	}
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(fd, (const struct sockaddr *)dst, dl) < 0) {
		if (errno != EINPROGRESS) {
			snprintf(err, errlen, "connect: %s", strerror(errno));
			close(fd);
			return -1;
		}
		struct pollfd p = { fd, POLLOUT, 0 };
		int n = poll(&p, 1, (int)timeout_ms);
		int soerr = 0;
		socklen_t el = sizeof soerr;
		if (n == 0) {
			snprintf(err, errlen, "connect: timeout after %u ms", timeout_ms);
			close(fd);
			return -1;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el);
		if (n < 0 || soerr) {
			snprintf(err, errlen, "connect: %s", strerror(n < 0 ? errno : soerr));
			close(fd);
			return -1;
		}
	}
	fcntl(fd, F_SETFL, fl);
	struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000) };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

static int start_tls(struct reader *r, SSL_CTX **ctxp)
{
	if (!*ctxp) {
		*ctxp = SSL_CTX_new(TLS_client_method());
		if (!*ctxp)
			return PX_TLS;
		SSL_CTX_set_verify(*ctxp, SSL_VERIFY_NONE, NULL);
	}
	r->off = r->len = 0; /* nothing read before the handshake may survive it */
	r->ssl = SSL_new(*ctxp);
	if (!r->ssl || SSL_set_fd(r->ssl, r->fd) != 1)
		return PX_TLS;
	if (SSL_connect(r->ssl) != 1) {
		char err[256] = "handshake failed";
		unsigned long e = ERR_get_error();
		if (e)
			ERR_error_string_n(e, err, sizeof err);
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			emv_strlcpy(err, "timeout during handshake", sizeof err);
		else
			emv_strlcpy(err, "connection closed during handshake", sizeof err);
		printf("!!! TLS handshake failed: %s\n", err);
		return PX_TLS;
	}
	printf("*** TLS %s %s\n", SSL_get_version(r->ssl), SSL_get_cipher_name(r->ssl));
	return PX_OK;
}

int tsd_probe_main(int argc, char **argv)
{
	const char *target = NULL, *source = NULL;
	unsigned timeout_ms = 5000, print_max = 12;
	int i = 1;
	if (argc < 3) {
		fprintf(stderr, "usage: %s --probe IP:PORT [--source IP] [--timeout MS] [--print N] [CMD...]\n",
			argv[0]);
		return PX_USAGE;
	}
	target = argv[2];
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--source") == 0 && i + 1 < argc) {
			source = argv[++i];
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			timeout_ms = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "--print") == 0 && i + 1 < argc) {
			print_max = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else {
			break;
		}
	}
	if (timeout_ms == 0)
		timeout_ms = 5000;

	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sockaddr_storage dst;
	socklen_t dl;
	char err[256];
	if (tsd_parse_hostport(target, &dst, &dl, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "--probe: %s\n", err);
		return PX_USAGE;
	}
	uint64_t t0 = emv_now_ms();
	int fd = connect_timeout(&dst, dl, source, timeout_ms, err, sizeof err);
	if (fd < 0) {
		printf("!!! %s: %s\n", target, err);
		return PX_CONNECT;
	}
	printf("*** connected to %s%s%s\n", target, source ? " from " : "", source ? source : "");

	struct reader *r = emv_xcalloc(1, sizeof *r);
	r->fd = fd;
	SSL_CTX *ctx = NULL;
	int code = 0, rc = read_reply(r, print_max, &code);
	for (; rc == PX_OK && i < argc; i++) {
		const char *cmd = argv[i];
		if (strncmp(cmd, "!sleep ", 7) == 0) {
			unsigned long ms = strtoul(cmd + 7, NULL, 10);
			printf("*** sleep %lu ms\n", ms);
			struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		} else if (strncmp(cmd, "!pipe ", 6) == 0) {
			char buf[8192];
			size_t n = 0, count = 0;
			char *copy = emv_xstrdup(cmd + 6);
			for (char *save = NULL, *tok = strtok_r(copy, "|", &save); tok;
			     tok = strtok_r(NULL, "|", &save)) {
				int k = snprintf(buf + n, sizeof buf - n, "%s\r\n", tok);
				if (k < 0 || (size_t)k >= sizeof buf - n) {
					free(copy);
					rc = PX_USAGE;
					goto done;
				}
				print_line(">>> ", tok, strlen(tok));
				n += (size_t)k;
				count++;
			}
			free(copy);
			printf("*** pipelined %zu commands in one write\n", count);
			rc = send_all(r, buf, n);
			for (size_t k = 0; rc == PX_OK && k < count; k++)
				rc = read_reply(r, print_max, &code);
		} else {
			rc = send_cmd(r, cmd);
			if (rc == PX_OK)
				rc = read_reply(r, print_max, &code);
			if (rc == PX_OK && strcasecmp(cmd, "STARTTLS") == 0 && code / 100 == 2)
				rc = start_tls(r, &ctx);
		}
	}
done:
	printf("*** exit %d after %llu ms\n", rc, (unsigned long long)(emv_now_ms() - t0));
	if (r->ssl)
		SSL_free(r->ssl);
	if (ctx)
		SSL_CTX_free(ctx);
	close(fd);
	free(r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* --dns-query */

static int qtype_parse(const char *s)
{
	static const struct {
		const char *name;
		int type;
	} t[] = {
		{ "A", ns_t_a },     { "NS", ns_t_ns },	  { "CNAME", ns_t_cname }, { "SOA", ns_t_soa },
		{ "PTR", ns_t_ptr }, { "MX", ns_t_mx },	  { "TXT", ns_t_txt },	   { "AAAA", ns_t_aaaa },
		{ "SRV", ns_t_srv }, { "ANY", ns_t_any },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (strcasecmp(s, t[i].name) == 0)
			return t[i].type;
	}
	char *end;
	long v = strtol(s, &end, 10);
	return (*s && !*end && v > 0 && v < 65536) ? (int)v : -1;
}

static const char *rcode_name(int rc)
{
	static const char *const names[] = { "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED" };
	return rc >= 0 && rc < 6 ? names[rc] : "OTHER";
}

/* Build a standard query; returns its length or -1. */
static int build_query(uint8_t *q, size_t cap, uint16_t id, const char *name, int type)
{
	size_t n = 12;
	memset(q, 0, 12);
	q[0] = (uint8_t)(id >> 8);
	q[1] = (uint8_t)id;
	q[2] = 0x01; /* RD */
	q[5] = 1;    /* QDCOUNT */
	const char *p = name;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		if (l == 0 || l > 63 || n + l + 1 >= cap)
			return -1;
		q[n++] = (uint8_t)l;
		memcpy(q + n, p, l);
		n += l;
		p += l;
		if (*p == '.')
			p++;
	}
	if (n + 5 > cap)
		return -1;
	q[n++] = 0;
	q[n++] = (uint8_t)(type >> 8);
	q[n++] = (uint8_t)type;
	q[n++] = 0;
	q[n++] = 1; /* IN */
	return (int)n;
}

static int wait_readable(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int n;
	do {
		n = poll(&p, 1, ms);
	} while (n < 0 && errno == EINTR);
	return n;
}

/* One answer record as "name. TTL IN TYPE DATA"; -1 if malformed. */
static int rr_format(const ns_msg *msg, const ns_rr *rr, char *out, size_t outlen)
{
	const uint8_t *base = ns_msg_base(*msg), *end = ns_msg_end(*msg);
	const uint8_t *d = ns_rr_rdata(*rr);
	size_t dlen = ns_rr_rdlen(*rr);
	char name[NS_MAXDNAME], data[2048];
	int type = ns_rr_type(*rr);
	const char *tname = NULL;
	data[0] = '\0';
	switch (type) {
	case ns_t_a:
		tname = "A";
		if (dlen != 4 || !inet_ntop(AF_INET, d, data, sizeof data))
			return -1;
		break;
	case ns_t_aaaa:
		tname = "AAAA";
		if (dlen != 16 || !inet_ntop(AF_INET6, d, data, sizeof data))
			return -1;
		break;
	case ns_t_mx:
		tname = "MX";
		if (dlen < 3 || dn_expand(base, end, d + 2, name, sizeof name) < 0)
			return -1;
		snprintf(data, sizeof data, "%u %s.", (unsigned)(d[0] << 8 | d[1]), name);
		break;
	case ns_t_ptr:
	case ns_t_cname:
	case ns_t_ns:
		tname = type == ns_t_ptr ? "PTR" : type == ns_t_cname ? "CNAME" : "NS";
		if (dn_expand(base, end, d, name, sizeof name) < 0)
			return -1;
		snprintf(data, sizeof data, "%s.", name);
		break;
	case ns_t_txt: {
		tname = "TXT";
		size_t o = 0;
		for (size_t i = 0; i < dlen;) {
			size_t l = d[i++];
			if (i + l > dlen || o + l + 4 >= sizeof data)
				return -1;
			if (o)
				data[o++] = ' ';
			data[o++] = '"';
			for (size_t j = 0; j < l; j++)
				data[o++] = (d[i + j] >= 0x20 && d[i + j] < 0x7f && d[i + j] != '"') ? (char)d[i + j]
												     : '?';
			data[o++] = '"';
			i += l;
		}
		data[o] = '\0';
		break;
	}
	default: {
		static char tbuf[16];
		snprintf(tbuf, sizeof tbuf, "TYPE%d", type);
		tname = type == ns_t_soa ? "SOA" : tbuf;
		snprintf(data, sizeof data, "(%zu bytes)", dlen);
		break;
	}
	}
	snprintf(out, outlen, "%s. %u IN %s %s", ns_rr_name(*rr)[0] ? ns_rr_name(*rr) : "", (unsigned)ns_rr_ttl(*rr),
		 tname, data);
	return 0;
}

int tsd_dnsq_main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s --dns-query IP:PORT NAME TYPE [--timeout MS] [--tcp]\n", argv[0]);
		return PX_USAGE;
	}
	unsigned timeout_ms = 3000;
	int tcp = 0;
	for (int i = 5; i < argc; i++) {
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			timeout_ms = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--tcp") == 0)
			tcp = 1;
		else {
			fprintf(stderr, "--dns-query: unknown option %s\n", argv[i]);
			return PX_USAGE;
		}
	}
	struct sockaddr_storage dst;
	socklen_t dl;
	char err[256];
	if (tsd_parse_hostport(argv[2], &dst, &dl, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "--dns-query: %s\n", err);
		return PX_USAGE;
	}
	int type = qtype_parse(argv[4]);
	if (type < 0) {
		fprintf(stderr, "--dns-query: unknown type %s\n", argv[4]);
		return PX_USAGE;
	}
	uint8_t q[2 + 512]; /* 2-byte length prefix for TCP + the query */
	uint16_t id = (uint16_t)(emv_now_us() ^ (uint64_t)getpid());
	int qlen = build_query(q + 2, sizeof q - 2, id, argv[3], type);
	if (qlen < 0) {
		fprintf(stderr, "--dns-query: bad name %s\n", argv[3]);
		return PX_USAGE;
	}
	static uint8_t ans[65536];
	int alen = -1;
	uint64_t t0 = emv_now_ms();
	int fd = socket(dst.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&dst, dl) < 0) {
		printf("error connect %s: %s\n", argv[2], strerror(errno));
		if (fd >= 0)
			close(fd);
		return PX_CONNECT;
	}
	if (tcp) {
		q[0] = (uint8_t)(qlen >> 8);
		q[1] = (uint8_t)qlen;
		struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000) };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		if (send(fd, q, (size_t)qlen + 2, MSG_NOSIGNAL) == qlen + 2) {
			uint8_t lb[2];
			if (recv(fd, lb, 2, MSG_WAITALL) == 2) {
				size_t want = (size_t)lb[0] << 8 | lb[1];
				if (recv(fd, ans, want, MSG_WAITALL) == (ssize_t)want)
					alen = (int)want;
			}
		}
	} else if (send(fd, q + 2, (size_t)qlen, 0) == qlen) {
		/* ignore anything that is not the answer to our query */
		for (;;) {
			int left = (int)timeout_ms - (int)(emv_now_ms() - t0);
			if (left <= 0 || wait_readable(fd, left) <= 0)
				break;
			ssize_t n = recv(fd, ans, sizeof ans, 0);
			if (n < 0) {
				printf("error recv: %s\n", strerror(errno));
				close(fd);
				return PX_CONNECT;
			}
			if (n >= 12 && ans[0] == (uint8_t)(id >> 8) && ans[1] == (uint8_t)id) {
				alen = (int)n;
				break;
			}
		}
	}
	close(fd);
	uint64_t took = emv_now_ms() - t0;
	if (alen < 0) {
		printf("timeout after %llu ms\n", (unsigned long long)took);
		return PX_TIMEOUT;
	}
	ns_msg msg;
	if (ns_initparse(ans, alen, &msg) < 0) {
		printf("error malformed answer (%d bytes)\n", alen);
		return PX_CONNECT;
	}
	int rcode = ns_msg_getflag(msg, ns_f_rcode);
	int an = ns_msg_count(msg, ns_s_an);
	printf("rcode %s answers %d authority %d time_ms %llu\n", rcode_name(rcode), an, ns_msg_count(msg, ns_s_ns),
	       (unsigned long long)took);
	for (int k = 0; k < an; k++) {
		ns_rr rr;
		char text[4096];
		if (ns_parserr(&msg, ns_s_an, k, &rr) < 0 || rr_format(&msg, &rr, text, sizeof text) < 0)
			printf("error unprintable record %d\n", k);
		else
			printf("%s\n", text);
	}
	return PX_OK;
}
