// Prints www/pkg/manifest.json: the sample policies (with the test files
// that name them) and the whole test corpus, as URLs relative to www/.
// The corpus is what crates/portcullis-core/tests/corpus.rs runs:
// tests/corpus/*.json and policy-samples/*.tests.json.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, dirname, resolve, relative } from 'node:path';

// Usage: node scripts/web-manifest.mjs [ROOT]  (ROOT: the repo, or a snapshot of
// its tests/corpus and policy-samples folders)
const root = resolve(process.argv[2] || resolve(dirname(new URL(import.meta.url).pathname), '..'));
const list = (dir, pred) =>
  existsSync(join(root, dir))
    ? readdirSync(join(root, dir)).filter(pred).sort().map((f) => `${dir}/${f}`)
    : [];

const testFiles = [
  ...list('tests/corpus', (f) => f.endsWith('.json')),
  ...list('policy-samples', (f) => f.endsWith('.tests.json')),
];
// Which policy file each test file names (inline policies name none).
const policyOf = {};
for (const t of testFiles) {
  try {
    const p = JSON.parse(readFileSync(join(root, t), 'utf8')).policy;
    if (typeof p === 'string') policyOf[t] = relative(root, resolve(root, dirname(t), p));
  } catch {
    // A malformed test file is still listed: the page reports its error.
  }
}
const samples = list('policy-samples', (f) => f.endsWith('.json') && !f.endsWith('.tests.json'))
  .map((p) => ({
    name: p.replace(/^policy-samples\//, '').replace(/\.json$/, ''),
    policy: p,
    tests: testFiles.filter((t) => policyOf[t] === p),
  }));
process.stdout.write(JSON.stringify({ base: '../', samples, corpus: testFiles }, null, 1) + '\n');
