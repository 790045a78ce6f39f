// The package's two wasm modules in headless Chromium, which validates
// relaxed SIMD: init() picks the relaxed module by itself, and both modules
// give onnxruntime's embeddings (the same fixture as every parity test).
// Node's side (its engine, its choice) is in package.test.mjs; the relaxed
// kernel's own unit tests run in scripts/test.sh's relaxed wasm step.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { openBrowser, openTestPage } from './browser.mjs';
import { fixtureTexts, assertMatchesOnnxruntime } from './parity.mjs';

const env = await openBrowser();
after(() => env.close());

// Runs in the page: which module runs, and the real encoder's vectors.
async function embedInPage(texts) {
  const encoder = await realEncoder();
  return {
    relaxedSimdEnabled: lt.relaxedSimdEnabled(),
    supportsRelaxedSimd: lt.supportsRelaxedSimd(),
    defaultWasmUrl: lt.defaultWasmUrl().pathname,
    vectors: Array.from(encoder.embed(texts)),
  };
}

test('Chromium loads the relaxed-SIMD module by default; both modules match onnxruntime', async () => {
  const context = await env.browser.newContext();
  const texts = fixtureTexts();
  const chosen = await (await openTestPage(context, env.url)).evaluate(embedInPage, texts);
  assert.equal(chosen.supportsRelaxedSimd, true, 'headless Chromium validates relaxed SIMD');
  assert.equal(chosen.defaultWasmUrl, '/pkg/localtune_relaxed_bg.wasm');
  assert.equal(chosen.relaxedSimdEnabled, true, 'init() loaded the relaxed module');
  assertMatchesOnnxruntime(chosen.vectors, 'relaxed module');

  const plain = await (await openTestPage(context, env.url, '?module=localtune_bg.wasm')).evaluate(embedInPage, texts);
  assert.equal(plain.relaxedSimdEnabled, false, 'the page asked for the simd128 module');
  assertMatchesOnnxruntime(plain.vectors, 'simd128 module');

  // Fused and unfused f32 products (attention's) differ in the last bits,
  // and a last bit can move an activation across a step of the integer
  // weight products' 12-bit rounding: within the parity bound (0.003).
  const maxDiff = plain.vectors.reduce((m, x, i) => Math.max(m, Math.abs(x - chosen.vectors[i])), 0);
  assert.ok(maxDiff <= 3e-3, `the two modules differ by ${maxDiff}`);
  await context.close();
});
