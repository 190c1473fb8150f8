//! Black-box API tests: the real server on a real port against a real store.

use crate::helpers as common;

use common::{spawn_app, spawn_app_with, Options, TestApp};
use serde_json::{json, Value};

const MON: &str = "2026-11-02T10:00:00Z"; // a Monday, ISO week 2026-W45

#[tokio::test]
async fn version_is_plain_text_v1() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/version")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.text().await.unwrap(), "v1");
}

#[tokio::test]
async fn records_an_event_with_the_compatible_response() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/v1/users/events",
            json!({"user_id": "13", "event_type": "PURCHASE", "timestamp": 14223343}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["message"], "User events recorded Successfully");
    assert_eq!(body["points"], 10);
    assert!(body["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(app.points("13").await, 10);
}

#[tokio::test]
async fn the_same_instant_in_any_format_is_a_duplicate() {
    let app = spawn_app().await;
    let (s, first) = app.event("u1", "PURCHASE", json!(1_700_000_000)).await;
    assert_eq!(s, 201);
    for ts in [
        json!(1_700_000_000_000i64),
        json!("2023-11-14T22:13:20Z"),
        json!("2023-11-14T23:13:20+01:00"),
    ] {
        let (s, dup) = app.event("u1", "PURCHASE", ts).await;
        assert_eq!(s, 409, "{dup}");
        assert_eq!(dup["message"], "User event already exists");
        assert_eq!(dup["id"], first["id"]);
    }
    // Another type at the same instant, or another user, is a different event.
    assert_eq!(app.event("u1", "LOGIN", json!(1_700_000_000)).await.0, 201);
    assert_eq!(
        app.event("u2", "PURCHASE", json!(1_700_000_000)).await.0,
        201
    );
    assert_eq!(app.points("u1").await, 11);
}

#[tokio::test]
async fn event_id_is_the_idempotency_key_when_given() {
    let app = spawn_app().await;
    let e = |eid: &str, ts: i64| json!({"user_id": "u", "event_type": "LOGIN", "timestamp": ts, "event_id": eid});
    let (s, first) = app.post("/v1/users/events", e("k1", 1_700_000_000)).await;
    assert_eq!(s, 201);
    let (s, dup) = app.post("/v1/users/events", e("k1", 1_700_000_500)).await;
    assert_eq!(s, 409);
    assert_eq!(dup["id"], first["id"]);
    assert_eq!(
        app.post("/v1/users/events", e("k2", 1_700_000_000)).await.0,
        201
    );
    assert_eq!(app.points("u").await, 2);
}

async fn field_errors(app: &TestApp, body: Value) -> Vec<String> {
    let (status, resp) = app.post("/v1/users/events", body).await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp["message"].as_str().is_some());
    resp["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn invalid_fields_are_each_named() {
    let app = spawn_app().await;
    assert_eq!(
        field_errors(&app, json!({})).await,
        ["user_id", "event_type", "timestamp"]
    );
    let ok = |k: &str, v: Value| {
        let mut b = json!({"user_id": "u", "event_type": "LOGIN", "timestamp": 1_700_000_000});
        b[k] = v;
        b
    };
    let cases = [
        ("user_id", json!("")),
        ("user_id", json!("x".repeat(129))),
        ("user_id", json!({"$gt": ""})),
        ("user_id", json!(13)),
        ("user_id", json!("a\u{0}b")),
        ("event_type", json!("NOT_CONFIGURED")),
        ("event_type", json!(["LOGIN"])),
        ("timestamp", json!(-5)),
        ("timestamp", json!(1.5)),
        ("timestamp", json!("last tuesday")),
        ("timestamp", json!(common::now_ms() + 2 * 3_600_000)),
        ("timestamp", json!(1e300)),
        ("event_id", json!("")),
        ("event_id", json!("e".repeat(129))),
        ("properties", json!([1, 2])),
        ("properties", json!({"blob": "p".repeat(9000)})),
    ];
    for (field, value) in cases {
        assert_eq!(
            field_errors(&app, ok(field, value.clone())).await,
            [field],
            "{field} = {value}"
        );
    }
    assert_eq!(field_errors(&app, json!([1])).await, ["body"]);
    // A user id of exactly 128 characters is fine.
    assert_eq!(
        app.post("/v1/users/events", ok("user_id", json!("x".repeat(128))))
            .await
            .0,
        201
    );
    // Nothing invalid was stored.
    let (_, list) = app.get("/v1/users/events").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_event_type_lists_the_configured_ones() {
    let app = spawn_app().await;
    let (status, body) = app.event("u", "DANCE", json!(1_700_000_000)).await;
    assert_eq!(status, 400);
    let msg = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("LOGIN") && msg.contains("TEST_ONLY_QUEST"),
        "{msg}"
    );
}

#[tokio::test]
async fn malformed_wrong_type_and_oversized_bodies() {
    let app = spawn_app_with(Options::with_env(&[("BODY_LIMIT_BYTES", "2048")])).await;
    let send = |body: &'static str, ct: &'static str| {
        app.client
            .post(app.url("/v1/users/events"))
            .header("content-type", ct)
            .body(body)
    };
    let r = send("{\"user_id\": ", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("JSON"));
    let r = send("user_id=1", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.json::<Value>().await.unwrap()["message"].is_string());
    let big =
        json!({"user_id": "u", "event_type": "LOGIN", "timestamp": 1, "pad": "x".repeat(4096)});
    let r = app
        .client
        .post(app.url("/v1/users/events"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.json::<Value>().await.unwrap()["message"].is_string());
    let r = app
        .client
        .post(app.url("/v1/users/events"))
        .header("content-type", "application/json")
        .body(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "invalid UTF-8");
    let long_key = format!(
        "{{\"properties\": {{\"{}\": 1}}, \"user_id\": \"k\", \"event_type\": \"LOGIN\", \"timestamp\": 1}}",
        "k".repeat(1500)
    );
    let r = app
        .client
        .post(app.url("/v1/users/events"))
        .header("content-type", "application/json")
        .body(long_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a key over 256 characters");
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["field"],
        "properties"
    );
    let huge = r#"{"user_id": "h", "event_type": "LOGIN", "timestamp": 1e400}"#;
    let r = app
        .client
        .post(app.url("/v1/users/events"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a number beyond f64");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let r = app
        .client
        .post(app.url("/v1/events/batch"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert!(r.status() == 400 || r.status() == 413, "{}", r.status());
    let deep_object = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let r = app
        .client
        .post(app.url("/v1/users/events"))
        .header("content-type", "application/json")
        .body(deep_object)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "nesting beyond the parser's depth limit");
    // Nothing was stored.
    let (_, list) = app.get("/v1/users/events").await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let (status, body) = app.get("/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Not Found");
    let r = app
        .client
        .put(app.url("/v1/users/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.json::<Value>().await.unwrap()["message"].is_string());
}

#[tokio::test]
async fn compatible_query_by_user_type_and_listing() {
    let app = spawn_app().await;
    app.batch(vec![
        json!({"user_id": "13", "event_type": "PURCHASE", "timestamp": 1_700_000_000}),
        json!({"user_id": "13", "event_type": "PURCHASE", "timestamp": 1_700_000_001}),
        json!({"user_id": "13", "event_type": "LOGIN", "timestamp": 1_700_000_000}),
        json!({"user_id": "7", "event_type": "PURCHASE", "timestamp": 1_700_000_000}),
        json!({"user_id": "9", "event_type": "LOGIN", "timestamp": 1_700_000_000}),
    ])
    .await;
    let (s, body) = app
        .get("/v1/users/events?user_id=13&event_type=PURCHASE")
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"message": "User events queried Successfully", "data": [{"userId": "13", "points": 20}]})
    );
    let (_, body) = app.get("/v1/users/events/?user_id=13").await;
    assert_eq!(body["data"], json!([{"userId": "13", "points": 21}]));
    let (_, body) = app.get("/v1/users/events?user_id=nobody").await;
    assert_eq!(body["data"], json!([]));
    let (_, body) = app.get("/v1/users/events").await;
    assert_eq!(
        body["data"],
        json!([{"userId": "13", "points": 21}, {"userId": "7", "points": 10}, {"userId": "9", "points": 1}])
    );
    let (_, body) = app
        .get("/v1/users/events?event_type=PURCHASE&limit=1&offset=1")
        .await;
    assert_eq!(body["data"], json!([{"userId": "7", "points": 10}]));
    for bad in ["limit=0", "limit=1001", "offset=-1", "limit=ten"] {
        let (s, body) = app.get(&format!("/v1/users/events?{bad}")).await;
        assert_eq!(s, 400, "{bad}");
        assert_eq!(body["errors"][0]["field"], bad.split('=').next().unwrap());
    }
}

#[tokio::test]
async fn batch_reports_each_event_in_order() {
    let app = spawn_app().await;
    let (_, single) = app.event("b", "LOGIN", json!(1_700_000_100)).await;
    let body = app
        .batch(vec![
            json!({"user_id": "b", "event_type": "PURCHASE", "timestamp": 1_700_000_000}),
            json!({"user_id": "b", "event_type": "NOPE", "timestamp": 1_700_000_000}),
            json!({"user_id": "b", "event_type": "PURCHASE", "timestamp": 1_700_000_000_000i64}),
            json!({"user_id": "b", "event_type": "LOGIN", "timestamp": 1_700_000_100}),
            json!({"user_id": "b", "event_type": "REVIEW", "timestamp": MON, "event_id": "r1", "properties": {"stars": 5}}),
        ])
        .await;
    assert_eq!(
        (
            body["created"].as_i64(),
            body["duplicates"].as_i64(),
            body["rejected"].as_i64()
        ),
        (Some(2), Some(2), Some(1))
    );
    let statuses: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["created", "rejected", "duplicate", "duplicate", "created"]
    );
    let results = body["results"].as_array().unwrap();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
    }
    assert_eq!(results[0]["points"], 10);
    assert_eq!(
        results[2]["id"], results[0]["id"],
        "a repeat inside the batch points at the first"
    );
    assert_eq!(results[3]["id"], single["id"]);
    assert_eq!(results[1]["errors"][0]["field"], "events[1].event_type");
    assert_eq!(app.points("b").await, 1 + 10 + 5);

    for (bad, field) in [
        (json!({}), "events"),
        (json!({"events": []}), "events"),
        (json!({"events": "x"}), "events"),
    ] {
        let (s, body) = app.post("/v1/events/batch", bad).await;
        assert_eq!(s, 400);
        assert_eq!(body["errors"][0]["field"], field);
    }
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"user_id": "m", "event_type": "LOGIN", "timestamp": i + 1}))
        .collect();
    assert_eq!(
        app.post("/v1/events/batch", json!({ "events": many }))
            .await
            .0,
        400
    );
    let many: Vec<Value> = (0..1000)
        .map(|i| json!({"user_id": "m", "event_type": "LOGIN", "timestamp": i + 1}))
        .collect();
    assert_eq!(app.batch(many).await["created"], 1000);
    assert_eq!(app.points("m").await, 1000);
}

