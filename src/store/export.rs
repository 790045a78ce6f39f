//! The export file: everything a user owns (samples, head versions, the
//! current pointer) in one file that can be checked before it is trusted.
//!
//! ```text
//! {"format":"localtune-export","schemaVersion":1,"payloadBytes":N,"payloadSha256":"…"}\n
//! payload: JSON {"exportedMs", "samples", "versions", "weights": [{"version", "checksum", "bytes" (base64)}], "current"}
//! ```
//!
//! The first line is readable on its own, so a file from a newer schema is
//! refused by name rather than misread. Cached feature vectors are not
//! exported: any encoder recomputes them, and they would triple the size.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::backend::{Sample, Snapshot, VersionInfo, VersionNumber, WeightsRecord};
use super::sha256_hex;
use super::MAX_SAMPLE_TEXT_BYTES;
use crate::error::{Error, Result};
use crate::head::{check_label, codec, MAX_LABELS, MAX_LABEL_CHARS};

pub const FORMAT: &str = "localtune-export";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    format: String,
    schema_version: u32,
    payload_bytes: usize,
    payload_sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    exported_ms: f64,
    samples: Vec<Sample>,
    versions: Vec<VersionInfo>,
    weights: Vec<ExportedWeights>,
    current: Option<VersionNumber>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportedWeights {
    version: VersionNumber,
    checksum: String,
    bytes: String,
}

/// Writes `snapshot` as an export file.
pub fn write(snapshot: &Snapshot, exported_ms: f64) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = Payload {
        exported_ms,
        samples: snapshot.samples.clone(),
        versions: snapshot.versions.clone(),
        weights: snapshot
            .weights
            .iter()
            .map(|w| ExportedWeights {
                version: w.version,
                checksum: w.checksum.clone(),
                bytes: b64.encode(&w.bytes),
            })
            .collect(),
        current: snapshot.current,
    };
    let payload = serde_json::to_vec(&payload).expect("plain data serialises");
    let header = Header {
        format: FORMAT.into(),
        schema_version: SCHEMA_VERSION,
        payload_bytes: payload.len(),
        payload_sha256: sha256_hex(&payload),
    };
    let mut file = serde_json::to_vec(&header).expect("plain data serialises");
    file.push(b'\n');
    file.extend_from_slice(&payload);
    file
}

/// What the importing store allows: a file can be well formed, with a
/// checksum its author recomputed, and still not fit.
#[derive(Debug, Clone)]
pub struct ImportLimits<'a> {
    /// The store's encoder, and the input size its heads must have.
    pub encoder_sha256: &'a str,
    pub input_dim: usize,
    /// The store's cap on samples.
    pub max_samples: usize,
}

/// The most bytes one sample can take in an export file: its text and
/// label with every byte written as JSON's six-byte `\u00XX` escape (a
/// text of control characters; ordinary text takes 1–2 bytes a byte),
/// plus its id, time and field names.
pub const MAX_EXPORTED_SAMPLE_BYTES: u64 =
    6 * (MAX_SAMPLE_TEXT_BYTES + MAX_LABEL_CHARS) as u64 + 256;

/// What an import file may spend on head versions. A store keeps its
/// newest `keepVersions` (20 by default), the current one and its shipped
/// heads; a 1,000-label linear head over 384 values is ~2 MB in the file,
/// the default bundle's ~0.1 MB, so this admits every store this library
/// writes short of hundreds of versions at the largest head sizes.
pub const VERSIONS_ALLOWANCE_BYTES: u64 = 256 << 20;

