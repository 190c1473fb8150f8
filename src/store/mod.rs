//! The storage seam, split by concern: the ledger and the state derived from it
//! ([`Ledger`]), rules versions ([`RulesLog`]), the webhook queue ([`WebhookQueue`]),
//! reading every user's counters ([`Export`]) and start/stop ([`Lifecycle`]). Every
//! store keeps the same ledger and the same counters (events unique per user by dedup
//! key, per-user per-type totals, per-period points), written with the events in one
//! atomic write from what the points engine ([`crate::domain::engine`]) returns.

use async_trait::async_trait;

use crate::domain::event::NewEvent;
use crate::domain::period::PeriodKey;
use crate::domain::progression::Progress;
use crate::domain::ranking::RankedEntry;
use crate::domain::rules::Rules;
pub use crate::domain::rules::RulesVersion;
use crate::webhooks::{
    AttemptResult, Delivery, DeliveryStatus, DueDelivery, NewSubscription, Replay, Subscription,
};
use std::sync::Arc;

pub mod mongo;
pub mod sqlite;
pub mod writer_channel;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take the request now (down, read-only, disk full, shutting
    /// down); the client may retry later.
    #[error("store unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("store failure")]
    Internal(#[source] anyhow::Error),
    /// This store, as deployed, cannot do what was asked; the message says why.
    #[error("{0}")]
    Unsupported(String),
}

/// One user's balance, achievements and level before and after a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecompute {
    pub current: i64,
    pub recomputed: i64,
    /// Events whose points or base points differ under the replayed rules, and bonus
    /// entries the replay awards, changes or takes away.
    pub changed_events: u64,
    /// Achievements the replay unlocks that the user does not have, and the reverse.
    pub unlocked: Vec<String>,
    pub revoked: Vec<String>,
    /// The level numbers held with `current` and with `recomputed` points.
    pub level_current: Option<i64>,
    pub level_recomputed: Option<i64>,
    /// The wallet's balance now and after the replay (spends stay).
    pub wallet_current: i64,
    pub wallet_recomputed: i64,
}

impl UserRecompute {
    /// What replaying `entries` gave against what the user has now (`current`).
    pub fn of(
        entries: &[crate::domain::engine::LedgerEntry],
        replayed: &crate::domain::engine::Replay,
        current: &Progress,
        rules: &Rules,
    ) -> UserRecompute {
        let now: i64 = entries.iter().map(|e| e.points).sum();
        let after = &replayed.state.progress.achievements;
        let levels = rules.progression();
        UserRecompute {
            current: now,
            recomputed: replayed.state.points,
            changed_events: (replayed.changed(entries).len()
                + replayed.removed.len()
                + replayed.added.len()) as u64,
            unlocked: after
                .keys()
                .filter(|k| !current.achievements.contains_key(*k))
                .cloned()
                .collect(),
            revoked: current
                .achievements
                .keys()
                .filter(|k| !after.contains_key(*k))
                .cloned()
                .collect(),
            level_current: levels.level_at(now).map(|l| l.level),
            level_recomputed: levels.level_at(replayed.state.points).map(|l| l.level),
            wallet_current: current.wallet.balance(),
            wallet_recomputed: replayed.state.progress.wallet.balance(),
        }
    }
}

impl UserRecompute {
    /// `level.changed` for an applied recompute that moved the user's level.
    pub fn level_notice(
        &self,
        user_id: &str,
        rules: &Rules,
        at_ms: i64,
    ) -> Option<crate::domain::engine::Notice> {
        if self.level_current == self.level_recomputed {
            return None;
        }
        let p = rules.progression();
        Some(crate::domain::engine::Notice::LevelChanged(
            crate::domain::engine::LevelChanged {
                user_id: user_id.to_owned(),
                from: p.level_at(self.current).cloned(),
                to: p.level_at(self.recomputed).cloned(),
                points: self.recomputed,
                event_id: String::new(),
                at_ms,
            },
        ))
    }
}

/// How many users unlocked each achievement, among the users with a ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AchievementCounts {
    /// Users with at least one ledger entry.
    pub users: u64,
    /// By achievement id (those nobody unlocked may be missing).
    pub unlocked: std::collections::BTreeMap<String, u64>,
}

