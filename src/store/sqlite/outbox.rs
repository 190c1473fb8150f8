//! The webhook outbox: deliveries queued in the transaction that stores the events, so
//! a committed event always has its notifications and a rolled-back one never does.
//!
//! - `points.changed`: one delivery per subscription, per user, per write (a request or
//!   a batch); writes that award no points (capped, duplicates) notify nothing.
//! - `cap.reached`: one delivery per subscription when an event uses up what a cap
//!   allows a user in a period; later events of that period earn nothing and send
//!   nothing more.

use std::collections::HashMap;

use rusqlite::params;
use serde_json::Value;

use crate::domain::event::NewEvent;
use crate::store::RecordOutcome;
use crate::webhooks::payload;
pub use crate::webhooks::payload::CapReached;
use crate::webhooks::{CAP_REACHED, POINTS_CHANGED};

#[derive(Default)]
pub struct Outbox {
    /// Subscription ids by notification, read once per transaction.
    subscriptions: Option<HashMap<String, Vec<String>>>,
    /// Each notified user's total as of the writes so far in this transaction (the
    /// counters themselves are only written at the end, see the writer's `Deltas`).
    pub totals: HashMap<String, i64>,
}

impl Outbox {
    pub fn queue(
        &mut self,
        tx: &rusqlite::Transaction,
        events: &[NewEvent],
        outcomes: &[RecordOutcome],
    ) -> rusqlite::Result<()> {
        // (user, delta, event ids, received at), users in the order of their first event.
        let mut changes: Vec<(&str, i64, Vec<&str>, i64)> = Vec::new();
        for (e, outcome) in events.iter().zip(outcomes) {
            let RecordOutcome::Created { id, points } = outcome else {
                continue;
            };
            let i = match changes.iter().position(|c| c.0 == e.user_id) {
                Some(i) => i,
                None => {
                    changes.push((&e.user_id, 0, Vec::new(), e.received_ms));
                    changes.len() - 1
                }
            };
            changes[i].1 += points;
            changes[i].2.push(id);
        }
        changes.retain(|c| c.1 != 0);
        if changes.is_empty() || self.subscribers(tx, POINTS_CHANGED)?.is_empty() {
            return Ok(());
        }
        for (user, delta, event_ids, at) in changes {
            let total = match self.totals.get(user) {
                Some(t) => t + delta,
                // This write's own points are still in the pending deltas.
                None => {
                    tx.prepare_cached(
                        "SELECT COALESCE(SUM(points), 0) FROM type_totals WHERE user_id = ?1",
                    )?
                    .query_row([user], |r| r.get::<_, i64>(0))?
                        + delta
                }
            };
            self.totals.insert(user.to_owned(), total);
            let data = payload::points_changed(user, total, delta, &event_ids);
            self.insert(tx, POINTS_CHANGED, user, at, data)?;
        }
        Ok(())
    }

    pub fn queue_caps(
        &mut self,
        tx: &rusqlite::Transaction,
        reached: &[CapReached],
    ) -> rusqlite::Result<()> {
        if reached.is_empty() || self.subscribers(tx, CAP_REACHED)?.is_empty() {
            return Ok(());
        }
        for r in reached {
            self.insert(tx, CAP_REACHED, &r.user_id, r.received_ms, r.data())?;
        }
        Ok(())
    }

    fn subscribers(
        &mut self,
        tx: &rusqlite::Transaction,
        event: &str,
    ) -> rusqlite::Result<&[String]> {
        if self.subscriptions.is_none() {
            let mut by_event: HashMap<String, Vec<String>> = HashMap::new();
            let mut stmt = tx.prepare_cached("SELECT id, events FROM webhook_subscriptions")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, events) = row?;
                let events: Vec<String> = serde_json::from_str(&events).unwrap_or_default();
                for e in events {
                    by_event.entry(e).or_default().push(id.clone());
                }
            }
            self.subscriptions = Some(by_event);
        }
        Ok(self
            .subscriptions
            .as_ref()
            .and_then(|m| m.get(event))
            .map_or(&[], Vec::as_slice))
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
