//! `localtune-bundle`: builds a model bundle from an encoder, its tokenizer
//! and a labelled CSV, by training the generic head with the same Rust code
//! that updates it on the device (the seed's `export_coreml.py` with
//! `is_updatable`).
//!
//! ```text
//! localtune-bundle --encoder model.onnx --tokenizer tokenizer.json \
//!     --data labelled.csv --out bundle-dir [options]
//! ```
//! Run with `--help` for the options.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    if let Err(message) = cli::run(std::env::args().skip(1).collect()) {
        eprintln!("localtune-bundle: {message}");
        std::process::exit(1);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::collections::BTreeMap;
    use std::ops::ControlFlow;
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use localtune::bundle::{
        AllowedRanges, EncoderSpec, FileRef, HeadSpec, Manifest, Pooling, Rehearsal,
        TrainingInputs, TrainingSpec, MANIFEST_FILE, SCHEMA_VERSION,
    };
    use localtune::head::codec;
    use localtune::store::sha256_hex;
    use localtune::{
        run_update, Encoder, EncoderConfig, Head, HeadArchitecture, TrainingSet, UpdateConfig,
    };
    use rand::seq::SliceRandom;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const USAGE: &str = "\
usage: localtune-bundle --encoder MODEL.onnx --tokenizer TOKENIZER.json --data LABELLED.csv --out DIR [options]

Trains the generic head on the CSV's texts (embedded by the encoder) and
writes DIR/manifest.json, encoder.onnx, encoder.compiled.tar (the encoder
compiled ahead of time, loaded instead of the ONNX file), tokenizer.json,
head.bin and rehearsal.bin.

