//! Crash safety: concurrent clients send events with unique `event_id`s without pause and
//! retry what was not acknowledged, while the server is killed with SIGKILL at random
//! moments (each while sends are in flight) and restarted on the same data. In the end
//! every acknowledged event is stored exactly once and every total, breakdown and
//! leaderboard entry (all-time, and every day, week and month the events fall in)
//! equals the ledger.

use crate::helpers as common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{Datelike, Days};

use common::process;
use serde_json::{json, Value};

const CLIENTS: usize = 8;
const KILLS: usize = 5;
const USERS: u64 = 10;
const TYPES: [(&str, i64); 3] = [("LOGIN", 1), ("PURCHASE", 10), ("ABUSE_REPORTED", -20)];

/// A small deterministic generator: the run is reproducible from its printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Event times span about 11.6 days across a month's end, so the day, week and month
/// boards each have several periods to check.
fn event(client: usize, i: usize, rng: &mut Rng) -> Value {
    let (t, _) = TYPES[rng.below(3) as usize];
    json!({
        "user_id": format!("c{}", rng.below(USERS)),
        "event_type": t,
        "timestamp": 1_780_000_000 + rng.below(1_000_000) as i64,
        "event_id": format!("ev-{client}-{i}"),
    })
}

/// What the clients and the killer share.
struct Run {
    base: RwLock<String>,
    /// Set after the last restart: clients finish what they are sending and stop.
    stop: AtomicBool,
    /// Sends between request and answer, now.
    in_flight: AtomicUsize,
    /// Kills done so far; a failure is counted against the kill it came after.
    kills: AtomicUsize,
    /// Per kill: failed sends after it (cut off mid-request, refused while the server
    /// was down, or answered with an error).
    failed: [AtomicUsize; KILLS + 1],
    /// Per kill: sends it cut off (started before it, failed after it).
    cut: [AtomicUsize; KILLS + 1],
    /// Events sent again because their send failed.
    retried: AtomicUsize,
}

