#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/deploy/systemd-check.sh [WORK_DIR] - deploy/systemd checked with
# systemd-analyze, offline (no systemd needs to run): the units are put into
# a scratch root (WORK_DIR/root) with the host's own unit files, stand-ins
# for the installed programs and the environment file, then
#   systemd-analyze verify --root   (any message is a failure, not just its exit status)
#   systemd-analyze security --offline=yes   (exposure score must stay <= 2.0)
# for emailverify-coordinator.service and an instance of emailverify-worker@.service;
# and the stop timeout must exceed the programs' --shutdown-timeout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
work=${1:-$src/build/systemd-check}
die() { echo "systemd-check: FAILED: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "systemd-check: SKIPPED: no systemd-analyze (apt-get install systemd)"; exit 77; }
sysunits=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /usr/lib/systemd/system)
[[ -f $sysunits/sysinit.target ]] || sysunits=/lib/systemd/system
mkdir -p "$work"
work=$(cd "$work" && pwd)
root=$work/root
rm -rf "$root"
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/emailverify/pools" "$root/usr/lib/systemd"
cp -a "$sysunits" "$root/usr/lib/systemd/system"
for b in emailverify-coordinator emailverify-worker; do
	printf '#!/bin/sh\nexit 0\n' >"$root/usr/local/bin/$b"
	chmod 755 "$root/usr/local/bin/$b"
done
cp "$src/deploy/systemd/emailverify.env.example" "$root/etc/emailverify/emailverify.env"
cp "$src/deploy/pools/eu-west.conf" "$root/etc/emailverify/pools/eu-west.conf"
cp "$src"/deploy/systemd/*.service "$root/etc/systemd/system/"
ln -s emailverify-worker@.service "$root/etc/systemd/system/emailverify-worker@eu-west.service"
units=(emailverify-coordinator.service emailverify-worker@eu-west.service)
status=0
out=$(cd "$root/etc/systemd/system" && systemd-analyze verify --root="$root" "${units[@]}" 2>&1) || status=$?
if ((status != 0)) || [[ -n $out ]]; then
	echo "$out"
	die "systemd-analyze verify: exit $status$([[ -n $out ]] && echo ', with the messages above')"
fi
echo "systemd-check: systemd-analyze verify: ${units[*]}: ok ($(systemd-analyze --version | head -n 1))"
for u in "${units[@]}"; do
	line=$(systemd-analyze security --offline=yes --root="$root" "$u" 2>&1 | tail -n 1)
	score=$(sed -n 's/.*exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$line")
	[[ -n $score ]] || die "systemd-analyze security $u: $line"
	echo "systemd-check: systemd-analyze security $u: exposure $score"
	awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || die "$u: exposure $score is above 2.0"
done
for f in "$src"/deploy/systemd/*.service; do
	for k in NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes User=emailverify RestrictAddressFamilies= 'CapabilityBoundingSet=$'; do
		grep -q "^$k" "$f" || die "$(basename "$f"): no $k"
	done
	stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\?$/\1/p' "$f")
	sd=$(sed -n 's/^ExecStart=.*--shutdown-timeout \([0-9]*\).*/\1/p' "$f")
	[[ -n $stop && -n $sd ]] && ((stop > sd)) || die "$(basename "$f"): TimeoutStopSec ($stop) must exceed --shutdown-timeout ($sd)"
done
echo "systemd-check: hardening options and stop timeouts: ok"
