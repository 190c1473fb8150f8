//! Test harness: starts the real application on port 0 against a real store.
//!
//! `TEST_BACKEND` picks the store the whole API suite runs against: `sqlite`
//! (default), `sqlite+redis`, `mongo` or `mongo+redis`. Servers are found through
//! `TEST_MONGO_URL` (no database path: each app gets a database of its own) and
//! `TEST_REDIS_URL` (each app gets a key prefix of its own), so tests run in parallel.
//!
//! Besides the app: `process` runs the real binary, `receiver` is a webhook receiver,
//! and the builders here make the events and the rules files tests send and serve.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub mod process;
pub mod receiver;

use eventtracker::clock::FixedClock;
use eventtracker::config::Config;
use eventtracker::rules_reload::Outcome;
use eventtracker::startup::{Application, Loops};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub const FIXTURE_EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events.yaml");

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<FixedClock>,
    pub dir: Arc<tempfile::TempDir>,
    /// The store variables this app got; pass them in `Options::env` (with `dir`) to
    /// start another app, or restart this one, on the same data.
    pub backend: Vec<(String, String)>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Set when the app is the real binary in a child process ([`spawn_process_with`]).
    process: Option<process::Server>,
    /// The app's background loops, when it runs in this process.
    loops: Option<Loops>,
}

#[derive(Default)]
pub struct Options {
    /// Extra or overriding environment variables.
    pub env: Vec<(String, String)>,
    /// Reuse the data folder of an earlier app (restart on the same data).
    pub dir: Option<Arc<tempfile::TempDir>>,
}

impl Options {
    /// A fresh data folder and these variables.
    pub fn with_env(vars: &[(&str, &str)]) -> Options {
        Options {
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir: None,
        }
    }

    /// Serves the rules `text` from `events.yaml` in the data folder (made here when
    /// there is none yet), instead of the fixture's.
    pub fn rules(mut self, text: &str) -> Options {
        let dir = self
            .dir
            .get_or_insert_with(|| Arc::new(tempfile::tempdir().expect("temp dir")));
        let path = dir.path().join("events.yaml");
        write_rules(&path, text);
        self.env
            .push(("EVENTS_POINTS_PATH".into(), path.display().to_string()));
        self
    }
}

/// Replaces the rules file at `path` in one step (a rename), as deployment tools and
/// Kubernetes ConfigMaps do, so the reloader never reads it half-written.
pub fn write_rules(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the rules");
    std::fs::rename(&tmp, path).expect("replace the rules file");
}

/// An event as a client sends it; `ts` is anything the API takes as a timestamp (Unix
/// seconds or milliseconds, RFC 3339 text).
pub fn event<T: serde::Serialize>(user: &str, event_type: &str, ts: T) -> Value {
    json!({"user_id": user, "event_type": event_type, "timestamp": ts})
}

/// Unix ms now, as the fixed clock starts.
/// A leaderboard answer's entries as (user id, points), in board order.
pub fn board_entries(board: &Value) -> Vec<(String, i64)> {
    board["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {board}"))
        .iter()
        .map(|e| {
            (
                e["user_id"].as_str().unwrap_or_default().to_owned(),
                e["points"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A name no other test app in this or a concurrent run uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        now_ms() % 1_000_000
    )
}

/// A server address from the environment. Unset, a test that needs it is skipped
/// (visibly); under `CI=true` a missing server is a failure instead.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{var} must be set when CI=true: the test needs that server")
        }
        _ => {
            report_skip(&format!(
                "{var} is not set, so this test cannot reach its server"
            ));
            None
        }
    }
}

