//! Counter reads computed from the ledger itself, for the rare moments when the
//! counter tables lag it and the writer cannot checkpoint (a full disk, a read-only
//! file system after a crash): the ledger is exact in any snapshot, so reads stay
//! exact, at a cost that grows with the events of the period. The hot path reads the
//! counter tables (read.rs).

use rusqlite::{params, Connection};

use crate::domain::period::PeriodKey;
use crate::domain::ranking::{rank_run, RankedEntry};
use crate::store::{Standing, TimeRange, TopUsersQuery, UserPoints, UserTotal};

pub fn user_points(c: &Connection, user_id: &str) -> rusqlite::Result<UserPoints> {
    let everything = TimeRange {
        from_ms: Some(i64::MIN),
        to_ms: Some(i64::MAX),
    };
    super::read::user_points(c, user_id, everything)
}

/// A board in leaderboard order (points descending, then user id), from the ledger.
fn board(
    c: &Connection,
    from_ms: i64,
    to_ms: i64,
    event_type: Option<&str>,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = c.prepare_cached(
        "SELECT user_id, SUM(points) AS total FROM events
         WHERE ts_ms >= ?1 AND ts_ms < ?2 AND (?3 IS NULL OR event_type = ?3)
         GROUP BY user_id ORDER BY total DESC, user_id",
    )?;
    let rows = stmt.query_map(params![from_ms, to_ms, event_type], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    rows.collect()
}

fn period_board(c: &Connection, period: &PeriodKey) -> rusqlite::Result<Vec<(String, i64)>> {
    board(
        c,
        period.start_ms.unwrap_or(i64::MIN),
        period.end_ms.unwrap_or(i64::MAX),
        None,
    )
}

/// The rank of the entry at `position`: 1 + the number with strictly more points.
fn rank_at(rows: &[(String, i64)], position: usize) -> u64 {
    let points = rows[position].1;
    1 + rows.iter().take_while(|(_, p)| *p > points).count() as u64
}

fn page(rows: &[(String, i64)], limit: usize, offset: u64) -> Vec<RankedEntry> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    if start >= rows.len() {
        return Vec::new();
    }
    let run = rows[start..].iter().take(limit).cloned().collect();
    rank_run(offset, rank_at(rows, start), run)
}

pub fn leaderboard(
    c: &Connection,
    period: &PeriodKey,
    limit: u32,
    offset: u64,
) -> rusqlite::Result<Vec<RankedEntry>> {
    Ok(page(&period_board(c, period)?, limit as usize, offset))
}

pub fn standing(
    c: &Connection,
    period: &PeriodKey,
    user_id: &str,
    around: u32,
) -> rusqlite::Result<Standing> {
    let rows = period_board(c, period)?;
    let Some(at) = rows.iter().position(|(u, _)| u == user_id) else {
        return Ok(Standing {
            rank: None,
            points: 0,
            neighbours: Vec::new(),
        });
    };
    let first = at.saturating_sub(around as usize);
    let neighbours = page(&rows, at - first + 1 + around as usize, first as u64);
    Ok(Standing {
        rank: neighbours
            .iter()
            .find(|e| e.user_id == user_id)
            .map(|e| e.rank),
        points: rows[at].1,
        neighbours,
    })
}

pub fn top_users(c: &Connection, q: &TopUsersQuery) -> rusqlite::Result<Vec<UserTotal>> {
    let rows = board(c, i64::MIN, i64::MAX, q.event_type.as_deref())?;
    let start = usize::try_from(q.offset).unwrap_or(usize::MAX);
    Ok(rows
        .into_iter()
        .skip(start)
        .take(q.limit as usize)
        .map(|(user_id, points)| UserTotal { user_id, points })
        .collect())
}

/// Every user with an event, in id order, after `after`: through the ledger's dedup
/// index, whose key starts with the user id.
pub fn user_ids(c: &Connection, after: Option<&str>, limit: u32) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare_cached(
        "SELECT DISTINCT user_id FROM events WHERE ?1 IS NULL OR user_id > ?1
         ORDER BY user_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit], |r| r.get(0))?;
    rows.collect()
}

/// Users with any ledger entry.
pub fn user_count(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row("SELECT COUNT(DISTINCT user_id) FROM events", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
}
