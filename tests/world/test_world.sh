#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test_world.sh RUN_DIR - self-test of a running test world (ctest
# world.selftest): the DNS answers and the SMTP behaviours that README.md
# promises, checked with emv-testsmtpd's own client modes (--dns-query,
# --probe), so it needs nothing but the world itself.
#
# Client addresses: 127.0.0.9 is this test's own (rate-limit and greylist
# state it creates cannot disturb other tests), 127.0.0.3 is the address
# blocked.test and bannerblock.test refuse.
set -uo pipefail

RUN_DIR=${1:?usage: test_world.sh RUN_DIR}
[[ -r $RUN_DIR/world.env ]] || { echo "no $RUN_DIR/world.env: is the world running (start.sh)?" >&2; exit 1; }
# shellcheck disable=SC1091
source "$RUN_DIR/world.env"
B=$EMV_WORLD_SMTPD
SRC=127.0.0.9
PROBE_FROM="MAIL FROM:<probe@verifier.test>"
pass=0
fail=0

check() { # name output regex...: every regex must match some line of output
	local name=$1 out=$2 re
	shift 2
	for re in "$@"; do
		if ! grep -Eq -- "$re" <<<"$out"; then
			fail=$((fail + 1))
			echo "FAIL $name: no line matches /$re/ in:"
			sed -e 's/^/    | /' <<<"$out" | head -n 40
			return
		fi
	done
	pass=$((pass + 1))
	echo "ok   $name"
}

check_rc() { # name got want output
	if [[ $2 == "$3" ]]; then
		pass=$((pass + 1))
		echo "ok   $1"
	else
		fail=$((fail + 1))
		echo "FAIL $1: exit status $2, want $3; output:"
		sed -e 's/^/    | /' <<<"$4" | head -n 40
	fi
}

dns() { "$B" --dns-query "$EMV_WORLD_DNS" "$@" 2>&1; }
smtp() { # IP[:port] [probe options] commands...
	local ip=$1
	shift
	[[ $ip == *:* ]] || ip=$ip:$EMV_WORLD_SMTP_PORT
	"$B" --probe "$ip" "$@" 2>&1
}

echo "# DNS ($EMV_WORLD_DNS)"
check "A of an exchanger" "$(dns mx1.accept.test A)" '^mx1\.accept\.test\. [0-9]+ IN A 127\.0\.0\.10$'
check "MX with preference" "$(dns accept.test MX)" '^rcode NOERROR answers 1 ' 'IN MX 10 mx1\.accept\.test\.$'
check "two MX preferences" "$(dns fallback.test MX)" 'IN MX 10 dead\.fallback\.test\.$' 'IN MX 20 mx2\.fallback\.test\.$'
check "null MX" "$(dns nullmx.test MX)" '^nullmx\.test\. [0-9]+ IN MX 0 \.$'
check "no MX but A (implicit MX)" "$(dns nomx.test MX; dns nomx.test A)" '^rcode NOERROR answers 0 ' 'IN A 127\.0\.0\.23$'
check "TXT only: MX is NODATA" "$(dns nodata.test MX)" '^rcode NOERROR answers 0 '
check "TXT only: A is NODATA" "$(dns nodata.test A)" '^rcode NOERROR answers 0 '
check "unknown name is NXDOMAIN" "$(dns no-such-domain.test MX)" '^rcode NXDOMAIN '
check "names outside the world are NXDOMAIN (nothing leaves)" "$(dns example.com A)" '^rcode NXDOMAIN '
out=$(dns servfail.test MX)
ms=$(sed -n 's/.*time_ms \([0-9]*\).*/\1/p' <<<"$out")
check "SERVFAIL" "$out" '^rcode SERVFAIL '
check_rc "SERVFAIL within 2 s (${ms:-?} ms)" "$([[ -n $ms && $ms -lt 2000 ]] && echo yes || echo no)" yes "$out"
check "AAAA-only exchanger" "$(dns mx.v6only.test AAAA; dns mx.v6only.test A)" 'IN AAAA ::1$' '^rcode NOERROR answers 0 '
check "PTR of a server" "$(dns 10.0.0.127.in-addr.arpa PTR)" 'IN PTR mx1\.accept\.test\.$'
check "PTR of a probe address" "$(dns 2.0.0.127.in-addr.arpa PTR; dns probe2.verifier.test A)" \
	'IN PTR probe2\.verifier\.test\.$' 'IN A 127\.0\.0\.2$'
