//! The Redis cache: a [`Store`] decorator that answers the hot reads (a user's totals
//! and breakdown, the period leaderboards and a user's rank) from Redis, while the
//! wrapped store stays the source of truth. Writes go to the store first; once it has
//! acknowledged, the same deltas are applied in Redis before the client is answered.
//!
//! Every read falls back to the store whenever Redis is unreachable, is being rebuilt
//! or cannot prove its data is complete; docs/caching.md describes the keys, the
//! invariants and what happens on each failure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use tokio::sync::watch;

use crate::config::{ConfigError, Vars};
use crate::domain::event::NewEvent;
use crate::domain::period::PeriodKey;
use crate::domain::ranking::RankedEntry;
use crate::domain::rules::Rules;
use crate::store::UserRecompute;
use crate::store::{
    DailyTypeTotal, HistoryQuery, Ledger, Lifecycle, Recorded, Standing, Store, StoreError,
    StoredEvent, TimeRange, TopUsersQuery, UserPoints, UserTotal,
};

mod codec;
mod commands;
mod health;
mod maintain;
#[cfg(test)]
mod protocol_tests;
mod rebuild;
mod scripts;
mod write;

use commands::{CacheError, Ops};
use health::Health;
pub use rebuild::RebuildReport;

/// Where the cache is: `REDIS_URL` and `REDIS_KEY_PREFIX`.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// `REDIS_KEY_PREFIX` (default `et:`): lets several deployments share one Redis.
    pub key_prefix: String,
}

impl RedisConfig {
    /// `None` when `REDIS_URL` is unset (no cache). A URL the Redis client would refuse
    /// when connecting is refused here, so `check-config` and the start of any command
    /// report it naming `REDIS_URL`.
    pub fn from_vars(vars: &Vars) -> Result<Option<RedisConfig>, ConfigError> {
        let key_prefix = vars.get("REDIS_KEY_PREFIX").unwrap_or("et:").to_string();
        let Some(url) = vars.get("REDIS_URL") else {
            return Ok(None);
        };
        check_redis_url(url)?;
        Ok(Some(RedisConfig {
            url: url.to_string(),
            key_prefix,
        }))
    }
}

/// A `redis://` or `unix://` (`redis+unix://`) URL that the client takes. `rediss://`
/// would need the client's TLS support, which this build leaves out, so it is refused
/// here rather than when the cache first connects. The URL itself is never repeated:
/// it may hold a password.
fn check_redis_url(url: &str) -> Result<(), ConfigError> {
    const EXPECTED: &str = "expected redis://[:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH";
    let refuse = |why: String| ConfigError::new("REDIS_URL", format!("{why}; {EXPECTED}"));
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("redis" | "unix" | "redis+unix") => {}
        Some("rediss") => {
            return Err(refuse(
                "rediss:// (Redis over TLS) is not supported: this build's Redis client has no TLS"
                    .into(),
            ))
        }
        Some(other) => return Err(refuse(format!("{other}:// is not a Redis URL scheme"))),
        None => return Err(refuse("not a URL".into())),
    }
    redis::IntoConnectionInfo::into_connection_info(url)
        .map(|_| ())
        .map_err(|e| {
            // "<description> - <kind>": the description says what is wrong.
            let what = e.to_string();
            let what = what.split(" - ").next().unwrap_or_default();
            refuse(format!("not a usable Redis URL ({what})"))
        })
}

