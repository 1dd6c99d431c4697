/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_world.c - `emailverify check` against the test world, one test per
 * behaviour of tests/world/README.md.  The real binary runs as a child
 * process talking to the real DNS server (unbound) and the SMTP test server
 * (and a real Postfix); each test asserts the verdict and its evidence.
 *
 * Needs the world fixture (ctest starts it).  Paths come from the build:
 * EMV_BIN (the emailverify binary) and EMV_WORLD_DIR (the world's run dir).
 */
#include "harness.h"

/* ---- the behaviours ---- */

static long baseline_rss_kb; /* RSS of a plain successful check, for the bounds below */

static void do_test_accepted_with_tls(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@accept.test", NULL);
	json_t *o = one(&r);
	baseline_rss_kb = r.maxrss_kb;
	assert_verdict(o, "deliverable", "accepted");
	assert_int_equal(smtp_code(o), 250);
	assert_string_equal(sget(o, "mx_host"), "mx1.accept.test");
	assert_string_equal(sget(o, "mx_ip"), "127.0.0.10");
	assert_non_null(sget(o, "tls"));
	assert_true(json_is_false(json_object_get(o, "catch_all")));
	assert_true(transcript_has(o, "rcpt", NULL));
	assert_true(transcript_has(o, "starttls", NULL));
	run_free(&r);
}

static void do_test_user_unknown(void **state)
{
	struct run r;
	run_check(&r, 1, "nobody@accept.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "undeliverable", "mailbox_not_found");
	assert_int_equal(smtp_code(o), 550);
	assert_string_equal(sget(json_object_get(o, "smtp"), "enhanced"), "5.1.1");
	run_free(&r);
}

static void do_test_full_and_disabled(void **state)
{
	struct run r;
	run_check(&r, 1, "full@accept.test", "disabled@accept.test", "bob@accept.test", NULL);
	assert_int_equal(r.n, 3);
	assert_verdict(r.results[0], "risky", "mailbox_full");
	assert_int_equal(smtp_code(r.results[0]), 552);
	assert_verdict(r.results[1], "undeliverable", "mailbox_disabled");
	assert_verdict(r.results[2], "deliverable", "accepted");
	/* one domain, one session: every result was asked once */
	for (int i = 0; i < 3; i++)
		assert_int_equal(json_integer_value(json_object_get(r.results[i], "attempts")), 1);
	run_free(&r);
}

static void do_test_catch_all(void **state)
{
	struct run r;
	run_check(&r, 1, "anyone@catchall.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "risky", "catch_all");
	assert_true(json_is_true(json_object_get(o, "catch_all")));
	assert_true(has_flag(o, "catch_all"));
	run_free(&r);
}

static void do_test_greylist_retried(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@greylist.test", "nobody@greylist.test", NULL);
	assert_int_equal(r.n, 2);
	assert_verdict(r.results[0], "deliverable", "accepted");
	assert_verdict(r.results[1], "undeliverable", "mailbox_not_found");
	assert_true(json_integer_value(json_object_get(r.results[0], "attempts")) >= 2);
	assert_true(transcript_has(r.results[0], "rcpt", "reylist"));
	run_free(&r);
}

static void do_test_greylist_gives_up(void **state)
{
	struct run r;
	/* no time to wait: the verdict stays unknown/greylisted, with the reply */
	run_check(&r, 1, "--max-retry-time", "0", "bob@greylist.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "unknown", "greylisted");
	assert_true(smtp_code(o) / 100 == 4);
	run_free(&r);
}

static void do_test_too_many_recipients(void **state)
{
	struct run r;
	run_check(&r, 1, "u1@toomany.test", "u2@toomany.test", "u3@toomany.test", "u4@toomany.test", "u5@toomany.test",
		  "u6@toomany.test", "u7@toomany.test", "nobody@toomany.test", NULL);
	assert_int_equal(r.n, 8);
	for (int i = 0; i < 7; i++) {
		assert_verdict(r.results[i], "deliverable", "accepted");
		assert_int_equal(json_integer_value(json_object_get(r.results[i], "attempts")), 1);
	}
	assert_verdict(r.results[7], "undeliverable", "mailbox_not_found");
	run_free(&r);
}

static void do_test_blocked_source_ip(void **state)
{
	struct run r;
	run_check(&r, 1, "--source-ip", "127.0.0.3", "alice@blocked.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "unknown", "blocked");
	assert_string_equal(sget(o, "source_ip"), "127.0.0.3");
	run_free(&r);
	run_check(&r, 1, "--source-ip", "127.0.0.4", "alice@blocked.test", NULL);
	o = one(&r);
	assert_verdict(o, "deliverable", "accepted");
	assert_string_equal(sget(o, "source_ip"), "127.0.0.4");
	run_free(&r);
}

static void do_test_slow_server(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@slow.test", NULL);
	assert_verdict(one(&r), "deliverable", "accepted");
	run_free(&r);
}

static void do_test_tarpit_times_out(void **state)
{
	struct run r;
	run_check(&r, 1, "--timeout", "2", "alice@tarpit.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "unknown", "timeout");
	assert_true(r.seconds < 10.0);
	run_free(&r);
}

static void do_test_starttls_required(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@tlsreq.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "deliverable", "accepted");
	assert_non_null(sget(o, "tls"));
	run_free(&r);
}

static void do_test_starttls_broken_falls_back(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@tlsbroken.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "deliverable", "accepted");
	assert_null(sget(o, "tls"));
	assert_non_null(strstr(sget(o, "detail"), "STARTTLS failed"));
	assert_true(transcript_has(o, "starttls", NULL));
	run_free(&r);
}

static void do_test_starttls_abort_falls_back(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@tlsabort.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "deliverable", "accepted");
	assert_null(sget(o, "tls"));
	assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 2);
	run_free(&r);
}

static void do_test_blocked_at_banner(void **state)
{
	struct run r;
	run_check(&r, 1, "--source-ip", "127.0.0.3", "alice@bannerblock.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "unknown", "blocked");
	assert_int_equal(smtp_code(o), 554);
	assert_true(transcript_has(o, "banner", "spamhaus"));
	run_free(&r);
}

static void do_test_smtputf8_local_part(void **state)
{
	struct run r;
	/* accept.test advertises SMTPUTF8: the UTF-8 mailbox is asked and accepted */
	run_check(&r, 1, "j\xc3\xb6rg@accept.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "deliverable", "accepted");
	assert_true(has_flag(o, "smtputf8"));
	run_free(&r);
	/* multiline.test does not: the address cannot be asked there */
	run_check(&r, 1, "j\xc3\xb6rg@multiline.test", NULL);
	o = one(&r);
	assert_string_equal(sget(o, "status"), "unknown");
	assert_non_null(strstr(sget(o, "detail"), "SMTPUTF8"));
	run_free(&r);
}

static void do_test_multiline(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@multiline.test", "nobody@multiline.test", NULL);
	assert_int_equal(r.n, 2);
	assert_verdict(r.results[0], "deliverable", "accepted");
	run_free(&r);
}

static void do_test_drop_mid_reply(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@drop.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "unknown", "protocol_error");
	assert_non_null(strstr(sget(o, "detail"), "closed"));
	run_free(&r);
}

static void do_test_endless_line_bounded(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@endless.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "unknown", "protocol_error");
	assert_non_null(strstr(sget(o, "detail"), "longer than"));
	print_message("endless line: max RSS %ld KiB (baseline %ld), %.2f s\n", r.maxrss_kb, baseline_rss_kb,
		      r.seconds);
	/* the 10 MB line is refused after line_max bytes: memory stays flat */
	assert_true(r.maxrss_kb < baseline_rss_kb + 4096);
	run_free(&r);
}

static void do_test_huge_reply_bounded(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@huge.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "unknown", "protocol_error");
	print_message("10 MB reply: max RSS %ld KiB (baseline %ld), %.2f s\n", r.maxrss_kb, baseline_rss_kb, r.seconds);
	assert_non_null(strstr(sget(o, "detail"), "exceeds")); /* the line or byte bound */
	assert_true(r.maxrss_kb < baseline_rss_kb + 4096);
	run_free(&r);
}

static void do_test_implicit_mx(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@nomx.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "deliverable", "accepted");
	assert_true(json_is_true(json_object_get(o, "implicit_mx")));
	run_free(&r);
}

