// What every benchmark driver (bench/*.mjs) does the same way: run its page
// in a browser (headless Chromium unless another engine is named) and
// collect the result, and write its table into docs/benchmarks.md between
// its markers.
import { readFile, writeFile } from 'node:fs/promises';
import { gzipSync, brotliCompressSync, constants as zlib } from 'node:zlib';
import { openBrowser } from '../tests/js/browser.mjs';

// Their own page, not README.md: the README stays a short introduction.
const BENCHMARKS = new URL('../docs/benchmarks.md', import.meta.url);

/** The engines' names in the reports. */
export const ENGINE_NAMES = { chromium: 'Chromium', firefox: 'Firefox ESR', webkit: 'WebKitGTK' };

/**
 * The engines a driver runs its page in: `--engines a,b` on its command
 * line, else `all`. Chromium is every report's reference, so it must be named.
 */
export function benchEngines(all) {
  const i = process.argv.indexOf('--engines');
  const engines = i < 0 ? all : process.argv[i + 1].split(',');
  if (!engines.includes('chromium')) throw new Error('--engines: Chromium is the reference, name it too');
  return engines;
}

/**
 * Opens `path` (under the project server) in a fresh browser of `engine`
 * (chromium, firefox or webkit: tests/js/engines.mjs), waits for the page to
 * set `window.benchResult` (or `window.benchError`), and returns the result
 * with the browser's version.
 */
export async function runBenchPage(path, { timeoutMs = 600_000, engine = 'chromium' } = {}) {
  console.error(`${engine}: running ${path}…`);
  const env = await openBrowser(engine);
  try {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await page.goto(`${env.url}${path}`);
    await page.waitForFunction(() => window.benchResult || window.benchError, null, { timeout: timeoutMs });
    const error = await page.evaluate(() => window.benchError);
    if (error) throw new Error(`${engine}: browser benchmark failed: ${error}`);
    const result = await page.evaluate(() => window.benchResult);
    result.version = await env.browser.version();
    result.engine = engine;
    return result;
  } finally {
    await env.close();
  }
}

/**
 * Replaces the text between `<!-- bench:NAME:start -->` and `…:end -->` in
 * `file` (docs/benchmarks.md unless given) with `report`.
 */
export async function updateBenchmarks(name, report, file = BENCHMARKS) {
  const text = String(await readFile(file));
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${file} has no bench:${name} markers`);
  await writeFile(file, `${text.slice(0, i + start.length)}\n${report}\n${text.slice(j)}`);
  console.error(`${file} updated`);
}

/** The old name, kept so that callers written before the move still work. */
export const updateReadme = updateBenchmarks;

/** A file's bytes as stored, and as gzip -9 and brotli 11 would send them. */
export const compressedSizes = (bytes) => ({
  raw: bytes.length,
  gzip: gzipSync(bytes, { level: 9 }).length,
  brotli: brotliCompressSync(bytes, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }).length,
});
