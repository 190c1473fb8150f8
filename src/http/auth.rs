//! API keys with roles, and per-key rate limits.
//!
//! Keys are compared through their SHA-256 digests in constant time, so neither the
//! content nor the length of a configured key leaks through response timing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::{AuthConfig, RateLimit, Role, Roles};

struct Key {
    digest: [u8; 32],
    roles: Roles,
    /// What logs may show of the key.
    prefix: String,
}

pub struct Auth {
    keys: Vec<Key>,
    limits: HashMap<Role, RateLimit>,
    buckets: Mutex<HashMap<(usize, Role), Bucket>>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The first characters of a key, enough to tell keys apart in logs, never enough to use:
/// four of a key of 16 characters or more, a quarter of a shorter one, none under 8.
pub fn key_prefix(key: &str) -> String {
    let n = key.chars().count();
    let shown = if n < 8 { 0 } else { (n / 4).min(4) };
    let shown: String = key.chars().take(shown).collect();
    format!("{shown}…")
}

impl Auth {
    pub fn new(config: &AuthConfig) -> Auth {
        // Accepted only outside production (the configuration refuses them there): said
        // once at start, so a development set-up copied to production is no surprise.
        if !config.short_keys.is_empty() {
            tracing::warn!(
                keys = %config.short_keys.join(", "),
                "API keys shorter than {} characters: accepted outside production, refused with APP_ENV=production",
                crate::config::MIN_PRODUCTION_KEY_CHARS
            );
        }
        Auth {
            keys: config
                .keys
                .iter()
                .map(|k| Key {
                    digest: digest(&k.key),
                    roles: k.roles,
                    prefix: key_prefix(&k.key),
                })
                .collect(),
            limits: config.rate_limits.clone(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// No keys configured: every route is open.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    fn find(&self, presented: &str) -> Option<usize> {
        let d = digest(presented);
        // Check every key, whatever matches first, so timing says nothing about which.
        let mut found = None;
        for (i, k) in self.keys.iter().enumerate() {
            if bool::from(k.digest.ct_eq(&d)) {
                found = Some(i);
            }
        }
        found
    }

    /// Takes one token from the key's bucket for `role`; on refusal, seconds to wait.
    fn take_token(&self, key: usize, role: Role) -> Result<(), u64> {
        let Some(limit) = self.limits.get(&role) else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let b = buckets.entry((key, role)).or_insert(Bucket {
            tokens: limit.burst,
            last: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * limit.per_second)
            .min(limit.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / limit.per_second).ceil().max(1.0) as u64)
        }
    }

    pub fn check(&self, presented: Option<&str>, role: Role) -> Result<(), ApiError> {
        if self.is_open() {
            return Ok(());
        }
        let presented = presented.ok_or(ApiError::Unauthorized("Missing API key"))?;
        let Some(i) = self.find(presented) else {
            tracing::warn!(key = %key_prefix(presented), "unknown API key");
            return Err(ApiError::Unauthorized("Unknown API key"));
        };
        let key = &self.keys[i];
        if !key.roles.has(role) {
            tracing::warn!(key = %key.prefix, role = role.as_str(), "API key lacks the role");
            return Err(ApiError::Forbidden(role.as_str()));
        }
        self.take_token(i, role).map_err(|retry_after_secs| {
            metrics::counter!("rate_limited_total", "role" => role.as_str()).increment(1);
            ApiError::TooManyRequests { retry_after_secs }
        })
    }
}

/// The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
fn presented_key(req: &Request) -> Option<&str> {
    let headers = req.headers();
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
}

/// The credentials of a `Bearer` authorization; the scheme is case-insensitive (RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware: lets the request through only with a key holding `role`.
pub async fn require(
    State((auth, role)): State<(Arc<Auth>, Role)>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    auth.check(presented_key(&req), role)?;
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer k1",
            "bearer k1",
            "BEARER k1",
            "bEaReR   k1 ",
            "Bearer\tk1",
        ] {
            assert_eq!(bearer_token(v), Some("k1"), "{v:?}");
        }
        for v in ["Basic k1", "Bearerk1", "Bearer", "Bearer   ", "k1"] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }

    #[test]
    fn logged_prefixes_never_reveal_much_of_a_key() {
        assert_eq!(key_prefix("k_ingest_secret_1234"), "k_in…");
        assert_eq!(key_prefix("0123456789abcdef"), "0123…");
        assert_eq!(key_prefix("0123456789ab"), "012…");
        assert_eq!(key_prefix("01234567"), "01…");
        for short in ["", "a", "abcd", "abcdefg", "ééééééé"] {
            assert_eq!(key_prefix(short), "…", "{short:?}");
        }
        // Multi-byte characters count as characters, never split.
        assert_eq!(key_prefix("éééééééééééééééééééé"), "éééé…");
    }
}
