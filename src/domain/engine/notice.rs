//! What a transition tells the outside world: the stores' outboxes turn notices into
//! webhook deliveries, one per subscriber, in the write that stores the events.

use crate::domain::caps::Cap;

/// Something that happened to a user, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    PointsChanged(PointsChanged),
    CapReached(CapReached),
}

/// One per user per request (a single event or a batch) whose new events changed the
/// user's points; a request that stored nothing, or whose points add up to nothing,
/// says nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointsChanged {
    pub user_id: String,
    /// The all-time total after the request.
    pub total: i64,
    pub delta: i64,
    /// The events the request created for the user, in order.
    pub event_ids: Vec<String>,
    /// When the first of those events was received.
    pub at_ms: i64,
}

/// An event that used up its type's cap for its user and period: once per user, type
/// and period; later events of that period earn nothing and say nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapReached {
    pub user_id: String,
    pub event_type: String,
    /// The server id of the event.
    pub id: String,
    pub ts_ms: i64,
    pub received_ms: i64,
    pub cap: Cap,
}
