// The IndexedDB store in each engine (headless Chromium, Firefox ESR,
// WebKitGTK), through the built package, in the situations only a real
// browser produces: reloads, a tab closed in the middle of saving, damaged
// records, an encoder change with real encoders, two tabs saving at once, a
// full quota, persistence, and moving everything to a fresh profile. Each
// test gets its own browser context (a fresh profile); the logic behind it
// is tested natively and on IndexedDB by tests/store.rs and
// tests/store_in_browser.rs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FEATURES, inEveryEngine, openStorageLimitedContext, openTestPage } from './browser.mjs';

inEveryEngine((env) => {
  const openPage = (context) => openTestPage(context, env.url);

  // Runs in the page: a store on the tiny encoder with a few samples and one
  // trained version. Returns what a later page should find.
  async function seedStore({ name, seed = 1 }) {
    const enc = await tinyEncoder();
    const shipped = lt.Head.seeded(enc.dim, ['lights', 'music'], { kind: 'mlp', hidden: 16 }, 7);
    const store = await lt.Store.open(name, enc.sha256, shipped);
    const texts = [
      ['turn on the lights', 'lights'],
      ['lights off please', 'lights'],
      ['play some jazz', 'music'],
      ['next song', 'music'],
    ];
    const vectors = enc.embed(texts.map((t) => t[0]));
    for (const [i, [text, label]] of texts.entries()) {
      await store.addSample(text, label, row(vectors, enc.dim, i));
    }
    const data = await store.trainingData();
    const result = shipped.update(data.vectors, data.labels, { seed });
    const version = await store.saveVersion(result.head, {
      parent: store.shipped.version,
      sampleCount: data.labels.length,
      metrics: { trainAccuracy: result.trainAccuracy, epochs: result.epochs },
    });
    const probe = enc.embed(['lights on in the hall']);
    return { version, probabilities: Array.from(result.head.probabilities(probe)), store };
  }

  test('a reload finds the samples, the versions and the current pointer', async () => {
    const context = await env.browser.newContext();
    const first = await openPage(context);
    await first.evaluate(`window.seedStore = ${seedStore}`);
    const saved = await first.evaluate(async () => {
      const { version, probabilities } = await seedStore({ name: 'reload' });
      return { version, probabilities };
    });
    await first.close();

    const second = await openPage(context);
    const found = await second.evaluate(async () => {
      const enc = await tinyEncoder();
      const shipped = lt.Head.seeded(enc.dim, ['lights', 'music'], { kind: 'mlp', hidden: 16 }, 7);
      const store = await lt.Store.open('reload', enc.sha256, shipped);
      const loaded = await store.loadCurrent();
      return {
        samples: (await store.samples()).map((s) => [s.text, s.label]),
        missing: (await store.trainingData()).missing.length,
        versions: (await store.versions()).map((v) => [v.version, v.status]),
        current: await store.currentVersion(),
        loaded: loaded.version,
        problems: loaded.problems,
        probabilities: Array.from(loaded.head.probabilities(enc.embed(['lights on in the hall']))),
      };
    });
    assert.deepEqual(found.samples, [
      ['turn on the lights', 'lights'],
      ['lights off please', 'lights'],
      ['play some jazz', 'music'],
      ['next song', 'music'],
    ]);
    assert.equal(found.missing, 0, 'the cached vectors are there too');
    assert.deepEqual(found.versions, [[1, 'shipped'], [saved.version.version, 'accepted']]);
    assert.equal(found.current, saved.version.version);
    assert.deepEqual(found.loaded, saved.version);
    assert.deepEqual(found.problems, []);
    assert.deepEqual(found.probabilities, saved.probabilities, 'the same head, bit for bit');
    assert.deepEqual(second.errors, []);
    await context.close();
  });

  test('a tab closed in the middle of saving leaves every version whole and current intact', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    // The page lists each version as its save commits; the test reads the
    // list (no driver can call back into Node in every engine).
    await page.evaluate(async () => {
      window.reported = [];
      const enc = await tinyEncoder();
      const labels = Array.from({ length: 40 }, (_, i) => `label ${i}`);
      const shipped = lt.Head.seeded(enc.dim, labels, { kind: 'mlp', hidden: 512 }, 1);
      const store = await lt.Store.open('interrupted', enc.sha256, shipped, { keepVersions: 1000 });
      // Saves back to back, each ~100 KB of weights, until the tab goes away.
      (async () => {
        for (let seed = 2; ; seed++) {
          const head = lt.Head.seeded(enc.dim, labels, { kind: 'mlp', hidden: 512 }, seed);
          const v = await store.saveVersion(head, { sampleCount: seed });
          window.reported.push(v.version);
        }
      })();
    });
    let seen = [];
    while (seen.length < 5) seen = await page.evaluate(() => window.reported.slice());
    await page.close({ runBeforeUnload: false });

    const again = await openPage(context);
    const found = await again.evaluate(async () => {
      const enc = await tinyEncoder();
      const labels = Array.from({ length: 40 }, (_, i) => `label ${i}`);
      const shipped = lt.Head.seeded(enc.dim, labels, { kind: 'mlp', hidden: 512 }, 1);
      const store = await lt.Store.open('interrupted', enc.sha256, shipped, { keepVersions: 1000 });
      const versions = await store.versions();
      const broken = [];
      for (const v of versions) {
        try {
          const { head } = await store.loadVersion(v.version);
          const expected = lt.Head.seeded(enc.dim, labels, { kind: 'mlp', hidden: 512 }, v.status === 'shipped' ? 1 : v.sampleCount);
          const x = enc.embed(['probe']);
          if (String(head.probabilities(x)) !== String(expected.probabilities(x))) broken.push([v.version, 'different weights']);
        } catch (e) {
          broken.push([v.version, e.name, e.message]);
        }
      }
      const loaded = await store.loadCurrent();
      return { listed: versions.map((v) => v.version), broken, current: loaded.version.version, problems: loaded.problems };
    });
    assert.deepEqual(found.broken, [], 'every listed version loads, with the weights it was saved with');
    for (const v of seen) assert.ok(found.listed.includes(v), `version ${v} was reported saved, so it is on disk`);
    assert.ok(found.listed.includes(found.current));
    assert.ok(found.current >= Math.max(...seen), 'current is the newest whole save');
    assert.deepEqual(found.problems, []);
    await context.close();
  });

  test('a corrupt weight record is detected, reported, and the last good version is used', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    await page.evaluate(`window.seedStore = ${seedStore}`);
    const found = await page.evaluate(async () => {
      const { version: good, store } = await seedStore({ name: 'corrupt' });
      const enc = await tinyEncoder();
      const data = await store.trainingData();
      const { head } = await store.loadVersion(good.version);
      const next = head.update(data.vectors, data.labels, { seed: 9, epochs: 5 }).head;
      const bad = await store.saveVersion(next, { parent: good.version });
      // One flipped bit in the newest version's weights.
      await tamper('localtune:corrupt', 'weights', bad.version, (record) => {
        record.bytes[record.bytes.length - 3] ^= 0x40;
        return record;
      });
      const afterFlip = await store.loadCurrent();
      // A record that is not even an object any more.
      await tamper('localtune:corrupt', 'weights', good.version, (record) => ({ version: record.version, bytes: 'garbage' }));
      const afterGarbage = await store.loadCurrent();
      let rollbackError;
      try {
        await store.rollback(bad.version);
      } catch (e) {
        rollbackError = e.name;
      }
      return {
        good: good.version,
        bad: bad.version,
        shipped: store.shipped.version,
        afterFlip: { version: afterFlip.version.version, problems: afterFlip.problems },
        afterGarbage: { version: afterGarbage.version.version, problems: afterGarbage.problems },
        rollbackError,
        current: await store.currentVersion(),
      };
    });
    assert.equal(found.afterFlip.version, found.good, 'fell back to the parent');
    assert.equal(found.afterFlip.problems.length, 1);
    assert.equal(found.afterFlip.problems[0].name, 'CorruptRecordError');
    assert.equal(found.afterFlip.problems[0].version, found.bad);
    assert.match(found.afterFlip.problems[0].message, /checksum/);
    assert.equal(found.afterGarbage.version, found.shipped, 'then to the shipped head');
    assert.equal(found.afterGarbage.problems[0].name, 'CorruptRecordError');
    assert.equal(found.afterGarbage.problems[0].version, found.good);
    assert.equal(found.rollbackError, 'CorruptRecordError', 'a corrupt version cannot be made current');
    assert.equal(found.current, found.shipped);
    await context.close();
  });

  test('a new encoder never uses old heads: samples are re-embedded and the head retrained', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    const found = await page.evaluate(async () => {
      const texts = [
        ['turn on the kitchen lights', 'lights'],
        ['switch off the bedroom lamp', 'lights'],
        ['dim the lights in the living room', 'lights'],
        ['play some jazz music', 'music'],
        ['skip to the next song', 'music'],
        ['turn the music up', 'music'],
        ['will it rain tomorrow', 'weather'],
        ['what is the weather like today', 'weather'],
        ['is it going to be sunny this weekend', 'weather'],
      ];
      const tiny = await tinyEncoder();
      const oldShipped = lt.Head.seeded(tiny.dim, ['lights', 'music']);
      let store = await lt.Store.open('encoder-change', tiny.sha256, oldShipped);
      const vectors = tiny.embed(texts.map((t) => t[0]));
      for (const [i, [text, label]] of texts.entries()) await store.addSample(text, label, row(vectors, tiny.dim, i));
      const head = lt.Head.seeded(tiny.dim, ['lights', 'music']);
      head.addLabel('weather');
      const data = await store.trainingData();
      const old = await store.saveVersion(head.update(data.vectors, data.labels).head, { sampleCount: texts.length });
      store.close();

      const real = await realEncoder();
      const shipped = lt.Head.seeded(real.dim, ['lights', 'music']);
      store = await lt.Store.open('encoder-change', real.sha256, shipped);
      const loaded = await store.loadCurrent();
      let wrongEncoder;
      try {
        await store.retrainForEncoder(tiny);
      } catch (e) {
        wrongEncoder = `${e.name}: ${e.message}`;
      }
      const kinds = [];
      const retrained = await store.retrainForEncoder(real, {}, (e) => { kinds.push(e.kind); });
      const now = await store.loadCurrent();
      const predict = (text) => now.head.predict(real.embed([text]))[0].label;
      return {
        old: old.version,
        oldEncoder: old.encoderSha256,
        loaded: { encoder: loaded.version.encoderSha256, status: loaded.version.status, encoderChanged: loaded.encoderChanged, problems: loaded.problems },
        wrongEncoder,
        kinds: [kinds[0], kinds.at(-1)],
        retrained: retrained.version,
        trainAccuracy: retrained.result.trainAccuracy,
        missingAfter: (await store.trainingData()).missing.length,
        now: { version: now.version.version, encoder: now.version.encoderSha256, labels: now.head.labels },
        predictions: [predict('lights off in the hallway'), predict('put on a song by miles davis'), predict('how cold will it be tonight')],
        realSha: real.sha256,
      };
    });
    assert.equal(found.loaded.encoder, found.realSha, 'the old head is not used');
    assert.equal(found.loaded.status, 'shipped');
    assert.equal(found.loaded.encoderChanged, true);
    assert.equal(found.loaded.problems[0].name, 'EncoderChangedError');
    assert.match(found.wrongEncoder, /^InvalidStateError: .*this store is for encoder/);
    assert.deepEqual(found.kinds, ['began', 'done']);
    assert.equal(found.retrained.encoderSha256, found.realSha);
    assert.equal(found.retrained.sampleCount, 9);
    assert.equal(found.trainAccuracy, 1);
    assert.equal(found.missingAfter, 0, 'every sample now has a vector from the new encoder');
    assert.equal(found.now.version, found.retrained.version);
    assert.deepEqual(found.now.labels, ['lights', 'music', 'weather']);
    assert.deepEqual(found.predictions, ['lights', 'music', 'weather']);
    await context.close();
  });

  test('two tabs saving at once both keep their versions, with distinct numbers', async () => {
    const context = await env.browser.newContext();
    const [a, b] = [await openPage(context), await openPage(context)];
    const open = async (tab) => {
      const enc = await tinyEncoder();
      window.enc = enc;
      window.store = await lt.Store.open('two-tabs', enc.sha256, lt.Head.seeded(enc.dim, ['x', 'y'], { kind: 'mlp', hidden: 8 }, 0));
      return tab;
    };
    await a.evaluate(open, 'a');
    await b.evaluate(open, 'b');
    const save = async (offset) => {
      const saves = [];
      for (let i = 0; i < 10; i++) {
        const head = lt.Head.seeded(enc.dim, ['x', 'y'], { kind: 'mlp', hidden: 8 }, offset + i);
        saves.push(store.saveVersion(head, { sampleCount: offset + i }));
      }
      return (await Promise.all(saves)).map((v) => [v.version, v.sampleCount]);
    };
    const [fromA, fromB] = await Promise.all([a.evaluate(save, 100), b.evaluate(save, 200)]);
    const listed = await a.evaluate(async () => {
      const out = [];
      for (const v of await store.versions()) {
        const { head } = await store.loadVersion(v.version);
        const expected = lt.Head.seeded(enc.dim, ['x', 'y'], { kind: 'mlp', hidden: 8 }, v.sampleCount);
        const x = enc.embed(['probe']);
        out.push([v.version, v.sampleCount, String(head.probabilities(x)) === String(expected.probabilities(x))]);
      }
      return out;
    });
    const numbers = [...fromA, ...fromB].map(([v]) => v);
    assert.equal(new Set(numbers).size, 20, 'twenty distinct version numbers');
    for (const [v, n] of [...fromA, ...fromB]) {
      assert.ok(listed.some(([lv, ln, same]) => lv === v && ln === n && same), `version ${v} survived intact`);
    }
    await context.close();
  });

  // A small quota (openStorageLimitedContext): 2 MB for the origin in
  // Chromium, 10 MB for the profile in Firefox and WebKit.
  test('a full quota is a clear QuotaExceededError and nothing is half-written', async () => {
    const limited = await openStorageLimitedContext(env, { chromiumBytes: 2_000_000, profileKb: 10_240 });
    // Closed whatever happens: a second browser left open keeps the run alive.
    try {
      const page = await openPage(limited.context);
      const found = await page.evaluate(async () => {
        const enc = await tinyEncoder();
        const store = await lt.Store.open('quota', enc.sha256, lt.Head.seeded(enc.dim, ['a', 'b']));
        // Random letters: IndexedDB compresses what it can, so repeated text
        // would hardly use any quota.
        const noise = () => Array.from({ length: 16 * 1024 - 16 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join('');
        let added = 0;
        let sampleError;
        for (; added < 1000; added++) {
          try {
            await store.addSample(`${added} ${noise()}`, 'a', enc.embed(['x']));
          } catch (e) {
            sampleError = { name: e.name, message: e.message };
            break;
          }
        }
        const countAfter = await store.sampleCount();
        const versionsBefore = await store.versions();
        const currentBefore = await store.currentVersion();
        const big = lt.Head.seeded(enc.dim, Array.from({ length: 300 }, (_, i) => `l${i}`), { kind: 'mlp', hidden: 2048 }, 1);
        let versionError;
        try {
          await store.saveVersion(big);
        } catch (e) {
          versionError = { name: e.name, message: e.message };
        }
        const loaded = await store.loadCurrent();
        return {
          added,
          sampleError,
          countAfter,
          versionError,
          versionsSame: JSON.stringify(await store.versions()) === JSON.stringify(versionsBefore),
          currentSame: (await store.currentVersion()) === currentBefore,
          problems: loaded.problems,
          status: await store.storageStatus(),
        };
      });
      assert.ok(found.added > 10 && found.added < 1000, `${found.added} samples fit`);
      assert.equal(found.sampleError?.name, 'QuotaExceededError', JSON.stringify(found.sampleError));
      assert.match(found.sampleError.message, /quota exceeded during adding a sample; nothing was written/);
      assert.equal(found.countAfter, found.added, 'the refused sample is not there');
      // Firefox refuses the 5 MB record at put() with an InvalidStateError
      // ("did not allow mutations"), which the library reports as what it is.
      assert.equal(found.versionError?.name, 'QuotaExceededError', JSON.stringify(found.versionError));
      assert.ok(found.versionsSame && found.currentSame, 'no version, no weights, the same current');
      assert.deepEqual(found.problems, []);
      if (FEATURES[env.engine].storageManager) {
        // Chromium's override is enforced on writes; estimate() goes on
        // reporting the profile's ordinary quota.
        assert.ok(found.status.usageBytes > 0 && found.status.quotaBytes > 0, JSON.stringify(found.status));
      } else {
        // WebKitGTK has no StorageManager: usage and quota stay unknown
        // (null) even when the quota is what refused the write.
        assert.equal(found.status.usageBytes, null, JSON.stringify(found.status));
        assert.equal(found.status.quotaBytes, null, JSON.stringify(found.status));
      }
      // A transaction given up on is not left to reject unhandled.
      assert.deepEqual(page.errors, []);
    } finally {
      await limited.close();
    }
  });

  test('persistence is requested and the storage estimate reported', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    await page.evaluate(`window.seedStore = ${seedStore}`);
    const found = await page.evaluate(async () => {
      const { store } = await seedStore({ name: 'persist' });
      const granted = await store.requestPersistence();
      return { granted, status: await store.storageStatus() };
    });
    assert.equal(typeof found.granted, 'boolean');
    assert.equal(found.status.persisted, found.granted);
    // Chromium decides by itself (site engagement); Firefox asks the user,
    // and the test profile answers "allow" (engines.mjs).
    if (env.engine === 'firefox') assert.equal(found.granted, true, 'the answer reaches the app');
    if (FEATURES[env.engine].storageManager) {
      assert.ok(found.status.usageBytes > 0, JSON.stringify(found.status));
      assert.ok(found.status.quotaBytes > found.status.usageBytes);
    } else {
      // No StorageManager (WebKitGTK): nothing to ask, so not persisted, and
      // usage and quota unknown rather than made up.
      assert.deepEqual(found, { granted: false, status: { persisted: false, usageBytes: null, quotaBytes: null } });
    }
    await context.close();
  });

  test('an export imported into a fresh profile gives the same predictions', async () => {
    const source = await env.browser.newContext();
    const page = await openPage(source);
    await page.evaluate(`window.seedStore = ${seedStore}`);
    const exported = await page.evaluate(async () => {
      const { store, probabilities } = await seedStore({ name: 'export' });
      const file = await store.export();
      return { file: Array.from(file), probabilities, samples: await store.samples(), versions: await store.versions() };
    });
    await source.close();

    const target = await env.browser.newContext();
    const fresh = await openPage(target);
    const found = await fresh.evaluate(async (file) => {
      const enc = await tinyEncoder();
      const shipped = lt.Head.seeded(enc.dim, ['lights', 'music'], { kind: 'mlp', hidden: 16 }, 7);
      const store = await lt.Store.open('export', enc.sha256, shipped);
      const damaged = Uint8Array.from(file);
      damaged[damaged.length - 20] ^= 1;
      let damagedError;
      try {
        await store.import(damaged);
      } catch (e) {
        damagedError = e.name;
      }
      const counts = await store.import(Uint8Array.from(file));
      const loaded = await store.loadCurrent();
      return {
        damagedError,
        counts,
        probabilities: Array.from(loaded.head.probabilities(enc.embed(['lights on in the hall']))),
        samples: await store.samples(),
        versions: await store.versions(),
      };
    }, exported.file);
    assert.equal(found.damagedError, 'ImportError');
    assert.deepEqual(found.counts, { samples: 4, versions: 2 });
    assert.deepEqual(found.probabilities, exported.probabilities);
    assert.deepEqual(found.samples, exported.samples);
    assert.deepEqual(found.versions, exported.versions);
    await target.close();
  });

  test('overlapping calls on one store all settle (no borrow is held across an await)', async () => {
    const context = await env.browser.newContext();
    const page = await openPage(context);
    await page.evaluate(`window.seedStore = ${seedStore}`);
    const found = await page.evaluate(async () => {
      const { store } = await seedStore({ name: 'overlap' });
      const enc = await tinyEncoder();
      const calls = [];
      for (let i = 0; i < 10; i++) {
        calls.push(store.addSample(`text ${i}`, i % 2 ? 'lights' : 'music', enc.embed([`text ${i}`])));
        calls.push(store.versions());
        calls.push(store.saveVersion(lt.Head.seeded(enc.dim, ['lights', 'music']), { rejected: true }));
        calls.push(store.loadCurrent());
        calls.push(store.trainingData());
      }
      const settled = await Promise.allSettled(calls);
      return { rejected: settled.filter((s) => s.status === 'rejected').map((s) => String(s.reason)), samples: await store.sampleCount() };
    });
    assert.deepEqual(found.rejected, []);
    assert.equal(found.samples, 14);
    assert.deepEqual(page.errors, []);
    await context.close();
  });
});
