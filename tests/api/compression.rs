//! Response compression against the real server: gzip when the client asks for it and
//! the answer is large enough, the same bytes once decoded, and nothing changed for
//! clients that do not ask (Prometheus without gzip, curl, the original service's
//! clients).

use crate::helpers as common;

use std::io::Read;

use common::{spawn_app, TestApp};
use reqwest::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, VARY};
use reqwest::Method;
use serde_json::json;

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn encoding(&self) -> Option<&str> {
        self.headers
            .get(CONTENT_ENCODING)
            .map(|v| v.to_str().expect("ascii header"))
    }

    fn varies_on_accept_encoding(&self) -> bool {
        self.headers
            .get_all(VARY)
            .iter()
            .any(|v| v.to_str().unwrap_or("").contains("accept-encoding"))
    }
}

/// `method path`, sending `Accept-Encoding: accept` when given. reqwest is built without
/// its gzip feature, so it sends no Accept-Encoding of its own and decodes nothing.
async fn send(app: &TestApp, method: Method, path: &str, accept: Option<&str>) -> Answer {
    let mut req = app.client.request(method, app.url(path));
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    let r = req.send().await.expect("request");
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.bytes().await.expect("body").to_vec(),
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

/// A GET of `path` with and without gzip: compressed, smaller, and the same bytes.
async fn assert_gzipped(app: &TestApp, path: &str) {
    let plain = send(app, Method::GET, path, None).await;
    assert_eq!(plain.status, 200, "{path}");
    assert_eq!(plain.encoding(), None, "{path} without Accept-Encoding");
    assert_eq!(
        plain.headers[CONTENT_LENGTH].to_str().unwrap(),
        plain.body.len().to_string(),
        "{path}: uncompressed answers keep their length"
    );
    let zipped = send(app, Method::GET, path, Some("gzip, deflate, br")).await;
    assert_eq!(zipped.status, 200, "{path}");
    assert_eq!(zipped.encoding(), Some("gzip"), "{path}");
    assert!(
        zipped.varies_on_accept_encoding(),
        "{path}: caches must key on it"
    );
    assert!(
        plain.varies_on_accept_encoding(),
        "{path}: both variants say they vary"
    );
    assert_eq!(
        zipped.headers["content-type"], plain.headers["content-type"],
        "{path}"
    );
    assert!(
        zipped.body.len() < plain.body.len(),
        "{path}: {} bytes gzipped, {} plain",
        zipped.body.len(),
        plain.body.len()
    );
    assert!(zipped.headers.contains_key("x-request-id"), "{path}");
    assert_eq!(
        gunzip(&zipped.body),
        plain.body,
        "{path}: decodes to the same"
    );
}

#[tokio::test]
async fn dashboard_assets_and_openapi_are_gzipped_for_clients_that_ask() {
    let app = spawn_app().await;
    for path in [
        "/dashboard",
        "/dashboard/assets/style.css",
        "/dashboard/assets/main.js",
        "/openapi.json",
    ] {
        assert_gzipped(&app, path).await;
    }
    // An SVG is text and would shrink, but this one is below the threshold.
    let icon = send(
        &app,
        Method::GET,
        "/dashboard/assets/icon.svg",
        Some("gzip"),
    )
    .await;
    assert_eq!(icon.status, 200);
    assert!(icon.body.len() < eventtracker::http::compression::MIN_SIZE as usize);
    assert_eq!(icon.encoding(), None);
}

#[tokio::test]
async fn a_long_leaderboard_is_gzipped_and_a_short_answer_is_not() {
    let app = spawn_app().await;
    let events = (0..300)
        .map(|i| json!({"user_id": format!("user-{i:04}"), "event_type": "PURCHASE", "timestamp": 1_780_000_000 + i}))
        .collect();
    assert_eq!(app.batch(events).await["created"], 300);
    assert_gzipped(&app, "/v1/leaderboard?period=all&limit=300").await;

    for path in [
        "/v1/users/user-0001/points",
        "/version",
        "/healthz",
        "/nope",
    ] {
        let small = send(&app, Method::GET, path, Some("gzip")).await;
        assert!(
            small.body.len() < eventtracker::http::compression::MIN_SIZE as usize,
            "{path} is small"
        );
        assert_eq!(small.encoding(), None, "{path} is sent as it is");
        assert!(!small.body.is_empty(), "{path}");
    }
}

#[tokio::test]
async fn clients_that_refuse_gzip_or_know_only_other_codings_get_plain_answers() {
    let app = spawn_app().await;
    for accept in ["identity", "gzip;q=0", "br", "zstd, br;q=0.9"] {
        let a = send(&app, Method::GET, "/openapi.json", Some(accept)).await;
        assert_eq!(a.status, 200, "{accept}");
        assert_eq!(a.encoding(), None, "Accept-Encoding: {accept}");
        let doc: serde_json::Value = serde_json::from_slice(&a.body).expect("plain JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    }
}

#[tokio::test]
async fn metrics_are_plain_text_without_accept_encoding_and_gzip_for_prometheus() {
    let app = spawn_app().await;
    // Some traffic, so the exposition is long enough to be worth compressing.
    for _ in 0..3 {
        send(&app, Method::GET, "/v1/leaderboard", None).await;
    }
    let plain = send(&app, Method::GET, "/metrics", None).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.encoding(), None);
    let text = String::from_utf8(plain.body.clone()).expect("metrics are UTF-8 text");
    assert!(text.contains("# TYPE "), "{text}");
    assert!(
        text.lines()
            .all(|l| l.is_empty() || l.starts_with('#') || l.split_whitespace().count() >= 2),
        "every line a comment or a sample: {text}"
    );

    // What Prometheus sends on a scrape.
    let scrape = send(&app, Method::GET, "/metrics", Some("gzip")).await;
    assert_eq!(scrape.status, 200);
    assert!(plain.body.len() >= eventtracker::http::compression::MIN_SIZE as usize);
    assert_eq!(scrape.encoding(), Some("gzip"));
    let decoded = String::from_utf8(gunzip(&scrape.body)).expect("UTF-8");
    assert!(decoded.contains("# TYPE "), "{decoded}");
}

#[tokio::test]
async fn head_answers_carry_the_get_headers_and_no_body() {
    let app = spawn_app().await;
    let path = "/dashboard/assets/style.css";
    let get = send(&app, Method::GET, path, None).await;
    let head = send(&app, Method::HEAD, path, None).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.encoding(), None);
    assert_eq!(
        head.headers[CONTENT_LENGTH], get.headers[CONTENT_LENGTH],
        "HEAD tells the length GET sends"
    );

    let get = send(&app, Method::GET, path, Some("gzip")).await;
    let head = send(&app, Method::HEAD, path, Some("gzip")).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.encoding(), get.encoding());
    assert_eq!(head.encoding(), Some("gzip"));
    assert_eq!(head.headers["content-type"], get.headers["content-type"]);
    assert!(head.headers.contains_key("x-request-id"));
}
