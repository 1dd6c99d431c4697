#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# update-lists.sh - regenerate data/role.txt, data/disposable.txt and
# data/free.txt from their npm packages, and refresh the version table in
# data/SOURCES.md.  data/typo_domains.txt is curated by hand and only checked.
#
# Usage:
#   tools/update-lists.sh [DATADIR]          # DATADIR defaults to ./data
#
# Needs npm and node (npm brings node), tar, sort.  Packages are fetched with
# `npm pack`, which downloads the tarball and runs none of its scripts
# (free-email-domains has a postinstall that downloads from the web: we never
# run it).  Nothing is installed.  Not run by the tests: run it by hand, read
# the diff (git diff --stat data/), then commit.
#
# Package specs can be overridden from the environment:
#   EMV_PKG_DISPOSABLE  default disposable-email-domains-js@latest  (CC0-1.0)
#   EMV_PKG_FREE        default free-email-domains@1.2.26           (MIT)
#   EMV_PKG_ROLE        default role-based-email-addresses@latest    (MIT)
#
# Why free-email-domains is pinned: from 1.9.0 on, its domains.json is the
# union of HubSpot's free-provider list with two disposable-domain lists,
# which cannot be told apart afterwards.  1.2.26 is the last release built
# from the HubSpot list (plus the package's own additions) alone.
#
# Curation (kept here so that every run applies it):
#   - disposable: NEVER_DISPOSABLE entries are removed (big real providers);
#   - free: every domain that is disposable (itself or a parent) is removed,
#     FREE_DROP entries are removed: notification / bounce / test domains
#     that are nobody's mailbox, and typo-squats of big providers (yaho.com,
#     hotmail.co), which HubSpot lists to block sign-ups but which we want
#     the typo suggester to correct; FREE_ADD entries are added;
#   - role: ROLE_DROP entries are removed (2-letter codes that are usually
#     someone's initials, and given names / surnames that slipped in).
# The script fails if a package changes its licence.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
datadir=${1:-"$here/../data"}
datadir=$(cd "$datadir" && pwd)

pkg_disposable=${EMV_PKG_DISPOSABLE:-disposable-email-domains-js@latest}
pkg_free=${EMV_PKG_FREE:-free-email-domains@1.2.26}
pkg_role=${EMV_PKG_ROLE:-role-based-email-addresses@latest}

