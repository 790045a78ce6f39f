//! Quality of the default update on real encoder features: Home Assistant
//! intents (bench/data/, template-disjoint train/test), k = 5, 10, 20
//! examples per intent and "50 corrections over 10 intents", 5 seeds each.
//! Writes every run (training rows, test rows, our accuracy) next to the
//! cached features for tools/head_quality_reference.py, which fits
//! scikit-learn's LogisticRegression on the very same rows and prints the
//! table.
//!
//! Run through `bash bench/head-quality.sh`. Alone:
//! `cargo bench --bench head_quality [-- --sweep FILE.json]`; `--sweep` also
//! trains every configuration in the file and prints their mean accuracy per
//! setting — the measurement the defaults were chosen from
//! (bench/head-quality-sweep.json). `--word-embeddings-4bit` measures a
//! smaller encoder file instead (issue 17): the encoder compiled with 4-bit
//! word embeddings (`--word-embeddings 4bit`), what it does to the vectors
//! (cosine to the int8 model's) and to every run's accuracy.
//! `--encoder-variant NAME FILE.onnx` measures the same for any other ONNX
//! file with the encoder's interface: issue 19's int8 activations, as
//! `tools/int8_activations_model.py` writes them.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use localtune::head::network::{argmax, Scratch};
use localtune::{run_update, Head, HeadArchitecture, TrainingSet, UpdateConfig};
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[path = "common/dataset.rs"]
mod dataset;
use dataset::{embed_all, features, model_files, read_dataset, Dataset, ROOT};

const SEEDS: u64 = 5;

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
    let data = read_dataset();
    let (features, dim, sha256) = features(&data);
    let runs = plan_runs(&data);
    if args.iter().any(|a| a == "--word-embeddings-4bit") {
        for group in [32, 64] {
            word_embeddings_4bit(&data, &features, dim, &runs, group);
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--encoder-variant") {
        let (Some(name), Some(file)) = (args.get(i + 1), args.get(i + 2)) else {
            panic!("--encoder-variant takes a name and an ONNX file");
        };
        let model = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (_, tokenizer) = model_files();
        let encoder =
            localtune::Encoder::from_bytes(&model, &tokenizer, localtune::EncoderConfig::default())
                .expect("the variant loads as an encoder");
        let variant = embed_all(&encoder, &data);
        println!("{name} ({file}):");
        compare_features(&data, &features, &variant, dim, &runs, name);
        return;
    }

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

fn plan_runs(data: &Dataset) -> Vec<Run> {
    let dataset::Splits {
        train: train_by_intent,
        test: test_by_intent,
    } = data.rows_by_intent();
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

/// The encoder compiled with 4-bit word embeddings in groups of `group`
/// values (`Encoder::compile_with`, the bundle tool's `--word-embeddings
/// 4bit:G`) against the int8 one: the files' sizes, the vectors' cosine to
/// the int8 model's over every sentence, and each setting's mean accuracy
/// with both.
fn word_embeddings_4bit(data: &Dataset, features: &[f32], dim: usize, runs: &[Run], group: usize) {
    let (model, tokenizer) = model_files();
    let compiled = localtune::Encoder::compile(&model).expect("compile");
    let compiled4 = localtune::Encoder::compile_with(
        &model,
        &localtune::CompileOptions {
            word_embeddings_4bit: Some(group),
        },
    )
    .expect("compile with 4-bit word embeddings");
    let encoder4 = localtune::Encoder::from_compiled(
        &compiled4,
        &tokenizer,
        localtune::EncoderConfig::default(),
    )
    .expect("the 4-bit encoder loads");
    let features4 = embed_all(&encoder4, data);
    println!(
        "4-bit word embeddings, groups of {group}: file {:.1} MB (int8 {:.1} MB)",
        compiled4.len() as f64 / 1e6,
        compiled.len() as f64 / 1e6,
    );
    compare_features(data, features, &features4, dim, runs, "4-bit");
}

/// What another encoder's vectors (`variant`, one row per dataset row) are
/// to the shipped encoder's: their cosines, and every run's accuracy with
/// each (the same rows, the default update).
fn compare_features(
    data: &Dataset,
    features: &[f32],
    variant: &[f32],
    dim: usize,
    runs: &[Run],
    name: &str,
) {
    let mut cosines: Vec<f32> = features
        .chunks_exact(dim)
        .zip(variant.chunks_exact(dim))
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum())
        .collect();
    cosines.sort_by(f32::total_cmp);
    println!(
        "  cosine to the shipped encoder's vectors over {} sentences: min {:.5}, 1st percentile \
         {:.5}, median {:.5}",
        cosines.len(),
        cosines[0],
        cosines[cosines.len() / 100],
        cosines[cosines.len() / 2]
    );
    let mut settings: Vec<&str> = runs.iter().map(|r| r.setting.as_str()).collect();
    settings.dedup();
    let defaults = UpdateConfig::default();
    for setting in settings {
        let (mut shipped, mut other, mut n) = (0.0, 0.0, 0.0);
        for run in runs.iter().filter(|r| r.setting == setting) {
            shipped += train_and_test(data, features, dim, run, &defaults).0;
            other += train_and_test(data, variant, dim, run, &defaults).0;
            n += 1.0;
        }
        println!(
            "  {setting:>16}: shipped {:.2}%, {name} {:.2}% ({:+.2} points)",
            100.0 * shipped / n,
            100.0 * other / n,
            100.0 * (other - shipped) / n
        );
    }
}
