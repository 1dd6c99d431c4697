/* SPDX-License-Identifier: Apache-2.0 */
/* emv_result.c - names of statuses and reasons (see emv_result.h). */
#include <string.h>
#include "emv_result.h"

/* Every row must have a name: an empty one would be a hole in the lookups. */
#define STATUS_NAMED_(e, name) _Static_assert(sizeof(name) > 1, "the status " #e " has no name");
#define REASON_NAMED_(e, name, status, retry, detail) _Static_assert(sizeof(name) > 1, "the reason " #e " has no name");
EMV_STATUS_LIST(STATUS_NAMED_)
EMV_REASON_LIST(REASON_NAMED_)
#undef STATUS_NAMED_
#undef REASON_NAMED_

#define STATUS_NAME_(e, name) [EMV_STATUS_##e] = name,
static const char *const status_names[] = { EMV_STATUS_LIST(STATUS_NAME_) };
#undef STATUS_NAME_

static const struct {
	const char *name;
	emv_status status;
	emv_retry_class retry;
	const char *detail;
} reasons[] = {
#define REASON_ROW_(e, name, status, retry, detail) \
	[EMV_REASON_##e] = { name, EMV_STATUS_##status, EMV_RETRY_CLASS_##retry, detail },
	EMV_REASON_LIST(REASON_ROW_)
#undef REASON_ROW_
};

_Static_assert(sizeof status_names / sizeof status_names[0] == EMV_STATUS__COUNT, "a status without its row");
_Static_assert(sizeof reasons / sizeof reasons[0] == EMV_REASON__COUNT, "a reason without its row");

const char *emv_status_name(emv_status s)
{
	return (unsigned)s < EMV_STATUS__COUNT ? status_names[s] : "?";
}

const char *emv_reason_name(emv_reason r)
{
	return (unsigned)r < EMV_REASON__COUNT ? reasons[r].name : "?";
}

int emv_status_from_name(const char *name)
{
	for (int i = 0; i < EMV_STATUS__COUNT; i++)
		if (strcmp(status_names[i], name) == 0)
			return i;
	return -1;
}

int emv_reason_from_name(const char *name)
{
	for (int i = 0; i < EMV_REASON__COUNT; i++)
		if (strcmp(reasons[i].name, name) == 0)
			return i;
	return -1;
}

static const struct {
	unsigned bit;
	const char *name;
} flag_table[] = {
	{ EMV_FLAG_FREE, "free" },	     { EMV_FLAG_ROLE, "role" },		{ EMV_FLAG_DISPOSABLE, "disposable" },
	{ EMV_FLAG_CATCH_ALL, "catch_all" }, { EMV_FLAG_SMTPUTF8, "smtputf8" }, { EMV_FLAG_IDN, "idn" },
	{ EMV_FLAG_QUOTED, "quoted" },
};

size_t emv_flag_names(unsigned flags, const char **names, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof flag_table / sizeof flag_table[0] && n < max; i++)
		if (flags & flag_table[i].bit)
			names[n++] = flag_table[i].name;
	return n;
}

unsigned emv_flag_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof flag_table / sizeof flag_table[0]; i++)
		if (strcmp(flag_table[i].name, name) == 0)
			return flag_table[i].bit;
	return 0;
}

const char *emv_reason_detail(emv_reason r)
{
	return (unsigned)r < EMV_REASON__COUNT ? reasons[r].detail : "";
}

emv_status emv_reason_default_status(emv_reason r)
{
	return (unsigned)r < EMV_REASON__COUNT ? reasons[r].status : EMV_STATUS_UNKNOWN;
}

emv_retry_class emv_reason_retry(emv_reason r)
{
	return (unsigned)r < EMV_REASON__COUNT ? reasons[r].retry : EMV_RETRY_CLASS_SCHEDULE;
}
