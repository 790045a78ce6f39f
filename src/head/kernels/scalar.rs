//! Scalar kernels: the portable twin of [`super::simd128`], with the same
//! signatures and the same summation order (four partial sums, combined
//! pairwise), so the two agree to rounding.

use super::exp_poly::{LN2_HI, LN2_LO, LOG2_E, P};
use super::{AdamStep, FLUSH_BELOW};

/// `x`, or zero when `|x|` is below [`FLUSH_BELOW`] (NaN also gives zero,
/// as in the SIMD twin; callers never pass one).
#[inline(always)]
fn flush(x: f32) -> f32 {
    if x.abs() >= FLUSH_BELOW {
        x
    } else {
        0.0
    }
}

/// `Σ a[i]·b[i]`, summed as the SIMD twin sums it: four running partial
/// sums (lane `i % 4`), reduced as `(s0 + s2) + (s1 + s3)`, then the tail
/// in order. The slices must have equal length.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let split = a.len() - a.len() % 4;
    let mut acc = [0.0f32; 4];
    for (ca, cb) in a[..split].chunks_exact(4).zip(b[..split].chunks_exact(4)) {
        for lane in 0..4 {
            acc[lane] += ca[lane] * cb[lane];
        }
    }
    let mut sum = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for i in split..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

/// `dot(w, xs[k])` for four vectors at once (one pass over `w`); each
/// result is summed exactly as [`dot`] sums it.
pub fn dot4(w: &[f32], xs: [&[f32]; 4]) -> [f32; 4] {
    xs.map(|x| dot(w, x))
}

/// `Σ q[i]·r[i]` in exact integer arithmetic: a query widened to i16
/// against an int8 row (the correction memory's coarse scan). Exact, so
/// every twin gives the same integer. No overflow for values within ±127
/// and rows shorter than 2^17.
pub fn dot_i8(q: &[i16], r: &[i8]) -> i32 {
    debug_assert_eq!(q.len(), r.len());
    q.iter().zip(r).map(|(&a, &b)| a as i32 * b as i32).sum()
}

/// [`dot_i8`] of one query against four rows.
pub fn dot4_i8(q: &[i16], rs: [&[i8]; 4]) -> [i32; 4] {
    rs.map(|r| dot_i8(q, r))
}

/// [`dot4`] for two weight rows: `out[r][k] = dot(ws[r], xs[k])`.
pub fn dot2x4(ws: [&[f32]; 2], xs: [&[f32]; 4]) -> [[f32; 4]; 2] {
    ws.map(|w| dot4(w, xs))
}

/// `y[i] += Σ_k alphas[k]·xs[k][i]`, adding the four terms in order `k = 0..4`
/// (so the result equals four [`axpy`] calls in a row).
pub fn axpy4(alphas: [f32; 4], xs: [&[f32]; 4], y: &mut [f32]) {
    for x in xs {
        debug_assert_eq!(x.len(), y.len());
    }
    for (i, yi) in y.iter_mut().enumerate() {
        let mut v = *yi;
        for k in 0..4 {
            v += alphas[k] * xs[k][i];
        }
        *yi = v;
    }
}

/// [`axpy4`] into two rows at once: `ys[r] += Σ_k alphas[r][k]·xs[k]`.
pub fn axpy4x2(alphas: [[f32; 4]; 2], xs: [&[f32]; 4], ys: [&mut [f32]; 2]) {
    for (alphas, y) in alphas.into_iter().zip(ys) {
        axpy4(alphas, xs, y);
    }
}

/// `exp(x)` for `x` in `[-87, 0]` (or NaN, which stays NaN); see
/// [`super::exp_poly`].
#[inline(always)]
pub fn exp_non_positive(x: f32) -> f32 {
    let n = (x * LOG2_E).round_ties_even();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = ((((P[0] * r + P[1]) * r + P[2]) * r + P[3]) * r + P[4]) * r + P[5];
    let y = (p * (r * r) + r) + 1.0;
    // 2^n from its bits; NaN gives n = 0 here and NaN in `y`.
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    y * scale
}

/// `values[i] = exp(values[i] − shift)`, or exactly 0 where
/// `values[i] − shift < floor` (`floor` ≥ −87; `shift` ≥ every value). A NaN
/// stays NaN.
pub fn exp_shifted(values: &mut [f32], shift: f32, floor: f32) {
    for v in values {
        let d = *v - shift;
        *v = if d < floor { 0.0 } else { exp_non_positive(d) };
    }
}

/// `y[i] += alpha·x[i]`. The slices must have equal length.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Adds the gradient of the two L2 penalties to `grads`:
/// `g += weight_decay·w + l2_sp·(w − anchor)`.
pub fn add_l2_penalties(
    grads: &mut [f32],
    params: &[f32],
    anchor: &[f32],
    weight_decay: f32,
    l2_sp: f32,
) {
    debug_assert!(grads.len() == params.len() && params.len() == anchor.len());
    for ((g, w), a) in grads.iter_mut().zip(params).zip(anchor) {
        *g += weight_decay * w + l2_sp * (w - a);
    }
}

/// One SGD step with (PyTorch-style) momentum:
/// `v = momentum·v + g; w −= learning_rate·v`.
pub fn sgd_momentum_step(
    params: &mut [f32],
    grads: &[f32],
    velocity: &mut [f32],
    learning_rate: f32,
    momentum: f32,
) {
    debug_assert!(params.len() == grads.len() && grads.len() == velocity.len());
    for ((w, g), v) in params.iter_mut().zip(grads).zip(velocity.iter_mut()) {
        *v = flush(momentum * *v + g);
        *w -= learning_rate * *v;
    }
}

/// One Adam step (Kingma & Ba, with bias correction):
/// `m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
///  w −= lr · (m / bc1) / (sqrt(v / bc2) + ε)`.
pub fn adam_step(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    debug_assert!(params.len() == grads.len() && grads.len() == m.len() && m.len() == v.len());
    let AdamStep {
        learning_rate,
        beta1,
        beta2,
        epsilon,
        bias_correction1,
        bias_correction2,
    } = *step;
    // Multiplying by the reciprocals saves two of the three divisions.
    let (inv_bc1, inv_bc2) = (1.0 / bias_correction1, 1.0 / bias_correction2);
    for i in 0..params.len() {
        let g = grads[i];
        let mi = flush(beta1 * m[i] + (1.0 - beta1) * g);
        let vi = flush(beta2 * v[i] + (1.0 - beta2) * (g * g));
        m[i] = mi;
        v[i] = vi;
        let m_hat = mi * inv_bc1;
        let v_hat = vi * inv_bc2;
        params[i] -= learning_rate * m_hat / (v_hat.sqrt() + epsilon);
    }
}
