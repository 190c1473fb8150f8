//! The single writer: one thread owns the write connection and commits every request
//! waiting at that moment in one transaction (group commit), so one fsync serves many
//! clients. Each request is answered only after its transaction committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::map_err;
use super::outbox::Outbox;
use super::pending::{Held, Pending, TxCounters};
use crate::domain::caps::{Cap, Usage};
use crate::domain::engine::{self, Incoming, Notice, UserState};
use crate::domain::event::NewEvent;
use crate::domain::period::PeriodKey;
use crate::domain::rules::Rules;
use crate::store::writer_channel::{gather, Request};
use crate::store::{RecordOutcome, Recorded, StoreError, UserRecompute, WalletResult};

/// Upper bound of events in one transaction, so a flood of batches cannot make one
/// commit (and the latency of everyone in it) arbitrarily long.
const MAX_EVENTS_PER_COMMIT: usize = 5_000;

pub enum Command {
    Record {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Recorded, StoreError>>,
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
    /// Sets a user's time zone in their progress.
    SetTimezone {
        user_id: String,
        timezone: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// A wallet operation of one user.
    Wallet {
        user_id: String,
        op: engine::WalletOp,
        rules: Arc<Rules>,
        now_ms: i64,
        reply: oneshot::Sender<Result<WalletResult, StoreError>>,
    },
    /// Checkpoints the counters, so that reads of the counter tables see every
    /// acknowledged write.
    Checkpoint {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl Request for Command {
    fn size(&self) -> usize {
        match self {
            Command::Record { events, .. } => events.len(),
            Command::DeleteUser { .. } | Command::Recompute { .. } => 1,
            Command::SetTimezone { .. } | Command::Wallet { .. } => 1,
            Command::Checkpoint { .. } => 0,
        }
    }
}

enum Done {
    Record(Recorded),
    Delete(bool),
    Recompute(UserRecompute),
    SetTimezone,
    Wallet(WalletResult),
    Checkpoint,
}

/// What the writer thread owns: its connection (when the file could be opened for
/// writing) and how to open it again.
pub struct Writer {
    pub conn: Option<Connection>,
    pub open: Box<dyn Fn() -> rusqlite::Result<Connection> + Send>,
    /// Shared with readiness: false while the database cannot be opened for writing.
    pub writable: Arc<AtomicBool>,
    /// Counter changes of committed writes not yet checkpointed, shared with readers.
    pub held: Arc<RwLock<Held>>,
    /// Shared with the readers: whether the counter tables lag the ledger (something
    /// is held, or what is held is not known yet).
    pub lagging: Arc<AtomicBool>,
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
        let result = write(&mut writer, &commands);
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
                        (Command::Wallet { reply, .. }, Done::Wallet(r)) => {
                            let _ = reply.send(Ok(r));
                        }
                        (Command::Checkpoint { reply }, Done::Checkpoint)
                        | (Command::SetTimezone { reply, .. }, Done::SetTimezone) => {
                            let _ = reply.send(Ok(()));
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
                        Command::Wallet { reply, .. } => {
                            let _ = reply.send(Err(map_err(&e)));
                        }
                        Command::Checkpoint { reply } | Command::SetTimezone { reply, .. } => {
                            let _ = reply.send(Err(map_err(&e)));
                        }
                    }
                }
            }
        }
    }
    if let Err(e) = last_checkpoint(&mut writer) {
        // Nothing is lost: the next start counts the ledger's tail again.
        tracing::warn!(error = %e, "the last counter checkpoint failed");
    }
}

/// The states of the users a transaction writes, loaded on first use and carried
/// through its requests in order, so that each request sees the ones before it.
/// A user's progress is loaded the first time a request needs it.
#[derive(Default)]
struct States {
    users: HashMap<String, UserState>,
    with_progress: std::collections::HashSet<String>,
}

