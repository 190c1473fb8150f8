//! Webhooks against a real HTTP receiver running in the test process: signatures,
//! retries after 500s and timeouts, delivery across a restart, per-user order, the
//! delivery log and replay, ingestion that does not wait for receivers, `cap.reached`
//! and `rank.changed`. Runs on every store (`TEST_BACKEND`).

use crate::helpers as common;

use std::sync::Arc;
use std::time::Duration;

use common::receiver::{Answer, Hit, Receiver};
use common::{spawn_app_with, unique_name, Options, TestApp};
use serde_json::{json, Value};

const SECRET: &str = "whsec_test_0123456789";

/// Settings for an app that sends to `receiver`; retries are fast for the tests.
fn webhook_env(
    dir: &std::path::Path,
    receiver: &Receiver,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    webhook_env_for(dir, &[(receiver, SECRET)], extra)
}

/// The same with a `points.changed` subscription per receiver, each with its secret.
fn webhook_env_for(
    dir: &std::path::Path,
    subscriptions: &[(&Receiver, &str)],
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let file = dir.join("webhooks.yaml");
    let mut yaml = String::from("webhooks:\n");
    for (receiver, secret) in subscriptions {
        yaml.push_str(&format!(
            "  - url: {}\n    secret: {secret}\n    events: [points.changed]\n",
            receiver.url
        ));
    }
    std::fs::write(&file, yaml).unwrap();
    let mut env = vec![
        ("WEBHOOKS_PATH".to_string(), file.display().to_string()),
        // The receiver is on loopback, which is refused by default.
        (
            "WEBHOOK_ALLOW_PRIVATE_TARGETS".to_string(),
            "true".to_string(),
        ),
        ("WEBHOOK_RETRY_BASE_MS".to_string(), "50".to_string()),
        ("WEBHOOK_TIMEOUT_MS".to_string(), "500".to_string()),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

async fn app_for(receiver: &Receiver, extra: &[(&str, &str)]) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let env = webhook_env(dir.path(), receiver, extra);
    spawn_app_with(Options {
        env,
        dir: Some(dir),
    })
    .await
}

async fn subscription_id(app: &TestApp) -> String {
    let (status, body) = app.get("/v1/webhooks").await;
    assert_eq!(status, 200, "{body}");
    body["data"][0]["id"]
        .as_str()
        .expect("a subscription")
        .to_owned()
}

async fn log(app: &TestApp, sub: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/webhooks/{sub}/deliveries")).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Waits until the log has `n` deliveries in `status`.
async fn wait_log(app: &TestApp, sub: &str, status: &str, n: usize) -> Vec<Value> {
    for _ in 0..600 {
        let rows = log(app, sub).await;
        if rows.iter().filter(|d| d["status"] == status).count() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "expected {n} {status} deliveries: {:#?}",
        log(app, sub).await
    );
}

const TS: i64 = 1_793_613_600;

#[tokio::test]
async fn each_write_is_one_signed_delivery_per_user_with_the_new_total() {
    let receiver = Receiver::start().await;
    let app = app_for(&receiver, &[]).await;
    let (a, b) = (unique_name("hook_a"), unique_name("hook_b"));

    let (status, created) = app.event(&a, "PURCHASE", json!(TS)).await;
    assert_eq!(status, 201, "{created}");
    let hits = receiver.wait_for(1, "one event").await;
    let hit = &hits[0];
    assert!(hit.signed_with(SECRET), "{hit:?}");
    assert!(!hit.signed_with("another secret 123"));
    // SECRET is not whsec_<base64> ('_' follows the prefix): the Standard Webhooks
    // signature is keyed with its bytes as they are.
    assert!(hit.standard_signed_with(SECRET.as_bytes()), "{hit:?}");
    let ts: i64 = hit.timestamp.parse().expect("Unix seconds");
    assert!(
        (ts - chrono::Utc::now().timestamp()).abs() < 300,
        "fresh timestamp"
    );
    let body = hit.json();
    assert_eq!(
        body["id"],
        hit.delivery.as_str(),
        "the header names the body's id"
    );
    assert_eq!(body["type"], "points.changed");
    assert!(body["created_at"].is_string());
    assert_eq!(
        body["data"],
        json!({"user_id": a, "points": 10, "delta": 10, "event_ids": [created["id"]]})
    );

    // A batch: one delivery per user, in the order of the users' first events.
    let batch = app
        .batch(vec![
            json!({"user_id": a, "event_type": "LOGIN", "timestamp": TS + 1}),
            json!({"user_id": b, "event_type": "REVIEW", "timestamp": TS}),
            json!({"user_id": a, "event_type": "REVIEW", "timestamp": TS + 2}),
        ])
        .await;
    let ids: Vec<&Value> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    let hits = receiver.wait_for(3, "a batch for two users").await;
    let mut data: Vec<Value> = hits[1..].iter().map(|h| h.json()["data"].clone()).collect();
    data.sort_by_key(|d| d["user_id"].as_str().unwrap().to_owned());
    assert_eq!(
        data,
        [
            json!({"user_id": a, "points": 16, "delta": 6, "event_ids": [ids[0], ids[2]]}),
            json!({"user_id": b, "points": 5, "delta": 5, "event_ids": [ids[1]]}),
        ]
    );
    assert!(hits.iter().all(|h| h.signed_with(SECRET)));

    // A duplicate awards nothing, so it notifies nothing.
    let (status, _) = app.event(&a, "PURCHASE", json!(TS)).await;
    assert_eq!(status, 409);
    let sub = subscription_id(&app).await;
    let rows = wait_log(&app, &sub, "delivered", 3).await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    app.webhook_pass().await;
    assert_eq!(receiver.hits().len(), 3, "a pass since sent nothing more");
}

/// Concurrent requests of one user commit together (both stores group them), yet each
/// is its own `points.changed` with the total after it: the semantics is the engine's,
/// one notice per user per request, on every store.
#[tokio::test]
async fn concurrent_requests_of_one_user_are_one_delivery_each() {
    let receiver = Receiver::start().await;
    let app = app_for(&receiver, &[]).await;
    let user = unique_name("hook_concurrent");
    const N: i64 = 16;
    let writes = (0..N).map(|i| app.event(&user, "PURCHASE", json!(TS + i)));
    let created = futures_util::future::join_all(writes).await;
    let mut ids: Vec<String> = created
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 201, "{body}");
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let hits = receiver
        .wait_for(N as usize, "one delivery per request")
        .await;
    let data: Vec<Value> = hits.iter().map(|h| h.json()["data"].clone()).collect();
    let mut totals: Vec<i64> = data.iter().map(|d| d["points"].as_i64().unwrap()).collect();
    totals.sort_unstable();
    assert_eq!(
        totals,
        (1..=N).map(|i| 10 * i).collect::<Vec<_>>(),
        "{data:#?}"
    );
    let mut notified: Vec<String> = data
        .iter()
        .map(|d| {
            assert_eq!(d["delta"], 10, "{d}");
            let events = d["event_ids"].as_array().unwrap();
            assert_eq!(events.len(), 1, "{d}");
            events[0].as_str().unwrap().to_owned()
        })
        .collect();
    notified.sort();
    ids.sort();
    assert_eq!(notified, ids);
    let sub = subscription_id(&app).await;
    let rows = wait_log(&app, &sub, "delivered", N as usize).await;
    assert_eq!(rows.len(), N as usize, "{rows:#?}");
}

#[tokio::test]
async fn retries_after_500s_and_a_timeout_send_the_same_delivery() {
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(500), Answer::Status(503), Answer::Stall]);
    let app = app_for(&receiver, &[("WEBHOOK_TIMEOUT_MS", "300")]).await;
    let user = unique_name("hook_retry");
    let (status, _) = app.event(&user, "LOGIN", json!(TS)).await;
    assert_eq!(status, 201);

    let hits = receiver.wait_for(4, "three failures then success").await;
    assert_eq!(hits.len(), 4, "{hits:#?}");
    assert!(hits[3].ok());
    for hit in &hits {
        assert_eq!(
            hit.delivery, hits[0].delivery,
            "same delivery id on every attempt"
        );
        assert_eq!(hit.body, hits[0].body, "same body on every attempt");
        assert!(hit.signed_with(SECRET));
    }
    let sub = subscription_id(&app).await;
    let rows = wait_log(&app, &sub, "delivered", 1).await;
    assert_eq!(rows[0]["id"], hits[0].delivery.as_str());
    assert_eq!(rows[0]["attempts"], 4);
    assert_eq!(rows[0]["last_status"], 200);
    assert_eq!(rows[0]["next_attempt_at"], Value::Null);
}

