/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_routes.c - libFuzzer target for the routing rules parser
 * (coordinator/emv_routes.c): any bytes give a rule set or an error naming
 * the file, never a crash; a parsed set answers lookups with valid region
 * names only.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const probes[] = { "example.com", "a.b.example.com", "de", "gmail.com", "x" };
	char err[512] = "";
	emv_routes *r = emv_routes_parse((const char *)data, size, "fuzz", err, sizeof err);

	if (!r) {
		if (strncmp(err, "fuzz", 4) != 0)
			abort();
		return 0;
	}
	for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
		const char *rg = emv_routes_region(r, probes[i]);
		if (rg && !emv_routes_region_valid(rg))
			abort();
	}
	emv_routes_free(r);
	return 0;
}