/// One send of `chunk`: true when the server acknowledged every event in it.
async fn send(client: &reqwest::Client, url: &str, chunk: &[Value]) -> bool {
    if chunk.len() == 1 {
        return match client
            .post(format!("{url}/v1/users/events"))
            .json(&chunk[0])
            .send()
            .await
        {
            Ok(r) => r.status() == 201 || r.status() == 409,
            Err(_) => false,
        };
    }
    match client
        .post(format!("{url}/v1/events/batch"))
        .json(&json!({ "events": chunk }))
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => {
            let body: Value = r.json().await.unwrap_or(Value::Null);
            body["rejected"] == 0
                && body["results"].as_array().map(|a| a.len()) == Some(chunk.len())
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = common::base_env(dir.path()).into_iter().collect();
    env.extend(common::backend_env());
    env.retain(|(k, _)| k != "LOG_LEVEL");
    env.push(("LOG_LEVEL".into(), "info".into()));

    let server = process::start(&env);
    let run = Arc::new(Run {
        base: RwLock::new(server.base.clone()),
        stop: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        kills: AtomicUsize::new(0),
        failed: Default::default(),
        cut: Default::default(),
        retried: AtomicUsize::new(0),
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // Each client sends fresh events in small batches (1 to 4, a single event on its own
    // endpoint) without pause until told to stop, so every kill finds sends running;
    // a chunk whose send fails is sent again until acknowledged: 201/409 single, or a
    // 200 batch whose every result is created/duplicate.
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (run, client) = (run.clone(), client.clone());
        let mut rng = Rng(seed.wrapping_add(c as u64 * 7919) | 1);
        tasks.push(tokio::spawn(async move {
            let mut acked: Vec<String> = Vec::new();
            let mut i = 0;
            while !run.stop.load(Ordering::SeqCst) {
                let n = 1 + rng.below(4) as usize;
                let chunk: Vec<Value> = (i..i + n).map(|j| event(c, j, &mut rng)).collect();
                loop {
                    let url = run.base.read().unwrap().clone();
                    let before = run.kills.load(Ordering::SeqCst);
                    run.in_flight.fetch_add(1, Ordering::SeqCst);
                    let ok = send(&client, &url, &chunk).await;
                    run.in_flight.fetch_sub(1, Ordering::SeqCst);
                    if ok {
                        break;
                    }
                    let after = run.kills.load(Ordering::SeqCst);
                    run.failed[after].fetch_add(1, Ordering::SeqCst);
                    if after > before {
                        run.cut[after].fetch_add(1, Ordering::SeqCst);
                    }
                    run.retried.fetch_add(chunk.len(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                acked.extend(
                    chunk
                        .iter()
                        .map(|e| e["event_id"].as_str().unwrap().to_string()),
                );
                i += n;
            }
            acked
        }));
    }

    // The killer: SIGKILL at random moments, each while sends are in flight, and restart
    // on the same data each time.
    let mut rng = Rng(seed);
    let mut server = server;
    let mut last_kill = Instant::now();
    let mut in_flight_at_kill = Vec::new();
    for k in 1..=KILLS {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(500))).await;
        let until = Instant::now() + Duration::from_secs(10);
        while run.in_flight.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < until,
                "kill {k}: no send in flight for 10 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        run.kills.store(k, Ordering::SeqCst);
        in_flight_at_kill.push(run.in_flight.load(Ordering::SeqCst));
        server.signal("KILL");
        last_kill = Instant::now();
        assert_eq!(server.wait(), None, "kill {k}");
        server = process::start(&env);
        *run.base.write().unwrap() = server.base.clone();
    }
    // The last server takes some traffic too, then the clients finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.stop.store(true, Ordering::SeqCst);

    let mut acknowledged = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(
                acknowledged.insert(id),
                "each event is acknowledged once per client"
            );
        }
    }

    // Every kill hit a server with requests in flight, and cost some of them.
    for k in 1..=KILLS {
        println!(
            "kill {k}: {} sends in flight, {} cut off, {} failed sends until the next kill",
            in_flight_at_kill[k - 1],
            run.cut[k].load(Ordering::SeqCst),
            run.failed[k].load(Ordering::SeqCst),
        );
        assert!(
            in_flight_at_kill[k - 1] > 0,
            "kill {k} found no send running"
        );
        assert!(
            run.failed[k].load(Ordering::SeqCst) > 0,
            "kill {k} cost no send: it did not hit the clients"
        );
    }
    let cut: usize = run.cut.iter().map(|c| c.load(Ordering::SeqCst)).sum();
    assert!(cut > 0, "no send was cut off mid-request by any kill");
    let retried = run.retried.load(Ordering::Relaxed);
    assert!(retried > 0, "nothing was retried");
    // On a standalone MongoDB server (no transactions) the kills leave batches whose
    // events are still marked pending, some with their points not yet counted; only
    // recovery finishes them, and it leaves a batch alone for RECOVERY_GRACE_MS (its
    // writer may still be live). Once that has passed since the last kill, a restart
    // runs recovery over every batch the kills cut short, and the check below then also
    // proves that re-applying them through their guards counted nothing twice.
    let mongo_url = env.iter().find(|(k, _)| k == "MONGO_URL").map(|(_, v)| v);
    if let Some(url) = mongo_url {
        if common::mongo_server_mode(url).await == "standalone" {
            let grace =
                Duration::from_millis(eventtracker::store::mongo::RECOVERY_GRACE_MS as u64 + 2_000);
            let waited = grace.saturating_sub(last_kill.elapsed());
            println!(
                "crash test: standalone MongoDB, waiting {} s for the recovery grace period",
                waited.as_secs()
            );
            let before = pending_events(url).await;
            tokio::time::sleep(waited).await;
            server.signal("TERM");
            assert_eq!(server.wait(), Some(0));
            server = process::start(&env);
            assert_eq!(
                pending_events(url).await,
                0,
                "recovery at start finished every batch"
            );
            println!("crash test: the kills left {before} events pending; recovery finished them");
        }
    }

    // Check the ledger against every counter, on the last server.
    let url = server.base.clone();
    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut checked = 0;
    // Per period kind, per period start: each user's points in it, from the ledger.
    let mut periods: BTreeMap<&str, BTreeMap<String, BTreeMap<String, i64>>> = BTreeMap::new();
    let (_, board) = get(&client, &format!("{url}/v1/leaderboard?limit=100")).await;
    let mut users_with_events = 0;
    for u in 0..USERS {
        let user = format!("c{u}");
        let mut by_type: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        let mut cursor = String::new();
        loop {
            let (_, page) = get(
                &client,
                &format!("{url}/v1/users/{user}/events?limit=1000{cursor}"),
            )
            .await;
            for e in page["data"].as_array().unwrap() {
                *stored
                    .entry(e["event_id"].as_str().unwrap().to_string())
                    .or_default() += 1;
                let points = e["points"].as_i64().unwrap();
                let t = by_type
                    .entry(e["event_type"].as_str().unwrap().to_string())
                    .or_default();
                t.0 += 1;
                t.1 += points;
                let at = chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap())
                    .unwrap()
                    .date_naive();
                let week = at - Days::new(at.weekday().num_days_from_monday().into());
                for (kind, start) in [
                    ("day", at),
                    ("week", week),
                    ("month", at.with_day(1).unwrap()),
                ] {
                    *periods
                        .entry(kind)
                        .or_default()
                        .entry(format!("{start}T00:00:00Z"))
                        .or_default()
                        .entry(user.clone())
                        .or_default() += points;
                }
                checked += 1;
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        let (_, p) = get(&client, &format!("{url}/v1/users/{user}/points")).await;
        let total: i64 = by_type.values().map(|t| t.1).sum();
        assert_eq!(
            p["points"].as_i64(),
            Some(total),
            "{user} total equals the ledger"
        );
        for (t, (n, pts)) in &by_type {
            assert_eq!(
                p["by_type"][t]["events"].as_u64(),
                Some(*n),
                "{user} {t} count"
            );
            assert_eq!(
                p["by_type"][t]["points"].as_i64(),
                Some(*pts),
                "{user} {t} points"
            );
        }
        let entry = board["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["user_id"] == user.as_str());
        if by_type.is_empty() {
            assert!(entry.is_none(), "{user} has no events but is on the board");
            continue;
        }
        users_with_events += 1;
        assert_eq!(
            entry.map(|e| e["points"].as_i64().unwrap()),
            Some(total),
            "{user} on the leaderboard"
        );
    }
    assert_eq!(
        board["entries"].as_array().unwrap().len(),
        users_with_events,
        "the all-time board lists exactly the users with events"
    );
    // Every day, week and month board the events fall in equals the ledger: the same
    // users (a user whose events there sum to 0 is listed with 0) with the same points.
    let mut boards_checked = 0;
    for (kind, starts) in &periods {
        for (start, want) in starts {
            let (status, b) = get(
                &client,
                &format!("{url}/v1/leaderboard?period={kind}&at={start}&limit=100"),
            )
            .await;
            assert_eq!(status, 200, "{b}");
            assert_eq!(
                b["start"],
                start.replace("T00:00:00Z", "T00:00:00.000Z"),
                "{b}"
            );
            let served: BTreeMap<String, i64> = b["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["user_id"].as_str().unwrap().to_string(),
                        e["points"].as_i64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(&served, want, "{kind} board from {start}");
            boards_checked += 1;
        }
    }
    assert!(periods["week"].len() >= 2 && periods["month"].len() >= 2);
    assert!(stored.values().all(|&n| n == 1), "no event stored twice");
    for id in &acknowledged {
        assert!(stored.contains_key(id), "acknowledged event {id} was lost");
    }
    assert_eq!(stored.len(), acknowledged.len());
    println!(
        "crash test: {} kills, {} events acknowledged, {} events retried in {} failed sends \
         ({} cut off by a kill), {} stored events checked, {} day/week/month boards checked",
        KILLS,
        acknowledged.len(),
        retried,
        run.failed
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum::<usize>(),
        cut,
        checked,
        boards_checked
    );
}

/// Events a standalone MongoDB store still holds marked pending (points maybe not counted).
async fn pending_events(url: &str) -> u64 {
    use mongodb::bson::{doc, Document};
    let client = mongodb::Client::with_uri_str(url).await.unwrap();
    client
        .default_database()
        .expect("database in MONGO_URL")
        .collection::<Document>(eventtracker::store::mongo::schema::EVENTS)
        .count_documents(doc! { "pending": { "$exists": true } })
        .await
        .unwrap()
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Spends under SIGKILL: clients spend 1 point at a time, each with its own `spend_id`,
/// and retry a spend until it is acknowledged (201, or 409: an earlier try was stored
/// before the kill cut off its answer). In the end every acknowledged spend is stored
/// exactly once and the wallet's numbers equal its entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_spends_loses_and_doubles_no_spend() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("wallet.yaml");
    std::fs::write(
        &rules,
        "events:\n  - {name: PURCHASE, point: 10}\nwallet: {}\n",
    )
    .unwrap();
    let mut env: Vec<(String, String)> = common::base_env(dir.path()).into_iter().collect();
    env.extend(common::backend_env());
    env.retain(|(k, _)| k != "EVENTS_POINTS_PATH");
    env.push(("EVENTS_POINTS_PATH".into(), rules.display().to_string()));
    let mut server = process::start(&env);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let events: Vec<Value> = (0..500)
        .map(|i| json!({"user_id": "spender", "event_type": "PURCHASE", "timestamp": 1_780_000_000 + i, "event_id": format!("e{i}")}))
        .collect();
    for chunk in events.chunks(250) {
        assert!(
            send(&client, &server.base, chunk).await,
            "seeding 5000 points"
        );
    }
    let probe = client
        .post(format!("{}/v1/users/spender/spend", server.base))
        .json(&json!({"amount": 1, "spend_id": "probe"}))
        .send()
        .await
        .unwrap();
    if probe.status() == 501 {
        common::report_skip("this store keeps no wallet");
        return;
    }
    assert_eq!(probe.status(), 201);

    let base = Arc::new(RwLock::new(server.base.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..4 {
        let (base, stop, in_flight, client, retried) = (
            base.clone(),
            stop.clone(),
            in_flight.clone(),
            client.clone(),
            retried.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("s-{c}-{i}");
                loop {
                    let url = base.read().unwrap().clone();
                    in_flight.fetch_add(1, Ordering::SeqCst);
                    let r = client
                        .post(format!("{url}/v1/users/spender/spend"))
                        .json(&json!({"amount": 1, "spend_id": id}))
                        .send()
                        .await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    match r.map(|r| r.status().as_u16()) {
                        Ok(201) | Ok(409) => break,
                        _ => {
                            retried.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                    }
                }
                acked.push(id);
                i += 1;
            }
            acked
        }));
    }
    for k in 1..=3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let until = Instant::now() + Duration::from_secs(10);
        while in_flight.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < until, "kill {k}: no spend in flight");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.signal("KILL");
        assert_eq!(server.wait(), None, "kill {k}");
        server = process::start(&env);
        *base.write().unwrap() = server.base.clone();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked: HashSet<String> = HashSet::from(["probe".to_owned()]);
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let (status, wallet) = get(&client, &format!("{}/v1/users/spender/wallet", server.base)).await;
    assert_eq!(status, 200, "{wallet}");
    // Every spend in the ledger, once each.
    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/users/spender/events?limit=1000", server.base);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (_, page) = get(&client, &url).await;
        for e in page["data"].as_array().unwrap() {
            if e["event_type"] == "wallet:spend" {
                *stored
                    .entry(e["properties"]["ref"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(stored.values().all(|n| *n == 1), "a spend stored twice");
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "acknowledged spends lost: {missing:?}");
    // Spends cut off before they were stored and never retried are fine; none stored
    // without a client having sent it.
    assert!(stored
        .keys()
        .all(|id| id == "probe" || id.starts_with("s-")));
    assert_eq!(wallet["spent"], stored.len() as i64, "{wallet}");
    assert_eq!(wallet["earned"], 5000);
    assert_eq!(wallet["balance"], 5000 - stored.len() as i64);
    let retried = retried.load(Ordering::SeqCst);
    assert!(retried > 0, "no kill cost a spend: nothing was retried");
    println!(
        "{} spends acknowledged, {} stored, {retried} tries failed and were retried",
        acked.len(),
        stored.len()
    );
    server.signal("TERM");
    server.wait();
}
