//! Sentence-transformers pooling for this model family: the mean of the
//! per-token hidden states over the attention mask, then L2 normalisation.

/// Pools `hidden` (`[rows, seq_len, dim]`, row-major) over `attention_mask`
/// (`[rows, seq_len]`) into `[rows, dim]`, each row L2-normalised.
///
/// Matches sentence-transformers: the mask count is clamped at 1e-9 and the
/// norm at 1e-12 (`torch.nn.functional.normalize`), so no input divides by zero.
pub fn mean_pool_normalized(
    hidden: &[f32],
    attention_mask: &[i64],
    rows: usize,
    seq_len: usize,
    dim: usize,
) -> Vec<f32> {
    debug_assert_eq!(hidden.len(), rows * seq_len * dim);
    debug_assert_eq!(attention_mask.len(), rows * seq_len);
    let mut pooled = vec![0f32; rows * dim];
    for row in 0..rows {
        let out = &mut pooled[row * dim..(row + 1) * dim];
        let mut count = 0f32;
        for tok in 0..seq_len {
            if attention_mask[row * seq_len + tok] == 0 {
                continue;
            }
            count += 1.0;
            let h = &hidden[(row * seq_len + tok) * dim..(row * seq_len + tok + 1) * dim];
            for (o, &x) in out.iter_mut().zip(h) {
                *o += x;
            }
        }
        let count = count.max(1e-9);
        out.iter_mut().for_each(|o| *o /= count);
        l2_normalize(out);
    }
    pooled
}

/// Scales `v` to unit L2 norm (norm clamped at 1e-12, as PyTorch does).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_positions_do_not_count() {
        // One row, three positions, the last one padding with a huge value.
        let hidden = [1.0, 0.0, 3.0, 0.0, 1000.0, 1000.0];
        let pooled = mean_pool_normalized(&hidden, &[1, 1, 0], 1, 3, 2);
        // mean of (1,0) and (3,0) is (2,0) → normalised (1,0)
        assert_eq!(pooled, vec![1.0, 0.0]);
    }

    #[test]
    fn rows_are_unit_length() {
        let hidden = [3.0, 4.0, 6.0, 8.0];
        let pooled = mean_pool_normalized(&hidden, &[1, 1], 1, 2, 2);
        assert!((pooled[0] - 0.6).abs() < 1e-6 && (pooled[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn zero_vector_stays_finite() {
        let pooled = mean_pool_normalized(&[0.0, 0.0], &[0], 1, 1, 2);
        assert!(pooled.iter().all(|x| x.is_finite()));
    }
}
