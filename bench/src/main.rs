//! `bench`: builds EventTracker and the ceiling server in release mode, starts them,
//! drives the scenarios of docs/benchmark.md and writes bench-results/latest.{md,json}.

mod load;
mod naive;
mod procs;
mod report;
mod scenarios;
mod startup;
mod store_counts;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::load::Shape;
use crate::report::{Report, Settings};
use crate::scenarios::{Backend, Run, MONGO_SEED_BATCH, SQLITE_SEED_BATCH};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Load benchmark of EventTracker against a no-storage ceiling"
)]
struct Cli {
    /// Measured seconds per scenario and per server (default 10; 2 with --quick).
    #[arg(long)]
    duration: Option<f64>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Short durations and small seeds: a smoke test of the whole pipeline.
    #[arg(long)]
    quick: bool,
    /// Events of the long-history user of scenario 6 (default 1,000,000; 20,000 with --quick).
    #[arg(long)]
    history_events: Option<u64>,
    /// Users seeded into the week's leaderboard for scenario 4 (default 100,000; 5,000 with --quick).
    #[arg(long)]
    leaderboard_users: Option<u64>,
    /// Also run against MongoDB at this URL (a fresh database per run is put in its path).
    #[arg(long)]
    mongo_url: Option<String>,
    /// Also run SQLite plus this Redis (unless --no-sqlite), and with --mongo-url
    /// MongoDB plus this Redis.
    #[arg(long)]
    redis_url: Option<String>,
    /// Skip the SQLite backend (only useful with --mongo-url).
    #[arg(long, requires = "mongo_url")]
    no_sqlite: bool,
    /// Events imported for scenario 8 (import rate, start-up after SIGKILL), over a tenth
    /// as many users (default 10,000,000; 200,000 with --quick; 0 skips it). SQLite only.
    #[arg(long)]
    startup_events: Option<u64>,
    /// Where latest.md and latest.json go (relative to the workspace root).
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Record `perf` profiles of the server under scenarios 1 to 4 into this folder.
    #[arg(long)]
    perf: Option<PathBuf>,
    /// Run this server binary instead of the one built from the tree: a build of another
    /// commit, to set beside this one's run on the same machine in the same session.
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `base` with database `db` spliced into its path, keeping any `?options`.
fn with_database(base: &str, db: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    // Drop a database already in the path: everything after the host list's slash.
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let hosts = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{hosts}/{db}?{q}"),
        None => format!("{hosts}/{db}"),
    }
}

fn backends(cli: &Cli) -> Vec<Backend> {
    let mut out = Vec::new();
    if !cli.no_sqlite {
        out.push(Backend {
            name: "sqlite".into(),
            env: vec![],
            mongo_url: None,
            seed_batch: SQLITE_SEED_BATCH,
        });
        if let Some(redis) = &cli.redis_url {
            out.push(Backend {
                name: "sqlite+redis".into(),
                env: vec![
                    ("REDIS_URL".into(), redis.clone()),
                    (
                        "REDIS_KEY_PREFIX".into(),
                        format!("etbench:{}:s:", std::process::id()),
                    ),
                ],
                mongo_url: None,
                seed_batch: SQLITE_SEED_BATCH,
            });
        }
    }
    if let Some(url) = &cli.mongo_url {
        let pid = std::process::id();
        out.push(Backend {
            name: "mongo".into(),
            env: vec![(
                "MONGO_URL".into(),
                with_database(url, &format!("et_bench_{pid}")),
            )],
            mongo_url: Some(url.clone()),
            seed_batch: MONGO_SEED_BATCH,
        });
        if let Some(redis) = &cli.redis_url {
            out.push(Backend {
                name: "mongo+redis".into(),
                env: vec![
                    (
                        "MONGO_URL".into(),
                        with_database(url, &format!("et_bench_{pid}_r")),
                    ),
                    ("REDIS_URL".into(), redis.clone()),
                    ("REDIS_KEY_PREFIX".into(), format!("etbench:{pid}:")),
                ],
                mongo_url: Some(url.clone()),
                seed_batch: MONGO_SEED_BATCH,
            });
        }
    }
    out
}

