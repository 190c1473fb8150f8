//! A webhook receiver in the test process: a real HTTP server on a loopback port that
//! records every request and answers as the test scripts it (a status, or no answer at
//! all), so tests see exactly what a subscriber's endpoint would.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// What the receiver answers to one request.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Status(u16),
    /// Never answers (the test's lifetime): the sender's timeout must fire.
    Stall,
}

/// One request as it arrived, and what it was answered.
#[derive(Clone, Debug)]
pub struct Hit {
    pub delivery: String,
    pub timestamp: String,
    pub signature: String,
    /// The Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`), empty when absent.
    pub webhook_id: String,
    pub webhook_timestamp: String,
    pub webhook_signature: String,
    pub body: String,
    pub answer: Answer,
}

impl Hit {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    /// Answered 2xx: the sender may count it delivered.
    pub fn ok(&self) -> bool {
        matches!(self.answer, Answer::Status(s) if s < 300)
    }

    /// What a receiver does: HMAC-SHA256 of "<timestamp>.<body>" with the shared secret,
    /// hex, compared with the header (computed here independently of the server's code).
    pub fn signed_with(&self, secret: &str) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("{}.{}", self.timestamp, self.body).as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.signature == format!("sha256={hex}")
    }

    /// What a Standard Webhooks receiver does, written here from the specification rather
    /// than with the server's code: HMAC-SHA256 keyed with `key` of
    /// "<webhook-id>.<webhook-timestamp>.<body>", base64, matched against each of the
    /// space-separated `v1,<signature>` entries of the header.
    pub fn standard_signed_with(&self, key: &[u8]) -> bool {
        use base64::Engine;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(
            format!(
                "{}.{}.{}",
                self.webhook_id, self.webhook_timestamp, self.body
            )
            .as_bytes(),
        );
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        self.webhook_signature
            .split(' ')
            .any(|entry| entry.strip_prefix("v1,") == Some(expected.as_str()))
    }
}

#[derive(Default)]
struct Inner {
    /// Answers for the next requests, in order; 200 once empty (or `Stall` if `stall_all`).
    script: Mutex<VecDeque<Answer>>,
    stall_all: Mutex<bool>,
    hits: Mutex<Vec<Hit>>,
    /// Requests to where a 3xx answer pointed: a sender that followed it.
    redirected: Mutex<usize>,
}

#[derive(Clone)]
pub struct Receiver {
    /// Where subscriptions point: `http://127.0.0.1:<port>/hook`.
    pub url: String,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(Inner::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}/hook", listener.local_addr().expect("bound"));
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .route("/elsewhere", axum::routing::any(redirected))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { url, inner }
    }

    /// Queues answers for the next requests.
    pub fn script(&self, answers: &[Answer]) {
        self.inner.script.lock().unwrap().extend(answers);
    }

    /// Drops the answers not used yet: the next requests get 200.
    pub fn clear_script(&self) {
        self.inner.script.lock().unwrap().clear();
    }

    /// Once the script is used up, holds every request open instead of answering 200.
    pub fn set_stall_all(&self, on: bool) {
        *self.inner.stall_all.lock().unwrap() = on;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().unwrap().clone()
    }

    /// How many requests followed a redirect this receiver answered.
    pub fn redirected(&self) -> usize {
        *self.inner.redirected.lock().unwrap()
    }

    /// Waits (up to a generous bound, to fail rather than hang) for `n` requests.
    pub async fn wait_for(&self, n: usize, what: &str) -> Vec<Hit> {
        for _ in 0..600 {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: expected {n} requests, got {:#?}", self.hits());
    }
}

async fn redirected(State(inner): State<Arc<Inner>>) -> StatusCode {
    *inner.redirected.lock().unwrap() += 1;
    StatusCode::OK
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let answer = match inner.script.lock().unwrap().pop_front() {
        Some(a) => a,
        None if *inner.stall_all.lock().unwrap() => Answer::Stall,
        None => Answer::Status(200),
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    inner.hits.lock().unwrap().push(Hit {
        delivery: header("x-eventtracker-delivery"),
        timestamp: header("x-eventtracker-timestamp"),
        signature: header("x-eventtracker-signature"),
        webhook_id: header("webhook-id"),
        webhook_timestamp: header("webhook-timestamp"),
        webhook_signature: header("webhook-signature"),
        body,
        answer,
    });
    match answer {
        // A redirect points at the receiver's other route, which counts what arrives.
        Answer::Status(s) if (300..400).contains(&s) => (
            StatusCode::from_u16(s).expect("a scripted status"),
            [(axum::http::header::LOCATION, "/elsewhere")],
        )
            .into_response(),
        Answer::Status(s) => StatusCode::from_u16(s)
            .expect("a scripted status")
            .into_response(),
        Answer::Stall => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
    }
}
