//! Webhooks: subscriptions, the deliveries queued for them, and how a delivery is signed.
//!
//! A write that creates events stores, in the same SQLite transaction, one delivery per
//! subscription per user per write (the events of that user in one request or batch
//! make one `points.changed` delivery; [`rank`] finds the `rank.changed` ones). The
//! delivery's body is fixed when it is queued, so every attempt sends the same bytes and
//! the same id. [`worker`] sends them, signed twice: [`sign`] for the
//! `X-EventTracker-Signature` header, [`standard::sign`] for the Standard Webhooks ones.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::{ConfigError, Vars};
use crate::domain::event::FieldError;

pub mod payload;
pub mod rank;
pub mod standard;
pub mod target;
pub mod worker;

pub use rank::RankWatch;

/// The webhook settings (`WEBHOOKS_PATH`, `WEBHOOK_*`).
#[derive(Debug, Clone, Default)]
pub struct WebhookConfig {
    /// From the file `WEBHOOKS_PATH` names (none when unset): registered at start,
    /// alongside those created over the API.
    pub subscriptions: Vec<NewSubscription>,
    pub delivery: worker::DeliveryConfig,
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS`, `WEBHOOK_ALLOWED_TARGETS`: which addresses
    /// deliveries may go to (by default public ones only).
    pub targets: target::TargetPolicy,
}

impl WebhookConfig {
    /// Reads and validates the `WEBHOOKS_PATH` file too. (Whether its URLs point
    /// inside the network is checked at start and by `check-config`:
    /// [`target::check_file`] resolves their names.)
    pub fn from_vars(vars: &Vars) -> Result<WebhookConfig, ConfigError> {
        let subscriptions = match vars.get("WEBHOOKS_PATH") {
            None => Vec::new(),
            Some(path) => {
                let problem = |p: String| ConfigError::new("WEBHOOKS_PATH", format!("{path}: {p}"));
                let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
                parse_file(&text).map_err(problem)?
            }
        };
        Ok(WebhookConfig {
            subscriptions,
            delivery: worker::DeliveryConfig::from_vars(vars)?,
            targets: target::TargetPolicy::from_vars(vars)?,
        })
    }
}

/// The notification kinds this version sends.
pub const POINTS_CHANGED: &str = "points.changed";
pub const CAP_REACHED: &str = "cap.reached";
pub const RANK_CHANGED: &str = "rank.changed";
pub const ACHIEVEMENT_UNLOCKED: &str = "achievement.unlocked";
pub const LEVEL_CHANGED: &str = "level.changed";
pub const STREAK_CHANGED: &str = "streak.changed";
pub const WALLET_CHANGED: &str = "wallet.changed";
pub const POINTS_EXPIRING: &str = "points.expiring";
pub const POINTS_EXPIRED: &str = "points.expired";
const SENT: &[&str] = &[
    POINTS_CHANGED,
    CAP_REACHED,
    RANK_CHANGED,
    ACHIEVEMENT_UNLOCKED,
    LEVEL_CHANGED,
    STREAK_CHANGED,
    WALLET_CHANGED,
    POINTS_EXPIRING,
    POINTS_EXPIRED,
];

/// The kind constant for a subscription's event name, if this version sends it.
pub fn sent_kind(event: &str) -> Option<&'static str> {
    SENT.iter().copied().find(|k| *k == event)
}

pub const MAX_URL_CHARS: usize = 2048;
pub const MIN_SECRET_CHARS: usize = 16;
pub const MAX_SECRET_CHARS: usize = 512;

/// A subscription as given in `WEBHOOKS_PATH` or to `POST /v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NewSubscription {
    pub url: String,
    pub secret: String,
    pub events: Vec<String>,
    /// The board `rank.changed` watches: required with it, refused without it.
    #[serde(default)]
    pub rank: Option<RankWatch>,
}

/// A stored subscription. Its secret never leaves the server.
#[derive(Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub events: Vec<String>,
    /// Set exactly when `events` has `rank.changed`.
    pub rank: Option<RankWatch>,
    pub created_ms: i64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("rank", &self.rank)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Queued or waiting for a retry.
    Pending,
    Delivered,
    /// Gave up after the last attempt; an admin can replay it.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One queued notification and what happened to it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub subscription_id: String,
    pub user_id: String,
    pub event: String,
    /// The exact JSON sent on every attempt.
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When the next attempt is due (pending only), Unix ms.
    pub next_attempt_ms: Option<i64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A delivery due now, with where to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub url: String,
    pub secret: String,
}

/// How an attempt ended, as the worker records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered {
        status: u16,
    },
    Retry {
        at_ms: i64,
        status: Option<u16>,
        error: String,
    },
    Failed {
        status: Option<u16>,
        error: String,
    },
}

