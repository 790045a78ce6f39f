//! The update task: trains a copy of the head on the user's labelled feature
//! vectors (the web's `MLUpdateTask`). The head passed in is never modified;
//! the outcome carries the new head, so a cancelled or failed update leaves
//! the previous one untouched.
//!
//! Training reads cached feature vectors only — the encoder never runs here.

use std::borrow::Cow;
use std::ops::ControlFlow;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::kernels::{self, AdamStep};
use super::network::{self, DataLoss, Gradients, Loss, PassTotals, Penalties, Scratch};
use super::personal::PersonalRules;
use super::{DenseLayer, Head};
use crate::error::{Error, Result};

/// The optimizer and its own hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub enum Optimizer {
    /// Stochastic gradient descent with momentum (0 = plain SGD).
    Sgd {
        #[serde(default = "defaults::momentum")]
        momentum: f32,
    },
    /// Adam with bias correction.
    Adam {
        #[serde(default = "defaults::beta1")]
        beta1: f32,
        #[serde(default = "defaults::beta2")]
        beta2: f32,
        #[serde(default = "defaults::epsilon")]
        epsilon: f32,
    },
}

/// Defaults of the optimizers' own settings (Keras' and PyTorch's).
mod defaults {
    pub fn momentum() -> f32 {
        0.9
    }
    pub fn beta1() -> f32 {
        0.9
    }
    pub fn beta2() -> f32 {
        0.999
    }
    pub fn epsilon() -> f32 {
        1e-7
    }
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer::Adam {
            beta1: defaults::beta1(),
            beta2: defaults::beta2(),
            epsilon: defaults::epsilon(),
        }
    }
}

/// Everything an update can be told. [`UpdateConfig::default`] is what the
/// quality benchmark measures, chosen by its sweep
/// (bench/head-quality-sweep.json; docs/benchmarks.md "Head benchmarks"):
/// Adam at 0.1, batches of 32, 60 class-balanced epochs, weight decay 0.001
/// in summed-loss form (scikit-learn's C = 1000), no hold-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[cfg_attr(
    target_arch = "wasm32",
    derive(tsify::Tsify),
    tsify(missing_as_null, rename = "UpdateSettings")
)]
pub struct UpdateConfig {
    pub loss: Loss,
    pub optimizer: Optimizer,
    pub learning_rate: f32,
    /// Samples per mini-batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Upper bound on passes over the training samples.
    pub epochs: usize,
    /// Shuffle the samples every epoch.
    pub shuffle: bool,
    /// Seeds the validation split and the shuffles: same seed, same samples,
    /// same configuration → the same head, bit for bit, on one platform.
    pub seed: u64,
    /// L2 penalty on the weights, in scikit-learn's form (a prior on the
    /// summed loss, not the mean): the objective is
    /// `mean loss + weight_decay/(2n) · ‖W‖²` for `n` training samples, so
    /// more evidence pulls the head further and one value suits 50 samples
    /// and 5,000 alike (`weight_decay = 1/C`).
    pub weight_decay: f32,
    /// L2-SP penalty toward the head the update starts from (or the given
    /// anchor), against forgetting; summed-loss form like `weight_decay`:
    /// `l2_sp/(2n) · ‖W − W_anchor‖²`.
    pub l2_sp: f32,
    /// Every epoch draws each label equally often (smaller labels are
    /// repeated), so a label with many corrections cannot drown the others;
    /// an epoch is at most 4 times the samples (a label with more than its
    /// share gives a different slice of them each epoch).
    pub class_balanced: bool,
    /// Share of the samples held out (per label, seeded) to measure the head
    /// during training and to stop early. Labels with fewer than
    /// `min_samples_per_label_for_validation` samples keep all theirs for
    /// training.
    /// With a hold-out, the head returned is the one from the epoch with the
    /// lowest held-out loss (the starting head counts as epoch 0).
    pub validation_fraction: f32,
    pub min_samples_per_label_for_validation: usize,
    /// Stop when the held-out loss has not improved for this many epochs
    /// (0 = never stop early), and return the head from the best epoch.
    pub early_stopping_patience: usize,
    /// Stop after this many optimizer steps.
    pub max_steps: Option<usize>,
    /// Stop after this much wall time (milliseconds). Makes the result depend
    /// on the machine's speed, unlike every other setting.
    pub time_budget_ms: Option<f64>,
    /// Keep an MLP head's hidden layer as it is and train only the output
    /// layer (a bundle whose `updatableLayers` is `["output"]`).
    pub freeze_hidden_layer: bool,
    /// Output rows (label indices) the update leaves exactly as they are:
    /// no gradient, decay or penalty reaches them. Not an app option: the
    /// classifier's working head freezes the labels no correction touched
    /// (see `classifier::at_once`).
    #[serde(skip)]
    pub frozen_labels: Vec<usize>,
    /// How a personal update starts and which shipped examples it keeps
    /// (`head::personal`). Not an app option: changed only to measure what
    /// the rules do (the personalization benchmark's variants).
    #[serde(skip)]
    pub personal: PersonalRules,
    /// The soft targets a personal update distils toward
    /// (`PersonalRules::distillation`, off by default). Not an app option:
    /// set per update, like `frozen_labels`.
    #[serde(skip)]
    pub soft_targets: Option<std::sync::Arc<super::network::SoftTargets>>,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            loss: Loss::CrossEntropy,
            optimizer: Optimizer::default(),
            learning_rate: 0.1,
            batch_size: 32,
            epochs: 60,
            shuffle: true,
            seed: 0,
            weight_decay: 0.001,
            l2_sp: 0.0,
            class_balanced: true,
            validation_fraction: 0.0,
            min_samples_per_label_for_validation: 4,
            early_stopping_patience: 0,
            max_steps: None,
            time_budget_ms: None,
            freeze_hidden_layer: false,
            frozen_labels: Vec::new(),
            personal: PersonalRules::default(),
            soft_targets: None,
        }
    }
}

