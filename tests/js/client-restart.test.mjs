// WorkerClassifier's side of a trap, in Node, against scripted workers: which
// calls in flight are sent again to the new worker and which fail, how
// often, and that a terminated worker's late messages change nothing. The
// same with the real worker and a real trap, in every browser engine, is in
// worker.test.mjs ("a trapped module: …").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerClassifier } from '../../pkg/client.js';

const TRAP = { name: 'ModuleTrappedError', message: 'the WebAssembly module trapped in Classifier.predict (unreachable)' };
const DESCRIBED = { labels: ['A', 'B'], currentVersion: 1, problems: [], manifest: {} };

/**
 * A stand-in for the worker script: `answer(method, args, worker, id)` returns
 * the reply ({ result } or { error }) to each request, null to leave it
 * unanswered, or 'trap' for what the worker script sends when a call traps
 * the module (the call's error, then the `trapped` event). Replies arrive
 * as messages do, in a later task.
 */
class ScriptedWorker {
  constructor(answer, log) {
    this.answer = answer;
    this.log = log;
    this.terminated = false;
    this.onmessage = null;
    log.workers.push(this);
  }

  postMessage({ id, method, args, cancel }) {
    if (cancel !== undefined) return;
    this.log.calls.push({ worker: this.log.workers.indexOf(this), method });
    const reply = method === 'load' ? { result: DESCRIBED } : this.answer(method, args, this, id);
    if (reply === 'trap') {
      this.send({ id, error: TRAP });
      this.send({ event: 'trapped', data: TRAP });
    } else if (reply) {
      this.send({ id, ...reply });
    }
  }

  send(message) {
    setTimeout(() => { if (!this.terminated) this.onmessage?.({ data: message }); });
  }

  terminate() { this.terminated = true; }
}

/** A client whose workers follow `answer` (the first worker's is `first`). */
async function scripted(first, later = first) {
  const log = { workers: [], calls: [] };
  const client = await WorkerClassifier.load('http://127.0.0.1/bundles/default/', {
    worker: () => new ScriptedWorker(log.workers.length === 0 ? first : later, log),
  });
  return { client, log };
}

const settle = (p) => p.then((ok) => ({ ok }), (e) => ({ name: e.name, message: e.message }));

test('a trap sends the reads in flight to the new worker, once, and fails the writes', async () => {
  // The first worker leaves predict, samples and addFeedback unanswered and
  // traps on `stats` (a reply with the error, then the event, as the worker
  // script sends them); the second answers every call.
  const held = (method) => (method === 'stats' ? 'trap' : null);
  const answers = (method, args) => ({ result: method === 'predict' ? { label: `label of ${args[0]}` } : method });
  const { client, log } = await scripted(held, answers);

  const [predicted, samples, feedback, stats] = await Promise.all([
    settle(client.predict('pause the music')),
    settle(client.samples()),
    settle(client.addFeedback('pause the music', 'Music')),
    settle(client.stats()),
  ]);
  assert.deepEqual(predicted, { ok: { label: 'label of pause the music' } }, 'a read in flight is answered by the new worker');
  assert.deepEqual(samples, { ok: 'samples' });
  assert.deepEqual(stats, { ok: 'stats' }, 'the read that trapped is sent again too');
  assert.equal(feedback.name, 'ModuleTrappedError', 'a write in flight fails: whether it was stored is for the caller to find out');
  assert.equal(client.restarts, 1);
  assert.equal(log.workers.length, 2);
  assert.ok(log.workers[0].terminated);
  assert.deepEqual(
    log.calls.filter((c) => c.worker === 1).map((c) => c.method).sort(),
    ['load', 'predict', 'samples', 'stats'],
    'the new worker loads, then gets the three reads and not the write',
  );
  assert.deepEqual(await client.predict('next'), { label: 'label of next' });
});

test('a read whose second try traps too fails with the trap; the worker after that serves later calls', async () => {
  const { client, log } = await scripted((method, args, worker) => {
    if (method !== 'predict') return { result: method };
    // This predict traps on every worker the first two start.
    if (log.workers.indexOf(worker) < 2) return 'trap';
    return { result: { label: 'A' } };
  });
  const first = await settle(client.predict('a text that traps'));
  assert.equal(first.name, 'ModuleTrappedError');
  assert.match(first.message, /trapped in Classifier\.predict/);
  assert.deepEqual(await client.predict('a text that traps'), { label: 'A' });
  assert.equal(client.restarts, 2, 'one restart for the trap, one for the trap of its second try');
  assert.equal(log.workers.filter((w) => w.terminated).length, 2);
});

test('a new worker that traps while it loads fails the calls waiting for it, and stays failed', async () => {
  const log = { workers: [], calls: [] };
  const client = await WorkerClassifier.load('http://127.0.0.1/bundles/default/', {
    worker: () => {
      const worker = new ScriptedWorker(() => 'trap', log);
      if (log.workers.length > 1) {
        // Every worker after the first traps in `load`.
        worker.postMessage = function ({ id, method }) {
          log.calls.push({ worker: log.workers.indexOf(this), method });
          this.send({ id, error: TRAP });
          this.send({ event: 'trapped', data: TRAP });
        };
      }
      return worker;
    },
  });
  const predicted = await settle(client.predict('pause the music'));
  assert.equal(predicted.name, 'ModuleTrappedError');
  assert.equal(client.restarts, 0, 'restarts counts the workers that loaded');
  assert.equal(log.workers.length, 2, 'no third worker: a restart that fails is not tried again by itself');
  assert.equal((await settle(client.samples())).name, 'ModuleTrappedError');
});

test('messages a terminated worker sent before it went are ignored', async () => {
  let stale;
  const { client } = await scripted((method, args, worker) => {
    if (method !== 'predict') return { result: method };
    if (!stale) {
      stale = worker;
      return 'trap';
    }
    return { result: { label: 'B' } };
  });
  assert.deepEqual(await client.predict('x'), { label: 'B' });
  // The old worker's queued messages, delivered after all (a browser may
  // still deliver what a worker posted before `terminate()`).
  stale.onmessage({ data: { event: 'trapped', data: TRAP } });
  stale.onmessage({ data: { id: 2, result: { label: 'stale' } } });
  assert.equal(client.restarts, 1, 'a late "trapped" from the old worker starts no other one');
  assert.deepEqual(await client.predict('y'), { label: 'B' });
});

test("a terminated worker's late error event fails none of the new worker's calls", async () => {
  let stale;
  let answerHeld;
  const { client } = await scripted((method, args, worker, id) => {
    if (method !== 'predict') return { result: method };
    if (!stale) {
      stale = worker;
      return 'trap';
    }
    // The new worker answers the predict sent again only when told.
    answerHeld = () => worker.send({ id, result: { label: 'B' } });
    return null;
  });
  const predicted = settle(client.predict('x'));
  for (let i = 0; !answerHeld && i < 200; i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(answerHeld, 'the predict in flight was sent to the new worker');
  // An error event the old worker raised before `terminate()`, delivered
  // after it.
  stale.onerror({ message: 'a late error of the old worker', preventDefault() {} });
  answerHeld();
  assert.deepEqual(await predicted, { ok: { label: 'B' } }, "the new worker's call is not failed by the old worker's error");
});
