//! Progression's part of the transition: what one stored event does to the user's
//! progress, in order: streaks, then counts, then every achievement whose condition
//! now holds (bonus points may unlock a points achievement in turn).

use super::calendar;
pub use super::progress::StreakChange as StreakChangeKind;
use super::progress::{Progress, StreakChange, Unlock};
use super::{Condition, Progression};

/// What an event did, for the engine to turn into notices and bonus entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Unlocked {
        id: String,
        name: String,
        times: i64,
        /// Bonus points awarded with it (already added to the points given).
        bonus: i64,
        /// The local period it was unlocked for, when judged per period.
        period: Option<i64>,
    },
    Streak {
        id: String,
        change: StreakChange,
        length: i64,
        longest: i64,
        freezes: i64,
    },
}

/// Applies one stored event of `event_type` at `ts_ms` to `p`; `points` is the user's
/// all-time total with the event counted, and gains any bonus.
pub fn on_event(
    rules: &Progression,
    p: &mut Progress,
    event_type: &str,
    ts_ms: i64,
    points: &mut i64,
) -> Vec<Effect> {
    let tz = p.zone();
    let mut effects = Vec::new();
    for s in &rules.streaks {
        if !s.event_types.iter().any(|t| t == event_type) {
            continue;
        }
        let period = calendar::index(s.period, tz, ts_ms);
        let state = p.streaks.entry(s.id.clone()).or_default();
        for change in state.record(period, s.freezes) {
            effects.push(Effect::Streak {
                id: s.id.clone(),
                change,
                length: state.length,
                longest: state.longest,
                freezes: state.freezes,
            });
        }
    }
    for a in &rules.achievements {
        if let Condition::Events {
            event_type: t,
            period,
            ..
        } = &a.when
        {
            if t != event_type {
                continue;
            }
            let idx = period.map_or(0, |per| calendar::index(per, tz, ts_ms));
            let c = p.counts.entry(a.id.clone()).or_insert((idx, 0));
            if idx > c.0 {
                *c = (idx, 0);
            }
            // An event of an earlier period than the one counted is not counted.
            if idx == c.0 {
                c.1 += 1;
            }
        }
    }
    loop {
        let mut unlocked_any = false;
        for a in &rules.achievements {
            let (met, period) = match &a.when {
                Condition::Events { count, period, .. } => match p.counts.get(&a.id) {
                    Some(&(idx, n)) => (n >= *count, period.map(|_| idx)),
                    None => (false, None),
                },
                Condition::Points { points: target } => (*points >= *target, None),
                Condition::Streak { streak, length } => (
                    p.streaks.get(streak).is_some_and(|s| s.length >= *length),
                    None,
                ),
            };
            let fresh = match p.achievements.get(&a.id) {
                None => true,
                Some(u) => a.repeatable && period.is_some() && u.period < period,
            };
            if !met || !fresh {
                continue;
            }
            let u = p.achievements.entry(a.id.clone()).or_insert(Unlock {
                first_ms: ts_ms,
                ..Unlock::default()
            });
            u.times += 1;
            u.last_ms = ts_ms;
            u.period = period;
            *points += a.points;
            effects.push(Effect::Unlocked {
                id: a.id.clone(),
                name: a.name.clone(),
                times: u.times,
                bonus: a.points,
                period,
            });
            unlocked_any = true;
        }
        if !unlocked_any {
            return effects;
        }
    }
}
