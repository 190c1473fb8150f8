//! The SQLite file's disk fills up, or its file system turns read-only, while the server
//! runs: writes answer 503 with Retry-After and store nothing half-done, reads keep
//! working, and writes succeed again once the disk has room.
//!
//! A small tmpfs stands in for the disk, so these tests need root (mount); elsewhere
//! they are skipped visibly, and under CI=true not being able to mount is a failure.

use crate::helpers as common;

use std::path::Path;
use std::process::Command;

use common::{spawn_app_with, Options, TestApp};
use serde_json::json;

struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(Tmpfs { dir });
        }
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot mount a tmpfs: these tests need root");
        }
        common::report_skip("cannot mount a tmpfs (needs root), disk-full tests not run");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn app_on(fs: &Tmpfs) -> TestApp {
    let db = fs.path().join("et.db");
    spawn_app_with(Options {
        env: vec![("SQLITE_PATH".into(), db.to_string_lossy().into_owned())],
        ..Default::default()
    })
    .await
}

/// Fills the file system with one big file until it refuses more.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

fn event(i: usize) -> serde_json::Value {
    json!({"user_id": format!("d{}", i % 3), "event_type": "PURCHASE", "timestamp": 1_780_000_000 + i as i64, "properties": {"pad": "x".repeat(2000)}})
}

#[tokio::test]
async fn disk_full_answers_503_then_recovers() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let app = app_on(&fs).await;
    // Unequal totals before the disk fills: d1 20, d0 10.
    for i in [0, 1, 4] {
        assert_eq!(app.post("/v1/users/events", event(i)).await.0, 201);
    }
    let filler = fill(fs.path());

    let mut refused = None;
    let mut acknowledged = 3;
    for i in 5..2000 {
        let r = app
            .client
            .post(app.url("/v1/users/events"))
            .json(&event(i))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            201 => acknowledged += 1,
            503 => {
                assert!(r.headers().contains_key("retry-after"));
                refused = Some(i);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused.is_some(), "a full disk must refuse writes");
    // Reads keep working, and what they show is exactly what was acknowledged.
    let mut sum = 0;
    let mut expected = Vec::new();
    for u in 0..3 {
        let user = format!("d{u}");
        let (pts, n) = app.ledger_sum(&user).await;
        assert_eq!(app.points(&user).await, pts);
        sum += n;
        if n > 0 {
            expected.push((user, pts));
        }
    }
    assert_eq!(sum, acknowledged, "nothing half-written, nothing lost");
    // The boards too, though the counters of the last writes could not be written.
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let (status, board) = app.get("/v1/leaderboard?period=all").await;
    assert_eq!(status, 200, "{board}");
    assert_eq!(common::board_entries(&board), expected, "{board}");
    let (status, me) = app
        .get(&format!(
            "/v1/leaderboard/users/{}?period=all",
            expected[1].0
        ))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["points"], expected[1].1, "{me}");

    std::fs::remove_file(filler).unwrap();
    let retry = refused.unwrap();
    let (status, body) = app.post("/v1/users/events", event(retry)).await;
    assert_eq!(status, 201, "writes work again once there is room: {body}");
}

#[tokio::test]
async fn read_only_file_system_serves_reads_refuses_writes_and_recovers() {
    let Some(fs) = Tmpfs::mount("8m") else { return };
    let app = app_on(&fs).await;
    assert_eq!(app.post("/v1/users/events", event(0)).await.0, 201);
    app.stop().await;
    fs.remount("ro");

    // Started on a database it cannot write: it serves what is there (even with
    // subscriptions to register, which wait for the next start).
    let hooks = tempfile::tempdir().unwrap();
    let file = hooks.path().join("webhooks.yaml");
    std::fs::write(
        &file,
        "webhooks:\n  - {url: 'http://127.0.0.1:9/hook', secret: 0123456789abcdef, events: [points.changed]}\n",
    )
    .unwrap();
    let app = spawn_app_with(Options {
        env: vec![
            (
                "SQLITE_PATH".into(),
                fs.path().join("et.db").to_string_lossy().into_owned(),
            ),
            ("WEBHOOKS_PATH".into(), file.to_string_lossy().into_owned()),
            // The subscription is on loopback, refused by default.
            ("WEBHOOK_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(app.points("d0").await, 10);
    assert_eq!(
        app.get("/v1/leaderboard").await.1["entries"][0]["user_id"],
        "d0"
    );
    let r = app
        .client
        .post(app.url("/v1/users/events"))
        .json(&event(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(app.get("/readyz").await.0, 503, "not ready to take writes");

    fs.remount("rw");
    assert_eq!(
        app.post("/v1/users/events", event(1)).await.0,
        201,
        "writes recover without a restart"
    );
    assert_eq!(app.points("d1").await, 10);
    assert_eq!(app.get("/readyz").await.0, 200);
}
