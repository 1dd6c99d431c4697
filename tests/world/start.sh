#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# start.sh RUN_DIR [EMV_TESTSMTPD] - bring up the test world on loopback.
#
#   RUN_DIR        where the world keeps its files (created; a world already
#                  running from the same RUN_DIR is stopped first)
#   EMV_TESTSMTPD  path of the emv-testsmtpd binary (or set $EMV_TESTSMTPD)
#
# Starts unbound (DNS, 127.0.0.1:$EMV_WORLD_DNS_PORT, default 5300) and
# emv-testsmtpd (SMTP servers of world.conf on 127.0.0.x:2525 and
# [::1]:2525, UDP blackhole on 127.0.0.1:5399), both in the background with
# pidfiles, waits until both answer, and writes RUN_DIR/world.env for tests
# to source.  Exits non-zero with a message if anything fails to start.
# Stop with stop.sh RUN_DIR.  Works as root and as a normal user.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=${1:?usage: start.sh RUN_DIR [EMV_TESTSMTPD]}
BIN=${2:-${EMV_TESTSMTPD:-}}
DNS_PORT=${EMV_WORLD_DNS_PORT:-5300}
BLACKHOLE=${EMV_WORLD_BLACKHOLE:-127.0.0.1:5399}
HEALTH_SRC=127.0.0.254      # source address of the health checks below

die() {
	echo "world start: FAILED: $*" >&2
	exit 1
}

[[ -n $BIN ]] || die "no emv-testsmtpd binary (argument 2 or \$EMV_TESTSMTPD)"
[[ -x $BIN ]] || die "$BIN is not an executable"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
UNBOUND=$(PATH=$PATH:/usr/sbin:/sbin command -v unbound || true)
CHECKCONF=$(PATH=$PATH:/usr/sbin:/sbin command -v unbound-checkconf || true)
[[ -n $UNBOUND ]] || die "unbound not found (apt-get install unbound)"
command -v openssl >/dev/null || die "openssl CLI not found (apt-get install openssl)"

mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
bash "$HERE/stop.sh" "$RUN_DIR" >/dev/null

# fail_with NAME: stop what was started, show the logs, fail
fail_with() {
	local what=$1
	shift
	{
		echo "--- $what: $*"
		for f in unbound.stderr unbound.log smtpd.stderr; do
			[[ -s $RUN_DIR/$f ]] && { echo "--- $RUN_DIR/$f (tail)"; tail -n 20 "$RUN_DIR/$f"; }
		done
	} >&2
	bash "$HERE/stop.sh" "$RUN_DIR" >/dev/null 2>&1 || true
	die "$what did not start: $* (is another world running? ps aux | grep -E 'unbound|emv-testsmtpd')"
}

# 1. a throwaway self-signed certificate for STARTTLS
rm -f "$RUN_DIR/tls.key" "$RUN_DIR/tls.crt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$RUN_DIR/tls.key" -out "$RUN_DIR/tls.crt" -days 30 \
	-subj "/CN=mx.world.test" -addext "subjectAltName=DNS:*.test,DNS:localhost,IP:127.0.0.1" \
	>"$RUN_DIR/openssl.out" 2>&1 || { cat "$RUN_DIR/openssl.out" >&2; die "openssl req failed"; }

# 2. DNS
sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@DNS_PORT@|$DNS_PORT|g" "$HERE/unbound.conf.in" >"$RUN_DIR/unbound.conf"
if [[ -n $CHECKCONF ]]; then
	"$CHECKCONF" "$RUN_DIR/unbound.conf" >"$RUN_DIR/unbound-checkconf.out" 2>&1 ||
		{ cat "$RUN_DIR/unbound-checkconf.out" >&2; die "unbound-checkconf rejected $RUN_DIR/unbound.conf"; }
fi
rm -f "$RUN_DIR/unbound.log" "$RUN_DIR/unbound.pid"
# unbound daemonizes itself and writes unbound.pid
"$UNBOUND" -c "$RUN_DIR/unbound.conf" </dev/null >"$RUN_DIR/unbound.stderr" 2>&1 ||
	fail_with unbound "exit status $?"

# 3. SMTP servers (daemonizes once listening; stderr kept for sanitizer reports)
: >"$RUN_DIR/smtpd.log"
"$BIN" --config "$HERE/world.conf" --log "$RUN_DIR/smtpd.log" --pidfile "$RUN_DIR/smtpd.pid" \
	--tls-cert "$RUN_DIR/tls.crt" --tls-key "$RUN_DIR/tls.key" --udp-blackhole "$BLACKHOLE" \
	</dev/null >"$RUN_DIR/smtpd.stderr" 2>&1 ||
	fail_with emv-testsmtpd "exit status $?"

# 4. wait until both answer
dns_ok=0 smtp_ok=0
for _ in $(seq 1 100); do
	if [[ $dns_ok == 0 ]] && [[ -s $RUN_DIR/unbound.pid ]] &&
		"$BIN" --dns-query "127.0.0.1:$DNS_PORT" mx1.accept.test A --timeout 500 2>/dev/null |
		grep -q ' IN A 127\.0\.0\.10$'; then
		dns_ok=1
	fi
	if [[ $smtp_ok == 0 ]] &&
		"$BIN" --probe 127.0.0.10:2525 --source "$HEALTH_SRC" --timeout 1000 QUIT 2>/dev/null |
		grep -q '^<<< 220 '; then
		smtp_ok=1
	fi
	[[ $dns_ok == 1 && $smtp_ok == 1 ]] && break
	sleep 0.1
done
[[ $dns_ok == 1 ]] || fail_with unbound "no answer on 127.0.0.1:$DNS_PORT within 10 s"
[[ $smtp_ok == 1 ]] || fail_with emv-testsmtpd "no banner on 127.0.0.10:2525 within 10 s"

cat >"$RUN_DIR/world.env" <<EOF
# written by tests/world/start.sh; source it from a test
EMV_WORLD_DIR=$RUN_DIR
EMV_WORLD_DNS=127.0.0.1:$DNS_PORT
EMV_WORLD_DNS_BLACKHOLE=$BLACKHOLE
EMV_WORLD_SMTP_PORT=2525
EMV_WORLD_SMTP_LOG=$RUN_DIR/smtpd.log
EMV_WORLD_SMTPD=$BIN
EMV_WORLD_SMTPD_PIDFILE=$RUN_DIR/smtpd.pid
EMV_WORLD_UNBOUND_PIDFILE=$RUN_DIR/unbound.pid
EMV_WORLD_TLS_CERT=$RUN_DIR/tls.crt
EMV_WORLD_CONF=$HERE/world.conf
EOF
echo "world up in $RUN_DIR: dns 127.0.0.1:$DNS_PORT (unbound pid $(cat "$RUN_DIR/unbound.pid"))," \
	"smtp 127.0.0.10-31:2525 + [::1]:2525 (emv-testsmtpd pid $(cat "$RUN_DIR/smtpd.pid"))," \
	"dns blackhole $BLACKHOLE, event log $RUN_DIR/smtpd.log"
