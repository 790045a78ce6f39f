
/**
 * The `ModuleTrappedError` this module's WebAssembly instance trapped with,
 * or null. After a trap every call on `Classifier`, `Encoder`, `Head` and
 * `Store` throws it: load the page again (`WorkerClassifier` restarts its
 * worker by itself).
 */
export function moduleTrap(): Error | null;
