//! Erasing a user: leaderboard entries, webhook deliveries, totals and events. On a replica set one
//! transaction; on a standalone server a marker first, so that an erasure cut short by
//! a crash is completed by recovery.

use std::collections::HashSet;

use futures_util::FutureExt;
use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::ClientSession;

use super::bulk_commands::find_all;
use super::commit::wall_ms;
use super::schema::{period_id, DELETIONS, DELIVERIES, EVENTS, PERIODS, TOTALS};
use super::txn::in_transaction;
use super::{Ctx, Mode};
use crate::domain::period::PeriodKey;

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

/// Leaderboard entries first, events last: the events name the entries' periods, so
/// an erasure cut short can always be completed by running it again.
pub async fn erase(
    ctx: &Ctx,
    user_id: &str,
    mut session: Option<&mut ClientSession>,
) -> Result<bool> {
    let options = FindOptions::builder()
        .projection(doc! { "_id": 0, "ts_ms": 1 })
        .build();
    let times: Vec<Document> = find_all(
        &ctx.db.collection(EVENTS),
        doc! { "user_id": user_id },
        options,
        session.as_deref_mut(),
    )
    .await?;
    let mut periods = HashSet::new();
    for t in times {
        if let Ok(ms) = t.get_i64("ts_ms") {
            periods.extend(PeriodKey::keys_for_event(ms).map(|k| period_id(&k, user_id)));
        }
    }
    let periods: Vec<String> = periods.into_iter().collect();
    let coll = |name| ctx.db.collection::<Document>(name);
    let by_user = doc! { "user_id": user_id };
    let by_periods = doc! { "_id": { "$in": periods } };
    let deleted = match session {
        Some(s) => {
            coll(PERIODS)
                .delete_many(by_periods)
                .session(&mut *s)
                .await?;
            coll(DELIVERIES)
                .delete_many(by_user.clone())
                .session(&mut *s)
                .await?;
            let totals = coll(TOTALS)
                .delete_many(by_user.clone())
                .session(&mut *s)
                .await?;
            let events = coll(EVENTS).delete_many(by_user).session(s).await?;
            totals.deleted_count + events.deleted_count
        }
        None => {
            coll(PERIODS).delete_many(by_periods).await?;
            crate::faults::crash_point("mongo.erase.after_boards");
            coll(DELIVERIES).delete_many(by_user.clone()).await?;
            let totals = coll(TOTALS).delete_many(by_user.clone()).await?;
            let events = coll(EVENTS).delete_many(by_user).await?;
            totals.deleted_count + events.deleted_count
        }
    };
    Ok(deleted > 0)
}
