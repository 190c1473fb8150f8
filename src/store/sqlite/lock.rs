//! One process per database file. The writer keeps the leaderboard counters of recent
//! writes in memory until it checkpoints them (see `pending.rs`), so a second process
//! writing the same file, or reading its counter tables, would see a state behind the
//! ledger. Every opener takes an exclusive `flock` on `<db>.lock` for as long as it
//! uses the file; a second server, or a CLI command while a server runs, refuses to
//! start and says what to do instead. The kernel drops the lock when the process
//! ends, SIGKILL included, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::anyhow;

pub struct FileLock {
    /// Held open: closing the descriptor releases the lock. None on a read-only file
    /// system where no lock file could be made: nobody can write there.
    _file: Option<File>,
}

/// Where the lock of database `db` lives: next to it, so it moves with the file.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl FileLock {
    /// Takes the lock of `db`, or says which process holds it.
    pub fn acquire(db: &Path) -> anyhow::Result<FileLock> {
        let path = lock_path(db);
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(f) => f,
            // A read-only file system: nobody can write the database there either, but
            // a reader still honours a lock another mount may hold.
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => match File::open(&path) {
                Ok(f) => f,
                Err(_) => return Ok(FileLock { _file: None }),
            },
            Err(e) => {
                return Err(anyhow!(
                "SQLITE_PATH: cannot open SQLite database {}: cannot create its lock file {}: {e}",
                db.display(),
                path.display()
            ))
            }
        };
        if !try_lock(&file)? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_owned()
            } else {
                format!("another process (pid {holder})")
            };
            return Err(anyhow!(
                "SQLITE_PATH: {} is in use by {who}. One process at a time may use a SQLite \
                 database: stop that server first, or do this through its HTTP API \
                 (POST /v1/events/batch for imports, POST /v1/admin/recompute, \
                 DELETE /v1/users/{{user_id}}, POST /v1/admin/cache/rebuild)",
                db.display()
            ));
        }
        // Who holds it, for the message above: best effort (a full disk or a read-only
        // descriptor may refuse it), the flock is the lock.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()));
        Ok(FileLock { _file: Some(file) })
    }
}

#[cfg(unix)]
fn try_lock(file: &File) -> anyhow::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: the descriptor is valid for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(anyhow!("SQLITE_PATH: cannot lock the database: {err}"))
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> anyhow::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("et.db");
        let first = FileLock::acquire(&db).unwrap();
        let err = FileLock::acquire(&db).err().expect("refused while held");
        let text = err.to_string();
        assert!(
            text.contains("SQLITE_PATH") && text.contains("in use"),
            "{text}"
        );
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        FileLock::acquire(&db).expect("free again once dropped");
    }
}
