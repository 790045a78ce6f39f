// The demo page: a classifier that learns the user's labels from their
// corrections. The model and all training run in a Web Worker
// (localtune/client), so typing never waits for them; everything is stored
// in this origin's IndexedDB. The page counts every network request it and
// the worker make after loading, to show that nothing leaves the device.
import { WorkerClassifier } from '/pkg/client.js';

const BUNDLE = '/bundles/default/';
const $ = (id) => document.getElementById(id);
const state = { classifier: null, text: '', prediction: null, updating: false, curve: [] };

// ---- the network indicator -----------------------------------------------
let loaded = false;
let requestsAfterLoad = 0; // the page's own
let workerRequests = 0; // the model worker's, polled
let loadedAt = Infinity; // entries arrive late: a request counts by when it started
new PerformanceObserver((list) => {
  requestsAfterLoad += list.getEntries().filter((e) => e.startTime >= loadedAt).length;
  showNetwork();
}).observe({ type: 'resource', buffered: false });
function showNetwork() {
  const badge = $('network');
  if (!loaded) return;
  const requests = requestsAfterLoad + workerRequests;
  badge.textContent = requests === 0
    ? '● Nothing leaves this device — 0 network requests since the model loaded'
    : `● ${requests} network request${requests === 1 ? '' : 's'} since the model loaded`;
  badge.classList.toggle('warn', requests > 0);
  document.body.dataset.requestsAfterLoad = String(requests);
}

function showError(e) {
  const el = $('error');
  if (!e) { el.hidden = true; return; }
  el.textContent = e.name ? `${e.name}: ${e.message}` : String(e);
  el.hidden = false;
}

// ---- offline: the service worker ---------------------------------------------
// After one visit, sw.js serves the page and the package from this device
// when the network is gone (the bundle comes from the library's own cache).
// On a first visit the page waits, briefly, for it to take control before
// starting the model worker, so the worker's files are kept too.
async function startOffline() {
  if (!('serviceWorker' in navigator)) return 'unsupported';
  try {
    await navigator.serviceWorker.register('/sw.js');
    if (!navigator.serviceWorker.controller) {
      await Promise.race([
        new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true })),
        new Promise((resolve) => setTimeout(resolve, 3000)),
      ]);
    }
    return navigator.serviceWorker.controller ? 'ready' : 'pending';
  } catch {
    // e.g. a private window that refuses it: the page still works online.
    return navigator.serviceWorker.controller ? 'ready' : 'unavailable';
  }
}

// ---- loading, with progress ------------------------------------------------
// By URL: the library keeps the bundle's files in the Cache API, so a second
// visit downloads only the manifest (and an offline one nothing).
async function load() {
  const progress = ({ loadedBytes, totalBytes, fromCache }) => {
    $('load-progress').value = totalBytes ? loadedBytes / totalBytes : 0;
    $('load-status').textContent = `${fromCache ? 'Reading the model from this device…' : 'Loading the model…'} ${(loadedBytes / 1e6).toFixed(1)} of ${(totalBytes / 1e6).toFixed(1)} MB`;
  };
  const offline = await startOffline();
  document.body.dataset.offline = offline;
  $('offline').textContent = {
    ready: navigator.onLine ? 'yes: this page now starts without a network' : 'yes: started from this device',
    pending: 'from the next visit',
    unsupported: 'no (this browser has no service workers)',
    unavailable: 'no (this browser refused a service worker here)',
  }[offline];
  state.classifier = await WorkerClassifier.load(BUNDLE, { onAutoUpdate, onLoadProgress: progress });
  loaded = true;
  loadedAt = performance.now();
  showNetwork();
  $('loading').hidden = true;
  $('app').hidden = false;
  const m = state.classifier.manifest;
  $('model').textContent = `${m.name} ${m.version} · ${m.labels.length} labels · encoder ${m.encoder.sha256.slice(0, 12)}…`;
  for (const p of state.classifier.problems) showError({ name: p.name, message: p.message });
  await Promise.all([predict(), refresh()]);
  document.body.dataset.ready = 'true';
}

// ---- predicting and correcting --------------------------------------------
let predictTimer;
let predictSeq = 0;
async function predict() {
  const text = $('text').value;
  const seq = ++predictSeq;
  const t0 = performance.now();
  const prediction = await state.classifier.predict(text);
  if (seq !== predictSeq) return; // a newer keystroke already asked
  state.text = text;
  state.prediction = prediction;
  $('prediction').textContent = prediction.label;
  $('predict-time').textContent = `${(prediction.probability * 100).toFixed(0)}% · ${(performance.now() - t0).toFixed(0)} ms`;
  const bars = $('bars');
  bars.replaceChildren(...prediction.probabilities.slice(0, 6).map(({ label, probability }) => {
    const li = document.createElement('li');
    li.innerHTML = '<span class="name"></span><span class="bar"><span></span></span><span class="pct"></span><button type="button">✓ this</button>';
    li.querySelector('.name').textContent = label;
    li.querySelector('.name').title = label;
    li.querySelector('.bar span').style.width = `${(probability * 100).toFixed(1)}%`;
    li.querySelector('.pct').textContent = `${(probability * 100).toFixed(1)}%`;
    const button = li.querySelector('button');
    button.dataset.label = label;
    button.setAttribute('aria-label', `the right label is ${label}`);
    button.addEventListener('click', () => correct(label));
    return li;
  }));
  document.body.dataset.predictions = String(Number(document.body.dataset.predictions ?? 0) + 1);
}

