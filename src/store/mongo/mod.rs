//! The MongoDB store: the same ledger and counters as SQLite, as events, one state
//! document per user and period archives (state.rs), one group-committing writer task,
//! and reads straight from the driver's pool.
//! With transactions (replica set, sharded cluster) each group commits atomically;
//! on a standalone server writes are journaled and converge (see commit.rs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use mongodb::bson::{doc, Document};
use mongodb::options::{
    Acknowledgment, ClientOptions, DatabaseOptions, ReadConcern, TransactionOptions,
};
use mongodb::{Client, Collection, Database};
use tokio::task::JoinHandle;

use crate::domain::event::NewEvent;
use crate::domain::period::PeriodKey;
use crate::domain::ranking::RankedEntry;
use crate::domain::rules::Rules;
use crate::store::writer_channel::WriterChannel;
use crate::store::UserRecompute;
use crate::store::{
    DailyTypeTotal, Export, HistoryQuery, Ledger, Lifecycle, Recorded, RulesLog, RulesVersion,
    Standing, StoreError, StoredEvent, TimeRange, TopUsersQuery, UserCounters, UserPoints,
    UserTotal, WebhookQueue,
};
use crate::webhooks::{
    AttemptResult, Delivery, DeliveryStatus, DueDelivery, NewSubscription, Replay, Subscription,
};

mod board;
mod boards;
mod bulk_commands;
mod commit;
mod connection;
mod erase;
mod error;
mod export;
mod journaled;
mod judge;
mod migrate;
mod monitor;
mod outbox;
mod progress;
mod read;
mod recompute;
mod recovery;
mod rules;
pub mod schema;
mod state;
mod stats;
mod transactional;
mod txn;
mod wallet;
mod webhooks;
mod writer;

pub use connection::{MongoConfig, WriteConcern};
use error::to_store;
pub use recovery::GRACE_MS as RECOVERY_GRACE_MS;
use schema::EventDoc;

/// Short, so that /readyz and requests answer quickly (503) while MongoDB is down.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bounds a read the server is slow to answer (the driver has no socket timeout).
const READ_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Multi-document transactions are available (replica set or mongos).
    Transactions,
    /// A standalone server: pending marks and guarded counters instead.
    Journal,
}

/// What the writer, recovery and reads share.
pub(crate) struct Ctx {
    client: Client,
    db: Database,
    events: Collection<EventDoc>,
    mode: Mode,
    /// `{w: ...}` for commands built by hand, which the database defaults do not reach.
    write_concern: Document,
    transaction: TransactionOptions,
}

pub struct MongoStore {
    ctx: Arc<Ctx>,
    writer: WriterChannel<writer::Command>,
    writer_task: Mutex<Option<JoinHandle<()>>>,
}

impl MongoStore {
    /// Connects, creates the indexes, finishes writes an earlier run left unfinished and
    /// starts the writer. Fails if MongoDB cannot be reached.
    pub async fn open(config: &MongoConfig) -> anyhow::Result<MongoStore> {
        let mut options = ClientOptions::parse(&config.url)
            .await
            .context("MONGO_URL: invalid connection string")?;
        options
            .app_name
            .get_or_insert_with(|| "eventtracker".into());
        options
            .server_selection_timeout
            .get_or_insert(SERVER_SELECTION_TIMEOUT);
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.command_event_handler = Some(monitor::handler());
        let client = Client::with_options(options)?;

        // `j: true` on every write: an acknowledged event must survive a crash of the
        // server too, also on a standalone server, where `w` alone only means "in memory".
        let (write_concern, wc_doc) = match config.write_concern {
            WriteConcern::Majority => (
                mongodb::options::WriteConcern::builder()
                    .w(Acknowledgment::Majority)
                    .journal(true)
                    .build(),
                doc! { "w": "majority", "j": true },
            ),
            WriteConcern::Nodes(n) => (
                mongodb::options::WriteConcern::builder()
                    .w(Acknowledgment::Nodes(n))
                    .journal(true)
                    .build(),
                doc! { "w": i64::from(n), "j": true },
            ),
        };
        let read_concern = match config.read_concern.as_str() {
            "local" => ReadConcern::local(),
            "available" => ReadConcern::available(),
            "linearizable" => ReadConcern::linearizable(),
            _ => ReadConcern::majority(),
        };
        // Transactions allow only local, majority or snapshot reads.
        let transaction_read = match config.read_concern.as_str() {
            "local" | "available" => ReadConcern::local(),
            _ => ReadConcern::majority(),
        };
        let db = client.database_with_options(
            &config.database,
            DatabaseOptions::builder()
                .write_concern(write_concern.clone())
                .read_concern(read_concern)
                .build(),
        );
        let mode = detect_mode(&db)
            .await
            .with_context(|| format!("cannot reach MongoDB (database {})", config.database))?;
        schema::create_indexes(&db)
            .await
            .context("cannot create the MongoDB indexes")?;
        migrate::from_type_totals(&db).await?;
        let ctx = Arc::new(Ctx {
            events: db.collection(schema::EVENTS),
            client,
            db,
            mode,
            write_concern: wc_doc,
            transaction: TransactionOptions::builder()
                .read_concern(transaction_read)
                .write_concern(write_concern)
                .build(),
        });
        tracing::info!(database = %config.database, ?mode, "connected to MongoDB");
        if let Err(e) = recovery::run(&ctx, commit::wall_ms()).await {
            // Not fatal: the writer retries periodically.
            tracing::warn!(error = %e, "mongodb recovery at start failed");
        }
        // With transactions, periodic passes only look for leftovers of an earlier
        // standalone run (see writer.rs): none, none needed.
        let recovering =
            ctx.mode == Mode::Journal || !matches!(recovery::nothing_left(&ctx).await, Ok(true));
        let (writer, rx) = WriterChannel::new();
        let task = tokio::spawn(writer::run(ctx.clone(), rx, recovering));
        Ok(MongoStore {
            ctx,
            writer,
            writer_task: Mutex::new(Some(task)),
        })
    }

