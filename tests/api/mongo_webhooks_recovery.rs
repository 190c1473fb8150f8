//! Webhook deliveries of MongoDB writes cut short by a crash: recovery queues the
//! notifications of the batches it finishes, and queues them once even when the crash
//! came after they were stored. The crashes are real (`EVENTTRACKER_CRASH_AT`, as in
//! mongo_recovery.rs). Needs `TEST_MONGO_URL`; the journaled steps run on a standalone
//! server, the transaction's on a replica set.

use crate::helpers as common;

use std::time::{Duration, Instant};

use common::{
    mongo_url_with_fresh_db, process, server_url, spawn_app_with, spawn_process_with, Options,
    TestApp,
};
use serde_json::{json, Value};

/// REVIEW reaches its weekly cap with one event, so the batch also sends `cap.reached`.
const RULES: &str = "events:
  - {name: PURCHASE, point: 10}
  - {name: REVIEW, point: 5, cap: {period: week, max_points: 5}}
";

fn env(url: &str, rules: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("MONGO_URL".into(), url.into()),
        ("EVENTS_POINTS_PATH".into(), rules.display().to_string()),
        // Attempts (to a closed port) wait long between tries: the log stays put.
        ("WEBHOOK_RETRY_BASE_MS".into(), "600000".into()),
        // The subscription is on loopback, refused by default.
        ("WEBHOOK_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
    ]
}

async fn app_on(url: &str, rules: &std::path::Path) -> TestApp {
    spawn_app_with(Options {
        env: env(url, rules),
        ..Default::default()
    })
    .await
}

/// The subscription's log as (type, data), oldest first.
async fn log(app: &TestApp, sub: &str) -> Vec<(String, Value)> {
    let (status, body) = app.get(&format!("/v1/webhooks/{sub}/deliveries")).await;
    assert_eq!(status, 200, "{body}");
    let mut rows: Vec<(String, Value)> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| {
            (
                d["event"].as_str().unwrap_or_default().to_owned(),
                d["payload"]["data"].clone(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

/// What the batch's notifications must be, given the stored events' ids.
async fn expected_log(app: &TestApp) -> Vec<(String, Value)> {
    let (_, history) = app.get("/v1/users/p/events").await;
    let id_of = |t: &str| {
        history["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|e| e["event_type"] == t)
            .map(|e| e["id"].clone())
            .unwrap_or_else(|| panic!("no {t} in {history}"))
    };
    vec![
        (
            "points.changed".to_owned(),
            json!({"user_id": "p", "points": 15, "delta": 15, "event_ids": [id_of("PURCHASE"), id_of("REVIEW")]}),
        ),
        (
            "cap.reached".to_owned(),
            json!({"user_id": "p", "event_type": "REVIEW", "period": "week:2026-W45",
                   "cap": {"period": "week", "max_points": 5}, "event_id": id_of("REVIEW")}),
        ),
    ]
}

/// Subscribes on `url`, crashes the real binary at `point` during a batch for user `p`,
/// restarts it and returns it with the subscription id once `p`'s total has settled:
/// 15 when recovery finished the batch (its log says so), 0 when it was lost whole.
async fn crash_during_a_batch(
    url: &str,
    rules: &std::path::Path,
    point: &str,
    settled: i64,
) -> (TestApp, String) {
    let app = app_on(url, rules).await;
    let (status, body) = app
        .post(
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "secret": "whsec_0123456789abcdef",
                   "events": ["points.changed", "cap.reached"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sub = body["id"].as_str().expect("id").to_owned();
    app.stop().await;

    let dir = tempfile::tempdir().expect("temp dir");
    let mut full: Vec<(String, String)> = common::base_env(dir.path()).into_iter().collect();
    full.extend(env(url, rules));
    full.push(("EVENTTRACKER_CRASH_AT".into(), point.into()));
    let server = process::start(&full);
    let sent = reqwest::Client::new()
        .post(format!("{}/v1/events/batch", server.base))
        .json(&json!({"events": [
            {"user_id": "p", "event_type": "PURCHASE", "timestamp": "2026-11-02T10:00:00Z"},
            {"user_id": "p", "event_type": "REVIEW", "timestamp": "2026-11-02T10:00:00Z"},
        ]}))
        .send()
        .await;
    assert!(
        sent.is_err(),
        "{point}: answered {sent:?} instead of crashing"
    );
    let code = tokio::task::spawn_blocking(move || server.wait())
        .await
        .expect("join");
    assert_eq!(code, None, "{point}: the server aborted at the crash point");

    // The real binary again, whose log shows when recovery has run.
    let app = spawn_process_with(Options {
        env: env(url, rules),
        ..Default::default()
    });
    if settled != 0 {
        let line = app
            .wait_for_log(
                "finished writes that were cut short",
                Duration::from_secs(150),
            )
            .await;
        assert!(line.contains("batches=1"), "{point}: {line}");
    }
    let deadline = Instant::now() + Duration::from_secs(150);
    while app.points("p").await != settled || app.ledger_sum("p").await.0 != settled {
        assert!(
            Instant::now() < deadline,
            "{point}: p never settled at {settled}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (app, sub)
}

async fn notifies_once_after_a_crash_at(base: &str, point: &'static str) {
    let url = mongo_url_with_fresh_db(base);
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("events.yaml");
    std::fs::write(&rules, RULES).expect("rules file");
    let (app, sub) = crash_during_a_batch(&url, &rules, point, 15).await;
    let expected = expected_log(&app).await;
    // Recovery queued them in the pass that retired the batch, which has run.
    assert_eq!(log(&app, &sub).await, expected, "{point}");
    app.stop().await;
    // Another restart queues nothing more.
    let app = app_on(&url, &rules).await;
    assert_eq!(
        log(&app, &sub).await,
        expected,
        "{point}: no delivery twice"
    );
    app.stop().await;
}

#[tokio::test]
async fn recovered_batches_notify_once() {
    let Some(base) = server_url("TEST_MONGO_URL") else {
        return;
    };
    if common::mongo_server_mode(&base).await != "standalone" {
        common::report_skip("the journaled write path runs only on a standalone server");
        return;
    }
    // Before the deliveries were stored, and after: either way, exactly once.
    futures_util::future::join(
        notifies_once_after_a_crash_at(&base, "mongo.journal.after_counters"),
        notifies_once_after_a_crash_at(&base, "mongo.journal.after_outbox"),
    )
    .await;
}

#[tokio::test]
async fn a_transaction_cut_short_queues_nothing() {
    let Some(base) = server_url("TEST_MONGO_URL") else {
        return;
    };
    if common::mongo_server_mode(&base).await != "replset" {
        common::report_skip("writes are transactions only on a replica set");
        return;
    }
    let url = mongo_url_with_fresh_db(&base);
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("events.yaml");
    std::fs::write(&rules, RULES).expect("rules file");
    let (app, sub) = crash_during_a_batch(&url, &rules, "mongo.record.before_commit", 0).await;
    assert_eq!(
        log(&app, &sub).await,
        vec![],
        "nothing stored, nothing queued"
    );
    app.stop().await;
}