for tool in npm node tar sort; do
	command -v "$tool" >/dev/null || { echo "update-lists: $tool not found" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fetch SPEC DIR: npm pack SPEC and unpack it into $tmp/DIR
fetch() {
	local spec=$1 dir=$2 tgz
	tgz=$(cd "$tmp" && npm pack --silent "$spec" | tail -n 1)
	mkdir -p "$tmp/$dir"
	tar -xzf "$tmp/$tgz" -C "$tmp/$dir"
	echo "update-lists: fetched $spec ($tgz)" >&2
}

fetch "$pkg_disposable" disposable
fetch "$pkg_free" free
fetch "$pkg_role" role

NEVER_DISPOSABLE="gmail.com googlemail.com outlook.com hotmail.com live.com msn.com
yahoo.com ymail.com rocketmail.com aol.com icloud.com me.com mac.com gmx.com gmx.de gmx.net
web.de mail.com yandex.ru yandex.com mail.ru protonmail.com proton.me pm.me zoho.com
fastmail.com qq.com 163.com 126.com naver.com tutanota.com tuta.io duck.com"
FREE_ADD="tuta.com tuta.io tutanota.com tutanota.de tutamail.com keemail.me"
FREE_DROP="amazonses.com bounce.net bounces.amazon.com calendar-server.bounces.google.com
doclist.bounces.google.com docs.google.com facebook.com facebookmail.com googlegroups.com
mlb.bounce.ed10.net netbounce.com plus.google.com postmaster.twitter.com
resource.calendar.google.com test.com test.de
hitmail.com hotmail.co sbcglbal.net yaho.com yahoo.co"
ROLE_DROP="ap bd ca cm gm la lt md mt pd pm se ta alexa gardner india paris sydney"

export EMV_TMP=$tmp EMV_DATADIR=$datadir NEVER_DISPOSABLE FREE_ADD FREE_DROP ROLE_DROP
node - <<'EOF'
'use strict';
const fs = require('fs');
const path = require('path');
const tmp = process.env.EMV_TMP, out = process.env.EMV_DATADIR;
const words = (s) => s.split(/\s+/).filter(Boolean);
const today = new Date().toISOString().slice(0, 10);

function pkg(dir, wantLicence) {
	const root = path.join(tmp, dir, 'package');
	const meta = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
	if (meta.license !== wantLicence)
		throw new Error(`${meta.name}: licence is now ${meta.license}, expected ${wantLicence}`);
	const lic = fs.readdirSync(root).find((f) => /^licen[cs]e/i.test(f));
	if (!lic)
		throw new Error(`${meta.name}: no licence file in the package`);
	return { root, meta };
}

const domainRe = /^(?=.{4,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
const localRe = /^[a-z0-9._+-]{1,64}$/;

function clean(list, re, what) {
	const set = new Set();
	for (const raw of list) {
		const s = String(raw).trim().toLowerCase();
		if (!re.test(s)) {
			console.error(`update-lists: ${what}: dropping invalid entry ${JSON.stringify(raw)}`);
			continue;
		}
		set.add(s);
	}
	return set;
}

function write(file, header, set) {
	const body = [...set].sort().join('\n') + '\n';
	fs.writeFileSync(path.join(out, file), header.map((l) => '# ' + l).join('\n') + '\n' + body);
	console.error(`update-lists: ${file}: ${set.size} entries`);
	return set.size;
}

/* disposable */
const d = pkg('disposable', 'CC0-1.0');
const disposable = clean(JSON.parse(fs.readFileSync(
	path.join(d.root, 'dist/dict/disposable_email_blocklist.json'), 'utf8')), domainRe, 'disposable');
for (const s of words(process.env.NEVER_DISPOSABLE))
	if (disposable.delete(s))
		console.error(`update-lists: disposable: removed real provider ${s}`);

/* free, minus anything disposable (the domain itself or a parent) */
const f = pkg('free', 'MIT');
const free = clean(JSON.parse(fs.readFileSync(path.join(f.root, 'domains.json'), 'utf8')),
	domainRe, 'free');
for (const s of words(process.env.FREE_DROP))
	free.delete(s);
for (const s of words(process.env.FREE_ADD))
	free.add(s);
const isDisposable = (dom) => {
	const labels = dom.split('.');
	for (let i = 0; i < labels.length - 1; i++)
		if (disposable.has(labels.slice(i).join('.')))
			return true;
	return false;
};
let freeDropped = 0;
for (const s of [...free])
	if (isDisposable(s)) {
		free.delete(s);
		freeDropped++;
	}

/* role: every category of the package */
const r = pkg('role', 'MIT');
const roleMod = require(path.join(r.root, r.meta.main || 'index.js'));
const roleAll = [].concat(...Object.values(roleMod).filter(Array.isArray));
const role = clean(roleAll, localRe, 'role');
for (const s of words(process.env.ROLE_DROP))
	role.delete(s);

const n = {};
const gen = 'Generated by tools/update-lists.sh on ' + today + '; do not edit by hand (see data/SOURCES.md).';
n.disposable = write('disposable.txt', [
	'Disposable / throw-away mail domains.  A listed domain also covers its subdomains.',
	`Source: npm ${d.meta.name}@${d.meta.version} (${d.meta.license}), a packaging of`,
	'github.com/disposable-email-domains/disposable-email-domains (CC0-1.0).',
	'Curated: big real providers can never appear here (NEVER_DISPOSABLE in the script).',
	gen], disposable);
n.free = write('free.txt', [
	'Free mailbox providers (exact domain match).',
	`Source: npm ${f.meta.name}@${f.meta.version} (${f.meta.license}), derived from HubSpot's`,
	'public list of free email domains.',
	`Curated: ${freeDropped} disposable domains removed; sending-only / notification domains`,
	'(facebook.com, docs.google.com, amazonses.com, ...) and typo-squats (yaho.com, hotmail.co, ...)',
	'removed (FREE_DROP); a few providers added (FREE_ADD).',
	gen], free);
n.role = write('role.txt', [
	'Role account local parts (matched case-insensitively, ignoring a +tag).',
	`Source: npm ${r.meta.name}@${r.meta.version} (${r.meta.license}), all categories.`,
	'Curated: 2-letter codes that are usually initials and a few personal names removed (ROLE_DROP).',
	gen], role);

/* typo_domains.txt is hand-curated: every entry must be a free, non-disposable domain */
const typo = fs.readFileSync(path.join(out, 'typo_domains.txt'), 'utf8').split('\n')
	.map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
for (const t of typo) {
	if (isDisposable(t))
		throw new Error(`typo_domains.txt: ${t} is disposable`);
	if (!free.has(t))
		console.error(`update-lists: warning: typo_domains.txt: ${t} is not in free.txt`);
}
n.typo = typo.length;

/* refresh the table between the markers in SOURCES.md */
const src = path.join(out, 'SOURCES.md');
const md = fs.readFileSync(src, 'utf8');
const table = [
	'<!-- BEGIN versions (written by tools/update-lists.sh) -->',
	'| file | npm package | version | licence | entries | fetched |',
	'| --- | --- | --- | --- | --- | --- |',
	`| role.txt | ${r.meta.name} | ${r.meta.version} | ${r.meta.license} | ${n.role} | ${today} |`,
	`| disposable.txt | ${d.meta.name} | ${d.meta.version} | ${d.meta.license} | ${n.disposable} | ${today} |`,
	`| free.txt | ${f.meta.name} | ${f.meta.version} | ${f.meta.license} | ${n.free} | ${today} |`,
	`| typo_domains.txt | (hand-curated) | - | - | ${n.typo} | - |`,
	'<!-- END versions -->'].join('\n');
const re = /<!-- BEGIN versions[^]*?<!-- END versions -->/;
if (!re.test(md))
	throw new Error('SOURCES.md: version table markers not found');
fs.writeFileSync(src, md.replace(re, table));
console.error('update-lists: SOURCES.md version table refreshed');
EOF