impl States {
    fn of<'a>(
        &'a mut self,
        tx: &rusqlite::Transaction,
        pending: &TxCounters,
        user_id: &str,
        progress: bool,
    ) -> rusqlite::Result<&'a mut UserState> {
        if !self.users.contains_key(user_id) {
            // What the row lacks: held changes of earlier commits (unless a checkpoint
            // of this transaction wrote them) and this transaction's own.
            let mut state = super::read::user_state(tx, user_id)?;
            state.points += pending.all_points(user_id);
            self.users.insert(user_id.to_owned(), state);
        }
        let state = self.users.entry(user_id.to_owned()).or_default();
        if progress && self.with_progress.insert(user_id.to_owned()) {
            state.progress = super::progress::load(tx, user_id)?;
        }
        Ok(state)
    }

    /// Forgets a user whose rows were rewritten or erased: the next use reloads them.
    fn forget(&mut self, user_id: &str) {
        self.users.remove(user_id);
        self.with_progress.remove(user_id);
    }
}

/// Commits `commands` in one transaction and updates what is held, before any reply:
/// a client told of its write must find it in reads, held or in the tables.
fn write(writer: &mut Writer, commands: &[Command]) -> rusqlite::Result<Vec<Done>> {
    let only_checkpoints = commands
        .iter()
        .all(|c| matches!(c, Command::Checkpoint { .. }));
    let held = writer.held.clone();
    {
        let h = read_lock(&held);
        if h.known && h.pending.is_empty() && only_checkpoints {
            // The counters are current: nothing to write (and a read-only file needs
            // no write connection for that).
            return Ok(commands.iter().map(|_| Done::Checkpoint).collect());
        }
    }
    let conn = writer.connection()?;
    if !read_lock(&held).known {
        let (pending, generation) = Pending::from_tail(conn)?;
        *write_lock(&held) = Held {
            pending,
            generation,
            known: true,
        };
    }
    let (done, fresh, checkpointed) = {
        let h = read_lock(&held);
        let mut counters = TxCounters::new(&h);
        let done = commit(conn, commands, &mut counters)?;
        let checkpointed = counters.checkpointed();
        (done, counters.fresh, checkpointed)
    };
    let mut h = write_lock(&held);
    if checkpointed {
        // Everything held went into the tables; what came after the last checkpoint
        // of the transaction (nothing, as it ends with one) stays held.
        h.pending = fresh;
        h.generation += 1;
    } else {
        h.pending.merge(fresh);
    }
    writer
        .lagging
        .store(!h.pending.is_empty(), Ordering::SeqCst);
    Ok(done)
}

pub fn read_lock(held: &RwLock<Held>) -> std::sync::RwLockReadGuard<'_, Held> {
    held.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock(held: &RwLock<Held>) -> std::sync::RwLockWriteGuard<'_, Held> {
    held.write().unwrap_or_else(|p| p.into_inner())
}

fn commit(
    conn: &mut Connection,
    commands: &[Command],
    pending: &mut TxCounters,
) -> rusqlite::Result<Vec<Done>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outbox = Outbox::default();
    let mut states = States::default();
    let mut checkpoint = false;
    let mut done = Vec::with_capacity(commands.len());
    for cmd in commands {
        match cmd {
            Command::Record { events, .. } => {
                let (recorded, notices) = record(&tx, events, &mut states, pending)?;
                outbox.queue(&tx, &notices)?;
                done.push(Done::Record(recorded));
            }
            Command::DeleteUser { user_id, .. } => {
                // Counters of this user still held must land before they go; and the
                // erasure may free the ledger's last rowids, which the checkpoint at the
                // end of this transaction then moves below.
                pending.checkpoint(&tx, &mut outbox)?;
                done.push(Done::Delete(delete_user(&tx, user_id)?));
                states.forget(user_id);
                checkpoint = true;
            }
            Command::Recompute { user_id, rules, .. } => {
                // The replay reads the counters' source, the ledger, which held changes
                // do not alter; but it rewrites the counters, so they land first.
                pending.checkpoint(&tx, &mut outbox)?;
                let report = super::recompute::user(&tx, user_id, rules, true)?;
                let now = chrono::Utc::now().timestamp_millis();
                outbox.queue_recompute(&tx, user_id, &report, rules, now)?;
                done.push(Done::Recompute(report));
                states.forget(user_id);
                checkpoint = true;
            }
            Command::SetTimezone {
                user_id, timezone, ..
            } => {
                let state = states.of(&tx, pending, user_id, true)?;
                state.progress.timezone = (timezone != "UTC").then(|| timezone.clone());
                super::progress::save(&tx, user_id, &state.progress)?;
                done.push(Done::SetTimezone);
            }
            Command::Wallet {
                user_id,
                op,
                rules,
                now_ms,
                ..
            } => {
                let state = states.of(&tx, pending, user_id, true)?;
                let stored = match op.creates_key() {
                    Some(key) => super::progress::wallet_entry_id(&tx, user_id, &key)?,
                    None => None,
                };
                let wallet_rules = rules.progression().wallet.clone().unwrap_or_default();
                let out = engine::wallet_op(user_id, state, &wallet_rules, op, *now_ms, stored);
                for e in &out.entries {
                    super::progress::insert_wallet_entry(&tx, user_id, e)?;
                }
                outbox.queue(&tx, &out.notices)?;
                super::progress::save(&tx, user_id, &state.progress)?;
                done.push(Done::Wallet(WalletResult {
                    result: out.result,
                    wallet: state.progress.wallet.clone(),
                }));
            }
            Command::Checkpoint { .. } => {
                done.push(Done::Checkpoint);
                checkpoint = true;
            }
        }
    }
    if checkpoint || pending.due() || outbox.watches_ranks(&tx)? {
        pending.checkpoint(&tx, &mut outbox)?;
    }
    tx.commit()?;
    Ok(done)
}

