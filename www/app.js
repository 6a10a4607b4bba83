// Portcullis playground: the page (main thread). One file of ~900 lines on
// purpose: plain JS with no build step, one section per tab.
// It owns the UI and the
// state; every decision, explanation and test check comes from the engine
// (portcullis-core compiled to wasm) in worker.js. State lives in the URL
// hash (#z=<base64url(deflate-raw(JSON))>) so a link reproduces the page.

const $ = (sel, el = document) => el.querySelector(sel);

/** Builds an element; strings become text nodes (never HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// ---------------------------------------------------------------- engine

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const pending = new Map();
let callSeq = 0;
worker.onmessage = (ev) => {
  const { id, ok, value, error, ms } = ev.data;
  const p = pending.get(id);
  if (!p) return;
  pending.delete(id);
  if (ok) p.resolve({ value, ms });
  else p.reject(new Error(error));
};
worker.onerror = (ev) => {
  ev.preventDefault();
  showFatal(`The engine failed to start: ${ev.message || 'worker error'}. Was www/pkg built (scripts/build-web.sh)?`);
};

/** Calls a wasm export in the worker; JSON results are parsed. */
function call(fn, ...args) {
  const id = ++callSeq;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, fn, args });
  }).then(({ value, ms }) => ({ data: fn === 'version' ? value : JSON.parse(value), ms }));
}

function showFatal(msg) {
  $('#result-body').replaceChildren(h('p', { class: 'errors' }, h('li', {}, msg)));
  $('#policy-status').textContent = 'engine unavailable';
  $('#policy-status').className = 'chip bad';
}

// ---------------------------------------------------------------- state

const DEFAULT_REQUEST = {
  client_ip: '65.52.10.20', client_port: 51000, local_ip: '10.0.0.4', local_port: 443,
  tls: true, protocol: 'tcp', method: 'GET', authority: 'api.contoso.net', path: '/',
  headers: [], upstream_status: 200, upstream: [],
};

const state = {
  tab: 'evaluate',
  sample: '',
  policy: '',
  request: structuredClone(DEFAULT_REQUEST),
  tests: { source: '', text: '' },
  diff: { old: '' },
};

// The environment panel (value_from / values_from): in memory only, never
// packed into the URL hash.
let envVars = {};
function envJson() { return JSON.stringify(envVars); }
function readEnvPanel() {
  envVars = {};
  for (const line of $('#env').value.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) envVars[line.slice(0, i).trim()] = line.slice(i + 1);
  }
}
function setEnvPanel(vars) {
  envVars = { ...vars };
  $('#env').value = Object.entries(envVars).map(([k, v]) => `${k}=${v}`).join('\n');
  if (Object.keys(envVars).length) $('#env-panel').open = true;
}

