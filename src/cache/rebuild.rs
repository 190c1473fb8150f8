//! Rebuilding the cache from the store into a fresh generation, while writes go on.
//!
//! Users are copied one page at a time with a version check: before reading a user
//! from the store the build notes the user's write version (and that no write of the
//! user is announced); after, the load script writes the counters only if both still
//! hold. Otherwise the read may have raced a write and the user is marked dirty and
//! loaded again. Writes reported during the build add their deltas to users already
//! loaded and mark the others dirty, so when no user is dirty the generation equals the
//! store plus exactly the writes reported since, and it can go live.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::codec::UserEntry;
use super::commands::{CacheError, Finalize};
use super::Shared;
use crate::store::{StoreError, UserCounters};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub users: u64,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot read the store")]
    Store(#[from] StoreError),
    /// Invalidated meanwhile (an outage, a failed write): the next build starts over.
    #[error("the rebuild was superseded")]
    Aborted,
    #[error("users kept being written for {0:?}; the rebuild gave up and will be retried")]
    NoProgress(Duration),
}

/// Builds a generation and makes it live. `None` when another build holds the lock.
pub async fn run(
    shared: &Shared,
    run_id: Option<&str>,
) -> Result<Option<RebuildReport>, RebuildError> {
    let started = Instant::now();
    let token = uuid::Uuid::now_v7().simple().to_string();
    let lease = shared.config.build_lease;
    if !shared.ops.acquire(&token, lease, run_id).await? {
        return Ok(None);
    }
    tracing::info!(generation = %token, "rebuilding the cache from the store");
    let users = match build(shared, &token).await {
        Ok(users) => users,
        Err(e) => {
            // Others may build at once instead of waiting for the lease to lapse.
            if let Err(release) = shared.ops.release(&token).await {
                tracing::debug!(error = %release, "cannot release the rebuild lock");
            }
            return Err(e);
        }
    };
    let elapsed = started.elapsed();
    metrics::counter!("cache_rebuilds_total").increment(1);
    tracing::info!(generation = %token, users, elapsed_ms = elapsed.as_millis() as u64, "cache rebuilt and live");
    match shared.ops.drop_dead_generations().await {
        Ok(keys) if keys > 0 => tracing::info!(keys, "removed keys of old cache generations"),
        Ok(_) => {}
        // Leftovers only cost memory; the next rebuild removes them.
        Err(e) => tracing::warn!(error = %e, "cannot remove old cache generations"),
    }
    Ok(Some(RebuildReport { users, elapsed }))
}

/// Copies every user into generation `token` and makes it live; returns the users copied.
async fn build(shared: &Shared, token: &str) -> Result<u64, RebuildError> {
    let lease = shared.config.build_lease;
    let page = shared.config.build_page;
    let mut users = 0;
    let mut after: Option<String> = None;
    loop {
        let ids = shared.store.export.user_ids(after.clone(), page).await?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        users += ids.len() as u64;
        load(shared, token, ids).await?;
        after = Some(last);
    }
    let mut progress_at = Instant::now();
    loop {
        let dirty = shared.ops.dirty_users(token, page).await?;
        if !dirty.is_empty() {
            if load(shared, token, dirty).await? > 0 {
                progress_at = Instant::now();
            } else if progress_at.elapsed() > lease {
                return Err(RebuildError::NoProgress(lease));
            } else {
                // Those users have writes in flight; they finish in milliseconds.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            continue;
        }
        if !shared.health.serving() {
            return Err(RebuildError::Aborted);
        }
        match shared.ops.finalize(token).await? {
            Finalize::Done => return Ok(users),
            Finalize::Dirty => continue,
            Finalize::Aborted => return Err(RebuildError::Aborted),
            Finalize::Wait => {
                tokio::time::sleep(shared.config.poll_interval).await;
                if shared.ops.check_users(token, lease, &[]).await?.is_none() {
                    return Err(RebuildError::Aborted);
                }
            }
        }
    }
}

/// Loads these users into the generation; returns how many loaded (the others are dirty).
async fn load(shared: &Shared, token: &str, ids: Vec<String>) -> Result<u64, RebuildError> {
    let lease = shared.config.build_lease;
    let versions = shared
        .ops
        .check_users(token, lease, &ids)
        .await?
        .ok_or(RebuildError::Aborted)?;
    let quiet: Vec<(String, String)> = ids
        .into_iter()
        .zip(versions)
        .filter_map(|(u, v)| v.map(|v| (u, v)))
        .collect();
    if quiet.is_empty() {
        return Ok(0);
    }
    let mut counters: HashMap<String, UserCounters> = shared
        .store
        .export
        .user_counters(quiet.iter().map(|(u, _)| u.clone()).collect())
        .await?
        .into_iter()
        .map(|c| (c.user_id.clone(), c))
        .collect();
    let entries = quiet
        .into_iter()
        .map(|(user_id, version)| {
            // Users without counters were erased since they were listed: they load
            // as empty, which removes whatever the generation had for them.
            let c = counters.remove(&user_id).unwrap_or(UserCounters {
                user_id,
                ..Default::default()
            });
            UserEntry::absolute(c, version)
        })
        .collect();
    // Bounded script size: one script blocks Redis while it runs.
    let mut loaded = 0;
    for chunk in chunks_by_size(entries, 20_000) {
        loaded += shared
            .ops
            .load(token, &chunk)
            .await?
            .ok_or(RebuildError::Aborted)?;
    }
    Ok(loaded)
}

/// Splits entries so each chunk carries about `budget` counters at most.
fn chunks_by_size(entries: Vec<UserEntry>, budget: usize) -> Vec<Vec<UserEntry>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for e in entries {
        let n = 1 + e.t.len() + e.p.len();
        if size + n > budget && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += n;
        current.push(e);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}
