//! Parity of the real encoder (int8 all-MiniLM-L6-v2) with onnxruntime, for
//! the fixture's texts: natively and, as wasm, in Node. The same check runs
//! in headless Chromium from tests/browser.rs.

mod common;

use localtune::{Encoder, EncoderConfig};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[test]
fn real_encoder_matches_onnxruntime() {
    let encoder = common::real_encoder(EncoderConfig::default());
    let (cos, diff) = common::assert_parity(&encoder);
    println!("worst cosine {cos}, worst max abs diff {diff}");
}

#[test]
fn gathering_before_dequantizing_is_bit_identical() {
    let texts = ["turn off the kitchen lights", "", "请把客厅的灯关掉 🔥"];
    let rewritten = common::real_encoder(EncoderConfig::default());
    let as_shipped = common::real_encoder(EncoderConfig {
        gather_before_dequantize: false,
        ..EncoderConfig::default()
    });
    // The word-embedding table is rewritten; the small position table is left to folding.
    assert_eq!(rewritten.gather_first_lookups(), 1);
    assert_eq!(as_shipped.gather_first_lookups(), 0);
    let batch = rewritten.tokenize(&texts).unwrap();
    assert_eq!(
        rewritten.hidden_states(&batch).unwrap(),
        as_shipped.hidden_states(&batch).unwrap()
    );
}

#[test]
fn the_compiled_real_encoder_matches_onnxruntime_and_the_onnx_build() {
    let (model, tokenizer) = common::real_model();
    let compiled = Encoder::compile(&model).unwrap();
    // Its int8 weights stay int8: about the ONNX file's size, not the
    // 55 MB tract's f32 serialisation would take.
    assert!(
        compiled.len() < model.len() * 11 / 10,
        "{} bytes compiled from {}",
        compiled.len(),
        model.len()
    );
    let from_compiled = Encoder::from_compiled(&compiled, &tokenizer, EncoderConfig::default())
        .expect("the compiled encoder loads");
    drop(compiled);
    let (cos, diff) = common::assert_parity(&from_compiled);
    println!("compiled: worst cosine {cos}, worst max abs diff {diff}");
    let from_onnx = common::real_encoder(EncoderConfig::default());
    assert_eq!(from_compiled.sha256(), from_onnx.sha256());
    let texts = [
        "turn off the kitchen lights",
        "",
        "请把客厅的灯关掉 🔥",
        &"word ".repeat(200),
    ];
    let batch = from_onnx.tokenize(&texts).unwrap();
    assert_eq!(
        from_compiled.hidden_states(&batch).unwrap(),
        from_onnx.hidden_states(&batch).unwrap(),
        "bit for bit"
    );
}
