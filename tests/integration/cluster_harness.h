/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cluster_harness.h - what the cluster tests share: reading the env files
 * the fixtures write (pg.env, kafka.env) and running a binary with its
 * standard output captured.
 */
#ifndef EMV_CLUSTER_HARNESS_H
#define EMV_CLUSTER_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "files_harness.h"

/* The engine options that point a worker or `emailverify run` at the test
 * world (DNS, SMTP port, private MX allowed, probe identity, the test
 * provider policies, 5 s timeouts): the tail of an argv initializer. */
#define WORLD_OPTS                                                                                                    \
	"--dns", "127.0.0.1:5300", "--smtp-port", "2525", "--allow-private-mx", "--mail-from", "probe@verifier.test", \
		"--helo", "probe.verifier.test", "--providers", EMV_TEST_DATA "/providers-test.conf", "--timeout",    \
		"5", "--preflight-domains", "accept.test,catchall.test"

/* KEY=value from a shell env file (quotes removed). */
static inline void env_value(const char *file, const char *key, char *out, size_t outlen)
{
	FILE *f = fopen(file, "r");
	char line[1024];
	size_t kl = strlen(key);
	assert_non_null(f);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
			char *v = line + kl + 1;
			v[strcspn(v, "\r\n")] = '\0';
			if (*v == '\'' || *v == '"') {
				v++;
				v[strlen(v) - 1] = '\0';
			}
			snprintf(out, outlen, "%s", v);
		}
	fclose(f);
	assert_true(out[0] != '\0');
}

/* Run argv (NULL-terminated); stdout (and stderr when with_stderr) into
 * out; returns the exit code. */
static inline int run_capture(char *out, size_t outlen, const char *const *argv, int with_stderr)
{
	int pfd[2], status;
	pid_t pid;
	size_t n = 0;
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		if (with_stderr)
			dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	for (ssize_t k; n + 1 < outlen && (k = read(pfd[0], out + n, outlen - 1 - n)) > 0;)
		n += (size_t)k;
	out[n] = '\0';
	close(pfd[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Start argv (NULL-terminated) in the background, its stdout and stderr
 * into the file log. */
static inline pid_t spawn_logged(const char *const *argv, const char *log)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static inline int run_argv(char *out, size_t outlen, const char *const *argv)
{
	return run_capture(out, outlen, argv, 0);
}

/* A test run's own topic and consumer group names, "<prefix><pid>.batches"
 * and so on: the Kafka fixture keeps its data from one run of the suite to
 * the next, and tests run beside each other. */
struct run_names {
	char batches[64], retry[64], results[64], domstate[64], ipstate[64], reroute[64];
	char workers[64], router[64], sink[64]; /* consumer groups */
};

static inline void run_names_init(struct run_names *n, const char *prefix)
{
	int id = (int)getpid();
	snprintf(n->batches, sizeof n->batches, "%s%d.batches", prefix, id);
	snprintf(n->retry, sizeof n->retry, "%s%d.retry", prefix, id);
	snprintf(n->results, sizeof n->results, "%s%d.results", prefix, id);
	snprintf(n->domstate, sizeof n->domstate, "%s%d.domain-state", prefix, id);
	snprintf(n->ipstate, sizeof n->ipstate, "%s%d.ip-state", prefix, id);
	snprintf(n->reroute, sizeof n->reroute, "%s%d.reroute", prefix, id);
	snprintf(n->workers, sizeof n->workers, "%s%d-workers", prefix, id);
	snprintf(n->router, sizeof n->router, "%s%d-router", prefix, id);
	snprintf(n->sink, sizeof n->sink, "%s%d-sink", prefix, id);
}

#endif
