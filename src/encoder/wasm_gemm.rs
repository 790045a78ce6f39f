//! A matrix-multiply micro-kernel for tract in WebAssembly, sized for the
//! engines' register files rather than the virtual machine's.
//!
//! tract 0.23.9 runs every f32 matrix product of the encoder on its
//! `wasm_f32_8x8` kernel: 16 `v128` accumulators, plus two vectors of the
//! packed right-hand side and a broadcast of the left per step. V8 compiles a
//! wasm module to x86-64 with 15 allocatable vector registers (the 16th is its
//! scratch), so that kernel spills and reloads accumulators on every step of
//! its inner loop; on 128-token sentences 85% of the encoder's time was there.
//!
//! This kernel keeps the whole step in registers: a tile of `MR` rows ×
//! `4 × NV` columns, `MR × NV` accumulators, `NV` right-hand vectors, and the
//! left-hand values broadcast straight from memory (`v128.load32_splat`,
//! one instruction). It is registered with tract's kernel registry and named by
//! a dispatch tier that outranks tract's own wasm tier for f32 products, so
//! tract packs the weights for it and calls it like any of its kernels; the
//! matrix-vector kernels (a single column) stay tract's.
//!
//! The arithmetic is tract's: the same `mul` then `add` per term (simd128 has
//! no fused multiply-add), summed over `k` in the same order, so each output
//! element is computed exactly as by the kernel it replaces.
//!
//! In the package's relaxed-SIMD module (`LOCALTUNE_RELAXED_SIMD=1`, see
//! build.rs; chosen by engines that validate relaxed SIMD) each term is one
//! `f32x4.relaxed_madd` instead: a fused multiply-add where the CPU has one
//! (V8 on x86-64 with FMA3, ARM64), the same `mul` then `add` where it has
//! not. Half the arithmetic instructions of the inner loop, and one rounding
//! per term instead of two, so the products differ from tract's in the last
//! bits (parity with onnxruntime holds either way).

use std::arch::wasm32::*;

use tract_linalg::isa::Arch;
use tract_linalg::mmm::{DynKernel, FusedKerSpec, OutputStoreKer, Query, Suitable};
use tract_linalg::mmm_routines::MmmRoutine;
use tract_linalg::mmm_tiers::MmmTier;
use tract_linalg::pack::Packing;
use tract_linalg::Scaler;
use tract_nnef::prelude::DatumType;

/// Rows of the tile (the packed left-hand side, which tract fills with the
/// weights), and its columns in `v128` vectors of four.
const MR: usize = 4;
const NV: usize = 2;
const NR: usize = 4 * NV;

/// The name tract knows the kernel by: the tier below answers with it.
#[cfg(not(localtune_relaxed_simd))]
const KERNEL_NAME: &str = "localtune_wasm_f32_4x8";
#[cfg(localtune_relaxed_simd)]
const KERNEL_NAME: &str = "localtune_wasm_f32_4x8_relaxed_madd";

/// One tile of accumulators: `MR` rows of `NV` vectors.
type Tile = [[v128; NV]; MR];

/// The kernel as tract describes one: its tile, its packings (A `[k][MR]`,
/// B `[k][NR]`, tract's plain f32 panels) and the architecture it runs on.
fn kernel() -> DynKernel<MR, NR, f32> {
    let mut kernel =
        DynKernel::<MR, NR, f32>::new(KERNEL_NAME, run, f32::packing(MR), f32::packing(NR));
    kernel.arch = Some(Arch::Wasm32Simd128);
    // The encoder's sequence axis is symbolic, and for a symbolic `n` tract
    // does not ask the dispatch tiers: it keeps the kernels of the highest
    // preference, then the widest tile. Outranking tract's own wasm kernels
    // here is what makes this one the encoder's.
    kernel.boost = || 100;
    kernel
}

inventory::submit! {
    MmmRoutine { make: || kernel().mmm() }
}

