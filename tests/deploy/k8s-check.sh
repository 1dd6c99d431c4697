#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/deploy/k8s-check.sh [WORK_DIR] - deploy/k8s checked offline: rendered
# (kubectl kustomize when kubectl is installed, else tests/deploy/k8s_render.mjs),
# then validated against the Kubernetes API schemas and checked for structure
# by tests/deploy/k8s_check.mjs.  The validator is the npm package
# kubernetes-models (schemas generated from the Kubernetes OpenAPI spec),
# installed into WORK_DIR/node_modules on the first run (npm registry), with
# the YAML parser `yaml`.  Also: data/providers.conf and the copy the
# ConfigMap is generated from are the same.  Needs node and npm.
# These manifests have not been applied to a cluster here (none is available).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
work=${1:-$src/build/k8s-check}
mkdir -p "$work"
work=$(cd "$work" && pwd)
die() { echo "k8s-check: FAILED: $*" >&2; exit 1; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "k8s-check: SKIPPED: no node/npm (the validator is an npm package)"
	exit 77
fi
# kubernetes-models 5 is an ES module package made for node >= 20 (Debian 12
# ships node 18): an older node skips the check rather than fail on loading it
major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 20)); then
	echo "k8s-check: SKIPPED: the validator (kubernetes-models 5) needs node >= 20, this is $(node --version)"
	exit 77
fi
if [[ ! -f $work/node_modules/kubernetes-models/package.json || ! -f $work/node_modules/yaml/package.json ]]; then
	(cd "$work" && npm install --no-audit --no-fund --silent kubernetes-models@5.1.0 yaml@2.8.1 >npm.log 2>&1) ||
		{ cat "$work/npm.log"; die "npm install kubernetes-models yaml failed"; }
fi
cmp -s "$src/data/providers.conf" "$src/deploy/k8s/config/providers.conf" ||
	die "deploy/k8s/config/providers.conf differs from data/providers.conf (cp data/providers.conf deploy/k8s/config/)"
cp "$here/k8s_check.mjs" "$here/k8s_render.mjs" "$work/"
if command -v kubectl >/dev/null && kubectl kustomize "$src/deploy/k8s" >"$work/rendered.yaml" 2>"$work/kustomize.err"; then
	echo "k8s-check: rendered with kubectl kustomize ($(kubectl version --client 2>/dev/null | sed -n 's/Kustomize Version: //p'))"
	node "$work/k8s_check.mjs" "$work/rendered.yaml" 20
fi
# the built-in renderer as well (a machine without kubectl renders this way)
node "$work/k8s_render.mjs" "$src/deploy/k8s" >"$work/rendered-builtin.yaml"
echo "k8s-check: rendered with tests/deploy/k8s_render.mjs"
node "$work/k8s_check.mjs" "$work/rendered-builtin.yaml" 20
