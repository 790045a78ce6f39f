//! `localtune-bundle`: builds a model bundle from an encoder, its tokenizer
//! and a labelled CSV, by training the generic head with the same Rust code
//! that updates it on the device (the seed's `export_coreml.py` with
//! `is_updatable`). A shell over [`localtune::bundle::build`]: it reads the
//! arguments and the CSV, prints the progress and writes the files.
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
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use localtune::bundle::build::{build, BuildOptions, BuildProgress, LabelledText};
    use localtune::HeadArchitecture;

    const USAGE: &str = "\
usage: localtune-bundle --encoder MODEL.onnx --tokenizer TOKENIZER.json --data LABELLED.csv --out DIR [options]

Trains the generic head on the CSV's texts (embedded by the encoder) and
writes DIR/manifest.json, encoder.onnx, encoder.compiled.tar (the encoder
compiled ahead of time, loaded instead of the ONNX file), tokenizer.json,
head.bin, rehearsal.bin and shipped-check.bin.

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
  --rehearsal-per-label N   training vectors per label shipped for on-device updates (default: 16)
  --shipped-check-per-label N
                            held-out vectors per label shipped for the update gate's check of
                            the labels a user never corrects (default: 16)
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
        shipped_check_per_label: usize,
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
        let defaults = BuildOptions::default();
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
            rehearsal_per_label: number(
                take("rehearsal-per-label"),
                "rehearsal-per-label",
                defaults.rehearsal_per_label,
            )?,
            shipped_check_per_label: number(
                take("shipped-check-per-label"),
                "shipped-check-per-label",
                16,
            )?,
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

    fn read_rows(args: &Args) -> Result<Vec<LabelledText>, String> {
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
            let row = LabelledText {
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

    pub fn run(raw: Vec<String>) -> Result<(), String> {
        let args = parse(raw)?;
        let started = Instant::now();
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let model = read(&args.encoder)?;
        let tokenizer = read(&args.tokenizer)?;
        let rows = read_rows(&args)?;
        let options = BuildOptions {
            name: args.name.clone().unwrap_or_else(|| {
                args.out
                    .file_name()
                    .map_or("bundle".into(), |n| n.to_string_lossy().into_owned())
            }),
            version: args.version.clone(),
            description: format!(
                "generic head trained on {} by localtune-bundle",
                args.data.display()
            ),
            architecture: args.architecture,
            freeze_hidden: args.freeze_hidden,
            max_seq_len: args.max_seq_len,
            epochs: args.epochs,
            seed: args.seed,
            // A split column decides alone; without one, a seeded 10%.
            hold_out_fraction: if args.split_column.is_some() {
                0.0
            } else {
                0.1
            },
            rehearsal_per_label: args.rehearsal_per_label,
            shipped_check_per_label: args.shipped_check_per_label,
            auto_update_threshold: args.auto_update_threshold,
        };
        let clock = Instant::now();
        let now = || clock.elapsed().as_secs_f64() * 1000.0;
        let data = args.data.display();
        let architecture = args.architecture;
        let mut report = |p: BuildProgress| {
            match p {
            BuildProgress::Read {
                rows,
                labels,
                held_out,
            } => println!("read {rows} rows, {labels} labels, from {data} ({held_out} held out)"),
            BuildProgress::Embedded { done, total } if done == total => println!(
                "embedded {total} texts in {:.1} s",
                started.elapsed().as_secs_f64()
            ),
            BuildProgress::Embedded { done, total } if done % 640 == 0 => {
                println!("  embedded {done} / {total}")
            }
            BuildProgress::Embedded { .. } => {}
            BuildProgress::Trained(t) => println!(
                "trained the generic head ({architecture:?}, {} parameters) on {} samples: {} epochs, {} steps, {:.1} s, train accuracy {:.1}%",
                t.parameters,
                t.samples,
                t.epochs,
                t.steps,
                t.millis / 1000.0,
                100.0 * t.train_accuracy
            ),
            BuildProgress::HeldOutAccuracy { correct, total } => println!(
                "held-out accuracy: {:.1}% ({correct} / {total} samples)",
                100.0 * correct as f64 / total as f64
            ),
        }
        };
        let built =
            build(&model, &tokenizer, rows, &options, &now, &mut report).map_err(|e| match e {
                localtune::Error::Config(message) => format!("{data}: {message}"),
                other => other.to_string(),
            })?;
        std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
        for (name, bytes) in &built.files {
            let path = args.out.join(name);
            std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        println!(
            "wrote {} ({} labels, {} rehearsal vectors) in {:.1} s",
            args.out.display(),
            built.manifest.labels.len(),
            built.rehearsal_vectors,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
