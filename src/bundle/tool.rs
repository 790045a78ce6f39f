//! The bundle tool: its flags, its CSV reading, its output and its files,
//! once for both of its shells — the native `localtune-bundle` binary and
//! the npm package's `npx localtune bundle` (this code compiled to wasm,
//! run by Node). A shell only supplies the file system, a clock and a
//! console ([`ToolIo`]), so both take the same flags, refuse the same
//! input with the same words and write the same bundle.

use std::collections::BTreeMap;

use super::build::{self, build_prepared, BuildOptions, BuildProgress, LabelledText, PreparedRows};
use crate::encoder::{four_bit, EMBED_CHUNK_ROWS};
use crate::{EncoderConfig, HeadArchitecture};

pub const USAGE: &str = "\
usage: localtune-bundle --encoder MODEL.onnx --tokenizer TOKENIZER.json --data LABELLED.csv --out DIR [options]
   or: npx localtune bundle (the same options)

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
  --rehearsal-per-label N   training vectors per label shipped for on-device updates (default: 64)
  --shipped-check-per-label N
                            held-out vectors per label shipped for the update gate's check of
                            the labels a user never corrects (default: 16)
  --auto-update-threshold N feedback samples that trigger an automatic update (default: 50)
  --word-embeddings int8|4bit|4bit:G
                            the compiled encoder's word embeddings: int8 (default), or 4 bits
                            in groups of G values (default 32): MiniLM's file 23 → 18 MB,
                            vectors within cosine 0.99 of int8's
  --threads N               threads that embed the texts (default: one per core; npx
                            localtune bundle runs them as Node worker threads, by
                            default at most 8); the bundle's bytes do not depend on it";

/// The most threads `--threads` may ask for.
pub const MAX_THREADS: usize = 256;

/// The most workers a pool starts unless `--threads` asks for more. Unlike
/// native threads, which share one encoder, each worker builds its own
/// from the ONNX file (two workers and the tool took 1.1 GB in Node): one
/// per core of a 64-core machine would need tens of gigabytes.
pub const DEFAULT_MAX_WORKERS: usize = 8;

/// What the shell does for the tool.
pub trait ToolIo {
    /// The bytes of the file at `path`.
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;
    /// Writes `bytes` as `name` in the folder `dir` (creating it).
    fn write(&self, dir: &str, name: &str, bytes: &[u8]) -> Result<(), String>;
    /// Prints one line of progress.
    fn print(&self, line: &str);
    /// Milliseconds on any monotonic clock.
    fn now_ms(&self) -> f64;
}

/// The tool's arguments, read from its flags: where the inputs are and
/// how to read the CSV, and the build they ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolArgs {
    pub encoder: String,
    pub tokenizer: String,
    pub data: String,
    pub out: String,
    pub text_column: String,
    pub label_column: String,
    pub split_column: Option<String>,
    pub options: BuildOptions,
}

/// What the flags ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Build(Box<ToolArgs>),
}

