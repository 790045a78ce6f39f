//! The classifier: one object that ties a bundle's encoder and shipped
//! head to the user's store — predict, take corrections, update through a
//! validation gate, keep versions — and owns the rules about when and in
//! what order those happen. Pure Rust over any store backend; the
//! `Classifier` JS class and its Web Worker are adapters over this.
//!
//! - [`options`]: the app's options, resolved against the bundle's defaults;
//! - [`auto_update`]: when an update starts by itself;
//! - [`change_lock`]: one change (update, rollback, reset, import, reload,
//!   deletion) at a time, first come first served;
//! - [`memory`]: the corrections every prediction consults, so a correction
//!   counts before the next update;
//! - [`at_once`]: the working head, fine-tuned on those corrections after
//!   each one, so a correction carries over to paraphrases at once;
//! - [`recent_vectors`]: the last few texts' vectors, so correcting a text
//!   just predicted, and predicting it again, skip the encoder;
//! - [`embedding_pool`]: big embedding jobs (an import's, an update's after
//!   an encoder change) on a pool of workers.

pub mod at_once;
pub mod auto_update;
pub mod change_lock;
pub mod embedding_pool;
pub mod memory;
pub mod options;
pub mod recent_vectors;

use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::rc::Rc;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::bundle::Bundle;
use crate::error::{Error, Result};
pub use crate::head::personal::rehearsal_rows_to_keep;
use crate::head::personal::{
    nearest_rehearsal_similarity, train_personal_head, with_labels, PersonalOutcome, UserSamples,
};
use crate::head::train::split_validation;
use crate::head::{Head, LabelProbability, MAX_LABELS};
use crate::store::{
    AddedSample, LoadedHead, MissingSoFar, Sample, SampleId, SaveDetails, Store, StoreBackend,
    StorePolicy, StoreProblem, TrainingData, VersionInfo, VersionMetrics, VersionNumber,
};
use crate::{UpdateConfig, UpdateEvent, UpdateOutcome};
use at_once::{AtOnceSettings, RehearsalSimilarities, Relearning};
use auto_update::{AutoUpdatePolicy, AutoUpdater};
use change_lock::{Change, ChangeGuard, ChangeLock};
use embedding_pool::{EmbeddingJob, EmbeddingPool, EmbeddingProgress};
use memory::{CorrectionMemory, MemorySettings, ShippedExamples};
use recent_vectors::RecentVectors;

/// One text's prediction: every label, most probable first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct Prediction {
    pub label: String,
    pub probability: f32,
    pub probabilities: Vec<LabelProbability>,
}

/// A correction that was stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct Feedback {
    #[serde(flatten)]
    pub added: AddedSample,
    /// Samples not yet learned by the current head.
    pub pending: usize,
}

/// How an update went: the gate's verdict and the training's figures.
/// Shared by a [`Candidate`] (not stored yet) and an [`UpdateReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct UpdateSummary {
    /// The new head passed the validation gate (and becomes current).
    pub accepted: bool,
    /// Why the gate decided as it did, in words.
    pub gate: String,
    /// Accuracy on the held-out slice of the user's samples, of the new head
    /// and of the head it would replace (`None` without a held-out slice).
    pub candidate_accuracy: Option<f32>,
    pub current_accuracy: Option<f32>,
    pub held_out_samples: usize,
    pub user_samples: usize,
    /// Bundle vectors trained on alongside, and those left out because the
    /// user relabelled their label: a correction of another label is their
    /// nearest neighbour, as it is for at least a quarter of that label's
    /// vectors (`head::personal::rehearsal_rows_to_keep`).
    pub rehearsal_samples: usize,
    pub rehearsal_overridden: usize,
    /// Accuracy on the bundle's held-out examples of the shipped labels the
    /// user has not contradicted (the untouched labels), of the new head and
    /// of the shipped head (`None` if the bundle ships no such examples, or
    /// the user contradicted every label).
    pub untouched_accuracy: Option<f32>,
    pub untouched_accuracy_shipped: Option<f32>,
    pub untouched_samples: usize,
    // tsify's renames do not follow references: the TypeScript name.
    #[cfg_attr(target_arch = "wasm32", tsify(type = "UpdateFigures"))]
    pub outcome: UpdateOutcome,
}

/// How an update went and the version it stored.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct UpdateReport {
    #[serde(flatten)]
    pub summary: UpdateSummary,
    /// The new version (rejected candidates are kept too).
    pub version: VersionInfo,
}

/// A trained head and the gate's verdict, not stored yet.
pub struct Candidate {
    pub summary: UpdateSummary,
    details: SaveDetails,
}

/// Counts for a status line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(
    target_arch = "wasm32",
    derive(tsify::Tsify),
    tsify(missing_as_null, rename = "ClassifierCounts")
)]
pub struct Stats {
    pub sample_count: usize,
    pub pending_count: usize,
    pub current_version: VersionInfo,
    pub version_count: usize,
    pub auto_update_threshold: usize,
}