/// Checkpoints what is held when the writer stops, so that a clean shutdown leaves
/// the next start no tail to count.
pub fn last_checkpoint(writer: &mut Writer) -> rusqlite::Result<()> {
    let held = writer.held.clone();
    {
        let h = read_lock(&held);
        if !h.known || h.pending.is_empty() {
            return Ok(());
        }
    }
    let conn = writer.connection()?;
    let h = read_lock(&held);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    TxCounters::new(&h).checkpoint(&tx, &mut Outbox::default())?;
    tx.commit()
}

/// One request: each of its users' events go through the engine against that user's
/// state; the events it creates are inserted and its changes queued for the counters.
fn record(
    tx: &rusqlite::Transaction,
    events: &[NewEvent],
    states: &mut States,
    pending: &mut TxCounters,
) -> rusqlite::Result<(Recorded, Vec<Notice>)> {
    let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; events.len()];
    let mut notices = Vec::new();
    let mut changes = Vec::new();
    for (user_id, positions) in engine::by_user(events) {
        let progression = events[positions[0]].progression.0.clone();
        let tracks = progression.tracks_progress();
        let state = states.of(tx, pending, user_id, tracks)?;
        for &i in &positions {
            let e = &events[i];
            if let Some(cap) = &e.cap {
                let window = UserState::cap_window(&e.event_type, e.ts_ms, cap);
                if let std::collections::btree_map::Entry::Vacant(slot) = state.caps.entry(window) {
                    // Untouched by this transaction so far: the ledger has it right.
                    slot.insert(usage(tx, e, cap)?);
                }
            }
        }
        let engine::Step {
            outcomes: judged,
            changes: step_changes,
            notices: step_notices,
            bonuses,
            progressed,
        } = judge_and_insert(tx, events, &positions, state, user_id)?;
        if progressed {
            let version = events[positions[0]].rules_version;
            for b in &bonuses {
                insert_bonus(tx, user_id, b, version)?;
            }
            for n in &step_notices {
                if let Notice::AchievementUnlocked(a) = n {
                    if a.times == 1 {
                        super::progress::unlocked(tx, user_id, &a.id)?;
                    }
                }
            }
            super::progress::save(tx, user_id, &state.progress)?;
        }
        for (&i, outcome) in positions.iter().zip(judged) {
            outcomes[i] = Some(outcome);
        }
        let received = positions.iter().map(|&i| events[i].received_ms).max();
        pending
            .fresh
            .add(user_id, &step_changes, received.unwrap_or_default());
        notices.extend(step_notices);
        changes.push((user_id.to_owned(), step_changes));
    }
    let recorded = Recorded {
        outcomes: outcomes.into_iter().flatten().collect(),
        changes,
    };
    Ok((recorded, notices))
}

