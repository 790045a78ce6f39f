//! WebAssembly SIMD (simd128) kernels: four f32 lanes per instruction. Same
//! signatures and summation order as [`super::scalar`]. Tails shorter than a
//! vector go to the scalar twin itself (elementwise kernels) or to a scalar
//! loop that keeps the dot product's summation order.

use core::arch::wasm32::*;

use super::exp_poly::{LN2_HI, LN2_LO, LOG2_E, P};
use super::{scalar, AdamStep, FLUSH_BELOW};

/// Lanes with `|x|` below [`FLUSH_BELOW`] (or NaN) set to zero, as
/// `scalar::flush` does for one value.
#[inline(always)]
fn flush(x: v128) -> v128 {
    v128_and(x, f32x4_ge(f32x4_abs(x), f32x4_splat(FLUSH_BELOW)))
}

/// Loads four f32 from `s[i..i + 4]`.
///
/// # Safety
/// `i + 4 <= s.len()`.
#[inline(always)]
unsafe fn load(s: &[f32], i: usize) -> v128 {
    debug_assert!(i + 4 <= s.len());
    v128_load(s.as_ptr().add(i) as *const v128)
}

/// Stores four f32 into `s[i..i + 4]`.
///
/// # Safety
/// `i + 4 <= s.len()`.
#[inline(always)]
unsafe fn store(s: &mut [f32], i: usize, v: v128) {
    debug_assert!(i + 4 <= s.len());
    v128_store(s.as_mut_ptr().add(i) as *mut v128, v)
}

/// `(v0 + v2) + (v1 + v3)`: the scalar twin's reduction of four partial sums.
#[inline(always)]
fn reduce(v: v128) -> f32 {
    let halves = f32x4_add(v, i32x4_shuffle::<2, 3, 2, 3>(v, v));
    f32x4_extract_lane::<0>(halves) + f32x4_extract_lane::<1>(halves)
}

/// `Σ a[i]·b[i]`: four running partial sums (one vector), reduced, then the
/// tail in order. The slices must have equal length.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let split = a.len() - a.len() % 4;
    let mut acc = f32x4_splat(0.0);
    let mut i = 0;
    while i < split {
        // SAFETY: i + 4 <= split <= len of both slices.
        unsafe { acc = f32x4_add(acc, f32x4_mul(load(a, i), load(b, i))) };
        i += 4;
    }
    let mut sum = reduce(acc);
    for j in split..a.len() {
        sum += a[j] * b[j];
    }
    sum
}

/// `dot(w, xs[k])` for four vectors at once: each chunk of `w` is loaded
/// once for four samples. Each result is summed exactly as [`dot`] sums it.
pub fn dot4(w: &[f32], xs: [&[f32]; 4]) -> [f32; 4] {
    for x in xs {
        assert_eq!(x.len(), w.len());
    }
    let split = w.len() - w.len() % 4;
    let mut acc = [f32x4_splat(0.0); 4];
    let mut i = 0;
    while i < split {
        // SAFETY: i + 4 <= split <= len of `w` and of every `xs[k]`.
        unsafe {
            let wi = load(w, i);
            for k in 0..4 {
                acc[k] = f32x4_add(acc[k], f32x4_mul(wi, load(xs[k], i)));
            }
        }
        i += 4;
    }
    std::array::from_fn(|k| {
        let mut sum = reduce(acc[k]);
        for j in split..w.len() {
            sum += w[j] * xs[k][j];
        }
        sum
    })
}

/// `Σ q[i]·r[i]`, exact (see [`scalar::dot_i8`]).
pub fn dot_i8(q: &[i16], r: &[i8]) -> i32 {
    assert_eq!(r.len(), q.len());
    let split = q.len() - q.len() % 16;
    // SAFETY: the chunks end at `split` <= the length of `q` and `r`.
    let acc = unsafe { dot_i8_chunks::<1>(q.as_ptr(), [r.as_ptr()], split) };
    sum_lanes(acc[0]) + scalar::dot_i8(&q[split..], &r[split..])
}

