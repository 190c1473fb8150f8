//! One group commit: the engine's verdict (see judge.rs) written in the way the
//! deployment allows. Each way is its own module, with its own guarantee:
//!
//! - [`transactional`] (replica set, sharded cluster): the new events, their counter
//!   increments and their deliveries commit atomically in one multi-document
//!   transaction.
//! - [`journaled`] (standalone server): events are written marked `pending`, counters
//!   move through per-batch guards, and recovery finishes any batch a crash cut short,
//!   so every acknowledged event is counted exactly once, possibly late.

use mongodb::error::Result;

pub use super::journaled::{apply_guarded, finish};
use super::{journaled, transactional, Ctx, Mode};
use crate::domain::event::NewEvent;
use crate::store::Recorded;

pub struct Committed {
    /// Per request, what it stored.
    pub recorded: Vec<Recorded>,
    /// Tidying left once clients have their answers (journal mode).
    pub cleanup: Option<Applied>,
}

/// A batch whose counters are in: what [`finish`] needs to retire it.
pub struct Applied {
    pub batch: String,
    pub event_ids: Vec<String>,
    /// The users whose state documents the batch reached, and its archive documents.
    pub user_ids: Vec<String>,
    pub archive_ids: Vec<String>,
}

/// Stores the events of `requests` exactly once each.
pub async fn record(ctx: &Ctx, requests: &[&[NewEvent]]) -> Result<Committed> {
    match ctx.mode {
        Mode::Transactions => Ok(Committed {
            recorded: transactional::record(ctx, requests).await?,
            cleanup: None,
        }),
        Mode::Journal => journaled::record(ctx, requests).await,
    }
}

pub fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
