#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/console/npm.sh PREFIX - playwright-core (the browser driver only: it
# drives Debian's /usr/bin/chromium and downloads no browser) into the build
# tree, once: a second run finds it and needs no network.  ctest fixture
# "console_npm"; run it outside a network namespace the first time.
set -euo pipefail
prefix=${1:?usage: npm.sh PREFIX}
version=1.61.1   # the newest that runs on Debian 12's Node.js 18 (1.62 needs 20)
have=$(node -p "require('$prefix/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [[ $have == "$version" ]]; then
    echo "playwright-core $version already in $prefix"
    exit 0
fi
command -v npm >/dev/null || { echo "npm.sh: no npm (deploy/install-deps.sh --test installs it)" >&2; exit 1; }
mkdir -p "$prefix"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --prefix "$prefix" "playwright-core@$version"
