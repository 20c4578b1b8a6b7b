//! Retention: history older than `[retention] events` is pruned in the background, what
//! is still in use is kept, the data file stops growing under steady load, and
//! `stile compact` shrinks it offline.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::process::{ServerProcess, stile_bin};
use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{Req, TEST_KEY, TestServer, eventually};

fn file_size(server: &TestServer) -> u64 {
    std::fs::metadata(server.data_dir().join("stile.redb")).unwrap().len()
}

#[test]
fn old_events_attempts_and_idempotency_records_are_pruned_but_undelivered_events_are_kept() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(500));
    let server = TestServer::start_with(|c| {
        c.retention.events = Duration::from_secs(1);
        c.delivery.retry_schedule = vec![Duration::from_secs(3600)];
        c.events.custom_types = vec!["order.created".into(), "order.failed".into()];
    });
    let up = server.create_endpoint_for(&receiver.url("/up"), &["order.created"]);
    let down = server.create_endpoint_for(&receiver.url("/down"), &["order.failed"]);

    let first = server.req("POST", "/v1/events").header("Idempotency-Key", "order-1").json(&json!({
        "type": "order.created", "data": {"id": "o1"}
    }));
    let delivered = first.send().body;
    let delivered_id = delivered["id"].as_str().unwrap().to_string();
    server.wait_settled(&delivered_id, Duration::from_secs(10));
    let stuck = server.publish("order.failed", json!({"id": "o2"}));
    let stuck_id = stuck["id"].as_str().unwrap().to_string();
    assert!(eventually(Duration::from_secs(10), || server.deliveries(down["id"].as_str().unwrap()).len() == 2));

    // The delivered event, its attempt, and the idempotency record go.
    let pruned =
        eventually(Duration::from_secs(15), || server.get(&format!("/v1/events/{delivered_id}")).status == 404);
    assert!(pruned, "a delivered event older than the retention period is pruned");
    assert!(server.deliveries(up["id"].as_str().unwrap()).is_empty(), "its attempt is pruned too");
    let deliveries = server.get(&format!("/v1/events/{delivered_id}/deliveries"));
    assert_eq!(deliveries.status, 404, "{}", deliveries.text);
    // Idempotency records are kept to the second, so this one goes within a second more.
    let new_event = eventually(Duration::from_secs(10), || {
        let again = server
            .req("POST", "/v1/events")
            .header("Idempotency-Key", "order-1")
            .json(&json!({"type": "order.created", "data": {"id": "o1"}}))
            .send();
        assert_eq!(again.status, 200, "{}", again.text);
        again.body["id"] != delivered["id"]
    });
    assert!(new_event, "an expired idempotency key makes a new event");

    // The event whose delivery still waits for its retry stays, with the pending attempt;
    // the failed first attempt is history and goes (pruned in its own pass: waited for).
    let kept = server.get(&format!("/v1/events/{stuck_id}"));
    assert_eq!(kept.status, 200, "an event with a pending delivery is kept: {}", kept.text);
    assert_eq!(kept.body["pending_webhooks"], 1);
    let mut attempts = Vec::new();
    let history_gone = eventually(Duration::from_secs(10), || {
        attempts = server.deliveries(down["id"].as_str().unwrap());
        attempts.len() == 1
    });
    assert!(history_gone, "{attempts:?}");
    assert_eq!(attempts[0]["status"], "pending");
    assert_eq!(attempts[0]["attempt"], 2);
}

#[test]
fn the_data_file_stops_growing_under_steady_publishing() {
    let receiver = Receiver::start();
    let server = TestServer::start_redb(|c| {
        c.retention.events = Duration::from_secs(1);
        c.events.custom_types = vec!["order.created".into()];
    });
    server.create_endpoint_for(&receiver.url("/hooks"), &["order.created"]);
    let padding = "x".repeat(16 * 1024);
    let base = server.base.clone();
    let stop_at = Instant::now() + Duration::from_secs(14);
    let publishers: Vec<_> = (0..4)
        .map(|_| {
            let (base, padding) = (base.clone(), padding.clone());
            std::thread::spawn(move || {
                let mut published = 0u64;
                while Instant::now() < stop_at {
                    let resp = Req::new("POST", format!("{base}/v1/events"))
                        .key(TEST_KEY)
                        .json(&json!({"type": "order.created", "data": {"n": published, "padding": padding}}))
                        .send();
                    assert_eq!(resp.status, 200, "{}", resp.text);
                    published += 1;
                }
                published
            })
        })
        .collect();
    let mut sizes = Vec::new();
    while Instant::now() < stop_at {
        std::thread::sleep(Duration::from_millis(500));
        sizes.push(file_size(&server));
    }
    let published: u64 = publishers.into_iter().map(|p| p.join().unwrap()).sum();
    let written = published * padding.len() as u64;
    // More payload went through than the file can hold, so space freed by pruning was
    // reused: without pruning every payload would still be stored (the file then grows
    // to ~140 MB here). And once it has reached its working size in the first 10 s, the
    // file grows at most one step further: redb grows by doubling, and its allocator may
    // need one more step when freed regions are fragmented (seen once in CI: 8.9 MB for
    // 10 s, then 17.8 MB flat); growth that goes on doubles past that.
    let first_ten = *sizes[..20].iter().max().unwrap();
    let last = *sizes.last().unwrap();
    let max = *sizes.iter().max().unwrap();
    eprintln!("published {published} events ({written} payload bytes); file sizes every 0.5 s: {sizes:?}");
    assert!(written > max * 3 / 2, "more payload than the file holds went through: {written} vs {max}");
    assert!(
        last <= first_ten * 2,
        "the data file kept growing: at most {first_ten} bytes in the first 10 s, {last} at the end ({sizes:?})"
    );
}

