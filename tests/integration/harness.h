/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness.h - run the real emailverify binary as a child process and read
 * its JSON Lines output (check --json, verify --format jsonl), with exit
 * code, wall time and peak RSS.  Shared by the integration tests.
 * Needs EMV_BIN (path of the binary) from the build.
 */
#ifndef EMV_TEST_HARNESS_H
#define EMV_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>
#include "files_harness.h"
#include <jansson.h>

#define MAX_OUT (4 << 20)

struct run {
	json_t *results[256];
	int n;
	int exit_code;
	long maxrss_kb;
	double seconds;
	char *out;
	char *err; /* what it wrote to stderr */
};

/* When set, the child reads this file as its standard input. */
static const char *harness_stdin;

/* The engine options that point emailverify at the test world. */
static const char *const world_args[] = {
	"--dns",
	"127.0.0.1:5300",
	"--smtp-port",
	"2525",
	"--allow-private-mx",
	"--mail-from",
	"probe@verifier.test",
	"--helo",
	"probe.verifier.test",
	"--greylist-wait",
	"3",
	"--max-retry-time",
	"20",
	"--timeout",
	"5",
	"--providers",
	EMV_TEST_DATA "/providers-test.conf",
	"--preflight-domains",
	"accept.test,catchall.test",
};

/* Run emailverify check with the world's settings plus extra args (NULL-terminated). */
static inline void run_cli(struct run *r, const char *cmd, int world, va_list ap)
{
	const char *argv[96];
	int argc = 0, pfd[2], status;
	pid_t pid;
	size_t len = 0;
	struct rusage ru;
	struct timeval t0, t1;

	memset(r, 0, sizeof *r);
	argv[argc++] = EMV_BIN;
	argv[argc++] = cmd;
	if (strcmp(cmd, "check") == 0)
		argv[argc++] = "--json";
	if (world)
		for (size_t i = 0; i < sizeof world_args / sizeof world_args[0]; i++)
			argv[argc++] = world_args[i];
	for (const char *a; (a = va_arg(ap, const char *)) && argc < 94;)
		argv[argc++] = a;
	argv[argc] = NULL;

	char errpath[] = "/tmp/emv-test-stderr-XXXXXX";
	int errfd = mkstemp(errpath);
	assert_true(errfd >= 0);
	unlink(errpath);
	assert_int_equal(pipe(pfd), 0);
	gettimeofday(&t0, NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(errfd, 2);
		if (harness_stdin) {
			int in = open(harness_stdin, O_RDONLY);
			if (in < 0)
				_exit(126);
			dup2(in, 0);
		}
		close(pfd[0]);
		close(pfd[1]);
		execv(EMV_BIN, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	r->out = malloc(MAX_OUT + 1);
	for (;;) {
		ssize_t k = read(pfd[0], r->out + len, MAX_OUT - len);
		if (k <= 0)
			break;
		len += (size_t)k;
		assert_true(len < MAX_OUT);
	}
	r->out[len] = '\0';
	close(pfd[0]);
	assert_int_equal(wait4(pid, &status, 0, &ru), pid);
	gettimeofday(&t1, NULL);
	r->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_usec - t0.tv_usec) / 1e6;
	r->maxrss_kb = ru.ru_maxrss;
	r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	{
		off_t n = lseek(errfd, 0, SEEK_END);
		if (n > 1 << 20)
			n = 1 << 20;
		r->err = calloc(1, (size_t)n + 1);
		if (n > 0 && pread(errfd, r->err, (size_t)n, 0) < 0)
			r->err[0] = '\0';
		close(errfd);
	}
	for (char *line = r->out, *nl; *line && r->n < 256; line = nl + 1) {
		json_error_t je;
		nl = strchr(line, '\n');
		if (!nl)
			nl = line + strlen(line) - 1;
		else
			*nl = '\0';
		if (*line) {
			r->results[r->n] = json_loads(line, 0, &je);
			if (!r->results[r->n])
				fail_msg("output line is not JSON (%s): %s", je.text, line);
			r->n++;
		}
		if (!nl[1])
			break;
	}
}

static inline void run_free(struct run *r)
{
	for (int i = 0; i < r->n; i++)
		json_decref(r->results[i]);
	free(r->out);
	free(r->err);
}

static inline const char *sget(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static inline long smtp_code(json_t *o)
{
	json_t *s = json_object_get(o, "smtp");
	return s && json_is_object(s) ? (long)json_integer_value(json_object_get(s, "code")) : 0;
}

static inline int has_flag(json_t *o, const char *flag)
{
	size_t i;
	json_t *v;
	json_array_foreach (json_object_get(o, "flags"), i, v)
		if (strcmp(json_string_value(v), flag) == 0)
			return 1;
	return 0;
}

/* Does the transcript hold an entry of this phase whose reply or event
 * contains `needle` (NULL: any)? */
static inline int transcript_has(json_t *o, const char *phase, const char *needle)
{
	size_t i;
	json_t *e;
	json_array_foreach (json_object_get(o, "transcript"), i, e) {
		const char *p = sget(e, "phase"), *t = sget(e, "reply");
		if (!t)
			t = sget(e, "event");
		if (p && strcmp(p, phase) == 0 && (!needle || (t && strstr(t, needle))))
			return 1;
	}
	return 0;
}

#define assert_verdict(o, st, rs)                                                                      \
	do {                                                                                           \
		const char *st_ = sget((o), "status"), *rs_ = sget((o), "reason");                     \
		if (!st_ || !rs_ || strcmp(st_, (st)) || strcmp(rs_, (rs)))                            \
			fail_msg("%s: expected %s/%s, got %s/%s (%s)", sget((o), "email"), (st), (rs), \
				 st_ ? st_ : "?", rs_ ? rs_ : "?", json_dumps((o), JSON_COMPACT));     \
	} while (0)

/* The exit code, with what the program said when it is not the expected one. */
#define assert_exit(r, code)                                                                       \
	do {                                                                                       \
		if ((r)->exit_code != (code))                                                      \
			fail_msg("exit code %d, expected %d; stderr:\n%s", (r)->exit_code, (code), \
				 (r)->err ? (r)->err : "");                                        \
	} while (0)

static inline json_t *one(struct run *r)
{
	assert_exit(r, 0);
	assert_int_equal(r->n, 1);
	return r->results[0];
}


/* emailverify check / verify with the world's settings plus extra args (NULL-terminated). */
static inline void run_check(struct run *r, int world, ...)
{
	va_list ap;
	va_start(ap, world);
	run_cli(r, "check", world, ap);
	va_end(ap);
}

static inline void run_verify(struct run *r, int world, ...)
{
	va_list ap;
	va_start(ap, world);
	run_cli(r, "verify", world, ap);
	va_end(ap);
}

#endif
