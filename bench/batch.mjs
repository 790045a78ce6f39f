// Batch throughput: texts of mixed length embedded many at once (the
// intents' test split, as a store re-embeds its corrections or an import
// brings thousands), localtune's `Encoder.embed` against onnxruntime-web
// (wasm, 1 thread, SIMD) on the same texts cut the same way, alternating
// round by round in the same runtime: Node, then headless Chromium
// (bench/batch.html). Beside them, the floor: the model's multiply-adds for
// these texts' tokens on one core doing two 4-lane fused multiply-adds a
// cycle at the clock the OS reports. Prints a Markdown table;
// --update-readme writes it into docs/benchmarks.md (bench:batch markers).
//
// Run: bash bench/batch.sh   (builds pkg/ and the compiled encoder first)
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { cpus } from 'node:os';
import * as ort from 'onnxruntime-web';
import { initSync } from '../pkg/localtune.js';
import * as localtune from '../pkg/localtune.js';
import { INTENT_ROWS } from '../tests/js/intents.mjs';
import { measureBatch } from './batch-harness.mjs';
import { makeEngines } from './harness.mjs';
import { runBenchPage, updateBenchmarks } from './report.mjs';

const root = new URL('../', import.meta.url);
const read = (p) => readFile(new URL(p, root));
const now = () => performance.now();
const ROUNDS = 5;

// Every other test-split sentence, in a seeded shuffle (the order texts
// arrive in; the library sorts them itself).
let seed = 20261204;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const texts = INTENT_ROWS.filter((r) => r.split === 'test').filter((_, i) => i % 2 === 0).map((r) => r.text);
for (let i = texts.length - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1));
  [texts[i], texts[j]] = [texts[j], texts[i]];
}
await mkdir(new URL('bench/results/', root), { recursive: true });
await writeFile(new URL('bench/results/batch-texts.json', root), JSON.stringify({ texts, rounds: ROUNDS }));

initSync({ module: await readFile(localtune.defaultWasmUrl()) });
// The encoder benchmark's engines: the compiled encoder, and
// onnxruntime-web with the same settings (one thread, SIMD).
const { encoder, session } = await makeEngines({
  localtune,
  ort,
  model: await read('models/all-minilm-l6-v2-int8/model.onnx'),
  compiled: await read('bench/results/encoder.compiled.tar'),
  tokenizer: await read('models/all-minilm-l6-v2-int8/tokenizer.json'),
  now,
});
console.error(`node: ${texts.length} texts, ${ROUNDS} rounds each…`);
const node = await measureBatch({ encoder, ort, session, texts, rounds: ROUNDS, now });
const chromium = await runBenchPage('bench/batch.html');

// The floor: all-MiniLM-L6-v2's multiply-adds (6 layers: Q, K, V and the
// output projection, 4 × 384², and the feed-forward, 2 × 384 × 1536, per
// token; attention's scores and sums, 2 × L² × 384 per text of L tokens)
// on one core at 8 multiply-adds a cycle.
const lengths = texts.map((t) => encoder.tokenize([t]).inputIds.length);
const macs = lengths.reduce((sum, l) => sum + 6 * (l * (4 * 384 ** 2 + 2 * 384 * 1536) + 2 * l * l * 384), 0);
// The clock as Node reports it, else as Linux does (virtual machines often
// leave Node's at 0).
const cpuinfoMhz = async () => {
  const info = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(info)?.[1] ?? 0);
};
const mhz = Math.round(cpus()[0].speed || (await cpuinfoMhz()));
const floorMs = macs / (8 * mhz * 1e3);

const perSecond = (ms) => ((texts.length / ms) * 1000).toFixed(0);
const row = (name, r) => `| ${name} | ${perSecond(r.ms.localtune)} (${(r.ms.localtune / texts.length).toFixed(1)} ms) | ${perSecond(r.ms.onnxruntime)} (${(r.ms.onnxruntime / texts.length).toFixed(1)} ms) | **${(1 / r.ratio).toFixed(2)}×** (${r.ratios.map((x) => (1 / x).toFixed(2)).join(', ')}) | ${r.minCosine.toFixed(4)} |`;
const report = `Measured ${new Date().toISOString().slice(0, 10)} by \`bash bench/batch.sh\` on ${cpus().length} × ${cpus()[0].model.trim()}, \
Node ${process.versions.node}, Chromium ${chromium.version} (headless), onnxruntime-web \
${JSON.parse(await read('node_modules/onnxruntime-web/package.json')).version} (wasm backend, 1 thread, SIMD). \
${texts.length} texts of the intents' test split (${node.tokens} tokens, ${Math.min(...lengths)}–${Math.max(...lengths)} a text), \
in ${node.chunks} runs of up to 32 sorted by length; ${ROUNDS} rounds per engine, alternating.

| runtime | localtune \`Encoder.embed\`: texts/s (ms a text) | onnxruntime-web, same runs: texts/s (ms a text) | throughput ÷ onnxruntime-web's (per round) | vectors agree (min cosine) |
|---|---:|---:|---:|---:|
${row('Node', node)}
${row(`Chromium (${chromium.wasmModule})`, chromium)}
${mhz ? `| the floor: ${(macs / 1e9).toFixed(1)} G multiply-adds, one core, 8 a cycle at ${mhz} MHz | ${perSecond(floorMs)} (${(floorMs / texts.length).toFixed(1)} ms) | | | |` : '| the floor: the clock is unknown here | | | | |'}

localtune's time includes tokenizing and sorting; onnxruntime-web's leaves tokenizing out (it has no tokenizer: it gets the ids localtune's tokenizer made) and includes pooling each run's output in JavaScript. The ratio is the median of the rounds' ratios; above 1.00× localtune embeds more texts a second.`;

console.log(report);
await writeFile(new URL('bench/results/batch.json', root), JSON.stringify({ node, chromium, macs, mhz, floorMs }, null, 1));
if (process.argv.includes('--update-readme')) await updateBenchmarks('batch', report);
