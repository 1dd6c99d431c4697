/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_defaults.c - one home for defaults (lib/emv_defaults.h): the
 * provider file's [default] (data/providers.conf and its Kubernetes copy)
 * says what the table says, every *_default() function that repeats a
 * number takes the table's, the retry options change the one retry policy,
 * and the Kafka names come from emv_kafka.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "emv_api.h"
#include "emv_defaults.h"
#include "emv_kafka.h"
#include "emv_providers.h"
#include "emv_retry.h"
#include "emv_router.h"
#include "emv_session.h"
#include "emv_setup.h"
#include "emv_sink.h"
#include "emv_split.h"
#include "emv_webhook.h"
#include "emv_worker.h"

static void check_file_default(const char *path)
{
	char err[512];
	emv_providers *p = emv_providers_load(path, err, sizeof err);
	const emv_provider *d;

	if (!p)
		fail_msg("%s: %s", path, err);
	d = emv_providers_get(p, "default");
	assert_non_null(d);
	print_message("%s: [default] against lib/emv_defaults.h\n", path);
	assert_int_equal(d->pipelining, EMV_DEF_PIPELINING);
	assert_int_equal(d->rcpt_per_txn, EMV_DEF_RCPT_PER_TXN);
	assert_int_equal(d->rcpt_per_session, EMV_DEF_RCPT_PER_SESSION);
	assert_int_equal(d->errors_per_session, EMV_DEF_ERRORS_PER_SESSION);
	assert_int_equal(d->sessions_per_mx, EMV_DEF_SESSIONS_PER_MX);
	assert_int_equal(d->sessions_per_ip, EMV_DEF_SESSIONS_PER_IP);
	assert_int_equal(d->rcpt_per_minute, EMV_DEF_RCPT_PER_MINUTE);
	assert_int_equal(d->rcpt_per_hour, EMV_DEF_RCPT_PER_HOUR);
	assert_int_equal(d->rcpt_per_day, EMV_DEF_RCPT_PER_DAY);
	assert_int_equal(d->catch_all_probe, EMV_DEF_CATCH_ALL_PROBE);
	assert_int_equal(d->accepts_all, EMV_DEF_ACCEPTS_ALL);
	assert_int_equal(d->connect_timeout_ms, EMV_DEF_CONNECT_TIMEOUT_MS);
	assert_int_equal(d->reply_timeout_ms, EMV_DEF_REPLY_TIMEOUT_MS);
	assert_int_equal(d->greylist_wait_ms, EMV_DEF_POLICY_GREYLIST_WAIT_MS);
	assert_int_equal(d->tls, EMV_PROVIDER_TLS_OPPORTUNISTIC);
	assert_int_equal(d->budget_scope, EMV_PROVIDER_SCOPE_MX);
	emv_providers_free(p);
}

static void do_test_provider_file_default_is_the_table(void **state)
{
	emv_provider b;

	check_file_default(EMV_SOURCE_DATA_DIR "/providers.conf");
	/* the ConfigMap's copy (tests/deploy/k8s-check.sh also compares the bytes) */
	check_file_default(EMV_SOURCE_DATA_DIR "/../deploy/k8s/config/providers.conf");
	/* and without any file */
	emv_provider_defaults(&b);
	assert_int_equal(b.rcpt_per_txn, EMV_DEF_RCPT_PER_TXN);
	assert_int_equal(b.connect_timeout_ms, EMV_DEF_CONNECT_TIMEOUT_MS);
}

/* The session once said 50 recipients and 10 s to connect where the policy
 * said 20 and 15 s: `check` (which asks without a policy) and the engine
 * must start from the same numbers. */
static void do_test_session_agrees_with_policy(void **state)
{
	emv_session_params s;
	emv_provider d;

	emv_session_params_default(&s);
	emv_provider_defaults(&d);
	assert_int_equal(s.rcpt_per_txn, d.rcpt_per_txn);
	assert_int_equal(s.max_errors, d.errors_per_session);
	assert_int_equal(s.pipelining, d.pipelining);
	assert_int_equal(s.timeout_connect, d.connect_timeout_ms);
	assert_int_equal(s.timeout_banner, d.reply_timeout_ms);
	assert_int_equal(s.timeout_ehlo, d.reply_timeout_ms);
	assert_int_equal(s.timeout_mail, d.reply_timeout_ms);
	assert_int_equal(s.timeout_rcpt, d.reply_timeout_ms);
	assert_int_equal(s.port, EMV_DEF_SMTP_PORT);
}

/* The numbers written twice before: the API's and the webhooks', the API's
 * and the split's batch size, the split's re-split hold and the workers'
 * first retry wait. */
