//! Training a personal head: the one path every kind of update takes (an
//! update through the classifier's gate, a retrain after an encoder
//! change). It starts from the shipped head with the user's new labels
//! added and trains on the user's samples plus the shipped rehearsal
//! vectors that the user's samples do not override.

use std::ops::ControlFlow;

use super::kernels::{dot, dot2x4};
use super::train::{run_update, TrainingSet, UpdateConfig, UpdateEvent, UpdateOutcome};
use super::Head;
use crate::error::Result;

/// Labelled feature vectors shipped with a bundle: `labels[i]` is an index
/// into the shipped head's labels.
#[derive(Debug, Clone, Copy, Default)]
pub struct RehearsalRows<'a> {
    pub features: &'a [f32],
    pub labels: &'a [u32],
    /// Each row's similarity to its nearest other row
    /// ([`nearest_rehearsal_similarity`]) if the caller keeps it: it depends
    /// on the bundle alone, and costs rows² dot products to compute.
    pub nearest: Option<&'a [f32]>,
}

/// The user's samples: `labels.len()` vectors, row-major, with each
/// sample's label index in the head being trained.
#[derive(Debug, Clone, Copy)]
pub struct UserSamples<'a> {
    pub features: &'a [f32],
    pub labels: &'a [usize],
}

/// A trained personal head and what it was trained on.
#[derive(Debug, Clone)]
pub struct PersonalOutcome {
    pub outcome: UpdateOutcome,
    pub user_samples: usize,
    /// Rehearsal rows trained on, and those left out because a user sample
    /// of another label is their nearest neighbour.
    pub rehearsal_kept: usize,
    pub rehearsal_overridden: usize,
}

/// `base` with every label of `labels` added (in order of first
/// appearance; the others keep their rows exactly), and each label's index.
pub fn with_labels(base: &Head, labels: &[String]) -> Result<(Head, Vec<usize>)> {
    let mut head = base.clone();
    let indices = labels
        .iter()
        .map(|label| head.add_label(label))
        .collect::<Result<Vec<_>>>()?;
    Ok((head, indices))
}

/// What a personal head trains on: the user's samples in `rows`, then the
/// rehearsal rows they do not override, and the labels it leaves as they
/// are.
#[derive(Debug, Clone)]
pub struct PersonalTrainingSet {
    /// Row-major, `labels.len()` vectors.
    pub features: Vec<f32>,
    pub labels: Vec<usize>,
    /// [`untouched_labels`].
    pub frozen_labels: Vec<usize>,
    pub user_samples: usize,
    pub rehearsal_kept: usize,
    pub rehearsal_overridden: usize,
}

/// The samples and frozen labels of a personal update of `start` (the
/// shipped head with the user's labels, see [`with_labels`]): the user's
/// samples in `rows` and the rehearsal rows they do not override
/// ([`rehearsal_rows_to_keep`]).
pub fn personal_training_set(
    start: &Head,
    user: UserSamples<'_>,
    rows: &[usize],
    rehearsal: RehearsalRows<'_>,
) -> Result<PersonalTrainingSet> {
    let dim = start.input_dim();
    let user_rows: Vec<(&[f32], usize)> = rows
        .iter()
        .map(|&row| (&user.features[row * dim..(row + 1) * dim], user.labels[row]))
        .collect();
    let computed;
    let nearest = match rehearsal.nearest {
        Some(nearest) => nearest,
        None => {
            computed = nearest_rehearsal_similarity(rehearsal.features, dim);
            &computed
        }
    };
    let kept = keep_rehearsal_rows(
        rehearsal.labels,
        rehearsal.features,
        dim,
        &user_rows,
        nearest,
    );
    let mut features = Vec::with_capacity((user_rows.len() + kept.len()) * dim);
    let mut labels = Vec::with_capacity(user_rows.len() + kept.len());
    for (vector, label) in &user_rows {
        features.extend_from_slice(vector);
        labels.push(*label);
    }
    for &row in &kept {
        features.extend_from_slice(&rehearsal.features[row * dim..(row + 1) * dim]);
        labels.push(rehearsal.labels[row] as usize);
    }
    Ok(PersonalTrainingSet {
        features,
        labels,
        frozen_labels: untouched_labels(start, &user_rows)?,
        user_samples: user_rows.len(),
        rehearsal_kept: kept.len(),
        rehearsal_overridden: rehearsal.labels.len() - kept.len(),
    })
}

/// Trains `start` (the shipped head with the user's labels, see
/// [`with_labels`]) on its [`personal_training_set`], pulled toward `start`
/// if `config.l2_sp` asks for it. Only the output rows of the labels the
/// samples touch learn ([`untouched_labels`] stay as they are).
pub fn train_personal_head(
    start: &Head,
    user: UserSamples<'_>,
    rows: &[usize],
    rehearsal: RehearsalRows<'_>,
    config: &UpdateConfig,
    now_ms: &dyn Fn() -> f64,
    observer: &mut dyn FnMut(&UpdateEvent) -> ControlFlow<()>,
) -> Result<PersonalOutcome> {
    let set = personal_training_set(start, user, rows, rehearsal)?;
    let config = &UpdateConfig {
        frozen_labels: set.frozen_labels,
        ..config.clone()
    };
    let outcome = run_update(
        start,
        None,
        TrainingSet {
            features: &set.features,
            labels: &set.labels,
        },
        config,
        now_ms,
        observer,
    )?;
    Ok(PersonalOutcome {
        outcome,
        user_samples: set.user_samples,
        rehearsal_kept: set.rehearsal_kept,
        rehearsal_overridden: set.rehearsal_overridden,
    })
}

