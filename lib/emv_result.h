/*
 * emv_result.h - the result model of docs/design.md §5: statuses, reasons, flags.
 *
 * Every verdict is a (status, reason) pair plus flags.  The names returned by
 * the *_name() functions are the exact strings used in JSON/CSV exports and
 * in data files; *_from_name() is their inverse (returns -1 when unknown).
 */
#ifndef EMV_RESULT_H
#define EMV_RESULT_H

#include <stddef.h>

typedef enum {
	EMV_STATUS_DELIVERABLE = 0,
	EMV_STATUS_UNDELIVERABLE,
	EMV_STATUS_RISKY,
	EMV_STATUS_UNKNOWN,
	EMV_STATUS__COUNT
} emv_status;

typedef enum {
	EMV_REASON_ACCEPTED = 0,
	EMV_REASON_MAILBOX_NOT_FOUND,
	EMV_REASON_INVALID_SYNTAX,
	EMV_REASON_NO_DOMAIN,
	EMV_REASON_NULL_MX,
	EMV_REASON_NO_MAIL_SERVER,
	EMV_REASON_MAILBOX_DISABLED,
	EMV_REASON_MAILBOX_FULL,
	EMV_REASON_CATCH_ALL,
	EMV_REASON_DISPOSABLE,
	EMV_REASON_ROLE,
	EMV_REASON_GREYLISTED,
	EMV_REASON_BLOCKED,
	EMV_REASON_RATE_LIMITED,
	EMV_REASON_TIMEOUT,
	EMV_REASON_CONNECTION_FAILED,
	EMV_REASON_TLS_FAILED,
	EMV_REASON_POLICY_REJECTED,
	EMV_REASON_PROTOCOL_ERROR,
	EMV_REASON_DNS_FAILED,     /* SERVFAIL / DNS timeout after retries */
	EMV_REASON_PRIVATE_MX,     /* every MX address refused as private/reserved */
	EMV_REASON_PORT25_BLOCKED, /* outbound port 25 looks blocked from this host */
	EMV_REASON_INPUT_ERROR,    /* the input row itself was unusable (too long, malformed) */
	EMV_REASON__COUNT
} emv_reason;

/* Flags (bit set). */
#define EMV_FLAG_FREE        0x0001u
#define EMV_FLAG_ROLE        0x0002u
#define EMV_FLAG_DISPOSABLE  0x0004u
#define EMV_FLAG_CATCH_ALL   0x0008u
#define EMV_FLAG_SMTPUTF8    0x0010u
#define EMV_FLAG_IDN         0x0020u /* the normalised domain holds an A-label (xn--) */
#define EMV_FLAG_QUOTED      0x0040u /* local part is a quoted string */

const char *emv_status_name(emv_status s);
const char *emv_reason_name(emv_reason r);
int emv_status_from_name(const char *name);
int emv_reason_from_name(const char *name);

/* The names of the bits set in flags ("free", "role", ...), in a fixed
 * order; at most max of them.  Returns how many were stored. */
size_t emv_flag_names(unsigned flags, const char **names, size_t max);

/* A one-line explanation of a reason for people ("" when the reason
 * speaks for itself). */
const char *emv_reason_detail(emv_reason r);

#endif