#[tokio::test]
async fn points_breakdown_and_time_window() {
    let app = spawn_app().await;
    app.batch(vec![
        json!({"user_id": "p", "event_type": "PURCHASE", "timestamp": "2026-01-01T00:00:00Z"}),
        json!({"user_id": "p", "event_type": "PURCHASE", "timestamp": "2026-02-01T00:00:00Z"}),
        json!({"user_id": "p", "event_type": "LOGIN", "timestamp": "2026-03-01T00:00:00Z"}),
        json!({"user_id": "p", "event_type": "ABUSE_REPORTED", "timestamp": "2026-03-02T00:00:00Z"}),
    ])
    .await;
    let (s, body) = app.get("/v1/users/p/points").await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"user_id": "p", "points": 1, "events": 4, "by_type": {
        "ABUSE_REPORTED": {"events": 1, "points": -20},
        "LOGIN": {"events": 1, "points": 1},
        "PURCHASE": {"events": 2, "points": 20}}, "level": null})
    );
    let (_, w) = app
        .get("/v1/users/p/points?from=2026-02-01T00:00:00Z&to=2026-03-02T00:00:00Z")
        .await;
    assert_eq!(w["points"], 11, "{w}");
    assert_eq!(w["events"], 2);
    let (_, w) = app.get("/v1/users/p/points?from=1769904000").await; // 2026-02-01 in seconds
    assert_eq!(w["events"], 3);
    let (_, none) = app.get("/v1/users/ghost/points").await;
    assert_eq!(
        none,
        json!({"user_id": "ghost", "points": 0, "events": 0, "by_type": {}, "level": null})
    );
    for (q, field) in [
        ("from=soon", "from"),
        ("to=-3", "to"),
        ("from=2026-03-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
    ] {
        let (s, body) = app.get(&format!("/v1/users/p/points?{q}")).await;
        assert_eq!(s, 400, "{q}");
        assert_eq!(body["errors"][0]["field"], field);
    }
    let long = "u".repeat(129);
    assert_eq!(app.get(&format!("/v1/users/{long}/points")).await.0, 400);
}

