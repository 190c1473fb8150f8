//! Command line: `serve` (the default) and the operator commands.

use clap::{Parser, Subcommand};

use crate::config::{AppEnv, Config};
use crate::domain::rules::Rules;
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
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init(&config.log_level, config.app_env == AppEnv::Production);
            let app = Application::build(config).await?;
            app.run_until(shutdown_signal()).await
        }
        Command::RebuildCache => {
            telemetry::init(&config.log_level, config.app_env == AppEnv::Production);
            let report = crate::startup::rebuild_cache(&config).await?;
            println!(
                "cache rebuilt: {} users in {} ms",
                report.users,
                report.elapsed.as_millis()
            );
            Ok(())
        }
        Command::CheckConfig => {
            let rules = Rules::load(&config.events_points_path)?;
            println!(
                "configuration is valid: {} event types in {}, environment {}",
                rules.types().len(),
                config.events_points_path.display(),
                config.app_env.as_str()
            );
            Ok(())
        }
    }
}
