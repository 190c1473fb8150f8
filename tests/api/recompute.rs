//! Replaying the ledger after a rule change: a dry run reports exactly the expected
//! differences and changes nothing; applying makes events, totals, breakdowns and
//! leaderboards consistent with the new rules (caps included, as at ingest); a second
//! run finds nothing to do; an older version can be replayed by number. Over HTTP for
//! every store, and once through the command line on SQLite.

use crate::helpers as common;

use std::sync::Arc;
use std::time::Duration;

use common::{spawn_app_with, unique_name, Options, TestApp};
use serde_json::{json, Value};

const V1: &str = "events:\n  - {name: PURCHASE, point: 10}\n  - {name: LOGIN, point: 1}\n";
/// PURCHASE is worth more, LOGIN earns once a day.
const V2: &str = "events:\n  - {name: PURCHASE, point: 15}\n  - {name: LOGIN, point: 1, cap: {period: day, max_events: 1}}\n";

/// 2026-11-02 10:00 UTC, in seconds.
const T0: i64 = 1_793_613_600;

async fn start(dir: &Arc<tempfile::TempDir>, backend: Vec<(String, String)>) -> TestApp {
    let mut env = backend;
    env.push((
        "EVENTS_POINTS_PATH".into(),
        dir.path().join("events.yaml").display().to_string(),
    ));
    env.push(("RULES_RELOAD_INTERVAL_SECS".into(), "1".into()));
    spawn_app_with(Options {
        env,
        dir: Some(dir.clone()),
    })
    .await
}

