// Batch throughput, shared by Node (bench/batch.mjs) and the browser page
// (bench/batch.html): many texts of mixed length embedded at once, as a
// store re-embeds its corrections after an encoder change or an import
// brings thousands. localtune's `Encoder.embed(texts)` (one call: it groups
// the texts by length into bounded runs itself) against onnxruntime-web
// (wasm, one thread, SIMD) on the same texts, cut the same way: sorted by
// length, runs of `CHUNK_ROWS`, each padded to its longest text, the
// output mean-pooled under the mask and normalised, so both return the
// same vectors (checked). The two alternate round by round in one process.

/** Texts per run of the encoder: the library's (`EMBED_CHUNK_ROWS`). */
export const CHUNK_ROWS = 32;

/**
 * The runs onnxruntime-web gets: token ids (from localtune's tokenizer, not
 * timed: onnxruntime-web has none, so its side leaves tokenizing out) of
 * `texts` sorted by length, `CHUNK_ROWS` a run, padded to the longest.
 */
export function ortChunks(encoder, texts) {
  const ids = texts.map((t) => Array.from(encoder.tokenize([t]).inputIds));
  const order = ids.map((_, i) => i).sort((a, b) => ids[a].length - ids[b].length);
  const chunks = [];
  for (let start = 0; start < order.length; start += CHUNK_ROWS) {
    const rows = order.slice(start, start + CHUNK_ROWS);
    const width = Math.max(...rows.map((i) => ids[i].length));
    const inputIds = new BigInt64Array(rows.length * width);
    const mask = new BigInt64Array(rows.length * width);
    rows.forEach((i, r) => ids[i].forEach((id, k) => {
      inputIds[r * width + k] = BigInt(id);
      mask[r * width + k] = 1n;
    }));
    chunks.push({ rows, width, inputIds, mask, lengths: rows.map((i) => ids[i].length) });
  }
  return { chunks, tokens: ids.reduce((sum, row) => sum + row.length, 0), lengths: ids.map((r) => r.length) };
}

/** Runs every chunk through onnxruntime-web; unit mean-pooled vectors in text order. */
export async function ortEmbed(ort, session, { chunks }, count, dim) {
  const out = new Float32Array(count * dim);
  for (const { rows, width, inputIds, mask, lengths } of chunks) {
    const dims = [rows.length, width];
    const result = await session.run({
      input_ids: new ort.Tensor('int64', inputIds, dims),
      attention_mask: new ort.Tensor('int64', mask, dims),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(rows.length * width), dims),
    });
    const hidden = result.last_hidden_state.data;
    rows.forEach((i, r) => {
      const v = out.subarray(i * dim, (i + 1) * dim);
      for (let k = 0; k < lengths[r]; k++) {
        const h = hidden.subarray((r * width + k) * dim, (r * width + k + 1) * dim);
        for (let d = 0; d < dim; d++) v[d] += h[d];
      }
      let norm = 0;
      for (let d = 0; d < dim; d++) norm += v[d] * v[d];
      norm = Math.sqrt(norm) || 1;
      for (let d = 0; d < dim; d++) v[d] /= norm;
    });
  }
  return out;
}

/** The smallest cosine between the two engines' vectors of the same text. */
export function minCosine(a, b, dim) {
  let worst = 1;
  for (let i = 0; i < a.length / dim; i++) {
    let dot = 0;
    for (let d = 0; d < dim; d++) dot += a[i * dim + d] * b[i * dim + d];
    worst = Math.min(worst, dot);
  }
  return worst;
}

/**
 * Embeds `texts` `rounds` times with each engine, alternating (after one
 * untimed round each), and returns per-engine times (ms per round), the
 * per-round ratios localtune ÷ onnxruntime-web, and the parity check.
 */
export async function measureBatch({ encoder, ort, session, texts, rounds, now, yieldEvery }) {
  const dim = encoder.dim;
  const prepared = ortChunks(encoder, texts);
  const ours = encoder.embed(texts);
  const theirs = await ortEmbed(ort, session, prepared, texts.length, dim);
  const cosine = minCosine(ours, theirs, dim);
  if (!(cosine >= 0.999)) throw new Error(`the engines disagree on a text: cosine ${cosine}`);
  const times = { localtune: [], onnxruntime: [] };
  for (let r = 0; r < rounds; r++) {
    let t0 = now();
    encoder.embed(texts);
    times.localtune.push(now() - t0);
    if (yieldEvery) await yieldEvery();
    t0 = now();
    await ortEmbed(ort, session, prepared, texts.length, dim);
    times.onnxruntime.push(now() - t0);
    if (yieldEvery) await yieldEvery();
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  return {
    texts: texts.length,
    tokens: prepared.tokens,
    chunks: prepared.chunks.length,
    minCosine: cosine,
    ms: { localtune: median(times.localtune), onnxruntime: median(times.onnxruntime) },
    ratio: median(times.localtune.map((t, i) => t / times.onnxruntime[i])),
    ratios: times.localtune.map((t, i) => t / times.onnxruntime[i]),
  };
}
