//! The engine's laws, held by property tests over random requests and batch splits.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::domain::caps::Cap;
use crate::domain::period::Period;
use crate::domain::rules::Rules;

const DAY: i64 = 86_400_000;
const RULES: &str = "events:
  - {name: A, point: 3}
  - {name: B, point: 5, cap: {period: day, max_points: 12}}
  - {name: C, point: 2, cap: {period: week, max_events: 2}}
  - {name: D, point: -4}
";
const TYPES: [&str; 4] = ["A", "B", "C", "D"];

fn rules() -> Rules {
    Rules::parse(Path::new("events.yaml"), RULES).expect("test rules parse")
}

/// A generated event: type, time, and an optional client event id (a small set, so
/// repeats happen).
#[derive(Debug, Clone)]
struct Gen {
    ty: usize,
    ts_ms: i64,
    event_id: Option<u8>,
}

fn gen_events() -> impl Strategy<Value = Vec<Gen>> {
    prop::collection::vec(
        (
            0..TYPES.len(),
            0..10 * DAY,
            prop::option::weighted(0.3, 0..6u8),
        )
            .prop_map(|(ty, ts_ms, event_id)| Gen {
                ty,
                ts_ms,
                event_id,
            }),
        0..60,
    )
}

/// The events as received: ids in input order (so id order is the order stored).
struct Received {
    ids: Vec<String>,
    keys: Vec<String>,
    gens: Vec<Gen>,
}

fn receive(gens: &[Gen]) -> Received {
    let ids = (0..gens.len()).map(|i| format!("{i:06}")).collect();
    let keys = gens
        .iter()
        .map(|g| match g.event_id {
            Some(id) => format!("id:{id}"),
            None => format!("t:{}:{}", TYPES[g.ty], g.ts_ms),
        })
        .collect();
    Received {
        ids,
        keys,
        gens: gens.to_vec(),
    }
}

fn incoming<'a>(
    r: &'a Received,
    rules: &'a Rules,
    i: usize,
    stored: Option<&'a str>,
) -> Incoming<'a> {
    let g = &r.gens[i];
    let t = rules
        .get(TYPES[g.ty])
        .expect("generated types are configured");
    Incoming {
        id: &r.ids[i],
        event_type: TYPES[g.ty],
        ts_ms: g.ts_ms,
        received_ms: i as i64,
        dedup_key: r.keys[i].clone(),
        rule: Rule::Earn {
            base_points: t.points,
            cap: t.cap,
        },
        stored,
        progression: rules.progression(),
    }
}

/// What a store would hold after the requests `cuts` splits the events into.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stored {
    state: UserState,
    outcomes: Vec<RecordOutcome>,
    changes: Changes,
    notices: Vec<Notice>,
    /// (id, type, ts, points) of the created events.
    ledger: Vec<(String, String, i64, i64)>,
}

fn run(r: &Received, rules: &Rules, cuts: &[usize]) -> Stored {
    let mut s = Stored::default();
    let mut known: HashMap<String, String> = HashMap::new();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (r.ids.len() + 1)).collect();
    bounds.extend([0, r.ids.len()]);
    bounds.sort_unstable();
    bounds.dedup();
    for w in bounds.windows(2) {
        let stored: Vec<Option<String>> = (w[0]..w[1])
            .map(|i| known.get(&r.keys[i]).cloned())
            .collect();
        let events: Vec<Incoming> = (w[0]..w[1])
            .zip(&stored)
            .map(|(i, st)| incoming(r, rules, i, st.as_deref()))
            .collect();
        let step = apply("u", &mut s.state, &events);
        for (i, o) in (w[0]..w[1]).zip(&step.outcomes) {
            if let RecordOutcome::Created { id, points, .. } = o {
                known.insert(r.keys[i].clone(), id.clone());
                let g = &r.gens[i];
                s.ledger
                    .push((id.clone(), TYPES[g.ty].into(), g.ts_ms, *points));
            }
        }
        s.outcomes.extend(step.outcomes);
        s.changes.merge(&step.changes);
        s.notices.extend(step.notices);
    }
    s
}

