//! The encoder's weight products in integers: activations rounded to 12
//! bits on the fly, the model's int8 weights kept as integers.
//!
//! MiniLM's 36 weight products (per layer: Q, K, V, the attention output,
//! the feed-forward pair) are `Y = X · W` where the ONNX file stores `W` as
//! int8 values `Q` times one scale per output column `s`. tract folds that
//! into an f32 matrix and runs f32 kernels. Rounding each row of `X` to
//! 12 bits with its own scale `r` (`X ≈ r · Xq`) makes the product
//! `Y[m, n] = r[m] · s[n] · Σ_k Xq[m, k] · Q[k, n]`: the sum is exact in
//! i32 and one `i32x4.dot_i16x8_s` does 8 of its products (x86-64's
//! `pmaddwd` is the same instruction).
//!
//! Decided by measurement (docs/benchmarks.md, "Integer weight products"):
//! 12 bits keep cosine ≥ 0.99996 to the f32 encoder's vectors on 5,698
//! sentences and move the head-quality benchmark by ≤ 0.08 points (8 bits
//! failed the bound); the kernel takes 0.51–0.57× of the f32 kernel's time
//! in every engine. The weights stay int8 in memory: each panel is widened
//! to i16 by its first tile of rows, which the other tiles then read
//! (widening in every tile's inner loop cost Firefox and WebKit their lead;
//! i16 weights in memory cost a sentence that finds them out of the cache
//! ~20% more time: twice the bytes).
//!
//! [`rewrite`] replaces each product of the decluttered model whose weight
//! is, bit for bit, one of the int8 matrices the model was built from with
//! an [`IntegerProduct`]. The arithmetic is the same on every target (the
//! integer sums are exact, the f32 steps are the same operations in the
//! same order), so the bundle tool's vectors, computed natively, are the
//! vectors a page computes.

use std::sync::{Arc, Weak};

use tract_nnef::prelude::*;
use tract_nnef::tract_core::internal::*;
use tract_nnef::tract_core::ops::einsum::EinSum;

use super::quantized::{QuantizedMatrix, Scale};

/// Activations are rounded to `±ACTIVATION_LEVELS` (12 bits with the sign).
const ACTIVATION_LEVELS: f32 = 2047.0;
/// A row whose largest magnitude is below this is rounded as if it were
/// this large: its values round to (almost) zero instead of the inverse
/// scale overflowing to infinity.
const SMALLEST_ROW_MAX: f32 = 1e-30;
/// The longest sum that cannot overflow an i32: |Xq| ≤ 2047, |Q| ≤ 128.
const MAX_DEPTH: usize = (i32::MAX as usize) / (2047 * 128);
/// The register tile: rows of activations × columns of weights.
const MR: usize = 4;
const NR: usize = 8;

/// An int8 weight matrix `[k, n]` with one scale per column, as panels of
/// `NR` columns: for each pair of rows `(2p, 2p + 1)`, the columns' values
/// interleaved `[Q[2p][c], Q[2p + 1][c]]` — once widened to i16, the operand
/// layout of `i32x4.dot_i16x8_s` against a broadcast pair of activations.
#[derive(Debug)]
pub(crate) struct PackedWeights {
    k: usize,
    n: usize,
    /// `k` rounded up to even (the rounded activations are padded with a 0).
    k_padded: usize,
    /// `ceil(n / NR)` panels of `k_padded * NR` values, zero beyond `n`.
    panels: Vec<i8>,
    /// One per column, 0 beyond `n`.
    column_scales: Vec<f32>,
}

impl PackedWeights {
    /// `m` as `[k, n]` weights, or `None` when it is not a signed matrix
    /// with one scale for all or one per column (a per-row scale would
    /// not factor out of the sum), or its sums could overflow.
    pub(crate) fn new(m: &QuantizedMatrix) -> Option<Self> {
        let (k, n) = (m.rows, m.cols);
        if !m.signed || k == 0 || n == 0 || k > MAX_DEPTH {
            return None;
        }
        let scales: Vec<f32> = match &m.scale {
            Scale::One(s) => vec![*s; n],
            Scale::PerColumn(s) if s.len() == n => s.clone(),
            _ => return None,
        };
        let k_padded = k.next_multiple_of(2);
        let panel_count = n.div_ceil(NR);
        let mut panels = vec![0i8; panel_count * k_padded * NR];
        for (row, values) in m.values.chunks_exact(n).enumerate() {
            pack_row(row, values, k_padded, &mut panels);
        }
        let mut column_scales = scales;
        column_scales.resize(panel_count * NR, 0.0);
        Some(PackedWeights {
            k,
            n,
            k_padded,
            panels,
            column_scales,
        })
    }

    /// Weights as a compiled encoder stores them ([`nnef_registry`]): the
    /// panels and column scales [`PackedWeights::new`] made, checked
    /// against `k` and `n` (a file can say anything), so a load does not
    /// pack 10.6 M weights again.
    fn from_parts(
        k: usize,
        n: usize,
        panels: Vec<i8>,
        column_scales: Vec<f32>,
    ) -> Result<Self, String> {
        if k == 0 || n == 0 || k > MAX_DEPTH {
            return Err(format!(
                "a {k} × {n} integer weight is not one this encoder makes"
            ));
        }
        let k_padded = k.next_multiple_of(2);
        let panel_count = n.div_ceil(NR);
        if panels.len() != panel_count * k_padded * NR || column_scales.len() != panel_count * NR {
            return Err(format!(
                "{} packed values and {} scales for a {k} × {n} weight ({} and {} expected)",
                panels.len(),
                column_scales.len(),
                panel_count * k_padded * NR,
                panel_count * NR
            ));
        }
        Ok(PackedWeights {
            k,
            n,
            k_padded,
            panels,
            column_scales,
        })
    }

