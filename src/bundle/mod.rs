//! The model bundle: what Core ML calls an updatable `.mlpackage`. A
//! manifest (JSON, versioned schema) and the files it names:
//!
//! | file | what |
//! |---|---|
//! | `manifest.json` | [`Manifest`]: identities, shapes, labels, training defaults and ranges |
//! | encoder (`encoder.onnx`) | the frozen sentence encoder |
//! | compiled encoder (`encoder.compiled.tar`, optional) | the same encoder compiled ahead of time ([`Encoder::compile`]); loaded instead of the ONNX file when this build can (same tract version), which skips tract's analysis |
//! | tokenizer (`tokenizer.json`) | its tokenizer |
//! | head (`head.bin`) | the shipped (generic) head, [`crate::head::codec`] bytes |
//! | rehearsal (`rehearsal.bin`, optional) | a few cached feature vectors per label from the bundle's training data, mixed into every on-device update so the labels the user never corrects are not forgotten |
//! | shipped check (`shipped-check.bin`, optional) | held-out vectors per label (the rehearsal format), never trained on: the validation gate's guard of the labels the user never corrects |
//!
//! [`Bundle::load`] checks everything before anything is used, and every
//! error names the manifest field and what is wrong with it.

pub mod build;
pub mod cache;
pub mod tool;

use serde::{Deserialize, Serialize};

use crate::encoder::{compiled, Encoder, EncoderConfig};
use crate::error::{Error, Result};
use crate::head::personal::{nearest_rehearsal_similarity, RehearsalRows};
use crate::head::{codec, Head, HeadArchitecture};
use crate::store::sha256_hex;
use crate::UpdateConfig;

/// The manifest schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub schema_version: u32,
    /// The bundle's name: also the default name of the user's store.
    pub name: String,
    /// The bundle's own version (free text, e.g. "2026.11.28").
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub encoder: EncoderSpec,
    pub tokenizer: FileRef,
    /// The labels the shipped head predicts, in its output order.
    pub labels: Vec<String>,
    pub head: HeadSpec,
    pub training: TrainingSpec,
}

/// A file of the bundle and its sha256.
impl Manifest {
    /// The file to fetch first when loading over the network: the compiled
    /// encoder, if the bundle ships one (its bytes decide whether the ONNX
    /// file is needed at all, see [`Manifest::files_to_fetch`]).
    pub fn compiled_encoder_file(&self) -> Option<&str> {
        self.encoder.compiled.as_ref().map(|c| c.file.as_str())
    }

    /// Every file the manifest names, with its sha256.
    pub fn file_refs(&self) -> Vec<(&str, &str)> {
        let mut refs = vec![(self.encoder.file.as_str(), self.encoder.sha256.as_str())];
        let optional = [
            self.encoder.compiled.as_ref(),
            Some(&self.tokenizer),
            self.training.rehearsal.as_ref(),
            self.training.shipped_check.as_ref(),
        ];
        refs.extend(
            optional
                .into_iter()
                .flatten()
                .map(|r| (r.file.as_str(), r.sha256.as_str())),
        );
        refs.push((self.head.file.as_str(), self.head.sha256.as_str()));
        refs
    }

    /// The sha256 the manifest gives the file `name`.
    pub fn sha256_of(&self, name: &str) -> Option<&str> {
        self.file_refs()
            .into_iter()
            .find(|(file, _)| *file == name)
            .map(|(_, sha256)| sha256)
    }

