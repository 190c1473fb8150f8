//! The webhook outbox: deliveries queued in the transaction that stores the events, so
//! a committed event always has its notifications and a rolled-back one never does.
//!
//! - `points.changed` and `cap.reached`: the engine's notices (see
//!   [`crate::domain::engine::Notice`]), one delivery per subscription each.
//! - `rank.changed`: for each subscription watching a board (`rank: {period, top}`), one
//!   delivery per user whose rank within its top N differs between just before and just
//!   after the writer applies a transaction's counters (see [`Outbox::boards_before`]).

use std::collections::{BTreeMap, HashMap};

use rusqlite::params;
use serde_json::Value;

use super::read;
use crate::domain::engine::Notice;
use crate::domain::period::Period;
use crate::domain::ranking::RankedEntry;
use crate::domain::rules::Rules;
use crate::store::UserRecompute;
use crate::webhooks::payload;
use crate::webhooks::{rank, RankWatch, POINTS_CHANGED, RANK_CHANGED};

/// The subscriptions, read once per transaction.
#[derive(Default)]
struct Subscriptions {
    /// Subscription ids by notification.
    by_event: HashMap<String, Vec<String>>,
    /// The `rank.changed` subscriptions and the board each watches.
    ranks: Vec<(String, RankWatch)>,
}

/// Boards read just before a transaction's counters are applied, to compare with the
/// same boards just after: by storage key, the kind of period and the most entries any
/// subscription watches, and the entries.
pub struct BoardsBefore(BTreeMap<String, (Period, u32, Vec<RankedEntry>)>);

#[derive(Default)]
pub struct Outbox {
    subscriptions: Option<Subscriptions>,
}

impl Outbox {
    /// The deliveries of the engine's notices for one request.
    pub fn queue(
        &mut self,
        tx: &rusqlite::Transaction,
        notices: &[Notice],
    ) -> rusqlite::Result<()> {
        for notice in notices {
            let d = payload::describe(notice);
            if !self.subscribers(tx, d.kind)?.is_empty() {
                self.insert(tx, d.kind, d.user_id, d.at_ms, d.data)?;
            }
        }
        Ok(())
    }

    /// `points.changed` for a recompute that changed the user's total, and
    /// `level.changed` when it moved their level.
    pub fn queue_recompute(
        &mut self,
        tx: &rusqlite::Transaction,
        user_id: &str,
        report: &UserRecompute,
        rules: &Rules,
        at_ms: i64,
    ) -> rusqlite::Result<()> {
        let delta = report.recomputed - report.current;
        if delta != 0 && !self.subscribers(tx, POINTS_CHANGED)?.is_empty() {
            let data =
                payload::points_recomputed(user_id, report.recomputed, delta, rules.version());
            self.insert(tx, POINTS_CHANGED, user_id, at_ms, data)?;
        }
        if let Some(level) = report.level_notice(user_id, rules, at_ms) {
            self.queue(tx, &[level])?;
        }
        Ok(())
    }

