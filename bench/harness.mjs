// Encoder latency benchmark, shared by Node (bench/encoder.mjs) and the
// browser page (bench/index.html): the same token ids through tract (our
// wasm package) and through onnxruntime-web (wasm backend, one thread, SIMD),
// interleaved in the same process so the ratio is fair to both.

/** Token ids of exactly `n` tokens: [CLS] + the first n-2 word pieces of `ids` + [SEP]. */
export function idsOfLength(ids, n) {
  if (ids.length < n) throw new Error(`source text has only ${ids.length} tokens, need ${n}`);
  return [...ids.slice(0, n - 1), ids[ids.length - 1]];
}

export function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p95: q(0.95), min: s[0], n: s.length };
}

/**
 * Measures per-sentence latency (batch 1) at each length in `tokens`
 * (a map length → ids). `tract` and `ort` are async functions running one
 * sentence's ids. Rounds alternate between the engines so that both see the
 * same machine state (thermal, other load).
 */
export async function measureLatency({ tokens, engines, now, iterations, warmup = 3, yieldEvery }) {
  const results = {};
  for (const [len, ids] of Object.entries(tokens)) {
    results[len] = {};
    const n = iterations(Number(len));
    for (const [name, run] of Object.entries(engines)) {
      for (let i = 0; i < warmup; i++) await run(ids);
      results[len][name] = [];
    }
    for (let i = 0; i < n; i++) {
      for (const [name, run] of Object.entries(engines)) {
        const t0 = now();
        await run(ids);
        results[len][name].push(now() - t0);
      }
      if (yieldEvery) await yieldEvery();
    }
    for (const name of Object.keys(engines)) results[len][name] = stats(results[len][name]);
  }
  return results;
}

/**
 * Engines over a localtune Encoder (from the compiled encoder, as a bundle
 * loads it) and an onnxruntime-web session (from the ONNX file).
 */
export async function makeEngines({ localtune, ort, model, compiled, tokenizer, now }) {
  const t0 = now();
  const encoder = localtune.Encoder.fromCompiled(compiled, tokenizer);
  const tractColdMs = now() - t0;

  ort.env.wasm.numThreads = 1;
  ort.env.wasm.simd = true;
  const t1 = now();
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
  });
  const ortColdMs = now() - t1;

  const tract = async (ids) => {
    const mask = new Uint32Array(ids.length).fill(1);
    return encoder.embedTokenIds(Uint32Array.from(ids), mask, 1, ids.length);
  };
  const onnxruntime = async (ids) => {
    const dims = [1, ids.length];
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), dims),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(ids.length).fill(1n), dims),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(ids.length), dims),
    };
    const out = await session.run(feeds);
    return out.last_hidden_state.data;
  };
  return { encoder, session, tract, onnxruntime, tractColdMs, ortColdMs };
}

/** The same pooled vector from both engines: a guard that the benchmark compares like with like. */
export async function checkSameOutput({ tract, onnxruntime }, ids) {
  const a = await tract(ids);
  const hidden = await onnxruntime(ids);
  const dim = a.length;
  const pooled = new Float64Array(dim);
  for (let t = 0; t < ids.length; t++) for (let k = 0; k < dim; k++) pooled[k] += hidden[t * dim + k] / ids.length;
  const norm = Math.sqrt(pooled.reduce((s, x) => s + x * x, 0));
  let dot = 0;
  for (let k = 0; k < dim; k++) dot += a[k] * (pooled[k] / norm);
  if (!(dot > 0.9999)) throw new Error(`tract and onnxruntime-web disagree: cosine ${dot}`);
  return dot;
}

export const LENGTHS = [8, 32, 128];
export const SOURCE_TEXT =
  'The quick brown fox jumps over the lazy dog while the kitchen lights dim slowly, and somewhere a ' +
  'thermostat decides that twenty-one degrees is exactly right for a quiet Sunday afternoon spent reading ' +
  'about distributed systems, sourdough starters, the history of typography, migrating birds, tide tables, ' +
  'and why the old lighthouse keeper always hummed the same three notes before the storm rolled in from the ' +
  'north sea, scattering gulls across the harbour and rattling every window on the hill until morning came. ' +
  'Later that week the council met to discuss the new ferry timetable, the broken streetlights on Harbour Road, ' +
  'a proposal for a community garden behind the library, and whether the annual lantern festival should move ' +
  'to the first weekend of October, when the evenings are darker but the weather is usually still kind.';

export function iterationsFor(len) {
  return len <= 8 ? 60 : len <= 32 ? 40 : 20;
}
