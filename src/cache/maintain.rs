//! The background task of each instance: probes Redis every `poll_interval`, recovers
//! after an outage (invalidating first) and starts a rebuild whenever no generation is
//! live and none is being built, so the cache comes back without a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::health::Trust;
use super::rebuild::{self, RebuildError};
use super::Shared;

/// Wait after a failed rebuild before the next, doubling up to the maximum, so a broken
/// store is not hammered.
const REBUILD_BACKOFF: Duration = Duration::from_secs(1);
const MAX_REBUILD_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut building: Option<JoinHandle<Result<(), RebuildError>>> = None;
    let mut next_build = Instant::now();
    let mut backoff = REBUILD_BACKOFF;
    loop {
        if let Some(done) = building.take_if(|b| b.is_finished()) {
            let failed = match done.await {
                Ok(Ok(())) => false,
                Ok(Err(e)) => {
                    rebuild_failed(&shared, &e);
                    // Superseded is not a failure: the next build may start at once.
                    !matches!(e, RebuildError::Aborted)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cache rebuild task failed");
                    true
                }
            };
            if failed {
                next_build = Instant::now() + backoff;
                backoff = (backoff * 2).min(MAX_REBUILD_BACKOFF);
            } else {
                backoff = REBUILD_BACKOFF;
            }
        }
        if let Some(run_id) = tick(&shared).await {
            if building.is_none() && Instant::now() >= next_build {
                let shared = shared.clone();
                building = Some(tokio::spawn(async move {
                    rebuild::run(&shared, run_id.as_deref()).await.map(|_| ())
                }));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.config.poll_interval) => {}
            _ = shared.health.wake.notified() => {}
            _ = stop.changed() => break,
        }
    }
    if let Some(b) = building {
        // Its lock lapses after the lease; another instance then builds.
        b.abort();
    }
}

fn rebuild_failed(shared: &Shared, e: &RebuildError) {
    match e {
        RebuildError::Cache(c) => shared.health.failed("rebuild", c),
        RebuildError::Aborted => tracing::info!("cache rebuild superseded; starting over"),
        other => {
            metrics::counter!("cache_errors_total", "op" => "rebuild").increment(1);
            tracing::warn!(error = %other, "cache rebuild failed; retrying");
        }
    }
}

/// One probe. Returns `Some(run id)` when a rebuild is due: Redis is trusted and holds
/// neither a live generation nor a build.
async fn tick(shared: &Shared) -> Option<Option<String>> {
    let probed = match shared.ops.run_id().await {
        Ok(run_id) => shared
            .ops
            .probe(run_id.as_deref())
            .await
            .map(|p| (run_id, p)),
        Err(e) => Err(e),
    };
    let (run_id, probe) = match probed {
        Ok(v) => v,
        Err(e) => {
            shared.health.failed("probe", &e);
            return None;
        }
    };
    if let Some(reason) = &probe.invalidated {
        metrics::counter!("cache_invalidations_total").increment(1);
        tracing::warn!(reason = %reason, "redis cache invalidated; rebuilding");
    }
    match shared.health.trust() {
        Trust::Starting => {
            shared.health.advance(Trust::Starting, Trust::Trusted);
        }
        Trust::Suspect => {
            if shared.health.advance(Trust::Suspect, Trust::Recovering) {
                // Whatever Redis holds may miss writes made while it was unreachable
                // (here or elsewhere): nothing in it is trusted again until rebuilt.
                match shared.ops.invalidate().await {
                    Ok(()) => {
                        metrics::counter!("cache_invalidations_total").increment(1);
                        if shared.health.advance(Trust::Recovering, Trust::Trusted) {
                            tracing::info!(
                                "redis is reachable again; cache invalidated, rebuilding"
                            );
                        }
                    }
                    Err(e) => shared.health.failed("recover", &e),
                }
            }
            // The probe predates the invalidation; the next round decides on a build.
            return None;
        }
        Trust::Recovering | Trust::Trusted => {}
    }
    let due = shared.health.serving() && probe.epoch.is_none() && probe.build.is_none();
    due.then_some(run_id)
}
