//! The on-device store: feedback samples with their cached feature vectors,
//! and every head version with a "current" pointer — the seed's version
//! management and correction database.
//!
//! - [`backend`]: the records and the [`StoreBackend`] trait, one atomic
//!   operation per method;
//! - [`memory`]: an in-memory backend (native tests, no persistence);
//! - `indexed_db` (wasm32): the browser's IndexedDB;
//! - [`export`]: the export file;
//! - [`Store`] (here): the rules on top of any backend — validation, sample
//!   eviction, checksums, falling back past corrupt records, encoder changes,
//!   retention, rollback.

pub mod backend;
pub mod export;
#[cfg(target_arch = "wasm32")]
pub mod indexed_db;
pub mod memory;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

pub use crate::checksum::sha256_hex;
use crate::error::{Error, Result};
use crate::head::personal::{train_personal_head, with_labels, RehearsalRows, UserSamples};
use crate::head::{check_label, codec, Head};
use crate::{UpdateConfig, UpdateEvent, UpdateOutcome};
pub use backend::*;

/// A sample's text is what the user typed or pasted; the encoder reads only
/// its first `maxSeqLen` tokens, so anything longer is a paste by mistake.
pub const MAX_SAMPLE_TEXT_BYTES: usize = 16 * 1024;

/// A sample id or version number given as a JavaScript number: a whole
/// number in 1..=2^53 − 1, or a `ConfigError` naming `what` — never
/// rounded or clamped (`deleteSample(1.5)` must not delete sample 1).
pub fn id_from_number(what: &str, value: f64) -> Result<u64> {
    let max = export::MAX_ID as f64;
    if value.fract() == 0.0 && (1.0..=max).contains(&value) {
        Ok(value as u64)
    } else {
        Err(Error::Config(format!(
            "{what} must be a whole number from 1 to 2^53 − 1; got {value}"
        )))
    }
}

/// Samples [`Store::training_data_embedding_missing`] hands `embed` at
/// once: enough that [`crate::Encoder::embed`], which sorts its texts by
/// length into runs of 32, pads each run only to texts of similar length
/// (runs of 32 in arrival order embed 1.6× slower natively), and few enough that the
/// vectors of each slice are cached before the next (an interrupted
/// re-embedding keeps what it did).
pub const EMBED_MISSING_TEXTS: usize = 512;

/// Where [`Store::training_data_embedding_missing`] is when it hands
/// `embed` a slice: samples embedded before it, of all it embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingSoFar {
    pub done: usize,
    pub total: usize,
}

/// Limits a store keeps to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[cfg_attr(
    target_arch = "wasm32",
    derive(tsify::Tsify),
    tsify(missing_as_null, rename = "StoreOptions")
)]
pub struct StorePolicy {
    /// At most this many samples (default 5,000). Past it, adding a sample
    /// evicts the oldest samples of the label with the most samples, so rare
    /// labels (the ones a user invented) keep their few examples — down to
    /// 1% under the cap (`StorePolicy::eviction_low_water`), so that a store
    /// at its cap reads every sample to choose what goes once per ~1% of new
    /// corrections rather than at every one.
    pub max_samples: usize,
    /// Keep the newest this-many versions (default 20); older ones are
    /// deleted after each save, except the current and the shipped head,
    /// which are always kept.
    pub keep_versions: usize,
}

impl Default for StorePolicy {
    fn default() -> Self {
        StorePolicy {
            max_samples: 5_000,
            keep_versions: 20,
        }
    }
}

impl StorePolicy {
    /// How many samples an eviction leaves: `max_samples` less 1% (rounded
    /// down; a cap under 100 is kept exactly).
    pub fn eviction_low_water(&self) -> usize {
        self.max_samples - self.max_samples / 100
    }

