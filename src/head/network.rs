//! Forward and backward passes of the head, and the training objective.
//!
//! Everything here works one sample at a time on contiguous rows — the
//! batches are small (tens of samples) and the layers fit in cache, so the
//! dot-product and axpy kernels carry all the arithmetic.

use serde::{Deserialize, Serialize};

use super::kernels;
use super::{DenseLayer, Head};
use crate::error::Result;

/// The loss the head is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Loss {
    /// `−ln p[label]` (softmax cross-entropy).
    #[default]
    CrossEntropy,
    /// `mean over labels of (p − one_hot)²`, on the softmax probabilities.
    MeanSquaredError,
}

/// L2 penalties on the weights (not the biases), added to the mean loss.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Penalties {
    /// `weight_decay/2 · ‖W‖²`.
    pub weight_decay: f32,
    /// L2-SP: `l2_sp/2 · ‖W − W_anchor‖²`, the pull toward the head the
    /// update started from, against forgetting what it knew.
    pub l2_sp: f32,
}

/// Gradients with the same shape as the head's layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    pub layers: Vec<DenseLayer>,
}

impl Gradients {
    pub fn zeros_like(layers: &[DenseLayer]) -> Self {
        Gradients {
            layers: layers
                .iter()
                .map(|l| DenseLayer {
                    inputs: l.inputs,
                    outputs: l.outputs,
                    weights: vec![0.0; l.weights.len()],
                    bias: vec![0.0; l.bias.len()],
                })
                .collect(),
        }
    }

    pub fn all_finite(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.weights.iter().chain(&l.bias).all(|v| v.is_finite()))
    }

    pub fn clear(&mut self) {
        for layer in &mut self.layers {
            layer.weights.fill(0.0);
            layer.bias.fill(0.0);
        }
    }
}

/// Reusable buffers for one sample's pass, so training does not allocate per
/// sample.
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    hidden_pre: Vec<f32>,
    hidden: Vec<f32>,
    probabilities: Vec<f32>,
    d_logits: Vec<f32>,
    d_hidden: Vec<f32>,
}

/// The forward pass for one feature vector; returns the softmax probabilities.
pub fn forward_one<'s>(layers: &[DenseLayer], x: &[f32], s: &'s mut Scratch) -> &'s [f32] {
    let out = layers.last().expect("one or two layers");
    let input: &[f32] = if let [hidden, _] = layers {
        dense(hidden, x, &mut s.hidden_pre);
        s.hidden.clear();
        s.hidden.extend(s.hidden_pre.iter().map(|&v| v.max(0.0)));
        &s.hidden
    } else {
        x
    };
    dense(out, input, &mut s.probabilities);
    softmax_in_place(&mut s.probabilities);
    &s.probabilities
}

/// `out = W·x + b`.
fn dense(layer: &DenseLayer, x: &[f32], out: &mut Vec<f32>) {
    out.clear();
    out.extend((0..layer.outputs).map(|j| kernels::dot(layer.row(j), x) + layer.bias[j]));
}

/// Numerically stable softmax: subtract the maximum before exponentiating.
pub fn softmax_in_place(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

/// What one pass over a set of samples measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PassTotals {
    /// Sum of the per-sample data losses (no penalties).
    pub loss_sum: f64,
    /// Samples whose most probable label was the right one.
    pub correct: usize,
    pub samples: usize,
}

impl PassTotals {
    pub fn mean_loss(&self) -> f32 {
        (self.loss_sum / self.samples.max(1) as f64) as f32
    }
    pub fn accuracy(&self) -> f32 {
        self.correct as f32 / self.samples.max(1) as f32
    }
}

/// Per-sample loss and whether the prediction was right, from probabilities.
fn sample_loss(loss: Loss, probabilities: &[f32], label: usize) -> (f64, bool) {
    let predicted = argmax(probabilities);
    let value = match loss {
        // Clamp so a saturated softmax gives a large finite loss, not ∞.
        Loss::CrossEntropy => -(probabilities[label].max(1e-30) as f64).ln(),
        Loss::MeanSquaredError => {
            let sum: f64 = probabilities
                .iter()
                .enumerate()
                .map(|(c, &p)| {
                    let d = (p - if c == label { 1.0 } else { 0.0 }) as f64;
                    d * d
                })
                .sum();
            sum / probabilities.len() as f64
        }
    };
    (value, predicted == label)
}

pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Evaluates the data loss and accuracy on `rows` without gradients.
pub fn evaluate(
    layers: &[DenseLayer],
    features: &[f32],
    labels: &[usize],
    rows: &[usize],
    loss: Loss,
    scratch: &mut Scratch,
) -> PassTotals {
    let dim = layers[0].inputs;
    let mut totals = PassTotals::default();
    for &row in rows {
        let p = forward_one(layers, &features[row * dim..(row + 1) * dim], scratch);
        let (value, correct) = sample_loss(loss, p, labels[row]);
        totals.loss_sum += value;
        totals.correct += usize::from(correct);
        totals.samples += 1;
    }
    totals
}

