//! Running the real `eventtracker` binary as a child process, for tests that need
//! signals (SIGTERM, SIGKILL) or the command line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_eventtracker");

pub struct Server {
    pub child: Child,
    pub base: String,
    /// Every line the server has written to stdout (its log) so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Starts `eventtracker serve` with `env` and waits for its "listening" line.
pub fn start(env: &[(String, String)]) -> Server {
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("LOG_LEVEL", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn eventtracker");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = log.clone();
    // Keep draining stdout for the life of the child so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("addr=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
            }
            kept.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server printed its listening address");
    Server {
        child,
        base: format!("http://{addr}"),
        log,
    }
}

impl Server {
    /// The server's log so far, one line per line.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (up to 10 s) until a line of the log contains `text`; returns the log. The
    /// server writes a line and acts on it in either order, and the pipe adds a delay.
    pub async fn wait_for_log(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log_text();
            if log.contains(text) {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} in the log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for exit and returns the exit code (None when killed by a signal).
    pub fn wait(mut self) -> Option<i32> {
        self.child.wait().expect("wait").code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
