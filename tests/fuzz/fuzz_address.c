/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_address.c - libFuzzer target for emv_address_parse().
 *
 * Any bytes must parse without a crash, and the result must keep the
 * promises of emv_address.h: on success the limits hold, the address is
 * local@domain, the domain is lower-case LDH ASCII, the flags match the
 * normal form and parsing the normal form again gives it back unchanged;
 * on failure the code is in range, the detail is non-empty printable ASCII
 * and no other output is left set.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_address.h"
#include "emv_result.h"
#include "emv_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "fuzz_address: invariant failed: %s\n", #cond); \
			abort();                                                        \
		}                                                                       \
	} while (0)

/* Does some label of the domain start with "xn--"? */
static int has_alabel(const char *domain)
{
	return strncmp(domain, "xn--", 4) == 0 || strstr(domain, ".xn--") != NULL;
}

static void check_ok(const emv_address *a)
{
	size_t ll = strlen(a->local), dl = strlen(a->domain);
	emv_address again;
	const char *p;

	CHECK(a->error == EMV_ADDR_OK && a->detail[0] == '\0');
	CHECK(ll >= 1 && ll <= EMV_LOCAL_MAX);
	CHECK(dl >= 3 && dl <= EMV_HOST_NAME_MAX);
	CHECK(strlen(a->address) == ll + 1 + dl && strlen(a->address) <= EMV_ADDRESS_MAX);
	CHECK(memcmp(a->address, a->local, ll) == 0 && a->address[ll] == '@');
	CHECK(strcmp(a->address + ll + 1, a->domain) == 0);
	for (p = a->domain; *p; p++)
		CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.');
	CHECK(a->domain[0] != '.' && a->domain[dl - 1] != '.' && strstr(a->domain, "..") == NULL);
	CHECK(strchr(a->domain, '.') != NULL);
	CHECK((a->flags & ~(EMV_FLAG_SMTPUTF8 | EMV_FLAG_IDN | EMV_FLAG_QUOTED)) == 0);
	CHECK(((a->flags & EMV_FLAG_IDN) != 0) == has_alabel(a->domain));
	CHECK(((a->flags & EMV_FLAG_QUOTED) != 0) == (a->local[0] == '"'));
	if (!(a->flags & EMV_FLAG_IDN))
		CHECK(strcmp(a->domain, a->domain_unicode) == 0);

	CHECK(emv_address_parse(a->address, strlen(a->address), &again) == EMV_OK);
	CHECK(strcmp(again.address, a->address) == 0);
	CHECK(again.flags == a->flags);
}

static void check_err(const emv_address *a)
{
	const char *p;

	CHECK(a->error > EMV_ADDR_OK && a->error < EMV_ADDR__COUNT);
	CHECK(strcmp(emv_address_error_name(a->error), "?") != 0);
	CHECK(a->detail[0] != '\0' && strlen(a->detail) < sizeof a->detail - 1); /* not cut short */
	for (p = a->detail; *p; p++)
		CHECK(*p >= 0x20 && *p <= 0x7e);
	CHECK(!a->local[0] && !a->domain[0] && !a->domain_unicode[0] && !a->address[0]);
	CHECK(a->flags == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	emv_address a;
	int rc;

	/* Copy so that ASan catches any read past size. */
	char *buf = emv_xmalloc(size);
	if (size)
		memcpy(buf, data, size);
	rc = emv_address_parse(buf, size, &a);
	if (rc == EMV_OK)
		check_ok(&a);
	else
		check_err(&a);
	free(buf);
	return 0;
}
