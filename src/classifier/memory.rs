//! The memory of corrections: every stored correction's feature vector,
//! consulted by each prediction, so that a correction takes effect before
//! the next prediction instead of waiting for the next update.
//!
//! A prediction whose text sits close to a correction (cosine similarity of
//! their unit feature vectors) moves toward that correction's label: not at
//! all below [`MemorySettings::lower`], wholly (up to
//! [`MemorySettings::max_weight`]) from [`MemorySettings::upper`] up, in
//! proportion between. The same text corrected again is similarity 1, so
//! `predict(text)` returns the corrected label at once; texts far from every
//! correction (the labels the user never touched) keep the head's answer
//! exactly. A correction moves a text only if no shipped example (the
//! bundle's rehearsal vectors) of another label is nearer that text than
//! the correction is: the memory answers as a nearest neighbour among
//! everything the classifier was shown, so a correction of a new label
//! does not take a shipped intent's sentences that are nearer that
//! intent's own examples (issue 20: the untouched intents kept 0.7 points
//! more on the personalization benchmark's new-intent streams). The
//! corrected text itself is the exception: its own correction is never
//! outranked (`SAME_TEXT_SIMILARITY`).
//!
//! Only a correction within [`MemorySettings::lower`] of a text can move
//! it, so a prediction needs the nearest correction only among those: a
//! coarse scan of int8 copies of the vectors (a quarter of the bytes, exact
//! integer dot products) with a proven bound on its error leaves a handful
//! of candidates, and the f32 vectors decide among them exactly as a full
//! f32 scan would. With 5,000 corrections stored the full scan was ~1.2 ms
//! of a 14 ms prediction in Chromium (issue 20: predict "unchanged").
//!
//! The head still learns the corrections in the next update; the memory
//! keeps honouring them after it (a correction held out for the
//! validation gate is not trained on, and a rejected candidate learns
//! nothing), until the user deletes them.

use super::Prediction;
use crate::bundle::int8_row;
use crate::head::kernels::{dot, dot4_i8, dot_i8};
use crate::head::LabelProbability;
use crate::store::{SampleId, TrainingData};

/// Where a correction starts and stops deciding a prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemorySettings {
    /// Below this similarity a correction does not move a prediction.
    pub lower: f32,
    /// From this similarity up a correction moves it by `max_weight`.
    pub upper: f32,
    /// The nearest correction's share of the blended probabilities at most:
    /// below 1, so the head's view still shows for a corrected text.
    pub max_weight: f32,
}

impl Default for MemorySettings {
    /// A narrow band: the text itself and near-verbatim rewordings (a
    /// changed name or number) follow the correction; anything the encoder
    /// places further away is the head's to decide until an update.
    fn default() -> Self {
        MemorySettings {
            lower: 0.85,
            upper: 0.95,
            max_weight: 0.95,
        }
    }
}

/// The bundle's labelled examples (its rehearsal vectors), which a
/// correction must be nearer a text than to move its prediction.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShippedExamples<'a> {
    /// Row-major, unit length, the memory's dimension.
    pub features: &'a [f32],
    /// Each row's label: an index into `label_names`.
    pub labels: &'a [u32],
    pub label_names: &'a [String],
}

impl ShippedExamples<'_> {
    /// Whether an example of a label other than `label` is more similar to
    /// `vector` than `similarity`.
    fn outrank(&self, vector: &[f32], label: &str, similarity: f32) -> bool {
        // A label the bundle does not have (a new one) has no examples.
        let own = self.label_names.iter().position(|name| name == label);
        self.features
            .chunks_exact(vector.len().max(1))
            .zip(self.labels)
            .any(|(example, &l)| Some(l as usize) != own && dot(vector, example) > similarity)
    }
}

/// From this similarity up a correction is of the text being predicted
/// (a text's vector is the same each time this encoder embeds it, so its
/// own correction is at 1 within f32 rounding), and no shipped example
/// outranks it. Without this, a shipped example of the very sentence the
/// user corrected could: the bundle's vectors are int8-rounded copies
/// computed by another build of the encoder, so their similarity to the
/// text comes out up to ~0.001 either side of 1 (in WebKit, one of 50
/// corrected weather sentences kept its shipped label after an update).
const SAME_TEXT_SIMILARITY: f32 = 0.999;