let manifest = { base: '../', samples: [], corpus: [] };
const repoUrl = (path) => new URL(manifest.base + path, location.href);
/** Resolves a test file's policy path against the test file's repo path. */
function resolvePath(from, rel) {
  const u = new URL(rel, new URL(from, 'http://repo/'));
  return u.pathname.replace(/^\//, '');
}

async function fetchText(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.text();
}

// URL hash: deflate-raw + base64url.
async function packState() {
  const json = JSON.stringify({
    v: 1, tab: state.tab, sample: state.sample, policy: state.policy, request: state.request,
    tests: state.tests, diff: state.diff,
  });
  const stream = new Blob([json]).stream().pipeThrough(new CompressionStream('deflate-raw'));
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function unpackState(z) {
  const b64 = z.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return JSON.parse(await new Response(stream).text());
}

let hashTimer = 0;
function saveHashSoon() {
  clearTimeout(hashTimer);
  hashTimer = setTimeout(saveHash, 250);
}
async function saveHash() {
  clearTimeout(hashTimer);
  const z = await packState();
  history.replaceState(null, '', `#z=${z}`);
}

// ---------------------------------------------------------------- editor

const ta = $('#policy');
const gutter = $('#policy-editor .gutter');
const marks = $('#policy-editor .marks');
let lineMarks = { errors: [], rule: null };

function renderEditor() {
  const lines = ta.value.split('\n').length;
  // Every problem of a line, in column order: the line is marked once (with
  // the first message), and each problem gets a caret at its column.
  const errs = new Map();
  for (const e of lineMarks.errors) {
    if (!errs.has(e.line)) errs.set(e.line, []);
    errs.get(e.line).push(e);
  }
  for (const list of errs.values()) list.sort((a, b) => a.column - b.column);
  const ruleLine = lineMarks.rule ? lineMarks.rule.line : 0;
  const ruleCls = lineMarks.rule ? `rule-${lineMarks.rule.access}` : '';
  const g = [];
  for (let i = 1; i <= lines; i++) {
    const here = errs.get(i);
    const cls = here ? 'err' : i === ruleLine ? ruleCls : '';
    g.push(h('div', {
      class: cls || null,
      title: here ? here.map((e) => `${e.line}:${e.column} ${e.message}`).join('\n') : null,
      onclick: here ? () => jumpTo(i, here[0].column) : null,
    }, i));
  }
  g.push(h('div', {}, ''), h('div', {}, ''));
  gutter.replaceChildren(...g);
  const layer = h('div', { class: 'layer' });
  const top = (line) => `${8 + (line - 1) * 20}px`;
  if (ruleLine && !errs.has(ruleLine)) {
    layer.append(h('div', { class: `mark ${ruleCls}`, style: `top:${top(ruleLine)}`, 'data-line': ruleLine }));
  }
  for (const [line, list] of errs) {
    layer.append(h('div', { class: 'mark err', style: `top:${top(line)}`, 'data-line': line },
      // The column is in characters (1-based); the editor's font is
      // monospaced, so it is that many `ch` from the text's left edge.
      ...list.map((e) => h('span', {
        class: 'col', style: `--col:${Math.max(0, e.column - 1)}`,
        'data-line': e.line, 'data-column': e.column, title: e.message,
      })),
      h('span', { class: 'msg' }, list[0].message)));
  }
  marks.replaceChildren(layer);
  syncScroll();
}

function syncScroll() {
  gutter.scrollTop = ta.scrollTop;
  const layer = marks.firstChild;
  if (layer) {
    layer.style.transform = `translateY(${-ta.scrollTop}px)`;
    layer.style.setProperty('--scroll-x', `${ta.scrollLeft}px`);
  }
}
ta.addEventListener('scroll', syncScroll);

/** The offset in the editor's text of a 1-based line and column (columns
 * count characters, as the core's do). */
function offsetOf(line, column) {
  const lines = ta.value.split('\n');
  let start = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
  const text = lines[line - 1] || '';
  // Characters, not UTF-16 units: step over whole code points.
  let at = 0;
  for (let c = 1; c < column && at < text.length; c++) at += text.codePointAt(at) > 0xffff ? 2 : 1;
  return start + at;
}

/** Moves the cursor to a line (and column), scrolled into view. With a
 * column, the JSON token that starts there is selected (a string with its
 * quotes, or a word, number or punctuation mark); without, the line. */
function jumpTo(line, column) {
  const lines = ta.value.split('\n');
  const lineStart = offsetOf(line, 1);
  const lineEnd = lineStart + (lines[line - 1] || '').length;
  let start = lineStart;
  let end = lineEnd;
  if (column) {
    start = Math.min(offsetOf(line, column), lineEnd);
    end = start;
    const t = ta.value;
    if (t[end] === '"') {
      end++;
      while (end < lineEnd && t[end] !== '"') end += t[end] === '\\' ? 2 : 1;
      end = Math.min(end + 1, lineEnd);
    } else {
      while (end < lineEnd && !/[\s,:{}\[\]"]/.test(t[end])) end++;
      if (end === start && end < lineEnd) end++;
    }
  }
  ta.focus({ preventScroll: true });
  ta.setSelectionRange(start, end);
  ta.scrollTop = Math.max(0, (line - 1) * 20 - ta.clientHeight / 3);
  // Bring the column into view when the line is wider than the editor.
  if (column) {
    const x = (column - 1) * charWidth();
    if (x < ta.scrollLeft || x > ta.scrollLeft + ta.clientWidth - 40) ta.scrollLeft = Math.max(0, x - ta.clientWidth / 3);
  }
  syncScroll();
}

/** The width of one character of the editor's monospaced font, in px. */
let charWidthPx = 0;
function charWidth() {
  if (!charWidthPx) {
    const probe = h('span', { class: 'ch-probe' }, 'x'.repeat(100));
    marks.append(probe);
    charWidthPx = probe.getBoundingClientRect().width / 100 || 7.8;
    probe.remove();
  }
  return charWidthPx;
}

function jumpToLine(line) {
  jumpTo(line, 0);
}

ta.addEventListener('keydown', (ev) => {
  if (ev.key === 'Tab' && !ev.shiftKey && !ev.ctrlKey && !ev.metaKey) {
    ev.preventDefault();
    ta.setRangeText('  ', ta.selectionStart, ta.selectionEnd, 'end');
    ta.dispatchEvent(new Event('input'));
  }
});
ta.addEventListener('input', () => {
  state.policy = ta.value;
  renderEditor();
  refreshSoon();
  saveHashSoon();
});

// ---------------------------------------------------------------- request builder

const form = $('#request');

/**
 * One header row. A value is text, or {hex: "..."} for bytes that are not
 * UTF-8 (as in test files): the row then holds the hex digits with its
 * "hex" box ticked, so nothing is lost between a test case and the builder.
 */
function headerRow(kind, name = '', value = '') {
  const isHex = value !== null && typeof value === 'object' && typeof value.hex === 'string';
  const hex = h('input', { type: 'checkbox', 'data-k': 'hex', title: 'the value is hex bytes', 'aria-label': `${kind} header value is hex` });
  hex.checked = isHex;
  const row = h('div', { class: 'row' },
    h('input', { 'data-k': 'name', placeholder: 'name', value: name, 'aria-label': `${kind} header name` }),
    h('input', { 'data-k': 'value', placeholder: 'value', value: isHex ? value.hex : String(value), 'aria-label': `${kind} header value` }),
    h('label', { class: 'hex' }, hex, 'hex'),
    h('button', { type: 'button', title: 'remove', 'aria-label': 'remove header',
      onclick: () => { row.remove(); onRequestChange(); } }, '×'));
  return row;
}

function writeForm(r) {
  const f = form.elements;
  for (const k of ['client_ip', 'client_port', 'local_ip', 'local_port', 'method', 'authority', 'path', 'upstream_status', 'protocol']) {
    f[k].value = r[k] ?? '';
  }
  f.tls.checked = !!r.tls;
  for (const kind of ['headers', 'upstream']) {
    $(`[data-rows="${kind}"]`, form).replaceChildren(...(r[kind] || []).map(([n, v]) => headerRow(kind, n, v)));
  }
}

function readForm() {
  const f = form.elements;
  const rows = (kind) => [...$(`[data-rows="${kind}"]`, form).children]
    .map((row) => {
      const v = $('[data-k=value]', row).value;
      return [$('[data-k=name]', row).value, $('[data-k=hex]', row).checked ? { hex: v } : v];
    })
    .filter(([n, v]) => n !== '' || (typeof v === 'string' ? v !== '' : v.hex !== ''));
  return {
    client_ip: f.client_ip.value.trim(), client_port: Number(f.client_port.value || 0),
    local_ip: f.local_ip.value.trim(), local_port: Number(f.local_port.value || 0),
    tls: f.tls.checked, protocol: f.protocol.value, method: f.method.value,
    authority: f.authority.value, path: f.path.value, headers: rows('headers'),
    upstream_status: Number(f.upstream_status.value || 200), upstream: rows('upstream'),
  };
}

const sock = (ip, port) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** The builder's request as a policy test case (what the engine reads). */
function caseOf(r) {
  return {
    request: {
      peer: sock(r.client_ip, r.client_port), local: sock(r.local_ip, r.local_port), tls: r.tls,
      protocol: r.protocol, method: r.method, authority: r.authority, path: r.path, headers: r.headers,
    },
    upstream: { status: r.upstream_status, headers: r.upstream },
  };
}

/**
 * A test case's request as builder state (the inverse of caseOf), read by
 * the engine's own test-file reader so every default is the one test files
 * get; null when the case's request is not readable.
 */
async function requestOfCase(c) {
  const { data } = await call('read_request', JSON.stringify({ request: c.request, upstream: c.upstream }));
  if (!data.ok) return null;
  const rq = data.request;
  const split = (s) => {
    const m = /^\[(.*)\]:(\d+)$/.exec(s) || /^([^:]*):(\d+)$/.exec(s);
    return [m[1], Number(m[2])];
  };
  const [client_ip, client_port] = split(rq.peer);
  const [local_ip, local_port] = split(rq.local);
  return {
    client_ip, client_port, local_ip, local_port, tls: rq.tls, protocol: rq.protocol,
    method: rq.method, authority: rq.authority, path: rq.path, headers: rq.headers,
    upstream_status: data.upstream.status, upstream: data.upstream.headers,
  };
}

function onRequestChange() {
  state.request = readForm();
  refreshSoon();
  saveHashSoon();
}
form.addEventListener('input', onRequestChange);
form.addEventListener('change', onRequestChange);
form.addEventListener('submit', (ev) => ev.preventDefault());
for (const b of form.querySelectorAll('[data-add]')) {
  b.addEventListener('click', () => {
    const kind = b.dataset.add;
    const row = headerRow(kind);
    $(`[data-rows="${kind}"]`, form).append(row);
    $('input', row).focus();
  });
}

// ---------------------------------------------------------------- evaluation

const metrics = { pageToFirstDecisionMs: null, lastEvalMs: null, evaluations: 0 };
window.portcullis = { metrics, state, lastResult: null, lastTests: null, corpus: null };

let refreshTimer = 0;
let refreshGen = 0;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 120);
}

async function refresh() {
  clearTimeout(refreshTimer);
  const gen = ++refreshGen;
  const policy = state.policy;
  const caseJson = JSON.stringify(caseOf(state.request));
  let chk;
  let ev;
  try {
    [chk, ev] = await Promise.all([call('check_policy', policy, envJson()), call('evaluate', policy, caseJson, envJson())]);
  } catch (e) {
    showFatal(String(e.message || e));
    return;
  }
  if (gen !== refreshGen) return;
  renderPolicyStatus(chk.data);
  renderResult(ev.data, ev.ms);
}

function renderPolicyStatus(c) {
  const chip = $('#policy-status');
  if (c.ok) {
    chip.className = 'chip ok';
    chip.textContent = `valid · ${c.name} · ${c.rules} network rule${c.rules === 1 ? '' : 's'}`;
  } else {
    chip.className = 'chip bad';
    chip.textContent = `${c.errors.length} error${c.errors.length === 1 ? '' : 's'}`;
  }
  lineMarks.errors = c.errors;
  // Each problem moves the cursor to its line and column (click, or Enter).
  $('#policy-errors').replaceChildren(...c.errors.map((e) => h('li', {
    'data-line': e.line, 'data-column': e.column, tabindex: 0, role: 'button',
    title: `go to line ${e.line}, column ${e.column}`,
    onclick: () => jumpTo(e.line, e.column),
    onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); jumpTo(e.line, e.column); } },
  }, h('code', {}, `${e.line}:${e.column}`), ' ', e.path ? h('code', {}, e.path) : '(document)', ': ', e.message)));
}

