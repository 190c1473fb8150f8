//! The request channel in front of a store's single writer, shared by the SQLite
//! writer thread and the MongoDB writer task: requests go in with a reply slot, the
//! writer takes every request waiting at once as one group commit.

use std::sync::Mutex;

use anyhow::anyhow;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// A request to a writer; `size` counts the events it adds to a group commit.
pub trait Request {
    fn size(&self) -> usize;
}

/// Requests a writer can queue before senders wait.
const CAPACITY: usize = 4096;

/// The sending side, closed once at shutdown so the writer drains and exits.
pub struct WriterChannel<C>(Mutex<Option<mpsc::Sender<C>>>);

impl<C> WriterChannel<C> {
    pub fn new() -> (WriterChannel<C>, mpsc::Receiver<C>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        (WriterChannel(Mutex::new(Some(tx))), rx)
    }

    /// A sender, or "unavailable" once the store is shutting down.
    pub fn sender(&self) -> Result<mpsc::Sender<C>, StoreError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable(anyhow!("the store is shutting down")))
    }

    /// Queues the request `make` builds around a reply slot and waits for the answer.
    pub async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> C,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Unavailable(anyhow!("the writer has stopped")))?;
        rx.await
            .map_err(|_| StoreError::Internal(anyhow!("the writer dropped a request")))?
    }

    /// Drops the last sender: the writer finishes what is queued and ends.
    pub fn close(&self) {
        drop(self.0.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

/// `first` and every request already waiting behind it, up to about `max_events`: one
/// group commit.
pub fn gather<C: Request>(first: C, rx: &mut mpsc::Receiver<C>, max_events: usize) -> Vec<C> {
    let mut size = first.size();
    let mut commands = vec![first];
    while size < max_events {
        match rx.try_recv() {
            Ok(cmd) => {
                size += cmd.size();
                commands.push(cmd);
            }
            Err(_) => break,
        }
    }
    commands
}
