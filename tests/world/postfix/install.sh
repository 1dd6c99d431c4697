#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/world/postfix/install.sh — make Debian's postfix package available for
# the throwaway interoperability-test instance (see start.sh), without ever
# bringing up the *system* Postfix on port 25.
#
# Idempotent: does nothing but a few checks when postfix and openssl are
# already installed. Must run as root (apt-get). Safe to run repeatedly.
#
#  * debconf is preseeded with "No configuration", so the package leaves no
#    /etc/postfix/main.cf and asks nothing (DEBIAN_FRONTEND=noninteractive).
#  * `apt-get update` only runs when apt knows no candidate for postfix.
#  * A temporary /usr/sbin/policy-rc.d (exit 101) forbids invoke-rc.d from
#    starting the service during installation, unless one already exists
#    (Docker-style images ship one that already denies everything).
#  * Afterwards the SysV links are disabled (update-rc.d) and the systemd
#    unit is disabled (offline if systemd is not PID 1; with --now if it is).
#    Nothing is started.
set -euo pipefail

log() { printf 'postfix/install: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root"
    exit 1
fi

pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

need=()
pkg_installed postfix || need+=(postfix)
pkg_installed openssl || need+=(openssl)

if [ "${#need[@]}" -eq 0 ]; then
    log "postfix $(dpkg-query -W -f='${Version}' postfix) and openssl already installed"
else
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

    # Refresh package lists only if apt does not know the packages yet.
    for p in "${need[@]}"; do
        cand="$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')"
        if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
            log "no candidate for $p: running apt-get update"
            apt-get update -q
            break
        fi
    done

    # Keep invoke-rc.d from starting the system service during postinst.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# temporary, by tests/world/postfix/install.sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        own_policy=1
        trap 'rm -f "$policy"' EXIT
    fi

    log "installing: ${need[*]}"
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${need[@]}"

    if [ "$own_policy" -eq 1 ]; then
        rm -f "$policy"
        trap - EXIT
    fi
fi

# Never let the system instance come up at boot on port 25.
if command -v update-rc.d >/dev/null 2>&1 && [ -e /etc/init.d/postfix ]; then
    update-rc.d postfix disable >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1 && [ -e /lib/systemd/system/postfix.service ]; then
    if [ -d /run/systemd/system ]; then
        systemctl disable --now postfix.service >/dev/null 2>&1 || true
    else
        # Works offline too: removes the multi-user.target.wants link that
        # the postinst created, so a later systemd boot would not start it.
        systemctl disable postfix.service >/dev/null 2>&1 || true
    fi
fi

# Report (but do not touch) a system Postfix that someone else runs.
if [ -f /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
    log "WARNING: the system Postfix instance (/etc/postfix) is running;" \
        "the test instance does not need it and does not touch it"
fi

command -v postfix >/dev/null && command -v postconf >/dev/null && command -v openssl >/dev/null
log "ok: $(postconf -d -h mail_version 2>/dev/null | sed 's/^/postfix /')"