const STEPS = [
  ['client_ip', 'client address'],
  ['scope', 'scope'],
  ['network', 'network rules'],
  ['https_only', 'HTTPS only'],
  ['require_headers', 'required headers'],
  ['forward', 'forward'],
];

function pipeline(r) {
  const at = STEPS.findIndex(([s]) => s === r.step);
  const cfg = r.configured;
  const configured = {
    client_ip: true, scope: r.scopes.length > 0 || r.scope_ambiguous,
    network: cfg.network, https_only: cfg.https_only,
    require_headers: cfg.require_headers > 0, forward: true,
  };
  return h('ol', { class: 'pipeline', 'aria-label': 'evaluation steps' }, STEPS.map(([s, label], i) => {
    let cls = '';
    let note = '';
    if (i < at) { cls = configured[s] ? 'pass' : 'off'; note = configured[s] ? ' ✓' : ' (none)'; }
    else if (i === at) {
      const v = r.would_verdict || r.verdict;
      cls = v === 'forward' ? 'done' : v === 'redirect' ? 'redirect' : 'stop';
      note = v === 'forward' ? ' ✓' : r.verdict === 'forward' ? ` → would ${r.would_status} (report mode)` : ` → ${r.status}`;
    } else cls = configured[s] ? '' : 'off';
    if (s === 'client_ip') label = `client address (${cfg.client_ip})`;
    if (s === 'scope' && configured.scope) label = r.scope_ambiguous ? `scope (${r.scope_refused})` : `scope (${r.scope ?? 'top level'})`;
    return h('li', { class: cls, 'data-step': s }, label + note);
  }));
}

