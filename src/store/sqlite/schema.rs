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
    // 3: webhooks. Deliveries are queued by the writer in the transaction that stores
    // the events (an outbox); `seq` is their commit order, which per-user ordering uses.
    "CREATE TABLE webhook_subscriptions (
        id         TEXT    PRIMARY KEY,
        url        TEXT    NOT NULL UNIQUE,
        secret     TEXT    NOT NULL,
        events     TEXT    NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        seq             INTEGER PRIMARY KEY,
        id              TEXT    NOT NULL UNIQUE,
        subscription_id TEXT    NOT NULL,
        user_id         TEXT    NOT NULL,
        event           TEXT    NOT NULL,
        body            TEXT    NOT NULL,
        status          TEXT    NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER,
        last_status     INTEGER,
        last_error      TEXT,
        created_ms      INTEGER NOT NULL,
        updated_ms      INTEGER NOT NULL
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_ms);
    CREATE INDEX webhook_deliveries_queue ON webhook_deliveries(subscription_id, user_id, status, seq);
    CREATE INDEX webhook_deliveries_log ON webhook_deliveries(subscription_id, seq);
    CREATE INDEX webhook_deliveries_user ON webhook_deliveries(user_id);",
    // 4: the board a rank.changed subscription watches, as JSON (`{"period":"week","top":3}`);
    // NULL for the others.
    "ALTER TABLE webhook_subscriptions ADD COLUMN rank TEXT;",
    // 5: the counters hold every event up to this ledger rowid; the writer keeps later
    // changes in memory until its next checkpoint (pending.rs). Counters of a file
    // from before this migration are complete.
    // `generation` counts checkpoints: a reader adding held changes to rows it read
    // checks that no checkpoint came in between.
    "CREATE TABLE counters_checkpoint (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        last_rowid INTEGER NOT NULL,
        generation INTEGER NOT NULL
    );
    INSERT INTO counters_checkpoint (id, last_rowid, generation)
        SELECT 1, COALESCE(MAX(rowid), 0), 0 FROM events;",
    // 6: progression (streaks, achievements, time zone) per user, as the engine's
    // state has it; one row per unlocked achievement, for rarity.
    "CREATE TABLE user_progress (
        user_id  TEXT PRIMARY KEY,
        progress TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE user_achievements (
        achievement_id TEXT NOT NULL,
        user_id        TEXT NOT NULL,
        PRIMARY KEY (achievement_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX user_achievements_user ON user_achievements(user_id);",
    // 7: the wallet's ledger (spends, holds, captures, releases, expiries), unique per
    // user by dedup key (a spend id or hold id is used once), and when each user's
    // wallet next has something due, for the sweeper.
    "CREATE TABLE wallet_entries (
        id        TEXT PRIMARY KEY,
        user_id   TEXT NOT NULL,
        kind      TEXT NOT NULL,
        amount    INTEGER NOT NULL,
        ref_id    TEXT NOT NULL,
        reason    TEXT,
        ts_ms     INTEGER NOT NULL,
        dedup_key TEXT NOT NULL,
        -- a hold's end (holds only)
        expires_ms INTEGER
    );
    CREATE UNIQUE INDEX wallet_entries_dedup ON wallet_entries(user_id, dedup_key);
    CREATE INDEX wallet_entries_history ON wallet_entries(user_id, ts_ms, id);
    ALTER TABLE user_progress ADD COLUMN wallet_due_ms INTEGER;
    CREATE INDEX user_progress_wallet_due ON user_progress(wallet_due_ms)
        WHERE wallet_due_ms IS NOT NULL;",
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
