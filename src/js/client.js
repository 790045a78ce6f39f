// localtune/client: the Classifier API from the page, running in a Web
// Worker (localtune/worker), so typing never waits for the encoder or for
// training. Every method returns a Promise; errors arrive as Error objects
// with the same `name` as on the main thread.
//
//   import { WorkerClassifier } from 'localtune/client';
//   const classifier = await WorkerClassifier.load('/bundles/default/');
//   await classifier.predict('pause the music');

/** Rebuilds an Error with its stable name. */
function toError({ name, message }) {
  const error = new Error(message);
  error.name = name;
  return error;
}

/**
 * The calls that change nothing, in the worker or the store: after a trap
 * the client sends them again, once, to the new worker instead of failing
 * them (see #trapped). A call that writes is not repeated: whether its
 * write happened before the trap is for the caller to find out.
 */
const READ_ONLY = new Set(['predict', 'predictMany', 'whenIdle', 'versions', 'exportData', 'stats', 'samples', 'describe']);

/** Transfers the buffers of a bundle given as bytes instead of copying them. */
function transferables(value) {
  if (value instanceof Uint8Array) return [value.buffer];
  if (value instanceof Map) return [...value.values()].flatMap(transferables);
  if (value && typeof value === 'object') return Object.values(value).flatMap(transferables);
  return [];
}

export class WorkerClassifier {
  #worker;
  #next = 1;
  #pending = new Map();
  #onAutoUpdate;
  #described;
  /** How to start the worker again after a trap: `{ start, source, options }`, or null. */
  #restart = null;
  /** A restart under way (calls wait for it). */
  #restarting = null;
  /** Why every call now fails (a trap with no way to restart, or a failed restart). */
  #dead = null;
  #restarts = 0;
  /** Why calls fail while the page is hidden (its worker stopped), or null. */
  #hidden = null;
  /** Removes the page-lifecycle listeners (see #followPage). */
  #unfollowPage = () => {};

  constructor(worker, onAutoUpdate) {
    this.#onAutoUpdate = onAutoUpdate;
    this.#attach(worker);
    this.#followPage();
  }

