#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/world/postfix/start.sh RUN_DIR — start a throwaway, fully isolated,
# real Postfix on 127.0.0.50:2525 for interoperability tests.
#
# Everything lives under RUN_DIR (created if missing; must be on a path the
# `postfix` user can traverse):
#   RUN_DIR/etc/     config_directory: main.cf, master.cf, lookup tables,
#                    self-signed TLS cert/key (generated once with openssl)
#   RUN_DIR/queue/   queue_directory (root-owned; subdirs made by Postfix)
#   RUN_DIR/data/    data_directory (postfix-owned; made by Postfix)
#   RUN_DIR/maillog  the instance's log (maillog_file via postlogd)
#
# The instance is `postfix -c RUN_DIR/etc`; it shares only binaries and the
# postfix/postdrop users with a system Postfix (/etc/postfix and
# /var/spool/postfix are never touched). Its only network listener is the
# smtpd on 127.0.0.50:2525 (all other services are UNIX sockets/FIFOs under
# RUN_DIR/queue). It serves:
#   postfix.test  virtual mailbox domain; known users alice, bob, postmaster
#                 (and disabled, whose RCPT is refused with 5.2.1)
#   unknown user  550 5.1.1 ... User unknown in virtual mailbox table
#   other domain  554 5.7.1 ... Relay access denied
#   STARTTLS      offered (smtpd_tls_security_level = may); PIPELINING on
# It makes no DNS lookups and delivers nothing anywhere: postfix.test goes
# to discard:, everything else to error: (and the verifier never sends DATA).
#
# Idempotent: generated files are rewritten only when their content changes;
# if this instance is already running it is reloaded instead of started. Waits until the port answers with a 220
# banner; on failure exits non-zero and prints the tail of RUN_DIR/maillog.
# Env: POSTFIX_START_TIMEOUT (seconds, default 30).
# Run as root. Stop with stop.sh RUN_DIR; check with check.sh RUN_DIR.
#
# Parameters for other instances (bench/realworld/ runs several; the tests
# use none of them, and the defaults give the instance described above):
#   POSTFIX_LISTEN     IP:PORT of the smtpd (default 127.0.0.50:2525)
#   POSTFIX_HOSTNAME   myhostname and certificate name (default mx.postfix.test)
#   POSTFIX_NAME       syslog_name, the log lines' prefix (default postfix-test)
#   POSTFIX_DOMAINS    a texthash file "domain anything" per line: the virtual
#                      mailbox domains (default: postfix.test)
#   POSTFIX_MAILBOXES  a texthash file "user@domain path/" per line: the known
#                      recipients (default: the table above)
#   POSTFIX_EXTRA_CF   a file whose lines are appended to main.cf (a parameter
#                      set there overrides the one above)
set -euo pipefail

LISTEN="${POSTFIX_LISTEN:-127.0.0.50:2525}"
LISTEN_ADDR="${LISTEN%:*}"
LISTEN_PORT="${LISTEN##*:}"
MYHOSTNAME="${POSTFIX_HOSTNAME:-mx.postfix.test}"
SYSLOG_NAME="${POSTFIX_NAME:-postfix-test}"
TIMEOUT="${POSTFIX_START_TIMEOUT:-30}"

log() { printf 'postfix/start: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$#" -eq 1 ] || die "usage: $0 RUN_DIR"
[ "$(id -u)" -eq 0 ] || die "must run as root (Postfix master needs it)"
command -v postfix >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
command -v postfix >/dev/null 2>&1 ||
    die "postfix not installed: run $(dirname "$0")/install.sh first"
command -v openssl >/dev/null 2>&1 || die "openssl not installed: run install.sh"

mkdir -p "$1"
RUN_DIR="$(cd "$1" && pwd -P)"
case "$RUN_DIR" in
    *[[:space:]]* | *,* | *'$'*) die "RUN_DIR must not contain blanks, commas or '\$': $RUN_DIR" ;;
esac
CONF="$RUN_DIR/etc"
QUEUE="$RUN_DIR/queue"
DATA="$RUN_DIR/data"
MAILLOG="$RUN_DIR/maillog"

log_tail() {
    if [ -s "$MAILLOG" ]; then
        log "last lines of $MAILLOG:"
        tail -n 40 "$MAILLOG" >&2
    else
        log "($MAILLOG is empty or missing)"
    fi
}

