//! The transition: one request's events for one user, judged in order against the
//! user's state.

use std::collections::HashMap;

use super::notice::{
    AchievementUnlocked, CapReached, LevelChanged, Notice, PointsChanged, StreakChanged,
};
use super::state::{Changes, UserState};
use crate::domain::caps::Cap;
use crate::domain::event::NewEvent;
use crate::domain::progression::advance::{self, Effect};
use crate::domain::progression::{bonus_type, Level, Progression};

/// What happened to one event handed to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    Created {
        id: String,
        points: i64,
        gained: Gained,
    },
    /// Already stored: `id` is the stored event's id. Nothing was awarded.
    Duplicate { id: String },
}

/// What a created event brought its user besides points: the achievements it
/// unlocked and the level after it (`None` without levels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gained {
    /// `(id, name)` of each achievement unlocked, in order.
    pub unlocked: Vec<(String, String)>,
    pub level: Option<Level>,
}

/// An achievement's bonus points: a ledger entry of its own, type
/// `achievement:<id>`, at the event time of the event that unlocked it, unique per
/// user by its dedup key (once, or once per period for a repeatable one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bonus {
    pub id: String,
    pub event_type: String,
    pub ts_ms: i64,
    pub received_ms: i64,
    pub points: i64,
    pub dedup_key: String,
}

/// How an event earns its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// What its type is worth under the rules that judge it, within the type's cap.
    Earn { base_points: i64, cap: Option<Cap> },
    /// Exactly these points: a replayed event of a type the rules no longer define
    /// keeps what it earned.
    Keep { points: i64 },
}

/// One event of a request, as the transition needs it.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub ts_ms: i64,
    pub received_ms: i64,
    /// Two events of one call with the same key are one event (the first counts).
    pub dedup_key: String,
    pub rule: Rule,
    /// The id under which the user's ledger already holds this event, if it does.
    pub stored: Option<&'a str>,
    /// Levels, streaks and achievements of the rules that judge it.
    pub progression: &'a Progression,
}

impl<'a> Incoming<'a> {
    /// An event as received, judged by the rules it carries.
    pub fn new(e: &'a NewEvent, stored: Option<&'a str>) -> Incoming<'a> {
        Incoming {
            id: &e.id,
            event_type: &e.event_type,
            ts_ms: e.ts_ms,
            received_ms: e.received_ms,
            dedup_key: e.dedup_key(),
            // Boosts are applied when the event is received: `points` is what the
            // rules give it before its cap.
            rule: Rule::Earn {
                base_points: e.points,
                cap: e.cap,
            },
            stored,
            progression: &e.progression.0,
        }
    }
}

/// What a transition produced besides the new state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// One per event given, in order.
    pub outcomes: Vec<RecordOutcome>,
    pub changes: Changes,
    pub notices: Vec<Notice>,
    /// Bonus entries of the achievements unlocked, for the ledger (in `changes` too).
    pub bonuses: Vec<Bonus>,
    /// Whether `state.progress` changed: the store writes it back.
    pub progressed: bool,
}

/// Applies one request's events of `user_id` to `state`, in order. Events the ledger
/// holds (`stored`) and repeats within `events` change nothing; the others are stored
/// with the points their rule gives them, caps counting in the order given.
pub fn apply(user_id: &str, state: &mut UserState, events: &[Incoming]) -> Step {
    let mut step = Step {
        outcomes: Vec::with_capacity(events.len()),
        ..Step::default()
    };
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut reached = Vec::new();
    let mut event_ids = Vec::new();
    let mut first_received = None;
    let progression = events.first().map(|e| e.progression);
    let level_before = progression.and_then(|p| p.level_at(state.points)).cloned();
    let mut progress_notices = Vec::new();
    for e in events {
        let earlier = e.stored.or_else(|| seen.get(e.dedup_key.as_str()).copied());
        if let Some(id) = earlier {
            step.outcomes
                .push(RecordOutcome::Duplicate { id: id.to_owned() });
            continue;
        }
        if events.len() > 1 {
            seen.insert(&e.dedup_key, e.id);
        }
        let points = match e.rule {
            Rule::Keep { points }
            | Rule::Earn {
                base_points: points,
                cap: None,
            } => points,
            Rule::Earn {
                base_points,
                cap: Some(cap),
            } => {
                let window = UserState::cap_window(e.event_type, e.ts_ms, &cap);
                let used = state.caps.entry(window).or_default();
                let points = cap.award(base_points, *used);
                if cap.reached_by(*used, points) {
                    reached.push(Notice::CapReached(CapReached {
                        user_id: user_id.to_owned(),
                        event_type: e.event_type.to_owned(),
                        id: e.id.to_owned(),
                        ts_ms: e.ts_ms,
                        received_ms: e.received_ms,
                        cap,
                    }));
                }
                *used = used.after(points);
                points
            }
        };
        state.points += points;
        state.events += 1;
        add_to(&mut state.by_type, e.event_type, 1, points);
        step.changes.add(e.event_type, e.ts_ms, points);
        first_received.get_or_insert(e.received_ms);
        event_ids.push(e.id.to_owned());
        let mut gained = Gained::default();
        if e.progression.tracks_progress() {
            progress(
                user_id,
                state,
                e,
                points,
                &mut step,
                &mut gained,
                &mut progress_notices,
            );
        }
        gained.level = e.progression.level_at(state.points).cloned();
        step.outcomes.push(RecordOutcome::Created {
            id: e.id.to_owned(),
            points,
            gained,
        });
    }
    if step.changes.points != 0 {
        step.notices.push(Notice::PointsChanged(PointsChanged {
            user_id: user_id.to_owned(),
            total: state.points,
            delta: step.changes.points,
            event_ids,
            at_ms: first_received.unwrap_or_default(),
        }));
    }
    step.notices.extend(reached);
    step.notices.extend(progress_notices);
    let level_after = progression.and_then(|p| p.level_at(state.points)).cloned();
    if level_after != level_before {
        step.notices.push(Notice::LevelChanged(LevelChanged {
            user_id: user_id.to_owned(),
            from: level_before,
            to: level_after,
            points: state.points,
            event_id: step
                .outcomes
                .iter()
                .find_map(|o| match o {
                    RecordOutcome::Created { id, .. } => Some(id.clone()),
                    RecordOutcome::Duplicate { .. } => None,
                })
                .unwrap_or_default(),
            at_ms: first_received.unwrap_or_default(),
        }));
    }
    step
}