    /// `out = x · W` for `rows` rows of `k` values (`out`: `rows × n`).
    pub(crate) fn product(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        debug_assert_eq!(x.len(), rows * self.k);
        debug_assert_eq!(out.len(), rows * self.n);
        let rows_padded = rows.next_multiple_of(MR);
        let mut rounded = vec![0i16; rows_padded * self.k_padded];
        let mut row_scales = vec![0f32; rows_padded];
        for r in 0..rows {
            row_scales[r] = round_row(
                &x[r * self.k..][..self.k],
                &mut rounded[r * self.k_padded..][..self.k],
            );
        }
        let pairs = self.k_padded / 2;
        // The panel being multiplied, widened to i16 by its first tile of
        // rows and read as such by the others: the weights stay int8 in
        // memory (half the bytes to bring in from memory for every
        // sentence), and the kernel's inner loop stays the i16 one.
        let mut widened = vec![0i16; self.k_padded * NR];
        for (panel_index, panel) in self.panels.chunks_exact(self.k_padded * NR).enumerate() {
            let first_col = panel_index * NR;
            let cols = NR.min(self.n - first_col);
            let scales = &self.column_scales[first_col..][..NR];
            for r0 in (0..rows).step_by(MR) {
                let rows_from = rounded[r0 * self.k_padded..].as_ptr();
                // SAFETY: `rounded` holds rows_padded ≥ r0 + MR rows of
                // k_padded values; `panel` and `widened` `pairs` pairs of NR
                // columns.
                let sums = unsafe {
                    if r0 == 0 {
                        widening_tile(rows_from, self.k_padded, panel, &mut widened, pairs)
                    } else {
                        tile(rows_from, self.k_padded, widened.as_ptr(), pairs)
                    }
                };
                for (r, sums) in sums.iter().enumerate().take(rows - r0) {
                    let row_scale = row_scales[r0 + r];
                    let dst = &mut out[(r0 + r) * self.n + first_col..][..cols];
                    for (c, dst) in dst.iter_mut().enumerate() {
                        // The same two multiplications on every target.
                        *dst = sums[c] as f32 * scales[c] * row_scale;
                    }
                }
            }
        }
    }
}

/// Row `row` of a matrix into its place in each panel (see
/// [`PackedWeights`]). A call per row on purpose, as
/// `QuantizedMatrix::dequantize_row`: this runs on 10.6 M weights at every
/// load from ONNX or from a format 1 compiled file (format 2 stores the
/// panels), and a WebAssembly engine swaps in its optimised code only at a
/// function's next call.
#[inline(never)]
fn pack_row(row: usize, values: &[u8], k_padded: usize, panels: &mut [i8]) {
    let at = (row / 2) * 2 * NR + row % 2;
    for (panel, columns) in values.chunks(NR).enumerate() {
        let out = &mut panels[panel * k_padded * NR + at..];
        for (c, &q) in columns.iter().enumerate() {
            out[c * 2] = q as i8;
        }
    }
}

/// [`tile`] on an int8 panel, which it writes widened to i16 into
/// `widened` as it goes (one `v128.load` and two `i16x8.extend` for the
/// two `v128.load`s of the i16 kernel).
///
/// # Safety
/// As [`tile`]; `panel` and `widened` hold `pairs * 2 * NR` values.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn widening_tile(
    rows: *const i16,
    row_stride: usize,
    panel: &[i8],
    widened: &mut [i16],
    pairs: usize,
) -> [[i32; NR]; MR] {
    debug_assert!(panel.len() >= pairs * 2 * NR && widened.len() >= pairs * 2 * NR);
    wasm_tile::<true>(
        rows,
        row_stride,
        panel.as_ptr(),
        widened.as_mut_ptr(),
        pairs,
    )
}

/// Elsewhere: the panel widened, then [`tile`].
///
/// # Safety
/// As the wasm form.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
unsafe fn widening_tile(
    rows: *const i16,
    row_stride: usize,
    panel: &[i8],
    widened: &mut [i16],
    pairs: usize,
) -> [[i32; NR]; MR] {
    for (w, &q) in widened.iter_mut().zip(panel) {
        *w = q as i16;
    }
    tile(rows, row_stride, widened.as_ptr(), pairs)
}

/// Rounds `x` to 12 bits into `out` and returns its scale (`x ≈ scale ·
/// out`); a row with a NaN or an infinity gets a NaN scale, so its outputs
/// are NaN as an f32 product's would be.
fn round_row(x: &[f32], out: &mut [i16]) -> f32 {
    let largest = largest_magnitude(x);
    if !largest.is_finite() {
        out.fill(0);
        return f32::NAN;
    }
    let largest = largest.max(SMALLEST_ROW_MAX);
    let inverse = ACTIVATION_LEVELS / largest;
    round_scaled(x, inverse, out);
    largest / ACTIVATION_LEVELS
}

