/* SPDX-License-Identifier: Apache-2.0 */
/* emv_report.c - final verdicts and their JSON form (see emv_report.h). */
#include <stdio.h>
#include <string.h>
#include "emv_classify.h"
#include "emv_format.h"
#include "emv_report.h"
#include "emv_utf8.h"
#include "emv_util.h"

void emv_report_verdict_of(const emv_report_in *in, emv_report_verdict *v)
{
	memset(v, 0, sizeof *v);
	v->flags = in->list_flags;
	if (in->addr)
		v->flags |= in->addr->flags;
	if (!in->addr || in->addr->error != EMV_ADDR_OK) {
		v->status = EMV_STATUS_UNDELIVERABLE;
		v->reason = EMV_REASON_INVALID_SYNTAX;
		if (in->addr)
			snprintf(v->detail, sizeof v->detail, "%s: %s", emv_address_error_name(in->addr->error),
				 in->addr->detail);
		return;
	}
	if (!in->job && !in->result) {
		v->status = EMV_STATUS_UNKNOWN;
		v->reason = EMV_REASON_CONNECTION_FAILED;
		emv_strlcpy(v->detail, "not verified", sizeof v->detail);
		return;
	}
	const emv_probe_result *r = in->job ? emv_probe_get(in->job, in->index) : in->result;
	v->status = r->status;
	v->reason = r->reason;
	v->flags |= r->flags;
	emv_strlcpy(v->detail, r->detail[0] ? r->detail : emv_reason_detail(r->reason), sizeof v->detail);
	/* A disposable mailbox that exists is still not an address to keep. */
	if ((v->flags & EMV_FLAG_DISPOSABLE) && v->status == EMV_STATUS_DELIVERABLE) {
		v->status = EMV_STATUS_RISKY;
		v->reason = EMV_REASON_DISPOSABLE;
		emv_strlcpy(v->detail, "the mailbox exists, but the domain hands out disposable addresses",
			    sizeof v->detail);
	}
}

/* ---- the JSON text, written directly (lists write one per address: building
 * a jansson tree and dumping it cost a quarter of the engine's CPU) ---- */

static void puts_(emv_buf *b, const char *s)
{
	emv_buf_add(b, s, strlen(s));
}

/* A JSON string, escaped by the one formatter (lib/emv_format.h). */
static void jstr(emv_buf *b, const char *s, int null_if_empty)
{
	emv_format_json_str(b, s, null_if_empty);
}

static void jkey(emv_buf *b, const char *k)
{
	if (b->len > 1)
		emv_buf_add(b, ",", 1);
	emv_buf_add(b, "\"", 1);
	puts_(b, k);
	emv_buf_add(b, "\":", 2);
}

static void jint(emv_buf *b, long long v)
{
	char n[32];
	snprintf(n, sizeof n, "%lld", v);
	puts_(b, n);
}

