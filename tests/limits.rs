//! The server protects itself: header size, request time and connection count limits.

mod common;

use std::time::Duration;

use common::{spawn_app_with, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn opts(env: &[(&str, &str)]) -> Options {
    Options {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = spawn_app_with(opts(&[("MAX_HEADER_BYTES", "2048")])).await;
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
    let app = spawn_app_with(opts(&[("REQUEST_TIMEOUT_SECS", "1")])).await;
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
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let app = spawn_app_with(opts(&[("MAX_CONNECTIONS", "2")])).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s); // kept alive: each holds a slot
    }
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut buf = [0u8; 256];
    let waited = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "a third connection is not served while two are open"
    );
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("served once a slot frees")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
