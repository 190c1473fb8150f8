//! Configuration: read once at start from the environment and the optional env files
//! (`config/.env.defaults`, then `config/.env.<APP_ENV>`; the process environment
//! wins), then parsed into typed settings. Any bad value stops start-up naming the
//! variable.
//!
//! Each component parses its own settings next to its code, from the shared lookup
//! [`Vars`] and the helpers here ([`Vars::number`], [`Vars::flag`], [`invalid`], ...):
//! [`Config`] is only the sum of those parts. To add a variable, read it in the
//! component's `from_vars` and add it to the README's configuration table (a test
//! checks that every variable read is listed there).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use crate::access::AccessConfig;
use crate::cache::RedisConfig;
use crate::http::limits::ServerLimits;
use crate::http::server::ListenAddress;
use crate::rules_reload::RulesConfig;
use crate::store::mongo::MongoConfig;
use crate::store::sqlite::SqliteConfig;
use crate::telemetry::LogConfig;
use crate::webhooks::WebhookConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
    Test,
    Local,
}

impl AppEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Production => "production",
            AppEnv::Test => "test",
            AppEnv::Local => "local",
        }
    }

    /// `APP_ENV`, or its compatible alias `NODE_ENV`; `development` when neither is set.
    pub fn from_vars(vars: &Vars) -> Result<AppEnv, ConfigError> {
        let (var, value) = match (vars.get("APP_ENV"), vars.get("NODE_ENV")) {
            (Some(v), _) => ("APP_ENV", v),
            (None, Some(v)) => ("NODE_ENV", v),
            (None, None) => return Ok(AppEnv::Development),
        };
        match value.to_ascii_lowercase().as_str() {
            "development" => Ok(AppEnv::Development),
            "production" => Ok(AppEnv::Production),
            "test" => Ok(AppEnv::Test),
            "local" => Ok(AppEnv::Local),
            other => Err(invalid(
                var,
                other,
                "one of development, production, test, local",
            )),
        }
    }
}

/// Every component's settings, each parsed next to the code that uses it.
#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_ENV` (alias `NODE_ENV`).
    pub app_env: AppEnv,
    /// `LOG_LEVEL`, `RUST_LOG`.
    pub log: LogConfig,
    /// `API_SERVER_HOST`, `API_SERVER_PORT`.
    pub listen: ListenAddress,
    /// `BODY_LIMIT_BYTES`, `REQUEST_TIMEOUT_SECS`, `MAX_CONNECTIONS`, ...
    pub limits: ServerLimits,
    /// `EVENTS_POINTS_PATH`, `RULES_RELOAD_INTERVAL_SECS`.
    pub rules: RulesConfig,
    /// `SQLITE_PATH`, `SQLITE_SYNCHRONOUS`: the store unless `MONGO_URL` is set.
    pub sqlite: SqliteConfig,
    /// Set when `MONGO_URL` is: MongoDB becomes the store instead of SQLite.
    pub mongo: Option<MongoConfig>,
    /// Set when `REDIS_URL` is: Redis caches totals and holds leaderboards.
    pub redis: Option<RedisConfig>,
    /// `API_KEYS`, `API_KEYS_FILE`, `AUTH_DISABLED`, `PUBLIC_*`, `RATE_LIMIT_*`.
    pub access: AccessConfig,
    /// `WEBHOOKS_PATH`, `WEBHOOK_*`.
    pub webhooks: WebhookConfig,
    /// `EVENTTRACKER_CRASH_AT` (tests only, see [`crate::faults`]).
    pub crash_at: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            var: var.to_string(),
            problem: problem.into(),
        }
    }
}

/// `var` holds `value`, which is not what it should be.
pub fn invalid(var: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::new(var, format!("invalid value {value:?}: expected {expected}"))
}

/// The merged variables (env files and process environment) that every component's
/// settings are parsed from. A value is trimmed, and an empty one counts as unset.
///
/// It remembers every name asked for, so a test can check that the README's
/// configuration table lists each variable the code reads.
pub struct Vars<'a> {
    map: &'a HashMap<String, String>,
    asked: RefCell<BTreeSet<String>>,
}

impl<'a> Vars<'a> {
    pub fn new(map: &'a HashMap<String, String>) -> Vars<'a> {
        Vars {
            map,
            asked: RefCell::new(BTreeSet::new()),
        }
    }

    /// The value of `var`; `None` when unset or empty.
    pub fn get(&self, var: &str) -> Option<&'a str> {
        self.asked.borrow_mut().insert(var.to_string());
        self.map
            .get(var)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    /// A whole number, at least `min`; `default` when unset.
    pub fn number(&self, var: &str, default: u64, min: u64) -> Result<u64, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| invalid(var, v, &format!("a whole number, at least {min}"))),
        }
    }

    /// A number of seconds, at least `min`; `default` when unset.
    pub fn seconds(&self, var: &str, default: u64, min: u64) -> Result<Duration, ConfigError> {
        self.number(var, default, min).map(Duration::from_secs)
    }

    /// A number of milliseconds, at least `min`; `default` when unset.
    pub fn millis(&self, var: &str, default: u64, min: u64) -> Result<Duration, ConfigError> {
        self.number(var, default, min).map(Duration::from_millis)
    }

    /// `true`/`1`/`yes` or `false`/`0`/`no` (any case); `default` when unset.
    pub fn flag(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(invalid(var, other, "true or false")),
        }
    }

    /// Every name asked for so far, whether set or not.
    pub fn asked(&self) -> BTreeSet<String> {
        self.asked.borrow().clone()
    }
}

