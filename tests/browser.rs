//! The real encoder in a headless browser — Chromium, Firefox or WebKitGTK,
//! whichever driver `scripts/test.sh` hands the runner: parity with
//! onnxruntime and SIMD, and a check that the engine is the one the run
//! names.
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

/// The runner picks its driver from the environment (`GECKODRIVER`,
/// `SAFARIDRIVER` — which `scripts/test.sh` points at WebKitGTK's
/// `WebKitWebDriver` — or `CHROMEDRIVER`, and failing those whichever is on
/// the PATH), so a run could silently test another engine than it says.
/// `LOCALTUNE_TEST_ENGINE` (chromium, firefox or webkit; read when this
/// file compiles) names the engine the run means, and the page's user
/// agent must be that engine's.
#[wasm_bindgen_test]
fn the_engine_is_the_one_the_run_names() {
    // Not env!: clippy and `--no-run` builds compile this file without it.
    let Some(expected) = option_env!("LOCALTUNE_TEST_ENGINE") else {
        panic!(
            "set LOCALTUNE_TEST_ENGINE=chromium|firefox|webkit to the engine whose driver runs \
             these tests (scripts/test.sh does)"
        )
    };
    let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).unwrap();
    let agent = js_sys::Reflect::get(&navigator, &"userAgent".into())
        .unwrap()
        .as_string()
        .unwrap();
    let is = |engine: &str| match engine {
        "chromium" => agent.contains("Chrome/"),
        "firefox" => agent.contains("Firefox/"),
        "webkit" => {
            agent.contains("AppleWebKit/")
                && !agent.contains("Chrome/")
                && !agent.contains("Firefox/")
        }
        other => panic!("LOCALTUNE_TEST_ENGINE={other}: not chromium, firefox or webkit"),
    };
    assert!(
        is(expected),
        "LOCALTUNE_TEST_ENGINE={expected}, but the page's user agent is {agent:?}"
    );
    console_log!("engine: {agent}");
}
