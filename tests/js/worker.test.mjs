// localtune/client and localtune/worker in each engine (headless Chromium,
// Firefox ESR, WebKitGTK): the Classifier API from the page with the model
// and training in a Web Worker — loading by URL and by transferred bytes,
// automatic updates reported back to the page, progress and cancelling
// across the boundary, errors with their names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inEveryEngine, openTestPage } from './browser.mjs';

inEveryEngine((env) => {
  const openPage = (context) => openTestPage(context, env.url);

  test('the worker client predicts, learns automatically, reports progress and cancels', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const found = await page.evaluate(async () => {
      const { WorkerClassifier } = await import('/pkg/client.js');
      const phases = [];
      let finished;
      const done = new Promise((resolve) => { finished = resolve; });
      const classifier = await WorkerClassifier.load('/bundles/default/', {
        storeName: 'worker',
        autoUpdate: { threshold: 6 },
        onAutoUpdate: (e) => {
          phases.push(e.phase);
          if (e.phase === 'finished' || e.phase === 'failed') finished(e);
        },
      });
      const before = await classifier.predict('tell me the forecast for the weekend');
      const texts = ['forecast for the weekend', 'weekend forecast please', 'what is the forecast', 'give me the forecast',
        'forecast for tomorrow', 'the forecast for saturday'];
      const main = lt; // the page's own module: the worker must agree with it
      for (const t of texts) await classifier.addFeedback(t, 'Forecast');
      const auto = await done;
      const after = await classifier.predict('tell me the forecast for the weekend');

      // Progress events cross the boundary; returning false cancels. Where
      // memory can be shared the worker sees the cancel between batches;
      // elsewhere (WebKit) it is busy training and sees it when the loop
      // ends: either way the candidate is dropped, nothing is stored.
      const versionsBefore = (await classifier.versions()).length;
      let progress = 0;
      let cancelled;
      try {
        await classifier.update({ epochs: 200 }, () => (++progress < 5 ? undefined : false));
      } catch (e) {
        cancelled = e.name;
      }
      // An AbortSignal cancels too.
      const controller = new AbortController();
      const aborting = classifier.update({ epochs: 400, signal: controller.signal }, () => controller.abort());
      let aborted;
      try {
        await aborting;
      } catch (e) {
        aborted = e.name;
      }
      const versionsAfter = (await classifier.versions()).length;
      let badLabel;
      try {
        await classifier.addFeedback('x', '   ');
      } catch (e) {
        badLabel = e.name;
      }
      // 20 MB of text crosses to the worker: a prediction from its first
      // 8,192 characters, a correction refused before anything is encoded.
      const huge = 'turn on the lights '.repeat(1_100_000);
      const hugePrediction = (await classifier.predict(huge)).label;
      let hugeFeedback;
      try {
        await classifier.addFeedback(huge, 'Lights');
      } catch (e) {
        hugeFeedback = `${e.name}: ${e.message}`;
      }

      // Loading from bytes transfers them to the worker instead of copying.
      const names = ['manifest.json', 'encoder.compiled.tar', 'tokenizer.json', 'head.bin', 'rehearsal.bin', 'shipped-check.bin'];
      const files = {};
      for (const n of names) files[n] = new Uint8Array(await (await fetch(`/bundles/default/${n}`)).arrayBuffer());
      const fromBytes = await WorkerClassifier.load(files, { storeName: 'worker-bytes' });
      const transferred = files['encoder.compiled.tar'].byteLength === 0;
      const fromBytesPrediction = await fromBytes.predict('tell me the forecast for the weekend');
      fromBytes.terminate();
      return {
        beforeLabel: before.label,
        phases: [...new Set(phases)],
        auto: auto.phase === 'finished' ? { accepted: auto.report.accepted, version: auto.report.version.version } : String(auto.error),
        afterLabel: after.label,
        currentVersion: classifier.currentVersion.version,
        progress,
        cancelled,
        versionsBefore,
        versionsAfter,
        aborted,
        badLabel,
        hugePrediction,
        hugeFeedback,
        transferred,
        fromBytesLabel: fromBytesPrediction.label,
        hasMain: typeof main.Classifier === 'function',
        stats: await classifier.stats(),
      };
    });
    assert.equal(found.beforeLabel, 'HassGetWeather');
    assert.deepEqual(found.phases, ['started', 'progress', 'finished']);
    assert.equal(found.auto.accepted, true, JSON.stringify(found.auto));
    assert.equal(found.afterLabel, 'Forecast');
    assert.equal(found.currentVersion, found.auto.version, `the client follows the automatic update: ${JSON.stringify(found)}`);
    assert.equal(found.progress, 5, 'no events after the one that cancelled');
    assert.equal(found.versionsAfter, found.versionsBefore, 'cancelled updates store nothing');
    assert.equal(found.cancelled, 'AbortError');
    assert.equal(found.aborted, 'AbortError');
    assert.equal(found.badLabel, 'ConfigError');
    assert.equal(found.hugePrediction, 'HassTurnOn');
    assert.match(found.hugeFeedback, /^InvalidSampleError: .*the text is 20900000 bytes/);
    assert.equal(found.transferred, true, 'the bundle bytes were transferred, not copied');
    assert.equal(found.fromBytesLabel, 'HassGetWeather', 'a fresh store starts from the shipped head');
    assert.equal(found.stats.pendingCount, 0);
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('a correction counts before the next prediction; the working head learns it between calls, the same in two tabs', async () => {
    const context = await env.browser.newContext();
    const tabs = [await openPage(context), await openPage(context)];
    const text = 'how many steps did I walk today';
    const probes = ['how many steps have I taken today', 'count my steps', 'what is the weather like', 'turn off the kitchen lights'];
    const load = (page) => page.evaluate(async () => {
      const { WorkerClassifier } = await import('/pkg/client.js');
      window.classifier = await WorkerClassifier.load('/bundles/default/', { storeName: 'at-once', autoUpdate: { enabled: false } });
    });
    const predictAll = (page) => page.evaluate((texts) => Promise.all(texts.map((t) => window.classifier.predict(t))), probes);

    await load(tabs[0]);
    const found = await tabs[0].evaluate(async (text) => {
      const c = window.classifier;
      const before = await c.predict(text);
      // Asked as soon as addFeedback resolves: the memory answers, whether or
      // not the working head has learned the correction yet.
      const feedback = await c.addFeedback(text, 'Fitness');
      const right = await c.predict(text);
      await c.addFeedback('count my steps for today', 'Fitness');
      await c.whenIdle();
      return { before: before.label, pending: feedback.pending, right, settled: await c.predict(text) };
    }, text);
    assert.notEqual(found.before, 'Fitness');
    assert.equal(found.right.label, 'Fitness', JSON.stringify(found.right));
    assert.ok(found.right.probability > 0.949, 'the memory decides a corrected text (0.95 of the probability, an f32)');
    assert.equal(found.settled.label, 'Fitness');

    // Another tab opens the same store: the working head is derived from the
    // stored corrections, so it answers exactly as the first tab does.
    await load(tabs[1]);
    const [first, second] = [await predictAll(tabs[0]), await predictAll(tabs[1])];
    assert.deepEqual(second, first);
    // The working head knows the new label: it has a probability for the
    // probes, which no correction is close to enough for the memory alone.
    for (const p of first) assert.ok(p.probabilities.some((q) => q.label === 'Fitness'), JSON.stringify(p));
    for (const tab of tabs) assert.deepEqual(tab.errors, []);
    await context.close();
  });

  /** Every object store of an IndexedDB database, read from the page: record
   * counts, and the records' strings (typed arrays left out) as one text. */
  const readDatabase = (page, name) => page.evaluate(async (name) => {
    const request = indexedDB.open(name);
    const db = await new Promise((resolve, reject) => {
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const counts = {};
    let text = '';
    for (const store of db.objectStoreNames) {
      const records = await new Promise((resolve, reject) => {
        const r = db.transaction(store).objectStore(store).getAll();
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      counts[store] = records.length;
      text += JSON.stringify(records, (_, v) => (ArrayBuffer.isView(v) ? undefined : v));
    }
    db.close();
    return { counts, text };
  }, name);

  test('deleting one correction, all of them, and everything: IndexedDB holds nothing of the user afterwards', async () => {
    const context = await env.browser.newContext();
    const [page, other] = [await openPage(context), await openPage(context)];
    const texts = ['how many steps did I walk today', 'count my steps for today', 'open the garage door', 'close the garage door'];
    const labels = ['Fitness', 'Fitness', 'GarageDoor', 'GarageDoor'];
    const load = (p) => p.evaluate(async () => {
      const { WorkerClassifier } = await import('/pkg/client.js');
      window.classifier = await WorkerClassifier.load('/bundles/default/', { storeName: 'erase', autoUpdate: { enabled: false } });
    });
    await load(page);
    const first = await page.evaluate(async ({ texts, labels }) => {
      const c = window.classifier;
      for (let i = 0; i < texts.length; i++) await c.addFeedback(texts[i], labels[i]);
      const report = await c.update();
      // What the client says the labels are is what a prediction ranks.
      const ranked = (await c.predict(texts[0])).probabilities.map((p) => p.label).sort();
      const labelsAfterUpdate = [...c.labels].sort();
      const samples = await c.samples();
      const badId = await c.deleteSample(1.5).then(() => 'deleted', (e) => `${e.name}: ${e.message}`);
      await c.deleteSample(samples[0].id);
      return {
        accepted: report.accepted,
        labelsAfterUpdate,
        ranked,
        stored: samples.map((s) => s.text),
        badId,
        left: (await c.samples()).map((s) => s.text),
        predicted: (await c.predict(texts[0])).label,
        labels: c.labels,
      };
    }, { texts, labels });
    assert.ok(first.accepted);
    assert.deepEqual(first.labelsAfterUpdate, first.ranked);
    assert.deepEqual(first.stored, texts);
    assert.match(first.badId, /^ConfigError: .*sample id must be a whole number from 1 to 2\^53 − 1; got 1\.5/);
    assert.deepEqual(first.left, texts.slice(1));
    // The version trained on the deleted correction keeps what it learned.
    assert.ok(first.labels.includes('Fitness'));
    let db = await readDatabase(page, 'localtune:erase');
    assert.equal(db.counts.samples, 3);
    assert.equal(db.counts.features, 3, 'the deleted correction\'s vector went with it');
    assert.ok(!db.text.includes(texts[0]));

    await page.evaluate(() => window.classifier.deleteAllSamples());
    db = await readDatabase(page, 'localtune:erase');
    assert.equal(db.counts.samples, 0);
    assert.equal(db.counts.features, 0);
    assert.equal(db.counts.versions, 2, 'versions stay until everything is deleted');

    // Another tab holds the store open: erasing closes its connection, with
    // a reason (it may hold what it learned from the records in memory).
    await load(other);
    const erased = await page.evaluate(async (texts) => {
      const c = window.classifier;
      const shipped = await c.deleteEverything();
      const after = await c.addFeedback(texts[2], 'Garage');
      return { shipped, current: c.currentVersion, labels: c.labels, predicted: (await c.predict(texts[2])).label, id: after.sample.id };
    }, texts);
    assert.equal(erased.shipped.status, 'shipped');
    assert.deepEqual(erased.current, erased.shipped);
    assert.ok(!erased.labels.includes('Fitness') && !erased.labels.includes('GarageDoor'));
    assert.equal(erased.predicted, 'Garage', 'the instance goes on, and corrections count at once');
    assert.ok(erased.id > 3, 'ids are never reused');
    const otherTab = await other.evaluate(
      () => window.classifier.addFeedback('turn on the lights', 'Lights').then(() => 'stored', (e) => `${e.name}: ${e.message}`),
    );
    assert.match(otherTab, /another tab erased this store \(deleteEverything\); reload the page/);

    await page.evaluate(() => window.classifier.deleteEverything());
    db = await readDatabase(page, 'localtune:erase');
    assert.deepEqual(db.counts, { features: 0, meta: 1, samples: 0, versions: 1, weights: 1 });
    for (const s of [...texts, 'Fitness', 'GarageDoor', 'Garage']) assert.ok(!db.text.includes(s), `${s} remains`);
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('a trapped module: a named error, the reads in flight sent again and the writes rejected, a new worker with the stored state', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const text = 'how many steps did I walk today';
    const outcome = await page.evaluate(async (text) => {
      const { WorkerClassifier } = await import('/pkg/client.js');
      const c = await WorkerClassifier.load('/bundles/default/', { storeName: 'trap', autoUpdate: { enabled: false } });
      await c.addFeedback(text, 'Fitness');
      const settle = (p) => p.then((v) => ({ ok: v }), (e) => ({ name: e.name, message: e.message }));
      // At once: the call that trapped is rejected by name.
      const atOnce = await settle(c.forceTrapForTests(false));
      // The next call waits for the new worker, which read the store again.
      const afterFirst = await c.predict(text);
      // Inside an async task, where no caller sees the trap, with a read
      // and a write queued behind it: the read is answered by the new
      // worker, the write is rejected (neither hangs).
      const [later, queuedRead, queuedWrite] = await Promise.all([
        settle(c.forceTrapForTests(true)),
        settle(c.predict(text)),
        settle(c.addFeedback('turn the porch light green', 'PorchColour')),
      ]);
      const afterSecond = await c.predict(text);
      return {
        atOnce, afterFirst: afterFirst.label, later, queuedRead: queuedRead.ok?.label ?? queuedRead,
        queuedWrite, afterSecond: afterSecond.label, restarts: c.restarts, labels: c.labels,
      };
    }, text);
    assert.equal(outcome.atOnce.name, 'ModuleTrappedError', JSON.stringify(outcome.atOnce));
    // The engine's own words: "unreachable" (V8, SpiderMonkey), "Unreachable
    // code should not be executed" (JavaScriptCore).
    assert.match(outcome.atOnce.message, /trapped in Classifier\.forceTrapForTests \(unreachable/i);
    assert.equal(outcome.afterFirst, 'Fitness', 'the correction stored before the trap counts in the new worker');
    assert.equal(outcome.later.name, 'ModuleTrappedError', JSON.stringify(outcome.later));
    assert.equal(outcome.queuedRead, 'Fitness', 'a read in flight is sent again to the new worker');
    assert.equal(outcome.queuedWrite.name, 'ModuleTrappedError', JSON.stringify(outcome.queuedWrite));
    assert.equal(outcome.afterSecond, 'Fitness');
    assert.equal(outcome.restarts, 2);
    assert.ok(outcome.labels.includes('Fitness'));
    assert.ok(!outcome.labels.includes('PorchColour'), 'the write reached the old worker after the trap, which refused it');
    await context.close();
  });

  test('the page hidden stops the worker; a page back from the back-forward cache gets a new one with the stored state', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const text = 'how many steps did I walk today';
    const outcome = await page.evaluate(async (text) => {
      const { WorkerClassifier } = await import('/pkg/client.js');
      const settle = (p) => p.then((v) => ({ ok: v }), (e) => ({ name: e.name, message: e.message }));
      // What the browser fires when the page goes into the back-forward
      // cache and when it comes back (persisted: true).
      const hide = () => window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true }));
      const show = (persisted) => window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted }));
      const c = await WorkerClassifier.load('/bundles/default/', { storeName: 'lifecycle', autoUpdate: { enabled: false } });
      await c.addFeedback(text, 'Fitness');
      const versionsBefore = (await c.versions()).length;
      // An update in flight when the page goes: rejected, nothing stored.
      const updating = settle(c.update({ epochs: 400 }));
      hide();
      const inFlight = await updating;
      const whileHidden = await settle(c.predict(text));
      show(false); // a first show of a page, not a restore: nothing to do
      const stillHidden = await settle(c.predict(text));
      show(true);
      const restored = await c.predict(text);
      const versionsAfter = (await c.versions()).length;
      // Loaded from bytes (transferred to the first worker): no way back.
      const names = ['manifest.json', 'encoder.compiled.tar', 'tokenizer.json', 'head.bin', 'rehearsal.bin', 'shipped-check.bin'];
      const files = {};
      for (const n of names) files[n] = new Uint8Array(await (await fetch(`/bundles/default/${n}`)).arrayBuffer());
      const fromBytes = await WorkerClassifier.load(files, { storeName: 'lifecycle-bytes' });
      hide();
      show(true);
      const bytesRestored = await settle(fromBytes.predict(text));
      return { inFlight, whileHidden, stillHidden, restored: restored.label, versionsBefore, versionsAfter, restarts: c.restarts, bytesRestored };
    }, text);
    assert.equal(outcome.inFlight.name, 'AbortError', JSON.stringify(outcome.inFlight));
    assert.match(outcome.inFlight.message, /the page was hidden/);
    assert.equal(outcome.whileHidden.name, 'AbortError');
    assert.equal(outcome.stillHidden.name, 'AbortError');
    assert.equal(outcome.restored, 'Fitness', 'the new worker read the stored correction');
    assert.equal(outcome.versionsAfter, outcome.versionsBefore, 'the update stopped with the page stored nothing');
    assert.equal(outcome.restarts, 0, 'restarts counts traps only');
    assert.equal(outcome.bytesRestored.name, 'InvalidStateError', JSON.stringify(outcome.bytesRestored));
    assert.match(outcome.bytesRestored.message, /load it again/);
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('leaving the page while its worker writes: the next page reads, writes and erases the store without waiting forever', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const texts = ['turn up the volume a bit', 'make it louder', 'volume up please', 'a little quieter', 'lower the volume',
      'turn it down a notch', 'raise the volume by ten', 'louder please', 'quieter please', 'volume down by five'];
    // Each round: corrections sent without waiting, an automatic update due
    // after a few (its reads and the corrections' writes overlap), and the
    // page left after `confirmed` of them have been stored — by a reload, or
    // by a navigation (which may keep the page, frozen, in the back-forward
    // cache: WebKit did, with its worker's transaction in flight, and every
    // later transaction waited behind it).
    for (const [confirmed, leave] of [[1, 'navigate'], [4, 'reload'], [8, 'navigate']]) {
      await page.evaluate(async ({ texts, confirmed }) => {
        const { WorkerClassifier } = await import('/pkg/client.js');
        const c = await WorkerClassifier.load('/bundles/default/', { storeName: 'reload-busy', autoUpdate: { threshold: 3 } });
        let stored = 0;
        let enough;
        const reached = new Promise((resolve) => { enough = resolve; });
        for (const [i, t] of texts.entries()) {
          c.addFeedback(t, i % 2 ? 'VolumeUp' : 'VolumeDown').then(() => { if (++stored >= confirmed) enough(); }, () => {});
        }
        await reached;
      }, { texts, confirmed });
      if (leave === 'reload') await page.reload();
      else await page.goto(`${env.url}test-pages/bare.html?round=${confirmed}`);
      await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 60_000 });
      const after = await page.evaluate(async () => {
        const { WorkerClassifier } = await import('/pkg/client.js');
        const within = (p, what) => Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in 60 s`)), 60_000))]);
        const c = await within(WorkerClassifier.load('/bundles/default/', { storeName: 'reload-busy', autoUpdate: { enabled: false } }), 'load');
        const samples = await within(c.samples(), 'samples');
        const added = await within(c.addFeedback('how many steps did I walk today', 'Fitness'), 'addFeedback');
        const predicted = await within(c.predict('how many steps did I walk today'), 'predict');
        c.terminate();
        return { samples: samples.length, added: added.sample.id > 0, predicted: predicted.label };
      });
      assert.ok(after.samples >= confirmed, `round ${confirmed}: ${after.samples} samples found`);
      assert.ok(after.added);
      assert.equal(after.predicted, 'Fitness');
    }
    const erased = await page.evaluate(async () => {
      const { WorkerClassifier } = await import('/pkg/client.js');
      const c = await WorkerClassifier.load('/bundles/default/', { storeName: 'reload-busy', autoUpdate: { enabled: false } });
      const timeout = new Promise((resolve) => setTimeout(() => resolve('no answer in 60 s'), 60_000));
      const outcome = await Promise.race([c.deleteEverything().then(() => 'erased', (e) => `${e.name}: ${e.message}`), timeout]);
      return { outcome, samples: outcome === 'erased' ? (await c.samples()).length : -1 };
    });
    assert.deepEqual(erased, { outcome: 'erased', samples: 0 });
    assert.deepEqual(page.errors, []);
    await context.close();
  });
});
