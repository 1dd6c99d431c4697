/*
 * emv_kafka.h - Kafka helpers of the coordinator, which owns the topics:
 * they are created through librdkafka's Admin API with their partition
 * counts and a message size limit that fits our largest messages.
 */
#ifndef EMV_KAFKA_H
#define EMV_KAFKA_H

#include <stddef.h>
#include <librdkafka/rdkafka.h>

/* Create `topic` unless it exists (any handle: producer or consumer). */
int emv_kafka_ensure_topic(rd_kafka_t *rk, const char *topic, int partitions, char *err, size_t errlen);

#endif
