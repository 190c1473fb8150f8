//! Two instances on one store: concurrent and duplicate events sent to both, and every
//! read on either instance agrees with the ledger. An event answered 201 by one instance
//! is in every later read of the other.
//!
//! On MongoDB (`TEST_BACKEND=mongo` or `mongo+redis`) the instances are two real
//! `eventtracker serve` processes on one database, and on one Redis when the backend has
//! it: the deployment docs/scaling.md describes. SQLite allows one process per database
//! file (the writer holds recent counter changes in memory until it checkpoints them),
//! so there the test is that a second server, or a command that writes, is refused
//! with the reason while the first runs, and works once it has stopped.

use crate::helpers as common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{spawn_app_with, spawn_process_with, unique_name, Options, TestApp};
use serde_json::{json, Value};

/// Whether the instances share a Redis (and so must report it ready).
fn with_redis(a: &TestApp) -> bool {
    a.backend.iter().any(|(k, _)| k == "REDIS_URL")
}

/// Both instances, ready (and serving from Redis when they have it).
async fn two_instances() -> Option<(TestApp, TestApp)> {
    if !common::backend_has("mongo") {
        common::report_skip("two instances on one store need MongoDB: SQLite allows one process per file (a_second_process_on_one_sqlite_file_is_refused)");
        return None;
    }
    let a = spawn_process_with(Options::default());
    let b = spawn_process_with(Options {
        env: a.backend.clone(),
        dir: Some(a.dir.clone()),
    });
    for app in [&a, &b] {
        wait_for_redis(app).await;
    }
    Some((a, b))
}

#[tokio::test]
async fn a_second_process_on_one_sqlite_file_is_refused() {
    if common::backend_has("mongo") {
        return;
    }
    let a = spawn_app_with(Options::default()).await;
    let user = unique_name("one_file");
    assert_eq!(a.event(&user, "LOGIN", json!(1_700_000_000)).await.0, 201);
    let env: Vec<(String, String)> = common::base_env(a.dir.path())
        .into_iter()
        .chain(a.backend.iter().cloned())
        .collect();
    let lines = a.dir.path().join("import.ndjson");
    std::fs::write(
        &lines,
        format!("{{\"user_id\":\"{user}\",\"event_type\":\"LOGIN\",\"timestamp\":1700000001}}\n"),
    )
    .unwrap();
    let import = || {
        std::process::Command::new(common::process::BIN)
            .args(["import", &lines.display().to_string()])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run eventtracker import")
    };
    // While a server runs, a writing command would leave it with a stale view.
    let out = import();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "refused while the server runs: {err}"
    );
    assert!(
        err.contains("SQLITE_PATH") && err.contains("in use") && err.contains("HTTP API"),
        "the reason and what to do instead: {err}"
    );
    assert_eq!(
        a.points(&user).await,
        1,
        "the refused command wrote nothing"
    );

    // Export only reads the ledger, which is exact in any snapshot: it may run beside.
    let out = std::process::Command::new(common::process::BIN)
        .arg("export")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run eventtracker export");
    let lines = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "export beside the server: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(lines.contains(&user), "{lines}");

    // So is a second server.
    let config =
        eventtracker::config::Config::from_map(&env.iter().cloned().collect()).expect("config");
    let second = eventtracker::startup::Application::build(config).await;
    let err = second
        .err()
        .expect("a second server is refused")
        .to_string();
    assert!(err.contains("in use"), "{err}");

    let dir = a.stop().await;
    let out = import();
    assert!(
        out.status.success(),
        "works once the server stopped: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = spawn_app_with(Options {
        env: Vec::new(),
        dir: Some(dir),
    })
    .await;
    assert_eq!(b.points(&user).await, 2, "the import's event is counted");
}

