//! Logs: the filter and JSON format from config, one line per attempt at debug level,
//! and never a secret.

use std::time::Duration;

use serde_json::json;

use crate::common::process::ServerProcess;
use crate::common::receiver::Receiver;
use crate::common::{Req, TEST_KEY, eventually};

#[test]
fn json_logs_at_debug_have_a_line_per_attempt_and_no_secret() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", "data"];
    let env = [("STILE_AUTH_KEYS", TEST_KEY), ("STILE_LOG_FILTER", "warn,stile=debug"), ("STILE_LOG_FORMAT", "json")];
    let server = ServerProcess::start(dir.path(), &args, &env).unwrap();
    let post = |path: &str, body: serde_json::Value| {
        let resp = Req::new("POST", format!("{}{path}", server.base)).key(TEST_KEY).json(&body).send();
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body
    };
    let endpoint = post("/v1/webhook_endpoints", json!({"url": receiver.url("/hooks"), "enabled_events": ["*"]}));
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    let event = post("/v1/events", json!({"type": "verification_session.created", "data": {"id": "vks_1"}}));
    let rotated = post(&format!("/v1/webhook_endpoints/{}/rotate_secret", endpoint["id"].as_str().unwrap()), json!({}));
    let admin_token = std::fs::read_to_string(dir.path().join("data/admin.token")).unwrap();
    receiver.wait_for("/hooks", 1, Duration::from_secs(10));

    let mut lines = Vec::new();
    let attempt_logged = eventually(Duration::from_secs(10), || {
        lines.extend(server.stderr_so_far());
        lines.iter().any(|l| l.contains("delivery attempt"))
    });
    assert!(attempt_logged, "a debug line per attempt: {lines:#?}");
    let mut attempt_lines = 0;
    for line in &lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(parsed["level"].is_string() && parsed["timestamp"].is_string(), "{line}");
        if parsed["fields"]["message"] == "delivery attempt" {
            attempt_lines += 1;
            assert_eq!(parsed["level"], "DEBUG");
            assert_eq!(parsed["fields"]["event"], event["id"]);
            assert_eq!(parsed["fields"]["endpoint"], endpoint["id"]);
            assert_eq!(parsed["fields"]["succeeded"], true);
        }
        for secret in [secret.as_str(), rotated["secret"].as_str().unwrap(), TEST_KEY, admin_token.trim()] {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
    }
    assert_eq!(attempt_lines, 1, "{lines:#?}");
    // The `warn` default for other crates holds: actix's own info lines are not there.
    assert!(!lines.iter().any(|l| l.contains("actix_server")), "{lines:#?}");
}

#[test]
fn text_logs_into_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", "data"];
    let env = [("STILE_AUTH_KEYS", TEST_KEY), ("STILE_LOG_FILTER", "debug"), ("STILE_LOG_FORMAT", "text")];
    let server = ServerProcess::start(dir.path(), &args, &env).unwrap();
    // A request logs a line at debug level.
    assert_eq!(Req::new("GET", format!("{}/v1/webhook_endpoints", server.base)).key(TEST_KEY).send().status, 200);
    let mut lines = Vec::new();
    let logged = eventually(Duration::from_secs(10), || {
        lines.extend(server.stderr_so_far());
        lines.iter().any(|l| l.contains("/v1/webhook_endpoints"))
    });
    assert!(logged, "{lines:#?}");
    // stderr here is a pipe, not a terminal: no escape sequences, and the level is plain.
    assert!(lines.iter().all(|l| !l.contains('\x1b')), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains(" DEBUG ")), "{lines:#?}");
}

#[test]
fn a_bad_log_filter_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, value, key) in
        [("STILE_LOG_FILTER", "stile=loud", "log.filter"), ("STILE_LOG_FORMAT", "xml", "log.format")]
    {
        let out = crate::common::process::stile_bin()
            .current_dir(dir.path())
            .args(["--listen", "127.0.0.1:0", "--data-dir", "data"])
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{variable}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{stderr}");
    }
}