    async fn read<T>(
        &self,
        f: impl std::future::Future<Output = mongodb::error::Result<T>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(READ_TIMEOUT, f)
            .await
            .map_err(|_| error::timed_out("read"))?
            .map_err(to_store)
    }
}

/// Transactions need a replica set (`setName`) or a mongos (`msg: isdbgrid`).
async fn detect_mode(db: &Database) -> mongodb::error::Result<Mode> {
    let hello = match db.run_command(doc! { "hello": 1 }).await {
        Ok(reply) => reply,
        // Servers older than 4.4.2 know only the legacy name.
        Err(_) => db.run_command(doc! { "isMaster": 1 }).await?,
    };
    let replica_set = hello.get_str("setName").is_ok();
    let mongos = hello.get_str("msg") == Ok("isdbgrid");
    Ok(if replica_set || mongos {
        Mode::Transactions
    } else {
        Mode::Journal
    })
}

#[async_trait]
impl Ledger for MongoStore {
    async fn record(&self, events: Vec<NewEvent>) -> Result<Recorded, StoreError> {
        if events.is_empty() {
            return Ok(Recorded::default());
        }
        self.writer
            .send(|reply| writer::Command::Record { events, reply })
            .await
    }

    async fn user_points(&self, user_id: &str, range: TimeRange) -> Result<UserPoints, StoreError> {
        self.read(read::user_points(&self.ctx.db, user_id, range))
            .await
    }

    async fn user_events(&self, query: HistoryQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(read::user_events(&self.ctx.db, &query)).await
    }

    async fn top_users(&self, query: TopUsersQuery) -> Result<Vec<UserTotal>, StoreError> {
        self.read(read::top_users(&self.ctx.db, &query)).await
    }

    async fn leaderboard(
        &self,
        period: &PeriodKey,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<RankedEntry>, StoreError> {
        self.read(read::leaderboard(&self.ctx.db, &period.key, limit, offset))
            .await
    }

    async fn standing(
        &self,
        period: &PeriodKey,
        user_id: &str,
        around: u32,
    ) -> Result<Standing, StoreError> {
        self.read(read::standing(&self.ctx.db, &period.key, user_id, around))
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
        self.read(stats::daily_stats(&self.ctx.db, from_ms, to_ms))
            .await
    }

    async fn recompute_user(
        &self,
        user_id: &str,
        rules: Arc<Rules>,
        apply: bool,
    ) -> Result<UserRecompute, StoreError> {
        if !apply {
            return self
                .read(recompute::dry_run(&self.ctx, user_id, &rules))
                .await;
        }
        if self.ctx.mode != Mode::Transactions {
            return Err(StoreError::Unsupported(
                "recompute --apply needs MongoDB transactions (a replica set or sharded cluster); a dry run works on a standalone server".into(),
            ));
        }
        // Writes, so bounded by the write deadline rather than the read one.
        tokio::time::timeout(
            writer::WRITE_TIMEOUT,
            recompute::apply(&self.ctx, user_id, &rules),
        )
        .await
        .map_err(|_| error::timed_out("recompute"))?
        .map_err(to_store)
    }
}

#[async_trait]
impl RulesLog for MongoStore {
    async fn activate_rules(
        &self,
        hash: &str,
        text: &str,
        now_ms: i64,
    ) -> Result<RulesVersion, StoreError> {
        self.read(rules::activate(&self.ctx.db, hash, text, now_ms))
            .await
    }