pub struct Classifier<B> {
    bundle: Bundle,
    store: Store<B>,
    /// The head in use and its version. Borrowed only between awaits.
    current: RefCell<(VersionInfo, Head)>,
    problems: RefCell<Vec<StoreProblem>>,
    encoder_changed: bool,
    changes: ChangeLock,
    auto_update: AutoUpdater,
    /// Every stored correction with a cached vector. Borrowed only between
    /// awaits.
    memory: RefCell<CorrectionMemory>,
    /// The head predictions use: the current head fine-tuned on the memory
    /// (see [`at_once`]). Borrowed only between awaits.
    working: RefCell<Head>,
    /// Whether `working` has learned every correction in the memory, or is
    /// being relearned. Borrowed only between awaits.
    relearning: RefCell<WorkingHeadState>,
    /// The recent corrections' similarities to the rehearsal vectors, for
    /// the working head's relearning. Borrowed only between awaits.
    rehearsal_similarities: RefCell<RehearsalSimilarities>,
    at_once: AtOnceSettings,
    /// Borrowed only between awaits.
    recent_vectors: RefCell<RecentVectors>,
    /// Where big embedding jobs run, if not on `bundle.encoder` alone.
    embedding_pool: RefCell<Option<Rc<dyn EmbeddingPool>>>,
}

/// Where the working head is with the corrections in the memory.
enum WorkingHeadState {
    /// It has learned every one.
    Settled,
    /// The memory changed since; nothing has run yet.
    Stale,
    /// Relearning, a slice at a time.
    Learning(Box<Relearning>),
}

/// The name this type had before it matched the JavaScript class.
#[deprecated(note = "renamed to Classifier")]
pub type Personalizer<B> = Classifier<B>;

impl<B: StoreBackend> Classifier<B> {
    /// Opens the user's store for `bundle` and loads the current head.
    pub async fn open(
        bundle: Bundle,
        backend: B,
        policy: StorePolicy,
        now_ms: f64,
    ) -> Result<Self> {
        let store = Store::open(
            backend,
            bundle.encoder.sha256(),
            &bundle.head,
            policy,
            now_ms,
        )
        .await?;
        let LoadedHead {
            info,
            head,
            problems,
            encoder_changed,
        } = store.load_current().await?;
        let memory = CorrectionMemory::from_training_data(
            bundle.head.input_dim(),
            MemorySettings::default(),
            &store.training_data().await?,
            store.memory_from().await?,
        );
        let training = &bundle.manifest.training;
        let auto_update = AutoUpdater::new(AutoUpdatePolicy {
            enabled: true,
            threshold: training.auto_update_threshold.max(1),
            only_when_idle: false,
            only_while_charging: false,
            config: training.defaults.clone(),
        });
        // Each rehearsal vector's similarity to its nearest other one:
        // every update and every correction asks. The bundle tool ships it
        // since 2026-12-06; an older bundle's is computed once, here.
        let mut bundle = bundle;
        if bundle.rehearsal.nearest.len() != bundle.rehearsal.labels.len() {
            bundle.rehearsal.nearest =
                nearest_rehearsal_similarity(&bundle.rehearsal.features, bundle.rehearsal.dim);
        }
        let classifier = Classifier {
            bundle,
            store,
            working: RefCell::new(head.clone()),
            relearning: RefCell::new(WorkingHeadState::Stale),
            rehearsal_similarities: RefCell::default(),
            recent_vectors: RefCell::default(),
            current: RefCell::new((info, head)),
            problems: RefCell::new(problems),
            encoder_changed,
            changes: ChangeLock::new(),
            auto_update,
            memory: RefCell::new(memory),
            at_once: AtOnceSettings::default(),
            embedding_pool: RefCell::new(None),
        };
        classifier.relearn()?;
        Ok(classifier)
    }

    /// Replaces how the working head learns each correction
    /// ([`AtOnceSettings::default`] unless set).
    pub fn with_at_once(mut self, settings: AtOnceSettings) -> Result<Self> {
        self.at_once = settings;
        self.relearn()?;
        Ok(self)
    }

    /// Lets big embedding jobs (from [`embedding_pool::POOL_FROM_TEXTS`]
    /// texts: an import's, an update's after an encoder change) run on
    /// `pool`; `None`: on the bundle's encoder, on this thread.
    pub fn set_embedding_pool(&self, pool: Option<Rc<dyn EmbeddingPool>>) {
        *self.embedding_pool.borrow_mut() = pool;
    }

    /// Fine-tunes the working head afresh from the current head on the
    /// memory's corrections (see [`at_once`]), all at once.
    fn relearn(&self) -> Result<()> {
        *self.relearning.borrow_mut() = WorkingHeadState::Stale;
        self.finish_relearning()
    }

    /// Runs the working head's relearning to its end (nothing if it has
    /// learned every correction already).
    pub fn finish_relearning(&self) -> Result<()> {
        while !self.relearn_some(usize::MAX)? {}
        Ok(())
    }