fn git_commit(root: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let pick = |given: Option<u64>, full: u64, quick: u64| {
        given.unwrap_or(if cli.quick { quick } else { full })
    };
    let duration = cli.duration.unwrap_or(if cli.quick { 2.0 } else { 10.0 });
    anyhow::ensure!(duration > 0.0, "--duration must be positive");
    anyhow::ensure!(cli.connections > 0, "--connections must be at least 1");
    let warmup = (duration / 10.0).clamp(0.3, 2.0);
    let settings = Settings {
        duration_s: duration,
        warmup_s: warmup,
        connections: cli.connections,
        batch_events: 500,
        leaderboard_users: pick(cli.leaderboard_users, 100_000, 5_000).max(1),
        history_events: pick(cli.history_events, 1_000_000, 20_000).max(1),
        history_rounds: if cli.quick { 200 } else { 2000 },
        quick: cli.quick,
    };
    let root = procs::workspace_root();
    let perf_dir = match &cli.perf {
        Some(p) => {
            let dir = root.join(p);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Some(dir)
        }
        None => None,
    };
    let mut bins = tokio::task::spawn_blocking(procs::build).await??;
    let tree_commit = git_commit(&root);
    let commit = match &cli.server_bin {
        Some(path) => {
            bins.server = path.clone();
            Some(format!("(server binary {})", path.display()))
        }
        None => tree_commit,
    };
    let run = Run {
        settings: &settings,
        shape: Shape {
            connections: cli.connections,
            warmup: Duration::from_secs_f64(warmup),
            duration: Duration::from_secs_f64(duration),
        },
        perf_dir,
    };
    let mut results = Vec::new();
    let mut not_measured = Vec::new();
    for b in backends(&cli) {
        match scenarios::run_backend(&b, &bins, &run).await {
            Ok(r) => results.push(r),
            // SQLite is the point of the run; another backend failing leaves its results.
            Err(e) if b.name != "sqlite" => {
                eprintln!("bench: [{}] not measured: {e:#}", b.name);
                not_measured.push((b.name.clone(), format!("{e:#}")));
            }
            Err(e) => return Err(e.context(format!("backend {}", b.name))),
        }
    }
    let startup_events = pick(cli.startup_events, 10_000_000, 200_000);
    let mut startup = None;
    if !cli.no_sqlite && startup_events > 0 {
        let dir = tempfile::Builder::new()
            .prefix("eventtracker-bench-startup-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        let users = (startup_events / 10).max(1);
        match startup::run(&bins.server, dir.path(), startup_events, users).await {
            Ok(s) => startup = Some(s),
            Err(e) => {
                eprintln!("bench: [sqlite] 8 not measured: {e:#}");
                not_measured.push(("sqlite start-up (8)".into(), format!("{e:#}")));
            }
        }
    }
    let report = Report {
        startup,
        generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        git_commit: commit,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        settings,
        backends: results,
        not_measured,
    };
    let out = root.join(&cli.out);
    let md = report::write(&out, &report)?;
    println!("{md}");
    eprintln!("bench: wrote {}/latest.md and latest.json", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_goes_into_the_url_path() {
        assert_eq!(with_database("mongodb://h:1", "d"), "mongodb://h:1/d");
        assert_eq!(with_database("mongodb://h:1/", "d"), "mongodb://h:1/d");
        assert_eq!(
            with_database("mongodb://h:1/x?rs=a", "d"),
            "mongodb://h:1/d?rs=a"
        );
        assert_eq!(
            with_database("mongodb://a,b/?w=1", "d"),
            "mongodb://a,b/d?w=1"
        );
    }
}
