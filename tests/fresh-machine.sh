#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/fresh-machine.sh — the set-up check: both README commands on a fresh
# Debian 12, as a new user would run them, from the committed tree only.
#
#   1. a minimal Debian 12 root (debootstrap --variant=minbase bookworm),
#      from the mirror this machine's own apt sources name; its tarball is
#      cached in build/fresh-root/ so later runs skip debootstrap;
#   2. `git archive HEAD` of this checkout copied in (uncommitted files do
#      not count: a clean clone is what a user gets);
#   3. in a chroot with /proc, /sys and /dev mounted:
#        quickstart  deploy/quickstart.sh run LIST -o OUT: installs what the
#                    main job needs (no test packages), builds, starts its
#                    private PostgreSQL and verifies a small list against the
#                    test world (unbound + SMTP test servers, started here
#                    from the host's test build).  Every verdict is checked.
#                    The install needs the mirror, so the command runs twice:
#                    first as `quickstart.sh run --help` (install, build,
#                    PostgreSQL), then on the list in a network namespace of
#                    its own (unshare -n) with its own world on its loopback:
#                    no address outside it is reachable, and nothing on the
#                    host's loopback (another world, a developer's servers)
#                    is in the way.
#        testsuite   tests/run-all.sh, the README's test command: installs
#                    the test packages, builds, runs every fuzzer briefly
#                    and the ctest tests labelled "setup": every unit,
#                    install, deploy and static test and one test per
#                    server the suite starts (unbound, the SMTP test
#                    servers, Postfix, PostgreSQL, one and three Kafka
#                    brokers, Chromium).  The host's own run of
#                    tests/run-all.sh runs every test: running them all
#                    twice would cost 10 of the suite's 40 minutes.
#                    EMV_FRESH_SUITE=full runs every test here too;
#                    EMV_FRESH_SUITE=build stops after install and build.
#   4. everything the chroot started is killed and everything mounted is
#      unmounted on exit, pass or fail.  The host's packages are never
#      touched (apt runs inside the root only).
#
# Usage: tests/fresh-machine.sh [TESTSMTPD]
#   TESTSMTPD   the host's emv-testsmtpd (default build/test/tests/world/emv-testsmtpd)
# Environment: EMV_FRESH_DIR (default build/fresh-root), EMV_FRESH_SUITE
# (setup|full|build|none, default setup), EMV_FRESH_KEEP=1 keeps the root afterwards.
# Needs root, debootstrap and network access to the Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
smtpd=${1:-$src/build/test/tests/world/emv-testsmtpd}
dir=${EMV_FRESH_DIR:-$src/build/fresh-root}
suite=${EMV_FRESH_SUITE:-setup}
t0=$(date +%s)

say() { printf 'fresh-machine: [%4ss] %s\n' "$(($(date +%s) - t0))" "$*"; }
die() { say "FAILED: $*"; exit 1; }

((EUID == 0)) || die "needs root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null || die "debootstrap not installed (deploy/install-deps.sh --test)"
[[ -x $smtpd ]] || die "no test SMTP server at $smtpd (build the test tree first)"
git rev-parse HEAD >/dev/null 2>&1 || die "not a git checkout"

# The mirror: the first bookworm (not -security) source of this machine's
# apt configuration, one-line or deb822 style.
mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		awk '$1 == "deb" { u = ""; for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { u = $i; s = $(i + 1); break }
		     if (u != "" && s == "bookworm") { print u; exit } }' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		awk 'BEGIN { RS = ""; FS = "\n" }
		     { u = ""; s = ""
		       for (i = 1; i <= NF; i++) { if ($i ~ /^URIs:/) u = $i; if ($i ~ /^Suites:/) s = $i }
		       sub(/^URIs:[ \t]*/, "", u); split(u, us, /[ \t]+/)
		       if (s ~ /[ \t]bookworm([ \t]|$)/ && us[1] != "") { print us[1]; exit } }' "$f"
	done
}
MIRROR=$(mirror | head -n 1)
[[ -n $MIRROR ]] || die "no bookworm source in /etc/apt/sources.list{,.d}: cannot tell which mirror to use"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
tarball=$dir/bookworm-minbase.tar
root=$dir/root
world=$dir/world