/// The cache's settings: where it is, and the timings of its protocol.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub url: String,
    /// Every key starts with it, so deployments can share one Redis.
    pub key_prefix: String,
    /// How often each instance checks Redis; an outage is noticed within about this.
    pub poll_interval: Duration,
    /// Bound on one Redis call on the request path.
    pub op_timeout: Duration,
    /// Bound on one Redis call of a rebuild (they carry up to a page of users).
    pub build_op_timeout: Duration,
    /// How long a write whose Redis update failed keeps trying to invalidate the cache
    /// before answering anyway. Longer than a maintainer round (`poll_interval` plus two
    /// calls), so an outage it could not get through is one every instance noticed.
    pub invalidate_budget: Duration,
    /// A write announced to Redis that has not reported after this is presumed lost
    /// (its instance died), and the cache is invalidated.
    pub write_deadline: Duration,
    /// How long a write that found its event already stored waits for another write of
    /// the same user to report, before presuming that write's instance died between
    /// the store and Redis (the store has the event, the cache may not).
    pub orphan_wait: Duration,
    /// No rebuild may finish within this of an invalidation, so every instance that saw
    /// an outage has come back and invalidated before a new generation is trusted.
    pub settle: Duration,
    /// The rebuild lock expires after this unless renewed (a builder that died).
    pub build_lease: Duration,
    /// Users per store read during a rebuild.
    pub build_page: u32,
}

impl CacheConfig {
    pub fn new(redis: &RedisConfig) -> CacheConfig {
        CacheConfig {
            url: redis.url.clone(),
            key_prefix: redis.key_prefix.clone(),
            poll_interval: Duration::from_millis(250),
            op_timeout: Duration::from_millis(300),
            build_op_timeout: Duration::from_secs(10),
            invalidate_budget: Duration::from_millis(1500),
            write_deadline: Duration::from_secs(10),
            orphan_wait: Duration::from_secs(1),
            settle: Duration::from_millis(1500),
            build_lease: Duration::from_secs(15),
            build_page: 500,
        }
    }
}

/// What the maintainer, the writers and the readers share.
struct Shared {
    store: Store,
    ops: Ops,
    health: Health,
    config: CacheConfig,
}

impl Shared {
    fn connect(store: Store, config: CacheConfig) -> anyhow::Result<Shared> {
        let client = redis::Client::open(config.url.as_str()).context("REDIS_URL")?;
        // Lazy: the service starts (degraded) even while Redis is down.
        let manager = redis::aio::ConnectionManager::new_lazy_with_config(
            client,
            redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.op_timeout))
                .set_response_timeout(Some(config.build_op_timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(20))
                .set_max_delay(Duration::from_millis(100)),
        )
        .context("cannot set up the Redis connection")?;
        Ok(Shared {
            ops: Ops::new(manager, &config),
            store,
            health: Health::new(),
            config,
        })
    }

    /// Runs a cache read; `None` sends the caller to the store.
    async fn read<T>(
        &self,
        op: &'static str,
        read: impl std::future::Future<Output = Result<Option<T>, CacheError>>,
    ) -> Option<T> {
        if !self.health.serving() {
            metrics::counter!("cache_fallbacks_total", "op" => op).increment(1);
            return None;
        }
        match read.await {
            Ok(Some(v)) => Some(v),
            Ok(None) => {
                metrics::counter!("cache_fallbacks_total", "op" => op).increment(1);
                None
            }
            Err(e) => {
                self.health.failed(op, &e);
                metrics::counter!("cache_fallbacks_total", "op" => op).increment(1);
                None
            }
        }
    }
}

