//! The dashboard: its files and the stats endpoint over HTTP, then the pages themselves
//! in headless Chromium (driven through chromedriver) against a server with known data.
//! Screenshots land in target/e2e-screenshots/.

use crate::helpers as common;

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{spawn_app, spawn_app_with, Options, TestApp};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;
const READ_KEY: &str = "dash_read";
const INGEST_KEY: &str = "dash_ingest";
const SHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/e2e-screenshots");

// ---------------------------------------------------------------- over HTTP only

async fn fetch(app: &TestApp, path: &str) -> (u16, String, String) {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (status, ct.unwrap_or_default(), r.text().await.unwrap())
}

/// Asset names after each `marker` up to `end` (how the page and modules name them).
fn references(text: &str, marker: &str, end: char) -> Vec<String> {
    text.split(marker)
        .skip(1)
        .filter_map(|rest| rest.split(end).next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_page_and_every_asset_it_loads_are_served_with_their_types() {
    let app = spawn_app().await;
    let (_, _, index) = fetch(&app, "/dashboard").await;
    for path in ["/", "/dashboard"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        assert_eq!(r.text().await.unwrap(), index, "{path} is the same page");
    }
    // Follow the page's links and the modules' imports, so a file left out of the
    // binary's table fails here rather than in a browser.
    let mut pending = references(&index, "/dashboard/assets/", '"');
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let (status, ct, body) = fetch(&app, &format!("/dashboard/assets/{name}")).await;
        assert_eq!(status, 200, "{name}");
        let want = match name.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("unexpected asset type {other}"),
        };
        assert_eq!(ct, want, "{name}");
        if name.ends_with(".js") {
            pending.extend(references(&body, "from './", '\''));
        }
    }
    for name in [
        "main.js",
        "chart.js",
        "leaderboard.js",
        "trends.js",
        "user.js",
        "types.js",
        "progress.js",
        "achievements.js",
        "wallet.js",
        "style.css",
    ] {
        assert!(
            seen.contains(name),
            "{name} not reached from the page: {seen:?}"
        );
    }
    assert_eq!(fetch(&app, "/dashboard/assets/nope.js").await.0, 404);
    assert_eq!(
        fetch(&app, "/dashboard/assets/..%2FCargo.toml").await.0,
        404
    );
}

async fn seed_fixed_days(app: &TestApp) {
    let e = common::event;
    let body = app
        .batch(vec![
            e("dave", "LOGIN", "2025-02-28T23:59:59.999Z"),
            e("alice", "PURCHASE", "2025-03-01T00:00:00Z"),
            e("alice", "LOGIN", "2025-03-01T12:00:00Z"),
            e("bob", "PURCHASE", "2025-03-01T23:59:59.999Z"),
            e("alice", "REVIEW", "2025-03-02T00:00:00Z"),
            e("carol", "ABUSE_REPORTED", "2025-03-03T08:00:00Z"),
            e("carol", "PURCHASE", "2025-03-04T00:00:00Z"),
        ])
        .await;
    assert_eq!(body["created"], 7, "{body}");
}

#[tokio::test]
async fn daily_stats_sum_each_utc_day_and_type() {
    let app = spawn_app().await;
    seed_fixed_days(&app).await;
    let t = |events: i64, points: i64| json!({"events": events, "points": points});

    let (status, body) = app
        .get("/v1/stats/daily?from=2025-03-01&to=2025-03-04")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "from": "2025-03-01T00:00:00.000Z",
            "to": "2025-03-04T00:00:00.000Z",
            "days": [
                {"date": "2025-03-01", "by_type": {"LOGIN": t(1, 1), "PURCHASE": t(2, 20)}},
                {"date": "2025-03-02", "by_type": {"REVIEW": t(1, 5)}},
                {"date": "2025-03-03", "by_type": {"ABUSE_REPORTED": t(1, -20)}},
            ]
        })
    );

    // A time as `to` keeps its day; days without events are listed, empty.
    let (_, body) = app
        .get("/v1/stats/daily?from=2025-02-27T18:00:00Z&to=2025-03-01T00:00:00.001Z")
        .await;
    assert_eq!(body["from"], "2025-02-27T00:00:00.000Z");
    assert_eq!(body["to"], "2025-03-02T00:00:00.000Z");
    let dates: Vec<_> = body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["date"].clone())
        .collect();
    assert_eq!(dates, ["2025-02-27", "2025-02-28", "2025-03-01"]);
    assert_eq!(body["days"][0]["by_type"], json!({}));
    assert_eq!(body["days"][1]["by_type"], json!({"LOGIN": t(1, 1)}));

    // By default: the 30 UTC days ending today by the server's clock.
    app.clock.set(1_740_960_000_000 + 15 * 3_600_000); // 2025-03-03T15:00Z
    let (_, body) = app.get("/v1/stats/daily").await;
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days[0]["date"], "2025-02-02");
    assert_eq!(days[29]["date"], "2025-03-03");
    let events: i64 = days
        .iter()
        .flat_map(|d| d["by_type"].as_object().unwrap().values())
        .map(|t| t["events"].as_i64().unwrap())
        .sum();
    assert_eq!(events, 6, "the 2025-03-04 event is after today");
}

