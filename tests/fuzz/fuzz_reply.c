/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_reply.c - libFuzzer target for the SMTP reply parser and classifier.
 *
 * The first input byte picks the SMTP phase; the rest is split at '\n' (a
 * trailing '\r' stays in the line: the parser must cope) and every line is fed to one parser with small limits, so that
 * the byte and line bounds are reached often.  Each completed reply is
 * checked for the parser's invariants, looked up for EHLO keywords and
 * classified with the default rules at a phase taken from the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_classify.h"
#include "emv_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static emv_classifier *rules;

static void check_reply(const emv_reply *r, const emv_reply_parser *p)
{
	char enh[16];

	if (r->code < 200 || r->code > 599 || r->nlines < 1 || (size_t)r->nlines > p->max_lines ||
	    r->total_bytes > p->max_total)
		abort();
	if (r->text_len >= EMV_REPLY_TEXT_MAX || strlen(r->text) != r->text_len)
		abort();
	for (size_t i = 0; i < r->text_len; i++) {
		unsigned char c = (unsigned char)r->text[i];
		if (c != '\n' && (c < 0x20 || c > 0x7e))
			abort();
	}
	if (r->enhanced[0]) {
		/* an enhanced code is well formed and of the basic code's class */
		if (emv_enhanced_parse(r->enhanced, strlen(r->enhanced), enh, sizeof enh) != r->code / 100 ||
		    strcmp(enh, r->enhanced) != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	emv_reply_parser p;
	const char *s = (const char *)data + 1, *end = (const char *)data + size;
	char err[256] = "";
	int phase;

	if (!rules) {
		rules = emv_classifier_load_default(err, sizeof err);
		if (!rules) {
			fprintf(stderr, "fuzz_reply: %s\n", err);
			abort();
		}
	}
	if (size == 0)
		return 0;
	phase = data[0] % (EMV_PHASE__COUNT + 1); /* one out-of-range value too */
	emv_reply_parser_init(&p, 4096, 16);

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
		emv_reply_status st = emv_reply_parser_feed(&p, s, len, err, sizeof err);

		if (st == EMV_REPLY_ERROR) {
			if (!err[0] || strlen(err) >= sizeof err || p.in_progress)
				abort();
		} else if (st == EMV_REPLY_DONE) {
			emv_verdict v;

			check_reply(&p.r, &p);
			(void)emv_reply_has_keyword(&p.r, "PIPELINING");
			if (emv_reply_keyword_param(&p.r, "SIZE") < -1)
				abort();
			emv_classify(rules, phase, p.r.code, p.r.enhanced, p.r.text, &v);
			if ((unsigned)v.status >= EMV_STATUS__COUNT || (unsigned)v.reason >= EMV_REASON__COUNT ||
			    !v.rule_id)
				abort();
			/* guard rails */
			if (v.status == EMV_STATUS_DELIVERABLE && (phase != EMV_PHASE_RCPT || p.r.code / 100 != 2))
				abort();
			if (v.status == EMV_STATUS_UNDELIVERABLE &&
			    (phase != EMV_PHASE_RCPT || p.r.code / 100 != 5 || v.about_us))
				abort();
			if (p.r.code / 100 == 4 && !v.temporary)
				abort();
		} else if (!p.in_progress) {
			abort();
		}
		err[0] = '\0';
		s += len + (nl ? 1 : 0);
	}
	return 0;
}
