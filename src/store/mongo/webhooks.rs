//! Webhook subscriptions and their delivery queue in MongoDB. The writer queues
//! deliveries with the events (see `outbox`); this module is the admin API and the
//! delivery worker's side: what is due, and what an attempt did.
//!
//! Several instances run a worker each on the same queue. A worker claims a delivery
//! with a lease before sending it, so two instances do not send the same one at once;
//! a lease left by a stopped or crashed instance expires (a little after its attempt
//! would have timed out) and the delivery is sent again.

use std::collections::HashMap;

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::Result;
use mongodb::options::{FindOptions, ReturnDocument};
use mongodb::{ClientSession, Database};

use super::bulk_commands::find_all;
use super::error::DUPLICATE_KEY;
use super::schema::{DELIVERIES, SUBSCRIPTIONS};
use super::Ctx;
use crate::webhooks::{
    AttemptResult, Delivery, DeliveryStatus, DueDelivery, NewSubscription, Replay, Subscription,
};

/// Pending deliveries looked at per poll; later ones wait for the next.
const SCAN: i64 = 10_000;

fn subscription(d: &Document) -> Option<Subscription> {
    Some(Subscription {
        id: d.get_str("_id").ok()?.to_owned(),
        url: d.get_str("url").ok()?.to_owned(),
        secret: d.get_str("secret").ok()?.to_owned(),
        events: d
            .get_array("events")
            .ok()?
            .iter()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect(),
        created_ms: d.get_i64("created_ms").ok()?,
        rank: d
            .get_document("rank")
            .ok()
            .and_then(|r| mongodb::bson::from_document(r.clone()).ok()),
    })
}

