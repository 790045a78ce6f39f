// Encoder benchmark: per-sentence latency (median, p95) at 8, 32 and 128
// tokens, batch 1, for tract native, tract wasm in Node and in headless
// Chromium, Firefox ESR and WebKitGTK, each next to onnxruntime-web (wasm,
// 1 thread, SIMD) on the same model and token ids in the same runtime; cold start; peak wasm memory; and
// the .wasm sizes. Prints a Markdown table; --update-readme writes it into
// docs/benchmarks.md between the bench markers.
//
// Run: bash bench/encoder.sh   (builds pkg/ and the native bench first)
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import * as ort from 'onnxruntime-web';
import { initSync } from '../pkg/localtune.js';
import * as localtune from '../pkg/localtune.js';
import {
  LENGTHS, SOURCE_TEXT, idsOfLength, iterationsFor, makeEngines, measureLatency, checkSameOutput,
} from './harness.mjs';
import { ENGINE_NAMES, benchEngines, compressedSizes, runBenchPage, updateReadme } from './report.mjs';

const root = new URL('../', import.meta.url);
const read = (p) => readFile(new URL(p, root));
const now = () => performance.now();

const model = await read('models/all-minilm-l6-v2-int8/model.onnx');
const tokenizer = await read('models/all-minilm-l6-v2-int8/tokenizer.json');
// The module init() would fetch in this engine (relaxed SIMD or not).
const wasm = await readFile(localtune.defaultWasmUrl());
// Written by bench/encoder.sh (scripts/compile-encoder.mjs).
const compiled = await read('bench/results/encoder.compiled.tar');

// --- Node: tract wasm and onnxruntime-web side by side.
const t0 = now();
initSync({ module: wasm });
const instantiateMs = now() - t0;
const engines = await makeEngines({ localtune, ort, model, compiled, tokenizer, now });

const sourceIds = Array.from(engines.encoder.tokenize([SOURCE_TEXT]).inputIds);
const lengths = Object.fromEntries(LENGTHS.map((n) => [n, idsOfLength(sourceIds, n)]));
await mkdir(new URL('bench/results/', root), { recursive: true });
await writeFile(
  new URL('bench/results/tokens.json', root),
  JSON.stringify({ lengths, iterations: Object.fromEntries(LENGTHS.map((n) => [n, iterationsFor(n)])) }),
);

console.error('node: checking both engines give the same vector…');
await checkSameOutput(engines, lengths[32]);
console.error('node: measuring…');
const node = {
  coldMs: { tract: instantiateMs + engines.tractColdMs, tractInstantiate: instantiateMs, onnxruntime: engines.ortColdMs },
  latency: await measureLatency({
    tokens: lengths,
    engines: { tract: engines.tract, onnxruntime: engines.onnxruntime },
    now,
    iterations: iterationsFor,
  }),
  wasmMemoryBytes: localtune.wasmMemoryBytes(),
  wasmModule: localtune.defaultWasmUrl().pathname.split('/').pop(),
};

// --- Native tract (same ids).
console.error('native: cargo bench --bench encoder…');
const native = JSON.parse(
  execFileSync('cargo', ['bench', '--quiet', '--bench', 'encoder', '--', 'bench/results/tokens.json'], {
    cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
  }),
);

// --- Browsers: both engines in one page, in LATENCY_PAGES fresh browsers of
// each engine (Chromium, Firefox, WebKitGTK; `--engines chromium` for one).
// `chromium-simd128` is Chromium made to run the simd128 module, the one
// WebKit gets: it tells what WebKit's time owes to the module (no fused
// multiply-add) and what to the engine.
// On this machine one page's ratio moved by up to ±15% from one browser to
// the next (the engines alternate within a page, yet a page as a whole runs
// faster or slower for one of them), so each figure of the table is the
// median over the browsers, and the report prints the ratio's spread.
const LATENCY_PAGES = 3;
const BROWSERS = benchEngines(['chromium', 'chromium-simd128', 'firefox', 'webkit']);
const BENCH_PAGE = {
  'chromium-simd128': { engine: 'chromium', path: 'bench/index.html?module=localtune_bg.wasm' },
};
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const browsers = {};
for (const name of BROWSERS) {
  const { engine, path } = BENCH_PAGE[name] ?? { engine: name, path: 'bench/index.html' };
  const pages = [];
  for (let i = 0; i < LATENCY_PAGES; i++) pages.push(await runBenchPage(path, { engine }));
  const result = { ...pages[0], latencyPerPage: pages.map((p) => p.latency), latency: {} };
  for (const len of LENGTHS) {
    result.latency[len] = {};
    for (const runtime of ['tract', 'onnxruntime']) {
      result.latency[len][runtime] = Object.fromEntries(
        ['median', 'p95'].map((q) => [q, median(pages.map((p) => p.latency[len][runtime][q]))]),
      );
    }
  }
  result.ratioSpread = LENGTHS.map((len) => {
    const ratios = pages.map((p) => p.latency[len].tract.median / p.latency[len].onnxruntime.median);
    return `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}× at ${len}`;
  }).join(', ');
  browsers[name] = result;
}
const chromium = browsers.chromium;
const chromiumRatioSpread = chromium.ratioSpread;

