//! Finishing writes that a crash or a lost connection cut short: events still marked
//! pending get their points counted exactly once, and interrupted erasures complete.
//! Runs at start and then periodically from the writer task.

use futures_util::FutureExt;
use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::ClientSession;

use super::bulk_commands::{self, find_all};
use super::commit::{self, Applied};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::outbox::{self, Batch, Subscribers};
use super::schema::{EventDoc, DELETIONS, EVENTS, GUARD, PERIODS, USERS};
use super::state::{self, Plan, MOVED};
use super::txn;
use super::{erase, rules, transactional};
use super::{Ctx, Mode};
use crate::domain::engine::{self, CapReached, Changes, Incoming, Notice, Rule, UserState};
use crate::domain::progression::{is_bonus, Progress};
use crate::domain::rules::Rules;

/// Writes younger than this may still be in the hands of a live writer (this process's
/// or another's), which finishes or gives up well within it (the writer's timeout).
/// Recovering them concurrently could count a batch twice, so they are left alone.
pub const GRACE_MS: i64 = 60_000;

/// Bounds one pass, so the writer gets back to new requests; the next pass continues.
const MAX_BATCHES_PER_PASS: usize = 200;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub batches: usize,
    pub events: usize,
    pub deletions: usize,
}

/// Finishes everything left unfinished before `now_ms - GRACE_MS`.
pub async fn run(ctx: &Ctx, now_ms: i64) -> Result<Recovered> {
    let cutoff = now_ms - GRACE_MS;
    let mut done = Recovered::default();
    let deletions = ctx.db.collection::<Document>(DELETIONS);
    let stale: Vec<Document> = find_all(
        &deletions,
        doc! { "at_ms": { "$lt": cutoff } },
        FindOptions::default(),
        None,
    )
    .await?;
    for marker in stale {
        let Ok(user_id) = marker.get_str("_id") else {
            continue;
        };
        erase::delete_user(ctx, user_id).await?;
        deletions.delete_one(doc! { "_id": user_id }).await?;
        done.deletions += 1;
    }
    let events = ctx.db.collection::<Document>(EVENTS);
    while done.batches < MAX_BATCHES_PER_PASS {
        let oldest = events
            .find_one(doc! {
                "pending.batch": { "$exists": true },
                "pending.at_ms": { "$lt": cutoff },
            })
            .projection(doc! { "pending.batch": 1 })
            .await?;
        let Some(batch) = oldest
            .as_ref()
            .and_then(|d| d.get_document("pending").ok())
            .and_then(|p| p.get_str("batch").ok())
        else {
            break;
        };
        done.events += recover_batch(ctx, batch).await?;
        done.batches += 1;
    }
    if done != Recovered::default() {
        tracing::warn!(
            batches = done.batches,
            events = done.events,
            deletions = done.deletions,
            "finished writes that were cut short"
        );
    }
    Ok(done)
}

/// Whether no pending batch and no erasure marker is left, however young.
pub async fn nothing_left(ctx: &Ctx) -> Result<bool> {
    let marker = ctx
        .db
        .collection::<Document>(DELETIONS)
        .find_one(doc! {})
        .projection(doc! { "_id": 1 })
        .await?;
    let pending = ctx
        .events
        .find_one(doc! { "pending.batch": { "$exists": true } })
        .projection(doc! { "_id": 1 })
        .await?;
    Ok(marker.is_none() && pending.is_none())
}

/// Counts the still-pending events of `batch` into every counter document that does
/// not yet hold the batch, then retires it. Returns how many events were pending.
async fn recover_batch(ctx: &Ctx, batch: &str) -> Result<usize> {
    match ctx.mode {
        Mode::Journal => {
            let mut events = pending_events(ctx, batch, None).await?;
            let plan = plan_of(ctx, None, &mut events, batch).await?;
            commit::apply_guarded(ctx, &plan, batch).await?;
            // No rank.changed: the boards as they were before this batch are gone.
            let subs = Subscribers::load(ctx, None).await?;
            let batch_notices = notices(ctx, None, &events, batch).await?;
            let seqs = HashMap::new();
            outbox::queue(ctx, None, &batch_notices, &subs, Vec::new(), &seqs).await?;
            commit::finish(
                ctx,
                &Applied {
                    batch: batch.to_owned(),
                    event_ids: events.iter().map(|e| e.id.clone()).collect(),
                    user_ids: users_of(&events),
                    archive_ids: plan.archive_ids(),
                },
            )
            .await?;
            Ok(events.len())
        }
        // A batch left by an earlier run without transactions (the server became a
        // replica set since): one transaction does it all, so concurrent instances
        // recovering the same batch conflict instead of counting it twice.
        Mode::Transactions => {
            txn::in_transaction(ctx, &(ctx, batch), |s, (ctx, batch)| {
                recover_in(ctx, s, batch).boxed()
            })
            .await
        }
    }
}