#[tokio::test]
async fn daily_stats_reject_bad_windows_by_name() {
    let app = spawn_app().await;
    let field = |body: &Value| {
        body["errors"][0]["field"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    for (query, name) in [
        ("from=2025-03-02&to=2025-03-01", "to"),
        ("from=2024-01-01&to=2025-01-02", "from"),
        ("from=yesterday", "from"),
        ("to=2025-13-01", "to"),
    ] {
        let (status, body) = app.get(&format!("/v1/stats/daily?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(field(&body), name, "{query}: {body}");
    }
    // 366 days is the most one request may span (a leap year).
    let (status, body) = app
        .get("/v1/stats/daily?from=2024-01-01&to=2025-01-01")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["days"].as_array().unwrap().len(), 366);
}

#[tokio::test]
async fn with_keys_the_page_is_open_and_the_stats_need_the_read_role() {
    let app = keyed_app().await;
    assert_eq!(fetch(&app, "/").await.0, 200);
    assert_eq!(fetch(&app, "/dashboard/assets/main.js").await.0, 200);
    let status = |key: Option<&'static str>| {
        let mut req = app.client.get(app.url("/v1/stats/daily"));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some(INGEST_KEY)).await, 403);
    assert_eq!(status(Some(READ_KEY)).await, 200);
}

async fn keyed_app() -> TestApp {
    let keys = format!("{READ_KEY}:read,{INGEST_KEY}:ingest");
    spawn_app_with(Options::with_env(&[("API_KEYS", &keys)])).await
}

// ---------------------------------------------------------------- in a browser

/// Chromium and chromedriver, or `None` (skipped visibly; under CI=true a failure).
fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    let from_env =
        |var: &str, default: &str| PathBuf::from(std::env::var(var).unwrap_or(default.into()));
    let chromium = from_env("CHROMIUM", "/usr/bin/chromium");
    let driver = from_env("CHROMEDRIVER", "/usr/bin/chromedriver");
    if chromium.exists() && driver.exists() {
        return Some((chromium, driver));
    }
    let why = format!(
        "{} or {} is missing (scripts/install-browser.sh installs them)",
        chromium.display(),
        driver.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true needs the browser: {why}");
    }
    common::report_skip(&format!("the dashboard's browser test: {why}"));
    None
}

struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
    chromium: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(chromium: PathBuf, driver: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chromedriver");
        Driver {
            child,
            port,
            profile: tempfile::tempdir().expect("profile dir"),
            chromium,
        }
    }

    async fn session(&self) -> Client {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            },
        });
        let caps = caps.as_object().unwrap().clone();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match ClientBuilder::new(connector.clone())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no browser session from chromedriver: {e}"),
            }
        }
    }
}

/// The browser, the server and the timestamps the data was recorded at.
struct Page {
    c: Client,
    app: TestApp,
    base_ms: i64,
}

impl Page {
    async fn open(&self, route: &str) {
        self.c
            .goto(&self.app.url(&format!("/dashboard#/{route}")))
            .await
            .unwrap();
    }

    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    async fn shot(&self, name: &str) {
        std::fs::create_dir_all(SHOTS).unwrap();
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(format!("{SHOTS}/{name}.png"), png).unwrap();
    }

