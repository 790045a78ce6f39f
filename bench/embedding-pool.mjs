// The embedding pool's speedup: a WorkerClassifier's import of 2,000 real
// queries embedded with its pool (one Web Worker beside its own thread on
// 2 cores) against its own thread alone, alternating, in headless
// Chromium and Firefox
// (bench/embedding-pool.html). Prints a Markdown table; --update-readme
// writes it into README.md between the embedding-pool markers.
//
// Run: bash bench/embedding-pool.sh   (builds pkg/ and the default bundle first)
import { ENGINE_NAMES, benchEngines, runBenchPage, updateBenchmarks } from './report.mjs';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const engines = benchEngines(['chromium', 'firefox']);
// `--query '?rounds=8'` (or `workers=2`): passed to the page.
const query = process.argv.includes('--query') ? process.argv[process.argv.indexOf('--query') + 1] : '';
const rows = [];
let texts;
for (const engine of engines) {
  const r = await runBenchPage(`bench/embedding-pool.html${query}`, { engine, timeoutMs: 1_800_000 });
  texts = r.texts;
  const pairs = (key) => r.pool.map((p, i) => r.alone[i][key] / p[key]);
  const s = (ms) => (ms / 1000).toFixed(1);
  rows.push(`| ${ENGINE_NAMES[engine]} ${r.version} | ${r.cores} | ${r.workers} | ${s(median(r.alone.map((x) => x.embeddingMs)))} s | ${s(median(r.pool.map((x) => x.embeddingMs)))} s \
| **${median(pairs('embeddingMs')).toFixed(2)}×** (${Math.min(...pairs('embeddingMs')).toFixed(2)}–${Math.max(...pairs('embeddingMs')).toFixed(2)}) \
| ${s(median(r.alone.map((x) => x.importMs)))} s / ${s(median(r.pool.map((x) => x.importMs)))} s |`);
}
const report = `Measured ${new Date().toISOString().slice(0, 10)} by \`bash bench/embedding-pool.sh\` (headless, through \`WorkerClassifier\`): \
an import of ${texts.toLocaleString('en')} real queries (the intents' training split as a person's corrections), its texts embedded by the \
classifier's worker with its embedding pool (the default: one fewer Web Worker than the cores, beside its own thread) or by the classifier's worker alone, alternating; medians of the rounds, the speedup the median of the \
per-round ratios (lowest–highest). The embedding is timed from the import's first progress event to its last, the pool's start (each worker \
loads the encoder from the bundle cache) included; the import from \`importData\` to its answer (checking the file, storing, the working head).

| browser | cores | pool workers | embedding, one thread | embedding, with the pool | speedup | import, one thread / with the pool |
|---|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}`;
console.log(report);
if (process.argv.includes('--update-readme')) {
  await updateBenchmarks('embedding-pool', report, new URL('../README.md', import.meta.url));
}
