//! Forward and backward passes of the head, and the training objective.
//!
//! The batches are small (tens of samples) and the layers fit in cache, so
//! the dot-product and axpy kernels carry all the arithmetic; training works
//! in blocks of four samples so each weight row is read once per block.

use serde::{Deserialize, Serialize};

use super::kernels;
use super::{DenseLayer, Head};
use crate::error::Result;

/// The loss the head is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub enum Loss {
    /// `−ln p[label]` (softmax cross-entropy).
    #[default]
    CrossEntropy,
    /// `mean over labels of (p − one_hot)²`, on the softmax probabilities.
    MeanSquaredError,
}

/// L2 penalties on the weights (not the biases), added to the mean loss as
/// given here (the update task divides its settings by the sample count).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Penalties {
    /// `weight_decay/2 · ‖W‖²`.
    pub weight_decay: f32,
    /// L2-SP: `l2_sp/2 · ‖W − W_anchor‖²`, the pull toward the head the
    /// update started from, against forgetting what it knew.
    pub l2_sp: f32,
}

/// Distillation targets (`head::personal::distillation_targets`): row
/// `from_row + i`'s loss is `(1 − w)·CE(label) + w·T²·KL(q ‖ softmax(z/T))`
/// with `w = weights[i]` and `q` the `i`-th row of `probabilities` (already
/// at temperature `T`); a row with weight 0, or before `from_row`, trains on
/// its label alone. Cross-entropy only: with the squared error every row
/// trains on its label.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SoftTargets {
    pub from_row: usize,
    /// Row-major, a row of the head's labels per row from `from_row` on.
    pub probabilities: Vec<f32>,
    pub temperature: f32,
    pub weights: Vec<f32>,
}

/// What each row of a training pass is fitted to: its label under `loss`,
/// and for the rows `distillation` weights, its soft target too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataLoss<'a> {
    pub loss: Loss,
    pub distillation: Option<&'a SoftTargets>,
}

impl From<Loss> for DataLoss<'_> {
    fn from(loss: Loss) -> Self {
        DataLoss {
            loss,
            distillation: None,
        }
    }
}

impl SoftTargets {
    /// Row `row`'s target and weight, if it has a weight above 0.
    fn of(&self, row: usize, classes: usize) -> Option<(&[f32], f32)> {
        let i = row.checked_sub(self.from_row)?;
        let weight = *self.weights.get(i)?;
        (weight > 0.0).then(|| (&self.probabilities[i * classes..(i + 1) * classes], weight))
    }
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

    /// Whether the step is safe to take. Checks the bias gradients only: each
    /// is a sum of ∂loss/∂logit (or ∂loss/∂pre-activation) over the batch, so
    /// a NaN anywhere in the backward pass — a saturated softmax — shows in
    /// every one of them, at a fraction of the cost of scanning all weights.
    /// (A weight gradient can only overflow on its own when a feature is near
    /// f32::MAX; then the next step's logits are non-finite and caught here.)
    pub fn step_is_finite(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.bias.iter().all(|v| v.is_finite()))
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
    block: BlockScratch,
}

