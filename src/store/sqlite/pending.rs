//! Counter changes the writer holds in memory between checkpoints.
//!
//! Each commit inserts only its ledger rows; the per-type totals and leaderboard rows
//! its events change wait here and are written in bulk, coalesced per row, by a
//! checkpoint: a transaction (often the same one as a commit's events) that upserts
//! them and records in `counters_checkpoint` the last ledger rowid they cover and a new
//! generation. So the cost of an event no longer grows with the number of counters it
//! touches, and many events of one user or period cost one row write.
//!
//! What is held is shared with the readers ([`Held`]), so a user's total is the row
//! plus what is held for the user, read without waiting for the writer; the generation
//! tells a reader whether the rows it read already include what it saw held.
//!
//! Exactness after a crash comes from the ledger: the counters hold every event up to
//! the checkpoint's rowid, and [`Pending::from_tail`] counts the rest again at start.
//! Rowids only grow between checkpoints, because erasures (which may free the highest
//! ones) checkpoint in their own transaction.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::outbox::Outbox;
use crate::domain::engine::Changes;
use crate::store::{TypeTotal, UserPoints};

/// A checkpoint runs once this many counter rows are waiting...
const MAX_ROWS: usize = 20_000;
/// ...or the oldest change has waited this long, so that a crash leaves a short tail.
const MAX_AGE: Duration = Duration::from_millis(500);

/// Counter changes not in the tables: per user and type (events, points), and per
/// period key and user (points).
#[derive(Default)]
pub struct Pending {
    types: HashMap<String, BTreeMap<String, (i64, i64)>>,
    /// Entries of `types`, kept so that the check after every commit is O(1).
    type_rows: usize,
    periods: HashMap<(String, String), i64>,
    /// When the latest of these events was received: the `created_at` of the
    /// `rank.changed` deliveries they cause.
    received_ms: i64,
    since: Option<Instant>,
}

impl Pending {
    pub fn add(&mut self, user_id: &str, changes: &Changes, received_ms: i64) {
        if !changes.by_type.is_empty() {
            let user = match self.types.get_mut(user_id) {
                Some(u) => u,
                None => self.types.entry(user_id.to_owned()).or_default(),
            };
            for (ty, c) in &changes.by_type {
                let t = match user.get_mut(ty) {
                    Some(t) => t,
                    None => {
                        self.type_rows += 1;
                        user.entry(ty.clone()).or_default()
                    }
                };
                t.0 += c.events;
                t.1 += c.points;
            }
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
        self.type_rows + self.periods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty() && self.periods.is_empty()
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

    /// What is held for the user, per event type: (events, points).
    pub fn types_of(&self, user_id: &str) -> Option<&BTreeMap<String, (i64, i64)>> {
        self.types.get(user_id)
    }

    /// Moves `other`, changes committed after these, into these.
    pub fn merge(&mut self, other: Pending) {
        for (user, by_type) in other.types {
            let mine = self.types.entry(user).or_default();
            for (ty, (events, points)) in by_type {
                let t = match mine.entry(ty) {
                    std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => {
                        self.type_rows += 1;
                        v.insert((0, 0))
                    }
                };
                t.0 += events;
                t.1 += points;
            }
        }
        for (key, points) in other.periods {
            *self.periods.entry(key).or_default() += points;
        }
        self.received_ms = self.received_ms.max(other.received_ms);
        self.since = [self.since, other.since].into_iter().flatten().min();
    }

    /// What the counters lack: the ledger's events past the last checkpoint, counted
    /// as the domain counts a stored event; and the checkpoint's generation.
    pub fn from_tail(c: &Connection) -> rusqlite::Result<(Pending, i64)> {
        let migrated: bool = c.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'counters_checkpoint'",
            [],
            |r| r.get(0),
        )?;
        if !migrated {
            // A file from before held counters (read where it cannot be migrated, on a
            // read-only file system): its counters are complete.
            return Ok((Pending::default(), 0));
        }
        let (last, generation): (i64, i64) = c
            .query_row(
                "SELECT last_rowid, generation FROM counters_checkpoint",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, 0));
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
        Ok((pending, generation))
    }
}

/// What the writer holds, shared with the readers: the changes of committed writes
/// not in the tables yet, and the generation of the tables' last checkpoint.
#[derive(Default)]
pub struct Held {
    pub pending: Pending,
    pub generation: i64,
    /// False until the ledger's tail could be counted (a file unreadable at open):
    /// then `pending` says nothing, and the writer counts the tail before it writes.
    pub known: bool,
}

/// Adds `held` (a user's held changes per type) to `points`, read from the rows.
pub fn add_held(held: &BTreeMap<String, (i64, i64)>, points: &mut UserPoints) {
    for (ty, (events, pts)) in held {
        match points
            .by_type
            .binary_search_by(|t| t.event_type.as_str().cmp(ty))
        {
            Ok(i) => {
                let t = &mut points.by_type[i];
                t.events = t.events.saturating_add_signed(*events);
                t.points += pts;
            }
            Err(i) => points.by_type.insert(
                i,
                TypeTotal {
                    event_type: ty.clone(),
                    events: u64::try_from(*events).unwrap_or(0),
                    points: *pts,
                },
            ),
        }
        points.events = points.events.saturating_add_signed(*events);
        points.points += pts;
    }
}

/// The generation the tables show in `c`'s snapshot.
pub fn generation(c: &Connection) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT generation FROM counters_checkpoint")?
        .query_row([], |r| r.get(0))
        .optional()
        .map(Option::unwrap_or_default)
}