    /// Evaluates `script` until it returns `want`; on timeout saves a screenshot and fails.
    /// A script error (an element not drawn yet) counts as not there yet.
    async fn wait_for(&self, what: &str, script: &str, want: Value) {
        let deadline = Instant::now() + Duration::from_secs(25);
        loop {
            let got = match self.c.execute(script, vec![]).await {
                Ok(v) => v,
                Err(e) => Value::String(format!("script error: {e}")),
            };
            if got == want {
                return;
            }
            if Instant::now() > deadline {
                self.shot(&format!("failed-{}", what.replace(' ', "-")))
                    .await;
                let status = self
                    .js("return document.getElementById('status').textContent")
                    .await;
                panic!("{what}: got {got}, want {want} (status line: {status})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn ingest(&self, events: Vec<Value>) {
        let r = self
            .app
            .client
            .post(self.app.url("/v1/events/batch"))
            .bearer_auth(INGEST_KEY)
            .json(&json!({ "events": events }))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["rejected"], 0, "{body}");
    }
}

/// The cells' text of the rows of the first table under `css`.
fn rows(css: &str) -> String {
    format!(
        "return [...document.querySelectorAll('{css} tbody tr')]
            .map(r => [...r.cells].map(c => c.textContent.trim()))"
    )
}

/// Every visible cell of each table row sits on one line (a stylesheet rule that breaks
/// table layout shows up here, not only in screenshots).
const ROWS_ON_ONE_LINE: &str = "return [...document.querySelectorAll('tbody tr')].every(r =>
    new Set([...r.cells].filter(c => c.getClientRects().length)
        .map(c => Math.round(c.getBoundingClientRect().top))).size === 1)";

const ALL_TIME: &[(&str, &str, &str)] = &[
    ("1", "alice", "52"),
    ("2", "bob", "23"),
    ("3", "carol", "10"),
    ("3", "erin", "10"),
    ("5", "dave", "7"),
];

fn table(rows: &[(&str, &str, &str)]) -> Value {
    json!(rows.iter().map(|(a, b, c)| [a, b, c]).collect::<Vec<_>>())
}

/// Known data: alice 25 events (52 points), bob 23, carol 10 over the last 3 weeks; erin
/// on 2025-06-10 and dave 40 days ago, both outside the chart's default 30 days.
async fn seed(p: &Page) {
    let at = common::event;
    let ago = |days: i64, hours: i64| p.base_ms - days * DAY_MS - hours * 3_600_000;
    let mut events = Vec::new();
    for k in 0..3 {
        events.push(at("alice", "PURCHASE", ago(k, 0)));
        events.push(at("carol", "PURCHASE", ago(k, 5)));
        events.push(at("bob", "LOGIN", ago(k, 4)));
    }
    for k in 0..22 {
        events.push(at("alice", "LOGIN", ago(k, 1)));
    }
    for k in 0..4 {
        events.push(at("bob", "REVIEW", ago(k, 3)));
    }
    events.push(at("carol", "ABUSE_REPORTED", ago(0, 6)));
    events.push(at("dave", "TEST_ONLY_QUEST", ago(40, 0)));
    events.push(common::event("erin", "REVIEW", "2025-06-10T09:00:00Z"));
    events.push(common::event("erin", "REVIEW", "2025-06-10T10:00:00Z"));
    p.ingest(events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_data_in_a_real_browser() {
    let Some((chromium, driver)) = browser_paths() else {
        return;
    };
    let driver = Driver::start(chromium, &driver);
    let c = driver.session().await;
    let page = Page {
        c: c.clone(),
        app: keyed_app().await,
        base_ms: common::now_ms() - 2 * 3_600_000,
    };
    // Close the browser whatever happens, then report the failure.
    let result = AssertUnwindSafe(run(&page)).catch_unwind().await;
    let _ = c.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn run(p: &Page) {
    seed(p).await;
    key_prompt_then_leaderboard(p).await;
    paging_and_periods(p).await;
    refreshes_in_place(p).await;
    chart(p).await;
    user_search(p).await;
    no_achievements(p).await;
    event_types(p).await;
    text_contrast(p).await;
    phone_layout(p).await;
}

async fn key_prompt_then_leaderboard(p: &Page) {
    p.open("leaderboard?period=all").await;
    p.wait_for(
        "key prompt",
        "return [document.getElementById('key-box').open,
                 document.getElementById('status').textContent.includes('needs an API key')]",
        json!([true, true]),
    )
    .await;
    p.shot("key-prompt-desktop").await;
    let input = p.c.find(Locator::Css("#key-input")).await.unwrap();
    input.send_keys(READ_KEY).await.unwrap();
    p.click("#key-form button[type=submit]").await;
    p.wait_for("all-time board", &rows("#leaderboard"), table(ALL_TIME))
        .await;
    let stored = p
        .js("return localStorage.getItem('eventtracker.apiKey')")
        .await;
    assert_eq!(stored, READ_KEY);
}

async fn paging_and_periods(p: &Page) {
    p.open("leaderboard?period=all&limit=2").await;
    p.wait_for("page 1", &rows("#leaderboard"), table(&ALL_TIME[..2]))
        .await;
    p.click("#leaderboard .pager button:last-child").await;
    p.wait_for("page 2", &rows("#leaderboard"), table(&ALL_TIME[2..4]))
        .await;
    p.click("#leaderboard .pager button:last-child").await;
    p.wait_for("page 3", &rows("#leaderboard"), table(&ALL_TIME[4..]))
        .await;
    let next_disabled =
        "return document.querySelector('#leaderboard .pager button:last-child').disabled";
    assert_eq!(p.js(next_disabled).await, json!(true));
    p.click("#leaderboard .pager button:first-child").await;
    p.wait_for(
        "back to page 2",
        &rows("#leaderboard"),
        table(&ALL_TIME[2..4]),
    )
    .await;

    // The date picker's day: only erin's two reviews.
    p.open("leaderboard?period=day&at=2025-06-10").await;
    p.wait_for(
        "a past day",
        "return [document.querySelector('.caption').textContent,
                 document.querySelector('input[name=at]').value]",
        json!(["Day 2025-06-10", "2025-06-10"]),
    )
    .await;
    p.wait_for(
        "a past day's board",
        &rows("#leaderboard"),
        table(&[("1", "erin", "10")]),
    )
    .await;
    // Choosing a period in the menu updates the address and the board.
    let select = p.c.find(Locator::Css("select[name=period]")).await.unwrap();
    select.select_by_value("all").await.unwrap();
    p.wait_for("period menu", &rows("#leaderboard"), table(ALL_TIME))
        .await;
    assert!(p
        .c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("period=all"));
}

async fn refreshes_in_place(p: &Page) {
    p.js("window.notReloaded = true; return null").await;
    p.ingest(vec![
        json!({"user_id": "bob", "event_type": "PURCHASE", "timestamp": p.base_ms - 7 * 3_600_000}),
    ])
    .await;
    let mut board = ALL_TIME.to_vec();
    board[1] = ("2", "bob", "33");
    p.wait_for("periodic refresh", &rows("#leaderboard"), table(&board))
        .await;
    assert_eq!(
        p.js("return window.notReloaded === true").await,
        json!(true)
    );
    assert_eq!(p.js(ROWS_ON_ONE_LINE).await, json!(true));
    p.shot("leaderboard-desktop").await;
}

async fn chart(p: &Page) {
    p.click("#tabs a[data-view=trends]").await;
    // One line per type with events in the 30 days, in the events file's order; dave's
    // quest and erin's reviews are older.
    let types = json!(["LOGIN", "PURCHASE", "REVIEW", "ABUSE_REPORTED"]);
    for chart in ["#chart-points", "#chart-events"] {
        let script = format!(
            "return [...document.querySelectorAll('{chart} svg g.series')].map(g => g.dataset.type)"
        );
        p.wait_for(chart, &script, types.clone()).await;
        let points = format!(
            "return [...document.querySelectorAll('{chart} svg g.series')]
                .map(g => g.querySelectorAll('circle').length)"
        );
        p.wait_for("a point per day", &points, json!([30, 30, 30, 30]))
            .await;
    }
    let totals = json!([
        ["PURCHASE", "7", "70"],
        ["LOGIN", "25", "25"],
        ["REVIEW", "4", "20"],
        ["ABUSE_REPORTED", "1", "-20"],
    ]);
    p.wait_for("totals by type", &rows("#trends .by-type"), totals)
        .await;
    // A point's tooltip tells that day's numbers, as the API gives them.
    let day = chrono::DateTime::from_timestamp_millis(p.base_ms)
        .unwrap()
        .format("%Y-%m-%d");
    let stats: Value = (p.app.client.get(p.app.url(&format!(
        "/v1/stats/daily?from={day}T00:00:00Z&to={day}T00:00:00.001Z"
    ))))
    .bearer_auth(READ_KEY)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let day_total = &stats["days"][0]["by_type"]["PURCHASE"];
    let tooltip = format!(
        "return [...document.querySelectorAll('#chart-points g.series[data-type=PURCHASE] title')]
            .map(t => t.textContent).filter(t => t.startsWith('PURCHASE {day}:'))"
    );
    let want = format!(
        "PURCHASE {day}: {} events, {} points",
        day_total["events"], day_total["points"]
    );
    assert_eq!(p.js(&tooltip).await, json!([want]));
    assert_eq!(p.js(ROWS_ON_ONE_LINE).await, json!(true));
    p.shot("trends-desktop").await;
}

async fn user_search(p: &Page) {
    p.click("#tabs a[data-view=user]").await;
    let input = p.c.find(Locator::Css("input[name=id]")).await.unwrap();
    input.send_keys("alice").await.unwrap();
    p.click("form.search button").await;
    p.wait_for(
        "user cards",
        "return [...document.querySelectorAll('#user .card strong')].map(s => s.textContent)",
        json!(["52", "25", "#1"]),
    )
    .await;
    p.wait_for(
        "by type",
        &rows("#user .by-type"),
        json!([["PURCHASE", "3", "30"], ["LOGIN", "22", "22"]]),
    )
    .await;
    let all_time = "return [...document.querySelectorAll('#user .ranks tr[data-period=all] td')].map(c => c.textContent)";
    assert_eq!(p.js(all_time).await, json!(["All time", "#1", "52"]));
    let history = "return [document.querySelectorAll('#user .history tbody tr').length,
                           document.querySelector('#user .pager span').textContent,
                           document.querySelector('#user .history tbody td:nth-child(2)').textContent]";
    p.wait_for("history page 1", history, json!([20, "1–20", "PURCHASE"]))
        .await;
    assert_eq!(p.js(ROWS_ON_ONE_LINE).await, json!(true));
    // The fixture's rules have no levels, streaks, achievements or wallet: nothing of
    // them shows.
    let progression =
        "return document.querySelectorAll('#user .level, #user .streaks, #user .achievements, #user .progress, ' +
            '#user .wallet, #user .wallet-expiring, #user .wallet-holds').length";
    assert_eq!(p.js(progression).await, json!(0));
    p.shot("user-desktop").await;
    p.click("#user .pager button:last-child").await;
    p.wait_for("history page 2", history, json!([5, "21–25", "LOGIN"]))
        .await;
    p.click("#user .pager button:first-child").await;
    p.wait_for("history back", history, json!([20, "1–20", "PURCHASE"]))
        .await;
}