/// [`dot_i8`] of one query against four rows: each chunk of the query is
/// loaded once for four rows.
pub fn dot4_i8(q: &[i16], rs: [&[i8]; 4]) -> [i32; 4] {
    for r in rs {
        assert_eq!(r.len(), q.len());
    }
    let split = q.len() - q.len() % 16;
    // SAFETY: the chunks end at `split` <= the length of `q` and every row.
    let acc = unsafe { dot_i8_chunks::<4>(q.as_ptr(), rs.map(|r| r.as_ptr()), split) };
    std::array::from_fn(|k| sum_lanes(acc[k]) + scalar::dot_i8(&q[split..], &rs[k][split..]))
}

/// Four i32 partial sums per row of `q[..len]·rows[k][..len]`, sixteen
/// values at a time: the row's int8 values widened to i16 and multiplied
/// pairwise into i32 (`i32x4.dot_i16x8_s`), a quarter of an f32 row's
/// bytes. (Relaxed SIMD's 8-bit dot product did the sixteen in one
/// instruction, 0.26 instead of 0.42 ms for 5,000 rows in Node, but Node
/// 20's V8 gave other integers for it until the function was optimized:
/// a scan that must not miss a row cannot lean on it.)
///
/// # Safety
/// `len` is a multiple of 16 and at most the length of `q` and every row.
#[inline(always)]
unsafe fn dot_i8_chunks<const N: usize>(
    q: *const i16,
    rows: [*const i8; N],
    len: usize,
) -> [v128; N] {
    let mut acc = [i32x4_splat(0); N];
    let mut i = 0;
    while i < len {
        let q_low = v128_load(q.add(i) as *const v128);
        let q_high = v128_load(q.add(i + 8) as *const v128);
        for k in 0..N {
            let row = v128_load(rows[k].add(i) as *const v128);
            let low = i32x4_dot_i16x8(q_low, i16x8_extend_low_i8x16(row));
            let high = i32x4_dot_i16x8(q_high, i16x8_extend_high_i8x16(row));
            acc[k] = i32x4_add(acc[k], i32x4_add(low, high));
        }
        i += 16;
    }
    acc
}

/// The sum of four i32 lanes.
#[inline(always)]
fn sum_lanes(a: v128) -> i32 {
    i32x4_extract_lane::<0>(a)
        + i32x4_extract_lane::<1>(a)
        + i32x4_extract_lane::<2>(a)
        + i32x4_extract_lane::<3>(a)
}

/// [`dot4`] for two weight rows: `out[r][k] = dot(ws[r], xs[k])`. A 2 × 4
/// tile: per chunk, six loads feed eight multiply-adds (eight independent
/// sums, which also hides the adds' latency).
pub fn dot2x4(ws: [&[f32]; 2], xs: [&[f32]; 4]) -> [[f32; 4]; 2] {
    let len = ws[0].len();
    for x in xs.iter().chain(&ws[1..]) {
        assert_eq!(x.len(), len);
    }
    let split = len - len % 4;
    let mut acc0 = [f32x4_splat(0.0); 4];
    let mut acc1 = [f32x4_splat(0.0); 4];
    let mut i = 0;
    while i < split {
        // SAFETY: i + 4 <= split <= len of both rows and every `xs[k]`.
        unsafe {
            let (w0, w1) = (load(ws[0], i), load(ws[1], i));
            for k in 0..4 {
                let x = load(xs[k], i);
                acc0[k] = f32x4_add(acc0[k], f32x4_mul(w0, x));
                acc1[k] = f32x4_add(acc1[k], f32x4_mul(w1, x));
            }
        }
        i += 4;
    }
    let finish = |w: &[f32], acc: [v128; 4]| -> [f32; 4] {
        std::array::from_fn(|k| {
            let mut sum = reduce(acc[k]);
            for j in split..len {
                sum += w[j] * xs[k][j];
            }
            sum
        })
    };
    [finish(ws[0], acc0), finish(ws[1], acc1)]
}

