//! The registered rules versions: one document per version, `_id` the number, so two
//! instances registering different files at once cannot both take the same number.

use mongodb::bson::{doc, Document};
use mongodb::error::{ErrorKind, Result, WriteFailure};
use mongodb::options::FindOptions;
use mongodb::Database;

use super::bulk_commands::find_all;
use super::error::{reply_error, DUPLICATE_KEY};
use super::schema::RULES;
use crate::domain::rules::RulesVersion;

/// Lost races before giving up; each loss means another instance registered a version.
const MAX_ATTEMPTS: u32 = 5;

pub async fn activate(db: &Database, hash: &str, text: &str, now_ms: i64) -> Result<RulesVersion> {
    let coll = db.collection::<Document>(RULES);
    for _ in 0..MAX_ATTEMPTS {
        let latest = coll
            .find_one(doc! {})
            .sort(doc! { "_id": -1 })
            .await?
            .and_then(|d| version_of(&d));
        if let Some(v) = latest.as_ref().filter(|v| v.hash == hash) {
            return Ok(v.clone());
        }
        let version = latest.map_or(1, |v| v.version + 1);
        let new = doc! { "_id": version, "hash": hash, "content": text, "activated_ms": now_ms };
        match coll.insert_one(new).await {
            Ok(_) => {
                return Ok(RulesVersion {
                    version,
                    hash: hash.to_owned(),
                    activated_at: now_ms,
                })
            }
            Err(e) if is_duplicate(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(reply_error(
        None,
        "rules version registration kept losing races with other instances",
    ))
}

pub async fn versions(db: &Database) -> Result<Vec<RulesVersion>> {
    let docs: Vec<Document> = find_all(
        &db.collection::<Document>(RULES),
        doc! {},
        FindOptions::builder()
            .sort(doc! { "_id": -1 })
            .projection(doc! { "content": 0 })
            .build(),
        None,
    )
    .await?;
    Ok(docs.iter().filter_map(version_of).collect())
}

fn version_of(d: &Document) -> Option<RulesVersion> {
    Some(RulesVersion {
        version: d.get_i64("_id").ok()?,
        hash: d.get_str("hash").ok()?.to_owned(),
        activated_at: d.get_i64("activated_ms").ok()?,
    })
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    matches!(
        &*e.kind,
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY
    )
}

pub async fn content(db: &Database, version: i64) -> Result<Option<String>> {
    Ok(db
        .collection::<Document>(RULES)
        .find_one(doc! { "_id": version })
        .await?
        .and_then(|d| d.get_str("content").ok().map(str::to_owned)))
}
