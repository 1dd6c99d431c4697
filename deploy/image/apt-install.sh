#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# deploy/image/apt-install.sh LIST... - install the Debian packages named in
# the package lists (one a line, '#' comments) that are not installed yet,
# then drop apt's caches.  Used by the image build (deploy/Containerfile):
# nothing missing means no `apt-get update`, so a base image that already
# holds the packages (the offline test of deploy/test-compose.sh) builds
# without any network.
set -eu
want=$(sed -e 's/#.*//' "$@" | tr -s ' \t' '\n\n' | sed '/^$/d' | sort -u)
missing=""
for p in $want; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "apt-install: all $(echo "$want" | wc -l) packages already installed"
	exit 0
fi
echo "apt-install: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
apt-get clean
rm -rf /var/lib/apt/lists/*
