//! What the server says it asked of its database, from its own `/metrics`: MongoDB
//! commands (round trips) and documents written, from the driver's command monitoring
//! (`mongodb_commands_total`, `mongodb_documents_written_total`), beside the events it
//! created and the group commits it made. Read just before and after a write scenario,
//! the differences give documents per event and round trips per commit. Commands the
//! write path never sends (the webhook worker's polling, reads) are left out.

use std::net::SocketAddr;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Running totals at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    commands: f64,
    documents: f64,
    commits: f64,
    created: f64,
}

/// One write scenario's share of the counts.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StoreWrites {
    pub documents_per_event: f64,
    pub round_trips_per_commit: f64,
    pub events_per_commit: f64,
    pub commits: f64,
}

impl Counts {
    /// The scenario between `self` and `after`; `None` when the server reports no
    /// MongoDB commands (SQLite) or made no commit.
    pub fn until(self, after: Counts) -> Option<StoreWrites> {
        let commits = after.commits - self.commits;
        let created = after.created - self.created;
        if after.commands == 0.0 || commits < 1.0 || created < 1.0 {
            return None;
        }
        Some(StoreWrites {
            documents_per_event: (after.documents - self.documents) / created,
            round_trips_per_commit: (after.commands - self.commands) / commits,
            events_per_commit: created / commits,
            commits,
        })
    }
}

/// Reads the server's `/metrics` (open: the bench configures no API keys).
pub async fn read(addr: SocketAddr) -> anyhow::Result<Counts> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| anyhow::anyhow!("/metrics answered without a body"))?;
    Ok(parse(body))
}

const NOT_WRITE_PATH: &[&str] = &[
    "command=\"aggregate\"",
    "command=\"hello\"",
    "command=\"ping\"",
    "command=\"createIndexes\"",
    "command=\"endSessions\"",
    "command=\"killCursors\"",
];

fn parse(body: &str) -> Counts {
    let mut c = Counts::default();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        match name {
            // Commands the write path never sends: the delivery worker's polling
            // (aggregate), reads, and the driver's own handshakes and monitoring.
            "mongodb_commands_total" if NOT_WRITE_PATH.iter().any(|c| series.contains(c)) => {}
            "mongodb_commands_total" => c.commands += v,
            "mongodb_documents_written_total" => c.documents += v,
            "store_commit_batch_events_count" => c.commits += v,
            "events_total" if series.contains("outcome=\"created\"") => c.created += v,
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_series_and_divides_by_events_and_commits() {
        let before = parse(
            "# HELP x\nmongodb_commands_total{command=\"insert\"} 10\nevents_total{outcome=\"created\"} 0\nstore_commit_batch_events_count 0\n",
        );
        let after = parse(
            "mongodb_commands_total{command=\"insert\"} 20\nmongodb_commands_total{command=\"find\"} 30\nmongodb_commands_total{command=\"aggregate\"} 99\n\
             mongodb_documents_written_total{command=\"insert\"} 12\nmongodb_documents_written_total{command=\"update\"} 18\n\
             events_total{outcome=\"created\"} 10\nevents_total{outcome=\"duplicate\"} 5\nstore_commit_batch_events_count 5\n",
        );
        let w = before.until(after).expect("mongo counts");
        assert_eq!(
            (
                w.documents_per_event,
                w.round_trips_per_commit,
                w.events_per_commit
            ),
            (3.0, 8.0, 2.0)
        );
        assert!(Counts::default().until(Counts::default()).is_none());
    }
}
