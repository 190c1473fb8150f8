//! Aggregates over a time window across all users, for the dashboard's chart.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use crate::store::DailyTypeTotal;

const DAY_MS: i64 = 86_400_000;

/// Events and points per UTC day and type with `from_ms <= ts_ms < to_ms`.
///
/// No index leads with `ts_ms` (ingest would pay for one on every write), so this scans
/// the events table once; docs/dashboard.md states the cost. The sums are taken here
/// rather than with GROUP BY, whose sort of every row in the window was several times
/// slower than the scan itself.
pub fn daily_stats(
    c: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<DailyTypeTotal>> {
    let mut stmt = c.prepare_cached(
        "SELECT ts_ms, event_type, points FROM events WHERE ts_ms >= ?1 AND ts_ms < ?2",
    )?;
    let mut rows = stmt.query(params![from_ms, to_ms])?;
    // Few types: an index into this list keys the sums without a string per row.
    let mut types: Vec<String> = Vec::new();
    let mut sums: HashMap<(i64, usize), (u64, i64)> = HashMap::new();
    while let Some(row) = rows.next()? {
        let ts_ms: i64 = row.get(0)?;
        let event_type = row.get_ref(1)?.as_str()?;
        let t = match types.iter().position(|t| t == event_type) {
            Some(t) => t,
            None => {
                types.push(event_type.to_owned());
                types.len() - 1
            }
        };
        let sum = sums.entry((ts_ms.div_euclid(DAY_MS), t)).or_default();
        sum.0 += 1;
        sum.1 += row.get::<_, i64>(2)?;
    }
    let mut out: Vec<DailyTypeTotal> = sums
        .into_iter()
        .map(|((day, t), (events, points))| DailyTypeTotal {
            day,
            event_type: types[t].clone(),
            events,
            points,
        })
        .collect();
    out.sort_by(|a, b| (a.day, &a.event_type).cmp(&(b.day, &b.event_type)));
    Ok(out)
}
