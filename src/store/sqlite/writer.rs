//! The single writer: one thread owns the write connection and commits every request
//! waiting at that moment in one transaction (group commit), so one fsync serves many
//! clients. Each request is answered only after its transaction committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::map_err;
use super::outbox::{CapReached, Outbox};
use crate::domain::caps::{Cap, Usage};
use crate::domain::event::NewEvent;
use crate::domain::period::PeriodKey;
use crate::domain::rules::Rules;
use crate::store::writer_channel::{gather, Request};
use crate::store::{RecordOutcome, StoreError, UserRecompute};

/// Upper bound of events in one transaction, so a flood of batches cannot make one
/// commit (and the latency of everyone in it) arbitrarily long.
const MAX_EVENTS_PER_COMMIT: usize = 5_000;

pub enum Command {
    Record {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<RecordOutcome>, StoreError>>,
    },
    DeleteUser {
        user_id: String,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// Applies a replay of one user's ledger (a recompute).
    Recompute {
        user_id: String,
        rules: Arc<Rules>,
        reply: oneshot::Sender<Result<UserRecompute, StoreError>>,
    },
}

impl Request for Command {
    fn size(&self) -> usize {
        match self {
            Command::Record { events, .. } => events.len(),
            Command::DeleteUser { .. } | Command::Recompute { .. } => 1,
        }
    }
}

enum Done {
    Record(Vec<RecordOutcome>),
    Delete(bool),
    Recompute(UserRecompute),
}

/// What the writer thread owns: its connection (when the file could be opened for
/// writing) and how to open it again.
pub struct Writer {
    pub conn: Option<Connection>,
    pub open: Box<dyn Fn() -> rusqlite::Result<Connection> + Send>,
    /// Shared with readiness: false while the database cannot be opened for writing.
    pub writable: Arc<AtomicBool>,
}

impl Writer {
    /// The connection, reopening it if an earlier open failed (a read-only file system
    /// remounted read-write, a fixed permission) so writes recover without a restart.
    fn connection(&mut self) -> Result<&mut Connection, rusqlite::Error> {
        if self.conn.is_none() {
            match (self.open)() {
                Ok(c) => {
                    tracing::info!("the SQLite database is writable again");
                    self.conn = Some(c);
                }
                Err(e) => {
                    self.writable.store(false, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        self.writable.store(true, Ordering::Relaxed);
        self.conn.as_mut().ok_or(rusqlite::Error::InvalidQuery)
    }
}

pub fn run(mut writer: Writer, mut rx: mpsc::Receiver<Command>) {
    while let Some(first) = rx.blocking_recv() {
        let commands = gather(first, &mut rx, MAX_EVENTS_PER_COMMIT);
        let size: usize = commands.iter().map(Request::size).sum();
        metrics::histogram!("store_commit_batch_events").record(size as f64);
        let result = writer.connection().and_then(|conn| commit(conn, &commands));
        match result {
            Ok(done) => {
                for (cmd, result) in commands.into_iter().zip(done) {
                    // A dropped receiver is a client that went away; its write still stands.
                    match (cmd, result) {
                        (Command::Record { reply, .. }, Done::Record(r)) => {
                            let _ = reply.send(Ok(r));
                        }
                        (Command::DeleteUser { reply, .. }, Done::Delete(d)) => {
                            let _ = reply.send(Ok(d));
                        }
                        (Command::Recompute { reply, .. }, Done::Recompute(r)) => {
                            let _ = reply.send(Ok(r));
                        }
                        _ => unreachable!("results are produced in command order"),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, commands = commands.len(), "SQLite write failed, nothing of it was stored; answering 503");
                if matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly)) {
                    // The file went read-only under an open connection: open afresh next time.
                    writer.conn = None;
                }
                for cmd in commands {
                    match cmd {
                        Command::Record { reply, .. } => {
                            let _ = reply.send(Err(map_err(&e)));
                        }
                        Command::DeleteUser { reply, .. } => {
                            let _ = reply.send(Err(map_err(&e)));
                        }
                        Command::Recompute { reply, .. } => {
                            let _ = reply.send(Err(map_err(&e)));
                        }
                    }
                }
            }
        }
    }
}

/// Counter changes accumulated over a transaction and written once per key at the end.
#[derive(Default)]
struct Deltas {
    types: HashMap<(String, String), (i64, i64)>,
    periods: HashMap<(String, String), i64>,
    /// When the latest of these events was received: the `created_at` of the
    /// `rank.changed` deliveries they cause.
    received_ms: i64,
}

impl Deltas {
    fn add(&mut self, e: &NewEvent, points: i64) {
        let t = self
            .types
            .entry((e.user_id.clone(), e.event_type.clone()))
            .or_default();
        t.0 += 1;
        t.1 += points;
        for key in PeriodKey::keys_for_event(e.ts_ms) {
            *self.periods.entry((key, e.user_id.clone())).or_default() += points;
        }
        self.received_ms = self.received_ms.max(e.received_ms);
    }

    /// Writes the pending counters. The leaderboards watched by `rank.changed`
    /// subscriptions are read just before and just after, and the outbox queues a
    /// delivery for each rank that moved; with no such subscription this reads nothing
    /// more than the subscriptions, which the outbox reads once per transaction anyway.
    fn flush(&mut self, tx: &rusqlite::Transaction, outbox: &mut Outbox) -> rusqlite::Result<()> {
        let mut types = tx.prepare_cached(
            "INSERT INTO type_totals (user_id, event_type, events, points) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, event_type) DO UPDATE
             SET events = events + excluded.events, points = points + excluded.points",
        )?;
        for ((user, ty), (events, points)) in self.types.drain() {
            types.execute(params![user, ty, events, points])?;
        }
        let periods = std::mem::take(&mut self.periods);
        let boards = outbox.boards_before(tx, &periods)?;
        let mut upsert = tx.prepare_cached(
            "INSERT INTO period_points (period, user_id, points) VALUES (?1, ?2, ?3)
             ON CONFLICT (period, user_id) DO UPDATE SET points = points + excluded.points",
        )?;
        for ((period, user), points) in &periods {
            upsert.execute(params![period, user, points])?;
        }
        if let Some(boards) = boards {
            outbox.queue_ranks(tx, boards, &periods, self.received_ms)?;
        }
        Ok(())
    }
}

fn commit(conn: &mut Connection, commands: &[Command]) -> rusqlite::Result<Vec<Done>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut deltas = Deltas::default();
    let mut outbox = Outbox::default();
    let mut caps_reached = Vec::new();
    let mut done = Vec::with_capacity(commands.len());
    for cmd in commands {
        match cmd {
            Command::Record { events, .. } => {
                let mut outcomes = Vec::with_capacity(events.len());
                for e in events {
                    outcomes.push(insert_event(&tx, e, &mut deltas, &mut caps_reached)?);
                }
                outbox.queue(&tx, events, &outcomes)?;
                outbox.queue_caps(&tx, &caps_reached)?;
                caps_reached.clear();
                done.push(Done::Record(outcomes));
            }
            Command::DeleteUser { user_id, .. } => {
                // Counters of this user pending in this transaction must land before they go.
                deltas.flush(&tx, &mut outbox)?;
                done.push(Done::Delete(delete_user(&tx, user_id)?));
                outbox.totals.clear();
            }
            Command::Recompute { user_id, rules, .. } => {
                // The replay reads the counters' source, the ledger, which pending
                // deltas do not change; but it rewrites the counters, so they land first.
                deltas.flush(&tx, &mut outbox)?;
                let report = super::recompute::user(&tx, user_id, rules, true)?;
                let now = chrono::Utc::now().timestamp_millis();
                outbox.queue_recompute(&tx, user_id, &report, rules.version(), now)?;
                done.push(Done::Recompute(report));
                outbox.totals.clear();
            }
        }
    }
    deltas.flush(&tx, &mut outbox)?;
    tx.commit()?;
    Ok(done)
}

fn insert_event(
    tx: &rusqlite::Transaction,
    e: &NewEvent,
    deltas: &mut Deltas,
    caps_reached: &mut Vec<CapReached>,
) -> rusqlite::Result<RecordOutcome> {
    let dedup_key = e.dedup_key();
    // Earlier events of this transaction are visible here, so a batch counts towards
    // its own cap; the single writer makes this exact under concurrency.
    let (points, reached) = match &e.cap {
        Some(cap) => {
            let used = usage(tx, e, cap)?;
            let points = cap.award(e.points, used);
            (points, cap.reached_by(used, points))
        }
        None => (e.points, false),
    };
    let inserted = tx
        .prepare_cached(
            "INSERT INTO events (id, user_id, event_type, ts_ms, event_id, dedup_key, points, properties, received_ms, base_points, rules_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (user_id, dedup_key) DO NOTHING",
        )?
        .execute(params![
            e.id,
            e.user_id,
            e.event_type,
            e.ts_ms,
            e.event_id,
            dedup_key,
            points,
            e.properties,
            e.received_ms,
            e.base_points,
            e.rules_version
        ])?;
    if inserted == 1 {
        if let (true, Some(cap)) = (reached, e.cap) {
            caps_reached.push(CapReached::of(e, cap));
        }
        deltas.add(e, points);
        return Ok(RecordOutcome::Created {
            id: e.id.clone(),
            points,
        });
    }
    let id: Option<String> = tx
        .prepare_cached("SELECT id FROM events WHERE user_id = ?1 AND dedup_key = ?2")?
        .query_row(params![e.user_id, dedup_key], |r| r.get(0))
        .optional()?;
    Ok(RecordOutcome::Duplicate {
        id: id.unwrap_or_default(),
    })
}

/// What the ledger holds for the event's user and type in the cap's period.
fn usage(tx: &rusqlite::Transaction, e: &NewEvent, cap: &Cap) -> rusqlite::Result<Usage> {
    let (from, to) = cap.window(e.ts_ms);
    tx.prepare_cached(
        "SELECT COUNT(*) FILTER (WHERE points > 0), COALESCE(SUM(points), 0) FROM events
         WHERE user_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 AND event_type = ?4",
    )?
    .query_row(params![e.user_id, from, to, e.event_type], |r| {
        Ok(Usage {
            awarded_events: r.get(0)?,
            points: r.get(1)?,
        })
    })
}

fn delete_user(tx: &rusqlite::Transaction, user_id: &str) -> rusqlite::Result<bool> {
    // The user's leaderboard rows are exactly the periods their events fall in; finding
    // them through the user's events avoids an index on period_points that every
    // ingest would have to maintain for the sake of a rare erasure.
    let mut periods = std::collections::HashSet::new();
    {
        let mut stmt = tx.prepare("SELECT DISTINCT ts_ms FROM events WHERE user_id = ?1")?;
        let mut rows = stmt.query([user_id])?;
        while let Some(row) = rows.next()? {
            periods.extend(PeriodKey::keys_for_event(row.get(0)?));
        }
    }
    let mut del =
        tx.prepare_cached("DELETE FROM period_points WHERE period = ?1 AND user_id = ?2")?;
    for period in &periods {
        del.execute(params![period, user_id])?;
    }
    let events = tx.execute("DELETE FROM events WHERE user_id = ?1", [user_id])?;
    let totals = tx.execute("DELETE FROM type_totals WHERE user_id = ?1", [user_id])?;
    // Queued notifications carry the user's id and points: they go with the rest.
    tx.execute(
        "DELETE FROM webhook_deliveries WHERE user_id = ?1",
        [user_id],
    )?;
    Ok(events + totals > 0)
}
