// The built npm package (pkg/), imported the way a user imports it, in Node:
// parity with onnxruntime through the JS API, error objects, and SIMD.
// In Node, `localtune` is the glue of the module with the ONNX importer
// (package.json's `node` condition); a page's `localtune` is the page glue,
// whose modules leave the importer out. Both are loaded here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  initSync, Encoder, simd128Enabled, relaxedSimdEnabled, defaultWasmUrl, wasmMemoryBytes,
} from '../../pkg/localtune_onnx.js';
import * as page from '../../pkg/localtune.js';
import { fixture, fixtureTexts, assertMatchesOnnxruntime } from './parity.mjs';

const root = new URL('../../', import.meta.url);
const read = (p) => readFile(new URL(p, root));

// As a Node user would: the module init() would fetch in this engine.
initSync({ module: await readFile(defaultWasmUrl()) });
page.initSync({ module: await readFile(page.defaultWasmUrl()) });
const model = await read('models/all-minilm-l6-v2-int8/model.onnx');
const tokenizer = await read('models/all-minilm-l6-v2-int8/tokenizer.json');

test('the package was built with simd128', () => {
  assert.equal(simd128Enabled(), true);
  assert.equal(page.simd128Enabled(), true);
});

test('the default module is the one this engine validates, and the probe agrees with the module', async () => {
  const relaxed = await read('pkg/localtune_relaxed_bg.wasm');
  // The 49-byte probe and the real relaxed module: an engine accepts both or neither.
  assert.equal(WebAssembly.validate(relaxed), page.supportsRelaxedSimd());
  assert.equal(WebAssembly.validate(await read('pkg/localtune_bg.wasm')), true);
  const expected = page.supportsRelaxedSimd() ? 'localtune_relaxed_bg.wasm' : 'localtune_bg.wasm';
  assert.equal(page.defaultWasmUrl().href, new URL(`pkg/${expected}`, root).href);
  assert.equal(page.relaxedSimdEnabled(), page.supportsRelaxedSimd());
  // The ONNX glue loads its own module (simd128) on every engine.
  assert.equal(defaultWasmUrl().href, new URL('pkg/localtune_onnx_bg.wasm', root).href);
  assert.equal(relaxedSimdEnabled(), false);
});

test('the page modules leave the ONNX importer out: ONNX is refused by name, a compiled encoder is the same encoder', () => {
  const refused = [
    () => new page.Encoder(model, tokenizer),
    () => page.Encoder.compile(model),
  ];
  for (const make of refused) {
    assert.throws(make, (e) => e instanceof Error && e.name === 'UnsupportedError' &&
      /ONNX importer/.test(e.message) && /localtune_onnx_bg\.wasm/.test(e.message));
  }
  // The bundle tool reads its files and the CSV, then refuses at the encoder.
  const csv = 'text,label\n' + ['turn on the lights,on', 'lights on please,on', 'turn off the lights,off', 'lights off now,off'].join('\n');
  const files = { e: model, t: tokenizer, d: new TextEncoder().encode(csv) };
  let written = 0;
  assert.throws(
    () => page.runBundleTool(['--encoder', 'e', '--tokenizer', 't', '--data', 'd', '--out', 'o'], { readFile: (path) => files[path], writeFile() { written++; }, print() {} }),
    (e) => e instanceof Error && /ONNX importer/.test(e.message),
  );
  assert.equal(written, 0);
  const onPage = page.Encoder.fromCompiled(Encoder.compile(model), tokenizer);
  assert.equal(onPage.sha256, fixture.model_sha256);
  assertMatchesOnnxruntime(onPage.embed(fixtureTexts()));
  onPage.free();
});

test('embeddings through the JS API match onnxruntime', () => {
  const encoder = new Encoder(model, tokenizer);
  assert.equal(encoder.dim, 384);
  assert.equal(encoder.maxSeqLen, 128);
  assert.equal(encoder.sha256, fixture.model_sha256);
  const flat = encoder.embed(fixtureTexts());
  assert.ok(flat instanceof Float32Array);
  assertMatchesOnnxruntime(flat);
  assert.ok(wasmMemoryBytes() > 0);
  encoder.free();
});

