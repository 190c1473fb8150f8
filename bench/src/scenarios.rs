//! One backend's run: start the ceiling and the server, then each scenario on the
//! ceiling immediately followed by the server, seeds, memory and history.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use hyper::{Method, StatusCode};

use crate::load::{alternate, closed_loop, exchange, open_loop, Conn, MakeReq, Req, Shape, Stats};
use crate::procs::{Binaries, Perf, Proc};
use crate::report::{
    thousands, BackendResult, History, MemoryResult, Naive, NotMeasured, Scenario, Settings,
};
use crate::workload::{self, Stamps};

/// Events per seeding request on SQLite: the server's batch maximum, the fastest seed.
pub const SQLITE_SEED_BATCH: u64 = 1000;
/// Events per seeding request on MongoDB. A 1,000-event batch took 6 s alone on
/// SecantusDB (a Python MongoDB-protocol server) and timed out at the server's 30 s
/// REQUEST_TIMEOUT_SECS with four seed connections at once; 100 take about 0.35 s
/// there, so each request stays far inside the timeout even on a slow server.
pub const MONGO_SEED_BATCH: u64 = 100;
const SEED_CONNECTIONS: usize = 4;
/// How long [`settle`] waits for writes queued by an earlier scenario to be committed.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);
const SMALL_HISTORY: u64 = 10;

pub struct Backend {
    pub name: String,
    /// Extra server environment (MONGO_URL, REDIS_URL, ...).
    pub env: Vec<(String, String)>,
    /// Set for MongoDB backends: the URL the naive writer uses.
    pub mongo_url: Option<String>,
    /// Events per request of the leaderboard and history seeds.
    pub seed_batch: u64,
}

pub struct Run<'a> {
    pub settings: &'a Settings,
    pub shape: Shape,
    pub perf_dir: Option<PathBuf>,
}

fn say(backend: &str, msg: impl AsRef<str>) {
    eprintln!("bench: [{backend}] {}", msg.as_ref());
}

fn line(s: &Stats) -> String {
    format!(
        "{} req/s, {} events/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        thousands(s.rps),
        thousands(s.eps),
        s.p50_ms,
        s.p99_ms,
        s.errors
    )
}

