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

pub fn check(target: &str, measured: String, met: bool) -> Check {
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
    /// MongoDB backends: documents and round trips per event and commit, from the
    /// server's command monitoring over the whole phase (warm-up included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_writes: Option<crate::store_counts::StoreWrites>,
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
            4 => vec![check("≥60% of ceiling req/s", pct, ratio >= 0.6)],
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
            store_writes: None,
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
    /// Scenario 1 events/s of the server over the naive writer's (None when scenario 1
    /// was not measured).
    pub single_post_factor: Option<f64>,
    /// The same for scenario 2 (None when scenario 2 was not measured).
    pub batch_factor: Option<f64>,
    pub check: Check,
}

impl Naive {
    /// `single` and `batch`: the server's scenario 1 and 2 figures, when measured.
    pub fn new(insert_one: Stats, single: Option<&Stats>, batch: Option<&Stats>) -> Naive {
        let factor = |s: &Stats| s.eps / insert_one.eps.max(1e-9);
        let single_post_factor = single.map(factor);
        let batch_factor = batch.map(factor);
        // On SecantusDB, whose cost is per document written, 0.4× stands for about 2.5
        // documents per event against the naive writer's one.
        let target = "server single POST ≥0.4× naive insert_one events/s";
        let check = match single_post_factor {
            Some(f) => self::check(target, format!("{f:.2}×"), f >= 0.4),
            None => self::check(target, "– (scenario 1 not measured)".into(), false),
        };
        Naive {
            check,
            single_post_factor,
            batch_factor,
            insert_one,
        }
    }
}

