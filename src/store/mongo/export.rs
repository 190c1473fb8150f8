//! Enumerating users and their counters, so a cache can be rebuilt from the store.

use std::collections::HashMap;

use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::Database;

use super::bulk_commands::find_all;
use super::read::{int, string, types_of};
use super::schema::{PERIODS, USERS};
use super::state::Loaded;
use crate::store::UserCounters;

/// Users with counters, ascending by byte order (MongoDB's default string order), strictly
/// after `after`: one state document per user, walked through the `_id` index.
pub async fn user_ids(db: &Database, after: Option<String>, limit: u32) -> Result<Vec<String>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // A state document without counters only holds a time zone set before the
    // user's first event (see progress.rs): no counters to export.
    let mut filter = doc! { "points": { "$exists": true } };
    if let Some(a) = &after {
        filter.insert("_id", doc! { "$gt": a });
    }
    let options = FindOptions::builder()
        .sort(doc! { "_id": 1 })
        .projection(doc! { "_id": 1 })
        .limit(i64::from(limit))
        .build();
    find_all(&db.collection::<Document>(USERS), filter, options, None)
        .await?
        .iter()
        .map(|d| string(d, "_id"))
        .collect()
}

/// The per-type totals and per-period points of each listed user that has any, in the
/// order given: the state document's totals, `all` and slots, and the archives.
pub async fn user_counters(db: &Database, user_ids: &[String]) -> Result<Vec<UserCounters>> {
    let mut by_user: HashMap<String, UserCounters> = HashMap::new();
    let states = find_all(
        &db.collection::<Document>(USERS),
        doc! { "_id": { "$in": user_ids }, "user_id": { "$in": user_ids } },
        FindOptions::default(),
        None,
    )
    .await?;
    for d in states.iter().filter(|d| d.contains_key("points")) {
        let user = string(d, "user_id")?;
        let mut periods = vec![("all".to_owned(), int(d, "points")?)];
        let loaded = Loaded::from_doc(d);
        periods.extend(loaded.slots.into_iter().flatten());
        by_user.insert(
            user.clone(),
            UserCounters {
                user_id: user,
                by_type: types_of(d)?,
                periods,
            },
        );
    }
    let archives = find_all(
        &db.collection::<Document>(PERIODS),
        doc! { "user_id": { "$in": user_ids } },
        FindOptions::default(),
        None,
    )
    .await?;
    for d in &archives {
        let user = string(d, "user_id")?;
        if let Some(entry) = by_user.get_mut(user.as_str()) {
            entry
                .periods
                .push((string(d, "period")?, int(d, "points")?));
        }
    }
    for entry in by_user.values_mut() {
        entry.periods.sort();
    }
    Ok(user_ids
        .iter()
        .filter_map(|u| by_user.remove(u.as_str()))
        .collect())
}
