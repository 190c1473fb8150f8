//! Read queries, mirroring src/store/sqlite/read.rs: totals and ranks come from the
//! user-state documents and period archives through their indexes (board.rs), never
//! from summing a user's events.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::Database;

use super::board::{self, Which};
use super::bulk_commands::find_all;
use super::error::reply_error;
use super::schema::{EventDoc, EVENTS, USERS};
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

/// The per-type totals of a state document, ordered by type.
pub(super) fn types_of(state: &Document) -> Result<Vec<TypeTotal>> {
    let Ok(types) = state.get_document("types") else {
        return Ok(Vec::new());
    };
    // A BSON document keeps insertion order; types are listed by name.
    let mut out: Vec<TypeTotal> = types
        .iter()
        .map(|(ty, c)| {
            let c = c
                .as_document()
                .ok_or_else(|| reply_error(None, format!("types.{ty}: not a document")))?;
            Ok(TypeTotal {
                event_type: ty.clone(),
                events: u64::try_from(int(c, "events")?).unwrap_or(0),
                points: int(c, "points")?,
            })
        })
        .collect::<Result<_>>()?;
    out.sort_by(|a, b| a.event_type.cmp(&b.event_type));
    Ok(out)
}

pub async fn user_points(db: &Database, user_id: &str, range: TimeRange) -> Result<UserPoints> {
    let by_type: Vec<TypeTotal> = if range == TimeRange::default() {
        let state = db
            .collection::<Document>(USERS)
            .find_one(doc! { "_id": user_id, "user_id": user_id })
            .projection(doc! { "types": 1 })
            .await?;
        match state {
            Some(d) => types_of(&d)?,
            None => Vec::new(),
        }
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
    let sources = match &q.event_type {
        None => board::sources("all"),
        Some(t) => match board::of_type(t) {
            Some(source) => vec![source],
            None => return Ok(Vec::new()),
        },
    };
    let rows = board::rows(
        db,
        None,
        &sources,
        Which::Every,
        u64::from(q.limit),
        q.offset,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(user_id, points)| UserTotal { user_id, points })
        .collect())
}

pub async fn leaderboard(
    db: &Database,
    period: &str,
    limit: u32,
    offset: u64,
) -> Result<Vec<RankedEntry>> {
    let sources = board::sources(period);
    let rows = board::rows(db, None, &sources, Which::Every, u64::from(limit), offset).await?;
    let Some((_, first_points)) = rows.first() else {
        return Ok(Vec::new());
    };
    let above = board::count(db, &sources, Which::Higher(*first_points)).await?;
    Ok(rank_run(offset, 1 + above, rows))
}

pub async fn standing(db: &Database, period: &str, user_id: &str, around: u32) -> Result<Standing> {
    let Some(points) = board::own(db, period, user_id).await? else {
        return Ok(Standing {
            rank: None,
            points: 0,
            neighbours: Vec::new(),
        });
    };
    let sources = board::sources(period);
    let around = u64::from(around);
    let (mut above, below) = tokio::try_join!(
        board::rows(
            db,
            None,
            &sources,
            Which::Before(points, user_id),
            around,
            0
        ),
        board::rows(db, None, &sources, Which::After(points, user_id), around, 0),
    )?;
    above.reverse();
    let mut rows = above;
    rows.push((user_id.to_owned(), points));
    rows.extend(below);
    let (first_user, first_points) = rows[0].clone();
    let (higher, tied_before) = tokio::try_join!(
        board::count(db, &sources, Which::Higher(first_points)),
        board::count(db, &sources, Which::TiedBefore(first_points, &first_user)),
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
