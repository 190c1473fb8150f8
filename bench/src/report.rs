//! Results, the targets they are judged against, and the Markdown and JSON files.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::load::Stats;
use crate::procs::Memory;

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connections: usize,
    pub batch_events: u64,
    pub leaderboard_users: u64,
    pub history_events: u64,
    pub history_rounds: u64,
    pub quick: bool,
}

/// One target: what was promised, what was measured, and whether it holds.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

fn check(target: &str, measured: String, met: bool) -> Check {
    Check {
        target: target.to_string(),
        measured,
        met,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub id: u8,
    pub name: String,
    pub server: Stats,
    pub ceiling: Stats,
    /// Server over ceiling: requests/s for closed loops, p99 for the open loop.
    pub ratio: f64,
    /// Open loop only: the scheduled requests per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    pub checks: Vec<Check>,
    /// Writes scenarios: bytes the server wrote to storage per event recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_bytes_per_event: Option<f64>,
}

impl Scenario {
    pub fn new(id: u8, name: &str, server: Stats, ceiling: Stats, rate: Option<f64>) -> Scenario {
        let ratio = match rate {
            None => server.rps / ceiling.rps.max(1e-9),
            Some(_) => server.p99_ms / ceiling.p99_ms.max(1e-9),
        };
        let clean = |c: Check| Check {
            met: c.met && server.errors == 0,
            measured: if server.errors == 0 {
                c.measured
            } else {
                format!("{} ({} errors)", c.measured, server.errors)
            },
            ..c
        };
        let pct = format!("{:.0}% of ceiling", ratio * 100.0);
        let checks: Vec<Check> = match id {
            1 => vec![check("≥50% of ceiling req/s", pct, ratio >= 0.5)],
            2 => vec![check(
                "≥300,000 events/s",
                format!("{} events/s", thousands(server.eps)),
                server.eps >= 300_000.0,
            )],
            3 => vec![
                check("≥80% of ceiling req/s", pct, ratio >= 0.8),
                check(
                    "p99 < 5 ms",
                    format!("{:.2} ms", server.p99_ms),
                    server.p99_ms < 5.0,
                ),
            ],
            4 => vec![check("≥50% of ceiling req/s", pct, ratio >= 0.5)],
            5 => vec![check(
                "p99 < 10 ms",
                format!("{:.2} ms", server.p99_ms),
                server.p99_ms < 10.0,
            )],
            _ => vec![],
        };
        Scenario {
            id,
            name: name.to_string(),
            checks: checks.into_iter().map(clean).collect(),
            server,
            ceiling,
            ratio,
            rate,
            disk_bytes_per_event: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub big_user_events: u64,
    pub small_user_events: u64,
    pub seed_seconds: f64,
    pub big: Stats,
    pub small: Stats,
    /// p50 of the big user's GET over the small user's.
    pub ratio: f64,
    pub check: Check,
}

impl History {
    pub fn new(
        big_events: u64,
        small_events: u64,
        seed_seconds: f64,
        big: Stats,
        small: Stats,
    ) -> History {
        let ratio = big.p50_ms / small.p50_ms.max(1e-9);
        let clean = big.errors + small.errors == 0;
        History {
            check: check("≤1.2", format!("{ratio:.2}"), ratio <= 1.2 && clean),
            big_user_events: big_events,
            small_user_events: small_events,
            seed_seconds,
            big,
            small,
            ratio,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub idle: Memory,
    /// VmHWM read after scenario 4 (and its leaderboard seed): the peak of 1 to 4.
    pub after_scenarios_1_to_4: Memory,
    pub at_end: Memory,
    pub checks: Vec<Check>,
}

impl MemoryResult {
    pub fn new(idle: Memory, after: Memory, at_end: Memory) -> MemoryResult {
        MemoryResult {
            checks: vec![
                check(
                    "idle VmRSS ≤64 MiB",
                    format!("{:.1} MiB", idle.rss_mib),
                    idle.rss_mib <= 64.0,
                ),
                check(
                    "peak VmHWM (1–4) ≤256 MiB",
                    format!("{:.1} MiB", after.hwm_mib),
                    after.hwm_mib <= 256.0,
                ),
            ],
            idle,
            after_scenarios_1_to_4: after,
            at_end,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Naive {
    pub insert_one: Stats,
    /// Scenario 1 events/s of the server over the naive writer's.
    pub single_post_factor: f64,
    pub batch_factor: f64,
    pub check: Check,
}

impl Naive {
    pub fn new(insert_one: Stats, single: &Stats, batch: &Stats) -> Naive {
        let factor = single.eps / insert_one.eps.max(1e-9);
        Naive {
            check: check(
                "server single POST ≥10× naive insert_one events/s",
                format!("{factor:.1}×"),
                factor >= 10.0,
            ),
            single_post_factor: factor,
            batch_factor: batch.eps / insert_one.eps.max(1e-9),
            insert_one,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendResult {
    pub name: String,
    pub scenarios: Vec<Scenario>,
    pub history: History,
    pub memory: MemoryResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub naive_mongo: Option<Naive>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub generated_at: String,
    pub git_commit: Option<String>,
    pub cpus: usize,
    pub settings: Settings,
    pub backends: Vec<BackendResult>,
    /// Backends asked for that could not be measured, with the reason.
    pub not_measured: Vec<(String, String)>,
}

pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(checks: &[&Check]) -> String {
    checks
        .iter()
        .map(|c| if c.met { "met" } else { "**missed**" })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn markdown(r: &Report) -> String {
    let s = &r.settings;
    let mut out = String::new();
    let _ = writeln!(out, "# EventTracker benchmark\n");
    let _ = writeln!(
        out,
        "{} · commit {} · {} CPUs · {} connections · {:.0} s per scenario after {:.1} s warm-up{}\n",
        r.generated_at,
        r.git_commit.as_deref().unwrap_or("unknown"),
        r.cpus,
        s.connections,
        s.duration_s,
        s.warmup_s,
        if s.quick { " · **--quick (smoke test, not a measurement)**" } else { "" }
    );
    let _ = writeln!(
        out,
        "Ceiling = a no-storage axum server measured just before the real one, same load. \
         Targets were set for the SQLite store with synchronous=FULL.\n"
    );
    for b in &r.backends {
        backend_markdown(&mut out, b, s);
    }
    for (name, why) in &r.not_measured {
        let _ = writeln!(out, "## {name}\n\nNot measured: {why}\n");
    }
    out
}

fn backend_markdown(out: &mut String, b: &BackendResult, s: &Settings) {
    let _ = writeln!(out, "## {}\n", b.name);
    let _ = writeln!(
        out,
        "| # | Scenario | req/s | events/s | p50 ms | p99 ms | p99.9 ms | ceiling req/s | ceiling p99 ms | vs ceiling | errors | Target | Met |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|");
    for sc in &b.scenarios {
        let v = &sc.server;
        let vs = match sc.rate {
            None => format!("{:.0}%", sc.ratio * 100.0),
            Some(_) => format!("p99 ×{:.1}", sc.ratio),
        };
        let targets: Vec<String> = sc
            .checks
            .iter()
            .map(|c| format!("{} ({})", c.target, c.measured))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {} | {} | {} | {} |",
            sc.id,
            sc.name,
            thousands(v.rps),
            thousands(v.eps),
            v.p50_ms,
            v.p99_ms,
            v.p999_ms,
            thousands(sc.ceiling.rps),
            sc.ceiling.p99_ms,
            vs,
            v.errors,
            targets.join("; "),
            verdict(&sc.checks.iter().collect::<Vec<_>>()),
        );
    }
    let h = &b.history;
    let m = &b.memory;
    let _ = writeln!(out, "\n| # | Measure | Value | Target | Met |");
    let _ = writeln!(out, "|---|---|--:|---|---|");
    let _ = writeln!(
        out,
        "| 6 | GET points p50: user with {} events / user with {} ({:.3} ms / {:.3} ms, {} rounds) | {:.2} | {} | {} |",
        thousands(h.big_user_events as f64),
        h.small_user_events,
        h.big.p50_ms,
        h.small.p50_ms,
        s.history_rounds,
        h.ratio,
        h.check.target,
        verdict(&[&h.check])
    );
    let _ = writeln!(
        out,
        "| 7 | VmRSS idle after start | {:.1} MiB | {} | {} |",
        m.idle.rss_mib,
        m.checks[0].target,
        verdict(&[&m.checks[0]])
    );
    let _ = writeln!(
        out,
        "| 7 | VmHWM peak during 1–4 (VmRSS then {:.1} MiB; VmHWM at end {:.1} MiB) | {:.1} MiB | {} | {} |",
        m.after_scenarios_1_to_4.rss_mib,
        m.at_end.hwm_mib,
        m.after_scenarios_1_to_4.hwm_mib,
        m.checks[1].target,
        verdict(&[&m.checks[1]])
    );
    if let Some(n) = &b.naive_mongo {
        let _ = writeln!(
            out,
            "| – | naive insert_one writer: {} events/s (batch endpoint {:.1}× it) | {} | {} | {} |",
            thousands(n.insert_one.eps),
            n.batch_factor,
            n.check.measured,
            n.check.target,
            verdict(&[&n.check])
        );
    }
    let _ = writeln!(
        out,
        "\nHistory seed: {} events in {:.1} s via the batch endpoint. Open loop (5): {} req/s scheduled, generator timer-lag p99 {:.2} ms.\n",
        thousands(h.big_user_events as f64),
        h.seed_seconds,
        b.scenarios
            .iter()
            .find_map(|sc| sc.rate)
            .map(thousands)
            .unwrap_or_default(),
        b.scenarios
            .iter()
            .find_map(|sc| sc.server.timer_lag_p99_ms)
            .unwrap_or(0.0),
    );
    let disk: Vec<String> = b
        .scenarios
        .iter()
        .filter_map(|sc| {
            let per = sc.disk_bytes_per_event?;
            Some(format!("scenario {}: {:.1} KiB/event", sc.id, per / 1024.0))
        })
        .collect();
    if !disk.is_empty() {
        let _ = writeln!(
            out,
            "Server writes to storage (/proc/PID/io write_bytes): {}.\n",
            disk.join(", ")
        );
    }
    for sc in &b.scenarios {
        for (who, st) in [("server", &sc.server), ("ceiling", &sc.ceiling)] {
            if let Some(e) = &st.first_error {
                let _ = writeln!(out, "- scenario {} {who}: first error: `{e}`", sc.id);
            }
        }
    }
}

/// Writes `latest.md` and `latest.json` into `dir`.
pub fn write(dir: &Path, report: &Report) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let md = markdown(report);
    let md_path = dir.join("latest.md");
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    let json_path = dir.join("latest.json");
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(&json_path, json)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
