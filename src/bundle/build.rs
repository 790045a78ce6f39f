//! Building a bundle: the seed's `export_coreml.py` with `is_updatable`.
//! Embeds labelled texts with the encoder, trains the generic head with the
//! same update code the device runs, scores it on held-out rows, picks the
//! rehearsal vectors and assembles the manifest. Pure Rust with no file
//! system or clock of its own, so the native CLI (`localtune-bundle`) and a
//! wasm build share it; the caller writes the files.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use rand::seq::SliceRandom;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{
    AllowedRanges, Bundle, EncoderSpec, FileRef, HeadSpec, Manifest, Pooling, Rehearsal,
    TrainingInputs, TrainingSpec, MANIFEST_FILE, SCHEMA_VERSION,
};
use crate::error::{Error, Result};
use crate::head::codec;
use crate::store::sha256_hex;
use crate::{
    run_update, CompileOptions, Encoder, EncoderConfig, Head, HeadArchitecture, TrainingSet,
    UpdateConfig,
};

/// One row of the labelled data.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledText {
    pub text: String,
    pub label: String,
    /// Kept out of training, for the accuracy report.
    pub held_out: bool,
}

/// What to build; [`BuildOptions::default`] is the CLI's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOptions {
    /// The bundle's name, also the user's store name.
    pub name: String,
    pub version: String,
    pub description: String,
    pub architecture: HeadArchitecture,
    /// An MLP head's hidden layer does not learn on the device.
    pub freeze_hidden: bool,
    pub max_seq_len: usize,
    /// Epochs of the generic head (default: the update default).
    pub epochs: Option<usize>,
    /// Seeds the hold-out, the head and the rehearsal pick.
    pub seed: u64,
    /// When no row is marked held out: hold out this share of each label's
    /// rows (seeded), for the accuracy report.
    pub hold_out_fraction: f32,
    /// Training vectors per label shipped for on-device updates.
    pub rehearsal_per_label: usize,
    /// Held-out vectors per label shipped for the validation gate's check
    /// of the labels a user never corrects (fewer if a label has fewer).
    pub shipped_check_per_label: usize,
    /// Feedback samples that trigger an automatic update.
    pub auto_update_threshold: usize,
    /// Word embeddings in 4 bits, in groups of this many values: a smaller
    /// compiled encoder (18 MB instead of 23 for MiniLM) whose vectors stay
    /// within cosine 0.99 of the int8 model's (docs/bundle.md).
    pub word_embeddings_4bit: Option<usize>,
    /// Threads that embed the texts (0: one per core). The vectors are the
    /// same bit for bit at any count ([`Encoder::embed_on_threads`]). In
    /// WebAssembly `build` runs one; the npm tool embeds on a pool of
    /// worker threads instead ([`PreparedRows`]).
    pub threads: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            name: "bundle".into(),
            version: "0.1.0".into(),
            description: String::new(),
            architecture: HeadArchitecture::Linear,
            freeze_hidden: false,
            max_seq_len: 128,
            epochs: None,
            seed: 0,
            hold_out_fraction: 0.1,
            rehearsal_per_label: 64,
            shipped_check_per_label: 16,
            auto_update_threshold: 50,
            word_embeddings_4bit: None,
            threads: 0,
        }
    }
}

/// Where a build is, for progress output.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildProgress {
    /// Rows read and the labels found in them.
    Read {
        rows: usize,
        labels: usize,
        held_out: usize,
    },
    /// Texts embedded so far.
    Embedded {
        done: usize,
        total: usize,
    },
    Trained(TrainingSummary),
    /// The generic head's accuracy on the held-out rows.
    HeldOutAccuracy {
        correct: usize,
        total: usize,
    },
}

/// How the generic head's training went.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSummary {
    pub samples: usize,
    pub parameters: usize,
    pub epochs: usize,
    pub steps: usize,
    pub millis: f64,
    pub train_accuracy: f32,
}

/// A built bundle: its files by name (the manifest last), checked by
/// loading them back the way an app will.
pub struct BuiltBundle {
    pub files: Vec<(String, Vec<u8>)>,
    pub manifest: Manifest,
    pub rehearsal_vectors: usize,
}

