#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Kafka's bin/kafka-broker-api-versions.sh for the stand-in image (the
# health check of deploy/compose.yaml): a small JVM, C1 only.
exec java -Xmx96m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:-UsePerfData \
	-Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
	-cp '/opt/kafka/libs/*' kafka.admin.BrokerApiVersionsCommand "$@"
