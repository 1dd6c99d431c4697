/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_kafka_mock.c - the embedded Kafka (emv_kafka_mock): the standard
 * topics exist with their partitions, emv_kafka_ensure_topic finds them
 * without CreateTopics (which the mock lacks), and an idempotent producer and a consumer group
 * (what the split, workers and sink use) work against it over loopback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "emv_kafka.h"
#include "emv_util.h"

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstraps, const char *group)
{
	char errstr[256];
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", bootstraps, errstr, sizeof errstr), 0);
	if (group) {
		assert_int_equal(rd_kafka_conf_set(c, "group.id", group, errstr, sizeof errstr), 0);
		assert_int_equal(rd_kafka_conf_set(c, "auto.offset.reset", "earliest", errstr, sizeof errstr), 0);
	} else {
		assert_int_equal(rd_kafka_conf_set(c, "enable.idempotence", "true", errstr, sizeof errstr), 0);
	}
	rd_kafka_t *rk = rd_kafka_new(type, c, errstr, sizeof errstr);
	assert_non_null(rk);
	return rk;
}

static void do_test_topics_and_round_trip(void **state)
{
	char err[256];
	emv_kafka_mock *m = emv_kafka_mock_new(1, err, sizeof err);
	const struct rd_kafka_metadata *md;
	rd_kafka_t *p, *c;
	int partitions = 0, got = 0;

	assert_non_null(m);
	assert_non_null(strstr(emv_kafka_mock_bootstraps(m), "127.0.0.1:"));
	p = client(RD_KAFKA_PRODUCER, emv_kafka_mock_bootstraps(m), NULL);
	assert_int_equal(emv_kafka_ensure_topic(p, EMV_TOPIC_BATCHES, 16, err, sizeof err), EMV_OK);
	assert_int_equal(emv_kafka_ensure_topic(p, EMV_TOPIC_RETRY, 16, err, sizeof err), EMV_OK);
	assert_int_equal(rd_kafka_metadata(p, 1, NULL, &md, 5000), 0);
	for (int i = 0; i < md->topic_cnt; i++)
		if (strcmp(md->topics[i].topic, EMV_TOPIC_RESULTS) == 0)
			partitions = md->topics[i].partition_cnt;
	rd_kafka_metadata_destroy(md);
	assert_int_equal(partitions, EMV_TOPIC_PARTITIONS);

	for (int i = 0; i < 10; i++) {
		char v[16];
		snprintf(v, sizeof v, "m%d", i);
		assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(EMV_TOPIC_BATCHES), RD_KAFKA_V_KEY("k", 1),
						   RD_KAFKA_V_VALUE(v, strlen(v)),
						   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
				 0);
	}
	assert_int_equal(rd_kafka_flush(p, 10000), 0);

	c = client(RD_KAFKA_CONSUMER, emv_kafka_mock_bootstraps(m), "g");
	rd_kafka_poll_set_consumer(c);
	{
		rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(t, EMV_TOPIC_BATCHES, RD_KAFKA_PARTITION_UA);
		assert_int_equal(rd_kafka_subscribe(c, t), 0);
		rd_kafka_topic_partition_list_destroy(t);
	}
	for (uint64_t end = emv_now_ms() + 20000; got < 10 && emv_now_ms() < end;) {
		rd_kafka_message_t *msg = rd_kafka_consumer_poll(c, 200);
		if (!msg)
			continue;
		if (!msg->err)
			got++;
		rd_kafka_message_destroy(msg);
	}
	assert_int_equal(got, 10);
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	rd_kafka_destroy(p);
	emv_kafka_mock_free(m);
}

/* A producer to a closed port (127.0.0.1:1) for about a second: librdkafka
 * complains (connection refused).  What reached stderr, NUL-terminated. */
static char *complaints(void)
{
	char errstr[256], *out;
	FILE *tmp = tmpfile();
	int saved = dup(2);
	long n;
	rd_kafka_conf_t *c = emv_kafka_conf_new();
	rd_kafka_t *rk;
	assert_non_null(tmp);
	fflush(stderr);
	dup2(fileno(tmp), 2);
	assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", "127.0.0.1:1", errstr, sizeof errstr), 0);
	assert_int_equal(rd_kafka_conf_set(c, "reconnect.backoff.ms", "100", errstr, sizeof errstr), 0);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof errstr);
	assert_non_null(rk);
	for (int i = 0; i < 12; i++)
		rd_kafka_poll(rk, 100);
	rd_kafka_destroy(rk);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = ftell(tmp);
	out = calloc(1, (size_t)n + 1);
	rewind(tmp);
	assert_int_equal(fread(out, 1, (size_t)n, tmp), (size_t)n);
	fclose(tmp);
	return out;
}

/* librdkafka's own logs (COMMITFAIL, "Connect to ... failed") go through
 * emv_log: not a line on the user's terminal by default, shown with -v. */
static void do_test_library_logs_only_with_verbose(void **state)
{
	emv_log_level saved = emv_log_threshold;
	char *out;
	emv_log_threshold = EMV_LOG_WARN; /* no -v */
	out = complaints();
	if (out[0])
		fail_msg("librdkafka wrote to the terminal without -v: %.300s", out);
	free(out);
	emv_log_threshold = EMV_LOG_INFO; /* -v */
	out = complaints();
	emv_log_threshold = saved;
	if (!strstr(out, " info kafka: ") || !strstr(out, "127.0.0.1:1"))
		fail_msg("with -v librdkafka's complaint should be an info line of emv_log: %.300s", out);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_topics_and_round_trip),
		cmocka_unit_test(do_test_library_logs_only_with_verbose),
	};
	return cmocka_run_group_tests_name("kafka_mock", tests, NULL, NULL);
}
