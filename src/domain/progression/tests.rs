//! Progression through the engine's transition: what users of it would notice.

use std::path::Path;

use crate::domain::engine::{apply, Incoming, Notice, RecordOutcome, Rule, UserState};
use crate::domain::rules::Rules;

const FILE: &str = "events:
  - {name: LOGIN, point: 1}
  - {name: PURCHASE, point: 10}
  - {name: CHARGEBACK, point: -60}
levels:
  - {level: 1, name: Bronze, points: 0}
  - {level: 2, name: Silver, points: 100}
  - {level: 3, name: Gold, points: 500}
streaks:
  - id: daily_login
    name: Daily login
    event_types: [LOGIN]
    period: day
    freezes: {max: 2, earn_every: 3}
achievements:
  - {id: first_purchase, name: First purchase, when: {event_type: PURCHASE, count: 1}}
  - {id: centurion, name: Centurion, when: {points: 100}}
  - {id: regular, name: Regular, when: {streak: daily_login, length: 3}}
  - id: busy_week
    name: Busy week
    when: {event_type: LOGIN, count: 5, period: week}
    repeatable: true
    points: 50
boosts:
  - id: black_friday
    multiplier: 2
    event_types: [PURCHASE]
    from: 2026-11-27T00:00:00Z
    to: 2026-11-30T00:00:00Z
  - {id: launch, multiplier: 1.5, from: 2026-11-29T00:00:00Z, to: 2026-12-01T00:00:00Z}
";

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn rules() -> Rules {
    Rules::parse(Path::new("events.yaml"), FILE).expect("the test file parses")
}

fn ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

/// Runs one request of `(type, time)` events through the transition, judged by `rules`
/// as ingest judges them (boosts when received, caps by the store).
fn run(
    rules: &Rules,
    state: &mut UserState,
    events: &[(&str, i64)],
) -> crate::domain::engine::Step {
    let ids: Vec<String> = events
        .iter()
        .map(|_| crate::domain::event::new_event_id())
        .collect();
    let incoming: Vec<Incoming> = events
        .iter()
        .zip(&ids)
        .map(|(&(ty, ts), id)| {
            let t = rules.get(ty).unwrap();
            Incoming {
                id,
                event_type: ty,
                ts_ms: ts,
                received_ms: ts,
                dedup_key: id.clone(),
                rule: Rule::Earn {
                    base_points: rules.progression().boosted(ty, ts, t.points),
                    cap: t.cap,
                },
                stored: None,
                progression: rules.progression(),
            }
        })
        .collect();
    apply("u", state, &incoming)
}