async fn no_achievements(p: &Page) {
    p.click("#tabs a[data-view=achievements]").await;
    p.wait_for(
        "no achievements",
        "return document.querySelector('#achievements p.empty').textContent",
        json!("No achievements are configured (achievements: in the rules file)."),
    )
    .await;
}

async fn event_types(p: &Page) {
    p.click("#tabs a[data-view=types]").await;
    let script = "return [...document.querySelectorAll('#types tbody tr')]
        .map(r => [r.cells[0].textContent, r.cells[1].textContent])";
    let want = json!([
        ["LOGIN", "1"],
        ["PURCHASE", "10"],
        ["REVIEW", "5"],
        ["ABUSE_REPORTED", "-20"],
        ["TEST_ONLY_QUEST", "7"]
    ]);
    p.wait_for("event types", script, want).await;
    let caps =
        "return [...document.querySelectorAll('#types tbody tr')].map(r => r.cells[2].textContent)";
    assert_eq!(
        p.js(caps).await,
        json!(["–", "–", "–", "–", "–"]),
        "no type of the fixture is capped"
    );
    let versions = "return [...document.querySelectorAll('#rules-versions tbody tr')]
        .map(r => [r.cells[0].textContent, r.cells[3].textContent])";
    p.wait_for("rules versions", versions, json!([["1", "in force"]]))
        .await;
    p.shot("types-desktop").await;
}

/// At 390x844 every view fits the width (nothing scrolls sideways but inside tables).
async fn phone_layout(p: &Page) {
    fits_a_phone(
        p,
        &[
            (
                "leaderboard?period=all",
                "#leaderboard tbody tr",
                "leaderboard",
            ),
            ("trends", "#chart-points g.series", "trends"),
            ("user?id=alice", "#user .history tbody tr", "user"),
            ("achievements", "#achievements p.empty", "achievements"),
            ("types", "#types tbody tr", "types"),
        ],
    )
    .await;
    let chart = "const box = document.getElementById('chart-points');
        return box.querySelector('svg').getBoundingClientRect().width <= box.clientWidth + 1";
    p.open("trends").await;
    p.wait_for("chart fits", chart, json!(true)).await;
}