/// Prints `SKIPPED: <test>: <reason>` where `cargo test` shows it. libtest captures only
/// what the print macros write (and shows it only for failing tests), so this writes to
/// the process's stderr directly, past the capture.
pub fn report_skip(reason: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let line = match thread.name() {
        // libtest names each test's thread after the test.
        Some(test) if test != "main" => format!("SKIPPED: {test}: {reason}"),
        _ => format!("SKIPPED: {reason}"),
    };
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `TEST_MONGO_URL` with a fresh database name spliced into its path.
pub fn mongo_url_with_fresh_db(base: &str) -> String {
    let db = unique_name("et_test");
    match base.split_once('?') {
        Some((hosts, query)) => format!("{}/{db}?{query}", hosts.trim_end_matches('/')),
        None => format!("{}/{db}", base.trim_end_matches('/')),
    }
}

/// `standalone` or `replset` for the server at `url`, decided as the store decides
/// between its journaled and its transaction write paths (`hello`: `setName`, or a
/// mongos). A standalone server's totals lag the history after a crash until recovery.
pub async fn mongo_server_mode(url: &str) -> &'static str {
    let client = mongodb::Client::with_uri_str(url)
        .await
        .expect("mongo client");
    let hello = client
        .database("admin")
        .run_command(mongodb::bson::doc! { "hello": 1 })
        .await
        .expect("hello");
    if hello.get_str("setName").is_ok() || hello.get_str("msg") == Ok("isdbgrid") {
        "replset"
    } else {
        "standalone"
    }
}

/// The store variables for `TEST_BACKEND`.
pub fn backend_env() -> Vec<(String, String)> {
    let mut env = Vec::new();
    let wants = backend_has;
    if wants("mongo") {
        let base = server_url("TEST_MONGO_URL").expect("TEST_BACKEND=mongo needs TEST_MONGO_URL");
        env.push(("MONGO_URL".into(), mongo_url_with_fresh_db(&base)));
    }
    if wants("redis") {
        let url =
            server_url("TEST_REDIS_URL").expect("TEST_BACKEND=...+redis needs TEST_REDIS_URL");
        env.push(("REDIS_URL".into(), url));
        env.push((
            "REDIS_KEY_PREFIX".into(),
            format!("{}:", unique_name("et_test")),
        ));
    }
    env
}

pub fn base_env(dir: &std::path::Path) -> HashMap<String, String> {
    let mut env = HashMap::new();
    env.insert("API_SERVER_HOST".into(), "127.0.0.1".into());
    env.insert("API_SERVER_PORT".into(), "0".into());
    env.insert("APP_ENV".into(), "test".into());
    env.insert("EVENTS_POINTS_PATH".into(), FIXTURE_EVENTS.into());
    env.insert(
        "SQLITE_PATH".into(),
        dir.join("data/et.db").to_string_lossy().into_owned(),
    );
    env
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// Whether `TEST_BACKEND` includes `name` (`sqlite`, `mongo`, `redis`).
pub fn backend_has(name: &str) -> bool {
    std::env::var("TEST_BACKEND")
        .unwrap_or_default()
        .split('+')
        .any(|b| b == name)
}

/// What starting an app from `Options` needs.
struct Prepared {
    dir: Arc<tempfile::TempDir>,
    /// The whole environment.
    env: HashMap<String, String>,
    /// Its store part (see [`TestApp::backend`]).
    backend: Vec<(String, String)>,
}

fn prepare(opts: Options) -> Prepared {
    let dir = opts
        .dir
        .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("temp dir")));
    let mut env = base_env(dir.path());
    let mut backend = backend_env();
    backend.retain(|(k, _)| !opts.env.iter().any(|(o, _)| o == k));
    backend.extend(opts.env.iter().cloned());
    env.extend(backend.iter().cloned());
    Prepared { dir, env, backend }
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let Prepared { dir, env, backend } = prepare(opts);
    let config = Config::from_map(&env).expect("test config");
    let clock = Arc::new(FixedClock::new(now_ms()));
    let app = Application::build_with_clock(config, clock.clone())
        .await
        .expect("app builds");
    let addr = app.local_addr().expect("bound");
    let loops = app.loops();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        clock,
        dir,
        backend,
        shutdown: Some(tx),
        task: Some(task),
        process: None,
        loops: Some(loops),
    }
}