static void do_test_dns_outcomes(void **state)
{
	struct run r;
	run_check(&r, 1, "x@nullmx.test", "x@nodata.test", "x@servfail.test", "x@doesnotexist.test", NULL);
	assert_int_equal(r.n, 4);
	assert_verdict(r.results[0], "undeliverable", "null_mx");
	assert_verdict(r.results[1], "undeliverable", "no_mail_server");
	assert_verdict(r.results[2], "unknown", "dns_failed");
	assert_verdict(r.results[3], "undeliverable", "no_domain");
	run_free(&r);
}

static void do_test_dns_timeout(void **state)
{
	struct run r;
	/* a DNS server that never answers: unknown, in bounded time */
	run_check(&r, 0, "--json", "--dns", "127.0.0.1:5399", "--allow-private-mx", "x@accept.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "unknown", "dns_failed");
	assert_true(r.seconds < 15.0);
	run_free(&r);
}

static void do_test_mx_fallback(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@fallback.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "deliverable", "accepted");
	assert_string_equal(sget(o, "mx_host"), "mx2.fallback.test");
	assert_true(transcript_has(o, "connect", "127.0.0.24"));
	run_free(&r);
}

static void do_test_helo_fallback(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@oldsmtp.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "deliverable", "accepted");
	assert_true(transcript_has(o, "helo", NULL));
	run_free(&r);
}

static void do_test_busy_banner(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@busy.test", NULL);
	json_t *o = one(&r);
	assert_string_equal(sget(o, "status"), "unknown");
	assert_int_equal(smtp_code(o), 421);
	run_free(&r);
}