#[test]
fn compact_shrinks_the_file_after_history_is_pruned_and_refuses_while_the_server_runs() {
    let server = TestServer::start_redb(|c| c.events.custom_types = vec!["order.created".into()]);
    let padding = "y".repeat(8192);
    for n in 0..300 {
        server.publish("order.created", json!({"n": n, "padding": padding}));
    }
    let data_dir = server.data_dir();
    let busy = stile_bin().args(["compact", "--data-dir", data_dir.to_str().unwrap()]).output().unwrap();
    assert!(!busy.status.success());
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(stderr.contains("held by a running stile server") && stderr.contains("stile compact"), "{stderr}");

    // A server with a short retention prunes it all, then stops.
    let server = server.restart_with(|c| c.retention.events = Duration::from_millis(200));
    assert!(eventually(Duration::from_secs(10), || {
        server.get("/v1/events?limit=1").body["data"].as_array().is_some_and(|d| d.is_empty())
    }));
    let _kept = server.stop();
    let before = std::fs::metadata(data_dir.join("stile.redb")).unwrap().len();

    let out = stile_bin().args(["compact", "--data-dir", data_dir.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let after = std::fs::metadata(data_dir.join("stile.redb")).unwrap().len();
    assert!(stdout.contains(&format!(" -> {after} bytes")), "{stdout}");
    assert!(after * 2 < before, "compaction frees most of a file whose history was pruned: {before} -> {after}");
}

/// Creates an endpoint through the Kayle API keeping undelivered payloads `hours` hours.
fn kayle_endpoint(server: &TestServer, url: &str, hours: u32) -> String {
    let created = server
        .req("POST", "/v1/webhooks/endpoints")
        .json(&json!({"url": url, "undelivered_payload_retention_hours": hours}))
        .send();
    assert_eq!(created.status, 200, "{}", created.text);
    created.body["data"]["endpoint"]["id"].as_str().unwrap().to_string()
}

/// Waits until every delivery to the endpoint has failed for good, and `n` of them exist.
fn wait_failed(server: &TestServer, endpoint: &str, n: usize) {
    let failed = eventually(Duration::from_secs(10), || {
        let all = server.deliveries(endpoint);
        all.len() == n && all.iter().all(|d| d["status"] == "failed")
    });
    assert!(failed, "{n} failed deliveries to {endpoint}: {:?}", server.deliveries(endpoint));
}

#[test]
fn an_undelivered_payload_can_be_resent_within_its_endpoints_window_and_not_after() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(500));
    let clock = stile::clock::Clock::manual(stile::clock::unix_now_ms());
    let server = TestServer::start_with_clock(clock.clone(), |c| {
        c.delivery.retry_schedule = vec![]; // the first failure is final
        c.retention.undelivered_payload_hours = 0; // the default, for the Stile endpoint
    });
    let kept = kayle_endpoint(&server, &receiver.url("/down"), 1);
    let dropped = server.create_endpoint(&receiver.url("/down"))["id"].as_str().unwrap().to_string();
    let event = server.publish("verification_session.verified", json!({"id": "vks_1"}));
    let event_id = event["id"].as_str().unwrap().to_string();
    wait_failed(&server, &kept, 1);
    wait_failed(&server, &dropped, 1);
    let resend = |endpoint: &str| server.post(&format!("/v1/events/{event_id}/resend"), json!({"endpoint": endpoint}));

    // A window of 0: removed as soon as the delivery failed for good.
    let refused = resend(&dropped);
    let error = refused.assert_error(400, "invalid_request_error", "payload_expired");
    assert_eq!(error["param"], "endpoint");
    assert!(error["message"].as_str().unwrap().contains("0 hours"), "{error}");
    // Within the endpoint's hour it can be sent again (and fails again, so its hour starts over).
    assert_eq!(resend(&kept).status, 200);
    wait_failed(&server, &kept, 2);
    let recover = |endpoint: &str| {
        server.post(&format!("/v1/webhook_endpoints/{endpoint}/recover"), json!({"since": 0, "dry_run": true})).body
    };
    assert_eq!((recover(&kept)["events"].as_u64(), recover(&kept)["expired"].as_u64()), (Some(1), Some(0)));
    assert_eq!((recover(&dropped)["events"].as_u64(), recover(&dropped)["expired"].as_u64()), (Some(0), Some(1)));

    // An hour later it is past the window: refused by name, counted as expired, and left
    // out of a resend to every subscriber (the event itself is still within retention).
    clock.advance(Duration::from_secs(3600));
    resend(&kept).assert_error(400, "invalid_request_error", "payload_expired");
    assert_eq!((recover(&kept)["events"].as_u64(), recover(&kept)["expired"].as_u64()), (Some(0), Some(1)));
    assert_eq!(server.get(&format!("/v1/events/{event_id}")).status, 200);
    let to_all = server.post(&format!("/v1/events/{event_id}/resend"), json!({}));
    assert_eq!(to_all.status, 200, "{}", to_all.text);
    assert_eq!(to_all.body["pending_webhooks"], 0, "no endpoint is sent it again");
    assert_eq!(server.deliveries(&kept).len(), 2);
}

