//! A bounded soak: 60 seconds at a steady rate of mixed writes and reads against the
//! real binary. Every request must succeed and resident memory must stay flat.
//! A minute is too long for every `cargo test`, so it is `#[ignore]`d: `scripts/test.sh`
//! (CI) runs it explicitly with `cargo test --test api -- soak:: --ignored`. `SOAK_SECS`
//! shortens it for a quick local run.

use crate::helpers as common;

use std::time::{Duration, Instant};

use common::process;
use serde_json::json;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute long: scripts/test.sh runs it with --ignored"]
async fn steady_load_for_a_minute_has_no_errors_and_flat_memory() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rate_per_sec = 200u64;
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = common::base_env(dir.path()).into_iter().collect();
    env.extend(common::backend_env());
    let server = process::start(&env);
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let base = server.base.clone();

    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate_per_sec));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut sent, mut errors) = (0u64, 0u64);
    let mut warm_rss = 0;
    let mut peak_rss = 0;
    let mut pending = tokio::task::JoinSet::new();
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let (client, base, i) = (client.clone(), base.clone(), sent);
        pending.spawn(async move {
            let r = match i % 4 {
                0 | 1 => client
                    .post(format!("{base}/v1/users/events"))
                    .json(&json!({"user_id": format!("s{}", i % 500), "event_type": "LOGIN", "timestamp": 1_780_000_000 + i as i64}))
                    .send()
                    .await,
                2 => client.get(format!("{base}/v1/users/s{}/points", i % 500)).send().await,
                _ => client.get(format!("{base}/v1/leaderboard?period=week&at=1780000000&limit=10")).send().await,
            };
            matches!(r, Ok(r) if r.status().is_success())
        });
        sent += 1;
        while let Some(done) = pending.try_join_next() {
            if !done.unwrap_or(false) {
                errors += 1;
            }
        }
        if sent % rate_per_sec == 0 {
            let rss = rss_kib(pid);
            peak_rss = peak_rss.max(rss);
            if start.elapsed() >= Duration::from_secs(secs / 4) && warm_rss == 0 {
                warm_rss = rss;
            }
        }
    }
    while let Some(done) = pending.join_next().await {
        if !done.unwrap_or(false) {
            errors += 1;
        }
    }
    let end_rss = rss_kib(pid);
    println!(
        "soak: {secs} s, {sent} requests, {errors} errors, RSS after warm-up {warm_rss} KiB, at the end {end_rss} KiB, peak {peak_rss} KiB"
    );
    assert_eq!(errors, 0, "every request succeeded");
    // Flat: what remains of growth after warm-up is bounded (page cache of a growing
    // database, allocator slack), not proportional to the requests served.
    assert!(
        end_rss <= warm_rss + 16 * 1024,
        "memory grew from {warm_rss} KiB to {end_rss} KiB"
    );
}
