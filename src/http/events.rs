//! Ingest: single events, batches, and the compatible per-user points query.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Params};
use super::AppState;
use crate::domain::event::{validate_event, FieldError, NewEvent};
use crate::store::{RecordOutcome, TimeRange, TopUsersQuery};

pub const MAX_BATCH: usize = 1000;

/// An event as clients send it (documentation of the body; validation names each field).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventInput {
    /// 1 to 128 characters.
    #[schema(
        example = "13",
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    user_id: String,
    /// A name configured in `events.yaml`.
    #[schema(example = "PURCHASE", pattern = r"^[A-Z][A-Z0-9_]{0,63}$")]
    event_type: String,
    timestamp: TimestampInput,
    /// The client's idempotency key, 1 to 128 characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    event_id: Option<String>,
    /// Any JSON object up to 8 KiB, with keys of at most 256 characters at any depth;
    /// stored and returned with the event.
    #[schema(value_type = Option<Object>)]
    properties: Option<Value>,
}

/// Unix seconds, Unix milliseconds (values >= 100000000000), or an RFC 3339 string;
/// not negative, at most one hour in the future.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum TimestampInput {
    #[schema(example = 14223343)]
    Unix(u64),
    #[schema(example = "2026-11-29T12:00:00Z", format = DateTime)]
    Rfc3339(String),
}

#[derive(Serialize, ToSchema)]
pub struct EventCreated {
    #[schema(example = "User events recorded Successfully")]
    message: &'static str,
    id: String,
    points: i64,
}

fn count(outcome: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("events_total", "outcome" => outcome).increment(n as u64);
    }
}

