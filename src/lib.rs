//! localtune: private, on-device personalization of text classifiers.
//!
//! A frozen sentence encoder ([`encoder`]) turns text into feature vectors;
//! a small updatable [`head`] classifies them and learns from the user's
//! corrections;
//! everything runs in-process, natively or in WebAssembly, and nothing leaves
//! the device. The `wasm` module is the thin JavaScript binding layer over
//! this pure-Rust core.

pub mod bundle;
pub mod checksum;
pub mod classifier;
pub mod encoder;
pub mod error;
pub mod head;
pub mod options;
/// The classifier's old module name.
#[deprecated(note = "renamed to `classifier` (the JavaScript class's name)")]
pub mod personalize {
    #[allow(deprecated)]
    pub use crate::classifier::{
        rehearsal_rows_to_keep, Candidate, Feedback, Personalizer, Prediction, Stats, UpdateReport,
    };
}
pub mod store;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use encoder::{
    CompileOptions, Embeddings, Encoder, EncoderConfig, TokenBatch, EMBED_CHUNK_ROWS,
    MAX_BATCH_ROWS, MAX_SEQ_LEN_LIMIT,
};
pub use error::{Error, Result};
pub use head::network::Loss;
pub use head::train::{
    run_update, Optimizer, TrainingSet, UpdateConfig, UpdateEvent, UpdateOutcome,
};
pub use head::{Head, HeadArchitecture};

/// True when this build carries WebAssembly SIMD (simd128) instructions. An
/// exported `RUSTFLAGS` silently replaces `.cargo/config.toml`'s
/// `+simd128`; the test suite asserts this on wasm32 so that cannot go unseen.
pub const fn simd128_enabled() -> bool {
    cfg!(target_feature = "simd128")
}

/// True in the package's relaxed-SIMD module (built with
/// `LOCALTUNE_RELAXED_SIMD=1`, see build.rs): its matrix kernel multiplies
/// and adds with `f32x4.relaxed_madd`. Tells a page or a test which of the
/// two modules its engine chose.
pub const fn relaxed_simd_enabled() -> bool {
    cfg!(all(target_arch = "wasm32", localtune_relaxed_simd))
}