impl UpdateConfig {
    /// Checks every value against its allowed range.
    pub fn validate(&self) -> Result<()> {
        fn range(name: &str, value: f64, low: f64, high: f64, low_inclusive: bool) -> Result<()> {
            let above_low = if low_inclusive {
                value >= low
            } else {
                value > low
            };
            if value.is_finite() && above_low && value <= high {
                Ok(())
            } else {
                let bracket = if low_inclusive { '[' } else { '(' };
                Err(Error::Config(format!(
                    "{name} must be in {bracket}{low}, {high}]; found {value}"
                )))
            }
        }
        range("learningRate", self.learning_rate as f64, 0.0, 10.0, false)?;
        range("batchSize", self.batch_size as f64, 1.0, 65536.0, true)?;
        range("epochs", self.epochs as f64, 1.0, 100_000.0, true)?;
        range("weightDecay", self.weight_decay as f64, 0.0, 1e4, true)?;
        range("l2Sp", self.l2_sp as f64, 0.0, 1e4, true)?;
        range(
            "validationFraction",
            self.validation_fraction as f64,
            0.0,
            0.5,
            true,
        )?;
        range(
            "minSamplesPerLabelForValidation",
            self.min_samples_per_label_for_validation as f64,
            2.0,
            1e9,
            true,
        )?;
        if let Some(steps) = self.max_steps {
            range("maxSteps", steps as f64, 1.0, 1e12, true)?;
        }
        if let Some(ms) = self.time_budget_ms {
            range("timeBudgetMs", ms, 0.0, 1e9, false)?;
        }
        match self.optimizer {
            Optimizer::Sgd { momentum } => {
                range("optimizer.momentum", momentum as f64, 0.0, 0.999, true)
            }
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
            } => {
                range("optimizer.beta1", beta1 as f64, 0.0, 0.9999, true)?;
                range("optimizer.beta2", beta2 as f64, 0.0, 0.99999, true)?;
                range("optimizer.epsilon", epsilon as f64, 0.0, 1.0, false)
            }
        }
    }
}

/// The labelled samples of an update: `labels.len()` cached feature vectors,
/// row-major in `features`, and each one's label index in the head.
#[derive(Debug, Clone, Copy)]
pub struct TrainingSet<'a> {
    pub features: &'a [f32],
    pub labels: &'a [usize],
}

