/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_classify.h - turn one SMTP reply into a verdict (docs/design.md §3, §5).
 *
 * Input: the phase the reply answers, its basic code, its enhanced code and
 * its sanitised text (emv_reply.h).  Output: status, reason, whether a later
 * retry could change the answer, whether the reply is about us (our IP,
 * sender or session) rather than the mailbox, and the id of the rule that
 * decided.
 *
 * The decision table lives in a data file (data/classify.rules; its header
 * documents the format and the verdict mapping): ordered rules, first match
 * wins, each matching on phase, basic code, enhanced code and a POSIX ERE
 * phrase (case-insensitive, compiled once at load) run over the text with its
 * lines joined by spaces and repeated per-line enhanced codes dropped.  Whatever the rules say,
 * three guard rails are applied in code because the verdict is the product:
 *   - deliverable only for a 2xx answer to RCPT;
 *   - undeliverable only for a 5xx answer to RCPT (a 4xx is never final and
 *     nothing said before RCPT is about the mailbox);
 *   - a reply about us is never deliverable/undeliverable, and a 4xx is
 *     always temporary.
 * A downgraded verdict becomes unknown and keeps its reason.
 *
 * Loading errors name "file:line: what".  A loaded classifier is read-only
 * and may be shared between threads (regexec on a compiled regex is safe).
 */
#ifndef EMV_CLASSIFY_H
#define EMV_CLASSIFY_H

#include <stddef.h>
#include "emv_result.h"

/* The SMTP phase a reply answers; the session's states map onto these. */
typedef enum {
	EMV_PHASE_CONNECT = 0, /* reply read right after connect (same as banner) */
	EMV_PHASE_BANNER,
	EMV_PHASE_EHLO,
	EMV_PHASE_HELO,
	EMV_PHASE_STARTTLS,
	EMV_PHASE_MAIL,
	EMV_PHASE_RCPT,
	EMV_PHASE_RSET,
	EMV_PHASE_QUIT,
	EMV_PHASE__COUNT
} emv_phase;

/* "connect", "banner", "ehlo", ... as used in the rules file and transcripts. */
const char *emv_phase_name(int phase);
int emv_phase_from_name(const char *name); /* -1 when unknown */

typedef struct {
	emv_status status;
	emv_reason reason;
	int temporary;	     /* 1 = retrying later (or from another IP) could change it */
	int about_us;	     /* 1 = about our IP/sender/session, not the mailbox */
	const char *rule_id; /* rule that matched; owned by the classifier (or static) */
} emv_verdict;

typedef struct emv_classifier emv_classifier;

/* NULL on error with "path:line: message" in err. */
emv_classifier *emv_classifier_load(const char *path, char *err, size_t errlen);
/* classify.rules of emv_data_dir(NULL). */
emv_classifier *emv_classifier_load_default(char *err, size_t errlen);
void emv_classifier_free(emv_classifier *c);
size_t emv_classifier_rule_count(const emv_classifier *c);

/*
 * Classify one reply.  enhanced may be NULL or "" (none); text may be NULL.
 * Always fills out; when no rule matches (or c is NULL) the verdict is
 * unknown/protocol_error with rule_id "no_rule".
 */
void emv_classify(const emv_classifier *c, int phase, int code, const char *enhanced, const char *text,
		  emv_verdict *out);

#endif