    pub fn validate(&self) -> Result<()> {
        if self.max_samples == 0 {
            return Err(Error::Config("maxSamples must be at least 1".into()));
        }
        if self.keep_versions == 0 {
            return Err(Error::Config("keepVersions must be at least 1".into()));
        }
        Ok(())
    }
}

/// A sample that was added, and the ones evicted to make room.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct AddedSample {
    pub sample: Sample,
    pub evicted: Vec<SampleId>,
}

/// Something wrong found while loading, reported to the caller rather than
/// swallowed. `name` is the error code ([`Error::code`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct StoreProblem {
    pub name: String,
    pub message: String,
    pub version: Option<VersionNumber>,
}

impl StoreProblem {
    fn from_error(error: &Error, version: Option<VersionNumber>) -> Self {
        StoreProblem {
            name: error.code().into(),
            message: error.to_string(),
            version,
        }
    }
}

/// The head in use, and what had to be skipped to find it.
#[derive(Debug, Clone)]
pub struct LoadedHead {
    pub info: VersionInfo,
    pub head: Head,
    pub problems: Vec<StoreProblem>,
    /// The stored current head was trained for another encoder: the samples
    /// need re-embedding and a retrained head ([`Store::retrain_for_encoder`]).
    pub encoder_changed: bool,
}

/// Samples joined with their cached feature vectors, ready for an update.
#[derive(Debug, Clone, Default)]
pub struct TrainingData {
    pub sample_ids: Vec<SampleId>,
    /// Row-major, `sample_ids.len() × dim`.
    pub features: Vec<f32>,
    pub labels: Vec<String>,
    /// Samples with no cached vector under this store's encoder.
    pub missing: Vec<Sample>,
}

impl TrainingData {
    /// The rows of the samples after `mark` (a memory mark, see
    /// [`Store::rollback`]).
    pub fn rows_after(&self, mark: SampleId) -> impl Iterator<Item = usize> + '_ {
        (0..self.sample_ids.len()).filter(move |&row| self.sample_ids[row] > mark)
    }
}

/// What to record with a new version (`SaveOptions` in JavaScript).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[cfg_attr(
    target_arch = "wasm32",
    derive(tsify::Tsify),
    tsify(missing_as_null, rename = "SaveOptions")
)]
pub struct SaveDetails {
    /// The version this one was trained from.
    pub parent: Option<VersionNumber>,
    /// Keep the version without making it current (a candidate that failed
    /// a validation gate).
    pub rejected: bool,
    pub sample_count: usize,
    pub trained_through_sample: Option<SampleId>,
    pub metrics: backend::VersionMetrics,
}

impl From<&UpdateOutcome> for backend::VersionMetrics {
    fn from(o: &UpdateOutcome) -> Self {
        backend::VersionMetrics {
            train_loss: Some(o.train_loss),
            train_accuracy: Some(o.train_accuracy),
            validation_loss: o.validation_loss,
            validation_accuracy: o.validation_accuracy,
            epochs: Some(o.epochs),
            steps: Some(o.steps),
            ..Default::default()
        }
    }
}

/// The store for one encoder and its shipped head, over any backend.
pub struct Store<B> {
    backend: B,
    encoder_sha256: String,
    /// The shipped head's version; an import may renumber it.
    shipped: RefCell<VersionInfo>,
    shipped_head: Head,
    input_dim: usize,
    policy: StorePolicy,
}

