//! Levels, streaks, achievements and boosts through the API, on every store: what a
//! client is told when it records events, what the reads say, the user's time zone,
//! the webhooks, and a recompute that grants and one that revokes.

use crate::helpers as common;

use std::sync::Arc;

use common::receiver::Receiver;
use common::{spawn_app_with, unique_name, Options, TestApp};
use serde_json::{json, Value};

pub(crate) const RULES: &str = "events:
  - {name: LOGIN, point: 1}
  - {name: PURCHASE, point: 10}
  - {name: CHARGEBACK, point: -60}
levels:
  - {level: 1, name: Bronze, points: 0}
  - {level: 2, name: Silver, points: 100}
  - {level: 3, name: Gold, points: 500}
streaks:
  - id: daily_login
    name: Daily login
    event_types: [LOGIN]
    period: day
    freezes: {max: 2, earn_every: 7}
achievements:
  - {id: first_purchase, name: First purchase, description: Bought something, when: {event_type: PURCHASE, count: 1}}
  - {id: centurion, name: Centurion, when: {points: 100}}
  - {id: regular, name: Regular, when: {streak: daily_login, length: 3}}
  - id: busy_week
    name: Busy week
    when: {event_type: LOGIN, count: 5, period: week}
    repeatable: true
    points: 50
boosts:
  - id: black_friday
    multiplier: 2
    event_types: [PURCHASE]
    from: 2026-11-27T00:00:00Z
    to: 2026-11-30T00:00:00Z
";

fn ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

async fn app(rules: &str) -> TestApp {
    spawn_app_with(Options::default().rules(rules)).await
}

async fn patch(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .patch(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("PATCH");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn at(app: &TestApp, user: &str, ty: &str, when: &str) -> Value {
    let (status, body) = app.event(user, ty, json!(when)).await;
    assert_eq!(status, 201, "{body}");
    body
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn events_unlock_achievements_with_bonus_entries_and_move_levels() {
    let app = app(RULES).await;
    let user = unique_name("prog");
    let first = at(&app, &user, "PURCHASE", "2026-11-20T10:00:00Z").await;
    assert_eq!(first["points"], 10);
    assert_eq!(
        first["unlocked"],
        json!([{"id": "first_purchase", "name": "First purchase"}])
    );
    assert_eq!(first["level"], json!({"level": 1, "name": "Bronze"}));
    let second = at(&app, &user, "PURCHASE", "2026-11-20T10:01:00Z").await;
    assert_eq!(second["unlocked"], json!([]), "once only");

    // Five logins in one week: busy_week and its 50 bonus points, in a batch.
    let logins: Vec<Value> = (0..5)
        .map(|i| json!({"user_id": user, "event_type": "LOGIN", "timestamp": format!("2026-11-17T0{i}:00:00Z")}))
        .collect();
    let batch = app.batch(logins).await;
    let results = batch["results"].as_array().unwrap();
    assert_eq!(results[3]["unlocked"], json!([]));
    assert_eq!(ids(&results[4]["unlocked"]), ["busy_week"]);
    assert_eq!(results[4]["level"], json!({"level": 1, "name": "Bronze"}));

    // 20 + 5 + 50 = 75; the bonus is a ledger entry of its own, counted everywhere.
    let (_, points) = app.get(&format!("/v1/users/{user}/points")).await;
    assert_eq!(points["points"], 75, "{points}");
    assert_eq!(points["by_type"]["achievement:busy_week"]["points"], 50);
    assert_eq!(
        points["level"],
        json!({"level": 1, "name": "Bronze", "points": 0, "next": {"level": 2, "name": "Silver", "points": 100}})
    );
    let (_, history) = app.get(&format!("/v1/users/{user}/events")).await;
    let bonus: Vec<&Value> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "achievement:busy_week")
        .collect();
    assert_eq!(bonus.len(), 1, "{history}");
    assert_eq!(bonus[0]["points"], 50);
    assert_eq!(app.ledger_sum(&user).await.0, 75);
    let (_, board) = app
        .get(&format!("/v1/leaderboard/users/{user}?period=all"))
        .await;
    assert_eq!(board["points"], 75, "{board}");

    // Three purchases later: 105, Silver and Centurion.
    for minute in 2..5 {
        let body = at(
            &app,
            &user,
            "PURCHASE",
            &format!("2026-11-20T10:0{minute}:00Z"),
        )
        .await;
        if minute == 4 {
            assert_eq!(ids(&body["unlocked"]), ["centurion"]);
            assert_eq!(body["level"], json!({"level": 2, "name": "Silver"}));
        }
    }
    // A chargeback takes the level back down.
    let down = at(&app, &user, "CHARGEBACK", "2026-11-21T10:00:00Z").await;
    assert_eq!(down["level"], json!({"level": 1, "name": "Bronze"}));
    assert_eq!(down["unlocked"], json!([]), "a badge stays at ingest");

    let (status, achievements) = app.get(&format!("/v1/users/{user}/achievements")).await;
    assert_eq!(status, 200, "{achievements}");
    let data = achievements["data"].as_array().unwrap();
    assert_eq!(
        ids(&achievements["data"]),
        ["first_purchase", "centurion", "busy_week"]
    );
    assert_eq!(data[0]["description"], "Bought something");
    assert_eq!(data[0]["unlocked_at"], "2026-11-20T10:00:00.000Z");
    assert_eq!(data[0]["times"], 1);
    let progress = achievements["progress"].as_array().unwrap();
    assert!(
        progress
            .iter()
            .any(|p| p == &json!({"id": "regular", "current": 0, "target": 3})),
        "{achievements}"
    );

    // Rarity: another user with one login and nothing unlocked.
    let other = unique_name("prog_other");
    at(&app, &other, "LOGIN", "2026-11-20T10:00:00Z").await;
    let (status, all) = app.get("/v1/achievements").await;
    assert_eq!(status, 200, "{all}");
    let rarity: Vec<(String, Value)> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a["users"].clone()))
        .collect();
    assert_eq!(rarity.len(), 4);
    assert!(
        rarity.contains(&("first_purchase".into(), json!(1))),
        "{all}"
    );
    assert!(rarity.contains(&("regular".into(), json!(0))), "{all}");
    assert_eq!(all["users"], 2);
    assert_eq!(all["data"][0]["share"], 0.5);
}

