// Which of the package's two page modules this engine should run. Both are
// built from the same Rust code (scripts/build-pkg.sh) and export the same
// API; they differ only in the encoder's matrix kernel:
//   localtune_bg.wasm          simd128: runs wherever WebAssembly SIMD does;
//   localtune_relaxed_bg.wasm  + relaxed SIMD's fused multiply-add (~20%
//                              faster encoding; Chromium, Node 22+).
// (The third, localtune_onnx_bg.wasm, simd128 with the ONNX importer, has
// its own glue, localtune_onnx.js: Node's `localtune`, and `localtune/onnx`.)
// An engine without relaxed SIMD refuses the whole second module, so the
// choice is made before loading it, by validating a 49-byte probe.
// The glue's default `init()` calls defaultWasmUrl() (build-pkg.sh patches
// it in); both URLs are literal `new URL(…, import.meta.url)` so bundlers
// (Vite, webpack) ship both files.

// (module (func (result v128)
//   (f32x4.relaxed_madd (f32x4.splat (f32.const 1)) ×3)))
const RELAXED_MADD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 28, 1, 26, 0,
  67, 0, 0, 128, 63, 253, 19, 67, 0, 0, 128, 63, 253, 19, 67, 0, 0, 128, 63, 253, 19,
  253, 133, 2, 11,
]);

/** True when this engine validates WebAssembly relaxed SIMD (`f32x4.relaxed_madd`). */
export function supportsRelaxedSimd() {
  try {
    return WebAssembly.validate(RELAXED_MADD_PROBE);
  } catch {
    return false;
  }
}

/** The URL of the module `init()` loads by default: the relaxed one where the engine validates it. */
export function defaultWasmUrl() {
  return supportsRelaxedSimd()
    ? new URL('localtune_relaxed_bg.wasm', import.meta.url)
    : new URL('localtune_bg.wasm', import.meta.url);
}
