//! `rank.changed` for the MongoDB store: the leaderboards a group commit touches that
//! some subscription watches are read just before and just after the commit applies
//! its counters (in its transaction when there is one), and [`rank_changes`] tells who
//! entered, left or moved within each subscription's top N.
//!
//! With one writer (one instance, or any standalone deployment) the two readings are
//! exact. Several instances on a replica set commit concurrently, and each compares
//! the boards as its own transaction sees them: a commit of another instance landing
//! in between can make a notification report a rank that was true only briefly.

use std::collections::BTreeMap;

use mongodb::error::Result;
use mongodb::ClientSession;

use super::board::{self, Which};
use super::outbox::Subscribers;
use super::state::Plan;
use super::Ctx;
use crate::domain::period::Period;
use crate::domain::ranking::{rank_run, RankedEntry};
use crate::webhooks::rank::{self, rank_changes};

/// The watched boards as they were before the commit: by period key, the kind of
/// period, the most entries any subscription watches, and the entries.
pub struct Before(BTreeMap<String, (Period, u32, Vec<RankedEntry>)>);

/// One `rank.changed` for one subscription.
pub struct RankNotice {
    pub subscription: String,
    pub user_id: String,
    /// The board's period key.
    pub board: String,
    pub data: serde_json::Value,
}

/// Reads the first entries of every board `plan` touches that a subscription watches;
/// `None`, having read nothing, when there is no such board.
pub async fn before(
    ctx: &Ctx,
    mut session: Option<&mut ClientSession>,
    subs: &Subscribers,
    plan: &Plan,
) -> Result<Option<Before>> {
    if subs.ranks.is_empty() {
        return Ok(None);
    }
    let mut boards = BTreeMap::new();
    for (key, _) in plan.added.keys() {
        let Some(kind) = Period::of_key(key) else {
            continue;
        };
        let most = subs
            .ranks
            .iter()
            .filter(|(_, w)| w.period == kind)
            .map(|(_, w)| w.top)
            .max();
        if let (Some(most), false) = (most, boards.contains_key(key)) {
            boards.insert(key.clone(), (kind, most, Vec::new()));
        }
    }
    if boards.is_empty() {
        return Ok(None);
    }
    for (key, (_, most, entries)) in boards.iter_mut() {
        *entries = top(ctx, session.as_deref_mut(), key, *most).await?;
    }
    Ok(Some(Before(boards)))
}

/// Once the counters are in: the `rank.changed` notices, per subscription, of every
/// user whose rank within its top N differs from `before`.
pub async fn changes(
    ctx: &Ctx,
    mut session: Option<&mut ClientSession>,
    subs: &Subscribers,
    before: Option<Before>,
    plan: &Plan,
) -> Result<Vec<RankNotice>> {
    let Some(Before(boards)) = before else {
        return Ok(Vec::new());
    };
    let mut notices = Vec::new();
    for (key, (kind, most, before)) in boards {
        let after = top(ctx, session.as_deref_mut(), &key, most).await?;
        for (subscription, watch) in subs.ranks.iter().filter(|(_, w)| w.period == kind) {
            for change in rank_changes(&before, &after, watch.top) {
                // Someone who left the top N: their points before plus this commit's.
                let points = change.points.unwrap_or_else(|| {
                    let was = before
                        .iter()
                        .find(|e| e.user_id == change.user_id)
                        .map_or(0, |e| e.points);
                    let added = plan
                        .added
                        .get(&(key.clone(), change.user_id.clone()))
                        .copied()
                        .unwrap_or(0);
                    was + added
                });
                notices.push(RankNotice {
                    subscription: subscription.clone(),
                    user_id: change.user_id.clone(),
                    board: key.clone(),
                    data: rank::data(&change, &key, points, watch.top),
                });
            }
        }
    }
    Ok(notices)
}

/// The first `n` entries of the board, ranked as `GET /v1/leaderboard` ranks them.
async fn top(
    ctx: &Ctx,
    session: Option<&mut ClientSession>,
    key: &str,
    n: u32,
) -> Result<Vec<RankedEntry>> {
    let sources = board::sources(key);
    let rows = board::rows(&ctx.db, session, &sources, Which::Every, u64::from(n), 0).await?;
    Ok(rank_run(0, 1, rows))
}
