#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Kafka's bin/kafka-topics.sh for the stand-in image (the kafka-init service
# of deploy/compose.yaml): a small JVM, C1 only.
exec java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:-UsePerfData \
	-Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
	-cp '/opt/kafka/libs/*' org.apache.kafka.tools.TopicCommand "$@"
