//! Building and running the application: the one place that wires config, store,
//! rules and HTTP together. Tests use it to start the real server on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::access::Auth;
use crate::cache::{CacheConfig, CachedStore, RebuildReport, Rebuilder};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::rules::{Rules, SharedRules};
use crate::http::{self, AppState, RouterOptions};
use crate::rules_reload::Reloader;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::webhooks::worker::Worker;

pub struct Application {
    listener: TcpListener,
    limits: crate::http::limits::ServerLimits,
    router: axum::Router,
    state: AppState,
    reloader: Arc<Reloader>,
    reload_interval: Option<std::time::Duration>,
    webhooks: Arc<Worker>,
    wallets: Arc<crate::wallet_sweeper::Sweeper>,
}

/// The background loops of an application, for tests: instead of sleeping and hoping a
/// loop got somewhere, a test takes its one step itself ([`Reloader::check`],
/// [`Worker::run_once`], [`Worker::prune_once`]) or waits on the worker's
/// [`Worker::progress`]. (The cache's maintainer shows its state in `/readyz`.)
#[derive(Clone)]
pub struct Loops {
    pub rules: Arc<Reloader>,
    pub webhooks: Arc<Worker>,
    pub wallets: Arc<crate::wallet_sweeper::Sweeper>,
}

/// What `check-config` checks beyond parsing the configuration (which already refused
/// every bad value, `REDIS_URL` and the `MONGO_*` settings included): everything else
/// `serve` would refuse before serving, without creating or connecting to anything.
/// Returns the rules for the summary line.
///
/// Left to `serve`: whether `API_SERVER_HOST` resolves and the port is free (known when
/// binding), and whether MongoDB and Redis answer.
pub async fn check_config(config: &Config) -> anyhow::Result<Rules> {
    let rules = config.rules.load()?;
    crate::webhooks::target::check_file(&config.webhooks.subscriptions, &config.webhooks.targets)
        .await
        .map_err(|e| anyhow::anyhow!("WEBHOOKS_PATH: {e}"))?;
    if config.mongo.is_none() {
        config.sqlite.check_location()?;
    }
    Ok(rules)
}

/// Opens the store the configuration selects.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if let Some(mongo) = &config.mongo {
        let store = crate::store::mongo::MongoStore::open(mongo).await?;
        tracing::info!(database = %mongo.database, "using the MongoDB store");
        return Ok(Store::of(store));
    }
    let store = SqliteStore::open(&config.sqlite)?;
    tracing::info!(path = %config.sqlite.path.display(), "using the SQLite store");
    Ok(Store::of(store))
}

/// Opens the store for reading only (`export`): on SQLite without taking the file from
/// a server that may be running on it ([`SqliteStore::open_reader`]).
pub async fn open_store_for_reading(config: &Config) -> anyhow::Result<Store> {
    if config.mongo.is_some() {
        return open_store(config).await;
    }
    Ok(Store::of(SqliteStore::open_reader(&config.sqlite)?))
}

/// Puts the Redis cache in front of `store`'s ledger when the configuration has Redis:
/// the cache replaces the ledger (what it caches) and the lifecycle (its own task and
/// health); rules, webhooks and export stay the store's own.
pub fn with_cache(store: Store, config: &Config) -> anyhow::Result<Store> {
    match &config.redis {
        Some(redis) => {
            let cached = Arc::new(CachedStore::start(store.clone(), CacheConfig::new(redis))?);
            Ok(Store {
                ledger: cached.clone(),
                lifecycle: cached,
                ..store
            })
        }
        None => Ok(store),
    }
}

/// The rebuilder of the Redis cache in front of `store`, when the configuration has Redis.
pub fn cache_rebuilder(store: &Store, config: &Config) -> Option<Rebuilder> {
    let redis = config.redis.as_ref()?;
    Some(Rebuilder::new(store.clone(), CacheConfig::new(redis)))
}