/// `max |x[i]|`, or a non-finite value when `x` holds a NaN or an infinity.
/// The largest of finite values is exact in any order, so every form gives
/// the same scale.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn largest_magnitude(x: &[f32]) -> f32 {
    use std::arch::wasm32::*;
    // `f32x4.max` keeps a NaN. (Rust's `f32::max` drops NaNs, which wasm
    // has no instruction for: it was a call to `fmaxf` a value, ~5% of a
    // sentence.)
    let mut largest = f32x4_splat(0.0);
    let mut chunks = x.chunks_exact(4);
    for c in &mut chunks {
        // SAFETY: 4 values, an unaligned load.
        let v = unsafe { v128_load(c.as_ptr() as *const v128) };
        largest = f32x4_max(largest, f32x4_abs(v));
    }
    for &v in chunks.remainder() {
        largest = f32x4_max(largest, f32x4_splat(v.abs()));
    }
    let pairs = f32x4_max(largest, i32x4_shuffle::<2, 3, 0, 1>(largest, largest));
    let all = f32x4_max(pairs, i32x4_shuffle::<1, 0, 3, 2>(pairs, pairs));
    f32x4_extract_lane::<0>(all)
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn largest_magnitude(x: &[f32]) -> f32 {
    let mut largest = 0f32;
    let mut finite = true;
    for &v in x {
        largest = largest.max(v.abs());
        finite &= v.is_finite();
    }
    if finite {
        largest
    } else {
        f32::NAN
    }
}

/// `out[i] = round_ties_even(x[i] · inverse)`: `f32x4.nearest` in wasm, the
/// same rounding as the scalar form.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn round_scaled(x: &[f32], inverse: f32, out: &mut [i16]) {
    use std::arch::wasm32::*;
    let splat = f32x4_splat(inverse);
    let mut chunks = x.chunks_exact(8);
    let mut outs = out.chunks_exact_mut(8);
    for (c, o) in (&mut chunks).zip(&mut outs) {
        // SAFETY: 8 values each side, unaligned loads and stores.
        unsafe {
            let lo = v128_load(c.as_ptr() as *const v128);
            let hi = v128_load(c.as_ptr().add(4) as *const v128);
            let lo = i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(lo, splat)));
            let hi = i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(hi, splat)));
            v128_store(o.as_mut_ptr() as *mut v128, i16x8_narrow_i32x4(lo, hi));
        }
    }
    for (v, o) in chunks.remainder().iter().zip(outs.into_remainder()) {
        *o = (v * inverse).round_ties_even() as i16;
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn round_scaled(x: &[f32], inverse: f32, out: &mut [i16]) {
    for (v, o) in x.iter().zip(out) {
        *o = (v * inverse).round_ties_even() as i16;
    }
}

/// The integer sums of one `MR × NR` tile: rows `rows[0..MR]` (each
/// `row_stride` values apart) by one panel of `pairs` row pairs.
///
/// # Safety
/// `rows` holds `MR` rows of `2 * pairs` values, `row_stride` apart;
/// `panel` holds `pairs * 2 * NR` values.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn tile(
    rows: *const i16,
    row_stride: usize,
    panel: *const i16,
    pairs: usize,
) -> [[i32; NR]; MR] {
    // Not WIDEN: the i16 panel is only read.
    wasm_tile::<false>(rows, row_stride, std::ptr::null(), panel.cast_mut(), pairs)
}

/// The wasm tile: each row pair's weights read from the i16 panel
/// `widened`, or with `WIDEN` from the int8 `panel`, widened, and written
/// to `widened` for the panel's other tiles. A compile-time choice, so each
/// form's inner loop is as if written alone.
///
/// # Safety
/// As [`tile`]; `widened` (and with `WIDEN`, `panel`) holds `pairs * 2 * NR`
/// values, and `widened` is written only with `WIDEN`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn wasm_tile<const WIDEN: bool>(
    rows: *const i16,
    row_stride: usize,
    panel: *const i8,
    widened: *mut i16,
    pairs: usize,
) -> [[i32; NR]; MR] {
    use std::arch::wasm32::*;
    let mut acc = [[i32x4_splat(0); 2]; MR];
    for pair in 0..pairs {
        let w = widened.add(pair * 2 * NR);
        let (w0, w1) = if WIDEN {
            let both = v128_load(panel.add(pair * 2 * NR) as *const v128);
            let (w0, w1) = (i16x8_extend_low_i8x16(both), i16x8_extend_high_i8x16(both));
            v128_store(w as *mut v128, w0);
            v128_store(w.add(8) as *mut v128, w1);
            (w0, w1)
        } else {
            (
                v128_load(w as *const v128),
                v128_load(w.add(8) as *const v128),
            )
        };
        for (r, acc) in acc.iter_mut().enumerate() {
            // Both activations of the pair in every lane.
            let a = v128_load32_splat(rows.add(r * row_stride + 2 * pair) as *const u32);
            acc[0] = i32x4_add(acc[0], i32x4_dot_i16x8(a, w0));
            acc[1] = i32x4_add(acc[1], i32x4_dot_i16x8(a, w1));
        }
    }
    let mut sums = [[0i32; NR]; MR];
    for (sums, acc) in sums.iter_mut().zip(acc) {
        v128_store(sums.as_mut_ptr() as *mut v128, acc[0]);
        v128_store(sums.as_mut_ptr().add(4) as *mut v128, acc[1]);
    }
    sums
}

