// How long an app's page takes to start the classifier (instantiate the
// package, load the default bundle by URL) on a second visit, from the
// bundle cache — against, in the same browsers, the first visit (the
// network: here a server on loopback, so the download itself is nearly
// free) and a second visit with `bundleCache: false` (the browser's HTTP
// cache revalidating each file). Each run is a fresh browser profile with
// the three visits in that order; prints the medians and the ratios as
// JSON. Issue 17's target: a start from the cache under 1.0 s in Chromium.
//
// Usage: node bench/load-from-cache.mjs   (after bash scripts/test.sh pkg bundle)
import { openBrowser } from '../tests/js/browser.mjs';

const RUNS = 5;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const runs = { first: [], cached: [], httpCache: [] };
let version;
for (let i = 0; i < RUNS; i++) {
  const env = await openBrowser();
  try {
    version = env.browser.version();
    const context = await env.browser.newContext();
    const visit = async (query) => {
      const page = await context.newPage();
      await page.goto(`${env.url}bench/load.html${query}`);
      await page.waitForFunction(() => window.benchResult || window.benchError, null, { timeout: 300_000 });
      const error = await page.evaluate(() => window.benchError);
      if (error) throw new Error(error);
      const result = await page.evaluate(() => window.benchResult);
      await page.close();
      return result;
    };
    runs.first.push(await visit(''));
    runs.cached.push(await visit(''));
    runs.httpCache.push(await visit('?cache=0'));
  } finally {
    await env.close();
  }
}
const ms = Object.fromEntries(Object.entries(runs).map(([k, xs]) => [k, median(xs.map((r) => r.ms))]));
const bytes = Object.fromEntries(Object.entries(runs).map(([k, xs]) => [k, median(xs.map((r) => r.transferred))]));
console.log(JSON.stringify({
  chromium: version,
  runs: RUNS,
  medianMs: ms,
  bundleBytesTransferred: bytes,
  // Where a start from the cache goes: init() done, then every bundle byte
  // read (the rest is checking the sha256s, loading the compiled encoder and
  // the tokenizer, opening the store).
  cachedPhasesMs: {
    init: median(runs.cached.map((r) => r.initMs)),
    bytesRead: median(runs.cached.map((r) => r.bytesMs)),
  },
  cachedVsFirstVisit: ms.cached / ms.first,
  cachedVsHttpCache: ms.cached / ms.httpCache,
}, null, 2));
