//! The OpenAPI 3.1 document, generated from the handlers' annotations so it cannot drift.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{admin, events, leaderboard, ops, stats, users, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "EventTracker", description = "Records user events and awards points for them.\n\nWhen API keys are configured (`API_KEYS`), each operation needs a key holding the role named in its description and in `x-required-role`, sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`; without keys every operation is open."),
    // Relative: the server that served this document, wherever it runs, so clients
    // (and Schemathesis) call the instance they read it from.
    servers((url = "/", description = "The server that served this document")),
    paths(
        ops::version, ops::healthz, ops::readyz, ops::metrics, ops::openapi, ops::event_types, ops::rules,
        events::record_event, events::record_batch, events::query_points,
        users::points, users::history, users::erase, users::erase_user_named_events,
        leaderboard::leaderboard, leaderboard::standing,
        stats::daily, admin::recompute, admin::rebuild_cache,
        webhooks::list, webhooks::create, webhooks::delete, webhooks::deliveries, webhooks::replay,
    ),
    // Security after the alias, so the alias operations get theirs too.
    modifiers(&TrailingSlashAlias, &CommonResponses, &Security),
    tags(
        (name = "compatible", description = "Endpoints kept as the original service had them"),
        (name = "events", description = "Recording events, and the event types and rules that price them"),
        (name = "users", description = "A user's points, history and erasure"),
        (name = "leaderboard", description = "Ranks by points over calendar periods"),
        (name = "operations", description = "Health, metrics, this document and administration"),
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
                op.summary = op.summary.map(|s| format!("{s} (trailing slash)"));
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

/// The names of the two ways to present an API key (src/http/auth.rs), as
/// `components.securitySchemes` calls them.
pub const BEARER_SCHEME: &str = "bearerAuth";
pub const API_KEY_SCHEME: &str = "apiKeyAuth";

/// The extension naming the role an operation needs when keys are configured; the
/// handlers' annotations set it, and it must agree with the router's `guard(Role::...)`
/// (tests/api/api_description.rs checks every operation against the running server).
pub const REQUIRED_ROLE: &str = "x-required-role";

/// Describes the API keys: both schemes, and on each operation which role it needs. An
/// operation with a role takes either scheme (two alternative requirements); one without
/// is open, which `security: []` states explicitly (linters and clients cannot tell an
/// open operation from an undescribed one otherwise).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer <key>`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key: `X-API-Key: <key>`",
            ))),
        );
        for item in openapi.paths.paths.values_mut() {
            let ops: [&mut Option<Operation>; 4] = [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
            ];
            for op in ops.into_iter().flatten() {
                let role = op
                    .extensions
                    .as_ref()
                    .and_then(|e| e.get(REQUIRED_ROLE))
                    .and_then(|r| r.as_str())
                    .map(str::to_owned);
                let Some(role) = role else {
                    op.security = Some(Vec::new());
                    continue;
                };
                let empty: [&str; 0] = [];
                op.security = Some(vec![
                    SecurityRequirement::new(BEARER_SCHEME, empty),
                    SecurityRequirement::new(API_KEY_SCHEME, empty),
                ]);
                let note = format!(
                    "Needs an API key with the `{role}` role when API keys are configured."
                );
                op.description = Some(match op.description.take() {
                    Some(d) => format!("{d}\n\n{note}"),
                    None => note,
                });
            }
        }
    }
}
