//! Import progress on stderr: a bar redrawn in place on a terminal, otherwise a plain
//! line every few seconds (for logs). A few lines of our own do what is needed here.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const TTY_EVERY: Duration = Duration::from_millis(200);
const PLAIN_EVERY: Duration = Duration::from_secs(5);
const BAR_WIDTH: usize = 24;

/// Counts so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub lines: u64,
    pub bytes: u64,
    pub created: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub bonuses: u64,
}

pub struct Progress {
    tty: bool,
    /// Input size, when known (a file): gives the percentage and the ETA.
    total_bytes: Option<u64>,
    started: Instant,
    last: Instant,
    drawn: bool,
}

impl Progress {
    pub fn new(total_bytes: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            tty: std::io::stderr().is_terminal(),
            total_bytes: total_bytes.filter(|t| *t > 0),
            started: now,
            last: now,
            drawn: false,
        }
    }

    /// Shows `c` if the last update is old enough.
    pub fn update(&mut self, c: &Counts) {
        let every = if self.tty { TTY_EVERY } else { PLAIN_EVERY };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.draw(c);
        }
    }

    /// Ends the bar's line so that what follows starts on a fresh one.
    pub fn finish(&mut self, c: &Counts) {
        if self.tty {
            self.draw(c);
            if self.drawn {
                eprintln!();
            }
        }
    }

    fn draw(&mut self, c: &Counts) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = c.lines as f64 / secs;
        let mut text = String::new();
        if let Some(total) = self.total_bytes {
            let done = (c.bytes as f64 / total as f64).min(1.0);
            if self.tty {
                let filled = (done * BAR_WIDTH as f64) as usize;
                text.push_str(&format!(
                    "[{}{}] ",
                    "#".repeat(filled),
                    "-".repeat(BAR_WIDTH - filled)
                ));
            }
            text.push_str(&format!("{:>3.0}% ", done * 100.0));
        }
        text.push_str(&format!("{} lines, {rate:.0} lines/s", c.lines));
        if let Some(total) = self.total_bytes {
            let byte_rate = c.bytes as f64 / secs;
            if byte_rate > 0.0 {
                let left = total.saturating_sub(c.bytes) as f64 / byte_rate;
                text.push_str(&format!(", ETA {}", clock(left)));
            }
        }
        text.push_str(&format!(
            " | created {}, duplicates {}, rejected {}",
            c.created, c.duplicates, c.rejected
        ));
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not fail the import.
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{text}")
        } else {
            writeln!(err, "import: {text}")
        };
        let _ = err.flush();
        self.drawn = true;
    }
}

/// `1:05` or `2:03:04`.
fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_formats_minutes_and_hours() {
        assert_eq!(super::clock(65.2), "1:05");
        assert_eq!(super::clock(7384.0), "2:03:04");
    }
}
