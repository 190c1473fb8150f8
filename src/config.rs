//! Configuration: read once at start from the environment (and optional env files),
//! parsed into typed fields. Any bad value stops start-up naming the variable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    pub auth: AuthConfig,
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

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Ingest,
    Read,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    ingest: bool,
    read: bool,
    admin: bool,
}

impl Roles {
    pub fn has(self, role: Role) -> bool {
        match role {
            Role::Ingest => self.ingest,
            Role::Read => self.read,
            Role::Admin => self.admin,
        }
    }

    fn add(&mut self, role: Role) {
        match role {
            Role::Ingest => self.ingest = true,
            Role::Read => self.read = true,
            Role::Admin => self.admin = true,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyConfig {
    pub key: String,
    pub roles: Roles,
}

// Keys are secrets: Debug shows only their start.
impl std::fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("key", &crate::http::auth::key_prefix(&self.key))
            .field("roles", &self.roles)
            .finish()
    }
}

/// A token bucket: `per_second` tokens added per second, at most `burst` kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// From `API_KEYS` and `API_KEYS_FILE`; empty means every route is open.
    pub keys: Vec<ApiKeyConfig>,
    /// Where keys under [`MIN_PRODUCTION_KEY_CHARS`] were accepted (outside production),
    /// as `API_KEYS entry 2` or `API_KEYS_FILE line 3`, for the start-up warning.
    pub short_keys: Vec<String>,
    /// `PUBLIC_METRICS` (default false): serve /metrics without a key.
    pub public_metrics: bool,
    /// `PUBLIC_OPENAPI` (default true): serve /openapi.json without a key.
    pub public_openapi: bool,
    /// `RATE_LIMIT_INGEST`, `RATE_LIMIT_READ`, `RATE_LIMIT_ADMIN`: per key, per role.
    pub rate_limits: HashMap<Role, RateLimit>,
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

fn invalid(var: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError {
        var: var.to_string(),
        problem: format!("invalid value {value:?}: expected {expected}"),
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
        let get = |k: &str| vars.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());

        let app_env = match app_env_name(vars).as_deref() {
            None | Some("development") => AppEnv::Development,
            Some("production") => AppEnv::Production,
            Some("test") => AppEnv::Test,
            Some("local") => AppEnv::Local,
            Some(other) => {
                let var = if get("APP_ENV").is_some() {
                    "APP_ENV"
                } else {
                    "NODE_ENV"
                };
                return Err(invalid(
                    var,
                    other,
                    "one of development, production, test, local",
                ));
            }
        };

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
            rules_reload_interval: match number(&get, "RULES_RELOAD_INTERVAL_SECS", 2, 0)? {
                0 => None,
                secs => Some(std::time::Duration::from_secs(secs)),
            },
            app_env,
            sqlite: SqliteConfig {
                path: PathBuf::from(get("SQLITE_PATH").unwrap_or("data/eventtracker.db")),
                synchronous,
            },
            body_limit_bytes,
            mongo: mongo_config(&get)?,
            limits: ServerLimits {
                request_timeout: std::time::Duration::from_secs(number(
                    &get,
                    "REQUEST_TIMEOUT_SECS",
                    30,
                    1,
                )?),
                max_connections: number(&get, "MAX_CONNECTIONS", 1024, 1)? as usize,
                max_header_bytes: number(&get, "MAX_HEADER_BYTES", 16 * 1024, 1024)? as usize,
                header_read_timeout: std::time::Duration::from_secs(number(
                    &get,
                    "HEADER_READ_TIMEOUT_SECS",
                    5,
                    1,
                )?),
                keep_alive_timeout: std::time::Duration::from_secs(number(
                    &get,
                    "KEEP_ALIVE_TIMEOUT_SECS",
                    60,
                    1,
                )?),
            },
            auth: auth_config(&get, app_env)?,
            webhooks: webhooks_config(&get)?,
            redis: get("REDIS_URL").map(|url| RedisConfig {
                url: url.to_string(),
                key_prefix: get("REDIS_KEY_PREFIX").unwrap_or("et:").to_string(),
            }),
        })
    }
}

