// Head update speed: one update of 50 cached feature vectors (10 intents ×
// 5 sentences of bench/data, embedded by the real encoder) with the default
// settings, in wasm under Node and in headless Chromium, Firefox ESR and
// WebKitGTK (`--engines chromium` for fewer), each next to
// TensorFlow.js (wasm backend with SIMD and one thread, and its plain-JS cpu
// backend) training the same head with the same optimizer, batch size and
// number of steps, in the same runtime. Prints a Markdown table;
// --update-readme writes it into docs/benchmarks.md between the head-speed markers.
//
// Run: bash bench/head-speed.sh   (builds pkg/ first)
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { initSync } from '../pkg/localtune.js';
import * as localtune from '../pkg/localtune.js';
// The features come from the module with the ONNX importer; the heads train
// in the page module, as in an app.
import * as withImporter from '../pkg/localtune_onnx.js';
import { compareInRuntime, pickSamples } from './head-speed-harness.mjs';
import { ENGINE_NAMES, benchEngines, runBenchPage, updateReadme } from './report.mjs';

const root = new URL('../', import.meta.url);
const read = (p) => readFile(new URL(p, root));
const now = () => performance.now();
const RUNS = 30;

initSync({ module: await read('pkg/localtune_bg.wasm') });
withImporter.initSync({ module: await read('pkg/localtune_onnx_bg.wasm') });
const encoder = new withImporter.Encoder(
  await read('models/all-minilm-l6-v2-int8/model.onnx'),
  await read('models/all-minilm-l6-v2-int8/tokenizer.json'),
);
const { intents, texts, labels } = pickSamples(await read('bench/data/home-assistant-intents-en.csv').then(String));
const features = encoder.embed(texts);
const dim = encoder.dim;
encoder.free();

setWasmPaths(fileURLToPath(new URL('node_modules/@tensorflow/tfjs-backend-wasm/dist/', root)));
console.error('node: localtune and TensorFlow.js in alternation…');
const node = await compareInRuntime({
  localtune, tf, backends: ['wasm', 'cpu'], features, labels, intents, dim, now, runs: RUNS,
});
const { batchSize, learningRate } = localtune.defaultUpdateOptions();
const ours = node.localtune;

const ENGINES = benchEngines(['chromium', 'firefox', 'webkit']);
const browsers = {};
for (const engine of ENGINES) browsers[engine] = await runBenchPage('bench/head-speed.html', { engine });
const chromium = browsers.chromium;

const ms = (x) => x.toFixed(2);
const times = (x) => `${x.toFixed(1)}×`;
const oursRow = (r) => `| localtune (wasm + simd128) | ${ms(r.median)} | ${ms(r.p95)} | ${r.steps} | – |`;
const theirRow = (name, r) =>
  `| ${name} | ${ms(r.median)} | ${ms(r.p95)} | ${r.steps} | **${times(r.ratio.median)}** (${times(r.ratio.p05)}–${times(r.ratio.p95)}) |`;
const fastest = (runtime) => Object.values(runtime.tfjs).reduce((a, b) => (b.median < a.median ? b : a));
const table = (name, runtime) => `| ${name} | median | p95 | steps | TF.js ÷ localtune, paired |
|---|---:|---:|---:|---:|
${oursRow(runtime.localtune)}
${theirRow('TensorFlow.js, wasm backend', runtime.tfjs.wasm)}
${theirRow('TensorFlow.js, cpu backend', runtime.tfjs.cpu)}`;
const report = `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0].model.trim()}, \
Node ${process.versions.node}, TensorFlow.js \
${tf.version.tfjs}. One update: ${labels.length} cached vectors (${intents.length} intents × ${labels.length / intents.length}), \
head ${dim} → ${intents.length} softmax, Adam (lr ${Number(learningRate.toPrecision(6))}), batch ${batchSize}, \
${ours.steps} steps (${ours.epochs} epochs, localtune's defaults); TensorFlow.js runs the same head, optimizer, batch size and steps \
(tf.tidy + optimizer.minimize; wasm backend with SIMD on one thread, cpu backend in plain JS). The two engines run in alternation, \
${RUNS} pairs after 30 untimed ones per backend; times in ms (median / p95); the ratio is the median of the ${RUNS} per-pair ratios, \
with their 5th–95th percentiles in brackets. localtune's row is from its pairs with the faster backend.

${table('Node', node)}

${ENGINES.map((e) => table(`${ENGINE_NAMES[e]} ${browsers[e].version}`, browsers[e])).join('\n\n')}

localtune is **${times(fastest(node).ratio.median)}** faster than the faster TensorFlow.js backend in Node, \
${ENGINES.map((e) => `**${times(fastest(browsers[e]).ratio.median)}** in ${ENGINE_NAMES[e]}`).join(', ')}. \
One update across engines (localtune's median; measured one engine after the other): \
${ENGINES.filter((e) => e !== 'chromium').map((e) => `${ENGINE_NAMES[e]} ${(browsers[e].localtune.median / chromium.localtune.median).toFixed(2)}× Chromium's time`).join(', ')}.`;

console.log(report);
if (process.argv.includes('--update-readme')) await updateReadme('head-speed', report);
