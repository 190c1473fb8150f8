//! What a notification says, built the same way by every store's outbox: the `data`
//! of each kind and the envelope around it. A body is fixed when its delivery is
//! queued, so every attempt sends the same bytes.

use serde_json::{json, Value};

use crate::domain::caps::Cap;
use crate::domain::engine::PointsChanged;
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