# Returns 0 if something on LISTEN_ADDR:LISTEN_PORT greets with "220".
banner_ok() {
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        IFS= read -r -t 4 line <&3 || exit 1
        printf "QUIT\r\n" >&3
        case "$line" in 220*) exit 0 ;; *) exit 1 ;; esac
    ' _ "$LISTEN_ADDR" "$LISTEN_PORT" 2>/dev/null
}

instance_running() {
    [ -f "$CONF/main.cf" ] && postfix -c "$CONF" status >/dev/null 2>&1
}

# install_conf FILE < CONTENT: write a generated config file only if its
# content changed, and then backdate it. Postfix refuses to read a main.cf or
# texthash table modified within the last ~2 seconds (it polls until the file
# is "stable"), so a freshly written file would add ~2s to start and to the
# first smtpd connection.
install_conf() {
    local f="$1"
    cat > "$f.new"
    chmod 644 "$f.new"
    if [ -f "$f" ] && cmp -s "$f" "$f.new"; then
        rm -f "$f.new"
    else
        touch -d "@$(( $(date +%s) - 10 ))" "$f.new"
        mv -f "$f.new" "$f"
    fi
}

# --- directories ------------------------------------------------------------
# Postfix daemons run as the postfix user and chdir into the queue directory:
# RUN_DIR must be traversable by it (mktemp -d makes 0700 dirs).
chmod 755 "$RUN_DIR"
mkdir -p "$CONF" "$QUEUE"
chown root:root "$CONF" "$QUEUE"
chmod 755 "$CONF" "$QUEUE"
if ! setpriv --reuid=postfix --regid=postfix --clear-groups test -x "$QUEUE"; then
    die "user postfix cannot reach $QUEUE: make every parent of RUN_DIR world-searchable (o+x)"
fi
touch "$MAILLOG"

# --- lookup tables (texthash: read directly, no postmap) -------------------
if [ -n "${POSTFIX_DOMAINS:-}" ]; then
    install_conf "$CONF/virtual_domains" < "$POSTFIX_DOMAINS"
    VIRTUAL_DOMAINS="texthash:$CONF/virtual_domains"
else
    VIRTUAL_DOMAINS=postfix.test
fi
if [ -n "${POSTFIX_MAILBOXES:-}" ]; then
    install_conf "$CONF/virtual_mailboxes" < "$POSTFIX_MAILBOXES"
else
install_conf "$CONF/virtual_mailboxes" <<'TBL'
# Known recipients of postfix.test (texthash:, no postmap needed).
# The right-hand side is a mailbox path; nothing is ever delivered.
alice@postfix.test       postfix.test/alice/
bob@postfix.test         postfix.test/bob/
postmaster@postfix.test  postfix.test/postmaster/
disabled@postfix.test    postfix.test/disabled/
TBL
fi
install_conf "$CONF/recipient_access" <<'TBL'
# check_recipient_access table (texthash:).
disabled@postfix.test    REJECT 5.2.1 Mailbox disabled
TBL

# --- TLS: self-signed certificate, generated once -------------------------
if [ ! -s "$CONF/tls.key" ] || [ ! -s "$CONF/tls.crt" ]; then
    log "generating self-signed certificate for $MYHOSTNAME"
    openssl req -x509 -newkey rsa:2048 -sha256 -days 3650 -nodes \
        -keyout "$CONF/tls.key" -out "$CONF/tls.crt" \
        -subj "/CN=$MYHOSTNAME" \
        -addext "subjectAltName=DNS:$MYHOSTNAME" >/dev/null 2>&1 ||
        die "openssl could not generate the certificate"
fi
chmod 600 "$CONF/tls.key"
chmod 644 "$CONF/tls.crt"

