//! What a notification says, built the same way by every store's outbox: the `data`
//! of each kind and the envelope around it. A body is fixed when its delivery is
//! queued, so every attempt sends the same bytes.

use serde_json::{json, Value};

use crate::domain::caps::Cap;
use crate::domain::engine::{Notice, PointsChanged};
use crate::domain::event::NewEvent;
use crate::domain::time::format_millis;

/// An event that used up its type's cap for its user and period (the engine's notice).
pub use crate::domain::engine::CapReached;

impl CapReached {
    pub fn of(e: &NewEvent, cap: Cap) -> CapReached {
        CapReached {
            user_id: e.user_id.clone(),
            event_type: e.event_type.clone(),
            id: e.id.clone(),
            ts_ms: e.ts_ms,
            received_ms: e.received_ms,
            cap,
        }
    }

    pub fn data(&self) -> Value {
        json!({
            "user_id": self.user_id,
            "event_type": self.event_type,
            "period": self.cap.period.containing(self.ts_ms).key,
            "cap": self.cap,
            "event_id": self.id,
        })
    }
}

/// `points.changed`: the user's total after the write, what the write added, and the
/// events it created for them.
pub fn points_changed(p: &PointsChanged) -> Value {
    json!({
        "user_id": p.user_id,
        "points": p.total,
        "delta": p.delta,
        "event_ids": p.event_ids,
    })
}

/// `points.changed` after a recompute rewrote the user's ledger under `rules_version`:
/// no events were created, so `event_ids` is empty and `reason` says why.
pub fn points_recomputed(
    user_id: &str,
    total: i64,
    delta: i64,
    rules_version: Option<i64>,
) -> Value {
    json!({
        "user_id": user_id,
        "points": total,
        "delta": delta,
        "event_ids": [],
        "reason": "recompute",
        "rules_version": rules_version,
    })
}

/// The JSON body of delivery `id`: `{id, type, created_at, data}`.
pub fn body(id: &str, kind: &str, at_ms: i64, data: &Value) -> String {
    json!({
        "id": id,
        "type": kind,
        "created_at": format_millis(at_ms),
        "data": data,
    })
    .to_string()
}

fn level_json(l: &Option<crate::domain::progression::Level>) -> Value {
    match l {
        Some(l) => json!({"level": l.level, "name": l.name}),
        None => Value::Null,
    }
}

/// A notice as a delivery: its kind, user, the key that makes its delivery id unique
/// within its commit, when it happened, and its `data`.
pub struct Described<'a> {
    pub kind: &'static str,
    pub user_id: &'a str,
    pub key: String,
    pub at_ms: i64,
    pub data: Value,
}

pub fn describe(notice: &Notice) -> Described<'_> {
    use crate::webhooks::{
        ACHIEVEMENT_UNLOCKED, CAP_REACHED, LEVEL_CHANGED, POINTS_CHANGED, STREAK_CHANGED,
    };
    match notice {
        // Keyed by the request's first event: a commit may hold several requests of
        // one user, each with its own notice.
        Notice::PointsChanged(p) => Described {
            kind: POINTS_CHANGED,
            user_id: &p.user_id,
            key: p.event_ids.first().cloned().unwrap_or_default(),
            at_ms: p.at_ms,
            data: points_changed(p),
        },
        Notice::CapReached(c) => Described {
            kind: CAP_REACHED,
            user_id: &c.user_id,
            key: c.id.clone(),
            at_ms: c.received_ms,
            data: c.data(),
        },
        Notice::AchievementUnlocked(a) => Described {
            kind: ACHIEVEMENT_UNLOCKED,
            user_id: &a.user_id,
            key: format!("{}|achievement|{}|{}", a.event_id, a.id, a.times),
            at_ms: a.received_ms,
            data: json!({
                "user_id": a.user_id,
                "achievement": {"id": a.id, "name": a.name},
                "times": a.times,
                "points": a.bonus,
                "event_id": a.event_id,
                "unlocked_at": format_millis(a.ts_ms),
            }),
        },
        Notice::LevelChanged(l) => Described {
            kind: LEVEL_CHANGED,
            user_id: &l.user_id,
            key: format!("{}|level", l.event_id),
            at_ms: l.at_ms,
            data: json!({
                "user_id": l.user_id,
                "from": level_json(&l.from),
                "to": level_json(&l.to),
                "direction": match (&l.from, &l.to) {
                    (Some(a), Some(b)) if b.points < a.points => "down",
                    (Some(_), None) => "down",
                    _ => "up",
                },
                "points": l.points,
                "event_id": if l.event_id.is_empty() { Value::Null } else { json!(l.event_id) },
            }),
        },
        Notice::Wallet {
            user_id,
            notice,
            at_ms,
        } => wallet(user_id, notice, *at_ms),
        Notice::StreakChanged(s) => Described {
            kind: STREAK_CHANGED,
            user_id: &s.user_id,
            key: format!("{}|streak|{}|{}", s.event_id, s.id, s.change.as_str()),
            at_ms: s.received_ms,
            data: json!({
                "user_id": s.user_id,
                "streak": s.id,
                "change": s.change.as_str(),
                "length": s.length,
                "longest": s.longest,
                "freezes": s.freezes,
                "broken_length": match s.change {
                    crate::domain::progression::advance::StreakChangeKind::Broken(n) => json!(n),
                    _ => Value::Null,
                },
                "frozen_periods": match s.change {
                    crate::domain::progression::advance::StreakChangeKind::Frozen(n) => json!(n),
                    _ => Value::Null,
                },
                "event_id": s.event_id,
                "event_at": format_millis(s.ts_ms),
            }),
        },
    }
}

fn wallet<'a>(
    user_id: &'a str,
    notice: &crate::domain::wallet::WalletNotice,
    at_ms: i64,
) -> Described<'a> {
    use crate::domain::wallet::WalletNotice;
    use crate::webhooks::{POINTS_EXPIRED, POINTS_EXPIRING, WALLET_CHANGED};
    let entry = |e: &crate::domain::wallet::WalletEntry| {
        json!({
            "id": e.id,
            "kind": e.kind.as_str(),
            "amount": e.amount,
            "ref": e.ref_id,
            "reason": e.reason,
            "at": format_millis(e.ts_ms),
        })
    };
    match notice {
        WalletNotice::Changed {
            entry: e,
            balance,
            available,
        } => Described {
            kind: WALLET_CHANGED,
            user_id,
            key: format!("{}|wallet", e.dedup_key()),
            at_ms,
            data: json!({"user_id": user_id, "entry": entry(e), "balance": balance, "available": available}),
        },
        WalletNotice::Expiring { at_ms: at, points } => Described {
            kind: POINTS_EXPIRING,
            user_id,
            key: format!("expiring|{at}"),
            at_ms,
            data: json!({"user_id": user_id, "at": format_millis(*at), "points": points}),
        },
        WalletNotice::Expired { entry: e, balance } => Described {
            kind: POINTS_EXPIRED,
            user_id,
            key: format!("{}|expired", e.dedup_key()),
            at_ms,
            data: json!({"user_id": user_id, "points": e.amount, "at": format_millis(e.ts_ms), "balance": balance, "entry_id": e.id}),
        },
    }
}
