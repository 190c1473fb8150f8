//! Replaying one user's ledger, and with `apply` rewriting it in one transaction: the
//! changed events, then the user's state document and period archives rebuilt from
//! the replayed points. A concurrent write of the user touches the same state document
//! and conflicts, so one of the two is retried. Without transactions (a standalone
//! server) a rewrite cut short by a crash would leave totals that differ from the
//! ledger, so applying is refused there; dry runs work everywhere.

use futures_util::FutureExt;
use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::ClientSession;

use super::bulk_commands::{self, find_all};
use super::outbox;
use super::schema::{EventDoc, EVENTS, PERIODS, PROGRESS, USERS};
use super::state::{progress_of, progress_set, Plan};
use super::transactional;
use super::txn::{conflict, in_transaction};
use super::Ctx;
use crate::domain::engine::{replay, Bonus, LedgerEntry};
use crate::domain::progression::Progress;
use crate::domain::rules::Rules;
use crate::store::UserRecompute;

pub async fn dry_run(ctx: &Ctx, user_id: &str, rules: &Rules) -> Result<UserRecompute> {
    let entries = ledger(ctx, user_id, None).await?;
    let current = current_progress(ctx, user_id, None).await?;
    let replayed = replay(user_id, rules, &current, &entries);
    Ok(UserRecompute::of(&entries, &replayed, &current, rules))
}

pub async fn apply(ctx: &Ctx, user_id: &str, rules: &Rules) -> Result<UserRecompute> {
    in_transaction(ctx, &(ctx, user_id, rules), |s, (ctx, user_id, rules)| {
        apply_in(ctx, s, user_id, rules).boxed()
    })
    .await
}

async fn apply_in(
    ctx: &Ctx,
    s: &mut ClientSession,
    user_id: &str,
    rules: &Rules,
) -> Result<UserRecompute> {
    let entries = ledger(ctx, user_id, Some(&mut *s)).await?;
    // Read in the transaction: a commit of the user changing it meanwhile conflicts
    // with the state document's rewrite below.
    let current = current_progress(ctx, user_id, Some(&mut *s)).await?;
    let replayed = replay(user_id, rules, &current, &entries);
    let result = UserRecompute::of(&entries, &replayed, &current, rules);
    let progress_same = replayed.state.progress == current
        || (!rules.progression().tracks_progress() && current == Progress::default());
    let bonuses_same = replayed.removed.is_empty() && replayed.added.is_empty();
    if result.changed_events == 0 && progress_same && bonuses_same {
        return Ok(result);
    }
    let statements: Vec<(String, Document)> = replayed
        .changed(&entries)
        .into_iter()
        .map(|i| (&entries[i], replayed.entries[i]))
        .map(|(e, r)| {
            let set = doc! { "points": r.points, "base_points": r.base_points, "rules_version": rules.version() };
            (e.id.clone(), doc! { "q": { "_id": &e.id, "user_id": user_id }, "u": { "$set": set } })
        })
        .collect();
    bulk_commands::update(ctx, EVENTS, &statements, Some(&mut *s)).await?;
    // Bonus entries the replay no longer awards go; those it awards anew come in (after
    // the removals: one may take over a removed one's dedup key).
    let removed: Vec<&str> = replayed
        .removed
        .iter()
        .map(|&i| entries[i].id.as_str())
        .collect();
    if !removed.is_empty() {
        ctx.events
            .delete_many(doc! { "_id": { "$in": &removed }, "user_id": user_id })
            .session(&mut *s)
            .await?;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let added: Vec<EventDoc> = replayed
        .added
        .iter()
        .map(|b| {
            EventDoc::bonus(
                user_id,
                &Bonus {
                    received_ms: now,
                    ..b.clone()
                },
                rules.version(),
                None,
            )
        })
        .collect();
    if !bulk_commands::insert_new(&ctx.events, &added, Some(&mut *s))
        .await?
        .is_empty()
    {
        return Err(conflict("bonus entry stored concurrently"));
    }

    // The user's state document and archives go, and the replayed sums come back as
    // fresh ones, placed as from an empty state (newest periods in the slots).
    let mut plan = Plan::default();
    plan.add(user_id, None, &replayed.counters);
    // The state document also carries the user's webhook delivery sequence, which must
    // not go back (see outbox.rs): the fresh document continues it.
    let users = ctx.db.collection::<Document>(USERS);
    let seq = users
        .find_one(doc! { "_id": user_id, "user_id": user_id })
        .projection(doc! { "seq": 1 })
        .session(&mut *s)
        .await?
        .and_then(|d| d.get_i64("seq").ok())
        .unwrap_or(0);
    let by_user = doc! { "user_id": user_id };
    users.delete_many(by_user.clone()).session(&mut *s).await?;
    ctx.db
        .collection::<Document>(PERIODS)
        .delete_many(by_user)
        .session(&mut *s)
        .await?;
    transactional::apply_plain(ctx, s, &plan).await?;
    let mut set = progress_set(&replayed.state.progress)?;
    if seq > 0 {
        set.insert("seq", seq + 1);
    }
    users
        .update_one(
            doc! { "_id": user_id, "user_id": user_id },
            doc! { "$set": set, "$setOnInsert": { "user_id": user_id } },
        )
        .upsert(true)
        .session(&mut *s)
        .await?;
    outbox::queue_recompute(ctx, s, user_id, &result, rules).await?;
    Ok(result)
}

async fn current_progress(
    ctx: &Ctx,
    user_id: &str,
    session: Option<&mut ClientSession>,
) -> Result<Progress> {
    let users = ctx.db.collection::<Document>(USERS);
    let find = users
        .find_one(doc! { "_id": user_id, "user_id": user_id })
        .projection(doc! { PROGRESS: 1 });
    let state = match session {
        Some(s) => find.session(s).await?,
        None => find.await?,
    };
    Ok(state.as_ref().map(progress_of).unwrap_or_default())
}

async fn ledger(
    ctx: &Ctx,
    user_id: &str,
    session: Option<&mut ClientSession>,
) -> Result<Vec<LedgerEntry>> {
    let docs: Vec<Document> = find_all(
        &ctx.db.collection::<Document>(EVENTS),
        doc! { "user_id": user_id },
        FindOptions::builder()
            .projection(doc! { "event_type": 1, "ts_ms": 1, "points": 1, "base_points": 1 })
            .build(),
        session,
    )
    .await?;
    Ok(docs
        .iter()
        .filter_map(|d| {
            let points = d.get_i64("points").ok()?;
            Some(LedgerEntry {
                id: d.get_str("_id").ok()?.to_owned(),
                event_type: d.get_str("event_type").ok()?.to_owned(),
                ts_ms: d.get_i64("ts_ms").ok()?,
                points,
                base_points: d.get_i64("base_points").unwrap_or(points),
            })
        })
        .collect())
}
