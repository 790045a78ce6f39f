// The three browser engines behind one page API, so that a page test is
// written once and runs in each: Chromium through playwright-core (its own
// Page), Firefox ESR through puppeteer-core over WebDriver BiDi, WebKitGTK
// through classic WebDriver (Debian's WebKitWebDriver and its MiniBrowser,
// under Xvfb). The API is the part of Playwright's Page the tests use; where
// an engine's driver cannot do something (Chromium's DevTools protocol,
// watching requests over classic WebDriver), `supports` says so and the
// test states what it checks instead.
//
// LOCALTUNE_JS_ENGINES=chromium,webkit picks engines for a local run; the
// test suite runs all three.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

export const ENGINES = (process.env.LOCALTUNE_JS_ENGINES ?? 'chromium,firefox,webkit').split(',');

// One list of Chromium flags for every browser test: the one the wasm tests'
// webdriver.json gives chromedriver.
export const CHROMIUM_ARGS = JSON.parse(
  readFileSync(new URL('../../webdriver.json', import.meta.url), 'utf8'),
)['goog:chromeOptions'].args;

/** How every Chromium the tests and benchmarks use is started (Playwright's
 * launch options; also a persistent profile's, in bench/load-from-cache.mjs). */
export const CHROMIUM_LAUNCH = {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: CHROMIUM_ARGS,
};

/** What each engine's driver can do beyond the common API. (Every engine
 * can give a profile next to no storage: browser.mjs,
 * openStorageLimitedContext.) */
export const SUPPORTS = {
  // Chromium's DevTools protocol: quota overrides.
  chromium: { cdp: true, requestEvents: true, exposeFunction: true },
  firefox: { cdp: false, requestEvents: true, exposeFunction: false },
  webkit: { cdp: false, requestEvents: false, exposeFunction: false },
};

/**
 * What each engine offers a page that the library uses when it is there,
 * checked against the page by the tests (so an engine that gains one fails
 * until this says so): relaxed SIMD (else init() loads the simd128 module),
 * the StorageManager (navigator.storage: persist() and the usage estimate;
 * else stats() reports them as unknown), the Battery Status API (else
 * onlyWhileCharging cannot hold an update back), SharedArrayBuffer on the
 * test server's cross-origin-isolated pages (else the worker client's cancel
 * reaches the worker as a message, when its training ends).
 */
export const FEATURES = {
  chromium: { relaxedSimd: true, storageManager: true, battery: true, sharedMemory: true },
  firefox: { relaxedSimd: true, storageManager: true, battery: false, sharedMemory: true },
  webkit: { relaxedSimd: false, storageManager: false, battery: false, sharedMemory: false },
};

/** The user agent of each engine, as the page reports it. */
export const AGENT = {
  chromium: /Chrome\//,
  firefox: /Firefox\//,
  webkit: /AppleWebKit\/(?!.*(Chrome|Firefox)\/)/,
};

/**
 * Starts `engine`: a browser with `newContext(options)`, `version()` (a
 * promise in Firefox; in WebKit once a context is open) and `close()`,
 * where a context is a fresh profile with `newPage()` and `close()`.
 * `storageLimitKb` (Firefox, WebKit) caps the storage of each profile.
 */
