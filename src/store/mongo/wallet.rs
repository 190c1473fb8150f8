//! The wallet on MongoDB: its state is part of the user's progress in their state
//! document (see state.rs), its ledger the `wallet_entries` collection.
//!
//! An operation is one transaction: read the user's progress and the stored entry of
//! its dedup key, run the engine, insert its entries, write the progress back and queue
//! its notices. Every group commit of the user writes the same state document, as does
//! every other wallet operation, from this instance or another: two of them that
//! overlap conflict and one is retried from fresh reads, so a balance is never spent
//! twice. Without transactions (a standalone server) there is nothing to serialize two
//! instances' read-modify-writes with, so the store refuses wallet writes there.

use std::collections::HashMap;

use futures_util::FutureExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::Result;
use mongodb::options::FindOptions;
use mongodb::ClientSession;

use super::bulk_commands::{self, find_all};
use super::outbox::{self, Batch, Subscribers};
use super::schema::{PROGRESS, USERS, WALLET_DUE, WALLET_ENTRIES};
use super::state::{progress_of, progress_set};
use super::txn::{conflict, in_transaction};
use super::Ctx;
use crate::domain::engine::{self, UserState, WalletOp};
use crate::domain::rules::Rules;
use crate::domain::wallet::{EntryKind, WalletEntry};
use crate::store::{HistoryCursor, WalletResult};

/// Runs `op` for the user at `now_ms` in a transaction (callers check the mode).
pub async fn op(
    ctx: &Ctx,
    user_id: &str,
    op: &WalletOp,
    rules: &Rules,
    now_ms: i64,
) -> Result<WalletResult> {
    in_transaction(
        ctx,
        &(ctx, user_id, op, rules, now_ms),
        |s, (ctx, user_id, op, rules, now_ms)| op_in(ctx, s, user_id, op, rules, *now_ms).boxed(),
    )
    .await
}

async fn op_in(
    ctx: &Ctx,
    s: &mut ClientSession,
    user_id: &str,
    op: &WalletOp,
    rules: &Rules,
    now_ms: i64,
) -> Result<WalletResult> {
    let users = ctx.db.collection::<Document>(USERS);
    let filter = doc! { "_id": user_id, "user_id": user_id };
    // Read in the transaction: a commit of the user that changes the document after
    // this read conflicts with the write below, and this attempt is retried.
    let stored_state = users
        .find_one(filter.clone())
        .projection(doc! { PROGRESS: 1, "seq": 1 })
        .session(&mut *s)
        .await?;
    let mut state = UserState {
        progress: stored_state.as_ref().map(progress_of).unwrap_or_default(),
        ..UserState::default()
    };
    let before = state.progress.clone();
    // The delivery sequence this write gives the user, as a group commit would.
    let seq = stored_state
        .as_ref()
        .and_then(|d| d.get_i64("seq").ok())
        .unwrap_or(0)
        + 1;
    let stored = match op.creates_key() {
        Some(key) => entry_id(ctx, s, user_id, &key).await?,
        None => None,
    };
    let wallet_rules = rules.progression().wallet.clone().unwrap_or_default();
    let out = engine::wallet_op(user_id, &mut state, &wallet_rules, op, now_ms, stored);
    let wallet = state.progress.wallet.clone();
    if out.entries.is_empty() && out.notices.is_empty() && state.progress == before {
        // Refused with nothing due: nothing to write, so nothing to conflict with.
        return Ok(WalletResult {
            result: out.result,
            wallet,
        });
    }

    let docs: Vec<Document> = out.entries.iter().map(|e| entry_doc(user_id, e)).collect();
    let coll = ctx.db.collection::<Document>(WALLET_ENTRIES);
    if !bulk_commands::insert_new(&coll, &docs, Some(&mut *s))
        .await?
        .is_empty()
    {
        // Another writer stored the same dedup key after this transaction's reads: the
        // retry finds it and refuses the operation with its id.
        return Err(conflict("wallet entry stored concurrently"));
    }
    // `seq` moves with every write of the user's wallet, so that its notices queue
    // after those of the user's earlier commits and before later ones'.
    let update = doc! {
        "q": filter,
        "u": {
            "$set": progress_set(&state.progress)?,
            "$inc": { "seq": 1_i64 },
            "$setOnInsert": { "user_id": user_id },
        },
        "upsert": true,
    };
    let duplicates =
        bulk_commands::update(ctx, USERS, &[(user_id.to_owned(), update)], Some(&mut *s)).await?;
    if !duplicates.is_empty() {
        return Err(conflict("user state created concurrently"));
    }
    if !out.notices.is_empty() {
        let subs = Subscribers::load(ctx, Some(&mut *s)).await?;
        let batch_id = uuid::Uuid::now_v7().simple().to_string();
        let batch = Batch {
            id: &batch_id,
            notices: out.notices,
            redo: false,
        };
        let seqs = HashMap::from([(user_id.to_owned(), seq)]);
        outbox::queue(ctx, Some(s), &batch, &subs, Vec::new(), &seqs).await?;
    }
    Ok(WalletResult {
        result: out.result,
        wallet,
    })
}

