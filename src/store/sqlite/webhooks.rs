//! Webhook subscriptions and their delivery queue. The writer thread queues deliveries
//! (see `writer::Outbox`); everything here is rare or small (admin actions, the worker
//! recording an attempt) and runs on a connection of its own, like rules activation.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::webhooks::{
    AttemptResult, Delivery, DeliveryStatus, DueDelivery, NewSubscription, Replay, Subscription,
};

/// Creates the subscription, or updates the secret, events and rank of the one with this URL.
pub fn upsert(
    conn: &mut Connection,
    new: &NewSubscription,
    now_ms: i64,
) -> rusqlite::Result<Subscription> {
    let events = serde_json::to_string(&new.events).unwrap_or_else(|_| "[]".into());
    let rank = new
        .rank
        .as_ref()
        .and_then(|r| serde_json::to_string(r).ok());
    let id = uuid::Uuid::now_v7().simple().to_string();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO webhook_subscriptions (id, url, secret, events, rank, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (url) DO UPDATE
         SET secret = excluded.secret, events = excluded.events, rank = excluded.rank",
        params![id, new.url, new.secret, events, rank, now_ms],
    )?;
    let sub = tx.query_row(
        &format!("{SELECT_SUBSCRIPTION} WHERE url = ?1"),
        [&new.url],
        subscription,
    )?;
    tx.commit()?;
    Ok(sub)
}

const SELECT_SUBSCRIPTION: &str =
    "SELECT id, url, secret, events, created_ms, rank FROM webhook_subscriptions";

fn subscription(r: &Row) -> rusqlite::Result<Subscription> {
    let events: String = r.get(3)?;
    let rank: Option<String> = r.get(5)?;
    Ok(Subscription {
        id: r.get(0)?,
        url: r.get(1)?,
        secret: r.get(2)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        rank: rank.and_then(|r| serde_json::from_str(&r).ok()),
        created_ms: r.get(4)?,
    })
}

pub fn list(c: &Connection) -> rusqlite::Result<Vec<Subscription>> {
    let mut stmt = c.prepare_cached(&format!("{SELECT_SUBSCRIPTION} ORDER BY created_ms, id"))?;
    let rows = stmt.query_map([], subscription)?;
    rows.collect()
}

/// Removes the subscription and its delivery log; pending deliveries are dropped.
pub fn delete(conn: &mut Connection, id: &str) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute("DELETE FROM webhook_subscriptions WHERE id = ?1", [id])?;
    tx.execute(
        "DELETE FROM webhook_deliveries WHERE subscription_id = ?1",
        [id],
    )?;
    tx.commit()?;
    Ok(n > 0)
}

const DELIVERY_COLUMNS: &str = "d.id, d.subscription_id, d.user_id, d.event, d.body, d.status, d.attempts, d.next_attempt_ms, d.last_status, d.last_error, d.created_ms, d.updated_ms";

fn delivery(r: &Row) -> rusqlite::Result<Delivery> {
    let status: String = r.get(5)?;
    Ok(Delivery {
        id: r.get(0)?,
        subscription_id: r.get(1)?,
        user_id: r.get(2)?,
        event: r.get(3)?,
        body: r.get(4)?,
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Failed),
        attempts: r.get(6)?,
        next_attempt_ms: r.get(7)?,
        last_status: r.get(8)?,
        last_error: r.get(9)?,
        created_ms: r.get(10)?,
        updated_ms: r.get(11)?,
    })
}

/// The subscription's deliveries, newest first; `None` when there is no such subscription.
pub fn deliveries(
    c: &Connection,
    subscription_id: &str,
    status: Option<DeliveryStatus>,
    limit: u32,
) -> rusqlite::Result<Option<Vec<Delivery>>> {
    let exists = c
        .query_row(
            "SELECT 1 FROM webhook_subscriptions WHERE id = ?1",
            [subscription_id],
            |_| Ok(()),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.subscription_id = ?1 AND (?2 IS NULL OR d.status = ?2)
         ORDER BY d.seq DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![subscription_id, status.map(DeliveryStatus::as_str), limit],
        delivery,
    )?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map(Some)
}

/// Pending deliveries due at `now_ms` that are first in their queue: a subscription's
/// deliveries for one user go out one at a time, in the order they were queued.
pub fn due(c: &Connection, now_ms: i64, limit: u32) -> rusqlite::Result<Vec<DueDelivery>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS}, s.url, s.secret FROM webhook_deliveries d
         JOIN webhook_subscriptions s ON s.id = d.subscription_id
         WHERE d.status = 'pending' AND d.next_attempt_ms <= ?1
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                           WHERE e.subscription_id = d.subscription_id AND e.user_id = d.user_id
                             AND e.status = 'pending' AND e.seq < d.seq)
         ORDER BY d.seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![now_ms, limit], |r| {
        Ok(DueDelivery {
            delivery: delivery(r)?,
            url: r.get(12)?,
            secret: r.get(13)?,
        })
    })?;
    rows.collect()
}

/// Records one attempt of a pending delivery.
pub fn record_attempt(
    conn: &mut Connection,
    id: &str,
    result: &AttemptResult,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let (status, next, last_status, last_error) = result.columns();
    conn.execute(
        "UPDATE webhook_deliveries SET status = ?2, next_attempt_ms = ?3, last_status = ?4,
             last_error = ?5, attempts = attempts + 1, updated_ms = ?6
         WHERE id = ?1 AND status = 'pending'",
        params![id, status, next, last_status, last_error, now_ms],
    )?;
    Ok(())
}

/// Deletes delivered and failed deliveries last updated before `before_ms`, in chunks
/// so that the writer is never kept waiting long.
pub fn prune(conn: &mut Connection, before_ms: i64) -> rusqlite::Result<u64> {
    let mut total = 0;
    loop {
        let n = conn.execute(
            "DELETE FROM webhook_deliveries WHERE rowid IN (
                 SELECT rowid FROM webhook_deliveries
                 WHERE status != 'pending' AND updated_ms < ?1 LIMIT 5000)",
            [before_ms],
        )?;
        total += n as u64;
        if n < 5000 {
            return Ok(total);
        }
    }
}

/// Queues the listed deliveries (or, without a list, every failed one) of the
/// subscription again with a fresh set of attempts; pending ones are left as they are.
/// `None` without such a subscription.
pub fn replay(
    conn: &mut Connection,
    subscription_id: &str,
    ids: Option<Vec<String>>,
    now_ms: i64,
) -> rusqlite::Result<Option<Replay>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let exists = tx
        .query_row(
            "SELECT 1 FROM webhook_subscriptions WHERE id = ?1",
            [subscription_id],
            |_| Ok(()),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    let ids = match ids {
        Some(ids) => ids,
        None => {
            let mut stmt = tx.prepare(
                "SELECT id FROM webhook_deliveries
                 WHERE subscription_id = ?1 AND status = 'failed' ORDER BY seq",
            )?;
            let rows = stmt.query_map([subscription_id], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()?
        }
    };
    let mut report = Replay::default();
    for id in ids {
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM webhook_deliveries WHERE id = ?1 AND subscription_id = ?2",
                params![id, subscription_id],
                |r| r.get(0),
            )
            .optional()?;
        match status.as_deref() {
            None => report.not_found.push(id),
            Some("pending") => report.already_pending.push(id),
            Some(_) => {
                tx.execute(
                    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0,
                         next_attempt_ms = ?2, updated_ms = ?2 WHERE id = ?1",
                    params![id, now_ms],
                )?;
                report.queued.push(id);
            }
        }
    }
    tx.commit()?;
    Ok(Some(report))
}
