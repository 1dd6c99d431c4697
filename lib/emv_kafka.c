/* emv_kafka.c - Kafka helpers of the coordinator (see emv_kafka.h). */
#include <stdio.h>
#include "emv_kafka.h"
#include "emv_util.h"

/* Create the topic if it does not exist (other errors are reported). */
int emv_kafka_ensure_topic(rd_kafka_t *rk, const char *topic, int partitions, char *err, size_t errlen)
{
	char errstr[256];
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, errstr, sizeof errstr);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;
	int rc = EMV_OK;

	if (!nt) {
		emv_set_err(err, errlen, "topic %s: %s", topic, errstr);
		rd_kafka_queue_destroy(q);
		return EMV_ERR;
	}
	/* batches may be larger than Kafka's 1 MB default */
	rd_kafka_NewTopic_set_config(nt, "max.message.bytes", "4194304");
	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	ev = rd_kafka_queue_poll(q, 30000);
	if (!ev) {
		emv_set_err(err, errlen, "creating topic %s: no answer from the brokers in 30 s", topic);
		rc = EMV_ERR;
	} else {
		const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
		size_t n = 0;
		const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
		if (rd_kafka_event_error(ev)) {
			emv_set_err(err, errlen, "creating topic %s: %s", topic, rd_kafka_event_error_string(ev));
			rc = EMV_ERR;
		} else if (n == 1 && rd_kafka_topic_result_error(tr[0]) &&
			   rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			emv_set_err(err, errlen, "creating topic %s: %s", topic, rd_kafka_topic_result_error_string(tr[0]));
			rc = EMV_ERR;
		}
		rd_kafka_event_destroy(ev);
	}
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_queue_destroy(q);
	return rc;
}

