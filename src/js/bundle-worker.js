// One worker thread of the bundle tool's pool (bundle.js): builds the
// encoder the tool would from the same bytes and options, works out the
// same runs of texts (Encoder.embeddingRuns: sorted by length, at most 32),
// and embeds the run the pool hands it, one at a time. Each run's vectors
// are the ones a single thread computes, bit for bit, whichever worker
// runs it.
import { parentPort, workerData } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { initSync, Encoder } from './localtune_onnx.js';

initSync({ module: readFileSync(new URL('./localtune_onnx_bg.wasm', import.meta.url)) });
const { model, tokenizer, options, texts } = workerData;
const encoder = new Encoder(model, tokenizer, options);
const runs = encoder.embeddingRuns(texts);

parentPort.on('message', ({ run }) => {
  const indices = runs[run];
  const vectors = encoder.embed(Array.from(indices, (i) => texts[i]));
  parentPort.postMessage({ run, indices, vectors }, [vectors.buffer]);
});
parentPort.postMessage({ runs: runs.length });
