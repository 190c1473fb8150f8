//! Per-key rate limits, one token bucket per key and role (`RATE_LIMIT_INGEST`,
//! `RATE_LIMIT_READ`, `RATE_LIMIT_SPEND`, `RATE_LIMIT_ADMIN`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::Role;
use crate::config::{invalid, ConfigError, Vars};

/// A token bucket: `per_second` tokens added per second, at most `burst` kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

/// The limit of each role that has one: `RATE` or `RATE,BURST` (a bare rate is its own
/// burst).
pub fn limits_from_vars(vars: &Vars) -> Result<HashMap<Role, RateLimit>, ConfigError> {
    let mut limits = HashMap::new();
    for (var, role) in [
        ("RATE_LIMIT_INGEST", Role::Ingest),
        ("RATE_LIMIT_READ", Role::Read),
        ("RATE_LIMIT_SPEND", Role::Spend),
        ("RATE_LIMIT_ADMIN", Role::Admin),
    ] {
        if let Some(v) = vars.get(var) {
            let (rate, burst) = v.split_once(',').unwrap_or((v, v));
            let parse = |s: &str| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n > 0.0)
            };
            match (parse(rate), parse(burst)) {
                (Some(per_second), Some(burst)) if burst >= 1.0 => {
                    limits.insert(role, RateLimit { per_second, burst });
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
    Ok(limits)
}

/// The buckets of every key, filled as they are first used.
pub(super) struct Buckets {
    limits: HashMap<Role, RateLimit>,
    buckets: Mutex<HashMap<(usize, Role), Bucket>>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Buckets {
    pub fn new(limits: HashMap<Role, RateLimit>) -> Buckets {
        Buckets {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from the bucket of key number `key` for `role`; on refusal,
    /// seconds to wait.
    pub fn take(&self, key: usize, role: Role) -> Result<(), u64> {
        self.take_at(key, role, Instant::now())
    }

    fn take_at(&self, key: usize, role: Role, now: Instant) -> Result<(), u64> {
        let Some(limit) = self.limits.get(&role) else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry((key, role)).or_insert(Bucket {
            tokens: limit.burst,
            last: now,
        });
        b.tokens = (b.tokens
            + now.saturating_duration_since(b.last).as_secs_f64() * limit.per_second)
            .min(limit.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / limit.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pairs: &[(&str, &str)]) -> Result<HashMap<Role, RateLimit>, ConfigError> {
        limits_from_vars(&Vars::new(&crate::config::test_vars(pairs)))
    }

    #[test]
    fn a_rate_with_an_optional_burst_per_role() {
        assert!(limits(&[]).unwrap().is_empty());
        let l = limits(&[
            ("RATE_LIMIT_READ", "100"),
            ("RATE_LIMIT_ADMIN", "0.5, 2"),
            ("RATE_LIMIT_SPEND", "5"),
        ])
        .unwrap();
        assert_eq!(l[&Role::Spend].per_second, 5.0);
        let read = RateLimit {
            per_second: 100.0,
            burst: 100.0,
        };
        assert_eq!(l[&Role::Read], read);
        assert_eq!(l[&Role::Admin].per_second, 0.5);
        assert_eq!(l[&Role::Admin].burst, 2.0);
        assert!(!l.contains_key(&Role::Ingest));
        for (var, bad) in [
            ("RATE_LIMIT_READ", "fast"),
            ("RATE_LIMIT_INGEST", "0"),
            ("RATE_LIMIT_INGEST", "10,0.5"),
            ("RATE_LIMIT_ADMIN", "-1"),
            ("RATE_LIMIT_ADMIN", "inf"),
        ] {
            assert_eq!(limits(&[(var, bad)]).unwrap_err().var, var, "{bad}");
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limit = RateLimit {
            per_second: 2.0,
            burst: 3.0,
        };
        let buckets = Buckets::new(HashMap::from([(Role::Read, limit)]));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(buckets.take_at(0, Role::Read, start), Ok(()));
        }
        assert_eq!(buckets.take_at(0, Role::Read, start), Err(1));
        // Another key, and a role without a limit, have buckets of their own.
        assert_eq!(buckets.take_at(1, Role::Read, start), Ok(()));
        assert_eq!(buckets.take_at(0, Role::Ingest, start), Ok(()));
        let later = start + std::time::Duration::from_millis(500);
        assert_eq!(buckets.take_at(0, Role::Read, later), Ok(()));
        assert_eq!(buckets.take_at(0, Role::Read, later), Err(1));
    }
}
