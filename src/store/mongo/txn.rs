//! Running a unit of work in a multi-document transaction with the retries the
//! MongoDB transaction protocol calls for.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use mongodb::error::{
    Error, Result, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
};
use mongodb::ClientSession;

use super::error::{reply_error, ReplyError};
use super::Ctx;

/// Attempts at a commit whose outcome is unknown (the commit itself is retried).
const MAX_COMMIT_ATTEMPTS: u32 = 4;
/// A transaction that failed transiently is retried until this much time has gone. The
/// usual cause is another instance's group commit writing the same user's counters at
/// the same moment: with several instances on hot users that happens again and again,
/// so a fixed small number of attempts turned it into 503s. The writer's own deadline
/// (20 s) bounds a group in any case.
const RETRY_FOR: Duration = Duration::from_secs(10);
/// Pause before the first retry; it doubles up to [`MAX_BACKOFF`], each pause drawn at
/// random from its upper half so that two writers that collided stop colliding.
const FIRST_BACKOFF: Duration = Duration::from_millis(4);
const MAX_BACKOFF: Duration = Duration::from_millis(256);
/// Code reported when a transaction lost a race it can win on a retry.
const WRITE_CONFLICT: i32 = 112;

/// Runs `body` in a transaction, retrying the whole of it on transient failures.
/// `args` is passed back to `body` so the future may borrow from it.
pub async fn in_transaction<A: Sync, T>(
    ctx: &Ctx,
    args: &A,
    body: impl for<'s> Fn(&'s mut ClientSession, &'s A) -> BoxFuture<'s, Result<T>>,
) -> Result<T> {
    let mut session = ctx.client.start_session().await?;
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        session
            .start_transaction()
            .with_options(ctx.transaction.clone())
            .await?;
        let result = match body(&mut session, args).await {
            Ok(value) => commit(&mut session).await.map(|()| value),
            Err(e) => {
                // The server may have aborted it already; either way it is gone.
                let _ = session.abort_transaction().await;
                Err(e)
            }
        };
        match result {
            Err(e) if worth_retrying(&e) && started.elapsed() < RETRY_FOR => {
                metrics::counter!("store_transaction_retries_total").increment(1);
                tokio::time::sleep(jittered(backoff)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

/// A pause between `pause / 2` and `pause`.
fn jittered(pause: Duration) -> Duration {
    let random = RandomState::new().build_hasher().finish();
    let half = pause / 2;
    half + Duration::from_nanos(random % (half.as_nanos() as u64 + 1))
}

async fn commit(session: &mut ClientSession) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match session.commit_transaction().await {
            Err(e)
                if attempt < MAX_COMMIT_ATTEMPTS
                    && e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) =>
            {
                continue
            }
            other => return other,
        }
    }
}

fn worth_retrying(e: &Error) -> bool {
    e.contains_label(TRANSIENT_TRANSACTION_ERROR)
        || e.get_custom::<ReplyError>()
            .is_some_and(|r| r.code == Some(WRITE_CONFLICT))
}

pub fn conflict(what: &str) -> Error {
    reply_error(
        Some(WRITE_CONFLICT),
        format!("{what}; the transaction is retried"),
    )
}
