//! The real encoder in headless Chromium: parity with onnxruntime and SIMD.
#![cfg(target_arch = "wasm32")]

mod common;

use localtune::{Encoder, EncoderConfig};
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

#[wasm_bindgen_test]
fn the_compiled_real_encoder_matches_onnxruntime_in_chromium() {
    let (model, tokenizer) = common::real_model();
    let compiled = Encoder::compile(&model).expect("compiles in the browser too");
    drop(model);
    let encoder = Encoder::from_compiled(&compiled, &tokenizer, EncoderConfig::default())
        .expect("the compiled encoder loads");
    let (cos, diff) = common::assert_parity(&encoder);
    console_log!("compiled: worst cosine {cos}, worst max abs diff {diff}");
}
