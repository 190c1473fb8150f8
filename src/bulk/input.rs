//! The import's input: the file (or standard input) opened and its format decided
//! before anything else happens, and its bytes counted for the progress display.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};

use super::import::Options;
use super::source::{self, Format, Source};

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
    pub(super) name: String,
    pub(super) source: Box<dyn Source>,
    /// The file's size, for the progress percentage (unknown for standard input).
    pub(super) total: Option<u64>,
    pub(super) bytes: Arc<AtomicU64>,
    pub(super) rejects_path: PathBuf,
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
