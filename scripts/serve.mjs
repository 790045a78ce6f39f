// A small static server for the demo page, the benchmark page and the
// browser tests, on 127.0.0.1 only. Routes:
//   /          → www/          (the demo page)
//   /pkg/      → pkg/          (the built npm package)
//   /models/   → models/       (fetched by scripts/fetch-model.sh)
//   /bundles/  → bundles/      (built by scripts/build-bundle.sh)
//   /bench/    → bench/        (the in-browser benchmark page)
//   /ort/      → node_modules/onnxruntime-web/dist/ (benchmark reference)
//   /tfjs/, /tfjs-wasm/ → TensorFlow.js and its wasm backend (benchmark reference)
//   /tjs/, /tjs-ort/, /tjs-models/ → Transformers.js, the onnxruntime-web it
//                  loads, and the same model in its layout (benchmark
//                  reference, installed by bench/first-visit.sh)
//   /test-pages/ → tests/js/pages/ (bare pages the browser tests drive)
//   /fixtures/  → tests/fixtures/ (the tiny test encoder)
//   /artifacts/ → tests/artifacts/ (what tests build, e.g. the Vite app)
// It counts requests so tests can assert what the page fetched.
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ROUTES = [
  ['/pkg/', 'pkg'],
  ['/models/', 'models'],
  ['/bundles/', 'bundles'],
  ['/bench/', 'bench'],
  ['/ort/', 'node_modules/onnxruntime-web/dist'],
  ['/tfjs/', 'node_modules/@tensorflow/tfjs/dist'],
  ['/tfjs-wasm/', 'node_modules/@tensorflow/tfjs-backend-wasm/dist'],
  ['/tjs/', 'bench/results/transformers-js/node_modules/@huggingface/transformers/dist'],
  ['/tjs-ort/', 'bench/results/transformers-js/node_modules/onnxruntime-web/dist'],
  ['/tjs-models/', 'bench/results/transformers-js/models'],
  ['/test-pages/', 'tests/js/pages'],
  ['/fixtures/', 'tests/fixtures'],
  ['/artifacts/', 'tests/artifacts'],
  ['/', 'www'],
];
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.ts': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.bin': 'application/octet-stream',
  '.svg': 'image/svg+xml',
};

/** The file a request path names (null if none may be served). */
export function resolvePath(urlPath) {
  for (const [prefix, dir] of ROUTES) {
    if (urlPath.startsWith(prefix)) {
      const rel = normalize(decodeURIComponent(urlPath.slice(prefix.length)));
      if (rel.startsWith('..')) return null;
      const base = join(ROOT, dir);
      const file = join(base, rel === '.' || rel === '' ? 'index.html' : rel);
      return file.startsWith(base) ? file : null;
    }
  }
  return null;
}

/** Starts the server; resolves to { server, url, requests } once listening. */
export function startServer({ port = 0, host = '127.0.0.1', quiet = true } = {}) {
  const requests = [];
  const server = createServer((req, res) => {
    const urlPath = new URL(req.url, 'http://localhost').pathname;
    requests.push(urlPath);
    let file = resolvePath(urlPath);
    let stat;
    try {
      stat = file && statSync(file);
      if (stat && stat.isDirectory()) {
        file = join(file, 'index.html');
        stat = statSync(file);
      }
    } catch {
      stat = null;
    }
    if (!stat) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`not found: ${urlPath}\n`);
      if (!quiet) console.log(`404 ${urlPath}`);
      return;
    }
    // Revalidation is a 304: the browser (and the demo's service worker,
    // which asks the network first) pays for a file only when it changed.
    const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
    const common = {
      etag,
      'cache-control': 'no-cache',
      // Cross-origin isolation, so the page may use SharedArrayBuffer and
      // precise timers; harmless otherwise.
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, common);
      res.end();
      return;
    }
    res.writeHead(200, {
      ...common,
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': stat.size,
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolveStart, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      resolveStart({ server, url: `http://${host}:${actual}/`, requests });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? process.argv[2] ?? 8080);
  const { url } = await startServer({ port, quiet: false });
  console.log(`localtune demo: ${url}  (Ctrl-C stops)`);
}
