// The playground's engine thread: loads the wasm once and answers calls.
// Message in: {id, fn, args}; out: {id, ok, value, ms} or {id, ok: false, error}.
// Every function of the wasm takes strings (a log: bytes) and returns a JSON string.
import init, * as engine from './pkg/portcullis_web.js';

const CALLS = new Set(['check_policy', 'evaluate', 'read_request', 'run_tests', 'import_policy', 'diff_policies', 'replay_log', 'version']);
const ready = init({ module_or_path: new URL('./pkg/portcullis_web_bg.wasm', import.meta.url) });

self.onmessage = async (ev) => {
  const { id, fn, args } = ev.data;
  try {
    await ready;
    if (!CALLS.has(fn)) throw new Error(`unknown call ${fn}`);
    const t0 = performance.now();
    const value = engine[fn](...args);
    self.postMessage({ id, ok: true, value, ms: performance.now() - t0 });
  } catch (e) {
    self.postMessage({ id, ok: false, error: String((e && e.stack) || e) });
  }
};
