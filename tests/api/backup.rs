//! `stile backup`: a consistent copy of a running server's store, restorable by putting
//! it in place of the data file.

use serde_json::json;

use crate::common::process::{ServerProcess, stile_bin};
use crate::common::{Req, TEST_KEY};

#[test]
fn a_backup_taken_while_the_server_runs_restores_into_a_working_server() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", "data"];
    let env = [("STILE_AUTH_KEYS", TEST_KEY)];
    let server = ServerProcess::start(dir.path(), &args, &env).unwrap();
    let post = |path: &str, body: serde_json::Value| {
        let resp = Req::new("POST", format!("{}{path}", server.base)).key(TEST_KEY).json(&body).send();
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body
    };
    let endpoint = post("/v1/webhook_endpoints", json!({"url": "http://127.0.0.1:9/hooks", "enabled_events": ["*"]}));
    // A unique marker in the payload, in an idempotent response, and in an endpoint's answer.
    let marker = format!("marker-{}", ulid::Ulid::new());
    let event = Req::new("POST", format!("{}/v1/events", server.base))
        .key(TEST_KEY)
        .header("Idempotency-Key", "backup-test")
        .json(&json!({"type": "verification_session.created", "data": {"id": "vks_1", "note": marker}}))
        .send();
    assert_eq!(event.status, 200, "{}", event.text);
    let event = event.body;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/admin.token")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the server's user may read the admin token");
    }
    // Without the token, or with a wrong one, there is no backup.
    let refused = Req::new("GET", format!("{}/admin/backup", server.base)).no_key().send();
    refused.assert_error(401, "authentication_error", "api_key_invalid");
    let with_api_key = Req::new("GET", format!("{}/admin/backup", server.base)).key(TEST_KEY).send();
    assert_eq!(with_api_key.status, 401, "an API key is not the admin token");

    let backup = dir.path().join("backup.redb");
    let run = |extra: &[&str]| {
        let mut command = stile_bin();
        command.current_dir(dir.path()).args(["backup", backup.to_str().unwrap(), "--data-dir", "data", "--url"]);
        command.arg(&server.base).args(extra).output().unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("written to"), "{stdout}");
    // The size printed is the file's, as a user sees it.
    let size = std::fs::metadata(&backup).unwrap().len();
    assert!(stdout.contains(&format!("({size} bytes)")), "{size}: {stdout}");
    let again = run(&[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad_token = stile_bin()
        .current_dir(dir.path())
        .args(["backup", "other.redb", "--url", &server.base, "--token", "stile_admin_wrong"])
        .output()
        .unwrap();
    assert!(!bad_token.status.success());
    assert!(String::from_utf8_lossy(&bad_token.stderr).contains("401"), "{:?}", bad_token);
    assert!(!dir.path().join("other.redb").exists() && !dir.path().join("other.redb.partial").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.contains("backup"))
        .collect();
    assert!(leftovers.is_empty(), "the server leaves no backup files behind: {leftovers:?}");
    assert_eq!(server.terminate(), Some(0));

    // Payloads are encrypted at rest: the marker is in neither the data file nor the backup.
    let contains = |path: &std::path::Path| {
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
    };
    assert!(!contains(&dir.path().join("data/stile.redb")), "the data file holds the payload in clear");
    assert!(!contains(&backup), "the backup holds the payload in clear");

    // Restore: the copy in place of the data file of a new directory.
    let restored = tempfile::tempdir().unwrap();
    std::fs::create_dir(restored.path().join("data")).unwrap();
    std::fs::copy(&backup, restored.path().join("data/stile.redb")).unwrap();
    // Without the payload key it refuses to start, saying why.
    let keyless = stile_bin().current_dir(restored.path()).args(args).envs(env).output().unwrap();
    assert!(!keyless.status.success());
    let stderr = String::from_utf8_lossy(&keyless.stderr);
    assert!(stderr.contains("payload key file") && stderr.contains("does not exist"), "{stderr}");
    // A different key is refused too.
    let key_path = restored.path().join("data/payload.key");
    std::fs::write(&key_path, [9u8; 32]).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&key_path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let wrong = stile_bin().current_dir(restored.path()).args(args).envs(env).output().unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("is not the one"), "{wrong:?}");
    std::fs::copy(dir.path().join("data/payload.key"), &key_path).unwrap();
    let server = ServerProcess::start(restored.path(), &args, &env).unwrap();
    let get = |path: &str| Req::new("GET", format!("{}{path}", server.base)).key(TEST_KEY).send();
    let found = get(&format!("/v1/events/{}", event["id"].as_str().unwrap()));
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.body["data"], event["data"]);
    assert_eq!(found.body["data"]["note"], marker.as_str(), "read back through the API");
    let found = get(&format!("/v1/webhook_endpoints/{}", endpoint["id"].as_str().unwrap()));
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.body["url"], "http://127.0.0.1:9/hooks");
}

