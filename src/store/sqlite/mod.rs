//! The embedded store: one SQLite file in WAL mode, one group-committing writer thread
//! and a small pool of reader connections that run concurrently with it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::config::{invalid, ConfigError, Vars};
use crate::domain::event::NewEvent;
use crate::domain::period::PeriodKey;
use crate::domain::progression::Progress;
use crate::domain::ranking::RankedEntry;
use crate::domain::rules::Rules;
use crate::store::writer_channel::WriterChannel;
use crate::store::{AchievementCounts, ProgressStore, UserRecompute};
use crate::store::{
    DailyTypeTotal, Export, HistoryQuery, Ledger, Lifecycle, Recorded, RulesLog, RulesVersion,
    Standing, StoreError, StoredEvent, TimeRange, TopUsersQuery, UserCounters, UserPoints,
    UserTotal, WebhookQueue,
};
use crate::webhooks::{
    AttemptResult, Delivery, DeliveryStatus, DueDelivery, NewSubscription, Replay, Subscription,
};

mod checkpoint;
mod export;
mod from_ledger;
mod lock;
mod outbox;
mod pending;
mod progress;
mod read;
mod recompute;
mod rules;
mod schema;
mod stats;
mod webhooks;
mod writer;

/// How hard a commit waits for the disk (`SQLITE_SYNCHRONOUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged event survives power loss (default).
    Full,
    /// WAL fsync at checkpoints only: survives a process crash, may lose the last
    /// commits on power loss. Faster on slow disks.
    Normal,
}

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// `SQLITE_PATH` (default `data/eventtracker.db`); its folder is created when missing.
    pub path: PathBuf,
    /// `SQLITE_SYNCHRONOUS` (default `full`).
    pub synchronous: Synchronous,
}

impl SqliteConfig {
    pub fn from_vars(vars: &Vars) -> Result<SqliteConfig, ConfigError> {
        let synchronous = match vars
            .get("SQLITE_SYNCHRONOUS")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("full") => Synchronous::Full,
            Some("normal") => Synchronous::Normal,
            Some(other) => return Err(invalid("SQLITE_SYNCHRONOUS", other, "full or normal")),
        };
        Ok(SqliteConfig {
            path: PathBuf::from(vars.get("SQLITE_PATH").unwrap_or("data/eventtracker.db")),
            synchronous,
        })
    }

    /// Whether [`SqliteStore::open`] can use `path`, found without creating anything
    /// (for `check-config`): an existing database must be a file; a missing one needs
    /// its folder to exist or be creatable, that is the nearest existing folder on the
    /// way up must be a directory this process may write in.
    pub fn check_location(&self) -> Result<(), ConfigError> {
        let path = &self.path;
        let refuse = |problem: String| ConfigError::new("SQLITE_PATH", problem);
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(refuse(format!(
                    "{} is a folder, not a database file",
                    path.display()
                )))
            }
            Ok(_) => return Ok(()),
            Err(e) if missing(&e) => {}
            Err(e) => return Err(refuse(format!("cannot use {}: {e}", path.display()))),
        }
        let folder = parent_folder(path);
        let mut existing = folder;
        loop {
            match std::fs::metadata(existing) {
                Ok(m) if m.is_dir() => break,
                Ok(_) => {
                    return Err(refuse(format!(
                        "cannot create folder {}: {} is not a folder",
                        folder.display(),
                        existing.display()
                    )))
                }
                Err(e) if missing(&e) && parent_folder(existing) != existing => {
                    existing = parent_folder(existing);
                }
                Err(e) => {
                    return Err(refuse(format!(
                        "cannot create folder {}: {e}",
                        folder.display()
                    )))
                }
            }
        }
        if !may_write_in(existing) {
            let what = if existing == folder {
                format!("cannot create the database {}", path.display())
            } else {
                format!("cannot create folder {}", folder.display())
            };
            return Err(refuse(format!(
                "{what}: no permission to write in {}",
                existing.display()
            )));
        }
        Ok(())
    }
}

/// Not there: no such entry, or a file where a folder would be on the way.
fn missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// The folder holding `path`: `.` for a bare file name, `/` above the root.
fn parent_folder(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => path,
    }
}

/// Whether entries can be created in the directory `dir` (write and search permission
/// for this process, on a file system mounted writable).
fn may_write_in(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c_path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
        unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
    }
}

