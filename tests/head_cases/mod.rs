//! The head and its update task: kernels, gradients, optimizer steps, odd
//! input, determinism, cancellation, events, early stopping, budgets.
//!
//! Included by `tests/head.rs` (native, and wasm in Node) and by
//! `tests/head_in_browser.rs` (wasm in headless Chromium), so the same cases
//! run in all three places.

use std::cell::Cell;
use std::ops::ControlFlow;

use localtune::head::kernels::{self, scalar, AdamStep};
use localtune::head::network::{
    accumulate_gradients, objective, DataLoss, Gradients, Penalties, Scratch, SoftTargets,
};
use localtune::head::train::{SteppedUpdate, StopReason, UpdateEventKind};
use localtune::head::DenseLayer;
use localtune::{
    run_update, Error, Head, HeadArchitecture, Loss, Optimizer, TrainingSet, UpdateConfig,
    UpdateEvent,
};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// A small deterministic generator for test data (xorshift), independent of
/// the crate's own RNG.
struct TestRng(u64);

impl TestRng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn no_clock() -> f64 {
    0.0
}

fn ignore(_: &UpdateEvent) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// An MLP head (8 inputs, 8 hidden units) over labels a, b, c.
fn abc_mlp(seed: u64) -> Head {
    Head::new_seeded(
        8,
        HeadArchitecture::Mlp { hidden: 8 },
        labels(&["a", "b", "c"]),
        seed,
    )
    .unwrap()
}

/// Separable data: label `c` sits around the `c`-th axis direction.
fn clustered(classes: usize, per_class: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = TestRng(seed);
    let mut features = Vec::new();
    let mut targets = Vec::new();
    for c in 0..classes {
        for _ in 0..per_class {
            let mut x: Vec<f32> = rng.vec(dim).iter().map(|v| v * 0.3).collect();
            x[c % dim] += 2.0;
            features.extend(x);
            targets.push(c);
        }
    }
    (features, targets)
}

fn train(
    head: &Head,
    features: &[f32],
    targets: &[usize],
    config: &UpdateConfig,
) -> localtune::Result<localtune::UpdateOutcome> {
    run_update(
        head,
        None,
        TrainingSet {
            features,
            labels: targets,
        },
        config,
        &no_clock,
        &mut ignore,
    )
}

// ---------------------------------------------------------------- kernels

#[test]
fn this_build_uses_the_simd_kernels_on_wasm32() {
    if cfg!(target_arch = "wasm32") {
        assert!(localtune::simd128_enabled(), "wasm32 builds carry simd128");
        assert_eq!(kernels::ACTIVE, "simd128");
    } else {
        assert_eq!(kernels::ACTIVE, "scalar");
    }
}