async fn switch_rules(app: &TestApp, dir: &tempfile::TempDir, text: &str, version: i64) {
    common::write_rules(&dir.path().join("events.yaml"), text);
    for _ in 0..150 {
        let (_, types) = app.get("/v1/event-types").await;
        if types["rules_version"]["version"] == version {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("rules version {version} never came into force");
}

async fn recompute(app: &TestApp, body: Value) -> Value {
    let (status, report) = app.post("/v1/admin/recompute", body).await;
    assert_eq!(status, 200, "{report}");
    report
}

/// Balance, breakdown and all-time leaderboard score of `user`, and the ledger's sum.
async fn state(app: &TestApp, user: &str) -> (i64, Value, i64, i64) {
    let (_, p) = app.get(&format!("/v1/users/{user}/points")).await;
    let (_, board) = app
        .get(&format!("/v1/leaderboard/users/{user}?period=all"))
        .await;
    let (sum, _) = app.ledger_sum(user).await;
    (
        p["points"].as_i64().unwrap(),
        p["by_type"].clone(),
        board["points"].as_i64().unwrap(),
        sum,
    )
}

#[tokio::test]
async fn a_rule_change_is_reported_by_a_dry_run_and_made_consistent_by_apply() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("events.yaml"), V1).unwrap();
    let app = start(&dir, Vec::new()).await;
    let (buyer, logger, idle) = (unique_name("b"), unique_name("l"), unique_name("i"));
    let mut events = vec![
        json!({"user_id": buyer, "event_type": "PURCHASE", "timestamp": T0}),
        json!({"user_id": buyer, "event_type": "PURCHASE", "timestamp": T0 + 1}),
        json!({"user_id": idle, "event_type": "LOGIN", "timestamp": T0}),
    ];
    // Three LOGINs on one day and one the next: 4 points now, 2 under V2.
    for ts in [T0, T0 + 60, T0 + 120, T0 + 86_400] {
        events.push(json!({"user_id": logger, "event_type": "LOGIN", "timestamp": ts}));
    }
    app.batch(events).await;
    switch_rules(&app, &dir, V2, 2).await;

    let before = (state(&app, &buyer).await, state(&app, &logger).await);
    let dry = recompute(&app, json!({})).await;
    let mut expected_users = vec![
        json!({"user_id": buyer, "current": 20, "recomputed": 30, "delta": 10}),
        json!({"user_id": logger, "current": 4, "recomputed": 2, "delta": -2}),
    ];
    expected_users.sort_by_key(|u| u["user_id"].as_str().unwrap().to_owned());
    let mine = |report: &Value| -> Vec<Value> {
        report["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| {
                [&buyer, &logger, &idle].contains(&&u["user_id"].as_str().unwrap().to_owned())
            })
            .cloned()
            .collect()
    };
    assert_eq!(dry["rules_version"], 2);
    assert_eq!(dry["applied"], false);
    assert_eq!(mine(&dry), expected_users, "{dry}");
    assert_eq!(
        (state(&app, &buyer).await, state(&app, &logger).await),
        before,
        "a dry run changes nothing"
    );

    let (status, applied) = app
        .post("/v1/admin/recompute", json!({"dry_run": false}))
        .await;
    if status == 501 {
        // A standalone MongoDB (MONGO_TEST_MODE=standalone): no atomic rewrite there.
        assert!(
            applied["message"]
                .as_str()
                .unwrap()
                .contains("transactions"),
            "{applied}"
        );
        assert_eq!(
            state(&app, &buyer).await,
            before.0,
            "a refused apply changes nothing"
        );
        return;
    }
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["applied"], true);
    assert_eq!(mine(&applied), expected_users);
    let (points, by_type, board, ledger) = state(&app, &buyer).await;
    assert_eq!((points, board, ledger), (30, 30, 30));
    assert_eq!(by_type["PURCHASE"], json!({"events": 2, "points": 30}));
    let (points, by_type, board, ledger) = state(&app, &logger).await;
    assert_eq!((points, board, ledger), (2, 2, 2));
    assert_eq!(by_type["LOGIN"], json!({"events": 4, "points": 2}));
    let (_, week) = app
        .get(&format!(
            "/v1/leaderboard/users/{logger}?period=day&at={T0}"
        ))
        .await;
    assert_eq!(week["points"], 1, "the day's leaderboard follows: {week}");
    let (_, history) = app.get(&format!("/v1/users/{buyer}/events")).await;
    assert!(
        history["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["points"] == 15 && e["base_points"] == 15 && e["rules_version"] == 2),
        "{history}"
    );

    let again = recompute(&app, json!({"dry_run": false})).await;
    assert!(mine(&again).is_empty(), "nothing left to change: {again}");

    // Version 1 replayed by number undoes it.
    let back = recompute(&app, json!({"rules_version": 1})).await;
    assert_eq!(back["rules_version"], 1);
    assert!(mine(&back)
        .iter()
        .any(|u| u["user_id"] == buyer.as_str() && u["delta"] == -10));

    let (status, err) = app
        .post("/v1/admin/recompute", json!({"rules_version": 99}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("rules_version"),
        "{err}"
    );
    let (status, err) = app
        .post("/v1/admin/recompute", json!({"dry_run": "no"}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("dry_run"),
        "{err}"
    );

    // The body is optional: none and `null` are a dry run, as the OpenAPI document says;
    // white space alone is not JSON.
    for (body, status) in [("", 200), ("null", 200), ("  \n", 400)] {
        let r = app
            .client
            .post(app.url("/v1/admin/recompute"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body:?}");
        let answer: Value = r.json().await.unwrap();
        if status == 200 {
            assert_eq!(answer["applied"], false, "{body:?}: {answer}");
        } else {
            assert!(answer["message"].is_string(), "{answer}");
        }
    }
}

#[tokio::test]
async fn the_command_line_reports_and_applies_the_same_replay() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("events.yaml"), V1).unwrap();
    let app = start(&dir, Vec::new()).await;
    let backend = app.backend.clone();
    let user = unique_name("c");
    app.batch(vec![
        json!({"user_id": user, "event_type": "PURCHASE", "timestamp": T0}),
        json!({"user_id": user, "event_type": "LOGIN", "timestamp": T0}),
        json!({"user_id": user, "event_type": "LOGIN", "timestamp": T0 + 5}),
    ])
    .await;
    let dir = app.stop().await;
    std::fs::write(dir.path().join("events.yaml"), V2).unwrap();

    let run = |args: &[&str]| {
        let mut env = common::base_env(dir.path());
        env.extend(backend.iter().cloned());
        env.insert(
            "EVENTS_POINTS_PATH".into(),
            dir.path().join("events.yaml").display().to_string(),
        );
        let out = std::process::Command::new(common::process::BIN)
            .arg("recompute")
            .args(args)
            .env_clear()
            .envs(env)
            .output()
            .expect("run eventtracker recompute");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str::<Value>(stdout.lines().last().unwrap()).unwrap()
    };
    let expected = json!([{"user_id": user, "current": 12, "recomputed": 16, "delta": 4}]);
    let dry = run(&["--dry-run", "--json"]);
    assert_eq!(
        (
            dry["rules_version"].clone(),
            dry["users"].clone(),
            dry["points_delta"].clone()
        ),
        (json!(2), expected.clone(), json!(4))
    );
    let applied = run(&["--apply", "--json"]);
    assert_eq!(applied["users"], expected);
    assert_eq!(applied["users_changed"], 1);
    assert_eq!(
        run(&["--json"])["users_changed"],
        0,
        "applied: nothing left"
    );

    let app = start(&dir, backend).await;
    let (sum, _) = app.ledger_sum(&user).await;
    assert_eq!((app.points(&user).await, sum), (16, 16));
}

/// Malformed bodies get the API's JSON error, with the status every JSON endpoint gives:
/// 400 naming the field (or the body), 415 for a body that is not declared JSON. A
/// malformed body never runs a replay, even one that reads as `[false]`.
#[tokio::test]
async fn malformed_bodies_are_answered_in_the_error_format() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("events.yaml"), V1).unwrap();
    let app = start(&dir, common::backend_env()).await;
    let send = |content_type: Option<&'static str>, body: &'static str| {
        let mut req = app.client.post(app.url("/v1/admin/recompute")).body(body);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            let answer: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{body:?}: not JSON ({e}): {text}"));
            (status, answer)
        }
    };
    const JSON: Option<&str> = Some("application/json");

    // No body needs no Content-Type (the documented `curl -X POST`).
    let (status, report) = send(None, "").await;
    assert_eq!(
        (status, &report["applied"]),
        (200, &json!(false)),
        "{report}"
    );

    let field_errors = [
        (r#"{"dry_run": "no"}"#, "dry_run"),
        (r#"{"dry_run": null}"#, "dry_run"),
        (r#"{"dry_run": 0}"#, "dry_run"),
        (r#"{"rules_version": 0}"#, "rules_version"),
        (r#"{"rules_version": "1"}"#, "rules_version"),
        (r#"{"rules_version": 1.5}"#, "rules_version"),
        (
            r#"{"dry_run": true, "rules_version": [1]}"#,
            "rules_version",
        ),
    ];
    for (body, field) in field_errors {
        let (status, answer) = send(JSON, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["errors"][0]["field"], field, "{body}: {answer}");
        assert_eq!(answer["errors"].as_array().unwrap().len(), 1, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().starts_with(field),
            "{body}: {answer}"
        );
    }
    for body in [
        "[false]",
        "false",
        "1",
        "\"{}\"",
        "{",
        "{\"dry_run\": false,}",
        " ",
    ] {
        let (status, answer) = send(JSON, body).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert!(answer["message"].is_string(), "{body:?}: {answer}");
        assert!(answer.get("errors").is_none(), "{body:?}: {answer}");
    }
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (status, answer) = send(content_type, r#"{"dry_run": false}"#).await;
        assert_eq!(status, 415, "{content_type:?}: {answer}");
        assert_eq!(answer["message"], "Content-Type must be application/json");
    }
}