/// A secret in the Standard Webhooks form (the specification's example one): the
/// `webhook-*` headers are keyed with its decoded bytes.
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn standard_key() -> Vec<u8> {
    use base64::Engine;
    let encoded = STANDARD_SECRET.strip_prefix("whsec_").expect("the prefix");
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64")
}

#[tokio::test]
async fn standard_webhooks_headers_keep_the_delivery_id_across_a_retry_and_verify() {
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(500)]);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let env = webhook_env_for(dir.path(), &[(&receiver, STANDARD_SECRET)], &[]);
    let app = spawn_app_with(Options {
        env,
        dir: Some(dir),
    })
    .await;
    let user = unique_name("hook_standard");
    let (status, _) = app.event(&user, "LOGIN", json!(TS)).await;
    assert_eq!(status, 201);

    let hits = receiver.wait_for(2, "a failure, then the retry").await;
    assert!(!hits[0].ok() && hits[1].ok(), "{hits:#?}");
    let id = hits[0].json()["id"]
        .as_str()
        .expect("the body's id")
        .to_owned();
    for hit in &hits {
        // What receivers deduplicate by: the delivery id, on every attempt.
        assert_eq!(hit.webhook_id, id, "{hit:?}");
        assert_eq!(hit.webhook_id, hit.delivery);
        assert_eq!(hit.webhook_timestamp, hit.timestamp, "one time per attempt");
        let ts: i64 = hit.webhook_timestamp.parse().expect("integer Unix seconds");
        assert!((ts - chrono::Utc::now().timestamp()).abs() < 300);
        assert!(hit.webhook_signature.starts_with("v1,"), "{hit:?}");
        assert!(hit.standard_signed_with(&standard_key()), "{hit:?}");
        // Keyed with the decoded bytes, not the secret's text...
        assert!(!hit.standard_signed_with(STANDARD_SECRET.as_bytes()));
        // ...while X-EventTracker-Signature is as it always was: keyed with the text.
        assert!(hit.signed_with(STANDARD_SECRET), "{hit:?}");
    }
    let mut tampered = hits[1].clone();
    tampered.body = tampered.body.replace(&user, "someone_else");
    assert_ne!(tampered.body, hits[1].body);
    assert!(!tampered.standard_signed_with(&standard_key()));
}

/// Runs scripts/verify-standard-webhooks.sh, the official Python library, on a captured
/// delivery: `Ok` verified, `Err` rejected (with the library's reason). `None` when the
/// library is not available here, reported as a skip; under `CI=true` the script fails
/// instead, and so does this.
async fn official_verdict(
    dir: &std::path::Path,
    hit: &Hit,
    secret: &str,
    format: &str,
) -> Option<Result<String, String>> {
    let file = dir.join("delivery.json");
    let delivery = json!({
        "secret": secret,
        "format": format,
        "headers": {
            "content-type": "application/json",
            "webhook-id": hit.webhook_id,
            "webhook-timestamp": hit.webhook_timestamp,
            "webhook-signature": hit.webhook_signature,
        },
        "body": hit.body,
    });
    std::fs::write(&file, delivery.to_string()).expect("write the delivery");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/verify-standard-webhooks.sh"
    );
    let out = tokio::process::Command::new("bash")
        .arg(script)
        .arg(&file)
        .output()
        .await
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => Some(Ok(text)),
        Some(1) => Some(Err(text)),
        Some(77) => {
            common::report_skip(&format!(
                "the official Standard Webhooks library: {}",
                text.trim()
            ));
            None
        }
        _ => panic!("verify-standard-webhooks.sh: {}\n{text}", out.status),
    }
}

#[tokio::test]
async fn the_official_standard_webhooks_library_verifies_real_deliveries() {
    // One subscription with a whsec_ secret, one with a secret of another form.
    let (standard, raw) = (Receiver::start().await, Receiver::start().await);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let env = webhook_env_for(
        dir.path(),
        &[(&standard, STANDARD_SECRET), (&raw, SECRET)],
        &[],
    );
    let app = spawn_app_with(Options {
        env,
        dir: Some(dir.clone()),
    })
    .await;
    let user = unique_name("hook_official");
    let (status, _) = app.event(&user, "PURCHASE", json!(TS)).await;
    assert_eq!(status, 201);

    let hit = standard
        .wait_for(1, "the whsec_ subscription")
        .await
        .remove(0);
    let Some(verdict) = official_verdict(dir.path(), &hit, STANDARD_SECRET, "whsec").await else {
        return;
    };
    assert!(verdict.is_ok(), "{verdict:?}");
    // What the library must refuse, so that the check above means something: another
    // body, and another id (the one receivers drop repeats by).
    let mut tampered = hit.clone();
    tampered.body = hit.body.replace(&user, "someone_else");
    assert_ne!(tampered.body, hit.body);
    let verdict = official_verdict(dir.path(), &tampered, STANDARD_SECRET, "whsec").await;
    assert!(matches!(verdict, Some(Err(_))), "{verdict:?}");
    let mut other_id = hit.clone();
    other_id.webhook_id = format!("{}x", hit.webhook_id);
    let verdict = official_verdict(dir.path(), &other_id, STANDARD_SECRET, "whsec").await;
    assert!(matches!(verdict, Some(Err(_))), "{verdict:?}");

    // A secret that is not whsec_<base64>: the library verifies it given as bytes.
    let hit = raw
        .wait_for(1, "the raw-secret subscription")
        .await
        .remove(0);
    let verdict = official_verdict(dir.path(), &hit, SECRET, "raw").await;
    assert!(matches!(verdict, Some(Ok(_))), "{verdict:?}");
}

