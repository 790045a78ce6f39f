// localtune/bundle (Node): builds a model bundle from an ONNX encoder, its
// tokenizer and labelled CSV with the Rust bundle tool compiled into this
// package's WebAssembly — the same code, flags and checks as the native
// `localtune-bundle`, no Rust toolchain needed. `npx localtune bundle`
// (cli.js) runs it on files; build tools call `buildBundle` in memory.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { initSync, runBundleTool, prepareBundleBuild } from './localtune_onnx.js';

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

/** The tool's error, as `runBundleTool` throws it. */
function toolError(message) {
  const error = new Error(message);
  error.name = 'BundleToolError';
  return error;
}

function fileIo(print) {
  return {
    readFile: (path) => readFileSync(path),
    writeFile: (dir, name, bytes) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, name), bytes);
    },
    print,
  };
}

/**
 * Runs the tool with its command-line flags (`--encoder`, `--tokenizer`,
 * `--data`, `--out`, …; `--help` lists them) on the file system, embedding
 * the texts on `--threads` worker threads (default: one per core, at most 8). Rejects
 * with a `BundleToolError` with the tool's message, or with `signal`'s
 * reason once it aborts; writes nothing unless the whole bundle built.
 */
export async function runBundleCli(args, { print = (line) => console.log(line), signal } = {}) {
  init();
  const io = fileIo(print);
  const build = prepareBundleBuild(args, io);
  if (build) await finishOnWorkers(build, io, { signal });
}

const flag = (key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The tool's flags for `buildBundle`'s options, and a file system in memory. */
function inMemory({ encoder, tokenizer, data, onProgress, ...options }) {
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
  const io = {
    readFile: (path) => {
      const bytes = inputs.get(path);
      if (!(bytes instanceof Uint8Array)) throw new TypeError(`${path} must be a Uint8Array`);
      return bytes;
    },
    writeFile: (_dir, name, bytes) => files.set(name, bytes),
    print: onProgress ?? (() => {}),
  };
  return { args, io, files };
}

/**
 * Builds a bundle in memory, on this thread. `encoder` (ONNX) and
 * `tokenizer` are bytes, `data` the CSV as text or bytes; every other
 * option is the tool's flag in camelCase (`textColumn`, `labelColumn`,
 * `splitColumn`, `name`, `version`, `architecture` ('linear' or 'mlp:64'),
 * `freezeHidden`, `maxSeqLen`, `epochs`, `seed`, `rehearsalPerLabel`,
 * `shippedCheckPerLabel`, `autoUpdateThreshold`, `wordEmbeddings` ('int8',
 * '4bit' or '4bit:G')). Returns a Map of file name → bytes, `manifest.json`
 * among them, ready to serve as a folder (synchronous).
 */
export function buildBundle(options) {
  init();
  const { args, io, files } = inMemory(options);
  runBundleTool(args, io);
  return files;
}

/**
 * `buildBundle` with the texts embedded on `threads` worker threads
 * (default: one per core, at most 8): the same files, bit for bit, in a fraction of
 * the time. Resolves to the same Map; rejects with a `BundleToolError`, or
 * with `signal`'s reason once it aborts (the workers stop at once).
 */
export async function buildBundleOnWorkers({ signal, ...options }) {
  init();
  signal?.throwIfAborted();
  const { args, io, files } = inMemory(options);
  const build = prepareBundleBuild(args, io);
  await finishOnWorkers(build, io, { signal });
  return files;
}

/** Embeds a prepared build's texts on worker threads, then builds from the vectors. */
async function finishOnWorkers(build, io, { signal }) {
  let vectors;
  try {
    vectors = await embedOnWorkers(build, io.print, signal);
  } catch (error) {
    build.free();
    throw error;
  }
  build.finish(vectors, io);
}

/**
 * Every text's vector, row-major: each worker (bundle-worker.js) builds the
 * encoder and the runs of texts itself and embeds the runs it is handed,
 * the next one as it finishes one, so a slow run holds up no one.
 */
function embedOnWorkers(build, print, signal) {
  signal?.throwIfAborted();
  const texts = build.texts();
  const workerData = { model: build.model(), tokenizer: build.tokenizer(), options: build.encoderOptions(), texts };
  const threads = build.workers(availableParallelism());
  return new Promise((resolve, reject) => {
    const workers = [];
    let vectors = null;
    let runCount = null;
    let next = 0;
    let done = 0;
    let settled = false;
    const settle = (error) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      for (const worker of workers) worker.terminate();
      if (error) reject(error);
      else resolve(vectors);
    };
    const onAbort = () => settle(signal.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const handOut = (worker) => {
      if (next < runCount) worker.postMessage({ run: next++ });
    };
    for (let w = 0; w < threads; w++) {
      const worker = new Worker(new URL('./bundle-worker.js', import.meta.url), { workerData });
      workers.push(worker);
      worker.on('message', (message) => {
        if (settled) return;
        if (message.runs !== undefined) {
          runCount ??= message.runs;
          handOut(worker);
          return;
        }
        const { indices, vectors: run } = message;
        const dim = run.length / indices.length;
        vectors ??= new Float32Array(texts.length * dim);
        indices.forEach((i, k) => vectors.set(run.subarray(k * dim, (k + 1) * dim), i * dim));
        done += indices.length;
        const line = build.embeddedLine(done);
        if (line !== undefined) print(line);
        if (done === texts.length) settle(null);
        else handOut(worker);
      });
      worker.on('error', (error) => settle(toolError(error?.message ?? String(error))));
      worker.on('exit', (code) => {
        if (!settled) settle(toolError(`a worker thread embedding the texts stopped (exit code ${code})`));
      });
    }
  });
}
