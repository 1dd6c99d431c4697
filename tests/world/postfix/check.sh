#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/world/postfix/check.sh RUN_DIR — quick manual check of a running
# test Postfix (start.sh RUN_DIR) on 127.0.0.50:2525.
#
# 1. Plain SMTP over bash /dev/tcp, one command at a time, printing every
#    reply: banner, EHLO (must offer STARTTLS and PIPELINING),
#    MAIL FROM:<probe@verifier.test>, then RCPT TO for
#      alice@postfix.test     -> 250
#      nobody@postfix.test    -> 550 5.1.1 (User unknown in virtual mailbox table)
#      disabled@postfix.test  -> 5xx 5.2.1 (Mailbox disabled)
#      someone@other.test     -> 454/554 (Relay access denied)
#    then RSET and QUIT. Never sends DATA.
# 2. If openssl is present: STARTTLS via `openssl s_client -starttls smtp`,
#    then the same MAIL/RCPT sequence pipelined inside TLS.
# Exits non-zero if any reply differs from the expectation; on failure prints
# the tail of RUN_DIR/maillog. RUN_DIR is only used to find the log.
set -euo pipefail

HOST=127.0.0.50
PORT=2525
[ "$#" -eq 1 ] || { echo "usage: $0 RUN_DIR" >&2; exit 2; }
MAILLOG="$1/maillog"

fail=0
expect() { # expect NAME REGEX REPLY
    if [[ "$3" =~ $2 ]]; then
        printf '   ok: %s\n' "$1"
    else
        printf '   FAIL: %s: expected /%s/\n' "$1" "$2"
        fail=1
    fi
}

# Read one (possibly multi-line) SMTP reply from fd 3 into REPLY_TEXT.
read_reply() {
    local line
    REPLY_TEXT=""
    while :; do
        IFS= read -r -t 10 line <&3 || { REPLY_TEXT+="<no reply/timeout>"; return 1; }
        line="${line%$'\r'}"
        printf 'S: %s\n' "$line"
        REPLY_TEXT+="$line"$'\n'
        [[ "$line" =~ ^[0-9]{3}- ]] || break
    done
}

cmd() { # cmd "SMTP COMMAND"
    printf 'C: %s\n' "$1"
    printf '%s\r\n' "$1" >&3
    read_reply || true
}

echo "== plain SMTP, lock-step, $HOST:$PORT"
if ! exec 3<>"/dev/tcp/$HOST/$PORT"; then
    echo "cannot connect to $HOST:$PORT" >&2
    exit 1
fi
read_reply || true
expect "banner 220" '^220 ' "$REPLY_TEXT"
cmd "EHLO verifier.test"
expect "EHLO 250" '^250' "$REPLY_TEXT"
expect "STARTTLS offered" '250[- ]STARTTLS' "$REPLY_TEXT"
expect "PIPELINING offered" '250[- ]PIPELINING' "$REPLY_TEXT"
cmd "MAIL FROM:<probe@verifier.test>"
expect "MAIL 250" '^250 ' "$REPLY_TEXT"
cmd "RCPT TO:<alice@postfix.test>"
expect "alice 250" '^250 ' "$REPLY_TEXT"
cmd "RCPT TO:<nobody@postfix.test>"
expect "nobody 550 5.1.1" '^550 5\.1\.1 .*User unknown' "$REPLY_TEXT"
cmd "RCPT TO:<disabled@postfix.test>"
expect "disabled 5.2.1" '^5[0-9][0-9] 5\.2\.1 .*Mailbox disabled' "$REPLY_TEXT"
cmd "RCPT TO:<someone@other.test>"
expect "other.test relay denied" '^(454|554) [45]\.7\.1 .*Relay access denied' "$REPLY_TEXT"
cmd "RSET"
expect "RSET 250" '^250 ' "$REPLY_TEXT"
cmd "QUIT"
expect "QUIT 221" '^221 ' "$REPLY_TEXT"
exec 3<&- 3>&-

if command -v openssl >/dev/null 2>&1; then
    echo "== STARTTLS (openssl s_client), then pipelined MAIL/RCPT inside TLS"
    tls_out="$(
        { sleep 1
          # RFC 2920: EHLO ends a pipelined group, so wait for its reply
          # (Postfix logs "improper command pipelining" otherwise).
          printf 'EHLO verifier.test\r\n'
          sleep 0.5
          printf 'MAIL FROM:<probe@verifier.test>\r\n'
          printf 'RCPT TO:<bob@postfix.test>\r\nRCPT TO:<nobody@postfix.test>\r\n'
          printf 'RSET\r\nQUIT\r\n'
          sleep 2
        } | timeout 15 openssl s_client -starttls smtp -connect "$HOST:$PORT" \
                -servername mx.postfix.test -name verifier.test -brief -ign_eof 2>&1
    )" || true
    printf '%s\n' "$tls_out" | tr -d '\r' | sed 's/^/   | /'
    expect "TLS handshake" 'CONNECTION ESTABLISHED' "$tls_out"
    expect "certificate CN" 'CN ?= ?mx\.postfix\.test' "$tls_out"
    expect "bob 250 inside TLS" $'\n250 2\\.1\\.5 Ok' "$tls_out"
    expect "nobody 550 5.1.1 inside TLS" $'\n550 5\\.1\\.1 ' "$tls_out"
    expect "QUIT 221 inside TLS" $'\n221 ' "$tls_out"
fi

if [ "$fail" -ne 0 ]; then
    echo "== FAILED; last lines of $MAILLOG:"
    tail -n 30 "$MAILLOG" 2>/dev/null || true
    exit 1
fi
echo "== all checks passed"