/// The id of the user's wallet entry with this dedup key, if there is one.
async fn entry_id(
    ctx: &Ctx,
    s: &mut ClientSession,
    user_id: &str,
    key: &str,
) -> Result<Option<String>> {
    let found = ctx
        .db
        .collection::<Document>(WALLET_ENTRIES)
        .find_one(doc! { "user_id": user_id, "dedup_key": key })
        .projection(doc! { "_id": 1 })
        .session(s)
        .await?;
    Ok(found.and_then(|d| d.get_str("_id").ok().map(str::to_owned)))
}

fn entry_doc(user_id: &str, e: &WalletEntry) -> Document {
    doc! {
        "_id": &e.id,
        "user_id": user_id,
        "kind": e.kind.as_str(),
        "amount": e.amount,
        "ref_id": &e.ref_id,
        "reason": e.reason.as_deref().map_or(Bson::Null, |r| Bson::String(r.to_owned())),
        "ts_ms": e.ts_ms,
        "dedup_key": e.dedup_key(),
        "expires_ms": e.expires_ms.map_or(Bson::Null, Bson::Int64),
    }
}

fn entry_of(d: &Document) -> Option<WalletEntry> {
    let kind = d.get_str("kind").ok().and_then(EntryKind::parse);
    if kind.is_none() {
        // Written by this code only; one unreadable entry must not hide the others.
        tracing::error!(id = ?d.get("_id"), "unreadable wallet entry, skipped");
    }
    Some(WalletEntry {
        id: d.get_str("_id").ok()?.to_owned(),
        kind: kind?,
        amount: d.get_i64("amount").ok()?,
        ref_id: d.get_str("ref_id").ok()?.to_owned(),
        reason: d.get_str("reason").ok().map(str::to_owned),
        ts_ms: d.get_i64("ts_ms").ok()?,
        expires_ms: d.get_i64("expires_ms").ok(),
    })
}

/// The user's wallet entries, newest first (time, then id), strictly before `before`.
pub async fn entries(
    ctx: &Ctx,
    user_id: &str,
    before: Option<HistoryCursor>,
    limit: u32,
) -> Result<Vec<WalletEntry>> {
    let mut filter = doc! { "user_id": user_id };
    if let Some(c) = before {
        filter.insert(
            "$or",
            vec![
                doc! { "ts_ms": { "$lt": c.ts_ms } },
                doc! { "ts_ms": c.ts_ms, "_id": { "$lt": &c.id } },
            ],
        );
    }
    let docs: Vec<Document> = find_all(
        &ctx.db.collection(WALLET_ENTRIES),
        filter,
        FindOptions::builder()
            .sort(doc! { "ts_ms": -1, "_id": -1 })
            .limit(i64::from(limit))
            .build(),
        None,
    )
    .await?;
    Ok(docs.iter().filter_map(entry_of).collect())
}

/// Users whose wallet has something due at `now_ms`, the longest due first.
pub async fn due(ctx: &Ctx, now_ms: i64, limit: u32) -> Result<Vec<String>> {
    let docs: Vec<Document> = find_all(
        &ctx.db.collection(USERS),
        // `$lte` on a number leaves out the documents holding null (nothing due).
        doc! { WALLET_DUE: { "$lte": now_ms } },
        FindOptions::builder()
            .sort(doc! { WALLET_DUE: 1 })
            .limit(i64::from(limit))
            .projection(doc! { "user_id": 1 })
            .build(),
        None,
    )
    .await?;
    Ok(docs
        .iter()
        .filter_map(|d| d.get_str("user_id").ok().map(str::to_owned))
        .collect())
}
