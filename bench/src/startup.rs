//! Scenario 8 (SQLite): a big store built with `eventtracker import`, then the server's
//! start-up on it, cleanly and after a SIGKILL that lands right after a burst of
//! acknowledged writes (whose counters the writer still held in memory). Reports the
//! import rate, the time from spawn to `/readyz` 200 both times, and the resident
//! memory with every user in the store.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use hyper::{Method, StatusCode};

use crate::load::{Conn, Req};
use crate::procs::{Memory, Proc};
use crate::report::{check, Check};
use crate::workload;

#[derive(Debug, Clone, Serialize)]
pub struct Startup {
    pub events: u64,
    pub users: u64,
    pub import_seconds: f64,
    pub import_events_per_s: f64,
    pub clean_start_seconds: f64,
    /// Events acknowledged just before the SIGKILL.
    pub burst_events: u64,
    pub start_after_kill_seconds: f64,
    /// After the clean start, every user in the store.
    pub memory: Memory,
    pub checks: Vec<Check>,
}

/// One NDJSON line per event, users round-robin, spread over 30 days.
fn write_events(out: &mut impl Write, events: u64, users: u64) -> std::io::Result<()> {
    let start_s: i64 = 1_790_000_000;
    for i in 0..events {
        let ty = if i % 4 == 0 { "PURCHASE" } else { "LOGIN" };
        let ts = start_s + (i as i64 * 2_592_000) / events.max(1) as i64;
        writeln!(
            out,
            r#"{{"user_id":"s{}","event_type":"{ty}","timestamp":{ts}}}"#,
            i % users
        )?;
    }
    Ok(())
}

fn import(server_bin: &Path, db: &Path, events: u64, users: u64) -> anyhow::Result<f64> {
    let mut child = Command::new(server_bin)
        .current_dir(crate::procs::workspace_root())
        .args(["import", "-", "--json", "--rejects"])
        .arg(db.with_extension("rejects.ndjson"))
        .env("SQLITE_PATH", db)
        .env("EVENTS_POINTS_PATH", "config/events.yaml")
        .env("LOG_LEVEL", "warn")
        .env_remove("MONGO_URL")
        .env_remove("REDIS_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start eventtracker import")?;
    let began = Instant::now();
    let stdin = child.stdin.take().context("no stdin")?;
    let writer = std::thread::spawn(move || {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdin);
        write_events(&mut out, events, users).and_then(|()| out.flush())
    });
    let out = child.wait_with_output()?;
    let seconds = began.elapsed().as_secs_f64();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the event writer panicked"))?
        .context("cannot feed the import")?;
    if !out.status.success() {
        bail!(
            "import failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let summary = String::from_utf8_lossy(&out.stdout);
    let last = summary.lines().last().unwrap_or_default();
    let parsed: serde_json::Value =
        serde_json::from_str(last).with_context(|| format!("import printed {last:?}"))?;
    if parsed["created"].as_u64() != Some(events) {
        bail!("import created {} of {events} events", parsed["created"]);
    }
    Ok(seconds)
}

/// Sends `n` events in batches of 500 over existing users; all must be acknowledged.
async fn burst(server: &Proc, n: u64, users: u64) -> anyhow::Result<()> {
    let mut conn = Conn::open(server.addr).await?;
    let now = workload::now_ms();
    let mut sent = 0;
    while sent < n {
        let per = 500.min(n - sent);
        let events =
            (sent..sent + per).map(|i| (format!("s{}", i * 7919 % users), "LOGIN", now + i as i64));
        let req = Req {
            method: Method::POST,
            path: "/v1/events/batch".into(),
            body: workload::batch_body(events),
            expect: StatusCode::OK,
            events: per,
        };
        let (status, _) = conn.send(&req).await?;
        if !status.is_success() {
            bail!("burst batch answered {status}");
        }
        sent += per;
    }
    Ok(())
}

pub async fn run(
    server_bin: &Path,
    dir: &Path,
    events: u64,
    users: u64,
) -> anyhow::Result<Startup> {
    let db = dir.join("startup.db");
    let env = vec![("SQLITE_PATH".to_string(), db.display().to_string())];
    eprintln!("bench: [sqlite] 8 importing {events} events over {users} users");
    let import_seconds = tokio::task::block_in_place(|| import(server_bin, &db, events, users))?;
    let import_events_per_s = events as f64 / import_seconds.max(1e-9);
    eprintln!("bench: [sqlite]   import: {import_seconds:.1} s, {import_events_per_s:.0} events/s");

    let began = Instant::now();
    let server = Proc::server(server_bin, dir, "startup", &env).await?;
    let clean_start_seconds = began.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let memory = server.memory()?;
    let burst_events = 20_000.min(events);
    burst(&server, burst_events, users).await?;
    // SIGKILL at once: the writer still holds the burst's counters.
    drop(server);

    let began = Instant::now();
    let server = Proc::server(server_bin, dir, "startup-after-kill", &env).await?;
    let start_after_kill_seconds = began.elapsed().as_secs_f64();
    drop(server);
    eprintln!(
        "bench: [sqlite]   ready in {clean_start_seconds:.2} s, after SIGKILL in {start_after_kill_seconds:.2} s, {:.0} MiB resident",
        memory.rss_mib
    );
    let full = events >= 10_000_000;
    let scale = if full {
        ""
    } else {
        " (smaller store than the target's)"
    };
    Ok(Startup {
        checks: vec![
            check(
                &format!("import ≥200,000 events/s{scale}"),
                format!("{import_events_per_s:.0} events/s"),
                import_events_per_s >= 200_000.0,
            ),
            check(
                &format!("ready after SIGKILL <15 s with 10M events / 1M users{scale}"),
                format!("{start_after_kill_seconds:.2} s"),
                full && start_after_kill_seconds < 15.0,
            ),
        ],
        events,
        users,
        import_seconds,
        import_events_per_s,
        clean_start_seconds,
        burst_events,
        start_after_kill_seconds,
        memory,
    })
}
