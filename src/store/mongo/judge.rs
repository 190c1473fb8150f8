//! A group commit through the engine: loads the state of each of its users (their
//! state documents, and the usage of the cap windows its events fall in, in the
//! commit's transaction when there is one), runs each request's events of each user
//! through the transition in order, and returns what the commit must write. Nothing
//! here decides points, caps or notices; the engine does.

use std::collections::{BTreeSet, HashMap};

use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::ClientSession;

use super::bulk_commands::{find_all, stored_ids};
use super::schema::{EventDoc, Pending, EVENTS};
use super::state::{self, Plan};
use super::Ctx;
use crate::domain::engine::{self, Changes, Incoming, Notice, RecordOutcome, UserState};
use crate::domain::event::NewEvent;
use crate::store::Recorded;

/// What a group commit writes.
#[derive(Debug, Default)]
pub struct Judged {
    /// Per request: one outcome per event, in order, and the changes per user.
    pub recorded: Vec<Recorded>,
    /// The events to insert.
    pub docs: Vec<EventDoc>,
    pub plan: Plan,
    pub notices: Vec<Notice>,
    /// Each changed user's delivery `seq` once the commit is in.
    pub seqs: HashMap<String, i64>,
}

/// Runs `requests` through the engine. With `pending` (journal mode) the documents
/// carry the batch marker and the request they came in. Without `look_up`, every event
/// is taken to be new: the caller must then let the unique index have the last word
/// (a transaction aborts on a duplicate, and its retry looks up).
pub async fn judge(
    ctx: &Ctx,
    requests: &[&[NewEvent]],
    pending: Option<&Pending>,
    mut session: Option<&mut ClientSession>,
    look_up: bool,
) -> Result<Judged> {
    let all: Vec<&NewEvent> = requests.iter().flat_map(|r| r.iter()).collect();
    let mut known = if look_up {
        stored_ids(ctx, &all, session.as_deref_mut()).await?
    } else {
        HashMap::new()
    };
    let users: BTreeSet<&str> = all.iter().map(|e| e.user_id.as_str()).collect();
    // Progress rides on the state document, which every commit of the user writes: two
    // commits of one user (on any instance) conflict there, so an unlock is judged
    // once, on the progress the other commit left.
    let tracks = all.iter().any(|e| e.progression.0.tracks_progress());
    let loaded = state::load(ctx, session.as_deref_mut(), &users, tracks).await?;
    let mut states: HashMap<String, UserState> = loaded
        .iter()
        .map(|(user, l)| {
            let state = UserState {
                points: l.points,
                progress: l.progress.clone().unwrap_or_default(),
                ..UserState::default()
            };
            (user.clone(), state)
        })
        .collect();
    let mut progressed: BTreeSet<String> = BTreeSet::new();
    // Per user, the changes of all of the commit's requests: placed once at the end.
    let mut summed: HashMap<String, Changes> = HashMap::new();
    let mut judged = Judged::default();
    for (r, events) in requests.iter().enumerate() {
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; events.len()];
        let mut changes = Vec::new();
        for (user_id, positions) in engine::by_user(events) {
            let state = states.entry(user_id.to_owned()).or_default();
            for &i in &positions {
                let e = &events[i];
                if let Some(cap) = &e.cap {
                    let window = UserState::cap_window(&e.event_type, e.ts_ms, cap);
                    if let std::collections::btree_map::Entry::Vacant(slot) =
                        state.caps.entry(window)
                    {
                        slot.insert(
                            usage(ctx, e, cap.window(e.ts_ms), session.as_deref_mut()).await?,
                        );
                    }
                }
            }
            let keys: Vec<(String, String)> = positions
                .iter()
                .map(|&i| (events[i].user_id.clone(), events[i].dedup_key()))
                .collect();
            let incoming: Vec<Incoming> = positions
                .iter()
                .zip(&keys)
                .map(|(&i, k)| Incoming::new(&events[i], known.get(k).map(String::as_str)))
                .collect();
            let step = engine::apply(user_id, state, &incoming);
            let reached: HashMap<&str, _> = step
                .notices
                .iter()
                .filter_map(|n| match n {
                    Notice::CapReached(c) => Some((c.id.as_str(), c.cap)),
                    _ => None,
                })
                .collect();
            for ((&i, outcome), key) in positions.iter().zip(&step.outcomes).zip(&keys) {
                let e = &events[i];
                if let RecordOutcome::Created { id, points, .. } = outcome {
                    let marker = pending.map(|p| Pending {
                        request: r as i64,
                        ..p.clone()
                    });
                    // The cap an event used up is stored with it, for recovery to notify it.
                    judged.docs.push(
                        EventDoc::new(e, marker)
                            .with_points(*points)
                            .reaching(reached.get(e.id.as_str()).copied()),
                    );
                    known.insert(key.clone(), id.clone());
                }
                outcomes[i] = Some(outcome.clone());
            }
            if step.progressed {
                progressed.insert(user_id.to_owned());
                // Bonus entries are ledger entries of the same commit: stored, pending
                // and counted exactly like its events (the dedup index makes each
                // once per user and period).
                let version = events[positions[0]].rules_version;
                for b in &step.bonuses {
                    let marker = pending.map(|p| Pending {
                        request: r as i64,
                        ..p.clone()
                    });
                    judged
                        .docs
                        .push(EventDoc::bonus(user_id, b, version, marker));
                }
            }
            summed
                .entry(user_id.to_owned())
                .or_default()
                .merge(&step.changes);
            judged.notices.extend(step.notices);
            changes.push((user_id.to_owned(), step.changes));
        }
        judged.recorded.push(Recorded {
            outcomes: outcomes.into_iter().flatten().collect(),
            changes,
        });
    }
    for (user, changes) in &summed {
        if changes.is_empty() {
            continue;
        }
        let l = loaded.get(user);
        judged.plan.add(user, l, changes);
        judged.seqs.insert(user.clone(), l.map_or(0, |l| l.seq) + 1);
    }
    for user in &progressed {
        if let Some(state) = states.get(user) {
            judged.plan.set_progress(user, &state.progress);
        }
    }
    Ok(judged)
}

/// What the ledger holds for the event's user and type in the cap's window.
async fn usage(
    ctx: &Ctx,
    e: &NewEvent,
    (from, to): (i64, i64),
    session: Option<&mut ClientSession>,
) -> Result<crate::domain::caps::Usage> {
    let docs: Vec<Document> = find_all(
        &ctx.db.collection::<Document>(EVENTS),
        doc! {
            "user_id": &e.user_id,
            "ts_ms": { "$gte": from, "$lt": to },
            "event_type": &e.event_type,
        },
        FindOptions::builder()
            .projection(doc! { "_id": 0, "points": 1 })
            .build(),
        session,
    )
    .await?;
    Ok(UserState::usage_of(
        docs.iter().filter_map(|d| d.get_i64("points").ok()),
    ))
}
