//! The delivery worker: one task that sends due deliveries and records each attempt.
//!
//! Delivery is at-least-once: a delivery is marked delivered only after a 2xx, so a
//! crash or stop between sending and recording sends it again after the restart (with
//! the same id and body; receivers drop repeats by id). It runs apart from ingestion,
//! which only queues rows, so a slow or failing receiver never slows writes.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use super::target::{self, CheckedResolver, TargetPolicy};
use super::{sign, standard, AttemptResult, DueDelivery};
use crate::config::{ConfigError, Vars};
use crate::store::Store;

/// How deliveries are sent and retried (`WEBHOOK_*` variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// `WEBHOOK_MAX_ATTEMPTS` (default 8): attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// `WEBHOOK_RETRY_BASE_MS` (default 1000): the wait after the first failed attempt;
    /// it doubles with each further one (capped at [`MAX_RETRY_DELAY`]), with jitter.
    pub retry_base: Duration,
    /// `WEBHOOK_TIMEOUT_MS` (default 10000): a receiver slower than this failed the attempt.
    pub timeout: Duration,
    /// `WEBHOOK_LOG_RETENTION_SECS` (default 30 days; 0 keeps everything): delivered and
    /// failed deliveries last updated longer ago than this leave the log.
    pub retention: Option<Duration>,
}

impl DeliveryConfig {
    pub fn from_vars(vars: &Vars) -> Result<DeliveryConfig, ConfigError> {
        Ok(DeliveryConfig {
            max_attempts: vars
                .number("WEBHOOK_MAX_ATTEMPTS", 8, 1)?
                .min(u64::from(u32::MAX)) as u32,
            retry_base: vars.millis("WEBHOOK_RETRY_BASE_MS", 1000, 1)?,
            timeout: vars.millis("WEBHOOK_TIMEOUT_MS", 10_000, 1)?,
            retention: match vars.number("WEBHOOK_LOG_RETENTION_SECS", 30 * 86_400, 0)? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
        })
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 8,
            retry_base: Duration::from_millis(1000),
            timeout: Duration::from_millis(10_000),
            retention: Some(Duration::from_secs(30 * 86_400)),
        }
    }
}

pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
/// How often the queue is looked at when it had nothing due.
const POLL: Duration = Duration::from_millis(200);
/// Deliveries claimed per look, and sent at once (each to a different user's queue).
const BATCH: u32 = 64;
const CONCURRENCY: usize = 16;

pub struct Worker {
    store: Store,
    client: reqwest::Client,
    config: DeliveryConfig,
    targets: Arc<TargetPolicy>,
    progress: watch::Sender<Progress>,
}

/// How far this worker has got, counted as each pass over the queue and each prune of
/// the log starts and ends. Per worker, unlike the metrics (one recorder per process), so
/// a test can wait for a pass that started after some moment and know that what was due
/// then has been attempted and recorded, instead of sleeping and hoping it has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub passes_started: u64,
    pub passes_done: u64,
    pub prunes_started: u64,
    pub prunes_done: u64,
}

fn now_ms() -> i64 {
    // Wall time, not the app's clock: retries wait real time, and receivers check the
    // signed timestamp against their own clock.
    chrono::Utc::now().timestamp_millis()
}

impl Worker {
    pub fn new(
        store: Store,
        config: DeliveryConfig,
        targets: Arc<TargetPolicy>,
    ) -> anyhow::Result<Worker> {
        let client = reqwest::Client::builder()
            // A redirect is an answer the subscription's owner should fix, not follow
            // (and following it would go wherever the receiver says, unchecked).
            .redirect(reqwest::redirect::Policy::none())
            // Names resolve to checked addresses only, and the connection goes to one
            // of them: see `target`.
            .dns_resolver(Arc::new(CheckedResolver::new(targets.clone())))
            // A proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) would resolve and connect on
            // its own, past the check.
            .no_proxy()
            .user_agent(concat!("EventTracker-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Worker {
            store,
            client,
            config,
            targets,
            progress: watch::Sender::new(Progress::default()),
        })
    }

