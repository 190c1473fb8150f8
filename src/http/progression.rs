//! Progression reads and the user's time zone: levels, achievements (a user's, and
//! their rarity across users) and streaks, as the engine keeps them.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{path_user_id, Json, Path};
use super::AppState;
use crate::domain::progression::{calendar, Condition, Level, Progression};
use crate::domain::time::format_millis;

/// An achievement as a response names it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AchievementRef {
    pub id: String,
    pub name: String,
}

/// A level as a response names it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LevelRef {
    pub level: i64,
    pub name: String,
}

impl From<&Level> for LevelRef {
    fn from(l: &Level) -> LevelRef {
        LevelRef {
            level: l.level,
            name: l.name.clone(),
        }
    }
}

/// The all-time level: its threshold and the next level (`null` at the top).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LevelStatus {
    pub level: i64,
    pub name: String,
    /// All-time points from which it holds.
    pub points: i64,
    pub next: Option<Level>,
}

/// The level held with `points` all-time points, `None` without levels (or below the
/// first threshold).
pub fn level_status(p: &Progression, points: i64) -> Option<LevelStatus> {
    let l = p.level_at(points)?;
    Some(LevelStatus {
        level: l.level,
        name: l.name.clone(),
        points: l.points,
        next: p.next_level(points).cloned(),
    })
}

