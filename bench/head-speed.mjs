// Head update speed: one update of 50 cached feature vectors (10 intents ×
// 5 sentences of bench/data, embedded by the real encoder) with the default
// settings, in wasm under Node and in headless Chromium, each next to
// TensorFlow.js (wasm backend with SIMD and one thread, and its plain-JS cpu
// backend) training the same head with the same optimizer, batch size and
// number of steps, in the same runtime. Prints a Markdown table;
// --update-readme writes it into README.md between the head-speed markers.
//
// Run: bash bench/head-speed.sh   (builds pkg/ first)
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { initSync } from '../pkg/localtune.js';
import * as localtune from '../pkg/localtune.js';
import { pickSamples, timeLocaltune, timeTfjs } from './head-speed-harness.mjs';
import { runBenchPage, updateReadme } from './report.mjs';

const root = new URL('../', import.meta.url);
const read = (p) => readFile(new URL(p, root));
const now = () => performance.now();
const RUNS = 30;

initSync({ module: await read('pkg/localtune_bg.wasm') });
const encoder = new localtune.Encoder(
  await read('models/all-minilm-l6-v2-int8/model.onnx'),
  await read('models/all-minilm-l6-v2-int8/tokenizer.json'),
);
const { intents, texts, labels } = pickSamples(await read('bench/data/home-assistant-intents-en.csv').then(String));
const features = encoder.embed(texts);
const dim = encoder.dim;
encoder.free();

console.error('node: localtune…');
const ours = timeLocaltune({ localtune, features, labels, intents, dim, now, runs: RUNS });
// The defaults the update just used, from the crate itself.
const { batchSize, learningRate } = localtune.defaultUpdateOptions();
const defaults = { batchSize, learningRate };

const node = { localtune: ours, tfjs: {} };
setWasmPaths(fileURLToPath(new URL('node_modules/@tensorflow/tfjs-backend-wasm/dist/', root)));
for (const backend of ['wasm', 'cpu']) {
  await tf.setBackend(backend);
  await tf.ready();
  console.error(`node: TensorFlow.js ${backend}…`);
  node.tfjs[backend] = await timeTfjs({
    tf, features, labels, intents, dim, steps: ours.steps, ...defaults, now, runs: RUNS,
  });
}

const chromium = await runBenchPage('bench/head-speed.html');

const ms = (x) => x.toFixed(2);
const row = (name, r) => `| ${name} | ${ms(r.median)} | ${ms(r.p95)} | ${r.steps} |`;
const ratio = (runtime) => {
  const best = Math.min(...Object.values(runtime.tfjs).map((r) => r.median));
  return `${(best / runtime.localtune.median).toFixed(0)}×`;
};
const report = `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0].model.trim()}, \
Node ${process.versions.node}, Chromium ${chromium.version} (headless), TensorFlow.js \
${tf.version.tfjs}. One update: ${labels.length} cached vectors (${intents.length} intents × ${labels.length / intents.length}), \
head ${dim} → ${intents.length} softmax, Adam (lr ${Number(defaults.learningRate.toPrecision(6))}), batch ${defaults.batchSize}, \
${ours.steps} steps (${ours.epochs} epochs, localtune's defaults); TensorFlow.js runs the same head, optimizer, batch size and steps \
(tf.tidy + optimizer.minimize; wasm backend with SIMD on one thread, cpu backend in plain JS). Median / p95 of ${RUNS} updates after 30 untimed ones (both sides), ms.

| Node | median | p95 | steps |
|---|---:|---:|---:|
${row('localtune (wasm + simd128)', node.localtune)}
${row('TensorFlow.js, wasm backend', node.tfjs.wasm)}
${row('TensorFlow.js, cpu backend', node.tfjs.cpu)}

| Chromium | median | p95 | steps |
|---|---:|---:|---:|
${row('localtune (wasm + simd128)', chromium.localtune)}
${row('TensorFlow.js, wasm backend', chromium.tfjs.wasm)}
${row('TensorFlow.js, cpu backend', chromium.tfjs.cpu)}

localtune is **${ratio(node)}** faster than the faster TensorFlow.js backend in Node and **${ratio(chromium)}** in Chromium.`;

console.log(report);
if (process.argv.includes('--update-readme')) await updateReadme('head-speed', report);
