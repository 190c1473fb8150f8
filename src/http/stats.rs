//! Per-day per-type totals over a window of event time, for the dashboard's chart.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::Params;
use super::AppState;
use crate::domain::time::{format_millis, parse_query_time, to_datetime};

const DAY_MS: i64 = 86_400_000;
const DEFAULT_DAYS: i64 = 30;
/// A year, leap day included: bounds the scan one request can cause.
const MAX_DAYS: i64 = 366;

#[derive(Serialize, ToSchema)]
pub struct DailyStats {
    /// Midnight (UTC) starting the first day, inclusive.
    from: String,
    /// Midnight (UTC) ending the last day, exclusive.
    to: String,
    /// Every day of the window, oldest first; a day without events has an empty `by_type`.
    days: Vec<Day>,
}

#[derive(Serialize, ToSchema)]
pub struct Day {
    /// `YYYY-MM-DD`, UTC.
    date: String,
    by_type: BTreeMap<String, DayTypeTotal>,
}

#[derive(Serialize, ToSchema)]
pub struct DayTypeTotal {
    events: u64,
    points: i64,
}

/// A date (`YYYY-MM-DD`, its UTC midnight) or any time the rest of the API accepts.
fn day_or_time(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = params.get(name) else {
        return Ok(None);
    };
    let parsed = if NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
        parse_query_time(&format!("{v}T00:00:00Z"))
    } else {
        parse_query_time(v)
    };
    parsed.map(Some).map_err(|m| ApiError::field(name, m))
}

/// The window widened to whole UTC days: `[from, to)` as day numbers since 1970-01-01.
fn window(params: &Params, now_ms: i64) -> Result<(i64, i64), ApiError> {
    let from = day_or_time(params, "from")?;
    let to = day_or_time(params, "to")?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(ApiError::field("to", "must not be before from"));
        }
    }
    // `to` is exclusive: a time inside a day keeps that day in.
    let to_day = match to {
        Some(t) => (t + DAY_MS - 1).div_euclid(DAY_MS),
        None => now_ms.div_euclid(DAY_MS) + 1,
    };
    let from_day = match from {
        Some(f) => f.div_euclid(DAY_MS),
        None => to_day - DEFAULT_DAYS,
    };
    if to_day < from_day {
        return Err(ApiError::field(
            "from",
            "must not be after the end of today when to is not given",
        ));
    }
    if to_day - from_day > MAX_DAYS {
        return Err(ApiError::field(
            "from",
            format!("the window must be at most {MAX_DAYS} days"),
        ));
    }
    Ok((from_day, to_day))
}

#[utoipa::path(get, path = "/v1/stats/daily", tag = "stats",
    summary = "Events and points per UTC day and event type",
    extensions(("x-required-role" = json!("read"))),
    params(
        ("from" = Option<String>, Query, description = "First day, inclusive: YYYY-MM-DD or a time (Unix s/ms or RFC 3339; its UTC day). Default 30 days before `to`"),
        ("to" = Option<String>, Query, description = "End, exclusive: YYYY-MM-DD (that day is left out) or a time (its day is kept). Default the end of today (UTC). At most 366 days after `from`"),
    ),
    responses((status = 200, body = DailyStats), (status = 400, body = ErrorBody)))]
pub async fn daily(
    State(state): State<AppState>,
    params: Params,
) -> Result<axum::Json<DailyStats>, ApiError> {
    let (from_day, to_day) = window(&params, state.clock.now_ms())?;
    let rows = state
        .store
        .ledger
        .daily_stats(from_day * DAY_MS, to_day * DAY_MS)
        .await?;
    let mut by_day: BTreeMap<i64, BTreeMap<String, DayTypeTotal>> = BTreeMap::new();
    for r in rows {
        let total = DayTypeTotal {
            events: r.events,
            points: r.points,
        };
        by_day.entry(r.day).or_default().insert(r.event_type, total);
    }
    // Dense days, so a chart's x axis is the list itself.
    let days = (from_day..to_day)
        .map(|d| Day {
            date: to_datetime(d * DAY_MS).format("%Y-%m-%d").to_string(),
            by_type: by_day.remove(&d).unwrap_or_default(),
        })
        .collect();
    Ok(axum::Json(DailyStats {
        from: format_millis(from_day * DAY_MS),
        to: format_millis(to_day * DAY_MS),
        days,
    }))
}
