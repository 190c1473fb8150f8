//! This instance's trust in Redis. Any error makes it `Suspect`: reads go to the store
//! and writes stop talking to Redis, until the maintainer reaches Redis again and, before
//! trusting it, invalidates the cache (another instance's write, or one of ours, may
//! have missed it meanwhile).

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

use super::commands::CacheError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Trust {
    /// Not yet checked: the first probe verifies that the cache is Redis's own.
    Starting = 0,
    /// Redis failed; nothing is read from it or written to it.
    Suspect = 1,
    /// Reachable again, invalidating before reads may use it.
    Recovering = 2,
    Trusted = 3,
}

pub struct Health {
    trust: AtomicU8,
    /// Wakes the maintainer early, after an error.
    pub wake: Notify,
}

impl Health {
    pub fn new() -> Health {
        Health {
            trust: AtomicU8::new(Trust::Starting as u8),
            wake: Notify::new(),
        }
    }

    pub fn trust(&self) -> Trust {
        match self.trust.load(Ordering::SeqCst) {
            0 => Trust::Starting,
            1 => Trust::Suspect,
            2 => Trust::Recovering,
            _ => Trust::Trusted,
        }
    }

    /// Reads may be answered from Redis.
    pub fn serving(&self) -> bool {
        self.trust() == Trust::Trusted
    }

    /// Writes announce themselves and report to Redis.
    pub fn announcing(&self) -> bool {
        self.trust() != Trust::Suspect
    }

    pub fn failed(&self, op: &'static str, error: &CacheError) {
        metrics::counter!("cache_errors_total", "op" => op).increment(1);
        let before = self.trust.swap(Trust::Suspect as u8, Ordering::SeqCst);
        if before != Trust::Suspect as u8 {
            tracing::warn!(op, error = %error, "redis cache failed; serving from the store until it is back and rebuilt");
        } else {
            tracing::debug!(op, error = %error, "redis cache still failing");
        }
        self.wake.notify_one();
    }

    /// Moves `from` to `to` unless something else changed the state meanwhile (an error
    /// during a recovery must win).
    pub fn advance(&self, from: Trust, to: Trust) -> bool {
        self.trust
            .compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}
