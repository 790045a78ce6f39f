//! The updatable head: one or two dense layers on top of the frozen encoder's
//! feature vector, the only part of the model that learns on the device.
//!
//! - [`Head`]: weights, string labels, prediction, growing a new label;
//! - [`codec`]: the head as bytes (stored versions, exports, bundles);
//! - [`network`]: forward and backward passes and the training objective;
//! - [`train`]: the update task (optimizers, early stopping, events);
//! - [`kernels`]: the simd128 / scalar inner loops everything above runs on.

pub mod codec;
pub mod kernels;
pub mod network;
pub mod personal;
pub mod train;

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The head's shape beyond its input and output sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub enum HeadArchitecture {
    /// features → labels, softmax (multinomial logistic regression).
    Linear,
    /// features → `hidden` units, ReLU → labels, softmax.
    Mlp { hidden: usize },
}

/// One fully connected layer. Weights are row-major `[outputs][inputs]`, so
/// each output unit is one contiguous dot product with the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DenseLayer {
    pub inputs: usize,
    pub outputs: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

impl DenseLayer {
    /// A layer with weights drawn uniformly from `±limit` (all zero for a
    /// zero limit) and zero bias.
    fn uniform(inputs: usize, outputs: usize, limit: f32, rng: &mut ChaCha8Rng) -> Self {
        let weights = (0..inputs * outputs)
            .map(|_| {
                if limit > 0.0 {
                    rng.random_range(-limit..=limit)
                } else {
                    0.0
                }
            })
            .collect();
        DenseLayer {
            inputs,
            outputs,
            weights,
            bias: vec![0.0; outputs],
        }
    }

    /// The weights of output unit `unit`.
    pub fn row(&self, unit: usize) -> &[f32] {
        &self.weights[unit * self.inputs..(unit + 1) * self.inputs]
    }

    /// Number of trainable parameters (weights and biases).
    pub fn parameter_count(&self) -> usize {
        self.weights.len() + self.bias.len()
    }

    fn check(&self, name: &str) -> Result<()> {
        if self.inputs == 0 || self.outputs == 0 {
            return Err(Error::Config(format!(
                "{name} has {} inputs and {} outputs; both must be at least 1",
                self.inputs, self.outputs
            )));
        }
        if self.weights.len() != self.inputs * self.outputs {
            return Err(Error::ShapeMismatch {
                what: format!("{name} weights"),
                expected: format!(
                    "{} × {} = {} values",
                    self.outputs,
                    self.inputs,
                    self.inputs * self.outputs
                ),
                found: format!("{} values", self.weights.len()),
            });
        }
        if self.bias.len() != self.outputs {
            return Err(Error::ShapeMismatch {
                what: format!("{name} bias"),
                expected: format!("{} values", self.outputs),
                found: format!("{} values", self.bias.len()),
            });
        }
        check_finite(&format!("{name} weights"), &self.weights)?;
        check_finite(&format!("{name} bias"), &self.bias)
    }
}

/// A classifier head: dense layers ending in a softmax over string labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    labels: Vec<String>,
    /// One layer ([`HeadArchitecture::Linear`]) or two ([`HeadArchitecture::Mlp`]).
    layers: Vec<DenseLayer>,
}

/// One label's probability, as returned by [`Head::predict`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct LabelProbability {
    pub label: String,
    pub probability: f32,
}

impl Head {
    /// A freshly initialised head; the same seed gives the same weights on
    /// every platform.
    ///
    /// - Linear: all zeros, as logistic regression starts. The problem is
    ///   convex, so there is no symmetry to break, and random weights in
    ///   directions the few training vectors never reach would never be
    ///   corrected: they only add noise to predictions on new text (measured
    ///   by the quality benchmark: ~1 point at 5 examples per label).
    /// - MLP: He-uniform hidden layer (ReLU), Glorot-uniform output layer,
    ///   zero biases, drawn from a ChaCha8 stream seeded with `seed`.
    pub fn new_seeded(
        input_dim: usize,
        architecture: HeadArchitecture,
        labels: Vec<String>,
        seed: u64,
    ) -> Result<Self> {
        check_size(input_dim, architecture, labels.len())?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let classes = labels.len();
        let layers = match architecture {
            HeadArchitecture::Linear => {
                vec![DenseLayer::uniform(input_dim, classes, 0.0, &mut rng)]
            }
            HeadArchitecture::Mlp { hidden } => {
                let he = (6.0 / input_dim.max(1) as f32).sqrt();
                let glorot = (6.0 / (hidden + classes.max(1)) as f32).sqrt();
                vec![
                    DenseLayer::uniform(input_dim, hidden, he, &mut rng),
                    DenseLayer::uniform(hidden, classes, glorot, &mut rng),
                ]
            }
        };
        Head::from_layers(labels, layers)
    }

