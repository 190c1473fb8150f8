//! Replaying a user's ledger under a set of rules: what each event would have earned,
//! caps included, had those rules been in force when it was stored. Stores use it for
//! `recompute`, inside the transaction that rewrites the user when applying.

use std::collections::HashMap;

use super::caps::Usage;
use super::rules::Rules;

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

/// Replays `entries` (any order) under `rules`, returning one result per entry in the
/// same order. Caps count in the order events were stored, as at ingest. An event of a
/// type the rules no longer define keeps what it has: removing a type stops new events
/// of it, it does not take back what was earned.
pub fn replay(rules: &Rules, entries: &[LedgerEntry]) -> Vec<Replayed> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| entries[a].id.cmp(&entries[b].id));
    let mut used: HashMap<(&str, i64), Usage> = HashMap::new();
    let mut out = vec![
        Replayed {
            points: 0,
            base_points: 0
        };
        entries.len()
    ];
    for i in order {
        let e = &entries[i];
        out[i] = match rules.get(&e.event_type) {
            None => Replayed {
                points: e.points,
                base_points: e.base_points,
            },
            Some(t) => {
                let points = match &t.cap {
                    Some(cap) => {
                        let (from, _) = cap.window(e.ts_ms);
                        let u = used.entry((e.event_type.as_str(), from)).or_default();
                        let p = cap.award(t.points, *u);
                        *u = u.after(p);
                        p
                    }
                    None => t.points,
                };
                Replayed {
                    points,
                    base_points: t.points,
                }
            }
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn entry(id: &str, event_type: &str, ts_ms: i64, points: i64) -> LedgerEntry {
        LedgerEntry {
            id: id.into(),
            event_type: event_type.into(),
            ts_ms,
            points,
            base_points: points,
        }
    }

    #[test]
    fn new_points_and_caps_apply_in_stored_order() {
        let rules = Rules::parse(
            Path::new("events.yaml"),
            "events:\n  - {name: PURCHASE, point: 15}\n  - {name: LOGIN, point: 2, cap: {period: day, max_events: 1}}\n",
        )
        .unwrap();
        let day = 86_400_000;
        // Listed out of order: "b" was stored after "a" although its time is earlier.
        let entries = [
            entry("b", "LOGIN", 10, 1),
            entry("a", "LOGIN", 20, 1),
            entry("c", "PURCHASE", 30, 10),
            entry("d", "LOGIN", day + 5, 1),
            entry("e", "GONE", 40, 7),
        ];
        let r: Vec<(i64, i64)> = replay(&rules, &entries)
            .iter()
            .map(|r| (r.points, r.base_points))
            .collect();
        assert_eq!(r, [(0, 2), (2, 2), (15, 15), (2, 2), (7, 7)]);
    }
}
