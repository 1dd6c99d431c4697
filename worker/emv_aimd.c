/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_aimd.c - adaptive sessions per MX host (see emv_aimd.h).
 */
#include "emv_aimd.h"
#include "emv_defaults.h"

void emv_aimd_init(emv_aimd *a, int limit)
{
	a->limit = limit > 0 ? limit : 1;
	a->window = 1.0; /* start low: a host earns more sessions by answering well */
	a->base_ms = 0;
}

int emv_aimd_update(emv_aimd *a, int pressure, int answered, unsigned latency_ms)
{
	int slow = 0;
	if (latency_ms > 0) {
		if (a->base_ms && latency_ms > EMV_DEF_AIMD_RISE * a->base_ms &&
		    latency_ms > a->base_ms + EMV_DEF_AIMD_RISE_MIN_MS)
			slow = !pressure;
		if (!a->base_ms || latency_ms < a->base_ms)
			a->base_ms = latency_ms;
	}
	if (pressure || slow) {
		a->window = a->window / 2 < 1.0 ? 1.0 : a->window / 2;
	} else if (answered) {
		a->window += 1.0 / a->window;
		if (a->window > a->limit)
			a->window = a->limit;
	}
	return slow;
}

int emv_aimd_sessions(const emv_aimd *a)
{
	int w = (int)a->window;
	return w < 1 ? 1 : w < a->limit ? w : a->limit;
}