/// Where the batch's points still have to go. A user whose state document holds the
/// batch has had its state updated; what it owes the archives is recorded there. A
/// user whose document does not hold it has had nothing of the batch (state updates
/// come first), so its share is placed afresh on the state as it is now, and so is the
/// progress its events make (see [`progress`]), which may add bonus entries to
/// `events`.
async fn plan_of(
    ctx: &Ctx,
    mut session: Option<&mut ClientSession>,
    events: &mut Vec<EventDoc>,
    batch: &str,
) -> Result<Plan> {
    let users: BTreeSet<String> = events.iter().map(|e| e.user_id.clone()).collect();
    let users: BTreeSet<&str> = users.iter().map(String::as_str).collect();
    let loaded = state::load(ctx, session.as_deref_mut(), &users, true).await?;
    let progressed = progress(ctx, session, events, batch, &loaded).await?;
    let mut by_user: HashMap<&str, Changes> = HashMap::new();
    for e in events.iter() {
        by_user
            .entry(&e.user_id)
            .or_default()
            .add(&e.event_type, e.ts_ms, e.points);
    }
    let mut plan = Plan::default();
    for (user, changes) in &by_user {
        match loaded.get(*user) {
            Some(l) if l.holds(batch) => plan.add_owed(user, l, batch),
            l => plan.add(user, l, changes),
        }
    }
    for (user, p) in &progressed {
        plan.set_progress(user, p);
    }
    Ok(plan)
}

