//! The OpenAPI 3.1 document, generated from the handlers' annotations so it cannot drift.

use utoipa::OpenApi;

use super::{events, leaderboard, ops, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "EventTracker", description = "Records user events and awards points for them."),
    paths(
        ops::version, ops::healthz, ops::readyz, ops::metrics, ops::openapi, ops::event_types,
        events::record_event, events::record_batch, events::query_points,
        users::points, users::history, users::erase,
        leaderboard::leaderboard, leaderboard::standing,
    ),
    tags(
        (name = "compatible", description = "Endpoints kept as the original service had them"),
        (name = "events"), (name = "users"), (name = "leaderboard"), (name = "operations"),
    )
)]
pub struct ApiDoc;
