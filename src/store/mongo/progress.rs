//! Per-user progression, kept in the user's state document (see state.rs) beside the
//! counters it moves with: read by the API, its time zone set, unlocks counted.

use futures_util::FutureExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::Result;
use mongodb::ClientSession;

use super::bulk_commands;
use super::schema::{ACHIEVEMENTS, PROGRESS, USERS};
use super::state::{progress_of, progress_set};
use super::txn::{conflict, in_transaction};
use super::{Ctx, Mode};
use crate::domain::progression::Progress;
use crate::store::AchievementCounts;

pub async fn user_progress(ctx: &Ctx, user_id: &str) -> Result<Progress> {
    let state = ctx
        .db
        .collection::<Document>(USERS)
        .find_one(doc! { "_id": user_id, "user_id": user_id })
        .projection(doc! { PROGRESS: 1 })
        .await?;
    Ok(state.as_ref().map(progress_of).unwrap_or_default())
}

/// Sets the user's time zone in their progress. It is a read-modify-write of the
/// state document every commit of the user writes: with transactions the two conflict
/// and one is retried from fresh reads; without, the single writer task runs it
/// between group commits (and recovery advances whatever the document holds then).
pub async fn set_timezone(ctx: &Ctx, user_id: &str, timezone: &str) -> Result<()> {
    match ctx.mode {
        Mode::Transactions => {
            in_transaction(ctx, &(ctx, user_id, timezone), |s, (ctx, user_id, tz)| {
                set_in(ctx, Some(s), user_id, tz).boxed()
            })
            .await
        }
        Mode::Journal => set_in(ctx, None, user_id, timezone).await,
    }
}

async fn set_in(
    ctx: &Ctx,
    mut session: Option<&mut ClientSession>,
    user_id: &str,
    timezone: &str,
) -> Result<()> {
    let users = ctx.db.collection::<Document>(USERS);
    let filter = doc! { "_id": user_id, "user_id": user_id };
    let find = users
        .find_one(filter.clone())
        .projection(doc! { PROGRESS: 1 });
    let state = match session.as_deref_mut() {
        Some(s) => find.session(s).await?,
        None => find.await?,
    };
    let mut progress = state.as_ref().map(progress_of).unwrap_or_default();
    // Unset is UTC, as at ingest: the stored value stays the same for either spelling.
    progress.timezone = (timezone != "UTC").then(|| timezone.to_owned());
    // A user without events gets a document without counters, which the boards skip
    // (see board.rs): their first event's commit then finds the time zone here.
    let update = doc! {
        "q": filter,
        "u": { "$set": progress_set(&progress)?, "$setOnInsert": { "user_id": user_id } },
        "upsert": true,
    };
    let duplicates =
        bulk_commands::update(ctx, USERS, &[(user_id.to_owned(), update)], session).await?;
    if !duplicates.is_empty() {
        // Another writer created the document meanwhile: read it again.
        return Err(conflict("user state created concurrently"));
    }
    Ok(())
}

/// `users`: those with any ledger entry (bonus entries count, as in `events`).
/// `unlocked`: per achievement, the state documents listing it (the multikey index).
pub async fn counts(ctx: &Ctx) -> Result<AchievementCounts> {
    let users = ctx.db.collection::<Document>(USERS);
    let with_entries = users
        .count_documents(doc! { "events": { "$gt": 0_i64 } })
        .await?;
    let ids = users.distinct(ACHIEVEMENTS, doc! {}).await?;
    let mut unlocked = std::collections::BTreeMap::new();
    for id in ids {
        let Bson::String(id) = id else { continue };
        let n = users.count_documents(doc! { ACHIEVEMENTS: &id }).await?;
        if n > 0 {
            unlocked.insert(id, n);
        }
    }
    Ok(AchievementCounts {
        users: with_entries,
        unlocked,
    })
}
