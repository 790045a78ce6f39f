//! When a classifier updates itself: the seed's "retrain once enough
//! corrections are pending", with the app's gates (idle, charging). The
//! rules live here; the binding only asks the browser whether it is idle or
//! charging and starts the update this says to start.

use std::cell::Cell;

use crate::store::SampleId;
use crate::UpdateConfig;

/// How automatic updates behave (from `ClassifierOptions.autoUpdate` over
/// the bundle's defaults, see [`super::options`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoUpdatePolicy {
    pub enabled: bool,
    /// Pending corrections that start an update (at least 1).
    pub threshold: usize,
    /// Wait until the browser is idle (`requestIdleCallback`) to train.
    pub only_when_idle: bool,
    /// Train only while charging, where the browser says (the Battery
    /// Status API); where it cannot tell, charging is assumed.
    pub only_while_charging: bool,
    /// The update's settings.
    pub config: UpdateConfig,
}

/// The policy and what it remembers between corrections.
#[derive(Debug)]
pub struct AutoUpdater {
    policy: AutoUpdatePolicy,
    /// The newest sample when the last automatic update started: after a
    /// rejected candidate, the next attempt waits for `threshold` new
    /// corrections instead of retrying (and failing the same way) on every
    /// one.
    attempted_through: Cell<SampleId>,
}

impl AutoUpdater {
    pub fn new(policy: AutoUpdatePolicy) -> Self {
        AutoUpdater {
            policy,
            attempted_through: Cell::new(0),
        }
    }

    pub fn policy(&self) -> &AutoUpdatePolicy {
        &self.policy
    }

    /// Whether an update is due after a correction: enabled, `pending`
    /// corrections at the threshold, as many new ones since the last
    /// attempt, and no update already asked for.
    pub fn due(&self, pending: usize, newest_sample: SampleId, update_pending: bool) -> bool {
        let since_last_attempt =
            newest_sample.saturating_sub(self.attempted_through.get()) as usize;
        self.policy.enabled
            && pending >= self.policy.threshold
            && since_last_attempt >= self.policy.threshold
            && !update_pending
    }

    /// Whether the charging gate lets a due update start; `charging` is the
    /// browser's answer (`None`: it cannot tell). A refused start is not
    /// counted as an attempt: the update waits for the charger (the browser
    /// adapter asks again at each change of the battery's state), and a
    /// correction made while charging starts it too.
    pub fn charging_allows(&self, charging: Option<bool>) -> bool {
        !self.policy.only_while_charging || charging.unwrap_or(true)
    }

    /// Forgets the last attempt: the store was erased, and its sample ids
    /// start again from 1 (else the next attempt would wait for ids past
    /// the old ones).
    pub fn forget_attempts(&self) {
        self.attempted_through.set(0);
    }

    /// Records the start of an attempt if it is still due (the gates are
    /// checked asynchronously: two corrections may both have found it due);
    /// only the caller that gets `true` starts the update.
    pub fn begin_attempt(
        &self,
        pending: usize,
        newest_sample: SampleId,
        update_pending: bool,
    ) -> bool {
        if !self.due(pending, newest_sample, update_pending) {
            return false;
        }
        self.attempted_through.set(newest_sample);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn updater(threshold: usize) -> AutoUpdater {
        AutoUpdater::new(AutoUpdatePolicy {
            enabled: true,
            threshold,
            only_when_idle: false,
            only_while_charging: false,
            config: UpdateConfig::default(),
        })
    }

    #[test]
    fn due_at_the_threshold_and_not_before() {
        let auto = updater(3);
        assert!(!auto.due(2, 2, false));
        assert!(auto.due(3, 3, false));
        assert!(!auto.due(3, 3, true), "an update is already pending");
        let disabled = AutoUpdater::new(AutoUpdatePolicy {
            enabled: false,
            ..auto.policy().clone()
        });
        assert!(!disabled.due(100, 100, false));
    }

    #[test]
    fn after_an_attempt_the_next_waits_for_threshold_new_corrections() {
        let auto = updater(3);
        assert!(auto.begin_attempt(3, 3, false));
        // The candidate was rejected: 4 and 5 pending, but too few new.
        assert!(!auto.due(4, 4, false));
        assert!(!auto.due(5, 5, false));
        assert!(auto.due(6, 6, false));
    }

    #[test]
    fn only_one_of_two_racing_corrections_starts_the_update() {
        let auto = updater(3);
        assert!(auto.due(3, 3, false) && auto.due(4, 4, false));
        assert!(auto.begin_attempt(4, 4, false));
        assert!(!auto.begin_attempt(3, 3, false));
    }

    #[test]
    fn the_charging_gate_defers_without_counting_an_attempt() {
        let auto = AutoUpdater::new(AutoUpdatePolicy {
            only_while_charging: true,
            ..updater(3).policy().clone()
        });
        assert!(auto.due(3, 3, false));
        assert!(!auto.charging_allows(Some(false)));
        // Not counted: the next correction, now charging, starts it.
        assert!(auto.due(4, 4, false));
        assert!(auto.charging_allows(Some(true)));
        assert!(
            auto.charging_allows(None),
            "unknown battery state: assume charging"
        );
        assert!(updater(3).charging_allows(Some(false)), "no gate asked for");
    }
}