test('a compiled encoder (Encoder.compile → Encoder.fromCompiled) is the same encoder', () => {
  const compiled = Encoder.compile(model);
  assert.ok(compiled instanceof Uint8Array);
  assert.ok(compiled.length < model.length * 1.1, `${compiled.length} bytes from ${model.length}`);
  const fromCompiled = Encoder.fromCompiled(compiled, tokenizer);
  const fromOnnx = new Encoder(model, tokenizer);
  assert.equal(fromCompiled.sha256, fixture.model_sha256);
  assert.equal(fromCompiled.dim, 384);
  const texts = ['turn off the kitchen lights', '', '请把客厅的灯关掉 🔥', 'word '.repeat(300)];
  assert.deepEqual(Array.from(fromCompiled.embed(texts)), Array.from(fromOnnx.embed(texts)));
  assert.equal(Encoder.fromCompiled(compiled, tokenizer, { maxSeqLen: 8 }).tokenize(['word '.repeat(300)]).seqLen, 8);
  const refused = [
    [() => Encoder.fromCompiled(model, tokenizer), 'ModelFormatError', /not a compiled localtune encoder/],
    [() => Encoder.fromCompiled(new Uint8Array(), tokenizer), 'ModelFormatError', /empty/],
    [() => Encoder.fromCompiled(compiled.subarray(0, compiled.length >> 1), tokenizer), 'ModelFormatError', /compiled graph/],
    [() => Encoder.fromCompiled(compiled, tokenizer, { maxSeqLen: 1 }), 'ConfigError', /between 2 and 512/],
    [() => Encoder.compile(tokenizer), 'ModelFormatError', /ONNX/],
  ];
  for (const [make, name, message] of refused) {
    assert.throws(make, (e) => e instanceof Error && e.name === name && message.test(e.message));
  }
  fromCompiled.free();
  fromOnnx.free();
});

test('4-bit word embeddings: a fifth smaller file, read by the page module as the ONNX module builds it, within cosine 0.99 of int8', async () => {
  const int8 = Encoder.compile(model);
  const fourBit = Encoder.compile(model, { wordEmbeddings4bit: 32 });
  assert.ok(fourBit.length < int8.length * 0.8, `${fourBit.length} bytes against int8's ${int8.length}`);
  const texts = fixtureTexts();
  const cosines = (a, b, dim = 384) => Array.from({ length: a.length / dim }, (_, i) => {
    let dot = 0;
    for (let j = i * dim; j < (i + 1) * dim; j++) dot += a[j] * b[j];
    return dot;
  });
  const onPage = page.Encoder.fromCompiled(fourBit, tokenizer);
  const fromOnnx = new Encoder(model, tokenizer, { wordEmbeddings4bit: 32 });
  assert.equal(onPage.sha256, fromOnnx.sha256);
  assert.notEqual(onPage.sha256, fixture.model_sha256, 'other vectors, another identity');
  const [pageVectors, onnxVectors] = [onPage.embed(texts), fromOnnx.embed(texts)];
  // The same model; the page module may be the relaxed-SIMD one (fused
  // multiply-adds), so equal to rounding, not bit for bit.
  for (const c of cosines(pageVectors, onnxVectors)) assert.ok(c > 0.99999, `cosine ${c} between the modules`);
  const int8Vectors = page.Encoder.fromCompiled(int8, tokenizer).embed(texts);
  for (const [i, c] of cosines(pageVectors, int8Vectors).entries()) assert.ok(c >= 0.99, `${texts[i].slice(0, 40)}: cosine ${c} to int8`);
  const refused = [
    [() => Encoder.compile(model, { wordEmbeddings4bit: 0 }), 'ConfigError', /give 1 to 4096/],
    [() => Encoder.compile(model, { wordEmbedding4bit: 32 }), 'ConfigError', /unknown field/],
    [() => page.Encoder.fromCompiled(fourBit, tokenizer, { wordEmbeddings4bit: 64 }), 'ConfigError', /4-bit in groups of 32/],
  ];
  for (const [make, name, message] of refused) {
    assert.throws(make, (e) => e instanceof Error && e.name === name && message.test(e.message));
  }
  // The bundle tool's flag, through localtune/bundle.
  const { buildBundle } = await import('../../pkg/bundle.js');
  const csv = 'text,label\n' + ['turn on the lights,on', 'lights on please,on', 'turn off the lights,off', 'lights off now,off'].join('\n');
  const files = buildBundle({ encoder: model, tokenizer, data: csv, wordEmbeddings: '4bit', epochs: 5 });
  const manifest = JSON.parse(new TextDecoder().decode(files.get('manifest.json')));
  assert.equal(manifest.encoder.wordEmbeddings4bit, 32);
  assert.deepEqual(files.get('encoder.compiled.tar'), fourBit, 'the same file Encoder.compile writes');
  onPage.free();
  fromOnnx.free();
});