pub async fn run_backend(
    b: &Backend,
    bins: &Binaries,
    run: &Run<'_>,
) -> anyhow::Result<BackendResult> {
    let dir = tempfile::Builder::new()
        .prefix("eventtracker-bench-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    let ceiling = Proc::ceiling(&bins.ceiling, dir.path()).await?;
    let server = Proc::server(&bins.server, dir.path(), "server", &b.env).await?;
    if b.mongo_url.is_some() && dir.path().join("et.db").exists() {
        bail!("the server ignored MONGO_URL and opened SQLite: this build has no MongoDB store");
    }
    say(
        &b.name,
        format!(
            "server pid {} on {}, ceiling on {}",
            server.pid(),
            server.addr,
            ceiling.addr
        ),
    );
    // Let start-up allocations settle before reading the idle footprint.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = server.memory();
    let stamps = Arc::new(Stamps::new());
    let shape = run.shape;
    let mut scenarios = Vec::new();
    // A scenario whose seed or run fails is reported as such; the others still run.
    let mut skipped = Vec::new();
    let mut skip = |id: &str, name: &str, e: anyhow::Error| {
        say(&b.name, format!("{id} not measured: {e:#}"));
        skipped.push(NotMeasured {
            id: id.to_string(),
            name: name.to_string(),
            reason: format!("{e:#}"),
        });
    };

    let cases: [(u8, &str, MakeReq); 3] = [
        (
            1,
            "POST /v1/users/events",
            workload::single_post(stamps.clone()),
        ),
        (
            2,
            "POST /v1/events/batch (500 events)",
            workload::batch_post(stamps.clone(), run.settings.batch_events),
        ),
        (3, "GET /v1/users/{id}/points", workload::points_get()),
    ];
    for (id, name, make) in cases {
        let perf = profile_path(run, &b.name, id);
        let measured = async {
            if id > 1 {
                settle(&b.name, &server, &stamps).await?;
            }
            pair(&b.name, id, name, &ceiling, &server, shape, make, perf).await
        };
        match measured.await {
            Ok(sc) => scenarios.push(sc),
            Err(e) => skip(&id.to_string(), name, e),
        }
    }

    let name = "GET /v1/leaderboard?period=week&limit=10";
    let seeded = async {
        settle(&b.name, &server, &stamps).await?;
        leaderboard_seed(b, &server, run.settings).await
    };
    match seeded.await {
        Ok(()) => match pair(
            &b.name,
            4,
            name,
            &ceiling,
            &server,
            shape,
            workload::leaderboard_get(),
            profile_path(run, &b.name, 4),
        )
        .await
        {
            Ok(sc) => scenarios.push(sc),
            Err(e) => skip("4", name, e),
        },
        Err(e) => skip("4", name, e),
    }
    let after = server.memory();

    let name = "POST /v1/users/events, open loop at ½ of 1's max";
    let first = scenarios
        .iter()
        .find(|sc| sc.id == 1)
        .map(|sc| sc.server.rps);
    let settled = settle(&b.name, &server, &stamps).await;
    match (first, settled) {
        (Some(rps), Ok(())) => {
            let rate = (rps / 2.0).max(1.0);
            say(&b.name, format!("5 open loop at {} req/s", thousands(rate)));
            let make = workload::single_post(stamps.clone());
            let c = open_loop(ceiling.addr, shape, rate, make.clone()).await;
            say(&b.name, format!("  ceiling: {}", line(&c)));
            let s = open_loop(server.addr, shape, rate, make).await;
            say(&b.name, format!("  server:  {}", line(&s)));
            scenarios.push(Scenario::new(5, name, s, c, Some(rate)));
        }
        (None, _) => skip(
            "5",
            name,
            anyhow!("its rate is half of scenario 1's maximum, and scenario 1 was not measured"),
        ),
        (_, Err(e)) => skip("5", name, e),
    }

    let measured = async {
        settle(&b.name, &server, &stamps).await?;
        history(b, &server, &stamps, run.settings).await
    };
    let history = match measured.await {
        Ok(h) => Some(h),
        Err(e) => {
            skip(
                "6",
                "GET points: user with a long history / user with a short one",
                e,
            );
            None
        }
    };
    let at_end = server.memory();
    let memory = match (idle, after, at_end) {
        (Ok(idle), Ok(after), Ok(at_end)) => Some(MemoryResult::new(idle, after, at_end)),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            skip("7", "memory: VmRSS idle / VmHWM peak during 1–4", e);
            None
        }
    };

    let naive_mongo = match &b.mongo_url {
        Some(url) => {
            let server_stats =
                |id: u8| scenarios.iter().find(|sc| sc.id == id).map(|sc| &sc.server);
            let measured = async {
                // The naive writer shares the database with the server's queued writes.
                settle(&b.name, &server, &stamps).await?;
                naive(&b.name, url, shape).await
            };
            match measured.await {
                Ok(stats) => Some(Naive::new(stats, server_stats(1), server_stats(2))),
                Err(e) => {
                    skip("naive", "naive insert_one writer", e);
                    None
                }
            }
        }
        None => None,
    };
    drop(server);
    drop(ceiling);
    Ok(BackendResult {
        name: b.name.clone(),
        scenarios,
        seed_batch: b.seed_batch,
        history,
        memory,
        naive_mongo,
        not_measured: skipped,
    })
}

