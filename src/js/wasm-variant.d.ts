
/** True when this engine validates WebAssembly relaxed SIMD (`f32x4.relaxed_madd`). */
export function supportsRelaxedSimd(): boolean;

/**
 * The module `init()` loads by default. From `localtune` in a page:
 * `localtune_relaxed_bg.wasm` where the engine validates relaxed SIMD, else
 * `localtune_bg.wasm` (neither has the ONNX importer). From `localtune/onnx`,
 * and from `localtune` in Node: `localtune_onnx_bg.wasm`. Pass its bytes to
 * `initSync` to make the same choice synchronously.
 */
export function defaultWasmUrl(): URL;

/** The WebAssembly.Module `init()` instantiated (undefined before it has): what an EmbeddingPool hands its workers, compiled. */
export function loadedModule(): WebAssembly.Module | undefined;