fn webhooks_config<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<WebhooksConfig, ConfigError> {
    let subscriptions = match get("WEBHOOKS_PATH") {
        None => Vec::new(),
        Some(path) => {
            let problem = |p: String| ConfigError {
                var: "WEBHOOKS_PATH".into(),
                problem: format!("{path}: {p}"),
            };
            let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
            crate::webhooks::parse_file(&text).map_err(problem)?
        }
    };
    let ms = |var, default| number(get, var, default, 1).map(std::time::Duration::from_millis);
    let allowed = match get("WEBHOOK_ALLOWED_TARGETS") {
        None => Vec::new(),
        Some(v) => crate::webhooks::target::parse_allowed(v).map_err(|p| ConfigError {
            var: "WEBHOOK_ALLOWED_TARGETS".into(),
            problem: format!("{p}: expected addresses or CIDR ranges separated by commas"),
        })?,
    };
    Ok(WebhooksConfig {
        subscriptions,
        targets: crate::webhooks::target::TargetPolicy {
            allow_private: flag(get, "WEBHOOK_ALLOW_PRIVATE_TARGETS", false)?,
            allowed,
        },
        delivery: crate::webhooks::worker::DeliveryConfig {
            max_attempts: number(get, "WEBHOOK_MAX_ATTEMPTS", 8, 1)?.min(u64::from(u32::MAX))
                as u32,
            retry_base: ms("WEBHOOK_RETRY_BASE_MS", 1000)?,
            timeout: ms("WEBHOOK_TIMEOUT_MS", 10_000)?,
            retention: match number(get, "WEBHOOK_LOG_RETENTION_SECS", 30 * 86_400, 0)? {
                0 => None,
                secs => Some(std::time::Duration::from_secs(secs)),
            },
        },
    })
}

fn mongo_config<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<MongoConfig>, ConfigError> {
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

fn number<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    var: &str,
    default: u64,
    min: u64,
) -> Result<u64, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= min)
            .ok_or_else(|| invalid(var, v, &format!("a whole number, at least {min}"))),
    }
}

fn flag<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    var: &str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(var).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(invalid(var, other, "true or false")),
    }
}

/// The fewest characters an API key may have with `APP_ENV=production`: 16 random
/// characters are beyond guessing, while shorter keys are too often words, names or the
/// placeholders of an example (outside production they are accepted, with a warning).
pub const MIN_PRODUCTION_KEY_CHARS: usize = 16;

/// How one parse of API keys is judged and reported.
struct KeySource<'a> {
    /// `API_KEYS` or `API_KEYS_FILE`, named in every error.
    var: &'a str,
    /// What separates entries: `,` in the variable, `\n` in the file.
    split: char,
    /// How an entry's position is told: `entry` (in the variable) or `line` (the file).
    unit: &'a str,
    /// Refuse keys under [`MIN_PRODUCTION_KEY_CHARS`] (production).
    refuse_short: bool,
}

/// Parses `KEY:ROLE[+ROLE...]` entries separated by commas (API_KEYS) or lines (the file).
/// Returns the keys and where each key too short for production was accepted.
fn parse_keys(
    source: &KeySource,
    text: &str,
) -> Result<(Vec<ApiKeyConfig>, Vec<String>), ConfigError> {
    let var = source.var;
    let mut keys = Vec::new();
    let mut short = Vec::new();
    for (index, entry) in text.split(source.split).map(str::trim).enumerate() {
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        // Never echo a whole entry: it holds a secret.
        let shown = crate::http::auth::key_prefix(entry);
        let bad = |problem: &str| ConfigError {
            var: var.to_string(),
            problem: format!("entry starting {shown:?}: {problem}"),
        };
        let (key, roles_text) = entry
            .rsplit_once(':')
            .ok_or_else(|| bad("expected KEY:ROLE[+ROLE...]"))?;
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(bad("the key must be non-empty without spaces"));
        }
        let mut roles = Roles::default();
        for r in roles_text.split('+') {
            roles
                .add(Role::parse(r.trim()).ok_or_else(|| bad("roles are ingest, read and admin"))?);
        }
        let chars = key.chars().count();
        if chars < MIN_PRODUCTION_KEY_CHARS {
            // Told by position and length only: not even the start of a key that is
            // refused, since a short key's first characters are much of it.
            let place = format!("{} {}", source.unit, index + 1);
            if source.refuse_short {
                return Err(ConfigError {
                    var: var.to_string(),
                    problem: format!(
                        "{place}: the key has {chars} characters; with APP_ENV=production every key needs at least {MIN_PRODUCTION_KEY_CHARS} (a random one: openssl rand -hex 24)"
                    ),
                });
            }
            short.push(format!("{var} {place}"));
        }
        keys.push(ApiKeyConfig {
            key: key.to_string(),
            roles,
        });
    }
    Ok((keys, short))
}