/// Per-user progression: the part of the state the engine keeps for streaks and
/// achievements (written by [`Ledger::record`] with the events), and the user's time
/// zone.
#[async_trait]
pub trait ProgressStore: Send + Sync + 'static {
    /// The user's progress as of their last write (empty for an unknown user).
    async fn user_progress(&self, user_id: &str) -> Result<Progress, StoreError>;

    /// Sets the IANA time zone the user's streak and achievement periods follow, in
    /// order with the user's writes.
    async fn set_timezone(&self, user_id: &str, timezone: &str) -> Result<(), StoreError>;

    /// Unlock counts for rarity.
    async fn achievement_counts(&self) -> Result<AchievementCounts, StoreError>;

    /// Runs a wallet operation ([`crate::domain::engine::wallet_op`]) at `now_ms` in
    /// one atomic write with the user's other writes: its entries, the wallet state
    /// and its notices.
    async fn wallet_op(
        &self,
        user_id: &str,
        op: crate::domain::engine::WalletOp,
        rules: Arc<Rules>,
        now_ms: i64,
    ) -> Result<WalletResult, StoreError>;

    /// The user's wallet entries, newest first, strictly before `before` when given.
    async fn wallet_entries(
        &self,
        user_id: &str,
        before: Option<HistoryCursor>,
        limit: u32,
    ) -> Result<Vec<crate::domain::wallet::WalletEntry>, StoreError>;

    /// Users whose wallet has something due at `now_ms` (an expiry, an announcement,
    /// a hold's end), at most `limit`.
    async fn due_wallets(&self, now_ms: i64, limit: u32) -> Result<Vec<String>, StoreError>;
}

/// What a wallet operation did: its entry (or why it was refused) and the wallet after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletResult {
    pub result:
        Result<Option<crate::domain::wallet::WalletEntry>, crate::domain::wallet::WalletError>,
    pub wallet: crate::domain::wallet::Wallet,
}

use crate::domain::engine::Changes;
/// What happened to one event handed to [`Store::record`].
pub use crate::domain::engine::RecordOutcome;

/// What one [`Store::record`] stored: an outcome per event, and per user the engine's
/// changes to the counters (what a cache in front mirrors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub outcomes: Vec<RecordOutcome>,
    /// Users in the order of their first event; every user of the request is listed.
    pub changes: Vec<(String, Changes)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeTotal {
    pub event_type: String,
    pub events: u64,
    pub points: i64,
}

/// A user's points, from the counters or (with a time window) from the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPoints {
    pub points: i64,
    pub events: u64,
    pub by_type: Vec<TypeTotal>,
}

/// Event-time bounds in Unix ms: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    pub ts_ms: i64,
    pub points: i64,
    pub properties: Option<String>,
    pub received_ms: i64,
    /// What the event type was worth before any cap; equals `points` when uncapped.
    pub base_points: i64,
    /// The rules version that judged the event (`None` if stored before versions).
    pub rules_version: Option<i64>,
}

/// Position after which the next page of a user's history starts: history is ordered by
/// event time, then id, both descending, so the pair is unique and stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCursor {
    pub ts_ms: i64,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub user_id: String,
    pub event_type: Option<String>,
    pub range: TimeRange,
    pub limit: u32,
    pub after: Option<HistoryCursor>,
}

#[derive(Debug, Clone)]
pub struct TopUsersQuery {
    /// Rank by this type's points instead of the total.
    pub event_type: Option<String>,
    pub limit: u32,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTotal {
    pub user_id: String,
    pub points: i64,
}

/// Every counter of one user: what a cache needs to mirror that user exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserCounters {
    pub user_id: String,
    /// Per-type totals, ordered by event type.
    pub by_type: Vec<TypeTotal>,
    /// `(period key, points)` for every leaderboard the user is on, `all` included.
    pub periods: Vec<(String, i64)>,
}

/// Events and points of one event type on one UTC day (for the dashboard's chart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyTypeTotal {
    /// Days since 1970-01-01 UTC: `ts_ms / 86_400_000`.
    pub day: i64,
    pub event_type: String,
    pub events: u64,
    pub points: i64,
}

/// A user's place on one leaderboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// `None` when the user has no events in the period.
    pub rank: Option<u64>,
    pub points: i64,
    /// Up to `around` entries above the user, the user, then up to `around` below.
    pub neighbours: Vec<RankedEntry>,
}

#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Stores events in order, exactly once each, returning one outcome per event.
    /// Returns only once the write is durable. A repeat inside `events` is a duplicate.
    async fn record(&self, events: Vec<NewEvent>) -> Result<Recorded, StoreError>;

    /// Counter totals when `range` is empty (O(number of types)); otherwise summed over
    /// the events in the window.
    async fn user_points(&self, user_id: &str, range: TimeRange) -> Result<UserPoints, StoreError>;

    async fn user_events(&self, query: HistoryQuery) -> Result<Vec<StoredEvent>, StoreError>;

    /// Users by points, highest first, ties by user id.
    async fn top_users(&self, query: TopUsersQuery) -> Result<Vec<UserTotal>, StoreError>;

    async fn leaderboard(
        &self,
        period: &PeriodKey,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<RankedEntry>, StoreError>;

    async fn standing(
        &self,
        period: &PeriodKey,
        user_id: &str,
        around: u32,
    ) -> Result<Standing, StoreError>;

    /// Erases the user's events, totals and leaderboard entries. Returns whether anything existed.
    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError>;

    /// Events and points per UTC day and event type, over all users' events with
    /// `from_ms <= ts_ms < to_ms`, ordered by day then type. Unlike the other reads its
    /// cost grows with the number of events in the window.
    async fn daily_stats(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DailyTypeTotal>, StoreError>;

    /// Replays the user's ledger under `rules` ([`crate::domain::engine::replay`]). With `apply`,
    /// rewrites the events whose points change and the user's totals and leaderboard
    /// entries to match, in one transaction with respect to the user's other writes.
    async fn recompute_user(
        &self,
        user_id: &str,
        rules: Arc<Rules>,
        apply: bool,
    ) -> Result<UserRecompute, StoreError>;
}

#[async_trait]
pub trait RulesLog: Send + Sync + 'static {
    /// Registers the configuration with this hash and text as the one in force: the
    /// latest version when it has the same hash, otherwise a new version numbered one
    /// more than the latest, activated at `now_ms`. Concurrent instances agree.
    async fn activate_rules(
        &self,
        hash: &str,
        text: &str,
        now_ms: i64,
    ) -> Result<RulesVersion, StoreError>;

    /// Every registered configuration, newest first.
    async fn rules_versions(&self) -> Result<Vec<RulesVersion>, StoreError>;

    /// The file text registered as `version`, if there is one.
    async fn rules_content(&self, version: i64) -> Result<Option<String>, StoreError>;
}