    /// Advances the working head's relearning by at most `steps` optimizer
    /// steps (setting it up counts as a slice of its own); true once the
    /// working head has learned every correction. Predictions meanwhile use
    /// the previous working head, and the memory, which knows every
    /// correction already. If relearning fails, the previous working head
    /// stays and the error is returned (the next correction tries again).
    pub fn relearn_some(&self, steps: usize) -> Result<bool> {
        let mut state = self.relearning.borrow_mut();
        let outcome = match &mut *state {
            WorkingHeadState::Settled => return Ok(true),
            WorkingHeadState::Stale => Relearning::begin(
                &self.current.borrow().1,
                self.bundle.head.labels().len(),
                &self.memory.borrow(),
                &self.bundle.rehearsal,
                &mut self.rehearsal_similarities.borrow_mut(),
                // The update's settings; the working head trains the output
                // layer only, whatever the bundle allows.
                &self.auto_update.policy().config,
                self.at_once,
            )
            .map(|job| {
                *state = WorkingHeadState::Learning(Box::new(job));
                false
            }),
            WorkingHeadState::Learning(job) => job.advance(steps),
        };
        match outcome {
            Ok(false) => Ok(false),
            Ok(true) => {
                let WorkingHeadState::Learning(job) =
                    std::mem::replace(&mut *state, WorkingHeadState::Settled)
                else {
                    unreachable!("only a running relearning finishes")
                };
                *self.working.borrow_mut() = job.finish()?;
                Ok(true)
            }
            Err(e) => {
                *state = WorkingHeadState::Settled;
                Err(e)
            }
        }
    }

    /// Whether the working head has learned every correction the memory
    /// holds (see [`Classifier::relearn_some`]).
    pub fn working_head_settled(&self) -> bool {
        matches!(*self.relearning.borrow(), WorkingHeadState::Settled)
    }

    /// How the working head learns corrections.
    pub fn at_once(&self) -> AtOnceSettings {
        self.at_once
    }

    /// Replaces the automatic-update policy (the bundle's by default).
    pub fn with_auto_update(mut self, policy: AutoUpdatePolicy) -> Self {
        self.auto_update = AutoUpdater::new(policy);
        self
    }

    /// Replaces where corrections start and stop deciding predictions
    /// ([`MemorySettings::default`] unless set).
    pub fn with_memory_settings(mut self, settings: MemorySettings) -> Self {
        self.memory.get_mut().set_settings(settings);
        self
    }

    /// The head predictions use now: [`Classifier::current_head`]
    /// fine-tuned on the corrections since (see [`at_once`]); after a
    /// correction, the previous one until relearning has run
    /// ([`Classifier::relearn_some`], [`Classifier::finish_relearning`]).
    pub fn working_head(&self) -> Head {
        self.working.borrow().clone()
    }

    pub fn auto_update(&self) -> &AutoUpdater {
        &self.auto_update
    }

    /// Whether `feedback` makes an automatic update due (see
    /// [`AutoUpdater::due`]).
    pub fn auto_update_due(&self, feedback: &Feedback) -> bool {
        self.auto_update.due(
            feedback.pending,
            feedback.added.sample.id,
            self.changes.update_pending(),
        )
    }

    /// Claims the automatic update that `feedback` made due, once the
    /// browser's gates allowed it; `false` if it is no longer due (another
    /// correction claimed it, or an update was asked for meanwhile).
    pub fn begin_auto_update_attempt(&self, feedback: &Feedback) -> bool {
        self.auto_update.begin_attempt(
            feedback.pending,
            feedback.added.sample.id,
            self.changes.update_pending(),
        )
    }

    /// True while an update waits for its turn or runs.
    pub fn update_pending(&self) -> bool {
        self.changes.update_pending()
    }