/// The forward pass for one feature vector; returns the softmax probabilities.
pub fn forward_one<'s>(layers: &[DenseLayer], x: &[f32], s: &'s mut Scratch) -> &'s [f32] {
    let out = layers.last().expect("one or two layers");
    let input: &[f32] = if let [hidden, _] = layers {
        dense(hidden, x, &mut s.hidden_pre);
        s.hidden.clear();
        s.hidden.extend(s.hidden_pre.iter().map(|&v| relu(v)));
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

/// Probabilities below this are exactly zero. Once training is confident,
/// the wrong labels' probabilities fall toward 1e-40 and below — subnormal
/// floats, which WebAssembly must compute exactly and x86 computes ~100×
/// slower; left alone they made a long update several times slower per step
/// as it converged. 1e-30 is far below anything a prediction or a gradient
/// can notice (the loss already clamps at it).
pub const NEGLIGIBLE: f32 = 1e-30;
/// `ln(NEGLIGIBLE)`: logits this far below the largest give a probability
/// under [`NEGLIGIBLE`] (the softmax's denominator is at least 1).
const LN_NEGLIGIBLE: f32 = -69.0776;

/// Numerically stable softmax: subtract the maximum before exponentiating;
/// probabilities below [`NEGLIGIBLE`] become zero.
pub fn softmax_in_place(values: &mut [f32]) {
    // Not `f32::max`: a libm call in WebAssembly. A NaN never wins the
    // comparison, and the NaN then propagates through `v - max` below.
    let max = values
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    // Values this far under the maximum give exactly 0: they would be
    // flushed anyway, and an exp into the subnormals is slow.
    kernels::exp_shifted(values, max, LN_NEGLIGIBLE);
    let sum: f32 = values.iter().sum();
    for v in values.iter_mut() {
        let p = *v / sum;
        // Written so that a NaN (from non-finite logits) stays NaN and the
        // update task can report it.
        *v = if p < NEGLIGIBLE { 0.0 } else { p };
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

/// Samples per block of the training pass: each weight row is read once per
/// block (see [`kernels::dot4`] and [`kernels::axpy4`]).
const BLOCK: usize = 4;

/// Buffers of one block's pass, sample-major (`[sample][unit]`).
#[derive(Debug, Default, Clone)]
struct BlockScratch {
    hidden_pre: Vec<f32>,
    hidden: Vec<f32>,
    probabilities: Vec<f32>,
    /// One sample's `softmax(z/T)`, for distillation.
    tempered: Vec<f32>,
    d_logits: Vec<f32>,
    d_hidden: Vec<f32>,
}

/// `max(v, 0)`. (`f32::max` is a libm call in WebAssembly, whose `f32.max`
/// has other NaN rules; here a NaN stays NaN, for the update to report.)
#[inline(always)]
fn relu(v: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

/// Calls `each(unit, [dot(row(unit), xs[k]); 4])` for every output unit of
/// `layer`, two rows at a time (a 2 × 4 tile loads each chunk of the four
/// inputs once for both rows).
#[inline(always)]
fn for_rows_in_pairs(
    layer: &DenseLayer,
    xs: [&[f32]; BLOCK],
    mut each: impl FnMut(usize, [f32; BLOCK]),
) {
    let pairs = layer.outputs / 2;
    for pair in 0..pairs {
        let (j0, j1) = (2 * pair, 2 * pair + 1);
        let [z0, z1] = kernels::dot2x4([layer.row(j0), layer.row(j1)], xs);
        each(j0, z0);
        each(j1, z1);
    }
    if layer.outputs % 2 == 1 {
        let last = layer.outputs - 1;
        each(last, kernels::dot4(layer.row(last), xs));
    }
}

/// `grad.weights[unit] += Σ_k deltas(unit)[k] · xs[k]` and `grad.bias[unit]
/// += Σ_k deltas(unit)[k]` for every unit, two rows at a time (see
/// [`kernels::axpy4x2`]); the terms are added in order `k = 0..4`.
#[inline(always)]
fn add_outer_products(
    grad: &mut DenseLayer,
    xs: [&[f32]; BLOCK],
    deltas: impl Fn(usize) -> [f32; BLOCK],
) {
    let inputs = grad.inputs;
    let mut rows = grad.weights.chunks_exact_mut(inputs).enumerate();
    while let Some((j0, y0)) = rows.next() {
        let d0 = deltas(j0);
        match rows.next() {
            Some((j1, y1)) => {
                let d1 = deltas(j1);
                kernels::axpy4x2([d0, d1], xs, [y0, y1]);
                for v in d1 {
                    grad.bias[j1] += v;
                }
            }
            None => kernels::axpy4(d0, xs, y0),
        }
        for v in d0 {
            grad.bias[j0] += v;
        }
    }
}

/// Forward and backward pass over `rows`: adds the gradient of the **mean**
/// data loss over those rows to `grads` (which the caller zeroes) and
/// returns the totals measured on the way.
///
/// Works in blocks of four samples so that every weight row is loaded once
/// per block; the sums are taken in the same order as one sample at a time,
/// so the result does not depend on the blocking.
pub fn accumulate_gradients(
    layers: &[DenseLayer],
    features: &[f32],
    labels: &[usize],
    rows: &[usize],
    data_loss: DataLoss<'_>,
    grads: &mut Gradients,
    scratch: &mut Scratch,
) -> PassTotals {
    let DataLoss {
        loss,
        distillation: soft,
    } = data_loss;
    let dim = layers[0].inputs;
    let scale = 1.0 / rows.len().max(1) as f32;
    let (hidden_layer, out_layer) = match layers {
        [only] => (None, only),
        [hidden, out] => (Some(hidden), out),
        _ => unreachable!("one or two layers"),
    };
    let (mut hidden_grads, out_grads) = match &mut grads.layers[..] {
        [only] => (None, only),
        [hidden, out] => (Some(hidden), out),
        _ => unreachable!("one or two layers"),
    };
    let units = hidden_layer.map_or(0, |h| h.outputs);
    let classes = out_layer.outputs;
    let b = &mut scratch.block;
    b.hidden_pre.resize(BLOCK * units, 0.0);
    b.hidden.resize(BLOCK * units, 0.0);
    b.probabilities.resize(BLOCK * classes, 0.0);
    b.tempered.resize(classes, 0.0);
    b.d_logits.resize(BLOCK * classes, 0.0);
    b.d_hidden.resize(BLOCK * units, 0.0);

    let mut totals = PassTotals::default();
    for block in rows.chunks(BLOCK) {
        let n = block.len();
        // A short last block repeats its first sample with zero weight in
        // the backward pass.
        let x: [&[f32]; BLOCK] = std::array::from_fn(|k| {
            let row = block[if k < n { k } else { 0 }];
            &features[row * dim..(row + 1) * dim]
        });

        // Forward: hidden layer (ReLU), then output layer and softmax.
        if let Some(h) = hidden_layer {
            for_rows_in_pairs(h, x, |j, z| {
                for (k, z) in z.into_iter().enumerate() {
                    let pre = z + h.bias[j];
                    b.hidden_pre[k * units + j] = pre;
                    b.hidden[k * units + j] = relu(pre);
                }
            });
        }
        let inputs: [&[f32]; BLOCK] = if hidden_layer.is_some() {
            std::array::from_fn(|k| &b.hidden[k * units..(k + 1) * units])
        } else {
            x
        };
        for_rows_in_pairs(out_layer, inputs, |c, z| {
            for (k, z) in z.into_iter().enumerate() {
                b.probabilities[k * classes + c] = z + out_layer.bias[c];
            }
        });

        // Loss and ∂loss/∂logits (already divided by the batch size).
        for k in 0..BLOCK {
            let d = &mut b.d_logits[k * classes..(k + 1) * classes];
            if k >= n {
                d.fill(0.0);
                continue;
            }
            let p = &mut b.probabilities[k * classes..(k + 1) * classes];
            // Cross-entropy only (SoftTargets): no tempered softmax for
            // the squared error, which would not read it.
            let distilled = soft.filter(|_| loss == Loss::CrossEntropy).and_then(|s| {
                let (target, weight) = s.of(block[k], classes)?;
                // Still logits here.
                for (t, z) in b.tempered.iter_mut().zip(p.iter()) {
                    *t = z / s.temperature;
                }
                softmax_in_place(&mut b.tempered);
                Some((target, weight, s.temperature))
            });
            softmax_in_place(p);
            let label = labels[block[k]];
            let (value, correct) = sample_loss(loss, p, label);
            totals.loss_sum += value;
            totals.correct += usize::from(correct);
            totals.samples += 1;
            let y = |c: usize| if c == label { 1.0 } else { 0.0 };
            match loss {
                Loss::CrossEntropy => match distilled {
                    None => {
                        for c in 0..classes {
                            d[c] = (p[c] - y(c)) * scale;
                        }
                    }
                    // ∂/∂z of T²·KL(q ‖ softmax(z/T)) is T·(softmax(z/T) − q).
                    Some((q, w, temperature)) => {
                        let t = &b.tempered;
                        for c in 0..classes {
                            d[c] = ((1.0 - w) * (p[c] - y(c)) + w * temperature * (t[c] - q[c]))
                                * scale;
                        }
                    }
                },
                Loss::MeanSquaredError => {
                    // g = ∂L/∂p = 2(p − y)/C; through the softmax Jacobian:
                    // ∂L/∂z_i = p_i (g_i − Σ_k p_k g_k).
                    let g = |c: usize| 2.0 * (p[c] - y(c)) / classes as f32;
                    let weighted: f32 = (0..classes).map(|c| p[c] * g(c)).sum();
                    for c in 0..classes {
                        d[c] = p[c] * (g(c) - weighted) * scale;
                    }
                }
            }
        }

        // Backward through the output layer.
        let d_logits_of =
            |c: usize| -> [f32; BLOCK] { std::array::from_fn(|k| b.d_logits[k * classes + c]) };
        add_outer_products(out_grads, inputs, d_logits_of);

        // Back through the ReLU into the hidden layer.
        if let (Some(_), Some(hidden_grads)) = (hidden_layer, hidden_grads.as_deref_mut()) {
            b.d_hidden.fill(0.0);
            for k in 0..n {
                let dh = &mut b.d_hidden[k * units..(k + 1) * units];
                for c in 0..classes {
                    kernels::axpy(b.d_logits[k * classes + c], out_layer.row(c), dh);
                }
                for (dh, &pre) in dh.iter_mut().zip(&b.hidden_pre[k * units..(k + 1) * units]) {
                    if pre <= 0.0 {
                        *dh = 0.0;
                    }
                }
            }
            let d_pre_of =
                |j: usize| -> [f32; BLOCK] { std::array::from_fn(|k| b.d_hidden[k * units + j]) };
            add_outer_products(hidden_grads, x, d_pre_of);
        }
    }
    totals
}

/// Adds the penalties' gradients (weights only) to `grads`. This runs every
/// step, so it leaves the penalty's value to [`penalty_value`].
pub fn add_penalty_gradients(
    layers: &[DenseLayer],
    anchor: &[DenseLayer],
    penalties: Penalties,
    grads: &mut Gradients,
) {
    if penalties.weight_decay == 0.0 && penalties.l2_sp == 0.0 {
        return;
    }
    for ((layer, anchor), grad) in layers.iter().zip(anchor).zip(&mut grads.layers) {
        kernels::add_l2_penalties(
            &mut grad.weights,
            &layer.weights,
            &anchor.weights,
            penalties.weight_decay,
            penalties.l2_sp,
        );
    }
}

/// `weight_decay/2 · ‖W‖² + l2_sp/2 · ‖W − W_anchor‖²` over every layer's weights.
pub fn penalty_value(layers: &[DenseLayer], anchor: &[DenseLayer], penalties: Penalties) -> f64 {
    let (wd, sp) = (penalties.weight_decay as f64, penalties.l2_sp as f64);
    layers
        .iter()
        .zip(anchor)
        .flat_map(|(layer, anchor)| layer.weights.iter().zip(&anchor.weights))
        .map(|(&w, &a)| {
            let (w, a) = (w as f64, a as f64);
            0.5 * wd * w * w + 0.5 * sp * (w - a) * (w - a)
        })
        .sum()
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
        loss.into(),
        &mut grads,
        &mut Scratch::default(),
    );
    add_penalty_gradients(layers, anchor.layers(), penalties, &mut grads);
    let penalty = penalty_value(layers, anchor.layers(), penalties);
    Ok((totals.loss_sum / rows.max(1) as f64 + penalty, grads))
}
