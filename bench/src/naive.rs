//! The MongoDB baseline the server's write grouping must beat: a writer doing one
//! `insert_one` round trip per event, at the same concurrency, straight to the database.

use std::time::{Duration, Instant};

use anyhow::Context;
use mongodb::bson::doc;
use mongodb::options::WriteConcern;
use mongodb::Client;

use crate::load::{merge, Shape, Stats, Tally};
use crate::workload::{now_ms, USERS};

/// Connects to `url` and returns a client; fails fast when nothing answers.
pub async fn client(url: &str) -> anyhow::Result<Client> {
    let client = Client::with_uri_str(url)
        .await
        .with_context(|| format!("bad MongoDB URL {url}"))?;
    client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .with_context(|| format!("MongoDB at {url} does not answer ping"))?;
    Ok(client)
}

/// Inserts events one by one from `shape.connections` tasks into a database of its
/// own (dropped afterwards), with the server's default write concern (majority).
pub async fn insert_one_per_event(
    client: &Client,
    db: &str,
    shape: Shape,
) -> anyhow::Result<Stats> {
    let database = client.database(db);
    let events = database.collection_with_options::<mongodb::bson::Document>(
        "events",
        mongodb::options::CollectionOptions::builder()
            .write_concern(WriteConcern::majority())
            .build(),
    );
    let begin = Instant::now() + Duration::from_millis(200);
    let measure_from = begin + shape.warmup;
    let end = measure_from + shape.duration;
    let base = now_ms() - 400 * 86_400_000;
    let tasks: Vec<_> = (0..shape.connections as i64)
        .map(|k| {
            let events = events.clone();
            tokio::spawn(async move {
                let mut tally = Tally::new();
                tokio::time::sleep_until(begin.into()).await;
                let mut i: i64 = 0;
                while Instant::now() < end {
                    let ts = base + i * 1000 + k;
                    let user = format!("u{}", (i as u64 * 7 + k as u64) % USERS);
                    let doc = doc! {
                        "user_id": &user, "event_type": "PURCHASE", "ts_ms": ts,
                        "dedup_key": format!("t:PURCHASE:{ts}"), "points": 10_i64,
                        "received_ms": now_ms(),
                    };
                    let sent = Instant::now();
                    let result = events
                        .insert_one(doc)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("insert_one: {e}"));
                    if sent >= measure_from {
                        tally.record(result, 1, sent.elapsed());
                    }
                    i += 1;
                }
                tally
            })
        })
        .collect();
    let mut tallies = Vec::new();
    for t in tasks {
        tallies.push(t.await.context("naive writer task failed")?);
    }
    let stats = merge(tallies, measure_from, false);
    database
        .drop()
        .await
        .with_context(|| format!("cannot drop database {db}"))?;
    Ok(stats)
}
