/* SPDX-License-Identifier: Apache-2.0 */
/* emv_stop.c - SIGINT/SIGTERM: stop within a bound (see emv_stop.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "emv_stop.h"

volatile sig_atomic_t emv_stop_signal;

static const char *stop_prog = "emailverify";
static int stop_timeout_ms = EMV_STOP_TIMEOUT_MS;

static void say(const char *what)
{
	/* write(2) only: this runs in a signal handler */
	ssize_t r = write(2, stop_prog, strlen(stop_prog));
	r = write(2, what, strlen(what));
	(void)r;
}

static void on_alarm(int sig)
{
	(void)sig;
	say(": shutdown timeout passed; exiting now (nothing more is committed)\n");
	_exit(EMV_STOP_EXIT_INTERRUPTED);
}

void emv_stop_note(int sig)
{
	unsigned secs;

	if (emv_stop_signal) {
		say(": second signal; exiting now (nothing more is committed)\n");
		_exit(EMV_STOP_EXIT_INTERRUPTED);
	}
	emv_stop_signal = sig;
	/* whole seconds, rounded up: alarm() is the async-signal-safe timer */
	secs = (unsigned)((stop_timeout_ms + EMV_STOP_GRACE_MS + 999) / 1000);
	alarm(secs);
}

static void on_signal(int sig)
{
	emv_stop_note(sig);
}

void emv_stop_install(const char *prog, int timeout_ms)
{
	struct sigaction sa;

	stop_prog = prog;
	stop_timeout_ms = timeout_ms;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int emv_stop_parse_timeout(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= 0.1 && v <= 3600))
		return -1;
	return (int)(v * 1000.0 + 0.5);
}