/// `y[i] += Σ_k alphas[k]·xs[k][i]`, adding the four terms in order `k = 0..4`
/// (so the result equals four [`axpy`] calls in a row) with one load and one
/// store of `y` instead of four.
pub fn axpy4(alphas: [f32; 4], xs: [&[f32]; 4], y: &mut [f32]) {
    for x in xs {
        assert_eq!(x.len(), y.len());
    }
    let split = y.len() - y.len() % 4;
    let a = alphas.map(|a| f32x4_splat(a));
    let mut i = 0;
    while i < split {
        // SAFETY: i + 4 <= split <= len of `y` and of every `xs[k]`.
        unsafe {
            let mut v = load(y, i);
            for k in 0..4 {
                v = f32x4_add(v, f32x4_mul(a[k], load(xs[k], i)));
            }
            store(y, i, v);
        }
        i += 4;
    }
    scalar::axpy4(alphas, xs.map(|x| &x[split..]), &mut y[split..]);
}

/// [`axpy4`] into two rows at once, `ys[r] += Σ_k alphas[r][k]·xs[k]` (same
/// order): each chunk of the four vectors is loaded once for both rows.
pub fn axpy4x2(alphas: [[f32; 4]; 2], xs: [&[f32]; 4], ys: [&mut [f32]; 2]) {
    let [y0, y1] = ys;
    for x in xs {
        assert_eq!(x.len(), y0.len());
    }
    assert_eq!(y0.len(), y1.len());
    let split = y0.len() - y0.len() % 4;
    let a0 = alphas[0].map(|a| f32x4_splat(a));
    let a1 = alphas[1].map(|a| f32x4_splat(a));
    let mut i = 0;
    while i < split {
        // SAFETY: i + 4 <= split <= len of both rows and every `xs[k]`.
        unsafe {
            let mut v0 = load(y0, i);
            let mut v1 = load(y1, i);
            for k in 0..4 {
                let x = load(xs[k], i);
                v0 = f32x4_add(v0, f32x4_mul(a0[k], x));
                v1 = f32x4_add(v1, f32x4_mul(a1[k], x));
            }
            store(y0, i, v0);
            store(y1, i, v1);
        }
        i += 4;
    }
    let tails = xs.map(|x| &x[split..]);
    scalar::axpy4(alphas[0], tails, &mut y0[split..]);
    scalar::axpy4(alphas[1], tails, &mut y1[split..]);
}

/// [`scalar::exp_shifted`], four lanes at a time (the same operations, so
/// the same bits).
pub fn exp_shifted(values: &mut [f32], shift: f32, floor: f32) {
    let split = values.len() - values.len() % 4;
    let (shift_v, floor_v) = (f32x4_splat(shift), f32x4_splat(floor));
    let splat = |x: f32| f32x4_splat(x);
    let mut i = 0;
    while i < split {
        // SAFETY: i + 4 <= split <= values.len().
        unsafe {
            let d = f32x4_sub(load(values, i), shift_v);
            // Lanes under the floor compute exp(floor) and are then zeroed;
            // a NaN lane compares false and stays NaN.
            let under = f32x4_lt(d, floor_v);
            let x = v128_bitselect(floor_v, d, under);
            let n = f32x4_nearest(f32x4_mul(x, splat(LOG2_E)));
            let r = f32x4_sub(
                f32x4_sub(x, f32x4_mul(n, splat(LN2_HI))),
                f32x4_mul(n, splat(LN2_LO)),
            );
            let mut p = splat(P[0]);
            for c in &P[1..] {
                p = f32x4_add(f32x4_mul(p, r), splat(*c));
            }
            let y = f32x4_add(f32x4_add(f32x4_mul(p, f32x4_mul(r, r)), r), splat(1.0));
            let exponent = i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127));
            let e = f32x4_mul(y, i32x4_shl(exponent, 23));
            store(values, i, v128_andnot(e, under));
        }
        i += 4;
    }
    scalar::exp_shifted(&mut values[split..], shift, floor);
}

