//! `eventtracker import FILE`: a reader thread parses and validates lines (with the
//! API's validator) into batches; this task writes each batch with `Store::record`,
//! whose duplicate rules make a second run of the same file change nothing.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use serde::Serialize;
use tokio::sync::mpsc;

use super::interrupt::on_interrupt;
use super::progress::{Counts, Progress};
use super::reader::{read_all, write_reject, Message};
use super::source::Format;
use crate::domain::event::NewEvent;
use crate::domain::rules::Rules;
use crate::store::{RecordOutcome, Store};

pub use super::input::{display_name, open_input, Input};

pub struct Options {
    /// `-` reads standard input.
    pub file: PathBuf,
    /// Default: from the file's extension (NDJSON for standard input).
    pub format: Option<Format>,
    pub batch_size: usize,
    /// Default: `FILE.rejects.ndjson` (`stdin.rejects.ndjson` for standard input).
    pub rejects: Option<PathBuf>,
}

/// The last line of `import --json`.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub created: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Achievement bonus entries of the file, left for the engine to award again
    /// (left out of the summary when there are none, as before achievements).
    #[serde(skip_serializing_if = "is_zero")]
    pub bonuses_skipped: u64,
    /// Wallet entries read back (new ones; those already stored count as duplicates).
    #[serde(skip_serializing_if = "is_zero")]
    pub wallet_entries: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub struct Report {
    pub summary: Summary,
    pub rejects_path: PathBuf,
    /// The last input line read.
    pub last_line: u64,
    /// Stopped by Ctrl-C after the batch in flight was stored.
    pub interrupted: bool,
}

pub async fn run(
    store: &Store,
    rules: Rules,
    input: Input,
    opts: &Options,
) -> anyhow::Result<Report> {
    let Input {
        name,
        source,
        total,
        bytes,
        rejects_path,
    } = input;
    // Installed before the rejects file appears, so its existence means Ctrl-C is handled.
    let stop = on_interrupt().context("cannot handle Ctrl-C")?;
    let rejects_file = File::create(&rejects_path)
        .with_context(|| format!("{}: cannot create the rejects file", rejects_path.display()))?;
    let mut rejects = BufWriter::new(rejects_file);

    let (tx, mut rx) = mpsc::channel::<Message>(2);
    let batch_size = opts.batch_size.max(1);
    let shared = std::sync::Arc::new(rules.clone());
    std::thread::spawn(move || read_all(source, &rules, batch_size, &bytes, &tx));

    let mut progress = Progress::new(total);
    let mut counts = Counts::default();
    let mut report = Report {
        summary: Summary::default(),
        rejects_path: rejects_path.clone(),
        last_line: 0,
        interrupted: false,
    };
    let mut wallet: Vec<(String, crate::domain::wallet::WalletEntry)> = Vec::new();
    let mut restored = 0;
    let result = async {
        loop {
            let message = tokio::select! {
                biased;
                () = stop.notified() => {
                    report.interrupted = true;
                    None
                }
                m = rx.recv() => m,
            };
            let Some(message) = message else { break };
            let chunk = message.map_err(|(line, e)| {
                anyhow!(e).context(format!("{name}: cannot read past line {line}"))
            })?;
            for r in &chunk.rejects {
                write_reject(&mut rejects, r)
                    .with_context(|| format!("{}: cannot write", rejects_path.display()))?;
            }
            rejects
                .flush()
                .with_context(|| format!("{}: cannot write", rejects_path.display()))?;
            counts.rejected += chunk.rejects.len() as u64;
            counts.bonuses += chunk.bonuses;
            wallet.extend(chunk.wallet);
            store_chunk(store, &name, chunk.events, chunk.first_line, &mut counts).await?;
            counts.lines = chunk.last_line;
            counts.bytes = chunk.bytes;
            progress.update(&counts);
        }
        if !report.interrupted {
            restored = restore_wallets(store, &shared, &mut wallet, &mut counts).await?;
        }
        anyhow::Ok(())
    }
    .await;
    progress.finish(&counts);
    result?;
    report.summary = Summary {
        created: counts.created,
        duplicates: counts.duplicates,
        rejected: counts.rejected,
        bonuses_skipped: counts.bonuses,
        wallet_entries: restored,
    };
    report.last_line = counts.lines;
    Ok(report)
}

async fn store_chunk(
    store: &Store,
    name: &str,
    events: Vec<NewEvent>,
    first_line: u64,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let n = events.len();
    let outcomes = store
        .ledger
        .record(events)
        .await
        .map_err(|e| {
            anyhow!(e).context(format!(
                "{name}: storing the batch from line {first_line} failed (lines before it are \
             stored; run the same command again to carry on)"
            ))
        })?
        .outcomes;
    if outcomes.len() != n {
        bail!(
            "{name}: the store answered {} outcomes for {n} events",
            outcomes.len()
        );
    }
    for o in outcomes {
        match o {
            RecordOutcome::Created { .. } => counts.created += 1,
            RecordOutcome::Duplicate { .. } => counts.duplicates += 1,
        }
    }
    Ok(())
}

/// Applies the file's wallet entries once every event is in (the spends they record
/// took points the events earned), each user's in time order, each at its own time.
async fn restore_wallets(
    store: &Store,
    rules: &std::sync::Arc<Rules>,
    entries: &mut [(String, crate::domain::wallet::WalletEntry)],
    counts: &mut Counts,
) -> anyhow::Result<u64> {
    use crate::domain::engine::WalletOp;
    use crate::domain::wallet::{EntryKind, WalletError};
    // Within one instant: a hold before what closes it.
    let rank = |k: EntryKind| match k {
        EntryKind::Hold => 0,
        EntryKind::Spend | EntryKind::Capture => 1,
        EntryKind::Release => 2,
        EntryKind::Expire => 3,
    };
    entries.sort_by(|(ua, a), (ub, b)| {
        (ua, a.ts_ms, rank(a.kind), &a.id).cmp(&(ub, b.ts_ms, rank(b.kind), &b.id))
    });
    if !entries.is_empty() && rules.progression().wallet.is_none() {
        bail!("the file has wallet entries but the rules have no wallet section");
    }
    let mut restored = 0;
    for (user, entry) in entries.iter() {
        let op = WalletOp::Restore {
            entry: entry.clone(),
        };
        let r = store
            .progress
            .wallet_op(user, op, rules.clone(), entry.ts_ms)
            .await
            .map_err(|e| anyhow!(e).context(format!("restoring the wallet of user {user:?}")))?;
        match r.result {
            Ok(_) => restored += 1,
            Err(WalletError::Exists { .. }) => counts.duplicates += 1,
            Err(e) => bail!("restoring the wallet of user {user:?}: {e}"),
        }
    }
    Ok(restored)
}
