// The Head class of the built package, in Node: training on real encoder
// features through the JS API, progress events, cancelling (callback and
// AbortSignal), option checking and error names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { initSync, Encoder, Head, defaultUpdateOptions } from '../../pkg/localtune_onnx.js';

const root = new URL('../../', import.meta.url);
const read = (p) => readFile(new URL(p, root));
initSync({ module: await read('pkg/localtune_onnx_bg.wasm') });

const encoder = new Encoder(
  await read('models/all-minilm-l6-v2-int8/model.onnx'),
  await read('models/all-minilm-l6-v2-int8/tokenizer.json'),
);
const samples = [
  ['turn on the kitchen lights', 'lights'],
  ['switch off the bedroom lamp', 'lights'],
  ['lights off in the hall please', 'lights'],
  ['dim the living room lights', 'lights'],
  ['set the thermostat to 21 degrees', 'climate'],
  ['make it warmer in here', 'climate'],
  ['turn the heating down', 'climate'],
  ['it is too cold, raise the temperature', 'climate'],
  ['play some jazz', 'music'],
  ['next song please', 'music'],
  ['pause the music', 'music'],
  ['turn the volume up', 'music'],
];
const features = encoder.embed(samples.map(([t]) => t));
const labels = samples.map(([, l]) => l);
const LABELS = ['lights', 'climate', 'music'];

test('an update learns the labels and leaves the old head as it was', () => {
  const head = Head.seeded(encoder.dim, LABELS);
  const before = head.probabilities(features.subarray(0, 384));
  const events = [];
  const result = head.update(features, labels, {}, (e) => {
    events.push(e);
  });
  assert.equal(result.trainAccuracy, 1);
  assert.equal(events[0].kind, 'began');
  assert.equal(events.at(-1).kind, 'done');
  assert.equal(events.filter((e) => e.kind === 'batchEnd').length, result.steps);
  assert.deepEqual(head.probabilities(features.subarray(0, 384)), before, 'the old head is unchanged');
  const probe = encoder.embed(['could you turn the lights on in the garage']);
  const ranked = result.head.predict(probe);
  assert.equal(ranked[0].label, 'lights');
  assert.ok(ranked[0].probability > ranked[1].probability);
  assert.ok(Math.abs(ranked.reduce((s, r) => s + r.probability, 0) - 1) < 1e-5);
  result.head.free();
  head.free();
});

test('the defaults are visible to JS and options are checked', () => {
  const defaults = defaultUpdateOptions();
  assert.equal(defaults.optimizer.kind, 'adam');
  assert.equal(typeof defaults.learningRate, 'number');
  const head = Head.seeded(encoder.dim, LABELS);
  const expectName = (fn, name, pattern) => {
    assert.throws(fn, (e) => e instanceof Error && e.name === name && pattern.test(e.message));
  };
  expectName(() => head.update(features, labels, { learningRte: 0.1 }), 'ConfigError', /update options: learningRte: unknown field `learningRte`/);
  expectName(() => head.update(features, labels, { learningRate: -1 }), 'ConfigError', /learningRate/);
  expectName(() => head.update(features, labels.map(() => 'weather')), 'UnknownLabelError', /"weather"/);
  expectName(() => head.update(new Float32Array(0), []), 'TrainingError', /no samples/);
  const bad = features.slice();
  bad[5] = NaN;
  expectName(() => head.update(bad, labels), 'NonFiniteError', /index 5/);
  expectName(() => head.update(features.subarray(1), labels), 'ShapeError', /feature vectors/);
  // SGD with only a learning rate: momentum takes its default.
  const sgd = head.update(features, labels, { optimizer: { kind: 'sgd' }, learningRate: 0.5, epochs: 30 });
  assert.equal(sgd.trainAccuracy, 1);
  sgd.head.free();
  head.free();
});

test('returning false from onEvent or aborting the signal cancels with AbortError', () => {
  const head = Head.seeded(encoder.dim, LABELS);
  let batches = 0;
  assert.throws(
    () => head.update(features, labels, { batchSize: 2 }, (e) => (e.kind === 'batchEnd' && ++batches === 3 ? false : undefined)),
    (e) => e.name === 'AbortError',
  );
  assert.equal(batches, 3);
  const controller = new AbortController();
  batches = 0;
  assert.throws(
    () => head.update(features, labels, { batchSize: 2, signal: controller.signal }, (e) => {
      if (e.kind === 'batchEnd' && ++batches === 2) controller.abort();
    }),
    (e) => e.name === 'AbortError',
  );
  assert.equal(batches, 2);
  const thrown = new Error('observer failed');
  assert.throws(() => head.update(features, labels, {}, () => { throw thrown; }), (e) => e === thrown);
  head.free();
});

test('a new label grows the head and can be learned', () => {
  const head = Head.seeded(encoder.dim, LABELS);
  assert.equal(head.addLabel('music'), 2);
  assert.equal(head.addLabel('weather ☀ (mine)'), 3);
  assert.deepEqual(head.labels, [...LABELS, 'weather ☀ (mine)']);
  assert.throws(() => head.addLabel('   '), (e) => e.name === 'ConfigError');
  const more = ['will it rain tomorrow', 'what is the forecast', 'is it sunny outside', 'how windy is it today'];
  const all = new Float32Array([...features, ...encoder.embed(more)]);
  const result = head.update(all, [...labels, ...more.map(() => 'weather ☀ (mine)')]);
  assert.equal(result.head.predict(encoder.embed(['do I need an umbrella today']))[0].label, 'weather ☀ (mine)');
  result.head.free();
  head.free();
});
