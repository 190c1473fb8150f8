//! Stop the real binary gracefully (SIGTERM, SIGINT) and brutally (SIGKILL), start it on
//! the same data: every acknowledged event, total and history entry is still there.

use crate::helpers as common;

use common::process::{self, Server};
use serde_json::{json, Value};

fn env_for(dir: &std::path::Path, backend: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = common::base_env(dir).into_iter().collect();
    env.extend(backend.iter().cloned());
    env
}

async fn snapshot(client: &reqwest::Client, base: &str, users: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for u in users {
        let p: Value = client
            .get(format!("{base}/v1/users/{u}/points"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let h: Value = client
            .get(format!("{base}/v1/users/{u}/events?limit=1000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.push(json!({"points": p, "history": h}));
    }
    let lb: Value = client
        .get(format!("{base}/v1/leaderboard?limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    out.push(lb);
    out
}

async fn send_events(client: &reqwest::Client, base: &str, from: i64, n: i64) {
    let events: Vec<Value> = (from..from + n)
        .map(|i| json!({"user_id": format!("p{}", i % 5), "event_type": if i % 3 == 0 { "PURCHASE" } else { "LOGIN" }, "timestamp": 1_780_000_000 + i}))
        .collect();
    let r: Value = client
        .post(format!("{base}/v1/events/batch"))
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["created"], n);
    let r = client
        .post(format!("{base}/v1/users/events"))
        .json(&json!({"user_id": "single", "event_type": "REVIEW", "timestamp": 1_780_000_000 + from}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

const USERS: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "single"];

#[tokio::test]
async fn graceful_and_forced_restarts_keep_everything() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(dir.path(), &common::backend_env());
    let client = reqwest::Client::new();

    for (round, sig) in ["TERM", "INT"].iter().enumerate() {
        let server = process::start(&env);
        send_events(&client, &server.base, round as i64 * 1000, 200).await;
        let before = snapshot(&client, &server.base, &USERS).await;
        server.signal(sig);
        assert_eq!(
            server.wait(),
            Some(0),
            "SIG{sig} ends the process cleanly with status 0"
        );
        let server = process::start(&env);
        assert_eq!(
            snapshot(&client, &server.base, &USERS).await,
            before,
            "after SIG{sig}"
        );
        drop(server);
    }

    // SIGKILL straight after the acknowledgements: durability cannot lean on a clean exit.
    let server = process::start(&env);
    send_events(&client, &server.base, 5000, 300).await;
    let before = snapshot(&client, &server.base, &USERS).await;
    server.signal("KILL");
    assert_eq!(server.wait(), None);
    let server: Server = process::start(&env);
    assert_eq!(
        snapshot(&client, &server.base, &USERS).await,
        before,
        "after SIGKILL"
    );
    let p: Value = client
        .get(format!("{}/v1/users/single/points", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["events"], 3);
}