/// Variables from `(name, value)` pairs, for the unit tests of each component's settings.
#[cfg(test)]
pub(crate) fn test_vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Where optional env files live: `config/.env.defaults` and `config/.env.<APP_ENV>`.
pub const ENV_FILE_DIR: &str = "config";

impl Config {
    /// Reads the process environment plus the optional env files in `config/`.
    pub fn from_env() -> Result<Config, ConfigError> {
        let process: HashMap<String, String> = std::env::vars().collect();
        Config::from_sources(Path::new(ENV_FILE_DIR), process)
    }

    /// Layers `.env.defaults`, then `.env.<APP_ENV>`, then `process` (which wins).
    pub fn from_sources(
        dir: &Path,
        process: HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut vars = read_env_file(&dir.join(".env.defaults"))?;
        let app_env_name = app_env_name(&process)
            .or_else(|| app_env_name(&vars))
            .unwrap_or_else(|| "development".to_string());
        let env_file = dir.join(format!(".env.{app_env_name}"));
        vars.extend(read_env_file(&env_file)?);
        vars.extend(process);
        Config::from_map(&vars)
    }

    /// Parses already-merged variables. Unset variables take their defaults.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Config::from_vars(&Vars::new(vars))
    }

    /// Parses every component's settings from `vars`.
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let app_env = AppEnv::from_vars(vars)?;
        Ok(Config {
            app_env,
            log: LogConfig::from_vars(vars)?,
            listen: ListenAddress::from_vars(vars)?,
            limits: ServerLimits::from_vars(vars)?,
            rules: RulesConfig::from_vars(vars)?,
            sqlite: SqliteConfig::from_vars(vars)?,
            mongo: MongoConfig::from_vars(vars)?,
            redis: RedisConfig::from_vars(vars)?,
            access: AccessConfig::from_vars(vars, app_env)?,
            webhooks: WebhookConfig::from_vars(vars)?,
            crash_at: crate::faults::from_vars(vars, app_env)?,
        })
    }
}

/// `APP_ENV`, or its compatible alias `NODE_ENV`.
fn app_env_name(vars: &HashMap<String, String>) -> Option<String> {
    ["APP_ENV", "NODE_ENV"]
        .iter()
        .filter_map(|k| vars.get(*k))
        .map(|v| v.trim().to_ascii_lowercase())
        .find(|v| !v.is_empty())
}