/// A scenario of a backend that has no figures, and why: its seed or its run failed.
#[derive(Debug, Clone, Serialize)]
pub struct NotMeasured {
    /// "1" to "7" as in the scenario table, or "naive" for the insert_one baseline.
    pub id: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendResult {
    pub name: String,
    /// Events per request of this backend's leaderboard and history seeds.
    pub seed_batch: u64,
    /// The scenarios that ran; those that did not are in `not_measured`.
    pub scenarios: Vec<Scenario>,
    pub history: Option<History>,
    pub memory: Option<MemoryResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub naive_mongo: Option<Naive>,
    pub not_measured: Vec<NotMeasured>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// Scenario 8, SQLite: import rate and start-up on a big store.
    pub startup: Option<crate::startup::Startup>,
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
    if let Some(st) = &r.startup {
        startup_markdown(&mut out, st);
    }
    for (name, why) in &r.not_measured {
        let _ = writeln!(out, "## {name}\n\nNot measured: {why}\n");
    }
    out
}

fn startup_markdown(out: &mut String, st: &crate::startup::Startup) {
    let _ = writeln!(
        out,
        "## sqlite: 8, import and start-up\n\n{} events over {} users imported with \
         `eventtracker import` in {:.1} s ({} events/s). Ready {:.2} s after a clean start, \
         {:.1} MiB resident with every user in the store; {} events acknowledged, SIGKILL \
         at once, ready again {:.2} s after the restart.\n",
        thousands(st.events as f64),
        thousands(st.users as f64),
        st.import_seconds,
        thousands(st.import_events_per_s),
        st.clean_start_seconds,
        st.memory.rss_mib,
        thousands(st.burst_events as f64),
        st.start_after_kill_seconds,
    );
    let _ = writeln!(out, "| target | measured | met |\n|---|---|---|");
    for c in &st.checks {
        let _ = writeln!(out, "| {} | {} | {} |", c.target, c.measured, verdict(&[c]));
    }
    let _ = writeln!(out);
}

/// `text` on one line and bounded, for a note under a table.
fn one_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(400) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// `text` made safe for one Markdown table cell: one line, no bare pipes, bounded.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

fn not_measured_row(columns: usize, id: &str, name: &str, reason: &str) -> String {
    // `columns` cells in all: id, name, dashes, then the reason in the last one.
    let dashes = vec!["–"; columns.saturating_sub(3)].join(" | ");
    format!(
        "| {id} | {name} | {dashes} | **not measured**: {} |",
        cell(reason)
    )
}

fn backend_markdown(out: &mut String, b: &BackendResult, s: &Settings) {
    let _ = writeln!(out, "## {}\n", b.name);
    let mut measured: Vec<String> = b.scenarios.iter().map(|sc| sc.id.to_string()).collect();
    if b.history.is_some() {
        measured.push("6".into());
    }
    if b.memory.is_some() {
        measured.push("7".into());
    }
    if b.naive_mongo.is_some() {
        measured.push("naive insert_one".into());
    }
    let missing: Vec<&str> = b.not_measured.iter().map(|n| n.id.as_str()).collect();
    let _ = writeln!(
        out,
        "Measured: {}. Not measured: {}.\n",
        if measured.is_empty() {
            "none".to_string()
        } else {
            measured.join(", ")
        },
        if missing.is_empty() {
            "none".to_string()
        } else {
            missing.join(", ")
        },
    );
    let _ = writeln!(
        out,
        "| # | Scenario | req/s | events/s | p50 ms | p99 ms | p99.9 ms | ceiling req/s | ceiling p99 ms | vs ceiling | errors | Target | Met |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|");
    let mut rows: Vec<(String, String)> = Vec::new();
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
        let row = format!(
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
        rows.push((sc.id.to_string(), row));
    }
    for n in &b.not_measured {
        if matches!(n.id.as_str(), "1" | "2" | "3" | "4" | "5") {
            rows.push((
                n.id.clone(),
                not_measured_row(13, &n.id, &n.name, &n.reason),
            ));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, row) in rows {
        let _ = writeln!(out, "{row}");
    }
    let skipped = |id: &str| b.not_measured.iter().find(|n| n.id == id);
    let _ = writeln!(out, "\n| # | Measure | Value | Target | Met |");
    let _ = writeln!(out, "|---|---|--:|---|---|");
    if let Some(h) = &b.history {
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
    }
    if let Some(m) = &b.memory {
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
    }
    if let Some(n) = &b.naive_mongo {
        let batch = match n.batch_factor {
            Some(f) => format!("batch endpoint {f:.1}× it"),
            None => "scenario 2 not measured".into(),
        };
        let _ = writeln!(
            out,
            "| – | naive insert_one writer: {} events/s ({batch}) | {} | {} | {} |",
            thousands(n.insert_one.eps),
            n.check.measured,
            n.check.target,
            verdict(&[&n.check])
        );
    }
    for id in ["6", "7", "naive"] {
        if let Some(n) = skipped(id) {
            let shown = if id == "naive" { "–" } else { id };
            let _ = writeln!(out, "{}", not_measured_row(5, shown, &n.name, &n.reason));
        }
    }
    let open_loop = b.scenarios.iter().find(|sc| sc.rate.is_some());
    let mut notes = Vec::new();
    if let Some(h) = &b.history {
        notes.push(format!(
            "History seed: {} events in {:.1} s via the batch endpoint ({} per request).",
            thousands(h.big_user_events as f64),
            h.seed_seconds,
            thousands(b.seed_batch as f64)
        ));
    }
    if let Some(sc) = open_loop {
        notes.push(format!(
            "Open loop (5): {} req/s scheduled, generator timer-lag p99 {:.2} ms.",
            sc.rate.map(thousands).unwrap_or_default(),
            sc.server.timer_lag_p99_ms.unwrap_or(0.0)
        ));
    }
    let _ = writeln!(out);
    if !notes.is_empty() {
        let _ = writeln!(out, "{}\n", notes.join(" "));
    }
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
    let mongo: Vec<String> = b
        .scenarios
        .iter()
        .filter(|sc| matches!(sc.id, 1 | 2))
        .filter_map(|sc| {
            let w = sc.store_writes?;
            let met = |ok: bool| if ok { "met" } else { "**missed**" };
            Some(format!(
                "scenario {}: {:.2} documents written per event (target ≤3: {}), {:.1} round trips per group commit (target ≤5: {}; {:.1} events per commit, {} commits)",
                sc.id,
                w.documents_per_event,
                met(w.documents_per_event <= 3.0),
                w.round_trips_per_commit,
                met(w.round_trips_per_commit <= 5.0),
                w.events_per_commit,
                thousands(w.commits)
            ))
        })
        .collect();
    if !mongo.is_empty() {
        let _ = writeln!(
            out,
            "MongoDB commands (the server's driver command monitoring, `mongodb_commands_total` and `mongodb_documents_written_total`): {}.\n",
            mongo.join("; ")
        );
    }
    for sc in &b.scenarios {
        for (who, st) in [("server", &sc.server), ("ceiling", &sc.ceiling)] {
            if let Some(e) = &st.first_error {
                let _ = writeln!(
                    out,
                    "- scenario {} {who}: first error: `{}`",
                    sc.id,
                    one_line(e)
                );
            }
        }
    }
    let _ = writeln!(out);
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
    use super::*;

    fn stats(rps: f64) -> Stats {
        Stats {
            requests: 10,
            events: 10,
            errors: 0,
            seconds: 1.0,
            rps,
            eps: rps,
            p50_ms: 1.0,
            p99_ms: 2.0,
            p999_ms: 3.0,
            max_ms: 4.0,
            mean_ms: 1.0,
            first_error: None,
            timer_lag_p99_ms: None,
        }
    }

    #[test]
    fn a_backend_with_missing_scenarios_keeps_the_others() {
        let settings = Settings {
            duration_s: 2.0,
            warmup_s: 0.3,
            connections: 64,
            batch_events: 500,
            leaderboard_users: 5000,
            history_events: 20000,
            history_rounds: 200,
            quick: true,
        };
        let report = Report {
            startup: None,
            generated_at: "now".into(),
            git_commit: None,
            cpus: 2,
            settings,
            backends: vec![BackendResult {
                name: "mongo".into(),
                seed_batch: 100,
                scenarios: vec![Scenario::new(
                    1,
                    "POST one",
                    stats(100.0),
                    stats(1000.0),
                    None,
                )],
                history: None,
                memory: None,
                naive_mongo: Some(Naive::new(stats(50.0), Some(&stats(100.0)), None)),
                not_measured: vec![
                    NotMeasured {
                        id: "4".into(),
                        name: "GET leaderboard".into(),
                        reason: "leaderboard seed: seed batch 3: 408 | timed out\nline two".into(),
                    },
                    NotMeasured {
                        id: "6".into(),
                        name: "history".into(),
                        reason: "history seed: refused".into(),
                    },
                ],
            }],
            not_measured: vec![],
        };
        let md = markdown(&report);
        assert!(
            md.contains("Measured: 1, naive insert_one. Not measured: 4, 6."),
            "{md}"
        );
        assert!(md.contains(
            "| 4 | GET leaderboard | – | – | – | – | – | – | – | – | – | – | **not measured**: \
             leaderboard seed: seed batch 3: 408 \\| timed out line two |"
        ), "{md}");
        assert!(
            md.contains("| 6 | history | – | – | **not measured**: history seed: refused |"),
            "{md}"
        );
        assert!(
            md.contains("naive insert_one writer: 50 events/s (scenario 2 not measured) | 2.00× | server single POST ≥0.4× naive insert_one events/s | met |"),
            "{md}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["backends"][0]["not_measured"][0]["id"], "4");
        assert!(json["backends"][0]["history"].is_null());
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
