// The npm bundle tool's pool of worker threads: `buildBundleOnWorkers` on
// the intents CSV (the default bundle's data and flags) with one worker
// against one worker per core, alternating, in the same process. Prints
// the embedding time (from the tool's "read" line to its "embedded" line),
// the whole build, the ratios, and checks that every build wrote the same
// bytes.
//
// Run: bash scripts/build-pkg.sh && node bench/bundle-workers.mjs [rounds]
import { readFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { buildBundleOnWorkers } from '../pkg/bundle.js';

const root = new URL('../', import.meta.url);
const read = (p) => readFile(new URL(p, root));
const rounds = Number(process.argv[2] ?? 2);
const cores = availableParallelism();
const inputs = {
  encoder: await read('models/all-minilm-l6-v2-int8/model.onnx'),
  tokenizer: await read('models/all-minilm-l6-v2-int8/tokenizer.json'),
  data: await read('bench/data/home-assistant-intents-en.csv'),
  textColumn: 'text', labelColumn: 'intent', splitColumn: 'split',
};

async function build(threads) {
  const started = performance.now();
  let readAt = null;
  let embedded = null;
  let texts = null;
  const files = await buildBundleOnWorkers({
    ...inputs, threads,
    onProgress: (line) => {
      if (line.startsWith('read ')) readAt = performance.now();
      const done = /^embedded (\d+) texts$/.exec(line);
      if (done) [embedded, texts] = [performance.now(), Number(done[1])];
    },
  });
  return { embedMs: embedded - readAt, totalMs: performance.now() - started, files, texts };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[Math.floor((s.length - 1) / 2)] + s[Math.ceil((s.length - 1) / 2)]) / 2;
};
const results = { 1: [], [cores]: [] };
let reference = null;
for (let round = 0; round < rounds; round++) {
  for (const threads of round % 2 ? [cores, 1] : [1, cores]) {
    const r = await build(threads);
    reference ??= r.files;
    for (const [name, bytes] of reference) {
      if (Buffer.compare(bytes, r.files.get(name)) !== 0) throw new Error(`${name} differs on ${threads} workers`);
    }
    results[threads].push(r);
    console.error(`round ${round + 1}, ${threads} worker(s): embedding ${(r.embedMs / 1000).toFixed(1)} s, build ${(r.totalMs / 1000).toFixed(1)} s`);
  }
}
// The tool's own count (a CSV line count would miscount quoted newlines).
const texts = results[1][0].texts;
const one = { embed: median(results[1].map((r) => r.embedMs)), total: median(results[1].map((r) => r.totalMs)) };
const all = { embed: median(results[cores].map((r) => r.embedMs)), total: median(results[cores].map((r) => r.totalMs)) };
console.log(`| workers | embedding ${texts} texts | texts/s | whole build |
|---|---:|---:|---:|
| 1 | ${(one.embed / 1000).toFixed(1)} s | ${(texts / one.embed * 1000).toFixed(0)} | ${(one.total / 1000).toFixed(1)} s |
| ${cores} (one per core) | ${(all.embed / 1000).toFixed(1)} s | ${(texts / all.embed * 1000).toFixed(0)} | ${(all.total / 1000).toFixed(1)} s |
| speed-up | **${(one.embed / all.embed).toFixed(2)}×** | | ${(one.total / all.total).toFixed(2)}× |

Node ${process.versions.node}, ${cpus()[0].model}, ${cores} cores; median of ${rounds} alternating rounds; every build wrote the same bytes; peak RSS of the process ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB.`);
