// The demo page, as the README's main command serves it, in headless Chromium:
// it loads the encoder with progress, embeds a typed sentence, shows the
// time, and fetches nothing but its own assets from 127.0.0.1.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { openBrowser } from './browser.mjs';

const env = await openBrowser();
after(() => env.close());

test('the demo page embeds a typed sentence and shows the time', async () => {
  const page = await env.browser.newPage({ viewport: { width: 390, height: 844 } });
  const origins = new Set();
  page.on('request', (r) => origins.add(new URL(r.url()).origin));
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));

  await page.goto(env.url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
  assert.match(await page.textContent('#simd'), /simd128 on/);
  assert.match(await page.textContent('#model-sha'), /^8199be6f/);

  const before = Number(await page.getAttribute('body', 'data-embedded'));
  await page.fill('#text', '请把客厅的灯关掉 🔥 and set the temperature to 21 degrees');
  await page.click('#embed');
  await page.waitForFunction((n) => Number(document.body.dataset.embedded) > n, before);
  assert.equal(await page.textContent('#result-dim'), '384 floats');
  assert.equal(await page.textContent('#result-norm'), '1.0000');
  assert.match(await page.textContent('#result-time'), /^\d+(\.\d)? ms$/);
  assert.equal(await page.isHidden('#error'), true);

  // An empty text still gives a vector.
  await page.fill('#text', '');
  await page.click('#embed');
  await page.waitForFunction(() => document.getElementById('result-tokens').textContent === '2');
  assert.equal(await page.textContent('#result-norm'), '1.0000');

  await mkdir('tests/artifacts', { recursive: true });
  await page.screenshot({ path: 'tests/artifacts/demo.png', fullPage: true });
  assert.deepEqual([...origins], [new URL(env.url).origin]);
  assert.deepEqual(errors, []);
  await page.close();
});
