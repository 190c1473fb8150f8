//! Read queries, mirroring src/store/sqlite/read.rs: totals and ranks come from the
//! counter collections through their indexes, never from summing a user's events.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::Database;

use super::bulk_commands::find_all;
use super::error::reply_error;
use super::schema::{period_id, EventDoc, EVENTS, PERIODS, TOTALS};
use crate::domain::ranking::{rank_run, RankedEntry};
use crate::store::{
    HistoryQuery, Standing, StoredEvent, TimeRange, TopUsersQuery, TypeTotal, UserPoints, UserTotal,
};

/// Reads a number stored as any BSON integer or double.
pub(super) fn int(d: &Document, key: &str) -> Result<i64> {
    match d.get(key) {
        Some(mongodb::bson::Bson::Int64(n)) => Ok(*n),
        Some(mongodb::bson::Bson::Int32(n)) => Ok(i64::from(*n)),
        Some(mongodb::bson::Bson::Double(f)) if f.fract() == 0.0 => Ok(*f as i64),
        other => Err(reply_error(
            None,
            format!("field {key}: not an integer: {other:?}"),
        )),
    }
}

pub(super) fn string(d: &Document, key: &str) -> Result<String> {
    d.get_str(key)
        .map(str::to_owned)
        .map_err(|e| reply_error(None, format!("field {key}: {e}")))
}

/// `{ts_ms: {...}}` bounds: `from` inclusive, `upper` per `upper_op`. Times are whole
/// milliseconds, so "at or after `from`" is written as "after `from - 1`": the same set
/// on any server, and it sidesteps SecantusDB (the test server) treating `$gte` on a
/// descending index key as `$gt`.
fn ts_bounds(from: Option<i64>, upper_op: &str, upper: Option<i64>) -> Document {
    let mut bounds = Document::new();
    if let Some(before_from) = from.and_then(|f| f.checked_sub(1)) {
        bounds.insert("$gt", before_from);
    }
    if let Some(u) = upper {
        bounds.insert(upper_op, u);
    }
    bounds
}

fn type_total(d: &Document, type_key: &str) -> Result<TypeTotal> {
    Ok(TypeTotal {
        event_type: string(d, type_key)?,
        events: u64::try_from(int(d, "events")?).unwrap_or(0),
        points: int(d, "points")?,
    })
}

pub async fn user_points(db: &Database, user_id: &str, range: TimeRange) -> Result<UserPoints> {
    let by_type: Vec<TypeTotal> = if range == TimeRange::default() {
        let options = FindOptions::builder()
            .sort(doc! { "event_type": 1 })
            .build();
        find_all(
            &db.collection::<Document>(TOTALS),
            doc! { "user_id": user_id },
            options,
            None,
        )
        .await?
        .iter()
        .map(|d| type_total(d, "event_type"))
        .collect::<Result<_>>()?
    } else {
        let pipeline = [
            doc! { "$match": {
                "user_id": user_id,
                "ts_ms": ts_bounds(range.from_ms, "$lt", range.to_ms),
            } },
            doc! { "$group": {
                "_id": "$event_type",
                "events": { "$sum": 1 },
                "points": { "$sum": "$points" },
            } },
            doc! { "$sort": { "_id": 1 } },
        ];
        let groups: Vec<Document> = db
            .collection::<Document>(EVENTS)
            .aggregate(pipeline)
            .await?
            .try_collect()
            .await?;
        groups
            .iter()
            .map(|d| type_total(d, "_id"))
            .collect::<Result<_>>()?
    };
    Ok(UserPoints {
        points: by_type.iter().map(|t| t.points).sum(),
        events: by_type.iter().map(|t| t.events).sum(),
        by_type,
    })
}

pub async fn user_events(db: &Database, q: &HistoryQuery) -> Result<Vec<StoredEvent>> {
    if q.limit == 0 {
        return Ok(Vec::new());
    }
    // One upper bound on (ts_ms, id) covers both `to` (exclusive: every id sorts after
    // "") and the cursor, so the scan starts at the right place in the history index.
    let mut upper = (q.range.to_ms.unwrap_or(i64::MAX), String::new());
    if let Some(cur) = &q.after {
        if (cur.ts_ms, cur.id.as_str()) < (upper.0, upper.1.as_str()) {
            upper = (cur.ts_ms, cur.id.clone());
        }
    }
    let (upper_ts, upper_id) = upper;
    let mut filter = doc! {
        "user_id": &q.user_id,
        "ts_ms": ts_bounds(q.range.from_ms, "$lte", Some(upper_ts)),
        // At exactly the bound's time only smaller ids remain.
        "$nor": [{ "ts_ms": upper_ts, "_id": { "$gte": upper_id } }],
    };
    if let Some(t) = &q.event_type {
        filter.insert("event_type", t);
    }
    let options = FindOptions::builder()
        .sort(doc! { "ts_ms": -1, "_id": -1 })
        .limit(i64::from(q.limit))
        .build();
    let docs: Vec<EventDoc> = find_all(&db.collection(EVENTS), filter, options, None).await?;
    Ok(docs
        .into_iter()
        .map(|e| StoredEvent {
            id: e.id,
            event_id: e.event_id,
            event_type: e.event_type,
            ts_ms: e.ts_ms,
            points: e.points,
            properties: e.properties,
            received_ms: e.received_ms,
            base_points: e.base_points.unwrap_or(e.points),
            rules_version: e.rules_version,
        })
        .collect())
}

