//! Keeps the rules in force equal to `events.yaml`: the file is checked every
//! `RULES_RELOAD_INTERVAL_SECS` and on SIGHUP. A changed file is validated, registered
//! in the store as a new rules version, and only then swapped in whole; an invalid one
//! is logged (naming the file and the entry), counted, and the version in force stays.
//!
//! Polling the content hash rather than watching inotify events works the same on
//! every file system, on bind mounts, and for Kubernetes ConfigMaps, which are
//! replaced through a symlink swap that file watchers easily miss.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::clock::Clock;
use crate::config::{ConfigError, Vars};
use crate::domain::rules::{content_hash, Rules, SharedRules};
use crate::store::Store;

/// Where the rules are and how often they are looked at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesConfig {
    /// `EVENTS_POINTS_PATH` (default `config/events.yaml`).
    pub path: PathBuf,
    /// `RULES_RELOAD_INTERVAL_SECS` (default 2): how often `path` is checked for
    /// changes; `None` (0) leaves reloads to SIGHUP.
    pub reload_interval: Option<Duration>,
}

impl RulesConfig {
    /// The rules of [`RulesConfig::path`], an error naming `EVENTS_POINTS_PATH`, the
    /// file and what is wrong (the entry, or the OS error once).
    pub fn load(&self) -> anyhow::Result<Rules> {
        Rules::load(&self.path).context("EVENTS_POINTS_PATH")
    }

    pub fn from_vars(vars: &Vars) -> Result<RulesConfig, ConfigError> {
        Ok(RulesConfig {
            path: PathBuf::from(
                vars.get("EVENTS_POINTS_PATH")
                    .unwrap_or("config/events.yaml"),
            ),
            reload_interval: match vars.number("RULES_RELOAD_INTERVAL_SECS", 2, 0)? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
        })
    }
}

/// A file seen changing is read again after this long and used only if unchanged, so
/// an editor's half-written save is not taken for the new configuration.
const SETTLE: Duration = Duration::from_millis(200);

pub struct Reloader {
    pub path: PathBuf,
    pub rules: Arc<SharedRules>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Applied(i64),
    /// With the hash of the rejected file, when it could be read.
    Rejected(Option<String>),
    /// Valid, but the store could not register it: the check is repeated next time.
    Deferred,
}

impl Reloader {
    /// Registers `rules` (read at start) in the store; on failure they serve
    /// unregistered until a later check succeeds.
    pub async fn register(&self, rules: Rules) -> Rules {
        match self
            .store
            .rules
            .activate_rules(rules.hash(), rules.text(), self.clock.now_ms())
            .await
        {
            Ok(v) => {
                tracing::info!(version = v.version, hash = %v.hash, path = %self.path.display(), "rules in force");
                metrics::gauge!("rules_version").set(v.version as f64);
                rules.registered_as(v)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot register the rules version yet; retrying at the next check");
                rules
            }
        }
    }

    /// Compares the file with the rules in force and switches when it changed. A file
    /// whose hash is `ignore` (one already rejected) counts as unchanged.
    pub async fn check(&self, ignore: Option<&str>) -> Outcome {
        let current = self.rules.current();
        let Ok(text) = tokio::fs::read_to_string(&self.path).await else {
            // Loading reports the read error itself.
            return self.reject(Rules::load(&self.path).err(), None);
        };
        let hash = content_hash(&text);
        if ignore == Some(hash.as_str())
            || (hash == current.hash() && current.registered().is_some())
        {
            return Outcome::Unchanged;
        }
        tokio::time::sleep(SETTLE).await;
        match tokio::fs::read_to_string(&self.path).await {
            Ok(again) if again == text => {}
            // Still being written: look again next time.
            _ => return Outcome::Unchanged,
        }
        let rules = match Rules::parse(&self.path, &text) {
            Ok(r) => r,
            Err(e) => return self.reject(Some(e), Some(hash)),
        };
        let rules = self.register(rules).await;
        let Some(version) = rules.version() else {
            return Outcome::Deferred;
        };
        let changed = current.registered().map(|v| v.version) != Some(version);
        self.rules.replace(rules);
        if changed {
            metrics::counter!("rules_reloads_total", "outcome" => "applied").increment(1);
            tracing::info!(version, path = %self.path.display(), "rules reloaded");
        }
        Outcome::Applied(version)
    }

    fn reject(
        &self,
        error: Option<crate::domain::rules::RulesError>,
        hash: Option<String>,
    ) -> Outcome {
        metrics::counter!("rules_reloads_total", "outcome" => "rejected").increment(1);
        let in_force = self.rules.current().version();
        match error {
            Some(e) => {
                tracing::error!(error = %e, ?in_force, "rules file rejected; the version in force stays")
            }
            None => {
                tracing::error!(path = %self.path.display(), ?in_force, "rules file rejected; the version in force stays")
            }
        }
        Outcome::Rejected(hash)
    }

