//! Group commits on a replica set or sharded cluster: the engine's verdict, the new
//! events, their counter increments and their webhook deliveries in one multi-document
//! transaction. It commits whole or not at all; a write conflict with another instance
//! (the same user's counters, the same event) is retried from fresh reads, so caps and
//! duplicates hold across instances.

use futures_util::FutureExt;
use mongodb::error::Result;
use mongodb::ClientSession;

use super::boards;
use super::bulk_commands as ops;
use super::judge::judge;
use super::outbox::{self, Batch, Subscribers};
use super::schema::{Deltas, PERIODS, TOTALS};
use super::txn::{conflict, in_transaction};
use super::Ctx;
use crate::domain::event::NewEvent;
use crate::faults::crash_point;
use crate::store::Recorded;

/// Stores the events of `requests` exactly once each, in one transaction.
pub async fn record(ctx: &Ctx, requests: &[&[NewEvent]]) -> Result<Vec<Recorded>> {
    in_transaction(ctx, &(ctx, requests), |s, (ctx, requests)| {
        record_in(ctx, s, requests).boxed()
    })
    .await
}

async fn record_in(
    ctx: &Ctx,
    s: &mut ClientSession,
    requests: &[&[NewEvent]],
) -> Result<Vec<Recorded>> {
    let judged = judge(ctx, requests, None, Some(&mut *s)).await?;
    // Duplicates here mean another writer inserted the same event or counter document
    // after this transaction's reads: the retry sees it.
    if !ops::insert_new(&ctx.events, &judged.docs, Some(&mut *s))
        .await?
        .is_empty()
    {
        return Err(conflict("event inserted concurrently"));
    }
    let subs = Subscribers::load(ctx, Some(&mut *s)).await?;
    let boards = boards::before(ctx, Some(&mut *s), &subs, &judged.deltas).await?;
    apply_plain(ctx, s, &judged.deltas).await?;
    let ranks = boards::changes(ctx, Some(&mut *s), &subs, boards, &judged.deltas).await?;
    let batch_id = uuid::Uuid::now_v7().simple().to_string();
    let batch = Batch {
        id: &batch_id,
        notices: judged.notices,
        redo: false,
    };
    outbox::queue(ctx, Some(s), &batch, &subs, ranks).await?;
    crash_point("mongo.record.before_commit");
    Ok(judged.recorded)
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