check "SPF of the probe sender domain" "$(dns verifier.test TXT)" '"v=spf1 ip4:127\.0\.0\.0/8 -all"'
check "DNS over TCP" "$("$B" --dns-query "$EMV_WORLD_DNS" accept.test MX --tcp 2>&1)" 'IN MX 10 mx1\.accept\.test\.$'
out=$("$B" --dns-query "$EMV_WORLD_DNS_BLACKHOLE" accept.test MX --timeout 300 2>&1)
check_rc "DNS blackhole never answers" $? 3 "$out"

echo "# SMTP"
out=$(smtp 127.0.0.10 --source $SRC "EHLO probe2.verifier.test" "$PROBE_FROM" "RCPT TO:<alice@accept.test>" \
	"RCPT TO:<nobody@accept.test>" "RCPT TO:<full@accept.test>" "RCPT TO:<disabled@accept.test>" \
	"RCPT TO:<Bob@Accept.Test>" "RCPT TO:<alice@elsewhere.test>" DATA RSET "VRFY alice" QUIT)
check "accept.test: banner" "$out" '^<<< 220 mx1\.accept\.test '
check "accept.test: EHLO advertises PIPELINING and STARTTLS" "$out" '^<<< 250-PIPELINING$' '^<<< 250-STARTTLS$'
check "accept.test: alice accepted" "$out" '^<<< 250 2\.1\.5 '
check "accept.test: unknown user 550 5.1.1" "$out" '^<<< 550 5\.1\.1 <nobody@accept\.test>'
check "accept.test: full 552 5.2.2" "$out" '^<<< 552 5\.2\.2 '
check "accept.test: disabled 550 5.2.1" "$out" '^<<< 550 5\.2\.1 '
check "accept.test: other domain 554 relay denied" "$out" '^<<< 554 5\.7\.1 <alice@elsewhere\.test>: Relay access denied'
check "accept.test: VRFY 252, DATA 554, QUIT 221" "$out" '^<<< 252 ' '^<<< 554 5\.7\.0 ' '^<<< 221 '
out=$(smtp 127.0.0.10 --source $SRC "EHLO probe2.verifier.test" STARTTLS "EHLO probe2.verifier.test" \
	"$PROBE_FROM" "RCPT TO:<alice@accept.test>" QUIT)
check "accept.test: STARTTLS works" "$out" '^\*\*\* TLS TLSv1\.[23] ' '^<<< 250 2\.1\.5 ' '^\*\*\* exit 0 '
out=$(smtp 127.0.0.11 --source $SRC "EHLO x" "$PROBE_FROM" "RCPT TO:<random-$RANDOM$RANDOM@catchall.test>")
check "catchall.test: random recipient accepted" "$out" '^<<< 250 2\.1\.5 '

sender="MAIL FROM:<selftest-$$-$RANDOM@verifier.test>"
out=$(smtp 127.0.0.12 --source $SRC "EHLO x" "$sender" "RCPT TO:<alice@greylist.test>" "!sleep 2200" \
	"RCPT TO:<alice@greylist.test>")
check "greylist.test: 451 first, 250 after 2 s" "$out" \
	'^<<< 451 4\.7\.1 Greylisted, please try again in 2 seconds$' '^<<< 250 2\.1\.5 '
out=$(smtp 127.0.0.13 --source $SRC "!pipe EHLO x|$PROBE_FROM|RCPT TO:<u1@toomany.test>|RCPT TO:<u2@toomany.test>|RCPT TO:<u3@toomany.test>|RCPT TO:<u4@toomany.test>")
check "toomany.test: 4th RCPT 452 4.5.3" "$out" '^<<< 452 4\.5\.3 '
check_rc "toomany.test: only the 4th" "$(grep -c '^<<< 250 2\.1\.5' <<<"$out")" 3 "$out"
out=$(smtp 127.0.0.39 --source $SRC "!pipe EHLO x|$PROBE_FROM|RCPT TO:<alice@learn.test>|RCPT TO:<bob@learn.test>")
check "learn.test: 2nd RCPT 452 4.5.3" "$out" '^<<< 452 4\.5\.3 '
check_rc "learn.test: only the 1st" "$(grep -c '^<<< 250 2\.1\.5' <<<"$out")" 1 "$out"
out=$(smtp 127.0.0.14 --source 127.0.0.3 "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@blocked.test>")
check "blocked.test: 127.0.0.3 gets 554 Spamhaus" "$out" \
	'^<<< 554 5\.7\.1 Service unavailable; Client host \[127\.0\.0\.3\] blocked using zen\.spamhaus\.org$'
