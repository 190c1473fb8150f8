//! Progression kept by the MongoDB store: achievements with bonus entries unlocked at
//! ingest, streaks in the user's time zone (set before their first event), rarity
//! counts, a recompute that grants an achievement added to the file, and two instances
//! racing one user's events unlocking an achievement exactly once. Runs against either
//! server mode (`TEST_MONGO_MODE`): transactions on a replica set, the journal on a
//! standalone server. Skipped, visibly, unless `TEST_BACKEND` has `mongo`.

use crate::helpers as common;

use std::sync::Arc;
use std::time::Duration;

use common::{spawn_app_with, spawn_process_with, unique_name, Options, TestApp};
use serde_json::{json, Value};

const RULES: &str = "\
events:
  - {name: LOGIN, point: 1}
  - {name: PURCHASE, point: 10}
streaks:
  - {id: daily_login, name: Daily login, event_types: [LOGIN], period: day}
achievements:
  - {id: first_purchase, name: First purchase, when: {event_type: PURCHASE, count: 1}, points: 25}
  - {id: regular, name: Regular, when: {streak: daily_login, length: 2}}
";

/// 2026-01-15T07:30:00Z: 23:30 on the 14th in Los Angeles (PST, UTC-8).
const LATE_EVENING_LA: i64 = 1_768_462_200;

fn mongo_or_skip(what: &str) -> bool {
    if common::backend_has("mongo") {
        return true;
    }
    common::report_skip(&format!("{what}: needs TEST_BACKEND=mongo"));
    false
}

