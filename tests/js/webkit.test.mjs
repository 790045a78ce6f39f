// The library in a real page of WebKitGTK — the engine of Safari and of
// every browser on an iPhone — driven over classic WebDriver: Debian's
// WebKitWebDriver starts its MiniBrowser, under Xvfb (it needs a display).
// What the wasm tests cannot show from inside one page: init()'s choice of
// module in this engine (JavaScriptCore refuses relaxed SIMD, so the
// simd128 one), a correction that counts at once, and IndexedDB keeping it
// across a reload. The WebDriver client is the few commands this needs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { startServer } from '../../scripts/serve.mjs';
import { teachOnce, afterReload } from './engine-pages.mjs';

const DRIVER = process.env.WEBKIT_WEBDRIVER ?? '/usr/bin/WebKitWebDriver';
let served;
let driver;
let session;

async function freePort() {
  const probe = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => probe.once('listening', r));
  const { port } = probe.address();
  await new Promise((r) => probe.close(r));
  return port;
}

/** One WebDriver command; resolves to its `value`, throws its error. */
async function command(method, path, body) {
  const res = await fetch(`${driver.base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const { value } = await res.json();
  if (!res.ok) throw new Error(`WebDriver ${method} ${path}: ${value?.error}: ${value?.message}`);
  return value;
}

const run = (script, ...args) => command('POST', `/session/${session}/execute/sync`, { script, args });
/** Runs the async function `body` (sent as its source) in the page with `args`. */
const runAsync = (body, ...args) =>
  command('POST', `/session/${session}/execute/async`, {
    script: `const done = arguments[arguments.length - 1];
      (${body.toString()})(...Array.from(arguments).slice(0, -1))
        .then((value) => done({ value }), (e) => done({ error: String(e) }));`,
    args,
  }).then((out) => {
    if (out.error) throw new Error(out.error);
    return out.value;
  });

async function waitReady() {
  const until = Date.now() + 120_000;
  while ((await run('return document.body && document.body.dataset.ready')) !== 'true') {
    if (Date.now() > until) throw new Error('the test page did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  served = await startServer();
  const port = await freePort();
  // Its own process group: xvfb-run leaves Xvfb and the driver running when
  // only it is stopped, so after() stops the whole group.
  const child = spawn('xvfb-run', ['--auto-servernum', DRIVER, `--port=${port}`], {
    stdio: 'ignore',
    detached: true,
  });
  driver = { child, base: `http://127.0.0.1:${port}` };
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      await command('GET', '/status');
      break;
    } catch (e) {
      if (Date.now() > until) throw new Error(`WebKitWebDriver did not start: ${e}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  ({ sessionId: session } = await command('POST', '/session', { capabilities: {} }));
  await command('POST', `/session/${session}/timeouts`, { script: 120_000 });
});

after(async () => {
  if (session) await command('DELETE', `/session/${session}`).catch(() => {});
  if (driver) process.kill(-driver.child.pid, 'SIGTERM');
  await new Promise((r) => served.server.close(r));
});

test('in WebKit: the simd128 module, a correction that counts at once, and a reload that keeps it', async () => {
  await command('POST', `/session/${session}/url`, { url: `${served.url}test-pages/bare.html` });
  await waitReady();
  const agent = await run('return navigator.userAgent');
  assert.match(agent, /AppleWebKit\//, agent);
  assert.doesNotMatch(agent, /Chrome\/|Firefox\//, agent);

  const text = 'how many steps did I walk today';
  const taught = await runAsync(teachOnce, text);
  // JavaScriptCore does not validate relaxed SIMD: init() loads simd128.
  assert.equal(taught.relaxed, false);
  assert.notEqual(taught.before, 'Fitness');
  assert.equal(taught.after, 'Fitness', 'the correction counts before the next prediction');
  assert.equal(taught.stored, 1);

  await command('POST', `/session/${session}/refresh`, {});
  await waitReady();
  const reloaded = await runAsync(afterReload, text);
  assert.deepEqual(reloaded, { label: 'Fitness', stored: 1 }, 'IndexedDB kept the correction');
});
