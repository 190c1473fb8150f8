//! The write path: announce to Redis, write to the store, report to Redis.
//!
//! The announcement lets a rebuild tell whether its read of a user's counters may have
//! raced a write (see `LOAD` in scripts.rs); the report applies the write's deltas. When
//! either step fails, the write's effect on the cache is unknown, so the cache as a
//! whole is invalidated before the client is answered, or, if Redis cannot be reached
//! at all, this instance invalidates it the moment Redis is back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::codec::{score, UserEntry};
use super::commands::{CacheError, ReportMode};
use super::health::Trust;
use super::Shared;
use crate::domain::event::NewEvent;
use crate::store::{RecordOutcome, Recorded, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announced {
    Yes,
    /// Tried and failed: the announcement may still land later, so the write reports
    /// anyway to withdraw it.
    Failed,
    /// Not tried: this instance already distrusts Redis.
    Skipped,
}

async fn announce(shared: &Shared, wid: &str, users: &[String]) -> Announced {
    if !shared.health.announcing() {
        return Announced::Skipped;
    }
    match shared.ops.announce(wid, users).await {
        Ok(()) => Announced::Yes,
        Err(e) => {
            shared.health.failed("announce", &e);
            Announced::Failed
        }
    }
}

pub async fn record(shared: &Shared, events: Vec<NewEvent>) -> Result<Recorded, StoreError> {
    let wid = uuid::Uuid::now_v7().simple().to_string();
    let users: Vec<String> = events
        .iter()
        .map(|e| e.user_id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    // The store takes the events by value; keep who each belongs to.
    let owners: Vec<String> = events.iter().map(|e| e.user_id.clone()).collect();
    let announced = announce(shared, &wid, &users).await;
    let result = shared.store.ledger.record(events).await;
    let entries = match &result {
        Ok(recorded) => entries(&owners, recorded),
        Err(_) => users.into_iter().map(UserEntry::bare).collect(),
    };
    report(shared, &wid, announced, result.is_ok(), &entries).await;
    result
}

pub async fn delete_user(shared: &Shared, user_id: String) -> Result<bool, StoreError> {
    let wid = uuid::Uuid::now_v7().simple().to_string();
    let announced = announce(shared, &wid, std::slice::from_ref(&user_id)).await;
    let result = shared.store.ledger.delete_user(&user_id).await;
    let entry = UserEntry {
        d: true,
        ..UserEntry::bare(user_id)
    };
    report(shared, &wid, announced, result.is_ok(), &[entry]).await;
    result
}

/// The engine's changes of one write, per user, in the form the scripts apply.
fn entries(owners: &[String], recorded: &Recorded) -> Vec<UserEntry> {
    let duplicates: BTreeSet<&str> = owners
        .iter()
        .zip(&recorded.outcomes)
        .filter(|(_, o)| matches!(o, RecordOutcome::Duplicate { .. }))
        .map(|(u, _)| u.as_str())
        .collect();
    recorded
        .changes
        .iter()
        .map(|(user, changes)| UserEntry {
            t: changes
                .by_type
                .iter()
                .map(|(t, c)| (t.clone(), c.events.to_string(), c.points.to_string()))
                .collect(),
            p: changes
                .periods
                .iter()
                .map(|(k, p)| (k.clone(), score(*p)))
                .collect(),
            dup: duplicates.contains(user.as_str()),
            ..UserEntry::bare(user.clone())
        })
        .collect()
}

/// After the store answered: apply the deltas, or invalidate when they cannot be known
/// to be right (the store failed, so it may or may not have committed; the write was
/// not announced).
async fn report(
    shared: &Shared,
    wid: &str,
    announced: Announced,
    store_ok: bool,
    entries: &[UserEntry],
) {
    if announced == Announced::Skipped && shared.health.trust() == Trust::Suspect {
        // The recovery that ends Suspect invalidates the cache after this write
        // committed, and no build started before it can finish.
        return;
    }
    let mode = if announced == Announced::Yes && store_ok {
        ReportMode::Apply
    } else {
        ReportMode::Invalidate
    };
    let error = match shared.ops.report(wid, mode, entries).await {
        Ok(pending) if pending.is_empty() => return,
        Ok(pending) => match await_orphans(shared, pending).await {
            Ok(()) => return,
            Err(e) => e,
        },
        Err(e) => e,
    };
    shared.health.failed("report", &error);
    // The report may or may not have run. Other instances may still reach Redis and
    // would serve a total without this write: keep trying to invalidate for a while.
    let until = Instant::now() + shared.config.invalidate_budget;
    while Instant::now() < until {
        match shared.ops.invalidate().await {
            Ok(()) => {
                tracing::info!("cache invalidated after a failed update");
                return;
            }
            Err(e) => {
                metrics::counter!("cache_errors_total", "op" => "invalidate").increment(1);
                tracing::debug!(error = %e, "cannot invalidate the cache yet");
                tokio::time::sleep(shared.config.poll_interval / 4).await;
            }
        }
    }
    tracing::warn!(
        "cannot reach Redis to invalidate the cache; it is invalidated when Redis is back"
    );
}

/// The event is already stored, and another write of these users has not reported. A
/// live writer reports within milliseconds; one that does not within `orphan_wait` is
/// presumed dead between the store and Redis, and the cache, which may miss its write,
/// is invalidated before this duplicate is answered (its client reads next).
async fn await_orphans(shared: &Shared, mut users: Vec<String>) -> Result<(), CacheError> {
    let until = Instant::now() + shared.config.orphan_wait;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
        users = shared.ops.pending(&users).await?;
        if users.is_empty() {
            return Ok(());
        }
    }
    shared.ops.abandon(&users).await?;
    metrics::counter!("cache_invalidations_total").increment(1);
    tracing::warn!(
        users = users.len(),
        "a write to the cache never reported (its instance probably stopped); cache invalidated"
    );
    Ok(())
}
