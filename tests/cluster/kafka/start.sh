#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/cluster/kafka/start.sh RUN_DIR [--nodes 1|3] [--fresh] [--topic SPEC]...
#
# Bring up a real Apache Kafka (KRaft, combined broker+controller nodes) on
# loopback for the cluster tests.  Throwaway: no security, tiny heap.
#
#   RUN_DIR        where everything lives (created):
#                    lib/            the broker's jars (copied from ~/.m2 by pom.xml)
#                    kafka-N/        node N: server.properties, log4j.properties,
#                                    data/ (log.dirs), kafka.log, kafka.pid
#                    kafka.env       written when ready (shell syntax, see below)
#   --nodes 1|3    one node (default) or a three-node quorum
#   --fresh        wipe the nodes' data first (a new cluster id, no topics)
#   --topic SPEC   after start, create a topic: NAME:PARTITIONS[:compact]
#                  (repeatable; an existing topic is left as it is)
#
# Ports (loopback only): node N listens for clients on 127.0.0.1:(19092+2(N-1))
# and for the controller quorum on 127.0.0.1:(19093+2(N-1)), i.e.
# 19092/19093, 19094/19095, 19096/19097.  EMV_KAFKA_PORT moves the base.
#
# Idempotent: nodes of RUN_DIR that already run are left alone, missing ones
# are started (so "stop.sh --node 2; start.sh --nodes 3" brings node 2 back);
# the data of an earlier run is kept unless --fresh (or the node count
# changed).  Readiness, per node: bash /dev/tcp on its client port, then
# kcat -L (librdkafka, the project's own client library) against that node
# alone must be answered by that node and list all N brokers.
#
# Writes RUN_DIR/kafka.env:
#   EMV_KAFKA_BROKERS=127.0.0.1:19092[,...]   bootstrap list
#   EMV_KAFKA_NODES, EMV_KAFKA_VERSION, EMV_KAFKA_DIR, EMV_KAFKA_REPLICATION
#
# Environment: EMV_KAFKA_PORT (19092), EMV_KAFKA_HEAP ("-Xms64m -Xmx320m"),
#   EMV_KAFKA_JVM_OPTS ("-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"; "" for
#   the JVM's defaults), EMV_KAFKA_PARTITIONS (num.partitions, 8),
#   EMV_KAFKA_START_TIMEOUT (120 s), EMV_KAFKA_JAVA (java), EMV_MVN (mvn).
# Needs: java 17, mvn (first run: Maven Central, then ~/.m2), kcat
# (tests/cluster/install.sh).  Stop with stop.sh RUN_DIR.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
source "$HERE/../common.sh"
CL_NAME="kafka start"

usage() { cl_die "usage: start.sh RUN_DIR [--nodes 1|3] [--fresh] [--topic NAME:PARTITIONS[:compact]]..."; }

RUN_DIR="" NODES=1 FRESH=0 TOPICS=()
while (($#)); do
	case $1 in
	--nodes) NODES=${2:-}; shift 2 || usage ;;
	--nodes=*) NODES=${1#*=}; shift ;;
	--fresh) FRESH=1; shift ;;
	--topic) TOPICS+=("${2:-}"); shift 2 || usage ;;
	--topic=*) TOPICS+=("${1#*=}"); shift ;;
	-*) usage ;;
	*) [[ -z $RUN_DIR ]] || usage; RUN_DIR=$1; shift ;;
	esac
done
[[ -n $RUN_DIR ]] || usage
[[ $NODES == 1 || $NODES == 3 ]] || cl_die "--nodes must be 1 or 3 (got '$NODES')"

BASE_PORT=${EMV_KAFKA_PORT:-19092}
HEAP=${EMV_KAFKA_HEAP:--Xms64m -Xmx320m}
# C1 only and the serial collector: ~0.6 s faster start and less RSS on two
# cores; peak throughput is lower, so set EMV_KAFKA_JVM_OPTS="" to benchmark
JVM_OPTS=${EMV_KAFKA_JVM_OPTS--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}
PARTITIONS=${EMV_KAFKA_PARTITIONS:-8}
START_TIMEOUT=${EMV_KAFKA_START_TIMEOUT:-120}
JAVA=${EMV_KAFKA_JAVA:-java}
MVN=${EMV_MVN:-mvn}
POM=$HERE/pom.xml

