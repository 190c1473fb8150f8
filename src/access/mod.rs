//! Access control: API keys with roles ([`keys`]), per-key rate limits
//! ([`rate_limit`]) and the middleware that guards each route ([`guard`]), with their
//! settings (`API_KEYS`, `API_KEYS_FILE`, `AUTH_DISABLED`, `PUBLIC_METRICS`,
//! `PUBLIC_OPENAPI`, `RATE_LIMIT_*`). The HTTP router uses it; it knows nothing of
//! HTTP answers beyond [`Refusal`], which `http::error` turns into 401, 403 or 429.

use std::collections::HashMap;

use crate::config::{AppEnv, ConfigError, Vars};

pub mod guard;
pub mod keys;
pub mod rate_limit;

pub use guard::{require, Auth, Refusal};
pub use keys::{key_prefix, ApiKey, Role, Roles, MIN_PRODUCTION_KEY_CHARS};
pub use rate_limit::RateLimit;

use keys::{parse_keys, KeySource};

#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// From `API_KEYS` and `API_KEYS_FILE`; empty means every route is open.
    pub keys: Vec<ApiKey>,
    /// Where keys under [`MIN_PRODUCTION_KEY_CHARS`] were accepted (outside production),
    /// as `API_KEYS entry 2` or `API_KEYS_FILE line 3`, for the start-up warning.
    pub short_keys: Vec<String>,
    /// `PUBLIC_METRICS` (default false): serve /metrics without a key.
    pub public_metrics: bool,
    /// `PUBLIC_OPENAPI` (default true): serve /openapi.json without a key.
    pub public_openapi: bool,
    /// `RATE_LIMIT_INGEST`, `RATE_LIMIT_READ`, `RATE_LIMIT_SPEND`, `RATE_LIMIT_ADMIN`: per
    /// key, per role.
    pub rate_limits: HashMap<Role, RateLimit>,
}