char *emv_report_json_text(const emv_report_in *in)
{
	emv_report_verdict v;
	emv_buf b = { NULL, 0, 0 };
	const char *names[16];
	size_t nf;
	int ok = in->addr && in->addr->error == EMV_ADDR_OK;

	emv_report_verdict_of(in, &v);
	emv_buf_add(&b, "{", 1);
	jkey(&b, "email");
	jstr(&b, ok ? in->addr->address : in->input, 0);
	jkey(&b, "input");
	jstr(&b, in->input, 0);
	jkey(&b, "status");
	jstr(&b, emv_status_name(v.status), 0);
	jkey(&b, "reason");
	jstr(&b, emv_reason_name(v.reason), 0);
	jkey(&b, "flags");
	emv_buf_add(&b, "[", 1);
	nf = emv_flag_names(v.flags, names, 16);
	for (size_t i = 0; i < nf; i++) {
		if (i)
			emv_buf_add(&b, ",", 1);
		jstr(&b, names[i], 0);
	}
	emv_buf_add(&b, "]", 1);
	jkey(&b, "did_you_mean");
	jstr(&b, in->did_you_mean, 1);
	jkey(&b, "detail");
	jstr(&b, v.detail, 0);
	jkey(&b, "domain");
	jstr(&b, ok ? in->addr->domain : NULL, 0);
	if (!in->job && !in->result) {
		jkey(&b, "mx");
		puts_(&b, "[]");
		jkey(&b, "smtp");
		puts_(&b, "null");
		jkey(&b, "transcript");
		puts_(&b, "[]");
		jkey(&b, "attempts");
		jint(&b, 0);
	} else {
		const emv_probe_result *r = in->job ? emv_probe_get(in->job, in->index) : in->result;
		const emv_mx_result *mx = in->job ? emv_probe_mx(in->job) : NULL;
		jkey(&b, "mx");
		emv_buf_add(&b, "[", 1);
		if (mx && mx->status == EMV_DNS_OK && !mx->implicit) {
			for (int h = 0; h < mx->nhosts; h++) {
				emv_buf_add(&b, h ? ",{\"host\":" : "{\"host\":", h ? 9 : 8);
				jstr(&b, mx->hosts[h].host, 0);
				puts_(&b, ",\"preference\":");
				jint(&b, mx->hosts[h].preference);
				emv_buf_add(&b, "}", 1);
			}
		}
		emv_buf_add(&b, "]", 1);
		jkey(&b, "implicit_mx");
		puts_(&b, mx && mx->implicit ? "true" : "false");
		jkey(&b, "mx_host");
		jstr(&b, r->mx_host, 1);
		jkey(&b, "mx_ip");
		jstr(&b, r->mx_ip, 1);
		jkey(&b, "source_ip");
		jstr(&b, r->source_ip, 1);
		jkey(&b, "tls");
		jstr(&b, r->tls, 1);
		jkey(&b, "catch_all");
		puts_(&b, r->catch_all < 0 ? "null" : r->catch_all ? "true" : "false");
		jkey(&b, "smtp");
		if (r->have_smtp) {
			puts_(&b, "{\"code\":");
			jint(&b, r->smtp_code);
			puts_(&b, ",\"enhanced\":");
			jstr(&b, r->enhanced, 0);
			puts_(&b, ",\"reply\":");
			jstr(&b, r->reply, 0);
			emv_buf_add(&b, "}", 1);
		} else {
			puts_(&b, "null");
		}
		if (r->rule) {
			jkey(&b, "rule");
			jstr(&b, r->rule, 0);
		}
		if (r->connect_timeout) {
			jkey(&b, "connect_timeout");
			puts_(&b, "true");
		}
		if (!in->no_transcript && in->job) {
			int first = 1;
			jkey(&b, "transcript");
			emv_buf_add(&b, "[", 1);
			for (size_t k = 0; k < emv_probe_exchange_count(in->job); k++) {
				const emv_exchange *e;
				if (!emv_probe_exchange_relevant(in->job, in->index, k))
					continue;
				e = emv_probe_exchange(in->job, k);
				puts_(&b, first ? "{\"session\":" : ",{\"session\":");
				first = 0;
				jint(&b, e->session);
				puts_(&b, ",\"mx\":");
				jstr(&b, e->mx_ip, 1);
				puts_(&b, ",\"phase\":");
				jstr(&b, emv_phase_name(e->phase), 0);
				puts_(&b, ",\"command\":");
				jstr(&b, e->command, 0);
				if (e->code) {
					puts_(&b, ",\"code\":");
					jint(&b, e->code);
					puts_(&b, ",\"enhanced\":");
					jstr(&b, e->enhanced, 0);
					puts_(&b, ",\"reply\":");
					jstr(&b, e->text, 0);
				} else {
					puts_(&b, ",\"code\":null,\"event\":");
					jstr(&b, e->text, 0);
				}
				emv_buf_add(&b, "}", 1);
			}
			emv_buf_add(&b, "]", 1);
		}
		jkey(&b, "attempts");
		jint(&b, in->attempts > 0 ? in->attempts : (long long)r->attempts);
		jkey(&b, "duration_ms");
		jint(&b, r->duration_ms);
	}
	if (in->key) {
		jkey(&b, "k");
		jstr(&b, in->key, 0);
	}
	emv_buf_add(&b, "}", 1);
	return b.p;
}

json_t *emv_report_json(const emv_report_in *in)
{
	char *text = emv_report_json_text(in);
	json_t *o = json_loads(text, 0, NULL);
	free(text);
	return o;
}