command -v "$JAVA" >/dev/null || cl_die "java not found (Debian: openjdk-17-jre-headless)"
command -v kcat >/dev/null || cl_die "kcat not found: run tests/cluster/install.sh"

mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
T0=$(cl_now_ms)

client_port() { echo $((BASE_PORT + 2 * ($1 - 1))); }
quorum_port() { echo $((BASE_PORT + 1 + 2 * ($1 - 1))); }
node_dir() { echo "$RUN_DIR/kafka-$1"; }
node_pid() { # N: pid of the running node N of RUN_DIR, or nothing
	local f pid
	f="$(node_dir "$1")/kafka.pid"
	[[ -f $f ]] || return 0
	pid=$(head -n 1 "$f" | tr -dc 0-9)
	if [[ -n $pid ]] && cl_alive "$pid" && cl_cmdline_has "$pid" "$(node_dir "$1")/server.properties"; then
		echo "$pid"
	fi
}

running=() # nodes of RUN_DIR running now
for n in 1 2 3; do
	if [[ -n $(node_pid "$n") ]]; then running+=("$n"); fi
done

# --- 1. the broker's jars: RUN_DIR/lib, via ~/.m2 --------------------------
# Skipped when RUN_DIR/lib was filled from the same pom.xml (stamp file);
# otherwise Maven offline first (everything cached in ~/.m2), online if not.
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
stamp=$(sha256sum "$POM" | cut -c1-16)
if [[ ! -f $RUN_DIR/lib/.pom-stamp || $(cat "$RUN_DIR/lib/.pom-stamp") != "$stamp" ]]; then
	((${#running[@]} == 0)) ||
		cl_die "pom.xml changed while node(s) ${running[*]} of $RUN_DIR run from its jars: stop.sh first"
	command -v "$MVN" >/dev/null || cl_die "mvn not found (Debian: maven)"
	rm -rf "${RUN_DIR:?}/lib" "${RUN_DIR:?}/lib.tmp"
	mvn_run() { "$MVN" -B -q -Dstyle.color=never -f "$POM" -Dkafka.lib.dir="$RUN_DIR/lib.tmp" "$@" package; }
	t=$(cl_now_ms)
	if mvn_run -o >"$RUN_DIR/mvn.log" 2>&1; then
		cl_log "kafka $KAFKA_VERSION jars copied from ~/.m2 in $(($(cl_now_ms) - t)) ms"
	else
		cl_log "kafka $KAFKA_VERSION not (fully) in ~/.m2: fetching from Maven Central..."
		t=$(cl_now_ms)
		mvn_run >>"$RUN_DIR/mvn.log" 2>&1 ||
			{ tail -n 30 "$RUN_DIR/mvn.log" >&2; cl_die "mvn could not fetch kafka $KAFKA_VERSION (log: $RUN_DIR/mvn.log)"; }
		cl_log "first fetch of kafka $KAFKA_VERSION took $(($(cl_now_ms) - t)) ms"
	fi
	mv "$RUN_DIR/lib.tmp" "$RUN_DIR/lib"
	echo "$stamp" >"$RUN_DIR/lib/.pom-stamp"
fi
[[ -f $RUN_DIR/lib/kafka_2.13-$KAFKA_VERSION.jar ]] || cl_die "$RUN_DIR/lib has no kafka_2.13-$KAFKA_VERSION.jar"
CP="$RUN_DIR/lib/*"

# --- 2. node count and data -------------------------------------------------
prev_nodes=$(cat "$RUN_DIR/kafka.nodes" 2>/dev/null || true)
if [[ -n $prev_nodes && $prev_nodes != "$NODES" ]]; then
	((${#running[@]} == 0)) ||
		cl_die "RUN_DIR runs $prev_nodes node(s) (node ${running[*]}); stop.sh it before --nodes $NODES"
	cl_log "node count changes $prev_nodes -> $NODES: starting with fresh data"
	FRESH=1
fi
if ((FRESH)); then
	((${#running[@]} == 0)) || bash "$HERE/stop.sh" "$RUN_DIR" >&2
	running=()
	rm -rf "$RUN_DIR"/kafka-[0-9] "$RUN_DIR/kafka.env" "$RUN_DIR/kafka.nodes"
fi

if ((NODES == 1)); then
	RF=1 MIN_ISR=1
else
	RF=3 MIN_ISR=2
fi
voters=""
brokers=""
for ((n = 1; n <= NODES; n++)); do
	voters+="${voters:+,}$n@127.0.0.1:$(quorum_port "$n")"
	brokers+="${brokers:+,}127.0.0.1:$(client_port "$n")"
done

# --- 3. configuration (rewritten on every start; same content each time) ---
for ((n = 1; n <= NODES; n++)); do
	nd=$(node_dir "$n")
	mkdir -p "$nd/data"
	cat >"$nd/server.properties" <<EOF
# generated by tests/cluster/kafka/start.sh: a throwaway TEST node, no security
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(client_port "$n"),CONTROLLER://127.0.0.1:$(quorum_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(client_port "$n")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$nd/data
num.partitions=$PARTITIONS
default.replication.factor=$RF
min.insync.replicas=$MIN_ISR
offsets.topic.replication.factor=$RF
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$RF
transaction.state.log.min.isr=$MIN_ISR
transaction.state.log.num.partitions=4
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
unclean.leader.election.enable=false
# small machine: few threads, small buffers
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
log.segment.bytes=67108864
EOF
	cat >"$nd/log4j.properties" <<'EOF'
# generated by tests/cluster/kafka/start.sh (reload4j): everything to stdout,
# which start.sh sends to kafka.log
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
done

# --- 4. format storage (once per data dir; same random cluster id for all) --
need_format=()
for ((n = 1; n <= NODES; n++)); do
	[[ -f $(node_dir "$n")/data/meta.properties ]] || need_format+=("$n")
done
if ((${#need_format[@]})); then
	if [[ -s $RUN_DIR/kafka.cluster-id ]] && ((${#need_format[@]} < NODES)); then
		cluster_id=$(cat "$RUN_DIR/kafka.cluster-id") # one node's data was lost: rejoin
	else
		# a Kafka Uuid: 16 random bytes, URL-safe base64 without padding
		# (what "StorageTool random-uuid" prints, without a JVM start)
		# never one that starts with '-' (kafka-storage would read it as an
		# option: "--cluster-id expected one argument"; Kafka's own
		# Uuid.randomUuid() draws again in that case too)
		cluster_id=-
		while [[ $cluster_id == -* ]]; do
			cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
		done
		echo "$cluster_id" >"$RUN_DIR/kafka.cluster-id"
	fi
	t=$(cl_now_ms)
	fpids=()
	for n in "${need_format[@]}"; do
		nd=$(node_dir "$n")
		"$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
			-Dlog4j.configuration="file:$nd/log4j.properties" -cp "$CP" \
			kafka.tools.StorageTool format -t "$cluster_id" -c "$nd/server.properties" \
			</dev/null >"$nd/format.log" 2>&1 &
		fpids+=($!)
	done
	for i in "${!fpids[@]}"; do
		wait "${fpids[$i]}" || {
			cat "$(node_dir "${need_format[$i]}")/format.log" >&2
			cl_die "StorageTool format failed for node ${need_format[$i]}"
		}
	done
	cl_log "formatted node(s) ${need_format[*]} (cluster id $cluster_id) in $(($(cl_now_ms) - t)) ms"
fi
echo "$NODES" >"$RUN_DIR/kafka.nodes"

# --- 5. start the nodes that are not running ---------------------------------
fail_start() {
	local n
	{
		echo "--- $*"
		for ((n = 1; n <= NODES; n++)); do
			[[ -s $(node_dir "$n")/kafka.log ]] || continue
			echo "--- $(node_dir "$n")/kafka.log (last ERROR/FATAL lines and tail)"
			grep -E ' (ERROR|FATAL) ' "$(node_dir "$n")/kafka.log" | tail -n 5 || true
			tail -n 15 "$(node_dir "$n")/kafka.log"
		done
	} >&2
	bash "$HERE/stop.sh" "$RUN_DIR" >/dev/null 2>&1 || true
	cl_die "$*"
}

started=()
spawned=()
for ((n = 1; n <= NODES; n++)); do
	[[ -n $(node_pid "$n") ]] && continue
	for p in "$(client_port "$n")" "$(quorum_port "$n")"; do
		if cl_port_open 127.0.0.1 "$p"; then
			cl_die "port 127.0.0.1:$p is already in use by $(cl_port_owner "$p" || true) (not node $n of $RUN_DIR); set EMV_KAFKA_PORT?"
		fi
	done
	nd=$(node_dir "$n")
	echo "=== tests/cluster/kafka/start.sh: node $n starting at $(date '+%F %T')" >>"$nd/kafka.log"
	# setsid: own session, so a Ctrl-C or a ctest timeout on the caller
	# does not reach the broker; stop.sh is what stops it.
	# shellcheck disable=SC2086  # HEAP and JVM_OPTS are lists of JVM options
	(cd "$nd" && exec setsid "$JAVA" -server $HEAP $JVM_OPTS -XX:-UsePerfData \
		-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		-Dlog4j.configuration="file:$nd/log4j.properties" -Dkafka.logs.dir="$nd" \
		-cp "$CP" kafka.Kafka "$nd/server.properties") </dev/null >>"$nd/kafka.log" 2>&1 &
	echo $! >"$nd/kafka.pid"
	started+=("$n")
	spawned[n]=$!
done

# --- 6. wait until every node answers ----------------------------------------
deadline=$(($(cl_now_ms) + START_TIMEOUT * 1000))
ready=0
while (($(cl_now_ms) < deadline)); do
	for n in "${started[@]}"; do
		# our own child: alive is enough (its command line is the
		# subshell's until it has exec'd java)
		cl_alive "${spawned[$n]}" || fail_start "node $n exited during start-up"
	done
	# each node in turn: its port accepts (bash /dev/tcp), then it answers a
	# metadata request itself ("from broker N") listing all NODES brokers.
	# A KRaft broker serves requests only once it has caught up with the
	# metadata log and been unfenced, so this also holds after a kill -9:
	# the survivors may still list the dead node, but cannot answer for it.
	ready=1
	for ((n = 1; n <= NODES; n++)); do
		p=$(client_port "$n")
		if ! cl_port_open 127.0.0.1 "$p"; then ready=0; break; fi
		meta=$(kcat -L -b "127.0.0.1:$p" -m 2 2>/dev/null || true)
		if ! grep -q "^Metadata for all topics (from broker $n: " <<<"$meta" ||
			[[ $(grep -c '^  broker [0-9]* at ' <<<"$meta") != "$NODES" ]]; then
			ready=0
			break
		fi
	done
	((ready)) && break
	sleep 0.2
done
((ready)) || fail_start "kafka did not answer within $START_TIMEOUT s (kcat -L -b $brokers)"
for n in "${started[@]}"; do
	[[ -n $(node_pid "$n") ]] || fail_start "node $n: pid ${spawned[$n]} is not java with $(node_dir "$n")/server.properties"
done

cat >"$RUN_DIR/kafka.env" <<EOF
# written by tests/cluster/kafka/start.sh; source it from a test
EMV_KAFKA_BROKERS=$brokers
EMV_KAFKA_NODES=$NODES
EMV_KAFKA_REPLICATION=$RF
EMV_KAFKA_VERSION=$KAFKA_VERSION
EMV_KAFKA_DIR=$RUN_DIR
EOF

# --- 7. topics ----------------------------------------------------------------
if ((${#TOPICS[@]})); then
	bash "$HERE/topics.sh" "$RUN_DIR" create "${TOPICS[@]}" >&2 || fail_start "topic creation failed"
fi

rss=""
for ((n = 1; n <= NODES; n++)); do
	pid=$(node_pid "$n")
	rss+="${rss:+, }node $n pid $pid rss $(($(cl_rss_kb "$pid") / 1024)) MiB"
done
if ((${#started[@]})); then
	what="started node(s) ${started[*]}"
else
	what="already running"
fi
echo "kafka $KAFKA_VERSION up in $RUN_DIR ($what in $(($(cl_now_ms) - T0)) ms): brokers $brokers;" \
	"$rss; env $RUN_DIR/kafka.env"
