//! The Redis cache against real Redis servers: answers stay right through outages, data
//! loss and a Redis that returns with old data; the cache comes back by itself; cached
//! leaderboards equal the store's exactly; `rebuild-cache` swaps in a fresh copy.
//!
//! Runs when `TEST_REDIS_URL` is set. The outage tests start their own `redis-server`
//! (from PATH, or `REDIS_SERVER_BIN`) on a free port, so they can stop and restart it.

use crate::helpers as common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{spawn_app_with, unique_name, Options, TestApp};
use serde_json::{json, Value};

const WEEK: &str = "2026-11-02T10:00:00Z";

/// A `redis-server` of the test's own that can be stopped, paused and restarted.
struct RedisChild {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisChild {
    /// `None` (test skipped) unless Redis tests are enabled and redis-server exists.
    fn start() -> Option<RedisChild> {
        common::server_url("TEST_REDIS_URL")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut r = RedisChild {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        if let Err(e) = r.spawn() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("cannot start redis-server: {e}");
            }
            common::report_skip(&format!("cannot start redis-server ({e})"));
            return None;
        }
        Some(r)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > until {
                return Err(std::io::Error::other(
                    "redis-server did not start listening",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill {sig} {pid}");
    }

    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis")
    }
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis_env(url: &str) -> Vec<(String, String)> {
    vec![
        ("REDIS_URL".into(), url.to_string()),
        (
            "REDIS_KEY_PREFIX".into(),
            format!("{}:", unique_name("et_cache")),
        ),
    ]
}

fn prefix_of(app: &TestApp) -> String {
    app.backend
        .iter()
        .find(|(k, _)| k == "REDIS_KEY_PREFIX")
        .map(|(_, v)| v.clone())
        .expect("a key prefix")
}

async fn readiness(app: &TestApp) -> Value {
    let (status, body) = app.get("/readyz").await;
    assert_eq!(
        status, 200,
        "readiness never fails because of Redis: {body}"
    );
    body
}

async fn wait_for_redis(app: &TestApp, want: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let body = readiness(app).await;
        if body["redis"] == want {
            return;
        }
        assert!(Instant::now() < until, "redis never became {want}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.metrics().await;
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The points each user should have, kept by the test as it records.
#[derive(Default)]
struct Expected(BTreeMap<String, i64>);

impl Expected {
    async fn record(&mut self, app: &TestApp, user: &str, event_type: &str, ts: Value) {
        let (s, body) = app.event(user, event_type, ts).await;
        assert_eq!(s, 201, "{body}");
        *self.0.entry(user.to_string()).or_default() += body["points"].as_i64().expect("points");
    }

    /// Every user's total and the whole `all` board, as served now.
    async fn check(&self, app: &TestApp) {
        for (user, points) in &self.0 {
            assert_eq!(app.points(user).await, *points, "{user}");
        }
        let mut board: Vec<(&String, &i64)> = self.0.iter().collect();
        board.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let (_, lb) = app.get("/v1/leaderboard?limit=100").await;
        let served: Vec<(String, i64)> = lb["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["user_id"].as_str().unwrap().to_string(),
                    e["points"].as_i64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, i64)> = board.into_iter().map(|(u, p)| (u.clone(), *p)).collect();
        assert_eq!(served, want);
    }
}

/// The cached hash of `user` in the live generation of `prefix`, if any.
async fn cached_points(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    user: &str,
) -> Option<i64> {
    let epoch: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}epoch"))
        .query_async(conn)
        .await
        .expect("GET epoch");
    let fields: BTreeMap<String, i64> = redis::cmd("HGETALL")
        .arg(format!("{prefix}g:{}:u:{user}", epoch?))
        .query_async(conn)
        .await
        .expect("HGETALL");
    Some(
        fields
            .iter()
            .filter(|(k, _)| k.starts_with("p:"))
            .map(|(_, v)| v)
            .sum(),
    )
}

#[tokio::test]
async fn answers_stay_right_while_redis_is_down_or_loses_its_data() {
    let Some(mut redis) = RedisChild::start() else {
        return;
    };
    let app = spawn_app_with(Options {
        env: redis_env(&redis.url()),
        ..Default::default()
    })
    .await;
    let prefix = prefix_of(&app);
    wait_for_redis(&app, "ok").await;
    let mut want = Expected::default();
    for (i, (user, t)) in [
        ("ann", "PURCHASE"),
        ("bob", "PURCHASE"),
        ("cid", "REVIEW"),
        ("ann", "LOGIN"),
    ]
    .into_iter()
    .enumerate()
    {
        want.record(&app, user, t, json!(1_700_000_000 + i as i64))
            .await;
    }
    want.check(&app).await;
    let mut conn = redis.conn().await;
    assert_eq!(
        cached_points(&mut conn, &prefix, "ann").await,
        Some(11),
        "served from Redis"
    );

    // Down: answers come from the store, and new events still count. (The recorder is
    // process-wide: the count is compared with before, and `/readyz` says it was ours.)
    let errors_before = metric(&app, "cache_errors_total").await;
    redis.kill();
    want.check(&app).await;
    want.record(&app, "bob", "REVIEW", json!(1_700_000_100))
        .await;
    want.record(&app, "dan", "TEST_ONLY_QUEST", json!(1_700_000_101))
        .await;
    want.check(&app).await;
    wait_for_redis(&app, "degraded").await;
    assert!(metric(&app, "cache_errors_total").await > errors_before);

    // Back, empty: rebuilt from the store without a restart, outage events included.
    redis.spawn().expect("restart redis-server");
    wait_for_redis(&app, "ok").await;
    want.check(&app).await;
    let mut conn = redis.conn().await;
    assert_eq!(cached_points(&mut conn, &prefix, "bob").await, Some(15));
    assert_eq!(cached_points(&mut conn, &prefix, "dan").await, Some(7));

    // Data loss without an outage: the generation's marker is gone, so nothing is
    // served from what is left, and the cache is rebuilt.
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");
    want.check(&app).await;
    want.record(&app, "cid", "PURCHASE", json!(1_700_000_200))
        .await;
    want.check(&app).await;
    wait_for_redis(&app, "ok").await;
    assert_eq!(cached_points(&mut conn, &prefix, "cid").await, Some(15));
    want.check(&app).await;
}

#[tokio::test]
async fn a_redis_that_stalls_and_returns_with_old_data_is_never_served() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let app = spawn_app_with(Options {
        env: redis_env(&redis.url()),
        ..Default::default()
    })
    .await;
    wait_for_redis(&app, "ok").await;
    let mut want = Expected::default();
    want.record(&app, "eve", "PURCHASE", json!(1_700_000_000))
        .await;
    want.record(&app, "fay", "REVIEW", json!(1_700_000_000))
        .await;
    want.check(&app).await;

    // Paused, Redis keeps its (soon old) data and the commands sent to it meanwhile.
    redis.signal("-STOP");
    want.record(&app, "fay", "PURCHASE", json!(1_700_000_001))
        .await;
    want.record(&app, "eve", "ABUSE_REPORTED", json!(1_700_000_002))
        .await;
    want.check(&app).await;
    wait_for_redis(&app, "degraded").await;
    redis.signal("-CONT");
    // From the moment it answers again until the maintainer has invalidated what it
    // holds and a rebuilt generation is live (`/readyz` says ok again), no read may
    // miss the events made meanwhile.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        want.check(&app).await;
        if readiness(&app).await["redis"] == "ok" {
            break;
        }
        assert!(Instant::now() < until, "the cache never came back");
    }
    want.check(&app).await;
}

/// Users with many ties, through the cache, compared with the same store read directly.
#[tokio::test]
async fn cached_leaderboards_and_ranks_equal_the_stores() {
    let Some(url) = common::server_url("TEST_REDIS_URL") else {
        return;
    };
    let cached = spawn_app_with(Options {
        env: redis_env(&url),
        ..Default::default()
    })
    .await;
    // The same store (file or database) without the cache, started once the cached app
    // has answered: SQLite allows one process per file.
    let mut direct_env = cached.backend.clone();
    direct_env.retain(|(k, _)| k != "REDIS_URL");
    direct_env.push(("REDIS_URL".into(), String::new()));
    wait_for_redis(&cached, "ok").await;
    // Deterministic spread: few distinct totals, so most users share them; ids whose
    // byte order differs from a naive one ("B" < "a", "a10" < "a9").
    let users: Vec<String> = (0..30)
        .map(|i| match i % 3 {
            0 => format!("a{i}"),
            1 => format!("B{i}"),
            _ => format!("u{}", i * 7 % 11),
        })
        .collect();
    let types = ["LOGIN", "PURCHASE", "REVIEW", "ABUSE_REPORTED"];
    let mut events = Vec::new();
    for (i, u) in users.iter().enumerate() {
        for k in 0..(i * 5 % 4) {
            let day = (i + k) % 9;
            events.push(json!({"user_id": u, "event_type": types[(i + k) % 4],
                "timestamp": format!("2026-11-{:02}T1{k}:00:00Z", 1 + day)}));
        }
    }
    cached.batch(events).await;
    wait_for_redis(&cached, "ok").await;
    let mut paths = vec![
        "/v1/users/events".to_string(),
        "/v1/users/events?limit=7&offset=3".into(),
    ];
    for period in ["all", "day", "week", "month"] {
        let at = "at=2026-11-03T12:00:00Z";
        for (limit, offset) in [(100, 0), (3, 0), (4, 2), (5, 7), (10, 25), (10, 40)] {
            paths.push(format!(
                "/v1/leaderboard?period={period}&{at}&limit={limit}&offset={offset}"
            ));
        }
        for u in users.iter().take(12).chain([&"nobody".to_string()]) {
            for around in [0, 1, 3] {
                paths.push(format!(
                    "/v1/leaderboard/users/{u}?period={period}&{at}&around={around}"
                ));
            }
        }
    }
    for u in &users {
        paths.push(format!("/v1/users/{u}/points"));
        paths.push(format!("/v1/users/events?user_id={u}&event_type=PURCHASE"));
    }
    let mut answers = Vec::with_capacity(paths.len());
    for path in &paths {
        answers.push(cached.get(path).await);
    }
    assert_eq!(readiness(&cached).await["redis"], "ok");

    // And the answers did come from Redis: a value planted there is what is served.
    let mut conn = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let prefix = prefix_of(&cached);
    let epoch: String = redis::cmd("GET")
        .arg(format!("{prefix}epoch"))
        .query_async(&mut conn)
        .await
        .expect("epoch");
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}g:{epoch}:u:planted"))
        .arg("n:LOGIN")
        .arg(1)
        .arg("p:LOGIN")
        .arg(4242)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    assert_eq!(cached.points("planted").await, 4242);