impl ImportLimits<'_> {
    /// The largest file an import reads: the header line, `max_samples`
    /// samples at their largest and the versions allowance. Checked before
    /// anything in the file is parsed (and, in the browser, before the file
    /// is copied into the module's memory): parsing holds about twice the
    /// file in memory.
    pub fn max_file_bytes(&self) -> u64 {
        1024 + self.max_samples as u64 * MAX_EXPORTED_SAMPLE_BYTES + VERSIONS_ALLOWANCE_BYTES
    }

    /// An [`Error::Import`] if a file of `bytes` is over [`Self::max_file_bytes`].
    pub fn check_file_size(&self, bytes: u64) -> Result<()> {
        let max = self.max_file_bytes();
        if bytes > max {
            return Err(Error::Import(format!(
                "the file is {bytes} bytes; this store imports at most {max} \
                 ({} samples of at most {MAX_SAMPLE_TEXT_BYTES} bytes, and \
                 {VERSIONS_ALLOWANCE_BYTES} bytes of versions)",
                self.max_samples
            )));
        }
        Ok(())
    }
}

/// The largest id an import accepts for a sample or a version: IndexedDB
/// keys are JavaScript numbers, exact up to 2^53 − 1, and its key generator
/// stops at 2^53 (every later add fails).
pub const MAX_ID: u64 = (1 << 53) - 1;

/// Reads and fully checks an export file: its checksum, every weights
/// record against its own checksum and its version, the references
/// between records, and its content against `limits` (id ranges, sample
/// texts and labels, the sample cap, each head's input size). Nothing is
/// returned unless all of it holds.
pub fn read(file: &[u8], limits: &ImportLimits) -> Result<Snapshot> {
    let bad = |m: String| Error::Import(m);
    limits.check_file_size(file.len() as u64)?;
    let newline = file
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("not a localtune export file (no header line)".into()))?;
    let header: Header = serde_json::from_slice(&file[..newline])
        .map_err(|e| bad(format!("not a localtune export file (header: {e})")))?;
    if header.format != FORMAT {
        return Err(bad(format!(
            "format is {:?}, expected {FORMAT:?}",
            header.format
        )));
    }
    if header.schema_version != SCHEMA_VERSION {
        return Err(bad(format!(
            "export schema version {} is not supported (this build reads version {SCHEMA_VERSION})",
            header.schema_version
        )));
    }
    let payload = &file[newline + 1..];
    if payload.len() != header.payload_bytes {
        return Err(bad(format!(
            "the file is truncated or padded: payload is {} bytes, header says {}",
            payload.len(),
            header.payload_bytes
        )));
    }
    let actual = sha256_hex(payload);
    if actual != header.payload_sha256 {
        return Err(bad(format!(
            "integrity check failed: payload sha256 is {actual}, header says {}",
            header.payload_sha256
        )));
    }
    let payload: Payload =
        serde_json::from_slice(payload).map_err(|e| bad(format!("payload: {e}")))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut weights = Vec::with_capacity(payload.weights.len());
    for w in payload.weights {
        let bytes = b64
            .decode(&w.bytes)
            .map_err(|e| bad(format!("weights of version {}: {e}", w.version)))?;
        weights.push(WeightsRecord {
            version: w.version,
            checksum: w.checksum,
            bytes,
        });
    }
    let snapshot = Snapshot {
        samples: payload.samples,
        versions: payload.versions,
        weights,
        current: payload.current,
    };
    check_consistent(&snapshot, limits)?;
    Ok(snapshot)
}