#[tokio::test]
async fn history_is_newest_first_with_stable_cursor_paging() {
    let app = spawn_app().await;
    // 25 events, several sharing a timestamp, so paging must break ties by id.
    let events: Vec<Value> = (0..25)
        .map(|i| json!({"user_id": "h", "event_type": "LOGIN", "timestamp": 1_700_000_000 + i / 3, "event_id": format!("e{i}"), "properties": {"i": i}}))
        .collect();
    app.batch(events).await;
    app.event("h", "PURCHASE", json!(1_600_000_000)).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users/h/events?limit=7&cursor={c}"),
            None => "/v1/users/h/events?limit=7".to_string(),
        };
        let (s, body) = app.get(&path).await;
        assert_eq!(s, 200, "{body}");
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= 7);
        seen.extend(data.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26);
    let mut ids: Vec<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 26, "no event repeated across pages");
    let times: Vec<&str> = seen
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let last = seen.last().unwrap();
    assert_eq!(last["event_type"], "PURCHASE");
    assert_eq!(last["timestamp"], "2020-09-13T12:26:40.000Z");
    assert_eq!(last["event_id"], Value::Null);
    assert_eq!(last["properties"], Value::Null);
    assert!(last["received_at"].as_str().unwrap().ends_with('Z'));
    let first = &seen[0];
    assert_eq!(
        first["properties"]["i"],
        first["event_id"].as_str().unwrap()[1..]
            .parse::<i64>()
            .unwrap()
    );

    let (_, only) = app.get("/v1/users/h/events?event_type=PURCHASE").await;
    assert_eq!(only["data"].as_array().unwrap().len(), 1);
    let (_, window) = app
        .get("/v1/users/h/events?from=1700000002&to=1700000004")
        .await;
    assert_eq!(window["data"].as_array().unwrap().len(), 6);
    let (s, body) = app.get("/v1/users/h/events?cursor=not-a-cursor").await;
    assert_eq!(
        (s, body["errors"][0]["field"].as_str()),
        (400, Some("cursor"))
    );
    let (s, _) = app.get("/v1/users/h/events?limit=1001").await;
    assert_eq!(s, 400);
    let (_, empty) = app.get("/v1/users/nobody/events").await;
    assert_eq!(empty, json!({"data": [], "next_cursor": null}));
}

