//! Webhook subscriptions and their delivery logs, for admins (docs/webhooks.md).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Params, Path};
use super::AppState;
use crate::domain::event::FieldError;
use crate::domain::period::Period;
use crate::domain::time::format_millis;
use crate::webhooks::{
    self, Delivery, DeliveryStatus, NewSubscription, RankWatch, Subscription, RANK_CHANGED,
};

/// What is shown instead of a subscription's secret.
pub const REDACTED: &str = "[redacted]";

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    id: String,
    url: String,
    events: Vec<String>,
    /// The board `rank.changed` watches; null without `rank.changed`.
    rank: Option<RankWatch>,
    /// Always `[redacted]`: a secret is never sent back.
    secret: &'static str,
    created_at: String,
}

impl From<Subscription> for WebhookView {
    fn from(s: Subscription) -> Self {
        WebhookView {
            id: s.id,
            url: s.url,
            events: s.events,
            rank: s.rank,
            secret: REDACTED,
            created_at: format_millis(s.created_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    data: Vec<WebhookView>,
}

/// A subscription to create (or, for a URL already subscribed, to replace).
// The handler reads the body by hand ([`parse`]) so that every bad field is named at
// once, each with its own message, where a serde type stops at the first. This type is
// the body as the document describes it, each field's constraints in its type; the test
// `the_documented_type_accepts_what_parse_accepts` holds the two together: `parse`
// accepts exactly what this type accepts and [`webhooks::validate`] passes, which adds
// the rule between fields (`rank` goes with `rank.changed`). Where the URL may point
// depends on the settings and DNS: that check comes after both.
#[derive(Deserialize, ToSchema)]
pub struct WebhookRequest {
    /// Where deliveries are POSTed: an http:// or https:// URL without credentials, at
    /// a public address (unless WEBHOOK_ALLOW_PRIVATE_TARGETS or WEBHOOK_ALLOWED_TARGETS
    /// allows others).
    // The pattern describes names only (the last label starts with a letter, so the
    // URL parser never reads the host as an IPv4 address): URLs generated from this
    // document, by Schemathesis for one, must not aim deliveries at real addresses. It
    // is narrower than what is accepted (IP addresses, upper case, queries...); the test
    // checks that what it matches is accepted.
    #[schema(
        value_type = String,
        max_length = 2048,
        pattern = r"^https?://([a-z0-9]+\.)*[a-z][a-z0-9]*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]*)*$"
    )]
    pub url: WebhookUrl,
    /// Key of the HMAC-SHA256 signatures, 16 to 512 characters. `X-EventTracker-Signature`
    /// is keyed with its text; the Standard Webhooks `webhook-signature` with the decoded
    /// bytes of a `whsec_<base64>` secret (the form the official libraries take), or with
    /// the text of any other.
    #[schema(value_type = String, min_length = 16, max_length = 512)]
    pub secret: WebhookSecret,
    /// Notifications wanted.
    #[schema(value_type = Vec<WebhookEvent>, min_items = 1)]
    pub events: WebhookEvents,
    /// Required with `rank.changed`, refused without it: the leaderboard watched
    /// (`period`, default `all`) and how many of its first entries (`top`, 1 to 100).
    #[serde(default)]
    #[schema(value_type = Option<RankWatch>)]
    pub rank: Option<RankInput>,
    // Other fields are ignored. Flattened so that serde reads the body as an object
    // only: a derived struct also takes a JSON array, field by field in order.
    #[serde(flatten)]
    #[schema(ignore)]
    pub other: BTreeMap<String, IgnoredAny>,
}

/// An http:// or https:// URL with a host, at most 2048 characters, no credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct WebhookUrl(pub String);

impl TryFrom<String> for WebhookUrl {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        webhooks::check_url(&url).map(|()| WebhookUrl(url))
    }
}

/// 16 to 512 characters.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct WebhookSecret(pub String);

impl TryFrom<String> for WebhookSecret {
    type Error = String;

    fn try_from(secret: String) -> Result<Self, String> {
        webhooks::check_secret(&secret).map(|()| WebhookSecret(secret))
    }
}