function scopesTable(r) {
  if (r.scope_ambiguous) {
    return h('p', { class: 'no', 'data-scope-ambiguous': 'true' }, `Refused: ${r.scope_refusal}.`);
  }
  const rows = r.scopes.map((x) => {
    let res;
    if (!x.reached) res = h('span', { class: 'muted' }, `not reached${x.matched ? ' (would match)' : ''}`);
    else if (x.matched) res = h('span', { class: 'yes' }, `✓ ${x.why}`);
    else res = h('span', { class: 'no' }, `✗ ${x.why}`);
    return h('tr', {
      class: [x.chosen ? 'decided allow' : '', x.reached ? '' : 'unreached'].join(' ').trim() || null,
      'data-scope': x.name, 'data-matched': String(x.matched), 'data-chosen': String(x.chosen),
    },
    h('td', {}, h('a', { class: 'line', title: `line ${x.line}`, onclick: () => jumpToLine(x.line) }, x.name)),
    h('td', { class: 'why' }, res));
  });
  const none = r.scope === null ? h('p', { class: 'muted' }, 'No scope matched: the top level applies.') : '';
  return h('div', {},
    h('table', { class: 'scopes' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Scope'), h('th', {}, 'Match'))),
      h('tbody', {}, rows)),
    none);
}

function rulesTable(r) {
  if (!r.configured.network) return h('p', { class: 'muted' }, 'No network section: no address filtering.');
  if (r.client_ip === null) {
    return h('p', { class: 'no' }, 'The client address is unknown, so the request is denied before any rule is considered.');
  }
  const rows = r.rules.map((x) => {
    let res;
    if (!x.reached) res = h('span', { class: 'muted' }, `not reached${x.matched ? ' (would match)' : ''}`);
    else if (x.decided) res = h('span', { class: 'yes' }, `✓ ${x.why}`);
    else if (x.matched) res = h('span', { class: 'yes' }, `✓ ${x.why}`);
    else res = h('span', { class: 'no' }, `✗ ${x.why}`);
    const ports = `${x.source_ports} → ${x.destination_ports}`;
    return h('tr', {
      class: [x.decided ? `decided ${x.access}` : '', x.reached ? '' : 'unreached'].join(' ').trim() || null,
      'data-rule': x.name, 'data-matched': String(x.matched), 'data-decided': String(x.decided),
    },
    h('td', { class: 'mono' }, x.priority),
    h('td', {}, h('a', { class: 'line', title: `line ${x.line} (${x.path})`, onclick: () => jumpToLine(x.line) }, x.name)),
    h('td', { class: `acc-${x.access}` }, x.access),
    h('td', { class: 'mono' }, x.source.join(', ')),
    h('td', { class: 'mono' }, ports),
    h('td', { class: 'mono' }, x.destination),
    h('td', { class: 'mono' }, x.protocol),
    h('td', { class: 'why' }, res));
  });
  // The client is known here, so the network step ran: no rule means the default.
  const byDefault = r.rule_index === null;
  rows.push(h('tr', { class: byDefault ? `decided ${r.configured.default_access}` : 'unreached', 'data-rule': 'default' },
    h('td', { class: 'mono' }, '—'), h('td', {}, 'default'),
    h('td', { class: `acc-${r.configured.default_access}` }, r.configured.default_access),
    h('td', { class: 'mono', colspan: 4 }, 'every flow no rule matched'),
    h('td', {}, byDefault ? h('span', { class: 'yes' }, `✓ no rule matched: default_access ${r.configured.default_access} decides`)
      : h('span', { class: 'muted' }, 'not reached'))));
  return h('table', { class: 'rules' },
    h('thead', {}, h('tr', {}, ['Priority', 'Rule', 'Access', 'Source', 'Ports (src → dst)', 'Destination', 'Proto', 'Why'].map((t) => h('th', {}, t)))),
    h('tbody', {}, rows));
}

/** Rows of a header diff: grouped by lowercase name, after's order first. */
function headerDiff(before, after) {
  const group = (list) => {
    const m = new Map();
    for (const x of list || []) {
      const k = x.name.toLowerCase();
      if (!m.has(k)) m.set(k, { name: x.name, values: [] });
      m.get(k).values.push(x.value);
    }
    return m;
  };
  const b = group(before);
  const a = group(after);
  const rows = [];
  for (const [k, x] of a) {
    const old = b.get(k);
    const same = old && old.values.join('\n') === x.values.join('\n');
    rows.push({ op: !old ? 'added' : same ? 'same' : 'changed', name: x.name, before: old ? old.values : [], after: x.values });
  }
  for (const [k, x] of b) if (!a.has(k)) rows.push({ op: 'removed', name: x.name, before: x.values, after: [] });
  return rows;
}

function diffTable(title, before, after, emptyNote) {
  const rows = headerDiff(before, after);
  const body = rows.length === 0
    ? h('p', { class: 'muted' }, emptyNote)
    : h('table', { class: 'diff' },
      h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', {}, 'Header'), h('th', {}, 'Before'), h('th', {}, 'After'))),
      h('tbody', {}, rows.map((x) => h('tr', { class: x.op, 'data-header': x.name.toLowerCase(), 'data-op': x.op },
        h('td', { class: 'op' }, x.op === 'same' ? '' : x.op),
        h('td', { class: 'mono' }, x.name),
        h('td', { class: 'mono' }, x.before.join('\n')),
        h('td', { class: 'mono' }, x.after.join('\n'))))));
  return h('div', {}, h('h3', {}, title), body);
}

function renderResult(r, ms) {
  window.portcullis.lastResult = r;
  const body = $('#result-body');
  if (!r.ok) {
    lineMarks.rule = null;
    renderEditor();
    const reqErrs = r.request_errors || [];
    $('#request-errors').replaceChildren(...reqErrs.map((e) => h('li', {}, e.path ? h('code', {}, e.path) : '', e.path ? ': ' : '', e.message)));
    body.replaceChildren(h('div', { class: 'verdict' }, h('span', { class: 'badge deny' }, r.errors && r.errors.length ? 'POLICY REJECTED' : 'BAD REQUEST'),
      h('span', { class: 'muted' }, r.errors && r.errors.length
        ? 'A rejected policy is never partly applied: fix the errors shown in the editor.'
        : 'Fix the request fields listed under the form.')));
    body.dataset.verdict = 'error';
    return;
  }
  $('#request-errors').replaceChildren();
  metrics.evaluations++;
  metrics.lastEvalMs = ms;
  if (metrics.pageToFirstDecisionMs === null) {
    metrics.pageToFirstDecisionMs = performance.now();
  }
  $('#timing').textContent = `decided in ${ms.toFixed(2)} ms · first decision ${Math.round(metrics.pageToFirstDecisionMs)} ms after page load`;
  const decidingRule = r.rules.find((x) => x.decided);
  lineMarks.rule = r.rule_line && decidingRule ? { line: r.rule_line, access: decidingRule.access } : null;
  renderEditor();
  const facts = [
    ['rule', r.rule_line
      ? h('a', { class: 'line', onclick: () => jumpToLine(r.rule_line) }, `${r.rule} (line ${r.rule_line})`)
      : r.rule],
    ['step', r.step],
    ['scope', r.scope ?? (r.scope_ambiguous ? `none (${r.scope_refused})` : 'top level')],
    ['client', `${r.client_ip ?? 'unknown'} (from ${r.client_source})`],
    ...(r.client_source === 'peer' ? [] : [['client detail', r.client_detail]]),
    ['secure', r.secure ? 'yes (TLS or trusted X-Forwarded-Proto)' : 'no'],
  ];
  if (r.location) facts.push(['location', r.location]);
  facts.push(['trace', r.trace]);
  body.dataset.verdict = r.verdict;
  body.replaceChildren(
    h('div', { class: 'verdict' },
      h('span', { class: `badge ${r.verdict}`, id: 'verdict' }, r.verdict.toUpperCase()),
      h('span', { class: 'status', id: 'status' }, r.status),
      h('span', { class: 'muted' }, r.verdict === 'forward' ? 'the upstream answered (after the policy\'s response edits)' : 'answered by the gateway'),
      r.mode === 'report'
        ? h('span', { class: `badge ${r.would_verdict}`, id: 'would', 'data-would': r.would_verdict },
          r.would_verdict === 'forward' ? 'report mode: would forward' : `report mode: would ${r.would_verdict} ${r.would_status}`)
        : ''),
    h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', { 'data-fact': k }, v)])),
    r.explain_agrees ? '' : h('p', { class: 'no' }, 'Engine inconsistency: the per-rule walk and the compiled matcher disagree. Please report this policy.'),
    h('h3', {}, 'Evaluation'), pipeline(r),
    ...(r.scopes.length || r.scope_ambiguous ? [h('h3', {}, 'Scopes, in document order'), scopesTable(r)] : []),
    h('h3', {}, r.scope ? `Network rules of scope ${r.scope}, in priority order` : 'Network rules, in priority order'), rulesTable(r),
    h('div', { class: 'two' },
      r.request_headers_after
        ? diffTable('Request headers to the backend', r.request_headers_before, r.request_headers_after, 'No headers.')
        : h('div', {}, h('h3', {}, 'Request headers to the backend'), h('p', { class: 'muted' }, 'Not forwarded.')),
      r.response_headers_before
        ? diffTable('Response headers to the client', r.response_headers_before, r.response_headers_after, 'No headers.')
        : diffTable('Local reply headers to the client', [], r.response_headers_after, 'No headers.')),
    r.body ? h('h3', {}, 'Local reply body') : '',
    r.body ? h('pre', { class: 'body' }, r.body) : '',
  );
}

$('#copy-case').addEventListener('click', async () => {
  const r = window.portcullis.lastResult;
  const c = { name: 'playground case', ...caseOf(state.request) };
  if (r && r.ok) {
    c.expect = { verdict: r.verdict, status: r.status, rule: r.rule, client_ip: r.client_ip ?? 'unknown' };
    if (r.mode === 'report') Object.assign(c.expect, { would_verdict: r.would_verdict, would_status: r.would_status, step: r.step });
    if (r.location) c.expect.location = r.location;
  }
  await copy(JSON.stringify(c, null, 2), 'Test case copied');
});

async function copy(text, done) {
  const note = $('#share-note');
  try {
    await navigator.clipboard.writeText(text);
    note.textContent = done;
  } catch {
    note.textContent = 'Clipboard unavailable: copy from the address bar.';
  }
  setTimeout(() => { note.textContent = ''; }, 2500);
}

$('#share').addEventListener('click', async () => {
  await saveHash();
  await copy(location.href, 'Link copied');
});

// ---------------------------------------------------------------- tabs

function setTab(tab) {
  state.tab = ['tests', 'import', 'diff', 'replay'].includes(tab) ? tab : 'evaluate';
  for (const b of document.querySelectorAll('.tabs button')) b.setAttribute('aria-selected', String(b.dataset.tab === state.tab));
  $('#view-evaluate').hidden = state.tab !== 'evaluate';
  $('#view-tests').hidden = state.tab !== 'tests';
  $('#view-import').hidden = state.tab !== 'import';
  $('#view-diff').hidden = state.tab !== 'diff';
  $('#view-replay').hidden = state.tab !== 'replay';
  saveHashSoon();
}
for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => setTab(b.dataset.tab));

