//! WAL checkpoints on a thread of their own. Left to the writer (SQLite's automatic
//! checkpoint), every so many commits one request's commit also copied the whole WAL
//! into the database file and fsynced it, which showed as the p99 of the open-loop
//! benchmark (docs/benchmark.md). Here a PASSIVE checkpoint runs every
//! [`INTERVAL`] beside the writer, which keeps appending meanwhile; the writer's own
//! automatic checkpoint stays as a backstop for a WAL that grows past it anyway.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

const INTERVAL: Duration = Duration::from_millis(100);

pub struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    pub fn start(path: PathBuf) -> std::io::Result<Checkpointer> {
        let (stop, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut conn: Option<Connection> = None;
                loop {
                    let last = !matches!(
                        rx.recv_timeout(INTERVAL),
                        Err(RecvTimeoutError::Timeout)
                    );
                    if conn.is_none() {
                        conn = open(&path)
                            .map_err(|e| tracing::debug!(error = %e, "checkpointer cannot open the database yet"))
                            .ok();
                    }
                    if let Some(c) = &conn {
                        if let Err(e) = checkpoint(c) {
                            // Read-only or missing file: the writer reports that; retry.
                            tracing::debug!(error = %e, "WAL checkpoint failed");
                            conn = None;
                        }
                    }
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Checkpointer { stop, thread })
    }

    /// Runs a last checkpoint and waits for the thread to end.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn open(path: &PathBuf) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(Duration::from_secs(1))?;
    Ok(conn)
}

fn checkpoint(c: &Connection) -> rusqlite::Result<()> {
    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
