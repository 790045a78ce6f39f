//! The benchmarks' dataset: Home Assistant intents (bench/data/), each
//! sentence with its intent and its template-disjoint split, and every
//! sentence's vector from the real encoder, cached in
//! bench/results/features/ while the encoder and the sentences stay the
//! same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use localtune::{Encoder, EncoderConfig};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub struct Dataset {
    pub texts: Vec<String>,
    pub intents: Vec<String>,
    /// In the training split (else the test split).
    pub train: Vec<bool>,
}

/// Rows by intent, per split.
pub struct Splits<'a> {
    pub train: BTreeMap<&'a str, Vec<usize>>,
    pub test: BTreeMap<&'a str, Vec<usize>>,
}

impl Dataset {
    /// Each intent's rows in the training and in the test split.
    pub fn rows_by_intent(&self) -> Splits<'_> {
        let mut splits = Splits {
            train: BTreeMap::new(),
            test: BTreeMap::new(),
        };
        for (row, intent) in self.intents.iter().enumerate() {
            let split = if self.train[row] {
                &mut splits.train
            } else {
                &mut splits.test
            };
            split.entry(intent.as_str()).or_default().push(row);
        }
        splits
    }
}

/// The encoder's files (scripts/fetch-model.sh puts them there).
pub fn model_files() -> (Vec<u8>, Vec<u8>) {
    let dir = Path::new(ROOT).join("models/all-minilm-l6-v2-int8");
    let model = std::fs::read(dir.join("model.onnx")).expect("run scripts/fetch-model.sh");
    let tokenizer = std::fs::read(dir.join("tokenizer.json")).expect("tokenizer.json");
    (model, tokenizer)
}

pub fn read_dataset() -> Dataset {
    let path = Path::new(ROOT).join("bench/data/home-assistant-intents-en.csv");
    let mut reader =
        csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut data = Dataset {
        texts: vec![],
        intents: vec![],
        train: vec![],
    };
    for record in reader.records() {
        let record = record.expect("csv record");
        data.texts.push(record[0].to_string());
        data.intents.push(record[1].to_string());
        data.train.push(&record[3] == "train");
    }
    data
}

/// Where the cached vectors live (`features.f32`, little-endian, one row
/// per CSV row), also read by the Python references.
pub fn features_dir() -> PathBuf {
    Path::new(ROOT).join("bench/results/features")
}

/// Every text's vector with the real encoder, or the cached vectors when
/// the encoder and the dataset are the same as last time: (values, dim,
/// encoder sha256).
pub fn features(data: &Dataset) -> (Vec<f32>, usize, String) {
    let (model, tokenizer) = model_files();
    let encoder =
        Encoder::from_bytes(&model, &tokenizer, EncoderConfig::default()).expect("encoder");
    // The sha256 names the model, not how this build computes with it
    // (the integer weight products changed the vectors, not the model):
    // the first text's vector, bit for bit, is part of the key too.
    let probe = encoder.embed(&[data.texts[0].as_str()]).expect("embed");
    let probe_bits: Vec<String> = probe
        .as_slice()
        .iter()
        .map(|v| v.to_bits().to_string())
        .collect();
    let key = format!(
        "{} {} {} {}",
        encoder.sha256(),
        data.texts.len(),
        fingerprint(&data.texts),
        fingerprint(&probe_bits)
    );
    let out_dir = features_dir();
    std::fs::create_dir_all(&out_dir).expect("features folder");
    let (cache, key_file) = (out_dir.join("features.f32"), out_dir.join("features.key"));
    if std::fs::read_to_string(&key_file).ok().as_deref() == Some(key.as_str()) {
        let bytes = std::fs::read(&cache).expect("features cache");
        let values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        return (values, encoder.dim(), encoder.sha256().to_string());
    }
    let values = embed_all(&encoder, data);
    let dim = encoder.dim();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&cache, bytes).expect("write features");
    std::fs::write(&key_file, &key).expect("write key");
    (values, dim, encoder.sha256().to_string())
}

/// A cheap content fingerprint for the cache key (not a security boundary).
fn fingerprint(texts: &[String]) -> u64 {
    texts
        .iter()
        .flat_map(|t| t.bytes().chain([0]))
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        })
}

/// Every text's vector with `encoder`, row by CSV row.
pub fn embed_all(encoder: &Encoder, data: &Dataset) -> Vec<f32> {
    // Embed in batches of similar length: little padding, full speed.
    let mut order: Vec<usize> = (0..data.texts.len()).collect();
    order.sort_by_key(|&i| data.texts[i].len());
    let dim = encoder.dim();
    let mut values = vec![0.0f32; data.texts.len() * dim];
    let started = Instant::now();
    for chunk in order.chunks(32) {
        let texts: Vec<&str> = chunk.iter().map(|&i| data.texts[i].as_str()).collect();
        let embeddings = encoder.embed(&texts).expect("embed");
        for (k, &row) in chunk.iter().enumerate() {
            values[row * dim..(row + 1) * dim].copy_from_slice(embeddings.row(k));
        }
    }
    eprintln!(
        "embedded {} texts in {:.1} s",
        data.texts.len(),
        started.elapsed().as_secs_f64()
    );
    values
}
