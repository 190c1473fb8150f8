//! Counter changes the writer holds in memory between checkpoints.
//!
//! Each commit inserts only its ledger rows; the per-type totals and leaderboard rows
//! its events change wait here and are written in bulk, coalesced per row, by a
//! checkpoint: a transaction (often the same one as a commit's events) that upserts
//! them and records in `counters_checkpoint` the last ledger rowid they cover. So the
//! cost of an event no longer grows with the number of counters it touches, and many
//! events of one user or period cost one row write.
//!
//! Exactness after a crash comes from the ledger: the counters hold every event up to
//! the checkpoint's rowid, and [`Pending::from_tail`] counts the rest again at start (or
//! after a failed commit, when what was held is no longer known to match the file).
//! Rowids only grow between checkpoints, because erasures (which may free the highest
//! ones) checkpoint in their own transaction.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::outbox::Outbox;
use crate::domain::engine::Changes;

/// A checkpoint runs once this many counter rows are waiting...
const MAX_ROWS: usize = 20_000;
/// ...or the oldest change has waited this long, so that a crash leaves a short tail.
const MAX_AGE: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct Pending {
    types: HashMap<(String, String), (i64, i64)>,
    periods: HashMap<(String, String), i64>,
    /// When the latest of these events was received: the `created_at` of the
    /// `rank.changed` deliveries they cause.
    received_ms: i64,
    since: Option<Instant>,
}

impl Pending {
    pub fn add(&mut self, user_id: &str, changes: &Changes, received_ms: i64) {
        for (ty, c) in &changes.by_type {
            let t = self
                .types
                .entry((user_id.to_owned(), ty.clone()))
                .or_default();
            t.0 += c.events;
            t.1 += c.points;
        }
        for (key, points) in &changes.periods {
            *self
                .periods
                .entry((key.clone(), user_id.to_owned()))
                .or_default() += points;
        }
        self.received_ms = self.received_ms.max(received_ms);
        self.since.get_or_insert_with(Instant::now);
    }

    /// Counter rows waiting.
    pub fn rows(&self) -> usize {
        self.types.len() + self.periods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty() && self.periods.is_empty()
    }

    /// Whether enough has gathered (or waited) to be worth a checkpoint now.
    pub fn due(&self) -> bool {
        self.rows() >= MAX_ROWS || self.since.is_some_and(|t| t.elapsed() >= MAX_AGE)
    }

    /// The user's all-time points not yet in their `all` row.
    pub fn all_points(&self, user_id: &str) -> i64 {
        // Keys are owned pairs; a lookup by borrowed parts would need a custom key type
        // for a read that happens once per user and commit.
        self.periods
            .get(&("all".to_owned(), user_id.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Writes everything held into the counter tables and moves the checkpoint to the
    /// ledger's end, in `tx`. The leaderboards watched by `rank.changed` subscriptions
    /// are read just before and just after, and the outbox queues a delivery for each
    /// rank that moved. Rows are written in key order, so neighbouring keys share pages.
    pub fn checkpoint(
        &mut self,
        tx: &rusqlite::Transaction,
        outbox: &mut Outbox,
    ) -> rusqlite::Result<()> {
        let mut types: Vec<_> = self.types.drain().collect();
        types.sort_unstable();
        let mut upsert = tx.prepare_cached(
            "INSERT INTO type_totals (user_id, event_type, events, points) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, event_type) DO UPDATE
             SET events = events + excluded.events, points = points + excluded.points",
        )?;
        for ((user, ty), (events, points)) in types {
            upsert.execute(params![user, ty, events, points])?;
        }
        let periods = std::mem::take(&mut self.periods);
        let boards = outbox.boards_before(tx, &periods)?;
        let mut rows: Vec<_> = periods.iter().collect();
        rows.sort_unstable();
        let mut upsert = tx.prepare_cached(
            "INSERT INTO period_points (period, user_id, points) VALUES (?1, ?2, ?3)
             ON CONFLICT (period, user_id) DO UPDATE SET points = points + excluded.points",
        )?;
        for ((period, user), points) in rows {
            upsert.execute(params![period, user, points])?;
        }
        if let Some(boards) = boards {
            outbox.queue_ranks(tx, boards, &periods, self.received_ms)?;
        }
        tx.execute(
            "UPDATE counters_checkpoint SET last_rowid = (SELECT COALESCE(MAX(rowid), 0) FROM events)",
            [],
        )?;
        crate::faults::crash_point("sqlite.checkpoint.before_commit");
        self.since = None;
        Ok(())
    }

    /// What the counters lack: the ledger's events past the last checkpoint, counted
    /// as the domain counts a stored event.
    pub fn from_tail(c: &Connection) -> rusqlite::Result<Pending> {
        let migrated: bool = c.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'counters_checkpoint'",
            [],
            |r| r.get(0),
        )?;
        if !migrated {
            // A file from before held counters (read where it cannot be migrated, on a
            // read-only file system): its counters are complete.
            return Ok(Pending::default());
        }
        let last: i64 = c
            .query_row("SELECT last_rowid FROM counters_checkpoint", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        let mut stmt = c.prepare(
            "SELECT user_id, event_type, ts_ms, points, received_ms FROM events
             WHERE rowid > ?1 ORDER BY rowid",
        )?;
        let mut rows = stmt.query([last])?;
        let mut pending = Pending::default();
        while let Some(r) = rows.next()? {
            let user: String = r.get(0)?;
            let mut changes = Changes::default();
            changes.add(&r.get::<_, String>(1)?, r.get(2)?, r.get(3)?);
            pending.add(&user, &changes, r.get(4)?);
        }
        Ok(pending)
    }
}
