//! Bulk building blocks shared by the writer and recovery: the `update` command with
//! many statements, unordered inserts that report duplicates, and dedup-key lookups.
//! Each takes an optional session, which is in a transaction when one is given.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, Result};
use mongodb::options::FindOptions;
use mongodb::{ClientSession, Collection};
use serde::de::DeserializeOwned;

use super::error::{reply_error, DUPLICATE_KEY};
use super::Ctx;
use crate::domain::event::NewEvent;

/// Statements per `update` command: well under the 16 MB message and 100k-statement
/// limits for these small statements.
const STATEMENTS_PER_COMMAND: usize = 5_000;

/// Runs `(id, statement)` updates on `coll` unordered, in as few commands as fit.
/// Returns the ids whose statement failed with a duplicate key (an upsert that lost
/// to an existing document); any other failure is an error.
pub async fn update(
    ctx: &Ctx,
    coll: &str,
    statements: &[(String, Document)],
    mut session: Option<&mut ClientSession>,
) -> Result<Vec<String>> {
    let mut duplicates = Vec::new();
    for chunk in statements.chunks(STATEMENTS_PER_COMMAND) {
        let mut cmd = doc! {
            "update": coll,
            "updates": chunk.iter().map(|(_, s)| Bson::Document(s.clone())).collect::<Vec<_>>(),
            "ordered": false,
        };
        // Inside a transaction the concern belongs to the commit, not to each write.
        let reply = match session.as_deref_mut() {
            Some(s) => ctx.db.run_command(cmd).session(s).await?,
            None => {
                cmd.insert("writeConcern", ctx.write_concern.clone());
                ctx.db.run_command(cmd).await?
            }
        };
        if let Ok(wce) = reply.get_document("writeConcernError") {
            return Err(reply_error(
                wce.get_i32("code").ok(),
                format!("update {coll}: write concern: {wce}"),
            ));
        }
        if let Ok(errors) = reply.get_array("writeErrors") {
            for e in errors {
                let e = e.as_document().ok_or_else(|| {
                    reply_error(None, format!("update {coll}: malformed write error"))
                })?;
                let code = e.get_i32("code").ok();
                let index = e
                    .get_i32("index")
                    .ok()
                    .and_then(|i| usize::try_from(i).ok());
                match (code, index.and_then(|i| chunk.get(i))) {
                    (Some(DUPLICATE_KEY), Some((id, _))) => duplicates.push(id.clone()),
                    _ => return Err(reply_error(code, format!("update {coll}: {e}"))),
                }
            }
        }
    }
    Ok(duplicates)
}

/// Inserts `docs` unordered; returns the positions rejected by a unique index (the
/// dedup index for events, the `_id` for deliveries queued again by recovery).
pub async fn insert_new<T>(
    coll: &Collection<T>,
    docs: &[T],
    session: Option<&mut ClientSession>,
) -> Result<Vec<usize>>
where
    T: serde::Serialize + Send + Sync,
{
    if docs.is_empty() {
        return Ok(Vec::new());
    }
    let result = match session {
        // A transaction aborts on any write error, so ordering there changes nothing.
        Some(s) => coll.insert_many(docs).session(s).await,
        None => coll.insert_many(docs).ordered(false).await,
    };
    let err = match result {
        Ok(_) => return Ok(Vec::new()),
        Err(e) => e,
    };
    if let ErrorKind::InsertMany(m) = &*err.kind {
        if m.write_concern_error.is_none() {
            if let Some(errors) = &m.write_errors {
                if errors.iter().all(|w| w.code == DUPLICATE_KEY) {
                    return Ok(errors.iter().map(|w| w.index).collect());
                }
            }
        }
    }
    Err(err)
}

/// The stored ids of events with the same (user, dedup key) as any of `events`.
pub async fn stored_ids(
    ctx: &Ctx,
    events: &[&NewEvent],
    session: Option<&mut ClientSession>,
) -> Result<HashMap<(String, String), String>> {
    if events.is_empty() {
        return Ok(HashMap::new());
    }
    let mut by_user: BTreeMap<&str, HashSet<String>> = BTreeMap::new();
    for e in events {
        by_user.entry(&e.user_id).or_default().insert(e.dedup_key());
    }
    let clauses: Vec<Document> = by_user
        .into_iter()
        .map(|(user, keys)| doc! { "user_id": user, "dedup_key": { "$in": keys.into_iter().collect::<Vec<_>>() } })
        .collect();
    let options = FindOptions::builder()
        .projection(doc! { "_id": 1, "user_id": 1, "dedup_key": 1 })
        .build();
    let found: Vec<Document> = find_all(
        &ctx.db.collection(super::schema::EVENTS),
        doc! { "$or": clauses },
        options,
        session,
    )
    .await?;
    let mut ids = HashMap::new();
    for d in found {
        if let (Ok(id), Ok(user), Ok(key)) = (
            d.get_str("_id"),
            d.get_str("user_id"),
            d.get_str("dedup_key"),
        ) {
            ids.insert((user.to_owned(), key.to_owned()), id.to_owned());
        }
    }
    Ok(ids)
}

pub async fn find_all<T>(
    coll: &Collection<T>,
    filter: Document,
    options: FindOptions,
    session: Option<&mut ClientSession>,
) -> Result<Vec<T>>
where
    T: DeserializeOwned + Send + Sync + Unpin,
{
    match session {
        Some(s) => {
            let mut cursor = coll
                .find(filter)
                .with_options(options)
                .session(&mut *s)
                .await?;
            let mut out = Vec::new();
            while let Some(item) = cursor.next(s).await {
                out.push(item?);
            }
            Ok(out)
        }
        None => {
            coll.find(filter)
                .with_options(options)
                .await?
                .try_collect()
                .await
        }
    }
}
