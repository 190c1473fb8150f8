//! The part of a user's state progression needs: the user's time zone, what they
//! unlocked, their streaks, and the counts event-count achievements are judged on.
//! Stores keep it as one JSON value per user, written with the events that change it.

use std::collections::BTreeMap;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::calendar::{self, LocalPeriod};
use super::{Freezes, Streak};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// IANA name; unset is UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub achievements: BTreeMap<String, Unlock>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub streaks: BTreeMap<String, StreakState>,
    /// Per event-count achievement: the local period counted (0 for all time) and
    /// the user's events of the type in it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, (i64, i64)>,
    /// The spendable balance (empty without a `wallet` section).
    #[serde(
        default,
        skip_serializing_if = "crate::domain::wallet::Wallet::is_empty"
    )]
    pub wallet: crate::domain::wallet::Wallet,
}

/// An unlocked achievement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlock {
    /// Event time of the event that first unlocked it.
    pub first_ms: i64,
    /// Event time of the latest unlock (repeatable ones).
    pub last_ms: i64,
    pub times: i64,
    /// The local period of the latest unlock, for those judged per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
}

/// A streak as of the last qualifying event; [`StreakState::view`] reads it at a
/// given time (a streak whose periods passed without an event reads as broken).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreakState {
    /// Consecutive periods with a qualifying event (frozen periods do not count).
    pub length: i64,
    pub longest: i64,
    /// The period of the latest qualifying event, and of the streak's first.
    pub last: i64,
    pub started: i64,
    /// Freezes held.
    pub freezes: i64,
}

/// What a qualifying event did to a streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreakChange {
    /// A new period counted (a new streak counts its first).
    Extended,
    /// Missed periods were covered by this many freezes.
    Frozen(i64),
    /// The streak had lapsed: this was its length. A new one starts with the event.
    Broken(i64),
}

impl StreakChange {
    pub fn as_str(self) -> &'static str {
        match self {
            StreakChange::Extended => "extended",
            StreakChange::Frozen(_) => "frozen",
            StreakChange::Broken(_) => "broken",
        }
    }
}

impl StreakState {
    /// Counts a qualifying event in local period `p`. An event in the streak's latest
    /// period, or before it (a late event), changes nothing.
    pub fn record(&mut self, p: i64, freezes: Option<Freezes>) -> Vec<StreakChange> {
        let mut changes = Vec::new();
        if self.length > 0 && p <= self.last {
            return changes;
        }
        if self.length > 0 {
            let missed = p - self.last - 1;
            if missed > self.freezes {
                changes.push(StreakChange::Broken(self.length));
                self.length = 0;
            } else if missed > 0 {
                self.freezes -= missed;
                changes.push(StreakChange::Frozen(missed));
            }
        }
        if self.length == 0 {
            self.started = p;
            self.freezes = 0;
        }
        self.length += 1;
        self.last = p;
        self.longest = self.longest.max(self.length);
        if let Some(f) = freezes {
            if self.length % f.earn_every == 0 {
                self.freezes = (self.freezes + 1).min(f.max);
            }
        }
        changes.push(StreakChange::Extended);
        changes
    }

    /// The streak as it stands at `now_ms`.
    pub fn view(&self, rule: &Streak, tz: Tz, now_ms: i64) -> StreakView {
        let now = calendar::index(rule.period, tz, now_ms);
        let missed = now - self.last - 1;
        if self.length == 0 || missed > self.freezes {
            return StreakView {
                length: 0,
                longest: self.longest,
                started_ms: None,
                expires_ms: None,
                freezes: 0,
            };
        }
        // It breaks when the period after the last one a freeze can cover passes.
        let breaks = self.last + self.freezes + 2;
        StreakView {
            length: self.length,
            longest: self.longest,
            started_ms: Some(calendar::start_ms(rule.period, tz, self.started)),
            expires_ms: Some(calendar::start_ms(rule.period, tz, breaks)),
            freezes: self.freezes - missed.max(0),
        }
    }
}

/// A streak as a reader sees it at some instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreakView {
    pub length: i64,
    pub longest: i64,
    pub started_ms: Option<i64>,
    /// When it breaks unless a qualifying event comes first.
    pub expires_ms: Option<i64>,
    pub freezes: i64,
}

impl Progress {
    pub fn zone(&self) -> Tz {
        calendar::zone_or_utc(self.timezone.as_deref())
    }

    /// Current count towards an event-count achievement at `now_ms` (a period
    /// achievement's count of an earlier period reads 0).
    pub fn count_now(&self, id: &str, period: Option<LocalPeriod>, now_ms: i64) -> i64 {
        let Some(&(p, n)) = self.counts.get(id) else {
            return 0;
        };
        match period {
            None => n,
            Some(per) if calendar::index(per, self.zone(), now_ms) == p => n,
            Some(_) => 0,
        }
    }
}
