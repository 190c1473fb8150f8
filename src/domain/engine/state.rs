//! A user's state as the engine sees it, and the changes a transition makes.

use std::collections::BTreeMap;

use crate::domain::caps::Usage;
use crate::domain::period::PeriodKey;

/// The events and points of one event type for one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeCount {
    pub events: i64,
    pub points: i64,
}

/// Where a cap counts: the event type and the start of the cap's period (Unix ms,
/// `i64::MIN` for `all`).
pub type CapWindow = (String, i64);

/// What the rules need to judge a user's next events, and the totals they produce.
///
/// A store may load part of it: the transition reads `points` and the cap windows that
/// [`UserState::cap_windows`] names for the events at hand, and only adds to the rest
/// (its [`Changes`] say by how much). After a [`super::replay`] it is whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserState {
    /// All-time points: the sum of the points of the user's ledger.
    pub points: i64,
    /// Events in the user's ledger.
    pub events: i64,
    pub by_type: BTreeMap<String, TypeCount>,
    /// What each cap window holds so far.
    pub caps: BTreeMap<CapWindow, Usage>,
    /// Time zone, streaks and achievements: loaded when the rules track progress.
    pub progress: crate::domain::progression::Progress,
}

impl UserState {
    /// The state the counters of `by_type` describe (caps left to be loaded).
    pub fn from_types(by_type: impl IntoIterator<Item = (String, TypeCount)>) -> UserState {
        let mut state = UserState::default();
        for (ty, count) in by_type {
            state.points += count.points;
            state.events += count.events;
            state.by_type.insert(ty, count);
        }
        state
    }

    /// The cap windows events of `event_type` at `ts_ms` under `cap` count in: what a
    /// store must load into `caps` before handing such an event to the transition.
    pub fn cap_window(event_type: &str, ts_ms: i64, cap: &crate::domain::caps::Cap) -> CapWindow {
        (event_type.to_owned(), cap.window(ts_ms).0)
    }

    /// The usage of a window as the ledger shows it: the points of the events of that
    /// type in that period, in any order.
    pub fn usage_of(points: impl IntoIterator<Item = i64>) -> Usage {
        points.into_iter().fold(Usage::default(), Usage::after)
    }
}

/// How a transition changes the counters derived from the ledger: the deltas a store
/// adds to its per-type totals and leaderboards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub points: i64,
    pub events: i64,
    /// Per event type: events and points added.
    pub by_type: BTreeMap<String, TypeCount>,
    /// Per leaderboard period key (`all` included): points added.
    pub periods: BTreeMap<String, i64>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Counts one stored event of `event_type` at `ts_ms` earning `points`.
    pub fn add(&mut self, event_type: &str, ts_ms: i64, points: i64) {
        self.points += points;
        self.events += 1;
        super::transition::add_to(&mut self.by_type, event_type, 1, points);
        for key in PeriodKey::keys_for_event(ts_ms) {
            *self.periods.entry(key).or_default() += points;
        }
    }

    /// Folds `other`, a later transition of the same user, into these changes.
    pub fn merge(&mut self, other: &Changes) {
        self.points += other.points;
        self.events += other.events;
        for (ty, c) in &other.by_type {
            super::transition::add_to(&mut self.by_type, ty, c.events, c.points);
        }
        for (key, points) in &other.periods {
            *self.periods.entry(key.clone()).or_default() += points;
        }
    }
}