/// Reads the flags (`--name value` pairs, or `--help`).
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(Command::Help);
        }
        let Some(name) = flag.strip_prefix("--") else {
            return Err(format!("unexpected argument {flag:?}\n\n{USAGE}"));
        };
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if map.insert(name.to_string(), value.clone()).is_some() {
            return Err(format!("{flag} is given twice"));
        }
    }
    let defaults = BuildOptions::default();
    let mut take = |name: &str| map.remove(name);
    let required =
        |v: Option<String>, name: &str| v.ok_or_else(|| format!("--{name} is required\n\n{USAGE}"));
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
    let encoder = required(take("encoder"), "encoder")?;
    let tokenizer = required(take("tokenizer"), "tokenizer")?;
    let data = required(take("data"), "data")?;
    let out = required(take("out"), "out")?;
    let split_column = take("split-column");
    // The bundle's name defaults to the output folder's.
    let out_name = out
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .map(str::to_string);
    let options = BuildOptions {
        name: take("name")
            .or(out_name)
            .unwrap_or_else(|| defaults.name.clone()),
        version: take("version").unwrap_or_else(|| defaults.version.clone()),
        description: format!("generic head trained on {data} by localtune-bundle"),
        architecture,
        freeze_hidden: match take("freeze-hidden").as_deref() {
            None | Some("no") => false,
            Some("yes") if matches!(architecture, HeadArchitecture::Mlp { .. }) => true,
            Some("yes") => return Err("--freeze-hidden yes needs --architecture mlp:H".into()),
            Some(other) => return Err(format!("--freeze-hidden: {other:?} is neither yes nor no")),
        },
        max_seq_len: number(take("max-seq-len"), "max-seq-len", defaults.max_seq_len)?,
        epochs: take("epochs")
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("--epochs: {s:?} is not a whole number"))
            })
            .transpose()?,
        seed: number(take("seed"), "seed", 0)? as u64,
        // A split column decides alone; without one, a seeded 10%.
        hold_out_fraction: if split_column.is_some() {
            0.0
        } else {
            defaults.hold_out_fraction
        },
        rehearsal_per_label: number(
            take("rehearsal-per-label"),
            "rehearsal-per-label",
            defaults.rehearsal_per_label,
        )?,
        shipped_check_per_label: number(
            take("shipped-check-per-label"),
            "shipped-check-per-label",
            defaults.shipped_check_per_label,
        )?,
        auto_update_threshold: number(
            take("auto-update-threshold"),
            "auto-update-threshold",
            defaults.auto_update_threshold,
        )?,
        word_embeddings_4bit: match take("word-embeddings").as_deref() {
            None | Some("int8") => None,
            Some("4bit") => Some(four_bit::DEFAULT_GROUP),
            Some(other) => match other.strip_prefix("4bit:").and_then(|g| g.parse().ok()) {
                Some(group) if (1..=four_bit::MAX_GROUP).contains(&group) => Some(group),
                _ => {
                    return Err(format!(
                    "--word-embeddings: {other:?} is none of int8, 4bit, 4bit:G (G from 1 to {})",
                    four_bit::MAX_GROUP
                ))
                }
            },
        },
        // Each thread holds a run's activations (megabytes at 128 tokens).
        threads: match number(take("threads"), "threads", defaults.threads)? {
            n if n <= MAX_THREADS => n,
            n => return Err(format!("--threads: {n} is more than {MAX_THREADS}")),
        },
    };
    let args = ToolArgs {
        encoder,
        tokenizer,
        data,
        out,
        text_column: take("text-column").unwrap_or_else(|| "text".into()),
        label_column: take("label-column").unwrap_or_else(|| "label".into()),
        split_column,
        options,
    };
    if let Some(unknown) = map.keys().next() {
        return Err(format!("unknown option --{unknown}\n\n{USAGE}"));
    }
    Ok(Command::Build(Box::new(args)))
}

/// The labelled rows of a CSV file (`source` names it in errors): the
/// columns `args` names, a row held out where the split column says
/// "test", labels trimmed and never empty.
pub fn read_rows(csv: &[u8], source: &str, args: &ToolArgs) -> Result<Vec<LabelledText>, String> {
    let mut reader = csv::Reader::from_reader(csv);
    let headers = reader
        .headers()
        .map_err(|e| format!("{source}: {e}"))?
        .clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            format!(
                "{source}: no column {name:?} (columns: {:?})",
                headers.iter().collect::<Vec<_>>()
            )
        })
    };
    let text = column(&args.text_column)?;
    let label = column(&args.label_column)?;
    let split = args.split_column.as_deref().map(column).transpose()?;
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("{source}: {e}"))?;
        let field = |i: usize| record.get(i).unwrap_or("").to_string();
        let row = LabelledText {
            text: field(text),
            label: field(label).trim().to_string(),
            held_out: split.is_some_and(|i| field(i) == "test"),
        };
        if row.label.is_empty() {
            return Err(format!("{source}: row {} has an empty label", line + 2));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(format!("{source}: no rows"));
    }
    Ok(rows)
}

/// Runs the tool on `args` (the flags after the command name). An error is
/// the message to print; nothing is written unless the whole bundle built.
pub fn run(args: &[String], io: &dyn ToolIo) -> Result<(), String> {
    match prepare(args, io)? {
        Some(build) => build.finish(None, io),
        None => Ok(()),
    }
}

/// A run of the tool up to the embedding: its flags read, its files read,
/// its rows checked and split ([`build::prepare`]). The shell embeds
/// [`PreparedTool::texts`] wherever it likes — the npm tool on a pool of
/// Node worker threads, each with an encoder of its own — and hands the
/// vectors to [`PreparedTool::finish`]; or lets `finish` embed them.
pub struct PreparedTool {
    args: ToolArgs,
    model: Vec<u8>,
    tokenizer: Vec<u8>,
    rows: PreparedRows,
    started: f64,
}

