//! A MongoDB database written by a version before the user-state layout (per-type
//! `type_totals` and a `period_points` document per period, `all` included) is
//! migrated when the store starts on it: totals, breakdown, every board and the
//! delivery order carry over, and new events count on top. Needs `TEST_MONGO_URL`
//! (scripts/mongo-test-server.sh); skipped without.

use crate::helpers as common;

use common::{mongo_url_with_fresh_db, server_url, spawn_app_with, Options};
use mongodb::bson::{doc, Document};
use serde_json::json;

const DAY_MS: i64 = 86_400_000;
/// 2026-09-07 10:00 UTC (a Monday), and 40 days later: another day, week and month,
/// both in the past for the test's clock.
const FIRST: i64 = 1_788_775_200_000;
const LATER: i64 = FIRST + 40 * DAY_MS;

fn event(id: &str, user: &str, ty: &str, ts_ms: i64, points: i64) -> Document {
    doc! {
        "_id": id, "user_id": user, "dedup_key": format!("{ty}:{ts_ms}"), "event_type": ty,
        "ts_ms": ts_ms, "event_id": null, "points": points, "properties": null,
        "received_ms": ts_ms, "base_points": points,
    }
}

/// The documents the old layout holds for `user` after the events of [`event`]s
/// PURCHASE and LOGIN on FIRST's day and PURCHASE on LATER's.
async fn seed_old_layout(db: &mongodb::Database, user: &str) {
    db.collection::<Document>("events")
        .insert_many([
            event(&format!("{user}-1"), user, "PURCHASE", FIRST, 10),
            event(&format!("{user}-2"), user, "LOGIN", FIRST + 1, 1),
            event(&format!("{user}-3"), user, "PURCHASE", LATER, 10),
        ])
        .await
        .unwrap();
    let total = |ty: &str, events: i64, points: i64| {
        doc! { "_id": format!("{ty}|{user}"), "user_id": user, "event_type": ty, "events": events, "points": points }
    };
    db.collection::<Document>("type_totals")
        .insert_many([total("PURCHASE", 2, 20), total("LOGIN", 1, 1)])
        .await
        .unwrap();
    let period = |key: &str, points: i64| {
        doc! { "_id": format!("{key}|{user}"), "user_id": user, "period": key, "points": points }
    };
    let mut all = period("all", 21);
    all.insert("seq", 3_i64);
    db.collection::<Document>("period_points")
        .insert_many([
            all,
            period("day:2026-09-07", 11),
            period("week:2026-W37", 11),
            period("month:2026-09", 11),
            period("day:2026-10-17", 10),
            period("week:2026-W42", 10),
            period("month:2026-10", 10),
        ])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_database_of_the_old_layout_is_migrated_at_start() {
    let Some(base) = server_url("TEST_MONGO_URL") else {
        return;
    };
    let url = mongo_url_with_fresh_db(&base);
    let client = mongodb::Client::with_uri_str(&url).await.unwrap();
    let db = client.default_database().expect("database in the URL");
    let user = common::unique_name("migrated");
    seed_old_layout(&db, &user).await;

    let app = spawn_app_with(Options {
        env: vec![("MONGO_URL".into(), url.clone())],
        ..Default::default()
    })
    .await;
    let (status, points) = app.get(&format!("/v1/users/{user}/points")).await;
    assert_eq!(status, 200, "{points}");
    assert_eq!(points["points"], 21, "{points}");
    assert_eq!(
        points["by_type"],
        json!({"LOGIN": {"events": 1, "points": 1}, "PURCHASE": {"events": 2, "points": 20}})
    );
    for (period, at, expected) in [
        ("all", "2026-09-07T00:00:00Z", 21),
        ("day", "2026-09-07T00:00:00Z", 11),
        ("week", "2026-09-07T00:00:00Z", 11),
        ("month", "2026-09-07T00:00:00Z", 11),
        ("day", "2026-10-17T00:00:00Z", 10),
        ("month", "2026-10-17T00:00:00Z", 10),
    ] {
        let (status, board) = app
            .get(&format!("/v1/leaderboard?period={period}&at={at}"))
            .await;
        assert_eq!(status, 200, "{board}");
        assert_eq!(
            board["entries"][0]["user_id"],
            json!(user),
            "{period} {at}: {board}"
        );
        assert_eq!(
            board["entries"][0]["points"], expected,
            "{period} {at}: {board}"
        );
    }
    assert_eq!(
        db.collection::<Document>("type_totals")
            .count_documents(doc! {})
            .await
            .unwrap(),
        0,
        "the old totals are gone"
    );
    let state = db
        .collection::<Document>("user_state")
        .find_one(doc! { "_id": &user })
        .await
        .unwrap()
        .expect("a state document");
    assert_eq!(
        state.get_i64("seq").unwrap(),
        3,
        "the delivery order carries on"
    );

    // New events count on top: one in the slot's period, one late for the first one.
    let (status, body) = app.event(&user, "PURCHASE", json!(LATER / 1000 + 60)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app.event(&user, "LOGIN", json!(FIRST / 1000 + 60)).await;
    assert_eq!(status, 201, "{body}");
    let (_, points) = app.get(&format!("/v1/users/{user}/points")).await;
    assert_eq!(points["points"], 32, "{points}");
    let (_, day) = app
        .get("/v1/leaderboard?period=day&at=2026-09-07T00:00:00Z")
        .await;
    assert_eq!(day["entries"][0]["points"], 12, "{day}");
    let (_, day) = app
        .get("/v1/leaderboard?period=day&at=2026-10-17T00:00:00Z")
        .await;
    assert_eq!(day["entries"][0]["points"], 20, "{day}");
    app.stop().await;
}
