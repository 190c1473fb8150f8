//! Per-user reads and erasure.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{path_user_id, Params, Path};
use super::AppState;
use crate::domain::time::format_millis;
use crate::store::{HistoryCursor, HistoryQuery, TimeRange};

#[derive(Serialize, ToSchema)]
pub struct TypeBreakdown {
    events: u64,
    points: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PointsResponse {
    user_id: String,
    points: i64,
    events: u64,
    by_type: BTreeMap<String, TypeBreakdown>,
    /// The all-time level (whatever the time window); `null` without levels.
    level: Option<super::progression::LevelStatus>,
}

/// Reads `from` (inclusive) and `to` (exclusive) event-time bounds.
pub fn time_range(params: &Params) -> Result<TimeRange, ApiError> {
    let range = TimeRange {
        from_ms: params.time("from")?,
        to_ms: params.time("to")?,
    };
    if let (Some(f), Some(t)) = (range.from_ms, range.to_ms) {
        if f > t {
            return Err(ApiError::field("to", "must not be before from"));
        }
    }
    Ok(range)
}

#[utoipa::path(get, path = "/v1/users/{user_id}/points", tag = "users",
    summary = "A user's points, by event type",
    extensions(("x-required-role" = json!("read"))),
    params(
        ("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"),
        ("from" = Option<String>, Query, pattern = r"^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))$", description = "Event time, inclusive (Unix s/ms or RFC 3339)"),
        ("to" = Option<String>, Query, pattern = r"^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))$", description = "Event time, exclusive"),
    ),
    responses((status = 200, body = PointsResponse), (status = 400, body = ErrorBody)))]
pub async fn points(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    params: Params,
) -> Result<axum::Json<PointsResponse>, ApiError> {
    path_user_id(&user_id)?;
    let range = time_range(&params)?;
    let totals = state.store.ledger.user_points(&user_id, range).await?;
    let rules = state.rules.current();
    let level = if rules.progression().levels.is_empty() {
        None
    } else if range == TimeRange::default() {
        super::progression::level_status(rules.progression(), totals.points)
    } else {
        let all = state
            .store
            .ledger
            .user_points(&user_id, TimeRange::default())
            .await?;
        super::progression::level_status(rules.progression(), all.points)
    };
    Ok(axum::Json(PointsResponse {
        user_id,
        level,
        points: totals.points,
        events: totals.events,
        by_type: totals
            .by_type
            .into_iter()
            .map(|t| {
                (
                    t.event_type,
                    TypeBreakdown {
                        events: t.events,
                        points: t.points,
                    },
                )
            })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct HistoryEvent {
    id: String,
    event_id: Option<String>,
    event_type: String,
    timestamp: String,
    /// Points awarded.
    points: i64,
    /// What the event type was worth under the rules that judged it, before any cap.
    base_points: i64,
    /// The rules version that judged the event; null for events stored before
    /// rules versions existed.
    rules_version: Option<i64>,
    #[schema(value_type = Option<Object>)]
    properties: Option<Value>,
    received_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    data: Vec<HistoryEvent>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

fn encode_cursor(c: &HistoryCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", c.ts_ms, c.id))
}

fn decode_cursor(s: &str) -> Option<HistoryCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (ts, id) = text.split_once(':')?;
    Some(HistoryCursor {
        ts_ms: ts.parse().ok()?,
        id: id.to_string(),
    })
}

#[utoipa::path(get, path = "/v1/users/{user_id}/events", tag = "users",
    summary = "A user's events, newest first",
    extensions(("x-required-role" = json!("read"))),
    params(
        ("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"),
        ("event_type" = Option<String>, Query),
        ("from" = Option<String>, Query, pattern = r"^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))$"), ("to" = Option<String>, Query, pattern = r"^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))$"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Default 50, at most 1000"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = HistoryResponse), (status = 400, body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    params: Params,
) -> Result<axum::Json<HistoryResponse>, ApiError> {
    path_user_id(&user_id)?;
    let range = time_range(&params)?;
    let limit = params.number("limit", 50, 1, 1000)? as u32;
    let after = params
        .get("cursor")
        .map(|c| {
            decode_cursor(c)
                .ok_or_else(|| ApiError::field("cursor", "is not a cursor this API returned"))
        })
        .transpose()?;
    // One extra row tells whether another page exists without a second query.
    let event_type = params.get("event_type").map(str::to_owned);
    let with_wallet = event_type.is_none() && state.rules.current().progression().wallet.is_some();
    let mut rows = state
        .store
        .ledger
        .user_events(HistoryQuery {
            user_id: user_id.clone(),
            event_type,
            range,
            limit: limit + 1,
            after: after.clone(),
        })
        .await?;
    if with_wallet {
        // The wallet's entries are the user's ledger too: merged by the same order and
        // bounded by the same cursor, so paging stays stable across both.
        let mut before = after;
        if let Some(to) = range.to_ms {
            if before.as_ref().is_none_or(|c| c.ts_ms >= to) {
                before = Some(HistoryCursor {
                    ts_ms: to,
                    id: String::new(),
                });
            }
        }
        let entries = state
            .store
            .progress
            .wallet_entries(&user_id, before, limit + 1)
            .await?;
        rows.extend(
            entries
                .into_iter()
                .filter(|e| range.from_ms.is_none_or(|f| e.ts_ms >= f))
                .map(super::wallet::as_history),
        );
        rows.sort_by(|a, b| (b.ts_ms, &b.id).cmp(&(a.ts_ms, &a.id)));
        rows.truncate(limit as usize + 1);
    }
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = rows.last().filter(|_| more).map(|e| {
        encode_cursor(&HistoryCursor {
            ts_ms: e.ts_ms,
            id: e.id.clone(),
        })
    });
    let data = rows
        .into_iter()
        .map(|e| HistoryEvent {
            timestamp: format_millis(e.ts_ms),
            received_at: format_millis(e.received_ms),
            properties: e.properties.and_then(|p| serde_json::from_str(&p).ok()),
            id: e.id,
            event_id: e.event_id,
            event_type: e.event_type,
            points: e.points,
            base_points: e.base_points,
            rules_version: e.rules_version,
        })
        .collect();
    Ok(axum::Json(HistoryResponse { data, next_cursor }))
}

#[utoipa::path(delete, path = "/v1/users/{user_id}", tag = "users",
    summary = "Erase a user's events, totals and ranks",
    extensions(("x-required-role" = json!("admin"))),
    params(("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    responses((status = 204, description = "The user's events, totals and leaderboard entries are gone"),
              (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn erase(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    erase_user(&state, &user_id).await
}

/// `DELETE /v1/users/events`: the fixed compatible route `/v1/users/events` hides
/// `/v1/users/{user_id}` for the user whose id is `events`, so this erases that user.
#[utoipa::path(delete, path = "/v1/users/events", tag = "users",
    summary = "Erase the user whose id is `events`",
    extensions(("x-required-role" = json!("admin"))),
    description = "Erasure of the user whose id is `events` (that path is also the compatible events endpoint)",
    responses((status = 204, description = "The user's events, totals and leaderboard entries are gone"),
              (status = 503, body = ErrorBody)))]
pub async fn erase_user_named_events(
    State(state): State<AppState>,
) -> Result<StatusCode, ApiError> {
    erase_user(&state, "events").await
}

async fn erase_user(state: &AppState, user_id: &str) -> Result<StatusCode, ApiError> {
    path_user_id(user_id)?;
    let existed = state.store.ledger.delete_user(user_id).await?;
    tracing::info!(user_id = %user_id, existed, "user erased");
    Ok(StatusCode::NO_CONTENT)
}