/// When in the update an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub enum UpdateEventKind {
    /// Before training: stored corrections without a vector under this
    /// encoder (imported, or stored before an encoder change) are being
    /// embedded; `embedding` says how far. Only a classifier's update has
    /// them.
    Embedding,
    Began,
    BatchEnd,
    EpochEnd,
    Done,
}

/// A progress report. Losses are the data loss (penalties excluded);
/// `train_*` of a batch are measured on that batch, of an epoch over the
/// epoch's batches as they were trained, and at `Began`/`Done` on all
/// training samples with the starting/final head. `validation_*` are known
/// when samples were held out, at epoch ends and at `Done`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct UpdateEvent {
    pub kind: UpdateEventKind,
    /// 0-based epoch (at `Done`: epochs completed).
    pub epoch: usize,
    /// 0-based mini-batch within the epoch (at `EpochEnd`/`Done`: batches in it).
    pub batch: usize,
    /// Optimizer steps taken so far.
    pub step: usize,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub validation_loss: Option<f32>,
    pub validation_accuracy: Option<f32>,
    /// At `Embedding`: how far the embedding is (`None` at other kinds).
    pub embedding: Option<EmbeddingProgress>,
}

impl UpdateEvent {
    /// The event that says how far an update's embedding is.
    pub fn embedding(progress: EmbeddingProgress) -> Self {
        UpdateEvent {
            kind: UpdateEventKind::Embedding,
            epoch: 0,
            batch: 0,
            step: 0,
            train_loss: 0.0,
            train_accuracy: 0.0,
            validation_loss: None,
            validation_accuracy: None,
            embedding: Some(progress),
        }
    }
}

/// How far a big embedding job is (an import's, or an update's before it
/// trains: see `classifier::embedding_pool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct EmbeddingProgress {
    /// Texts embedded so far.
    pub done: usize,
    /// Texts the job embeds.
    pub total: usize,
    /// Workers of a pool embedding them (0: the classifier's own encoder).
    pub workers: usize,
}

/// Why an update stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub enum StopReason {
    EpochsDone,
    EarlyStopped,
    StepBudget,
    TimeBudget,
}

/// The result of a finished update.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(
    target_arch = "wasm32",
    derive(tsify::Tsify),
    tsify(missing_as_null, rename = "UpdateFigures")
)]
pub struct UpdateOutcome {
    /// The trained head (not part of the serialised report).
    #[serde(skip)]
    pub head: Head,
    pub stop_reason: StopReason,
    pub epochs: usize,
    pub steps: usize,
    pub training_samples: usize,
    pub validation_samples: usize,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub validation_loss: Option<f32>,
    pub validation_accuracy: Option<f32>,
    /// The epoch whose head was returned (differs from the last one when
    /// early stopping restored the best).
    pub best_epoch: usize,
    pub millis: f64,
}

/// Trains a copy of `head` on `samples`. `now_ms` is the clock for the time
/// budget; `observer` sees every event and may return `Break` to cancel,
/// which is honoured between mini-batches and gives [`Error::Cancelled`].
///
/// The stages: [`Training::prepare`] (checks, the hold-out split, the
/// optimizer's state), [`Training::step`] per mini-batch,
/// [`Training::end_epoch`] (held-out loss, keeping the best epoch, early
/// stopping) and [`Training::finish`]; events are built in one place,
/// [`Training::event`].
pub fn run_update(
    head: &Head,
    anchor: Option<&Head>,
    samples: TrainingSet<'_>,
    config: &UpdateConfig,
    now_ms: &dyn Fn() -> f64,
    observer: &mut dyn FnMut(&UpdateEvent) -> ControlFlow<()>,
) -> Result<UpdateOutcome> {
    let started = now_ms();
    let mut run = Training::prepare(
        Cow::Borrowed(head),
        anchor.map(Cow::Borrowed),
        Cow::Borrowed(samples.features),
        Cow::Borrowed(samples.labels),
        Cow::Borrowed(config),
    )?;
    let train = run.evaluate_train();
    let validation = run.evaluate_validation();
    notify(
        observer,
        run.event(UpdateEventKind::Began, 0, 0, train, validation),
    )?;

    'epochs: for epoch in 0..config.epochs {
        let order = run.epoch_order();
        let mut epoch_totals = PassTotals::default();
        for (batch, rows) in order.chunks(config.batch_size).enumerate() {
            if config.max_steps.is_some_and(|max| run.steps >= max) {
                run.stop_reason = StopReason::StepBudget;
                break 'epochs;
            }
            let totals = run.step(rows)?;
            epoch_totals.loss_sum += totals.loss_sum;
            epoch_totals.correct += totals.correct;
            epoch_totals.samples += totals.samples;
            run.batches_in_last_epoch = batch + 1;
            notify(
                observer,
                run.event(UpdateEventKind::BatchEnd, epoch, batch, totals, None),
            )?;
            if config
                .time_budget_ms
                .is_some_and(|budget| now_ms() - started >= budget)
            {
                run.stop_reason = StopReason::TimeBudget;
                break 'epochs;
            }
        }
        run.epochs = epoch + 1;
        let validation = run.evaluate_validation();
        let batches = run.batches_in_last_epoch;
        notify(
            observer,
            run.event(
                UpdateEventKind::EpochEnd,
                epoch,
                batches,
                epoch_totals,
                validation,
            ),
        )?;
        if run.end_epoch(validation) == ControlFlow::Break(()) {
            run.stop_reason = StopReason::EarlyStopped;
            break;
        }
    }
    run.finish(observer, &|| now_ms() - started)
}

