//! The reader thread of an import: turns input lines into validated events (with the
//! API's validator) and rejects, handed over in batches so reading overlaps writing.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::mpsc;

use super::source::{Item, Source};
use crate::clock::{Clock, SystemClock};
use crate::domain::event::{validate_event, FieldError, NewEvent};
use crate::domain::progression::is_bonus;
use crate::domain::rules::Rules;
use crate::domain::wallet::{is_wallet, EntryKind, WalletEntry};

/// One line of the rejects file.
#[derive(Serialize)]
pub(super) struct Reject {
    line: u64,
    reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
    input: String,
}

/// What the reader hands over: up to `batch_size` valid events and the rejects among them.
#[derive(Default)]
pub(super) struct Chunk {
    pub(super) events: Vec<NewEvent>,
    pub(super) first_line: u64,
    pub(super) last_line: u64,
    pub(super) rejects: Vec<Reject>,
    pub(super) bytes: u64,
    /// Achievement bonus entries (of an export), which are not imported: the engine
    /// awards them again as the events that earned them are imported.
    pub(super) bonuses: u64,
    /// Wallet entries (of an export), applied after every event (see import.rs).
    pub(super) wallet: Vec<(String, WalletEntry)>,
}

pub(super) type Message = Result<Chunk, (u64, io::Error)>;

pub(super) fn write_reject(w: &mut impl Write, r: &Reject) -> io::Result<()> {
    serde_json::to_writer(&mut *w, r)?;
    w.write_all(b"\n")
}

/// Runs on its own thread: reading and validating overlap the store's writes.
pub(super) fn read_all(
    mut source: Box<dyn Source>,
    rules: &Rules,
    batch_size: usize,
    bytes: &AtomicU64,
    tx: &mpsc::Sender<Message>,
) {
    let mut chunk = Chunk::default();
    loop {
        let item = match source.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => {
                let _ = tx.blocking_send(Err((chunk.last_line, e)));
                return;
            }
        };
        let line = match item {
            Item::Object { line, value, .. }
                if value
                    .get("event_type")
                    .and_then(|t| t.as_str())
                    .is_some_and(is_bonus) =>
            {
                chunk.bonuses += 1;
                line
            }
            Item::Object { line, raw, value }
                if value
                    .get("event_type")
                    .and_then(|t| t.as_str())
                    .is_some_and(is_wallet) =>
            {
                match wallet_line(&value) {
                    Ok(entry) => chunk.wallet.push(entry),
                    Err(reason) => chunk.rejects.push(Reject {
                        line,
                        reason,
                        errors: Vec::new(),
                        input: raw,
                    }),
                }
                line
            }
            Item::Object { line, raw, value } => {
                match validate_event(&value, rules, SystemClock.now_ms(), "") {
                    Ok(event) => chunk.events.push(event),
                    Err(errors) => chunk.rejects.push(Reject {
                        line,
                        reason: reason(&errors),
                        errors,
                        input: raw,
                    }),
                }
                line
            }
            Item::Bad {
                line,
                raw,
                reason,
                errors,
            } => {
                chunk.rejects.push(Reject {
                    line,
                    reason,
                    errors,
                    input: raw,
                });
                line
            }
        };
        if chunk.first_line == 0 {
            chunk.first_line = line;
        }
        chunk.last_line = line;
        if chunk.events.len() >= batch_size || chunk.rejects.len() >= batch_size {
            let last_line = chunk.last_line;
            chunk.bytes = bytes.load(Ordering::Relaxed);
            if tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                return; // the import stopped
            }
            chunk.last_line = last_line;
        }
    }
    chunk.bytes = bytes.load(Ordering::Relaxed);
    let _ = tx.blocking_send(Ok(chunk));
}

/// `user_id is required; timestamp must not be negative`: each field named, as the API
/// names them in its 400 answers.
fn reason(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A wallet entry as `export` writes it: `{user_id, event_type: "wallet:<kind>",
/// timestamp, event_id: <the entry id>, properties: {amount, ref, reason, expires_at}}`.
fn wallet_line(v: &serde_json::Value) -> Result<(String, WalletEntry), String> {
    let text = |k: &str| v.get(k).and_then(|x| x.as_str());
    let user = text("user_id").ok_or("user_id is required")?;
    crate::domain::event::check_id(user, 128).map_err(|m| format!("user_id {m}"))?;
    let kind = text("event_type")
        .and_then(|t| t.strip_prefix("wallet:"))
        .and_then(EntryKind::parse)
        .ok_or("event_type is not a wallet entry kind (spend, hold, capture, release, expire)")?;
    let ts_ms = v
        .get("timestamp")
        .ok_or("timestamp is required".to_owned())
        .and_then(|t| {
            crate::domain::time::parse_json_time(t).map_err(|m| format!("timestamp {m}"))
        })?;
    let id = text("event_id").ok_or("event_id (the entry id) is required")?;
    let p = v.get("properties").ok_or("properties is required")?;
    let amount = p
        .get("amount")
        .and_then(|a| a.as_i64())
        .filter(|a| (1..=crate::domain::rules::MAX_ABS_POINTS).contains(a))
        .ok_or("properties.amount must be an integer from 1 to 1000000000")?;
    let ref_id = p
        .get("ref")
        .and_then(|r| r.as_str())
        .ok_or("properties.ref is required")?;
    let expires_ms = match p.get("expires_at") {
        None | Some(serde_json::Value::Null) => None,
        Some(t) => Some(
            crate::domain::time::parse_json_time(t)
                .map_err(|m| format!("properties.expires_at {m}"))?,
        ),
    };
    Ok((
        user.to_owned(),
        WalletEntry {
            id: id.to_owned(),
            kind,
            amount,
            ref_id: ref_id.to_owned(),
            reason: p.get("reason").and_then(|r| r.as_str()).map(str::to_owned),
            ts_ms,
            expires_ms,
        },
    ))
}
