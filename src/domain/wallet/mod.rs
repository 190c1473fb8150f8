//! The spendable balance: points earned go into lots that expire (oldest first), and
//! spends, holds, captures, releases and expiries take from them. Pure: the engine
//! applies these to the user's state; stores persist the state and the entries.
//!
//! `balance = earned − spent − expired`, `available = balance − held` (open holds).
//! Spends take the lots that expire first, so an expiry never takes points that were
//! already spent.

mod entry;
#[cfg(test)]
mod tests;

pub use entry::{is_wallet, EntryKind, WalletEntry};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// The `wallet` section of `events.yaml`, and the types' own expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalletRules {
    pub expires_after_days: Option<i64>,
    pub notify_before_days: Option<i64>,
    /// Per event type, overriding `expires_after_days`.
    pub by_type: BTreeMap<String, i64>,
}

impl WalletRules {
    /// When points earned by an event of `event_type` at `ts_ms` expire: the end of the
    /// UTC day `days` after it (so that one day's points expire together), or never.
    pub fn expiry_of(&self, event_type: &str, ts_ms: i64) -> Option<i64> {
        let days = self
            .by_type
            .get(event_type)
            .copied()
            .or(self.expires_after_days)?;
        Some((ts_ms.div_euclid(DAY_MS) + days + 1) * DAY_MS)
    }
}

/// Points of one earning moment not yet spent or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// `None`: never expires (sorted last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
    pub points: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldStatus {
    Open,
    Captured,
    Voided,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Open => "open",
            HoldStatus::Captured => "captured",
            HoldStatus::Voided => "voided",
            HoldStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub amount: i64,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub status: HoldStatus,
}

/// A user's wallet as the engine keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    pub earned: i64,
    pub spent: i64,
    pub expired: i64,
    /// Ascending by expiry, never-expiring last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lots: Vec<Lot>,
    /// Points taken away (penalties) beyond what the lots held: paid first from what
    /// is earned next.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub debt: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub holds: BTreeMap<String, Hold>,
    /// Expiry instants already announced by `points.expiring`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announced: Vec<i64>,
    /// When something next falls due ([`Wallet::next_due`]), kept so that a store can
    /// index it for the sweeper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_ms: Option<i64>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Why a wallet operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("Insufficient points")]
    Insufficient { available: i64 },
    /// The spend or hold id is taken: `id` is the stored entry's id.
    #[error("already exists")]
    Exists { id: String },
    #[error("no such hold")]
    NoHold,
    #[error("the hold is {}", .0.as_str())]
    NotOpen(HoldStatus),
    #[error("amount must not exceed the held amount")]
    OverCapture { held: i64 },
}

/// A wallet notice for webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletNotice {
    /// A spend, capture or release changed what the user can spend.
    Changed {
        entry: WalletEntry,
        balance: i64,
        available: i64,
    },
    /// Points expire at `at_ms` (once per expiry instant, ahead of it).
    Expiring { at_ms: i64, points: i64 },
    /// Points expired.
    Expired { entry: WalletEntry, balance: i64 },
}

/// What an operation wrote: ledger entries and notices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalletStep {
    pub entries: Vec<WalletEntry>,
    pub notices: Vec<WalletNotice>,
}

impl Wallet {
    pub fn is_empty(&self) -> bool {
        *self == Wallet::default()
    }

    pub fn balance(&self) -> i64 {
        self.earned - self.spent - self.expired
    }

    pub fn held(&self) -> i64 {
        self.holds
            .values()
            .filter(|h| h.status == HoldStatus::Open)
            .map(|h| h.amount)
            .sum()
    }

    pub fn available(&self) -> i64 {
        self.balance() - self.held()
    }

