//! Logging: JSON lines in production (for log shippers), readable lines elsewhere.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{invalid, ConfigError, Vars};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `LOG_LEVEL` (default `info`): a `tracing` filter directive such as `info`.
    pub level: String,
    /// `RUST_LOG`: a full `tracing` filter (e.g. `info,eventtracker::cache=debug`)
    /// used instead of `LOG_LEVEL` when set.
    pub filter: Option<String>,
}

impl LogConfig {
    pub fn from_vars(vars: &Vars) -> Result<LogConfig, ConfigError> {
        let level = match vars
            .get("LOG_LEVEL")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => "info".to_string(),
            Some(l @ ("error" | "warn" | "info" | "debug" | "trace")) => l.to_string(),
            Some(other) => {
                return Err(invalid(
                    "LOG_LEVEL",
                    other,
                    "one of error, warn, info, debug, trace",
                ))
            }
        };
        let filter = match vars.get("RUST_LOG") {
            None => None,
            Some(v) => match EnvFilter::try_new(v) {
                Ok(_) => Some(v.to_string()),
                Err(e) => {
                    return Err(ConfigError::new(
                        "RUST_LOG",
                        format!("invalid value {v:?} ({e}): expected a tracing filter such as info,eventtracker=debug"),
                    ))
                }
            },
        };
        Ok(LogConfig { level, filter })
    }

    /// `RUST_LOG` when set, otherwise `default`.
    pub fn env_filter(&self, default: &str) -> EnvFilter {
        match &self.filter {
            Some(f) => EnvFilter::try_new(f).unwrap_or_else(|_| EnvFilter::new(default)),
            None => EnvFilter::new(default),
        }
    }
}

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(log: &LogConfig, json: bool) {
    // RUST_LOG, when set, refines LOG_LEVEL (e.g. to silence one module).
    let filter = log.env_filter(&log.level);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stdout);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars;

    fn config(pairs: &[(&str, &str)]) -> Result<LogConfig, ConfigError> {
        LogConfig::from_vars(&Vars::new(&test_vars(pairs)))
    }

    #[test]
    fn the_level_is_one_of_five_in_any_case() {
        assert_eq!(config(&[]).unwrap().level, "info");
        assert_eq!(config(&[("LOG_LEVEL", "DEBUG")]).unwrap().level, "debug");
        assert_eq!(
            config(&[("LOG_LEVEL", "loud")]).unwrap_err().var,
            "LOG_LEVEL"
        );
    }

    #[test]
    fn rust_log_is_a_valid_filter_or_refused() {
        assert_eq!(config(&[]).unwrap().filter, None);
        let c = config(&[("RUST_LOG", "info,eventtracker::cache=debug")]).unwrap();
        assert_eq!(c.filter.as_deref(), Some("info,eventtracker::cache=debug"));
        for bad in ["eventtracker=loud", "info,[{"] {
            assert_eq!(
                config(&[("RUST_LOG", bad)]).unwrap_err().var,
                "RUST_LOG",
                "{bad}"
            );
        }
    }
}
