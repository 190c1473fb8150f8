//! Collections, document shapes and indexes. The layout (and why it shards by user) is
//! described in docs/scaling.md; tests that stage crash states use these names too.

use std::collections::BTreeMap;

use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::domain::caps::Cap;
use crate::domain::engine::Changes;
use crate::domain::event::NewEvent;

/// The ledger: one document per stored event, `_id` the server-assigned event id.
pub const EVENTS: &str = "events";
/// Per-user per-type totals, `_id` from [`total_id`].
pub const TOTALS: &str = "type_totals";
/// Per-period per-user points (the leaderboards), `_id` from [`period_id`].
pub const PERIODS: &str = "period_points";
/// Erasures begun but not known to be finished, `_id` the user id (no-transaction mode).
pub const DELETIONS: &str = "pending_deletions";
/// One document per rules version, `_id` the version number.
pub const RULES: &str = "rules_versions";
/// Webhook subscriptions, `_id` the subscription id, `url` unique.
pub const SUBSCRIPTIONS: &str = "webhook_subscriptions";
/// The webhook delivery queue and log, `_id` the delivery id (see outbox.rs).
pub const DELIVERIES: &str = "webhook_deliveries";

/// Field of counter documents listing the write batches already added into them, so
/// that re-applying a batch after a crash is a no-op for documents it reached.
pub const GUARD: &str = "applied_batches";

/// Type names match `^[A-Z][A-Z0-9_]*$`, so the first `|` ends the type even when the
/// user id contains one.
pub fn total_id(event_type: &str, user_id: &str) -> String {
    format!("{event_type}|{user_id}")
}

/// Period keys (`all`, `day:...`) contain no `|` either.
pub fn period_id(period: &str, user_id: &str) -> String {
    format!("{period}|{user_id}")
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub user_id: String,
    pub dedup_key: String,
    pub event_type: String,
    pub ts_ms: i64,
    pub event_id: Option<String>,
    pub points: i64,
    /// The `properties` object as the JSON text the client sent, like the SQLite store.
    pub properties: Option<String>,
    pub received_ms: i64,
    /// Absent on events stored before rules versions existed (then equal to `points`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_points: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_version: Option<i64>,
    /// Present while the event's points may not yet be in the counters (no-transaction
    /// mode only); removed once they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// The cap this event used up, if it did: recovery re-queues its `cap.reached`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_reached: Option<Cap>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    /// The write batch (one group commit) that inserted the event.
    pub batch: String,
    /// The request of the batch the event came in (0 for batches written before this
    /// was kept): recovery notifies per request, as the commit would have.
    #[serde(default)]
    pub request: i64,
    /// Wall-clock ms when that batch began; recovery leaves younger batches alone.
    pub at_ms: i64,
}

impl EventDoc {
    /// The same document awarding `points` (a cap may lower them below the base).
    pub fn with_points(mut self, points: i64) -> EventDoc {
        self.points = points;
        self
    }

    pub fn reaching(mut self, cap: Option<Cap>) -> EventDoc {
        self.cap_reached = cap;
        self
    }

    pub fn new(e: &NewEvent, pending: Option<Pending>) -> EventDoc {
        EventDoc {
            id: e.id.clone(),
            user_id: e.user_id.clone(),
            dedup_key: e.dedup_key(),
            event_type: e.event_type.clone(),
            ts_ms: e.ts_ms,
            event_id: e.event_id.clone(),
            points: e.points,
            properties: e.properties.clone(),
            received_ms: e.received_ms,
            base_points: Some(e.base_points),
            rules_version: e.rules_version,
            pending,
            cap_reached: None,
        }
    }
}

/// Counter changes of one write, summed per counter document.
#[derive(Debug, Default)]
pub struct Deltas {
    /// `_id` → (user, type, events, points).
    pub totals: BTreeMap<String, (String, String, i64, i64)>,
    /// `_id` → (user, period, points).
    pub periods: BTreeMap<String, (String, String, i64)>,
}