/// At least one kind of notification.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<WebhookEvent>")]
pub struct WebhookEvents(pub Vec<WebhookEvent>);

impl TryFrom<Vec<WebhookEvent>> for WebhookEvents {
    type Error = &'static str;

    fn try_from(events: Vec<WebhookEvent>) -> Result<Self, &'static str> {
        if events.is_empty() {
            Err("must name at least one event")
        } else {
            Ok(WebhookEvents(events))
        }
    }
}

/// `rank` as a request gives it (the document shows [`RankWatch`]): a `period` of
/// `null` is `all`, as is none; `top` is 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankInput {
    #[serde(default)]
    pub period: Option<Period>,
    pub top: RankTop,
}

/// 1 to [`webhooks::rank::MAX_TOP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct RankTop(pub u32);

impl TryFrom<u32> for RankTop {
    type Error = String;

    fn try_from(top: u32) -> Result<Self, String> {
        if (1..=webhooks::rank::MAX_TOP).contains(&top) {
            Ok(RankTop(top))
        } else {
            Err(format!("must be 1 to {}", webhooks::rank::MAX_TOP))
        }
    }
}

impl From<WebhookRequest> for NewSubscription {
    fn from(r: WebhookRequest) -> Self {
        NewSubscription {
            url: r.url.0,
            secret: r.secret.0,
            events: r.events.0.iter().map(|e| e.as_str().to_owned()).collect(),
            rank: r.rank.map(|r| RankWatch {
                period: r.period.unwrap_or(Period::All),
                top: r.top.0,
            }),
        }
    }
}

/// A kind of notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
pub enum WebhookEvent {
    /// A user's points changed (one per user per write).
    #[serde(rename = "points.changed")]
    PointsChanged,
    /// A user used up an event type's cap for a period.
    #[serde(rename = "cap.reached")]
    CapReached,
    /// A user entered, left or moved within the top N of the watched leaderboard.
    #[serde(rename = "rank.changed")]
    RankChanged,
    /// A user unlocked an achievement (each time, for a repeatable one).
    #[serde(rename = "achievement.unlocked")]
    AchievementUnlocked,
    /// A user's level went up or down.
    #[serde(rename = "level.changed")]
    LevelChanged,
    /// A user's streak was extended, used freezes, or was found broken.
    #[serde(rename = "streak.changed")]
    StreakChanged,
}

impl WebhookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::PointsChanged => webhooks::POINTS_CHANGED,
            WebhookEvent::CapReached => webhooks::CAP_REACHED,
            WebhookEvent::RankChanged => RANK_CHANGED,
            WebhookEvent::AchievementUnlocked => webhooks::ACHIEVEMENT_UNLOCKED,
            WebhookEvent::LevelChanged => webhooks::LEVEL_CHANGED,
            WebhookEvent::StreakChanged => webhooks::STREAK_CHANGED,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    id: String,
    user_id: String,
    event: String,
    status: DeliveryStatus,
    attempts: u32,
    /// When the next attempt is due; null unless pending.
    next_attempt_at: Option<String>,
    /// HTTP status of the last attempt; null if it got no answer (or none was made).
    last_status: Option<u16>,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
    /// The exact JSON body sent on every attempt.
    #[schema(value_type = Object)]
    payload: Value,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            payload: serde_json::from_str(&d.body).unwrap_or(Value::Null),
            next_attempt_at: d
                .next_attempt_ms
                .filter(|_| d.status == DeliveryStatus::Pending)
                .map(format_millis),
            id: d.id,
            user_id: d.user_id,
            event: d.event,
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: format_millis(d.created_ms),
            updated_at: format_millis(d.updated_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    data: Vec<DeliveryView>,
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    summary = "List the webhook subscriptions",
    extensions(("x-required-role" = json!("admin"))),
    responses((status = 200, body = WebhookList, description = "Every subscription, oldest first, secrets redacted")))]
