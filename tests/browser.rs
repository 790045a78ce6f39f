//! The real encoder in headless Chromium: parity with onnxruntime and SIMD,
//! on the matrix kernel the package ships.
#![cfg(target_arch = "wasm32")]

mod common;

use localtune::{Encoder, EncoderConfig};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn real_encoder_matches_onnxruntime_in_the_browser() {
    assert!(
        localtune::simd128_enabled(),
        "the browser build carries simd128"
    );
    let encoder = common::real_encoder(EncoderConfig::default());
    let (cos, diff) = common::assert_parity(&encoder);
    console_log!("worst cosine {cos}, worst max abs diff {diff}");
}

#[wasm_bindgen_test]
fn the_compiled_real_encoder_matches_onnxruntime_in_the_browser() {
    let (model, tokenizer) = common::real_model();
    let compiled = Encoder::compile(&model).expect("compiles in the browser too");
    drop(model);
    let encoder = Encoder::from_compiled(&compiled, &tokenizer, EncoderConfig::default())
        .expect("the compiled encoder loads");
    let (cos, diff) = common::assert_parity(&encoder);
    console_log!("compiled: worst cosine {cos}, worst max abs diff {diff}");
}

/// The encoder's products run on the kernel the package ships (the relaxed
/// one in the relaxed module), not on tract's own: what the parity tests
/// above measure is what a user's browser runs.
#[wasm_bindgen_test]
fn the_encoder_runs_the_kernel_the_package_ships() {
    let (picked, ours) = localtune::encoder::matrix_kernels();
    let ours = ours.expect("a wasm32 build with simd128 has its own kernel");
    assert_eq!(
        ours.ends_with("_relaxed_madd"),
        localtune::relaxed_simd_enabled(),
        "{ours} in a module built with relaxed SIMD {}",
        localtune::relaxed_simd_enabled()
    );
    assert_eq!(picked.as_deref(), Some(ours.as_str()));
}