/// Builds a bundle from an ONNX encoder, its tokenizer and labelled rows.
/// `now_ms` is the clock for the training report; `progress` sees each
/// stage.
pub fn build(
    model: &[u8],
    tokenizer: &[u8],
    rows: Vec<LabelledText>,
    options: &BuildOptions,
    now_ms: &dyn Fn() -> f64,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<BuiltBundle> {
    let rows = prepare(rows, options, progress)?;
    build_prepared(model, tokenizer, rows, None, options, now_ms, progress)
}

/// [`build`] with every row's feature vector already computed by this
/// encoder (row-major, in the rows' order): a caller that builds many
/// bundles from one dataset (the personalization benchmark) embeds it once.
pub fn build_from_vectors(
    model: &[u8],
    tokenizer: &[u8],
    rows: Vec<LabelledText>,
    vectors: &[f32],
    options: &BuildOptions,
    now_ms: &dyn Fn() -> f64,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<BuiltBundle> {
    let rows = prepare(rows, options, progress)?;
    build_prepared(
        model,
        tokenizer,
        rows,
        Some(vectors),
        options,
        now_ms,
        progress,
    )
}

/// A build's rows, checked, with the held-out ones chosen: everything a
/// build decides before it embeds, so a caller can embed the texts
/// elsewhere (the npm tool's pool of worker threads) and then
/// [`build_prepared`] from the vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRows {
    rows: Vec<LabelledText>,
    labels: Vec<String>,
}

impl PreparedRows {
    /// Every row's text, in the rows' order (the order of the vectors
    /// [`build_prepared`] takes).
    pub fn texts(&self) -> Vec<&str> {
        self.rows.iter().map(|r| r.text.as_str()).collect()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Checks `rows` and `options` and holds out rows for the accuracy report
/// (unless some are marked already); reports [`BuildProgress::Read`].
pub fn prepare(
    mut rows: Vec<LabelledText>,
    options: &BuildOptions,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<PreparedRows> {
    check_options(options)?;
    let labels = labels_of(&rows)?;
    if !rows.iter().any(|r| r.held_out) {
        hold_out(&mut rows, options.hold_out_fraction, options.seed);
    }
    progress(BuildProgress::Read {
        rows: rows.len(),
        labels: labels.len(),
        held_out: rows.iter().filter(|r| r.held_out).count(),
    });
    Ok(PreparedRows { rows, labels })
}

/// How a build's encoder is made, from `model` and `tokenizer`, wherever
/// it runs: with 4-bit word embeddings, the vectors of the compiled file
/// the bundle ships, so the head trains on what the browser will compute.
pub fn encoder_config(options: &BuildOptions) -> EncoderConfig {
    EncoderConfig {
        max_seq_len: options.max_seq_len,
        word_embeddings_4bit: options.word_embeddings_4bit,
        ..EncoderConfig::default()
    }
}

/// The rest of a build after [`prepare`]: embeds the texts unless
/// `vectors` holds every row's vector (row-major, made by an encoder built
/// with [`encoder_config`]), trains, picks and assembles.
pub fn build_prepared(
    model: &[u8],
    tokenizer: &[u8],
    prepared: PreparedRows,
    vectors: Option<&[f32]>,
    options: &BuildOptions,
    now_ms: &dyn Fn() -> f64,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<BuiltBundle> {
    let PreparedRows { rows, labels } = prepared;
    let encoder = Encoder::from_bytes(model, tokenizer, encoder_config(options))?;
    let dim = encoder.dim();
    let features = match vectors {
        Some(vectors) if vectors.len() == rows.len() * dim => vectors.to_vec(),
        Some(vectors) => {
            return Err(Error::Config(format!(
                "{} values are not {} rows of {dim}-value vectors",
                vectors.len(),
                rows.len()
            )))
        }
        None => embed_rows(&encoder, &rows, options.threads, progress)?,
    };
    let train = split(&rows, &features, dim, &labels, false);
    let test = split(&rows, &features, dim, &labels, true);

    let (head, summary) = train_generic_head(&train, dim, &labels, options, now_ms)?;
    progress(BuildProgress::Trained(summary));
    if let Some((correct, total)) = held_out_accuracy(&head, &test, dim, &labels)? {
        progress(BuildProgress::HeldOutAccuracy { correct, total });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5245_4845);
    // With each row's nearest similarity: what a classifier would
    // otherwise compute as it opens.
    let rehearsal = pick_per_label(
        &train,
        dim,
        labels.len(),
        options.rehearsal_per_label,
        &mut rng,
    )
    .with_nearest()?;
    let shipped_check = pick_per_label(
        &test,
        dim,
        labels.len(),
        options.shipped_check_per_label,
        &mut rng,
    );
    let compiled = Encoder::compile_with(
        model,
        &CompileOptions {
            word_embeddings_4bit: options.word_embeddings_4bit,
        },
    )?;
    assemble(
        options,
        dim,
        labels,
        [
            ("encoder.onnx", model.to_vec()),
            ("encoder.compiled.tar", compiled),
            ("tokenizer.json", tokenizer.to_vec()),
            ("head.bin", codec::encode(&head)),
            ("rehearsal.bin", rehearsal.encode()),
            ("shipped-check.bin", shipped_check.encode()),
        ],
        rehearsal.labels.len(),
    )
}

fn check_options(options: &BuildOptions) -> Result<()> {
    if options.freeze_hidden && !matches!(options.architecture, HeadArchitecture::Mlp { .. }) {
        return Err(Error::Config(
            "freezing the hidden layer needs an MLP head (mlp:H)".into(),
        ));
    }
    if !(0.0..1.0).contains(&options.hold_out_fraction) {
        return Err(Error::Config(format!(
            "the hold-out fraction must be in [0, 1); found {}",
            options.hold_out_fraction
        )));
    }
    Ok(())
}

/// The sorted, distinct labels; at least two.
fn labels_of(rows: &[LabelledText]) -> Result<Vec<String>> {
    if rows.is_empty() {
        return Err(Error::Config("the labelled data has no rows".into()));
    }
    if let Some(i) = rows.iter().position(|r| r.label.trim().is_empty()) {
        return Err(Error::Config(format!("row {} has an empty label", i + 1)));
    }
    let mut labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    labels.sort();
    labels.dedup();
    if labels.len() < 2 {
        return Err(Error::Config(format!(
            "a classifier needs at least 2 labels; found {labels:?}"
        )));
    }
    Ok(labels)
}

/// Marks a seeded `fraction` of each label's rows as held out.
fn hold_out(rows: &mut [LabelledText], fraction: f32, seed: u64) {
    let mut by_label: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        by_label.entry(r.label.clone()).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for indices in by_label.values_mut() {
        indices.shuffle(&mut rng);
        let count = (indices.len() as f32 * fraction) as usize;
        for &i in indices.iter().take(count) {
            rows[i].held_out = true;
        }
    }
}

/// Every text's vector, on `threads` threads (0: one per core).
fn embed_rows(
    encoder: &Encoder,
    rows: &[LabelledText],
    threads: usize,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<Vec<f32>> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let embeddings = encoder.embed_on_threads(&texts, threads, &mut |done| {
        progress(BuildProgress::Embedded {
            done,
            total: rows.len(),
        });
        ControlFlow::Continue(())
    })?;
    Ok(embeddings.into_vec())
}

/// Labelled vectors: row-major features and label indices.
struct Labelled {
    features: Vec<f32>,
    labels: Vec<usize>,
}

fn split(
    rows: &[LabelledText],
    features: &[f32],
    dim: usize,
    labels: &[String],
    held_out: bool,
) -> Labelled {
    let mut out = Labelled {
        features: Vec::new(),
        labels: Vec::new(),
    };
    for (i, row) in rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.held_out == held_out)
    {
        out.features
            .extend_from_slice(&features[i * dim..(i + 1) * dim]);
        out.labels.push(
            labels
                .binary_search(&row.label)
                .expect("every row's label is listed"),
        );
    }
    out
}

fn train_generic_head(
    train: &Labelled,
    dim: usize,
    labels: &[String],
    options: &BuildOptions,
    now_ms: &dyn Fn() -> f64,
) -> Result<(Head, TrainingSummary)> {
    let start = Head::new_seeded(dim, options.architecture, labels.to_vec(), options.seed)?;
    let mut config = UpdateConfig {
        seed: options.seed,
        ..UpdateConfig::default()
    };
    if let Some(epochs) = options.epochs {
        config.epochs = epochs;
    }
    let outcome = run_update(
        &start,
        None,
        TrainingSet {
            features: &train.features,
            labels: &train.labels,
        },
        &config,
        now_ms,
        &mut |_| ControlFlow::Continue(()),
    )?;
    let summary = TrainingSummary {
        samples: train.labels.len(),
        parameters: outcome.head.parameter_count(),
        epochs: outcome.epochs,
        steps: outcome.steps,
        millis: outcome.millis,
        train_accuracy: outcome.train_accuracy,
    };
    Ok((outcome.head, summary))
}

/// (correct, total) on the held-out rows, if there are any.
fn held_out_accuracy(
    head: &Head,
    test: &Labelled,
    dim: usize,
    labels: &[String],
) -> Result<Option<(usize, usize)>> {
    let samples = test.labels.iter().enumerate().map(|(i, &label)| {
        (
            &test.features[i * dim..(i + 1) * dim],
            labels[label].as_str(),
        )
    });
    let (correct, total) = head.count_correct(samples)?;
    Ok((total > 0).then_some((correct, total)))
}

/// Up to `per_label` vectors of each label (seeded): from the training rows
/// for on-device updates to rehearse, so the labels a user never corrects
/// are not forgotten; from the held-out rows for the gate to check that.
fn pick_per_label(
    train: &Labelled,
    dim: usize,
    label_count: usize,
    per_label: usize,
    rng: &mut ChaCha8Rng,
) -> Rehearsal {
    let mut rehearsal = Rehearsal {
        dim,
        ..Rehearsal::default()
    };
    for label in 0..label_count {
        let mut rows_of: Vec<usize> = (0..train.labels.len())
            .filter(|&i| train.labels[i] == label)
            .collect();
        rows_of.shuffle(rng);
        for &i in rows_of.iter().take(per_label) {
            rehearsal
                .features
                .extend_from_slice(&train.features[i * dim..(i + 1) * dim]);
            rehearsal.labels.push(label as u32);
        }
    }
    rehearsal
}

/// The manifest over the files, and the bundle loaded back from them.
fn assemble(
    options: &BuildOptions,
    dim: usize,
    labels: Vec<String>,
    files: [(&str, Vec<u8>); 6],
    rehearsal_vectors: usize,
) -> Result<BuiltBundle> {
    let refs: Vec<FileRef> = files
        .iter()
        .map(|(name, bytes)| FileRef {
            file: (*name).into(),
            sha256: sha256_hex(bytes),
        })
        .collect();
    let [encoder, compiled, tokenizer, head, rehearsal, shipped_check] =
        <[FileRef; 6]>::try_from(refs).expect("six files");
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        name: options.name.clone(),
        version: options.version.clone(),
        description: options.description.clone(),
        encoder: EncoderSpec {
            file: encoder.file,
            sha256: encoder.sha256,
            pooling: Pooling::Mean,
            normalize: true,
            max_seq_len: options.max_seq_len,
            feature_size: dim,
            compiled: Some(compiled),
            word_embeddings_4bit: options.word_embeddings_4bit,
        },
        tokenizer,
        labels,
        head: HeadSpec {
            file: head.file,
            sha256: head.sha256,
            architecture: options.architecture,
            updatable_layers: match options.architecture {
                HeadArchitecture::Mlp { .. } if !options.freeze_hidden => {
                    vec!["hidden".into(), "output".into()]
                }
                _ => vec!["output".into()],
            },
        },
        training: TrainingSpec {
            inputs: TrainingInputs::FeatureVectors,
            defaults: UpdateConfig::default(),
            allowed: AllowedRanges::default(),
            auto_update_threshold: options.auto_update_threshold,
            validation_gate_fraction: 0.2,
            rehearsal: Some(rehearsal),
            shipped_check: Some(shipped_check),
            shipped_margin: 0.01,
        },
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serialises");
    let mut files: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|(name, bytes)| (name.to_string(), bytes))
        .collect();
    // Read it back the way an app will: a bundle that would not load is
    // never handed out.
    Bundle::load(&json, &mut |name| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, bytes)| bytes.clone())
    })?;
    files.push((MANIFEST_FILE.into(), json));
    Ok(BuiltBundle {
        files,
        manifest,
        rehearsal_vectors,
    })
}
