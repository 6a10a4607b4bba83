// Browser test of the playground (www/), run by scripts/browser-test.sh:
//   node --test tests/browser/playground.test.mjs
// Serves the repository root on 127.0.0.1 (the page lives at /www/ and reads
// ../policy-samples and ../tests/corpus), drives Debian's chromium through
// playwright-core, and checks each feature through the real page: the wasm
// engine in its worker, the editor, the request builder, the Tests tab and
// the shared URL. Screenshots go to target/artifacts/.
//
// Environment: NATIVE_CORPUS = the JSON printed by
// `cargo run -p portcullis-web --example corpus` (the same run_tests, native).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, statSync, mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { join, resolve, extname, dirname, sep } from 'node:path';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';

const root = resolve(dirname(new URL(import.meta.url).pathname), '../..');
const require = createRequire(join(root, 'tools/package.json'));
const { chromium } = require('playwright-core');

// The corpus and the samples come from a snapshot when one is given (see
// scripts/browser-test.sh); the page gets the snapshot's manifest too.
const dataRoot = resolve(process.env.CORPUS_SNAPSHOT || root);
const artifacts = join(root, 'target/artifacts');
mkdirSync(artifacts, { recursive: true });
const wasmPath = join(root, 'www/pkg/portcullis_web_bg.wasm');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.wasm': 'application/wasm',
};

let server;
let base;
let context;
let profile;
const consoleErrors = [];

function serve() {
  return new Promise((ok) => {
    server = createServer((req, res) => {
      let p;
      try {
        p = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      } catch {
        res.writeHead(400).end();
        return;
      }
      if (p.endsWith('/')) p += 'index.html';
      let file = resolve(root, '.' + p);
      if (dataRoot !== root) {
        if (p === '/www/pkg/manifest.json') file = join(dataRoot, 'manifest.json');
        else if (p.startsWith('/tests/') || p.startsWith('/policy-samples/')) file = resolve(dataRoot, '.' + p);
      }
      if (!(file.startsWith(root + sep) || file.startsWith(dataRoot + sep)) || !existsSync(file) || !statSync(file).isFile()) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] || 'application/octet-stream',
        'cache-control': 'no-store',
      });
      res.end(readFileSync(file));
    });
    server.listen(0, '127.0.0.1', () => {
      base = `http://127.0.0.1:${server.address().port}`;
      ok();
    });
  });
}

function watch(page) {
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
  page.on('requestfailed', (r) => consoleErrors.push(`request failed: ${r.url()}`));
  return page;
}

