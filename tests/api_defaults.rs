//! Routing corners: the user whose id is `events` can be erased.

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