#[utoipa::path(post, path = "/v1/users/events", tag = "events",
    summary = "Record one event",
    extensions(("x-required-role" = json!("ingest"))),
    request_body = EventInput,
    responses(
        (status = 201, body = EventCreated),
        (status = 400, body = ErrorBody, description = "Invalid fields, each named"),
        (status = 409, body = ErrorBody, description = "Duplicate; `id` is the stored event"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn record_event(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, axum::Json<EventCreated>), ApiError> {
    let rules = state.rules.current();
    let event = validate_event(&body, &rules, state.clock.now_ms(), "").map_err(|errors| {
        count("rejected", 1);
        ApiError::fields(errors)
    })?;
    let outcome = state.store.record(vec![event]).await?.pop();
    match outcome {
        Some(RecordOutcome::Created { id, points }) => {
            count("created", 1);
            Ok((
                StatusCode::CREATED,
                axum::Json(EventCreated {
                    message: "User events recorded Successfully",
                    id,
                    points,
                }),
            ))
        }
        Some(RecordOutcome::Duplicate { id }) => {
            count("duplicate", 1);
            Err(ApiError::Duplicate { id })
        }
        None => Err(ApiError::Store(crate::store::StoreError::Internal(
            anyhow::anyhow!("store returned no outcome"),
        ))),
    }
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchInput {
    /// 1 to 1000 events.
    #[schema(min_items = 1, max_items = 1000)]
    events: Vec<EventInput>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    created: usize,
    duplicates: usize,
    rejected: usize,
    results: Vec<BatchItem>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    Created,
    Duplicate,
    Rejected,
}

#[derive(Serialize, ToSchema)]
pub struct BatchItem {
    index: usize,
    status: BatchStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<FieldError>>,
}

#[utoipa::path(post, path = "/v1/events/batch", tag = "events",
    summary = "Record up to 1000 events at once",
    extensions(("x-required-role" = json!("ingest"))),
    request_body = BatchInput,
    responses(
        (status = 200, body = BatchResponse, description = "Per-event results in request order"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn record_batch(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    let items = match body.get("events") {
        Some(Value::Array(items)) if (1..=MAX_BATCH).contains(&items.len()) => items,
        Some(Value::Array(_)) => {
            return Err(ApiError::field(
                "events",
                format!("must hold 1 to {MAX_BATCH} events"),
            ))
        }
        None | Some(Value::Null) => return Err(ApiError::field("events", "is required")),
        Some(_) => return Err(ApiError::field("events", "must be an array")),
    };
    let rules = state.rules.current();
    let now = state.clock.now_ms();
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(items.len());
    let mut valid: Vec<NewEvent> = Vec::with_capacity(items.len());
    let mut valid_index = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match validate_event(item, &rules, now, &format!("events[{index}].")) {
            Ok(e) => {
                valid.push(e);
                valid_index.push(index);
                results.push(None);
            }
            Err(errors) => results.push(Some(BatchItem {
                index,
                status: BatchStatus::Rejected,
                id: None,
                points: None,
                message: Some(ApiError::fields(errors.clone()).to_message()),
                errors: Some(errors),
            })),
        }
    }
    let outcomes = state.store.record(valid).await?;
    for (index, outcome) in valid_index.into_iter().zip(outcomes) {
        results[index] = Some(match outcome {
            RecordOutcome::Created { id, points } => BatchItem {
                index,
                status: BatchStatus::Created,
                id: Some(id),
                points: Some(points),
                message: None,
                errors: None,
            },
            RecordOutcome::Duplicate { id } => BatchItem {
                index,
                status: BatchStatus::Duplicate,
                id: Some(id),
                points: Some(0),
                message: Some("User event already exists".into()),
                errors: None,
            },
        });
    }
    let results: Vec<BatchItem> = results.into_iter().flatten().collect();
    let tally = |s: fn(&BatchStatus) -> bool| results.iter().filter(|r| s(&r.status)).count();
    let response = BatchResponse {
        created: tally(|s| matches!(s, BatchStatus::Created)),
        duplicates: tally(|s| matches!(s, BatchStatus::Duplicate)),
        rejected: tally(|s| matches!(s, BatchStatus::Rejected)),
        results,
    };
    count("created", response.created);
    count("duplicate", response.duplicates);
    count("rejected", response.rejected);
    Ok(axum::Json(response))
}

#[derive(Serialize, ToSchema)]
pub struct UserPointsList {
    #[schema(example = "User events queried Successfully")]
    message: &'static str,
    data: Vec<UserPointsItem>,
}

#[derive(Serialize, ToSchema)]
pub struct UserPointsItem {
    #[serde(rename = "userId")]
    user_id: String,
    points: i64,
}

/// Compatible query: one user's points (optionally of one type), or users by points.
#[utoipa::path(get, path = "/v1/users/events", tag = "compatible",
    summary = "One user's points, or users by points",
    extensions(("x-required-role" = json!("read"))),
    params(
        ("user_id" = Option<String>, Query, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$", description = "One user; without it, users by points, highest first"),
        ("event_type" = Option<String>, Query, description = "Count only this type's points"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Without user_id: at most this many users (default 100, max 1000)"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000000),
    ),
    responses((status = 200, body = UserPointsList), (status = 400, body = ErrorBody)))]
pub async fn query_points(
    State(state): State<AppState>,
    params: Params,
) -> Result<axum::Json<UserPointsList>, ApiError> {
    let user_id = params.user_id("user_id")?;
    let event_type = params.get("event_type").map(str::to_owned);
    if let Some(t) = &event_type {
        let rules = state.rules.current();
        if rules.get(t).is_none() {
            return Err(ApiError::field(
                "event_type",
                format!(
                    "unknown event type; configured types are: {}",
                    rules.names().join(", ")
                ),
            ));
        }
    }
    let limit = params.number("limit", 100, 1, 1000)? as u32;
    // The bound the OpenAPI document states, as on the leaderboard.
    let offset = params.number("offset", 0, 0, 1_000_000_000)?;
    let data = match user_id {
        Some(user_id) => {
            let totals = state
                .store
                .user_points(&user_id, TimeRange::default())
                .await?;
            let points = match &event_type {
                None if totals.events > 0 => Some(totals.points),
                None => None,
                Some(t) => totals
                    .by_type
                    .iter()
                    .find(|b| &b.event_type == t)
                    .map(|b| b.points),
            };
            points
                .map(|points| vec![UserPointsItem { user_id, points }])
                .unwrap_or_default()
        }
        None => state
            .store
            .top_users(TopUsersQuery {
                event_type,
                limit,
                offset,
            })
            .await?
            .into_iter()
            .map(|u| UserPointsItem {
                user_id: u.user_id,
                points: u.points,
            })
            .collect(),
    };
    Ok(axum::Json(UserPointsList {
        message: "User events queried Successfully",
        data,
    }))
}