# --- main.cf ----------------------------------------------------------------
{
cat <<CF
# Throwaway Postfix for emailverify interoperability tests.
# Generated by tests/world/postfix/start.sh; rewritten on every start.
compatibility_level = 3.6

queue_directory = $QUEUE
data_directory = $DATA
mail_owner = postfix
setgid_group = postdrop

# Logging goes to a file via the postlog service (master.cf).
maillog_file = $MAILLOG
maillog_file_prefixes = $RUN_DIR
syslog_name = $SYSLOG_NAME

myhostname = $MYHOSTNAME
mydomain = postfix.test
myorigin = \$myhostname
mydestination =
# Only used for anvil rate-limit exemptions: no restriction below uses
# permit_mynetworks, so local test clients are treated like strangers.
mynetworks = 127.0.0.0/8
relay_domains =
inet_interfaces = loopback-only
inet_protocols = ipv4

# The recipient domain.
virtual_mailbox_domains = $VIRTUAL_DOMAINS
virtual_mailbox_maps = texthash:$CONF/virtual_mailboxes
virtual_alias_maps =
alias_maps =
alias_database =
local_recipient_maps =
smtpd_reject_unlisted_recipient = yes
smtpd_reject_unlisted_sender = no

# Restrictions: no RBLs, no sender/client checks, no DNS.
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access texthash:$CONF/recipient_access
smtpd_peername_lookup = no

# STARTTLS with a self-signed certificate.
smtpd_tls_security_level = may
smtpd_tls_cert_file = $CONF/tls.crt
smtpd_tls_key_file = $CONF/tls.key
smtpd_tls_loglevel = 1
smtpd_tls_received_header = no

# Never deliver anything, never look anything up in DNS. The verifier never
# sends DATA, so nothing is queued; if anything ever were, postfix.test mail
# is discarded (virtual_transport must not be error: or retry:, or smtpd
# rejects every postfix.test RCPT with that transport's text) and anything
# else bounces through error:, which never leaves the machine either.
default_transport = error:delivery disabled in this test instance
relay_transport = \$default_transport
local_transport = \$default_transport
virtual_transport = discard:test instance never delivers
smtp_dns_support_level = disabled
smtp_host_lookup = native
biff = no
append_dot_mydomain = no
CF
} | if [ -n "${POSTFIX_EXTRA_CF:-}" ]; then
    # a parameter of POSTFIX_EXTRA_CF replaces the line above (no
    # "overriding earlier entry" warnings), then the file is appended
    awk -v extra="$POSTFIX_EXTRA_CF" '
        BEGIN { while ((getline l < extra) > 0) if (l ~ /^[a-z_0-9]+[ \t]*=/) { sub(/[ \t]*=.*/, "", l); set[l] = 1 }; close(extra) }
        { k = $0; sub(/[ \t]*=.*/, "", k); if (!(k in set)) print }
        END { printf "\n# --- POSTFIX_EXTRA_CF (%s)\n", extra
              while ((getline l < extra) > 0) print l }'
else
    cat
fi | install_conf "$CONF/main.cf"

# --- master.cf: one inet listener, the internal services it needs -----------
install_conf "$CONF/master.cf" <<CF
# Generated by tests/world/postfix/start.sh. No chroot; no smtp/local/virtual
# delivery agents (transports are error: and discard:). Only network listener:
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
# ==========================================================================
$LISTEN_ADDR:$LISTEN_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF

# --- start (or reload) -------------------------------------------------------
t0=$(date +%s.%N)
if instance_running; then
    log "instance already running: reloading configuration"
    postfix -c "$CONF" reload >/dev/null 2>&1 || { log_tail; die "postfix reload failed"; }
else
    if banner_ok; then
        die "$LISTEN_ADDR:$LISTEN_PORT already answers, but not from this instance ($CONF)"
    fi
    # Output goes to a file, not "$(...)": postfix-script leaves a background
    # `check-warn` holding stdout, and a pipe would make us wait ~2s for it.
    if ! postfix -c "$CONF" start >"$RUN_DIR/start.out" 2>&1; then
        cat "$RUN_DIR/start.out" >&2
        log_tail
        die "postfix -c $CONF start failed"
    fi
fi

deadline=$(( $(date +%s) + TIMEOUT ))
until banner_ok; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        log_tail
        die "no 220 banner on $LISTEN_ADDR:$LISTEN_PORT within ${TIMEOUT}s"
    fi
    if ! instance_running; then
        log_tail
        die "postfix master of $CONF is not running"
    fi
    sleep 0.1
done
t1=$(date +%s.%N)
log "ready on $LISTEN_ADDR:$LISTEN_PORT (config $CONF, log $MAILLOG) in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2fs", b - a }')"