impl AttemptResult {
    /// What the delivery's record becomes: status, next attempt, last HTTP status and
    /// last error.
    pub fn columns(&self) -> (&'static str, Option<i64>, Option<u16>, Option<&str>) {
        match self {
            AttemptResult::Delivered { status } => ("delivered", None, Some(*status), None),
            AttemptResult::Retry {
                at_ms,
                status,
                error,
            } => ("pending", Some(*at_ms), *status, Some(error.as_str())),
            AttemptResult::Failed { status, error } => {
                ("failed", None, *status, Some(error.as_str()))
            }
        }
    }
}

/// Which deliveries a replay queued again, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    pub queued: Vec<String>,
    /// Still pending: they will be sent anyway.
    pub already_pending: Vec<String>,
    /// Not deliveries of this subscription.
    pub not_found: Vec<String>,
}

/// Checks a subscription field by field, naming each bad one.
pub fn validate(s: &NewSubscription) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Err(m) = check_url(&s.url) {
        errors.push(FieldError::new("url", m));
    }
    if let Err(m) = check_secret(&s.secret) {
        errors.push(FieldError::new("secret", m));
    }
    if s.events.is_empty() {
        errors.push(FieldError::new("events", "must name at least one event"));
    }
    for e in &s.events {
        if let Err(m) = check_event(e) {
            errors.push(FieldError::new("events", m));
        }
    }
    let wants_rank = s.events.iter().any(|e| e == RANK_CHANGED);
    match (&s.rank, wants_rank) {
        (None, true) => errors.push(FieldError::new(
            "rank",
            format!(
                "is required with {RANK_CHANGED}: {{period: all|day|week|month, top: 1 to {}}}",
                rank::MAX_TOP
            ),
        )),
        (Some(_), false) => errors.push(FieldError::new(
            "rank",
            format!("is only for {RANK_CHANGED}, which events does not name"),
        )),
        (Some(r), true) if !(1..=rank::MAX_TOP).contains(&r.top) => errors.push(FieldError::new(
            "rank.top",
            format!("must be 1 to {}", rank::MAX_TOP),
        )),
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A subscription URL: http:// or https://, with a host, at most [`MAX_URL_CHARS`], no
/// credentials. (Where it may point is for [`target`], at registration and delivery.)
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).ok().filter(|u| {
        url.len() <= MAX_URL_CHARS && matches!(u.scheme(), "http" | "https") && u.host().is_some()
    });
    match parsed {
        None => Err(format!(
            "must be an http:// or https:// URL of at most {MAX_URL_CHARS} characters"
        )),
        // They would be stored, listed and logged with the URL; the message does not
        // repeat them.
        Some(u) if !u.username().is_empty() || u.password().is_some() => Err(
            "must not carry credentials (user:password@); receivers authenticate \
             deliveries by their X-EventTracker-Signature"
                .into(),
        ),
        Some(_) => Ok(()),
    }
}

/// A signing secret: [`MIN_SECRET_CHARS`] to [`MAX_SECRET_CHARS`] characters.
pub fn check_secret(secret: &str) -> Result<(), String> {
    if (MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&secret.chars().count()) {
        Ok(())
    } else {
        Err(format!(
            "must have {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters"
        ))
    }
}

/// A notification kind this version sends.
pub fn check_event(event: &str) -> Result<(), String> {
    if SENT.contains(&event) {
        Ok(())
    } else {
        Err(format!(
            "unknown event {event:?}; known: {}",
            SENT.join(", ")
        ))
    }
}

/// `sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"` with the secret: the value
/// of the `X-EventTracker-Signature` header.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The `WEBHOOKS_PATH` file: `webhooks: [{url, secret, events: [...], rank: {period, top}}]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhooksFile {
    #[serde(default)]
    webhooks: Vec<NewSubscription>,
}