before(async () => {
  assert.ok(existsSync(wasmPath), 'www/pkg is missing: run scripts/build-web.sh');
  await serve();
  profile = mkdtempSync(join(tmpdir(), 'portcullis-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1440, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
});

after(async () => {
  await context?.close();
  server?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const shot = (page, name) => page.screenshot({ path: join(artifacts, `playground-${name}.png`), fullPage: true });

/** Replaces the policy text as a user would (select all, type). */
async function setPolicy(page, text) {
  await page.locator('#policy').fill(text);
}

async function setField(page, name, value) {
  await page.locator(`#request [name="${name}"]`).fill(String(value));
}

/** Waits until the decision shows `verdict` (after the debounce). */
async function verdictIs(page, verdict) {
  await page.waitForFunction((v) => document.querySelector('#result-body')?.dataset.verdict === v, verdict);
}

const lineOf = (text, needle) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

let page;
let layered;

test('loads, decides a first request, and reports the figures', async () => {
  page = watch(await context.newPage());
  await page.goto(`${base}/www/`);
  await page.waitForSelector('#verdict');
  const m = await page.evaluate(() => window.portcullis.metrics);
  const wasm = statSync(wasmPath).size;
  console.log(`# page load to first decision: ${Math.round(m.pageToFirstDecisionMs)} ms`);
  console.log(`# wasm: ${wasm} bytes (${(wasm / 1024).toFixed(1)} KiB)`);
  assert.ok(m.pageToFirstDecisionMs > 0);
  assert.equal(await page.locator('#sample').inputValue(), 'layered-security');
  await page.waitForSelector('#policy-status.ok');
});

test('a denied client is denied, with the rule that decided', async () => {
  await page.locator('#sample').selectOption('layered-security');
  layered = readFileSync(join(dataRoot, 'policy-samples/layered-security.json'), 'utf8');
  await page.waitForFunction((t) => document.querySelector('#policy').value === t, layered);
  await page.locator('#tab-evaluate').click();
  await setField(page, 'client_ip', '8.8.8.8');
  await setField(page, 'client_port', 51000);
  await setField(page, 'local_ip', '10.0.0.4');
  await setField(page, 'local_port', 443);
  await verdictIs(page, 'deny');
  // Port 80 is denied too: wait for the decision of port 443 itself.
  await page.waitForFunction(() => document.querySelector('tr[data-rule="allow-azure-mgmt"] .why')?.textContent.includes('443'));
  assert.equal(await page.locator('#status').textContent(), '403');
  assert.match(await page.locator('[data-fact="rule"]').textContent(), /^default/);
  assert.equal(await page.locator('[data-fact="client"]').textContent(), '8.8.8.8 (from peer)');
  // IP flow verify: every rule says why it did not match.
  const why = page.locator('tr[data-rule="allow-https-fe1ase"] .why');
  assert.equal(await why.textContent(), '✗ client 8.8.8.8 is not in source [fe1ase]');
  const mgmt = page.locator('tr[data-rule="allow-azure-mgmt"] .why');
  assert.equal(await mgmt.textContent(), '✗ local port 443 is not in destination_ports 454-455');
  assert.equal(await page.locator('tr[data-rule="default"]').getAttribute('class'), 'decided deny');
  assert.match(await page.locator('.result pre.body').textContent(), /only accepts calls from its front-ends/);
  await shot(page, 'deny-default');

  // An explicit deny rule decides ahead of the default, and its line is marked.
  const withDeny = layered.replace(
    '"rules": [\n',
    '"rules": [\n      { "name": "deny-dns-resolvers", "priority": 150, "access": "deny", "source": ["8.8.8.0/24"] },\n',
  );
  assert.notEqual(withDeny, layered);
  await setPolicy(page, withDeny);
  await page.waitForFunction(() => document.querySelector('[data-fact="rule"]')?.textContent.startsWith('deny-dns-resolvers'));
  await verdictIs(page, 'deny');
  const denyLine = lineOf(withDeny, 'deny-dns-resolvers');
  assert.equal(await page.locator(`#policy-editor .gutter div:nth-child(${denyLine})`).getAttribute('class'), 'rule-deny');
  assert.equal(await page.locator('#policy-editor .mark.rule-deny').getAttribute('data-line'), String(denyLine));
  assert.equal(await page.locator('tr[data-rule="deny-dns-resolvers"]').getAttribute('data-decided'), 'true');
  assert.match(await page.locator('tr[data-rule="allow-https-fe1ase"] .why').textContent(), /^not reached/);
  await shot(page, 'deny-rule');
});

test('fixing the policy lets the client in', async () => {
  const fixed = layered.replace('"fe1ase": ["65.52.10.20"]', '"fe1ase": ["65.52.10.20", "8.8.8.8"]');
  assert.notEqual(fixed, layered);
  await setPolicy(page, fixed);
  await verdictIs(page, 'forward');
  assert.equal(await page.locator('#status').textContent(), '200');
  assert.match(await page.locator('[data-fact="rule"]').textContent(), /^allow-https-fe1ase/);
  const line = lineOf(fixed, '"allow-https-fe1ase"');
  assert.equal(await page.locator(`#policy-editor .gutter div:nth-child(${line})`).getAttribute('class'), 'rule-allow');
  assert.equal(await page.locator('tr[data-rule="allow-http-fe1ase"] .why').textContent(),
    '✗ local port 443 is not in destination_ports 80');
  assert.match(await page.locator('tr[data-rule="allow-https-fe1ase"] .why').textContent(), /this rule decides \(allow\)/);
  assert.match(await page.locator('tr[data-rule="allow-https-apiase"] .why').textContent(), /^not reached/);
});

test('header edits show as before/after diffs', async () => {
  const apim = readFileSync(join(dataRoot, 'policy-samples/functions-behind-apim.gateway.json'), 'utf8');
  // The gateway injects the key it reads with value_from: give it one in the
  // environment panel (which stays out of the shared URL).
  await page.evaluate(() => { document.querySelector('#env-panel').open = true; });
  await page.locator('#env').fill('FUNCTION_KEY=K-test');
  await setPolicy(page, apim);
  await page.waitForSelector('#policy-status:not(.bad)');
  // 203.0.113.0/24 is documentation space, not Internet: use a global address.
  await setField(page, 'client_ip', '20.30.40.50');
  await setField(page, 'authority', 'api.contoso.net');
  await setField(page, 'path', '/');
  await setField(page, 'local_port', 443);
  await page.locator('#request [name="tls"]').check();
  await page.locator('[data-add="headers"]').click();
  await page.locator('[data-rows="headers"] .row:last-child [data-k="name"]').fill('x-functions-key');
  await page.locator('[data-rows="headers"] .row:last-child [data-k="value"]').fill('from-client');
  await page.locator('[data-add="upstream"]').click();
  await page.locator('[data-rows="upstream"] .row:last-child [data-k="name"]').fill('X-Powered-By');
  await page.locator('[data-rows="upstream"] .row:last-child [data-k="value"]').fill('ASP.NET');
  await page.waitForSelector('tr[data-header="x-powered-by"][data-op="removed"]');
  await verdictIs(page, 'forward');
  assert.equal(await page.locator('tr[data-header="x-functions-key"]').getAttribute('data-op'), 'changed');
  // The key from the environment reaches the backend but is shown only by
  // its variable, never in clear.
  assert.match(await page.locator('tr[data-header="x-functions-key"]').textContent(), /from-client.*\(from env FUNCTION_KEY\)/);
  assert.ok(!(await page.locator('#result-body').textContent()).includes('K-test'));
  assert.equal(await page.locator('tr[data-header="strict-transport-security"]').getAttribute('data-op'), 'added');
  // A plain request is redirected, and the location is shown.
  await page.locator('#request [name="tls"]').uncheck();
  await setField(page, 'local_port', 80);
  await setField(page, 'path', '/orders?top=5');
  await verdictIs(page, 'redirect');
  // The redirect may show before the new path is evaluated: wait for it.
  await page.waitForFunction(() => document.querySelector('[data-fact="location"]')?.textContent === 'https://api.contoso.net/orders?top=5');
  assert.equal(await page.locator('[data-fact="location"]').textContent(), 'https://api.contoso.net/orders?top=5');
  assert.equal(await page.locator('#status').textContent(), '308');
  await page.locator('#request [name="tls"]').check();
  await setField(page, 'local_port', 443);
  await verdictIs(page, 'forward');
  await shot(page, 'headers');
});

test('a syntax error is reported at its line, and a field error at its field', async () => {
  const good = readFileSync(join(dataRoot, 'policy-samples/layered-security.json'), 'utf8');
  const lines = good.split('\n');
  const at = lineOf(good, '"fe2ase"');
  lines[at - 1] = lines[at - 1].replace('"fe2ase"', '"fe2ase" @');
  await setPolicy(page, lines.join('\n'));
  await page.waitForSelector('#policy-status.bad');
  await verdictIs(page, 'error');
  assert.equal(await page.locator('#policy-status').textContent(), '1 error');
  assert.equal(await page.locator(`#policy-editor .gutter div:nth-child(${at})`).getAttribute('class'), 'err');
  assert.equal(await page.locator('#policy-errors li').getAttribute('data-line'), String(at));
  assert.match(await page.locator('#policy-errors li').textContent(), new RegExp(`^${at}:\\d+ `));
  assert.match(await page.locator('#result-body').textContent(), /POLICY REJECTED/);
  await shot(page, 'syntax-error');

  // A validation error names the JSON path at the right line.
  const bad = good.replace('"priority": 300', '"priority": 5');
  await setPolicy(page, bad);
  const pline = lineOf(bad, '"priority": 5');
  await page.waitForFunction((l) => document.querySelector('#policy-errors li')?.dataset.line === String(l), pline);
  assert.match(await page.locator('#policy-errors li').textContent(), /network\.rules\[2\]\.priority/);
  await setPolicy(page, good);
  await page.waitForSelector('#policy-status.ok');
});

/** The character the editor holds at a 1-based line and column (columns
 * count characters, as the core's do). */
function charAt(text, line, column) {
  return Array.from(text.split('\n')[line - 1] || '')[column - 1];
}

/** The UTF-16 offset of a 1-based line and column in `text`. */
function offsetOf(text, line, column) {
  const lines = text.split('\n');
  let at = 0;
  for (let i = 0; i < line - 1; i++) at += lines[i].length + 1;
  return at + Array.from(lines[line - 1]).slice(0, column - 1).join('').length;
}

/** Checks the marked error at `line`: its caret sits over the character at
 * the error's column, and clicking the error in the list puts the cursor there
 * with `token` selected. Returns the column. */
async function checkMarkedError(text, line, token) {
  const item = page.locator(`#policy-errors li[data-line="${line}"]`).first();
  const column = Number(await item.getAttribute('data-column'));
  assert.ok(column >= 1, `column ${column}`);
  assert.match(await item.textContent(), new RegExp(`^${line}:${column} `));
  // The core's column points at the offending text.
  assert.equal(charAt(text, line, column), token[0], `${line}:${column} holds ${charAt(text, line, column)}`);
  // The editor marks the line and the column.
  const caret = page.locator(`#policy-editor .mark.err[data-line="${line}"] .col[data-column="${column}"]`);
  assert.equal(await caret.count(), 1);
  await caretOver(caret, line, column);
  // Clicking the error moves the cursor there and selects the token.
  await page.locator('#policy').evaluate((ta) => { ta.setSelectionRange(0, 0); ta.blur(); });
  await item.click();
  const sel = await page.locator('#policy').evaluate((ta) => ({
    start: ta.selectionStart, end: ta.selectionEnd, focused: document.activeElement === ta,
  }));
  assert.ok(sel.focused, 'the editor has the focus');
  assert.equal(sel.start, offsetOf(text, line, column));
  assert.equal(text.slice(sel.start, sel.end), token);
  // The caret follows the text when the editor scrolls to it.
  await page.waitForFunction(() => {
    const ta = document.querySelector('#policy');
    const layer = document.querySelector('#policy-editor .marks .layer');
    return layer && layer.style.getPropertyValue('--scroll-x') === `${ta.scrollLeft}px`;
  });
  await caretOver(caret, line, column);
  return column;
}

/** Checks that `caret` covers the character at line:column of the editor. */
async function caretOver(caret, line, column) {
  const box = await caret.boundingBox();
  const where = await page.evaluate(({ line, column }) => {
    const ta = document.querySelector('#policy');
    const r = ta.getBoundingClientRect();
    const cs = getComputedStyle(ta);
    const probe = document.createElement('span');
    probe.style.cssText = `position:absolute;visibility:hidden;white-space:pre;font-family:${cs.fontFamily};font-size:${cs.fontSize}`;
    probe.textContent = 'x'.repeat(100);
    document.body.append(probe);
    const ch = probe.getBoundingClientRect().width / 100;
    probe.remove();
    return {
      x: r.left + parseFloat(cs.paddingLeft) + (column - 1) * ch - ta.scrollLeft,
      y: r.top + parseFloat(cs.paddingTop) + (line - 1) * parseFloat(cs.lineHeight) - ta.scrollTop,
      ch,
    };
  }, { line, column });
  assert.ok(Math.abs(box.x - where.x) < 1.5, `caret at x=${box.x}, the character at x=${where.x}`);
  assert.ok(Math.abs(box.y - where.y) < 1.5, `caret at y=${box.y}, the line at y=${where.y}`);
  assert.ok(Math.abs(box.width - where.ch) < 1, `caret ${box.width}px wide, a character ${where.ch}px`);
}

test('each error is marked at its line and column, and the list moves the cursor there', async () => {
  const good = readFileSync(join(dataRoot, 'policy-samples/layered-security.json'), 'utf8');
  // Two problems on two lines: a wrong word and a priority out of range.
  const bad = good.replace('"priority": 300', '"priority": 5').replace('"access": "allow"', '"access": "alow"');
  assert.notEqual(bad, good);
  await setPolicy(page, bad);
  const pline = lineOf(bad, '"priority": 5');
  const aline = lineOf(bad, '"alow"');
  await page.waitForFunction(() => document.querySelectorAll('#policy-errors li').length === 2);
  assert.equal(await page.locator('#policy-status').textContent(), '2 errors');
  for (const l of [pline, aline]) {
    assert.equal(await page.locator(`#policy-editor .gutter div:nth-child(${l})`).getAttribute('class'), 'err');
  }
  await checkMarkedError(bad, pline, '5');
  await checkMarkedError(bad, aline, '"alow"');
  await shot(page, 'error-marks');

  // A syntax error far right on a long line: the editor scrolls to the column
  // and the caret follows the text.
  const lines = good.split('\n');
  const at = lineOf(good, '"fe2ase"');
  lines[at - 1] += `${' '.repeat(300)}@`;
  const wide = lines.join('\n');
  await setPolicy(page, wide);
  await page.waitForFunction((l) => document.querySelector('#policy-errors li')?.dataset.line === String(l), at);
  const column = await checkMarkedError(wide, at, '@');
  assert.ok(column > 300, `column ${column}`);
  assert.ok(await page.locator('#policy').evaluate((ta) => ta.scrollLeft) > 0, 'the editor scrolled right');

  await setPolicy(page, good);
  await page.waitForSelector('#policy-status.ok');
  assert.equal(await page.locator('#policy-editor .mark.err').count(), 0);
});

/** Runs the file in the Tests tab (select it, click Run); returns the result. */
async function runTestFileInPage(path) {
  await page.locator('#tab-tests').click();
  await page.locator('#test-sample').selectOption(path);
  const text = readFileSync(join(dataRoot, path), 'utf8');
  await page.waitForFunction((t) => document.querySelector('#test-file').value === t, text);
  await page.evaluate(() => { document.querySelector('#test-results').textContent = ''; });
  await page.locator('#run-tests').click();
  await page.waitForSelector('#test-summary');
  return { text, res: await page.evaluate(() => window.portcullis.lastTests) };
}

test("a sample's tests run against the policy in the editor", async () => {
  const manifest = JSON.parse(readFileSync(dataRoot === root ? join(root, 'www/pkg/manifest.json') : join(dataRoot, 'manifest.json'), 'utf8'));
  const sample = manifest.samples.find((x) => x.name === 'layered-security');
  assert.ok(sample && sample.tests.length, 'layered-security has no test file');
  await page.locator('#tab-evaluate').click();
  await page.locator('#sample').selectOption('layered-security');
  const text = readFileSync(join(dataRoot, sample.tests[0]), 'utf8');
  await page.waitForFunction((t) => document.querySelector('#test-file').value === t, text);
  const n = JSON.parse(text).cases.length;
  await page.locator('#tab-tests').click();
  await page.locator('#run-tests').click();
  await page.waitForFunction((k) => document.querySelector('#test-summary')?.dataset.pass === String(k), n);
  assert.equal(await page.locator('#test-summary').getAttribute('data-fail'), '0');
  assert.match(await page.locator('#test-summary').textContent(), /read from the editor/);
  console.log(`# ${sample.tests[0]}: ${n} cases pass in the page`);
  await shot(page, 'tests');

  // Break the policy in the editor: fe1ase's cases now fail, with their diffs.
  const policy = readFileSync(join(dataRoot, sample.policy), 'utf8');
  const broken = policy.replace('"fe1ase": ["65.52.10.20"]', '"fe1ase": ["65.52.10.21"]');
  assert.notEqual(broken, policy);
  await setPolicy(page, broken);
  await page.locator('#run-tests').click();
  await page.waitForFunction(() => Number(document.querySelector('#test-summary')?.dataset.fail) > 0);
  const failing = await page.locator('.case.fail').count();
  assert.ok(failing > 0 && failing < n, `${failing} of ${n} failing`);
  assert.ok(await page.locator('.case.fail td', { hasText: /^rule$|^verdict$/ }).count() > 0);
  await shot(page, 'tests-broken-policy');
  await setPolicy(page, policy);
});

test("a sample's test file passes in the page, and a wrong expectation fails", async () => {
  const manifest = JSON.parse(readFileSync(dataRoot === root ? join(root, 'www/pkg/manifest.json') : join(dataRoot, 'manifest.json'), 'utf8'));
  // A sample's own tests when the samples have them, else the first corpus file.
  const path = manifest.samples.flatMap((s) => s.tests)[0] || manifest.corpus[0];
  assert.ok(path, 'no test file to run');
  const { text, res } = await runTestFileInPage(path);
  const file = JSON.parse(text);
  const n = (file.cases || []).length;
  assert.ok(n > 0 || file.expect_policy_error);
  assert.equal(res.pass, true, JSON.stringify(res, null, 1));
  assert.equal(await page.locator('#test-summary').getAttribute('data-fail'), '0');
  assert.equal(await page.locator('#test-summary').getAttribute('data-pass'), String(n || 1));
  assert.equal(await page.locator('.case[data-pass="true"]').count(), n || 1);
  console.log(`# ${path}: ${n} cases pass in the page`);

  // The same file with one expectation made wrong: the case fails with a diff.
  const idx = 0;
  file.cases[idx].expect = { ...(file.cases[idx].expect || {}), status: 599 };
  await page.locator('#test-file').fill(JSON.stringify(file, null, 2));
  await page.locator('#run-tests').click();
  await page.waitForFunction(() => document.querySelector('#test-summary')?.dataset.fail === '1');
  const failed = page.locator('.case.fail');
  assert.equal(await failed.count(), 1);
  assert.equal(await failed.getAttribute('data-case'), file.cases[idx].name);
  assert.match(await failed.locator('td').first().textContent(), /^status$/);
  assert.equal(await failed.locator('td').nth(1).textContent(), '599');
  await shot(page, 'tests-failure');
});

test('the whole corpus gives in the page exactly what it gives natively', async () => {
  const native = JSON.parse(readFileSync(process.env.NATIVE_CORPUS, 'utf8'));
  const files = Object.keys(native);
  assert.ok(files.length > 0, 'empty native corpus');
  await page.locator('#tab-tests').click();
  await page.locator('#run-corpus').click();
  await page.waitForFunction(() => /^Corpus:/.test(document.querySelector('#test-summary')?.textContent || ''));
  const inPage = await page.evaluate(() => window.portcullis.corpus);
  assert.deepEqual(Object.keys(inPage).sort(), files.sort());
  assert.deepEqual(inPage, native);
  let cases = 0;
  const failing = [];
  for (const [f, r] of Object.entries(inPage)) {
    cases += r.cases.length + (r.expect_policy_error ? 1 : 0);
    if (!r.pass) failing.push(f);
  }
  console.log(`# corpus: ${files.length} files, ${cases} cases, identical in the page and natively`);
  assert.deepEqual(failing, [], `corpus files failing (natively too): ${failing.join(', ')}`);
  assert.equal(await page.locator('#test-summary').getAttribute('data-fail'), '0');
  await shot(page, 'corpus');
});

test('a case opens in the evaluator with the same decision', async () => {
  const manifest = JSON.parse(readFileSync(dataRoot === root ? join(root, 'www/pkg/manifest.json') : join(dataRoot, 'manifest.json'), 'utf8'));
  const path = manifest.corpus.find((f) => {
    const c = (JSON.parse(readFileSync(join(dataRoot, f), 'utf8')).cases || [])[0];
    return c && c.expect && c.expect.verdict && c.expect.rule;
  });
  assert.ok(path, 'no corpus file whose first case expects a verdict and a rule');
  const { text } = await runTestFileInPage(path);
  const c = JSON.parse(text).cases[0];
  await page.locator('.case').first().locator('button').click();
  await page.waitForSelector('#view-evaluate:not([hidden])');
  await verdictIs(page, c.expect.verdict);
  await page.waitForFunction((r) => document.querySelector('[data-fact="rule"]')?.textContent.split(' ')[0] === r, c.expect.rule);
});

test('a case with non-UTF-8 header bytes opens in the evaluator with every byte', async () => {
  const manifest = JSON.parse(readFileSync(dataRoot === root ? join(root, 'www/pkg/manifest.json') : join(dataRoot, 'manifest.json'), 'utf8'));
  const isHex = (v) => v && typeof v === 'object' && typeof v.hex === 'string';
  // A byte 0xff is never UTF-8, so such a value must stay hex all the way.
  const notUtf8 = (v) => isHex(v) && (v.hex.replace(/\s/g, '').toLowerCase().match(/../g) || []).includes('ff');
  const onlyBinary = (hs) => hs.some(([, v]) => isHex(v)) && hs.every(([, v]) => !isHex(v) || notUtf8(v));
  let found = null;
  for (const f of manifest.corpus) {
    const cases = JSON.parse(readFileSync(join(dataRoot, f), 'utf8')).cases || [];
    const i = cases.findIndex((c) => onlyBinary((c.request && c.request.headers) || []));
    if (i >= 0) { found = { f, i, c: cases[i] }; break; }
  }
  assert.ok(found, 'no corpus case with a {"hex": ...} header value');
  await runTestFileInPage(found.f);
  await page.locator('.case').nth(found.i).locator('button').click();
  await page.waitForSelector('#view-evaluate:not([hidden])');
  // The builder holds the bytes as hex (the engine read them; nothing decoded lossily).
  const want = found.c.request.headers.map(([n, v]) => [n, isHex(v) ? { hex: v.hex.replace(/\s/g, '').toLowerCase() } : v]);
  await page.waitForFunction((w) => JSON.stringify(window.portcullis.state.request.headers) === JSON.stringify(w), want);
  const k = want.findIndex(([, v]) => isHex(v));
  const row = page.locator('[data-rows="headers"] .row').nth(k);
  assert.equal(await row.locator('[data-k="hex"]').isChecked(), true);
  assert.equal(await row.locator('[data-k="value"]').inputValue(), want[k][1].hex);
  await page.waitForFunction((n) => (window.portcullis.lastResult?.request_headers_before || [])[n]?.binary === true, k);
  // Leave the builder without these headers for the tests that follow.
  for (const kind of ['headers', 'upstream']) {
    while (await page.locator(`[data-rows="${kind}"] .row`).count()) {
      await page.locator(`[data-rows="${kind}"] .row button`).first().click();
    }
  }
});

test('the shared URL reproduces the state', async () => {
  // A distinctive state: a policy with an explicit deny, a request, the Evaluate tab.
  await page.locator('#tab-evaluate').click();
  const policy = layered.replace('"fe3ase": ["23.98.30.40"]', '"fe3ase": ["23.98.30.40", "198.51.100.0/24"]');
  await setPolicy(page, policy);
  await setField(page, 'client_ip', '198.51.100.77');
  await setField(page, 'local_port', 80);
  await page.locator('#request [name="tls"]').uncheck();
  await page.locator('[data-add="headers"]').click();
  await page.locator('[data-rows="headers"] .row:last-child [data-k="name"]').fill('x-trace');
  await page.locator('[data-rows="headers"] .row:last-child [data-k="value"]').fill('abc 123');
  await page.waitForFunction(() => document.querySelector('[data-fact="rule"]')?.textContent.startsWith('allow-http-fe3ase'));
  // The header does not change the rule: wait until the result includes it too.
  await page.waitForFunction(() => (window.portcullis.lastResult?.request_headers_before || []).some((x) => x.name === 'x-trace' && x.value === 'abc 123'));
  await page.locator('#share').click();
  await page.waitForFunction(() => document.querySelector('#share-note').textContent !== '');
  const url = page.url();
  assert.match(url, /#z=[A-Za-z0-9_-]+$/);
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, url);
  const before = await page.evaluate(() => ({ r: window.portcullis.lastResult, s: window.portcullis.state }));

  const other = watch(await context.newPage());
  await other.goto(url);
  await other.waitForSelector('#verdict');
  assert.equal(await other.locator('#policy').inputValue(), policy);
  assert.equal(await other.locator('#request [name="client_ip"]').inputValue(), '198.51.100.77');
  assert.equal(await other.locator('#request [name="tls"]').isChecked(), false);
  assert.equal(await other.locator('[data-rows="headers"] .row [data-k="value"]').inputValue(), 'abc 123');
  const after = await other.evaluate(() => ({ r: window.portcullis.lastResult, s: window.portcullis.state }));
  assert.deepEqual(after.r, before.r);
  assert.deepEqual(after.s.request, before.s.request);
  assert.equal(after.s.tab, 'evaluate');
  await shot(other, 'shared-url');

  // The Tests tab is part of the state too.
  await other.locator('#tab-tests').click();
  await other.waitForFunction(() => /#z=/.test(location.hash) && window.portcullis.state.tab === 'tests');
  await other.evaluate(() => new Promise((r) => setTimeout(r, 400)));
  const third = watch(await context.newPage());
  await third.goto(other.url());
  await third.waitForSelector('#view-tests:not([hidden])');
  await other.close();
  await third.close();
});

test('"Copy as test case" gives a case that passes as a test', async () => {
  await page.locator('#tab-evaluate').click();
  await setPolicy(page, layered);
  await setField(page, 'client_ip', '191.238.20.30');
  await setField(page, 'local_port', 443);
  await page.waitForFunction(() => document.querySelector('[data-fact="rule"]')?.textContent.startsWith('allow-https-fe2ase'));
  await page.evaluate(() => navigator.clipboard.writeText(''));
  await page.locator('#copy-case').click();
  await page.waitForFunction(async () => (await navigator.clipboard.readText()) !== '');
  const c = JSON.parse(await page.evaluate(() => navigator.clipboard.readText()));
  assert.deepEqual(c.expect, { verdict: 'forward', status: 200, rule: 'allow-https-fe2ase', client_ip: '191.238.20.30' });
  assert.equal(c.request.peer.split(':')[0], '191.238.20.30');
  const file = { policy: JSON.parse(layered), cases: [c, { ...c, name: 'wrong rule', expect: { rule: 'allow-http-fe2ase' } }] };
  await page.locator('#tab-tests').click();
  await page.locator('#test-file').fill(JSON.stringify(file, null, 2));
  await page.locator('#run-tests').click();
  await page.waitForFunction(() => document.querySelector('#test-summary')?.dataset.pass === '1');
  assert.equal(await page.locator('#test-summary').getAttribute('data-fail'), '1');
  assert.equal(await page.locator('.case.fail').getAttribute('data-case'), 'wrong rule');
});

test('the Import view turns pasted APIM XML into a policy and lists what was skipped', async () => {
  await page.locator('#tab-import').click();
  const xml = readFileSync(join(root, 'tests/import/apim-reported.xml'), 'utf8');
  await page.locator('#import-kind').selectOption('apim');
  await page.locator('#import-input').fill(xml);
  await page.locator('#run-import').click();
  await page.waitForFunction(() => document.querySelector('#import-summary')?.dataset.ok === 'true');
  // The policy is the importer's, byte for byte (the CLI's golden but for the
  // name and the source the page gives it).
  const golden = readFileSync(join(root, 'tests/import/golden/apim-reported.policy.json'), 'utf8')
    .replace('"name": "apim-reported"', '"name": "imported"')
    .replaceAll('apim-reported.xml', 'the pasted input');
  assert.equal(await page.locator('#import-policy').textContent(), golden);
  // The report lists what was skipped and what is unsupported, with positions.
  const rows = await page.locator('#import-report tbody tr').evaluateAll((trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const skipped = rows.filter((r) => r[1] === 'skipped').map((r) => `${r[0]} ${r[2]}`);
  assert.deepEqual(skipped, ['5:9 base', '32:9 forward-request', '35:9 base', '40:9 base']);
  assert.ok(rows.some((r) => r[0] === '10:9' && r[1] === 'unsupported' && r[2] === 'rate-limit'), JSON.stringify(rows));
  assert.equal(await page.locator('#import-summary').getAttribute('data-unsupported'), '10');
  await shot(page, 'import');

  // Strict: the same input is refused, no policy shown.
  await page.locator('#import-strict').check();
  await page.locator('#run-import').click();
  await page.waitForFunction(() => document.querySelector('#import-summary')?.dataset.ok === 'false');
  assert.equal(await page.locator('#import-summary').getAttribute('data-errors'), '10');
  assert.equal(await page.locator('#import-policy').count(), 0);
  await page.locator('#import-strict').uncheck();

  // An NSG with a service tags snapshot; the imported policy opens in the
  // editor and decides there.
  await page.locator('#import-kind').selectOption('nsg');
  await page.locator('#import-input').fill(readFileSync(join(root, 'tests/import/gateway-nsg.rest.json'), 'utf8'));
  await page.locator('#view-import details summary').click();
  await page.locator('#import-tags').fill(readFileSync(join(root, 'tests/import/ServiceTags_Public_20261123.json'), 'utf8'));
  await page.locator('#run-import').click();
  await page.waitForFunction(() => document.querySelector('#import-summary')?.dataset.ok === 'true'
    && document.querySelector('#import-policy')?.textContent.includes('AzureFrontDoor.Backend'));
  assert.equal(await page.locator('#import-summary').getAttribute('data-skipped'), '7');
  await page.locator('#import-to-editor').click();
  await page.waitForFunction(() => document.querySelector('#policy').value.includes('"name": "imported"'));
  await setField(page, 'client_ip', '147.243.1.2');
  await setField(page, 'local_port', '443');
  await verdictIs(page, 'forward');
  await page.waitForFunction(() => document.querySelector('[data-fact="rule"]')?.textContent.startsWith('AllowFrontDoorHttps'));
  await setField(page, 'client_ip', '8.8.8.8');
  await verdictIs(page, 'deny');
});

test('a report-mode policy forwards and shows the would-be verdict', async () => {
  const candidate = readFileSync(join(root, 'docs/rollout/candidate.json'), 'utf8');
  await page.locator('#tab-evaluate').click();
  await setPolicy(page, candidate);
  await setField(page, 'client_ip', '127.0.0.8');
  await verdictIs(page, 'forward');
  await page.waitForFunction(() => document.querySelector('#would')?.dataset.would === 'deny');
  assert.equal(await page.locator('#would').textContent(), 'report mode: would deny 403');
  assert.match(await page.locator('[data-fact="rule"]').textContent(), /^deny-batch/);
  assert.equal(await page.locator('[data-fact="trace"]').textContent(), 'would_deny 403 network peer 127.0.0.8 - deny-batch');
  await shot(page, 'report-mode');
});

test('the Diff tab shows exactly the flows a change lets in and locks out', async () => {
  await page.locator('#sample').selectOption('layered-security');
  const current = readFileSync(join(dataRoot, 'policy-samples/layered-security.json'), 'utf8');
  await page.waitForFunction((t) => document.querySelector('#policy').value === t, current);
  await page.locator('#tab-diff').click();
  await page.locator('#diff-from-editor').click();
  await page.locator('#run-diff').click();
  await page.waitForFunction(() => document.querySelector('#diff-summary')?.dataset.changes === '0');
  assert.equal(await page.locator('#diff-summary').textContent(), 'no change in who may call');
  // The same pair the CLI's expected report holds (tests/diff).
  const candidate = readFileSync(join(root, 'tests/diff/layered-security.fe1ase-http-8080.json'), 'utf8');
  const expected = readFileSync(join(root, 'tests/diff/layered-security.http-8080.txt'), 'utf8');
  await setPolicy(page, candidate);
  await page.locator('#run-diff').click();
  await page.waitForFunction(() => document.querySelector('#diff-summary')?.dataset.changes === '2');
  assert.equal(await page.locator('#diff-text').textContent(), expected.slice(expected.indexOf('\n') + 1));
  const allowed = page.locator('.diff-group[data-kind="newly-allowed"]');
  assert.equal(await allowed.locator('[data-side="old"]').textContent(), 'default (deny)');
  assert.equal(await allowed.locator('[data-side="new"]').textContent(), 'allow-http-fe1ase (priority 200, allow)');
  assert.equal(await allowed.locator('td[data-field="source"]').textContent(), '65.52.10.20');
  assert.equal(await allowed.locator('td[data-field="destination_ports"]').textContent(), '8080');
  const denied = page.locator('.diff-group[data-kind="newly-denied"]');
  assert.equal(await denied.locator('td[data-field="destination_ports"]').textContent(), '80');
  await shot(page, 'diff');
  // A broken candidate is reported, not compared.
  await setPolicy(page, '{');
  await page.locator('#run-diff').click();
  await page.waitForFunction(() => document.querySelector('#diff-summary')?.dataset.changes === '-1');
  assert.match(await page.locator('#diff-results .errors').textContent(), /^editor 1:2/);
  await page.locator('#tab-evaluate').click();
});

test('the Diff tab shows changes inside scopes, region by region', async () => {
  await page.locator('#tab-evaluate').click();
  // The two-apis sample with its key inline; the candidate widens the admin
  // scope's network (the top levels are equal).
  const current = readFileSync(join(root, 'tests/diff/two-apis.old.json'), 'utf8');
  const wider = readFileSync(join(root, 'tests/diff/two-apis.admin-wider.json'), 'utf8');
  const expected = readFileSync(join(root, 'tests/diff/two-apis.admin-wider.txt'), 'utf8');
  await setPolicy(page, current);
  await page.locator('#tab-diff').click();
  await page.locator('#diff-from-editor').click();
  await setPolicy(page, wider);
  await page.locator('#run-diff').click();
  await page.waitForFunction(() => document.querySelector('#diff-summary')?.dataset.changes === '1');
  assert.equal(await page.locator('#diff-text').textContent(), expected.slice(expected.indexOf('\n') + 1));
  const group = page.locator('.diff-region-group[data-old="scope orders-admin"]');
  assert.equal(await group.getAttribute('data-new'), 'scope orders-admin');
  assert.equal(await group.locator('li[data-region]').textContent(), 'host orders.contoso.net, paths /admin/*, any method');
  assert.equal(await group.locator('.diff-group[data-kind="newly-allowed"] [data-side="new"]').textContent(),
    'allow-management (priority 100, allow)');
  await shot(page, 'diff-scopes');
  // Dropping the admin scope: its requests move to the top level.
  const dropped = readFileSync(join(root, 'tests/diff/two-apis.new.json'), 'utf8');
  await setPolicy(page, dropped);
  await page.locator('#run-diff').click();
  await page.waitForFunction(() => document.querySelector('.diff-region-group[data-moved="true"]') !== null);
  const moved = page.locator('.diff-region-group[data-moved="true"]');
  assert.equal(await moved.getAttribute('data-old'), 'scope orders-admin');
  assert.equal(await moved.getAttribute('data-new'), 'top level');
  assert.equal(await page.locator('tr[data-scope-change="orders-admin"] td:last-child').textContent(), 'absent');
  // The key's value never shows, only that it changed.
  assert.ok(!(await page.locator('#diff-results').textContent()).includes('orders-test-key'));
  await page.locator('#tab-evaluate').click();
});

test('the Replay tab replays a flow log in the page: the caller a change cuts off, over time', async () => {
  await page.locator('#sample').selectOption('layered-security');
  const current = readFileSync(join(dataRoot, 'policy-samples/layered-security.json'), 'utf8');
  await page.waitForFunction((t) => document.querySelector('#policy').value === t, current);
  await page.locator('#tab-replay').click();
  await page.locator('#replay-from-editor').click();
  // The candidate of docs/rollout.md: fe1ase's rules removed; the log shows it still calling.
  await setPolicy(page, readFileSync(join(root, 'tests/replay/layered-security.no-fe1ase.json'), 'utf8'));
  await page.locator('#replay-file').setInputFiles(join(root, 'tests/replay/layered-security.nsg-v2.json'));
  await page.waitForFunction(() => document.querySelector('#replay-drop')?.dataset.loaded === 'layered-security.nsg-v2.json');
  await page.locator('#run-replay').click();
  await page.waitForFunction(() => document.querySelector('#replay-summary')?.dataset.denied === '4');
  assert.equal(await page.locator('#replay-summary').textContent(), '11 records: 4 newly denied, 0 newly allowed, 10 judged');
  // The same report the CLI prints (tests/replay), but for the file's name.
  const expected = readFileSync(join(root, 'tests/replay/layered-security.nsg-v2.txt'), 'utf8');
  assert.equal(await page.locator('#replay-text').textContent(),
    expected.slice(expected.indexOf('\n') + 1).replaceAll('tests/replay/layered-security.nsg-v2.json', 'layered-security.nsg-v2.json'));
  const groups = page.locator('.replay-group[data-kind="newly-denied"]');
  assert.equal(await groups.count(), 2);
  assert.equal(await groups.first().locator('[data-side="old"]').textContent(), 'allow-https-fe1ase (priority 300, allow)');
  assert.equal(await groups.first().locator('[data-side="new"]').textContent(), 'default (deny)');
  assert.equal(await groups.first().locator('td[data-field="client"]').textContent(), '65.52.10.20');
  assert.equal(await groups.first().locator('td[data-field="records"]').textContent(), '3');
  // The chart: every record the candidate denies, per minute (6 of them).
  const counts = await page.locator('#replay-chart .bar').evaluateAll((bars) => bars.map((b) => Number(b.dataset.count)));
  assert.equal(counts.reduce((a, b) => a + b, 0), 6);
  await shot(page, 'replay');
  // Against the decisions the log recorded (no current policy): the same cut.
  await page.locator('#replay-old').fill('');
  await page.locator('#run-replay').click();
  await page.waitForFunction(() => document.querySelector('#replay-text')?.textContent.startsWith('replay: old "recorded"'));
  assert.equal(await page.locator('#replay-summary').getAttribute('data-denied'), '4');
  await page.locator('#tab-evaluate').click();
});

test('the evaluation view names the scope and why earlier scopes did not apply', async () => {
  await page.locator('#sample').selectOption('two-apis');
  const text = readFileSync(join(dataRoot, 'policy-samples/two-apis.json'), 'utf8');
  await page.waitForFunction((t) => document.querySelector('#policy').value === t, text);
  await page.locator('#tab-evaluate').click();
  await setField(page, 'client_ip', '52.168.1.10');
  await setField(page, 'client_port', 40000);
  await setField(page, 'local_ip', '10.1.0.4');
  await setField(page, 'local_port', 443);
  await setField(page, 'authority', 'ORDERS.contoso.net:443');
  await setField(page, 'path', '/status/../admin/users');
  await page.waitForFunction(() => document.querySelector('[data-fact="scope"]')?.textContent === 'orders-admin');
  await verdictIs(page, 'deny');
  assert.equal(await page.locator('#status').textContent(), '404');
  assert.equal(await page.locator('tr[data-scope="orders-status"] .why').textContent(),
    '✗ path /admin/users (as sent: /status/../admin/users) is not in paths [/status]');
  assert.equal(await page.locator('tr[data-scope="orders-admin"]').getAttribute('data-chosen'), 'true');
  assert.equal(await page.locator('tr[data-scope="orders-api"]').getAttribute('class'), 'unreached');
  assert.equal(await page.locator('[data-step="scope"]').textContent(), 'scope (orders-admin) ✓');
  assert.ok(await page.locator('tr[data-rule="allow-management"]').count() === 1, 'the scope\'s own rules are shown');
  // An encoded slash: refused before any scope.
  await setField(page, 'path', '/admin%2Fusers');
  await page.waitForFunction(() => document.querySelector('[data-scope-ambiguous]') !== null);
  assert.equal(await page.locator('#status').textContent(), '400');
  assert.equal(await page.locator('[data-fact="scope"]').textContent(), 'none (ambiguous path)');
  await shot(page, 'scopes');
});

test('the client detail says which entry was taken, or why the client is unknown', async () => {
  await page.locator('#tab-evaluate').click();
  await setPolicy(page, JSON.stringify({
    name: 'xff', client_ip: { from: 'x-forwarded-for', trusted_proxies: ['10.0.0.4'] },
  }));
  await setField(page, 'client_ip', '10.0.0.4');
  await page.locator('#request [name="tls"]').check();
  await page.locator('[data-add="headers"]').click();
  const row = page.locator('[data-rows="headers"] .row:last-child');
  await row.locator('[data-k="name"]').fill('x-forwarded-for');
  await row.locator('[data-k="value"]').fill('65.52.10.20:5100');
  await verdictIs(page, 'forward');
  await page.waitForFunction(() => document.querySelector('[data-fact="client detail"]')?.textContent
    === '65.52.10.20 from x-forwarded-for entry 0 (the rightmost)');
  await row.locator('[data-k="value"]').fill('65.52.10.20:99999');
  await verdictIs(page, 'deny');
  assert.equal(await page.locator('[data-fact="client detail"]').textContent(),
    'unknown: x-forwarded-for entry 0 (the rightmost) is malformed: "65.52.10.20:99999"');
});

test('no console errors', () => {
  assert.deepEqual(consoleErrors, []);
});