fn auth_config<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    app_env: AppEnv,
) -> Result<AuthConfig, ConfigError> {
    let disabled = flag(get, "AUTH_DISABLED", false)?;
    let refuse_short = app_env == AppEnv::Production && !disabled;
    let (mut keys, mut short_keys) = match get("API_KEYS") {
        Some(v) => parse_keys(
            &KeySource {
                var: "API_KEYS",
                split: ',',
                unit: "entry",
                refuse_short,
            },
            v,
        )?,
        None => (Vec::new(), Vec::new()),
    };
    if let Some(path) = get("API_KEYS_FILE") {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            var: "API_KEYS_FILE".into(),
            problem: format!("cannot read {path}: {e}"),
        })?;
        let source = KeySource {
            var: "API_KEYS_FILE",
            split: '\n',
            unit: "line",
            refuse_short,
        };
        let (more, short) = parse_keys(&source, &text)?;
        keys.extend(more);
        short_keys.extend(short);
    }
    if disabled {
        keys.clear();
        short_keys.clear();
    } else if keys.is_empty() && app_env == AppEnv::Production {
        return Err(ConfigError {
            var: "API_KEYS".into(),
            problem: "no API keys configured with APP_ENV=production; set API_KEYS or API_KEYS_FILE, or AUTH_DISABLED=true to run open on purpose".into(),
        });
    }
    let mut rate_limits = HashMap::new();
    for (var, role) in [
        ("RATE_LIMIT_INGEST", Role::Ingest),
        ("RATE_LIMIT_READ", Role::Read),
        ("RATE_LIMIT_ADMIN", Role::Admin),
    ] {
        if let Some(v) = get(var) {
            let (rate, burst) = v.split_once(',').unwrap_or((v, v));
            let parse = |s: &str| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n > 0.0)
            };
            match (parse(rate), parse(burst)) {
                (Some(per_second), Some(burst)) if burst >= 1.0 => {
                    rate_limits.insert(role, RateLimit { per_second, burst });
                }
                _ => {
                    return Err(invalid(
                        var,
                        v,
                        "requests per second, optionally ',burst' (e.g. 100 or 100,200)",
                    ))
                }
            }
        }
    }
    Ok(AuthConfig {
        keys,
        short_keys,
        public_metrics: flag(get, "PUBLIC_METRICS", false)?,
        public_openapi: flag(get, "PUBLIC_OPENAPI", true)?,
        rate_limits,
    })
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
    fn api_keys_with_roles_and_production_refuses_to_run_open() {
        let c = Config::from_map(&map(&[(
            "API_KEYS",
            "k_ingest_1:ingest, k_read_1:read,k_ops:admin+read+ingest",
        )]))
        .unwrap();
        let keys = c.auth.keys;
        assert_eq!(keys.len(), 3);
        assert!(keys[0].roles.has(Role::Ingest) && !keys[0].roles.has(Role::Read));
        assert!(keys[2].roles.has(Role::Admin) && keys[2].roles.has(Role::Ingest));
        assert_eq!(
            Config::from_map(&map(&[("API_KEYS", "k:owner")]))
                .unwrap_err()
                .var,
            "API_KEYS"
        );
        let e = Config::from_map(&map(&[("APP_ENV", "production")])).unwrap_err();
        assert_eq!(e.var, "API_KEYS");
        let open = Config::from_map(&map(&[
            ("APP_ENV", "production"),
            ("AUTH_DISABLED", "true"),
        ]))
        .unwrap();
        assert!(open.auth.keys.is_empty());
        let e = Config::from_map(&map(&[("RATE_LIMIT_READ", "fast")])).unwrap_err();
        assert_eq!(e.var, "RATE_LIMIT_READ");
        let secret = format!(
            "{:?}",
            Config::from_map(&map(&[("API_KEYS", "supersecret:read")])).unwrap()
        );
        assert!(
            !secret.contains("supersecret"),
            "keys never appear in Debug output"
        );
    }

    #[test]
    fn api_keys_file_holds_one_entry_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(
            &file,
            "# ops keys\nk_file_read:read\n\nk_file_admin:admin+read\n",
        )
        .unwrap();
        let c = Config::from_map(&map(&[
            ("API_KEYS", "k_env:ingest"),
            ("API_KEYS_FILE", file.to_str().unwrap()),
        ]))
        .unwrap();
        let keys: Vec<&str> = c.auth.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["k_env", "k_file_read", "k_file_admin"]);
        assert!(c.auth.keys[2].roles.has(Role::Admin));
        let e = Config::from_map(&map(&[("API_KEYS_FILE", "/nonexistent/keys")])).unwrap_err();
        assert_eq!(e.var, "API_KEYS_FILE");
    }

    #[test]
    fn production_refuses_short_keys_naming_the_variable_and_never_the_key() {
        let prod = |pairs: &[(&str, &str)]| {
            let mut all = vec![("APP_ENV", "production")];
            all.extend_from_slice(pairs);
            Config::from_map(&map(&all))
        };
        let long = "k_ingest_0123456789abcdef";
        let e = prod(&[("API_KEYS", "change-me-read:read")]).unwrap_err();
        assert_eq!(e.var, "API_KEYS");
        assert!(e.problem.contains("entry 1"), "{e}");
        assert!(
            e.problem.contains("14 characters")
                && e.problem.contains("16")
                && !e.problem.contains("change"),
            "{e}"
        );
        let e = prod(&[("API_KEYS", &format!("{long}:ingest, s3cr3t_k3y:read"))]).unwrap_err();
        assert_eq!(e.var, "API_KEYS");
        assert!(e.problem.contains("entry 2"), "{e}");
        for secret in ["s3cr3t_k3y", "s3c", "change-me"] {
            assert!(!e.to_string().contains(secret), "{secret} in {e}");
        }
        // The alias counts as production too.
        let e = Config::from_map(&map(&[("NODE_ENV", "production"), ("API_KEYS", "k:read")]))
            .unwrap_err();
        assert_eq!(e.var, "API_KEYS");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, format!("# ops\n{long}:read\nshort_admin_k:admin\n")).unwrap();
        let path = file.to_str().unwrap();
        let e = prod(&[("API_KEYS_FILE", path)]).unwrap_err();
        assert_eq!(e.var, "API_KEYS_FILE");
        assert!(e.problem.contains("line 3"), "{e}");
        assert!(!e.to_string().contains("short_adm"), "{e}");
        // The file is judged even when API_KEYS holds good keys.
        let e = prod(&[
            ("API_KEYS", &format!("{long}:read")),
            ("API_KEYS_FILE", path),
        ])
        .unwrap_err();
        assert_eq!(e.var, "API_KEYS_FILE");

        // 16 characters are enough, counted as characters, not bytes.
        let sixteen = "0123456789abcdef";
        let c = prod(&[("API_KEYS", &format!("{sixteen}:read"))]).unwrap();
        assert_eq!(c.auth.keys.len(), 1);
        assert!(c.auth.short_keys.is_empty());
        assert_eq!(
            prod(&[("API_KEYS", "0123456789abcde:read")])
                .unwrap_err()
                .var,
            "API_KEYS"
        );
        let accents = "é".repeat(15);
        assert_eq!(accents.len(), 30, "30 bytes, 15 characters");
        assert_eq!(
            prod(&[("API_KEYS", &format!("{accents}:read"))])
                .unwrap_err()
                .var,
            "API_KEYS"
        );
        std::fs::write(&file, format!("{long}:read\n{sixteen}:admin\n")).unwrap();
        assert_eq!(prod(&[("API_KEYS_FILE", path)]).unwrap().auth.keys.len(), 2);
        // Running open on purpose ignores the keys, so their length does not matter.
        let open = prod(&[("API_KEYS", "k:read"), ("AUTH_DISABLED", "true")]).unwrap();
        assert!(open.auth.keys.is_empty() && open.auth.short_keys.is_empty());
    }

    #[test]
    fn short_keys_are_accepted_outside_production_and_listed_for_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "k_file_read:read\n").unwrap();
        for env in ["development", "test", "local"] {
            let c = Config::from_map(&map(&[
                ("APP_ENV", env),
                ("API_KEYS", "k_ingest_1:ingest,k_ops_0123456789ab:admin"),
                ("API_KEYS_FILE", file.to_str().unwrap()),
            ]))
            .unwrap();
            assert_eq!(c.auth.keys.len(), 3, "{env}");
            assert_eq!(
                c.auth.short_keys,
                ["API_KEYS entry 1", "API_KEYS_FILE line 1"],
                "{env}"
            );
        }
        let c = Config::from_map(&map(&[("API_KEYS", "k_ops_0123456789ab:admin")])).unwrap();
        assert!(c.auth.short_keys.is_empty());
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