#[test]
fn rotating_the_payload_key_reencrypts_everything_and_an_interrupted_rotation_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", "data"];
    let env = [("STILE_AUTH_KEYS", TEST_KEY)];
    let marker = format!("marker-{}", ulid::Ulid::new());
    let server = ServerProcess::start(dir.path(), &args, &env).unwrap();
    let publish = |base: &str, note: &str| {
        let resp = Req::new("POST", format!("{base}/v1/events"))
            .key(TEST_KEY)
            .json(&json!({"type": "verification_session.created", "data": {"id": "vks_1", "note": note}}))
            .send();
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body["id"].as_str().unwrap().to_string()
    };
    let first = publish(&server.base, &marker);
    // An endpoint whose bearer token is sealed with the key too.
    let receiver = crate::common::receiver::Receiver::start();
    let endpoint = Req::new("POST", format!("{}/v1/webhook_endpoints", server.base))
        .key(TEST_KEY)
        .json(&json!({"url": receiver.url("/auth"), "enabled_events": ["verification_session.verified"],
                      "authentication": {"type": "bearer", "token": marker},
                      "transformation": {"code": "function handler(w) { w.payload.wrapped = true; return w; }"}}))
        .send();
    assert_eq!(endpoint.status, 200, "{}", endpoint.text);
    let endpoint = endpoint.body["id"].as_str().unwrap().to_string();
    // An attempt whose transformed body is sealed with the key too.
    let ping = Req::new("POST", format!("{}/v1/webhook_endpoints/{endpoint}/test", server.base)).key(TEST_KEY).send();
    assert_eq!(ping.body["status"], "succeeded", "{}", ping.text);
    let transformed = ping.body["id"].as_str().unwrap().to_string();
    // Refused while the server runs (it holds the data file).
    let busy = stile_bin().current_dir(dir.path()).args(["rotate-payload-key", "--data-dir", "data"]).output().unwrap();
    assert!(!busy.status.success());
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(said.contains("held by a running stile server") && said.contains("stile rotate-payload-key"), "{said}");
    assert_eq!(server.terminate(), Some(0));

    let key_file = dir.path().join("data/payload.key");
    let old_key = std::fs::read(&key_file).unwrap();
    let rotate =
        || stile_bin().current_dir(dir.path()).args(["rotate-payload-key", "--data-dir", "data"]).output().unwrap();
    let out = rotate();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("re-encrypted 2 payloads"), "{stdout}");
    let new_key = std::fs::read(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("payload.key.old-"))
        .collect();
    assert_eq!(kept.len(), 1, "the old key is kept");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), old_key);

    // The old key no longer opens the data file; the new one reads the event back.
    std::fs::write(&key_file, &old_key).unwrap();
    let refused = stile_bin().current_dir(dir.path()).args(args).envs(env).output().unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not the one"), "{refused:?}");
    std::fs::write(&key_file, &new_key).unwrap();
    let server = ServerProcess::start(dir.path(), &args, &env).unwrap();
    let found = Req::new("GET", format!("{}/v1/events/{first}", server.base)).key(TEST_KEY).send();
    assert_eq!(found.body["data"]["note"], marker.as_str(), "{}", found.text);
    let ping = Req::new("POST", format!("{}/v1/webhook_endpoints/{endpoint}/test", server.base)).key(TEST_KEY).send();
    assert_eq!(ping.body["status"], "succeeded", "{}", ping.text);
    let got = receiver.wait_for("/auth", 2, std::time::Duration::from_secs(10));
    assert_eq!(got[1].header("authorization"), format!("Bearer {marker}"), "the token opens with the new key");
    // The body the transformation made opens with the new key too.
    let detail = Req::new("GET", format!("{}/v1/webhook_endpoints/{endpoint}/deliveries/{transformed}", server.base))
        .key(TEST_KEY)
        .send();
    assert_eq!(detail.status, 200, "{}", detail.text);
    assert_eq!(detail.body["request"]["body"].as_str().unwrap().as_bytes(), got[0].body.as_slice());
    let second = publish(&server.base, "second");
    assert_eq!(server.terminate(), Some(0));

    // An interrupted rotation: the new key was written, nothing re-sealed yet. The server
    // refuses to start until the rotation is run again, which finishes it.
    let pending = dir.path().join("data/payload.key.new");
    std::fs::write(&pending, [5u8; 32]).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&pending, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let stopped = stile_bin().current_dir(dir.path()).args(args).envs(env).output().unwrap();
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("rotation was interrupted"), "{stopped:?}");
    let out = rotate();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The two events and the two test pings'.
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted 4 payloads"));
    assert_eq!(std::fs::read(&key_file).unwrap(), [5u8; 32], "the pending key is the key now");
    assert!(!pending.exists());
    let server = ServerProcess::start(dir.path(), &args, &env).unwrap();
    for (id, note) in [(&first, marker.as_str()), (&second, "second")] {
        let found = Req::new("GET", format!("{}/v1/events/{id}", server.base)).key(TEST_KEY).send();
        assert_eq!(found.body["data"]["note"], note, "{}", found.text);
    }
    assert_eq!(server.terminate(), Some(0));
    let file = std::fs::read(dir.path().join("data/stile.redb")).unwrap();
    assert!(!file.windows(marker.len()).any(|w| w == marker.as_bytes()));
}
