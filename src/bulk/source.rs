//! Reading input lines as JSON event objects: NDJSON as is, CSV by its header row.
//! Lines that cannot become an object are reported with a reason; the rest go to
//! the API's validator.

use std::io::{self, BufRead};

use serde_json::{Map, Value};

use crate::domain::event::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Ndjson,
    Csv,
}

/// One input line: an object for the validator, or why it cannot be one.
pub enum Item {
    Object {
        line: u64,
        raw: String,
        value: Value,
    },
    Bad {
        line: u64,
        raw: String,
        reason: String,
        errors: Vec<FieldError>,
    },
}

pub trait Source: Send {
    /// The next non-blank line, `None` at the end. `Err` only for I/O failures.
    fn next_item(&mut self) -> io::Result<Option<Item>>;
}

pub fn open(format: Format, input: Box<dyn BufRead + Send>) -> io::Result<Box<dyn Source>> {
    match format {
        Format::Ndjson => Ok(Box::new(Ndjson { input, line: 0 })),
        Format::Csv => Ok(Box::new(Csv::new(input)?)),
    }
}

struct Ndjson {
    input: Box<dyn BufRead + Send>,
    line: u64,
}

impl Source for Ndjson {
    fn next_item(&mut self) -> io::Result<Option<Item>> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if self.input.read_until(b'\n', &mut buf)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = self.line;
            let raw = String::from_utf8_lossy(&buf).into_owned();
            return Ok(Some(match serde_json::from_slice::<Value>(&buf) {
                Ok(value) => Item::Object { line, raw, value },
                Err(e) => Item::Bad {
                    line,
                    raw,
                    reason: format!("not valid JSON: {e}"),
                    errors: Vec::new(),
                },
            }));
        }
    }
}

/// The API fields a CSV header may name; other columns are ignored, as the API
/// ignores unknown fields.
const FIELDS: [&str; 5] = [
    "user_id",
    "event_type",
    "timestamp",
    "event_id",
    "properties",
];
const REQUIRED: [&str; 3] = ["user_id", "event_type", "timestamp"];

struct Csv {
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    /// For each column, the API field it holds (if any).
    columns: Vec<Option<&'static str>>,
    record: csv::ByteRecord,
}

impl Csv {
    fn new(input: Box<dyn BufRead + Send>) -> io::Result<Csv> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
        let header = reader.byte_headers().map_err(csv_io)?.clone();
        let columns: Vec<Option<&'static str>> = header
            .iter()
            .map(|h| {
                let name = String::from_utf8_lossy(h);
                FIELDS.into_iter().find(|f| *f == name.trim())
            })
            .collect();
        if let Some(missing) = REQUIRED.iter().find(|f| !columns.contains(&Some(**f))) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "line 1: the CSV header has no {missing} column (it needs user_id, \
                     event_type and timestamp; event_id and properties are optional)"
                ),
            ));
        }
        Ok(Csv {
            reader,
            columns,
            record: csv::ByteRecord::new(),
        })
    }

    fn raw(&self) -> String {
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let text = match w.write_byte_record(&self.record) {
            Ok(()) => w.into_inner().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        String::from_utf8_lossy(&text)
            .trim_end_matches('\n')
            .to_string()
    }

    fn object(&self) -> Result<Value, (String, Vec<FieldError>)> {
        if self.record.len() != self.columns.len() {
            return Err((
                format!(
                    "has {} fields, the header has {}",
                    self.record.len(),
                    self.columns.len()
                ),
                Vec::new(),
            ));
        }
        let mut obj = Map::new();
        for (cell, column) in self.record.iter().zip(&self.columns) {
            let Some(field) = *column else { continue };
            let text = std::str::from_utf8(cell).map_err(|_| {
                let e = FieldError::new(field, "is not valid UTF-8");
                (format!("{field} is not valid UTF-8"), vec![e])
            })?;
            if text.is_empty() {
                continue; // an empty cell is an absent field
            }
            obj.insert(field.to_string(), cell_value(field, text)?);
        }
        Ok(Value::Object(obj))
    }
}

/// A cell as the API would receive it: integer timestamps as numbers, `properties` as
/// the JSON it holds, everything else as a string.
fn cell_value(field: &str, text: &str) -> Result<Value, (String, Vec<FieldError>)> {
    match field {
        "timestamp" => Ok(match text.trim().parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(text),
        }),
        "properties" => serde_json::from_str(text).map_err(|_| {
            let message = "must be a JSON object (written as JSON text in the cell)";
            (
                format!("properties {message}"),
                vec![FieldError::new("properties", message)],
            )
        }),
        _ => Ok(Value::from(text)),
    }
}

fn csv_io(e: csv::Error) -> io::Error {
    let line = e.position().map(|p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => {
            let text = format!("{other:?}");
            let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
            io::Error::new(io::ErrorKind::InvalidData, format!("{at}{text}"))
        }
    }
}

impl Source for Csv {
    fn next_item(&mut self) -> io::Result<Option<Item>> {
        if !self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(csv_io)?
        {
            return Ok(None);
        }
        let line = self.record.position().map(|p| p.line()).unwrap_or(0);
        let raw = self.raw();
        Ok(Some(match self.object() {
            Ok(value) => Item::Object { line, raw, value },
            Err((reason, errors)) => Item::Bad {
                line,
                raw,
                reason,
                errors,
            },
        }))
    }
}
