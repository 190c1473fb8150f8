//! The documented defaults (body limit, page sizes, `end` of the `all` period, event
//! metrics) and the routing corners: every routed path is in /openapi.json, and the user
//! whose id is `events` can be erased.

use crate::helpers as common;

use common::{spawn_app, TestApp};
use serde_json::{json, Value};

const MON: &str = "2026-11-02T10:00:00Z";
const MIB: usize = 1024 * 1024;

/// A valid event body of exactly `len` bytes (padded with an ignored field).
fn event_body_of_len(len: usize) -> String {
    let head = format!(r#"{{"user_id":"big","event_type":"LOGIN","timestamp":"{MON}","pad":""#);
    let tail = "\"}";
    let body = format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()));
    assert_eq!(body.len(), len);
    body
}

async fn post_raw(app: &TestApp, path: &str, content_type: &str, body: String) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn default_body_limit_is_one_mib_on_both_ingest_endpoints() {
    let app = spawn_app().await;
    let (s, body) = post_raw(
        &app,
        "/v1/users/events",
        "application/json",
        event_body_of_len(MIB),
    )
    .await;
    assert_ne!(s, 413, "exactly 1 MiB is within the default limit: {body}");
    let (s, body) = post_raw(
        &app,
        "/v1/users/events",
        "application/json",
        event_body_of_len(MIB + 1),
    )
    .await;
    assert_eq!(s, 413, "one byte over 1 MiB");
    assert!(body["message"].is_string(), "{body}");

    // The batch endpoint has the same limit and the same content-type rule.
    let event =
        json!({"user_id": "b", "event_type": "LOGIN", "timestamp": MON, "pad": "x".repeat(2000)});
    let over = json!({ "events": vec![event; 600] }).to_string();
    assert!(over.len() > MIB);
    let (s, body) = post_raw(&app, "/v1/events/batch", "application/json", over).await;
    assert_eq!(s, 413, "{body}");
    assert!(body["message"].is_string(), "{body}");
    let small = json!({ "events": [{"user_id": "b", "event_type": "LOGIN", "timestamp": MON}] });
    let (s, body) = post_raw(&app, "/v1/events/batch", "text/plain", small.to_string()).await;
    assert_eq!(s, 415, "{body}");
    assert!(body["message"].is_string(), "{body}");
    let (s, body) = post_raw(
        &app,
        "/v1/events/batch",
        "application/json",
        small.to_string(),
    )
    .await;
    assert_eq!((s, &body["created"]), (200, &json!(1)), "{body}");
}

