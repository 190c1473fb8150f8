//! The OpenAPI 3.1 document, generated from the handlers' annotations so it cannot drift.

use utoipa::openapi::path::Operation;
use utoipa::openapi::{RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{admin, events, leaderboard, ops, stats, users, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "EventTracker", description = "Records user events and awards points for them."),
    paths(
        ops::version, ops::healthz, ops::readyz, ops::metrics, ops::openapi, ops::event_types, ops::rules,
        events::record_event, events::record_batch, events::query_points,
        users::points, users::history, users::erase, users::erase_user_named_events,
        leaderboard::leaderboard, leaderboard::standing,
        stats::daily, admin::recompute, admin::rebuild_cache,
        webhooks::list, webhooks::create, webhooks::delete, webhooks::deliveries, webhooks::replay,
    ),
    modifiers(&TrailingSlashAlias, &CommonResponses),
    tags(
        (name = "compatible", description = "Endpoints kept as the original service had them"),
        (name = "events"), (name = "users"), (name = "leaderboard"), (name = "operations"),
        (name = "stats", description = "Aggregates for the dashboard"),
        (name = "webhooks", description = "Notifications to other systems when points change (admin)"),
    )
)]
pub struct ApiDoc;

/// The compatible `GET`/`POST /v1/users/events/` (trailing slash), routed to the same
/// handlers as `/v1/users/events`: described as copies of those operations.
struct TrailingSlashAlias;

impl Modify for TrailingSlashAlias {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(item) = openapi.paths.paths.get("/v1/users/events") else {
            return;
        };
        let alias = |op: &Option<Operation>| {
            op.clone().map(|mut op| {
                op.operation_id = op.operation_id.map(|id| format!("{id}_trailing_slash"));
                let note =
                    "The same as without the trailing slash (the original service answered both).";
                op.description = Some(match op.description.take() {
                    Some(d) => format!("{d}\n\n{note}"),
                    None => note.to_string(),
                });
                op
            })
        };
        let mut copy = utoipa::openapi::PathItem::default();
        copy.get = alias(&item.get);
        copy.post = alias(&item.post);
        copy.parameters = item.parameters.clone();
        openapi.paths.paths.insert("/v1/users/events/".into(), copy);
    }
}

/// Answers any endpoint can give, whatever its handler does: the protections in front of
/// every route (keys, rate limits, timeouts, header size) and an unavailable store.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .into()
        };
        let common = [
            (
                "401",
                "Missing or unknown API key (when keys are configured)",
            ),
            ("403", "The API key lacks the role"),
            ("404", "Not found"),
            ("405", "Method not allowed"),
            ("408", "The request took longer than REQUEST_TIMEOUT_SECS"),
            ("429", "Rate limit of the key exceeded; see Retry-After"),
            ("431", "Request headers and URL too large"),
            ("500", "Internal error; the cause is logged, never sent"),
            ("503", "The store is unavailable; see Retry-After"),
        ];
        for item in openapi.paths.paths.values_mut() {
            let ops: [&mut Option<Operation>; 4] = [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
            ];
            for op in ops.into_iter().flatten() {
                for (code, description) in common {
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| error(description));
                }
            }
        }
    }
}
