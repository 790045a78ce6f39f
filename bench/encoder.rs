//! Native tract latency for the encoder benchmark (bench/encoder.mjs runs
//! this and puts it beside the wasm figures). Reads the token ids the
//! orchestrator wrote, so every engine sees the very same ids; prints one
//! JSON object on stdout.
//!
//! Run through `bash bench/encoder.sh`; alone: `cargo bench --bench encoder -- TOKENS.json`.

use std::time::Instant;

use localtune::{Encoder, EncoderConfig, TokenBatch};

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| {
            eprintln!("usage: cargo bench --bench encoder -- TOKENS.json");
            std::process::exit(2)
        });
    let tokens: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("tokens file")).expect("tokens json");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-minilm-l6-v2-int8");
    let model = std::fs::read(format!("{dir}/model.onnx")).expect("run scripts/fetch-model.sh");
    let tokenizer = std::fs::read(format!("{dir}/tokenizer.json")).expect("tokenizer.json");

    // Cold start both ways: from the ONNX file, and from the compiled
    // encoder a bundle ships (compiled here, untimed).
    let t0 = Instant::now();
    let from_onnx =
        Encoder::from_bytes(&model, &tokenizer, EncoderConfig::default()).expect("encoder");
    let cold_onnx_ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(from_onnx);
    let compiled = Encoder::compile(&model).expect("compiles");
    let t0 = Instant::now();
    let encoder = Encoder::from_compiled(&compiled, &tokenizer, EncoderConfig::default())
        .expect("compiled encoder");
    let cold_ms = t0.elapsed().as_secs_f64() * 1e3;

    let mut latency = serde_json::Map::new();
    for (len, ids) in tokens["lengths"].as_object().expect("lengths") {
        let ids: Vec<u32> = serde_json::from_value(ids.clone()).expect("ids");
        let batch = TokenBatch::from_ids(&[ids]);
        let iterations = tokens["iterations"][len].as_u64().expect("iterations") as usize;
        for _ in 0..3 {
            encoder.embed_tokens(&batch).expect("embed");
        }
        let mut samples: Vec<f64> = (0..iterations)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(encoder.embed_tokens(&batch).expect("embed"));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let q = |p: f64| samples[((p * samples.len() as f64) as usize).min(samples.len() - 1)];
        latency.insert(
            len.clone(),
            serde_json::json!({ "median": q(0.5), "p95": q(0.95), "min": samples[0], "n": samples.len() }),
        );
    }
    println!(
        "{}",
        serde_json::json!({ "coldMs": cold_ms, "coldOnnxMs": cold_onnx_ms, "latency": latency })
    );
}