#[tokio::test]
async fn deliveries_queued_while_the_receiver_is_down_survive_a_restart() {
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(503); 1000]);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let env = webhook_env(dir.path(), &receiver, &[("WEBHOOK_RETRY_BASE_MS", "20")]);
    let app = spawn_app_with(Options {
        env: env.clone(),
        dir: Some(dir),
    })
    .await;
    let user = unique_name("hook_restart");
    for ts in [TS, TS + 1] {
        let (status, _) = app.event(&user, "PURCHASE", json!(ts)).await;
        assert_eq!(status, 201);
    }
    receiver.wait_for(2, "attempts while down").await;
    let sub = subscription_id(&app).await;
    assert!(log(&app, &sub)
        .await
        .iter()
        .all(|d| d["status"] == "pending"));

    let mut backend = app.backend.clone();
    let dir = app.stop().await;
    receiver.clear_script();
    backend.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
    backend.extend(env);
    let app = spawn_app_with(Options {
        env: backend,
        dir: Some(dir),
    })
    .await;
    let rows = wait_log(&app, &sub, "delivered", 2).await;
    assert_eq!(rows.len(), 2);
    let delivered: Vec<Value> = receiver
        .hits()
        .iter()
        .filter(|h| h.ok())
        .map(|h| h.json()["data"]["points"].clone())
        .collect();
    assert_eq!(
        delivered,
        [json!(10), json!(20)],
        "both, in order, after the restart"
    );
}

#[tokio::test]
async fn one_users_deliveries_arrive_in_the_order_of_the_writes() {
    let receiver = Receiver::start().await;
    // Failures hit whichever deliveries come first: the queue must hold back the
    // user's later ones until each earlier one got through.
    receiver.script(&[Answer::Status(500); 6]);
    let app = app_for(&receiver, &[("WEBHOOK_RETRY_BASE_MS", "20")]).await;
    let (a, b) = (unique_name("hook_order_a"), unique_name("hook_order_b"));
    for i in 0..5 {
        for user in [&a, &b] {
            let (status, _) = app.event(user, "PURCHASE", json!(TS + i)).await;
            assert_eq!(status, 201);
        }
    }
    let sub = subscription_id(&app).await;
    wait_log(&app, &sub, "delivered", 10).await;
    let hits = receiver.hits();
    for user in [&a, &b] {
        let mine: Vec<Value> = hits
            .iter()
            .map(Hit::json)
            .filter(|j| j["data"]["user_id"] == user.as_str())
            .collect();
        let totals: Vec<i64> = hits
            .iter()
            .filter(|h| h.ok() && h.json()["data"]["user_id"] == user.as_str())
            .map(|h| h.json()["data"]["points"].as_i64().unwrap())
            .collect();
        assert_eq!(totals, [10, 20, 30, 40, 50], "{user}: {mine:#?}");
        // Nothing of a user is even attempted before the earlier ones are delivered.
        let attempted: Vec<i64> = mine
            .iter()
            .map(|j| j["data"]["points"].as_i64().unwrap())
            .collect();
        assert!(attempted.windows(2).all(|w| w[0] <= w[1]), "{attempted:?}");
    }
}

