//! One group commit, in either mode:
//!
//! - Transactions (replica set, sharded cluster): the new events and their counter
//!   increments commit atomically in one multi-document transaction.
//! - Journal (standalone server): events are inserted marked `pending` with a batch id,
//!   counters are incremented with `$inc` upserts guarded by that batch id (a counter
//!   document records the batches added into it and does not match them again), and only
//!   then is `pending` removed and the guard ids pulled. A crash anywhere leaves either
//!   pending events, which recovery re-applies (the guards make that a no-op wherever
//!   the first attempt got through), or stray guard ids, which are harmless.

use std::collections::HashSet;

use futures_util::FutureExt;
use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::ClientSession;

use super::boards;
use super::bulk_commands as ops;
use super::caps::{self, Awarder};
use super::outbox::{self, Batch, Subscribers};
use super::schema::{Deltas, EventDoc, Pending, GUARD, PERIODS, TOTALS};
use super::txn::{conflict, in_transaction};
use super::{Ctx, Mode};
use crate::domain::caps::Cap;
use crate::domain::event::NewEvent;
use crate::faults::crash_point;
use crate::store::RecordOutcome;

pub struct Committed {
    /// One per event given, in order.
    pub outcomes: Vec<RecordOutcome>,
    /// Tidying left once clients have their answers (journal mode).
    pub cleanup: Option<Applied>,
}

/// A batch whose counters are in: what [`finish`] needs to retire it.
pub struct Applied {
    pub batch: String,
    pub event_ids: Vec<String>,
    pub total_ids: Vec<String>,
    pub period_ids: Vec<String>,
}

/// Stores `events` (no two with the same user and dedup key) exactly once each.
pub async fn record(ctx: &Ctx, events: &[&NewEvent]) -> Result<Committed> {
    match ctx.mode {
        Mode::Transactions => {
            let outcomes = in_transaction(ctx, &(ctx, events), |s, (ctx, events)| {
                record_in(ctx, s, events).boxed()
            })
            .await?;
            Ok(Committed {
                outcomes,
                cleanup: None,
            })
        }
        Mode::Journal => record_journaled(ctx, events).await,
    }
}

async fn record_in(
    ctx: &Ctx,
    s: &mut ClientSession,
    events: &[&NewEvent],
) -> Result<Vec<RecordOutcome>> {
    let stored = ops::stored_ids(ctx, events, Some(&mut *s)).await?;
    let mut docs = Vec::new();
    let mut deltas = Deltas::default();
    let mut awarder = Awarder::default();
    let mut outcomes = Vec::with_capacity(events.len());
    let batch_id = uuid::Uuid::now_v7().simple().to_string();
    let mut batch = Batch {
        id: &batch_id,
        created: Vec::new(),
        reached: Vec::new(),
        redo: false,
    };
    for e in events {
        if let Some(id) = stored.get(&(e.user_id.clone(), e.dedup_key())) {
            outcomes.push(RecordOutcome::Duplicate { id: id.clone() });
            continue;
        }
        let (points, reached) = awarder.award(ctx, e, Some(&mut *s)).await?;
        docs.push(EventDoc::new(e, None).with_points(points));
        deltas.add(&e.user_id, &e.event_type, e.ts_ms, points);
        batch.note(e, points, reached);
        outcomes.push(RecordOutcome::Created {
            id: e.id.clone(),
            points,
        });
    }
    // Duplicates here mean another writer inserted the same event or counter document
    // after this transaction's reads: the retry sees it.
    if !ops::insert_new(&ctx.events, &docs, Some(&mut *s))
        .await?
        .is_empty()
    {
        return Err(conflict("event inserted concurrently"));
    }
    let subs = Subscribers::load(ctx, Some(&mut *s)).await?;
    let boards = boards::before(ctx, Some(&mut *s), &subs, &deltas).await?;
    apply_plain(ctx, s, &deltas).await?;
    let ranks = boards::changes(ctx, Some(&mut *s), &subs, boards, &deltas).await?;
    outbox::queue(ctx, Some(s), &batch, &subs, ranks).await?;
    crash_point("mongo.record.before_commit");
    Ok(outcomes)
}

async fn apply_plain(ctx: &Ctx, s: &mut ClientSession, deltas: &Deltas) -> Result<()> {
    for (coll, statements) in [
        (TOTALS, deltas.total_updates(None, true)),
        (PERIODS, deltas.period_updates(None, true)),
    ] {
        if !ops::update(ctx, coll, &statements, Some(&mut *s))
            .await?
            .is_empty()
        {
            return Err(conflict("counter created concurrently"));
        }
    }
    Ok(())
}