fn unlocked(step: &crate::domain::engine::Step) -> Vec<String> {
    step.notices
        .iter()
        .filter_map(|n| match n {
            Notice::AchievementUnlocked(a) => Some(a.id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn boosts_multiply_within_their_window_and_round_toward_zero() {
    let p = rules().progression().clone();
    // Before, at the start (inclusive), overlapping (2 × 1.5), at the end (exclusive).
    assert_eq!(
        p.boosted("PURCHASE", ms("2026-11-26T23:59:59.999Z"), 10),
        10
    );
    assert_eq!(p.boosted("PURCHASE", ms("2026-11-27T00:00:00Z"), 10), 20);
    assert_eq!(p.boosted("PURCHASE", ms("2026-11-29T12:00:00Z"), 10), 30);
    assert_eq!(p.boosted("PURCHASE", ms("2026-11-30T00:00:00Z"), 10), 15);
    assert_eq!(
        p.boosted("LOGIN", ms("2026-11-29T12:00:00Z"), 1),
        1,
        "1.5 rounds down"
    );
    assert_eq!(
        p.boosted("CHARGEBACK", ms("2026-11-29T12:00:00Z"), -3),
        -4,
        "toward zero"
    );
    assert_eq!(p.boosted("LOGIN", ms("2026-12-01T00:00:00Z"), 1), 1);
}

#[test]
fn levels_follow_points_up_and_down() {
    let r = rules();
    let mut state = UserState::default();
    let t = ms("2026-12-05T10:00:00Z");
    let step = run(&r, &mut state, &[("PURCHASE", t)]);
    let level = |s: &crate::domain::engine::Step| match &s.outcomes[0] {
        RecordOutcome::Created { gained, .. } => gained.level.clone().map(|l| l.name),
        RecordOutcome::Duplicate { .. } => None,
    };
    assert_eq!(level(&step).as_deref(), Some("Bronze"));
    let many: Vec<(&str, i64)> = (0..9).map(|i| ("PURCHASE", t + i + 1)).collect();
    let step = run(&r, &mut state, &many);
    // 100 points: Silver, and Centurion (no bonus).
    assert_eq!(state.points, 100);
    let changes: Vec<_> = step
        .notices
        .iter()
        .filter_map(|n| match n {
            Notice::LevelChanged(l) => {
                Some((l.from.clone().unwrap().name, l.to.clone().unwrap().name))
            }
            _ => None,
        })
        .collect();
    assert_eq!(changes, [("Bronze".to_owned(), "Silver".to_owned())]);
    let step = run(&r, &mut state, &[("CHARGEBACK", t + 100)]);
    assert_eq!(state.points, 40);
    assert!(
        step.notices
            .iter()
            .any(|n| matches!(n, Notice::LevelChanged(l)
        if l.to.as_ref().map(|l| l.level) == Some(1))),
        "{:?}",
        step.notices
    );
    assert_eq!(r.progression().level_at(40).unwrap().name, "Bronze");
    assert_eq!(r.progression().next_level(40).unwrap().name, "Silver");
    assert!(r.progression().next_level(600).is_none());
}

#[test]
fn achievements_unlock_once_and_repeatable_ones_once_per_period() {
    let r = rules();
    let mut state = UserState::default();
    let t = ms("2026-12-07T10:00:00Z"); // a Monday
    let step = run(&r, &mut state, &[("PURCHASE", t)]);
    assert_eq!(unlocked(&step), ["first_purchase"]);
    let step = run(&r, &mut state, &[("PURCHASE", t + 1)]);
    assert!(unlocked(&step).is_empty(), "non-repeatable: once");

    // Five logins in one week: busy_week, with its 50 bonus points as a ledger entry.
    let logins: Vec<(&str, i64)> = (0..5).map(|i| ("LOGIN", t + 10 + i)).collect();
    let before = state.points;
    let step = run(&r, &mut state, &logins);
    assert_eq!(unlocked(&step), ["busy_week"]);
    assert_eq!(step.bonuses.len(), 1);
    assert_eq!(step.bonuses[0].event_type, "achievement:busy_week");
    assert_eq!(step.bonuses[0].points, 50);
    assert_eq!(state.points, before + 5 + 50);
    assert_eq!(
        step.changes.points, 55,
        "the bonus is counted with the events"
    );
    // A sixth the same week: nothing; five the next week: again.
    let step = run(&r, &mut state, &[("LOGIN", t + 20)]);
    assert!(unlocked(&step).is_empty());
    let next: Vec<(&str, i64)> = (0..5).map(|i| ("LOGIN", t + 7 * DAY + i)).collect();
    let step = run(&r, &mut state, &next);
    // 76 + 5 + 50: the bonus also crosses Centurion's 100.
    assert_eq!(unlocked(&step), ["busy_week", "centurion"]);
    assert_ne!(step.bonuses[0].dedup_key, "achievement:busy_week:once");
    assert_eq!(state.progress.achievements["busy_week"].times, 2);
}

#[test]
fn a_bonus_can_unlock_a_points_achievement() {
    let r = rules();
    let mut state = UserState {
        points: 60,
        ..UserState::default()
    };
    let t = ms("2026-12-07T10:00:00Z");
    let logins: Vec<(&str, i64)> = (0..5).map(|i| ("LOGIN", t + i)).collect();
    let step = run(&r, &mut state, &logins);
    // 60 + 5 + 50 = 115: the bonus crosses 100.
    assert_eq!(unlocked(&step), ["busy_week", "centurion"]);
}

#[test]
fn streaks_count_local_days_and_freezes_cover_missed_ones() {
    let r = rules();
    let mut state = UserState::default();
    state.progress.timezone = Some("America/Los_Angeles".into());
    // 07:30Z on Dec 2 is 23:30 on Dec 1 in Los Angeles; 08:30Z is 00:30 on Dec 2.
    let step = run(&r, &mut state, &[("LOGIN", ms("2026-12-02T07:30:00Z"))]);
    assert_eq!(state.progress.streaks["daily_login"].length, 1);
    assert!(step
        .notices
        .iter()
        .any(|n| matches!(n, Notice::StreakChanged(s) if s.change.as_str() == "extended")));
    run(&r, &mut state, &[("LOGIN", ms("2026-12-02T08:30:00Z"))]);
    assert_eq!(
        state.progress.streaks["daily_login"].length, 2,
        "a new local day"
    );
    // In UTC both would be Dec 2: one day.
    let mut utc = UserState::default();
    run(
        &r,
        &mut utc,
        &[
            ("LOGIN", ms("2026-12-02T07:30:00Z")),
            ("LOGIN", ms("2026-12-02T08:30:00Z")),
        ],
    );
    assert_eq!(utc.progress.streaks["daily_login"].length, 1);

    // Day 3 (Dec 3 local): length 3, a freeze earned (every 3), Regular unlocked.
    let step = run(&r, &mut state, &[("LOGIN", ms("2026-12-03T20:00:00Z"))]);
    assert_eq!(unlocked(&step), ["regular"]);
    assert_eq!(state.progress.streaks["daily_login"].freezes, 1);
    // Skip Dec 4; Dec 5 uses the freeze.
    let step = run(&r, &mut state, &[("LOGIN", ms("2026-12-05T20:00:00Z"))]);
    let kinds: Vec<&str> = step
        .notices
        .iter()
        .filter_map(|n| match n {
            Notice::StreakChanged(s) => Some(s.change.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["frozen", "extended"]);
    let s = &state.progress.streaks["daily_login"];
    assert_eq!((s.length, s.freezes), (4, 0));
    // Skip two days with no freeze: broken, a new streak of 1, longest kept.
    let step = run(&r, &mut state, &[("LOGIN", ms("2026-12-08T20:00:00Z"))]);
    let kinds: Vec<&str> = step
        .notices
        .iter()
        .filter_map(|n| match n {
            Notice::StreakChanged(s) => Some(s.change.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["broken", "extended"]);
    let s = &state.progress.streaks["daily_login"];
    assert_eq!((s.length, s.longest), (1, 4));
    // A late event (an earlier day) changes nothing.
    let step = run(&r, &mut state, &[("LOGIN", ms("2026-12-04T20:00:00Z"))]);
    assert!(!step
        .notices
        .iter()
        .any(|n| matches!(n, Notice::StreakChanged(_))));
}

#[test]
fn a_streak_reads_broken_once_its_next_period_has_passed() {
    let r = rules();
    let rule = &r.progression().streaks[0];
    let mut state = UserState::default();
    run(&r, &mut state, &[("LOGIN", ms("2026-12-01T10:00:00Z"))]);
    let s = &state.progress.streaks["daily_login"];
    let tz = chrono_tz::Tz::UTC;
    let v = s.view(rule, tz, ms("2026-12-02T23:59:59Z"));
    assert_eq!(v.length, 1);
    assert_eq!(v.expires_ms, Some(ms("2026-12-03T00:00:00Z")));
    assert_eq!(v.started_ms, Some(ms("2026-12-01T00:00:00Z")));
    let v = s.view(rule, tz, ms("2026-12-03T00:00:00Z"));
    assert_eq!((v.length, v.expires_ms), (0, None));
    assert_eq!(v.longest, 1);
}

#[test]
fn replay_grants_and_revokes_with_the_rules_it_is_given() {
    use crate::domain::engine::{replay, LedgerEntry};
    let r = rules();
    let t = ms("2026-12-07T10:00:00Z");
    let mut entries: Vec<LedgerEntry> = (0..5)
        .map(|i| LedgerEntry {
            id: format!("{i:032}"),
            event_type: "LOGIN".into(),
            ts_ms: t + i,
            points: 1,
            base_points: 1,
        })
        .collect();
    let replayed = replay("u", &r, &Default::default(), &entries);
    assert_eq!(
        replayed.added.len(),
        1,
        "busy_week's bonus, granted by the replay"
    );
    assert!(replayed
        .state
        .progress
        .achievements
        .contains_key("busy_week"));
    assert_eq!(replayed.state.points, 55);
    // With the bonus in the ledger, the same rules keep it; without the achievement,
    // it goes.
    entries.push(LedgerEntry {
        id: "f".repeat(32),
        event_type: "achievement:busy_week".into(),
        ts_ms: t + 4,
        points: 50,
        base_points: 50,
    });
    let again = replay("u", &r, &Default::default(), &entries);
    assert!(again.added.is_empty() && again.removed.is_empty());
    assert_eq!(again.state.points, 55);
    let fewer = Rules::parse(
        Path::new("events.yaml"),
        "events:\n  - {name: LOGIN, point: 1}\n  - {name: PURCHASE, point: 10}\n  - {name: CHARGEBACK, point: -60}\n",
    )
    .unwrap();
    let gone = replay("u", &fewer, &Default::default(), &entries);
    assert_eq!(gone.removed, [5]);
    assert_eq!(gone.state.points, 5);
}

#[test]
fn config_errors_name_the_entry() {
    let base = "events:\n  - {name: LOGIN, point: 1}\n";
    for (extra, entry, problem) in [
        ("levels:\n  - {level: 1, name: A, points: 10}\n  - {level: 2, name: B, points: 10}\n", "levels[1] (B)", "increase"),
        ("streaks:\n  - {id: s, event_types: [NOPE], period: day}\n", "streaks[0] (s)", "NOPE"),
        ("streaks:\n  - {id: s, event_types: [LOGIN], period: month}\n", "streaks[0] (s)", "day or week"),
        ("streaks:\n  - {id: s, event_types: [LOGIN], period: day}\n  - {id: s, event_types: [LOGIN], period: day}\n", "streaks[1] (s)", "duplicate id"),
        ("achievements:\n  - {id: a, when: {streak: nope, length: 2}}\n", "achievements[0] (a)", "not a streak"),
        ("achievements:\n  - {id: a, when: {event_type: NOPE, count: 1}}\n", "achievements[0] (a)", "NOPE"),
        ("achievements:\n  - {id: a, when: {points: 5}, repeatable: true}\n", "achievements[0] (a)", "repeatable"),
        ("achievements:\n  - {id: a, when: {points: 5}}\n  - {id: a, when: {points: 6}}\n", "achievements[1] (a)", "duplicate id"),
        ("achievements:\n  - {id: Bad, when: {points: 5}}\n", "achievements[0] (Bad)", "id must match"),
        ("boosts:\n  - {id: b, multiplier: 0, from: 2026-01-01T00:00:00Z, to: 2026-02-01T00:00:00Z}\n", "boosts[0] (b)", "multiplier"),
        ("boosts:\n  - {id: b, multiplier: 2, from: 2026-02-01T00:00:00Z, to: 2026-01-01T00:00:00Z}\n", "boosts[0] (b)", "before"),
        ("boosts:\n  - {id: b, multiplier: 2, event_types: [NOPE], from: 2026-01-01T00:00:00Z, to: 2026-02-01T00:00:00Z}\n", "boosts[0] (b)", "NOPE"),
    ] {
        let err = Rules::parse(Path::new("events.yaml"), &format!("{base}{extra}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("events.yaml: {entry}: ")) && err.contains(problem),
            "{extra}: {err}"
        );
    }
    // A file without the new sections is as valid as before.
    assert!(!Rules::parse(Path::new("events.yaml"), base)
        .unwrap()
        .progression()
        .tracks_progress());
}