/** Stores a correction; `onSaved` runs as soon as it is stored, before the
 * page asks for the new prediction, so a person typing on is not undone. */
async function correct(label, onSaved = () => {}) {
  showError(null);
  const text = $('text').value;
  if (!text.trim()) {
    $('feedback-status').textContent = 'Type something first: there is nothing to learn from an empty text.';
    return;
  }
  try {
    const { pending, evicted } = await state.classifier.addFeedback(text, label);
    onSaved();
    $('feedback-status').textContent = `Saved: “${text.length > 60 ? `${text.slice(0, 60)}…` : text}” is ${label}, from now on. ${pending} pending.`
      + (evicted.length ? ` (${evicted.length} oldest correction${evicted.length > 1 ? 's' : ''} of the largest label made room.)` : '');
    // The correction counts at once: show what the classifier says now.
    await Promise.all([predict(), refresh()]);
  } catch (e) {
    // The text stays in the box: nothing the user typed is lost.
    showError(e);
  }
}

// A text longer than this is cut as it arrives (typed, pasted or dropped),
// in the same task, before the browser lays it out: WebKit lays out a
// textarea's text on the page's thread, and 20 MB of it held the page for
// 33 s (WebKitGTK 2.50, measured; a phone is slower), while the classifier
// reads a text's first 8,192 characters and a correction keeps at most
// 16 KiB. What is cut is said, not hidden.
const TEXT_LIMIT = 200_000;
function cutLongText() {
  const box = $('text');
  const length = box.value.length;
  if (length <= TEXT_LIMIT) return;
  // Not between the two halves of a character outside the BMP (an emoji).
  const end = /[\uD800-\uDBFF]/.test(box.value[TEXT_LIMIT - 1]) ? TEXT_LIMIT - 1 : TEXT_LIMIT;
  box.value = box.value.slice(0, end);
  $('feedback-status').textContent = `The text was cut to its first ${TEXT_LIMIT.toLocaleString('en')} of `
    + `${length.toLocaleString('en')} characters (predictions read the first 8,192).`;
}
$('text').addEventListener('input', () => {
  cutLongText();
  clearTimeout(predictTimer);
  predictTimer = setTimeout(() => predict().catch(showError), 120);
});
$('new-label-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const label = $('new-label').value.trim();
  if (!label) {
    $('feedback-status').textContent = 'Type the new label first.';
    return;
  }
  // Clear the label once it is saved, and only if the person has not
  // already typed the next one meanwhile.
  correct(label, () => { if ($('new-label').value.trim() === label) $('new-label').value = ''; });
});

// ---- updating --------------------------------------------------------------
function onProgress(event) {
  // Corrections without a vector under this bundle's encoder (after an
  // encoder change) are embedded first, on the worker's embedding pool.
  if (event.kind === 'embedding') {
    const { done, total, workers } = event.embedding;
    $('update-progress').value = done / total;
    $('update-status').textContent = `Reading your ${total} corrections with the new model: ${done} so far${workers > 1 ? ` (${workers} workers)` : ''}…`;
    return;
  }
  if (event.kind === 'began') state.curve = [];
  if (event.kind === 'epochEnd' || event.kind === 'done') {
    state.curve.push([event.trainLoss, event.trainAccuracy]);
    drawCurve();
  }
  const epochs = state.classifier.manifest.training.defaults.epochs;
  $('update-progress').value = event.kind === 'done' ? 1 : Math.min(0.99, (event.epoch + 1) / epochs);
}

function drawCurve() {
  const points = state.curve;
  const maxLoss = Math.max(...points.map(([l]) => l), 1e-6);
  const x = (i) => (points.length < 2 ? 0 : (i / (points.length - 1)) * 300);
  $('curve-loss').setAttribute('points', points.map(([l], i) => `${x(i)},${80 - (l / maxLoss) * 76}`).join(' '));
  $('curve-accuracy').setAttribute('points', points.map(([, a], i) => `${x(i)},${80 - a * 76}`).join(' '));
}

function showReport(report) {
  const pct = (v) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(0)}%`);
  $('update-status').textContent = `${report.accepted ? 'New version' : 'Candidate kept but not used'} #${report.version.version}: ${report.gate}`
    + ` (${report.userSamples} corrections + ${report.rehearsalSamples} shipped examples, held-out ${pct(report.candidateAccuracy)}).`;
  document.body.dataset.lastUpdate = report.accepted ? 'accepted' : 'rejected';
}

// An update that fails (rather than being rejected by the gate) says so
// too: what waits for an outcome learns of it at once.
function showUpdateFailure(error) {
  showError(error);
  document.body.dataset.lastUpdate = 'failed';
}