/// `(route, a selector present once the view is drawn, name)` of views to check.
type Views<'a> = &'a [(&'a str, &'a str, &'a str)];

/// At 390x844 each of `views` fits the width; screenshots `{name}-phone`.
async fn fits_a_phone(p: &Page, views: Views<'_>) {
    p.c.set_window_size(390, 844).await.unwrap();
    let fits = "return [window.innerWidth <= 420, document.documentElement.scrollWidth <= window.innerWidth]";
    for &(route, ready, name) in views {
        p.open(route).await;
        let check = format!("return document.querySelectorAll('{ready}').length > 0");
        p.wait_for(name, &check, json!(true)).await;
        p.wait_for(&format!("{name} fits a phone"), fits, json!([true, true]))
            .await;
        assert_eq!(p.js(ROWS_ON_ONE_LINE).await, json!(true), "{name}");
        p.shot(&format!("{name}-phone")).await;
    }
}

// ---------------------------------------------------------------- progression

/// The rules of tests/api/progression.rs: three levels, a daily streak, four
/// achievements (one repeatable with a bonus) and a boost.
use crate::progression::RULES as PROGRESSION_RULES;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_levels_streaks_and_achievements() {
    let Some((chromium, driver)) = browser_paths() else {
        return;
    };
    let driver = Driver::start(chromium, &driver);
    let c = driver.session().await;
    let keys = format!("{READ_KEY}:read,{INGEST_KEY}:ingest");
    let app =
        spawn_app_with(Options::with_env(&[("API_KEYS", &keys)]).rules(PROGRESSION_RULES)).await;
    // Friday 2026-11-20, noon UTC: the streak's days and busy_week's week are fixed.
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .unwrap()
        .timestamp_millis();
    app.clock.set(now);
    let page = Page {
        c: c.clone(),
        app,
        base_ms: now,
    };
    let result = AssertUnwindSafe(progression(&page)).catch_unwind().await;
    let _ = c.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn progression(p: &Page) {
    let e = common::event;
    // ana: five logins on Wednesday to Friday (a 3-day streak: regular; five in a week:
    // busy_week and its 50 bonus points), then ten purchases (first_purchase, and
    // centurion at 100 points): 5 + 50 + 100 = 155, Silver. ben: one login. cy: one
    // purchase.
    let mut events = vec![
        e("ana", "LOGIN", "2026-11-18T08:00:00Z"),
        e("ana", "LOGIN", "2026-11-18T09:00:00Z"),
        e("ana", "LOGIN", "2026-11-19T08:00:00Z"),
        e("ana", "LOGIN", "2026-11-19T09:00:00Z"),
        e("ana", "LOGIN", "2026-11-20T08:00:00Z"),
    ];
    for minute in 0..10 {
        events.push(common::event(
            "ana",
            "PURCHASE",
            format!("2026-11-20T09:{minute:02}:00Z"),
        ));
    }
    events.push(e("ben", "LOGIN", "2026-11-20T10:00:00Z"));
    events.push(e("cy", "PURCHASE", "2026-11-20T10:00:00Z"));
    p.ingest(events).await;

    // The key, saved as the key box would.
    p.open("user").await;
    p.js(&format!(
        "localStorage.setItem('eventtracker.apiKey', '{READ_KEY}'); return null"
    ))
    .await;
    p.open("user?id=ana").await;
    p.js("document.getElementById('key-box').open = false; return null")
        .await;
    p.wait_for(
        "level card",
        "return [...document.querySelectorAll('#user .card strong')].map(s => s.textContent)
            .concat([...document.querySelectorAll('#user .card.level .label, #user .card.level .sub')]
                .map(s => s.textContent))",
        json!(["155", "16", "#1", "Silver", "Level 2", "155 of 500 points for Gold"]),
    )
    .await;
    let bar = "const b = document.querySelector('#user .card.level progress');
        return [b.value, b.max, b.getAttribute('aria-label')]";
    assert_eq!(
        p.js(bar).await,
        json!([55, 400, "Progress from Silver to level 3, Gold"])
    );
    let streak = "return [...document.querySelectorAll('#user .streaks tbody tr')]
        .map(r => [r.dataset.streak, ...[...r.cells].slice(0, 3).map(c => c.textContent), r.cells[4].textContent])";
    p.wait_for(
        "streak",
        streak,
        json!([["daily_login", "Daily login", "3 days", "3 days", "0"]]),
    )
    .await;
    let breaks = p
        .js("return document.querySelector('#user .streaks tbody td.time').textContent")
        .await;
    assert!(
        breaks.as_str().unwrap().starts_with("2026-11-2"),
        "the streak breaks after Friday: {breaks}"
    );
    let achievements = "return [...document.querySelectorAll('#user .achievements tbody tr')]
        .map(r => [r.dataset.achievement, r.cells[1].textContent, r.cells[3].textContent])";
    p.wait_for(
        "unlocked achievements",
        achievements,
        json!([
            ["first_purchase", "✓ Unlocked", "2026-11-20 09:00:00"],
            ["centurion", "✓ Unlocked", "2026-11-20 09:04:00"],
            ["regular", "✓ Unlocked", "2026-11-20 08:00:00"],
            ["busy_week", "✓ Unlocked", "2026-11-20 08:00:00"],
        ]),
    )
    .await;
    assert_eq!(
        p.js("return document.querySelector('#user .achievements tr[data-achievement=first_purchase] .sub').textContent")
            .await,
        json!("Bought something")
    );
    // The bonus is named as the achievement's, in the breakdown and the history.
    let bonus = r#"return [document.querySelector('#user .by-type tr[data-type="achievement:busy_week"] td').textContent,
        document.querySelector('#user .history td[data-type="achievement:busy_week"]').textContent]"#;
    assert_eq!(
        p.js(bonus).await,
        json!([
            "Achievement bonus: Busy week",
            "Achievement bonus: Busy week"
        ])
    );
    assert_eq!(p.js(ROWS_ON_ONE_LINE).await, json!(true));
    p.shot("user-progression-desktop").await;

    // ben has unlocked nothing: every achievement locked, with how far he is.
    p.open("user?id=ben").await;
    let locked = "return [...document.querySelectorAll('#user .achievements tbody tr')]
        .map(r => [r.cells[0].querySelector('.name').textContent, r.cells[1].textContent,
                   r.cells[2].textContent.trim(), r.cells[3].textContent])";
    p.wait_for(
        "locked achievements",
        locked,
        json!([
            ["First purchase", "Locked", "0 / 1", "–"],
            ["Centurion", "Locked", "1 / 100", "–"],
            ["Regular", "Locked", "1 / 3", "–"],
            ["Busy week", "Locked", "1 / 5", "–"],
        ]),
    )
    .await;
    assert_eq!(
        p.js("return document.querySelector('#user .card.level .sub').textContent")
            .await,
        json!("1 of 100 points for Silver")
    );

    // Rarity: of the three users.
    p.click("#tabs a[data-view=achievements]").await;
    p.wait_for(
        "rarity",
        &rows("#achievements .rarity"),
        json!([
            ["First purchase", "Bought something", "2", "66.7%"],
            ["Centurion", "", "1", "33.3%"],
            ["Regular", "", "1", "33.3%"],
            ["Busy week", "", "1", "33.3%"],
        ]),
    )
    .await;
    assert_eq!(
        p.js("return document.querySelector('#achievements .note').textContent")
            .await,
        json!("Share: of the 3 users with any points entry.")
    );
    p.shot("achievements-rarity-desktop").await;

    let views: Views = &[
        (
            "user?id=ana",
            "#user .achievements tbody tr",
            "user-progression",
        ),
        (
            "achievements",
            "#achievements .rarity tbody tr",
            "achievements-rarity",
        ),
    ];
    contrast_of(p, views).await;
    fits_a_phone(p, views).await;
}

// ---------------------------------------------------------------- wallet

const SPEND_KEY: &str = "dash_spend";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_wallet() {
    let Some((chromium, driver)) = browser_paths() else {
        return;
    };
    let driver = Driver::start(chromium, &driver);
    let c = driver.session().await;
    let keys = format!("{READ_KEY}:read,{INGEST_KEY}:ingest,{SPEND_KEY}:spend");
    let rules = "events:\n  - {name: PURCHASE, point: 10}\nwallet:\n  expires_after_days: 10\n";
    let app = spawn_app_with(Options::with_env(&[("API_KEYS", &keys)]).rules(rules)).await;
    // Expiry is at the end of the UTC day ten days after the event: a fixed clock.
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .unwrap()
        .timestamp_millis();
    app.clock.set(now);
    let page = Page {
        c: c.clone(),
        app,
        base_ms: now,
    };
    let result = AssertUnwindSafe(wallet(&page)).catch_unwind().await;
    let _ = c.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

impl Page {
    /// POSTs `body` to `path` with the spend key; the status must be 201.
    async fn spend_call(&self, path: &str, body: Value) -> Value {
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .bearer_auth(SPEND_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{path}: {body}");
        body
    }
}

async fn wallet(p: &Page) {
    // wes: six purchases on Wednesday (expiring at the end of 2026-11-28) and six on
    // Friday (the end of 2026-11-30), 120 points; then a spend of 30, which takes the
    // oldest, and a hold of 50 for 15 minutes.
    let mut events = Vec::new();
    for (day, base) in [("2026-11-18", 0), ("2026-11-20", 6)] {
        for i in 0..6 {
            events.push(json!({"user_id": "wes", "event_type": "PURCHASE",
                "timestamp": format!("{day}T10:{i:02}:00Z"), "event_id": format!("p{}", base + i)}));
        }
    }
    p.ingest(events).await;
    let spent = p
        .spend_call(
            "/v1/users/wes/spend",
            json!({"amount": 30, "spend_id": "order-77", "reason": "coupon"}),
        )
        .await;
    assert_eq!(spent["available"], 90, "{spent}");
    let held = p
        .spend_call(
            "/v1/users/wes/holds",
            json!({"amount": 50, "hold_id": "cart-9", "expires_in_secs": 900}),
        )
        .await;
    assert_eq!(held["available"], 40, "{held}");

    p.open("user").await;
    p.js(&format!(
        "localStorage.setItem('eventtracker.apiKey', '{READ_KEY}'); return null"
    ))
    .await;
    p.open("user?id=wes").await;
    p.js("document.getElementById('key-box').open = false; return null")
        .await;
    let cards = "return [...document.querySelectorAll('#user .wallet .card')]
        .map(c => [c.querySelector('.label').textContent, c.querySelector('strong').textContent])";
    p.wait_for(
        "wallet cards",
        cards,
        json!([["Balance", "90"], ["Available", "40"], ["Held", "50"]]),
    )
    .await;
    // The user's own cards are still the earned points: the wallet is apart from them.
    let user_cards = "return [...document.querySelectorAll('#user > .cards .card strong')].map(s => s.textContent)";
    assert_eq!(p.js(user_cards).await, json!(["120", "12", "#1"]));
    let totals = p
        .js("return document.querySelector('#user .wallet .totals').textContent")
        .await;
    assert!(
        totals
            .as_str()
            .unwrap()
            .starts_with("Earned 120, spent 30, expired 0."),
        "{totals}"
    );
    p.wait_for(
        "expiries",
        &rows("#user .wallet-expiring"),
        json!([["2026-11-29 00:00:00", "30"], ["2026-12-01 00:00:00", "60"]]),
    )
    .await;
    p.wait_for(
        "open hold",
        &rows("#user .wallet-holds"),
        json!([["cart-9", "50", "2026-11-20 12:00:00", "2026-11-20 12:15:00"]]),
    )
    .await;
    // The wallet's entries in the history, in words.
    let entries = r#"return [...document.querySelectorAll('#user .history td[data-type^="wallet:"]')]
        .map(c => [c.dataset.type, c.textContent]).sort()"#;
    p.wait_for(
        "wallet entries",
        entries,
        json!([
            ["wallet:hold", "Held 50 (cart-9)"],
            ["wallet:spend", "Spent 30 (order-77, coupon)"]
        ]),
    )
    .await;
    assert_eq!(p.js(ROWS_ON_ONE_LINE).await, json!(true));
    p.js("document.querySelector('#user .wallet').scrollIntoView(); return null")
        .await;
    p.shot("user-wallet-desktop").await;
    let views: Views = &[("user?id=wes", "#user .wallet-holds tbody tr", "user-wallet")];
    contrast_of(p, views).await;
    fits_a_phone(p, views).await;

    // At its end the hold releases itself: nothing held.
    p.app.clock.set(p.base_ms + 16 * 60_000);
    p.wait_for(
        "hold released",
        "return [document.querySelector('#user .wallet .card.held strong').textContent,
                 document.querySelector('#user .wallet-holds p.empty').textContent]",
        json!(["0", "No open holds."]),
    )
    .await;

    // A user of the same rules without events has no wallet shown, like any user
    // without events; one with events but no spends shows an empty wallet.
    p.ingest(vec![
        json!({"user_id": "vic", "event_type": "PURCHASE", "timestamp": "2026-11-20T10:00:00Z"}),
    ])
    .await;
    p.open("user?id=vic").await;
    p.wait_for(
        "fresh wallet",
        "return [[...document.querySelectorAll('#user .wallet .card strong')].map(s => s.textContent),
                 document.querySelector('#user .wallet-holds p.empty').textContent]",
        json!([["10", "10", "0"], "No open holds."]),
    )
    .await;
}

// ---------------------------------------------------------------- text contrast

/// sRGB `[r, g, b, alpha]` from a computed colour (`rgb(...)` or `rgba(...)`).
fn parse_rgba(css: &str) -> [f64; 4] {
    let inner = css
        .strip_prefix("rgba(")
        .or_else(|| css.strip_prefix("rgb("))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("a colour this test cannot read: {css}"));
    let parts: Vec<f64> = inner
        .split([',', ' ', '/'])
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or_else(|_| panic!("colour {css}")))
        .collect();
    match parts[..] {
        [r, g, b] => [r, g, b, 1.0],
        [r, g, b, a] => [r, g, b, a],
        _ => panic!("colour {css}"),
    }
}

