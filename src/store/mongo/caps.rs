//! Applying caps in a group commit: the usage of each (user, type, period) is read
//! from the ledger once, in the commit's transaction when there is one, then carried
//! forward in memory through the group's events in order.
//!
//! Two transactions capping the same user and type both increment that pair's totals
//! document, so one of them conflicts and is retried with fresh reads: caps hold across
//! instances. Without transactions (standalone server) there is one writer instance.

use std::collections::HashMap;

use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::ClientSession;

use super::bulk_commands::find_all;
use super::Ctx;
use crate::domain::caps::{Cap, Usage};
use crate::domain::event::NewEvent;

#[derive(Default)]
pub struct Awarder {
    used: HashMap<(String, String, i64), Usage>,
}

impl Awarder {
    /// The points `e` earns, and the cap it uses up if it does; call in ledger order,
    /// once per event that will be stored.
    pub async fn award(
        &mut self,
        ctx: &Ctx,
        e: &NewEvent,
        session: Option<&mut ClientSession>,
    ) -> Result<(i64, Option<Cap>)> {
        let Some(cap) = &e.cap else {
            return Ok((e.points, None));
        };
        let (from, to) = cap.window(e.ts_ms);
        let key = (e.user_id.clone(), e.event_type.clone(), from);
        let used = match self.used.get(&key) {
            Some(u) => *u,
            None => usage(ctx, e, (from, to), session).await?,
        };
        let points = cap.award(e.points, used);
        self.used.insert(key, used.after(points));
        Ok((points, cap.reached_by(used, points).then_some(*cap)))
    }
}

async fn usage(
    ctx: &Ctx,
    e: &NewEvent,
    (from, to): (i64, i64),
    session: Option<&mut ClientSession>,
) -> Result<Usage> {
    let docs: Vec<Document> = find_all(
        &ctx.db.collection::<Document>(super::schema::EVENTS),
        doc! {
            "user_id": &e.user_id,
            "ts_ms": { "$gte": from, "$lt": to },
            "event_type": &e.event_type,
        },
        FindOptions::builder()
            .projection(doc! { "_id": 0, "points": 1 })
            .build(),
        session,
    )
    .await?;
    Ok(docs
        .iter()
        .filter_map(|d| d.get_i64("points").ok())
        .fold(Usage::default(), Usage::after))
}

/// True when any event of the group is capped (the common case skips all of this).
pub fn any(events: &[&NewEvent]) -> bool {
    events.iter().any(|e| e.cap.is_some())
}