/// The references, checksums and limits an import relies on.
fn check_consistent(snapshot: &Snapshot, limits: &ImportLimits) -> Result<()> {
    let bad = |m: String| Error::Import(m);
    let check_id = |what: &str, id: u64| {
        if (1..=MAX_ID).contains(&id) {
            Ok(())
        } else {
            Err(bad(format!(
                "{what} id {id} is outside 1..=2^53−1 (what IndexedDB keys can hold)"
            )))
        }
    };
    if snapshot.samples.len() > limits.max_samples {
        return Err(bad(format!(
            "the file holds {} samples; this store keeps at most {} (maxSamples)",
            snapshot.samples.len(),
            limits.max_samples
        )));
    }
    let mut sample_ids = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for sample in &snapshot.samples {
        check_id("sample", sample.id)?;
        if !sample_ids.insert(sample.id) {
            return Err(bad(format!("sample id {} appears twice", sample.id)));
        }
        check_label(&sample.label).map_err(|e| bad(format!("sample {}: {e}", sample.id)))?;
        super::check_sample_text(&sample.text)
            .map_err(|e| bad(format!("sample {}: {e}", sample.id)))?;
        if labels.insert(sample.label.as_str()) && labels.len() > MAX_LABELS {
            return Err(bad(format!(
                "the samples have more than {MAX_LABELS} labels, the most a classifier learns"
            )));
        }
    }
    let weights: BTreeMap<VersionNumber, &WeightsRecord> =
        snapshot.weights.iter().map(|w| (w.version, w)).collect();
    let mut versions = BTreeSet::new();
    for info in &snapshot.versions {
        check_id("version", info.version)?;
        if !versions.insert(info.version) {
            return Err(bad(format!("version {} appears twice", info.version)));
        }
        let record = weights
            .get(&info.version)
            .ok_or_else(|| bad(format!("version {} has no weights", info.version)))?;
        let actual = sha256_hex(&record.bytes);
        if actual != info.meta.checksum || record.checksum != info.meta.checksum {
            return Err(bad(format!(
                "weights of version {} fail their checksum (sha256 {actual}, recorded {})",
                info.version, info.meta.checksum
            )));
        }
        let head = codec::decode(&record.bytes)
            .map_err(|e| bad(format!("version {}: {e}", info.version)))?;
        if head.labels() != info.meta.labels.as_slice() {
            return Err(bad(format!(
                "version {}: weights and metadata disagree on the labels",
                info.version
            )));
        }
        if info.meta.encoder_sha256 == limits.encoder_sha256 && head.input_dim() != limits.input_dim
        {
            return Err(bad(format!(
                "version {}: its head reads {} values, this store's encoder gives {}",
                info.version,
                head.input_dim(),
                limits.input_dim
            )));
        }
    }
    if weights.len() != versions.len() {
        return Err(bad("weights records without a version".into()));
    }
    if let Some(current) = snapshot.current {
        if !versions.contains(&current) {
            return Err(bad(format!("current version {current} is not in the file")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest samples this library stores — every text and label
    /// byte a control character JSON escapes in six bytes, the largest ids
    /// and the longest times — fit the bound the size cap is built on, so
    /// a store's own export is never over its cap for its samples.
    #[test]
    fn the_largest_samples_fit_the_exported_sample_bound() {
        let text: String = "\u{1}".repeat(MAX_SAMPLE_TEXT_BYTES);
        let label: String = "\u{1}".repeat(MAX_LABEL_CHARS);
        super::super::check_sample_text(&text).unwrap();
        check_label(&label).unwrap();
        let count = 3;
        let snapshot = Snapshot {
            samples: (0..count)
                .map(|i| Sample {
                    id: MAX_ID - i,
                    text: text.clone(),
                    label: label.clone(),
                    time_ms: -f64::MAX / 3.0,
                })
                .collect(),
            ..Snapshot::default()
        };
        let file = write(&snapshot, -f64::MAX / 3.0);
        let limits = ImportLimits {
            encoder_sha256: "",
            input_dim: 1,
            max_samples: count as usize,
        };
        let samples_cap = limits.max_file_bytes() - VERSIONS_ALLOWANCE_BYTES;
        assert!(
            file.len() as u64 <= samples_cap,
            "{} bytes over a cap of {samples_cap}",
            file.len()
        );
        // Tight, not merely safe: the escapes are nearly all of it.
        assert!(file.len() as u64 > samples_cap * 99 / 100);
        assert_eq!(read(&file, &limits).unwrap().samples.len(), count as usize);
    }

    #[test]
    fn a_file_over_the_cap_is_refused_by_its_length_alone() {
        let limits = ImportLimits {
            encoder_sha256: "",
            input_dim: 1,
            max_samples: 0,
        };
        let max = limits.max_file_bytes();
        limits.check_file_size(max).unwrap();
        let err = limits.check_file_size(max + 1).unwrap_err();
        assert_eq!(err.code(), "ImportError");
        assert!(err.to_string().contains("imports at most"), "{err}");
    }
}
