// One cold start of the encoder in a fresh Node process: instantiate the
// package, then build the encoder from the compiled file or the ONNX file.
// Prints the milliseconds as JSON. A fresh process each time because a
// second build in the same process runs on code the engine has already
// optimised (the same holds in the browser: bench/cold.html).
//
// Usage: node bench/cold-start.mjs compiled|onnx
import { readFile } from 'node:fs/promises';

const from = process.argv[2];
// The ONNX file needs the module with the importer (a page's leaves it out).
const { initSync, Encoder, defaultWasmUrl } = await import(from === 'onnx' ? '../pkg/localtune_onnx.js' : '../pkg/localtune.js');

const root = new URL('../', import.meta.url);
const read = (p) => readFile(new URL(p, root));
const [source, tokenizer, wasm] = await Promise.all([
  read(from === 'onnx' ? 'models/all-minilm-l6-v2-int8/model.onnx' : 'bench/results/encoder.compiled.tar'),
  read('models/all-minilm-l6-v2-int8/tokenizer.json'),
  readFile(defaultWasmUrl()),
]);
const t0 = performance.now();
initSync({ module: wasm });
const encoder = from === 'onnx' ? new Encoder(source, tokenizer) : Encoder.fromCompiled(source, tokenizer);
const ms = performance.now() - t0;
encoder.free();
console.log(JSON.stringify({ from, ms }));