pub struct SqliteStore {
    writer: WriterChannel<writer::Command>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<checkpoint::Checkpointer>>,
    /// The connection of [`SqliteStore::write_aside`], opened on first use.
    aside: Arc<Mutex<Option<Connection>>>,
    readers: Arc<Readers>,
    /// Whether the counter tables lag the ledger (changes held by the writer until its
    /// next checkpoint): reads of them ask for one first.
    lagging: Arc<AtomicBool>,
    /// Those held changes, which a user's total adds to the rows.
    held: Arc<std::sync::RwLock<pending::Held>>,
    /// Released at close, once the writer has finished.
    lock: Mutex<Option<lock::FileLock>>,
}

/// Idle reader connections; more are opened on demand when all are busy.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Maintained by the writer: false while the file cannot be opened for writing.
    writable: Arc<AtomicBool>,
}

const MAX_IDLE_READERS: usize = 16;

impl Readers {
    fn new(path: &Path, writable: Arc<AtomicBool>) -> Readers {
        Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            writable,
        }
    }

    fn take(&self) -> rusqlite::Result<Connection> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        // Opening is lazy in SQLite: touch the schema so a file that cannot be read fails here.
        let probe = |c: Connection| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                .map(|()| c)
        };
        let conn = match Connection::open(&self.path).and_then(probe) {
            Ok(c) => c,
            // On a read-only file system a WAL database cannot be opened normally (its
            // shared-memory file cannot be created); nobody can change it there, so
            // reading it as immutable is exact.
            Err(_) if !self.writable.load(Ordering::Relaxed) => Connection::open_with_flags(
                format!("file:{}?immutable=1", self.path.display()),
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )?,
            Err(e) => return Err(e),
        };
        conn.pragma_update(None, "query_only", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        // Connections opened while the file was read-only may be immutable ones that would
        // not see later writes: keep only connections from a writable period.
        if !self.writable.load(Ordering::Relaxed) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database and starts the writer.
    pub fn open(config: &SqliteConfig) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow!("SQLITE_PATH: cannot create folder {}: {e}", dir.display()))?;
        }
        let lock = lock::FileLock::acquire(&config.path)?;
        let (path, sync) = (config.path.clone(), config.synchronous);
        let open = move || open_writer(&path, sync);
        let writable = Arc::new(AtomicBool::new(true));
        let conn = match open() {
            Ok(conn) => Some(conn),
            // An existing database that cannot be written (read-only file system, full
            // disk at start) is still worth serving reads from; the writer retries.
            Err(e) if config.path.exists() => {
                tracing::error!(path = %config.path.display(), error = %e, "the SQLite database is not writable: serving reads only, writes answer 503 until it is");
                writable.store(false, Ordering::Relaxed);
                None
            }
            Err(e) => {
                return Err(anyhow!(
                    "SQLITE_PATH: cannot open SQLite database {}: {e}",
                    config.path.display()
                ))
            }
        };
        let (channel, rx) = WriterChannel::new();
        let readers = Arc::new(Readers::new(&config.path, writable.clone()));
        // What the counters lack after a crash: the ledger's tail past the last
        // checkpoint, counted now (on a read connection, so a read-only file works too).
        // Unknown if it cannot be read yet: then the writer counts it before its next
        // write, and reads ask it to.
        let held = match readers.take().and_then(|c| pending::Pending::from_tail(&c)) {
            Ok((pending, generation)) => {
                if !pending.is_empty() {
                    tracing::info!(
                        rows = pending.rows(),
                        "counted the ledger's tail past the last counter checkpoint"
                    );
                }
                pending::Held {
                    pending,
                    generation,
                    known: true,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the ledger's tail yet");
                pending::Held::default()
            }
        };
        let lagging = Arc::new(AtomicBool::new(!held.known || !held.pending.is_empty()));
        let held = Arc::new(std::sync::RwLock::new(held));
        let writer = writer::Writer {
            conn,
            open: Box::new(open),
            writable: writable.clone(),
            held: held.clone(),
            lagging: lagging.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(writer, rx))?;
        Ok(SqliteStore {
            writer: channel,
            aside: Arc::new(Mutex::new(None)),
            writer_thread: Mutex::new(Some(handle)),
            checkpointer: Mutex::new(Some(checkpoint::Checkpointer::start(config.path.clone())?)),
            readers,
            lagging,
            held,
            lock: Mutex::new(Some(lock)),
        })
    }

    /// Whether the counter tables hold every acknowledged write, asking the writer to
    /// checkpoint first when they lag the ledger (free when nothing is held). False
    /// when they lag and it cannot write just now (a full disk): then reads compute
    /// from the ledger (from_ledger.rs), which is exact in any snapshot.
    async fn counters_current(&self) -> Result<bool, StoreError> {
        if !self.lagging.load(Ordering::SeqCst) {
            return Ok(true);
        }
        match self
            .writer
            .send(|reply| writer::Command::Checkpoint { reply })
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::Unavailable(e)) => {
                tracing::debug!(error = %e, "counters lag the ledger: reading from the ledger");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// A user's all-time totals: the rows plus what the writer holds for the user, read
    /// without waiting for it. The held changes and the rows must be of the same
    /// generation (no checkpoint in between, which would count them twice); on the
    /// rare race the read is made again. None when what is held is not known yet.
    fn all_time_points(&self, user_id: &str) -> Result<Option<UserPoints>, StoreError> {
        for _ in 0..100 {
            let (generation, held) = {
                let h = writer::read_lock(&self.held);
                if !h.known {
                    return Ok(None);
                }
                (h.generation, h.pending.types_of(user_id).cloned())
            };
            let read = self.read_now(|c| {
                let tx = c.unchecked_transaction()?;
                let seen = pending::generation(&tx)?;
                let points = read::user_points(&tx, user_id, TimeRange::default())?;
                tx.finish()?;
                Ok((seen, points))
            });
            let (seen, mut points) = read?;
            if seen == generation {
                if let Some(held) = &held {
                    pending::add_held(held, &mut points);
                }
                return Ok(Some(points));
            }
        }
        Ok(None)
    }

    /// Copies of the counters (for a cache rebuild) come from the tables only.
    async fn export_ready(&self) -> Result<(), StoreError> {
        if self.counters_current().await? {
            return Ok(());
        }
        Err(StoreError::Unavailable(anyhow!(
            "the SQLite counters lag the ledger and cannot be brought up to date now"
        )))
    }

    /// The file for reading only, beside the server that may be writing it: no lock,
    /// no writer. Counters another process may hold are not visible here, so every
    /// counter read is computed from the ledger (as when the writer cannot checkpoint),
    /// which is exact; writes answer "unavailable". For `export`, which reads the
    /// ledger, so that a backup does not need the server stopped.
    pub fn open_reader(config: &SqliteConfig) -> anyhow::Result<SqliteStore> {
        if !config.path.is_file() {
            return Err(anyhow!(
                "SQLITE_PATH: no SQLite database at {}",
                config.path.display()
            ));
        }
        let (writer, _closed) = WriterChannel::new();
        writer.close();
        Ok(SqliteStore {
            writer,
            writer_thread: Mutex::new(None),
            checkpointer: Mutex::new(None),
            aside: Arc::new(Mutex::new(None)),
            readers: Arc::new(Readers::new(&config.path, Arc::new(AtomicBool::new(true)))),
            lagging: Arc::new(AtomicBool::new(true)),
            held: Arc::new(std::sync::RwLock::new(pending::Held::default())),
            lock: Mutex::new(None),
        })
    }

    /// Runs a read whose cost is a few index lookups right here on the async thread:
    /// handing it to the blocking pool costs two thread switches, several times the
    /// query itself (the point-read profile in docs/benchmark.md). WAL readers do not
    /// wait for the writer, so this does not block on writes.
    fn read_now<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.take().map_err(|e| map_err(&e))?;
        let result = f(&conn);
        self.readers.give_back(conn);
        result.map_err(|e| map_err(&e))
    }

    /// Runs a small, rare write (rules activation, webhook bookkeeping) on a connection
    /// of its own off the async threads, rather than through the ingest writer;
    /// SQLite's write lock orders it with the writer and with other processes.
    async fn write_aside<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (path, aside) = (self.readers.path.clone(), self.aside.clone());
        tokio::task::spawn_blocking(move || {
            // One connection, kept between calls: the webhook worker writes once per
            // delivery, and opening a connection each time costs more than the write.
            let mut slot = aside.lock().unwrap_or_else(|p| p.into_inner());
            let conn = match slot.as_mut() {
                Some(c) => c,
                None => {
                    let c = Connection::open(&path)?;
                    c.busy_timeout(std::time::Duration::from_secs(5))?;
                    c.pragma_update(None, "synchronous", "FULL")?;
                    slot.insert(c)
                }
            };
            let result = f(conn);
            if result.is_err() {
                // It may be the connection (a file that went read-only): open afresh.
                *slot = None;
            }
            result
        })
        .await
        .map_err(|e| StoreError::Internal(anyhow!("write task failed: {e}")))?
        .map_err(|e| map_err(&e))
    }

    /// Runs a read on a pooled connection off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = f(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Internal(anyhow!("read task failed: {e}")))?
        .map_err(|e| map_err(&e))
    }
}