/// The kernel's name, and the reference that keeps this module linked. Its
/// registrations above are static constructors, which the linker keeps only
/// when something pulls this module's object file into the binary: the
/// package always did, but the integration tests' modules (`tests/*.rs`)
/// were linked without it, so their encoders ran tract's own kernels and
/// the browser parity tests never ran this one. The encoder calls this
/// before running the constructors ([`super::run_static_constructors_once`]).
#[inline(never)]
pub(super) fn linked_kernel_name() -> &'static str {
    KERNEL_NAME
}

/// The name of the kernel tract picks for the encoder's f32 products of
/// `n` columns (tract's dispatch, as [`super::Encoder`] meets it).
pub(super) fn kernel_for_columns(n: usize) -> Option<String> {
    let query = Query::plain(DatumType::F32, Some(384), Some(384), Some(n));
    tract_linalg::MmmDispatch::native()
        .pick(&query)
        .map(|(kernel, _, _)| kernel.name().to_string())
}

/// The f32 products with more than one column (every product of the encoder
/// but none of a single-row batch's matrix-vector ones) go to this kernel;
/// everything else is left to tract's own wasm tier below.
fn preferred(
    _isa: &tract_linalg::isa::IsaSet,
    accumulator: DatumType,
    query: &Query,
    _suitable: &[Suitable],
) -> Option<&'static str> {
    match (accumulator, query.n) {
        (DatumType::F32, Some(1)) => None,
        (DatumType::F32, _) => Some(KERNEL_NAME),
        _ => None,
    }
}

inventory::submit! {
    MmmTier {
        arch: Some(Arch::Wasm32Simd128),
        // tract's own wasm tier is 1: asked after this one.
        precedence: 2,
        name: "localtune-wasm-simd128",
        applies: |_| true,
        preferred,
    }
}

/// `acc ← op(operand, acc)` for every accumulator, with the operand chosen
/// per row and vector.
#[inline(always)]
fn apply(acc: &mut Tile, operand: impl Fn(usize, usize) -> v128, op: impl Fn(v128, v128) -> v128) {
    for (r, row) in acc.iter_mut().enumerate() {
        for (v, lane) in row.iter_mut().enumerate() {
            *lane = op(operand(r, v), *lane);
        }
    }
}

/// Reads `MR × NR` values of a strided tile (rows by `row_byte_stride`,
/// columns by `col_byte_stride`) as accumulator-shaped vectors.
#[inline(always)]
unsafe fn read_tile(tile: &OutputStoreKer) -> Tile {
    let mut out = [[f32x4_splat(0.0); NV]; MR];
    for (r, row) in out.iter_mut().enumerate() {
        let row_ptr = tile.ptr.offset(tile.row_byte_stride * r as isize);
        for (v, lane) in row.iter_mut().enumerate() {
            let at = |c: usize| {
                *(row_ptr.offset(tile.col_byte_stride * (4 * v + c) as isize) as *const f32)
            };
            *lane = f32x4(at(0), at(1), at(2), at(3));
        }
    }
    out
}

