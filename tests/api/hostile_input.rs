//! Hostile input beyond `tests/api.rs`: operator objects (`{"$gt": ""}` and friends)
//! wherever a string or a number belongs, in single events and inside batches, operator
//! look-alikes in paths and query strings, very long keys, and out-of-range query
//! parameters on every listing endpoint. Each is a 400 naming the field (or, where the
//! text is a legitimate value, taken literally) and none changes the stored data.
//! Runs on every `TEST_BACKEND`: on MongoDB an operator that slipped through would be
//! interpreted by the database, which is what these tests are for.

use crate::helpers as common;

use common::{spawn_app, TestApp};
use serde_json::{json, Value};

/// Query-style operators an attacker would try against a MongoDB-backed API.
fn operators() -> Vec<Value> {
    vec![
        json!({"$gt": ""}),
        json!({"$ne": null}),
        json!({"$regex": ".*"}),
        json!({"$where": "sleep(1000)"}),
        json!({"$in": ["LOGIN", "PURCHASE"]}),
        json!({"$exists": true}),
        json!([{"$gt": ""}]),
    ]
}

fn valid(user: &str) -> Value {
    json!({"user_id": user, "event_type": "LOGIN", "timestamp": 1_700_000_000, "event_id": format!("ok-{user}")})
}

