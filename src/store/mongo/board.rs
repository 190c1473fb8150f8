//! A leaderboard as stored (see state.rs): the all-time board and the per-type totals
//! are fields of the user-state documents; a period's board is the state documents
//! whose slot holds that period plus that period's archive documents. The two never
//! hold the same user's points of one period, so merging them, each read in order
//! through its rank index, gives the board exactly.

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::{ClientSession, Database};

use super::bulk_commands::find_all;
use super::read::{int, string};
use super::schema::{period_id, PERIODS, USERS};
use crate::domain::period::Period;

/// One place entries of a board are kept: a collection, the filter that selects the
/// board in it, and the field holding the points.
pub struct Source {
    coll: &'static str,
    filter: Document,
    points: String,
}

/// Where the board of `key` (`all`, `day:...`, ...) is kept.
pub fn sources(key: &str) -> Vec<Source> {
    match Period::of_key(key) {
        // A user's time zone may be set before their first event: that state document
        // has no counters and is on no board (a range on the index's key, so the
        // board is still read from the index).
        None | Some(Period::All) => vec![Source {
            coll: USERS,
            filter: doc! { "points": { "$gte": i64::MIN } },
            points: "points".into(),
        }],
        Some(kind) => vec![
            Source {
                coll: USERS,
                filter: doc! { format!("{}.key", kind.as_str()): key },
                points: format!("{}.points", kind.as_str()),
            },
            Source {
                coll: PERIODS,
                filter: doc! { "period": key },
                points: "points".into(),
            },
        ],
    }
}

/// The users with events of `event_type`, by their points of that type; `None` for a
/// name no event type can have (it would not be a plain field name).
pub fn of_type(event_type: &str) -> Option<Source> {
    let plain = event_type
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !plain || event_type.is_empty() {
        return None;
    }
    let field = format!("types.{event_type}");
    Some(Source {
        coll: USERS,
        filter: doc! { &field: { "$exists": true } },
        points: format!("{field}.points"),
    })
}

/// Which entries of a board: relative to an entry `(points, user)` in board order
/// (points descending, then user id ascending).
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    Every,
    /// Entries before it (listed nearest first).
    Before(i64, &'a str),
    /// Entries after it.
    After(i64, &'a str),
    /// Entries with more points.
    Higher(i64),
    /// Entries with these points and a smaller user id.
    TiedBefore(i64, &'a str),
}

impl Source {
    fn filter(&self, which: Which) -> Document {
        let p = self.points.as_str();
        let mut f = self.filter.clone();
        let extra = match which {
            Which::Every => return f,
            Which::Before(points, user) => doc! { "$or": [
                { p: { "$gt": points } },
                { p: points, "user_id": { "$lt": user } },
            ] },
            Which::After(points, user) => doc! { "$or": [
                { p: { "$lt": points } },
                { p: points, "user_id": { "$gt": user } },
            ] },
            Which::Higher(points) => doc! { p: { "$gt": points } },
            Which::TiedBefore(points, user) => doc! { p: points, "user_id": { "$lt": user } },
        };
        f.extend(extra);
        f
    }

    async fn rows(
        &self,
        db: &Database,
        session: Option<&mut ClientSession>,
        which: Which<'_>,
        limit: u64,
        skip: u64,
    ) -> Result<Vec<(String, i64)>> {
        // Entries before one are read nearest first: the board order reversed.
        let dir = if matches!(which, Which::Before(..)) {
            1
        } else {
            -1
        };
        let options = FindOptions::builder()
            .sort(doc! { &self.points: dir, "user_id": -dir })
            .skip(skip)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! { "_id": 0, "user_id": 1, &self.points: 1 })
            .build();
        find_all(
            &db.collection::<Document>(self.coll),
            self.filter(which),
            options,
            session,
        )
        .await?
        .iter()
        .map(|d| Ok((string(d, "user_id")?, at_path(d, &self.points)?)))
        .collect()
    }
}

/// Reads a number at a dotted path (`day.points`, `types.LOGIN.points`).
fn at_path(d: &Document, path: &str) -> Result<i64> {
    match path.split_once('.') {
        None => int(d, path),
        Some((head, rest)) => match d.get(head) {
            Some(Bson::Document(inner)) => at_path(inner, rest),
            other => Err(super::error::reply_error(
                None,
                format!("field {head}: not a document: {other:?}"),
            )),
        },
    }
}

/// Up to `limit` entries after skipping `skip`, in board order (nearest first for
/// [`Which::Before`]). With several sources each gives its first `skip + limit`, which
/// are merged: a deep page costs that many entries read.
pub async fn rows(
    db: &Database,
    mut session: Option<&mut ClientSession>,
    sources: &[Source],
    which: Which<'_>,
    limit: u64,
    skip: u64,
) -> Result<Vec<(String, i64)>> {
    // A limit of 0 means "no limit" to MongoDB.
    if limit == 0 {
        return Ok(Vec::new());
    }
    if let [only] = sources {
        return only.rows(db, session, which, limit, skip).await;
    }
    let mut all = Vec::new();
    for s in sources {
        let first = skip.saturating_add(limit);
        all.extend(s.rows(db, session.as_deref_mut(), which, first, 0).await?);
    }
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if matches!(which, Which::Before(..)) {
        all.reverse();
    }
    Ok(all
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect())
}

/// How many entries `which` selects.
pub async fn count(db: &Database, sources: &[Source], which: Which<'_>) -> Result<u64> {
    let mut n = 0;
    for s in sources {
        n += db
            .collection::<Document>(s.coll)
            .count_documents(s.filter(which))
            .await?;
    }
    Ok(n)
}

/// The user's points on the board of `key`, `None` when the user is not on it.
pub async fn own(db: &Database, key: &str, user_id: &str) -> Result<Option<i64>> {
    let state = db
        .collection::<Document>(USERS)
        .find_one(doc! { "_id": user_id, "user_id": user_id })
        .await?;
    let kind = match Period::of_key(key) {
        None | Some(Period::All) => {
            return state
                .filter(|d| d.contains_key("points"))
                .map(|d| int(&d, "points"))
                .transpose()
        }
        Some(kind) => kind.as_str(),
    };
    if let Some(slot) = state.as_ref().and_then(|d| d.get_document(kind).ok()) {
        if slot.get_str("key") == Ok(key) {
            return int(slot, "points").map(Some);
        }
    }
    db.collection::<Document>(PERIODS)
        .find_one(doc! { "_id": period_id(key, user_id), "user_id": user_id })
        .await?
        .map(|d| int(&d, "points"))
        .transpose()
}