/// `top` drawn over the opaque `bottom`.
fn over(top: [f64; 4], bottom: [f64; 4]) -> [f64; 4] {
    let a = top[3];
    let mix = |i: usize| top[i] * a + bottom[i] * (1.0 - a);
    [mix(0), mix(1), mix(2), 1.0]
}

/// WCAG 2 relative luminance of an opaque sRGB colour.
fn luminance(c: [f64; 4]) -> f64 {
    let lin = |v: f64| {
        let v = v / 255.0;
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
}

/// WCAG 2 contrast ratio, 1 to 21.
fn contrast(a: [f64; 4], b: [f64; 4]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

#[test]
fn the_contrast_formula_gives_the_known_ratios() {
    let c = |s: &str| parse_rgba(s);
    let r = |a: &str, b: &str| (contrast(c(a), c(b)) * 100.0).round() / 100.0;
    assert_eq!(r("rgb(0, 0, 0)", "rgb(255, 255, 255)"), 21.0);
    assert_eq!(r("rgb(255, 255, 255)", "rgb(255, 255, 255)"), 1.0);
    // #777 on white, the classic just-failing grey.
    assert_eq!(r("rgb(119, 119, 119)", "rgb(255, 255, 255)"), 4.48);
    // The active tab before the fix: #2563eb on #dbe7ff.
    assert_eq!(r("rgb(37, 99, 235)", "rgb(219, 231, 255)"), 4.16);
    // Half-transparent black over white is mid grey.
    let grey = over(c("rgba(0, 0, 0, 0.5)"), c("rgb(255, 255, 255)"));
    assert_eq!(grey[..3], [127.5, 127.5, 127.5]);
}

/// For every element that draws text in the view: a description, the text colour (SVG:
/// the fill), the background colours from the element up to the root, the product of
/// the opacities on the way, and the font size (px) and weight. Disabled controls are
/// left out: WCAG 1.4.3 exempts inactive components, and they are drawn faded on purpose.
const TEXT_COLOURS: &str = "
    const out = [];
    const draws = el => [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())
        || el.matches('input:not([type=hidden]), select');
    for (const el of document.querySelectorAll('body *')) {
        if (!draws(el) || el.closest('noscript, option, title, :disabled')) continue;
        const cs = getComputedStyle(el);
        if (!el.getClientRects().length || cs.visibility !== 'visible') continue;
        const backgrounds = [];
        let opacity = 1;
        for (let a = el; a; a = a.parentElement) {
            const s = getComputedStyle(a);
            backgrounds.push(s.backgroundColor);
            opacity *= Number(s.opacity);
        }
        const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
            + [...el.classList].map(c => '.' + c).join('')
            + (el.getAttribute('aria-current') ? '[aria-current]' : '');
        out.push({
            what: name + ' \"' + (el.textContent || el.value || '').trim().slice(0, 30) + '\"',
            active_tab: el.matches('#tabs a[aria-current=page]'),
            color: el instanceof SVGElement ? cs.fill : cs.color,
            backgrounds, opacity,
            size: parseFloat(cs.fontSize), weight: Number(cs.fontWeight),
        });
    }
    return out;";

/// Checks every text of the view on screen against WCAG AA (4.5:1, 3:1 for large text:
/// 24px, or 18.66px bold); returns how many texts were checked and whether the active
/// navigation tab was among them.
async fn check_contrast(p: &Page, view: &str, failures: &mut Vec<String>) -> (usize, bool) {
    let texts = p.js(TEXT_COLOURS).await;
    let texts = texts.as_array().expect("a list");
    let mut active_tab = false;
    for t in texts {
        let what = format!("{view}: {}", t["what"].as_str().unwrap_or("?"));
        let opacity = t["opacity"].as_f64().unwrap_or(0.0);
        if opacity < 1.0 {
            failures.push(format!("{what}: drawn at opacity {opacity}, not judged"));
            continue;
        }
        // Stack the backgrounds from the first opaque one up to the element.
        let layers: Vec<[f64; 4]> = t["backgrounds"]
            .as_array()
            .expect("backgrounds")
            .iter()
            .map(|b| parse_rgba(b.as_str().unwrap_or("")))
            .collect();
        let Some(base) = layers.iter().position(|c| c[3] >= 1.0) else {
            failures.push(format!("{what}: no opaque background behind it"));
            continue;
        };
        let background = layers[..base]
            .iter()
            .rev()
            .fold(layers[base], |under, layer| over(*layer, under));
        let color = over(parse_rgba(t["color"].as_str().unwrap_or("")), background);
        let ratio = contrast(color, background);
        let size = t["size"].as_f64().unwrap_or(0.0);
        let bold = t["weight"].as_f64().unwrap_or(400.0) >= 700.0;
        let need = if size >= 24.0 || (bold && size >= 18.66) {
            3.0
        } else {
            4.5
        };
        if ratio < need {
            let hex =
                |c: [f64; 4]| format!("#{:02x}{:02x}{:02x}", c[0] as u8, c[1] as u8, c[2] as u8);
            failures.push(format!(
                "{what}: {} on {} is {ratio:.2}:1, needs {need}:1",
                hex(color),
                hex(background)
            ));
        }
        active_tab |= t["active_tab"] == json!(true);
    }
    (texts.len(), active_tab)
}

/// Chromium's `prefers-color-scheme` through chromedriver's DevTools endpoint; `""`
/// goes back to the system's (light, headless).
#[derive(Debug)]
struct ColorScheme(&'static str);

impl fantoccini::wd::WebDriverCompatibleCommand for ColorScheme {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or("")
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        let body = json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": {"features": [{"name": "prefers-color-scheme", "value": self.0}]},
        });
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

/// Every view, with the key form open, in the light and the dark scheme: each text
/// meets WCAG AA against what is behind it, the active tab included.
async fn text_contrast(p: &Page) {
    contrast_of(
        p,
        &[
            (
                "leaderboard?period=all",
                "#leaderboard tr.leader",
                "leaderboard",
            ),
            ("trends", "#chart-points g.series", "trends"),
            ("user?id=alice", "#user .history tbody tr", "user"),
            ("achievements", "#achievements p.empty", "achievements"),
            ("types", "#types tbody tr", "types"),
        ],
    )
    .await;
}

/// Each of `views` as [`text_contrast`] checks them.
async fn contrast_of(p: &Page, views: Views<'_>) {
    let mut failures = Vec::new();
    for scheme in ["light", "dark"] {
        p.c.issue_cmd(ColorScheme(scheme))
            .await
            .expect("emulate a colour scheme");
        for &(route, ready, name) in views {
            p.open(route).await;
            let check = format!("return document.querySelectorAll('{ready}').length > 0");
            p.wait_for(name, &check, json!(true)).await;
            let dark = p
                .js("return matchMedia('(prefers-color-scheme: dark)').matches")
                .await;
            assert_eq!(dark, json!(scheme == "dark"), "{scheme} scheme in force");
            p.js("document.getElementById('key-box').open = true; return null")
                .await;
            let view = format!("{name} ({scheme})");
            let (checked, active_tab) = check_contrast(p, &view, &mut failures).await;
            assert!(checked > 10, "{view}: only {checked} texts found");
            assert!(active_tab, "{view}: the active tab was not among the texts");
        }
    }
    p.c.issue_cmd(ColorScheme(""))
        .await
        .expect("back to the default scheme");
    p.js("document.getElementById('key-box').open = false; return null")
        .await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `#rrggbb` or `#rgb` as an opaque colour.
fn hex(s: &str) -> [f64; 4] {
    let digits: String = match s.len() {
        4 => s[1..].chars().flat_map(|c| [c, c]).collect(),
        _ => s[1..].to_string(),
    };
    let n = |i: usize| f64::from(u8::from_str_radix(&digits[i..i + 2], 16).expect("hex colour"));
    [n(0), n(2), n(4), 1.0]
}

/// The value of `--name` in the first `:root` block of `css` after `from`.
fn css_var(css: &str, from: usize, name: &str) -> String {
    let at = css[from..].find(&format!("--{name}:")).expect("variable") + from;
    let rest = &css[at + name.len() + 3..];
    rest[..rest.find(';').expect("semicolon")]
        .trim()
        .to_string()
}

#[test]
fn every_chart_line_colour_stands_out_from_the_panels_in_both_schemes() {
    // WCAG 1.4.11: graphical objects need 3:1 against what is next to them.
    let chart = include_str!("../../dashboard/chart.js");
    let css = include_str!("../../dashboard/style.css");
    let start = chart.find("PALETTE = [").expect("PALETTE");
    let end = start + chart[start..].find(']').expect("end of PALETTE");
    let palette: Vec<&str> = chart[start..end]
        .split('\'')
        .filter(|s| s.starts_with('#'))
        .collect();
    assert!(palette.len() >= 8, "{palette:?}");
    let dark = css.find("prefers-color-scheme: dark").expect("dark scheme");
    let backgrounds: Vec<String> = ["bg", "panel"]
        .iter()
        .flat_map(|v| [css_var(css, 0, v), css_var(css, dark, v)])
        .collect();
    for colour in &palette {
        for bg in &backgrounds {
            let ratio = contrast(hex(colour), hex(bg));
            assert!(ratio >= 3.0, "{colour} on {bg}: {ratio:.2}:1");
        }
    }
}
