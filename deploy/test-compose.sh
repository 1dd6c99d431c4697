#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deploy/test-compose.sh [TESTSMTPD] - the compose stack of deploy/compose.yaml,
# built and run here, end to end (docs/operations.md):
#
#   1. packages: podman, podman-compose, runc (apt-get, only if missing);
#      podman's settings come from a containers.conf of our own
#      (CONTAINERS_CONF: runc, cgroup_manager = "cgroupfs", default_ulimits = [],
#      file events and logs), the host's /etc/containers is not touched;
#   2. base images without a registry: the Debian 12 minbase root of the
#      set-up check (build/fresh-root/bookworm-minbase.tar, made with
#      debootstrap if missing), `podman import`ed after apt-get in a chroot
#      (the host's apt, the Debian mirror) put in what each needs:
#        localhost/emailverify-test/debian-build:12       deploy/packages-build.txt
#        localhost/emailverify-test/debian-runtime:12     deploy/packages-image.txt
#        localhost/emailverify-test/debian-jre:12         openjdk-17-jre-headless
#        localhost/emailverify-test/debian-postgresql:12  postgresql-15
#      each labelled with a hash of its inputs and made again only when they change;
#   3. images, all built with --network none (nothing is fetched inside):
#        localhost/emailverify-coordinator:VERSION, localhost/emailverify-worker:VERSION
#                                  deploy/Containerfile (targets coordinator, worker)
#        localhost/emailverify-test/kafka:3.9.2     stand-in for apache/kafka
#                                  (deploy/test/kafka: the jars of tests/cluster/kafka/pom.xml, by mvn)
#        localhost/emailverify-test/postgres:15     stand-in for postgres:15 (deploy/test/postgres)
#      and passes them to compose through the same variables an operator sets
#      (KAFKA_IMAGE, POSTGRES_IMAGE, EMV_COORDINATOR_IMAGE, EMV_WORKER_IMAGE);
#   4. in a network namespace of its own (unshare -n: only its own loopback;
#      no address outside it is reachable and the host's ports are not in
#      the way), the test world (tests/world: unbound + the SMTP test
#      servers on 127.0.0.x) and the stack of deploy/compose.yaml +
#      deploy/compose.host.yaml (host networking = that namespace's loopback)
#      with podman-compose, started in the order of its depends_on
#      conditions, each health check run with `podman healthcheck run`;
#   5. through the API: a token, an upload, the job followed to `done`, the
#      export checked verdict by verdict; a second, slower job during which
#      one worker container is killed (SIGKILL): the job still ends, every
#      row exactly once, every verdict right; both source addresses (one per
#      region) seen by the SMTP servers, and no other;
#   6. then deploy/compose.yaml alone, unchanged, on its own bridge network
#      (services by name, the API's published port): up to a ready `serve`
#      and an upload split into Kafka (no workers: they could not reach the
#      test world from there);
#   7. everything torn down (containers, volumes, networks, world), pass or fail.
#
# Environment: EMV_COMPOSE_DIR (build/compose), EMV_DEBIAN_TARBALL (a
# debootstrap minbase tarball to use instead of build/fresh-root's),
# EMV_COMPOSE_KEEP=1 leaves the stack running (for a look; tear down with
# the command it prints).  Needs root.  Takes ~5 min with the images
# cached, ~8 min the first time (base images 2 min, the images 1 min), plus
# debootstrap (~30 s) when the set-up check has not cached its root yet.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
dir=${EMV_COMPOSE_DIR:-$src/build/compose}
smtpd=${1:-${EMV_TESTSMTPD:-$src/build/test/tests/world/emv-testsmtpd}}
t0=${EMV_COMPOSE_T0:-$(date +%s)}
export EMV_COMPOSE_T0=$t0
say() { printf 'test-compose: [%4ss] %s\n' "$(($(date +%s) - t0))" "$*"; }
die() { say "FAILED: $*"; exit 1; }

