//! The command line: `check-config` and start-up errors that name what is wrong.

use crate::helpers as common;

use std::process::Command;

use common::process::BIN;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run eventtracker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_shipped_configuration() {
    let (code, out, err) = run(&["check-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(out.contains("config/events.yaml"), "{out}");
}

#[test]
fn check_config_names_the_file_and_entry_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("events.yaml");
    std::fs::write(
        &bad,
        "events:\n  - {name: LOGIN, point: 1}\n  - {name: LOGIN, point: 2}\n",
    )
    .unwrap();
    let (code, _, err) = run(
        &["check-config"],
        &[("EVENTS_POINTS_PATH", bad.to_str().unwrap())],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("events.yaml")
            && err.contains("events[1] (LOGIN)")
            && err.contains("duplicate"),
        "{err}"
    );

    let (code, _, err) = run(
        &["check-config"],
        &[("EVENTS_POINTS_PATH", "/nonexistent/events.yaml")],
    );
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/events.yaml"), "{err}");
}

#[test]
fn check_config_refuses_a_webhook_inside_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks.yaml");
    std::fs::write(
        &hooks,
        "webhooks:\n  - {url: 'https://8.8.8.8/ok', secret: 0123456789abcdef, events: [points.changed]}\n  - {url: 'http://169.254.169.254/latest/', secret: 0123456789abcdef, events: [points.changed]}\n",
    )
    .unwrap();
    let path = hooks.to_str().unwrap();
    let (code, _, err) = run(&["check-config"], &[("WEBHOOKS_PATH", path)]);
    assert_ne!(code, 0);
    assert!(
        err.contains("WEBHOOKS_PATH: webhooks[1]: url resolves to a non-public address"),
        "{err}"
    );
    let allow = ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true");
    let (code, out, err) = run(&["check-config"], &[("WEBHOOKS_PATH", path), allow]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration is valid"), "{out}");
}

#[test]
fn an_invalid_variable_stops_start_up_with_its_name() {
    for (var, value) in [
        ("API_SERVER_PORT", "http"),
        ("LOG_LEVEL", "chatty"),
        ("APP_ENV", "staging"),
        ("SQLITE_SYNCHRONOUS", "sometimes"),
    ] {
        let (code, _, err) = run(&["serve"], &[(var, value)]);
        assert_ne!(code, 0, "{var}");
        assert!(err.contains(var), "{var}: {err}");
    }
}

#[test]
fn sqlite_path_problems_stop_start_up_naming_sqlite_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    // The database's folder would have to be created under a file.
    let under_file = file.join("data/et.db");
    let (code, _, err) = run(
        &["serve"],
        &[
            ("API_SERVER_HOST", "127.0.0.1"),
            ("API_SERVER_PORT", "0"),
            ("SQLITE_PATH", under_file.to_str().unwrap()),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("SQLITE_PATH") && err.contains("cannot create folder"),
        "{err}"
    );

    // The folder exists but no file can be created in it (even as root).
    if cfg!(target_os = "linux") {
        let (code, _, err) = run(
            &["serve"],
            &[
                ("API_SERVER_HOST", "127.0.0.1"),
                ("API_SERVER_PORT", "0"),
                ("SQLITE_PATH", "/proc/eventtracker-test.db"),
            ],
        );
        assert_ne!(code, 0);
        assert!(
            err.contains("SQLITE_PATH") && err.contains("cannot open SQLite database"),
            "{err}"
        );
    }
}

#[test]
fn a_host_name_that_does_not_resolve_stops_start_up_naming_api_server_host() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("et.db");
    // `.invalid` never resolves (RFC 2606).
    let (code, _, err) = run(
        &["serve"],
        &[
            ("API_SERVER_HOST", "no-such-host.invalid"),
            ("API_SERVER_PORT", "0"),
            ("SQLITE_PATH", db.to_str().unwrap()),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("API_SERVER_HOST") && err.contains("no-such-host.invalid"),
        "{err}"
    );
}

#[test]
fn the_test_crash_point_is_refused_outside_app_env_test() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("et.db");
    for (app_env, point, says) in [
        (
            "production",
            "mongo.journal.after_insert",
            "honoured only with APP_ENV=test",
        ),
        (
            "development",
            "mongo.journal.after_insert",
            "honoured only with APP_ENV=test",
        ),
        ("test", "nowhere", "unknown crash point"),
    ] {
        let (code, _, err) = run(
            &["serve"],
            &[
                ("APP_ENV", app_env),
                ("AUTH_DISABLED", "true"),
                ("API_SERVER_PORT", "0"),
                ("SQLITE_PATH", db.to_str().unwrap()),
                ("EVENTTRACKER_CRASH_AT", point),
            ],
        );
        assert_ne!(code, 0, "{app_env}: started with a crash point");
        assert!(
            err.contains("EVENTTRACKER_CRASH_AT") && err.contains(says),
            "{app_env}: {err}"
        );
    }
}