/// An update run a few optimizer steps at a time, for a caller that must
/// stay responsive between them: the classifier's working head trains
/// between the messages its Web Worker answers. It owns what it trains on.
/// It takes what such a run needs and no more — no hold-out, no time budget,
/// no observer — and stepped through to the end it gives the head
/// [`run_update`] gives for the same samples and settings, bit for bit.
pub struct SteppedUpdate {
    run: Training<'static>,
    /// The current epoch's rows in training order, and the next batch's
    /// start in it.
    order: Vec<usize>,
    next: usize,
}

impl SteppedUpdate {
    /// Checks the samples and settings and sets up the optimizer (no step
    /// runs yet).
    pub fn new(
        head: Head,
        features: Vec<f32>,
        labels: Vec<usize>,
        config: UpdateConfig,
    ) -> Result<Self> {
        if config.validation_fraction > 0.0 || config.time_budget_ms.is_some() {
            return Err(Error::Config(
                "an update run step by step has no hold-out and no time budget".into(),
            ));
        }
        let run = Training::prepare(
            Cow::Owned(head),
            None,
            Cow::Owned(features),
            Cow::Owned(labels),
            Cow::Owned(config),
        )?;
        Ok(SteppedUpdate {
            run,
            order: Vec::new(),
            next: 0,
        })
    }

    /// Whether every step the settings allow has run.
    pub fn is_done(&self) -> bool {
        let config = &self.run.config;
        let epoch_over = self.next >= self.order.len();
        config.max_steps.is_some_and(|max| self.run.steps >= max)
            || (epoch_over && self.run.epochs >= config.epochs)
    }

    /// Runs at most `steps` more optimizer steps, in [`run_update`]'s order;
    /// true once the update is done.
    pub fn advance(&mut self, steps: usize) -> Result<bool> {
        for _ in 0..steps {
            if self.is_done() {
                break;
            }
            if self.next >= self.order.len() {
                self.order = self.run.epoch_order();
                self.next = 0;
                self.run.batches_in_last_epoch = 0;
            }
            let end = (self.next + self.run.config.batch_size).min(self.order.len());
            self.run.step(&self.order[self.next..end])?;
            self.next = end;
            self.run.batches_in_last_epoch += 1;
            if self.next >= self.order.len() {
                self.run.epochs += 1;
            }
        }
        if self.run.steps >= self.run.config.max_steps.unwrap_or(usize::MAX)
            && self.run.epochs < self.run.config.epochs
        {
            self.run.stop_reason = StopReason::StepBudget;
        }
        Ok(self.is_done())
    }

    /// The trained head and its figures; runs whatever steps remain first.
    pub fn finish(mut self) -> Result<UpdateOutcome> {
        while !self.advance(usize::MAX)? {}
        self.run.finish(&mut |_| ControlFlow::Continue(()), &|| 0.0)
    }
}

