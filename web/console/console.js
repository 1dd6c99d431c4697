/* SPDX-License-Identifier: Apache-2.0 */
// web/console/console.js - the web console (issue 14): plain ES modules,
// no framework, no build step; everything it loads comes from this server.
//
// The API token lives in this tab's sessionStorage and travels only as
// the Authorization header of fetch/XHR requests, never in a URL.  Data
// from the server is only ever put into the page as text (textContent),
// and the Content-Security-Policy allows no inline script besides.
import { barChart } from './chart.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'emv_token';
const STATUSES = ['deliverable', 'undeliverable', 'risky', 'unknown'];
const POLL_MS = 1000;

let token = sessionStorage.getItem(TOKEN_KEY);
let pollTimer = null;
let viewSeq = 0; // bumped on every navigation: late answers of an old view are dropped

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, opts = {}) {
  const headers = { Authorization: `Bearer ${opts.token || token}` };
  let res;
  try {
    res = await fetch(path, { headers, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'network', 'the server did not answer; is it running?');
  }
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const err = body && body.error ? body.error : { code: 'http', message: `HTTP ${res.status}` };
    if (res.status === 401 && !opts.token) signOut('Your token is no longer accepted (revoked?). Sign in again.');
    throw new ApiError(res.status, err.code, err.message);
  }
  return body;
}

function h(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

const fmt = (n) => (n === null || n === undefined ? '' : Number(n).toLocaleString());
const when = (s) => (s ? new Date(s).toLocaleString() : '');
function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}
function duration(s) {
  if (s === null || s === undefined) return 'unknown';
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// ------------------------------------------------------------- navigation

function show(name) {
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${name}`;
  $('nav').hidden = name === 'signin';
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function route() {
  viewSeq++;
  clearTimeout(pollTimer);
  pollTimer = null;
  if (!token) {
    show('signin');
    $('token').focus();
    return;
  }
  const hash = location.hash || '#/jobs';
  const m = hash.match(/^#\/jobs\/([0-9a-f-]{1,64})$/);
  if (m) { show('job'); openJob(m[1]); }
  else if (hash === '#/upload') { show('upload'); }
  else if (hash === '#/ips') { show('ips'); loadIps(); }
  else { show('jobs'); loadJobs(null); }
  $('main').focus({ preventScroll: true });
}

function signOut(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('signin-error').textContent = message || '';
  location.hash = '#/jobs';
  route();
}

// ---------------------------------------------------------------- sign-in

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const t = $('token').value.trim();
  $('signin-error').textContent = '';
  try {
    await api('/v1/jobs?limit=1', { token: t });
  } catch (e) {
    $('signin-error').textContent = e.status === 401
      ? 'This token is not accepted: it is unknown or has been revoked.'
      : `Could not sign in: ${e.message}`;
    return;
  }
  token = t;
  sessionStorage.setItem(TOKEN_KEY, t);
  $('token').value = '';
  route();
});
$('signout').addEventListener('click', () => signOut(''));

// ----------------------------------------------------------------- upload

const fileInput = $('file');
const drop = $('drop');
function fileChosen() {
  const f = fileInput.files[0];
  $('file-chosen').textContent = f ? `${f.name} (${bytes(f.size)})` : '';
}
fileInput.addEventListener('change', fileChosen);
drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  if (ev.dataTransfer.files.length) {
    fileInput.files = ev.dataTransfer.files;
    fileChosen();
  }
});

// XHR, not fetch: it reports upload progress.  The File goes into the
// request as a Blob, which the browser streams from disk: the page never
// reads the file, so a 50 MB list costs it no memory and no time.
$('upload-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = fileInput.files[0];
  if (!f) return;
  const form = new FormData();
  const name = $('job-name').value.trim();
  if (name) form.append('name', name);
  form.append('file', f, f.name);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', '/v1/jobs');
  xhr.setRequestHeader('Authorization', `Bearer ${token}`);
  xhr.responseType = 'json';
  $('upload-error').textContent = '';
  $('upload-result').hidden = true;
  $('upload-progress').hidden = false;
  $('upload-button').disabled = true;
  const bar = $('upload-bar');
  bar.value = 0;
  $('upload-bytes').textContent = `0 of ${bytes(f.size)}`;
  xhr.upload.addEventListener('progress', (e) => {
    const total = e.lengthComputable ? e.total : f.size;
    bar.max = total;
    bar.value = e.loaded;
    $('upload-bytes').textContent = `${bytes(e.loaded)} of ${bytes(total)} sent`;
  });
  xhr.upload.addEventListener('load', () => {
    $('upload-bytes').textContent = `${bytes(f.size)} sent; the server is storing the rows...`;
  });
  xhr.addEventListener('loadend', () => {
    $('upload-button').disabled = false;
    const body = xhr.response;
    if (xhr.status === 201 || xhr.status === 200) {
      $('upload-bytes').textContent = `${bytes(f.size)} sent and stored.`;
      uploadDone(body);
    } else if (xhr.status === 401) {
      signOut('Your token is no longer accepted (revoked?). Sign in again.');
    } else {
      const msg = body && body.error ? body.error.message : (xhr.status ? `HTTP ${xhr.status}` : 'the upload did not reach the server');
      $('upload-error').textContent = `Upload refused: ${msg}`;
    }
  });
  xhr.send(form);
});

async function uploadDone(job) {
  const link = $('upload-job-link');
  link.textContent = job.name || job.id;
  link.href = `#/jobs/${job.id}`;
  const tb = $('upload-counts').tBodies[0];
  tb.replaceChildren(
    ...[['Rows', job.rows], ['Unique addresses', job.addresses], ['Duplicates', job.duplicates],
      ['Invalid', job.invalid], ['Row errors', job.row_errors], ['Bytes', job.bytes]]
      .map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, fmt(v)))),
  );
  $('upload-result').hidden = false;
  // the unusable rows and why, with their row numbers (final at once)
  const list = $('upload-row-errors');
  list.replaceChildren();
  for (const reason of ['input_error', 'invalid_syntax']) {
    try {
      const page = await api(`/v1/jobs/${job.id}/rows?reason=${reason}&limit=20`);
      for (const r of page.rows) {
        list.append(h('li', {}, `row ${r.row}: `, r.email || r.input || '', ` (${r.reason}: ${r.detail || ''})`));
      }
    } catch (e) { /* the counts above still stand */ }
  }
  if (!list.children.length) list.append(h('li', {}, 'none'));
}

