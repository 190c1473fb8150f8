//! Live rules: events.yaml changes are picked up without a restart (by the periodic
//! check and by SIGHUP), every accepted file becomes a numbered rules version kept in
//! the store, each ledger entry records the version that judged it, and an invalid file
//! leaves the version in force untouched.

use crate::helpers as common;

use std::sync::Arc;
use std::time::Duration;

use common::process;
use common::{backend_env, base_env, spawn_app_with, unique_name, write_rules, Options, TestApp};
use eventtracker::rules_reload::Outcome;
use serde_json::{json, Value};

const V1: &str =
    "events:\n  - {name: PURCHASE, description: Bought, point: 10}\n  - {name: LOGIN, point: 1}\n";
const V2: &str = "events:\n  - {name: PURCHASE, description: Bought, point: 15}\n  - {name: LOGIN, point: 1}\n  - {name: REFERRAL, point: 50}\n";
/// Valid YAML, invalid rules: the second entry repeats a name.
const INVALID: &str = "events:\n  - {name: PURCHASE, point: 99}\n  - {name: PURCHASE, point: 1}\n";

fn sha256(text: &str) -> String {
    eventtracker::domain::rules::content_hash(text)
}

/// An app whose data and events.yaml (V1 unless present) live in `dir`, checking the
/// file every `interval` seconds (`"0"`: only when told); `backend` names the store of
/// an earlier app to open the same data again.
async fn app_with_rules(
    dir: &Arc<tempfile::TempDir>,
    backend: Vec<(String, String)>,
    interval: &str,
) -> TestApp {
    let path = dir.path().join("events.yaml");
    if !path.exists() {
        write_rules(&path, V1);
    }
    let mut env = backend;
    env.push(("EVENTS_POINTS_PATH".into(), path.display().to_string()));
    env.push(("RULES_RELOAD_INTERVAL_SECS".into(), interval.into()));
    spawn_app_with(Options {
        env,
        dir: Some(dir.clone()),
    })
    .await
}

async fn version_in_force(base: &str) -> Value {
    let body: Value = reqwest::get(format!("{base}/v1/event-types"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["rules_version"].clone()
}

/// The count of rejected rules files, process-wide.
async fn rejections(app: &TestApp) -> f64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("rules_reloads_total{outcome=\"rejected\"} "))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// Polls until the version in force is `n`; panics after `secs`.
async fn wait_for_version(base: &str, n: i64, secs: u64) -> Value {
    for _ in 0..secs * 10 {
        let v = version_in_force(base).await;
        if v["version"].as_i64() == Some(n) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "rules version {n} not in force after {secs} s: {}",
        version_in_force(base).await
    );
}

#[tokio::test]
async fn a_changed_file_applies_without_restart_and_each_event_records_its_version() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // The periodic check applies it: no one else tells the app to look.
    let app = app_with_rules(&dir, Vec::new(), "1").await;
    let user = unique_name("r");
    let v1 = version_in_force(&app.base).await;
    assert_eq!(v1["version"].as_i64(), Some(1), "{v1}");
    assert_eq!(v1["hash"], sha256(V1));

    let (status, body) = app.event(&user, "PURCHASE", json!(1_780_000_000)).await;
    assert_eq!((status, body["points"].as_i64()), (201, Some(10)), "{body}");
    let (status, _) = app.event(&user, "REFERRAL", json!(1_780_000_001)).await;
    assert_eq!(status, 400, "REFERRAL does not exist yet");

    write_rules(&dir.path().join("events.yaml"), V2);
    let v2 = wait_for_version(&app.base, 2, 15).await;
    assert_eq!(v2["hash"], sha256(V2));
    let (_, types) = app.get("/v1/event-types").await;
    let names: Vec<&str> = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["PURCHASE", "LOGIN", "REFERRAL"]);

    let (_, body) = app.event(&user, "PURCHASE", json!(1_780_000_002)).await;
    assert_eq!(body["points"].as_i64(), Some(15), "the new rules award it");
    let (status, _) = app.event(&user, "REFERRAL", json!(1_780_000_003)).await;
    assert_eq!(status, 201, "the new type is accepted");
    assert_eq!(app.points(&user).await, 10 + 15 + 50);

    let (_, history) = app.get(&format!("/v1/users/{user}/events")).await;
    let entries: Vec<(String, i64, i64, i64)> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["points"].as_i64().unwrap(),
                e["base_points"].as_i64().unwrap(),
                e["rules_version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("REFERRAL".into(), 50, 50, 2),
            ("PURCHASE".into(), 15, 15, 2),
            ("PURCHASE".into(), 10, 10, 1),
        ],
        "newest first, each with the version that judged it"
    );

    let (status, rules) = app.get("/v1/rules").await;
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules["current"], 2);
    let listed: Vec<(i64, &str)> = rules["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["hash"].as_str().unwrap()))
        .collect();
    let (h1, h2) = (sha256(V1), sha256(V2));
    assert_eq!(listed, [(2, h2.as_str()), (1, h1.as_str())]);
    assert!(rules["data"][0]["activated_at"].as_str().is_some());
}