#[tokio::test]
async fn streak_days_follow_the_users_time_zone_around_midnight() {
    let app = app(RULES).await;
    let user = unique_name("tz");
    for bad in [
        json!({"timezone": "Mars/Olympus"}),
        json!({"timezone": 5}),
        json!({}),
    ] {
        let (status, body) = patch(&app, &format!("/v1/users/{user}"), bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.to_string().contains("timezone"), "{body}");
    }
    let (status, body) = patch(
        &app,
        &format!("/v1/users/{user}"),
        json!({"timezone": "America/Los_Angeles"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"user_id": user, "timezone": "America/Los_Angeles"})
    );

    // 07:30Z on Nov 25 is 23:30 on Nov 24 in Los Angeles; 08:30Z is 00:30 on Nov 25.
    at(&app, &user, "LOGIN", "2026-11-25T07:30:00Z").await;
    at(&app, &user, "LOGIN", "2026-11-25T08:30:00Z").await;
    app.clock.set(ms("2026-11-25T12:00:00Z"));
    let (status, streaks) = app.get(&format!("/v1/users/{user}/streaks")).await;
    assert_eq!(status, 200, "{streaks}");
    assert_eq!(streaks["timezone"], "America/Los_Angeles");
    let s = &streaks["data"][0];
    assert_eq!(s["id"], "daily_login");
    assert_eq!(s["length"], 2, "two local days: {streaks}");
    assert_eq!(s["period"], "day");
    // Started at local midnight of Nov 24 (08:00Z in PST); breaks at the end of Nov 26.
    assert_eq!(s["started_at"], "2026-11-24T08:00:00.000Z");
    assert_eq!(s["expires_at"], "2026-11-27T08:00:00.000Z");

    // The same two events for a UTC user are one day.
    let utc = unique_name("tz_utc");
    at(&app, &utc, "LOGIN", "2026-11-25T07:30:00Z").await;
    at(&app, &utc, "LOGIN", "2026-11-25T08:30:00Z").await;
    let (_, streaks) = app.get(&format!("/v1/users/{utc}/streaks")).await;
    assert_eq!(streaks["data"][0]["length"], 1, "{streaks}");

    // Once the next local day has passed without a login, the streak reads broken.
    app.clock.set(ms("2026-11-27T08:00:00Z"));
    let (_, streaks) = app.get(&format!("/v1/users/{user}/streaks")).await;
    assert_eq!(streaks["data"][0]["length"], 0, "{streaks}");
    assert_eq!(streaks["data"][0]["longest"], 2);
    assert_eq!(streaks["data"][0]["expires_at"], Value::Null);
    // A third day extends nothing: a new streak starts.
    at(&app, &user, "LOGIN", "2026-11-27T09:00:00Z").await;
    let (_, streaks) = app.get(&format!("/v1/users/{user}/streaks")).await;
    assert_eq!(streaks["data"][0]["length"], 1, "{streaks}");
}

