//! The real encoder in headless Chromium: parity with onnxruntime and SIMD.
#![cfg(target_arch = "wasm32")]

mod common;

use localtune::EncoderConfig;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn real_encoder_matches_onnxruntime_in_chromium() {
    assert!(
        localtune::simd128_enabled(),
        "the browser build carries simd128"
    );
    let encoder = common::real_encoder(EncoderConfig::default());
    let (cos, diff) = common::assert_parity(&encoder);
    console_log!("worst cosine {cos}, worst max abs diff {diff}");
}
