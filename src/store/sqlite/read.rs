//! Read queries. Totals and ranks come from the counter tables, never from summing a
//! user's events, so their cost does not grow with history.

use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::engine::UserState;
use crate::domain::ranking::{rank_run, RankedEntry};
use crate::store::{
    HistoryQuery, Standing, StoredEvent, TimeRange, TopUsersQuery, TypeTotal, UserPoints, UserTotal,
};

pub fn user_points(
    c: &Connection,
    user_id: &str,
    range: TimeRange,
) -> rusqlite::Result<UserPoints> {
    let by_type: Vec<TypeTotal> = if range == TimeRange::default() {
        let mut stmt = c.prepare_cached(
            "SELECT event_type, events, points FROM type_totals WHERE user_id = ?1 ORDER BY event_type",
        )?;
        let rows = stmt.query_map([user_id], type_total)?;
        rows.collect::<Result<_, _>>()?
    } else {
        let mut stmt = c.prepare_cached(
            "SELECT event_type, COUNT(*), SUM(points) FROM events
             WHERE user_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3
             GROUP BY event_type ORDER BY event_type",
        )?;
        let rows = stmt.query_map(
            params![
                user_id,
                range.from_ms.unwrap_or(i64::MIN),
                range.to_ms.unwrap_or(i64::MAX)
            ],
            type_total,
        )?;
        rows.collect::<Result<_, _>>()?
    };
    Ok(UserPoints {
        points: by_type.iter().map(|t| t.points).sum(),
        events: by_type.iter().map(|t| t.events).sum(),
        by_type,
    })
}

