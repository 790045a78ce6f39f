// The demo page end to end, as a person uses it, in each engine (Chromium,
// Firefox, WebKitGTK) at a phone-sized viewport: load with progress,
// predict, correct 50 texts so an intent gets a new name, watch the
// automatic update, see the prediction change, reload (the model from the
// bundle cache), roll back, delete it all — with no network request after
// the page's own assets — and the bad input a person produces. Screenshots
// of the main states go to tests/artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs';
import { inEveryEngine, openStorageLimitedContext, SUPPORTS, typeAndPredict, waitReady } from './browser.mjs';
import { INTENT_ROWS } from './intents.mjs';

mkdir('tests/artifacts', { recursive: true }, () => {});

const weather = (split) => INTENT_ROWS.filter((r) => r.intent === 'HassGetWeather' && r.split === split).map((r) => r.text);
const CORRECTIONS = weather('train').slice(0, 50);
const PROBE = weather('test')[0];

inEveryEngine((env) => {
  /**
   * Opens the demo in a fresh profile; `page.lateRequests` gathers what is
   * asked of the network once the page is ready: the server's log in every
   * engine, and where the driver reports them, the browser's own request
   * events (which would also catch a request to another host).
   */
  async function openDemo(context) {
    const page = await context.newPage();
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(e));
    page.lateRequests = [];
    page.ready = false;
    if (SUPPORTS[env.engine].requestEvents) {
      page.on('request', (r) => { if (page.ready) page.lateRequests.push(r.url()); });
    }
    await page.goto(env.url);
    await ready(page);
    return page;
  }

  /** Waits for the demo to be ready; the server's requests from here on are late. */
  async function ready(page) {
    await waitReady(page);
    page.servedBefore = env.requests.length;
  }

  /** What the server was asked since the page was ready, into `page.lateRequests`. */
  function gatherLate(page) {
    page.lateRequests.push(...env.requests.slice(page.servedBefore).map((path) => `served ${path}`));
    page.servedBefore = env.requests.length;
  }

  /** What the page shows about corrections and updates, for failure messages. */
  function demoState(page) {
    return page.evaluate(() => ({
      updating: document.body.dataset.updating,
      lastUpdate: document.body.dataset.lastUpdate,
      updateStatus: document.getElementById('update-status').textContent,
      feedbackStatus: document.getElementById('feedback-status').textContent,
      pending: document.getElementById('pending').textContent,
      samples: document.getElementById('sample-count').textContent,
      error: document.getElementById('error').textContent,
      // How far the update's training got (epochs drawn on the curve).
      updateProgress: document.getElementById('update-progress').value,
      curvePoints: document.getElementById('curve-loss').getAttribute('points')?.split(' ').filter(Boolean).length ?? 0,
    }));
  }

  /** Whether the worker still answers a prediction within 10 s. */
  async function workerAnswers(page) {
    return Promise.race([
      typeAndPredict(page, 'is the worker still there').then((label) => `answers (${label})`, (e) => `fails (${e.message})`),
      new Promise((resolve) => setTimeout(() => resolve('silent for 10 s'), 10_000)),
    ]);
  }

  /** Reloads the demo (its own requests are not late ones). */
  async function reloadDemo(page) {
    gatherLate(page);
    page.ready = false;
    await page.reload();
    await ready(page);
  }

  test('predict, correct 50 texts, watch the update, reload, roll back, delete my data — offline after load', async () => {
    const context = await env.browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await openDemo(context);
    await page.screenshot({ path: `tests/artifacts/demo-loaded-${env.engine}.png`, fullPage: true });
    assert.equal(await typeAndPredict(page, PROBE), 'HassGetWeather');
    assert.match(await page.textContent('#network'), /0 network requests/);

    for (const [i, text] of CORRECTIONS.entries()) {
      await typeAndPredict(page, text);
      const predictions = Number(await page.getAttribute('body', 'data-predictions'));
      await page.fill('#new-label', 'Forecast');
      await page.click('#new-label-form button');
      await page.waitForFunction((n) => document.getElementById('feedback-status').textContent.includes(`${n} pending`) || document.body.dataset.updating === 'true' || document.body.dataset.lastUpdate, i + 1)
        .catch(async (e) => {
          // Say where it stuck: which correction, and what the page showed.
          const shown = await page.evaluate(() => ({
            status: document.getElementById('feedback-status').textContent,
            error: document.getElementById('error').textContent,
            prediction: document.getElementById('prediction').textContent,
          }));
          throw new Error(`correction ${i + 1} (${JSON.stringify(text)}) was not confirmed: ${JSON.stringify(shown)}; page errors: ${page.errors.join('; ')}`, { cause: e });
        });
      if (i === 0) {
        // The first correction counts at once: the same text is predicted
        // as corrected before any update, and after a reload.
        await page.waitForFunction((n) => Number(document.body.dataset.predictions) > n, predictions);
        assert.equal(await page.textContent('#prediction'), 'Forecast', 'a correction takes effect before the next prediction');
        const mark = env.requests.length;
        await reloadDemo(page);
        assert.equal(await typeAndPredict(page, text), 'Forecast', 'and a reload keeps it');
        // The model came from the bundle cache: of the bundle, only the
        // manifest was asked of the server again.
        const bundle = env.requests.slice(mark).filter((p) => p.startsWith('/bundles/'));
        assert.deepEqual(bundle, ['/bundles/default/manifest.json']);
      }
    }
    await page.waitForSelector('body[data-last-update]', { state: 'attached', timeout: 120_000 })
      .catch(async (e) => {
        // Say whether the update never started, is still running, or failed.
        const state = await demoState(page);
        throw new Error(`no update outcome 120 s after the 50th correction: ${JSON.stringify(state)}; the worker ${await workerAnswers(page)}; page errors: ${page.errors.join('; ')}`, { cause: e });
      });
    assert.equal(await page.getAttribute('body', 'data-last-update'), 'accepted', JSON.stringify(await demoState(page)));
    await page.waitForSelector('body[data-updating="false"]', { state: 'attached' });
    assert.match(await page.textContent('#update-status'), /^New version #2: accepted/);
    assert.notEqual(await page.getAttribute('#curve-loss', 'points'), '', 'the loss curve was drawn');
    assert.equal(await typeAndPredict(page, PROBE), 'Forecast');
    await page.screenshot({ path: `tests/artifacts/demo-learned-${env.engine}.png`, fullPage: true });
    assert.equal(await page.textContent('#pending'), '0');

    await reloadDemo(page);
    assert.equal(await page.getAttribute('body', 'data-current-version'), '2');
    assert.equal(await typeAndPredict(page, PROBE), 'Forecast', 'the learned version survived the reload');

    await page.click('button[data-version="1"]');
    await page.waitForFunction(() => document.body.dataset.currentVersion === '1');
    assert.equal(await typeAndPredict(page, PROBE), 'HassGetWeather', 'rolling back brings the old prediction back');
    await page.screenshot({ path: `tests/artifacts/demo-rolled-back-${env.engine}.png`, fullPage: true });

    // "Delete my data": asked to confirm, then nothing of the 50 corrections
    // or the version they trained is left, here or after a reload.
    page.once('dialog', (dialog) => dialog.accept());
    await page.click('#delete-data');
    await page.waitForFunction(() => document.getElementById('storage-status').textContent.startsWith('Deleted'))
      .catch(async (e) => {
        const status = await page.textContent('#storage-status');
        throw new Error(`"Delete my data" did not finish: storage status ${JSON.stringify(status)}; the worker ${await workerAnswers(page)}`, { cause: e });
      });
    await page.waitForFunction(() => document.getElementById('sample-count').textContent === '0');
    assert.equal(await page.locator('#versions tr').count(), 1, 'only the shipped model is left');
    assert.equal(await typeAndPredict(page, CORRECTIONS[0]), 'HassGetWeather', 'the first correction is forgotten');
    await reloadDemo(page);
    assert.equal(await page.textContent('#sample-count'), '0');
    assert.equal(await typeAndPredict(page, CORRECTIONS[0]), 'HassGetWeather');

    gatherLate(page);
    // After each navigation the browser checks the page's service worker
    // for a new version (the spec's soft update: a conditional GET of
    // /sw.js, answered 304, made by the browser, not the page, whatever
    // the cache headers say). It carries nothing the person typed; it is
    // the one request allowed here, at most once per load (four loads).
    const swChecks = page.lateRequests.filter((r) => r === 'served /sw.js');
    assert.ok(swChecks.length <= 4, `${swChecks.length} service-worker checks`);
    assert.deepEqual(page.lateRequests.filter((r) => r !== 'served /sw.js'), [], 'no network request after the page and model loaded');
    assert.match(await page.textContent('#network'), /0 network requests/);
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('bad input: empty text, a 100 KB paste, odd labels, double clicks, a closed tab, no storage', async () => {
    const context = await env.browser.newContext({ viewport: { width: 390, height: 844 } });
    let page = await openDemo(context);

    await typeAndPredict(page, '');
    await page.click('#bars li button');
    assert.match(await page.textContent('#feedback-status'), /nothing to learn from an empty text/);

    const paste = 'turn on the lights '.repeat(5500); // ~100 KB
    assert.ok(await typeAndPredict(page, paste), 'a 100 KB paste still gets a prediction');
    await page.fill('#new-label', 'Lights');
    await page.click('#new-label-form button');
    await page.waitForSelector('#error:not([hidden])');
    assert.match(await page.textContent('#error'), /^InvalidSampleError: invalid sample: the text is 104500 bytes/);
    assert.equal((await page.inputValue('#text')).length, paste.length, 'the pasted text is still there');

    // A 20 MB paste: WebKit takes half a minute to lay out that much text in
    // a textarea, so the page cuts a text to 200,000 characters as it
    // arrives and says so; the box gets a prediction and the correction is
    // refused with the library's reason. (A 20 MB text through the worker
    // itself: worker.test.mjs.) Made in the page, not sent over the wire.
    const predictions = Number(await page.getAttribute('body', 'data-predictions'));
    const length = await page.evaluate(() => {
      const box = document.getElementById('text');
      box.value = 'turn on the lights '.repeat(1_100_000);
      box.dispatchEvent(new Event('input', { bubbles: true }));
      return box.value.length;
    });
    assert.equal(length, 200_000);
    assert.match(await page.textContent('#feedback-status'), /cut to its first 200,000 of 20,900,000 characters/);
    await page.waitForFunction((n) => Number(document.body.dataset.predictions) > n, predictions);
    assert.ok(await page.textContent('#prediction'), 'a cut paste gets a prediction');
    await page.fill('#new-label', 'Lights');
    await page.click('#new-label-form button');
    await page.waitForFunction(() => document.getElementById('error').textContent.includes('200000 bytes'));
    assert.match(await page.textContent('#error'), /^InvalidSampleError: invalid sample: the text is 200000 bytes/);
    assert.equal(await typeAndPredict(page, 'turn on the kitchen lights'), 'HassTurnOn');

    const odd = 'Küche / "lights" <b>&amp; 🔥';
    await typeAndPredict(page, 'turn on the kitchen lights');
    const shownBefore = Number(await page.getAttribute('body', 'data-predictions'));
    await page.fill('#new-label', odd);
    await page.click('#new-label-form button');
    await page.waitForFunction(() => document.getElementById('feedback-status').textContent.includes('1 pending'));
    assert.ok((await page.textContent('#feedback-status')).includes(odd), 'shown as text, not markup');
    // The page then shows the new prediction and the pending count, which
    // moves what is below them: wait for both, or the double click below
    // can land where the button was a moment before (seen in WebKit, 1 run
    // in 3: the clicks hit the section 4 px above the button's new place).
    await page.waitForFunction((n) => Number(document.body.dataset.predictions) > n
      && document.getElementById('pending').textContent === '1', shownBefore);
    assert.equal(await page.textContent('#prediction'), odd, 'the correction counts at once');

    // Double click on "update now": one update, one new version.
    await page.dblclick('#update');
    await page.waitForSelector('body[data-updating="false"][data-last-update]', { state: 'attached', timeout: 60_000 });
    const rowsAfter = await page.$$eval('#versions tr', (trs) => trs.length);
    assert.equal(rowsAfter, 2, 'shipped + one update');

    // Close the tab in the middle of an update: the store stays whole.
    await typeAndPredict(page, 'lights on in the hall');
    await page.fill('#new-label', odd);
    await page.click('#new-label-form button');
    await page.waitForFunction(() => document.getElementById('feedback-status').textContent.includes('pending'));
    // Clicked from inside the page, so that the same call sees the update
    // begin: a driver that polls over WebDriver (WebKit) can miss an update
    // this small from start to end, and then the tab would close after it.
    const updating = await page.evaluate(() => {
      document.getElementById('update').click();
      return document.body.dataset.updating;
    });
    assert.equal(updating, 'true', 'the update began');
    await page.close({ runBeforeUnload: false });
    page = await openDemo(context);
    const versions = await page.$$eval('#versions tr', (trs) => trs.map((tr) => tr.cells[4].textContent));
    assert.ok(versions.length === 2 || versions.length === 3, `${versions}`);
    assert.equal(versions.filter((s) => s.includes('current')).length, 1);
    assert.ok(await page.isHidden('#error'), await page.textContent('#error'));
    assert.equal(await page.textContent('#sample-count'), '2', 'both corrections are stored');
    await context.close();
  });

  // Next to no storage (a tiny quota, as some private modes give): a clear
  // message (openStorageLimitedContext).
  test('next to no storage: the page says the browser will not let it store anything', async () => {
    const denied = await openStorageLimitedContext(env, { chromiumBytes: 1000, profileKb: 1 });
    try {
      const blocked = await denied.context.newPage();
      await blocked.goto(env.url);
      await blocked.waitForSelector('body[data-failed]', { state: 'attached', timeout: 120_000 });
      assert.match(await blocked.textContent('#load-status'), /will not let the page store anything/);
      assert.equal(await blocked.textContent('#network'), 'Not loaded');
      assert.ok(await blocked.evaluate(() => document.getElementById('network').classList.contains('warn')), 'shown as a warning, not in green');
      await blocked.screenshot({ path: `tests/artifacts/demo-no-storage-${env.engine}.png`, fullPage: true });
    } finally {
      await denied.close();
    }
  });
});
