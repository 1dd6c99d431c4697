/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_aimd.h - adaptive sessions per MX host, as TCP does it (AIMD).
 *
 * A host starts at one session at once.  A job whose sessions went well
 * (a server answered, no pressure) widens the window by 1/window, so it
 * grows by about one session per window's worth of good jobs; any sign of
 * pressure halves it.  Pressure is what the server says (a 421, a rate
 * limit, a timeout, a tarpit) and what it shows: its reply latency rising
 * sharply over the lowest seen at this host (the base, as in LEDBAT), which
 * is a server getting busy before it says so.  The provider's cap stays
 * the ceiling: politeness budgets do not move, speed comes from not pushing
 * a server that pushes back.
 */
#ifndef EMV_AIMD_H
#define EMV_AIMD_H

typedef struct {
	double window;	  /* sessions at once we allow ourselves now, 1..limit */
	int limit;	  /* the provider's cap (at least 1) */
	unsigned base_ms; /* the lowest reply latency seen here (0: none yet) */
} emv_aimd;

/* Latency counts as risen sharply above EMV_DEF_AIMD_RISE x base and
 * EMV_DEF_AIMD_RISE_MIN_MS over it (lib/emv_defaults.h; a fast server's
 * jitter is no signal). */

void emv_aimd_init(emv_aimd *a, int limit);

/* One finished job: pressure (the server pushed back), answered (a server
 * answered at all: a job that never connected teaches nothing), latency_ms
 * (its sessions' slowest plain reply, 0 when unknown).  Returns 1 when the
 * latency alone was the pressure. */
int emv_aimd_update(emv_aimd *a, int pressure, int answered, unsigned latency_ms);

/* Sessions the host may have at once now. */
int emv_aimd_sessions(const emv_aimd *a);

#endif
