/* SPDX-License-Identifier: Apache-2.0 */
/* emv_format.c - result rows as CSV and JSON Lines (see emv_format.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "emv_format.h"
#include "emv_result.h"
#include "emv_utf8.h"

const char *const emv_format_columns[EMV_FORMAT_NCOLUMNS] = {
	"email",
	"status",
	"reason",
	"safe_to_send",
	"flags",
	"did_you_mean",
	"detail",
	"mx_host",
	"mx_ip",
	"source_ip",
	"tls",
	"catch_all",
	"smtp_code",
	"enhanced_code",
	"smtp_reply",
	"attempts",
	"duration_ms",
	"cached",
	"verified_at",
	"policy",
	"duplicate_of_row",
	"row",
	"input",
};

static void puts_(emv_buf *b, const char *s)
{
	emv_buf_add(b, s, strlen(s));
}

void emv_format_time(char *out, size_t outlen, int64_t unix_s)
{
	time_t t = (time_t)unix_s;
	struct tm tm;
	if (!outlen)
		return;
	out[0] = '\0';
	if (unix_s > 0 && gmtime_r(&t, &tm))
		strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int emv_format_verdict(const emv_format_row *r, const char **status, const char **reason)
{
	int st = r->status ? emv_status_from_name(r->status) : -1;
	int re = r->reason ? emv_reason_from_name(r->reason) : -1;
	emv_status s;
	emv_reason e;
	int safe;

	*status = r->status;
	*reason = r->reason;
	if (st < 0 || re < 0)
		return 0;
	s = (emv_status)st;
	e = (emv_reason)re;
	safe = emv_policy_apply(r->policy, &s, &e, r->flags);
	*status = emv_status_name(s);
	*reason = emv_reason_name(e);
	return safe;
}

/* ---- CSV ---- */

void emv_format_csv_cell(emv_buf *b, const char *s, int last, int keep_formulas)
{
	int formula;
	if (!s)
		s = "";
	formula = !keep_formulas && emv_csv_is_formula(s);
	if (formula || s[strcspn(s, ",\"\r\n")]) {
		emv_buf_add(b, formula ? "\"'" : "\"", formula ? 2 : 1);
		for (const char *q; (q = strchr(s, '"')); s = q + 1) {
			emv_buf_add(b, s, (size_t)(q - s) + 1);
			emv_buf_add(b, "\"", 1);
		}
		puts_(b, s);
		emv_buf_add(b, "\"", 1);
	} else {
		puts_(b, s);
	}
	emv_buf_add(b, last ? "\n" : ",", 1);
}

void emv_format_csv_header(emv_buf *b)
{
	for (int i = 0; i < EMV_FORMAT_NCOLUMNS; i++)
		emv_format_csv_cell(b, emv_format_columns[i], i + 1 == EMV_FORMAT_NCOLUMNS, 1);
}

/* "free;role" */
static void flag_list(char *out, size_t outlen, unsigned flags)
{
	const char *names[32];
	size_t n = emv_flag_names(flags, names, 32), len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(out + len, outlen - len, "%s%s", i ? ";" : "", names[i]);
		if (k < 0 || (size_t)k >= outlen - len)
			break;
		len += (size_t)k;
	}
}

void emv_format_csv_row(emv_buf *b, const emv_format_row *r, int keep_formulas)
{
	char flags[256], code[16] = "", att[32], dur[32], dup[32] = "", row[32], at[32];
	const char *status, *reason;
	int safe = emv_format_verdict(r, &status, &reason);

	flag_list(flags, sizeof flags, r->flags);
	if (r->have_smtp)
		snprintf(code, sizeof code, "%d", r->smtp_code);
	snprintf(att, sizeof att, "%lld", r->attempts);
	snprintf(dur, sizeof dur, "%lld", r->duration_ms);
	if (r->duplicate_of_row)
		snprintf(dup, sizeof dup, "%" PRIu64, r->duplicate_of_row);
	snprintf(row, sizeof row, "%" PRIu64, r->row);
	emv_format_time(at, sizeof at, r->verified_at);

	emv_format_csv_cell(b, r->email, 0, keep_formulas);
	emv_format_csv_cell(b, status, 0, keep_formulas);
	emv_format_csv_cell(b, reason, 0, keep_formulas);
	emv_format_csv_cell(b, safe ? "true" : "false", 0, keep_formulas);
	emv_format_csv_cell(b, flags, 0, keep_formulas);
	emv_format_csv_cell(b, r->did_you_mean, 0, keep_formulas);
	emv_format_csv_cell(b, r->detail, 0, keep_formulas);
	emv_format_csv_cell(b, r->mx_host, 0, keep_formulas);
	emv_format_csv_cell(b, r->mx_ip, 0, keep_formulas);
	emv_format_csv_cell(b, r->source_ip, 0, keep_formulas);
	emv_format_csv_cell(b, r->tls, 0, keep_formulas);
	emv_format_csv_cell(b, r->catch_all < 0 ? "" : r->catch_all ? "true" : "false", 0, keep_formulas);
	emv_format_csv_cell(b, code, 0, keep_formulas);
	emv_format_csv_cell(b, r->have_smtp ? r->enhanced : "", 0, keep_formulas);
	emv_format_csv_cell(b, r->have_smtp ? r->reply : "", 0, keep_formulas);
	emv_format_csv_cell(b, att, 0, keep_formulas);
	emv_format_csv_cell(b, dur, 0, keep_formulas);
	emv_format_csv_cell(b, r->cached ? "true" : "false", 0, keep_formulas);
	emv_format_csv_cell(b, at, 0, keep_formulas);
	emv_format_csv_cell(b, emv_policy_name(r->policy), 0, keep_formulas);
	emv_format_csv_cell(b, dup, 0, keep_formulas);
	emv_format_csv_cell(b, row, 0, keep_formulas);
	emv_format_csv_cell(b, r->input, 1, keep_formulas);
}

