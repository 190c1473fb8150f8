//! Group commits on a standalone server (no transactions): events are inserted marked
//! `pending` with a batch id, counters are incremented with `$inc` upserts guarded by
//! that batch id (a counter document records the batches added into it and does not
//! match them again), deliveries are queued with ids derived from the batch, and only
//! then is `pending` removed and the guard ids pulled. A crash anywhere leaves either
//! pending events, which recovery (recovery.rs) re-applies (the guards make that a no-op
//! wherever the first attempt got through), or stray guard ids, which are harmless. An
//! acknowledged event is durable (`j: true`) and counted exactly once; after a crash,
//! its counters may lag until recovery runs. One writer instance per database.

use std::collections::HashSet;

use mongodb::bson::{doc, Document};
use mongodb::error::Result;

use super::boards;
use super::bulk_commands as ops;
use super::commit::{wall_ms, Applied, Committed};
use super::judge::judge;
use super::outbox::{self, Batch, Subscribers};
use super::schema::{Deltas, Pending, GUARD, PERIODS, TOTALS};
use super::txn::conflict;
use super::Ctx;
use crate::domain::event::NewEvent;
use crate::faults::crash_point;

pub async fn record(ctx: &Ctx, requests: &[&[NewEvent]]) -> Result<Committed> {
    let pending = Pending {
        batch: uuid::Uuid::now_v7().simple().to_string(),
        request: 0,
        at_ms: wall_ms(),
    };
    let judged = judge(ctx, requests, Some(&pending), None).await?;
    let rejected = ops::insert_new(&ctx.events, &judged.docs, None).await?;
    if !rejected.is_empty() {
        // Only another writer on this database inserts between the engine's reads and
        // here, which a standalone server does not support. The events that did go in
        // are pending: recovery counts them, and the client's retry finds them stored.
        return Err(conflict("event inserted concurrently"));
    }
    crash_point("mongo.journal.after_insert");
    let subs = Subscribers::load(ctx, None).await?;
    let boards = boards::before(ctx, None, &subs, &judged.deltas).await?;
    apply_guarded(ctx, &judged.deltas, &pending.batch).await?;
    crash_point("mongo.journal.after_counters");
    let ranks = boards::changes(ctx, None, &subs, boards, &judged.deltas).await?;
    let batch = Batch {
        id: &pending.batch,
        notices: judged.notices,
        redo: false,
    };
    outbox::queue(ctx, None, &batch, &subs, ranks).await?;
    crash_point("mongo.journal.after_outbox");
    Ok(Committed {
        recorded: judged.recorded,
        cleanup: Some(Applied {
            batch: pending.batch,
            event_ids: judged.docs.iter().map(|d| d.id.clone()).collect(),
            total_ids: judged.deltas.total_ids(),
            period_ids: judged.deltas.period_ids(),
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
