// What a first visit downloads: localtune (the package's module and glue,
// the default bundle) against Transformers.js's feature-extraction pipeline
// on the same model file, each in a fresh headless Chromium profile with
// nothing cached (bench/first-visit.html). Counts every request the server
// answered (workers' included, which the page's resource timing misses) and
// sizes each file raw, gzip -9 and brotli 11: what a server that compresses
// would send. Checks that both libraries embed a sentence alike (cosine), so
// the comparison is of the same model.
//
// Usage: bash bench/first-visit.sh [--update-readme]
import { readFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { openBrowser } from '../tests/js/browser.mjs';
import { resolvePath } from '../scripts/serve.mjs';
import { compressedSizes, updateBenchmarks } from './report.mjs';
import { initSync } from '../pkg/localtune.js';
import * as localtune from '../pkg/localtune.js';

const SENTENCE = 'pause the music in the kitchen';

async function visit(lib) {
  const env = await openBrowser('chromium');
  try {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await page.goto(`${env.url}bench/first-visit.html?lib=${lib}`);
    await page.waitForFunction(() => window.benchResult || window.benchError, null, { timeout: 300_000 });
    const error = await page.evaluate(() => window.benchError);
    if (error) throw new Error(`${lib}: ${error}`);
    const result = await page.evaluate(() => window.benchResult);
    result.version = await env.browser.version();
    // Everything but the benchmark page itself and the browser's icon request.
    result.paths = env.requests.filter((p) => !p.startsWith('/bench/') && p !== '/favicon.ico');
    return result;
  } finally {
    await env.close();
  }
}

const sizeCache = new Map();
async function sizes(path) {
  let file = resolvePath(path);
  if (!file) throw new Error(`the server does not serve ${path}`);
  try {
    if (statSync(file).isDirectory()) file = join(file, 'index.html');
    statSync(file);
  } catch {
    // The server answered 404: nothing but the error text was sent.
    return { path, missing: true, raw: 0, gzip: 0, brotli: 0 };
  }
  if (!sizeCache.has(file)) {
    sizeCache.set(file, compressedSizes(await readFile(file)));
  }
  return { path, ...sizeCache.get(file) };
}

async function account(result) {
  const files = await Promise.all(result.paths.map(sizes));
  const total = (k) => files.reduce((s, f) => s + f[k], 0);
  return { files, requests: files.length, raw: total('raw'), gzip: total('gzip'), brotli: total('brotli') };
}

/** localtune's vector of SENTENCE, in Node, from the default bundle. */
async function localtuneVector() {
  initSync({ module: await readFile(localtune.defaultWasmUrl()) });
  const encoder = localtune.Encoder.fromCompiled(
    await readFile('bundles/default/encoder.compiled.tar'),
    await readFile('bundles/default/tokenizer.json'),
  );
  return Array.from(encoder.embed([SENTENCE]));
}

const ours = await visit('localtune');
const theirs = await visit('transformers');
const [a, b] = [await account(ours), await account(theirs)];
const reference = await localtuneVector();
const cosine = reference.reduce((s, x, i) => s + x * theirs.vector[i], 0)
  / Math.hypot(...reference) / Math.hypot(...theirs.vector);
if (!(cosine > 0.99)) throw new Error(`the two libraries embed differently (cosine ${cosine}): not the same model?`);

const tjsVersion = JSON.parse(await readFile(
  'bench/results/transformers-js/node_modules/@huggingface/transformers/package.json',
)).version;
const mb = (b) => (b / 1e6).toFixed(1);
const largest = (acc) => [...acc.files].sort((x, y) => y.raw - x.raw).slice(0, 3)
  .map((f) => `${f.path.split('/').pop()} ${mb(f.raw)}`).join(', ');
const report = `Measured ${new Date().toISOString().slice(0, 10)} by \`bash bench/first-visit.sh\` in headless Chromium ${ours.version}, a fresh profile per library, nothing cached: every file the server sent (requests from workers included), sized as stored, gzip -9 and brotli 11 (what a compressing server sends; ours sends files as stored). Transformers.js ${tjsVersion}: \`pipeline('feature-extraction', …, { dtype: 'q8' })\` on the same model file, its default onnxruntime-web module served locally instead of from its CDN; its vector and localtune's agree (cosine ${cosine.toFixed(4)}).

| first visit | requests | raw (MB) | gzip (MB) | brotli (MB) | largest files (MB raw) |
|---|---:|---:|---:|---:|---|
| localtune: \`init()\` + \`Classifier.load\` of the default bundle (encoder, tokenizer, head, rehearsal and check vectors) | ${a.requests} | ${mb(a.raw)} | ${mb(a.gzip)} | ${mb(a.brotli)} | ${largest(a)} |
| Transformers.js: the feature-extraction pipeline (no classifier head) | ${b.requests} | ${mb(b.raw)} | ${mb(b.gzip)} | ${mb(b.brotli)} | ${largest(b)} |
| ratio, localtune ÷ Transformers.js | | ${(a.raw / b.raw).toFixed(2)}× | ${(a.gzip / b.gzip).toFixed(2)}× | ${(a.brotli / b.brotli).toFixed(2)}× | |`;
console.log(report);
console.error(JSON.stringify({ localtune: a.files, transformers: b.files }, null, 1));
if (process.argv.includes('--update-readme')) await updateBenchmarks('first-visit', report);
