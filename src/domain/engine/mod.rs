//! The points engine: the one place rules are applied. Per user, a transition from a
//! state and a request's events to the new state, what became of each event, the
//! changes to the counters derived from the ledger, and the notices to send.
//!
//! Stores do the I/O around it: they load the state of each user in a group commit
//! (what [`UserState`] says they must), tell the engine which events the ledger holds
//! already, and persist the ledger rows, [`Changes`] and notices it returns in one
//! atomic write. Replay ([`replay`]) is this same transition run over a user's whole
//! ledger from an empty state, so ingest and recompute cannot disagree.

mod notice;
mod replay;
mod state;
#[cfg(test)]
mod tests;
mod transition;
mod wallet_op;

pub use notice::{
    AchievementUnlocked, CapReached, LevelChanged, Notice, PointsChanged, StreakChanged,
};
pub use replay::{replay, LedgerEntry, Replay, Replayed};
pub use state::{CapWindow, Changes, TypeCount, UserState};
pub use transition::{apply, by_user, Bonus, Gained, Incoming, RecordOutcome, Rule, Step};
pub use wallet_op::{wallet_op, WalletOp, WalletOutcome};
