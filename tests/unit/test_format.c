/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_format.c - the result formatter (lib/emv_format.h): CSV quoting and
 * formula neutralising, JSON escaping, and that a row's CSV columns and
 * JSON Lines keys say the same thing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "emv_format.h"
#include "emv_result.h"

static emv_format_row sample(void)
{
	emv_format_row r;
	memset(&r, 0, sizeof r);
	r.email = "alice@accept.test";
	r.status = "deliverable";
	r.reason = "accepted";
	r.flags = EMV_FLAG_FREE | EMV_FLAG_ROLE;
	r.detail = "the mail server accepted the recipient";
	r.mx_host = "mx1.accept.test";
	r.mx_ip = "127.0.0.10";
	r.source_ip = "127.0.0.1";
	r.tls = "TLSv1.3";
	r.catch_all = 0;
	r.have_smtp = 1;
	r.smtp_code = 250;
	r.enhanced = "2.1.5";
	r.reply = "2.1.5 Ok, \"fine\"";
	r.attempts = 1;
	r.duration_ms = 12;
	r.row = 3;
	r.input = "=HYPERLINK(\"http://x\"),Alice";
	return r;
}

static void test_csv_quoting_and_formulas(void **state)
{
	emv_buf b = { NULL, 0, 0 };
	(void)state;
	emv_format_csv_cell(&b, "plain", 0, 0);
	emv_format_csv_cell(&b, "a,b", 0, 0);
	emv_format_csv_cell(&b, "say \"hi\"", 0, 0);
	emv_format_csv_cell(&b, "=1+1", 0, 0);
	emv_format_csv_cell(&b, "-2", 0, 1); /* kept */
	emv_format_csv_cell(&b, NULL, 1, 0);
	assert_string_equal(b.p, "plain,\"a,b\",\"say \"\"hi\"\"\",\"'=1+1\",-2,\n");
	free(b.p);
}

static void test_json_escaping(void **state)
{
	emv_buf b = { NULL, 0, 0 };
	(void)state;
	emv_format_json_str(&b, "q\"b\\n\n t\t c\x01 \xc3\xa9 bad\xff end", 0);
	emv_format_json_str(&b, "", 1);
	emv_format_json_str(&b, NULL, 0);
	assert_string_equal(b.p, "\"q\\\"b\\\\n\\n t\\t c\\u0001 \xc3\xa9 bad? end\"nullnull");
	free(b.p);
}

static void test_csv_row_and_header(void **state)
{
	emv_format_row r = sample();
	emv_buf b = { NULL, 0, 0 };
	(void)state;
	emv_format_csv_header(&b);
	emv_format_csv_row(&b, &r, 0);
	/* a role address the server accepted: risky under the default policy
	 * (marketing), deliverable and safe under transactional */
	r.policy = emv_policy_preset("transactional");
	r.cached = 1; /* and answered from the verdict cache */
	r.verified_at = 1796659200;
	emv_format_csv_row(&b, &r, 0);
	assert_string_equal(b.p,
			    "email,status,reason,safe_to_send,flags,did_you_mean,detail,mx_host,mx_ip,source_ip,tls,"
			    "catch_all,smtp_code,enhanced_code,smtp_reply,attempts,duration_ms,cached,verified_at,policy,"
			    "duplicate_of_row,"
			    "row,input\n"
			    "alice@accept.test,risky,role,false,free;role,,the mail server accepted the recipient,"
			    "mx1.accept.test,127.0.0.10,127.0.0.1,TLSv1.3,false,250,2.1.5,\"2.1.5 Ok, \"\"fine\"\"\","
			    "1,12,false,,marketing,,3,\"'=HYPERLINK(\"\"http://x\"\"),Alice\"\n"
			    "alice@accept.test,deliverable,accepted,true,free;role,,the mail server accepted the recipient,"
			    "mx1.accept.test,127.0.0.10,127.0.0.1,TLSv1.3,false,250,2.1.5,\"2.1.5 Ok, \"\"fine\"\"\","
			    "1,12,true,2026-12-07T16:00:00Z,transactional,,3,\"'=HYPERLINK(\"\"http://x\"\"),Alice\"\n");
	free(b.p);
}

