//! The in-memory backend: the same contract as IndexedDB, for native tests
//! and for apps that want no persistence. An optional byte quota makes it
//! fail the way a full disk does (nothing of the operation is applied).

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::backend::*;
use crate::error::{Error, Result};

#[derive(Default, Clone)]
struct State {
    samples: BTreeMap<SampleId, Sample>,
    /// (encoder sha256, sample id) → vector.
    features: BTreeMap<(String, SampleId), Vec<f32>>,
    versions: BTreeMap<VersionNumber, VersionInfo>,
    weights: BTreeMap<VersionNumber, WeightsRecord>,
    current: Option<VersionNumber>,
    memory_from: SampleId,
    next_sample: SampleId,
    next_version: VersionNumber,
}

impl State {
    /// Roughly what the data would take on disk.
    fn bytes(&self) -> usize {
        let samples: usize = self
            .samples
            .values()
            .map(|s| s.text.len() + s.label.len() + 24)
            .sum();
        let features: usize = self
            .features
            .iter()
            .map(|((e, _), v)| e.len() + 8 + 4 * v.len())
            .sum();
        let weights: usize = self.weights.values().map(|w| w.bytes.len() + 80).sum();
        samples + features + weights + 512 * self.versions.len()
    }
}

/// Keeps everything in memory; lost when dropped.
#[derive(Default)]
pub struct MemoryBackend {
    state: RefCell<State>,
    quota_bytes: Option<usize>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend that refuses any operation that would take it over
    /// `quota_bytes`, with [`Error::QuotaExceeded`], as a full disk would.
    pub fn with_quota(quota_bytes: usize) -> Self {
        MemoryBackend {
            quota_bytes: Some(quota_bytes),
            ..Self::default()
        }
    }

    /// Runs `change` on a copy of the state and keeps the copy only if the
    /// change succeeded and fits the quota: every operation is all or nothing.
    fn transact<T>(
        &self,
        operation: &str,
        change: impl FnOnce(&mut State) -> Result<T>,
    ) -> Result<T> {
        let mut draft = self.state.borrow().clone();
        let out = change(&mut draft)?;
        if let Some(quota) = self.quota_bytes {
            let needed = draft.bytes();
            if needed > quota {
                return Err(Error::QuotaExceeded {
                    operation: operation.into(),
                    message: format!("{needed} bytes needed, quota {quota}"),
                });
            }
        }
        *self.state.borrow_mut() = draft;
        Ok(out)
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.borrow())
    }

    /// Test hook: lets tests damage a stored record the way a disk fault or
    /// a buggy writer would.
    pub fn tamper_weights(&self, version: VersionNumber, f: impl FnOnce(&mut WeightsRecord)) {
        if let Some(record) = self.state.borrow_mut().weights.get_mut(&version) {
            f(record);
        }
    }
}

impl StoreBackend for MemoryBackend {
    async fn add_sample(
        &self,
        sample: NewSample,
        features: Option<(&str, &[f32])>,
    ) -> Result<Sample> {
        self.transact("adding a sample", |s| {
            s.next_sample += 1;
            let stored = Sample {
                id: s.next_sample,
                text: sample.text,
                label: sample.label,
                time_ms: sample.time_ms,
            };
            s.samples.insert(stored.id, stored.clone());
            if let Some((encoder, values)) = features {
                s.features
                    .insert((encoder.to_string(), stored.id), values.to_vec());
            }
            Ok(stored)
        })
    }

    async fn samples(&self) -> Result<Vec<Sample>> {
        Ok(self.read(|s| s.samples.values().cloned().collect()))
    }

    async fn sample_count(&self) -> Result<usize> {
        Ok(self.read(|s| s.samples.len()))
    }

    async fn count_samples_after(&self, id: SampleId) -> Result<usize> {
        Ok(self.read(|s| s.samples.range(id.saturating_add(1)..).count()))
    }

    async fn delete_samples(&self, ids: &[SampleId]) -> Result<usize> {
        self.transact("deleting samples", |s| {
            let removed = ids
                .iter()
                .filter(|id| s.samples.remove(id).is_some())
                .count();
            s.features.retain(|(_, id), _| !ids.contains(id));
            Ok(removed)
        })
    }

    async fn delete_all_samples(&self) -> Result<()> {
        self.transact("deleting all samples", |s| {
            s.samples.clear();
            s.features.clear();
            Ok(())
        })
    }

    async fn put_features(&self, encoder_sha256: &str, rows: &[CachedFeatures]) -> Result<()> {
        self.transact("caching feature vectors", |s| {
            for row in rows {
                if s.samples.contains_key(&row.sample_id) {
                    s.features.insert(
                        (encoder_sha256.to_string(), row.sample_id),
                        row.values.clone(),
                    );
                }
            }
            Ok(())
        })
    }