    /// Resolves when no update is pending (at once if none is).
    pub async fn when_idle(&self) {
        self.changes.until_no_update().await
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    /// What loading found wrong (corrupt records skipped, an encoder change).
    pub fn problems(&self) -> Vec<StoreProblem> {
        self.problems.borrow().clone()
    }

    /// The stored heads were trained for another encoder; see
    /// [`Store::retrain_for_encoder`].
    pub fn encoder_changed(&self) -> bool {
        self.encoder_changed
    }

    pub fn current_version(&self) -> VersionInfo {
        self.current.borrow().0.clone()
    }

    pub fn current_head(&self) -> Head {
        self.current.borrow().1.clone()
    }

    /// Every label a prediction can give: the working head's (the current
    /// head's and those the corrections taught it), then any label only the
    /// memory knows (with the working head off).
    pub fn labels(&self) -> Vec<String> {
        let mut labels = self.working.borrow().labels().to_vec();
        let mut known: HashSet<String> = labels.iter().cloned().collect();
        for label in self.memory.borrow().labels() {
            if known.insert(label.clone()) {
                labels.push(label.clone());
            }
        }
        labels
    }

    /// Refuses a correction with a label the classifier does not know yet
    /// once it knows [`MAX_LABELS`]: the next update would have to train a
    /// head with one label too many. Counts the stored samples' labels only
    /// when the labels predictions know, plus one per sample they may not
    /// cover, could reach the cap (near it, or after a rollback).
    async fn check_room_for_label(&self, label: &str) -> Result<()> {
        // Nearly every correction gives a label predictions know: a scan
        // answers that without building a set at each one.
        let known_label = |labels: &[String]| labels.iter().any(|l| l == label);
        if known_label(self.working.borrow().labels())
            || known_label(self.memory.borrow().labels())
            || known_label(self.current.borrow().1.labels())
        {
            return Ok(());
        }
        let mut known: HashSet<String> = self.labels().into_iter().collect();
        known.extend(self.current.borrow().1.labels().iter().cloned());
        let uncovered = self
            .store
            .sample_count()
            .await?
            .saturating_sub(self.memory.borrow().len());
        if known.len() + uncovered >= MAX_LABELS {
            known.extend(self.store.samples().await?.into_iter().map(|s| s.label));
        }
        if known.len() >= MAX_LABELS && !known.contains(label) {
            return Err(Error::Config(format!(
                "this classifier already knows {} labels, the most it can learn \
                 ({MAX_LABELS}); {label:?} would be one more. Correct to a label it knows, \
                 or delete the corrections of labels no longer used",
                known.len()
            )));
        }
        Ok(())
    }

    /// How many corrections predictions consult.
    pub fn remembered_corrections(&self) -> usize {
        self.memory.borrow().len()
    }

    /// Labels, most probable first, for each text: the current head's
    /// answer, moved toward the label of a correction the text sits close
    /// to (see [`memory`]).
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<Prediction>> {
        match texts {
            [text] => self.predict_vectors(&self.embed_one(text)?),
            _ => self.predict_vectors(self.bundle.encoder.embed(texts)?.as_slice()),
        }
    }

    /// One text's feature vector, from [`recent_vectors`] if it was among
    /// the last few embedded.
    fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        if let Some(vector) = self.recent_vectors.borrow_mut().get(text) {
            return Ok(vector);
        }
        let vector = self.bundle.encoder.embed(&[text])?.as_slice().to_vec();
        self.recent_vectors.borrow_mut().put(text, &vector);
        Ok(vector)
    }

    /// [`Classifier::predict`] for texts already embedded by this bundle's
    /// encoder (row-major): what a benchmark that replays thousands of
    /// queries calls.
    pub fn predict_vectors(&self, vectors: &[f32]) -> Result<Vec<Prediction>> {
        let dim = self.bundle.head.input_dim();
        if !vectors.len().is_multiple_of(dim) {
            return Err(Error::Config(format!(
                "{} values are not whole {dim}-value vectors",
                vectors.len()
            )));
        }
        let working = self.working.borrow();
        let memory = self.memory.borrow();
        let shipped = ShippedExamples {
            features: &self.bundle.rehearsal.features,
            labels: &self.bundle.rehearsal.labels,
            label_names: &self.bundle.manifest.labels,
        };
        vectors
            .chunks_exact(dim)
            .map(|row| Ok(memory.adjust(row, working.predict(row)?, shipped)))
            .collect()
    }

    /// Stores "`text` is `label`" with its feature vector; the next
    /// prediction already honours it (see [`memory`]). A label the head
    /// does not know yet is fine: the memory knows it at once, the next
    /// update adds it to the head.
    pub async fn add_feedback(&self, text: &str, label: &str, now_ms: f64) -> Result<Feedback> {
        // Refuse what the store would refuse before the encoder runs: a
        // 20 MB paste takes seconds to tokenize.
        crate::store::check_new_sample(text, label)?;
        self.check_room_for_label(label).await?;
        let vector = self.embed_one(text)?;
        let added = self
            .store
            .add_sample(text, label, now_ms, Some(&vector))
            .await?;
        {
            let mut memory = self.memory.borrow_mut();
            memory.add(added.sample.id, &vector, label);
            memory.remove(&added.evicted);
        }
        // The memory honours the correction from now on; the working head
        // learns it a slice at a time ([`Classifier::relearn_some`]).
        *self.relearning.borrow_mut() = WorkingHeadState::Stale;
        Ok(Feedback {
            added,
            pending: self.pending_count().await?,
        })
    }

    /// Samples added since the current head was trained.
    pub async fn pending_count(&self) -> Result<usize> {
        let through = self
            .current
            .borrow()
            .0
            .meta
            .trained_through_sample
            .unwrap_or(0);
        self.store.count_samples_after(through).await
    }

    pub async fn stats(&self) -> Result<Stats> {
        Ok(Stats {
            sample_count: self.store.sample_count().await?,
            pending_count: self.pending_count().await?,
            current_version: self.current_version(),
            version_count: self.store.versions().await?.len(),
            auto_update_threshold: self.bundle.manifest.training.auto_update_threshold,
        })
    }

    /// Trains a new head on every stored sample plus the bundle's rehearsal
    /// vectors, starting from the shipped head (with any new labels), and
    /// lets it replace the current head only if its accuracy on a held-out
    /// slice of the user's samples is not below the current head's.
    /// `config` must be within the bundle's allowed ranges. Refused while
    /// another update is pending; waits for a running rollback, reset,
    /// import or reload.
    pub async fn update(
        &self,
        config: &UpdateConfig,
        now_ms: &dyn Fn() -> f64,
        observer: &mut dyn FnMut(&UpdateEvent) -> ControlFlow<()>,
    ) -> Result<UpdateReport> {
        let session = self.begin_update().await?;
        let candidate = session.train(config, now_ms, observer).await?;
        session.commit(candidate, now_ms()).await
    }