out=$(smtp 127.0.0.14 --source $SRC "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@blocked.test>")
check "blocked.test: other sources accepted" "$out" '^<<< 250 2\.1\.5 '
out=$(smtp 127.0.0.31 --source 127.0.0.3 "EHLO x" QUIT)
check "bannerblock.test: 554 banner for 127.0.0.3, then 503" "$out" '^<<< 554 5\.7\.1 .*zen\.spamhaus\.org$' '^<<< 503 '
out=$(smtp 127.0.0.15 --source $SRC "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@slow.test>")
ms=$(sed -n 's/^\*\*\* exit 0 after \([0-9]*\) ms$/\1/p' <<<"$out")
check "slow.test: alice accepted" "$out" '^<<< 250 2\.1\.5 '
check_rc "slow.test: 4 replies take >= 1200 ms (${ms:-?} ms)" "$([[ -n $ms && $ms -ge 1200 ]] && echo yes || echo no)" yes "$out"
out=$(smtp 127.0.0.16 --source $SRC --timeout 700 "EHLO x")
check_rc "tarpit.test: no banner" $? 3 "$out"
out=$(smtp 127.0.0.17 --source $SRC "EHLO x" "$PROBE_FROM" STARTTLS "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@tlsreq.test>")
check "tlsreq.test: 530 before TLS, alice after" "$out" '^<<< 530 5\.7\.0 ' '^\*\*\* TLS ' '^<<< 250 2\.1\.5 '
out=$(smtp 127.0.0.18 --source $SRC "EHLO x" STARTTLS "EHLO x")
check_rc "tlsbroken.test: TLS handshake fails" $? 6 "$out"
out=$(smtp 127.0.0.18 --source $SRC "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@tlsbroken.test>")
check "tlsbroken.test: alice accepted without TLS" "$out" '^<<< 250-STARTTLS$' '^<<< 250 2\.1\.5 '
out=$(smtp 127.0.0.30 --source $SRC "EHLO x" STARTTLS "EHLO x")
check_rc "tlsabort.test: TLS handshake fails" $? 6 "$out"
out=$(smtp 127.0.0.19 --source $SRC "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@multiline.test>")
check "multiline.test: replies in 3 lines" "$out" '^<<< 220-mx\.multiline\.test ' '^<<< 250-2\.1\.5 Ok$' \
	'^<<< 250 2\.1\.5 Ok$' '^\*\*\* reply 250: 3 lines'
out=$(smtp 127.0.0.20 --source $SRC "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@drop.test>")
rc=$?
check "drop.test: 250- then nothing" "$out" '^<<< 250-mx\.drop\.test first line'
check_rc "drop.test: connection closed mid-reply" $rc 4 "$out"
out=$(smtp 127.0.0.21 --source $SRC "EHLO x")
check_rc "endless.test: banner line over any limit" $? 5 "$out"
out=$(smtp 127.0.0.22 --source $SRC --print 2 "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@huge.test>" QUIT)
check "huge.test: 10 MB EHLO reply, then a normal session" "$out" \
	'^\*\*\* reply 250: 1048[0-9]{2} lines, 104[0-9]{5} bytes$' '^<<< 250 2\.1\.5 ' '^<<< 221 '
