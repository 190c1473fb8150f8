//! What the API suite cannot show about the MongoDB store: a write cut short by a crash
//! at any step converges after a restart with every point counted exactly once, and
//! concurrent requests share group commits. Needs `TEST_MONGO_URL`
//! (scripts/mongo-test-server.sh); skipped without.
//!
//! The crashes are real: the binary runs with `EVENTTRACKER_CRASH_AT` naming a step of
//! the write path (`src/faults.rs`) and aborts there, as a SIGKILL at that moment would.
//! Which steps exist depends on the server: on a standalone server the store writes
//! through a journal (events inserted pending, counters moved under per-batch guards,
//! the batch retired) and recovery finishes what a crash cut short; on a replica set a
//! write is one transaction, so a crash before its commit leaves nothing. scripts/test.sh
//! runs this file against both and sets `TEST_MONGO_MODE` (`replset` or `standalone`)
//! so that a server of the wrong kind fails the run instead of testing the other path.

use crate::helpers as common;

use std::time::{Duration, Instant};

use common::{
    mongo_url_with_fresh_db, process, report_skip, server_url, spawn_app_with, spawn_process_with,
    Options, TestApp,
};
use serde_json::{json, Value};

const MON: &str = "2026-11-02T10:00:00Z";

async fn app_on(url: &str) -> TestApp {
    spawn_app_with(Options {
        env: vec![("MONGO_URL".into(), url.into())],
        ..Default::default()
    })
    .await
}

/// What the store logs when recovery finished something a crash cut short.
const RECOVERED: &str = "finished writes that were cut short";
/// The recovery grace (60 s) and two passes (30 s apart), with room to spare.
const RECOVERY_WITHIN: Duration = Duration::from_secs(150);

/// The real binary on `url`, after a crash: its log shows when recovery has run.
fn restart_on(url: &str) -> TestApp {
    spawn_process_with(Options {
        env: vec![("MONGO_URL".into(), url.into())],
        ..Default::default()
    })
}

/// The kind of server at `url` (see `common::mongo_server_mode`), checked against
/// `TEST_MONGO_MODE` when that is set.
async fn server_mode(url: &str) -> &'static str {
    let mode = common::mongo_server_mode(url).await;
    if let Ok(want) = std::env::var("TEST_MONGO_MODE") {
        if !want.is_empty() {
            assert_eq!(
                mode, want,
                "TEST_MONGO_URL is not the kind of server TEST_MONGO_MODE says"
            );
        }
    }
    mode
}

/// Runs the real binary on `url` armed to crash at `point`, makes it `act`, and checks
/// that it died there (by a signal, with the crash point's line on stderr unread: the
/// signal itself is the proof, as nothing else in the server aborts).
async fn crash_at<F, Fut>(url: &str, point: &str, act: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env: Vec<(String, String)> = common::base_env(dir.path()).into_iter().collect();
    env.push(("MONGO_URL".into(), url.into()));
    env.push(("EVENTTRACKER_CRASH_AT".into(), point.into()));
    let server = process::start(&env);
    act(server.base.clone()).await;
    let code = tokio::task::spawn_blocking(move || server.wait())
        .await
        .expect("join");
    assert_eq!(code, None, "{point}: the server aborted at the crash point");
}

/// Sends `body` to `path` on a server about to crash: there is no answer to check.
async fn send_unanswered(base: &str, path: &str, body: Value) {
    let sent = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await;
    assert!(
        sent.is_err(),
        "{path}: answered {sent:?} instead of crashing"
    );
}

/// Polls until `user`'s total and every figure below equal their ledger, for at most
/// `RECOVERY_GRACE_MS` plus two recovery passes.
async fn wait_until_consistent(app: &TestApp, user: &str, points: i64, events: usize) {
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let ledger = app.ledger_sum(user).await;
        let total = app.points(user).await;
        if ledger == (points, events) && total == points {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user}: ledger {ledger:?}, total {total}; expected {points} points in {events} events"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn the_batch(user: &str) -> Value {
    json!({"events": [
        {"user_id": user, "event_type": "PURCHASE", "timestamp": MON},
        {"user_id": user, "event_type": "REVIEW", "timestamp": "2026-11-03T10:00:00Z"},
        {"user_id": format!("{user}-2"), "event_type": "LOGIN", "timestamp": MON},
    ]})
}