    async fn features(&self, encoder_sha256: &str) -> Result<Vec<CachedFeatures>> {
        Ok(self.read(|s| {
            s.features
                .iter()
                .filter(|((e, _), _)| e == encoder_sha256)
                .map(|((_, id), v)| CachedFeatures {
                    sample_id: *id,
                    values: v.clone(),
                })
                .collect()
        }))
    }

    async fn versions(&self) -> Result<Vec<VersionInfo>> {
        Ok(self.read(|s| s.versions.values().cloned().collect()))
    }

    async fn weights(&self, version: VersionNumber) -> Result<Option<WeightsRecord>> {
        Ok(self.read(|s| s.weights.get(&version).cloned()))
    }

    async fn commit_version(
        &self,
        meta: VersionMeta,
        weights: Vec<u8>,
        make_current: bool,
    ) -> Result<VersionInfo> {
        self.transact("saving a head version", |s| {
            s.next_version += 1;
            let info = VersionInfo {
                version: s.next_version,
                meta,
            };
            s.weights.insert(
                info.version,
                WeightsRecord {
                    version: info.version,
                    checksum: info.meta.checksum.clone(),
                    bytes: weights,
                },
            );
            s.versions.insert(info.version, info.clone());
            if make_current {
                s.current = Some(info.version);
            }
            Ok(info)
        })
    }

    async fn current(&self) -> Result<Option<VersionNumber>> {
        Ok(self.read(|s| s.current))
    }

    async fn set_current(
        &self,
        version: VersionNumber,
        memory_from: Option<SampleId>,
    ) -> Result<()> {
        self.transact("changing the current version", |s| {
            if !s.versions.contains_key(&version) {
                return Err(Error::NotFound(format!("head version {version}")));
            }
            s.current = Some(version);
            if let Some(mark) = memory_from {
                s.memory_from = mark;
            }
            Ok(())
        })
    }

    async fn memory_from(&self) -> Result<SampleId> {
        Ok(self.read(|s| s.memory_from))
    }

    async fn delete_versions(&self, versions: &[VersionNumber]) -> Result<()> {
        self.transact("deleting versions", |s| {
            for v in versions {
                refuse_protected(*v, s.current, s.versions.get(v))?;
            }
            for v in versions {
                s.versions.remove(v);
                s.weights.remove(v);
            }
            Ok(())
        })
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.read(|s| Snapshot {
            samples: s.samples.values().cloned().collect(),
            versions: s.versions.values().cloned().collect(),
            weights: s.weights.values().cloned().collect(),
            current: s.current,
        }))
    }

    async fn replace_all(&self, snapshot: &Snapshot) -> Result<()> {
        self.transact("importing", |s| {
            // Counters only grow, so ids seen before an import are never
            // handed out again for something else.
            let next_sample = s
                .next_sample
                .max(snapshot.samples.iter().map(|x| x.id).max().unwrap_or(0));
            let next_version = s.next_version.max(
                snapshot
                    .versions
                    .iter()
                    .map(|x| x.version)
                    .max()
                    .unwrap_or(0),
            );
            *s = State {
                samples: snapshot.samples.iter().map(|x| (x.id, x.clone())).collect(),
                features: BTreeMap::new(),
                versions: snapshot
                    .versions
                    .iter()
                    .map(|x| (x.version, x.clone()))
                    .collect(),
                weights: snapshot
                    .weights
                    .iter()
                    .map(|x| (x.version, x.clone()))
                    .collect(),
                current: snapshot.current,
                // As IndexedDB's import, which clears its meta records:
                // every imported correction counts.
                memory_from: 0,
                next_sample,
                next_version,
            };
            Ok(())
        })
    }

    async fn erase(&self) -> Result<()> {
        // As clearing IndexedDB's object stores: the id counters go on.
        let mut state = self.state.borrow_mut();
        *state = State {
            next_sample: state.next_sample,
            next_version: state.next_version,
            ..State::default()
        };
        Ok(())
    }
}

/// The rule both backends check inside their delete operation.
pub(crate) fn refuse_protected(
    version: VersionNumber,
    current: Option<VersionNumber>,
    info: Option<&VersionInfo>,
) -> Result<()> {
    if current == Some(version) {
        return Err(Error::InvalidState(format!(
            "version {version} is the current head; roll back or reset first"
        )));
    }
    if info.is_some_and(|i| i.meta.status == VersionStatus::Shipped) {
        return Err(Error::InvalidState(format!(
            "version {version} is the shipped head, which is always kept"
        )));
    }
    Ok(())
}