/* Every CSV column is a JSON Lines key (smtp_* inside "smtp") with the same
 * value, and JSON Lines has only region besides. */
static void test_jsonl_has_the_csv_columns(void **state)
{
	emv_format_row r = sample();
	emv_buf b = { NULL, 0, 0 };
	json_t *o;
	const char *key;
	json_t *v;
	(void)state;
	r.duplicate_of_row = 1;
	r.cached = 1;
	r.verified_at = 1796659200;
	emv_format_jsonl_row(&b, &r, NULL);
	assert_int_equal(b.p[b.len - 1], '\n');
	o = json_loads(b.p, 0, NULL);
	assert_non_null(o);
	for (int i = 0; i < EMV_FORMAT_NCOLUMNS; i++) {
		const char *c = emv_format_columns[i];
		if (strcmp(c, "smtp_code") == 0 || strcmp(c, "enhanced_code") == 0 || strcmp(c, "smtp_reply") == 0)
			continue;
		if (!json_object_get(o, c))
			fail_msg("CSV column %s is not a JSON Lines key: %s", c, b.p);
	}
	json_object_foreach (o, key, v) {
		int found = strcmp(key, "region") == 0 || strcmp(key, "smtp") == 0;
		for (int i = 0; i < EMV_FORMAT_NCOLUMNS && !found; i++)
			found = strcmp(key, emv_format_columns[i]) == 0;
		if (!found)
			fail_msg("JSON Lines key %s is no CSV column", key);
	}
	assert_string_equal(json_string_value(json_object_get(o, "input")), r.input); /* JSON: as it is */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "smtp"), "code")), 250);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "flags"), 1)), "role");
	assert_int_equal(json_integer_value(json_object_get(o, "duplicate_of_row")), 1);
	assert_true(json_is_null(json_object_get(o, "region")));
	assert_true(json_is_null(json_object_get(o, "did_you_mean")));
	assert_true(json_is_false(json_object_get(o, "catch_all")));
	assert_true(json_is_true(json_object_get(o, "cached")));
	assert_string_equal(json_string_value(json_object_get(o, "verified_at")), "2026-12-07T16:00:00Z");
	/* the default policy's mapping of the engine's deliverable role address */
	assert_string_equal(json_string_value(json_object_get(o, "status")), "risky");
	assert_string_equal(json_string_value(json_object_get(o, "reason")), "role");
	assert_true(json_is_false(json_object_get(o, "safe_to_send")));
	assert_string_equal(json_string_value(json_object_get(o, "policy")), "marketing");
	json_decref(o);
	free(b.p);

	/* nothing known: nulls, never a missing key */
	memset(&r, 0, sizeof r);
	r.catch_all = -1;
	b.p = NULL;
	b.len = b.cap = 0;
	emv_format_jsonl_row(&b, &r, "\"transcript\":[]");
	assert_string_equal(b.p, "{\"email\":\"\",\"status\":null,\"reason\":null,\"safe_to_send\":false,"
				 "\"flags\":[],\"did_you_mean\":null,"
				 "\"detail\":\"\",\"mx_host\":null,\"mx_ip\":null,\"source_ip\":null,\"region\":null,"
				 "\"tls\":null,\"catch_all\":null,\"smtp\":null,\"attempts\":0,\"duration_ms\":0,"
				 "\"cached\":false,\"verified_at\":null,"
				 "\"policy\":\"marketing\",\"duplicate_of_row\":null,\"row\":0,\"input\":\"\","
				 "\"transcript\":[]}\n");
	free(b.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_quoting_and_formulas),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_csv_row_and_header),
		cmocka_unit_test(test_jsonl_has_the_csv_columns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