# --- cleanup: kill what runs in the root, unmount, stop the world ---------
in_root_pids() {
	local p r
	for p in /proc/[0-9]*; do
		r=$(readlink "$p/root" 2>/dev/null) || continue
		[[ $r == "$root" || $r == "$root"/* ]] && echo "${p#/proc/}"
	done
	return 0
}
cleanup() {
	local rc=$? pids m
	set +e
	pids=$(in_root_pids)
	if [[ -n $pids ]]; then
		kill $pids 2>/dev/null
		sleep 2
		pids=$(in_root_pids)
		[[ -n $pids ]] && kill -9 $pids 2>/dev/null && sleep 1
	fi
	# deepest first
	for m in $(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	[[ -d $world ]] && bash "$src/tests/world/stop.sh" "$world" >/dev/null 2>&1
	if awk -v r="$root" '$2 == r || index($2, r "/") == 1 { f = 1 } END { exit !f }' /proc/self/mounts; then
		say "WARNING: something is still mounted under $root; not removing it"
	elif [[ -z ${EMV_FRESH_KEEP:-} ]]; then
		rm -rf "$root"
	fi
	say "done (exit $rc)"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the root ----------------------------------------------------------
rm -rf "$root"
if [[ ! -s $tarball ]]; then
	say "debootstrap --variant=minbase bookworm from $MIRROR"
	rm -rf "$dir/new"
	debootstrap --variant=minbase bookworm "$dir/new" "$MIRROR" >"$dir/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$dir/debootstrap.log"; die "debootstrap failed (log: $dir/debootstrap.log)"; }
	tar -C "$dir/new" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
	rm -rf "$dir/new"
	say "root made and cached in $tarball"
fi
mkdir -p "$root"
tar -C "$root" -xf "$tarball"
# The network's own settings, as a new machine on this network would get
# them: the resolver, and the site's extra certificate authorities (a
# network whose egress proxy re-signs TLS has one; Debian's ca-certificates
# takes them in from /usr/local/share/ca-certificates when it is installed,
# and Java's keystore from there, so Maven can reach its repository).
cp /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
	mkdir -p "$root/usr/local/share/ca-certificates"
	cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
mkdir -p "$root/src/emailverify"
git archive HEAD | tar -x -C "$root/src/emailverify"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
# Maven's downloads (the Kafka jars of the cluster tests) are kept between
# runs like the root's tarball
mkdir -p "$dir/m2" "$root/root/.m2"
mount --bind "$dir/m2" "$root/root/.m2"
say "root ready: Debian $(cat "$root/etc/debian_version"), $(git rev-parse --short HEAD) copied in"

inroot() { chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	LANG=C.UTF-8 CI="${CI:-}" EMV_FRESH_INNER=1 "$@"; }

# --- 2. the quick start ---------------------------------------------------
say "quickstart: deploy/quickstart.sh run --help (installs, builds, starts PostgreSQL)"
if ! inroot /bin/bash -c 'cd /src/emailverify && deploy/quickstart.sh run --help' >"$dir/quickstart-install.log" 2>&1; then
	tail -n 40 "$dir/quickstart-install.log"
	die "the quick start's install and build failed (log: $dir/quickstart-install.log)"
fi
inroot /bin/bash -c 'cd /src/emailverify && deploy/local-pg.sh stop' >/dev/null 2>&1 || true
cat >"$root/tmp/list.csv" <<'EOF'
name,email
Alice,alice@accept.test
Nobody,nobody@accept.test
Full,full@accept.test
Anyone,anyone@catchall.test
Gone,x@nosuchdomain.test
Broken,not an address
EOF
say "quickstart: deploy/quickstart.sh run /tmp/list.csv -o /tmp/results.csv (own network namespace)"
export root world smtpd src
if ! unshare -n /bin/bash -c '
	set -e
	ip link set lo up
	bash "$src/tests/world/start.sh" "$world" "$smtpd" >"$world.start.log" 2>&1 || { cat "$world.start.log"; exit 1; }
	rc=0
	chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 /bin/bash -c "cd /src/emailverify && deploy/quickstart.sh run /tmp/list.csv -o /tmp/results.csv \
		--dns 127.0.0.1:5300 --smtp-port 2525 --allow-private-mx --preflight-domains accept.test \
		--helo probe.verifier.test --mail-from probe@verifier.test; rc=\$?;
		deploy/local-pg.sh stop >/dev/null 2>&1; exit \$rc" || rc=$?
	bash "$src/tests/world/stop.sh" "$world" >/dev/null 2>&1 || true
	exit $rc' >"$dir/quickstart.log" 2>&1; then
	tail -n 40 "$dir/quickstart.log"
	die "the quick start failed (log: $dir/quickstart.log)"
fi
out=$root/tmp/results.csv
[[ -f $out ]] || die "the quick start wrote no results file"
expect() { # EMAIL STATUS REASON
	grep -q "^\"\?$1\"\?,$2,$3," "$out" || { cat "$out"; die "quick start: expected $1 -> $2 / $3"; }
}
expect alice@accept.test deliverable accepted
expect nobody@accept.test undeliverable mailbox_not_found
expect full@accept.test risky mailbox_full
expect anyone@catchall.test risky catch_all
expect x@nosuchdomain.test undeliverable no_domain
grep -q 'invalid_syntax' "$out" || { cat "$out"; die "quick start: the broken row has no invalid_syntax result"; }
rows=$(($(wc -l <"$out") - 1))
((rows == 6)) || { cat "$out"; die "quick start: $rows result rows for 6 input rows"; }
if inroot dpkg-query -W -f='${Status}\n' libcmocka-dev clang 2>/dev/null | grep -q 'install ok installed'; then
	die "the quick start installed test packages (cmocka or clang)"
fi
say "quickstart: ok, 6 rows, every verdict as expected, no test package installed"

# --- 3. the test command --------------------------------------------------
case $suite in
none) say "testsuite: skipped (EMV_FRESH_SUITE=none)"; exit 0 ;;
build) cmd='bash deploy/install-deps.sh --test && bash tests/world/postfix/install.sh && bash tests/cluster/install.sh &&
	cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DEMV_SANITIZE=ON && cmake --build build/test -j2 &&
	cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DEMV_FUZZ=ON && cmake --build build/fuzz -j2 --target fuzz_address' ;;
# the fuzzers' long runs are the host's (run-all.sh's own fuzz stage): here they
# only prove they build and start, which keeps the whole check under 40 minutes
full) cmd='EMV_FUZZ_SECONDS=3 bash tests/run-all.sh' ;;
setup) cmd='EMV_FUZZ_SECONDS=3 EMV_TEST_LABEL=setup bash tests/run-all.sh' ;;
*) die "EMV_FRESH_SUITE must be setup, full, build or none" ;;
esac
say "testsuite ($suite): ${cmd%% &&*}"
if ! inroot /bin/bash -c "cd /src/emailverify && $cmd" >"$dir/testsuite.log" 2>&1; then
	tail -n 60 "$dir/testsuite.log"
	die "the test command failed in the fresh root (log: $dir/testsuite.log)"
fi
{ grep -E 'tests passed|tests failed|Total Test time' "$dir/testsuite.log" || true; } | tail -n 3 | sed 's/^/fresh-machine:   /'
say "testsuite: ok"