fn read_env_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let iter = dotenvy::from_path_iter(path).map_err(|e| ConfigError {
        var: path.display().to_string(),
        problem: e.to_string(),
    })?;
    iter.map(|item| {
        item.map_err(|e| ConfigError {
            var: path.display().to_string(),
            problem: e.to_string(),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::store::sqlite::Synchronous;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        test_vars(pairs)
    }

    #[test]
    fn defaults_match_the_original_service() {
        let c = Config::from_map(&HashMap::new()).unwrap();
        assert_eq!(c.listen.host, "0.0.0.0");
        assert_eq!(c.listen.port, 3000);
        assert_eq!(c.rules.path, PathBuf::from("config/events.yaml"));
        assert_eq!(c.sqlite.path, PathBuf::from("data/eventtracker.db"));
        assert_eq!(c.app_env, AppEnv::Development);
        assert_eq!(
            c.sqlite.synchronous,
            Synchronous::Full,
            "durable by default"
        );
        assert_eq!(c.limits.body_limit_bytes, 1024 * 1024);
        assert!(c.mongo.is_none() && c.redis.is_none());
        assert!(c.access.keys.is_empty());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("API_SERVER_PORT", "70000"),
            ("LOG_LEVEL", "loud"),
            ("NODE_ENV", "staging"),
            ("APP_ENV", "staging"),
            ("SQLITE_SYNCHRONOUS", "off"),
            ("MAX_CONNECTIONS", "0"),
            ("RULES_RELOAD_INTERVAL_SECS", "soon"),
            ("RATE_LIMIT_ADMIN", "fast"),
            ("WEBHOOK_TIMEOUT_MS", "0"),
        ] {
            let e = Config::from_map(&map(&[(var, value)])).unwrap_err();
            assert_eq!(e.var, var);
            assert!(e.to_string().starts_with(&format!("{var}: ")), "{e}");
        }
    }

    #[test]
    fn app_env_wins_over_its_alias_and_production_reaches_access_control() {
        let c = Config::from_map(&map(&[("APP_ENV", "Test"), ("NODE_ENV", "production")]));
        assert_eq!(c.unwrap().app_env, AppEnv::Test);
        // With the alias set to production, short keys are refused as with APP_ENV.
        let e = Config::from_map(&map(&[("NODE_ENV", "production"), ("API_KEYS", "k:read")]))
            .unwrap_err();
        assert_eq!(e.var, "API_KEYS");
    }

    #[test]
    fn values_are_trimmed_and_empty_ones_are_unset() {
        let m = map(&[("A", "  7 "), ("B", "   "), ("F", "YES")]);
        let vars = Vars::new(&m);
        assert_eq!(vars.get("A"), Some("7"));
        assert_eq!(vars.get("B"), None);
        assert_eq!(vars.number("A", 1, 0).unwrap(), 7);
        assert_eq!(vars.number("B", 1, 0).unwrap(), 1);
        assert_eq!(vars.number("A", 1, 8).unwrap_err().var, "A");
        assert_eq!(vars.seconds("A", 1, 0).unwrap(), Duration::from_secs(7));
        assert_eq!(vars.millis("A", 1, 0).unwrap(), Duration::from_millis(7));
        assert!(vars.flag("F", false).unwrap());
        assert!(vars.flag("UNSET", true).unwrap());
        assert_eq!(vars.flag("A", false).unwrap_err().var, "A");
        let asked: Vec<String> = vars.asked().into_iter().collect();
        assert_eq!(asked, ["A", "B", "F", "UNSET"]);
    }

    #[test]
    fn env_files_layer_under_the_process_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env.defaults"),
            "API_SERVER_PORT=4000\nLOG_LEVEL=warn\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".env.test"), "API_SERVER_PORT=5000\n").unwrap();
        let c = Config::from_sources(dir.path(), map(&[("NODE_ENV", "test")])).unwrap();
        assert_eq!(c.listen.port, 5000);
        assert_eq!(c.log.level, "warn");
        assert_eq!(c.app_env, AppEnv::Test);
        let c = Config::from_sources(
            dir.path(),
            map(&[("APP_ENV", "test"), ("API_SERVER_PORT", "6000")]),
        )
        .unwrap();
        assert_eq!(c.listen.port, 6000);
    }

    /// The variables the README's configuration table lists: the backquoted names in
    /// the first column of the table under `## Configuration`.
    fn readme_variables() -> BTreeSet<String> {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let section = readme
            .split("\n## ")
            .find(|s| s.starts_with("Configuration\n"))
            .expect("a Configuration section in README.md");
        let mut names = BTreeSet::new();
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let first = row.split('|').nth(1).unwrap_or_default();
            for (i, quoted) in first.split('`').enumerate() {
                if i % 2 == 1 {
                    names.insert(quoted.to_string());
                }
            }
        }
        names
    }

    /// Names passed as literals to [`Vars`] anywhere in `src` (`vars.get("NAME")`,
    /// `.flag("NAME", ...)`, ...), read or not in a given run, outside unit tests.
    fn names_in_source() -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut dirs = vec![PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
                for method in ["get", "number", "seconds", "millis", "flag"] {
                    for rest in code.split(&format!(".{method}(\"")).skip(1) {
                        let name: String = rest.chars().take_while(|c| *c != '"').collect();
                        let env_like = name.len() > 1
                            && name.starts_with(|c: char| c.is_ascii_uppercase())
                            && name
                                .chars()
                                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                        if env_like {
                            names.insert(name);
                        }
                    }
                }
                // Every variable goes through `Vars` (and so through the env files).
                if path.file_name() != Some(std::ffi::OsStr::new("config.rs"))
                    && !path.ends_with("protocol_tests.rs")
                {
                    for forbidden in ["env::var(", "env::var_os(", "from_default_env("] {
                        assert!(
                            !code.contains(forbidden),
                            "{}: reads the environment with {forbidden}; use config::Vars",
                            path.display()
                        );
                    }
                }
            }
        }
        names
    }

    #[test]
    fn the_readme_table_lists_every_variable_the_code_reads_and_no_other() {
        // Everything is read through `Vars`, which remembers the names asked for: once
        // with nothing set, once with the optional stores on.
        let mut read = BTreeSet::new();
        let stores = [
            ("MONGO_URL", "mongodb://db/x"),
            ("REDIS_URL", "redis://cache"),
        ];
        for pairs in [&[][..], &stores[..]] {
            let m = test_vars(pairs);
            let vars = Vars::new(&m);
            Config::from_vars(&vars).unwrap();
            read.extend(vars.asked());
        }
        let in_source = names_in_source();
        assert!(
            in_source.contains("SQLITE_PATH") && in_source.contains("WEBHOOKS_PATH"),
            "the source scan finds names: {in_source:?}"
        );
        read.extend(in_source);
        let listed = readme_variables();
        let missing: Vec<&String> = read.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "read by the code but not in README.md's configuration table: {missing:?}"
        );
        let unread: Vec<&String> = listed.difference(&read).collect();
        assert!(
            unread.is_empty(),
            "in README.md's configuration table but read by no code: {unread:?}"
        );
    }
}
