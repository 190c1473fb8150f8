//! Erasing a user: period archives, webhook deliveries, the user's state document,
//! wallet entries and events, all found by `user_id`. On a replica set one transaction; on a standalone
//! server a marker first, so that an erasure cut short by a crash is completed by
//! recovery.

use futures_util::FutureExt;
use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::ClientSession;

use super::commit::wall_ms;
use super::schema::{DELETIONS, DELIVERIES, EVENTS, PERIODS, USERS, WALLET_ENTRIES};
use super::txn::in_transaction;
use super::{Ctx, Mode};

/// Erases a user. Returns whether anything existed.
pub async fn delete_user(ctx: &Ctx, user_id: &str) -> Result<bool> {
    match ctx.mode {
        Mode::Transactions => {
            in_transaction(ctx, &(ctx, user_id), |s, (ctx, user_id)| {
                erase(ctx, user_id, Some(s)).boxed()
            })
            .await
        }
        Mode::Journal => {
            // The marker makes an erasure cut short by a crash finish at recovery.
            let deletions = ctx.db.collection::<Document>(DELETIONS);
            deletions
                .update_one(
                    doc! { "_id": user_id },
                    doc! { "$setOnInsert": { "at_ms": wall_ms() } },
                )
                .upsert(true)
                .await?;
            let existed = erase(ctx, user_id, None).await?;
            deletions.delete_one(doc! { "_id": user_id }).await?;
            Ok(existed)
        }
    }
}

/// Leaderboard entries and counters first, events last, so that an erasure cut short
/// leaves the user findable and is completed by running it again.
pub async fn erase(ctx: &Ctx, user_id: &str, session: Option<&mut ClientSession>) -> Result<bool> {
    let coll = |name| ctx.db.collection::<Document>(name);
    let by_user = doc! { "user_id": user_id };
    let deleted = match session {
        Some(s) => {
            coll(PERIODS)
                .delete_many(by_user.clone())
                .session(&mut *s)
                .await?;
            coll(DELIVERIES)
                .delete_many(by_user.clone())
                .session(&mut *s)
                .await?;
            let state = coll(USERS)
                .delete_many(by_user.clone())
                .session(&mut *s)
                .await?;
            let wallet = coll(WALLET_ENTRIES)
                .delete_many(by_user.clone())
                .session(&mut *s)
                .await?;
            let events = coll(EVENTS).delete_many(by_user).session(s).await?;
            state.deleted_count + wallet.deleted_count + events.deleted_count
        }
        None => {
            coll(PERIODS).delete_many(by_user.clone()).await?;
            crate::faults::crash_point("mongo.erase.after_boards");
            coll(DELIVERIES).delete_many(by_user.clone()).await?;
            let state = coll(USERS).delete_many(by_user.clone()).await?;
            let wallet = coll(WALLET_ENTRIES).delete_many(by_user.clone()).await?;
            let events = coll(EVENTS).delete_many(by_user).await?;
            state.deleted_count + wallet.deleted_count + events.deleted_count
        }
    };
    Ok(deleted > 0)
}
