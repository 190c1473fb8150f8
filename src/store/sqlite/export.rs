//! Reads that copy the counters out, for rebuilding a cache in front of the store.

use std::collections::BTreeSet;

use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::period::PeriodKey;
use crate::store::{TypeTotal, UserCounters};

pub fn user_ids(c: &Connection, after: Option<&str>, limit: u32) -> rusqlite::Result<Vec<String>> {
    // Every user with an event has a type_totals row, and its primary key starts with
    // user_id, so this walks the key in order without a sort.
    let mut stmt = c.prepare_cached(
        "SELECT DISTINCT user_id FROM type_totals WHERE ?1 IS NULL OR user_id > ?1
         ORDER BY user_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit], |r| r.get(0))?;
    rows.collect()
}

pub fn user_counters(c: &Connection, user_ids: &[String]) -> rusqlite::Result<Vec<UserCounters>> {
    // One read transaction: every user is read from the same committed state, so no
    // user is seen half-way through a write.
    let tx = c.unchecked_transaction()?;
    let mut out = Vec::with_capacity(user_ids.len());
    for user_id in user_ids {
        let by_type = type_totals(&tx, user_id)?;
        if by_type.is_empty() {
            continue;
        }
        out.push(UserCounters {
            user_id: user_id.clone(),
            by_type,
            periods: periods(&tx, user_id)?,
        });
    }
    tx.finish()?;
    Ok(out)
}

fn type_totals(c: &Connection, user_id: &str) -> rusqlite::Result<Vec<TypeTotal>> {
    let mut stmt = c.prepare_cached(
        "SELECT event_type, events, points FROM type_totals WHERE user_id = ?1 ORDER BY event_type",
    )?;
    let rows = stmt.query_map([user_id], |r| {
        Ok(TypeTotal {
            event_type: r.get(0)?,
            events: r.get::<_, i64>(1)? as u64,
            points: r.get(2)?,
        })
    })?;
    rows.collect()
}

fn periods(c: &Connection, user_id: &str) -> rusqlite::Result<Vec<(String, i64)>> {
    // period_points has no index by user (ingest would pay for it on every write); the
    // user's periods are exactly those of their events, found through the history index.
    let mut keys = BTreeSet::new();
    {
        let mut stmt = c.prepare_cached("SELECT DISTINCT ts_ms FROM events WHERE user_id = ?1")?;
        let mut rows = stmt.query([user_id])?;
        while let Some(row) = rows.next()? {
            keys.extend(PeriodKey::keys_for_event(row.get(0)?));
        }
    }
    let mut stmt =
        c.prepare_cached("SELECT points FROM period_points WHERE period = ?1 AND user_id = ?2")?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let points: Option<i64> = stmt
            .query_row(params![key, user_id], |r| r.get(0))
            .optional()?;
        if let Some(points) = points {
            out.push((key, points));
        }
    }
    Ok(out)
}