async fn record_journaled(ctx: &Ctx, events: &[&NewEvent]) -> Result<Committed> {
    let pending = Pending {
        batch: uuid::Uuid::now_v7().simple().to_string(),
        at_ms: wall_ms(),
    };
    // Capped events need their points before the insert: events already stored are
    // left out of the cap's count (the insert will reject them as duplicates).
    let mut awarded: Vec<(i64, Option<Cap>)> = events.iter().map(|e| (e.points, None)).collect();
    if caps::any(events) {
        let capped: Vec<&NewEvent> = events.iter().filter(|e| e.cap.is_some()).copied().collect();
        let stored = ops::stored_ids(ctx, &capped, None).await?;
        let mut awarder = Awarder::default();
        for (e, award) in events.iter().zip(awarded.iter_mut()) {
            if e.cap.is_some() && !stored.contains_key(&(e.user_id.clone(), e.dedup_key())) {
                *award = awarder.award(ctx, e, None).await?;
            }
        }
    }
    // The cap an event used up is stored with it, for recovery to notify it.
    let docs: Vec<EventDoc> = events
        .iter()
        .zip(&awarded)
        .map(|(e, &(points, reached))| {
            EventDoc::new(e, Some(pending.clone()))
                .with_points(points)
                .reaching(reached)
        })
        .collect();
    let rejected: HashSet<usize> = ops::insert_new(&ctx.events, &docs, None)
        .await?
        .into_iter()
        .collect();
    crash_point("mongo.journal.after_insert");
    let repeats: Vec<&NewEvent> = events
        .iter()
        .enumerate()
        .filter(|(i, _)| rejected.contains(i))
        .map(|(_, e)| *e)
        .collect();
    let stored = ops::stored_ids(ctx, &repeats, None).await?;
    let mut deltas = Deltas::default();
    let mut event_ids = Vec::new();
    let mut batch = Batch {
        id: &pending.batch,
        created: Vec::new(),
        reached: Vec::new(),
        redo: false,
    };
    let outcomes = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if rejected.contains(&i) {
                let key = (e.user_id.clone(), e.dedup_key());
                // Absent only if the user was erased in between; SQLite answers "" too.
                let id = stored.get(&key).cloned().unwrap_or_default();
                return RecordOutcome::Duplicate { id };
            }
            let (points, reached) = awarded[i];
            deltas.add(&e.user_id, &e.event_type, e.ts_ms, points);
            event_ids.push(e.id.clone());
            batch.note(e, points, reached);
            RecordOutcome::Created {
                id: e.id.clone(),
                points,
            }
        })
        .collect();
    let subs = Subscribers::load(ctx, None).await?;
    let boards = boards::before(ctx, None, &subs, &deltas).await?;
    apply_guarded(ctx, &deltas, &pending.batch).await?;
    crash_point("mongo.journal.after_counters");
    let ranks = boards::changes(ctx, None, &subs, boards, &deltas).await?;
    outbox::queue(ctx, None, &batch, &subs, ranks).await?;
    crash_point("mongo.journal.after_outbox");
    Ok(Committed {
        outcomes,
        cleanup: Some(Applied {
            batch: pending.batch,
            event_ids,
            total_ids: deltas.total_ids(),
            period_ids: deltas.period_ids(),
        }),
    })
}

/// Adds `deltas` to every counter document that does not hold `batch` yet.
pub async fn apply_guarded(ctx: &Ctx, deltas: &Deltas, batch: &str) -> Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let totals = deltas.total_updates(Some(batch), true);
    let periods = deltas.period_updates(Some(batch), true);
    let (t, p) = tokio::try_join!(
        ops::update(ctx, TOTALS, &totals, None),
        ops::update(ctx, PERIODS, &periods, None)
    )?;
    if t.is_empty() && p.is_empty() {
        return Ok(());
    }
    // A duplicate key means the document exists: it holds the batch already, or another
    // writer created it meanwhile. The same statement without upsert tells them apart.
    let only = |all: Vec<(String, Document)>, ids: Vec<String>| -> Vec<(String, Document)> {
        let ids: HashSet<String> = ids.into_iter().collect();
        all.into_iter().filter(|(id, _)| ids.contains(id)).collect()
    };
    let totals = only(deltas.total_updates(Some(batch), false), t);
    let periods = only(deltas.period_updates(Some(batch), false), p);
    tokio::try_join!(
        ops::update(ctx, TOTALS, &totals, None),
        ops::update(ctx, PERIODS, &periods, None)
    )?;
    Ok(())
}

/// Retires an applied batch: first its events stop being pending, then the guards go.
/// The other order would let a crash in between make recovery count the batch twice.
pub async fn finish(ctx: &Ctx, a: &Applied) -> Result<()> {
    ctx.events
        .update_many(
            doc! { "_id": { "$in": &a.event_ids }, "pending.batch": &a.batch },
            doc! { "$unset": { "pending": "" } },
        )
        .await?;
    crash_point("mongo.journal.after_unpend");
    let pull = doc! { "$pull": { GUARD: &a.batch } };
    let (totals, periods) = (
        ctx.db.collection::<Document>(TOTALS),
        ctx.db.collection::<Document>(PERIODS),
    );
    tokio::try_join!(
        totals.update_many(doc! { "_id": { "$in": &a.total_ids } }, pull.clone()),
        periods.update_many(doc! { "_id": { "$in": &a.period_ids } }, pull.clone()),
    )?;
    Ok(())
}

pub fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
