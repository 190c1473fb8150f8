//! Prometheus metrics: one process-wide recorder, every metric the crate emits described
//! in one table (so each has `# HELP` text and is exported from the start where its
//! labels are known), and a middleware that labels requests, and their log span, by
//! route pattern (never the raw URL, which would explode cardinality and put user ids
//! in every log line).

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The name Prometheus' `# TYPE` line gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Which series exist before anything happened. A counter that is missing until its
/// first increment cannot be told apart from a target that does not export it, and
/// `rate()` and `increase()` miss that first increment: so every series whose labels are
/// known in advance is exported at 0 from the start.
#[derive(Debug, Clone, Copy)]
pub enum Initial {
    /// Its labels are only known when it happens (a route, a status, a cache operation).
    None,
    /// One series without labels, at 0.
    Zero,
    /// One series at 0 per value of the label.
    ZeroPer(&'static str, &'static [&'static str]),
}

#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
    pub initial: Initial,
}

/// Every metric the crate emits. docs/api.md lists the same ones (a test compares both
/// with each other, with the source and with a live `/metrics`).
pub const METRICS: &[Metric] = &[
    Metric {
        name: "http_requests_total",
        kind: Kind::Counter,
        unit: None,
        help: "HTTP requests answered, by method, route pattern and status code.",
        initial: Initial::None,
    },
    Metric {
        name: "http_request_duration_seconds",
        kind: Kind::Histogram,
        unit: Some(Unit::Seconds),
        help: "Time from receiving an HTTP request to its answer, by method and route pattern.",
        initial: Initial::None,
    },
    Metric {
        name: "http_connections_closed_total",
        kind: Kind::Counter,
        unit: None,
        help: "Connections the server closed while no request was in progress, by reason: header_timeout (head not received in time), idle_timeout (keep-alive idle too long) or evicted (gave its place to a new connection at MAX_CONNECTIONS).",
        initial: Initial::ZeroPer("reason", &["header_timeout", "idle_timeout", "evicted"]),
    },
    Metric {
        name: "events_total",
        kind: Kind::Counter,
        unit: Some(Unit::Count),
        help: "Events received, by outcome: created, duplicate (already stored) or rejected (invalid).",
        initial: Initial::ZeroPer("outcome", &["created", "duplicate", "rejected"]),
    },
    Metric {
        name: "store_commit_batch_events",
        kind: Kind::Histogram,
        unit: Some(Unit::Count),
        help: "Events written per store commit (writes arriving together share one commit).",
        initial: Initial::None,
    },
    Metric {
        name: "mongodb_commands_total",
        kind: Kind::Counter,
        unit: None,
        help: "Commands (round trips) the MongoDB store sent, by command name.",
        initial: Initial::None,
    },
    Metric {
        name: "mongodb_documents_written_total",
        kind: Kind::Counter,
        unit: None,
        help: "Documents MongoDB reported inserted, changed, upserted or deleted by the store's write commands, by command name.",
        initial: Initial::None,
    },
    Metric {
        name: "store_transaction_retries_total",
        kind: Kind::Counter,
        unit: None,
        help: "MongoDB transactions retried after a transient error or a write conflict.",
        initial: Initial::Zero,
    },
    Metric {
        name: "rules_version",
        kind: Kind::Gauge,
        unit: None,
        help: "The rules version (events.yaml) this instance applies; 0 until the store registered one.",
        initial: Initial::Zero,
    },
    Metric {
        name: "rules_reloads_total",
        kind: Kind::Counter,
        unit: None,
        help: "Changes of the rules file, by outcome: applied (now in force) or rejected (invalid; the version in force stays).",
        initial: Initial::ZeroPer("outcome", &["applied", "rejected"]),
    },
    Metric {
        name: "rate_limited_total",
        kind: Kind::Counter,
        unit: None,
        help: "Requests refused with 429 because the API key exceeded its rate limit, by role.",
        initial: Initial::ZeroPer("role", &["ingest", "read", "admin"]),
    },
    Metric {
        name: "cache_errors_total",
        kind: Kind::Counter,
        unit: None,
        help: "Failed Redis calls, by operation; each makes reads go to the store until the cache is rebuilt.",
        initial: Initial::None,
    },
    Metric {
        name: "cache_fallbacks_total",
        kind: Kind::Counter,
        unit: None,
        help: "Reads answered from the store instead of Redis (cache not trusted, missing or failing), by operation.",
        initial: Initial::None,
    },
    Metric {
        name: "cache_invalidations_total",
        kind: Kind::Counter,
        unit: None,
        help: "Times the Redis cache was found stale or unreachable and marked for a rebuild.",
        initial: Initial::Zero,
    },
    Metric {
        name: "cache_rebuilds_total",
        kind: Kind::Counter,
        unit: None,
        help: "Rebuilds of the Redis cache from the store completed by this instance.",
        initial: Initial::Zero,
    },
    Metric {
        name: "webhook_attempts_total",
        kind: Kind::Counter,
        unit: None,
        help: "Webhook delivery attempts, by result: delivered, retry (failed, tried again later) or failed (given up).",
        initial: Initial::ZeroPer("result", &["delivered", "retry", "failed"]),
    },
    Metric {
        name: "webhook_deliveries_pruned_total",
        kind: Kind::Counter,
        unit: None,
        help: "Finished webhook deliveries removed from the delivery log after their retention.",
        initial: Initial::Zero,
    },
];

/// Gives every metric its help text and exports the series known in advance.
fn describe_all() {
    for m in METRICS {
        metrics::with_recorder(|r| {
            let (name, help) = (m.name.into(), m.help.into());
            match m.kind {
                Kind::Counter => r.describe_counter(name, m.unit, help),
                Kind::Gauge => r.describe_gauge(name, m.unit, help),
                Kind::Histogram => r.describe_histogram(name, m.unit, help),
            }
        });
        let zero = |labels: &[(&'static str, &'static str)]| match m.kind {
            Kind::Counter => metrics::counter!(m.name, labels).absolute(0),
            Kind::Gauge => metrics::gauge!(m.name, labels).set(0.0),
            // The exporter shows a histogram only from its first sample on: none is
            // listed with an initial value (a test checks this).
            Kind::Histogram => {}
        };
        match m.initial {
            Initial::None => {}
            Initial::Zero => zero(&[]),
            Initial::ZeroPer(label, values) => {
                for v in values {
                    zero(&[(label, v)]);
                }
            }
        }
    }
}

/// The recorder is global to the process, so it is installed once even when tests
/// start several servers in one process. Whatever is emitted before it is installed is
/// lost: start-up installs it first.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut slot = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = slot.as_ref() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full("store_commit_batch_events".into()),
            &[
                1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
            ],
        )?
        .install_recorder()?;
    describe_all();
    *slot = Some(handle.clone());
    Ok(handle)
}

pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // The request's span (opened before routing) gets the pattern now that it is known.
    tracing::Span::current().record("route", route.as_str());
    let method = req.method().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}