/// Passes an event to the observer; `Break` cancels the update.
fn notify(
    observer: &mut dyn FnMut(&UpdateEvent) -> ControlFlow<()>,
    event: UpdateEvent,
) -> Result<()> {
    match observer(&event) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(Error::Cancelled),
    }
}

/// One update in progress: the samples, the layers being trained and the
/// optimizer's memory, and where the update is.
///
/// Borrows what it trains on, or owns it (`Training<'static>`, in a
/// [`SteppedUpdate`] that outlives the call that began it).
struct Training<'a> {
    head: Cow<'a, Head>,
    /// `None`: the head it starts from.
    anchor: Option<Cow<'a, Head>>,
    config: Cow<'a, UpdateConfig>,
    features: Cow<'a, [f32]>,
    labels: Cow<'a, [usize]>,
    train_rows: Vec<usize>,
    validation_rows: Vec<usize>,
    by_label: Vec<Vec<usize>>,
    penalties: Penalties,
    /// Layers before this one keep their weights (a frozen hidden layer).
    first_trained: usize,
    layers: Vec<DenseLayer>,
    grads: Gradients,
    state: OptimizerState,
    scratch: Scratch,
    rng: ChaCha8Rng,
    /// The lowest held-out loss so far, its epoch (0: the starting head) and
    /// that epoch's layers; `None` without a hold-out.
    best: Option<(f32, usize, Vec<DenseLayer>)>,
    epochs_without_improvement: usize,
    steps: usize,
    epochs: usize,
    batches_in_last_epoch: usize,
    stop_reason: StopReason,
}

