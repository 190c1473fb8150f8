//! One-time move of a database from the layout before `user_state` (a `type_totals`
//! document per user and type, a `period_points` document per user and period, the
//! delivery `seq` on the `all` one) to the user-state layout (state.rs), at start and
//! before the writer runs. Per user: the state document is written from the old
//! documents (the newest day, week and month become the slots), then the old documents
//! it replaces are deleted, `type_totals` last. A user whose `type_totals` are still
//! there is not finished; if its state document exists already, the interruption came
//! after it was written, and only the deletions are left. Run it with one instance
//! started first: two instances migrating the same user at once are not coordinated.

use std::collections::BTreeMap;

use anyhow::Context;
use mongodb::bson::{doc, Document};
use mongodb::options::FindOptions;
use mongodb::Database;

use super::bulk_commands::find_all;
use super::read::{int, string};
use super::schema::{period_id, EVENTS, LEGACY_TOTALS, PERIODS, USERS};
use super::state::SLOTS;
use crate::domain::period::Period;

/// Users moved per read of `type_totals`.
const PAGE: i64 = 500;

/// Moves every user still in `type_totals`; does nothing on a database without it.
pub async fn from_type_totals(db: &Database) -> anyhow::Result<()> {
    let totals = db.collection::<Document>(LEGACY_TOTALS);
    if totals.find_one(doc! {}).await?.is_none() {
        return Ok(());
    }
    let pending = db
        .collection::<Document>(EVENTS)
        .find_one(doc! { "pending": { "$exists": true } })
        .await?;
    if pending.is_some() {
        anyhow::bail!(
            "MongoDB holds the old layout (type_totals) with write batches still pending: \
             start the previous version once and let its recovery finish them (about a \
             minute), then start this one, which migrates the database"
        );
    }
    tracing::warn!("migrating MongoDB from type_totals to user_state (one-time)");
    let mut users = 0_u64;
    loop {
        let page = find_all(
            &totals,
            doc! {},
            FindOptions::builder()
                .sort(doc! { "user_id": 1 })
                .limit(PAGE)
                .build(),
            None,
        )
        .await?;
        if page.is_empty() {
            break;
        }
        let mut by_user: BTreeMap<String, Vec<Document>> = BTreeMap::new();
        for d in page {
            by_user.entry(string(&d, "user_id")?).or_default().push(d);
        }
        for (user, types) in &by_user {
            migrate_user(db, user, types)
                .await
                .with_context(|| format!("migrating user {user:?} to user_state"))?;
            users += 1;
        }
    }
    tracing::warn!(users, "MongoDB migration to user_state finished");
    Ok(())
}

async fn migrate_user(db: &Database, user: &str, types: &[Document]) -> anyhow::Result<()> {
    let states = db.collection::<Document>(USERS);
    let periods = db.collection::<Document>(PERIODS);
    let filter = doc! { "_id": user, "user_id": user };
    let state = match states.find_one(filter.clone()).await? {
        Some(done) => done,
        None => {
            let state = state_of(db, user, types).await?;
            states.insert_one(&state).await?;
            state
        }
    };
    // The documents the state now holds: `all` and the periods in its slots.
    let mut moved = vec![period_id("all", user)];
    for kind in SLOTS {
        if let Ok(key) = state
            .get_document(kind.as_str())
            .and_then(|s| s.get_str("key"))
        {
            moved.push(period_id(key, user));
        }
    }
    periods
        .delete_many(doc! { "_id": { "$in": moved }, "user_id": user })
        .await?;
    db.collection::<Document>(LEGACY_TOTALS)
        .delete_many(doc! { "user_id": user })
        .await?;
    Ok(())
}

/// The state document the old documents of `user` describe.
async fn state_of(db: &Database, user: &str, types: &[Document]) -> anyhow::Result<Document> {
    let mut by_type = Document::new();
    let (mut points, mut events) = (0, 0);
    for t in types {
        let (e, p) = (int(t, "events")?, int(t, "points")?);
        by_type.insert(string(t, "event_type")?, doc! { "events": e, "points": p });
        events += e;
        points += p;
    }
    let mut state = doc! {
        "_id": user, "user_id": user, "points": points, "events": events, "seq": 0_i64,
        "types": by_type,
    };
    let old = find_all(
        &db.collection::<Document>(PERIODS),
        doc! { "user_id": user },
        FindOptions::default(),
        None,
    )
    .await?;
    let mut newest: BTreeMap<&str, (String, i64)> = BTreeMap::new();
    for d in &old {
        let key = string(d, "period")?;
        match Period::of_key(&key) {
            Some(Period::All) => {
                state.insert("seq", int(d, "seq").unwrap_or(0));
            }
            Some(kind) => {
                let slot = newest.entry(kind.as_str()).or_default();
                if key > slot.0 {
                    *slot = (key, int(d, "points")?);
                }
            }
            None => {}
        }
    }
    for (kind, (key, points)) in newest {
        state.insert(kind, doc! { "key": key, "points": points });
    }
    Ok(state)
}
