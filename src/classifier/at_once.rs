//! Learning each correction at once: the working head. After a correction
//! the classifier fine-tunes the current version's head on the corrections
//! predictions consult (the newest [`AtOnceSettings::recent`] of them) and
//! the bundle's rehearsal vectors, for a few optimizer steps, and predicts
//! with that head. Where the memory of corrections ([`super::memory`])
//! makes the corrected text itself come out right, this is what carries a
//! correction over to paraphrases further away, as logistic regression
//! refitted after every correction would: the head moves its boundaries.
//!
//! As in every update, only the output rows of the labels the corrections
//! touch learn ([`train_personal_head`]), and a label the current head does
//! not know starts from the rows of the labels it gives that label's
//! corrections, just below them
//! ([`crate::head::personal::imprint_new_labels`]): it learns what
//! tells it apart from them, instead of growing from zero until it
//! outscores them and reaching past them into their neighbours.
//!
//! The classifier learns it a slice of steps at a time ([`Relearning`]):
//! `addFeedback` resolves as soon as the memory holds the correction, and
//! the working head follows between the next messages, so neither the
//! correction nor a prediction waits for the whole fine-tuning.
//!
//! The working head is derived state, never stored: the same corrections,
//! head and settings give the same head (seeded), so opening the store
//! again, another tab and a rollback rebuild it from what is stored.
//! Versions stay the checkpoints; the update at the threshold consolidates
//! every correction into one through the validation gate.

use std::collections::{HashMap, HashSet};

use super::memory::CorrectionMemory;
use crate::bundle::Rehearsal;
use crate::error::Result;
use crate::head::kernels::dot;
use crate::head::personal::{personal_training_set, with_labels, UserSamples};
use crate::head::train::SteppedUpdate;
use crate::head::Head;
use crate::store::SampleId;
use crate::UpdateConfig;

/// How the working head learns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AtOnceSettings {
    /// Off: predictions use the current version's head (and the memory).
    pub enabled: bool,
    /// Optimizer steps per correction. 120: with a fixed seed, twice 60
    /// took less from the untouched intents per correction and over a
    /// stream (docs/benchmarks.md, "Personalization"), for twice the
    /// relearning work (p95 21 ms natively, run in slices).
    pub steps: usize,
    /// The newest corrections trained on: bounds the work per correction
    /// however many are stored (older ones are in the current version once
    /// an update has consolidated them).
    pub recent: usize,
    /// Optimizer steps per slice when the working head learns between other
    /// work (a Web Worker answering messages): a prediction that arrives
    /// meanwhile waits for one slice at most, not for the whole relearning.
    pub slice_steps: usize,
}

impl Default for AtOnceSettings {
    fn default() -> Self {
        AtOnceSettings {
            enabled: true,
            steps: 120,
            recent: 256,
            slice_steps: 10,
        }
    }
}

/// Each recent correction's similarity to every rehearsal vector, by
/// sample id. Which shipped examples the corrections override needs every
/// pair; kept here, a relearning after a correction computes only the new
/// correction's (a dot product per rehearsal vector) instead of every
/// recent one's (256 times that once the store is that full), and the
/// result is the same to the bit.
#[derive(Debug, Default)]
pub struct RehearsalSimilarities {
    by_id: HashMap<SampleId, Box<[f32]>>,
}

impl RehearsalSimilarities {
    /// Forgets every correction (the memory was rebuilt: an id may now
    /// name another text).
    pub fn clear(&mut self) {
        self.by_id.clear();
    }

    /// Keeps the similarities of the corrections at `rows` of `memory`,
    /// computing those not known yet, and forgets the rest; their ids, in
    /// the order of `rows`.
    fn keep_only(
        &mut self,
        rows: &[usize],
        memory: &CorrectionMemory,
        rehearsal: &Rehearsal,
    ) -> Vec<SampleId> {
        let ids: Vec<SampleId> = rows.iter().map(|&row| memory.ids()[row]).collect();
        let wanted: HashSet<SampleId> = ids.iter().copied().collect();
        self.by_id.retain(|id, _| wanted.contains(id));
        let dim = rehearsal.dim.max(1);
        for (&row, &id) in rows.iter().zip(&ids) {
            self.by_id.entry(id).or_insert_with(|| {
                let vector = &memory.vectors()[row * dim..(row + 1) * dim];
                rehearsal
                    .features
                    .chunks_exact(dim)
                    .map(|example| dot(example, vector))
                    .collect()
            });
        }
        ids
    }

    /// The similarities of `ids`, in order (each kept by [`Self::keep_only`]).
    fn of(&self, ids: &[SampleId]) -> Vec<&[f32]> {
        ids.iter().map(|id| &*self.by_id[id]).collect()
    }
}

/// The working head being learned, a slice at a time.
pub struct Relearning(Job);

enum Job {
    /// Nothing to learn (no corrections, or switched off): the working
    /// head is the current one.
    Nothing(Head),
    Learning(Box<SteppedUpdate>),
}