// ---------------------------------------------------------------- samples

async function loadSample(name) {
  const s = manifest.samples.find((x) => x.name === name);
  if (!s) return;
  state.sample = name;
  $('#sample').value = name;
  const text = await fetchText(repoUrl(s.policy));
  setPolicy(text);
  if (s.tests.length) {
    const testText = await fetchText(repoUrl(s.tests[0]));
    setTests(s.tests[0], testText);
    try {
      // The sample's test file says what environment its policy needs.
      setEnvPanel(JSON.parse(testText).env || {});
      const first = (JSON.parse(testText).cases || [])[0];
      const rq = first && await requestOfCase(first);
      if (rq) { state.request = rq; writeForm(state.request); }
    } catch {
      // The Tests tab reports a malformed file when it runs.
    }
  }
  saveHashSoon();
  await refresh();
}

function setPolicy(text) {
  ta.value = text;
  state.policy = text;
  ta.scrollTop = 0;
  renderEditor();
}

$('#sample').addEventListener('change', (ev) => { if (ev.target.value) loadSample(ev.target.value); });

// ---------------------------------------------------------------- tests

const testTa = $('#test-file');

function setTests(source, text) {
  state.tests = { source, text };
  testTa.value = text;
  $('#test-sample').value = source;
  $('#test-source').textContent = source
    ? `Loaded from ${source}; a policy named by path is read next to it.`
    : 'A pasted file that names its policy by path is run against the policy in the editor.';
}

testTa.addEventListener('input', () => {
  state.tests = { source: state.tests.source, text: testTa.value };
  saveHashSoon();
});

$('#test-sample').addEventListener('change', async (ev) => {
  const p = ev.target.value;
  if (p) setTests(p, await fetchText(repoUrl(p)));
  saveHashSoon();
});

$('#test-file-input').addEventListener('change', async (ev) => {
  const f = ev.target.files[0];
  if (f) setTests('', await f.text());
  saveHashSoon();
});

/**
 * The policy files a test file names, as {path: text}, and where the text
 * came from. With `useEditor`, the editor's policy stands in for the file
 * when it is the loaded sample's (so edits are tested) or when the test file
 * was pasted; the corpus run always reads the files as they are.
 */
async function policiesFor(text, source, useEditor) {
  let p;
  try { p = JSON.parse(text).policy; } catch { return { policies: {}, from: '' }; }
  if (typeof p !== 'string') return { policies: {}, from: 'inline' };
  if (!source) return { policies: useEditor ? { [p]: state.policy } : {}, from: 'the editor' };
  const path = resolvePath(source, p);
  const sample = manifest.samples.find((s) => s.name === state.sample);
  if (useEditor && sample && sample.policy === path) return { policies: { [p]: state.policy }, from: 'the editor' };
  try {
    return { policies: { [p]: await fetchText(repoUrl(path)) }, from: path };
  } catch {
    return { policies: {}, from: '' };
  }
}

async function runTestFile(text, source, useEditor) {
  const { policies, from } = await policiesFor(text, source, useEditor);
  const { data } = await call('run_tests', text, JSON.stringify(policies));
  data.policy_from = from;
  return data;
}

function problemList(list) {
  return h('ul', { class: 'errors' }, list.map((e) => h('li', {}, e.line ? `${e.line}:${e.column} ` : '', e.path ? h('code', {}, e.path) : '', e.path ? ': ' : '', e.message)));
}

function renderFileResult(res, file, text) {
  const out = [];
  if (res.errors.length) out.push(h('p', { class: 'no' }, 'The test file was not read:'), problemList(res.errors));
  if (res.policy_errors.length) out.push(h('p', { class: 'no' }, `The policy ${res.policy} was rejected:`), problemList(res.policy_errors));
  if (res.expect_policy_error) {
    const x = res.expect_policy_error;
    out.push(h('div', { class: `case ${res.pass ? '' : 'fail'}`, 'data-case': 'expect_policy_error', 'data-pass': String(res.pass) },
      h('div', { class: 'name' }, res.pass ? '✓ ' : '✗ ', `policy rejected at ${x.expected.join(', ')}`),
      x.accepted ? h('div', { class: 'no' }, 'but the policy was accepted') : null,
      x.missing.length && !x.accepted ? h('div', { class: 'no' }, `no error at ${x.missing.join(', ')}`) : null,
      x.errors.length ? problemList(x.errors) : null));
  }
  let parsedCases = [];
  try { parsedCases = JSON.parse(text).cases || []; } catch { /* reported by the engine */ }
  res.cases.forEach((c, i) => {
    out.push(h('div', { class: `case ${c.pass ? '' : 'fail'}`, 'data-case': c.name, 'data-pass': String(c.pass) },
      h('div', { class: 'name' }, c.pass ? '✓ ' : '✗ ', c.name, h('span', { class: 'note' }, ` line ${c.line} `),
        parsedCases[i] ? h('button', { type: 'button', class: 'ghost small', onclick: () => openCase(file, text, parsedCases[i]) }, 'open in evaluator') : null),
      c.mismatches.length ? h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'Expected'), h('th', {}, 'Seen'))),
        h('tbody', {}, c.mismatches.map((m) => h('tr', {}, h('td', { class: 'mono' }, m.field), h('td', { class: 'mono' }, m.expected), h('td', { class: 'mono no' }, m.seen))))) : null,
      h('div', { class: 'trace' }, `trace: ${c.trace}`)));
  });
  return out;
}