    /// The next expiry instants after `now_ms` with the points that expire then.
    pub fn expiring(&self, now_ms: i64) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = Vec::new();
        for lot in &self.lots {
            let Some(at) = lot.expires_ms.filter(|&at| at > now_ms) else {
                continue;
            };
            match out.last_mut() {
                Some((last, points)) if *last == at => *points += lot.points,
                _ => out.push((at, lot.points)),
            }
        }
        out
    }

    /// This wallet with what a replay earned in place of what was earned: spends,
    /// expiries and holds stay as they are (a replay never undoes a spend), and take
    /// their points from the replayed lots, oldest first. The balance may go negative.
    pub fn rebased(&self, replayed: &Wallet, rules: &WalletRules) -> Wallet {
        let mut w = Wallet {
            earned: replayed.earned,
            lots: replayed.lots.clone(),
            debt: replayed.debt,
            ..self.clone()
        };
        let left = w.take(self.spent + self.expired);
        w.debt += left;
        w.due_ms = w.next_due(rules);
        w
    }

    /// Counts points an event earned (negative ones take from the oldest lots).
    pub fn earn(&mut self, points: i64, expires_ms: Option<i64>) {
        self.earned += points;
        if points < 0 {
            let left = self.take(-points);
            self.debt += left;
            return;
        }
        let paid = points.min(self.debt);
        self.debt -= paid;
        let points = points - paid;
        if points == 0 {
            return;
        }
        let at = self
            .lots
            .iter()
            .position(|l| order(l.expires_ms) > order(expires_ms))
            .unwrap_or(self.lots.len());
        match at.checked_sub(1).map(|i| &mut self.lots[i]) {
            Some(prev) if prev.expires_ms == expires_ms => prev.points += points,
            _ => self.lots.insert(at, Lot { expires_ms, points }),
        }
    }

    /// Takes up to `amount` from the lots expiring first; returns what they lacked.
    fn take(&mut self, mut amount: i64) -> i64 {
        while amount > 0 {
            let Some(lot) = self.lots.first_mut() else {
                break;
            };
            let n = lot.points.min(amount);
            lot.points -= n;
            amount -= n;
            if lot.points == 0 {
                self.lots.remove(0);
            }
        }
        amount
    }

    /// Applies what is due at `now_ms`: lots that expired, holds past their time, and
    /// `points.expiring` for expiries within `notify_before_days`.
    pub fn advance(&mut self, rules: &WalletRules, now_ms: i64, step: &mut WalletStep) {
        while let Some(lot) = self.lots.first().copied() {
            let Some(at) = lot.expires_ms.filter(|&at| at <= now_ms) else {
                break;
            };
            let mut points = 0;
            while self.lots.first().is_some_and(|l| l.expires_ms == Some(at)) {
                points += self.lots.remove(0).points;
            }
            self.expired += points;
            self.announced.retain(|&a| a > at);
            let entry = WalletEntry::new(EntryKind::Expire, points, at.to_string(), None, at);
            step.notices.push(WalletNotice::Expired {
                entry: entry.clone(),
                balance: self.balance(),
            });
            step.entries.push(entry);
        }
        let due: Vec<String> = self
            .holds
            .iter()
            .filter(|(_, h)| h.status == HoldStatus::Open && h.expires_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(h) = self.holds.get_mut(&id) {
                h.status = HoldStatus::Expired;
                let entry =
                    WalletEntry::new(EntryKind::Release, h.amount, id.clone(), None, h.expires_ms);
                step.entries.push(entry.clone());
                step.notices.push(WalletNotice::Changed {
                    entry,
                    balance: self.balance(),
                    available: self.available(),
                });
            }
        }
        if let Some(days) = rules.notify_before_days {
            for (at, points) in self.expiring(now_ms) {
                if at - days * DAY_MS <= now_ms && !self.announced.contains(&at) {
                    self.announced.push(at);
                    step.notices
                        .push(WalletNotice::Expiring { at_ms: at, points });
                }
            }
        }
    }

    /// The next instant something falls due (an expiry, a hold's end, an announcement).
    pub fn next_due(&self, rules: &WalletRules) -> Option<i64> {
        let lots = self.lots.iter().filter_map(|l| l.expires_ms);
        let announce = rules.notify_before_days.map(|days| {
            self.lots
                .iter()
                .filter_map(|l| l.expires_ms)
                .filter(|at| !self.announced.contains(at))
                .map(move |at| at - days * DAY_MS)
        });
        let holds = self
            .holds
            .values()
            .filter(|h| h.status == HoldStatus::Open)
            .map(|h| h.expires_ms);
        lots.chain(announce.into_iter().flatten())
            .chain(holds)
            .min()
    }

    /// Spends `amount` (already checked positive) under `spend_id`.
    pub fn spend(
        &mut self,
        amount: i64,
        spend_id: &str,
        reason: Option<&str>,
        now_ms: i64,
        step: &mut WalletStep,
    ) -> Result<WalletEntry, WalletError> {
        if amount > self.available() {
            return Err(WalletError::Insufficient {
                available: self.available().max(0),
            });
        }
        Ok(self.debit(EntryKind::Spend, amount, spend_id, reason, now_ms, step))
    }

    fn debit(
        &mut self,
        kind: EntryKind,
        amount: i64,
        id: &str,
        reason: Option<&str>,
        now_ms: i64,
        step: &mut WalletStep,
    ) -> WalletEntry {
        let left = self.take(amount);
        self.debt += left;
        self.spent += amount;
        let entry = WalletEntry::new(
            kind,
            amount,
            id.to_owned(),
            reason.map(str::to_owned),
            now_ms,
        );
        step.entries.push(entry.clone());
        step.notices.push(WalletNotice::Changed {
            entry: entry.clone(),
            balance: self.balance(),
            available: self.available(),
        });
        entry
    }

    /// Reserves `amount` until `expires_ms` under `hold_id`.
    pub fn hold(
        &mut self,
        amount: i64,
        hold_id: &str,
        expires_ms: i64,
        now_ms: i64,
        step: &mut WalletStep,
    ) -> Result<WalletEntry, WalletError> {
        if amount > self.available() {
            return Err(WalletError::Insufficient {
                available: self.available().max(0),
            });
        }
        self.holds.insert(
            hold_id.to_owned(),
            Hold {
                amount,
                created_ms: now_ms,
                expires_ms,
                status: HoldStatus::Open,
            },
        );
        let entry = WalletEntry {
            expires_ms: Some(expires_ms),
            ..WalletEntry::new(EntryKind::Hold, amount, hold_id.to_owned(), None, now_ms)
        };
        step.entries.push(entry.clone());
        Ok(entry)
    }

    /// Captures `amount` (default all) of an open hold as a spend with the hold's id;
    /// the rest is released.
    pub fn capture(
        &mut self,
        hold_id: &str,
        amount: Option<i64>,
        now_ms: i64,
        step: &mut WalletStep,
    ) -> Result<WalletEntry, WalletError> {
        let hold = self.open_hold(hold_id)?;
        let amount = amount.unwrap_or(hold.amount);
        if amount > hold.amount {
            return Err(WalletError::OverCapture { held: hold.amount });
        }
        if amount > self.balance() {
            // Lots expired under the hold: what is left cannot cover it.
            return Err(WalletError::Insufficient {
                available: self.balance().max(0),
            });
        }
        self.set_status(hold_id, HoldStatus::Captured);
        let entry = self.debit(EntryKind::Capture, amount, hold_id, None, now_ms, step);
        if amount < hold.amount {
            self.release(hold_id, hold.amount - amount, now_ms, step);
        }
        Ok(entry)
    }

    /// Re-applies an exported entry at its own time (an import): as it was, without
    /// the balance checks it passed then, keeping its id. Expiries are not re-applied
    /// here: [`Wallet::advance`] to the entry's time makes them again, with the same
    /// dedup key.
    pub fn restore(&mut self, e: &WalletEntry, step: &mut WalletStep) {
        let keep_id = |mut made: WalletEntry| {
            made.id = e.id.clone();
            made
        };
        match e.kind {
            EntryKind::Spend | EntryKind::Capture => {
                if e.kind == EntryKind::Capture {
                    self.set_status(&e.ref_id, HoldStatus::Captured);
                }
                // Spent then, whatever the lots hold now: what they lack is owed.
                let left = self.take(e.amount);
                self.debt += left;
                self.spent += e.amount;
                step.entries.push(keep_id(e.clone()));
            }
            EntryKind::Hold => {
                self.holds.insert(
                    e.ref_id.clone(),
                    Hold {
                        amount: e.amount,
                        created_ms: e.ts_ms,
                        expires_ms: e.expires_ms.unwrap_or(e.ts_ms),
                        status: HoldStatus::Open,
                    },
                );
                step.entries.push(keep_id(e.clone()));
            }
            EntryKind::Release => {
                if let Some(h) = self.holds.get_mut(&e.ref_id) {
                    if h.status == HoldStatus::Open {
                        h.status = if e.ts_ms >= h.expires_ms {
                            HoldStatus::Expired
                        } else {
                            HoldStatus::Voided
                        };
                    }
                }
                step.entries.push(keep_id(e.clone()));
            }
            EntryKind::Expire => {}
        }
    }

    /// Releases an open hold whole.
    pub fn void(
        &mut self,
        hold_id: &str,
        now_ms: i64,
        step: &mut WalletStep,
    ) -> Result<WalletEntry, WalletError> {
        let hold = self.open_hold(hold_id)?;
        self.set_status(hold_id, HoldStatus::Voided);
        Ok(self.release(hold_id, hold.amount, now_ms, step))
    }

    fn release(
        &mut self,
        hold_id: &str,
        amount: i64,
        now_ms: i64,
        step: &mut WalletStep,
    ) -> WalletEntry {
        let entry = WalletEntry::new(EntryKind::Release, amount, hold_id.to_owned(), None, now_ms);
        step.entries.push(entry.clone());
        step.notices.push(WalletNotice::Changed {
            entry: entry.clone(),
            balance: self.balance(),
            available: self.available(),
        });
        entry
    }

    fn open_hold(&self, hold_id: &str) -> Result<Hold, WalletError> {
        match self.holds.get(hold_id) {
            None => Err(WalletError::NoHold),
            Some(h) if h.status != HoldStatus::Open => Err(WalletError::NotOpen(h.status)),
            Some(h) => Ok(h.clone()),
        }
    }

    fn set_status(&mut self, hold_id: &str, status: HoldStatus) {
        if let Some(h) = self.holds.get_mut(hold_id) {
            h.status = status;
        }
    }
}

/// Never-expiring lots sort after every expiring one.
fn order(expires_ms: Option<i64>) -> i64 {
    expires_ms.unwrap_or(i64::MAX)
}
