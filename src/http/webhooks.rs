//! Webhook subscriptions and their delivery logs, for admins (docs/webhooks.md).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Params, Path};
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
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; it is read field by field
pub struct WebhookRequest {
    /// Where deliveries are POSTed: an http:// or https:// URL without credentials, at
    /// a public address (unless WEBHOOK_ALLOW_PRIVATE_TARGETS or WEBHOOK_ALLOWED_TARGETS
    /// allows others).
    // The pattern describes names only (the last label starts with a letter, so the
    // URL parser never reads the host as an IPv4 address): URLs generated from this
    // document, by Schemathesis for one, must not aim deliveries at real addresses.
    #[schema(
        max_length = 2048,
        pattern = r"^https?://([a-z0-9]+\.)*[a-z][a-z0-9]*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]*)*$"
    )]
    url: String,
    /// Key of the HMAC-SHA256 signature, 16 to 512 characters.
    #[schema(min_length = 16, max_length = 512)]
    secret: String,
    /// Notifications wanted.
    #[schema(min_items = 1)]
    events: Vec<WebhookEvent>,
    /// Required with `rank.changed`, refused without it: the leaderboard watched
    /// (`period`, default `all`) and how many of its first entries (`top`, 1 to 100).
    rank: Option<RankWatch>,
}

/// A kind of notification.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the values
pub enum WebhookEvent {
    /// A user's points changed (one per user per write).
    #[schema(rename = "points.changed")]
    PointsChanged,
    /// A user used up an event type's cap for a period.
    #[schema(rename = "cap.reached")]
    CapReached,
    /// A user entered, left or moved within the top N of the watched leaderboard.
    #[schema(rename = "rank.changed")]
    RankChanged,
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
    let subs = state.store.webhooks().await?;
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
              (status = 413, body = ErrorBody, description = "Body over BODY_LIMIT_BYTES")))]
pub async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<WebhookView>), ApiError> {
    let new = parse(&body)?;
    crate::webhooks::target::check_registration(&new.url, &state.webhook_targets)
        .await
        .map_err(|e| ApiError::fields(vec![e]))?;
    let sub = state
        .store
        .upsert_webhook(new, state.clock.now_ms())
        .await?;
    tracing::info!(id = %sub.id, url = %sub.url, "webhook subscribed");
    Ok((StatusCode::CREATED, axum::Json(sub.into())))
}

fn parse(body: &[u8]) -> Result<NewSubscription, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
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
    let existed = state.store.delete_webhook(&id).await?;
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
        .webhook_deliveries(&id, status, limit)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(DeliveryList {
        data: log.into_iter().map(DeliveryView::from).collect(),
    }))
}

pub const MAX_REPLAY_IDS: usize = 1000;

/// Which deliveries to send again.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; it is read field by field
pub struct ReplayRequest {
    /// Ids from the delivery log; absent, every failed delivery of the subscription.
    #[schema(min_items = 1, max_items = 1000)]
    delivery_ids: Option<Vec<String>>,
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
    request_body(content = Option<ReplayRequest>, description = "Optional: no body (or an empty one), `null`, `{}` or `{\"delivery_ids\": null}` replays every failed delivery. A body of only whitespace is not JSON (400)"),
    responses((status = 200, body = ReplayResponse, description = "What was queued again, by id"),
              (status = 400, body = ErrorBody, description = "A malformed body"),
              (status = 404, body = ErrorBody, description = "No such subscription"),
              (status = 413, body = ErrorBody, description = "Body over BODY_LIMIT_BYTES")))]
pub async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<axum::Json<ReplayResponse>, ApiError> {
    let ids = parse_replay(&body)?;
    // Wall time, like the worker that compares it with its own.
    let now = chrono::Utc::now().timestamp_millis();
    let r = state
        .store
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

/// No body and `null` both mean "no options", as the OpenAPI schema (an optional,
/// nullable body) says. Anything else must be JSON: whitespace alone is not, and is
/// refused like any other malformed body rather than guessed at.
fn parse_replay(body: &[u8]) -> Result<Option<Vec<String>>, ApiError> {
    if body.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    let map = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => {
            return Err(ApiError::BadRequest(
                "body must be a JSON object (or null)".into(),
            ))
        }
    };
    match map.get("delivery_ids") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items))
            if (1..=MAX_REPLAY_IDS).contains(&items.len())
                && items.iter().all(Value::is_string) =>
        {
            Ok(Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ))
        }
        Some(_) => Err(ApiError::field(
            "delivery_ids",
            format!("must be an array of 1 to {MAX_REPLAY_IDS} delivery ids"),
        )),
    }
}