async function openCase(file, text, c) {
  const { policies, from } = await policiesFor(text, file, true);
  const p = Object.values(policies)[0];
  let inline = null;
  try { const pol = JSON.parse(text).policy; if (pol && typeof pol === 'object') inline = JSON.stringify(pol, null, 2); } catch { /* ignore */ }
  if (inline) setPolicy(inline);
  else if (typeof p === 'string') setPolicy(p);
  if (from !== 'the editor') {
    // The editor now holds another file (or an inline policy): say which sample, if any.
    const sample = manifest.samples.find((x) => x.policy === from);
    state.sample = sample ? sample.name : '';
    $('#sample').value = state.sample;
  }
  const rq = await requestOfCase(c);
  if (rq) state.request = rq;
  writeForm(state.request);
  setTab('evaluate');
  refresh();
}

function summaryLine(files) {
  let pass = 0;
  let fail = 0;
  for (const r of files) {
    pass += r.passed + (r.expect_policy_error && r.pass ? 1 : 0);
    fail += r.failed + (r.expect_policy_error && !r.pass ? 1 : 0) + (r.errors.length || r.policy_errors.length ? 1 : 0);
  }
  return { pass, fail };
}

$('#run-tests').addEventListener('click', async () => {
  const text = testTa.value;
  const res = await runTestFile(text, state.tests.source, true);
  window.portcullis.lastTests = res;
  const { pass, fail } = summaryLine([res]);
  $('#test-results').replaceChildren(
    h('div', { class: `summary ${fail ? 'fail' : 'pass'}`, id: 'test-summary', 'data-pass': pass, 'data-fail': fail },
      `${pass} passed, ${fail} failed${res.policy ? ` · policy ${res.policy}` : ''}${res.policy_from && res.policy_from !== 'inline' ? ` (read from ${res.policy_from})` : ''}`),
    ...renderFileResult(res, state.tests.source, text));
});

$('#run-corpus').addEventListener('click', async () => {
  const results = {};
  const texts = {};
  const box = $('#test-results');
  box.replaceChildren(h('p', { class: 'muted' }, `Running ${manifest.corpus.length} files…`));
  const t0 = performance.now();
  for (const f of manifest.corpus) {
    let text;
    try { text = await fetchText(repoUrl(f)); } catch (e) {
      results[f] = { ok: false, pass: false, errors: [{ line: 0, column: 0, path: '', message: String(e.message) }], policy: null, policy_errors: [], expect_policy_error: null, cases: [], passed: 0, failed: 0 };
      continue;
    }
    texts[f] = text;
    results[f] = await runTestFile(text, f, false);
    delete results[f].policy_from;
  }
  const ms = performance.now() - t0;
  window.portcullis.corpus = results;
  const files = Object.values(results);
  const { pass, fail } = summaryLine(files);
  box.replaceChildren(
    h('div', { class: `summary ${fail ? 'fail' : 'pass'}`, id: 'test-summary', 'data-pass': pass, 'data-fail': fail },
      `Corpus: ${files.length} files, ${pass} passed, ${fail} failed (${Math.round(ms)} ms)`),
    ...Object.entries(results).map(([f, r]) => {
      const failed = !r.pass;
      const d = h('details', { class: 'file', 'data-file': f },
        h('summary', {}, f, h('span', { class: `tag ${failed ? 'no' : 'yes'}` },
          failed ? 'FAIL' : `${r.passed || (r.expect_policy_error ? 1 : 0)} ✓`)),
        renderFileResult(r, f, texts[f] || ''));
      if (failed) d.open = true;
      return d;
    }));
});

// ---------------------------------------------------------------- diff

const diffTa = $('#diff-old');
diffTa.addEventListener('input', () => { state.diff.old = diffTa.value; saveHashSoon(); });
$('#diff-from-editor').addEventListener('click', () => {
  diffTa.value = ta.value;
  state.diff.old = diffTa.value;
  saveHashSoon();
});

const HEADINGS = {
  'newly-allowed': 'Newly allowed', 'newly-denied': 'Newly denied', 'other-rule': 'Same verdict, other deciding rule',
};
const decider = (d) => (d.priority == null ? `${d.rule} (${d.access})` : `${d.rule} (priority ${d.priority}, ${d.access})`);

const col = (v) => v.join(', ');

/** The flow groups of one comparison (the top level, or a pair of scopes). */
function flowGroups(changes) {
  return changes.map((c) => h('div', { class: 'diff-group', 'data-kind': c.kind },
    h('h3', {}, HEADINGS[c.kind] || c.kind),
    h('p', { class: 'note' }, 'old: ', h('b', { 'data-side': 'old' }, decider(c.old)), ' · new: ', h('b', { 'data-side': 'new' }, decider(c.new))),
    c.flows.length ? h('table', { class: 'rules' },
      h('tr', {}, ['source', 'source ports', 'destination', 'destination ports', 'protocol'].map((t) => h('th', {}, t))),
      c.flows.map((f) => h('tr', { class: 'flow' },
        h('td', { 'data-field': 'source' }, col(f.source)), h('td', {}, col(f.source_ports)),
        h('td', {}, col(f.destination)), h('td', { 'data-field': 'destination_ports' }, col(f.destination_ports)),
        h('td', { 'data-field': 'protocol' }, f.protocol)))) : h('p', { class: 'muted' }, `${c.ranges} ranges (not listed)`)));
}

function settingsTable(list) {
  return h('table', { class: 'rules' }, h('tr', {}, h('th', {}, 'field'), h('th', {}, 'current'), h('th', {}, 'editor')),
    list.map((st) => h('tr', { 'data-setting': st.field }, h('td', {}, st.field), h('td', {}, st.old), h('td', {}, st.new))));
}

/** `top-level`, `{scope: name}` or `{refused: why}` as words. */
const applies = (a) => (a === 'top-level' ? 'top level' : a.scope != null ? `scope ${a.scope}` : a.refused);
const REGIONS_SHOWN = 50;