function setUpdating(on, message) {
  state.updating = on;
  $('update').disabled = on;
  if (message) $('update-status').textContent = message;
  document.body.dataset.updating = String(on);
}

function onAutoUpdate(event) {
  if (event.phase === 'started') setUpdating(true, `Updating automatically on ${event.pending} new corrections…`);
  else if (event.phase === 'progress') onProgress(event.event);
  else {
    if (event.phase === 'finished') showReport(event.report);
    else showUpdateFailure(event.error);
    // Updating ends once the version table shows the outcome.
    refresh().finally(() => setUpdating(false)).then(predict);
  }
}

$('update').addEventListener('click', async () => {
  if (state.updating) return; // a double click starts one update
  showError(null);
  setUpdating(true, 'Updating…');
  try {
    showReport(await state.classifier.update({}, onProgress));
  } catch (e) {
    showUpdateFailure(e);
    $('update-status').textContent = '';
  } finally {
    // Updating ends once the version table shows the outcome (a double
    // click meanwhile still starts nothing).
    try {
      await refresh();
    } finally {
      setUpdating(false);
    }
    await predict();
  }
});

// ---- versions and storage -------------------------------------------------
async function refresh() {
  const [stats, versions, fromWorker] = await Promise.all([
    state.classifier.stats(), state.classifier.versions(), state.classifier.networkRequests(),
  ]);
  workerRequests = fromWorker;
  showNetwork();
  $('pending').textContent = stats.pendingCount;
  $('threshold').textContent = stats.autoUpdateThreshold;
  $('pending-progress').value = Math.min(1, stats.pendingCount / stats.autoUpdateThreshold);
  $('sample-count').textContent = stats.sampleCount;
  const mb = (b) => (b === null ? 'unknown' : b >= 1e9 ? `${(b / 1e9).toFixed(1)} GB` : `${(b / 1e6).toFixed(1)} MB`);
  $('usage').textContent = `${mb(stats.storage.usageBytes)} of ${mb(stats.storage.quotaBytes)}`;
  $('persisted').textContent = stats.storage.persisted ? 'kept even when the disk is full' : 'the browser may clear it when space runs low';
  $('persist').hidden = stats.storage.persisted;
  const current = stats.currentVersion.version;
  $('versions').replaceChildren(...versions.slice().reverse().map((v) => {
    const tr = document.createElement('tr');
    tr.className = v.version === current ? 'current' : '';
    const acc = v.metrics.gateAccuracy;
    const cells = [
      `${v.version}`,
      new Date(v.createdMs).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' }),
      v.status === 'shipped' ? '–' : `${v.sampleCount}`,
      acc === null ? '–' : `${(acc * 100).toFixed(0)}%`,
      v.version === current ? `${v.status} · current` : v.status,
    ];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.append(td);
    }
    tr.cells[4].className = `status-${v.status}`;
    const td = document.createElement('td');
    if (v.version !== current && v.encoderSha256 === state.classifier.manifest.encoder.sha256) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'secondary';
      button.textContent = 'use this';
      button.dataset.version = String(v.version);
      button.addEventListener('click', () => rollback(v.version));
      td.append(button);
    }
    tr.append(td);
    return tr;
  }));
  document.body.dataset.currentVersion = String(current);
}

async function rollback(version) {
  showError(null);
  try {
    await state.classifier.rollback(version);
    $('update-status').textContent = `Now using version ${version}.`;
  } catch (e) {
    showError(e);
  }
  await refresh();
  await predict();
}

$('reset').addEventListener('click', async () => {
  showError(null);
  try {
    const v = await state.classifier.resetToShipped();
    $('update-status').textContent = `Back to the shipped model (version ${v.version}); your corrections are kept.`;
  } catch (e) {
    showError(e);
  }
  await refresh();
  await predict();
});

// Everything this page stored: corrections, versions, cached vectors. The
// page goes on with the shipped model, as on a first visit.
$('delete-data').addEventListener('click', async () => {
  if (!confirm('Delete every correction and version this page stored on this device? This cannot be undone.')) return;
  showError(null);
  try {
    const v = await state.classifier.deleteEverything();
    $('storage-status').textContent = `Deleted: your corrections and your versions. The shipped model (version ${v.version}) is back.`;
  } catch (e) {
    showError(e);
  }
  await refresh();
  await predict();
});

$('persist').addEventListener('click', async () => {
  const granted = await state.classifier.requestPersistence();
  $('feedback-status').textContent = granted ? 'The browser will keep your data.' : 'The browser declined to promise it (it may still keep it).';
  await refresh();
});

load().catch((e) => {
  const storage = e.name === 'StorageError' || e.name === 'QuotaExceededError';
  $('load-status').textContent = storage
    ? `This browser will not let the page store anything (${e.message}). In a private window, storage is often switched off; open the page in a normal window to keep what it learns.`
    : `The model could not be loaded: ${e.name}: ${e.message}`;
  $('load-status').classList.add('error');
  $('network').textContent = 'Not loaded';
  $('network').classList.add('warn'); // not the green of "nothing leaves this device"
  document.body.dataset.failed = e.name;
});
