//! The OpenAPI 3.1 document, generated from the handlers' annotations so it cannot drift.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{
    admin, events, leaderboard, progression, service_info, stats, users, wallet, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "EventTracker", description = "Records user events and awards points for them.\n\nWhen API keys are configured (`API_KEYS`), each operation needs a key holding the role named in its description and in `x-required-role`, sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`; without keys every operation is open."),
    // Relative: the server that served this document, wherever it runs, so clients
    // (and Schemathesis) call the instance they read it from.
    servers((url = "/", description = "The server that served this document")),
    paths(
        service_info::version, service_info::healthz, service_info::readyz, service_info::metrics, service_info::openapi, service_info::event_types, service_info::rules,
        events::record_event, events::record_batch, events::query_points,
        users::points, users::history, users::erase, users::erase_user_named_events,
        leaderboard::leaderboard, leaderboard::standing,
        stats::daily, admin::recompute, admin::rebuild_cache,
        progression::patch_user, progression::user_achievements, progression::user_streaks, progression::achievements,
        wallet::wallet, wallet::spend, wallet::hold, wallet::capture, wallet::void, wallet::holds,
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
        (name = "wallet", description = "The spendable balance: spends, holds, expiry"),
        (name = "progression", description = "Levels, achievements, streaks and the user's time zone"),
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
            let ops: [&mut Option<Operation>; 5] = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
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

/// The names of the two ways to present an API key (src/access/guard.rs), as
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
            let ops: [&mut Option<Operation>; 5] = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use crate::domain::event::{ClientEventId, EventTypeName, UserId};
    use crate::http::events::MAX_BATCH;
    use crate::http::webhooks::{WebhookSecret, MAX_REPLAY_IDS};
    use crate::webhooks::{rank::MAX_TOP, MAX_URL_CHARS};

    fn schemas() -> Value {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        doc["components"]["schemas"].clone()
    }

    /// A string schema's `minLength`, `maxLength` (in characters) and `pattern`.
    struct Documented {
        min: Option<u64>,
        max: Option<u64>,
        pattern: Option<regex::Regex>,
    }

    impl Documented {
        fn of(schema: &Value) -> Documented {
            Documented {
                min: schema["minLength"].as_u64(),
                max: schema["maxLength"].as_u64(),
                pattern: schema["pattern"]
                    .as_str()
                    .map(|p| regex::Regex::new(p).unwrap()),
            }
        }

        fn allows(&self, s: &str) -> bool {
            let n = s.chars().count() as u64;
            self.min.is_none_or(|m| n >= m)
                && self.max.is_none_or(|m| n <= m)
                && self.pattern.as_ref().is_none_or(|p| p.is_match(s))
        }
    }

    /// Strings around every documented bound: lengths, control characters, names.
    fn strings() -> impl Strategy<Value = String> {
        let sized =
            proptest::sample::select(vec![0usize, 1, 15, 16, 63, 64, 65, 127, 128, 129, 512, 513])
                .prop_flat_map(|n| {
                    proptest::sample::select(vec!["x", "é😀", "A", "AB_9"])
                        .prop_map(move |c| c.chars().cycle().take(n).collect::<String>())
                });
        prop_oneof![
            sized,
            "[A-Za-z0-9_]{0,70}",
            "\\PC{0,20}",
            ".{0,20}",
            (".{0,5}", proptest::char::range('\0', '\u{a0}'), ".{0,5}")
                .prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        ]
    }

    /// What the document says of each string field is what its type accepts.
    #[test]
    fn documented_string_constraints_are_the_types() {
        let schemas = schemas();
        type Accepts = fn(String) -> bool;
        let fields: [(&str, &str, Accepts); 4] = [
            ("EventInput", "user_id", |s| UserId::try_from(s).is_ok()),
            ("EventInput", "event_id", |s| {
                ClientEventId::try_from(s).is_ok()
            }),
            ("EventInput", "event_type", |s| {
                EventTypeName::try_from(s).is_ok()
            }),
            ("WebhookRequest", "secret", |s| {
                WebhookSecret::try_from(s).is_ok()
            }),
        ];
        for (schema, field, accepts) in fields {
            let documented = Documented::of(&schemas[schema]["properties"][field]);
            assert!(
                documented.min.is_some() || documented.pattern.is_some(),
                "{schema}.{field} documents no constraint"
            );
            let mut runner =
                proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2000));
            runner
                .run(&strings(), |s| {
                    prop_assert_eq!(
                        documented.allows(&s),
                        accepts(s.clone()),
                        "{}.{}: {:?}",
                        schema,
                        field,
                        s
                    );
                    Ok(())
                })
                .unwrap();
        }
    }

    /// The documented sizes and ranges are the code's.
    #[test]
    fn documented_bounds_are_the_codes() {
        let s = schemas();
        let bounds = [
            (&s["BatchInput"]["properties"]["events"], "minItems", 1),
            (
                &s["BatchInput"]["properties"]["events"],
                "maxItems",
                MAX_BATCH as u64,
            ),
            (
                &s["ReplayRequest"]["properties"]["delivery_ids"],
                "minItems",
                1,
            ),
            (
                &s["ReplayRequest"]["properties"]["delivery_ids"],
                "maxItems",
                MAX_REPLAY_IDS as u64,
            ),
            (
                &s["WebhookRequest"]["properties"]["url"],
                "maxLength",
                MAX_URL_CHARS as u64,
            ),
            (&s["WebhookRequest"]["properties"]["events"], "minItems", 1),
            (&s["RankWatch"]["properties"]["top"], "minimum", 1),
            (
                &s["RankWatch"]["properties"]["top"],
                "maximum",
                u64::from(MAX_TOP),
            ),
            (
                &s["RecomputeRequest"]["properties"]["rules_version"],
                "minimum",
                1,
            ),
        ];
        for (schema, key, value) in bounds {
            assert_eq!(schema[key], value, "{key} of {schema}");
        }
    }
}
