//! Storage faults: a full disk answers 503 and writes nothing half; a damaged data file
//! stops start-up with a clear message.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::common::TestServer;
use crate::common::process::stile_bin;

/// A small tmpfs of `size` mounted in a temp dir, unmounted on drop. `None` where this
/// user may not mount (then the test says so and checks nothing else).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_answers_503_writes_nothing_half_and_recovers() {
    let Some(disk) = SmallDisk::mount("6m") else {
        panic!("this test needs to mount a tmpfs (run as root, as CI does)");
    };
    // Take most of the space with a file we can delete later.
    let filler = disk.dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; 3 << 20]).unwrap();
    let data_dir = disk.dir.path().join("data");
    let server = TestServer::start_redb(|c| c.server.data_dir = data_dir.clone());

    let blob = "x".repeat(200 * 1024);
    let mut accepted = 0;
    let mut full = None;
    for n in 0..60 {
        let resp =
            server.post("/v1/events", json!({"type": "verification_session.created", "data": {"n": n, "blob": blob}}));
        match resp.status {
            200 => accepted += 1,
            _ => {
                full = Some(resp);
                break;
            }
        }
    }
    let full = full.expect("the disk fills up within 60 events of 200 KiB");
    full.assert_error(503, "api_error", "service_unavailable");
    assert!(accepted > 0);
    let listed = server.get("/v1/events?limit=100");
    assert_eq!(listed.status, 200, "reads still work: {}", listed.text);
    assert_eq!(listed.body["data"].as_array().unwrap().len(), accepted, "exactly the accepted events are stored");

    // Space comes back; writes work again.
    std::fs::remove_file(&filler).unwrap();
    let recovered = crate::common::eventually(Duration::from_secs(5), || {
        let resp = server.post("/v1/events", json!({"type": "verification_session.created", "data": {"after": true}}));
        assert!(resp.status == 200 || resp.status == 503, "until it recovers it says so: {}", resp.text);
        resp.status == 200
    });
    assert!(recovered, "publishing works again once space returns");
    drop(server);
}

#[test]
fn a_damaged_data_file_stops_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let server = TestServer::start_redb(|c| c.server.data_dir = data.clone());
        for n in 0..20 {
            server.publish("verification_session.created", json!({"n": n}));
        }
    }
    let file = data.join("stile.redb");
    let original = std::fs::read(&file).unwrap();
    for (name, damaged) in [
        ("truncated", original[..original.len() / 3].to_vec()),
        ("garbage", (0..original.len()).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>()),
        ("empty header", {
            let mut d = original.clone();
            d[..4096].fill(0);
            d
        }),
    ] {
        std::fs::write(&file, &damaged).unwrap();
        let output = stile_bin()
            .current_dir(dir.path())
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("STILE_AUTH_KEYS", crate::common::TEST_KEY)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert_eq!(output.status.code(), Some(1), "{name}: refuses to start: {stderr}");
        assert!(stderr.contains("data file"), "{name}: names the data file: {stderr}");
    }
}

#[cfg(unix)]
#[test]
fn a_new_data_directory_and_its_data_file_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let server = crate::common::TestServer::start_redb(|_| {});
    let mode = |path: std::path::PathBuf| std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(server.data_dir()), 0o700);
    for file in ["stile.redb", "payload.key", "admin.token"] {
        assert_eq!(mode(server.data_dir().join(file)), 0o600, "{file}");
    }
}
