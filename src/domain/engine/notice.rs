//! What a transition tells the outside world: the stores' outboxes turn notices into
//! webhook deliveries, one per subscriber, in the write that stores the events.

use crate::domain::caps::Cap;

/// Something that happened to a user, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    PointsChanged(PointsChanged),
    CapReached(CapReached),
    AchievementUnlocked(AchievementUnlocked),
    LevelChanged(LevelChanged),
    StreakChanged(StreakChanged),
    /// A wallet change (`wallet.changed`, `points.expiring`, `points.expired`).
    Wallet {
        user_id: String,
        notice: crate::domain::wallet::WalletNotice,
        at_ms: i64,
    },
}

impl Notice {
    pub fn user_id(&self) -> &str {
        match self {
            Notice::PointsChanged(n) => &n.user_id,
            Notice::CapReached(n) => &n.user_id,
            Notice::AchievementUnlocked(n) => &n.user_id,
            Notice::LevelChanged(n) => &n.user_id,
            Notice::StreakChanged(n) => &n.user_id,
            Notice::Wallet { user_id, .. } => user_id,
        }
    }
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

/// An achievement unlocked by an event (each time, for a repeatable one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AchievementUnlocked {
    pub user_id: String,
    pub id: String,
    pub name: String,
    pub times: i64,
    pub bonus: i64,
    /// The server id of the event that unlocked it, and its times.
    pub event_id: String,
    pub ts_ms: i64,
    pub received_ms: i64,
}

/// A request (or a recompute) moved the user's level, up or down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelChanged {
    pub user_id: String,
    pub from: Option<crate::domain::progression::Level>,
    pub to: Option<crate::domain::progression::Level>,
    pub points: i64,
    /// The request's first created event (empty for a recompute).
    pub event_id: String,
    pub at_ms: i64,
}

/// A qualifying event extended a streak, used freezes for missed periods, or found
/// it broken (a break is noticed by the next qualifying event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreakChanged {
    pub user_id: String,
    pub id: String,
    pub change: crate::domain::progression::advance::StreakChangeKind,
    pub length: i64,
    pub longest: i64,
    pub freezes: i64,
    pub event_id: String,
    pub ts_ms: i64,
    pub received_ms: i64,
}
