#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/cluster/kafka/topics.sh RUN_DIR COMMAND [ARGS]
#
# Manage topics of the Kafka started by start.sh RUN_DIR, with Kafka's own
# org.apache.kafka.tools.TopicCommand (the kafka-topics.sh of the
# distribution) from RUN_DIR/lib.  One JVM start per topic (about 1-2 s).
#
#   create NAME:PARTITIONS[:compact]...   create (--if-not-exists); the
#                                          replication factor is the node
#                                          count's (1 or 3); "compact" sets
#                                          cleanup.policy=compact
#   list                                  topic names, one a line
#   describe [NAME]                       partitions, leaders, replicas, ISR
#   delete NAME                           delete a topic
#
# Auto-creation is off on these brokers, so the cluster's topics
# (emailverify.batches, .retry, .results, .ip-state) must be created here,
# through start.sh --topic, or by the program under test (librdkafka's
# admin API).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
source "$HERE/../common.sh"
CL_NAME="kafka topics"

usage() { cl_die "usage: topics.sh RUN_DIR create NAME:PARTITIONS[:compact]... | list | describe [NAME] | delete NAME"; }
(($# >= 2)) || usage
RUN_DIR=$(cd "$1" 2>/dev/null && pwd) || cl_die "no such RUN_DIR: $1"
CMD=$2
shift 2
[[ -f $RUN_DIR/kafka.env ]] || cl_die "no $RUN_DIR/kafka.env: is kafka running (start.sh $RUN_DIR)?"
# shellcheck source=/dev/null
source "$RUN_DIR/kafka.env"
JAVA=${EMV_KAFKA_JAVA:-java}

# client tools: warnings and errors only, on stderr
cat >"$RUN_DIR/tools-log4j.properties" <<'L4J'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
L4J

topic_command() {
	"$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:-UsePerfData \
		-Dlog4j.configuration="file:$RUN_DIR/tools-log4j.properties" -cp "$RUN_DIR/lib/*" \
		org.apache.kafka.tools.TopicCommand --bootstrap-server "$EMV_KAFKA_BROKERS" "$@"
}

case $CMD in
create)
	(($#)) || usage
	for spec in "$@"; do
		IFS=: read -r name parts policy <<<"$spec"
		[[ -n $name && $parts =~ ^[1-9][0-9]*$ && ( -z $policy || $policy == compact ) ]] ||
			cl_die "bad topic spec '$spec' (NAME:PARTITIONS[:compact])"
		extra=()
		[[ $policy == compact ]] && extra=(--config cleanup.policy=compact)
		t=$(cl_now_ms)
		topic_command --create --if-not-exists --topic "$name" --partitions "$parts" \
			--replication-factor "$EMV_KAFKA_REPLICATION" "${extra[@]}" >/dev/null ||
			cl_die "could not create topic $name"
		echo "topic $name: $parts partition(s), replication $EMV_KAFKA_REPLICATION${policy:+, $policy} ($(($(cl_now_ms) - t)) ms)"
	done
	;;
list)
	(($# == 0)) || usage
	topic_command --list
	;;
describe)
	(($# <= 1)) || usage
	topic_command --describe ${1:+--topic "$1"}
	;;
delete)
	(($# == 1)) || usage
	topic_command --delete --topic "$1"
	;;
*) usage ;;
esac
