/* emv_result.c - names of statuses and reasons (see emv_result.h). */
#include <string.h>
#include "emv_result.h"

static const char *const status_names[EMV_STATUS__COUNT] = {
	"deliverable", "undeliverable", "risky", "unknown",
};

static const char *const reason_names[EMV_REASON__COUNT] = {
	"accepted", "mailbox_not_found", "invalid_syntax", "no_domain", "null_mx",
	"no_mail_server", "mailbox_disabled", "mailbox_full", "catch_all",
	"disposable", "role", "greylisted", "blocked", "rate_limited", "timeout",
	"connection_failed", "tls_failed", "policy_rejected", "protocol_error",
	"dns_failed", "private_mx", "port25_blocked", "input_error",
};

const char *emv_status_name(emv_status s)
{
	return (unsigned)s < EMV_STATUS__COUNT ? status_names[s] : "?";
}

const char *emv_reason_name(emv_reason r)
{
	return (unsigned)r < EMV_REASON__COUNT ? reason_names[r] : "?";
}

static int lookup(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

int emv_status_from_name(const char *name)
{
	return lookup(status_names, EMV_STATUS__COUNT, name);
}

int emv_reason_from_name(const char *name)
{
	return lookup(reason_names, EMV_REASON__COUNT, name);
}
