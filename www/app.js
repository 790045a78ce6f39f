// The demo page: loads the encoder with visible progress, then embeds what
// the user types, showing the time each embedding took. Everything runs here,
// in this tab; the only requests are the page's own assets and model files.
import init, { Encoder, simd128Enabled, wasmMemoryBytes } from '/pkg/localtune.js';

const MODEL_URL = '/models/all-minilm-l6-v2-int8/model.onnx';
const TOKENIZER_URL = '/models/all-minilm-l6-v2-int8/tokenizer.json';

const $ = (id) => document.getElementById(id);
const state = { encoder: null, busy: false };

/** Fetches a file as bytes, reporting progress through onBytes(received). */
async function fetchBytes(url, onBytes) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    onBytes(received, total);
  }
  const bytes = new Uint8Array(received);
  let offset = 0;
  for (const c of chunks) { bytes.set(c, offset); offset += c.length; }
  return bytes;
}

async function load() {
  const progress = $('load-progress');
  const sizes = { model: [0, 0], tokenizer: [0, 0], wasm: [0, 1] };
  const update = () => {
    const got = Object.values(sizes).reduce((a, [r]) => a + r, 0);
    const all = Object.values(sizes).reduce((a, [r, t]) => a + Math.max(r, t), 0);
    progress.value = all ? got / all : 0;
    $('load-status').textContent = `Loading the encoder… ${(got / 1e6).toFixed(1)} of ${(all / 1e6).toFixed(1)} MB`;
  };
  const [model, tokenizer] = await Promise.all([
    fetchBytes(MODEL_URL, (r, t) => { sizes.model = [r, t]; update(); }),
    fetchBytes(TOKENIZER_URL, (r, t) => { sizes.tokenizer = [r, t]; update(); }),
    init().then(() => { sizes.wasm = [1, 1]; update(); }),
  ]);
  $('load-status').textContent = 'Preparing the model…';
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const t0 = performance.now();
  state.encoder = new Encoder(model, tokenizer);
  const coldMs = performance.now() - t0;

  $('model-sha').textContent = state.encoder.sha256;
  $('cold-start').textContent = `${coldMs.toFixed(0)} ms (bytes → runnable)`;
  $('simd').textContent = simd128Enabled() ? 'simd128 on' : 'off';
  $('loading').hidden = true;
  $('encoder').hidden = false;
  document.body.dataset.ready = 'true';
  embed();
}

function embed() {
  const text = $('text').value;
  const error = $('error');
  error.hidden = true;
  try {
    // Tokenize once: the batch gives both the vector and the token count.
    const t0 = performance.now();
    const batch = state.encoder.tokenize([text]);
    const vector = state.encoder.embedTokenIds(batch.inputIds, batch.attentionMask, batch.rows, batch.seqLen);
    const ms = performance.now() - t0;
    const tokens = batch.seqLen;
    const norm = Math.sqrt(vector.reduce((a, x) => a + x * x, 0));
    $('result-time').textContent = `${ms.toFixed(1)} ms`;
    $('result-tokens').textContent = `${tokens}${tokens === state.encoder.maxSeqLen ? ' (truncated)' : ''}`;
    $('result-dim').textContent = `${vector.length} floats`;
    $('result-norm').textContent = norm.toFixed(4);
    $('memory').textContent = `${(wasmMemoryBytes() / 2 ** 20).toFixed(0)} MiB`;
    plot(vector);
    document.body.dataset.embedded = String(Number(document.body.dataset.embedded ?? 0) + 1);
  } catch (e) {
    error.textContent = `${e.name}: ${e.message}`;
    error.hidden = false;
  }
}

function plot(vector) {
  const canvas = $('result-plot');
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(...vector.map(Math.abs)) || 1;
  const w = width / vector.length;
  vector.forEach((x, i) => {
    const h = (Math.abs(x) / max) * (height / 2);
    ctx.fillStyle = x >= 0 ? '#2f6fde' : '#e07a2f';
    ctx.fillRect(i * w, x >= 0 ? height / 2 - h : height / 2, Math.max(w, 1), h);
  });
}

let timer;
$('text').addEventListener('input', () => {
  clearTimeout(timer);
  timer = setTimeout(embed, 150);
});
$('embed').addEventListener('click', embed);

load().catch((e) => {
  $('load-status').textContent = `The encoder could not be loaded: ${e.name}: ${e.message}`;
  $('load-status').classList.add('error');
});