/// Leaderboard pages ending within this many rows are read on the async thread.
const INLINE_LEADERBOARD_ROWS: u64 = 1_000;
const WRITER_CACHE_KIB: i64 = 64 * 1024;
const WAL_CHECKPOINT_PAGES: i64 = 16 * 1024;

fn open_writer(path: &Path, synchronous: Synchronous) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // Ingest touches counter and index pages spread over every active user; with the
    // default 2 MiB cache the writer spent its time re-reading them from the OS (see
    // docs/benchmark.md). Negative means KiB.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // Checkpoints are the checkpointer thread's job (checkpoint.rs); this automatic
    // one, at 64 MiB of WAL, is only the backstop if that thread falls behind.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// Conditions a retry may outlive are "unavailable" (503); anything else is a bug or
/// corruption (500).
pub(crate) fn map_err(e: &rusqlite::Error) -> StoreError {
    let transient = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::PermissionDenied
                | ErrorCode::OutOfMemory
        )
    );
    let err = anyhow!("sqlite: {e}");
    if transient {
        StoreError::Unavailable(err)
    } else {
        StoreError::Internal(err)
    }
}

#[async_trait]
impl Ledger for SqliteStore {
    async fn record(&self, events: Vec<NewEvent>) -> Result<Recorded, StoreError> {
        if events.is_empty() {
            return Ok(Recorded::default());
        }
        self.writer
            .send(|reply| writer::Command::Record { events, reply })
            .await
    }