test('buildBundleOnWorkers writes buildBundle\'s files on worker threads, reports, cancels, and refuses as the tool does', async () => {
  const { buildBundle, buildBundleOnWorkers } = await import('../../pkg/bundle.js');
  const { INTENT_ROWS } = await import('./intents.mjs');
  // 700 texts of every intent: 22 runs of the encoder, one progress line.
  const rows = INTENT_ROWS.filter((_, i) => i % 8 === 0).slice(0, 700);
  const quote = (t) => `"${t.replaceAll('"', '""')}"`;
  const data = `text,label\n${rows.map((r) => `${quote(r.text)},${r.intent}`).join('\n')}\n`;
  const options = { encoder: model, tokenizer, data, epochs: 5 };
  const one = buildBundle(options);
  const lines = [];
  const onWorkers = await buildBundleOnWorkers({ ...options, threads: 2, onProgress: (line) => lines.push(line) });
  assert.deepEqual([...onWorkers.keys()], [...one.keys()]);
  for (const [name, bytes] of one) assert.equal(Buffer.compare(onWorkers.get(name), bytes), 0, `${name}: the same bytes`);
  assert.match(lines[0], /^read 700 rows, \d+ labels \(\d+ held out\)$/);
  // Runs finish in any order, but 21 of the 22 are 32 texts and the short
  // one is handed out last.
  assert.ok(lines.includes('  embedded 640 / 700'), lines.join('\n'));
  assert.ok(lines.includes('embedded 700 texts'), lines.join('\n'));

  // Cancelled while the workers embed: rejects with the signal's reason at
  // once, and the next build still works.
  const controller = new AbortController();
  const started = performance.now();
  let abortedAt = null;
  await assert.rejects(
    buildBundleOnWorkers({
      ...options, threads: 2, signal: controller.signal,
      onProgress: (line) => { if (line.startsWith('read ')) setTimeout(() => { abortedAt = performance.now(); controller.abort(); }, 200); },
    }),
    (e) => e.name === 'AbortError',
  );
  assert.ok(abortedAt !== null && performance.now() - abortedAt < 1000, `rejected ${performance.now() - abortedAt} ms after the abort`);
  assert.ok(performance.now() - started < 10_000);
  // A signal aborted before the call: nothing runs.
  await assert.rejects(buildBundleOnWorkers({ ...options, signal: AbortSignal.abort() }), (e) => e.name === 'AbortError');

  // A wrong model file: the worker threads refuse it with the words the
  // tool uses on one thread.
  let message;
  assert.throws(() => buildBundle({ ...options, encoder: tokenizer }), (e) => { message = e.message; return e.name === 'BundleToolError'; });
  await assert.rejects(buildBundleOnWorkers({ ...options, encoder: tokenizer, threads: 2 }),
    (e) => e.name === 'BundleToolError' && e.message === message);
  const again = await buildBundleOnWorkers({ ...options, threads: 3 });
  assert.equal(Buffer.compare(again.get('head.bin'), one.get('head.bin')), 0);
});