/// The corrections' vectors and labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CorrectionMemory {
    dim: usize,
    settings: MemorySettings,
    /// Row-major, `ids.len() × dim`, unit length.
    vectors: Vec<f32>,
    labels: Vec<String>,
    ids: Vec<SampleId>,
    /// `vectors` rounded to int8: the coarse scan of [`Self::nearest_within`].
    coarse: Int8Rows,
}

/// Vectors rounded to int8, each row with its own scale: row `r` is about
/// `scales[r] · values[r]`, every component within `scales[r] / 2`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Int8Rows {
    values: Vec<i8>,
    scales: Vec<f32>,
    /// `scales[r] · Σ|values[r]|`: the rounded row's L1 norm, for the bound.
    l1: Vec<f32>,
}

/// A query vector rounded as [`Int8Rows`] rounds a row, but kept in i16
/// (the width the integer dot product multiplies in).
struct Int16Query {
    values: Vec<i16>,
    scale: f32,
    /// The f32 query's L1 norm, for the bound.
    l1: f32,
}

/// `vector` rounded as a bundle rounds its rehearsal vectors
/// ([`int8_row`]), except that a vector with a non-finite component gets
/// scale NaN, which makes every bound NaN and so every row a candidate for
/// the exact comparison.
fn round_to_int8(vector: &[f32]) -> (impl Iterator<Item = i8> + '_, f32) {
    let (scale, values) = int8_row(vector);
    let scale = if vector.iter().all(|x| x.is_finite()) {
        scale
    } else {
        f32::NAN
    };
    (values, scale)
}

impl Int8Rows {
    fn push(&mut self, vector: &[f32]) {
        let (values, scale) = round_to_int8(vector);
        let start = self.values.len();
        self.values.extend(values);
        let magnitude: i32 = self.values[start..].iter().map(|&v| (v as i32).abs()).sum();
        self.scales.push(scale);
        self.l1.push(scale * magnitude as f32);
    }

    /// Row `from` copied over row `to` (rows of `dim` values).
    fn copy_row(&mut self, from: usize, to: usize, dim: usize) {
        self.values
            .copy_within(from * dim..(from + 1) * dim, to * dim);
        self.scales[to] = self.scales[from];
        self.l1[to] = self.l1[from];
    }

    fn truncate(&mut self, rows: usize, dim: usize) {
        self.values.truncate(rows * dim);
        self.scales.truncate(rows);
        self.l1.truncate(rows);
    }
}

impl Int16Query {
    fn new(vector: &[f32]) -> Self {
        let (values, scale) = round_to_int8(vector);
        Int16Query {
            values: values.map(i16::from).collect(),
            scale,
            l1: vector.iter().map(|x| x.abs()).sum(),
        }
    }
}

/// Added to every bound: the f32 arithmetic's own rounding (the exact dot
/// product of two unit vectors of 384 components is within ~1e-5 of the
/// real one, the coarse estimate within ~1e-6 of its integer value) is far
/// below this.
const ROUNDING_SLACK: f32 = 1e-3;

/// The correction nearest to a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Nearest {
    pub sample_id: SampleId,
    pub label: String,
    pub similarity: f32,
}

impl CorrectionMemory {
    pub fn new(dim: usize, settings: MemorySettings) -> Self {
        CorrectionMemory {
            dim,
            settings,
            ..Self::default()
        }
    }