pub async fn list(State(state): State<AppState>) -> Result<axum::Json<WebhookList>, ApiError> {
    let subs = state.store.webhooks.webhooks().await?;
    Ok(axum::Json(WebhookList {
        data: subs.into_iter().map(WebhookView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    summary = "Subscribe a URL to notifications",
    extensions(("x-required-role" = json!("admin"))),
    request_body = WebhookRequest,
    responses((status = 201, body = WebhookView, description = "Subscribed; a URL already subscribed gets the new secret and events"),
              (status = 400, body = ErrorBody, description = "A bad field, named in `errors`; a `url` with credentials, or one naming or resolving to a non-public address unless WEBHOOK_ALLOW_PRIVATE_TARGETS or WEBHOOK_ALLOWED_TARGETS allows it"),
              (status = 413, body = ErrorBody, description = "Body over BODY_LIMIT_BYTES"),
              (status = 415, body = ErrorBody, description = "A body without `Content-Type: application/json`")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, axum::Json<WebhookView>), ApiError> {
    let new = parse(&body)?;
    crate::webhooks::target::check_registration(&new.url, &state.webhook_targets)
        .await
        .map_err(|e| ApiError::fields(vec![e]))?;
    let sub = state
        .store
        .webhooks
        .upsert_webhook(new, state.clock.now_ms())
        .await?;
    tracing::info!(id = %sub.id, url = %sub.url, "webhook subscribed");
    Ok((StatusCode::CREATED, axum::Json(sub.into())))
}

/// The body as a subscription, every bad field named (see [`WebhookRequest`]).
fn parse(body: &Value) -> Result<NewSubscription, ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::BadRequest("body must be a JSON object".into()));
    };
    let mut errors = Vec::new();
    let mut text = |name: &str| match map.get(name) {
        Some(Value::String(s)) => s.clone(),
        _ => {
            errors.push(FieldError::new(name, "is required and must be a string"));
            String::new()
        }
    };
    let (url, secret) = (text("url"), text("secret"));
    let events = match map.get("events") {
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => {
            errors.push(FieldError::new(
                "events",
                "is required and must be an array of strings",
            ));
            Vec::new()
        }
    };
    let rank = parse_rank(map.get("rank"), &mut errors);
    let new = NewSubscription {
        url,
        secret,
        events,
        rank,
    };
    if errors.is_empty() {
        webhooks::validate(&new).map_err(ApiError::fields)?;
        return Ok(new);
    }
    Err(ApiError::fields(errors))
}

/// `rank`: absent or null, or `{"period": "all"|"day"|"week"|"month", "top": 1..=100}`
/// (`period` defaults to `all`). The range of `top`, and whether `rank` goes with the
/// events, is for [`webhooks::validate`].
fn parse_rank(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<RankWatch> {
    let map = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Object(map)) => map,
        Some(_) => {
            errors.push(FieldError::new(
                "rank",
                format!("must be an object {{\"period\", \"top\"}} (with {RANK_CHANGED})"),
            ));
            return None;
        }
    };
    let before = errors.len();
    if let Some(k) = map.keys().find(|k| !matches!(k.as_str(), "period" | "top")) {
        errors.push(FieldError::new(
            "rank",
            format!("unknown field {k:?}; known: period, top"),
        ));
    }
    let period = match map.get("period") {
        None | Some(Value::Null) => Some(Period::All),
        Some(Value::String(p)) => Period::parse(p),
        Some(_) => None,
    };
    if period.is_none() {
        errors.push(FieldError::new(
            "rank.period",
            "must be one of all, day, week, month",
        ));
    }
    // Any whole number is taken here (too large ones as u32::MAX) so that validate
    // names the range; anything else is refused now.
    let top = match map.get("top") {
        Some(Value::Number(n)) => n.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        _ => None,
    };
    if top.is_none() {
        errors.push(FieldError::new(
            "rank.top",
            format!(
                "is required and must be a whole number from 1 to {}",
                webhooks::rank::MAX_TOP
            ),
        ));
    }
    match (period, top) {
        (Some(period), Some(top)) if errors.len() == before => Some(RankWatch { period, top }),
        _ => None,
    }
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    summary = "Unsubscribe",
    extensions(("x-required-role" = json!("admin"))),
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 204, description = "Unsubscribed (or was not subscribed); its pending deliveries and log are gone")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Idempotent, like erasing a user: the subscription is gone either way.
    let existed = state.store.webhooks.delete_webhook(&id).await?;
    tracing::info!(id = %id, existed, "webhook unsubscribed");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    summary = "A subscription's delivery log, newest first",
    extensions(("x-required-role" = json!("admin"))),
    params(
        ("id" = String, Path, description = "Subscription id"),
        ("status" = Option<String>, Query, pattern = "^(pending|delivered|failed)$", description = "Only deliveries in this state"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Default 100, at most 1000"),
    ),
    responses((status = 200, body = DeliveryList, description = "The delivery log, newest first"),
              (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such subscription")))]
pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<axum::Json<DeliveryList>, ApiError> {
    let status = params
        .get("status")
        .map(|s| {
            DeliveryStatus::parse(s)
                .ok_or_else(|| ApiError::field("status", "must be pending, delivered or failed"))
        })
        .transpose()?;
    let limit = params.number("limit", 100, 1, 1000)? as u32;
    let log = state
        .store
        .webhooks
        .webhook_deliveries(&id, status, limit)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(DeliveryList {
        data: log.into_iter().map(DeliveryView::from).collect(),
    }))
}

pub const MAX_REPLAY_IDS: usize = 1000;

/// Which deliveries to send again.
// The body is read into this type (`Option<Json<ReplayRequest>>`: none, an empty one or
// `null` replays every failed delivery): with one field there is only one to name, so a
// hand parser would add nothing. A bad `delivery_ids` is a 400 naming it; unknown
// fields are ignored.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReplayRequest {
    /// Ids from the delivery log; absent, every failed delivery of the subscription.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, min_items = 1, max_items = 1000)]
    pub delivery_ids: Option<DeliveryIds>,
}

/// 1 to [`MAX_REPLAY_IDS`] delivery ids. Read from any JSON value so that whatever is
/// wrong with it gets the one message that says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct DeliveryIds(pub Vec<String>);

impl TryFrom<Value> for DeliveryIds {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        match value {
            Value::Array(items)
                if (1..=MAX_REPLAY_IDS).contains(&items.len())
                    && items.iter().all(Value::is_string) =>
            {
                Ok(DeliveryIds(
                    items
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::String(s) => Some(s),
                            _ => None,
                        })
                        .collect(),
                ))
            }
            _ => Err(format!(
                "must be an array of 1 to {MAX_REPLAY_IDS} delivery ids"
            )),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReplayResponse {
    /// Queued again with a fresh set of attempts (same id and body as before).
    queued: Vec<String>,
    /// Still pending: they will be sent anyway.
    already_pending: Vec<String>,
    /// Not deliveries of this subscription.
    not_found: Vec<String>,
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/replay", tag = "webhooks",
    summary = "Send deliveries again",
    extensions(("x-required-role" = json!("admin"))),
    params(("id" = String, Path, description = "Subscription id")),
    request_body(content = Option<ReplayRequest>, description = "Optional: no body (or an empty one), `null`, `{}` or `{\"delivery_ids\": null}` replays every failed delivery. A body needs `Content-Type: application/json`; one of only whitespace is not JSON (400)"),
    responses((status = 200, body = ReplayResponse, description = "What was queued again, by id"),
              (status = 400, body = ErrorBody, description = "A malformed body"),
              (status = 404, body = ErrorBody, description = "No such subscription"),
              (status = 413, body = ErrorBody, description = "Body over BODY_LIMIT_BYTES"),
              (status = 415, body = ErrorBody, description = "A body without `Content-Type: application/json`")))]
pub async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<ReplayRequest>>,
) -> Result<axum::Json<ReplayResponse>, ApiError> {
    let ids = body.and_then(|Json(r)| r.delivery_ids).map(|ids| ids.0);
    // Wall time, like the worker that compares it with its own.
    let now = chrono::Utc::now().timestamp_millis();
    let r = state
        .store
        .webhooks
        .replay_deliveries(&id, ids, now)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(subscription = %id, queued = r.queued.len(), "webhook deliveries replayed");
    Ok(axum::Json(ReplayResponse {
        queued: r.queued,
        already_pending: r.already_pending,
        not_found: r.not_found,
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Map};

    use super::*;

    /// The `url` pattern of the document, without its anchors (proptest generates from
    /// unanchored expressions), as the schema of `WebhookRequest` has it.
    fn documented_url_pattern() -> String {
        let doc = <WebhookRequest as utoipa::PartialSchema>::schema();
        let doc = serde_json::to_value(doc).unwrap();
        let pattern = doc["properties"]["url"]["pattern"].as_str().unwrap();
        pattern
            .strip_prefix('^')
            .and_then(|p| p.strip_suffix('$'))
            .unwrap()
            .to_string()
    }

    fn text(chars: &'static str, lengths: &[usize]) -> BoxedStrategy<Value> {
        let lengths = lengths.to_vec();
        (proptest::sample::select(lengths), any::<u8>())
            .prop_map(move |(n, seed)| {
                let c: Vec<char> = chars.chars().collect();
                let s: String = (0..n).map(|i| c[(i + seed as usize) % c.len()]).collect();
                Value::from(s)
            })
            .boxed()
    }

    /// Values of the wrong type for any field.
    fn other_json() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            Just(json!(3.5)),
            Just(json!([])),
            Just(json!({})),
            Just(json!({"$gt": ""})),
        ]
    }

    fn url() -> impl Strategy<Value = Value> {
        let long =
            |n: usize| Value::from(format!("https://hooks.example.com/{}", "a".repeat(n - 26)));
        prop_oneof![
            8 => proptest::string::string_regex(&documented_url_pattern()).unwrap().prop_map(Value::from),
            1 => proptest::sample::select(vec![
                "https://8.8.8.8/hook",
                "http://127.0.0.1:9/",
                "http://[::1]/",
                "HTTPS://Hooks.Example.COM/x?y=1#z",
                "https://alice:pw@hooks.example.com/",
                "https://alice@hooks.example.com/",
                "ftp://hooks.example.com/",
                "mailto:a@example.com",
                "http://",
                "https:///path",
                "not a url",
                "",
            ]).prop_map(Value::from),
            1 => proptest::sample::select(vec![2047usize, 2048, 2049]).prop_map(long),
            1 => other_json(),
        ]
    }

    fn secret() -> impl Strategy<Value = Value> {
        prop_oneof![
            8 => text("abcdefghij0123456789_", &[16, 40, 512]),
            // Characters, not bytes, are counted.
            2 => text("é€😀x", &[0, 15, 16, 512, 513]),
            1 => other_json(),
        ]
    }

    fn events() -> impl Strategy<Value = Value> {
        let event = prop_oneof![
            8 => proptest::sample::select(vec!["points.changed", "cap.reached", "points.changed", "rank.changed"])
                .prop_map(Value::from),
            1 => proptest::sample::select(vec!["points", "POINTS.CHANGED", ""]).prop_map(Value::from),
            1 => other_json(),
        ];
        prop_oneof![
            8 => proptest::collection::vec(event, 1..4).prop_map(Value::from),
            1 => Just(json!([])),
            1 => other_json(),
        ]
    }

    fn rank() -> impl Strategy<Value = Value> {
        let period = prop_oneof![
            4 => proptest::sample::select(vec!["all", "day", "week", "month"]).prop_map(Value::from),
            1 => proptest::sample::select(vec!["year", "Day", ""]).prop_map(Value::from),
            1 => other_json(),
        ];
        let top = prop_oneof![
            4 => (1u64..=100).prop_map(Value::from),
            1 => proptest::sample::select(vec![0u64, 101, u32::MAX as u64, u32::MAX as u64 + 1, u64::MAX])
                .prop_map(Value::from),
            1 => proptest::sample::select(vec![json!(-1), json!(3.0), json!("3")]),
            1 => other_json(),
        ];
        let object = (
            proptest::option::of(period),
            proptest::option::of(top),
            proptest::option::weighted(0.1, Just(("n".to_string(), json!(1)))),
        )
            .prop_map(|(period, top, extra)| {
                let mut m = Map::new();
                m.extend(period.map(|p| ("period".to_string(), p)));
                m.extend(top.map(|t| ("top".to_string(), t)));
                m.extend(extra);
                Value::Object(m)
            });
        prop_oneof![4 => object, 1 => other_json()]
    }

    /// Bodies of every shape, most of them close to a valid subscription.
    fn body() -> impl Strategy<Value = Value> {
        let object = (
            proptest::option::weighted(0.95, url()),
            proptest::option::weighted(0.95, secret()),
            proptest::option::weighted(0.95, events()),
            rank(),
            // Mostly a `rank` exactly with `rank.changed`, as a valid body has it.
            proptest::sample::select(vec![
                "with rank.changed",
                "with rank.changed",
                "with rank.changed",
                "always",
                "never",
            ]),
            proptest::collection::btree_map(".{0,8}", other_json(), 0..2),
        )
            .prop_map(|(url, secret, events, rank, rank_when, others)| {
                let mut m: Map<String, Value> = others.into_iter().collect();
                let wants_rank = events
                    .as_ref()
                    .and_then(Value::as_array)
                    .is_some_and(|e| e.contains(&json!(RANK_CHANGED)));
                let rank = match rank_when {
                    "always" => Some(rank),
                    "never" => None,
                    _ => wants_rank.then_some(rank),
                };
                for (k, v) in [
                    ("url", url),
                    ("secret", secret),
                    ("events", events),
                    ("rank", rank),
                ] {
                    if let Some(v) = v {
                        m.insert(k.to_string(), v);
                    }
                }
                Value::Object(m)
            });
        prop_oneof![
            8 => object,
            1 => other_json(),
            // An array holding a valid subscription's fields in order.
            1 => Just(json!(["https://hooks.example.com/", "0123456789abcdef", ["points.changed"], null])),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The body as the document describes it (`WebhookRequest`, with the rule between
        /// fields of `webhooks::validate`) and as the handler reads it (`parse`): one
        /// accepts exactly what the other accepts, as the same subscription.
        #[test]
        fn the_documented_type_accepts_what_parse_accepts(v in body()) {
            let by_hand = parse(&v);
            match serde_json::from_value::<WebhookRequest>(v.clone()) {
                Ok(typed) => {
                    let typed = NewSubscription::from(typed);
                    match webhooks::validate(&typed) {
                        Ok(()) => prop_assert_eq!(by_hand.ok(), Some(typed), "{}", v),
                        Err(errors) => {
                            // Only the rule between fields is left to validate.
                            prop_assert!(errors.iter().all(|e| e.field == "rank"), "{v}: {errors:?}");
                            prop_assert!(by_hand.is_err(), "{}", v);
                        }
                    }
                }
                Err(e) => prop_assert!(by_hand.is_err(), "{v}: the type refuses it ({e}), parse takes it"),
            }
        }
    }

    proptest! {
        /// What the document's pattern matches (what Schemathesis sends) is a URL the
        /// API takes.
        #[test]
        fn urls_matching_the_documented_pattern_are_accepted(url in proptest::string::string_regex(&documented_url_pattern()).unwrap()) {
            prop_assert!(WebhookUrl::try_from(url.clone()).is_ok(), "{}", url);
        }
    }

    /// Both sides of the property happen: it is not vacuous.
    #[test]
    fn the_bodies_tried_are_accepted_and_refused() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..3000 {
            let v = body().new_tree(&mut runner).unwrap().current();
            if parse(&v).is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            accepted > 300 && refused > 300,
            "{accepted} accepted, {refused} refused"
        );
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let fields = |body: Value| -> Vec<String> {
            match parse(&body) {
                Err(ApiError::Validation { errors, .. }) => {
                    errors.into_iter().map(|e| e.field).collect()
                }
                other => panic!("{body}: {:?}", other.map(|s| s.url)),
            }
        };
        // What is not of the right type, first; then what the values break.
        assert_eq!(
            fields(
                json!({"secret": 3, "events": ["points.changed", 1], "rank": {"top": "3", "period": "year"}})
            ),
            ["url", "secret", "events", "rank.period", "rank.top"]
        );
        assert_eq!(
            fields(
                json!({"url": "ftp://x", "secret": "short", "events": ["points", "rank.changed"]})
            ),
            ["url", "secret", "events", "rank"]
        );
    }
}
