//! Access control: API keys with roles, both header forms, and per-key rate limits.

mod common;

use common::{spawn_app_with, Options, TestApp};
use serde_json::json;

const KEYS: &str = "k_ingest_1:ingest,k_read_1:read,k_ops:admin+read+ingest";

async fn app_with(extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("API_KEYS".to_string(), KEYS.to_string())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    spawn_app_with(Options {
        env,
        ..Default::default()
    })
    .await
}

async fn status(app: &TestApp, method: &str, path: &str, key: Option<&str>) -> u16 {
    let mut req = match method {
        "POST" => app
            .client
            .post(app.url(path))
            .json(&json!({"user_id": "u", "event_type": "LOGIN", "timestamp": 1_780_000_000})),
        "DELETE" => app.client.delete(app.url(path)),
        _ => app.client.get(app.url(path)),
    };
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn each_role_opens_only_its_endpoints() {
    let app = app_with(&[]).await;
    let ingest = [("POST", "/v1/users/events"), ("POST", "/v1/events/batch")];
    let read = [
        ("GET", "/v1/users/events?user_id=u"),
        ("GET", "/v1/users/u/points"),
        ("GET", "/v1/users/u/events"),
        ("GET", "/v1/leaderboard"),
        ("GET", "/v1/leaderboard/users/u"),
        ("GET", "/v1/event-types"),
        ("GET", "/metrics"),
    ];
    let admin = [("DELETE", "/v1/users/u")];
    for (m, p) in ingest.iter().chain(&read).chain(&admin) {
        assert_eq!(status(&app, m, p, None).await, 401, "{m} {p} without a key");
        assert_eq!(
            status(&app, m, p, Some("k_wrong")).await,
            401,
            "{m} {p} with an unknown key"
        );
    }
    for (m, p) in ingest {
        let s = status(&app, m, p, Some("k_ingest_1")).await;
        assert!(s != 401 && s != 403, "{m} {p}: {s}");
        assert_eq!(status(&app, m, p, Some("k_read_1")).await, 403, "{m} {p}");
    }
    for (m, p) in read {
        assert_eq!(status(&app, m, p, Some("k_read_1")).await, 200, "{m} {p}");
        assert_eq!(status(&app, m, p, Some("k_ingest_1")).await, 403, "{m} {p}");
    }
    assert_eq!(
        status(&app, "DELETE", "/v1/users/u", Some("k_read_1")).await,
        403
    );
    assert_eq!(
        status(&app, "DELETE", "/v1/users/u", Some("k_ops")).await,
        204
    );
    for p in ["/version", "/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(status(&app, "GET", p, None).await, 200, "{p} stays open");
    }
}

#[tokio::test]
async fn keys_work_in_either_header_and_errors_use_the_api_format() {
    let app = app_with(&[]).await;
    let r = app
        .client
        .get(app.url("/v1/users/u/points"))
        .header("X-API-Key", "k_read_1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/v1/users/u/points"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["message"],
        "Missing API key"
    );
    let r = app
        .client
        .get(app.url("/v1/users/u/points"))
        .bearer_auth("k_ingest_1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let msg = r.json::<serde_json::Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("read"), "{msg}");
}

#[tokio::test]
async fn metrics_and_openapi_follow_their_settings() {
    let app = app_with(&[("PUBLIC_METRICS", "true"), ("PUBLIC_OPENAPI", "false")]).await;
    assert_eq!(status(&app, "GET", "/metrics", None).await, 200);
    assert_eq!(status(&app, "GET", "/openapi.json", None).await, 401);
    assert_eq!(
        status(&app, "GET", "/openapi.json", Some("k_read_1")).await,
        200
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_per_key() {
    let app = app_with(&[("RATE_LIMIT_READ", "0.5,3")]).await;
    for _ in 0..3 {
        assert_eq!(
            status(&app, "GET", "/v1/leaderboard", Some("k_read_1")).await,
            200
        );
    }
    let r = app
        .client
        .get(app.url("/v1/leaderboard"))
        .bearer_auth("k_read_1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another key has its own bucket; another role of the same key too.
    assert_eq!(
        status(&app, "GET", "/v1/leaderboard", Some("k_ops")).await,
        200
    );
    assert_eq!(
        status(&app, "POST", "/v1/users/events", Some("k_ingest_1")).await,
        201
    );
}

#[test]
fn production_without_keys_refuses_to_start() {
    let out = std::process::Command::new(common::process::BIN)
        .env_clear()
        .env("APP_ENV", "production")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("API_KEYS") && err.contains("AUTH_DISABLED"),
        "{err}"
    );
}