/// Forward and backward pass over `rows`: adds the gradient of the **mean**
/// data loss over those rows to `grads` (which the caller zeroes) and
/// returns the totals measured on the way.
pub fn accumulate_gradients(
    layers: &[DenseLayer],
    features: &[f32],
    labels: &[usize],
    rows: &[usize],
    loss: Loss,
    grads: &mut Gradients,
    s: &mut Scratch,
) -> PassTotals {
    let dim = layers[0].inputs;
    let scale = 1.0 / rows.len().max(1) as f32;
    let mut totals = PassTotals::default();
    for &row in rows {
        let x = &features[row * dim..(row + 1) * dim];
        let label = labels[row];
        forward_one(layers, x, s);
        let (value, correct) = sample_loss(loss, &s.probabilities, label);
        totals.loss_sum += value;
        totals.correct += usize::from(correct);
        totals.samples += 1;

        // ∂loss/∂logits, already divided by the batch size.
        let p = &s.probabilities;
        s.d_logits.clear();
        match loss {
            Loss::CrossEntropy => s.d_logits.extend(
                p.iter()
                    .enumerate()
                    .map(|(c, &pc)| (pc - if c == label { 1.0 } else { 0.0 }) * scale),
            ),
            Loss::MeanSquaredError => {
                // g = ∂L/∂p = 2(p − y)/C; through the softmax Jacobian:
                // ∂L/∂z_i = p_i (g_i − Σ_k p_k g_k).
                let classes = p.len() as f32;
                let g = |c: usize| 2.0 * (p[c] - if c == label { 1.0 } else { 0.0 }) / classes;
                let weighted: f32 = (0..p.len()).map(|c| p[c] * g(c)).sum();
                s.d_logits
                    .extend((0..p.len()).map(|c| p[c] * (g(c) - weighted) * scale));
            }
        }

        let (out_grads, hidden_grads) = match &mut grads.layers[..] {
            [only] => (only, None),
            [first, second] => (second, Some(first)),
            _ => unreachable!("one or two layers"),
        };
        let out_layer = layers.last().expect("one or two layers");
        let out_input: &[f32] = if hidden_grads.is_some() { &s.hidden } else { x };
        for (c, &dz) in s.d_logits.iter().enumerate() {
            let row = &mut out_grads.weights[c * out_layer.inputs..(c + 1) * out_layer.inputs];
            kernels::axpy(dz, out_input, row);
            out_grads.bias[c] += dz;
        }

        if let Some(hidden_grads) = hidden_grads {
            // Back through the output layer and the ReLU.
            s.d_hidden.clear();
            s.d_hidden.resize(out_layer.inputs, 0.0);
            for (c, &dz) in s.d_logits.iter().enumerate() {
                kernels::axpy(dz, out_layer.row(c), &mut s.d_hidden);
            }
            for (j, (&dh, &pre)) in s.d_hidden.iter().zip(&s.hidden_pre).enumerate() {
                if pre > 0.0 {
                    kernels::axpy(dh, x, &mut hidden_grads.weights[j * dim..(j + 1) * dim]);
                    hidden_grads.bias[j] += dh;
                }
            }
        }
    }
    totals
}

/// Adds the penalties' gradients (weights only) to `grads`; returns the
/// penalty value.
pub fn add_penalties(
    layers: &[DenseLayer],
    anchor: &[DenseLayer],
    penalties: Penalties,
    grads: &mut Gradients,
) -> f64 {
    if penalties.weight_decay == 0.0 && penalties.l2_sp == 0.0 {
        return 0.0;
    }
    let mut value = 0.0f64;
    for ((layer, anchor), grad) in layers.iter().zip(anchor).zip(&mut grads.layers) {
        kernels::add_l2_penalties(
            &mut grad.weights,
            &layer.weights,
            &anchor.weights,
            penalties.weight_decay,
            penalties.l2_sp,
        );
        for (w, a) in layer.weights.iter().zip(&anchor.weights) {
            let (w, a) = (*w as f64, *a as f64);
            value += 0.5 * penalties.weight_decay as f64 * w * w
                + 0.5 * penalties.l2_sp as f64 * (w - a) * (w - a);
        }
    }
    value
}

/// The full training objective on the given samples — mean data loss plus
/// penalties — and its gradient with respect to every weight and bias. This
/// is what the update task descends; it is public so its gradient can be
/// checked against finite differences.
pub fn objective(
    head: &Head,
    anchor: &Head,
    features: &[f32],
    labels: &[usize],
    loss: Loss,
    penalties: Penalties,
) -> Result<(f64, Gradients)> {
    let rows = labels.len();
    head.check_features(features, rows)?;
    for &label in labels {
        if label >= head.labels().len() {
            return Err(crate::Error::Config(format!(
                "label index {label} is out of range for {} labels",
                head.labels().len()
            )));
        }
    }
    let layers = head.layers();
    let mut grads = Gradients::zeros_like(layers);
    let all: Vec<usize> = (0..rows).collect();
    let totals = accumulate_gradients(
        layers,
        features,
        labels,
        &all,
        loss,
        &mut grads,
        &mut Scratch::default(),
    );
    let penalty = add_penalties(layers, anchor.layers(), penalties, &mut grads);
    Ok((totals.loss_sum / rows.max(1) as f64 + penalty, grads))
}