/// Waits until `/readyz` answers 200 and, when the app has Redis, reports it `ok`.
async fn wait_for_redis(app: &TestApp) {
    let redis = with_redis(app);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = app.get("/readyz").await;
        if status == 200 && (!redis || body["redis"] == "ok") {
            return;
        }
        assert!(Instant::now() < until, "never became ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn points_body(app: &TestApp, user: &str) -> Value {
    let (s, body) = app.get(&format!("/v1/users/{user}/points")).await;
    assert_eq!(s, 200, "{body}");
    body
}

#[tokio::test]
async fn an_event_acknowledged_by_one_instance_is_read_by_the_other() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let mut total = 0;
    for i in 0..30 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let event_type = ["LOGIN", "PURCHASE", "REVIEW"][i % 3];
        let (s, body) = writer
            .event(
                "ryw",
                event_type,
                json!(format!("2026-11-0{}T10:00:{i:02}Z", 2 + i % 5)),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        total += body["points"].as_i64().expect("points");
        assert_eq!(reader.points("ryw").await, total, "after event {i}");
        let (_, rank) = reader.get("/v1/leaderboard/users/ryw").await;
        assert_eq!(rank["points"], total, "after event {i}: {rank}");
        assert_eq!(rank["rank"], 1);
    }
    let (s, erased) = (
        a.client
            .delete(a.url("/v1/users/ryw"))
            .send()
            .await
            .expect("delete")
            .status(),
        (),
    );
    assert_eq!((s.as_u16(), erased), (204, ()));
    assert_eq!(b.points("ryw").await, 0);
    let (_, rank) = b.get("/v1/leaderboard/users/ryw").await;
    assert_eq!(rank["rank"], Value::Null);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn concurrent_duplicate_events_on_two_instances_match_the_ledger() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let apps = Arc::new([a, b]);
    let users = ["w0", "w1", "w2", "w3", "w4"];
    let types = [
        "LOGIN",
        "PURCHASE",
        "REVIEW",
        "ABUSE_REPORTED",
        "TEST_ONLY_QUEST",
    ];
    // 120 distinct events; each is sent twice, once to each instance, at about the same
    // time, so the two race on the same dedup key.
    let events: Vec<Value> = (0..120)
        .map(|i| {
            json!({"user_id": users[i % 5], "event_type": types[(i / 5) % 5],
                "timestamp": format!("2026-11-{:02}T{:02}:00:00Z", 1 + i % 12, i % 24),
                "event_id": format!("e{i}")})
        })
        .collect();
    let mut tasks = Vec::new();
    for (i, e) in events.iter().enumerate() {
        for side in [i % 2, 1 - i % 2] {
            let apps = apps.clone();
            let e = e.clone();
            tasks.push(tokio::spawn(async move {
                apps[side].post("/v1/users/events", e).await.0
            }));
        }
    }
    // And batches that overlap them and each other.
    for side in [0, 1] {
        let apps = apps.clone();
        let batch: Vec<Value> = events.iter().skip(side).step_by(3).cloned().collect();
        tasks.push(tokio::spawn(async move {
            let body = apps[side].batch(batch).await;
            assert_eq!(body["rejected"], 0, "{body}");
            if body["created"].as_u64().unwrap_or(0) > 0 {
                201
            } else {
                409
            }
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.expect("task") {
            201 => created += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(created >= 1);
    let [a, b] = &*apps;

    // The ledger holds each event once; totals and breakdowns equal it on both.
    let mut board: Vec<(String, i64)> = Vec::new();
    let mut events_seen = 0;
    for u in users {
        let (sum, n) = a.ledger_sum(u).await;
        events_seen += n;
        let mut by_type: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let (_, history) = a.get(&format!("/v1/users/{u}/events?limit=1000")).await;
        for e in history["data"].as_array().expect("data") {
            let t = by_type
                .entry(e["event_type"].as_str().expect("type").to_string())
                .or_default();
            t.0 += 1;
            t.1 += e["points"].as_i64().expect("points");
        }
        let want = json!({"user_id": u, "points": sum, "events": n,
            "by_type": by_type.iter().map(|(t, (n, p))| (t.clone(), json!({"events": n, "points": p}))).collect::<serde_json::Map<_, _>>(),
            "level": null});
        assert_eq!(points_body(a, u).await, want, "{u} on a");
        assert_eq!(points_body(b, u).await, want, "{u} on b");
        board.push((u.to_string(), sum));
    }
    assert_eq!(events_seen, 120, "each event stored once");

    board.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let (_, lb_a) = a.get("/v1/leaderboard").await;
    let (_, lb_b) = b.get("/v1/leaderboard").await;
    assert_eq!(lb_a, lb_b);
    let served: Vec<(String, i64)> = lb_a["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["user_id"].as_str().unwrap().to_string(),
                e["points"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(served, board);
    for q in [
        "period=day&at=2026-11-03T00:00:00Z",
        "period=week&at=2026-11-04T00:00:00Z",
        "period=month&at=2026-11-15T00:00:00Z",
    ] {
        let path = format!("/v1/leaderboard?{q}&limit=100");
        assert_eq!(a.get(&path).await, b.get(&path).await, "{q}");
        for u in users {
            let path = format!("/v1/leaderboard/users/{u}?{q}&around=5");
            assert_eq!(a.get(&path).await, b.get(&path).await, "{q} {u}");
        }
    }
    let (_, month) = a
        .get("/v1/leaderboard?period=month&at=2026-11-15T00:00:00Z")
        .await;
    assert_eq!(
        month["entries"], lb_a["entries"],
        "every event is in November 2026"
    );
    if with_redis(a) {
        // The cache ends healthy on both. A Redis call that timed out on a busy machine
        // marks it degraded (answers then come from the store, as checked above) until
        // it is rebuilt in the background, so allow for that.
        for app in [a, b] {
            wait_for_redis(app).await;
        }
    }
    // Two processes: both still serving, neither crashed along the way.
    let Ok([a, b]) = Arc::try_unwrap(apps) else {
        panic!("every task finished");
    };
    a.stop().await;
    b.stop().await;
}
