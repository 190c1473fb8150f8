//! `eventtracker import FILE`: a reader thread parses and validates lines (with the
//! API's validator) into batches; this task writes each batch with `Store::record`,
//! whose duplicate rules make a second run of the same file change nothing.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use super::progress::{Counts, Progress};
use super::source::{self, Format, Item, Source};
use crate::clock::{Clock, SystemClock};
use crate::domain::event::{validate_event, FieldError, NewEvent};
use crate::domain::rules::Rules;
use crate::store::{RecordOutcome, Store};

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
}

pub struct Report {
    pub summary: Summary,
    pub rejects_path: PathBuf,
    /// The last input line read.
    pub last_line: u64,
    /// Stopped by Ctrl-C after the batch in flight was stored.
    pub interrupted: bool,
}

/// One line of the rejects file.
#[derive(Serialize)]
struct Reject {
    line: u64,
    reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
    input: String,
}

/// What the reader hands over: up to `batch_size` valid events and the rejects among them.
#[derive(Default)]
struct Chunk {
    events: Vec<NewEvent>,
    first_line: u64,
    last_line: u64,
    rejects: Vec<Reject>,
    bytes: u64,
}

type Message = Result<Chunk, (u64, io::Error)>;

fn format_of(file: &Path) -> anyhow::Result<Format> {
    if file == Path::new("-") {
        return Ok(Format::Ndjson);
    }
    let ext = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("ndjson" | "jsonl" | "json") => Ok(Format::Ndjson),
        _ => bail!(
            "{}: cannot tell the format from the file name; pass --format ndjson or --format csv",
            file.display()
        ),
    }
}

fn default_rejects(file: &Path) -> PathBuf {
    if file == Path::new("-") {
        return PathBuf::from("stdin.rejects.ndjson");
    }
    let mut name = file.as_os_str().to_owned();
    name.push(".rejects.ndjson");
    PathBuf::from(name)
}

/// The opened input: checked before the store is opened, so a bad file fails fast.
pub struct Input {
    name: String,
    source: Box<dyn Source>,
    /// The file's size, for the progress percentage (unknown for standard input).
    total: Option<u64>,
    bytes: Arc<AtomicU64>,
    rejects_path: PathBuf,
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// How messages name the input.
pub fn display_name(file: &Path) -> String {
    if file == Path::new("-") {
        "standard input".to_string()
    } else {
        file.display().to_string()
    }
}

pub fn open_input(opts: &Options) -> anyhow::Result<Input> {
    let name = display_name(&opts.file);
    let rejects = opts
        .rejects
        .clone()
        .unwrap_or_else(|| default_rejects(&opts.file));
    if same_file(&opts.file, &rejects) {
        bail!(
            "{}: the rejects file must not be the input",
            rejects.display()
        );
    }
    let format = match opts.format {
        Some(f) => f,
        None => format_of(&opts.file)?,
    };
    let bytes = Arc::new(AtomicU64::new(0));
    let (input, total): (Box<dyn Read + Send>, Option<u64>) = if opts.file == Path::new("-") {
        (Box::new(io::stdin()), None)
    } else {
        let file = File::open(&opts.file).with_context(|| format!("{name}: cannot open"))?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(file), len)
    };
    let counting = Counting {
        inner: input,
        n: bytes.clone(),
    };
    let input: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(1 << 18, counting));
    let source = source::open(format, input).with_context(|| format!("{name}: cannot read"))?;
    Ok(Input {
        name,
        source,
        total,
        bytes,
        rejects_path: rejects,
    })
}

pub async fn run(
    store: &dyn Store,
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
    std::thread::spawn(move || read_all(source, &rules, batch_size, &bytes, &tx));

    let mut progress = Progress::new(total);
    let mut counts = Counts::default();
    let mut report = Report {
        summary: Summary::default(),
        rejects_path: rejects_path.clone(),
        last_line: 0,
        interrupted: false,
    };
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
            store_chunk(store, &name, chunk.events, chunk.first_line, &mut counts).await?;
            counts.lines = chunk.last_line;
            counts.bytes = chunk.bytes;
            progress.update(&counts);
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
    };
    report.last_line = counts.lines;
    Ok(report)
}

async fn store_chunk(
    store: &dyn Store,
    name: &str,
    events: Vec<NewEvent>,
    first_line: u64,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let n = events.len();
    let outcomes = store.record(events).await.map_err(|e| {
        anyhow!(e).context(format!(
            "{name}: storing the batch from line {first_line} failed (lines before it are \
             stored; run the same command again to carry on)"
        ))
    })?;
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

fn write_reject(w: &mut impl Write, r: &Reject) -> io::Result<()> {
    serde_json::to_writer(&mut *w, r)?;
    w.write_all(b"\n")
}

/// Runs on its own thread: reading and validating overlap the store's writes.
fn read_all(
    mut source: Box<dyn Source>,
    rules: &Rules,
    batch_size: usize,
    bytes: &AtomicU64,
    tx: &mpsc::Sender<Message>,
) {
    let mut chunk = Chunk::default();
    loop {
        let item = match source.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => {
                let _ = tx.blocking_send(Err((chunk.last_line, e)));
                return;
            }
        };
        let line = match item {
            Item::Object { line, raw, value } => {
                match validate_event(&value, rules, SystemClock.now_ms(), "") {
                    Ok(event) => chunk.events.push(event),
                    Err(errors) => chunk.rejects.push(Reject {
                        line,
                        reason: reason(&errors),
                        errors,
                        input: raw,
                    }),
                }
                line
            }
            Item::Bad {
                line,
                raw,
                reason,
                errors,
            } => {
                chunk.rejects.push(Reject {
                    line,
                    reason,
                    errors,
                    input: raw,
                });
                line
            }
        };
        if chunk.first_line == 0 {
            chunk.first_line = line;
        }
        chunk.last_line = line;
        if chunk.events.len() >= batch_size || chunk.rejects.len() >= batch_size {
            let last_line = chunk.last_line;
            chunk.bytes = bytes.load(Ordering::Relaxed);
            if tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                return; // the import stopped
            }
            chunk.last_line = last_line;
        }
    }
    chunk.bytes = bytes.load(Ordering::Relaxed);
    let _ = tx.blocking_send(Ok(chunk));
}

/// `user_id is required; timestamp must not be negative`: each field named, as the API
/// names them in its 400 answers.
fn reason(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Notified by the first Ctrl-C (SIGINT): the import stops after the batch in flight.
/// A second one exits at once; everything the store acknowledged is stored either way.
/// The handler is installed before this returns.
fn on_interrupt() -> io::Result<Arc<Notify>> {
    let stop = Arc::new(Notify::new());
    let notify = stop.clone();
    let mut signals = interrupts()?;
    tokio::spawn(async move {
        if !interrupted(&mut signals).await {
            return;
        }
        notify.notify_one();
        eprintln!("\ninterrupted: finishing the batch in flight (Ctrl-C again to quit now)");
        if interrupted(&mut signals).await {
            std::process::exit(130);
        }
    });
    Ok(stop)
}

#[cfg(unix)]
fn interrupts() -> io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
}

#[cfg(unix)]
async fn interrupted(signals: &mut tokio::signal::unix::Signal) -> bool {
    signals.recv().await.is_some()
}

#[cfg(not(unix))]
fn interrupts() -> io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
async fn interrupted(_: &mut ()) -> bool {
    tokio::signal::ctrl_c().await.is_ok()
}

/// Counts the bytes read, for the progress percentage.
struct Counting<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}