/// Like [`spawn_app_with`], but runs the real binary (`eventtracker serve`) in a child
/// process, as a deployment does. Its clock is the wall clock: `clock` does not drive it.
pub fn spawn_process_with(opts: Options) -> TestApp {
    let Prepared { dir, env, backend } = prepare(opts);
    let env: Vec<(String, String)> = env.into_iter().collect();
    let server = process::start(&env);
    TestApp {
        base: server.base.clone(),
        client: reqwest::Client::new(),
        clock: Arc::new(FixedClock::new(now_ms())),
        dir,
        backend,
        shutdown: None,
        task: None,
        process: Some(server),
        loops: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Graceful stop: waits until the server drained and the store closed.
    pub async fn stop(mut self) -> Arc<tempfile::TempDir> {
        if let Some(server) = self.process.take() {
            server.signal("TERM");
            let code = tokio::task::spawn_blocking(move || server.wait())
                .await
                .expect("join");
            assert_eq!(code, Some(0), "the server exits cleanly on SIGTERM");
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("server ran cleanly");
        }
        self.dir.clone()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn event(&self, user: &str, event_type: &str, ts: Value) -> (u16, Value) {
        self.post("/v1/users/events", event(user, event_type, ts))
            .await
    }

    /// Runs one pass of the wallet sweeper now; returns how many wallets it swept.
    pub async fn wallet_pass(&self) -> usize {
        self.loops().wallets.pass().await.expect("wallet sweep")
    }

    fn loops(&self) -> &Loops {
        self.loops
            .as_ref()
            .expect("the app runs in this process (spawn_app_with), not as a child process")
    }

    /// Checks the rules file now, as the reload loop does at each interval and at SIGHUP,
    /// and returns what came of it. Beside the loop's own checks this is safe: one file
    /// registers as one version however many check it at once.
    pub async fn reload_rules(&self) -> Outcome {
        self.loops().rules.check(None).await
    }

    /// Waits until the webhook worker has made a whole pass over its queue that started
    /// after this call: every delivery due now has been attempted and the attempt
    /// recorded, and whatever was in flight has finished. What a test needs before it
    /// says that something was *not* sent.
    pub async fn webhook_pass(&self) {
        let mut progress = self.loops().webhooks.progress();
        let started = progress.borrow().passes_started;
        tokio::time::timeout(
            Duration::from_secs(60),
            progress.wait_for(|p| p.passes_done > started),
        )
        .await
        .expect("the webhook worker made no pass in 60 s")
        .expect("the webhook worker stopped");
    }

    /// Prunes the webhook delivery log now, as the worker does every quarter of
    /// `WEBHOOK_LOG_RETENTION_SECS`; returns how many deliveries went.
    pub async fn prune_webhook_log(&self) -> u64 {
        self.loops()
            .webhooks
            .prune_once()
            .await
            .expect("a retention is set and the store answered")
    }

    pub async fn batch(&self, events: Vec<Value>) -> Value {
        let (status, body) = self
            .post("/v1/events/batch", json!({ "events": events }))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn points(&self, user: &str) -> i64 {
        let (status, body) = self.get(&format!("/v1/users/{user}/points")).await;
        assert_eq!(status, 200, "{body}");
        body["points"].as_i64().expect("points")
    }

    /// Waits until the log of a server started by [`spawn_process_with`] has a line
    /// containing `needle`, and returns that line: proof that the server ran past the
    /// point that logs it.
    pub async fn wait_for_log(&self, needle: &str, within: std::time::Duration) -> String {
        let server = self
            .process
            .as_ref()
            .expect("wait_for_log needs a server started by spawn_process_with");
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(line) = server
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no log line with {needle:?} within {within:?}:\n{}",
                server.log_text()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Sum of the points of every stored event of the user, read page by page.
    pub async fn ledger_sum(&self, user: &str) -> (i64, usize) {
        let mut cursor: Option<String> = None;
        let (mut sum, mut n) = (0, 0);
        loop {
            let mut path = format!("/v1/users/{user}/events?limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = self.get(&path).await;
            assert_eq!(status, 200, "{body}");
            for e in body["data"].as_array().expect("data") {
                sum += e["points"].as_i64().expect("points");
                n += 1;
            }
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return (sum, n),
            }
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