#[test]
fn simd_and_scalar_kernels_agree() {
    let mut rng = TestRng(7);
    // Lengths around the 4- and 8-lane boundaries, and the encoder's 384.
    for len in [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 384, 387] {
        let a = rng.vec(len);
        let b = rng.vec(len);
        let close = |x: f32, y: f32| (x - y).abs() <= 1e-6 * (1.0 + x.abs().max(y.abs()));

        assert!(
            close(kernels::dot(&a, &b), scalar::dot(&a, &b)),
            "dot, len {len}"
        );

        let (c, d, e) = (rng.vec(len), rng.vec(len), rng.vec(len));
        let four = kernels::dot4(&a, [&b, &c, &d, &e]);
        let four_scalar = scalar::dot4(&a, [&b, &c, &d, &e]);
        for (k, x) in [&b, &c, &d, &e].into_iter().enumerate() {
            assert!(close(four[k], four_scalar[k]), "dot4, len {len}");
            // Blocked or not, a sample's dot product is summed the same way.
            assert_eq!(
                four[k].to_bits(),
                kernels::dot(&a, x).to_bits(),
                "dot4 = dot, len {len}"
            );
        }
        // The 2 × 4 tile: each of its eight sums is `dot`'s, bit for bit.
        let f = rng.vec(len);
        let tile = kernels::dot2x4([&a, &f], [&b, &c, &d, &e]);
        let tile_scalar = scalar::dot2x4([&a, &f], [&b, &c, &d, &e]);
        for (r, w) in [&a, &f].into_iter().enumerate() {
            for (k, x) in [&b, &c, &d, &e].into_iter().enumerate() {
                assert!(close(tile[r][k], tile_scalar[r][k]), "dot2x4, len {len}");
                assert_eq!(
                    tile[r][k].to_bits(),
                    kernels::dot(w, x).to_bits(),
                    "dot2x4 = dot, len {len}"
                );
            }
        }

        // The integer dot products (the correction memory's int8 scan) are
        // exact: equal to the scalar twin and to a plain i64 sum, including
        // at ±127 everywhere (the largest sums they are used for).
        let to_i8 = |v: &[f32]| v.iter().map(|x| (x * 127.0) as i8).collect::<Vec<_>>();
        let query: Vec<i16> = to_i8(&a).into_iter().map(i16::from).collect();
        let rows = [to_i8(&b), to_i8(&c), to_i8(&d), to_i8(&e)];
        let extremes = (vec![-127i16; len], vec![127i8; len], vec![-127i8; len]);
        for (q, rs) in [
            (&query, [&rows[0][..], &rows[1], &rows[2], &rows[3]]),
            (
                &extremes.0,
                [&extremes.1[..], &rows[1], &extremes.2, &rows[3]],
            ),
        ] {
            let four = kernels::dot4_i8(q, rs);
            for (k, r) in rs.into_iter().enumerate() {
                let plain: i64 = q.iter().zip(r).map(|(&x, &y)| x as i64 * y as i64).sum();
                assert_eq!(four[k] as i64, plain, "dot4_i8, len {len}");
                assert_eq!(kernels::dot_i8(q, r) as i64, plain, "dot_i8, len {len}");
                assert_eq!(
                    scalar::dot_i8(q, r) as i64,
                    plain,
                    "scalar dot_i8, len {len}"
                );
            }
        }

        let alphas = [0.5, -1.25, 0.0, 2.0];
        let other_alphas = [-0.75, 0.25, 1.5, 0.0];
        let (mut t0, mut t1) = (a.clone(), f.clone());
        let (mut u0, mut u1) = (a.clone(), f.clone());
        kernels::axpy4x2([alphas, other_alphas], [&b, &c, &d, &e], [&mut t0, &mut t1]);
        kernels::axpy4(alphas, [&b, &c, &d, &e], &mut u0);
        kernels::axpy4(other_alphas, [&b, &c, &d, &e], &mut u1);
        let (mut s0, mut s1) = (a.clone(), f.clone());
        scalar::axpy4x2([alphas, other_alphas], [&b, &c, &d, &e], [&mut s0, &mut s1]);
        for (found, expected) in [(&t0, &u0), (&t1, &u1)] {
            assert!(
                found
                    .iter()
                    .zip(expected)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "axpy4x2 = 2 × axpy4, len {len}"
            );
        }
        assert!(
            t0.iter()
                .chain(&t1)
                .zip(s0.iter().chain(&s1))
                .all(|(x, y)| close(*x, *y)),
            "axpy4x2, len {len}"
        );

        let mut logits: Vec<f32> = a.iter().map(|v| v * 40.0).collect();
        let shift = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut logits_scalar = logits.clone();
        kernels::exp_shifted(&mut logits, shift, -69.0);
        scalar::exp_shifted(&mut logits_scalar, shift, -69.0);
        assert!(
            logits
                .iter()
                .zip(&logits_scalar)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "exp_shifted, len {len}"
        );

        let (mut y1, mut y2, mut y3) = (a.clone(), a.clone(), a.clone());
        kernels::axpy4(alphas, [&b, &c, &d, &e], &mut y1);
        scalar::axpy4(alphas, [&b, &c, &d, &e], &mut y2);
        for (alpha, x) in alphas.into_iter().zip([&b, &c, &d, &e]) {
            kernels::axpy(alpha, x, &mut y3);
        }
        assert!(
            y1.iter().zip(&y2).all(|(x, y)| close(*x, *y)),
            "axpy4, len {len}"
        );
        assert!(
            y1.iter().zip(&y3).all(|(x, y)| x.to_bits() == y.to_bits()),
            "axpy4 = 4 × axpy, len {len}"
        );

        let (mut y1, mut y2) = (b.clone(), b.clone());
        kernels::axpy(0.37, &a, &mut y1);
        scalar::axpy(0.37, &a, &mut y2);
        assert!(
            y1.iter().zip(&y2).all(|(x, y)| close(*x, *y)),
            "axpy, len {len}"
        );

        let anchor = rng.vec(len);
        let (mut g1, mut g2) = (a.clone(), a.clone());
        kernels::add_l2_penalties(&mut g1, &b, &anchor, 0.01, 0.3);
        scalar::add_l2_penalties(&mut g2, &b, &anchor, 0.01, 0.3);
        assert!(
            g1.iter().zip(&g2).all(|(x, y)| close(*x, *y)),
            "penalties, len {len}"
        );

        let (mut w1, mut w2) = (b.clone(), b.clone());
        let (mut v1, mut v2) = (anchor.clone(), anchor.clone());
        kernels::sgd_momentum_step(&mut w1, &a, &mut v1, 0.05, 0.9);
        scalar::sgd_momentum_step(&mut w2, &a, &mut v2, 0.05, 0.9);
        assert!(
            w1.iter().zip(&w2).all(|(x, y)| close(*x, *y)),
            "sgd params, len {len}"
        );
        assert!(
            v1.iter().zip(&v2).all(|(x, y)| close(*x, *y)),
            "sgd velocity, len {len}"
        );

        let step = AdamStep::new(0.01, 0.9, 0.999, 1e-7, 3);
        let m0: Vec<f32> = anchor.iter().map(|v| v * 0.1).collect();
        let v0: Vec<f32> = anchor.iter().map(|v| v * v).collect();
        let (mut w1, mut w2) = (b.clone(), b.clone());
        let (mut m1, mut m2) = (m0.clone(), m0.clone());
        let (mut s1, mut s2) = (v0.clone(), v0);
        kernels::adam_step(&mut w1, &a, &mut m1, &mut s1, &step);
        scalar::adam_step(&mut w2, &a, &mut m2, &mut s2, &step);
        assert!(
            w1.iter().zip(&w2).all(|(x, y)| close(*x, *y)),
            "adam params, len {len}"
        );
        assert!(
            m1.iter().zip(&m2).all(|(x, y)| close(*x, *y)),
            "adam m, len {len}"
        );
        assert!(
            s1.iter().zip(&s2).all(|(x, y)| close(*x, *y)),
            "adam v, len {len}"
        );
    }
}

#[test]
fn softmax_exp_is_within_two_ulp_and_keeps_zeros_and_nan() {
    // Every 1/64 on [-87, 0], plus values just off the grid.
    let xs: Vec<f32> = (0..=87 * 64)
        .flat_map(|i| {
            let x = -(i as f32) / 64.0;
            [x, x - 0.003_7]
        })
        .filter(|x| *x >= -87.0)
        .collect();
    let mut found = xs.clone();
    kernels::exp_shifted(&mut found, 0.0, -87.0);
    for (x, e) in xs.iter().zip(&found) {
        let truth = (*x as f64).exp();
        let ulp = f32::EPSILON as f64 * truth;
        assert!(
            ((*e as f64) - truth).abs() <= 2.0 * ulp,
            "exp({x}) = {e}, true {truth}"
        );
    }
    let mut edge = vec![0.0, -1e-9, -70.0, f32::NAN, -3.0];
    kernels::exp_shifted(&mut edge, 0.0, -69.0);
    assert_eq!(edge[0], 1.0);
    assert!(edge[1] <= 1.0 && edge[1] > 0.999_999);
    assert_eq!(edge[2], 0.0, "under the floor: exactly zero");
    assert!(edge[3].is_nan(), "NaN stays visible");
    assert!((edge[4] as f64 - (-3.0f64).exp()).abs() < 1e-7);
}

// ---------------------------------------------------------------- gradients