    /// [`Classifier::update`] in two steps, holding the change lock from
    /// the first to the second: a caller that cannot cancel during training
    /// (a Web Worker busy in it cannot receive the message) can still drop
    /// the candidate between [`UpdateSession::train`] and
    /// [`UpdateSession::commit`].
    pub async fn begin_update(&self) -> Result<UpdateSession<'_, B>> {
        let guard = self.changes.acquire(Change::Update)?.await;
        Ok(UpdateSession {
            classifier: self,
            _guard: guard,
        })
    }

    /// Trains the candidate and runs the validation gate, storing nothing.
    async fn train_candidate(
        &self,
        config: &UpdateConfig,
        now_ms: &dyn Fn() -> f64,
        observer: &mut dyn FnMut(&UpdateEvent) -> ControlFlow<()>,
    ) -> Result<Candidate> {
        self.bundle.manifest.training.check_config(config)?;
        // The bundle decides which layers may learn, whatever the app asks.
        let config = &UpdateConfig {
            freeze_hidden_layer: config.freeze_hidden_layer
                || self.bundle.manifest.head.hidden_layer_frozen(),
            ..config.clone()
        };
        let data = self
            .embed_missing(&mut |p| observer(&UpdateEvent::embedding(p)))
            .await?;
        // Corrections without vectors have them now: predictions consult them
        // too. (The working head is retrained only if that changed the
        // memory: otherwise it would come out the same.)
        if self.remember(&data).await? {
            self.relearn()?;
        }
        if data.labels.is_empty() {
            return Err(Error::Training(
                "there is no feedback to learn from yet".into(),
            ));
        }
        let dim = self.bundle.head.input_dim();
        let (start, user_labels) = with_labels(&self.bundle.head, &data.labels)?;
        let (train_rows, gate_rows) = self.gate_split(&user_labels, start.labels().len(), config);

        let PersonalOutcome {
            outcome,
            user_samples,
            rehearsal_kept,
            rehearsal_overridden,
        } = train_personal_head(
            &start,
            UserSamples {
                features: &data.features,
                labels: &user_labels,
                new_labels_from: self.bundle.head.labels().len(),
                own_labels_from: self.bundle.head.labels().len(),
                held_out: &gate_rows,
                rehearsal_similarity: None,
            },
            &train_rows,
            self.bundle.rehearsal.rows(),
            config,
            now_ms,
            observer,
        )?;

        let (current_info, current_head) = self.current.borrow().clone();
        let gate_samples = || {
            gate_rows.iter().map(|&row| {
                (
                    &data.features[row * dim..(row + 1) * dim],
                    data.labels[row].as_str(),
                )
            })
        };
        let accuracy = |head: &Head| -> Result<Option<f32>> {
            let (correct, total) = head.count_correct(gate_samples())?;
            Ok((total > 0).then(|| correct as f32 / total as f32))
        };
        let candidate_accuracy = accuracy(&outcome.head)?;
        let current_accuracy = accuracy(&current_head)?;
        let shipped = self.shipped_check(&data, &outcome.head)?;
        let (accepted, gate) = gate_verdict(
            candidate_accuracy,
            current_accuracy,
            gate_rows.len(),
            shipped.as_ref(),
        );
        let details = SaveDetails {
            parent: Some(current_info.version),
            rejected: !accepted,
            sample_count: data.labels.len(),
            trained_through_sample: data.sample_ids.iter().copied().max(),
            metrics: VersionMetrics {
                gate_accuracy: candidate_accuracy,
                previous_gate_accuracy: current_accuracy,
                gate_samples: Some(gate_rows.len()),
                ..VersionMetrics::from(&outcome)
            },
        };
        Ok(Candidate {
            summary: UpdateSummary {
                accepted,
                gate,
                candidate_accuracy,
                current_accuracy,
                held_out_samples: gate_rows.len(),
                user_samples,
                rehearsal_samples: rehearsal_kept,
                rehearsal_overridden,
                untouched_accuracy: shipped.as_ref().map(|s| s.candidate),
                untouched_accuracy_shipped: shipped.as_ref().map(|s| s.shipped),
                untouched_samples: shipped.as_ref().map_or(0, |s| s.samples),
                outcome,
            },
            details,
        })
    }

    /// Scores `candidate` and the shipped head on the bundle's held-out
    /// examples of the shipped labels the user has not contradicted. A label is
    /// contradicted when the shipped head gives it to one of the user's
    /// samples that the user labelled otherwise: the user renamed it, or
    /// taught a new label in its territory, so it may rightly lose ground.
    /// The others are what nobody asked the update to change: compared
    /// with the shipped head, not the current one, so that what updates
    /// lose there cannot add up.
    fn shipped_check(&self, data: &TrainingData, candidate: &Head) -> Result<Option<ShippedCheck>> {
        let check = &self.bundle.shipped_check;
        if check.labels.is_empty() {
            return Ok(None);
        }
        let shipped = &self.bundle.head;
        let dim = shipped.input_dim();
        let mut contradicted = vec![false; shipped.labels().len()];
        for (row, label) in data.labels.iter().enumerate() {
            let probabilities =
                shipped.probabilities(&data.features[row * dim..(row + 1) * dim])?;
            let given = crate::head::network::argmax(&probabilities);
            if shipped.labels()[given] != *label {
                contradicted[given] = true;
            }
        }
        let samples = || {
            check
                .labels
                .iter()
                .enumerate()
                .filter(|(_, &l)| !contradicted[l as usize])
                .map(|(row, &l)| {
                    (
                        &check.features[row * dim..(row + 1) * dim],
                        shipped.labels()[l as usize].as_str(),
                    )
                })
        };
        let (candidate_correct, total) = candidate.count_correct(samples())?;
        let (shipped_correct, _) = shipped.count_correct(samples())?;
        if total == 0 {
            return Ok(None);
        }
        Ok(Some(ShippedCheck {
            candidate: candidate_correct as f32 / total as f32,
            shipped: shipped_correct as f32 / total as f32,
            samples: total,
            labels: contradicted.iter().filter(|&&c| !c).count(),
            margin: self.bundle.manifest.training.shipped_margin,
        }))
    }

    /// The validation gate's slice of the user's samples: the bundle's
    /// share of each label with at least 3 samples, seeded; the rest trains.
    fn gate_split(
        &self,
        labels: &[usize],
        label_count: usize,
        config: &UpdateConfig,
    ) -> (Vec<usize>, Vec<usize>) {
        let gate_config = UpdateConfig {
            validation_fraction: self.bundle.manifest.training.validation_gate_fraction,
            min_samples_per_label_for_validation: 3,
            ..config.clone()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6761_7465);
        split_validation(labels, label_count, &gate_config, &mut rng)
    }

    /// Stores the candidate as a version, current if the gate accepted it.
    async fn commit(&self, candidate: Candidate, now_ms: f64) -> Result<UpdateReport> {
        let Candidate { summary, details } = candidate;
        let version = self
            .store
            .save_version(&summary.outcome.head, details, now_ms)
            .await?;
        if summary.accepted {
            *self.current.borrow_mut() = (version.clone(), summary.outcome.head.clone());
            self.relearn()?;
        }
        Ok(UpdateReport { summary, version })
    }

    /// Makes an earlier version current (and the head in use), after any
    /// update or other change asked for before it. Predictions stop
    /// consulting the corrections made so far: the classifier answers as
    /// that version did. The corrections stay stored (the next update
    /// learns them again; delete them to forget them) and every correction
    /// from now on counts at once.
    pub async fn rollback(&self, version: VersionNumber) -> Result<VersionInfo> {
        let _turn = self.changes.acquire(Change::Other)?.await;
        self.store.rollback(version).await?;
        let info = self.load_current().await?;
        self.refresh_memory().await?;
        Ok(info)
    }

    /// Makes the shipped head current again, after any change asked for
    /// before it: a rollback to the shipped head (see
    /// [`Classifier::rollback`]). Corrections and versions stay stored.
    pub async fn reset_to_shipped(&self) -> Result<VersionInfo> {
        let _turn = self.changes.acquire(Change::Other)?.await;
        self.store.reset_to_shipped().await?;
        let info = self.load_current().await?;
        self.refresh_memory().await?;
        Ok(info)
    }

    /// Replaces everything with an export file's contents and loads its
    /// current head, after any change asked for before it. The file carries
    /// no feature vectors (any encoder can recompute them): the imported
    /// corrections are embedded here, in batches, so that predictions
    /// honour them at once.
    pub async fn import(&self, file: &[u8], now_ms: f64) -> Result<(usize, usize)> {
        self.import_with_progress(file, now_ms, &mut |_| ControlFlow::Continue(()))
            .await
    }

    /// [`Classifier::import`], telling `progress` how far the embedding of
    /// the imported corrections is (on the embedding pool if it is worth
    /// one). They are embedded before anything is stored: `Break` stops
    /// the import with [`Error::Cancelled`], and the store and this
    /// instance are as they were.
    pub async fn import_with_progress(
        &self,
        file: &[u8],
        now_ms: f64,
        progress: &mut dyn FnMut(EmbeddingProgress) -> ControlFlow<()>,
    ) -> Result<(usize, usize)> {
        let _turn = self.changes.acquire(Change::Other)?.await;
        let pool = self.embedding_pool.borrow().clone();
        let counts = self
            .store
            .import_embedding(file, now_ms, &mut async |texts: &[&str]| {
                EmbeddingJob::new(&self.bundle.encoder, pool.as_deref(), progress)
                    .embed_all(texts)
                    .await
            })
            .await?;
        self.load_current().await?;
        // Every imported correction has its vector now, unless caching them
        // failed: those are embedded by the next update.
        self.refresh_memory().await?;
        Ok(counts)
    }

    /// Re-reads the current head from the store (another tab may have
    /// saved one), after any change asked for before it.
    pub async fn reload(&self) -> Result<VersionInfo> {
        let _turn = self.changes.acquire(Change::Other)?.await;
        let info = self.load_current().await?;
        self.refresh_memory().await?;
        Ok(info)
    }

    /// Every stored correction, oldest first.
    pub async fn samples(&self) -> Result<Vec<Sample>> {
        self.store.samples().await
    }

    /// Deletes one correction, after any change asked for before it (a
    /// running update finishes first). Predictions stop consulting it at
    /// once and the working head relearns without it. Versions already
    /// trained on it keep what they learned (see
    /// [`Classifier::delete_everything`]); updates from now on do not
    /// learn it.
    pub async fn delete_sample(&self, id: SampleId) -> Result<()> {
        let _turn = self.changes.acquire(Change::Other)?.await;
        self.store.delete_sample(id).await?;
        self.forget_texts();
        self.refresh_memory().await
    }

    /// Deletes every correction, after any change asked for before it.
    /// The current version and the others stay, with what they learned.
    pub async fn delete_all_samples(&self) -> Result<()> {
        let _turn = self.changes.acquire(Change::Other)?.await;
        self.store.delete_all_samples().await?;
        self.forget_texts();
        self.refresh_memory().await
    }

    /// Deletes everything of the user's, after any change asked for before
    /// it: every correction and every version; then goes on as on a first
    /// visit, with the shipped head (returned) in the emptied store. Other
    /// tabs on the same store are closed and say why.
    pub async fn delete_everything(&self, now_ms: f64) -> Result<VersionInfo> {
        let _turn = self.changes.acquire(Change::Other)?.await;
        self.forget_texts();
        self.auto_update.forget_attempts();
        let erased = self.store.erase_everything(now_ms).await;
        // Whatever the store managed, the instance holds nothing it had
        // read from it: what is current now comes from the store again.
        let info = self.load_current().await;
        self.refresh_memory().await?;
        erased?;
        info
    }

    /// Drops the texts this instance keeps besides the store (the last few
    /// embedded ones).
    fn forget_texts(&self) {
        self.recent_vectors.borrow_mut().clear();
    }

    /// Every sample with its vector, embedding (and caching) those that
    /// have none under this encoder: imported, or stored before an encoder
    /// change.
    /// `progress` sees how far it is (first with nothing done yet) and may
    /// stop it ([`Error::Cancelled`]; the slices embedded stay cached). On
    /// the embedding pool if the job is worth one ([`EmbeddingJob`]).
    async fn embed_missing(
        &self,
        progress: &mut dyn FnMut(EmbeddingProgress) -> ControlFlow<()>,
    ) -> Result<TrainingData> {
        let pool = self.embedding_pool.borrow().clone();
        let mut job = EmbeddingJob::new(&self.bundle.encoder, pool.as_deref(), progress);
        self.store
            .training_data_embedding_missing(&mut async |texts: &[&str], so_far: MissingSoFar| {
                job.embed_slice(texts, so_far.done, so_far.total).await
            })
            .await
    }

    /// Re-reads the corrections predictions consult (another tab may have
    /// added some or rolled back; an import replaced them) and retrains the
    /// working head on them over the current head (just loaded). Samples
    /// without a cached vector join at the next update, which embeds them.
    async fn refresh_memory(&self) -> Result<()> {
        let data = self.store.training_data().await?;
        self.remember(&data).await?;
        self.relearn()
    }

    /// Makes the memory the corrections of `data` after the store's memory
    /// mark (`data` as just read: not read again); whether that changed it.
    async fn remember(&self, data: &TrainingData) -> Result<bool> {
        let mark = self.store.memory_from().await?;
        let settings = self.memory.borrow().settings();
        let memory = CorrectionMemory::from_training_data(
            self.bundle.head.input_dim(),
            settings,
            data,
            mark,
        );
        let changed = *self.memory.borrow() != memory;
        if changed {
            self.rehearsal_similarities.borrow_mut().clear();
        }
        *self.memory.borrow_mut() = memory;
        Ok(changed)
    }

    async fn load_current(&self) -> Result<VersionInfo> {
        let loaded = self.store.load_current().await?;
        *self.problems.borrow_mut() = loaded.problems;
        let info = loaded.info.clone();
        *self.current.borrow_mut() = (loaded.info, loaded.head);
        Ok(info)
    }
}

