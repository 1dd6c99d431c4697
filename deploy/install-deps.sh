#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deploy/install-deps.sh [--test|--run] — install the Debian 12 packages
# emailverify needs to build and run (with --test, to run its test suite;
# with --run, the PostgreSQL server for `emailverify run`).
# Idempotent: installs only what is missing; runs `apt-get update` only when
# something must be installed. Needs root (or sudo) when anything is missing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
lists=("$here/packages-build.txt")
[ "${1:-}" = "--test" ] && lists+=("$here/../tests/packages-test.txt")
[ "${1:-}" = "--run" ] && lists+=("$here/packages-run.txt")

want=()
for f in "${lists[@]}"; do
    while read -r p rest; do
        case "$p" in ''|'#'*) continue ;; esac
        # "# if-no-command: CMD": wanted only when CMD is not there already
        # (npm: nodesource's nodejs ships its own, which Debian's conflicts with)
        if [[ $rest =~ if-no-command:\ *([A-Za-z0-9_.-]+) ]] && command -v "${BASH_REMATCH[1]}" >/dev/null; then
            continue
        fi
        want+=("$p")
    done < "$f"
done

missing=()
for p in "${want[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# unbound's package would start a system resolver on port 53; keep services down
# during installation (a policy-rc.d that already exists is left alone).
cleanup=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    cleanup=1
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
[ -n "$cleanup" ] && $SUDO rm -f /usr/sbin/policy-rc.d
# Debian's default PostgreSQL cluster, created by this install: we never use
# it (deploy/local-pg.sh runs a private one), so it does not start at boot
for p in "${missing[@]}"; do
    [ "$p" = postgresql-15 ] || continue
    for conf in /etc/postgresql/15/*/start.conf; do
        [ -f "$conf" ] && $SUDO sed -i 's/^auto$/manual/' "$conf"
    done
done
exit 0