// --- Cold start of our encoder, each run in a fresh process or browser
// (a second build in the same one runs on already-optimised code), from
// the compiled file and from the ONNX file, alternating; median of COLD_RUNS.
const COLD_RUNS = 5;
const cold = { node: { compiled: [], onnx: [] }, chromium: { compiled: [], onnx: [] } };
for (let i = 0; i < COLD_RUNS; i++) {
  for (const from of ['compiled', 'onnx']) {
    const out = execFileSync('node', ['bench/cold-start.mjs', from], { cwd: root, encoding: 'utf8' });
    cold.node[from].push(JSON.parse(out).ms);
    cold.chromium[from].push((await runBenchPage(`bench/cold.html?from=${from}`)).ms);
  }
}
const coldMedian = Object.fromEntries(
  Object.entries(cold).map(([rt, byFrom]) => [rt, Object.fromEntries(Object.entries(byFrom).map(([f, xs]) => [f, median(xs)]))]),
);

// --- Sizes.
const ortWasm = await read('node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm');
const sizes = {
  localtune: compressedSizes(await read('pkg/localtune_bg.wasm')),
  localtuneRelaxed: compressedSizes(await read('pkg/localtune_relaxed_bg.wasm')),
  localtuneOnnx: compressedSizes(await read('pkg/localtune_onnx_bg.wasm')),
  onnxruntime: compressedSizes(ortWasm),
};

