#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/realworld/start.sh RUN_DIR [RELAY_BIN] — bring up the world that
# gen.sh RUN_DIR wrote: postgrey (127.0.2.100:10023), four real Postfix
# instances (127.0.2.1-4:2525, tests/world/postfix/start.sh with the tables
# and shapes of RUN_DIR/rwI), one emv-delay-relay process in front of them
# (127.0.3.I:2525 -> 127.0.2.I:2525, RW_DELAY ms each way) and unbound
# (127.0.2.53:RW_DNS port).  Writes RUN_DIR/realworld.env.  Run as root
# (Postfix's master needs it).  On any failure it stops what it started.
# RELAY_BIN defaults to build/release/bench/emv-delay-relay.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { printf 'realworld/start: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$#" -ge 1 ] || die "usage: $0 RUN_DIR [RELAY_BIN]"
[ "$(id -u)" -eq 0 ] || die "must run as root (Postfix's master needs it)"
RUN_DIR=$(cd "$1" && pwd -P)
RELAY=${2:-$root/build/release/bench/emv-delay-relay}
[ -f "$RUN_DIR/realworld.params" ] || die "$RUN_DIR/realworld.params missing: run gen.sh first"
. "$RUN_DIR/realworld.params"
[ -x "$RELAY" ] || die "relay $RELAY not built (cmake --build ... --target emv-delay-relay)"
PATH=$PATH:/usr/sbin:/sbin
for c in postfix postgrey unbound; do
	command -v "$c" >/dev/null || die "$c not installed: run bench/realworld/install.sh"
done
DNS_ADDR=${RW_DNS%:*} DNS_PORT=${RW_DNS##*:}

# Something else on our addresses would be measured instead of the world.
taken() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }
for a in 127.0.2.1:2525 127.0.2.2:2525 127.0.2.3:2525 127.0.2.4:2525 127.0.3.1:2525 127.0.3.2:2525 \
	127.0.3.3:2525 127.0.3.4:2525 127.0.2.100:10023 "$DNS_ADDR:$DNS_PORT"; do
	! taken "${a%:*}" "${a##*:}" || die "$a is already taken (another world still running? bench/realworld/stop.sh RUN_DIR)"
done

trap 'rc=$?; if [ $rc -ne 0 ]; then log "failed: stopping what was started"; "$here/stop.sh" "$RUN_DIR" >/dev/null 2>&1 || true; fi' EXIT

# ---- postgrey: Debian's package, its own db and empty whitelists under RUN_DIR
PG=$RUN_DIR/postgrey
mkdir -p "$PG"
: >"$PG/whitelist_clients"
: >"$PG/whitelist_recipients"
chown -R postgrey:postgrey "$PG"
chmod 755 "$RUN_DIR"
postgrey --inet=127.0.2.100:10023 --delay="$RW_GREYLIST_DELAY" --dbdir="$PG" \
	--pidfile="$PG/postgrey.pid" --daemonize --hostname=rw4.real \
	--whitelist-clients="$PG/whitelist_clients" --whitelist-recipients="$PG/whitelist_recipients" \
	>"$PG/stderr" 2>&1 || { cat "$PG/stderr" >&2; die "postgrey did not start"; }

# ---- the four Postfix instances
for i in 1 2 3 4; do
	POSTFIX_LISTEN=127.0.2.$i:2525 POSTFIX_HOSTNAME=rw$i.real POSTFIX_NAME=postfix-rw$i \
		POSTFIX_DOMAINS=$RUN_DIR/rw$i/domains POSTFIX_MAILBOXES=$RUN_DIR/rw$i/mailboxes \
		POSTFIX_EXTRA_CF=$RUN_DIR/rw$i/extra.cf \
		"$root/tests/world/postfix/start.sh" "$RUN_DIR/rw$i" 2>>"$RUN_DIR/postfix-start.log" ||
		{ tail -n 20 "$RUN_DIR/postfix-start.log" >&2; die "postfix rw$i did not start"; }
	# the shape must be what the bench claims: Debian's anti-harvest defaults
	lim=$(postconf -c "$RUN_DIR/rw$i/etc" -h smtpd_soft_error_limit smtpd_error_sleep_time \
		smtpd_hard_error_limit smtpd_junk_command_limit | tr '\n' ' ')
	[ "$lim" = '10 1s ${stress?{1}:{20}} ${stress?{1}:{100}} ' ] ||
		die "rw$i: anti-harvest settings are not Debian's defaults: $lim"
done
ok=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.2.100/10023' 2>/dev/null && echo y || true)
[ -n "$ok" ] || die "postgrey does not answer on 127.0.2.100:10023 (see $PG/stderr)"

# ---- the delaying relay: one process, four pairs
rm -f "$RUN_DIR/relay.pid"
setsid "$RELAY" --delay "$RW_DELAY" --pidfile "$RUN_DIR/relay.pid" \
	127.0.3.1:2525=127.0.2.1:2525 127.0.3.2:2525=127.0.2.2:2525 \
	127.0.3.3:2525=127.0.2.3:2525 127.0.3.4:2525=127.0.2.4:2525 \
	</dev/null >/dev/null 2>"$RUN_DIR/relay.stderr" &
for _ in $(seq 50); do [ -s "$RUN_DIR/relay.pid" ] && break; sleep 0.1; done
[ -s "$RUN_DIR/relay.pid" ] || { cat "$RUN_DIR/relay.stderr" >&2; die "relay did not start"; }

# ---- unbound
unbound-checkconf "$RUN_DIR/unbound.conf" >/dev/null || die "unbound.conf rejected"
unbound -c "$RUN_DIR/unbound.conf" 2>"$RUN_DIR/unbound.stderr" || { cat "$RUN_DIR/unbound.stderr" >&2; die "unbound did not start"; }
for _ in $(seq 50); do
	# a TCP connect is enough to know it serves; the verifier checks answers
	taken "$DNS_ADDR" "$DNS_PORT" && break
	sleep 0.1
done
taken "$DNS_ADDR" "$DNS_PORT" || die "unbound does not answer on $DNS_ADDR:$DNS_PORT"

# ---- a banner through each relay: the whole path works
for i in 1 2 3 4; do
	banner=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.3.$1/2525" && IFS= read -r -t 4 l <&3 && printf "QUIT\r\n" >&3 && echo "$l"' _ "$i" || true)
	[[ $banner == 220* ]] || die "no 220 banner through the relay 127.0.3.$i:2525 (got '$banner')"
done

cat >"$RUN_DIR/realworld.env" <<EOF
RW_DNS=$RW_DNS
RW_LIST=$RUN_DIR/list.csv
RW_EXPECTED=$RUN_DIR/expected.csv
RW_MAILLOGS="$RUN_DIR/rw1/maillog $RUN_DIR/rw2/maillog $RUN_DIR/rw3/maillog $RUN_DIR/rw4/maillog"
EOF
trap - EXIT
log "up: postfix 127.0.2.1-4:2525 behind relays 127.0.3.1-4:2525 (${RW_DELAY} ms each way), postgrey 127.0.2.100:10023 (delay ${RW_GREYLIST_DELAY} s), dns $RW_DNS"
