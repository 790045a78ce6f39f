//! One encoder layer's six weight products (Q, K, V, attention output: 384 →
//! 384; the feed-forward pair: 384 → 1,536 → 384) for `tokens` rows, three
//! ways, each a 4 × 8 register tile over column panels packed once:
//! - `layer_f32`: f32 weights (the int8 values times their column scales),
//!   the activation broadcast from memory (`v128.load32_splat`) and one
//!   multiply-add per 4 products — the encoder's own kernel
//!   (src/encoder/wasm_gemm.rs): `f32x4.relaxed_madd` in the relaxed build,
//!   a multiply and an add in the simd128 one;
//! - `layer_i16`: the int8 weights widened to i16 and paired along k, each
//!   activation row rounded to 12 bits with one scale
//!   (tools/int8_activations_model.py: cosine ≥ 0.99996 to the f32 vectors),
//!   `i32x4.dot_i16x8_s` for 8 products and an `i32x4.add`, then one scale
//!   per output. The rounding of the activations is timed with it;
//! - `layer_i8`: the same with the weights kept as int8 in memory (a
//!   quarter of the f32 panels' bytes) and widened to i16 in the kernel
//!   (`i16x8.extend_{low,high}_i8x16_s`, two more instructions per 16
//!   weights).
//!
//! bench/int-kernels.sh builds the module twice (simd128, relaxed) and times
//! it in Node and in each browser engine (bench/int-kernels.mjs,
//! bench/int-kernels.html). Plain exports, no bindings: the state lives
//! here.

#![cfg(target_arch = "wasm32")]

use core::arch::wasm32::*;
use std::cell::RefCell;

const D: usize = 384;
const FF: usize = 1536;
/// Activations rounded to this many bits (sign included): 2047 × 127 ×
/// 1,536 products stay inside an i32.
const ACTIVATION_LEVELS: f32 = 2047.0;

struct Product {
    k: usize,
    n: usize,
    /// f32 panels: for each 8 columns, `k` rows of 8 values.
    f32_panels: Vec<f32>,
    /// i16 panels: for each 8 columns, `k / 2` pairs of rows, each as two
    /// vectors of 4 columns × (row, row + 1).
    i16_panels: Vec<i16>,
    /// `i16_panels` as int8: each 16-byte vector is the two i16 vectors.
    i8_panels: Vec<i8>,
    column_scales: Vec<f32>,
}

struct State {
    tokens: usize,
    products: Vec<Product>,
    /// Inputs of each product (row-major `tokens × k`), and outputs.
    inputs: Vec<Vec<f32>>,
    out_f32: Vec<Vec<f32>>,
    out_i16: Vec<Vec<f32>>,
    out_i8: Vec<Vec<f32>>,
    quantized: Vec<i16>,
    row_scales: Vec<f32>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// xorshift: the same data in both modules.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn product(k: usize, n: usize, rng: &mut Rng) -> Product {
    let q: Vec<i8> = (0..k * n)
        .map(|_| (rng.next() % 255) as i32 - 127)
        .map(|v| v as i8)
        .collect();
    let column_scales: Vec<f32> = (0..n).map(|_| 0.001 + 0.01 * rng.unit()).collect();
    let mut f32_panels = Vec::with_capacity(k * n);
    let mut i16_panels = Vec::with_capacity(k * n);
    for panel in 0..n / 8 {
        for row in 0..k {
            for c in 0..8 {
                let col = panel * 8 + c;
                f32_panels.push(q[row * n + col] as f32 * column_scales[col]);
            }
        }
        for pair in 0..k / 2 {
            for half in 0..2 {
                for c in 0..4 {
                    let col = panel * 8 + half * 4 + c;
                    i16_panels.push(q[2 * pair * n + col] as i16);
                    i16_panels.push(q[(2 * pair + 1) * n + col] as i16);
                }
            }
        }
    }
    let i8_panels = i16_panels.iter().map(|&w| w as i8).collect();
    Product {
        k,
        n,
        f32_panels,
        i16_panels,
        i8_panels,
        column_scales,
    }
}