    /// The samples of `data` after the memory mark `mark` (oldest first),
    /// with their vectors.
    pub fn from_training_data(
        dim: usize,
        settings: MemorySettings,
        data: &TrainingData,
        mark: SampleId,
    ) -> Self {
        let mut memory = Self::new(dim, settings);
        for row in data.rows_after(mark) {
            memory.add(
                data.sample_ids[row],
                &data.features[row * dim..(row + 1) * dim],
                &data.labels[row],
            );
        }
        memory
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn settings(&self) -> MemorySettings {
        self.settings
    }

    pub fn set_settings(&mut self, settings: MemorySettings) {
        self.settings = settings;
    }

    /// The corrections' vectors, row-major, oldest first.
    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    /// The corrections' sample ids, oldest first.
    pub fn ids(&self) -> &[SampleId] {
        &self.ids
    }

    /// The corrections' labels, oldest correction first (with repeats).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Remembers a correction (its vector must be `dim` long).
    pub fn add(&mut self, id: SampleId, vector: &[f32], label: &str) {
        debug_assert_eq!(vector.len(), self.dim);
        self.vectors.extend_from_slice(vector);
        self.coarse.push(vector);
        self.labels.push(label.into());
        self.ids.push(id);
    }

    /// Forgets corrections (deleted or evicted samples).
    pub fn remove(&mut self, ids: &[SampleId]) {
        let dim = self.dim;
        let mut keep = 0;
        for row in 0..self.ids.len() {
            if ids.contains(&self.ids[row]) {
                continue;
            }
            self.ids.swap(keep, row);
            self.labels.swap(keep, row);
            self.vectors
                .copy_within(row * dim..(row + 1) * dim, keep * dim);
            self.coarse.copy_row(row, keep, dim);
            keep += 1;
        }
        self.ids.truncate(keep);
        self.labels.truncate(keep);
        self.vectors.truncate(keep * dim);
        self.coarse.truncate(keep, dim);
    }

    /// The most similar correction; of equally similar ones (the same text
    /// corrected twice), the newest.
    pub fn nearest(&self, vector: &[f32]) -> Option<Nearest> {
        // No floor: every row is a candidate, compared in f32.
        self.nearest_within(vector, f32::NEG_INFINITY)
    }

    /// The most similar correction among those at least `floor` similar to
    /// `vector` (of equally similar ones, the newest), or `None`: exactly
    /// [`Self::nearest`]'s answer when that is at least `floor`.
    ///
    /// The int8 scan estimates each similarity as `q̂·v̂ · s_q · s_v`; with
    /// `q = s_q q̂ + e_q` and `v = s_v v̂ + e_v` (every component of `e`
    /// within half its scale), the estimate misses `q·v` by
    /// `q·e_v + s_v v̂·e_q`, at most `(s_v ‖q‖₁ + s_q ‖s_v v̂‖₁) / 2`. Only
    /// rows whose estimate plus that bound reaches `floor` are compared in
    /// f32 — the same [`dot`] as the full scan, so the same similarities.
    pub fn nearest_within(&self, vector: &[f32], floor: f32) -> Option<Nearest> {
        let dim = self.dim;
        let mut best: Option<(usize, f32)> = None;
        for row in self.candidates(vector, floor) {
            let similarity = dot(vector, &self.vectors[row * dim..(row + 1) * dim]);
            if similarity >= floor && best.is_none_or(|(_, s)| similarity >= s) {
                best = Some((row, similarity));
            }
        }
        best.map(|(row, similarity)| Nearest {
            sample_id: self.ids[row],
            label: self.labels[row].clone(),
            similarity,
        })
    }

    /// The rows, in order, whose similarity to `vector` the int8 scan
    /// cannot rule out reaching `floor`.
    fn candidates(&self, vector: &[f32], floor: f32) -> Vec<usize> {
        let dim = self.dim;
        let rows = self.ids.len();
        let mut candidates = Vec::new();
        if rows == 0 {
            return candidates;
        }
        let query = Int16Query::new(vector);
        let coarse = &self.coarse;
        let int8_row = |r: usize| &coarse.values[r * dim..(r + 1) * dim];
        let may_reach = |r: usize, integer_dot: i32| {
            let estimate = integer_dot as f32 * query.scale * coarse.scales[r];
            let bound = 0.5 * (coarse.scales[r] * query.l1 + query.scale * coarse.l1[r]);
            let highest = estimate + bound + ROUNDING_SLACK;
            // A NaN (a non-finite vector) rules nothing out.
            highest >= floor || highest.is_nan()
        };
        let mut row = 0;
        while row + 4 <= rows {
            let dots = dot4_i8(
                &query.values,
                [
                    int8_row(row),
                    int8_row(row + 1),
                    int8_row(row + 2),
                    int8_row(row + 3),
                ],
            );
            for (k, integer_dot) in dots.into_iter().enumerate() {
                if may_reach(row + k, integer_dot) {
                    candidates.push(row + k);
                }
            }
            row += 4;
        }
        for r in row..rows {
            if may_reach(r, dot_i8(&query.values, int8_row(r))) {
                candidates.push(r);
            }
        }
        candidates
    }

    /// How much the nearest correction decides a prediction at this
    /// similarity: 0 below `lower`, `max_weight` from `upper` up.
    pub fn weight(&self, similarity: f32) -> f32 {
        let MemorySettings {
            lower,
            upper,
            max_weight,
        } = self.settings;
        if similarity < lower {
            return 0.0;
        }
        let ramp = ((similarity - lower) / (upper - lower).max(f32::EPSILON)).min(1.0);
        max_weight * ramp
    }

    /// The head's ranked probabilities for `vector`, moved toward the
    /// nearest correction's label by [`CorrectionMemory::weight`]; a label
    /// the head does not know yet joins the list. Unchanged (bit for bit)
    /// when no correction is within `lower`, or when one of `shipped`'s
    /// examples of another label is nearer `vector` than the correction
    /// and the correction is not of `vector`'s text itself
    /// (`SAME_TEXT_SIMILARITY`).
    pub fn adjust(
        &self,
        vector: &[f32],
        head: Vec<LabelProbability>,
        shipped: ShippedExamples<'_>,
    ) -> Prediction {
        let mut probabilities = head;
        // A correction below `lower` has weight 0: only those within it count.
        if let Some(nearest) = self.nearest_within(vector, self.settings.lower) {
            let w = self.weight(nearest.similarity);
            // The corrected text itself is the user's to decide, even when
            // the bundle ships the same sentence under another label.
            let same_text = nearest.similarity >= SAME_TEXT_SIMILARITY;
            // Only texts near a correction pay for the scan of the examples.
            if w > 0.0
                && (same_text || !shipped.outrank(vector, &nearest.label, nearest.similarity))
            {
                for p in &mut probabilities {
                    p.probability *= 1.0 - w;
                }
                match probabilities.iter_mut().find(|p| p.label == nearest.label) {
                    Some(p) => p.probability += w,
                    None => probabilities.push(LabelProbability {
                        label: nearest.label,
                        probability: w,
                    }),
                }
                // Stable: ties keep the head's order.
                probabilities.sort_by(|a, b| b.probability.total_cmp(&a.probability));
            }
        }
        Prediction {
            label: probabilities[0].label.clone(),
            probability: probabilities[0].probability,
            probabilities,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn ranked(pairs: &[(&str, f32)]) -> Vec<LabelProbability> {
        pairs
            .iter()
            .map(|&(label, probability)| LabelProbability {
                label: label.into(),
                probability,
            })
            .collect()
    }

    const NONE: ShippedExamples<'static> = ShippedExamples {
        features: &[],
        labels: &[],
        label_names: &[],
    };

    fn memory() -> CorrectionMemory {
        let mut m = CorrectionMemory::new(3, MemorySettings::default());
        m.add(1, &unit(&[1.0, 0.0, 0.0]), "Fitness");
        m.add(2, &unit(&[0.0, 1.0, 0.0]), "lights");
        m
    }

    #[test]
    fn the_corrected_text_itself_takes_the_corrected_label_even_a_new_one() {
        let head = ranked(&[("weather", 0.98), ("lights", 0.02)]);
        let p = memory().adjust(&unit(&[1.0, 0.0, 0.0]), head, NONE);
        assert_eq!(p.label, "Fitness");
        assert!((p.probability - 0.95).abs() < 1e-6, "{}", p.probability);
        let labels: Vec<&str> = p.probabilities.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["Fitness", "weather", "lights"]);
        let total: f32 = p.probabilities.iter().map(|l| l.probability).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn texts_far_from_every_correction_keep_the_heads_answer_exactly() {
        let head = ranked(&[("weather", 0.7), ("lights", 0.3)]);
        let far = unit(&[0.5, 0.5, 1.0]); // similarity ≈ 0.41 to both
        let p = memory().adjust(&far, head.clone(), NONE);
        assert_eq!(p.probabilities, head);
        assert_eq!(p.label, "weather");
        let empty = CorrectionMemory::new(3, MemorySettings::default());
        assert_eq!(empty.adjust(&far, head.clone(), NONE).probabilities, head);
    }

    #[test]
    fn between_the_bounds_a_correction_moves_the_prediction_in_proportion() {
        let m = memory();
        assert_eq!(m.weight(0.80), 0.0);
        assert!((m.weight(0.90) - 0.475).abs() < 1e-6);
        assert_eq!(m.weight(0.95), 0.95);
        assert_eq!(m.weight(1.0), 0.95);
        // A text at similarity 0.9 to "lights": 0.475 of it goes there.
        let near = unit(&[0.0, 0.9, (1.0f32 - 0.81).sqrt()]);
        let p = m.adjust(&near, ranked(&[("weather", 0.8), ("lights", 0.2)]), NONE);
        assert_eq!(p.label, "lights");
        assert!((p.probability - (0.2 * 0.525 + 0.475)).abs() < 1e-4);
    }

    #[test]
    fn a_shipped_example_of_another_label_nearer_the_text_keeps_the_heads_answer() {
        let m = memory();
        let names = ["weather".to_string(), "lights".to_string()];
        // A text at similarity 0.9 to the "lights" correction.
        let near = unit(&[0.0, 0.9, (1.0f32 - 0.81).sqrt()]);
        let head = ranked(&[("weather", 0.8), ("lights", 0.2)]);
        let shipped = |example: &[f32], label: u32| {
            let (features, labels) = (unit(example), [label]);
            m.adjust(
                &near,
                head.clone(),
                ShippedExamples {
                    features: &features,
                    labels: &labels,
                    label_names: &names,
                },
            )
            .label
        };
        // A "weather" example nearer the text (0.98) than the correction.
        assert_eq!(shipped(&[0.0, 0.8, 0.6], 0), "weather");
        // One further away (0.60), or of the correction's own label: the
        // correction moves the text.
        assert_eq!(shipped(&[0.0, 0.2, 1.0], 0), "lights");
        assert_eq!(shipped(&[0.0, 0.8, 0.6], 1), "lights");
        // The corrected text itself: no example outranks its correction,
        // not one of the same text with another label, nor its rounded
        // copy that comes out a hair nearer (a bundle's vectors are int8
        // and computed by another build of the encoder).
        let beside_a_weather_copy = |text: &[f32], scale: f32| {
            let copy: Vec<f32> = text.iter().map(|x| x * scale).collect();
            let shipped = ShippedExamples {
                features: &copy,
                labels: &[0],
                label_names: &names,
            };
            m.adjust(text, head.clone(), shipped).label
        };
        let text = unit(&[0.0, 1.0, 0.0]);
        assert_eq!(beside_a_weather_copy(&text, 1.0), "lights");
        assert_eq!(beside_a_weather_copy(&text, 1.0008), "lights");
        // At 0.9992 to the correction it is still the same text; at 0.9982
        // the nearer example decides again.
        assert_eq!(
            beside_a_weather_copy(&unit(&[0.0, 1.0, 0.04]), 1.0008),
            "lights"
        );
        assert_eq!(
            beside_a_weather_copy(&unit(&[0.0, 1.0, 0.06]), 1.0008),
            "weather"
        );
    }

    #[test]
    fn the_newest_of_two_corrections_of_the_same_text_wins_and_deleted_ones_are_forgotten() {
        let mut m = memory();
        m.add(3, &unit(&[1.0, 0.0, 0.0]), "Steps");
        let text = unit(&[1.0, 0.0, 0.0]);
        assert_eq!(m.nearest(&text).unwrap().label, "Steps");
        m.remove(&[3]);
        assert_eq!(m.nearest(&text).unwrap().label, "Fitness");
        m.remove(&[1, 2]);
        assert!(m.is_empty() && m.nearest(&text).is_none());
    }

    /// xorshift64*: reproducible pseudo-random numbers in `[-1, 1)`.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
            bits as f32 / (1u64 << 23) as f32 - 1.0
        }
        fn vector(&mut self, dim: usize) -> Vec<f32> {
            unit(&(0..dim).map(|_| self.next()).collect::<Vec<_>>())
        }
    }