/// The progress of the users whose state documents lack `batch`: the engine advances
/// what the document holds now with the batch's events, in the order they were
/// judged, under the rules version that judged each (its text is registered in the
/// store). Its progress is written with the state update, under the batch's guard, so
/// a recovery cut short does it again from the same document. Bonus entries it awards
/// that the ledger lacks go into the batch; those the first attempt stored are there
/// already (and a second is impossible: the dedup index), so nothing is doubled.
async fn progress(
    ctx: &Ctx,
    mut session: Option<&mut ClientSession>,
    events: &mut Vec<EventDoc>,
    batch: &str,
    loaded: &HashMap<String, state::Loaded>,
) -> Result<BTreeMap<String, Progress>> {
    let mut rules: HashMap<i64, Option<Rules>> = HashMap::new();
    for v in events.iter().filter_map(|e| e.rules_version) {
        if let std::collections::hash_map::Entry::Vacant(slot) = rules.entry(v) {
            slot.insert(rules_of(ctx, v).await?);
        }
    }
    let progression_of = |e: &EventDoc| {
        e.rules_version
            .and_then(|v| rules.get(&v)?.as_ref())
            .map_or(&crate::domain::progression::NONE, |r| {
                r.progression().as_ref()
            })
    };
    let mut out = BTreeMap::new();
    let mut bonuses: Vec<EventDoc> = Vec::new();
    let users: BTreeSet<&str> = events.iter().map(|e| e.user_id.as_str()).collect();
    for user in users {
        let l = loaded.get(user);
        if l.is_some_and(|l| l.holds(batch)) {
            continue;
        }
        let mut mine: Vec<&EventDoc> = events
            .iter()
            .filter(|e| e.user_id == user && !is_bonus(&e.event_type))
            .collect();
        if !mine.iter().any(|e| progression_of(e).tracks_progress()) {
            continue;
        }
        mine.sort_by(|a, b| (request_of(a), &a.id).cmp(&(request_of(b), &b.id)));
        let incoming: Vec<Incoming> = mine
            .iter()
            .map(|e| Incoming {
                id: &e.id,
                event_type: &e.event_type,
                ts_ms: e.ts_ms,
                received_ms: e.received_ms,
                dedup_key: e.dedup_key.clone(),
                rule: Rule::Keep { points: e.points },
                stored: None,
                progression: progression_of(e),
            })
            .collect();
        let mut state = UserState {
            points: l.map_or(0, |l| l.points),
            progress: l.and_then(|l| l.progress.clone()).unwrap_or_default(),
            ..UserState::default()
        };
        let step = engine::apply(user, &mut state, &incoming);
        if !step.progressed {
            continue;
        }
        let marker = mine[0].pending.clone();
        for b in &step.bonuses {
            let stored = events
                .iter()
                .any(|e| e.user_id == user && e.dedup_key == b.dedup_key);
            if !stored {
                bonuses.push(EventDoc::bonus(
                    user,
                    b,
                    mine[0].rules_version,
                    marker.clone(),
                ));
            }
        }
        out.insert(user.to_owned(), state.progress);
    }
    if bonuses.is_empty() {
        return Ok(out);
    }
    // Entries outside the batch (counted already) may hold a key: those are not added.
    let keys: Vec<Document> = bonuses
        .iter()
        .map(|b| doc! { "user_id": &b.user_id, "dedup_key": &b.dedup_key })
        .collect();
    let held: BTreeSet<(String, String)> = find_all(
        &ctx.db.collection::<Document>(EVENTS),
        doc! { "$or": keys },
        FindOptions::builder()
            .projection(doc! { "user_id": 1, "dedup_key": 1 })
            .build(),
        session.as_deref_mut(),
    )
    .await?
    .iter()
    .filter_map(|d| {
        Some((
            d.get_str("user_id").ok()?.to_owned(),
            d.get_str("dedup_key").ok()?.to_owned(),
        ))
    })
    .collect();
    bonuses.retain(|b| !held.contains(&(b.user_id.clone(), b.dedup_key.clone())));
    if !bulk_commands::insert_new(&ctx.events, &bonuses, session)
        .await?
        .is_empty()
    {
        // Only another writer inserts between the look-up and here: start over.
        return Err(txn::conflict("bonus entry inserted concurrently"));
    }
    events.extend(bonuses);
    Ok(out)
}

/// The rules of a registered version, `None` when it is gone or no longer parses
/// (then its events make no progress here, as the engine would judge them now).
async fn rules_of(ctx: &Ctx, version: i64) -> Result<Option<Rules>> {
    let Some(text) = rules::content(&ctx.db, version).await? else {
        return Ok(None);
    };
    match Rules::parse(std::path::Path::new("rules_versions"), &text) {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            tracing::error!(version, error = %e, "a registered rules version no longer parses; recovering without its progression");
            Ok(None)
        }
    }
}

async fn recover_in(ctx: &Ctx, s: &mut ClientSession, batch: &str) -> Result<usize> {
    let mut events = pending_events(ctx, batch, Some(&mut *s)).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let plan = plan_of(ctx, Some(&mut *s), &mut events, batch).await?;
    let archive_ids = plan.archive_ids();
    let periods = ctx.db.collection::<Document>(PERIODS);
    let done = ids_of(
        find_all(
            &periods,
            doc! { "_id": { "$in": &archive_ids }, GUARD: batch },
            FindOptions::builder().projection(doc! { "_id": 1 }).build(),
            Some(&mut *s),
        )
        .await?,
    );
    transactional::apply_plain(ctx, s, &plan.without_archives(&done)).await?;
    let subs = Subscribers::load(ctx, Some(&mut *s)).await?;
    let batch_notices = notices(ctx, Some(&mut *s), &events, batch).await?;
    let seqs = HashMap::new();
    outbox::queue(ctx, Some(&mut *s), &batch_notices, &subs, Vec::new(), &seqs).await?;
    ctx.events
        .update_many(
            doc! { "pending.batch": batch },
            doc! { "$unset": { "pending": "" } },
        )
        .session(&mut *s)
        .await?;
    ctx.db
        .collection::<Document>(USERS)
        .update_many(
            doc! { "_id": { "$in": users_of(&events) } },
            doc! { "$pull": { GUARD: batch, MOVED: { "batch": batch } } },
        )
        .session(&mut *s)
        .await?;
    periods
        .update_many(
            doc! { "_id": { "$in": &archive_ids } },
            doc! { "$pull": { GUARD: batch } },
        )
        .session(s)
        .await?;
    Ok(events.len())
}

