/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_report.h - one verdict as the user sees it: the final status/reason
 * (probe verdict combined with the address's syntax and list flags) and its
 * JSON form (docs/result-json.md).  Shared by `check`, `verify` and the
 * worker so every front end says the same thing about the same evidence.
 */
#ifndef EMV_REPORT_H
#define EMV_REPORT_H

#include <jansson.h>
#include "emv_address.h"
#include "emv_probe.h"
#include "emv_result.h"

typedef struct {
	const char *input;		/* as given */
	const emv_address *addr;	/* parsed; addr->error != OK means invalid syntax */
	unsigned list_flags;		/* role/disposable/free from the lists */
	const char *did_you_mean;	/* "" or NULL when none */
	const emv_probe_job *job;	/* NULL when not probed (invalid syntax) */
	size_t index;			/* result index within job */
	const emv_probe_result *result; /* with job NULL: a result kept without its job (made final by a
	                                   deadline): evidence without the MX list and transcript */
	int no_transcript;		/* leave out the SMTP transcript (lists: the deciding reply is kept) */
	unsigned attempts;		/* >0: attempts across retries (else the job's own count) */
	const char *key;		/* when set, added as "k" (the journal's lookup key) */
} emv_report_in;

typedef struct {
	emv_status status;
	emv_reason reason;
	unsigned flags;
	char detail[320];
} emv_report_verdict;

/* Combine probe verdict, syntax and list flags into the final verdict. */
void emv_report_verdict_of(const emv_report_in *in, emv_report_verdict *v);

/* The JSON object of docs/result-json.md as compact text (free() it).  Bytes
 * of the input that are not UTF-8 are written as '?'. */
char *emv_report_json_text(const emv_report_in *in);

/* The same parsed into a jansson object (caller owns the reference). */
json_t *emv_report_json(const emv_report_in *in);


#endif
