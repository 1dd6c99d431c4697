/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_doctor.c - `emailverify doctor` and the start-up preflight against
 * real DNS: unbound on 127.0.0.1:5400 (the audit zone, argv[2]) and mail
 * "servers" this test listens as on 127.0.0.65 (mx.audit.test).
 *
 * Each broken environment must give its own FAIL/WARN line and exit code:
 * a resolver that says NXDOMAIN for every well-known domain, a resolver
 * that never answers, port 25 dropped (SYNs to a full accept queue), a HELO
 * name that is not fully qualified, a PTR naming another host, an SPF fail,
 * a DNSBL listing.  And `verify` must refuse to start on the broken
 * resolvers without writing anything.
 *
 * argv[1]: the emailverify binary; argv[2]: the audit DNS server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *bin;
static const char *dns;

struct result {
	int code;
	long ms;
	char out[32768];
};

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Run bin with argv (NULL-terminated), stdout and stderr into r->out. */
static void run(struct result *r, const char *const *argv)
{
	int pfd[2];
	size_t n = 0;
	ssize_t k;
	int st;
	long t0 = now_ms();
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	while ((k = read(pfd[0], r->out + n, sizeof r->out - 1 - n)) > 0)
		n += (size_t)k;
	r->out[n] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	r->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->ms = now_ms() - t0;
	printf("--- exit %d after %ld ms:\n%s", r->code, r->ms, r->out);
}

static void expect_line(const struct result *r, const char *level, const char *check, const char *text)
{
	char head[64];
	const char *p = r->out;
	snprintf(head, sizeof head, "%s  %-7s ", level, check);
	while ((p = strstr(p, head))) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[4096];
		if (len >= sizeof line)
			len = sizeof line - 1;
		memcpy(line, p, len);
		line[len] = '\0';
		if (!text || strstr(line, text))
			return;
		p += len;
	}
	fail_msg("no line '%s...%s' in:\n%s", head, text ? text : "", r->out);
}

static void expect_no_level(const struct result *r, const char *level)
{
	char head[16];
	snprintf(head, sizeof head, "\n%s  ", level);
	if (strstr(r->out, head))
		fail_msg("unexpected %s line in:\n%s", level, r->out);
}

/* A listener on 127.0.0.65:port. full: listen(0) and one connection
 * queued, so further SYNs are dropped (port 25 "blocked": connects time
 * out).  *extra gets the queued client's fd. */
static int listener(int port, int full, int *extra)
{
	struct sockaddr_in a;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.65", &a.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, full ? 0 : 16), 0);
	*extra = -1;
	if (full) {
		*extra = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(connect(*extra, (struct sockaddr *)&a, sizeof a), 0);
	}
	return fd;
}

#define PORT_OK 2625
#define PORT_DROP 2626

static void test_healthy(void **state)
{
	struct result r;
	int extra, l = listener(PORT_OK, 0, &extra);
	const char *argv[] = { bin,
			       "doctor",
			       "--dns",
			       dns,
			       "--preflight-domains",
			       "audit.test",
			       "--smtp-port",
			       "2625",
			       "--allow-private-mx",
			       "--source-ip",
			       "127.0.0.61",
			       "--helo",
			       "mail-a.audit.test",
			       "--mail-from",
			       "probe@audit.test",
			       "--dnsbl",
			       "bl.audit.test",
			       NULL };
	(void)state;
	run(&r, argv);
	close(l);
	assert_int_equal(r.code, 0);
	expect_line(&r, "PASS", "dns", "audit.test -> mx.audit.test");
	expect_line(&r, "PASS", "port25", "mx.audit.test [127.0.0.65] from 127.0.0.61: connected");
	expect_line(&r, "PASS", "helo", "mail-a.audit.test");
	expect_line(&r, "PASS", "fcrdns", "PTR 127.0.0.61 -> mail-a.audit.test -> 127.0.0.61");
	expect_line(&r, "PASS", "spf", "SPF of audit.test passes 127.0.0.61");
	expect_line(&r, "PASS", "dnsbl", "127.0.0.61 is not listed in bl.audit.test");
	expect_no_level(&r, "WARN");
	expect_no_level(&r, "FAIL");
}

/* The audit zone's resolver knows no name outside audit.test: for the
 * default well-known domains it is a resolver that says NXDOMAIN to all. */
static void test_nxdomain_resolver(void **state)
{
	struct result r;
	const char *argv[] = { bin,
			       "doctor",
			       "--dns",
			       dns,
			       "--no-port25",
			       "--helo",
			       "mail-a.audit.test",
			       "--source-ip",
			       "127.0.0.61",
			       "--mail-from",
			       "probe@audit.test",
			       "--dnsbl",
			       "none",
			       NULL };
	(void)state;
	run(&r, argv);
	assert_int_equal(r.code, 2);
	expect_line(&r, "FAIL", "dns", "finds no mail server for gmail.com, outlook.com, yahoo.com");
	expect_line(&r, "FAIL", "dns", "it answers NXDOMAIN for all of them");
}

static void write_list(const char *path)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("email\nalice@gmail.com\nbob@outlook.com\n", f);
	fclose(f);
}