#[tokio::test]
async fn boosts_apply_from_their_start_inclusive_to_their_end_exclusive() {
    let app = app(RULES).await;
    let user = unique_name("boost");
    let mut earned = Vec::new();
    for when in [
        "2026-11-26T23:59:59.999Z",
        "2026-11-27T00:00:00.000Z",
        "2026-11-29T23:59:59.999Z",
        "2026-11-30T00:00:00.000Z",
    ] {
        earned.push(at(&app, &user, "PURCHASE", when).await["points"].clone());
    }
    assert_eq!(earned, [json!(10), json!(20), json!(20), json!(10)]);
    let login = at(&app, &user, "LOGIN", "2026-11-28T00:00:00Z").await;
    assert_eq!(login["points"], 1, "the boost names PURCHASE only");
    let (_, history) = app.get(&format!("/v1/users/{user}/events")).await;
    let boosted = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["timestamp"] == "2026-11-27T00:00:00.000Z")
        .unwrap();
    assert_eq!(boosted["base_points"], 10, "base points stay before boosts");
    assert_eq!(boosted["points"], 20);
}

#[tokio::test]
async fn concurrent_requests_unlock_an_achievement_exactly_once() {
    let app = Arc::new(app(RULES).await);
    let user = unique_name("race");
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (app, user) = (app.clone(), user.clone());
            tokio::spawn(async move {
                let (status, body) = app
                    .event(&user, "LOGIN", json!(format!("2026-11-17T10:00:{i:02}Z")))
                    .await;
                assert_eq!(status, 201, "{body}");
                body["unlocked"].clone()
            })
        })
        .collect();
    let mut unlocked = Vec::new();
    for t in tasks {
        unlocked.extend(ids(&t.await.unwrap()));
    }
    assert_eq!(unlocked, ["busy_week"], "exactly one response says so");
    let (sum, entries) = app.ledger_sum(&user).await;
    assert_eq!((sum, entries), (12 + 50, 13));
    assert_eq!(app.points(&user).await, 62);
}

/// Rules whose achievement and level come later: the file before it is `RULES`
/// without them.
const BEFORE: &str = "events:
  - {name: LOGIN, point: 1}
  - {name: PURCHASE, point: 10}
levels:
  - {level: 1, name: Bronze, points: 0}
  - {level: 2, name: Silver, points: 30}
";
const GRANTING: &str = "events:
  - {name: LOGIN, point: 1}
  - {name: PURCHASE, point: 10}
levels:
  - {level: 1, name: Bronze, points: 0}
  - {level: 2, name: Silver, points: 30}
achievements:
  - {id: big_spender, name: Big spender, when: {event_type: PURCHASE, count: 2}, points: 5}
";
/// PURCHASE is worth less: nobody is a big spender's 30 points any more, and the
/// achievement needs three purchases.
const REVOKING: &str = "events:
  - {name: LOGIN, point: 1}
  - {name: PURCHASE, point: 5}
levels:
  - {level: 1, name: Bronze, points: 0}
  - {level: 2, name: Silver, points: 30}
achievements:
  - {id: big_spender, name: Big spender, when: {event_type: PURCHASE, count: 3}, points: 5}
";

async fn switch_rules(app: &TestApp, text: &str) {
    common::write_rules(&app.dir.path().join("events.yaml"), text);
    match app.reload_rules().await {
        eventtracker::rules_reload::Outcome::Applied(_) => {}
        other => panic!("the rules were not applied: {other:?}"),
    }
}

/// Whether the app's store applies a recompute: a standalone MongoDB server refuses
/// (501, no transactions), and only the dry run is checked there.
async fn applies(app: &TestApp) -> bool {
    let url = app
        .backend
        .iter()
        .find(|(k, _)| k == "MONGO_URL")
        .map(|(_, v)| v);
    match url {
        Some(url) => common::mongo_server_mode(url).await != "standalone",
        None => true,
    }
}

