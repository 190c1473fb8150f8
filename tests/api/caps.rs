//! Caps per user and period: events over a cap are stored with 0 points or the
//! remainder, the ledger shows base and awarded points, totals follow the awarded
//! points, and caps hold in batches and under concurrent requests.

use crate::helpers as common;

use std::sync::Arc;

use common::{spawn_app_with, unique_name, Options, TestApp};
use serde_json::{json, Value};

const RULES: &str = "events:
  - {name: LOGIN, point: 1, cap: {period: day, max_events: 1}}
  - {name: BONUS, point: 10, cap: {period: week, max_points: 25}}
  - {name: PURCHASE, point: 10}
";

/// 2026-11-02 (a Monday) 10:00 UTC, in seconds: in the past, as events must be.
const MONDAY: i64 = 1_793_613_600;
const DAY: i64 = 86_400;

async fn app() -> TestApp {
    spawn_app_with(Options::default().rules(RULES)).await
}

/// (event_type, points, base_points) of the user's ledger, oldest first.
async fn ledger(app: &TestApp, user: &str) -> Vec<(String, i64, i64)> {
    let (_, body) = app
        .get(&format!("/v1/users/{user}/events?limit=1000"))
        .await;
    let mut rows: Vec<(String, i64, i64)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["points"].as_i64().unwrap(),
                e["base_points"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

#[tokio::test]
async fn max_events_per_day_awards_the_first_event_of_each_day_only() {
    let app = app().await;
    let user = unique_name("cap");
    let mut awarded = Vec::new();
    for ts in [
        MONDAY,
        MONDAY + 60,
        MONDAY + 3600,
        MONDAY + DAY,
        MONDAY + DAY + 1,
    ] {
        let (status, body) = app.event(&user, "LOGIN", json!(ts)).await;
        assert_eq!(status, 201, "{body}");
        awarded.push(body["points"].as_i64().unwrap());
    }
    assert_eq!(awarded, [1, 0, 0, 1, 0], "one LOGIN point per day");
    assert_eq!(app.points(&user).await, 2);
    let rows = ledger(&app, &user).await;
    assert_eq!(rows.len(), 5, "capped events are still in the ledger");
    assert!(rows.iter().all(|(_, _, base)| *base == 1), "{rows:?}");
    let (_, p) = app.get(&format!("/v1/users/{user}/points")).await;
    assert_eq!(p["by_type"]["LOGIN"], json!({"events": 5, "points": 2}));
}

#[tokio::test]
async fn max_points_per_week_gives_the_remainder_inside_one_batch() {
    let app = app().await;
    let user = unique_name("cap");
    let events: Vec<Value> = (0..4)
        .map(|i| json!({"user_id": user, "event_type": "BONUS", "timestamp": MONDAY + i * 60}))
        .chain([json!({"user_id": user, "event_type": "PURCHASE", "timestamp": MONDAY})])
        .collect();
    let body = app.batch(events).await;
    let points: Vec<i64> = body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r["points"].as_i64().unwrap())
        .collect();
    assert_eq!(
        points,
        [10, 10, 5, 0, 10],
        "25 a week, uncapped types untouched"
    );
    // Next week starts a fresh allowance.
    let (_, next) = app.event(&user, "BONUS", json!(MONDAY + 7 * DAY)).await;
    assert_eq!(next["points"], 10);
    assert_eq!(app.points(&user).await, 25 + 10 + 10);
    assert_eq!(
        ledger(&app, &user)
            .await
            .iter()
            .filter(|r| r.0 == "BONUS")
            .map(|r| (r.1, r.2))
            .collect::<Vec<_>>(),
        [(10, 10), (10, 10), (5, 10), (0, 10), (10, 10)]
    );
    let (sum, count) = app.ledger_sum(&user).await;
    assert_eq!((sum, count), (45, 6), "totals equal the ledger");
    // The week's leaderboard counts awarded points only.
    let (_, board) = app
        .get(&format!(
            "/v1/leaderboard/users/{user}?period=week&at={MONDAY}"
        ))
        .await;
    assert_eq!(board["points"], 35, "{board}");
}

/// A batch whose first event is stored already: the repeat earns nothing and uses no
/// allowance, so the events after it get what is left, as if it had not been sent.
#[tokio::test]
async fn a_stored_event_in_a_batch_leaves_the_cap_to_the_rest() {
    let app = app().await;
    let user = unique_name("cap_repeat");
    let (status, first) = app.event(&user, "BONUS", json!(MONDAY)).await;
    assert_eq!((status, first["points"].clone()), (201, json!(10)));
    let body = app
        .batch(
            [MONDAY, MONDAY + 60, MONDAY + 120, MONDAY + 60, MONDAY + 180]
                .iter()
                .map(|ts| json!({"user_id": user, "event_type": "BONUS", "timestamp": ts}))
                .collect(),
        )
        .await;
    let results = body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let seen: Vec<(&str, i64)> = results
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap(),
                r["points"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("duplicate", 0),
            ("created", 10),
            ("created", 5),
            ("duplicate", 0),
            ("created", 0)
        ],
        "{body}"
    );
    assert_eq!(results[0]["id"], first["id"]);
    assert_eq!(results[3]["id"], results[1]["id"]);
    assert_eq!(app.points(&user).await, 25);
    assert_eq!(
        app.ledger_sum(&user).await,
        (25, 4),
        "totals equal the ledger"
    );
}

#[tokio::test]
async fn caps_hold_under_concurrent_requests() {
    let app = Arc::new(app().await);
    let user = unique_name("cap");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (app, user) = (app.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            let (status, body) = app.event(&user, "LOGIN", json!(MONDAY + i)).await;
            assert_eq!(status, 201, "{body}");
            body["points"].as_i64().unwrap()
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(
        total, 1,
        "exactly one of the concurrent LOGINs earned the point"
    );
    assert_eq!(app.points(&user).await, 1);
    assert_eq!(ledger(&app, &user).await.len(), 24);
}

#[tokio::test]
async fn event_types_show_their_caps() {
    let app = app().await;
    let (_, types) = app.get("/v1/event-types").await;
    assert_eq!(
        types["data"][0],
        json!({"name": "LOGIN", "description": "", "points": 1, "cap": {"period": "day", "max_events": 1}})
    );
    assert_eq!(
        types["data"][1]["cap"],
        json!({"period": "week", "max_points": 25})
    );
    assert!(
        types["data"][2].get("cap").is_none(),
        "uncapped types have no cap"
    );
}