pub async fn top_users(db: &Database, q: &TopUsersQuery) -> Result<Vec<UserTotal>> {
    if q.limit == 0 {
        return Ok(Vec::new());
    }
    let (coll, filter) = match &q.event_type {
        None => (PERIODS, doc! { "period": "all" }),
        Some(t) => (TOTALS, doc! { "event_type": t }),
    };
    let rows = ranked_rows(
        db,
        coll,
        filter,
        doc! { "points": -1, "user_id": 1 },
        i64::from(q.limit),
        q.offset,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(user_id, points)| UserTotal { user_id, points })
        .collect())
}

async fn ranked_rows(
    db: &Database,
    coll: &str,
    filter: Document,
    sort: Document,
    limit: i64,
    skip: u64,
) -> Result<Vec<(String, i64)>> {
    let options = FindOptions::builder()
        .sort(sort)
        .skip(skip)
        .limit(limit)
        .projection(doc! { "_id": 0, "user_id": 1, "points": 1 })
        .build();
    find_all(&db.collection::<Document>(coll), filter, options, None)
        .await?
        .iter()
        .map(|d| Ok((string(d, "user_id")?, int(d, "points")?)))
        .collect()
}

async fn count(db: &Database, filter: Document) -> Result<u64> {
    db.collection::<Document>(PERIODS)
        .count_documents(filter)
        .await
}

pub async fn leaderboard(
    db: &Database,
    period: &str,
    limit: u32,
    offset: u64,
) -> Result<Vec<RankedEntry>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = ranked_rows(
        db,
        PERIODS,
        doc! { "period": period },
        doc! { "points": -1, "user_id": 1 },
        i64::from(limit),
        offset,
    )
    .await?;
    let Some((_, first_points)) = rows.first() else {
        return Ok(Vec::new());
    };
    let above = count(
        db,
        doc! { "period": period, "points": { "$gt": first_points } },
    )
    .await?;
    Ok(rank_run(offset, 1 + above, rows))
}

pub async fn standing(db: &Database, period: &str, user_id: &str, around: u32) -> Result<Standing> {
    let own = db
        .collection::<Document>(PERIODS)
        .find_one(doc! { "_id": period_id(period, user_id) })
        .await?;
    let Some(own) = own else {
        return Ok(Standing {
            rank: None,
            points: 0,
            neighbours: Vec::new(),
        });
    };
    let points = int(&own, "points")?;
    // A limit of 0 means "no limit" to MongoDB.
    let (mut above, below) = if around == 0 {
        (Vec::new(), Vec::new())
    } else {
        let above = ranked_rows(
            db,
            PERIODS,
            doc! { "period": period, "$or": [
                { "points": { "$gt": points } },
                { "points": points, "user_id": { "$lt": user_id } },
            ] },
            doc! { "points": 1, "user_id": -1 },
            i64::from(around),
            0,
        );
        let below = ranked_rows(
            db,
            PERIODS,
            doc! { "period": period, "$or": [
                { "points": { "$lt": points } },
                { "points": points, "user_id": { "$gt": user_id } },
            ] },
            doc! { "points": -1, "user_id": 1 },
            i64::from(around),
            0,
        );
        tokio::try_join!(above, below)?
    };
    above.reverse();
    let mut rows = above;
    rows.push((user_id.to_owned(), points));
    rows.extend(below);
    let (first_user, first_points) = rows[0].clone();
    let (higher, tied_before) = tokio::try_join!(
        count(
            db,
            doc! { "period": period, "points": { "$gt": first_points } }
        ),
        count(
            db,
            doc! { "period": period, "points": first_points, "user_id": { "$lt": &first_user } }
        ),
    )?;
    let neighbours = rank_run(higher + tied_before, higher + 1, rows);
    let rank = neighbours
        .iter()
        .find(|e| e.user_id == user_id)
        .map(|e| e.rank);
    Ok(Standing {
        rank,
        points,
        neighbours,
    })
}