    async fn user_points(&self, user_id: &str, range: TimeRange) -> Result<UserPoints, StoreError> {
        if range.from_ms.is_none() && range.to_ms.is_none() {
            // Counter rows only: O(event types), whatever the history. With nothing
            // held the rows are the whole answer (a write committing meanwhile has not
            // been acknowledged yet).
            if !self.lagging.load(Ordering::SeqCst) {
                return self.read_now(|c| read::user_points(c, user_id, range));
            }
            if let Some(points) = self.all_time_points(user_id)? {
                return Ok(points);
            }
            if !self.counters_current().await? {
                let user_id = user_id.to_owned();
                return self
                    .read(move |c| from_ledger::user_points(c, &user_id))
                    .await;
            }
            return self.read_now(|c| read::user_points(c, user_id, range));
        }
        let user_id = user_id.to_owned();
        self.read(move |c| read::user_points(c, &user_id, range))
            .await
    }

    async fn user_events(&self, query: HistoryQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |c| read::user_events(c, &query)).await
    }

    async fn top_users(&self, query: TopUsersQuery) -> Result<Vec<UserTotal>, StoreError> {
        if !self.counters_current().await? {
            return self.read(move |c| from_ledger::top_users(c, &query)).await;
        }
        self.read(move |c| read::top_users(c, &query)).await
    }

    async fn leaderboard(
        &self,
        period: &PeriodKey,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<RankedEntry>, StoreError> {
        if !self.counters_current().await? {
            let period = period.clone();
            return self
                .read(move |c| from_ledger::leaderboard(c, &period, limit, offset))
                .await;
        }
        if offset + u64::from(limit) <= INLINE_LEADERBOARD_ROWS {
            // A short walk of the rank index from its start.
            return self.read_now(|c| read::leaderboard(c, &period.key, limit, offset));
        }
        let key = period.key.clone();
        self.read(move |c| read::leaderboard(c, &key, limit, offset))
            .await
    }

    async fn standing(
        &self,
        period: &PeriodKey,
        user_id: &str,
        around: u32,
    ) -> Result<Standing, StoreError> {
        let user_id = user_id.to_owned();
        if !self.counters_current().await? {
            let period = period.clone();
            return self
                .read(move |c| from_ledger::standing(c, &period, &user_id, around))
                .await;
        }
        let key = period.key.clone();
        self.read(move |c| read::standing(c, &key, &user_id, around))
            .await
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let user_id = user_id.to_owned();
        self.writer
            .send(|reply| writer::Command::DeleteUser { user_id, reply })
            .await
    }

    async fn daily_stats(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DailyTypeTotal>, StoreError> {
        self.read(move |c| stats::daily_stats(c, from_ms, to_ms))
            .await
    }

    async fn recompute_user(
        &self,
        user_id: &str,
        rules: Arc<Rules>,
        apply: bool,
    ) -> Result<UserRecompute, StoreError> {
        let user_id = user_id.to_owned();
        if apply {
            return self
                .writer
                .send(|reply| writer::Command::Recompute {
                    user_id,
                    rules,
                    reply,
                })
                .await;
        }
        self.read(move |c| recompute::user(c, &user_id, &rules, false))
            .await
    }
}

#[async_trait]
impl RulesLog for SqliteStore {
    async fn activate_rules(
        &self,
        hash: &str,
        text: &str,
        now_ms: i64,
    ) -> Result<RulesVersion, StoreError> {
        let (hash, text) = (hash.to_owned(), text.to_owned());
        self.write_aside(move |c| rules::activate(c, &hash, &text, now_ms))
            .await
    }

    async fn rules_versions(&self) -> Result<Vec<RulesVersion>, StoreError> {
        self.read(rules::versions).await
    }

    async fn rules_content(&self, version: i64) -> Result<Option<String>, StoreError> {
        self.read(move |c| rules::content(c, version)).await
    }
}

#[async_trait]
impl WebhookQueue for SqliteStore {
    async fn upsert_webhook(
        &self,
        new: NewSubscription,
        now_ms: i64,
    ) -> Result<Subscription, StoreError> {
        self.write_aside(move |c| webhooks::upsert(c, &new, now_ms))
            .await
    }

    async fn webhooks(&self) -> Result<Vec<Subscription>, StoreError> {
        self.read(webhooks::list).await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write_aside(move |c| webhooks::delete(c, &id)).await
    }

    async fn webhook_deliveries(
        &self,
        subscription_id: &str,
        status: Option<DeliveryStatus>,
        limit: u32,
    ) -> Result<Option<Vec<Delivery>>, StoreError> {
        let id = subscription_id.to_owned();
        self.read(move |c| webhooks::deliveries(c, &id, status, limit))
            .await
    }

    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: u32,
        _claim_ms: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // One process per database file, whose worker sends one batch at a time:
        // nobody else to claim deliveries from.
        self.read(move |c| webhooks::due(c, now_ms, limit)).await
    }

    async fn prune_deliveries(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.write_aside(move |c| webhooks::prune(c, before_ms))
            .await
    }

    async fn record_attempt(
        &self,
        delivery_id: &str,
        result: AttemptResult,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let id = delivery_id.to_owned();
        self.write_aside(move |c| webhooks::record_attempt(c, &id, &result, now_ms))
            .await
    }

    async fn replay_deliveries(
        &self,
        subscription_id: &str,
        delivery_ids: Option<Vec<String>>,
        now_ms: i64,
    ) -> Result<Option<Replay>, StoreError> {
        let sub = subscription_id.to_owned();
        self.write_aside(move |c| webhooks::replay(c, &sub, delivery_ids, now_ms))
            .await
    }
}

