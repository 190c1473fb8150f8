//! Bulk transfer of the ledger: `import` reads NDJSON or CSV events through the same
//! validation and duplicate rules as the API; `export` writes the ledger as NDJSON that
//! `import` reads back. Both work on whatever store the configuration selects.

pub mod export;
pub mod import;
mod input;
mod interrupt;
mod progress;
mod reader;
mod source;

use crate::config::Config;
use crate::store::Store;

pub use source::Format;

/// Opens the configured store, with the Redis cache in front when there is one, so
/// bulk writes keep a cache in step exactly as API writes do.
pub async fn open(config: &Config) -> anyhow::Result<Store> {
    let store = crate::startup::open_store(config).await?;
    match crate::startup::with_cache(store.clone(), config) {
        Ok(store) => Ok(store),
        Err(e) => {
            store.lifecycle.close().await;
            Err(e)
        }
    }
}

/// Logs go to stderr (warnings only unless `RUST_LOG` says otherwise): stdout carries
/// the export or the summary line.
pub fn init_logging(log: &crate::telemetry::LogConfig) {
    let filter = log.env_filter("warn");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
