// The demo page offline, in headless Chromium at a phone-sized viewport:
// one visit with the server up, then the server stops (nothing answers on
// its port, and the browser is set offline too) and the page is reloaded.
// It must start from this device — its service worker serves the page and
// the package, the library's bundle cache the model — and be used end to
// end: predict, correct, see the correction count at once, update, roll
// back.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../../scripts/serve.mjs';
import { launchEngine, typeAndPredict, waitReady } from './browser.mjs';

const served = await startServer();
const browser = await launchEngine('chromium');
let serverUp = true;
function stopServer() {
  serverUp = false;
  return new Promise((resolve) => {
    served.server.close(resolve);
    served.server.closeAllConnections();
  });
}
after(async () => {
  await browser.close();
  if (serverUp) await stopServer();
});

test('after one visit the demo starts and learns with the network off', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));

  // The first visit: the service worker takes control before the model
  // worker starts, so it keeps the worker, the glue and the .wasm as well.
  await page.goto(served.url);
  await waitReady(page);
  assert.equal(await page.getAttribute('body', 'data-offline'), 'ready');
  const kept = await page.evaluate(async () => {
    const cache = await caches.open('localtune-demo-v1');
    return (await cache.keys()).map((r) => new URL(r.url).pathname);
  });
  for (const path of ['/', '/app.js', '/style.css', '/pkg/client.js', '/pkg/worker.js', '/pkg/localtune.js']) {
    assert.ok(kept.includes(path), `${path} is kept for offline (kept: ${kept})`);
  }
  assert.ok(kept.some((p) => p.endsWith('.wasm')), `a .wasm is kept (kept: ${kept})`);
  assert.ok(!kept.some((p) => p.startsWith('/bundles/')), 'the bundle is left to the library\'s cache');

  // The network goes: nothing answers on the server's port any more.
  await stopServer();
  await context.setOffline(true);
  const requestsBefore = served.requests.length;
  await page.reload();
  await waitReady(page);
  assert.equal(served.requests.length, requestsBefore, 'the stopped server saw nothing');
  assert.match(await page.textContent('#offline'), /started from this device/);

  assert.equal(await typeAndPredict(page, 'what is the weather like tomorrow'), 'HassGetWeather');
  // A correction counts at once, offline as online.
  const text = 'will I need an umbrella in the afternoon';
  await typeAndPredict(page, text);
  await page.fill('#new-label', 'Umbrella');
  await page.click('#new-label-form button');
  await page.waitForFunction(() => document.getElementById('feedback-status').textContent.includes('1 pending'));
  assert.equal(await typeAndPredict(page, text), 'Umbrella');

  // An update trains and stores a version; rolling back returns the
  // shipped head.
  await page.click('#update');
  await page.waitForSelector('body[data-updating="false"][data-last-update]', { state: 'attached', timeout: 120_000 });
  assert.equal(await page.locator('#versions tr').count(), 2, 'shipped + the update');
  await page.click('button[data-version="1"]');
  await page.waitForFunction(() => document.body.dataset.currentVersion === '1');

  assert.match(await page.textContent('#network'), /0 network requests/);
  assert.ok(await page.isHidden('#error'), await page.textContent('#error'));
  assert.deepEqual(errors, []);
  await page.screenshot({ path: 'tests/artifacts/demo-offline.png', fullPage: true });
  await context.close();
});
