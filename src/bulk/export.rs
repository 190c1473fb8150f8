//! `eventtracker export`: the ledger as NDJSON, one event per line in the form `import`
//! reads. Pages through the users, then each user's history, so memory stays flat
//! however large the ledger is.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use serde::Serialize;
use serde_json::Value;

use crate::domain::time::format_millis;
use crate::store::{HistoryCursor, HistoryQuery, Store, StoredEvent, TimeRange};

const PAGE: u32 = 1000;

pub struct Options {
    /// Only this user's events.
    pub user: Option<String>,
    /// Only events in this window of event time (`from` inclusive, `to` exclusive).
    pub range: TimeRange,
    /// Default: standard output.
    pub output: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Users with at least one exported event.
    pub users: u64,
    pub events: u64,
}

/// One exported event. The timestamp is RFC 3339 with milliseconds, so every stored
/// instant reads back exactly (an integer below 100000000000 would read as seconds),
/// and `event_id` is written only when the event has one: either way `import` derives
/// the same duplicate key the stored event has, so re-importing it is a duplicate.
#[derive(Serialize)]
struct Line<'a> {
    user_id: &'a str,
    event_type: &'a str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<Value>,
}

pub async fn run(store: &Store, opts: &Options) -> anyhow::Result<Report> {
    let (out, name): (Box<dyn Write + Send>, String) = match &opts.output {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
            (Box::new(file), path.display().to_string())
        }
        None => (Box::new(io::stdout()), "standard output".to_string()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut report = Report::default();
    match &opts.user {
        Some(user) => export_user(store, user, opts.range, &mut out, &name, &mut report).await?,
        None => {
            let mut after: Option<String> = None;
            loop {
                let users = store
                    .export
                    .user_ids(after.clone(), PAGE)
                    .await
                    .map_err(|e| anyhow!(e).context("cannot list the users"))?;
                for user in &users {
                    export_user(store, user, opts.range, &mut out, &name, &mut report).await?;
                }
                if users.len() < PAGE as usize {
                    break;
                }
                after = users.last().cloned();
            }
        }
    }
    out.flush()
        .with_context(|| format!("{name}: cannot write"))?;
    Ok(report)
}

/// Writes one user's events in history order (newest first), page by page.
async fn export_user(
    store: &Store,
    user: &str,
    range: TimeRange,
    out: &mut impl Write,
    name: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut after: Option<HistoryCursor> = None;
    let mut any = false;
    loop {
        let page = store
            .ledger
            .user_events(HistoryQuery {
                user_id: user.to_string(),
                event_type: None,
                range,
                limit: PAGE,
                after: after.take(),
            })
            .await
            .map_err(|e| anyhow!(e).context(format!("cannot read the events of user {user:?}")))?;
        for event in &page {
            write_line(out, name, user, event)?;
            report.events += 1;
            any = true;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => {
                after = Some(HistoryCursor {
                    ts_ms: last.ts_ms,
                    id: last.id.clone(),
                });
            }
            _ => break,
        }
    }
    any |= export_wallet(store, user, range, out, name, report).await?;
    if any {
        report.users += 1;
    }
    Ok(())
}

/// Writes one user's wallet entries (newest first) after their events, as lines
/// `import` reads back: the entry's id as `event_id`, what it did in `properties`.
async fn export_wallet(
    store: &Store,
    user: &str,
    range: TimeRange,
    out: &mut impl Write,
    name: &str,
    report: &mut Report,
) -> anyhow::Result<bool> {
    let mut before = range.to_ms.map(|to| HistoryCursor {
        ts_ms: to,
        id: String::new(),
    });
    let mut any = false;
    loop {
        let page = match store
            .progress
            .wallet_entries(user, before.take(), PAGE)
            .await
        {
            Ok(page) => page,
            // A store that keeps no wallet has no entries to export.
            Err(crate::store::StoreError::Unsupported(_)) => return Ok(any),
            Err(e) => {
                return Err(anyhow!(e).context(format!("cannot read the wallet of user {user:?}")))
            }
        };
        for e in &page {
            if range.from_ms.is_some_and(|f| e.ts_ms < f) {
                return Ok(any);
            }
            let line = Line {
                user_id: user,
                event_type: &e.kind.event_type(),
                timestamp: format_millis(e.ts_ms),
                event_id: Some(&e.id),
                properties: Some(serde_json::json!({
                    "amount": e.amount,
                    "ref": e.ref_id,
                    "reason": e.reason,
                    "expires_at": e.expires_ms.map(format_millis),
                })),
            };
            serde_json::to_writer(&mut *out, &line)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .with_context(|| format!("{name}: cannot write"))?;
            report.events += 1;
            any = true;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => {
                before = Some(HistoryCursor {
                    ts_ms: last.ts_ms,
                    id: last.id.clone(),
                });
            }
            _ => return Ok(any),
        }
    }
}

fn write_line(out: &mut impl Write, name: &str, user: &str, e: &StoredEvent) -> anyhow::Result<()> {
    let properties = match &e.properties {
        Some(text) => Some(
            serde_json::from_str(text)
                .with_context(|| format!("event {} has unreadable properties", e.id))?,
        ),
        None => None,
    };
    let line = Line {
        user_id: user,
        event_type: &e.event_type,
        timestamp: format_millis(e.ts_ms),
        event_id: e.event_id.as_deref(),
        properties,
    };
    serde_json::to_writer(&mut *out, &line)
        .map_err(io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .with_context(|| format!("{name}: cannot write"))
}
