//! Group commits on a standalone server (no transactions): events are inserted marked
//! `pending` with a batch id, counters are updated with upserts guarded by that batch
//! id (a counter document records the batches added into it and does not match them
//! again): first every user's state document, recording there what the batch owes the
//! period archives, then those archives. Deliveries are queued with ids derived from
//! the batch, and only then is `pending` removed and the guard ids pulled. A crash anywhere leaves either
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
use super::schema::{Pending, GUARD, PERIODS, USERS};
use super::state::{Plan, MOVED};
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
    // Looked up first: the events go in before anything could undo them.
    let judged = judge(ctx, requests, Some(&pending), None, true).await?;
    let rejected = ops::insert_new(&ctx.events, &judged.docs, None).await?;
    if !rejected.is_empty() {
        // Only another writer on this database inserts between the engine's reads and
        // here, which a standalone server does not support. The events that did go in
        // are pending: recovery counts them, and the client's retry finds them stored.
        return Err(conflict("event inserted concurrently"));
    }
    crash_point("mongo.journal.after_insert");
    let subs = Subscribers::load(ctx, None).await?;
    let boards = boards::before(ctx, None, &subs, &judged.plan).await?;
    guarded_states(ctx, &judged.plan, &pending.batch).await?;
    crash_point("mongo.journal.after_states");
    guarded_archives(ctx, &judged.plan, &pending.batch).await?;
    crash_point("mongo.journal.after_counters");
    let ranks = boards::changes(ctx, None, &subs, boards, &judged.plan).await?;
    let batch = Batch {
        id: &pending.batch,
        notices: judged.notices,
        redo: false,
    };
    outbox::queue(ctx, None, &batch, &subs, ranks, &judged.seqs).await?;
    crash_point("mongo.journal.after_outbox");
    Ok(Committed {
        recorded: judged.recorded,
        cleanup: Some(Applied {
            batch: pending.batch,
            event_ids: judged.docs.iter().map(|d| d.id.clone()).collect(),
            user_ids: judged.plan.user_ids(),
            archive_ids: judged.plan.archive_ids(),
        }),
    })
}

/// Applies `plan` to every counter document that does not hold `batch` yet: all the
/// state documents, then the archives. A state document holding the batch therefore
/// means its archive increments are recorded (under `moved`), whatever came after.
pub async fn apply_guarded(ctx: &Ctx, plan: &Plan, batch: &str) -> Result<()> {
    guarded_states(ctx, plan, batch).await?;
    guarded_archives(ctx, plan, batch).await
}

async fn guarded_states(ctx: &Ctx, plan: &Plan, batch: &str) -> Result<()> {
    guarded(ctx, USERS, |upsert| plan.user_updates(Some(batch), upsert)).await
}

async fn guarded_archives(ctx: &Ctx, plan: &Plan, batch: &str) -> Result<()> {
    guarded(ctx, PERIODS, |upsert| {
        Ok(plan.archive_updates(Some(batch), upsert))
    })
    .await
}

async fn guarded(
    ctx: &Ctx,
    coll: &str,
    statements: impl Fn(bool) -> Result<Vec<(String, Document)>>,
) -> Result<()> {
    let duplicates = ops::update(ctx, coll, &statements(true)?, None).await?;
    if duplicates.is_empty() {
        return Ok(());
    }
    // A duplicate key means the document exists: it holds the batch already, or another
    // writer created it meanwhile. The same statement without upsert tells them apart.
    let ids: HashSet<String> = duplicates.into_iter().collect();
    let again: Vec<(String, Document)> = statements(false)?
        .into_iter()
        .filter(|(id, _)| ids.contains(id))
        .collect();
    ops::update(ctx, coll, &again, None).await?;
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
    let (users, periods) = (
        ctx.db.collection::<Document>(USERS),
        ctx.db.collection::<Document>(PERIODS),
    );
    let pull_owed = doc! { "$pull": { GUARD: &a.batch, MOVED: { "batch": &a.batch } } };
    let pull = doc! { "$pull": { GUARD: &a.batch } };
    let archives = async {
        if a.archive_ids.is_empty() {
            return Ok(());
        }
        periods
            .update_many(doc! { "_id": { "$in": &a.archive_ids } }, pull)
            .await
            .map(drop)
    };
    tokio::try_join!(
        users.update_many(doc! { "_id": { "$in": &a.user_ids } }, pull_owed),
        archives,
    )?;
    Ok(())
}
