//! The load generator: keep-alive HTTP/1.1 connections, one task each, sending requests
//! back to back (closed loop) or on a fixed schedule (open loop), with every latency
//! recorded in an HdrHistogram.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

/// One request to send and the status a correct answer has.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub body: Bytes,
    pub expect: StatusCode,
    /// Events this request records (0 for reads).
    pub events: u64,
}

/// Builds the next request; each connection task passes its own random state.
pub type MakeReq = Arc<dyn Fn(&mut Rng) -> Req + Send + Sync>;

/// xorshift64*: fast, and good enough to pick users.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((r as u128 * n as u128) >> 64) as u64
    }
}

pub struct Conn {
    host: String,
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        // The connection future drives the socket; it ends when `sender` is dropped.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            host: addr.to_string(),
            sender,
        })
    }

    pub async fn send(&mut self, req: &Req) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(req.path.as_str())
            .header(HOST, self.host.as_str());
        if !req.body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let response = self
            .sender
            .send_request(builder.body(Full::new(req.body.clone()))?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Sends `req` on `conn`, reconnecting first if an earlier error closed it. An answer
/// with another status than expected is an error (e.g. 409: the bench let a duplicate
/// through, so the server did less work than it appears to).
pub async fn exchange(conn: &mut Option<Conn>, addr: SocketAddr, req: &Req) -> Result<(), String> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(Conn::open(addr).await.map_err(|e| format!("{e:#}"))?),
    };
    match c.send(req).await {
        Ok((status, _)) if status == req.expect => Ok(()),
        Ok((status, body)) => Err(format!(
            "{} {}: expected {}, got {status}: {}",
            req.method,
            req.path,
            req.expect,
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )),
        Err(e) => {
            *conn = None;
            // Keeps a refused connection from turning into a busy loop.
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err(format!("{} {}: {e:#}", req.method, req.path))
        }
    }
}