    fn subscriptions(&mut self, tx: &rusqlite::Transaction) -> rusqlite::Result<&Subscriptions> {
        if self.subscriptions.is_none() {
            let mut subs = Subscriptions::default();
            let mut stmt =
                tx.prepare_cached("SELECT id, events, rank FROM webhook_subscriptions")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })?;
            for row in rows {
                let (id, events, watch) = row?;
                let events: Vec<String> = serde_json::from_str(&events).unwrap_or_default();
                if events.iter().any(|e| e == RANK_CHANGED) {
                    if let Some(w) = watch.and_then(|w| serde_json::from_str(&w).ok()) {
                        subs.ranks.push((id.clone(), w));
                    }
                }
                for e in events {
                    subs.by_event.entry(e).or_default().push(id.clone());
                }
            }
            self.subscriptions = Some(subs);
        }
        Ok(self
            .subscriptions
            .get_or_insert_with(Subscriptions::default))
    }

    /// Whether a `rank.changed` subscription watches any board. The writer then
    /// checkpoints the counters with every commit, so that each write's rank changes
    /// are compared and sent as the write happens.
    pub fn watches_ranks(&mut self, tx: &rusqlite::Transaction) -> rusqlite::Result<bool> {
        Ok(!self.subscriptions(tx)?.ranks.is_empty())
    }

    fn subscribers(
        &mut self,
        tx: &rusqlite::Transaction,
        event: &str,
    ) -> rusqlite::Result<&[String]> {
        Ok(self
            .subscriptions(tx)?
            .by_event
            .get(event)
            .map_or(&[], Vec::as_slice))
    }

    /// Reads, before `periods` (the pending leaderboard deltas, by period key and user)
    /// are applied, the first entries of every board they touch that a `rank.changed`
    /// subscription watches. `None`, having read nothing but the subscriptions (once per
    /// transaction), when no subscription watches any of them.
    pub fn boards_before(
        &mut self,
        tx: &rusqlite::Transaction,
        periods: &HashMap<(String, String), i64>,
    ) -> rusqlite::Result<Option<BoardsBefore>> {
        if periods.is_empty() {
            return Ok(None);
        }
        let ranks = &self.subscriptions(tx)?.ranks;
        if ranks.is_empty() {
            return Ok(None);
        }
        let mut boards = BTreeMap::new();
        for (key, _) in periods.keys() {
            if boards.contains_key(key) {
                continue;
            }
            let Some(kind) = Period::of_key(key) else {
                continue;
            };
            let most = ranks
                .iter()
                .filter(|(_, w)| w.period == kind)
                .map(|(_, w)| w.top)
                .max();
            if let Some(most) = most {
                boards.insert(key.clone(), (kind, most, Vec::new()));
            }
        }
        if boards.is_empty() {
            return Ok(None);
        }
        for (key, (_, most, entries)) in boards.iter_mut() {
            *entries = read::top(tx, key, *most)?;
        }
        Ok(Some(BoardsBefore(boards)))
    }

    /// Once `periods` are applied: compares each board of `before` with what it is now
    /// and queues, per subscription watching it, one `rank.changed` per user whose rank
    /// within the subscription's top N changed. `at_ms` is when the (latest) write of
    /// the transaction was received.
    pub fn queue_ranks(
        &mut self,
        tx: &rusqlite::Transaction,
        before: BoardsBefore,
        periods: &HashMap<(String, String), i64>,
        at_ms: i64,
    ) -> rusqlite::Result<()> {
        let ranks = self.subscriptions(tx)?.ranks.clone();
        for (key, (kind, most, before)) in before.0 {
            let after = read::top(tx, &key, most)?;
            for (subscription, watch) in ranks.iter().filter(|(_, w)| w.period == kind) {
                for change in rank::rank_changes(&before, &after, watch.top) {
                    // Someone who left the top N: their points before plus this write's.
                    let points = change.points.unwrap_or_else(|| {
                        let was = before
                            .iter()
                            .find(|e| e.user_id == change.user_id)
                            .map_or(0, |e| e.points);
                        was + periods
                            .get(&(key.clone(), change.user_id.clone()))
                            .copied()
                            .unwrap_or(0)
                    });
                    let data = rank::data(&change, &key, points, watch.top);
                    self.insert_for(
                        tx,
                        std::slice::from_ref(subscription),
                        RANK_CHANGED,
                        &change.user_id,
                        at_ms,
                        data,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// One delivery of `event` for `user` to every subscriber, its body fixed now so
    /// every retry sends the same bytes.
    fn insert(
        &mut self,
        tx: &rusqlite::Transaction,
        event: &str,
        user: &str,
        at_ms: i64,
        data: Value,
    ) -> rusqlite::Result<()> {
        let subscribers = self.subscribers(tx, event)?.to_vec();
        self.insert_for(tx, &subscribers, event, user, at_ms, data)
    }

    /// One delivery of `event` for `user` to each of `subscribers`.
    fn insert_for(
        &mut self,
        tx: &rusqlite::Transaction,
        subscribers: &[String],
        event: &str,
        user: &str,
        at_ms: i64,
        data: Value,
    ) -> rusqlite::Result<()> {
        let mut insert = tx.prepare_cached(
            "INSERT INTO webhook_deliveries (id, subscription_id, user_id, event, body, status, attempts, next_attempt_ms, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, 0, ?6, ?6)",
        )?;
        for subscription in subscribers {
            let id = uuid::Uuid::now_v7().hyphenated().to_string();
            let body = payload::body(&id, event, at_ms, &data);
            insert.execute(params![id, subscription, user, event, body, at_ms])?;
        }
        Ok(())
    }
}
