//! Shared by the native, Node and browser test binaries: the model files and
//! the parity check against onnxruntime's reference embeddings.
#![allow(dead_code)] // each test binary uses a different part

#[cfg(not(target_arch = "wasm32"))]
pub mod tiny_bundle;

use localtune::{Encoder, EncoderConfig};
use serde::Deserialize;

/// Reference embeddings from onnxruntime (tools/make_parity_fixture.py).
pub const PARITY_JSON: &str = include_str!("../fixtures/parity.json");

pub const TINY_ENCODER: &[u8] = include_bytes!("../fixtures/tiny/encoder.onnx");
pub const TINY_TOKENIZER: &[u8] = include_bytes!("../fixtures/tiny/tokenizer.json");
pub const WRONG_IO_MODEL: &[u8] = include_bytes!("../fixtures/tiny/wrong-io.onnx");

// The real encoder is fetched by scripts/fetch-model.sh (the test command runs
// it first). Wasm has no file system, so it is compiled into the test module.
#[cfg(target_arch = "wasm32")]
pub fn real_model() -> (Vec<u8>, Vec<u8>) {
    (
        include_bytes!("../../models/all-minilm-l6-v2-int8/model.onnx").to_vec(),
        include_bytes!("../../models/all-minilm-l6-v2-int8/tokenizer.json").to_vec(),
    )
}

#[cfg(not(target_arch = "wasm32"))]
pub fn real_model() -> (Vec<u8>, Vec<u8>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-minilm-l6-v2-int8");
    let read = |name: &str| {
        std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| {
            panic!("{dir}/{name} is missing ({e}): run scripts/fetch-model.sh first")
        })
    };
    (read("model.onnx"), read("tokenizer.json"))
}

pub fn real_encoder(config: EncoderConfig) -> Encoder {
    let (model, tokenizer) = real_model();
    Encoder::from_bytes(&model, &tokenizer, config).expect("the real encoder loads")
}

pub fn tiny_encoder(config: EncoderConfig) -> Encoder {
    Encoder::from_bytes(TINY_ENCODER, TINY_TOKENIZER, config).expect("the tiny encoder loads")
}

#[derive(Deserialize)]
pub struct Fixture {
    pub model_sha256: String,
    pub max_seq_len: usize,
    pub dim: usize,
    pub cases: Vec<Case>,
}

#[derive(Deserialize)]
pub struct Case {
    pub label: String,
    text: serde_json::Value,
    pub token_ids: Vec<u32>,
    pub embedding: Vec<f32>,
}

impl Case {
    /// The text; long ones are stored as `{"repeat": s, "times": n}`.
    pub fn text(&self) -> String {
        match &self.text {
            serde_json::Value::String(s) => s.clone(),
            v => v["repeat"]
                .as_str()
                .expect("repeat")
                .repeat(v["times"].as_u64().expect("times") as usize),
        }
    }
}

pub fn fixture() -> Fixture {
    serde_json::from_str(PARITY_JSON).expect("parity.json parses")
}

/// The f32 encoder's bound, which the integer weight products keep too
/// (worst 0.99996 on the fixture; issue 19 allows them down to 0.999).
pub const MIN_COSINE: f32 = 0.9999;
/// The integer weight products round each activation row to 12 bits: the
/// worst component moves by 0.0016 (the f32 products stayed within 1e-4),
/// a component of these vectors being ~0.05 typically.
pub const MAX_ABS_DIFF: f32 = 3e-3;

/// Embeds every fixture text in one padded batch and checks each against
/// onnxruntime: same token ids, cosine ≥ 0.9999, max |diff| ≤ 0.003.
/// Returns the worst (cosine, max diff) seen, for the test log.
pub fn assert_parity(encoder: &Encoder) -> (f32, f32) {
    let fx = fixture();
    assert!(fx.cases.len() >= 30, "the fixture has at least 30 texts");
    assert_eq!(
        encoder.sha256(),
        fx.model_sha256,
        "fixture was made for this model"
    );
    assert_eq!(encoder.max_seq_len(), fx.max_seq_len);
    assert_eq!(encoder.dim(), fx.dim);

    let texts: Vec<String> = fx.cases.iter().map(Case::text).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = encoder.tokenize(&refs).expect("tokenize");
    let embeddings = encoder.embed_tokens(&batch).expect("embed");
    assert_eq!(embeddings.len(), fx.cases.len());

    let (mut worst_cos, mut worst_diff) = (1f32, 0f32);
    for (i, case) in fx.cases.iter().enumerate() {
        let ids: Vec<u32> = batch.input_ids[i * batch.seq_len..]
            .iter()
            .take(batch.tokens_in_row(i))
            .map(|&id| id as u32)
            .collect();
        assert_eq!(ids, case.token_ids, "token ids of {:?}", case.label);
        let got = embeddings.row(i);
        let cos = cosine(got, &case.embedding);
        let diff = max_abs_diff(got, &case.embedding);
        assert!(
            cos >= MIN_COSINE && diff <= MAX_ABS_DIFF,
            "{:?}: cosine {cos} (need ≥ {MIN_COSINE}), max abs diff {diff} (need ≤ {MAX_ABS_DIFF})",
            case.label
        );
        worst_cos = worst_cos.min(cos);
        worst_diff = worst_diff.max(diff);
    }
    (worst_cos, worst_diff)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    (dot / (na * nb)) as f32
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `compiled` (a compiled encoder) with its header JSON changed by `edit`:
/// what a file compiled by another build, or a damaged one, looks like.
pub fn with_compiled_header(compiled: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    use std::io::Read;
    let mut archive = tar::Archive::new(compiled);
    let mut out = tar::Builder::new(Vec::new());
    let mut edit = Some(edit);
    for (i, entry) in archive.entries().unwrap().enumerate() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if i == 0 {
            let mut header: serde_json::Value = serde_json::from_slice(&data).unwrap();
            edit.take().expect("one header")(&mut header);
            data = serde_json::to_vec(&header).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, path, &data[..]).unwrap();
    }
    out.into_inner().unwrap()
}