// ------------------------------------------------------------------- jobs

let jobsNext = null;
async function loadJobs(after) {
  const seq = viewSeq;
  $('jobs-error').textContent = '';
  let page;
  try {
    page = await api(`/v1/jobs?limit=20${after ? `&after=${encodeURIComponent(after)}` : ''}`);
  } catch (e) {
    $('jobs-error').textContent = e.message;
    return;
  }
  if (seq !== viewSeq) return;
  jobsNext = page.next;
  const tb = $('jobs-table').tBodies[0];
  tb.replaceChildren(...page.jobs.map((j) => h('tr', {},
    h('td', {}, h('a', { href: `#/jobs/${j.id}` }, j.name || j.id.slice(0, 8))),
    h('td', {}, when(j.created_at)),
    h('td', {}, j.state),
    h('td', { class: 'num' }, fmt(j.rows)),
    h('td', { class: 'num' }, `${j.percent} %`),
    ...STATUSES.map((s) => h('td', { class: 'num' }, fmt(j.counts[s]))),
  )));
  $('jobs-empty').hidden = page.jobs.length > 0 || after !== null;
  $('jobs-more').disabled = !jobsNext;
  $('jobs-first').disabled = after === null;
}
$('jobs-more').addEventListener('click', () => jobsNext && loadJobs(jobsNext));
$('jobs-first').addEventListener('click', () => loadJobs(null));

// -------------------------------------------------------------- job page

let job = null; // the job shown: its last status

// Polling, not server-sent events: GET /v1/jobs/ID is one cheap indexed
// read (the reasons are cached server-side), it works through any proxy,
// holds no connection of the server's (each counts against
// --max-connections-per-ip and --request-timeout would cut a stream), and
// stops by itself when the job is finished.
async function openJob(id) {
  job = { id };
  $('job-error').textContent = '';
  $('job-title').textContent = 'Job';
  $('rows-table').tBodies[0].replaceChildren();
  $('rows-info').textContent = '';
  for (const f of ['f-status', 'f-reason', 'f-domain', 'f-q']) $(f).value = '';
  const seq = viewSeq;
  const first = await pollJob(id, seq);
  if (first) loadRows(null);
}