    let dir = cached.stop().await;
    let direct = spawn_app_with(Options {
        env: direct_env,
        dir: Some(dir),
    })
    .await;
    assert_eq!(readiness(&direct).await["redis"], "disabled");
    for (path, answer) in paths.iter().zip(answers) {
        assert_eq!(answer, direct.get(path).await, "{path}");
    }
    assert_eq!(direct.points("planted").await, 0);
}

#[tokio::test]
async fn rebuild_cache_command_swaps_in_a_fresh_copy() {
    let Some(url) = common::server_url("TEST_REDIS_URL") else {
        return;
    };
    let app = spawn_app_with(Options {
        env: redis_env(&url),
        ..Default::default()
    })
    .await;
    wait_for_redis(&app, "ok").await;
    let mut want = Expected::default();
    for (i, u) in ["gil", "hal", "ivy"].iter().enumerate() {
        want.record(&app, u, "PURCHASE", json!(WEEK)).await;
        want.record(&app, u, "LOGIN", json!(1_700_000_000 + i as i64))
            .await;
    }
    let prefix = prefix_of(&app);
    let mut conn = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let epoch = |conn: &mut redis::aio::MultiplexedConnection| {
        let key = format!("{prefix}epoch");
        let mut conn = conn.clone();
        async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(&mut conn)
                .await
                .expect("GET")
        }
    };
    let before = epoch(&mut conn).await.expect("a live generation");

