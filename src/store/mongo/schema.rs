//! Collections, document shapes and indexes. The layout (and why it shards by user) is
//! described in docs/scaling.md; tests that stage crash states use these names too.

use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::domain::caps::Cap;
use crate::domain::engine::Bonus;
use crate::domain::event::NewEvent;

/// The ledger: one document per stored event, `_id` the server-assigned event id.
pub const EVENTS: &str = "events";
/// One document per user, `_id` the user id: totals, per-type totals and the current
/// period of each kind (see state.rs).
pub const USERS: &str = "user_state";
/// Per-period per-user points of the periods a user's state has moved past (the
/// leaderboards of earlier periods, and late events), `_id` from [`period_id`].
pub const PERIODS: &str = "period_points";
/// The per-type totals of the layout before `user_state`; its presence at start means
/// a database to migrate (see migrate.rs).
pub const LEGACY_TOTALS: &str = "type_totals";
/// Erasures begun but not known to be finished, `_id` the user id (no-transaction mode).
pub const DELETIONS: &str = "pending_deletions";
/// One document per rules version, `_id` the version number.
pub const RULES: &str = "rules_versions";
/// Webhook subscriptions, `_id` the subscription id, `url` unique.
pub const SUBSCRIPTIONS: &str = "webhook_subscriptions";
/// The webhook delivery queue and log, `_id` the delivery id (see outbox.rs).
pub const DELIVERIES: &str = "webhook_deliveries";
/// The wallet's ledger: one document per spend, hold, capture, release or expiry,
/// `_id` the entry id, unique per user by `dedup_key` (see wallet.rs).
pub const WALLET_ENTRIES: &str = "wallet_entries";

/// Fields of a user's state document holding their progression: the engine's
/// [`Progress`](crate::domain::progression::Progress) as JSON text (achievement ids are
/// free text, which BSON field names could not all carry), and the ids of the
/// achievements unlocked, so that rarity is an indexed count.
pub const PROGRESS: &str = "progress";
pub const ACHIEVEMENTS: &str = "achievements";
/// Field of a user's state document: when their wallet next has something due (an
/// expiry, an announcement, a hold's end), copied out of the progress JSON so that the
/// sweeper finds due wallets through an index. Null when nothing is due.
pub const WALLET_DUE: &str = "wallet_due_ms";

/// Field of counter documents listing the write batches already added into them, so
/// that re-applying a batch after a crash is a no-op for documents it reached.
pub const GUARD: &str = "applied_batches";

/// Period keys (`all`, `day:...`) contain no `|`, so the first `|` ends the period
/// whatever the user id holds.
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

    /// An achievement's bonus entry: a ledger entry like an event, its points its base.
    pub fn bonus(
        user_id: &str,
        b: &Bonus,
        rules_version: Option<i64>,
        pending: Option<Pending>,
    ) -> EventDoc {
        EventDoc {
            id: b.id.clone(),
            user_id: user_id.to_owned(),
            dedup_key: b.dedup_key.clone(),
            event_type: b.event_type.clone(),
            ts_ms: b.ts_ms,
            event_id: None,
            points: b.points,
            properties: None,
            received_ms: b.received_ms,
            base_points: Some(b.points),
            rules_version,
            pending,
            cap_reached: None,
        }
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
    // The all-time board, and per slot the board of the period it holds.
    let mut users = vec![named(
        doc! { "points": -1, "user_id": 1 },
        "rank_all",
        false,
        false,
    )];
    for kind in super::state::SLOTS {
        let k = kind.as_str();
        users.push(named(
            doc! { format!("{k}.key"): 1, format!("{k}.points"): -1, "user_id": 1 },
            &format!("rank_{k}"),
            false,
            false,
        ));
    }
    // Multikey over each user's unlocked ids: a count per achievement reads index keys.
    users.push(named(
        doc! { ACHIEVEMENTS: 1 },
        "achievements",
        false,
        false,
    ));
    // The sweeper's scan: wallets due now, oldest first.
    users.push(named(doc! { WALLET_DUE: 1 }, "wallet_due", false, false));
    db.collection::<Document>(USERS)
        .create_indexes(users)
        .await?;
    db.collection::<Document>(PERIODS)
        .create_indexes([
            named(
                doc! { "period": 1, "points": -1, "user_id": 1 },
                "rank",
                false,
                false,
            ),
            // Erasure, recompute and a cache rebuild read a user's archives.
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
    db.collection::<Document>(WALLET_ENTRIES)
        .create_indexes([
            // What makes a spend id or hold id usable once per user, across instances.
            named(doc! { "user_id": 1, "dedup_key": 1 }, "dedup", true, false),
            // The user's history, newest first, paged by (time, id) like the events.
            named(
                doc! { "user_id": 1, "ts_ms": -1, "_id": -1 },
                "history",
                false,
                false,
            ),
        ])
        .await?;
    Ok(())
}