/// The kernel: runs tract's list of fused operations on one tile.
///
/// # Safety
/// tract's contract for every kernel: the pointers in `specs` are valid for a
/// tile of this kernel's shape, packed as [`kernel`] declares.
unsafe fn run(specs: &[FusedKerSpec<f32>]) -> isize {
    let zero = f32x4_splat(0.0);
    let mut acc: Tile = [[zero; NV]; MR];
    for spec in specs {
        match *spec {
            FusedKerSpec::Done => break,
            FusedKerSpec::Clear => acc = [[zero; NV]; MR],
            FusedKerSpec::LoadTile(_cols, rows) => {
                // Row-major MR × NR, as the kernel's own accumulators.
                let src = rows as *const v128;
                apply(&mut acc, |r, v| v128_load(src.add(r * NV + v)), |x, _| x)
            }
            FusedKerSpec::ScalarMin(a) => {
                apply(&mut acc, |_, _| f32x4_splat(a), |s, x| f32x4_min(s, x))
            }
            FusedKerSpec::ScalarMax(a) => {
                apply(&mut acc, |_, _| f32x4_splat(a), |s, x| f32x4_max(s, x))
            }
            FusedKerSpec::ScalarAdd(a) => {
                apply(&mut acc, |_, _| f32x4_splat(a), |s, x| f32x4_add(s, x))
            }
            FusedKerSpec::ScalarMul(a) => {
                apply(&mut acc, |_, _| f32x4_splat(a), |s, x| f32x4_mul(s, x))
            }
            FusedKerSpec::ScalarSub(a) => {
                apply(&mut acc, |_, _| f32x4_splat(a), |s, x| f32x4_sub(s, x))
            }
            FusedKerSpec::ScalarSubF(a) => {
                apply(&mut acc, |_, _| f32x4_splat(a), |s, x| f32x4_sub(x, s))
            }
            FusedKerSpec::LeakyRelu(alpha) => {
                let alpha = f32x4_splat(alpha);
                apply(
                    &mut acc,
                    |_, _| alpha,
                    |alpha, x| v128_bitselect(x, f32x4_mul(alpha, x), f32x4_gt(x, zero)),
                )
            }
            FusedKerSpec::PerRowMin(row) => {
                apply(&mut acc, |r, _| splat_at(row, r), |s, x| f32x4_min(s, x))
            }
            FusedKerSpec::PerRowMax(row) => {
                apply(&mut acc, |r, _| splat_at(row, r), |s, x| f32x4_max(s, x))
            }
            FusedKerSpec::PerRowAdd(row) => {
                apply(&mut acc, |r, _| splat_at(row, r), |s, x| f32x4_add(s, x))
            }
            FusedKerSpec::PerRowMul(row) => {
                apply(&mut acc, |r, _| splat_at(row, r), |s, x| f32x4_mul(s, x))
            }
            FusedKerSpec::PerRowSub(row) => {
                apply(&mut acc, |r, _| splat_at(row, r), |s, x| f32x4_sub(s, x))
            }
            FusedKerSpec::PerRowSubF(row) => {
                apply(&mut acc, |r, _| splat_at(row, r), |s, x| f32x4_sub(x, s))
            }
            FusedKerSpec::PerColMin(cols) => {
                apply(&mut acc, |_, v| vector_at(cols, v), |s, x| f32x4_min(s, x))
            }
            FusedKerSpec::PerColMax(cols) => {
                apply(&mut acc, |_, v| vector_at(cols, v), |s, x| f32x4_max(s, x))
            }
            FusedKerSpec::PerColAdd(cols) => {
                apply(&mut acc, |_, v| vector_at(cols, v), |s, x| f32x4_add(s, x))
            }
            FusedKerSpec::PerColMul(cols) => {
                apply(&mut acc, |_, v| vector_at(cols, v), |s, x| f32x4_mul(s, x))
            }
            FusedKerSpec::PerColSub(cols) => {
                apply(&mut acc, |_, v| vector_at(cols, v), |s, x| f32x4_sub(s, x))
            }
            FusedKerSpec::PerColSubF(cols) => {
                apply(&mut acc, |_, v| vector_at(cols, v), |s, x| f32x4_sub(x, s))
            }
            FusedKerSpec::QScale(shift, policy, mult) => {
                let scale = f32x4_splat(Scaler::from_fuse_params(shift, policy, mult).scale);
                apply(&mut acc, |_, _| scale, |s, x| f32x4_mul(s, x))
            }
            FusedKerSpec::RoundingShiftRight(shift, _policy) => {
                let scale = f32x4_splat(2f32.powi(-(shift as i32)));
                apply(&mut acc, |_, _| scale, |s, x| f32x4_mul(s, x))
            }
            FusedKerSpec::ShiftLeft(shift) => {
                let scale = f32x4_splat(2f32.powi(shift as i32));
                apply(&mut acc, |_, _| scale, |s, x| f32x4_mul(s, x))
            }
            FusedKerSpec::AddUnicast(tile) => {
                let other = read_tile(&tile);
                apply(&mut acc, |r, v| other[r][v], |s, x| f32x4_add(s, x))
            }
            FusedKerSpec::AddRowColProducts(rows, cols) => apply(
                &mut acc,
                |r, v| f32x4_mul(splat_at(rows, r), vector_at(cols, v)),
                |s, x| f32x4_add(s, x),
            ),
            FusedKerSpec::Store(tile) => store(&acc, &tile),
            FusedKerSpec::AddMatMul {
                k,
                pa,
                pb,
                packing: _,
            } => add_mat_mul(&mut acc, k, pa as *const f32, pb as *const v128),
        }
    }
    0
}

