//! Native tract latency for the encoder benchmark (bench/encoder.mjs runs
//! this and puts it beside the wasm figures). Reads the token ids the
//! orchestrator wrote, so every engine sees the very same ids; prints one
//! JSON object on stdout.
//!
//! Run through `bash bench/encoder.sh`; alone: `cargo bench --bench encoder -- TOKENS.json`.
//!
//! `cargo bench --bench encoder -- --batch` instead measures what
//! `predictMany` does with many texts: 3,000 real queries (the Home
//! Assistant set, shuffled with a fixed seed) through `Encoder::embed`
//! (runs of 32 grouped by length) against, in the same process, runs of 32
//! in arrival order and one run of all 3,000 (what the library did before:
//! on wasm32 that run trapped), and against `Encoder::embed_on_threads` on
//! every core (what the native bundle tool does); prints texts per second
//! and the ratios.

use std::time::Instant;

use localtune::{Encoder, EncoderConfig, TokenBatch};

#[allow(dead_code)]
#[path = "common/dataset.rs"]
mod dataset;

fn main() {
    if std::env::args().any(|a| a == "--batch") {
        batch_throughput();
        return;
    }
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

/// The `--batch` figures (see the module comment).
fn batch_throughput() {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    const TEXTS: usize = 3_000;
    const RUN: usize = 32;
    let (model, tokenizer) = dataset::model_files();
    let encoder =
        Encoder::from_bytes(&model, &tokenizer, EncoderConfig::default()).expect("encoder");
    let mut texts = dataset::read_dataset().texts;
    texts.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(19));
    texts.truncate(TEXTS);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();

    let grouped = || encoder.embed(&texts).expect("embed").into_vec();
    let arrival = || -> Vec<f32> {
        texts
            .chunks(RUN)
            .flat_map(|run| {
                let batch = encoder.tokenize(run).expect("tokenize");
                encoder.embed_tokens(&batch).expect("embed").into_vec()
            })
            .collect()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let on_every_core = || {
        encoder
            .embed_on_threads(&texts, cores, &mut |_| std::ops::ControlFlow::Continue(()))
            .expect("embed")
            .into_vec()
    };
    let one_run = || {
        let batch = encoder.tokenize(&texts).expect("tokenize");
        encoder.embed_tokens(&batch).expect("embed").into_vec()
    };
    // Same vectors every way (padding is masked), so only time differs.
    let (a, b) = (grouped(), arrival());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-4,
        "grouped and arrival-order vectors differ by {worst}"
    );
    assert!(on_every_core() == a, "threads changed the vectors");

    // Interleaved rounds, best of each, so drift hits all four alike.
    let mut best = [f64::INFINITY; 4];
    for _ in 0..3 {
        for (slot, run) in [
            &grouped as &dyn Fn() -> Vec<f32>,
            &arrival,
            &one_run,
            &on_every_core,
        ]
        .iter()
        .enumerate()
        {
            let t = Instant::now();
            std::hint::black_box(run());
            best[slot] = best[slot].min(t.elapsed().as_secs_f64());
        }
    }
    let per_second = |seconds: f64| TEXTS as f64 / seconds;
    println!(
        "{}",
        serde_json::json!({
            "texts": TEXTS,
            "groupedPerSecond": per_second(best[0]),
            "arrivalOrderPerSecond": per_second(best[1]),
            "oneRunPerSecond": per_second(best[2]),
            "groupedVsArrivalOrder": best[1] / best[0],
            "groupedVsOneRun": best[2] / best[0],
            "cores": cores,
            "everyCorePerSecond": per_second(best[3]),
            "everyCoreVsOne": best[0] / best[3],
        })
    );
}