export async function launchEngine(engine, { storageLimitKb } = {}) {
  if (storageLimitKb !== undefined && engine === 'chromium') {
    throw new Error(`${engine}: no storage limit at launch (Chromium's is per origin, over CDP)`);
  }
  switch (engine) {
    case 'chromium':
      // Playwright's own Browser: the API the others imitate.
      return chromium.launch(CHROMIUM_LAUNCH);
    case 'firefox': {
      const browser = await puppeteer.launch({
        browser: 'firefox',
        executablePath: process.env.FIREFOX ?? '/usr/bin/firefox-esr',
        headless: true,
        extraPrefsFirefox: {
          // navigator.storage.persist() asks the user in Firefox, and a
          // headless one never answers: these prefs answer "allow", as a
          // person would who wants the page to keep what it learns.
          'dom.storageManager.prompt.testing': true,
          'dom.storageManager.prompt.testing.allow': true,
          ...(storageLimitKb === undefined ? {} : {
            'dom.quotaManager.temporaryStorage.fixedLimit': storageLimitKb,
          }),
        },
      });
      return {
        name: engine,
        version: async () => (await browser.version()).replace(/^firefox\//, ''),
        async newContext(options = {}) {
          return new PuppeteerContext(await browser.createBrowserContext(), options);
        },
        close: () => browser.close(),
      };
    }
    case 'webkit':
      return launchWebKit({ storageLimitKb });
    default:
      throw new Error(`unknown engine ${engine}`);
  }
}

// ---------------------------------------------------------------- Firefox

class PuppeteerContext {
  constructor(context, { viewport } = {}) {
    this.context = context;
    this.viewport = viewport;
  }

  async newPage() {
    const page = await this.context.newPage();
    if (this.viewport) await page.setViewport(this.viewport);
    return new PuppeteerPage(page);
  }

  close() {
    return this.context.close();
  }
}

class PuppeteerPage {
  constructor(page) {
    this.page = page;
  }

  on(event, handler) {
    // Playwright's request objects have url() too; dialogs accept().
    this.page.on(event, handler);
  }

  once(event, handler) {
    this.page.once(event, handler);
  }

  goto(url) {
    return this.page.goto(url);
  }

  reload() {
    return this.page.reload();
  }

  evaluate(body, arg) {
    return this.page.evaluate(body, arg);
  }

  async waitForSelector(selector, { timeout = 30_000 } = {}) {
    await this.page.waitForSelector(selector, { timeout });
  }

  async waitForFunction(body, arg, { timeout = 30_000 } = {}) {
    await this.page.waitForFunction(body, { timeout, polling: 50 }, arg);
  }

  click(selector) {
    return this.page.click(selector);
  }

  dblclick(selector) {
    return this.page.click(selector, { count: 2 });
  }

  fill(selector, text) {
    return this.page.evaluate(fillInPage, { selector, text });
  }

  $$eval(selector, body) {
    return this.page.$$eval(selector, body);
  }

  textContent(selector) {
    return this.page.$eval(selector, (e) => e.textContent);
  }

  getAttribute(selector, name) {
    return this.page.$eval(selector, (e, n) => e.getAttribute(n), name);
  }

  inputValue(selector) {
    return this.page.$eval(selector, (e) => e.value);
  }

  isHidden(selector) {
    return this.page.evaluate(isHiddenInPage, selector);
  }

  locator(selector) {
    return { count: () => this.page.$$eval(selector, (es) => es.length) };
  }

  screenshot(options) {
    return this.page.screenshot(options);
  }

  close(options) {
    return this.page.close(options);
  }
}

// ---------------------------------------------------------------- in page

/** Playwright's fill: focus, replace the value, fire `input` (and `change`),
 * the same in every engine (typing 100 KB key by key would take minutes). */
function fillInPage({ selector, text }) {
  const box = document.querySelector(selector);
  if (!box) throw new Error(`no element matches ${selector}`);
  box.focus();
  box.value = text;
  box.dispatchEvent(new Event('input', { bubbles: true }));
  box.dispatchEvent(new Event('change', { bubbles: true }));
}

/** Playwright's isHidden: absent, or without a box, or visibility hidden. */
function isHiddenInPage(selector) {
  const e = document.querySelector(selector);
  return !e || e.getClientRects().length === 0 || getComputedStyle(e).visibility === 'hidden';
}

// ---------------------------------------------------------------- WebKit

/** Collects a page's uncaught errors in window.__pageErrors (the same
 * source as tests/js/pages/bare.html's first script). */
export const COLLECT_ERRORS = `if (!window.__pageErrors) {
  window.__pageErrors = [];
  addEventListener('error', (e) => window.__pageErrors.push(String(e.error ?? e.message)));
  addEventListener('unhandledrejection', (e) => window.__pageErrors.push(String(e.reason)));
}`;

// Classic WebDriver's key for an element reference.
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

async function freePort() {
  const probe = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => probe.once('listening', r));
  const { port } = probe.address();
  await new Promise((r) => probe.close(r));
  return port;
}