impl<'a> Training<'a> {
    /// Checks the samples and settings, splits off the hold-out and sets up
    /// the optimizer.
    fn prepare(
        head: Cow<'a, Head>,
        anchor: Option<Cow<'a, Head>>,
        features: Cow<'a, [f32]>,
        labels: Cow<'a, [usize]>,
        config: Cow<'a, UpdateConfig>,
    ) -> Result<Self> {
        config.validate()?;
        check_samples(
            &head,
            TrainingSet {
                features: &features,
                labels: &labels,
            },
        )?;
        if let Some(anchor) = &anchor {
            check_same_shape(&head, anchor)?;
        }
        if config.freeze_hidden_layer && head.layers().len() < 2 {
            return Err(Error::Config(
                "freezeHiddenLayer: a linear head has no hidden layer to freeze".into(),
            ));
        }
        if let Some(&label) = config
            .frozen_labels
            .iter()
            .find(|&&l| l >= head.labels().len())
        {
            return Err(Error::Config(format!(
                "frozen label {label} is out of range ({} labels)",
                head.labels().len()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let (train_rows, validation_rows) =
            split_validation(&labels, head.labels().len(), &config, &mut rng);
        let by_label = rows_by_label(&train_rows, &labels, head.labels().len());
        let penalties = Penalties {
            weight_decay: config.weight_decay / train_rows.len() as f32,
            l2_sp: config.l2_sp / train_rows.len() as f32,
        };
        let layers: Vec<DenseLayer> = head.layers().to_vec();
        let first_trained = usize::from(config.freeze_hidden_layer);
        let state = OptimizerState::new(&layers, config.optimizer);
        let mut run = Training {
            head,
            anchor,
            config,
            features,
            labels,
            train_rows,
            validation_rows,
            by_label,
            penalties,
            first_trained,
            grads: Gradients::zeros_like(&layers),
            state,
            layers,
            scratch: Scratch::default(),
            rng,
            best: None,
            epochs_without_improvement: 0,
            steps: 0,
            epochs: 0,
            batches_in_last_epoch: 0,
            stop_reason: StopReason::EpochsDone,
        };
        run.best = run
            .evaluate_validation()
            .map(|t| (t.mean_loss(), 0, run.layers.clone()));
        Ok(run)
    }

    fn evaluate(&mut self, validation: bool) -> Option<PassTotals> {
        let rows = if validation {
            &self.validation_rows
        } else {
            &self.train_rows
        };
        (!rows.is_empty()).then(|| {
            network::evaluate(
                &self.layers,
                &self.features,
                &self.labels,
                rows,
                self.config.loss,
                &mut self.scratch,
            )
        })
    }

    /// Loss and accuracy over every training row with the current layers.
    fn evaluate_train(&mut self) -> PassTotals {
        self.evaluate(false).expect("at least one training row")
    }

    fn evaluate_validation(&mut self) -> Option<PassTotals> {
        self.evaluate(true)
    }

    /// The rows of the next epoch, in training order.
    fn epoch_order(&mut self) -> Vec<usize> {
        epoch_order(&self.by_label, &self.config, &mut self.rng)
    }

    /// One optimizer step on `rows`; what the batch measured before it.
    fn step(&mut self, rows: &[usize]) -> Result<PassTotals> {
        let config = &*self.config;
        self.grads.clear();
        let totals = network::accumulate_gradients(
            &self.layers,
            &self.features,
            &self.labels,
            rows,
            DataLoss {
                loss: config.loss,
                distillation: config.soft_targets.as_deref(),
            },
            &mut self.grads,
            &mut self.scratch,
        );
        if !totals.loss_sum.is_finite() {
            return Err(Error::Training(format!(
                "the loss became {} at step {}: the learning rate ({}) is too high for these \
                 samples; the previous head is unchanged",
                totals.loss_sum,
                self.steps + 1,
                config.learning_rate
            )));
        }
        network::add_penalty_gradients(
            &self.layers,
            self.anchor.as_deref().unwrap_or(&self.head).layers(),
            self.penalties,
            &mut self.grads,
        );
        if !config.frozen_labels.is_empty() {
            // A zero gradient moves neither SGD nor Adam (whose moments of a
            // never-moved parameter stay zero).
            let out = self.grads.layers.last_mut().expect("one or two layers");
            let inputs = out.inputs;
            for &label in &config.frozen_labels {
                out.weights[label * inputs..(label + 1) * inputs].fill(0.0);
                out.bias[label] = 0.0;
            }
        }
        if !self.grads.step_is_finite() {
            // The softmax saturates to NaN before the loss shows it.
            return Err(Error::Training(format!(
                "the gradient became non-finite at step {}: the learning rate ({}) is too high \
                 for these samples; the previous head is unchanged",
                self.steps + 1,
                config.learning_rate
            )));
        }
        self.steps += 1;
        self.state.step(
            &mut self.layers[self.first_trained..],
            &self.grads.layers[self.first_trained..],
            config.learning_rate,
            self.steps as u32,
        );
        Ok(totals)
    }

    /// Keeps the epoch's layers if its held-out loss is the best so far;
    /// `Break` when early stopping's patience has run out.
    fn end_epoch(&mut self, validation: Option<PassTotals>) -> ControlFlow<()> {
        let (Some(validation), Some((best_loss, best_epoch, best_layers))) =
            (validation, self.best.as_mut())
        else {
            return ControlFlow::Continue(());
        };
        if validation.mean_loss() < *best_loss {
            *best_loss = validation.mean_loss();
            *best_epoch = self.epochs;
            best_layers.clone_from(&self.layers);
            self.epochs_without_improvement = 0;
            return ControlFlow::Continue(());
        }
        self.epochs_without_improvement += 1;
        let patience = self.config.early_stopping_patience;
        if patience > 0 && self.epochs_without_improvement >= patience {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// The update's event at this point, from the totals of a pass.
    fn event(
        &self,
        kind: UpdateEventKind,
        epoch: usize,
        batch: usize,
        train: PassTotals,
        validation: Option<PassTotals>,
    ) -> UpdateEvent {
        UpdateEvent {
            kind,
            epoch,
            batch,
            step: self.steps,
            train_loss: train.mean_loss(),
            train_accuracy: train.accuracy(),
            validation_loss: validation.map(|t| t.mean_loss()),
            validation_accuracy: validation.map(|t| t.accuracy()),
            embedding: None,
        }
    }

    /// The best epoch's head (the last one without a hold-out), checked to
    /// be finite, its final figures, and the `Done` event.
    fn finish(
        mut self,
        observer: &mut dyn FnMut(&UpdateEvent) -> ControlFlow<()>,
        elapsed_ms: &dyn Fn() -> f64,
    ) -> Result<UpdateOutcome> {
        let best_epoch = match self.best.take() {
            Some((_, best_epoch, best_layers)) => {
                self.layers = best_layers;
                best_epoch
            }
            None => self.epochs,
        };
        // A hidden unit can go non-finite without the loss showing it (a −∞
        // pre-activation leaves the ReLU as 0); never hand such a head back.
        for (i, layer) in self.layers.iter().enumerate() {
            let finite = layer
                .weights
                .iter()
                .chain(&layer.bias)
                .all(|v| v.is_finite());
            if !finite {
                return Err(Error::Training(format!(
                    "layer {} became non-finite: the learning rate ({}) is too high for these \
                     samples; the previous head is unchanged",
                    i + 1,
                    self.config.learning_rate
                )));
            }
        }
        let train = self.evaluate_train();
        let validation = self.evaluate_validation();
        let done = self.event(
            UpdateEventKind::Done,
            self.epochs,
            self.batches_in_last_epoch,
            train,
            validation,
        );
        // The update has finished; a cancel request arriving now is too late
        // to matter and is ignored.
        let _ = observer(&done);
        let mut new_head = self.head.into_owned();
        new_head.layers_mut().clone_from_slice(&self.layers);
        Ok(UpdateOutcome {
            head: new_head,
            stop_reason: self.stop_reason,
            epochs: self.epochs,
            steps: self.steps,
            training_samples: self.train_rows.len(),
            validation_samples: self.validation_rows.len(),
            train_loss: done.train_loss,
            train_accuracy: done.train_accuracy,
            validation_loss: done.validation_loss,
            validation_accuracy: done.validation_accuracy,
            best_epoch,
            millis: elapsed_ms(),
        })
    }
}

/// Rejects what cannot be trained on, with a message that says why.
fn check_samples(head: &Head, samples: TrainingSet<'_>) -> Result<()> {
    let rows = samples.labels.len();
    if rows == 0 {
        return Err(Error::Training(
            "there are no samples to train on; record some feedback first".into(),
        ));
    }
    head.check_features(samples.features, rows)?;
    if let Some(&bad) = samples.labels.iter().find(|&&l| l >= head.labels().len()) {
        return Err(Error::Config(format!(
            "sample label index {bad} is out of range: the head has {} labels",
            head.labels().len()
        )));
    }
    // A head read back from storage skipped `from_layers`: check it again.
    head.validate()
}

fn check_same_shape(head: &Head, anchor: &Head) -> Result<()> {
    let shape = |h: &Head| {
        h.layers()
            .iter()
            .map(|l| (l.inputs, l.outputs))
            .collect::<Vec<_>>()
    };
    if shape(head) != shape(anchor) {
        return Err(Error::ShapeMismatch {
            what: "L2-SP anchor head".into(),
            expected: format!("layers {:?} (inputs, outputs)", shape(head)),
            found: format!("{:?}", shape(anchor)),
        });
    }
    Ok(())
}

/// Holds out `validation_fraction` of each label's samples (at least one,
/// never all), for labels with enough samples; returns (train, validation).
pub(crate) fn split_validation(
    labels: &[usize],
    label_count: usize,
    config: &UpdateConfig,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<usize>) {
    let all: Vec<usize> = (0..labels.len()).collect();
    if config.validation_fraction == 0.0 {
        return (all, Vec::new());
    }
    let mut train = Vec::new();
    let mut validation = Vec::new();
    for mut rows in rows_by_label(&all, labels, label_count) {
        if rows.len() < config.min_samples_per_label_for_validation {
            train.extend(rows);
            continue;
        }
        rows.shuffle(rng);
        let held = ((rows.len() as f32 * config.validation_fraction).round() as usize)
            .clamp(1, rows.len() - 1);
        validation.extend_from_slice(&rows[..held]);
        train.extend_from_slice(&rows[held..]);
    }
    train.sort_unstable();
    validation.sort_unstable();
    (train, validation)
}

fn rows_by_label(rows: &[usize], labels: &[usize], label_count: usize) -> Vec<Vec<usize>> {
    let mut by_label = vec![Vec::new(); label_count];
    for &row in rows {
        by_label[labels[row]].push(row);
    }
    by_label.retain(|rows| !rows.is_empty());
    by_label
}

/// A class-balanced epoch holds at most this many times the training rows
/// (see [`epoch_order`]).
const MAX_BALANCED_EPOCH_FACTOR: usize = 4;

/// The rows of one epoch, in training order.
fn epoch_order(by_label: &[Vec<usize>], config: &UpdateConfig, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order = Vec::new();
    if config.class_balanced {
        // Every label contributes as many rows as the largest one (its rows
        // in a fresh order, repeated as often as needed), but an epoch is
        // at most MAX_BALANCED_EPOCH_FACTOR times the rows there are: a
        // skewed store (one label with 9,000 corrections beside 999 with
        // one) would otherwise make every epoch 9 million rows. A label
        // with more rows than its share then gives a different slice of
        // them each epoch.
        let rows_total: usize = by_label.iter().map(Vec::len).sum();
        let largest = by_label.iter().map(Vec::len).max().unwrap_or(0);
        let share = (MAX_BALANCED_EPOCH_FACTOR * rows_total).div_ceil(by_label.len().max(1));
        let target = largest.min(share);
        for rows in by_label {
            let mut rows = rows.clone();
            if config.shuffle {
                rows.shuffle(rng);
            } else if rows.len() > target {
                // Unshuffled, still a different slice each epoch.
                let start = rng.random_range(0..rows.len());
                rows.rotate_left(start);
            }
            order.extend(rows.iter().cycle().take(target));
        }
    } else {
        order.extend(by_label.iter().flatten());
        order.sort_unstable();
    }
    if config.shuffle {
        order.shuffle(rng);
    }
    order
}

/// Per-parameter optimizer memory, laid out like the layers.
enum OptimizerState {
    Sgd {
        momentum: f32,
        velocity: Vec<DenseLayer>,
    },
    Adam {
        beta1: f32,
        beta2: f32,
        epsilon: f32,
        first_moment: Vec<DenseLayer>,
        second_moment: Vec<DenseLayer>,
    },
}

impl OptimizerState {
    fn layer_count(&self) -> usize {
        match self {
            OptimizerState::Sgd { velocity, .. } => velocity.len(),
            OptimizerState::Adam { first_moment, .. } => first_moment.len(),
        }
    }

    fn new(layers: &[DenseLayer], optimizer: Optimizer) -> Self {
        let zeros = || Gradients::zeros_like(layers).layers;
        match optimizer {
            Optimizer::Sgd { momentum } => OptimizerState::Sgd {
                momentum,
                velocity: zeros(),
            },
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
            } => OptimizerState::Adam {
                beta1,
                beta2,
                epsilon,
                first_moment: zeros(),
                second_moment: zeros(),
            },
        }
    }

    /// Step `step` (1-based) over the weights and biases of `layers`, the
    /// trained tail of the head (its state is kept for every layer; a frozen
    /// head layer's is never used).
    fn step(
        &mut self,
        layers: &mut [DenseLayer],
        grads: &[DenseLayer],
        learning_rate: f32,
        step: u32,
    ) {
        let skip = self.layer_count() - layers.len();
        match self {
            OptimizerState::Sgd { momentum, velocity } => {
                for ((layer, grad), v) in layers
                    .iter_mut()
                    .zip(grads)
                    .zip(velocity.iter_mut().skip(skip))
                {
                    let sgd = kernels::sgd_momentum_step;
                    sgd(
                        &mut layer.weights,
                        &grad.weights,
                        &mut v.weights,
                        learning_rate,
                        *momentum,
                    );
                    sgd(
                        &mut layer.bias,
                        &grad.bias,
                        &mut v.bias,
                        learning_rate,
                        *momentum,
                    );
                }
            }
            OptimizerState::Adam {
                beta1,
                beta2,
                epsilon,
                first_moment,
                second_moment,
            } => {
                let adam = AdamStep::new(learning_rate, *beta1, *beta2, *epsilon, step);
                let state = first_moment
                    .iter_mut()
                    .zip(second_moment.iter_mut())
                    .skip(skip);
                for ((layer, grad), (m, v)) in layers.iter_mut().zip(grads).zip(state) {
                    kernels::adam_step(
                        &mut layer.weights,
                        &grad.weights,
                        &mut m.weights,
                        &mut v.weights,
                        &adam,
                    );
                    kernels::adam_step(
                        &mut layer.bias,
                        &grad.bias,
                        &mut m.bias,
                        &mut v.bias,
                        &adam,
                    );
                }
            }
        }
    }
}
