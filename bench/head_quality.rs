//! Quality of the default update on real encoder features: Home Assistant
//! intents (bench/data/, template-disjoint train/test), k = 5, 10, 20
//! examples per intent and "50 corrections over 10 intents", 5 seeds each.
//! Writes the features and every run (training rows, test rows, our
//! accuracy) for tools/head_quality_reference.py, which fits scikit-learn's
//! LogisticRegression on the very same rows and prints the table.
//!
//! Run through `bash bench/head-quality.sh`. Alone:
//! `cargo bench --bench head_quality [-- --sweep FILE.json]`; `--sweep` also
//! trains every configuration in the file and prints their mean accuracy per
//! setting — the measurement the defaults were chosen from
//! (bench/head-quality-sweep.json).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use localtune::head::network::{argmax, Scratch};
use localtune::{
    run_update, Encoder, EncoderConfig, Head, HeadArchitecture, TrainingSet, UpdateConfig,
};
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

const SEEDS: u64 = 5;
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Dataset {
    texts: Vec<String>,
    intents: Vec<String>,
    train: Vec<bool>,
}

/// One benchmark run: which rows train, which test, over which labels.
struct Run {
    setting: String,
    seed: u64,
    labels: Vec<String>,
    train: Vec<usize>,
    test: Vec<usize>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sweep = args
        .iter()
        .position(|a| a == "--sweep")
        .map(|i| PathBuf::from(args.get(i + 1).expect("--sweep takes a JSON file")));
    let out_dir = PathBuf::from(ROOT).join("bench/results/head-quality");
    std::fs::create_dir_all(&out_dir).expect("results folder");
    let data = read_dataset(&Path::new(ROOT).join("bench/data/home-assistant-intents-en.csv"));
    let (features, dim, sha256) = features(&data, &out_dir);
    let runs = plan_runs(&data);

    let defaults = UpdateConfig::default();
    let mut records = Vec::new();
    for run in &runs {
        let (accuracy, steps, millis) = train_and_test(&data, &features, dim, run, &defaults);
        eprintln!(
            "{:>16} seed {}: {:.1}% ({steps} steps, {millis:.1} ms)",
            run.setting,
            run.seed,
            accuracy * 100.0
        );
        records.push(serde_json::json!({
            "setting": run.setting, "seed": run.seed, "train": run.train, "test": run.test,
            "ours": { "accuracy": accuracy, "steps": steps, "millis": millis },
        }));
    }
    let runs_json = serde_json::json!({
        "dim": dim, "encoder_sha256": sha256, "default_config": defaults, "runs": records,
    });
    std::fs::write(
        out_dir.join("runs.json"),
        serde_json::to_vec_pretty(&runs_json).unwrap(),
    )
    .expect("runs.json");
    eprintln!("wrote {}", out_dir.join("runs.json").display());

    if let Some(path) = sweep {
        sweep_settings(&path, &data, &features, dim, &runs);
    }
}