/// Creates the subscription, or updates the secret and events of the one with this URL.
pub async fn upsert(db: &Database, new: &NewSubscription, now_ms: i64) -> Result<Subscription> {
    let subs = db.collection::<Document>(SUBSCRIPTIONS);
    let rank = match &new.rank {
        Some(watch) => Bson::Document(
            mongodb::bson::to_document(watch)
                .map_err(|e| super::error::reply_error(None, format!("rank: {e}")))?,
        ),
        None => Bson::Null,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let found = subs
            .find_one_and_update(
                doc! { "url": &new.url },
                doc! {
                    "$set": { "secret": &new.secret, "events": &new.events, "rank": rank.clone() },
                    "$setOnInsert": {
                        "_id": uuid::Uuid::now_v7().simple().to_string(),
                        "created_ms": now_ms,
                    },
                },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match found {
            Ok(Some(d)) => {
                return subscription(&d).ok_or_else(|| malformed("webhook_subscriptions"))
            }
            Ok(None) => return Err(malformed("webhook_subscriptions")),
            // Two upserts of one URL raced; the loser finds the winner's document.
            Err(e) if attempt < 3 && is_duplicate(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*e.kind {
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        _ => false,
    }
}

fn malformed(coll: &str) -> mongodb::error::Error {
    super::error::reply_error(None, format!("{coll}: malformed document"))
}

pub async fn list(db: &Database) -> Result<Vec<Subscription>> {
    list_in(db, None).await
}

/// Every subscription, read in `session` when there is one.
pub async fn list_in(
    db: &Database,
    session: Option<&mut ClientSession>,
) -> Result<Vec<Subscription>> {
    let docs: Vec<Document> = find_all(
        &db.collection(SUBSCRIPTIONS),
        doc! {},
        FindOptions::builder()
            .sort(doc! { "created_ms": 1, "_id": 1 })
            .build(),
        session,
    )
    .await?;
    Ok(docs.iter().filter_map(subscription).collect())
}

/// Removes the subscription, then its delivery log; deliveries of a subscription that
/// is gone are never sent, so a crash between the two leaves only unreachable rows,
/// which the next delete of the same id (or nothing) clears.
pub async fn delete(db: &Database, id: &str) -> Result<bool> {
    let gone = db
        .collection::<Document>(SUBSCRIPTIONS)
        .delete_one(doc! { "_id": id })
        .await?;
    db.collection::<Document>(DELIVERIES)
        .delete_many(doc! { "subscription_id": id })
        .await?;
    Ok(gone.deleted_count > 0)
}

fn delivery(d: &Document) -> Option<Delivery> {
    let opt_i64 = |k: &str| d.get_i64(k).ok();
    Some(Delivery {
        id: d.get_str("_id").ok()?.to_owned(),
        subscription_id: d.get_str("subscription_id").ok()?.to_owned(),
        user_id: d.get_str("user_id").ok()?.to_owned(),
        event: d.get_str("event").ok()?.to_owned(),
        body: d.get_str("body").ok()?.to_owned(),
        status: DeliveryStatus::parse(d.get_str("status").ok()?)?,
        attempts: u32::try_from(d.get_i64("attempts").ok()?).ok()?,
        next_attempt_ms: opt_i64("next_attempt_ms"),
        last_status: opt_i64("last_status").and_then(|s| u16::try_from(s).ok()),
        last_error: d.get_str("last_error").ok().map(str::to_owned),
        created_ms: d.get_i64("created_ms").ok()?,
        updated_ms: d.get_i64("updated_ms").ok()?,
    })
}

/// The subscription's deliveries, newest first; `None` when there is no such subscription.
pub async fn deliveries(
    db: &Database,
    subscription_id: &str,
    status: Option<DeliveryStatus>,
    limit: u32,
) -> Result<Option<Vec<Delivery>>> {
    let exists = db
        .collection::<Document>(SUBSCRIPTIONS)
        .find_one(doc! { "_id": subscription_id })
        .projection(doc! { "_id": 1 })
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let mut filter = doc! { "subscription_id": subscription_id };
    if let Some(status) = status {
        filter.insert("status", status.as_str());
    }
    let docs: Vec<Document> = find_all(
        &db.collection(DELIVERIES),
        filter,
        FindOptions::builder()
            .sort(doc! { "created_ms": -1, "seq": -1, "n": -1, "_id": -1 })
            .limit(i64::from(limit))
            .build(),
        None,
    )
    .await?;
    Ok(Some(docs.iter().filter_map(delivery).collect()))
}

/// Claims up to `limit` pending deliveries due at `now_ms` that are first in their
/// queue: a subscription's deliveries for one user go out one at a time, in the order
/// of the user's writes (`seq`, then `n` within one write).
pub async fn due(ctx: &Ctx, now_ms: i64, limit: u32, claim_ms: i64) -> Result<Vec<DueDelivery>> {
    let deliveries = ctx.db.collection::<Document>(DELIVERIES);
    let pipeline = [
        doc! { "$match": { "status": "pending" } },
        doc! { "$sort": { "subscription_id": 1, "user_id": 1, "seq": 1, "n": 1 } },
        doc! { "$limit": SCAN },
        doc! { "$group": {
            "_id": { "s": "$subscription_id", "u": "$user_id" },
            "first": { "$first": "$$ROOT" },
        } },
        doc! { "$replaceRoot": { "newRoot": "$first" } },
        doc! { "$match": {
            "next_attempt_ms": { "$lte": now_ms },
            "lease_ms": { "$lte": now_ms },
        } },
        doc! { "$sort": { "created_ms": 1 } },
        doc! { "$limit": i64::from(limit) },
    ];
    let mut cursor = deliveries.aggregate(pipeline).await?;
    let mut candidates = Vec::new();
    while cursor.advance().await? {
        candidates.push(Document::try_from(cursor.current())?);
    }
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let subs: HashMap<String, Subscription> = list(&ctx.db)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let mut due = Vec::new();
    for d in candidates {
        let (Some(delivery), Ok(lease)) = (delivery(&d), d.get_i64("lease_ms")) else {
            continue;
        };
        let Some(sub) = subs.get(&delivery.subscription_id) else {
            continue;
        };
        // Another instance may have claimed it since the scan: the lease says who won.
        let claimed = deliveries
            .update_one(
                doc! { "_id": &delivery.id, "status": "pending", "lease_ms": lease },
                doc! { "$set": { "lease_ms": now_ms + claim_ms } },
            )
            .await?;
        if claimed.modified_count == 1 {
            due.push(DueDelivery {
                delivery,
                url: sub.url.clone(),
                secret: sub.secret.clone(),
            });
        }
    }
    Ok(due)
}

/// Records one attempt of a pending delivery, releasing its lease.
pub async fn record_attempt(
    ctx: &Ctx,
    id: &str,
    result: &AttemptResult,
    now_ms: i64,
) -> Result<()> {
    let (status, next, last_status, last_error) = result.columns();
    ctx.db
        .collection::<Document>(DELIVERIES)
        .update_one(
            doc! { "_id": id, "status": "pending" },
            doc! {
                "$set": {
                    "status": status,
                    "next_attempt_ms": next.map_or(Bson::Null, Bson::Int64),
                    "last_status": last_status.map_or(Bson::Null, |s| Bson::Int64(i64::from(s))),
                    "last_error": last_error.map_or(Bson::Null, |e| Bson::String(e.to_owned())),
                    "updated_ms": now_ms,
                    "lease_ms": 0_i64,
                },
                "$inc": { "attempts": 1_i64 },
            },
        )
        .await?;
    Ok(())
}

/// Deletes delivered and failed deliveries last updated before `before_ms`.
pub async fn prune(db: &Database, before_ms: i64) -> Result<u64> {
    let gone = db
        .collection::<Document>(DELIVERIES)
        .delete_many(doc! {
            "status": { "$in": ["delivered", "failed"] },
            "updated_ms": { "$lt": before_ms },
        })
        .await?;
    Ok(gone.deleted_count)
}

/// Queues the listed deliveries (or, without a list, every failed one) of the
/// subscription again with a fresh set of attempts; pending ones are left as they are.
/// `None` without such a subscription (deleting one removes its deliveries too, so one
/// deleted meanwhile leaves nothing to queue).
pub async fn replay(
    db: &Database,
    subscription_id: &str,
    ids: Option<Vec<String>>,
    now_ms: i64,
) -> Result<Option<Replay>> {
    let exists = db
        .collection::<Document>(SUBSCRIPTIONS)
        .find_one(doc! { "_id": subscription_id })
        .projection(doc! { "_id": 1 })
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let deliveries = db.collection::<Document>(DELIVERIES);
    let ids = match ids {
        Some(ids) => ids,
        None => {
            let failed: Vec<Document> = find_all(
                &deliveries,
                doc! { "subscription_id": subscription_id, "status": "failed" },
                FindOptions::builder()
                    .projection(doc! { "_id": 1 })
                    .sort(doc! { "created_ms": 1, "seq": 1, "n": 1 })
                    .build(),
                None,
            )
            .await?;
            failed
                .iter()
                .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
                .collect()
        }
    };
    let mut report = Replay::default();
    for id in ids {
        let requeued = deliveries
            .update_one(
                doc! {
                    "_id": &id,
                    "subscription_id": subscription_id,
                    "status": { "$in": ["failed", "delivered"] },
                },
                doc! { "$set": {
                    "status": "pending",
                    "attempts": 0_i64,
                    "next_attempt_ms": now_ms,
                    "updated_ms": now_ms,
                    "lease_ms": 0_i64,
                } },
            )
            .await?;
        if requeued.modified_count == 1 {
            report.queued.push(id);
            continue;
        }
        let exists = deliveries
            .find_one(doc! { "_id": &id, "subscription_id": subscription_id })
            .projection(doc! { "_id": 1 })
            .await?;
        match exists {
            Some(_) => report.already_pending.push(id),
            None => report.not_found.push(id),
        }
    }
    Ok(Some(report))
}
