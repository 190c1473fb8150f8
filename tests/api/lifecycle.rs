//! The real binary's life: SIGTERM with requests in flight (they are answered, the
//! process exits 0, what was acknowledged survives a restart), and its log format (JSON
//! lines in production, readable text otherwise, with the request id).

use crate::helpers as common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{self, BIN};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn env_for(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = common::base_env(dir).into_iter().collect();
    env.extend(common::backend_env());
    env
}

/// A POST sent by hand over its own connection, so the test controls when the body ends.
struct PartialRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl PartialRequest {
    /// Sends the headers, waits until the handler reads the body (the server's
    /// `100 Continue` proves the request was accepted and is being handled), then sends
    /// the first half of the body.
    async fn start(addr: &str, path: &str, body: Value) -> PartialRequest {
        let body = body.to_string().into_bytes();
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut interim = Vec::new();
        let mut byte = [0u8; 1];
        while !interim.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut byte))
                .await
                .expect("100 Continue within 60 s")
                .unwrap();
            assert_eq!(n, 1, "connection closed before 100 Continue");
            interim.push(byte[0]);
        }
        let interim = String::from_utf8_lossy(&interim);
        assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
        let half = body.len() / 2;
        stream.write_all(&body[..half]).await.unwrap();
        stream.flush().await.unwrap();
        PartialRequest {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body; returns the status and the JSON body of the answer.
    async fn finish(mut self) -> (u16, Value) {
        self.stream
            .write_all(&self.rest)
            .await
            .expect("send the rest of the body");
        let mut raw = Vec::new();
        self.stream
            .read_to_end(&mut raw)
            .await
            .expect("read the answer (not a reset)");
        let text = String::from_utf8_lossy(&raw);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
        let (_, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

const BATCHES: usize = 4;
const SINGLES: usize = 8;

#[tokio::test]
async fn sigterm_answers_the_requests_in_flight_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(dir.path());
    let server = process::start(&env);
    let addr = server.base.trim_start_matches("http://").to_string();

    // Requests the server has accepted and is reading when SIGTERM arrives: 1000-event
    // batches and single events, each with half of its body sent.
    let mut in_flight = Vec::new();
    for b in 0..BATCHES {
        let events: Vec<Value> = (0..1000)
            .map(|i| json!({"user_id": format!("batch{b}"), "event_type": "LOGIN", "timestamp": 1_780_000_000 + i}))
            .collect();
        in_flight.push(
            PartialRequest::start(&addr, "/v1/events/batch", json!({ "events": events })).await,
        );
    }
    for s in 0..SINGLES {
        in_flight.push(
            PartialRequest::start(
                &addr,
                "/v1/users/events",
                json!({"user_id": format!("single{s}"), "event_type": "PURCHASE", "timestamp": 1_780_000_000}),
            )
            .await,
        );
    }
    server.signal("TERM");

    // The server stops accepting: new connections are refused...
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...but answers every request already in flight.
    let answers =
        futures_util::future::join_all(in_flight.into_iter().map(PartialRequest::finish)).await;
    for (i, (status, body)) in answers.iter().enumerate() {
        if i < BATCHES {
            assert_eq!(*status, 200, "batch {i}: {body}");
            assert_eq!(body["created"], 1000, "batch {i}");
        } else {
            assert_eq!(*status, 201, "single {i}: {body}");
        }
    }
    assert_eq!(server.wait(), Some(0), "exit status after SIGTERM");

    // Everything acknowledged is there after a restart.
    let server = process::start(&env);
    let client = reqwest::Client::new();
    let points = |user: String| {
        let (client, base) = (client.clone(), server.base.clone());
        async move {
            client
                .get(format!("{base}/v1/users/{user}/points"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    for b in 0..BATCHES {
        let p = points(format!("batch{b}")).await;
        assert_eq!(
            (&p["points"], &p["events"]),
            (&json!(1000), &json!(1000)),
            "{p}"
        );
    }
    for s in 0..SINGLES {
        let p = points(format!("single{s}")).await;
        assert_eq!((&p["points"], &p["events"]), (&json!(10), &json!(1)), "{p}");
    }
}

/// The binary with stdout captured line by line.
struct Logged {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Logged {
    fn start(env: &[(String, String)]) -> (Logged, String) {
        let mut child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn eventtracker");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let logged = Logged { child, lines };
        let line = logged.wait_for(|l| l.contains("listening"));
        // `addr=127.0.0.1:1234` in text, `"addr":"127.0.0.1:1234"` in JSON.
        let addr = line
            .split("addr")
            .nth(1)
            .unwrap()
            .trim_start_matches(['=', '"', ':'])
            .split(['"', ' ', ','])
            .next()
            .unwrap()
            .to_string();
        (logged, format!("http://{addr}"))
    }

    fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such log line: {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `v` holds `"request_id": id` at any depth.
fn has_request_id(v: &Value, id: &str) -> bool {
    match v {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| (k == "request_id" && v == id) || has_request_id(v, id)),
        Value::Array(items) => items.iter().any(|v| has_request_id(v, id)),
        _ => false,
    }
}

/// The user whose points the log tests ask for: their id must not be logged.
const LOGGED_USER: &str = "log-user-5d1e";

async fn logs_with_request_id(app_env: &str, id: &str) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_for(dir.path());
    env.retain(|(k, _)| k != "APP_ENV");
    env.extend([
        ("APP_ENV".to_string(), app_env.to_string()),
        ("LOG_LEVEL".to_string(), "debug".to_string()),
        // Production refuses to run without API keys unless told to.
        ("AUTH_DISABLED".to_string(), "true".to_string()),
    ]);
    let (logged, base) = Logged::start(&env);
    let r = reqwest::Client::new()
        .get(format!("{base}/v1/users/{LOGGED_USER}/points"))
        .header("x-request-id", id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], id);
    let line = logged.wait_for(|l| l.contains(id));
    let lines = logged.lines.lock().unwrap().clone();
    (lines, line)
}

#[tokio::test]
async fn production_logs_json_lines_with_the_request_id() {
    let id = "log-json-7f3a";
    let (lines, line) = logs_with_request_id("production", id).await;
    for l in lines.iter().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
    }
    let v: Value = serde_json::from_str(&line).unwrap();
    assert!(has_request_id(&v, id), "request_id field: {line}");
    // The request's span names the route pattern, never the raw path with the user id.
    assert!(
        line.contains(r#""route":"/v1/users/{user_id}/points""#),
        "route field: {line}"
    );
    assert!(
        lines.iter().all(|l| !l.contains(LOGGED_USER)),
        "a log line holds the user id: {lines:?}"
    );
}

#[tokio::test]
async fn other_environments_log_readable_lines_with_the_request_id() {
    let id = "log-text-9c2b";
    let (lines, line) = logs_with_request_id("development", id).await;
    assert!(
        line.contains(&format!("request_id={id}"))
            || line.contains(&format!("request_id=\"{id}\"")),
        "{line}"
    );
    for l in lines.iter().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(l).is_err(),
            "a JSON line outside production: {l}"
        );
        assert!(
            !l.contains('\u{1b}'),
            "no colour codes when not on a terminal: {l}"
        );
    }
}
