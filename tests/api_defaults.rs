//! Routing corners: every routed path is in /openapi.json, and the user whose id is
//! `events` can be erased.

mod common;

use common::spawn_app;
use serde_json::json;

const MON: &str = "2026-11-02T10:00:00Z";

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
    let source = include_str!("../src/http/mod.rs");
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
