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
//! touch learn ([`train_personal_head`]).
//!
//! The working head is derived state, never stored: the same corrections,
//! head and settings give the same head (seeded), so opening the store
//! again, another tab and a rollback rebuild it from what is stored.
//! Versions stay the checkpoints; the update at the threshold consolidates
//! every correction into one through the validation gate.

use std::ops::ControlFlow;

use super::memory::CorrectionMemory;
use crate::bundle::Rehearsal;
use crate::error::Result;
use crate::head::personal::{train_personal_head, with_labels, RehearsalRows, UserSamples};
use crate::head::Head;
use crate::UpdateConfig;

/// How the working head learns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AtOnceSettings {
    /// Off: predictions use the current version's head (and the memory).
    pub enabled: bool,
    /// Optimizer steps per correction.
    pub steps: usize,
    /// The newest corrections trained on: bounds the work per correction
    /// however many are stored (older ones are in the current version once
    /// an update has consolidated them).
    pub recent: usize,
}

impl Default for AtOnceSettings {
    fn default() -> Self {
        AtOnceSettings {
            enabled: true,
            steps: 60,
            recent: 256,
        }
    }
}

/// `current` fine-tuned on the newest corrections of `memory` and the
/// rehearsal vectors; `current` itself without corrections (or when off).
pub fn working_head(
    current: &Head,
    memory: &CorrectionMemory,
    rehearsal: &Rehearsal,
    rehearsal_nearest: &[f32],
    defaults: &UpdateConfig,
    settings: AtOnceSettings,
) -> Result<Head> {
    if !settings.enabled || memory.is_empty() || settings.steps == 0 {
        return Ok(current.clone());
    }
    let (start, labels) = with_labels(current, memory.labels())?;
    let rows: Vec<usize> = (memory.len().saturating_sub(settings.recent)..memory.len()).collect();
    let config = UpdateConfig {
        // Only the output layer: a hidden layer serves every label.
        freeze_hidden_layer: start.layers().len() > 1,
        max_steps: Some(settings.steps),
        // Enough epochs that the step budget decides.
        epochs: settings.steps,
        validation_fraction: 0.0,
        early_stopping_patience: 0,
        time_budget_ms: None,
        seed: memory.len() as u64,
        ..defaults.clone()
    };
    let outcome = train_personal_head(
        &start,
        UserSamples {
            features: memory.vectors(),
            labels: &labels,
        },
        &rows,
        RehearsalRows {
            features: &rehearsal.features,
            labels: &rehearsal.labels,
            nearest: Some(rehearsal_nearest),
        },
        &config,
        &|| 0.0,
        &mut |_| ControlFlow::Continue(()),
    )?;
    Ok(outcome.outcome.head)
}