/** The scoped part: scopes that differ, and the regions of requests that change. */
function scopedPart(sc) {
  if (!sc) return [];
  const pos = (p) => (p == null ? 'none' : String(p));
  const out = [];
  if (sc.scopes.length) {
    out.push(h('div', { class: 'diff-group', 'data-kind': 'scopes' }, h('h3', {}, 'Scopes'),
      h('table', { class: 'rules' }, h('tr', {}, h('th', {}, 'scope'), h('th', {}, 'current'), h('th', {}, 'editor')),
        sc.scopes.map((c) => h('tr', { 'data-scope-change': c.name }, h('td', {}, c.name),
          h('td', {}, c.old_match == null ? 'absent' : `${pos(c.old_position)}: ${c.old_match}`),
          h('td', {}, c.new_match == null ? 'absent' : `${pos(c.new_position)}: ${c.new_match}`)))),
      ...sc.scopes.filter((c) => c.settings.length).map((c) => h('div', { 'data-scope-settings': c.name },
        h('p', { class: 'note' }, `${c.name}: other sections`), settingsTable(c.settings)))));
  }
  if (sc.status === 'too-many-regions') {
    out.push(h('p', { class: 'summary fail', id: 'diff-regions-over' },
      `too many regions: the cut stopped after ${sc.limit} units of work; every request may have changed`));
    return out;
  }
  out.push(h('h3', {}, 'Requests by scope'));
  if (!sc.groups.length) out.push(h('p', { class: 'muted' }, 'no change'));
  for (const g of sc.groups) {
    const title = `${applies(g.old)} → ${applies(g.new)}${g.moved ? ' (moved)' : ''}`;
    const more = g.regions.length - REGIONS_SHOWN;
    out.push(h('div', { class: 'diff-region-group', 'data-old': applies(g.old), 'data-new': applies(g.new), 'data-moved': String(g.moved) },
      h('h3', {}, title),
      h('ul', { class: 'regions' }, g.regions.slice(0, REGIONS_SHOWN).map((r) => h('li', { 'data-region': '' }, r.description)),
        more > 0 ? [h('li', { class: 'muted' }, `and ${more} more`)] : []),
      g.network.status === 'too-complex' ? h('p', { class: 'muted' }, 'too many ranges: the comparison stopped') : flowGroups(g.network.changes || []),
      g.settings.length ? settingsTable(g.settings) : []));
  }
  return out;
}

function renderDiff(out) {
  const box = $('#diff-results');
  if (!out.ok) {
    box.replaceChildren(h('div', { class: 'summary fail', id: 'diff-summary', 'data-changes': -1 }, 'A policy is not valid'),
      h('ul', { class: 'errors' },
        out.old_errors.map((e) => h('li', {}, `current ${e.line}:${e.column} ${e.path || '(document)'}: ${e.message}`)),
        out.new_errors.map((e) => h('li', {}, `editor ${e.line}:${e.column} ${e.path || '(document)'}: ${e.message}`))));
    return;
  }
  const net = out.report.network;
  const changes = net.changes || [];
  const sc = out.report.scopes;
  const groups = sc?.groups || [];
  // Flow groups everywhere: the top level's and each pair of scopes'.
  const total = changes.length + groups.reduce((n, g) => n + (g.network.changes || []).length, 0);
  const moved = groups.filter((g) => g.moved).length;
  const over = net.status === 'too-complex' || sc?.status === 'too-many-regions'
    || groups.some((g) => g.network.status === 'too-complex');
  const summary = over
    ? 'too many ranges: the comparison stopped'
    : total === 0 ? (groups.length || sc?.scopes.length ? 'no change in who may call; scopes or other sections differ' : 'no change in who may call')
      : `${total} group${total === 1 ? '' : 's'} of flows change${net.status === 'too-many-ranges' ? ` (too many ranges: ${net.ranges})` : ''}`
        + (moved ? `; requests move in ${moved} region group${moved === 1 ? '' : 's'}` : '');
  box.replaceChildren(
    h('div', { class: `summary ${total || over ? 'fail' : 'pass'}`, id: 'diff-summary', 'data-changes': total }, summary),
    ...(sc ? [h('h3', {}, 'Top level'),
      changes.length || out.report.settings.length ? [] : h('p', { class: 'muted', id: 'diff-top-same' }, 'no change in who may call')] : []),
    ...flowGroups(changes),
    ...(out.report.settings.length ? [h('div', { class: 'diff-group', 'data-kind': 'settings' }, h('h3', {}, 'Settings'),
      settingsTable(out.report.settings))] : []),
    ...scopedPart(sc),
    h('details', {}, h('summary', {}, 'as portcullis diff prints it'), h('pre', { id: 'diff-text' }, out.text)));
}

$('#run-diff').addEventListener('click', async () => {
  const { data } = await call('diff_policies', diffTa.value, ta.value, envJson());
  renderDiff(data);
});

// ---------------------------------------------------------------- replay

// The log stays in this page: it is read here and handed to the worker.
const replayTa = $('#replay-old');
let replayLog = null;
$('#replay-from-editor').addEventListener('click', () => { replayTa.value = ta.value; });
async function takeLog(file) {
  if (!file) return;
  replayLog = { name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) };
  $('#replay-drop').dataset.loaded = file.name;
}
$('#replay-file').addEventListener('change', (ev) => takeLog(ev.target.files[0]));
const drop = $('#view-replay');
drop.addEventListener('dragover', (ev) => { ev.preventDefault(); });
drop.addEventListener('drop', (ev) => { ev.preventDefault(); takeLog(ev.dataTransfer.files[0]); });

const replaySide = (d) => {
  const scope = d.scope ? `scope ${d.scope}: ` : '';
  if (d.step === 'recorded') return `recorded ${d.verdict}`;
  if (d.step === 'network' || d.step === 'forward') {
    const access = d.verdict === 'forward' ? 'allow' : 'deny';
    return scope + (d.priority == null ? `${d.rule} (${access})` : `${d.rule} (priority ${d.priority}, ${access})`);
  }
  return `${scope}${d.step}${d.header ? ` ${d.header}` : ''}: ${d.verdict}`;
};

function replayChart(sparse, width) {
  if (!sparse.length) return h('p', { class: 'muted' }, 'No timed record denied by the editor\'s policy.');
  // Every bucket from the first to the last, empty ones too (time runs evenly).
  const at = (t) => Date.parse(t) / 1000;
  const byStart = new Map(sparse.map(([t, n]) => [at(t), n]));
  const first = at(sparse[0][0]);
  const last = at(sparse[sparse.length - 1][0]);
  const buckets = [];
  for (let t = first; t <= last && buckets.length < 2048; t += width) {
    buckets.push([new Date(t * 1000).toISOString().replace('.000Z', 'Z'), byStart.get(t) || 0]);
  }
  const max = Math.max(...buckets.map((b) => b[1]));
  return h('div', { class: 'replay-chart', id: 'replay-chart', 'data-buckets': buckets.length, role: 'img',
    'aria-label': `records the editor's policy denies, per ${width} s` },
  buckets.map(([t, n]) => h('div', { class: 'bar', title: `${t}: ${n}`, 'data-count': n,
    style: `height: ${n ? Math.max(2, Math.round((n / max) * 100)) : 0}%` })));
}

