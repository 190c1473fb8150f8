//! Replaying one user's ledger, and with `apply` rewriting it: run on a reader for a
//! dry run, inside the writer's transaction to apply (so no write of that user can
//! interleave), where the counters are rebuilt from the rewritten ledger.

use rusqlite::{params, Connection};

use crate::domain::engine::{replay, Bonus, Changes, LedgerEntry};
use crate::domain::rules::Rules;
use crate::store::UserRecompute;

pub fn user(
    c: &Connection,
    user_id: &str,
    rules: &Rules,
    apply: bool,
) -> rusqlite::Result<UserRecompute> {
    let entries = ledger(c, user_id)?;
    let current = super::progress::load(c, user_id)?;
    let replayed = replay(user_id, rules, &current, &entries);
    let report = UserRecompute::of(&entries, &replayed, &current, rules);
    if !apply || (report.changed_events == 0 && replayed.state.progress == current) {
        return Ok(report);
    }
    let mut update = c.prepare_cached(
        "UPDATE events SET points = ?1, base_points = ?2, rules_version = ?3
         WHERE user_id = ?4 AND ts_ms = ?5 AND id = ?6",
    )?;
    for i in replayed.changed(&entries) {
        let (e, r) = (&entries[i], replayed.entries[i]);
        update.execute(params![
            r.points,
            r.base_points,
            rules.version(),
            user_id,
            e.ts_ms,
            e.id
        ])?;
    }
    let mut remove =
        c.prepare_cached("DELETE FROM events WHERE user_id = ?1 AND ts_ms = ?2 AND id = ?3")?;
    for &i in &replayed.removed {
        remove.execute(params![user_id, entries[i].ts_ms, entries[i].id])?;
    }
    let now = chrono::Utc::now().timestamp_millis();
    for b in &replayed.added {
        let bonus = Bonus {
            received_ms: now,
            ..b.clone()
        };
        super::writer::insert_bonus(c, user_id, &bonus, rules.version())?;
    }
    rebuild_counters(c, user_id, &replayed.counters)?;
    super::progress::save(c, user_id, &replayed.state.progress)?;
    super::progress::replace_unlocks(c, user_id, &replayed.state.progress)?;
    Ok(report)
}

fn ledger(c: &Connection, user_id: &str) -> rusqlite::Result<Vec<LedgerEntry>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, event_type, ts_ms, points, COALESCE(base_points, points) FROM events
         WHERE user_id = ?1",
    )?;
    let rows = stmt.query_map([user_id], |r| {
        Ok(LedgerEntry {
            id: r.get(0)?,
            event_type: r.get(1)?,
            ts_ms: r.get(2)?,
            points: r.get(3)?,
            base_points: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Replaces the user's totals and period points with the replayed counters.
fn rebuild_counters(c: &Connection, user_id: &str, counters: &Changes) -> rusqlite::Result<()> {
    c.execute("DELETE FROM type_totals WHERE user_id = ?1", [user_id])?;
    let mut insert = c.prepare_cached(
        "INSERT INTO type_totals (user_id, event_type, events, points) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (ty, t) in &counters.by_type {
        insert.execute(params![user_id, ty, t.events, t.points])?;
    }
    // The user's periods are those of their events, which a recompute does not move:
    // each row is overwritten, none appears or goes.
    let mut set = c.prepare_cached(
        "INSERT INTO period_points (period, user_id, points) VALUES (?1, ?2, ?3)
         ON CONFLICT (period, user_id) DO UPDATE SET points = excluded.points",
    )?;
    for (key, points) in &counters.periods {
        set.execute(params![key, user_id, points])?;
    }
    Ok(())
}
