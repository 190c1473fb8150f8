//! Wallet operations as transitions of the user's state: what is due at `now` first
//! (expiries, holds past their time), then the operation. Stores run this in the
//! transaction that persists the state and the entries it returns.

use super::notice::Notice;
use super::state::UserState;
use crate::domain::wallet::{WalletEntry, WalletError, WalletRules, WalletStep};

/// What a client asks of a wallet (amounts already checked positive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletOp {
    Spend {
        amount: i64,
        spend_id: String,
        reason: Option<String>,
    },
    Hold {
        amount: i64,
        hold_id: String,
        expires_ms: i64,
    },
    Capture {
        hold_id: String,
        amount: Option<i64>,
    },
    Void {
        hold_id: String,
    },
    /// Only what is due: the sweeper's.
    Tick,
    /// An exported entry read back by `import`, applied at its own time.
    Restore {
        entry: WalletEntry,
    },
}

impl WalletOp {
    /// The dedup key of the entry the operation creates, which the store looks up
    /// first: a spend or hold whose id is taken is refused with the stored entry's id.
    pub fn creates_key(&self) -> Option<String> {
        use crate::domain::wallet::EntryKind;
        match self {
            WalletOp::Spend { spend_id, .. } => {
                Some(WalletEntry::key_of(EntryKind::Spend, spend_id))
            }
            WalletOp::Hold { hold_id, .. } => Some(WalletEntry::key_of(EntryKind::Hold, hold_id)),
            WalletOp::Restore { entry } => Some(entry.dedup_key()),
            _ => None,
        }
    }
}

/// What an operation did: entries to store and notices to send (also when the
/// operation itself was refused: what fell due is applied either way), and the
/// operation's own entry or why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletOutcome {
    pub entries: Vec<WalletEntry>,
    pub notices: Vec<Notice>,
    pub result: Result<Option<WalletEntry>, WalletError>,
}

/// Applies `op` at `now_ms`. `stored` is the id of the ledger's entry with the
/// operation's [`WalletOp::creates_key`], if it has one.
pub fn wallet_op(
    user_id: &str,
    state: &mut UserState,
    rules: &WalletRules,
    op: &WalletOp,
    now_ms: i64,
    stored: Option<String>,
) -> WalletOutcome {
    let w = &mut state.progress.wallet;
    let mut step = WalletStep::default();
    w.advance(rules, now_ms, &mut step);
    let result = match (stored, op) {
        (Some(id), WalletOp::Spend { .. } | WalletOp::Hold { .. } | WalletOp::Restore { .. }) => {
            Err(WalletError::Exists { id })
        }
        (None, WalletOp::Restore { entry }) => {
            w.restore(entry, &mut step);
            Ok(step
                .entries
                .last()
                .filter(|e| e.dedup_key() == entry.dedup_key())
                .cloned())
        }
        (
            _,
            WalletOp::Spend {
                amount,
                spend_id,
                reason,
            },
        ) => w
            .spend(*amount, spend_id, reason.as_deref(), now_ms, &mut step)
            .map(Some),
        (
            _,
            WalletOp::Hold {
                amount,
                hold_id,
                expires_ms,
            },
        ) => w
            .hold(*amount, hold_id, *expires_ms, now_ms, &mut step)
            .map(Some),
        (_, WalletOp::Capture { hold_id, amount }) => {
            w.capture(hold_id, *amount, now_ms, &mut step).map(Some)
        }
        (_, WalletOp::Void { hold_id }) => w.void(hold_id, now_ms, &mut step).map(Some),
        (_, WalletOp::Tick) => Ok(None),
    };
    w.due_ms = w.next_due(rules);
    WalletOutcome {
        entries: step.entries,
        notices: step
            .notices
            .into_iter()
            .map(|n| Notice::Wallet {
                user_id: user_id.to_owned(),
                notice: n,
                at_ms: now_ms,
            })
            .collect(),
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_spend_still_applies_what_fell_due() {
        let rules = WalletRules {
            expires_after_days: Some(1),
            ..WalletRules::default()
        };
        let mut state = UserState::default();
        state.progress.wallet.earn(40, rules.expiry_of("X", 0));
        let spend = WalletOp::Spend {
            amount: 30,
            spend_id: "a".into(),
            reason: None,
        };
        let out = wallet_op("u", &mut state, &rules, &spend, 3 * 86_400_000, None);
        assert_eq!(out.result, Err(WalletError::Insufficient { available: 0 }));
        assert_eq!(out.entries.len(), 1, "the expiry");
        assert_eq!(state.progress.wallet.expired, 40);
        let again = wallet_op(
            "u",
            &mut state,
            &rules,
            &spend,
            3 * 86_400_000,
            Some("e1".into()),
        );
        assert_eq!(again.result, Err(WalletError::Exists { id: "e1".into() }));
    }
}
