#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/realworld/install.sh — install what the real-server bench needs:
# Debian's postfix (through tests/world/postfix/install.sh, which keeps the
# system instance down), postgrey and unbound, plus the build dependencies
# (deploy/install-deps.sh --test).  Idempotent; installs only what is
# missing; never starts a system service (policy-rc.d during the install,
# services disabled afterwards).  Run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { printf 'realworld/install: %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }

"$root/deploy/install-deps.sh" --test
"$root/tests/world/postfix/install.sh"

need=()
for p in postgrey unbound; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	cand=$(apt-cache policy postgrey 2>/dev/null | awk '/Candidate:/ { print $2 }')
	if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then apt-get update -q >/dev/null; fi
	policy=/usr/sbin/policy-rc.d own=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# temporary, by bench/realworld/install.sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		own=1
		trap 'rm -f "$policy"' EXIT
	fi
	log "installing: ${need[*]}"
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
	[ "$own" -eq 0 ] || { rm -f "$policy"; trap - EXIT; }
fi
# The bench runs its own postgrey and unbound; the system services stay off.
for s in postgrey unbound; do
	if command -v update-rc.d >/dev/null 2>&1 && [ -e "/etc/init.d/$s" ]; then
		update-rc.d "$s" disable >/dev/null 2>&1 || true
	fi
	if command -v systemctl >/dev/null 2>&1 && [ -e "/lib/systemd/system/$s.service" ]; then
		if [ -d /run/systemd/system ]; then systemctl disable --now "$s.service" >/dev/null 2>&1 || true
		else systemctl disable "$s.service" >/dev/null 2>&1 || true; fi
	fi
done
command -v postgrey >/dev/null || PATH=$PATH:/usr/sbin
command -v postgrey >/dev/null && command -v unbound >/dev/null && command -v postfix >/dev/null
log "ok: postfix $(postconf -d -h mail_version), postgrey $(dpkg-query -W -f='${Version}' postgrey), unbound $(dpkg-query -W -f='${Version}' unbound)"