function renderReplay(out) {
  const box = $('#replay-results');
  if (!out.ok) {
    box.replaceChildren(h('div', { class: 'summary fail', id: 'replay-summary', 'data-denied': -1 }, 'A policy is not valid'),
      h('ul', { class: 'errors' },
        out.old_errors.map((e) => h('li', {}, `current ${e.line}:${e.column} ${e.path || '(document)'}: ${e.message}`)),
        out.new_errors.map((e) => h('li', {}, `editor ${e.line}:${e.column} ${e.path || '(document)'}: ${e.message}`))));
    return;
  }
  const r = out.report;
  const denied = r.newly_denied.reduce((n, g) => n + g.records, 0);
  const allowed = r.newly_allowed.reduce((n, g) => n + g.records, 0);
  const group = (kind) => (g) => h('div', { class: 'diff-group replay-group', 'data-kind': kind },
    h('p', { class: 'note' }, 'old: ', h('b', { 'data-side': 'old' }, replaySide(g.old)), ' · new: ',
      h('b', { 'data-side': 'new' }, replaySide(g.new)), ` · ${g.records} record${g.records === 1 ? '' : 's'}`),
    h('table', { class: 'rules' },
      h('tr', {}, ['client', 'records', 'first seen', 'last seen', 'example'].map((t) => h('th', {}, t))),
      g.clients.map((c) => h('tr', { class: 'client' },
        h('td', { 'data-field': 'client' }, c.client), h('td', { 'data-field': 'records' }, String(c.records)),
        h('td', {}, c.first_seen || ''), h('td', {}, c.last_seen || ''), h('td', {}, c.example)))));
  box.replaceChildren(
    h('div', { class: `summary ${denied ? 'fail' : 'pass'}`, id: 'replay-summary', 'data-denied': denied, 'data-allowed': allowed },
      `${r.records} records: ${denied} newly denied, ${allowed} newly allowed, ${r.judged} judged`),
    ...(out.error ? [h('p', { class: 'errors' }, `stopped: ${out.error}`)] : []),
    ...(out.malformed ? [h('p', { class: 'note' }, `malformed records skipped, the first: ${out.malformed}`)] : []),
    h('h3', {}, 'Records the editor\'s policy denies, over time'),
    replayChart(r.denied_over_time, r.denied_bucket_seconds),
    h('h3', {}, 'Newly denied'),
    ...(r.newly_denied.length ? r.newly_denied.map(group('newly-denied')) : [h('p', { class: 'muted' }, 'none')]),
    h('h3', {}, 'Newly allowed'),
    ...(r.newly_allowed.length ? r.newly_allowed.map(group('newly-allowed')) : [h('p', { class: 'muted' }, 'none')]),
    h('details', {}, h('summary', {}, 'as portcullis replay prints it'), h('pre', { id: 'replay-text' }, out.text)));
}

$('#run-replay').addEventListener('click', async () => {
  if (!replayLog) {
    $('#replay-results').replaceChildren(h('p', { class: 'muted', id: 'replay-summary', 'data-denied': -2 }, 'Choose or drop a log first.'));
    return;
  }
  const { data } = await call('replay_log', replayTa.value, ta.value, replayLog.bytes, replayLog.name, envJson());
  renderReplay(data);
});

// ---------------------------------------------------------------- start

async function start() {
  call('version').then(({ data }) => { $('#engine-version').textContent = `portcullis-core ${data}`; }).catch(() => {});
  try {
    manifest = JSON.parse(await fetchText(new URL('pkg/manifest.json', location.href)));
  } catch {
    // No manifest: samples and corpus are unavailable, the rest works.
  }
  for (const s of manifest.samples) $('#sample').append(h('option', { value: s.name }, s.name));
  for (const t of manifest.corpus) $('#test-sample').append(h('option', { value: t }, t));

  const m = /^#z=([A-Za-z0-9_-]+)$/.exec(location.hash);
  let restored = false;
  if (m) {
    try {
      const s = await unpackState(m[1]);
      state.sample = s.sample || '';
      $('#sample').value = state.sample;
      setPolicy(String(s.policy ?? ''));
      state.request = { ...structuredClone(DEFAULT_REQUEST), ...(s.request || {}) };
      writeForm(state.request);
      setTests(s.tests?.source || '', String(s.tests?.text ?? ''));
      state.diff = { old: String(s.diff?.old ?? '') };
      diffTa.value = state.diff.old;
      setTab(s.tab);
      restored = true;
    } catch {
      $('#share-note').textContent = 'The link could not be read; showing a sample.';
    }
  }
  if (!restored) {
    writeForm(state.request);
    const first = manifest.samples.find((s) => s.name === 'layered-security') || manifest.samples[0];
    setTab('evaluate');
    if (first) {
      await loadSample(first.name);
      return;
    }
    renderEditor();
  }
  await refresh();
}

// ---------------------------------------------------------------- import

// The Import view: the importers (portcullis-import, in the same wasm) turn
// pasted APIM XML or NSG JSON into a policy; the report lists every item.
let imported = null;

async function runImport() {
  const out = $('#import-results');
  const { data, ms } = await call('import_policy', $('#import-kind').value, $('#import-input').value,
    $('#import-tags').value, $('#import-strict').checked);
  imported = data.policy;
  $('#import-to-editor').disabled = !data.ok;
  if (data.error) {
    out.replaceChildren(h('ul', { class: 'errors' }, h('li', {}, data.error)));
    out.dataset.ok = 'false';
    return;
  }
  const items = data.report.items;
  const count = (k) => items.filter((i) => i.kind === k).length;
  const summary = h('p', { id: 'import-summary', 'data-ok': String(data.ok), 'data-skipped': String(count('skipped')),
    'data-unsupported': String(count('unsupported')), 'data-errors': String(count('error')) },
  data.ok ? 'Imported' : 'Not imported',
  `: ${count('mapped')} mapped, ${count('skipped')} skipped, ${count('unsupported')} unsupported, ${count('error')} errors`,
  ` (${ms.toFixed(1)} ms)`);
  const rows = items.map((i) => h('tr', { class: `item ${i.kind}`, 'data-kind': i.kind },
    h('td', {}, i.line ? `${i.line}:${i.column}` : '—'), h('td', {}, i.kind), h('td', {}, i.what), h('td', {}, i.reason)));
  const report = h('table', { class: 'import-report', id: 'import-report' },
    h('thead', {}, h('tr', {}, h('th', {}, 'at'), h('th', {}, 'kind'), h('th', {}, 'item'), h('th', {}, 'reason'))),
    h('tbody', {}, rows));
  const vars = data.report.variables.length
    ? h('p', { class: 'note' }, 'The policy reads these environment variables when it is loaded: ', data.report.variables.join(', '))
    : null;
  out.replaceChildren(summary, vars, report,
    data.ok ? h('pre', { id: 'import-policy', class: 'policy-out' }, data.policy) : null);
  out.dataset.ok = String(data.ok);
}

$('#run-import').addEventListener('click', () => runImport().catch((e) => showFatal(String(e))));
$('#import-to-editor').addEventListener('click', async () => {
  if (!imported) return;
  setPolicy(imported);
  setTab('evaluate');
  await refresh();
});

start();

$('#env').addEventListener('input', () => { readEnvPanel(); refresh(); });
