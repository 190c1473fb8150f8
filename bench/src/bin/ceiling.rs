//! The ceiling: a minimal axum server speaking the same requests and answers as
//! EventTracker with no storage, validation rules or middleware. Whatever it reaches on
//! this machine is the most an axum service can, so the real server is judged by its
//! ratio to it. Usage: `ceiling 127.0.0.1:PORT`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)] // parsed for its cost, as the real server does; never read
enum Timestamp {
    Unix(i64),
    Text(String),
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct EventIn {
    user_id: String,
    event_type: String,
    timestamp: Timestamp,
}

#[derive(Serialize)]
struct EventCreated {
    message: &'static str,
    id: String,
    points: i64,
}

#[derive(Deserialize)]
struct BatchIn {
    events: Vec<EventIn>,
}

#[derive(Serialize)]
struct BatchItem {
    index: usize,
    status: &'static str,
    id: String,
    points: i64,
}

#[derive(Serialize)]
struct BatchOut {
    created: usize,
    duplicates: usize,
    rejected: usize,
    results: Vec<BatchItem>,
}

#[derive(Serialize)]
struct TypeTotal {
    events: u64,
    points: i64,
}

#[derive(Serialize)]
struct PointsOut {
    user_id: String,
    points: i64,
    events: u64,
    by_type: std::collections::BTreeMap<&'static str, TypeTotal>,
}

#[derive(Serialize)]
struct Entry {
    rank: u64,
    user_id: String,
    points: i64,
}

#[derive(Serialize)]
struct LeaderboardOut {
    period: &'static str,
    start: &'static str,
    end: &'static str,
    entries: Vec<Entry>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A 32-hex-digit id like the server's UUIDv7, without the clock read.
fn new_id() -> String {
    format!("{:032x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

async fn record(Json(_event): Json<EventIn>) -> (StatusCode, Json<EventCreated>) {
    (
        StatusCode::CREATED,
        Json(EventCreated {
            message: "User events recorded Successfully",
            id: new_id(),
            points: 10,
        }),
    )
}

async fn batch(Json(body): Json<BatchIn>) -> Json<BatchOut> {
    let results: Vec<BatchItem> = (0..body.events.len())
        .map(|index| BatchItem {
            index,
            status: "created",
            id: new_id(),
            points: 10,
        })
        .collect();
    Json(BatchOut {
        created: results.len(),
        duplicates: 0,
        rejected: 0,
        results,
    })
}

async fn points(Path(user_id): Path<String>) -> Json<PointsOut> {
    let mut by_type = std::collections::BTreeMap::new();
    by_type.insert(
        "PURCHASE",
        TypeTotal {
            events: 1,
            points: 10,
        },
    );
    Json(PointsOut {
        user_id,
        points: 10,
        events: 1,
        by_type,
    })
}

async fn leaderboard() -> Json<LeaderboardOut> {
    let entries = (0..10u64)
        .map(|i| Entry {
            rank: i + 1,
            user_id: format!("lb{}", 99_999 - i),
            points: 100 - i as i64,
        })
        .collect();
    Json(LeaderboardOut {
        period: "week",
        start: "2026-11-02T00:00:00.000Z",
        end: "2026-11-09T00:00:00.000Z",
        entries,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: ceiling HOST:PORT");
        return std::process::ExitCode::from(2);
    };
    let app = Router::new()
        .route("/v1/users/events", post(record))
        .route("/v1/events/batch", post(batch))
        .route("/v1/users/{user_id}/points", get(points))
        .route("/v1/leaderboard", get(leaderboard))
        .route(
            "/readyz",
            get(|| async { r#"{"status":"ready","store":"ok"}"# }),
        )
        // The real server's batch bodies reach 1 MiB; axum's default limit is 2 MiB.
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024));
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ceiling: cannot listen on {addr}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("ceiling: server error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
