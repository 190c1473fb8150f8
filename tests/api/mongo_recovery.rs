//! What the API suite cannot show about the MongoDB store: writes cut short by a crash
//! (staged directly in the database, in the layout docs/scaling.md describes) converge
//! after a restart with every point counted exactly once, and concurrent requests share
//! group commits. Needs `TEST_MONGO_URL` (scripts/mongo-test-server.sh); skipped without.
//!
//! Which recovery path runs depends on the server: on a replica set the store recovers
//! each batch in a transaction, on a standalone server by re-applying it through the
//! per-batch guards (the journal path). scripts/test.sh runs this file against both and
//! sets `TEST_MONGO_MODE` (`replset` or `standalone`) so that a server of the wrong kind
//! fails the run instead of silently testing the other path.

use crate::helpers as common;

use common::{mongo_url_with_fresh_db, server_url, spawn_app_with, Options, TestApp};
use eventtracker::domain::event::NewEvent;
use eventtracker::domain::period::PeriodKey;
use eventtracker::domain::time::parse_query_time;
use eventtracker::store::mongo::schema::{
    period_id, total_id, EventDoc, Pending, DELETIONS, EVENTS, GUARD, PERIODS, TOTALS,
};
use eventtracker::store::mongo::RECOVERY_GRACE_MS;
use mongodb::bson::{doc, Document};
use mongodb::{Client, Database};
use serde_json::json;

const MON: &str = "2026-11-02T10:00:00Z";

async fn app_on(url: &str) -> TestApp {
    spawn_app_with(Options {
        env: vec![("MONGO_URL".into(), url.into())],
        ..Default::default()
    })
    .await
}

async fn database(url: &str) -> Database {
    let client = Client::with_uri_str(url).await.expect("mongo client");
    client.default_database().expect("database in the URL")
}

fn event(id: &str, user: &str, event_type: &str, points: i64, ts: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        user_id: user.into(),
        event_type: event_type.into(),
        ts_ms: parse_query_time(ts).expect("time"),
        event_id: None,
        properties: None,
        points,
        base_points: points,
        rules_version: Some(1),
        cap: None,
        received_ms: common::now_ms(),
    }
}

fn pending(batch: &str, at_ms: i64) -> Option<Pending> {
    Some(Pending {
        batch: batch.into(),
        at_ms,
    })
}

/// Counter documents exactly as a batch that reached them leaves them.
async fn stage_counters(db: &Database, batch: &str, events: &[&NewEvent], periods: bool) {
    for e in events {
        db.collection::<Document>(TOTALS)
            .update_one(
                doc! { "_id": total_id(&e.event_type, &e.user_id) },
                doc! {
                    "$inc": { "events": 1_i64, "points": e.points },
                    "$setOnInsert": { "user_id": &e.user_id, "event_type": &e.event_type },
                    "$addToSet": { GUARD: batch },
                },
            )
            .upsert(true)
            .await
            .expect("stage total");
        if !periods {
            continue;
        }
        for key in PeriodKey::keys_for_event(e.ts_ms) {
            db.collection::<Document>(PERIODS)
                .update_one(
                    doc! { "_id": period_id(&key, &e.user_id) },
                    doc! {
                        "$inc": { "points": e.points },
                        "$setOnInsert": { "user_id": &e.user_id, "period": &key },
                        "$addToSet": { GUARD: batch },
                    },
                )
                .upsert(true)
                .await
                .expect("stage period");
        }
    }
}

/// The kind of server at `url` (see `common::mongo_server_mode`), checked against
/// `TEST_MONGO_MODE` when that is set.
async fn server_mode(url: &str) -> &'static str {
    let mode = common::mongo_server_mode(url).await;
    if let Ok(want) = std::env::var("TEST_MONGO_MODE") {
        if !want.is_empty() {
            assert_eq!(
                mode, want,
                "TEST_MONGO_URL is not the kind of server TEST_MONGO_MODE says"
            );
        }
    }
    mode
}

