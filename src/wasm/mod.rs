//! The JavaScript binding: thin adapters over the pure-Rust core, camelCase
//! names, typed arrays at the boundary, and errors as JS `Error` objects whose
//! `name` is a stable code (see [`Error::code`]).
//!
//! - [`encoder`]: the `Encoder` class (text → feature vectors);
//! - [`head`]: the `Head` class and its synchronous `update` (training);
//! - [`store`]: the `Store` class, the IndexedDB store as promises;
//! - [`classifier`]: the `Classifier` class — bundle, predictions,
//!   feedback, automatic updates through a validation gate, versions;
//! - [`bundle_tool`]: `runBundleTool`, the bundle tool for Node.

mod bundle_tool;
mod classifier;
mod embedding_pool;
mod encoder;
mod head;
mod store;

use js_sys::Object;
use wasm_bindgen::prelude::*;

use crate::error::Error;

/// An options object as JSON, for the core to read with its own rules
/// (unknown keys, types, defaults). `callbacks` are keys whose values JSON
/// cannot carry (functions, an `AbortSignal`): the caller reads those
/// itself, and they are left out here.
pub(crate) fn options_json(
    value: &JsValue,
    callbacks: &[&str],
) -> Result<serde_json::Value, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(serde_json::Value::Null);
    }
    let value: JsValue = if value.is_object() && !callbacks.is_empty() {
        let copy = Object::assign(&Object::new(), value.unchecked_ref());
        for key in callbacks {
            js_sys::Reflect::delete_property(&copy, &(*key).into())?;
        }
        copy.into()
    } else {
        value.clone()
    };
    let text = js_sys::JSON::stringify(&value)
        .ok()
        .and_then(|text| JsValue::from(text).as_string())
        .ok_or_else(|| config_error("options must be a plain object".into()))?;
    serde_json::from_str(&text).map_err(|e| config_error(format!("options: {e}")))
}

/// A JS `Error` whose `name` is the error's stable code.
pub(crate) fn js_error(err: Error) -> JsValue {
    let js = js_sys::Error::new(&err.to_string());
    js.set_name(err.code());
    js.into()
}

pub(crate) fn config_error(message: String) -> JsValue {
    js_error(Error::Config(message))
}

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: there in windows, workers and Node alike
    /// (`std::time::Instant` panics on wasm32).
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    pub(crate) fn performance_now() -> f64;

    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// True when this module was built with WebAssembly SIMD (simd128).
#[wasm_bindgen(js_name = simd128Enabled)]
pub fn simd128_enabled() -> bool {
    crate::simd128_enabled()
}

/// True in the package's relaxed-SIMD module (`localtune_relaxed_bg.wasm`),
/// which the default `init()` loads where the engine validates relaxed SIMD.
#[wasm_bindgen(js_name = relaxedSimdEnabled)]
pub fn relaxed_simd_enabled() -> bool {
    crate::relaxed_simd_enabled()
}

/// Current size of this module's linear memory in bytes. Wasm memory only
/// grows, so this is also the peak since the module was instantiated.
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}

/// Runs when the module is instantiated: a panic's message is kept where
/// the trap guard (src/js/trap-guard.js) finds it, and logged. A panic
/// aborts (wasm32 has no unwinding), so the call that panicked fails with
/// a trap; the guard's `ModuleTrappedError` then says what the panic said.
#[wasm_bindgen(start)]
fn keep_panic_messages() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        let _ = js_sys::Reflect::set(
            &js_sys::global(),
            &"__localtuneLastPanic".into(),
            &message.as_str().into(),
        );
        console_error(&format!("localtune panicked: {message}"));
    }));
}