/// Central finite differences of the whole objective against the analytic
/// gradient, for every weight and bias.
fn check_gradients(architecture: HeadArchitecture, loss: Loss, penalties: Penalties) {
    let (dim, classes, rows) = (6, 4, 7);
    let mut rng = TestRng(11);
    let features = rng.vec(dim * rows);
    let targets: Vec<usize> = (0..rows).map(|i| i % classes).collect();
    let names = labels(&["a", "b", "c", "d"]);
    let head = Head::new_seeded(dim, architecture, names.clone(), 3).unwrap();
    let anchor = Head::new_seeded(dim, architecture, names, 4).unwrap();

    // ReLU has a kink at 0; the check is only meaningful away from it.
    if let [hidden, _] = head.layers() {
        for r in 0..rows {
            for j in 0..hidden.outputs {
                let pre =
                    kernels::dot(hidden.row(j), &features[r * dim..(r + 1) * dim]) + hidden.bias[j];
                assert!(
                    pre.abs() > 0.01,
                    "test data sits on a ReLU kink; pick another seed"
                );
            }
        }
    }

    let (_, grads) = objective(&head, &anchor, &features, &targets, loss, penalties).unwrap();
    let value = |head: &Head| {
        objective(head, &anchor, &features, &targets, loss, penalties)
            .unwrap()
            .0
    };
    assert_gradients_match(&head, &grads, value, &format!("{architecture:?} {loss:?}"));
}