/// Sets up one layer's products for `tokens` rows (a multiple of 4).
#[no_mangle]
pub extern "C" fn setup(tokens: usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let shapes = [(D, D), (D, D), (D, D), (D, D), (D, FF), (FF, D)];
    let products: Vec<Product> = shapes
        .iter()
        .map(|&(k, n)| product(k, n, &mut rng))
        .collect();
    let inputs = products
        .iter()
        .map(|p| (0..tokens * p.k).map(|_| 4.0 * rng.unit() - 2.0).collect())
        .collect();
    let outputs = || products.iter().map(|p| vec![0.0; tokens * p.n]).collect();
    let state = State {
        tokens,
        out_f32: outputs(),
        out_i16: outputs(),
        out_i8: outputs(),
        products,
        inputs,
        quantized: vec![0; tokens * FF],
        row_scales: vec![0.0; tokens],
    };
    STATE.with(|s| *s.borrow_mut() = Some(state));
}

#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(f32x4_mul(a, b), c)
    }
}

/// `out = input · weights`, f32, 4 rows × 8 columns at a time.
fn gemm_f32(tokens: usize, input: &[f32], p: &Product, out: &mut [f32]) {
    let k = p.k;
    for panel in 0..p.n / 8 {
        let b = &p.f32_panels[panel * k * 8..(panel + 1) * k * 8];
        for r0 in (0..tokens).step_by(4) {
            let mut acc = [[f32x4_splat(0.0); 2]; 4];
            for step in 0..k {
                // SAFETY: `b` holds k × 8 values, `input` tokens × k.
                unsafe {
                    let b0 = v128_load(b.as_ptr().add(step * 8) as *const v128);
                    let b1 = v128_load(b.as_ptr().add(step * 8 + 4) as *const v128);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let a = v128_load32_splat(
                            input.as_ptr().add((r0 + r) * k + step) as *const u32
                        );
                        acc[0] = madd(a, b0, acc[0]);
                        acc[1] = madd(a, b1, acc[1]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let row = &mut out[(r0 + r) * p.n + panel * 8..][..8];
                // SAFETY: 8 values.
                unsafe {
                    v128_store(row.as_mut_ptr() as *mut v128, acc[0]);
                    v128_store(row.as_mut_ptr().add(4) as *mut v128, acc[1]);
                }
            }
        }
    }
}

/// Each row of `input` (`k` values) rounded to 12 bits with its own scale.
fn round_rows(tokens: usize, k: usize, input: &[f32], quantized: &mut [i16], scales: &mut [f32]) {
    for r in 0..tokens {
        let row = &input[r * k..(r + 1) * k];
        let mut max = f32x4_splat(0.0);
        for c in row.chunks_exact(4) {
            // SAFETY: 4 values.
            max = f32x4_max(
                max,
                f32x4_abs(unsafe { v128_load(c.as_ptr() as *const v128) }),
            );
        }
        let largest = f32x4_extract_lane::<0>(max)
            .max(f32x4_extract_lane::<1>(max))
            .max(f32x4_extract_lane::<2>(max))
            .max(f32x4_extract_lane::<3>(max))
            .max(1e-30);
        scales[r] = largest / ACTIVATION_LEVELS;
        let inverse = f32x4_splat(ACTIVATION_LEVELS / largest);
        let out = &mut quantized[r * k..(r + 1) * k];
        for (c, o) in row.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
            // SAFETY: 8 values each side.
            unsafe {
                let lo = v128_load(c.as_ptr() as *const v128);
                let hi = v128_load(c.as_ptr().add(4) as *const v128);
                let lo = i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(lo, inverse)));
                let hi = i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(hi, inverse)));
                v128_store(o.as_mut_ptr() as *mut v128, i16x8_narrow_i32x4(lo, hi));
            }
        }
    }
}

/// The two i16 weight vectors (columns 0–3 and 4–7, rows paired) of row
/// pair `pair` of the panel starting at `start`: from the i16 panels, or
/// from the int8 ones widened as they are read (`INT8`). A const parameter,
/// so that each kernel is compiled without the other's branch.
///
/// # Safety
/// The panel holds `pair + 1` row pairs from `start`.
#[inline(always)]
unsafe fn weight_pair<const INT8: bool>(p: &Product, start: usize, pair: usize) -> (v128, v128) {
    if INT8 {
        let both = v128_load(p.i8_panels.as_ptr().add(start + pair * 16) as *const v128);
        (i16x8_extend_low_i8x16(both), i16x8_extend_high_i8x16(both))
    } else {
        let b = p.i16_panels.as_ptr().add(start + pair * 16);
        (
            v128_load(b as *const v128),
            v128_load(b.add(8) as *const v128),
        )
    }
}