    /// Every other file a loader must fetch, given the compiled encoder's
    /// bytes if it fetched them: the ONNX encoder only when there is no
    /// compiled one this build can load (a loadable one stands in for it,
    /// and its 23 MB are never downloaded), then the tokenizer, the head and
    /// the rehearsal and shipped-check vectors. A build without the ONNX
    /// importer never fetches the ONNX file: it could not use it, and
    /// [`Bundle::load`] says why.
    pub fn files_to_fetch(&self, compiled: Option<&[u8]>) -> Vec<&str> {
        let mut files = Vec::with_capacity(5);
        let importer = cfg!(feature = "onnx-import");
        if importer && !compiled.is_some_and(EncoderSpec::compiled_is_loadable) {
            files.push(self.encoder.file.as_str());
        }
        files.extend([self.tokenizer.file.as_str(), self.head.file.as_str()]);
        files.extend(self.training.rehearsal.iter().map(|r| r.file.as_str()));
        files.extend(self.training.shipped_check.iter().map(|r| r.file.as_str()));
        files
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileRef {
    /// A path relative to the manifest.
    pub file: String,
    /// Lowercase hex.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Pooling {
    /// Mean of the last hidden state over the attention mask.
    Mean,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncoderSpec {
    pub file: String,
    pub sha256: String,
    pub pooling: Pooling,
    /// L2-normalised vectors (the only kind this build produces).
    pub normalize: bool,
    pub max_seq_len: usize,
    /// Length of the feature vector: the encoder's output and the head's input.
    pub feature_size: usize,
    /// The encoder compiled ahead of time ([`Encoder::compile`]) from `file`.
    /// Loaded instead of `file` when this build can, which then need not be
    /// read at all; a build with another tract version reads `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiled: Option<FileRef>,
    /// The word embeddings in 4 bits, in groups of this many values (the
    /// bundle tool's `--word-embeddings 4bit`): the compiled encoder holds
    /// them so, and an ONNX fallback requantizes its table the same way, so
    /// both give the vectors the head was trained on. Absent: int8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_embeddings_4bit: Option<usize>,
}

impl EncoderSpec {
    /// Whether `compiled` (the bytes of [`EncoderSpec::compiled`]) can stand
    /// in for the ONNX file in this build; `false` for anything that is not
    /// a compiled encoder this build loads. Lets a loader skip fetching the
    /// ONNX file.
    pub fn compiled_is_loadable(compiled: &[u8]) -> bool {
        compiled::read_header(compiled).is_ok_and(|h| h.check_loadable().is_ok())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeadSpec {
    pub file: String,
    pub sha256: String,
    pub architecture: HeadArchitecture,
    /// Which dense layers an update may change, by name: `"output"`
    /// (always), and `"hidden"` for an MLP head whose hidden layer learns
    /// on the device too.
    pub updatable_layers: Vec<String>,
}

impl HeadSpec {
    /// An MLP head whose hidden layer the device must not change.
    pub fn hidden_layer_frozen(&self) -> bool {
        matches!(self.architecture, HeadArchitecture::Mlp { .. })
            && !self.updatable_layers.iter().any(|l| l == "hidden")
    }
}

/// A closed range a setting may take on the device.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

impl Range {
    fn check(&self, field: &str, value: f64) -> Result<()> {
        // NaN bounds fail this too.
        if !self.min.is_finite() || !self.max.is_finite() || self.min > self.max {
            return Err(bundle_error(
                field,
                format!("min {} is above max {}", self.min, self.max),
            ));
        }
        // Settings are f32: compare there, so a bound written as 1e-4 admits
        // the f32 nearest to 1e-4.
        let (value, min, max) = (value as f32, self.min as f32, self.max as f32);
        if value < min || value > max {
            return Err(Error::Config(format!(
                "{field} must be in [{}, {}] for this bundle; found {value}",
                self.min, self.max
            )));
        }
        Ok(())
    }
}

/// The ranges an app may choose the update's main settings in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedRanges {
    pub learning_rate: Range,
    pub epochs: Range,
    pub batch_size: Range,
    pub l2_sp: Range,
}

impl Default for AllowedRanges {
    /// Wide enough for any setting the quality sweep found useful, narrow
    /// enough that an app cannot ask a phone for 10,000 epochs.
    fn default() -> Self {
        AllowedRanges {
            learning_rate: Range {
                min: 1e-4,
                max: 1.0,
            },
            epochs: Range {
                min: 1.0,
                max: 500.0,
            },
            batch_size: Range {
                min: 1.0,
                max: 256.0,
            },
            l2_sp: Range {
                min: 0.0,
                max: 100.0,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainingSpec {
    /// What an update reads: the encoder's cached feature vectors of the
    /// user's texts (the only input kind of this schema version).
    pub inputs: TrainingInputs,
    /// The loss, optimizer and every other setting of an on-device update
    /// when the app does not override them.
    pub defaults: UpdateConfig,
    pub allowed: AllowedRanges,
    /// Feedback samples that trigger an automatic update (the seed's 50).
    pub auto_update_threshold: usize,
    /// Share of the user's samples held out to decide whether a new head
    /// may replace the current one.
    pub validation_gate_fraction: f32,
    #[serde(default)]
    pub rehearsal: Option<FileRef>,
    /// Held-out vectors of the shipped labels (the rehearsal file's format),
    /// never trained on: the validation gate rejects a candidate that is
    /// less accurate on them than the current head by more than
    /// `shipped_margin`, over the labels the user has not contradicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_check: Option<FileRef>,
    /// The accuracy (a fraction) an update may lose on `shipped_check`.
    #[serde(default = "default_shipped_margin")]
    pub shipped_margin: f32,
}

fn default_shipped_margin() -> f32 {
    0.01
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrainingInputs {
    FeatureVectors,
}

impl TrainingSpec {
    /// `config` if every setting is within the bundle's allowed ranges.
    pub fn check_config(&self, config: &UpdateConfig) -> Result<()> {
        config.validate()?;
        self.allowed
            .learning_rate
            .check("learningRate", config.learning_rate as f64)?;
        self.allowed.epochs.check("epochs", config.epochs as f64)?;
        self.allowed
            .batch_size
            .check("batchSize", config.batch_size as f64)?;
        self.allowed.l2_sp.check("l2Sp", config.l2_sp as f64)
    }
}

/// Labelled feature vectors shipped with the bundle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rehearsal {
    pub dim: usize,
    pub features: Vec<f32>,
    /// Label indices into the manifest's labels.
    pub labels: Vec<u32>,
    /// Each row's cosine similarity to its nearest other row
    /// ([`nearest_rehearsal_similarity`] of `features`), if the file
    /// carries it (`LTREHE03`, what the bundle tool writes since
    /// 2026-12-06; see [`Rehearsal::with_nearest`]); empty if not, and a
    /// classifier computes it as it opens: rows² dot products, 32 ms of a
    /// start in the browser for 528 rows, 16 times that for 4 times the
    /// rows.
    pub nearest: Vec<f32>,
}

/// `row` as int8 with one scale: value ≈ int8 × scale, the scale the
/// row's largest magnitude / 127 (a zero row: scale 0, every value 0), so
/// each value is within half the scale of the original. How a bundle
/// stores its rehearsal vectors ([`Rehearsal::encode`]), and how the
/// memory of corrections rounds the copies it scans first.
pub(crate) fn int8_row(row: &[f32]) -> (f32, impl Iterator<Item = i8> + '_) {
    let scale = row.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
    let values = row.iter().map(move |&v| {
        let q = if scale > 0.0 {
            (v / scale).round()
        } else {
            0.0
        };
        q.clamp(-127.0, 127.0) as i8
    });
    (scale, values)
}

/// Vectors as f32 (the first format; still read).
const REHEARSAL_MAGIC_F32: &[u8; 8] = b"LTREHE01";
/// Vectors as int8 with one f32 scale per row (written when the nearest
/// similarities are not known).
const REHEARSAL_MAGIC_INT8: &[u8; 8] = b"LTREHE02";
/// As `LTREHE02`, with each row's nearest similarity (written since).
const REHEARSAL_MAGIC_NEAREST: &[u8; 8] = b"LTREHE03";

impl Rehearsal {
    /// `"LTREHE02"`, rows and dim (u32 LE), the rows' label indices (u32
    /// LE), each row's scale (f32 LE), then the vectors as int8, row-major:
    /// value = int8 × the row's scale (scale = the row's largest magnitude
    /// / 127). A quarter of the f32 size, so a bundle can carry four times
    /// the examples per label for the same bytes; on the encoder's vectors
    /// the rounding leaves a cosine of at least 0.99994 to the original,
    /// far closer than any two sentences.
    ///
    /// With [`Rehearsal::nearest`] (one per row): `"LTREHE03"`, and each
    /// row's nearest similarity (f32 LE) between the scales and the values.
    pub fn encode(&self) -> Vec<u8> {
        let rows = self.labels.len();
        let with_nearest = self.nearest.len() == rows && rows > 0;
        let mut out = Vec::with_capacity(16 + 12 * rows + self.features.len());
        out.extend_from_slice(if with_nearest {
            REHEARSAL_MAGIC_NEAREST
        } else {
            REHEARSAL_MAGIC_INT8
        });
        out.extend_from_slice(&(rows as u32).to_le_bytes());
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        for l in &self.labels {
            out.extend_from_slice(&l.to_le_bytes());
        }
        let rounded: Vec<(f32, Vec<i8>)> = (0..rows)
            .map(|r| {
                let (scale, values) = int8_row(&self.features[r * self.dim..(r + 1) * self.dim]);
                (scale, values.collect())
            })
            .collect();
        for (scale, _) in &rounded {
            out.extend_from_slice(&scale.to_le_bytes());
        }
        if with_nearest {
            for n in &self.nearest {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        for (_, values) in &rounded {
            out.extend(values.iter().map(|&q| q as u8));
        }
        out
    }

    /// The same rows with [`Rehearsal::nearest`] computed on the values a
    /// bundle reads back (its int8 rounding), so that [`Rehearsal::encode`]
    /// ships them.
    pub fn with_nearest(self) -> Result<Self> {
        let stored = Rehearsal::decode(&self.encode())?;
        let nearest = nearest_rehearsal_similarity(&stored.features, stored.dim);
        Ok(Rehearsal { nearest, ..self })
    }

    /// The rows as a personal update trains on them, with their nearest
    /// similarities if known (if not, the update computes them).
    pub fn rows(&self) -> RehearsalRows<'_> {
        RehearsalRows {
            features: &self.features,
            labels: &self.labels,
            nearest: (self.nearest.len() == self.labels.len()).then_some(self.nearest.as_slice()),
        }
    }

    /// Reads any of the formats (`LTREHE01` f32, `LTREHE02` int8,
    /// `LTREHE03` int8 with the nearest similarities).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = |p: &str| bundle_error("training.rehearsal", p.to_string());
        let (int8, with_nearest, rest) =
            if let Some(rest) = bytes.strip_prefix(REHEARSAL_MAGIC_NEAREST.as_slice()) {
                (true, true, rest)
            } else if let Some(rest) = bytes.strip_prefix(REHEARSAL_MAGIC_INT8.as_slice()) {
                (true, false, rest)
            } else if let Some(rest) = bytes.strip_prefix(REHEARSAL_MAGIC_F32.as_slice()) {
                (false, false, rest)
            } else {
                return Err(bad(
                    "not a rehearsal file (no LTREHE01, LTREHE02 or LTREHE03 signature)",
                ));
            };
        if rest.len() < 8 {
            return Err(bad("truncated header"));
        }
        let word =
            |i: usize| u32::from_le_bytes(rest[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        let (rows, dim) = (word(0) as usize, word(1) as usize);
        // Checked: on wasm32 a hostile header could overflow usize.
        let value_bytes = if int8 { 1 } else { 4 };
        let per_row_header = 4 * (1 + usize::from(int8) + usize::from(with_nearest));
        let expected = rows
            .checked_mul(dim)
            .and_then(|n| n.checked_mul(value_bytes))
            .and_then(|n| n.checked_add(rows.checked_mul(per_row_header)?))
            .and_then(|n| n.checked_add(8));
        if expected != Some(rest.len()) {
            return Err(bad(&format!(
                "{rows} rows of {dim} values need {} bytes; found {}",
                expected.map_or("more than this machine can address".into(), |n| n
                    .to_string()),
                rest.len()
            )));
        }
        let labels = (0..rows).map(|i| word(2 + i)).collect();
        let body = &rest[8 + 4 * rows..];
        let floats = |bytes: &[u8]| -> Vec<f32> {
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect()
        };
        // Each optional block is a 4-byte value per row.
        let per_row = |present: bool| if present { 4 * rows } else { 0 };
        let (scales, body) = body.split_at(per_row(int8));
        let (nearest, values) = body.split_at(per_row(with_nearest));
        let nearest = floats(nearest);
        // A cosine, or -inf for a lone row. A wrong value only changes which
        // shipped examples count as overridden; an impossible one is a
        // damaged file.
        if let Some(n) = nearest
            .iter()
            .find(|&&n| n.is_nan() || n > 1.01 || (n < -1.01 && n != f32::NEG_INFINITY))
        {
            return Err(bad(&format!("a nearest similarity of {n} is not a cosine")));
        }
        let features = if int8 {
            let scales = floats(scales);
            crate::head::check_finite("rehearsal scales", &scales)?;
            values
                .chunks_exact(dim.max(1))
                .zip(&scales)
                .flat_map(|(row, &scale)| row.iter().map(move |&q| q as i8 as f32 * scale))
                .collect::<Vec<_>>()
        } else {
            floats(values)
        };
        crate::head::check_finite("rehearsal vectors", &features)?;
        Ok(Rehearsal {
            dim,
            features,
            labels,
            nearest,
        })
    }
}

/// A loaded, fully checked bundle.
pub struct Bundle {
    pub manifest: Manifest,
    pub encoder: Encoder,
    pub head: Head,
    pub rehearsal: Rehearsal,
    /// The shipped labels' held-out vectors (empty if the bundle has none).
    pub shipped_check: Rehearsal,
}

pub(crate) fn bundle_error(field: &str, problem: String) -> Error {
    Error::Bundle {
        field: field.into(),
        problem,
    }
}

/// The decoder names the rehearsal field; the same format serves another.
fn rename_field(error: Error, from: &str, to: &str) -> Error {
    match error {
        Error::Bundle { field, problem } if field == from => Error::Bundle {
            field: to.into(),
            problem,
        },
        other => other,
    }
}

/// A bundle file as a loader read it, with its sha256 when the platform
/// has already computed it (a browser's WebCrypto hashes natively, off the
/// main thread, while the next file is read; wasm's own sha256 took 170 ms
/// of a 1.0 s start from the cache). Either way [`Bundle::load_files`]
/// compares it with the manifest's.
pub struct BundleFile {
    pub bytes: Vec<u8>,
    /// Lowercase hex sha256 of `bytes`; `None`: [`Bundle::load_files`]
    /// computes it.
    pub sha256: Option<String>,
}

impl From<Vec<u8>> for BundleFile {
    fn from(bytes: Vec<u8>) -> Self {
        BundleFile {
            bytes,
            sha256: None,
        }
    }
}

impl Bundle {
    /// Loads a bundle from its manifest and a way to read the files it
    /// names (`read(path)` → bytes, or `None` if there is no such file).
    pub fn load(manifest: &[u8], read: &mut dyn FnMut(&str) -> Option<Vec<u8>>) -> Result<Self> {
        Self::load_files(manifest, &mut |path| read(path).map(BundleFile::from))
    }

    /// [`Bundle::load`] for files that may come with their sha256 already
    /// computed ([`BundleFile`]).
    pub fn load_files(
        manifest: &[u8],
        read: &mut dyn FnMut(&str) -> Option<BundleFile>,
    ) -> Result<Self> {
        let manifest = parse_manifest(manifest)?;
        let mut file = |field: &str, path: &str, sha256: &str| -> Result<Vec<u8>> {
            let BundleFile {
                bytes,
                sha256: computed,
            } = read(path)
                .ok_or_else(|| bundle_error(field, format!("the file {path:?} is missing")))?;
            let actual = computed.unwrap_or_else(|| sha256_hex(&bytes));
            if actual != sha256.to_ascii_lowercase() {
                return Err(bundle_error(
                    &format!("{field}.sha256"),
                    format!("{path:?} has sha256 {actual}; the manifest says {sha256}"),
                ));
            }
            Ok(bytes)
        };
        let m = &manifest;
        let tokenizer = file("tokenizer", &m.tokenizer.file, &m.tokenizer.sha256)?;
        let head_bytes = file("head", &m.head.file, &m.head.sha256)?;
        let mut vectors = |field: &str, r: &Option<FileRef>| -> Result<Rehearsal> {
            match r {
                Some(r) => Rehearsal::decode(&file(field, &r.file, &r.sha256)?)
                    .map_err(|e| rename_field(e, "training.rehearsal", field)),
                None => Ok(Rehearsal::default()),
            }
        };
        let rehearsal = vectors("training.rehearsal", &m.training.rehearsal)?;
        let shipped_check = vectors("training.shippedCheck", &m.training.shipped_check)?;
        let config = EncoderConfig {
            max_seq_len: m.encoder.max_seq_len,
            word_embeddings_4bit: m.encoder.word_embeddings_4bit,
            ..EncoderConfig::default()
        };
        let identity = m.encoder.sha256.to_ascii_lowercase();
        let mut encoder = None;
        if let Some(c) = &m.encoder.compiled {
            let field = "encoder.compiled";
            let bytes = file(field, &c.file, &c.sha256)?;
            let header =
                compiled::read_header(&bytes).map_err(|e| bundle_error(field, e.to_string()))?;
            if header.source_sha256 != identity {
                return Err(bundle_error(
                    field,
                    format!(
                        "{:?} was compiled from the encoder with sha256 {}; the manifest's \
                         encoder is {identity}",
                        c.file, header.source_sha256
                    ),
                ));
            }
            if header.word_embeddings_4bit != m.encoder.word_embeddings_4bit {
                return Err(bundle_error(
                    "encoder.wordEmbeddings4bit",
                    format!(
                        "{:?} holds word embeddings {}; the manifest says {}",
                        c.file,
                        header.describe_word_embeddings(),
                        crate::encoder::four_bit::describe(m.encoder.word_embeddings_4bit)
                    ),
                ));
            }
            // Another tract version: the ONNX file below.
            if header.check_loadable().is_ok() {
                encoder = Some(Encoder::from_compiled(&bytes, &tokenizer, config.clone())?);
            }
        }
        let encoder = match encoder {
            Some(encoder) => encoder,
            #[cfg(feature = "onnx-import")]
            None => {
                let model = file("encoder", &m.encoder.file, &m.encoder.sha256)?;
                // `file` has checked the model against this digest.
                Encoder::from_bytes_with_sha256(&model, identity, &tokenizer, config)?
            }
            // Checked before the ONNX file is fetched: 23 MB for nothing.
            #[cfg(not(feature = "onnx-import"))]
            None => return Err(needs_onnx_import(m)),
        };
        let head =
            codec::decode(&head_bytes).map_err(|e| bundle_error("head.file", e.to_string()))?;
        check_fits(m, encoder.dim(), &head)?;
        check_vectors(m, "training.rehearsal", &rehearsal)?;
        check_vectors(m, "training.shippedCheck", &shipped_check)?;
        Ok(Bundle {
            manifest,
            encoder,
            head,
            rehearsal,
            shipped_check,
        })
    }
}

/// Why a module without the ONNX importer cannot load this bundle: it has
/// no compiled encoder, or one for another tract version.
#[cfg(not(feature = "onnx-import"))]
fn needs_onnx_import(m: &Manifest) -> Error {
    let why = match &m.encoder.compiled {
        None => "the bundle has no compiled encoder (encoder.compiled)".to_string(),
        Some(c) => format!(
            "its compiled encoder {:?} is for another tract version than this build's {}",
            c.file,
            compiled::TRACT_VERSION
        ),
    };
    bundle_error(
        "encoder.compiled",
        format!(
            "{why}, and this module has no ONNX importer to build the encoder from {:?}: \
             rebuild the bundle with this package's bundle tool (`npx localtune bundle`), \
             or load the module with the importer (localtune_onnx_bg.wasm)",
            m.encoder.file
        ),
    )
}

/// Parses and checks a manifest on its own (schema, names, ranges).
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Versioned {
        schema_version: Option<serde_json::Value>,
    }
    let versioned: Versioned = serde_json::from_slice(bytes)
        .map_err(|e| bundle_error("manifest.json", format!("not JSON: {e}")))?;
    match versioned.schema_version {
        None => return Err(bundle_error("schemaVersion", "missing".into())),
        Some(v) if v.as_u64() == Some(SCHEMA_VERSION as u64) => {}
        Some(v) => {
            return Err(bundle_error(
                "schemaVersion",
                format!("{v} is not supported; this build reads schema version {SCHEMA_VERSION}"),
            ))
        }
    }
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| bundle_error("manifest.json", e.to_string()))?;
    let m = &manifest;
    if m.name.trim().is_empty() {
        return Err(bundle_error("name", "must not be empty".into()));
    }
    let t = &m.training;
    let files = [
        ("encoder.file", Some(&m.encoder.file)),
        (
            "encoder.compiled.file",
            m.encoder.compiled.as_ref().map(|c| &c.file),
        ),
        ("tokenizer.file", Some(&m.tokenizer.file)),
        ("head.file", Some(&m.head.file)),
        (
            "training.rehearsal.file",
            t.rehearsal.as_ref().map(|r| &r.file),
        ),
        (
            "training.shippedCheck.file",
            t.shipped_check.as_ref().map(|r| &r.file),
        ),
    ];
    for (field, name) in files {
        if let Some(name) = name {
            check_file_name(name).map_err(|problem| bundle_error(field, problem))?;
        }
    }
    if m.encoder.max_seq_len < 2 || m.encoder.max_seq_len > 512 {
        return Err(bundle_error(
            "encoder.maxSeqLen",
            format!("must be in [2, 512]; found {}", m.encoder.max_seq_len),
        ));
    }
    if !m.encoder.normalize {
        return Err(bundle_error(
            "encoder.normalize",
            "only L2-normalised vectors (true) are supported".into(),
        ));
    }
    let layers: &[&str] = match m.head.architecture {
        HeadArchitecture::Linear => &["output"],
        HeadArchitecture::Mlp { .. } => &["hidden", "output"],
    };
    for name in &m.head.updatable_layers {
        if !layers.contains(&name.as_str()) {
            return Err(bundle_error(
                "head.updatableLayers",
                format!("{name:?} is not a layer of this head (it has {layers:?})"),
            ));
        }
    }
    if !m.head.updatable_layers.iter().any(|l| l == "output") {
        return Err(bundle_error(
            "head.updatableLayers",
            "must include \"output\": new labels and corrections live in the output layer".into(),
        ));
    }
    t.check_config(&t.defaults)
        .map_err(|e| bundle_error("training.defaults", e.to_string()))?;
    if t.auto_update_threshold == 0 {
        return Err(bundle_error(
            "training.autoUpdateThreshold",
            "must be at least 1".into(),
        ));
    }
    if !(0.0..=0.5).contains(&t.validation_gate_fraction) {
        return Err(bundle_error(
            "training.validationGateFraction",
            format!("must be in [0, 0.5]; found {}", t.validation_gate_fraction),
        ));
    }
    Ok(manifest)
}

/// A bundle's file names are paths below the manifest's folder: a loader
/// resolves them against the manifest's URL, so a name with a scheme
/// (`https:`), a host (`//host/…`), an absolute path or a `..` segment —
/// in any spelling, `%2e%2e` included — would make the classifier fetch
/// from somewhere the app did not choose. Letters, digits, `.`, `_`, `-`
/// and `/` between non-empty segments are all a bundle needs.
fn check_file_name(name: &str) -> std::result::Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/');
    if name.is_empty() || name.len() > 255 {
        return Err(format!("{name:?} must be 1 to 255 characters"));
    }
    if let Some(c) = name.chars().find(|&c| !allowed(c)) {
        return Err(format!(
            "{name:?} has {c:?}: a file name is a relative path of letters, digits, '.', '_', '-' and '/'"
        ));
    }
    if name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(format!(
            "{name:?} must stay in the manifest's folder (no leading '/', no empty, '.' or '..' segment)"
        ));
    }
    Ok(())
}

/// The sizes that must agree between the parts.
fn check_fits(m: &Manifest, encoder_dim: usize, head: &Head) -> Result<()> {
    if encoder_dim != m.encoder.feature_size {
        return Err(bundle_error(
            "encoder.featureSize",
            format!(
                "the manifest says {}; the encoder outputs {encoder_dim}",
                m.encoder.feature_size
            ),
        ));
    }
    if head.input_dim() != m.encoder.feature_size {
        return Err(bundle_error(
            "head",
            format!(
                "the head reads {} features; the encoder outputs {}",
                head.input_dim(),
                m.encoder.feature_size
            ),
        ));
    }
    if head.architecture() != m.head.architecture {
        return Err(bundle_error(
            "head.architecture",
            format!(
                "the manifest says {:?}; the head file is {:?}",
                m.head.architecture,
                head.architecture()
            ),
        ));
    }
    if head.labels() != m.labels.as_slice() {
        return Err(bundle_error(
            "labels",
            "differ from the head file's labels (order matters)".into(),
        ));
    }
    Ok(())
}

/// A file of labelled vectors (`field`) fits the encoder and the labels.
fn check_vectors(m: &Manifest, field: &str, rehearsal: &Rehearsal) -> Result<()> {
    if !rehearsal.labels.is_empty() {
        if rehearsal.dim != m.encoder.feature_size {
            return Err(bundle_error(
                field,
                format!(
                    "vectors have {} values; features have {}",
                    rehearsal.dim, m.encoder.feature_size
                ),
            ));
        }
        if let Some(bad) = rehearsal
            .labels
            .iter()
            .find(|&&l| l as usize >= m.labels.len())
        {
            return Err(bundle_error(
                field,
                format!(
                    "label index {bad} is out of range ({} labels)",
                    m.labels.len()
                ),
            ));
        }
    }
    Ok(())
}