async fn assert_ledger(app: &TestApp, user: &str, points: i64, events: usize) {
    assert_eq!(
        app.ledger_sum(user).await,
        (points, events),
        "{user}: ledger"
    );
    assert_eq!(app.points(user).await, points, "{user}: total");
}

#[tokio::test]
async fn writes_cut_short_converge_after_a_restart() {
    let Some(base) = server_url("TEST_MONGO_URL") else {
        return;
    };
    let url = mongo_url_with_fresh_db(&base);
    let app = app_on(&url).await;
    app.batch(vec![
        json!({"user_id": "x", "event_type": "LOGIN", "timestamp": "2026-11-01T10:00:00Z"}),
        json!({"user_id": "gone", "event_type": "PURCHASE", "timestamp": MON}),
        json!({"user_id": "gone", "event_type": "LOGIN", "timestamp": "2026-10-01T00:00:00Z"}),
    ])
    .await;
    app.stop().await;

    let db = database(&url).await;
    let mode = server_mode(&url).await;
    println!("mongo_recovery: recovering staged crash states on the {mode} path");
    let events = db.collection::<EventDoc>(EVENTS);
    let old = common::now_ms() - RECOVERY_GRACE_MS - 5_000;

    // Crash after the insert, before any counter moved.
    let x1 = event("a1", "x", "PURCHASE", 10, MON);
    let x2 = event("a2", "x", "REVIEW", 5, "2026-11-03T10:00:00Z");
    let y1 = event("a3", "y", "LOGIN", 1, MON);
    // Crash while the counters were being updated: z's totals and one leaderboard in.
    let z1 = event("b1", "z", "PURCHASE", 10, MON);
    let z2 = event("b2", "z", "LOGIN", 1, MON);
    // Crash while the events were being marked done: every counter in.
    let w1 = event("c1", "w", "LOGIN", 1, MON);
    let w2 = event("c2", "w", "LOGIN", 1, "2026-11-02T11:00:00Z");
    // A batch of a writer that may still be running: recovery must leave it alone.
    let v1 = event("d1", "v", "LOGIN", 1, MON);
    // Crash after the events stopped being pending, before the guards were pulled: the
    // stray guard ids must neither count the batch again nor block later batches.
    let s1 = event("e1", "s", "PURCHASE", 10, MON);
    let docs = vec![
        EventDoc::new(&x1, pending("batch-a", old)),
        EventDoc::new(&x2, pending("batch-a", old)),
        EventDoc::new(&y1, pending("batch-a", old)),
        EventDoc::new(&z1, pending("batch-b", old)),
        EventDoc::new(&z2, pending("batch-b", old)),
        EventDoc::new(&w1, None),
        EventDoc::new(&w2, pending("batch-c", old)),
        EventDoc::new(&v1, pending("batch-d", common::now_ms())),
        EventDoc::new(&s1, None),
    ];
    events.insert_many(docs).await.expect("stage events");
    stage_counters(&db, "batch-b", &[&z1, &z2], false).await;
    db.collection::<Document>(PERIODS)
        .insert_one(doc! { "_id": period_id("all", "z"), "user_id": "z", "period": "all", "points": 11_i64, GUARD: ["batch-b"] })
        .await
        .expect("stage z all-time");
    stage_counters(&db, "batch-c", &[&w1, &w2], true).await;
    stage_counters(&db, "batch-e", &[&s1], true).await;
    // An erasure cut short after the leaderboard entries went.
    db.collection::<Document>(PERIODS)
        .delete_many(doc! { "user_id": "gone" })
        .await
        .expect("stage erasure");
    db.collection::<Document>(DELETIONS)
        .insert_one(doc! { "_id": "gone", "at_ms": old })
        .await
        .expect("stage erasure marker");

    let app = app_on(&url).await;
    assert_ledger(&app, "x", 1 + 10 + 5, 3).await;
    assert_ledger(&app, "y", 1, 1).await;
    assert_ledger(&app, "z", 11, 2).await;
    assert_ledger(&app, "w", 2, 2).await;
    let (_, z) = app.get("/v1/users/z/points").await;
    assert_eq!(
        z["by_type"],
        json!({"LOGIN": {"events": 1, "points": 1}, "PURCHASE": {"events": 1, "points": 10}})
    );
    let (_, week) = app
        .get("/v1/leaderboard?period=week&at=2026-11-02T00:00:00Z")
        .await;
    assert_eq!(
        week["entries"],
        json!([
            {"rank": 1, "user_id": "x", "points": 15},
            {"rank": 2, "user_id": "z", "points": 11},
            {"rank": 3, "user_id": "s", "points": 10},
            {"rank": 4, "user_id": "w", "points": 2},
            {"rank": 5, "user_id": "y", "points": 1},
        ])
    );
    assert_ledger(&app, "s", 10, 1).await;
    assert_eq!(app.points("gone").await, 0);
    assert_eq!(app.get("/v1/users/gone/events").await.1["data"], json!([]));
    // The young batch is untouched: its event is stored, its points not yet counted.
    assert_eq!(app.ledger_sum("v").await, (1, 1));
    assert_eq!(app.points("v").await, 0);

    let still_pending = events
        .count_documents(doc! { "pending": { "$exists": true } })
        .await
        .expect("count");
    assert_eq!(still_pending, 1, "only the young batch is pending");
    let old_batches = ["batch-a", "batch-b", "batch-c"];
    for coll in [TOTALS, PERIODS] {
        let guarded = db
            .collection::<Document>(coll)
            .count_documents(doc! { GUARD: { "$in": &old_batches[..] } })
            .await
            .expect("count");
        assert_eq!(guarded, 0, "{coll}: recovered batches leave no guard ids");
    }
    let markers = db
        .collection::<Document>(DELETIONS)
        .count_documents(doc! {})
        .await
        .expect("count");
    assert_eq!(markers, 0);

    // New writes to counters holding a stray guard count normally.
    let (status, body) = app
        .event("s", "PURCHASE", json!("2026-11-04T10:00:00Z"))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_ledger(&app, "s", 20, 2).await;

    // Recovery ran once: a second restart changes nothing.
    app.stop().await;
    let app = app_on(&url).await;
    assert_ledger(&app, "x", 16, 3).await;
    assert_ledger(&app, "z", 11, 2).await;
    assert_ledger(&app, "w", 2, 2).await;
    assert_ledger(&app, "s", 20, 2).await;
    app.stop().await;
    db.drop().await.expect("drop test database");
}

