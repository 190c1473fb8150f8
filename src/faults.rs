//! Named crash points in the write paths, so that tests can crash the real binary at an
//! exact step of a write, instead of staging by hand the state a crash would leave
//! (which silently stops testing anything once the storage layout changes).
//!
//! `EVENTTRACKER_CRASH_AT=<point>` makes `eventtracker serve` abort the process, as a
//! SIGKILL would, the first time a write reaches that point. It is honoured only with
//! `APP_ENV=test` and refused otherwise, so a stray variable cannot take production
//! down. The in-process test server never arms it (it would abort the test runner).

use std::sync::OnceLock;

/// Every crash point, with the step it stands after. A name not listed is refused.
pub const POINTS: &[(&str, &str)] = &[
    (
        "mongo.record.before_commit",
        "MongoDB with transactions: the write's transaction is complete but not committed",
    ),
    (
        "mongo.journal.after_insert",
        "MongoDB standalone: the events are inserted, marked pending; no counter moved",
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

/// Arms the point named by `EVENTTRACKER_CRASH_AT`, if set. `app_env` is the configured
/// `APP_ENV`; the error names the variable.
pub fn arm_from_env(app_env: &str) -> anyhow::Result<()> {
    let Ok(name) = std::env::var(VAR) else {
        return Ok(());
    };
    if name.is_empty() {
        return Ok(());
    }
    if app_env != "test" {
        anyhow::bail!("{VAR} crashes the server on purpose and is honoured only with APP_ENV=test");
    }
    let Some((point, _)) = POINTS.iter().find(|(p, _)| *p == name) else {
        let known: Vec<&str> = POINTS.iter().map(|(p, _)| *p).collect();
        anyhow::bail!(
            "{VAR}: unknown crash point {name:?}; known: {}",
            known.join(", ")
        );
    };
    let _ = ARMED.set(point);
    tracing::warn!(
        point,
        "{VAR}: the server aborts when a write reaches this point"
    );
    Ok(())
}

/// Aborts the process here when `point` is the armed one.
pub fn crash_point(point: &'static str) {
    if ARMED.get() == Some(&point) {
        eprintln!("{VAR}: crashing at {point}");
        std::process::abort();
    }
}
