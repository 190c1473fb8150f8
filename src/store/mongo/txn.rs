//! Running a unit of work in a multi-document transaction with the retries the
//! MongoDB transaction protocol calls for.

use futures_util::future::BoxFuture;
use mongodb::error::{
    Error, Result, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
};
use mongodb::ClientSession;

use super::error::{reply_error, ReplyError};
use super::Ctx;

const MAX_TRANSACTION_ATTEMPTS: u32 = 4;
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
    let mut attempt = 0;
    loop {
        attempt += 1;
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
            Err(e) if attempt < MAX_TRANSACTION_ATTEMPTS && worth_retrying(&e) => continue,
            other => return other,
        }
    }
}

async fn commit(session: &mut ClientSession) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match session.commit_transaction().await {
            Err(e)
                if attempt < MAX_TRANSACTION_ATTEMPTS
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
