//! Command line: `serve` (the default) and the operator commands.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::bulk;
use crate::config::{AppEnv, Config};
use crate::domain::rules::Rules;
use crate::recompute;
use crate::startup::{shutdown_signal, Application};
use crate::telemetry;

#[derive(Parser)]
#[command(
    name = "eventtracker",
    version,
    about = "Records user events and awards points for them"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server (the default).
    Serve,
    /// Validate the configuration and events.yaml, then exit.
    CheckConfig,
    /// Rebuild the Redis cache from the store now; running servers keep serving and
    /// switch to the new copy when it is complete.
    RebuildCache,
    /// Import events from an NDJSON or CSV file (the fields of the API); lines already
    /// stored count as duplicates, so running it again carries on where it stopped.
    Import {
        /// The file to read; `-` reads standard input (NDJSON unless --format says csv).
        file: PathBuf,
        /// Default: from the file extension (.csv, or .ndjson/.jsonl/.json).
        #[arg(long, value_enum)]
        format: Option<bulk::Format>,
        /// Events written to the store per batch.
        #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_size: u32,
        /// Where rejected lines go, with their reasons [default: FILE.rejects.ndjson].
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// End with the summary as JSON on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// Replay the whole ledger under the rules in force (or --rules-version) and report
    /// how every balance would change; --apply rewrites them, one user at a time.
    Recompute {
        /// Report only, change nothing (the default).
        #[arg(long, conflicts_with = "apply")]
        dry_run: bool,
        /// Rewrite awarded points, totals, breakdowns and leaderboards to the replay.
        #[arg(long)]
        apply: bool,
        /// Replay this registered rules version instead of the file in force.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        rules_version: Option<i64>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Export the ledger as NDJSON that `import` reads back.
    Export {
        /// Only this user's events.
        #[arg(long)]
        user: Option<String>,
        /// Only events at or after this time (Unix seconds or ms, or RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only events before this time (Unix seconds or ms, or RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init(&config.log, config.app_env == AppEnv::Production);
            if let Some(point) = config.crash_at {
                crate::faults::arm(point);
            }
            let app = Application::build(config).await?;
            app.run_until(shutdown_signal()).await
        }
        Command::RebuildCache => {
            telemetry::init(&config.log, config.app_env == AppEnv::Production);
            let report = crate::startup::rebuild_cache(&config).await?;
            println!(
                "cache rebuilt: {} users in {} ms",
                report.users,
                report.elapsed.as_millis()
            );
            Ok(())
        }
        Command::Import {
            file,
            format,
            batch_size,
            rejects,
            json,
        } => {
            let opts = bulk::import::Options {
                file,
                format,
                batch_size: batch_size as usize,
                rejects,
            };
            import(&config, opts, json).await
        }
        Command::Recompute {
            dry_run: _,
            apply,
            rules_version,
            json,
        } => recompute(&config, apply, rules_version, json).await,
        Command::Export {
            user,
            from,
            to,
            output,
        } => {
            let range = crate::store::TimeRange {
                from_ms: parse_time("--from", from)?,
                to_ms: parse_time("--to", to)?,
            };
            let opts = bulk::export::Options {
                user,
                range,
                output,
            };
            export(&config, opts).await
        }
        Command::CheckConfig => {
            let rules = crate::startup::check_config(&config).await?;
            println!(
                "configuration is valid: {} event types in {}, environment {}",
                rules.types().len(),
                config.rules.path.display(),
                config.app_env.as_str()
            );
            Ok(())
        }
    }
}