#[async_trait]
impl ProgressStore for SqliteStore {
    async fn user_progress(&self, user_id: &str) -> Result<Progress, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |c| progress::load(c, &user_id)).await
    }

    async fn set_timezone(&self, user_id: &str, timezone: &str) -> Result<(), StoreError> {
        let (user_id, timezone) = (user_id.to_owned(), timezone.to_owned());
        self.writer
            .send(|reply| writer::Command::SetTimezone {
                user_id,
                timezone,
                reply,
            })
            .await
    }

    async fn wallet_op(
        &self,
        user_id: &str,
        op: crate::domain::engine::WalletOp,
        rules: Arc<Rules>,
        now_ms: i64,
    ) -> Result<crate::store::WalletResult, StoreError> {
        let user_id = user_id.to_owned();
        self.writer
            .send(|reply| writer::Command::Wallet {
                user_id,
                op,
                rules,
                now_ms,
                reply,
            })
            .await
    }

    async fn wallet_entries(
        &self,
        user_id: &str,
        before: Option<crate::store::HistoryCursor>,
        limit: u32,
    ) -> Result<Vec<crate::domain::wallet::WalletEntry>, StoreError> {
        let user_id = user_id.to_owned();
        let before = before.map(|c| (c.ts_ms, c.id));
        self.read(move |c| progress::wallet_entries(c, &user_id, before, limit))
            .await
    }

    async fn due_wallets(&self, now_ms: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(move |c| progress::due_wallets(c, now_ms, limit))
            .await
    }

    async fn achievement_counts(&self) -> Result<AchievementCounts, StoreError> {
        if !self.counters_current().await? {
            return self
                .read(|c| {
                    let mut counts = progress::counts(c)?;
                    counts.users = from_ledger::user_count(c)?;
                    Ok(counts)
                })
                .await;
        }
        self.read(progress::counts).await
    }
}