    /// Checks at every interval tick and every SIGHUP, forever (the task is aborted
    /// at shutdown). The same invalid file is reported once, not at every tick. The step
    /// it repeats is [`Reloader::check`], which tests call directly.
    pub async fn run(self: Arc<Self>, interval: Option<Duration>) {
        let mut triggers = Triggers::new(interval);
        let mut rejected: Option<String> = None;
        loop {
            let forced = triggers.next().await == Trigger::Hangup;
            if forced {
                tracing::info!(path = %self.path.display(), "SIGHUP: checking the rules file");
            }
            let ignore = if forced { None } else { rejected.as_deref() };
            match self.check(ignore).await {
                Outcome::Rejected(hash) => rejected = hash,
                Outcome::Applied(_) | Outcome::Deferred => rejected = None,
                Outcome::Unchanged => {}
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Trigger {
    Interval,
    Hangup,
}

/// What makes the loop look at the file: the interval, unless it is off, and SIGHUP.
struct Triggers {
    ticker: Option<tokio::time::Interval>,
    hangup: Hangup,
}

impl Triggers {
    fn new(interval: Option<Duration>) -> Triggers {
        let ticker = interval.map(|i| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + i, i);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        Triggers {
            ticker,
            hangup: hangup_signals(),
        }
    }

    async fn next(&mut self) -> Trigger {
        tokio::select! {
            _ = tick(&mut self.ticker) => Trigger::Interval,
            Some(()) = recv(&mut self.hangup) => Trigger::Hangup,
        }
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signals() -> Hangup {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; rules reload by file checks only");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signals() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv(h: &mut Hangup) -> Option<()> {
    match h {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars;

    fn config(pairs: &[(&str, &str)]) -> Result<RulesConfig, ConfigError> {
        RulesConfig::from_vars(&Vars::new(&test_vars(pairs)))
    }

    #[test]
    fn the_shipped_rules_are_checked_every_two_seconds_by_default() {
        let c = config(&[]).unwrap();
        assert_eq!(c.path, PathBuf::from("config/events.yaml"));
        assert_eq!(c.reload_interval, Some(Duration::from_secs(2)));
        let c = config(&[
            ("RULES_RELOAD_INTERVAL_SECS", "0"),
            ("EVENTS_POINTS_PATH", "r.yaml"),
        ])
        .unwrap();
        assert_eq!((c.path, c.reload_interval), (PathBuf::from("r.yaml"), None));
        let e = config(&[("RULES_RELOAD_INTERVAL_SECS", "often")]).unwrap_err();
        assert_eq!(e.var, "RULES_RELOAD_INTERVAL_SECS");
    }

    #[test]
    fn a_missing_file_is_reported_once_naming_the_variable() {
        let c = config(&[("EVENTS_POINTS_PATH", "/nonexistent/events.yaml")]).unwrap();
        let e = format!("{:#}", c.load().unwrap_err());
        assert!(
            e.starts_with("EVENTS_POINTS_PATH: /nonexistent/events.yaml: cannot read the file: "),
            "{e}"
        );
        assert_eq!(e.matches("(os error 2)").count(), 1, "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("events.yaml");
        std::fs::write(&file, "events: [unclosed\n").unwrap();
        let c = config(&[("EVENTS_POINTS_PATH", file.to_str().unwrap())]).unwrap();
        let e = format!("{:#}", c.load().unwrap_err());
        assert!(
            e.starts_with("EVENTS_POINTS_PATH: ") && e.contains("invalid YAML"),
            "{e}"
        );
        let yaml = e.split("invalid YAML: ").nth(1).unwrap();
        assert_eq!(e.matches(yaml).count(), 1, "the YAML error once: {e}");
    }

    /// `RULES_RELOAD_INTERVAL_SECS=0`: the file is looked at on SIGHUP only. Time is
    /// paused and jumps ahead whenever the runtime idles, so a day passes at once: a
    /// ticker, had there been one, would have fired in it.
    #[tokio::test(start_paused = true)]
    async fn without_an_interval_nothing_but_sighup_triggers_a_check() {
        let day = Duration::from_secs(86_400);
        let mut off = Triggers::new(None);
        assert!(tokio::time::timeout(day, off.next()).await.is_err());

        let mut every_minute = Triggers::new(Some(Duration::from_secs(60)));
        let first = tokio::time::timeout(Duration::from_secs(61), every_minute.next()).await;
        assert_eq!(first, Ok(Trigger::Interval));
    }
}
