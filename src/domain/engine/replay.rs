//! Replaying a user's ledger under a set of rules: the transition of ingest run over
//! every stored event from an empty state, as if those rules had been in force when
//! each was stored. Stores use it for `recompute`, inside the transaction that
//! rewrites the user when applying.

use super::state::{Changes, UserState};
use super::transition::{apply, Bonus, Incoming, RecordOutcome, Rule};
use crate::domain::progression::{is_bonus, Progress};
use crate::domain::rules::Rules;

/// One stored event, as replay needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Server id: UUIDv7, so ordering by it is the order events were stored in.
    pub id: String,
    pub event_type: String,
    pub ts_ms: i64,
    pub points: i64,
    pub base_points: i64,
}

/// What replay decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub points: i64,
    pub base_points: i64,
}

/// A replayed ledger: per entry, and the user's state and counters as they come out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// One per entry, in the order the entries were given.
    pub entries: Vec<Replayed>,
    pub state: UserState,
    /// The counters from zero: per type and per leaderboard period.
    pub counters: Changes,
    /// Bonus entries of the ledger the replay does not award again (indexes).
    pub removed: Vec<usize>,
    /// Bonus entries the replay awards that the ledger lacks.
    pub added: Vec<Bonus>,
}

impl Replay {
    /// Indexes of the entries whose points or base points the replay changes.
    pub fn changed(&self, entries: &[LedgerEntry]) -> Vec<usize> {
        (0..entries.len())
            .filter(|&i| {
                (entries[i].points, entries[i].base_points)
                    != (self.entries[i].points, self.entries[i].base_points)
            })
            .collect()
    }
}

/// Replays `entries` (any order) under `rules`. Caps count in the order events were
/// stored, as at ingest. An event of a type the rules no longer define keeps what it
/// has: removing a type stops new events of it, it does not take back what was earned.
///
/// Achievements, streaks and bonus entries are judged afresh, in the user's time zone
/// (`current`'s): bonus entries of the ledger are not replayed but compared with
/// those the replay awards, by type and event time, which identify one.
pub fn replay(user_id: &str, rules: &Rules, current: &Progress, entries: &[LedgerEntry]) -> Replay {
    let mut order: Vec<usize> = (0..entries.len())
        .filter(|&i| !is_bonus(&entries[i].event_type))
        .collect();
    order.sort_by(|&a, &b| entries[a].id.cmp(&entries[b].id));
    let mut base = Vec::with_capacity(entries.len());
    let incoming: Vec<Incoming> = order
        .iter()
        .map(|&i| {
            let e = &entries[i];
            let rule = match rules.get(&e.event_type) {
                Some(t) => Rule::Earn {
                    base_points: rules.progression().boosted(&t.name, e.ts_ms, t.points),
                    cap: t.cap,
                },
                None => Rule::Keep { points: e.points },
            };
            base.push(match rules.get(&e.event_type) {
                Some(t) => t.points,
                None => e.base_points,
            });
            Incoming {
                id: &e.id,
                event_type: &e.event_type,
                ts_ms: e.ts_ms,
                received_ms: 0,
                // Ledger entries are distinct events by construction.
                dedup_key: e.id.clone(),
                rule,
                stored: None,
                progression: rules.progression(),
            }
        })
        .collect();
    let mut state = UserState {
        progress: Progress {
            timezone: current.timezone.clone(),
            ..Progress::default()
        },
        ..UserState::default()
    };
    let step = apply(user_id, &mut state, &incoming);
    // Bonus entries keep what they are unless the comparison below says otherwise.
    let mut out: Vec<Replayed> = entries
        .iter()
        .map(|e| Replayed {
            points: e.points,
            base_points: e.base_points,
        })
        .collect();
    for (k, &i) in order.iter().enumerate() {
        let points = match &step.outcomes[k] {
            RecordOutcome::Created { points, .. } => *points,
            RecordOutcome::Duplicate { .. } => 0,
        };
        out[i] = Replayed {
            points,
            base_points: base[k],
        };
    }
    let mut added = Vec::new();
    let mut removed: Vec<usize> = (0..entries.len())
        .filter(|&i| is_bonus(&entries[i].event_type))
        .collect();
    for bonus in step.bonuses {
        let same = removed.iter().position(|&i| {
            entries[i].event_type == bonus.event_type && entries[i].ts_ms == bonus.ts_ms
        });
        match same {
            Some(k) => {
                let i = removed.swap_remove(k);
                out[i] = Replayed {
                    points: bonus.points,
                    base_points: bonus.points,
                };
            }
            None => added.push(bonus),
        }
    }
    removed.sort_unstable();
    // The wallet: replayed earnings under the spends, expiries and holds it has.
    state.progress.wallet = match &rules.progression().wallet {
        Some(w) => current.wallet.rebased(&state.progress.wallet, w),
        None => current.wallet.clone(),
    };
    Replay {
        entries: out,
        state,
        counters: step.changes,
        removed,
        added,
    }
}
