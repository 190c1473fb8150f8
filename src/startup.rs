//! Building and running the application: the one place that wires config, store,
//! rules and HTTP together. Tests use it to start the real server on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::rules::{Rules, SharedRules};
use crate::http::auth::Auth;
use crate::http::{self, AppState, RouterOptions};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
}

/// Opens the store the configuration selects.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = SqliteStore::open(&config.sqlite)?;
    tracing::info!(path = %config.sqlite.path.display(), "using the SQLite store");
    Ok(Arc::new(store))
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Application::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Application> {
        let rules = Rules::load(&config.events_points_path)?;
        let store = open_store(&config).await?;
        let state = AppState {
            store,
            rules: Arc::new(SharedRules::new(rules)),
            clock,
            metrics: http::metrics::recorder()?,
        };
        let router = http::router(
            state.clone(),
            RouterOptions {
                body_limit_bytes: config.body_limit_bytes,
                auth: Arc::new(Auth::new(&config.auth)),
                public_metrics: config.auth.public_metrics,
                public_openapi: config.auth.public_openapi,
            },
        );
        if config.auth.keys.is_empty() {
            tracing::warn!("no API keys configured: every endpoint is open to anyone who can reach it");
        }
        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr).await.with_context(|| {
            format!("cannot listen on {addr} (API_SERVER_HOST, API_SERVER_PORT)")
        })?;
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes requests in flight and flushes
    /// the store before returning.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, "listening");
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        self.state.store.close().await;
        tracing::info!("stopped");
        served.context("server error")
    }
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
