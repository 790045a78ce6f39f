//! What a store keeps, and the backend trait every storage engine implements.
//!
//! Each trait method is one atomic operation (one IndexedDB transaction): it
//! happens completely or not at all, and the rules that must hold across
//! browser tabs (distinct version numbers, never deleting the current or the
//! shipped version, never pointing "current" at a missing version) are
//! checked inside that operation, not before it.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::head::HeadArchitecture;

/// Sample ids and version numbers are allocated by the backend, increasing,
/// never reused.
#[cfg_attr(target_arch = "wasm32", tsify::declare)]
pub type SampleId = u64;
#[cfg_attr(target_arch = "wasm32", tsify::declare)]
pub type VersionNumber = u64;

/// One piece of feedback: "this text is this label".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct Sample {
    pub id: SampleId,
    pub text: String,
    pub label: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: f64,
}

/// A sample before the backend has given it an id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSample {
    pub text: String,
    pub label: String,
    pub time_ms: f64,
}

/// A sample's cached feature vector under one encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedFeatures {
    pub sample_id: SampleId,
    pub values: Vec<f32>,
}

/// Where a head version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub enum VersionStatus {
    /// The generic head that came with the model bundle.
    Shipped,
    /// An update that became (or is eligible to become) current.
    Accepted,
    /// An update kept for inspection that never became current on its own.
    Rejected,
}

/// How an update went, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct VersionMetrics {
    pub train_loss: Option<f32>,
    pub train_accuracy: Option<f32>,
    pub validation_loss: Option<f32>,
    pub validation_accuracy: Option<f32>,
    pub epochs: Option<usize>,
    pub steps: Option<usize>,
    /// The validation gate: this head's accuracy on the held-out slice of
    /// the user's samples, the replaced head's on the same slice, and the
    /// slice's size.
    pub gate_accuracy: Option<f32>,
    pub previous_gate_accuracy: Option<f32>,
    pub gate_samples: Option<usize>,
}

/// A head version: its number and its metadata. Its weights live in a
/// separate [`WeightsRecord`], so listing versions never reads weights.
/// Stored and exported as one flat object (`{ version, parent, status, … }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct VersionInfo {
    pub version: VersionNumber,
    #[serde(flatten)]
    pub meta: VersionMeta,
}

/// What is known of a version besides its number, which the backend gives
/// it when it is stored ([`StoreBackend::commit_version`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct VersionMeta {
    pub parent: Option<VersionNumber>,
    pub status: VersionStatus,
    /// The encoder whose feature vectors the head reads.
    pub encoder_sha256: String,
    pub labels: Vec<String>,
    pub architecture: HeadArchitecture,
    /// Samples the update trained on (0 for a shipped head).
    pub sample_count: usize,
    /// The newest sample the update saw: later samples are "pending".
    #[serde(default)]
    pub trained_through_sample: Option<SampleId>,
    pub metrics: VersionMetrics,
    pub created_ms: f64,
    /// sha256 (hex) of the weights record's bytes.
    pub checksum: String,
}

/// A version's weights ([`crate::head::codec`] bytes) and their checksum.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsRecord {
    pub version: VersionNumber,
    pub checksum: String,
    pub bytes: Vec<u8>,
}

/// Everything a user owns except cached feature vectors (which any encoder
/// can recompute): what an export holds and an import restores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub samples: Vec<Sample>,
    pub versions: Vec<VersionInfo>,
    pub weights: Vec<WeightsRecord>,
    pub current: Option<VersionNumber>,
}