async fn patch_timezone(app: &TestApp, user: &str, tz: &str) -> (u16, Value) {
    let r = app
        .client
        .patch(app.url(&format!("/v1/users/{user}")))
        .json(&json!({ "timezone": tz }))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The ids of a response's `unlocked` list, with their names.
fn unlocked(body: &Value) -> Vec<(String, String)> {
    body["unlocked"]
        .as_array()
        .unwrap_or_else(|| panic!("no unlocked list in {body}"))
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap_or_default().to_owned(),
                a["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Every ledger entry of the user as (type, points), read page by page.
async fn history(app: &TestApp, user: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/users/{user}/events?limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{body}");
        for e in body["data"].as_array().expect("data") {
            out.push((
                e["event_type"].as_str().unwrap_or_default().to_owned(),
                e["points"].as_i64().expect("points"),
            ));
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

fn bonus_entries(entries: &[(String, i64)], id: &str) -> usize {
    let ty = format!("achievement:{id}");
    entries.iter().filter(|(t, _)| *t == ty).count()
}

async fn achievement_ids(app: &TestApp, user: &str) -> Vec<String> {
    let (status, body) = app.get(&format!("/v1/users/{user}/achievements")).await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn achievements_streaks_in_the_users_time_zone_and_rarity_are_kept() {
    if !mongo_or_skip("progression kept by MongoDB") {
        return;
    }
    let app = spawn_app_with(Options::default().rules(RULES)).await;
    let (user, other) = (unique_name("prog"), unique_name("prog_other"));

    // Set before the user's first event: kept, and no board lists the user for it.
    let (status, body) = patch_timezone(&app, &user, "America/Los_Angeles").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["timezone"], "America/Los_Angeles");
    let (status, board) = app.get("/v1/leaderboard?period=all").await;
    assert_eq!(status, 200, "{board}");
    assert!(
        common::board_entries(&board)
            .iter()
            .all(|(u, _)| *u != user),
        "a time zone alone puts nobody on a board: {board}"
    );

    let (status, first) = app
        .event(&user, "PURCHASE", json!(LATE_EVENING_LA - 3600))
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["points"], 10, "the event's own points: {first}");
    assert_eq!(
        unlocked(&first),
        vec![("first_purchase".to_owned(), "First purchase".to_owned())]
    );
    let (status, second) = app
        .event(&user, "PURCHASE", json!(LATE_EVENING_LA - 1800))
        .await;
    assert_eq!(status, 201, "{second}");
    assert!(unlocked(&second).is_empty(), "unlocked once: {second}");

    // 23:30 and 00:30 in Los Angeles: two local days (one UTC day).
    let (status, evening) = app.event(&user, "LOGIN", json!(LATE_EVENING_LA)).await;
    assert_eq!(status, 201, "{evening}");
    assert!(unlocked(&evening).is_empty(), "{evening}");
    let (status, midnight) = app
        .event(&user, "LOGIN", json!(LATE_EVENING_LA + 3600))
        .await;
    assert_eq!(status, 201, "{midnight}");
    assert_eq!(
        unlocked(&midnight),
        vec![("regular".to_owned(), "Regular".to_owned())],
        "a two-day streak across local midnight: {midnight}"
    );

    app.clock.set((LATE_EVENING_LA + 7200) * 1000);
    let (status, streaks) = app.get(&format!("/v1/users/{user}/streaks")).await;
    assert_eq!(status, 200, "{streaks}");
    assert_eq!(streaks["timezone"], "America/Los_Angeles", "{streaks}");
    let daily = streaks["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|s| s["id"] == "daily_login")
        .cloned()
        .unwrap_or_else(|| panic!("no daily_login in {streaks}"));
    assert_eq!(
        (daily["length"].as_i64(), daily["longest"].as_i64()),
        (Some(2), Some(2)),
        "{daily}"
    );

    let mut ids = achievement_ids(&app, &user).await;
    ids.sort();
    assert_eq!(ids, ["first_purchase", "regular"]);

    // The bonus is one ledger entry, in the total and the board like any other.
    let entries = history(&app, &user).await;
    assert_eq!(bonus_entries(&entries, "first_purchase"), 1, "{entries:?}");
    assert_eq!(entries.len(), 5, "four events and one bonus: {entries:?}");
    assert_eq!(app.points(&user).await, 10 + 10 + 1 + 1 + 25);
    assert_eq!(app.ledger_sum(&user).await.0, app.points(&user).await);
    let (_, standing) = app
        .get(&format!("/v1/leaderboard/users/{user}?period=all"))
        .await;
    assert_eq!(standing["points"], 47, "{standing}");

    let (status, body) = app.event(&other, "PURCHASE", json!(LATE_EVENING_LA)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(unlocked(&body).len(), 1, "{body}");
    let (status, rarity) = app.get("/v1/achievements").await;
    assert_eq!(status, 200, "{rarity}");
    assert_eq!(rarity["users"], 2, "users with a ledger: {rarity}");
    let users_of = |id: &str| {
        rarity["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|a| a["id"] == id)
            .map(|a| a["users"].clone())
    };
    assert_eq!(users_of("first_purchase"), Some(json!(2)), "{rarity}");
    assert_eq!(users_of("regular"), Some(json!(1)), "{rarity}");

    // Erasure takes the progress with it.
    let r = app
        .client
        .delete(app.url(&format!("/v1/users/{user}")))
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "{}", r.status());
    assert!(achievement_ids(&app, &user).await.is_empty());
    let (_, streaks) = app.get(&format!("/v1/users/{user}/streaks")).await;
    assert_eq!(streaks["timezone"], "UTC", "{streaks}");
    app.stop().await;
}

const WITHOUT_ACHIEVEMENTS: &str = "\
events:
  - {name: LOGIN, point: 1}
  - {name: PURCHASE, point: 10}
";

#[tokio::test]
async fn a_recompute_grants_an_achievement_added_to_the_file() {
    if !mongo_or_skip("recompute of progression on MongoDB") {
        return;
    }
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    std::fs::write(dir.path().join("events.yaml"), WITHOUT_ACHIEVEMENTS).expect("rules");
    let app = spawn_app_with(Options {
        env: vec![
            (
                "EVENTS_POINTS_PATH".into(),
                dir.path().join("events.yaml").display().to_string(),
            ),
            ("RULES_RELOAD_INTERVAL_SECS".into(), "1".into()),
        ],
        dir: Some(dir.clone()),
    })
    .await;
    let user = unique_name("recompute_prog");
    for ts in [LATE_EVENING_LA, LATE_EVENING_LA + 60] {
        let (status, body) = app.event(&user, "PURCHASE", json!(ts)).await;
        assert_eq!(status, 201, "{body}");
        assert!(unlocked(&body).is_empty(), "no achievements yet: {body}");
    }
    common::write_rules(&dir.path().join("events.yaml"), RULES);
    let mut in_force = false;
    for _ in 0..150 {
        let (_, types) = app.get("/v1/event-types").await;
        if types["rules_version"]["version"] == 2 {
            in_force = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(in_force, "the new rules never came into force");

    let mine = |report: &Value| {
        report["users"]
            .as_array()
            .expect("users")
            .iter()
            .find(|u| u["user_id"] == user.as_str())
            .cloned()
    };
    let (status, dry) = app.post("/v1/admin/recompute", json!({})).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["applied"], false);
    let report = mine(&dry).unwrap_or_else(|| panic!("{user} not in {dry}"));
    assert_eq!(
        (&report["current"], &report["recomputed"]),
        (&json!(20), &json!(45)),
        "the bonus the new achievement brings: {report}"
    );
    assert_eq!(app.points(&user).await, 20, "a dry run changes nothing");
    assert!(achievement_ids(&app, &user).await.is_empty());

    let (status, applied) = app
        .post("/v1/admin/recompute", json!({"dry_run": false}))
        .await;
    if status == 501 {
        // Standalone server: no atomic rewrite, so apply is refused and nothing changes.
        assert!(
            applied["message"]
                .as_str()
                .unwrap_or_default()
                .contains("transactions"),
            "{applied}"
        );
        assert_eq!(app.points(&user).await, 20);
        app.stop().await;
        return;
    }
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["applied"], true, "{applied}");
    assert_eq!(app.points(&user).await, 45);
    let entries = history(&app, &user).await;
    assert_eq!(bonus_entries(&entries, "first_purchase"), 1, "{entries:?}");
    assert_eq!(app.ledger_sum(&user).await.0, 45);
    assert_eq!(achievement_ids(&app, &user).await, ["first_purchase"]);
    let (_, rarity) = app.get("/v1/achievements").await;
    let first = rarity["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|a| a["id"] == "first_purchase")
        .cloned();
    assert_eq!(
        first.map(|a| a["users"].clone()),
        Some(json!(1)),
        "{rarity}"
    );

    // Done: a second run finds nothing to change and adds no second bonus.
    let (status, again) = app
        .post("/v1/admin/recompute", json!({"dry_run": false}))
        .await;
    assert_eq!(status, 200, "{again}");
    let report = mine(&again);
    assert!(report.as_ref().is_none_or(|r| r["delta"] == 0), "{again}");
    assert_eq!(
        bonus_entries(&history(&app, &user).await, "first_purchase"),
        1
    );
    assert_eq!(app.points(&user).await, 45);
    app.stop().await;
}

#[tokio::test]
async fn two_instances_racing_one_user_unlock_an_achievement_once() {
    if !mongo_or_skip("two instances on one MongoDB") {
        return;
    }
    let url = common::server_url("TEST_MONGO_URL").expect("TEST_MONGO_URL");
    if common::mongo_server_mode(&url).await != "replset" {
        common::report_skip("two writers on one database need a replica set: a standalone server takes one writer instance");
        return;
    }
    let a = spawn_process_with(Options::default().rules(RULES));
    let b = spawn_process_with(Options {
        env: a.backend.clone(),
        dir: Some(a.dir.clone()),
    });
    let now = common::now_ms() / 1000;
    for round in 0..4 {
        let user = unique_name(&format!("race{round}"));
        // Four distinct purchases, two through each instance, all at once: each could
        // be the user's first.
        let sends = (0..4).map(|k| {
            let app = if k % 2 == 0 { &a } else { &b };
            let user = user.clone();
            async move { app.event(&user, "PURCHASE", json!(now - 100 + k)).await }
        });
        let answers = futures_util::future::join_all(sends).await;
        let mut unlocks = 0;
        for (status, body) in &answers {
            assert_eq!(*status, 201, "{body}");
            unlocks += unlocked(body).len();
        }
        assert_eq!(unlocks, 1, "one answer reports the unlock: {answers:?}");
        for app in [&a, &b] {
            let entries = history(app, &user).await;
            assert_eq!(bonus_entries(&entries, "first_purchase"), 1, "{entries:?}");
            assert_eq!(entries.len(), 5, "{entries:?}");
            assert_eq!(app.points(&user).await, 4 * 10 + 25);
            assert_eq!(app.ledger_sum(&user).await.0, 4 * 10 + 25);
            assert_eq!(achievement_ids(app, &user).await, ["first_purchase"]);
        }
    }
    let (_, rarity) = a.get("/v1/achievements").await;
    assert_eq!(rarity["users"], 4, "{rarity}");
    a.stop().await;
    b.stop().await;
}

/// The real binary on `url` serving `rules` and armed to crash at `point`: sends it
/// `body` and checks that it died there instead of answering.
async fn crash_at(url: &str, rules: &std::path::Path, point: &str, body: Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env: Vec<(String, String)> = common::base_env(dir.path()).into_iter().collect();
    env.push(("MONGO_URL".into(), url.into()));
    env.push(("EVENTS_POINTS_PATH".into(), rules.display().to_string()));
    env.push(("EVENTTRACKER_CRASH_AT".into(), point.into()));
    let server = common::process::start(&env);
    let sent = reqwest::Client::new()
        .post(format!("{}/v1/events/batch", server.base))
        .json(&body)
        .send()
        .await;
    assert!(
        sent.is_err(),
        "{point}: answered {sent:?} instead of crashing"
    );
    let code = tokio::task::spawn_blocking(move || server.wait())
        .await
        .expect("join");
    assert_eq!(code, None, "{point}: the server aborted at the crash point");
}

/// A journaled batch that unlocks an achievement with a bonus, cut short at `point`:
/// once recovery ran, the bonus is in the ledger once, the progress is kept (the
/// streak continues from it) and the client's retry is a duplicate.
async fn progress_survives_a_crash_at(url: String, point: &'static str) {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let rules = dir.path().join("events.yaml");
    std::fs::write(&rules, RULES).expect("rules");
    let user = unique_name("crash_prog");
    let batch = json!({"events": [
        {"user_id": user, "event_type": "PURCHASE", "timestamp": "2026-11-02T10:00:00Z"},
        {"user_id": user, "event_type": "LOGIN", "timestamp": "2026-11-02T11:00:00Z"},
    ]});
    crash_at(&url, &rules, point, batch.clone()).await;

    let app = spawn_process_with(Options {
        env: vec![
            ("MONGO_URL".into(), url.clone()),
            ("EVENTS_POINTS_PATH".into(), rules.display().to_string()),
        ],
        dir: Some(dir.clone()),
    });
    app.wait_for_log(
        "finished writes that were cut short",
        Duration::from_secs(150),
    )
    .await;
    let entries = history(&app, &user).await;
    assert_eq!(
        bonus_entries(&entries, "first_purchase"),
        1,
        "{point}: {entries:?}"
    );
    assert_eq!(entries.len(), 3, "{point}: {entries:?}");
    assert_eq!(app.points(&user).await, 10 + 1 + 25, "{point}");
    assert_eq!(app.ledger_sum(&user).await.0, 36, "{point}");
    assert_eq!(
        achievement_ids(&app, &user).await,
        ["first_purchase"],
        "{point}"
    );

    let retried = app
        .batch(batch["events"].as_array().expect("events").clone())
        .await;
    assert_eq!(retried["duplicates"], 2, "{point}: {retried}");
    // The next day's LOGIN continues the streak the crashed batch began.
    let (status, body) = app
        .event(&user, "LOGIN", json!("2026-11-03T09:00:00Z"))
        .await;
    assert_eq!(status, 201, "{point}: {body}");
    assert_eq!(
        unlocked(&body),
        vec![("regular".to_owned(), "Regular".to_owned())],
        "{point}: {body}"
    );
    let (status, again) = app
        .event(&user, "PURCHASE", json!("2026-11-03T10:00:00Z"))
        .await;
    assert_eq!(status, 201, "{point}: {again}");
    assert!(unlocked(&again).is_empty(), "{point}: {again}");
    assert_eq!(
        bonus_entries(&history(&app, &user).await, "first_purchase"),
        1,
        "{point}"
    );
    assert_eq!(app.points(&user).await, 36 + 1 + 10, "{point}");
    app.stop().await;
}

#[tokio::test]
async fn a_journaled_batch_cut_short_keeps_its_progress_and_one_bonus() {
    if !mongo_or_skip("journaled progression after a crash") {
        return;
    }
    let base = common::server_url("TEST_MONGO_URL").expect("TEST_MONGO_URL");
    if common::mongo_server_mode(&base).await != "standalone" {
        common::report_skip("the journaled write path runs only on a standalone server");
        return;
    }
    // Before the state update (progress to be made by recovery) and after it (made
    // already: recovery must not make it twice), each on a database of its own.
    let runs = ["mongo.journal.after_insert", "mongo.journal.after_states"]
        .map(|point| progress_survives_a_crash_at(common::mongo_url_with_fresh_db(&base), point));
    futures_util::future::join_all(runs).await;
}
