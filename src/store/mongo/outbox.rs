//! The webhook outbox of the MongoDB store: the deliveries of a group commit are
//! written with it, after its counters, so that a committed event always has its
//! notifications.
//!
//! - With transactions, in the commit's transaction: all or nothing.
//! - Without (standalone), before the batch is retired. Delivery ids are derived from
//!   the batch, so when recovery re-applies a batch cut short it queues the same
//!   deliveries again and the ones already stored are kept, not doubled.
//!
//! The engine's notices (one `points.changed` per user per request, one `cap.reached`
//! per event that used up a cap), one delivery per subscription each. A user's
//! deliveries are ordered by `seq`, a counter in the user's state document that each
//! group commit changing the user increments: commits of one user are serialized (they
//! write that document), so the order holds across instances too.

use std::collections::BTreeSet;

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::ClientSession;
use sha2::{Digest, Sha256};

use super::boards::RankNotice;
use super::bulk_commands::{self, find_all};
use super::commit::wall_ms as commit_ms;
use super::schema::{DELIVERIES, USERS};
use super::Ctx;
use crate::domain::engine::Notice as EngineNotice;
use crate::store::UserRecompute;
use crate::webhooks::payload;
use crate::webhooks::{RankWatch, POINTS_CHANGED, RANK_CHANGED};

/// What one group commit notifies, as far as its own writes go.
pub struct Batch<'a> {
    /// The group commit's id; delivery ids derive from it.
    pub id: &'a str,
    /// The engine's notices, in order.
    pub notices: Vec<EngineNotice>,
    /// Recovery of a batch cut short: some of its deliveries may be stored already.
    pub redo: bool,
}

/// Queues the deliveries of one group commit, reading and writing in `session` when
/// there is one: its engine notices for `subs`, and the `ranks` notices. `seqs` are
/// the delivery sequences the commit gave its users; other users' are read. Reads
/// nothing when nobody is to be notified.
pub async fn queue(
    ctx: &Ctx,
    mut session: Option<&mut ClientSession>,
    b: &Batch<'_>,
    subs: &Subscribers,
    ranks: Vec<RankNotice>,
    seqs: &std::collections::HashMap<String, i64>,
) -> Result<()> {
    let batch = b.id;
    let wanted = |n: &EngineNotice| !subs.of(payload::describe(n).kind).is_empty();
    let own: Vec<&EngineNotice> = b.notices.iter().filter(|n| wanted(n)).collect();
    if own.is_empty() && ranks.is_empty() {
        return Ok(());
    }
    let mut users: BTreeSet<&str> = own.iter().map(|n| user_of(n)).collect();
    users.extend(ranks.iter().map(|r| r.user_id.as_str()));
    users.retain(|u| !seqs.contains_key(*u));
    let standing = standings(ctx, session.as_deref_mut(), &users).await?;
    let seq_of = |user: &str| {
        seqs.get(user)
            .copied()
            .unwrap_or_else(|| standing.get(user).map_or(0, |s| s.1))
    };

    let mut notices = Vec::new();
    // A user's notices of this commit in the engine's order: `n` counts them.
    let mut per_user: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for notice in own {
        let user = user_of(notice);
        let n = per_user.entry(user).or_default();
        let payload::Described {
            kind,
            key,
            at_ms,
            data,
            ..
        } = payload::describe(notice);
        let subs = subs.of(kind);
        notices.push(Notice {
            kind,
            subs,
            user,
            key,
            seq: seq_of(user),
            n: *n,
            at_ms,
            data,
        });
        *n += 1;
    }
    // After the commit's own notices of a user; users the commit did not write (pushed
    // down by others) keep their seq, so the commit's time orders theirs.
    let now = commit_ms();
    let rank_base = now * 1_000;
    for (i, r) in ranks.iter().enumerate() {
        notices.push(Notice {
            kind: RANK_CHANGED,
            subs: std::slice::from_ref(&r.subscription),
            user: &r.user_id,
            key: format!("{}|{}", r.board, r.user_id),
            seq: seq_of(&r.user_id),
            n: rank_base + i as i64,
            at_ms: now,
            data: r.data.clone(),
        });
    }
    let mut docs = Vec::new();
    for notice in &notices {
        docs.extend(notice.subs.iter().map(|sub| notice.delivery(batch, sub)));
    }
    let coll = ctx.db.collection::<Document>(DELIVERIES);
    if b.redo {
        // Deliveries an earlier attempt at this batch stored stay as they are (they may
        // have been sent already); inside a transaction a duplicate would abort it.
        let ids: Vec<Bson> = docs.iter().filter_map(|d| d.get("_id").cloned()).collect();
        let stored: Vec<Document> = find_all(
            &coll,
            doc! { "_id": { "$in": ids } },
            FindOptions::builder().projection(doc! { "_id": 1 }).build(),
            session.as_deref_mut(),
        )
        .await?;
        let stored: BTreeSet<&str> = stored
            .iter()
            .filter_map(|d| d.get_str("_id").ok())
            .collect();
        docs.retain(|d| d.get_str("_id").is_ok_and(|id| !stored.contains(id)));
    }
    bulk_commands::insert_new(&coll, &docs, session).await?;
    Ok(())
}

/// The subscriptions, read once per group commit (before its counters move, so that
/// the boards `rank.changed` watches can be read first).
#[derive(Default)]
pub struct Subscribers {
    /// Subscription ids by notification kind (`rank.changed` aside).
    by_kind: std::collections::HashMap<&'static str, Vec<String>>,
    /// The `rank.changed` subscriptions and the board each watches.
    pub ranks: Vec<(String, RankWatch)>,
}

