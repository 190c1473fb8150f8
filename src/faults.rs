//! Named crash points in the write paths, so that tests can crash the real binary at an
//! exact step of a write, instead of staging by hand the state a crash would leave
//! (which silently stops testing anything once the storage layout changes).
//!
//! `EVENTTRACKER_CRASH_AT=<point>` makes `eventtracker serve` abort the process, as a
//! SIGKILL would, the first time a write reaches that point. It is honoured only with
//! `APP_ENV=test` and refused otherwise, so a stray variable cannot take production
//! down. The in-process test server never arms it (it would abort the test runner).

use std::sync::OnceLock;

use crate::config::{AppEnv, ConfigError, Vars};

/// Every crash point, with the step it stands after. A name not listed is refused.
pub const POINTS: &[(&str, &str)] = &[
    (
        "sqlite.checkpoint.before_commit",
        "SQLite: a checkpoint wrote the held counter changes; its transaction is not committed",
    ),
    (
        "mongo.record.before_commit",
        "MongoDB with transactions: the write's transaction is complete but not committed",
    ),
    (
        "mongo.journal.after_insert",
        "MongoDB standalone: the events are inserted, marked pending; no counter moved",
    ),
    (
        "mongo.journal.after_states",
        "MongoDB standalone: the users' state documents moved (recording what the batch owes the period archives); no archive moved",
    ),
    (
        "mongo.journal.after_counters",
        "MongoDB standalone: the counters moved (guarded by the batch); no delivery queued",
    ),
    (
        "mongo.journal.after_outbox",
        "MongoDB standalone: the webhook deliveries are queued; the batch is not retired",
    ),
    (
        "mongo.journal.after_unpend",
        "MongoDB standalone: the events are no longer pending; the counters' guards remain",
    ),
    (
        "mongo.erase.after_boards",
        "MongoDB standalone: an erasure removed the user's leaderboard entries, nothing else",
    ),
];

pub const VAR: &str = "EVENTTRACKER_CRASH_AT";

static ARMED: OnceLock<&'static str> = OnceLock::new();

/// The crash point `EVENTTRACKER_CRASH_AT` names, checked: refused outside
/// `APP_ENV=test` and when it names no point.
pub fn from_vars(vars: &Vars, app_env: AppEnv) -> Result<Option<&'static str>, ConfigError> {
    let Some(name) = vars.get(VAR) else {
        return Ok(None);
    };
    if app_env != AppEnv::Test {
        return Err(ConfigError::new(
            VAR,
            "crashes the server on purpose and is honoured only with APP_ENV=test",
        ));
    }
    match POINTS.iter().find(|(p, _)| *p == name) {
        Some((point, _)) => Ok(Some(point)),
        None => {
            let known: Vec<&str> = POINTS.iter().map(|(p, _)| *p).collect();
            Err(ConfigError::new(
                VAR,
                format!("unknown crash point {name:?}; known: {}", known.join(", ")),
            ))
        }
    }
}

/// Makes `point` abort the process when a write reaches it. Only `serve` arms one:
/// the in-process test server must not abort the test runner.
pub fn arm(point: &'static str) {
    let _ = ARMED.set(point);
    tracing::warn!(
        point,
        "{VAR}: the server aborts when a write reaches this point"
    );
}

/// Aborts the process here when `point` is the armed one.
pub fn crash_point(point: &'static str) {
    if ARMED.get() == Some(&point) {
        eprintln!("{VAR}: crashing at {point}");
        std::process::abort();
    }
}