/// `out = input · weights` with 12-bit activations and integer weights
/// (int8 in memory with `INT8`, else i16).
fn gemm_int<const INT8: bool>(
    tokens: usize,
    input: &[f32],
    p: &Product,
    out: &mut [f32],
    quantized: &mut [i16],
    row_scales: &mut [f32],
) {
    let k = p.k;
    round_rows(tokens, k, input, quantized, row_scales);
    for panel in 0..p.n / 8 {
        let start = panel * k * 8;
        let scales = &p.column_scales[panel * 8..panel * 8 + 8];
        // SAFETY: 8 values.
        let (s0, s1) = unsafe {
            (
                v128_load(scales.as_ptr() as *const v128),
                v128_load(scales.as_ptr().add(4) as *const v128),
            )
        };
        for r0 in (0..tokens).step_by(4) {
            let mut acc = [[i32x4_splat(0); 2]; 4];
            for pair in 0..k / 2 {
                // SAFETY: the panel holds k / 2 row pairs, `quantized`
                // tokens × k values.
                unsafe {
                    let (w0, w1) = weight_pair::<INT8>(p, start, pair);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let a = v128_load32_splat(
                            quantized.as_ptr().add((r0 + r) * k + 2 * pair) as *const u32
                        );
                        acc[0] = i32x4_add(acc[0], i32x4_dot_i16x8(a, w0));
                        acc[1] = i32x4_add(acc[1], i32x4_dot_i16x8(a, w1));
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let scale = f32x4_splat(row_scales[r0 + r]);
                let row = &mut out[(r0 + r) * p.n + panel * 8..][..8];
                // SAFETY: 8 values.
                unsafe {
                    let v0 = f32x4_mul(f32x4_mul(f32x4_convert_i32x4(acc[0]), s0), scale);
                    let v1 = f32x4_mul(f32x4_mul(f32x4_convert_i32x4(acc[1]), s1), scale);
                    v128_store(row.as_mut_ptr() as *mut v128, v0);
                    v128_store(row.as_mut_ptr().add(4) as *mut v128, v1);
                }
            }
        }
    }
}

/// The layer's six products, f32.
#[no_mangle]
pub extern "C" fn layer_f32() {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let s = s.as_mut().expect("setup first");
        for i in 0..s.products.len() {
            gemm_f32(s.tokens, &s.inputs[i], &s.products[i], &mut s.out_f32[i]);
        }
    })
}

/// The layer's six products, integer (int8 weights in memory with `INT8`).
fn layer_int<const INT8: bool>() {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let State {
            tokens,
            products,
            inputs,
            out_i16,
            out_i8,
            quantized,
            row_scales,
            ..
        } = s.as_mut().expect("setup first");
        let outputs = if INT8 { out_i8 } else { out_i16 };
        for i in 0..products.len() {
            gemm_int::<INT8>(
                *tokens,
                &inputs[i],
                &products[i],
                &mut outputs[i],
                quantized,
                row_scales,
            );
        }
    })
}

/// The layer's six products, integer, i16 weights in memory.
#[no_mangle]
pub extern "C" fn layer_i16() {
    layer_int::<false>()
}

/// The layer's six products, integer, int8 weights in memory.
#[no_mangle]
pub extern "C" fn layer_i8() {
    layer_int::<true>()
}

/// The largest difference between the f32 and the integer outputs (either
/// weight layout), relative to the largest output: the integer paths
/// compute the same products. NaN if the two integer layouts disagree
/// anywhere (they must agree exactly).
#[no_mangle]
pub extern "C" fn relative_difference() -> f32 {
    STATE.with(|s| {
        let s = s.borrow();
        let s = s.as_ref().expect("setup first");
        let (mut diff, mut largest) = (0.0f32, 0.0f32);
        for ((a, b), c) in s.out_f32.iter().zip(&s.out_i16).zip(&s.out_i8) {
            for ((x, y), z) in a.iter().zip(b).zip(c) {
                if y != z {
                    return f32::NAN;
                }
                diff = diff.max((x - y).abs());
                largest = largest.max(x.abs());
            }
        }
        diff / largest
    })
}
