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

static const struct { unsigned bit; const char *name; } flag_table[] = {
	{ EMV_FLAG_FREE, "free" },         { EMV_FLAG_ROLE, "role" },
	{ EMV_FLAG_DISPOSABLE, "disposable" }, { EMV_FLAG_CATCH_ALL, "catch_all" },
	{ EMV_FLAG_SMTPUTF8, "smtputf8" }, { EMV_FLAG_IDN, "idn" },
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

const char *emv_reason_detail(emv_reason r)
{
	switch (r) {
	case EMV_REASON_ACCEPTED: return "the mail server accepted the recipient";
	case EMV_REASON_MAILBOX_NOT_FOUND: return "the mail server says this mailbox does not exist";
	case EMV_REASON_MAILBOX_DISABLED: return "the mail server says this mailbox is disabled";
	case EMV_REASON_MAILBOX_FULL: return "the mailbox exists but is full";
	case EMV_REASON_GREYLISTED: return "the server asked us to try again later (greylisting)";
	case EMV_REASON_BLOCKED: return "the server refused our IP address (block list or reputation)";
	case EMV_REASON_RATE_LIMITED: return "the server asked us to slow down";
	case EMV_REASON_POLICY_REJECTED: return "the server refused for a policy reason, not about this mailbox";
	case EMV_REASON_TIMEOUT: return "the mail server did not answer in time";
	case EMV_REASON_CONNECTION_FAILED: return "no connection to the mail server";
	case EMV_REASON_TLS_FAILED: return "TLS with the mail server failed";
	case EMV_REASON_PROTOCOL_ERROR: return "the mail server broke the SMTP protocol";
	default: return "";
	}
}
