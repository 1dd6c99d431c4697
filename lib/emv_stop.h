/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_stop.h - how the long-running programs stop on SIGINT/SIGTERM
 * (`emailverify run`, `emailverify-worker`, `emailverify-coordinator serve`).
 *
 * The first signal sets emv_stop_signal (the program stops taking work and
 * finishes what it can within its shutdown timeout) and arms a watchdog:
 * if the program is still there `timeout_ms` + EMV_STOP_GRACE_MS later,
 * something blocked, and the process exits at once with
 * EMV_STOP_EXIT_INTERRUPTED.  A second signal exits at once with the same
 * code.  Both exits use _exit(): nothing is committed by them, so whatever
 * was not committed is done again by the next owner (at-least-once).
 *
 * Async-signal-safe: the handlers only set a flag, call alarm(), write(2)
 * and _exit().
 */
#ifndef EMV_STOP_H
#define EMV_STOP_H

#include <signal.h>

#define EMV_STOP_TIMEOUT_MS 10000     /* default --shutdown-timeout (10 s) */
#define EMV_STOP_GRACE_MS 2000	      /* the watchdog's margin past it */
#define EMV_STOP_EXIT_INTERRUPTED 130 /* interrupted: a run's work left undone, or a forced exit */

/* The first signal's number, 0 until then. */
extern volatile sig_atomic_t emv_stop_signal;

/* Install the handlers for SIGINT and SIGTERM; `prog` prefixes the
 * messages of the forced exits (kept, not copied). */
void emv_stop_install(const char *prog, int timeout_ms);

/* For programs whose event loop takes the signal itself (libevent's
 * evsignal): the same as the handler does (flag, watchdog; a second call
 * exits at once). */
void emv_stop_note(int sig);

/* Parse a --shutdown-timeout value in seconds (decimals allowed, 0.1..3600)
 * into ms; -1 if it is not one. */
int emv_stop_parse_timeout(const char *s);

#endif