fn read_dataset(path: &Path) -> Dataset {
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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

/// Embeds every text with the real encoder, or reads the cached vectors when
/// the encoder and the dataset are the same as last time.
fn features(data: &Dataset, out_dir: &Path) -> (Vec<f32>, usize, String) {
    let dir = Path::new(ROOT).join("models/all-minilm-l6-v2-int8");
    let model = std::fs::read(dir.join("model.onnx")).expect("run scripts/fetch-model.sh");
    let tokenizer = std::fs::read(dir.join("tokenizer.json")).expect("tokenizer.json");
    let encoder =
        Encoder::from_bytes(&model, &tokenizer, EncoderConfig::default()).expect("encoder");
    let key = format!(
        "{} {} {}",
        encoder.sha256(),
        data.texts.len(),
        fingerprint(&data.texts)
    );
    let (cache, key_file) = (out_dir.join("features.f32"), out_dir.join("features.key"));
    if std::fs::read_to_string(&key_file).ok().as_deref() == Some(key.as_str()) {
        let bytes = std::fs::read(&cache).expect("features cache");
        let values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        return (values, encoder.dim(), encoder.sha256().to_string());
    }
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

fn plan_runs(data: &Dataset) -> Vec<Run> {
    let mut train_by_intent: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut test_by_intent: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (row, intent) in data.intents.iter().enumerate() {
        let split = if data.train[row] {
            &mut train_by_intent
        } else {
            &mut test_by_intent
        };
        split.entry(intent).or_default().push(row);
    }
    let all_intents: Vec<&str> = train_by_intent.keys().copied().collect();
    let all_test: Vec<usize> = test_by_intent.values().flatten().copied().collect();
    let mut runs = Vec::new();
    for k in [5, 10, 20] {
        for seed in 0..SEEDS {
            let mut rng = ChaCha8Rng::seed_from_u64(1000 * k as u64 + seed);
            let mut train = Vec::new();
            for intent in &all_intents {
                train.extend(
                    train_by_intent[intent]
                        .choose_multiple(&mut rng, k)
                        .copied(),
                );
            }
            runs.push(Run {
                setting: format!("k={k}"),
                seed,
                labels: all_intents.iter().map(|s| s.to_string()).collect(),
                train,
                test: all_test.clone(),
            });
        }
    }
    // 50 corrections over 10 intents: ten intents at random, fifty training
    // sentences drawn from their pool (uneven, as real corrections are), at
    // least one per intent.
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(50_010 + seed);
        let mut intents: Vec<&str> = all_intents.choose_multiple(&mut rng, 10).copied().collect();
        intents.sort_unstable();
        let mut train: Vec<usize> = intents
            .iter()
            .map(|i| *train_by_intent[i].choose(&mut rng).unwrap())
            .collect();
        let mut pool: Vec<usize> = intents
            .iter()
            .flat_map(|i| train_by_intent[i].iter().copied())
            .filter(|r| !train.contains(r))
            .collect();
        pool.shuffle(&mut rng);
        train.extend(pool.into_iter().take(40));
        runs.push(Run {
            setting: "50 over 10".into(),
            seed,
            labels: intents.iter().map(|s| s.to_string()).collect(),
            train,
            test: intents
                .iter()
                .flat_map(|i| test_by_intent[i].iter().copied())
                .collect(),
        });
    }
    runs
}

/// Trains a fresh head with `config` on the run's rows; returns test
/// accuracy, optimizer steps and milliseconds.
fn train_and_test(
    data: &Dataset,
    features: &[f32],
    dim: usize,
    run: &Run,
    config: &UpdateConfig,
) -> (f64, usize, f64) {
    let head = Head::new_seeded(dim, HeadArchitecture::Linear, run.labels.clone(), run.seed)
        .expect("head");
    let gather = |rows: &[usize]| -> (Vec<f32>, Vec<usize>) {
        let x = rows
            .iter()
            .flat_map(|&r| features[r * dim..(r + 1) * dim].iter().copied())
            .collect();
        let y = rows
            .iter()
            .map(|&r| head.label_index(&data.intents[r]).expect("label"))
            .collect();
        (x, y)
    };
    let (x, y) = gather(&run.train);
    let clock = Instant::now();
    let now = || clock.elapsed().as_secs_f64() * 1e3;
    let config = UpdateConfig {
        seed: run.seed,
        ..config.clone()
    };
    let outcome = run_update(
        &head,
        None,
        TrainingSet {
            features: &x,
            labels: &y,
        },
        &config,
        &now,
        &mut |_| ControlFlow::Continue(()),
    )
    .expect("update");
    let (tx, ty) = gather(&run.test);
    let mut scratch = Scratch::default();
    let correct = (0..ty.len())
        .filter(|&i| {
            argmax(localtune::head::network::forward_one(
                outcome.head.layers(),
                &tx[i * dim..(i + 1) * dim],
                &mut scratch,
            )) == ty[i]
        })
        .count();
    (
        correct as f64 / ty.len() as f64,
        outcome.steps,
        outcome.millis,
    )
}

/// Mean test accuracy per setting for each configuration of the sweep file:
/// a JSON list of `{ "name": …, "config": { …UpdateOptions… } }`, every
/// field not given taking its default (bench/head-quality-sweep.json holds
/// the grid the defaults were chosen from).
fn sweep_settings(path: &Path, data: &Dataset, features: &[f32], dim: usize, runs: &[Run]) {
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        config: UpdateConfig,
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let grid: Vec<Entry> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut settings: Vec<&str> = runs.iter().map(|r| r.setting.as_str()).collect();
    settings.dedup();
    println!(
        "| config | {} | steps (50 over 10) | ms (50 over 10, native) |",
        settings.join(" | ")
    );
    println!("|---|{}---|---|", "---:|".repeat(settings.len()));
    for Entry { name, config } in grid {
        let mut cells = Vec::new();
        let (mut steps, mut millis, mut small) = (0usize, 0.0f64, 0usize);
        for setting in &settings {
            let accuracies: Vec<f64> = runs
                .iter()
                .filter(|r| r.setting == *setting)
                .map(|r| {
                    let (accuracy, s, m) = train_and_test(data, features, dim, r, &config);
                    if r.setting == "50 over 10" {
                        steps += s;
                        millis += m;
                        small += 1;
                    }
                    accuracy
                })
                .collect();
            cells.push(format!(
                "{:.1}",
                100.0 * accuracies.iter().sum::<f64>() / accuracies.len() as f64
            ));
        }
        let small = small.max(1);
        println!(
            "| {name} | {} | {} | {:.1} |",
            cells.join(" | "),
            steps / small,
            millis / small as f64
        );
    }
}