    async fn rules_versions(&self) -> Result<Vec<RulesVersion>, StoreError> {
        self.read(rules::versions(&self.ctx.db)).await
    }

    async fn rules_content(&self, version: i64) -> Result<Option<String>, StoreError> {
        self.read(rules::content(&self.ctx.db, version)).await
    }
}

#[async_trait]
impl WebhookQueue for MongoStore {
    async fn upsert_webhook(
        &self,
        new: NewSubscription,
        now_ms: i64,
    ) -> Result<Subscription, StoreError> {
        self.read(webhooks::upsert(&self.ctx.db, &new, now_ms))
            .await
    }

    async fn webhooks(&self) -> Result<Vec<Subscription>, StoreError> {
        self.read(webhooks::list(&self.ctx.db)).await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        self.read(webhooks::delete(&self.ctx.db, id)).await
    }

    async fn webhook_deliveries(
        &self,
        subscription_id: &str,
        status: Option<DeliveryStatus>,
        limit: u32,
    ) -> Result<Option<Vec<Delivery>>, StoreError> {
        self.read(webhooks::deliveries(
            &self.ctx.db,
            subscription_id,
            status,
            limit,
        ))
        .await
    }

    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: u32,
        claim_ms: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.read(webhooks::due(&self.ctx, now_ms, limit, claim_ms))
            .await
    }

    async fn prune_deliveries(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.read(webhooks::prune(&self.ctx.db, before_ms)).await
    }

    async fn record_attempt(
        &self,
        delivery_id: &str,
        result: AttemptResult,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.read(webhooks::record_attempt(
            &self.ctx,
            delivery_id,
            &result,
            now_ms,
        ))
        .await
    }

    async fn replay_deliveries(
        &self,
        subscription_id: &str,
        delivery_ids: Option<Vec<String>>,
        now_ms: i64,
    ) -> Result<Option<Replay>, StoreError> {
        self.read(webhooks::replay(
            &self.ctx.db,
            subscription_id,
            delivery_ids,
            now_ms,
        ))
        .await
    }
}

#[async_trait]
impl crate::store::ProgressStore for MongoStore {
    async fn wallet_op(
        &self,
        user_id: &str,
        op: crate::domain::engine::WalletOp,
        rules: Arc<Rules>,
        now_ms: i64,
    ) -> Result<crate::store::WalletResult, StoreError> {
        if self.ctx.mode != Mode::Transactions {
            // Two instances' read-modify-writes of one wallet could both spend the
            // same points: only a transaction's write conflict serializes them.
            return Err(StoreError::Unsupported(
                "wallet operations need MongoDB transactions (a replica set or sharded cluster); a standalone server keeps the balances but cannot spend from them".into(),
            ));
        }
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
        self.read(wallet::entries(&self.ctx, user_id, before, limit))
            .await
    }

    async fn due_wallets(&self, now_ms: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(wallet::due(&self.ctx, now_ms, limit)).await
    }

    async fn user_progress(
        &self,
        user_id: &str,
    ) -> Result<crate::domain::progression::Progress, StoreError> {
        self.read(progress::user_progress(&self.ctx, user_id)).await
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

    async fn achievement_counts(&self) -> Result<crate::store::AchievementCounts, StoreError> {
        self.read(progress::counts(&self.ctx)).await
    }
}

#[async_trait]
impl Export for MongoStore {
    async fn user_ids(&self, after: Option<String>, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(export::user_ids(&self.ctx.db, after, limit))
            .await
    }

    async fn user_counters(&self, user_ids: Vec<String>) -> Result<Vec<UserCounters>, StoreError> {
        self.read(export::user_counters(&self.ctx.db, &user_ids))
            .await
    }
}

#[async_trait]
impl Lifecycle for MongoStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.writer.sender()?;
        self.read(async { self.ctx.db.run_command(doc! { "ping": 1 }).await.map(drop) })
            .await
    }

    async fn close(&self) {
        // Dropping the last sender lets the writer finish what is queued and exit.
        self.writer.close();
        let task = self
            .writer_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "mongodb writer task failed");
            }
        }
        // Stops the driver's background tasks while the runtime still runs them: left to
        // the client's drop at exit, they could panic on a runtime already shutting down.
        // Bounded, since a shutdown waits for sessions and cursors still held elsewhere.
        let shutdown = self.ctx.client.clone().shutdown();
        if tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .is_err()
        {
            tracing::warn!("mongodb client shutdown timed out");
        }
    }
}
