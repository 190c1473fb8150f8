//! The README's curl examples, run as written against the real binary: every command of
//! every `sh` block, in order, against a server started the way the README says (the
//! shipped `config/events.yaml`; the Access control section's keys for that section).
//! A comment line after a command that starts with a status (`# 201 {...}`) or is a
//! JSON document (`# {...}`) is what the command must answer; otherwise it must answer
//! 2xx, or what its trailing comment allows (`with Redis:` examples answer 409 here).

use crate::helpers as common;

use std::process::Command;

use serde_json::Value;

const README: &str = include_str!("../../README.md");

/// One command of the README with what it must answer.
#[derive(Debug)]
struct Example {
    section: String,
    command: String,
    status: Option<u16>,
    body: Option<Value>,
    /// The comment on the command's own line.
    note: String,
}

/// `line` without a trailing `# comment` outside quotes, and the comment.
fn split_comment(line: &str) -> (&str, &str) {
    let mut quote: Option<char> = None;
    let bytes: Vec<char> = line.chars().collect();
    let mut offset = 0;
    for (i, c) in bytes.iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if *c == q => quote = None,
            (None, '\'' | '"') => quote = Some(*c),
            (None, '#') if i > 0 && bytes[i - 1].is_whitespace() => {
                return (line[..offset].trim_end(), line[offset + 1..].trim());
            }
            _ => {}
        }
        offset += c.len_utf8();
    }
    (line, "")
}

fn examples() -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut section = String::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in README.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.to_string();
        }
        if line.trim_start().starts_with("```") {
            in_sh = line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(comment) = line.trim().strip_prefix("# ") {
            // What the command before it answers.
            if let Some(last) = out
                .last_mut()
                .filter(|e| e.status.is_none() && e.body.is_none())
            {
                let (status, rest) = match comment.split_once(' ') {
                    Some((code, rest)) if code.len() == 3 && code.parse::<u16>().is_ok() => {
                        (code.parse().ok(), rest)
                    }
                    _ => (None, comment),
                };
                last.status = status;
                last.body = serde_json::from_str(rest).ok();
            }
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let (command, note) = split_comment(full.trim());
        if command.starts_with("curl ") {
            out.push(Example {
                section: section.clone(),
                command: command.to_string(),
                status: None,
                body: None,
                note: note.to_string(),
            });
        }
    }
    out
}

/// Runs `example` against `base` through the shell, as a reader would paste it.
fn run(example: &Example, base: &str) -> (u16, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let body_file = dir.path().join("body");
    let command = format!(
        "{} -s -o '{}' -w '%{{http_code}}'",
        example.command.replace("http://localhost:3000", base),
        body_file.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .output()
        .expect("sh runs curl");
    assert!(out.status.success(), "{command}: {out:?}");
    let status = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
    let body = std::fs::read_to_string(&body_file).unwrap_or_default();
    (status, body)
}

/// Replaces what the README leaves out (`"..."`) by what the server answered.
fn matches(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::String(s), _) if s == "..." || s.starts_with('<') => true,
        (Value::Object(e), Value::Object(g)) => e
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| matches(v, gv))),
        (Value::Array(e), Value::Array(g)) => {
            e.len() == g.len() && e.iter().zip(g).all(|(a, b)| matches(a, b))
        }
        _ => expected == got,
    }
}

#[tokio::test]
async fn every_curl_example_in_the_readme_works_as_written() {
    let all = examples();
    assert!(all.len() >= 20, "found only {} curl examples", all.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env: Vec<(String, String)> = common::base_env(dir.path()).into_iter().collect();
    // The README's server: the shipped rules, run from the checkout.
    env.retain(|(k, _)| k != "EVENTS_POINTS_PATH");
    env.push((
        "EVENTS_POINTS_PATH".into(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/events.yaml").into(),
    ));
    let open = common::process::start(&env);
    // One process per SQLite file: the keyed server has a database of its own.
    env.retain(|(k, _)| k != "SQLITE_PATH");
    env.push((
        "SQLITE_PATH".into(),
        dir.path().join("keyed.db").display().to_string(),
    ));
    env.push((
        "API_KEYS".into(),
        "k_ingest_1:ingest,k_read_1:read,k_ops:admin+read+ingest".into(),
    ));
    let keyed = common::process::start(&env);
    let mut checked = 0;
    for example in &all {
        let base = if example.section == "Access control" {
            &keyed.base
        } else {
            &open.base
        };
        let (status, body) = run(example, base);
        match example.status {
            Some(want) => assert_eq!(status, want, "{example:?}: {body}"),
            None if example.note.starts_with("with Redis:") => {
                assert!(
                    status == 200 || status == 409,
                    "{example:?}: {status} {body}"
                )
            }
            None => assert!((200..300).contains(&status), "{example:?}: {status} {body}"),
        }
        if let Some(want) = &example.body {
            let got: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{example:?}: not JSON ({e}): {body}"));
            assert!(matches(want, &got), "{example:?}: answered {got}");
        }
        checked += 1;
    }
    assert_eq!(checked, all.len());
}