pub fn histogram() -> Histogram<u64> {
    // Microseconds from 1 µs to one hour at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What one task saw; merged into [`Stats`] at the end.
pub struct Tally {
    pub hist: Histogram<u64>,
    /// Open loop only: how late the timer woke the task for a request it was free to send.
    pub lag: Histogram<u64>,
    pub ok: u64,
    pub events: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub last_done: Option<Instant>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            hist: histogram(),
            lag: histogram(),
            ok: 0,
            events: 0,
            errors: 0,
            first_error: None,
            last_done: None,
        }
    }

    pub fn record(&mut self, result: Result<(), String>, events: u64, latency: Duration) {
        match result {
            Ok(()) => {
                self.ok += 1;
                self.events += events;
                self.hist.saturating_record(latency.as_micros() as u64);
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
        self.last_done = Some(Instant::now());
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub events: u64,
    pub errors: u64,
    pub seconds: f64,
    pub rps: f64,
    pub eps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Open loop only: p99 of the generator's own timer lateness, a floor under p50.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timer_lag_p99_ms: Option<f64>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Merges the tasks' tallies of a window that began at `from`.
pub fn merge(tallies: Vec<Tally>, from: Instant, open_loop: bool) -> Stats {
    let mut all = Tally::new();
    for t in tallies {
        // Same bounds on both sides, so adding cannot fail.
        let _ = all.hist.add(&t.hist);
        let _ = all.lag.add(&t.lag);
        all.ok += t.ok;
        all.events += t.events;
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
        all.last_done = all.last_done.max(t.last_done);
    }
    let seconds = all
        .last_done
        .map(|d| d.saturating_duration_since(from).as_secs_f64())
        .unwrap_or(0.0)
        .max(1e-9);
    let h = &all.hist;
    Stats {
        requests: all.ok,
        events: all.events,
        errors: all.errors,
        seconds,
        rps: all.ok as f64 / seconds,
        eps: all.events as f64 / seconds,
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
        first_error: all.first_error,
        timer_lag_p99_ms: open_loop.then(|| ms(all.lag.value_at_quantile(0.99))),
    }
}

/// How a run is shaped: connections, and the warm-up and measured windows.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Each connection sends its next request as soon as the previous answer arrived.
pub async fn closed_loop(addr: SocketAddr, shape: Shape, make: MakeReq) -> Stats {
    // Connections open before the clock starts, so their setup is not measured.
    let begin = Instant::now() + Duration::from_millis(200);
    let measure_from = begin + shape.warmup;
    let end = measure_from + shape.duration;
    let tasks: Vec<_> = (0..shape.connections)
        .map(|k| {
            let make = make.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(k as u64 + 1);
                let mut tally = Tally::new();
                let mut conn = Conn::open(addr).await.ok();
                tokio::time::sleep_until(begin.into()).await;
                while Instant::now() < end {
                    let req = make(&mut rng);
                    let sent = Instant::now();
                    let result = exchange(&mut conn, addr, &req).await;
                    if sent >= measure_from {
                        tally.record(result, req.events, sent.elapsed());
                    }
                }
                tally
            })
        })
        .collect();
    merge(join(tasks).await, measure_from, false)
}

/// Requests leave on a fixed schedule of `rate` per second over all connections,
/// whatever the answers do; latency counts from the scheduled instant, so a request
/// stuck behind a slow one shows the wait (no coordinated omission).
pub async fn open_loop(addr: SocketAddr, shape: Shape, rate: f64, make: MakeReq) -> Stats {
    let begin = Instant::now() + Duration::from_millis(200);
    let measure_from = begin + shape.warmup;
    let end = measure_from + shape.duration;
    let n = shape.connections as u64;
    let tasks: Vec<_> = (0..n)
        .map(|k| {
            let make = make.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(k + 1);
                let mut tally = Tally::new();
                let mut conn = Conn::open(addr).await.ok();
                // Connection k sends requests k, k+n, k+2n, ... of the global schedule.
                for j in 0.. {
                    let due = begin + Duration::from_secs_f64((k + j * n) as f64 / rate);
                    if due >= end {
                        break;
                    }
                    if Instant::now() < due {
                        tokio::time::sleep_until(due.into()).await;
                        tally
                            .lag
                            .saturating_record(due.elapsed().as_micros() as u64);
                    }
                    let req = make(&mut rng);
                    let result = exchange(&mut conn, addr, &req).await;
                    if due >= measure_from {
                        tally.record(result, req.events, due.elapsed());
                    }
                }
                tally
            })
        })
        .collect();
    let mut stats = merge(join(tasks).await, measure_from, true);
    // The schedule, not the last answer, defines the window of an open loop.
    stats.seconds = shape.duration.as_secs_f64();
    stats.rps = stats.requests as f64 / stats.seconds;
    stats.eps = stats.events as f64 / stats.seconds;
    stats
}

/// One connection alternating two requests, so both see the same conditions.
pub async fn alternate(
    addr: SocketAddr,
    rounds: u64,
    a: &Req,
    b: &Req,
) -> anyhow::Result<(Stats, Stats)> {
    let mut conn = Some(Conn::open(addr).await?);
    let (mut ta, mut tb) = (Tally::new(), Tally::new());
    let warmup = rounds / 10;
    let from = Instant::now();
    for i in 0..warmup + rounds {
        for (req, tally) in [(a, &mut ta), (b, &mut tb)] {
            let sent = Instant::now();
            let result = exchange(&mut conn, addr, req).await;
            if i >= warmup {
                tally.record(result, req.events, sent.elapsed());
            }
        }
    }
    Ok((merge(vec![ta], from, false), merge(vec![tb], from, false)))
}

async fn join(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Vec<Tally> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(tally) => out.push(tally),
            Err(e) => {
                let mut tally = Tally::new();
                tally.errors = 1;
                tally.first_error = Some(format!("load task failed: {e}"));
                out.push(tally);
            }
        }
    }
    out
}
