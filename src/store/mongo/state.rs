//! The user-state layout: one document per user (`user_state`, `_id` the user id)
//! holding the all-time points, the per-type totals, the delivery `seq` and one "slot"
//! per period kind (day, week, month: the newest period the user has points in, and
//! those points). Older periods live in archive documents (`period_points`,
//! `period|user`). A user's points of one period are in exactly one of the two places:
//! in the slot while it holds that period, in the archive otherwise; slots only move
//! forward, and the points of the period a slot leaves move into its archive in the
//! same write. So a stored event writes itself and one state update, and an archive
//! only when it rolls a slot over or is late for a period the slot has left.
//!
//! Where the points go is layout, not rules: the engine's [`Changes`] say how much each
//! period gains; [`Plan`] only places it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::ClientSession;

use super::bulk_commands::find_all;
use super::schema::{period_id, ACHIEVEMENTS, GUARD, PROGRESS, USERS, WALLET_DUE};
use super::Ctx;
use crate::domain::engine::{Changes, TypeCount};
use crate::domain::period::Period;
use crate::domain::progression::Progress;

/// The slot fields, in this order in [`Loaded::slots`].
pub const SLOTS: [Period; 3] = [Period::Day, Period::Week, Period::Month];
/// Journal mode: the archive increments a batch owes, recorded in the state update that
/// made them owed, so recovery can finish them once the state has moved on.
pub const MOVED: &str = "moved";

/// What a group commit reads of a user's state document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub points: i64,
    pub seq: i64,
    /// Per kind of [`SLOTS`]: the period key held and its points.
    pub slots: [Option<(String, i64)>; 3],
    /// Batches applied and not yet retired (journal mode).
    pub batches: Vec<String>,
    /// `(batch, period key, points)` the batches above still owe the archives.
    pub moved: Vec<(String, String, i64)>,
    /// The user's progression, when it was read (see [`load`]).
    pub progress: Option<Progress>,
}

