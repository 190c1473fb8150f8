//! Caps: an event type may award at most so many points, or points for at most so many
//! events, per user and per calendar period of event time. Events over the cap are still
//! stored (the ledger is complete), with 0 points or the remainder up to the cap.
//!
//! Every store applies [`Cap::award`] to the user's usage in the event's period as the
//! ledger has it at that moment, in the same transaction as the insert, so caps hold
//! under concurrency and inside batches.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::period::Period;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Cap {
    /// The calendar period (UTC, by event time) the cap counts over.
    pub period: Period,
    /// Most points the type awards a user per period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_points: Option<i64>,
    /// Most events of the type that earn points per user per period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_events: Option<i64>,
}

/// What the ledger already holds for one user, type and period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Events that earned points (capped-out events do not count towards `max_events`).
    pub awarded_events: i64,
    pub points: i64,
}

impl Cap {
    /// Inclusive start and exclusive end of the period containing `ts_ms`
    /// (`i64::MIN..i64::MAX` for `all`).
    pub fn window(&self, ts_ms: i64) -> (i64, i64) {
        let key = self.period.containing(ts_ms);
        (
            key.start_ms.unwrap_or(i64::MIN),
            key.end_ms.unwrap_or(i64::MAX),
        )
    }

    /// Points an event worth `base` earns given `used`, the usage before it.
    pub fn award(&self, base: i64, used: Usage) -> i64 {
        if base <= 0 {
            return base;
        }
        if let Some(max) = self.max_events {
            if used.awarded_events >= max {
                return 0;
            }
        }
        match self.max_points {
            Some(max) => base.min((max - used.points).max(0)),
            None => base,
        }
    }
}

impl Cap {
    /// Whether `used` leaves nothing more to award.
    pub fn exhausted(&self, used: Usage) -> bool {
        self.max_events.is_some_and(|m| used.awarded_events >= m)
            || self.max_points.is_some_and(|m| used.points >= m)
    }

    /// Whether an event awarded `points` on top of `used` is the one that used the
    /// cap up: true once per user and period.
    pub fn reached_by(&self, used: Usage, points: i64) -> bool {
        !self.exhausted(used) && self.exhausted(used.after(points))
    }
}

impl Usage {
    /// The usage after an event awarded `points`.
    pub fn after(self, points: i64) -> Usage {
        Usage {
            awarded_events: self.awarded_events + i64::from(points > 0),
            points: self.points + points,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(max_points: Option<i64>, max_events: Option<i64>) -> Cap {
        Cap {
            period: Period::Day,
            max_points,
            max_events,
        }
    }

    #[test]
    fn max_points_gives_the_remainder_then_nothing() {
        let c = cap(Some(25), None);
        let mut used = Usage::default();
        let mut awarded = Vec::new();
        for _ in 0..4 {
            let p = c.award(10, used);
            used = used.after(p);
            awarded.push(p);
        }
        assert_eq!(awarded, [10, 10, 5, 0]);
    }

    #[test]
    fn max_events_counts_only_events_that_earned_points() {
        let c = cap(None, Some(2));
        let mut used = Usage::default();
        let awarded: Vec<i64> = (0..4)
            .map(|_| {
                let p = c.award(3, used);
                used = used.after(p);
                p
            })
            .collect();
        assert_eq!(awarded, [3, 3, 0, 0]);
    }

    #[test]
    fn the_cap_is_reached_by_exactly_one_event() {
        for c in [cap(Some(25), None), cap(None, Some(2))] {
            let mut used = Usage::default();
            let reached: Vec<bool> = (0..5)
                .map(|_| {
                    let p = c.award(10, used);
                    let r = c.reached_by(used, p);
                    used = used.after(p);
                    r
                })
                .collect();
            assert_eq!(
                reached.iter().filter(|r| **r).count(),
                1,
                "{c:?}: {reached:?}"
            );
        }
    }

    #[test]
    fn window_is_the_calendar_period_of_the_event() {
        let c = cap(Some(1), None);
        // 2026-11-30T12:00:00Z
        let (start, end) = c.window(1_796_040_000_000);
        assert_eq!(end - start, 86_400_000);
        assert!(start <= 1_796_040_000_000 && 1_796_040_000_000 < end);
        let all = Cap {
            period: Period::All,
            ..c
        };
        assert_eq!(all.window(0), (i64::MIN, i64::MAX));
    }
}