#[tokio::test]
async fn leaderboards_by_period_with_shared_ranks() {
    let app = spawn_app().await;
    let ev = common::event::<&str>;
    app.batch(vec![
        ev("alice", "PURCHASE", "2026-11-02T10:00:00Z"),
        ev("alice", "PURCHASE", "2026-11-03T10:00:00Z"),
        ev("bob", "PURCHASE", "2026-11-04T10:00:00Z"),
        ev("carol", "PURCHASE", "2026-11-02T11:00:00Z"),
        ev("dave", "LOGIN", "2026-11-02T12:00:00Z"),
        // Previous week and previous month: count for "all" and their own periods only.
        ev("erin", "PURCHASE", "2026-10-30T10:00:00Z"),
        ev("erin", "REVIEW", "2026-10-31T10:00:00Z"),
        ev("erin", "REVIEW", "2026-10-29T10:00:00Z"),
    ])
    .await;
    let (s, week) = app
        .get("/v1/leaderboard?period=week&at=2026-11-05T00:00:00Z")
        .await;
    assert_eq!(s, 200, "{week}");
    assert_eq!(week["period"], "week");
    assert_eq!(week["start"], "2026-11-02T00:00:00.000Z");
    assert_eq!(week["end"], "2026-11-09T00:00:00.000Z");
    assert_eq!(
        week["entries"],
        json!([
            {"rank": 1, "user_id": "alice", "points": 20},
            {"rank": 2, "user_id": "bob", "points": 10},
            {"rank": 2, "user_id": "carol", "points": 10},
            {"rank": 4, "user_id": "dave", "points": 1},
        ])
    );
    let (_, page) = app
        .get("/v1/leaderboard?period=week&at=2026-11-05T00:00:00Z&limit=2&offset=2")
        .await;
    assert_eq!(
        page["entries"],
        json!([{"rank": 2, "user_id": "carol", "points": 10}, {"rank": 4, "user_id": "dave", "points": 1}])
    );
    let (_, day) = app.get("/v1/leaderboard?period=day&at=1793613600").await; // 2026-11-02T10:00Z
    let users: Vec<&str> = day["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice", "carol", "dave"]);
    let (_, month) = app
        .get("/v1/leaderboard?period=month&at=2026-10-15T00:00:00Z")
        .await;
    assert_eq!(month["start"], "2026-10-01T00:00:00.000Z");
    assert_eq!(
        month["entries"],
        json!([{"rank": 1, "user_id": "erin", "points": 20}])
    );
    let (_, all) = app.get("/v1/leaderboard").await;
    assert_eq!(all["period"], "all");
    assert_eq!(all["start"], Value::Null);
    assert_eq!(
        all["entries"][0],
        json!({"rank": 1, "user_id": "alice", "points": 20})
    );
    assert_eq!(
        all["entries"][1],
        json!({"rank": 1, "user_id": "erin", "points": 20})
    );
    let (_, empty) = app
        .get("/v1/leaderboard?period=day&at=2020-01-01T00:00:00Z")
        .await;
    assert_eq!(empty["entries"], json!([]));
    for (q, field) in [
        ("period=year", "period"),
        ("at=tomorrow", "at"),
        ("limit=0", "limit"),
    ] {
        let (s, body) = app.get(&format!("/v1/leaderboard?{q}")).await;
        assert_eq!(
            (s, body["errors"][0]["field"].as_str()),
            (400, Some(field)),
            "{q}"
        );
    }
}

