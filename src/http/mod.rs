//! The HTTP API: state, routes and the layers around them.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::access::{self, Role};
use crate::clock::Clock;
use crate::domain::rules::SharedRules;
use crate::store::Store;

pub mod admin;
pub mod compression;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod extract;
pub mod leaderboard;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod progression;
pub mod server;
pub mod service_info;
pub mod stats;
pub mod users;
pub mod wallet;
pub mod webhooks;

/// Everything a handler needs; cheap to clone (all shared behind `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Where webhook subscriptions may point (`WEBHOOK_ALLOW_PRIVATE_TARGETS`, ...).
    pub webhook_targets: Arc<crate::webhooks::target::TargetPolicy>,
    pub rules: Arc<SharedRules>,
    pub clock: Arc<dyn Clock>,
    pub metrics: PrometheusHandle,
    /// Rebuilds the Redis cache on an admin's request; `None` without Redis.
    pub cache_rebuilder: Option<crate::cache::Rebuilder>,
}

pub struct RouterOptions {
    pub auth: Arc<access::Auth>,
    pub public_metrics: bool,
    pub public_openapi: bool,
    pub limits: limits::ServerLimits,
}

pub fn router(state: AppState, options: RouterOptions) -> Router {
    let guard = |role: Role| {
        axum::middleware::from_fn_with_state((options.auth.clone(), role), access::require)
    };
    let guarded = |public: bool, route: MethodRouter<AppState>| {
        if public {
            route
        } else {
            route.route_layer(guard(Role::Read))
        }
    };
    let ingest = || post(events::record_event).route_layer(guard(Role::Ingest));
    let compat_query = || get(events::query_points).route_layer(guard(Role::Read));
    let api = Router::new()
        .route("/version", get(service_info::version))
        // The dashboard page holds no data: open, like the health checks.
        .route("/", get(dashboard::page))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/assets/{name}", get(dashboard::asset))
        .route("/healthz", get(service_info::healthz))
        .route("/readyz", get(service_info::readyz))
        .route(
            "/metrics",
            guarded(options.public_metrics, get(service_info::metrics)),
        )
        .route(
            "/openapi.json",
            guarded(options.public_openapi, get(service_info::openapi)),
        )
        .route(
            "/v1/users/events",
            ingest().merge(compat_query()).merge(
                // The user whose id is `events` is erased here: this route hides theirs.
                delete(users::erase_user_named_events).route_layer(guard(Role::Admin)),
            ),
        )
        // The original service answered with and without the trailing slash.
        .route("/v1/users/events/", ingest().merge(compat_query()))
        .route(
            "/v1/events/batch",
            post(events::record_batch).route_layer(guard(Role::Ingest)),
        )
        .route(
            "/v1/users/{user_id}",
            delete(users::erase)
                .route_layer(guard(Role::Admin))
                .merge(patch(progression::patch_user).route_layer(guard(Role::Ingest))),
        )
        .merge(
            Router::new()
                .route("/v1/users/{user_id}/spend", post(wallet::spend))
                .route(
                    "/v1/users/{user_id}/holds/{hold_id}/capture",
                    post(wallet::capture),
                )
                .route(
                    "/v1/users/{user_id}/holds/{hold_id}/void",
                    post(wallet::void),
                )
                .route_layer(guard(Role::Spend)),
        )
        .route(
            "/v1/users/{user_id}/holds",
            get(wallet::holds)
                .route_layer(guard(Role::Read))
                .merge(post(wallet::hold).route_layer(guard(Role::Spend))),
        )
        .route(
            "/v1/admin/recompute",
            post(admin::recompute).route_layer(guard(Role::Admin)),
        )
        .route(
            "/v1/admin/cache/rebuild",
            post(admin::rebuild_cache).route_layer(guard(Role::Admin)),
        )
        .merge(
            Router::new()
                .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
                .route("/v1/webhooks/{id}", delete(webhooks::delete))
                .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
                .route(
                    "/v1/webhooks/{id}/deliveries/replay",
                    post(webhooks::replay),
                )
                .route_layer(guard(Role::Admin)),
        )
        .merge(
            Router::new()
                .route("/v1/event-types", get(service_info::event_types))
                .route("/v1/rules", get(service_info::rules))
                .route("/v1/users/{user_id}/points", get(users::points))
                .route("/v1/users/{user_id}/events", get(users::history))
                .route("/v1/leaderboard", get(leaderboard::leaderboard))
                .route(
                    "/v1/leaderboard/users/{user_id}",
                    get(leaderboard::standing),
                )
                .route("/v1/stats/daily", get(stats::daily))
                .route("/v1/achievements", get(progression::achievements))
                .route(
                    "/v1/users/{user_id}/achievements",
                    get(progression::user_achievements),
                )
                .route(
                    "/v1/users/{user_id}/streaks",
                    get(progression::user_streaks),
                )
                .route("/v1/users/{user_id}/wallet", get(wallet::wallet))
                .route_layer(guard(Role::Read)),
        )
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(|| async { error::ApiError::NotFound })
        .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(options.limits.body_limit_bytes))
        .layer(compression::layer())
        .with_state(state);

    api.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request<_>| {
                        let request_id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        // The route pattern is recorded once routing has matched
                        // ([`metrics::track`]): raw paths carry user ids.
                        tracing::info_span!("request", method = %req.method(), route = tracing::field::Empty, request_id)
                    })
                    // Per-request lines at debug: at info they would cost more than a request.
                    .on_request(())
                    .on_response(DefaultOnResponse::new().level(Level::DEBUG).latency_unit(tower_http::LatencyUnit::Micros)),
            )
            .layer(axum::middleware::from_fn(error::log_errors))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(axum::middleware::from_fn_with_state(
                options.limits.max_header_bytes,
                limits::header_limit,
            ))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                options.limits.request_timeout,
            )),
    )
}
