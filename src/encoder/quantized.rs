//! Int8 weight matrices with their scales: what the ONNX file holds
//! (`Mul(Cast(Q), S)`), what the compiled encoder stores in `.q8` files, and
//! how both turn into the f32 values tract computes with. Free of the ONNX
//! importer, so a module that only loads compiled encoders has it too.

/// A 2-D int8/uint8 matrix and the f32 scale that dequantizes it
/// (`value as f32 * scale`), scalar, per row or per column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QuantizedMatrix {
    pub rows: usize,
    pub cols: usize,
    pub signed: bool,
    /// Row-major, `rows × cols`.
    pub values: Vec<u8>,
    pub scale: Scale,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scale {
    One(f32),
    PerRow(Vec<f32>),
    PerColumn(Vec<f32>),
}

impl QuantizedMatrix {
    /// Element `(r, c)` dequantized: the cast and the single multiplication
    /// ONNX's `Mul(Cast(Q), S)` does, so the result is bit-identical.
    #[inline(always)]
    pub fn value(&self, r: usize, c: usize) -> f32 {
        let b = self.values[r * self.cols + c];
        let v = if self.signed {
            b as i8 as f32
        } else {
            b as f32
        };
        v * match &self.scale {
            Scale::One(s) => *s,
            Scale::PerRow(s) => s[r],
            Scale::PerColumn(s) => s[c],
        }
    }

    /// Whether `values` (row-major, `rows × cols`; with `transposed`,
    /// `cols × rows`) are this matrix dequantized, bit for bit.
    pub fn matches(&self, values: &[f32], transposed: bool) -> bool {
        values.len() == self.rows * self.cols
            && (0..self.rows).all(|r| {
                (0..self.cols).all(|c| {
                    let at = if transposed {
                        c * self.rows + r
                    } else {
                        r * self.cols + c
                    };
                    self.value(r, c).to_bits() == values[at].to_bits()
                })
            })
    }

    /// The same matrix transposed (a per-row scale becomes per-column).
    #[cfg(feature = "onnx-import")]
    pub fn transposed(&self) -> Self {
        let mut values = vec![0u8; self.values.len()];
        for r in 0..self.rows {
            for c in 0..self.cols {
                values[c * self.rows + r] = self.values[r * self.cols + c];
            }
        }
        QuantizedMatrix {
            rows: self.cols,
            cols: self.rows,
            signed: self.signed,
            values,
            scale: match &self.scale {
                Scale::One(s) => Scale::One(*s),
                Scale::PerRow(s) => Scale::PerColumn(s.clone()),
                Scale::PerColumn(s) => Scale::PerRow(s.clone()),
            },
        }
    }

    /// The dequantized matrix, row-major (tests compare it with tract's).
    #[cfg(all(test, feature = "onnx-import"))]
    pub fn dequantized(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        self.dequantize_into(&mut out);
        out
    }

    /// The dequantized matrix into `out` (`rows × cols`, row-major). A call
    /// per row on purpose: a WebAssembly engine swaps in optimised code
    /// after the first few rows (one call over millions of weights would run
    /// in its baseline tier).
    pub fn dequantize_into(&self, out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.rows * self.cols);
        for (r, dst) in out.chunks_exact_mut(self.cols.max(1)).enumerate() {
            self.dequantize_row(r, dst);
        }
    }

    /// Row `r` as [`Self::value`] gives it, a loop the compiler can
    /// vectorise (no per-value match on the scale's kind).
    #[inline(never)]
    pub(super) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let values = &self.values[r * self.cols..][..self.cols];
        if self.signed {
            dequantize_values(values, out, |q| q as i8 as f32, &self.scale, r);
        } else {
            dequantize_values(values, out, |q| q as f32, &self.scale, r);
        }
    }
}

#[inline(always)]
fn dequantize_values(
    values: &[u8],
    out: &mut [f32],
    to_f32: impl Fn(u8) -> f32,
    scale: &Scale,
    row: usize,
) {
    let mut one_scale = |s: f32| {
        for (dst, &q) in out.iter_mut().zip(values) {
            *dst = to_f32(q) * s;
        }
    };
    match scale {
        Scale::One(s) => one_scale(*s),
        Scale::PerRow(rows) => one_scale(rows[row]),
        Scale::PerColumn(columns) => {
            for ((dst, &q), &s) in out.iter_mut().zip(values).zip(columns) {
                *dst = to_f32(q) * s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row-at-a-time dequantization is `value`, bit for bit, for every
    /// kind of scale, signed or not (a compiled encoder's weights are these
    /// values; its integer products assume they are).
    #[test]
    fn dequantized_rows_are_the_values() {
        let values: Vec<u8> = (0..15u8).map(|v| v.wrapping_mul(37)).collect();
        for signed in [true, false] {
            for scale in [
                Scale::One(0.37),
                Scale::PerRow(vec![0.1, 2.5, 1e-3]),
                Scale::PerColumn(vec![0.3, 1.7, 0.01, 3.0, 1e-5]),
            ] {
                let m = QuantizedMatrix {
                    rows: 3,
                    cols: 5,
                    signed,
                    values: values.clone(),
                    scale,
                };
                let rows = m.dequantized();
                for r in 0..3 {
                    for c in 0..5 {
                        assert_eq!(rows[r * 5 + c].to_bits(), m.value(r, c).to_bits());
                    }
                }
            }
        }
    }
}