/// x86-64: `pmaddwd` is `i32x4.dot_i16x8_s`; with AVX2 one `vpmaddwd`
/// does a whole row of the tile (the CPU is asked once, the answer cached).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile(
    rows: *const i16,
    row_stride: usize,
    panel: *const i16,
    pairs: usize,
) -> [[i32; NR]; MR] {
    if std::arch::is_x86_feature_detected!("avx2") {
        tile_avx2(rows, row_stride, panel, pairs)
    } else {
        tile_sse2(rows, row_stride, panel, pairs)
    }
}

/// # Safety
/// As [`tile`], on a CPU with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2(
    rows: *const i16,
    row_stride: usize,
    panel: *const i16,
    pairs: usize,
) -> [[i32; NR]; MR] {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); MR];
    for pair in 0..pairs {
        // The pair's 8 columns: the same 16 values as the two v128 halves.
        let w = _mm256_loadu_si256(panel.add(pair * 2 * NR) as *const __m256i);
        for (r, acc) in acc.iter_mut().enumerate() {
            let a = _mm256_set1_epi32(
                (rows.add(r * row_stride + 2 * pair) as *const i32).read_unaligned(),
            );
            *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(a, w));
        }
    }
    let mut sums = [[0i32; NR]; MR];
    for (sums, acc) in sums.iter_mut().zip(acc) {
        _mm256_storeu_si256(sums.as_mut_ptr() as *mut __m256i, acc);
    }
    sums
}

/// # Safety
/// As [`tile`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile_sse2(
    rows: *const i16,
    row_stride: usize,
    panel: *const i16,
    pairs: usize,
) -> [[i32; NR]; MR] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm_setzero_si128(); 2]; MR];
    for pair in 0..pairs {
        let w = panel.add(pair * 2 * NR);
        let w0 = _mm_loadu_si128(w as *const __m128i);
        let w1 = _mm_loadu_si128(w.add(8) as *const __m128i);
        for (r, acc) in acc.iter_mut().enumerate() {
            let a = _mm_set1_epi32(
                (rows.add(r * row_stride + 2 * pair) as *const i32).read_unaligned(),
            );
            acc[0] = _mm_add_epi32(acc[0], _mm_madd_epi16(a, w0));
            acc[1] = _mm_add_epi32(acc[1], _mm_madd_epi16(a, w1));
        }
    }
    let mut sums = [[0i32; NR]; MR];
    for (sums, acc) in sums.iter_mut().zip(acc) {
        _mm_storeu_si128(sums.as_mut_ptr() as *mut __m128i, acc[0]);
        _mm_storeu_si128(sums.as_mut_ptr().add(4) as *mut __m128i, acc[1]);
    }
    sums
}

#[cfg(not(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
)))]
unsafe fn tile(
    rows: *const i16,
    row_stride: usize,
    panel: *const i16,
    pairs: usize,
) -> [[i32; NR]; MR] {
    reference_tile(rows, row_stride, panel, pairs)
}

/// The tile's sums one product at a time (other targets, and the tests'
/// reference for the SIMD forms).
///
/// # Safety
/// As [`tile`].
#[cfg(any(
    test,
    not(any(
        all(target_arch = "wasm32", target_feature = "simd128"),
        target_arch = "x86_64"
    ))
))]
unsafe fn reference_tile(
    rows: *const i16,
    row_stride: usize,
    panel: *const i16,
    pairs: usize,
) -> [[i32; NR]; MR] {
    let mut sums = [[0i32; NR]; MR];
    for (r, sums) in sums.iter_mut().enumerate() {
        for pair in 0..pairs {
            let a0 = *rows.add(r * row_stride + 2 * pair) as i32;
            let a1 = *rows.add(r * row_stride + 2 * pair + 1) as i32;
            let w = panel.add(pair * 2 * NR);
            for (c, sum) in sums.iter_mut().enumerate() {
                *sum += a0 * *w.add(2 * c) as i32 + a1 * *w.add(2 * c + 1) as i32;
            }
        }
    }
    sums
}

/// `X · W` with `W` an int8 matrix: the op [`rewrite`] puts in place of an
/// f32 einsum `P C, C n -> P n` (`C`, the summed axes, trailing in `X`).
#[derive(Debug, Clone)]
pub(crate) struct IntegerProduct {
    weights: Arc<PackedWeights>,
    /// How many trailing axes of `X` are summed (their sizes multiply to
    /// `k`).
    summed_axes: usize,
}

impl PartialEq for IntegerProduct {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.weights, &other.weights) && self.summed_axes == other.summed_axes
    }
}

impl Eq for IntegerProduct {}

