//! Webhook deliveries of MongoDB writes cut short by a crash (staged in the database,
//! as in mongo_recovery.rs): recovery queues the notifications of the batches it
//! finishes, and queues them once even when the crash came after they were stored.
//! Needs `TEST_MONGO_URL`; runs on a replica set (transactions) and standalone.

use crate::helpers as common;

use common::{mongo_url_with_fresh_db, server_url, spawn_app_with, Options, TestApp};
use eventtracker::domain::caps::Cap;
use eventtracker::domain::event::NewEvent;
use eventtracker::domain::period::Period;
use eventtracker::domain::time::parse_query_time;
use eventtracker::store::mongo::schema::{EventDoc, Pending, EVENTS, GUARD, PERIODS, TOTALS};
use eventtracker::store::mongo::RECOVERY_GRACE_MS;
use mongodb::bson::{doc, Document};
use mongodb::Client;
use serde_json::{json, Value};

async fn app_on(url: &str) -> TestApp {
    spawn_app_with(Options {
        env: vec![
            ("MONGO_URL".into(), url.into()),
            // Attempts (to a closed port) wait long between tries: the log stays put.
            ("WEBHOOK_RETRY_BASE_MS".into(), "600000".into()),
            // The subscription is on loopback, refused by default.
            ("WEBHOOK_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
        ],
        ..Default::default()
    })
    .await
}

fn event(id: &str, event_type: &str, points: i64) -> NewEvent {
    NewEvent {
        id: id.into(),
        user_id: "p".into(),
        event_type: event_type.into(),
        ts_ms: parse_query_time("2026-11-02T10:00:00Z").expect("time"),
        event_id: None,
        properties: None,
        points,
        base_points: points,
        rules_version: Some(1),
        cap: None,
        received_ms: common::now_ms(),
    }
}

/// The subscription's log as (type, data), oldest first.
async fn log(app: &TestApp, sub: &str) -> Vec<(String, Value)> {
    let (status, body) = app.get(&format!("/v1/webhooks/{sub}/deliveries")).await;
    assert_eq!(status, 200, "{body}");
    let mut rows: Vec<(String, Value)> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| {
            (
                d["event"].as_str().unwrap_or_default().to_owned(),
                d["payload"]["data"].clone(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

#[tokio::test]
async fn recovered_batches_notify_once() {
    let Some(base) = server_url("TEST_MONGO_URL") else {
        return;
    };
    let url = mongo_url_with_fresh_db(&base);
    let app = app_on(&url).await;
    let (status, body) = app
        .post(
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "secret": "whsec_0123456789abcdef",
                   "events": ["points.changed", "cap.reached"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sub = body["id"].as_str().expect("id").to_owned();
    app.stop().await;

    // A batch cut short after its events were inserted: no counter, no delivery yet.
    // The second event used up its type's cap when it was awarded.
    let db = Client::with_uri_str(&url)
        .await
        .expect("client")
        .default_database()
        .expect("database");
    let old = common::now_ms() - RECOVERY_GRACE_MS - 5_000;
    let pending = || {
        Some(Pending {
            batch: "batch-e".into(),
            at_ms: old,
        })
    };
    let cap = Cap {
        period: Period::Week,
        max_points: Some(5),
        max_events: None,
    };
    db.collection::<EventDoc>(EVENTS)
        .insert_many([
            EventDoc::new(&event("e1", "PURCHASE", 10), pending()),
            EventDoc::new(&event("e2", "REVIEW", 5), pending()).reaching(Some(cap)),
        ])
        .await
        .expect("stage events");

    let app = app_on(&url).await;
    assert_eq!(app.points("p").await, 15);
    let expected = vec![
        (
            "points.changed".to_owned(),
            json!({"user_id": "p", "points": 15, "delta": 15, "event_ids": ["e1", "e2"]}),
        ),
        (
            "cap.reached".to_owned(),
            json!({"user_id": "p", "event_type": "REVIEW", "period": "week:2026-W45",
                   "cap": {"period": "week", "max_points": 5}, "event_id": "e2"}),
        ),
    ];
    assert_eq!(log(&app, &sub).await, expected);
    app.stop().await;

    // The same batch cut short again after its counters and deliveries were in (its
    // events marked pending and its guard ids back): recovery must add nothing.
    db.collection::<Document>(EVENTS)
        .update_many(
            doc! { "user_id": "p" },
            doc! { "$set": { "pending": { "batch": "batch-e", "at_ms": old } } },
        )
        .await
        .expect("stage pending again");
    for coll in [TOTALS, PERIODS] {
        db.collection::<Document>(coll)
            .update_many(
                doc! { "user_id": "p" },
                doc! { "$addToSet": { GUARD: "batch-e" } },
            )
            .await
            .expect("stage guards");
    }
    let app = app_on(&url).await;
    assert_eq!(app.points("p").await, 15);
    assert_eq!(log(&app, &sub).await, expected, "no delivery twice");
    let pending_left = db
        .collection::<Document>(EVENTS)
        .count_documents(doc! { "pending": { "$exists": true } })
        .await
        .expect("count");
    assert_eq!(pending_left, 0, "the batch was retired");
    app.stop().await;
    db.drop().await.expect("drop test database");
}