out=$(smtp 127.0.0.23 --source $SRC "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@nomx.test>")
check "nomx.test: alice accepted on the A address" "$out" '^<<< 250 2\.1\.5 '
out=$(smtp 127.0.0.24 --source $SRC "EHLO x")
check_rc "fallback.test: preference 10 refuses connections" $? 2 "$out"
out=$(smtp 127.0.0.25 --source $SRC "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@fallback.test>")
check "fallback.test: preference 20 accepts alice" "$out" '^<<< 250 2\.1\.5 '
out=$(smtp 127.0.0.26 --source $SRC "EHLO x" "HELO x" "$PROBE_FROM" "RCPT TO:<alice@oldsmtp.test>")
check "oldsmtp.test: EHLO 502, HELO ok, alice accepted" "$out" '^<<< 502 ' '^<<< 250 mx\.oldsmtp\.test$' '^<<< 250 2\.1\.5 '
out=$(smtp 127.0.0.27 --source $SRC "EHLO x")
rc=$?
check "busy.test: 421 banner" "$out" '^<<< 421 4\.7\.0 '
check_rc "busy.test: then closed" $rc 4 "$out"
out=$(smtp 127.0.0.28 --source $SRC "EHLO x" "$PROBE_FROM")
check "senderreject.test: MAIL FROM 550 5.7.1" "$out" '^<<< 550 5\.7\.1 .*sender rejected$'
out=$(smtp 127.0.0.29 --source $SRC "!pipe EHLO x|$PROBE_FROM|RCPT TO:<u1@ratelimit.test>|RCPT TO:<u2@ratelimit.test>|RCPT TO:<u3@ratelimit.test>|RCPT TO:<u4@ratelimit.test>|RCPT TO:<u5@ratelimit.test>|RCPT TO:<u6@ratelimit.test>")
check "ratelimit.test: 6th RCPT in a minute 450 4.7.1" "$(tail -n 2 <<<"$out")" '^<<< 450 4\.7\.1 .*rate limited'
if [[ -r /proc/net/if_inet6 ]]; then
	out=$(smtp "[::1]:$EMV_WORLD_SMTP_PORT" "EHLO x" "$PROBE_FROM" "RCPT TO:<alice@v6only.test>")
	check "v6only.test: [::1] accepts alice" "$out" '^<<< 220 mx\.v6only\.test ' '^<<< 250 2\.1\.5 '
else
	echo "skip v6only.test: no IPv6 on this machine"
fi

echo "# robustness"
out=$(smtp 127.0.0.10 --source $SRC "EHLO $(printf 'a%.0s' $(seq 1 1500))" NOOP)
check "a 1500-byte line gets 500 and the session ends" "$out" '^<<< 500 5\.5\.2 Error: line too long$' '^!!! connection closed'
out=$(smtp 127.0.0.10 --source $SRC --print 1 "!pipe $(printf 'JUNK|%.0s' $(seq 1 25))NOOP")
check "25 bad commands end the session with 421" "$out" '^<<< 421 4\.7\.0 '
tmp=$(mktemp -d)
for i in $(seq 1 200); do
	smtp 127.0.0.11 --source $SRC --timeout 10000 "!sleep 500" QUIT >"$tmp/$i" &
done
wait
good=$(grep -l '^<<< 221 ' "$tmp"/* | wc -l)
rm -rf "$tmp"
check_rc "200 concurrent sessions all served" "$good" 200 ""
out=$(smtp 127.0.0.10 --source $SRC QUIT)
check "server still up after the abuse" "$out" '^<<< 220 mx1\.accept\.test '

echo "# event log ($EMV_WORLD_SMTP_LOG)"
log=$(grep -F " 127.0.0.10 $SRC " "$EMV_WORLD_SMTP_LOG")
check "log: connections, RCPTs with codes, TLS" "$log" \
	"^[0-9]{13} 127\.0\.0\.10 127\.0\.0\.9 CONNECT accept$" \
	"^[0-9]{13} 127\.0\.0\.10 127\.0\.0\.9 RCPT alice@accept\.test 250$" \
	"^[0-9]{13} 127\.0\.0\.10 127\.0\.0\.9 RCPT nobody@accept\.test 550$" \
	"^[0-9]{13} 127\.0\.0\.10 127\.0\.0\.9 TLS TLSv1\.[23] " \
	"^[0-9]{13} 127\.0\.0\.10 127\.0\.0\.9 CLOSE quit$"
check "log: greylisting, blocking" "$(cat "$EMV_WORLD_SMTP_LOG")" \
	" 127\.0\.0\.12 127\.0\.0\.9 RCPT alice@greylist\.test 451 greylisted$" \
	" 127\.0\.0\.14 127\.0\.0\.3 RCPT alice@blocked\.test 554 blocked$"

echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
