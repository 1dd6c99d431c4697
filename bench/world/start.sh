#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# start.sh RUN_DIR [EMV_TESTSMTPD] - bring up a bench world made by gen.sh.
#
#   RUN_DIR        directory written by gen.sh (unbound.conf, smtpd.conf,
#                  bench.params); a bench world already running from it is
#                  stopped first
#   EMV_TESTSMTPD  the emv-testsmtpd binary (or $EMV_TESTSMTPD; default
#                  build/tests/world/emv-testsmtpd of this checkout)
#
# Environment:
#   BENCH_SMTPD_LOG  none (default): no event log, the fastest; "file":
#                    RUN_DIR/smtpd.log; or any path (e.g. /dev/null).
#                    A file costs one write(2) per event (~8 per session):
#                    ~5-10 % more server CPU, ~430 bytes per session
#   BENCH_WAIT_S     how long to wait for both daemons to answer (60)
#
# Raises the open-file limit as far as allowed (both daemons inherit it;
# emv-testsmtpd also raises its soft limit to the hard one), makes a
# self-signed certificate when the world offers STARTTLS, starts unbound
# (127.0.0.1:BENCH_DNS_PORT) and emv-testsmtpd (127.0.1.x:2525) in the
# background with pidfiles and logs in RUN_DIR, waits until both answer,
# writes RUN_DIR/bench.env (shell syntax) and prints one line.  Health
# checks come from 127.0.2.254.  Stop with stop.sh RUN_DIR.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=${1:?usage: start.sh RUN_DIR [EMV_TESTSMTPD]}
BIN=${2:-${EMV_TESTSMTPD:-$HERE/../../build/tests/world/emv-testsmtpd}}
LOG_MODE=${BENCH_SMTPD_LOG:-none}
WAIT_S=${BENCH_WAIT_S:-60}
HEALTH_SRC=127.0.2.254

die() {
	echo "bench start: FAILED: $*" >&2
	exit 1
}

[[ -d $RUN_DIR && -f $RUN_DIR/bench.params ]] || die "$RUN_DIR has no bench.params: run gen.sh $RUN_DIR first"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
[[ -x $BIN ]] || die "$BIN is not an executable (build it: cmake --build build --target emv-testsmtpd)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[[ $WAIT_S =~ ^[0-9]+$ ]] || die "BENCH_WAIT_S must be a number of seconds"
UNBOUND=$(PATH=$PATH:/usr/sbin:/sbin command -v unbound || true)
[[ -n $UNBOUND ]] || die "unbound not found (apt-get install unbound)"

# bench.params is ours (gen.sh); read only the keys we know
BENCH_DNS_PORT='' BENCH_SERVERS='' BENCH_CATCHALL_SERVERS='' BENCH_TLS='' BENCH_DOMAINS='' BENCH_USERS='' BENCH_LATENCY=''
while IFS='=' read -r k v; do
	case $k in
	BENCH_DNS_PORT | BENCH_SERVERS | BENCH_CATCHALL_SERVERS | BENCH_TLS | BENCH_DOMAINS | BENCH_USERS | BENCH_LATENCY)
		[[ $v =~ ^[a-z0-9]+$ ]] || die "bench.params: bad value for $k"
		printf -v "$k" '%s' "$v"
		;;
	esac
done <"$RUN_DIR/bench.params"
for k in BENCH_DNS_PORT BENCH_SERVERS BENCH_CATCHALL_SERVERS BENCH_TLS BENCH_DOMAINS BENCH_USERS BENCH_LATENCY; do
	[[ -n ${!k} ]] || die "bench.params: $k missing (regenerate with gen.sh)"
done
NSRV=$((BENCH_SERVERS + BENCH_CATCHALL_SERVERS))

bash "$HERE/stop.sh" "$RUN_DIR" >/dev/null

# 0. open files: raise the hard limit if we may (root with CAP_SYS_RESOURCE),
# then the soft limit to the hard one.  10,000 sessions need ~10,000
# descriptors in the server and as many in the client process.
hard0=$(ulimit -Hn)
if [[ $hard0 != unlimited ]]; then
	nr_open=$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 1048576)
	for want in 1048576 262144 131072 65536; do
		((want <= nr_open && want > hard0)) || continue
		ulimit -Hn "$want" 2>/dev/null && break
	done
fi
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
NOFILE_NOTE=
if [[ $NOFILE != unlimited ]] && ((NOFILE < 40000)); then
	NOFILE_NOTE=" (hard limit $NOFILE < 40000: at most ~$((NOFILE - 100)) sessions per process)"
fi

# ports must be free: another world may be running, never fight over them
if command -v ss >/dev/null; then
	busy=$(ss -Hltnu 2>/dev/null | awk -v p=":$BENCH_DNS_PORT" '$5 == "127.0.0.1" p || $5 ~ /^127\.0\.1\.[0-9]+:2525$/ || $5 == "0.0.0.0" p || $5 == "*" p { print $5 }' | sort -u | tr '\n' ' ')
	[[ -z $busy ]] || die "address already in use: $busy(another bench world? stop.sh its RUN_DIR)"
fi

fail_with() { # what why...
	local what=$1
	shift
	{
		echo "--- $what: $*"
		for f in unbound.stderr unbound.log smtpd.stderr; do
			[[ -s $RUN_DIR/$f ]] && { echo "--- $RUN_DIR/$f (tail)"; tail -n 20 "$RUN_DIR/$f"; }
		done
	} >&2
	bash "$HERE/stop.sh" "$RUN_DIR" >/dev/null 2>&1 || true
	die "$what did not start: $*"
}

now_ms() { date +%s%3N; }

