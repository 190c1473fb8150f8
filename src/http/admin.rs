//! Operator actions over HTTP: replaying the ledger under the rules (`recompute`).

use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ApiError;
use super::AppState;
use crate::recompute::{self, RecomputeError, Report};

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecomputeRequest {
    /// Report only (the default); `false` rewrites the ledger, totals and leaderboards.
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Replay this registered version instead of the rules in force.
    #[serde(default)]
    pub rules_version: Option<i64>,
}

fn yes() -> bool {
    true
}

#[utoipa::path(post, path = "/v1/admin/recompute", tag = "operations",
    request_body(content = Option<RecomputeRequest>, description = "Optional; an empty body is a dry run under the rules in force"),
    responses(
        (status = 200, body = Report, description = "Per user and in total, how balances differ under the replayed rules"),
        (status = 400, body = super::error::ErrorBody, description = "A malformed body, or a rules_version the store does not have"),
        (status = 413, body = super::error::ErrorBody, description = "Body over BODY_LIMIT_BYTES"),
        (status = 501, body = super::error::ErrorBody, description = "Applying needs MongoDB transactions"),
    ))]
pub async fn recompute(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<axum::Json<Report>, ApiError> {
    let request = parse(&body)?;
    let store = state.store.as_ref();
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

fn parse(body: &[u8]) -> Result<RecomputeRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RecomputeRequest {
            dry_run: true,
            rules_version: None,
        });
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    let Value::Object(map) = &value else {
        return Err(ApiError::BadRequest("body must be a JSON object".into()));
    };
    if let Some(v) = map.get("dry_run").filter(|v| !v.is_boolean()) {
        return Err(ApiError::field(
            "dry_run",
            format!("must be true or false, not {v}"),
        ));
    }
    if let Some(v) = map
        .get("rules_version")
        .filter(|v| !(v.is_null() || v.as_i64().is_some_and(|n| n >= 1)))
    {
        return Err(ApiError::field(
            "rules_version",
            format!("must be a version number (1 or more), not {v}"),
        ));
    }
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(e.to_string()))
}