impl AccessConfig {
    /// Production refuses to run without keys (unless `AUTH_DISABLED=true`) and refuses
    /// keys under [`MIN_PRODUCTION_KEY_CHARS`]; elsewhere short keys are listed in
    /// `short_keys` for a warning.
    pub fn from_vars(vars: &Vars, app_env: AppEnv) -> Result<AccessConfig, ConfigError> {
        let disabled = vars.flag("AUTH_DISABLED", false)?;
        let refuse_short = app_env == AppEnv::Production && !disabled;
        let (mut keys, mut short_keys) = match vars.get("API_KEYS") {
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
        if let Some(path) = vars.get("API_KEYS_FILE") {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new("API_KEYS_FILE", format!("cannot read {path}: {e}"))
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
            return Err(ConfigError::new(
                "API_KEYS",
                "no API keys configured with APP_ENV=production; set API_KEYS or API_KEYS_FILE, or AUTH_DISABLED=true to run open on purpose",
            ));
        }
        Ok(AccessConfig {
            keys,
            short_keys,
            public_metrics: vars.flag("PUBLIC_METRICS", false)?,
            public_openapi: vars.flag("PUBLIC_OPENAPI", true)?,
            rate_limits: rate_limit::limits_from_vars(vars)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(pairs: &[(&str, &str)], app_env: AppEnv) -> Result<AccessConfig, ConfigError> {
        AccessConfig::from_vars(&Vars::new(&crate::config::test_vars(pairs)), app_env)
    }

    fn dev(pairs: &[(&str, &str)]) -> Result<AccessConfig, ConfigError> {
        access(pairs, AppEnv::Development)
    }

    fn prod(pairs: &[(&str, &str)]) -> Result<AccessConfig, ConfigError> {
        access(pairs, AppEnv::Production)
    }

    #[test]
    fn api_keys_with_roles_and_production_refuses_to_run_open() {
        let c = dev(&[(
            "API_KEYS",
            "k_ingest_1:ingest, k_read_1:read,k_ops:admin+read+ingest",
        )])
        .unwrap();
        let keys = c.keys;
        assert_eq!(keys.len(), 3);
        assert!(keys[0].roles.has(Role::Ingest) && !keys[0].roles.has(Role::Read));
        assert!(keys[2].roles.has(Role::Admin) && keys[2].roles.has(Role::Ingest));
        assert_eq!(dev(&[("API_KEYS", "k:owner")]).unwrap_err().var, "API_KEYS");
        assert_eq!(prod(&[]).unwrap_err().var, "API_KEYS");
        let open = prod(&[("AUTH_DISABLED", "true")]).unwrap();
        assert!(open.keys.is_empty());
        assert_eq!(
            dev(&[("AUTH_DISABLED", "maybe")]).unwrap_err().var,
            "AUTH_DISABLED"
        );
        assert_eq!(
            dev(&[("RATE_LIMIT_READ", "fast")]).unwrap_err().var,
            "RATE_LIMIT_READ"
        );
        let secret = format!("{:?}", dev(&[("API_KEYS", "supersecret:read")]).unwrap());
        assert!(
            !secret.contains("supersecret"),
            "keys never appear in Debug output"
        );
    }

    #[test]
    fn public_endpoints_are_flags() {
        let c = dev(&[]).unwrap();
        assert!(!c.public_metrics && c.public_openapi);
        let c = dev(&[("PUBLIC_METRICS", "yes"), ("PUBLIC_OPENAPI", "0")]).unwrap();
        assert!(c.public_metrics && !c.public_openapi);
        for var in ["PUBLIC_METRICS", "PUBLIC_OPENAPI"] {
            assert_eq!(dev(&[(var, "on")]).unwrap_err().var, var);
        }
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
        let c = dev(&[
            ("API_KEYS", "k_env:ingest"),
            ("API_KEYS_FILE", file.to_str().unwrap()),
        ])
        .unwrap();
        let keys: Vec<&str> = c.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["k_env", "k_file_read", "k_file_admin"]);
        assert!(c.keys[2].roles.has(Role::Admin));
        let e = dev(&[("API_KEYS_FILE", "/nonexistent/keys")]).unwrap_err();
        assert_eq!(e.var, "API_KEYS_FILE");
    }

    #[test]
    fn production_refuses_short_keys_naming_the_variable_and_never_the_key() {
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
        assert_eq!(c.keys.len(), 1);
        assert!(c.short_keys.is_empty());
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
        assert_eq!(prod(&[("API_KEYS_FILE", path)]).unwrap().keys.len(), 2);
        // Running open on purpose ignores the keys, so their length does not matter.
        let open = prod(&[("API_KEYS", "k:read"), ("AUTH_DISABLED", "true")]).unwrap();
        assert!(open.keys.is_empty() && open.short_keys.is_empty());
    }

    #[test]
    fn short_keys_are_accepted_outside_production_and_listed_for_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "k_file_read:read\n").unwrap();
        for env in [AppEnv::Development, AppEnv::Test, AppEnv::Local] {
            let c = access(
                &[
                    ("API_KEYS", "k_ingest_1:ingest,k_ops_0123456789ab:admin"),
                    ("API_KEYS_FILE", file.to_str().unwrap()),
                ],
                env,
            )
            .unwrap();
            assert_eq!(c.keys.len(), 3, "{env:?}");
            assert_eq!(
                c.short_keys,
                ["API_KEYS entry 1", "API_KEYS_FILE line 1"],
                "{env:?}"
            );
        }
        let c = dev(&[("API_KEYS", "k_ops_0123456789ab:admin")]).unwrap();
        assert!(c.short_keys.is_empty());
    }

    #[test]
    fn the_guard_refuses_missing_unknown_and_unauthorised_keys_and_limits_rates() {
        let c = dev(&[
            (
                "API_KEYS",
                "k_reader_0123456789:read,k_ingest_0123456789:ingest",
            ),
            ("RATE_LIMIT_INGEST", "1,1"),
        ])
        .unwrap();
        let auth = Auth::new(&c);
        assert!(!auth.is_open());
        assert_eq!(auth.check(None, Role::Read), Err(Refusal::MissingKey));
        assert_eq!(
            auth.check(Some("k_nobody_0123456789"), Role::Read),
            Err(Refusal::UnknownKey)
        );
        assert_eq!(
            auth.check(Some("k_reader_0123456789"), Role::Admin),
            Err(Refusal::LacksRole(Role::Admin))
        );
        assert_eq!(auth.check(Some("k_reader_0123456789"), Role::Read), Ok(()));
        let ingest = Some("k_ingest_0123456789");
        assert_eq!(auth.check(ingest, Role::Ingest), Ok(()));
        assert_eq!(
            auth.check(ingest, Role::Ingest),
            Err(Refusal::RateLimited {
                retry_after_secs: 1
            })
        );
        // Without keys every route is open.
        assert_eq!(
            Auth::new(&dev(&[]).unwrap()).check(None, Role::Admin),
            Ok(())
        );
    }
}