/// check-config refuses what `serve` would refuse or ignore, naming the variable, and
/// exits non-zero without printing that the configuration is valid.
fn check_config_refuses(env: &[(&str, &str)], var: &str, problem: &str) {
    let (code, out, err) = run(&["check-config"], env);
    assert_ne!(code, 0, "{env:?} passed: {out}");
    assert!(!out.contains("configuration is valid"), "{out}");
    assert!(
        err.contains(&format!("error: {var}: ")) && err.contains(problem),
        "{env:?}: {err}"
    );
}

#[test]
fn check_config_refuses_a_redis_url_the_client_would_not_take() {
    for url in ["http://x", "cache:6379", "redis://", "rediss://cache:6380"] {
        check_config_refuses(&[("REDIS_URL", url)], "REDIS_URL", "expected redis://");
    }
    // serve refuses it too, before opening anything.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("et.db");
    let (code, _, err) = run(
        &["serve"],
        &[
            ("REDIS_URL", "http://x"),
            ("SQLITE_PATH", db.to_str().unwrap()),
            ("API_SERVER_HOST", "127.0.0.1"),
            ("API_SERVER_PORT", "0"),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("REDIS_URL: "), "{err}");
    assert!(!db.exists(), "refused before the store was opened");
    let (code, out, err) = run(&["check-config"], &[("REDIS_URL", "redis://127.0.0.1:1/0")]);
    assert_eq!(code, 0, "a good URL needs no Redis to check: {err}");
    assert!(out.contains("configuration is valid"), "{out}");
}

#[test]
fn check_config_refuses_a_sqlite_path_whose_folder_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let under_file = file.join("data/et.db");
    check_config_refuses(
        &[("SQLITE_PATH", under_file.to_str().unwrap())],
        "SQLITE_PATH",
        "cannot create folder",
    );
    check_config_refuses(
        &[("SQLITE_PATH", dir.path().to_str().unwrap())],
        "SQLITE_PATH",
        "is a folder",
    );
    // A folder that can be created is fine, and check-config does not create it.
    let missing = dir.path().join("new/deeper/et.db");
    let (code, out, err) = run(
        &["check-config"],
        &[("SQLITE_PATH", missing.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(
        !dir.path().join("new").exists(),
        "check-config created the folder"
    );
    // With MongoDB as the store, SQLITE_PATH is not used and not checked.
    let (code, _, err) = run(
        &["check-config"],
        &[
            ("SQLITE_PATH", under_file.to_str().unwrap()),
            ("MONGO_URL", "mongodb://127.0.0.1:1/et"),
        ],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn check_config_refuses_bad_mongo_settings_even_without_mongo_url() {
    check_config_refuses(
        &[("MONGO_WRITE_CONCERN", "all")],
        "MONGO_WRITE_CONCERN",
        "invalid value \"all\"",
    );
    check_config_refuses(
        &[("MONGO_READ_CONCERN", "snapshot")],
        "MONGO_READ_CONCERN",
        "invalid value \"snapshot\"",
    );
    check_config_refuses(
        &[("MONGO_URL", "mongodb://db:notaport/et")],
        "MONGO_URL",
        "invalid connection string",
    );
}

#[test]
fn check_config_reports_a_missing_rules_file_once_naming_the_variable() {
    let (code, _, err) = run(
        &["check-config"],
        &[("EVENTS_POINTS_PATH", "/nonexistent/events.yaml")],
    );
    assert_ne!(code, 0);
    let os_error = std::io::Error::from_raw_os_error(2).to_string();
    assert_eq!(
        err.trim_end(),
        format!(
            "error: EVENTS_POINTS_PATH: /nonexistent/events.yaml: cannot read the file: {os_error}"
        )
    );
}

#[test]
fn check_config_refuses_a_bad_rust_log_filter() {
    check_config_refuses(
        &[("RUST_LOG", "eventtracker=loud")],
        "RUST_LOG",
        "tracing filter",
    );
}