/// Reads the flags and the files and checks the rows; prints the usage
/// (and returns `None`) for `--help`. Errors as [`run`]'s.
pub fn prepare(args: &[String], io: &dyn ToolIo) -> Result<Option<PreparedTool>, String> {
    let args = match parse_args(args)? {
        Command::Help => {
            io.print(USAGE);
            return Ok(None);
        }
        Command::Build(args) => *args,
    };
    let started = io.now_ms();
    let model = io.read(&args.encoder)?;
    let tokenizer = io.read(&args.tokenizer)?;
    let rows = read_rows(&io.read(&args.data)?, &args.data, &args)?;
    let rows = build::prepare(rows, &args.options, &mut report_to(io, &args))
        .map_err(|e| tool_error(e, &args))?;
    Ok(Some(PreparedTool {
        args,
        model,
        tokenizer,
        rows,
        started,
    }))
}

impl PreparedTool {
    /// The texts to embed, in the order [`PreparedTool::finish`] takes
    /// their vectors.
    pub fn texts(&self) -> Vec<&str> {
        self.rows.texts()
    }

    /// The encoder's files and how to build it: an encoder built so embeds
    /// the texts as `finish` would.
    pub fn encoder(&self) -> (&[u8], &[u8], EncoderConfig) {
        (
            &self.model,
            &self.tokenizer,
            build::encoder_config(&self.args.options),
        )
    }

    /// `--threads` (0: one per core).
    pub fn threads(&self) -> usize {
        self.args.options.threads
    }

    /// How many workers of a pool embed the texts on a machine with
    /// `cores`: `--threads`, or by default one per core up to
    /// [`DEFAULT_MAX_WORKERS`]; never more than there are runs of texts.
    pub fn workers(&self, cores: usize) -> usize {
        let asked = match self.threads() {
            0 => cores.min(DEFAULT_MAX_WORKERS),
            n => n,
        };
        asked.clamp(1, self.rows.len().div_ceil(EMBED_CHUNK_ROWS).max(1))
    }

    /// The line the tool prints when `done` of the texts are embedded, if
    /// any (so a shell that embeds prints what the tool would).
    pub fn embedded_line(&self, done: usize) -> Option<String> {
        progress_line(
            &BuildProgress::Embedded {
                done,
                total: self.rows.len(),
            },
            self.args.options.architecture,
        )
    }

    /// Builds the bundle from every text's vector (row-major, in the order
    /// of [`PreparedTool::texts`]), or embeds them here if `vectors` is
    /// `None`, and writes its files.
    pub fn finish(self, vectors: Option<&[f32]>, io: &dyn ToolIo) -> Result<(), String> {
        let PreparedTool {
            args,
            model,
            tokenizer,
            rows,
            started,
        } = self;
        let clock = || io.now_ms();
        let built = build_prepared(
            &model,
            &tokenizer,
            rows,
            vectors,
            &args.options,
            &clock,
            &mut report_to(io, &args),
        )
        .map_err(|e| tool_error(e, &args))?;
        for (name, bytes) in &built.files {
            io.write(&args.out, name, bytes)?;
        }
        io.print(&format!(
            "wrote {} ({} labels, {} rehearsal vectors) in {:.1} s",
            args.out,
            built.manifest.labels.len(),
            built.rehearsal_vectors,
            (io.now_ms() - started) / 1000.0
        ));
        Ok(())
    }
}

/// Prints the lines of a build's stages.
fn report_to<'a>(io: &'a dyn ToolIo, args: &'a ToolArgs) -> impl FnMut(BuildProgress) + 'a {
    move |p| {
        if let Some(line) = progress_line(&p, args.options.architecture) {
            io.print(&line);
        }
    }
}

/// A build's error as the tool words it: a problem with the rows names the
/// data file.
fn tool_error(error: crate::Error, args: &ToolArgs) -> String {
    match error {
        crate::Error::Config(message) => format!("{}: {message}", args.data),
        other => other.to_string(),
    }
}