#[tokio::test]
async fn failed_deliveries_show_in_the_log_and_can_be_replayed() {
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(500), Answer::Status(500)]);
    let app = app_for(&receiver, &[("WEBHOOK_MAX_ATTEMPTS", "2")]).await;
    let user = unique_name("hook_replay");
    app.event(&user, "LOGIN", json!(TS)).await;
    let sub = subscription_id(&app).await;
    let rows = wait_log(&app, &sub, "failed", 1).await;
    let failed = &rows[0];
    assert_eq!(failed["attempts"], 2);
    assert_eq!(failed["last_status"], 500);
    assert_eq!(failed["last_error"], "HTTP 500 Internal Server Error");
    assert_eq!(failed["payload"]["data"]["user_id"], user.as_str());
    let (_, only_failed) = app
        .get(&format!("/v1/webhooks/{sub}/deliveries?status=failed"))
        .await;
    assert_eq!(only_failed["data"].as_array().unwrap().len(), 1);
    let (status, _) = app
        .get(&format!("/v1/webhooks/{sub}/deliveries?status=lost"))
        .await;
    assert_eq!(status, 400);

    let id = failed["id"].as_str().unwrap();
    let replay = format!("/v1/webhooks/{sub}/deliveries/replay");
    let (status, replayed) = app
        .post(&replay, json!({"delivery_ids": [id, "nope"]}))
        .await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(
        replayed,
        json!({"queued": [id], "already_pending": [], "not_found": ["nope"]})
    );
    let rows = wait_log(&app, &sub, "delivered", 1).await;
    assert_eq!(rows[0]["id"], id);
    assert_eq!(
        rows[0]["attempts"], 1,
        "a replay starts a fresh set of attempts"
    );
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.delivery == id) && hits[2].ok());

    // Without a list, every failed delivery is replayed: none is left.
    let (status, replayed) = app.post(&replay, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(replayed["queued"], json!([]));
    let (status, _) = app.post(&replay, json!({"delivery_ids": "x"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_stuck_receiver_does_not_hold_up_ingestion() {
    let receiver = Receiver::start().await;
    receiver.set_stall_all(true);
    let app = app_for(&receiver, &[("WEBHOOK_TIMEOUT_MS", "600000")]).await;
    let user = unique_name("hook_stuck");
    let (status, _) = app.event(&user, "LOGIN", json!(TS)).await;
    assert_eq!(status, 201);
    receiver.wait_for(1, "the stuck delivery").await;
    // The receiver holds that request open for the rest of the test; writes go on.
    for i in 1..=20 {
        let (status, body) = app.event(&user, "LOGIN", json!(TS + i)).await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(app.points(&user).await, 21);
    // The worker records every attempt when it ends: none is recorded, so the first
    // was still held when every write had been answered.
    let sub = subscription_id(&app).await;
    let rows = log(&app, &sub).await;
    assert_eq!(rows.len(), 21, "each write queued its delivery");
    assert!(
        rows.iter()
            .all(|d| d["status"] == "pending" && d["attempts"] == 0),
        "{rows:#?}"
    );
    assert_eq!(
        rows.last().unwrap()["id"],
        receiver.hits()[0].delivery.as_str()
    );
}

#[tokio::test]
async fn admins_manage_subscriptions_and_secrets_are_never_shown() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_with(Options {
        env: vec![("API_KEYS".into(), "k_admin:admin,k_read:read".into())],
        dir: Some(dir),
    })
    .await;
    let send = |method: reqwest::Method, path: &str, key: &str, body: Option<Value>| {
        let mut req = app.client.request(method, app.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, _) = send(reqwest::Method::GET, "/v1/webhooks", "k_read", None).await;
    assert_eq!(status, 403, "reading subscriptions needs admin");

    let (status, bad) = send(
        reqwest::Method::POST,
        "/v1/webhooks",
        "k_admin",
        Some(json!({"url": "ftp://x", "secret": "short", "events": ["points.changed", "rank.changed"]})),
    )
    .await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["url", "secret", "rank"],
        "rank.changed needs a rank: {bad}"
    );
    let (status, bad) = send(
        reqwest::Method::POST,
        "/v1/webhooks",
        "k_admin",
        Some(json!({"url": 1})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(bad["errors"].as_array().unwrap().len(), 3, "{bad}");

    let new = json!({"url": "https://hooks.example.com/et", "secret": "a-very-long-secret", "events": ["points.changed"]});
    let (status, created) = send(reqwest::Method::POST, "/v1/webhooks", "k_admin", Some(new)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["secret"], "[redacted]");
    let (_, list) = send(reqwest::Method::GET, "/v1/webhooks", "k_admin", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("a-very-long-secret"));

    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());
    let (status, _) = send(reqwest::Method::DELETE, &path, "k_admin", None).await;
    assert_eq!(status, 204);
    let (_, list) = send(reqwest::Method::GET, "/v1/webhooks", "k_admin", None).await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = send(reqwest::Method::DELETE, &path, "k_admin", None).await;
    assert_eq!(status, 204, "deleting is idempotent");
}

#[tokio::test]
async fn using_up_a_cap_sends_cap_reached_once() {
    let receiver = Receiver::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let env = webhook_env(dir.path(), &receiver, &[]);
    std::fs::write(
        dir.path().join("webhooks.yaml"),
        format!(
            "webhooks:\n  - url: {}\n    secret: {SECRET}\n    events: [cap.reached]\n",
            receiver.url
        ),
    )
    .unwrap();
    let options = Options {
        env,
        dir: Some(dir),
    };
    let app = spawn_app_with(options.rules(
        "events:\n  - {name: BONUS, point: 10, cap: {period: week, max_points: 25}}\n  - {name: PURCHASE, point: 10}\n",
    ))
    .await;
    let user = unique_name("hook_cap");
    let mut ids = Vec::new();
    for i in 0..4 {
        let (status, body) = app.event(&user, "BONUS", json!(TS + i)).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].clone());
    }
    app.event(&user, "PURCHASE", json!(TS + 10)).await;

    let hits = receiver.wait_for(1, "the cap used up").await;
    let hit = &hits[0];
    assert!(hit.signed_with(SECRET), "{hit:?}");
    let body = hit.json();
    assert_eq!(body["type"], "cap.reached");
    assert_eq!(
        body["data"],
        json!({
            "user_id": user,
            "event_type": "BONUS",
            "period": "week:2026-W45",
            "cap": {"period": "week", "max_points": 25},
            "event_id": ids[2],
        }),
        "the third BONUS (10 + 10 + 5) used the cap up"
    );
    // Deliveries are queued in the write's own transaction, so the log, read after
    // every write was answered, holds all there will be: this one. Once it is delivered
    // and a worker pass has gone by, the receiver has had everything it will get.
    let sub = subscription_id(&app).await;
    let rows = wait_log(&app, &sub, "delivered", 1).await;
    assert_eq!(
        rows.len(),
        1,
        "no points.changed subscription, the cap is reached once: {rows:#?}"
    );
    app.webhook_pass().await;
    assert_eq!(receiver.hits().len(), 1, "{:#?}", receiver.hits());
}

/// The data of the deliveries queued since the log had `seen` of them, by user id. The
/// log is read right after the write answered: deliveries are queued in the write's own
/// transaction, so they are all there already (and none are still to come).
async fn new_rank_data(app: &TestApp, sub: &str, seen: &mut usize) -> Vec<Value> {
    let rows = log(app, sub).await;
    // Newest first.
    let mut data: Vec<Value> = rows[..rows.len() - *seen]
        .iter()
        .map(|d| {
            assert_eq!(d["event"], "rank.changed", "{d}");
            d["payload"]["data"].clone()
        })
        .collect();
    *seen = rows.len();
    data.sort_by_key(|d| d["user_id"].as_str().unwrap().to_owned());
    data
}

fn rank_data(user: &str, previous: Option<u64>, rank: Option<u64>, points: i64) -> Value {
    json!({"user_id": user, "period": "all", "rank": rank, "previous_rank": previous,
           "points": points, "top": 3})
}

#[tokio::test]
async fn rank_changed_tells_who_entered_moved_and_left_the_top_3() {
    let receiver = Receiver::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let env = webhook_env(dir.path(), &receiver, &[]);
    std::fs::write(
        dir.path().join("webhooks.yaml"),
        format!(
            "webhooks:\n  - url: {}\n    secret: {SECRET}\n    events: [rank.changed]\n    rank: {{period: all, top: 3}}\n",
            receiver.url
        ),
    )
    .unwrap();
    let app = spawn_app_with(Options {
        env,
        dir: Some(dir),
    })
    .await;
    let (status, subs) = app.get("/v1/webhooks").await;
    assert_eq!(status, 200);
    assert_eq!(subs["data"][0]["rank"], json!({"period": "all", "top": 3}));
    let sub = subscription_id(&app).await;
    let [a, b, c, d] = ["rank_a", "rank_b", "rank_c", "rank_d"].map(unique_name);
    let ev = common::event::<i64>;
    let mut seen = 0;

    // An empty board fills up: a 10, b 5, c 1, each entering.
    app.batch(vec![
        ev(&a, "PURCHASE", TS),
        ev(&b, "REVIEW", TS),
        ev(&c, "LOGIN", TS),
    ])
    .await;
    assert_eq!(
        new_rank_data(&app, &sub, &mut seen).await,
        [
            rank_data(&a, None, Some(1), 10),
            rank_data(&b, None, Some(2), 5),
            rank_data(&c, None, Some(3), 1),
        ]
    );

    // Points that move no rank: a 20 and c 2 keep their places.
    app.batch(vec![ev(&a, "PURCHASE", TS + 1), ev(&c, "LOGIN", TS + 1)])
        .await;
    assert_eq!(
        new_rank_data(&app, &sub, &mut seen).await,
        Vec::<Value>::new()
    );

    // d enters first with 30: a and b move down, c (2) is pushed out. Only d wrote,
    // and the three others hear of it.
    app.batch((0..3).map(|i| ev(&d, "PURCHASE", TS + i)).collect())
        .await;
    assert_eq!(
        new_rank_data(&app, &sub, &mut seen).await,
        [
            rank_data(&a, Some(1), Some(2), 20),
            rank_data(&b, Some(2), Some(3), 5),
            rank_data(&c, Some(3), None, 2),
            rank_data(&d, None, Some(1), 30),
        ]
    );

    // b overtakes a (25 against 20): both move, d (30) stays first.
    app.batch(vec![ev(&b, "PURCHASE", TS + 1), ev(&b, "PURCHASE", TS + 2)])
        .await;
    assert_eq!(
        new_rank_data(&app, &sub, &mut seen).await,
        [
            rank_data(&a, Some(2), Some(3), 20),
            rank_data(&b, Some(3), Some(2), 25),
        ]
    );

    // c gains below the top 3: nothing.
    let (status, _) = app.event(&c, "LOGIN", json!(TS + 2)).await;
    assert_eq!(status, 201);
    assert_eq!(
        new_rank_data(&app, &sub, &mut seen).await,
        Vec::<Value>::new()
    );
    let (_, board) = app.get("/v1/leaderboard?period=all&limit=3").await;
    let top: Vec<(&str, i64)> = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["user_id"].as_str().unwrap(), e["rank"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        top,
        [(d.as_str(), 1), (b.as_str(), 2), (a.as_str(), 3)],
        "the ranks sent are the leaderboard's"
    );

    // The receiver gets all 9, signed, each user's in the order of the writes.
    let hits = receiver.wait_for(9, "every rank change").await;
    assert_eq!(wait_log(&app, &sub, "delivered", 9).await.len(), 9);
    app.webhook_pass().await;
    assert_eq!(receiver.hits().len(), 9, "nothing but the 9: {hits:#?}");
    assert!(hits.iter().all(|h| h.signed_with(SECRET)));
    assert!(hits.iter().all(|h| h.json()["type"] == "rank.changed"));
    let ranks_of = |user: &str| -> Vec<Value> {
        hits.iter()
            .map(Hit::json)
            .filter(|j| j["data"]["user_id"] == user)
            .map(|j| j["data"]["rank"].clone())
            .collect()
    };
    assert_eq!(ranks_of(&a), [json!(1), json!(2), json!(3)]);
    assert_eq!(ranks_of(&b), [json!(2), json!(3), json!(2)]);
    assert_eq!(ranks_of(&c), [json!(3), Value::Null]);
    assert_eq!(ranks_of(&d), [json!(1)]);
}

#[tokio::test]
async fn a_bad_rank_is_a_400_naming_it() {
    let app = spawn_app_with(Options {
        env: vec![],
        dir: Some(Arc::new(tempfile::tempdir().unwrap())),
    })
    .await;
    let with = |events: Value, rank: Value| {
        json!({"url": "https://hooks.example.com/rank", "secret": "a-very-long-secret",
               "events": events, "rank": rank})
    };
    let cases = [
        (with(json!(["rank.changed"]), Value::Null), "rank"),
        (with(json!(["rank.changed"]), json!({"top": 0})), "rank.top"),
        (
            with(json!(["rank.changed"]), json!({"top": 101})),
            "rank.top",
        ),
        (
            with(json!(["rank.changed"]), json!({"top": "3"})),
            "rank.top",
        ),
        (
            with(json!(["rank.changed"]), json!({"period": "year", "top": 3})),
            "rank.period",
        ),
        (with(json!(["rank.changed"]), json!([3])), "rank"),
        (
            with(json!(["rank.changed"]), json!({"top": 3, "n": 1})),
            "rank",
        ),
        (with(json!(["points.changed"]), json!({"top": 3})), "rank"),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/v1/webhooks", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        let fields: Vec<&str> = answer["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{body} -> {answer}");
    }
    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"], json!([]), "nothing was subscribed");

    // Good: period defaults to all, as for the leaderboard; it comes back as stored.
    let (status, created) = app
        .post(
            "/v1/webhooks",
            with(
                json!(["rank.changed", "points.changed"]),
                json!({"top": 10}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["rank"], json!({"period": "all", "top": 10}));
    let (status, created) = app
        .post(
            "/v1/webhooks",
            with(json!(["rank.changed"]), json!({"period": "week", "top": 3})),
        )
        .await;
    assert_eq!(status, 201, "the same URL, replaced: {created}");
    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["rank"], json!({"period": "week", "top": 3}));
    assert_eq!(list["data"][0]["events"], json!(["rank.changed"]));
}

/// Several instances on one MongoDB database share one delivery queue: each claims a
/// delivery before sending it, so every notification arrives once, and a user's still
/// arrive in the order of the writes, whichever instance took each write. MongoDB
/// only (one SQLite file is one process).
#[tokio::test]
async fn two_instances_on_one_mongodb_send_each_delivery_once_in_order() {
    if !std::env::var("TEST_BACKEND").is_ok_and(|b| b.contains("mongo")) {
        common::report_skip("runs with TEST_BACKEND=mongo");
        return;
    }
    let receiver = Receiver::start().await;
    let first = app_for(&receiver, &[("WEBHOOK_RETRY_BASE_MS", "20")]).await;
    // The second instance: the first one's database, same subscriptions file.
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut env = first.backend.clone();
    let extra = webhook_env(dir.path(), &receiver, &[("WEBHOOK_RETRY_BASE_MS", "20")]);
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend(extra);
    let second = spawn_app_with(Options {
        env,
        dir: Some(dir),
    })
    .await;
    // A few failures first, so that retries and claims interleave between instances.
    receiver.script(&[Answer::Status(500); 4]);
    let users = [unique_name("hook_two_a"), unique_name("hook_two_b")];
    for i in 0..6 {
        for user in &users {
            let app = if i % 2 == 0 { &first } else { &second };
            let (status, _) = app.event(user, "PURCHASE", json!(TS + i)).await;
            assert_eq!(status, 201);
        }
    }
    let sub = subscription_id(&first).await;
    assert_eq!(subscription_id(&second).await, sub, "one subscription");
    wait_log(&first, &sub, "delivered", 12).await;
    // A double send would come from an attempt still in flight, or from a later claim
    // of a delivered one: a whole pass of each instance since rules out both.
    tokio::join!(first.webhook_pass(), second.webhook_pass());
    let hits = receiver.hits();
    let mut delivered: Vec<&str> = hits
        .iter()
        .filter(|h| h.ok())
        .map(|h| h.delivery.as_str())
        .collect();
    delivered.sort_unstable();
    let n = delivered.len();
    delivered.dedup();
    assert_eq!(
        (n, delivered.len()),
        (12, 12),
        "each delivered exactly once"
    );
    for user in &users {
        let totals: Vec<i64> = hits
            .iter()
            .filter(|h| h.ok() && h.json()["data"]["user_id"] == user.as_str())
            .map(|h| h.json()["data"]["points"].as_i64().unwrap())
            .collect();
        assert_eq!(totals, [10, 20, 30, 40, 50, 60], "{user}");
    }
}

/// `WEBHOOK_LOG_RETENTION_SECS`: delivered and failed deliveries leave the log once
/// older than it; a pending one (here: in flight to a receiver that does not answer)
/// stays, whatever its age.
#[tokio::test]
async fn the_log_forgets_finished_deliveries_after_the_retention() {
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(500)]);
    let app = app_for(
        &receiver,
        &[
            ("WEBHOOK_LOG_RETENTION_SECS", "1"),
            ("WEBHOOK_MAX_ATTEMPTS", "1"),
            ("WEBHOOK_TIMEOUT_MS", "30000"),
        ],
    )
    .await;
    let sub = subscription_id(&app).await;
    for user in [
        unique_name("hook_prune_failed"),
        unique_name("hook_prune_ok"),
    ] {
        let (status, _) = app.event(&user, "PURCHASE", json!(TS)).await;
        assert_eq!(status, 201);
        receiver
            .wait_for(receiver.hits().len() + 1, "an attempt")
            .await;
    }
    // One failed (500, one attempt allowed), one delivered: both go.
    let mut rows = log(&app, &sub).await;
    for _ in 0..300 {
        if rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rows = log(&app, &sub).await;
    }
    assert_eq!(rows, Vec::<Value>::new(), "finished deliveries pruned");

    receiver.set_stall_all(true);
    let (status, _) = app
        .event(&unique_name("hook_prune_pending"), "PURCHASE", json!(TS))
        .await;
    assert_eq!(status, 201);
    receiver.wait_for(3, "the stalled attempt").await;
    // The worker is busy with that attempt (its pass waits for it), so the test prunes
    // itself, once the delivery is older than the retention: it stays, being pending.
    let rows = log(&app, &sub).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let updated = chrono::DateTime::parse_from_rfc3339(rows[0]["updated_at"].as_str().unwrap())
        .expect("updated_at")
        .timestamp_millis();
    while chrono::Utc::now().timestamp_millis() <= updated + 1_000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.prune_webhook_log().await, 0);
    let rows = log(&app, &sub).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["status"], "pending");
}