static void do_test_duplicates_agree(void **state)
{
	emv_api_params a;
	emv_webhook_params w;
	emv_split_params sp;
	emv_retry_policy r;

	emv_api_params_default(&a);
	emv_webhook_params_default(&w);
	emv_split_params_default(&sp);
	emv_retry_policy_default(&r);
	assert_int_equal(a.webhook_progress, w.progress_step);
	assert_int_equal(a.webhook_attempts, w.max_attempts);
	assert_int_equal(a.webhook_backoff_ms, w.backoff_ms);
	assert_int_equal(a.webhook_timeout_s, w.timeout_s);
	assert_int_equal(a.batch_max, sp.batch_max);
	assert_int_equal(sp.retry_delay_ms, r.topic_delay_ms[0]);
}

static void do_test_retry_policy_defaults(void **state)
{
	emv_retry_policy r;

	emv_retry_policy_default(&r);
	assert_int_equal(r.max_attempts, 4);
	assert_int_equal(r.schedule_ms[0], 60000);
	assert_int_equal(r.schedule_ms[1], 300000);
	assert_int_equal(r.schedule_ms[2], 900000);
	assert_int_equal(r.window_ms, 1800000);
	assert_int_equal(r.greylist_rounds, 2);
	assert_int_equal(r.greylist_wait_ms, 60000);
	assert_int_equal(r.greylist_max_wait_ms, 300000);
	assert_int_equal(r.greylist_window_ms, 120000);
	assert_int_equal(r.topic_attempts, 3);
	assert_int_equal(r.topic_delay_ms[0], 600000);
	assert_int_equal(r.topic_delay_ms[1], 1800000);
	assert_int_equal(r.topic_delay_ms[2], 3600000);
	assert_int_equal(r.worker_window_ms, 300000);
}

/* The engine options carry the one policy; --greylist-wait and
 * --max-retry-time change it, and the engine and probe get it. */
static void do_test_retry_options_change_the_policy(void **state)
{
	emv_setup_opts o;
	emv_engine_params ep;
	emv_retry_policy r;

	emv_setup_opts_default(&o);
	emv_retry_policy_default(&r);
	assert_memory_equal(&o.retry, &r, sizeof r);

	assert_int_equal(emv_setup_opt(&o, 1011, "7"), 1);
	assert_int_equal(o.retry.greylist_wait_ms, 7000);
	assert_int_equal(emv_setup_opt(&o, 1012, "45"), 1);
	assert_int_equal(o.retry.greylist_window_ms, 45000);
	assert_int_equal(o.retry.window_ms, 45000);
	assert_int_equal(o.retry.worker_window_ms, 45000);
	assert_int_equal(emv_setup_opt(&o, 1012, "x"), -1);
	assert_int_equal(o.retry.window_ms, 45000);

	emv_engine_params_default(&ep);
	assert_int_equal(ep.retry.window_ms, r.window_ms);
	emv_setup_params_apply(&o, &ep);
	assert_int_equal(ep.retry.window_ms, 45000);
	assert_int_equal(ep.retry.greylist_wait_ms, 7000);
}

/* Topic and group names: the header's, in every module's defaults. */
static void do_test_kafka_names(void **state)
{
	emv_split_params sp;
	emv_sink_params kp;
	emv_router_params rp;
	emv_worker_opts wo;

	emv_split_params_default(&sp);
	emv_sink_params_default(&kp);
	emv_router_params_default(&rp);
	emv_worker_opts_default(&wo);
	assert_string_equal(sp.topic, EMV_TOPIC_BATCHES);
	assert_string_equal(sp.retry_topic, EMV_TOPIC_RETRY);
	assert_string_equal(sp.results_topic, EMV_TOPIC_RESULTS);
	assert_int_equal(sp.partitions, EMV_TOPIC_PARTITIONS);
	assert_string_equal(kp.topic, EMV_TOPIC_RESULTS);
	assert_string_equal(kp.group, EMV_GROUP_SINK);
	assert_string_equal(rp.group, EMV_GROUP_ROUTER);
	assert_string_equal(rp.batches_topic, EMV_TOPIC_BATCHES);
	assert_string_equal(rp.retry_topic, EMV_TOPIC_RETRY);
	assert_string_equal(rp.reroute_topic, EMV_TOPIC_REROUTE);
	assert_string_equal(rp.ipstate_topic, EMV_TOPIC_IP_STATE);
	assert_string_equal(wo.group, EMV_GROUP_WORKERS);
	assert_string_equal(wo.batches_topic, EMV_TOPIC_BATCHES);
	assert_string_equal(wo.results_topic, EMV_TOPIC_RESULTS);
	assert_string_equal(wo.retry_topic, EMV_TOPIC_RETRY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_provider_file_default_is_the_table),
		cmocka_unit_test(do_test_session_agrees_with_policy),
		cmocka_unit_test(do_test_duplicates_agree),
		cmocka_unit_test(do_test_retry_policy_defaults),
		cmocka_unit_test(do_test_retry_options_change_the_policy),
		cmocka_unit_test(do_test_kafka_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
