// Shared by the page tests: the static server, and a browser of any of the
// three engines behind one page API (engines.mjs).
import { describe, before, after } from 'node:test';
import { startServer } from '../../scripts/serve.mjs';
import { ENGINES, launchEngine } from './engines.mjs';

export { CHROMIUM_ARGS, ENGINES, SUPPORTS, FEATURES, AGENT, launchEngine } from './engines.mjs';

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

/** The static server and a browser of `engine` (headless Chromium unless
 * named): `{ url, requests, browser, engine, close() }`. */
export async function openBrowser(engine = 'chromium') {
  const served = await startServer();
  const browser = await launchEngine(engine);
  return {
    ...served,
    browser,
    engine,
    async close() {
      await browser.close();
      await new Promise((r) => served.server.close(r));
    },
  };
}

/**
 * Runs `tests(env)` once per engine, each in a `describe` named after it,
 * with that engine's browser open around them: the same promises tested in
 * Chromium, Firefox and WebKit. `env` is filled in before the first test.
 */
export function inEveryEngine(tests, engines = ENGINES) {
  for (const engine of engines) {
    describe(engine, () => {
      const env = { engine };
      before(async () => Object.assign(env, await openBrowser(engine)));
      after(() => env.close?.());
      tests(env);
    });
  }
}

/**
 * A fresh profile of `env`'s engine with little storage for the test
 * server's origin: Chromium's quota for the origin through its DevTools
 * protocol (`chromiumBytes`); Firefox's for a whole profile through a
 * preference, in a second Firefox, and WebKit's through a second
 * WebKitWebDriver whose sessions run a browser of our own with the quota
 * set (`profileKb`, see engines.mjs). Resolves to `{ context, close() }`.
 */
export async function openStorageLimitedContext(env, { chromiumBytes, profileKb }) {
  if (env.engine === 'chromium') {
    const context = await env.browser.newContext();
    // The DevTools session needs a page; the override holds for the origin.
    const cdp = await context.newCDPSession(await context.newPage());
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(env.url).origin, quotaSize: chromiumBytes });
    return { context, close: () => context.close() };
  }
  const limited = await launchEngine(env.engine, { storageLimitKb: profileKb });
  const context = await limited.newContext();
  return {
    context,
    async close() {
      await context.close();
      await limited.close();
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
