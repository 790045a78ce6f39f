//! What a person feels: how many corrections the classifier needs on a
//! stream of real queries, and what its updates do to the intents the
//! person never touched. Runs the real `Classifier` (in-memory store, the
//! bundle's automatic-update policy) on the repository's Home Assistant
//! intents, with bundles built by the bundle tool's own code.
//!
//! Three kinds of stream, several seeds each. In each, a user asks 300
//! queries (test-split sentences, template-disjoint from the bundle's
//! training split) and corrects every wrong prediction with `addFeedback`:
//! - *new intents*: the bundle is built without 6 of the intents; the user
//!   asks about those 6 and 6 shipped intents;
//! - *renamed intents*: the full bundle; the user calls 2 shipped intents by
//!   names of their own and asks about them and 6 other shipped intents;
//! - *split intent*: a bundle that ships two related intents as one label
//!   (one of [`SPLIT_PAIRS`]: HassLightSet's sentences labelled HassTurnOn,
//!   say); the user gives one half its own name and asks about it and 6
//!   other shipped intents, never about the other half. That half keeps the
//!   shipped label only if updates learn the user's label *beside* it, not
//!   in its place: a rule that treats a contradicted label as renamed
//!   wholesale shows here (its accuracy is reported on its own, the
//!   "kept half", and counts among the untouched intents).
//!
//! The intents of neither group are the *untouched* ones: their test
//! accuracy is measured when the stream starts and before and after every
//! update. Each stream runs once per variant of the classifier (see
//! `variants()`). Writes bench/results/personalization/streams.json and the
//! bundles' rehearsal vectors for tools/personalization_reference.py, which
//! replays every stream with the reference learner (logistic regression
//! retrained after each correction) and prints the table.
//!
//! Run through `bash bench/personalization.sh`; alone:
//! `cargo bench --bench personalization -- [--variants a,b] [--seeds A..B]
//! [--scenarios new,renamed,split]`
//! (a setting is chosen on seeds the report does not use, see [`SEEDS`]).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use localtune::bundle::build::{build_from_vectors, BuildOptions, LabelledText};
use localtune::bundle::{Bundle, MANIFEST_FILE};
use localtune::classifier::at_once::AtOnceSettings;
use localtune::classifier::memory::MemorySettings;
use localtune::classifier::Classifier;
use localtune::head::personal::{Distillation, PersonalRules, RELABELLED_SHARE};
use localtune::store::memory::MemoryBackend;
use localtune::store::StorePolicy;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

#[path = "common/dataset.rs"]
mod dataset;
use dataset::{features, model_files, read_dataset, Dataset, ROOT};

/// The seeds the report replays. Six: on three, two settings of the
/// classifier that differ by less than the seeds' spread were ranked by one
/// or two streams (2026-12-05). A setting is chosen on other seeds
/// (`--seeds 6..18`) so that the report does not measure what it was tuned
/// on.
const SEEDS: std::ops::Range<u64> = 0..6;
const QUERIES: usize = 300;
const NEW_INTENTS: usize = 6;
const RENAMED_INTENTS: usize = 2;
const OTHER_ASKED_INTENTS: usize = 6;
/// (the half the user splits off, the label the bundle ships both under):
/// pairs a coarser intent set could plausibly have merged. Seed `k` splits
/// pair `k % 6`.
const SPLIT_PAIRS: [(&str, &str); 6] = [
    ("HassLightSet", "HassTurnOn"),
    ("HassSetVolumeRelative", "HassSetVolume"),
    ("HassDecreaseTimer", "HassIncreaseTimer"),
    ("HassMediaPrevious", "HassMediaNext"),
    ("HassClimateSetFanMode", "HassFanSetSpeed"),
    ("HassShoppingListCompleteItem", "HassShoppingListAddItem"),
];

/// One classifier setting to replay the streams with.
#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    memory: MemorySettings,
    at_once: AtOnceSettings,
    /// The automatic update's L2-SP strength (`None`: the bundle's).
    l2_sp: Option<f32>,
    /// The learning rate of the update and the working head (`None`: the
    /// bundle's).
    learning_rate: Option<f32>,
    /// The bundle's rehearsal vectors per label.
    rehearsal_per_label: usize,
    /// How an update starts and which rehearsal rows it keeps.
    rules: PersonalRules,
    /// Whether the update and the working head draw every label equally
    /// often (`None`: the bundle's).
    class_balanced: Option<bool>,
}