#[tokio::test]
async fn concurrent_requests_share_commits_and_count_once() {
    let Some(base) = server_url("TEST_MONGO_URL") else {
        return;
    };
    let url = mongo_url_with_fresh_db(&base);
    let app = app_on(&url).await;
    let commits = || async {
        let text = app.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix("store_commit_batch_events_count "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = commits().await;
    const N: usize = 100;
    let app_ref = &app;
    let sends = (0..N).map(|i| async move {
        let user = format!("c{}", i % 10);
        app_ref
            .event(&user, "LOGIN", json!(1_700_000_000 + i as i64))
            .await
    });
    let results = futures_util::future::join_all(sends).await;
    assert!(results.iter().all(|(s, _)| *s == 201), "all created");
    // The same event sent many times at once: one creation, every other answer points at it.
    let same = (0..20).map(|_| app.event("dup", "PURCHASE", json!(MON)));
    let answers = futures_util::future::join_all(same).await;
    let created: Vec<_> = answers.iter().filter(|(s, _)| *s == 201).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let id = &created[0].1["id"];
    assert!(answers
        .iter()
        .all(|(s, body)| *s == 201 || (*s == 409 && &body["id"] == id)));
    let after = commits().await;
    // Other tests in this binary commit a few groups meanwhile; one commit per request
    // would be 120.
    assert!(
        after - before < (N / 2) as f64,
        "{} commits for {} requests",
        after - before,
        N + 20
    );
    for u in 0..10 {
        assert_ledger(&app, &format!("c{u}"), 10, 10).await;
    }
    assert_ledger(&app, "dup", 10, 1).await;
    app.stop().await;
    database(&url)
        .await
        .drop()
        .await
        .expect("drop test database");
}
