//! `LOCALTUNE_RELAXED_SIMD=1` builds the package's second wasm module, whose
//! matrix kernel uses relaxed SIMD's fused multiply-add (src/encoder/wasm_gemm.rs;
//! scripts/build-pkg.sh builds both modules).
//!
//! An environment variable read here, not a cargo feature: a feature changes
//! the crate's metadata hash and with it the mangled names of the closure
//! trampolines wasm-bindgen exports, so the two modules would need two JS
//! glues. A cfg set by the build script leaves every name as it is, and only
//! this crate rebuilds when the variable changes.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(localtune_relaxed_simd)");
    println!("cargo::rerun-if-env-changed=LOCALTUNE_RELAXED_SIMD");
    println!("cargo::rerun-if-changed=build.rs");
    let relaxed = match std::env::var("LOCALTUNE_RELAXED_SIMD").as_deref() {
        Err(_) | Ok("") | Ok("0") => false,
        Ok("1") => true,
        Ok(other) => panic!("LOCALTUNE_RELAXED_SIMD must be 0 or 1, not {other:?}"),
    };
    let wasm32 = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32");
    if relaxed && !wasm32 {
        panic!("LOCALTUNE_RELAXED_SIMD=1 is for wasm32 builds only");
    }
    if relaxed {
        println!("cargo::rustc-cfg=localtune_relaxed_simd");
    }
}
