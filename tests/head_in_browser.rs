//! The head and its update task in headless Chromium: the same cases as
//! `tests/head.rs`, on the browser's wasm engine and its SIMD.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod head_cases;