/// Every weight's and bias's entry of `grads` against central finite
/// differences of `value` at `head`.
fn assert_gradients_match(
    head: &Head,
    grads: &Gradients,
    value: impl Fn(&Head) -> f64,
    what: &str,
) {
    let h = 1e-3f32;
    let mut checked = 0;
    for (l, layer) in head.layers().iter().enumerate() {
        for (is_bias, len) in [(false, layer.weights.len()), (true, layer.bias.len())] {
            for i in 0..len {
                let perturbed = |delta: f32| {
                    let mut layers: Vec<DenseLayer> = head.layers().to_vec();
                    let slot = if is_bias {
                        &mut layers[l].bias[i]
                    } else {
                        &mut layers[l].weights[i]
                    };
                    *slot += delta;
                    Head::from_layers(head.labels().to_vec(), layers).unwrap()
                };
                let numeric = (value(&perturbed(h)) - value(&perturbed(-h))) / (2.0 * h as f64);
                let analytic = if is_bias {
                    grads.layers[l].bias[i]
                } else {
                    grads.layers[l].weights[i]
                } as f64;
                assert!(
                    (numeric - analytic).abs() <= 2e-3 + 2e-2 * analytic.abs(),
                    "{what} layer {l} {} {i}: numeric {numeric}, analytic {analytic}",
                    if is_bias { "bias" } else { "weight" }
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, head.parameter_count());
}

#[test]
fn gradients_match_finite_differences_linear_cross_entropy() {
    check_gradients(
        HeadArchitecture::Linear,
        Loss::CrossEntropy,
        Penalties::default(),
    );
}

#[test]
fn gradients_match_finite_differences_linear_mse() {
    check_gradients(
        HeadArchitecture::Linear,
        Loss::MeanSquaredError,
        Penalties::default(),
    );
}

#[test]
fn gradients_match_finite_differences_mlp_cross_entropy() {
    check_gradients(
        HeadArchitecture::Mlp { hidden: 5 },
        Loss::CrossEntropy,
        Penalties::default(),
    );
}

#[test]
fn gradients_match_finite_differences_mlp_mse() {
    check_gradients(
        HeadArchitecture::Mlp { hidden: 5 },
        Loss::MeanSquaredError,
        Penalties::default(),
    );
}

#[test]
fn gradients_match_finite_differences_with_weight_decay_and_l2_sp() {
    let penalties = Penalties {
        weight_decay: 0.3,
        l2_sp: 0.7,
    };
    check_gradients(HeadArchitecture::Linear, Loss::CrossEntropy, penalties);
    check_gradients(
        HeadArchitecture::Mlp { hidden: 5 },
        Loss::MeanSquaredError,
        penalties,
    );
}

/// Distillation's gradient (`SoftTargets`) against central finite
/// differences of its loss, computed here independently: rows before
/// `from_row` and rows of weight 0 on their labels alone, the others
/// `(1 − w)·CE + w·T²·KL(q ‖ softmax(z/T))`.
fn check_distillation_gradients(architecture: HeadArchitecture) {
    let (dim, classes, rows) = (6, 4, 9);
    let mut rng = TestRng(23);
    let features = rng.vec(dim * rows);
    let targets: Vec<usize> = (0..rows).map(|i| i % classes).collect();
    let head = Head::new_seeded(dim, architecture, labels(&["a", "b", "c", "d"]), 5).unwrap();
    let from_row = 2;
    let mut probabilities = Vec::new();
    for _ in from_row..rows {
        let raw: Vec<f32> = (0..classes).map(|_| rng.next().abs() + 0.05).collect();
        let sum: f32 = raw.iter().sum();
        probabilities.extend(raw.iter().map(|r| r / sum));
    }
    let weights = vec![0.5, 0.0, 0.3, 1.0, 0.5, 0.5, 0.8];
    assert_eq!(weights.len(), rows - from_row);
    let soft = SoftTargets {
        from_row,
        probabilities,
        temperature: 3.0,
        weights,
    };
    let loss_of = |head: &Head| -> f64 {
        let mut total = 0.0;
        for r in 0..rows {
            let p = head
                .probabilities(&features[r * dim..(r + 1) * dim])
                .unwrap();
            let hard = -(p[targets[r]] as f64).ln();
            let Some(i) = r.checked_sub(from_row) else {
                total += hard;
                continue;
            };
            let (w, t) = (soft.weights[i] as f64, soft.temperature as f64);
            // softmax(z/T) ∝ p^(1/T).
            let tempered: Vec<f64> = p.iter().map(|&p| (p as f64).powf(1.0 / t)).collect();
            let norm: f64 = tempered.iter().sum();
            let kl: f64 = (0..classes)
                .map(|c| {
                    let q = soft.probabilities[i * classes + c] as f64;
                    q * (q.ln() - (tempered[c] / norm).ln())
                })
                .sum();
            total += (1.0 - w) * hard + w * t * t * kl;
        }
        total / rows as f64
    };
    let grads = cross_entropy_gradients(&head, &features, &targets, Some(&soft));
    assert_gradients_match(
        &head,
        &grads,
        loss_of,
        &format!("{architecture:?} distillation"),
    );
}

/// The mean cross-entropy's gradient over every row, with `soft` targets.
fn cross_entropy_gradients(
    head: &Head,
    features: &[f32],
    targets: &[usize],
    soft: Option<&SoftTargets>,
) -> Gradients {
    let mut grads = Gradients::zeros_like(head.layers());
    let all: Vec<usize> = (0..targets.len()).collect();
    accumulate_gradients(
        head.layers(),
        features,
        targets,
        &all,
        DataLoss {
            loss: Loss::CrossEntropy,
            distillation: soft,
        },
        &mut grads,
        &mut Scratch::default(),
    );
    grads
}

#[test]
fn distillation_gradients_match_finite_differences() {
    check_distillation_gradients(HeadArchitecture::Linear);
    check_distillation_gradients(HeadArchitecture::Mlp { hidden: 5 });
}

#[test]
fn distillation_with_weight_zero_is_training_on_the_labels() {
    let (dim, rows) = (6, 5);
    let features = TestRng(31).vec(dim * rows);
    let targets = vec![0, 1, 2, 0, 1];
    let head =
        Head::new_seeded(dim, HeadArchitecture::Linear, labels(&["a", "b", "c"]), 2).unwrap();
    let gradients =
        |soft: Option<&SoftTargets>| cross_entropy_gradients(&head, &features, &targets, soft);
    let unweighted = SoftTargets {
        from_row: 1,
        probabilities: vec![1.0 / 3.0; 3 * (rows - 1)],
        temperature: 2.0,
        weights: vec![0.0; rows - 1],
    };
    assert_eq!(gradients(Some(&unweighted)), gradients(None));
    let weighted = SoftTargets {
        weights: vec![0.5; rows - 1],
        ..unweighted
    };
    assert_ne!(gradients(Some(&weighted)), gradients(None));
}

// ---------------------------------------------------------------- optimizer steps

/// A 2-input, 2-label linear head at zero, one sample x = [1, 2] of label 0.
fn zero_head() -> Head {
    let layer = DenseLayer {
        inputs: 2,
        outputs: 2,
        weights: vec![0.0; 4],
        bias: vec![0.0; 2],
    };
    Head::from_layers(labels(&["yes", "no"]), vec![layer]).unwrap()
}

fn one_sample_config(optimizer: Optimizer, epochs: usize) -> UpdateConfig {
    UpdateConfig {
        optimizer,
        learning_rate: 0.1,
        batch_size: 1,
        epochs,
        shuffle: false,
        // Hand-worked without penalties.
        weight_decay: 0.0,
        ..UpdateConfig::default()
    }
}

fn assert_close(found: &[f32], expected: &[f32], what: &str) {
    assert_eq!(found.len(), expected.len(), "{what}");
    for (f, e) in found.iter().zip(expected) {
        assert!(
            (f - e).abs() < 1e-6,
            "{what}: found {found:?}, expected {expected:?}"
        );
    }
}

#[test]
fn sgd_with_momentum_takes_the_hand_computed_steps() {
    let sgd = Optimizer::Sgd { momentum: 0.9 };
    let x = [1.0, 2.0];
    // Step 1: p = [½, ½], ∂z = [−½, ½]; v = g; w = −0.1·g.
    let one = train(&zero_head(), &x, &[0], &one_sample_config(sgd, 1))
        .unwrap()
        .head;
    assert_close(
        &one.layers()[0].weights,
        &[0.05, 0.1, -0.05, -0.1],
        "weights after 1 step",
    );
    assert_close(&one.layers()[0].bias, &[0.05, -0.05], "bias after 1 step");
    // Step 2: z = [0.3, −0.3], p0 = σ(0.6) = 0.6456563; ∂z0 = −0.3543437;
    // v = 0.9·g1 + g2; w = w1 − 0.1·v.
    let two = train(&zero_head(), &x, &[0], &one_sample_config(sgd, 2))
        .unwrap()
        .head;
    let dz = -(1.0 - 1.0 / (1.0 + (-0.6f32).exp()));
    // g1 = [−0.5, −1] for the weights of label 0; g2 = ∂z0·x.
    let v = [0.9 * -0.5 + dz, -0.9 + 2.0 * dz];
    assert_close(
        &two.layers()[0].weights,
        &[
            0.05 - 0.1 * v[0],
            0.1 - 0.1 * v[1],
            -0.05 + 0.1 * v[0],
            -0.1 + 0.1 * v[1],
        ],
        "weights after 2 steps",
    );
    assert_close(
        &two.layers()[0].bias,
        &[0.05 - 0.1 * v[0], -0.05 + 0.1 * v[0]],
        "bias after 2 steps",
    );
}

#[test]
fn adam_takes_the_hand_computed_step() {
    let adam = Optimizer::Adam {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-7,
    };
    // Step 1 with bias correction: m̂ = g, v̂ = g², so w −= lr·g/(|g| + ε).
    let one = train(&zero_head(), &[1.0, 2.0], &[0], &one_sample_config(adam, 1))
        .unwrap()
        .head;
    let step = |g: f32| -0.1 * g / (g.abs() + 1e-7);
    assert_close(
        &one.layers()[0].weights,
        &[step(-0.5), step(-1.0), step(0.5), step(1.0)],
        "weights after 1 Adam step",
    );
    assert_close(
        &one.layers()[0].bias,
        &[step(-0.5), step(0.5)],
        "bias after 1 Adam step",
    );
    // Also the kernel on its own, two steps, against values worked by hand.
    let (mut w, mut m, mut v) = ([1.0f32], [0.0f32], [0.0f32]);
    kernels::adam_step(
        &mut w,
        &[0.5],
        &mut m,
        &mut v,
        &AdamStep::new(0.1, 0.9, 0.999, 1e-7, 1),
    );
    kernels::adam_step(
        &mut w,
        &[-0.25],
        &mut m,
        &mut v,
        &AdamStep::new(0.1, 0.9, 0.999, 1e-7, 2),
    );
    // m = 0.9·0.05 + 0.1·(−0.25) = 0.02; v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225
    // m̂ = 0.02/0.19; v̂ = 0.00031225/0.001999; w = 0.9 − 0.1·m̂/(√v̂ + ε)
    let expected = 0.9 - 0.1 * (0.02 / 0.19) / ((0.000_312_25f64 / 0.001_999).sqrt() + 1e-7);
    assert!(
        (w[0] as f64 - expected).abs() < 1e-5,
        "w = {}, expected {expected}",
        w[0]
    );
}

#[test]
fn negligible_probabilities_are_exact_zeros_and_nan_stays_visible() {
    // Subnormal probabilities would slow every later step ~100× on x86.
    let mut p = [0.0f32, -80.0, -200.0, 5.0];
    localtune::head::network::softmax_in_place(&mut p);
    assert_eq!(p[2], 0.0, "e^-205 is below the floor");
    assert!(p.iter().all(|v| *v == 0.0 || v.is_normal()), "{p:?}");
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    let mut q = [f32::INFINITY, 1.0];
    localtune::head::network::softmax_in_place(&mut q);
    assert!(q[0].is_nan(), "a NaN is not flushed away: {q:?}");

    let (mut w, mut m, mut v) = ([1.0f32; 5], [1e-31f32; 5], [1e-31f32; 5]);
    kernels::adam_step(
        &mut w,
        &[0.0; 5],
        &mut m,
        &mut v,
        &AdamStep::new(0.1, 0.9, 0.999, 1e-7, 10),
    );
    assert_eq!(
        (m, v),
        ([0.0; 5], [0.0; 5]),
        "tiny optimizer state is flushed to zero"
    );
    let mut velocity = [1e-31f32; 5];
    kernels::sgd_momentum_step(&mut w, &[0.0; 5], &mut velocity, 0.1, 0.9);
    assert_eq!(velocity, [0.0; 5]);
}

// ---------------------------------------------------------------- learning

#[test]
fn default_update_learns_separable_labels() {
    let (features, targets) = clustered(5, 10, 16, 1);
    let head = Head::new_seeded(
        16,
        HeadArchitecture::Linear,
        labels(&["a", "b", "c", "d", "e"]),
        0,
    )
    .unwrap();
    let outcome = train(&head, &features, &targets, &UpdateConfig::default()).unwrap();
    assert_eq!(outcome.train_accuracy, 1.0);
    assert!(outcome.train_loss < 0.1, "loss {}", outcome.train_loss);
}

#[test]
fn every_optimizer_loss_and_architecture_learns() {
    let (features, targets) = clustered(3, 8, 8, 2);
    for architecture in [
        HeadArchitecture::Linear,
        HeadArchitecture::Mlp { hidden: 16 },
    ] {
        for loss in [Loss::CrossEntropy, Loss::MeanSquaredError] {
            for optimizer in [Optimizer::Sgd { momentum: 0.9 }, Optimizer::default()] {
                let head = Head::new_seeded(8, architecture, labels(&["a", "b", "c"]), 5).unwrap();
                let config = UpdateConfig {
                    loss,
                    optimizer,
                    learning_rate: if matches!(optimizer, Optimizer::Sgd { .. }) {
                        0.1
                    } else {
                        0.01
                    },
                    epochs: 60,
                    batch_size: 8,
                    ..UpdateConfig::default()
                };
                let outcome = train(&head, &features, &targets, &config).unwrap();
                let before = localtune::head::network::evaluate(
                    head.layers(),
                    &features,
                    &targets,
                    &(0..targets.len()).collect::<Vec<_>>(),
                    loss,
                    &mut Default::default(),
                );
                assert_eq!(
                    outcome.train_accuracy, 1.0,
                    "{architecture:?} {loss:?} {optimizer:?}"
                );
                assert!(
                    outcome.train_loss < before.mean_loss() / 2.0,
                    "{architecture:?} {loss:?} {optimizer:?}"
                );
            }
        }
    }
}

#[test]
fn same_seed_same_head_other_seed_other_head() {
    let (features, targets) = clustered(3, 10, 8, 3);
    let head = abc_mlp(1);
    let config = UpdateConfig {
        batch_size: 4,
        epochs: 5,
        validation_fraction: 0.2,
        ..UpdateConfig::default()
    };
    let a = train(&head, &features, &targets, &config).unwrap();
    let b = train(&head, &features, &targets, &config).unwrap();
    assert_eq!(a.head, b.head, "same seed gives the same head, bit for bit");
    let c = train(
        &head,
        &features,
        &targets,
        &UpdateConfig { seed: 1, ..config },
    )
    .unwrap();
    assert_ne!(a.head, c.head, "another seed shuffles differently");
}

#[test]
fn an_update_stepped_in_slices_gives_run_updates_head_bit_for_bit() {
    let (features, targets) = clustered(3, 10, 8, 5);
    let head = abc_mlp(2);
    let budgets = [
        // The steps decide, ending mid-epoch (30 rows, batches of 4).
        UpdateConfig {
            batch_size: 4,
            epochs: 50,
            max_steps: Some(23),
            frozen_labels: vec![1],
            ..UpdateConfig::default()
        },
        // The epochs decide.
        UpdateConfig {
            batch_size: 4,
            epochs: 3,
            freeze_hidden_layer: true,
            ..UpdateConfig::default()
        },
    ];
    for config in budgets {
        let whole = train(&head, &features, &targets, &config).unwrap();
        for slice in [1, 7, 1000] {
            let mut stepped = SteppedUpdate::new(
                head.clone(),
                features.clone(),
                targets.clone(),
                config.clone(),
            )
            .unwrap();
            let mut calls = 0;
            while !stepped.advance(slice).unwrap() {
                calls += 1;
                assert!(calls < 1000, "the stepped update never ends");
            }
            assert!(stepped.advance(slice).unwrap(), "done stays done");
            let outcome = stepped.finish().unwrap();
            assert_eq!(outcome.head, whole.head, "slices of {slice}: {config:?}");
            assert_eq!(outcome.steps, whole.steps);
            assert_eq!(outcome.epochs, whole.epochs);
            assert_eq!(outcome.stop_reason, whole.stop_reason);
        }
    }
    let held_out = UpdateConfig {
        validation_fraction: 0.2,
        ..UpdateConfig::default()
    };
    assert!(matches!(
        SteppedUpdate::new(head, features, targets, held_out),
        Err(Error::Config(_))
    ));
}

// ---------------------------------------------------------------- bad input

#[test]
fn zero_samples_is_a_training_error() {
    let head = zero_head();
    let err = train(&head, &[], &[], &UpdateConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Training(_)), "{err}");
    assert_eq!(err.code(), "TrainingError");
    assert!(err.to_string().contains("no samples"), "{err}");
}

#[test]
fn one_sample_of_one_label_trains_without_validation() {
    // One sample, one of the head's two labels: allowed (a single correction
    // is a real case); no sample can be held out, so no validation metrics.
    let config = UpdateConfig {
        validation_fraction: 0.3,
        early_stopping_patience: 3,
        ..UpdateConfig::default()
    };
    let outcome = train(&zero_head(), &[1.0, 2.0], &[1], &config).unwrap();
    assert_eq!(
        (outcome.training_samples, outcome.validation_samples),
        (1, 0)
    );
    assert_eq!(outcome.validation_accuracy, None);
    assert_eq!(outcome.head.predict(&[1.0, 2.0]).unwrap()[0].label, "no");
}

#[test]
fn non_finite_numbers_are_rejected_with_their_position() {
    let head = zero_head();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let err = train(&head, &[1.0, bad], &[0], &UpdateConfig::default()).unwrap_err();
        assert!(matches!(err, Error::NonFinite { index: 1, .. }), "{err}");
        assert_eq!(err.code(), "NonFiniteError");
        let err = head.predict(&[bad, 0.0]).unwrap_err();
        assert!(matches!(err, Error::NonFinite { index: 0, .. }), "{err}");
        let layer = DenseLayer {
            inputs: 2,
            outputs: 2,
            weights: vec![0.0, 0.0, bad, 0.0],
            bias: vec![0.0; 2],
        };
        let err = Head::from_layers(labels(&["yes", "no"]), vec![layer]).unwrap_err();
        assert!(err.to_string().contains("layer 1 weights"), "{err}");
    }
}

#[test]
fn unknown_labels_and_bad_shapes_say_what_is_wrong() {
    let head = zero_head();
    let err = head.label_index("maybe").unwrap_err();
    assert_eq!(err.code(), "UnknownLabelError");
    assert!(
        err.to_string().contains("\"maybe\"") && err.to_string().contains("\"yes\""),
        "{err}"
    );

    let err = train(&head, &[1.0, 2.0], &[2], &UpdateConfig::default()).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    let err = train(&head, &[1.0, 2.0, 3.0], &[0], &UpdateConfig::default()).unwrap_err();
    assert_eq!(err.code(), "ShapeError", "{err}");
    let err = head.predict(&[1.0]).unwrap_err();
    assert_eq!(err.code(), "ShapeError", "{err}");

    let err = Head::new_seeded(2, HeadArchitecture::Linear, labels(&["only"]), 0).unwrap_err();
    assert!(err.to_string().contains("at least two labels"), "{err}");
    let err = Head::new_seeded(2, HeadArchitecture::Linear, labels(&["a", "a"]), 0).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    let err = Head::new_seeded(2, HeadArchitecture::Linear, labels(&["a", "  "]), 0).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    // Size limits, checked before anything is allocated: a manifest asking
    // for billions of hidden units gets an error, not an allocation failure.
    let names = |n: usize| (0..n).map(|i| format!("label {i}")).collect::<Vec<_>>();
    let most = localtune::head::MAX_LABELS;
    Head::new_seeded(2, HeadArchitecture::Linear, names(most), 0).unwrap();
    let err = Head::new_seeded(2, HeadArchitecture::Linear, names(most + 1), 0)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.code(), "ConfigError");
    assert!(err.to_string().contains("at most 1000 labels"), "{err}");
    for (input_dim, architecture) in [
        (
            384,
            HeadArchitecture::Mlp {
                hidden: usize::MAX / 2,
            },
        ),
        (usize::MAX, HeadArchitecture::Linear),
        (4_200, HeadArchitecture::Linear),
    ] {
        let err = Head::new_seeded(input_dim, architecture, names(most), 0)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.code(), "ConfigError");
        assert!(err.to_string().contains("weights and biases"), "{err}");
    }
    // The largest heads allowed: 4,096 inputs × 1,000 labels, and an MLP
    // with 1,024 hidden units over 384.
    Head::new_seeded(4_096, HeadArchitecture::Linear, names(most), 0).unwrap();
    Head::new_seeded(384, HeadArchitecture::Mlp { hidden: 1_024 }, names(most), 0).unwrap();
}

