/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_address.h - syntax check and normalisation of one email address.
 *
 * Job: decide whether a string is a bare RFC 5321 mailbox we can probe, and
 * if so produce its normal form: local part kept exactly as given (local
 * parts are case-sensitive, RFC 5321 2.4; a quoted local part keeps its
 * quotes), "@", domain lower-cased and in IDNA2008 A-label form (libidn2,
 * UTS #46 non-transitional, NFC input), trailing dot removed.
 *
 * Accepted: surrounding ASCII white space (trimmed); one optional pair of
 * angle brackets around the whole address ("<a@b.example>", as in an SMTP
 * path; nothing may sit between the brackets and the address); a dot-atom
 * or quoted-string local part (RFC 5321 4.1.2, with RFC 6531 UTF-8, which
 * sets EMV_FLAG_SMTPUTF8); a host-name domain of at least two labels, in
 * ASCII, A-labels or Unicode.  ASCII labels that merely have "--" in the
 * third and fourth position ("r3--sn-x") are valid host names and accepted;
 * labels starting "xn--" must be valid A-labels.
 *
 * Rejected, each with its own code: display names ("Joe <a@b>"), comments
 * (RFC 5322 CFWS, obsolete), source routes, domain literals ([1.2.3.4],
 * [IPv6:...]: not verifiable by us), dotless domains, all-numeric top-level
 * labels, obs-local-part forms ("a".b), tabs and control characters even
 * inside quotes (RFC 5321 qtextSMTP is printable ASCII and space only),
 * Unicode white space and invisible format characters anywhere (they are
 * copy-and-paste damage, never part of a real mailbox), invalid UTF-8.
 *
 * Limits (octets): input 1024 before trimming, local part 64 as given,
 * domain 253 in A-label form, whole normalised address 254.
 *
 * Errors: emv_address_parse() returns EMV_ERR and sets a->error (a stable
 * code, named by emv_address_error_name()) and a->detail (one printable
 * ASCII sentence naming the offending offset or limit; offsets count octets
 * from the start of the caller's input).  On error every other output field
 * is empty.  The function is pure and thread-safe; it allocates only inside
 * libidn2, and only for non-ASCII or "xn--" domains.
 */
#ifndef EMV_ADDRESS_H
#define EMV_ADDRESS_H

#include <stddef.h>
#include "emv_result.h" /* EMV_FLAG_* */
#include "emv_util.h"	/* EMV_OK, EMV_ERR */

#define EMV_LOCAL_MAX 64    /* RFC 5321 4.5.3.1.1 octets */
#define EMV_ADDRESS_MAX 254 /* whole address, RFC 3696 errata / RFC 5321 path limit minus <> */
#define EMV_INPUT_MAX 1024  /* longer input is rejected before parsing */
#define EMV_LABEL_MAX 63    /* RFC 1035 2.3.4 */
/* U-label form of a domain whose A-label form fits EMV_HOST_NAME_MAX: every
 * Punycode digit yields at most one code point of at most 4 octets. */
#define EMV_DOMAIN_UNICODE_MAX (4 * EMV_HOST_NAME_MAX)

typedef enum {
	EMV_ADDR_OK = 0,
	EMV_ADDR_EMPTY,		 /* nothing but white space, or "<>" */
	EMV_ADDR_TOO_LONG_INPUT, /* more than EMV_INPUT_MAX octets */
	EMV_ADDR_NO_AT,		 /* no "@" outside quotes */
	EMV_ADDR_NUL_BYTE,	 /* embedded NUL */
	EMV_ADDR_INVALID_UTF8,	 /* malformed, overlong, surrogate, > U+10FFFF */
	EMV_ADDR_CONTROL_CHAR,	 /* C0 (except tab), DEL, C1 */
	EMV_ADDR_INVISIBLE_CHAR, /* BOM, zero-width space, bidi controls... */
	EMV_ADDR_WHITESPACE,	 /* space/tab outside quotes, tab inside, Unicode spaces */
	EMV_ADDR_DISPLAY_NAME,	 /* "Name <addr>" */
	EMV_ADDR_ANGLE_BRACKET,	 /* unbalanced or stray '<' '>' */
	EMV_ADDR_SOURCE_ROUTE,	 /* "@relay:user@domain" (RFC 5321 obsolete) */
	EMV_ADDR_COMMENT,	 /* "(...)" outside quotes */
	EMV_ADDR_MULTIPLE_AT,	 /* more than one "@" outside quotes */
	EMV_ADDR_LOCAL_EMPTY,	 /* "@domain" or ""@domain */
	EMV_ADDR_LOCAL_TOO_LONG, /* > EMV_LOCAL_MAX octets */
	EMV_ADDR_LOCAL_LEADING_DOT,
	EMV_ADDR_LOCAL_TRAILING_DOT,
	EMV_ADDR_LOCAL_CONSECUTIVE_DOTS,
	EMV_ADDR_LOCAL_INVALID_CHAR, /* not atext in an unquoted local part */
	EMV_ADDR_QUOTE_UNTERMINATED,
	EMV_ADDR_QUOTE_MISPLACED,     /* quotes not enclosing the whole local part */
	EMV_ADDR_QUOTED_PAIR_INVALID, /* backslash not followed by printable ASCII */
	EMV_ADDR_DOMAIN_EMPTY,
	EMV_ADDR_DOMAIN_LITERAL,  /* [1.2.3.4] or [IPv6:...] */
	EMV_ADDR_DOMAIN_TOO_LONG, /* > EMV_HOST_NAME_MAX octets as A-labels */
	EMV_ADDR_DOMAIN_LEADING_DOT,
	EMV_ADDR_DOMAIN_CONSECUTIVE_DOTS,
	EMV_ADDR_DOMAIN_INVALID_CHAR, /* not letter, digit or hyphen */
	EMV_ADDR_LABEL_TOO_LONG,      /* > EMV_LABEL_MAX octets as A-label */
	EMV_ADDR_LABEL_HYPHEN,	      /* label starts or ends with '-' */
	EMV_ADDR_DOMAIN_DOTLESS,      /* single label, e.g. "localhost" */
	EMV_ADDR_TLD_NUMERIC,	      /* last label all digits */
	EMV_ADDR_IDNA_INVALID,	      /* libidn2 refused a label */
	EMV_ADDR_ADDRESS_TOO_LONG,    /* > EMV_ADDRESS_MAX octets normalised */
	EMV_ADDR__COUNT
} emv_addr_error;

typedef struct {
	char local[EMV_LOCAL_MAX + 1];			 /* local part as given (quoted form verbatim, incl. quotes) */
	char domain[EMV_HOST_NAME_MAX + 1];		 /* lower-case A-label form, no trailing dot */
	char domain_unicode[EMV_DOMAIN_UNICODE_MAX + 1]; /* U-label form when IDN, else == domain */
	char address[EMV_ADDRESS_MAX + 1];		 /* local@domain */
	unsigned flags;					 /* EMV_FLAG_SMTPUTF8, EMV_FLAG_IDN, EMV_FLAG_QUOTED */
	emv_addr_error error;
	char detail[160]; /* why, on error; "" on success */
} emv_address;

/*
 * Parse and normalise one address.  input need not be NUL-terminated and may
 * hold any bytes; input == NULL is treated as empty.  Returns EMV_OK, or
 * EMV_ERR with a->error and a->detail set (EMV_ERR without them only when
 * a is NULL).
 *
 * Flags on success: EMV_FLAG_SMTPUTF8 when the local part holds non-ASCII,
 * EMV_FLAG_IDN when the normalised domain holds an A-label (so "münchen.de"
 * and "xn--mnchen-3ya.de" normalise to the same address and the same flags),
 * EMV_FLAG_QUOTED when the local part is a quoted string.
 */
int emv_address_parse(const char *input, size_t len, emv_address *a);

/* Stable snake_case name of an error code ("local_too_long"); "?" if out
 * of range.  emv_address_error_from_name() is its inverse (-1 if unknown). */
const char *emv_address_error_name(emv_addr_error e);
int emv_address_error_from_name(const char *name);

#endif