#[derive(Deserialize, ToSchema)]
pub struct UserPatch {
    /// An IANA time zone name (`America/Los_Angeles`); streak and achievement periods
    /// follow it. Default UTC.
    #[schema(example = "America/Los_Angeles")]
    pub timezone: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserSettings {
    pub user_id: String,
    pub timezone: String,
}

#[utoipa::path(patch, path = "/v1/users/{user_id}", tag = "progression",
    summary = "Set a user's time zone",
    extensions(("x-required-role" = json!("ingest"))),
    params(("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    request_body = UserPatch,
    responses((status = 200, body = UserSettings), (status = 400, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn patch_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Json(body): Json<UserPatch>,
) -> Result<axum::Json<UserSettings>, ApiError> {
    path_user_id(&user_id)?;
    let Some(tz) = calendar::parse_zone(&body.timezone) else {
        return Err(ApiError::field(
            "timezone",
            "must be an IANA time zone name, such as Europe/Paris or UTC",
        ));
    };
    let name = tz.name().to_owned();
    state.store.progress.set_timezone(&user_id, &name).await?;
    Ok(axum::Json(UserSettings {
        user_id,
        timezone: name,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct UnlockedAchievement {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Event time of the event that first unlocked it.
    #[schema(format = DateTime)]
    pub unlocked_at: String,
    /// Times unlocked (more than 1 only for repeatable ones).
    pub times: i64,
}

#[derive(Serialize, ToSchema)]
pub struct AchievementProgress {
    pub id: String,
    pub current: i64,
    pub target: i64,
}

#[derive(Serialize, ToSchema)]
pub struct UserAchievements {
    pub user_id: String,
    /// The achievements the user unlocked.
    pub data: Vec<UnlockedAchievement>,
    /// The locked ones, with how far the user is.
    pub progress: Vec<AchievementProgress>,
}

#[utoipa::path(get, path = "/v1/users/{user_id}/achievements", tag = "progression",
    summary = "A user's achievements, and progress towards the locked ones",
    extensions(("x-required-role" = json!("read"))),
    params(("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    responses((status = 200, body = UserAchievements), (status = 400, body = ErrorBody)))]
pub async fn user_achievements(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<axum::Json<UserAchievements>, ApiError> {
    path_user_id(&user_id)?;
    let rules = state.rules.current();
    let prog = rules.progression();
    let progress = state.store.progress.user_progress(&user_id).await?;
    let now = state.clock.now_ms();
    let mut data = Vec::new();
    let mut locked = Vec::new();
    let mut points = None;
    for a in &prog.achievements {
        if let Some(u) = progress.achievements.get(&a.id) {
            data.push(UnlockedAchievement {
                id: a.id.clone(),
                name: a.name.clone(),
                description: a.description.clone(),
                unlocked_at: format_millis(u.first_ms),
                times: u.times,
            });
            // A repeatable one is also under way in the current period.
            if !a.repeatable {
                continue;
            }
        }
        let (current, target) = match &a.when {
            Condition::Events { count, period, .. } => {
                (progress.count_now(&a.id, *period, now), *count)
            }
            Condition::Points { points: target } => {
                let p = match points {
                    Some(p) => p,
                    None => {
                        let totals = state
                            .store
                            .ledger
                            .user_points(&user_id, Default::default())
                            .await?;
                        *points.insert(totals.points)
                    }
                };
                (p, *target)
            }
            Condition::Streak { streak, length } => {
                let current = match (
                    prog.streaks.iter().find(|s| &s.id == streak),
                    progress.streaks.get(streak),
                ) {
                    (Some(rule), Some(s)) => s.view(rule, progress.zone(), now).length,
                    _ => 0,
                };
                (current, *length)
            }
        };
        if progress.achievements.contains_key(&a.id) && current >= target {
            continue;
        }
        locked.push(AchievementProgress {
            id: a.id.clone(),
            current: current.clamp(0, target),
            target,
        });
    }
    Ok(axum::Json(UserAchievements {
        user_id,
        data,
        progress: locked,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct StreakStatus {
    pub id: String,
    pub name: String,
    /// Consecutive periods with a qualifying event; 0 when none or broken.
    pub length: i64,
    pub longest: i64,
    pub period: crate::domain::progression::LocalPeriod,
    /// Start of the streak's first period; `null` when `length` is 0.
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// When it breaks without a qualifying event (freezes counted); `null` when
    /// `length` is 0.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Freezes held.
    pub freezes: i64,
}

#[derive(Serialize, ToSchema)]
pub struct UserStreaks {
    pub user_id: String,
    pub timezone: String,
    pub data: Vec<StreakStatus>,
}

#[utoipa::path(get, path = "/v1/users/{user_id}/streaks", tag = "progression",
    summary = "A user's streaks, in the user's time zone",
    extensions(("x-required-role" = json!("read"))),
    params(("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    responses((status = 200, body = UserStreaks), (status = 400, body = ErrorBody)))]
pub async fn user_streaks(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<axum::Json<UserStreaks>, ApiError> {
    path_user_id(&user_id)?;
    let rules = state.rules.current();
    let progress = state.store.progress.user_progress(&user_id).await?;
    let tz = progress.zone();
    let now = state.clock.now_ms();
    let data = rules
        .progression()
        .streaks
        .iter()
        .map(|rule| {
            let view = progress
                .streaks
                .get(&rule.id)
                .cloned()
                .unwrap_or_default()
                .view(rule, tz, now);
            StreakStatus {
                id: rule.id.clone(),
                name: rule.name.clone(),
                length: view.length,
                longest: view.longest,
                period: rule.period,
                started_at: view.started_ms.map(format_millis),
                expires_at: view.expires_ms.map(format_millis),
                freezes: view.freezes,
            }
        })
        .collect();
    Ok(axum::Json(UserStreaks {
        user_id,
        timezone: tz.name().to_owned(),
        data,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AchievementRarity {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Users who unlocked it.
    pub users: u64,
    /// `users` over the users with any ledger entry (0 when there are none).
    pub share: f64,
}

#[derive(Serialize, ToSchema)]
pub struct AchievementList {
    pub data: Vec<AchievementRarity>,
    /// Users with any ledger entry.
    pub users: u64,
}

#[utoipa::path(get, path = "/v1/achievements", tag = "progression",
    summary = "Every configured achievement and how rare it is",
    extensions(("x-required-role" = json!("read"))),
    responses((status = 200, body = AchievementList), (status = 503, body = ErrorBody)))]
pub async fn achievements(
    State(state): State<AppState>,
) -> Result<axum::Json<AchievementList>, ApiError> {
    let rules = state.rules.current();
    let counts = state.store.progress.achievement_counts().await?;
    let data = rules
        .progression()
        .achievements
        .iter()
        .map(|a| {
            let users = counts.unlocked.get(&a.id).copied().unwrap_or(0);
            AchievementRarity {
                id: a.id.clone(),
                name: a.name.clone(),
                description: a.description.clone(),
                users,
                share: if counts.users == 0 {
                    0.0
                } else {
                    users as f64 / counts.users as f64
                },
            }
        })
        .collect();
    Ok(axum::Json(AchievementList {
        data,
        users: counts.users,
    }))
}
