//! The server protects itself: header size, request time and connection count limits.

use crate::helpers as common;

use std::time::Duration;

use common::{spawn_app, spawn_app_with, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = spawn_app_with(Options::with_env(&[("MAX_HEADER_BYTES", "2048")])).await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-padding", "p".repeat(4000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    assert!(r.json::<serde_json::Value>().await.unwrap()["message"].is_string());
    let long_query = format!("/v1/leaderboard?x={}", "q".repeat(4000));
    assert_eq!(
        app.client
            .get(app.url(&long_query))
            .send()
            .await
            .unwrap()
            .status(),
        431
    );
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_request_that_never_finishes_its_body_times_out() {
    let app = spawn_app_with(Options::with_env(&[("REQUEST_TIMEOUT_SECS", "1")])).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    // Promise 100 bytes, send 2, then go quiet.
    s.write_all(b"POST /v1/users/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answered in time")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
}

#[tokio::test]
async fn beyond_the_limit_connections_being_served_make_new_ones_wait() {
    let app = spawn_app_with(Options::with_env(&[("MAX_CONNECTIONS", "2")])).await;
    let addr = addr_of(&app);
    // Each holds a request in progress: its body never comes.
    let busy = b"POST /v1/users/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(busy).await.unwrap();
        held.push(s);
    }
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let waited = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "a third connection is not served while two requests are in progress"
    );
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("served once a slot frees")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// Sends `request` on a new connection and reads until the server closes it: the status
/// line, the `content-type` and the body.
async fn exchange_until_close(addr: &str, request: &[u8]) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading all of an oversized request.
    let _ = s.write_all(request).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("the server answers and closes");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

fn addr_of(app: &common::TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_our_json_error() {
    let app = spawn_app().await;
    let addr = addr_of(&app);
    // Over hyper's fixed 64 KiB URL limit: answered before any of our code runs.
    let long_url = format!(
        "GET /healthz?x={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "u".repeat(70_000)
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..150)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: [(&[u8], &str, &str); 3] = [
        (long_url.as_bytes(), "414", "Request URL is too long"),
        (
            many_headers.as_bytes(),
            "431",
            "Request headers are too large or too many",
        ),
        (
            b"NOT AN HTTP REQUEST\r\n\r\n",
            "400",
            "Malformed HTTP request",
        ),
    ];
    for (request, status, message) in cases {
        let (line, content_type, body) = exchange_until_close(&addr, request).await;
        assert!(line.starts_with(&format!("HTTP/1.1 {status} ")), "{line}");
        assert_eq!(content_type, "application/json", "{line}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(json["message"], message);
    }
    // The server goes on serving.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn invalid_utf8_in_a_path_parameter_is_a_json_error_naming_it() {
    let app = spawn_app().await;
    for (path, param) in [
        ("/v1/users/%ff/events", "user_id"),
        ("/v1/users/%ff/points", "user_id"),
        ("/dashboard/assets/..%c0%af", "name"),
        ("/v1/webhooks/%ff/deliveries", "id"),
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(ct, "application/json", "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], param, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_head_is_closed() {
    let app = spawn_app_with(Options::with_env(&[("HEADER_READ_TIMEOUT_SECS", "1")])).await;
    // The recorder is process-wide and other tests run alongside: compare increments.
    let before = header_timeouts(&app).await;
    let addr = addr_of(&app);
    let silent = TcpStream::connect(&addr).await.unwrap();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for mut s in [silent, slow] {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("closed by the server, not left open")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
    let after = header_timeouts(&app).await;
    assert!(after >= before + 2.0, "{before} before, {after} after");
}

/// Connections closed for not finishing their head in time, process-wide; 0 before any.
async fn header_timeouts(app: &common::TestApp) -> f64 {
    app.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("http_connections_closed_total{reason=\"header_timeout\"} "))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_timeout() {
    let app = spawn_app_with(Options::with_env(&[("KEEP_ALIVE_TIMEOUT_SECS", "1")])).await;
    let mut s = TcpStream::connect(&addr_of(&app)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("the idle connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_request_in_progress_is_not_cut_by_the_header_deadline() {
    let app = spawn_app_with(Options::with_env(&[
        ("HEADER_READ_TIMEOUT_SECS", "1"),
        ("REQUEST_TIMEOUT_SECS", "3"),
    ]))
    .await;
    let mut s = TcpStream::connect(&addr_of(&app)).await.unwrap();
    // The head is complete, the body never comes: the request timeout answers it, well
    // after the header deadline.
    s.write_all(b"POST /v1/users/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "answered by the request timeout"
    );
}

#[tokio::test]
async fn slow_clients_beyond_the_connection_limit_do_not_delay_a_normal_one() {
    // The header deadline is far away: only giving idle places up makes room.
    let app = spawn_app_with(Options::with_env(&[
        ("MAX_CONNECTIONS", "20"),
        ("HEADER_READ_TIMEOUT_SECS", "60"),
    ]))
    .await;
    let addr = addr_of(&app);
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let answered = tokio::time::timeout(
            Duration::from_secs(1),
            client.get(app.url("/healthz")).send(),
        )
        .await
        .expect("served within a second despite the slow clients")
        .unwrap();
        assert_eq!(answered.status(), 200);
    }
    drop(slow);
}