#[tokio::test]
async fn an_invalid_file_is_rejected_and_the_version_in_force_stays() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // No periodic check: the test makes each check itself, so it knows each was made.
    let app = app_with_rules(&dir, Vec::new(), "0").await;
    let user = unique_name("r");
    assert_eq!(version_in_force(&app.base).await["version"], 1);
    // The recorder is process-wide and other tests run alongside: compare increments.
    let rejected = rejections(&app).await;

    let path = dir.path().join("events.yaml");
    write_rules(&path, INVALID);
    assert_eq!(
        app.reload_rules().await,
        Outcome::Rejected(Some(sha256(INVALID)))
    );
    let v = version_in_force(&app.base).await;
    assert_eq!(
        (v["version"].as_i64(), v["hash"].clone()),
        (Some(1), json!(sha256(V1)))
    );
    let (_, body) = app.event(&user, "PURCHASE", json!(1_780_000_000)).await;
    assert_eq!(body["points"].as_i64(), Some(10), "still the old rules");
    let (_, rules) = app.get("/v1/rules").await;
    assert_eq!(
        rules["data"].as_array().unwrap().len(),
        1,
        "nothing registered: {rules}"
    );
    assert!(
        rejections(&app).await > rejected,
        "a rejection is counted:\n{}",
        app.metrics().await
    );

    // A fixed file is picked up as the next version.
    write_rules(&path, V2);
    assert_eq!(app.reload_rules().await, Outcome::Applied(2));
    assert_eq!(version_in_force(&app.base).await["version"], 2);
}

#[tokio::test]
async fn the_same_file_after_a_restart_keeps_its_version_and_a_reverted_file_gets_a_new_one() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = app_with_rules(&dir, Vec::new(), "1").await;
    write_rules(&dir.path().join("events.yaml"), V2);
    wait_for_version(&app.base, 2, 15).await;
    let backend = app.backend.clone();
    let dir = app.stop().await;

    let app = app_with_rules(&dir, backend, "1").await;
    assert_eq!(
        version_in_force(&app.base).await["version"],
        2,
        "same file, same version"
    );
    write_rules(&dir.path().join("events.yaml"), V1);
    let v3 = wait_for_version(&app.base, 3, 15).await;
    assert_eq!(
        v3["hash"],
        sha256(V1),
        "going back is a change too: version 3"
    );
}

#[tokio::test]
async fn sighup_reloads_the_rules_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.yaml");
    write_rules(&path, V1);
    let mut env: Vec<(String, String)> = base_env(dir.path()).into_iter().collect();
    env.extend(backend_env());
    env.push(("EVENTS_POINTS_PATH".into(), path.display().to_string()));
    // No periodic check: only the signal can make it reload.
    env.push(("RULES_RELOAD_INTERVAL_SECS".into(), "0".into()));
    // That nothing else makes it look (no ticker without an interval) is a unit test
    // of src/rules_reload.rs, in paused time; here the log shows the reload is the
    // signal's doing.
    let server = process::start(&env);
    assert_eq!(version_in_force(&server.base).await["version"], 1);

    write_rules(&path, V2);
    server.signal("HUP");
    wait_for_version(&server.base, 2, 15).await;
    let log = server.wait_for_log("rules reloaded").await;
    let signalled = log.find("SIGHUP: checking the rules file");
    let reloaded = log.find("rules reloaded");
    assert!(
        signalled.is_some() && signalled < reloaded,
        "the signal, then the reload:\n{log}"
    );
    server.signal("TERM");
    assert_eq!(server.wait(), Some(0));
}
