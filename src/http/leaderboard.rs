//! Period leaderboards and a user's place on them.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{path_user_id, Params, Path};
use super::AppState;
use crate::domain::period::{Period, PeriodKey};
use crate::domain::ranking::RankedEntry;
use crate::domain::time::format_millis;

/// The period chosen by `period` (default `all`) and `at` (default now).
fn period_key(state: &AppState, params: &Params) -> Result<PeriodKey, ApiError> {
    let period = match params.get("period") {
        None => Period::All,
        Some(p) => Period::parse(p)
            .ok_or_else(|| ApiError::field("period", "must be one of all, day, week, month"))?,
    };
    let at = params.time("at")?.unwrap_or_else(|| state.clock.now_ms());
    Ok(period.containing(at))
}

#[derive(Serialize, ToSchema)]
pub struct LeaderboardResponse {
    period: Period,
    /// Start of the period (inclusive), null for `all`.
    start: Option<String>,
    /// End of the period (exclusive), null for `all`.
    end: Option<String>,
    entries: Vec<RankedEntry>,
}

#[utoipa::path(get, path = "/v1/leaderboard", tag = "leaderboard",
    summary = "The leaderboard of a period",
    extensions(("x-required-role" = json!("read"))),
    params(
        ("period" = Option<Period>, Query, description = "all (default), day, week (ISO, from Monday) or month; UTC"),
        ("at" = Option<String>, Query, pattern = r"^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))$", description = "A time inside the wanted period (default now)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Default 10, at most 1000"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000000),
    ),
    responses((status = 200, body = LeaderboardResponse), (status = 400, body = ErrorBody)))]
pub async fn leaderboard(
    State(state): State<AppState>,
    params: Params,
) -> Result<axum::Json<LeaderboardResponse>, ApiError> {
    let key = period_key(&state, &params)?;
    let limit = params.number("limit", 10, 1, 1000)? as u32;
    let offset = params.number("offset", 0, 0, 1_000_000_000)?;
    let entries = state.store.ledger.leaderboard(&key, limit, offset).await?;
    Ok(axum::Json(LeaderboardResponse {
        period: key.period,
        start: key.start_ms.map(format_millis),
        end: key.end_ms.map(format_millis),
        entries,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct StandingResponse {
    user_id: String,
    /// Null when the user has no events in the period.
    rank: Option<u64>,
    points: i64,
    /// Entries above the user, the user, and entries below, in board order.
    neighbours: Vec<RankedEntry>,
}

#[utoipa::path(get, path = "/v1/leaderboard/users/{user_id}", tag = "leaderboard",
    summary = "A user's rank and neighbours on a leaderboard",
    extensions(("x-required-role" = json!("read"))),
    params(
        ("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"),
        ("period" = Option<Period>, Query), ("at" = Option<String>, Query, pattern = r"^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))$"),
        ("around" = Option<u32>, Query, minimum = 0, maximum = 50, description = "Entries above and below (default 2, at most 50)"),
    ),
    responses((status = 200, body = StandingResponse), (status = 400, body = ErrorBody)))]
pub async fn standing(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    params: Params,
) -> Result<axum::Json<StandingResponse>, ApiError> {
    path_user_id(&user_id)?;
    let key = period_key(&state, &params)?;
    let around = params.number("around", 2, 0, 50)? as u32;
    let s = state.store.ledger.standing(&key, &user_id, around).await?;
    Ok(axum::Json(StandingResponse {
        user_id,
        rank: s.rank,
        points: s.points,
        neighbours: s.neighbours,
    }))
}
