//! Building and running the processes under test: the release server and the ceiling,
//! each on a free local port, stopped when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::load::Conn;
use crate::workload::get;

/// The workspace root, where `config/` and the root package live.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> String {
    // Set by `cargo run`: the same toolchain that built this binary.
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub struct Binaries {
    pub server: PathBuf,
    pub ceiling: PathBuf,
}

/// Builds the server (root package) and the ceiling in release mode.
pub fn build() -> anyhow::Result<Binaries> {
    let root = workspace_root();
    // One invocation for both packages: built separately, their dependencies resolve
    // to different feature sets and every run would rebuild them.
    let args = ["-p", "eventtracker", "-p", "bench", "--bins"];
    eprintln!("bench: cargo build --release {}", args.join(" "));
    let status = Command::new(cargo())
        .current_dir(&root)
        .args(["build", "--release"])
        .args(args)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release {} failed", args.join(" "));
    }
    let out = Command::new(cargo())
        .current_dir(&root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("cannot run cargo metadata")?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    let target = meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")?;
    Ok(Binaries {
        server: target.join("release/eventtracker"),
        ceiling: target.join("release/ceiling"),
    })
}

/// A port nothing listens on right now (the OS picks; the race until the child binds
/// it is harmless on a quiet machine).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

pub struct Proc {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the ceiling, logging to `dir/ceiling.log`.
    pub async fn ceiling(bin: &Path, dir: &Path) -> anyhow::Result<Proc> {
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(bin);
        cmd.arg(addr.to_string());
        Proc::start("ceiling", cmd, addr, dir).await
    }

    /// Starts the server on SQLite at `dir/et.db` (synchronous left at its default,
    /// FULL), plus the backend's own variables (MONGO_URL, REDIS_URL, ...).
    pub async fn server(
        bin: &Path,
        dir: &Path,
        name: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Proc> {
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(bin);
        cmd.current_dir(workspace_root())
            .env("API_SERVER_HOST", "127.0.0.1")
            .env("API_SERVER_PORT", port.to_string())
            .env("SQLITE_PATH", dir.join("et.db"))
            .env("EVENTS_POINTS_PATH", "config/events.yaml")
            .env("LOG_LEVEL", "warn")
            .env_remove("SQLITE_SYNCHRONOUS")
            .envs(env.iter().map(|(k, v)| (k, v)));
        Proc::start(name, cmd, addr, dir).await
    }

    async fn start(
        name: &str,
        mut cmd: Command,
        addr: SocketAddr,
        dir: &Path,
    ) -> anyhow::Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        let mut proc = Proc {
            name: name.to_string(),
            addr,
            child,
            log,
        };
        proc.wait_ready().await?;
        Ok(proc)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = get("/readyz".into());
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if let Ok(mut conn) = Conn::open(self.addr).await {
                if let Ok((status, _)) = conn.send(&ready).await {
                    if status.is_success() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("{} not ready after 60 s:\n{}", self.name, self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Bytes the process has caused to be written to storage (`write_bytes` of
    /// /proc/PID/io): WAL frames, checkpoints and the database file.
    pub fn disk_writes(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/io", self.pid());
        let io = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        io.lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("{path} has no write_bytes"))
    }

    /// VmRSS and VmHWM (peak resident set) in MiB.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.pid());
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{path} has no {name}"))?;
            let kb: f64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("cannot parse {line:?}"))?;
            Ok(kb / 1024.0)
        };
        Ok(Memory {
            rss_mib: field("VmRSS:")?,
            hwm_mib: field("VmHWM:")?,
        })
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Memory {
    pub rss_mib: f64,
    pub hwm_mib: f64,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `perf record` of one process while a scenario runs; the report is written as text
/// when stopped.
pub struct Perf {
    child: Child,
    data: PathBuf,
}

impl Perf {
    pub fn start(pid: u32, data: PathBuf) -> anyhow::Result<Perf> {
        let child = Command::new("perf")
            .args(["record", "-F", "499", "-g", "-q", "-o"])
            .arg(&data)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start perf (apt-get install -y linux-perf)")?;
        Ok(Perf { child, data })
    }

    /// Stops recording and writes `<data>.txt`: self time by thread, library and symbol.
    pub fn finish(mut self) -> anyhow::Result<PathBuf> {
        // perf writes its data file on SIGINT; SIGKILL would lose it.
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .context("cannot signal perf")?;
        self.child.wait()?;
        let report = self.data.with_extension("txt");
        let out = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--percent-limit",
                "0.5",
            ])
            .args(["--sort", "comm,dso,symbol", "-g", "none", "-i"])
            .arg(&self.data)
            .output()
            .context("cannot run perf report")?;
        std::fs::write(&report, &out.stdout)
            .with_context(|| format!("cannot write {}", report.display()))?;
        Ok(report)
    }
}