/// Runs one user's events of a request through the engine and inserts the ones it
/// creates. Events are taken to be new until an insert finds one in the ledger
/// already (a repeat: rare, so no lookup per event beforehand); then the engine runs
/// again from the same state knowing it. The engine is deterministic and caps count in
/// order, so the events before the repeat come out as they were inserted, and only
/// those after it are inserted anew.
fn judge_and_insert(
    tx: &rusqlite::Transaction,
    events: &[NewEvent],
    positions: &[usize],
    state: &mut UserState,
    user_id: &str,
) -> rusqlite::Result<engine::Step> {
    let before = state.clone();
    let mut stored: Vec<Option<String>> = vec![None; positions.len()];
    let mut from = 0;
    loop {
        let incoming: Vec<Incoming> = positions
            .iter()
            .zip(&stored)
            .map(|(&i, id)| Incoming::new(&events[i], id.as_deref()))
            .collect();
        let step = engine::apply(user_id, state, &incoming);
        let mut repeat = None;
        for (k, outcome) in step.outcomes.iter().enumerate().skip(from) {
            if let RecordOutcome::Created { points, .. } = outcome {
                let key = &incoming[k].dedup_key;
                if !insert_event(tx, &events[positions[k]], key, *points)? {
                    repeat = Some(k);
                    break;
                }
            }
        }
        let Some(k) = repeat else {
            return Ok(step);
        };
        let id = stored_id(tx, &events[positions[k]])?;
        stored[k] = Some(id.ok_or(rusqlite::Error::QueryReturnedNoRows)?);
        *state = before.clone();
        from = k + 1;
    }
}

/// The id under which the ledger holds `e` already (earlier writes of this
/// transaction included), if it does.
fn stored_id(tx: &rusqlite::Transaction, e: &NewEvent) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("SELECT id FROM events WHERE user_id = ?1 AND dedup_key = ?2")?
        .query_row(params![e.user_id, e.dedup_key()], |r| r.get(0))
        .optional()
}

/// Inserts `e` unless the ledger holds an event with its dedup key; says which.
fn insert_event(
    tx: &rusqlite::Transaction,
    e: &NewEvent,
    dedup_key: &str,
    points: i64,
) -> rusqlite::Result<bool> {
    let inserted = tx.prepare_cached(
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
    Ok(inserted == 1)
}

/// Inserts an achievement's bonus entry. Its dedup key makes it once per user (and
/// period, for a repeatable one): a second one would mean the progress row and the
/// ledger disagree, and the transaction is refused rather than count it twice.
pub(super) fn insert_bonus(
    tx: &Connection,
    user_id: &str,
    b: &engine::Bonus,
    rules_version: Option<i64>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (id, user_id, event_type, ts_ms, event_id, dedup_key, points, properties, received_ms, base_points, rules_version)
         VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, NULL, ?7, ?6, ?8)
         ON CONFLICT (user_id, dedup_key) DO NOTHING",
    )?
    .execute(params![b.id, user_id, b.event_type, b.ts_ms, b.dedup_key, b.points, b.received_ms, rules_version])
    .and_then(|n| match n {
        1 => Ok(()),
        n => Err(rusqlite::Error::StatementChangedRows(n)),
    })
}

/// What the ledger holds for the event's user and type in the cap's period.
fn usage(tx: &rusqlite::Transaction, e: &NewEvent, cap: &Cap) -> rusqlite::Result<Usage> {
    let (from, to) = cap.window(e.ts_ms);
    let mut stmt = tx.prepare_cached(
        "SELECT points FROM events
         WHERE user_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 AND event_type = ?4",
    )?;
    let points = stmt
        .query_map(params![e.user_id, from, to, e.event_type], |r| {
            r.get::<_, i64>(0)
        })?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(UserState::usage_of(points))
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
    let progress = super::progress::erase(tx, user_id)?;
    // Queued notifications carry the user's id and points: they go with the rest.
    tx.execute(
        "DELETE FROM webhook_deliveries WHERE user_id = ?1",
        [user_id],
    )?;
    Ok(events + totals + progress > 0)
}