// --- Report.
const ms = (x) => x.toFixed(1);
const mib = (b) => (b / 2 ** 20).toFixed(1);
// Brotli to two places: the target (≤ onnxruntime-web's) is decided there.
const mib2 = (b) => (b / 2 ** 20).toFixed(2);
const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
const rows = [];
for (const len of LENGTHS) {
  const n = node.latency[len], c = chromium.latency[len], nat = native.latency[len];
  rows.push(
    `| ${len} | ${ms(nat.median)} / ${ms(nat.p95)} | ${ms(n.tract.median)} / ${ms(n.tract.p95)} | ` +
      `${ms(n.onnxruntime.median)} / ${ms(n.onnxruntime.p95)} | **${ratio(n.tract.median, n.onnxruntime.median)}** | ` +
      `${ms(c.tract.median)} / ${ms(c.tract.p95)} | ${ms(c.onnxruntime.median)} / ${ms(c.onnxruntime.p95)} | ` +
      `**${ratio(c.tract.median, c.onnxruntime.median)}** | ${ratio(nat.median, n.onnxruntime.median)} |`,
  );
}
const chromiumVersion = chromium.version;
const NAMES = { ...ENGINE_NAMES, 'chromium-simd128': 'Chromium (simd128 module)' };
// Our encoder across engines: each against Chromium as init() sets it up,
// and WebKit against Chromium on the same (simd128) module.
const comparisons = BROWSERS.filter((e) => e !== 'chromium').map((e) => [e, 'chromium']);
if (BROWSERS.includes('webkit') && BROWSERS.includes('chromium-simd128')) comparisons.push(['webkit', 'chromium-simd128']);
const engineRows = LENGTHS.map((len) => {
  const cells = BROWSERS.map((e) => {
    const l = browsers[e].latency[len];
    return `${ms(l.tract.median)} / ${ms(l.onnxruntime.median)} (${ratio(l.tract.median, l.onnxruntime.median)})`;
  });
  const across = comparisons
    .map(([a, b]) => `**${ratio(browsers[a].latency[len].tract.median, browsers[b].latency[len].tract.median)}**`);
  return `| ${len} | ${cells.join(' | ')} | ${across.join(' | ')} |`;
});
const perEngine = `| tokens | ${BROWSERS.map((e) => `${NAMES[e]} ${browsers[e].version}: tract / ort-web (ratio)`).join(' | ')} | ${comparisons.map(([a, b]) => `${NAMES[a]} ÷ ${NAMES[b]}, tract`).join(' | ')} |
|---:|${BROWSERS.map(() => '---:').join('|')}|${comparisons.map(() => '---:').join('|')}|
${engineRows.join('\n')}

Per engine: median ms over ${LATENCY_PAGES} fresh browsers of each, tract and onnxruntime-web alternating in one page (the paired ratio in brackets; its spread over the browsers: ${BROWSERS.map((e) => `${NAMES[e]} ${browsers[e].ratioSpread}`).join('; ')}). Module tract ran: ${BROWSERS.map((e) => `${NAMES[e]} ${browsers[e].wasmModule}`).join(', ')} (\`init()\`'s choice but where named). The last columns compare our encoder across engines, measured one engine after the other in this run.`;
const report = `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0].model.trim()}, \
Node ${process.versions.node}, Chromium ${chromiumVersion} (headless), onnxruntime-web \
${JSON.parse(await read('node_modules/onnxruntime-web/package.json')).version} (wasm backend, 1 thread, SIMD). \
Batch 1, the same token ids for every engine; latency in ms, median / p95.

| tokens | tract native | tract wasm, Node | onnxruntime-web, Node | ratio Node | tract wasm, Chromium | onnxruntime-web, Chromium | ratio Chromium | native ÷ ort-web Node |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}

Ratio = tract ÷ onnxruntime-web medians in the same runtime (below 1.00× is faster than onnxruntime-web). Chromium figures: the median over ${LATENCY_PAGES} fresh browsers, whose own ratios were ${chromiumRatioSpread}. tract runs the compiled encoder (\`Encoder.fromCompiled\`, bit-identical to the ONNX build) in the module the package's \`init()\` picks in that runtime: ${node.wasmModule} in Node, ${chromium.wasmModule} in Chromium (see [two wasm modules](#two-wasm-modules)); onnxruntime-web the ONNX file. Cold start: median of ${COLD_RUNS} runs, each in a fresh Node process or a fresh headless Chromium, from instantiating localtune's module (~${ms(node.coldMs.tractInstantiate)} ms in Node, ~${ms(chromium.coldMs.tractInstantiate)} ms in Chromium) to a runnable encoder; onnxruntime-web's is its first \`InferenceSession.create\` in the latency run's fresh page and process, its own module included.

| | tract native | tract wasm, Node | tract wasm, Chromium | onnxruntime-web, Node | onnxruntime-web, Chromium |
|---|---:|---:|---:|---:|---:|
| cold start, bytes → runnable (ms): compiled encoder (what a bundle loads) | ${ms(native.coldMs)} | ${ms(coldMedian.node.compiled)} | ${ms(coldMedian.chromium.compiled)} | ${ms(node.coldMs.onnxruntime)} | ${ms(chromium.coldMs.onnxruntime)} |
| cold start, bytes → runnable (ms): from the ONNX file | ${ms(native.coldOnnxMs)} | ${ms(coldMedian.node.onnx)} | ${ms(coldMedian.chromium.onnx)} | ${ms(node.coldMs.onnxruntime)} | ${ms(chromium.coldMs.onnxruntime)} |
| peak wasm memory (MiB) | – | ${mib(node.wasmMemoryBytes)} | ${mib(chromium.wasmMemoryBytes)} | – | – |

| .wasm | raw (MiB) | gzip -9 (MiB) | brotli 11 (MiB) |
|---|---:|---:|---:|
| localtune_bg.wasm (for pages: tract without its ONNX importer + tokenizers + localtune; simd128) | ${mib(sizes.localtune.raw)} | ${mib(sizes.localtune.gzip)} | ${mib2(sizes.localtune.brotli)} |
| localtune_relaxed_bg.wasm (the same + relaxed SIMD's fused multiply-add) | ${mib(sizes.localtuneRelaxed.raw)} | ${mib(sizes.localtuneRelaxed.gzip)} | ${mib2(sizes.localtuneRelaxed.brotli)} |
| localtune_onnx_bg.wasm (simd128 with the ONNX importer: Node, the bundle tool, \`localtune/onnx\`) | ${mib(sizes.localtuneOnnx.raw)} | ${mib(sizes.localtuneOnnx.gzip)} | ${mib2(sizes.localtuneOnnx.brotli)} |
| onnxruntime-web ort-wasm-simd-threaded.wasm | ${mib(sizes.onnxruntime.raw)} | ${mib(sizes.onnxruntime.gzip)} | ${mib2(sizes.onnxruntime.brotli)} |

${perEngine}
`;

console.log(report);
await writeFile(new URL('bench/results/encoder.md', root), report);
await writeFile(
  new URL('bench/results/encoder.json', root),
  JSON.stringify({ native, node, browsers, cold, sizes }, null, 1),
);
if (process.argv.includes('--update-readme')) await updateReadme('encoder', report);
