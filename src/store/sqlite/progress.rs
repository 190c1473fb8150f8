//! Per-user progression state: one JSON row per user (`user_progress`), written in the
//! writer's transaction with the events that change it, and one row per unlocked
//! achievement (`user_achievements`) so that rarity is a count, not a scan.

use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::progression::Progress;
use crate::domain::wallet::{EntryKind, WalletEntry};
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
        "INSERT INTO user_progress (user_id, progress, wallet_due_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id) DO UPDATE SET progress = excluded.progress,
             wallet_due_ms = excluded.wallet_due_ms",
    )?
    .execute(params![user_id, text, progress.wallet.due_ms])?;
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
    let w = c.execute("DELETE FROM wallet_entries WHERE user_id = ?1", [user_id])?;
    Ok(p + w)
}

/// The id of the user's wallet entry with this dedup key, if there is one.
pub fn wallet_entry_id(
    c: &Connection,
    user_id: &str,
    key: &str,
) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT id FROM wallet_entries WHERE user_id = ?1 AND dedup_key = ?2")?
        .query_row(params![user_id, key], |r| r.get(0))
        .optional()
}

pub fn insert_wallet_entry(c: &Connection, user_id: &str, e: &WalletEntry) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO wallet_entries (id, user_id, kind, amount, ref_id, reason, ts_ms, dedup_key, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        e.id,
        user_id,
        e.kind.as_str(),
        e.amount,
        e.ref_id,
        e.reason,
        e.ts_ms,
        e.dedup_key(),
        e.expires_ms
    ])?;
    Ok(())
}

/// The user's wallet entries, newest first (time, then id), strictly before `before`.
pub fn wallet_entries(
    c: &Connection,
    user_id: &str,
    before: Option<(i64, String)>,
    limit: u32,
) -> rusqlite::Result<Vec<WalletEntry>> {
    let (ts, id) = before.unwrap_or((i64::MAX, String::new()));
    let mut stmt = c.prepare_cached(
        "SELECT id, kind, amount, ref_id, reason, ts_ms, expires_ms FROM wallet_entries
         WHERE user_id = ?1 AND (ts_ms < ?2 OR (ts_ms = ?2 AND id < ?3))
         ORDER BY ts_ms DESC, id DESC LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![user_id, ts, id, limit], |r| {
        let kind: String = r.get(1)?;
        Ok(WalletEntry {
            id: r.get(0)?,
            kind: EntryKind::parse(&kind).unwrap_or(EntryKind::Spend),
            amount: r.get(2)?,
            ref_id: r.get(3)?,
            reason: r.get(4)?,
            ts_ms: r.get(5)?,
            expires_ms: r.get(6)?,
        })
    })?;
    rows.collect()
}

pub fn due_wallets(c: &Connection, now_ms: i64, limit: u32) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare_cached(
        "SELECT user_id FROM user_progress WHERE wallet_due_ms <= ?1
         ORDER BY wallet_due_ms LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now_ms, limit], |r| r.get(0))?;
    rows.collect()
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
