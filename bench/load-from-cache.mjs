// How long an app's page takes to start the classifier (instantiate the
// package, load the default bundle by URL) on a second visit, from the
// bundle cache — against, in the same browsers, the first visit (the
// network: here a server on loopback, so the download itself is nearly
// free) and a second visit with `bundleCache: false` (the browser's HTTP
// cache revalidating each file). Each run is a fresh browser with the three
// visits in that order, in a private-window profile (Playwright's context:
// in memory, without the code cache Chromium keeps for a module it has
// optimised); then two visits in a profile on disk, as a returning
// visitor's browser has: the second of those is `cachedOnDisk`. Prints the
// medians and the ratios as JSON. Issue 17's target: a start from the
// cache under 1.0 s in Chromium.
//
// Usage: node bench/load-from-cache.mjs   (after bash scripts/test.sh pkg bundle)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM_LAUNCH } from '../tests/js/engines.mjs';
import { openBrowser } from '../tests/js/browser.mjs';

const RUNS = 5;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const runs = { first: [], cached: [], httpCache: [], cachedOnDisk: [] };
let version;
/** One visit of bench/load.html in `context`: its result. */
async function visit(context, url, query = '') {
  const page = await context.newPage();
  await page.goto(`${url}bench/load.html${query}`);
  await page.waitForFunction(() => window.benchResult || window.benchError, null, { timeout: 300_000 });
  const error = await page.evaluate(() => window.benchError);
  if (error) throw new Error(error);
  const result = await page.evaluate(() => window.benchResult);
  await page.close();
  return result;
}
for (let i = 0; i < RUNS; i++) {
  const env = await openBrowser();
  try {
    version = env.browser.version();
    const context = await env.browser.newContext();
    runs.first.push(await visit(context, env.url));
    runs.cached.push(await visit(context, env.url));
    runs.httpCache.push(await visit(context, env.url, '?cache=0'));
    const profile = await mkdtemp(join(tmpdir(), 'localtune-load-'));
    const onDisk = await chromium.launchPersistentContext(profile, CHROMIUM_LAUNCH);
    try {
      await visit(onDisk, env.url);
      runs.cachedOnDisk.push(await visit(onDisk, env.url));
    } finally {
      await onDisk.close();
      await rm(profile, { recursive: true, force: true });
    }
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
  cachedOnDiskPhasesMs: {
    init: median(runs.cachedOnDisk.map((r) => r.initMs)),
    bytesRead: median(runs.cachedOnDisk.map((r) => r.bytesMs)),
  },
  cachedVsFirstVisit: ms.cached / ms.first,
  cachedVsHttpCache: ms.cached / ms.httpCache,
}, null, 2));