/* verify stops before the list, writes no output, says why */
static void expect_verify_refuses(const char *dns_server, const char *why, int then_skip)
{
	char dir[] = "/tmp/emv-doctor-XXXXXX", list[128], out[128];
	struct stat sb;
	struct result r;
	assert_non_null(mkdtemp(dir));
	snprintf(list, sizeof list, "%s/list.csv", dir);
	snprintf(out, sizeof out, "%s/out.csv", dir);
	write_list(list);
	{
		const char *argv[] = { bin, "verify", "--dns", dns_server, "--progress", "none", "-o", out, list, NULL };
		run(&r, argv);
	}
	assert_int_equal(r.code, 1);
	if (!strstr(r.out, "preflight: FAIL dns") || !strstr(r.out, why) ||
	    !strstr(r.out, "stopped before verifying anything"))
		fail_msg("verify did not explain its refusal (%s):\n%s", why, r.out);
	if (stat(out, &sb) == 0)
		fail_msg("verify wrote %s although it refused to start", out);
	/* and --skip-preflight goes on (the user knows better) */
	if (then_skip) {
		const char *argv[] = { bin,
				       "verify",
				       "--dns",
				       dns_server,
				       "--progress",
				       "none",
				       "--skip-preflight",
				       "--max-attempts",
				       "1",
				       "--timeout",
				       "1",
				       "-o",
				       out,
				       list,
				       NULL };
		run(&r, argv);
		assert_int_equal(r.code, 0);
		assert_int_equal(stat(out, &sb), 0);
		unlink(out);
	}
	unlink(list);
	rmdir(dir);
}

static void test_verify_refuses_nxdomain_resolver(void **state)
{
	(void)state;
	expect_verify_refuses(dns, "NXDOMAIN for all of them", 1);
}

/* a UDP socket that reads nothing: every query times out */
static int blackhole(char *addr, size_t len)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(addr, len, "127.0.0.1:%d", ntohs(a.sin_port));
	return fd;
}

static void test_silent_resolver(void **state)
{
	char addr[64];
	struct result r;
	int fd = blackhole(addr, sizeof addr);
	const char *argv[] = { bin, "doctor", "--dns", addr, "--helo", "mail-a.audit.test", "--dnsbl", "none", NULL };
	(void)state;
	run(&r, argv);
	assert_int_equal(r.code, 2);
	expect_line(&r, "FAIL", "dns", "gave no usable answer for gmail.com, outlook.com, yahoo.com");
	/* bounded: 2 tries of 2 s per query, in parallel */
	assert_true(r.ms < 20000);
	expect_verify_refuses(addr, "gave no usable answer", 0);
	close(fd);
}

static void test_port25_dropped(void **state)
{
	struct result r;
	int extra, l = listener(PORT_DROP, 1, &extra);
	const char *argv[] = { bin,
			       "doctor",
			       "--dns",
			       dns,
			       "--preflight-domains",
			       "audit.test",
			       "--smtp-port",
			       "2626",
			       "--allow-private-mx",
			       "--timeout",
			       "1",
			       "--source-ip",
			       "127.0.0.61",
			       "--helo",
			       "mail-a.audit.test",
			       "--mail-from",
			       "probe@audit.test",
			       "--dnsbl",
			       "none",
			       NULL };
	(void)state;
	run(&r, argv);
	close(extra);
	close(l);
	assert_int_equal(r.code, 2);
	expect_line(&r, "FAIL", "port25", "no TCP connection to port 2626 of any of 1 mail servers");
	expect_line(&r, "FAIL", "port25", "timed out after 1000 ms");
	assert_non_null(strstr(r.out, "outbound port 25 is blocked"));
}

static void identity(struct result *r, const char *ip, const char *helo)
{
	const char *argv[] = { bin,
			       "doctor",
			       "--dns",
			       dns,
			       "--preflight-domains",
			       "audit.test",
			       "--no-port25",
			       "--allow-private-mx",
			       "--source-ip",
			       ip,
			       "--helo",
			       helo,
			       "--mail-from",
			       "probe@audit.test",
			       "--dnsbl",
			       "bl.audit.test",
			       NULL };
	run(r, argv);
}

static void test_helo_not_fqdn(void **state)
{
	struct result r;
	(void)state;
	identity(&r, "127.0.0.61", "vm");
	assert_int_equal(r.code, 2);
	expect_line(&r, "FAIL", "helo", "HELO name 'vm' is not a fully qualified domain name");
}

static void test_ptr_mismatch(void **state)
{
	struct result r;
	(void)state;
	identity(&r, "127.0.0.62", "mail-a.audit.test");
	assert_int_equal(r.code, 1);
	expect_line(&r, "WARN", "fcrdns", "PTR 127.0.0.62 -> mail-b.audit.test, but HELO is mail-a.audit.test");
	expect_line(&r, "PASS", "spf", NULL);
	expect_no_level(&r, "FAIL");
}

static void test_spf_fail(void **state)
{
	struct result r;
	(void)state;
	identity(&r, "127.0.0.64", "mail-d.audit.test");
	assert_int_equal(r.code, 1);
	expect_line(&r, "WARN", "spf", "SPF of audit.test for 127.0.0.64: fail");
	expect_line(&r, "PASS", "fcrdns", NULL);
	expect_no_level(&r, "FAIL");
}

static void test_listed(void **state)
{
	struct result r;
	(void)state;
	identity(&r, "127.0.0.63", "mail-c.audit.test");
	assert_int_equal(r.code, 2);
	expect_line(&r, "FAIL", "dnsbl", "127.0.0.63 is listed in bl.audit.test");
	expect_line(&r, "FAIL", "dnsbl", "Listed for testing");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_healthy),
		cmocka_unit_test(test_nxdomain_resolver),
		cmocka_unit_test(test_verify_refuses_nxdomain_resolver),
		cmocka_unit_test(test_silent_resolver),
		cmocka_unit_test(test_port25_dropped),
		cmocka_unit_test(test_helo_not_fqdn),
		cmocka_unit_test(test_ptr_mismatch),
		cmocka_unit_test(test_spf_fail),
		cmocka_unit_test(test_listed),
	};
	if (argc < 3) {
		fprintf(stderr, "usage: test_doctor EMAILVERIFY DNS\n");
		return 2;
	}
	bin = argv[1];
	dns = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
