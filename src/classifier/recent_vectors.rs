//! The feature vectors of the last few texts embedded one at a time.
//!
//! A person corrects the text whose prediction they just saw, then looks at
//! the prediction again: three encoder runs on one text, each ~10 ms on a
//! phone-class core, for a vector that is the same every time (one text
//! embedded alone is deterministic). Keeping the last few lets the
//! correction and the prediction after it skip the encoder. Only single-text
//! calls read or fill it, so a vector from it is bit for bit the one the
//! encoder would give; batches (padded to their longest text) do not use it.

use std::collections::VecDeque;

/// A small most-recently-used map from text to feature vector.
#[derive(Debug, Default)]
pub struct RecentVectors {
    /// Most recent first.
    entries: VecDeque<(String, Vec<f32>)>,
}

impl RecentVectors {
    /// Texts kept: enough for a person going back and forth between a few
    /// sentences, small enough that a linear search costs nothing.
    pub const CAPACITY: usize = 16;
    /// Longer texts are not kept (a correction's text is capped at 16 KiB
    /// anyway), so the map holds at most 256 KiB of text.
    pub const MAX_TEXT_BYTES: usize = 16 * 1024;

    /// The vector of `text`, if it is one of the last few embedded.
    pub fn get(&mut self, text: &str) -> Option<Vec<f32>> {
        let at = self.entries.iter().position(|(t, _)| t == text)?;
        let entry = self.entries.remove(at)?;
        let vector = entry.1.clone();
        self.entries.push_front(entry);
        Some(vector)
    }

    /// Remembers `text`'s vector, forgetting the least recently used past
    /// [`Self::CAPACITY`].
    pub fn put(&mut self, text: &str, vector: &[f32]) {
        if text.len() > Self::MAX_TEXT_BYTES {
            return;
        }
        if let Some(at) = self.entries.iter().position(|(t, _)| t == text) {
            self.entries.remove(at);
        }
        self.entries.push_front((text.to_owned(), vector.to_vec()));
        self.entries.truncate(Self::CAPACITY);
    }

    /// Forgets every text (the user deleted their corrections).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recently_used_texts() {
        let mut recent = RecentVectors::default();
        for i in 0..RecentVectors::CAPACITY {
            recent.put(&format!("t{i}"), &[i as f32]);
        }
        // Using t0 makes it the most recent, so t1 is the one to go.
        assert_eq!(recent.get("t0"), Some(vec![0.0]));
        recent.put("new", &[99.0]);
        assert_eq!(recent.len(), RecentVectors::CAPACITY);
        assert_eq!(recent.get("t1"), None);
        assert_eq!(recent.get("t0"), Some(vec![0.0]));
        assert_eq!(recent.get("new"), Some(vec![99.0]));
        // Putting a known text again replaces it, without a duplicate.
        recent.put("new", &[100.0]);
        assert_eq!(recent.get("new"), Some(vec![100.0]));
        assert_eq!(recent.len(), RecentVectors::CAPACITY);
    }

    #[test]
    fn long_texts_are_not_kept() {
        let mut recent = RecentVectors::default();
        let long = "x".repeat(RecentVectors::MAX_TEXT_BYTES + 1);
        recent.put(&long, &[1.0]);
        assert!(recent.is_empty());
        assert_eq!(recent.get(&long), None);
    }
}