fn users_of(events: &[EventDoc]) -> Vec<String> {
    let users: BTreeSet<&str> = events.iter().map(|e| e.user_id.as_str()).collect();
    users.into_iter().map(str::to_owned).collect()
}

async fn pending_events(
    ctx: &Ctx,
    batch: &str,
    session: Option<&mut ClientSession>,
) -> Result<Vec<EventDoc>> {
    find_all(
        &ctx.events,
        doc! { "pending.batch": batch },
        FindOptions::default(),
        session,
    )
    .await
}

/// The notifications of a batch cut short, rebuilt from its stored events as the
/// engine made them: per request and user a `points.changed` (its total what the
/// user's all-time document says now, less what the batch's later requests added),
/// then the `cap.reached` of the events that used a cap up.
async fn notices<'a>(
    ctx: &Ctx,
    session: Option<&mut ClientSession>,
    events: &'a [EventDoc],
    batch: &'a str,
) -> Result<Batch<'a>> {
    let mut order: Vec<&EventDoc> = events.iter().collect();
    order.sort_by(|a, b| (request_of(a), &a.id).cmp(&(request_of(b), &b.id)));
    let users: BTreeSet<&str> = events.iter().map(|e| e.user_id.as_str()).collect();
    let standing = outbox::standings(ctx, session, &users).await?;
    // Walking back from the end gives each request's total after it.
    let mut totals: HashMap<&str, i64> = users
        .iter()
        .map(|u| (*u, standing.get(*u).map_or(0, |s| s.0)))
        .collect();
    let mut groups: Vec<(i64, &str, Vec<&EventDoc>)> = Vec::new();
    for e in order {
        match groups.last_mut() {
            Some((r, u, list)) if *r == request_of(e) && *u == e.user_id => list.push(e),
            _ => {
                // A request's events of one user are one notice even when interleaved
                // with other users' events.
                match groups
                    .iter_mut()
                    .find(|(r, u, _)| *r == request_of(e) && *u == e.user_id)
                {
                    Some((_, _, list)) => list.push(e),
                    None => groups.push((request_of(e), &e.user_id, vec![e])),
                }
            }
        }
    }
    // Each group's state before it: the total now, less what it and the user's later
    // groups of the batch added.
    let mut before = vec![0; groups.len()];
    for (k, (_, user, list)) in groups.iter().enumerate().rev() {
        let total = totals.entry(user).or_default();
        *total -= list.iter().map(|e| e.points).sum::<i64>();
        before[k] = *total;
    }
    // The engine plans the notices again, with the points the events were stored with;
    // the caps they used up are stored with them.
    let mut notices = Vec::new();
    for ((_, user, list), points) in groups.iter().zip(before) {
        let incoming: Vec<Incoming> = list
            .iter()
            .map(|e| Incoming {
                id: &e.id,
                event_type: &e.event_type,
                ts_ms: e.ts_ms,
                received_ms: e.received_ms,
                dedup_key: e.dedup_key.clone(),
                rule: Rule::Keep { points: e.points },
                stored: None,
                progression: &crate::domain::progression::NONE,
            })
            .collect();
        let mut state = UserState {
            points,
            ..UserState::default()
        };
        notices.extend(engine::apply(user, &mut state, &incoming).notices);
        notices.extend(list.iter().filter_map(|e| {
            Some(Notice::CapReached(CapReached {
                user_id: e.user_id.clone(),
                event_type: e.event_type.clone(),
                id: e.id.clone(),
                ts_ms: e.ts_ms,
                received_ms: e.received_ms,
                cap: e.cap_reached?,
            }))
        }));
    }
    Ok(Batch {
        id: batch,
        notices,
        redo: true,
    })
}

fn request_of(e: &EventDoc) -> i64 {
    e.pending.as_ref().map_or(0, |p| p.request)
}

fn ids_of(docs: Vec<Document>) -> Vec<String> {
    docs.iter()
        .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
        .collect()
}