/// What the store holds, as the API shows it: every user's points, and the history of
/// each user in `users`.
async fn snapshot(app: &TestApp, users: &[&str]) -> Value {
    let (s, listing) = app.get("/v1/users/events?limit=1000").await;
    assert_eq!(s, 200, "{listing}");
    let mut histories = serde_json::Map::new();
    for u in users {
        let (s, h) = app.get(&format!("/v1/users/{u}/events?limit=1000")).await;
        assert_eq!(s, 200, "{h}");
        let ids: Vec<Value> = h["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].clone())
            .collect();
        histories.insert(u.to_string(), Value::Array(ids));
    }
    json!({"points": listing["data"], "histories": histories})
}

fn fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn operator_objects_in_any_field_of_a_single_event_are_400() {
    let app = spawn_app().await;
    let (s, _) = app.post("/v1/users/events", valid("anne")).await;
    assert_eq!(s, 201);
    let before = snapshot(&app, &["anne"]).await;
    for field in ["user_id", "event_type", "timestamp", "event_id"] {
        for op in operators() {
            let mut body = valid("anne");
            body[field] = op.clone();
            // A fresh event_id, so only the field under test can make it fail.
            if field != "event_id" {
                body["event_id"] = json!(format!("fresh-{field}"));
            }
            let (s, resp) = app.post("/v1/users/events", body).await;
            assert_eq!(s, 400, "{field} = {op}: {resp}");
            assert_eq!(fields(&resp), [field], "{field} = {op}: {resp}");
            assert!(
                resp["message"].as_str().unwrap().starts_with(field),
                "{resp}"
            );
        }
    }
    // Every field at once: each one named.
    let all: Value = json!({"user_id": {"$gt": ""}, "event_type": {"$gt": ""},
                            "timestamp": {"$gt": 0}, "event_id": {"$gt": ""}});
    let (s, resp) = app.post("/v1/users/events", all).await;
    assert_eq!(s, 400);
    let mut named = fields(&resp);
    named.sort();
    assert_eq!(named, ["event_id", "event_type", "timestamp", "user_id"]);
    assert_eq!(snapshot(&app, &["anne"]).await, before, "nothing changed");
}

#[tokio::test]
async fn operator_objects_inside_a_batch_are_rejected_per_event() {
    let app = spawn_app().await;
    let cases = [
        ("user_id", json!({"$gt": ""})),
        ("event_type", json!({"$ne": "LOGIN"})),
        ("timestamp", json!({"$gte": 0})),
        ("event_id", json!({"$regex": ".*"})),
        ("user_id", json!(["$where", "1"])),
    ];
    let mut events = vec![valid("bea")];
    for (i, (field, op)) in cases.iter().enumerate() {
        let mut e = valid("bea");
        e["event_id"] = json!(format!("bad-{i}"));
        e[*field] = op.clone();
        events.push(e);
    }
    events.push(valid("cal"));
    let body = app.batch(events).await;
    assert_eq!(body["created"], 2, "{body}");
    assert_eq!(body["rejected"], cases.len(), "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "created");
    assert_eq!(results[cases.len() + 1]["status"], "created");
    for (i, (field, op)) in cases.iter().enumerate() {
        let r = &results[i + 1];
        assert_eq!(r["index"], i + 1);
        assert_eq!(r["status"], "rejected", "{field} = {op}: {r}");
        assert_eq!(
            fields(r),
            [format!("events[{}].{field}", i + 1)],
            "{field} = {op}: {r}"
        );
        assert!(r.get("id").is_none_or(Value::is_null), "{r}");
    }
    // Only the two valid events are stored.
    let (sum_b, n_b) = app.ledger_sum("bea").await;
    let (_, n_c) = app.ledger_sum("cal").await;
    assert_eq!((n_b, n_c), (1, 1));
    assert_eq!(app.points("bea").await, sum_b);
    let (_, listing) = app.get("/v1/users/events").await;
    assert_eq!(listing["data"].as_array().unwrap().len(), 2, "{listing}");

    // Operators in place of the batch itself, or of one event.
    let before = snapshot(&app, &["bea", "cal"]).await;
    for bad in [
        json!({"events": {"$gt": ""}}),
        json!({"events": [{"$gt": ""}]}),
        json!({"events": {"$where": "1"}, "user_id": "bea"}),
        json!({"$set": {"events": []}}),
    ] {
        let (s, resp) = app.post("/v1/events/batch", bad.clone()).await;
        match s {
            // A batch of one event that has none of the fields: rejected as such.
            200 => {
                assert_eq!(resp["rejected"], 1, "{bad}: {resp}");
                assert_eq!(resp["created"], 0, "{bad}: {resp}");
                assert_eq!(
                    fields(&resp["results"][0]),
                    [
                        "events[0].user_id",
                        "events[0].event_type",
                        "events[0].timestamp"
                    ],
                    "{resp}"
                );
            }
            _ => {
                assert_eq!(s, 400, "{bad}: {resp}");
                assert!(resp["message"].is_string(), "{resp}");
            }
        }
    }
    assert_eq!(
        snapshot(&app, &["bea", "cal"]).await,
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn operator_lookalikes_in_properties_paths_and_queries_are_plain_text() {
    let app = spawn_app().await;
    // In properties, `$` keys are data: stored and returned as sent, worth nothing more.
    let props = json!({"$set": {"points": 1_000_000}, "$inc": {"total": 5}, "a.b": 1});
    let mut e = valid("dee");
    e["properties"] = props.clone();
    let (s, resp) = app.post("/v1/users/events", e).await;
    assert_eq!(s, 201, "{resp}");
    let (_, h) = app.get("/v1/users/dee/events").await;
    assert_eq!(h["data"][0]["properties"], props);
    assert_eq!(app.points("dee").await, resp["points"].as_i64().unwrap());

    // An operator as text in a path or query value is an id like any other.
    let op = "%7B%22%24gt%22%3A%22%22%7D"; // {"$gt":""}
    let (s, p) = app.get(&format!("/v1/users/{op}/points")).await;
    assert_eq!((s, &p["points"]), (200, &json!(0)), "{p}");
    let (s, h) = app.get(&format!("/v1/users/{op}/events")).await;
    assert_eq!((s, &h["data"]), (200, &json!([])), "{h}");
    let (s, q) = app.get(&format!("/v1/users/events?user_id={op}")).await;
    assert_eq!((s, &q["data"]), (200, &json!([])), "{q}");
    // An event type is checked against the configured ones.
    let (s, q) = app
        .get("/v1/users/events?user_id=dee&event_type=%7B%22%24ne%22%3Anull%7D")
        .await;
    assert_eq!(
        (s, fields(&q)),
        (400, vec!["event_type".to_string()]),
        "{q}"
    );
    let (s, h) = app
        .get("/v1/users/dee/events?event_type=%7B%22%24ne%22%3Anull%7D")
        .await;
    assert_eq!((s, &h["data"]), (200, &json!([])), "{h}");
    let (s, q) = app.get(&format!("/v1/leaderboard/users/{op}")).await;
    assert_eq!((s, &q["rank"]), (200, &Value::Null), "{q}");
    // PHP/qs-style bracket keys are not parameters this API reads.
    let (s, q) = app.get("/v1/users/events?user_id[$ne]=nobody").await;
    assert_eq!(s, 200, "{q}");
    let (s, q) = app.get("/v1/users/dee/events?limit[$gt]=0").await;
    assert_eq!(
        (s, q["data"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{q}"
    );
}

#[tokio::test]
async fn very_long_keys_are_400_anywhere_in_an_event() {
    let app = spawn_app().await;
    let long = "k".repeat(257);
    let cases = [
        (json!({ long.clone(): 1 }), "body"),
        (json!({"properties": { long.clone(): 1 }}), "properties"),
        (
            json!({"properties": {"nested": [{"deeper": { long.clone(): true }}]}}),
            "properties",
        ),
    ];
    for (extra, field) in &cases {
        let mut e = valid("eve");
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, resp) = app.post("/v1/users/events", e.clone()).await;
        assert_eq!(s, 400, "{resp}");
        assert_eq!(fields(&resp), [*field], "{resp}");
        let body = app.batch(vec![e]).await;
        assert_eq!(
            fields(&body["results"][0]),
            [if *field == "body" {
                "events[0]".to_string()
            } else {
                format!("events[0].{field}")
            }],
            "{body}"
        );
    }
    // At the limit is fine.
    let mut e = valid("eve");
    e["properties"] = json!({ "k".repeat(256): 1 });
    assert_eq!(app.post("/v1/users/events", e).await.0, 201);
    assert_eq!(app.ledger_sum("eve").await.1, 1);
}

#[tokio::test]
async fn out_of_range_query_parameters_on_every_listing_endpoint_are_400() {
    let app = spawn_app().await;
    let (s, _) = app.post("/v1/users/events", valid("fay")).await;
    assert_eq!(s, 201);
    let before = snapshot(&app, &["fay"]).await;
    let huge = "99999999999999999999999";
    let cases: Vec<(String, &str)> = [
        // The compatible listing.
        ("/v1/users/events?limit=0", "limit"),
        ("/v1/users/events?limit=1001", "limit"),
        ("/v1/users/events?limit=-1", "limit"),
        ("/v1/users/events?limit=1.5", "limit"),
        ("/v1/users/events?limit=1e3", "limit"),
        ("/v1/users/events?limit={huge}", "limit"),
        ("/v1/users/events?offset=-1", "offset"),
        ("/v1/users/events?offset=1000000001", "offset"),
        ("/v1/users/events?offset={huge}", "offset"),
        ("/v1/users/events?user_id=fay&offset=x", "offset"),
        // A user's history.
        ("/v1/users/fay/events?limit=0", "limit"),
        ("/v1/users/fay/events?limit=1001", "limit"),
        ("/v1/users/fay/events?limit=-5", "limit"),
        ("/v1/users/fay/events?limit={huge}", "limit"),
        ("/v1/users/fay/events?from=-1", "from"),
        ("/v1/users/fay/events?from={huge}", "from"),
        ("/v1/users/fay/events?to=999999999999999", "to"),
        ("/v1/users/fay/events?from=10000-01-01T00:00:00Z", "from"),
        ("/v1/users/fay/events?from=1700000002&to=1700000001", "to"),
        (
            "/v1/users/fay/events?cursor=%7B%22%24gt%22%3A%22%22%7D",
            "cursor",
        ),
        ("/v1/users/fay/events?cursor={huge}", "cursor"),
        // A user's points.
        ("/v1/users/fay/points?from=-1", "from"),
        ("/v1/users/fay/points?to={huge}", "to"),
        ("/v1/users/fay/points?from=1700000002&to=1700000001", "to"),
        // Leaderboards.
        ("/v1/leaderboard?limit=0", "limit"),
        ("/v1/leaderboard?limit=1001", "limit"),
        ("/v1/leaderboard?limit={huge}", "limit"),
        ("/v1/leaderboard?offset=-1", "offset"),
        ("/v1/leaderboard?offset=1000000001", "offset"),
        ("/v1/leaderboard?period=year", "period"),
        ("/v1/leaderboard?period=%7B%22%24ne%22%3Anull%7D", "period"),
        ("/v1/leaderboard?period=week&at=-1", "at"),
        ("/v1/leaderboard?period=week&at={huge}", "at"),
        ("/v1/leaderboard?period=day&at=tomorrow", "at"),
        // A user's standing.
        ("/v1/leaderboard/users/fay?around=51", "around"),
        ("/v1/leaderboard/users/fay?around=-1", "around"),
        ("/v1/leaderboard/users/fay?around={huge}", "around"),
        ("/v1/leaderboard/users/fay?period=decade", "period"),
        ("/v1/leaderboard/users/fay?at={huge}", "at"),
        // Daily stats.
        ("/v1/stats/daily?from=2024-01-01&to=2025-06-01", "from"),
        ("/v1/stats/daily?from=2025-03-02&to=2025-03-01", "to"),
        ("/v1/stats/daily?from=-1", "from"),
        ("/v1/stats/daily?to={huge}", "to"),
    ]
    .into_iter()
    .map(|(p, f)| (p.replace("{huge}", huge), f))
    .collect();
    for (path, field) in &cases {
        let (s, body) = app.get(path).await;
        assert_eq!(s, 400, "{path}: {body}");
        assert_eq!(fields(&body), [*field], "{path}: {body}");
    }
    // The webhook delivery log, on stores that have webhooks (MongoDB answers 501).
    for (path, field) in [
        ("/v1/webhooks/none/deliveries?limit=0", "limit"),
        ("/v1/webhooks/none/deliveries?limit=1001", "limit"),
        ("/v1/webhooks/none/deliveries?status=lost", "status"),
    ] {
        let (s, body) = app.get(path).await;
        if s == 501 {
            continue;
        }
        assert_eq!(s, 400, "{path}: {body}");
        assert_eq!(fields(&body), [field], "{path}: {body}");
    }
    assert_eq!(snapshot(&app, &["fay"]).await, before, "nothing changed");
}
