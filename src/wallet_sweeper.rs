//! The wallet sweeper: applies what falls due in users' wallets when nobody touches
//! them (points expiring and expired, holds released at their end), so that the ledger
//! and the webhooks say so on time. Reads and operations apply the same on their own;
//! this only writes it down.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::engine::WalletOp;
use crate::domain::rules::SharedRules;
use crate::store::{Store, StoreError};

/// Users handled per pass, so one pass stays short.
const USERS_PER_PASS: u32 = 500;

pub struct Sweeper {
    pub store: Store,
    pub rules: Arc<SharedRules>,
    pub clock: Arc<dyn Clock>,
}

impl Sweeper {
    /// One pass over the wallets due now; returns how many were swept.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let rules = self.rules.current();
        if rules.progression().wallet.is_none() {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let due = self.store.progress.due_wallets(now, USERS_PER_PASS).await?;
        for user in &due {
            self.store
                .progress
                .wallet_op(user, WalletOp::Tick, rules.clone(), now)
                .await?;
        }
        Ok(due.len())
    }

    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.pass().await {
                Ok(_) => {}
                // A store that keeps no wallet has nothing to sweep.
                Err(StoreError::Unsupported(_)) => {}
                Err(e) => tracing::warn!(error = %e, "wallet sweep failed; retrying next pass"),
            }
        }
    }
}