#[test]
fn out_of_range_settings_are_config_errors() {
    let head = zero_head();
    let bad = [
        UpdateConfig {
            learning_rate: 0.0,
            ..UpdateConfig::default()
        },
        UpdateConfig {
            learning_rate: f32::NAN,
            ..UpdateConfig::default()
        },
        UpdateConfig {
            batch_size: 0,
            ..UpdateConfig::default()
        },
        UpdateConfig {
            epochs: 0,
            ..UpdateConfig::default()
        },
        UpdateConfig {
            validation_fraction: 0.9,
            ..UpdateConfig::default()
        },
        UpdateConfig {
            l2_sp: -1.0,
            ..UpdateConfig::default()
        },
        UpdateConfig {
            optimizer: Optimizer::Sgd { momentum: 1.5 },
            ..UpdateConfig::default()
        },
    ];
    for config in bad {
        let err = train(&head, &[1.0, 2.0], &[0], &config).unwrap_err();
        assert_eq!(err.code(), "ConfigError", "{config:?}: {err}");
    }
}

#[test]
fn a_diverging_update_fails_and_names_the_learning_rate() {
    let head = zero_head();
    let config = UpdateConfig {
        optimizer: Optimizer::Sgd { momentum: 0.0 },
        learning_rate: 10.0,
        batch_size: 1,
        epochs: 5,
        ..UpdateConfig::default()
    };
    let err = train(&head, &[1e19, 1e19, -1e19, -1e19], &[0, 1], &config).unwrap_err();
    assert_eq!(err.code(), "TrainingError");
    assert!(err.to_string().contains("learning rate (10)"), "{err}");
}

