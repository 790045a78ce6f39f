//! A tiny bundle for the native tests of the bundle and the classifier:
//! the tiny encoder, a head trained on nine sentences of three labels, and
//! those sentences as rehearsal vectors.

use std::collections::HashMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::task::{Context, Poll, Waker};

use localtune::bundle::{
    AllowedRanges, Bundle, EncoderSpec, FileRef, HeadSpec, Manifest, Pooling, Rehearsal,
    TrainingInputs, TrainingSpec, SCHEMA_VERSION,
};
use localtune::head::codec;
use localtune::store::sha256_hex;
use localtune::{Encoder, Head, HeadArchitecture, UpdateConfig};

pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

pub const LABELS: [&str; 3] = ["lights", "music", "weather"];
pub const TRAINING: [(&str, &str); 9] = [
    ("turn off the kitchen lights", "lights"),
    ("turn off the bedroom light", "lights"),
    ("living room lights", "lights"),
    ("play music", "music"),
    ("stop the music", "music"),
    ("pause music", "music"),
    ("weather today", "weather"),
    ("weather tomorrow", "weather"),
    ("what is the weather", "weather"),
];

/// A bundle of the tiny encoder with a head trained on `TRAINING`, as files.
pub fn bundle_files() -> HashMap<String, Vec<u8>> {
    let encoder = super::tiny_encoder(Default::default());
    let texts: Vec<&str> = TRAINING.iter().map(|t| t.0).collect();
    let vectors = encoder.embed(&texts).unwrap();
    let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
    let indices: Vec<usize> = TRAINING
        .iter()
        .map(|t| LABELS.iter().position(|l| *l == t.1).unwrap())
        .collect();
    let start =
        Head::new_seeded(encoder.dim(), HeadArchitecture::Linear, labels.clone(), 0).unwrap();
    let head = localtune::run_update(
        &start,
        None,
        localtune::TrainingSet {
            features: vectors.as_slice(),
            labels: &indices,
        },
        &UpdateConfig::default(),
        &|| 0.0,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap()
    .head;
    let rehearsal = Rehearsal {
        dim: encoder.dim(),
        features: vectors.as_slice().to_vec(),
        labels: indices.iter().map(|&i| i as u32).collect(),
        nearest: Vec::new(),
    };
    let mut files = HashMap::new();
    let mut add = |name: &str, bytes: Vec<u8>| {
        let r = FileRef {
            file: name.into(),
            sha256: sha256_hex(&bytes),
        };
        files.insert(name.to_string(), bytes);
        r
    };
    let enc = add("encoder.onnx", super::TINY_ENCODER.to_vec());
    let compiled = add(
        "encoder.compiled.tar",
        Encoder::compile(super::TINY_ENCODER).unwrap(),
    );
    let tok = add("tokenizer.json", super::TINY_TOKENIZER.to_vec());
    let head_file = add("head.bin", codec::encode(&head));
    let rehearsal_file = add("rehearsal.bin", rehearsal.encode());
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        name: "tiny".into(),
        version: "1".into(),
        description: String::new(),
        encoder: EncoderSpec {
            file: enc.file,
            sha256: enc.sha256,
            pooling: Pooling::Mean,
            normalize: true,
            max_seq_len: 128,
            feature_size: encoder.dim(),
            compiled: Some(compiled),
            word_embeddings_4bit: None,
        },
        tokenizer: tok,
        labels,
        head: HeadSpec {
            file: head_file.file,
            sha256: head_file.sha256,
            architecture: HeadArchitecture::Linear,
            updatable_layers: vec!["output".into()],
        },
        training: TrainingSpec {
            inputs: TrainingInputs::FeatureVectors,
            defaults: UpdateConfig::default(),
            allowed: AllowedRanges::default(),
            auto_update_threshold: 5,
            validation_gate_fraction: 0.2,
            rehearsal: Some(rehearsal_file),
            shipped_check: None,
            shipped_margin: 0.01,
        },
    };
    files.insert(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    files
}

pub fn load(mut files: HashMap<String, Vec<u8>>) -> localtune::Result<Bundle> {
    let manifest = files.remove("manifest.json").unwrap();
    Bundle::load(&manifest, &mut |name| files.get(name).cloned())
}