const NO_MEMORY: MemorySettings = MemorySettings {
    lower: 2.0,
    upper: 2.0,
    max_weight: 0.0,
};
const NOT_AT_ONCE: AtOnceSettings = AtOnceSettings {
    enabled: false,
    steps: 0,
    recent: 0,
    slice_steps: 1,
};

/// The classifiers compared. The report needs the first two: the one the
/// library ships, and the one it replaced (a correction counted only from
/// the next update, 50 corrections away). The others are the measurements
/// the defaults were chosen from: `--variants a,b,…` picks by name.
fn variants() -> Vec<Variant> {
    let shipped = Variant {
        name: "classifier",
        memory: MemorySettings::default(),
        at_once: AtOnceSettings::default(),
        l2_sp: None,
        learning_rate: None,
        rehearsal_per_label: BuildOptions::default().rehearsal_per_label,
        rules: PersonalRules::default(),
        class_balanced: None,
    };
    let coverage_share = |name, relabelled_coverage, relabelled_share| Variant {
        name,
        rules: PersonalRules {
            relabelled_coverage,
            relabelled_share,
            ..PersonalRules::default()
        },
        ..shipped
    };
    // Distillation toward the starting head on the untouched labels' rows,
    // alone or with a relabelled label's covered rows going (share 0.15,
    // coverage 1) (docs/benchmarks.md, 2026-12-07 evening: measured, not
    // the default).
    let distilled = |name, temperature, coverage: Option<f32>| Variant {
        name,
        rules: PersonalRules {
            distillation: Some(Distillation {
                temperature,
                weight: 0.5,
            }),
            relabelled_coverage: coverage,
            relabelled_share: if coverage.is_some() {
                0.15
            } else {
                RELABELLED_SHARE
            },
            ..PersonalRules::default()
        },
        ..shipped
    };
    let relabelled_share = |name, share| coverage_share(name, None, share);
    let at_once = |name, steps, recent| Variant {
        name,
        at_once: AtOnceSettings {
            enabled: true,
            steps,
            recent,
            ..AtOnceSettings::default()
        },
        ..shipped
    };
    vec![
        shipped,
        Variant {
            name: "batch of 50",
            memory: NO_MEMORY,
            at_once: NOT_AT_ONCE,
            // The rules before at-once learning: every overridden row
            // dropped, new labels from zero rows.
            rules: PersonalRules {
                imprint_new_labels: false,
                relabelled_share: 0.0,
                keep_displaced_labels: false,
                relabelled_coverage: None,
                distillation: None,
            },
            ..shipped
        },
        Variant {
            name: "no imprint",
            rules: PersonalRules {
                imprint_new_labels: false,
                ..PersonalRules::default()
            },
            ..shipped
        },
        // 0: every overridden rehearsal row is dropped (the rule until
        // late 2026-12-05); above 1: none is. The shipped 0.25 is "classifier".
        relabelled_share("relabelled share 0", 0.0),
        relabelled_share("relabelled share 0.1", 0.1),
        relabelled_share("relabelled share 0.5", 0.5),
        relabelled_share("relabelled share 0.75", 0.75),
        relabelled_share("keep every row", 2.0),
        // A relabelled label's covered rows go too, with this factor and
        // share (docs/benchmarks.md, 2026-12-07: measured, not the default).
        coverage_share("coverage 1 share 0.25", Some(1.0), 0.25),
        coverage_share("coverage 1.5 share 0.25", Some(1.5), 0.25),
        coverage_share("coverage 2 share 0.25", Some(2.0), 0.25),
        coverage_share("coverage 4 share 0.25", Some(4.0), 0.25),
        coverage_share("coverage 1 share 0.15", Some(1.0), 0.15),
        coverage_share("coverage 1 share 0.1", Some(1.0), 0.1),
        coverage_share("coverage 1.5 share 0.1", Some(1.5), 0.1),
        distilled("distill T2 w0.5 untouched", 2.0, None),
        distilled("distill T3 w0.5 untouched", 3.0, None),
        distilled("distill T4 w0.5 untouched", 4.0, None),
        distilled(
            "distill T3 w0.5 untouched coverage 1 share 0.15",
            3.0,
            Some(1.0),
        ),
        distilled(
            "distill T4 w0.5 untouched coverage 1 share 0.15",
            4.0,
            Some(1.0),
        ),
        Variant {
            name: "displaced labels kept",
            rules: PersonalRules {
                keep_displaced_labels: true,
                ..PersonalRules::default()
            },
            ..shipped
        },
        Variant {
            name: "not class-balanced",
            class_balanced: Some(false),
            ..shipped
        },
        Variant {
            name: "memory only",
            at_once: NOT_AT_ONCE,
            ..shipped
        },
        Variant {
            name: "at once only",
            memory: NO_MEMORY,
            ..shipped
        },
        at_once("at once 20 steps", 20, 256),
        at_once("at once 60 steps", 60, 256),
        at_once("at once 240 steps", 240, 256),
        at_once("at once 1000 steps", 1000, 256),
        at_once("at once 32 recent", 120, 32),
        Variant {
            name: "l2-sp 1",
            l2_sp: Some(1.0),
            ..shipped
        },
        Variant {
            name: "l2-sp 10",
            l2_sp: Some(10.0),
            ..shipped
        },
        Variant {
            name: "rehearsal 8",
            rehearsal_per_label: 8,
            ..shipped
        },
        Variant {
            name: "memory 0.80",
            memory: MemorySettings {
                lower: 0.80,
                upper: 0.92,
                ..MemorySettings::default()
            },
            ..shipped
        },
        Variant {
            name: "memory 0.90",
            memory: MemorySettings {
                lower: 0.90,
                upper: 0.97,
                ..MemorySettings::default()
            },
            ..shipped
        },
        Variant {
            name: "rehearsal 32",
            rehearsal_per_label: 32,
            ..shipped
        },
        Variant {
            name: "rehearsal 16",
            rehearsal_per_label: 16,
            ..shipped
        },
        // The defaults until 2026-12-06: 16 rehearsal vectors a label, the
        // rows of labels only the user's own labels displace kept.
        Variant {
            name: "rehearsal 16 displaced kept",
            rehearsal_per_label: 16,
            rules: PersonalRules {
                keep_displaced_labels: true,
                ..PersonalRules::default()
            },
            ..shipped
        },
        Variant {
            name: "learning rate 0.03",
            learning_rate: Some(0.03),
            ..shipped
        },
        Variant {
            name: "learning rate 0.01",
            learning_rate: Some(0.01),
            ..shipped
        },
    ]
}