/// `y[i] += alpha·x[i]`. The slices must have equal length.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    let split = x.len() - x.len() % 4;
    let a = f32x4_splat(alpha);
    let mut i = 0;
    while i < split {
        // SAFETY: i + 4 <= split <= len of both slices.
        unsafe { store(y, i, f32x4_add(load(y, i), f32x4_mul(a, load(x, i)))) };
        i += 4;
    }
    // Elementwise: the scalar twin on the tail does exactly the same.
    scalar::axpy(alpha, &x[split..], &mut y[split..]);
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
    assert!(grads.len() == params.len() && params.len() == anchor.len());
    let split = grads.len() - grads.len() % 4;
    let wd = f32x4_splat(weight_decay);
    let sp = f32x4_splat(l2_sp);
    let mut i = 0;
    while i < split {
        // SAFETY: i + 4 <= split <= len of all three slices.
        unsafe {
            let w = load(params, i);
            let pull = f32x4_add(
                f32x4_mul(wd, w),
                f32x4_mul(sp, f32x4_sub(w, load(anchor, i))),
            );
            store(grads, i, f32x4_add(load(grads, i), pull));
        }
        i += 4;
    }
    scalar::add_l2_penalties(
        &mut grads[split..],
        &params[split..],
        &anchor[split..],
        weight_decay,
        l2_sp,
    );
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
    assert!(params.len() == grads.len() && grads.len() == velocity.len());
    let split = params.len() - params.len() % 4;
    let mu = f32x4_splat(momentum);
    let lr = f32x4_splat(learning_rate);
    let mut i = 0;
    while i < split {
        // SAFETY: i + 4 <= split <= len of all three slices.
        unsafe {
            let v = flush(f32x4_add(f32x4_mul(mu, load(velocity, i)), load(grads, i)));
            store(velocity, i, v);
            store(params, i, f32x4_sub(load(params, i), f32x4_mul(lr, v)));
        }
        i += 4;
    }
    scalar::sgd_momentum_step(
        &mut params[split..],
        &grads[split..],
        &mut velocity[split..],
        learning_rate,
        momentum,
    );
}

/// One Adam step (Kingma & Ba, with bias correction):
/// `m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
///  w −= lr · (m / bc1) / (sqrt(v / bc2) + ε)`.
pub fn adam_step(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    assert!(params.len() == grads.len() && grads.len() == m.len() && m.len() == v.len());
    let split = params.len() - params.len() % 4;
    let b1 = f32x4_splat(step.beta1);
    let b2 = f32x4_splat(step.beta2);
    let one_minus_b1 = f32x4_splat(1.0 - step.beta1);
    let one_minus_b2 = f32x4_splat(1.0 - step.beta2);
    // Multiplying by the reciprocals saves two of the three divisions.
    let inv_bc1 = f32x4_splat(1.0 / step.bias_correction1);
    let inv_bc2 = f32x4_splat(1.0 / step.bias_correction2);
    let lr = f32x4_splat(step.learning_rate);
    let eps = f32x4_splat(step.epsilon);
    let mut i = 0;
    while i < split {
        // SAFETY: i + 4 <= split <= len of all four slices.
        unsafe {
            let g = load(grads, i);
            let mi = flush(f32x4_add(
                f32x4_mul(b1, load(m, i)),
                f32x4_mul(one_minus_b1, g),
            ));
            let vi = flush(f32x4_add(
                f32x4_mul(b2, load(v, i)),
                f32x4_mul(one_minus_b2, f32x4_mul(g, g)),
            ));
            store(m, i, mi);
            store(v, i, vi);
            let m_hat = f32x4_mul(mi, inv_bc1);
            let v_hat = f32x4_mul(vi, inv_bc2);
            let update = f32x4_div(f32x4_mul(lr, m_hat), f32x4_add(f32x4_sqrt(v_hat), eps));
            store(params, i, f32x4_sub(load(params, i), update));
        }
        i += 4;
    }
    scalar::adam_step(
        &mut params[split..],
        &grads[split..],
        &mut m[split..],
        &mut v[split..],
        step,
    );
}