impl Loaded {
    pub fn from_doc(d: &Document) -> Loaded {
        let int = |d: &Document, k: &str| super::read::int(d, k).unwrap_or(0);
        let mut slots: [Option<(String, i64)>; 3] = Default::default();
        for (slot, kind) in slots.iter_mut().zip(SLOTS) {
            if let Ok(s) = d.get_document(kind.as_str()) {
                if let Ok(key) = s.get_str("key") {
                    *slot = Some((key.to_owned(), int(s, "points")));
                }
            }
        }
        let strings = |k: &str| -> Vec<String> {
            d.get_array(k)
                .map(|a| {
                    a.iter()
                        .filter_map(|b| b.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let moved = d
            .get_array(MOVED)
            .map(|a| {
                a.iter()
                    .filter_map(Bson::as_document)
                    .filter_map(|m| {
                        Some((
                            m.get_str("batch").ok()?.to_owned(),
                            m.get_str("period").ok()?.to_owned(),
                            int(m, "points"),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Loaded {
            points: int(d, "points"),
            seq: int(d, "seq"),
            slots,
            batches: strings(GUARD),
            moved,
            progress: d.contains_key(PROGRESS).then(|| progress_of(d)),
        }
    }

    pub fn holds(&self, batch: &str) -> bool {
        self.batches.iter().any(|b| b == batch)
    }
}

/// The progression a state document holds (empty when it holds none).
pub fn progress_of(d: &Document) -> Progress {
    let Ok(text) = d.get_str(PROGRESS) else {
        return Progress::default();
    };
    match serde_json::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            // Written by this code only; a bad value must not stop the user's events.
            let user = d.get_str("_id").unwrap_or_default();
            tracing::error!(user_id = user, error = %e, "unreadable progress, starting afresh");
            Progress::default()
        }
    }
}

/// The `$set` of a user's progression: the JSON text and the unlocked ids.
pub fn progress_set(progress: &Progress) -> Result<Document> {
    let text = serde_json::to_string(progress)
        .map_err(|e| super::error::reply_error(None, format!("progress as JSON: {e}")))?;
    let ids: Vec<&str> = progress.achievements.keys().map(String::as_str).collect();
    // With every write of the progress, so that the sweeper's index never lags it (an
    // earn with an expiry moves it as much as a spend does).
    Ok(doc! { PROGRESS: text, ACHIEVEMENTS: ids, WALLET_DUE: progress.wallet.due_ms })
}

/// The state documents of `users`, by user; users without one are missing. With
/// `progress` their progression is read too (it is only needed when the rules of some
/// event track progress, and it grows with what the user unlocked).
pub async fn load(
    ctx: &Ctx,
    session: Option<&mut ClientSession>,
    users: &BTreeSet<&str>,
    progress: bool,
) -> Result<HashMap<String, Loaded>> {
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&str> = users.iter().copied().collect();
    let mut projection = doc! { "types": 0, ACHIEVEMENTS: 0 };
    if !progress {
        projection.insert(PROGRESS, 0);
    }
    // `user_id` too: on a sharded cluster it targets the shards holding these users.
    let docs: Vec<Document> = find_all(
        &ctx.db.collection(USERS),
        doc! { "_id": { "$in": &ids }, "user_id": { "$in": &ids } },
        FindOptions::builder().projection(projection).build(),
        session,
    )
    .await?;
    Ok(docs
        .iter()
        .filter_map(|d| Some((d.get_str("_id").ok()?.to_owned(), Loaded::from_doc(d))))
        .collect())
}

/// What happens to one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// It keeps its period and gains these points.
    Add(i64),
    /// It now holds this period with these points.
    Set(String, i64),
}

/// One user's state update.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserUpdate {
    points: i64,
    events: i64,
    types: BTreeMap<String, TypeCount>,
    slots: Vec<(Period, Slot)>,
    /// The archive increments it makes owed (recorded with it in journal mode).
    moved: BTreeMap<String, i64>,
    /// The user's progression after the commit, when the commit changed it.
    progress: Option<Progress>,
}

/// Where a group commit's counter changes go.
#[derive(Debug, Default)]
pub struct Plan {
    users: BTreeMap<String, UserUpdate>,
    /// Archive `_id` → (user, period key, points added).
    archives: BTreeMap<String, (String, String, i64)>,
    /// (period key, user) → points the commit adds to the user's entry on that board,
    /// wherever it is kept: what `rank.changed` needs.
    pub added: BTreeMap<(String, String), i64>,
}

impl Plan {
    /// Places `changes`, one user's summed changes of this commit, on `loaded`.
    pub fn add(&mut self, user: &str, loaded: Option<&Loaded>, changes: &Changes) {
        if changes.is_empty() {
            return;
        }
        let mut update = UserUpdate {
            points: changes.points,
            events: changes.events,
            types: changes.by_type.clone(),
            slots: Vec::new(),
            moved: BTreeMap::new(),
            progress: None,
        };
        for (key, points) in &changes.periods {
            *self
                .added
                .entry((key.clone(), user.to_owned()))
                .or_default() += points;
        }
        for (i, kind) in SLOTS.into_iter().enumerate() {
            let mut keys: BTreeMap<&str, i64> = changes
                .periods
                .iter()
                .filter(|(k, _)| Period::of_key(k) == Some(kind))
                .map(|(k, p)| (k.as_str(), *p))
                .collect();
            // Keys sort as their periods do (zero-padded dates), so the last is newest.
            let Some((&newest, &gained)) = keys.iter().next_back() else {
                continue;
            };
            let held = loaded.and_then(|l| l.slots[i].as_ref());
            match held {
                Some((key, _)) if key.as_str() > newest => {}
                Some((key, _)) if key == newest => {
                    update.slots.push((kind, Slot::Add(gained)));
                    keys.remove(newest);
                }
                Some((key, points)) => {
                    *keys.entry(key.as_str()).or_default() += points;
                    update
                        .slots
                        .push((kind, Slot::Set(newest.to_owned(), gained)));
                    keys.remove(newest);
                }
                None => {
                    update
                        .slots
                        .push((kind, Slot::Set(newest.to_owned(), gained)));
                    keys.remove(newest);
                }
            }
            for (key, points) in keys {
                update.moved.insert(key.to_owned(), points);
            }
        }
        self.owe(user, &update.moved);
        self.users.insert(user.to_owned(), update);
    }

    /// Writes `progress` with the user's state update, so that it lands exactly when the
    /// counters of the events that made it do (in journal mode under the same guard).
    /// Only for a user the plan changes: progress moves only with stored entries.
    pub fn set_progress(&mut self, user: &str, progress: &Progress) {
        if let Some(u) = self.users.get_mut(user) {
            u.progress = Some(progress.clone());
        }
    }

    /// Recovery: archive increments that an applied state update recorded as owed.
    pub fn add_owed(&mut self, user: &str, loaded: &Loaded, batch: &str) {
        let owed: BTreeMap<String, i64> = loaded
            .moved
            .iter()
            .filter(|(b, _, _)| b == batch)
            .map(|(_, k, p)| (k.clone(), *p))
            .collect();
        self.owe(user, &owed);
    }

    fn owe(&mut self, user: &str, owed: &BTreeMap<String, i64>) {
        for (key, points) in owed {
            self.archives
                .entry(period_id(key, user))
                .or_insert_with(|| (user.to_owned(), key.clone(), 0))
                .2 += points;
        }
    }

    pub fn user_ids(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    pub fn archive_ids(&self) -> Vec<String> {
        self.archives.keys().cloned().collect()
    }

    /// Drops the archive increments whose documents already hold this batch.
    pub fn without_archives(mut self, done: &[String]) -> Plan {
        for id in done {
            self.archives.remove(id);
        }
        self
    }

    /// `update` statements for the state documents, keyed by user. With `guard`, a
    /// document already holding that batch does not match, and the owed archive
    /// increments are recorded with the batch.
    pub fn user_updates(
        &self,
        guard: Option<&str>,
        upsert: bool,
    ) -> Result<Vec<(String, Document)>> {
        self.users
            .iter()
            .map(|(user, u)| -> Result<(String, Document)> {
                // `seq` orders the user's webhook deliveries (see outbox.rs): one step
                // per commit that changes the user.
                let mut inc = doc! { "points": u.points, "events": u.events, "seq": 1_i64 };
                for (ty, c) in &u.types {
                    inc.insert(format!("types.{ty}.events"), c.events);
                    inc.insert(format!("types.{ty}.points"), c.points);
                }
                let mut set = Document::new();
                for (kind, slot) in &u.slots {
                    match slot {
                        Slot::Add(p) => {
                            inc.insert(format!("{}.points", kind.as_str()), p);
                        }
                        Slot::Set(key, p) => {
                            set.insert(kind.as_str(), doc! { "key": key, "points": p });
                        }
                    }
                }
                if let Some(p) = &u.progress {
                    set.extend(progress_set(p)?);
                }
                let mut update = doc! { "$inc": inc, "$setOnInsert": { "user_id": user } };
                if !set.is_empty() {
                    update.insert("$set", set);
                }
                let mut q = doc! { "_id": user, "user_id": user };
                if let Some(batch) = guard {
                    q.insert(GUARD, doc! { "$ne": batch });
                    let mut push = doc! { GUARD: batch };
                    if !u.moved.is_empty() {
                        let owed: Vec<Document> = u
                            .moved
                            .iter()
                            .map(|(k, p)| doc! { "batch": batch, "period": k, "points": p })
                            .collect();
                        push.insert(MOVED, doc! { "$each": owed });
                    }
                    update.insert("$push", push);
                }
                Ok((user.clone(), doc! { "q": q, "u": update, "upsert": upsert }))
            })
            .collect()
    }

    /// `update` statements for the archives, keyed by `_id`.
    pub fn archive_updates(&self, guard: Option<&str>, upsert: bool) -> Vec<(String, Document)> {
        self.archives
            .iter()
            .map(|(id, (user, period, points))| {
                // The filter carries `user_id`, the shard key: an upsert on a sharded
                // collection must name it, and the statement then reaches one shard.
                let mut q = doc! { "_id": id, "user_id": user };
                let mut u = doc! {
                    "$inc": { "points": points },
                    "$setOnInsert": { "user_id": user, "period": period },
                };
                if let Some(batch) = guard {
                    q.insert(GUARD, doc! { "$ne": batch });
                    u.insert("$push", doc! { GUARD: batch });
                }
                (id.clone(), doc! { "q": q, "u": u, "upsert": upsert })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(periods: &[(&str, i64)]) -> Changes {
        Changes {
            points: 1,
            events: 1,
            by_type: BTreeMap::new(),
            periods: periods.iter().map(|(k, p)| (k.to_string(), *p)).collect(),
        }
    }

    fn loaded(day: &str, points: i64) -> Loaded {
        Loaded {
            slots: [Some((day.into(), points)), None, None],
            ..Loaded::default()
        }
    }

    #[test]
    fn a_slot_rolls_forward_and_archives_what_it_held() {
        let mut plan = Plan::default();
        let l = loaded("day:2026-01-02", 7);
        plan.add(
            "u",
            Some(&l),
            &changes(&[("day:2026-01-03", 2), ("day:2026-01-01", 1)]),
        );
        let u = &plan.users["u"];
        assert_eq!(
            u.slots,
            vec![(Period::Day, Slot::Set("day:2026-01-03".into(), 2))]
        );
        assert_eq!(
            u.moved,
            BTreeMap::from([("day:2026-01-01".into(), 1), ("day:2026-01-02".into(), 7)])
        );
        assert_eq!(plan.archive_ids().len(), 2);
    }

    #[test]
    fn same_period_adds_and_late_events_go_to_the_archive() {
        let mut plan = Plan::default();
        let l = loaded("day:2026-01-02", 7);
        plan.add("u", Some(&l), &changes(&[("day:2026-01-02", 3)]));
        plan.add("v", Some(&l), &changes(&[("day:2026-01-01", 4)]));
        assert_eq!(plan.users["u"].slots, vec![(Period::Day, Slot::Add(3))]);
        assert!(plan.users["u"].moved.is_empty());
        assert!(plan.users["v"].slots.is_empty());
        assert_eq!(plan.archive_ids(), vec!["day:2026-01-01|v".to_string()]);
    }

    #[test]
    fn a_new_user_gets_slots_and_no_archive() {
        let mut plan = Plan::default();
        plan.add("u", None, &changes(&[("all", 5), ("week:2026-W01", 5)]));
        assert_eq!(
            plan.users["u"].slots,
            vec![(Period::Week, Slot::Set("week:2026-W01".into(), 5))]
        );
        assert!(plan.archive_ids().is_empty());
        assert_eq!(plan.added[&("all".to_string(), "u".to_string())], 5);
    }
}