pub struct CachedStore {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    maintainer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl CachedStore {
    /// Wraps `store` and starts the task that watches Redis and rebuilds the cache.
    pub fn start(store: Store, config: CacheConfig) -> anyhow::Result<CachedStore> {
        tracing::info!(prefix = %config.key_prefix, "caching totals and leaderboards in Redis");
        let shared = Arc::new(Shared::connect(store, config)?);
        let (stop, stopped) = watch::channel(false);
        let maintainer = tokio::spawn(maintain::run(shared.clone(), stopped));
        Ok(CachedStore {
            shared,
            stop,
            maintainer: Mutex::new(Some(maintainer)),
        })
    }
}

/// Why [`rebuild_now`] did not rebuild the cache.
#[derive(Debug, thiserror::Error)]
pub enum RebuildNowError {
    #[error("another rebuild is running; it replaces the cache when done")]
    Busy,
    /// Redis did not answer, or failed or was invalidated during the build: try again.
    #[error("cannot rebuild the cache now: {0}")]
    Redis(String),
    #[error("cannot read the store")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

impl From<CacheError> for RebuildNowError {
    fn from(e: CacheError) -> Self {
        RebuildNowError::Redis(e.to_string())
    }
}

impl From<rebuild::RebuildError> for RebuildNowError {
    fn from(e: rebuild::RebuildError) -> Self {
        match e {
            rebuild::RebuildError::Store(e) => RebuildNowError::Store(e),
            other => RebuildNowError::Redis(other.to_string()),
        }
    }
}

/// Rebuilds the cache of `config` from `store` now, replacing the live generation when
/// done: what `eventtracker rebuild-cache` and `POST /v1/admin/cache/rebuild` run. Fails
/// if another rebuild holds the lock.
pub async fn rebuild_now(
    store: Store,
    config: CacheConfig,
) -> Result<RebuildReport, RebuildNowError> {
    let shared = Shared::connect(store, config)?;
    let run_id = shared
        .ops
        .run_id()
        .await
        .map_err(|e| RebuildNowError::Redis(format!("cannot reach Redis: {e}")))?;
    shared.ops.probe(run_id.as_deref()).await?;
    shared
        .health
        .advance(health::Trust::Starting, health::Trust::Trusted);
    rebuild::run(&shared, run_id.as_deref())
        .await?
        .ok_or(RebuildNowError::Busy)
}

/// An on-demand rebuild bound to the store behind the cache and the cache's settings.
#[derive(Clone)]
pub struct Rebuilder {
    store: Store,
    config: CacheConfig,
}

impl Rebuilder {
    /// `store` is the store the cache is in front of (not the cached store).
    pub fn new(store: Store, config: CacheConfig) -> Rebuilder {
        Rebuilder { store, config }
    }

    pub async fn run(&self) -> Result<RebuildReport, RebuildNowError> {
        rebuild_now(self.store.clone(), self.config.clone()).await
    }
}

#[async_trait]
impl Ledger for CachedStore {
    async fn record(&self, events: Vec<NewEvent>) -> Result<Recorded, StoreError> {
        if events.is_empty() {
            return Ok(Recorded::default());
        }
        // Its own task: a client hanging up must not stop the Redis update half-way
        // after the store committed.
        let shared = self.shared.clone();
        tokio::spawn(async move { write::record(&shared, events).await })
            .await
            .map_err(|e| StoreError::Internal(anyhow!("write task failed: {e}")))?
    }

    async fn user_points(&self, user_id: &str, range: TimeRange) -> Result<UserPoints, StoreError> {
        if range == TimeRange::default() {
            let s = &self.shared;
            if let Some(p) = s.read("user_points", s.ops.user_points(user_id)).await {
                return Ok(p);
            }
        }
        self.shared.store.ledger.user_points(user_id, range).await
    }

    async fn user_events(&self, query: HistoryQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.shared.store.ledger.user_events(query).await
    }

    async fn top_users(&self, query: TopUsersQuery) -> Result<Vec<UserTotal>, StoreError> {
        // Per-type rankings are not kept in Redis; the overall one is the `all` board.
        if query.event_type.is_none() {
            let s = &self.shared;
            let all = PeriodKey::all();
            let board = s.ops.leaderboard(&all.key, query.limit, query.offset);
            if let Some(rows) = s.read("top_users", board).await {
                return Ok(rows
                    .into_iter()
                    .map(|e| UserTotal {
                        user_id: e.user_id,
                        points: e.points,
                    })
                    .collect());
            }
        }
        self.shared.store.ledger.top_users(query).await
    }

