//! Group commits on a replica set or sharded cluster: the engine's verdict, the new
//! events, their counter increments and their webhook deliveries in one multi-document
//! transaction. It commits whole or not at all; a write conflict with another instance
//! (the same user's state, the same event) is retried from fresh reads, so caps and
//! duplicates hold across instances.
//!
//! The first attempt does not look up stored events: it takes every event to be new
//! and lets the unique `dedup` index check. A duplicate aborts the transaction, and the
//! retry looks the group's dedup keys up first. Distinct events, the common case, so
//! cost one round trip less; a resent event costs one aborted attempt.

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt;
use mongodb::error::Result;
use mongodb::ClientSession;

use super::boards;
use super::bulk_commands as ops;
use super::judge::judge;
use super::outbox::{self, Batch, Subscribers};
use super::schema::{PERIODS, USERS};
use super::state::Plan;
use super::txn::{conflict, in_transaction};
use super::Ctx;
use crate::domain::event::NewEvent;
use crate::faults::crash_point;
use crate::store::Recorded;

/// Stores the events of `requests` exactly once each, in one transaction.
pub async fn record(ctx: &Ctx, requests: &[&[NewEvent]]) -> Result<Vec<Recorded>> {
    let look_up = AtomicBool::new(false);
    in_transaction(
        ctx,
        &(ctx, requests, &look_up),
        |s, (ctx, requests, look_up)| record_in(ctx, s, requests, look_up).boxed(),
    )
    .await
}

async fn record_in(
    ctx: &Ctx,
    s: &mut ClientSession,
    requests: &[&[NewEvent]],
    look_up: &AtomicBool,
) -> Result<Vec<Recorded>> {
    let judged = judge(
        ctx,
        requests,
        None,
        Some(&mut *s),
        look_up.load(Ordering::Relaxed),
    )
    .await?;
    // A duplicate: an event stored before (unseen, as this attempt did not look) or
    // inserted by another writer after this transaction's reads. The retry looks up.
    if !ops::insert_new(&ctx.events, &judged.docs, Some(&mut *s))
        .await?
        .is_empty()
    {
        look_up.store(true, Ordering::Relaxed);
        return Err(conflict("event stored already or concurrently"));
    }
    let subs = Subscribers::load(ctx, Some(&mut *s)).await?;
    let boards = boards::before(ctx, Some(&mut *s), &subs, &judged.plan).await?;
    apply_plain(ctx, s, &judged.plan).await?;
    let ranks = boards::changes(ctx, Some(&mut *s), &subs, boards, &judged.plan).await?;
    let batch_id = uuid::Uuid::now_v7().simple().to_string();
    let batch = Batch {
        id: &batch_id,
        notices: judged.notices,
        redo: false,
    };
    outbox::queue(ctx, Some(s), &batch, &subs, ranks, &judged.seqs).await?;
    crash_point("mongo.record.before_commit");
    Ok(judged.recorded)
}

/// The plan's state updates, then its archive increments (a command each, the second
/// only when a slot rolled over or an event was late).
pub async fn apply_plain(ctx: &Ctx, s: &mut ClientSession, plan: &Plan) -> Result<()> {
    for (coll, statements) in [
        (USERS, plan.user_updates(None, true)?),
        (PERIODS, plan.archive_updates(None, true)),
    ] {
        if statements.is_empty() {
            continue;
        }
        if !ops::update(ctx, coll, &statements, Some(&mut *s))
            .await?
            .is_empty()
        {
            return Err(conflict("counter created concurrently"));
        }
    }
    Ok(())
}