    /// A head from given weights (e.g. the shipped generic head), checked:
    /// one or two layers whose sizes chain, finite values, at least two
    /// distinct, non-empty labels.
    pub fn from_layers(labels: Vec<String>, layers: Vec<DenseLayer>) -> Result<Self> {
        let head = Head { labels, layers };
        head.validate()?;
        Ok(head)
    }

    /// Checks every invariant [`Head::from_layers`] promises; used again after
    /// deserialising a stored head.
    pub fn validate(&self) -> Result<()> {
        if self.labels.len() < 2 {
            return Err(Error::Config(format!(
                "a classifier head needs at least two labels; found {}",
                self.labels.len()
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.labels.len());
        for label in &self.labels {
            check_label(label)?;
            if !seen.insert(label.as_str()) {
                return Err(Error::Config(format!("the label {label:?} appears twice")));
            }
        }
        if self.layers.is_empty() || self.layers.len() > 2 {
            return Err(Error::Config(format!(
                "a head has one or two dense layers; found {}",
                self.layers.len()
            )));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            layer.check(&format!("layer {}", i + 1))?;
        }
        if let [first, second] = &self.layers[..] {
            if first.outputs != second.inputs {
                return Err(Error::ShapeMismatch {
                    what: "layer 2 inputs".into(),
                    expected: format!("{} (layer 1 outputs)", first.outputs),
                    found: second.inputs.to_string(),
                });
            }
        }
        check_size(self.input_dim(), self.architecture(), self.labels.len())?;
        let last = self.layers.last().expect("one or two layers");
        if last.outputs != self.labels.len() {
            return Err(Error::ShapeMismatch {
                what: "output layer size".into(),
                expected: format!("{} (one per label)", self.labels.len()),
                found: last.outputs.to_string(),
            });
        }
        Ok(())
    }

    pub fn architecture(&self) -> HeadArchitecture {
        match &self.layers[..] {
            [_] => HeadArchitecture::Linear,
            [hidden, _] => HeadArchitecture::Mlp {
                hidden: hidden.outputs,
            },
            _ => unreachable!("validated: one or two layers"),
        }
    }

    /// Size of the feature vector the head reads.
    pub fn input_dim(&self) -> usize {
        self.layers[0].inputs
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn layers(&self) -> &[DenseLayer] {
        &self.layers
    }

    pub(crate) fn layers_mut(&mut self) -> &mut [DenseLayer] {
        &mut self.layers
    }

    pub fn parameter_count(&self) -> usize {
        self.layers.iter().map(DenseLayer::parameter_count).sum()
    }

    /// The index of `label`, or an [`Error::UnknownLabel`] listing the known ones.
    pub fn label_index(&self, label: &str) -> Result<usize> {
        self.labels
            .iter()
            .position(|l| l == label)
            .ok_or_else(|| Error::UnknownLabel {
                label: label.to_string(),
                known: self.labels.clone(),
            })
    }

    /// Adds a label the user invented and returns its index (or the index it
    /// already has). The output layer grows by one row; every existing row
    /// and bias stays exactly as it was, so the relative probabilities of the
    /// old labels do not change. The new row starts at zero weights with the
    /// lowest existing bias, so it is not predicted until it has been trained.
    pub fn add_label(&mut self, label: &str) -> Result<usize> {
        if let Ok(index) = self.label_index(label) {
            return Ok(index);
        }
        check_label(label)?;
        let out = self.layers.last_mut().expect("one or two layers");
        let lowest_bias = out.bias.iter().copied().fold(f32::INFINITY, f32::min);
        out.weights.extend(std::iter::repeat_n(0.0, out.inputs));
        out.bias.push(lowest_bias);
        out.outputs += 1;
        self.labels.push(label.to_string());
        Ok(self.labels.len() - 1)
    }

    /// Class probabilities (softmax) for one feature vector, in label order.
    pub fn probabilities(&self, features: &[f32]) -> Result<Vec<f32>> {
        self.check_features(features, 1)?;
        let mut scratch = network::Scratch::default();
        Ok(network::forward_one(&self.layers, features, &mut scratch).to_vec())
    }

    /// How many of `samples` (a vector and its true label, by name) have
    /// the true label as their most probable one, and how many there are.
    /// Labels this head does not know count as wrong; ties go to the earlier
    /// label, as in [`Head::predict`]. The one accuracy every part reports:
    /// the validation gate and the bundle tool's held-out score.
    pub fn count_correct<'a>(
        &self,
        samples: impl IntoIterator<Item = (&'a [f32], &'a str)>,
    ) -> Result<(usize, usize)> {
        let (mut correct, mut total) = (0usize, 0usize);
        for (vector, label) in samples {
            let probabilities = self.probabilities(vector)?;
            let best = probabilities.iter().enumerate().fold(0, |best, (i, p)| {
                if *p > probabilities[best] {
                    i
                } else {
                    best
                }
            });
            correct += usize::from(self.labels[best] == label);
            total += 1;
        }
        Ok((correct, total))
    }

    /// Every label with its probability, most probable first.
    pub fn predict(&self, features: &[f32]) -> Result<Vec<LabelProbability>> {
        let probabilities = self.probabilities(features)?;
        let mut ranked: Vec<LabelProbability> = self
            .labels
            .iter()
            .zip(probabilities)
            .map(|(label, probability)| LabelProbability {
                label: label.clone(),
                probability,
            })
            .collect();
        ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        Ok(ranked)
    }

    /// Checks that `features` holds `rows` finite vectors of the head's input size.
    pub fn check_features(&self, features: &[f32], rows: usize) -> Result<()> {
        let dim = self.input_dim();
        if features.len() != rows * dim {
            return Err(Error::ShapeMismatch {
                what: "feature vectors".into(),
                expected: format!("{rows} × {dim} = {} values", rows * dim),
                found: format!("{} values", features.len()),
            });
        }
        check_finite("feature vectors", features)
    }
}

pub(crate) fn check_label(label: &str) -> Result<()> {
    if label.trim().is_empty() {
        return Err(Error::Config(
            "a label must not be empty or only whitespace".into(),
        ));
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(Error::Config(format!(
            "a label may have at most {MAX_LABEL_CHARS} characters; found {}",
            label.chars().count()
        )));
    }
    Ok(())
}

/// Labels are names a person reads in a list, not documents.
pub const MAX_LABEL_CHARS: usize = 200;

/// The most labels a head (and so a classifier) holds. Training, the
/// rehearsal set and every prediction grow with the label count; this is
/// the count the work and memory bounds are tested at
/// (`tests/classifier.rs`, 1,000 labels × 10,000 samples).
pub const MAX_LABELS: usize = 1_000;

/// The most weights and biases a head may have: 16 MiB of f32, e.g. a
/// linear head over a 4,096-value encoder with 1,000 labels, or an MLP
/// with 1,024 hidden units over 384 values. Checked before a head is
/// allocated, so a manifest or file cannot ask for gigabytes.
pub const MAX_HEAD_PARAMETERS: usize = 1 << 22;

/// The size limits of a head with these dimensions, checked before any
/// weight is allocated.
fn check_size(input_dim: usize, architecture: HeadArchitecture, labels: usize) -> Result<()> {
    if labels > MAX_LABELS {
        return Err(Error::Config(format!(
            "a head may have at most {MAX_LABELS} labels; found {labels}"
        )));
    }
    let layer =
        |inputs: usize, outputs: usize| inputs.saturating_mul(outputs).saturating_add(outputs);
    let parameters = match architecture {
        HeadArchitecture::Linear => layer(input_dim, labels),
        HeadArchitecture::Mlp { hidden } => {
            layer(input_dim, hidden).saturating_add(layer(hidden, labels))
        }
    };
    if parameters > MAX_HEAD_PARAMETERS {
        return Err(Error::Config(format!(
            "a head may have at most {MAX_HEAD_PARAMETERS} weights and biases; \
             {labels} labels over {input_dim} inputs ({architecture:?}) need {parameters}"
        )));
    }
    Ok(())
}

/// Rejects NaN and ±∞, naming where the first one is.
pub fn check_finite(what: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            what: what.to_string(),
            index,
            value: values[index],
        }),
    }
}