test('tokenize and embedTokenIds agree with embed', () => {
  const encoder = new Encoder(model, tokenizer, { maxSeqLen: 16 });
  const batch = encoder.tokenize(['turn off the kitchen lights', 'hi']);
  assert.equal(batch.rows, 2);
  assert.ok(batch.seqLen <= 16);
  const a = encoder.embedTokenIds(batch.inputIds, batch.attentionMask, batch.rows, batch.seqLen);
  const b = encoder.embed(['turn off the kitchen lights', 'hi']);
  assert.deepEqual(Array.from(a), Array.from(b));
  encoder.free();
});

test('errors are Error objects with a stable name', () => {
  const cases = [
    [() => new Encoder(new Uint8Array([1, 2, 3]), tokenizer), 'ModelFormatError'],
    [() => new Encoder(tokenizer, tokenizer), 'ModelFormatError'],
    [() => new Encoder(model, new Uint8Array()), 'TokenizerError'],
    [() => new Encoder(model, tokenizer, { maxSeqLen: 4096 }), 'ConfigError'],
    [() => new Encoder(model, tokenizer, { maxSeqLenn: 64 }), 'ConfigError'],
    [() => new Encoder(model, tokenizer, { maxSeqLen: 'long' }), 'ConfigError'],
    [() => new Encoder(model, tokenizer, 128), 'ConfigError'],
  ];
  const encoder = new Encoder(model, tokenizer);
  cases.push(
    // 65,536 × 65,536 wraps to 0 in 32 bits: refused, not taken for an empty batch.
    [() => encoder.embedTokenIds(new Uint32Array(0), new Uint32Array(0), 65536, 65536), 'ConfigError', /more token ids than fit/],
    [() => encoder.embedTokenIds(new Uint32Array(3), new Uint32Array(3), 2, 2), 'ConfigError', /expected 2 × 2/],
  );
  for (const [make, name, message = /.{10}/] of cases) {
    assert.throws(make, (e) => e instanceof Error && e.name === name && message.test(e.message));
  }
  encoder.free();
});

test('package.json exports the main module, the worker client, the worker, the embedding pool and the bundle tool, with types', async () => {
  const pkg = JSON.parse(await read('pkg/package.json'));
  assert.equal(pkg.name, 'localtune');
  assert.deepEqual(Object.keys(pkg.exports), ['.', './onnx', './client', './worker', './embedding-pool', './bundle', './localtune_bg.wasm', './localtune_relaxed_bg.wasm', './localtune_onnx_bg.wasm']);
  assert.deepEqual(pkg.exports['./embedding-pool'], { types: './embedding-pool.d.ts', default: './embedding-pool.js' });
  assert.deepEqual(pkg.exports['.'], { types: './localtune.d.ts', node: './localtune_onnx.js', default: './localtune.js' });
  // One API, two glues (up to the hashed names of wasm-bindgen's internal closure exports).
  const api = async (file) => String(await read(file)).replace(/__invoke__h[0-9a-f]{16}/g, '__invoke__h');
  assert.equal(await api('pkg/localtune_onnx.d.ts'), await api('pkg/localtune.d.ts'));
  assert.deepEqual(pkg.bin, { localtune: './cli.js' });
  for (const file of pkg.files) await read(`pkg/${file}`); // every listed file is there
  const types = String(await read('pkg/localtune.d.ts'));
  for (const name of ['class Classifier', 'class Store', 'class Head', 'class Encoder', 'interface UpdateReport', 'type BundleSource', 'function supportsRelaxedSimd', 'function defaultWasmUrl', 'function relaxedSimdEnabled', 'function runBundleTool', 'interface BundleToolIo', 'function loadedModule', 'interface EmbeddingPoolLike', 'interface ImportOptions']) {
    assert.ok(types.includes(name), `localtune.d.ts declares ${name}`);
  }
  assert.match(String(await read('pkg/client.d.ts')), /export declare class WorkerClassifier/);
  assert.match(String(await read('pkg/embedding-pool.d.ts')), /export declare class EmbeddingPool implements EmbeddingPoolLike/);
  // The package's README is the one for package users, not the repository's.
  assert.equal(String(await read('pkg/README.md')), String(await read('src/js/README.md')));
});
