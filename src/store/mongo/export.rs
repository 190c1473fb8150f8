//! Enumerating users and their counters, so a cache can be rebuilt from the store.

use std::collections::HashMap;

use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::Database;

use super::bulk_commands::find_all;
use super::read::{int, string};
use super::schema::{PERIODS, TOTALS};
use crate::store::{TypeTotal, UserCounters};

/// Users with counters, ascending by byte order (MongoDB's default string order), strictly
/// after `after`. The `by_user` index of the totals leads with the user id, so a page
/// walks the index from `after` and reads one document per (user, type).
pub async fn user_ids(db: &Database, after: Option<String>, limit: u32) -> Result<Vec<String>> {
    let limit = limit as usize;
    let mut out: Vec<String> = Vec::with_capacity(limit);
    let mut from = after;
    while out.len() < limit {
        let want = (limit - out.len()) * 4;
        let filter = match &from {
            Some(a) => doc! { "user_id": { "$gt": a } },
            None => doc! {},
        };
        let options = FindOptions::builder()
            .sort(doc! { "user_id": 1, "event_type": 1 })
            .projection(doc! { "user_id": 1, "_id": 0 })
            .limit(want as i64)
            .build();
        let docs = find_all(&db.collection::<Document>(TOTALS), filter, options, None).await?;
        for d in &docs {
            let user = string(d, "user_id")?;
            if out.last() != Some(&user) && out.len() < limit {
                out.push(user);
            }
        }
        if docs.len() < want {
            break;
        }
        // The last user's remaining types need not be read: continue after that user.
        from = out.last().cloned();
    }
    Ok(out)
}

/// The per-type totals and per-period points of each listed user that has any, in the
/// order given.
pub async fn user_counters(db: &Database, user_ids: &[String]) -> Result<Vec<UserCounters>> {
    let mut by_user: HashMap<&str, UserCounters> = HashMap::new();
    let sorted = |keys: Document| FindOptions::builder().sort(keys).build();
    let totals = find_all(
        &db.collection::<Document>(TOTALS),
        doc! { "user_id": { "$in": user_ids } },
        sorted(doc! { "user_id": 1, "event_type": 1 }),
        None,
    )
    .await?;
    for d in &totals {
        let user = string(d, "user_id")?;
        let Some(key) = user_ids.iter().find(|u| **u == user) else {
            continue;
        };
        let entry = by_user.entry(key.as_str()).or_insert_with(|| UserCounters {
            user_id: user.clone(),
            ..Default::default()
        });
        entry.by_type.push(TypeTotal {
            event_type: string(d, "event_type")?,
            events: u64::try_from(int(d, "events")?).unwrap_or(0),
            points: int(d, "points")?,
        });
    }
    let periods = find_all(
        &db.collection::<Document>(PERIODS),
        doc! { "user_id": { "$in": user_ids } },
        sorted(doc! { "user_id": 1, "period": 1 }),
        None,
    )
    .await?;
    for d in &periods {
        let user = string(d, "user_id")?;
        if let Some(entry) = by_user.get_mut(user.as_str()) {
            entry
                .periods
                .push((string(d, "period")?, int(d, "points")?));
        }
    }
    Ok(user_ids
        .iter()
        .filter_map(|u| by_user.remove(u.as_str()))
        .collect())
}