#[test]
fn an_undelivered_payload_outlives_the_general_retention_for_its_window() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(500));
    let clock = stile::clock::Clock::manual(stile::clock::unix_now_ms());
    let server = TestServer::start_with_clock(clock.clone(), |c| {
        c.delivery.retry_schedule = vec![];
        c.retention.events = Duration::from_secs(1);
        c.retention.undelivered_payload_hours = 0;
    });
    let down = kayle_endpoint(&server, &receiver.url("/down"), 2);
    server.create_endpoint_for(&receiver.url("/up"), &["verification_session.created"]);
    let held = server.publish("verification_session.verified", json!({"id": "vks_held"}));
    let held_id = held["id"].as_str().unwrap().to_string();
    wait_failed(&server, &down, 1);
    let delivered = server.publish("verification_session.created", json!({"id": "vks_ok"}));
    let delivered_id = delivered["id"].as_str().unwrap().to_string();
    server.wait_settled(&delivered_id, Duration::from_secs(10));

    // Past the general retention: the delivered event goes (so a pass has run), the one
    // whose delivery failed stays, payload and all, within its endpoint's 2 hours.
    clock.advance(Duration::from_secs(60));
    let pruned =
        eventually(Duration::from_secs(10), || server.get(&format!("/v1/events/{delivered_id}")).status == 404);
    assert!(pruned, "the delivered event is pruned");
    let kept = server.get(&format!("/v1/events/{held_id}"));
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert_eq!(kept.body["data"]["id"], "vks_held");

    // After the window it goes too.
    clock.advance(Duration::from_secs(2 * 3600));
    let gone = eventually(Duration::from_secs(10), || server.get(&format!("/v1/events/{held_id}")).status == 404);
    assert!(gone, "the undelivered payload is removed after its window");
}

#[test]
fn inspect_prints_each_tables_rows_and_bytes_of_a_stopped_servers_file() {
    let server = TestServer::start_redb(|c| c.events.custom_types = vec!["order.created".into()]);
    for n in 0..25 {
        server.publish("order.created", json!({"id": format!("ord_{n}"), "n": n}));
    }
    let data_dir = server.data_dir();
    let busy = stile_bin().args(["inspect", "--data-dir", data_dir.to_str().unwrap()]).output().unwrap();
    assert!(!busy.status.success(), "the file is the running server's");
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(said.contains("held by a running stile server") && said.contains("stop the server first"), "{said}");
    let _kept = server.stop();
    let out = stile_bin().args(["inspect", "--data-dir", data_dir.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let rows = |table: &str| -> u64 {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(table))
            .unwrap_or_else(|| panic!("{table}: {stdout}"));
        line.split_whitespace().nth(1).unwrap().replace(',', "").parse().unwrap()
    };
    assert_eq!(rows("events_by_app"), 25);
    assert_eq!(rows("events_by_type_hash"), 25);
    assert_eq!(rows("events_by_data_id_hash"), 25);
    assert_eq!(rows("event_bodies"), 25);
    // The file's size as open (opening may grow it by a page or two; closing trims it).
    let size = std::fs::metadata(data_dir.join("stile.redb")).unwrap().len();
    let first = stdout.lines().next().unwrap();
    let printed: u64 = first.rsplit(": ").next().unwrap().trim_end_matches(" bytes").replace(',', "").parse().unwrap();
    assert!(printed >= size && printed <= size + 64 * 1024, "{first} (the file is {size} bytes)");
}

#[test]
fn inspect_reads_the_file_of_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", "data"];
    let server = ServerProcess::start(dir.path(), &args, &[("STILE_AUTH_KEYS", TEST_KEY)]).unwrap();
    for n in 0..3 {
        let resp = Req::new("POST", format!("{}/v1/events", server.base))
            .key(TEST_KEY)
            .json(&json!({"type": "verification_session.created", "data": {"id": format!("vks_{n}")}}))
            .send();
        assert_eq!(resp.status, 200, "{}", resp.text);
    }
    server.kill_hard();
    let data_dir = dir.path().join("data");
    let out = stile_bin().args(["inspect", "--data-dir", data_dir.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let events = stdout.lines().find(|l| l.starts_with("events_by_app ")).unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(events.split_whitespace().nth(1), Some("3"), "{events}");
}