/// The candidate's and the shipped head's accuracy on the shipped labels
/// the user has not contradicted (see [`Classifier::shipped_check`]).
struct ShippedCheck {
    candidate: f32,
    shipped: f32,
    samples: usize,
    labels: usize,
    /// The accuracy the candidate may lose there.
    margin: f32,
}

/// The validation gate's decision: the candidate replaces the current head
/// if it is not less accurate on the shipped labels the user never
/// contradicted than the shipped head by more than the bundle's margin,
/// and at least as accurate on the held-out slice of `samples`
/// corrections (without a slice, that part is skipped and says why).
fn gate_verdict(
    candidate: Option<f32>,
    current: Option<f32>,
    samples: usize,
    shipped: Option<&ShippedCheck>,
) -> (bool, String) {
    if let Some(s) = shipped {
        // Compared in whole samples: a margin of 1 point on 100 vectors
        // allows one more mistake, not a rounding error's worth more.
        let lost = ((s.shipped - s.candidate) * s.samples as f32).round();
        if lost > (s.margin * s.samples as f32).floor() {
            return (
                false,
                format!(
                    "rejected: {:.1}% on {} held-out examples of the {} shipped labels the \
                     user has not corrected, {:.1} points below the shipped head's {:.1}% \
                     (the bundle allows {:.1})",
                    100.0 * s.candidate,
                    s.samples,
                    s.labels,
                    100.0 * (s.shipped - s.candidate),
                    100.0 * s.shipped,
                    100.0 * s.margin
                ),
            );
        }
    }
    let (accepted, verdict) = user_gate_verdict(candidate, current, samples);
    match shipped {
        Some(s) if accepted => (
            true,
            format!(
                "{verdict}; {:.1}% on the untouched shipped labels' {} held-out examples \
                 (shipped {:.1}%)",
                100.0 * s.candidate,
                s.samples,
                100.0 * s.shipped
            ),
        ),
        _ => (accepted, verdict),
    }
}

