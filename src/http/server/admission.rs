//! Which connections may stay open. `MAX_CONNECTIONS` bounds the open ones; a connection
//! with no request in progress (a fresh one still sending its head, an idle keep-alive
//! one) holds its place only until its deadline, and gives it up at once to a new
//! connection when the limit is reached. So slow or idle clients can delay nobody: only
//! connections that are actually being served can make a new one wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long a connection may go without a request in progress.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From accepting the connection, or from the first byte of a later request, until
    /// that request's head is complete.
    pub header_read: Duration,
    /// From the end of a response until the next request starts arriving.
    pub keep_alive: Duration,
}

/// What a connection is doing, and since when.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Accepted; its first request has not been read yet.
    Fresh(Instant),
    /// Requests in progress: from their head being read until their response body was
    /// written out (or dropped).
    Busy(usize),
    /// Between requests, nothing received yet.
    Idle(Instant),
    /// Between requests, and the next head has started to arrive.
    ReadingHead(Instant),
}

/// Why the server closed a connection it was not serving a request on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    HeaderTimeout,
    IdleTimeout,
    /// Given up for a new connection at `MAX_CONNECTIONS`.
    Evicted,
}

impl Closed {
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Evicted => "evicted",
        }
    }
}

/// The shared view of one connection: updated by its requests and its socket, read by
/// its own task (deadlines) and by [`Admission`] (eviction).
#[derive(Debug)]
pub struct Activity {
    phase: Mutex<Phase>,
    evicted: AtomicBool,
    /// Wakes the connection's task when its deadline may have moved earlier or it was
    /// evicted.
    changed: Notify,
}

impl Activity {
    fn new(now: Instant) -> Activity {
        Activity {
            phase: Mutex::new(Phase::Fresh(now)),
            evicted: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        // A panic while holding this lock leaves a valid phase behind: keep using it.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request's head was read; the returned guard ends the request when dropped
    /// (after its response body is done).
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
        RequestGuard(self.clone())
    }

    /// Bytes arrived on the socket.
    pub fn received(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::ReadingHead(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// When the connection is to be closed unless a request starts, and why.
    pub fn deadline(&self, limits: &Deadlines) -> Option<(Instant, Closed)> {
        match *self.phase() {
            Phase::Busy(_) => None,
            Phase::Fresh(t) | Phase::ReadingHead(t) => {
                Some((t + limits.header_read, Closed::HeaderTimeout))
            }
            Phase::Idle(t) => Some((t + limits.keep_alive, Closed::IdleTimeout)),
        }
    }

    /// The moment this connection last started waiting for a client, if it is waiting.
    fn waiting_since(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::Busy(_) => None,
            Phase::Fresh(t) | Phase::Idle(t) | Phase::ReadingHead(t) => Some(t),
        }
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Completes when something [`Activity::deadline`] or [`Activity::is_evicted`]
    /// depends on may have changed.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

/// One request in progress on a connection.
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
        let idle = matches!(*phase, Phase::Idle(_));
        drop(phase);
        if idle {
            self.0.changed.notify_one();
        }
    }
}

/// The open connections and their places under `MAX_CONNECTIONS`.
pub struct Admission {
    permits: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
}

/// A connection's place: it is given back when this is dropped.
pub struct Admitted {
    pub activity: Arc<Activity>,
    id: u64,
    admission: Arc<Admission>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.open().remove(&self.id);
    }
}

impl Admission {
    pub fn new(max_connections: usize) -> Arc<Admission> {
        Arc::new(Admission {
            permits: Arc::new(Semaphore::new(max_connections)),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a connection just accepted. At the limit, the connection that has
    /// waited longest for its client gives its place up; when every open connection is
    /// serving a request, this waits for one to finish.
    pub async fn admit(self: &Arc<Self>) -> Admitted {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.evict_longest_waiting() {
                    metrics::counter!("http_connections_closed_total", "reason" => Closed::Evicted.as_str()).increment(1);
                }
                match self.permits.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    // The semaphore is never closed; should it be, admit nobody.
                    Err(_) => std::future::pending().await,
                }
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(Instant::now()));
        self.open().insert(id, activity.clone());
        Admitted {
            activity,
            id,
            admission: self.clone(),
            _permit: permit,
        }
    }

    /// Marks the waiting connection that has waited longest as evicted; false when every
    /// open connection is serving a request (or already leaving).
    fn evict_longest_waiting(&self) -> bool {
        let open = self.open();
        let victim = open
            .values()
            .filter(|a| !a.is_evicted())
            .filter_map(|a| a.waiting_since().map(|t| (t, a)))
            .min_by_key(|(t, _)| *t)
            .map(|(_, a)| a.clone());
        drop(open);
        match victim {
            Some(activity) => {
                activity.evicted.store(true, Ordering::Release);
                activity.changed.notify_one();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Deadlines = Deadlines {
        header_read: Duration::from_secs(5),
        keep_alive: Duration::from_secs(60),
    };

    #[tokio::test]
    async fn a_request_clears_the_deadline_and_its_end_starts_the_keep_alive_one() {
        let admission = Admission::new(4);
        let conn = admission.admit().await;
        let (_, why) = conn
            .activity
            .deadline(&LIMITS)
            .expect("fresh has a deadline");
        assert_eq!(why, Closed::HeaderTimeout);
        let guard = conn.activity.begin();
        assert!(conn.activity.deadline(&LIMITS).is_none());
        drop(guard);
        assert_eq!(
            conn.activity.deadline(&LIMITS).map(|d| d.1),
            Some(Closed::IdleTimeout)
        );
        conn.activity.received();
        assert_eq!(
            conn.activity.deadline(&LIMITS).map(|d| d.1),
            Some(Closed::HeaderTimeout)
        );
    }

    #[tokio::test]
    async fn at_the_limit_the_longest_waiting_connection_gives_way_and_busy_ones_stay() {
        let admission = Admission::new(2);
        let busy = admission.admit().await;
        let _serving = busy.activity.begin();
        let waiting = admission.admit().await;
        let admit = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit().await }
        });
        // The waiting connection is told to leave; the busy one is not.
        tokio::time::timeout(Duration::from_secs(5), waiting.activity.changed())
            .await
            .expect("the waiting connection is evicted");
        assert!(waiting.activity.is_evicted());
        assert!(!busy.activity.is_evicted());
        drop(waiting);
        let newcomer = tokio::time::timeout(Duration::from_secs(5), admit)
            .await
            .expect("the new connection gets the place")
            .expect("admit task");
        assert!(!newcomer.activity.is_evicted());
    }
}
