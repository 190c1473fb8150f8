//! Aggregates over a time window across all users, for the dashboard's chart; the twin
//! of src/store/sqlite/stats.rs.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::Result;
use mongodb::Database;

use super::error::reply_error;
use super::schema::EVENTS;
use crate::store::DailyTypeTotal;

const DAY_MS: i64 = 86_400_000;

/// Events and points per UTC day and type with `from_ms <= ts_ms < to_ms`. No index
/// leads with `ts_ms`, so the match scans the collection; docs/dashboard.md states the cost.
pub async fn daily_stats(db: &Database, from_ms: i64, to_ms: i64) -> Result<Vec<DailyTypeTotal>> {
    let pipeline = [
        doc! { "$match": { "ts_ms": { "$gte": from_ms, "$lt": to_ms } } },
        // Midnight of the event's day, in integer arithmetic (stored times are never negative).
        doc! { "$group": {
            "_id": {
                "day_ms": { "$subtract": ["$ts_ms", { "$mod": ["$ts_ms", DAY_MS] }] },
                "event_type": "$event_type",
            },
            "events": { "$sum": 1 },
            "points": { "$sum": "$points" },
        } },
        doc! { "$sort": { "_id.day_ms": 1, "_id.event_type": 1 } },
    ];
    let groups: Vec<Document> = db
        .collection::<Document>(EVENTS)
        .aggregate(pipeline)
        .await?
        .try_collect()
        .await?;
    groups
        .iter()
        .map(|g| {
            let id = g
                .get_document("_id")
                .map_err(|e| reply_error(None, format!("daily stats group: {e}")))?;
            Ok(DailyTypeTotal {
                day: int(id, "day_ms")?.div_euclid(DAY_MS),
                event_type: id
                    .get_str("event_type")
                    .map_err(|e| reply_error(None, format!("daily stats event_type: {e}")))?
                    .to_owned(),
                events: u64::try_from(int(g, "events")?).unwrap_or(0),
                points: int(g, "points")?,
            })
        })
        .collect()
}

/// `$sum` and `$mod` answer Int32, Int64 or (on overflow) Double.
fn int(d: &Document, key: &str) -> Result<i64> {
    match d.get(key) {
        Some(Bson::Int64(n)) => Ok(*n),
        Some(Bson::Int32(n)) => Ok(i64::from(*n)),
        Some(Bson::Double(f)) if f.fract() == 0.0 => Ok(*f as i64),
        other => Err(reply_error(
            None,
            format!("daily stats {key}: not an integer: {other:?}"),
        )),
    }
}
