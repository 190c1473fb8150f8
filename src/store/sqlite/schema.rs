//! Schema and migrations, applied in order at start; `PRAGMA user_version` records
//! how many have run, so an upgraded binary migrates an older file in place.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: the ledger and its counters.
    "CREATE TABLE events (
        id          TEXT    NOT NULL,
        user_id     TEXT    NOT NULL,
        event_type  TEXT    NOT NULL,
        ts_ms       INTEGER NOT NULL,
        event_id    TEXT,
        dedup_key   TEXT    NOT NULL,
        points      INTEGER NOT NULL,
        properties  TEXT,
        received_ms INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX events_dedup ON events(user_id, dedup_key);
    CREATE INDEX events_history ON events(user_id, ts_ms, id);
    CREATE TABLE type_totals (
        user_id    TEXT    NOT NULL,
        event_type TEXT    NOT NULL,
        events     INTEGER NOT NULL,
        points     INTEGER NOT NULL,
        PRIMARY KEY (user_id, event_type)
    ) WITHOUT ROWID;
    CREATE INDEX type_totals_rank ON type_totals(event_type, points DESC, user_id);
    CREATE TABLE period_points (
        period  TEXT    NOT NULL,
        user_id TEXT    NOT NULL,
        points  INTEGER NOT NULL,
        PRIMARY KEY (period, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX period_points_rank ON period_points(period, points DESC, user_id);",
    // 2: rules versions, and which version judged each event and what it was worth
    // before caps. Events stored before this migration have NULL in both.
    "ALTER TABLE events ADD COLUMN base_points INTEGER;
    ALTER TABLE events ADD COLUMN rules_version INTEGER;
    CREATE TABLE rules_versions (
        version      INTEGER PRIMARY KEY,
        hash         TEXT    NOT NULL,
        content      TEXT    NOT NULL,
        activated_ms INTEGER NOT NULL
    );",
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