/// `--seeds A..B`, or [`SEEDS`].
fn chosen_seeds() -> std::ops::Range<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--seeds") {
        None => SEEDS,
        Some(i) => {
            let range = args.get(i + 1).expect("--seeds takes a range A..B");
            let (from, to) = range
                .split_once("..")
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .unwrap_or_else(|| panic!("--seeds {range:?}: expected A..B"));
            from..to
        }
    }
}

/// `--scenarios a,b`, or every kind of stream.
fn chosen_scenarios() -> Vec<&'static str> {
    const ALL: [&str; 3] = ["new", "renamed", "split"];
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--scenarios") {
        None => ALL.to_vec(),
        Some(i) => {
            let names = args.get(i + 1).expect("--scenarios takes a list of names");
            names
                .split(',')
                .map(|n| {
                    *ALL.iter()
                        .find(|a| **a == n)
                        .unwrap_or_else(|| panic!("no scenario {n:?}: {ALL:?}"))
                })
                .collect()
        }
    }
}

fn chosen_variants() -> Vec<Variant> {
    let args: Vec<String> = std::env::args().collect();
    let all = variants();
    match args.iter().position(|a| a == "--variants") {
        None => all[..2].to_vec(),
        Some(i) => {
            let names = args.get(i + 1).expect("--variants takes a list of names");
            let mut chosen: Vec<Variant> = all[..2].to_vec();
            for name in names.split(',').filter(|n| !n.is_empty()) {
                let v = all
                    .iter()
                    .find(|v| v.name == name)
                    .unwrap_or_else(|| panic!("no variant {name:?}"));
                if !chosen.iter().any(|c| c.name == v.name) {
                    chosen.push(*v);
                }
            }
            chosen
        }
    }
}