#[async_trait]
impl Export for SqliteStore {
    async fn user_ids(&self, after: Option<String>, limit: u32) -> Result<Vec<String>, StoreError> {
        if !self.counters_current().await? {
            // The ledger lists every user too, at the cost of walking their events.
            return self
                .read(move |c| from_ledger::user_ids(c, after.as_deref(), limit))
                .await;
        }
        self.read(move |c| export::user_ids(c, after.as_deref(), limit))
            .await
    }

    async fn user_counters(&self, user_ids: Vec<String>) -> Result<Vec<UserCounters>, StoreError> {
        self.export_ready().await?;
        self.read(move |c| export::user_counters(c, &user_ids))
            .await
    }
}

#[async_trait]
impl Lifecycle for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.writer.sender()?;
        if !self.readers.writable.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable(anyhow!(
                "the SQLite database is not writable"
            )));
        }
        // Ready means the counters have caught up with the ledger (after a crash, the
        // writer counts the tail past the last checkpoint first).
        if !self.counters_current().await? {
            return Err(StoreError::Unavailable(anyhow!(
                "the SQLite counters cannot be brought up to date with the ledger"
            )));
        }
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn close(&self) {
        // Dropping the last sender lets the writer finish what is queued and exit.
        self.writer.close();
        let handle = self
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        let checkpointer = self
            .checkpointer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(c) = checkpointer {
            let _ = tokio::task::spawn_blocking(move || c.stop()).await;
        }
        // Only now may another process take the file over.
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars;

    fn config(pairs: &[(&str, &str)]) -> Result<SqliteConfig, ConfigError> {
        SqliteConfig::from_vars(&Vars::new(&test_vars(pairs)))
    }

    #[test]
    fn the_database_is_durable_by_default_and_names_bad_settings() {
        let c = config(&[]).unwrap();
        assert_eq!(c.path, PathBuf::from("data/eventtracker.db"));
        assert_eq!(c.synchronous, Synchronous::Full, "durable by default");
        let c = config(&[
            ("SQLITE_PATH", "/tmp/x.db"),
            ("SQLITE_SYNCHRONOUS", "NORMAL"),
        ])
        .unwrap();
        assert_eq!(c.path, PathBuf::from("/tmp/x.db"));
        assert_eq!(c.synchronous, Synchronous::Normal);
        assert_eq!(
            config(&[("SQLITE_SYNCHRONOUS", "off")]).unwrap_err().var,
            "SQLITE_SYNCHRONOUS"
        );
    }

    fn at(path: &Path) -> SqliteConfig {
        SqliteConfig {
            path: path.to_owned(),
            synchronous: Synchronous::Full,
        }
    }

    #[test]
    fn the_location_check_creates_nothing_and_names_sqlite_path() {
        let dir = tempfile::tempdir().unwrap();
        // A folder to be created, several levels deep: fine, and still not there.
        let deep = dir.path().join("a/b/c/et.db");
        at(&deep).check_location().unwrap();
        assert!(
            !dir.path().join("a").exists(),
            "check-config creates nothing"
        );
        at(&dir.path().join("et.db")).check_location().unwrap();
        at(Path::new("et.db")).check_location().unwrap();
        // An existing database file is fine.
        let db = dir.path().join("existing.db");
        std::fs::write(&db, "").unwrap();
        at(&db).check_location().unwrap();

        let e = at(dir.path()).check_location().unwrap_err();
        assert_eq!(e.var, "SQLITE_PATH");
        assert!(e.problem.contains("is a folder"), "{e}");
        // A folder would have to be created under a file.
        let e = at(&db.join("data/et.db")).check_location().unwrap_err();
        assert_eq!(e.var, "SQLITE_PATH");
        assert!(
            e.problem.contains("cannot create folder") && e.problem.contains("is not a folder"),
            "{e}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_location_check_refuses_a_folder_it_cannot_write_in() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
        // Root may write anywhere: then there is nothing to refuse.
        if std::fs::write(locked.join("probe"), "").is_ok() {
            return;
        }
        for path in [locked.join("et.db"), locked.join("data/et.db")] {
            let e = at(&path).check_location().unwrap_err();
            assert_eq!(e.var, "SQLITE_PATH");
            assert!(e.problem.contains("no permission to write in"), "{e}");
        }
    }
}
