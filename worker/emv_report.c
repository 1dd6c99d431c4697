/* emv_report.c - final verdicts and their JSON form (see emv_report.h). */
#include <stdio.h>
#include <string.h>
#include "emv_classify.h"
#include "emv_report.h"
#include "emv_util.h"

static const struct { unsigned bit; const char *name; } flag_table[] = {
	{ EMV_FLAG_FREE, "free" },         { EMV_FLAG_ROLE, "role" },
	{ EMV_FLAG_DISPOSABLE, "disposable" }, { EMV_FLAG_CATCH_ALL, "catch_all" },
	{ EMV_FLAG_SMTPUTF8, "smtputf8" }, { EMV_FLAG_IDN, "idn" },
	{ EMV_FLAG_QUOTED, "quoted" },
};

size_t emv_report_flag_names(unsigned flags, const char **names, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof flag_table / sizeof flag_table[0] && n < max; i++)
		if (flags & flag_table[i].bit)
			names[n++] = flag_table[i].name;
	return n;
}

static const char *default_detail(emv_reason r)
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
	if (!in->job) {
		v->status = EMV_STATUS_UNKNOWN;
		v->reason = EMV_REASON_CONNECTION_FAILED;
		emv_strlcpy(v->detail, "not verified", sizeof v->detail);
		return;
	}
	const emv_probe_result *r = emv_probe_get(in->job, in->index);
	v->status = r->status;
	v->reason = r->reason;
	v->flags |= r->flags;
	emv_strlcpy(v->detail, r->detail[0] ? r->detail : default_detail(r->reason), sizeof v->detail);
	/* A disposable mailbox that exists is still not an address to keep. */
	if ((v->flags & EMV_FLAG_DISPOSABLE) && v->status == EMV_STATUS_DELIVERABLE) {
		v->status = EMV_STATUS_RISKY;
		v->reason = EMV_REASON_DISPOSABLE;
		emv_strlcpy(v->detail, "the mailbox exists, but the domain hands out disposable addresses",
			    sizeof v->detail);
	}
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

/* jansson wants UTF-8; reply texts are sanitised ASCII, input may not be. */
static json_t *safe_string(const char *s)
{
	json_t *j = json_string(s);
	if (!j) {
		char buf[1100];
		emv_sanitize(buf, sizeof buf, s, strlen(s));
		j = json_string(buf);
	}
	return j;
}

json_t *emv_report_json(const emv_report_in *in)
{
	emv_report_verdict v;
	json_t *o = json_object(), *flags = json_array();
	const char *names[16];
	size_t nf;

	emv_report_verdict_of(in, &v);
	json_object_set_new(o, "email", safe_string(in->addr && in->addr->error == EMV_ADDR_OK ?
						    in->addr->address : in->input));
	json_object_set_new(o, "input", safe_string(in->input));
	json_object_set_new(o, "status", json_string(emv_status_name(v.status)));
	json_object_set_new(o, "reason", json_string(emv_reason_name(v.reason)));
	nf = emv_report_flag_names(v.flags, names, 16);
	for (size_t i = 0; i < nf; i++)
		json_array_append_new(flags, json_string(names[i]));
	json_object_set_new(o, "flags", flags);
	json_object_set_new(o, "did_you_mean", str_or_null(in->did_you_mean));
	json_object_set_new(o, "detail", safe_string(v.detail));
	json_object_set_new(o, "domain", in->addr && in->addr->error == EMV_ADDR_OK ?
				 json_string(in->addr->domain) : json_null());
	if (!in->job) {
		json_object_set_new(o, "mx", json_array());
		json_object_set_new(o, "smtp", json_null());
		json_object_set_new(o, "transcript", json_array());
		json_object_set_new(o, "attempts", json_integer(0));
		return o;
	}

	const emv_probe_result *r = emv_probe_get(in->job, in->index);
	const emv_mx_result *mx = emv_probe_mx(in->job);
	json_t *mxa = json_array(), *tr = json_array();
	if (mx && mx->status == EMV_DNS_OK && !mx->implicit) {
		for (int h = 0; h < mx->nhosts; h++) {
			json_t *m = json_object();
			json_object_set_new(m, "host", json_string(mx->hosts[h].host));
			json_object_set_new(m, "preference", json_integer(mx->hosts[h].preference));
			json_array_append_new(mxa, m);
		}
	}
	json_object_set_new(o, "mx", mxa);
	json_object_set_new(o, "implicit_mx", json_boolean(mx && mx->implicit));
	json_object_set_new(o, "mx_host", str_or_null(r->mx_host));
	json_object_set_new(o, "mx_ip", str_or_null(r->mx_ip));
	json_object_set_new(o, "source_ip", str_or_null(r->source_ip));
	json_object_set_new(o, "tls", str_or_null(r->tls));
	json_object_set_new(o, "catch_all", r->catch_all < 0 ? json_null() : json_boolean(r->catch_all));
	if (r->have_smtp) {
		json_t *s = json_object();
		json_object_set_new(s, "code", json_integer(r->smtp_code));
		json_object_set_new(s, "enhanced", json_string(r->enhanced));
		json_object_set_new(s, "reply", safe_string(r->reply));
		json_object_set_new(o, "smtp", s);
	} else {
		json_object_set_new(o, "smtp", json_null());
	}
	if (r->rule)
		json_object_set_new(o, "rule", json_string(r->rule));
	if (r->connect_timeout)
		json_object_set_new(o, "connect_timeout", json_true());
	for (size_t k = 0; !in->no_transcript && k < emv_probe_exchange_count(in->job); k++) {
		const emv_exchange *e;
		json_t *t;
		if (!emv_probe_exchange_relevant(in->job, in->index, k))
			continue;
		e = emv_probe_exchange(in->job, k);
		t = json_object();
		json_object_set_new(t, "session", json_integer(e->session));
		json_object_set_new(t, "mx", str_or_null(e->mx_ip));
		json_object_set_new(t, "phase", json_string(emv_phase_name(e->phase)));
		json_object_set_new(t, "command", e->command ? safe_string(e->command) : json_null());
		if (e->code) {
			json_object_set_new(t, "code", json_integer(e->code));
			json_object_set_new(t, "enhanced", json_string(e->enhanced));
			json_object_set_new(t, "reply", e->text ? safe_string(e->text) : json_null());
		} else {
			json_object_set_new(t, "code", json_null());
			json_object_set_new(t, "event", e->text ? safe_string(e->text) : json_null());
		}
		json_array_append_new(tr, t);
	}
	if (in->no_transcript)
		json_decref(tr);
	else
		json_object_set_new(o, "transcript", tr);
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	json_object_set_new(o, "duration_ms", json_integer(r->duration_ms));
	return o;
}
