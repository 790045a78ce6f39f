// localtune/embedding-pool: Web Workers (embedding-worker.js), each with
// the bundle's encoder, for a Classifier's big embedding jobs — an
// import's corrections, or every stored correction after the bundle's
// encoder changed: thousands of texts at ~5 ms each on one core.
//
//   import { EmbeddingPool } from 'localtune/embedding-pool';
//   const classifier = await Classifier.load(url, { embeddingPool: new EmbeddingPool(url) });
//
// The classifier decides when a job is worth the pool (the core's
// `classifier::embedding_pool`: from 256 texts), which texts go together
// (runs of similar length, as its own encoder groups them) and which runs
// its own thread embeds meanwhile; this file only hands the runs it is
// asked for to whichever worker has room (two runs each: the one it
// embeds and the next). Workers start on a job's first
// run (each loads the encoder: ~0.3 s in Chromium, handed this thread's
// compiled module; ~60 MB of memory) and are stopped by `release()`,
// which the classifier calls when its job ends — except a worker still
// loading the encoder, which is stopped once it has loaded, or taken back
// by the next job (see `release()`). `WorkerClassifier` gives its worker
// one by itself.
import { loadedModule } from './localtune.js';

/**
 * Workers by default: one fewer than the cores the browser reports (the
 * classifier's own thread embeds too), at least 1, at most 3 (each holds
 * an encoder).
 */
export function defaultWorkers() {
  const cores = globalThis.navigator?.hardwareConcurrency ?? 2;
  return Math.max(1, Math.min(3, cores - 1));
}

/** The structured-clone-safe form of a bundle source: a URL made absolute here (a worker would resolve it against its own script). */
function portableSource(source) {
  if (typeof source !== 'string') return source;
  const base = globalThis.location?.href;
  return base ? new URL(source, base).href : source;
}

/**
 * Runs a worker holds at once: the one it embeds and the next. A worker's
 * answer reaches this thread only between the classifier's own runs (this
 * is the classifier's thread), so with one run each a worker sat idle
 * until then: two workers embedding side by side went 1.76–2.11× one in
 * Chromium, the pool 1.41× (2026-12-07).
 */
const RUNS_PER_WORKER = 2;

function rebuildError({ name, message }) {
  const error = new Error(message);
  error.name = name;
  return error;
}

export class EmbeddingPool {
  #source;
  #options;
  #workers = [];
  /** Workers let go of while still loading the encoder (see `release()`). */
  #retiring = [];
  /** Runs not handed out yet: { texts, resolve, reject }. */
  #queue = [];
  /** The pool's size. */
  workers;

  /**
   * `source`: the bundle the classifier loads (its manifest URL, or its
   * files' bytes by name). `workers` (default: `defaultWorkers()`) and
   * `bundleCache` (default true: the workers read the bundle's files from
   * the cache `Classifier.load` filled).
   */
  constructor(source, { workers = defaultWorkers(), bundleCache = true } = {}) {
    if (!Number.isInteger(workers) || workers < 0) {
      throw Object.assign(new Error('workers must be a whole number, 0 or more'), { name: 'ConfigError' });
    }
    this.#source = portableSource(source);
    this.#options = { bundleCache };
    this.workers = workers;
  }

  /** One run's vectors (row-major) from whichever worker has room; runs are handed out in the order asked. */
  embedRun(texts) {
    return new Promise((resolve, reject) => {
      this.#queue.push({ texts, resolve, reject });
      if (this.#workers.length === 0) this.#start();
      for (const worker of this.#workers) this.#handOut(worker);
    });
  }

  /**
   * Stops every worker (runs still pending reject with an `AbortError`).
   * A worker still loading the encoder is not stopped in the middle of it:
   * it stops once it has loaded, unless the next job takes it back first.
   * (In Firefox, a worker stopped while it loads — fetching the bundle,
   * reading the cache, compiling — could make the next `new Worker` on
   * this thread block forever: a job cancelled early, then another, hung
   * the classifier's worker about one time in eight.)
   */
  release() {
    const workers = this.#workers;
    this.#workers = [];
    for (const worker of workers) {
      for (const run of worker.runs) run.reject(rebuildError({ name: 'AbortError', message: 'the embedding pool was released' }));
      worker.runs = [];
      if (worker.ready) worker.thread.terminate();
      else this.#retiring.push(worker);
    }
    const queue = this.#queue;
    this.#queue = [];
    for (const run of queue) run.reject(rebuildError({ name: 'AbortError', message: 'the embedding pool was released' }));
  }

  #start() {
    for (let i = 0; i < this.workers; i++) {
      // A worker of an earlier job still loading the encoder is one fewer
      // to start (and to stop while it loads).
      const retired = this.#retiring.shift();
      if (retired) {
        this.#workers.push(retired);
        continue;
      }
      const thread = new Worker(new URL('./embedding-worker.js', import.meta.url), { type: 'module' });
      // `runs`: handed to it, answered in the order handed.
      const worker = { thread, ready: false, runs: [] };
      thread.onmessage = ({ data }) => this.#answer(worker, data);
      // A worker that cannot start (its script, its module) fails the job:
      // the classifier then embeds on its own thread.
      thread.onerror = (event) => {
        event.preventDefault?.();
        const error = rebuildError({ name: 'EmbeddingPoolError', message: `a worker of the embedding pool stopped: ${event.message ?? 'error'}` });
        if (!this.#retired(worker)) this.#fail(worker, error);
      };
      // The module this thread runs, compiled (and, in V8, optimised)
      // already: the worker instantiates it instead of compiling its own.
      // Where it cannot cross, the worker loads the module `init()` picks.
      const start = { source: this.#source, options: this.#options };
      try {
        thread.postMessage({ ...start, module: loadedModule() });
      } catch {
        thread.postMessage(start);
      }
      this.#workers.push(worker);
    }
  }

  #answer(worker, data) {
    if (this.#retired(worker) || !this.#workers.includes(worker)) return;
    if (data.error) {
      this.#fail(worker, rebuildError(data.error));
      return;
    }
    if (data.ready) {
      worker.ready = true;
    } else {
      worker.runs.shift().resolve(data.vectors);
    }
    this.#handOut(worker);
  }

  #handOut(worker) {
    while (worker.ready && worker.runs.length < RUNS_PER_WORKER && this.#queue.length > 0) {
      const run = this.#queue.shift();
      worker.runs.push(run);
      worker.thread.postMessage({ texts: run.texts });
    }
  }

  /**
   * Whether `worker` was let go of while it loaded (`release()`): if so,
   * now that it has loaded (or failed to, or stopped) it is stopped.
   */
  #retired(worker) {
    const at = this.#retiring.indexOf(worker);
    if (at < 0) return false;
    this.#retiring.splice(at, 1);
    worker.thread.terminate();
    return true;
  }

  /** `culprit` failed: it stops, every pending run fails with `error`, and the other workers are released. */
  #fail(culprit, error) {
    const runs = [...this.#workers.flatMap((w) => w.runs), ...this.#queue];
    for (const worker of this.#workers) worker.runs = [];
    this.#queue = [];
    this.#workers = this.#workers.filter((w) => w !== culprit);
    culprit.thread.terminate();
    this.release();
    for (const run of runs) run.reject(error);
  }
}