    async fn leaderboard(
        &self,
        period: &PeriodKey,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<RankedEntry>, StoreError> {
        let s = &self.shared;
        let board = s.ops.leaderboard(&period.key, limit, offset);
        match s.read("leaderboard", board).await {
            Some(rows) => Ok(rows),
            None => s.store.ledger.leaderboard(period, limit, offset).await,
        }
    }

    async fn standing(
        &self,
        period: &PeriodKey,
        user_id: &str,
        around: u32,
    ) -> Result<Standing, StoreError> {
        let s = &self.shared;
        match s
            .read("standing", s.ops.standing(&period.key, user_id, around))
            .await
        {
            Some(standing) => Ok(standing),
            None => s.store.ledger.standing(period, user_id, around).await,
        }
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let shared = self.shared.clone();
        let user_id = user_id.to_owned();
        tokio::spawn(async move { write::delete_user(&shared, user_id).await })
            .await
            .map_err(|e| StoreError::Internal(anyhow!("erase task failed: {e}")))?
    }

    async fn daily_stats(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DailyTypeTotal>, StoreError> {
        self.shared.store.ledger.daily_stats(from_ms, to_ms).await
    }

    async fn recompute_user(
        &self,
        user_id: &str,
        rules: Arc<Rules>,
        apply: bool,
    ) -> Result<UserRecompute, StoreError> {
        let result = self
            .shared
            .store
            .ledger
            .recompute_user(user_id, rules, apply)
            .await;
        if apply && !matches!(&result, Ok(r) if r.changed_events == 0) {
            // A rewrite moves totals and ranks in ways the scripts have no delta for:
            // the cache is dropped and rebuilt from the store (reads go to the store
            // meanwhile). Rare: recomputes are an operator's action.
            if let Err(e) = self.shared.ops.invalidate().await {
                self.shared.health.failed("invalidate", &e);
            }
        }
        result
    }
}

#[async_trait]
impl Lifecycle for CachedStore {
    async fn cache_status(&self) -> Option<bool> {
        let s = &self.shared;
        if !s.health.serving() {
            return Some(false);
        }
        match s.ops.is_live().await {
            Ok(live) => Some(live),
            Err(e) => {
                s.health.failed("status", &e);
                Some(false)
            }
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.shared.store.lifecycle.ping().await
    }

    async fn close(&self) {
        let _ = self.stop.send(true);
        let task = self
            .maintainer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.shared.store.lifecycle.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars;

    fn config(pairs: &[(&str, &str)]) -> Result<Option<RedisConfig>, ConfigError> {
        RedisConfig::from_vars(&Vars::new(&test_vars(pairs)))
    }

    #[test]
    fn redis_is_off_without_a_url_and_keys_share_a_prefix() {
        assert!(config(&[("REDIS_KEY_PREFIX", "x:")]).unwrap().is_none());
        let c = config(&[("REDIS_URL", "redis://cache:6379")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.url.as_str(), c.key_prefix.as_str()),
            ("redis://cache:6379", "et:")
        );
        let c = config(&[("REDIS_URL", "redis://c"), ("REDIS_KEY_PREFIX", "eu1:")])
            .unwrap()
            .unwrap();
        assert_eq!(CacheConfig::new(&c).key_prefix, "eu1:");
    }

    #[test]
    fn redis_url_is_a_url_the_client_takes_and_is_never_echoed() {
        for good in [
            "redis://cache:6379",
            "redis://:s3cret@cache/2",
            "redis://127.0.0.1",
            "unix:///run/redis.sock",
            "redis+unix:///run/redis.sock?db=1",
        ] {
            assert!(config(&[("REDIS_URL", good)]).unwrap().is_some(), "{good}");
        }
        for bad in [
            "http://x",
            "cache:6379",
            "localhost",
            "redis://",
            "redis://:s3cret@cache/notanumber",
            "rediss://cache:6380",
            "valkey://cache",
        ] {
            let e = config(&[("REDIS_URL", bad)]).unwrap_err();
            assert_eq!(e.var, "REDIS_URL", "{bad}");
            assert!(e.problem.contains("expected redis://"), "{bad}: {e}");
            assert!(!e.problem.contains("s3cret"), "{bad}: {e}");
        }
    }
}