#[test]
fn a_diverging_hidden_layer_is_reported_not_returned() {
    // Huge inputs blow the hidden layer up; its ReLU would hide the NaN from
    // the loss. The update must fail rather than return such a head.
    let head = Head::new_seeded(
        2,
        HeadArchitecture::Mlp { hidden: 3 },
        labels(&["yes", "no"]),
        1,
    )
    .unwrap();
    let config = UpdateConfig {
        optimizer: Optimizer::Sgd { momentum: 0.9 },
        learning_rate: 10.0,
        batch_size: 1,
        epochs: 20,
        ..UpdateConfig::default()
    };
    let features = [3e38, -3e38, -3e38, 3e38, 1e38, 1e38];
    let err = train(&head, &features, &[0, 1, 0], &config).unwrap_err();
    assert_eq!(err.code(), "TrainingError", "{err}");
}

// ---------------------------------------------------------------- labels

#[test]
fn a_new_label_grows_the_head_without_touching_the_old_rows() {
    let (features, targets) = clustered(3, 6, 8, 4);
    let head = abc_mlp(2);
    let trained = train(&head, &features, &targets, &UpdateConfig::default())
        .unwrap()
        .head;

    let mut grown = trained.clone();
    assert_eq!(
        grown.add_label("a").unwrap(),
        0,
        "an existing label keeps its index"
    );
    let d = grown.add_label("d (new) ✓").unwrap();
    assert_eq!(d, 3);
    assert_eq!(grown.labels().len(), 4);
    let (old, new) = (trained.layers(), grown.layers());
    assert_eq!(old[0], new[0], "the hidden layer is unchanged");
    assert_eq!(
        &new[1].weights[..old[1].weights.len()],
        &old[1].weights[..],
        "old rows unchanged"
    );
    assert_eq!(&new[1].bias[..3], &old[1].bias[..], "old biases unchanged");

    // Among the old labels, the probabilities keep their ratios.
    let x = &features[..8];
    let before = trained.probabilities(x).unwrap();
    let after = grown.probabilities(x).unwrap();
    let rest: f32 = after[..3].iter().sum();
    for c in 0..3 {
        assert!((after[c] / rest - before[c]).abs() < 1e-5);
    }
    assert_eq!(
        grown.predict(x).unwrap()[0].label,
        trained.predict(x).unwrap()[0].label
    );

    // And the new label can be learned from a few samples of its own.
    let mut more_features = features.clone();
    let mut more_targets = targets.clone();
    for i in 0..6 {
        let mut v = vec![0.0; 8];
        v[7] = 2.0 + i as f32 * 0.1;
        more_features.extend(v);
        more_targets.push(d);
    }
    let learned = train(
        &grown,
        &more_features,
        &more_targets,
        &UpdateConfig::default(),
    )
    .unwrap();
    let mut probe = vec![0.0; 8];
    probe[7] = 2.0;
    assert_eq!(learned.head.predict(&probe).unwrap()[0].label, "d (new) ✓");
    assert!(grown.add_label("").is_err());
}