/// The labels of `head` that none of the user's samples touches: neither
/// the label a sample is given nor the one `head` gives its text. An update
/// leaves their output rows exactly as they are: a text of such a label
/// loses ground only where a touched label gains it, which the rehearsal
/// vectors of the untouched labels argue against. Without this, 50
/// corrections of a few intents cost the intents nobody corrected 10 points
/// of accuracy (issue 20).
pub fn untouched_labels(head: &Head, user: &[(&[f32], usize)]) -> Result<Vec<usize>> {
    let mut touched = vec![false; head.labels().len()];
    for (vector, label) in user {
        touched[*label] = true;
        touched[super::network::argmax(&head.probabilities(vector)?)] = true;
    }
    Ok((0..touched.len()).filter(|&l| !touched[l]).collect())
}

/// Which rehearsal rows an update trains on. The bundle's vectors keep the
/// head from forgetting labels the user never corrects; but where the user
/// has taught otherwise (relabelled an intent), the shipped examples there
/// would argue with the user. A rehearsal row is left out when its nearest
/// neighbour (cosine; the vectors are unit length) among all other rows is
/// a user sample of another label: corrections override the shipped
/// examples they sit closest to, and nothing else.
pub fn rehearsal_rows_to_keep(
    features: &[f32],
    labels: &[u32],
    dim: usize,
    user: &[(&[f32], usize)],
) -> Vec<usize> {
    let nearest = nearest_rehearsal_similarity(features, dim);
    keep_rehearsal_rows(labels, features, dim, user, &nearest)
}

/// Each rehearsal row's cosine similarity to its nearest other row
/// (`-inf` for a lone row).
///
/// Every pair once, two rows against four others at a time ([`dot2x4`]
/// sums each product exactly as [`dot`] does, so the result is the same):
/// for a bundle's 528 rows, 140k products of 384 values that a classifier
/// computes as it opens, 32 ms of a start in the browser one at a time.
pub fn nearest_rehearsal_similarity(features: &[f32], dim: usize) -> Vec<f32> {
    let rows = features.len() / dim.max(1);
    let row = |r: usize| &features[r * dim..(r + 1) * dim];
    let mut nearest = vec![f32::NEG_INFINITY; rows];
    let mut note = |a: usize, b: usize, similarity: f32| {
        nearest[a] = nearest[a].max(similarity);
        nearest[b] = nearest[b].max(similarity);
    };
    let mut r = 0;
    while r + 2 <= rows {
        note(r, r + 1, dot(row(r), row(r + 1)));
        let mut o = r + 2;
        while o + 4 <= rows {
            let tile = dot2x4(
                [row(r), row(r + 1)],
                [row(o), row(o + 1), row(o + 2), row(o + 3)],
            );
            for (i, similarities) in tile.iter().enumerate() {
                for (k, &similarity) in similarities.iter().enumerate() {
                    note(r + i, o + k, similarity);
                }
            }
            o += 4;
        }
        for o in o..rows {
            note(r, o, dot(row(r), row(o)));
            note(r + 1, o, dot(row(r + 1), row(o)));
        }
        r += 2;
    }
    // An odd last row met every other one above.
    nearest
}

/// [`rehearsal_rows_to_keep`] given each row's nearest-row similarity.
fn keep_rehearsal_rows(
    labels: &[u32],
    features: &[f32],
    dim: usize,
    user: &[(&[f32], usize)],
    nearest: &[f32],
) -> Vec<usize> {
    (0..labels.len())
        .filter(|&r| {
            let v = &features[r * dim..(r + 1) * dim];
            let nearest_user = user
                .iter()
                .map(|(u, label)| (dot(v, u), *label))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match nearest_user {
                Some((similarity, label)) => {
                    !(similarity > nearest[r] && label != labels[r] as usize)
                }
                None => true,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_similarity_is_the_pairwise_maximum_exactly() {
        // Odd row counts and a dimension with a tail: every edge of the tiles.
        for (rows, dim) in [(0, 8), (1, 8), (2, 5), (7, 19), (37, 19), (64, 384)] {
            let mut state = 0x9e37_79b9_u32;
            let features: Vec<f32> = (0..rows * dim)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as f32 / u32::MAX as f32 - 0.5
                })
                .collect();
            let mut expected = vec![f32::NEG_INFINITY; rows];
            for a in 0..rows {
                for b in 0..rows {
                    if a != b {
                        let s = dot(
                            &features[a * dim..(a + 1) * dim],
                            &features[b * dim..(b + 1) * dim],
                        );
                        expected[a] = expected[a].max(s);
                    }
                }
            }
            assert_eq!(
                nearest_rehearsal_similarity(&features, dim),
                expected,
                "{rows} × {dim}"
            );
        }
    }
}