#[inline(always)]
unsafe fn splat_at(values: *const f32, index: usize) -> v128 {
    v128_load32_splat(values.add(index) as *const u32)
}

#[inline(always)]
unsafe fn vector_at(values: *const f32, index: usize) -> v128 {
    v128_load((values as *const v128).add(index))
}

/// `acc += A·B` over `k` steps of the packed panels: A `[k][MR]`, B `[k][NR]`.
// The relaxed build asks for the target feature on this function only (an
// attribute that rules out `inline(always)`: one call per tile, outside the
// loop). LLVM's wasm backend gives every function of a module the union of
// their features, so it may choose a relaxed instruction elsewhere where its
// result is the same (one `f32x4.relaxed_min` in this build); the source of
// every other function is the same in both modules.
#[cfg_attr(not(localtune_relaxed_simd), inline(always))]
#[cfg_attr(localtune_relaxed_simd, target_feature(enable = "relaxed-simd"))]
unsafe fn add_mat_mul(acc: &mut Tile, k: usize, pa: *const f32, pb: *const v128) {
    for step in 0..k {
        let a = pa.add(step * MR);
        let b = pb.add(step * NV);
        let columns: [v128; NV] = std::array::from_fn(|v| v128_load(b.add(v)));
        for (r, row) in acc.iter_mut().enumerate() {
            let broadcast = splat_at(a, r);
            for (v, lane) in row.iter_mut().enumerate() {
                #[cfg(not(localtune_relaxed_simd))]
                {
                    *lane = f32x4_add(*lane, f32x4_mul(broadcast, columns[v]));
                }
                #[cfg(localtune_relaxed_simd)]
                {
                    *lane = f32x4_relaxed_madd(broadcast, columns[v], *lane);
                }
            }
        }
    }
}