options:
  --text-column NAME        column with the text (default: text)
  --label-column NAME       column with the label (default: label)
  --split-column NAME       rows whose value is \"test\" are held out for the
                            accuracy report (default: a seeded 10% per label)
  --name NAME               bundle name, also the user's store name (default: DIR's name)
  --version TEXT            bundle version (default: 0.1.0)
  --architecture linear|mlp:H   head shape (default: linear)
  --freeze-hidden yes       an MLP head's hidden layer does not learn on the device
  --max-seq-len N           encoder truncation (default: 128)
  --epochs N                epochs for the generic head (default: the update default)
  --seed N                  seed for the split, the head and the rehearsal pick (default: 0)
  --rehearsal-per-label N   training vectors per label shipped for on-device updates (default: 8)
  --auto-update-threshold N feedback samples that trigger an automatic update (default: 50)";

    struct Args {
        encoder: PathBuf,
        tokenizer: PathBuf,
        data: PathBuf,
        out: PathBuf,
        text_column: String,
        label_column: String,
        split_column: Option<String>,
        name: Option<String>,
        version: String,
        architecture: HeadArchitecture,
        freeze_hidden: bool,
        max_seq_len: usize,
        epochs: Option<usize>,
        seed: u64,
        rehearsal_per_label: usize,
        auto_update_threshold: usize,
    }

    fn parse(args: Vec<String>) -> Result<Args, String> {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            if flag == "--help" || flag == "-h" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let Some(name) = flag.strip_prefix("--") else {
                return Err(format!("unexpected argument {flag:?}\n\n{USAGE}"));
            };
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            map.insert(name.to_string(), value);
        }
        let mut take = |name: &str| map.remove(name);
        let required = |v: Option<String>, name: &str| {
            v.ok_or_else(|| format!("--{name} is required\n\n{USAGE}"))
        };
        let number = |v: Option<String>, name: &str, default: usize| -> Result<usize, String> {
            v.map_or(Ok(default), |s| {
                s.parse()
                    .map_err(|_| format!("--{name}: {s:?} is not a whole number"))
            })
        };
        let architecture = match take("architecture").as_deref() {
            None | Some("linear") => HeadArchitecture::Linear,
            Some(other) => match other.strip_prefix("mlp:").and_then(|h| h.parse().ok()) {
                Some(hidden) if hidden > 0 => HeadArchitecture::Mlp { hidden },
                _ => {
                    return Err(format!(
                        "--architecture: {other:?} is neither linear nor mlp:H"
                    ))
                }
            },
        };
        let args = Args {
            encoder: required(take("encoder"), "encoder")?.into(),
            tokenizer: required(take("tokenizer"), "tokenizer")?.into(),
            data: required(take("data"), "data")?.into(),
            out: required(take("out"), "out")?.into(),
            text_column: take("text-column").unwrap_or_else(|| "text".into()),
            label_column: take("label-column").unwrap_or_else(|| "label".into()),
            split_column: take("split-column"),
            name: take("name"),
            version: take("version").unwrap_or_else(|| "0.1.0".into()),
            architecture,
            freeze_hidden: match take("freeze-hidden").as_deref() {
                None | Some("no") => false,
                Some("yes") if matches!(architecture, HeadArchitecture::Mlp { .. }) => true,
                Some("yes") => return Err("--freeze-hidden yes needs --architecture mlp:H".into()),
                Some(other) => {
                    return Err(format!("--freeze-hidden: {other:?} is neither yes nor no"))
                }
            },
            max_seq_len: number(take("max-seq-len"), "max-seq-len", 128)?,
            epochs: take("epochs")
                .map(|s| {
                    s.parse()
                        .map_err(|_| format!("--epochs: {s:?} is not a whole number"))
                })
                .transpose()?,
            seed: number(take("seed"), "seed", 0)? as u64,
            rehearsal_per_label: number(take("rehearsal-per-label"), "rehearsal-per-label", 8)?,
            auto_update_threshold: number(
                take("auto-update-threshold"),
                "auto-update-threshold",
                50,
            )?,
        };
        if let Some(unknown) = map.keys().next() {
            return Err(format!("unknown option --{unknown}\n\n{USAGE}"));
        }
        Ok(args)
    }

    struct Row {
        text: String,
        label: String,
        held_out: bool,
    }

    fn read_rows(args: &Args) -> Result<Vec<Row>, String> {
        let path = &args.data;
        let mut reader =
            csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let headers = reader
            .headers()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .clone();
        let column = |name: &str| {
            headers.iter().position(|h| h == name).ok_or_else(|| {
                format!(
                    "{}: no column {name:?} (columns: {:?})",
                    path.display(),
                    headers.iter().collect::<Vec<_>>()
                )
            })
        };
        let text = column(&args.text_column)?;
        let label = column(&args.label_column)?;
        let split = args.split_column.as_deref().map(column).transpose()?;
        let mut rows = Vec::new();
        for (line, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
            let field = |i: usize| record.get(i).unwrap_or("").to_string();
            let row = Row {
                text: field(text),
                label: field(label).trim().to_string(),
                held_out: split.is_some_and(|i| field(i) == "test"),
            };
            if row.label.is_empty() {
                return Err(format!(
                    "{}: row {} has an empty label",
                    path.display(),
                    line + 2
                ));
            }
            rows.push(row);
        }
        if rows.is_empty() {
            return Err(format!("{}: no rows", path.display()));
        }
        Ok(rows)
    }

    /// A seeded 10% of each label's rows, when the CSV names no split.
    fn hold_out(rows: &mut [Row], seed: u64) {
        let mut by_label: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            by_label.entry(r.label.clone()).or_default().push(i);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for indices in by_label.values_mut() {
            indices.shuffle(&mut rng);
            for &i in indices.iter().take(indices.len() / 10) {
                rows[i].held_out = true;
            }
        }
    }

    pub fn run(raw: Vec<String>) -> Result<(), String> {
        let args = parse(raw)?;
        let started = Instant::now();
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let model = read(&args.encoder)?;
        let tokenizer = read(&args.tokenizer)?;
        let config = EncoderConfig {
            max_seq_len: args.max_seq_len,
            ..EncoderConfig::default()
        };
        let encoder = Encoder::from_bytes(&model, &tokenizer, config).map_err(|e| e.to_string())?;
        let mut rows = read_rows(&args)?;
        if args.split_column.is_none() {
            hold_out(&mut rows, args.seed);
        }
        let mut labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
        labels.sort();
        labels.dedup();
        if labels.len() < 2 {
            return Err(format!(
                "{}: a classifier needs at least 2 labels; found {labels:?}",
                args.data.display()
            ));
        }
        println!(
            "read {} rows, {} labels, from {} ({} held out)",
            rows.len(),
            labels.len(),
            args.data.display(),
            rows.iter().filter(|r| r.held_out).count()
        );

        // Embed every text once, in batches.
        let dim = encoder.dim();
        let mut features = Vec::with_capacity(rows.len() * dim);
        for (i, chunk) in rows.chunks(32).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
            features
                .extend_from_slice(encoder.embed(&texts).map_err(|e| e.to_string())?.as_slice());
            if i % 20 == 19 {
                println!("  embedded {} / {}", features.len() / dim, rows.len());
            }
        }
        println!(
            "embedded {} texts in {:.1} s",
            rows.len(),
            started.elapsed().as_secs_f64()
        );

        let index = |label: &str| {
            labels
                .binary_search_by(|l| l.as_str().cmp(label))
                .expect("label listed")
        };
        let split = |held_out: bool| -> (Vec<f32>, Vec<usize>) {
            let mut f = Vec::new();
            let mut l = Vec::new();
            for (i, r) in rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.held_out == held_out)
            {
                f.extend_from_slice(&features[i * dim..(i + 1) * dim]);
                l.push(index(&r.label));
            }
            (f, l)
        };
        let (train_features, train_labels) = split(false);
        let (test_features, test_labels) = split(true);

        let start = Head::new_seeded(dim, args.architecture, labels.clone(), args.seed)
            .map_err(|e| e.to_string())?;
        let mut update = UpdateConfig {
            seed: args.seed,
            ..UpdateConfig::default()
        };
        if let Some(epochs) = args.epochs {
            update.epochs = epochs;
        }
        let clock = Instant::now();
        let now = || clock.elapsed().as_secs_f64() * 1000.0;
        let outcome = run_update(
            &start,
            None,
            TrainingSet {
                features: &train_features,
                labels: &train_labels,
            },
            &update,
            &now,
            &mut |_| ControlFlow::Continue(()),
        )
        .map_err(|e| e.to_string())?;
        let head = outcome.head;
        println!(
            "trained the generic head ({:?}, {} parameters) on {} samples: {} epochs, {} steps, {:.1} s, train accuracy {:.1}%",
            args.architecture,
            head.parameter_count(),
            train_labels.len(),
            outcome.epochs,
            outcome.steps,
            outcome.millis / 1000.0,
            100.0 * outcome.train_accuracy
        );
        if !test_labels.is_empty() {
            let correct = test_labels
                .iter()
                .enumerate()
                .filter(|(i, &l)| {
                    let p = head
                        .probabilities(&test_features[i * dim..(i + 1) * dim])
                        .expect("checked sizes");
                    p.iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map(|(j, _)| j)
                        == Some(l)
                })
                .count();
            println!(
                "held-out accuracy: {:.1}% ({correct} / {} samples)",
                100.0 * correct as f64 / test_labels.len() as f64,
                test_labels.len()
            );
        }

        // A few training vectors per label for on-device updates to rehearse.
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x5245_4845);
        let mut rehearsal = Rehearsal {
            dim,
            ..Rehearsal::default()
        };
        for label in 0..labels.len() {
            let mut rows_of: Vec<usize> = (0..train_labels.len())
                .filter(|&i| train_labels[i] == label)
                .collect();
            rows_of.shuffle(&mut rng);
            for &i in rows_of.iter().take(args.rehearsal_per_label) {
                rehearsal
                    .features
                    .extend_from_slice(&train_features[i * dim..(i + 1) * dim]);
                rehearsal.labels.push(label as u32);
            }
        }

        std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
        let write = |name: &str, bytes: &[u8]| -> Result<FileRef, String> {
            let path = args.out.join(name);
            std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(FileRef {
                file: name.into(),
                sha256: sha256_hex(bytes),
            })
        };
        let encoder_file = write("encoder.onnx", &model)?;
        let compiled = localtune::Encoder::compile(&model).map_err(|e| e.to_string())?;
        let compiled_file = write("encoder.compiled.tar", &compiled)?;
        let tokenizer_file = write("tokenizer.json", &tokenizer)?;
        let head_file = write("head.bin", &codec::encode(&head))?;
        let rehearsal_file = write("rehearsal.bin", &rehearsal.encode())?;
        let name = args.name.clone().unwrap_or_else(|| {
            args.out
                .file_name()
                .map_or("bundle".into(), |n| n.to_string_lossy().into_owned())
        });
        let manifest = Manifest {
            schema_version: SCHEMA_VERSION,
            name,
            version: args.version.clone(),
            description: format!(
                "generic head trained on {} by localtune-bundle",
                args.data.display()
            ),
            encoder: EncoderSpec {
                file: encoder_file.file,
                sha256: encoder_file.sha256,
                pooling: Pooling::Mean,
                normalize: true,
                max_seq_len: args.max_seq_len,
                feature_size: dim,
                compiled: Some(compiled_file),
            },
            tokenizer: tokenizer_file,
            labels: labels.clone(),
            head: HeadSpec {
                file: head_file.file,
                sha256: head_file.sha256,
                architecture: args.architecture,
                updatable_layers: match args.architecture {
                    HeadArchitecture::Mlp { .. } if !args.freeze_hidden => {
                        vec!["hidden".into(), "output".into()]
                    }
                    _ => vec!["output".into()],
                },
            },
            training: TrainingSpec {
                inputs: TrainingInputs::FeatureVectors,
                defaults: UpdateConfig::default(),
                allowed: AllowedRanges::default(),
                auto_update_threshold: args.auto_update_threshold,
                validation_gate_fraction: 0.2,
                rehearsal: Some(rehearsal_file),
            },
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        write(MANIFEST_FILE, &json)?;
        // Read it back the way an app will, so a bundle that would not load
        // is never written without an error.
        let dir = args.out.clone();
        localtune::bundle::Bundle::load(&json, &mut |f| std::fs::read(dir.join(f)).ok())
            .map_err(|e| e.to_string())?;
        println!(
            "wrote {} ({} labels, {} rehearsal vectors) in {:.1} s",
            args.out.display(),
            labels.len(),
            rehearsal.labels.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
