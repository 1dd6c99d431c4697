#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The stand-in's entrypoint (deploy/test/kafka/Containerfile): the
# apache/kafka image's environment contract, then the broker in the
# foreground (PID 1's child-free exec: SIGTERM reaches the JVM).
set -euo pipefail
props=/opt/kafka/config/server.properties
: >"$props"
while IFS='=' read -r name value; do
	case $name in
	KAFKA_HEAP_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_OPTS | KAFKA_LOG4J_OPTS | KAFKA_GC_LOG_OPTS | KAFKA_JMX_OPTS | KAFKA_DEBUG) continue ;;
	KAFKA_*) ;;
	*) continue ;;
	esac
	key=${name#KAFKA_}
	key=${key//___/-}
	key=${key//__/@}
	key=${key//_/.}
	key=${key//@/_}
	key=${key,,}
	printf '%s=%s\n' "$key" "$value" >>"$props"
done < <(env)
grep -q '^log.dirs=' "$props" || echo 'log.dirs=/tmp/kraft-combined-logs' >>"$props"
: "${CLUSTER_ID:?CLUSTER_ID is required (KRaft storage format)}"
CP='/opt/kafka/libs/*'
LOG4J=(-Dlog4j.configuration=file:/opt/kafka/config/log4j.properties)
# shellcheck disable=SC2086
java -Xmx128m -XX:TieredStopAtLevel=1 -XX:-UsePerfData "${LOG4J[@]}" -cp "$CP" \
	kafka.tools.StorageTool format --ignore-formatted -t "$CLUSTER_ID" -c "$props"
# shellcheck disable=SC2086
exec java -server ${KAFKA_HEAP_OPTS:--Xmx512m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
	-XX:-UsePerfData -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "${LOG4J[@]}" \
	-Dkafka.logs.dir=/tmp ${KAFKA_OPTS:-} -cp "$CP" kafka.Kafka "$props"