/// Writes the tile at `tile.ptr`, rows and columns by their byte strides.
#[inline(always)]
unsafe fn store(acc: &Tile, tile: &OutputStoreKer) {
    for (r, row) in acc.iter().enumerate() {
        let row_ptr = tile.ptr.offset(tile.row_byte_stride * r as isize);
        if tile.col_byte_stride == std::mem::size_of::<f32>() as isize {
            for (v, lane) in row.iter().enumerate() {
                v128_store((row_ptr as *mut v128).add(v), *lane);
            }
        } else {
            for (v, lane) in row.iter().enumerate() {
                let lanes = [
                    f32x4_extract_lane::<0>(*lane),
                    f32x4_extract_lane::<1>(*lane),
                    f32x4_extract_lane::<2>(*lane),
                    f32x4_extract_lane::<3>(*lane),
                ];
                for (c, value) in lanes.into_iter().enumerate() {
                    *(row_ptr.offset(tile.col_byte_stride * (4 * v + c) as isize) as *mut f32) =
                        value;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The kernel against a scalar model of tract's kernel contract, one
    //! fused operation at a time, and tract's dispatch choosing it. The
    //! encoder's parity tests (Node and Chromium) run it on the real model.
    use super::*;
    use tract_linalg::mmm::RoundingPolicy;
    use tract_linalg::MmmDispatch;
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A tile as the scalar model holds it: `MR` rows of `NR` values.
    type Scalar = [[f32; NR]; MR];

    /// Distinct, non-trivial values (some negative, none integer).
    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 97.0 - 10.3)
            .collect()
    }

    /// Runs `specs` (a `Store` into a row-major tile and `Done` appended)
    /// through the kernel and reads the stored tile back.
    fn run_kernel(mut specs: Vec<FusedKerSpec<f32>>) -> Scalar {
        let mut out = [[f32::NAN; NR]; MR];
        specs.push(FusedKerSpec::Store(row_major(&mut out)));
        specs.push(FusedKerSpec::Done);
        assert_eq!(unsafe { run(&specs) }, 0);
        out
    }

    fn row_major(tile: &mut Scalar) -> OutputStoreKer {
        OutputStoreKer {
            ptr: tile.as_mut_ptr() as *mut u8,
            row_byte_stride: (NR * 4) as isize,
            col_byte_stride: 4,
            item_size: 4,
        }
    }

    fn map(tile: Scalar, f: impl Fn(usize, usize, f32) -> f32) -> Scalar {
        let mut out = tile;
        for (r, row) in out.iter_mut().enumerate() {
            for (c, x) in row.iter_mut().enumerate() {
                *x = f(r, c, *x);
            }
        }
        out
    }

    fn assert_same(got: Scalar, want: Scalar, what: &str) {
        for r in 0..MR {
            for c in 0..NR {
                assert_eq!(
                    got[r][c].to_bits(),
                    want[r][c].to_bits(),
                    "{what}: row {r} col {c}: {} ≠ {}",
                    got[r][c],
                    want[r][c]
                );
            }
        }
    }

    /// A product over packed panels equals the scalar sum taken in the same
    /// order from zero, bit for bit: multiply then add, as tract's kernel;
    /// in the relaxed build, a fused multiply-add per term where the engine
    /// fuses (the whole tile one way or the other, never a mix).
    #[test]
    fn add_mat_mul_is_the_ordered_scalar_product() {
        for k in [0, 1, 3, 384] {
            let a = values(k * MR, 1); // packed [k][MR]
            let b = values(k * NR, 2); // packed [k][NR]
            let got = run_kernel(vec![
                FusedKerSpec::Clear,
                FusedKerSpec::AddMatMul {
                    k,
                    pa: a.as_ptr() as *const u8,
                    pb: b.as_ptr() as *const u8,
                    packing: 0,
                },
            ]);
            let unfused = map([[0.0; NR]; MR], |r, c, _| {
                (0..k).fold(0.0, |acc, i| acc + a[i * MR + r] * b[i * NR + c])
            });
            #[cfg(localtune_relaxed_simd)]
            if k > 0 && got != unfused {
                let fused = map([[0.0; NR]; MR], |r, c, _| {
                    (0..k).fold(0.0f32, |acc, i| a[i * MR + r].mul_add(b[i * NR + c], acc))
                });
                assert_same(got, fused, &format!("k = {k}, fused"));
                continue;
            }
            assert_same(got, unfused, &format!("k = {k}"));
        }
    }

    /// Every fused operation tract may append, on a loaded tile.
    #[test]
    fn every_fused_operation_matches_its_scalar_definition() {
        let tile: Vec<f32> = values(MR * NR, 3);
        let start = map([[0.0; NR]; MR], |r, c, _| tile[r * NR + c]);
        let rows = values(MR, 4);
        let cols = values(NR, 5);
        let load = FusedKerSpec::LoadTile(std::ptr::null(), tile.as_ptr());
        let s = 1.75f32;
        type ScalarOp = Box<dyn Fn(usize, usize, f32) -> f32>;
        let cases: Vec<(&str, FusedKerSpec<f32>, ScalarOp)> = vec![
            (
                "ScalarMin",
                FusedKerSpec::ScalarMin(s),
                Box::new(move |_, _, x| x.min(s)),
            ),
            (
                "ScalarMax",
                FusedKerSpec::ScalarMax(s),
                Box::new(move |_, _, x| x.max(s)),
            ),
            (
                "ScalarAdd",
                FusedKerSpec::ScalarAdd(s),
                Box::new(move |_, _, x| s + x),
            ),
            (
                "ScalarMul",
                FusedKerSpec::ScalarMul(s),
                Box::new(move |_, _, x| s * x),
            ),
            (
                "ScalarSub",
                FusedKerSpec::ScalarSub(s),
                Box::new(move |_, _, x| s - x),
            ),
            (
                "ScalarSubF",
                FusedKerSpec::ScalarSubF(s),
                Box::new(move |_, _, x| x - s),
            ),
            (
                "LeakyRelu",
                FusedKerSpec::LeakyRelu(0.1),
                Box::new(|_, _, x| if x > 0.0 { x } else { 0.1 * x }),
            ),
            ("PerRowMin", FusedKerSpec::PerRowMin(rows.as_ptr()), {
                let rows = rows.clone();
                Box::new(move |r, _, x| x.min(rows[r]))
            }),
            ("PerRowMax", FusedKerSpec::PerRowMax(rows.as_ptr()), {
                let rows = rows.clone();
                Box::new(move |r, _, x| x.max(rows[r]))
            }),
            ("PerRowAdd", FusedKerSpec::PerRowAdd(rows.as_ptr()), {
                let rows = rows.clone();
                Box::new(move |r, _, x| rows[r] + x)
            }),
            ("PerRowMul", FusedKerSpec::PerRowMul(rows.as_ptr()), {
                let rows = rows.clone();
                Box::new(move |r, _, x| rows[r] * x)
            }),
            ("PerRowSub", FusedKerSpec::PerRowSub(rows.as_ptr()), {
                let rows = rows.clone();
                Box::new(move |r, _, x| rows[r] - x)
            }),
            ("PerRowSubF", FusedKerSpec::PerRowSubF(rows.as_ptr()), {
                let rows = rows.clone();
                Box::new(move |r, _, x| x - rows[r])
            }),
            ("PerColMin", FusedKerSpec::PerColMin(cols.as_ptr()), {
                let cols = cols.clone();
                Box::new(move |_, c, x| x.min(cols[c]))
            }),
            ("PerColMax", FusedKerSpec::PerColMax(cols.as_ptr()), {
                let cols = cols.clone();
                Box::new(move |_, c, x| x.max(cols[c]))
            }),
            ("PerColAdd", FusedKerSpec::PerColAdd(cols.as_ptr()), {
                let cols = cols.clone();
                Box::new(move |_, c, x| cols[c] + x)
            }),
            ("PerColMul", FusedKerSpec::PerColMul(cols.as_ptr()), {
                let cols = cols.clone();
                Box::new(move |_, c, x| cols[c] * x)
            }),
            ("PerColSub", FusedKerSpec::PerColSub(cols.as_ptr()), {
                let cols = cols.clone();
                Box::new(move |_, c, x| cols[c] - x)
            }),
            ("PerColSubF", FusedKerSpec::PerColSubF(cols.as_ptr()), {
                let cols = cols.clone();
                Box::new(move |_, c, x| x - cols[c])
            }),
            (
                "QScale",
                FusedKerSpec::QScale(2, RoundingPolicy::Even, 1 << 30),
                {
                    let scale = Scaler::from_fuse_params(2, RoundingPolicy::Even, 1 << 30).scale;
                    Box::new(move |_, _, x| scale * x)
                },
            ),
            (
                "RoundingShiftRight",
                FusedKerSpec::RoundingShiftRight(3, RoundingPolicy::Even),
                Box::new(|_, _, x| 0.125 * x),
            ),
            (
                "ShiftLeft",
                FusedKerSpec::ShiftLeft(2),
                Box::new(|_, _, x| 4.0 * x),
            ),
            (
                "AddRowColProducts",
                FusedKerSpec::AddRowColProducts(rows.as_ptr(), cols.as_ptr()),
                {
                    let (rows, cols) = (rows.clone(), cols.clone());
                    Box::new(move |r, c, x| x + rows[r] * cols[c])
                },
            ),
        ];
        for (name, spec, scalar) in cases {
            let got = run_kernel(vec![load, spec]);
            assert_same(got, map(start, &scalar), name);
        }
        assert_same(
            run_kernel(vec![load, FusedKerSpec::Clear]),
            [[0.0; NR]; MR],
            "Clear",
        );
    }

    /// Reading and writing C through strides: a column-major tile, the way
    /// tract hands a kernel a transposed or border output.
    #[test]
    fn strided_tiles_are_read_and_written_element_by_element() {
        let other = values(MR * NR, 6); // column-major: element (r, c) at c * MR + r
        let tile = values(MR * NR, 7);
        let column_major = |ptr: *mut u8| OutputStoreKer {
            ptr,
            row_byte_stride: 4,
            col_byte_stride: (MR * 4) as isize,
            item_size: 4,
        };
        let got = run_kernel(vec![
            FusedKerSpec::LoadTile(std::ptr::null(), tile.as_ptr()),
            FusedKerSpec::AddUnicast(column_major(other.as_ptr() as *mut u8)),
        ]);
        let want = map([[0.0; NR]; MR], |r, c, _| {
            other[c * MR + r] + tile[r * NR + c]
        });
        assert_same(got, want, "AddUnicast");

        let mut stored = vec![f32::NAN; MR * NR];
        let specs = [
            FusedKerSpec::LoadTile(std::ptr::null(), tile.as_ptr()),
            FusedKerSpec::Store(column_major(stored.as_mut_ptr() as *mut u8)),
            FusedKerSpec::Done,
        ];
        assert_eq!(unsafe { run(&specs) }, 0);
        for r in 0..MR {
            for c in 0..NR {
                assert_eq!(
                    stored[c * MR + r],
                    tile[r * NR + c],
                    "Store row {r} col {c}"
                );
            }
        }
    }

    /// tract finds the kernel in its registry and runs it for every f32
    /// product of more than one column, symbolic or concrete; a single column
    /// stays on tract's matrix-vector kernels.
    #[test]
    fn tract_dispatch_chooses_this_kernel_for_matrix_products() {
        // The registry is filled by static constructors, as for an encoder.
        crate::encoder::run_static_constructors_once();
        let dispatch = MmmDispatch::native();
        assert!(dispatch.runnable().iter().any(|k| k.name() == KERNEL_NAME));
        let name_for = |n: Option<usize>| {
            let query = Query::plain(DatumType::F32, Some(384), Some(384), n);
            dispatch
                .pick(&query)
                .map(|(kernel, _, _)| kernel.name().to_string())
        };
        assert_eq!(name_for(Some(8)).as_deref(), Some(KERNEL_NAME));
        assert_eq!(name_for(Some(128)).as_deref(), Some(KERNEL_NAME));
        assert_ne!(name_for(Some(1)).as_deref(), Some(KERNEL_NAME));
        // A symbolic n is decided by preference alone: only this kernel is left.
        let mut suitable = dispatch.suitable(&Query::plain(DatumType::F32, None, None, None));
        tract_linalg::mmm::retain_best(&mut suitable);
        let names: Vec<&str> = suitable.iter().map(|(k, _, _)| k.name()).collect();
        assert_eq!(names, [KERNEL_NAME]);
    }
}
