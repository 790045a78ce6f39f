// localtune/worker: a Web Worker that holds one Classifier, so encoding and
// training never block the page. Started by the client (localtune/client);
// speaks a small request/response protocol:
//   → { id, method, args }            ← { id, result } | { id, error: { name, message } }
//   ← { event: 'autoUpdate', data }   ← { id, event: 'progress', data } (update, load, importData)
//   → { cancel: id }                  (aborts that request's update or import; see update())
//   ← { event: 'trapped', data }      (the module trapped: this worker is done)
// Results that hold big buffers (exports) are transferred, not copied.
import init, { Classifier, moduleTrap } from './localtune.js';
import { EmbeddingPool, defaultWorkers } from './embedding-pool.js';

const ready = init();
let classifier = null;
const controllers = new Map();

// Requests this worker makes after its bundle loaded (none, by design):
// the page shows them next to its own in the "nothing leaves" indicator.
// Entries arrive in batches, after the fact: a request counts by when it
// started, so the bundle's own files (fetched while loading) never do.
let requestsAfterLoad = 0;
let loadedAt = Infinity;
new PerformanceObserver((list) => {
  requestsAfterLoad += list.getEntries().filter((e) => e.startTime >= loadedAt).length;
}).observe({ type: 'resource' });

/** The structured-clone-safe form of an error. */
function errorData(e) {
  return { name: e?.name ?? 'Error', message: e?.message ?? String(e) };
}

/**
 * Tells the client once that the module trapped (see trap-guard.js): every
 * later call would fail, so the client starts a new worker.
 */
let trapReported = false;
function reportTrap() {
  const trap = moduleTrap();
  if (!trap || trapReported) return;
  trapReported = true;
  self.postMessage({ event: 'trapped', data: errorData(trap) });
}
// A trap in a task no call awaits (relearning, an automatic update) shows
// only as an uncaught error; the guard has noted it by the time this runs.
// It is handled here: not passed on as the Worker's `error` event, which
// would fail the client's calls with a bare `WorkerError` first.
self.addEventListener('error', (event) => {
  if (typeof WebAssembly !== 'undefined' && event.error instanceof WebAssembly.RuntimeError) event.preventDefault();
  queueMicrotask(reportTrap);
});

/** Auto-update events carry an Error on failure; posts need plain data. */
function autoUpdateData(event) {
  return event.phase === 'failed' ? { ...event, error: errorData(event.error) } : event;
}

const methods = {
  async load(id, source, options = {}) {
    if (classifier) throw Object.assign(new Error('this worker already holds a classifier'), { name: 'InvalidStateError' });
    // Big embedding jobs go to a pool of workers of its own besides this
    // thread (nested workers; they start only for such a job and stop
    // after it).
    const { embeddingWorkers = defaultWorkers(), ...rest } = options;
    const embeddingPool = new EmbeddingPool(source, { workers: embeddingWorkers, bundleCache: rest.bundleCache !== false });
    classifier = await Classifier.load(source, {
      ...rest,
      embeddingPool,
      onAutoUpdate: (event) => self.postMessage({ event: 'autoUpdate', data: autoUpdateData(event) }),
      onLoadProgress: (data) => self.postMessage({ id, event: 'progress', data }),
    });
    loadedAt = performance.now();
    return methods.describe();
  },
  describe() {
    return {
      labels: classifier.labels,
      currentVersion: classifier.currentVersion,
      problems: classifier.problems,
      manifest: classifier.manifest,
    };
  },
  predict: (text) => classifier.predict(text),
  predictMany: (texts) => classifier.predictMany(texts),
  addFeedback: (text, label) => classifier.addFeedback(text, label),
  // `flag`: an Int32Array on a SharedArrayBuffer the client sets to cancel
  // (cross-origin isolated pages), read between mini-batches while this
  // worker is too busy training to receive messages.
  async update(id, options = {}, flag) {
    const controller = new AbortController();
    controllers.set(id, controller);
    try {
      return await classifier.update({ ...options, signal: controller.signal }, (data) => {
        self.postMessage({ id, event: 'progress', data });
        if (flag && Atomics.load(flag, 0) === 1) return false;
      });
    } finally {
      controllers.delete(id);
    }
  },
  whenIdle: () => classifier.whenIdle(),
  versions: () => classifier.versions(),
  rollback: (version) => classifier.rollback(version),
  resetToShipped: () => classifier.resetToShipped(),
  reload: () => classifier.reload(),
  exportData: () => classifier.exportData(),
  async importData(id, bytes) {
    const controller = new AbortController();
    controllers.set(id, controller);
    try {
      return await classifier.importData(bytes, {
        signal: controller.signal,
        onProgress: (data) => self.postMessage({ id, event: 'progress', data }),
      });
    } finally {
      controllers.delete(id);
    }
  },
  stats: () => classifier.stats(),
  samples: () => classifier.samples(),
  deleteSample: (id) => classifier.deleteSample(id),
  deleteAllSamples: () => classifier.deleteAllSamples(),
  deleteEverything: () => classifier.deleteEverything(),
  requestPersistence: () => classifier.requestPersistence(),
  networkRequests: () => requestsAfterLoad,
  forceTrapForTests: (later) => classifier.forceTrapForTests(later),
};

self.onmessage = async ({ data }) => {
  if (data.cancel !== undefined) {
    controllers.get(data.cancel)?.abort();
    return;
  }
  const { id, method, args = [] } = data;
  try {
    await ready;
    if (!Object.hasOwn(methods, method)) {
      throw Object.assign(new Error(`unknown method ${JSON.stringify(method)}`), { name: 'ConfigError' });
    }
    if (method !== 'load' && !classifier) {
      throw Object.assign(new Error('load a bundle first'), { name: 'InvalidStateError' });
    }
    // update, load and importData report progress under the request's id.
    const withId = method === 'update' || method === 'load' || method === 'importData';
    const result = withId ? await methods[method](id, ...args) : await methods[method](...args);
    const transfer = result instanceof Uint8Array ? [result.buffer] : [];
    self.postMessage({ id, result }, transfer);
  } catch (e) {
    self.postMessage({ id, error: errorData(e) });
    reportTrap();
  }
};
