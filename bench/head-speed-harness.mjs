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
  return { median: q(0.5), p05: q(0.05), p95: q(0.95), min: s[0], n: s.length };
}

/**
 * One update with localtune's defaults, as a runner: `run()` trains a fresh
 * copy of the same zero-initialised head and returns the milliseconds it took.
 */
export function localtuneRunner({ localtune, features, labels, intents, dim, now }) {
  const head = localtune.Head.seeded(dim, intents);
  let last = null;
  return {
    run() {
      const t0 = now();
      const outcome = head.update(features, labels);
      const dt = now() - t0;
      last?.head.free();
      last = outcome;
      return dt;
    },
    result: () => ({ steps: last.steps, epochs: last.epochs, trainAccuracy: last.trainAccuracy, trainLoss: last.trainLoss }),
    dispose() {
      last?.head.free();
      head.free();
    },
  };
}

/**
 * TensorFlow.js training the same head for `steps` steps of `batchSize` rows
 * (the rows of each batch cycle through a fixed order) with tf.tidy +
 * optimizer.minimize — TF.js's leanest training loop — as a runner like
 * {@link localtuneRunner}. Call it with the backend already set.
 */
export function tfjsRunner({ tf, features, labels, intents, dim, steps, batchSize, learningRate, now }) {
  const n = labels.length;
  const x = tf.tensor2d(features, [n, dim]);
  const y = tf.oneHot(tf.tensor1d(labels.map((l) => intents.indexOf(l)), 'int32'), intents.length).toFloat();
  const batches = [];
  for (let s = 0; s < Math.ceil(n / batchSize); s++) {
    const idx = tf.tensor1d(Array.from({ length: Math.min(batchSize, n - s * batchSize) }, (_, i) => s * batchSize + i), 'int32');
    batches.push({ x: tf.gather(x, idx), y: tf.gather(y, idx) });
    idx.dispose();
  }
  let finalLoss;
  return {
    async run() {
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
      finalLoss = tf.tidy(() => tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(x, kernel), bias)).dataSync()[0]);
      optimizer.dispose();
      kernel.dispose();
      bias.dispose();
      return dt;
    },
    result: () => ({ steps, finalLoss, backend: tf.getBackend() }),
    dispose() {
      for (const b of batches) {
        b.x.dispose();
        b.y.dispose();
      }
      x.dispose();
      y.dispose();
    },
  };
}

/**
 * Times two runners in alternation — ours, theirs, ours, theirs — after
 * `warmup` untimed runs of each, and returns both timings and the median of
 * the per-pair ratios theirs ÷ ours. The machines this runs on change speed
 * by up to 1.7× for tens of seconds at a time (a shared VM; a plain JS loop
 * shows the same phases), so timings taken one engine after the other would
 * compare different phases; a pair is always taken in the same one.
 */
export async function comparePaired(ours, theirs, { runs, warmup = 30 }) {
  for (let i = 0; i < warmup; i++) {
    ours.run();
    await theirs.run();
  }
  const oursTimes = [];
  const theirsTimes = [];
  const ratios = [];
  for (let i = 0; i < runs; i++) {
    const a = ours.run();
    const b = await theirs.run();
    oursTimes.push(a);
    theirsTimes.push(b);
    ratios.push(b / a);
  }
  return {
    ours: { ...stats(oursTimes), ...ours.result() },
    theirs: { ...stats(theirsTimes), ...theirs.result() },
    ratio: stats(ratios),
  };
}

/**
 * The whole comparison in one runtime: localtune against each TensorFlow.js
 * backend in turn (`tf` already configured to load them), paired as in
 * {@link comparePaired}. Returns `{ localtune, tfjs: { [backend]: … } }`,
 * each TF.js entry with its paired `ratio`.
 */
export async function compareInRuntime({ localtune, tf, backends, features, labels, intents, dim, now, runs }) {
  const { batchSize, learningRate } = localtune.defaultUpdateOptions();
  const result = { localtune: null, tfjs: {} };
  for (const backend of backends) {
    await tf.setBackend(backend);
    await tf.ready();
    const ours = localtuneRunner({ localtune, features, labels, intents, dim, now });
    ours.run(); // learns the step count TF.js must match
    const { steps } = ours.result();
    const theirs = tfjsRunner({ tf, features, labels, intents, dim, steps, batchSize, learningRate, now });
    const paired = await comparePaired(ours, theirs, { runs });
    ours.dispose();
    theirs.dispose();
    // localtune's own figures: from the pairs with the fastest backend.
    if (!result.localtune || paired.theirs.median < Math.min(...Object.values(result.tfjs).map((r) => r.median))) {
      result.localtune = paired.ours;
    }
    result.tfjs[backend] = { ...paired.theirs, ratio: paired.ratio };
  }
  return result;
}
