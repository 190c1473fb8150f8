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
use crate::domain::wallet::is_wallet;

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
                chunk.rejects.push(Reject {
                    line,
                    reason: "wallet entries are not imported by this version: spend again through the API".into(),
                    errors: Vec::new(),
                    input: raw,
                });
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