/// Waits until the server has committed the writes an earlier scenario left queued.
///
/// A request the server answered 408 (REQUEST_TIMEOUT_SECS) stays in its writer's
/// queue and is still written; on a slow database a flood of batches (scenario 2) can
/// leave minutes of work behind, which the next scenario would otherwise measure, and
/// which made the seeds that followed time out. Writes are committed in the order they
/// were queued, so the first single-event probe answered 201 means everything queued
/// before it is done. Gives up after [`SETTLE_LIMIT`].
async fn settle(backend: &str, server: &Proc, stamps: &Stamps) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = None;
    let mut probes = 0u32;
    loop {
        probes += 1;
        let probe = workload::single_event("bench-settle", stamps.take(1));
        match exchange(&mut conn, server.addr, &probe).await {
            Ok(()) => break,
            Err(e) if started.elapsed() >= SETTLE_LIMIT => bail!(
                "the server was still busy with writes queued by earlier scenarios after {:.0} s \
                 ({probes} probe writes, last: {e})",
                started.elapsed().as_secs_f64()
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let waited = started.elapsed();
    if waited >= Duration::from_secs(1) {
        say(
            backend,
            format!(
                "waited {:.1} s for writes queued by earlier scenarios",
                waited.as_secs_f64()
            ),
        );
    }
    Ok(())
}

/// Seeds this week's leaderboard for scenario 4.
async fn leaderboard_seed(b: &Backend, server: &Proc, settings: &Settings) -> anyhow::Result<()> {
    let (backend, per) = (b.name.as_str(), b.seed_batch);
    let users = settings.leaderboard_users;
    let now = workload::now_ms();
    say(
        backend,
        format!(
            "seeding the week's leaderboard with {} users, {per} per request",
            thousands(users as f64)
        ),
    );
    let batches = users.div_ceil(per);
    seed(server.addr, batches, move |i| {
        let body = workload::leaderboard_batch(i, per, users, now);
        (body, per.min(users - i * per))
    })
    .await
    .context("leaderboard seed")?;
    Ok(())
}

/// The MongoDB baseline: one insert_one per event, straight to the database.
async fn naive(backend: &str, url: &str, shape: Shape) -> anyhow::Result<Stats> {
    say(backend, "naive insert_one writer");
    let client = crate::naive::client(url).await?;
    let db = format!("et_bench_naive_{}", std::process::id());
    let stats = crate::naive::insert_one_per_event(&client, &db, shape).await?;
    say(backend, format!("  naive: {}", line(&stats)));
    Ok(stats)
}

/// Where the server's profile of scenario `id` goes, when profiling.
fn profile_path(run: &Run<'_>, backend: &str, id: u8) -> Option<PathBuf> {
    let name = format!("{}-s{id}.data", backend.replace('+', "-"));
    run.perf_dir.as_ref().map(|d| d.join(name))
}

/// The ceiling, then straight after it the server, under the same closed-loop load.
#[allow(clippy::too_many_arguments)]
async fn pair(
    backend: &str,
    id: u8,
    name: &str,
    ceiling: &Proc,
    server: &Proc,
    shape: Shape,
    make: MakeReq,
    perf: Option<PathBuf>,
) -> anyhow::Result<Scenario> {
    say(backend, format!("{id} {name}"));
    let c = closed_loop(ceiling.addr, shape, make.clone()).await;
    say(backend, format!("  ceiling: {}", line(&c)));
    let recorder = perf.map(|p| Perf::start(server.pid(), p)).transpose()?;
    let counts = crate::store_counts::read(server.addr).await?;
    let (written, started) = (server.disk_writes()?, Instant::now());
    let s = closed_loop(server.addr, shape, make).await;
    // Warm-up included: bytes over the whole phase, events at the measured rate.
    let written = server.disk_writes()? - written;
    let store_writes = counts.until(crate::store_counts::read(server.addr).await?);
    let events = s.eps * started.elapsed().as_secs_f64();
    say(backend, format!("  server:  {}", line(&s)));
    if let Some(r) = recorder {
        say(backend, format!("  profile: {}", r.finish()?.display()));
    }
    if s.requests + s.errors == 0 {
        // Only requests sent inside the window count, and each connection was still
        // waiting for the answer to the one it sent during the warm-up.
        bail!(
            "no request was sent in the measured {:.1} s: every connection's first request \
             took longer than the {:.1} s warm-up plus the window to be answered \
             (a longer --duration would measure it)",
            shape.duration.as_secs_f64(),
            shape.warmup.as_secs_f64()
        );
    }
    let mut scenario = Scenario::new(id, name, s, c, None);
    scenario.disk_bytes_per_event = (events >= 1.0).then(|| written as f64 / events);
    scenario.store_writes = store_writes;
    Ok(scenario)
}

/// Posts `batches` seed batches over a few connections; `make(i)` gives batch i and
/// its event count. Every event must be created: anything else is a bench bug.
async fn seed(
    addr: SocketAddr,
    batches: u64,
    make: impl Fn(u64) -> (Bytes, u64) + Send + Sync + 'static,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let make = Arc::new(make);
    let mut workers: Vec<_> = (0..SEED_CONNECTIONS)
        .map(|_| {
            let (next, make) = (next.clone(), make.clone());
            tokio::spawn(async move {
                let mut conn = Conn::open(addr).await?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= batches {
                        return anyhow::Ok(());
                    }
                    let (body, events) = make(i);
                    let req = Req {
                        method: Method::POST,
                        path: "/v1/events/batch".into(),
                        body,
                        expect: StatusCode::OK,
                        events,
                    };
                    let (status, answer) = conn.send(&req).await?;
                    let created = serde_json::from_slice::<serde_json::Value>(&answer)
                        .ok()
                        .and_then(|v| v["created"].as_u64());
                    if status != StatusCode::OK || created != Some(events) {
                        let text = String::from_utf8_lossy(&answer[..answer.len().min(300)]);
                        bail!("seed batch {i}: {status}, expected {events} created: {text}");
                    }
                }
            })
        })
        .collect();
    // The first failure ends the seed: the other workers are stopped, not left posting
    // into the scenarios that run next.
    let mut result = Ok(());
    for w in &mut workers {
        let outcome = match w.await {
            Ok(r) => r,
            Err(e) => Err(anyhow::Error::new(e).context("seed task failed")),
        };
        if let Err(e) = outcome {
            result = Err(e);
            break;
        }
    }
    for w in &workers {
        w.abort();
    }
    result.map(|()| started.elapsed())
}

/// Scenario 6: a user with a long history against one with a short one.
async fn history(
    b: &Backend,
    server: &Proc,
    stamps: &Stamps,
    settings: &Settings,
) -> anyhow::Result<History> {
    let (backend, per) = (b.name.as_str(), b.seed_batch);
    let big = settings.history_events;
    say(
        backend,
        format!(
            "6 seeding one user with {} events, {per} per request",
            thousands(big as f64)
        ),
    );
    let first = stamps.take(big as i64);
    let seeded = seed(server.addr, big.div_ceil(per), move |i| {
        let count = per.min(big - i * per);
        let body = workload::history_batch("hist-big", first + (i * per) as i64, count);
        (body, count)
    })
    .await
    .context("history seed")?;
    say(
        backend,
        format!(
            "  seeded in {:.1} s ({} events/s)",
            seeded.as_secs_f64(),
            thousands(big as f64 / seeded.as_secs_f64())
        ),
    );
    let first = stamps.take(SMALL_HISTORY as i64);
    seed(server.addr, 1, move |_| {
        (
            workload::history_batch("hist-small", first, SMALL_HISTORY),
            SMALL_HISTORY,
        )
    })
    .await
    .context("small history seed")?;
    let (b, s) = alternate(
        server.addr,
        settings.history_rounds,
        &workload::get("/v1/users/hist-big/points".into()),
        &workload::get("/v1/users/hist-small/points".into()),
    )
    .await?;
    say(backend, format!("  big user:   {}", line(&b)));
    say(backend, format!("  small user: {}", line(&s)));
    Ok(History::new(big, SMALL_HISTORY, seeded.as_secs_f64(), b, s))
}
