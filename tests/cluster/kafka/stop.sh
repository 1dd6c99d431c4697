#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/cluster/kafka/stop.sh RUN_DIR [--node N] [--kill] [--timeout SECONDS]
#
# Stop the Kafka node(s) that start.sh RUN_DIR started.
#
#   --node N      only node N (fault tests: take one broker of three away;
#                 start.sh RUN_DIR --nodes 3 brings it back)
#   --kill        SIGKILL at once instead of a clean shutdown (kill -9 tests)
#   --timeout S   how long to wait after SIGTERM before SIGKILL (default 30,
#                 or $EMV_KAFKA_STOP_TIMEOUT)
#
# Idempotent: nothing running is not an error.  Only a pid from
# RUN_DIR/kafka-N/kafka.pid whose command line names
# RUN_DIR/kafka-N/server.properties is ever signalled, so another run dir,
# another suite's processes or a reused pid are never touched.  All selected
# nodes get SIGTERM together (a quorum stops faster that way), then each is
# waited for.  Data is kept (start.sh --fresh wipes it).  kafka.env is
# removed once no node of RUN_DIR runs.  Exits non-zero only if a node
# survives SIGKILL.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
source "$HERE/../common.sh"
CL_NAME="kafka stop"

usage() { cl_die "usage: stop.sh RUN_DIR [--node N] [--kill] [--timeout SECONDS]"; }

RUN_DIR="" ONLY="" KILL=0 TIMEOUT=${EMV_KAFKA_STOP_TIMEOUT:-30}
while (($#)); do
	case $1 in
	--node) ONLY=${2:-}; shift 2 || usage ;;
	--kill) KILL=1; shift ;;
	--timeout) TIMEOUT=${2:-}; shift 2 || usage ;;
	-*) usage ;;
	*) [[ -z $RUN_DIR ]] || usage; RUN_DIR=$1; shift ;;
	esac
done
[[ -n $RUN_DIR ]] || usage
[[ -z $ONLY || $ONLY =~ ^[1-9]$ ]] || usage
[[ $TIMEOUT =~ ^[0-9]+$ ]] || usage
[[ -d $RUN_DIR ]] || exit 0
RUN_DIR=$(cd "$RUN_DIR" && pwd)

T0=$(cl_now_ms)
names=() pids=()
for pidfile in "$RUN_DIR"/kafka-[0-9]/kafka.pid; do
	[[ -f $pidfile ]] || continue
	nd=$(dirname "$pidfile")
	n=${nd##*/kafka-}
	[[ -z $ONLY || $ONLY == "$n" ]] || continue
	pid=$(head -n 1 "$pidfile" | tr -dc 0-9)
	if [[ -n $pid ]] && cl_alive "$pid" && cl_cmdline_has "$pid" "$nd/server.properties"; then
		names+=("node $n") pids+=("$pid")
	else
		rm -f "$pidfile" # stale
	fi
done

if ((KILL)); then
	for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
else
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
fi

rc=0
for i in "${!pids[@]}"; do
	if cl_wait_or_kill "${pids[$i]}" "$TIMEOUT" "${names[$i]}"; then
		rm -f "$RUN_DIR/kafka-${names[$i]#node }/kafka.pid"
		echo "kafka ${names[$i]} (pid ${pids[$i]}) stopped"
	else
		cl_log "${names[$i]} (pid ${pids[$i]}) survived SIGKILL"
		rc=1
	fi
done

left=0
for pidfile in "$RUN_DIR"/kafka-[0-9]/kafka.pid; do
	[[ -f $pidfile ]] && left=1
done
((left)) || rm -f "$RUN_DIR/kafka.env"
((${#pids[@]} == 0)) || echo "kafka stop: ${#pids[@]} node(s) in $(($(cl_now_ms) - T0)) ms"
exit $rc
