// Shared by the page tests: the static server and headless Debian Chromium.
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startServer } from '../../scripts/serve.mjs';

// One list of Chromium flags for every browser test: the one the wasm tests'
// webdriver.json gives chromedriver.
export const CHROMIUM_ARGS = JSON.parse(
  readFileSync(new URL('../../webdriver.json', import.meta.url), 'utf8'),
)['goog:chromeOptions'].args;

/**
 * Opens the bare test page (tests/js/pages/bare.html: the built package as
 * window.lt) in `context`; `page.errors` collects uncaught page errors.
 * `query` (say `?module=localtune_bg.wasm`) goes to the page.
 */
export async function openTestPage(context, url, query = '') {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e));
  await page.goto(`${url}test-pages/bare.html${query}`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 60_000 });
  return page;
}

export async function openBrowser() {
  const served = await startServer();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
  return {
    ...served,
    browser,
    async close() {
      await browser.close();
      await new Promise((r) => served.server.close(r));
    },
  };
}

/** Waits until the demo page says it is ready; `page.ready` marks it. */
export async function waitReady(page) {
  page.ready = false;
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 120_000 });
  page.ready = true;
}

/** Types `text` into the demo page and resolves to the label it predicts. */
export async function typeAndPredict(page, text) {
  const before = Number(await page.getAttribute('body', 'data-predictions'));
  await page.fill('#text', text);
  await page.waitForFunction((n) => Number(document.body.dataset.predictions) > n, before);
  return page.textContent('#prediction');
}
