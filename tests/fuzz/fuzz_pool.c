/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_pool.c - libFuzzer target for the worker's pool configuration
 * parser (region, probe sender, source addresses, DNSBL zones): any bytes
 * give a pool whose invariants hold, or an error naming a line; never a
 * crash, a leak or an unterminated string.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "emv_pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	emv_pool *p;

	err[0] = '\0';
	p = emv_pool_parse((const char *)data, size, "fuzz.conf", err, sizeof err);
	if (!p) {
		if (!err[0] || strlen(err) >= sizeof err)
			abort(); /* a refusal always says why */
		return 0;
	}
	for (int i = 0; i < p->nsources; i++) {
		if (emv_pool_find(p, p->sources[i].ip) < 0)
			abort(); /* every source can be found by its own address */
		if (!p->sources[i].helo[0])
			abort();
	}
	emv_pool_free(p);
	return 0;
}
