// Compiles an ONNX sentence encoder ahead of time with the built package
// (pkg/, its module with the ONNX importer), the way a web app's build step
// would: the output loads with
// `Encoder.fromCompiled` (or as a bundle's `encoder.compiled`) in about two
// thirds of the ONNX file's start-up time, and is the same encoder.
//
// Usage: node scripts/compile-encoder.mjs MODEL.onnx OUT.tar
import { readFile, writeFile } from 'node:fs/promises';
import { initSync, Encoder } from '../pkg/localtune_onnx.js';

const [model, out] = process.argv.slice(2);
if (!model || !out) {
  console.error('usage: node scripts/compile-encoder.mjs MODEL.onnx OUT.tar');
  process.exit(2);
}
initSync({ module: await readFile(new URL('../pkg/localtune_onnx_bg.wasm', import.meta.url)) });
const compiled = Encoder.compile(await readFile(model));
await writeFile(out, compiled);
console.error(`compiled ${model} → ${out} (${(compiled.length / 1e6).toFixed(1)} MB)`);