async function pollJob(id, seq) {
  let st;
  try {
    st = await api(`/v1/jobs/${id}`);
  } catch (e) {
    if (seq !== viewSeq) return false;
    $('job-error').textContent = e.status === 404 ? 'There is no such job (for this token).' : e.message;
    $('job-summary').hidden = true;
    return false;
  }
  if (seq !== viewSeq) return false;
  const wasRunning = job.state && !finished(job.state);
  job = st;
  renderJob(st);
  if (!finished(st.state)) pollTimer = setTimeout(() => pollJob(id, seq), POLL_MS);
  else if (wasRunning) loadRows(null); // the final verdicts are in: refresh the table
  return true;
}

const finished = (s) => s === 'done' || s === 'failed' || s === 'cancelled';

function renderJob(st) {
  $('job-summary').hidden = false;
  $('job-title').textContent = `Job ${st.name || st.id}`;
  $('job-state').textContent = st.state;
  $('job-created').textContent = `created ${when(st.created_at)}${st.finished_at ? `, finished ${when(st.finished_at)}` : ''}`;
  $('job-bar').value = st.percent;
  let text = `${fmt(st.done)} of ${fmt(st.total)} final (${st.percent} %)`;
  if (!finished(st.state)) text += ` · ${st.rate_per_s} addresses/s · ETA ${st.eta_s === null ? 'unknown' : duration(st.eta_s)}`;
  $('job-progress-text').textContent = text;
  const extra = [`${fmt(st.rows)} rows`, `${fmt(st.addresses)} unique`, `${fmt(st.duplicates)} duplicates`,
    `${fmt(st.unusable)} unusable`];
  if (st.cached) extra.push(`${fmt(st.cached)} from the verdict cache`);
  // shown only when the status endpoint reports them
  if (st.retries_waiting !== undefined) extra.push(`${fmt(st.retries_waiting)} retries waiting`);
  if (st.bottleneck) extra.push(`waiting for the budget of ${st.bottleneck.provider || st.bottleneck}`);
  $('job-extra').textContent = extra.join(' · ');
  barChart($('chart-status'), STATUSES.map((s) => ({ label: s, value: st.counts[s] || 0, cls: s })), $('chart-status-desc'));
  const reasons = [];
  for (const [s, byReason] of Object.entries(st.reasons || {})) {
    for (const [r, n] of Object.entries(byReason)) reasons.push({ label: r, value: n, cls: s });
  }
  reasons.sort((a, b) => b.value - a.value);
  barChart($('chart-reason'), reasons, $('chart-reason-desc'));
  const sel = $('f-reason');
  const have = new Set([...sel.options].map((o) => o.value));
  for (const r of reasons.map((x) => x.label).sort()) if (!have.has(r)) sel.append(h('option', { value: r }, r));
}

// ---------------------------------------------------------------- results

let rowsNext = null;
function rowQuery() {
  const p = new URLSearchParams();
  for (const [k, id] of [['status', 'f-status'], ['reason', 'f-reason'], ['domain', 'f-domain'], ['q', 'f-q']]) {
    const v = $(id).value.trim();
    if (v) p.set(k, v);
  }
  return p;
}

