/* SPDX-License-Identifier: Apache-2.0 */
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

/*
 * The statuses, one row each: X(ENUM, name).  Every table indexed by a
 * status is generated from this list (emv_result.c).
 */
#define EMV_STATUS_LIST(X)                \
	X(DELIVERABLE, "deliverable")     \
	X(UNDELIVERABLE, "undeliverable") \
	X(RISKY, "risky")                 \
	X(UNKNOWN, "unknown")

#define EMV_STATUS_ENUM_(e, name) EMV_STATUS_##e,
typedef enum { EMV_STATUS_LIST(EMV_STATUS_ENUM_) EMV_STATUS__COUNT } emv_status;
#undef EMV_STATUS_ENUM_

/* How a temporary answer with this reason is asked again (emv_retry.c). */
typedef enum {
	EMV_RETRY_CLASS_SCHEDULE = 0, /* the retry schedule, or the server's hint */
	EMV_RETRY_CLASS_NEVER,	      /* final at the first answer */
	EMV_RETRY_CLASS_OTHER_SOURCE, /* at once from another source address, else final */
	EMV_RETRY_CLASS_DNS,	      /* the quick DNS retries */
	EMV_RETRY_CLASS_CONNECT,      /* one retry after the schedule's first step */
} emv_retry_class;

/*
 * The reasons, one row each:
 *   X(ENUM, name, default status, retry class, detail)
 * name: the exact string of exports, the wire and data files;
 * default status: what the classifier says when a rule leaves it to the
 * reason (data/classify.rules "auto"); retry class: see emv_retry_class;
 * detail: a one-line explanation for people, "" when the reason speaks for
 * itself.  Everything that maps reasons (names, statuses, details, retry)
 * is generated from this list, so a new reason is one new row; a row that
 * misses a column does not compile.  docs/result-json.md lists them all
 * (tests/unit/test_result.c checks it).
 */
#define EMV_REASON_LIST(X)                                                                                           \
	X(ACCEPTED, "accepted", DELIVERABLE, SCHEDULE, "the mail server accepted the recipient")                     \
	X(MAILBOX_NOT_FOUND, "mailbox_not_found", UNDELIVERABLE, SCHEDULE,                                           \
	  "the mail server says this mailbox does not exist")                                                        \
	X(INVALID_SYNTAX, "invalid_syntax", UNDELIVERABLE, SCHEDULE, "")                                             \
	X(NO_DOMAIN, "no_domain", UNDELIVERABLE, SCHEDULE, "")                                                       \
	X(NULL_MX, "null_mx", UNDELIVERABLE, SCHEDULE, "")                                                           \
	X(NO_MAIL_SERVER, "no_mail_server", UNDELIVERABLE, SCHEDULE, "")                                             \
	X(MAILBOX_DISABLED, "mailbox_disabled", UNDELIVERABLE, SCHEDULE,                                             \
	  "the mail server says this mailbox is disabled")                                                           \
	X(MAILBOX_FULL, "mailbox_full", RISKY, NEVER, "the mailbox exists but is full")                              \
	X(CATCH_ALL, "catch_all", RISKY, SCHEDULE, "")                                                               \
	X(DISPOSABLE, "disposable", RISKY, SCHEDULE, "")                                                             \
	X(ROLE, "role", RISKY, SCHEDULE, "")                                                                         \
	X(GREYLISTED, "greylisted", UNKNOWN, SCHEDULE, "the server asked us to try again later (greylisting)")       \
	X(BLOCKED, "blocked", UNKNOWN, OTHER_SOURCE, "the server refused our IP address (block list or reputation)") \
	X(RATE_LIMITED, "rate_limited", UNKNOWN, SCHEDULE, "the server asked us to slow down")                       \
	X(TIMEOUT, "timeout", UNKNOWN, CONNECT, "the mail server did not answer in time")                            \
	X(CONNECTION_FAILED, "connection_failed", UNKNOWN, CONNECT, "no connection to the mail server")              \
	X(TLS_FAILED, "tls_failed", UNKNOWN, CONNECT, "TLS with the mail server failed")                             \
	X(POLICY_REJECTED, "policy_rejected", UNKNOWN, SCHEDULE,                                                     \
	  "the server refused for a policy reason, not about this mailbox")                                          \
	X(PROTOCOL_ERROR, "protocol_error", UNKNOWN, CONNECT, "the mail server broke the SMTP protocol")             \
	/* SERVFAIL / DNS timeout after retries */                                                                   \
	X(DNS_FAILED, "dns_failed", UNKNOWN, DNS, "")                                                                \
	/* every MX address refused as private/reserved */                                                           \
	X(PRIVATE_MX, "private_mx", UNKNOWN, SCHEDULE, "")                                                           \
	/* outbound port 25 looks blocked from this host */                                                          \
	X(PORT25_BLOCKED, "port25_blocked", UNKNOWN, CONNECT, "")                                                    \
	/* the input row itself was unusable (too long, malformed) */                                                \
	X(INPUT_ERROR, "input_error", UNKNOWN, SCHEDULE, "")

#define EMV_REASON_ENUM_(e, name, status, retry, detail) EMV_REASON_##e,
typedef enum { EMV_REASON_LIST(EMV_REASON_ENUM_) EMV_REASON__COUNT } emv_reason;
#undef EMV_REASON_ENUM_

/* Flags (bit set). */
#define EMV_FLAG_FREE 0x0001u
#define EMV_FLAG_ROLE 0x0002u
#define EMV_FLAG_DISPOSABLE 0x0004u
#define EMV_FLAG_CATCH_ALL 0x0008u
#define EMV_FLAG_SMTPUTF8 0x0010u
#define EMV_FLAG_IDN 0x0020u	/* the normalised domain holds an A-label (xn--) */
#define EMV_FLAG_QUOTED 0x0040u /* local part is a quoted string */

/* A verdict made final by a time limit (verify's engine, a cluster job's
 * deadline: worker/emv_engine.h, coordinator/emv_deadline.h) says so in its
 * detail, in the same words everywhere: the last result's detail +
 * EMV_EXPIRED_AGAIN + why, or EMV_EXPIRED_UNASKED + why (unknown / timeout)
 * when it never had an answer; why is one of the two below. */
#define EMV_EXPIRED_AGAIN "; not asked again: "
#define EMV_EXPIRED_UNASKED "not asked: "
#define EMV_EXPIRED_DEADLINE "the deadline has come"
#define EMV_EXPIRED_STRAGGLERS "the wait for stragglers is over"

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

/* The status a reason stands for when nothing else decides it
 * (EMV_STATUS_UNKNOWN for a value out of range). */
emv_status emv_reason_default_status(emv_reason r);

/* How a temporary answer with this reason is asked again. */
emv_retry_class emv_reason_retry(emv_reason r);

/* The flag bit of a name from emv_flag_names ("free" -> EMV_FLAG_FREE);
 * 0 when unknown. */
unsigned emv_flag_from_name(const char *name);

#endif
