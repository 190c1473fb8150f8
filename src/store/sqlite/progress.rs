//! Per-user progression state: one JSON row per user (`user_progress`), written in the
//! writer's transaction with the events that change it, and one row per unlocked
//! achievement (`user_achievements`) so that rarity is a count, not a scan.

use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::progression::Progress;
use crate::store::AchievementCounts;

pub fn load(c: &Connection, user_id: &str) -> rusqlite::Result<Progress> {
    let text: Option<String> = c
        .prepare_cached("SELECT progress FROM user_progress WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?;
    Ok(text
        .and_then(|t| match serde_json::from_str(&t) {
            Ok(p) => Some(p),
            Err(e) => {
                // Written by this code only; a bad row must not stop the user's events.
                tracing::error!(user_id, error = %e, "unreadable progress row, starting afresh");
                None
            }
        })
        .unwrap_or_default())
}

pub fn save(c: &Connection, user_id: &str, progress: &Progress) -> rusqlite::Result<()> {
    let text = serde_json::to_string(progress)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    c.prepare_cached(
        "INSERT INTO user_progress (user_id, progress) VALUES (?1, ?2)
         ON CONFLICT (user_id) DO UPDATE SET progress = excluded.progress",
    )?
    .execute(params![user_id, text])?;
    Ok(())
}

/// Records a first unlock of `achievement_id`.
pub fn unlocked(c: &Connection, user_id: &str, achievement_id: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO user_achievements (achievement_id, user_id) VALUES (?1, ?2)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![achievement_id, user_id])?;
    Ok(())
}

/// Makes the user's unlock rows those of `progress` (after a recompute).
pub fn replace_unlocks(c: &Connection, user_id: &str, progress: &Progress) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM user_achievements WHERE user_id = ?1",
        [user_id],
    )?;
    for id in progress.achievements.keys() {
        unlocked(c, user_id, id)?;
    }
    Ok(())
}

pub fn erase(c: &Connection, user_id: &str) -> rusqlite::Result<usize> {
    let p = c.execute("DELETE FROM user_progress WHERE user_id = ?1", [user_id])?;
    c.execute(
        "DELETE FROM user_achievements WHERE user_id = ?1",
        [user_id],
    )?;
    Ok(p)
}

/// Unlock counts; `users` from the all-time board, so the counters must be current.
pub fn counts(c: &Connection) -> rusqlite::Result<AchievementCounts> {
    let users: i64 = c.query_row(
        "SELECT COUNT(*) FROM period_points WHERE period = 'all'",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare_cached(
        "SELECT achievement_id, COUNT(*) FROM user_achievements GROUP BY achievement_id",
    )?;
    let unlocked = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(AchievementCounts {
        users: users as u64,
        unlocked,
    })
}