/// The report's entry of `user`, who must be listed.
fn reported(report: &Value, user: &str) -> Value {
    report["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["user_id"] == user)
        .cloned()
        .expect("the user is reported")
}

async fn recompute(app: &TestApp, apply: bool) -> Value {
    let (status, report) = app
        .post("/v1/admin/recompute", json!({"dry_run": !apply}))
        .await;
    assert_eq!(status, 200, "{report}");
    report
}

#[tokio::test]
async fn a_recompute_grants_achievements_added_to_the_file_and_revokes_them() {
    let app = app(BEFORE).await;
    let user = unique_name("regrant");
    at(&app, &user, "PURCHASE", "2026-11-20T10:00:00Z").await;
    at(&app, &user, "PURCHASE", "2026-11-20T11:00:00Z").await;
    at(&app, &user, "LOGIN", "2026-11-20T12:00:00Z").await;
    assert_eq!(app.points(&user).await, 21);

    switch_rules(&app, GRANTING).await;
    let dry = recompute(&app, false).await;
    let mine = reported(&dry, &user);
    assert_eq!(mine["current"], 21);
    assert_eq!(mine["recomputed"], 26);
    assert_eq!(
        mine["achievements"],
        json!({"unlocked": ["big_spender"], "revoked": []})
    );
    assert!(mine.get("level").is_none(), "{mine}");
    assert_eq!(app.points(&user).await, 21, "a dry run changes nothing");
    let (_, achievements) = app.get(&format!("/v1/users/{user}/achievements")).await;
    assert_eq!(achievements["data"], json!([]));

    if !applies(&app).await {
        let (status, body) = app
            .post("/v1/admin/recompute", json!({"dry_run": false}))
            .await;
        assert_eq!(status, 501, "{body}");
        common::report_skip("a standalone MongoDB server applies no recompute");
        return;
    }
    let applied = recompute(&app, true).await;
    assert_eq!(applied["applied"], true);
    assert_eq!(app.points(&user).await, 26);
    let (_, achievements) = app.get(&format!("/v1/users/{user}/achievements")).await;
    assert_eq!(ids(&achievements["data"]), ["big_spender"]);
    // The unlocked_at is the event time of the purchase that unlocked it.
    assert_eq!(
        achievements["data"][0]["unlocked_at"],
        "2026-11-20T11:00:00.000Z"
    );
    assert_eq!(app.ledger_sum(&user).await, (26, 4));
    let again = recompute(&app, false).await;
    assert!(
        !again["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["user_id"] == user),
        "a second run finds nothing: {again}"
    );

    // Cross Silver, then a rule change that takes the badge and the level away.
    at(&app, &user, "PURCHASE", "2026-11-21T10:00:00Z").await;
    assert_eq!(app.points(&user).await, 36);
    switch_rules(&app, REVOKING).await;
    let dry = recompute(&app, false).await;
    let mine = reported(&dry, &user);
    // 3 × 5 + 1 + the bonus again (three purchases now) = 21.
    assert_eq!(mine["recomputed"], 21, "{mine}");
    assert_eq!(mine["level"], json!({"current": 2, "recomputed": 1}));
    assert!(
        mine.get("achievements").is_none(),
        "still unlocked, at the third purchase: {mine}"
    );

    let stricter = REVOKING.replace("count: 3", "count: 4");
    switch_rules(&app, &stricter).await;
    let dry = recompute(&app, false).await;
    let mine = reported(&dry, &user);
    assert_eq!(
        mine["achievements"],
        json!({"unlocked": [], "revoked": ["big_spender"]})
    );
    assert_eq!(mine["recomputed"], 16);
    recompute(&app, true).await;
    assert_eq!(app.points(&user).await, 16);
    assert_eq!(app.ledger_sum(&user).await, (16, 4), "the bonus entry went");
    let (_, achievements) = app.get(&format!("/v1/users/{user}/achievements")).await;
    assert_eq!(achievements["data"], json!([]));
    let (_, points) = app.get(&format!("/v1/users/{user}/points")).await;
    assert_eq!(points["level"]["level"], 1);
}

#[tokio::test]
async fn a_file_with_a_bad_reference_is_rejected_at_reload_and_the_old_rules_stay() {
    let app = app(RULES).await;
    common::write_rules(
        &app.dir.path().join("events.yaml"),
        &RULES.replace(
            "when: {streak: daily_login, length: 3}",
            "when: {streak: weekly, length: 3}",
        ),
    );
    assert!(matches!(
        app.reload_rules().await,
        eventtracker::rules_reload::Outcome::Rejected(_)
    ));
    let user = unique_name("keep");
    let body = at(&app, &user, "PURCHASE", "2026-11-20T10:00:00Z").await;
    assert_eq!(ids(&body["unlocked"]), ["first_purchase"]);
}

#[tokio::test]
async fn progression_webhooks_say_what_was_unlocked_and_how_levels_and_streaks_moved() {
    let receiver = Receiver::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let hooks = dir.path().join("webhooks.yaml");
    std::fs::write(
        &hooks,
        format!(
            "webhooks:\n  - url: {}\n    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n    events: [achievement.unlocked, level.changed, streak.changed]\n",
            receiver.url
        ),
    )
    .unwrap();
    let mut opts = Options::with_env(&[
        ("WEBHOOKS_PATH", &hooks.display().to_string()),
        ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true"),
        ("WEBHOOK_RETRY_BASE_MS", "50"),
    ]);
    opts.dir = Some(dir);
    let app = spawn_app_with(opts.rules(RULES)).await;
    let user = unique_name("hooks");
    let first = at(&app, &user, "LOGIN", "2026-11-20T10:00:00Z").await;
    // A streak starts; nothing unlocked, and no level change: a new user is Bronze
    // from 0 points on.
    let hits = receiver.wait_for(1, "a streak").await;
    let streak = hits[0].json();
    assert_eq!(streak["type"], "streak.changed");
    assert_eq!(streak["data"]["streak"], "daily_login");
    assert_eq!(streak["data"]["change"], "extended");
    assert_eq!(streak["data"]["length"], 1);
    assert_eq!(streak["data"]["event_id"], first["id"]);
    assert!(hits[0].standard_signed_with(&base64_secret()), "{hits:?}");

    // A gap of two days with no freeze: the next login finds the streak broken.
    at(&app, &user, "LOGIN", "2026-11-23T10:00:00Z").await;
    let hits = receiver.wait_for(3, "broken and extended").await;
    let changes: Vec<String> = hits[1..]
        .iter()
        .map(|h| h.json()["data"]["change"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(changes, ["broken", "extended"]);
    assert_eq!(hits[1].json()["data"]["broken_length"], 1);

    at(&app, &user, "PURCHASE", "2026-11-23T11:00:00Z").await;
    let hits = receiver.wait_for(4, "first purchase").await;
    let unlocked = hits[3].json();
    assert_eq!(unlocked["type"], "achievement.unlocked");
    assert_eq!(
        unlocked["data"]["achievement"],
        json!({"id": "first_purchase", "name": "First purchase"})
    );
    assert_eq!(unlocked["data"]["times"], 1);
    assert_eq!(unlocked["data"]["unlocked_at"], "2026-11-23T11:00:00.000Z");

    // 12 points, then nine purchases in one batch: 102, Centurion and Silver.
    let purchases: Vec<Value> = (0..9)
        .map(|i| json!({"user_id": user, "event_type": "PURCHASE", "timestamp": format!("2026-11-24T1{i}:00:00Z")}))
        .collect();
    app.batch(purchases).await;
    let hits = receiver.wait_for(6, "centurion and the level").await;
    assert_eq!(hits[4].json()["data"]["achievement"]["id"], "centurion");
    let level = hits[5].json();
    assert_eq!(level["type"], "level.changed");
    assert_eq!(level["data"]["from"], json!({"level": 1, "name": "Bronze"}));
    assert_eq!(level["data"]["to"], json!({"level": 2, "name": "Silver"}));
    assert_eq!(level["data"]["direction"], "up");
    assert_eq!(level["data"]["points"], 102);
    app.webhook_pass().await;
    assert_eq!(receiver.hits().len(), 6, "nothing else was sent");

    // A rule change that takes points away, applied: the level goes back down.
    if !applies(&app).await {
        common::report_skip("a standalone MongoDB server applies no recompute");
        return;
    }
    switch_rules(
        &app,
        &RULES.replace("{name: PURCHASE, point: 10}", "{name: PURCHASE, point: 5}"),
    )
    .await;
    recompute(&app, true).await;
    let hits = receiver.wait_for(7, "the recompute's level change").await;
    let down = hits[6].json();
    assert_eq!(down["type"], "level.changed");
    assert_eq!(down["data"]["direction"], "down");
    assert_eq!(down["data"]["to"], json!({"level": 1, "name": "Bronze"}));
    assert_eq!(down["data"]["event_id"], Value::Null);
}

fn base64_secret() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap()
}