    let mut env = common::base_env(app.dir.path());
    env.extend(app.backend.iter().cloned());
    let out = Command::new(env!("CARGO_BIN_EXE_eventtracker"))
        .arg("rebuild-cache")
        .env_clear()
        .envs(env)
        .env("LOG_LEVEL", "warn")
        .output()
        .expect("run eventtracker rebuild-cache");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if common::backend_has("mongo") {
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(stdout.contains("cache rebuilt: 3 users"), "{stdout}");
    } else {
        // One process per SQLite file: the command says to ask the server instead.
        assert!(
            !out.status.success(),
            "refused while the server runs: {stdout}"
        );
        assert!(
            stderr.contains("in use") && stderr.contains("POST /v1/admin/cache/rebuild"),
            "{stderr}"
        );
        let (status, report) = app.post("/v1/admin/cache/rebuild", json!(null)).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["users"], 3, "{report}");
    }

    let after = epoch(&mut conn).await.expect("a live generation");
    assert_ne!(before, after, "a new generation is live");
    want.check(&app).await;
    want.record(&app, "hal", "REVIEW", json!(WEEK)).await;
    want.check(&app).await;
    assert_eq!(cached_points(&mut conn, &prefix, "hal").await, Some(16));
    let (_, rank) = app
        .get("/v1/leaderboard/users/hal?period=week&at=2026-11-03T00:00:00Z")
        .await;
    assert_eq!(rank["rank"], 1, "{rank}");
}