/// Streaks and achievements after the stored event `e` (already counted in `state`):
/// notices, bonus entries (counted as they are added) and what the event gained.
fn progress(
    user_id: &str,
    state: &mut UserState,
    e: &Incoming,
    points: i64,
    step: &mut Step,
    gained: &mut Gained,
    notices: &mut Vec<Notice>,
) {
    let wallet = e.progression.wallet.as_ref();
    if let Some(w) = wallet {
        let expiry = w.expiry_of(e.event_type, e.ts_ms);
        state.progress.wallet.earn(points, expiry);
    }
    let mut total = state.points;
    let effects = advance::on_event(
        e.progression,
        &mut state.progress,
        e.event_type,
        e.ts_ms,
        &mut total,
    );
    step.progressed = true;
    for effect in effects {
        match effect {
            Effect::Unlocked {
                id,
                name,
                times,
                bonus,
                period,
            } => {
                if bonus != 0 {
                    let event_type = bonus_type(&id);
                    state.points += bonus;
                    state.events += 1;
                    add_to(&mut state.by_type, &event_type, 1, bonus);
                    step.changes.add(&event_type, e.ts_ms, bonus);
                    if let Some(w) = wallet {
                        let expiry = w.expiry_of(&event_type, e.ts_ms);
                        state.progress.wallet.earn(bonus, expiry);
                    }
                    let when = period.map_or_else(|| "once".to_owned(), |p| p.to_string());
                    step.bonuses.push(Bonus {
                        id: crate::domain::event::new_event_id(),
                        dedup_key: format!("{event_type}:{when}"),
                        event_type,
                        ts_ms: e.ts_ms,
                        received_ms: e.received_ms,
                        points: bonus,
                    });
                }
                gained.unlocked.push((id.clone(), name.clone()));
                notices.push(Notice::AchievementUnlocked(AchievementUnlocked {
                    user_id: user_id.to_owned(),
                    id,
                    name,
                    times,
                    bonus,
                    event_id: e.id.to_owned(),
                    ts_ms: e.ts_ms,
                    received_ms: e.received_ms,
                }));
            }
            Effect::Streak {
                id,
                change,
                length,
                longest,
                freezes,
            } => {
                notices.push(Notice::StreakChanged(StreakChanged {
                    user_id: user_id.to_owned(),
                    id,
                    change,
                    length,
                    longest,
                    freezes,
                    event_id: e.id.to_owned(),
                    ts_ms: e.ts_ms,
                    received_ms: e.received_ms,
                }));
            }
        }
    }
    if let Some(w) = wallet {
        state.progress.wallet.due_ms = state.progress.wallet.next_due(w);
    }
}

/// Adds to a type's count, allocating its key only the first time the type is seen
/// (the writer's profile showed the allocator as a fifth of its time).
pub(super) fn add_to(
    by_type: &mut std::collections::BTreeMap<String, super::state::TypeCount>,
    event_type: &str,
    events: i64,
    points: i64,
) {
    match by_type.get_mut(event_type) {
        Some(t) => {
            t.events += events;
            t.points += points;
        }
        None => {
            by_type.insert(
                event_type.to_owned(),
                super::state::TypeCount { events, points },
            );
        }
    }
}

/// The positions of each user's events in a request, users in the order of their first
/// event: a request is one transition per user, in this order.
pub fn by_user(events: &[NewEvent]) -> Vec<(&str, Vec<usize>)> {
    let mut users: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let k = *index.entry(&e.user_id).or_insert_with(|| {
            users.push((&e.user_id, Vec::new()));
            users.len() - 1
        });
        users[k].1.push(i);
    }
    users
}