// ---------------------------------------------------------------- the task

/// Runs an update and records every event.
fn events_of(
    head: &Head,
    features: &[f32],
    targets: &[usize],
    config: &UpdateConfig,
) -> (
    localtune::Result<localtune::UpdateOutcome>,
    Vec<UpdateEvent>,
) {
    let mut events = Vec::new();
    let outcome = run_update(
        head,
        None,
        TrainingSet {
            features,
            labels: targets,
        },
        config,
        &no_clock,
        &mut |e: &UpdateEvent| {
            events.push(*e);
            ControlFlow::Continue(())
        },
    );
    (outcome, events)
}

#[test]
fn events_come_in_order_with_metrics() {
    let (features, targets) = clustered(3, 10, 8, 5);
    let head = Head::new_seeded(8, HeadArchitecture::Linear, labels(&["a", "b", "c"]), 0).unwrap();
    let config = UpdateConfig {
        batch_size: 8,
        epochs: 4,
        validation_fraction: 0.2,
        ..UpdateConfig::default()
    };
    let (outcome, events) = events_of(&head, &features, &targets, &config);
    let outcome = outcome.unwrap();
    // 30 samples, 2 of each label held out: 24 train → 3 batches of 8 per epoch.
    assert_eq!(
        (outcome.training_samples, outcome.validation_samples),
        (24, 6)
    );
    let kinds: Vec<UpdateEventKind> = events.iter().map(|e| e.kind).collect();
    let mut expected = vec![UpdateEventKind::Began];
    for _ in 0..4 {
        expected.extend([UpdateEventKind::BatchEnd; 3]);
        expected.push(UpdateEventKind::EpochEnd);
    }
    expected.push(UpdateEventKind::Done);
    assert_eq!(kinds, expected);
    for (i, e) in events
        .iter()
        .filter(|e| e.kind == UpdateEventKind::BatchEnd)
        .enumerate()
    {
        assert_eq!((e.epoch, e.batch, e.step), (i / 3, i % 3, i + 1));
        assert!(e.train_loss.is_finite() && (0.0..=1.0).contains(&e.train_accuracy));
    }
    for e in events
        .iter()
        .filter(|e| e.kind != UpdateEventKind::BatchEnd)
    {
        assert!(
            e.validation_loss.is_some() && e.validation_accuracy.is_some(),
            "{e:?}"
        );
    }
    let done = events.last().unwrap();
    assert_eq!((done.epoch, done.step), (4, 12));
    assert_eq!(done.train_accuracy, outcome.train_accuracy);
    assert!(
        done.train_loss < events[0].train_loss,
        "training lowered the loss"
    );
}

#[test]
fn cancelling_between_batches_leaves_the_head_untouched() {
    let (features, targets) = clustered(3, 10, 8, 6);
    let head = Head::new_seeded(8, HeadArchitecture::Linear, labels(&["a", "b", "c"]), 0).unwrap();
    let before = head.clone();
    let seen = Cell::new(0);
    let result = run_update(
        &head,
        None,
        TrainingSet {
            features: &features,
            labels: &targets,
        },
        &UpdateConfig {
            batch_size: 4,
            ..UpdateConfig::default()
        },
        &no_clock,
        &mut |e: &UpdateEvent| {
            if e.kind == UpdateEventKind::BatchEnd {
                seen.set(seen.get() + 1);
                if e.step == 3 {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        },
    );
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Cancelled));
    assert_eq!(err.code(), "AbortError");
    assert_eq!(seen.get(), 3, "no batch ran after the cancel");
    assert_eq!(head, before);
}

#[test]
fn early_stopping_returns_the_best_head() {
    // Each label's held-out sample mirrors its training sample, so every
    // step that fits training makes the held-out loss worse: training must
    // stop after `patience` epochs and hand back the starting head.
    let features = [1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, -1.0];
    let targets = [0, 0, 1, 1];
    let head = Head::new_seeded(2, HeadArchitecture::Linear, labels(&["a", "b"]), 0).unwrap();
    let config = UpdateConfig {
        learning_rate: 0.1,
        epochs: 50,
        validation_fraction: 0.5,
        min_samples_per_label_for_validation: 2,
        early_stopping_patience: 2,
        ..UpdateConfig::default()
    };
    let outcome = train(&head, &features, &targets, &config).unwrap();
    assert_eq!(outcome.stop_reason, StopReason::EarlyStopped);
    assert_eq!((outcome.epochs, outcome.best_epoch), (2, 0));
    assert_eq!(
        outcome.head, head,
        "the best held-out loss was the starting head's"
    );
    assert_eq!(
        (outcome.training_samples, outcome.validation_samples),
        (2, 2)
    );
}