impl Deltas {
    /// Adds the engine's changes for one user.
    pub fn add(&mut self, user_id: &str, changes: &Changes) {
        for (ty, c) in &changes.by_type {
            let t = self
                .totals
                .entry(total_id(ty, user_id))
                .or_insert_with(|| (user_id.to_owned(), ty.clone(), 0, 0));
            t.2 += c.events;
            t.3 += c.points;
        }
        for (key, points) in &changes.periods {
            self.periods
                .entry(period_id(key, user_id))
                .or_insert_with(|| (user_id.to_owned(), key.clone(), 0))
                .2 += points;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }

    /// `update` command statements for the totals, keyed like [`Deltas::totals`].
    /// With `guard`, a document already holding that batch id does not match.
    pub fn total_updates(&self, guard: Option<&str>, upsert: bool) -> Vec<(String, Document)> {
        self.totals
            .iter()
            .map(|(id, (user, ty, events, points))| {
                let inc = doc! { "events": events, "points": points };
                let on_insert = doc! { "user_id": user, "event_type": ty };
                (
                    id.clone(),
                    statement(id, user, inc, on_insert, guard, upsert),
                )
            })
            .collect()
    }

    pub fn period_updates(&self, guard: Option<&str>, upsert: bool) -> Vec<(String, Document)> {
        self.periods
            .iter()
            .map(|(id, (user, period, points))| {
                let mut inc = doc! { "points": points };
                // Orders the user's webhook deliveries (see outbox.rs): one step per
                // commit that touches the user, which always writes this document.
                if period == "all" {
                    inc.insert("seq", 1_i64);
                }
                let on_insert = doc! { "user_id": user, "period": period };
                (
                    id.clone(),
                    statement(id, user, inc, on_insert, guard, upsert),
                )
            })
            .collect()
    }

    pub fn total_ids(&self) -> Vec<String> {
        self.totals.keys().cloned().collect()
    }

    pub fn period_ids(&self) -> Vec<String> {
        self.periods.keys().cloned().collect()
    }

    /// Drops the counter documents in `applied` (they already hold this batch).
    pub fn without(mut self, applied_totals: &[String], applied_periods: &[String]) -> Deltas {
        for id in applied_totals {
            self.totals.remove(id);
        }
        for id in applied_periods {
            self.periods.remove(id);
        }
        self
    }
}

/// The filter carries `user_id`, the shard key, besides `_id`: on a sharded cluster an
/// upsert must name the full shard key, and a targeted update reaches one shard. (An
/// upsert copies the filter's equality fields into the document it inserts; the same
/// value in `$setOnInsert` is allowed and keeps the document whole on any server.)
fn statement(
    id: &str,
    user_id: &str,
    inc: Document,
    on_insert: Document,
    guard: Option<&str>,
    upsert: bool,
) -> Document {
    let mut q = doc! { "_id": id, "user_id": user_id };
    let mut u = doc! { "$inc": inc, "$setOnInsert": on_insert };
    if let Some(batch) = guard {
        q.insert(GUARD, doc! { "$ne": batch });
        u.insert("$push", doc! { GUARD: batch });
    }
    doc! { "q": q, "u": u, "upsert": upsert }
}

/// Creates the indexes the queries rely on; idempotent, run at every start.
pub async fn create_indexes(db: &Database) -> mongodb::error::Result<()> {
    let named = |keys: Document, name: &str, unique: bool, sparse: bool| {
        IndexModel::builder()
            .keys(keys)
            .options(
                IndexOptions::builder()
                    .name(name.to_string())
                    .unique(unique.then_some(true))
                    .sparse(sparse.then_some(true))
                    .build(),
            )
            .build()
    };
    db.collection::<Document>(EVENTS)
        .create_indexes([
            named(doc! { "user_id": 1, "dedup_key": 1 }, "dedup", true, false),
            named(
                doc! { "user_id": 1, "ts_ms": -1, "_id": -1 },
                "history",
                false,
                false,
            ),
            // Sparse: only events whose points are not yet counted are in it, so the
            // recovery scan costs nothing when there is nothing to recover.
            named(doc! { "pending.batch": 1 }, "pending", false, true),
        ])
        .await?;
    db.collection::<Document>(TOTALS)
        .create_indexes([
            named(
                doc! { "user_id": 1, "event_type": 1 },
                "by_user",
                false,
                false,
            ),
            named(
                doc! { "event_type": 1, "points": -1, "user_id": 1 },
                "rank",
                false,
                false,
            ),
        ])
        .await?;
    db.collection::<Document>(PERIODS)
        .create_indexes([
            named(
                doc! { "period": 1, "points": -1, "user_id": 1 },
                "rank",
                false,
                false,
            ),
            // A cache rebuild reads every board entry of a page of users.
            named(doc! { "user_id": 1, "period": 1 }, "by_user", false, false),
        ])
        .await?;
    db.collection::<Document>(SUBSCRIPTIONS)
        .create_indexes([named(doc! { "url": 1 }, "url", true, false)])
        .await?;
    db.collection::<Document>(DELIVERIES)
        .create_indexes([
            // The worker's scan: pending deliveries in queue order.
            named(
                doc! { "status": 1, "subscription_id": 1, "user_id": 1, "seq": 1, "n": 1 },
                "queue",
                false,
                false,
            ),
            named(
                doc! { "subscription_id": 1, "created_ms": -1 },
                "log",
                false,
                false,
            ),
            named(doc! { "user_id": 1 }, "by_user", false, false),
        ])
        .await?;
    Ok(())
}
