//! 4-bit word embeddings: the optional smaller encoder file.
//!
//! Half of MiniLM's compiled file is its int8 word-embedding table (30,522
//! rows of 384 values, 11.7 MB). This code stores each row in groups of
//! [`DEFAULT_GROUP`] values as 16 levels between the group's smallest and
//! largest int8 value: half a byte a value and two bytes a group (6.6 MB).
//!
//! The levels decode to *int8 values*, with integer arithmetic only, so the
//! table the graph reads is an ordinary int8 table and every target (native,
//! wasm, any engine) decodes it bit for bit the same. The ONNX importer applies
//! the same requantization to the ONNX file's table ([`requantize`]), so an
//! encoder built from ONNX with the option gives the vectors of the compiled
//! file exactly. Measured (`cargo bench --bench head_quality --
//! --word-embeddings-4bit`, docs/benchmarks.md): cosine to the int8 model's
//! vectors ≥ 0.996 over the repository's 5,698 sentences, head accuracy
//! within 0.3 points.
//!
//! `.q4` file: magic, rows, columns and group size (u32 LE), signedness
//! (u8) and three zero bytes; then each row's groups' (minimum, maximum) as
//! raw bytes; then every value's level, two a byte (the first in the low
//! nibble), row-major.

/// Values a group, when the bundle tool is not told otherwise: measured
/// closer to int8 than 64 (docs/benchmarks.md) for 0.7 MB more.
pub const DEFAULT_GROUP: usize = 32;
/// The largest group size the importer and the bundle tool accept.
pub const MAX_GROUP: usize = 4096;
const LEVELS: i32 = 16;
const MAGIC: &[u8; 8] = b"LTQ4\0\0\0\x01";
const HEADER_BYTES: usize = 8 + 12 + 4;

/// The value of `level` between `lo` and `hi`: `lo + round(level × (hi − lo)
/// / 15)`, halves rounded up, in integers.
fn level_value(lo: i32, hi: i32, level: i32) -> i32 {
    let top = LEVELS - 1;
    lo + (2 * level * (hi - lo) + top) / (2 * top)
}

/// The level whose value is nearest `v` (the lowest of equals): exact for
/// a value already on the group's grid, so requantizing twice changes
/// nothing.
#[cfg(feature = "onnx-import")]
fn nearest_level(lo: i32, hi: i32, v: i32) -> i32 {
    (0..LEVELS)
        .min_by_key(|&l| (level_value(lo, hi, l) - v).abs())
        .expect("16 levels")
}

fn as_value(byte: u8, signed: bool) -> i32 {
    if signed {
        byte as i8 as i32
    } else {
        byte as i32
    }
}

fn as_byte(value: i32, signed: bool) -> u8 {
    if signed {
        value as i8 as u8
    } else {
        value as u8
    }
}

/// The groups of one row: `(start, end)` offsets.
fn groups(cols: usize, group: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..cols)
        .step_by(group)
        .map(move |start| (start, (start + group).min(cols)))
}

#[cfg(feature = "onnx-import")]
fn check_shape(len: usize, rows: usize, cols: usize, group: usize) -> Result<(), String> {
    if group == 0 || cols == 0 {
        return Err(format!(
            "a 4-bit table needs columns and a group size ({cols}, {group})"
        ));
    }
    if rows.checked_mul(cols) != Some(len) {
        return Err(format!("{len} values are not {rows} × {cols}"));
    }
    Ok(())
}

/// Moves every value of a `rows × cols` int8 (or uint8) table, row-major, to
/// the level of its group that is nearest it: the table the `.q4` file
/// holds, in the form the graph reads.
#[cfg(feature = "onnx-import")]
pub fn requantize(table: &mut [u8], cols: usize, group: usize, signed: bool) -> Result<(), String> {
    check_shape(table.len(), table.len() / cols.max(1), cols, group)?;
    for row in table.chunks_exact_mut(cols) {
        for (start, end) in groups(cols, group) {
            let g = &mut row[start..end];
            let (lo, hi) = min_max(g, signed);
            for b in g.iter_mut() {
                let level = nearest_level(lo, hi, as_value(*b, signed));
                *b = as_byte(level_value(lo, hi, level), signed);
            }
        }
    }
    Ok(())
}