    /// Sends due deliveries until aborted. Whatever is in flight when it is aborted stays
    /// pending and is sent again.
    pub async fn run(self: Arc<Self>) {
        let mut next_prune = tokio::time::Instant::now();
        loop {
            if let Some(retention) = self.config.retention {
                if tokio::time::Instant::now() >= next_prune {
                    self.prune_once().await;
                    next_prune = tokio::time::Instant::now() + prune_every(retention);
                }
            }
            // Straight on while there is work; a pause once the queue had nothing due.
            if self.run_once().await == 0 {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// One pass over the queue, the step [`Worker::run`] repeats: claims up to `BATCH`
    /// due deliveries, attempts them (`CONCURRENCY` at once) and records each attempt.
    /// Returns how many were attempted. A pass beside the running loop may send a
    /// delivery the loop has in flight again on a store without claims (SQLite), which
    /// at-least-once allows but a test counting requests would see.
    pub async fn run_once(&self) -> usize {
        self.progress.send_modify(|p| p.passes_started += 1);
        let attempted = match self
            .store
            .webhooks
            .due_deliveries(now_ms(), BATCH, self.claim_ms())
            .await
        {
            Ok(due) => {
                let n = due.len();
                futures_util::stream::iter(due)
                    .for_each_concurrent(CONCURRENCY, |d| self.attempt(d))
                    .await;
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the webhook queue");
                0
            }
        };
        self.progress.send_modify(|p| p.passes_done += 1);
        attempted
    }

    /// Follows [`Progress`] as the worker's passes and prunes start and end.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// How long the deliveries of one poll stay claimed (see `Store::due_deliveries`):
    /// the last of a batch is attempted after `BATCH / CONCURRENCY` rounds of attempts
    /// at most, each bounded by the timeout, plus a margin for recording them.
    fn claim_ms(&self) -> i64 {
        let rounds = BATCH.div_ceil(CONCURRENCY as u32);
        let attempts = self.config.timeout * rounds;
        i64::try_from(attempts.as_millis()).unwrap_or(i64::MAX / 2) + 5_000
    }

    /// Drops delivered and failed deliveries older than the retention from the log, the
    /// step [`Worker::run`] takes every `prune_every(retention)`. Returns how many went;
    /// `None` without a retention (`WEBHOOK_LOG_RETENTION_SECS=0`) or when the store
    /// failed.
    pub async fn prune_once(&self) -> Option<u64> {
        let retention = self.config.retention?;
        self.progress.send_modify(|p| p.prunes_started += 1);
        let keep = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let pruned = match self
            .store
            .webhooks
            .prune_deliveries(now_ms().saturating_sub(keep))
            .await
        {
            Ok(n) => {
                if n > 0 {
                    metrics::counter!("webhook_deliveries_pruned_total").increment(n);
                    tracing::info!(deliveries = n, "pruned the webhook delivery log");
                }
                Some(n)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune the webhook delivery log");
                None
            }
        };
        self.progress.send_modify(|p| p.prunes_done += 1);
        pruned
    }

    async fn attempt(&self, due: DueDelivery) {
        let d = &due.delivery;
        let result = self.send(&due).await;
        let label = match &result {
            AttemptResult::Delivered { .. } => "delivered",
            AttemptResult::Retry { .. } => "retry",
            AttemptResult::Failed { .. } => "failed",
        };
        metrics::counter!("webhook_attempts_total", "result" => label).increment(1);
        if let AttemptResult::Failed { error, .. } = &result {
            tracing::warn!(delivery = %d.id, subscription = %d.subscription_id, error, "webhook delivery failed for good");
        }
        if let Err(e) = self
            .store
            .webhooks
            .record_attempt(&d.id, result, now_ms())
            .await
        {
            // Left pending: it is sent again, which at-least-once allows.
            tracing::warn!(delivery = %d.id, error = %e, "cannot record a webhook attempt");
        }
    }

    /// One attempt, unless the target is refused. A refusal records only
    /// [`target::REFUSED`]: no status, no address, nothing of what answers there.
    async fn send(&self, due: &DueDelivery) -> AttemptResult {
        let d = &due.delivery;
        // An address in the URL is connected to without a resolver, so it is checked
        // here. It cannot change without a new registration: no retry.
        let literal = reqwest::Url::parse(&due.url)
            .ok()
            .and_then(|u| target::literal_host(&u));
        if literal.is_some_and(|ip| !self.targets.permits(ip)) {
            tracing::warn!(delivery = %d.id, subscription = %d.subscription_id, "webhook target refused: a non-public address");
            return AttemptResult::Failed {
                status: None,
                error: target::REFUSED.into(),
            };
        }
        let timestamp = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(&due.url)
            .timeout(self.config.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-EventTracker-Delivery", &d.id)
            .header("X-EventTracker-Event", &d.event)
            .header("X-EventTracker-Timestamp", timestamp.to_string())
            .header(
                "X-EventTracker-Signature",
                sign(&due.secret, timestamp, &d.body),
            )
            // The same delivery in the Standard Webhooks form, for receivers that verify
            // with its libraries. The id is the delivery's, so it stays the same across
            // retries and replays and receivers can drop repeats by it.
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                standard::sign(&due.secret, &d.id, timestamp, &d.body),
            )
            .body(d.body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => AttemptResult::Delivered {
                status: r.status().as_u16(),
            },
            Ok(r) => self.failed(
                d.attempts,
                Some(r.status().as_u16()),
                format!("HTTP {}", r.status()),
            ),
            Err(e) if e.is_timeout() => self.failed(
                d.attempts,
                None,
                format!("no answer within {} ms", self.config.timeout.as_millis()),
            ),
            // Every address of the name was refused. Retried like a receiver that is
            // down: the name may point elsewhere by the next attempt.
            Err(e) if target::is_refusal(&e) => {
                tracing::warn!(delivery = %d.id, subscription = %d.subscription_id, "webhook target refused: the name resolves to non-public addresses");
                self.failed(d.attempts, None, target::REFUSED.into())
            }
            Err(e) => self.failed(d.attempts, None, error_chain(&e)),
        }
    }

    /// After a failed attempt (`attempts` before it): retry later, or give up.
    fn failed(&self, attempts: u32, status: Option<u16>, error: String) -> AttemptResult {
        let attempts = attempts + 1;
        if attempts >= self.config.max_attempts {
            return AttemptResult::Failed { status, error };
        }
        let delay = backoff(self.config.retry_base, attempts, jitter());
        AttemptResult::Retry {
            at_ms: now_ms() + delay.as_millis() as i64,
            status,
            error,
        }
    }
}

/// How often the log is pruned: hourly, or more often for a retention shorter than a
/// few hours, so that nothing outlives it by more than a quarter.
fn prune_every(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// The wait after `attempts` failed attempts: `base * 2^(attempts-1)`, capped, then
/// scaled into its upper half by `jitter` (0..1) so that receivers coming back are not
/// hit by every queue at the same instant.
pub fn backoff(base: Duration, attempts: u32, jitter: f64) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(30))
        .min(MAX_RETRY_DELAY);
    exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A number in 0..1 from the standard library's randomly keyed hasher.
fn jitter() -> f64 {
    let n = std::collections::hash_map::RandomState::new().hash_one(now_ms());
    (n >> 11) as f64 / (1u64 << 53) as f64
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_settings_are_typed_and_name_themselves() {
        let config = |pairs: &[(&str, &str)]| {
            DeliveryConfig::from_vars(&Vars::new(&crate::config::test_vars(pairs)))
        };
        assert_eq!(config(&[]).unwrap(), DeliveryConfig::default());
        assert_eq!(
            config(&[("WEBHOOK_LOG_RETENTION_SECS", "0")])
                .unwrap()
                .retention,
            None
        );
        let c = config(&[
            ("WEBHOOK_RETRY_BASE_MS", "100"),
            ("WEBHOOK_MAX_ATTEMPTS", "3"),
        ])
        .unwrap();
        assert_eq!((c.retry_base.as_millis(), c.max_attempts), (100, 3));
        let e = config(&[("WEBHOOK_LOG_RETENTION_SECS", "a week")]).unwrap_err();
        assert_eq!(e.var, "WEBHOOK_LOG_RETENTION_SECS");
        for var in [
            "WEBHOOK_MAX_ATTEMPTS",
            "WEBHOOK_RETRY_BASE_MS",
            "WEBHOOK_TIMEOUT_MS",
        ] {
            assert_eq!(config(&[(var, "0")]).unwrap_err().var, var);
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered_into_the_upper_half() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(base, 2, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(base, 4, 0.0), Duration::from_millis(400));
        assert_eq!(backoff(base, 60, 1.0), MAX_RETRY_DELAY);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
