//! SQLite counter checkpoints (src/store/sqlite/pending.rs): a commit stores only its
//! ledger rows, and the counters it changes are written later, in bulk. Whatever
//! moment the process dies at, the next start counts the ledger's tail past the last
//! checkpoint again, so every total and board equals the ledger. These run the real
//! binary and kill it: with SIGKILL right after acknowledged writes, and at the
//! checkpoint's crash point (`EVENTTRACKER_CRASH_AT`, src/faults.rs), that is with
//! the checkpoint's rows written and its transaction not committed.

use crate::helpers as common;

use std::collections::BTreeMap;

use common::{process, spawn_app_with, Options, TestApp};
use serde_json::{json, Value};

/// 2026-11-02 (a Monday) 10:00 UTC, in seconds.
const T0: i64 = 1_793_613_600;
const DAY: i64 = 86_400;

/// One batch over a few users and days, and what each user's points must then be
/// (fixture rules: LOGIN 1, PURCHASE 10).
fn batch() -> (Vec<Value>, BTreeMap<String, i64>) {
    let mut events = Vec::new();
    let mut want = BTreeMap::new();
    for i in 0..300_i64 {
        let user = format!("ck{}", i % 7);
        let (ty, points) = if i % 3 == 0 {
            ("PURCHASE", 10)
        } else {
            ("LOGIN", 1)
        };
        events
            .push(json!({"user_id": user, "event_type": ty, "timestamp": T0 + (i % 9) * DAY + i}));
        *want.entry(user).or_insert(0) += points;
    }
    (events, want)
}

fn sqlite_only() -> bool {
    !common::backend_has("mongo")
}

fn server_env(dir: &std::path::Path, crash_at: Option<&str>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = common::base_env(dir).into_iter().collect();
    env.retain(|(k, _)| !k.starts_with("REDIS"));
    if let Some(point) = crash_at {
        env.push(("EVENTTRACKER_CRASH_AT".into(), point.into()));
    }
    env
}

async fn post_batch(base: &str, events: &[Value]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/events/batch"))
        .json(&json!({"events": events}))
        .send()
        .await
        .expect("answered");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every user's total equals `want`, and so do the all-time board and each day's and
/// the week's boards (checked against the ledger of each user, read through history).
async fn check(app: &TestApp, want: &BTreeMap<String, i64>) {
    for (user, points) in want {
        assert_eq!(app.points(user).await, *points, "{user}");
        assert_eq!(app.ledger_sum(user).await.0, *points, "{user}: ledger");
    }
    let (_, board) = app.get("/v1/leaderboard?period=all&limit=100").await;
    let shown: BTreeMap<String, i64> = common::board_entries(&board).into_iter().collect();
    assert_eq!(&shown, want, "all-time board");
    let mut week = 0;
    for d in 0..9 {
        let at = chrono::DateTime::from_timestamp(T0 + d * DAY, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ");
        let (_, board) = app
            .get(&format!("/v1/leaderboard?period=day&at={at}&limit=100"))
            .await;
        let day = board_sum(&board);
        let expected: i64 = batch()
            .0
            .iter()
            .filter(|e| (e["timestamp"].as_i64().unwrap() - T0).div_euclid(DAY) == d)
            .map(|e| if e["event_type"] == "PURCHASE" { 10 } else { 1 })
            .sum();
        assert_eq!(day, expected, "day {d}");
        if d < 7 {
            week += day;
        }
    }
    let at = chrono::DateTime::from_timestamp(T0, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ");
    let (_, board) = app
        .get(&format!("/v1/leaderboard?period=week&at={at}&limit=100"))
        .await;
    assert_eq!(board_sum(&board), week, "week board");
}

fn board_sum(board: &Value) -> i64 {
    common::board_entries(board).iter().map(|(_, p)| p).sum()
}

/// The same data folder, in-process and without a crash point.
async fn restart(dir: std::sync::Arc<tempfile::TempDir>) -> TestApp {
    spawn_app_with(Options {
        env: Vec::new(),
        dir: Some(dir),
    })
    .await
}

#[tokio::test]
async fn acknowledged_writes_whose_counters_were_held_survive_a_sigkill() {
    if !sqlite_only() {
        return;
    }
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = process::start(&server_env(dir.path(), None));
    let (events, want) = batch();
    let (status, body) = post_batch(&server.base, &events).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], 300, "{body}");
    // At once, before the writer's next checkpoint is due.
    server.signal("KILL");
    assert_eq!(server.wait(), None, "killed");
    check(&restart(dir).await, &want).await;
}

#[tokio::test]
async fn a_kill_during_a_checkpoint_loses_and_doubles_nothing() {
    if !sqlite_only() {
        return;
    }
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let point = "sqlite.checkpoint.before_commit";
    let server = process::start(&server_env(dir.path(), Some(point)));
    let (events, want) = batch();
    // Acknowledged, so stored without a checkpoint: one would have crashed it.
    let (status, body) = post_batch(&server.base, &events).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], 300, "{body}");
    // A board read needs the counters caught up: it asks for the checkpoint, which
    // writes the held rows and dies before committing them.
    let read = reqwest::get(format!("{}/v1/leaderboard?period=all", server.base)).await;
    assert!(read.is_err(), "answered {read:?} instead of crashing");
    assert_eq!(server.wait(), None, "aborted at {point}");
    let app = restart(dir).await;
    check(&app, &want).await;
    // The same events again are duplicates, counted nowhere a second time.
    let (status, body) = app
        .post("/v1/events/batch", json!({"events": events}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicates"], 300, "{body}");
    check(&app, &want).await;
}