/// A recompute that changes a user's balance tells subscribers with `points.changed`
/// (no event ids, `reason: "recompute"`), after the user's earlier deliveries.
#[tokio::test]
async fn an_applied_recompute_sends_points_changed() {
    let receiver = Receiver::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let env = webhook_env(dir.path(), &receiver, &[]);
    let options = Options {
        env,
        dir: Some(dir.clone()),
    };
    let app = spawn_app_with(options.rules("events:\n  - {name: PURCHASE, point: 10}\n")).await;
    let user = unique_name("hook_recompute");
    let (status, _) = app.event(&user, "PURCHASE", json!(TS)).await;
    assert_eq!(status, 201);
    receiver.wait_for(1, "the write's delivery").await;

    common::write_rules(
        &dir.path().join("events.yaml"),
        "events:\n  - {name: PURCHASE, point: 15}\n",
    );
    app.reload_rules().await;
    let (_, types) = app.get("/v1/event-types").await;
    assert_eq!(types["data"][0]["points"], 15, "the new rules: {types}");
    let version = types["rules_version"]["version"].clone();
    let (status, report) = app
        .post("/v1/admin/recompute", json!({"dry_run": false}))
        .await;
    if status == 501 {
        // A standalone MongoDB applies no recompute (no transactions): nothing to send.
        common::report_skip(&format!("recompute not applied here: {report}"));
        return;
    }
    assert_eq!(status, 200, "{report}");
    let hits = receiver.wait_for(2, "the recompute's delivery").await;
    let data: Vec<Value> = hits.iter().map(|h| h.json()["data"].clone()).collect();
    assert_eq!(data[0]["points"], 10);
    assert_eq!(
        data[1],
        json!({"user_id": user, "points": 15, "delta": 5, "event_ids": [],
               "reason": "recompute", "rules_version": version})
    );
    // Nothing changes on a second run, so nothing more is queued (a recompute queues
    // its notifications with its changes): the log holds the two, both delivered, and
    // once a worker pass has gone by the receiver has had all it will get.
    let (status, report) = app
        .post("/v1/admin/recompute", json!({"dry_run": false}))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["users"], json!([]), "{report}");
    let sub = subscription_id(&app).await;
    assert_eq!(wait_log(&app, &sub, "delivered", 2).await.len(), 2);
    app.webhook_pass().await;
    assert_eq!(receiver.hits().len(), 2, "{:#?}", receiver.hits());
}

