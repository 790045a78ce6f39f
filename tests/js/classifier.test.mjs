// The Classifier, the way a web app uses it: the built package imported by a
// plain ESM page, in each engine (headless Chromium, Firefox ESR, WebKitGTK):
// the module init() picks there, the default bundle (scripts/
// build-bundle.sh), 50 corrections that relabel one intent, the automatic
// update they trigger, and a reload that finds the same version and
// predictions. Plus bad bundles, overlapping calls, 3,000 texts at once,
// traps, and updates that wait for a charger.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT, FEATURES, inEveryEngine, openTestPage } from './browser.mjs';
import { INTENT_ROWS } from './intents.mjs';

const DATA = INTENT_ROWS;
// The user renames what the bundle calls HassGetWeather: 50 corrections from
// the training templates, and 20 texts from the test templates (never
// corrected) to see the prediction change.
const INTENT = 'HassGetWeather';
const texts = (split) => DATA.filter((r) => r.intent === INTENT && r.split === split).map((r) => r.text);
const CORRECTIONS = texts('train').slice(0, 50);
const PROBES = texts('test').slice(0, 20);
const NEW_LABEL = 'Forecast';

inEveryEngine((env) => {
  const openPage = (context) => openTestPage(context, env.url);

  test('init() loads the module this engine validates; the engine has the APIs the library expects of it', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const found = await page.evaluate(() => ({
      agent: navigator.userAgent,
      features: {
        relaxedSimd: lt.relaxedSimdEnabled(),
        storageManager: typeof navigator.storage?.estimate === 'function',
        battery: typeof navigator.getBattery === 'function',
        // WebKitGTK says crossOriginIsolated and still has no SharedArrayBuffer.
        sharedMemory: crossOriginIsolated && typeof SharedArrayBuffer === 'function',
      },
    }));
    assert.match(found.agent, AGENT[env.engine], found.agent);
    // JavaScriptCore refuses relaxed SIMD: WebKit gets the simd128 module.
    assert.deepEqual(found.features, FEATURES[env.engine]);
    await context.close();
  });

  test('50 corrections relabel an intent through an automatic update that survives a reload', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const learned = await page.evaluate(
      async ({ corrections, probes, label }) => {
        const phases = [];
        let finished;
        const done = new Promise((resolve) => { finished = resolve; });
        const classifier = await lt.Classifier.load('/bundles/default/', {
          onAutoUpdate: (event) => {
            phases.push(event.phase);
            if (event.phase === 'finished' || event.phase === 'failed') finished(event);
          },
        });
        const shippedVersion = classifier.currentVersion.version;
        const before = probes.map((t) => classifier.predict(t).label);
        const pendings = [];
        for (const text of corrections) pendings.push((await classifier.addFeedback(text, label)).pending);
        const outcome = await done;
        const after = probes.map((t) => classifier.predict(t));
        const corrected = corrections.map((t) => classifier.predict(t).label);
        return {
          shippedVersion,
          labelsBefore: classifier.manifest.labels.length,
          before,
          pendings: [pendings[0], pendings[48], pendings[49]],
          phases: [...new Set(phases)],
          progressEvents: phases.filter((p) => p === 'progress').length,
          outcome: outcome.phase === 'failed' ? String(outcome.error) : outcome.report,
          after: after.map((p) => p.label),
          corrected,
          probabilities: after.map((p) => p.probability),
          version: classifier.currentVersion,
          stats: await classifier.stats(),
        };
      },
      { corrections: CORRECTIONS, probes: PROBES, label: NEW_LABEL },
    );
    const count = (labels, l) => labels.filter((x) => x === l).length;
    assert.ok(count(learned.before, INTENT) >= 16, `shipped head: ${learned.before}`);
    assert.deepEqual(learned.pendings, [1, 49, 50]);
    assert.deepEqual(learned.phases, ['started', 'progress', 'finished'], JSON.stringify(learned.outcome));
    assert.ok(learned.progressEvents > 10);
    const report = learned.outcome;
    assert.equal(report.accepted, true, report.gate);
    assert.equal(report.version.parent, learned.shippedVersion);
    assert.equal(report.heldOutSamples, 10);
    assert.equal(report.userSamples, 40);
    // The candidate gives at least half of the 10 held-out corrections the
    // new label, the current head none (an f32 accuracy: 0.5 may arrive as
    // 0.4999…). Not 9 of 10: which of its own held-out texts the candidate
    // gets right depends on which 10 the seeded split holds out and on the
    // vectors' last bits: over 30 split seeds natively it got 50–100% (24
    // at 90% or more), and on seed 0 the relaxed-SIMD module (Chromium,
    // Firefox) 100%, the simd128 one (WebKit) 60%. The renamed intent's
    // sentences are one tight cluster, and shipped examples of it that no
    // correction overrode stay beside the held-out texts.
    assert.ok(Math.round(report.candidateAccuracy * report.heldOutSamples) >= 5 && report.currentAccuracy === 0, report.gate);
    // What the user sees: every corrected text says what it was corrected
    // to (the working head and the corrections' memory), and texts never
    // corrected follow.
    assert.deepEqual(learned.corrected, CORRECTIONS.map(() => NEW_LABEL));
    assert.ok(count(learned.after, NEW_LABEL) >= 16, `after the update: ${learned.after}`);
    assert.equal(learned.version.version, report.version.version);
    assert.equal(learned.stats.pendingCount, 0);
    assert.equal(learned.stats.sampleCount, 50);
    if (FEATURES[env.engine].storageManager) {
      assert.ok(learned.stats.storage.usageBytes > 0);
    } else {
      // No StorageManager (WebKitGTK): usage and quota are unknown, not 0.
      assert.deepEqual(learned.stats.storage, { persisted: false, usageBytes: null, quotaBytes: null });
    }

    // Reload: the same version, the same predictions, nothing pending.
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 60_000 });
    const reloaded = await page.evaluate(async (probes) => {
      const classifier = await lt.Classifier.load('/bundles/default/');
      return {
        version: classifier.currentVersion,
        after: probes.map((t) => classifier.predict(t)),
        stats: await classifier.stats(),
        problems: classifier.problems,
      };
    }, PROBES);
    assert.deepEqual(reloaded.version, learned.version);
    assert.deepEqual(reloaded.after.map((p) => p.label), learned.after);
    assert.deepEqual(reloaded.after.map((p) => p.probability), learned.probabilities);
    assert.equal(reloaded.stats.pendingCount, 0);
    assert.deepEqual(reloaded.problems, []);
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('a bundle that does not fit is refused with the field and the problem', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const errors = await page.evaluate(async () => {
      const names = ['manifest.json', 'encoder.onnx', 'encoder.compiled.tar', 'tokenizer.json', 'head.bin', 'rehearsal.bin', 'shipped-check.bin'];
      const files = {};
      for (const n of names) files[n] = new Uint8Array(await (await fetch(`/bundles/default/${n}`)).arrayBuffer());
      const manifest = JSON.parse(new TextDecoder().decode(files['manifest.json']));
      const withManifest = (change) => {
        const m = structuredClone(manifest);
        change(m);
        return { ...files, 'manifest.json': new TextEncoder().encode(JSON.stringify(m)) };
      };
      const attempt = async (source) => {
        try {
          await lt.Classifier.load(source, { storeName: 'bad-bundles' });
          return 'loaded';
        } catch (e) {
          return `${e.name}: ${e.message}`;
        }
      };
      const tiny = new Uint8Array(await (await fetch('/fixtures/tiny/encoder.onnx')).arrayBuffer());
      const sha = async (bytes) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
      const tinySha = await sha(tiny);
      const flipped = files['head.bin'].slice();
      flipped[100] ^= 1;
      // The loader hashes with WebCrypto where there is one; without it (a
      // page on plain HTTP from another host) or when it fails, in wasm.
      const webCrypto = async (kind, source) => {
        const subtle = Object.getOwnPropertyDescriptor(Crypto.prototype, 'subtle');
        const digest = SubtleCrypto.prototype.digest;
        if (kind === 'absent') Object.defineProperty(Crypto.prototype, 'subtle', { ...subtle, get: () => undefined });
        if (kind === 'failing') SubtleCrypto.prototype.digest = () => Promise.reject(new DOMException('no', 'OperationError'));
        let calls = 0;
        if (kind === 'counted') SubtleCrypto.prototype.digest = function (...args) { calls += 1; return digest.apply(this, args); };
        try {
          const result = await attempt(source);
          return kind === 'counted' ? { result, calls } : result;
        } finally {
          Object.defineProperty(Crypto.prototype, 'subtle', subtle);
          SubtleCrypto.prototype.digest = digest;
        }
      };
      const { 'head.bin': _, ...noHead } = files;
      const { 'encoder.onnx': __, ...noOnnx } = files;
      const { 'encoder.compiled.tar': ___, ...noCompiled } = files;
      return {
        ok: await attempt(files),
        wrongSha: await attempt({ ...files, 'head.bin': flipped }),
        counted: await webCrypto('counted', files),
        okWithoutWebCrypto: await webCrypto('absent', files),
        wrongShaWithoutWebCrypto: await webCrypto('absent', { ...files, 'head.bin': flipped }),
        okWebCryptoFailing: await webCrypto('failing', files),
        wrongShaWebCryptoFailing: await webCrypto('failing', { ...files, 'head.bin': flipped }),
        schema: await attempt(withManifest((m) => { m.schemaVersion = 2; })),
        missing: await attempt(noHead),
        compiledOnly: await attempt(noOnnx),
        noCompiled: await attempt(noCompiled),
        otherCompiled: await attempt({ ...withManifest((m) => { m.encoder.file = 'tiny.onnx'; m.encoder.sha256 = tinySha; }), 'tiny.onnx': tiny }),
        onnxOnly: await attempt({ ...withManifest((m) => { m.encoder.file = 'tiny.onnx'; m.encoder.sha256 = tinySha; delete m.encoder.compiled; }), 'tiny.onnx': tiny }),
        range: await attempt(withManifest((m) => { m.training.defaults.learningRate = 5; })),
        unknownField: await attempt(withManifest((m) => { m.encoder.poolling = 'mean'; })),
        notJson: await attempt({ ...files, 'manifest.json': new TextEncoder().encode('{"schemaVersion": 1,') }),
      };
    });
    assert.equal(errors.ok, 'loaded');
    const wrongHead = /^BundleError: bundle: head\.sha256: "head\.bin" has sha256 [0-9a-f]{64}; the manifest says/;
    assert.match(errors.wrongSha, wrongHead);
    // The compiled encoder, the tokenizer, the head, the rehearsal and
    // check vectors; not the ONNX file beside the compiled encoder.
    assert.deepEqual(errors.counted, { result: 'loaded', calls: 5 }, 'every file the load reads hashed by WebCrypto');
    assert.equal(errors.okWithoutWebCrypto, 'loaded');
    assert.equal(errors.okWebCryptoFailing, 'loaded');
    assert.equal(errors.wrongShaWithoutWebCrypto, errors.wrongSha, 'hashed in wasm, the same verdict');
    assert.equal(errors.wrongShaWebCryptoFailing, errors.wrongSha);
    assert.match(errors.schema, /^BundleError: bundle: schemaVersion: 2 is not supported/);
    assert.match(errors.missing, /^BundleError: bundle: head: the file "head\.bin" is missing/);
    assert.equal(errors.compiledOnly, 'loaded', 'the compiled encoder stands in for the ONNX file');
    assert.match(errors.noCompiled, /^BundleError: bundle: encoder\.compiled: the file "encoder\.compiled\.tar" is missing/);
    assert.match(errors.otherCompiled, /^BundleError: bundle: encoder\.compiled: "encoder\.compiled\.tar" was compiled from the encoder with sha256 [0-9a-f]{64}; the manifest's encoder is [0-9a-f]{64}/);
    // A page's module has no ONNX importer: a bundle without a compiled
    // encoder is refused before the ONNX file is read (the feature-size
    // check this case made before is in tests/bundle.rs).
    assert.match(errors.onnxOnly, /^BundleError: bundle: encoder\.compiled: the bundle has no compiled encoder \(encoder\.compiled\), and this module has no ONNX importer to build the encoder from "tiny\.onnx": rebuild the bundle with this package's bundle tool/);
    assert.match(errors.range, /^BundleError: bundle: training\.defaults: .*learningRate must be in \[0\.0001, 1\]/);
    assert.match(errors.unknownField, /^BundleError: bundle: manifest\.json: unknown field `poolling`/);
    assert.match(errors.notJson, /^BundleError: bundle: manifest\.json: not JSON/);
    await context.close();
  });

  test('overlapping calls settle, and a second update while one runs is refused', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const found = await page.evaluate(async (texts) => {
      const classifier = await lt.Classifier.load('/bundles/default/', { storeName: 'overlap', autoUpdate: { enabled: false } });
      const calls = texts.map((t, i) => classifier.addFeedback(t, i % 2 ? 'A' : 'B'));
      calls.push(classifier.versions(), classifier.stats());
      const settled = await Promise.allSettled(calls);
      const first = classifier.update({ epochs: 20 });
      let second;
      try {
        await classifier.update();
        second = 'ran';
      } catch (e) {
        second = e.name;
      }
      const report = await first;
      await classifier.whenIdle();
      let empty;
      try {
        await classifier.addFeedback('   ', 'A');
      } catch (e) {
        empty = e.name;
      }
      // A rollback asked for while an update trains runs after the update's
      // commit: the instance, the database and a fresh load agree on it.
      const shipped = (await classifier.versions())[0].version;
      const [raced, back] = await Promise.all([classifier.update({ epochs: 20 }), classifier.rollback(shipped)]);
      const fresh = await lt.Classifier.load('/bundles/default/', { storeName: 'overlap', autoUpdate: { enabled: false } });
      const order = { shipped, raced: raced.version.version, back: back.version, current: classifier.currentVersion.version, fresh: fresh.currentVersion.version };
      let badOption;
      try {
        await lt.Classifier.load('/bundles/default/', { storeName: 'overlap', autoUpdate: { treshold: 3 } });
      } catch (e) {
        badOption = `${e.name}: ${e.message}`;
      }
      return {
        order,
        badOption,
        rejected: settled.filter((s) => s.status === 'rejected').map((s) => String(s.reason)),
        second,
        accepted: report.accepted,
        empty,
        count: (await classifier.stats()).sampleCount,
      };
    }, CORRECTIONS.slice(0, 12));
    assert.deepEqual(found.rejected, []);
    assert.equal(found.second, 'InvalidStateError');
    assert.equal(typeof found.accepted, 'boolean');
    assert.equal(found.empty, 'InvalidSampleError');
    assert.equal(found.count, 12);
    const { order } = found;
    assert.ok(order.raced > order.shipped, JSON.stringify(order));
    assert.deepEqual([order.back, order.current, order.fresh], [order.shipped, order.shipped, order.shipped], JSON.stringify(order));
    assert.match(found.badOption, /^ConfigError: .*classifier options: autoUpdate\.treshold: unknown field `treshold`/);
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('3,000 texts in one predictMany call, then a trapped module says so by name', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const texts = DATA.slice(0, 3_000).map((r) => r.text);
    const found = await page.evaluate(async (texts) => {
      const classifier = await lt.Classifier.load('/bundles/default/', { storeName: 'many', autoUpdate: { enabled: false } });
      // Once a single call that trapped the module (it ran out of memory
      // padding every text to the longest) and broke every later call.
      const started = performance.now();
      const many = classifier.predictMany(texts);
      const seconds = (performance.now() - started) / 1e3;
      const alone = [0, 1234, 2999].map((i) => classifier.predict(texts[i]).label);
      const settle = (f) => { try { return { ok: f() }; } catch (e) { return { name: e.name, message: e.message }; } };
      const trap = settle(() => classifier.forceTrapForTests(false));
      const after = settle(() => classifier.predict('turn on the lights'));
      return {
        count: many.length,
        seconds,
        sampled: [0, 1234, 2999].map((i) => many[i].label),
        alone,
        trap,
        after,
        same: lt.moduleTrap()?.message === after.message,
      };
    }, texts);
    assert.equal(found.count, 3_000);
    assert.deepEqual(found.sampled, found.alone, 'in the order asked');
    console.log(`predictMany of 3,000 texts: ${found.seconds.toFixed(1)} s`);
    assert.equal(found.trap.name, 'ModuleTrappedError', JSON.stringify(found.trap));
    assert.equal(found.after.name, 'ModuleTrappedError', 'later calls do not enter the broken instance');
    assert.match(found.after.message, /load the page again/);
    assert.ok(found.same);
    await context.close();
  });

  test('a trap inside an async task rejects the call instead of leaving it pending', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const found = await page.evaluate(async () => {
      const classifier = await lt.Classifier.load('/bundles/default/', { storeName: 'trap-later', autoUpdate: { enabled: false } });
      const pending = classifier.addFeedback('turn on the lights', 'Lights');
      const trap = await classifier.forceTrapForTests(true).then(() => 'resolved', (e) => e.name);
      return { trap, pending: await pending.then(() => 'stored', (e) => e.name) };
    });
    assert.equal(found.trap, 'ModuleTrappedError');
    assert.ok(['stored', 'ModuleTrappedError'].includes(found.pending), found.pending);
    await context.close();
  });

  test('with onlyWhileCharging, a due update waits for the charger instead of being skipped', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const found = await page.evaluate(async (texts) => {
      // The Battery Status API, as a phone on battery reports it; headless
      // Chromium's says "charging" and cannot be unplugged.
      const battery = Object.assign(new EventTarget(), { charging: false });
      Object.defineProperty(navigator, 'getBattery', { value: async () => battery, configurable: true });
      const phases = [];
      let finished;
      const done = new Promise((resolve) => { finished = resolve; });
      const classifier = await lt.Classifier.load('/bundles/default/', {
        storeName: 'charging',
        autoUpdate: { threshold: 3, onlyWhileCharging: true, options: { epochs: 5 } },
        onAutoUpdate: (event) => {
          phases.push(event.phase);
          if (event.phase === 'finished' || event.phase === 'failed') finished(event);
        },
      });
      for (const text of texts) await classifier.addFeedback(text, 'Forecast');
      await new Promise((resolve) => setTimeout(resolve, 500));
      const onBattery = [...phases];
      battery.charging = true;
      battery.dispatchEvent(new Event('chargingchange'));
      const outcome = await done;
      return { onBattery, phases: [...new Set(phases)], outcome: outcome.phase, pending: (await classifier.stats()).pendingCount };
    }, CORRECTIONS.slice(0, 4));
    assert.deepEqual(found.onBattery, [], 'nothing trains on battery');
    assert.deepEqual(found.phases.filter((p) => p !== 'progress'), ['started', 'finished']);
    assert.equal(found.outcome, 'finished');
    assert.equal(found.pending, 0, 'plugged in, the deferred update learned every correction');
    await context.close();
  });

  test("with onlyWhileCharging and the engine's own battery, a due update runs where nothing says otherwise", async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const found = await page.evaluate(async (texts) => {
      let finished;
      const done = new Promise((resolve) => { finished = resolve; });
      const classifier = await lt.Classifier.load('/bundles/default/', {
        storeName: 'own-battery',
        autoUpdate: { threshold: 3, onlyWhileCharging: true, options: { epochs: 5 } },
        onAutoUpdate: (event) => {
          if (event.phase === 'finished' || event.phase === 'failed') finished(event.phase);
        },
      });
      for (const text of texts) await classifier.addFeedback(text, 'Forecast');
      const battery = typeof navigator.getBattery === 'function' ? await navigator.getBattery() : null;
      return { battery: battery && { charging: battery.charging }, outcome: await done };
    }, CORRECTIONS.slice(0, 3));
    // Headless Chromium's battery says "charging"; Firefox and WebKit have no
    // Battery Status API, and the library does not hold updates back on
    // what it cannot know: the update runs.
    assert.deepEqual(found.battery, FEATURES[env.engine].battery ? { charging: true } : null);
    assert.equal(found.outcome, 'finished');
    await context.close();
  });
});