/// A batch written on `url` after a crash at `point`, and what the store must show.
/// `recovers`: whether the crash leaves a pending batch for recovery to finish (every
/// step but the last, which runs after the client's answer and leaves only the
/// counters' guard ids behind).
async fn converges_after_a_crash_at(url: String, point: &'static str, recovers: bool) {
    // A user with history before the crash.
    let app = app_on(&url).await;
    app.event("u", "LOGIN", json!("2026-11-01T10:00:00Z")).await;
    app.stop().await;

    crash_at(&url, point, |base| async move {
        if recovers {
            send_unanswered(&base, "/v1/events/batch", the_batch("u")).await;
        } else {
            // The batch is retired after its clients have their answers: the crash may
            // come before or after this one is out.
            let _ = reqwest::Client::new()
                .post(format!("{base}/v1/events/batch"))
                .json(&the_batch("u"))
                .send()
                .await;
        }
    })
    .await;

    let app = restart_on(&url);
    if recovers {
        let line = app.wait_for_log(RECOVERED, RECOVERY_WITHIN).await;
        assert!(line.contains("batches=1"), "{point}: {line}");
    }
    wait_until_consistent(&app, "u", 1 + 10 + 5, 3).await;
    wait_until_consistent(&app, "u-2", 1, 1).await;
    let (_, u) = app.get("/v1/users/u/points").await;
    assert_eq!(
        u["by_type"],
        json!({"LOGIN": {"events": 1, "points": 1}, "PURCHASE": {"events": 1, "points": 10}, "REVIEW": {"events": 1, "points": 5}}),
        "{point}"
    );
    let (_, week) = app
        .get("/v1/leaderboard?period=week&at=2026-11-02T00:00:00Z")
        .await;
    assert_eq!(
        week["entries"],
        json!([
            {"rank": 1, "user_id": "u", "points": 15},
            {"rank": 2, "user_id": "u-2", "points": 1},
        ]),
        "{point}"
    );
    // The batch rolled u's day and week over: what the slots held, and the batch's
    // Monday, went to the archives (owed by the state update, so a crash between the
    // two leaves recovery a record of it).
    for (day, points) in [("2026-11-01", 1), ("2026-11-02", 10), ("2026-11-03", 5)] {
        let (_, board) = app
            .get(&format!("/v1/leaderboard?period=day&at={day}T00:00:00Z"))
            .await;
        assert_eq!(
            board["entries"][0]["user_id"], "u",
            "{point} {day}: {board}"
        );
        assert_eq!(
            board["entries"][0]["points"], points,
            "{point} {day}: {board}"
        );
    }
    let (_, earlier) = app
        .get("/v1/leaderboard?period=week&at=2026-11-01T00:00:00Z")
        .await;
    assert_eq!(
        earlier["entries"],
        json!([{"rank": 1, "user_id": "u", "points": 1}]),
        "{point}"
    );
    // The client's retry finds every event stored once.
    let retried = app
        .batch(the_batch("u")["events"].as_array().unwrap().clone())
        .await;
    assert_eq!(retried["duplicates"], 3, "{point}: {retried}");
    // Counters the interrupted batch touched take new writes normally.
    let (status, body) = app
        .event("u", "PURCHASE", json!("2026-11-04T10:00:00Z"))
        .await;
    assert_eq!(status, 201, "{point}: {body}");
    wait_until_consistent(&app, "u", 26, 4).await;
    app.stop().await;

    // Recovery ran once: another restart changes nothing.
    let app = app_on(&url).await;
    wait_until_consistent(&app, "u", 26, 4).await;
    wait_until_consistent(&app, "u-2", 1, 1).await;
    app.stop().await;
}

#[tokio::test]
async fn a_journaled_write_cut_short_at_any_step_converges_after_a_restart() {
    let Some(base) = server_url("TEST_MONGO_URL") else {
        return;
    };
    if server_mode(&base).await != "standalone" {
        report_skip("the journaled write path runs only on a standalone server");
        return;
    }
    // Each step on its own database, all at once: each waits out the recovery grace.
    let runs = [
        ("mongo.journal.after_insert", true),
        ("mongo.journal.after_states", true),
        ("mongo.journal.after_counters", true),
        ("mongo.journal.after_outbox", true),
        ("mongo.journal.after_unpend", false),
    ]
    .map(|(point, recovers)| {
        converges_after_a_crash_at(mongo_url_with_fresh_db(&base), point, recovers)
    });
    futures_util::future::join_all(runs).await;
}

