//! The registered rules versions. Activation is rare (start-up and reloads), so it
//! runs on a connection of its own rather than through the ingest writer; SQLite's
//! write lock orders it with the writer and with other processes.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::domain::rules::RulesVersion;

pub fn activate(
    conn: &mut Connection,
    hash: &str,
    text: &str,
    now_ms: i64,
) -> rusqlite::Result<RulesVersion> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let latest = latest(&tx)?;
    if let Some(v) = latest.as_ref().filter(|v| v.hash == hash) {
        return Ok(v.clone());
    }
    let version = latest.map_or(1, |v| v.version + 1);
    tx.execute(
        "INSERT INTO rules_versions (version, hash, content, activated_ms) VALUES (?1, ?2, ?3, ?4)",
        params![version, hash, text, now_ms],
    )?;
    tx.commit()?;
    Ok(RulesVersion {
        version,
        hash: hash.to_owned(),
        activated_at: now_ms,
    })
}

fn latest(c: &Connection) -> rusqlite::Result<Option<RulesVersion>> {
    c.query_row(
        "SELECT version, hash, activated_ms FROM rules_versions ORDER BY version DESC LIMIT 1",
        [],
        row,
    )
    .optional()
}

pub fn versions(c: &Connection) -> rusqlite::Result<Vec<RulesVersion>> {
    let mut stmt = c.prepare_cached(
        "SELECT version, hash, activated_ms FROM rules_versions ORDER BY version DESC",
    )?;
    let rows = stmt.query_map([], row)?;
    rows.collect()
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<RulesVersion> {
    Ok(RulesVersion {
        version: r.get(0)?,
        hash: r.get(1)?,
        activated_at: r.get(2)?,
    })
}

pub fn content(c: &Connection, version: i64) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT content FROM rules_versions WHERE version = ?1",
        [version],
        |r| r.get(0),
    )
    .optional()
}