fn caps_reached(notices: &[Notice]) -> Vec<&CapReached> {
    notices
        .iter()
        .filter_map(|n| match n {
            Notice::CapReached(c) => Some(c),
            _ => None,
        })
        .collect()
}

proptest! {
    #[test]
    fn batch_splits_change_nothing(gens in gen_events(), cuts in prop::collection::vec(0..80usize, 0..8)) {
        let (rules, r) = (rules(), receive(&gens));
        let whole = run(&r, &rules, &[]);
        let split = run(&r, &rules, &cuts);
        prop_assert_eq!(&whole.state, &split.state);
        prop_assert_eq!(&whole.outcomes, &split.outcomes);
        prop_assert_eq!(&whole.changes, &split.changes);
        prop_assert_eq!(caps_reached(&whole.notices), caps_reached(&split.notices));
    }

    #[test]
    fn caps_hold_and_are_reached_once(gens in gen_events(), cuts in prop::collection::vec(0..80usize, 0..8)) {
        let (rules, r) = (rules(), receive(&gens));
        let s = run(&r, &rules, &cuts);
        let mut windows: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
        for (_, ty, ts, points) in &s.ledger {
            if let Some(cap) = rules.get(ty).and_then(|t| t.cap) {
                let w = windows.entry((ty.clone(), cap.window(*ts).0)).or_default();
                w.0 += i64::from(*points > 0);
                w.1 += points;
            }
        }
        let reached = caps_reached(&s.notices);
        for ((ty, start), (awarded, points)) in &windows {
            let cap: Cap = rules.get(ty).and_then(|t| t.cap).expect("capped");
            prop_assert!(cap.max_points.is_none_or(|m| *points <= m), "{ty} {start}: {points}");
            prop_assert!(cap.max_events.is_none_or(|m| *awarded <= m), "{ty} {start}: {awarded}");
            let exhausted = cap.max_points.is_some_and(|m| *points == m) || cap.max_events.is_some_and(|m| *awarded == m);
            let notes = reached.iter().filter(|c| c.event_type == *ty && cap.window(c.ts_ms).0 == *start).count();
            prop_assert_eq!(notes, usize::from(exhausted));
        }
    }

    #[test]
    fn totals_equal_the_ledger(gens in gen_events(), cuts in prop::collection::vec(0..80usize, 0..8)) {
        let (rules, r) = (rules(), receive(&gens));
        let s = run(&r, &rules, &cuts);
        let sum: i64 = s.ledger.iter().map(|e| e.3).sum();
        prop_assert_eq!(s.state.points, sum);
        prop_assert_eq!(s.state.events, s.ledger.len() as i64);
        prop_assert_eq!(s.changes.periods.get("all").copied().unwrap_or(0), sum);
        for p in Period::ALL {
            let mut by_key: BTreeMap<String, i64> = BTreeMap::new();
            for e in &s.ledger {
                *by_key.entry(p.containing(e.2).key).or_default() += e.3;
            }
            for (key, points) in by_key {
                prop_assert_eq!(s.changes.periods.get(&key).copied(), Some(points));
            }
        }
        let notified: i64 = s.notices.iter().map(|n| match n {
            Notice::PointsChanged(p) => p.delta,
            _ => 0,
        }).sum();
        prop_assert_eq!(notified, sum);
    }

    #[test]
    fn replaying_the_ledger_reproduces_the_state(gens in gen_events(), cuts in prop::collection::vec(0..80usize, 0..8)) {
        let (rules, r) = (rules(), receive(&gens));
        let s = run(&r, &rules, &cuts);
        let mut entries: Vec<LedgerEntry> = s.ledger.iter().map(|(id, ty, ts, points)| LedgerEntry {
            id: id.clone(), event_type: ty.clone(), ts_ms: *ts, points: *points,
            base_points: rules.get(ty).map_or(0, |t| t.points),
        }).collect();
        // Replay takes the ledger in any order.
        entries.reverse();
        let replayed = replay("u", &rules, &Default::default(), &entries);
        prop_assert!(replayed.changed(&entries).is_empty());
        prop_assert_eq!(&replayed.state, &s.state);
        prop_assert_eq!(&replayed.counters, &s.changes);
    }

    #[test]
    fn duplicates_change_nothing(gens in gen_events(), cuts in prop::collection::vec(0..80usize, 0..8)) {
        let (rules, r) = (rules(), receive(&gens));
        let mut s = run(&r, &rules, &cuts);
        let before = s.state.clone();
        let known: HashMap<&str, &str> = r.keys.iter().zip(&s.outcomes).map(|(k, o)| match o {
            RecordOutcome::Created { id, .. } | RecordOutcome::Duplicate { id } => (k.as_str(), id.as_str()),
        }).collect();
        let again: Vec<Incoming> = (0..r.ids.len()).map(|i| incoming(&r, &rules, i, known.get(r.keys[i].as_str()).copied())).collect();
        let step = apply("u", &mut s.state, &again);
        prop_assert_eq!(&s.state, &before);
        prop_assert!(step.changes.is_empty());
        prop_assert!(step.notices.is_empty());
        let all_duplicates = step.outcomes.iter().all(|o| matches!(o, RecordOutcome::Duplicate { .. }));
        prop_assert!(all_duplicates);
    }
}

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
fn replay_applies_new_points_and_caps_in_stored_order() {
    let rules = Rules::parse(
        Path::new("events.yaml"),
        "events:\n  - {name: PURCHASE, point: 15}\n  - {name: LOGIN, point: 2, cap: {period: day, max_events: 1}}\n",
    )
    .expect("rules parse");
    // Listed out of order: "b" was stored after "a" although its time is earlier.
    let entries = [
        entry("b", "LOGIN", 10, 1),
        entry("a", "LOGIN", 20, 1),
        entry("c", "PURCHASE", 30, 10),
        entry("d", "LOGIN", DAY + 5, 1),
        entry("e", "GONE", 40, 7),
    ];
    let replayed = replay("u", &rules, &Default::default(), &entries);
    let r: Vec<(i64, i64)> = replayed
        .entries
        .iter()
        .map(|r| (r.points, r.base_points))
        .collect();
    assert_eq!(r, [(0, 2), (2, 2), (15, 15), (2, 2), (7, 7)]);
    assert_eq!(replayed.state.points, 26);
    assert_eq!(replayed.changed(&entries), [0, 1, 2, 3]);
}

