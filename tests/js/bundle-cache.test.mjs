// The bundle cache in headless Chromium: what a second visit downloads
// (counted by the server), an offline start after one visit, a changed
// bundle replacing the files it changed, a browser that refuses the Cache
// API, and the option that turns it off.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { openBrowser, openTestPage } from './browser.mjs';

const env = await openBrowser();
after(() => env.close());

const BUNDLE = new URL('../../bundles/default/', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('manifest.json', BUNDLE), 'utf8'));

/** The bundle files the server sent since `from`, and their bytes. */
function served(from) {
  const paths = env.requests.slice(from).filter((p) => p.startsWith('/bundles/default/'));
  const bytes = paths.reduce((sum, p) => sum + statSync(new URL(p.slice('/bundles/default/'.length), BUNDLE)).size, 0);
  return { files: paths.map((p) => p.slice('/bundles/default/'.length)).sort(), bytes };
}

const load = (page, options = {}) => page.evaluate(async (options) => {
  const progress = [];
  const c = await lt.Classifier.load('/bundles/default/', { autoUpdate: { enabled: false }, onLoadProgress: (p) => progress.push(p), ...options });
  return { label: c.predict('turn off the kitchen lights').label, cached: (await c.stats()).bundleCacheBytes, progress };
}, options);

const cacheKeys = (page) => page.evaluate(async () => {
  const names = (await caches.keys()).filter((n) => n.startsWith('localtune-bundle '));
  const keys = [];
  for (const name of names) keys.push(...(await (await caches.open(name)).keys()).map((r) => r.url));
  return { names, keys };
});

test('a second visit downloads only the manifest, and an offline one nothing', async () => {
  const context = await env.browser.newContext();
  const page = await openTestPage(context, env.url);
  let mark = env.requests.length;
  const first = await load(page, { storeName: 'cache-visits' });
  const firstVisit = served(mark);
  assert.ok(firstVisit.bytes > 20e6, `the first visit downloads the model (${firstVisit.bytes} bytes)`);
  assert.equal(first.label, 'HassTurnOff');
  assert.ok(first.cached > 20e6, `stats() counts the cached bytes (${first.cached})`);
  // onLoadProgress saw the bytes arrive, in pieces, up to the whole bundle.
  const last = first.progress.at(-1);
  assert.ok(first.progress.length > 10, `${first.progress.length} progress events`);
  assert.equal(last.loadedBytes, last.totalBytes);
  const manifestBytes = statSync(new URL('manifest.json', BUNDLE)).size;
  assert.equal(last.totalBytes, firstVisit.bytes - manifestBytes, 'every file but the manifest');
  assert.ok(first.progress.every((p) => !p.fromCache));

  await page.reload();
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  mark = env.requests.length;
  const second = await load(page, { storeName: 'cache-visits' });
  const secondVisit = served(mark);
  assert.deepEqual(secondVisit.files, ['manifest.json']);
  assert.equal(second.label, 'HassTurnOff');
  assert.ok(second.progress.length > 0 && second.progress.every((p) => p.fromCache));
  assert.equal(second.progress.at(-1).loadedBytes, last.totalBytes);
  console.log(`bundle bytes downloaded: first visit ${firstVisit.bytes}, second ${secondVisit.bytes}`);

  // Offline (the page is already here): the manifest comes from the cache too.
  await context.setOffline(true);
  mark = env.requests.length;
  const offline = await load(page, { storeName: 'cache-visits' });
  assert.deepEqual(served(mark).files, []);
  assert.equal(offline.label, 'HassTurnOff');
  await context.setOffline(false);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a changed bundle replaces the files it changed, and only those', async () => {
  const context = await env.browser.newContext();
  const page = await openTestPage(context, env.url);
  await load(page, { storeName: 'cache-changed' });
  const before = await cacheKeys(page);
  const key = (sha) => `https://bundle-cache.localtune.invalid/sha256/${sha}`;
  assert.ok(before.keys.includes(key(manifest.tokenizer.sha256)));

  // The next version of the bundle ships a tokenizer file that differs in
  // its bytes (the same vocabulary, reformatted) under a new name.
  const tokenizer = Buffer.from(JSON.stringify(JSON.parse(readFileSync(new URL(manifest.tokenizer.file, BUNDLE), 'utf8')), null, 1));
  const sha256 = createHash('sha256').update(tokenizer).digest('hex');
  const changed = { ...manifest, version: `${manifest.version}-next`, tokenizer: { file: 'tokenizer-next.json', sha256 } };
  await context.route('**/bundles/default/manifest.json', (route) => route.fulfill({ contentType: 'application/json', body: JSON.stringify(changed) }));
  await context.route('**/bundles/default/tokenizer-next.json', (route) => route.fulfill({ contentType: 'application/json', body: tokenizer }));
  const mark = env.requests.length;
  const next = await load(page, { storeName: 'cache-changed' });
  assert.equal(next.label, 'HassTurnOff');
  assert.deepEqual(served(mark).files, [], 'nothing else was downloaded again');
  const after = await cacheKeys(page);
  assert.ok(after.keys.includes(key(sha256)), 'the new file is kept');
  assert.ok(!after.keys.includes(key(manifest.tokenizer.sha256)), 'the old one is gone');
  assert.equal(after.keys.length, before.keys.length);
  await context.close();
});

test('a damaged cached file costs a download, not the load, and is repaired', async () => {
  const context = await env.browser.newContext();
  const page = await openTestPage(context, env.url);
  await load(page, { storeName: 'cache-damaged' });
  // Someone (a bug, a disk) changed the cached head's bytes: the load uses
  // cached copies unchecked, and the bundle's own sha256 check refuses it.
  const key = `https://bundle-cache.localtune.invalid/sha256/${manifest.head.sha256}`;
  await page.evaluate(async (key) => {
    const name = (await caches.keys()).find((n) => n.startsWith('localtune-bundle '));
    await (await caches.open(name)).put(key, new Response(new Uint8Array([1, 2, 3])));
  }, key);
  let mark = env.requests.length;
  const repaired = await load(page, { storeName: 'cache-damaged' });
  assert.equal(repaired.label, 'HassTurnOff');
  const again = served(mark).files;
  assert.ok(again.includes(manifest.head.file), `the head was fetched again (${again})`);
  // The entries that load used were rewritten from the network: the next
  // visit downloads only the manifest again.
  mark = env.requests.length;
  await load(page, { storeName: 'cache-damaged' });
  assert.deepEqual(served(mark).files, ['manifest.json']);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a browser that refuses the cache loads from the network; the option turns it off', async () => {
  const context = await env.browser.newContext();
  await context.addInitScript(() => {
    if (location.search.includes('refuse')) {
      CacheStorage.prototype.open = () => Promise.reject(new DOMException('refused', 'SecurityError'));
    }
  });
  const refusing = await openTestPage(context, env.url, '?refuse');
  const refused = await load(refusing, { storeName: 'cache-refused' });
  assert.equal(refused.label, 'HassTurnOff');
  assert.equal(refused.cached, 0);

  const page = await openTestPage(context, env.url);
  const off = await load(page, { storeName: 'cache-off', bundleCache: false });
  assert.equal(off.label, 'HassTurnOff');
  assert.equal(off.cached, 0);
  assert.deepEqual((await cacheKeys(page)).names, [], 'nothing was cached');
  await context.close();
});
