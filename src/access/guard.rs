//! The middleware that guards routes: finds the key a request presents, checks it holds
//! the route's role, and takes a token from its rate limit.
//!
//! Keys are compared through their SHA-256 digests in constant time, so neither the
//! content nor the length of a configured key leaks through response timing.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::rate_limit::Buckets;
use super::{key_prefix, AccessConfig, Role, Roles, MIN_PRODUCTION_KEY_CHARS};

struct Key {
    digest: [u8; 32],
    roles: Roles,
    /// What logs may show of the key.
    prefix: String,
}

pub struct Auth {
    keys: Vec<Key>,
    buckets: Buckets,
}

/// Why a request was refused. The HTTP answer of each (401, 403, 429) is given by
/// `http::error`, which turns it into an `ApiError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MissingKey,
    UnknownKey,
    /// The key is known but lacks this role.
    LacksRole(Role),
    RateLimited {
        retry_after_secs: u64,
    },
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Auth {
    pub fn new(config: &AccessConfig) -> Auth {
        // Accepted only outside production (the configuration refuses them there): said
        // once at start, so a development set-up copied to production is no surprise.
        if !config.short_keys.is_empty() {
            tracing::warn!(
                keys = %config.short_keys.join(", "),
                "API keys shorter than {} characters: accepted outside production, refused with APP_ENV=production",
                MIN_PRODUCTION_KEY_CHARS
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
            buckets: Buckets::new(config.rate_limits.clone()),
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

    /// Whether a request presenting `presented` may use a route needing `role`.
    pub fn check(&self, presented: Option<&str>, role: Role) -> Result<(), Refusal> {
        if self.is_open() {
            return Ok(());
        }
        let presented = presented.ok_or(Refusal::MissingKey)?;
        let Some(i) = self.find(presented) else {
            tracing::warn!(key = %key_prefix(presented), "unknown API key");
            return Err(Refusal::UnknownKey);
        };
        let key = &self.keys[i];
        if !key.roles.has(role) {
            tracing::warn!(key = %key.prefix, role = role.as_str(), "API key lacks the role");
            return Err(Refusal::LacksRole(role));
        }
        self.buckets.take(i, role).map_err(|retry_after_secs| {
            metrics::counter!("rate_limited_total", "role" => role.as_str()).increment(1);
            Refusal::RateLimited { retry_after_secs }
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
) -> Result<Response, Refusal> {
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
}