#[test]
fn one_points_changed_per_request_first_then_caps() {
    let rules = rules();
    let r = receive(&[
        Gen {
            ty: 1,
            ts_ms: 5,
            event_id: None,
        },
        Gen {
            ty: 1,
            ts_ms: 6,
            event_id: None,
        },
        Gen {
            ty: 1,
            ts_ms: 7,
            event_id: None,
        },
    ]);
    let events: Vec<Incoming> = (0..3).map(|i| incoming(&r, &rules, i, None)).collect();
    let mut state = UserState::from_types([(
        "B".to_owned(),
        TypeCount {
            events: 1,
            points: 40,
        },
    )]);
    let step = apply("u", &mut state, &events);
    assert_eq!(
        step.outcomes
            .iter()
            .map(|o| match o {
                RecordOutcome::Created { points, .. } => *points,
                RecordOutcome::Duplicate { .. } => -1,
            })
            .collect::<Vec<_>>(),
        [5, 5, 2]
    );
    match &step.notices[..] {
        [Notice::PointsChanged(p), Notice::CapReached(c)] => {
            assert_eq!((p.total, p.delta, p.event_ids.len()), (52, 12, 3));
            assert_eq!(c.id, r.ids[2]);
        }
        other => panic!("unexpected notices {other:?}"),
    }
}