impl Subscribers {
    pub async fn load(ctx: &Ctx, session: Option<&mut ClientSession>) -> Result<Subscribers> {
        let mut subs = Subscribers::default();
        for s in super::webhooks::list_in(&ctx.db, session).await? {
            for e in &s.events {
                match crate::webhooks::sent_kind(e) {
                    Some(RANK_CHANGED) => {
                        if let Some(watch) = s.rank {
                            subs.ranks.push((s.id.clone(), watch));
                        }
                    }
                    Some(kind) => subs.by_kind.entry(kind).or_default().push(s.id.clone()),
                    None => {}
                }
            }
        }
        Ok(subs)
    }

    fn of(&self, kind: &str) -> &[String] {
        self.by_kind.get(kind).map_or(&[], |v| &v[..])
    }
}

/// `points.changed` for a recompute that changed the user's total, and `level.changed`
/// when it moved their level, in its transaction (after it rewrote the user's counters).
pub async fn queue_recompute(
    ctx: &Ctx,
    s: &mut ClientSession,
    user_id: &str,
    report: &UserRecompute,
    rules: &crate::domain::rules::Rules,
) -> Result<()> {
    let delta = report.recomputed - report.current;
    let now = commit_ms();
    let level = report.level_notice(user_id, rules, now);
    if delta == 0 && level.is_none() {
        return Ok(());
    }
    let subs = Subscribers::load(ctx, Some(&mut *s)).await?;
    let seq = standings(ctx, Some(&mut *s), &BTreeSet::from([user_id]))
        .await?
        .get(user_id)
        .map_or(0, |p| p.1);
    let mut notices = Vec::new();
    if delta != 0 {
        notices.push(Notice {
            kind: POINTS_CHANGED,
            subs: subs.of(POINTS_CHANGED),
            user: user_id,
            key: user_id.to_owned(),
            seq,
            n: 0,
            at_ms: now,
            data: payload::points_recomputed(user_id, report.recomputed, delta, rules.version()),
        });
    }
    if let Some(level) = &level {
        let d = payload::describe(level);
        notices.push(Notice {
            kind: d.kind,
            subs: subs.of(d.kind),
            user: user_id,
            key: format!("{user_id}|level"),
            seq,
            n: 1,
            at_ms: now,
            data: d.data,
        });
    }
    let batch = uuid::Uuid::now_v7().simple().to_string();
    let docs: Vec<Document> = notices
        .iter()
        .flat_map(|n| n.subs.iter().map(|sub| n.delivery(&batch, sub)))
        .collect();
    if docs.is_empty() {
        return Ok(());
    }
    let coll = ctx.db.collection::<Document>(DELIVERIES);
    bulk_commands::insert_new(&coll, &docs, Some(s)).await?;
    Ok(())
}

/// Each user's total and delivery sequence as their state documents hold them now.
pub async fn standings(
    ctx: &Ctx,
    session: Option<&mut ClientSession>,
    users: &BTreeSet<&str>,
) -> Result<std::collections::HashMap<String, (i64, i64)>> {
    if users.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let ids: Vec<&str> = users.iter().copied().collect();
    let docs: Vec<Document> = find_all(
        &ctx.db.collection(USERS),
        doc! { "_id": { "$in": &ids }, "user_id": { "$in": &ids } },
        FindOptions::builder()
            .projection(doc! { "user_id": 1, "points": 1, "seq": 1 })
            .build(),
        session,
    )
    .await?;
    Ok(docs
        .iter()
        .filter_map(|d| {
            let user = d.get_str("user_id").ok()?;
            let points = d.get_i64("points").unwrap_or(0);
            let seq = d.get_i64("seq").unwrap_or(0);
            Some((user.to_owned(), (points, seq)))
        })
        .collect())
}

/// One notification of this commit, before it is addressed to each subscriber.
struct Notice<'a> {
    kind: &'static str,
    /// The subscriptions it goes to.
    subs: &'a [String],
    user: &'a str,
    /// What makes it unique within the batch and kind: the user, the event for caps,
    /// the board and user for ranks.
    key: String,
    /// Its place in the user's queue: the commit's `seq`, then `n` within the commit.
    seq: i64,
    n: i64,
    at_ms: i64,
    data: serde_json::Value,
}

impl Notice<'_> {
    fn delivery(&self, batch: &str, subscription: &str) -> Document {
        let id = delivery_id(&[batch, subscription, self.kind, &self.key]);
        let body = payload::body(&id, self.kind, self.at_ms, &self.data);
        doc! {
            "_id": &id,
            "subscription_id": subscription,
            "user_id": self.user,
            "event": self.kind,
            "body": body,
            "status": "pending",
            "attempts": 0_i64,
            "next_attempt_ms": 0_i64,
            "lease_ms": 0_i64,
            "last_status": Bson::Null,
            "last_error": Bson::Null,
            "created_ms": self.at_ms,
            "updated_ms": self.at_ms,
            "seq": self.seq,
            "n": self.n,
        }
    }
}

/// A UUID (version 8) derived from what identifies the delivery, so the same batch
/// queued twice yields the same ids.
fn user_of(n: &EngineNotice) -> &str {
    n.user_id()
}

fn delivery_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::delivery_id;

    #[test]
    fn delivery_ids_are_stable_and_distinct() {
        let a = delivery_id(&["b1", "s1", "points.changed", "u1"]);
        assert_eq!(a, delivery_id(&["b1", "s1", "points.changed", "u1"]));
        assert_ne!(a, delivery_id(&["b2", "s1", "points.changed", "u1"]));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            delivery_id(&["ab", "c", "x", "y"]),
            delivery_id(&["a", "bc", "x", "y"])
        );
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 8);
    }
}