impl<B: StoreBackend> Store<B> {
    /// Opens a store for `encoder_sha256`, whose generic head is `shipped`.
    /// The shipped head is stored as a version the first time (and becomes
    /// current if nothing else is), so reset always has something to go to.
    pub async fn open(
        backend: B,
        encoder_sha256: &str,
        shipped: &Head,
        policy: StorePolicy,
        now_ms: f64,
    ) -> Result<Self> {
        policy.validate()?;
        let shipped_info = ensure_shipped(&backend, encoder_sha256, shipped, now_ms).await?;
        Ok(Store {
            backend,
            encoder_sha256: encoder_sha256.into(),
            shipped: RefCell::new(shipped_info),
            shipped_head: shipped.clone(),
            input_dim: shipped.input_dim(),
            policy,
        })
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn encoder_sha256(&self) -> &str {
        &self.encoder_sha256
    }

    /// The shipped head's version.
    pub fn shipped(&self) -> VersionInfo {
        self.shipped.borrow().clone()
    }

    pub fn policy(&self) -> StorePolicy {
        self.policy
    }

    // ---- samples -------------------------------------------------------

    /// Stores "`text` is `label`", with its feature vector under this
    /// store's encoder if the caller already has it, then evicts past the
    /// cap. Nothing is stored if the text or label is invalid.
    pub async fn add_sample(
        &self,
        text: &str,
        label: &str,
        time_ms: f64,
        features: Option<&[f32]>,
    ) -> Result<AddedSample> {
        check_new_sample(text, label)?;
        if let Some(values) = features {
            self.check_vector(values)?;
        }
        let sample = self
            .backend
            .add_sample(
                NewSample {
                    text: text.into(),
                    label: label.into(),
                    time_ms,
                },
                features.map(|v| (self.encoder_sha256.as_str(), v)),
            )
            .await?;
        let evicted = if self.backend.sample_count().await? > self.policy.max_samples {
            let victims = eviction_victims(
                &self.backend.samples().await?,
                self.policy.eviction_low_water(),
            );
            self.backend.delete_samples(&victims).await?;
            victims
        } else {
            Vec::new()
        };
        Ok(AddedSample { sample, evicted })
    }

    pub async fn samples(&self) -> Result<Vec<Sample>> {
        self.backend.samples().await
    }

    pub async fn sample_count(&self) -> Result<usize> {
        self.backend.sample_count().await
    }

    /// How many samples have an id above `id`, without reading them.
    pub async fn count_samples_after(&self, id: SampleId) -> Result<usize> {
        self.backend.count_samples_after(id).await
    }

    /// Deletes one sample and its cached vectors.
    pub async fn delete_sample(&self, id: SampleId) -> Result<()> {
        match self.backend.delete_samples(&[id]).await? {
            0 => Err(Error::NotFound(format!("sample {id}"))),
            _ => Ok(()),
        }
    }

    /// Deletes every sample and its cached vectors. Versions stay.
    pub async fn delete_all_samples(&self) -> Result<()> {
        self.backend.delete_all_samples().await
    }

    /// Deletes everything the store holds (samples, cached vectors,
    /// versions) and goes on holding the shipped head, current, as on a
    /// first visit.
    pub async fn erase_everything(&self, now_ms: f64) -> Result<VersionInfo> {
        self.backend.erase().await?;
        self.restore_shipped(now_ms).await
    }

    /// After the backend's contents were replaced (an import, an erase):
    /// stores the shipped head again if it is not there, and remembers its
    /// version (which may have been renumbered).
    async fn restore_shipped(&self, now_ms: f64) -> Result<VersionInfo> {
        let shipped = ensure_shipped(
            &self.backend,
            &self.encoder_sha256,
            &self.shipped_head,
            now_ms,
        )
        .await?;
        *self.shipped.borrow_mut() = shipped.clone();
        Ok(shipped)
    }

    /// The name this method had before it matched the JavaScript one.
    #[deprecated(note = "renamed to cache_vectors (JavaScript: cacheVectors)")]
    pub async fn cache_features(&self, rows: &[CachedFeatures]) -> Result<()> {
        self.cache_vectors(rows).await
    }

    /// Caches vectors (this store's encoder) for samples that lacked them.
    pub async fn cache_vectors(&self, rows: &[CachedFeatures]) -> Result<()> {
        for row in rows {
            self.check_vector(&row.values)?;
        }
        self.backend.put_features(&self.encoder_sha256, rows).await
    }

    /// Every sample with its cached vector; samples without one are listed
    /// in `missing` for the caller to embed (and cache).
    pub async fn training_data(&self) -> Result<TrainingData> {
        let samples = self.backend.samples().await?;
        let mut cached: HashMap<SampleId, Vec<f32>> = self
            .backend
            .features(&self.encoder_sha256)
            .await?
            .into_iter()
            .filter(|row| row.values.len() == self.input_dim)
            .map(|row| (row.sample_id, row.values))
            .collect();
        let mut data = TrainingData::default();
        for sample in samples {
            match cached.remove(&sample.id) {
                Some(values) => {
                    data.sample_ids.push(sample.id);
                    data.features.extend_from_slice(&values);
                    data.labels.push(sample.label);
                }
                None => data.missing.push(sample),
            }
        }
        Ok(data)
    }

    /// [`Store::training_data`] with no sample missing: samples without a
    /// vector under this encoder (imported, or stored before an encoder
    /// change) are embedded by `embed` (texts and how far the job is →
    /// `texts.len() × dim` floats) [`EMBED_MISSING_TEXTS`] at a time, and
    /// cached: an error or a cancel keeps the slices done.
    pub async fn training_data_embedding_missing(
        &self,
        embed: &mut impl AsyncFnMut(&[&str], MissingSoFar) -> Result<Vec<f32>>,
    ) -> Result<TrainingData> {
        let data = self.training_data().await?;
        if data.missing.is_empty() {
            return Ok(data);
        }
        let total = data.missing.len();
        for (n, chunk) in data.missing.chunks(EMBED_MISSING_TEXTS).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|s| s.text.as_str()).collect();
            let so_far = MissingSoFar {
                done: n * EMBED_MISSING_TEXTS,
                total,
            };
            let vectors = embed(&texts, so_far).await?;
            self.check_vectors(&vectors, texts.len())?;
            let rows = self.feature_rows(chunk, &vectors);
            self.backend
                .put_features(&self.encoder_sha256, &rows)
                .await?;
        }
        self.training_data().await
    }

    // ---- versions ------------------------------------------------------

    /// Saves `head` as a new version for this store's encoder. Weights,
    /// metadata and (unless rejected) the current pointer are written in one
    /// operation; then versions past the retention limit are deleted.
    pub async fn save_version(
        &self,
        head: &Head,
        details: SaveDetails,
        now_ms: f64,
    ) -> Result<VersionInfo> {
        if head.input_dim() != self.input_dim {
            return Err(Error::ShapeMismatch {
                what: "the head's input and the encoder's output".into(),
                expected: format!("{} features", self.input_dim),
                found: format!("{} features", head.input_dim()),
            });
        }
        let bytes = codec::encode(head);
        let meta = VersionMeta {
            parent: details.parent,
            status: if details.rejected {
                VersionStatus::Rejected
            } else {
                VersionStatus::Accepted
            },
            encoder_sha256: self.encoder_sha256.clone(),
            labels: head.labels().to_vec(),
            architecture: head.architecture(),
            sample_count: details.sample_count,
            trained_through_sample: details.trained_through_sample,
            metrics: details.metrics,
            created_ms: now_ms,
            checksum: sha256_hex(&bytes),
        };
        let info = self
            .backend
            .commit_version(meta, bytes, !details.rejected)
            .await?;
        self.apply_retention().await?;
        Ok(info)
    }

    /// Every version, by increasing number.
    pub async fn versions(&self) -> Result<Vec<VersionInfo>> {
        self.backend.versions().await
    }

    pub async fn current_version(&self) -> Result<Option<VersionNumber>> {
        self.backend.current().await
    }

    /// Reads a version's weights and checks them against both checksums
    /// (the weights record's own and the version's) and its metadata.
    pub async fn load_version(&self, version: VersionNumber) -> Result<(VersionInfo, Head)> {
        let info = self
            .backend
            .versions()
            .await?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| Error::NotFound(format!("head version {version}")))?;
        let head = self.verified_head(&info).await?;
        Ok((info, head))
    }

    async fn verified_head(&self, info: &VersionInfo) -> Result<Head> {
        let corrupt = |detail: String| Error::CorruptRecord {
            what: format!("weights of version {}", info.version),
            detail,
        };
        let record = self
            .backend
            .weights(info.version)
            .await?
            .ok_or_else(|| corrupt("the weights record is missing".into()))?;
        let actual = sha256_hex(&record.bytes);
        if actual != info.meta.checksum || record.checksum != info.meta.checksum {
            return Err(corrupt(format!(
                "checksum mismatch: the bytes hash to {actual}, the version records {}",
                info.meta.checksum
            )));
        }
        let head = codec::decode(&record.bytes)?;
        if head.labels() != info.meta.labels.as_slice() {
            return Err(corrupt(
                "weights and metadata disagree on the labels".into(),
            ));
        }
        Ok(head)
    }

    /// The head to use: the current version if it is intact and was trained
    /// for this encoder; otherwise the newest usable one along its parents,
    /// then the newest usable accepted version, then the shipped head.
    /// Whatever was skipped is in `problems`, and "current" is moved to what
    /// was loaded so the next start does not trip over it again.
    pub async fn load_current(&self) -> Result<LoadedHead> {
        let versions: BTreeMap<VersionNumber, VersionInfo> = self
            .backend
            .versions()
            .await?
            .into_iter()
            .map(|v| (v.version, v))
            .collect();
        let current = self.backend.current().await?;
        let mut order: Vec<VersionNumber> = Vec::new();
        let mut next = current;
        while let Some(v) = next.filter(|v| !order.contains(v)) {
            order.push(v);
            next = versions.get(&v).and_then(|i| i.meta.parent);
        }
        let newest_accepted: Vec<VersionNumber> = versions
            .values()
            .rev()
            .filter(|i| i.meta.status == VersionStatus::Accepted && !order.contains(&i.version))
            .map(|i| i.version)
            .collect();
        order.extend(newest_accepted);
        order.push(self.shipped().version);

        let mut problems = Vec::new();
        let mut encoder_changed = false;
        for v in order {
            let Some(info) = versions.get(&v) else {
                if Some(v) == current {
                    let e = Error::NotFound(format!("the current head version {v}"));
                    problems.push(StoreProblem::from_error(&e, Some(v)));
                }
                continue;
            };
            if info.meta.encoder_sha256 != self.encoder_sha256 {
                if Some(v) == current {
                    encoder_changed = true;
                    problems.push(StoreProblem {
                        name: "EncoderChangedError".into(),
                        message: format!(
                            "the current head (version {v}) was trained for encoder {}; this encoder is {}: \
                             its samples need re-embedding and a retrained head",
                            short(&info.meta.encoder_sha256),
                            short(&self.encoder_sha256)
                        ),
                        version: Some(v),
                    });
                }
                continue;
            }
            if info.meta.status == VersionStatus::Rejected && Some(v) != current {
                continue;
            }
            match self.verified_head(info).await {
                Ok(head) => {
                    if Some(v) != current {
                        self.backend.set_current(v, None).await?;
                    }
                    return Ok(LoadedHead {
                        info: info.clone(),
                        head,
                        problems,
                        encoder_changed,
                    });
                }
                Err(e @ Error::CorruptRecord { .. }) => {
                    problems.push(StoreProblem::from_error(&e, Some(v)))
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::CorruptRecord {
            what: "every head version, the shipped head included".into(),
            detail: problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    /// Makes an earlier version current again, after checking it is intact
    /// and was trained for this encoder, and moves the memory mark past
    /// every stored correction: the head goes back to that version, and
    /// predictions stop consulting the corrections made so far (they stay
    /// stored, and the next update learns them again). Returns the version.
    pub async fn rollback(&self, version: VersionNumber) -> Result<VersionInfo> {
        let (info, _) = self.load_version(version).await?;
        if info.meta.encoder_sha256 != self.encoder_sha256 {
            return Err(Error::InvalidState(format!(
                "version {version} was trained for encoder {}, not this one ({})",
                short(&info.meta.encoder_sha256),
                short(&self.encoder_sha256)
            )));
        }
        let newest = self.backend.samples().await?.iter().map(|s| s.id).max();
        let mark = newest.unwrap_or(0).max(self.memory_from().await?);
        self.backend.set_current(version, Some(mark)).await?;
        Ok(info)
    }

    /// Makes the shipped head current again (a rollback to it). Samples and
    /// versions stay.
    pub async fn reset_to_shipped(&self) -> Result<VersionInfo> {
        self.rollback(self.shipped().version).await
    }

    /// The corrections predictions consult: every sample after the memory
    /// mark (see [`Store::rollback`]) with its cached vector under this
    /// encoder.
    pub async fn remembered_corrections(&self) -> Result<TrainingData> {
        let mark = self.memory_from().await?;
        let data = self.training_data().await?;
        let dim = self.input_dim;
        let rows: Vec<usize> = data.rows_after(mark).collect();
        Ok(TrainingData {
            sample_ids: rows.iter().map(|&row| data.sample_ids[row]).collect(),
            features: rows
                .iter()
                .flat_map(|&row| data.features[row * dim..(row + 1) * dim].iter().copied())
                .collect(),
            labels: rows.iter().map(|&row| data.labels[row].clone()).collect(),
            missing: data.missing.into_iter().filter(|s| s.id > mark).collect(),
        })
    }

    /// The memory mark: predictions consult the corrections after it.
    pub async fn memory_from(&self) -> Result<SampleId> {
        self.backend.memory_from().await
    }

    /// Deletes one version; the current and the shipped head are refused.
    pub async fn delete_version(&self, version: VersionNumber) -> Result<()> {
        if !self
            .backend
            .versions()
            .await?
            .iter()
            .any(|v| v.version == version)
        {
            return Err(Error::NotFound(format!("head version {version}")));
        }
        self.backend.delete_versions(&[version]).await
    }

    /// Deletes versions older than the newest `keep_versions`, never the
    /// current or a shipped head. Returns what was deleted.
    pub async fn apply_retention(&self) -> Result<Vec<VersionNumber>> {
        let versions = self.backend.versions().await?;
        let current = self.backend.current().await?;
        let doomed: Vec<VersionNumber> = versions
            .iter()
            .rev()
            .skip(self.policy.keep_versions)
            .filter(|v| v.meta.status != VersionStatus::Shipped && Some(v.version) != current)
            .map(|v| v.version)
            .collect();
        if !doomed.is_empty() {
            match self.backend.delete_versions(&doomed).await {
                // Another tab made one of them current meanwhile: keep all
                // this time; the next save retries.
                Err(Error::InvalidState(_)) => return Ok(Vec::new()),
                other => other?,
            }
        }
        Ok(doomed)
    }

    // ---- encoder change ------------------------------------------------

    /// After an encoder change: embeds the samples that have no vector under
    /// this encoder (`embed` gets texts, returns `texts.len() × dim` floats),
    /// caches the vectors, trains the shipped head on all samples (labels it
    /// lacks are added; `observer` sees the update's events and may cancel)
    /// and saves the result as the current version.
    /// Returns `None` if there are no samples to learn from.
    pub async fn retrain_for_encoder(
        &self,
        embed: &mut dyn FnMut(&[&str]) -> Result<Vec<f32>>,
        config: &UpdateConfig,
        now_ms: &dyn Fn() -> f64,
        observer: &mut dyn FnMut(&UpdateEvent) -> ControlFlow<()>,
    ) -> Result<Option<(VersionInfo, UpdateOutcome)>> {
        let data = self
            .training_data_embedding_missing(&mut async |texts: &[&str], _| embed(texts))
            .await?;
        if data.labels.is_empty() {
            return Ok(None);
        }
        // The same path as every update (crate::head::personal), with no
        // rehearsal rows (the store has no bundle) and no gate: all samples.
        let (start, labels) = with_labels(&self.shipped_head, &data.labels)?;
        let all: Vec<usize> = (0..labels.len()).collect();
        let outcome = train_personal_head(
            &start,
            UserSamples {
                features: &data.features,
                labels: &labels,
                new_labels_from: self.shipped_head.labels().len(),
                own_labels_from: self.shipped_head.labels().len(),
                held_out: &[],
                rehearsal_similarity: None,
            },
            &all,
            RehearsalRows::default(),
            config,
            now_ms,
            observer,
        )?
        .outcome;
        let details = SaveDetails {
            parent: Some(self.shipped().version),
            rejected: false,
            sample_count: data.labels.len(),
            trained_through_sample: data.sample_ids.iter().copied().max(),
            metrics: (&outcome).into(),
        };
        let info = self.save_version(&outcome.head, details, now_ms()).await?;
        Ok(Some((info, outcome)))
    }

    // ---- export / import -----------------------------------------------

    /// Everything the user owns, as one checksummed file.
    pub async fn export(&self, now_ms: f64) -> Result<Vec<u8>> {
        Ok(export::write(&self.backend.snapshot().await?, now_ms))
    }

    /// Replaces the store's contents with an export file's, after checking
    /// all of it; on any error the store is unchanged. The shipped head is
    /// stored again if the file lacks it. Returns the number of samples and
    /// versions restored.
    pub async fn import(&self, file: &[u8], now_ms: f64) -> Result<(usize, usize)> {
        let snapshot = export::read(file, &self.import_limits())?;
        self.backend.replace_all(&snapshot).await?;
        self.restore_shipped(now_ms).await?;
        Ok((snapshot.samples.len(), snapshot.versions.len()))
    }

    /// [`Store::import`] with the imported samples' vectors: `embed` gets
    /// every text of the (checked) file before anything is written, so an
    /// error or a cancel there changes nothing. The vectors are cached
    /// after the import, in a second operation: if that one fails (a full
    /// disk), the import stands and the samples are embedded again when an
    /// update needs them (see [`Store::training_data_embedding_missing`]).
    pub async fn import_embedding(
        &self,
        file: &[u8],
        now_ms: f64,
        embed: &mut impl AsyncFnMut(&[&str]) -> Result<Vec<f32>>,
    ) -> Result<(usize, usize)> {
        let snapshot = export::read(file, &self.import_limits())?;
        let texts: Vec<&str> = snapshot.samples.iter().map(|s| s.text.as_str()).collect();
        let vectors = if texts.is_empty() {
            Vec::new()
        } else {
            embed(&texts).await?
        };
        self.check_vectors(&vectors, texts.len())?;
        self.backend.replace_all(&snapshot).await?;
        self.restore_shipped(now_ms).await?;
        let rows = self.feature_rows(&snapshot.samples, &vectors);
        if !rows.is_empty() {
            // Not an error of the import's: it is stored (see above).
            let _ = self.backend.put_features(&self.encoder_sha256, &rows).await;
        }
        Ok((snapshot.samples.len(), snapshot.versions.len()))
    }

    /// Each sample's vector (`vectors`: row-major, one row per sample, in
    /// order) as the record the backend caches.
    fn feature_rows(&self, samples: &[Sample], vectors: &[f32]) -> Vec<CachedFeatures> {
        samples
            .iter()
            .zip(vectors.chunks_exact(self.input_dim))
            .map(|(s, v)| CachedFeatures {
                sample_id: s.id,
                values: v.to_vec(),
            })
            .collect()
    }

    /// What an import into this store must fit.
    pub fn import_limits(&self) -> export::ImportLimits<'_> {
        export::ImportLimits {
            encoder_sha256: &self.encoder_sha256,
            input_dim: self.input_dim,
            max_samples: self.policy.max_samples,
        }
    }

    // ---- checks ----------------------------------------------------------

    fn check_vector(&self, values: &[f32]) -> Result<()> {
        self.check_vectors(values, 1)
    }

    fn check_vectors(&self, values: &[f32], rows: usize) -> Result<()> {
        if values.len() != rows * self.input_dim {
            return Err(Error::ShapeMismatch {
                what: "feature vectors and the head's input".into(),
                expected: format!("{rows} × {} values", self.input_dim),
                found: format!("{} values", values.len()),
            });
        }
        crate::head::check_finite("feature vectors", values)
    }
}

/// Finds the stored copy of `shipped` for `encoder_sha256`, storing it
/// first if there is none (current too, if nothing is current).
async fn ensure_shipped<B: StoreBackend>(
    backend: &B,
    encoder_sha256: &str,
    shipped: &Head,
    now_ms: f64,
) -> Result<VersionInfo> {
    let bytes = codec::encode(shipped);
    let checksum = sha256_hex(&bytes);
    let existing = backend.versions().await?.into_iter().find(|v| {
        v.meta.status == VersionStatus::Shipped
            && v.meta.encoder_sha256 == encoder_sha256
            && v.meta.checksum == checksum
    });
    if let Some(info) = existing {
        return Ok(info);
    }
    let meta = VersionMeta {
        parent: None,
        status: VersionStatus::Shipped,
        encoder_sha256: encoder_sha256.into(),
        labels: shipped.labels().to_vec(),
        architecture: shipped.architecture(),
        sample_count: 0,
        trained_through_sample: None,
        metrics: Default::default(),
        created_ms: now_ms,
        checksum,
    };
    let first = backend.current().await?.is_none();
    backend.commit_version(meta, bytes, first).await
}

/// Whether "`text` is `label`" can be stored: what [`Store::add_sample`]
/// checks first, and what a caller checks before it pays for embedding
/// the text.
pub fn check_new_sample(text: &str, label: &str) -> Result<()> {
    check_sample_text(text)?;
    check_label(label)
}

pub(crate) fn check_sample_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::InvalidSample(
            "the text is empty or only whitespace; there is nothing to learn from".into(),
        ));
    }
    if text.len() > MAX_SAMPLE_TEXT_BYTES {
        return Err(Error::InvalidSample(format!(
            "the text is {} bytes; a sample holds at most {MAX_SAMPLE_TEXT_BYTES} \
             (the encoder reads only its first tokens)",
            text.len()
        )));
    }
    Ok(())
}

/// The first 12 hex digits of a sha256, for messages.
fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Which samples to delete so that at most `max` remain: repeatedly the
/// oldest sample of the label with the most samples (ties: the label whose
/// oldest sample is older).
pub fn eviction_victims(samples: &[Sample], max: usize) -> Vec<SampleId> {
    let mut by_label: BTreeMap<&str, std::collections::VecDeque<&Sample>> = BTreeMap::new();
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.time_ms.total_cmp(&b.time_ms).then(a.id.cmp(&b.id)));
    for s in sorted {
        by_label.entry(&s.label).or_default().push_back(s);
    }
    let mut victims = Vec::new();
    let mut remaining = samples.len();
    while remaining > max {
        let queue = by_label
            .values_mut()
            .filter(|q| !q.is_empty())
            .max_by(|a, b| {
                a.len()
                    .cmp(&b.len())
                    .then_with(|| b[0].time_ms.total_cmp(&a[0].time_ms))
                    .then_with(|| b[0].id.cmp(&a[0].id))
            })
            .expect("remaining > max ≥ 0 means a sample is left");
        victims.push(queue.pop_front().expect("non-empty").id);
        remaining -= 1;
    }
    victims
}