#[tokio::test]
async fn leaderboard_default_period_follows_the_clock() {
    let app = spawn_app().await;
    app.clock
        .set(eventtracker::domain::time::parse_query_time("2026-11-04T12:00:00Z").unwrap());
    app.event("w", "LOGIN", json!("2026-11-03T00:00:00Z")).await;
    let (_, week) = app.get("/v1/leaderboard?period=week").await;
    assert_eq!(week["start"], "2026-11-02T00:00:00.000Z");
    assert_eq!(week["entries"][0]["user_id"], "w");
}

#[tokio::test]
async fn a_users_rank_and_neighbours() {
    let app = spawn_app().await;
    let events: Vec<Value> = [("a", 5), ("b", 4), ("c", 4), ("d", 3), ("e", 2), ("f", 1)]
        .iter()
        .flat_map(|(u, n)| (0..*n).map(move |i| json!({"user_id": u, "event_type": "LOGIN", "timestamp": MON, "event_id": format!("{u}{i}")})))
        .collect();
    app.batch(events).await;
    let (s, body) = app
        .get("/v1/leaderboard/users/c?period=week&at=2026-11-03T00:00:00Z")
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"user_id": "c", "rank": 2, "points": 4, "neighbours": [
            {"rank": 1, "user_id": "a", "points": 5},
            {"rank": 2, "user_id": "b", "points": 4},
            {"rank": 2, "user_id": "c", "points": 4},
            {"rank": 4, "user_id": "d", "points": 3},
            {"rank": 5, "user_id": "e", "points": 2},
        ]})
    );
    let (_, body) = app.get("/v1/leaderboard/users/f?around=1").await;
    assert_eq!(body["rank"], 6);
    assert_eq!(
        body["neighbours"],
        json!([{"rank": 5, "user_id": "e", "points": 2}, {"rank": 6, "user_id": "f", "points": 1}])
    );
    let (_, none) = app
        .get("/v1/leaderboard/users/zed?period=day&at=2026-11-02T00:00:00Z")
        .await;
    assert_eq!(
        none,
        json!({"user_id": "zed", "rank": null, "points": 0, "neighbours": []})
    );
    let (s, _) = app.get("/v1/leaderboard/users/a?around=51").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn event_types_come_from_the_configuration_file() {
    let app = spawn_app().await;
    let (s, body) = app.get("/v1/event-types").await;
    assert_eq!(s, 200);
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "LOGIN",
            "PURCHASE",
            "REVIEW",
            "ABUSE_REPORTED",
            "TEST_ONLY_QUEST"
        ]
    );
    assert_eq!(
        body["data"][2],
        json!({"name": "REVIEW", "description": "User wrote a review", "points": 5})
    );
    // A type that exists only in the test file is recorded like any other.
    let (s, created) = app.event("q", "TEST_ONLY_QUEST", json!(MON)).await;
    assert_eq!((s, created["points"].as_i64()), (201, Some(7)));
}