/* ---- JSON ---- */

void emv_format_json_str(emv_buf *b, const char *s, int null_if_empty)
{
	if (!s || (null_if_empty && !*s)) {
		puts_(b, "null");
		return;
	}
	emv_buf_add(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t run = 0, n;
		while (p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
			run++;
		if (run) {
			emv_buf_add(b, (const char *)p, run);
			p += run;
			continue;
		}
		if (*p == '"' || *p == '\\') {
			char e[2] = { '\\', (char)*p };
			emv_buf_add(b, e, 2);
			p++;
		} else if (*p < 0x20) {
			static const char short_[] = "btn\0fr"; /* \b \t \n, \f \r */
			char e[8];
			if (*p >= '\b' && *p <= '\r' && short_[*p - '\b'])
				snprintf(e, sizeof e, "\\%c", short_[*p - '\b']);
			else
				snprintf(e, sizeof e, "\\u%04x", *p);
			puts_(b, e);
			p++;
		} else if ((n = emv_utf8_len(p, 4)) > 0) { /* stops at the NUL */
			emv_buf_add(b, (const char *)p, n);
			p += n;
		} else {
			emv_buf_add(b, "?", 1);
			p++;
		}
	}
	emv_buf_add(b, "\"", 1);
}

static void key(emv_buf *b, const char *k, int first)
{
	if (!first)
		emv_buf_add(b, ",", 1);
	emv_buf_add(b, "\"", 1);
	puts_(b, k);
	emv_buf_add(b, "\":", 2);
}

static void num(emv_buf *b, long long v)
{
	char n[32];
	snprintf(n, sizeof n, "%lld", v);
	puts_(b, n);
}

void emv_format_jsonl_row(emv_buf *b, const emv_format_row *r, const char *extra)
{
	const char *names[32], *status, *reason;
	char at[32];
	size_t nf = emv_flag_names(r->flags, names, 32);
	int safe = emv_format_verdict(r, &status, &reason);

	emv_buf_add(b, "{", 1);
	key(b, "email", 1);
	emv_format_json_str(b, r->email ? r->email : "", 0);
	key(b, "status", 0);
	emv_format_json_str(b, status, 0);
	key(b, "reason", 0);
	emv_format_json_str(b, reason, 0);
	key(b, "safe_to_send", 0);
	puts_(b, safe ? "true" : "false");
	key(b, "flags", 0);
	emv_buf_add(b, "[", 1);
	for (size_t i = 0; i < nf; i++) {
		if (i)
			emv_buf_add(b, ",", 1);
		emv_format_json_str(b, names[i], 0);
	}
	emv_buf_add(b, "]", 1);
	key(b, "did_you_mean", 0);
	emv_format_json_str(b, r->did_you_mean, 1);
	key(b, "detail", 0);
	emv_format_json_str(b, r->detail ? r->detail : "", 0);
	key(b, "mx_host", 0);
	emv_format_json_str(b, r->mx_host, 1);
	key(b, "mx_ip", 0);
	emv_format_json_str(b, r->mx_ip, 1);
	key(b, "source_ip", 0);
	emv_format_json_str(b, r->source_ip, 1);
	key(b, "region", 0);
	emv_format_json_str(b, r->region, 1);
	key(b, "tls", 0);
	emv_format_json_str(b, r->tls, 1);
	key(b, "catch_all", 0);
	puts_(b, r->catch_all < 0 ? "null" : r->catch_all ? "true" : "false");
	key(b, "smtp", 0);
	if (r->have_smtp) {
		puts_(b, "{\"code\":");
		num(b, r->smtp_code);
		puts_(b, ",\"enhanced\":");
		emv_format_json_str(b, r->enhanced, 1);
		puts_(b, ",\"reply\":");
		emv_format_json_str(b, r->reply, 1);
		emv_buf_add(b, "}", 1);
	} else {
		puts_(b, "null");
	}
	key(b, "attempts", 0);
	num(b, r->attempts);
	key(b, "duration_ms", 0);
	num(b, r->duration_ms);
	key(b, "cached", 0);
	puts_(b, r->cached ? "true" : "false");
	key(b, "verified_at", 0);
	emv_format_time(at, sizeof at, r->verified_at);
	emv_format_json_str(b, at, 1);
	key(b, "policy", 0);
	emv_format_json_str(b, emv_policy_name(r->policy), 0);
	key(b, "duplicate_of_row", 0);
	if (r->duplicate_of_row)
		num(b, (long long)r->duplicate_of_row);
	else
		puts_(b, "null");
	key(b, "row", 0);
	num(b, (long long)r->row);
	key(b, "input", 0);
	emv_format_json_str(b, r->input ? r->input : "", 0);
	if (extra && *extra) {
		emv_buf_add(b, ",", 1);
		puts_(b, extra);
	}
	emv_buf_add(b, "}\n", 2);
}