static void do_test_sender_rejected(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@senderreject.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "unknown", "policy_rejected");
	assert_int_equal(smtp_code(o), 550);
	run_free(&r);
}

static void do_test_ipv6_mx(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@v6only.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "deliverable", "accepted");
	assert_string_equal(sget(o, "mx_ip"), "::1");
	run_free(&r);
}

static void do_test_private_mx_refused(void **state)
{
	struct run r;
	/* without --allow-private-mx a loopback MX is never contacted */
	run_check(&r, 0, "--json", "--dns", "127.0.0.1:5300", "--smtp-port", "2525", "alice@accept.test", NULL);
	json_t *o = one(&r);
	assert_verdict(o, "unknown", "private_mx");
	assert_false(transcript_has(o, "banner", NULL));
	run_free(&r);
}

static void do_test_syntax_and_suggestion(void **state)
{
	struct run r;
	run_check(&r, 1, "a@@b.test", "alice@gmial.com", "Alice@Accept.TEST", "alice@accept.test", NULL);
	assert_exit(&r, 0);
	assert_int_equal(r.n, 4);
	assert_verdict(r.results[0], "undeliverable", "invalid_syntax");
	assert_non_null(sget(r.results[0], "detail"));
	assert_string_equal(sget(r.results[1], "did_you_mean"), "alice@gmail.com");
	/* domain case folds; the local part is kept as given */
	assert_string_equal(sget(r.results[2], "email"), "Alice@accept.test");
	assert_verdict(r.results[3], "deliverable", "accepted");
	run_free(&r);
}

static void do_test_usage_errors(void **state)
{
	struct run r;
	run_check(&r, 0, NULL);
	assert_exit(&r, 2);
	run_free(&r);
	run_check(&r, 0, "--timeout", "soon", "a@b.test", NULL);
	assert_exit(&r, 2);
	run_free(&r);
	run_check(&r, 0, "--source-ip", "not-an-ip", "a@b.test", NULL);
	assert_int_not_equal(r.exit_code, 0);
	run_free(&r);
}

static void do_test_postfix_interop(void **state)
{
	struct run r;
	run_check(&r, 1, "alice@postfix.test", "nobody@postfix.test", "disabled@postfix.test", NULL);
	assert_int_equal(r.n, 3);
	assert_verdict(r.results[0], "deliverable", "accepted");
	assert_non_null(sget(r.results[0], "tls"));
	assert_verdict(r.results[1], "undeliverable", "mailbox_not_found");
	assert_string_equal(sget(json_object_get(r.results[1], "smtp"), "enhanced"), "5.1.1");
	assert_verdict(r.results[2], "undeliverable", "mailbox_disabled");
	run_free(&r);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest all[] = {
		cmocka_unit_test(do_test_accepted_with_tls),
		cmocka_unit_test(do_test_user_unknown),
		cmocka_unit_test(do_test_full_and_disabled),
		cmocka_unit_test(do_test_catch_all),
		cmocka_unit_test(do_test_greylist_retried),
		cmocka_unit_test(do_test_greylist_gives_up),
		cmocka_unit_test(do_test_too_many_recipients),
		cmocka_unit_test(do_test_blocked_source_ip),
		cmocka_unit_test(do_test_slow_server),
		cmocka_unit_test(do_test_tarpit_times_out),
		cmocka_unit_test(do_test_starttls_required),
		cmocka_unit_test(do_test_starttls_broken_falls_back),
		cmocka_unit_test(do_test_starttls_abort_falls_back),
		cmocka_unit_test(do_test_blocked_at_banner),
		cmocka_unit_test(do_test_smtputf8_local_part),
		cmocka_unit_test(do_test_multiline),
		cmocka_unit_test(do_test_drop_mid_reply),
		cmocka_unit_test(do_test_endless_line_bounded),
		cmocka_unit_test(do_test_huge_reply_bounded),
		cmocka_unit_test(do_test_implicit_mx),
		cmocka_unit_test(do_test_dns_outcomes),
		cmocka_unit_test(do_test_dns_timeout),
		cmocka_unit_test(do_test_mx_fallback),
		cmocka_unit_test(do_test_helo_fallback),
		cmocka_unit_test(do_test_busy_banner),
		cmocka_unit_test(do_test_sender_rejected),
		cmocka_unit_test(do_test_ipv6_mx),
		cmocka_unit_test(do_test_private_mx_refused),
		cmocka_unit_test(do_test_syntax_and_suggestion),
		cmocka_unit_test(do_test_usage_errors),
	};
	const struct CMUnitTest postfix[] = {
		cmocka_unit_test(do_test_postfix_interop),
	};
	if (argc > 1 && strcmp(argv[1], "postfix") == 0)
		return cmocka_run_group_tests_name("check_postfix", postfix, NULL, NULL);
	return cmocka_run_group_tests_name("check_world", all, NULL, NULL);
}