/** WebKitWebDriver (under xvfb-run) on a free port, answering. */
async function startWebKitDriver() {
  const port = await freePort();
  // Its own process group: xvfb-run leaves Xvfb and the driver running when
  // only it is stopped, so close() stops the whole group.
  const child = spawn(
    'xvfb-run',
    ['--auto-servernum', process.env.WEBKIT_WEBDRIVER ?? '/usr/bin/WebKitWebDriver', `--port=${port}`],
    { stdio: 'ignore', detached: true },
  );
  const driver = new WebDriver(`http://127.0.0.1:${port}`);
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      await driver.command('GET', '/status');
      break;
    } catch (e) {
      if (Date.now() > until) {
        process.kill(-child.pid, 'SIGTERM');
        throw new Error(`WebKitWebDriver did not start: ${e}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { child, driver };
}

/**
 * The browser a WebKit session runs in: MiniBrowser (WebKitWebDriver's
 * default), or with `storageLimitKb`, tests/js/webkit-storage-browser.py on
 * a fresh data directory whose quota is that many KB: WebKit's quota is a
 * share of the volume holding the data, so the share is worked out from
 * that volume's size. Resolves to `{ capabilities, remove() }`.
 */
async function webKitBrowser(storageLimitKb) {
  if (storageLimitKb === undefined) return { capabilities: {}, remove: async () => {} };
  const dataDir = await mkdtemp(join(tmpdir(), 'localtune-webkit-'));
  const { blocks, bsize } = await statfs(dataDir);
  const share = (storageLimitKb * 1024) / (blocks * bsize);
  return {
    capabilities: {
      'webkitgtk:browserOptions': {
        binary: fileURLToPath(new URL('./webkit-storage-browser.py', import.meta.url)),
        args: [`--data-dir=${dataDir}`, `--origin-storage-ratio=${share}`, `--total-storage-ratio=${share}`],
      },
    },
    remove: () => rm(dataDir, { recursive: true, force: true }),
  };
}

async function launchWebKit({ storageLimitKb } = {}) {
  let { child, driver } = await startWebKitDriver();
  const contexts = new Set();
  let version;
  return {
    name: 'webkit',
    /** WebKitGTK's version, as the last session reported it. */
    version: () => version,
    async newContext(options = {}) {
      // WebKitWebDriver runs one session at a time: a context that a failed
      // test left open is closed, so that the next test can start.
      for (const left of contexts) await left.close();
      const browser = await webKitBrowser(storageLimitKb);
      const open = () => WebDriverContext.open(driver, { ...options, capabilities: browser.capabilities });
      let context;
      try {
        context = await open();
      } catch (e) {
        if (e.name !== 'TimeoutError') {
          await browser.remove();
          throw e;
        }
        // Once in a CI run, WebKitWebDriver never answered a new session
        // after the previous one had closed (the test failed when fetch gave
        // up, at 300 s). A new driver answers: start one and ask again.
        process.kill(-child.pid, 'SIGTERM');
        ({ child, driver } = await startWebKitDriver());
        context = await open().catch(async (again) => {
          await browser.remove();
          throw again;
        });
      }
      version = context.browserVersion;
      contexts.add(context);
      context.closed = async () => {
        contexts.delete(context);
        await browser.remove();
      };
      return context;
    },
    async close() {
      for (const context of contexts) await context.close().catch(() => {});
      process.kill(-child.pid, 'SIGTERM');
    },
  };
}

class WebDriver {
  constructor(base) {
    this.base = base;
  }

  /** One command; resolves to its `value`, throws its error (a
   * `TimeoutError` if `timeoutMs` is given and passes first). */
  async command(method, path, body, { timeoutMs } = {}) {
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs),
    });
    const { value } = await res.json();
    if (!res.ok) throw new Error(`WebDriver ${method} ${path}: ${value?.error}: ${value?.message}`);
    return value;
  }
}

// A new session (a MiniBrowser starting) takes a few seconds; past this the
// driver is taken to be stuck (see launchWebKit's newContext).
const SESSION_START_MS = 90_000;

/** A WebDriver session: a browser of its own, so a fresh profile. Its
 * pages are its windows; each command switches to its page's window. */
class WebDriverContext {
  static async open(driver, { viewport, capabilities: asked = {} } = {}) {
    const { sessionId, capabilities } = await driver.command('POST', '/session', {
      // Dialogs stay open until a test answers them (see WebDriverPage.once).
      capabilities: { alwaysMatch: { unhandledPromptBehavior: 'ignore', ...asked } },
    }, { timeoutMs: SESSION_START_MS });
    const context = new WebDriverContext(driver, sessionId, viewport);
    context.browserVersion = capabilities.browserVersion;
    await context.command('POST', '/timeouts', { script: 300_000 });
    context.unused = await context.command('GET', '/window');
    return context;
  }

  constructor(driver, session, viewport) {
    this.driver = driver;
    this.session = session;
    this.viewport = viewport;
    this.current = null;
    this.pages = new Set();
  }

  command(method, path, body) {
    return this.driver.command(method, `/session/${this.session}${path}`, body);
  }

  async newPage() {
    let handle = this.unused;
    this.unused = null;
    if (!handle) ({ handle } = await this.command('POST', '/window/new', { type: 'tab' }));
    const page = new WebDriverPage(this, handle);
    this.pages.add(page);
    await page.focus();
    if (this.viewport) await this.command('POST', '/window/rect', this.viewport);
    return page;
  }

  async close() {
    await this.command('DELETE', '').catch(() => {});
    await this.closed?.();
  }
}

class WebDriverPage {
  constructor(context, handle) {
    this.context = context;
    this.handle = handle;
    this.dialogHandler = null;
    this.errorHandlers = [];
  }

  async focus() {
    if (this.context.current === this.handle) return;
    await this.context.command('POST', '/window', { handle: this.handle });
    this.context.current = this.handle;
  }

  async command(method, path, body) {
    await this.focus();
    return this.context.command(method, path, body);
  }

  /** 'pageerror' only: uncaught errors and rejections, which the page
   * collects (from its start on test pages that install the collector,
   * tests/js/pages/bare.html; else from the first command) and hands over
   * with each command's answer. */
  on(event, handler) {
    if (event !== 'pageerror') throw new Error(`classic WebDriver reports no ${event} events`);
    this.errorHandlers.push(handler);
  }

  /** A dialog the next click opens is given to `handler` (accept/dismiss). */
  once(event, handler) {
    if (event !== 'dialog') throw new Error(`classic WebDriver reports no ${event} events`);
    this.dialogHandler = handler;
  }

  async goto(url) {
    await this.command('POST', '/url', { url });
  }

  async reload() {
    await this.command('POST', '/refresh', {});
  }

  /**
   * Runs `body` (a function, sent as its source, or an expression string) in
   * the page with `arg`; resolves to what it returns, awaited, as JSON.
   */
  async evaluate(body, arg) {
    const call = typeof body === 'function' ? `(${body.toString()})(arguments[0])` : `(${body})`;
    const out = await this.command('POST', '/execute/async', {
      script: `const done = arguments[arguments.length - 1];
        ${COLLECT_ERRORS}
        const errors = () => window.__pageErrors.splice(0);
        Promise.resolve().then(() => ${call})
          .then((value) => done({ value, errors: errors() }),
            (e) => done({ error: (e && e.name ? e.name + ': ' : '') + String(e && e.message || e), errors: errors() }));`,
      args: [arg === undefined ? null : arg],
    });
    for (const error of out.errors ?? []) for (const handler of this.errorHandlers) handler(new Error(error));
    if (out.error) throw new Error(out.error);
    return out.value;
  }

  async waitForFunction(body, arg, { timeout = 30_000 } = {}) {
    const until = Date.now() + timeout;
    while (!(await this.evaluate(body, arg))) {
      if (Date.now() > until) throw new Error(`timed out after ${timeout} ms waiting for ${body}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  waitForSelector(selector, options) {
    return this.waitForFunction((s) => document.querySelector(s) !== null, selector, options);
  }

  async element(selector) {
    const found = await this.command('POST', '/element', { using: 'css selector', value: selector });
    return found[ELEMENT];
  }

  async click(selector) {
    const element = await this.element(selector);
    await this.command('POST', `/element/${element}/click`, {});
    if (this.dialogHandler) await this.answerDialog();
  }

  async dblclick(selector) {
    // Pointer actions do not scroll, as a click does: bring it into view.
    await this.evaluate((s) => document.querySelector(s).scrollIntoView({ block: 'center' }), selector);
    const element = await this.element(selector);
    await this.command('POST', '/actions', {
      actions: [{
        type: 'pointer',
        id: 'mouse',
        parameters: { pointerType: 'mouse' },
        actions: [
          { type: 'pointerMove', origin: { [ELEMENT]: element }, x: 0, y: 0 },
          { type: 'pointerDown', button: 0 }, { type: 'pointerUp', button: 0 },
          { type: 'pointerDown', button: 0 }, { type: 'pointerUp', button: 0 },
        ],
      }],
    });
  }

  async answerDialog() {
    const handler = this.dialogHandler;
    this.dialogHandler = null;
    const until = Date.now() + 10_000;
    for (;;) {
      try {
        await this.command('GET', '/alert/text');
        break;
      } catch (e) {
        if (Date.now() > until) throw new Error(`the click opened no dialog: ${e.message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await handler({
      accept: () => this.command('POST', '/alert/accept', {}),
      dismiss: () => this.command('POST', '/alert/dismiss', {}),
    });
  }

  fill(selector, text) {
    return this.evaluate(fillInPage, { selector, text });
  }

  $$eval(selector, body) {
    return this.evaluate(`(${body.toString()})(Array.from(document.querySelectorAll(${JSON.stringify(selector)})))`);
  }

  textContent(selector) {
    return this.evaluate((s) => document.querySelector(s).textContent, selector);
  }

  getAttribute(selector, name) {
    return this.evaluate(({ s, n }) => document.querySelector(s).getAttribute(n), { s: selector, n: name });
  }

  inputValue(selector) {
    return this.evaluate((s) => document.querySelector(s).value, selector);
  }

  isHidden(selector) {
    return this.evaluate(isHiddenInPage, selector);
  }

  locator(selector) {
    return { count: () => this.evaluate((s) => document.querySelectorAll(s).length, selector) };
  }

  async screenshot({ path }) {
    const png = await this.command('GET', '/screenshot');
    await writeFile(path, Buffer.from(png, 'base64'));
  }

  /** Closes the tab (no beforeunload handlers run: WebDriver closes it).
   * Closing a session's last window would end the session, so a blank one
   * is opened first for the context's next page. */
  async close() {
    if (this.context.pages.size === 1 && !this.context.unused) {
      ({ handle: this.context.unused } = await this.command('POST', '/window/new', { type: 'tab' }));
    }
    await this.command('DELETE', '/window');
    this.context.current = null;
    this.context.pages.delete(this);
  }
}