#[tokio::test]
async fn an_erasure_cut_short_completes_after_a_restart() {
    let Some(base) = server_url("TEST_MONGO_URL") else {
        return;
    };
    if server_mode(&base).await != "standalone" {
        report_skip("the journaled erasure runs only on a standalone server");
        return;
    }
    let url = mongo_url_with_fresh_db(&base);
    let app = app_on(&url).await;
    app.batch(vec![
        json!({"user_id": "gone", "event_type": "PURCHASE", "timestamp": MON}),
        json!({"user_id": "gone", "event_type": "LOGIN", "timestamp": "2026-10-01T00:00:00Z"}),
        json!({"user_id": "kept", "event_type": "LOGIN", "timestamp": MON}),
    ])
    .await;
    app.stop().await;

    crash_at(&url, "mongo.erase.after_boards", |base| async move {
        let sent = reqwest::Client::new()
            .delete(format!("{base}/v1/users/gone"))
            .send()
            .await;
        assert!(sent.is_err(), "answered {sent:?} instead of crashing");
    })
    .await;

    let app = restart_on(&url);
    let line = app.wait_for_log(RECOVERED, RECOVERY_WITHIN).await;
    assert!(line.contains("deletions=1"), "{line}");
    wait_until_consistent(&app, "gone", 0, 0).await;
    wait_until_consistent(&app, "kept", 1, 1).await;
    let (_, board) = app.get("/v1/leaderboard?period=all").await;
    assert_eq!(
        board["entries"],
        json!([{"rank": 1, "user_id": "kept", "points": 1}])
    );
    app.stop().await;
}

#[tokio::test]
async fn a_transaction_cut_short_before_its_commit_leaves_nothing() {
    let Some(base) = server_url("TEST_MONGO_URL") else {
        return;
    };
    if server_mode(&base).await != "replset" {
        report_skip("writes are transactions only on a replica set");
        return;
    }
    let url = mongo_url_with_fresh_db(&base);
    crash_at(&url, "mongo.record.before_commit", |base| async move {
        send_unanswered(&base, "/v1/events/batch", the_batch("t")).await;
    })
    .await;

    let app = app_on(&url).await;
    assert_eq!(
        app.ledger_sum("t").await,
        (0, 0),
        "nothing of it was stored"
    );
    assert_eq!(app.points("t").await, 0);
    // The dead process's transaction holds its documents until the server expires it
    // (docs/reliability.md): the client retries, as it would after no answer.
    let deadline = Instant::now() + Duration::from_secs(150);
    let created = loop {
        let r = app
            .client
            .post(app.url("/v1/events/batch"))
            .json(&the_batch("t"))
            .send()
            .await
            .expect("request");
        if r.status() == 200 {
            break r.json::<Value>().await.expect("JSON");
        }
        assert_eq!(r.status(), 503, "only 503 while the old transaction holds");
        assert!(Instant::now() < deadline, "still refused after 150 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(created["created"], 3, "{created}");
    wait_until_consistent(&app, "t", 15, 2).await;
    app.stop().await;
}

#[tokio::test]
async fn concurrent_requests_share_commits_and_count_once() {
    let Some(base) = server_url("TEST_MONGO_URL") else {
        return;
    };
    let url = mongo_url_with_fresh_db(&base);
    // Its own process, so that its commit counter counts only its own commits.
    let app = restart_on(&url);
    let commits = || async {
        let text = app.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix("store_commit_batch_events_count "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = commits().await;
    const N: usize = 100;
    let app_ref = &app;
    let sends = (0..N).map(|i| async move {
        let user = format!("c{}", i % 10);
        app_ref
            .event(&user, "LOGIN", json!(1_700_000_000 + i as i64))
            .await
    });
    let results = futures_util::future::join_all(sends).await;
    assert!(results.iter().all(|(s, _)| *s == 201), "all created");
    // The same event sent many times at once: one creation, every other answer points at it.
    let same = (0..20).map(|_| app.event("dup", "PURCHASE", json!(MON)));
    let answers = futures_util::future::join_all(same).await;
    let created: Vec<_> = answers.iter().filter(|(s, _)| *s == 201).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let id = &created[0].1["id"];
    assert!(answers
        .iter()
        .all(|(s, body)| *s == 201 || (*s == 409 && &body["id"] == id)));
    let after = commits().await;
    // One commit per request would be 120.
    assert!(
        after - before < (N / 2) as f64,
        "{} commits for {} requests",
        after - before,
        N + 20
    );
    for u in 0..10 {
        wait_until_consistent(&app, &format!("c{u}"), 10, 10).await;
    }
    wait_until_consistent(&app, "dup", 10, 1).await;
    app.stop().await;
}
