// Head update speed, shared by Node (bench/head-speed.mjs) and the browser
// page (bench/head-speed.html): one update of 50 cached feature vectors with
// localtune's default settings, next to TensorFlow.js training the same head
// (dense 384 → 10, softmax, zero-initialised) with the same optimizer
// (Adam, same β1/β2/ε and learning rate), the same batch size and the same
// number of steps on the same vectors, in the same runtime.

export const INTENTS = 10;
export const PER_INTENT = 5;

/** 50 training texts: the first 5 train rows of the 10 intents with the most train rows. */
export function pickSamples(csvText) {
  const rows = csvText.trim().split('\n').slice(1).map((line) => {
    // The dataset has no quoted fields (tools/make_intents_dataset.py).
    const [text, intent, , split] = line.split(',');
    return { text, intent, split };
  });
  const byIntent = new Map();
  for (const r of rows.filter((r) => r.split === 'train')) {
    if (!byIntent.has(r.intent)) byIntent.set(r.intent, []);
    byIntent.get(r.intent).push(r.text);
  }
  const intents = [...byIntent.keys()]
    .sort((a, b) => byIntent.get(b).length - byIntent.get(a).length || a.localeCompare(b))
    .slice(0, INTENTS)
    .sort();
  const texts = [];
  const labels = [];
  for (const intent of intents) {
    for (const text of byIntent.get(intent).slice(0, PER_INTENT)) {
      texts.push(text);
      labels.push(intent);
    }
  }
  return { intents, texts, labels };
}

export function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p95: q(0.95), min: s[0], n: s.length };
}

/**
 * Times `runs` updates with localtune's defaults; returns timings and the
 * steps one update takes. Both sides get 30 untimed runs first: the engines
 * compile hot wasm and JS in tiers, and an app that learns keeps its code hot.
 */
export function timeLocaltune({ localtune, features, labels, intents, dim, now, runs, warmup = 30 }) {
  const head = localtune.Head.seeded(dim, intents);
  let last;
  const times = [];
  for (let i = 0; i < warmup + runs; i++) {
    const t0 = now();
    last = head.update(features, labels);
    const dt = now() - t0;
    if (i >= warmup) times.push(dt);
    if (i < warmup - 1) last.head.free();
  }
  const result = { ...stats(times), steps: last.steps, epochs: last.epochs, trainAccuracy: last.trainAccuracy, trainLoss: last.trainLoss };
  last.head.free();
  head.free();
  return result;
}

/**
 * Times `runs` TensorFlow.js trainings of the same head for `steps` steps of
 * `batchSize` rows (the rows of each batch cycle through a shuffled order),
 * with tf.tidy + optimizer.minimize — TF.js's leanest training loop.
 */
export async function timeTfjs({ tf, features, labels, intents, dim, steps, batchSize, learningRate, now, runs, warmup = 30 }) {
  const n = labels.length;
  const x = tf.tensor2d(features, [n, dim]);
  const y = tf.oneHot(tf.tensor1d(labels.map((l) => intents.indexOf(l)), 'int32'), intents.length).toFloat();
  const order = Array.from({ length: n }, (_, i) => i);
  const batches = [];
  for (let s = 0; s < Math.ceil(n / batchSize); s++) {
    const rows = order.slice(s * batchSize, (s + 1) * batchSize);
    const idx = tf.tensor1d(rows, 'int32');
    batches.push({ x: tf.gather(x, idx), y: tf.gather(y, idx) });
    idx.dispose();
  }
  const times = [];
  let finalLoss;
  for (let i = 0; i < warmup + runs; i++) {
    const kernel = tf.variable(tf.zeros([dim, intents.length]));
    const bias = tf.variable(tf.zeros([intents.length]));
    const optimizer = tf.train.adam(learningRate, 0.9, 0.999, 1e-7);
    const t0 = now();
    for (let s = 0; s < steps; s++) {
      const b = batches[s % batches.length];
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(b.y, tf.add(tf.matMul(b.x, kernel), bias)), false, [kernel, bias]);
    }
    // Training is only done when the weights are; read them back (as our
    // update returns its head).
    await kernel.data();
    const dt = now() - t0;
    if (i >= warmup) times.push(dt);
    finalLoss = tf.tidy(() => tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(x, kernel), bias)).dataSync()[0]);
    optimizer.dispose();
    kernel.dispose();
    bias.dispose();
  }
  for (const b of batches) {
    b.x.dispose();
    b.y.dispose();
  }
  x.dispose();
  y.dispose();
  return { ...stats(times), steps, finalLoss, backend: tf.getBackend() };
}