/// Rebuilds the Redis cache from the store now (the `rebuild-cache` command; the server's
/// `POST /v1/admin/cache/rebuild` runs the same [`Rebuilder`]).
pub async fn rebuild_cache(config: &Config) -> anyhow::Result<RebuildReport> {
    let redis = config
        .redis
        .as_ref()
        .context("REDIS_URL is not set: there is no cache to rebuild")?;
    let store = open_store(config).await?;
    let result = Rebuilder::new(store.clone(), CacheConfig::new(redis))
        .run()
        .await;
    store.lifecycle.close().await;
    Ok(result?)
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Application::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Application> {
        // First, so what start-up emits (the rules version) is recorded.
        let metrics = http::metrics::recorder()?;
        let rules = config.rules.load()?;
        let uncached = open_store(&config).await?;
        let cache_rebuilder = cache_rebuilder(&uncached, &config);
        let store = with_cache(uncached, &config)?;
        let reloader = Reloader {
            path: config.rules.path.clone(),
            rules: Arc::new(SharedRules::new(rules.clone())),
            store: store.clone(),
            clock: clock.clone(),
        };
        reloader.rules.replace(reloader.register(rules).await);
        let webhook_targets = Arc::new(config.webhooks.targets.clone());
        let webhooks = start_webhooks(&store, &config, &webhook_targets, clock.now_ms()).await?;
        let state = AppState {
            store,
            webhook_targets,
            rules: reloader.rules.clone(),
            clock,
            metrics,
            cache_rebuilder,
        };
        let router = http::router(
            state.clone(),
            RouterOptions {
                auth: Arc::new(Auth::new(&config.access)),
                public_metrics: config.access.public_metrics,
                public_openapi: config.access.public_openapi,
                limits: config.limits,
            },
        );
        if config.access.keys.is_empty() {
            tracing::warn!(
                "no API keys configured: every endpoint is open to anyone who can reach it"
            );
        }
        // API_SERVER_HOST may be a host name: resolve it here, where a name that does not
        // resolve can be reported as such.
        let (host, port) = (config.listen.host.as_str(), config.listen.port);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("API_SERVER_HOST: cannot resolve {host}"))?
            .collect();
        let listener = TcpListener::bind(&addrs[..]).await.with_context(|| {
            format!("cannot listen on {host} port {port} (API_SERVER_HOST, API_SERVER_PORT)")
        })?;
        let wallets = Arc::new(crate::wallet_sweeper::Sweeper {
            store: state.store.clone(),
            rules: state.rules.clone(),
            clock: state.clock.clone(),
        });
        Ok(Application {
            listener,
            limits: config.limits,
            router,
            state,
            reloader: Arc::new(reloader),
            reload_interval: config.rules.reload_interval,
            webhooks: Arc::new(webhooks),
            wallets,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The application's background loops (see [`Loops`]); they run once `run_until`
    /// is called, so take them before.
    pub fn loops(&self) -> Loops {
        Loops {
            rules: self.reloader.clone(),
            webhooks: self.webhooks.clone(),
            wallets: self.wallets.clone(),
        }
    }

    /// Serves until `shutdown` completes, then finishes requests in flight and flushes
    /// the store before returning.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, "listening");
        let reload = tokio::spawn(self.reloader.run(self.reload_interval));
        let webhooks = tokio::spawn(self.webhooks.run());
        let wallets = tokio::spawn(self.wallets.run(std::time::Duration::from_secs(1)));
        let deadlines = http::server::Deadlines {
            header_read: self.limits.header_read_timeout,
            keep_alive: self.limits.keep_alive_timeout,
        };
        http::server::serve(
            self.listener,
            self.router,
            self.limits.max_connections,
            deadlines,
            shutdown,
        )
        .await;
        reload.abort();
        wallets.abort();
        // Deliveries in flight stay pending and are sent again after a restart.
        webhooks.abort();
        let _ = webhooks.await;
        self.state.store.lifecycle.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Registers the subscriptions of `WEBHOOKS_PATH` and prepares the delivery worker.
async fn start_webhooks(
    store: &Store,
    config: &Config,
    targets: &Arc<crate::webhooks::target::TargetPolicy>,
    now_ms: i64,
) -> anyhow::Result<Worker> {
    // Checked like a registration over the API, before any is stored.
    crate::webhooks::target::check_file(&config.webhooks.subscriptions, targets)
        .await
        .map_err(|e| anyhow::anyhow!("WEBHOOKS_PATH: {e}"))?;
    for sub in &config.webhooks.subscriptions {
        match store.webhooks.upsert_webhook(sub.clone(), now_ms).await {
            Ok(_) => {}
            // A database that cannot be written now (read-only, full) is still served;
            // what is already subscribed keeps being delivered once it can be written.
            Err(StoreError::Unavailable(e)) => {
                tracing::error!(url = %sub.url, error = format!("{e:#}"), "WEBHOOKS_PATH: cannot register the subscription now; it is registered at the next start");
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("WEBHOOKS_PATH: cannot register {}", sub.url))
            }
        }
    }
    Worker::new(store.clone(), config.webhooks.delivery, targets.clone())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received, draining");
}