/// Writes keep coming while the cache is rebuilt again and again: when it settles, every
/// cached total and board equals the store's (no write lost or counted twice).
#[tokio::test]
async fn writes_racing_rebuilds_are_neither_lost_nor_doubled() {
    let Some(url) = common::server_url("TEST_REDIS_URL") else {
        return;
    };
    let app = std::sync::Arc::new(
        spawn_app_with(Options {
            env: redis_env(&url),
            ..Default::default()
        })
        .await,
    );
    wait_for_redis(&app, "ok").await;
    let prefix = prefix_of(&app);
    let users: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    let mut writers = Vec::new();
    for w in 0..6 {
        let (app, users) = (app.clone(), users.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..80 {
                let u = &users[(w + i) % users.len()];
                let (s, body) = app
                    .event(
                        u,
                        ["LOGIN", "PURCHASE", "ABUSE_REPORTED"][i % 3],
                        json!(1_700_000_000 + w as i64 * 1000 + i as i64),
                    )
                    .await;
                assert_eq!(s, 201, "{body}");
                // Paced so the writes span several rebuilds however fast the store is
                // (at 10 ms, SQLite's faster writes left room for only two in CI once).
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }));
    }
    let mut conn = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut rebuilds = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        // Dropping the live generation makes an instance rebuild at its next probe.
        let dropped: i64 = redis::cmd("DEL")
            .arg(format!("{prefix}epoch"))
            .query_async(&mut conn)
            .await
            .expect("DEL");
        rebuilds += dropped;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    for w in writers {
        w.await.expect("writer");
    }
    assert!(rebuilds >= 3, "only {rebuilds} rebuilds raced the writes");
    wait_for_redis(&app, "ok").await;
    for u in &users {
        let (sum, n) = app.ledger_sum(u).await;
        assert_eq!(n, 60, "{u}");
        assert_eq!(
            cached_points(&mut conn, &prefix, u).await,
            Some(sum),
            "{u} in Redis"
        );
        assert_eq!(app.points(u).await, sum, "{u}");
    }
}