#[test]
fn step_and_time_budgets_stop_the_update() {
    let (features, targets) = clustered(3, 10, 8, 7);
    let head = Head::new_seeded(8, HeadArchitecture::Linear, labels(&["a", "b", "c"]), 0).unwrap();
    let config = UpdateConfig {
        batch_size: 4,
        max_steps: Some(5),
        ..UpdateConfig::default()
    };
    let outcome = train(&head, &features, &targets, &config).unwrap();
    assert_eq!(
        (outcome.stop_reason, outcome.steps),
        (StopReason::StepBudget, 5)
    );

    // A clock that advances 1 ms per reading: the budget is checked after
    // every batch.
    let now = Cell::new(0.0);
    let clock = || {
        now.set(now.get() + 1.0);
        now.get()
    };
    let config = UpdateConfig {
        batch_size: 4,
        time_budget_ms: Some(4.5),
        ..UpdateConfig::default()
    };
    let outcome = run_update(
        &head,
        None,
        TrainingSet {
            features: &features,
            labels: &targets,
        },
        &config,
        &clock,
        &mut ignore,
    )
    .unwrap();
    // The clock reads 1 at the start and 1 + k after batch k: the first
    // reading past 4.5 ms elapsed follows batch 5.
    assert_eq!(outcome.stop_reason, StopReason::TimeBudget);
    assert_eq!(outcome.steps, 5);
}

/// How many mini-batches an update's events report.
fn batch_ends(events: &[UpdateEvent]) -> usize {
    events
        .iter()
        .filter(|e| e.kind == UpdateEventKind::BatchEnd)
        .count()
}

#[test]
fn class_balanced_epochs_repeat_the_smaller_labels() {
    // 9 samples of "a", 1 of "b": a balanced epoch draws each label 9 times.
    let mut features = Vec::new();
    let mut targets = Vec::new();
    for i in 0..10 {
        features.extend([1.0, i as f32 * 0.1]);
        targets.push(usize::from(i == 9));
    }
    let head = Head::new_seeded(2, HeadArchitecture::Linear, labels(&["a", "b"]), 0).unwrap();
    let config = UpdateConfig {
        batch_size: 1,
        epochs: 1,
        ..UpdateConfig::default()
    };
    let (_, events) = events_of(&head, &features, &targets, &config);
    let batches = batch_ends(&events);
    assert_eq!(batches, 18);
    let (_, events) = events_of(
        &head,
        &features,
        &targets,
        &UpdateConfig {
            class_balanced: false,
            ..config
        },
    );
    let batches = batch_ends(&events);
    assert_eq!(batches, 10);
}

#[test]
fn a_skewed_store_cannot_blow_up_a_balanced_epoch() {
    // One label with 1,801 samples beside 199 labels with one each: drawn
    // "as often as the largest", an epoch would be 200 × 1,801 = 360,200
    // rows; it is 4 × the 2,000 samples: 40 rows of every label.
    let names: Vec<String> = (0..200).map(|l| format!("l{l}")).collect();
    let mut features = Vec::new();
    let mut targets = Vec::new();
    for i in 0..2_000usize {
        let label = i.saturating_sub(1_800);
        features.extend([1.0, (i % 7) as f32 * 0.1, label as f32 * 0.01, 0.5]);
        targets.push(label);
    }
    let head = Head::new_seeded(4, HeadArchitecture::Linear, names, 0).unwrap();
    let config = UpdateConfig {
        batch_size: 1_000,
        epochs: 1,
        ..UpdateConfig::default()
    };
    let (outcome, events) = events_of(&head, &features, &targets, &config);
    let batches = batch_ends(&events);
    assert_eq!(batches, 8, "8,000 rows in batches of 1,000");
    assert_eq!(outcome.unwrap().steps, 8);
}

#[test]
fn l2_sp_holds_the_head_near_its_anchor() {
    let (features, targets) = clustered(3, 10, 8, 8);
    let head = Head::new_seeded(8, HeadArchitecture::Linear, labels(&["a", "b", "c"]), 0).unwrap();
    let distance = |h: &Head| -> f32 {
        h.layers()[0]
            .weights
            .iter()
            .zip(&head.layers()[0].weights)
            .map(|(a, b)| (a - b) * (a - b))
            .sum()
    };
    let free = train(&head, &features, &targets, &UpdateConfig::default())
        .unwrap()
        .head;
    let held = train(
        &head,
        &features,
        &targets,
        &UpdateConfig {
            // 30 samples: weighs like 1.0 on the mean loss.
            l2_sp: 30.0,
            ..UpdateConfig::default()
        },
    )
    .unwrap()
    .head;
    assert!(
        distance(&held) < distance(&free) / 2.0,
        "{} vs {}",
        distance(&held),
        distance(&free)
    );
}

#[test]
fn a_frozen_hidden_layer_keeps_its_weights_while_the_output_layer_learns() {
    let (features, targets) = clustered(3, 10, 8, 5);
    let head = Head::new_seeded(
        8,
        HeadArchitecture::Mlp { hidden: 16 },
        labels(&["a", "b", "c"]),
        2,
    )
    .unwrap();
    for optimizer in [Optimizer::default(), Optimizer::Sgd { momentum: 0.9 }] {
        let config = UpdateConfig {
            optimizer,
            epochs: 30,
            freeze_hidden_layer: true,
            ..UpdateConfig::default()
        };
        let out = train(&head, &features, &targets, &config).unwrap();
        assert_eq!(
            out.head.layers()[0],
            head.layers()[0],
            "{optimizer:?}: the hidden layer is bit-identical"
        );
        assert_ne!(
            out.head.layers()[1],
            head.layers()[1],
            "{optimizer:?}: the output layer learned"
        );
        assert!(
            out.train_accuracy > 0.9,
            "{optimizer:?}: {}",
            out.train_accuracy
        );
    }
    let linear =
        Head::new_seeded(8, HeadArchitecture::Linear, labels(&["a", "b", "c"]), 0).unwrap();
    let config = UpdateConfig {
        freeze_hidden_layer: true,
        ..UpdateConfig::default()
    };
    let err = train(&linear, &features, &targets, &config).unwrap_err();
    assert_eq!(err.code(), "ConfigError");
    assert!(err.to_string().contains("no hidden layer"), "{err}");
}
