//! Access control: API keys with roles, both header forms, and per-key rate limits.

use crate::helpers as common;

use common::{spawn_app_with, Options, TestApp};
use serde_json::json;

const KEYS: &str = "k_ingest_1:ingest,k_read_1:read,k_ops:admin+read+ingest";

async fn app_with(extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("API_KEYS", KEYS)];
    env.extend_from_slice(extra);
    spawn_app_with(Options::with_env(&env)).await
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

/// `eventtracker ARGS` with only `env` (plus a loopback address on a free port), from
/// the repository (its `config/events.yaml`): whether it succeeded, and its stderr. A
/// server that starts instead of refusing is stopped after 20 s and reported as such.
fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(common::process::BIN)
        .args(args)
        .env_clear()
        .env("API_SERVER_HOST", "127.0.0.1")
        .env("API_SERVER_PORT", "0")
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run eventtracker");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("eventtracker {args:?} still running after 20 s: it did not refuse");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    (status.success(), err)
}

#[test]
fn production_refuses_keys_under_16_characters_at_start_up() {
    // The keys docker-compose.yml used to default to.
    let shipped = "change-me-ingest:ingest,change-me-read:read,change-me-admin:admin+read+ingest";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, "# ops\nk_ops_2024:admin\n").unwrap();
    let file = file.to_str().unwrap();
    let sqlite = dir.path().join("et.db");
    let sqlite = sqlite.to_str().unwrap();
    for (var, value, secret) in [
        ("API_KEYS", shipped, "change-me"),
        ("API_KEYS_FILE", file, "k_ops"),
    ] {
        for command in ["serve", "check-config"] {
            let (ok, err) = run_binary(
                &[command],
                &[
                    ("APP_ENV", "production"),
                    (var, value),
                    ("SQLITE_PATH", sqlite),
                ],
            );
            assert!(!ok, "{command} with a short key in {var}");
            assert!(
                err.contains(&format!("{var}: ")) && err.contains("at least 16"),
                "{command}: {err}"
            );
            assert!(!err.contains(secret), "{command} printed the key: {err}");
        }
    }
    // Long keys pass the same check.
    let (ok, err) = run_binary(
        &["check-config"],
        &[
            ("APP_ENV", "production"),
            ("API_KEYS", "k_ops_7d1f0c9a2b4e6f8a:admin+read+ingest"),
            ("SQLITE_PATH", sqlite),
        ],
    );
    assert!(ok, "{err}");
}

/// A request with `header: value`, answered status.
async fn status_with(app: &TestApp, method: &str, path: &str, header: (&str, &str)) -> u16 {
    let req = match method {
        "POST" => app.client.post(app.url(path)).json(&json!({})),
        _ => app.client.get(app.url(path)),
    };
    req.header(header.0, header.1)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = app_with(&[]).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let v = format!("{scheme} k_read_1");
        assert_eq!(
            status_with(&app, "GET", "/v1/users/u/points", ("authorization", &v)).await,
            200,
            "{v}"
        );
    }
    for v in ["Basic k_read_1", "Bearerk_read_1", "k_read_1", "Bearer "] {
        assert_eq!(
            status_with(&app, "GET", "/v1/users/u/points", ("authorization", v)).await,
            401,
            "{v}"
        );
    }
}

#[tokio::test]
async fn a_wrong_key_in_x_api_key_is_401_and_admin_endpoints_need_admin() {
    let app = app_with(&[]).await;
    for wrong in ["k_wrong", "k_read_1x", "K_READ_1", " "] {
        assert_eq!(
            status_with(&app, "GET", "/v1/users/u/points", ("x-api-key", wrong)).await,
            401,
            "{wrong:?}"
        );
    }
    for path in ["/v1/admin/recompute", "/v1/admin/cache/rebuild"] {
        assert_eq!(status(&app, "POST", path, None).await, 401, "{path}");
        for key in ["k_read_1", "k_ingest_1"] {
            assert_eq!(
                status(&app, "POST", path, Some(key)).await,
                403,
                "{path} {key}"
            );
            assert_eq!(
                status_with(&app, "POST", path, ("x-api-key", key)).await,
                403,
                "{path} {key} in X-API-Key"
            );
        }
    }
    // The admin key gets through (a dry run changes nothing).
    assert_eq!(
        status_with(&app, "POST", "/v1/admin/recompute", ("x-api-key", "k_ops")).await,
        200
    );
}

