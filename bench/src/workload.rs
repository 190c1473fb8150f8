//! What the load consists of: event bodies with never-repeating timestamps (so the
//! server's deduplication never turns a write into a cheap 409), and the GET paths.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, StatusCode};

use crate::load::{MakeReq, Req, Rng};

/// Users the write and points-read scenarios spread over.
pub const USERS: u64 = 1000;
const DAY_MS: i64 = 86_400_000;

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Monday 00:00 UTC of the ISO week holding `ms` (1970-01-01 was a Thursday).
pub fn week_start_ms(ms: i64) -> i64 {
    let day = ms.div_euclid(DAY_MS);
    (day - (day + 3).rem_euclid(7)) * DAY_MS
}

/// Hands out millisecond timestamps, each once. They start 400 days back so the load
/// scenarios stay out of the current week, whose leaderboard scenario 4 reads.
pub struct Stamps(AtomicI64);

impl Stamps {
    pub fn new() -> Stamps {
        Stamps(AtomicI64::new(now_ms() - 400 * DAY_MS))
    }

    /// The first of `n` consecutive unused timestamps.
    pub fn take(&self, n: i64) -> i64 {
        self.0.fetch_add(n, Ordering::Relaxed)
    }
}

pub fn push_event(out: &mut String, user: &str, event_type: &str, ts_ms: i64) {
    // User ids and types here need no JSON escaping.
    let _ = write!(
        out,
        r#"{{"user_id":"{user}","event_type":"{event_type}","timestamp":{ts_ms}}}"#
    );
}

/// `{"events":[...]}` from (user, type, timestamp) triples.
pub fn batch_body<'a>(events: impl Iterator<Item = (String, &'a str, i64)>) -> Bytes {
    let mut out = String::from(r#"{"events":["#);
    for (i, (user, ty, ts)) in events.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_event(&mut out, &user, ty, ts);
    }
    out.push_str("]}");
    Bytes::from(out)
}

/// `POST /v1/users/events` of one PURCHASE (10 points, as the ceiling answers).
pub fn single_event(user: &str, ts_ms: i64) -> Req {
    let mut body = String::with_capacity(96);
    push_event(&mut body, user, "PURCHASE", ts_ms);
    Req {
        method: Method::POST,
        path: "/v1/users/events".into(),
        body: Bytes::from(body),
        expect: StatusCode::CREATED,
        events: 1,
    }
}

/// Scenario 1: one PURCHASE by a random user.
pub fn single_post(stamps: Arc<Stamps>) -> MakeReq {
    Arc::new(move |rng: &mut Rng| single_event(&format!("u{}", rng.below(USERS)), stamps.take(1)))
}

/// Scenario 2: `size` PURCHASE events by random users per request.
pub fn batch_post(stamps: Arc<Stamps>, size: u64) -> MakeReq {
    Arc::new(move |rng: &mut Rng| {
        let first = stamps.take(size as i64);
        let events = (0..size).map(|i| {
            (
                format!("u{}", rng.below(USERS)),
                "PURCHASE",
                first + i as i64,
            )
        });
        Req {
            method: Method::POST,
            path: "/v1/events/batch".into(),
            body: batch_body(events.collect::<Vec<_>>().into_iter()),
            expect: StatusCode::OK,
            events: size,
        }
    })
}

pub fn get(path: String) -> Req {
    Req {
        method: Method::GET,
        path,
        body: Bytes::new(),
        expect: StatusCode::OK,
        events: 0,
    }
}

/// Scenario 3: the points of a random one of the users scenarios 1 and 2 wrote.
pub fn points_get() -> MakeReq {
    Arc::new(|rng: &mut Rng| get(format!("/v1/users/u{}/points", rng.below(USERS))))
}

/// Scenario 4: the current week's top ten.
pub fn leaderboard_get() -> MakeReq {
    Arc::new(|_: &mut Rng| get("/v1/leaderboard?period=week&limit=10".into()))
}

/// Event types with different points, so the seeded leaderboard has a real order.
const SEED_TYPES: [&str; 5] = ["LOGIN", "REVIEW", "PURCHASE", "SIGNUP", "REFERRAL"];

/// Batch `index` of the leaderboard seed: users `lb{n}`, one event each, inside the
/// current week and not after now (the server refuses the future beyond one hour).
pub fn leaderboard_batch(index: u64, per_batch: u64, users: u64, now: i64) -> Bytes {
    let week = week_start_ms(now);
    let span = (now - week).max(1) as u64;
    let from = index * per_batch;
    let to = (from + per_batch).min(users);
    batch_body((from..to).map(|n| {
        let ty = SEED_TYPES[(n % SEED_TYPES.len() as u64) as usize];
        (format!("lb{n}"), ty, week + (n % span) as i64)
    }))
}

/// Batch of one user's history: `count` events from timestamp `first` on.
pub fn history_batch(user: &str, first: i64, count: u64) -> Bytes {
    batch_body((0..count).map(|i| (user.to_string(), "PURCHASE", first + i as i64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-04 (a Wednesday) 15:00 UTC lies in the week of Monday 2026-11-02.
        assert_eq!(week_start_ms(1_793_804_400_000), 1_793_577_600_000);
        assert_eq!(week_start_ms(1_793_577_600_000), 1_793_577_600_000);
    }

    #[test]
    fn batch_bodies_are_json() {
        let b = leaderboard_batch(1, 3, 5, now_ms());
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let events = v["events"].as_array().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["user_id"], "lb3");
        assert!(events[1]["timestamp"].as_i64().unwrap() <= now_ms());
    }
}
