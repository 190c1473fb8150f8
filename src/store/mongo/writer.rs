//! The writer task: drains the request channel and commits every event waiting at that
//! moment together (one insert and one counter update for all of them), so concurrent
//! requests share round trips. Each request is answered once MongoDB acknowledged its
//! write at the configured write concern. Between requests it runs recovery passes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::commit::{self, wall_ms};
use super::error::{timed_out, to_store};
use super::{erase, progress, recovery, wallet, Ctx, Mode};
use crate::domain::engine::WalletOp;
use crate::domain::event::NewEvent;
use crate::domain::rules::Rules;
use crate::store::writer_channel::{gather, Request};
use crate::store::{Recorded, StoreError, WalletResult};

/// Upper bound of events in one group commit, so a flood of batches cannot make one
/// commit (and the latency of everyone in it) arbitrarily long.
const MAX_EVENTS_PER_COMMIT: usize = 5_000;
/// A write that takes longer is reported unavailable; it stays well under
/// [`recovery::GRACE_MS`] so recovery never races a write still in progress.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(20);
const RECOVERY_EVERY: Duration = Duration::from_secs(30);

pub enum Command {
    Record {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Recorded, StoreError>>,
    },
    DeleteUser {
        user_id: String,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// Through the writer so that, without transactions, it runs between group commits
    /// rather than inside one's read-modify-write of the user's state.
    SetTimezone {
        user_id: String,
        timezone: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Through the writer so that one instance's operations on a wallet run one after
    /// the other and after the group commits queued before them: only writers of other
    /// instances are left to conflict with, which keeps a burst of spends from
    /// retrying against each other.
    Wallet {
        user_id: String,
        op: WalletOp,
        rules: Arc<Rules>,
        now_ms: i64,
        reply: oneshot::Sender<Result<WalletResult, StoreError>>,
    },
}

impl Request for Command {
    fn size(&self) -> usize {
        match self {
            Command::Record { events, .. } => events.len(),
            Command::DeleteUser { .. } | Command::SetTimezone { .. } | Command::Wallet { .. } => 1,
        }
    }
}

type RecordReply = oneshot::Sender<Result<Recorded, StoreError>>;

/// `recovering`: whether periodic recovery passes are needed (see below).
pub async fn run(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<Command>, mut recovering: bool) {
    let mut recovery =
        tokio::time::interval_at(tokio::time::Instant::now() + RECOVERY_EVERY, RECOVERY_EVERY);
    recovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Unbiased on purpose: under sustained load a request is always ready, and
        // recovery must still get its turn.
        tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else { break };
                process(&ctx, gather(first, &mut rx, MAX_EVENTS_PER_COMMIT)).await;
            }
            _ = recovery.tick(), if recovering => {
                match tokio::time::timeout(WRITE_TIMEOUT * 3, recovery::run(&ctx, wall_ms())).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "mongodb recovery pass failed; retrying later"),
                    Err(_) => tracing::warn!("mongodb recovery pass timed out; retrying later"),
                }
                // With transactions nothing leaves pending batches or erasure markers:
                // they can only come from an earlier run on a standalone server. Once
                // none is left, of any age, later passes would only cost round trips.
                if ctx.mode == Mode::Transactions {
                    recovering = !matches!(recovery::nothing_left(&ctx).await, Ok(true));
                }
            }
        }
    }
}

/// Runs of record requests commit as one group; an erasure runs on its own, in order.
async fn process(ctx: &Ctx, commands: Vec<Command>) {
    let mut group: Vec<(Vec<NewEvent>, RecordReply)> = Vec::new();
    for cmd in commands {
        match cmd {
            Command::Record { events, reply } => group.push((events, reply)),
            Command::DeleteUser { user_id, reply } => {
                record_group(ctx, std::mem::take(&mut group)).await;
                let result = tokio::time::timeout(WRITE_TIMEOUT, erase::delete_user(ctx, &user_id))
                    .await
                    .map_err(|_| timed_out("erasure"))
                    .and_then(|r| r.map_err(to_store));
                if let Err(e) = &result {
                    tracing::error!(error = %e, "mongodb erasure failed");
                }
                let _ = reply.send(result);
            }
            Command::SetTimezone {
                user_id,
                timezone,
                reply,
            } => {
                record_group(ctx, std::mem::take(&mut group)).await;
                let result = tokio::time::timeout(
                    WRITE_TIMEOUT,
                    progress::set_timezone(ctx, &user_id, &timezone),
                )
                .await
                .map_err(|_| timed_out("time zone update"))
                .and_then(|r| r.map_err(to_store));
                if let Err(e) = &result {
                    tracing::error!(error = %e, "mongodb time zone update failed");
                }
                let _ = reply.send(result);
            }
            Command::Wallet {
                user_id,
                op,
                rules,
                now_ms,
                reply,
            } => {
                record_group(ctx, std::mem::take(&mut group)).await;
                let result = tokio::time::timeout(
                    WRITE_TIMEOUT,
                    wallet::op(ctx, &user_id, &op, &rules, now_ms),
                )
                .await
                .map_err(|_| timed_out("wallet operation"))
                .and_then(|r| r.map_err(to_store));
                if let Err(e) = &result {
                    tracing::error!(error = %e, "mongodb wallet operation failed");
                }
                let _ = reply.send(result);
            }
        }
    }
    record_group(ctx, group).await;
}

async fn record_group(ctx: &Ctx, group: Vec<(Vec<NewEvent>, RecordReply)>) {
    if group.is_empty() {
        return;
    }
    let events: usize = group.iter().map(|(events, _)| events.len()).sum();
    metrics::histogram!("store_commit_batch_events").record(events as f64);
    let requests: Vec<&[NewEvent]> = group.iter().map(|(events, _)| events.as_slice()).collect();
    let committed = match tokio::time::timeout(WRITE_TIMEOUT, commit::record(ctx, &requests)).await
    {
        Ok(Ok(c)) => c,
        failed => {
            let err = || match &failed {
                Ok(Err(e)) => to_store(e.clone()),
                _ => timed_out("group commit"),
            };
            tracing::error!(error = %err(), events, "mongodb group commit failed");
            for (_, reply) in group {
                let _ = reply.send(Err(err()));
            }
            return;
        }
    };
    for ((_, reply), recorded) in group.into_iter().zip(committed.recorded) {
        // A dropped receiver is a client that went away; its write still stands.
        let _ = reply.send(Ok(recorded));
    }
    if let Some(applied) = committed.cleanup {
        // Clients have their answers; a failure here only leaves work for recovery.
        match tokio::time::timeout(WRITE_TIMEOUT, commit::finish(ctx, &applied)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "mongodb batch cleanup failed; recovery will finish it")
            }
            Err(_) => tracing::warn!("mongodb batch cleanup timed out; recovery will finish it"),
        }
    }
}
