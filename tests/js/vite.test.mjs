// The package the way most web apps consume it: imported by name in a Vite
// build (main thread and worker client), the output served and run in
// headless Chromium.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { openBrowser } from './browser.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = `${ROOT}tests/artifacts/vite-app`;

// The app's own node_modules holds the package as `npm install ./pkg` would.
await rm(APP, { recursive: true, force: true });
await mkdir(`${APP}/node_modules`, { recursive: true });
await cp(`${ROOT}tests/js/vite-app`, `${APP}/src`, { recursive: true });
await symlink(`${ROOT}pkg`, `${APP}/node_modules/localtune`, 'dir');

const env = await openBrowser();
after(() => env.close());

test('a Vite build imports localtune and localtune/client and predicts in Chromium', async () => {
  await build({
    root: `${APP}/src`,
    base: '/artifacts/vite-app/dist/',
    logLevel: 'warn',
    resolve: { preserveSymlinks: false },
    build: { outDir: `${APP}/dist`, emptyOutDir: true, target: 'es2022' },
    worker: { format: 'es' },
  });
  // Both wasm modules are assets of the build: init() picks one at run time.
  const wasm = (await readdir(`${APP}/dist/assets`)).filter((f) => f.endsWith('.wasm')).sort();
  assert.equal(wasm.length, 2, `wasm assets: ${wasm}`);
  assert.ok(wasm[0].startsWith('localtune_bg') && wasm[1].startsWith('localtune_relaxed_bg'), `wasm assets: ${wasm}`);
  const page = await env.browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${env.url}artifacts/vite-app/dist/index.html`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 120_000 });
  const result = await page.evaluate(() => window.result);
  assert.equal(result.error, undefined, result.error);
  assert.equal(result.main.label, 'HassMediaPause');
  assert.equal(result.relaxedSimd, true, 'the bundled init() chose the relaxed-SIMD module in Chromium');
  assert.deepEqual(result.worker, result.main, 'the worker predicts exactly what the main thread does');
  assert.deepEqual(errors, []);
  await page.close();
});
