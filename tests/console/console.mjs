/* SPDX-License-Identifier: Apache-2.0 */
// tests/console/console.mjs - the web console in Debian's Chromium, driven
// by playwright-core (run.sh starts the servers).  Every step asserts what
// a user would see; a failure names the step.  Screenshots of each page go
// to $EMV_RUN/screenshots.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const BASE = process.env.EMV_URL;
const TOKEN = process.env.EMV_TOKEN;
const OTHER = process.env.EMV_TOKEN_OTHER;
const REVOKED = process.env.EMV_TOKEN_REVOKED;
const SHOTS = `${process.env.EMV_RUN}/screenshots`;
const t0 = Date.now();
let step = 'start';
const log = (s) => { step = s; console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}`); };

async function api(path, token = TOKEN, init = {}) {
  const res = await fetch(BASE + path, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers || {}) } });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

// The list: addresses of the world (accepted, unknown user, mailbox full,
// catch-all), duplicates, invalid rows, an address that is a script tag and
// a row without the email column (a row error, reported with its line).
const EVIL = '<script>window.__pwned=1</script>@x.test';
const LIST = [
  'name,email',
  'Alice,alice@accept.test',
  'Bob,bob@accept.test',
  'Nobody,nobody@accept.test',
  'Alice again,alice@accept.test',
  'Catch,someone@catchall.test',
  'Bad,not-an-address',
  'Bad too,a@@accept.test',
  `Evil,"${EVIL}"`,
  'Full,full@accept.test',
  'Bob again,bob@accept.test',
  'Slow,bob@slow.test', // 300 ms a reply: the job runs long enough to be watched
  'Lonely', // a row error: no second field (line 13)
].join('\n') + '\n';

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
let failed = false;
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await ctx.newPage();
  const foreign = [];
  const cspViolations = [];
  page.on('request', (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) foreign.push(r.url()); });
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
  page.on('pageerror', (e) => { console.log(`page error: ${e.message}`); failed = true; });

  log('the page and its headers');
  const resp = await page.goto(`${BASE}/`);
  assert.equal(resp.status(), 200);
  const csp = resp.headers()['content-security-policy'] || '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/, 'no unsafe-inline script');
  assert.doesNotMatch(csp, /unsafe/);
  assert.equal(resp.headers()['x-content-type-options'], 'nosniff');
  const js = await api('/console/console.js', '');
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  assert.equal(js.headers.get('x-content-type-options'), 'nosniff');
  assert.equal((await api('/console/nope.js', '')).status, 404);

  log('sign in: a wrong token, a revoked one, then a good one');
  await page.fill('#token', 'ev_this-is-not-a-token');
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#signin-error:has-text("not accepted")');
  await page.fill('#token', REVOKED);
  await page.click('#signin-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#signin-error').textContent.includes('revoked'));
  assert.equal(await page.evaluate(() => sessionStorage.getItem('emv_token')), null, 'a refused token is not kept');
  await page.screenshot({ path: `${SHOTS}/signin.png` });
  await page.fill('#token', TOKEN);
  await page.press('#token', 'Enter'); // the keyboard is enough
  await page.waitForSelector('#nav:not([hidden])');
  await page.waitForSelector('#view-jobs:not([hidden])');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('emv_token')), TOKEN);
  assert.ok(!page.url().includes(TOKEN), 'the token is never in a URL');

  log('upload a list with invalid rows and duplicates');
  await page.click('nav a[href="#/upload"]');
  await page.setInputFiles('#file', { name: 'october.csv', mimeType: 'text/csv', buffer: Buffer.from(LIST) });
  await page.fill('#job-name', 'october');
  await page.click('#upload-button');
  await page.waitForSelector('#upload-result:not([hidden])', { timeout: 30000 });
  const counts = await page.$$eval('#upload-counts tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent])));
  assert.deepEqual({ rows: counts.Rows, dup: counts.Duplicates, inv: counts.Invalid, uniq: counts['Unique addresses'], err: counts['Row errors'] },
    { rows: '12', dup: '2', inv: '3', uniq: '6', err: '1' });
  const bar = await page.$eval('#upload-bar', (b) => [b.value, b.max]);
  assert.equal(bar[0], bar[1], 'the upload bar reached the end');
  assert.ok(bar[1] >= LIST.length, 'the bar counts the bytes of the request (file and framing)');
  await page.waitForFunction(() => document.querySelectorAll('#upload-row-errors li').length >= 4);
  const rowErrors = await page.$$eval('#upload-row-errors li', (lis) => lis.map((l) => l.textContent));
  assert.ok(rowErrors.some((t) => t.startsWith('row 6: not-an-address')), `row errors: ${rowErrors}`);
  assert.ok(rowErrors.some((t) => t.includes(EVIL)), 'the script address is shown as text');
  assert.ok(rowErrors.some((t) => t.startsWith('row 12: Lonely') && t.includes('line 13: 1 field')), `row errors: ${rowErrors}`);
  assert.equal(await page.$$eval('#upload-row-errors script', (s) => s.length), 0);
  await page.screenshot({ path: `${SHOTS}/upload.png`, fullPage: true });
  const jobHref = await page.getAttribute('#upload-job-link', 'href');
  const jobId = jobHref.split('/').pop();

  log('the job page, live until 100 %');
  await page.click('#upload-job-link');
  await page.waitForSelector('#view-job:not([hidden])');
  // watched: the page moves by itself (polling) from below 100 % to done
  const seenPct = new Set();
  const tJob = Date.now();
  for (;;) {
    const [state, pct, text] = await page.evaluate(() => [document.querySelector('#job-state').textContent,
      document.querySelector('#job-bar').value, document.querySelector('#job-progress-text').textContent]);
    if (state) seenPct.add(`${state} ${pct}`);
    if (state === 'done' && text.includes('(100 %)')) break;
    assert.ok(Date.now() - tJob < 90000, `not done in 90 s: ${[...seenPct]}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`  seen: ${[...seenPct].join(', ')}`);
  assert.ok([...seenPct].some((x) => !x.startsWith('done') && !x.endsWith(' 100')), 'the job was seen running, below 100 %');
  assert.equal(await page.$eval('#job-bar', (b) => b.value), 100);
  // the chart: one bar per status, values as the API says
  const st = JSON.parse((await api(`/v1/jobs/${jobId}`)).body);
  const desc = await page.textContent('#chart-status-desc');
  for (const s of ['deliverable', 'undeliverable', 'risky', 'unknown']) assert.ok(desc.includes(`${s}: ${st.counts[s]}`), desc);
  assert.ok((await page.textContent('#chart-reason-desc')).includes('invalid_syntax: 3'));
  assert.ok((await page.textContent('#chart-reason-desc')).includes('input_error: 1'));
  assert.equal(await page.$$eval('#chart-status rect.bar', (r) => r.length), 4);
  await page.waitForFunction(() => document.querySelectorAll('#rows-table tbody tr').length === 12);
  await page.screenshot({ path: `${SHOTS}/job.png`, fullPage: true });

  log('the script address is text, and the CSP blocks inline script');
  const cells = await page.$$eval('#rows-table tbody td.addr', (tds) => tds.map((t) => t.textContent));
  assert.ok(cells.includes(EVIL), 'shown verbatim');
  assert.equal(await page.$$eval('#rows-table script', (s) => s.length), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  const blocked = await page.evaluate(() => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), { once: true });
    const s = document.createElement('script');
    s.textContent = 'window.__pwned2 = 1';
    document.body.append(s);
    setTimeout(() => resolve('no violation'), 2000);
  }));
  assert.match(blocked, /^script-src/, 'an injected inline script is refused by the policy');
  assert.equal(await page.evaluate(() => window.__pwned2), undefined, 'and did not run');

  log('filters: status, reason, domain, address search');
  await page.selectOption('#f-status', 'undeliverable');
  await page.click('#filter-form button[type=submit]');
  await page.waitForFunction(() => [...document.querySelectorAll('#rows-table tbody tr td:nth-child(3)')].every((td) => td.textContent === 'undeliverable'));
  const nUndeliv = await page.$$eval('#rows-table tbody tr', (t) => t.length);
  const apiUndeliv = JSON.parse((await api(`/v1/jobs/${jobId}/rows?status=undeliverable`)).body).rows.length;
  assert.equal(nUndeliv, apiUndeliv);
  assert.ok(nUndeliv >= 4, `${nUndeliv} undeliverable rows`); // 3 invalid + nobody (+ full)
  await page.selectOption('#f-reason', 'invalid_syntax');
  await page.click('#filter-form button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#rows-table tbody tr').length === 3);
  await page.selectOption('#f-status', '');
  await page.selectOption('#f-reason', '');
  await page.fill('#f-domain', 'CATCHALL.test');
  await page.click('#filter-form button[type=submit]');
  await page.waitForFunction(() => {
    const tds = [...document.querySelectorAll('#rows-table tbody td.addr')];
    return tds.length === 1 && tds[0].textContent === 'someone@catchall.test';
  });
  await page.fill('#f-domain', '');
  await page.fill('#f-q', 'ALICE');
  await page.press('#f-q', 'Enter');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#rows-table tbody tr')].map((tr) => tr.cells[0].textContent);
    return rows.join(',') === '1,4';
  });

  log('evidence of one row, by keyboard');
  await page.focus('#rows-table tbody tr:first-child button');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#evidence[open]');
  const ev = await page.$$eval('#evidence-list dt', (dts) => Object.fromEntries(dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
  assert.equal(ev.Address, 'alice@accept.test');
  assert.equal(ev.Status, 'deliverable');
  assert.equal(ev['MX host'], 'mx1.accept.test');
  assert.match(ev['MX IP'], /^127\.0\.0\.10$/);
  assert.match(ev['SMTP reply'], /^250 /);
  assert.match(ev.Attempts, /^[1-9]/);
  await page.screenshot({ path: `${SHOTS}/evidence.png` });
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('#evidence').open);
  const dupRow = JSON.parse((await api(`/v1/jobs/${jobId}/rows?q=alice`)).body).rows[1];
  assert.equal(dupRow.duplicate_of_row, 1);
  assert.equal(dupRow.mx_host, 'mx1.accept.test', 'a duplicate shows its first row\'s verdict');
  // rows say what the job's policy writes (docs/policy.md), as the export does
  assert.equal(dupRow.policy, 'marketing');
  const deliv = JSON.parse((await api(`/v1/jobs/${jobId}/rows?status=deliverable`)).body).rows;
  assert.ok(deliv.length > 0 && deliv.every((r) => r.status === 'deliverable' && r.safe_to_send === true), 'deliverable rows are safe to send');

  log('downloads match the API\'s export byte for byte');
  for (const [button, query] of [['#dl-csv', 'format=csv'], ['#dl-clean', 'format=csv&status=deliverable'], ['#dl-jsonl', 'format=jsonl']]) {
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
    const got = fs.readFileSync(await dl.path());
    const want = (await api(`/v1/jobs/${jobId}/results?${query}`)).body;
    assert.ok(got.length > 0 && got.equals(want), `${button}: ${got.length} bytes vs ${want.length} from the API`);
    if (button === '#dl-clean') {
      const lines = got.toString().trim().split('\n').slice(1);
      assert.ok(lines.length >= 2 && lines.every((l) => l.split(',')[1] === 'deliverable'), 'the clean list is deliverable rows only');
    }
  }

  log('another tenant\'s job is not reachable');
  const up = await api('/v1/jobs?name=secret-of-other', OTHER, { method: 'POST', headers: { 'Content-Type': 'text/csv' }, body: 'email\nz@accept.test\n' });
  assert.equal(up.status, 201);
  const otherId = JSON.parse(up.body).id;
  assert.equal((await api(`/v1/jobs/${otherId}/rows`)).status, 404);
  assert.equal((await api(`/v1/jobs/${otherId}/rows`, OTHER)).status, 200);
  for (const q of ['limit=0', 'limit=501', 'after=-1', 'after=x', 'status=good', 'reason=A%20B', 'q=%01'])
    assert.equal((await api(`/v1/jobs/${jobId}/rows?${q}`)).status, 400, `rows?${q}`);
  assert.equal((await api(`/v1/jobs/${jobId}/rows`, '')).status, 401);
  await page.goto(`${BASE}/#/jobs/${otherId}`);
  await page.waitForSelector('#job-error:has-text("no such job")');
  assert.equal(await page.$$eval('#rows-table tbody tr', (t) => t.length), 0);
  await page.goto(`${BASE}/#/jobs`);
  await page.waitForSelector('#jobs-table tbody tr');
  const names = await page.$$eval('#jobs-table tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(names, ['october'], 'the list holds this tenant\'s jobs only');
  await page.screenshot({ path: `${SHOTS}/jobs.png` });

  log('the operators\' view');
  await page.click('nav a[href="#/ips"]');
  await page.waitForSelector('#view-ips:not([hidden])');
  await page.waitForFunction(() => document.querySelectorAll('#ips-table tbody tr').length === 2);
  const ips = await page.$$eval('#ips-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  const q = ips.find((r) => r[0] === '192.0.2.7');
  assert.ok(q && q[1] === 'eu-west' && q[3] === 'healthy', JSON.stringify(ips));
  assert.match(q[7], /outlook: quarantined, 2 strikes, rate 0 %.*banned sending IP/);
  assert.ok(ips.some((r) => r[0] === '2001:db8::9' && r[3] === 'held'), JSON.stringify(ips));
  await page.screenshot({ path: `${SHOTS}/ips.png` });

  log('a phone-sized screen');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${BASE}/#/jobs/${jobId}`);
  await page.waitForSelector('#job-state:has-text("done")');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  await page.screenshot({ path: `${SHOTS}/job-phone.png`, fullPage: true });

  log('a 50 MB list: streamed, with progress, and the page stays responsive');
  await page.setViewportSize({ width: 1280, height: 900 });
  const big = `${process.env.EMV_RUN}/big.csv`;
  {
    const pad = 'x'.repeat(31);
    const rowsN = 900000;
    const chunk = [];
    for (let i = 0; i < rowsN; i++) chunk.push(`same@accept.test,${pad}${String(i).padStart(7, '0')}`);
    fs.writeFileSync(big, `email,note\n${chunk.join('\n')}\n`);
  }
  const bigSize = fs.statSync(big).size;
  assert.ok(bigSize >= 50e6, `${bigSize} bytes`);
  await page.goto(`${BASE}/#/upload`);
  await page.setInputFiles('#file', big);
  await page.fill('#job-name', 'big');
  const tUp = Date.now();
  await page.click('#upload-button');
  let worst = 0;
  const seen = new Set();
  for (;;) {
    const t = Date.now();
    const [v, max, done] = await page.evaluate(() => [document.querySelector('#upload-bar').value,
      document.querySelector('#upload-bar').max, !document.querySelector('#upload-result').hidden ||
      document.querySelector('#upload-error').textContent !== '']);
    worst = Math.max(worst, Date.now() - t);
    if (v > 0 && v < max) seen.add(Math.round((10 * v) / max));
    if (done) break;
    assert.ok(Date.now() - tUp < 90000, 'the 50 MB upload took over 90 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(await page.textContent('#upload-error'), '');
  const bigCounts = await page.$$eval('#upload-counts tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent])));
  assert.equal(bigCounts.Rows, (900000).toLocaleString('en-US'));
  assert.equal(bigCounts['Unique addresses'], '1');
  console.log(`  ${bigSize} bytes in ${((Date.now() - tUp) / 1000).toFixed(1)} s; progress seen at ${[...seen].sort((a, b) => a - b).map((x) => `${x * 10} %`).join(' ')}; slowest page answer ${worst} ms`);
  assert.ok(seen.size >= 1, 'the bar moved before the end');
  assert.ok(worst < 1000, `the page froze for ${worst} ms`);
  fs.unlinkSync(big);

  log('sign out forgets the token');
  await page.click('#signout');
  await page.waitForSelector('#view-signin:not([hidden])');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('emv_token')), null);

  assert.deepEqual(foreign, [], 'no request left this server');
  console.log(`CSP reports seen: ${cspViolations.length}`);
  await ctx.close();
} catch (e) {
  failed = true;
  console.log(`FAILED at "${step}": ${e.stack || e}`);
} finally {
  await browser.close();
}
console.log(`browser test: ${failed ? 'FAILED' : 'passed'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
