//! Configuration: read once at start from the environment (and optional env files),
//! parsed into typed fields. Any bad value stops start-up naming the variable.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::access::AccessConfig;

use crate::store::sqlite::{SqliteConfig, Synchronous};

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

#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// A `tracing` filter directive such as `info`.
    pub log_level: String,
    pub events_points_path: PathBuf,
    /// `RULES_RELOAD_INTERVAL_SECS` (default 2): how often `events_points_path` is
    /// checked for changes; `None` (0) leaves reloads to SIGHUP.
    pub rules_reload_interval: Option<std::time::Duration>,
    pub app_env: AppEnv,
    pub sqlite: SqliteConfig,
    pub body_limit_bytes: usize,
    pub limits: ServerLimits,
    /// Set when `MONGO_URL` is: MongoDB becomes the store instead of SQLite.
    pub mongo: Option<MongoConfig>,
    /// Set when `REDIS_URL` is: Redis caches totals and holds leaderboards.
    pub redis: Option<RedisConfig>,
    pub access: AccessConfig,
    pub webhooks: WebhooksConfig,
}

#[derive(Debug, Clone, Default)]
pub struct WebhooksConfig {
    /// From the file `WEBHOOKS_PATH` names (none when unset): registered at start,
    /// alongside those created over the API.
    pub subscriptions: Vec<crate::webhooks::NewSubscription>,
    pub delivery: crate::webhooks::worker::DeliveryConfig,
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS`, `WEBHOOK_ALLOWED_TARGETS`: which addresses
    /// deliveries may go to (by default public ones only).
    pub targets: crate::webhooks::target::TargetPolicy,
}

/// Protections of the server itself.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// `REQUEST_TIMEOUT_SECS` (default 30): a request still running is answered 408.
    pub request_timeout: std::time::Duration,
    /// `MAX_CONNECTIONS` (default 1024): further connections wait to be accepted.
    pub max_connections: usize,
    /// `MAX_HEADER_BYTES` (default 16384): larger headers and URL get 431.
    pub max_header_bytes: usize,
    /// `HEADER_READ_TIMEOUT_SECS` (default 5): a connection that has not sent a whole
    /// request head this long after it opened, or after the next head began, is closed.
    pub header_read_timeout: std::time::Duration,
    /// `KEEP_ALIVE_TIMEOUT_SECS` (default 60): an idle keep-alive connection is closed
    /// after this long without a new request.
    pub keep_alive_timeout: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// A standard connection string; the database is taken from its path.
    pub url: String,
    /// From the URL path, default `eventTracker`.
    pub database: String,
    /// `MONGO_WRITE_CONCERN`: `majority` (default) or a number of nodes.
    pub write_concern: WriteConcern,
    /// `MONGO_READ_CONCERN`: `local`, `majority` (default), `linearizable` or `available`.
    pub read_concern: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteConcern {
    Majority,
    Nodes(u32),
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// `REDIS_KEY_PREFIX` (default `et:`): lets several deployments share one Redis.
    pub key_prefix: String,
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
        let get = |k: &str| vars.get(k);
        let app_env = AppEnv::from_vars(vars)?;

        let host = get("API_SERVER_HOST").unwrap_or("0.0.0.0").to_string();
        if !valid_host(&host) {
            return Err(invalid(
                "API_SERVER_HOST",
                &host,
                "an IP address or a host name (resolved when the server starts)",
            ));
        }
        let port = match get("API_SERVER_PORT") {
            None => 3000,
            Some(v) => v
                .parse::<u16>()
                .map_err(|_| invalid("API_SERVER_PORT", v, "a port number from 0 to 65535"))?,
        };
        let log_level = match get("LOG_LEVEL").map(str::to_ascii_lowercase).as_deref() {
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
        let synchronous = match get("SQLITE_SYNCHRONOUS")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("full") => Synchronous::Full,
            Some("normal") => Synchronous::Normal,
            Some(other) => return Err(invalid("SQLITE_SYNCHRONOUS", other, "full or normal")),
        };
        let body_limit_bytes = match get("BODY_LIMIT_BYTES") {
            None => 1024 * 1024,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1024)
                .ok_or_else(|| {
                    invalid("BODY_LIMIT_BYTES", v, "a number of bytes, at least 1024")
                })?,
        };

        Ok(Config {
            host,
            port,
            log_level,
            events_points_path: PathBuf::from(
                get("EVENTS_POINTS_PATH").unwrap_or("config/events.yaml"),
            ),
            rules_reload_interval: match vars.number("RULES_RELOAD_INTERVAL_SECS", 2, 0)? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            app_env,
            sqlite: SqliteConfig {
                path: PathBuf::from(get("SQLITE_PATH").unwrap_or("data/eventtracker.db")),
                synchronous,
            },
            body_limit_bytes,
            mongo: mongo_config(vars)?,
            limits: ServerLimits {
                request_timeout: vars.seconds("REQUEST_TIMEOUT_SECS", 30, 1)?,
                max_connections: vars.number("MAX_CONNECTIONS", 1024, 1)? as usize,
                max_header_bytes: vars.number("MAX_HEADER_BYTES", 16 * 1024, 1024)? as usize,
                header_read_timeout: vars.seconds("HEADER_READ_TIMEOUT_SECS", 5, 1)?,
                keep_alive_timeout: vars.seconds("KEEP_ALIVE_TIMEOUT_SECS", 60, 1)?,
            },
            access: AccessConfig::from_vars(vars, app_env)?,
            webhooks: webhooks_config(vars)?,
            redis: get("REDIS_URL").map(|url| RedisConfig {
                url: url.to_string(),
                key_prefix: get("REDIS_KEY_PREFIX").unwrap_or("et:").to_string(),
            }),
        })
    }
}

fn webhooks_config(vars: &Vars) -> Result<WebhooksConfig, ConfigError> {
    let subscriptions = match vars.get("WEBHOOKS_PATH") {
        None => Vec::new(),
        Some(path) => {
            let problem = |p: String| ConfigError::new("WEBHOOKS_PATH", format!("{path}: {p}"));
            let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
            crate::webhooks::parse_file(&text).map_err(problem)?
        }
    };
    let allowed = match vars.get("WEBHOOK_ALLOWED_TARGETS") {
        None => Vec::new(),
        Some(v) => crate::webhooks::target::parse_allowed(v).map_err(|p| {
            ConfigError::new(
                "WEBHOOK_ALLOWED_TARGETS",
                format!("{p}: expected addresses or CIDR ranges separated by commas"),
            )
        })?,
    };
    Ok(WebhooksConfig {
        subscriptions,
        targets: crate::webhooks::target::TargetPolicy {
            allow_private: vars.flag("WEBHOOK_ALLOW_PRIVATE_TARGETS", false)?,
            allowed,
        },
        delivery: crate::webhooks::worker::DeliveryConfig {
            max_attempts: vars
                .number("WEBHOOK_MAX_ATTEMPTS", 8, 1)?
                .min(u64::from(u32::MAX)) as u32,
            retry_base: vars.millis("WEBHOOK_RETRY_BASE_MS", 1000, 1)?,
            timeout: vars.millis("WEBHOOK_TIMEOUT_MS", 10_000, 1)?,
            retention: match vars.number("WEBHOOK_LOG_RETENTION_SECS", 30 * 86_400, 0)? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
        },
    })
}

fn mongo_config(vars: &Vars) -> Result<Option<MongoConfig>, ConfigError> {
    let get = |k: &str| vars.get(k);
    let Some(url) = get("MONGO_URL") else {
        return Ok(None);
    };
    if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
        return Err(invalid(
            "MONGO_URL",
            url,
            "a mongodb:// or mongodb+srv:// connection string",
        ));
    }
    let write_concern = match get("MONGO_WRITE_CONCERN") {
        None | Some("majority") => WriteConcern::Majority,
        // `w: 0` would be unacknowledged (and MongoDB rejects it with `j: true`): a
        // client must never get 201 for a write MongoDB did not confirm.
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n >= 1 => WriteConcern::Nodes(n),
            _ => {
                return Err(invalid(
                    "MONGO_WRITE_CONCERN",
                    v,
                    "majority or a number of nodes (1 or more)",
                ))
            }
        },
    };
    let read_concern = match get("MONGO_READ_CONCERN") {
        None => "majority".to_string(),
        Some(v @ ("local" | "majority" | "linearizable" | "available")) => v.to_string(),
        Some(v) => {
            return Err(invalid(
                "MONGO_READ_CONCERN",
                v,
                "local, majority, linearizable or available",
            ))
        }
    };
    Ok(Some(MongoConfig {
        url: url.to_string(),
        database: database_from_url(url).unwrap_or_else(|| "eventTracker".to_string()),
        write_concern,
        read_concern,
    }))
}

/// The database named in the path of a connection string (`mongodb://h:27017/name?opts`).
fn database_from_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let name = path.split(['?', '#']).next()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// An IP address, or a syntactically valid host name (RFC 1123: dot-separated labels of
/// letters, digits and inner hyphens, at most 63 characters each and 253 in all; `_` is
/// allowed too, as in Docker Compose service names). Whether the name resolves is only
/// known when the server binds, which then fails naming API_SERVER_HOST.
fn valid_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
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
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_original_service() {
        let c = Config::from_map(&HashMap::new()).unwrap();
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.port, 3000);
        assert_eq!(c.events_points_path, PathBuf::from("config/events.yaml"));
        assert_eq!(c.sqlite.path, PathBuf::from("data/eventtracker.db"));
        assert_eq!(c.app_env, AppEnv::Development);
        assert_eq!(
            c.sqlite.synchronous,
            Synchronous::Full,
            "durable by default"
        );
        assert_eq!(c.body_limit_bytes, 1024 * 1024);
    }

    #[test]
    fn api_server_host_is_an_ip_address_or_a_host_name() {
        for host in [
            "0.0.0.0",
            "127.0.0.1",
            "::1",
            "::",
            "localhost",
            "api.internal",
            "eventtracker-1.svc.cluster.local.",
            "HOST9",
            "compose_service",
        ] {
            let c = Config::from_map(&map(&[("API_SERVER_HOST", host)])).unwrap();
            assert_eq!(c.host, host);
        }
        for host in [
            "bad host",
            "-lead.example",
            "trail-.example",
            "a..b",
            "http://x",
            "x:3000",
            "[::1]",
            &"a".repeat(64),
        ] {
            let e = Config::from_map(&map(&[("API_SERVER_HOST", host)])).unwrap_err();
            assert_eq!(e.var, "API_SERVER_HOST", "{host}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Config::from_map(&map(&[("API_SERVER_PORT", "70000")])).unwrap_err();
        assert_eq!(e.var, "API_SERVER_PORT");
        let e = Config::from_map(&map(&[("LOG_LEVEL", "loud")])).unwrap_err();
        assert_eq!(e.var, "LOG_LEVEL");
        let e = Config::from_map(&map(&[("NODE_ENV", "staging")])).unwrap_err();
        assert_eq!(e.var, "NODE_ENV");
    }

    #[test]
    fn mongo_database_comes_from_the_url_path() {
        let c = Config::from_map(&map(&[(
            "MONGO_URL",
            "mongodb://db:27017/points?replicaSet=rs0",
        )]))
        .unwrap();
        let m = c.mongo.unwrap();
        assert_eq!(m.database, "points");
        assert_eq!(m.write_concern, WriteConcern::Majority);
        let c = Config::from_map(&map(&[("MONGO_URL", "mongodb://db:27017")])).unwrap();
        assert_eq!(c.mongo.unwrap().database, "eventTracker");
        let e = Config::from_map(&map(&[
            ("MONGO_URL", "mongodb://x/"),
            ("MONGO_WRITE_CONCERN", "all"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "MONGO_WRITE_CONCERN");
        assert_eq!(
            Config::from_map(&map(&[("MONGO_URL", "http://x")]))
                .unwrap_err()
                .var,
            "MONGO_URL"
        );
    }

    fn mongo(extra: &[(&str, &str)]) -> Result<MongoConfig, ConfigError> {
        let mut pairs = vec![("MONGO_URL", "mongodb://db:27017/points")];
        pairs.extend_from_slice(extra);
        Config::from_map(&map(&pairs)).map(|c| c.mongo.expect("MONGO_URL set"))
    }

    #[test]
    fn mongo_write_concern_is_majority_or_a_positive_node_count() {
        assert_eq!(mongo(&[]).unwrap().write_concern, WriteConcern::Majority);
        assert_eq!(
            mongo(&[("MONGO_WRITE_CONCERN", "majority")])
                .unwrap()
                .write_concern,
            WriteConcern::Majority
        );
        for (v, n) in [("1", 1), ("2", 2), ("5", 5)] {
            assert_eq!(
                mongo(&[("MONGO_WRITE_CONCERN", v)]).unwrap().write_concern,
                WriteConcern::Nodes(n),
                "{v}"
            );
        }
        // Empty counts as unset, like every variable.
        assert_eq!(
            mongo(&[("MONGO_WRITE_CONCERN", "")]).unwrap().write_concern,
            WriteConcern::Majority
        );
        for bad in ["0", "-1", "all", "MAJORITY", "1.5", "2 nodes"] {
            let e = mongo(&[("MONGO_WRITE_CONCERN", bad)]).unwrap_err();
            assert_eq!(e.var, "MONGO_WRITE_CONCERN", "{bad:?}");
            assert!(e.to_string().starts_with("MONGO_WRITE_CONCERN: "), "{e}");
        }
    }

    #[test]
    fn mongo_read_concern_accepts_the_four_levels_and_names_itself_otherwise() {
        assert_eq!(mongo(&[]).unwrap().read_concern, "majority");
        for level in ["local", "majority", "linearizable", "available"] {
            assert_eq!(
                mongo(&[("MONGO_READ_CONCERN", level)])
                    .unwrap()
                    .read_concern,
                level
            );
        }
        for bad in ["snapshot", "Majority", "strong", "local,majority"] {
            let e = mongo(&[("MONGO_READ_CONCERN", bad)]).unwrap_err();
            assert_eq!(e.var, "MONGO_READ_CONCERN", "{bad:?}");
            assert!(e.to_string().starts_with("MONGO_READ_CONCERN: "), "{e}");
        }
    }

    #[test]
    fn webhook_variables_are_typed_and_name_themselves() {
        let c = Config::from_map(&HashMap::new()).unwrap();
        assert!(c.webhooks.subscriptions.is_empty());
        assert_eq!(c.webhooks.delivery.max_attempts, 8);
        assert_eq!(
            c.webhooks.delivery.retention,
            Some(std::time::Duration::from_secs(30 * 86_400))
        );
        let keep = map(&[("WEBHOOK_LOG_RETENTION_SECS", "0")]);
        assert_eq!(
            Config::from_map(&keep).unwrap().webhooks.delivery.retention,
            None
        );
        let bad = map(&[("WEBHOOK_LOG_RETENTION_SECS", "a week")]);
        assert_eq!(
            Config::from_map(&bad).unwrap_err().var,
            "WEBHOOK_LOG_RETENTION_SECS"
        );
        for var in [
            "WEBHOOK_MAX_ATTEMPTS",
            "WEBHOOK_RETRY_BASE_MS",
            "WEBHOOK_TIMEOUT_MS",
        ] {
            assert_eq!(Config::from_map(&map(&[(var, "0")])).unwrap_err().var, var);
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("webhooks.yaml");
        std::fs::write(
            &file,
            "webhooks:\n  - url: https://hooks.example.com/et\n    secret: 0123456789abcdef\n    events: [points.changed]\n",
        )
        .unwrap();
        let c = Config::from_map(&map(&[
            ("WEBHOOKS_PATH", file.to_str().unwrap()),
            ("WEBHOOK_RETRY_BASE_MS", "100"),
        ]))
        .unwrap();
        assert_eq!(c.webhooks.subscriptions.len(), 1);
        assert_eq!(c.webhooks.delivery.retry_base.as_millis(), 100);
        std::fs::write(&file, "webhooks:\n  - {url: x, secret: s, events: []}\n").unwrap();
        let e = Config::from_map(&map(&[("WEBHOOKS_PATH", file.to_str().unwrap())])).unwrap_err();
        assert_eq!(e.var, "WEBHOOKS_PATH");
        assert!(e.problem.contains("webhooks[0]"), "{e}");
        let e =
            Config::from_map(&map(&[("WEBHOOKS_PATH", "/nonexistent/hooks.yaml")])).unwrap_err();
        assert_eq!(e.var, "WEBHOOKS_PATH");
    }

    #[test]
    fn webhook_targets_are_public_unless_allowed() {
        let c = Config::from_map(&HashMap::new()).unwrap();
        assert_eq!(c.webhooks.targets, Default::default());
        let loopback: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!c.webhooks.targets.permits(loopback));
        let c = Config::from_map(&map(&[("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")])).unwrap();
        assert!(c.webhooks.targets.permits(loopback));
        let c =
            Config::from_map(&map(&[("WEBHOOK_ALLOWED_TARGETS", "127.0.0.0/8,fd00::/8")])).unwrap();
        assert!(c.webhooks.targets.permits(loopback));
        assert_eq!(c.webhooks.targets.allowed.len(), 2);
        for (var, value) in [
            ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "sometimes"),
            ("WEBHOOK_ALLOWED_TARGETS", "10.0.0.0/8,intranet.local"),
        ] {
            let e = Config::from_map(&map(&[(var, value)])).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
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
        assert_eq!(c.port, 5000);
        assert_eq!(c.log_level, "warn");
        assert_eq!(c.app_env, AppEnv::Test);
        let c = Config::from_sources(
            dir.path(),
            map(&[("APP_ENV", "test"), ("API_SERVER_PORT", "6000")]),
        )
        .unwrap();
        assert_eq!(c.port, 6000);
    }
}