#[tokio::test]
async fn ingest_and_admin_rate_limits_apply_per_key_and_role() {
    let app = app_with(&[
        ("RATE_LIMIT_INGEST", "0.5,2"),
        ("RATE_LIMIT_ADMIN", "0.5,1"),
    ])
    .await;
    let limited = |method: &'static str, path: &'static str, key: &'static str| {
        let app = &app;
        async move {
            let req = match method {
                "DELETE" => app.client.delete(app.url(path)),
                _ => app.client.post(app.url(path)).json(
                    &json!({"user_id": "u", "event_type": "LOGIN", "timestamp": 1_780_000_000}),
                ),
            };
            let r = req.bearer_auth(key).send().await.unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            (r.status().as_u16(), retry)
        }
    };
    // Admin: a burst of one per key.
    assert_eq!(limited("DELETE", "/v1/users/u", "k_ops").await.0, 204);
    let (s, retry) = limited("DELETE", "/v1/users/u", "k_ops").await;
    assert_eq!(s, 429);
    assert!(retry.is_some_and(|r| (1..=2).contains(&r)), "{retry:?}");
    // The same key's ingest bucket is its own: a burst of two, then 429.
    assert_ne!(limited("POST", "/v1/users/events", "k_ops").await.0, 429);
    assert_ne!(limited("POST", "/v1/users/events", "k_ops").await.0, 429);
    assert_eq!(limited("POST", "/v1/users/events", "k_ops").await.0, 429);
    // Another ingest key has its own bucket.
    assert_eq!(
        limited("POST", "/v1/users/events", "k_ingest_1").await.0,
        409,
        "the same event again: a duplicate, not rate limited"
    );
    // Reads have no limit configured: unaffected by both.
    for _ in 0..10 {
        assert_eq!(
            status(&app, "GET", "/v1/leaderboard", Some("k_ops")).await,
            200
        );
    }
}

#[tokio::test]
async fn keys_appear_in_logs_only_as_a_short_prefix() {
    use common::process;
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = common::base_env(dir.path()).into_iter().collect();
    env.extend(common::backend_env());
    let (admin, reader, short) = ("k_ops_SECRET_0123456789", "k_rd_SECRET_9876543210", "zq9");
    env.push((
        "API_KEYS".into(),
        format!("{admin}:admin+read+ingest,{reader}:read,{short}:read"),
    ));
    // Debug: every line the server can write about a request.
    env.push(("LOG_LEVEL".into(), "debug".into()));
    let server = process::start(&env);
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.base);
    let unknown = "k_unknown_SECRET_55555";
    let unknown_short = "zq7";
    let event = json!({"user_id": "u", "event_type": "LOGIN", "timestamp": 1_780_000_000});
    let requests = [
        client.get(url("/v1/leaderboard")).bearer_auth(unknown),
        client
            .get(url("/v1/leaderboard"))
            .header("x-api-key", unknown_short),
        client
            .post(url("/v1/users/events"))
            .bearer_auth(reader)
            .json(&event),
        client
            .post(url("/v1/users/events"))
            .header("x-api-key", short)
            .json(&event),
        client
            .post(url("/v1/users/events"))
            .bearer_auth(admin)
            .json(&event),
    ];
    let mut answers = Vec::new();
    for r in requests {
        answers.push(r.send().await.unwrap().status().as_u16());
    }
    assert_eq!(answers, [401, 401, 403, 403, 201]);
    // The log lines are written before the answers; give the pipe a moment.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.log_text().contains("API key lacks the role")
        || server.log_text().matches("unknown API key").count() < 2
    {
        assert!(std::time::Instant::now() < until, "{}", server.log_text());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let log = server.log_text();
    for key in [admin, reader, short, unknown, unknown_short] {
        assert!(!log.contains(key), "{key} in the log:\n{log}");
    }
    assert!(!log.contains("SECRET"), "more than a prefix logged:\n{log}");
    for prefix in ["k_un…", "k_rd…"] {
        assert!(log.contains(prefix), "{prefix} not logged:\n{log}");
    }
    // Keys under 8 characters: not even their first one.
    for line in log.lines().filter(|l| l.contains("API key")) {
        assert!(!line.contains("zq"), "{line}");
    }
    // Outside production the short key is accepted, with a warning naming where it is.
    let warning = log
        .lines()
        .find(|l| l.contains("API keys shorter than 16 characters"))
        .unwrap_or_else(|| panic!("no warning about the short key:\n{log}"));
    assert!(warning.contains("API_KEYS entry 3"), "{warning}");
}