/// The gate's part on the held-out slice of `samples` corrections: the
/// candidate must be at least as accurate there.
fn user_gate_verdict(
    candidate: Option<f32>,
    current: Option<f32>,
    samples: usize,
) -> (bool, String) {
    match (candidate, current) {
        (Some(new), Some(old)) if new >= old => (
            true,
            format!(
                "accepted: {:.1}% on {samples} held-out samples, the current head {:.1}%",
                100.0 * new,
                100.0 * old
            ),
        ),
        (Some(new), Some(old)) => (
            false,
            format!(
                "rejected: {:.1}% on {samples} held-out samples, below the current head's {:.1}%",
                100.0 * new,
                100.0 * old
            ),
        ),
        _ => (
            true,
            "accepted without a gate: no label has the 3 samples a held-out slice needs".into(),
        ),
    }
}

/// An update that holds the classifier's change lock: see
/// [`Classifier::begin_update`]. Dropping it releases the lock.
pub struct UpdateSession<'a, B> {
    classifier: &'a Classifier<B>,
    _guard: ChangeGuard<'a>,
}

impl<B: StoreBackend> UpdateSession<'_, B> {
    /// Trains the candidate and runs the validation gate, storing nothing.
    pub async fn train(
        &self,
        config: &UpdateConfig,
        now_ms: &dyn Fn() -> f64,
        observer: &mut dyn FnMut(&UpdateEvent) -> ControlFlow<()>,
    ) -> Result<Candidate> {
        self.classifier
            .train_candidate(config, now_ms, observer)
            .await
    }

    /// Stores the candidate as a version, current if the gate accepted it.
    pub async fn commit(self, candidate: Candidate, now_ms: f64) -> Result<UpdateReport> {
        self.classifier.commit(candidate, now_ms).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(candidate: f32, shipped: f32, samples: usize) -> ShippedCheck {
        ShippedCheck {
            candidate,
            shipped,
            samples,
            labels: 20,
            margin: 0.01,
        }
    }

    #[test]
    fn a_candidate_that_forgets_untouched_labels_is_rejected_with_the_reason() {
        // Better on the user's held-out corrections, but 3 points below the
        // shipped head on the labels the user never corrected.
        let (accepted, reason) =
            gate_verdict(Some(1.0), Some(0.5), 10, Some(&check(0.91, 0.94, 400)));
        assert!(!accepted);
        assert!(
            reason.contains("rejected") && reason.contains("shipped"),
            "{reason}"
        );
        assert!(reason.contains("3.0 points"), "{reason}");
    }

    #[test]
    fn within_the_margin_the_users_slice_decides() {
        // 4 of 400 lost: the 1-point margin allows exactly that.
        let within = check(0.93, 0.94, 400);
        let (accepted, reason) = gate_verdict(Some(0.9), Some(0.8), 10, Some(&within));
        assert!(accepted, "{reason}");
        assert!(reason.contains("untouched"), "{reason}");
        let (accepted, _) = gate_verdict(Some(0.7), Some(0.8), 10, Some(&within));
        assert!(!accepted);
        // One more mistake than the margin allows.
        let (accepted, _) = gate_verdict(Some(0.9), Some(0.8), 10, Some(&check(0.9275, 0.94, 400)));
        assert!(!accepted);
    }

    #[test]
    fn without_shipped_examples_the_gate_is_the_users_slice_alone() {
        assert!(gate_verdict(Some(0.9), Some(0.9), 10, None).0);
        assert!(!gate_verdict(Some(0.8), Some(0.9), 10, None).0);
        let (accepted, reason) = gate_verdict(None, None, 0, None);
        assert!(accepted && reason.contains("without a gate"), "{reason}");
    }
}
