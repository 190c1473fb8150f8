//! Wallet ledger entries: every change of a user's wallet is one, kept with the events
//! (history, export, erasure) and unique per user by its dedup key, which is what makes
//! a spend id or a hold id usable once.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// Points spent under a client's `spend_id`.
    Spend,
    /// Points reserved by a hold (not spent).
    Hold,
    /// A hold's points spent (`ref_id` the hold id, which is also its spend id).
    Capture,
    /// What a hold reserved and did not spend, available again.
    Release,
    /// Earned points past their expiry (`ref_id` the expiry instant, Unix ms).
    Expire,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Spend => "spend",
            EntryKind::Hold => "hold",
            EntryKind::Capture => "capture",
            EntryKind::Release => "release",
            EntryKind::Expire => "expire",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        [
            EntryKind::Spend,
            EntryKind::Hold,
            EntryKind::Capture,
            EntryKind::Release,
            EntryKind::Expire,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The ledger's event type of entries of this kind: `wallet:spend`, ...
    pub fn event_type(self) -> String {
        format!("{WALLET_PREFIX}{}", self.as_str())
    }
}

/// The prefix of wallet entries' types: lower case, so no event type can have it.
pub const WALLET_PREFIX: &str = "wallet:";

pub fn is_wallet(event_type: &str) -> bool {
    event_type.starts_with(WALLET_PREFIX)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletEntry {
    pub id: String,
    pub kind: EntryKind,
    /// Points, always positive: the kind says which way they go.
    pub amount: i64,
    /// The spend id, hold id, or expiry instant the entry is about.
    pub ref_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub ts_ms: i64,
    /// A hold's end (holds only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
}

impl WalletEntry {
    pub fn new(
        kind: EntryKind,
        amount: i64,
        ref_id: String,
        reason: Option<String>,
        ts_ms: i64,
    ) -> WalletEntry {
        WalletEntry {
            id: crate::domain::event::new_event_id(),
            kind,
            amount,
            ref_id,
            reason,
            ts_ms,
            expires_ms: None,
        }
    }

    /// Unique per user: a capture is the spend of its hold's id, so a spend id and a
    /// captured hold's id cannot be the same.
    pub fn dedup_key(&self) -> String {
        Self::key_of(self.kind, &self.ref_id)
    }

    pub fn key_of(kind: EntryKind, ref_id: &str) -> String {
        let kind = match kind {
            EntryKind::Capture => EntryKind::Spend,
            k => k,
        };
        format!("{WALLET_PREFIX}{}:{ref_id}", kind.as_str())
    }
}
