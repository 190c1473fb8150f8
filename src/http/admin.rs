//! Operator actions over HTTP: replaying the ledger under the rules (`recompute`) and
//! rebuilding the Redis cache (`cache/rebuild`, what `eventtracker rebuild-cache` does).

use axum::extract::State;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::Json;
use super::AppState;
use crate::cache::RebuildNowError;
use crate::recompute::{self, RecomputeError, Report};
use crate::store::StoreError;

// The body is read into this type (`Option<Json<RecomputeRequest>>`: none, an empty
// one or `null` is the default). A bad field is a 400 naming it, in the words of the
// functions below; unknown fields are ignored. Whether `rules_version` is registered
// is for the store, after reading. A type rather than a hand parser: the parser this
// replaced stopped at the first bad field too, so naming one field loses nothing (with
// both fields bad, the one first in the body is named).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecomputeRequest {
    /// Report only (the default); `false` rewrites the ledger, totals and leaderboards.
    #[serde(default = "yes", deserialize_with = "flag")]
    pub dry_run: bool,
    /// Replay this registered version instead of the rules in force.
    #[serde(default, deserialize_with = "version")]
    #[schema(minimum = 1)]
    pub rules_version: Option<i64>,
}

impl Default for RecomputeRequest {
    /// A dry run under the rules in force.
    fn default() -> Self {
        RecomputeRequest {
            dry_run: yes(),
            rules_version: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// `true` or `false`; the message shows what was sent instead (`null` included).
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        v => Err(D::Error::custom(format!("must be true or false, not {v}"))),
    }
}

/// A version number (1 or more), or `null` for the rules in force.
fn version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => v.as_i64().filter(|n| *n >= 1).map(Some).ok_or_else(|| {
            D::Error::custom(format!("must be a version number (1 or more), not {v}"))
        }),
    }
}

#[utoipa::path(post, path = "/v1/admin/recompute", tag = "operations",
    summary = "Replay the ledger under a rules version",
    extensions(("x-required-role" = json!("admin"))),
    request_body(content = Option<RecomputeRequest>, description = "Optional; no body (or an empty one) or `null` is a dry run under the rules in force. A body needs `Content-Type: application/json`; one of only white space is not JSON (400)"),
    responses(
        (status = 200, body = Report, description = "Per user and in total, how balances differ under the replayed rules"),
        (status = 400, body = super::error::ErrorBody, description = "A malformed body, or a rules_version the store does not have"),
        (status = 413, body = super::error::ErrorBody, description = "Body over BODY_LIMIT_BYTES"),
        (status = 415, body = super::error::ErrorBody, description = "A body without `Content-Type: application/json`"),
        (status = 501, body = super::error::ErrorBody, description = "Applying needs MongoDB transactions"),
    ))]
pub async fn recompute(
    State(state): State<AppState>,
    body: Option<Json<RecomputeRequest>>,
) -> Result<axum::Json<Report>, ApiError> {
    let request = body.map(|Json(r)| r).unwrap_or_default();
    let store = &state.store;
    let rules = recompute::rules_for(store, state.rules.current(), request.rules_version)
        .await
        .map_err(|e| match e {
            RecomputeError::Store(e) => ApiError::Store(e),
            other => ApiError::field("rules_version", other.to_string()),
        })?;
    let report = recompute::run(store, rules, !request.dry_run, |_| {}).await?;
    tracing::info!(
        applied = report.applied,
        users_changed = report.users_changed,
        points_delta = report.points_delta,
        "recompute"
    );
    Ok(axum::Json(report))
}

/// What a cache rebuild did, as `eventtracker rebuild-cache` prints it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheRebuildReport {
    /// Users copied from the store into the new cache generation, now live.
    pub users: u64,
    pub elapsed_ms: u64,
}

#[utoipa::path(post, path = "/v1/admin/cache/rebuild", tag = "operations",
    summary = "Rebuild the Redis cache from the store",
    extensions(("x-required-role" = json!("admin"))),
    responses(
        (status = 200, body = CacheRebuildReport, description = "The cache was rebuilt from the store and the new copy is live"),
        (status = 409, body = super::error::ErrorBody, description = "No cache to rebuild (REDIS_URL is not set), or another rebuild is running (this instance's own, another instance's or the CLI's; it replaces the cache when done); the message says which"),
        (status = 503, body = super::error::ErrorBody, description = "Redis or the store cannot be reached, or the rebuild was superseded by an outage; see Retry-After"),
    ))]
pub async fn rebuild_cache(
    State(state): State<AppState>,
) -> Result<axum::Json<CacheRebuildReport>, ApiError> {
    // A state of the deployment, not a fault of the server: 409, not a 5xx.
    let Some(rebuilder) = state.cache_rebuilder.clone() else {
        return Err(ApiError::Conflict(
            "REDIS_URL is not set: there is no cache to rebuild".into(),
        ));
    };
    tracing::info!("cache rebuild requested");
    // Its own task: a client hanging up (or REQUEST_TIMEOUT_SECS) must not stop a build
    // half-way; it holds the rebuild lock until done.
    let report = tokio::spawn(async move { rebuilder.run().await })
        .await
        .map_err(|e| {
            ApiError::Store(StoreError::Internal(anyhow::anyhow!(
                "cache rebuild task failed: {e}"
            )))
        })?
        .map_err(|e| match e {
            RebuildNowError::Busy => ApiError::Conflict(e.to_string()),
            RebuildNowError::Redis(m) => ApiError::Unavailable {
                message: "Cannot rebuild the cache now (Redis unreachable, or the rebuild was superseded); retry later".into(),
                cause: anyhow::anyhow!("cache rebuild failed: {m}"),
            },
            RebuildNowError::Store(e) => ApiError::Store(e),
            RebuildNowError::Setup(e) => ApiError::Store(StoreError::Internal(e)),
        })?;
    Ok(axum::Json(CacheRebuildReport {
        users: report.users,
        elapsed_ms: report.elapsed.as_millis() as u64,
    }))
}