#[tokio::test]
async fn default_page_sizes_of_the_listing_and_the_history() {
    let app = spawn_app().await;
    // 120 users with one event each, and one user with 60: one batch request.
    let mut events: Vec<Value> = (0..120)
        .map(|i| json!({"user_id": format!("u{i:03}"), "event_type": "LOGIN", "timestamp": MON}))
        .collect();
    events.extend((0..60).map(
        |i| json!({"user_id": "hist", "event_type": "PURCHASE", "timestamp": 1_780_000_000 + i}),
    ));
    let r = app.batch(events).await;
    assert_eq!(r["created"], 180, "{r}");

    let (s, list) = app.get("/v1/users/events").await;
    assert_eq!(s, 200);
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 100, "limit defaults to 100");
    assert_eq!(data[0], json!({"userId": "hist", "points": 600}));
    let points: Vec<i64> = data.iter().map(|u| u["points"].as_i64().unwrap()).collect();
    assert!(points.windows(2).all(|w| w[0] >= w[1]), "highest first");
    let (_, rest) = app.get("/v1/users/events/?offset=100").await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 21);
    let (_, all) = app.get("/v1/users/events?limit=1000").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 121);

    let (s, history) = app.get("/v1/users/hist/events").await;
    assert_eq!(s, 200);
    assert_eq!(
        history["data"].as_array().unwrap().len(),
        50,
        "limit defaults to 50"
    );
    assert!(history["next_cursor"].is_string());
    let cursor = history["next_cursor"].as_str().unwrap();
    let (_, next) = app
        .get(&format!("/v1/users/hist/events?cursor={cursor}"))
        .await;
    assert_eq!(next["data"].as_array().unwrap().len(), 10);
    assert_eq!(next["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_all_period_has_neither_start_nor_end() {
    let app = spawn_app().await;
    app.event("a", "PURCHASE", json!(MON)).await;
    for q in ["?period=all", ""] {
        let (s, lb) = app.get(&format!("/v1/leaderboard{q}")).await;
        assert_eq!(s, 200, "{lb}");
        assert_eq!(lb["period"], "all", "{q}");
        assert_eq!(lb["start"], Value::Null, "{q}: {lb}");
        assert_eq!(lb["end"], Value::Null, "{q}: {lb}");
        assert!(lb.as_object().unwrap().contains_key("end"), "present, null");
        assert_eq!(
            lb["entries"],
            json!([{"rank": 1, "user_id": "a", "points": 10}])
        );
    }
}

/// The value of one `events_total` series; 0 before it exists.
async fn events_total(app: &TestApp, outcome: &str) -> u64 {
    let text = app.metrics().await;
    let series = format!("events_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|v| v.trim().parse::<f64>().expect("a number") as u64)
        .unwrap_or(0)
}

#[tokio::test]
async fn metrics_count_duplicate_and_rejected_events() {
    let app = spawn_app().await;
    // The recorder is process-wide and other tests run alongside: compare increments.
    let (dup0, rej0) = (
        events_total(&app, "duplicate").await,
        events_total(&app, "rejected").await,
    );
    assert_eq!(app.event("m", "LOGIN", json!(MON)).await.0, 201);
    assert_eq!(app.event("m", "LOGIN", json!(MON)).await.0, 409);
    assert_eq!(app.event("m", "NO_SUCH_TYPE", json!(MON)).await.0, 400);
    let r = app
        .batch(vec![
            json!({"user_id": "m", "event_type": "LOGIN", "timestamp": MON}),
            json!({"user_id": "m", "event_type": "LOGIN"}),
            json!({"user_id": "m", "event_type": "PURCHASE", "timestamp": MON}),
        ])
        .await;
    assert_eq!(
        (&r["created"], &r["duplicates"], &r["rejected"]),
        (&json!(1), &json!(1), &json!(1))
    );
    assert!(events_total(&app, "duplicate").await >= dup0 + 2);
    assert!(events_total(&app, "rejected").await >= rej0 + 2);
}

#[tokio::test]
async fn the_user_named_events_can_be_erased() {
    let app = spawn_app().await;
    app.batch(vec![
        json!({"user_id": "events", "event_type": "PURCHASE", "timestamp": MON}),
        json!({"user_id": "other", "event_type": "LOGIN", "timestamp": MON}),
    ])
    .await;
    assert_eq!(app.points("events").await, 10);
    let r = app
        .client
        .delete(app.url("/v1/users/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.points("events").await, 0);
    assert_eq!(
        app.get("/v1/users/events/events").await.1["data"],
        json!([])
    );
    assert_eq!(app.points("other").await, 1);
    // The compatible endpoint on that path is unchanged.
    assert_eq!(
        app.get("/v1/users/events").await.1["data"],
        json!([{"userId": "other", "points": 1}])
    );
    assert_eq!(app.event("x", "LOGIN", json!(MON)).await.0, 201);
}

/// The paths given to `.route(` in src/http/mod.rs.
fn routed_paths() -> Vec<String> {
    let source = include_str!("../../src/http/mod.rs");
    source
        .split(".route(")
        .skip(1)
        .map(|rest| {
            let start = rest.find('"').expect("a path literal") + 1;
            let len = rest[start..].find('"').expect("its end");
            rest[start..start + len].to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_routed_path_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let (s, doc) = app.get("/openapi.json").await;
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().unwrap();
    let routed = routed_paths();
    assert!(routed.len() > 20, "{routed:?}");
    // The dashboard's HTML page and static files are for browsers, not API clients
    // (docs/dashboard.md).
    let browser_only = ["/", "/dashboard", "/dashboard/assets/{name}"];
    let missing: Vec<&String> = routed
        .iter()
        .filter(|p| !browser_only.contains(&p.as_str()) && !paths.contains_key(p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "routed, not in /openapi.json: {missing:?}"
    );

    // The compatible trailing-slash alias, with both of its methods.
    let alias = &paths["/v1/users/events/"];
    assert!(
        alias["get"].is_object() && alias["post"].is_object(),
        "{alias}"
    );
    assert!(alias.get("delete").is_none());
    let plain = &paths["/v1/users/events"];
    assert_ne!(alias["get"]["operationId"], plain["get"]["operationId"]);
    assert_eq!(alias["get"]["parameters"], plain["get"]["parameters"]);
    assert_eq!(alias["post"]["requestBody"], plain["post"]["requestBody"]);
    // DELETE of the user named `events`.
    assert!(plain["delete"].is_object(), "{plain}");
    assert!(plain["get"].is_object() && plain["post"].is_object());
}