    /// `cos · a + sin · (b with a's component removed)`: a unit vector at
    /// similarity `cos` to the unit vector `a`.
    fn at_similarity(a: &[f32], b: &[f32], cos: f32) -> Vec<f32> {
        let along: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let across = unit(
            &b.iter()
                .zip(a)
                .map(|(y, x)| y - along * x)
                .collect::<Vec<_>>(),
        );
        let sin = (1.0 - cos * cos).sqrt();
        unit(
            &a.iter()
                .zip(&across)
                .map(|(x, y)| cos * x + sin * y)
                .collect::<Vec<_>>(),
        )
    }

    /// The row most similar to `query` at `floor` or above (of equal ones,
    /// the last) and its similarity, by a plain f32 scan.
    fn full_f32_scan(rows: &[Vec<f32>], query: &[f32], floor: f32) -> Option<(usize, f32)> {
        rows.iter()
            .enumerate()
            .map(|(r, row)| (r, dot(query, row)))
            .filter(|&(_, s)| s >= floor)
            .fold(None, |best, (r, s)| match best {
                Some((_, b)) if s < b => best,
                _ => Some((r, s)),
            })
    }

    #[test]
    fn the_int8_scan_never_drops_a_row_that_reaches_the_floor_and_drops_the_far_ones() {
        let dim = 384;
        let mut rng = Rng(0x5eed);
        let query = rng.vector(dim);
        let mut m = CorrectionMemory::new(dim, MemorySettings::default());
        // 1,000 unrelated corrections, and 203 at similarities 0.80 to 1.00
        // in steps of 0.001 around the query (one with a dominant component,
        // the worst case for a per-row scale), in shuffled order.
        let mut rows: Vec<Vec<f32>> = (0..1000).map(|_| rng.vector(dim)).collect();
        for step in 0..=200 {
            rows.push(at_similarity(
                &query,
                &rng.vector(dim),
                0.8 + step as f32 * 0.001,
            ));
        }
        let mut spiky = rng.vector(dim);
        spiky[7] = 40.0;
        rows.push(at_similarity(&query, &unit(&spiky), 0.86));
        rows.push(query.clone());
        for i in (1..rows.len()).rev() {
            let j = ((rng.next() + 1.0) * 0.5 * i as f32) as usize;
            rows.swap(i, j.min(i));
        }
        for (i, row) in rows.iter().enumerate() {
            m.add(i as u64 + 1, row, &format!("l{i}"));
        }
        for floor in [0.0, 0.5, 0.85, 0.9, 0.95, 0.999, 1.0] {
            let candidates = m.candidates(&query, floor);
            let mut reaching = 0;
            for (r, row) in rows.iter().enumerate() {
                let similarity = dot(&query, row);
                if similarity >= floor {
                    reaching += 1;
                    assert!(
                        candidates.contains(&r),
                        "row {r} at {similarity}, floor {floor}"
                    );
                }
                if floor > 0.5 && similarity < floor - 0.1 {
                    assert!(
                        !candidates.contains(&r),
                        "row {r} at {similarity}, floor {floor}"
                    );
                }
            }
            assert!(reaching > 0 || floor > 0.99, "floor {floor}");
            // Within 0.1 of the floor: at most the rows built near the query.
            if floor > 0.5 {
                assert!(candidates.len() <= 204, "{} candidates", candidates.len());
            }
            // The exact answer among them: a full f32 scan's.
            let full = full_f32_scan(&rows, &query, floor);
            let found = m.nearest_within(&query, floor);
            assert_eq!(
                found.map(|n| (n.sample_id, n.similarity.to_bits())),
                full.map(|(r, s)| (r as u64 + 1, s.to_bits())),
                "floor {floor}"
            );
        }
        // Removing rows keeps the int8 copies in step with the f32 ones.
        let ids: Vec<u64> = (1..=600).collect();
        m.remove(&ids);
        let rest = &rows[600..];
        let expected = full_f32_scan(rest, &query, 0.85);
        assert_eq!(
            m.nearest_within(&query, 0.85).map(|n| n.sample_id),
            expected.map(|(r, _)| r as u64 + 601)
        );
        let mut rebuilt = CorrectionMemory::new(dim, MemorySettings::default());
        for (i, row) in rest.iter().enumerate() {
            rebuilt.add(i as u64 + 601, row, &format!("l{}", i + 600));
        }
        assert_eq!(m, rebuilt);
    }

