// localtune/bundle (Node): builds a model bundle from an ONNX encoder, its
// tokenizer and labelled CSV with the Rust bundle tool compiled into this
// package's WebAssembly — the same code, flags and checks as the native
// `localtune-bundle`, no Rust toolchain needed. `npx localtune bundle`
// (cli.js) runs it on files; build tools call `buildBundle` in memory.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { initSync, runBundleTool } from './localtune_onnx.js';

// The module with the ONNX importer (the page modules leave it out). It is a
// simd128 module, never a relaxed-SIMD one, even where Node could run that:
// relaxed SIMD's results are implementation-defined (an engine may fuse a
// multiply-add or not, and may change its mind between tiers), and a bundle
// build must be reproducible: the same inputs, the same bytes.
let initialised = false;
function init() {
  if (!initialised) {
    initSync({ module: readFileSync(new URL('./localtune_onnx_bg.wasm', import.meta.url)) });
    initialised = true;
  }
}

/**
 * Runs the tool with its command-line flags (`--encoder`, `--tokenizer`,
 * `--data`, `--out`, …; `--help` lists them) on the file system. Throws a
 * `BundleToolError` with the tool's message; writes nothing unless the
 * whole bundle built.
 */
export function runBundleCli(args, { print = (line) => console.log(line) } = {}) {
  init();
  runBundleTool(args, {
    readFile: (path) => readFileSync(path),
    writeFile: (dir, name, bytes) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, name), bytes);
    },
    print,
  });
}

const flag = (key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/**
 * Builds a bundle in memory. `encoder` (ONNX) and `tokenizer` are bytes,
 * `data` the CSV as text or bytes; every other option is the tool's flag
 * in camelCase (`textColumn`, `labelColumn`, `splitColumn`, `name`,
 * `version`, `architecture` ('linear' or 'mlp:64'), `freezeHidden`,
 * `maxSeqLen`, `epochs`, `seed`, `rehearsalPerLabel`,
 * `shippedCheckPerLabel`, `autoUpdateThreshold`, `wordEmbeddings` ('int8',
 * '4bit' or '4bit:G')). Returns a Map of
 * file name → bytes, `manifest.json` among them, ready to serve as a folder (synchronous).
 */
export function buildBundle({ encoder, tokenizer, data, onProgress, ...options }) {
  init();
  const inputs = new Map([
    ['encoder.onnx', encoder],
    ['tokenizer.json', tokenizer],
    ['data.csv', typeof data === 'string' ? new TextEncoder().encode(data) : data],
  ]);
  const args = ['--encoder', 'encoder.onnx', '--tokenizer', 'tokenizer.json', '--data', 'data.csv', '--out', 'bundle'];
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    args.push(flag(key), typeof value === 'boolean' ? (value ? 'yes' : 'no') : String(value));
  }
  const files = new Map();
  runBundleTool(args, {
    readFile: (path) => {
      const bytes = inputs.get(path);
      if (!(bytes instanceof Uint8Array)) throw new TypeError(`${path} must be a Uint8Array`);
      return bytes;
    },
    writeFile: (_dir, name, bytes) => files.set(name, bytes),
    print: onProgress ?? (() => {}),
  });
  return files;
}
