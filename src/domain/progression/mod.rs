//! Progression: levels, streaks, achievements and boosts, configured in `events.yaml`
//! beside the event types. The rules live here; the engine's transition applies them
//! ([`advance`]) to the part of the user's state they need ([`Progress`]).

pub mod advance;
pub mod calendar;
pub mod config;
mod progress;
#[cfg(test)]
mod tests;

pub use calendar::LocalPeriod;
pub use progress::{Progress, StreakState, Unlock};

use serde::Serialize;
use utoipa::ToSchema;

/// Everything of progression one rules version configures.
#[derive(Debug, Clone, Default)]
pub struct Progression {
    /// Ascending by points (checked at load).
    pub levels: Vec<Level>,
    pub streaks: Vec<Streak>,
    pub achievements: Vec<Achievement>,
    pub boosts: Vec<Boost>,
    /// The spendable balance, when the file has a `wallet` section.
    pub wallet: Option<crate::domain::wallet::WalletRules>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Level {
    pub level: i64,
    pub name: String,
    /// All-time points from which the level holds.
    pub points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streak {
    pub id: String,
    pub name: String,
    pub event_types: Vec<String>,
    pub period: LocalPeriod,
    pub freezes: Option<Freezes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freezes {
    pub max: i64,
    pub earn_every: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Achievement {
    pub id: String,
    pub name: String,
    pub description: String,
    pub when: Condition,
    pub repeatable: bool,
    /// Bonus points awarded with each unlock (0 for none).
    pub points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `count` events of the type, all time or within one local period.
    Events {
        event_type: String,
        count: i64,
        period: Option<LocalPeriod>,
    },
    /// All-time points reached.
    Points { points: i64 },
    /// A streak of that length reached.
    Streak { streak: String, length: i64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Boost {
    pub id: String,
    pub multiplier: f64,
    /// `None`: every type.
    pub event_types: Option<Vec<String>>,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// No progression: for replanning notices of events whose rules are not at hand.
pub static NONE: Progression = Progression {
    levels: Vec::new(),
    streaks: Vec::new(),
    achievements: Vec::new(),
    boosts: Vec::new(),
    wallet: None,
};

/// The ledger's event type of an achievement's bonus entries: lower case, so that no
/// configured event type (upper case) can be mistaken for one.
pub const BONUS_PREFIX: &str = "achievement:";

pub fn bonus_type(achievement_id: &str) -> String {
    format!("{BONUS_PREFIX}{achievement_id}")
}

/// Whether a ledger entry of this type is an achievement's bonus, not an event.
pub fn is_bonus(event_type: &str) -> bool {
    event_type.starts_with(BONUS_PREFIX)
}

impl Progression {
    /// Whether the transition needs the user's [`Progress`]: stores load and write it
    /// only then, so a file without streaks and achievements costs nothing more.
    pub fn tracks_progress(&self) -> bool {
        !self.streaks.is_empty() || !self.achievements.is_empty() || self.wallet.is_some()
    }

    /// The level held with `points` all-time points: the highest whose threshold they
    /// reach (`None` without levels, or below the first).
    pub fn level_at(&self, points: i64) -> Option<&Level> {
        self.levels.iter().rev().find(|l| points >= l.points)
    }

    /// The level after `level`, if any.
    pub fn next_level(&self, points: i64) -> Option<&Level> {
        self.levels.iter().find(|l| l.points > points)
    }

    pub fn achievement(&self, id: &str) -> Option<&Achievement> {
        self.achievements.iter().find(|a| a.id == id)
    }

    /// Points an event of `event_type` at `ts_ms` worth `base` earns under the boosts
    /// in force at that event time: `base` times every matching multiplier, rounded
    /// toward zero, within the bounds of any event's points.
    pub fn boosted(&self, event_type: &str, ts_ms: i64, base: i64) -> i64 {
        let mut factor = 1.0f64;
        let mut any = false;
        for b in &self.boosts {
            let types_match = b
                .event_types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == event_type));
            if types_match && b.from_ms <= ts_ms && ts_ms < b.to_ms {
                factor *= b.multiplier;
                any = true;
            }
        }
        if !any {
            return base;
        }
        let max = crate::domain::rules::MAX_ABS_POINTS as f64;
        ((base as f64) * factor).trunc().clamp(-max, max) as i64
    }
}