impl Relearning {
    /// Sets up fine-tuning `current` on the newest corrections of `memory`
    /// and the rehearsal vectors (no step runs yet). `current`'s first
    /// `shipped_labels` labels are the bundle's.
    pub fn begin(
        current: &Head,
        shipped_labels: usize,
        memory: &CorrectionMemory,
        rehearsal: &Rehearsal,
        similarities: &mut RehearsalSimilarities,
        defaults: &UpdateConfig,
        settings: AtOnceSettings,
    ) -> Result<Self> {
        if !settings.enabled || memory.is_empty() || settings.steps == 0 {
            return Ok(Relearning(Job::Nothing(current.clone())));
        }
        let (start, labels) = with_labels(current, memory.labels())?;
        let rows: Vec<usize> =
            (memory.len().saturating_sub(settings.recent)..memory.len()).collect();
        let ids = similarities.keep_only(&rows, memory, rehearsal);
        let rehearsal_similarity = similarities.of(&ids);
        let set = personal_training_set(
            &start,
            UserSamples {
                features: memory.vectors(),
                labels: &labels,
                new_labels_from: current.labels().len(),
                own_labels_from: shipped_labels,
                held_out: &[],
                rehearsal_similarity: Some(&rehearsal_similarity),
            },
            &rows,
            rehearsal.rows(),
            defaults.personal,
        )?;
        let config = UpdateConfig {
            // Only the output layer: a hidden layer serves every label.
            freeze_hidden_layer: start.layers().len() > 1,
            max_steps: Some(settings.steps),
            // Enough epochs that the step budget decides.
            epochs: settings.steps,
            validation_fraction: 0.0,
            early_stopping_patience: 0,
            time_budget_ms: None,
            frozen_labels: set.frozen_labels,
            soft_targets: set.soft_targets,
            // The update's own seed, the same for every correction: a seed
            // that changed with each correction (it was the corrections'
            // count) drew every relearning's batches afresh, and the
            // intents nobody corrected swung by a point or more from one
            // correction to the next for no reason the correction gave
            // (half of that churn, personalization benchmark, 2026-12-05).
            ..defaults.clone()
        };
        Ok(Relearning(Job::Learning(Box::new(SteppedUpdate::new(
            set.start,
            set.features,
            set.labels,
            config,
        )?))))
    }

    /// Runs at most `steps` more optimizer steps; true once all have run.
    pub fn advance(&mut self, steps: usize) -> Result<bool> {
        match &mut self.0 {
            Job::Learning(update) => update.advance(steps),
            Job::Nothing(_) => Ok(true),
        }
    }

    /// The working head (running whatever steps remain first).
    pub fn finish(self) -> Result<Head> {
        match self.0 {
            Job::Learning(update) => Ok(update.finish()?.head),
            Job::Nothing(current) => Ok(current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::memory::MemorySettings;

    /// `n` 4-value vectors, each different.
    fn vectors(n: usize, seed: f32) -> Vec<f32> {
        (0..n * 4)
            .map(|i| ((i as f32 + seed) * 0.61).sin())
            .collect()
    }

    #[test]
    fn kept_similarities_are_the_dot_products_of_the_corrections_asked_for() {
        let rehearsal = Rehearsal {
            dim: 4,
            features: vectors(5, 0.0),
            labels: vec![0, 0, 1, 1, 2],
            nearest: Vec::new(),
        };
        let mut memory = CorrectionMemory::new(4, MemorySettings::default());
        let corrections = vectors(6, 100.0);
        for (k, vector) in corrections.chunks_exact(4).enumerate() {
            memory.add(k as SampleId + 10, vector, "mine");
        }
        let expected = |memory: &CorrectionMemory, id: SampleId| -> Vec<f32> {
            let row = memory.ids().iter().position(|&i| i == id).unwrap();
            let vector = &memory.vectors()[row * 4..(row + 1) * 4];
            rehearsal
                .features
                .chunks_exact(4)
                .map(|example| dot(example, vector))
                .collect()
        };
        let mut kept = RehearsalSimilarities::default();
        // A window of three, sliding by one, then one deleted in the middle.
        for rows in [[0, 1, 2], [1, 2, 3], [2, 3, 4]] {
            let window = kept.keep_only(&rows, &memory, &rehearsal);
            assert_eq!(window, rows.map(|r| r as SampleId + 10));
            assert_eq!(kept.by_id.len(), 3, "only the window is kept");
            for (id, similarities) in window.iter().zip(kept.of(&window)) {
                assert_eq!(similarities, expected(&memory, *id), "{id}");
            }
        }
        memory.remove(&[13]);
        let window = kept.keep_only(&[1, 2, 3], &memory, &rehearsal);
        assert_eq!(window, [11, 12, 14]);
        for (id, similarities) in window.iter().zip(kept.of(&window)) {
            assert_eq!(similarities, expected(&memory, *id), "{id}");
        }
    }
}
