//! `eventtracker import` and `eventtracker export`, run as the real binary against the
//! store `TEST_BACKEND` selects (SQLite in a temp dir by default), checked through the
//! store itself.

use crate::helpers as common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::BIN;
use eventtracker::config::Config;
use eventtracker::store::TimeRange;
use serde_json::{json, Value};

/// One store of the selected backend, empty at first, and the variables that reach it.
struct Ledger {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// user -> (points, events), from the store's counters.
type Balances = BTreeMap<String, (i64, u64)>;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The `--json` summary: the last line of stdout.
    fn summary(&self) -> Value {
        let last = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|_| panic!("no JSON summary: {}\n{}", self.stdout, self.stderr))
    }
}

impl Ledger {
    fn new() -> Ledger {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env: Vec<(String, String)> = common::base_env(dir.path()).into_iter().collect();
        env.extend(common::backend_env());
        Ledger { dir, env }
    }

    /// An empty store of the selected backend judged by the rules `text`.
    fn with_rules(text: &str) -> Ledger {
        let mut l = Ledger::new();
        let path = l.write("events.yaml", text);
        l.env
            .push(("EVENTS_POINTS_PATH".into(), path.display().to_string()));
        l
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write input");
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run eventtracker");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `import FILE --json ...`, which must succeed; returns its summary.
    fn import(&self, file: &Path, extra: &[&str]) -> Value {
        let mut args = vec!["import", file.to_str().expect("utf-8 path"), "--json"];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        assert_eq!(run.code, 0, "import failed: {}", run.stderr);
        run.summary()
    }

    /// `export ...` to a file; returns its lines.
    fn export(&self, extra: &[&str]) -> Vec<Value> {
        let out = self.path(&format!("export-{}.ndjson", common::unique_name("x")));
        let mut args = vec!["export", "--output", out.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        assert_eq!(run.code, 0, "export failed: {}", run.stderr);
        read_ndjson(&out)
    }

    async fn balances(&self) -> Balances {
        let vars: HashMap<String, String> = self.env.iter().cloned().collect();
        let config = Config::from_map(&vars).expect("config");
        let store = eventtracker::startup::open_store(&config)
            .await
            .expect("store opens");
        let store = eventtracker::startup::with_cache(store, &config).expect("cache");
        let mut out = Balances::new();
        let mut after = None;
        loop {
            let users = store
                .export
                .user_ids(after.clone(), 100)
                .await
                .expect("user ids");
            for u in &users {
                let p = store
                    .ledger
                    .user_points(u, TimeRange::default())
                    .await
                    .expect("points");
                out.insert(u.clone(), (p.points, p.events));
            }
            if users.len() < 100 {
                break;
            }
            after = users.last().cloned();
        }
        store.lifecycle.close().await;
        out
    }
}

fn read_ndjson(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn balances_of(rows: &[(&str, i64, u64)]) -> Balances {
    rows.iter()
        .map(|(u, p, n)| (u.to_string(), (*p, *n)))
        .collect()
}

const NDJSON: &str = r#"{"user_id":"alice","event_type":"PURCHASE","timestamp":1700000000,"event_id":"a1"}
{"user_id":"alice","event_type":"LOGIN","timestamp":"2023-11-14T22:13:21Z"}
{"user_id":"bob","event_type":"REVIEW","timestamp":1700000000123,"properties":{"stars":5}}

{"user_id":"bob","event_type":"NOPE","timestamp":1700000000}
not json
{"user_id":"carol","event_type":"LOGIN"}
{"user_id":"alice","event_type":"PURCHASE","timestamp":1700000999,"event_id":"a1"}
{"user_id":"carol","event_type":"ABUSE_REPORTED","timestamp":1700000500}
"#;

#[tokio::test]
async fn ndjson_import_reports_rejects_and_a_second_run_changes_nothing() {
    let ledger = Ledger::new();
    let file = ledger.write("events.ndjson", NDJSON);
    let expected = balances_of(&[("alice", 11, 2), ("bob", 5, 1), ("carol", -20, 1)]);

    // Batches of 2: the repeated event_id "a1" (lines 1 and 8) lands in another batch.
    let first = ledger.import(&file, &["--batch-size", "2"]);
    assert_eq!(first, json!({"created": 4, "duplicates": 1, "rejected": 3}));
    assert_eq!(ledger.balances().await, expected);

    let rejects = read_ndjson(&ledger.path("events.ndjson.rejects.ndjson"));
    let lines: Vec<u64> = rejects
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![5, 6, 7], "{rejects:?}");
    let raw: Vec<&str> = NDJSON.lines().collect();
    for r in &rejects {
        let n = r["line"].as_u64().unwrap() as usize;
        assert_eq!(r["input"], raw[n - 1], "{r}");
    }
    assert!(rejects[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("event_type unknown event type"));
    assert_eq!(rejects[0]["errors"][0]["field"], "event_type");
    assert!(rejects[1]["reason"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    assert_eq!(rejects[2]["reason"], "timestamp is required");

    // Everything valid is already stored: the same file again creates nothing.
    let second = ledger.import(&file, &[]);
    assert_eq!(
        second,
        json!({"created": 0, "duplicates": 5, "rejected": 3})
    );
    assert_eq!(ledger.balances().await, expected);

    // Without --json the summary is a sentence; standard input reads NDJSON.
    let mut child = ledger
        .command(&["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(NDJSON.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("0 created, 5 duplicates, 3 rejected"),
        "{stdout}"
    );
    assert_eq!(read_ndjson(&ledger.path("stdin.rejects.ndjson")).len(), 3);
}

const CSV: &str = "user_id,event_type,timestamp,event_id,properties
dave,PURCHASE,1700000000,d1,
dave,LOGIN,2023-11-14T22:13:20Z,,\"{\"\"source\"\":\"\"csv\"\"}\"
erin,REVIEW,1700000000000,,
erin,LOGIN,-5,,
frank,LOGIN,1700000000,,not json
,LOGIN,1700000000,,
dave,PURCHASE,1700000001,d1,
erin,LOGIN,1700000000
";

#[tokio::test]
async fn csv_import_validates_each_line_like_the_api() {
    let ledger = Ledger::new();
    let file = ledger.write("events.csv", CSV);
    let rejects_path = ledger.path("bad.ndjson");
    let rejects_arg = rejects_path.to_str().unwrap();
    let expected = balances_of(&[("dave", 11, 2), ("erin", 5, 1)]);

    let first = ledger.import(&file, &["--rejects", rejects_arg]);
    assert_eq!(first, json!({"created": 3, "duplicates": 1, "rejected": 4}));
    assert_eq!(ledger.balances().await, expected);

    let rejects = read_ndjson(&rejects_path);
    let got: Vec<(u64, &str)> = rejects
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (5, "timestamp must not be negative"),
            (
                6,
                "properties must be a JSON object (written as JSON text in the cell)"
            ),
            (7, "user_id is required"),
            (9, "has 3 fields, the header has 5"),
        ]
    );
    assert_eq!(rejects[0]["input"], "erin,LOGIN,-5,,");
    assert_eq!(rejects[2]["errors"][0]["field"], "user_id");

    // The properties cell arrived as the JSON object it holds.
    let dave = ledger.export(&["--user", "dave"]);
    let login = dave
        .iter()
        .find(|e| e["event_type"] == "LOGIN")
        .expect("dave's login");
    assert_eq!(login["properties"], json!({"source": "csv"}));

    let again = ledger.import(&file, &["--rejects", rejects_arg]);
    assert_eq!(again, json!({"created": 0, "duplicates": 4, "rejected": 4}));
    assert_eq!(ledger.balances().await, expected);
}

#[test]
fn bad_input_stops_with_a_message_naming_the_file() {
    let ledger = Ledger::new();
    let csv = ledger.write("no-ts.csv", "user_id,event_type\nu,LOGIN\n");
    let run = ledger.run(&["import", csv.to_str().unwrap()]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("no-ts.csv") && run.stderr.contains("no timestamp column"),
        "{}",
        run.stderr
    );

    // Rejects written over the input would destroy it while it is read.
    let input = ledger.write("keep.ndjson", NDJSON);
    let path = input.to_str().unwrap();
    let run = ledger.run(&["import", path, "--rejects", path]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("must not be the input"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&input).unwrap(), NDJSON);

    let run = ledger.run(&["import", "missing.ndjson"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("missing.ndjson"), "{}", run.stderr);

    let txt = ledger.write("events.txt", "");
    let run = ledger.run(&["import", txt.to_str().unwrap()]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--format"), "{}", run.stderr);

    let run = ledger.run(&["export", "--from", "yesterday"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--from"), "{}", run.stderr);
}

/// `n` valid events over three users, all distinct.
fn events(n: usize) -> Vec<String> {
    let types = ["LOGIN", "PURCHASE", "REVIEW", "ABUSE_REPORTED"];
    (0..n)
        .map(|i| {
            let mut e = json!({
                "user_id": format!("u{}", i % 3),
                "event_type": types[i % 4],
                "timestamp": 1_700_000_000_000i64 + i as i64 * 1000,
            });
            if i % 2 == 0 {
                e["event_id"] = json!(format!("e{i}"));
            }
            e.to_string()
        })
        .collect()
}

fn expected_balances(lines: &[String]) -> Balances {
    let points = |t: &str| match t {
        "LOGIN" => 1,
        "PURCHASE" => 10,
        "REVIEW" => 5,
        "ABUSE_REPORTED" => -20,
        _ => panic!("{t}"),
    };
    let mut out = Balances::new();
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap();
        let e = out
            .entry(v["user_id"].as_str().unwrap().to_string())
            .or_default();
        e.0 += points(v["event_type"].as_str().unwrap());
        e.1 += 1;
    }
    out
}

#[tokio::test]
async fn a_run_stopped_part_way_carries_on_without_double_counting() {
    let ledger = Ledger::new();
    let lines = events(30);
    let all = ledger.write("all.ndjson", &(lines.join("\n") + "\n"));

    // A prefix imported, as a crashed run leaves it: the full run counts it as duplicates.
    let head = ledger.write("head.ndjson", &(lines[..12].join("\n") + "\n"));
    assert_eq!(
        ledger.import(&head, &["--batch-size", "5"]),
        json!({"created": 12, "duplicates": 0, "rejected": 0})
    );
    assert_eq!(
        ledger.import(&all, &["--batch-size", "5"]),
        json!({"created": 18, "duplicates": 12, "rejected": 0})
    );
    assert_eq!(ledger.balances().await, expected_balances(&lines));
}

/// Kills the child when a failed assertion unwinds past it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn ctrl_c_stops_after_the_batch_in_flight_and_a_rerun_completes() {
    let ledger = Ledger::new();
    let lines = events(30);
    let all = ledger.write("all.ndjson", &(lines.join("\n") + "\n"));
    let rejects = ledger.path("stdin.rejects.ndjson");

    let mut child = KillOnDrop(Some(
        ledger
            .command(&["import", "-", "--json", "--batch-size", "4"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    ));
    // The rejects file appears once the Ctrl-C handler is in place.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rejects.exists() {
        assert!(Instant::now() < deadline, "import never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Half the input, and standard input left open: the import waits for more.
    let child_ref = child.0.as_mut().expect("child");
    let mut stdin = child_ref.stdin.take().expect("stdin");
    stdin
        .write_all((lines[..12].join("\n") + "\n").as_bytes())
        .expect("write stdin");
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(1500));
    let ok = Command::new("kill")
        .args(["-INT", &child_ref.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    // It must stop by itself (standard input is still open); if not, the guard kills it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child
        .0
        .as_mut()
        .expect("child")
        .try_wait()
        .expect("wait")
        .is_none()
    {
        assert!(Instant::now() < deadline, "import did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child
        .0
        .take()
        .expect("child")
        .wait_with_output()
        .expect("wait");
    drop(stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let run = Run {
        code: 1,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: stderr.into_owned(),
    };
    let stopped = run.summary();
    let done = stopped["created"].as_u64().unwrap();
    assert!(done <= 12, "{stopped}");

    let rest = ledger.import(&all, &[]);
    assert_eq!(
        rest,
        json!({"created": 30 - done, "duplicates": done, "rejected": 0})
    );
    assert_eq!(ledger.balances().await, expected_balances(&lines));
}

#[tokio::test]
async fn export_reads_back_into_an_empty_store_to_the_same_balances() {
    let source = Ledger::new();
    let mut lines = events(20);
    // Events without event_id must come back as duplicates of themselves, also at
    // instants whose millisecond count would read as seconds, and with properties.
    lines.push(r#"{"user_id":"old","event_type":"REVIEW","timestamp":"1971-01-01T00:00:00.5Z","properties":{"a":[1,2],"b":"x"}}"#.into());
    lines.push(
        r#"{"user_id":"old","event_type":"LOGIN","timestamp":"2023-11-14T22:13:20.123+01:00"}"#
            .into(),
    );
    let file = source.write("seed.ndjson", &(lines.join("\n") + "\n"));
    let seeded = source.import(&file, &[]);
    assert_eq!(seeded["created"], 22, "{seeded}");
    let balances = source.balances().await;
    assert_eq!(balances, expected_balances(&lines));

    let exported = source.export(&[]);
    assert_eq!(exported.len(), 22);
    let old: Vec<&Value> = exported.iter().filter(|e| e["user_id"] == "old").collect();
    assert_eq!(
        old.iter()
            .map(|e| e["timestamp"].clone())
            .collect::<Vec<_>>(),
        vec![
            json!("2023-11-14T21:13:20.123Z"),
            json!("1971-01-01T00:00:00.500Z")
        ],
        "one user's events in history order, newest first"
    );
    assert_eq!(old[1]["properties"], json!({"a": [1, 2], "b": "x"}));
    assert!(old[1].get("event_id").is_none());

    let dump = source.path("ledger.ndjson");
    let run = source.run(&["export", "--output", dump.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("exported 22 events of 4 users"),
        "{}",
        run.stderr
    );
    // And to standard output, byte for byte the same.
    let run = source.run(&["export"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, std::fs::read_to_string(&dump).unwrap());

    let target = Ledger::new();
    assert_eq!(
        target.import(&dump, &[]),
        json!({"created": 22, "duplicates": 0, "rejected": 0})
    );
    assert_eq!(target.balances().await, balances);

    // The export reproduces every duplicate key: read back into its own store, nothing is new.
    assert_eq!(
        source.import(&dump, &[]),
        json!({"created": 0, "duplicates": 22, "rejected": 0})
    );
    assert_eq!(source.balances().await, balances);
}

#[tokio::test]
async fn export_of_one_user_and_of_a_time_window() {
    let ledger = Ledger::new();
    let lines = events(12);
    let file = ledger.write("seed.ndjson", &(lines.join("\n") + "\n"));
    ledger.import(&file, &[]);

    let u1 = ledger.export(&["--user", "u1"]);
    assert_eq!(u1.len(), 4);
    assert!(u1.iter().all(|e| e["user_id"] == "u1"), "{u1:?}");
    assert!(ledger.export(&["--user", "nobody"]).is_empty());

    // Events are one second apart from 1700000000000; `from` is inclusive, `to` exclusive.
    let window = ledger.export(&["--from", "1700000003", "--to", "2023-11-14T22:13:27Z"]);
    let mut seconds: Vec<i64> = window
        .iter()
        .map(|e| {
            let t = e["timestamp"].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp() - 1_700_000_000
        })
        .collect();
    seconds.sort();
    assert_eq!(seconds, vec![3, 4, 5, 6]);

    let both = ledger.export(&["--user", "u0", "--from", "1700000003000"]);
    let ids: Vec<&str> = both
        .iter()
        .map(|e| e["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["u0"; 3], "{both:?}"); // events 3, 6 and 9
}

/// Achievement bonus entries are exported with the events; an import leaves them to the
/// engine, which awards them again as the events that earned them come in, so the
/// balances come back the same and nothing is awarded twice.
#[tokio::test]
async fn bonus_entries_of_an_export_are_awarded_again_not_imported_twice() {
    let rules = "events:\n  - {name: LOGIN, point: 1}\nachievements:\n  - {id: busy_week, name: Busy week, when: {event_type: LOGIN, count: 5, period: week}, repeatable: true, points: 50}\n";
    let source = Ledger::with_rules(rules);
    let lines: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"{{"user_id":"u","event_type":"LOGIN","timestamp":"2026-11-17T0{i}:00:00Z"}}"#
            )
        })
        .collect();
    let file = source.write("seed.ndjson", &(lines.join("\n") + "\n"));
    assert_eq!(
        source.import(&file, &[]),
        json!({"created": 5, "duplicates": 0, "rejected": 0})
    );
    let balances = source.balances().await;
    assert_eq!(balances["u"], (55, 6), "five logins and their bonus entry");
    let exported = source.export(&[]);
    assert_eq!(exported.len(), 6);
    assert_eq!(
        exported
            .iter()
            .filter(|e| e["event_type"] == "achievement:busy_week")
            .count(),
        1
    );

    let dump = source.path("ledger.ndjson");
    let run = source.run(&["export", "--output", dump.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let target = Ledger::with_rules(rules);
    assert_eq!(
        target.import(&dump, &[]),
        json!({"created": 5, "duplicates": 0, "rejected": 0, "bonuses_skipped": 1})
    );
    assert_eq!(target.balances().await, balances);
    assert_eq!(
        source.import(&dump, &[]),
        json!({"created": 0, "duplicates": 5, "rejected": 0, "bonuses_skipped": 1})
    );
    assert_eq!(source.balances().await, balances);
}

/// The wallet of a user as the store keeps it.
async fn wallet_of(l: &Ledger, user: &str) -> eventtracker::domain::wallet::Wallet {
    let vars: HashMap<String, String> = l.env.iter().cloned().collect();
    let config = Config::from_map(&vars).expect("config");
    let store = eventtracker::startup::open_store(&config)
        .await
        .expect("store");
    let w = store
        .progress
        .user_progress(user)
        .await
        .expect("progress")
        .wallet;
    store.lifecycle.close().await;
    w
}

/// Spends, holds and their captures and releases are exported with the events, and an
/// import into an empty store gives the same wallet; a second import changes nothing.
#[tokio::test]
async fn wallet_entries_export_and_import_back_to_the_same_wallet() {
    use eventtracker::domain::engine::WalletOp;
    let rules = "events:\n  - {name: PURCHASE, point: 10}\nwallet:\n  expires_after_days: 3650\n";
    let source = Ledger::with_rules(rules);
    let lines: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"{{"user_id":"w","event_type":"PURCHASE","timestamp":"2026-11-17T0{i}:00:00Z"}}"#
            )
        })
        .collect();
    let file = source.write("seed.ndjson", &(lines.join("\n") + "\n"));
    source.import(&file, &[]);
    {
        let vars: HashMap<String, String> = source.env.iter().cloned().collect();
        let config = Config::from_map(&vars).expect("config");
        let store = eventtracker::startup::open_store(&config)
            .await
            .expect("store");
        let rules = std::sync::Arc::new(config.rules.load().expect("rules"));
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-18T10:00:00Z")
            .unwrap()
            .timestamp_millis();
        for (op, at) in [
            (
                WalletOp::Spend {
                    amount: 20,
                    spend_id: "a".into(),
                    reason: Some("coupon".into()),
                },
                now,
            ),
            (
                WalletOp::Hold {
                    amount: 10,
                    hold_id: "h1".into(),
                    expires_ms: now + 900_000,
                },
                now + 1,
            ),
            (
                WalletOp::Capture {
                    hold_id: "h1".into(),
                    amount: Some(5),
                },
                now + 2,
            ),
            (
                WalletOp::Hold {
                    amount: 7,
                    hold_id: "h2".into(),
                    expires_ms: now + 60_000,
                },
                now + 3,
            ),
        ] {
            let r = store
                .progress
                .wallet_op("w", op, rules.clone(), at)
                .await
                .expect("wallet op");
            assert!(r.result.is_ok(), "{r:?}");
        }
        store.lifecycle.close().await;
    }
    let before = wallet_of(&source, "w").await;
    assert_eq!((before.spent, before.held(), before.balance()), (25, 7, 25));

    let dump = source.path("ledger.ndjson");
    let run = source.run(&["export", "--output", dump.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let exported = read_ndjson(&dump);
    let kinds: Vec<&str> = exported
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .filter(|t| t.starts_with("wallet:"))
        .collect();
    assert_eq!(
        kinds.len(),
        5,
        "spend, two holds, a capture and its release: {kinds:?}"
    );

    let target = Ledger::with_rules(rules);
    let summary = target.import(&dump, &[]);
    assert_eq!(summary["created"], 5, "{summary}");
    assert_eq!(summary["wallet_entries"], 5, "{summary}");
    let after = wallet_of(&target, "w").await;
    assert_eq!(
        (
            after.earned,
            after.spent,
            after.expired,
            after.held(),
            after.balance()
        ),
        (
            before.earned,
            before.spent,
            before.expired,
            before.held(),
            before.balance()
        )
    );
    assert_eq!(after.holds, before.holds);
    let again = target.import(&dump, &[]);
    assert_eq!(again["duplicates"], 10, "{again}");
    assert_eq!(wallet_of(&target, "w").await.spent, 25);
}
