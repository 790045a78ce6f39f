// When the WebAssembly module traps — a Rust panic (release builds abort),
// running out of memory, any bug — the engine throws `RuntimeError:
// unreachable` and the instance's memory is left mid-operation: every later
// call may fail the same way or, worse, answer from half-updated state.
// This guard, installed over the package's classes by the glue (scripts/
// patch-glue.mjs), turns the first trap into a `ModuleTrappedError` that
// says what happened and what to do, rejects every call still in flight
// (a trap inside an async task never settles its promise otherwise), and
// refuses every later call with the same error instead of entering the
// broken instance. In a Web Worker, `WorkerClassifier` then starts a new
// worker (see client.js); on a page, load the page again.

let trapped = null;
/** Rejections of the calls in flight, run when the module traps. */
const inFlight = new Set();

/** The module's trap, once it happened (else null). */
export function moduleTrap() {
  return trapped;
}

function isTrap(e) {
  return typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError;
}

function noteTrap(cause, where) {
  if (!trapped) {
    const panic = globalThis.__localtuneLastPanic;
    trapped = new Error(
      `the WebAssembly module trapped${where ? ` in ${where}` : ''} (${cause?.message ?? cause}` +
        `${panic ? `; the Rust code panicked: ${panic}` : ''}); this instance can no longer be used: ` +
        'load the page again (WorkerClassifier restarts its worker by itself)',
      { cause },
    );
    trapped.name = 'ModuleTrappedError';
  }
  for (const reject of inFlight) reject(trapped);
  inFlight.clear();
  return trapped;
}

// A trap inside an async task (a promise's step run from the event loop)
// is thrown there, not to any caller: it reaches the global error handler.
globalThis.addEventListener?.('error', (event) => {
  if (isTrap(event.error)) noteTrap(event.error);
});

function guard(fn, where) {
  return function guarded(...args) {
    if (trapped) throw trapped;
    let out;
    try {
      out = fn.apply(this, args);
    } catch (e) {
      throw isTrap(e) ? noteTrap(e, where) : e;
    }
    if (!(out instanceof Promise)) return out;
    return new Promise((resolve, reject) => {
      inFlight.add(reject);
      out.then(
        (value) => { inFlight.delete(reject); resolve(value); },
        (e) => { inFlight.delete(reject); reject(isTrap(e) ? noteTrap(e, where) : e); },
      );
    });
  };
}

/** Wraps every method, getter and static method of `classes` ({ name: class }). */
export function guardAgainstTraps(classes) {
  for (const [name, cls] of Object.entries(classes)) {
    for (const [target, prefix] of [[cls.prototype, `${name}.`], [cls, `${name}.`]]) {
      for (const key of Object.getOwnPropertyNames(target)) {
        // Not the class's own plumbing (`__wrap`, …): it runs no wasm code.
        if (['constructor', 'prototype', 'length', 'name'].includes(key) || key.startsWith('__')) continue;
        const d = Object.getOwnPropertyDescriptor(target, key);
        if (!d.configurable) continue;
        if (typeof d.value === 'function') d.value = guard(d.value, prefix + key);
        if (d.get) d.get = guard(d.get, prefix + key);
        if (d.set) d.set = guard(d.set, prefix + key);
        Object.defineProperty(target, key, d);
      }
    }
  }
}
