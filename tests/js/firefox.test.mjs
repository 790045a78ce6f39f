// The library in a real page of Firefox ESR, driven over WebDriver BiDi
// with puppeteer-core (playwright-core 1.65 drives stock Chromium only:
// its Firefox channel fails on ESR 153 with "emulation.setMediaFeaturesOverride:
// unknown command"). What the wasm tests cannot show from inside one page:
// init()'s choice of module in this engine, a correction that counts at
// once, and IndexedDB keeping it across a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import puppeteer from 'puppeteer-core';
import { startServer } from '../../scripts/serve.mjs';
import { openTestPage } from './browser.mjs';
import { teachOnce, afterReload } from './engine-pages.mjs';

const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
let served;
let browser;

before(async () => {
  served = await startServer();
  browser = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true });
});

after(async () => {
  await browser?.close();
  await new Promise((r) => served.server.close(r));
});

test('in Firefox: the relaxed module, a correction that counts at once, and a reload that keeps it', async () => {
  // browser.mjs's helper, given puppeteer's browser: the same page calls.
  const page = await openTestPage(browser, served.url);
  const agent = await page.evaluate(() => navigator.userAgent);
  assert.match(agent, /Firefox\//, agent);

  const text = 'how many steps did I walk today';
  const taught = await page.evaluate(teachOnce, text);
  // Firefox validates relaxed SIMD, so init() gives it the relaxed module.
  assert.equal(taught.relaxed, true);
  assert.notEqual(taught.before, 'Fitness');
  assert.equal(taught.after, 'Fitness', 'the correction counts before the next prediction');
  assert.equal(taught.stored, 1);

  await page.reload();
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  const reloaded = await page.evaluate(afterReload, text);
  assert.deepEqual(reloaded, { label: 'Fitness', stored: 1 }, 'IndexedDB kept the correction');
  assert.deepEqual(page.errors, []);
  await page.close();
});