/// The line a stage of the build prints, if any.
pub fn progress_line(progress: &BuildProgress, architecture: HeadArchitecture) -> Option<String> {
    Some(match progress {
        BuildProgress::Read {
            rows,
            labels,
            held_out,
        } => format!("read {rows} rows, {labels} labels ({held_out} held out)"),
        BuildProgress::Embedded { done, total } if done == total => {
            format!("embedded {total} texts")
        }
        // Runs of texts finish in any order, so `done` moves by up to a
        // run at a time: a line each time it passes a multiple of 640.
        BuildProgress::Embedded { done, total } if *done >= 640 && done % 640 < EMBED_CHUNK_ROWS => {
            format!("  embedded {done} / {total}")
        }
        BuildProgress::Embedded { .. } => return None,
        BuildProgress::Trained(t) => format!(
            "trained the generic head ({architecture:?}, {} parameters) on {} samples: {} epochs, {} steps, {:.1} s, train accuracy {:.1}%",
            t.parameters,
            t.samples,
            t.epochs,
            t.steps,
            t.millis / 1000.0,
            100.0 * t.train_accuracy
        ),
        BuildProgress::HeldOutAccuracy { correct, total } => format!(
            "held-out accuracy: {:.1}% ({correct} / {total} samples)",
            100.0 * *correct as f64 / *total as f64
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Vec<String> {
        let base = [
            "--encoder",
            "e.onnx",
            "--tokenizer",
            "t.json",
            "--data",
            "d.csv",
        ];
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    }

    fn parsed(extra: &[&str]) -> ToolArgs {
        match parse_args(&args(extra)).unwrap() {
            Command::Build(args) => *args,
            Command::Help => panic!("help"),
        }
    }

    #[test]
    fn flags_are_read_once_each_and_misfits_are_named() {
        let a = parsed(&["--out", "bundles/my-intents/", "--architecture", "mlp:8"]);
        assert_eq!(a.options.architecture, HeadArchitecture::Mlp { hidden: 8 });
        // The bundle's name comes from the output folder's, slash or not.
        assert_eq!(a.options.name, "my-intents");
        assert_eq!(parsed(&["--out", "."]).options.name, "bundle");
        assert_eq!(parse_args(&["--help".to_string()]).unwrap(), Command::Help);
        assert_eq!(parsed(&["--out", "x"]).options.threads, 0);
        assert_eq!(
            parsed(&["--out", "x", "--threads", "256"]).options.threads,
            256
        );
        for (extra, message) in [
            (
                &["--out", "x", "--threads", "257"][..],
                "--threads: 257 is more than 256",
            ),
            (
                &["--out", "x", "--threads", "-1"][..],
                "--threads: \"-1\" is not a whole number",
            ),
            (&["--out", "x", "--out", "y"][..], "--out is given twice"),
            (
                &["--out", "x", "--epochs", "many"][..],
                "--epochs: \"many\" is not a whole number",
            ),
            (
                &["--out", "x", "--colour", "red"][..],
                "unknown option --colour",
            ),
            (&["--out"][..], "--out needs a value"),
            (&["stray"][..], "unexpected argument \"stray\""),
            (&[][..], "--out is required"),
        ] {
            let err = parse_args(&args(extra)).unwrap_err();
            assert!(err.starts_with(message), "{err} (expected: {message})");
        }
    }

    #[test]
    fn a_csv_is_read_with_its_quoting_and_its_bad_rows_are_named() {
        assert_eq!(parsed(&["--out", "x"]).options.word_embeddings_4bit, None);
        assert_eq!(
            parsed(&["--out", "x", "--word-embeddings", "4bit"])
                .options
                .word_embeddings_4bit,
            Some(32)
        );
        assert_eq!(
            parsed(&["--out", "x", "--word-embeddings", "4bit:64"])
                .options
                .word_embeddings_4bit,
            Some(64)
        );
        for bad in ["4", "4bit:0", "int4", "4bit:x"] {
            let err = parse_args(&args(&["--out", "x", "--word-embeddings", bad])).unwrap_err();
            assert!(err.contains("is none of int8, 4bit"), "{err}");
        }
        let a = parsed(&["--out", "x", "--split-column", "split"]);
        let csv =
            "text,label,split\n\"turn on, please\",lights ,train\n\"two\nlines\",music,test\n";
        let rows = read_rows(csv.as_bytes(), "d.csv", &a).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text, "turn on, please");
        assert_eq!(rows[0].label, "lights");
        assert!(!rows[0].held_out && rows[1].held_out);
        assert_eq!(rows[1].text, "two\nlines");

        let err = read_rows(b"text,label,split\nplay,  ,train\n", "d.csv", &a).unwrap_err();
        assert_eq!(err, "d.csv: row 2 has an empty label");
        let err = read_rows(b"text,label,split\n", "d.csv", &a).unwrap_err();
        assert_eq!(err, "d.csv: no rows");
        let err = read_rows(b"words,label\nx,y\n", "d.csv", &a).unwrap_err();
        assert!(err.starts_with("d.csv: no column \"text\""), "{err}");
    }
}