/// `POST /v1/admin/cache/rebuild` runs what `rebuild-cache` runs: admin only, a summary
/// like the command's, a new live generation equal to the store; 409 while another
/// rebuild holds the lock.
#[tokio::test]
async fn admin_endpoint_rebuilds_the_cache_like_the_command() {
    let Some(url) = common::server_url("TEST_REDIS_URL") else {
        return;
    };
    let mut env = redis_env(&url);
    env.push((
        "API_KEYS".into(),
        "k_ops_admin_1:admin+read,k_read_only_1:read,k_ingest_only_1:ingest".into(),
    ));
    let app = spawn_app_with(Options {
        env,
        ..Default::default()
    })
    .await;
    wait_for_redis(&app, "ok").await;
    let post = |path: &str, key: Option<&str>, body: Option<Value>| {
        let mut req = app.client.post(app.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mut want = BTreeMap::new();
    for (i, u) in ["jo", "kim", "lu"].iter().enumerate() {
        let body = json!({"user_id": u, "event_type": "PURCHASE", "timestamp": 1_700_000_000 + i});
        let (s, r) = post("/v1/users/events", Some("k_ingest_only_1"), Some(body)).await;
        assert_eq!(s, 201, "{r}");
        want.insert(u.to_string(), r["points"].as_i64().unwrap());
    }
    let prefix = prefix_of(&app);
    let mut conn = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let epoch = |mut conn: redis::aio::MultiplexedConnection| {
        let key = format!("{prefix}epoch");
        async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(&mut conn)
                .await
                .expect("GET")
        }
    };
    let before = epoch(conn.clone()).await.expect("a live generation");

    const REBUILD: &str = "/v1/admin/cache/rebuild";
    assert_eq!(post(REBUILD, None, None).await.0, 401);
    assert_eq!(post(REBUILD, Some("k_read_only_1"), None).await.0, 403);
    let (s, body) = post(REBUILD, Some("k_ingest_only_1"), None).await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("admin"),
        "{body}"
    );
    assert_eq!(epoch(conn.clone()).await.as_deref(), Some(before.as_str()));

    let (s, report) = post(REBUILD, Some("k_ops_admin_1"), None).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["users"], 3, "{report}");
    assert!(report["elapsed_ms"].as_u64().is_some(), "{report}");
    let after = epoch(conn.clone()).await.expect("a live generation");
    assert_ne!(before, after, "a new generation is live");
    for (u, p) in &want {
        assert_eq!(cached_points(&mut conn, &prefix, u).await, Some(*p), "{u}");
        let r = app
            .client
            .get(app.url(&format!("/v1/users/{u}/points")))
            .bearer_auth("k_read_only_1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["points"], *p, "{u}");
    }
    // Writes after the rebuild reach the new generation.
    let body = json!({"user_id": "kim", "event_type": "REVIEW", "timestamp": 1_700_000_100});
    let (s, r) = post("/v1/users/events", Some("k_ingest_only_1"), Some(body)).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        cached_points(&mut conn, &prefix, "kim").await,
        Some(want["kim"] + r["points"].as_i64().unwrap())
    );

    // Another rebuild holds the lock (as the command or another instance would): 409,
    // and the live generation stays. A lock is a token whose generation names the Redis
    // it was built on (else the probe takes it for lost data and clears it).
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    let run_id = info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .expect("run_id")
        .trim()
        .to_string();
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}g:someone-else:meta"))
        .arg("run_id")
        .arg(run_id)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}build"))
        .arg("someone-else")
        .arg("PX")
        .arg(10_000)
        .query_async(&mut conn)
        .await
        .expect("SET");
    let (s, body) = post(REBUILD, Some("k_ops_admin_1"), None).await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("another rebuild"),
        "{body}"
    );
    assert_eq!(epoch(conn.clone()).await.as_deref(), Some(after.as_str()));
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}build"))
        .arg(format!("{prefix}g:someone-else:meta"))
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

/// Without Redis there is no cache: 409, said plainly (not a 5xx: nothing failed). With
/// a Redis that does not answer: 503 with Retry-After.
#[tokio::test]
async fn admin_cache_rebuild_without_a_reachable_redis() {
    let app = spawn_app_with(Options {
        env: vec![("REDIS_URL".into(), String::new())],
        ..Default::default()
    })
    .await;
    let (s, body) = app.post("/v1/admin/cache/rebuild", json!(null)).await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("REDIS_URL"),
        "{body}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let app = spawn_app_with(Options {
        env: redis_env(&format!("redis://127.0.0.1:{closed}")),
        ..Default::default()
    })
    .await;
    let r = app
        .client
        .post(app.url("/v1/admin/cache/rebuild"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    // The store still answers.
    assert_eq!(app.get("/v1/leaderboard").await.0, 200);
}
