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
						   RD_KAFKA_V_VALUE(v, strlen(v)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
						   RD_KAFKA_V_END),
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_topics_and_round_trip),
	};
	return cmocka_run_group_tests_name("kafka_mock", tests, NULL, NULL);
}