version=$(sed -n 's/^project(emailverify VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
T=localhost/emailverify-test
export CONTAINERS_CONF=$dir/containers.conf
# no systemd here to run health checks on timers: the test runs them itself
# (`podman healthcheck run`)
export DISABLE_HC_SYSTEMD=true
export KAFKA_IMAGE=$T/kafka:3.9.2
export POSTGRES_IMAGE=$T/postgres:15
export EMV_COORDINATOR_IMAGE=localhost/emailverify-coordinator:$version
export EMV_WORKER_IMAGE=localhost/emailverify-worker:$version
project=emvtest
run=$dir/run

compose() {
	podman-compose --podman-path "$src/deploy/test/podman-hostnet" -p "$project" \
		-f "$src/deploy/compose.yaml" -f "$src/deploy/compose.host.yaml" -f "$run/compose.test.yaml" "$@"
}

# ===========================================================================
# the inner part: in the network namespace of its own (step 4 onwards)
# ===========================================================================
if [[ ${1:-} == --inner ]]; then
	smtpd=$2
	ip link set lo up
	world=$run/world
	cleanup() {
		local rc=$?
		set +e
		if [[ -n ${EMV_COMPOSE_KEEP:-} ]]; then
			say "left running (EMV_COMPOSE_KEEP): nsenter --net=/proc/$$/ns/net ... ; tear down with podman-compose ... down -v"
		fi
		say "tearing down"
		compose logs >"$run/compose-logs.txt" 2>&1
		compose down -v -t 30 >"$run/down.log" 2>&1
		podman network rm -f "${project}_default" >/dev/null 2>&1
		bcompose logs >"$run/compose-bridge-logs.txt" 2>&1
		bcompose down -v -t 10 >"$run/down-bridge.log" 2>&1
		podman network rm -f "${project}br_default" >/dev/null 2>&1
		bash "$src/tests/world/stop.sh" "$world" >/dev/null 2>&1
		exit $rc
	}
	trap cleanup EXIT
	trap 'exit 130' INT TERM

	bash "$src/tests/world/start.sh" "$world" "$smtpd" >"$run/world.log" 2>&1 ||
		{ cat "$run/world.log"; die "the test world did not start"; }
	say "test world up (DNS 127.0.0.1:5300, SMTP 127.0.0.x:2525) in this namespace"

	cn() { echo "${prefix:-$project}_$1_1"; }
	# compose.yaml alone, unchanged (its own bridge network, service names)
	bcompose() { EMV_ENV_FILE=$run/compose-bridge.env podman-compose -p "${project}br" -f "$src/deploy/compose.yaml" "$@"; }
	# wait_healthy SERVICE SECONDS: run the service's own health check until it passes
	wait_healthy() {
		local c i
		c=$(cn "$1")
		for ((i = 0; i < $2; i += 2)); do
			if podman healthcheck run "$c" >/dev/null 2>&1; then
				say "$1 healthy (its compose health check) after ${i}s"
				return 0
			fi
			[[ $(podman inspect -f '{{.State.Running}}' "$c" 2>/dev/null) == true ]] ||
				{ podman logs --tail 30 "$c" 2>&1 || true; die "$1 is not running"; }
			sleep 2
		done
		podman logs --tail 40 "$c" 2>&1 || true
		die "$1 not healthy after $2 s"
	}
	up() { compose up -d --no-deps --no-build "$@" >>"$run/up.log" 2>&1 || { tail -n 30 "$run/up.log"; die "up $*"; }; }

	# depends_on, in order (podman-compose 1.0.3 starts in this order but
	# does not wait for the conditions, so the test waits for them)
	say "starting postgres, kafka1..3 (compose.yaml + compose.host.yaml)"
	up postgres kafka1 kafka2 kafka3
	wait_healthy postgres 120
	for k in kafka1 kafka2 kafka3; do wait_healthy "$k" 180; done
	up kafka-init
	rc=$(timeout 180 podman wait "$(cn kafka-init)") || die "kafka-init did not finish"
	[[ $rc == 0 ]] || { podman logs "$(cn kafka-init)"; die "kafka-init exited $rc"; }
	say "kafka-init: the topics created (exit 0): $(podman logs "$(cn kafka-init)" 2>/dev/null | grep -c '^emailverify\.') emailverify topics"
	up migrate
	rc=$(timeout 120 podman wait "$(cn migrate)") || die "migrate did not finish"
	[[ $rc == 0 ]] || { podman logs "$(cn migrate)"; die "migrate exited $rc"; }
	say "migrate: completed (exit 0)"
	up serve
	wait_healthy serve 120
	up worker-eu-west worker-us-east
	sleep 3
	for w in worker-eu-west worker-us-east; do
		[[ $(podman inspect -f '{{.State.Running}}' "$(cn "$w")") == true ]] ||
			{ podman logs "$(cn "$w")"; die "$w is not running"; }
	done
	# the image's own HEALTHCHECK (compose replaces it with /readyz): its
	# command, run in the serving container, must pass
	podman image inspect "$EMV_COORDINATOR_IMAGE" >"$run/image-inspect.json"
	mapfile -t hc < <(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))[0]["Healthcheck"]["Test"]; assert t[0]=="CMD"; print("\n".join(t[1:]))' "$run/image-inspect.json")
	((${#hc[@]} == 3)) || die "cannot read the image's HEALTHCHECK ($run/image-inspect.json)"
	podman exec -e EMV_API_PORT=8080 "$(cn serve)" "${hc[@]}" || die "the image's HEALTHCHECK (${hc[*]}) fails against a serving coordinator"
	say "the image's HEALTHCHECK passes in the serving container"
	uid=$(podman exec "$(cn serve)" id -u)
	[[ $uid == 10001 ]] || die "serve runs as uid $uid, not the image's user 10001"
	say "workers up (regions eu-west: 127.0.0.2, us-east: 127.0.0.4); programs run as uid $uid"

	token=$(podman exec "$(cn serve)" emailverify-coordinator token create --tenant acme --name compose-test |
		grep -o 'ev_[A-Za-z0-9_-]*' | head -n 1)
	[[ -n $token ]] || die "no token from 'token create'"
	api=http://127.0.0.1:8080
	auth=(-H "Authorization: Bearer $token")

	# upload FILE NAME -> job id
	upload() {
		local out
		out=$(curl -sS --max-time 60 "${auth[@]}" -H 'Content-Type: text/csv' --data-binary @"$1" "$api/v1/jobs?name=$2") ||
			die "upload of $1 failed"
		python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out" 2>/dev/null ||
			die "upload of $1: $out"
	}
	# job_field ID FIELD
	job_field() {
		curl -sS --max-time 10 "${auth[@]}" "$api/v1/jobs/$1" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
	}
	# wait_done ID SECONDS
	wait_done() {
		local st end=$((SECONDS + $2))
		while ((SECONDS < end)); do
			st=$(job_field "$1" state 2>/dev/null || echo '?')
			[[ $st == done ]] && return 0
			[[ $st == failed ]] && die "job $1 failed"
			sleep 1
		done
		curl -sS "${auth[@]}" "$api/v1/jobs/$1" || true
		die "job $1 not done after $2 s"
	}
	# check_export ID LIST: every input row once, with the verdict its
	# expect_status / expect_reason columns name; the job's counters agree
	check_export() {
		curl -sS --max-time 60 "${auth[@]}" "$api/v1/jobs/$1/results?format=csv" -o "$run/export-$1.csv" ||
			die "export of job $1 failed"
		curl -sS --max-time 10 "${auth[@]}" "$api/v1/jobs/$1" -o "$run/job-$1.json"
		python3 - "$2" "$run/export-$1.csv" "$run/job-$1.json" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
out = list(csv.DictReader(open(sys.argv[2], newline="")))
job = json.load(open(sys.argv[3]))
errs = []
if len(out) != len(rows):
    errs.append(f"{len(out)} export rows for {len(rows)} input rows")
got = {}
for r in out:
    key = r["email"]
    if key in got:
        errs.append(f"{key}: exported twice")
    got[key] = r
for r in rows:
    key = r["email"].strip()
    g = got.get(key) or got.get("'" + key)
    if g is None:  # a row that is no address may be exported under its input only
        g = next((o for o in out if key and any(key in (v or "") for v in o.values())), None)
    if g is None:
        errs.append(f"{key}: missing from the export")
        continue
    if (g["status"], g["reason"]) != (r["expect_status"], r["expect_reason"]):
        errs.append(f"{key}: {g['status']} / {g['reason']}, expected {r['expect_status']} / {r['expect_reason']}")
if job.get("done") != job.get("total"):
    errs.append(f"job counters: done {job.get('done')} of total {job.get('total')}")
if sum(job["counts"].values()) != job.get("total"):
    errs.append(f"job counts {job['counts']} do not add up to total {job.get('total')}")
for e in errs[:20]:
    print("  " + e)
sys.exit(1 if errs else 0)
PY
	}

	# --- job 1: every verdict -------------------------------------------------
	list1=$run/list1.csv
	{
		echo "email,expect_status,expect_reason"
		cat <<'EOF'
alice@accept.test,deliverable,accepted
bob@accept.test,deliverable,accepted
full@accept.test,risky,mailbox_full
disabled@accept.test,undeliverable,mailbox_disabled
nobody@accept.test,undeliverable,mailbox_not_found
anyone@catchall.test,risky,catch_all
alice@multiline.test,deliverable,accepted
alice@oldsmtp.test,deliverable,accepted
alice@fallback.test,deliverable,accepted
alice@tlsreq.test,deliverable,accepted
alice@nomx.test,deliverable,accepted
alice@slow.test,deliverable,accepted
x@nullmx.test,undeliverable,null_mx
x@nodata.test,undeliverable,no_mail_server
x@nosuchdomain.test,undeliverable,no_domain
not an address,undeliverable,invalid_syntax
EOF
		for i in $(seq 1 8); do echo "u$i@toomany.test,deliverable,accepted"; done
	} >"$list1"
	: >"$run/smtpd-before.log"
	job1=$(upload "$list1" verdicts)
	say "job 1 ($job1): $(($(wc -l <"$list1") - 1)) rows uploaded through the API"
	wait_done "$job1" 180
	check_export "$job1" "$list1" || die "job 1: verdicts differ (export: $run/export-$job1.csv)"
	say "job 1: done; export: every row once, every verdict as the test world says"

	# --- job 2: a worker container killed mid-job ------------------------------
	list2=$run/list2.csv
	{
		echo "email,expect_status,expect_reason"
		for i in $(seq 1 200); do echo "nobody$i@slow.test,undeliverable,mailbox_not_found"; done
		for i in $(seq 1 50); do echo "u$i@toomany.test,deliverable,accepted"; done
		for i in $(seq 1 100); do echo "nobody$i@accept.test,undeliverable,mailbox_not_found"; done
		for i in $(seq 1 50); do echo "x$i@catchall.test,risky,catch_all"; done
	} >"$list2"
	rows2=$(($(wc -l <"$list2") - 1))
	job2=$(upload "$list2" kill-a-worker)
	say "job 2 ($job2): $rows2 rows uploaded"
	killed=""
	for ((i = 0; i < 240; i++)); do
		done_n=$(job_field "$job2" done 2>/dev/null || echo 0)
		total=$(job_field "$job2" total 2>/dev/null || echo 1)
		if ((done_n * 100 >= total * 10)); then
			[[ $(job_field "$job2" state) == done ]] && die "job 2 finished before a worker could be killed"
			killed_at=$(date +%s%3N)
			podman kill --signal KILL "$(cn worker-eu-west)" >/dev/null
			killed=$done_n
			break
		fi
		sleep 0.5
	done
	[[ -n $killed ]] || die "job 2 made no progress (done $done_n of $total)"
	say "job 2: worker-eu-west killed (SIGKILL) at $killed of $total verdicts"
	wait_done "$job2" 300
	check_export "$job2" "$list2" || die "job 2: lost, doubled or wrong rows after the kill (export: $run/export-$job2.csv)"
	say "job 2: done after the kill; export: all $rows2 rows once, every verdict right"
	restarts=$(podman inspect -f '{{.RestartCount}} {{.State.Running}}' "$(cn worker-eu-west)")
	say "killed container afterwards: restarts/running = $restarts (restart: unless-stopped; podman does not restart a container it killed on request)"

	# --- the SMTP servers' view: two source addresses, one per region ----------
	log=$world/smtpd.log
	clients=$(awk '$4 == "CONNECT" { print $3 }' "$log" | sort | uniq -c | sort -k2)
	echo "$clients" | sed 's/^/test-compose:   connections from /'
	others=$(awk '$4 == "CONNECT" && $3 != "127.0.0.2" && $3 != "127.0.0.4" && $3 != "127.0.0.254" { print $3 }' "$log" | sort -u)
	[[ -z $others ]] || die "SMTP sessions from source addresses outside the pools: $others"
	grep -q ' 127.0.0.2 CONNECT' "$log" || die "no session from eu-west's 127.0.0.2"
	grep -q ' 127.0.0.4 CONNECT' "$log" || die "no session from us-east's 127.0.0.4"
	late=$(awk -v t="$killed_at" '$1 > t + 1000 && $3 == "127.0.0.2" && $4 == "CONNECT"' "$log" | wc -l)
	say "sessions from the killed worker's 127.0.0.2 more than 1 s after the kill: $late"
	# what the kill interrupted, and who finished it (evidence for the report)
	open=$(awk -v t="$killed_at" '$1 <= t && $3 == "127.0.0.2" { if ($4 == "CONNECT") n++; if ($4 == "CLOSE") n-- } END { print n + 0 }' "$log")
	after=$(awk -v t="$killed_at" '$1 > t && $3 == "127.0.0.4" && $4 == "RCPT"' "$log" | wc -l)
	twice=$(awk '$4 == "RCPT" && $5 ~ /^nobody[0-9]+@slow\.test$/ { seen[$5] = seen[$5] " " $3 }
		END { for (a in seen) if (seen[a] ~ /127\.0\.0\.2/ && seen[a] ~ /127\.0\.0\.4/) n++; print n + 0 }' "$log")
	say "at the kill: $open session(s) of 127.0.0.2 open; after it: $after RCPTs from 127.0.0.4; $twice address(es) asked by both (redelivered, stored once)"
	((after > 0)) || die "the surviving worker asked nothing after the kill"
	if [[ ${restarts#* } == false ]] && ((late > 0)); then
		die "a killed worker's address kept connecting"
	fi
	say "ok: both regions' source addresses used, no other"

	# --- compose.yaml alone: the bridge network, services by name ----------------
	# The workers are left out (on a bridge network they cannot reach the
	# test world on this namespace's loopback, nor bind their pools' addresses).
	say "tearing down the host-network stack; now compose.yaml alone on its bridge network"
	compose down -v -t 30 >"$run/down.log" 2>&1
	podman network rm -f "${project}_default" >/dev/null 2>&1
	prefix=${project}br
	bup() { bcompose up -d --no-build "$@" >>"$run/up-bridge.log" 2>&1 || { tail -n 30 "$run/up-bridge.log"; die "bridge: up $*"; }; }
	bup postgres kafka1 kafka2 kafka3
	wait_healthy postgres 120
	for k in kafka1 kafka2 kafka3; do wait_healthy "$k" 180; done
	bup kafka-init migrate
	for one in kafka-init migrate; do
		rc=$(timeout 180 podman wait "$(cn $one)") || die "bridge: $one did not finish"
		[[ $rc == 0 ]] || { podman logs "$(cn $one)"; die "bridge: $one exited $rc"; }
	done
	bup serve
	wait_healthy serve 120
	ready=$(curl -sS --max-time 10 "$api/readyz") || die "bridge: the published port 127.0.0.1:8080 does not answer"
	[[ $ready == *'"postgres":"ok"'*'"kafka":"ok"'* ]] || die "bridge: /readyz says $ready"
	token=$(podman exec "$(cn serve)" emailverify-coordinator token create --tenant acme | grep -o 'ev_[A-Za-z0-9_-]*' | head -n 1)
	auth=(-H "Authorization: Bearer $token")
	printf 'email\nalice@accept.test\nbob@catchall.test\nnot an address\n' >"$run/list-bridge.csv"
	jobb=$(upload "$run/list-bridge.csv" bridge)
	for ((i = 0; i < 30; i++)); do
		[[ $(job_field "$jobb" batched 2>/dev/null) == 2 ]] && break
		sleep 1
	done
	[[ $(job_field "$jobb" batched) == 2 ]] || die "bridge: job $jobb was not split into Kafka"
	say "bridge: postgres, kafka1..3 (by name), kafka-init, migrate, serve healthy; /readyz $ready on the published 127.0.0.1:8080; an upload split into Kafka"
	exit 0
fi

# ===========================================================================
# the outer part: packages, base images, images (steps 1-3)
# ===========================================================================
((EUID == 0)) || die "needs root (podman as root, chroot, unshare)"
[[ -x $smtpd ]] || die "no test SMTP server at $smtpd (build the test tree first: tests/run-all.sh, or cmake --build build/test --target emv-testsmtpd)"
mkdir -p "$dir" "$run"
dir=$(cd "$dir" && pwd)

need=()
for p in podman podman-compose runc uidmap fuse-overlayfs debootstrap curl iproute2 python3 unbound; do
	[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) == "install ok installed" ]] || need+=("$p")
done
if ((${#need[@]})); then
	say "apt-get install ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >"$dir/apt.log" 2>&1 ||
		{ tail -n 20 "$dir/apt.log"; die "apt-get install failed"; }
fi
cat >"$CONTAINERS_CONF" <<'EOF'
# deploy/test-compose.sh's podman settings (CONTAINERS_CONF): this kernel runs
# hybrid cgroups without systemd as PID 1, and refuses to raise RLIMIT_NOFILE
[containers]
default_ulimits = []
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
EOF

# --- 2. base images ----------------------------------------------------------
tarball=${EMV_DEBIAN_TARBALL:-$src/build/fresh-root/bookworm-minbase.tar}
if [[ ! -s $tarball ]]; then
	mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i + 1) == "bookworm") { print $i; exit } } }' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1)
	[[ -n $mirror ]] || mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null)
	[[ -n $mirror ]] || die "no Debian mirror in the apt sources"
	say "debootstrap --variant=minbase bookworm from $mirror (cached in $tarball)"
	mkdir -p "$(dirname "$tarball")"
	rm -rf "$dir/new-root"
	debootstrap --variant=minbase bookworm "$dir/new-root" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$dir/debootstrap.log"; die "debootstrap failed"; }
	tar -C "$dir/new-root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
	rm -rf "$dir/new-root"
fi

broot=$dir/base-root
base_cleanup() {
	local m
	for m in $(awk -v r="$broot" 'index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	rm -rf "$broot"
}
trap base_cleanup EXIT
# make_base NAME PACKAGES...: minbase + PACKAGES, as image $T/NAME:12
make_base() {
	local name=$1 img=$T/$1:12 stamp have
	shift
	stamp=$( (stat -c '%s %Y' "$tarball"; printf '%s\n' "$@"; cat "$src/deploy/image/apt-install.sh") | sha256sum | cut -c1-16)
	have=$(podman image inspect -f '{{index .Labels "emailverify.test.stamp"}}' "$img" 2>/dev/null || true)
	if [[ $have == "$stamp" ]]; then
		return 0
	fi
	say "base image $img: minbase + $*"
	base_cleanup
	mkdir -p "$broot"
	tar -C "$broot" -xf "$tarball"
	cp /etc/resolv.conf "$broot/etc/resolv.conf"
	mount -t proc proc "$broot/proc"
	mount --rbind /dev "$broot/dev" && mount --make-rslave "$broot/dev"
	printf '#!/bin/sh\nexit 101\n' >"$broot/usr/sbin/policy-rc.d" && chmod +x "$broot/usr/sbin/policy-rc.d"
	if (($#)); then
		printf '%s\n' "$@" >"$broot/tmp/pkgs.txt"
		cp "$src/deploy/image/apt-install.sh" "$broot/tmp/"
		chroot "$broot" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
			/bin/sh /tmp/apt-install.sh /tmp/pkgs.txt >"$dir/base-$name.log" 2>&1 ||
			{ tail -n 20 "$dir/base-$name.log"; die "apt-get in the $name root failed"; }
		if [[ $name == debian-postgresql ]]; then
			chroot "$broot" pg_dropcluster 15 main >>"$dir/base-$name.log" 2>&1 || true
		fi
	fi
	# as debian:12-slim: no apt lists or caches, no documentation
	rm -f "$broot/usr/sbin/policy-rc.d" "$broot/tmp/pkgs.txt" "$broot/tmp/apt-install.sh"
	rm -rf "$broot"/var/cache/apt/archives/*.deb "$broot"/var/lib/apt/lists/* "$broot"/var/cache/apt/*.bin \
		"$broot"/usr/share/doc/* "$broot"/usr/share/man/* "$broot"/usr/share/info/* "$broot"/var/log/*.log
	: >"$broot/etc/resolv.conf"
	umount "$broot/proc"
	umount -R "$broot/dev" 2>/dev/null || umount -l "$broot/dev"
	tar -C "$broot" -c . | podman import --change "LABEL emailverify.test.stamp=$stamp" \
		--change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		- "$img" >"$dir/import-$name.log" 2>&1 || { cat "$dir/import-$name.log"; die "podman import of $name failed"; }
	base_cleanup
}
list_pkgs() { sed -e 's/#.*//' "$@" | tr -s ' \t' '\n\n' | sed '/^$/d'; }
mapfile -t build_pkgs < <(list_pkgs "$src/deploy/packages-build.txt")
mapfile -t run_pkgs < <(list_pkgs "$src/deploy/packages-image.txt")
make_base debian-build "${build_pkgs[@]}"
make_base debian-runtime "${run_pkgs[@]}"
make_base debian-jre openjdk-17-jre-headless
make_base debian-postgresql postgresql-15
say "base images ready"

# --- 3. images ----------------------------------------------------------------
build() { # LOG podman-build-args...
	local log=$dir/$1
	shift
	podman build --network none --format docker "$@" >"$log" 2>&1 || { tail -n 40 "$log"; die "podman build $* failed (log: $log)"; }
}
rev=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
say "building $EMV_COORDINATOR_IMAGE and $EMV_WORKER_IMAGE (deploy/Containerfile)"
common=(-f "$src/deploy/Containerfile" --build-arg BUILD_BASE=$T/debian-build:12 --build-arg RUNTIME_BASE=$T/debian-runtime:12
	--build-arg VERSION="$version" --build-arg REVISION="$rev")
build image-coordinator.log "${common[@]}" --target coordinator -t "$EMV_COORDINATOR_IMAGE" "$src"
build image-worker.log "${common[@]}" --target worker -t "$EMV_WORKER_IMAGE" "$src"

# Kafka's jars: tests/cluster/kafka/pom.xml, as the cluster tests fetch them
kctx=$dir/kafka-ctx
pom=$src/tests/cluster/kafka/pom.xml
kstamp=$(sha256sum "$pom" | cut -c1-16)
if [[ ! -f $kctx/libs/.pom-stamp || $(cat "$kctx/libs/.pom-stamp") != "$kstamp" ]]; then
	say "Kafka jars: mvn (tests/cluster/kafka/pom.xml)"
	rm -rf "$kctx/libs" "$kctx/libs.tmp"
	mkdir -p "$kctx"
	mvn_run() { mvn -B -q -Dstyle.color=never -f "$pom" -Dkafka.lib.dir="$kctx/libs.tmp" "$@" package; }
	mvn_run -o >"$dir/mvn.log" 2>&1 || mvn_run >>"$dir/mvn.log" 2>&1 ||
		{ tail -n 30 "$dir/mvn.log"; die "mvn could not fetch Kafka's jars"; }
	mv "$kctx/libs.tmp" "$kctx/libs"
	echo "$kstamp" >"$kctx/libs/.pom-stamp"
fi
cp "$src"/deploy/test/kafka/{Containerfile,run.sh,kafka-broker-api-versions.sh,kafka-topics.sh,log4j.properties} "$kctx/"
build image-kafka.log --build-arg BASE=$T/debian-jre:12 -t "$KAFKA_IMAGE" "$kctx"
build image-postgres.log --build-arg BASE=$T/debian-postgresql:12 -t "$POSTGRES_IMAGE" "$src/deploy/test/postgres"
for img in "$EMV_COORDINATOR_IMAGE" "$EMV_WORKER_IMAGE" "$KAFKA_IMAGE" "$POSTGRES_IMAGE" $T/debian-runtime:12; do
	size=$(podman image inspect -f '{{.Size}}' "$img")
	say "image $img: $((size / 1000000)) MB"
done
# (`podman image inspect -f '{{.Healthcheck}}'` fails now and then with
# "can't evaluate field": the JSON is read instead)
field() { podman image inspect "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin)[0]; print(json.dumps(d.get(sys.argv[1])) if sys.argv[1] == "Healthcheck" else d["Config"].get(sys.argv[1], ""))' "$2"; }
hc=$(field "$EMV_COORDINATOR_IMAGE" Healthcheck)
[[ $hc == *healthz* ]] || die "the coordinator image has no HEALTHCHECK ($hc)"
user=$(field "$EMV_WORKER_IMAGE" User)
[[ $user == 10001:10001 ]] || die "the worker image's user is '$user', not 10001:10001"
for b in emailverify emailverify-coordinator emailverify-worker; do
	podman run --rm --network none "$EMV_WORKER_IMAGE" "$b" --help >/dev/null 2>&1 ||
		podman run --rm --network none "$EMV_WORKER_IMAGE" "$b" --help 2>&1 | grep -qi usage ||
		die "$b does not run in the image"
done
datadir=$(podman run --rm --network none "$EMV_WORKER_IMAGE" emailverify version 2>&1)
[[ $datadir == *"data: /usr/local/share/emailverify"* || $datadir == *"data: /usr/local/bin/../share/emailverify"* ]] || die "the installed emailverify does not use /usr/local/share/emailverify: $datadir"
say "images ok: non-root (10001), HEALTHCHECK on /healthz, data from /usr/local/share/emailverify"

# --- the test's own files --------------------------------------------------------
pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
umask 077
cat >"$run/compose.env" <<EOF
POSTGRES_PASSWORD=$pw
DATABASE_URL=postgresql://emailverify:$pw@127.0.0.1:5432/emailverify
EOF
cat >"$run/compose-bridge.env" <<EOF
POSTGRES_PASSWORD=$pw
DATABASE_URL=postgresql://emailverify:$pw@postgres:5432/emailverify
EOF
umask 022
for r in eu-west:127.0.0.2:probe2 us-east:127.0.0.4:probe4; do
	IFS=: read -r region ip helo <<<"$r"
	cat >"$run/pool-$region.conf" <<EOF
region = $region
mail_from = probe@verifier.test
source = $ip $helo.verifier.test
EOF
done
# the test world's options for the workers (tests/integration/cluster_harness.h
# WORLD_OPTS); the API's batches small, so that both workers get some
wopts="--dns 127.0.0.1:5300 --smtp-port 2525 --allow-private-mx --providers /etc/emailverify/providers-test.conf --timeout 5 --preflight-domains accept.test,catchall.test --session-timeout 6000"
cat >"$run/compose.test.yaml" <<EOF
# written by deploy/test-compose.sh: the test's pools, env file, world options
services:
  serve:
    command: >-
      emailverify-coordinator serve --listen 127.0.0.1:8080
      --brokers 127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096 --batch-max 20 --shutdown-timeout 20
  worker-eu-west:
    command: >-
      emailverify-worker --brokers 127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096
      --name worker-eu-west --pool /etc/emailverify/pool.conf --shutdown-timeout 20 $wopts
    volumes: [ "$src/tests/data/providers-test.conf:/etc/emailverify/providers-test.conf:ro" ]
  worker-us-east:
    command: >-
      emailverify-worker --brokers 127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096
      --name worker-us-east --pool /etc/emailverify/pool.conf --shutdown-timeout 20 $wopts
    volumes: [ "$src/tests/data/providers-test.conf:/etc/emailverify/providers-test.conf:ro" ]
EOF
export EMV_KAFKA_HEAP="-Xms64m -Xmx320m"
export EMV_ENV_FILE=$run/compose.env EMV_POOL_EU_WEST=$run/pool-eu-west.conf EMV_POOL_US_EAST=$run/pool-us-east.conf
# what podman-compose makes of the three files (1.0.3 has no `config`: the
# merged file and the podman commands of a dry run)
compose --dry-run up -d --no-build >"$run/compose-dry-run.txt" 2>&1 ||
	{ tail -n 20 "$run/compose-dry-run.txt"; die "podman-compose cannot read the compose files"; }

# leftovers of an interrupted run
compose down -v -t 5 >/dev/null 2>&1 || true

# --- 4-6: in a network namespace of its own --------------------------------------
say "stack and test world in a network namespace of its own (unshare -n)"
trap - EXIT
# unshare execs the inner bash: a TERM or INT to this script (a timeout) goes
# on to it, so that its clean-up runs
unshare -n bash "$0" --inner "$smtpd" &
inner=$!
trap 'kill -TERM $inner 2>/dev/null' TERM INT
rc=0
wait $inner || rc=$?
if ((rc > 128)) && kill -0 $inner 2>/dev/null; then
	wait $inner || rc=$?
fi
((rc == 0)) || die "exit $rc"
say "passed"
