//! Mapping driver failures to the store's two kinds: "retry later" (503) or a bug (500).

use anyhow::anyhow;
use mongodb::error::{
    Error, ErrorKind, WriteFailure, RETRYABLE_ERROR, RETRYABLE_WRITE_ERROR,
    SYSTEM_OVERLOADED_ERROR, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
};

use crate::store::StoreError;

/// Server codes that a later retry may outlive: unreachable hosts, elections, shutdowns,
/// time limits, lock and write conflicts.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    24,    // LockTimeout
    46,    // LockBusy
    50,    // MaxTimeMSExpired
    64,    // WriteConcernFailed (wtimeout)
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    112,   // WriteConflict
    133,   // FailedToSatisfyReadPreference
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

pub const DUPLICATE_KEY: i32 = 11000;

/// A failure found in a command reply rather than raised by the driver.
#[derive(Debug, Clone)]
pub struct ReplyError {
    pub code: Option<i32>,
    pub message: String,
}

pub fn reply_error(code: Option<i32>, message: impl Into<String>) -> Error {
    Error::custom(ReplyError {
        code,
        message: message.into(),
    })
}

pub fn is_transient(e: &Error) -> bool {
    let labelled = [
        RETRYABLE_WRITE_ERROR,
        RETRYABLE_ERROR,
        TRANSIENT_TRANSACTION_ERROR,
        UNKNOWN_TRANSACTION_COMMIT_RESULT,
        SYSTEM_OVERLOADED_ERROR,
    ]
    .iter()
    .any(|l| e.contains_label(l));
    let transient_code = |c: i32| TRANSIENT_CODES.contains(&c);
    labelled
        || match &*e.kind {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown => true,
            ErrorKind::Command(c) => transient_code(c.code),
            ErrorKind::Write(WriteFailure::WriteConcernError(w)) => transient_code(w.code),
            ErrorKind::InsertMany(m) => m
                .write_concern_error
                .as_ref()
                .is_some_and(|w| transient_code(w.code)),
            ErrorKind::Custom(_) => e
                .get_custom::<ReplyError>()
                .and_then(|r| r.code)
                .is_some_and(transient_code),
            _ => false,
        }
}

pub fn to_store(e: Error) -> StoreError {
    let detail = match e.get_custom::<ReplyError>() {
        Some(r) => anyhow!("mongodb: {}", r.message),
        None => anyhow!("mongodb: {e}"),
    };
    if is_transient(&e) {
        StoreError::Unavailable(detail)
    } else {
        StoreError::Internal(detail)
    }
}

pub fn timed_out(what: &str) -> StoreError {
    StoreError::Unavailable(anyhow!("mongodb: {what} timed out"))
}