/// Parses and validates the subscriptions file; the error says which entry is wrong.
pub fn parse_file(text: &str) -> Result<Vec<NewSubscription>, String> {
    let file: WebhooksFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    for (i, s) in file.webhooks.iter().enumerate() {
        validate(s).map_err(|errors| {
            let what: Vec<String> = errors
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect();
            format!("webhooks[{i}]: {}", what.join("; "))
        })?;
    }
    Ok(file.webhooks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhooks_path_file_is_read_and_validated_naming_the_variable() {
        let config = |pairs: &[(&str, &str)]| {
            WebhookConfig::from_vars(&Vars::new(&crate::config::test_vars(pairs)))
        };
        let c = config(&[]).unwrap();
        assert!(c.subscriptions.is_empty());
        assert_eq!(c.delivery, worker::DeliveryConfig::default());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("webhooks.yaml");
        let path = file.to_str().unwrap();
        std::fs::write(
            &file,
            "webhooks:\n  - url: https://hooks.example.com/et\n    secret: 0123456789abcdef\n    events: [points.changed]\n",
        )
        .unwrap();
        let c = config(&[("WEBHOOKS_PATH", path), ("WEBHOOK_RETRY_BASE_MS", "100")]).unwrap();
        assert_eq!(c.subscriptions.len(), 1);
        assert_eq!(c.delivery.retry_base.as_millis(), 100);
        std::fs::write(&file, "webhooks:\n  - {url: x, secret: s, events: []}\n").unwrap();
        let e = config(&[("WEBHOOKS_PATH", path)]).unwrap_err();
        assert_eq!(e.var, "WEBHOOKS_PATH");
        assert!(e.problem.contains("webhooks[0]"), "{e}");
        let e = config(&[("WEBHOOKS_PATH", "/nonexistent/hooks.yaml")]).unwrap_err();
        assert_eq!(e.var, "WEBHOOKS_PATH");
        let e = config(&[(target::ALLOWED_VAR, "intranet")]).unwrap_err();
        assert_eq!(e.var, target::ALLOWED_VAR);
    }

    #[test]
    fn signature_matches_the_worked_example_of_the_docs() {
        // docs/webhooks.md; computed independently with
        // printf '%s' "1796032800.$BODY" | openssl dgst -sha256 -hmac whsec_0123456789abcdef
        let body = r#"{"created_at":"2026-11-30T10:00:00.000Z","data":{"delta":10,"event_ids":["0193f1a27c3e7d0f8e2a1b3c4d5e6f70"],"points":42,"user_id":"13"},"id":"0193f1a2-7c3e-7d10-9a4b-5f1e2d3c4b5a","type":"points.changed"}"#;
        assert_eq!(
            sign("whsec_0123456789abcdef", 1_796_032_800, body),
            "sha256=d5dcda35f0ec40e934d77eb3b529345c62cc980ee308fee6952835fc0e059146"
        );
    }

    #[test]
    fn validation_names_each_bad_field() {
        let bad = NewSubscription {
            url: "ftp://x".into(),
            secret: "short".into(),
            events: vec!["rank.changed".into(), "nope".into()],
            rank: None,
        };
        let fields: Vec<String> = validate(&bad)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["url", "secret", "events", "rank"]);
        let good = NewSubscription {
            url: "https://hooks.example.com/et".into(),
            secret: "0123456789abcdef".into(),
            events: vec![POINTS_CHANGED.into(), CAP_REACHED.into()],
            rank: None,
        };
        assert_eq!(validate(&good), Ok(()));
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_being_repeated() {
        for url in [
            "http://alice:pw-s3cret@hooks.example.com/et",
            "https://alice@hooks.example.com/et",
            "https://:pw-s3cret@hooks.example.com/et",
        ] {
            let sub = NewSubscription {
                url: url.into(),
                secret: "0123456789abcdef".into(),
                events: vec![POINTS_CHANGED.into()],
                rank: None,
            };
            let errors = validate(&sub).unwrap_err();
            assert_eq!(errors.len(), 1, "{url}: {errors:?}");
            assert_eq!(errors[0].field, "url");
            assert!(errors[0].message.contains("credentials"), "{errors:?}");
            assert!(!errors[0].message.contains("s3cret") && !errors[0].message.contains("alice"));
        }
    }

    #[test]
    fn rank_goes_with_rank_changed_and_watches_1_to_100() {
        use crate::domain::period::Period;
        let with = |events: &[&str], top: Option<u32>| NewSubscription {
            url: "https://hooks.example.com/et".into(),
            secret: "0123456789abcdef".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            rank: top.map(|top| RankWatch {
                period: Period::Week,
                top,
            }),
        };
        let field = |s: NewSubscription| -> Vec<String> {
            validate(&s)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(field(with(&[RANK_CHANGED], Some(1))), Vec::<String>::new());
        assert_eq!(
            field(with(&[RANK_CHANGED, POINTS_CHANGED], Some(100))),
            Vec::<String>::new()
        );
        assert_eq!(field(with(&[RANK_CHANGED], None)), ["rank"]);
        assert_eq!(field(with(&[POINTS_CHANGED], Some(3))), ["rank"]);
        assert_eq!(field(with(&[RANK_CHANGED], Some(0))), ["rank.top"]);
        assert_eq!(field(with(&[RANK_CHANGED], Some(101))), ["rank.top"]);
    }

    #[test]
    fn file_errors_name_the_entry() {
        let text = "webhooks:\n  - {url: 'http://a.example', secret: '0123456789abcdef', events: [points.changed]}\n  - {url: 'nope', secret: '0123456789abcdef', events: [points.changed]}\n";
        let e = parse_file(text).unwrap_err();
        assert!(e.starts_with("webhooks[1]: url"), "{e}");
        assert_eq!(parse_file("webhooks: []\n").unwrap(), vec![]);
    }

    #[test]
    fn the_file_takes_a_rank_watch() {
        let text = "webhooks:\n  - url: http://a.example\n    secret: '0123456789abcdef'\n    events: [rank.changed]\n    rank: {period: week, top: 3}\n";
        let subs = parse_file(text).unwrap();
        assert_eq!(
            subs[0].rank,
            Some(RankWatch {
                period: crate::domain::period::Period::Week,
                top: 3
            })
        );
        let e = parse_file(&text.replace("top: 3", "top: 0")).unwrap_err();
        assert!(e.starts_with("webhooks[0]: rank.top"), "{e}");
        let e = parse_file(&text.replace("week", "year")).unwrap_err();
        assert!(e.contains("year"), "{e}");
    }
}