# 1. certificate for STARTTLS
TLS_ARGS=()
if [[ $BENCH_TLS == yes ]]; then
	command -v openssl >/dev/null || die "openssl CLI not found (apt-get install openssl)"
	rm -f "$RUN_DIR/tls.key" "$RUN_DIR/tls.crt"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$RUN_DIR/tls.key" -out "$RUN_DIR/tls.crt" -days 30 \
		-subj "/CN=srv.bench" -addext "subjectAltName=DNS:*.bench,DNS:localhost,IP:127.0.0.1" \
		>"$RUN_DIR/openssl.out" 2>&1 || { cat "$RUN_DIR/openssl.out" >&2; die "openssl req failed"; }
	TLS_ARGS=(--tls-cert "$RUN_DIR/tls.crt" --tls-key "$RUN_DIR/tls.key")
fi

# 2. DNS: unbound daemonizes, then answers once its local-data is loaded
last=$BENCH_DOMAINS
dns_ok() {
	"$BIN" --dns-query "127.0.0.1:$BENCH_DNS_PORT" mx.d1.bench A --timeout 500 2>/dev/null |
		grep ' IN A 127\.0\.1\.[0-9]*$' >/dev/null &&
		"$BIN" --dns-query "127.0.0.1:$BENCH_DNS_PORT" "d$last.bench" MX --timeout 500 2>/dev/null |
		grep " IN MX 10 mx\.d$last\.bench\.$" >/dev/null
}
t0=$(now_ms)
deadline=$((t0 + WAIT_S * 1000))
rm -f "$RUN_DIR/unbound.log" "$RUN_DIR/unbound.pid"
"$UNBOUND" -c "$RUN_DIR/unbound.conf" </dev/null >"$RUN_DIR/unbound.stderr" 2>&1 ||
	fail_with unbound "exit status $?"
until [[ -s $RUN_DIR/unbound.pid ]] && dns_ok; do
	(($(now_ms) < deadline)) ||
		fail_with unbound "no answer for mx.d1.bench / d$last.bench on 127.0.0.1:$BENCH_DNS_PORT within $WAIT_S s"
	sleep 0.02
done
t_dns=$(($(now_ms) - t0))

# 3. SMTP servers (the parent returns once the child is listening); ready
# when the first and the last server send a banner
LOG_ARGS=() LOG_DESC=none
case $LOG_MODE in
none) ;;
file) LOG_ARGS=(--log "$RUN_DIR/smtpd.log") LOG_DESC=$RUN_DIR/smtpd.log ;;
*) LOG_ARGS=(--log "$LOG_MODE") LOG_DESC=$LOG_MODE ;;
esac
[[ $LOG_MODE == file ]] && : >"$RUN_DIR/smtpd.log"
probe_timeout=$((BENCH_LATENCY * 3 + 2000))
smtp_ok() {
	local ip
	for ip in 127.0.1.1 "127.0.1.$NSRV"; do
		"$BIN" --probe "$ip:2525" --source "$HEALTH_SRC" --timeout "$probe_timeout" QUIT 2>/dev/null |
			grep '^<<< 220 ' >/dev/null || return 1
	done
}
t1=$(now_ms)
deadline=$((t1 + WAIT_S * 1000))
"$BIN" --config "$RUN_DIR/smtpd.conf" --pidfile "$RUN_DIR/smtpd.pid" "${LOG_ARGS[@]}" "${TLS_ARGS[@]}" \
	</dev/null >"$RUN_DIR/smtpd.stderr" 2>&1 ||
	fail_with emv-testsmtpd "exit status $?"
until smtp_ok; do
	(($(now_ms) < deadline)) ||
		fail_with emv-testsmtpd "no banner on 127.0.1.1 / 127.0.1.$NSRV :2525 within $WAIT_S s"
	sleep 0.05
done
t_smtp=$(($(now_ms) - t1))

cat >"$RUN_DIR/bench.env" <<EOF
# written by bench/world/start.sh; source it from a benchmark
EMV_BENCH_DIR=$RUN_DIR
EMV_BENCH_DNS=127.0.0.1:$BENCH_DNS_PORT
EMV_BENCH_SMTP_PORT=2525
EMV_BENCH_SMTP_SERVERS=127.0.1.1-127.0.1.$NSRV
EMV_BENCH_SOURCE_IPS=127.0.2.1-127.0.2.253
EMV_BENCH_SENDER_DOMAIN=verifier.bench
EMV_BENCH_LIST=$RUN_DIR/list.csv
EMV_BENCH_EXPECTED=$RUN_DIR/expected.csv
EMV_BENCH_SMTPD=$BIN
EMV_BENCH_SMTPD_PIDFILE=$RUN_DIR/smtpd.pid
EMV_BENCH_SMTPD_LOG=$LOG_DESC
EMV_BENCH_UNBOUND_PIDFILE=$RUN_DIR/unbound.pid
EMV_BENCH_TLS_CERT=$( [[ $BENCH_TLS == yes ]] && echo "$RUN_DIR/tls.crt")
EMV_BENCH_NOFILE=$NOFILE
EOF
echo "bench world up in $RUN_DIR: dns 127.0.0.1:$BENCH_DNS_PORT (unbound pid $(cat "$RUN_DIR/unbound.pid"), $BENCH_DOMAINS domains, answering after ${t_dns} ms)," \
	"smtp 127.0.1.1-$NSRV:2525 (emv-testsmtpd pid $(cat "$RUN_DIR/smtpd.pid"), $BENCH_USERS users, latency $BENCH_LATENCY ms, tls $BENCH_TLS, ready after ${t_smtp} ms)," \
	"event log $LOG_DESC, open files $NOFILE$NOFILE_NOTE"