/// What the delivery log records of a refused target (`webhooks::target::REFUSED`).
const REFUSED: &str = "target refused: resolves to a non-public address";

fn error_fields(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

/// By default a subscription may not point inside the network, in any spelling of the
/// address; the answer names `url` and the setting that allows it.
#[tokio::test]
async fn targets_inside_the_network_are_refused_at_registration() {
    let app = spawn_app_with(Options {
        env: vec![],
        dir: Some(Arc::new(tempfile::tempdir().unwrap())),
    })
    .await;
    let own_admin = app.url("/v1/admin/recompute");
    let urls = [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6379/",
        "http://[::1]:22/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://127.0.0.1./",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::10.0.0.1]/", // NAT64 of a private address
        "http://[2002:a00:1::1]/",     // 6to4 of 10.0.0.1
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[ff02::1]/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://192.0.2.1/",
        "http://198.18.0.1/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "https://localhost:8443/hook", // a name, resolved (from /etc/hosts) to loopback
        own_admin.as_str(),
    ];
    for url in urls {
        let (status, body) = app
            .post(
                "/v1/webhooks",
                json!({"url": url, "secret": SECRET, "events": ["points.changed"]}),
            )
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(error_fields(&body), ["url"], "{url}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("url resolves to a non-public address")
                && message.contains("WEBHOOK_ALLOW_PRIVATE_TARGETS"),
            "{url}: {body}"
        );
    }

    // Credentials are refused, and not repeated in the answer.
    for url in [
        "https://alice:pw-s3cret-42@hooks.example.com/et",
        "https://alice@hooks.example.com/et",
    ] {
        let r = app
            .client
            .post(app.url("/v1/webhooks"))
            .json(&json!({"url": url, "secret": SECRET, "events": ["points.changed"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let text = r.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error_fields(&body), ["url"], "{text}");
        assert!(text.contains("credentials"), "{text}");
        assert!(
            !text.contains("s3cret") && !text.contains("alice"),
            "{text}"
        );
    }
    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"], json!([]), "nothing was subscribed");

    // A public address is a target (never sent to: no event is written).
    let (status, body) = app
        .post(
            "/v1/webhooks",
            json!({"url": "https://8.8.8.8/hook", "secret": SECRET, "events": ["points.changed"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// The settings that open internal receivers: every address, or listed ranges only.
#[tokio::test]
async fn the_settings_allow_internal_receivers() {
    let open = spawn_app_with(Options {
        env: vec![("WEBHOOK_ALLOW_PRIVATE_TARGETS".into(), "true".into())],
        dir: Some(Arc::new(tempfile::tempdir().unwrap())),
    })
    .await;
    let listed = spawn_app_with(Options {
        env: vec![("WEBHOOK_ALLOWED_TARGETS".into(), "127.0.0.0/8".into())],
        dir: Some(Arc::new(tempfile::tempdir().unwrap())),
    })
    .await;
    let subscribe = |app: &TestApp, url: &str| {
        let body = json!({"url": url, "secret": SECRET, "events": ["points.changed"]});
        let req = app.client.post(app.url("/v1/webhooks")).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for url in [
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/",
        "http://10.1.2.3/",
    ] {
        assert_eq!(subscribe(&open, url).await, 201, "{url}");
    }
    assert_eq!(subscribe(&listed, "http://127.0.0.1:9/hook").await, 201);
    assert_eq!(subscribe(&listed, "http://2130706433:9/").await, 201);
    for url in [
        "http://[::1]:9/",
        "http://10.1.2.3/",
        "http://169.254.169.254/",
    ] {
        assert_eq!(subscribe(&listed, url).await, 400, "{url} is not listed");
    }
}

/// `WEBHOOKS_PATH` entries are checked like registrations: one pointing inside the
/// network stops start-up, naming the variable and the entry.
#[tokio::test]
async fn a_file_subscription_inside_the_network_stops_start_up() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = common::base_env(dir.path());
    env.extend(common::backend_env());
    env.extend(webhook_env(dir.path(), &receiver, &[]));
    env.remove("WEBHOOK_ALLOW_PRIVATE_TARGETS");
    let config = eventtracker::config::Config::from_map(&env).unwrap();
    let e = match eventtracker::startup::Application::build(config).await {
        Ok(_) => panic!("started with a loopback subscription in WEBHOOKS_PATH"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.starts_with("WEBHOOKS_PATH: webhooks[0]: url resolves to a non-public address")
            && e.contains("WEBHOOK_ALLOW_PRIVATE_TARGETS"),
        "{e}"
    );
    assert!(receiver.hits().is_empty());
}

/// A subscription stored while internal targets were allowed (or whose name now
/// resolves inside the network) is refused on every attempt, on the address the
/// connection would go to: the receiver gets nothing, and the log says only that the
/// target was refused. An address in the URL fails at once; a name is retried.
#[tokio::test]
async fn a_stored_subscription_inside_the_network_is_refused_at_delivery_time() {
    let receiver = Receiver::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let allowed = spawn_app_with(Options {
        env: vec![("WEBHOOK_ALLOW_PRIVATE_TARGETS".into(), "true".into())],
        dir: Some(dir),
    })
    .await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let mut subs = Vec::new();
    for url in [receiver.url.as_str(), by_name.as_str()] {
        let (status, body) = allowed
            .post(
                "/v1/webhooks",
                json!({"url": url, "secret": SECRET, "events": ["points.changed"]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        subs.push(body["id"].as_str().unwrap().to_owned());
    }
    let mut env = allowed.backend.clone();
    env.retain(|(k, _)| k != "WEBHOOK_ALLOW_PRIVATE_TARGETS");
    env.extend([
        ("WEBHOOK_MAX_ATTEMPTS".to_string(), "2".to_string()),
        ("WEBHOOK_RETRY_BASE_MS".to_string(), "20".to_string()),
    ]);
    let dir = allowed.stop().await;
    let app = spawn_app_with(Options {
        env,
        dir: Some(dir),
    })
    .await;
    let (status, _) = app
        .event(&unique_name("hook_refused"), "PURCHASE", json!(TS))
        .await;
    assert_eq!(status, 201);

    // Both end failed: the address at its first attempt, the name after its retry.
    for (sub, attempts) in [(&subs[0], 1), (&subs[1], 2)] {
        let rows = wait_log(&app, sub, "failed", 1).await;
        assert_eq!(rows.len(), 1, "{rows:#?}");
        let d = &rows[0];
        assert_eq!(d["attempts"], attempts, "{d}");
        assert_eq!(d["last_status"], Value::Null, "{d}");
        assert_eq!(
            d["last_error"], REFUSED,
            "nothing of the address or port: {d}"
        );
    }
    // Every attempt has been made and recorded: none reached the receiver.
    assert_eq!(receiver.hits().len(), 0, "{:#?}", receiver.hits());
}

/// A 3xx is a failed attempt: recorded with its status, never followed.
#[tokio::test]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(302), Answer::Status(307)]);
    let app = app_for(&receiver, &[("WEBHOOK_MAX_ATTEMPTS", "1")]).await;
    for user in ["hook_302", "hook_307"] {
        let (status, _) = app.event(&unique_name(user), "LOGIN", json!(TS)).await;
        assert_eq!(status, 201);
    }
    let sub = subscription_id(&app).await;
    let rows = wait_log(&app, &sub, "failed", 2).await;
    let mut answers: Vec<(Value, Value)> = rows
        .iter()
        .map(|d| (d["last_status"].clone(), d["last_error"].clone()))
        .collect();
    answers.sort_by_key(|(s, _)| s.as_u64());
    assert_eq!(
        answers,
        [
            (json!(302), json!("HTTP 302 Found")),
            (json!(307), json!("HTTP 307 Temporary Redirect")),
        ]
    );
    // Both attempts are recorded, so any following would have happened by now.
    assert_eq!(receiver.hits().len(), 2);
    assert_eq!(receiver.redirected(), 0, "not followed");
}

/// The delivery log and replay of a subscription that does not exist (any more) are
/// 404 in our error format. (The subscription is never sent to: no event is written.)
#[tokio::test]
async fn an_unknown_subscription_is_404() {
    let app = spawn_app_with(Options {
        env: vec![],
        dir: Some(Arc::new(tempfile::tempdir().unwrap())),
    })
    .await;
    let (status, created) = app
        .post(
            "/v1/webhooks",
            json!({"url": "https://8.8.8.8/hook", "secret": SECRET, "events": ["points.changed"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let known = created["id"].as_str().unwrap().to_owned();
    let (status, body) = app.get(&format!("/v1/webhooks/{known}/deliveries")).await;
    assert_eq!((status, body), (200, json!({"data": []})));
    let (status, body) = app
        .post(
            &format!("/v1/webhooks/{known}/deliveries/replay"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let deleted = app
        .client
        .delete(app.url(&format!("/v1/webhooks/{known}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    for id in ["nope", known.as_str()] {
        let (status, body) = app.get(&format!("/v1/webhooks/{id}/deliveries")).await;
        assert_eq!(status, 404, "{id}: {body}");
        assert!(body["message"].is_string(), "our error format: {body}");
        let replay = format!("/v1/webhooks/{id}/deliveries/replay");
        for request in [json!({}), json!({"delivery_ids": ["x"]})] {
            let (status, body) = app.post(&replay, request).await;
            assert_eq!(status, 404, "{id}: {body}");
            assert!(body["message"].is_string(), "our error format: {body}");
        }
    }
}

/// No body and `null` are "no options" (as the OpenAPI schema says): every failed
/// delivery is replayed. Whitespace alone is not JSON, and is refused as such.
#[tokio::test]
async fn replay_takes_no_body_or_null_and_refuses_whitespace() {
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(500), Answer::Status(500)]);
    let app = app_for(&receiver, &[("WEBHOOK_MAX_ATTEMPTS", "1")]).await;
    let sub = subscription_id(&app).await;
    let replay = app.url(&format!("/v1/webhooks/{sub}/deliveries/replay"));
    let send = |body: &'static str| {
        let req = app
            .client
            .post(&replay)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, _) = app
        .event(&unique_name("hook_replay_null"), "LOGIN", json!(TS))
        .await;
    assert_eq!(status, 201);
    let failed = wait_log(&app, &sub, "failed", 1).await[0]["id"].clone();

    for body in [" ", "\n\t ", "[]", "1"] {
        let (status, answer) = send(body).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert!(answer["message"].is_string(), "{body:?}: {answer}");
    }
    let (status, answer) = send("null").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["queued"], json!([failed]), "{answer}");
    // It fails again (the second 500); then no body at all replays it.
    wait_log(&app, &sub, "failed", 1).await;
    let (status, answer) = send("").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["queued"], json!([failed]), "{answer}");
    wait_log(&app, &sub, "delivered", 1).await;
    assert_eq!(receiver.hits().len(), 3);
}

/// Malformed bodies on subscribing and on replaying get the API's JSON error with the
/// status every JSON endpoint gives: 400 naming the field (or the body), 415 for a body
/// not declared JSON. Replaying takes no body at all (no Content-Type needed), as the
/// curl examples of docs/webhooks.md send it.
#[tokio::test]
async fn malformed_bodies_are_answered_in_the_error_format() {
    let app = spawn_app_with(Options {
        env: vec![],
        dir: Some(Arc::new(tempfile::tempdir().unwrap())),
    })
    .await;
    let send = |path: String, content_type: Option<&'static str>, body: &'static str| {
        let mut req = app.client.post(app.url(&path)).body(body);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            let answer: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{path} {body:?}: not JSON ({e}): {text}"));
            (status, answer)
        }
    };
    const JSON: Option<&str> = Some("application/json");
    let subscribe = || "/v1/webhooks".to_string();
    let valid = r#"{"url": "https://8.8.8.8/hook", "secret": "whsec_test_0123456789", "events": ["points.changed"]}"#;

    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (status, answer) = send(subscribe(), content_type, valid).await;
        assert_eq!(status, 415, "{content_type:?}: {answer}");
        assert_eq!(answer["message"], "Content-Type must be application/json");
    }
    for body in ["", " ", "{", "[\"https://8.8.8.8/hook\"]", "null", "\"x\""] {
        let (status, answer) = send(subscribe(), JSON, body).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert!(answer["message"].is_string(), "{body:?}: {answer}");
        assert!(answer.get("errors").is_none(), "{body:?}: {answer}");
    }
    let (status, answer) = send(
        subscribe(),
        JSON,
        r#"{"url": "https://8.8.8.8/hook", "secret": 16, "events": "points.changed"}"#,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let fields: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["secret", "events"], "{answer}");
    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"], json!([]), "nothing was subscribed");

    let (status, created) = send(subscribe(), JSON, valid).await;
    assert_eq!(status, 201, "{created}");
    let replay = || {
        format!(
            "/v1/webhooks/{}/deliveries/replay",
            created["id"].as_str().unwrap()
        )
    };
    let nothing = json!({"queued": [], "already_pending": [], "not_found": []});
    for (content_type, body) in [
        (None, ""),
        (JSON, ""),
        (JSON, "null"),
        (JSON, "{}"),
        (JSON, r#"{"delivery_ids": null, "other": 1}"#),
    ] {
        assert_eq!(
            send(replay(), content_type, body).await,
            (200, nothing.clone()),
            "{content_type:?} {body:?}"
        );
    }
    for body in [" ", "\n", "{", "[1]", "[]", "\"x\"", "0"] {
        let (status, answer) = send(replay(), JSON, body).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert!(answer["message"].is_string(), "{body:?}: {answer}");
        assert!(answer.get("errors").is_none(), "{body:?}: {answer}");
    }
    for body in [
        r#"{"delivery_ids": []}"#,
        r#"{"delivery_ids": "x"}"#,
        r#"{"delivery_ids": [1]}"#,
        r#"{"delivery_ids": {"$in": ["x"]}}"#,
    ] {
        let (status, answer) = send(replay(), JSON, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(
            answer,
            json!({"message": "delivery_ids must be an array of 1 to 1000 delivery ids",
                   "errors": [{"field": "delivery_ids", "message": "must be an array of 1 to 1000 delivery ids"}]}),
            "{body}"
        );
    }
    for content_type in [None, Some("text/plain")] {
        let (status, answer) = send(replay(), content_type, "{}").await;
        assert_eq!(status, 415, "{content_type:?}: {answer}");
    }
}