  /**
   * The worker lives as long as the page is shown. On `pagehide` (a
   * reload, a navigation, a closed tab, the back-forward cache) it is
   * terminated, and a page restored from the back-forward cache starts a
   * new one that reads the store again. Why: a worker the browser freezes
   * with its page can keep an IndexedDB transaction in flight, and every
   * later transaction on the database, in any tab, then waits behind it
   * (WebKit, after leaving a page: docs/api.md, "In a Web Worker"). A
   * worker terminated before the page goes has its transactions aborted:
   * nothing half-written is kept, all or nothing per operation as always.
   */
  #followPage() {
    const page = globalThis.window;
    if (page !== globalThis || typeof page.addEventListener !== 'function') return;
    const hide = () => this.#pageHidden();
    const show = (event) => { if (event.persisted) this.#pageShown(); };
    page.addEventListener('pagehide', hide);
    page.addEventListener('pageshow', show);
    this.#unfollowPage = () => {
      page.removeEventListener('pagehide', hide);
      page.removeEventListener('pageshow', show);
    };
  }

  #pageHidden() {
    if (this.#hidden || this.#dead) return;
    this.#hidden = toError({
      name: 'AbortError',
      message: 'the page was hidden (reloaded, closed or put in the back-forward cache), so its worker was stopped',
    });
    for (const call of this.#pending.values()) call.reject(this.#hidden);
    this.#pending.clear();
    this.#worker.terminate();
  }

  #pageShown() {
    if (!this.#hidden) return;
    this.#hidden = null;
    if (!this.#restart) {
      this.#dead = toError({
        name: 'InvalidStateError',
        message: 'the page came back from the back-forward cache, and this WorkerClassifier cannot start its worker again (its bundle was given as bytes, or its worker as an object): load it again',
      });
      return;
    }
    this.#startAgain({ afterTrap: false });
  }

  #attach(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      // A message a terminated worker posted before it went: its calls are
      // settled (failed or sent again) already.
      if (worker !== this.#worker) return;
      if (data.event === 'trapped') {
        this.#trapped(toError(data.data));
        return;
      }
      if (data.event === 'autoUpdate') {
        const event = data.data.phase === 'failed' ? { ...data.data, error: toError(data.data.error) } : data.data;
        if (event.phase === 'finished' && event.report.accepted) {
          this.#described = { ...this.#described, currentVersion: event.report.version };
          // The labels and problems as the worker now has them (their order
          // follows the new head's), in the background.
          this.#call('describe').then((described) => { this.#described = described; }, () => {});
        }
        this.#onAutoUpdate?.(event);
        return;
      }
      const call = this.#pending.get(data.id);
      if (!call) return;
      if (data.event === 'progress') {
        // Once cancelled, later events (already on their way) are dropped.
        if (!call.cancelled && call.onProgress?.(data.data) === false) this.#cancel(data.id);
        return;
      }
      if (data.error?.name === 'ModuleTrappedError') {
        // Still pending: #trapped fails it or sends it again.
        this.#trapped(toError(data.error));
        return;
      }
      this.#pending.delete(data.id);
      if (data.error) call.reject(toError(data.error));
      else call.resolve(data.result);
    };
    worker.onerror = (e) => {
      // As for messages: a terminated worker's error concerns calls that
      // are settled already, not the new worker's.
      if (worker !== this.#worker) return;
      for (const call of this.#pending.values()) call.reject(toError({ name: 'WorkerError', message: e.message }));
      this.#pending.clear();
    };
  }

  /**
   * The worker's module trapped: the worker goes, and a new one loads the
   * same bundle and reads the store again (what was stored before the trap
   * is all there); calls made meanwhile wait for it. The calls in flight
   * that change nothing (READ_ONLY) are sent to the new worker, once each,
   * so a prediction does not fail because something else trapped (a trap
   * is an engine's or our bug, and an instance's memory after one cannot be
   * trusted, but the stored state can); every other call in flight fails
   * with `error`, as does a read-only one whose second try traps too.
   * Without a way to start a worker (a bundle given as bytes, which were
   * transferred; a worker given as an object), every call fails with
   * `error`, now and later.
   */
  #trapped(error) {
    if (this.#dead) return;
    if (this.#restarting) {
      // The new worker trapped while loading: its `load` fails, and with
      // it the restart (every call waiting for it fails with `error`).
      for (const call of this.#pending.values()) call.reject(error);
      this.#pending.clear();
      return;
    }
    const again = [];
    for (const call of this.#pending.values()) {
      if (READ_ONLY.has(call.method) && !call.retried && this.#restart) again.push(call);
      else call.reject(error);
    }
    this.#pending.clear();
    this.#worker.terminate();
    if (!this.#restart) {
      this.#dead = toError({
        name: error.name,
        message: `${error.message}; this WorkerClassifier cannot start its worker again (its bundle was given as bytes, or its worker as an object): load it again`,
      });
      return;
    }
    this.#startAgain({ afterTrap: true });
    for (const call of again) {
      this.#call(call.method, call.args, { retried: true }).then(call.resolve, call.reject);
    }
  }

  /** A new worker loads the same bundle and reads the store; calls wait for it. */
  #startAgain({ afterTrap }) {
    const { start, source, options } = this.#restart;
    this.#dead = null;
    this.#restarting = (async () => {
      this.#attach(start());
      this.#described = await this.#send('load', [source, options]);
      if (afterTrap) this.#restarts += 1;
    })()
      .catch((e) => { this.#dead = e; })
      .finally(() => { this.#restarting = null; });
  }

  async #call(method, args = [], options = {}) {
    if (this.#hidden) throw this.#hidden;
    if (this.#restarting) await this.#restarting;
    if (this.#dead) throw this.#dead;
    return this.#send(method, args, options);
  }

  #send(method, args = [], { onProgress, signal, flag, transfer = [], retried = false } = {}) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress, flag, method, args, retried });
      if (signal) {
        if (signal.aborted) this.#cancel(id);
        signal.addEventListener('abort', () => this.#cancel(id), { once: true });
      }
      this.#worker.postMessage({ id, method, args }, transfer);
    });
  }

  /**
   * Cancels request `id`. With a shared flag (cross-origin isolated pages)
   * the worker sees it between mini-batches; otherwise the message reaches
   * the worker when training ends and the candidate is dropped unsaved.
   */
  #cancel(id) {
    const call = this.#pending.get(id);
    if (!call || call.cancelled) return;
    call.cancelled = true;
    if (call.flag) Atomics.store(call.flag, 0, 1);
    this.#worker.postMessage({ cancel: id });
  }

  /**
   * Starts a worker and loads a bundle in it: `source` is a manifest URL
   * (resolved against the page) or the files' bytes (transferred, so the
   * caller's buffers are emptied). Options as for `Classifier.load`.
   */
  static async load(source, options = {}) {
    const { onAutoUpdate, onLoadProgress, worker: given, ...rest } = options;
    const start = typeof given === 'function'
      ? given
      : () => new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    const worker = given && typeof given !== 'function' ? given : start();
    const client = new WorkerClassifier(worker, onAutoUpdate);
    const absolute = typeof source === 'string' ? new URL(source, globalThis.location?.href).href : source;
    if (typeof source === 'string' && !(given && typeof given !== 'function')) {
      client.#restart = { start, source: absolute, options: rest };
    }
    try {
      client.#described = await client.#call('load', [absolute, rest], { transfer: transferables(source), onProgress: onLoadProgress });
    } catch (e) {
      client.terminate();
      throw e;
    }
    return client;
  }

  get labels() { return this.#described.labels; }
  get currentVersion() { return this.#described.currentVersion; }
  get problems() { return this.#described.problems; }
  get manifest() { return this.#described.manifest; }

  predict(text) { return this.#call('predict', [text]); }
  predictMany(texts) { return this.#call('predictMany', [texts]); }
  /** As `Classifier.addFeedback`; `labels` includes a new label at once. */
  async addFeedback(text, label) {
    const feedback = await this.#call('addFeedback', [text, label]);
    if (feedback.evicted.length > 0) this.#described = await this.#call('describe');
    else if (!this.#described.labels.includes(label)) {
      this.#described = { ...this.#described, labels: [...this.#described.labels, label] };
    }
    return feedback;
  }

  /** As `Classifier.update`; `options.signal` and `onProgress` work across the worker boundary. */
  async update(options = {}, onProgress) {
    const { signal, ...rest } = options;
    // A flag the worker reads between batches, where memory can be shared:
    // cross-origin isolation is not enough, WebKitGTK reports it and still
    // has no SharedArrayBuffer. Elsewhere the cancel arrives as a message.
    const shared = globalThis.crossOriginIsolated && typeof SharedArrayBuffer === 'function';
    const flag = shared ? new Int32Array(new SharedArrayBuffer(4)) : undefined;
    const report = await this.#call('update', [rest, flag], { onProgress, signal, flag });
    if (report.accepted) this.#described = await this.#call('describe');
    return report;
  }

  whenIdle() { return this.#call('whenIdle'); }
  versions() { return this.#call('versions'); }
  async rollback(version) { return this.#refresh(await this.#call('rollback', [version])); }
  async resetToShipped() { return this.#refresh(await this.#call('resetToShipped')); }
  async reload() { return this.#refresh(await this.#call('reload')); }
  exportData() { return this.#call('exportData'); }
  /** As `Classifier.importData`; `options.onProgress` and `options.signal` work across the worker boundary. */
  async importData(bytes, options = {}) {
    const { onProgress, signal } = options;
    const counts = await this.#call('importData', [bytes], { onProgress, signal });
    this.#described = await this.#call('describe');
    return counts;
  }
  stats() { return this.#call('stats'); }
  samples() { return this.#call('samples'); }
  async deleteSample(id) { await this.#refresh(await this.#call('deleteSample', [id])); }
  async deleteAllSamples() { await this.#refresh(await this.#call('deleteAllSamples')); }
  async deleteEverything() { return this.#refresh(await this.#call('deleteEverything')); }
  requestPersistence() { return this.#call('requestPersistence'); }
  /** Network requests the worker has made since its bundle loaded. */
  networkRequests() { return this.#call('networkRequests'); }
  /** Workers started again after their module trapped. */
  get restarts() { return this.#restarts; }
  /** For tests: traps the worker's module, at once or in an async task. */
  forceTrapForTests(later = false) { return this.#call('forceTrapForTests', [later]); }

  /** Stops the worker; pending calls are rejected. */
  terminate() {
    this.#unfollowPage();
    this.#worker.terminate();
    for (const call of this.#pending.values()) call.reject(toError({ name: 'AbortError', message: 'the worker was terminated' }));
    this.#pending.clear();
  }

  /** After a change of head: what the worker's classifier now is. */
  async #refresh(version) {
    this.#described = await this.#call('describe');
    return version;
  }
}