impl Op for IntegerProduct {
    fn name(&self) -> StaticName {
        "IntegerProduct".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "12-bit activations × int8 weights [{}, {}]",
            self.weights.k, self.weights.n
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for IntegerProduct {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let k = self.weights.k;
        let kept = input.rank() - self.summed_axes;
        ensure!(input.shape()[kept..].iter().product::<usize>() == k);
        let mut shape: TVec<usize> = input.shape()[..kept].into();
        shape.push(self.weights.n);
        let rows = input.len() / k;
        let x = input.try_as_plain_ram()?.as_slice::<f32>()?;
        // SAFETY: f32 has no invalid bit patterns, and `product` writes
        // every output value (each row of every panel's columns).
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        self.weights.product(
            x,
            rows,
            output.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
        );
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for IntegerProduct {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let fact = inputs[0];
        ensure!(fact.datum_type == f32::datum_type());
        ensure!(fact.rank() >= self.summed_axes);
        let kept = fact.rank() - self.summed_axes;
        let mut shape: TVec<TDim> = fact.shape.iter().take(kept).cloned().collect();
        shape.push(self.weights.n.into());
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

/// The NNEF registry a compiled encoder names for its integer products
/// (`extension tract_registry localtune;` in its `graph.nnef`).
pub(crate) const NNEF_REGISTRY: &str = "localtune";
const NNEF_PRIMITIVE: &str = "localtune_integer_product";

/// How a compiled encoder stores an [`IntegerProduct`]: the op with its
/// weights packed as [`PackedWeights`] holds them (int8 panels, f32 column
/// scales), so a load reads them as they are. Storing the products as f32
/// einsums instead (compiled encoder format 1) made every load dequantize
/// 10.6 M weights into 42 MB of f32 that [`rewrite`] then threw away, and
/// pack them again: an eighth of a page's cold start in Chromium (401 → 351
/// ms), and a third of its wasm memory (92.9 → 62.5 MiB).
pub(crate) fn nnef_registry() -> tract_nnef::internal::Registry {
    use tract_nnef::internal::{Registry, TypeName};
    let mut registry = Registry::new(NNEF_REGISTRY);
    registry.register_primitive(
        NNEF_PRIMITIVE,
        &[
            TypeName::Scalar.tensor().named("input"),
            TypeName::Integer.tensor().named("panels"),
            TypeName::Scalar.tensor().named("column_scales"),
            TypeName::Integer.named("k"),
            TypeName::Integer.named("n"),
            TypeName::Integer.named("summed_axes"),
        ],
        &[("output", TypeName::Scalar.tensor())],
        load_integer_product,
    );
    registry.register_dumper(dump_integer_product);
    registry
}

fn dump_integer_product(
    ast: &mut tract_nnef::internal::IntoAst,
    node: &TypedNode,
    op: &IntegerProduct,
) -> TractResult<Option<Arc<tract_nnef::internal::RValue>>> {
    use tract_nnef::ser::{invocation, numeric};
    let input = ast.mapping[&node.inputs[0]].clone();
    let weights = &op.weights;
    let panels = Tensor::from_shape(
        &[
            weights.panels.len() / (weights.k_padded * NR),
            weights.k_padded * NR,
        ],
        &weights.panels,
    )?;
    let scales = Tensor::from_shape(&[weights.column_scales.len()], &weights.column_scales)?;
    let panels = ast.konst_variable(format!("{}.panels", node.name), &panels.into_arc_tensor())?;
    let scales = ast.konst_variable(format!("{}.scales", node.name), &scales.into_arc_tensor())?;
    Ok(Some(invocation(
        NNEF_PRIMITIVE,
        &[input, panels, scales],
        &[
            ("k", numeric(weights.k)),
            ("n", numeric(weights.n)),
            ("summed_axes", numeric(op.summed_axes)),
        ],
    )))
}

fn load_integer_product(
    builder: &mut tract_nnef::internal::ModelBuilder,
    invocation: &tract_nnef::internal::ResolvedInvocation,
) -> TractResult<tract_nnef::internal::Value> {
    let input: OutletId = invocation.named_arg_as(builder, "input")?;
    let panels: Arc<Tensor> = invocation.named_arg_as(builder, "panels")?;
    let scales: Arc<Tensor> = invocation.named_arg_as(builder, "column_scales")?;
    let mut size = |name: &str| -> TractResult<usize> {
        let value = invocation.named_arg_as::<i64>(builder, name)?;
        usize::try_from(value).map_err(|_| format_err!("{NNEF_PRIMITIVE}: {name} is {value}"))
    };
    let (k, n, summed_axes) = (size("k")?, size("n")?, size("summed_axes")?);
    ensure!(
        summed_axes >= 1,
        "{NNEF_PRIMITIVE}: summed_axes is {summed_axes}"
    );
    let panels = panels.try_as_plain_ram()?.as_slice::<i8>()?.to_vec();
    let scales = scales.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    let weights = PackedWeights::from_parts(k, n, panels, scales)
        .map_err(|e| format_err!("{NNEF_PRIMITIVE}: {e}"))?;
    builder.wire(
        IntegerProduct {
            weights: Arc::new(weights),
            summed_axes,
        },
        &[input],
    )
}

/// An int8 matrix the model was built from and, when the loader made one,
/// the f32 tensor it dequantized it into: a constant that is that very
/// tensor needs no comparison.
#[derive(Debug)]
pub(crate) struct Int8Weight {
    pub matrix: QuantizedMatrix,
    /// Weak: the model's constant holds the tensor; once the rewrite has
    /// replaced it, its 4 bytes a weight are freed.
    pub dequantized: Weak<Tensor>,
}

impl Int8Weight {
    /// A matrix known only by its values (the ONNX file's folded
    /// dequantizations): found by comparing them.
    #[cfg(any(test, feature = "onnx-import"))]
    pub(crate) fn by_value(matrix: QuantizedMatrix) -> Self {
        Int8Weight {
            matrix,
            dequantized: Weak::new(),
        }
    }

    /// Whether `konst` holds this matrix's values: the same tensor, or a
    /// `k × n` tensor equal to it bit for bit.
    fn is(&self, konst: &Arc<Tensor>, k: usize, n: usize, values: &[f32]) -> bool {
        let m = &self.matrix;
        m.rows == k
            && m.cols == n
            && (std::ptr::eq(self.dequantized.as_ptr(), Arc::as_ptr(konst))
                || m.matches(values, false))
    }
}

/// Replaces each f32 product of `model` (decluttered) by a constant that is
/// one of `weights` with an [`IntegerProduct`]; returns how many.
pub(crate) fn rewrite(model: &mut TypedModel, weights: &[Int8Weight]) -> TractResult<usize> {
    let mut packed: Vec<Option<Arc<PackedWeights>>> = vec![None; weights.len()];
    let mut rewritten = 0;
    for id in model.eval_order()? {
        let node = &model.nodes[id];
        let Some(einsum) = node.op.downcast_ref::<EinSum>() else {
            continue;
        };
        if einsum.q_params.is_some()
            || einsum.operating_dt != f32::datum_type()
            || node.inputs.len() != 2
            || model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type()
        {
            continue;
        }
        let Some(weight) = model.outlet_fact(node.inputs[1])?.konst.clone() else {
            continue;
        };
        let Some(summed_axes) = summed_trailing_axes(&einsum.axes.to_string()) else {
            continue;
        };
        if weight.rank() != summed_axes + 1 {
            continue;
        }
        let n = *weight.shape().last().unwrap();
        let k = weight.len() / n.max(1);
        let Ok(values) = weight.try_as_plain_ram().and_then(|v| v.as_slice::<f32>()) else {
            continue;
        };
        let Some(index) = weights.iter().position(|w| w.is(&weight, k, n, values)) else {
            continue;
        };
        if packed[index].is_none() {
            packed[index] = PackedWeights::new(&weights[index].matrix).map(Arc::new);
        }
        let Some(packed) = packed[index].clone() else {
            continue;
        };
        let patch = TypedModelPatch::replace_single_op(
            model,
            node,
            &node.inputs[..1],
            IntegerProduct {
                weights: packed,
                summed_axes,
            },
        )?;
        patch.apply(model)?;
        rewritten += 1;
    }
    Ok(rewritten)
}

/// When an einsum expression is `P C, C n -> P n` (the second input's last
/// axis is the output's last, its other axes are summed and are the first
/// input's trailing axes in order, the first input's other axes lead the
/// output in order): how many axes `C` has.
fn summed_trailing_axes(expression: &str) -> Option<usize> {
    let (inputs, output) = expression.split_once("->")?;
    let (x, w) = inputs.split_once(',')?;
    let (x, w, output): (Vec<char>, Vec<char>, Vec<char>) = (
        x.chars().collect(),
        w.chars().collect(),
        output.chars().collect(),
    );
    let (&n, summed) = w.split_last()?;
    if summed.is_empty() || x.len() < summed.len() {
        return None;
    }
    let (kept, trailing) = x.split_at(x.len() - summed.len());
    let mut expected = kept.to_vec();
    expected.push(n);
    (trailing == summed && output == expected && !kept.contains(&n) && !summed.contains(&n))
        .then_some(summed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic int8 matrix with per-column scales.
    fn matrix(k: usize, n: usize, seed: u64) -> QuantizedMatrix {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let values = (0..k * n).map(|_| (next() % 256) as u8).collect();
        let scales = (0..n)
            .map(|_| 0.001 + (next() % 1000) as f32 * 1e-5)
            .collect();
        QuantizedMatrix {
            rows: k,
            cols: n,
            signed: true,
            values,
            scale: Scale::PerColumn(scales),
        }
    }

    fn activations(rows: usize, k: usize) -> Vec<f32> {
        (0..rows * k)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 13) as f32))
            .collect()
    }

    fn f32_product(m: &QuantizedMatrix, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = vec![0f32; rows * m.cols];
        for r in 0..rows {
            for c in 0..m.cols {
                out[r * m.cols + c] = (0..m.rows).map(|k| x[r * m.rows + k] * m.value(k, c)).sum();
            }
        }
        out
    }

    #[test]
    fn the_simd_tile_sums_exactly_as_the_reference() {
        for (k, n) in [(2, 8), (384, 384), (1536, 16), (7, 8)] {
            let packed = PackedWeights::new(&matrix(k, n, 3)).unwrap();
            let rows: Vec<i16> = (0..MR * packed.k_padded)
                .map(|i| ((i * 37 % 4095) as i32 - 2047) as i16)
                .collect();
            let pairs = packed.k_padded / 2;
            for int8_panel in packed.panels.chunks_exact(packed.k_padded * NR) {
                let panel: Vec<i16> = int8_panel.iter().map(|&q| q as i16).collect();
                let mut widened = vec![0i16; panel.len()];
                // SAFETY: MR rows of k_padded values, a whole panel.
                let (fast, widening, slow) = unsafe {
                    (
                        tile(rows.as_ptr(), packed.k_padded, panel.as_ptr(), pairs),
                        widening_tile(
                            rows.as_ptr(),
                            packed.k_padded,
                            int8_panel,
                            &mut widened,
                            pairs,
                        ),
                        reference_tile(rows.as_ptr(), packed.k_padded, panel.as_ptr(), pairs),
                    )
                };
                assert_eq!(fast, slow, "k {k}, n {n}");
                assert_eq!(widening, slow, "widening, k {k}, n {n}");
                assert_eq!(widened, panel, "the panel as i16, k {k}, n {n}");
                // Both x86-64 forms, whichever `tile` chose.
                #[cfg(target_arch = "x86_64")]
                {
                    // SAFETY: as above.
                    let sse2 =
                        unsafe { tile_sse2(rows.as_ptr(), packed.k_padded, panel.as_ptr(), pairs) };
                    assert_eq!(sse2, slow, "SSE2, k {k}, n {n}");
                }
            }
        }
    }

    #[test]
    fn products_stay_within_twelve_bits_of_the_f32_product_at_every_shape() {
        // Row and column counts that fill no tile, an odd depth, MiniLM's.
        for (rows, k, n) in [
            (1, 3, 5),
            (5, 384, 384),
            (3, 1536, 384),
            (9, 17, 19),
            (4, 384, 1536),
        ] {
            let m = matrix(k, n, (rows * k * n) as u64);
            let x = activations(rows, k);
            let packed = PackedWeights::new(&m).unwrap();
            let mut out = vec![f32::NAN; rows * n];
            packed.product(&x, rows, &mut out);
            let expected = f32_product(&m, &x, rows);
            for r in 0..rows {
                // Rounding each activation to 1/4094 of the row's largest
                // moves each output by at most that times Σ|W|.
                let largest = x[r * k..][..k].iter().fold(0f32, |a, v| a.max(v.abs()));
                for c in 0..n {
                    let weight_mass: f32 = (0..k).map(|i| m.value(i, c).abs()).sum();
                    let bound = largest / 4094.0 * weight_mass * 1.001 + 1e-5;
                    let (got, want) = (out[r * n + c], expected[r * n + c]);
                    assert!(
                        (got - want).abs() <= bound,
                        "({rows}, {k}, {n}) [{r}, {c}]: {got} vs {want}, bound {bound}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_tiny_and_non_finite_rows() {
        let m = matrix(16, 8, 1);
        let packed = PackedWeights::new(&m).unwrap();
        let mut x = vec![0f32; 4 * 16];
        x[16..32].fill(1e-38); // subnormal-adjacent: no infinite inverse
        x[32] = f32::NAN;
        x[48] = f32::INFINITY;
        let mut out = vec![1f32; 4 * 8];
        packed.product(&x, 4, &mut out);
        assert!(out[..8].iter().all(|&v| v == 0.0), "a zero row gives zeros");
        assert!(
            out[8..16].iter().all(|v| v.abs() < 1e-30),
            "a tiny row gives ~0: {:?}",
            &out[8..16]
        );
        assert!(
            out[16..].iter().all(|v| v.is_nan()),
            "NaN or infinity gives NaN"
        );
    }

    #[test]
    fn only_signed_matrices_with_column_scales_are_packed() {
        let mut m = matrix(4, 4, 2);
        assert!(PackedWeights::new(&m).is_some());
        m.scale = Scale::PerRow(vec![1.0; 4]);
        assert!(
            PackedWeights::new(&m).is_none(),
            "a per-row scale does not factor out"
        );
        m.scale = Scale::One(0.5);
        assert!(PackedWeights::new(&m).is_some());
        m.signed = false;
        assert!(PackedWeights::new(&m).is_none());
        let deep = QuantizedMatrix {
            rows: MAX_DEPTH + 1,
            cols: 1,
            signed: true,
            values: vec![0; MAX_DEPTH + 1],
            scale: Scale::One(1.0),
        };
        assert!(
            PackedWeights::new(&deep).is_none(),
            "a sum that could overflow an i32"
        );
    }

    #[test]
    fn the_products_it_rewrites() {
        assert_eq!(summed_trailing_axes("amk,kn->amn"), Some(1));
        assert_eq!(summed_trailing_axes("ambk,bkn->amn"), Some(2));
        assert_eq!(summed_trailing_axes("k,kn->n"), Some(1));
        assert_eq!(
            summed_trailing_axes("amk,nk->amn"),
            None,
            "a transposed weight"
        );
        assert_eq!(summed_trailing_axes("akm,kn->amn"), None, "k not trailing");
        assert_eq!(summed_trailing_axes("amk,kn->man"), None, "axes reordered");
        assert_eq!(
            summed_trailing_axes("ambk,abkn->abmn"),
            None,
            "attention: two activations"
        );
        assert_eq!(summed_trailing_axes("amk,kn->am"), None, "n summed");
    }

    /// The compiled encoder's loader hands over the tensor it dequantized
    /// each matrix into; a constant that is that tensor is taken without
    /// comparing 10 million values (most of MiniLM's 36), one that is not
    /// is compared.
    #[test]
    fn the_loaders_own_tensor_is_matched_without_comparing_values() {
        let (k, n) = (6, 8);
        let m = matrix(k, n, 7);
        let tensor = Arc::new(Tensor::from_shape(&[k, n], &m.dequantized()).unwrap());
        let build = |konst: Arc<Tensor>| {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([2, k])).unwrap();
            let w = model.add_const("w", konst).unwrap();
            let y = model
                .wire_node(
                    "y",
                    EinSum::new("mk,kn->mn".parse().unwrap(), f32::datum_type()),
                    &[x, w],
                )
                .unwrap()[0];
            model.select_output_outlets(&[y]).unwrap();
            model
        };
        // Told it is the tensor of a matrix whose values it does not hold:
        // the pointer decides (the loader made the tensor from the matrix).
        let known = Int8Weight {
            matrix: matrix(k, n, 8),
            dequantized: Arc::downgrade(&tensor),
        };
        assert_eq!(
            rewrite(&mut build(tensor.clone()), std::slice::from_ref(&known)).unwrap(),
            1
        );
        // Another tensor with the same values is compared, and taken.
        let copy = Arc::new(tensor.deep_clone());
        let by_tensor = Int8Weight {
            matrix: m,
            dequantized: Arc::downgrade(&tensor),
        };
        assert_eq!(
            rewrite(&mut build(copy.clone()), std::slice::from_ref(&by_tensor)).unwrap(),
            1
        );
        assert_eq!(
            rewrite(&mut build(copy), std::slice::from_ref(&known)).unwrap(),
            0,
            "other values, another tensor"
        );
    }

    #[test]
    fn an_einsum_by_one_of_the_int8_matrices_becomes_an_integer_product() {
        let (rows, k, n) = (3, 12, 10);
        let m = matrix(k, n, 5);
        let other = matrix(k, n, 6);
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([rows, k])).unwrap();
        let run = |model: &mut TypedModel, m: &QuantizedMatrix, name: &str| {
            let w = Tensor::from_shape(&[k, n], &m.dequantized()).unwrap();
            let w = model.add_const(format!("{name}.w"), w).unwrap();
            model
                .wire_node(
                    name,
                    EinSum::new("mk,kn->mn".parse().unwrap(), f32::datum_type()),
                    &[x, w],
                )
                .unwrap()[0]
        };
        let y = run(&mut model, &m, "y");
        let z = run(&mut model, &other, "z");
        model.select_output_outlets(&[y, z]).unwrap();
        let input = activations(rows, k);
        let before = model
            .clone()
            .into_runnable()
            .unwrap()
            .run(tvec!(Tensor::from_shape(&[rows, k], &input)
                .unwrap()
                .into_tvalue()))
            .unwrap();

        // Only `m` is offered: `z`'s product stays f32.
        assert_eq!(
            rewrite(&mut model, &[Int8Weight::by_value(m.clone())]).unwrap(),
            1
        );
        let names: Vec<String> = model
            .nodes
            .iter()
            .map(|n| n.op.name().to_string())
            .collect();
        assert!(names.contains(&"IntegerProduct".to_string()), "{names:?}");
        let after = model
            .into_runnable()
            .unwrap()
            .run(tvec!(Tensor::from_shape(&[rows, k], &input)
                .unwrap()
                .into_tvalue()))
            .unwrap();
        let mut expected = vec![0f32; rows * n];
        PackedWeights::new(&m)
            .unwrap()
            .product(&input, rows, &mut expected);
        let got = after[0].try_as_plain_ram().unwrap();
        assert_eq!(got.as_slice::<f32>().unwrap(), expected.as_slice());
        assert_eq!(
            after[1], before[1],
            "the product by an unknown matrix is untouched"
        );
    }

    /// A one-product model written with [`nnef_registry`] as a compiled
    /// encoder writes it, read back as a load reads it.
    fn nnef_round_trip(graph_edit: impl Fn(String) -> String) -> TractResult<TypedModel> {
        use std::io::Read;
        let (k, n) = (7, 10); // an odd depth and a partial panel
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([2, k]))?;
        let weights = Arc::new(PackedWeights::new(&matrix(k, n, 9)).unwrap());
        let op = IntegerProduct {
            weights,
            summed_axes: 1,
        };
        let y = model.wire_node("y", op, &[x])?[0];
        model.select_output_outlets(&[y])?;
        let nnef = || tract_nnef::nnef().with_registry(nnef_registry());
        let tar = nnef().write_to_tar_with_config(&model, Vec::new(), false, true)?;
        // Edit graph.nnef as an attacker who knows the format would.
        let mut archive = tar::Archive::new(&tar[..]);
        let mut out = tar::Builder::new(Vec::new());
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            if path.ends_with("graph.nnef") {
                data = graph_edit(String::from_utf8(data)?).into_bytes();
            }
            let mut header = entry.header().clone();
            header.set_size(data.len() as u64);
            header.set_cksum();
            out.append(&header, &data[..])?;
        }
        nnef().model_for_read(&mut &out.into_inner()?[..])
    }

    #[test]
    fn an_integer_product_is_stored_packed_and_reads_back_the_same() {
        let model = nnef_round_trip(|graph| {
            assert!(
                graph.contains("extension tract_registry localtune;"),
                "{graph}"
            );
            graph
        })
        .unwrap();
        let read: Vec<&IntegerProduct> = model
            .nodes
            .iter()
            .filter_map(|node| node.op_as::<IntegerProduct>())
            .collect();
        let packed = PackedWeights::new(&matrix(7, 10, 9)).unwrap();
        let [op] = read[..] else {
            panic!("one integer product: {model}")
        };
        assert_eq!((op.weights.k, op.weights.n, op.summed_axes), (7, 10, 1));
        assert_eq!(op.weights.panels, packed.panels);
        assert_eq!(op.weights.column_scales, packed.column_scales);
    }

    #[test]
    fn a_stored_product_whose_sizes_disagree_is_refused() {
        for (from, to, says) in [
            ("k = 7", "k = 9", "packed values"),
            ("n = 10", "n = 17", "packed values"),
            ("k = 7", "k = 0", "is not one this encoder makes"),
            ("k = 7", "k = -7", "k is -7"),
            ("summed_axes = 1", "summed_axes = 0", "summed_axes is 0"),
        ] {
            let err = nnef_round_trip(|graph| {
                assert!(graph.contains(from), "{graph}");
                graph.replace(from, to)
            })
            .expect_err(to);
            assert!(format!("{err:#}").contains(says), "{to}: {err:#}");
        }
    }
}