#[async_trait]
pub trait WebhookQueue: Send + Sync + 'static {
    /// Creates a webhook subscription, or replaces the secret and events of the one
    /// with the same URL.
    async fn upsert_webhook(
        &self,
        new: NewSubscription,
        now_ms: i64,
    ) -> Result<Subscription, StoreError>;

    /// Every subscription, oldest first, secrets included (for the delivery worker).
    async fn webhooks(&self) -> Result<Vec<Subscription>, StoreError>;

    /// Removes the subscription and its delivery log. Returns whether it existed.
    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError>;

    /// The subscription's delivery log, newest first; `None` without such a subscription.
    async fn webhook_deliveries(
        &self,
        subscription_id: &str,
        status: Option<DeliveryStatus>,
        limit: u32,
    ) -> Result<Option<Vec<Delivery>>, StoreError>;

    /// Up to `limit` pending deliveries due at `now_ms`, each the oldest pending one of
    /// its subscription and user (so one user's notifications go out in order). They
    /// are the caller's for `claim_ms`: until then no other caller (another instance on
    /// the same database) gets them, unless their attempt is recorded first.
    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: u32,
        claim_ms: i64,
    ) -> Result<Vec<DueDelivery>, StoreError>;

    /// Records an attempt of a pending delivery.
    async fn record_attempt(
        &self,
        delivery_id: &str,
        result: AttemptResult,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Queues the listed failed or delivered deliveries of the subscription again, with
    /// fresh attempts; without a list, every failed one. `None` without such a
    /// subscription.
    async fn replay_deliveries(
        &self,
        subscription_id: &str,
        delivery_ids: Option<Vec<String>>,
        now_ms: i64,
    ) -> Result<Option<Replay>, StoreError>;

    /// Removes delivered and failed deliveries last updated before `before_ms` from
    /// the log; pending ones stay whatever their age. Returns how many went.
    async fn prune_deliveries(&self, before_ms: i64) -> Result<u64, StoreError>;
}

#[async_trait]
pub trait Export: Send + Sync + 'static {
    /// Ids of the users that have counters, ascending by byte order, strictly after
    /// `after`, at most `limit`. A cache rebuild pages through every user with it.
    async fn user_ids(&self, after: Option<String>, limit: u32) -> Result<Vec<String>, StoreError>;

    /// The counters of each listed user that has any (users without are left out).
    async fn user_counters(&self, user_ids: Vec<String>) -> Result<Vec<UserCounters>, StoreError>;
}

#[async_trait]
pub trait Lifecycle: Send + Sync + 'static {
    /// Health of a cache in front of the store, for readiness: `None` when there is no
    /// cache, `Some(false)` when it is not serving (reads go to the store).
    async fn cache_status(&self) -> Option<bool> {
        None
    }

    /// Cheap check that the store answers, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Finishes pending writes and releases the store; called once at shutdown.
    async fn close(&self);
}

/// A store, by concern: each part is its own trait object, so a decorator (the Redis
/// cache) replaces the parts it changes and leaves the others as they are.
#[derive(Clone)]
pub struct Store {
    pub ledger: Arc<dyn Ledger>,
    pub rules: Arc<dyn RulesLog>,
    pub webhooks: Arc<dyn WebhookQueue>,
    pub export: Arc<dyn Export>,
    pub lifecycle: Arc<dyn Lifecycle>,
    pub progress: Arc<dyn ProgressStore>,
}

impl Store {
    /// A store whose every concern is served by one backend (SQLite, MongoDB).
    pub fn of<B>(backend: B) -> Store
    where
        B: Ledger + RulesLog + WebhookQueue + Export + Lifecycle + ProgressStore,
    {
        let b = Arc::new(backend);
        Store {
            ledger: b.clone(),
            rules: b.clone(),
            webhooks: b.clone(),
            export: b.clone(),
            progress: b.clone(),
            lifecycle: b,
        }
    }
}