/// A storage engine. Implementations: [`super::memory::MemoryBackend`]
/// (native tests) and, in the browser, `super::indexed_db::IndexedDbBackend`.
///
/// Futures are not `Send`: browser storage lives on one thread.
#[allow(async_fn_in_trait)]
pub trait StoreBackend {
    /// Adds a sample, with its feature vector under `features.0` (an encoder
    /// sha256) if given, in one operation.
    async fn add_sample(
        &self,
        sample: NewSample,
        features: Option<(&str, &[f32])>,
    ) -> Result<Sample>;
    /// Every sample, oldest first.
    async fn samples(&self) -> Result<Vec<Sample>>;
    async fn sample_count(&self) -> Result<usize>;
    /// How many samples have an id above `id`, counted by the engine
    /// without reading them (the pending count, at every correction).
    async fn count_samples_after(&self, id: SampleId) -> Result<usize>;
    /// Deletes samples and all their cached features; returns how many of
    /// `ids` existed.
    async fn delete_samples(&self, ids: &[SampleId]) -> Result<usize>;
    /// Deletes every sample and every cached feature vector.
    async fn delete_all_samples(&self) -> Result<()>;
    /// Caches feature vectors under an encoder; rows whose sample no longer
    /// exists are skipped.
    async fn put_features(&self, encoder_sha256: &str, rows: &[CachedFeatures]) -> Result<()>;
    /// Every cached feature vector under an encoder.
    async fn features(&self, encoder_sha256: &str) -> Result<Vec<CachedFeatures>>;
    /// Every version's metadata, by increasing number.
    async fn versions(&self) -> Result<Vec<VersionInfo>>;
    /// A version's weights record, if it exists.
    async fn weights(&self, version: VersionNumber) -> Result<Option<WeightsRecord>>;
    /// Numbers and stores a new version with its weights and, if
    /// `make_current`, points "current" at it — all in one operation.
    async fn commit_version(
        &self,
        meta: VersionMeta,
        weights: Vec<u8>,
        make_current: bool,
    ) -> Result<VersionInfo>;
    async fn current(&self) -> Result<Option<VersionNumber>>;
    /// Points "current" at an existing version and, if given, sets the
    /// memory mark ([`StoreBackend::memory_from`]) in the same operation.
    async fn set_current(
        &self,
        version: VersionNumber,
        memory_from: Option<SampleId>,
    ) -> Result<()>;
    /// The memory mark: predictions consult the corrections with a larger
    /// id (0, all of them, until a rollback or reset moves it).
    async fn memory_from(&self) -> Result<SampleId>;
    /// Deletes versions and their weights; refuses (deleting nothing) if one
    /// is current or shipped. Missing versions are ignored.
    async fn delete_versions(&self, versions: &[VersionNumber]) -> Result<()>;
    /// Everything but cached features, read consistently.
    async fn snapshot(&self) -> Result<Snapshot>;
    /// Replaces everything (cached features are cleared) in one operation.
    async fn replace_all(&self, snapshot: &Snapshot) -> Result<()>;
    /// Deletes every record in one operation (other tabs holding the store
    /// are told), and goes on with the empty store; the id counters go on,
    /// so an id never names two records.
    async fn erase(&self) -> Result<()>;
}

/// Several [`super::Store`]s (say, one per encoder) can share one backend.
impl<B: StoreBackend + ?Sized> StoreBackend for std::rc::Rc<B> {
    async fn add_sample(
        &self,
        sample: NewSample,
        features: Option<(&str, &[f32])>,
    ) -> Result<Sample> {
        (**self).add_sample(sample, features).await
    }
    async fn samples(&self) -> Result<Vec<Sample>> {
        (**self).samples().await
    }
    async fn sample_count(&self) -> Result<usize> {
        (**self).sample_count().await
    }
    async fn count_samples_after(&self, id: SampleId) -> Result<usize> {
        (**self).count_samples_after(id).await
    }
    async fn delete_samples(&self, ids: &[SampleId]) -> Result<usize> {
        (**self).delete_samples(ids).await
    }
    async fn delete_all_samples(&self) -> Result<()> {
        (**self).delete_all_samples().await
    }
    async fn put_features(&self, encoder_sha256: &str, rows: &[CachedFeatures]) -> Result<()> {
        (**self).put_features(encoder_sha256, rows).await
    }
    async fn features(&self, encoder_sha256: &str) -> Result<Vec<CachedFeatures>> {
        (**self).features(encoder_sha256).await
    }
    async fn versions(&self) -> Result<Vec<VersionInfo>> {
        (**self).versions().await
    }
    async fn weights(&self, version: VersionNumber) -> Result<Option<WeightsRecord>> {
        (**self).weights(version).await
    }
    async fn commit_version(
        &self,
        meta: VersionMeta,
        weights: Vec<u8>,
        make_current: bool,
    ) -> Result<VersionInfo> {
        (**self).commit_version(meta, weights, make_current).await
    }
    async fn current(&self) -> Result<Option<VersionNumber>> {
        (**self).current().await
    }
    async fn set_current(
        &self,
        version: VersionNumber,
        memory_from: Option<SampleId>,
    ) -> Result<()> {
        (**self).set_current(version, memory_from).await
    }
    async fn memory_from(&self) -> Result<SampleId> {
        (**self).memory_from().await
    }
    async fn delete_versions(&self, versions: &[VersionNumber]) -> Result<()> {
        (**self).delete_versions(versions).await
    }
    async fn snapshot(&self) -> Result<Snapshot> {
        (**self).snapshot().await
    }
    async fn replace_all(&self, snapshot: &Snapshot) -> Result<()> {
        (**self).replace_all(snapshot).await
    }
    async fn erase(&self) -> Result<()> {
        (**self).erase().await
    }
}