/// A user's state for the engine, as far as it reads it: all-time points, from the
/// user's `all` leaderboard row (one key lookup). The writer loads cap windows as
/// events need them; per-type totals the engine only adds to.
pub fn user_state(c: &Connection, user_id: &str) -> rusqlite::Result<UserState> {
    let points: Option<i64> = c
        .prepare_cached("SELECT points FROM period_points WHERE period = 'all' AND user_id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?;
    Ok(UserState {
        points: points.unwrap_or(0),
        ..UserState::default()
    })
}

fn type_total(r: &rusqlite::Row) -> rusqlite::Result<TypeTotal> {
    Ok(TypeTotal {
        event_type: r.get(0)?,
        events: r.get::<_, i64>(1)? as u64,
        points: r.get(2)?,
    })
}

pub fn user_events(c: &Connection, q: &HistoryQuery) -> rusqlite::Result<Vec<StoredEvent>> {
    // One upper bound on (ts_ms, id) covers both `to` (exclusive: any id sorts after "")
    // and the cursor, so the query walks the history index from the right place.
    let mut upper = (q.range.to_ms.unwrap_or(i64::MAX), String::new());
    if let Some(cur) = &q.after {
        if (cur.ts_ms, cur.id.as_str()) < (upper.0, upper.1.as_str()) {
            upper = (cur.ts_ms, cur.id.clone());
        }
    }
    let mut stmt = c.prepare_cached(
        "SELECT id, event_id, event_type, ts_ms, points, properties, received_ms,
                COALESCE(base_points, points), rules_version FROM events
         WHERE user_id = ?1 AND (ts_ms, id) < (?2, ?3) AND ts_ms >= ?4
           AND (?5 IS NULL OR event_type = ?5)
         ORDER BY ts_ms DESC, id DESC LIMIT ?6",
    )?;
    let (upper_ts, upper_id) = upper;
    let rows = stmt.query_map(
        params![
            q.user_id,
            upper_ts,
            upper_id,
            q.range.from_ms.unwrap_or(i64::MIN),
            q.event_type,
            q.limit
        ],
        |r| {
            Ok(StoredEvent {
                id: r.get(0)?,
                event_id: r.get(1)?,
                event_type: r.get(2)?,
                ts_ms: r.get(3)?,
                points: r.get(4)?,
                properties: r.get(5)?,
                received_ms: r.get(6)?,
                base_points: r.get(7)?,
                rules_version: r.get(8)?,
            })
        },
    )?;
    rows.collect()
}

pub fn top_users(c: &Connection, q: &TopUsersQuery) -> rusqlite::Result<Vec<UserTotal>> {
    let map = |r: &rusqlite::Row| {
        Ok(UserTotal {
            user_id: r.get(0)?,
            points: r.get(1)?,
        })
    };
    let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
    match &q.event_type {
        None => c
            .prepare_cached(
                "SELECT user_id, points FROM period_points WHERE period = 'all'
                 ORDER BY points DESC, user_id LIMIT ?1 OFFSET ?2",
            )?
            .query_map(params![q.limit, offset], map)?
            .collect(),
        Some(t) => c
            .prepare_cached(
                "SELECT user_id, points FROM type_totals WHERE event_type = ?1
                 ORDER BY points DESC, user_id LIMIT ?2 OFFSET ?3",
            )?
            .query_map(params![t, q.limit, offset], map)?
            .collect(),
    }
}

fn rows_of(
    stmt: &mut rusqlite::CachedStatement,
    p: impl rusqlite::Params,
) -> rusqlite::Result<Vec<(String, i64)>> {
    stmt.query_map(p, |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

fn count_above(c: &Connection, period: &str, points: i64) -> rusqlite::Result<u64> {
    c.prepare_cached("SELECT COUNT(*) FROM period_points WHERE period = ?1 AND points > ?2")?
        .query_row(params![period, points], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

pub fn leaderboard(
    c: &Connection,
    period: &str,
    limit: u32,
    offset: u64,
) -> rusqlite::Result<Vec<RankedEntry>> {
    let rows = rows_of(
        &mut c.prepare_cached(
            "SELECT user_id, points FROM period_points WHERE period = ?1
             ORDER BY points DESC, user_id LIMIT ?2 OFFSET ?3",
        )?,
        params![period, limit, i64::try_from(offset).unwrap_or(i64::MAX)],
    )?;
    let Some((_, first_points)) = rows.first() else {
        return Ok(Vec::new());
    };
    let first_rank = 1 + count_above(c, period, *first_points)?;
    Ok(rank_run(offset, first_rank, rows))
}

/// The first `n` entries of the board: the leaderboard at offset 0, whose first entry
/// is rank 1 by definition (no one has more points), so no count is needed. The writer
/// reads it around a write for `rank.changed`.
pub fn top(c: &Connection, period: &str, n: u32) -> rusqlite::Result<Vec<RankedEntry>> {
    let rows = rows_of(
        &mut c.prepare_cached(
            "SELECT user_id, points FROM period_points WHERE period = ?1
             ORDER BY points DESC, user_id LIMIT ?2",
        )?,
        params![period, n],
    )?;
    Ok(rank_run(0, 1, rows))
}

pub fn standing(
    c: &Connection,
    period: &str,
    user_id: &str,
    around: u32,
) -> rusqlite::Result<Standing> {
    let points: Option<i64> = c
        .prepare_cached("SELECT points FROM period_points WHERE period = ?1 AND user_id = ?2")?
        .query_row(params![period, user_id], |r| r.get(0))
        .optional()?;
    let Some(points) = points else {
        return Ok(Standing {
            rank: None,
            points: 0,
            neighbours: Vec::new(),
        });
    };
    let mut above = rows_of(
        &mut c.prepare_cached(
            "SELECT user_id, points FROM period_points
             WHERE period = ?1 AND (points > ?2 OR (points = ?2 AND user_id < ?3))
             ORDER BY points ASC, user_id DESC LIMIT ?4",
        )?,
        params![period, points, user_id, around],
    )?;
    above.reverse();
    let below = rows_of(
        &mut c.prepare_cached(
            "SELECT user_id, points FROM period_points
             WHERE period = ?1 AND (points < ?2 OR (points = ?2 AND user_id > ?3))
             ORDER BY points DESC, user_id ASC LIMIT ?4",
        )?,
        params![period, points, user_id, around],
    )?;
    let mut rows = above;
    rows.push((user_id.to_owned(), points));
    rows.extend(below);
    let (first_user, first_points) = rows[0].clone();
    let higher = count_above(c, period, first_points)?;
    let tied_before: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM period_points WHERE period = ?1 AND points = ?2 AND user_id < ?3",
        )?
        .query_row(params![period, first_points, first_user], |r| r.get(0))?;
    let neighbours = rank_run(higher + tied_before as u64, higher + 1, rows);
    let rank = neighbours
        .iter()
        .find(|e| e.user_id == user_id)
        .map(|e| e.rank);
    Ok(Standing {
        rank,
        points,
        neighbours,
    })
}