#[tokio::test]
async fn erasing_a_user_removes_events_totals_and_ranks() {
    let app = spawn_app().await;
    app.batch(vec![
        json!({"user_id": "gone", "event_type": "PURCHASE", "timestamp": MON}),
        json!({"user_id": "gone", "event_type": "LOGIN", "timestamp": "2026-10-01T00:00:00Z"}),
        json!({"user_id": "stay", "event_type": "LOGIN", "timestamp": MON}),
    ])
    .await;
    let r = app
        .client
        .delete(app.url("/v1/users/gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.points("gone").await, 0);
    assert_eq!(app.get("/v1/users/gone/events").await.1["data"], json!([]));
    for q in [
        "",
        "?period=week&at=2026-11-02T00:00:00Z",
        "?period=month&at=2026-10-02T00:00:00Z",
    ] {
        let (_, lb) = app.get(&format!("/v1/leaderboard{q}")).await;
        assert!(
            lb["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["user_id"] != "gone"),
            "{q}: {lb}"
        );
    }
    assert_eq!(
        app.get("/v1/users/events").await.1["data"],
        json!([{"userId": "stay", "points": 1}])
    );
    // The same event may be recorded again after erasure.
    assert_eq!(app.event("gone", "PURCHASE", json!(MON)).await.0, 201);
    assert_eq!(
        app.client
            .delete(app.url("/v1/users/never-seen"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await, (200, json!({"status": "ok"})));
    let (s, ready) = app.get("/readyz").await;
    assert_eq!(s, 200);
    assert_eq!(ready["store"], "ok");
    // The recorder is process-wide and other tests run alongside: compare increments.
    let created = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(r#"events_total{outcome="created"} "#))
            .map_or(0.0, |v| v.trim().parse().expect("a number"))
    };
    let before = created(&app.metrics().await);
    app.event("m1", "LOGIN", json!(MON)).await;
    app.get("/v1/users/m1/points").await;
    let text = app.metrics().await;
    assert!(
        text.contains(r#"route="/v1/users/{user_id}/points""#),
        "route pattern label"
    );
    assert!(
        !text.contains("route=\"/v1/users/m1/points\""),
        "never the raw URL"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(created(&text) > before, "the event is counted");
    assert!(text.contains("store_commit_batch_events"));

    let (s, doc) = app.get("/openapi.json").await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/version",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/event-types",
        "/v1/users/events",
        "/v1/events/batch",
        "/v1/users/{user_id}/points",
        "/v1/users/{user_id}/events",
        "/v1/users/{user_id}",
        "/v1/leaderboard",
        "/v1/leaderboard/users/{user_id}",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 36);
}
