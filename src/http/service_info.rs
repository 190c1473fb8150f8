//! Operational endpoints that describe the service: version, liveness and readiness,
//! metrics, the event types and rules versions in force, and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::error::ApiError;
use super::AppState;
use crate::domain::rules::{EventType, RulesVersion};

#[utoipa::path(get, path = "/version", tag = "compatible",
    summary = "The API version, as text",
    responses((status = 200, body = String, content_type = "text/plain", example = "v1")))]
pub async fn version() -> &'static str {
    "v1"
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    summary = "Liveness: the process is up",
    responses((status = 200, body = Health, description = "The process is up")))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// `ok` or `unavailable`.
    store: &'static str,
    /// `ok`, `degraded` (Redis is down or rebuilding: reads are served by the store,
    /// correctly but slower; the instance stays ready) or `disabled` (no `REDIS_URL`).
    redis: &'static str,
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    summary = "Readiness: whether the store answers",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let redis = match state.store.lifecycle.cache_status().await {
        None => "disabled",
        Some(true) => "ok",
        Some(false) => "degraded",
    };
    match state.store.lifecycle.ping().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(Readiness {
                status: "ready",
                store: "ok",
                redis,
            }),
        ),
        Err(e) => {
            tracing::warn!(
                error = format!("{:#}", anyhow::Error::from(e)),
                "readiness check failed"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(Readiness {
                    status: "unavailable",
                    store: "unavailable",
                    redis,
                }),
            )
        }
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics",
    description = "Prometheus text format; docs/api.md lists the metrics. By default (`PUBLIC_METRICS=false`) it needs the role below; `PUBLIC_METRICS=true` opens it to anyone.",
    extensions(("x-required-role" = json!("read"))),
    responses((status = 200, body = String, content_type = "text/plain", description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[derive(Serialize, ToSchema)]
pub struct EventTypes {
    data: Vec<EventType>,
    /// The rules version these types belong to; null until the store registered it.
    rules_version: Option<RulesVersion>,
}

#[utoipa::path(get, path = "/v1/event-types", tag = "events",
    summary = "The configured event types and their points",
    extensions(("x-required-role" = json!("read"))),
    responses((status = 200, body = EventTypes)))]
pub async fn event_types(State(state): State<AppState>) -> axum::Json<EventTypes> {
    let rules = state.rules.current();
    axum::Json(EventTypes {
        data: rules.types().to_vec(),
        rules_version: rules.registered().cloned(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct RulesVersions {
    /// Every configuration the store registered, newest first.
    data: Vec<RulesVersion>,
    /// The version this instance applies now.
    current: Option<i64>,
}

#[utoipa::path(get, path = "/v1/rules", tag = "events",
    summary = "Every registered rules version, newest first",
    extensions(("x-required-role" = json!("read"))),
    responses((status = 200, body = RulesVersions)))]
pub async fn rules(State(state): State<AppState>) -> Result<axum::Json<RulesVersions>, ApiError> {
    Ok(axum::Json(RulesVersions {
        data: state.store.rules.rules_versions().await?,
        current: state.rules.current().version(),
    }))
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    summary = "This OpenAPI document",
    description = "Open to anyone by default (`PUBLIC_OPENAPI=true`); `PUBLIC_OPENAPI=false` makes it need an API key with the `read` role.",
    responses((status = 200, description = "This document")))]
pub async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(super::openapi::ApiDoc::openapi())
}