    #[test]
    fn a_non_finite_vector_is_compared_in_f32_and_never_nearest() {
        let mut m = memory();
        m.add(3, &[f32::NAN, 0.0, 0.0], "broken");
        assert_eq!(
            m.nearest_within(&unit(&[1.0, 0.0, 0.0]), 0.85)
                .unwrap()
                .label,
            "Fitness"
        );
        assert!(m.nearest_within(&[f32::NAN, 1.0, 0.0], 0.0).is_none());
        assert!(m.nearest_within(&[0.0, 0.0, 0.0], 0.5).is_none());
    }

    #[test]
    fn nearest_agrees_with_a_plain_scan_past_the_blocks_of_four() {
        let dim = 5;
        let mut m = CorrectionMemory::new(dim, MemorySettings::default());
        let vectors: Vec<Vec<f32>> = (0..11)
            .map(|i| {
                unit(
                    &(0..dim)
                        .map(|d| ((i * 7 + d * 3) % 5) as f32 + 0.5)
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        for (i, v) in vectors.iter().enumerate() {
            m.add(i as u64 + 1, v, &format!("l{i}"));
        }
        let query = unit(&[0.3, 1.0, 0.2, 0.9, 0.1]);
        let expected = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>()))
            .fold(
                (0, f32::MIN),
                |best, (i, s)| if s >= best.1 { (i, s) } else { best },
            );
        let nearest = m.nearest(&query).unwrap();
        assert_eq!(nearest.sample_id, expected.0 as u64 + 1);
        assert!((nearest.similarity - expected.1).abs() < 1e-5);
    }
}