async fn import(config: &Config, opts: bulk::import::Options, json: bool) -> anyhow::Result<()> {
    bulk::init_logging(&config.log);
    let rules = config.rules.load()?;
    // A bad file fails before anything is connected to.
    let input = bulk::import::open_input(&opts)?;
    let store = bulk::open(config).await?;
    // Imported events record the rules version that judged them, like the API's.
    let rules = registered(&store, rules).await?;
    let result = bulk::import::run(&store, rules, input, &opts).await;
    store.lifecycle.close().await;
    let report = result?;
    let s = report.summary;
    if json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "{}: {} created, {} duplicates, {} rejected",
            bulk::import::display_name(&opts.file),
            s.created,
            s.duplicates,
            s.rejected
        );
    }
    if s.rejected > 0 {
        eprintln!(
            "rejected lines and their reasons: {}",
            report.rejects_path.display()
        );
    }
    if report.interrupted {
        anyhow::bail!(
            "interrupted after line {}: run the same command again to carry on \
             (lines already stored then count as duplicates)",
            report.last_line
        );
    }
    Ok(())
}

async fn export(config: &Config, opts: bulk::export::Options) -> anyhow::Result<()> {
    bulk::init_logging(&config.log);
    // Export reads the ledger only: it needs no cache, and on SQLite it may run beside
    // the server.
    let store = crate::startup::open_store_for_reading(config).await?;
    let result = bulk::export::run(&store, &opts).await;
    store.lifecycle.close().await;
    let report = result?;
    let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    eprintln!(
        "exported {} of {}",
        plural(report.events, "event"),
        plural(report.users, "user")
    );
    Ok(())
}

/// `rules` as registered in the store: the version servers reading the same file use.
async fn registered(store: &crate::store::Store, rules: Rules) -> anyhow::Result<Rules> {
    let now = chrono::Utc::now().timestamp_millis();
    let version = store
        .rules
        .activate_rules(rules.hash(), rules.text(), now)
        .await
        .context("cannot register the rules version in the store")?;
    Ok(rules.registered_as(version))
}

async fn recompute(
    config: &Config,
    apply: bool,
    rules_version: Option<i64>,
    json: bool,
) -> anyhow::Result<()> {
    bulk::init_logging(&config.log);
    let rules = config.rules.load()?;
    let store = bulk::open(config).await?;
    let result = async {
        let in_force = std::sync::Arc::new(registered(&store, rules).await?);
        let rules = recompute::rules_for(&store, in_force, rules_version).await?;
        let mut last = std::time::Instant::now();
        let report = recompute::run(&store, rules, apply, |done| {
            if last.elapsed() >= std::time::Duration::from_secs(5) {
                eprintln!("recompute: {done} users replayed");
                last = std::time::Instant::now();
            }
        })
        .await?;
        anyhow::Ok(report)
    }
    .await;
    store.lifecycle.close().await;
    let report = result?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let version = report
        .rules_version
        .map_or("unregistered rules".into(), |v| {
            format!("rules version {v}")
        });
    println!(
        "{} under {version}: {} users change, points delta {:+}",
        if report.applied { "applied" } else { "dry run" },
        report.users_changed,
        report.points_delta
    );
    for u in &report.users {
        let mut extra = String::new();
        if let Some(a) = &u.achievements {
            extra.push_str(&format!(
                "; achievements +{:?} -{:?}",
                a.unlocked, a.revoked
            ));
        }
        if let Some(l) = &u.level {
            extra.push_str(&format!("; level {:?} -> {:?}", l.current, l.recomputed));
        }
        if let Some(w) = &u.negative_balance {
            extra.push_str(&format!(
                "; wallet balance {} -> {} (negative: spends are not undone)",
                w.current, w.recomputed
            ));
        }
        println!(
            "  {}: {} -> {} ({:+}){extra}",
            u.user_id, u.current, u.recomputed, u.delta
        );
    }
    if report.negative_balances > 0 {
        println!(
            "{} users' wallet balance {} negative",
            report.negative_balances,
            if report.applied { "is now" } else { "would be" }
        );
    }
    Ok(())
}

fn parse_time(flag: &str, value: Option<String>) -> anyhow::Result<Option<i64>> {
    value
        .map(|v| {
            crate::domain::time::parse_query_time(&v)
                .map_err(|m| anyhow::anyhow!("{m}"))
                .with_context(|| format!("{flag} {v:?}"))
        })
        .transpose()
}
