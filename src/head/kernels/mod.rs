//! The numeric kernels of the head: every inner loop of its forward pass,
//! backward pass and optimizer updates.
//!
//! Two twins with identical signatures: [`simd128`] (WebAssembly SIMD, four
//! f32 lanes, compiled only for wasm32 with `+simd128`) and [`scalar`] (every
//! other target, and the reference the SIMD twin is tested against). Both
//! accumulate in the same order — four partial sums, combined pairwise — so
//! they agree to float rounding (in practice bit for bit; wasm's base SIMD
//! set has no fused multiply-add). The rest of the crate calls the functions
//! re-exported here and never picks a twin itself.

pub mod scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod simd128;

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub use scalar::*;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd128::*;

/// Which twin this build uses: `"simd128"` or `"scalar"`.
pub const ACTIVE: &str = if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
    "simd128"
} else {
    "scalar"
};

/// Optimizer state below this magnitude is set to zero. A momentum that
/// decays geometrically (β·m, step after step) ends up among the subnormal
/// floats, which x86 computes ~100× slower and WebAssembly may not flush;
/// at this size it no longer moves any weight (Adam's ε is 1e-7).
pub const FLUSH_BELOW: f32 = 1e-30;

/// `exp` by Cody–Waite range reduction and a degree-5 polynomial (Cephes'
/// `expf` coefficients): `exp(x) = 2^n · exp(r)`, `n = round(x·log2 e)`,
/// `|r| ≤ ln2/2`. Both twins evaluate exactly these operations in this
/// order, so they agree bit for bit; within 2 ulp of the true value on
/// `[-87, 0]` (tested). WebAssembly has no `exp` instruction: the libm
/// call this replaces was a tenth of a head update.
pub(crate) mod exp_poly {
    pub const LOG2_E: f32 = std::f32::consts::LOG2_E;
    /// ln 2 split in two so that `n·LN2_HI` is exact for |n| < 2^9.
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    pub const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ];
}

/// Hyper-parameters of one Adam step, with the bias corrections for the
/// step number already computed (they are the same for every parameter).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    pub learning_rate: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// `1 - beta1^t` for step `t` (1-based).
    pub bias_correction1: f32,
    /// `1 - beta2^t` for step `t` (1-based).
    pub bias_correction2: f32,
}

impl AdamStep {
    pub fn new(learning_rate: f32, beta1: f32, beta2: f32, epsilon: f32, step: u32) -> Self {
        let t = step.max(1) as i32;
        AdamStep {
            learning_rate,
            beta1,
            beta2,
            epsilon,
            bias_correction1: 1.0 - beta1.powi(t),
            bias_correction2: 1.0 - beta2.powi(t),
        }
    }
}