/// The counters of one write transaction: what was held when it began (never changed
/// by it, so a transaction that fails leaves it exact) and what it adds.
pub struct TxCounters<'a> {
    held: &'a Pending,
    /// The generation the transaction's checkpoints give the tables.
    next_generation: i64,
    /// Whether a checkpoint of this transaction wrote `held` already.
    held_written: bool,
    pub fresh: Pending,
}

impl<'a> TxCounters<'a> {
    pub fn new(held: &'a Held) -> TxCounters<'a> {
        TxCounters {
            held: &held.pending,
            next_generation: held.generation + 1,
            held_written: false,
            fresh: Pending::default(),
        }
    }

    /// Whether a checkpoint wrote everything held: then nothing is held after commit.
    pub fn checkpointed(&self) -> bool {
        self.held_written
    }

    /// The user's all-time points not in the `all` row as this transaction sees it.
    pub fn all_points(&self, user_id: &str) -> i64 {
        let held = if self.held_written {
            0
        } else {
            self.held.all_points(user_id)
        };
        held + self.fresh.all_points(user_id)
    }

    /// Whether enough has gathered (or waited) to be worth a checkpoint now.
    pub fn due(&self) -> bool {
        let held = if self.held_written {
            0
        } else {
            self.held.rows()
        };
        let oldest = [self.held.since, self.fresh.since]
            .into_iter()
            .flatten()
            .min();
        held + self.fresh.rows() >= MAX_ROWS || oldest.is_some_and(|t| t.elapsed() >= MAX_AGE)
    }

    /// Writes everything not yet in the tables, moves the checkpoint to the ledger's
    /// end, in `tx`. The leaderboards watched by `rank.changed` subscriptions are read
    /// just before and just after, and the outbox queues a delivery for each rank that
    /// moved. Rows are written in key order, so neighbouring keys share pages.
    pub fn checkpoint(
        &mut self,
        tx: &rusqlite::Transaction,
        outbox: &mut Outbox,
    ) -> rusqlite::Result<()> {
        let fresh = std::mem::take(&mut self.fresh);
        let mut parts = vec![&fresh];
        if !self.held_written {
            parts.push(self.held);
        }
        let mut types: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
        let mut periods: HashMap<(String, String), i64> = HashMap::new();
        let mut received_ms = 0;
        for part in &parts {
            for (user, by_type) in &part.types {
                for (ty, (events, points)) in by_type {
                    let t = types.entry((user, ty)).or_default();
                    t.0 += events;
                    t.1 += points;
                }
            }
            for (key, points) in &part.periods {
                *periods.entry(key.clone()).or_default() += points;
            }
            received_ms = received_ms.max(part.received_ms);
        }
        let mut upsert = tx.prepare_cached(
            "INSERT INTO type_totals (user_id, event_type, events, points) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, event_type) DO UPDATE
             SET events = events + excluded.events, points = points + excluded.points",
        )?;
        for ((user, ty), (events, points)) in types {
            upsert.execute(params![user, ty, events, points])?;
        }
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
            outbox.queue_ranks(tx, boards, &periods, received_ms)?;
        }
        tx.prepare_cached(
            "UPDATE counters_checkpoint
             SET last_rowid = (SELECT COALESCE(MAX(rowid), 0) FROM events), generation = ?1",
        )?
        .execute([self.next_generation])?;
        crate::faults::crash_point("sqlite.checkpoint.before_commit");
        self.held_written = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(ty: &str, ts_ms: i64, points: i64) -> Changes {
        let mut c = Changes::default();
        c.add(ty, ts_ms, points);
        c
    }

    #[test]
    fn held_changes_add_to_the_rows_in_type_order() {
        let mut held = Pending::default();
        held.add("u", &changes("LOGIN", 0, 1), 0);
        let mut later = Pending::default();
        later.add("u", &changes("ABUSE", 0, -5), 0);
        later.add("u", &changes("LOGIN", 0, 1), 0);
        held.merge(later);
        assert_eq!(held.all_points("u"), -3);
        // Two types and one `all` row plus day, week and month (all the same instant).
        assert_eq!(held.rows(), 2 + 4);
        let mut points = UserPoints {
            points: 10,
            events: 1,
            by_type: vec![TypeTotal {
                event_type: "PURCHASE".into(),
                events: 1,
                points: 10,
            }],
        };
        add_held(held.types_of("u").unwrap(), &mut points);
        let types: Vec<(&str, u64, i64)> = points
            .by_type
            .iter()
            .map(|t| (t.event_type.as_str(), t.events, t.points))
            .collect();
        assert_eq!(
            types,
            [("ABUSE", 1, -5), ("LOGIN", 2, 2), ("PURCHASE", 1, 10)]
        );
        assert_eq!((points.points, points.events), (7, 4));
    }

    #[test]
    fn a_transaction_sees_held_changes_until_its_checkpoint_writes_them() {
        let mut held = Held::default();
        held.pending.add("u", &changes("LOGIN", 0, 3), 0);
        let mut tx = TxCounters::new(&held);
        tx.fresh.add("u", &changes("LOGIN", 0, 4), 0);
        assert_eq!(tx.all_points("u"), 7);
        tx.held_written = true;
        tx.fresh = Pending::default();
        assert_eq!(tx.all_points("u"), 0, "now in the rows");
        assert!(tx.checkpointed());
    }
}