/// One user: which bundle, which queries with the labels they mean, and
/// which intents they never touch.
struct Stream {
    scenario: &'static str,
    seed: u64,
    /// The intents the bundle is built from.
    shipped: Vec<String>,
    /// (intent, the label the bundle ships its sentences under) where that
    /// is another intent's label: the split stream's merged pair.
    merged: Vec<(String, String)>,
    /// Test rows of the merged label's half the user never asks about.
    kept_half_rows: Vec<usize>,
    /// (row, the label the user means).
    queries: Vec<(usize, String)>,
    /// Test rows of the intents the user never asks about.
    untouched_rows: Vec<usize>,
    /// Rows of the user's own labels that the stream does not ask (for the
    /// accuracy on them after 50 corrections), with the label meant.
    taught_eval: Vec<(usize, String)>,
}

fn main() {
    let data = read_dataset();
    let (features, dim, encoder_sha256) = features(&data);
    let (model, tokenizer) = model_files();
    let out_dir = PathBuf::from(ROOT).join("bench/results/personalization");
    std::fs::create_dir_all(&out_dir).expect("results folder");

    let chosen = chosen_variants();
    let mut bundles: BTreeMap<BundleKey, BundleFiles> = BTreeMap::new();
    let mut records = Vec::new();
    let scenarios = chosen_scenarios();
    let streams = plan_streams(&data, chosen_seeds())
        .into_iter()
        .filter(|s| scenarios.contains(&s.scenario));
    for stream in streams {
        let mut bundle_of = |rehearsal_per_label| {
            bundles
                .entry((
                    stream.shipped.clone(),
                    stream.merged.clone(),
                    rehearsal_per_label,
                ))
                .or_insert_with(|| {
                    build_bundle(
                        &model,
                        &tokenizer,
                        &data,
                        &features,
                        &stream.shipped,
                        &stream.merged,
                        rehearsal_per_label,
                    )
                })
                .clone()
        };
        // The reference rehearses what the shipped classifier's bundle has.
        let bundle = &load(&bundle_of(chosen[0].rehearsal_per_label));
        let rehearsal_file = format!("rehearsal-{}-{}.f32", stream.scenario, stream.seed);
        let rehearsal_bytes: Vec<u8> = bundle
            .rehearsal
            .features
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(out_dir.join(&rehearsal_file), rehearsal_bytes).expect("rehearsal");
        let rehearsal_labels: Vec<&str> = bundle
            .rehearsal
            .labels
            .iter()
            .map(|&l| bundle.manifest.labels[l as usize].as_str())
            .collect();

        let mut variants = serde_json::Map::new();
        for variant in &chosen {
            let name = variant.name;
            let files = bundle_of(variant.rehearsal_per_label);
            let replay = replay(load(&files), &data, &features, dim, &stream, variant);
            eprintln!(
                "{:>8} seed {} {:>18}: {:>3} corrections, untouched {:.1}% → {:.1}% (updates: {}), taught {:.1}%",
                stream.scenario,
                stream.seed,
                name,
                replay.mistakes.iter().filter(|&&m| m).count(),
                replay.untouched_at_start * 100.0,
                replay.untouched_at_end * 100.0,
                replay
                    .updates
                    .iter()
                    .map(|u| format!(
                        "{:.1}→{:.1}{}",
                        u.untouched_before * 100.0,
                        u.untouched_after * 100.0,
                        if u.accepted { "" } else { " rejected" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                replay.taught_after_50 * 100.0,
            );
            let most_lost: Vec<String> = replay
                .untouched_lost_to
                .iter()
                .take(3)
                .filter(|(_, change)| *change > 0)
                .map(|((intent, label), change)| format!("{intent} → {label} {change:+}"))
                .collect();
            eprintln!(
                "{:>30} untouched sentences lost most: {}",
                "",
                most_lost.join(", ")
            );
            if let Some(kept) = &replay.kept_half {
                eprintln!(
                    "{:>30} the kept half: {:.1}% → {:.1}% (lowest {:.1}%)",
                    "",
                    kept.start * 100.0,
                    kept.end * 100.0,
                    kept.lowest * 100.0
                );
            }
            variants.insert(name.into(), replay.to_json());
        }
        records.push(json!({
            "scenario": stream.scenario,
            "seed": stream.seed,
            "shipped": stream.shipped,
            "merged": stream.merged,
            "queries": stream.queries.iter().map(|(r, l)| json!({ "row": r, "label": l })).collect::<Vec<_>>(),
            "untouched": stream.untouched_rows.iter().map(|&r| json!({ "row": r, "label": data.intents[r] })).collect::<Vec<_>>(),
            "taught_eval": stream.taught_eval.iter().map(|(r, l)| json!({ "row": r, "label": l })).collect::<Vec<_>>(),
            "rehearsal": { "file": rehearsal_file, "labels": rehearsal_labels },
            "variants": variants,
        }));
    }
    let out = json!({
        "dim": dim,
        "encoder_sha256": encoder_sha256,
        "queries": QUERIES,
        "streams": records,
    });
    let path = out_dir.join("streams.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&out).unwrap()).expect("streams.json");
    eprintln!("wrote {}", path.display());
}

/// The streams of both scenarios for every seed of `seeds`.
fn plan_streams(data: &Dataset, seeds: std::ops::Range<u64>) -> Vec<Stream> {
    let dataset::Splits {
        train: train_by_intent,
        test: test_by_intent,
    } = data.rows_by_intent();
    let all: Vec<&str> = test_by_intent.keys().copied().collect();
    let mut streams = Vec::new();
    for seed in seeds {
        // New intents: the bundle lacks NEW_INTENTS of them.
        let mut rng = ChaCha8Rng::seed_from_u64(7_000 + seed);
        let mut order = all.clone();
        order.shuffle(&mut rng);
        let (new, rest) = order.split_at(NEW_INTENTS);
        let (asked, _) = rest.split_at(OTHER_ASKED_INTENTS);
        let mut shipped: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
        shipped.sort();
        let meaning: Vec<(&str, String)> = new
            .iter()
            .chain(asked)
            .map(|&i| (i, i.to_string()))
            .collect();
        streams.push(stream(
            "new",
            seed,
            shipped,
            &meaning,
            new,
            &test_by_intent,
            &train_by_intent,
            &mut rng,
        ));

        // Renamed intents: the full bundle; the user's own names.
        let mut rng = ChaCha8Rng::seed_from_u64(9_000 + seed);
        let mut order = all.clone();
        order.shuffle(&mut rng);
        let (renamed, rest) = order.split_at(RENAMED_INTENTS);
        let (asked, _) = rest.split_at(OTHER_ASKED_INTENTS);
        let meaning: Vec<(&str, String)> = renamed
            .iter()
            .enumerate()
            .map(|(k, &i)| (i, format!("My{}", ["Alpha", "Beta", "Gamma"][k])))
            .chain(asked.iter().map(|&i| (i, i.to_string())))
            .collect();
        streams.push(stream(
            "renamed",
            seed,
            all.iter().map(|s| s.to_string()).collect(),
            &meaning,
            renamed,
            &test_by_intent,
            &train_by_intent,
            &mut rng,
        ));

        // Split intent: the bundle ships a pair as one label; the user
        // names one half and never asks about the other.
        let mut rng = ChaCha8Rng::seed_from_u64(11_000 + seed);
        let (split, kept) = SPLIT_PAIRS[seed as usize % SPLIT_PAIRS.len()];
        let mut others: Vec<&str> = all
            .iter()
            .copied()
            .filter(|&i| i != split && i != kept)
            .collect();
        others.shuffle(&mut rng);
        let meaning: Vec<(&str, String)> = std::iter::once(split)
            .chain(others[..OTHER_ASKED_INTENTS].iter().copied())
            .map(|i| (i, i.to_string()))
            .collect();
        let mut split_stream = stream(
            "split",
            seed,
            all.iter().map(|s| s.to_string()).collect(),
            &meaning,
            &[split],
            &test_by_intent,
            &train_by_intent,
            &mut rng,
        );
        split_stream.merged = vec![(split.to_string(), kept.to_string())];
        split_stream.kept_half_rows = test_by_intent[kept].clone();
        streams.push(split_stream);
    }
    streams
}

/// QUERIES queries over the intents of `meaning` (intent, the user's label):
/// an intent at random, then one of its test sentences not asked before.
#[allow(clippy::too_many_arguments)]
fn stream(
    scenario: &'static str,
    seed: u64,
    shipped: Vec<String>,
    meaning: &[(&str, String)],
    taught: &[&str],
    test_by_intent: &BTreeMap<&str, Vec<usize>>,
    train_by_intent: &BTreeMap<&str, Vec<usize>>,
    rng: &mut ChaCha8Rng,
) -> Stream {
    let mut pools: Vec<Vec<usize>> = meaning
        .iter()
        .map(|(intent, _)| {
            let mut rows = test_by_intent[intent].clone();
            rows.shuffle(rng);
            rows
        })
        .collect();
    let mut queries = Vec::with_capacity(QUERIES);
    while queries.len() < QUERIES {
        let open: Vec<usize> = (0..pools.len()).filter(|&k| !pools[k].is_empty()).collect();
        let &k = open.choose(rng).expect("enough test sentences");
        queries.push((pools[k].pop().unwrap(), meaning[k].1.clone()));
    }
    let asked: BTreeSet<&str> = meaning.iter().map(|(i, _)| *i).collect();
    let untouched_rows = test_by_intent
        .iter()
        .filter(|(intent, _)| !asked.contains(*intent) && shipped.iter().any(|s| s == *intent))
        .flat_map(|(_, rows)| rows.iter().copied())
        .collect();
    // The taught intents' training-split sentences: never asked (the
    // stream asks test sentences) and template-disjoint from them.
    let taught_eval = meaning
        .iter()
        .filter(|(intent, _)| taught.contains(intent))
        .flat_map(|(intent, label)| train_by_intent[intent].iter().map(|&r| (r, label.clone())))
        .collect();
    Stream {
        scenario,
        seed,
        shipped,
        merged: Vec::new(),
        kept_half_rows: Vec::new(),
        queries,
        untouched_rows,
        taught_eval,
    }
}

/// A bundle's files by name.
type BundleFiles = BTreeMap<String, Vec<u8>>;

/// What a stream's bundle is built from: its intents, the merged ones, the
/// rehearsal vectors a label.
type BundleKey = (Vec<String>, Vec<(String, String)>, usize);

/// Each replay opens the bundle afresh, as a page load does.
fn load(files: &BundleFiles) -> Bundle {
    Bundle::load(&files[MANIFEST_FILE], &mut |name| files.get(name).cloned()).expect("load bundle")
}

/// A bundle of the `intents`, as `localtune-bundle` builds it (the same
/// defaults), from the cached vectors; the intents of `merged` under the
/// label given there.
fn build_bundle(
    model: &[u8],
    tokenizer: &[u8],
    data: &Dataset,
    features: &[f32],
    intents: &[String],
    merged: &[(String, String)],
    rehearsal_per_label: usize,
) -> BundleFiles {
    let dim = features.len() / data.texts.len();
    let mut rows = Vec::new();
    let mut vectors = Vec::new();
    for row in 0..data.texts.len() {
        if intents.contains(&data.intents[row]) {
            let intent = &data.intents[row];
            let label = merged
                .iter()
                .find(|(from, _)| from == intent)
                .map_or(intent, |(_, to)| to);
            rows.push(LabelledText {
                text: data.texts[row].clone(),
                label: label.clone(),
                held_out: !data.train[row],
            });
            vectors.extend_from_slice(&features[row * dim..(row + 1) * dim]);
        }
    }
    let clock = Instant::now();
    let built = build_from_vectors(
        model,
        tokenizer,
        rows,
        &vectors,
        &BuildOptions {
            rehearsal_per_label,
            ..BuildOptions::default()
        },
        &|| clock.elapsed().as_secs_f64() * 1e3,
        &mut |_| {},
    )
    .expect("bundle");
    eprintln!(
        "built a bundle of {} intents in {:.1} s",
        intents.len(),
        clock.elapsed().as_secs_f64()
    );
    built.files.into_iter().collect()
}

struct UpdateRecord {
    after_query: usize,
    accepted: bool,
    gate: String,
    untouched_before: f64,
    untouched_after: f64,
    millis: f64,
}

struct Replay {
    mistakes: Vec<bool>,
    untouched_at_start: f64,
    updates: Vec<UpdateRecord>,
    /// Accuracy on the taught labels' unasked sentences once the user had
    /// made 50 corrections (or at the end), and the corrections so far.
    taught_after_50: f64,
    first_50: Vec<(usize, String)>,
    untouched_at_end: f64,
    /// (untouched intent, the label predictions give its sentences instead),
    /// and how many more of its sentences get that label at the end than
    /// at the start (negative: fewer), most lost first.
    untouched_lost_to: Vec<((String, String), i64)>,
    /// The untouched intents' accuracy after each correction has taken
    /// effect (the working head relearned, a due update ran): every change
    /// a correction makes to them, not only the consolidating updates'.
    untouched_after_correction: Vec<f64>,
    feedback_millis: Vec<f64>,
    relearn_millis: Vec<f64>,
    /// The split stream's other half: its accuracy (under the shipped label).
    kept_half: Option<KeptHalf>,
}

struct KeptHalf {
    start: f64,
    end: f64,
    /// The lowest after any correction.
    lowest: f64,
}

impl Replay {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "mistakes": self.mistakes,
            "untouched_at_start": self.untouched_at_start,
            "untouched_at_end": self.untouched_at_end,
            "untouched_lost_to": self.untouched_lost_to.iter().map(|((intent, label), change)| json!({
                "intent": intent, "label": label, "change": change,
            })).collect::<Vec<_>>(),
            "updates": self.updates.iter().map(|u| json!({
                "after_query": u.after_query, "accepted": u.accepted, "gate": u.gate,
                "untouched_before": u.untouched_before, "untouched_after": u.untouched_after,
                "millis": u.millis,
            })).collect::<Vec<_>>(),
            "taught_after_50": self.taught_after_50,
            "first_50": self.first_50.iter().map(|(r, l)| json!({ "row": r, "label": l })).collect::<Vec<_>>(),
            "untouched_after_correction": self.untouched_after_correction,
            "feedback_millis": self.feedback_millis,
            "relearn_millis": self.relearn_millis,
            "kept_half": self.kept_half.as_ref().map(|k| json!({
                "start": k.start, "end": k.end, "lowest": k.lowest,
            })),
        })
    }
}

/// The user of `stream` with a fresh store: predict each query, correct it
/// when wrong, let the automatic update run when it is due.
fn replay(
    bundle: Bundle,
    data: &Dataset,
    features: &[f32],
    dim: usize,
    stream: &Stream,
    variant: &Variant,
) -> Replay {
    let classifier = block_on(Classifier::open(
        bundle,
        MemoryBackend::new(),
        StorePolicy::default(),
        0.0,
    ))
    .expect("open")
    .with_memory_settings(variant.memory)
    .with_at_once(variant.at_once)
    .expect("at-once settings");
    let mut policy = classifier.auto_update().policy().clone();
    if let Some(l2_sp) = variant.l2_sp {
        policy.config.l2_sp = l2_sp;
    }
    if let Some(learning_rate) = variant.learning_rate {
        policy.config.learning_rate = learning_rate;
    }
    policy.config.personal = variant.rules;
    if let Some(class_balanced) = variant.class_balanced {
        policy.config.class_balanced = class_balanced;
    }
    let classifier = classifier.with_auto_update(policy);
    let vector = |row: usize| &features[row * dim..(row + 1) * dim];
    let accuracy = |classifier: &Classifier<MemoryBackend>, rows: &[(usize, &str)]| -> f64 {
        let vectors: Vec<f32> = rows.iter().flat_map(|&(r, _)| vector(r).to_vec()).collect();
        let predictions = classifier.predict_vectors(&vectors).expect("predict");
        let correct = predictions
            .iter()
            .zip(rows)
            .filter(|(p, (_, label))| p.label == *label)
            .count();
        correct as f64 / rows.len().max(1) as f64
    };
    let untouched: Vec<(usize, &str)> = stream
        .untouched_rows
        .iter()
        .map(|&r| (r, data.intents[r].as_str()))
        .collect();
    let taught: Vec<(usize, &str)> = stream
        .taught_eval
        .iter()
        .map(|(r, l)| (*r, l.as_str()))
        .collect();
    let kept_half: Vec<(usize, &str)> = stream
        .kept_half_rows
        .iter()
        .map(|&r| (r, data.intents[r].as_str()))
        .collect();

    // Where the untouched intents' mistakes go, so a loss can be traced
    // to the pair of labels it sits between.
    let mistakes_by_pair = |classifier: &Classifier<MemoryBackend>| {
        let vectors: Vec<f32> = untouched
            .iter()
            .flat_map(|&(r, _)| vector(r).to_vec())
            .collect();
        let predictions = classifier.predict_vectors(&vectors).expect("predict");
        let mut pairs: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (p, (_, intent)) in predictions.iter().zip(&untouched) {
            if p.label != *intent {
                *pairs
                    .entry((intent.to_string(), p.label.clone()))
                    .or_default() += 1;
            }
        }
        pairs
    };
    let mistakes_at_start = mistakes_by_pair(&classifier);
    let clock = Instant::now();
    let now = || clock.elapsed().as_secs_f64() * 1e3;
    let mut replay = Replay {
        mistakes: Vec::with_capacity(stream.queries.len()),
        untouched_at_start: accuracy(&classifier, &untouched),
        updates: Vec::new(),
        taught_after_50: f64::NAN,
        first_50: Vec::new(),
        untouched_at_end: f64::NAN,
        untouched_lost_to: Vec::new(),
        untouched_after_correction: Vec::new(),
        feedback_millis: Vec::new(),
        relearn_millis: Vec::new(),
        kept_half: (!kept_half.is_empty()).then(|| {
            let start = accuracy(&classifier, &kept_half);
            KeptHalf {
                start,
                end: start,
                lowest: start,
            }
        }),
    };
    for (q, (row, label)) in stream.queries.iter().enumerate() {
        let predicted = classifier.predict_vectors(vector(*row)).expect("predict");
        let wrong = predicted[0].label != *label;
        replay.mistakes.push(wrong);
        if !wrong {
            continue;
        }
        let started = now();
        let feedback =
            block_on(classifier.add_feedback(&data.texts[*row], label, started)).expect("feedback");
        replay.feedback_millis.push(now() - started);
        // The person's next query comes after the working head has learned
        // the correction (it takes a fraction of a second; a person types
        // for longer). Timed apart: the browser runs it between messages.
        let started = now();
        classifier.finish_relearning().expect("relearn");
        replay.relearn_millis.push(now() - started);
        if replay.first_50.len() < 50 {
            replay.first_50.push((*row, label.clone()));
        }
        if classifier.auto_update_due(&feedback) && classifier.begin_auto_update_attempt(&feedback)
        {
            let before = accuracy(&classifier, &untouched);
            let config = classifier.auto_update().policy().config.clone();
            let started = now();
            let report =
                block_on(classifier.update(&config, &now, &mut |_| ControlFlow::Continue(())))
                    .expect("update");
            replay.updates.push(UpdateRecord {
                after_query: q,
                accepted: report.summary.accepted,
                gate: report.summary.gate.clone(),
                untouched_before: before,
                untouched_after: accuracy(&classifier, &untouched),
                millis: now() - started,
            });
        }
        replay
            .untouched_after_correction
            .push(accuracy(&classifier, &untouched));
        if let Some(kept) = &mut replay.kept_half {
            kept.end = accuracy(&classifier, &kept_half);
            kept.lowest = kept.lowest.min(kept.end);
        }
        if replay.first_50.len() == 50 && replay.taught_after_50.is_nan() {
            replay.taught_after_50 = accuracy(&classifier, &taught);
        }
    }
    if replay.taught_after_50.is_nan() {
        replay.taught_after_50 = accuracy(&classifier, &taught);
    }
    replay.untouched_at_end = accuracy(&classifier, &untouched);
    let mut change = mistakes_by_pair(&classifier);
    for (pair, count) in mistakes_at_start {
        *change.entry(pair).or_default() -= count;
    }
    replay.untouched_lost_to = change.into_iter().filter(|(_, c)| *c != 0).collect();
    replay
        .untouched_lost_to
        .sort_by_key(|(pair, count)| (-count, pair.clone()));
    replay
}

/// Runs a future whose every await is ready at once (the in-memory store).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}