// One page of 50 matching rows.  The server reads at most 20,000 rows of
// the job per request, so a filter that matches little may answer a short
// page with a `next`: ask again (a few times) to fill the page.
async function loadRows(after) {
  const seq = viewSeq;
  const rows = [];
  let next = after;
  let scanned = 0;
  $('rows-info').textContent = 'Loading...';
  try {
    for (let i = 0; i < 10; i++) {
      const p = rowQuery();
      p.set('limit', String(50 - rows.length));
      if (next !== null) p.set('after', String(next));
      const page = await api(`/v1/jobs/${job.id}/rows?${p}`);
      rows.push(...page.rows);
      next = page.next;
      scanned = page.scanned_to;
      if (rows.length >= 50 || next === null) break;
    }
  } catch (e) {
    if (seq === viewSeq) $('rows-info').textContent = e.message;
    return;
  }
  if (seq !== viewSeq) return;
  rowsNext = next;
  $('rows-table').tBodies[0].replaceChildren(...rows.map((r) => h('tr', {},
    h('td', { class: 'num' }, r.row),
    h('td', { class: 'addr' }, h('button', { type: 'button', class: 'link', onclick: () => showEvidence(r) }, r.email || r.input || '(empty)')),
    h('td', { class: `st-${r.status}` }, r.status),
    h('td', {}, r.reason),
    h('td', {}, r.mx_host || ''),
  )));
  $('rows-info').textContent = rows.length
    ? `Rows ${rows[0].row} to ${rows[rows.length - 1].row}${next !== null ? ' (more follow)' : ''}`
    : `No rows match${next !== null ? ` up to row ${scanned}: try the next page` : ''}.`;
  $('rows-more').disabled = next === null;
  $('rows-first').disabled = after === null;
}
$('filter-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadRows(null); });
$('rows-more').addEventListener('click', () => rowsNext !== null && loadRows(rowsNext));
$('rows-first').addEventListener('click', () => loadRows(null));

// "250 2.1.5 Ok": the reply text is stored after its code, and usually
// starts with its enhanced code already.
function smtpLine(s) {
  const text = s.reply || '';
  const enh = s.enhanced && !text.startsWith(s.enhanced) ? `${s.enhanced} ` : '';
  return `${s.code} ${enh}${text}`.trim();
}

function showEvidence(r) {
  const items = [
    ['Address', r.email], ['Status', r.status], ['Reason', r.reason], ['Detail', r.detail],
    ['Flags', (r.flags || []).join(', ')], ['MX host', r.mx_host], ['MX IP', r.mx_ip],
    ['Source IP', r.source_ip], ['Region', r.region], ['TLS', r.tls],
    ['Catch-all', r.catch_all === null ? '' : String(r.catch_all)],
    ['SMTP reply', r.smtp ? smtpLine(r.smtp) : ''],
    ['Attempts', r.attempts], ['Time spent', `${r.duration_ms} ms`], ['Last update', when(r.updated_at)],
    ['Input row', r.row], ['Duplicate of row', r.duplicate_of_row], ['Input', r.input],
  ];
  $('evidence-list').replaceChildren(...items.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined || v === '' ? '—' : v)]));
  $('evidence').showModal();
  $('evidence-close').focus();
}

// -------------------------------------------------------------- downloads

// fetch + Blob: a download needs the bearer header, which a plain link
// cannot send (and the token must not go into a URL).  The export is held
// in memory once, as a Blob, then saved under its name.
async function download(status, format) {
  const p = new URLSearchParams({ format });
  if (status) p.set('status', status);
  const name = `${(job.name || job.id).replace(/[^A-Za-z0-9._-]+/g, '_')}${status ? `-${status}` : ''}.${format}`;
  $('dl-msg').textContent = `Preparing ${name}...`;
  let res;
  try {
    res = await fetch(`/v1/jobs/${job.id}/results?${p}`, { headers: { Authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    $('dl-msg').textContent = `${name}: ${bytes(blob.size)} saved.`;
  } catch (e) {
    $('dl-msg').textContent = `The download failed: ${e.message}`;
  }
}
$('dl-clean').addEventListener('click', () => download('deliverable', 'csv'));
$('dl-csv').addEventListener('click', () => download('', 'csv'));
$('dl-jsonl').addEventListener('click', () => download('', 'jsonl'));
$('dl-form').addEventListener('submit', (ev) => { ev.preventDefault(); download($('dl-status').value, $('dl-format').value); });

// -------------------------------------------------------------- operators

async function loadIps() {
  const seq = viewSeq;
  $('ips-error').textContent = '';
  let body;
  try {
    body = await api('/v1/ips');
  } catch (e) {
    $('ips-error').textContent = e.message;
    return;
  }
  if (seq !== viewSeq) return;
  $('ips-table').tBodies[0].replaceChildren(...body.ips.map((ip) => h('tr', {},
    h('td', {}, ip.ip), h('td', {}, ip.region), h('td', {}, ip.worker),
    h('td', {}, ip.state + (ip.stale ? ' (stale)' : '')),
    h('td', { class: 'num' }, fmt(ip.sessions)), h('td', { class: 'num' }, fmt(ip.rcpts)),
    h('td', { class: 'num' }, fmt(ip.blocks)),
    h('td', {}, h('ul', {}, ...(ip.providers || []).map((p) => h('li', {},
      `${p.provider}: ${p.state}, ${p.strikes} strikes, rate ${Math.round((p.rate ?? 1) * 100)} % of its budget allowed`,
      p.until ? ` until ${when(p.until)}` : '', p.last_reply ? ` — ${p.last_reply}` : '')))),
  )));
  $('ips-empty').hidden = body.ips.length > 0;
}

window.addEventListener('hashchange', route);
route();