#[cfg(feature = "onnx-import")]
fn min_max(group: &[u8], signed: bool) -> (i32, i32) {
    group
        .iter()
        .map(|&b| as_value(b, signed))
        .fold((i32::MAX, i32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// The `.q4` file of a table already on its groups' grid ([`requantize`]);
/// an error if it is not, since the file could not give it back exactly.
#[cfg(feature = "onnx-import")]
pub fn encode(
    table: &[u8],
    rows: usize,
    cols: usize,
    group: usize,
    signed: bool,
) -> Result<Vec<u8>, String> {
    check_shape(table.len(), rows, cols, group)?;
    let groups_per_row = cols.div_ceil(group);
    let mut out =
        Vec::with_capacity(HEADER_BYTES + rows * groups_per_row * 2 + table.len().div_ceil(2));
    out.extend_from_slice(MAGIC);
    for n in [rows, cols, group] {
        out.extend_from_slice(
            &u32::try_from(n)
                .map_err(|_| "a dimension over 2^32")?
                .to_le_bytes(),
        );
    }
    out.extend_from_slice(&[u8::from(signed), 0, 0, 0]);
    let mut levels = Vec::with_capacity(table.len());
    for row in table.chunks_exact(cols) {
        for (start, end) in groups(cols, group) {
            let g = &row[start..end];
            let (lo, hi) = min_max(g, signed);
            out.extend_from_slice(&[as_byte(lo, signed), as_byte(hi, signed)]);
            for &b in g {
                let v = as_value(b, signed);
                let level = nearest_level(lo, hi, v);
                if level_value(lo, hi, level) != v {
                    return Err(format!(
                        "value {v} is not on its group's 4-bit grid ({lo}..={hi}): requantize the table first"
                    ));
                }
                levels.push(level as u8);
            }
        }
    }
    out.extend(
        levels
            .chunks(2)
            .map(|p| p[0] | (p.get(1).copied().unwrap_or(0) << 4)),
    );
    Ok(out)
}

/// "int8", or "4-bit in groups of N": the word embeddings a compiled
/// encoder or a manifest names, for messages.
pub fn describe(word_embeddings_4bit: Option<usize>) -> String {
    match word_embeddings_4bit {
        None => "int8".into(),
        Some(group) => format!("4-bit in groups of {group}"),
    }
}

/// What a `.q4` file holds, read from its header and checked against its
/// length.
pub struct Shape {
    pub rows: usize,
    pub cols: usize,
    group: usize,
    /// int8 (else uint8) values.
    pub signed: bool,
}

/// Reads a `.q4` file's header; a damaged or truncated file is an error that
/// says what is wrong, and the sizes must agree with the bytes there are, so
/// nothing is allocated for a table the file does not hold.
pub fn read_shape(bytes: &[u8]) -> Result<Shape, String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not a 4-bit table (wrong magic)")?;
    let u32_at = |at: usize| -> Result<usize, String> {
        rest.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| "truncated header".to_string())
    };
    let (rows, cols, group) = (u32_at(0)?, u32_at(4)?, u32_at(8)?);
    let &[signed, 0, 0, 0] = rest.get(12..16).ok_or("truncated header")? else {
        return Err("malformed header".into());
    };
    if signed > 1 || group == 0 || cols == 0 {
        return Err("malformed header".into());
    }
    let shape = Shape {
        rows,
        cols,
        group,
        signed: signed == 1,
    };
    let body = bytes.len() - HEADER_BYTES;
    if Some(body)
        != shape
            .bounds_len()
            .zip(shape.levels_len())
            .and_then(|(b, l)| b.checked_add(l))
    {
        return Err(format!(
            "{body} bytes of data for {rows} × {cols} values in groups of {group}"
        ));
    }
    Ok(shape)
}

impl Shape {
    /// Bytes of the groups' (minimum, maximum) pairs.
    fn bounds_len(&self) -> Option<usize> {
        self.rows
            .checked_mul(self.cols.div_ceil(self.group))?
            .checked_mul(2)
    }

    /// Bytes of the packed levels.
    fn levels_len(&self) -> Option<usize> {
        Some(self.rows.checked_mul(self.cols)?.div_ceil(2))
    }
}

/// Decodes the table of a `.q4` file whose header gave `shape`, handing
/// each value (row-major index, byte) to `put`: straight into the tensor the
/// graph reads, with no table-sized buffer in between (wasm memory never
/// shrinks).
pub fn decode_into(
    bytes: &[u8],
    shape: &Shape,
    mut put: impl FnMut(usize, u8),
) -> Result<(), String> {
    let bounds_len = shape.bounds_len().ok_or("size overflows")?;
    let (bounds, packed) = bytes[HEADER_BYTES..].split_at(bounds_len);
    let mut bounds = bounds.chunks_exact(2);
    let level = |i: usize| ((packed[i / 2] >> (4 * (i % 2))) & 0x0f) as i32;
    let mut i = 0;
    for _ in 0..shape.rows {
        for (start, end) in groups(shape.cols, shape.group) {
            let b = bounds.next().ok_or("truncated bounds")?;
            let (lo, hi) = (as_value(b[0], shape.signed), as_value(b[1], shape.signed));
            if lo > hi {
                return Err(format!("a group's minimum {lo} is above its maximum {hi}"));
            }
            for _ in start..end {
                put(i, as_byte(level_value(lo, hi, level(i)), shape.signed));
                i += 1;
            }
        }
    }
    Ok(())
}

#[cfg(all(test, feature = "onnx-import"))]
mod tests {
    use super::*;

    /// A deterministic table with the spread of a real one.
    fn table(rows: usize, cols: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        (0..rows * cols)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                ((state % 97) as i32 - 48) as i8 as u8
            })
            .collect()
    }

    /// The whole table of a `.q4` file.
    fn decode(bytes: &[u8]) -> Result<(Shape, Vec<u8>), String> {
        let shape = read_shape(bytes)?;
        let mut values = vec![0; shape.rows * shape.cols];
        decode_into(bytes, &shape, |i, b| values[i] = b)?;
        Ok((shape, values))
    }

    #[test]
    fn the_levels_span_each_group_exactly() {
        for (lo, hi) in [(-128, 127), (-3, 4), (5, 5), (0, 15), (-48, -40)] {
            assert_eq!(level_value(lo, hi, 0), lo);
            assert_eq!(level_value(lo, hi, 15), hi);
            for l in 1..16 {
                assert!(level_value(lo, hi, l) >= level_value(lo, hi, l - 1));
            }
        }
    }

    #[test]
    fn requantized_tables_round_trip_through_the_file_bit_for_bit() {
        for (rows, cols, group, signed) in [
            (7, 384, 32, true),
            (5, 100, 32, true),
            (3, 9, 4, false),
            (1, 1, 32, true),
        ] {
            let original = table(rows, cols);
            let mut grid = original.clone();
            requantize(&mut grid, cols, group, signed).unwrap();
            let mut again = grid.clone();
            requantize(&mut again, cols, group, signed).unwrap();
            assert_eq!(again, grid, "requantizing twice changes nothing");
            let file = encode(&grid, rows, cols, group, signed).unwrap();
            assert_eq!(
                file.len(),
                HEADER_BYTES + rows * cols.div_ceil(group) * 2 + (rows * cols).div_ceil(2)
            );
            let (shape, values) = decode(&file).unwrap();
            assert_eq!((shape.rows, shape.cols, shape.signed), (rows, cols, signed));
            assert_eq!(values, grid);
            // Each value moves by at most half a level.
            for (row, (a, b)) in original.chunks(cols).zip(grid.chunks(cols)).enumerate() {
                for (start, end) in groups(cols, group) {
                    let (lo, hi) = min_max(&original[row * cols + start..row * cols + end], signed);
                    let half_step = (hi - lo) as f32 / 30.0 + 0.5;
                    for (&x, &y) in a[start..end].iter().zip(&b[start..end]) {
                        let moved = (as_value(x, signed) - as_value(y, signed)).abs() as f32;
                        assert!(moved <= half_step, "{x} → {y} in {lo}..={hi}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_table_off_the_grid_is_refused_not_rounded() {
        let t = table(2, 64);
        let err = encode(&t, 2, 64, 32, true).unwrap_err();
        assert!(err.contains("requantize the table first"), "{err}");
    }

    #[test]
    fn damaged_files_are_refused_with_a_reason() {
        let mut grid = table(4, 64);
        requantize(&mut grid, 64, 32, true).unwrap();
        let file = encode(&grid, 4, 64, 32, true).unwrap();
        let mut cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "wrong magic"),
            (file[..HEADER_BYTES - 2].to_vec(), "truncated header"),
            (file[..file.len() - 1].to_vec(), "bytes of data"),
        ];
        let mut huge = file.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push((huge, "bytes of data"));
        let mut no_group = file.clone();
        no_group[16..20].copy_from_slice(&0u32.to_le_bytes());
        cases.push((no_group, "malformed header"));
        let mut inverted = file.clone();
        inverted[HEADER_BYTES] = 100;
        inverted[HEADER_BYTES + 1] = 0;
        cases.push((inverted, "above its maximum"));
        for (bytes, expected) in cases {
            let err = decode(&bytes).err().expect("refused");
            assert!(err.contains(expected), "{err} (expected {expected})");
        }
    }
}
